/* logfmt: `key=value key="quoted \" value" bare_key`. Garbage tolerant:
 * stray quotes, `=` without a key and unterminated quotes are skipped or
 * taken to the end of the line, never read past it. A line without a
 * single key=value pair is a parse error (so plain text is not mistaken for
 * a line of bare keys). */
#ifndef SLUICE_PARSERS_LOGFMT_H
#define SLUICE_PARSERS_LOGFMT_H

#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/record.h"

/* Iteration state. The line is classified 64 bytes at a time into
 * bitmasks (blanks, '=', '"', '\\'), so finding the end of a token is a
 * count of trailing zeros rather than a loop over bytes. */
typedef struct sl_logfmt_iter {
    const char *p;
    size_t n, pos;
    size_t blk; /* offset of the classified block; SIZE_MAX: none yet */
    uint64_t sep, eq, quote, bs;
} sl_logfmt_iter;

void sl_logfmt_init(sl_logfmt_iter *it, const char *p, size_t n);

/* The next pair: 1 with *f filled (slices into the input), 0 at the end.
 * Types: SL_V_STRING; SL_V_ESCAPED for a quoted value holding backslash
 * escapes (Go strconv style, see sl_logfmt_unescape); SL_V_TRUE (value
 * "true") for a bare key. */
int sl_logfmt_next(sl_logfmt_iter *it, sl_field *f);

/* Fills up to cap fields of out; *count is the number of fields in the
 * line (it may exceed cap). 0, or SL_EPARSE when there is no key=value. */
int sl_logfmt_parse(const char *p, size_t n, sl_field *out, size_t cap, size_t *count);

/* Writes the unescaped value into dst (room for v.n bytes): \" \\ \/ \n \r
 * \t \b \f \a \v, \xHH and \uXXXX (surrogate pairs joined, invalid ones as
 * U+FFFD); an unknown escape keeps its character. Returns the length. */
size_t sl_logfmt_unescape(sl_slice v, char *dst);

/* Appends every pair of in to r. Escaped values that are valid JSON string
 * text (JSON's escapes only, surrogates paired, no control byte, valid
 * UTF-8) stay SL_V_ESCAPED, which the JSON writers copy as they are; others
 * (\x41, \', a lone surrogate, a trailing backslash, ...) are unescaped
 * into the batch arena as SL_V_STRING, which the writers escape. Either
 * way the value reads back as sl_logfmt_unescape decodes it. SL_EPARSE
 * (nothing appended) when there is no key=value. */
int sl_logfmt_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err);

#endif
