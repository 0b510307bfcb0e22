/* End to end through the real binary: a journald input reading a folder of
 * journal files that systemd-journal-remote keeps writing (appending to one
 * file and adding new ones), feeding the file sink. MESSAGE carries a unique
 * sequence number, so the output shows loss and duplicates across SIGTERM
 * and kill -9 restarts, and what reaches the output of journal files
 * damaged, cut, zeroed, planted or swapped under the agent (decision 0075).
 *
 * One file over 800 lines: every case drives the same agent on the same
 * journal writer and reads the same output tally. */
#include <dirent.h>
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
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/fixtures/journal/jexport.h"
#include "tests/helpers.h"
#include "tests/loki_receiver.h"

typedef struct fixture {
    char *dir, *jdir, *cfg, *out, *log;
    int port; /* the hostile cases' metrics endpoint */
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

/* Entries [from, to) into dir/name, a few hundred per journal-remote run so
 * the agent reads while the journal grows. */
static void write_entries_in(const char *dir, const char *name, long from, long to)
{
    char *path = sl_t_path(dir, name);
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

static void write_entries(fixture *f, const char *name, long from, long to)
{
    write_entries_in(f->jdir, name, from, to);
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

/* ---- hostile journals (decision 0075) ---- */

/* A config for the hostile cases: the metrics endpoint, raw lines (or the
 * record as JSON) into the file sink. */
static void hostile_config(fixture *f, const char *extra, bool json)
{
    f->port = sl_t_free_port();
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n"
             "inputs:\n"
             "  - name: sys\n"
             "    type: journald\n"
             "    directory: %s\n"
             "    checkpoint_interval: 100ms\n"
             "    batch_records: 100\n"
             "%s"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n"
             "    format: %s\n",
             f->dir, f->port, f->jdir, extra ? extra : "", f->out, json ? "json" : "raw");
    sl_t_write_file(f->cfg, yml, strlen(yml));
}

static double metric(fixture *f, const char *name)
{
    return sl_t_metric(f->port, name);
}

/* Whether the agent still runs (it has not died of a signal meanwhile). */
static bool alive(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == 0;
}

/* Byte offset of the first occurrence of needle in the file; -1: none. */
static long offset_of(const char *path, const char *needle)
{
    size_t n;
    char *d = sl_t_read_file(path, &n);
    assert_non_null(d);
    long off = -1;
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n && off < 0; i++)
        if (memcmp(d + i, needle, m) == 0) off = (long)i;
    free(d);
    return off;
}

/* Zeros from off to the end of the file, in place (its size stays): the
 * tail of a file whose blocks were never written back before a crash. */
static void zero_from(const char *path, long off)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    static const char zeros[65536];
    for (long at = off; at < (long)sb.st_size;) {
        size_t n = (size_t)((long)sb.st_size - at) < sizeof zeros ? (size_t)((long)sb.st_size - at)
                                                                  : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, at);
        assert_true(w > 0);
        at += w;
    }
    close(fd);
}

/* Which of the seqs [from, to) libsystemd itself can read from one file. */
static long readable_in(const char *path, long from, long to, unsigned char *seen)
{
    const char *paths[] = {path, NULL};
    sd_journal *j = NULL;
    if (sd_journal_open_files(&j, paths, 0) < 0) return 0;
    long n = 0;
    while (sd_journal_next(j) > 0) {
        const void *d;
        size_t l;
        if (sd_journal_get_data(j, "MESSAGE", &d, &l) < 0) continue;
        long seq = sl_t_parse_id((const char *)d + 8, (const char *)d + l, "seq=");
        if (seq >= from && seq < to && !seen[seq - from]) {
            seen[seq - from] = 1;
            n++;
        }
    }
    sd_journal_close(j);
    return n;
}

/* seen[i] for seq from + i of the agent's raw output; returns lines. */
static long output_seqs(fixture *f, long from, long to, unsigned char *seen, long *dups)
{
    size_t n;
    char *data = sl_t_read_file(f->out, &n);
    long lines = 0;
    *dups = 0;
    for (char *line = data; data && line < data + n;) {
        char *nl = memchr(line, '\n', (size_t)(data + n - line));
        if (!nl) break;
        long seq = sl_t_parse_id(line, nl, "seq=");
        if (seq >= from && seq < to) *dups += seen[seq - from]++ > 0;
        lines++;
        line = nl + 1;
    }
    free(data);
    return lines;
}

/* Journal files damaged before the agent starts: one cut mid-entry (which
 * libsystemd refuses whole), one with a zero-filled tail, one whose first
 * entry array is garbage, one left by a crashed writer (online, zeroed
 * tail, set aside as *.journal~). The agent starts, ships every entry libsystemd
 * can read of each (no more), names each damaged file in its log and counts
 * it; a good file beside them arrives whole. */
static void test_damaged_files_at_start(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    write_entries(f, "good.journal", 0, 300);
    write_entries(f, "cut.journal", 1000, 1300);
    write_entries(f, "zero.journal", 2000, 2300);
    write_entries(f, "flip.journal", 3000, 3300);
    write_entries(f, "crash.journal", 4000, 4300);
    char *cut = sl_t_path(f->jdir, "cut.journal");
    char *zero = sl_t_path(f->jdir, "zero.journal");
    char *flip = sl_t_path(f->jdir, "flip.journal");
    long off = offset_of(cut, "seq=00001150");
    assert_true(off > 0);
    assert_int_equal(truncate(cut, off + 5), 0);
    off = offset_of(zero, "seq=00002150");
    assert_true(off > 0);
    zero_from(zero, off - 16);
    /* The first entry array object: header field entry_array_offset. */
    int fd = open(flip, O_RDWR);
    assert_true(fd >= 0);
    unsigned char hdr[256], garbage[256];
    assert_int_equal(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    uint64_t ea = 0;
    for (int k = 7; k >= 0; k--) ea = ea << 8 | hdr[176 + k];
    assert_true(ea > 0);
    for (size_t k = 0; k < sizeof garbage; k++) garbage[k] = (unsigned char)(k * 37 + 11);
    assert_int_equal(pwrite(fd, garbage, sizeof garbage, (off_t)ea + 24), (ssize_t)sizeof garbage);
    close(fd);
    /* As a writer's crash leaves it: still marked online, the tail's blocks
     * never written, set aside as *.journal~ by the writer's next start. */
    char *crash = sl_t_path(f->jdir, "crash.journal");
    char *crashed = sl_t_path(f->jdir, "crash.journal~");
    off = offset_of(crash, "seq=00004200");
    assert_true(off > 0);
    zero_from(crash, off - 16);
    fd = open(crash, O_WRONLY);
    assert_int_equal(pwrite(fd, "\1", 1, 16), 1); /* state: ONLINE */
    close(fd);
    assert_int_equal(rename(crash, crashed), 0);

    unsigned char can[5000] = {0};
    char *goodp = sl_t_path(f->jdir, "good.journal");
    long good = readable_in(goodp, 0, 5000, can);
    free(goodp);
    long zero_ok = readable_in(zero, 0, 5000, can);
    long flip_ok = readable_in(flip, 0, 5000, can);
    long crash_ok = readable_in(crashed, 0, 5000, can);
    assert_int_equal(readable_in(cut, 0, 5000, can), 0);
    fprintf(stderr,
            "readable by libsystemd: good %ld, zero-tailed %ld, flipped %ld, crashed %ld, cut 0\n",
            good, zero_ok, flip_ok, crash_ok);
    assert_true(crash_ok > 0 && crash_ok < 300);
    assert_int_equal(good, 300);
    assert_true(zero_ok > 0 && zero_ok < 300);

    hostile_config(f, NULL, false);
    pid_t pid = start_agent(f, false);
    const long readable = good + zero_ok + flip_ok + crash_ok;
    assert_true(sl_t_wait_lines(f->out, readable, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(f->log, "journal_file_damaged", 3, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(f->log, "journal_file_unreadable", 1, sl_t_scaled_ms(20000)));
    assert_true(alive(pid));
    assert_int_equal(metric(f, "sluice_journald_damaged_files_total"), 3);
    assert_true(metric(f, "sluice_journald_errors_total") >= 1);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    assert_true(sl_t_file_has(f->log, "path=") && sl_t_file_has(f->log, "zero.journal"));
    assert_true(sl_t_file_has(f->log, "flip.journal") && sl_t_file_has(f->log, "cut.journal"));
    assert_true(sl_t_file_has(f->log, "crash.journal~"));
    unsigned char got[5000] = {0};
    long dups;
    long lines = output_seqs(f, 0, 5000, got, &dups);
    assert_int_equal(lines, readable);
    assert_int_equal(dups, 0);
    assert_memory_equal(got, can, sizeof can);
    free(cut), free(zero), free(flip), free(crash), free(crashed);
}

static bool lr_has(sl_lr *lr, size_t n, int timeout_ms)
{
    for (int64_t t0 = sl_t_now_ms(); sl_t_now_ms() - t0 < timeout_ms; sl_t_sleep_ms(20))
        if (sl_lr_nentries(lr) >= n) return true;
    return sl_lr_nentries(lr) >= n;
}

/* A journal file cut short (truncated) while the agent reads it: the agent
 * is held mid-file by a slow Loki (a small buffer, 150 ms a push), the file
 * is cut, and the agent's next read of a page past the new end through
 * libsystemd's mmap raised SIGBUS, which killed it. It now goes on: the
 * fault is counted and logged, the journal reopened, the cut file reported
 * unreadable, and entries written afterwards arrive. */
static void victim_while_read(fixture *f, bool remove)
{
    const long total = 6000;
    /* Entries of ~2 KB, so the sink's 64 KiB buffer holds a few dozen. */
    char *victim = sl_t_path(f->jdir, "victim.journal");
    jx_writer *w = jx_open(victim);
    assert_non_null(w);
    for (long i = 0; i < total; i++) {
        jx_begin(w, 1700000000000000ULL + (uint64_t)i * 10, 1000 + (uint64_t)i, NULL);
        jx_fieldf(w, "MESSAGE", "seq=%08ld %02000ld", i, i);
        jx_end(w);
    }
    assert_int_equal(jx_close(w), 0);
    sl_lr_opts lo = {.delay_ms = 150};
    sl_lr *lr = NULL;
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char extra[512];
    f->port = sl_t_free_port();
    char yml[4096];
    snprintf(extra, sizeof extra, "%s", "");
    snprintf(yml, sizeof yml,
             "data_dir: %s/data\n"
             "shutdown_timeout: 10s\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n"
             "inputs:\n"
             "  - name: sys\n"
             "    type: journald\n"
             "    directory: %s\n"
             "    batch_records: 50\n"
             "    reopen_after: 0\n"
             "sinks:\n"
             "  - name: loki\n"
             "    type: loki\n"
             "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
             "    max_batch_wait: 10ms\n"
             "    buffer: {memory_max: 64KiB}\n",
             f->dir, f->port, f->jdir, sl_lr_port(lr));
    sl_t_write_file(f->cfg, yml, strlen(yml));
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", f->cfg, NULL};
    pid_t pid = sl_t_spawn(argv, f->log);
    assert_true(pid > 0);
    /* Held by the slow sink, the agent is well before the file's end. */
    assert_true(lr_has(lr, 100, sl_t_scaled_ms(20000)));
    size_t before = sl_lr_nentries(lr);
    if (remove) {
        /* Vacuumed: the rest of the file is gone for good. */
        assert_int_equal(unlink(victim), 0);
        fprintf(stderr, "removed with %zu entries in Loki\n", before);
        assert_true(sl_t_wait_log(f->log, "journal_file_removed_unread", 1, sl_t_scaled_ms(60000)));
        write_entries(f, "after.journal", total, total + 100);
    } else {
        long off = offset_of(victim, "seq=00003000");
        assert_true(off > 0);
        assert_int_equal(truncate(victim, off), 0);
        fprintf(stderr, "cut at entry 3000 with %zu entries in Loki\n", before);
        assert_true(before < 3000);
        assert_true(sl_t_wait_log(f->log, "journal_file_shrank", 1, sl_t_scaled_ms(60000)));
        write_entries(f, "after.journal", total, total + 100);
        assert_true(sl_t_wait_log(f->log, "journal_file_unreadable", 1, sl_t_scaled_ms(20000)));
    }
    /* Everything written after the cut arrives. */
    for (int64_t t0 = sl_t_now_ms(); sl_t_now_ms() - t0 < sl_t_scaled_ms(60000);
         sl_t_sleep_ms(50)) {
        long late = 0;
        for (size_t i = 0; i < sl_lr_nentries(lr); i++) {
            const sl_lr_entry *e = sl_lr_entry_at(lr, i);
            late += sl_t_parse_id(e->line, e->line + e->line_n, "seq=") >= total;
        }
        if (late >= 100) break;
    }
    assert_true(alive(pid));
    if (remove)
        assert_int_equal(metric(f, "sluice_journald_removed_unread_files_total"), 1);
    else
        assert_true(metric(f, "sluice_journald_file_shrank_total") >= 1);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    unsigned char *got = calloc((size_t)total + 100, 1);
    for (size_t i = 0; i < sl_lr_nentries(lr); i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long seq = sl_t_parse_id(e->line, e->line + e->line_n, "seq=");
        if (seq >= 0 && seq < total + 100) got[seq] = 1;
    }
    long first_run = 0, late = 0, beyond = 0;
    while (first_run < total && got[first_run]) first_run++;
    for (long i = first_run; i < total; i++) beyond += got[i];
    for (long i = total; i < total + 100; i++) late += got[i];
    fprintf(stderr, "%s while read: entries 0..%ld then the %ld written after\n",
            remove ? "removed" : "cut", first_run - 1, late);
    assert_true(first_run >= (long)before);
    assert_int_equal(beyond, 0); /* what was shipped of the file: from its head, no gap */
    assert_int_equal(late, 100);
    free(got), free(victim);
    sl_lr_stop(lr);
}

static void test_file_cut_while_read(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    victim_while_read(f, false);
}

/* The same file removed (vacuumed) while the agent is held mid-file: the
 * rest of it is a gap libsystemd passes over in silence; the agent says so
 * (the file, its entries, an upper bound of those unread), counts it, and
 * goes on with the entries written afterwards, without looping. */
static void test_file_removed_while_read(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    victim_while_read(f, true);
}

/* A FIFO, a folder, a dangling symlink and a symlink to a journal outside
 * named *.journal in the folder: no hang; each is named in the log and
 * counted; libsystemd follows the symlink (said so). Then the folder is
 * replaced by a symlink to another one, removed, and made again: the agent
 * follows the path as a restart would, says so, and ships each folder's
 * entries. */
static void test_planted_entries_and_replaced_directory(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    write_entries(f, "good.journal", 0, 200);
    char *other = sl_t_path(f->dir, "elsewhere");
    mkdir(other, 0755);
    write_entries_in(other, "o.journal", 1000, 1100);
    char *target = sl_t_path(other, "o.journal");
    char *link = sl_t_path(f->jdir, "link.journal");
    char *dangling = sl_t_path(f->jdir, "dangling.journal");
    char *fifo = sl_t_path(f->jdir, "fifo.journal");
    char *sub = sl_t_path(f->jdir, "sub.journal");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(symlink("/nonexistent/x.journal", dangling), 0);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    hostile_config(f, NULL, false);
    pid_t pid = start_agent(f, false);
    assert_true(sl_t_wait_lines(f->out, 300, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(f->log, "journal_file_not_regular", 3, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_log(f->log, "journal_file_symlink", 1, sl_t_scaled_ms(20000)));
    assert_true(metric(f, "sluice_journald_errors_total") >= 4);

    /* The folder's path now leads to another folder. */
    char *moved = sl_t_path(f->dir, "journal.old");
    char *newroot = sl_t_path(f->dir, "newroot");
    mkdir(newroot, 0755);
    write_entries_in(newroot, "n.journal", 2000, 2100);
    assert_int_equal(rename(f->jdir, moved), 0);
    assert_int_equal(symlink(newroot, f->jdir), 0);
    assert_true(sl_t_wait_log(f->log, "journal_directory_replaced", 1, sl_t_scaled_ms(20000)));
    assert_true(sl_t_wait_lines(f->out, 400, sl_t_scaled_ms(20000)));
    /* ... then to nothing, then to a new folder. */
    assert_int_equal(unlink(f->jdir), 0);
    assert_true(sl_t_wait_log(f->log, "journal_directory_missing", 1, sl_t_scaled_ms(20000)));
    assert_true(alive(pid));
    char *tmp = sl_t_path(f->dir, "journal.new");
    mkdir(tmp, 0755);
    write_entries_in(tmp, "m.journal", 3000, 3050);
    assert_int_equal(rename(tmp, f->jdir), 0);
    assert_true(sl_t_wait_lines(f->out, 450, sl_t_scaled_ms(20000)));
    assert_true(alive(pid));
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    unsigned char got[4000] = {0};
    long dups;
    output_seqs(f, 0, 4000, got, &dups);
    for (long i = 0; i < 4000; i++)
        assert_int_equal(got[i] > 0, (i < 200) || (i >= 1000 && i < 1100) ||
                                         (i >= 2000 && i < 2100) || (i >= 3000 && i < 3050));
    assert_int_equal(dups, 0);
    free(other), free(target), free(link), free(dangling), free(fifo), free(sub), free(moved),
        free(newroot), free(tmp);
}

/* A copy that writes only the file's non-zero 4 KiB blocks: a small journal
 * file is ~8 MiB of mostly zeros (its hash tables), so a thousand copies
 * take a few MB of disk. */
static void sparse_copy(const char *data, size_t n, const char *to)
{
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    static const char zeros[4096];
    for (size_t at = 0; at < n; at += 4096) {
        size_t len = n - at < 4096 ? n - at : 4096;
        if (memcmp(data + at, zeros, len) != 0)
            assert_int_equal(pwrite(fd, data + at, len, (off_t)at), (ssize_t)len);
    }
    assert_int_equal(ftruncate(fd, (off_t)n), 0);
    close(fd);
}

/* 1,200 journal files in the folder (12 distinct ones, 100 copies each,
 * which libsystemd merges as the same entries): every entry arrives once,
 * the agent holds one descriptor a file and its peak memory stays bounded,
 * and a file added while it runs is taken in. */
static void test_thousands_of_files(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    const int distinct = 12, copies = sl_t_sanitized() ? 40 : 100;
    char *src = sl_t_path(f->dir, "src");
    mkdir(src, 0755);
    for (int k = 0; k < distinct; k++) {
        char name[64];
        snprintf(name, sizeof name, "s%02d.journal", k);
        write_entries_in(src, name, k * 10, k * 10 + 10);
        char *sp = sl_t_path(src, name);
        size_t n;
        char *data = sl_t_read_file(sp, &n);
        assert_non_null(data);
        for (int c = 0; c < copies; c++) {
            snprintf(name, sizeof name, "c%02d-%03d.journal", k, c);
            char *to = sl_t_path(f->jdir, name);
            sparse_copy(data, n, to);
            free(to);
        }
        unlink(sp); /* 8 MiB each, not sparse */
        free(data), free(sp);
    }
    hostile_config(f, NULL, false);
    pid_t pid = start_agent(f, false);
    assert_true(sl_t_wait_lines(f->out, distinct * 10, sl_t_scaled_ms(60000)));
    long fds = sl_t_open_fds(pid), hwm = sl_t_peak_rss_kib(pid);
    /* More files while it runs: the new entries of a new distinct file. */
    write_entries(f, "late.journal", 1000, 1010);
    assert_true(sl_t_wait_lines(f->out, distinct * 10 + 10, sl_t_scaled_ms(60000)));
    assert_true(alive(pid));
    fprintf(stderr, "%d journal files: %ld descriptors, VmHWM %ld KiB\n", distinct * copies + 1,
            fds, hwm);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 30000), 0);
    assert_true(fds >= distinct * copies && fds < distinct * copies + 200);
    assert_true(hwm > 0 && hwm < (sl_t_sanitized() ? 256 : 128) * 1024);
    unsigned char got[1010] = {0};
    long dups;
    long lines = output_seqs(f, 0, 1010, got, &dups);
    assert_int_equal(lines, distinct * 10 + 10);
    assert_int_equal(dups, 0);
    free(src);
}

/* MESSAGE that is binary (NULs, invalid UTF-8, a newline) or 8 MiB, and
 * field names no journald writes (lower case, a quote) put into a real
 * file: the binary line arrives escaped in the JSON record, flagged; the
 * big one is cut to max_message_bytes and counted, and the agent's memory
 * does not follow the message's size; with fields.keep: ["*"] the bad names
 * are left out and counted, and cannot pass for the input's own fields. */
static void test_hostile_messages_and_names(void **st)
{
    fixture *f = *st;
    if (!f) skip();
    char *path = sl_t_path(f->jdir, "h.journal");
    jx_writer *w = jx_open(path);
    assert_non_null(w);
    static const char bin[] = "seq=00000000 \x00\xff\xfe\nbinary\x01";
    jx_begin(w, 1700000000000000ULL, 1, NULL);
    jx_field(w, "MESSAGE", bin, sizeof bin - 1);
    jx_end(w);
    const size_t big = 8u << 20;
    char *msg = malloc(big);
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (char)('a' + (x >> 16) % 26);
    }
    memcpy(msg, "seq=00000001 ", 13);
    jx_begin(w, 1700000000000010ULL, 2, NULL);
    jx_field(w, "MESSAGE", msg, big);
    jx_end(w);
    jx_begin(w, 1700000000000020ULL, 3, NULL);
    jx_field(w, "MESSAGE", "seq=00000002 names", 18);
    jx_field(w, "XLEVEL", "forged-level", 12);
    jx_field(w, "XQUOTE", "forged-quote", 12);
    jx_field(w, "GOOD_NAME", "kept", 4);
    jx_end(w);
    assert_int_equal(jx_close(w), 0);
    /* The names as a crafted file holds them: same length, so the objects
     * stay where they are. */
    long off = offset_of(path, "XLEVEL=forged-level");
    assert_true(off > 0);
    int fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "level=", 6, off + 0), 6);
    off = offset_of(path, "XQUOTE=forged-quote");
    assert_true(off > 0);
    assert_int_equal(pwrite(fd, "X\"U\x01TE", 6, off), 6);
    close(fd);

    hostile_config(f, "    fields: { keep: ['*'] }\n", true);
    pid_t pid = start_agent(f, false);
    assert_true(sl_t_wait_lines(f->out, 3, sl_t_scaled_ms(30000)));
    long hwm = sl_t_peak_rss_kib(pid);
    assert_true(alive(pid));
    assert_int_equal(metric(f, "sluice_journald_truncated_total"), 1);
    assert_int_equal(metric(f, "sluice_journald_invalid_field_names_total"), 2);
    assert_int_equal(sl_t_stop(pid, SIGTERM, 20000), 0);
    fprintf(stderr, "8 MiB MESSAGE: VmHWM %ld KiB\n", hwm);
    size_t n;
    char *out = sl_t_read_file(f->out, &n);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"line\":\"seq=00000000 \\u0000"));
    assert_non_null(strstr(out, "\"GOOD_NAME\":\"kept\""));
    assert_null(strstr(out, "forged"));
    /* The big line: cut at 1 MiB (max_message_bytes). */
    const char *b = strstr(out, "\"line\":\"seq=00000001 ");
    assert_non_null(b);
    const char *e = strchr(b + 8, '"');
    assert_non_null(e);
    assert_int_equal(e - (b + 8), 1 << 20);
    assert_true(hwm > 0 && hwm < (sl_t_sanitized() ? 160 : 64) * 1024); /* not 8 MiB apiece */
    free(out), free(msg), free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_graceful_restart_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caught_up_journal_reaches_loki_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_cut_while_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_removed_while_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_entries_and_replaced_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_thousands_of_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_messages_and_names, setup, teardown),
    };
    return sl_t_run_tests(tests);
}
