/* The kubernetes step's configuration and what it adds without a kubelet,
 * and the PodList decoder's bounds (collector/k8s_meta.c). The kubelet
 * path end to end is tests/integration/itest_k8s.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/k8s_meta.h"
#include "core/batch.h"
#include "core/config.h"
#include "parsers/kubernetes.h"

/* Builds the step from `kubernetes:`'s value in yaml; NULL with the first
 * error in *msg when it fails. The step keeps pointers into the
 * configuration (as in a chain): *cfg is freed after the step. */
static sl_k8s_step *step_from(const char *yaml, sl_cfg **cfg, char *msg, size_t cap)
{
    *cfg = sl_cfg_new();
    assert_non_null(*cfg);
    assert_int_equal(sl_cfg_load_string(*cfg, "t.yml", yaml, strlen(yaml)), 0);
    sl_k8s_step *s = NULL;
    int rc = sl_k8s_step_new(*cfg, sl_cfg_get(sl_cfg_root(*cfg), "kubernetes"), "in", &s);
    msg[0] = '\0';
    if (rc != 0) snprintf(msg, cap, "%s", sl_cfg_nerrors(*cfg) ? sl_cfg_error_at(*cfg, 0) : "?");
    return s;
}

static void expect_error(const char *yaml, const char *want)
{
    char msg[512];
    sl_cfg *cfg;
    sl_k8s_step *s = step_from(yaml, &cfg, msg, sizeof msg);
    sl_cfg_free(cfg);
    if (s) fail_msg("'%s' was accepted", yaml);
    if (!strstr(msg, want)) fail_msg("error '%s' lacks '%s'", msg, want);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("kubernetes: {labels: {app: 'label:'}}\n", "unknown source 'label:'");
    expect_error("kubernetes: {labels: {app: podname}}\n", "unknown source 'podname'");
    expect_error("kubernetes: {labels: {app: []}}\n", "expected 1 to 4 sources");
    expect_error("kubernetes: {labels: {app: [pod, pod, pod, pod, pod]}}\n", "1 to 4");
    expect_error("kubernetes: {token_file: /t}\n", "need kubelet_url");
    expect_error("kubernetes: {kubelet_url: 'https://x/pods', wait: soon}\n", "wait");
    expect_error("kubernetes: {pod_labels: all}\n", "pod_labels");
    expect_error("kubernetes: {parsers: {json: {json: {}}}}\n",
                 "a parser is a list of parse steps");
    expect_error("kubernetes: {parsers: {j: [{nope: {}}]}}\n", "unknown parse step 'nope'");
    expect_error("kubernetes: {kubelet_ur: 'https://x/pods'}\n", "kubelet_url");
    /* 32 labels and the default metadata fit. */
    char yaml[4096];
    int o = snprintf(yaml, sizeof yaml, "kubernetes:\n  labels:\n");
    for (int i = 0; i < 32; i++)
        o += snprintf(yaml + o, sizeof yaml - (size_t)o, "    l%d: pod\n", i);
    char msg[512];
    sl_cfg *cfg;
    sl_k8s_step *s = step_from(yaml, &cfg, msg, sizeof msg);
    if (!s) fail_msg("32 labels refused: %s", msg);
    sl_k8s_step_free(s);
    sl_cfg_free(cfg);
    snprintf(yaml + o, sizeof yaml - (size_t)o, "    l32: pod\n");
    expect_error(yaml, "at most 32");
}

static const sl_field *field(const sl_record *r, const char *key)
{
    return sl_record_field(r, key, strlen(key));
}

/* Without kubelet_url: the file name's parts, labels and metadata per the
 * default allow-list; nothing about the pod's labels. */
static void test_path_only(void **state)
{
    (void)state;
    char msg[512];
    sl_cfg *cfg;
    sl_k8s_step *s = step_from("kubernetes:\n", &cfg, msg, sizeof msg);
    assert_non_null(s);
    sl_batch *b = sl_batch_new(1);
    assert_non_null(b);
    assert_int_equal(sl_batch_set_names(b, "in", "/var/log/pods/shop_web-1_0b5c-11/nginx/0.log"),
                     0);
    sl_record *r = sl_batch_add(b, SL_SLICE_LIT("hello"), 1, 1);
    assert_non_null(r);
    sl_err err;
    assert_int_equal(sl_k8s_step_run(s, b, r, &err), 0);
    const sl_field *f = field(r, "namespace");
    assert_true(f && sl_slice_eq(f->val, "shop", 4) && (f->flags & SL_FF_LABEL));
    f = field(r, "pod");
    assert_true(f && sl_slice_eq(f->val, "web-1", 5) && (f->flags & SL_FF_LABEL));
    f = field(r, "container");
    assert_true(f && sl_slice_eq(f->val, "nginx", 5) && (f->flags & SL_FF_LABEL));
    f = field(r, "pod_uid");
    assert_true(f && sl_slice_eq(f->val, "0b5c-11", 7) && (f->flags & SL_FF_METADATA));
    assert_null(field(r, "node")); /* no node: key, no kubelet */
    assert_null(field(r, "app"));
    sl_batch_unref(b);
    sl_k8s_step_free(s);
    sl_cfg_free(cfg);
}

static void test_decode(void **state)
{
    (void)state;
    const char *json =
        "{\"kind\":\"PodList\",\"items\":["
        "{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u1\","
        "\"labels\":{\"app\":\"web\",\"n\":1},"
        "\"annotations\":{\"sluice.io/exclude\":\"true\",\"big\":\"x\",\"team\":\"t\"},"
        "\"ownerReferences\":[{\"kind\":\"Node\",\"name\":\"x\"},"
        "{\"kind\":\"ReplicaSet\",\"name\":\"a-rs\",\"controller\":true}]},"
        "\"spec\":{\"nodeName\":\"node-1\"}},"
        "{\"metadata\":{\"name\":\"no-uid\"}}, 7, "
        "{\"metadata\":{\"uid\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123\"}}"
        "]}";
    const char *want[] = {"team"};
    sl_k8s_pod **pods;
    size_t n;
    sl_err err;
    assert_int_equal(sl_k8s_podlist_decode(json, strlen(json), want, 1, &pods, &n, &err), 0);
    assert_int_equal(n, 1); /* no uid, not an object, a 64-byte uid: skipped */
    sl_k8s_pod *p = pods[0];
    assert_string_equal(p->uid, "u1");
    assert_string_equal(p->node, "node-1");
    assert_string_equal(p->owner_kind, "ReplicaSet"); /* the controller wins */
    assert_string_equal(sl_k8s_pod_label(p, "app"), "web");
    assert_null(sl_k8s_pod_label(p, "n")); /* not a string */
    assert_string_equal(sl_k8s_pod_annotation(p, "sluice.io/exclude"), "true");
    assert_string_equal(sl_k8s_pod_annotation(p, "team"), "t");
    assert_null(sl_k8s_pod_annotation(p, "big")); /* not asked for */
    sl_k8s_pod_unref(p);
    free(pods);

    static const char *const bad[] = {"", "[]", "{\"items\":{}}", "{\"items\":[}",
                                      "{\"items\":[],\"items\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pods = (sl_k8s_pod **)1;
        assert_int_not_equal(
            sl_k8s_podlist_decode(bad[i], strlen(bad[i]), NULL, 0, &pods, &n, &err), 0);
        assert_null(pods);
        assert_true(err.msg[0] != '\0');
    }
}

/* More pods than the bound: the first SL_K8S_MAX_PODS are kept; a value
 * over SL_K8S_MAX_VALUE_BYTES is left out. */
static void test_decode_bounds(void **state)
{
    (void)state;
    size_t cap = (SL_K8S_MAX_PODS + 10) * 64 + 8192;
    char *json = malloc(cap);
    assert_non_null(json);
    size_t o = (size_t)snprintf(json, cap, "{\"items\":[");
    for (int i = 0; i < SL_K8S_MAX_PODS + 10; i++)
        o += (size_t)snprintf(json + o, cap - o, "%s{\"metadata\":{\"uid\":\"u%d\"}}", i ? "," : "",
                              i);
    o += (size_t)snprintf(json + o, cap - o, "]}");
    sl_k8s_pod **pods;
    size_t n;
    sl_err err;
    assert_int_equal(sl_k8s_podlist_decode(json, o, NULL, 0, &pods, &n, &err), 0);
    assert_int_equal(n, SL_K8S_MAX_PODS);
    for (size_t i = 0; i < n; i++) sl_k8s_pod_unref(pods[i]);
    free(pods);

    o = (size_t)snprintf(json, cap,
                         "{\"items\":[{\"metadata\":{\"uid\":\"u\",\"labels\":{\"big\":\"");
    memset(json + o, 'x', SL_K8S_MAX_VALUE_BYTES + 1);
    o += SL_K8S_MAX_VALUE_BYTES + 1;
    o += (size_t)snprintf(json + o, cap - o, "\",\"ok\":\"y\"}}}]}");
    assert_int_equal(sl_k8s_podlist_decode(json, o, NULL, 0, &pods, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_null(sl_k8s_pod_label(pods[0], "big"));
    assert_string_equal(sl_k8s_pod_label(pods[0], "ok"), "y");
    sl_k8s_pod_unref(pods[0]);
    free(pods);
    free(json);
}

/* One pod as a kubelet lists it, with the fields a real one carries
 * (managedFields, two containers, env, volumes, probes, conditions). */
static const char real_pod[] =
    "{\"metadata\":{\"name\":\"web-%d\",\"generateName\":\"web-7d4b9c-\",\"namespace\":\"prod\","
    "\"uid\":\"0b0e6f3a-%08d-4c1e-9d0b-5f2e4c8b1a7d\",\"resourceVersion\":\"123456789\","
    "\"creationTimestamp\":\"2026-12-07T10:00:00Z\",\"labels\":{\"app\":\"web\","
    "\"app.kubernetes.io/name\":\"web\",\"pod-template-hash\":\"7d4b9c\",\"team\":\"shop\"},"
    "\"annotations\":{\"kubernetes.io/config.seen\":\"2026-12-07T10:00:00.1Z\","
    "\"kubernetes.io/config.source\":\"api\",\"prometheus.io/scrape\":\"true\"},"
    "\"ownerReferences\":[{\"apiVersion\":\"apps/"
    "v1\",\"kind\":\"ReplicaSet\",\"name\":\"web-7d4b9c\","
    "\"uid\":\"5d6e\",\"controller\":true,\"blockOwnerDeletion\":true}],"
    "\"managedFields\":[{\"manager\":\"kube-controller-manager\",\"operation\":\"Update\","
    "\"apiVersion\":\"v1\",\"time\":\"2026-12-07T10:00:00Z\",\"fieldsType\":\"FieldsV1\","
    "\"fieldsV1\":{\"f:metadata\":{\"f:generateName\":{},\"f:labels\":{\".\":{},\"f:app\":{},"
    "\"f:pod-template-hash\":{}},\"f:ownerReferences\":{\".\":{},\"k:{\\\"uid\\\":\\\"5d6e\\\"}\":{"
    "}}},"
    "\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"web\\\"}\":{\".\":{},\"f:env\":{\".\":{},"
    "\"k:{\\\"name\\\":\\\"PORT\\\"}\":{\".\":{},\"f:name\":{},\"f:value\":{}}},\"f:image\":{},"
    "\"f:imagePullPolicy\":{},\"f:name\":{},\"f:ports\":{\".\":{},"
    "\"k:{\\\"containerPort\\\":8080,\\\"protocol\\\":\\\"TCP\\\"}\":{\".\":{},\"f:containerPort\":"
    "{},"
    "\"f:protocol\":{}}},\"f:resources\":{\".\":{},\"f:limits\":{\".\":{},\"f:memory\":{}},"
    "\"f:requests\":{\".\":{},\"f:cpu\":{},\"f:memory\":{}}}}},\"f:dnsPolicy\":{},"
    "\"f:restartPolicy\":{},\"f:schedulerName\":{},\"f:securityContext\":{}}}},"
    "{\"manager\":\"kubelet\",\"operation\":\"Update\",\"apiVersion\":\"v1\","
    "\"time\":\"2026-12-07T10:00:05Z\",\"fieldsType\":\"FieldsV1\",\"subresource\":\"status\","
    "\"fieldsV1\":{\"f:status\":{\"f:conditions\":{\"k:{\\\"type\\\":\\\"Ready\\\"}\":{\".\":{},"
    "\"f:lastProbeTime\":{},\"f:lastTransitionTime\":{},\"f:status\":{},\"f:type\":{}}},"
    "\"f:containerStatuses\":{},\"f:hostIP\":{},\"f:phase\":{},\"f:podIP\":{},\"f:podIPs\":{\".\":{"
    "},"
    "\"k:{\\\"ip\\\":\\\"10.1.2.3\\\"}\":{\".\":{},\"f:ip\":{}}},\"f:startTime\":{}}}}]},"
    "\"spec\":{\"volumes\":[{\"name\":\"kube-api-access-x\",\"projected\":{\"sources\":["
    "{\"serviceAccountToken\":{\"expirationSeconds\":3607,\"path\":\"token\"}},{\"configMap\":"
    "{\"name\":\"kube-root-ca.crt\",\"items\":[{\"key\":\"ca.crt\",\"path\":\"ca.crt\"}]}},"
    "{\"downwardAPI\":{\"items\":[{\"path\":\"namespace\",\"fieldRef\":{\"apiVersion\":\"v1\","
    "\"fieldPath\":\"metadata.namespace\"}}]}}],\"defaultMode\":420}}],\"containers\":["
    "{\"name\":\"web\",\"image\":\"registry.example.com/shop/web:1.2.3\",\"ports\":[{"
    "\"containerPort\":8080,\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"PORT\",\"value\":\"8080\"},"
    "{\"name\":\"LOG_LEVEL\",\"value\":\"info\"}],\"resources\":{\"limits\":{\"memory\":\"512Mi\"},"
    "\"requests\":{\"cpu\":\"100m\",\"memory\":\"256Mi\"}},\"volumeMounts\":[{\"name\":"
    "\"kube-api-access-x\",\"readOnly\":true,\"mountPath\":\"/var/run/secrets/kubernetes.io/"
    "serviceaccount\"}],\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,"
    "\"scheme\":\"HTTP\"},\"timeoutSeconds\":1,\"periodSeconds\":10,\"successThreshold\":1,"
    "\"failureThreshold\":3},\"terminationMessagePath\":\"/dev/termination-log\","
    "\"terminationMessagePolicy\":\"File\",\"imagePullPolicy\":\"IfNotPresent\"},{\"name\":"
    "\"sidecar\",\"image\":\"registry.example.com/proxy:2.0\",\"resources\":{},"
    "\"imagePullPolicy\":\"IfNotPresent\"}],\"restartPolicy\":\"Always\","
    "\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":"
    "\"default\",\"nodeName\":\"node-1\",\"securityContext\":{},\"schedulerName\":"
    "\"default-scheduler\",\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":"
    "\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300},{\"key\":"
    "\"node.kubernetes.io/unreachable\",\"operator\":\"Exists\",\"effect\":\"NoExecute\","
    "\"tolerationSeconds\":300}],\"priority\":0,\"enableServiceLinks\":true},\"status\":{\"phase\":"
    "\"Running\",\"conditions\":[{\"type\":\"Initialized\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-12-07T10:00:00Z\"},{\"type\":\"Ready\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-12-07T10:00:05Z\"},{\"type\":\"ContainersReady\",\"status\":"
    "\"True\",\"lastTransitionTime\":\"2026-12-07T10:00:05Z\"},{\"type\":\"PodScheduled\","
    "\"status\":\"True\",\"lastTransitionTime\":\"2026-12-07T10:00:00Z\"}],\"hostIP\":\"10.0.0.5\","
    "\"podIP\":\"10.1.2.3\",\"podIPs\":[{\"ip\":\"10.1.2.3\"}],\"startTime\":"
    "\"2026-12-07T10:00:00Z\",\"containerStatuses\":[{\"name\":\"web\",\"state\":{\"running\":{"
    "\"startedAt\":\"2026-12-07T10:00:04Z\"}},\"lastState\":{},\"ready\":true,\"restartCount\":0,"
    "\"image\":\"registry.example.com/shop/web:1.2.3\",\"imageID\":\"registry.example.com/shop/"
    "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
    "\"containerID\":\"containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    "ef\",\"started\":true}],\"qosClass\":\"Burstable\"}}";

/* The decoder's tree is estimated before jansson builds it: 31 MiB of
 * `{},` or of `0,` (ten or sixteen million values, gigabytes as a tree)
 * are refused at once with a clear error; the pods of a full node, 250 as
 * a kubelet lists them with their managedFields, decode. */
static void test_decode_tree_bound(void **state)
{
    (void)state;
    size_t cap = 31u << 20;
    char *json = malloc(cap + 64);
    assert_non_null(json);
    const char *units[] = {"{},", "0,", "[],"};
    for (size_t u = 0; u < 3; u++) {
        size_t o = (size_t)snprintf(json, 64, "{\"items\":[");
        size_t un = strlen(units[u]);
        while (o + un + 8 < cap) memcpy(json + o, units[u], un), o += un;
        o += (size_t)snprintf(json + o, 64, "{}]}");
        sl_k8s_pod **pods = NULL;
        size_t n = 7;
        sl_err err = {0};
        assert_int_equal(sl_k8s_podlist_decode(json, o, NULL, 0, &pods, &n, &err), SL_ENOMEM);
        assert_null(pods);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err.msg, "would take about"));
    }
    size_t o = (size_t)snprintf(json, 64, "{\"kind\":\"PodList\",\"items\":[");
    for (int i = 0; i < 250; i++) {
        if (i) json[o++] = ',';
        o += (size_t)snprintf(json + o, cap - o, real_pod, i, i);
    }
    /* Brackets and commas inside strings are text, not values: a 4 MiB
     * annotation of them costs its bytes only. */
    o += (size_t)snprintf(json + o, cap - o,
                          ",{\"metadata\":{\"uid\":\"u-text\",\"annotations\":{\"a\":\"");
    for (size_t i = 0; i < 5 * 838860; i++) json[o++] = "{[,\\\""[i % 5]; /* {[,\" */
    o += (size_t)snprintf(json + o, cap - o, "\"}}}]}");
    sl_k8s_pod **pods = NULL;
    size_t n = 0;
    sl_err err = {0};
    if (sl_k8s_podlist_decode(json, o, NULL, 0, &pods, &n, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, 251);
    assert_string_equal(sl_k8s_pod_label(pods[249], "team"), "shop");
    print_message("250 real pods: %zu bytes\n", o);
    for (size_t i = 0; i < n; i++) sl_k8s_pod_unref(pods[i]);
    free(pods);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_path_only),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_decode_tree_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
