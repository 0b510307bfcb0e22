/* The regex parse step: PCRE2 (8-bit) compiled with the JIT when it is
 * available; named groups become fields. A compiled sl_regex owns one
 * match data block, match context and JIT stack, reused by every match:
 * it belongs to one thread (the input's), like the chain that holds it. */
#ifndef SLUICE_PARSERS_REGEX_H
#define SLUICE_PARSERS_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/record.h"

typedef struct sl_regex_opts {
    uint32_t match_limit; /* 0: 1,000,000 (pcre2_set_match_limit, JIT too) */
    uint32_t depth_limit; /* 0: 10,000 (interpreter backtracking depth) */
    size_t jit_stack_max; /* 0: 1 MiB */
    bool utf;             /* PCRE2_UTF | PCRE2_MATCH_INVALID_UTF (never unsafe on bad UTF-8) */
    bool no_jit;          /* interpreter only (tests, benchmarks) */
} sl_regex_opts;

typedef struct sl_regex sl_regex;

/* Compiles pattern[0..len). Errors name the offset in the pattern. */
int sl_regex_new(const char *pattern, size_t len, const sl_regex_opts *o, sl_regex **out,
                 sl_err *err);
/* Built-in patterns: nginx_combined, apache_combined (common-format lines
 * too), apache_common, vhost_combined, apache_error, nginx_error (see
 * decisions 0004 and 0019 for their groups). A time_local field also sets
 * the record's time in sl_regex_parse_record; the error logs' `time` is
 * local time without a zone, left to a timestamp step. SL_ENOENT for an
 * unknown name. */
int sl_regex_builtin(const char *name, const sl_regex_opts *o, sl_regex **out, sl_err *err);
/* The pattern text of a built-in (the strict one), or NULL. */
const char *sl_regex_builtin_pattern(const char *name);
void sl_regex_free(sl_regex *re);

/* Distinct group names (over all of a built-in's alternatives). */
size_t sl_regex_nnames(const sl_regex *re);
bool sl_regex_jitted(const sl_regex *re);

/* Matches p[0..n). On a match writes the set named groups, in pattern
 * order, into out (at most cap, slices into p, SL_V_STRING) and returns
 * how many; unset groups are skipped. SL_EPARSE when nothing matches or a
 * limit (match, depth, JIT stack) is hit; the message says which. */
int sl_regex_match(sl_regex *re, const char *p, size_t n, sl_field *out, size_t cap, sl_err *err);

/* The fixed-layout form for hot loops: sl_regex_fields_init() writes one
 * field per distinct name into out (keys, types) and returns how many;
 * each sl_regex_exec() then rewrites only the values, val.p NULL for a
 * group that did not take part. cap must cover sl_regex_nnames(). 0,
 * SL_EPARSE as sl_regex_match, SL_EINVAL when cap is too small. */
size_t sl_regex_fields_init(const sl_regex *re, sl_field *out, size_t cap);
int sl_regex_exec(sl_regex *re, const char *p, size_t n, sl_field *out, size_t cap, sl_err *err);

/* Matches in and appends the named groups that took part to r (one field
 * per distinct name); built-ins also set r->time_ns from time_local.
 * SL_EPARSE leaves r untouched. */
int sl_regex_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_regex *re, sl_err *err);

#endif
