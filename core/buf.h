/* A growable byte buffer for encoders (sink payloads, JSON, checkpoints).
 * Growth is bounded by `limit` so a hostile record cannot grow it forever. */
#ifndef SLUICE_CORE_BUF_H
#define SLUICE_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/json_str.h" /* the escapers sl_buf_json_escape wraps */

typedef struct sl_buf {
    char *p;
    size_t len, cap;
    size_t limit; /* 0: 1 GiB */
    int failed;   /* an append hit the limit or ran out of memory */
} sl_buf;

void sl_buf_init(sl_buf *b, size_t limit);
void sl_buf_free(sl_buf *b);
void sl_buf_reset(sl_buf *b); /* len = 0, failed = 0; keeps capacity */
/* Ensures room for n more bytes; SL_ENOMEM (and failed set) otherwise. */
int sl_buf_reserve(sl_buf *b, size_t n);
int sl_buf_append(sl_buf *b, const void *p, size_t n);
int sl_buf_putc(sl_buf *b, char c);
int sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the body of a JSON string (no quotes), escaping as JSON
 * requires (sl_json_escape_ref, core/json_str.h); invalid UTF-8 bytes
 * become U+FFFD. Returns how many bytes were replaced, or SL_ENOMEM. */
int sl_buf_json_escape(sl_buf *b, const char *s, size_t n);

#endif
