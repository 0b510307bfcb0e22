/* The `kubernetes` step: namespace, pod, container and uid from the
 * kubelet's log path (parsers/cri.h). */
#include <string.h>

#include "parsers/cri.h"
#include "parsers/step.h"

static int kubernetes_create(const sl_step_ctx *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return 0;
}

static int kubernetes_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    (void)state;
    sl_k8s_meta m;
    if (!b->source || sl_k8s_from_path(b->source, strlen(b->source), &m) != 0)
        return sl_errf(err, SL_EPARSE, "source '%s' is not a Kubernetes log path",
                       b->source ? b->source : "");
    return sl_k8s_add_fields(b, r, &m, err);
}

static void kubernetes_destroy(void *state)
{
    (void)state;
}

const sl_step_ops sl_kubernetes_step_ops = {
    .name = "kubernetes",
    .create = kubernetes_create,
    .apply = kubernetes_apply,
    .destroy = kubernetes_destroy,
};
