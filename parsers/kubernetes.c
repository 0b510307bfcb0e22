#include "parsers/kubernetes.h"

#include <stdlib.h>
#include <string.h>

#include "collector/k8s_meta.h"
#include "core/metrics.h"
#include "parsers/chain.h"
#include "parsers/cri.h"

#define MAX_OUT     32
#define MAX_SOURCES 4
#define MAX_PARSERS 16

enum src_kind {
    SRC_NAMESPACE,
    SRC_POD,
    SRC_CONTAINER,
    SRC_CONTAINER_ID,
    SRC_POD_UID,
    SRC_NODE,
    SRC_OWNER_KIND,
    SRC_OWNER_NAME,
    SRC_LABEL,
    SRC_ANNOTATION,
};

static const char *const src_names[] = {"namespace", "pod",  "container",  "container_id",
                                        "pod_uid",   "node", "owner_kind", "owner_name"};

typedef struct src {
    int kind;
    const char *key; /* SRC_LABEL / SRC_ANNOTATION */
} src;

typedef struct out_field {
    const char *name;
    src srcs[MAX_SOURCES];
    size_t nsrcs;
    bool label; /* else structured metadata */
} out_field;

struct sl_k8s_step {
    out_field out[MAX_OUT + 8]; /* the user's, then the defaults of the other kind */
    size_t nout;
    bool pod_labels_as_metadata;
    const char *node; /* when the pod's metadata does not say */
    int64_t wait_ms;
    sl_k8s_cache *meta;
    /* The last pod looked up, valid while the cache's generation holds. */
    char memo_uid[64];
    sl_k8s_pod *memo;
    uint64_t memo_gen;
    sl_metric *missing, *excluded;
    /* Named parse chains a pod picks with sluice.io/parser(-<container>). */
    const char *parser_names[MAX_PARSERS];
    sl_chain *parsers[MAX_PARSERS];
    size_t nparsers;
};

const sl_cfg_key sl_k8s_keys[SL_K8S_NKEYS] = {
    {.name = "kubelet_url",
     .type = SL_KEY_STR,
     .doc = "the node's kubelet (`https://${SLUICE_HOST_IP}:10250`); without it, only what the "
            "file name says"},
    {.name = "token_file",
     .type = SL_KEY_STR,
     .doc = "bearer token for the kubelet (the service account's)"},
    {.name = "ca_file", .type = SL_KEY_STR, .doc = "CA that signed the kubelet's certificate"},
    {.name = "insecure_skip_verify",
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "do not verify the kubelet's certificate"},
    {.name = "timeout", .type = SL_KEY_DURATION, .def = "10s", .doc = "one kubelet request"},
    {.name = "refresh_min_interval",
     .type = SL_KEY_DURATION,
     .def = "1s",
     .doc = "at most one pod-list fetch this often"},
    {.name = "resync_interval",
     .type = SL_KEY_DURATION,
     .def = "1m",
     .doc = "the pod list is fetched again this often"},
    {.name = "grace",
     .type = SL_KEY_DURATION,
     .def = "5m",
     .doc = "a deleted pod's metadata is kept this long, so its last lines keep their labels"},
    {.name = "wait",
     .type = SL_KEY_DURATION,
     .def = "2s",
     .doc = "a line of an unknown pod waits at most this long for the kubelet, once per pod"},
    {.name = "node",
     .type = SL_KEY_STR,
     .doc = "the node's name when the pod's metadata does not say (`$SLUICE_HOST`)"},
    {.name = "labels",
     .type = SL_KEY_MAP,
     .doc = "`{label: source}`: Loki labels from the pod's metadata (replaces the defaults)"},
    {.name = "metadata",
     .type = SL_KEY_MAP,
     .doc =
         "`{name: source}`: structured metadata from the pod's metadata (replaces the defaults)"},
    {.name = "pod_labels",
     .type = SL_KEY_ENUM,
     .choices = "metadata|none",
     .def = "metadata",
     .doc = "`metadata`: every pod label as structured metadata `pod_label_<name>`; `none`"},
    {.name = "parsers",
     .type = SL_KEY_MAP,
     .doc = "`{NAME: [steps]}`: parse chains a pod picks with the annotation `sluice.io/parser`"},
};

static int parse_src(sl_cfg *cfg, const sl_cfg_node *at, const char *text, src *out)
{
    if (strncmp(text, "label:", 6) == 0 && text[6]) {
        *out = (src){SRC_LABEL, text + 6};
        return 0;
    }
    if (strncmp(text, "annotation:", 11) == 0 && text[11]) {
        *out = (src){SRC_ANNOTATION, text + 11};
        return 0;
    }
    for (size_t k = 0; k < sizeof src_names / sizeof *src_names; k++)
        if (strcmp(text, src_names[k]) == 0) {
            *out = (src){(int)k, NULL};
            return 0;
        }
    sl_cfg_error(cfg, at,
                 "unknown source '%s' (one of namespace, pod, container, container_id, pod_uid, "
                 "node, owner_kind, owner_name, label:KEY, annotation:KEY)",
                 text);
    return SL_EINVAL;
}

/* `name: source` or `name: [source, fallback...]`. */
static int parse_outs(sl_cfg *cfg, const sl_cfg_node *map, bool label, sl_k8s_step *s)
{
    for (size_t i = 0; i < map->n; i++) {
        if (s->nout == MAX_OUT) {
            sl_cfg_error(cfg, map->key_nodes[i], "at most %d kubernetes labels and fields",
                         MAX_OUT);
            return SL_EINVAL;
        }
        out_field *o = &s->out[s->nout++];
        o->name = map->keys[i];
        o->label = label;
        const sl_cfg_node *v = map->items[i];
        const sl_cfg_node *one[1] = {v};
        const sl_cfg_node *const *items = v->kind == SL_CFG_SEQ ? v->items : one;
        size_t n = v->kind == SL_CFG_SEQ ? v->n : 1;
        if (n == 0 || n > MAX_SOURCES) {
            sl_cfg_error(cfg, v, "expected 1 to %d sources", MAX_SOURCES);
            return SL_EINVAL;
        }
        for (size_t k = 0; k < n; k++) {
            if (items[k]->kind != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, items[k], "expected a source such as pod or label:app");
                return SL_EINVAL;
            }
            if (parse_src(cfg, items[k], items[k]->scalar, &o->srcs[k]) != 0) return SL_EINVAL;
        }
        o->nsrcs = n;
    }
    return 0;
}

static void defaults(sl_k8s_step *s, bool labels, bool metadata)
{
    static const out_field label_defaults[] = {
        {"namespace", {{SRC_NAMESPACE, NULL}}, 1, true},
        {"pod", {{SRC_POD, NULL}}, 1, true},
        {"container", {{SRC_CONTAINER, NULL}}, 1, true},
        {"node", {{SRC_NODE, NULL}}, 1, true},
        {"app", {{SRC_LABEL, "app.kubernetes.io/name"}, {SRC_LABEL, "app"}}, 2, true},
    };
    static const out_field meta_defaults[] = {
        {"pod_uid", {{SRC_POD_UID, NULL}}, 1, false},
        {"container_id", {{SRC_CONTAINER_ID, NULL}}, 1, false},
        {"owner_kind", {{SRC_OWNER_KIND, NULL}}, 1, false},
        {"owner_name", {{SRC_OWNER_NAME, NULL}}, 1, false},
    };
    for (size_t i = 0; labels && i < sizeof label_defaults / sizeof *label_defaults; i++)
        s->out[s->nout++] = label_defaults[i];
    for (size_t i = 0; metadata && i < sizeof meta_defaults / sizeof *meta_defaults; i++)
        s->out[s->nout++] = meta_defaults[i];
}

void sl_k8s_step_free(sl_k8s_step *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nparsers; i++) sl_chain_free(s->parsers[i]);
    sl_k8s_pod_unref(s->memo);
    sl_k8s_cache_free(s->meta);
    free(s);
}

int sl_k8s_step_new(sl_cfg *cfg, const sl_cfg_node *args, const char *input, sl_k8s_step **out)
{
    *out = NULL;
    bool none = !args || args->kind == SL_CFG_NULL;
    if (!none && sl_cfg_check(cfg, args, sl_k8s_keys, SL_K8S_NKEYS)) return SL_EINVAL;
    sl_k8s_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    const char *url = NULL, *token = NULL, *ca = NULL;
    bool insecure = false;
    int64_t timeout, min_interval, resync, grace;
    int pod_labels = 0;
    int rc = 0;
    rc |= sl_cfg_str(cfg, args, "kubelet_url", NULL, &url);
    rc |= sl_cfg_str(cfg, args, "token_file", NULL, &token);
    rc |= sl_cfg_str(cfg, args, "ca_file", NULL, &ca);
    rc |= sl_cfg_str(cfg, args, "node", "", &s->node);
    rc |= sl_cfg_bool(cfg, args, "insecure_skip_verify", false, &insecure);
    rc |= sl_cfg_duration_ms(cfg, args, "timeout", 10000, &timeout);
    rc |= sl_cfg_duration_ms(cfg, args, "refresh_min_interval", 1000, &min_interval);
    rc |= sl_cfg_duration_ms(cfg, args, "resync_interval", 60000, &resync);
    rc |= sl_cfg_duration_ms(cfg, args, "grace", 300000, &grace);
    rc |= sl_cfg_duration_ms(cfg, args, "wait", 2000, &s->wait_ms);
    rc |= sl_cfg_enum(cfg, args, "pod_labels", "metadata|none", 0, &pod_labels);
    s->pod_labels_as_metadata = pod_labels == 0;
    const sl_cfg_node *labels = sl_cfg_get(args, "labels"),
                      *metadata = sl_cfg_get(args, "metadata");
    if (rc == 0 && labels && labels->kind == SL_CFG_MAP) rc = parse_outs(cfg, labels, true, s);
    if (rc == 0 && metadata && metadata->kind == SL_CFG_MAP)
        rc = parse_outs(cfg, metadata, false, s);
    if (rc == 0) defaults(s, !labels, !metadata);
    const sl_cfg_node *parsers = sl_cfg_get(args, "parsers");
    for (size_t i = 0; rc == 0 && parsers && parsers->kind == SL_CFG_MAP && i < parsers->n; i++) {
        if (i == MAX_PARSERS) {
            sl_cfg_error(cfg, parsers->key_nodes[i], "at most %d parsers", MAX_PARSERS);
            rc = SL_EINVAL;
            break;
        }
        if (parsers->items[i]->kind != SL_CFG_SEQ) {
            sl_cfg_error(cfg, parsers->items[i], "a parser is a list of parse steps");
            rc = SL_EINVAL;
            break;
        }
        s->parser_names[i] = parsers->keys[i];
        rc = sl_chain_new(cfg, parsers->items[i], input, &s->parsers[i]);
        s->nparsers = i + 1;
    }
    if (rc == 0 && (token || ca || insecure) && !url) {
        sl_cfg_error(cfg, args, "token_file, ca_file and insecure_skip_verify need kubelet_url");
        rc = SL_EINVAL;
    }
    if (rc == 0 && url) {
        /* Annotations the step reads; the cache keeps only these and sluice.io/ ones. */
        const char *want[MAX_OUT * MAX_SOURCES];
        size_t nwant = 0;
        for (size_t i = 0; i < s->nout; i++)
            for (size_t k = 0; k < s->out[i].nsrcs; k++)
                if (s->out[i].srcs[k].kind == SRC_ANNOTATION) want[nwant++] = s->out[i].srcs[k].key;
        sl_k8s_cache_opts o = {
            .url = url,
            .token_file = token,
            .ca_file = ca,
            .insecure_skip_verify = insecure,
            .timeout_ms = timeout,
            .refresh_min_interval_ms = min_interval,
            .resync_interval_ms = resync,
            .grace_ms = grace,
            .annotations = want,
            .nannotations = nwant,
        };
        sl_err err;
        if (sl_k8s_cache_new(&o, &s->meta, &err) != 0) {
            sl_cfg_error(cfg, sl_cfg_get(args, "kubelet_url"), "%s", err.msg);
            rc = SL_EINVAL;
        }
    }
    if (rc != 0) {
        sl_k8s_step_free(s);
        return rc < 0 ? rc : SL_EINVAL;
    }
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, NULL, NULL);
    s->missing = sl_counter("sluice_k8s_metadata_missing_total",
                            "Records shipped with only what the file name gives: the pod's "
                            "metadata was not known within the wait.",
                            l);
    s->excluded = sl_counter("sluice_k8s_excluded_total",
                             "Records dropped for a sluice.io/exclude annotation.", l);
    *out = s;
    return 0;
}

static sl_slice cstr(const char *p)
{
    return (sl_slice){p ? p : "", p ? strlen(p) : 0};
}

static sl_slice value_of(const sl_k8s_step *s, const src *x, const sl_k8s_meta *m,
                         const sl_k8s_pod *pod)
{
    switch (x->kind) {
    case SRC_NAMESPACE:
        return m->namespace_.n || !pod ? m->namespace_ : cstr(pod->namespace_);
    case SRC_POD:
        return m->pod.n || !pod ? m->pod : cstr(pod->name);
    case SRC_CONTAINER:
        return m->container;
    case SRC_CONTAINER_ID:
        return m->container_id;
    case SRC_POD_UID:
        return m->pod_uid;
    case SRC_NODE:
        return cstr(pod && pod->node ? pod->node : s->node);
    case SRC_OWNER_KIND:
        return cstr(pod ? pod->owner_kind : NULL);
    case SRC_OWNER_NAME:
        return cstr(pod ? pod->owner_name : NULL);
    case SRC_LABEL:
        return cstr(pod ? sl_k8s_pod_label(pod, x->key) : NULL);
    case SRC_ANNOTATION:
        return cstr(pod ? sl_k8s_pod_annotation(pod, x->key) : NULL);
    }
    return cstr(NULL);
}

/* Adds key=val, both copied into the batch arena (the pod may be freed
 * before the batch is delivered). */
static int add(sl_batch *b, sl_record *r, sl_slice key, sl_slice val, int flags, sl_err *err)
{
    char *k = sl_arena_alloc(&b->arena, key.n + val.n + 2);
    if (!k) return sl_errf(err, SL_ENOMEM, "kubernetes: batch arena full");
    memcpy(k, key.p, key.n);
    k[key.n] = '\0';
    char *v = k + key.n + 1;
    if (val.n) memcpy(v, val.p, val.n);
    v[val.n] = '\0';
    sl_field *f =
        sl_record_add_field(b, r, (sl_slice){k, key.n}, (sl_slice){v, val.n}, SL_V_STRING);
    if (!f) return sl_errf(err, SL_ENOMEM, "kubernetes: batch arena full");
    f->flags |= (uint8_t)flags;
    return 0;
}

/* The pod of this UID, memoized while the cache does not change. */
static const sl_k8s_pod *pod_for(sl_k8s_step *s, sl_slice uid)
{
    if (!s->meta || uid.n == 0 || uid.n >= sizeof s->memo_uid) return NULL;
    uint64_t gen = sl_k8s_cache_generation(s->meta);
    if (s->memo && s->memo_gen == gen && strlen(s->memo_uid) == uid.n &&
        memcmp(s->memo_uid, uid.p, uid.n) == 0)
        return s->memo;
    sl_k8s_pod *p = sl_k8s_cache_get(s->meta, uid.p, uid.n, s->wait_ms);
    if (!p) return NULL;
    sl_k8s_pod_unref(s->memo);
    s->memo = p;
    s->memo_gen = sl_k8s_cache_generation(s->meta);
    memcpy(s->memo_uid, uid.p, uid.n);
    s->memo_uid[uid.n] = '\0';
    return p;
}

/* The pod's annotation `sluice.io/<what>-<container>`, else
 * `sluice.io/<what>`; NULL when neither is set. */
static const char *annotation_for(const sl_k8s_pod *pod, const char *what, sl_slice container)
{
    char key[160];
    int n = snprintf(key, sizeof key, "sluice.io/%s-%.*s", what, (int)container.n, container.p);
    const char *v = n > 0 && (size_t)n < sizeof key ? sl_k8s_pod_annotation(pod, key) : NULL;
    if (v) return v;
    snprintf(key, sizeof key, "sluice.io/%s", what);
    return sl_k8s_pod_annotation(pod, key);
}

static bool excluded(const sl_k8s_pod *pod, sl_slice container)
{
    const char *v = annotation_for(pod, "exclude", container);
    return v && strcmp(v, "true") == 0;
}

/* Runs the parse chain the pod's sluice.io/parser annotation names. */
static int run_parser(sl_k8s_step *s, const sl_k8s_pod *pod, sl_slice container, sl_batch *b,
                      sl_record *r, sl_err *err)
{
    const char *name = annotation_for(pod, "parser", container);
    if (!name || !name[0]) return 0;
    for (size_t i = 0; i < s->nparsers; i++)
        if (strcmp(s->parser_names[i], name) == 0) {
            if (s->parsers[i]) sl_chain_run_record(s->parsers[i], b, r);
            return 0;
        }
    return sl_errf(err, SL_EPARSE, "pod %s/%s names parser '%.64s', which is not configured",
                   pod->namespace_ ? pod->namespace_ : "", pod->name ? pod->name : "", name);
}

int sl_k8s_step_run(sl_k8s_step *s, sl_batch *b, sl_record *r, sl_err *err)
{
    sl_k8s_meta m;
    if (!b->source || sl_k8s_from_path(b->source, strlen(b->source), &m) != 0)
        return sl_errf(err, SL_EPARSE, "source '%s' is not a Kubernetes log path",
                       b->source ? b->source : "");
    const sl_k8s_pod *pod = pod_for(s, m.pod_uid);
    if (s->meta && !pod) sl_metric_inc(s->missing);
    if (pod && excluded(pod, m.container)) {
        r->flags |= SL_RF_DROPPED;
        sl_metric_inc(s->excluded);
        return 0;
    }
    for (size_t i = 0; i < s->nout; i++) {
        const out_field *o = &s->out[i];
        sl_slice v = {"", 0};
        for (size_t k = 0; k < o->nsrcs && v.n == 0; k++) v = value_of(s, &o->srcs[k], &m, pod);
        if (v.n == 0) continue;
        int rc = add(b, r, cstr(o->name), v, o->label ? SL_FF_LABEL : SL_FF_METADATA, err);
        if (rc != 0) return rc;
    }
    if (!pod) return 0;
    for (size_t i = 0; s->pod_labels_as_metadata && i < pod->nlabels; i++) {
        /* pod_label_<key>, the key's other bytes as '_' (a metadata name). */
        char name[330];
        size_t kn = strlen(pod->labels[i].key);
        if (kn > sizeof name - 11) continue;
        memcpy(name, "pod_label_", 10);
        for (size_t k = 0; k < kn; k++) {
            char c = pod->labels[i].key[k];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            name[10 + k] = ok ? c : '_';
        }
        int rc =
            add(b, r, (sl_slice){name, 10 + kn}, cstr(pod->labels[i].val), SL_FF_METADATA, err);
        if (rc != 0) return rc;
    }
    return run_parser(s, pod, m.container, b, r, err);
}
