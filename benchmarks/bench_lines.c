/* Raw line splitting from the page cache: the real file input
 * (collector/file.c: large refcounted chunks, memchr per line, records as
 * slices, batches) run in-process on one file, with an emit callback that
 * counts records and acknowledges each batch at once; against `wc -l` on
 * the same file, in the same run. Medians of several runs; the ratio is
 * ours / wc's throughput (goal >= 1.0).
 *
 *   bench_lines [MB (default 512)] [runs (default 5)] [file]
 *
 * Without a file, a JSON corpus of MB megabytes is written with `gen` (found
 * next to this binary) into $TMPDIR and removed afterwards. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collector/file.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/plugin.h"

extern char **environ;

#define MAX_RUNS 21

typedef struct counter {
    uint64_t records, bytes, target;
    double t_end;
    atomic_bool stop;
} counter;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Every line ends in '\n' in the corpus, so line bytes + one newline per
 * record add up to the file size once all of it has been split. */
static int count_emit(void *arg, sl_batch *b)
{
    counter *c = arg;
    c->records += b->nrecords;
    c->bytes += b->bytes + b->nrecords;
    sl_batch_done(b);
    if (c->bytes >= c->target) {
        c->t_end = now_s();
        atomic_store(&c->stop, true);
    }
    return SL_OK;
}

static void *run_thread(void *arg)
{
    void **a = arg;
    const sl_input_ops *ops = a[0];
    ops->run(a[1]);
    return NULL;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* One pass of the real file input over path; returns seconds, 0 on error. */
static double run_ours(const char *path, uint64_t size, uint64_t *records)
{
    /* The input's default read size unless $SLUICE_BENCH_READ_CHUNK says. */
    const char *read_chunk = getenv("SLUICE_BENCH_READ_CHUNK");
    char chunk_line[128] = "";
    if (read_chunk) snprintf(chunk_line, sizeof chunk_line, "    read_chunk: %s\n", read_chunk);
    /* More input keys, one line, e.g. "validate_utf8: true". */
    const char *extra = getenv("SLUICE_BENCH_INPUT_EXTRA");
    if (extra) {
        size_t used = strlen(chunk_line);
        snprintf(chunk_line + used, sizeof chunk_line - used, "    %s\n", extra);
    }
    char cfgtext[4096];
    int n = snprintf(cfgtext, sizeof cfgtext,
                     "inputs:\n  - name: bench\n    type: file\n    paths: [\"%s\"]\n"
                     "    start_at: beginning\n%s",
                     path, chunk_line);
    sl_cfg *cfg = sl_cfg_new();
    double secs = 0;
    char dir[] = "/tmp/bench_lines.XXXXXX";
    const char *tmp = getenv("TMPDIR");
    char dirbuf[512];
    snprintf(dirbuf, sizeof dirbuf, "%s/bench_lines.XXXXXX", tmp ? tmp : "/tmp");
    char *data_dir = mkdtemp(tmp ? dirbuf : dir);
    if (!cfg || !data_dir || sl_cfg_load_string(cfg, "bench", cfgtext, (size_t)n) != 0) {
        fprintf(stderr, "bench_lines: config/tempdir failed\n");
        sl_cfg_free(cfg);
        return 0;
    }
    const sl_cfg_node *inputs = sl_cfg_get(sl_cfg_root(cfg), "inputs");
    counter c = {.target = size};
    sl_input_ctx ctx = {.name = "bench",
                        .cfg = cfg,
                        .node = inputs->items[0],
                        .data_dir = data_dir,
                        .emit = count_emit,
                        .emit_arg = &c,
                        .stop = &c.stop};
    void *state = NULL;
    sl_err err;
    if (sl_file_input_ops.create(&ctx, &state, &err) != SL_OK) {
        fprintf(stderr, "bench_lines: create: %s\n", err.msg);
        for (size_t i = 0; i < sl_cfg_nerrors(cfg); i++)
            fprintf(stderr, "  %s\n", sl_cfg_error_at(cfg, i));
    } else {
        pthread_t th;
        void *args[2] = {(void *)&sl_file_input_ops, state};
        double t0 = now_s();
        if (pthread_create(&th, NULL, run_thread, args) == 0) {
            /* Safety net: a stuck input must not hang the benchmark. */
            while (!atomic_load(&c.stop) && now_s() - t0 < 600) usleep(2000);
            atomic_store(&c.stop, true);
            pthread_join(th, NULL);
            if (c.bytes >= size)
                secs = c.t_end - t0;
            else
                fprintf(stderr, "bench_lines: input stopped at %" PRIu64 " of %" PRIu64 " bytes\n",
                        c.bytes, size);
        }
        sl_file_input_ops.destroy(state);
    }
    *records = c.records;
    sl_cfg_free(cfg);
    nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return secs;
}

/* `wc -l path` as a child process, timed from spawn to exit; 0 on error. */
static double run_wc(const char *path, uint64_t *lines)
{
    int pfd[2];
    if (pipe(pfd) != 0) return 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    char *argv[] = {"wc", "-l", (char *)path, NULL};
    pid_t pid;
    double t0 = now_s();
    int rc = posix_spawnp(&pid, "wc", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return 0;
    }
    char out[256];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out - 1 && (r = read(pfd[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    double secs = now_s() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 0;
    *lines = strtoull(out, NULL, 10);
    return secs;
}

static int make_corpus(const char *path, double mb)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 8);
    if (n <= 0) return -1;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return -1;
    strcpy(slash + 1, "gen");
    char size[64];
    snprintf(size, sizeof size, "%.0f", mb * 1024 * 1024);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    char *argv[] = {self, "--kind", "json", "--bytes", size, "--seed", "1", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (rc != 0) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    double mb = argc > 1 ? atof(argv[1]) : 512;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (mb <= 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: %s [MB] [runs (1-%d)] [file]\n", argv[0], MAX_RUNS);
        return 2;
    }
    sl_log_set_level(SL_LOG_WARN);
    char path[4096];
    bool own = argc <= 3;
    if (own) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/bench_lines.%d.json", tmp ? tmp : "/tmp", (int)getpid());
        if (make_corpus(path, mb) != 0) {
            fprintf(stderr, "bench_lines: cannot generate %s with gen\n", path);
            unlink(path);
            return 1;
        }
    } else {
        snprintf(path, sizeof path, "%s", argv[3]);
    }
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "bench_lines: %s: empty or missing\n", path);
        return 1;
    }
    uint64_t size = (uint64_t)st.st_size;
    double t_ours[MAX_RUNS], t_wc[MAX_RUNS];
    uint64_t recs = 0, lines = 0;
    int fail = 0;
    run_wc(path, &lines); /* warm the page cache */
    for (int r = 0; r < runs && !fail; r++) {
        t_wc[r] = run_wc(path, &lines);
        t_ours[r] = run_ours(path, size, &recs);
        if (t_wc[r] <= 0 || t_ours[r] <= 0)
            fail = 1;
        else if (recs != lines) {
            fprintf(stderr, "bench_lines: %" PRIu64 " records but wc -l says %" PRIu64 "\n", recs,
                    lines);
            fail = 1;
        }
    }
    if (own) unlink(path);
    if (fail) return 1;
    double mo = median(t_ours, runs), mw = median(t_wc, runs);
    double gb = (double)size / 1e9;
    printf("bench_lines: %.1f MB, %" PRIu64 " lines, page cache, medians of %d runs\n",
           (double)size / 1e6, lines, runs);
    printf("  %-28s %8.2f GB/s %10.1f Mlines/s\n", "file input (split+batch)", gb / mo,
           (double)recs / mo / 1e6);
    printf("  %-28s %8.2f GB/s %10.1f Mlines/s\n", "wc -l (same file)", gb / mw,
           (double)lines / mw / 1e6);
    printf("  ratio file input / wc -l: %.2fx (goal >= 1.0x)\n", mw / mo);
    return 0;
}
