/* Shared rig of the spool fault tests: the real binary tails one file of
 * lines `id=N ...` into a Loki sink whose destination is the in-process
 * test receiver, so an outage is a switch. Every test counts lost and
 * duplicated ids from what the receiver recorded. Header-only (static) so
 * each test stays one executable. */
#ifndef SLUICE_TESTS_FTEST_SPOOL_RIG_H
#define SLUICE_TESTS_FTEST_SPOOL_RIG_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/helpers.h"
#include "tests/loki_receiver.h"

/* The outage keeps a few 500s queued ahead of the requests; ending it
 * lets at most that few more fail. Its state is on the heap: a failed
 * assertion leaves the test's frame while the thread still runs. */
typedef struct srig_outage_ctl {
    sl_lr *lr;
    pthread_mutex_t mu;
    atomic_bool on, run;
    uint64_t queued; /* under mu */
} srig_outage_ctl;

typedef struct srig {
    char *dir, *cfg, *log, *in, *data;
    pid_t pid;
    int starts; /* agent_started lines the (appended) log should hold */
    sl_lr *lr;
    int mport;
    pthread_t outage_th;
    srig_outage_ctl *oc;
} srig;

static inline void srig_outage_refill(srig_outage_ctl *oc)
{
    pthread_mutex_lock(&oc->mu);
    sl_lr_stats st;
    sl_lr_get_stats(oc->lr, &st);
    if (oc->queued < st.faults + 4) {
        sl_lr_fault(oc->lr, SL_LR_STATUS, 500, 0, 8);
        oc->queued += 8;
    }
    pthread_mutex_unlock(&oc->mu);
}

static inline void *srig_outage_main(void *arg)
{
    srig_outage_ctl *oc = arg;
    while (atomic_load(&oc->run)) {
        if (atomic_load(&oc->on)) srig_outage_refill(oc);
        sl_t_sleep_ms(5);
    }
    return NULL;
}

static inline void srig_outage(srig *r, bool on)
{
    if (on) srig_outage_refill(r->oc); /* fail at once, before the next tick */
    atomic_store(&r->oc->on, on);
}

/* Writes the config. buffer: the sink's `buffer:` map; parse: the input's
 * parse list (NULL: none); top: more top-level YAML; sink_extra: more
 * sinks (full YAML items). */
static inline void srig_write_cfg(srig *r, const char *buffer, const char *parse, const char *top,
                                  const char *sink_extra)
{
    char yml[8192];
    snprintf(yml, sizeof yml,
             "data_dir: %s\n"
             "log: {level: info}\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n"
             "%s"
             "inputs:\n"
             "  - name: in\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    start_at: beginning\n"
             "    poll_interval: 50ms\n"
             "    checkpoint_interval: 100ms\n"
             "%s%s%s"
             "sinks:\n"
             "  - name: lk\n"
             "    type: loki\n"
             "    inputs: [in]\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    min_backoff: 20ms\n"
             "    max_backoff: 200ms\n"
             "    max_batch_wait: 20ms\n"
             "    timeout: 5s\n"
             "    labels: {job: ftest}\n"
             "    buffer: %s\n"
             "%s",
             r->data, r->mport, top ? top : "", r->in, parse ? "    parse: " : "",
             parse ? parse : "", parse ? "\n" : "", sl_lr_port(r->lr), buffer,
             sink_extra ? sink_extra : "");
    assert_int_equal(sl_t_write_file(r->cfg, yml, strlen(yml)), 0);
}

static inline void srig_init(srig *r, const char *tag, const char *buffer, const char *parse,
                             const char *top)
{
    memset(r, 0, sizeof *r);
    r->dir = sl_t_tmpdir(tag);
    r->cfg = sl_t_path(r->dir, "sluice.yml");
    r->log = sl_t_path(r->dir, "agent.log");
    r->in = sl_t_path(r->dir, "app.log");
    r->data = sl_t_path(r->dir, "data");
    r->mport = sl_t_free_port();
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &r->lr), 0);
    r->oc = calloc(1, sizeof *r->oc);
    assert_non_null(r->oc);
    r->oc->lr = r->lr;
    pthread_mutex_init(&r->oc->mu, NULL);
    atomic_store(&r->oc->run, true);
    assert_int_equal(pthread_create(&r->outage_th, NULL, srig_outage_main, r->oc), 0);
    srig_write_cfg(r, buffer, parse, top, NULL);
    assert_int_equal(sl_t_write_file(r->in, "", 0), 0);
}

/* A failed assertion leaves the test without srig_free: the agent it
 * started must not outlive the test program. */
static pid_t srig_live_pid;
static inline void srig_kill_live(void)
{
    if (srig_live_pid > 0) kill(srig_live_pid, SIGKILL);
}

static inline void srig_start(srig *r)
{
    static bool registered;
    if (!registered) registered = atexit(srig_kill_live) == 0;
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    srig_live_pid = r->pid;
    /* Ready before anything else happens: a signal sent before main()
     * blocks it ends the agent with 128+N, and timing starts here. */
    r->starts++;
    assert_true(sl_t_wait_log(r->log, "event=agent_started", r->starts, sl_t_scaled_ms(20000)));
}

static inline int srig_stop(srig *r, int sig)
{
    int rc = sl_t_stop(r->pid, sig, sl_t_scaled_ms(60000));
    r->pid = 0;
    srig_live_pid = 0;
    return rc;
}

static inline void srig_free(srig *r)
{
    if (r->pid) srig_stop(r, SIGKILL);
    atomic_store(&r->oc->run, false);
    pthread_join(r->outage_th, NULL);
    pthread_mutex_destroy(&r->oc->mu);
    free(r->oc);
    sl_lr_stop(r->lr);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", r->dir);
    else
        sl_t_rmtree(r->dir);
    free(r->dir), free(r->cfg), free(r->log), free(r->in), free(r->data);
}

/* Appends lines id=[from, to) to path; with ts_base_s > 0 each line starts
 * with an RFC 3339 time ts_base_s + id seconds (for time windows). */
static inline void srig_append_ids(const char *path, long from, long to, int64_t ts_base_s)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (long i = from; i < to; i++) {
        if (ts_base_s > 0) {
            time_t t = (time_t)(ts_base_s + i);
            struct tm tm;
            gmtime_r(&t, &tm);
            n += strftime(buf + n, cap - n, "ts=%Y-%m-%dT%H:%M:%SZ ", &tm);
        }
        n += (size_t)snprintf(buf + n, cap - n, "id=%08ld some payload text for the spool\n", i);
        if (n > cap - 128) {
            assert_int_equal(sl_t_append_file(path, buf, n), 0);
            n = 0;
        }
    }
    if (n) assert_int_equal(sl_t_append_file(path, buf, n), 0);
    free(buf);
}

typedef struct stally {
    long distinct, dups, other;
} stally;

/* Counts ids [0, max_id) among the receiver's entries. seen (may be NULL)
 * gets a calloc'ed per-id count the caller frees. */
static inline stally srig_count(srig *r, long max_id, unsigned char **seen_out)
{
    stally t = {0};
    unsigned char *seen = calloc((size_t)max_id + 1, 1);
    size_t n = sl_lr_nentries(r->lr);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(r->lr, i);
        const char *p = memmem(e->line, e->line_n, "id=", 3);
        long id = p ? sl_t_parse_id(p, e->line + e->line_n, "id=") : -1;
        if (id >= 0 && id < max_id) {
            if (seen[id])
                t.dups++;
            else
                t.distinct++;
            if (seen[id] < 255) seen[id]++;
        } else {
            t.other++;
        }
    }
    if (seen_out)
        *seen_out = seen;
    else
        free(seen);
    return t;
}

static inline double srig_now(void);

/* Waits until want distinct ids of [0, max_id) arrived; timeout_ms is
 * scaled under the sanitizers. */
static inline bool srig_wait_ids(srig *r, long max_id, long want, int timeout_ms)
{
    double end = srig_now() + sl_t_scaled_ms(timeout_ms) / 1000.0;
    while (srig_now() < end) {
        if (srig_count(r, max_id, NULL).distinct >= want) return true;
        sl_t_sleep_ms(100);
    }
    fprintf(stderr, "waited for %ld ids, have %ld\n", want, srig_count(r, max_id, NULL).distinct);
    return false;
}

/* Sum of every sample of a metric from the agent's /metrics; -1 when the
 * endpoint does not answer. */
static inline double srig_metric(srig *r, const char *name)
{
    return sl_t_metric(r->mport, name);
}

static inline bool srig_metric_ready(void *arg)
{
    return srig_metric(arg, "sluice_spool_bytes") >= 0;
}

/* For sl_t_wait_until: a metric of the agent reached a value. */
typedef struct srig_goal {
    srig *r;
    const char *metric;
    double at_least;
} srig_goal;

static inline bool srig_metric_at_least(void *arg)
{
    srig_goal *g = arg;
    return srig_metric(g->r, g->metric) >= g->at_least;
}

/* For sl_t_wait_until: the receiver answered at least this many requests
 * with an injected fault (a stall counts when it starts). */
typedef struct srig_faults_goal {
    srig *r;
    uint64_t at_least;
} srig_faults_goal;

static inline bool srig_faults_at_least(void *arg)
{
    srig_faults_goal *g = arg;
    sl_lr_stats st;
    sl_lr_get_stats(g->r->lr, &st);
    return st.faults >= g->at_least;
}

typedef struct srig_entries_goal {
    srig *r;
    size_t at_least;
} srig_entries_goal;

static inline bool srig_entries_at_least(void *arg)
{
    srig_entries_goal *g = arg;
    return sl_lr_nentries(g->r->lr) >= g->at_least;
}

/* kB from /proc/<pid>/status, e.g. "VmHWM:"; -1 when absent. */
static inline long srig_proc_kb(pid_t pid, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = sl_t_read_file(path, NULL);
    if (!text) return -1;
    char *p = strstr(text, key);
    long v = p ? strtol(p + strlen(key), NULL, 10) : -1;
    free(text);
    return v;
}

static inline double srig_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
