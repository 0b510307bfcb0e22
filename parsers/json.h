/* The JSON parse step: an on-demand scanner for one log line.
 *
 * Stage 1 classifies the input 64 bytes at a time into bitmasks (quotes,
 * escapes, structural characters, string interiors, starts of scalars) and
 * validates UTF-8 and control characters; it is a SIMD kernel (AVX-512,
 * AVX2 or SSE4.2 on x86-64, NEON on arm64) or the portable scalar one. Stage 2 walks
 * the resulting token positions, validating the whole document against the
 * JSON grammar (RFC 8259), and reports the top-level fields of an object as
 * slices into the input: nothing is copied or unescaped unless asked.
 *
 * Every function reads only p[0..n): no padding or terminator is needed. */
#ifndef SLUICE_PARSERS_JSON_H
#define SLUICE_PARSERS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json_str.h" /* sl_json_unescape, for the steps reading escaped fields */
#include "core/record.h"

#define SL_JSON_DEFAULT_DEPTH 512
#define SL_JSON_MAX_DEPTH     16384 /* largest accepted max_depth */
#define SL_JSON_FLATTEN_MAX   32    /* objects deeper than this stay raw when flattening */
#define SL_JSON_MAX_INPUT     (((size_t)1 << 30) - 64) /* positions are 30-bit */

/* Stage-1 kernels. */
enum sl_json_kernel {
    SL_JSON_AUTO = 0, /* the best one this CPU supports */
    SL_JSON_SCALAR,
    SL_JSON_SSE42,
    SL_JSON_AVX2,
    SL_JSON_NEON,
    SL_JSON_AVX512, /* AVX-512 BW + VBMI2 (Ice Lake, Zen 4 and later) */
};

typedef struct sl_json_opts {
    uint32_t max_depth; /* nested arrays/objects allowed; 0 = SL_JSON_DEFAULT_DEPTH */
    int kernel;         /* enum sl_json_kernel; SL_JSON_AUTO = best supported */
    bool flatten;       /* nested objects become `a.b` fields (keys built in an arena) */
    char separator;     /* flatten key separator; 0 = '.' */
} sl_json_opts;

/* Defaults, with the kernel chosen from $SLUICE_SIMD (scalar|sse42|avx2|
 * avx512|neon|auto) when set, else the best the CPU supports. An unknown or unsupported
 * value falls back to the best kernel and returns SL_EINVAL with a message
 * saying so (o is usable either way). */
int sl_json_opts_init(sl_json_opts *o, sl_err *err);

/* Reads a `json:` step's map (NULL = defaults): `flatten` (bool),
 * `separator` (one character), `max_depth` (1..SL_JSON_MAX_DEPTH). Errors
 * go to cfg with positions; returns 0 or SL_EINVAL. Calls sl_json_opts_init first
 * (an unusable $SLUICE_SIMD is not a configuration error). */
int sl_json_opts_from_cfg(sl_cfg *cfg, const sl_cfg_node *node, sl_json_opts *o);
/* The keys of that map, for the step's table (parsers/step_json.c). */
#define SL_JSON_NKEYS 3
extern const sl_cfg_key sl_json_keys[SL_JSON_NKEYS];

/* Kernel selection. */
const char *sl_json_kernel_name(int kernel); /* "scalar", "sse42", ...; "?" when unknown */
/* Kernel by name (as in $SLUICE_SIMD); SL_EINVAL for an unknown name. */
int sl_json_kernel_parse(const char *name, int *kernel);
bool sl_json_kernel_supported(int kernel); /* built in and supported by this CPU */
int sl_json_kernel_best(void);             /* what SL_JSON_AUTO resolves to */
/* The kernel a call with o would use (o may be NULL): o->kernel when
 * supported, otherwise the best one. */
int sl_json_kernel_active(const sl_json_opts *o);

/* Validates any JSON value (object, array, string, number, literal),
 * surrounded by optional whitespace. o may be NULL. 0 or SL_EPARSE
 * (SL_EINVAL for bad options or an input over SL_JSON_MAX_INPUT). */
int sl_json_validate(const char *p, size_t n, const sl_json_opts *o, sl_err *err);

/* Validates p[0..n), which must be one object, and stores its top-level
 * fields in out[0..cap) in document order (duplicates kept; later ones win
 * in lookups). Keys and string values are the raw bytes between the quotes
 * (SL_V_ESCAPED / SL_FF_KEY_ESCAPED when they hold escapes); nested arrays
 * and objects are their raw text, fully validated. *nout = fields stored.
 * SL_EPARSE when invalid or not an object, SL_EFULL (valid document, first
 * cap fields stored) when it has more than cap fields. With o->flatten,
 * sl_json_fields_arena must be used (SL_EINVAL here). */
int sl_json_fields(const char *p, size_t n, const sl_json_opts *o, sl_field *out, size_t cap,
                   size_t *nout, sl_err *err);
/* The same; with o->flatten, nested objects' fields are reported with joined
 * keys (`a.b.c`, unescaped, built in arena) and an empty nested object as its
 * own raw `{}` value. Objects inside arrays, or deeper than
 * SL_JSON_FLATTEN_MAX, stay raw. SL_ENOMEM when the arena is exhausted. */
int sl_json_fields_arena(const char *p, size_t n, const sl_json_opts *o, sl_arena *arena,
                         sl_field *out, size_t cap, size_t *nout, sl_err *err);

/* The parse step: parses r->line (one object) and appends its fields with
 * sl_record_add_field (flattened keys in b->arena). On any error the record
 * is left as it was (no fields added) and SL_EPARSE (or SL_ENOMEM for the
 * arena bound) is returned; marking and counting the failure is the
 * caller's job. On success SL_RF_LINE_UTF8 is set, and SL_RF_FIELDS_LINE
 * when the record had no field before, none is a flattened key and the
 * line has no whitespace outside strings: the new fields are the line byte
 * for byte (core/record.h). A caller that changes a field afterwards
 * outside the chain clears it. */
int sl_json_parse_record(sl_batch *b, sl_record *r, const sl_json_opts *o, sl_err *err);

#endif
