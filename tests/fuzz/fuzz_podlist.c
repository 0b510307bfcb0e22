/* The kubelet's PodList decoder (collector/k8s_meta.c): any bytes the
 * network hands it decode to a bounded list of pods or a clear error; every
 * decoded pod has a UID and string fields only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/k8s_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const want[] = {"team", "example.com/owner"};
    sl_k8s_pod **pods = NULL;
    size_t n = 0;
    sl_err err;
    if (sl_k8s_podlist_decode((const char *)data, size, want, 2, &pods, &n, &err) != 0) {
        if (pods || n || !err.msg[0]) abort();
        return 0;
    }
    if (n > SL_K8S_MAX_PODS) abort();
    for (size_t i = 0; i < n; i++) {
        const sl_k8s_pod *p = pods[i];
        if (!p->uid || !p->uid[0] || strlen(p->uid) >= 64) abort();
        if (p->nlabels > SL_K8S_MAX_LABELS || p->nannotations > SL_K8S_MAX_LABELS) abort();
        for (size_t k = 0; k < p->nlabels; k++)
            if (strlen(p->labels[k].val) > SL_K8S_MAX_VALUE_BYTES) abort();
        (void)sl_k8s_pod_label(p, "app");
        (void)sl_k8s_pod_annotation(p, "sluice.io/exclude");
        sl_k8s_pod_unref(pods[i]);
    }
    free(pods);
    return 0;
}
