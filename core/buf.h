/* A growable byte buffer for encoders (sink payloads, JSON, checkpoints).
 * Growth is bounded by `limit` so a hostile record cannot grow it forever. */
#ifndef SLUICE_CORE_BUF_H
#define SLUICE_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

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
 * requires; invalid UTF-8 bytes become U+FFFD. Returns how many bytes were
 * replaced, or SL_ENOMEM. */
int sl_buf_json_escape(sl_buf *b, const char *s, size_t n);

/* Room sl_json_escape_to may touch for n input bytes: the worst case (every
 * byte \u00XX) plus one vector of slack its block stores may write past the
 * end of the output. */
#define SL_JSON_ESCAPE_ROOM(n) ((n)*6 + 32)
/* The same escaping as sl_buf_json_escape, byte for byte, into dst (room
 * for SL_JSON_ESCAPE_ROOM(n) bytes), 16 bytes a step where nothing needs
 * escaping: the hot path of the record -> JSON encoders. Returns the bytes
 * written; adds the number of U+FFFD replacements to *replaced. */
size_t sl_json_escape_to(char *dst, const char *s, size_t n, size_t *replaced);
/* The same, where the caller knows s[n..readable) may be read too (a field
 * slice inside its record's line): short strings then go 16 bytes at a
 * time as well. Those bytes are read, never escaped or written. */
size_t sl_json_escape_within(char *dst, const char *s, size_t n, size_t readable, size_t *replaced);

#endif
