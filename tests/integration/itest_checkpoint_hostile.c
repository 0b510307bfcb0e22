/* Damaged and planted checkpoints through the real binary (decision 0059):
 * an entry can never make the agent read a file outside its globs' folders
 * or overflow the fingerprint's buffer; a checkpoint that is a link or a
 * FIFO is neither followed nor waited on, is kept aside, and every file is
 * read from its start, counted and logged. */
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

#include "tests/helpers.h"

typedef struct rig {
    char *dir, *cfg, *out, *log, *ckpt;
    int mport;
    pid_t pid;
} rig;

static void rig_init(rig *r, const char *tag, const char *input_extra)
{
    r->dir = sl_t_tmpdir(tag);
    r->cfg = sl_t_path(r->dir, "sluice.yml");
    r->out = sl_t_path(r->dir, "out.txt");
    r->log = sl_t_path(r->dir, "agent.log");
    r->ckpt = sl_t_path(r->dir, "data/checkpoints/in.json");
    r->mport = sl_t_free_port();
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/logs", r->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/secret", r->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/data", r->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/data/checkpoints", r->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "log: {level: info}\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n"
             "inputs:\n"
             "  - name: in\n"
             "    type: file\n"
             "    paths: [\"%s/logs/*.log\"]\n"
             "    start_at: end\n"
             "    poll_interval: 50ms\n"
             "    checkpoint_interval: 100ms\n"
             "%s"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n",
             r->dir, r->mport, r->dir, input_extra ? input_extra : "", r->out);
    sl_t_write_file(r->cfg, yml, strlen(yml));
    /* It ran here before: start_at no longer applies. */
    char *marker = sl_t_path(r->dir, "data/checkpoints/in.started");
    sl_t_write_file(marker, "x\n", 2);
    free(marker);
}

static void rig_start(rig *r)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
    assert_true(sl_t_wait_log(r->log, "event=agent_started", 1, sl_t_scaled_ms(20000)));
}

static void rig_free(rig *r)
{
    if (r->pid) assert_int_equal(sl_t_stop(r->pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    sl_t_rmtree(r->dir);
    free(r->dir), free(r->cfg), free(r->out), free(r->log), free(r->ckpt);
}

static char *file_in(rig *r, const char *sub, const char *text, struct stat *st)
{
    char *p = sl_t_path(r->dir, sub);
    assert_int_equal(sl_t_write_file(p, text, strlen(text)), 0);
    assert_int_equal(stat(p, st), 0);
    return p;
}

static double metric(rig *r, const char *reason)
{
    char name[256];
    snprintf(name, sizeof name,
             "sluice_checkpoint_entries_dropped_total{input=\"in\",reason=\"%s\"}", reason);
    return sl_t_metric(r->mport, name);
}

/* Entries naming files outside the globs' folders (directly, or climbing
 * out with ..) are dropped, counted and logged; the files are never read,
 * even with follow_symlinks: always (the guard's folder check is off). A
 * file in the globs whose entry was dropped is read from its start. */
static void test_entries_outside_globs(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "ckpt_outside", "    follow_symlinks: always\n");
    struct stat s1, s2, app;
    char *secret = file_in(&r, "secret/secret.txt", "TOPSECRET-1\n", &s1);
    char *climb = file_in(&r, "secret/climb.txt", "TOPSECRET-2\n", &s2);
    char *log = file_in(&r, "logs/app.log", "line-1\nline-2\n", &app);
    char text[8192];
    int64_t now = (int64_t)time(NULL);
    snprintf(text, sizeof text,
             "{\"version\":1,\"files\":["
             "{\"path\":\"%s\",\"dev\":%llu,\"ino\":%llu,\"fp_len\":0,\"fp\":\"0000000000000000\","
             "\"offset\":0,\"seen\":%lld,\"size\":100},"
             "{\"path\":\"%s/logs/../secret/climb.txt\",\"dev\":%llu,\"ino\":%llu,\"fp_len\":0,"
             "\"fp\":\"0000000000000000\",\"offset\":0,\"seen\":%lld,\"size\":100},"
             "{\"path\":\"%s\",\"dev\":%llu,\"ino\":%llu,\"fp_len\":0,"
             "\"fp\":\"0000000000000000\",\"offset\":7,\"seen\":%lld,\"size\":14},"
             "{\"path\":\"%s\",\"dev\":%llu,\"ino\":%llu,\"fp_len\":0,"
             "\"fp\":\"0000000000000000\",\"offset\":14,\"seen\":%lld,\"size\":14}]}",
             secret, (unsigned long long)s1.st_dev, (unsigned long long)s1.st_ino, (long long)now,
             r.dir, (unsigned long long)s2.st_dev, (unsigned long long)s2.st_ino, (long long)now,
             log, (unsigned long long)app.st_dev, (unsigned long long)app.st_ino, (long long)now,
             log, (unsigned long long)app.st_dev, (unsigned long long)app.st_ino, (long long)now);
    sl_t_write_file(r.ckpt, text, strlen(text));
    rig_start(&r);
    /* The duplicate's lower offset (7) wins: line-2 only. */
    assert_true(sl_t_wait_lines(r.out, 1, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(r.log, "reason=outside_globs count=1", 1, sl_t_scaled_ms(5000)));
    assert_true(sl_t_file_has(r.log, "reason=invalid count=1 first=\"entry 1: path with ..\""));
    assert_true(sl_t_file_has(r.log, "reason=duplicate count=1"));
    assert_int_equal((long)metric(&r, "outside_globs"), 1);
    assert_int_equal((long)metric(&r, "invalid"), 1);
    assert_int_equal((long)metric(&r, "duplicate"), 1);
    /* Let a few scans and rescues pass, then look. */
    assert_true(sl_t_wait_log(r.ckpt, "\"offset\":14", 1, sl_t_scaled_ms(10000)));
    assert_true(sl_t_metric(r.mport, "sluice_input_files_refused_total") == 0);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    r.pid = 0;
    assert_false(sl_t_file_has(r.out, "TOPSECRET"));
    assert_false(sl_t_file_has(r.log, "event=file_found_again"));
    assert_false(sl_t_file_has(r.log, "secret/secret.txt inode"));
    assert_true(sl_t_file_has(r.out, "line-2"));
    assert_false(sl_t_file_has(r.out, "line-1"));
    free(secret), free(climb), free(log);
    rig_free(&r);
}

/* fp_len past the fingerprint's 64 KiB buffer, on a file larger than
 * that: the entry is dropped (the read of fp_len bytes into the buffer
 * overflowed it before), the file read from its start. */
static void test_fingerprint_length_past_buffer(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "ckpt_fplen", NULL);
    char *log = sl_t_path(r.dir, "logs/app.log");
    assert_int_equal(sl_t_append_ids(log, 0, 4000, " padding padding padding padding"), 0);
    struct stat app;
    assert_int_equal(stat(log, &app), 0);
    assert_true(app.st_size > 100000);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"version\":1,\"files\":[{\"path\":\"%s\",\"dev\":%llu,\"ino\":%llu,"
             "\"fp_len\":100000,\"fp\":\"0000000000000000\",\"offset\":100,\"seen\":%lld,"
             "\"size\":%lld}]}",
             log, (unsigned long long)app.st_dev, (unsigned long long)app.st_ino,
             (long long)time(NULL), (long long)app.st_size);
    sl_t_write_file(r.ckpt, text, strlen(text));
    rig_start(&r);
    assert_true(sl_t_wait_lines(r.out, 4000, sl_t_scaled_ms(20000)));
    assert_true(
        sl_t_file_has(r.log, "reason=invalid count=1 first=\"entry 0: fp_len over 65536\""));
    assert_int_equal((long)metric(&r, "invalid"), 1);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    r.pid = 0;
    sl_t_tally t = sl_t_count_ids(r.out, 4000);
    assert_int_equal(t.distinct, 4000);
    free(log);
    rig_free(&r);
}

/* An offset past the file's end (a crafted checkpoint, or a file
 * truncated while the agent was stopped): read from 0, counted as a
 * truncation and logged. */
static void test_offset_past_end(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "ckpt_offset", NULL);
    char *log = sl_t_path(r.dir, "logs/app.log");
    assert_int_equal(sl_t_append_ids(log, 0, 50, " x"), 0);
    struct stat app;
    assert_int_equal(stat(log, &app), 0);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"version\":1,\"files\":[{\"path\":\"%s\",\"dev\":%llu,\"ino\":%llu,"
             "\"fp_len\":0,\"fp\":\"0000000000000000\",\"offset\":9223372036854775807,"
             "\"seen\":%lld,\"size\":9223372036854775807}]}",
             log, (unsigned long long)app.st_dev, (unsigned long long)app.st_ino,
             (long long)time(NULL));
    sl_t_write_file(r.ckpt, text, strlen(text));
    rig_start(&r);
    assert_true(sl_t_wait_lines(r.out, 50, sl_t_scaled_ms(20000)));
    assert_true(sl_t_file_has(r.log, "event=file_truncated"));
    assert_true(sl_t_file_has(r.log, "reason=while_stopped old_offset=9223372036854775807"));
    assert_int_equal((long)sl_t_metric(r.mport, "sluice_input_file_truncations_total"), 1);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    r.pid = 0;
    sl_t_tally t = sl_t_count_ids(r.out, 50);
    assert_int_equal(t.distinct, 50);
    assert_int_equal(t.dups, 0);
    free(log);
    rig_free(&r);
}

/* The checkpoint is a link to another file, or a FIFO: not followed, not
 * waited on, kept aside as in.json.damaged; every file read from its start
 * (start_at: end no longer applies), counted in
 * sluice_checkpoint_lost_total; the link's target is never written. */
static void test_checkpoint_is_link_or_fifo(void **st)
{
    (void)st;
    for (int kind = 0; kind < 2; kind++) {
        rig r;
        rig_init(&r, "ckpt_kind", NULL);
        char *log = sl_t_path(r.dir, "logs/app.log");
        assert_int_equal(sl_t_append_ids(log, 0, 100, " x"), 0);
        char *target = sl_t_path(r.dir, "secret/target");
        assert_int_equal(sl_t_write_file(target, "{\"version\":1,\"files\":[]}", 24), 0);
        if (kind == 0)
            assert_int_equal(symlink(target, r.ckpt), 0);
        else
            assert_int_equal(mkfifo(r.ckpt, 0600), 0);
        rig_start(&r);
        assert_true(sl_t_wait_lines(r.out, 100, sl_t_scaled_ms(20000)));
        assert_true(sl_t_file_has(r.log, "event=checkpoint_unreadable"));
        assert_true(sl_t_file_has(r.log, "kept=damaged files=read_from_start"));
        assert_int_equal((long)sl_t_metric(r.mport, "sluice_checkpoint_lost_total"), 1);
        assert_true(sl_t_wait_log(r.ckpt, "\"offset\":", 1, sl_t_scaled_ms(10000)));
        assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
        r.pid = 0;
        char *aside = sl_t_path(r.dir, "data/checkpoints/in.json.damaged");
        struct stat ast, cst;
        assert_int_equal(lstat(aside, &ast), 0);
        assert_true(kind == 0 ? S_ISLNK(ast.st_mode) : S_ISFIFO(ast.st_mode));
        assert_int_equal(lstat(r.ckpt, &cst), 0);
        assert_true(S_ISREG(cst.st_mode));
        assert_int_equal(cst.st_mode & 0777, 0600);
        size_t n;
        char *kept = sl_t_read_file(target, &n);
        assert_int_equal(n, 24);
        sl_t_tally t = sl_t_count_ids(r.out, 100);
        assert_int_equal(t.distinct, 100);
        free(kept), free(aside), free(target), free(log);
        rig_free(&r);
    }
}

/* A checkpoint damaged at two starts keeps both damaged files (decision
 * 0065; the second used to replace the first, the evidence lost), the
 * newest as in.json.damaged and older ones shifted to .damaged.1, .2, .3;
 * past 4 the oldest is removed, counted and logged. */
static void test_damaged_twice_keeps_both(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "ckpt_twice", NULL);
    char *log = sl_t_path(r.dir, "logs/app.log");
    assert_int_equal(sl_t_append_ids(log, 0, 20, " x"), 0);
    char *prev = sl_t_path(r.dir, "data/checkpoints/in.json.prev");
    char *aside[4];
    for (int i = 0; i < 4; i++) {
        char name[64];
        if (i == 0)
            snprintf(name, sizeof name, "data/checkpoints/in.json.damaged");
        else
            snprintf(name, sizeof name, "data/checkpoints/in.json.damaged.%d", i);
        aside[i] = sl_t_path(r.dir, name);
    }
    sl_t_write_file(r.ckpt, "damage A", 8);
    rig_start(&r);
    assert_true(sl_t_wait_lines(r.out, 20, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(r.ckpt, "\"offset\":", 1, sl_t_scaled_ms(10000)));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    r.pid = 0;
    assert_true(sl_t_file_has(aside[0], "damage A"));

    /* Both generations damaged again; two older ones already kept. */
    sl_t_write_file(r.ckpt, "damage B", 8);
    unlink(prev);
    sl_t_write_file(aside[2], "older 2", 7);
    sl_t_write_file(aside[3], "older 3", 7);
    sl_t_write_file(r.log, "", 0);
    rig_start(&r);
    assert_true(sl_t_wait_log(r.log, "event=checkpoint_unreadable", 1, sl_t_scaled_ms(10000)));
    assert_true(
        sl_t_wait_log(r.log, "event=checkpoint_damaged_discarded", 1, sl_t_scaled_ms(10000)));
    assert_int_equal(
        (long)sl_t_metric(r.mport, "sluice_checkpoint_damaged_discarded_total{input=\"in\"}"), 1);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, sl_t_scaled_ms(30000)), 0);
    r.pid = 0;
    assert_true(sl_t_file_has(aside[0], "damage B"));
    assert_true(sl_t_file_has(aside[1], "damage A"));
    assert_true(sl_t_file_has(aside[3], "older 2"));
    assert_int_equal(access(aside[2], F_OK), -1);
    for (int i = 0; i < 4; i++) free(aside[i]);
    free(prev), free(log);
    rig_free(&r);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_outside_globs),
        cmocka_unit_test(test_fingerprint_length_past_buffer),
        cmocka_unit_test(test_offset_past_end),
        cmocka_unit_test(test_checkpoint_is_link_or_fifo),
        cmocka_unit_test(test_damaged_twice_keeps_both),
    };
    return sl_t_run_tests(tests);
}
