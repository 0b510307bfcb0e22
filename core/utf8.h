/* UTF-8 validation and repair, shared by the inputs (counting), the JSON
 * encoders and the Loki sink (which must send valid UTF-8). */
#ifndef SLUICE_CORE_UTF8_H
#define SLUICE_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The sequence at p (n >= 1): its length (1-4) when it is valid UTF-8, or
 * -k when it is not: k (1-3) is the length of its maximal subpart (Unicode
 * ch. 3), the bytes one U+FFFD replaces. Overlongs, surrogates, code points
 * above U+10FFFF and sequences cut short are invalid. */
int sl_utf8_seq(const unsigned char *p, size_t n);
/* Offset of the first invalid byte, or n when all of p is valid. ASCII runs
 * are skipped 128 bytes at a time where the CPU has AVX2. */
size_t sl_utf8_valid_prefix(const char *p, size_t n);
bool sl_utf8_valid(const char *p, size_t n);
/* Writes p into dst (room for 3 * n bytes) with each maximal invalid
 * subpart replaced by U+FFFD; returns bytes written, *replaced = how many
 * replacements. */
size_t sl_utf8_sanitize(const char *p, size_t n, char *dst, size_t *replaced);

#endif
