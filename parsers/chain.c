#include "parsers/chain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "parsers/step.h"

#define MAX_STEPS 32

typedef struct step {
    const sl_step_ops *ops;
    void *state;
    sl_step_ctx ctx;
    sl_metric *warnings;
    bool is_json; /* the one step that may set SL_RF_FIELDS_LINE */
} step;

/* The time of the last multiline record cut at its limits, for the record
 * that carries on from it (maybe in the next batch of the same file). */
typedef struct cut_time {
    int64_t time_ns;
    bool have;
    char source[1024];
} cut_time;

struct sl_chain {
    step steps[MAX_STEPS];
    size_t n;
    cut_time cut;
};

static int build_step(sl_cfg *cfg, const sl_cfg_node *item, const char *input, step *s)
{
    if (item->kind != SL_CFG_MAP || item->n != 1) {
        sl_cfg_error(cfg, item,
                     "a parse step is a map with one key, the step's name (e.g. `- json: {}`)");
        return SL_EINVAL;
    }
    const char *name = item->keys[0];
    const sl_cfg_node *args = item->items[0];
    s->ops = sl_step_find(name);
    s->is_json = s->ops && s->ops == sl_step_find("json");
    if (!s->ops) {
        sl_cfg_error(cfg, item->key_nodes[0], "unknown parse step '%s' (one of %s)", name,
                     sl_step_choices());
        return SL_EINVAL;
    }
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, "step", name);
    s->ctx = (sl_step_ctx){.cfg = cfg, .args = args, .input = input, .name = s->ops->name};
    s->ctx.errors = sl_counter("sluice_parse_errors_total",
                               "Records a parse step could not parse (shipped raw).", l);
    s->ctx.dropped =
        sl_counter("sluice_records_filtered_total", "Records removed by drop/keep steps.", l);
    s->warnings = sl_counter("sluice_parse_warnings_total",
                             "Records a parse step parsed without a part (parse_warning).", l);
    if (!s->ops->own_args && sl_cfg_check(cfg, args, s->ops->keys, s->ops->nkeys)) return SL_EINVAL;
    return s->ops->create(&s->ctx, &s->state);
}

int sl_chain_new(sl_cfg *cfg, const sl_cfg_node *steps, const char *input, sl_chain **out)
{
    *out = NULL;
    if (!steps || steps->n == 0) return 0;
    if (steps->kind != SL_CFG_SEQ) {
        sl_cfg_error(cfg, steps, "parse must be a list of steps");
        return SL_EINVAL;
    }
    if (steps->n > MAX_STEPS) {
        sl_cfg_error(cfg, steps, "at most %d parse steps", MAX_STEPS);
        return SL_EINVAL;
    }
    sl_chain *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < steps->n; i++) {
        if (build_step(cfg, steps->items[i], input, &c->steps[c->n]) != 0) rc = -1;
        const sl_step_ops *ops = c->steps[c->n].ops;
        /* Partial lines are joined by the input's framing, which only a
         * leading cri/docker step configures (collector/container_frame.h):
         * a later one parses each piece alone. */
        if (i > 0 && ops && (strcmp(ops->name, "cri") == 0 || strcmp(ops->name, "docker") == 0))
            sl_log(SL_LOG_WARN, "parse_step_not_first",
                   "input=%s step=%s position=%zu: partial lines are not joined; make it the "
                   "first step to join them",
                   input, ops->name, i + 1);
        c->n++;
    }
    if (rc != 0) {
        sl_chain_free(c);
        return SL_EINVAL;
    }
    *out = c;
    return 0;
}

void sl_chain_free(sl_chain *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        if (c->steps[i].ops && c->steps[i].state) c->steps[i].ops->destroy(c->steps[i].state);
    free(c);
}

/* A failed step: the record ships raw, marked, with the first failing
 * step named in `parse_error`; every failure is counted. */
static void mark_failed(const step *s, sl_batch *b, sl_record *r, const sl_err *err)
{
    sl_metric_inc(s->ctx.errors);
    if (r->flags & SL_RF_PARSE_ERROR) return;
    r->flags |= SL_RF_PARSE_ERROR;
    const char *name = s->ops->name;
    size_t nl = strlen(name);
    const char *msg = err->msg;
    /* Parsers often prefix their own name already. */
    if (strncmp(msg, name, nl) == 0 && msg[nl] == ':') msg += nl + 1;
    while (*msg == ' ') msg++;
    size_t ml = strnlen(msg, sizeof err->msg);
    char *v = sl_arena_alloc(&b->arena, nl + 2 + ml + 1);
    if (!v) return;
    memcpy(v, name, nl);
    size_t n = nl;
    if (ml) {
        memcpy(v + n, ": ", 2);
        memcpy(v + n + 2, msg, ml);
        n += 2 + ml;
    }
    v[n] = '\0';
    sl_record_add_field(b, r, SL_SLICE_LIT("parse_error"), (sl_slice){v, n}, SL_V_STRING);
}

/* The rest of a cut multiline record (its first line is no record start,
 * so it has no time of its own) takes the time of the part before it. */
static void carry_cut_time(cut_time *ct, const sl_batch *b, sl_record *r)
{
    const char *src = b->source ? b->source : "";
    if ((r->flags & SL_RF_ML_CONT) && ct->have && strcmp(ct->source, src) == 0)
        r->time_ns = ct->time_ns;
    ct->have = (r->flags & SL_RF_ML_CUT) && strlen(src) < sizeof ct->source;
    if (ct->have) {
        memcpy(ct->source, src, strlen(src) + 1);
        ct->time_ns = r->time_ns;
    }
}

/* Runs the steps on one record. */
static void run_steps(sl_chain *c, sl_batch *b, sl_record *r)
{
    for (size_t k = 0; k < c->n && !(r->flags & SL_RF_DROPPED); k++) {
        step *s = &c->steps[k];
        sl_err err;
        err.msg[0] = '\0';
        uint32_t before = r->flags;
        if (s->ops->apply(s->state, b, r, &err) != 0)
            mark_failed(s, b, r, &err);
        else if (r->flags & ~before & SL_RF_PARSE_WARNING)
            sl_metric_inc(s->warnings);
        /* Only the json step vouches that the fields are the line (core/
         * record.h): any other step may have added, removed, renamed,
         * labelled or rewritten one, directly in the field array, so the
         * promise ends here for every one of them, not in each step. */
        if (!s->is_json) r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
    }
}

void sl_chain_run_record(sl_chain *c, sl_batch *b, sl_record *r)
{
    run_steps(c, b, r);
    if (r->flags & (SL_RF_ML_CUT | SL_RF_ML_CONT)) carry_cut_time(&c->cut, b, r);
}

void sl_chain_run(sl_chain *c, sl_batch *b)
{
    if (!c) return;
    for (uint32_t i = 0; i < b->nrecords; i++) sl_chain_run_record(c, b, &b->records[i]);
}
