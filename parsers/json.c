/* Stage 2 of the JSON scanner and the public API: kernel dispatch, the
 * grammar walk over stage-1 tokens, field extraction, flattening (string
 * unescaping is core/json_str.c). See docs/decisions/0003-json-scanner.md.
 * One file over 800 lines because the walk is one hot loop: its helpers are
 * static and forced inline into walk_fields/walk_flat with the token cursor
 * kept in registers, which a split across translation units would undo. */
#include "parsers/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "core/utf8.h"
#include "parsers/json_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------- kernels */

static const char *const kernel_names[] = {"auto", "scalar", "sse42", "avx2", "neon", "avx512"};

const char *sl_json_kernel_name(int kernel)
{
    if (kernel < 0 || kernel >= (int)(sizeof kernel_names / sizeof *kernel_names)) return "?";
    return kernel_names[kernel];
}

int sl_json_kernel_parse(const char *name, int *kernel)
{
    for (int k = 0; k < (int)(sizeof kernel_names / sizeof *kernel_names); k++) {
        if (name && strcmp(name, kernel_names[k]) == 0) {
            *kernel = k;
            return 0;
        }
    }
    if (name && strcmp(name, "sse4.2") == 0) {
        *kernel = SL_JSON_SSE42;
        return 0;
    }
    return SL_EINVAL;
}

bool sl_json_kernel_supported(int kernel)
{
    switch (kernel) {
    case SL_JSON_SCALAR:
        return true;
#if defined(__x86_64__) && SL_JSON_SIMD
    case SL_JSON_SSE42:
    case SL_JSON_AVX2:
    case SL_JSON_AVX512:
        return sl_js1_x86_supported(kernel);
#endif
#if defined(__aarch64__) && SL_JSON_SIMD
    case SL_JSON_NEON:
        return true; /* Advanced SIMD is mandatory on AArch64 */
#endif
    default:
        return false;
    }
}

int sl_json_kernel_best(void)
{
    static const int order[] = {SL_JSON_AVX512, SL_JSON_AVX2, SL_JSON_NEON, SL_JSON_SSE42};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        if (sl_json_kernel_supported(order[i])) return order[i];
    return SL_JSON_SCALAR;
}

int sl_json_kernel_active(const sl_json_opts *o)
{
    if (o && o->kernel != SL_JSON_AUTO && sl_json_kernel_supported(o->kernel)) return o->kernel;
    return sl_json_kernel_best();
}

static sl_js1_fn kernel_fn(int kernel)
{
    switch (kernel) {
#if defined(__x86_64__) && SL_JSON_SIMD
    case SL_JSON_AVX512:
        return sl_js1_avx512;
    case SL_JSON_AVX2:
        return sl_js1_avx2;
    case SL_JSON_SSE42:
        return sl_js1_sse42;
#endif
#if defined(__aarch64__) && SL_JSON_SIMD
    case SL_JSON_NEON:
        return sl_js1_neon;
#endif
    default:
        return sl_js1_scalar;
    }
}

int sl_json_opts_init(sl_json_opts *o, sl_err *err)
{
    memset(o, 0, sizeof *o);
    o->max_depth = SL_JSON_DEFAULT_DEPTH;
    o->separator = '.';
    o->kernel = sl_json_kernel_best();
    const char *env = getenv("SLUICE_SIMD");
    if (!env || !*env) return 0;
    int k;
    if (sl_json_kernel_parse(env, &k) != 0)
        return sl_errf(
            err, SL_EINVAL,
            "SLUICE_SIMD=%s is not one of scalar, sse42, avx2, avx512, neon, auto; using %s", env,
            sl_json_kernel_name(o->kernel));
    if (k == SL_JSON_AUTO) return 0;
    if (!sl_json_kernel_supported(k))
        return sl_errf(err, SL_EINVAL, "SLUICE_SIMD=%s: kernel not supported here; using %s", env,
                       sl_json_kernel_name(o->kernel));
    o->kernel = k;
    return 0;
}

/* What sl_cfg_read fills from sl_json_keys. */
typedef struct json_conf {
    bool flatten;
    const char *separator;
    int64_t max_depth;
} json_conf;

const sl_cfg_key sl_json_keys[SL_JSON_NKEYS] = {
    {.name = "flatten",
     .at = SL_CFG_AT(json_conf, flatten),
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "nested objects become fields named with the separator (`a.b`)"},
    {.name = "separator",
     .at = SL_CFG_AT(json_conf, separator),
     .type = SL_KEY_STR,
     .def = ".",
     .doc = "one character joining flattened keys"},
    {.name = "max_depth",
     .at = SL_CFG_AT(json_conf, max_depth),
     .type = SL_KEY_INT,
     .def = "512",
     .min = 1,
     .max = SL_JSON_MAX_DEPTH,
     .doc = "nested arrays and objects allowed; deeper is a parse error"},
};

int sl_json_opts_from_cfg(sl_cfg *cfg, const sl_cfg_node *node, sl_json_opts *o)
{
    sl_json_opts_init(o, NULL);
    json_conf jc; /* no map (NULL or `json:`): the table's defaults */
    if (sl_cfg_read(cfg, node, sl_json_keys, SL_JSON_NKEYS, &jc)) return SL_EINVAL;
    if (strlen(jc.separator) != 1) {
        sl_cfg_error(cfg, sl_cfg_get(node, "separator"), "separator must be one character");
        return SL_EINVAL;
    }
    o->flatten = jc.flatten;
    o->max_depth = (uint32_t)jc.max_depth;
    o->separator = jc.separator[0];
    return 0;
}

/* --------------------------------------------------------------- walker */

typedef struct emitter {
    sl_field *out;
    size_t cap, n;
    bool full;
    sl_batch *b; /* parse_record: append to r in b */
    sl_record *r;
    sl_arena *arena; /* flattened keys */
    bool flatten;
    char sep;
    /* The flatten chain: chain[l] is the key (open and close quote
     * positions) under which the flattened object at depth l + 2 sits. */
    uint32_t chain_open[SL_JSON_FLATTEN_MAX + 1], chain_close[SL_JSON_FLATTEN_MAX + 1];
    bool chain_esc[SL_JSON_FLATTEN_MAX + 1];
    /* parse_record: whether the record's fields are the line (core/
     * record_tile.h). tight: the document validated with no whitespace
     * outside strings (stage 1 says so, set by run); then every top-level
     * token touches the next, so members emitted verbatim tile the line
     * and each byte between two is the separator the grammar puts there.
     * tile_bad: a field that is not a verbatim top-level member
     * (flattened keys). */
    bool tight, tile_bad;
} emitter;

typedef struct walker {
    const uint8_t *p;
    uint32_t n;
    uint32_t pos; /* next byte stage 1 classifies */
    sl_js1_fn s1;
    sl_js1_state st;
    const uint32_t *lim; /* end of the tokens in idx, between walker functions */
    int code;            /* failure: SL_EPARSE or SL_ENOMEM */
    uint32_t err_pos;
    const char *err_what;
    uint32_t idx[SL_JS1_WINDOW + SL_JS1_SLACK];
} walker;

/* Runs stage 1 over the next window(s) until it yields tokens; returns
 * how many are in idx. At the end of input (or after a stage-1 error, which
 * makes the document invalid whatever stage 2 says) the sentinel token n
 * repeats forever. */
static __attribute__((noinline)) uint32_t refill(walker *w)
{
    while (w->pos < w->n && !w->st.c.err) {
        uint32_t len = w->n - w->pos;
        bool last = len <= SL_JS1_WINDOW;
        if (!last) len = SL_JS1_WINDOW;
        uint32_t tn = (uint32_t)w->s1(w->p + w->pos, len, w->pos, last, &w->st, w->idx);
        w->pos += len;
        if (tn && !w->st.c.err) return tn;
    }
    w->pos = w->n;
    w->idx[0] = w->n;
    return 1;
}

/* The token cursor lives in locals of walk() (registers); NEXT refills. */
#define NEXT(t)                                                                                    \
    do {                                                                                           \
        if (__builtin_expect(cur == lim, 0)) {                                                     \
            uint32_t got_ = refill(w);                                                             \
            cur = w->idx;                                                                          \
            lim = cur + got_;                                                                      \
        }                                                                                          \
        (t) = *cur++;                                                                              \
    } while (0)

static inline uint8_t ch(const walker *w, uint32_t i)
{
    return i < w->n ? w->p[i] : 0;
}

/* Records a parse error at pos; returns SL_EPARSE. */
static int fail(walker *w, uint32_t pos, const char *what)
{
    w->code = SL_EPARSE;
    w->err_pos = pos;
    w->err_what = what;
    return SL_EPARSE;
}

/* What a walker function that failed returns: the code its failure
 * recorded (SL_EPARSE or SL_ENOMEM), never 0. */
static int failed_code(const walker *w)
{
    return w->code ? w->code : SL_EPARSE;
}

/* Bytes that may follow a number or literal: whitespace and structurals. */
static const uint8_t delim[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1,
    [']'] = 1, ['}'] = 1,  [':'] = 1,  ['['] = 1,  ['{'] = 1,
};

/* The \\u escapes of the string between quotes open and close (stage 1
 * validated the other escapes). Surrogates follow jansson: a high one must
 * be followed by \\u and a low one; a lone low one is an error. */
static __attribute__((noinline)) int check_unicode(walker *w, uint32_t open, uint32_t close)
{
    const uint8_t *p = w->p;
    uint32_t k = open + 1;
    while (k < close) {
        const uint8_t *bs = memchr(p + k, '\\', close - k);
        if (!bs) break;
        k = (uint32_t)(bs - p);
        if (p[k + 1] != 'u') {
            k += 2;
            continue;
        }
        int32_t v = sl_json_hex4((const char *)p + k + 2, close - (k + 2));
        if (v < 0) return fail(w, k, "invalid \\u escape");
        if (v >= 0xD800 && v <= 0xDBFF) {
            if ((size_t)k + 8 > close || p[k + 6] != '\\' || p[k + 7] != 'u')
                return fail(w, k, "high surrogate not followed by \\u");
            int32_t v2 = sl_json_hex4((const char *)p + k + 8, close - (k + 8));
            if (v2 < 0xDC00 || v2 > 0xDFFF) return fail(w, k, "invalid surrogate pair");
            k += 12;
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
            return fail(w, k, "lone low surrogate");
        } else {
            k += 6;
        }
    }
    return 0;
}

/* Records a parse error and leaves the walker function through its
 * `failed` label. */
#define FAIL(pos, what)                                                                            \
    do {                                                                                           \
        fail(w, (pos), (what));                                                                    \
        goto failed;                                                                               \
    } while (0)

/* The string opening at token open: sets close (its closing quote) and esc
 * (it holds escapes). A statement macro so the token cursor stays in
 * registers. */
#define SCAN_STRING(open, close, esc)                                                              \
    do {                                                                                           \
        uint32_t k_;                                                                               \
        NEXT(k_);                                                                                  \
        (close) = k_ & SL_JS_TOK_POS;                                                              \
        if (__builtin_expect((close) >= w->n, 0)) FAIL((open), "unterminated string");             \
        if (k_ & SL_JS_TOK_ESC) {                                                                  \
            (esc) = true;                                                                          \
            if ((k_ & SL_JS_TOK_UESC) && check_unicode(w, (open), (close))) goto failed;           \
        }                                                                                          \
    } while (0)

static inline bool digit(uint8_t c)
{
    return (unsigned)(c - '0') < 10;
}

/* Past the run of digits starting at j: eight bytes at a time while eight
 * are readable (no data-dependent loop for typical numbers). */
static inline uint32_t skip_digits(const uint8_t *p, uint32_t n, uint32_t j)
{
    while (j + 8 <= n) {
        uint64_t x;
        memcpy(&x, p + j, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap64(x);
#endif
        /* Per byte, nonzero unless it is '0'..'9' (no carries across bytes). */
        uint64_t nd =
            ((x & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL) |
            (((x & 0x0F0F0F0F0F0F0F0FULL) + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL);
        /* High bit of each nonzero byte. */
        uint64_t hi = ((nd & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | nd;
        hi &= 0x8080808080808080ULL;
        if (hi) return j + (uint32_t)(__builtin_ctzll(hi) >> 3);
        j += 8;
    }
    while (j < n && digit(p[j])) j++;
    return j;
}

/* Bit masks over the 16 bytes at p: digits, '.', and every byte that can
 * appear in a number (digits . e E + -). */
static inline __attribute__((always_inline)) void number_masks(const uint8_t *p, uint32_t *digits,
                                                               uint32_t *dots, uint32_t *numch)
{
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    /* Digits: v - '0' < 10 unsigned, as a signed compare after a bias. */
    __m128i d = _mm_cmplt_epi8(_mm_sub_epi8(v, _mm_set1_epi8((char)('0' + 0x80))),
                               _mm_set1_epi8((char)(10 + 0x80 - 0x100)));
    __m128i dot = _mm_cmpeq_epi8(v, _mm_set1_epi8('.'));
    __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    __m128i other = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(lower, _mm_set1_epi8('e')),
                                              _mm_cmpeq_epi8(v, _mm_set1_epi8('+'))),
                                 _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
    *digits = (uint32_t)_mm_movemask_epi8(d);
    *dots = (uint32_t)_mm_movemask_epi8(dot);
    *numch = *digits | *dots | (uint32_t)_mm_movemask_epi8(other);
#else
    uint32_t dg = 0, dt = 0, nc = 0;
    for (int k = 0; k < 16; k++) {
        uint8_t c = p[k];
        uint32_t isd = digit(c), isdot = c == '.';
        dg |= isd << k;
        dt |= isdot << k;
        nc |= (isd | isdot | ((c | 0x20) == 'e') | (c == '+') | (c == '-')) << k;
    }
    *digits = dg;
    *dots = dt;
    *numch = nc;
#endif
}

/* The common shapes, -?int and -?int.frac, with masks and no data-dependent
 * branches; 0 when the number needs the full grammar (exponents, errors,
 * fewer than 17 readable bytes, 16 or more bytes long). */
static inline __attribute__((always_inline)) uint32_t number_fast(const uint8_t *p, uint32_t n,
                                                                  uint32_t i)
{
    if ((size_t)i + 17 > n) return 0;
    uint32_t dg, dt, nc;
    number_masks(p + i, &dg, &dt, &nc);
    uint32_t len = (uint32_t)__builtin_ctz(~nc | 0x10000); /* first non-number byte */
    uint32_t all = (1u << len) - 1;
    uint32_t neg = p[i] == '-';
    uint32_t body = all & ~neg; /* the bytes after an optional '-' */
    uint32_t dots = dt & all;
    uint32_t first = neg; /* first digit */
    uint32_t lead0 = p[i + first] == '0';
    /* int: all digits, at least one, no leading zero unless alone. */
    bool int_ok = body && (dg & body) == body && (!lead0 || len == first + 1);
    /* decimal: one dot with digits on both sides, leading-zero rule before it. */
    uint32_t dpos = (uint32_t)__builtin_ctz(dots | 0x10000);
    bool one_dot = dots && !(dots & (dots - 1));
    bool dec_ok = one_dot && ((dg | dots) & body) == body && dpos > first && dpos + 1 < len &&
                  (!lead0 || dpos == first + 1);
    bool ok = (int_ok | dec_ok) & (delim[p[i + len]] != 0);
    return ok ? len : 0;
}

/* RFC 8259 number at i, the full grammar; *end = one past it. */
static __attribute__((noinline)) int scan_number_slow(walker *w, uint32_t i, uint32_t *end)
{
    const uint8_t *p = w->p;
    uint32_t n = w->n, j = i;
    if (p[j] == '-') j++;
    if (j >= n) return fail(w, i, "invalid number");
    if (p[j] == '0') {
        j++;
    } else if (digit(p[j])) {
        j = skip_digits(p, n, j + 1);
    } else {
        return fail(w, i, "invalid number");
    }
    if (j < n && p[j] == '.') {
        j++;
        if (j >= n || !digit(p[j])) return fail(w, i, "invalid number");
        j = skip_digits(p, n, j + 1);
    }
    if (j < n && (p[j] | 0x20) == 'e') {
        j++;
        if (j < n && (p[j] == '+' || p[j] == '-')) j++;
        if (j >= n || !digit(p[j])) return fail(w, i, "invalid number");
        j = skip_digits(p, n, j + 1);
    }
    if (j < n && !delim[p[j]]) return fail(w, i, "invalid number");
    *end = j;
    return 0;
}

static inline __attribute__((always_inline)) int scan_number(walker *w, uint32_t i, uint32_t *end)
{
    uint32_t fast = number_fast(w->p, w->n, i);
    if (__builtin_expect(fast != 0, 1)) {
        *end = i + fast;
        return 0;
    }
    return scan_number_slow(w, i, end);
}

/* lit is 4 bytes ("true", "null", "alse" of false at i + 1). */
static inline int scan_literal(walker *w, uint32_t i, const char *lit, uint32_t len)
{
    if ((size_t)i + len > w->n || memcmp(w->p + i, lit, len) != 0 ||
        ((size_t)i + len < w->n && !delim[w->p[i + len]]))
        return fail(w, i, "invalid literal");
    return 0;
}

/* Writes the flatten chain's keys (levels 0..levels-1) and, when last_open
 * is set, one more key, unescaped and joined by the separator, into the
 * arena. */
static int joined_key(walker *w, emitter *e, uint32_t levels, uint32_t last_open,
                      uint32_t last_close, bool has_last, sl_slice *out)
{
    size_t len = 0;
    for (uint32_t l = 0; l < levels; l++) len += e->chain_close[l] - e->chain_open[l];
    if (has_last) len += last_close - last_open;
    char *dst = e->arena ? sl_arena_alloc(e->arena, len + 1) : NULL;
    if (!dst) {
        w->code = SL_ENOMEM;
        w->err_what = "arena exhausted by flattened keys";
        return SL_ENOMEM;
    }
    size_t o = 0;
    for (uint32_t l = 0; l <= levels; l++) {
        uint32_t a, z;
        bool esc;
        if (l < levels) {
            a = e->chain_open[l] + 1;
            z = e->chain_close[l];
            esc = e->chain_esc[l];
        } else if (has_last) {
            a = last_open + 1;
            z = last_close;
            esc = true;
        } else {
            break;
        }
        if (o) dst[o++] = e->sep;
        if (esc) {
            ptrdiff_t m = sl_json_unescape((const char *)w->p + a, z - a, dst + o, len + 1 - o);
            if (m < 0) return fail(w, a, "internal: unescape");
            o += (size_t)m;
        } else {
            memcpy(dst + o, w->p + a, z - a);
            o += z - a;
        }
    }
    dst[o] = '\0';
    *out = (sl_slice){dst, o};
    return 0;
}

/* One field of the object at the emission depth (any case). */
static __attribute__((noinline)) int emit_slow(walker *w, emitter *e, uint32_t depth,
                                               uint32_t kopen, uint32_t kclose, bool kesc,
                                               sl_slice val, int type)
{
    sl_slice key = {(const char *)w->p + kopen + 1, kclose - kopen - 1};
    /* Only a record's fields carry SL_FF_VERBATIM (core/record.h): the
     * caller-array API has no encoder after it that looks. */
    uint8_t flags = (uint8_t)((kesc ? SL_FF_KEY_ESCAPED : 0) | (e->b ? SL_FF_VERBATIM : 0));
    if (depth > 1) {
        int rc = joined_key(w, e, depth - 1, kopen, kclose, true, &key);
        if (rc != 0) return rc;
        flags = 0;
        e->tile_bad = true;
    }
    if (e->b) {
        sl_field *f = sl_record_add_field(e->b, e->r, key, val, type);
        if (!f) {
            w->code = SL_ENOMEM;
            w->err_what = "batch arena exhausted by fields";
            return SL_ENOMEM;
        }
        f->flags = flags;
    } else if (e->n < e->cap) {
        e->out[e->n++] = (sl_field){key, val, (uint8_t)type, flags};
    } else {
        e->full = true;
    }
    return 0;
}

/* The common case inline: a top-level field into the caller's array. */
static inline int emit(walker *w, emitter *e, uint32_t depth, uint32_t kopen, uint32_t kclose,
                       bool kesc, sl_slice val, int type)
{
    if (__builtin_expect(depth == 1 && !e->b && e->n < e->cap, 1)) {
        sl_field *f = &e->out[e->n++];
        f->key = (sl_slice){(const char *)w->p + kopen + 1, kclose - kopen - 1};
        f->val = val;
        f->type = (uint8_t)type;
        f->flags = kesc ? SL_FF_KEY_ESCAPED : 0;
        return 0;
    }
    return emit_slow(w, e, depth, kopen, kclose, kesc, val, type);
}

/* Validates one value whose first token i was just taken; depth0
 * containers enclose it. Returns the cursor past the value's last token
 * (w->lim follows it) and *endp = one past its text, or NULL. */
static const uint32_t *walk_value(walker *w, const uint32_t *cur, uint32_t i, uint32_t depth0,
                                  uint32_t max_depth, uint32_t *endp)
{
    uint64_t kinds[SL_JSON_MAX_DEPTH / 64 + 1]; /* bit set: object at that depth */
    const uint32_t *lim = w->lim;
    uint32_t depth = depth0, end = 0, close;
    bool esc;

value:
    switch (ch(w, i)) {
    case '{':
        if (++depth > max_depth) FAIL(i, "nesting too deep");
        kinds[depth / 64] |= 1ULL << (depth % 64);
        NEXT(i);
        if (ch(w, i) == '}') goto close;
        goto key;
    case '[':
        if (++depth > max_depth) FAIL(i, "nesting too deep");
        kinds[depth / 64] &= ~(1ULL << (depth % 64));
        NEXT(i);
        if (ch(w, i) == ']') goto close;
        goto value;
    case '"':
        SCAN_STRING(i, end, esc);
        end++;
        goto after_value;
    case 't':
        if (scan_literal(w, i, "true", 4)) goto failed;
        end = i + 4;
        goto after_value;
    case 'f':
        if (scan_literal(w, i, "false", 5)) goto failed;
        end = i + 5;
        goto after_value;
    case 'n':
        if (scan_literal(w, i, "null", 4)) goto failed;
        end = i + 4;
        goto after_value;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        if (scan_number(w, i, &end)) goto failed;
        goto after_value;
    default:
        FAIL(i, i >= w->n ? "unexpected end of input" : "unexpected character");
    }

key:
    if (ch(w, i) != '"') FAIL(i, i >= w->n ? "unexpected end of input" : "expected a key");
    SCAN_STRING(i, close, esc);
    NEXT(i);
    if (ch(w, i) != ':') FAIL(i, "expected ':'");
    NEXT(i);
    goto value;

after_value:
    if (depth == depth0) {
        w->lim = lim;
        *endp = end;
        return cur;
    }
    NEXT(i);
    if (kinds[depth / 64] & (1ULL << (depth % 64))) {
        if (ch(w, i) == ',') {
            NEXT(i);
            goto key;
        }
        if (ch(w, i) == '}') goto close;
        FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or '}'");
    }
    if (ch(w, i) == ',') {
        NEXT(i);
        goto value;
    }
    if (ch(w, i) == ']') goto close;
    FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or ']'");

close:
    depth--;
    end = i + 1;
    goto after_value;

failed:
    (void)close;
    (void)esc; /* string values are not reported here */
    w->lim = lim;
    return NULL;
}

/* After the value: only whitespace, and no stage-1 error anywhere. */
static int walk_end(walker *w, const uint32_t *cur)
{
    const uint32_t *lim = w->lim;
    uint32_t i;
    NEXT(i);
    if (i < w->n) FAIL(i, "trailing characters after the value");
    if (w->st.c.err) FAIL(w->n, "stage 1");
    return 0;
failed:
    return failed_code(w);
}

static int walk_validate(walker *w, uint32_t max_depth)
{
    const uint32_t *cur = w->idx, *lim = w->idx;
    uint32_t i, end;
    NEXT(i);
    w->lim = lim;
    cur = walk_value(w, cur, i, 0, max_depth, &end);
    return cur ? walk_end(w, cur) : failed_code(w);
}

/* A value inside a depth-2 container of walk_fields, whose first token is
 * i: scalars checked inline, containers through walk_value. */
#define NESTED_VALUE(i)                                                                            \
    do {                                                                                           \
        uint32_t e_;                                                                               \
        bool x_ = false;                                                                           \
        switch (ch(w, (i))) {                                                                      \
        case '"':                                                                                  \
            SCAN_STRING((i), e_, x_);                                                              \
            break;                                                                                 \
        case '{':                                                                                  \
        case '[':                                                                                  \
            w->lim = lim;                                                                          \
            cur = walk_value(w, cur, (i), 2, max_depth, &e_);                                      \
            if (!cur) goto failed;                                                                 \
            lim = w->lim;                                                                          \
            break;                                                                                 \
        case 't':                                                                                  \
            if (scan_literal(w, (i), "true", 4)) goto failed;                                      \
            break;                                                                                 \
        case 'f':                                                                                  \
            if (scan_literal(w, (i), "false", 5)) goto failed;                                     \
            break;                                                                                 \
        case 'n':                                                                                  \
            if (scan_literal(w, (i), "null", 4)) goto failed;                                      \
            break;                                                                                 \
        case '-':                                                                                  \
        case '0':                                                                                  \
        case '1':                                                                                  \
        case '2':                                                                                  \
        case '3':                                                                                  \
        case '4':                                                                                  \
        case '5':                                                                                  \
        case '6':                                                                                  \
        case '7':                                                                                  \
        case '8':                                                                                  \
        case '9':                                                                                  \
            if (scan_number(w, (i), &e_)) goto failed;                                             \
            break;                                                                                 \
        default:                                                                                   \
            FAIL((i), (i) >= w->n ? "unexpected end of input" : "unexpected character");           \
        }                                                                                          \
        (void)x_;                                                                                  \
    } while (0)

/* The top-level object's fields, without flattening: the hot path of the
 * parse step, one loop per field. */
static int walk_fields(walker *w, uint32_t max_depth, emitter *e)
{
    const uint32_t *cur = w->idx, *lim = w->idx;
    uint32_t i, kopen, kclose, end;
    NEXT(i);
    if (ch(w, i) != '{') FAIL(i, i >= w->n ? "empty input" : "top-level value is not an object");
    if (max_depth < 1) FAIL(i, "nesting too deep");
    NEXT(i);
    if (ch(w, i) != '}') {
        for (;;) {
            bool kesc = false, esc = false;
            if (ch(w, i) != '"') FAIL(i, i >= w->n ? "unexpected end of input" : "expected a key");
            kopen = i;
            SCAN_STRING(i, kclose, kesc);
            NEXT(i);
            if (ch(w, i) != ':') FAIL(i, "expected ':'");
            NEXT(i);
            sl_slice val;
            int type;
            switch (ch(w, i)) {
            case '"':
                SCAN_STRING(i, end, esc);
                val = (sl_slice){(const char *)w->p + i + 1, end - i - 1};
                type = esc ? SL_V_ESCAPED : SL_V_STRING;
                break;
            case '[': {
                /* Shallow containers inline; deeper ones through walk_value. */
                uint32_t open = i;
                if (max_depth < 2) FAIL(i, "nesting too deep");
                NEXT(i);
                if (ch(w, i) != ']') {
                    for (;;) {
                        NESTED_VALUE(i);
                        NEXT(i);
                        if (ch(w, i) == ',') {
                            NEXT(i);
                            continue;
                        }
                        if (ch(w, i) == ']') break;
                        FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or ']'");
                    }
                }
                val = (sl_slice){(const char *)w->p + open, i + 1 - open};
                type = SL_V_ARRAY;
                break;
            }
            case '{': {
                uint32_t open = i;
                if (max_depth < 2) FAIL(i, "nesting too deep");
                NEXT(i);
                if (ch(w, i) != '}') {
                    for (;;) {
                        if (ch(w, i) != '"')
                            FAIL(i, i >= w->n ? "unexpected end of input" : "expected a key");
                        uint32_t kc;
                        bool ke = false;
                        SCAN_STRING(i, kc, ke);
                        (void)ke;
                        NEXT(i);
                        if (ch(w, i) != ':') FAIL(i, "expected ':'");
                        NEXT(i);
                        NESTED_VALUE(i);
                        NEXT(i);
                        if (ch(w, i) == ',') {
                            NEXT(i);
                            continue;
                        }
                        if (ch(w, i) == '}') break;
                        FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or '}'");
                    }
                }
                val = (sl_slice){(const char *)w->p + open, i + 1 - open};
                type = SL_V_OBJECT;
                break;
            }
            case 't':
                if (scan_literal(w, i, "true", 4)) goto failed;
                val = (sl_slice){(const char *)w->p + i, 4};
                type = SL_V_TRUE;
                break;
            case 'f':
                if (scan_literal(w, i, "false", 5)) goto failed;
                val = (sl_slice){(const char *)w->p + i, 5};
                type = SL_V_FALSE;
                break;
            case 'n':
                if (scan_literal(w, i, "null", 4)) goto failed;
                val = (sl_slice){(const char *)w->p + i, 4};
                type = SL_V_NULL;
                break;
            case '-':
            case '0':
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case '7':
            case '8':
            case '9':
                if (scan_number(w, i, &end)) goto failed;
                val = (sl_slice){(const char *)w->p + i, end - i};
                type = SL_V_NUMBER;
                break;
            default:
                FAIL(i, i >= w->n ? "unexpected end of input" : "unexpected character");
            }
            if (emit(w, e, 1, kopen, kclose, kesc, val, type)) goto failed;
            NEXT(i);
            if (ch(w, i) == ',') {
                NEXT(i);
                continue;
            }
            if (ch(w, i) == '}') break;
            FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or '}'");
        }
    }
    w->lim = lim;
    return walk_end(w, cur);
failed:
    return failed_code(w);
}

/* The flattening walker: validates the document and reports the fields
 * of the top-level object and of objects nested in it through objects. */
static int walk_flat(walker *w, uint32_t max_depth, emitter *e)
{
    uint64_t kinds[SL_JSON_MAX_DEPTH / 64 + 1]; /* bit set: object at that depth */
    uint32_t depth = 0;
    /* The depth whose fields are reported (never, without e). */
    uint32_t edepth = e ? 1 : UINT32_MAX;
    uint32_t flat_max = e && e->flatten ? SL_JSON_FLATTEN_MAX : 1;
    uint32_t kopen = 0, kclose = 0, vstart = 0, end = 0;
    bool kesc = false, chain_empty = false;
    sl_slice val;
    int type;

    const uint32_t *cur = w->idx, *lim = w->idx;
    uint32_t i;
    NEXT(i);
    if (e && ch(w, i) != '{') {
        if (i >= w->n) FAIL(i, "empty input");
        FAIL(i, "top-level value is not an object");
    }

value:
    switch (ch(w, i)) {
    case '{':
        if (++depth > max_depth) FAIL(i, "nesting too deep");
        kinds[depth / 64] |= 1ULL << (depth % 64);
        if (depth - 1 == edepth && edepth < flat_max) {
            /* Flatten: this object's fields are reported under its key. */
            e->chain_open[edepth - 1] = kopen;
            e->chain_close[edepth - 1] = kclose;
            e->chain_esc[edepth - 1] = kesc;
            edepth = depth;
            chain_empty = true;
        }
        NEXT(i);
        if (ch(w, i) == '}') goto close;
        goto key;
    case '[':
        if (++depth > max_depth) FAIL(i, "nesting too deep");
        kinds[depth / 64] &= ~(1ULL << (depth % 64));
        NEXT(i);
        if (ch(w, i) == ']') goto close;
        goto value;
    case '"': {
        bool esc = false;
        SCAN_STRING(i, end, esc);
        val = (sl_slice){(const char *)w->p + i + 1, end - i - 1};
        type = esc ? SL_V_ESCAPED : SL_V_STRING;
        goto scalar_done;
    }
    case 't':
        if (scan_literal(w, i, "true", 4)) goto failed;
        val = (sl_slice){(const char *)w->p + i, 4};
        type = SL_V_TRUE;
        goto scalar_done;
    case 'f':
        if (scan_literal(w, i, "false", 5)) goto failed;
        val = (sl_slice){(const char *)w->p + i, 5};
        type = SL_V_FALSE;
        goto scalar_done;
    case 'n':
        if (scan_literal(w, i, "null", 4)) goto failed;
        val = (sl_slice){(const char *)w->p + i, 4};
        type = SL_V_NULL;
        goto scalar_done;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        if (scan_number(w, i, &end)) goto failed;
        val = (sl_slice){(const char *)w->p + i, end - i};
        type = SL_V_NUMBER;
        goto scalar_done;
    default:
        FAIL(i, i >= w->n ? "unexpected end of input" : "unexpected character");
    }

key:
    if (ch(w, i) != '"') FAIL(i, i >= w->n ? "unexpected end of input" : "expected a key");
    {
        bool esc = false;
        uint32_t close;
        SCAN_STRING(i, close, esc);
        if (depth == edepth) {
            kopen = i;
            kclose = close;
            kesc = esc;
            chain_empty = false;
        }
    }
    NEXT(i);
    if (ch(w, i) != ':') FAIL(i, "expected ':'");
    NEXT(i);
    if (depth == edepth) vstart = i;
    goto value;

scalar_done:
    if (depth == edepth && emit(w, e, edepth, kopen, kclose, kesc, val, type)) goto failed;

after_value:
    if (depth == 0) goto done;
    NEXT(i);
    if (kinds[depth / 64] & (1ULL << (depth % 64))) {
        if (ch(w, i) == ',') {
            NEXT(i);
            goto key;
        }
        if (ch(w, i) == '}') goto close;
        FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or '}'");
    }
    if (ch(w, i) == ',') {
        NEXT(i);
        goto value;
    }
    if (ch(w, i) == ']') goto close;
    FAIL(i, i >= w->n ? "unexpected end of input" : "expected ',' or ']'");

close:
    if (depth == edepth && depth > 1) {
        /* A flattened object ends; an empty one is kept as its raw `{}`. */
        edepth--;
        depth--;
        if (chain_empty) {
            val = (sl_slice){(const char *)w->p + vstart, i + 1 - vstart};
            sl_slice k;
            if (joined_key(w, e, edepth, 0, 0, false, &k)) goto failed;
            /* joined_key built every level; report it as an unescaped key. */
            if (e->b) {
                e->tile_bad = true; /* a joined key: not the line's text */
                sl_field *f = sl_record_add_field(e->b, e->r, k, val, SL_V_OBJECT);
                if (!f) {
                    w->code = SL_ENOMEM;
                    w->err_what = "batch arena exhausted by fields";
                    goto failed;
                }
            } else if (e->n < e->cap) {
                e->out[e->n++] = (sl_field){k, val, SL_V_OBJECT, 0};
            } else {
                e->full = true;
            }
        }
        chain_empty = false;
        /* Restore the parent's key, which later keys at this level reuse. */
        kopen = e->chain_open[edepth - 1];
        kclose = e->chain_close[edepth - 1];
        kesc = e->chain_esc[edepth - 1];
        goto after_value;
    }
    depth--;
    if (depth == edepth) {
        bool obj = w->p[i] == '}';
        val = (sl_slice){(const char *)w->p + vstart, i + 1 - vstart};
        if (emit(w, e, edepth, kopen, kclose, kesc, val, obj ? SL_V_OBJECT : SL_V_ARRAY))
            goto failed;
    }
    goto after_value;

done:
    NEXT(i);
    if (i < w->n) FAIL(i, "trailing characters after the value");
    if (w->st.c.err) FAIL(w->n, "stage 1");
    return 0;
failed:
    return failed_code(w);
}

/* ------------------------------------------------------------------ API */

/* Where stage 1 found its error, for the message (error path only). */
static void stage1_message(const walker *w, sl_err *err)
{
    const char *p = (const char *)w->p;
    if (w->st.c.err & SL_JS1_ERR_UTF8) {
        sl_errf(err, SL_EPARSE, "invalid UTF-8 at byte %zu", sl_utf8_valid_prefix(p, w->n));
        return;
    }
    bool in = false;
    for (uint32_t i = 0; i < w->n; i++) {
        uint8_t c = w->p[i];
        if (c == '\\') {
            if (i + 1 >= w->n || !strchr("\"\\/bfnrtu", w->p[i + 1]) || !w->p[i + 1]) {
                sl_errf(err, SL_EPARSE, "invalid escape at byte %u", i);
                return;
            }
            i++;
        } else if (c == '"') {
            in = !in;
        } else if (in && c < 0x20) {
            sl_errf(err, SL_EPARSE, "control character 0x%02x in a string at byte %u", c, i);
            return;
        }
    }
    sl_errf(err, SL_EPARSE, "invalid JSON");
}

static int run(const char *p, size_t n, const sl_json_opts *o, emitter *e, sl_err *err)
{
    if ((!p && n) || n > SL_JSON_MAX_INPUT) return sl_errf(err, SL_EINVAL, "bad JSON input");
    uint32_t max_depth = o && o->max_depth ? o->max_depth : SL_JSON_DEFAULT_DEPTH;
    if (max_depth > SL_JSON_MAX_DEPTH)
        return sl_errf(err, SL_EINVAL, "max_depth above %d", SL_JSON_MAX_DEPTH);
    walker w;
    w.p = (const uint8_t *)(p ? p : "");
    w.n = (uint32_t)n;
    w.pos = 0;
    w.s1 = kernel_fn(sl_json_kernel_active(o));
    /* Kernels zero their vector state themselves on the first window. */
    w.st.c = (sl_js_carry){0};
    w.st.utf8_need = 0;
    w.st.utf8_lo = w.st.utf8_hi = 0;
    w.code = 0;
    int rc = !e           ? walk_validate(&w, max_depth)
             : e->flatten ? walk_flat(&w, max_depth, e)
                          : walk_fields(&w, max_depth, e);
    if (rc == 0) {
        /* Valid, so stage 1 classified every byte; the last block's bits
         * past n are its padding. */
        uint32_t tail = w.n % 64;
        uint64_t ws = w.st.c.ws_before | (w.st.c.ws_last & (tail ? (1ULL << tail) - 1 : ~0ULL));
        if (e) e->tight = w.pos >= w.n && ws == 0;
        return 0;
    }
    if (w.code == SL_ENOMEM) return sl_errf(err, SL_ENOMEM, "%s", w.err_what);
    if (w.st.c.err) {
        stage1_message(&w, err);
        return SL_EPARSE;
    }
    return sl_errf(err, SL_EPARSE, "%s at byte %u", w.err_what, w.err_pos);
}

int sl_json_validate(const char *p, size_t n, const sl_json_opts *o, sl_err *err)
{
    return run(p, n, o, NULL, err);
}

int sl_json_fields_arena(const char *p, size_t n, const sl_json_opts *o, sl_arena *arena,
                         sl_field *out, size_t cap, size_t *nout, sl_err *err)
{
    emitter e;
    e.out = out;
    e.cap = out ? cap : 0;
    e.n = 0;
    e.full = false;
    e.b = NULL;
    e.r = NULL;
    e.arena = arena;
    e.flatten = o && o->flatten;
    e.sep = o && o->separator ? o->separator : '.';
    e.tight = e.tile_bad = false;
    *nout = 0;
    if (e.flatten && !arena)
        return sl_errf(err, SL_EINVAL, "flattening needs an arena (sl_json_fields_arena)");
    int rc = run(p, n, o, &e, err);
    if (rc != 0) return rc;
    *nout = e.n;
    if (e.full) return sl_errf(err, SL_EFULL, "more than %zu fields", cap);
    return 0;
}

int sl_json_fields(const char *p, size_t n, const sl_json_opts *o, sl_field *out, size_t cap,
                   size_t *nout, sl_err *err)
{
    return sl_json_fields_arena(p, n, o, NULL, out, cap, nout, err);
}

int sl_json_parse_record(sl_batch *b, sl_record *r, const sl_json_opts *o, sl_err *err)
{
    emitter e;
    e.out = NULL;
    e.cap = e.n = 0;
    e.full = false;
    e.b = b;
    e.r = r;
    e.arena = &b->arena;
    e.flatten = o && o->flatten;
    e.sep = o && o->separator ? o->separator : '.';
    e.tight = e.tile_bad = false;
    uint32_t before = r->nfields;
    int rc = run(r->line.p, r->line.n, o, &e, err);
    if (rc != 0) {
        r->nfields = before;
        return rc;
    }
    /* run succeeded only if stage 1 found no invalid UTF-8 in all n bytes. */
    r->flags |= SL_RF_LINE_UTF8;
    /* The fields are the line (core/record.h): all of them this parse's,
     * verbatim, with no whitespace between them (or none, and the line
     * "{}"). Adding the fields cleared the flag (sl_record_add_field). */
    bool tiles = e.tight && !e.tile_bad;
    if (before == 0 && tiles) r->flags |= SL_RF_FIELDS_LINE;
    return 0;
}
