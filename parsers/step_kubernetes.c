/* The `kubernetes` step: namespace, pod, container and uid from the
 * kubelet's log path, and, with `kubelet_url`, the pod's labels,
 * annotations, node and owner from the node's kubelet (parsers/kubernetes.h;
 * decision 0023). Its keys are checked by sl_k8s_step_new. */
#include "parsers/kubernetes.h"
#include "parsers/step.h"

static int kubernetes_create(const sl_step_ctx *ctx, void **state)
{
    sl_k8s_step *s = NULL;
    int rc = sl_k8s_step_new(ctx->cfg, ctx->args, ctx->input, &s);
    *state = s;
    return rc;
}

static int kubernetes_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    return sl_k8s_step_run(state, b, r, err);
}

static void kubernetes_destroy(void *state)
{
    sl_k8s_step_free(state);
}

const sl_step_ops sl_kubernetes_step_ops = {
    .name = "kubernetes",
    .own_args = true,
    .keys = sl_k8s_keys,
    .nkeys = SL_K8S_NKEYS,
    .create = kubernetes_create,
    .apply = kubernetes_apply,
    .destroy = kubernetes_destroy,
};
