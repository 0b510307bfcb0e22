/* Multiline joining for the file input: which lines continue a record
 * (stack traces, wrapped messages). Lines of one record are contiguous in
 * the file, so a joined record is still one slice of the read chunk. */
#ifndef SLUICE_COLLECTOR_MULTILINE_H
#define SLUICE_COLLECTOR_MULTILINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

typedef struct sl_multiline sl_multiline;

/* From a `multiline:` map: `start: REGEX` (a line matching it begins a
 * record) or `continue: REGEX` (a line matching it belongs to the previous
 * one), plus max_lines, max_bytes and timeout. Errors go to cfg. *out is
 * NULL when node is NULL. */
int sl_multiline_new(sl_cfg *cfg, const sl_cfg_node *node, sl_multiline **out);
void sl_multiline_free(sl_multiline *m);
/* True when line continues the record before it. */
bool sl_multiline_continues(sl_multiline *m, const char *line, size_t n);
uint32_t sl_multiline_max_lines(const sl_multiline *m);
uint64_t sl_multiline_max_bytes(const sl_multiline *m);
int64_t sl_multiline_timeout_ms(const sl_multiline *m);

#endif
