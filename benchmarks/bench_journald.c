/* Journal read throughput: the journald input (sd-journal, fields copied
 * into chunks, records, batches acknowledged at once) against
 * `journalctl --directory DIR -o export > /dev/null`, on the same folder of
 * journal files, in the same run; medians of several runs.
 *
 *   bench_journald [entries (default 1000000)] [runs (default 5)] [dir] [stage]
 *
 * Without dir, a folder of `entries` journald-like entries (about 20 fields
 * each) is generated with systemd-journal-remote into a temporary directory
 * and removed afterwards; pass a dir to reuse one (generated when empty).
 * `stage` leaves journalctl out (benchmarks/journald_loki.py interleaves
 * this stage with the agent end to end). Besides wall time, the CPU time of
 * the input's thread is given per entry: on a loaded machine it moves far
 * less than entries/s. */
#include <fcntl.h>
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

#include "collector/journald.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "tests/fixtures/journal/jexport.h"

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int generate(const char *dir, long n)
{
    static const char *const units[] = {"kubelet.service", "containerd.service", "sshd.service",
                                        "systemd-logind.service", "cron.service"};
    static const char *const comms[] = {"kubelet", "containerd", "sshd", "systemd-logind", "cron"};
    char path[4200];
    long per_file = n / 4 + 1; /* several files, as after rotations */
    /* Entries 100 us apart, the newest a moment ago, as on a live node (a
     * folder reused by benchmarks/journald_loki.py feeds the Loki sink too,
     * which would clamp and label entries dated years back). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t rt0 =
        (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000 - (uint64_t)n * 100;
    for (long i = 0; i < n;) {
        snprintf(path, sizeof path, "%s/system-%ld.journal", dir, i / per_file);
        jx_writer *w = jx_open(path);
        if (!w) return -1;
        for (long k = 0; k < per_file && i < n; k++, i++) {
            int u = (int)(i % 5);
            jx_begin(w, rt0 + (uint64_t)i * 100, 5000000 + (uint64_t)i * 100, NULL);
            jx_fieldf(w, "MESSAGE",
                      "I1114 22:13:20.%06ld  %ld pod_workers.go:965] \"Error syncing pod, "
                      "skipping\" err=\"failed to StartContainer\" pod=\"ns-%ld/app-%ld\" seq=%ld",
                      i % 1000000, 1000 + i % 97, i % 13, i % 211, i);
            jx_fieldf(w, "PRIORITY", "%ld", 3 + i % 4);
            jx_field(w, "_SYSTEMD_UNIT", units[u], strlen(units[u]));
            jx_field(w, "SYSLOG_IDENTIFIER", comms[u], strlen(comms[u]));
            jx_field(w, "_COMM", comms[u], strlen(comms[u]));
            jx_fieldf(w, "_EXE", "/usr/bin/%s", comms[u]);
            jx_fieldf(w, "_CMDLINE", "/usr/bin/%s --config=/etc/%s/config.yaml --v=2", comms[u],
                      comms[u]);
            jx_fieldf(w, "_PID", "%d", 1000 + u * 37);
            jx_field(w, "_UID", "0", 1);
            jx_field(w, "_GID", "0", 1);
            jx_field(w, "_HOSTNAME", "node-017.lab.example", 20);
            jx_field(w, "_TRANSPORT", "stdout", 6);
            jx_field(w, "SYSLOG_FACILITY", "3", 1);
            jx_field(w, "_CAP_EFFECTIVE", "1ffffffffff", 11);
            jx_fieldf(w, "_SYSTEMD_CGROUP", "/system.slice/%s", units[u]);
            jx_field(w, "_SYSTEMD_SLICE", "system.slice", 12);
            jx_fieldf(w, "_SYSTEMD_INVOCATION_ID", "%032x", u * 7919);
            jx_field(w, "_MACHINE_ID", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", 32);
            jx_field(w, "_STREAM_ID", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", 32);
            jx_end(w);
        }
        if (jx_close(w) != 0) return -1;
    }
    return 0;
}

static double run_journalctl(const char *dir, long *bytes)
{
    char arg[4200];
    snprintf(arg, sizeof arg, "--directory=%s", dir);
    char *argv[] = {"journalctl", arg, "-o", "export", "--no-pager", NULL};
    int p[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (bytes) {
        if (pipe(p) != 0) return -1;
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclose(&fa, p[0]);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    }
    double t0 = now_s();
    pid_t pid;
    int rc = posix_spawnp(&pid, "journalctl", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    if (bytes) {
        close(p[1]);
        static char buf[1 << 16];
        ssize_t r;
        *bytes = 0;
        while ((r = read(p[0], buf, sizeof buf)) > 0) *bytes += r;
        close(p[0]);
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now_s() - t0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

typedef struct counter {
    atomic_long records;
} counter;

static int emit(void *arg, sl_batch *b)
{
    counter *c = arg;
    atomic_fetch_add(&c->records, (long)b->nrecords);
    sl_batch_done(b);
    return 0;
}

typedef struct run_arg {
    void *state;
    double cpu_s; /* of the input's thread, at its end */
} run_arg;

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run_thread(void *arg)
{
    run_arg *ra = arg;
    sl_journald_input_ops.run(ra->state);
    ra->cpu_s = thread_cpu_s();
    return NULL;
}

static double run_sluice(const char *dir, const char *data_dir, long n, int64_t *bytes,
                         double *cpu_s)
{
    char yml[8192];
    snprintf(yml, sizeof yml, "inputs:\n  - name: bench\n    type: journald\n    directory: %s\n",
             dir);
    sl_cfg *cfg = sl_cfg_new();
    if (sl_cfg_load_string(cfg, "bench.yml", yml, strlen(yml)) != 0) return -1;
    char rm[4300];
    snprintf(rm, sizeof rm, "rm -rf '%s'", data_dir);
    if (system(rm) != 0) return -1;
    counter c;
    atomic_init(&c.records, 0);
    atomic_bool stop;
    atomic_init(&stop, false);
    sl_input_ctx ctx = {.name = "bench",
                        .cfg = cfg,
                        .node = sl_cfg_get(sl_cfg_root(cfg), "inputs")->items[0],
                        .data_dir = data_dir,
                        .emit = emit,
                        .emit_arg = &c,
                        .stop = &stop};
    sl_metrics_reset();
    double t0 = now_s();
    run_arg ra = {0};
    sl_err err;
    if (sl_journald_input_ops.create(&ctx, &ra.state, &err) != 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &ra);
    while (atomic_load(&c.records) < n) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    double t = now_s() - t0;
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    sl_journald_input_ops.destroy(ra.state);
    if (cpu_s) *cpu_s = ra.cpu_s;
    *bytes = sl_metrics_value("sluice_input_bytes_total", "input=\"bench\"");
    sl_cfg_free(cfg);
    return t;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    bool peer = !(argc > 4 && strcmp(argv[4], "stage") == 0);
    if (n <= 0 || runs <= 0 || runs > 50 || (argc > 4 && peer)) {
        fprintf(stderr, "usage: %s [entries] [runs] [dir] [stage]\n", argv[0]);
        return 2;
    }
    if (!jx_remote_bin()) {
        fprintf(stderr, "systemd-journal-remote is not installed\n");
        return 1;
    }
    sl_log_set_level(SL_LOG_WARN);
    char tmp[] = "/tmp/sluice-bench-journald-XXXXXX";
    char dir[4096], data_dir[4200];
    bool own = argc <= 3;
    if (own) {
        if (!mkdtemp(tmp)) return 1;
        snprintf(dir, sizeof dir, "%s/journal", tmp);
        snprintf(data_dir, sizeof data_dir, "%s/data", tmp);
    } else {
        snprintf(dir, sizeof dir, "%s", argv[3]);
        snprintf(data_dir, sizeof data_dir, "%s.sluice-data", argv[3]);
    }
    mkdir(dir, 0755);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/system-0.journal", dir);
    struct stat sb;
    if (stat(probe, &sb) != 0) {
        fprintf(stderr, "generating %ld entries in %s ...\n", n, dir);
        double t0 = now_s();
        if (generate(dir, n) != 0) {
            fprintf(stderr, "generation failed\n");
            return 1;
        }
        fprintf(stderr, "generated in %.1f s\n", now_s() - t0);
    }
    long export_bytes = 0;
    int64_t copied = 0;
    /* warm the page cache for both */
    if ((peer && run_journalctl(dir, &export_bytes) < 0) ||
        run_sluice(dir, data_dir, n, &copied, NULL) < 0) {
        fprintf(stderr, "warm-up failed\n");
        return 1;
    }
    double tj[50], ts[50], cpu[50];
    for (int i = 0; i < runs; i++) {
        tj[i] = peer ? run_journalctl(dir, NULL) : 0;
        ts[i] = run_sluice(dir, data_dir, n, &copied, &cpu[i]);
        if (tj[i] < 0 || ts[i] < 0) return 1;
    }
    double mj = median(tj, runs), ms = median(ts, runs), mc = median(cpu, runs);
    printf("journal folder: %ld entries, sluice copied %.1f MB\n", n, (double)copied / 1e6);
    printf("sluice journald input:             %9.0f entries/s  median %.3f s, input thread "
           "%.3f CPU s (%.2f us/entry, %.2f of a core)\n",
           (double)n / ms, ms, mc, mc / (double)n * 1e6, mc / ms);
    if (!peer) return 0;
    printf("export format %.1f MB\n", (double)export_bytes / 1e6);
    printf(
        "journalctl -o export > /dev/null: %9.0f entries/s  %7.1f MB/s (export)  median %.3f s\n",
        (double)n / mj, (double)export_bytes / 1e6 / mj, mj);
    printf("sluice journald input (export MB): %7.1f MB/s\n", (double)export_bytes / 1e6 / ms);
    printf("ratio sluice/journalctl: %.2fx (%d runs each)\n", mj / ms, runs);
    if (own) {
        char rm[4200];
        snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
        if (system(rm) != 0) return 1;
    }
    return 0;
}
