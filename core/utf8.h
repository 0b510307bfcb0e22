/* UTF-8 validation shared by sinks that must send valid UTF-8 (Loki, JSON). */
#ifndef SLUICE_CORE_UTF8_H
#define SLUICE_CORE_UTF8_H

#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at p, or 0 when the bytes there
 * are not valid UTF-8 (overlong, surrogate, > U+10FFFF, truncated). */
size_t sl_utf8_seq_len(const unsigned char *p, size_t n);
/* Offset of the first invalid byte, or n when all of p is valid. */
size_t sl_utf8_valid_prefix(const char *p, size_t n);
/* Writes p into dst (cap >= 3 * n) replacing invalid bytes with U+FFFD;
 * returns bytes written, *replaced = how many were replaced. */
size_t sl_utf8_sanitize(const char *p, size_t n, char *dst, size_t *replaced);

#endif
