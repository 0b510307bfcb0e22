#include "shipper/template.h"

#include "core/json_str.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { PART_LIT, PART_LABEL, PART_LABELS, PART_FIELD, PART_INPUT, PART_SOURCE };

typedef struct part {
    uint8_t kind;
    bool has_dflt;
    const char *s; /* literal text or the label / field name, in text */
    size_t n;
    const char *dflt; /* ${x:-default}, in text */
    size_t dflt_n;
} part;

struct sl_tpl {
    char *text; /* owns what the parts point into */
    unsigned uses;
    int nparts;
    part parts[SL_TPL_MAX_PARTS];
};

/* ---- compiling --------------------------------------------------------- */

void sl_tpl_free(sl_tpl *t)
{
    if (!t) return;
    free(t->text);
    free(t);
}

unsigned sl_tpl_uses(const sl_tpl *t)
{
    return t ? t->uses : 0;
}

static int refuse(sl_tpl *t, int code, sl_err *err, const char *fmt, int n, const char *arg,
                  const char *arg2)
{
    sl_errf(err, code, fmt, n, arg, arg2);
    sl_tpl_free(t);
    return code;
}

/* Fills pt from the inside of ${...} (between the braces). */
static int reference(sl_tpl *t, part *pt, const char *in, const char *close,
                     const sl_tpl_rules *rules, sl_err *err)
{
    const char *in_end = close;
    for (const char *q = in; q + 1 < close; q++)
        if (q[0] == ':' && q[1] == '-') {
            pt->has_dflt = true;
            pt->dflt = q + 2;
            pt->dflt_n = (size_t)(close - q - 2);
            in_end = q;
            break;
        }
    size_t n = (size_t)(in_end - in);
    int whole = (int)(close - in);
    if (n > 7 && memcmp(in, "labels.", 7) == 0) {
        pt->kind = PART_LABEL, pt->s = in + 7, pt->n = n - 7;
        t->uses |= SL_TPL_USES_LABELS;
    } else if (n == 6 && memcmp(in, "labels", 6) == 0 && rules->label_set) {
        pt->kind = PART_LABELS;
        t->uses |= SL_TPL_USES_LABELS;
    } else if (n > 7 && memcmp(in, "fields.", 7) == 0) {
        pt->kind = PART_FIELD, pt->s = in + 7, pt->n = n - 7;
        t->uses |= SL_TPL_USES_FIELDS;
    } else if (n == 5 && memcmp(in, "input", 5) == 0) {
        pt->kind = PART_INPUT;
        t->uses |= SL_TPL_USES_INPUT;
    } else if (n == 6 && memcmp(in, "source", 6) == 0) {
        pt->kind = PART_SOURCE;
        t->uses |= SL_TPL_USES_SOURCE;
    } else {
        return refuse(t, SL_EINVAL, err,
                      "unknown reference '${%.*s}' (use ${labels.NAME}, ${fields.NAME}, "
                      "${input} or ${source}%s)",
                      whole, in, rules->label_set ? ", or ${labels}" : "");
    }
    if (rules->need_default && (pt->kind == PART_LABEL || pt->kind == PART_FIELD) &&
        (!pt->has_dflt || pt->dflt_n == 0))
        return refuse(t, SL_EINVAL, err,
                      "'${%.*s}' needs a default for records without it, e.g. "
                      "${labels.team:-ops}%s",
                      whole, in, "");
    if (pt->has_dflt && rules->text_ok && !rules->text_ok(pt->dflt, pt->dflt_n))
        return refuse(t, SL_EINVAL, err, "default '%.*s' has characters %s", (int)pt->dflt_n,
                      pt->dflt, rules->text_rule ? rules->text_rule : "not allowed here");
    return SL_OK;
}

int sl_tpl_compile(const char *text, const sl_tpl_rules *rules, sl_tpl **out, sl_err *err)
{
    static const sl_tpl_rules none = {0};
    if (!rules) rules = &none;
    *out = NULL;
    sl_tpl *t = calloc(1, sizeof *t);
    if (!t || !(t->text = strdup(text))) {
        free(t);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    const char *p = t->text, *end = p + strlen(p);
    while (p < end) {
        if (t->nparts == SL_TPL_MAX_PARTS)
            return refuse(t, SL_EINVAL, err, "more than %d parts%s%s", SL_TPL_MAX_PARTS, "", "");
        part *pt = &t->parts[t->nparts];
        if (p[0] == '$' && p + 1 < end && p[1] == '$') {
            *pt = (part){.kind = PART_LIT, .s = p, .n = 1};
            p += 2;
        } else if (p[0] == '$' && p + 1 < end && p[1] == '{') {
            const char *close = memchr(p + 2, '}', (size_t)(end - p - 2));
            if (!close)
                return refuse(t, SL_EINVAL, err, "unterminated ${ in '%.*s'%s", (int)strlen(text),
                              text, "");
            int rc = reference(t, pt, p + 2, close, rules, err);
            if (rc != SL_OK) return rc;
            p = close + 1;
        } else {
            const char *d = memchr(p + 1, '$', (size_t)(end - p - 1));
            if (!d) d = end;
            *pt = (part){.kind = PART_LIT, .s = p, .n = (size_t)(d - p)};
            if (rules->text_ok && !rules->text_ok(pt->s, pt->n))
                return refuse(t, SL_EINVAL, err, "'%.*s' has characters %s", (int)pt->n, pt->s,
                              rules->text_rule ? rules->text_rule : "not allowed here");
            p = d;
        }
        t->nparts++;
    }
    *out = t;
    return SL_OK;
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct wbuf {
    char *p;
    size_t len, cap;
    bool over;    /* something did not fit */
    bool escaped; /* inside ${labels}: '"', '\' and newline are escaped */
} wbuf;

static void wput_raw(wbuf *w, const char *p, size_t n)
{
    if (n > w->cap - w->len) {
        n = w->cap - w->len;
        w->over = true;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void wput(wbuf *w, const char *p, size_t n)
{
    if (!w->escaped) {
        wput_raw(w, p, n);
        return;
    }
    for (size_t i = 0; i < n && !w->over; i++) {
        const char *run = p + i;
        size_t k = 0;
        while (i + k < n && p[i + k] != '"' && p[i + k] != '\\' && p[i + k] != '\n') k++;
        wput_raw(w, run, k);
        i += k;
        if (i == n) break;
        if (p[i] == '\n')
            wput_raw(w, "\\n", 2);
        else
            wput_raw(w, "\\", 1), wput_raw(w, p + i, 1);
    }
}

static void put_utf8(wbuf *w, uint32_t cp)
{
    char u[4];
    wput(w, u, sl_json_utf8_put(u, cp));
}

static char simple_escape(char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/* JSON string content with its escapes resolved; a malformed escape is kept
 * as written rather than failing the record (a key or a tenant is still
 * better than none). */
static void put_unescaped(wbuf *w, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end && !w->over) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            wput(w, p, (size_t)(end - p));
            return;
        }
        wput(w, p, (size_t)(bs - p));
        p = bs;
        if (end - p < 2) {
            wput(w, p, (size_t)(end - p));
            return;
        }
        char out = simple_escape(p[1]);
        if (out) {
            wput(w, &out, 1);
            p += 2;
            continue;
        }
        int32_t hi = p[1] == 'u' ? sl_json_hex4(p + 2, (size_t)(end - p - 2)) : -1;
        if (hi < 0) {
            wput(w, p, 2);
            p += 2;
            continue;
        }
        uint32_t cp = (uint32_t)hi;
        size_t used = 6;
        if (hi >= 0xd800 && hi < 0xdc00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
            int32_t lo = sl_json_hex4(p + 8, (size_t)(end - p - 8));
            if (lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                used = 12;
            }
        }
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* lone surrogate */
        put_utf8(w, cp);
        p += used;
    }
}

static void put_value(wbuf *w, const sl_field *f)
{
    if (f->type == SL_V_ESCAPED)
        put_unescaped(w, f->val.p, f->val.n);
    else
        wput(w, f->val.p, f->val.n);
}

size_t sl_tpl_value(const sl_field *f, char *out, size_t cap)
{
    wbuf w = {out, 0, cap, false, false};
    put_value(&w, f);
    return w.len;
}

static bool is_label(const sl_field *f)
{
    return (f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED);
}

int sl_tpl_labels(const sl_batch *b, const sl_record *r, const sl_field **out)
{
    int n = 0;
    for (uint32_t i = 0; b && i < b->nlabels && n < SL_TPL_MAX_LABELS; i++)
        out[n++] = &b->labels[i];
    for (uint32_t i = 0; r && i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if (!is_label(f)) continue;
        int j = 0;
        while (j < n && !sl_slice_eq(out[j]->key, f->key.p, f->key.n)) j++;
        if (j < n)
            out[j] = f;
        else if (n < SL_TPL_MAX_LABELS)
            out[n++] = f;
    }
    return n;
}

static const sl_field *find_label(const sl_batch *b, const sl_record *r, const char *k, size_t n)
{
    for (uint32_t i = r ? r->nfields : 0; i-- > 0;) {
        const sl_field *f = &r->fields[i];
        if (is_label(f) && sl_slice_eq(f->key, k, n)) return f;
    }
    for (uint32_t i = 0; b && i < b->nlabels; i++)
        if (sl_slice_eq(b->labels[i].key, k, n)) return &b->labels[i];
    return NULL;
}

static int cmp_label(const sl_field *a, const sl_field *b)
{
    size_t n = a->key.n < b->key.n ? a->key.n : b->key.n;
    int c = n ? memcmp(a->key.p, b->key.p, n) : 0;
    return c ? c : (a->key.n > b->key.n) - (a->key.n < b->key.n);
}

/* ${labels}: {k="v",...} sorted by name, values escaped as in
 * Prometheus/Loki label sets, so one stream always renders the same. */
static void put_label_set(wbuf *w, const sl_batch *b, const sl_record *r)
{
    const sl_field *l[SL_TPL_MAX_LABELS];
    int n = sl_tpl_labels(b, r, l);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cmp_label(l[j - 1], l[j]) > 0; j--) {
            const sl_field *x = l[j];
            l[j] = l[j - 1], l[j - 1] = x;
        }
    wput(w, "{", 1);
    for (int i = 0; i < n && !w->over; i++) {
        if (i) wput(w, ",", 1);
        wput(w, l[i]->key.p, l[i]->key.n);
        wput(w, "=\"", 2);
        w->escaped = true;
        put_value(w, l[i]);
        w->escaped = false;
        wput(w, "\"", 1);
    }
    wput(w, "}", 1);
}

size_t sl_tpl_render(const sl_tpl *t, const sl_batch *b, const sl_record *r, char *out, size_t cap,
                     bool *cut)
{
    wbuf w = {out, 0, cap, false, false};
    for (int i = 0; i < t->nparts && !w.over; i++) {
        const part *pt = &t->parts[i];
        const sl_field *f = NULL;
        const char *str = NULL;
        switch (pt->kind) {
        case PART_LIT:
            wput(&w, pt->s, pt->n);
            continue;
        case PART_LABELS:
            put_label_set(&w, b, r);
            continue;
        case PART_LABEL:
            f = find_label(b, r, pt->s, pt->n);
            break;
        case PART_FIELD:
            f = r ? sl_record_field(r, pt->s, pt->n) : NULL;
            break;
        case PART_INPUT:
            str = b ? b->input : NULL;
            break;
        case PART_SOURCE:
            str = b ? b->source : NULL;
            break;
        }
        size_t before = w.len;
        if (f)
            put_value(&w, f);
        else if (str)
            wput(&w, str, strlen(str));
        if (w.len == before && pt->has_dflt) wput(&w, pt->dflt, pt->dflt_n);
    }
    if (cut) *cut = w.over;
    return w.len;
}

bool sl_tpl_varies(const sl_tpl *t, const sl_record *r)
{
    if (t->uses & SL_TPL_USES_FIELDS) return true;
    if (!(t->uses & SL_TPL_USES_LABELS)) return false;
    for (uint32_t i = 0; i < r->nfields; i++)
        if (is_label(&r->fields[i])) return true;
    return false;
}
