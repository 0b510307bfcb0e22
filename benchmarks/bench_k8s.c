/* Kubelet load of the kubernetes step: the real agent tails a /var/log/pods
 * tree in a temporary folder where `--pods` pods churn (each lives
 * `--lifetime` seconds, then is deleted from the fake kubelet and replaced
 * by a new pod with a new UID; every live pod logs a line a second), and the
 * fake kubelet (tests/fake_kubelet.c) counts the agent's requests. The
 * reference in the same run is the naive lookup, one request per new pod;
 * the figure is requests per minute, and the lines that shipped without
 * metadata (sluice_k8s_metadata_missing_total). Each --interval value is a
 * run of --minutes after one lifetime of warm-up.
 *
 *   build/benchmarks/bench_k8s [--pods 100] [--lifetime 60] [--minutes 2]
 *                              [--interval 1s --interval 5s] [--rescan 10s]
 * --rescan is the file input's rescan_interval: how often new pods' files
 * are found, so how often unknown UIDs can ask for a refresh.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/fake_kubelet.h"
#include "tests/helpers.h"
#include "tests/loki_receiver.h"

typedef struct slot {
    int gen;
    double dies_at;
    char *file;
} slot;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t spawn_agent(char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log_path, "a", stderr);
    (void)f;
    execv(argv[0], argv);
    _exit(127);
}

static void new_pod(sl_fk *fk, const char *pods, slot *s, int k, double now, double lifetime)
{
    char name[64], uid[64], labels[128], path[1024];
    s->gen++;
    snprintf(name, sizeof name, "pod-%d-%d", k, s->gen);
    snprintf(uid, sizeof uid, "uid-%d-%d", k, s->gen);
    snprintf(labels, sizeof labels, "{\"app\":\"app-%d\"}", k);
    if (sl_fk_add_pod(fk, "bench", name, uid, labels, NULL) != 0) abort();
    snprintf(path, sizeof path, "%s/bench_%s_%s", pods, name, uid);
    mkdir(path, 0755);
    strncat(path, "/main", sizeof path - strlen(path) - 1);
    mkdir(path, 0755);
    free(s->file);
    s->file = NULL;
    if (asprintf(&s->file, "%s/0.log", path) < 0) abort();
    s->dies_at = now + lifetime;
}

static void run(const char *interval, const char *rescan, int npods, double lifetime,
                double minutes)
{
    char *dir = sl_t_tmpdir("bench-k8s");
    char *pods = sl_t_path(dir, "pods");
    mkdir(pods, 0755);
    char *token = sl_t_path(dir, "token");
    sl_t_write_file(token, "bench-token\n", 12);
    char certs[1024];
    snprintf(certs, sizeof certs, "%s/tests/fixtures/k8s", sl_t_src());
    sl_fk *fk;
    if (sl_fk_start(certs, 0, "bench-token", &fk) != 0) {
        fprintf(stderr, "fake kubelet did not start\n");
        exit(1);
    }
    sl_lr *lr;
    sl_lr_opts lo = {.discard = true};
    if (sl_lr_start(&lo, &lr) != 0) exit(1);
    int mport = sl_t_free_port();
    char *cfg = sl_t_path(dir, "agent.yml"), *log = sl_t_path(dir, "agent.log"), *yaml = NULL;
    if (asprintf(&yaml,
                 "data_dir: %s/data\n"
                 "metrics: { listen: \"127.0.0.1:%d\" }\n"
                 "inputs:\n"
                 "  - name: pods\n"
                 "    type: file\n"
                 "    paths: [\"%s/*/*/*.log\"]\n"
                 "    max_open_files: 1024\n"
                 "    close_idle_after: 10s\n"
                 "    rescan_interval: %s\n"
                 "    parse:\n"
                 "      - cri: {}\n"
                 "      - kubernetes:\n"
                 "          kubelet_url: https://127.0.0.1:%d/pods\n"
                 "          token_file: %s\n"
                 "          ca_file: %s/kubelet-test.crt\n"
                 "          refresh_min_interval: %s\n"
                 "sinks:\n"
                 "  - name: loki\n"
                 "    type: loki\n"
                 "    url: http://127.0.0.1:%d/loki/api/v1/push\n",
                 dir, mport, pods, rescan, sl_fk_port(fk), token, certs, interval,
                 sl_lr_port(lr)) < 0)
        exit(1);
    sl_t_write_file(cfg, yaml, strlen(yaml));
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, NULL};
    pid_t pid = spawn_agent(argv, log);

    slot *slots = calloc((size_t)npods, sizeof *slots);
    double t0 = now_s(), measure_from = t0 + lifetime, end = measure_from + minutes * 60;
    for (int k = 0; k < npods; k++) {
        new_pod(fk, pods, &slots[k], k, t0, lifetime);
        slots[k].dies_at = t0 + lifetime * (k + 1) / npods; /* staggered deaths */
    }
    uint64_t req0 = 0, born0 = 0, born = 0, lines = 0, lbytes0 = 0, wev0 = 0, wbytes0 = 0;
    double missing0 = 0;
    bool measuring = false;
    double next_line = t0;
    while (now_s() < end) {
        double now = now_s();
        if (!measuring && now >= measure_from) {
            measuring = true;
            req0 = sl_fk_requests(fk);
            lbytes0 = sl_fk_list_bytes(fk);
            sl_fk_watch_equivalent(fk, &wev0, &wbytes0);
            born0 = born;
            missing0 = sl_t_metric(mport, "sluice_k8s_metadata_missing_total");
        }
        for (int k = 0; k < npods; k++)
            if (now >= slots[k].dies_at) {
                char uid[64];
                snprintf(uid, sizeof uid, "uid-%d-%d", k, slots[k].gen);
                sl_fk_delete_pod(fk, uid);
                new_pod(fk, pods, &slots[k], k, now, lifetime);
                born++;
            }
        if (now >= next_line) {
            for (int k = 0; k < npods; k++) {
                char text[128];
                int n =
                    snprintf(text, sizeof text, "2026-12-07T00:00:00.000000000Z stdout F %d %llu\n",
                             k, (unsigned long long)lines++);
                sl_t_append_file(slots[k].file, text, (size_t)n);
            }
            next_line += 1.0;
        }
        sl_t_sleep_ms(50);
    }
    double secs = now_s() - measure_from;
    uint64_t req = sl_fk_requests(fk) - req0, newpods = born - born0;
    double missing = sl_t_metric(mport, "sluice_k8s_metadata_missing_total") - missing0;
    uint64_t wev, wbytes, lbytes = sl_fk_list_bytes(fk) - lbytes0;
    sl_fk_watch_equivalent(fk, &wev, &wbytes);
    wev -= wev0;
    wbytes -= wbytes0;
    printf("| %s | %s | %d | %.0f | %.1f | %.1f | %.2f | %.0f | %llu |\n", rescan, interval, npods,
           (double)newpods / secs * 60, (double)req / secs * 60, (double)newpods / secs * 60,
           newpods ? (double)req / (double)newpods : 0.0, missing, (unsigned long long)lines);
    /* The alternative, for the same churn: one API-server watch per node
     * (the fake kubelet renders the events it would stream), plus its
     * initial list of the node's pods (one PodList, as /pods answers). */
    printf("polling %s: %.1f KiB/min of PodLists from the kubelet (%.1f KiB per answer); "
           "API-server watch instead: 1 stream, %.1f events/min, %.1f KiB/min, plus one "
           "list of %.1f KiB at each (re)start of the watch\n",
           interval, (double)lbytes / 1024 / secs * 60,
           req ? (double)lbytes / 1024 / (double)req : 0.0, (double)wev / secs * 60,
           (double)wbytes / 1024 / secs * 60, req ? (double)lbytes / 1024 / (double)req : 0.0);
    char status[64];
    snprintf(status, sizeof status, "/proc/%d/status", (int)pid);
    char *st = sl_t_read_file(status, NULL), *hwm = st ? strstr(st, "VmHWM:") : NULL;
    printf("agent %s: %.*s\n", interval, hwm ? (int)strcspn(hwm, "\n") : 0, hwm ? hwm : "");
    free(st);
    fflush(stdout);
    sl_t_stop(pid, SIGTERM, 20000);
    sl_lr_stop(lr);
    sl_fk_stop(fk);
    for (int k = 0; k < npods; k++) free(slots[k].file);
    free(slots);
    sl_t_rmtree(dir);
    free(dir);
    free(pods);
    free(token);
    free(cfg);
    free(log);
    free(yaml);
}

int main(int argc, char **argv)
{
    int npods = 100;
    double lifetime = 60, minutes = 2;
    const char *intervals[8];
    int ni = 0;
    const char *rescan = "10s";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--pods") == 0)
            npods = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lifetime") == 0)
            lifetime = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--minutes") == 0)
            minutes = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--interval") == 0 && ni < 8)
            intervals[ni++] = argv[i + 1];
        else if (strcmp(argv[i], "--rescan") == 0)
            rescan = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (ni == 0) intervals[ni++] = "1s";
    signal(SIGPIPE, SIG_IGN);
    printf("| rescan_interval | refresh_min_interval | pods | new pods/min | kubelet requests/min "
           "| naive "
           "requests/min (1 per new pod) | requests per new pod | lines without metadata | "
           "lines written |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < ni; i++) run(intervals[i], rescan, npods, lifetime, minutes);
    return 0;
}
