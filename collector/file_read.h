/* Reading the file input's files: one read per file and turn, copy and
 * rewrite truncation, lines split into records (long lines, multiline
 * groups, CRLF, text checks), batches handed to emit with their
 * acknowledgement tickets, and the read_bytes_per_sec budget. */
#ifndef SLUICE_COLLECTOR_FILE_READ_H
#define SLUICE_COLLECTOR_FILE_READ_H

#include "collector/file_state.h"

/* Reads what t has next and emits its records (with in->mu held; emit
 * releases it while it blocks). Returns bytes read, 0 at EOF, or an
 * error code. */
long sl_file_read_some(file_input *in, tracked *t);
/* Adds what the read rate allows since the last refill (1 s burst). */
void sl_file_refill_tokens(file_input *in, int64_t now);

#endif
