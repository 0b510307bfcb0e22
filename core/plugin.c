#include "core/plugin.h"

#include <string.h>

void sl_input_labels(sl_cfg *cfg, const sl_cfg_node *input, sl_field *out, uint32_t cap,
                     uint32_t *n)
{
    const sl_cfg_node *labels = sl_cfg_get(input, "labels");
    if (!labels || labels->kind != SL_CFG_MAP) return;
    for (size_t i = 0; i < labels->n && *n < cap; i++) {
        const sl_cfg_node *v = labels->items[i];
        if (v->kind != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, v, "label '%s' must be a string", labels->keys[i]);
            continue;
        }
        sl_field *f = &out[(*n)++];
        f->key = (sl_slice){labels->keys[i], strlen(labels->keys[i])};
        f->val = (sl_slice){v->scalar, v->scalar_len};
        f->type = SL_V_STRING;
        f->flags = SL_FF_LABEL;
    }
}

const sl_sink_metrics *sl_sink_metrics_of(const sl_sink_ctx *ctx, unsigned mask,
                                          sl_sink_metrics *own)
{
    sl_sink_metrics *m = ctx->metrics ? ctx->metrics : own;
    if (!ctx->metrics) sl_sink_metrics_register(m, ctx->name, 0);
    sl_sink_metrics_declare(m, mask);
    return m;
}
