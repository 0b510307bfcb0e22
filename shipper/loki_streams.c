/* Label sets to streams: names and values repaired as Loki's parser wants
 * them (loki_limits.c has the rules), merged and capped, then looked up in
 * the request's stream table by their `{a="x"}` string. */
#include <stdlib.h>
#include <string.h>

#include "shipper/loki_req.h"

static const char hexdig[] = "0123456789abcdef";

/* A label or metadata name normalised as Loki does (loki_limits.h): s
 * itself (which lives as long as the request) when it is valid, else a
 * copy in scratch with *changed set. NULL on allocation failure. */
const char *sl_loki_norm_name(sl_loki_req *q, sl_slice s, size_t max, bool *changed)
{
    if (sl_loki_name_valid(s.p, s.n) && (!max || s.n <= max)) return s.p;
    sl_buf_reset(&q->t3);
    int rc = sl_loki_name_normalize(s.p, s.n, max, &q->t3);
    if (rc < 0) return NULL;
    if (rc) *changed = true;
    return sl_loki_scratch_dup(&q->mem, q->t3.p, q->t3.len);
}

/* Loki label names match [a-zA-Z_][a-zA-Z0-9_]*, up to max_label_name_length. */
static const char *label_name(sl_loki_req *q, sl_slice s, size_t *n)
{
    bool changed = false;
    const char *d = sl_loki_norm_name(q, s, q->lim->max_label_name_len, &changed);
    if (!d) return NULL;
    if (changed) q->label_adj |= 1u << SL_LOKI_ADJ_LABEL_NAME;
    *n = changed ? q->t3.len : s.n;
    return d;
}

/* A label value Loki's label parser accepts (loki_limits.h), stable as in
 * stable_utf8 (loki_encode.c): val itself when stable, else a copy. */
static const char *label_value(sl_loki_req *q, sl_slice s, bool stable, size_t *n)
{
    size_t max = q->lim->max_label_value_len;
    if (sl_loki_label_value_ok(s.p, s.n, max)) {
        *n = s.n;
        return stable ? s.p : sl_loki_scratch_dup(&q->mem, s.p, s.n);
    }
    sl_buf_reset(&q->t3);
    int adj = sl_loki_label_value(s.p, s.n, max, &q->t3);
    if (adj < 0) return NULL;
    q->label_adj |= (uint32_t)adj;
    *n = q->t3.len;
    return sl_loki_scratch_dup(&q->mem, q->t3.p, q->t3.len);
}

static int tmp_push(sl_loki_req *q, const char *name, size_t nn, const char *val, size_t vn)
{
    if (GROW(q->tmp, q->ntmp, q->captmp, 16)) return SL_ENOMEM;
    q->tmp[q->ntmp++] = (sl_loki_kv){{name, nn}, {val, vn}};
    return 0;
}

/* Adds a (name, value) label candidate; val_stable: val lives in the batch
 * or the options rather than in a temporary buffer. */
int sl_loki_tmp_label(sl_loki_req *q, sl_slice name, sl_slice val, bool val_stable)
{
    if (name.n == 0 || val.n == 0) return 0; /* Loki ignores empty values */
    size_t nn, vn;
    const char *np = label_name(q, name, &nn);
    if (!np) return SL_ENOMEM;
    const char *vp = label_value(q, val, val_stable, &vn);
    if (!vp) return SL_ENOMEM;
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
void sl_loki_tmp_sort_dedup(sl_loki_req *q, uint32_t from)
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
        if (buf_put(b, p + start, i - start)) return SL_ENOMEM;
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
        if (buf_put(b, t, tn)) return SL_ENOMEM;
        start = i + 1;
    }
    return buf_put(b, p + start, n - start);
}

/* Finds or creates the stream for the label pairs q->tmp[from..]. */
int sl_loki_stream_for(sl_loki_req *q, uint32_t from, const char *input, uint32_t *out)
{
    sl_buf *t = &q->t1;
    sl_buf_reset(t);
    if (q->ntmp == from) {
        /* Loki rejects a stream without labels. */
        const char *in = input && *input ? input : "sluice";
        if (sl_loki_tmp_label(q, SL_SLICE_LIT("job"), (sl_slice){in, strlen(in)}, true))
            return SL_ENOMEM;
        if (q->ntmp == from && tmp_push(q, "job", 3, "sluice", 6)) return SL_ENOMEM;
    }
    if (BUF_LIT(t, "{")) return SL_ENOMEM;
    for (uint32_t i = from; i < q->ntmp; i++) {
        if (i > from && BUF_LIT(t, ", ")) return SL_ENOMEM;
        if (buf_put(t, q->tmp[i].name.p, q->tmp[i].name.n) || BUF_LIT(t, "=\"") ||
            label_value_escape(q->tmp[i].value.p, q->tmp[i].value.n, t) || BUF_LIT(t, "\""))
            return SL_ENOMEM;
    }
    if (BUF_LIT(t, "}")) return SL_ENOMEM;
    uint64_t h = fnv1a(t->p, t->len);
    if (q->tabcap) {
        uint32_t mask = q->tabcap - 1;
        for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
            uint32_t s = q->tab[i];
            if (!s) break;
            sl_loki_stream *st = &q->st[s - 1];
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
        if (!tab) return SL_ENOMEM;
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
        if (sl_loki_grow_array((void **)&q->st, &q->capst, sizeof *q->st, 8)) return SL_ENOMEM;
        memset(q->st + old, 0, (q->capst - old) * sizeof *q->st);
    }
    sl_loki_stream *st = &q->st[q->nst];
    const char *lp = sl_loki_scratch_dup(&q->mem, t->p, t->len);
    if (!lp) return SL_ENOMEM;
    uint32_t np = q->ntmp - from;
    while (q->npairs + np > q->cappairs)
        if (sl_loki_grow_array((void **)&q->pairs, &q->cappairs, sizeof *q->pairs, 16))
            return SL_ENOMEM;
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

/* Leaves at most max_label_names pairs in q->tmp[from..]. Left out first
 * are the record's own labels (those not among the nbase shared ones at
 * q->tmp[0..nbase)), alphabetically last first: the static labels that
 * name where a stream comes from stay. */
void sl_loki_tmp_cap(sl_loki_req *q, uint32_t from, uint32_t nbase)
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
