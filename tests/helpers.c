#include "tests/helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every folder a test program made and has not removed yet, with the
 * number of the test that made it (0: made outside any test). A failed
 * assertion jumps out of its test before the test's own cleanup:
 * sl_t_run_group removes what the test left as soon as it ends, and what
 * is left at exit is removed then, by the process that made it (a forked
 * child that calls exit() must not remove its parent's folders).
 * SLUICE_KEEP_TMP keeps them for a human. */
enum { MADE_DIRS_MAX = 256 };
static char *made_dirs[MADE_DIRS_MAX];
static unsigned made_in_test[MADE_DIRS_MAX];
static pid_t made_by;
/* The test running now, counted from 1 (0: none); see sl_t_test_begins. */
static unsigned test_number;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

/* Removes the folders test `only` made (0: every folder). */
static void remove_made_dirs_of(unsigned only)
{
    if (getpid() != made_by) return;
    bool keep = getenv("SLUICE_KEEP_TMP") != NULL;
    for (size_t i = 0; i < MADE_DIRS_MAX; i++) {
        if (!made_dirs[i] || (only && made_in_test[i] != only)) continue;
        if (keep)
            fprintf(stderr, "kept %s\n", made_dirs[i]);
        else
            nftw(made_dirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(made_dirs[i]);
        made_dirs[i] = NULL;
    }
}

static void remove_made_dirs(void)
{
    remove_made_dirs_of(0);
}

static void note_made_dir(const char *path)
{
    if (made_by != getpid()) {
        /* First folder of this process (or of a forked child). */
        for (size_t i = 0; i < MADE_DIRS_MAX; i++) made_dirs[i] = NULL;
        if (made_by == 0) atexit(remove_made_dirs);
        made_by = getpid();
    }
    for (size_t i = 0; i < MADE_DIRS_MAX; i++)
        if (!made_dirs[i]) {
            made_dirs[i] = strdup(path);
            made_in_test[i] = test_number;
            return;
        }
    fprintf(stderr, "more than %d temporary folders: %s is not removed on failure\n", MADE_DIRS_MAX,
            path);
}

static void forget_made_dir(const char *path)
{
    if (made_by != getpid()) return;
    for (size_t i = 0; i < MADE_DIRS_MAX; i++)
        if (made_dirs[i] && strcmp(made_dirs[i], path) == 0) {
            free(made_dirs[i]);
            made_dirs[i] = NULL;
        }
}

/* Every process sl_t_spawn started, with the test that started it, until
 * sl_t_run_group has seen it end. */
enum { SPAWNED_MAX = 256 };
static pid_t spawned[SPAWNED_MAX];
static unsigned spawned_in_test[SPAWNED_MAX];

static void note_spawned(pid_t pid)
{
    for (size_t i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] <= 0) {
            spawned[i] = pid;
            spawned_in_test[i] = test_number;
            return;
        }
    fprintf(stderr, "more than %d children: %d is not stopped after its test\n", SPAWNED_MAX,
            (int)pid);
}

/* SIGKILLs and reaps what test `test` started and left running. waitpid
 * with WNOHANG first: a pid the test already reaped is not its child any
 * more (ECHILD) and may belong to someone else by now, so it is never
 * signalled; an unreaped child's pid cannot have been reused. */
static void stop_spawned_of(unsigned test, const char *name)
{
    for (size_t i = 0; i < SPAWNED_MAX; i++) {
        if (spawned[i] <= 0 || spawned_in_test[i] != test) continue;
        pid_t pid = spawned[i];
        spawned[i] = 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) != 0) continue;
        fprintf(stderr, "%s left process %d running: killed\n", name, (int)pid);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void sl_t_test_begins(unsigned number)
{
    test_number = number;
}

void sl_t_test_ended(const char *name)
{
    stop_spawned_of(test_number, name);
    remove_made_dirs_of(test_number);
    test_number = 0;
}

char *sl_t_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    if (!path) return NULL;
    snprintf(path, 4096, "%s/sluice-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    note_made_dir(path);
    return path;
}

void sl_t_rmtree(const char *path)
{
    if (!path) return;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    forget_made_dir(path);
}

char *sl_t_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int write_mode(const char *path, const void *data, size_t n, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    if (fd < 0) return -1;
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            close(fd);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return close(fd);
}

int sl_t_write_file(const char *path, const void *data, size_t n)
{
    return write_mode(path, data, n, O_TRUNC);
}

int sl_t_append_file(const char *path, const void *data, size_t n)
{
    return write_mode(path, data, n, O_APPEND);
}

char *sl_t_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    for (size_t r; buf && (r = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += r;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = '\0';
    if (n) *n = len;
    return buf;
}

long sl_t_count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[65536];
    long lines = 0;
    for (ssize_t r; (r = read(fd, buf, sizeof buf)) > 0;)
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + r - p))); p++) lines++;
    close(fd);
    return lines;
}

const char *sl_t_bin(void)
{
    const char *b = getenv("SLUICE_BIN");
    return b && *b ? b : "./build/sluice";
}

const char *sl_t_src(void)
{
    const char *s = getenv("SLUICE_SRC");
    return s && *s ? s : ".";
}

const char *sl_t_testdata(const char *sub)
{
    static _Thread_local char path[4096];
    const char *base = getenv("SLUICE_TESTDATA");
    if (!base || !*base) {
        snprintf(path, sizeof path, "%s/../shared/testdata", sl_t_src());
        base = path;
    }
    char full[4096];
    if (snprintf(full, sizeof full, "%s/%s", base, sub) >= (int)sizeof full) return NULL;
    struct stat st;
    if (stat(full, &st) != 0) {
        fprintf(stderr, "testdata %s is absent: skipping (expected at ../shared/testdata)\n", full);
        return NULL;
    }
    memcpy(path, full, sizeof path);
    return path;
}

pid_t sl_t_spawn(char *const argv[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid > 0) note_spawned(pid);
    if (pid != 0) return pid;
    /* The agent dies with its test, even when the test is killed or fails
     * an assertion without stopping it (a timeout under load). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(argv[0], argv);
    _exit(127);
}

int64_t sl_t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sl_t_wait(pid_t pid, int timeout_ms)
{
    int64_t end = sl_t_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
        if (r < 0) return -1;
        if (sl_t_now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sl_t_sleep_ms(5);
    }
}

int sl_t_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    return sl_t_wait(pid, timeout_ms);
}

void sl_t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool sl_t_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    /* Elapsed time, not a count of sleeps: a slow predicate (large files
     * under the sanitizers) must not stretch the limit. */
    int64_t end = sl_t_now_ms() + timeout_ms;
    for (;;) {
        if (pred(arg)) return true;
        if (sl_t_now_ms() >= end) return false;
        sl_t_sleep_ms(10);
    }
}

typedef struct log_goal {
    const char *path, *needle;
    int count;
} log_goal;

static bool log_has(void *arg)
{
    log_goal *g = arg;
    char *text = sl_t_read_file(g->path, NULL);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, g->needle)); p++) n++;
    free(text);
    return n >= g->count;
}

bool sl_t_wait_log(const char *path, const char *needle, int count, int timeout_ms)
{
    log_goal g = {path, needle, count};
    return sl_t_wait_until(log_has, &g, timeout_ms);
}

int sl_t_scaled_ms(int ms)
{
    return sl_t_sanitized() ? ms * 4 : ms;
}

typedef struct lines_goal {
    const char *path;
    long n;
} lines_goal;

static bool has_lines(void *arg)
{
    lines_goal *g = arg;
    return sl_t_count_lines(g->path) >= g->n;
}

bool sl_t_wait_lines(const char *path, long n, int timeout_ms)
{
    lines_goal g = {path, n};
    return sl_t_wait_until(has_lines, &g, timeout_ms);
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* A port below the kernel's ephemeral range: between our check and the
 * agent's bind, no outgoing connection (of this suite or of another one
 * running beside it) can be given it, as a port the kernel picked could.
 * Random per call, so two suites rarely try the same one; checked free. */
int sl_t_free_port(void)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int a, b;
        if (fscanf(f, "%d %d", &a, &b) == 2) lo = a;
        fclose(f);
    }
    static _Thread_local uint64_t x;
    if (!x) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ull;
    }
    const int first = 10000;
    for (int attempt = 0; lo - first > 1000 && attempt < 200; attempt++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int port = first + (int)(x % (uint64_t)(lo - first));
        if (port_free(port)) return port;
    }
    /* No room below the ephemeral range: let the kernel pick one. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

bool sl_t_sanitized(void)
{
    const char *s = getenv("SLUICE_SANITIZED");
    return s && *s == '1';
}

bool sl_t_long(void)
{
    const char *s = getenv("SLUICE_TEST_LONG");
    return s && *s == '1';
}

long sl_t_parse_id(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    if ((size_t)(end - p) <= n || memcmp(p, prefix, n) != 0) return -1;
    p += n;
    long v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 18; p++, digits++) v = v * 10 + (*p - '0');
    return digits ? v : -1;
}

/* Sum of the samples of a metric scraped from 127.0.0.1:port/metrics: name
 * alone matches every label set; name{labels} one of them. -1 when the
 * endpoint does not answer. */
double sl_t_metric(int port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t k;
    while (buf && n < cap && (k = read(fd, buf + n, cap - n)) > 0) n += (size_t)k;
    close(fd);
    if (!buf || n == 0) {
        free(buf);
        return -1;
    }
    buf[n] = 0;
    double sum = 0;
    size_t nl = strlen(name);
    for (char *p = buf; p && *p;) {
        char *eol = strchr(p, '\n');
        if (!strncmp(p, name, nl) && (p[nl] == '{' || p[nl] == ' ')) {
            char *sp = eol ? memrchr(p, ' ', (size_t)(eol - p)) : strrchr(p, ' ');
            if (sp) sum += strtod(sp + 1, NULL);
        }
        p = eol ? eol + 1 : NULL;
    }
    free(buf);
    return sum;
}

/* Value of one exact series line `series V` in a scraped /metrics text (the
 * full series: name and labels as printed); -1 when absent. */
double sl_t_series_value(const char *text, const char *series)
{
    size_t sl = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') return strtod(p + sl + 1, NULL);
    return -1;
}

int sl_t_append_ids(const char *path, long from, long to, const char *suffix)
{
    char line[256];
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    int rc = 0;
    for (long i = from; rc == 0 && i < to; i++) {
        int k = snprintf(line, sizeof line, "id=%08ld%s\n", i, suffix);
        if (k < 0 || (size_t)k >= sizeof line) {
            rc = -1;
            break;
        }
        memcpy(buf + n, line, (size_t)k);
        n += (size_t)k;
        if (n > cap - sizeof line) {
            rc = sl_t_append_file(path, buf, n);
            n = 0;
        }
    }
    if (rc == 0 && n) rc = sl_t_append_file(path, buf, n);
    free(buf);
    return rc;
}

/* anywhere: the id may stand inside the line (a JSON line), not only at
 * its start. */
static sl_t_tally count_ids(const char *path, long max_id, bool anywhere)
{
    sl_t_tally t = {0};
    size_t n = 0;
    char *data = sl_t_read_file(path, &n);
    unsigned char *seen = calloc((size_t)max_id + 1, 1);
    for (char *p = data; p && seen && p < data + n;) {
        char *nl = memchr(p, '\n', (size_t)(data + n - p));
        if (!nl) break;
        char *at = anywhere ? memmem(p, (size_t)(nl - p), "id=", 3) : p;
        long id = at ? sl_t_parse_id(at, nl, "id=") : -1;
        if (id >= 0 && id < max_id) {
            t.dups += seen[id];
            t.distinct += !seen[id];
            seen[id] = 1;
        } else {
            t.other++;
        }
        p = nl + 1;
    }
    free(seen);
    free(data);
    return t;
}

sl_t_tally sl_t_count_ids(const char *path, long max_id)
{
    return count_ids(path, max_id, false);
}

sl_t_tally sl_t_count_ids_within(const char *path, long max_id)
{
    return count_ids(path, max_id, true);
}

long sl_t_peak_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = sl_t_read_file(path, NULL);
    const char *p = text ? strstr(text, "VmHWM:") : NULL;
    long kib = p ? strtol(p + 6, NULL, 10) : -1;
    free(text);
    return kib;
}

long sl_t_open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n - 2; /* . and .. */
}

int sl_t_http_get(int port, const char *path, char **body)
{
    if (body) *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[512];
    int rl =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    if (rl < 0 || (size_t)rl >= sizeof req || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    /* One deadline for the whole answer: a stalled server cannot stretch it. */
    int64_t end = sl_t_now_ms() + 5000;
    for (int64_t left; buf && (left = end - sl_t_now_ms()) > 0;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) break;
        if (n == cap) {
            char *grown = realloc(buf, 2 * cap + 1);
            if (!grown) break;
            buf = grown, cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) return -1;
    buf[n] = '\0';
    int status = -1;
    if (n > 12 && memcmp(buf, "HTTP/1.", 7) == 0) status = atoi(buf + 9);
    char *b = strstr(buf, "\r\n\r\n");
    if (body) *body = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

int sl_t_append_seq(const char *path, uint32_t *seq, uint32_t n, const char *suffix)
{
    size_t cap = (size_t)n * (strlen(suffix) + 24) + 1, o = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (uint32_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "seq=%06u%s\n", (*seq)++, suffix);
    int rc = sl_t_append_file(path, buf, o);
    free(buf);
    return rc;
}

bool sl_t_file_has(const char *path, const char *needle)
{
    char *text = sl_t_read_file(path, NULL);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

long sl_t_file_count(const char *path, const char *needle)
{
    char *text = sl_t_read_file(path, NULL);
    long n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(text);
    return n;
}

/* The one agent a test program runs at a time (0: none). */
static pid_t live_agent;

static void kill_live_agent(void)
{
    if (live_agent > 0) kill(live_agent, SIGKILL);
}

void sl_t_kill_at_exit(pid_t pid)
{
    static bool registered;
    if (!registered) registered = atexit(kill_live_agent) == 0;
    live_agent = pid;
}
