/* Model-based test of the file input, in the manner of Vector's file
 * watcher tests: random sequences of writes, partial writes, rename
 * rotations, copytruncate, deletes, recreations (inode reuse), graceful
 * restarts and kill -9 of the real agent, with what arrives compared to a
 * model of what was written. Every line carries a unique id; the model says
 * which ids must arrive. Seeds are printed; SLUICE_MODEL_SEED=N replays one,
 * SLUICE_MODEL_SEQS=N runs more sequences (default: a time budget of 15 s,
 * 10 s under the sanitizers, or SLUICE_MODEL_BUDGET_S; `make test-long`
 * gives it 300 s). Seeds come from the clock, so every run covers new
 * sequences. */
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

#include "tests/helpers.h"

#define MAX_IDS 200000

typedef struct model {
    uint64_t rng;
    char *dir, *cfg, *out, *log;
    pid_t agent;
    long next_id;
    long written;  /* ids [0, written) exist in files */
    int live_file; /* generation number of app.log */
    int rotations;
    bool partial_open; /* app.log ends in an unfinished line */
    long partial_id;
    long ops;
    bool stuck; /* an id never arrived */
} model;

static uint32_t next_rand(model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (uint32_t)(m->rng >> 11);
}

static char *app_log(model *m)
{
    return sl_t_path(m->dir, "app.log");
}

static void start_agent(model *m)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", m->cfg, NULL};
    m->agent = sl_t_spawn(argv, m->log);
    assert_true(m->agent > 0);
}

static void stop_agent(model *m, int sig)
{
    int rc = sl_t_stop(m->agent, sig, 20000);
    /* 128+SIGTERM: the signal came before the agent had even blocked it
     * (just after a start), when it has nothing to save yet. */
    if (sig == SIGTERM && rc != 0 && rc != 128 + SIGTERM)
        fprintf(stderr, "agent stopped with %d (dir %s)\n", rc, m->dir);
    if (sig == SIGTERM) assert_true(rc == 0 || rc == 128 + SIGTERM);
    m->agent = 0;
}

/* Appends complete lines; finishes an open partial line first. */
static void write_lines(model *m, int n)
{
    char *path = app_log(m);
    char buf[65536];
    size_t len = 0;
    if (m->partial_open) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "-tail\n");
        m->partial_open = false;
    }
    for (int i = 0; i < n && m->next_id < MAX_IDS && len + 128 < sizeof buf; i++) {
        long id = m->next_id++;
        len += (size_t)snprintf(buf + len, sizeof buf - len, "id=%07ld gen=%d pad=%.*s\n", id,
                                m->live_file, (int)(id % 40),
                                "........................................");
    }
    assert_int_equal(sl_t_append_file(path, buf, len), 0);
    m->written = m->next_id;
    free(path);
}

static void write_partial(model *m)
{
    if (m->partial_open) return;
    char *path = app_log(m);
    char buf[64];
    long id = m->next_id++;
    int n = snprintf(buf, sizeof buf, "id=%07ld gen=%d partial", id, m->live_file);
    assert_int_equal(sl_t_append_file(path, buf, (size_t)n), 0);
    m->partial_open = true;
    m->partial_id = id;
    m->written = m->next_id;
    free(path);
}

static long count_distinct(model *m, unsigned char *seen, long *dups)
{
    size_t n = 0;
    char *data = sl_t_read_file(m->out, &n);
    long distinct = 0;
    *dups = 0;
    memset(seen, 0, MAX_IDS);
    for (char *p = data; p && p < data + n;) {
        char *nl = memchr(p, '\n', (size_t)(data + n - p));
        if (!nl) break;
        long id;
        if ((id = sl_t_parse_id(p, nl, "id=")) >= 0 && id >= 0 && id < MAX_IDS) {
            if (seen[id])
                (*dups)++;
            else
                distinct++;
            seen[id] = 1;
        }
        p = nl + 1;
    }
    free(data);
    return distinct;
}

/* Waits until every id written so far (but an open partial line) arrived,
 * so that a destructive step cannot take data the agent never had a chance
 * to read. Needs a running agent. */
static void catch_up(model *m, unsigned char *seen)
{
    long want = m->written - (m->partial_open ? 1 : 0), dups;
    for (int waited = 0; waited < 30000 && !m->stuck; waited += 20) {
        if (count_distinct(m, seen, &dups) >= want) return;
        sl_t_sleep_ms(20);
    }
    /* Reported with the seed by run_sequence; later steps are skipped. */
    m->stuck = true;
}

static void ensure_running(model *m)
{
    if (!m->agent) start_agent(m);
}

static void step(model *m, unsigned char *seen)
{
    char *path = app_log(m);
    uint32_t r = next_rand(m) % 100;
    m->ops++;
    if (getenv("SLUICE_MODEL_TRACE"))
        fprintf(stderr, "op %ld: %u (agent %s)\n", m->ops, r, m->agent ? "up" : "down");
    if (r < 35) {
        write_lines(m, 1 + (int)(next_rand(m) % 200));
    } else if (r < 42) {
        write_partial(m);
    } else if (r < 55) {
        /* Rename rotation: the old file keeps a name the glob matches, so
         * a restarted agent can still find and finish it. */
        char rotated[64];
        snprintf(rotated, sizeof rotated, "app.log.%d", ++m->rotations);
        char *to = sl_t_path(m->dir, rotated);
        if (m->partial_open) write_lines(m, 0);
        if (rename(path, to) == 0) {
            m->live_file++;
            sl_t_write_file(path, "", 0);
        }
        free(to);
    } else if (r < 62) {
        /* copytruncate: copy, then truncate. What is written between the two
         * is lost by design (as with logrotate); the model writes nothing in
         * between and lets the agent catch up first. */
        ensure_running(m);
        if (m->partial_open) write_lines(m, 0);
        catch_up(m, seen);
        char *copy = sl_t_path(m->dir, "copied.bak");
        size_t n;
        char *data = sl_t_read_file(path, &n);
        if (data) sl_t_write_file(copy, data, n);
        free(data);
        free(copy);
        assert_int_equal(truncate(path, 0), 0);
    } else if (r < 68) {
        /* Delete and recreate: the new file may get the same inode. */
        ensure_running(m);
        if (m->partial_open) write_lines(m, 0);
        catch_up(m, seen);
        unlink(path);
        m->live_file++;
        write_lines(m, 1 + (int)(next_rand(m) % 20));
    } else if (r < 74) {
        /* Old rotated files go away once read. */
        ensure_running(m);
        catch_up(m, seen);
        for (int i = 1; i <= m->rotations; i++) {
            char name[64];
            snprintf(name, sizeof name, "app.log.%d", i);
            char *p = sl_t_path(m->dir, name);
            unlink(p);
            free(p);
        }
    } else if (r < 82) {
        if (m->agent)
            stop_agent(m, SIGTERM);
        else
            start_agent(m);
    } else if (r < 90) {
        if (m->agent)
            stop_agent(m, SIGKILL);
        else
            start_agent(m);
    } else {
        sl_t_sleep_ms((int)(next_rand(m) % 150));
    }
    free(path);
}

static int run_sequence(uint64_t seed, int nops, unsigned char *seen)
{
    model m = {.rng = seed * 2654435761u + 1};
    m.dir = sl_t_tmpdir("model");
    m.cfg = sl_t_path(m.dir, "sluice.yml");
    m.out = sl_t_path(m.dir, "out.txt");
    m.log = sl_t_path(m.dir, "agent.log");
    char yml[2048];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "log: {level: info}\n"
             "inputs:\n"
             "  - name: model\n"
             "    type: file\n"
             "    paths: [\"%s/app.log*\"]\n"
             "    poll_interval: 20ms\n"
             "    checkpoint_interval: 50ms\n"
             "    flush_partial_after: 60s\n"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n",
             m.dir, m.dir, m.out);
    sl_t_write_file(m.cfg, yml, strlen(yml));
    char *app = app_log(&m);
    sl_t_write_file(app, "", 0);
    free(app);
    start_agent(&m);
    for (int i = 0; i < nops && !m.stuck; i++) step(&m, seen);
    ensure_running(&m);
    if (m.partial_open) write_lines(&m, 0);
    catch_up(&m, seen);
    long dups;
    long got = count_distinct(&m, seen, &dups);
    stop_agent(&m, SIGTERM);
    int lost = 0;
    for (long id = 0; id < m.written; id++) lost += !seen[id];
    if (m.stuck && !lost) lost = 1;
    if (lost || got != m.written)
        fprintf(stderr, "seed %llu: %ld written, %ld arrived, %d lost, %ld duplicates (dir %s)\n",
                (unsigned long long)seed, m.written, got, lost, dups, m.dir);
    else
        sl_t_rmtree(m.dir);
    free(m.dir), free(m.cfg), free(m.out), free(m.log);
    return lost ? -1 : (int)dups;
}

static void test_model(void **st)
{
    (void)st;
    unsigned char *seen = malloc(MAX_IDS);
    const char *one = getenv("SLUICE_MODEL_SEED");
    const char *count = getenv("SLUICE_MODEL_SEQS");
    uint64_t seed0 = one ? strtoull(one, NULL, 10) : (uint64_t)time(NULL);
    int seqs = one ? 1 : count ? atoi(count) : 1000000;
    const char *budget = getenv("SLUICE_MODEL_BUDGET_S");
    int budget_s = count || one ? 1 << 30 : budget ? atoi(budget) : (sl_t_sanitized() ? 10 : 15);
    time_t t0 = time(NULL);
    int ran = 0, failed = 0;
    long dups = 0;
    for (int i = 0; i < seqs && time(NULL) - t0 < budget_s; i++, ran++) {
        uint64_t seed = seed0 + (uint64_t)i;
        int rc = run_sequence(seed, 40, seen);
        if (rc < 0) {
            failed++;
            fprintf(stderr, "FAILED seed %llu: replay with SLUICE_MODEL_SEED=%llu\n",
                    (unsigned long long)seed, (unsigned long long)seed);
        } else {
            dups += rc;
        }
    }
    fprintf(stderr, "model: %d sequences from seed %llu, %d failed, %ld duplicates in total\n", ran,
            (unsigned long long)seed0, failed, dups);
    free(seen);
    assert_int_equal(failed, 0);
    assert_true(ran > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_model)};
    return sl_t_run_tests(tests);
}
