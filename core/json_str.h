/* JSON string bodies (the bytes between the quotes), both ways: escaping
 * for every encoder (record JSON, Loki's JSON body, spool export, the
 * dry-run printer) and unescaping for the parsers (json, docker) and the
 * Loki sink, with the \u digits and the UTF-8 encoding they share. One
 * module, so a fix to how a JSON string is read or written lands in every
 * place that reads or writes one. */
#ifndef SLUICE_CORE_JSON_STR_H
#define SLUICE_CORE_JSON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- escaping ---- */

/* Room sl_json_escape_to may touch for n input bytes: the worst case (every
 * byte \u00XX) plus one vector of slack its block stores may write past the
 * end of the output. */
#define SL_JSON_ESCAPE_ROOM(n) ((n)*6 + 32)
/* The escaping of sl_json_escape_ref, byte for byte, into dst (room for
 * SL_JSON_ESCAPE_ROOM(n) bytes), 16 bytes a step where nothing needs
 * escaping: the hot path of the record -> JSON encoders. Returns the bytes
 * written; adds the number of U+FFFD replacements to *replaced. */
size_t sl_json_escape_to(char *dst, const char *s, size_t n, size_t *replaced);
/* The same, where the caller knows s[n..readable) may be read too (a field
 * slice inside its record's line): short strings then go 16 bytes at a
 * time as well. Those bytes are read, never escaped or written. */
size_t sl_json_escape_within(char *dst, const char *s, size_t n, size_t readable, size_t *replaced);
/* The reference escaper, a byte at a time, that the vector paths are tested
 * against: '"' '\\' \n \r \t get their short escapes, other bytes below 0x20
 * \u00xx, valid UTF-8 is copied and each maximal invalid subpart becomes
 * U+FFFD (counted in *replaced). dst has room for 6 * n bytes. */
size_t sl_json_escape_ref(char *dst, const char *s, size_t n, size_t *replaced);

/* ---- unescaping ---- */

/* What a malformed escape (one strict JSON rejects) becomes. Who validated
 * the string decides: the JSON parser did, so anything odd is a bug; the
 * docker input and record fields from other steps did not. */
typedef enum sl_json_bad {
    SL_JSON_BAD_FAIL,  /* SL_EPARSE, as jansson */
    SL_JSON_BAD_KEEP,  /* copied as it is; a lone surrogate becomes U+FFFD */
    SL_JSON_BAD_LOOSE, /* the backslash is dropped; \u without four hex digits
                        * and a lone surrogate become U+FFFD */
} sl_json_bad;

/* Unescapes src[0..n) into dst (cap bytes); *written = bytes written.
 * Returns SL_OK; SL_EPARSE (SL_JSON_BAD_FAIL only); or SL_EFULL when dst
 * filled first: it then holds a prefix (plain bytes cut anywhere, an
 * escape whole or not at all). The output is never longer than n except
 * under SL_JSON_BAD_LOOSE (a bare \u, 2 bytes, becomes U+FFFD, 3). */
int sl_json_unescape_to(const char *src, size_t n, char *dst, size_t cap, sl_json_bad bad,
                        size_t *written);
/* Strict: the length written, SL_EPARSE for an invalid escape or lone
 * surrogate (as jansson), SL_EFULL when cap is too small (cap >= n always
 * suffices). */
ptrdiff_t sl_json_unescape(const char *src, size_t n, char *dst, size_t cap);

/* Strict JSON string text from text[i] on: JSON's escapes only, surrogates
 * paired, no control byte. Returns the index of the first bare quote, or n
 * when there is none; SIZE_MAX when the text breaks a rule. *high is set
 * when a byte >= 0x80 was seen (the caller checks UTF-8). */
size_t sl_json_string_text_end(const char *text, size_t i, size_t n, bool *high);
/* True when p[0, n) can be written between JSON quotes as it is: strict
 * JSON string text (above), no bare quote, valid UTF-8 (decision 0046). */
bool sl_json_string_text_ok(const char *p, size_t n);

/* ---- shared pieces ---- */

static inline int sl_json_hexval(unsigned char c)
{
    if ((unsigned)(c - '0') < 10) return c - '0';
    c |= 0x20;
    if ((unsigned)(c - 'a') < 6) return c - 'a' + 10;
    return -1;
}

/* The four hex digits at p (n bytes readable there): their value, or -1
 * when fewer than four are there or one is not a hex digit. */
static inline int32_t sl_json_hex4(const char *p, size_t n)
{
    if (n < 4) return -1;
    int a = sl_json_hexval((unsigned char)p[0]), b = sl_json_hexval((unsigned char)p[1]),
        c = sl_json_hexval((unsigned char)p[2]), d = sl_json_hexval((unsigned char)p[3]);
    if ((a | b | c | d) < 0) return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

/* Writes code point cp (at most U+10FFFF; the caller has replaced
 * surrogates) as UTF-8 into d (room for 4); returns the bytes written. */
static inline size_t sl_json_utf8_put(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
