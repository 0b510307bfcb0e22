/* The `kubernetes` parse step: namespace, pod, pod UID, container from the
 * log file's path (the batch's source), and, when `kubelet_url` is set, the
 * pod's labels, annotations, node and owner from the node's kubelet
 * (collector/k8s_meta.h). Which of them become stream labels and which
 * structured metadata is configured, with an allow-list by default; pods
 * annotated `sluice.io/exclude: "true"` (or `sluice.io/exclude-<container>`)
 * are dropped, counted. See docs/decisions/0023-kubernetes-metadata.md. */
#ifndef SLUICE_PARSERS_KUBERNETES_H
#define SLUICE_PARSERS_KUBERNETES_H

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"

typedef struct sl_k8s_step sl_k8s_step;

/* Errors go to cfg with positions; returns 0 or -1. Starts no thread: the
 * first record that needs metadata does (so `sluice check` fetches nothing). */
/* The step's keys, checked by sl_k8s_step_new (the step owns its args:
 * `kubernetes:` alone is a step with every default). */
#define SL_K8S_NKEYS 14
extern const sl_cfg_key sl_k8s_keys[SL_K8S_NKEYS];

int sl_k8s_step_new(sl_cfg *cfg, const sl_cfg_node *args, const char *input, sl_k8s_step **out);
/* SL_EPARSE when the source is not a Kubernetes log path. */
int sl_k8s_step_run(sl_k8s_step *s, sl_batch *b, sl_record *r, sl_err *err);
void sl_k8s_step_free(sl_k8s_step *s);

#endif
