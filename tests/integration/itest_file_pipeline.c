/* End to end through the real binary: a file input feeding the file sink.
 * Lines carry unique sequence numbers so the output can be checked for
 * loss, duplicates and order across stops and restarts. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/helpers.h"
#include "tests/loki_receiver.h"

typedef struct fixture {
    char *dir, *cfg, *in, *out, *log;
    int starts; /* agent_started lines the log should hold */
} fixture;

static int setup(void **st)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = sl_t_tmpdir("pipeline");
    f->cfg = sl_t_path(f->dir, "sluice.yml");
    f->in = sl_t_path(f->dir, "in.log");
    f->out = sl_t_path(f->dir, "out.log");
    f->log = sl_t_path(f->dir, "agent.log");
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s/*.log.in\", \"%s\"]\n"
             "    poll_interval: 50ms\n"
             "    checkpoint_interval: 100ms\n"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n",
             f->dir, f->dir, f->in, f->out);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fixture *f = *st;
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", f->dir);
    else
        sl_t_rmtree(f->dir);
    free(f->dir), free(f->cfg), free(f->in), free(f->out), free(f->log), free(f);
    return 0;
}

/* Starts the agent and waits for its readiness: a SIGTERM that comes
 * before its main() blocked the signal would end it with 143, not 0. */
static pid_t start_agent(fixture *f)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", f->cfg, NULL};
    pid_t pid = sl_t_spawn(argv, f->log);
    assert_true(pid > 0);
    f->starts++;
    assert_true(sl_t_wait_log(f->log, "event=agent_started", f->starts, sl_t_scaled_ms(20000)));
    return pid;
}

/* Appends lines [from, to) in blocks, pausing a little so that the agent
 * reads while the file grows. */
static void write_lines(fixture *f, long from, long to)
{
    char *buf = malloc(1 << 20);
    long i = from;
    while (i < to) {
        size_t n = 0;
        for (int k = 0; k < 2000 && i < to; k++, i++)
            n += (size_t)sprintf(buf + n, "seq=%08ld payload=%.*s\n", i, (int)(i % 61),
                                 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        assert_int_equal(sl_t_append_file(f->in, buf, n), 0);
        sl_t_sleep_ms(2);
    }
    free(buf);
}

typedef struct tally {
    long lines, lost, dups, out_of_order, malformed;
} tally;

static tally check_output(const char *out, long expected)
{
    tally t = {0};
    size_t n;
    char *data = sl_t_read_file(out, &n);
    assert_non_null(data);
    unsigned char *seen = calloc((size_t)expected, 1);
    long last = -1;
    for (char *line = data; line < data + n;) {
        char *nl = memchr(line, '\n', (size_t)(data + n - line));
        if (!nl) break;
        long seq;
        if ((seq = sl_t_parse_id(line, nl, "seq=")) < 0 || seq >= expected) {
            t.malformed++;
        } else {
            if (seen[seq]) t.dups++;
            seen[seq] = 1;
            if (seq <= last) t.out_of_order++;
            last = seq;
        }
        t.lines++;
        line = nl + 1;
    }
    for (long i = 0; i < expected; i++) t.lost += !seen[i];
    free(seen);
    free(data);
    fprintf(stderr,
            "output: %ld lines, %ld lost, %ld duplicates, %ld out of order, %ld malformed\n",
            t.lines, t.lost, t.dups, t.out_of_order, t.malformed);
    return t;
}

/* 100,000 lines, the agent stopped with SIGTERM half way and restarted:
 * every line exactly once, in order. */
static void test_graceful_restart_exactly_once(void **st)
{
    fixture *f = *st;
    const long total = 100000;
    pid_t pid = start_agent(f);
    write_lines(f, 0, total / 2);
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    write_lines(f, total / 2, total * 3 / 4); /* written while it is down */
    pid = start_agent(f);
    write_lines(f, total * 3 / 4, total);
    assert_true(sl_t_wait_lines(f->out, total, sl_t_scaled_ms(60000)));
    /* A graceful stop drains everything: anything extra is written by then. */
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    tally t = check_output(f->out, total);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.dups, 0);
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(t.malformed, 0);
    assert_int_equal(t.lines, total);
}

/* The same with kill -9 at several points: nothing lost; duplicates are
 * allowed (what was in flight) and reported. */
static void test_kill9_loses_nothing(void **st)
{
    fixture *f = *st;
    const long total = 100000, step = total / 5;
    pid_t pid = start_agent(f);
    for (long from = 0; from < total; from += step) {
        write_lines(f, from, from + step);
        sl_t_sleep_ms(50 + (int)(from % 7) * 20);
        assert_int_equal(sl_t_stop(pid, SIGKILL, sl_t_scaled_ms(5000)), 128 + SIGKILL);
        pid = start_agent(f);
    }
    assert_true(sl_t_wait_lines(f->out, total, sl_t_scaled_ms(60000)));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    tally t = check_output(f->out, total);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.malformed, 0);
}

/* The file sink's `format: json` with `json_line: dedup` (decision 0045): a
 * JSON line the json step parsed comes out without "line", its "fields"
 * the line byte for byte; a line that is not JSON, or not tight, keeps its
 * "line"; `always` (the default) keeps it on every record. */
static void test_json_line_dedup(void **st)
{
    fixture *f = *st;
    char *out2 = sl_t_path(f->dir, "always.log");
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    start_at: beginning\n"
             "    poll_interval: 50ms\n"
             "    parse:\n"
             "      - json: {}\n"
             "sinks:\n"
             "  - {name: out, type: file, path: \"%s\", format: json, json_line: dedup}\n"
             "  - {name: always, type: file, path: \"%s\", format: json}\n",
             f->dir, f->in, f->out, out2);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    static const char *const lines[] = {
        "{\"level\":\"info\",\"msg\":\"caf\xc3\xa9 \\\"q\\\" "
        "C:\\\\tmp\",\"n\":1.50,\"u\":{\"id\":7}}",
        "plain text, not JSON",
        "{ \"level\" : \"spaced\" }",
    };
    char text[512];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", lines[i]);
    sl_t_write_file(f->in, text, n);
    pid_t pid = start_agent(f);
    assert_true(sl_t_wait_lines(f->out, 3, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_lines(out2, 3, sl_t_scaled_ms(20000)));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    char *got = sl_t_read_file(f->out, NULL), *always = sl_t_read_file(out2, NULL);
    assert_non_null(got);
    assert_non_null(always);
    char *rec[3], *save = NULL;
    rec[0] = strtok_r(got, "\n", &save);
    rec[1] = strtok_r(NULL, "\n", &save);
    rec[2] = strtok_r(NULL, "\n", &save);
    for (int i = 0; i < 3; i++) assert_non_null(rec[i]);
    /* the parsed line: no "line", the fields are its text */
    assert_null(strstr(rec[0], "\"line\":"));
    char want[512];
    snprintf(want, sizeof want, "\"fields\":%s,\"labels\":{}}", lines[0]);
    assert_non_null(strstr(rec[0], want));
    /* the others keep their line */
    assert_non_null(strstr(rec[1], "\"line\":\"plain text, not JSON\""));
    assert_non_null(strstr(rec[2], "\"line\":\"{ \\\"level\\\" : \\\"spaced\\\" }\""));
    /* the default writes the line of every record, the rest alike */
    int with_line = 0;
    for (char *p = always; (p = strstr(p, "\"line\":")); p++) with_line++;
    assert_int_equal(with_line, 3);
    assert_non_null(strstr(always, want));
    free(got), free(always), free(out2);
}

/* A write that fails (here /dev/full: ENOSPC on the batch's write) is
 * logged, not taken for a record too large to
 * encode (which would drop the batch), acknowledges nothing, and the agent,
 * still retrying, stops cleanly; restarted with a working sink, it writes
 * every line. */
static void test_failing_write_is_retried(void **st)
{
    fixture *f = *st;
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 2s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "    start_at: beginning\n"
             "    poll_interval: 50ms\n"
             "sinks:\n"
             "  - {name: out, type: file, path: /dev/full, format: json}\n",
             f->dir, f->in);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    write_lines(f, 0, 5000);
    pid_t pid = start_agent(f);
    assert_true(sl_t_wait_log(f->log, "event=sink_write_failed", 1, sl_t_scaled_ms(20000)));
    assert_true(sl_t_file_has(f->log, "No space left on device"));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    assert_false(sl_t_file_has(f->log, "sink_encode_failed"));
    /* nothing was acknowledged: with a working sink every line comes out */
    char *at = strstr(yml, "/dev/full, format: json}");
    assert_non_null(at);
    snprintf(at, sizeof yml - (size_t)(at - yml), "\"%s\"}\n", f->out);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    pid = start_agent(f);
    assert_true(sl_t_wait_lines(f->out, 5000, sl_t_scaled_ms(20000)));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    tally t = check_output(f->out, 5000);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.malformed, 0);
}

/* Into Loki with a long max_batch_wait: the tail of a file the input read
 * as a backlog (reads that filled their buffer, then one that reached the
 * end) reaches the receiver when read, not max_batch_wait later (the last
 * batch asks to be sent at once, decision 0049). */
static void test_backlog_tail_reaches_loki_at_once(void **st)
{
    fixture *f = *st;
    const long total = 100000; /* ~5 MB: five 1 MiB reads, then the end */
    assert_int_equal(sl_t_append_ids(f->in, 0, total, " backlog-tail-padding-padding-padding"), 0);
    sl_lr_opts lo = {0};
    sl_lr *lr = NULL;
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: app\n"
             "    type: file\n"
             "    paths: [\"%s\"]\n"
             "sinks:\n"
             "  - name: loki\n"
             "    type: loki\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    max_batch_wait: 300s\n",
             f->dir, f->in, sl_lr_port(lr));
    sl_t_write_file(f->cfg, yml, strlen(yml));
    int64_t t0 = sl_t_now_ms();
    pid_t pid = start_agent(f);
    /* Well before max_batch_wait (300 s): 20 s, 60 under the sanitizers. */
    int64_t limit = sl_t_scaled_ms(20000);
    while ((long)sl_lr_nentries(lr) < total && sl_t_now_ms() - t0 < limit) sl_t_sleep_ms(20);
    size_t got = sl_lr_nentries(lr);
    fprintf(stderr, "%zu of %ld lines in Loki after %lld ms\n", got, total,
            (long long)(sl_t_now_ms() - t0));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    assert_int_equal(got, (size_t)total);
    unsigned char *seen = calloc((size_t)total, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < got; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long id = sl_t_parse_id(e->line, e->line + e->line_n, "id=");
        assert_true(id >= 0 && id < total);
        assert_false(seen[id]);
        seen[id] = 1;
    }
    free(seen);
    sl_lr_stop(lr);
}

/* Waits until the two files together hold at least n lines. */
typedef struct two_files {
    const char *a, *b;
    long n;
} two_files;

static bool two_files_have(void *arg)
{
    two_files *t = arg;
    long a = sl_t_count_lines(t->a), b = sl_t_count_lines(t->b);
    return (a > 0 ? a : 0) + (b > 0 ? b : 0) >= t->n;
}

static bool wait_lines_total(const char *a, const char *b, long n, int timeout_ms)
{
    two_files t = {a, b, n};
    return sl_t_wait_until(two_files_have, &t, timeout_ms);
}

/* The output rotated the way logrotate's `create` does: renamed, then
 * (here) a link planted at the free name, then the link removed. Writes
 * follow the name once it is a file again, never the link; the link's
 * target is untouched; every record is in the rotated file or the new
 * one, exactly once (decision 0065: before, every later write went to the
 * renamed file, lost once logrotate compressed and removed it). */
static void test_output_rotated_reopened(void **st)
{
    fixture *f = *st;
    char *rotated = sl_t_path(f->dir, "out.log.1");
    char *secret = sl_t_path(f->dir, "secret");
    sl_t_write_file(secret, "SECRET\n", 7);
    pid_t pid = start_agent(f);
    write_lines(f, 0, 1000);
    assert_true(sl_t_wait_lines(f->out, 1000, sl_t_scaled_ms(20000)));
    assert_int_equal(rename(f->out, rotated), 0);
    assert_int_equal(symlink(secret, f->out), 0);
    /* The sink looks at the name at most every 250 ms, when it writes:
     * keep writing until it has. */
    long next = 1000;
    while (next < 2000 && !sl_t_file_has(f->log, "event=sink_reopen_failed")) {
        write_lines(f, next, next + 20);
        next += 20;
        sl_t_sleep_ms(20);
    }
    assert_true(sl_t_file_has(f->log, "event=sink_reopen_failed"));
    assert_true(sl_t_file_has(f->log, "is a symbolic link"));
    assert_true(sl_t_wait_lines(rotated, next, sl_t_scaled_ms(20000)));
    assert_int_equal(unlink(f->out), 0);
    while (next < 3000 && !sl_t_file_has(f->log, "event=sink_reopened")) {
        write_lines(f, next, next + 20);
        next += 20;
        sl_t_sleep_ms(20);
    }
    assert_true(sl_t_file_has(f->log, "event=sink_reopened"));
    write_lines(f, next, 3000);
    assert_true(wait_lines_total(rotated, f->out, 3000, sl_t_scaled_ms(20000)));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    size_t n = 0;
    char *kept = sl_t_read_file(secret, &n);
    assert_int_equal(n, 7);
    free(kept);
    /* Both files together: every record once. */
    char *both = sl_t_path(f->dir, "both.log");
    size_t an = 0, bn = 0;
    char *a = sl_t_read_file(rotated, &an), *b = sl_t_read_file(f->out, &bn);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(bn > 0); /* the new file took the last writes */
    sl_t_write_file(both, a, an);
    sl_t_append_file(both, b, bn);
    tally t = check_output(both, 3000);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.dups, 0);
    assert_int_equal(t.malformed, 0);
    free(a), free(b), free(both), free(rotated), free(secret);
}

/* The tmpfs test_full_disk_cut_write mounted, unmounted by its teardown
 * when a failed assertion jumped past the test's own umount. */
static char mounted[4096];

static int teardown_mounted(void **st)
{
    if (*mounted) umount2(mounted, MNT_DETACH);
    *mounted = '\0';
    return teardown(st);
}

/* The output's file system fills (a 256 KiB tmpfs, 1.2 MB to write): the
 * write that meets the end is taken in part and refused for the rest. The
 * sink takes back the part written before the batch is written again, so
 * when space returns the file holds every record, none glued to a cut one
 * (decision 0065: one malformed line per full disk before). Needs root for
 * mount(2); skipped otherwise. */
static void test_full_disk_cut_write(void **st)
{
    fixture *f = *st;
    const long total = 30000;
    char *full = sl_t_path(f->dir, "full");
    assert_int_equal(mkdir(full, 0755), 0);
    if (mount("tmpfs", full, "tmpfs", 0, "size=256k,mode=0755") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): skipping\n", strerror(errno));
        free(full);
        skip();
    }
    snprintf(mounted, sizeof mounted, "%s", full);
    char *out = sl_t_path(full, "out.log");
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 2s\n"
             "inputs:\n"
             "  - {name: app, type: file, paths: [\"%s\"], start_at: beginning,"
             " poll_interval: 50ms}\n"
             "sinks:\n"
             "  - {name: out, type: file, path: \"%s\"}\n",
             f->dir, f->in, out);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    write_lines(f, 0, total);
    pid_t pid = start_agent(f);
    assert_true(sl_t_wait_log(f->log, "event=sink_write_failed", 1, sl_t_scaled_ms(20000)));
    assert_true(sl_t_file_has(f->log, "No space left on device"));
    assert_int_equal(mount("tmpfs", full, "tmpfs", MS_REMOUNT, "size=64m,mode=0755"), 0);
    assert_true(sl_t_wait_lines(out, total, sl_t_scaled_ms(20000)));
    assert_int_equal(sl_t_stop(pid, SIGTERM, sl_t_scaled_ms(20000)), 0);
    tally t = check_output(out, total);
    /* Every line exactly as write_lines wrote it: a cut line glued to the
     * next one still begins with a good seq=, so compare whole lines. */
    size_t n = 0;
    char *data = sl_t_read_file(out, &n);
    assert_non_null(data);
    long glued = 0;
    for (char *line = data; line < data + n;) {
        char *nl = memchr(line, '\n', (size_t)(data + n - line));
        assert_non_null(nl);
        long seq = sl_t_parse_id(line, nl, "seq=");
        char want[128];
        int wn = snprintf(want, sizeof want, "seq=%08ld payload=%.*s", seq, (int)(seq % 61),
                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        if (seq < 0 || nl - line != wn || memcmp(line, want, (size_t)wn) != 0) {
            if (!glued) fprintf(stderr, "glued: %.*s\n", (int)(nl - line), line);
            glued++;
        }
        line = nl + 1;
    }
    free(data);
    umount2(full, MNT_DETACH);
    *mounted = '\0';
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.malformed, 0);
    assert_int_equal(glued, 0);
    free(out), free(full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_graceful_restart_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_write_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_cut_write, setup, teardown_mounted),
        cmocka_unit_test_setup_teardown(test_output_rotated_reopened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_tail_reaches_loki_at_once, setup, teardown),
    };
    return sl_t_run_tests(tests);
}
