/* The `cri` and `docker` steps: the container runtime's line format
 * (parsers/cri.h) on one whole record. Partial lines are joined before the
 * steps run, by the input's framing (collector/container_frame.h), which a
 * leading `cri`/`docker` step configures with its keys; the records it
 * already parsed come flagged SL_RF_FRAMED and are left as they are. */
#include <stdlib.h>

#include "collector/container_frame.h"
#include "parsers/cri.h"
#include "parsers/step.h"

typedef struct container_step {
    bool docker;
} container_step;

static int create(const sl_step_ctx *ctx, void **state, bool docker)
{
    container_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    s->docker = docker;
    /* The keys are the framing's; read here too so a bad value is reported
     * where the step is built, as for any step. */
    sl_container_frame_opts o;
    if (sl_cfg_read(ctx->cfg, ctx->args, sl_container_frame_keys, SL_CONTAINER_FRAME_NKEYS, &o))
        return SL_EINVAL;
    return 0;
}

static int cri_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, false);
}

static int docker_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, true);
}

static void destroy(void *state)
{
    free(state);
}

static int apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    const container_step *s = state;
    if (r->flags & SL_RF_FRAMED) {
        r->flags &= ~(uint32_t)SL_RF_FRAMED;
        return SL_OK;
    }
    return s->docker ? sl_docker_parse_record(b, r, r->line, err)
                     : sl_cri_parse_record(b, r, r->line, err);
}

const sl_step_ops sl_cri_step_ops = {
    .name = "cri",
    .keys = sl_container_frame_keys,
    .nkeys = SL_CONTAINER_FRAME_NKEYS,
    .create = cri_create,
    .apply = apply,
    .destroy = destroy,
};

const sl_step_ops sl_docker_step_ops = {
    .name = "docker",
    .keys = sl_container_frame_keys,
    .nkeys = SL_CONTAINER_FRAME_NKEYS,
    .create = docker_create,
    .apply = apply,
    .destroy = destroy,
};
