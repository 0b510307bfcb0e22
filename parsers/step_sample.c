/* The `sample` step: keeps one record in `one_in` and drops the others,
 * counted in sluice_records_filtered_total{step="sample"}. With `field`,
 * the choice follows a hash of that field's value, so every record of one
 * request (a trace id) is kept or dropped together; a record without the
 * field is kept, as nothing says it belongs to a dropped group. */
#include <stdlib.h>

#include "parsers/step.h"

typedef struct sample_step {
    int64_t one_in;    /* read from sample_keys */
    const char *field; /* NULL: every one_in-th record, counted per input */
    uint64_t seen;
    sl_metric *dropped;
} sample_step;

static const sl_cfg_key sample_keys[] = {
    {.name = "one_in",
     .at = SL_CFG_AT(sample_step, one_in),
     .type = SL_KEY_INT,
     .required = true,
     .min = 1,
     .max = 1000000000,
     .doc = "keep one record in this many, drop the others (counted)"},
    {.name = "field",
     .at = SL_CFG_AT(sample_step, field),
     .type = SL_KEY_STR,
     .doc = "choose by a hash of this field's value, so a group (a trace) is kept or dropped "
            "together; a record without it is kept"},
};

static int sample_create(const sl_step_ctx *ctx, void **state)
{
    sample_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    s->dropped = ctx->dropped;
    return sl_cfg_read(ctx->cfg, ctx->args, sample_keys, SL_CFG_NKEYS(sample_keys), s) ? -1 : 0;
}

/* FNV-1a: stable across runs and agents, so every agent keeps the same
 * groups. */
static uint64_t fnv1a(sl_slice v)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < v.n; i++) h = (h ^ (unsigned char)v.p[i]) * 0x100000001b3ULL;
    return h;
}

static int sample_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    sample_step *s = state;
    bool keep;
    if (s->field) {
        sl_slice v;
        int rc = sl_step_subject(b, r, s->field, &v, err);
        if (rc == SL_ENOENT) return SL_OK;
        if (rc != SL_OK) return rc;
        keep = fnv1a(v) % (uint64_t)s->one_in == 0;
    } else {
        keep = s->seen++ % (uint64_t)s->one_in == 0;
    }
    if (!keep) {
        r->flags |= SL_RF_DROPPED;
        sl_metric_inc(s->dropped);
    }
    return SL_OK;
}

const sl_step_ops sl_sample_step_ops = {
    .name = "sample",
    .keys = sample_keys,
    .nkeys = SL_CFG_NKEYS(sample_keys),
    .create = sample_create,
    .apply = sample_apply,
    .destroy = free,
};
