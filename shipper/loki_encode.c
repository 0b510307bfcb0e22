/* The Loki request model: records of one or more batches become entries
 * of streams, every string repaired to what Loki accepts (the rules are in
 * loki_limits.c). Label sets become streams in loki_streams.c; the built
 * request is written out in loki_wire.c; loki_req.h is what they share. */
#include "shipper/loki_encode.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "core/utf8.h"
#include "shipper/loki_req.h"

/* ---- UTF-8 ---- */

long sl_loki_utf8_sanitize(const char *s, size_t n, sl_buf *out)
{
    if (n > SIZE_MAX / 3 || buf_reserve(out, 3 * n)) return SL_ENOMEM;
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
    if (buf_reserve(b, n)) return SL_ENOMEM;
    if (sl_json_unescape_to(p, n, b->p + b->len, n, SL_JSON_BAD_KEEP, &o) != SL_OK)
        return SL_ENOMEM;
    b->len += o;
    b->p[b->len] = '\0';
    return 0;
}

/* Appends p escaped as a JSON string body; invalid UTF-8 becomes U+FFFD and
 * sets *bad. */
int sl_loki_json_escape(const char *p, size_t n, sl_buf *b, bool *bad)
{
    if (n > (SIZE_MAX - 32) / 6 || buf_reserve(b, SL_JSON_ESCAPE_ROOM(n))) return SL_ENOMEM;
    size_t replaced = 0;
    b->len += sl_json_escape_to(b->p + b->len, p, n, &replaced);
    b->p[b->len] = '\0';
    if (replaced) *bad = true;
    return 0;
}

/* ---- scratch memory with stable addresses ---- */

static void scratch_reset(sl_loki_scratch *s)
{
    for (size_t i = 0; i < s->n; i++) s->v[i].used = 0;
    s->cur = 0;
}

static void scratch_free(sl_loki_scratch *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i].p);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static char *scratch_alloc(sl_loki_scratch *s, size_t n)
{
    while (s->cur < s->n) {
        sl_loki_scratch_block *b = &s->v[s->cur];
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
        sl_loki_scratch_block *v = realloc(s->v, cap * sizeof *v);
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
    s->v[s->cur] = (sl_loki_scratch_block){p, cap, n};
    s->n++;
    return p;
}

const char *sl_loki_scratch_dup(sl_loki_scratch *s, const char *p, size_t n)
{
    char *d = scratch_alloc(s, n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

/* ---- the request model ---- */

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

int sl_loki_grow_array(void **arr, uint32_t *cap, size_t elem, uint32_t min)
{
    uint32_t nc = *cap ? *cap * 2 : min;
    if (nc < *cap || (size_t)nc > SIZE_MAX / elem) return SL_ENOMEM;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return SL_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* A field value as text (unescaped, JSON literal or raw), in t (reset). */
static int value_text(const sl_field *f, sl_buf *t, sl_slice *out)
{
    if (f->type == SL_V_ESCAPED) {
        sl_buf_reset(t);
        if (json_unescape(f->val.p, f->val.n, t)) return SL_ENOMEM;
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
        if (json_unescape(f->key.p, f->key.n, t)) return SL_ENOMEM;
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
        return stable ? s.p : sl_loki_scratch_dup(&q->mem, s.p, s.n);
    }
    sl_buf_reset(&q->t2);
    long r = sl_loki_utf8_sanitize(s.p, s.n, &q->t2);
    if (r < 0) return NULL;
    *bad = true;
    *n = q->t2.len;
    return sl_loki_scratch_dup(&q->mem, q->t2.p, q->t2.len);
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
    if (BUF_LIT(t, "{")) return SL_ENOMEM;
    bool first = true;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if (f->flags & SL_FF_REMOVED) continue;
        if (!first && BUF_LIT(t, ",")) return SL_ENOMEM;
        first = false;
        if (BUF_LIT(t, "\"")) return SL_ENOMEM;
        if (f->flags & SL_FF_KEY_ESCAPED) {
            if (buf_put(t, f->key.p, f->key.n)) return SL_ENOMEM;
        } else if (sl_loki_json_escape(f->key.p, f->key.n, t, bad)) {
            return SL_ENOMEM;
        }
        if (BUF_LIT(t, "\":")) return SL_ENOMEM;
        int rc;
        switch (f->type) {
        case SL_V_STRING:
            rc = BUF_LIT(t, "\"") || sl_loki_json_escape(f->val.p, f->val.n, t, bad) ||
                 BUF_LIT(t, "\"");
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
            rc = BUF_LIT(t, "\"") || sl_loki_json_escape(f->val.p, f->val.n, t, bad) ||
                 BUF_LIT(t, "\"");
        }
        if (rc) return SL_ENOMEM;
    }
    return BUF_LIT(t, "}");
}

static bool has_live_fields(const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (!(r->fields[i].flags & SL_FF_REMOVED)) return true;
    return false;
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
 * keeps the record, 0 when not, SL_ENOMEM on allocation failure. */
static int record_tenant(sl_loki_req *q, const sl_batch *b, const sl_record *r, uint32_t *adj)
{
    int rc = sl_loki_tpl_render(q->o->tenant, b, r, &q->t3);
    if (rc < 0) return rc;
    if (rc) *adj |= 1u << SL_LOKI_ADJ_TENANT;
    sl_slice t = {q->t3.p, q->t3.len};
    bool known = false;
    for (uint32_t i = q->ntenants; i-- > 0 && !known;) known = sl_slice_eq(q->tenants[i], t.p, t.n);
    if (!known) {
        const char *d = sl_loki_scratch_dup(&q->mem, t.p, t.n);
        if (!d || GROW(q->tenants, q->ntenants, q->captenants, 8)) return SL_ENOMEM;
        q->tenants[q->ntenants++] = (sl_slice){d, t.n};
    }
    return !q->tfilter || sl_slice_eq(t, q->tfilter, q->tfilter_n);
}

/* Appends one entry (the line piece lp[0..ln)) to stream si. */
static int add_entry(sl_loki_req *q, uint32_t si, int64_t ts, const char *lp, size_t ln,
                     uint32_t meta_off, sl_err *err)
{
    if (ln > UINT32_MAX / 2) return sl_errf(err, SL_EINVAL, "line too long to encode");
    sl_loki_stream *st = &q->st[si];
    if (GROW(st->e, st->n, st->cap, 64))
        return sl_errf(err, SL_ENOMEM, "out of memory while building a Loki request");
    sl_loki_entry *e = &st->e[st->n++];
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
        if (add_entry(q, si, ts, lp + off, cut, meta_off, err)) return SL_ENOMEM;
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
        if (sl_loki_tmp_label(q, o->labels[i].name, o->labels[i].value, true)) goto nomem;
    for (uint32_t i = 0; i < b->nlabels; i++) {
        const sl_field *f = &b->labels[i];
        sl_slice k, v;
        if (key_text(f, &q->t2, &k)) goto nomem;
        /* key_text may use t2; keep a stable copy before value_text reuses it. */
        const char *kp = sl_loki_scratch_dup(&q->mem, k.p, k.n);
        if (!kp || value_text(f, &q->t1, &v) ||
            sl_loki_tmp_label(q, (sl_slice){kp, k.n}, v, f->type != SL_V_ESCAPED))
            goto nomem;
    }
    sl_loki_tmp_sort_dedup(q, 0);
    sl_loki_tmp_cap(q, 0, 0);
    uint32_t nbase = q->ntmp;
    uint32_t base;
    if (sl_loki_stream_for(q, 0, b->input, &base)) goto nomem;
    const uint32_t base_adj = q->label_adj;

    q->nsig = q->sig_next = 0;
    for (uint32_t ri = first; ri < first + count; ri++) {
        const sl_record *r = &b->records[ri];
        if (ri + SL_RECORD_PREFETCH_AHEAD < first + count)
            sl_record_prefetch_fields(&b->records[ri + SL_RECORD_PREFETCH_AHEAD]);
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
                kp = sl_loki_scratch_dup(&q->mem, k.p, k.n);
                if (!kp) goto nomem;
            }
            k.p = kp;
            if (lab) {
                if (value_text(f, &q->t1, &v) ||
                    sl_loki_tmp_label(q, k, v, f->type != SL_V_ESCAPED))
                    goto nomem;
            } else if (is_meta_field(o, f, k)) {
                bool renamed = false;
                const char *ks = sl_loki_norm_name(q, k, q->lim->max_label_name_len, &renamed);
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
            sl_loki_tmp_sort_dedup(q, from);
            sl_loki_tmp_cap(q, from, nbase);
            if (sl_loki_stream_for(q, from, b->input, &si)) goto nomem;
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
            const char *tv = sl_loki_scratch_dup(&q->mem, t, tn);
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
        } else if ((r->flags & SL_RF_LINE_UTF8) || sl_utf8_valid(src.p, src.n)) {
            /* zero-copy: points into the batch's chunk; the json step
             * already validated a line it parsed whole (SL_RF_LINE_UTF8) */
            lp = src.p;
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
