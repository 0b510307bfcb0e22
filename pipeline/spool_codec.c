/* The spool's batch codec: a batch to the bytes of an entry's payload
 * (before compression) and back. Apart from the files and locks of
 * spool.c because it is a pure function of its input, and the part the
 * fuzzer reaches most. */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "parsers/json.h"
#include "pipeline/spool_codec.h"

/* Bounds that reject a payload before it is allocated for. */
#define DECODE_ARENA_MAX ((size_t)512 << 20)
/* Smallest serialised record: time, flags, field count, line length. */
#define MIN_RECORD_BYTES 20
/* Smallest serialised field or label: two lengths, type, flags. */
#define MIN_FIELD_BYTES 10
#define NULL_STR        0xffffffffu
/* A length with this bit is a slice of the record's line: u32 offset follows. */
#define REF_STR 0x80000000u
/* Field flags an entry keeps (decision 0054): the parser's SL_FF_VERBATIM
 * promise and bits this version does not know are cleared; SL_FF_REMOVED
 * is never written (removed fields are left out), so an entry with it is
 * damaged. */
#define FIELD_FLAGS_KEPT (SL_FF_KEY_ESCAPED | SL_FF_LABEL | SL_FF_METADATA)
/* Record flags an entry keeps; SL_RF_DROPPED is never written (dropped
 * records are left out), so an entry with it is damaged. SL_RF_LINE_UTF8
 * (the line was checked as UTF-8) is a promise a disk cannot make: it is
 * cleared, so the Loki sink checks a replayed line again. */
#define RECORD_FLAGS_KEPT                                                                          \
    (SL_RF_PARSE_ERROR | SL_RF_TRUNCATED | SL_RF_SPLIT | SL_RF_INVALID_UTF8 | SL_RF_ML_CUT |       \
     SL_RF_ML_CONT | SL_RF_PARSE_WARNING | SL_RF_FRAMED)

/* The serialised batch (before compression), little-endian:
 *   u32 records, u32 labels, str input, str source,
 *   labels: str key, str val, u8 type, u8 flags
 *   records: i64 time_ns, u32 flags, u32 fields, str line,
 *            fields: str key, str val, u8 type, u8 flags
 * where str is u32 length (0xffffffff: absent) and the bytes, or, for a
 * field's key or value that is a slice of its record's line (what parsers
 * mostly produce), u32 (0x80000000 | length) and u32 offset in the line:
 * the text is stored and compressed once. Records a step dropped and
 * fields a step removed are left out. The decoder refuses (SL_ECORRUPT)
 * what this encoder never writes, checksums or not (decision 0054): a
 * value whose text is not what its type promises the JSON writers, a
 * record time outside the header's range, a DROPPED record or a REMOVED
 * field. */

static void enc_u32(sl_buf *o, uint32_t v)
{
    uint8_t b[4];
    put_u32(b, v);
    sl_buf_append(o, b, 4);
}

static void enc_str(sl_buf *o, const char *p, size_t n)
{
    if (n >= REF_STR) {
        o->failed = 1;
        return;
    }
    enc_u32(o, (uint32_t)n);
    if (n) sl_buf_append(o, p, n);
}

static void enc_cstr(sl_buf *o, const char *s)
{
    if (!s)
        enc_u32(o, NULL_STR);
    else
        enc_str(o, s, strlen(s));
}

/* s, by reference when it lies inside line. */
static void enc_str_in(sl_buf *o, sl_slice s, sl_slice line)
{
    uintptr_t a = (uintptr_t)s.p, lo = (uintptr_t)line.p;
    /* s.n <= line.n first: line.n - s.n must not wrap (it did: a value
     * longer than its line, stored above it, became a reference past the
     * line's end, and its entry read back as damaged). */
    if (s.n && s.n < REF_STR && s.n <= line.n && a >= lo && a - lo <= line.n - s.n) {
        uint8_t b[8];
        put_u32(b, REF_STR | (uint32_t)s.n);
        put_u32(b + 4, (uint32_t)(a - lo));
        sl_buf_append(o, b, 8);
    } else
        enc_str(o, s.p, s.n);
}

static void enc_field(sl_buf *o, const sl_field *f, sl_slice line)
{
    enc_str_in(o, f->key, line);
    enc_str_in(o, f->val, line);
    uint8_t tf[2] = {f->type, f->flags};
    sl_buf_append(o, tf, 2);
}

/* Fills raw with b's serialised form; *nrec = records written. */
int sl_spool_encode_batch(sl_buf *raw, const sl_batch *b, uint32_t *nrec, int64_t *tmin,
                          int64_t *tmax)
{
    sl_buf_reset(raw);
    enc_u32(raw, 0);
    enc_u32(raw, b->nlabels);
    enc_cstr(raw, b->input);
    enc_cstr(raw, b->source);
    for (uint32_t i = 0; i < b->nlabels; i++) enc_field(raw, &b->labels[i], (sl_slice){0});
    uint32_t n = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        uint32_t nf = 0;
        for (uint32_t k = 0; k < r->nfields; k++) nf += !(r->fields[k].flags & SL_FF_REMOVED);
        uint8_t h[16];
        put_u64(h, (uint64_t)r->time_ns);
        put_u32(h + 8, r->flags);
        put_u32(h + 12, nf);
        sl_buf_append(raw, h, sizeof h);
        enc_str(raw, r->line.p, r->line.n);
        for (uint32_t k = 0; k < r->nfields; k++)
            if (!(r->fields[k].flags & SL_FF_REMOVED)) enc_field(raw, &r->fields[k], r->line);
        if (r->time_ns < lo) lo = r->time_ns;
        if (r->time_ns > hi) hi = r->time_ns;
        n++;
    }
    if (raw->failed) return SL_EINVAL;
    put_u32((uint8_t *)raw->p, n);
    *nrec = n;
    *tmin = n ? lo : 0;
    *tmax = n ? hi : 0;
    return SL_OK;
}

typedef struct rcur {
    const uint8_t *p;
    size_t n, off;
    bool bad;
} rcur;

static const uint8_t *cur_take(rcur *c, size_t n)
{
    if (c->bad || n > c->n - c->off) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

static uint32_t cur_u32(rcur *c)
{
    const uint8_t *p = cur_take(c, 4);
    return p ? get_u32(p) : 0;
}

static uint64_t cur_u64(rcur *c)
{
    const uint8_t *p = cur_take(c, 8);
    return p ? get_u64(p) : 0;
}

/* A string, which may be a slice of line; *absent set for the NULL marker. */
static sl_slice cur_str_in(rcur *c, bool *absent, sl_slice line)
{
    uint32_t n = cur_u32(c);
    if (absent) *absent = n == NULL_STR;
    if (n == NULL_STR) {
        if (!absent) c->bad = true;
        return (sl_slice){NULL, 0};
    }
    if (n & REF_STR) {
        uint32_t off = cur_u32(c);
        n &= ~REF_STR;
        if (c->bad || off > line.n || n > line.n - off) {
            c->bad = true;
            return (sl_slice){"", 0};
        }
        return (sl_slice){line.p + off, n};
    }
    const uint8_t *p = cur_take(c, n);
    return (sl_slice){p ? (const char *)p : "", p ? n : 0};
}

static sl_slice cur_str(rcur *c, bool *absent)
{
    return cur_str_in(c, absent, (sl_slice){"", 0});
}

/* What SL_V_ESCAPED and SL_FF_KEY_ESCAPED promise (decision 0046): text the
 * writers may copy between JSON quotes as it is: strict JSON string text,
 * no bare quote, valid UTF-8. */
static bool escaped_text_ok(sl_slice s)
{
    return sl_json_string_text_ok(s.p, s.n);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A JSON number, nothing around it. */
static bool number_ok(sl_slice v)
{
    const char *p = v.p, *e = v.p + v.n;
    if (p < e && *p == '-') p++;
    if (p == e || !is_digit(*p)) return false;
    if (*p++ != '0')
        while (p < e && is_digit(*p)) p++;
    if (p < e && *p == '.') {
        if (++p == e || !is_digit(*p)) return false;
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || !is_digit(*p)) return false;
        while (p < e && is_digit(*p)) p++;
    }
    return p == e;
}

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

/* The string whose opening quote is p[i]: the index past its closing
 * quote, or 0 when it is not strict JSON string text. */
static size_t scan_string(const char *p, size_t i, size_t n)
{
    bool high = false;
    size_t end = sl_json_string_text_end(p, i + 1, n, &high);
    if (end >= n || (high && !sl_utf8_valid(p + i + 1, end - i - 1))) return 0;
    return end + 1;
}

static bool is_number_byte(char c)
{
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Nested values this short are walked here: starting the json step's SIMD
 * validator per value cost more than the walk (benchmarks/RESULTS.md,
 * "Hostile spool contents"). Longer ones go to it. fuzz_spool holds the
 * two to the same answers. */
#define NESTED_SHORT 256

/* One JSON value, p[0..n) with n < NESTED_SHORT (so depth < 128): the
 * grammar of RFC 8259 with strings, numbers and literals as above. */
static bool short_json_ok(const char *p, size_t n)
{
    bool object[NESTED_SHORT / 2]; /* per open container: an object (else an array) */
    size_t depth = 0, i = 0;
    enum { VALUE, KEY, AFTER } want = VALUE;
    for (;;) {
        i = skip_ws(p, i, n);
        if (want == KEY) { /* a member: "key" : value */
            if (i >= n || p[i] != '"' || !(i = scan_string(p, i, n))) return false;
            i = skip_ws(p, i, n);
            if (i >= n || p[i] != ':') return false;
            i++;
            want = VALUE;
            continue;
        }
        if (want == AFTER) { /* a value ended */
            if (depth == 0) return i == n;
            if (i >= n) return false;
            if (p[i] == ',') {
                i++;
                want = object[depth - 1] ? KEY : VALUE;
            } else if (p[i] == (object[depth - 1] ? '}' : ']')) {
                i++;
                depth--;
            } else
                return false;
            continue;
        }
        if (i >= n) return false;
        char c = p[i];
        want = AFTER;
        if (c == '{' || c == '[') {
            if (depth == sizeof object / sizeof *object) return false;
            object[depth++] = c == '{';
            i = skip_ws(p, i + 1, n);
            if (i < n && p[i] == (c == '{' ? '}' : ']'))
                i++, depth--; /* empty */
            else
                want = c == '{' ? KEY : VALUE;
        } else if (c == '"') {
            if (!(i = scan_string(p, i, n))) return false;
        } else if (c == '-' || is_digit(c)) {
            size_t start = i;
            while (i < n && is_number_byte(p[i])) i++;
            if (!number_ok((sl_slice){p + start, i - start})) return false;
        } else if (c == 't' && n - i >= 4 && !memcmp(p + i, "true", 4)) {
            i += 4;
        } else if (c == 'f' && n - i >= 5 && !memcmp(p + i, "false", 5)) {
            i += 5;
        } else if (c == 'n' && n - i >= 4 && !memcmp(p + i, "null", 4)) {
            i += 4;
        } else
            return false;
    }
}

/* A nested object or array, validated. Depth up to the most a json step
 * may be configured to take: what an honest agent spooled always reads. */
static bool nested_ok(sl_slice v, char open, char close)
{
    static const sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
    if (v.n < 2 || v.p[0] != open || v.p[v.n - 1] != close) return false;
    if (v.n < NESTED_SHORT) return short_json_ok(v.p, v.n);
    return sl_json_validate(v.p, v.n, &deepest, NULL) == SL_OK;
}

/* Whether a value's text is what its type promises the writers, which copy
 * every type but SL_V_STRING (and a key without SL_FF_KEY_ESCAPED) into
 * JSON as it is (shipper/recjson.c, shipper/loki_encode.c, `spool export`).
 * A parser made it so; a checksum only says the bytes are what was written,
 * not that an encoder wrote them (decision 0054). */
static inline bool value_ok(uint8_t type, sl_slice v)
{
    switch (type) {
    case SL_V_STRING:
        return true;
    case SL_V_ESCAPED:
        return escaped_text_ok(v);
    case SL_V_NUMBER:
        return number_ok(v);
    case SL_V_TRUE:
        return sl_slice_eq(v, "true", 4);
    case SL_V_FALSE:
        return sl_slice_eq(v, "false", 5);
    case SL_V_NULL:
        return sl_slice_eq(v, "null", 4);
    case SL_V_OBJECT:
        return nested_ok(v, '{', '}');
    case SL_V_ARRAY:
        return nested_ok(v, '[', ']');
    }
    return false;
}

bool sl_spool_value_ok(uint8_t type, sl_slice v)
{
    return value_ok(type, v);
}

/* Plain strings and keys (most fields) cost one test. */
static inline bool field_text_ok(const sl_field *f)
{
    if (__builtin_expect(f->type == SL_V_STRING && !(f->flags & SL_FF_KEY_ESCAPED), 1)) return true;
    if ((f->flags & SL_FF_KEY_ESCAPED) && !escaped_text_ok(f->key)) return false;
    return value_ok(f->type, f->val);
}

static bool cur_field(rcur *c, sl_field *f, sl_slice line)
{
    f->key = cur_str_in(c, NULL, line);
    f->val = cur_str_in(c, NULL, line);
    const uint8_t *tf = cur_take(c, 2);
    if (!tf || tf[0] < SL_V_STRING || tf[0] > SL_V_ARRAY || (tf[1] & SL_FF_REMOVED)) {
        c->bad = true;
        return false;
    }
    f->type = tf[0];
    f->flags = tf[1] & FIELD_FLAGS_KEPT; /* VERBATIM: a promise of the parser, not the file's */
    if (!field_text_ok(f)) {
        c->bad = true;
        return false;
    }
    return true;
}

/* Arena memory for a decoded batch. Past the arena's bound the entry is
 * hostile (an encoder's batch needed far less): corrupt. A failing malloc
 * below the bound is memory pressure: try again later. */
static void *dec_alloc(sl_batch *b, size_t n, int *rc)
{
    void *p = sl_arena_alloc(&b->arena, n);
    if (!p) *rc = n > b->arena.limit - b->arena.used ? SL_ECORRUPT : SL_ENOMEM;
    return p;
}

/* Builds a batch over raw, which lives in chunk (the batch keeps it). */
int sl_spool_decode_raw(sl_chunk *chunk, size_t n, uint32_t expect, int64_t tmin, int64_t tmax,
                        sl_batch **out)
{
    rcur c = {(const uint8_t *)chunk->data, n, 0, false};
    uint32_t nrec = cur_u32(&c), nlab = cur_u32(&c);
    if (c.bad || nrec != expect || nrec > n / MIN_RECORD_BYTES || nlab > n / MIN_FIELD_BYTES)
        return SL_ECORRUPT;
    sl_batch *b = sl_batch_new(nrec);
    if (!b) return SL_ENOMEM;
    sl_arena_init(&b->arena, DECODE_ARENA_MAX);
    int rc = SL_ECORRUPT;
    if (sl_batch_add_chunk(b, chunk) != SL_OK) goto fail;
    bool absent;
    sl_slice in = cur_str(&c, &absent);
    if (!absent && !c.bad) {
        char *d = dec_alloc(b, in.n + 1, &rc);
        if (!d) goto fail;
        memcpy(d, in.p, in.n);
        d[in.n] = '\0';
        b->input = d;
    }
    sl_slice src = cur_str(&c, &absent);
    if (!absent && !c.bad) {
        char *d = dec_alloc(b, src.n + 1, &rc);
        if (!d) goto fail;
        memcpy(d, src.p, src.n);
        d[src.n] = '\0';
        b->source = d;
    }
    if (nlab) {
        if (!(b->labels = dec_alloc(b, (size_t)nlab * sizeof *b->labels, &rc))) goto fail;
        for (uint32_t i = 0; i < nlab; i++)
            if (!cur_field(&c, &b->labels[i], (sl_slice){"", 0})) goto fail;
        b->nlabels = nlab;
    }
    for (uint32_t i = 0; i < nrec; i++) {
        int64_t t = (int64_t)cur_u64(&c);
        uint32_t flags = cur_u32(&c), nf = cur_u32(&c);
        sl_slice line = cur_str(&c, NULL);
        /* The header's time range is what `spool export --since/--until`
         * skips entries by: a record outside it would be skipped unseen. */
        if (c.bad || nf > (n - c.off) / MIN_FIELD_BYTES || t < tmin || t > tmax ||
            (flags & SL_RF_DROPPED))
            goto fail;
        sl_record *r = sl_batch_add(b, line, t, 0);
        if (!r) goto fail;
        r->flags = flags & RECORD_FLAGS_KEPT;
        if (nf) {
            if (!(r->fields = dec_alloc(b, (size_t)nf * sizeof *r->fields, &rc))) goto fail;
            r->cap_fields = nf;
            for (uint32_t k = 0; k < nf; k++) {
                if (!cur_field(&c, &r->fields[k], line)) goto fail;
                r->nfields++;
            }
        }
    }
    if (c.bad || c.off != n) goto fail;
    *out = b;
    return SL_OK;
fail:
    sl_batch_unref(b);
    return rc;
}
