#include "parsers/chain.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"

#define MAX_STEPS 32
#define MAX_NAMES 32

enum step_kind { STEP_LABELS, STEP_DROP, STEP_KEEP, STEP_RENAME, STEP_REMOVE };

static const char *const step_names[] = {"labels", "drop", "keep", "rename", "remove"};

typedef struct step {
    int kind;
    const char *field; /* NULL: the record's line */
    pcre2_code *re;
    pcre2_match_data *md;
    const char *from[MAX_NAMES], *to[MAX_NAMES]; /* labels/rename: from field -> to name */
    size_t nnames;
    sl_metric *errors, *dropped;
} step;

struct sl_chain {
    step steps[MAX_STEPS];
    size_t n;
    sl_metric *records_dropped;
};

static const sl_cfg_key filter_keys[] = {
    {"field", SL_KEY_STR, false, NULL, false},
    {"regex", SL_KEY_STR, true, NULL, false},
};
static const sl_cfg_key remove_keys[] = {
    {"fields", SL_KEY_LIST, true, NULL, false},
};

static int compile(sl_cfg *cfg, const sl_cfg_node *at, const char *pattern, step *s)
{
    int errcode;
    PCRE2_SIZE erroff;
    s->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        sl_cfg_error(cfg, at, "bad regex at offset %zu: %s", (size_t)erroff, (const char *)msg);
        return -1;
    }
    pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE);
    s->md = pcre2_match_data_create_from_pattern(s->re, NULL);
    return s->md ? 0 : -1;
}

/* `labels: [a, b]` or `labels: {label: field}`. */
static int build_names(sl_cfg *cfg, const sl_cfg_node *n, step *s, bool allow_list)
{
    if (n->kind == SL_CFG_SEQ && allow_list) {
        for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
            if (n->items[i]->kind != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, n->items[i], "expected a field name");
                return -1;
            }
            s->from[s->nnames] = s->to[s->nnames] = n->items[i]->scalar;
            s->nnames++;
        }
        return 0;
    }
    if (n->kind != SL_CFG_MAP) {
        sl_cfg_error(cfg, n,
                     allow_list ? "expected a list of fields or a map of label: field"
                                : "expected a map of from: to");
        return -1;
    }
    for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
        if (n->items[i]->kind != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, n->items[i], "expected a field name");
            return -1;
        }
        /* labels map label -> field; rename maps from -> to. */
        s->from[s->nnames] = allow_list ? n->items[i]->scalar : n->keys[i];
        s->to[s->nnames] = allow_list ? n->keys[i] : n->items[i]->scalar;
        s->nnames++;
    }
    return 0;
}

static int build_step(sl_cfg *cfg, const sl_cfg_node *item, const char *input, step *s)
{
    if (item->kind != SL_CFG_MAP || item->n != 1) {
        sl_cfg_error(cfg, item,
                     "a parse step is a map with one key, the step's name (e.g. `- json: {}`)");
        return -1;
    }
    const char *name = item->keys[0];
    const sl_cfg_node *args = item->items[0];
    s->kind = -1;
    for (size_t k = 0; k < sizeof step_names / sizeof *step_names; k++)
        if (strcmp(name, step_names[k]) == 0) s->kind = (int)k;
    if (s->kind < 0) {
        sl_cfg_error(cfg, item->key_nodes[0],
                     "unknown parse step '%s' (one of labels, drop, keep, rename, remove)", name);
        return -1;
    }
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, "step", name);
    s->errors = sl_counter("sluice_parse_errors_total",
                           "Records a parse step could not parse (shipped raw).", l);
    s->dropped =
        sl_counter("sluice_records_filtered_total", "Records removed by drop/keep steps.", l);
    switch (s->kind) {
    case STEP_LABELS:
        return build_names(cfg, args, s, true);
    case STEP_RENAME:
        return build_names(cfg, args, s, false);
    case STEP_REMOVE: {
        if (sl_cfg_check(cfg, args, remove_keys, 1)) return -1;
        size_t n = 0;
        sl_cfg_list(cfg, args, "fields", s->from, MAX_NAMES, &n);
        s->nnames = n;
        return 0;
    }
    case STEP_DROP:
    case STEP_KEEP: {
        if (sl_cfg_check(cfg, args, filter_keys, 2)) return -1;
        const char *re = NULL;
        sl_cfg_str(cfg, args, "field", NULL, &s->field);
        sl_cfg_str(cfg, args, "regex", NULL, &re);
        return re ? compile(cfg, sl_cfg_get(args, "regex"), re, s) : -1;
    }
    }
    return -1;
}

int sl_chain_new(sl_cfg *cfg, const sl_cfg_node *steps, const char *input, sl_chain **out)
{
    *out = NULL;
    if (!steps || steps->n == 0) return 0;
    if (steps->kind != SL_CFG_SEQ) {
        sl_cfg_error(cfg, steps, "parse must be a list of steps");
        return -1;
    }
    if (steps->n > MAX_STEPS) {
        sl_cfg_error(cfg, steps, "at most %d parse steps", MAX_STEPS);
        return -1;
    }
    sl_chain *c = calloc(1, sizeof *c);
    if (!c) return -1;
    int rc = 0;
    for (size_t i = 0; i < steps->n; i++) {
        if (build_step(cfg, steps->items[i], input, &c->steps[c->n]) != 0) rc = -1;
        c->n++;
    }
    if (rc != 0) {
        sl_chain_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void sl_chain_free(sl_chain *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        pcre2_match_data_free(c->steps[i].md);
        pcre2_code_free(c->steps[i].re);
    }
    free(c);
}

/* The text a step looks at: a field's value, or the line. */
static bool subject(const sl_record *r, const char *field, sl_slice *out)
{
    if (!field || strcmp(field, "line") == 0) {
        *out = r->line;
        return true;
    }
    sl_field *f = sl_record_field(r, field, strlen(field));
    if (!f) return false;
    *out = f->val;
    return true;
}

static void run_step(step *s, sl_batch *b, sl_record *r)
{
    switch (s->kind) {
    case STEP_LABELS:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
            if (!f) continue;
            if (strcmp(s->from[i], s->to[i]) == 0) {
                f->flags |= SL_FF_LABEL;
            } else {
                sl_field *nf = sl_record_add_field(b, r, (sl_slice){s->to[i], strlen(s->to[i])},
                                                   f->val, f->type);
                if (nf) nf->flags |= SL_FF_LABEL;
            }
        }
        break;
    case STEP_RENAME:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
            if (f) f->key = (sl_slice){s->to[i], strlen(s->to[i])};
        }
        break;
    case STEP_REMOVE:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f;
            while ((f = sl_record_field(r, s->from[i], strlen(s->from[i]))))
                f->flags |= SL_FF_REMOVED;
        }
        break;
    case STEP_DROP:
    case STEP_KEEP: {
        sl_slice text;
        bool matched = subject(r, s->field, &text) &&
                       pcre2_match(s->re, (PCRE2_SPTR)text.p, text.n, 0, 0, s->md, NULL) >= 0;
        if (matched == (s->kind == STEP_DROP)) {
            r->flags |= SL_RF_DROPPED;
            sl_metric_inc(s->dropped);
        }
        break;
    }
    }
}

void sl_chain_run(sl_chain *c, sl_batch *b)
{
    if (!c) return;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        sl_record *r = &b->records[i];
        for (size_t k = 0; k < c->n && !(r->flags & SL_RF_DROPPED); k++)
            run_step(&c->steps[k], b, r);
    }
}
