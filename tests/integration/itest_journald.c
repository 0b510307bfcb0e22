/* End to end through the real binary: a journald input reading a folder of
 * journal files that systemd-journal-remote keeps writing (appending to one
 * file and adding new ones), feeding the file sink. MESSAGE carries a unique
 * sequence number, so the output shows loss and duplicates across SIGTERM
 * and kill -9 restarts. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/fixtures/journal/jexport.h"
#include "tests/helpers.h"
#include "tests/loki_receiver.h"

typedef struct fixture {
    char *dir, *jdir, *cfg, *out, *log;
} fixture;

static int setup(void **st)
{
    if (!jx_remote_bin()) {
        fprintf(stderr, "systemd-journal-remote is not installed\n");
        *st = NULL;
        return 0;
    }
    fixture *f = calloc(1, sizeof *f);
    f->dir = sl_t_tmpdir("itjournald");
    f->jdir = sl_t_path(f->dir, "journal");
    f->cfg = sl_t_path(f->dir, "sluice.yml");
    f->out = sl_t_path(f->dir, "out.log");
    f->log = sl_t_path(f->dir, "agent.log");
    mkdir(f->jdir, 0755);
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: sys\n"
             "    type: journald\n"
             "    directory: %s\n"
             "    checkpoint_interval: 100ms\n"
             "    batch_records: 500\n"
             "    labels_from: { unit: _SYSTEMD_UNIT }\n"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n",
             f->dir, f->jdir, f->out);
    sl_t_write_file(f->cfg, yml, strlen(yml));
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fixture *f = *st;
    if (!f) return 0;
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", f->dir);
    else
        sl_t_rmtree(f->dir);
    free(f->dir), free(f->jdir), free(f->cfg), free(f->out), free(f->log), free(f);
    return 0;
}

static pid_t start_agent(fixture *f, bool dry_run)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", f->cfg, dry_run ? "--dry-run" : NULL, NULL};
    pid_t pid = sl_t_spawn(argv, dry_run ? f->out : f->log);
    assert_true(pid > 0);
    return pid;
}

/* Entries [from, to) into DIR/name, a few hundred per journal-remote run so
 * the agent reads while the journal grows. */
static void write_entries(fixture *f, const char *name, long from, long to)
{
    char *path = sl_t_path(f->jdir, name);
    for (long i = from; i < to;) {
        jx_writer *w = jx_open(path);
        assert_non_null(w);
        for (int k = 0; k < 5000 && i < to; k++, i++) {
            jx_begin(w, 1700000000000000ULL + (uint64_t)i * 10, 1000 + (uint64_t)i, NULL);
            jx_fieldf(w, "MESSAGE", "seq=%08ld payload=%.*s", i, (int)(i % 61),
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
            jx_fieldf(w, "PRIORITY", "%ld", i % 8);
            jx_fieldf(w, "_SYSTEMD_UNIT", "app%ld.service", i % 3);
            jx_field(w, "_HOSTNAME", "node-1", 6);
            jx_end(w);
        }
        assert_int_equal(jx_close(w), 0);
    }
    free(path);
}

typedef struct tally {
    long lines, lost, dups, malformed;
} tally;

static tally check_output(const char *out, long expected)
{
    tally t = {0};
    size_t n;
    char *data = sl_t_read_file(out, &n);
    assert_non_null(data);
    unsigned char *seen = calloc((size_t)expected, 1);
    for (char *line = data; line < data + n;) {
        char *nl = memchr(line, '\n', (size_t)(data + n - line));
        if (!nl) break;
        long seq;
        if ((seq = sl_t_parse_id(line, nl, "seq=")) < 0 || seq >= expected) {
            t.malformed++;
        } else {
            if (seen[seq]) t.dups++;
            seen[seq] = 1;
        }
        t.lines++;
        line = nl + 1;
    }
    for (long i = 0; i < expected; i++) t.lost += !seen[i];
    free(seen);
    free(data);
    fprintf(stderr, "output: %ld lines, %ld lost, %ld duplicates, %ld malformed\n", t.lines, t.lost,
            t.dups, t.malformed);
    return t;
}

static long total_entries(long full)
{
    return sl_t_sanitized() ? full / 5 : full;
}

/* SIGTERM half way, entries written while it is down, a new file after the
 * restart: every entry exactly once. */
static void test_graceful_restart_exactly_once(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    const long total = total_entries(40000);
    pid_t pid = start_agent(f, false);
    write_entries(f, "remote.journal", 0, total / 2);
    assert_true(sl_t_wait_lines(f->out, total / 4, 60000));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    write_entries(f, "remote.journal", total / 2, total * 3 / 4);
    pid = start_agent(f, false);
    write_entries(f, "second.journal", total * 3 / 4, total);
    assert_true(sl_t_wait_lines(f->out, total, 60000));
    sl_t_sleep_ms(300);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    tally t = check_output(f->out, total);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.dups, 0);
    assert_int_equal(t.malformed, 0);
}

/* kill -9 at several moments while the journal grows: nothing lost;
 * duplicates (what was in flight) reported. */
static void test_kill9_loses_nothing(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    const long total = total_entries(50000), step = total / 5;
    pid_t pid = start_agent(f, false);
    for (long from = 0; from < total; from += step) {
        char name[64];
        snprintf(name, sizeof name, "part%ld.journal", (from / step) % 2);
        write_entries(f, name, from, from + step);
        sl_t_sleep_ms(30 + (int)(from % 7) * 20);
        assert_int_equal(sl_t_stop(pid, SIGKILL, 5000), 128 + SIGKILL);
        pid = start_agent(f, false);
    }
    assert_true(sl_t_wait_lines(f->out, total, 60000));
    sl_t_sleep_ms(300);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    tally t = check_output(f->out, total);
    assert_int_equal(t.lost, 0);
    assert_int_equal(t.malformed, 0);
}

/* --dry-run prints records with their journal fields and label, and leaves
 * no checkpoint behind. */
static void test_dry_run_fields(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    write_entries(f, "remote.journal", 0, 10);
    pid_t pid = start_agent(f, true);
    assert_true(sl_t_wait_lines(f->out, 10, 20000));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    char *out = sl_t_read_file(f->out, NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"line\":\"seq=00000003 payload=abc\""));
    assert_non_null(strstr(out, "\"level\":\"err\""));
    assert_non_null(strstr(out, "\"hostname\":\"node-1\""));
    assert_non_null(strstr(out, "\"labels\":{\"unit\":\"app0.service\"}"));
    assert_non_null(strstr(out, "\"time\":\"2023-11-14T22:13:20.000030000Z\""));
    free(out);
    char *ckpt = sl_t_path(f->dir, "data/checkpoints/sys.journal");
    struct stat sb;
    assert_int_equal(stat(ckpt, &sb), -1);
    free(ckpt);
}

/* Into Loki with a long max_batch_wait: a journal the input has caught up
 * with reaches the receiver when read, not max_batch_wait later (the
 * input's last batch asks to be sent at once, decision 0042). */
static void test_caught_up_journal_reaches_loki_at_once(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    const long total = 1200; /* batches of 500: two whole, then the tail */
    write_entries(f, "remote.journal", 0, total);
    sl_lr_opts lo = {0};
    sl_lr *lr = NULL;
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char *cfg = sl_t_path(f->dir, "loki.yml");
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "inputs:\n"
             "  - name: sys\n"
             "    type: journald\n"
             "    directory: %s\n"
             "    batch_records: 500\n"
             "sinks:\n"
             "  - name: loki\n"
             "    type: loki\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    max_batch_wait: 300s\n",
             f->dir, f->jdir, sl_lr_port(lr));
    sl_t_write_file(cfg, yml, strlen(yml));
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    int64_t t0 = sl_t_now_ms();
    pid_t pid = sl_t_spawn(argv, f->log);
    assert_true(pid > 0);
    /* Well before max_batch_wait (300 s): 20 s, 80 under the sanitizers. */
    int64_t limit = sl_t_scaled_ms(20000);
    while ((long)sl_lr_nentries(lr) < total && sl_t_now_ms() - t0 < limit) sl_t_sleep_ms(20);
    fprintf(stderr, "%zu of %ld entries in Loki after %lld ms\n", sl_lr_nentries(lr), total,
            (long long)(sl_t_now_ms() - t0));
    size_t got = sl_lr_nentries(lr);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    assert_int_equal(got, (size_t)total);
    unsigned char *seen = calloc((size_t)total, 1);
    for (size_t i = 0; i < sl_lr_nentries(lr); i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long seq = sl_t_parse_id(e->line, e->line + e->line_n, "seq=");
        assert_true(seq >= 0 && seq < total);
        assert_false(seen[seq]);
        seen[seq] = 1;
    }
    free(seen);
    sl_lr_stop(lr);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_graceful_restart_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caught_up_journal_reaches_loki_at_once, setup,
                                        teardown),
    };
    return sl_t_run_tests(tests);
}
