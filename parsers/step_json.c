/* The `json` step: the record's line as a JSON object (parsers/json.h). */
#include <stdlib.h>

#include "parsers/json.h"
#include "parsers/step.h"

static int json_create(const sl_step_ctx *ctx, void **state)
{
    sl_json_opts *o = calloc(1, sizeof *o);
    if (!o) return SL_ENOMEM;
    *state = o;
    return sl_json_opts_from_cfg(ctx->cfg, ctx->args, o);
}

static int json_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    return sl_json_parse_record(b, r, state, err);
}

const sl_step_ops sl_json_step_ops = {
    .name = "json",
    .keys = sl_json_keys,
    .nkeys = SL_JSON_NKEYS,
    .create = json_create,
    .apply = json_apply,
    .destroy = free,
};
