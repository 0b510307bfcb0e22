/* The journald input's readers of journal file bytes it did not write
 * (collector/journald_journal.c): the header decoder on the first bytes of
 * whatever sits in the watched folder named *.journal, and the seqnum taken
 * out of a cursor libsystemd built from such a file. Never a crash or a
 * read past the input; an accepted header has the signature, a header size
 * the input covers, a known state, and head <= tail when it has entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/journald_internal.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past it. */
    uint8_t *buf = calloc(1, size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    jd_file_header h;
    sl_err err;
    if (sl_jd_parse_header(buf, size, &h, &err) == SL_OK) {
        if (size < JD_HEADER_MIN || memcmp(buf, "LPKSHHRH", 8) != 0) abort();
        if (h.state > JD_STATE_ARCHIVED) abort();
        if (h.n_entries && h.head_seqnum > h.tail_seqnum) abort();
    }
    /* The same bytes as a cursor (NUL-terminated, as libsystemd gives one). */
    char *c = malloc(size + 1);
    if (c) {
        if (size) memcpy(c, data, size);
        c[size] = '\0';
        uint64_t seq = 0;
        if (sl_jd_cursor_seqnum(c, &seq) && !strstr(c, "i=")) abort();
        free(c);
    }
    free(buf);
    return 0;
}
