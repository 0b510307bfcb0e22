/* Multiline joining for the file input: which lines continue a record
 * (stack traces, wrapped messages). Lines of one record are contiguous in
 * the file, so a joined record is still one slice of the read chunk. */
#ifndef SLUICE_COLLECTOR_MULTILINE_H
#define SLUICE_COLLECTOR_MULTILINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/config.h"

typedef struct sl_multiline sl_multiline;

/* What a line does to the group open before it. */
enum sl_ml_verdict {
    SL_ML_START, /* begins a new record (or there is no open group) */
    SL_ML_JOIN,  /* continues the open group */
    SL_ML_CUT,   /* continues it, but the group is full (max_lines or
                  * max_bytes): the group ends cut, the line starts its
                  * continuation (decision 0019) */
};

/* Per-file joining state, kept by the file input beside each file. */
typedef struct sl_ml_file {
    bool open_continues; /* the open group continues a cut record */
    bool cut_logged;     /* this file's first cut was logged */
} sl_ml_file;

/* From a `multiline:` map: `start: REGEX` (a line matching it begins a
 * record) or `continue: REGEX` (a line matching it belongs to the previous
 * one), plus max_lines, max_bytes and timeout. Errors go to cfg. *out is
 * NULL when node is NULL. */
int sl_multiline_new(sl_cfg *cfg, const sl_cfg_node *node, sl_multiline **out);
void sl_multiline_free(sl_multiline *m);
/* True when line continues the record before it. */
bool sl_multiline_continues(sl_multiline *m, const char *line, size_t n);
/* The verdict for line after an open group of glines lines (0: none);
 * gbytes is the group's size with this line and its newline. */
int sl_multiline_next(sl_multiline *m, uint32_t glines, uint64_t gbytes, const char *line,
                      size_t n);
/* Closes f's open group with the verdict of the line after it (SL_ML_START
 * when the group ends for any other reason) and returns the record flags
 * for it: SL_RF_ML_CUT when it was cut, SL_RF_ML_CONT when it continues a
 * cut record. */
uint32_t sl_multiline_close(sl_ml_file *f, int verdict);
/* For a record whose flags came from sl_multiline_close: adds the fields
 * `multiline_truncated: true` (cut) and `multiline_continued: true`
 * (continuation), counts cuts in sluice_multiline_truncated_total{input},
 * and logs the first cut of each file. SL_ENOMEM when the arena is full
 * (the flags still mark the record). */
int sl_multiline_mark(sl_multiline *m, sl_ml_file *f, const char *input, const char *path,
                      sl_batch *b, sl_record *r);
uint32_t sl_multiline_max_lines(const sl_multiline *m);
uint64_t sl_multiline_max_bytes(const sl_multiline *m);
int64_t sl_multiline_timeout_ms(const sl_multiline *m);

#endif
