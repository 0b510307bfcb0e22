/* Pod metadata from the node's own kubelet (`GET https://<node>:10250/pods`,
 * the PodList of the pods bound to this node), cached by pod UID, for the
 * `kubernetes` parse step (docs/decisions/0023-kubernetes-metadata.md).
 *
 * A fetch thread, started on the first lookup, refreshes the cache when a
 * lookup asks for an unknown UID (at most once per refresh_min_interval)
 * and every resync_interval. A pod that leaves the list stays cached for
 * `grace`, so the last lines of a deleted pod still find it. Lookups take a
 * mutex for a table search only; a lookup of an unknown UID waits at most
 * its `wait_ms` for a fetch, once per UID and resync interval, and never
 * while the kubelet is failing. */
#ifndef SLUICE_COLLECTOR_K8S_META_H
#define SLUICE_COLLECTOR_K8S_META_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct sl_k8s_kv {
    char *key, *val;
} sl_k8s_kv;

/* One pod, immutable once decoded and shared by reference. */
typedef struct sl_k8s_pod {
    atomic_int refs;
    char *uid, *name, *namespace_, *node, *owner_kind, *owner_name;
    sl_k8s_kv *labels;
    size_t nlabels;
    sl_k8s_kv *annotations; /* only the ones asked for, and sluice.io/ ones */
    size_t nannotations;
    int64_t gone_ns; /* cache: monotonic time it left the list, 0 while listed */
} sl_k8s_pod;

void sl_k8s_pod_unref(sl_k8s_pod *p);
/* A label's or annotation's value; NULL when absent. */
const char *sl_k8s_pod_label(const sl_k8s_pod *p, const char *key);
const char *sl_k8s_pod_annotation(const sl_k8s_pod *p, const char *key);

/* Bounds of the decoder: a body over SL_K8S_BODY_MAX is refused by the
 * fetcher; pods, labels and annotations past these are left out. */
#define SL_K8S_BODY_MAX        (32u << 20)
#define SL_K8S_MAX_PODS        4096
#define SL_K8S_MAX_LABELS      128
#define SL_K8S_MAX_VALUE_BYTES 4096
/* The decoder's tree (jansson's) is estimated before it is built, from
 * the text's objects and arrays (CONTAINER_COST bytes each), strings and
 * commas (VALUE_COST each) and bytes, and refused over TREE_MAX: 250 pods
 * as a kubelet lists them (1 MB) estimate at 15 MiB. */
#define SL_K8S_TREE_MAX       (256u << 20)
#define SL_K8S_CONTAINER_COST 256u
#define SL_K8S_VALUE_COST     64u

/* Decodes a PodList. Annotations kept: the keys in want[0..nwant) and any
 * starting with "sluice.io/". Items without metadata.uid are skipped. On
 * success *pods (malloc'ed array of references) and *n are set. */
int sl_k8s_podlist_decode(const char *json, size_t len, const char *const *want, size_t nwant,
                          sl_k8s_pod ***pods, size_t *n, sl_err *err);

typedef struct sl_k8s_cache_opts {
    const char *url;        /* the kubelet's /pods, e.g. https://10.0.0.5:10250/pods */
    const char *token_file; /* bearer token, re-read at each fetch (tokens rotate); may be NULL */
    const char *ca_file;    /* may be NULL: the system's CAs */
    bool insecure_skip_verify;
    int64_t timeout_ms;
    int64_t refresh_min_interval_ms;
    int64_t resync_interval_ms;
    int64_t grace_ms;
    const char *const *annotations; /* annotations to keep (see the decoder) */
    size_t nannotations;
} sl_k8s_cache_opts;

typedef struct sl_k8s_cache sl_k8s_cache;

/* Copies what it needs from o; starts nothing. */
int sl_k8s_cache_new(const sl_k8s_cache_opts *o, sl_k8s_cache **out, sl_err *err);
/* Stops the fetch thread (aborting a fetch in flight) and frees the cache. */
void sl_k8s_cache_free(sl_k8s_cache *m);
/* The pod with this UID (a reference: sl_k8s_pod_unref it), or NULL. An
 * unknown UID asks for a refresh and waits up to wait_ms for it, unless
 * this UID already waited within the resync interval or the last fetch
 * failed. */
sl_k8s_pod *sl_k8s_cache_get(sl_k8s_cache *m, const char *uid, size_t n, int64_t wait_ms);
/* Bumped by every successful fetch; lets callers memoize lookups. */
uint64_t sl_k8s_cache_generation(sl_k8s_cache *m);

#endif
