/* The Loki request model and its two encodings. One file: building a
 * request computes the protobuf sizes the writer relies on, and both share
 * the scratch memory, the stream table and the string repairs; the rules
 * of what Loki accepts are in loki_limits.c. */
#include "shipper/loki_encode.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/json_str.h"
#include "core/utf8.h"

/* ---- buffers ---- */

static inline int buf_reserve(sl_buf *b, size_t extra)
{
    return sl_buf_reserve(b, extra) == SL_OK ? 0 : -1;
}

static inline int buf_put(sl_buf *b, const void *p, size_t n)
{
    return sl_buf_append(b, p, n) == SL_OK ? 0 : -1;
}

#define BUF_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

/* ---- UTF-8 ---- */

long sl_loki_utf8_sanitize(const char *s, size_t n, sl_buf *out)
{
    if (n > SIZE_MAX / 3 || buf_reserve(out, 3 * n)) return -1;
    size_t replaced;
    out->len += sl_utf8_sanitize(s, n, out->p + out->len, &replaced);
    out->p[out->len] = '\0'; /* sl_buf keeps its text terminated */
    return (long)replaced;
}

/* ---- JSON strings (core/json_str.h) ---- */

/* Appends the unescaped content of a JSON string body. A malformed escape is
 * copied literally; a lone surrogate becomes U+FFFD. Never longer than n. */
static int json_unescape(const char *p, size_t n, sl_buf *b)
{
    size_t o;
    if (buf_reserve(b, n)) return -1;
    if (sl_json_unescape_to(p, n, b->p + b->len, n, SL_JSON_BAD_KEEP, &o) != SL_OK) return -1;
    b->len += o;
    b->p[b->len] = '\0';
    return 0;
}

/* Appends p escaped as a JSON string body; invalid UTF-8 becomes U+FFFD and
 * sets *bad. */
static int json_escape(const char *p, size_t n, sl_buf *b, bool *bad)
{
    if (n > (SIZE_MAX - 32) / 6 || buf_reserve(b, SL_JSON_ESCAPE_ROOM(n))) return -1;
    size_t replaced = 0;
    b->len += sl_json_escape_to(b->p + b->len, p, n, &replaced);
    b->p[b->len] = '\0';
    if (replaced) *bad = true;
    return 0;
}

static const char hexdig[] = "0123456789abcdef";

/* ---- scratch memory with stable addresses ---- */

typedef struct scratch_block {
    char *p;
    size_t cap, used;
} scratch_block;

typedef struct scratch {
    scratch_block *v;
    size_t n, cap, cur;
} scratch;

static void scratch_reset(scratch *s)
{
    for (size_t i = 0; i < s->n; i++) s->v[i].used = 0;
    s->cur = 0;
}

static void scratch_free(scratch *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i].p);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static char *scratch_alloc(scratch *s, size_t n)
{
    while (s->cur < s->n) {
        scratch_block *b = &s->v[s->cur];
        if (b->cap - b->used >= n) {
            char *p = b->p + b->used;
            b->used += n;
            return p;
        }
        if (b->used == 0 && b->cap < n) break; /* too small: append a bigger one */
        s->cur++;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        scratch_block *v = realloc(s->v, cap * sizeof *v);
        if (!v) return NULL;
        s->v = v;
        s->cap = cap;
    }
    size_t cap = n > (64u << 10) ? n : (64u << 10);
    char *p = malloc(cap);
    if (!p) return NULL;
    /* Keep the block order: the new block becomes current, the rest follow. */
    if (s->cur < s->n) {
        memmove(&s->v[s->cur + 1], &s->v[s->cur], (s->n - s->cur) * sizeof *s->v);
    }
    s->v[s->cur] = (scratch_block){p, cap, n};
    s->n++;
    return p;
}

static const char *scratch_dup(scratch *s, const char *p, size_t n)
{
    char *d = scratch_alloc(s, n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

/* ---- the request model ---- */

typedef struct entry {
    int64_t ts;
    const char *line;
    uint32_t line_n;
    uint32_t seq;
    uint32_t meta_off, nmeta;
    uint32_t size; /* encoded EntryAdapter body */
} entry;

typedef struct stream {
    const char *labels; /* `{a="x", b="y"}` */
    uint32_t labels_n;
    uint32_t pair_off, npairs; /* sorted pairs in q->pairs, for JSON */
    uint64_t hash;
    entry *e;
    uint32_t n, cap;
    int64_t last_ts;
    bool unsorted;
    uint64_t body; /* encoded StreamAdapter body */
} stream;

struct sl_loki_req {
    const sl_loki_opts *o;
    scratch mem;
    stream *st;
    uint32_t nst, capst;
    uint32_t *tab; /* open addressing: stream index + 1, 0 = empty */
    uint32_t tabcap;
    sl_loki_kv *meta;
    uint32_t nmeta, capmeta;
    sl_loki_kv *pairs; /* label pairs of every stream */
    uint32_t npairs, cappairs;
    uint64_t nentries, nrecords, invalid;
    uint64_t adj[SL_LOKI_ADJ_N]; /* records per adjustment */
    uint64_t drop_old, drop_new; /* records outside the window, dropped */
    int64_t now_ns;              /* 0: no time window */
    const sl_loki_limits *lim;   /* o->limits or deflim */
    sl_loki_limits deflim;
    uint32_t label_adj;  /* adjustments of the label set being built */
    const char *tfilter; /* only this tenant (tenant templates), or NULL */
    size_t tfilter_n;
    sl_slice *tenants; /* distinct tenants seen, in scratch */
    uint32_t ntenants, captenants;
    uint32_t seq;
    /* temporaries */
    sl_loki_kv *tmp;
    uint32_t ntmp, captmp;
    sl_buf t1, t2, t3;
    /* Label sets of recent records of the batch being added, so records
     * with the same label fields skip building and hashing the string. */
    struct {
        uint64_t h;
        const sl_record *r;
        uint32_t stream;
        uint32_t adj; /* adjustments its label set needed */
    } sig[16];
    uint32_t nsig, sig_next;
    uint32_t part, nparts; /* add only streams whose hash % nparts == part */
};

sl_loki_req *sl_loki_req_new(const sl_loki_opts *opts)
{
    sl_loki_req *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->o = opts;
    sl_loki_limits_default(&q->deflim);
    q->lim = opts->limits ? opts->limits : &q->deflim;
    sl_buf_init(&q->t1, 0);
    sl_buf_init(&q->t2, 0);
    sl_buf_init(&q->t3, 0);
    return q;
}

void sl_loki_req_set_part(sl_loki_req *q, uint32_t part, uint32_t nparts)
{
    q->part = part;
    q->nparts = nparts;
}

void sl_loki_req_reset(sl_loki_req *q)
{
    for (uint32_t i = 0; i < q->nst; i++) q->st[i].n = 0;
    /* Keep the first streams' entry arrays for reuse; their slots are
     * overwritten as streams are created again. */
    q->nst = 0;
    if (q->tab) memset(q->tab, 0, q->tabcap * sizeof *q->tab);
    q->nmeta = q->npairs = 0;
    q->nentries = q->nrecords = q->invalid = 0;
    memset(q->adj, 0, sizeof q->adj);
    q->drop_old = q->drop_new = 0;
    q->ntenants = 0;
    q->seq = 0;
    scratch_reset(&q->mem);
}

void sl_loki_req_free(sl_loki_req *q)
{
    if (!q) return;
    for (uint32_t i = 0; i < q->capst; i++) free(q->st[i].e);
    free(q->st);
    free(q->tab);
    free(q->meta);
    free(q->pairs);
    free(q->tmp);
    scratch_free(&q->mem);
    sl_buf_free(&q->t1);
    sl_buf_free(&q->t2);
    sl_buf_free(&q->t3);
    free(q->tenants);
    free(q);
}

uint32_t sl_loki_req_streams(const sl_loki_req *q)
{
    return q->nst;
}

uint64_t sl_loki_req_entries(const sl_loki_req *q)
{
    return q->nentries;
}

uint64_t sl_loki_req_invalid_utf8(const sl_loki_req *q)
{
    return q->invalid;
}

void sl_loki_req_set_tenant(sl_loki_req *q, const char *t, size_t n)
{
    q->tfilter = t;
    q->tfilter_n = n;
}

uint32_t sl_loki_req_ntenants(const sl_loki_req *q)
{
    return q->ntenants;
}

sl_slice sl_loki_req_tenant(const sl_loki_req *q, uint32_t i)
{
    return i < q->ntenants ? q->tenants[i] : (sl_slice){"", 0};
}

void sl_loki_req_set_now(sl_loki_req *q, int64_t now_ns)
{
    q->now_ns = now_ns;
}

uint64_t sl_loki_req_records(const sl_loki_req *q)
{
    return q->nrecords;
}

uint64_t sl_loki_req_adjusted(const sl_loki_req *q, int adj)
{
    return adj >= 0 && adj < SL_LOKI_ADJ_N ? q->adj[adj] : 0;
}

void sl_loki_req_window_dropped(const sl_loki_req *q, uint64_t *old, uint64_t *young)
{
    *old = q->drop_old;
    *young = q->drop_new;
}

static inline uint32_t varint_len(uint64_t v)
{
    uint32_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define GROW(arr, n, cap, min)                                                                     \
    ((n) < (cap) ? 0 : grow_array((void **)&(arr), &(cap), sizeof *(arr), (min)))

static int grow_array(void **arr, uint32_t *cap, size_t elem, uint32_t min)
{
    uint32_t nc = *cap ? *cap * 2 : min;
    if (nc < *cap || (size_t)nc > SIZE_MAX / elem) return -1;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* A field value as text (unescaped, JSON literal or raw), in t (reset). */
static int value_text(const sl_field *f, sl_buf *t, sl_slice *out)
{
    if (f->type == SL_V_ESCAPED) {
        sl_buf_reset(t);
        if (json_unescape(f->val.p, f->val.n, t)) return -1;
        *out = (sl_slice){t->p, t->len};
        return 0;
    }
    *out = f->val;
    return 0;
}

static int key_text(const sl_field *f, sl_buf *t, sl_slice *out)
{
    if (f->flags & SL_FF_KEY_ESCAPED) {
        sl_buf_reset(t);
        if (json_unescape(f->key.p, f->key.n, t)) return -1;
        *out = (sl_slice){t->p, t->len};
        return 0;
    }
    *out = f->key;
    return 0;
}

/* s as valid UTF-8 that lives as long as the request: s itself when it is
 * valid and stable (in the batch), else a copy in scratch. *bad is set when
 * bytes were replaced. NULL on allocation failure. */
static const char *stable_utf8(sl_loki_req *q, sl_slice s, bool stable, size_t *n, bool *bad)
{
    if (sl_utf8_valid(s.p, s.n)) {
        *n = s.n;
        return stable ? s.p : scratch_dup(&q->mem, s.p, s.n);
    }
    sl_buf_reset(&q->t2);
    long r = sl_loki_utf8_sanitize(s.p, s.n, &q->t2);
    if (r < 0) return NULL;
    *bad = true;
    *n = q->t2.len;
    return scratch_dup(&q->mem, q->t2.p, q->t2.len);
}

/* A label or metadata name normalised as Loki does (loki_limits.h): s
 * itself (which lives as long as the request) when it is valid, else a
 * copy in scratch with *changed set. NULL on allocation failure. */
static const char *norm_name(sl_loki_req *q, sl_slice s, size_t max, bool *changed)
{
    if (sl_loki_name_valid(s.p, s.n) && (!max || s.n <= max)) return s.p;
    sl_buf_reset(&q->t3);
    int rc = sl_loki_name_normalize(s.p, s.n, max, &q->t3);
    if (rc < 0) return NULL;
    if (rc) *changed = true;
    return scratch_dup(&q->mem, q->t3.p, q->t3.len);
}

/* Loki label names match [a-zA-Z_][a-zA-Z0-9_]*, up to max_label_name_length. */
static const char *label_name(sl_loki_req *q, sl_slice s, size_t *n)
{
    bool changed = false;
    const char *d = norm_name(q, s, q->lim->max_label_name_len, &changed);
    if (!d) return NULL;
    if (changed) q->label_adj |= 1u << SL_LOKI_ADJ_LABEL_NAME;
    *n = changed ? q->t3.len : s.n;
    return d;
}

/* A label value Loki's label parser accepts (loki_limits.h), stable as in
 * stable_utf8. */
static const char *label_value(sl_loki_req *q, sl_slice s, bool stable, size_t *n)
{
    size_t max = q->lim->max_label_value_len;
    if (sl_loki_label_value_ok(s.p, s.n, max)) {
        *n = s.n;
        return stable ? s.p : scratch_dup(&q->mem, s.p, s.n);
    }
    sl_buf_reset(&q->t3);
    int adj = sl_loki_label_value(s.p, s.n, max, &q->t3);
    if (adj < 0) return NULL;
    q->label_adj |= (uint32_t)adj;
    *n = q->t3.len;
    return scratch_dup(&q->mem, q->t3.p, q->t3.len);
}

static int tmp_push(sl_loki_req *q, const char *name, size_t nn, const char *val, size_t vn)
{
    if (GROW(q->tmp, q->ntmp, q->captmp, 16)) return -1;
    q->tmp[q->ntmp++] = (sl_loki_kv){{name, nn}, {val, vn}};
    return 0;
}

/* Adds a (name, value) label candidate; val_stable: val lives in the batch
 * or the options rather than in a temporary buffer. */
static int tmp_label(sl_loki_req *q, sl_slice name, sl_slice val, bool val_stable)
{
    if (name.n == 0 || val.n == 0) return 0; /* Loki ignores empty values */
    size_t nn, vn;
    const char *np = label_name(q, name, &nn);
    if (!np) return -1;
    const char *vp = label_value(q, val, val_stable, &vn);
    if (!vp) return -1;
    if (vn == 0) return 0; /* nothing acceptable was left */
    return tmp_push(q, np, nn, vp, vn);
}

static int kv_cmp(const sl_loki_kv *a, const sl_loki_kv *b)
{
    size_t n = a->name.n < b->name.n ? a->name.n : b->name.n;
    int c = n ? memcmp(a->name.p, b->name.p, n) : 0;
    if (c) return c;
    return a->name.n < b->name.n ? -1 : a->name.n > b->name.n;
}

/* Sorts q->tmp[from..] by name (stable) and keeps the last of equal names. */
static void tmp_sort_dedup(sl_loki_req *q, uint32_t from)
{
    if (q->ntmp == from) return; /* also: nothing allocated yet */
    sl_loki_kv *v = q->tmp + from;
    uint32_t n = q->ntmp - from;
    for (uint32_t i = 1; i < n; i++) {
        sl_loki_kv x = v[i];
        uint32_t j = i;
        while (j > 0 && kv_cmp(&v[j - 1], &x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (w > 0 && kv_cmp(&v[w - 1], &v[i]) == 0)
            v[w - 1] = v[i];
        else
            v[w++] = v[i];
    }
    q->ntmp = from + w;
}

/* Escapes a label value the way Prometheus' label strings do. */
static int label_value_escape(const char *p, size_t n, sl_buf *b)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_put(b, p + start, i - start)) return -1;
        char t[4] = {'\\', 0, 0, 0};
        size_t tn = 2;
        switch (c) {
        case '"':
            t[1] = '"';
            break;
        case '\\':
            t[1] = '\\';
            break;
        case '\n':
            t[1] = 'n';
            break;
        case '\r':
            t[1] = 'r';
            break;
        case '\t':
            t[1] = 't';
            break;
        default:
            t[1] = 'x';
            t[2] = hexdig[c >> 4];
            t[3] = hexdig[c & 15];
            tn = 4;
        }
        if (buf_put(b, t, tn)) return -1;
        start = i + 1;
    }
    return buf_put(b, p + start, n - start);
}

/* Finds or creates the stream for the label pairs q->tmp[from..]. */
static int stream_for(sl_loki_req *q, uint32_t from, const char *input, uint32_t *out)
{
    sl_buf *t = &q->t1;
    sl_buf_reset(t);
    if (q->ntmp == from) {
        /* Loki rejects a stream without labels. */
        const char *in = input && *input ? input : "sluice";
        if (tmp_label(q, SL_SLICE_LIT("job"), (sl_slice){in, strlen(in)}, true)) return -1;
        if (q->ntmp == from && tmp_push(q, "job", 3, "sluice", 6)) return -1;
    }
    if (BUF_LIT(t, "{")) return -1;
    for (uint32_t i = from; i < q->ntmp; i++) {
        if (i > from && BUF_LIT(t, ", ")) return -1;
        if (buf_put(t, q->tmp[i].name.p, q->tmp[i].name.n) || BUF_LIT(t, "=\"") ||
            label_value_escape(q->tmp[i].value.p, q->tmp[i].value.n, t) || BUF_LIT(t, "\""))
            return -1;
    }
    if (BUF_LIT(t, "}")) return -1;
    uint64_t h = fnv1a(t->p, t->len);
    if (q->tabcap) {
        uint32_t mask = q->tabcap - 1;
        for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
            uint32_t s = q->tab[i];
            if (!s) break;
            stream *st = &q->st[s - 1];
            if (st->hash == h && st->labels_n == t->len && memcmp(st->labels, t->p, t->len) == 0) {
                *out = s - 1;
                return 0;
            }
        }
    }
    /* New stream. Keep the table at most half full. */
    if ((q->nst + 1) * 2 > q->tabcap) {
        uint32_t nc = q->tabcap ? q->tabcap * 2 : 16;
        uint32_t *tab = calloc(nc, sizeof *tab);
        if (!tab) return -1;
        for (uint32_t s = 0; s < q->nst; s++) {
            uint32_t i = (uint32_t)q->st[s].hash & (nc - 1);
            while (tab[i]) i = (i + 1) & (nc - 1);
            tab[i] = s + 1;
        }
        free(q->tab);
        q->tab = tab;
        q->tabcap = nc;
    }
    if (q->nst == q->capst) {
        uint32_t old = q->capst;
        if (grow_array((void **)&q->st, &q->capst, sizeof *q->st, 8)) return -1;
        memset(q->st + old, 0, (q->capst - old) * sizeof *q->st);
    }
    stream *st = &q->st[q->nst];
    const char *lp = scratch_dup(&q->mem, t->p, t->len);
    if (!lp) return -1;
    uint32_t np = q->ntmp - from;
    while (q->npairs + np > q->cappairs)
        if (grow_array((void **)&q->pairs, &q->cappairs, sizeof *q->pairs, 16)) return -1;
    memcpy(q->pairs + q->npairs, q->tmp + from, np * sizeof *q->pairs);
    st->labels = lp;
    st->labels_n = (uint32_t)t->len;
    st->pair_off = q->npairs;
    st->npairs = np;
    q->npairs += np;
    st->hash = h;
    st->n = 0;
    st->last_ts = INT64_MIN;
    st->unsorted = false;
    st->body = 0;
    uint32_t mask = q->tabcap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (q->tab[i]) i = (i + 1) & mask;
    q->tab[i] = q->nst + 1;
    *out = q->nst++;
    return 0;
}

static bool is_meta_field(const sl_loki_opts *o, const sl_field *f, sl_slice key)
{
    if (f->flags & SL_FF_METADATA) return true;
    for (uint32_t i = 0; i < o->nmeta_fields; i++)
        if (sl_slice_eq(key, o->meta_fields[i].p, o->meta_fields[i].n)) return true;
    return false;
}

/* Writes the record's fields as a JSON object into t; *bad when a string
 * had invalid UTF-8 (replaced). */
static int json_line(const sl_record *r, sl_buf *t, bool *bad)
{
    if (BUF_LIT(t, "{")) return -1;
    bool first = true;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if (f->flags & SL_FF_REMOVED) continue;
        if (!first && BUF_LIT(t, ",")) return -1;
        first = false;
        if (BUF_LIT(t, "\"")) return -1;
        if (f->flags & SL_FF_KEY_ESCAPED) {
            if (buf_put(t, f->key.p, f->key.n)) return -1;
        } else if (json_escape(f->key.p, f->key.n, t, bad)) {
            return -1;
        }
        if (BUF_LIT(t, "\":")) return -1;
        int rc;
        switch (f->type) {
        case SL_V_STRING:
            rc = BUF_LIT(t, "\"") || json_escape(f->val.p, f->val.n, t, bad) || BUF_LIT(t, "\"");
            break;
        case SL_V_ESCAPED:
            rc = BUF_LIT(t, "\"") || buf_put(t, f->val.p, f->val.n) || BUF_LIT(t, "\"");
            break;
        case SL_V_TRUE:
            rc = BUF_LIT(t, "true");
            break;
        case SL_V_FALSE:
            rc = BUF_LIT(t, "false");
            break;
        case SL_V_NULL:
            rc = BUF_LIT(t, "null");
            break;
        case SL_V_NUMBER:
        case SL_V_OBJECT:
        case SL_V_ARRAY:
            rc = f->val.n ? buf_put(t, f->val.p, f->val.n) : BUF_LIT(t, "null");
            break;
        default:
            rc = BUF_LIT(t, "\"") || json_escape(f->val.p, f->val.n, t, bad) || BUF_LIT(t, "\"");
        }
        if (rc) return -1;
    }
    return BUF_LIT(t, "}");
}

static bool has_live_fields(const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (!(r->fields[i].flags & SL_FF_REMOVED)) return true;
    return false;
}

static inline uint32_t len_field(uint64_t n)
{
    return n ? 1 + varint_len(n) + (uint32_t)n : 0;
}

static inline void ts_split(int64_t ts, int64_t *sec, int32_t *nsec)
{
    int64_t s = ts / 1000000000;
    int64_t ns = ts % 1000000000;
    if (ns < 0) {
        ns += 1000000000;
        s--;
    }
    *sec = s;
    *nsec = (int32_t)ns;
}

static inline uint32_t ts_body(int64_t ts)
{
    int64_t s;
    int32_t ns;
    ts_split(ts, &s, &ns);
    return (s ? 1 + varint_len((uint64_t)s) : 0) + (ns ? 1 + varint_len((uint64_t)ns) : 0);
}

/* A hash of the record's label fields as raw bytes; 0 when it has none. */
static uint64_t label_sig(const sl_record *r)
{
    uint64_t h = 0;
    bool any = false;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if ((f->flags & (SL_FF_LABEL | SL_FF_REMOVED)) != SL_FF_LABEL) continue;
        any = true;
        h = (h ^ fnv1a(f->key.p, f->key.n)) * 0x9e3779b97f4a7c15ull;
        h = (h ^ fnv1a(f->val.p, f->val.n) ^ ((uint64_t)f->type << 56)) * 0x9e3779b97f4a7c15ull;
    }
    return any ? (h ? h : 1) : 0;
}

static bool same_labels(const sl_record *a, const sl_record *b)
{
    uint32_t i = 0, j = 0;
    for (;;) {
        while (i < a->nfields &&
               (a->fields[i].flags & (SL_FF_LABEL | SL_FF_REMOVED)) != SL_FF_LABEL)
            i++;
        while (j < b->nfields &&
               (b->fields[j].flags & (SL_FF_LABEL | SL_FF_REMOVED)) != SL_FF_LABEL)
            j++;
        if (i == a->nfields || j == b->nfields) return i == a->nfields && j == b->nfields;
        const sl_field *x = &a->fields[i++], *y = &b->fields[j++];
        if (x->type != y->type || x->flags != y->flags || x->key.n != y->key.n ||
            x->val.n != y->val.n || memcmp(x->key.p, y->key.p, x->key.n) != 0 ||
            memcmp(x->val.p, y->val.p, x->val.n) != 0)
            return false;
    }
}

/* The record's tenant (rendered into t3): listed once; 1 when the filter
 * keeps the record, 0 when not, -1 on allocation failure. */
static int record_tenant(sl_loki_req *q, const sl_batch *b, const sl_record *r, uint32_t *adj)
{
    int rc = sl_loki_tpl_render(q->o->tenant, b, r, &q->t3);
    if (rc < 0) return -1;
    if (rc) *adj |= 1u << SL_LOKI_ADJ_TENANT;
    sl_slice t = {q->t3.p, q->t3.len};
    bool known = false;
    for (uint32_t i = q->ntenants; i-- > 0 && !known;) known = sl_slice_eq(q->tenants[i], t.p, t.n);
    if (!known) {
        const char *d = scratch_dup(&q->mem, t.p, t.n);
        if (!d || GROW(q->tenants, q->ntenants, q->captenants, 8)) return -1;
        q->tenants[q->ntenants++] = (sl_slice){d, t.n};
    }
    return !q->tfilter || sl_slice_eq(t, q->tfilter, q->tfilter_n);
}

/* Leaves at most max_label_names pairs in q->tmp[from..]. Left out first
 * are the record's own labels (those not among the nbase shared ones at
 * q->tmp[0..nbase)), alphabetically last first: the static labels that
 * name where a stream comes from stay. */
static void tmp_cap(sl_loki_req *q, uint32_t from, uint32_t nbase)
{
    uint32_t max = q->lim->max_label_names;
    if (!max) return;
    while (q->ntmp - from > max) {
        uint32_t victim = q->ntmp - 1;
        for (uint32_t i = q->ntmp; i-- > from;) {
            bool shared = false;
            for (uint32_t k = 0; k < nbase && !shared; k++)
                shared = kv_cmp(&q->tmp[k], &q->tmp[i]) == 0;
            if (!shared) {
                victim = i;
                break;
            }
        }
        memmove(&q->tmp[victim], &q->tmp[victim + 1], (q->ntmp - victim - 1) * sizeof *q->tmp);
        q->ntmp--;
        q->label_adj |= 1u << SL_LOKI_ADJ_TOO_MANY_LABELS;
    }
}

/* Appends one entry (the line piece lp[0..ln)) to stream si. */
static int add_entry(sl_loki_req *q, uint32_t si, int64_t ts, const char *lp, size_t ln,
                     uint32_t meta_off, sl_err *err)
{
    if (ln > UINT32_MAX / 2) return sl_errf(err, SL_EINVAL, "line too long to encode");
    stream *st = &q->st[si];
    if (GROW(st->e, st->n, st->cap, 64))
        return sl_errf(err, SL_ENOMEM, "out of memory while building a Loki request");
    entry *e = &st->e[st->n++];
    e->ts = ts;
    e->line = lp;
    e->line_n = (uint32_t)ln;
    e->seq = q->seq++;
    e->meta_off = meta_off;
    e->nmeta = q->nmeta - meta_off;
    uint32_t tb = ts_body(e->ts);
    uint64_t size = 1 + varint_len(tb) + tb + len_field(ln);
    for (uint32_t m = meta_off; m < q->nmeta; m++) {
        uint64_t pb = len_field(q->meta[m].name.n) + len_field(q->meta[m].value.n);
        size += 1 + varint_len(pb) + pb;
    }
    if (size > UINT32_MAX) return sl_errf(err, SL_EINVAL, "entry too large to encode");
    e->size = (uint32_t)size;
    st->body += 1 + varint_len(size) + size;
    if (e->ts < st->last_ts)
        st->unsorted = true;
    else
        st->last_ts = e->ts;
    q->nentries++;
    return 0;
}

/* The line as entries under max_line_size: whole, cut, or in pieces cut on
 * character boundaries. Returns the adjustment bits, or -1 with err set. */
static int add_line(sl_loki_req *q, uint32_t si, int64_t ts, const char *lp, size_t ln,
                    uint32_t meta_off, sl_err *err)
{
    uint64_t max = q->lim->max_line_size;
    if (!max || ln <= max) return add_entry(q, si, ts, lp, ln, meta_off, err) ? -1 : 0;
    if (q->lim->long_lines == SL_LOKI_LONG_TRUNCATE) {
        size_t cut = sl_loki_utf8_cut(lp, ln, (size_t)max);
        return add_entry(q, si, ts, lp, cut, meta_off, err) ? -1 : 1 << SL_LOKI_ADJ_LINE_TRUNCATED;
    }
    for (size_t off = 0; off < ln;) {
        size_t cut = sl_loki_utf8_cut(lp + off, ln - off, (size_t)max);
        if (cut == 0) { /* a limit under 4 bytes: one character still goes */
            int k = sl_utf8_seq((const unsigned char *)lp + off, ln - off);
            cut = k > 0 ? (size_t)k : 1;
        }
        if (add_entry(q, si, ts, lp + off, cut, meta_off, err)) return -1;
        off += cut;
    }
    return 1 << SL_LOKI_ADJ_LINE_SPLIT;
}

int sl_loki_req_add(sl_loki_req *q, const sl_batch *b, uint32_t first, uint32_t count, sl_err *err)
{
    const sl_loki_opts *o = q->o;
    if (first > b->nrecords || count > b->nrecords - first)
        return sl_errf(err, SL_EINVAL, "record range %u+%u outside batch of %u", first, count,
                       b->nrecords);
    /* The labels every record of this batch shares. */
    q->ntmp = 0;
    q->label_adj = 0;
    for (uint32_t i = 0; i < o->nlabels; i++)
        if (tmp_label(q, o->labels[i].name, o->labels[i].value, true)) goto nomem;
    for (uint32_t i = 0; i < b->nlabels; i++) {
        const sl_field *f = &b->labels[i];
        sl_slice k, v;
        if (key_text(f, &q->t2, &k)) goto nomem;
        /* key_text may use t2; keep a stable copy before value_text reuses it. */
        const char *kp = scratch_dup(&q->mem, k.p, k.n);
        if (!kp || value_text(f, &q->t1, &v) ||
            tmp_label(q, (sl_slice){kp, k.n}, v, f->type != SL_V_ESCAPED))
            goto nomem;
    }
    tmp_sort_dedup(q, 0);
    tmp_cap(q, 0, 0);
    uint32_t nbase = q->ntmp;
    uint32_t base;
    if (stream_for(q, 0, b->input, &base)) goto nomem;
    const uint32_t base_adj = q->label_adj;

    q->nsig = q->sig_next = 0;
    for (uint32_t ri = first; ri < first + count; ri++) {
        const sl_record *r = &b->records[ri];
        if (r->flags & SL_RF_DROPPED) continue;
        bool rbad = false;
        uint32_t si = base, adj = base_adj;
        uint32_t meta_off = q->nmeta;
        uint64_t h = label_sig(r);
        bool hit = false;
        if (h) {
            for (uint32_t i = 0; i < q->nsig && !hit; i++) {
                if (q->sig[i].h == h && same_labels(q->sig[i].r, r)) {
                    hit = true;
                    si = q->sig[i].stream;
                    adj |= q->sig[i].adj;
                }
            }
        }
        /* Labels and metadata from the record's fields. */
        q->ntmp = nbase;
        q->label_adj = 0;
        for (uint32_t fi = 0; fi < r->nfields; fi++) {
            const sl_field *f = &r->fields[fi];
            if (f->flags & SL_FF_REMOVED) continue;
            bool lab = (f->flags & SL_FF_LABEL) && !hit;
            if (!lab && !(f->flags & SL_FF_METADATA) && o->nmeta_fields == 0) continue;
            if ((f->flags & SL_FF_LABEL) && hit) continue;
            sl_slice k, v;
            if (key_text(f, &q->t2, &k)) goto nomem;
            const char *kp = k.p;
            if (f->flags & SL_FF_KEY_ESCAPED) {
                kp = scratch_dup(&q->mem, k.p, k.n);
                if (!kp) goto nomem;
            }
            k.p = kp;
            if (lab) {
                if (value_text(f, &q->t1, &v) || tmp_label(q, k, v, f->type != SL_V_ESCAPED))
                    goto nomem;
            } else if (is_meta_field(o, f, k)) {
                bool renamed = false;
                const char *ks = norm_name(q, k, q->lim->max_label_name_len, &renamed);
                if (!ks) goto nomem;
                size_t kn = renamed ? q->t3.len : k.n;
                if (renamed) adj |= 1u << SL_LOKI_ADJ_METADATA_NAME;
                if (kn == 0) continue; /* no name is left to send it under */
                size_t vn;
                if (value_text(f, &q->t1, &v)) goto nomem;
                const char *vs = stable_utf8(q, v, f->type != SL_V_ESCAPED, &vn, &rbad);
                if (!vs || GROW(q->meta, q->nmeta, q->capmeta, 64)) goto nomem;
                q->meta[q->nmeta++] = (sl_loki_kv){{ks, kn}, {vs, vn}};
            }
        }
        if (q->ntmp > nbase) {
            /* Record labels: copy the base set in front, then merge. */
            uint32_t from = q->ntmp;
            for (uint32_t i = 0; i < from; i++) {
                if (GROW(q->tmp, q->ntmp, q->captmp, 16)) goto nomem;
                q->tmp[q->ntmp++] = q->tmp[i];
            }
            /* tmp[from..] now holds base + record pairs in order. */
            tmp_sort_dedup(q, from);
            tmp_cap(q, from, nbase);
            if (stream_for(q, from, b->input, &si)) goto nomem;
            uint32_t slot = q->nsig < 16 ? q->nsig++ : (q->sig_next++ & 15);
            q->sig[slot].h = h;
            q->sig[slot].r = r;
            q->sig[slot].stream = si;
            q->sig[slot].adj = q->label_adj;
            adj |= q->label_adj;
        }

        /* Another worker's stream (concurrency > 1): not ours to send. */
        if (q->nparts > 1 &&
            ((q->st[si].hash * 0x9e3779b97f4a7c15ull) >> 32) % q->nparts != q->part) {
            q->nmeta = meta_off;
            continue;
        }

        /* Another tenant's record (a tenant template): its own request. */
        if (o->tenant && sl_loki_tpl_per_record(o->tenant)) {
            int keep = record_tenant(q, b, r, &adj);
            if (keep < 0) goto nomem;
            if (!keep) {
                q->nmeta = meta_off;
                continue;
            }
        }

        /* The time window. */
        int64_t ts = r->time_ns;
        int64_t clamped;
        int w = q->now_ns > 0 ? sl_loki_window_check(q->lim, q->now_ns, ts, &clamped) : 0;
        if (w && q->lim->out_of_window == SL_LOKI_WINDOW_DROP) {
            if (w == SL_LOKI_ADJ_TS_TOO_OLD)
                q->drop_old++;
            else
                q->drop_new++;
            q->nmeta = meta_off;
            continue;
        }
        if (w) {
            /* Sent at the nearest accepted time; the original travels along. */
            char t[48];
            size_t tn = sl_loki_rfc3339(ts, t, sizeof t);
            const char *tv = scratch_dup(&q->mem, t, tn);
            if (!tv || GROW(q->meta, q->nmeta, q->capmeta, 64)) goto nomem;
            q->meta[q->nmeta++] = (sl_loki_kv){SL_SLICE_LIT("original_ts"), {tv, tn}};
            ts = clamped;
            adj |= 1u << w;
        }

        /* The line. */
        const char *lp;
        size_t ln;
        sl_slice src = r->line;
        if (o->line_format == SL_LOKI_LINE_JSON && has_live_fields(r)) {
            sl_buf_reset(&q->t1);
            if (json_line(r, &q->t1, &rbad)) goto nomem;
            src = (sl_slice){q->t1.p, q->t1.len};
            lp = stable_utf8(q, src, false, &ln, &rbad);
            if (!lp) goto nomem;
        } else if (sl_utf8_valid(src.p, src.n)) {
            lp = src.p; /* zero-copy: points into the batch's chunk */
            ln = src.n;
        } else {
            lp = stable_utf8(q, src, false, &ln, &rbad);
            if (!lp) goto nomem;
        }
        if (rbad) q->invalid++;
        int la = add_line(q, si, ts, lp, ln, meta_off, err);
        if (la < 0) return err->code ? err->code : SL_ENOMEM;
        adj |= (uint32_t)la;
        q->nrecords++;
        for (int a = 0; adj && a < SL_LOKI_ADJ_N; a++)
            if (adj & (1u << a)) q->adj[a]++;
    }
    return 0;
nomem:
    return sl_errf(err, SL_ENOMEM, "out of memory while building a Loki request");
}

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void sort_streams(sl_loki_req *q)
{
    for (uint32_t i = 0; i < q->nst; i++) {
        stream *st = &q->st[i];
        if (!st->unsorted) continue;
        /* seq breaks ties, so the order is stable. */
        qsort(st->e, st->n, sizeof *st->e, entry_cmp);
        st->unsorted = false;
        st->last_ts = st->n ? st->e[st->n - 1].ts : INT64_MIN;
    }
}

/* ---- protobuf ---- */

static inline char *put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static inline char *put_len(char *p, uint8_t tag, const char *s, size_t n)
{
    if (!n) return p;
    *p++ = (char)tag;
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

int sl_loki_req_protobuf(sl_loki_req *q, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    uint64_t total = 0;
    for (uint32_t i = 0; i < q->nst; i++) {
        stream *st = &q->st[i];
        if (!st->n) continue;
        uint64_t sb = len_field(st->labels_n) + st->body;
        total += 1 + varint_len(sb) + sb;
    }
    if (total > SIZE_MAX / 2 || buf_reserve(out, (size_t)total))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %llu bytes for a Loki request",
                       (unsigned long long)total);
    char *p = out->p + out->len;
    char *const start = p;
    for (uint32_t i = 0; i < q->nst; i++) {
        const stream *st = &q->st[i];
        if (!st->n) continue;
        /* PushRequest.streams = 1 */
        *p++ = 0x0A;
        p = put_varint(p, len_field(st->labels_n) + st->body);
        /* StreamAdapter.labels = 1 */
        p = put_len(p, 0x0A, st->labels, st->labels_n);
        for (uint32_t k = 0; k < st->n; k++) {
            const entry *e = &st->e[k];
            /* StreamAdapter.entries = 2 */
            *p++ = 0x12;
            p = put_varint(p, e->size);
            /* EntryAdapter.timestamp = 1 {seconds = 1, nanos = 2} */
            int64_t s;
            int32_t ns;
            ts_split(e->ts, &s, &ns);
            *p++ = 0x0A;
            p = put_varint(p, ts_body(e->ts));
            if (s) {
                *p++ = 0x08;
                p = put_varint(p, (uint64_t)s);
            }
            if (ns) {
                *p++ = 0x10;
                p = put_varint(p, (uint64_t)ns);
            }
            /* EntryAdapter.line = 2 */
            p = put_len(p, 0x12, e->line, e->line_n);
            /* EntryAdapter.structuredMetadata = 3 {name = 1, value = 2} */
            for (uint32_t m = e->meta_off; m < e->meta_off + e->nmeta; m++) {
                const sl_loki_kv *kv = &q->meta[m];
                *p++ = 0x1A;
                p = put_varint(p, len_field(kv->name.n) + len_field(kv->value.n));
                p = put_len(p, 0x0A, kv->name.p, kv->name.n);
                p = put_len(p, 0x12, kv->value.p, kv->value.n);
            }
        }
    }
    if ((uint64_t)(p - start) != total)
        return sl_errf(err, SL_EINVAL, "internal: protobuf size mismatch (%llu != %llu)",
                       (unsigned long long)(p - start), (unsigned long long)total);
    out->len += (size_t)total;
    return 0;
}

/* ---- JSON ---- */

static int put_i64(sl_buf *b, int64_t v)
{
    char t[24];
    char *e = t + sizeof t, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return buf_put(b, p, (size_t)(e - p));
}

/* p is valid UTF-8 here (stable_utf8, label_value), so nothing is
 * replaced. */
static int json_str(sl_buf *b, const char *p, size_t n)
{
    bool bad = false;
    return BUF_LIT(b, "\"") || json_escape(p, n, b, &bad) || BUF_LIT(b, "\"");
}

int sl_loki_req_json(sl_loki_req *q, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    size_t n0 = out->len;
    if (BUF_LIT(out, "{\"streams\":[")) goto nomem;
    bool firsts = true;
    for (uint32_t i = 0; i < q->nst; i++) {
        const stream *st = &q->st[i];
        if (!st->n) continue;
        if (!firsts && BUF_LIT(out, ",")) goto nomem;
        firsts = false;
        if (BUF_LIT(out, "{\"stream\":{")) goto nomem;
        for (uint32_t k = 0; k < st->npairs; k++) {
            const sl_loki_kv *kv = &q->pairs[st->pair_off + k];
            if ((k && BUF_LIT(out, ",")) || json_str(out, kv->name.p, kv->name.n) ||
                BUF_LIT(out, ":") || json_str(out, kv->value.p, kv->value.n))
                goto nomem;
        }
        if (BUF_LIT(out, "},\"values\":[")) goto nomem;
        for (uint32_t k = 0; k < st->n; k++) {
            const entry *e = &st->e[k];
            if ((k && BUF_LIT(out, ",")) || BUF_LIT(out, "[\"") || put_i64(out, e->ts) ||
                BUF_LIT(out, "\",") || json_str(out, e->line, e->line_n))
                goto nomem;
            if (e->nmeta) {
                if (BUF_LIT(out, ",{")) goto nomem;
                for (uint32_t m = 0; m < e->nmeta; m++) {
                    const sl_loki_kv *kv = &q->meta[e->meta_off + m];
                    if ((m && BUF_LIT(out, ",")) || json_str(out, kv->name.p, kv->name.n) ||
                        BUF_LIT(out, ":") || json_str(out, kv->value.p, kv->value.n))
                        goto nomem;
                }
                if (BUF_LIT(out, "}")) goto nomem;
            }
            if (BUF_LIT(out, "]")) goto nomem;
        }
        if (BUF_LIT(out, "]}")) goto nomem;
    }
    if (BUF_LIT(out, "]}")) goto nomem;
    return 0;
nomem:
    out->len = n0;
    return sl_errf(err, SL_ENOMEM, "out of memory while writing a Loki JSON request");
}

/* ---- compression ---- */

int sl_loki_snappy(const void *in, size_t n, sl_buf *out, sl_err *err)
{
    size_t max = snappy_max_compressed_length(n);
    sl_buf_reset(out);
    if (buf_reserve(out, max))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for snappy", max);
    size_t got = max;
    if (snappy_compress(in, n, out->p, &got) != SNAPPY_OK)
        return sl_errf(err, SL_EIO, "snappy compression failed");
    out->len = got;
    return 0;
}

int sl_loki_gzip(const void *in, size_t n, sl_buf *out, sl_err *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* Level 1: logs compress well even at the fastest level, and the sink
     * must never be the bottleneck. 15 + 16 = gzip wrapper. */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return sl_errf(err, SL_ENOMEM, "gzip: deflateInit2 failed");
    sl_buf_reset(out);
    size_t bound = deflateBound(&z, (uLong)n) + 32;
    if (n > UINT32_MAX || buf_reserve(out, bound)) {
        deflateEnd(&z);
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for gzip", bound);
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->p;
    z.avail_out = (uInt)(bound > UINT32_MAX ? UINT32_MAX : bound);
    int rc = deflate(&z, Z_FINISH);
    out->len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) return sl_errf(err, SL_EIO, "gzip compression failed (%d)", rc);
    return 0;
}
