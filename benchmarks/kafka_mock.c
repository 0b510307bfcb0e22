/* A Kafka cluster for the end-to-end benchmark (benchmarks/e2e.py):
 * librdkafka's mock cluster (real Kafka protocol brokers, in this process,
 * listening on 127.0.0.1 only), one topic, and a consumer that reads every
 * partition from the beginning while the agent produces.
 *
 *   kafka_mock [--brokers 3] [--topic logs] [--partitions 32]
 *              [--expect N] [--tally FILE | --values FILE] [--timeout SECONDS]
 *   kafka_mock --produce FILE [--compression zstd] [--batch-messages 100000]
 *              [--batch-bytes 1000000] [--brokers 3] [--topic logs] [--partitions 32]
 *   kafka_mock --drain BOOTSTRAPS --expect N [--topic logs] [--timeout S]
 *              [--api poll|batch|partitions] [--threads K] [--set KEY=VALUE]...
 *              [--assign 1] [--touch 1]
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
 * the mock keeps), compressed with --compression (zstd, the Kafka sink's default),
 * in producer batches of at most --batch-messages and --batch-bytes (the
 * mock answers a fetch with one stored batch per partition, so this is what
 * a consumer's fetch brings; node agents lingering 20 ms write far smaller
 * batches than the 1 MB default).
 * Once every message is acknowledged it checks that the mock kept them all
 * (every partition's low watermark still 0, the high watermarks summing to
 * the line count: see the note on the mock's retention above), then prints
 * the bootstrap servers, "produced N", and serves the cluster until
 * SIGTERM/SIGINT or --timeout. Exit status 1 when a message was lost.
 *
 * --drain BOOTSTRAPS joins a new consumer group on an existing cluster and
 * reads the topic from the beginning, touching nothing but the message
 * count, until N messages arrived: what librdkafka alone costs a consumer
 * (the floor under the kafka input and imkafka; benchmarks/kafka_ceiling.py,
 * decision 0047). --api poll (the default) calls rd_kafka_consumer_poll per
 * message, as imkafka and the kafka input do; batch takes up to 1024 a call
 * with rd_kafka_consume_batch_queue; partitions forwards each assigned
 * partition's queue to one of --threads queues, each drained by its own
 * thread. --set passes librdkafka consumer properties (fetch sizes, waits,
 * check.crcs, prefetch). --assign 1 takes every partition without a group
 * (no join: what the join costs the others). --touch 1 also reads every
 * payload byte. Prints "consumed N", "bytes B", the seconds from its start
 * to the first and the last message, and "thread NAME CPU-SECONDS" per kind
 * of thread (librdkafka's are "rdk:main", "rdk:broker", ...). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
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
                        const char *codec, const char *batch_messages, const char *batch_bytes,
                        long long *produced)
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
        set(conf, "linger.ms", "50") || set(conf, "batch.num.messages", batch_messages) ||
        set(conf, "batch.size", batch_bytes) ||
        set(conf, "queue.buffering.max.kbytes", "1048576") ||
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
enum drain_api { API_POLL, API_BATCH, API_PARTITIONS };

struct drain {
    rd_kafka_t *rk;
    enum drain_api api;
    int threads;             /* API_PARTITIONS: queues, one thread each */
    rd_kafka_queue_t *q[16]; /* API_PARTITIONS: partition p forwards to q[p % threads] */
    _Atomic long long n;     /* messages without error, every thread */
    _Atomic long long bytes; /* their payload bytes */
    _Atomic long long sum;   /* --touch: a sum over every payload byte */
    _Atomic int stop;
    int touch;
    double t0;
    _Atomic long long t_first_ns; /* from t0; 0 until the first message */
};

static void drain_take(struct drain *d, rd_kafka_message_t **m, ssize_t got)
{
    long long n = 0, bytes = 0, sum = 0;
    for (ssize_t i = 0; i < got; i++) {
        if (!m[i]->err) {
            n++;
            bytes += (long long)m[i]->len;
            if (d->touch) {
                const unsigned char *p = m[i]->payload;
                for (size_t k = 0; k < m[i]->len; k++) sum += p[k];
            }
        }
        rd_kafka_message_destroy(m[i]);
    }
    if (!n) return;
    if (atomic_fetch_add(&d->n, n) == 0 && atomic_load(&d->t_first_ns) == 0)
        atomic_store(&d->t_first_ns, (long long)((now_s() - d->t0) * 1e9) + 1);
    atomic_fetch_add(&d->bytes, bytes);
    atomic_fetch_add(&d->sum, sum);
}

/* API_PARTITIONS: route each assigned partition's queue to one of the
 * drain threads' queues (rd_kafka_queue_forward), so that several threads
 * take messages without sharing the consumer queue's lock. */
static void drain_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct drain *d = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        for (int i = 0; d->api == API_PARTITIONS && i < parts->cnt; i++) {
            rd_kafka_queue_t *pq =
                rd_kafka_queue_get_partition(rk, parts->elems[i].topic, parts->elems[i].partition);
            if (!pq) continue;
            rd_kafka_queue_forward(pq, d->q[parts->elems[i].partition % d->threads]);
            rd_kafka_queue_destroy(pq);
        }
    } else
        rd_kafka_assign(rk, NULL);
}

static void *drain_thread(void *arg)
{
    struct drain *d = ((void **)arg)[0];
    rd_kafka_queue_t *q = ((void **)arg)[1];
    rd_kafka_message_t *m[1024];
    while (!atomic_load(&d->stop)) {
        ssize_t got = rd_kafka_consume_batch_queue(q, 100, m, 1024);
        if (got > 0) drain_take(d, m, got);
    }
    return NULL;
}

/* CPU seconds of this process's threads, summed by thread name (librdkafka
 * names its own "rdk:main", "rdk:broker1", ...), printed as "thread NAME S". */
static void print_thread_cpu(void)
{
    char names[64][16];
    double secs[64];
    int kinds = 0;
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return;
    char path[300];
    for (struct dirent *de; (de = readdir(dir));) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char buf[1024];
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close) continue;
        char name[16] = {0};
        size_t nl = (size_t)(close - open - 1) < sizeof name - 1 ? (size_t)(close - open - 1)
                                                                 : sizeof name - 1;
        memcpy(name, open + 1, nl);
        /* "rdk:broker1" and "rdk:broker2" are one kind */
        for (size_t k = 0; k < nl; k++)
            if (name[k] >= '0' && name[k] <= '9') name[k] = 0;
        unsigned long ut = 0, st = 0;
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        int k = 0;
        while (k < kinds && strcmp(names[k], name) != 0) k++;
        if (k == kinds) {
            if (kinds == 64) continue;
            snprintf(names[kinds], sizeof names[kinds], "%s", name);
            secs[kinds++] = 0;
        }
        secs[k] += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    closedir(dir);
    for (int k = 0; k < kinds; k++) printf("thread %s %.2f\n", names[k], secs[k]);
}

static int drain(const char *bootstraps, const char *topic, long long expect, double timeout,
                 enum drain_api api, int threads, int touch, int assign, char **props, int nprops)
{
    static struct drain d;
    d.api = api;
    d.threads = threads;
    d.touch = touch;
    d.t0 = now_s();
    char group[64];
    snprintf(group, sizeof group, "drain-%ld-%d", (long)time(NULL), (int)getpid());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstraps) || set(conf, "group.id", group) ||
        set(conf, "enable.auto.commit", "false") || set(conf, "auto.offset.reset", "earliest"))
        return 1;
    for (int i = 0; i < nprops; i++) {
        char *eq = strchr(props[i], '=');
        if (!eq) {
            fprintf(stderr, "kafka_mock: --set %s: not KEY=VALUE\n", props[i]);
            return 2;
        }
        *eq = 0;
        if (set(conf, props[i], eq + 1)) return 2;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    rd_kafka_conf_set_opaque(conf, &d);
    if (api == API_PARTITIONS) rd_kafka_conf_set_rebalance_cb(conf, drain_rebalance);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: consumer: %s\n", errstr);
        return 1;
    }
    d.rk = rk;
    rd_kafka_poll_set_consumer(rk);
    pthread_t tid[16];
    void *targ[16][2];
    for (int i = 0; api == API_PARTITIONS && i < threads; i++) {
        d.q[i] = rd_kafka_queue_new(rk);
        targ[i][0] = &d;
        targ[i][1] = d.q[i];
        pthread_create(&tid[i], NULL, drain_thread, targ[i]);
    }
    rd_kafka_resp_err_t e;
    if (assign) {
        /* No group: every partition from its start, as the e2e consumer
         * does. What a consumer costs without the group's join. */
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (!e && (md->topic_cnt != 1 || md->topics[0].err)) e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!e) {
            int np = md->topics[0].partition_cnt;
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
            for (int p = 0; p < np; p++)
                rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            drain_rebalance(rk, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, l, &d);
            rd_kafka_topic_partition_list_destroy(l);
        }
        if (md) rd_kafka_metadata_destroy(md);
    } else {
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
        e = rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
    }
    if (e) {
        fprintf(stderr, "kafka_mock: subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *batch[1024];
    while (!g_stop && atomic_load(&d.n) < expect && !(timeout > 0 && now_s() - d.t0 > timeout)) {
        if (api == API_POLL) {
            /* The per-message call imkafka and the kafka input make. */
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (m) drain_take(&d, &m, 1);
        } else {
            /* API_BATCH: up to 1024 messages a call; API_PARTITIONS: what
             * reached the consumer queue before its partition was routed,
             * and the group's events (served inside the call). */
            ssize_t got = rd_kafka_consume_batch_queue(cq, api == API_BATCH ? 100 : 10, batch,
                                                       sizeof batch / sizeof *batch);
            if (got > 0) drain_take(&d, batch, got);
        }
    }
    double t_last = now_s();
    atomic_store(&d.stop, 1);
    for (int i = 0; api == API_PARTITIONS && i < threads; i++) pthread_join(tid[i], NULL);
    long long n = atomic_load(&d.n);
    printf("consumed %lld\nbytes %lld\nfirst %.3f\nlast %.3f\n", n, atomic_load(&d.bytes),
           atomic_load(&d.t_first_ns) / 1e9, t_last - d.t0);
    if (touch) printf("sum %lld\n", atomic_load(&d.sum));
    print_thread_cpu();
    fflush(stdout);
    rd_kafka_queue_destroy(cq);
    for (int i = 0; api == API_PARTITIONS && i < threads; i++) rd_kafka_queue_destroy(d.q[i]);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n == expect ? 0 : 1;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--brokers N] [--topic T] [--partitions P] [--expect N] "
            "[--tally FILE | --values FILE] [--timeout S]\n"
            "       %s --produce FILE [--compression CODEC] [--batch-messages N] "
            "[--batch-bytes B] [--brokers N] [--topic T] [--partitions P] [--timeout S]\n"
            "       %s --drain BOOTSTRAPS --expect N [--topic T] [--timeout S] "
            "[--api poll|batch|partitions] [--threads K] [--set KEY=VALUE]... [--assign 1] "
            "[--touch 1]\n",
            argv0, argv0, argv0);
}

int main(int argc, char **argv)
{
    int brokers = 3, partitions = 32;
    const char *topic = "logs", *tally_path = NULL, *values_path = NULL, *produce_path = NULL;
    const char *codec = "zstd", *drain_from = NULL;
    enum drain_api api = API_POLL;
    int threads = 1, touch = 0, assign = 0, nprops = 0;
    char *props[32];
    const char *batch_messages = "100000", *batch_bytes = "1000000";
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
        else if (strcmp(a, "--api") == 0 && strcmp(v, "poll") == 0)
            api = API_POLL;
        else if (strcmp(a, "--api") == 0 && strcmp(v, "batch") == 0)
            api = API_BATCH;
        else if (strcmp(a, "--api") == 0 && strcmp(v, "partitions") == 0)
            api = API_PARTITIONS;
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(a, "--touch") == 0)
            touch = atoi(v);
        else if (strcmp(a, "--assign") == 0)
            assign = atoi(v);
        else if (strcmp(a, "--set") == 0 && nprops < 32)
            props[nprops++] = argv[i + 1];
        else if (strcmp(a, "--batch-messages") == 0)
            batch_messages = v;
        else if (strcmp(a, "--batch-bytes") == 0)
            batch_bytes = v;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (brokers < 1 || brokers > 16 || partitions < 1 || partitions > 1024 || threads < 1 ||
        threads > 16) {
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
        return drain(drain_from, topic, expect, timeout, api, threads, touch, assign, props,
                     nprops);
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
        int rc = produce_file(bootstraps, topic, partitions, produce_path, codec, batch_messages,
                              batch_bytes, &produced);
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
