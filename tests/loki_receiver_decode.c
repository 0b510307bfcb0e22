/* The test receiver's decoding: Loki's push bodies (snappy + protobuf, JSON,
 * gzip) into sl_lr_push, and the label and limit checks of a stock Loki.
 * Deliberately separate from the sink's encoder (shipper/loki_encode.c), so a
 * test through it checks the real wire format. The server is
 * loki_receiver.c. */
#include "tests/loki_receiver.h"
#include "tests/loki_receiver_internal.h"

#include <errno.h>
#include <jansson.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define LR_MAX_PLAIN (512u << 20)

static void errmsg(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errmsg(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- small growable string ---- */

int sl_lr_sb_put(sbuf *b, const void *p, size_t n)
{
    if (b->cap - b->n <= n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n <= n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int sl_lr_sb_str(sbuf *b, const char *s)
{
    return sl_lr_sb_put(b, s, strlen(s));
}

/* ---- UTF-8 check (Unicode table 3-7) ---- */

static bool utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c == 0xE0)
            len = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC)
            len = 3;
        else if (c == 0xED)
            len = 3, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF)
            len = 3;
        else if (c == 0xF0)
            len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            len = 4;
        else if (c == 0xF4)
            len = 4, hi = 0x8F;
        else
            return false;
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return false;
        for (size_t k = 2; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

/* ---- label strings ---- */

static void kv_free(sl_lr_kv *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static int kv_name_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_lr_kv *)a)->name, ((const sl_lr_kv *)b)->name);
}

static bool name_char(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses `{name="value", ...}` as PromQL/Loki selectors write label sets. */
static int parse_labels(const char *s, size_t n, sl_lr_kv **out, uint32_t *nout, char *err,
                        size_t ecap)
{
    sl_lr_kv *v = NULL;
    uint32_t nv = 0, cap = 0;
    size_t i = 0;
#define SKIPWS()                                                                                   \
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++
    SKIPWS();
    if (i >= n || s[i] != '{') goto bad;
    i++;
    SKIPWS();
    if (i < n && s[i] == '}') {
        i++;
        goto done;
    }
    for (;;) {
        SKIPWS();
        size_t ns = i;
        while (i < n && name_char(s[i], i == ns)) i++;
        if (i == ns) goto bad;
        size_t ne = i;
        SKIPWS();
        if (i >= n || s[i] != '=') goto bad;
        i++;
        SKIPWS();
        if (i >= n || s[i] != '"') goto bad;
        i++;
        sbuf val = {0};
        if (sl_lr_sb_put(&val, "", 0)) goto bad;
        for (;;) {
            if (i >= n) {
                free(val.p);
                goto bad;
            }
            char c = s[i++];
            if (c == '"') break;
            if (c != '\\') {
                if (sl_lr_sb_put(&val, &c, 1)) {
                    free(val.p);
                    goto bad;
                }
                continue;
            }
            if (i >= n) {
                free(val.p);
                goto bad;
            }
            char e = s[i++];
            char o = 0;
            int ok = 1;
            switch (e) {
            case 'n':
                o = '\n';
                break;
            case 't':
                o = '\t';
                break;
            case 'r':
                o = '\r';
                break;
            case '"':
                o = '"';
                break;
            case '\\':
                o = '\\';
                break;
            case 'x': {
                int h1 = i + 1 < n ? hexval(s[i]) : -1, h2 = i + 1 < n ? hexval(s[i + 1]) : -1;
                if (h1 < 0 || h2 < 0) ok = 0;
                o = (char)(h1 * 16 + h2);
                i += 2;
                break;
            }
            default:
                ok = 0;
            }
            if (!ok || sl_lr_sb_put(&val, &o, 1)) {
                free(val.p);
                goto bad;
            }
        }
        if (nv == cap) {
            cap = cap ? cap * 2 : 8;
            sl_lr_kv *nvp = realloc(v, cap * sizeof *v);
            if (!nvp) {
                free(val.p);
                goto bad;
            }
            v = nvp;
        }
        v[nv].name = strndup(s + ns, ne - ns);
        v[nv].value = val.p;
        if (!v[nv].name) {
            free(val.p);
            goto bad;
        }
        nv++;
        SKIPWS();
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') {
            i++;
            break;
        }
        goto bad;
    }
done:
    SKIPWS();
    if (i != n) goto bad;
#undef SKIPWS
    *out = v;
    *nout = nv;
    return 0;
bad:
    kv_free(v, nv);
    errmsg(err, ecap, "parse error in label string at byte %zu: %.*s", i, (int)(n > 200 ? 200 : n),
           s);
    return -1;
}

/* Sorts pairs, rejects duplicates and empty sets, renders the canonical
 * string. */
static int canon_labels(sl_lr_kv *v, uint32_t n, char **out, char *err, size_t ecap)
{
    if (n == 0) {
        errmsg(err, ecap, "error at least one label pair is required per stream");
        return -1;
    }
    qsort(v, n, sizeof *v, kv_name_cmp);
    sbuf b = {0};
    if (sl_lr_sb_str(&b, "{")) return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (i && strcmp(v[i - 1].name, v[i].name) == 0) {
            free(b.p);
            errmsg(err, ecap, "duplicate label name %s", v[i].name);
            return -1;
        }
        if (i && sl_lr_sb_str(&b, ", ")) goto nomem;
        if (sl_lr_sb_str(&b, v[i].name) || sl_lr_sb_str(&b, "=\"")) goto nomem;
        for (const char *c = v[i].value; *c; c++) {
            char t[5];
            const char *w = t;
            if (*c == '"')
                w = "\\\"";
            else if (*c == '\\')
                w = "\\\\";
            else if (*c == '\n')
                w = "\\n";
            else if ((unsigned char)*c < 0x20)
                snprintf(t, sizeof t, "\\x%02x", (unsigned char)*c);
            else
                t[0] = *c, t[1] = 0;
            if (sl_lr_sb_str(&b, w)) goto nomem;
        }
        if (sl_lr_sb_str(&b, "\"")) goto nomem;
    }
    if (sl_lr_sb_str(&b, "}")) goto nomem;
    *out = b.p;
    return 0;
nomem:
    free(b.p);
    errmsg(err, ecap, "out of memory");
    return -1;
}

/* ---- protobuf reader ---- */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* One field: number, wire type, and either a varint or a byte range. */
typedef struct pbf {
    uint32_t num, wt;
    uint64_t v;
    const uint8_t *b;
    size_t bn;
} pbf;

static int pb_next(pb *r, pbf *f)
{
    uint64_t key;
    if (pb_varint(r, &key)) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 3 > 0x1FFFFFFF) return -1;
    switch (f->wt) {
    case 0:
        return pb_varint(r, &f->v);
    case 1:
        if (r->end - r->p < 8) return -1;
        r->p += 8;
        return 0;
    case 5:
        if (r->end - r->p < 4) return -1;
        r->p += 4;
        return 0;
    case 2: {
        uint64_t len;
        if (pb_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return -1;
        f->b = r->p;
        f->bn = (size_t)len;
        r->p += len;
        return 0;
    }
    default:
        return -1; /* groups are not used by Loki */
    }
}

/* ---- strict: what a stock Loki refuses (its defaults) ---- */

bool sl_lr_name_valid(const char *s)
{
    if (!*s) return false;
    for (const char *c = s; *c; c++)
        if (!name_char(*c, c == s)) return false;
    return true;
}

bool sl_lr_tenant_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 150 || !strcmp(t, ".") || !strcmp(t, "..")) return false;
    for (const char *c = t; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("!-_.*'()", *c)))
            return false;
    return true;
}

#define STRICT_MAX_NAMES     15
#define STRICT_MAX_VALUE_LEN 2048
#define STRICT_MAX_NAME_LEN  1024

static void label_problem(lstats *ls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void label_problem(lstats *ls, const char *fmt, ...)
{
    if (ls->label_err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ls->label_err, sizeof ls->label_err, fmt, ap);
    va_end(ap);
}

/* A label value as Loki's (Prometheus') label parser takes it: valid UTF-8
 * and no U+FFFD ("invalid UTF-8 rune"); stricter than Loki, no control
 * character either (the rule: none may reach a label). */
static void strict_value(const char *name, const char *v, size_t n, size_t max, lstats *ls)
{
    const unsigned char *u = (const unsigned char *)v;
    if (!utf8_ok(u, n)) label_problem(ls, "label %s: invalid UTF-8", name);
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7F)
            label_problem(ls, "label %s: control character 0x%02x", name, u[i]);
        if (i + 2 < n && u[i] == 0xEF && u[i + 1] == 0xBF && u[i + 2] == 0xBD)
            label_problem(ls, "label %s: invalid UTF-8 rune (U+FFFD)", name);
    }
    if (max && n > max) label_problem(ls, "label value too long: %zu bytes for label %s", n, name);
}

static void strict_pairs(const sl_lr_kv *v, uint32_t n, lstats *ls)
{
    if (n > STRICT_MAX_NAMES)
        label_problem(ls, "stream has %u label names; limit: %d", n, STRICT_MAX_NAMES);
    for (uint32_t i = 0; i < n; i++) {
        size_t nl = strlen(v[i].name);
        if (nl > STRICT_MAX_NAME_LEN) label_problem(ls, "label name too long: %zu bytes", nl);
        if (!sl_lr_name_valid(v[i].name)) label_problem(ls, "invalid label name '%s'", v[i].name);
        strict_value(v[i].name, v[i].value, strlen(v[i].value), STRICT_MAX_VALUE_LEN, ls);
    }
}

/* The raw label string: escapes of control characters (sluice never needs
 * them once values are clean) and bytes the parser refuses. */
static void strict_label_string(const char *p, size_t n, lstats *ls)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\\') {
            char e = p[i + 1];
            if (e == 'x' || e == 'n' || e == 't' || e == 'r')
                label_problem(ls, "escaped control character \\%c in a label value", e);
            i++;
        }
    strict_value("(string)", p, n, 0, ls);
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static int decode_pair(const uint8_t *p, size_t n, sl_lr_kv *kv, lstats *ls)
{
    pb r = {p, p + n};
    const uint8_t *np = NULL, *vp = NULL;
    size_t nn = 0, vn = 0;
    pbf f;
    while (r.p < r.end) {
        if (pb_next(&r, &f)) return -1;
        if (f.num == 1 && f.wt == 2)
            np = f.b, nn = f.bn;
        else if (f.num == 2 && f.wt == 2)
            vp = f.b, vn = f.bn;
        else if (f.num <= 2)
            return -1;
    }
    if ((np && !utf8_ok(np, nn)) || (vp && !utf8_ok(vp, vn))) ls->invalid_utf8++;
    kv->name = dup_bytes(np, nn);
    kv->value = dup_bytes(vp, vn);
    return kv->name && kv->value ? 0 : -1;
}

static int decode_entry(const uint8_t *p, size_t n, sl_lr_entry *e, lstats *ls)
{
    pb r = {p, p + n};
    pbf f;
    uint32_t cap = 0;
    bool have_ts = false;
    while (r.p < r.end) {
        if (pb_next(&r, &f)) return -1;
        if (f.num == 1) {
            if (f.wt != 2) return -1;
            pb t = {f.b, f.b + f.bn};
            int64_t sec = 0;
            int64_t nsec = 0;
            pbf g;
            while (t.p < t.end) {
                if (pb_next(&t, &g)) return -1;
                if (g.num == 1 && g.wt == 0)
                    sec = (int64_t)g.v;
                else if (g.num == 2 && g.wt == 0)
                    nsec = (int32_t)(uint32_t)g.v;
                else if (g.num <= 2)
                    return -1;
            }
            if (nsec < 0 || nsec > 999999999) return -1;
            if (sec > INT64_MAX / 1000000000 || sec < INT64_MIN / 1000000000 + 1) return -1;
            e->ts_ns = sec * 1000000000 + nsec;
            have_ts = true;
        } else if (f.num == 2) {
            if (f.wt != 2) return -1;
            free(e->line);
            e->line = dup_bytes(f.b, f.bn);
            if (!e->line) return -1;
            e->line_n = f.bn;
            if (!utf8_ok(f.b, f.bn)) ls->invalid_utf8++;
        } else if (f.num == 3) {
            if (f.wt != 2) return -1;
            if (e->nmeta == cap) {
                cap = cap ? cap * 2 : 4;
                sl_lr_kv *m = realloc(e->meta, cap * sizeof *m);
                if (!m) return -1;
                e->meta = m;
            }
            sl_lr_kv *kv = &e->meta[e->nmeta];
            memset(kv, 0, sizeof *kv);
            e->nmeta++;
            if (decode_pair(f.b, f.bn, kv, ls)) return -1;
        }
        /* field 4 (parsed) and unknown fields are ignored, as Loki does */
    }
    if (!e->line) {
        e->line = dup_bytes(NULL, 0);
        if (!e->line) return -1;
    }
    (void)have_ts; /* a missing timestamp is the zero time, as in proto3 */
    return 0;
}

void sl_lr_entry_free(sl_lr_entry *e)
{
    free(e->tenant);
    free(e->line);
    kv_free(e->meta, e->nmeta);
}

static void stream_free(sl_lr_stream *s)
{
    for (size_t i = 0; i < s->n; i++) sl_lr_entry_free(&s->entries[i]);
    free(s->entries);
    free(s->labels);
    kv_free(s->pairs, s->npairs);
}

void sl_lr_push_free(sl_lr_push *p)
{
    for (size_t i = 0; i < p->n; i++) stream_free(&p->streams[i]);
    free(p->streams);
    p->streams = NULL;
    p->n = 0;
}

static sl_lr_stream *push_add_stream(sl_lr_push *p, size_t *cap)
{
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        sl_lr_stream *s = realloc(p->streams, nc * sizeof *s);
        if (!s) return NULL;
        p->streams = s;
        *cap = nc;
    }
    sl_lr_stream *s = &p->streams[p->n++];
    memset(s, 0, sizeof *s);
    return s;
}

static sl_lr_entry *stream_add_entry(sl_lr_stream *s, size_t *cap)
{
    if (s->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        sl_lr_entry *e = realloc(s->entries, nc * sizeof *e);
        if (!e) return NULL;
        s->entries = e;
        *cap = nc;
    }
    sl_lr_entry *e = &s->entries[s->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static int decode_pb(const void *body, size_t n, sl_lr_push *out, lstats *ls, char *err,
                     size_t ecap)
{
    memset(out, 0, sizeof *out);
    size_t scap = 0;
    pb r = {body, (const uint8_t *)body + n};
    pbf f;
    while (r.p < r.end) {
        if (pb_next(&r, &f)) goto bad;
        if (f.num != 1) continue; /* e.g. `format` = 2 */
        if (f.wt != 2) goto bad;
        sl_lr_stream *s = push_add_stream(out, &scap);
        if (!s) goto nomem;
        size_t ecap2 = 0;
        const uint8_t *lp = NULL;
        size_t ln = 0;
        pb sr = {f.b, f.b + f.bn};
        pbf g;
        while (sr.p < sr.end) {
            if (pb_next(&sr, &g)) goto bad;
            if (g.num == 1) {
                if (g.wt != 2) goto bad;
                lp = g.b;
                ln = g.bn;
            } else if (g.num == 2) {
                if (g.wt != 2) goto bad;
                sl_lr_entry *e = stream_add_entry(s, &ecap2);
                if (!e) goto nomem;
                if (decode_entry(g.b, g.bn, e, ls)) goto bad;
            } else if (g.num == 3) {
                if (g.wt != 0) goto bad;
            }
        }
        if (lp && !utf8_ok(lp, ln)) ls->invalid_utf8++;
        if (lp) strict_label_string((const char *)lp, ln, ls);
        if (parse_labels((const char *)(lp ? lp : (const uint8_t *)""), ln, &s->pairs, &s->npairs,
                         err, ecap) ||
            canon_labels(s->pairs, s->npairs, &s->labels, err, ecap)) {
            sl_lr_push_free(out);
            return -1;
        }
        for (size_t i = 0; i < s->n; i++) s->entries[i].labels = s->labels;
        strict_pairs(s->pairs, s->npairs, ls);
    }
    return 0;
bad:
    sl_lr_push_free(out);
    errmsg(err, ecap, "malformed protobuf PushRequest");
    return -1;
nomem:
    sl_lr_push_free(out);
    errmsg(err, ecap, "out of memory");
    return -1;
}

int sl_lr_decode_protobuf(const void *body, size_t n, sl_lr_push *out, char *err, size_t errcap)
{
    lstats ls = {0};
    return decode_pb(body, n, out, &ls, err, errcap);
}

static int decode_json(const void *body, size_t n, sl_lr_push *out, lstats *ls, char *err,
                       size_t ecap)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(body, n, JSON_ALLOW_NUL, &je);
    if (!root) {
        errmsg(err, ecap, "invalid JSON: %s", je.text);
        return -1;
    }
    size_t scap = 0;
    json_t *streams = json_object_get(root, "streams");
    if (!json_is_array(streams)) goto bad;
    size_t si;
    json_t *js;
    json_array_foreach(streams, si, js)
    {
        json_t *labels = json_object_get(js, "stream");
        json_t *values = json_object_get(js, "values");
        if (!json_is_object(labels) || !json_is_array(values)) goto bad;
        sl_lr_stream *s = push_add_stream(out, &scap);
        if (!s) goto bad;
        s->pairs = calloc(json_object_size(labels) + 1, sizeof *s->pairs);
        if (!s->pairs) goto bad;
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v)
        {
            if (!json_is_string(v)) goto bad;
            sl_lr_kv *kv = &s->pairs[s->npairs++];
            kv->name = strdup(k);
            kv->value = strdup(json_string_value(v));
            if (!kv->name || !kv->value) goto bad;
            if (strlen(kv->value) != json_string_length(v))
                label_problem(ls, "label %s: NUL in the value", k);
            for (const char *c = k; *c; c++)
                if (!name_char(*c, c == k)) goto bad;
        }
        strict_pairs(s->pairs, s->npairs, ls);
        if (canon_labels(s->pairs, s->npairs, &s->labels, err, ecap)) {
            json_decref(root);
            sl_lr_push_free(out);
            return -1;
        }
        size_t ecap2 = 0, vi;
        json_t *jv;
        json_array_foreach(values, vi, jv)
        {
            size_t len = json_array_size(jv);
            json_t *jts = json_array_get(jv, 0), *jl = json_array_get(jv, 1);
            if ((len != 2 && len != 3) || !json_is_string(jts) || !json_is_string(jl)) goto bad;
            sl_lr_entry *e = stream_add_entry(s, &ecap2);
            if (!e) goto bad;
            e->labels = s->labels;
            const char *t = json_string_value(jts);
            char *endp;
            errno = 0;
            long long ts = strtoll(t, &endp, 10);
            if (errno || *endp || endp == t) goto bad;
            e->ts_ns = ts;
            e->line_n = json_string_length(jl);
            e->line = dup_bytes((const uint8_t *)json_string_value(jl), e->line_n);
            if (!e->line) goto bad;
            if (len == 3) {
                json_t *jm = json_array_get(jv, 2);
                if (!json_is_object(jm)) goto bad;
                e->meta = calloc(json_object_size(jm) + 1, sizeof *e->meta);
                if (!e->meta) goto bad;
                json_object_foreach(jm, k, v)
                {
                    if (!json_is_string(v)) goto bad;
                    sl_lr_kv *kv = &e->meta[e->nmeta++];
                    kv->name = strdup(k);
                    kv->value = strdup(json_string_value(v));
                    if (!kv->name || !kv->value) goto bad;
                }
            }
        }
    }
    /* jansson rejects invalid UTF-8 itself */
    json_decref(root);
    return 0;
bad:
    json_decref(root);
    sl_lr_push_free(out);
    errmsg(err, ecap, "JSON body does not match the push API schema");
    return -1;
}

static int inflate_all(const void *in, size_t n, sbuf *out, char *err, size_t ecap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) return -1; /* gzip or zlib */
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    int rc;
    char tmp[65536];
    do {
        z.next_out = (Bytef *)tmp;
        z.avail_out = sizeof tmp;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        if (sl_lr_sb_put(out, tmp, sizeof tmp - z.avail_out) || out->n > LR_MAX_PLAIN) {
            rc = Z_MEM_ERROR;
            break;
        }
    } while (rc != Z_STREAM_END && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        errmsg(err, ecap, "gzip: corrupt or truncated body");
        return -1;
    }
    return 0;
}

int sl_lr_decode_body(const char *ctype, const char *cenc, const void *body, size_t n,
                      sl_lr_push *out, lstats *ls, char *err, size_t ecap)
{
    memset(out, 0, sizeof *out);
    sbuf plain = {0};
    if (cenc && (!strcasecmp(cenc, "gzip") || !strcasecmp(cenc, "deflate"))) {
        if (inflate_all(body, n, &plain, err, ecap)) {
            free(plain.p);
            return -1;
        }
        body = plain.p ? plain.p : "";
        n = plain.n;
    } else if (cenc && *cenc && strcasecmp(cenc, "snappy") != 0) {
        errmsg(err, ecap, "unsupported Content-Encoding %s", cenc);
        return -1;
    }
    int rc;
    if (ctype && !strncasecmp(ctype, "application/json", 16)) {
        rc = decode_json(body, n, out, ls, err, ecap);
    } else {
        size_t ulen;
        if (snappy_uncompressed_length(body, n, &ulen) != SNAPPY_OK || ulen > LR_MAX_PLAIN) {
            free(plain.p);
            errmsg(err, ecap, "snappy: bad block header");
            return -1;
        }
        char *u = malloc(ulen ? ulen : 1);
        if (!u) {
            free(plain.p);
            errmsg(err, ecap, "out of memory");
            return -1;
        }
        if (snappy_uncompress(body, n, u, &ulen) != SNAPPY_OK) {
            free(u);
            free(plain.p);
            errmsg(err, ecap, "snappy: corrupt body");
            return -1;
        }
        rc = decode_pb(u, ulen, out, ls, err, ecap);
        free(u);
    }
    free(plain.p);
    return rc;
}

int sl_lr_decode(const char *content_type, const char *content_encoding, const void *body, size_t n,
                 sl_lr_push *out, char *err, size_t errcap)
{
    lstats ls = {0};
    return sl_lr_decode_body(content_type, content_encoding, body, n, out, &ls, err, errcap);
}

int sl_lr_decode_strict(const char *content_type, const char *content_encoding, const void *body,
                        size_t n, sl_lr_push *out, char *err, size_t errcap)
{
    lstats ls = {0};
    if (sl_lr_decode_body(content_type, content_encoding, body, n, out, &ls, err, errcap))
        return -1;
    if (!ls.label_err[0]) return 0;
    sl_lr_push_free(out);
    errmsg(err, errcap, "error parsing labels: %s", ls.label_err);
    return -1;
}
