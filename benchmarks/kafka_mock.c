/* A Kafka cluster for the end-to-end benchmark (benchmarks/e2e.py):
 * librdkafka's mock cluster (real Kafka protocol brokers, in this process,
 * listening on 127.0.0.1 only), one topic, and a consumer that reads every
 * partition from the beginning while the agent produces.
 *
 *   kafka_mock [--brokers 3] [--topic logs] [--partitions 32]
 *              [--expect N] [--tally FILE | --values FILE] [--timeout SECONDS]
 *   kafka_mock --produce FILE [--compression zstd] [--brokers 3] [--topic logs]
 *              [--partitions 32]
 *   kafka_mock --drain BOOTSTRAPS --expect N [--topic logs] [--timeout S]
 *
 * Prints the bootstrap servers as the first line on stdout once the topic
 * exists. The consumer appends one '\n' to FILE per message it reads (so a
 * line counter on FILE sees deliveries as they happen) and, with --expect,
 * exits once N messages arrived plus a short grace that catches extras.
 * With --values it appends each message's value and a '\n' instead (the
 * latency run reads the write time stamped in each line).
 * On exit (also on SIGTERM/SIGINT or --timeout) it prints "consumed N" and
 * the number of consume errors on stdout.
 *
 * The consumer reads concurrently because the mock keeps only a few MiB per
 * partition and silently drops older messages: a consumer that started
 * afterwards would count short. Exit status 0 when --expect was met exactly
 * (or not given), 1 otherwise.
 *
 * --produce FILE (benchmarks/kafka_input.py) is the other direction: a
 * cluster that already holds a corpus. Each line of FILE (without its
 * '\n') becomes one message, no key, dealt round-robin over the
 * partitions (librdkafka's sticky partitioner filled one partition past what
 * the mock keeps), compressed with --compression (zstd, the Kafka sink's default).
 * Once every message is acknowledged it checks that the mock kept them all
 * (every partition's low watermark still 0, the high watermarks summing to
 * the line count: see the note on the mock's retention above), then prints
 * the bootstrap servers, "produced N", and serves the cluster until
 * SIGTERM/SIGINT or --timeout. Exit status 1 when a message was lost.
 *
 * --drain BOOTSTRAPS joins a new consumer group on an existing cluster and
 * reads the topic from the beginning with rd_kafka_consumer_poll, touching
 * nothing but the message count, until N messages arrived: what librdkafka
 * alone costs a consumer (the floor under the kafka input and imkafka).
 * Prints "consumed N" and the seconds from its start to the first and the
 * last message. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static void quiet_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)err, (void)reason, (void)opaque;
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_mock: %s=%s: %s\n", k, v, errstr);
        return -1;
    }
    return 0;
}

/* --produce: FILE's lines into the topic; 0 once the mock holds all of
 * them (count in *produced), -1 otherwise. */
static int produce_file(const char *bootstraps, const char *topic, int partitions, const char *path,
                        const char *codec, long long *produced)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        perror(path);
        return -1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Large batches: the mock answers a fetch with one stored batch per
     * partition, so the producer's batch size is the consumer's fetch. */
    if (set(conf, "bootstrap.servers", bootstraps) || set(conf, "compression.codec", codec) ||
        set(conf, "linger.ms", "50") || set(conf, "batch.num.messages", "100000") ||
        set(conf, "batch.size", "1000000") || set(conf, "queue.buffering.max.kbytes", "1048576") ||
        set(conf, "queue.buffering.max.messages", "1000000")) {
        fclose(in);
        return -1;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: producer: %s\n", errstr);
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long lines = 0;
    int rc = 0;
    while (!g_stop && (n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n') n--;
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_PARTITION((int32_t)(lines % partitions)),
                                      RD_KAFKA_V_VALUE(line, (size_t)n),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (e) {
            fprintf(stderr, "kafka_mock: produce: %s\n", rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        lines++;
        rd_kafka_poll(rk, 0);
    }
    free(line);
    fclose(in);
    if (rc == 0 && rd_kafka_flush(rk, 300 * 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka_mock: flush timed out\n");
        rc = -1;
    }
    /* The mock drops a partition's oldest batches beyond 5 MB: a corpus
     * too large for --partitions shows as a low watermark above 0. */
    long long stored = 0;
    for (int p = 0; rc == 0 && p < partitions; p++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e || lo != 0) {
            fprintf(stderr,
                    "kafka_mock: partition %d: low %lld high %lld (%s): the mock dropped "
                    "messages; use more --partitions or a smaller corpus\n",
                    p, (long long)lo, (long long)hi, rd_kafka_err2str(e));
            rc = -1;
        }
        stored += hi;
    }
    if (rc == 0 && stored != lines) {
        fprintf(stderr, "kafka_mock: %lld lines produced, %lld stored\n", lines, stored);
        rc = -1;
    }
    rd_kafka_destroy(rk);
    *produced = lines;
    return rc;
}

/* --drain: a consumer that only counts (see the comment at the top). */
static int drain(const char *bootstraps, const char *topic, long long expect, double timeout)
{
    double t0 = now_s(), t_first = 0;
    char group[64];
    snprintf(group, sizeof group, "drain-%ld-%d", (long)time(NULL), (int)getpid());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstraps) || set(conf, "group.id", group) ||
        set(conf, "enable.auto.commit", "false") || set(conf, "auto.offset.reset", "earliest"))
        return 1;
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: consumer: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (e) {
        fprintf(stderr, "kafka_mock: subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    long long n = 0;
    while (!g_stop && n < expect && !(timeout > 0 && now_s() - t0 > timeout)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            if (n++ == 0) t_first = now_s();
        }
        rd_kafka_message_destroy(m);
    }
    double t_last = now_s();
    printf("consumed %lld\nfirst %.3f\nlast %.3f\n", n, t_first ? t_first - t0 : 0, t_last - t0);
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n == expect ? 0 : 1;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--brokers N] [--topic T] [--partitions P] [--expect N] "
            "[--tally FILE | --values FILE] [--timeout S]\n"
            "       %s --produce FILE [--compression CODEC] [--brokers N] [--topic T] "
            "[--partitions P] [--timeout S]\n"
            "       %s --drain BOOTSTRAPS --expect N [--topic T] [--timeout S]\n",
            argv0, argv0, argv0);
}

int main(int argc, char **argv)
{
    int brokers = 3, partitions = 32;
    const char *topic = "logs", *tally_path = NULL, *values_path = NULL, *produce_path = NULL;
    const char *codec = "zstd", *drain_from = NULL;
    long long expect = -1;
    double timeout = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage(argv[0]);
            return 2;
        }
        if (strcmp(a, "--brokers") == 0)
            brokers = atoi(v);
        else if (strcmp(a, "--topic") == 0)
            topic = v;
        else if (strcmp(a, "--partitions") == 0)
            partitions = atoi(v);
        else if (strcmp(a, "--expect") == 0)
            expect = atoll(v);
        else if (strcmp(a, "--tally") == 0)
            tally_path = v;
        else if (strcmp(a, "--values") == 0)
            values_path = v;
        else if (strcmp(a, "--timeout") == 0)
            timeout = atof(v);
        else if (strcmp(a, "--produce") == 0)
            produce_path = v;
        else if (strcmp(a, "--compression") == 0)
            codec = v;
        else if (strcmp(a, "--drain") == 0)
            drain_from = v;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (brokers < 1 || brokers > 16 || partitions < 1 || partitions > 1024) {
        usage(argv[0]);
        return 2;
    }
    if (drain_from) {
        if (expect < 1) {
            usage(argv[0]);
            return 2;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        return drain(drain_from, topic, expect, timeout);
    }
    /* --values: each message's value and a newline (for latency, whose
     * lines carry their write time); --tally: a newline per message. */
    FILE *tally = NULL;
    if (values_path) tally_path = values_path;
    if (tally_path && !(tally = fopen(tally_path, "wb"))) {
        perror(tally_path);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    char errstr[256];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(mconf, quiet_log);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, errstr, sizeof errstr);
    if (!mrk) {
        fprintf(stderr, "kafka_mock: mock handle: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        return 1;
    }
    int repl = brokers < 3 ? brokers : 3;
    rd_kafka_resp_err_t terr = rd_kafka_mock_topic_create(mc, topic, partitions, repl);
    if (terr) {
        fprintf(stderr, "kafka_mock: topic %s: %s\n", topic, rd_kafka_err2str(terr));
        return 1;
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (produce_path) {
        long long produced = 0;
        int rc = produce_file(bootstraps, topic, partitions, produce_path, codec, &produced);
        if (rc == 0) {
            printf("%s\nproduced %lld\n", bootstraps, produced);
            fflush(stdout);
            double t_start = now_s();
            while (!g_stop && !(timeout > 0 && now_s() - t_start > timeout)) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mrk);
        return rc == 0 ? 0 : 1;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstraps) || set(conf, "group.id", "sluice-e2e") ||
        set(conf, "enable.auto.commit", "false") || set(conf, "auto.offset.reset", "earliest") ||
        set(conf, "fetch.wait.max.ms", "20") || set(conf, "check.crcs", "false") ||
        set(conf, "enable.partition.eof", "true"))
        return 1;
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: consumer: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);

    /* Ready once every partition has been fetched (its end reported): the
     * consumer's first fetches took ~0.5 s after start, which the e2e runs
     * (timed from the agent's start) charged to the agent under test. At
     * most 10 s: a partition that never reports its end only costs that. */
    double t_ready = now_s() + 10;
    for (int eofs = 0; eofs < partitions && !g_stop && now_s() < t_ready;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) eofs++;
        if (m) rd_kafka_message_destroy(m);
    }
    printf("%s\n", bootstraps);
    fflush(stdout);

    long long n = 0, errors = 0;
    double t_start = now_s(), t_met = 0;
    char nl[1024];
    memset(nl, '\n', sizeof nl);
    while (!g_stop) {
        double t = now_s();
        if (timeout > 0 && t - t_start > timeout) break;
        /* A grace after the expected count, so duplicates show as extras. */
        if (t_met > 0 && t - t_met > 0.5) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        long long got = 0;
        while (m) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                got++;
                if (values_path) {
                    fwrite(m->payload, 1, m->len, tally);
                    fputc('\n', tally);
                }
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                errors++;
            rd_kafka_message_destroy(m);
            m = got < 4096 ? rd_kafka_consumer_poll(rk, 0) : NULL;
        }
        n += got;
        for (long long k = values_path ? 0 : got; tally && k > 0; k -= (long long)sizeof nl)
            fwrite(nl, 1, k < (long long)sizeof nl ? (size_t)k : sizeof nl, tally);
        if (tally && got) fflush(tally);
        if (expect >= 0 && n >= expect && t_met == 0) t_met = now_s();
    }
    printf("consumed %lld\nerrors %lld\n", n, errors);
    fflush(stdout);
    if (tally) fclose(tally);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    return expect < 0 || n == expect ? 0 : 1;
}
