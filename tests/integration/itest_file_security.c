/* The file input on a hostile node, through the real binary: whoever can
 * write one file into a watched folder plants links to a secret file, to
 * /proc, to /dev/zero, and FIFOs. Nothing of them is shipped, each is
 * counted once by reason, a link to a log inside the tree is read once,
 * ordinary records keep flowing and SIGTERM still ends the agent in time.
 * Then data_dir: one agent per data_dir (exit 2 naming the holder), and a
 * data_dir others can write to, or links inside it, refused. */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/helpers.h"

/* Time limits stretch under the sanitizers. */
static int scaled(int ms)
{
    return sl_t_sanitized() ? ms * 3 : ms;
}

typedef struct rig {
    char *dir, *logs, *cfg, *out, *log, *data;
    int port;
    pid_t pid;
} rig;

static void rig_init(rig *r, const char *tag, const char *input_extra)
{
    r->dir = sl_t_tmpdir(tag);
    r->logs = sl_t_path(r->dir, "logs");
    r->cfg = sl_t_path(r->dir, "sluice.yml");
    r->out = sl_t_path(r->dir, "out.txt");
    r->log = sl_t_path(r->dir, "agent.log");
    r->data = sl_t_path(r->dir, "data");
    r->port = sl_t_free_port();
    r->pid = 0;
    assert_int_equal(mkdir(r->logs, 0755), 0);
    char yml[4096];
    snprintf(yml, sizeof yml,
             "data_dir: %s\n"
             "shutdown_timeout: 3s\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n"
             "inputs:\n"
             "  - name: in\n"
             "    type: file\n"
             "    paths: [\"%s/*.log\"]\n"
             "    poll_interval: 50ms\n"
             "    rescan_interval: 100ms\n"
             "    checkpoint_interval: 100ms\n"
             "%s"
             "sinks:\n"
             "  - name: out\n"
             "    type: file\n"
             "    path: %s\n",
             r->data, r->port, r->logs, input_extra ? input_extra : "", r->out);
    sl_t_write_file(r->cfg, yml, strlen(yml));
}

static void rig_start(rig *r)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r->cfg, NULL};
    r->pid = sl_t_spawn(argv, r->log);
    assert_true(r->pid > 0);
}

static void rig_free(rig *r)
{
    if (r->pid) sl_t_stop(r->pid, SIGKILL, 5000);
    if (getenv("SLUICE_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", r->dir);
    else
        sl_t_rmtree(r->dir);
    free(r->dir), free(r->logs), free(r->cfg), free(r->out), free(r->log), free(r->data);
}

static char *log_path(rig *r, const char *name)
{
    return sl_t_path(r->logs, name);
}

static void append_ids(const char *path, long from, long to)
{
    assert_int_equal(sl_t_append_ids(path, from, to, " ordinary record"), 0);
}

/* Waits until want distinct ids below max_id arrived. */
static bool wait_some(const char *out, long max_id, long want, int timeout_ms)
{
    int64_t end = sl_t_now_ms() + scaled(timeout_ms);
    while (sl_t_now_ms() < end) {
        if (sl_t_count_ids(out, max_id).distinct >= want) return true;
        sl_t_sleep_ms(20);
    }
    fprintf(stderr, "waited for %ld ids, have %ld\n", want, sl_t_count_ids(out, max_id).distinct);
    return false;
}

static bool wait_ids(const char *out, long want, int timeout_ms)
{
    return wait_some(out, want, want, timeout_ms);
}

static double refused(rig *r, const char *reason)
{
    char name[160];
    if (!reason) return sl_t_metric(r->port, "sluice_input_files_refused_total");
    snprintf(name, sizeof name, "sluice_input_files_refused_total{input=\"in\",reason=\"%s\"}",
             reason);
    return sl_t_metric(r->port, name);
}

static bool wait_refused(rig *r, double want, int timeout_ms)
{
    int64_t end = sl_t_now_ms() + scaled(timeout_ms);
    while (sl_t_now_ms() < end) {
        if (refused(r, NULL) >= want) return true;
        sl_t_sleep_ms(20);
    }
    fprintf(stderr, "waited for %.0f refused files, have %.0f\n", want, refused(r, NULL));
    return false;
}

/* Refusals for one reason: others (a name swapped to a device link)
 * count in the total too, so a wait on the total alone can end early. */
static bool wait_reason(rig *r, const char *reason, double want, int timeout_ms)
{
    int64_t end = sl_t_now_ms() + scaled(timeout_ms);
    while (sl_t_now_ms() < end) {
        if (refused(r, reason) >= want) return true;
        sl_t_sleep_ms(20);
    }
    fprintf(stderr, "waited for %.0f files refused as %s, have %.0f\n", want, reason,
            refused(r, reason));
    return false;
}

static long count_in_file(const char *path, const char *needle, size_t needle_len)
{
    size_t n = 0;
    char *text = sl_t_read_file(path, &n);
    long hits = 0;
    for (size_t i = 0; text && i + needle_len <= n; i++)
        hits += memcmp(text + i, needle, needle_len) == 0;
    free(text);
    return hits;
}

/* GET /healthz: the status code (-1: no answer), *ms how long it took. */
static int healthz(int port, int64_t *ms)
{
    int64_t t0 = sl_t_now_ms();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int code = -1;
    char buf[256] = "";
    static const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
        read(fd, buf, sizeof buf - 1) > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        code = atoi(buf + 9);
    close(fd);
    *ms = sl_t_now_ms() - t0;
    return code;
}

/* One round of attacks, with suffix in the names: a link to a secret file
 * outside the tree, a link to /proc/self/status, a link to /dev/zero and a
 * FIFO. */
static void plant(rig *r, const char *secret, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "shadow%s.log", suffix);
    char *p = log_path(r, name);
    assert_int_equal(symlink(secret, p), 0);
    free(p);
    snprintf(name, sizeof name, "status%s.log", suffix);
    p = log_path(r, name);
    assert_int_equal(symlink("/proc/self/status", p), 0);
    free(p);
    snprintf(name, sizeof name, "zero%s.log", suffix);
    p = log_path(r, name);
    assert_int_equal(symlink("/dev/zero", p), 0);
    free(p);
    snprintf(name, sizeof name, "fifo%s.log", suffix);
    p = log_path(r, name);
    assert_int_equal(mkfifo(p, 0644), 0);
    free(p);
}

static void test_hostile_names_refused_once(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec", NULL);
    char *secret = sl_t_path(r.dir, "shadow");
    static const char secret_text[] = "root:TOPSECRET-HASH:19000:0:99999:7:::\n";
    sl_t_write_file(secret, secret_text, sizeof secret_text - 1);
    char *app = log_path(&r, "app.log");
    append_ids(app, 0, 1000);
    /* A link to a log inside the tree: the same file, read once. */
    char *inner = log_path(&r, "inner.log");
    assert_int_equal(symlink(app, inner), 0);
    plant(&r, secret, "");
    /* A name that would forge a line in the agent's own log. */
    char *forger = log_path(&r, "x\nts=0 level=error event=forged .log");
    assert_int_equal(mkfifo(forger, 0644), 0);
    rig_start(&r);
    assert_true(wait_ids(r.out, 1000, 20000));
    assert_true(wait_refused(&r, 5, 20000));
    /* The same attacks while it runs (found through inotify or a scan). */
    plant(&r, secret, "2");
    assert_true(wait_refused(&r, 9, 20000));
    append_ids(app, 1000, 2000);
    assert_true(wait_ids(r.out, 2000, 20000));
    /* Later files are found by later scans; by the time they are read the
     * refused names have been looked at again: still counted once. */
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "later%d.log", k);
        char *later = log_path(&r, name);
        append_ids(later, 2000 + k * 100, 2100 + k * 100);
        assert_true(wait_ids(r.out, 2100 + k * 100, 20000));
        free(later);
    }
    assert_int_equal((long)refused(&r, "symlink_outside"), 2);
    assert_int_equal((long)refused(&r, "pseudo_fs"), 2);
    assert_int_equal((long)refused(&r, "not_regular"), 5);
    assert_int_equal((long)refused(&r, NULL), 9);
    int64_t took_ms;
    assert_int_equal(healthz(r.port, &took_ms), 200);
    fprintf(stderr, "hostile names: /healthz answered in %lld ms\n", (long long)took_ms);
    assert_true(took_ms < scaled(1000));
    /* Stops on SIGTERM within shutdown_timeout (3 s) + 1 s. */
    int64_t t0 = sl_t_now_ms();
    int rc = sl_t_stop(r.pid, SIGTERM, scaled(4000));
    int64_t took = sl_t_now_ms() - t0;
    r.pid = 0;
    fprintf(stderr, "hostile names: SIGTERM took %lld ms\n", (long long)took);
    assert_int_equal(rc, 0);
    sl_t_tally t = sl_t_count_ids(r.out, 2300);
    fprintf(stderr, "hostile names: %ld distinct, %ld duplicates, %ld other lines\n", t.distinct,
            t.dups, t.other);
    assert_int_equal(t.distinct, 2300);
    assert_int_equal(t.dups, 0);
    assert_int_equal(t.other, 0);
    assert_int_equal(count_in_file(r.out, "TOPSECRET", 9), 0);
    assert_int_equal(count_in_file(r.out, "VmRSS", 5), 0);
    assert_int_equal(count_in_file(r.out, "\0", 1), 0);
    /* Logged once per name, the path quoted where needed. */
    assert_int_equal(count_in_file(r.log, "event=file_refused", 18), 9);
    static const char forged[] = "\nts=0 level=error event=forged",
                      escaped[] = "x\\nts=0 level=error event=forged .log\"";
    assert_int_equal(count_in_file(r.log, forged, sizeof forged - 1), 0);
    assert_int_equal(count_in_file(r.log, escaped, sizeof escaped - 1), 1);
    assert_int_equal(count_in_file(r.log, "reason=symlink_outside", 22), 2);
    free(secret), free(app), free(inner), free(forger);
    rig_free(&r);
}

/* The race of issue 13 (stat, then open): a name swapped thousands of times
 * between a regular file and a link to /dev/zero while the agent looks at
 * it. Whatever it opens, not one NUL byte is shipped. */
static void test_swap_race_ships_no_zeros(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-race", NULL);
    char *app = log_path(&r, "app.log"), *racer = log_path(&r, "racer.log");
    char *tmp_link = log_path(&r, "tmp.link"), *tmp_file = log_path(&r, "tmp.file");
    append_ids(app, 0, 100);
    rig_start(&r);
    assert_true(wait_ids(r.out, 100, 20000));
    int swaps = sl_t_sanitized() ? 1000 : 3000;
    for (int i = 0; i < swaps; i++) {
        if (i % 2) {
            assert_int_equal(symlink("/dev/zero", tmp_link), 0);
            assert_int_equal(rename(tmp_link, racer), 0);
        } else {
            char line[64];
            int n = snprintf(line, sizeof line, "race %d\n", i);
            assert_int_equal(sl_t_write_file(tmp_file, line, (size_t)n), 0);
            assert_int_equal(rename(tmp_file, racer), 0);
        }
        if (i % 100 == 0) sl_t_sleep_ms(1);
    }
    append_ids(app, 100, 200);
    assert_true(wait_ids(r.out, 200, 20000));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    size_t n = 0;
    char *out = sl_t_read_file(r.out, &n);
    fprintf(stderr, "swap race: %d swaps, %zu bytes shipped, refused %ld\n", swaps, n,
            count_in_file(r.log, "event=file_refused", 18));
    assert_non_null(out);
    assert_null(memchr(out, 0, n));
    assert_true(n < 1u << 20); /* ids and a few "race" lines, no stream of zeros */
    free(out), free(app), free(racer), free(tmp_link), free(tmp_file);
    rig_free(&r);
}

/* The same attacks among 1,100 logs in one folder, with rescans every
 * 100 ms: a scan of that many names takes their lstats on a helper thread
 * ahead of the input's (decision 0079), so what it acts on is a moment
 * older, and more logs than max_open_files (1,024) wait for room. The
 * guard still decides on the file it opened: nothing planted is shipped,
 * each is refused once, and a name swapped between a log and a link to
 * /dev/zero across the scans ships no NUL byte. */
static void test_hostile_names_among_many(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-many", NULL);
    char *secret = sl_t_path(r.dir, "shadow");
    static const char secret_text[] = "root:TOPSECRET-HASH:19000:0:99999:7:::\n";
    sl_t_write_file(secret, secret_text, sizeof secret_text - 1);
    enum { NLOGS = 1100, PER = 2 };
    for (int k = 0; k < NLOGS; k++) {
        char name[32];
        snprintf(name, sizeof name, "app%04d.log", k);
        char *p = log_path(&r, name);
        append_ids(p, k * PER, (k + 1) * PER);
        free(p);
    }
    plant(&r, secret, "");
    char *racer = log_path(&r, "racer.log"), *tmp_link = log_path(&r, "tmp.link"),
         *tmp_file = log_path(&r, "tmp.file");
    rig_start(&r);
    assert_true(wait_ids(r.out, NLOGS * PER, 20000));
    assert_true(wait_refused(&r, 4, 20000));
    int swaps = sl_t_sanitized() ? 300 : 1000;
    for (int i = 0; i < swaps; i++) {
        if (i % 2) {
            assert_int_equal(symlink("/dev/zero", tmp_link), 0);
            assert_int_equal(rename(tmp_link, racer), 0);
        } else {
            char line[64];
            int n = snprintf(line, sizeof line, "race %d\n", i);
            assert_int_equal(sl_t_write_file(tmp_file, line, (size_t)n), 0);
            assert_int_equal(rename(tmp_file, racer), 0);
        }
        if (i % 50 == 0) sl_t_sleep_ms(5); /* let scans (100 ms) run among the swaps */
    }
    plant(&r, secret, "2");
    assert_true(wait_refused(&r, 8, 20000));
    assert_true(wait_reason(&r, "symlink_outside", 2, 20000));
    assert_true(wait_reason(&r, "pseudo_fs", 2, 20000));
    char *last = log_path(&r, "app0000.log");
    append_ids(last, NLOGS * PER, NLOGS * PER + 100);
    assert_true(wait_ids(r.out, NLOGS * PER + 100, 20000));
    assert_int_equal((long)refused(&r, "symlink_outside"), 2);
    assert_int_equal((long)refused(&r, "pseudo_fs"), 2);
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    sl_t_tally t = sl_t_count_ids(r.out, NLOGS * PER + 100);
    fprintf(stderr, "among many: %ld distinct, %ld duplicates\n", t.distinct, t.dups);
    assert_int_equal(t.distinct, NLOGS * PER + 100);
    assert_int_equal(t.dups, 0);
    size_t n = 0;
    char *out = sl_t_read_file(r.out, &n);
    assert_non_null(out);
    assert_null(memchr(out, 0, n));
    free(out);
    assert_int_equal(count_in_file(r.out, "TOPSECRET", 9), 0);
    assert_int_equal(count_in_file(r.out, "VmRSS", 5), 0);
    free(secret), free(racer), free(tmp_link), free(tmp_file), free(last);
    rig_free(&r);
}

/* follow_symlinks: never refuses even a link inside the tree (once);
 * always follows the secret link (the operator asked for it). */
static void test_follow_symlinks_settings(void **st)
{
    (void)st;
    for (int always = 0; always < 2; always++) {
        rig r;
        rig_init(&r, "fsec-follow",
                 always ? "    follow_symlinks: always\n" : "    follow_symlinks: never\n");
        char *outside = sl_t_path(r.dir, "elsewhere.txt");
        append_ids(outside, 500, 600);
        char *app = log_path(&r, "app.log"), *link = log_path(&r, "link.log"),
             *out_link = log_path(&r, "out.log");
        append_ids(app, 0, 100);
        assert_int_equal(symlink(app, link), 0);
        assert_int_equal(symlink(outside, out_link), 0);
        rig_start(&r);
        assert_true(wait_ids(r.out, 100, 20000));
        if (always) {
            assert_true(wait_some(r.out, 600, 200, 20000));
        } else {
            assert_true(wait_refused(&r, 2, 20000));
            assert_int_equal((long)refused(&r, "symlink"), 2);
        }
        char *later = log_path(&r, "later.log");
        append_ids(later, 1000, 1100);
        assert_true(wait_some(r.out, 1100, always ? 300 : 200, 20000));
        assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
        r.pid = 0;
        sl_t_tally t = sl_t_count_ids(r.out, 1100);
        fprintf(stderr, "follow_symlinks %s: %ld distinct, %ld duplicates\n",
                always ? "always" : "never", t.distinct, t.dups);
        assert_int_equal(t.distinct, always ? 300 : 200);
        assert_int_equal(t.dups, 0);
        free(outside), free(app), free(link), free(out_link), free(later);
        rig_free(&r);
    }
}

static bool log_has(const char *path, const char *needle)
{
    return count_in_file(path, needle, strlen(needle)) > 0;
}

/* A second `sluice run` on the same data_dir (no spool configured) exits 2
 * naming the first one's PID; the first keeps shipping. */
static void test_one_agent_per_data_dir(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-lock", NULL);
    char *app = log_path(&r, "app.log");
    append_ids(app, 0, 100);
    rig_start(&r);
    assert_true(wait_ids(r.out, 100, 20000));
    char *second_log = sl_t_path(r.dir, "second.log");
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, NULL};
    pid_t second = sl_t_spawn(argv, second_log);
    assert_true(second > 0);
    assert_int_equal(sl_t_wait(second, scaled(10000)), 2);
    char want[64];
    snprintf(want, sizeof want, "(pid %d,", (int)r.pid);
    char *text = sl_t_read_file(second_log, NULL);
    fprintf(stderr, "second agent: %s", text ? text : "(no output)\n");
    free(text);
    assert_true(log_has(second_log, want));
    assert_true(log_has(second_log, "in use by another sluice"));
    /* The lock file names the holder too. */
    char *lock = sl_t_path(r.data, "lock");
    char *pid = sl_t_read_file(lock, NULL);
    assert_non_null(pid);
    assert_int_equal(atol(pid), (long)r.pid);
    free(pid);
    /* --dry-run takes no lock: it runs beside the agent. */
    char *dry_log = sl_t_path(r.dir, "dry.log");
    char *dry_argv[] = {(char *)sl_t_bin(), "run", "--dry-run", "-c", r.cfg, NULL};
    pid_t dry = sl_t_spawn(dry_argv, dry_log);
    assert_true(dry > 0);
    bool started = false, printed = false;
    for (int64_t end = sl_t_now_ms() + scaled(20000); !started && sl_t_now_ms() < end;) {
        started = log_has(dry_log, "event=agent_started");
        if (!started) sl_t_sleep_ms(20);
    }
    assert_true(started);
    append_ids(app, 100, 200);
    for (int64_t end = sl_t_now_ms() + scaled(20000); !printed && sl_t_now_ms() < end;) {
        printed = log_has(dry_log, "id=00000199");
        if (!printed) sl_t_sleep_ms(20);
    }
    assert_true(printed);
    assert_int_equal(sl_t_stop(dry, SIGTERM, scaled(4000)), 0);
    assert_false(log_has(dry_log, "in use by another sluice"));
    free(dry_log);
    assert_true(wait_ids(r.out, 200, 20000));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    /* Once it is gone, the next one runs (the lock is released). */
    rig_start(&r);
    append_ids(app, 200, 300);
    assert_true(wait_ids(r.out, 300, 20000));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    assert_int_equal(sl_t_count_ids(r.out, 300).dups, 0);
    free(app), free(second_log), free(lock);
    rig_free(&r);
}

/* Refused: a data_dir others can write to, one owned by someone else, and
 * a link inside it. Each with a message naming the fix; fixed, it runs. */
static void test_data_dir_refused(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-perm", NULL);
    char *app = log_path(&r, "app.log");
    append_ids(app, 0, 100);
    assert_int_equal(mkdir(r.data, 0700), 0);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, NULL};
    struct {
        const char *what, *message;
    } cases[] = {{"world-writable", "chmod 700"},
                 {"group-writable", "chmod 700"},
                 {"foreign owner", "owned by uid 65534"},
                 {"linked checkpoints", "does not follow links inside data_dir"},
                 {"linked spool", "does not follow links inside data_dir"}};
    char *ckpt = sl_t_path(r.data, "checkpoints"), *spool = sl_t_path(r.data, "spool");
    char *elsewhere = sl_t_path(r.dir, "elsewhere");
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        if (k == 0) assert_int_equal(chmod(r.data, 0777), 0);
        if (k == 1) assert_int_equal(chmod(r.data, 0770), 0);
        if (k == 2) {
            assert_int_equal(chmod(r.data, 0700), 0);
            assert_int_equal(chown(r.data, 65534, 65534), 0);
        }
        if (k == 3) {
            assert_int_equal(chown(r.data, getuid(), getgid()), 0);
            assert_int_equal(symlink(elsewhere, ckpt), 0);
        }
        if (k == 4) {
            assert_int_equal(unlink(ckpt), 0);
            assert_int_equal(mkdir(spool, 0700), 0);
            char *sink = sl_t_path(spool, "out");
            assert_int_equal(symlink(elsewhere, sink), 0);
            free(sink);
        }
        sl_t_write_file(r.log, "", 0);
        pid_t pid = sl_t_spawn(argv, r.log);
        int rc = sl_t_wait(pid, scaled(10000));
        char *text = sl_t_read_file(r.log, NULL);
        fprintf(stderr, "%s: exit %d: %s", cases[k].what, rc, text ? text : "\n");
        free(text);
        assert_int_equal(rc, 1);
        assert_true(log_has(r.log, cases[k].message));
    }
    /* Nothing was read, nothing written where the link pointed. */
    assert_int_equal(sl_t_count_lines(r.out) > 0, 0);
    char *planted = sl_t_path(elsewhere, "in.json");
    assert_int_equal(access(planted, F_OK), -1);
    /* Fixed as the message says, it runs. */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf %s/out", spool);
    assert_int_equal(system(cmd), 0);
    rig_start(&r);
    assert_true(wait_ids(r.out, 100, 20000));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    free(app), free(ckpt), free(spool), free(elsewhere), free(planted);
    rig_free(&r);
}

/* The file sink's output, in a folder others could write (decision 0065):
 * a link planted at its name to a file root can read, a FIFO (which
 * blocked the sink's write, and so SIGTERM, forever), another user's file
 * put there first (root would append what it reads to a file that user
 * reads), a hard link. Each: exit 1 at start naming why, nothing written
 * through it; removed, the agent runs. */
static void test_file_sink_output_planted(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-out", NULL);
    char *app = log_path(&r, "app.log");
    append_ids(app, 0, 100);
    char *secret = sl_t_path(r.dir, "secret");
    sl_t_write_file(secret, "SECRET\n", 7);
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", r.cfg, NULL};
    struct {
        const char *what, *message;
    } cases[] = {{"link", "is a symbolic link"},
                 {"fifo", "is a FIFO"},
                 {"foreign file", "owned by another user"},
                 {"hard link", "has other names (hard links)"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        unlink(r.out);
        if (k == 0) assert_int_equal(symlink(secret, r.out), 0);
        if (k == 1) { /* made by root, but any user can write it */
            assert_int_equal(mkfifo(r.out, 0600), 0);
            assert_int_equal(chmod(r.out, 0666), 0);
        }
        if (k == 2) {
            if (geteuid() != 0) continue; /* chown needs root */
            sl_t_write_file(r.out, "", 0);
            assert_int_equal(chown(r.out, 65534, 65534), 0);
        }
        if (k == 3) assert_int_equal(link(secret, r.out), 0);
        sl_t_write_file(r.log, "", 0);
        pid_t pid = sl_t_spawn(argv, r.log);
        int rc = sl_t_wait(pid, scaled(10000));
        char *text = sl_t_read_file(r.log, NULL);
        fprintf(stderr, "%s: exit %d: %s", cases[k].what, rc, text ? text : "\n");
        free(text);
        assert_int_equal(rc, 1);
        assert_true(log_has(r.log, cases[k].message));
        size_t n = 0;
        char *kept = sl_t_read_file(secret, &n);
        assert_int_equal(n, 7);
        free(kept);
    }
    unlink(r.out);
    rig_start(&r);
    assert_true(wait_ids(r.out, 100, 20000));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(4000)), 0);
    r.pid = 0;
    free(app), free(secret);
    rig_free(&r);
}

/* A FIFO named like a spool segment held the start forever (the scan's
 * open waited for a writer) and with it SIGTERM; a link named like one was
 * followed. Only root or the agent's user can put them in the spool's
 * folder (0015), so this is defence in depth, as for checkpoints (0059):
 * neither is followed nor waited on, each is logged, the agent starts and
 * ships, and `sluice spool ls` ends with an error instead of hanging
 * (decision 0065). */
static void test_spool_segment_not_a_file(void **st)
{
    (void)st;
    rig r;
    rig_init(&r, "fsec-seg", NULL);
    char *app = log_path(&r, "app.log");
    append_ids(app, 0, 100);
    char *spool = sl_t_path(r.data, "spool"), *sink = sl_t_path(r.data, "spool/out");
    assert_int_equal(mkdir(r.data, 0700), 0);
    assert_int_equal(mkdir(spool, 0700), 0);
    assert_int_equal(mkdir(sink, 0700), 0);
    char *fifo = sl_t_path(sink, "00000000000000000001.seg");
    char *link = sl_t_path(sink, "00000000000000000002.seg");
    char *secret = sl_t_path(r.dir, "secret");
    sl_t_write_file(secret, "SECRET\n", 7);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink(secret, link), 0);
    rig_start(&r);
    assert_true(sl_t_wait_log(r.log, "event=agent_started", 1, scaled(10000)));
    assert_true(wait_ids(r.out, 100, 20000));
    assert_true(log_has(r.log, "event=spool_segment_unreadable"));
    assert_int_equal(sl_t_stop(r.pid, SIGTERM, scaled(10000)), 0);
    r.pid = 0;
    size_t n = 0;
    char *kept = sl_t_read_file(secret, &n);
    assert_int_equal(n, 7);
    free(kept);
    /* The inspection tool: an error naming the segment, in bounded time. */
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0); /* left for a human, as it was */
    assert_true(S_ISFIFO(sb.st_mode));
    char *ls_log = sl_t_path(r.dir, "ls.log");
    char *argv[] = {(char *)sl_t_bin(), "spool", "ls", "-c", r.cfg, NULL};
    pid_t pid = sl_t_spawn(argv, ls_log);
    int rc = sl_t_wait(pid, scaled(10000));
    assert_int_not_equal(rc, -1);
    assert_int_not_equal(rc, 0);
    assert_true(log_has(ls_log, "not a regular file"));
    free(ls_log);
    free(app), free(spool), free(sink), free(fifo), free(link), free(secret);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_names_refused_once),
        cmocka_unit_test(test_follow_symlinks_settings),
        cmocka_unit_test(test_swap_race_ships_no_zeros),
        cmocka_unit_test(test_hostile_names_among_many),
        cmocka_unit_test(test_one_agent_per_data_dir),
        cmocka_unit_test(test_data_dir_refused),
        cmocka_unit_test(test_file_sink_output_planted),
        cmocka_unit_test(test_spool_segment_not_a_file),
    };
    if (getenv("SLUICE_TEST_FILTER")) cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return sl_t_run_tests(tests);
}
