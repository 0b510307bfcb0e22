#include "shipper/loki_tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "shipper/loki_limits.h"

#define TPL_MAX_PARTS 16
#define TENANT_MAX    150

enum { PART_LIT, PART_LABEL, PART_FIELD, PART_INPUT, PART_SOURCE };

typedef struct part {
    int kind;
    const char *s; /* literal text, or the label / field name */
    size_t n;
    const char *dflt;
    size_t dflt_n;
    bool has_dflt;
} part;

struct sl_loki_tpl {
    char *text; /* owns what the parts point into */
    part parts[TPL_MAX_PARTS];
    int nparts;
    bool per_record;
};

void sl_loki_tpl_free(sl_loki_tpl *t)
{
    if (!t) return;
    free(t->text);
    free(t);
}

bool sl_loki_tpl_per_record(const sl_loki_tpl *t)
{
    return t && t->per_record;
}

static int fail(sl_loki_tpl *t, char *why, size_t cap, const char *msg, const char *arg, size_t n)
{
    snprintf(why, cap, msg, (int)n, arg);
    sl_loki_tpl_free(t);
    return SL_EINVAL;
}

static bool tenant_chars_ok(const char *p, size_t n)
{
    char why[200];
    /* Pieces are checked by the whole-tenant rule, which also refuses "",
     * "." and "..": only the characters matter here. */
    for (size_t i = 0; i < n; i++)
        if (sl_loki_tenant_check(p + i, 1, why, sizeof why) != 0 && p[i] != '.') return false;
    return true;
}

int sl_loki_tpl_parse(const char *text, sl_loki_tpl **out, char *why, size_t cap)
{
    sl_loki_tpl *t = calloc(1, sizeof *t);
    if (!t || !(t->text = strdup(text))) {
        free(t);
        snprintf(why, cap, "out of memory");
        return SL_ENOMEM;
    }
    const char *p = t->text, *end = p + strlen(p);
    while (p < end) {
        if (t->nparts == TPL_MAX_PARTS) return fail(t, why, cap, "more than 16 parts%.*s", "", 0);
        part *pt = &t->parts[t->nparts];
        if (p[0] == '$' && p + 1 < end && p[1] == '$') {
            *pt = (part){.kind = PART_LIT, .s = p, .n = 1};
            p += 2;
        } else if (p[0] == '$' && p + 1 < end && p[1] == '{') {
            const char *close = memchr(p + 2, '}', (size_t)(end - p - 2));
            if (!close) return fail(t, why, cap, "unterminated ${ in '%.*s'", text, strlen(text));
            const char *in = p + 2, *in_end = close;
            for (const char *q = in; q + 1 < close; q++)
                if (q[0] == ':' && q[1] == '-') {
                    pt->has_dflt = true;
                    pt->dflt = q + 2;
                    pt->dflt_n = (size_t)(close - q - 2);
                    in_end = q;
                    break;
                }
            size_t n = (size_t)(in_end - in);
            if (n > 7 && memcmp(in, "labels.", 7) == 0)
                pt->kind = PART_LABEL, pt->s = in + 7, pt->n = n - 7;
            else if (n > 7 && memcmp(in, "fields.", 7) == 0)
                pt->kind = PART_FIELD, pt->s = in + 7, pt->n = n - 7;
            else if (n == 5 && memcmp(in, "input", 5) == 0)
                pt->kind = PART_INPUT, t->per_record = true;
            else if (n == 6 && memcmp(in, "source", 6) == 0)
                pt->kind = PART_SOURCE, t->per_record = true;
            else
                return fail(t, why, cap,
                            "unknown reference '${%.*s}' (use ${labels.NAME}, ${fields.NAME}, "
                            "${input} or ${source})",
                            in, (size_t)(close - in));
            if (pt->kind == PART_LABEL || pt->kind == PART_FIELD) {
                t->per_record = true;
                if (!pt->has_dflt || pt->dflt_n == 0)
                    return fail(t, why, cap,
                                "'${%.*s}' needs a default for records without it, e.g. "
                                "${labels.team:-ops}",
                                in, (size_t)(close - in));
            }
            if (pt->has_dflt && !tenant_chars_ok(pt->dflt, pt->dflt_n))
                return fail(t, why, cap,
                            "default '%.*s' has characters Loki refuses in a tenant (allowed: "
                            "letters, digits and !-_.*'())",
                            pt->dflt, pt->dflt_n);
            p = close + 1;
        } else {
            const char *d = memchr(p + 1, '$', (size_t)(end - p - 1));
            if (!d) d = end;
            *pt = (part){.kind = PART_LIT, .s = p, .n = (size_t)(d - p)};
            if (!tenant_chars_ok(pt->s, pt->n))
                return fail(t, why, cap,
                            "'%.*s' has characters Loki refuses in a tenant (allowed: letters, "
                            "digits and !-_.*'())",
                            pt->s, pt->n);
            p = d;
        }
        t->nparts++;
    }
    *out = t;
    return 0;
}

/* The value of a label of the record (its label fields win over the
 * batch's labels), or of any field; empty when absent. */
static sl_slice lookup(const sl_batch *b, const sl_record *r, const part *pt)
{
    for (uint32_t i = r->nfields; i-- > 0;) {
        const sl_field *f = &r->fields[i];
        if (f->flags & SL_FF_REMOVED) continue;
        if (pt->kind == PART_LABEL && !(f->flags & SL_FF_LABEL)) continue;
        if (f->key.n == pt->n && memcmp(f->key.p, pt->s, pt->n) == 0) return f->val;
    }
    if (pt->kind == PART_LABEL)
        for (uint32_t i = b->nlabels; i-- > 0;) {
            const sl_field *f = &b->labels[i];
            if (f->key.n == pt->n && memcmp(f->key.p, pt->s, pt->n) == 0) return f->val;
        }
    return (sl_slice){"", 0};
}

int sl_loki_tpl_render(const sl_loki_tpl *t, const sl_batch *b, const sl_record *r, sl_buf *out)
{
    sl_buf_reset(out);
    for (int i = 0; i < t->nparts; i++) {
        const part *pt = &t->parts[i];
        sl_slice v;
        switch (pt->kind) {
        case PART_LIT:
            v = (sl_slice){pt->s, pt->n};
            break;
        case PART_INPUT:
            v = (sl_slice){b->input ? b->input : "", b->input ? strlen(b->input) : 0};
            break;
        case PART_SOURCE:
            v = (sl_slice){b->source ? b->source : "", b->source ? strlen(b->source) : 0};
            break;
        default:
            v = lookup(b, r, pt);
        }
        if (v.n == 0 && pt->has_dflt) v = (sl_slice){pt->dflt, pt->dflt_n};
        if (sl_buf_append(out, v.p, v.n)) return SL_ENOMEM;
    }
    /* Made acceptable: other bytes become '_', at most 150, never empty,
     * "." or "..". */
    int changed = 0;
    for (size_t i = 0; i < out->len; i++) {
        unsigned char c = (unsigned char)out->p[i];
        char why[8];
        if (c != '.' && sl_loki_tenant_check(out->p + i, 1, why, sizeof why) != 0) {
            out->p[i] = '_';
            changed = 1;
        }
    }
    if (out->len > TENANT_MAX) {
        out->len = TENANT_MAX;
        out->p[out->len] = '\0';
        changed = 1;
    }
    if (out->len == 0 || (out->len <= 2 && strspn(out->p, ".") == out->len)) {
        sl_buf_reset(out);
        if (sl_buf_append(out, "_", 1)) return SL_ENOMEM;
        changed = 1;
    }
    return changed;
}
