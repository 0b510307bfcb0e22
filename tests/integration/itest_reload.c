/* SIGHUP on the real binary (decision 0010): a configuration with errors is
 * rejected and the running pipeline is left exactly as it was — no drain,
 * no restart, records keep flowing, metrics keep counting — and a fixed
 * configuration then reloads (one drain and restart, nothing lost or
 * repeated). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers.h"

typedef struct rig {
    char *dir, *cfg, *log, *in, *out;
    int mport;
    pid_t pid;
    uint32_t seq;
} rig;

static void wait_log(rig *r, const char *needle, long n)
{
    /* The needles are event names: overlapping and non-overlapping counts agree. */
    if (!sl_t_wait_log(r->log, needle, (int)n, sl_t_sanitized() ? 60000 : 20000)) {
        char *log = sl_t_read_file(r->log, NULL);
        fail_msg("no %ld x '%s' in the agent's log:\n%s", n, needle, log ? log : "");
    }
}

typedef struct ckpt_wait {
    char *path;
    long offset;
} ckpt_wait;

/* The input's checkpoint records `"offset":N` for the file. */
static bool checkpoint_at(void *arg)
{
    ckpt_wait *w = arg;
    char *text = sl_t_read_file(w->path, NULL);
    char want[64];
    snprintf(want, sizeof want, "\"offset\":%ld,", w->offset);
    bool at = text && strstr(text, want);
    free(text);
    return at;
}

static void wait_checkpoint(rig *r)
{
    size_t size = 0;
    free(sl_t_read_file(r->in, &size));
    char *dir = sl_t_path(r->dir, "data/checkpoints");
    ckpt_wait w = {sl_t_path(dir, "app.json"), (long)size};
    if (!sl_t_wait_until(checkpoint_at, &w, sl_t_sanitized() ? 60000 : 20000)) {
        char *text = sl_t_read_file(w.path, NULL);
        fail_msg("checkpoint never reached offset %ld: %s", w.offset, text ? text : "(none)");
    }
    free(w.path);
    free(dir);
}

static void write_config(rig *r, const char *extra)
{
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "metrics: { listen: \"127.0.0.1:%d\" }\n"
                         "shutdown_timeout: 5s\n"
                         "inputs:\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s\"]\n"
                         "    start_at: beginning\n"
                         "    poll_interval: 50ms\n"
                         "    checkpoint_interval: 100ms\n"
                         "sinks:\n"
                         "  - name: out\n"
                         "    type: file\n"
                         "    path: %s\n"
                         "%s",
                         r->dir, r->mport, r->in, r->out, extra) > 0);
    assert_int_equal(sl_t_write_file(r->cfg, yaml, strlen(yaml)), 0);
    free(yaml);
}

static void append_lines(rig *r, uint32_t n)
{
    char line[64];
    for (uint32_t i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "seq=%06u msg=\"reload test\"\n", r->seq++);
        assert_int_equal(sl_t_append_file(r->in, line, (size_t)len), 0);
    }
}

static void wait_out(rig *r, long n)
{
    if (!sl_t_wait_lines(r->out, n, sl_t_sanitized() ? 60000 : 20000)) {
        char *log = sl_t_read_file(r->log, NULL);
        fail_msg("sink wrote %ld of %ld lines; agent log:\n%s", sl_t_count_lines(r->out), n,
                 log ? log : "");
    }
}

/* Every seq written so far is in the sink's file exactly once. */
static void assert_each_once(rig *r)
{
    size_t n = 0;
    char *text = sl_t_read_file(r->out, &n);
    assert_non_null(text);
    uint8_t *seen = calloc(r->seq, 1);
    assert_non_null(seen);
    long lines = 0;
    for (char *p = text; p < text + n;) {
        char *nl = memchr(p, '\n', (size_t)(text + n - p));
        if (!nl) break;
        long seq = sl_t_parse_id(p, nl, "seq=");
        assert_true(seq >= 0 && seq < (long)r->seq);
        assert_int_equal(seen[seq], 0);
        seen[seq] = 1;
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, (long)r->seq);
    free(seen);
    free(text);
}

static void test_broken_config_keeps_pipeline_then_fix_reloads(void **st)
{
    (void)st;
    rig r = {0};
    r.dir = sl_t_tmpdir("reload");
    assert_non_null(r.dir);
    r.cfg = sl_t_path(r.dir, "agent.yml");
    r.log = sl_t_path(r.dir, "agent.log");
    r.in = sl_t_path(r.dir, "in.log");
    r.out = sl_t_path(r.dir, "out.log");
    r.mport = sl_t_free_port();
    assert_true(r.mport > 0);
    assert_int_equal(sl_t_write_file(r.in, "", 0), 0);
    write_config(&r, "");
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, NULL};
    r.pid = sl_t_spawn(argv, r.log);
    assert_true(r.pid > 0);
    wait_log(&r, "event=agent_started", 1);
    append_lines(&r, 100);
    wait_out(&r, 100);

    /* Broken: a schema error and an unknown sink type. */
    write_config(&r, "  - name: second\n"
                     "    type: nosuch\n"
                     "bogus_key: 1\n");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    wait_log(&r, "event=reload_rejected", 1);
    append_lines(&r, 100);
    wait_out(&r, 200);
    /* The running pipeline was never stopped nor started again. */
    assert_int_equal(sl_t_file_count(r.log, "event=agent_started"), 1);
    assert_int_equal(sl_t_file_count(r.log, "event=agent_stopped"), 0);
    assert_int_equal(sl_t_file_count(r.log, "event=reloaded"), 0);
    /* Its metrics endpoint kept running and counting from the start. */
    assert_int_equal((long)sl_t_metric(r.mport, "sluice_input_records_total"), 200);
    assert_int_equal((long)sl_t_metric(r.mport, "sluice_sink_records_total"), 200);
    /* Checkpoints keep moving: the input thread was never restarted. */
    wait_checkpoint(&r);
    /* The errors were reported, with their place. */
    assert_true(sl_t_file_count(r.log, "unknown sink type 'nosuch'") >= 1);

    /* Fixed, it reloads once: one drain, one start. */
    write_config(&r, "");
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    wait_log(&r, "event=reloaded", 1);
    assert_int_equal(sl_t_file_count(r.log, "event=agent_started"), 2);
    assert_int_equal(sl_t_file_count(r.log, "event=agent_stopped"), 1);
    append_lines(&r, 100);
    wait_out(&r, 300);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, 20000), 0);
    r.pid = 0;
    assert_each_once(&r);

    sl_t_rmtree(r.dir);
    free(r.dir), free(r.cfg), free(r.log), free(r.in), free(r.out);
}

/* systemd's side of Type=notify: a datagram socket the agent finds in
 * NOTIFY_SOCKET, read all the time as systemd does (a socket left unread
 * fills, and the agent's next notification would wait), counting what came. */
typedef struct notify_rig {
    int fd;
    pthread_t th;
    atomic_int ready, reloading, stopping, quit;
} notify_rig;

static void *notify_reader(void *arg)
{
    notify_rig *n = arg;
    while (!atomic_load(&n->quit)) {
        struct pollfd p = {.fd = n->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        char buf[512];
        ssize_t len = recv(n->fd, buf, sizeof buf - 1, 0);
        if (len <= 0) continue;
        buf[len] = '\0';
        if (strstr(buf, "READY=1")) atomic_fetch_add(&n->ready, 1);
        if (strstr(buf, "RELOADING=1")) atomic_fetch_add(&n->reloading, 1);
        if (strstr(buf, "STOPPING=1")) atomic_fetch_add(&n->stopping, 1);
    }
    return NULL;
}

static void notify_start(notify_rig *n, const char *path)
{
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(n->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof a.sun_path);
    strcpy(a.sun_path, path);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
    assert_int_equal(pthread_create(&n->th, NULL, notify_reader, n), 0);
}

static void notify_stop(notify_rig *n)
{
    atomic_store(&n->quit, 1);
    pthread_join(n->th, NULL);
    close(n->fd);
    unsetenv("NOTIFY_SOCKET");
}

static bool ready_seen(void *arg)
{
    return atomic_load(&((notify_rig *)arg)->ready) >= 1;
}

/* Signals at any moment (decision 0065). A SIGHUP that reached the process
 * before main() blocked it (the dynamic loader's few milliseconds) ended
 * it, and systemd counts a SIGHUP death as clean: no restart. The agent
 * now tells systemd when it runs (READY=1, Type=notify), which holds a
 * reload until then; this test is that systemd. After READY=1: a storm of
 * SIGHUPs while records are written (each a drain and a restart; pending
 * ones coalesce), then SIGTERM right behind a SIGHUP, landing during the
 * reload's stop or start. The agent says RELOADING=1/READY=1 around
 * reloads and STOPPING=1, ends with 0 in bounded time, and a restart ships
 * every record exactly once. */
static void test_signal_storm(void **st)
{
    (void)st;
    rig r = {0};
    r.dir = sl_t_tmpdir("reload_storm");
    assert_non_null(r.dir);
    r.cfg = sl_t_path(r.dir, "agent.yml");
    r.log = sl_t_path(r.dir, "agent.log");
    r.in = sl_t_path(r.dir, "in.log");
    r.out = sl_t_path(r.dir, "out.log");
    char *sock = sl_t_path(r.dir, "notify");
    notify_rig nr = {0};
    notify_start(&nr, sock);
    r.mport = sl_t_free_port();
    assert_true(r.mport > 0);
    assert_int_equal(sl_t_write_file(r.in, "", 0), 0);
    write_config(&r, "");
    append_lines(&r, 200);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, NULL};
    r.pid = sl_t_spawn(argv, r.log);
    assert_true(r.pid > 0);
    int limit = sl_t_sanitized() ? 60000 : 20000;
    assert_true(sl_t_wait_until(ready_seen, &nr, limit));
    assert_true(sl_t_file_has(r.log, "event=agent_started"));
    for (int i = 0; i < 40; i++) {
        append_lines(&r, 50);
        assert_int_equal(kill(r.pid, SIGHUP), 0);
        sl_t_sleep_ms(i % 7 * 3); /* pacing: land in different phases */
    }
    wait_log(&r, "event=reloaded", 2);
    assert_int_equal(kill(r.pid, SIGHUP), 0);
    assert_int_equal(kill(r.pid, SIGTERM), 0);
    int rc = sl_t_wait(r.pid, sl_t_sanitized() ? 90000 : 30000);
    r.pid = 0;
    char *log = sl_t_read_file(r.log, NULL);
    if (rc != 0) fail_msg("exit %d after the storm; agent log:\n%s", rc, log ? log : "");
    assert_null(strstr(log, "event=start_failed"));
    free(log);
    notify_stop(&nr);
    /* One READY=1 per start and per reload, one RELOADING=1 per SIGHUP
     * taken, one STOPPING=1. */
    long reloads = sl_t_file_count(r.log, "event=reloaded");
    assert_true(reloads >= 2);
    assert_int_equal(atomic_load(&nr.reloading), reloads);
    assert_int_equal(atomic_load(&nr.ready), reloads + 1);
    assert_int_equal(atomic_load(&nr.stopping), 1);
    long started = sl_t_file_count(r.log, "event=agent_started");
    long stopped = sl_t_file_count(r.log, "event=agent_stopped");
    fprintf(stderr, "storm: %ld starts, %ld stops, %ld reloads\n", started, stopped, reloads);
    assert_int_equal(started, stopped);

    /* What the storm left unread is read by the next run, once. */
    r.pid = sl_t_spawn(argv, r.log);
    assert_true(r.pid > 0);
    wait_log(&r, "event=agent_started", started + 1);
    wait_out(&r, (long)r.seq);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, 20000), 0);
    r.pid = 0;
    assert_each_once(&r);
    sl_t_rmtree(r.dir);
    free(r.dir), free(r.cfg), free(r.log), free(r.in), free(r.out), free(sock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_config_keeps_pipeline_then_fix_reloads),
        cmocka_unit_test(test_signal_storm),
    };
    return sl_t_run_tests(tests);
}
