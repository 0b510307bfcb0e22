/* The kubernetes step end to end: the real agent tails a fixture
 * /var/log/pods tree (in a temporary folder) with `cri` + `kubernetes`,
 * takes pod metadata from the fake kubelet (tests/fake_kubelet.c, HTTPS on
 * loopback, bearer token) and ships to the Loki receiver. Pods appear, log
 * and disappear while the fake kubelet follows; the kubelet goes down,
 * answers slowly and comes back; annotated pods are excluded; a hostile
 * kubelet (huge, stalled, malformed, redirecting answers, megabyte labels,
 * thousands of pods) costs bounded time and memory (decision 0073).
 *
 * One file over 800 lines: one test program for the step against the real
 * agent, its tests sharing the rig (fixture tree, fake kubelet, receiver,
 * agent) set up at the top. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "tests/fake_kubelet.h"
#include "tests/helpers.h"
#include "tests/loki_receiver.h"

#define TOKEN "fake-sa-token-0123"

/* Which names the file input globs: the pods' files, their
 * /var/log/containers-style links as well, or only the links. */
enum globs { GLOB_PODS, GLOB_PODS_AND_LINKS, GLOB_LINKS };

typedef struct rig {
    char *dir, *pods, *links, *cfg, *log;
    int mport;
    pid_t pid;
    sl_lr *lr;
    sl_fk *fk;
} rig;

static int scale(int ms)
{
    return sl_t_sanitized() ? ms * 3 : ms;
}

static bool agent_up(void *arg)
{
    rig *r = arg;
    return sl_t_metric(r->mport, "sluice_input_records_total") >= 0;
}

/* Starts the receiver, the fake kubelet and the agent. step_extra: more
 * keys of the kubernetes step, each line indented by ten spaces. */
static void rig_start_globs(rig *r, const char *tag, const char *step_extra, enum globs globs)
{
    memset(r, 0, sizeof *r);
    r->dir = sl_t_tmpdir(tag);
    assert_non_null(r->dir);
    r->pods = sl_t_path(r->dir, "pods");
    assert_int_equal(mkdir(r->pods, 0755), 0);
    r->links = sl_t_path(r->dir, "containers");
    assert_int_equal(mkdir(r->links, 0755), 0);
    /* The links lead out of their folder into pods/: allowed as the
     * kubelet's /var/log/containers -> /var/log/pods are (decision 0015). */
    char paths[2300];
    if (globs == GLOB_PODS)
        snprintf(paths, sizeof paths, "    paths: [\"%s/*/*/*.log\"]\n", r->pods);
    else if (globs == GLOB_PODS_AND_LINKS)
        snprintf(paths, sizeof paths, "    paths: [\"%s/*/*/*.log\", \"%s/*.log\"]\n", r->pods,
                 r->links);
    else
        snprintf(paths, sizeof paths,
                 "    paths: [\"%s/*.log\"]\n    follow_symlinks_into: [\"%s\"]\n", r->links,
                 r->pods);
    r->cfg = sl_t_path(r->dir, "agent.yml");
    r->log = sl_t_path(r->dir, "agent.log");
    char *token = sl_t_path(r->dir, "token");
    assert_int_equal(sl_t_write_file(token, TOKEN "\n", strlen(TOKEN) + 1), 0);
    char certs[1024];
    snprintf(certs, sizeof certs, "%s/tests/fixtures/k8s", sl_t_src());
    if (sl_fk_start(certs, 0, TOKEN, &r->fk) != 0) fail_msg("fake kubelet did not start");
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r->lr), 0);
    r->mport = sl_t_free_port();
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "metrics: { listen: \"127.0.0.1:%d\" }\n"
                         "shutdown_timeout: 2s\n"
                         "inputs:\n"
                         "  - name: pods\n"
                         "    type: file\n"
                         "%s"
                         "    start_at: beginning\n"
                         "    rescan_interval: 200ms\n"
                         "    parse:\n"
                         "      - cri: {}\n"
                         "      - kubernetes:\n"
                         "          kubelet_url: https://127.0.0.1:%d/pods\n"
                         "          token_file: %s\n"
                         "          ca_file: %s/kubelet-test.crt\n"
                         "          refresh_min_interval: 200ms\n"
                         "%s"
                         "sinks:\n"
                         "  - name: loki\n"
                         "    type: loki\n"
                         "    url: http://127.0.0.1:%d/loki/api/v1/push\n"
                         "    max_batch_wait: 50ms\n"
                         "    min_backoff: 10ms\n"
                         "    max_backoff: 200ms\n",
                         r->dir, r->mport, paths, sl_fk_port(r->fk), token, certs,
                         step_extra ? step_extra : "", sl_lr_port(r->lr)) > 0);
    free(token);
    assert_int_equal(sl_t_write_file(r->cfg, yaml, strlen(yaml)), 0);
    free(yaml);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    if (!sl_t_wait_until(agent_up, r, scale(10000))) {
        char *log = sl_t_read_file(r->log, NULL);
        fail_msg("agent did not come up:\n%s", log ? log : "");
    }
}

static void rig_start(rig *r, const char *tag, const char *step_extra)
{
    rig_start_globs(r, tag, step_extra, GLOB_PODS);
}

static void rig_stop(rig *r)
{
    if (r->pid > 0) sl_t_stop(r->pid, SIGKILL, 5000);
    if (r->lr) sl_lr_stop(r->lr);
    if (r->fk) sl_fk_stop(r->fk);
    if (getenv("KEEP_TMP") == NULL) sl_t_rmtree(r->dir);
    free(r->dir);
    free(r->pods);
    free(r->links);
    free(r->cfg);
    free(r->log);
}

/* The log file of container c of pod i: pods/ns-<i>_pod-<i>_uid-<i>/<c>/0.log. */
static char *pod_file(rig *r, int i, const char *c)
{
    char *d = NULL, *f = NULL;
    assert_true(asprintf(&d, "%s/ns-%d_pod-%d_uid-%d", r->pods, i, i, i) > 0);
    mkdir(d, 0755);
    assert_true(asprintf(&f, "%s/%s", d, c) > 0);
    mkdir(f, 0755);
    free(f);
    assert_true(asprintf(&f, "%s/%s/0.log", d, c) > 0);
    free(d);
    return f;
}

/* The kubelet's link to pod i's container c, as in /var/log/containers:
 * containers/pod-<i>_ns-<i>_<c>-<64 hex digits>.log -> its 0.log. */
static void link_pod_file(rig *r, int i, const char *c)
{
    char *target = pod_file(r, i, c), *name = NULL;
    assert_true(asprintf(&name, "%s/pod-%d_ns-%d_%s-%064x.log", r->links, i, i, c, i) > 0);
    if (symlink(target, name) != 0 && errno != EEXIST)
        fail_msg("symlink %s: %s", name, strerror(errno));
    free(target);
    free(name);
}

/* Appends line j of pod i's container c; odd lines come as a partial
 * piece and its final piece, which the cri step joins. */
static void log_line(rig *r, int i, const char *c, int j)
{
    char *f = pod_file(r, i, c);
    char text[256];
    int n;
    if (j % 2)
        n = snprintf(text, sizeof text,
                     "2026-12-07T00:00:00.%09dZ stdout P pod-%d %s line-%d part1\n"
                     "2026-12-07T00:00:00.%09dZ stdout F +part2\n",
                     j, i, c, j, j);
    else
        n = snprintf(text, sizeof text, "2026-12-07T00:00:00.%09dZ stdout F pod-%d %s line-%d\n", j,
                     i, c, j);
    assert_int_equal(sl_t_append_file(f, text, (size_t)n), 0);
    free(f);
}

static void add_pod(rig *r, int i, const char *annotations)
{
    char ns[32], name[32], uid[32], labels[128];
    snprintf(ns, sizeof ns, "ns-%d", i);
    snprintf(name, sizeof name, "pod-%d", i);
    snprintf(uid, sizeof uid, "uid-%d", i);
    snprintf(labels, sizeof labels,
             "{\"app\":\"app-%d\",\"team\":\"t%d\",\"pod-template-hash\":\"h%d\"}", i, i % 3, i);
    assert_int_equal(sl_fk_add_pod(r->fk, ns, name, uid, labels, annotations), 0);
}

/* Waits until the kubelet has answered n more authorized requests, so a
 * whole fetch has begun and ended since the caller's change. */
static void wait_fetches(rig *r, uint64_t n)
{
    uint64_t before = sl_fk_authorized(r->fk);
    for (int waited = 0; sl_fk_authorized(r->fk) < before + n; waited += 20) {
        if (waited > scale(30000)) fail_msg("the agent did not ask the kubelet again");
        sl_t_sleep_ms(20);
    }
}

static void delete_pod(rig *r, int i)
{
    char uid[32];
    snprintf(uid, sizeof uid, "uid-%d", i);
    sl_fk_delete_pod(r->fk, uid);
}

typedef struct want_n {
    rig *r;
    size_t n;
} want_n;

static bool has_entries(void *arg)
{
    want_n *w = arg;
    return sl_lr_nentries(w->r->lr) >= w->n;
}

static void wait_entries(rig *r, size_t n, int ms)
{
    want_n w = {r, n};
    if (!sl_t_wait_until(has_entries, &w, ms)) {
        char *log = sl_t_read_file(r->log, NULL);
        fail_msg("%zu of %zu entries arrived; agent log:\n%s", sl_lr_nentries(r->lr), n,
                 log ? log : "");
    }
}

static const char *meta_of(const sl_lr_entry *e, const char *key)
{
    for (uint32_t k = 0; k < e->nmeta; k++)
        if (strcmp(e->meta[k].name, key) == 0) return e->meta[k].value;
    return NULL;
}

/* The entries whose line starts with "pod-<i> <c> ": their count, and
 * whether each has the labels (and metadata) of pod i's metadata. */
static size_t count_pod(rig *r, int i, const char *c, bool with_meta, size_t *bad)
{
    char prefix[64], want[256];
    int pn = snprintf(prefix, sizeof prefix, "pod-%d %s ", i, c);
    if (with_meta)
        snprintf(want, sizeof want,
                 "{app=\"app-%d\", container=\"%s\", namespace=\"ns-%d\", node=\"fake-node\", "
                 "pod=\"pod-%d\"}",
                 i, c, i, i);
    else
        snprintf(want, sizeof want, "{container=\"%s\", namespace=\"ns-%d\", pod=\"pod-%d\"}", c, i,
                 i);
    size_t n = 0;
    for (size_t k = 0; k < sl_lr_nentries(r->lr); k++) {
        const sl_lr_entry *e = sl_lr_entry_at(r->lr, k);
        if (e->line_n < (size_t)pn || memcmp(e->line, prefix, (size_t)pn) != 0) continue;
        n++;
        char team[8];
        snprintf(team, sizeof team, "t%d", i % 3);
        const char *t = meta_of(e, "pod_label_team");
        const char *uid = meta_of(e, "pod_uid");
        bool ok = strcmp(e->labels, want) == 0 && uid && strncmp(uid, "uid-", 4) == 0;
        if (with_meta) ok = ok && t && strcmp(t, team) == 0 && meta_of(e, "owner_name");
        if (!ok) {
            if (*bad == 0)
                print_message("bad entry: %.*s labels %s (want %s)\n", (int)e->line_n, e->line,
                              e->labels, want);
            (*bad)++;
        }
    }
    return n;
}

/* Every line once, whole (the partial pieces joined), with its labels. */
static void check_lines_once(rig *r, int from, int to, const char *c, int lines)
{
    for (int i = from; i < to; i++)
        for (int j = 0; j < lines; j++) {
            char want[96];
            int n = j % 2 ? snprintf(want, sizeof want, "pod-%d %s line-%d part1+part2", i, c, j)
                          : snprintf(want, sizeof want, "pod-%d %s line-%d", i, c, j);
            int seen = 0;
            for (size_t k = 0; k < sl_lr_nentries(r->lr); k++) {
                const sl_lr_entry *e = sl_lr_entry_at(r->lr, k);
                seen += e->line_n == (size_t)n && memcmp(e->line, want, (size_t)n) == 0;
            }
            if (seen != 1) fail_msg("'%s' arrived %d times", want, seen);
        }
}

/* 50 pods in waves of 10 (20 under the sanitizers): each wave's pods are
 * added to the kubelet and log; then the previous wave is deleted from the
 * kubelet, which is resynced, and DELETE_MS later those pods log their
 * last lines, which must still carry their metadata (grace). */
static void test_churn(void **state)
{
    (void)state;
    const int npods = sl_t_sanitized() ? 20 : 50, wave = 10, lines = 4;
    /* The 10 s under `make test-long` (which CI runs), 2 s in `make
     * test`; SLUICE_K8S_DELETE_MS sets it. The grace is 3 s longer. */
    const char *env = getenv("SLUICE_K8S_DELETE_MS");
    const int delete_ms = env && atoi(env) > 0 ? atoi(env) : sl_t_long() ? 10000 : 2000;
    char extra[256];
    snprintf(extra, sizeof extra,
             "          resync_interval: 500ms\n"
             "          grace: %dms\n"
             "          wait: 5s\n",
             delete_ms + 3000);
    rig r;
    rig_start(&r, "k8s-churn", extra);
    size_t expect = 0;
    for (int w = 0; w * wave < npods; w++) {
        for (int i = w * wave; i < (w + 1) * wave; i++) {
            add_pod(&r, i, NULL);
            for (int j = 0; j < lines - 1; j++) log_line(&r, i, "main", j);
            expect += (size_t)lines - 1;
        }
        wait_entries(&r, expect, scale(20000));
        if (w == 0) continue;
        for (int i = (w - 1) * wave; i < w * wave; i++) delete_pod(&r, i);
        /* The deletion is seen by a resync, then the pods' last lines come. */
        wait_fetches(&r, 2);
        sl_t_sleep_ms(delete_ms); /* the scenario's time, not a synchronisation */
        for (int i = (w - 1) * wave; i < w * wave; i++) log_line(&r, i, "main", lines - 1);
        expect += (size_t)wave;
        wait_entries(&r, expect, scale(20000));
    }
    int last = (npods / wave - 1) * wave;
    for (int i = last; i < npods; i++) log_line(&r, i, "main", lines - 1);
    expect += (size_t)(npods - last);
    wait_entries(&r, expect, scale(20000));

    size_t bad = 0;
    for (int i = 0; i < npods; i++)
        assert_int_equal(count_pod(&r, i, "main", true, &bad), (size_t)lines);
    assert_int_equal(bad, 0);
    check_lines_once(&r, 0, npods, "main", lines);
    assert_int_equal(sl_lr_nentries(r.lr), expect);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_metadata_missing_total") == 0);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_kubelet_requests_total") >= 1);
    rig_stop(&r);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The kubelet down, then slow, then back: lines of known pods keep their
 * metadata, lines of new pods ship within the wait bound with what the
 * file name gives (counted), nothing is lost; after the restart new pods
 * get their metadata again. */
static void test_outage(void **state)
{
    (void)state;
    const int wait_ms = 1000, slow_ms = scale(6000);
    char extra[256];
    snprintf(extra, sizeof extra,
             "          wait: %dms\n"
             "          resync_interval: 500ms\n"
             "          timeout: 30s\n",
             wait_ms);
    rig r;
    rig_start(&r, "k8s-outage", extra);
    add_pod(&r, 1, NULL);
    log_line(&r, 1, "main", 0);
    wait_entries(&r, 1, scale(20000));

    /* Down: connections refused. */
    sl_fk_down(r.fk);
    double t0 = now_ms();
    log_line(&r, 1, "main", 2);
    log_line(&r, 2, "main", 0); /* unknown pod, kubelet down */
    wait_entries(&r, 3, scale(20000));
    double down_ms = now_ms() - t0;
    print_message("kubelet down: 2 lines shipped in %.0f ms\n", down_ms);
    assert_true(down_ms < wait_ms + scale(3000));
    size_t bad = 0;
    assert_int_equal(count_pod(&r, 1, "main", true, &bad), 2);
    assert_int_equal(count_pod(&r, 2, "main", false, &bad), 1);
    assert_int_equal(bad, 0);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_metadata_missing_total") >= 1);

    /* Back and answering, then slow: a new pod's line waits at most the bound. */
    assert_int_equal(sl_fk_up(r.fk), 0);
    wait_fetches(&r, 2);
    sl_fk_set_delay_ms(r.fk, slow_ms);
    add_pod(&r, 3, NULL);
    t0 = now_ms();
    log_line(&r, 3, "main", 0);
    wait_entries(&r, 4, scale(20000));
    double slow_took = now_ms() - t0;
    print_message("kubelet slow (%d ms): a new pod's line shipped in %.0f ms\n", slow_ms,
                  slow_took);
    assert_true(slow_took < wait_ms + scale(3000) && slow_took < slow_ms);

    /* Answering 503: a new pod's line ships within the bound, without
     * the kubelet's metadata; known pods keep theirs. */
    sl_fk_set_delay_ms(r.fk, 0);
    sl_fk_set_fail(r.fk, 503);
    wait_fetches(&r, 2);
    add_pod(&r, 5, NULL);
    t0 = now_ms();
    log_line(&r, 5, "main", 0);
    log_line(&r, 1, "main", 4);
    wait_entries(&r, 6, scale(20000));
    double failing_ms = now_ms() - t0;
    print_message("kubelet answering 503: 2 lines shipped in %.0f ms\n", failing_ms);
    assert_true(failing_ms < wait_ms + scale(3000));
    assert_int_equal(count_pod(&r, 5, "main", false, &bad), 1);
    assert_int_equal(count_pod(&r, 1, "main", true, &bad), 3);
    assert_int_equal(bad, 0);

    /* Healthy again: new pods get their metadata. */
    sl_fk_set_fail(r.fk, 0);
    add_pod(&r, 4, NULL);
    wait_fetches(&r, 2);
    log_line(&r, 4, "main", 0);
    log_line(&r, 4, "main", 2);
    wait_entries(&r, 8, scale(20000));
    assert_int_equal(count_pod(&r, 4, "main", true, &bad), 2);
    assert_int_equal(bad, 0);
    assert_int_equal(sl_lr_nentries(r.lr), 8);
    rig_stop(&r);
}

/* sluice.io/exclude drops a pod, sluice.io/exclude-<container> one of its
 * containers; both counted, neither shipped anywhere. */
static void test_exclude(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-exclude", NULL);
    add_pod(&r, 1, "{\"sluice.io/exclude\":\"true\"}");
    add_pod(&r, 2, "{\"sluice.io/exclude-sidecar\":\"true\"}");
    add_pod(&r, 3, "{\"sluice.io/exclude\":\"false\"}");
    for (int j = 0; j < 4; j++) {
        log_line(&r, 1, "main", j);
        log_line(&r, 2, "main", j);
        log_line(&r, 2, "sidecar", j);
        log_line(&r, 3, "main", j);
    }
    wait_entries(&r, 8, scale(20000));
    for (int waited = 0; sl_t_metric(r.mport, "sluice_k8s_excluded_total") < 8; waited += 50) {
        if (waited > scale(20000)) fail_msg("excluded records were not counted");
        sl_t_sleep_ms(50);
    }
    size_t bad = 0;
    assert_int_equal(count_pod(&r, 1, "main", true, &bad), 0);
    assert_int_equal(count_pod(&r, 2, "sidecar", true, &bad), 0);
    assert_int_equal(count_pod(&r, 2, "main", true, &bad), 4);
    assert_int_equal(count_pod(&r, 3, "main", true, &bad), 4);
    assert_int_equal(bad, 0);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_excluded_total") == 8);
    assert_int_equal(sl_lr_nentries(r.lr), 8);
    rig_stop(&r);
}

/* A wrong token: the kubelet answers 401, the agent counts failed
 * requests and still ships every line with the file name's metadata. */
static void test_bad_token(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-token", "          wait: 1s\n");
    char *token = sl_t_path(r.dir, "token");
    assert_int_equal(sl_t_write_file(token, "wrong\n", 6), 0);
    free(token);
    add_pod(&r, 5, NULL);
    log_line(&r, 5, "main", 0);
    wait_entries(&r, 1, scale(20000));
    size_t bad = 0;
    assert_int_equal(count_pod(&r, 5, "main", false, &bad), 1);
    assert_int_equal(bad, 0);
    assert_true(sl_fk_requests(r.fk) >= 1);
    assert_int_equal(sl_fk_authorized(r.fk), 0);
    char *log = sl_t_read_file(r.log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "HTTP 401"));
    assert_null(strstr(log, "wrong")); /* the token is never logged */
    free(log);
    rig_stop(&r);
}

/* Appends one CRI line whose message is msg to pod i's container c. */
static void log_msg(rig *r, int i, const char *c, const char *msg)
{
    char *f = pod_file(r, i, c);
    char text[512];
    int n = snprintf(text, sizeof text, "2026-12-07T00:00:01.000000000Z stdout F %s\n", msg);
    assert_int_equal(sl_t_append_file(f, text, (size_t)n), 0);
    free(f);
}

/* The labels of the entry whose line is `line`; fails when absent. */
static const char *labels_of(rig *r, const char *line)
{
    for (size_t k = 0; k < sl_lr_nentries(r->lr); k++) {
        const sl_lr_entry *e = sl_lr_entry_at(r->lr, k);
        if (e->line_n == strlen(line) && memcmp(e->line, line, e->line_n) == 0) return e->labels;
    }
    fail_msg("'%s' did not arrive", line);
    return NULL;
}

/* sluice.io/parser picks a parse chain by name for a pod, and
 * sluice.io/parser-<container> for one of its containers; an unknown name
 * ships the line raw, counted as a kubernetes parse error. */
static void test_parser(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-parser",
              "          parsers:\n"
              "            json:\n"
              "              - json: {}\n"
              "              - labels: [level]\n"
              "            kv:\n"
              "              - logfmt: {}\n"
              "              - labels: [level]\n");
    add_pod(&r, 1, "{\"sluice.io/parser\":\"json\"}");
    add_pod(&r, 2, "{\"sluice.io/parser\":\"json\",\"sluice.io/parser-side\":\"kv\"}");
    add_pod(&r, 3, NULL);
    add_pod(&r, 4, "{\"sluice.io/parser\":\"nope\"}");
    log_msg(&r, 1, "main", "{\"level\":\"warn\",\"msg\":\"p1\"}");
    log_msg(&r, 2, "main", "{\"level\":\"error\",\"msg\":\"p2\"}");
    log_msg(&r, 2, "side", "level=debug msg=p2side");
    log_msg(&r, 3, "main", "{\"level\":\"info\",\"msg\":\"p3\"}");
    log_msg(&r, 4, "main", "level=info msg=p4");
    wait_entries(&r, 5, scale(20000));
    assert_non_null(strstr(labels_of(&r, "{\"level\":\"warn\",\"msg\":\"p1\"}"), "level=\"warn\""));
    assert_non_null(
        strstr(labels_of(&r, "{\"level\":\"error\",\"msg\":\"p2\"}"), "level=\"error\""));
    assert_non_null(strstr(labels_of(&r, "level=debug msg=p2side"), "level=\"debug\""));
    assert_null(strstr(labels_of(&r, "{\"level\":\"info\",\"msg\":\"p3\"}"), "level="));
    assert_null(strstr(labels_of(&r, "level=info msg=p4"), "level="));
    assert_true(sl_t_metric(r.mport, "sluice_parse_errors_total") >= 1);
    assert_int_equal(sl_lr_nentries(r.lr), 5);
    rig_stop(&r);
}

/* The /var/log/containers links. Globbed beside the pods' files (as the
 * shipped overlay does), each line arrives once: a link to a file the input
 * reads is that file (device and inode), whichever name is found first.
 * Globbed alone (a node or mount showing only /var/log/containers), every
 * line arrives with its pod's metadata: the link's name has no pod UID,
 * which the kubernetes step reads from the name the link points at. */
static void test_container_links(void **state)
{
    (void)state;
    const enum globs modes[] = {GLOB_PODS_AND_LINKS, GLOB_LINKS};
    for (size_t m = 0; m < 2; m++) {
        rig r;
        rig_start_globs(&r, "k8s-links", NULL, modes[m]);
        for (int i = 0; i < 5; i++) {
            add_pod(&r, i, NULL);
            link_pod_file(&r, i, "main");
            for (int j = 0; j < 4; j++) log_line(&r, i, "main", j);
        }
        wait_entries(&r, 20, scale(20000));
        /* More lines once the files are tracked, under whichever name. */
        for (int i = 0; i < 5; i++)
            for (int j = 4; j < 6; j++) log_line(&r, i, "main", j);
        wait_entries(&r, 30, scale(20000));
        size_t bad = 0;
        for (int i = 0; i < 5; i++) assert_int_equal(count_pod(&r, i, "main", true, &bad), 6);
        assert_int_equal(bad, 0);
        check_lines_once(&r, 0, 5, "main", 6);
        assert_int_equal(sl_lr_nentries(r.lr), 30);
        assert_true(sl_t_metric(r.mport, "sluice_k8s_metadata_missing_total") == 0);
        print_message("%s: 30 lines once, with their pods' metadata\n",
                      modes[m] == GLOB_LINKS ? "links only" : "pods and links");
        rig_stop(&r);
    }
}

/* config/k8s.yml itself, as shipped, over a fixture tree: a test overlay
 * only moves the pods input's paths into the temporary folder and adds the
 * sink; the kubelet's port and the service-account folder come from the
 * overlay's variables. Every line arrives joined, with the overlay's
 * labels and structured metadata. */
static void test_shipped_overlay(void **state)
{
    (void)state;
    rig r;
    memset(&r, 0, sizeof r);
    r.dir = sl_t_tmpdir("k8s-overlay");
    assert_non_null(r.dir);
    r.pods = sl_t_path(r.dir, "pods");
    assert_int_equal(mkdir(r.pods, 0755), 0);
    r.cfg = sl_t_path(r.dir, "test.yml");
    r.log = sl_t_path(r.dir, "agent.log");
    char *sa = sl_t_path(r.dir, "sa"), *certs = NULL, *yaml = NULL, *cmd = NULL;
    assert_int_equal(mkdir(sa, 0755), 0);
    char *token = sl_t_path(sa, "token"), *ca = sl_t_path(sa, "ca.crt");
    assert_int_equal(sl_t_write_file(token, TOKEN "\n", strlen(TOKEN) + 1), 0);
    assert_true(asprintf(&certs, "%s/tests/fixtures/k8s", sl_t_src()) > 0);
    assert_true(asprintf(&cmd, "cp %s/kubelet-test.crt %s", certs, ca) > 0);
    assert_int_equal(system(cmd), 0);
    if (sl_fk_start(certs, 0, TOKEN, &r.fk) != 0) fail_msg("fake kubelet did not start");
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r.lr), 0);
    r.mport = sl_t_free_port();
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "metrics: { listen: \"127.0.0.1:%d\" }\n"
                         "inputs:\n"
                         "  - name: pods\n"
                         "    paths: [\"%s/*/*/*.log\"]\n"
                         "    rescan_interval: 200ms\n"
                         "sinks:\n"
                         "  - name: loki\n"
                         "    type: loki\n"
                         "    url: http://127.0.0.1:%d/loki/api/v1/push\n"
                         "    max_batch_wait: 50ms\n",
                         r.dir, r.mport, r.pods, sl_lr_port(r.lr)) > 0);
    assert_int_equal(sl_t_write_file(r.cfg, yaml, strlen(yaml)), 0);
    char port[16], overlay[1024];
    snprintf(port, sizeof port, "%d", sl_fk_port(r.fk));
    snprintf(overlay, sizeof overlay, "%s/config/k8s.yml", sl_t_src());
    setenv("SLUICE_NODE_IP", "127.0.0.1", 1);
    setenv("SLUICE_KUBELET_PORT", port, 1);
    setenv("SLUICE_SA_DIR", sa, 1);
    setenv("SLUICE_HOST", "test-node", 1);
    setenv("SLUICE_CONFIG_DIR", r.dir, 1);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", overlay, "-c", r.cfg, NULL};
    r.pid = sl_t_spawn(argv, r.log);
    assert_true(r.pid > 0);
    if (!sl_t_wait_until(agent_up, &r, scale(10000))) {
        char *log = sl_t_read_file(r.log, NULL);
        fail_msg("agent did not come up:\n%s", log ? log : "");
    }
    for (int i = 0; i < 5; i++) add_pod(&r, i, NULL);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) log_line(&r, i, "main", j);
    wait_entries(&r, 20, scale(20000));
    check_lines_once(&r, 0, 5, "main", 4);
    for (size_t k = 0; k < sl_lr_nentries(r.lr); k++) {
        const sl_lr_entry *e = sl_lr_entry_at(r.lr, k);
        int i = -1;
        assert_int_equal(sscanf(e->line, "pod-%d ", &i), 1);
        char want[256];
        snprintf(want, sizeof want,
                 "{app=\"app-%d\", container=\"main\", job=\"kubernetes-pods\", "
                 "namespace=\"ns-%d\", node=\"fake-node\", pod=\"pod-%d\"}",
                 i, i, i);
        if (strcmp(e->labels, want) != 0) fail_msg("labels %s, want %s", e->labels, want);
        const char *owner = meta_of(e, "owner_name"), *kind = meta_of(e, "owner_kind");
        assert_non_null(meta_of(e, "pod_uid"));
        assert_non_null(meta_of(e, "pod_label_pod_template_hash"));
        assert_true(owner && kind && strcmp(kind, "ReplicaSet") == 0);
    }
    unsetenv("SLUICE_NODE_IP");
    unsetenv("SLUICE_KUBELET_PORT");
    unsetenv("SLUICE_SA_DIR");
    unsetenv("SLUICE_HOST");
    unsetenv("SLUICE_CONFIG_DIR");
    free(sa);
    free(certs);
    free(yaml);
    free(cmd);
    free(token);
    free(ca);
    rig_stop(&r);
}

/* ---- a hostile kubelet (decision 0073) ---- */

static double k8s_errors(rig *r)
{
    char *text = NULL;
    double v = -1;
    if (sl_t_http_get(r->mport, "/metrics", &text) == 200)
        v = sl_t_series_value(text, "sluice_k8s_kubelet_requests_total{result=\"error\"}");
    free(text);
    return v;
}

/* Waits until n more kubelet requests failed than `before`. */
static void wait_fetch_errors(rig *r, double before, int n, const char *what)
{
    if (before < 0) before = 0; /* no failure counted yet: the series is absent */
    for (int waited = 0; k8s_errors(r) < before + n; waited += 20) {
        if (waited > scale(60000)) {
            char *log = sl_t_read_file(r->log, NULL);
            fail_msg("%s: no failed fetch counted; agent log:\n%s", what, log ? log : "");
        }
        sl_t_sleep_ms(20);
    }
}

/* A PodList of n bytes made of `unit` repeated (the items' elements). */
static char *repeated_list(const char *unit, size_t n, size_t *len)
{
    static const char head[] = "{\"kind\":\"PodList\",\"items\":[", tail[] = "{}]}";
    size_t un = strlen(unit), o = sizeof head - 1;
    char *b = malloc(n + 64);
    assert_non_null(b);
    memcpy(b, head, o);
    while (o + un + sizeof tail < n) memcpy(b + o, unit, un), o += un;
    memcpy(b + o, tail, sizeof tail - 1);
    *len = o + sizeof tail - 1;
    return b;
}

/* The kubelet answering what no kubelet should: a pod list of 300 MiB, an
 * answer that drips a byte a second, bytes that are not JSON, JSON nested
 * 100000 deep, a list cut in the middle, and 31 MiB of empty objects or
 * of numbers (under the 32 MiB bound, the costliest trees to build). Each
 * time: the failed fetch is counted, a known pod's lines keep its metadata,
 * a new pod's lines ship at once with what the file name gives (counted
 * missing), and the agent's memory stays bounded. */
static void test_hostile_kubelet(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-hostile",
              "          wait: 500ms\n"
              "          timeout: 3s\n"
              "          resync_interval: 300ms\n");
    add_pod(&r, 1, NULL);
    log_line(&r, 1, "main", 0);
    wait_entries(&r, 1, scale(20000));
    size_t deep_n = 100000, len = 0;
    char *deep = malloc(deep_n);
    assert_non_null(deep);
    memset(deep, '[', deep_n);
    static const char cut[] =
        "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"uid\":\"uid-1\",\"na";
    static const char html[] = "<html><body>502 Bad Gateway</body></html>\n";
    struct {
        const char *what;
        const char *raw;
        size_t raw_n;
        uint64_t stream, ms;
        bool alloc;
    } phases[] = {
        {"300 MiB pod list", NULL, 0, 300u << 20, 0, false},
        {"an answer dripping 1 byte/s", NULL, 0, 1000, 1000, false},
        {"not JSON", html, sizeof html - 1, 0, 0, false},
        {"JSON nested 100000 deep", deep, deep_n, 0, 0, false},
        {"a list cut in the middle", cut, sizeof cut - 1, 0, 0, false},
        {"31 MiB of empty objects", NULL, 0, 0, 0, true},
        {"31 MiB of numbers", NULL, 0, 0, 0, true},
    };
    size_t expect = 1;
    for (size_t k = 0; k < sizeof phases / sizeof *phases; k++) {
        char *made = NULL;
        if (phases[k].alloc) {
            made = repeated_list(k == 5 ? "{}," : "0,", 31u << 20, &len);
            phases[k].raw = made;
            phases[k].raw_n = len;
        }
        uint64_t sent0 = sl_fk_stream_sent(r.fk);
        double before = k8s_errors(&r);
        if (phases[k].raw) sl_fk_set_raw(r.fk, phases[k].raw, phases[k].raw_n);
        if (phases[k].stream) sl_fk_set_stream(r.fk, phases[k].stream, (int)phases[k].ms);
        free(made);
        int64_t t0 = sl_t_now_ms();
        /* Two: the first may be one that began before the change. */
        wait_fetch_errors(&r, before, 2, phases[k].what);
        double fetch_s = (double)(sl_t_now_ms() - t0) / 1000.0;
        int pod = 100 + (int)k;
        add_pod(&r, pod, NULL);
        t0 = sl_t_now_ms();
        log_line(&r, pod, "main", 0);
        log_line(&r, 1, "main", (int)k * 2 + 2);
        expect += 2;
        wait_entries(&r, expect, scale(20000));
        double ship_s = (double)(sl_t_now_ms() - t0) / 1000.0;
        long rss = sl_t_peak_rss_kib(r.pid);
        uint64_t sent = sl_fk_stream_sent(r.fk) - sent0;
        print_message("%-30s fetch failed in %.2fs, lines shipped in %.2fs, streamed %llu bytes "
                      "over %.0f fetches, agent peak RSS %ld KiB\n",
                      phases[k].what, fetch_s, ship_s, (unsigned long long)sent,
                      k8s_errors(&r) - (before < 0 ? 0 : before), rss);
        size_t bad = 0;
        assert_int_equal(count_pod(&r, pod, "main", false, &bad), 1);
        assert_int_equal(count_pod(&r, 1, "main", true, &bad), k + 2);
        assert_int_equal(bad, 0);
        assert_true(ship_s < scale(3000) / 1000.0);
        /* The 32 MiB bound stopped each read: 300 MiB were offered to
         * each fetch (one may be under way). */
        double fetches = k8s_errors(&r) - (before < 0 ? 0 : before) + 1;
        if (phases[k].stream > (64u << 20)) assert_true((double)sent < fetches * (40 << 20));
        if (!sl_t_sanitized()) assert_true(rss < 256 * 1024);
        sl_fk_set_raw(r.fk, NULL, 0);
        sl_fk_set_stream(r.fk, 0, 0);
    }
    free(deep);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_metadata_missing_total") >= 7);
    /* Healthy again: a new pod gets its metadata. */
    add_pod(&r, 200, NULL);
    wait_fetches(&r, 2);
    log_line(&r, 200, "main", 0);
    wait_entries(&r, expect + 1, scale(20000));
    size_t bad = 0;
    assert_int_equal(count_pod(&r, 200, "main", true, &bad), 1);
    assert_int_equal(bad, 0);
    rig_stop(&r);
}

/* Thousands of pods, a label value of megabytes, and values that look like
 * references to files or the environment: every pod is found, a value over
 * SL_K8S_MAX_VALUE_BYTES is left out (the pod keeps its other labels), and
 * a value is shipped as the bytes the kubelet sent, never expanded or read
 * as a path. (More pods than SL_K8S_MAX_PODS are cut at the bound: the
 * `kubernetes` unit test.) */
static void test_kubelet_big_lists(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-big", "          wait: 5s\n          timeout: 10s\n");
    const int npods = 2000;
    char *big = malloc((2u << 20) + 64);
    assert_non_null(big);
    int o = snprintf(big, 64, "{\"app\":\"app-7\",\"team\":\"t1\",\"huge\":\"");
    memset(big + o, 'v', 2u << 20);
    snprintf(big + o + (2u << 20), 64, "\"}");
    int64_t t0 = sl_t_now_ms();
    for (int i = 0; i < npods; i++) {
        if (i == 7) {
            char ann[160];
            snprintf(ann, sizeof ann, "{\"sluice.io/exclude\":\"false\"}");
            assert_int_equal(sl_fk_add_pod(r.fk, "ns-7", "pod-7", "uid-7", big, ann), 0);
        } else if (i == 8) {
            assert_int_equal(
                sl_fk_add_pod(
                    r.fk, "ns-8", "pod-8", "uid-8",
                    "{\"app\":\"app-8\",\"team\":\"t2\",\"secret\":\"${file:/etc/shadow}\","
                    "\"cmd\":\"$(cat /etc/shadow)\",\"env\":\"${HOME}\"}",
                    NULL),
                0);
        } else {
            add_pod(&r, i, NULL);
        }
    }
    free(big);
    print_message("%d pods added in %.2fs\n", npods, (double)(sl_t_now_ms() - t0) / 1000.0);
    const int logged[] = {0, 7, 8, 1000, 1999};
    t0 = sl_t_now_ms();
    for (size_t k = 0; k < sizeof logged / sizeof *logged; k++) log_line(&r, logged[k], "main", 0);
    wait_entries(&r, 5, scale(30000));
    double took = (double)(sl_t_now_ms() - t0) / 1000.0;
    long rss = sl_t_peak_rss_kib(r.pid);
    print_message("%d pods (%llu list bytes): 5 lines shipped in %.2fs, cached pods %.0f, agent "
                  "peak RSS %ld KiB\n",
                  npods, (unsigned long long)sl_fk_list_bytes(r.fk), took,
                  sl_t_metric(r.mport, "sluice_k8s_cached_pods"), rss);
    size_t bad = 0;
    for (int k = 0; k < 5; k++) assert_int_equal(count_pod(&r, logged[k], "main", true, &bad), 1);
    assert_int_equal(bad, 0);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_cached_pods") == npods);
    assert_true(sl_t_metric(r.mport, "sluice_k8s_metadata_missing_total") == 0);
    for (size_t k = 0; k < sl_lr_nentries(r.lr); k++) {
        const sl_lr_entry *e = sl_lr_entry_at(r.lr, k);
        if (strncmp(e->line, "pod-7 ", 6) == 0) {
            assert_null(meta_of(e, "pod_label_huge"));
            assert_string_equal(meta_of(e, "pod_label_team"), "t1");
        }
        if (strncmp(e->line, "pod-8 ", 6) == 0) {
            assert_string_equal(meta_of(e, "pod_label_secret"), "${file:/etc/shadow}");
            assert_string_equal(meta_of(e, "pod_label_cmd"), "$(cat /etc/shadow)");
            assert_string_equal(meta_of(e, "pod_label_env"), "${HOME}");
        }
        /* Nothing of the token or a root-only file in any record. */
        assert_null(memmem(e->line, e->line_n, TOKEN, strlen(TOKEN)));
        for (uint32_t m = 0; m < e->nmeta; m++) {
            assert_null(strstr(e->meta[m].value, TOKEN));
            assert_null(strstr(e->meta[m].value, "root:"));
        }
    }
    if (!sl_t_sanitized()) assert_true(rss < 256 * 1024);
    rig_stop(&r);
}

/* A kubelet answering 307 to another server: not followed, so the
 * service account's token never goes elsewhere; counted as a failed fetch,
 * the lines ship without the metadata. */
static void test_kubelet_redirect(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, "k8s-redirect", "          wait: 500ms\n");
    char certs[1024];
    snprintf(certs, sizeof certs, "%s/tests/fixtures/k8s", sl_t_src());
    sl_fk *other = NULL;
    if (sl_fk_start(certs, 0, TOKEN, &other) != 0) fail_msg("second fake kubelet did not start");
    sl_fk_set_redirect(r.fk, sl_fk_port(other));
    add_pod(&r, 3, NULL);
    assert_int_equal(
        sl_fk_add_pod(other, "ns-3", "pod-3", "uid-3", "{\"app\":\"elsewhere\"}", NULL), 0);
    double before = k8s_errors(&r);
    log_line(&r, 3, "main", 0);
    wait_entries(&r, 1, scale(20000));
    wait_fetch_errors(&r, before, 1, "307");
    size_t bad = 0;
    assert_int_equal(count_pod(&r, 3, "main", false, &bad), 1);
    assert_int_equal(bad, 0);
    print_message("kubelet 307: the other server saw %llu requests\n",
                  (unsigned long long)sl_fk_requests(other));
    assert_int_equal(sl_fk_requests(other), 0);
    char *log = sl_t_read_file(r.log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "HTTP 307"));
    assert_null(strstr(log, TOKEN));
    free(log);
    sl_fk_stop(other);
    rig_stop(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("SL_TEST_FILTER")) cmocka_set_test_filter(getenv("SL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_parser),
        cmocka_unit_test(test_shipped_overlay),
        cmocka_unit_test(test_bad_token),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_container_links),
        cmocka_unit_test(test_hostile_kubelet),
        cmocka_unit_test(test_kubelet_big_lists),
        cmocka_unit_test(test_kubelet_redirect),
    };
    return sl_t_run_tests(tests);
}
