/* Memory of the Kafka sink against the number of distinct topics a topic
 * template resolves to (docs/decisions/0068-kafka-topic-handles.md).
 *
 *   bench_kafka_topics N [RECORDS] [EXTRA_YAML]
 *
 * The real sink (its own thread, a real sl_buffer) produces RECORDS records
 * (default max(N, 10000)) whose field t takes N distinct values, with
 * `topic: "t-${fields.t}"`, to librdkafka's mock cluster. The cluster runs in
 * a child process so this process's peak RSS (VmHWM) is the sink's and
 * librdkafka's alone. Prints VmHWM/VmRSS after the sink is created, once
 * every record is delivered, and after the sink is destroyed; the reference
 * is the same run with N = 1. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "tests/integration/kafka_harness.h"

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kn = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kn) == 0 && line[kn] == ':') v = atol(line + kn + 1);
    if (f) fclose(f);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The mock cluster in a child: prints its bootstraps on the pipe, then
 * serves until the parent closes the other end (or dies). */
static pid_t cluster_start(char *bootstraps, size_t cap)
{
    int up[2], hold[2];
    if (pipe(up) || pipe(hold)) abort();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(up[0]), close(hold[1]);
        kh m;
        kh_mock(&m, 1);
        dprintf(up[1], "%s\n", m.bootstraps);
        close(up[1]);
        char c;
        while (read(hold[0], &c, 1) > 0) {
        }
        _exit(0);
    }
    close(up[1]), close(hold[0]);
    FILE *f = fdopen(up[0], "r");
    if (!fgets(bootstraps, (int)cap, f)) abort();
    bootstraps[strcspn(bootstraps, "\n")] = '\0';
    fclose(f);
    return pid; /* hold[1] stays open until exit */
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atol(argv[1]) : 1000;
    uint64_t records = argc > 2 ? (uint64_t)atoll(argv[2]) : (n > 10000 ? n : 10000);
    const char *extra = argc > 3 ? argv[3] : "";
    if (n == 0) n = 1;
    sl_log_set_level(SL_LOG_ERROR);
    kh h;
    memset(&h, 0, sizeof h);
    h.wm = sl_watermark_new(0);
    h.memory_max = 4u << 20; /* the buffer small: what grows is the sink's */
    pid_t cluster = cluster_start(h.bootstraps, sizeof h.bootstraps);
    char yml[1024];
    snprintf(yml, sizeof yml, "    linger_ms: 5\n%s", extra);
    sl_err err;
    if (kh_sink_cfg(&h, "k_topics", "t-$${fields.t}", yml, false, &err) != SL_OK) {
        fprintf(stderr, "sink: %s\n", err.msg);
        return 1;
    }
    long hwm0 = status_kib("VmHWM");
    double t0 = now_s();
    kh_start(&h);
    const uint32_t per_batch = 1000;
    for (uint64_t s = 0; s < records; s += per_batch) {
        uint32_t k = (uint32_t)(records - s < per_batch ? records - s : per_batch);
        sl_batch *b = kh_batch(&h, s, k, 100, 1);
        for (uint32_t i = 0; i < k; i++) {
            /* The value lives as long as the batch (a field points into it). */
            char *v = sl_arena_alloc(&b->arena, 16);
            int vn = snprintf(v, 16, "v%06u", (unsigned)((s + i) % n));
            sl_record_add_field(b, &b->records[i], (sl_slice){"t", 1}, (sl_slice){v, (size_t)vn},
                                SL_V_STRING);
        }
        kh_push(&h, b);
    }
    bool drained = kh_finish(&h, 600000);
    double t1 = now_s();
    long hwm1 = status_kib("VmHWM"), rss1 = status_kib("VmRSS");
    uint64_t acked = sl_watermark_get(h.wm);
    char labels[128];
    sl_metric_labels(labels, sizeof labels, "sink", "k_topics", NULL, NULL);
    int64_t delivered = sl_metrics_value("sluice_sink_records_total", labels);
    int64_t unknown = kh_metric("sluice_sink_dropped_records_total", "k_topics", "unknown_topic");
    sl_kafka_sink_ops.destroy(h.state);
    h.state = NULL;
    long rss2 = status_kib("VmRSS");
    printf("topics=%u records=%llu delivered=%lld dropped_unknown_topic=%lld acked=%llu drained=%d "
           "secs=%.1f "
           "hwm_start_kib=%ld hwm_kib=%ld rss_end_kib=%ld rss_after_destroy_kib=%ld "
           "hwm_growth_kib=%ld per_topic_kib=%.2f\n",
           n, (unsigned long long)records, (long long)delivered, (long long)unknown,
           (unsigned long long)acked, drained, t1 - t0, hwm0, hwm1, rss1, rss2, hwm1 - hwm0,
           (double)(hwm1 - hwm0) / n);
    /* What the cluster holds: the topics the records created. */
    char errstr[256];
    rd_kafka_conf_t *mc = rd_kafka_conf_new();
    rd_kafka_conf_set(mc, "bootstrap.servers", h.bootstraps, errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(mc, kh_quiet_log);
    rd_kafka_t *probe = rd_kafka_new(RD_KAFKA_PRODUCER, mc, errstr, sizeof errstr);
    const struct rd_kafka_metadata *md = NULL;
    if (probe && rd_kafka_metadata(probe, 1, NULL, &md, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        printf("cluster_topics=%d\n", md->topic_cnt);
        for (int i = 0; i < md->topic_cnt && i < 0; i++) printf("  %s\n", md->topics[i].topic);
        rd_kafka_metadata_destroy(md);
    }
    if (probe) rd_kafka_destroy(probe);
    kh_free(&h);
    kill(cluster, SIGKILL);
    waitpid(cluster, NULL, 0);
    return 0;
}
