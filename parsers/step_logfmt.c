/* The `logfmt` step: key=value pairs become fields (parsers/logfmt.h). */
#include <stdlib.h>

#include "parsers/logfmt.h"
#include "parsers/step.h"

typedef struct logfmt_step {
    const char *field; /* NULL: the record's line */
} logfmt_step;

static const sl_cfg_key logfmt_keys[] = {
    {.name = "field",
     .at = SL_CFG_AT(logfmt_step, field),
     .type = SL_KEY_STR,
     .doc = "the field to parse; the line when absent"},
};

static int logfmt_create(const sl_step_ctx *ctx, void **state)
{
    logfmt_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    if (sl_cfg_read(ctx->cfg, ctx->args, logfmt_keys, SL_CFG_NKEYS(logfmt_keys), s) != 0)
        return SL_EINVAL; /* the errors are in ctx->cfg, with positions */
    return SL_OK;
}

static int logfmt_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    logfmt_step *s = state;
    sl_slice in;
    int rc = sl_step_subject(b, r, s->field, &in, err);
    if (rc != 0) return rc;
    return sl_logfmt_parse_record(b, r, in, err);
}

const sl_step_ops sl_logfmt_step_ops = {
    .name = "logfmt",
    .keys = logfmt_keys,
    .nkeys = SL_CFG_NKEYS(logfmt_keys),
    .create = logfmt_create,
    .apply = logfmt_apply,
    .destroy = free,
};
