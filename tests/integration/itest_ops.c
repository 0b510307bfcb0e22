/* Operating the real binary: /healthz through a Loki outage, /metrics
 * counters against what was sent and received (and promtool's verdict on
 * the text), secrets kept out of logs, `check` and /metrics, rate-limited
 * failure logs, and `sluice tail` watching without disturbing delivery.
 * Loopback only; Loki is the in-process test receiver. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers.h"
#include "tests/loki_receiver.h"

/* ---- a tiny HTTP client ------------------------------------------------- */

static long count_substr(const char *text, const char *needle)
{
    long n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* ---- the agent under test ----------------------------------------------- */

typedef struct agent {
    char *dir, *cfg, *log, *in;
    int mport, tport;
    pid_t pid;
    uint32_t seq;
} agent;

/* Writes the config: one file input (dir/in.log) and the given sinks. */
static void agent_config(agent *a, const char *tag, const char *level, const char *sinks)
{
    memset(a, 0, sizeof *a);
    a->dir = sl_t_tmpdir(tag);
    assert_non_null(a->dir);
    a->cfg = sl_t_path(a->dir, "agent.yml");
    a->log = sl_t_path(a->dir, "agent.log");
    a->in = sl_t_path(a->dir, "in.log");
    a->mport = sl_t_free_port();
    a->tport = sl_t_free_port();
    assert_true(a->mport > 0 && a->tport > 0);
    assert_int_equal(sl_t_write_file(a->in, "", 0), 0);
    char *token = sl_t_path(a->dir, "tap.token");
    assert_int_equal(sl_t_write_file(token, "itest-token\n", 12), 0);
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "metrics: { listen: \"127.0.0.1:%d\", unhealthy_after: 1s }\n"
                         "tap: { listen: \"127.0.0.1:%d\", token_file: \"%s\" }\n"
                         "log: { level: %s }\n"
                         "shutdown_timeout: 2s\n"
                         "inputs:\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s\"]\n"
                         "    start_at: beginning\n"
                         "sinks:\n%s",
                         a->dir, a->mport, a->tport, token, level, a->in, sinks) > 0);
    free(token);
    assert_int_equal(sl_t_write_file(a->cfg, yaml, strlen(yaml)), 0);
    free(yaml);
}

/* Up once the inputs exist: the HTTP server starts before they are
 * created, so /healthz alone can answer while /metrics lacks their series. */
static bool agent_up(void *arg)
{
    agent *a = arg;
    char *text = NULL;
    bool up = sl_t_http_get(a->mport, "/metrics", &text) == 200 && text &&
              strstr(text, "# TYPE sluice_input_records_total counter");
    free(text);
    return up;
}

static void agent_start(agent *a)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", a->cfg, NULL};
    a->pid = sl_t_spawn(argv, a->log);
    assert_true(a->pid > 0);
    if (!sl_t_wait_until(agent_up, a, 10000)) {
        char *log = sl_t_read_file(a->log, NULL);
        fail_msg("agent did not come up:\n%s", log ? log : "");
    }
}

static void agent_stop(agent *a)
{
    if (a->pid > 0) assert_int_equal(sl_t_stop(a->pid, SIGTERM, 20000), 0);
    a->pid = 0;
}

static void agent_free(agent *a)
{
    if (a->pid > 0) sl_t_stop(a->pid, SIGKILL, 5000);
    sl_t_rmtree(a->dir);
    free(a->dir);
    free(a->cfg);
    free(a->log);
    free(a->in);
}

/* Appends n numbered lines to the input file. */
static void agent_write(agent *a, uint32_t n)
{
    assert_int_equal(sl_t_append_seq(a->in, &a->seq, n, " level=info msg=\"handled\""), 0);
}

static char *loki_sink(const char *name, int port, const char *extra)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "  - name: %s\n"
                         "    type: loki\n"
                         "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                         "    min_backoff: 5ms\n"
                         "    max_backoff: 20ms\n"
                         "    max_batch_wait: 20ms\n"
                         "    timeout: 2s\n"
                         "    labels: { job: itest }\n%s",
                         name, port, extra ? extra : "") > 0);
    return s;
}

/* Entries received so far, across receiver restarts, by sequence number. */
typedef struct tally {
    uint8_t seen[1 << 16];
    size_t total;
} tally;

static void tally_add(tally *t, sl_lr *lr)
{
    size_t n = sl_lr_nentries(lr);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        long seq = sl_t_parse_id(e->line, e->line + e->line_n, "seq=");
        assert_true(seq >= 0 && seq < (long)sizeof t->seen);
        if (t->seen[seq] < 255) t->seen[seq]++;
        t->total++;
    }
}

static uint32_t tally_missing(const tally *t, uint32_t n)
{
    uint32_t missing = 0;
    for (uint32_t i = 0; i < n; i++) missing += t->seen[i] == 0;
    return missing;
}

typedef struct wait_entries {
    sl_lr *lr;
    size_t n;
} wait_entries;

static bool has_entries(void *arg)
{
    wait_entries *w = arg;
    return sl_lr_nentries(w->lr) >= w->n;
}

static void wait_received(sl_lr *lr, size_t n, int timeout_ms)
{
    wait_entries w = {lr, n};
    if (!sl_t_wait_until(has_entries, &w, timeout_ms))
        fail_msg("receiver has %zu entries, want %zu", sl_lr_nentries(lr), n);
}

static sl_lr *receiver(int port)
{
    sl_lr_opts o = {.port = port};
    sl_lr *lr = NULL;
    /* A restarted receiver takes the port of the one before it. */
    for (int i = 0; i < 50 && sl_lr_start(&o, &lr) != 0; i++) sl_t_sleep_ms(100);
    assert_non_null(lr);
    return lr;
}

/* ---- /healthz and /readyz ---------------------------------------------------- */

/* A destination outage longer than unhealthy_after: readiness goes 503
 * (naming the sink), liveness stays 200 all along (so Kubernetes never
 * restarts the agent for it), and nothing is lost once Loki is back. */
static void test_liveness_survives_loki_outage(void **state)
{
    (void)state;
    static tally t;
    memset(&t, 0, sizeof t);
    sl_lr *lr = receiver(0);
    char *sinks = loki_sink("loki", sl_lr_port(lr), NULL);
    agent a;
    agent_config(&a, "ops-health", "info", sinks);
    free(sinks);
    agent_start(&a);
    agent_write(&a, 50);
    wait_received(lr, 50, 10000);
    char *body = NULL;
    assert_int_equal(sl_t_http_get(a.mport, "/healthz", &body), 200);
    assert_non_null(strstr(body, "\"ok\""));
    free(body);
    assert_int_equal(sl_t_http_get(a.mport, "/readyz", NULL), 200);

    /* Outage: Loki fails every push (500/503/429, dropped or cut answers). */
    sl_lr_fault_rate(lr, 1.0, 42);
    int64_t t0 = sl_t_now_ms();
    agent_write(&a, 50);
    int64_t t503 = -1;
    /* How long the outage lasts past the turn to 503: 2 s here, as the
     * verdict depends only on unhealthy_after; `make test-long` holds it
     * for 2 minutes (SLUICE_OPS_OUTAGE_MS=120000). */
    const char *hold_env = getenv("SLUICE_OPS_OUTAGE_MS");
    const int64_t hold_ms = hold_env ? atoll(hold_env) : 2000;
    /* Until hold_ms past the turn to 503 (at most 5 s waiting for the turn). */
    while (t503 < 0 ? sl_t_now_ms() - t0 < 5000 : sl_t_now_ms() - t0 < t503 + hold_ms) {
        int live = sl_t_http_get(a.mport, "/healthz", NULL);
        if (live != 200)
            fail_msg("/healthz answered %d %lld ms into the outage", live,
                     (long long)(sl_t_now_ms() - t0));
        int ready = sl_t_http_get(a.mport, "/readyz", &body);
        if (ready == 503 && t503 < 0) {
            t503 = sl_t_now_ms() - t0;
            assert_non_null(strstr(body, "\"sink\":\"loki\""));
        } else if (ready != 503) {
            assert_int_equal(ready, 200);
            assert_true(t503 < 0); /* once not ready, it stays so while Loki fails */
        }
        free(body);
        sl_t_sleep_ms(100);
    }
    int64_t outage = sl_t_now_ms() - t0;
    print_message("readyz: 503 after %lld ms of outage (unhealthy_after 1s); healthz 200 "
                  "throughout %lld ms\n",
                  (long long)t503, (long long)outage);
    assert_true(t503 >= 900); /* not before unhealthy_after (a little slack for clocks) */
    assert_true(outage >= t503 + hold_ms);

    sl_lr_fault_rate(lr, 0, 0);
    int64_t t1 = sl_t_now_ms();
    int status;
    while ((status = sl_t_http_get(a.mport, "/readyz", NULL)) != 200 && sl_t_now_ms() - t1 < 10000)
        sl_t_sleep_ms(100);
    print_message("readyz: 200 again %lld ms after recovery\n", (long long)(sl_t_now_ms() - t1));
    assert_int_equal(status, 200);
    /* At least once: retried pushes may repeat entries, none may be missing. */
    uint32_t missing = 100;
    for (int64_t t2 = sl_t_now_ms(); missing && sl_t_now_ms() - t2 < 10000; sl_t_sleep_ms(50)) {
        memset(&t, 0, sizeof t);
        tally_add(&t, lr);
        missing = tally_missing(&t, 100);
    }
    assert_int_equal(missing, 0);
    agent_stop(&a);
    sl_lr_stop(lr);
    agent_free(&a);
}

/* ---- /metrics ------------------------------------------------------------ */

typedef struct sink_wait {
    int port;
    double want;
} sink_wait;

static bool sink_counted(void *arg)
{
    sink_wait *w = arg;
    char *text = NULL;
    if (sl_t_http_get(w->port, "/metrics", &text) != 200) {
        free(text);
        return false;
    }
    bool ok = sl_t_series_value(text, "sluice_sink_records_total{sink=\"loki\"}") >= w->want;
    free(text);
    return ok;
}

static void test_metrics_match_traffic(void **state)
{
    (void)state;
    const uint32_t n = sl_t_sanitized() ? 600 : 3000;
    sl_lr *lr = receiver(0);
    char *sinks = loki_sink("loki", sl_lr_port(lr), NULL);
    agent a;
    agent_config(&a, "ops-metrics", "info", sinks);
    free(sinks);
    agent_start(&a);
    /* Scraped mid-run as well: the text must be well-formed at any moment. */
    for (uint32_t i = 0; i < 3; i++) {
        agent_write(&a, n / 3);
        char *mid = NULL;
        assert_int_equal(sl_t_http_get(a.mport, "/metrics", &mid), 200);
        assert_non_null(strstr(mid, "# TYPE sluice_input_records_total counter"));
        free(mid);
    }
    wait_received(lr, n, 20000);
    sink_wait sw = {a.mport, n};
    assert_true(sl_t_wait_until(sink_counted, &sw, 5000));

    char *text = NULL;
    assert_int_equal(sl_t_http_get(a.mport, "/metrics", &text), 200);
    sl_lr_stats st;
    sl_lr_get_stats(lr, &st);
    size_t file_bytes = 0;
    free(sl_t_read_file(a.in, &file_bytes));
    double in = sl_t_series_value(text, "sluice_input_records_total{input=\"app\"}");
    double in_bytes = sl_t_series_value(text, "sluice_input_bytes_total{input=\"app\"}");
    double out = sl_t_series_value(text, "sluice_sink_records_total{sink=\"loki\"}");
    double ok = sl_t_series_value(text, "sluice_sink_requests_total{sink=\"loki\",code=\"204\"}");
    print_message("sent %u lines (%zu bytes); input counted %.0f (%.0f bytes); receiver got %llu "
                  "entries in %llu requests; sink counted %.0f in %.0f requests\n",
                  n, file_bytes, in, in_bytes, (unsigned long long)st.entries,
                  (unsigned long long)st.accepted, out, ok);
    assert_true(in == (double)n);
    assert_true(in_bytes == (double)file_bytes);
    assert_int_equal(st.entries, n);
    assert_true(out == (double)st.entries);
    assert_true(ok == (double)st.accepted);
    assert_true(sl_t_series_value(text, "sluice_sink_failing{sink=\"loki\"}") == 0);
    assert_true(
        sl_t_series_value(
            text, "sluice_sink_dropped_records_total{sink=\"loki\",reason=\"buffer_full\"}") == 0);
    assert_true(sl_t_series_value(text, "sluice_process_resident_memory_bytes") > 0);
    assert_true(sl_t_series_value(text, "sluice_process_open_fds") > 0);

    char *path = sl_t_path(a.dir, "metrics.txt");
    assert_int_equal(sl_t_write_file(path, text, strlen(text)), 0);
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char *cmd = NULL, *outp = sl_t_path(a.dir, "promtool.out");
        assert_true(asprintf(&cmd, "promtool check metrics < '%s' > '%s' 2>&1", path, outp) > 0);
        int rc = system(cmd);
        char *msg = sl_t_read_file(outp, NULL);
        if (rc != 0) fail_msg("promtool check metrics failed:\n%s", msg ? msg : "");
        print_message("promtool check metrics: ok\n");
        free(msg);
        free(cmd);
        free(outp);
    } else {
        print_message("SKIP promtool check: promtool absent (Debian package prometheus)\n");
    }
    free(path);
    free(text);
    agent_stop(&a);
    sl_lr_stop(lr);
    agent_free(&a);
}

/* ---- secrets ------------------------------------------------------------- */

static void base64(const char *in, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)in[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

static void assert_no_secret(const char *what, const char *text, const char *const *secrets,
                             size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(text, secrets[i])) fail_msg("%s contains the secret '%s'", what, secrets[i]);
}

static void test_secrets_never_logged(void **state)
{
    (void)state;
    const char *pw_env = "pwEnvS3cr3t91f2", *pw_file = "pwFileS3cr3t4c1d";
    const char *tok_env = "tokEnvS3cr3te0e0", *tok_file = "tokFileS3cr3t77ab";
    const char *kafka_pw = "kafkaS3cr3t5b5b";
    char basic_ok[128], basic_file[128], cred[128];
    snprintf(cred, sizeof cred, "sluice:%s", pw_env);
    base64(cred, basic_ok);
    snprintf(cred, sizeof cred, "sluice:%s", pw_file);
    base64(cred, basic_file);
    const char *secrets[] = {pw_env, pw_file, tok_env, tok_file, kafka_pw, basic_ok, basic_file};
    const size_t nsecrets = sizeof secrets / sizeof *secrets;

    setenv("SLT_LOKI_PASSWORD", pw_env, 1);
    setenv("SLT_LOKI_TOKEN", tok_env, 1);
    setenv("SLT_KAFKA_PASSWORD", kafka_pw, 1);
    /* good: accepts the env password; strict: wants credentials nobody has,
     * so the other sinks fail and log their failures. */
    char want[200];
    snprintf(want, sizeof want, "Basic %s", basic_ok);
    sl_lr_opts go = {.auth = want}, so = {.auth = "Bearer not-any-configured-value"};
    sl_lr *good = NULL, *strict = NULL;
    assert_int_equal(sl_lr_start(&go, &good), 0);
    assert_int_equal(sl_lr_start(&so, &strict), 0);
    int dead_port = sl_t_free_port(); /* nothing listens: the Kafka broker is down */

    char *dir = sl_t_tmpdir("ops-secrets-files");
    char *pwf = sl_t_path(dir, "loki-password"), *tokf = sl_t_path(dir, "loki-token");
    char line[128];
    snprintf(line, sizeof line, "%s\n", pw_file);
    assert_int_equal(sl_t_write_file(pwf, line, strlen(line)), 0);
    snprintf(line, sizeof line, "%s\n", tok_file);
    assert_int_equal(sl_t_write_file(tokf, line, strlen(line)), 0);

    char *s1 = loki_sink("loki_env_pw", sl_lr_port(good),
                         "    auth:\n      username: sluice\n"
                         "      password: ${SLT_LOKI_PASSWORD}\n");
    char extra[1024];
    snprintf(extra, sizeof extra, "    auth:\n      username: sluice\n      password_file: %s\n",
             pwf);
    char *s2 = loki_sink("loki_file_pw", sl_lr_port(strict), extra);
    snprintf(extra, sizeof extra, "    auth:\n      bearer_token_file: %s\n", tokf);
    char *s3 = loki_sink("loki_file_tok", sl_lr_port(strict), extra);
    char *s4 = loki_sink("loki_env_tok", sl_lr_port(strict),
                         "    auth:\n      bearer_token: ${SLT_LOKI_TOKEN}\n");
    char *sinks = NULL;
    assert_true(asprintf(&sinks,
                         "%s%s%s%s"
                         "  - name: events\n"
                         "    type: kafka\n"
                         "    brokers: \"127.0.0.1:%d\"\n"
                         "    topic: logs\n"
                         "    security_protocol: sasl_plaintext\n"
                         "    sasl_mechanism: plain\n"
                         "    sasl_username: sluice\n"
                         "    sasl_password: ${SLT_KAFKA_PASSWORD}\n",
                         s1, s2, s3, s4, dead_port) > 0);
    free(s1), free(s2), free(s3), free(s4);
    agent a;
    agent_config(&a, "ops-secrets", "debug", sinks);
    free(sinks);
    agent_start(&a);
    agent_write(&a, 20);
    wait_received(good, 20, 10000);
    /* Let the failing sinks retry and log for a while. */
    sl_t_sleep_ms(1500);
    char *metrics = NULL;
    assert_int_equal(sl_t_http_get(a.mport, "/metrics", &metrics), 200);
    char *health = NULL;
    sl_t_http_get(a.mport, "/healthz", &health);
    agent_stop(&a);

    char *log = sl_t_read_file(a.log, NULL);
    assert_non_null(log);
    /* The failure paths did run: the strict receiver refused them. */
    assert_non_null(strstr(log, "event=sink_send_failed sink=loki_file_pw"));
    assert_non_null(strstr(log, "event=sink_send_failed sink=loki_file_tok"));
    assert_non_null(strstr(log, "event=sink_send_failed sink=loki_env_tok"));
    sl_lr_stats st;
    sl_lr_get_stats(strict, &st);
    assert_true(st.by_code[401] >= 3);
    assert_no_secret("agent log", log, secrets, nsecrets);
    assert_no_secret("/metrics", metrics, secrets, nsecrets);
    assert_no_secret("/healthz", health ? health : "", secrets, nsecrets);

    char *check_out = sl_t_path(a.dir, "check.out");
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", a.cfg, NULL};
    pid_t pid = sl_t_spawn(argv, check_out);
    assert_int_equal(sl_t_wait(pid, 20000), 0);
    char *check = sl_t_read_file(check_out, NULL);
    assert_non_null(check);
    assert_non_null(strstr(check, "# configuration OK"));
    assert_non_null(strstr(check, "<redacted>"));
    assert_no_secret("sluice check", check, secrets, nsecrets);
    print_message("%zu secrets absent from %zu bytes of agent log, /metrics, /healthz and "
                  "%zu bytes of check output\n",
                  nsecrets, strlen(log), strlen(check));

    free(check), free(check_out), free(log), free(metrics), free(health);
    sl_lr_stop(good);
    sl_lr_stop(strict);
    agent_free(&a);
    sl_t_rmtree(dir);
    free(dir), free(pwf), free(tokf);
    unsetenv("SLT_LOKI_PASSWORD");
    unsetenv("SLT_LOKI_TOKEN");
    unsetenv("SLT_KAFKA_PASSWORD");
}

/* ---- rate-limited self-logs ---------------------------------------------- */

static void test_failing_sink_logs_rate_limited(void **state)
{
    (void)state;
    static tally t;
    memset(&t, 0, sizeof t);
    sl_lr *lr = receiver(0);
    int lport = sl_lr_port(lr);
    char *sinks = loki_sink("loki", lport, NULL);
    agent a;
    agent_config(&a, "ops-ratelimit", "info", sinks);
    free(sinks);
    agent_start(&a);
    agent_write(&a, 20);
    wait_received(lr, 20, 10000);
    tally_add(&t, lr);
    sl_lr_stop(lr);
    /* A 3 s outage with 5-20 ms backoff: a hundred or more failed attempts. */
    agent_write(&a, 20);
    sl_t_sleep_ms(3000);
    char *text = NULL;
    assert_int_equal(sl_t_http_get(a.mport, "/metrics", &text), 200);
    double retries = sl_t_series_value(text, "sluice_sink_retries_total{sink=\"loki\"}");
    free(text);
    lr = receiver(lport);
    wait_received(lr, 20, 10000);
    tally_add(&t, lr);
    assert_int_equal(tally_missing(&t, 40), 0);
    agent_stop(&a);
    sl_lr_stop(lr);

    char *log = sl_t_read_file(a.log, NULL);
    assert_non_null(log);
    long failed = count_substr(log, "event=sink_send_failed");
    long recovered = count_substr(log, "event=sink_recovered");
    const char *rec = strstr(log, "event=sink_recovered");
    long attempts = rec ? sl_t_parse_id(strstr(rec, "failed_attempts="), rec + strcspn(rec, "\n"),
                                        "failed_attempts=")
                        : -1;
    print_message("3 s outage: %.0f retries, %ld sink_send_failed line(s), recovery line "
                  "counts %ld failed attempts\n",
                  retries, failed, attempts);
    assert_true(retries >= 20);
    /* One line per 10 s interval: the first failure, not one per attempt. */
    assert_true(failed >= 1 && failed <= 2);
    assert_int_equal(recovered, 1);
    /* ...and the recovery says how many attempts failed. */
    assert_true(attempts >= 20);
    free(log);
    agent_free(&a);
}

/* ---- sluice tail ---------------------------------------------------------- */

static bool tail_following(void *arg)
{
    char *text = sl_t_read_file(arg, NULL);
    bool ok = text && strstr(text, "sluice tail: following");
    free(text);
    return ok;
}

typedef struct tail_wait {
    const char *path;
    long want;
} tail_wait;

static bool tail_has(void *arg)
{
    tail_wait *w = arg;
    char *text = sl_t_read_file(w->path, NULL);
    bool ok = text && count_substr(text, "{\"time\":") >= w->want;
    free(text);
    return ok;
}

static void test_tail_filters_without_disturbing(void **state)
{
    (void)state;
    static tally t;
    memset(&t, 0, sizeof t);
    const uint32_t n = 2000;
    sl_lr *lr = receiver(0);
    char *sinks = loki_sink("loki", sl_lr_port(lr), NULL);
    agent a;
    agent_config(&a, "ops-tail", "info", sinks);
    free(sinks);
    agent_start(&a);
    char *tail_log = sl_t_path(a.dir, "tail.out"), *other_log = sl_t_path(a.dir, "tail2.out");
    char *argv[] = {(char *)sl_t_bin(), "tail",    "-c",        a.cfg, "--match",
                    "^seq=[0-9]*7 ",    "--label", "input=app", NULL};
    pid_t tail = sl_t_spawn(argv, tail_log);
    char *argv2[] = {(char *)sl_t_bin(), "tail", "-c", a.cfg, "--label", "input=nope", NULL};
    pid_t other = sl_t_spawn(argv2, other_log);
    assert_true(sl_t_wait_until(tail_following, tail_log, 10000));
    assert_true(sl_t_wait_until(tail_following, other_log, 10000));

    for (uint32_t i = 0; i < 4; i++) agent_write(&a, n / 4);
    wait_received(lr, n, 20000);
    tally_add(&t, lr);
    assert_int_equal(tally_missing(&t, n), 0);
    tail_wait w = {tail_log, n / 10};
    bool got = sl_t_wait_until(tail_has, &w, 20000);
    /* The tap skips what a client could not take in time (counted, by
     * design): on a loaded machine every record shown, or each one missing
     * counted as dropped. */
    double dropped = sl_t_metric(a.mport, "sluice_tap_dropped_records_total");
    /* A bad regex is refused with the reason and exit code 2. */
    char *bad_log = sl_t_path(a.dir, "tail3.out");
    char *argv3[] = {(char *)sl_t_bin(), "tail", "-c", a.cfg, "--match", "(", NULL};
    pid_t bad = sl_t_spawn(argv3, bad_log);
    assert_int_equal(sl_t_wait(bad, 10000), 2);
    char *bad_text = sl_t_read_file(bad_log, NULL);
    assert_non_null(bad_text);
    assert_non_null(strstr(bad_text, "bad match regex"));

    sl_t_stop(tail, SIGTERM, 5000);
    sl_t_stop(other, SIGTERM, 5000);
    agent_stop(&a);

    char *text = sl_t_read_file(tail_log, NULL);
    char *other_text = sl_t_read_file(other_log, NULL);
    assert_non_null(text);
    assert_non_null(other_text);
    long shown = 0;
    for (const char *p = strstr(text, "{\"time\":"); p; p = strstr(p + 1, "{\"time\":")) {
        const char *l = strstr(p, "\"line\":\"seq=");
        assert_non_null(l);
        l += strlen("\"line\":\"seq=");
        long seq = sl_t_parse_id(l, l + 6, "");
        assert_true(seq >= 0 && seq < (long)n);
        assert_int_equal(seq % 10, 7);
        shown++;
    }
    print_message("tail showed %ld of %u records (every seq ending in 7 is %u; the tap dropped "
                  "%.0f); receiver got all %u; tail with another input's label showed %ld\n",
                  shown, n, n / 10, dropped, n, count_substr(other_text, "{\"time\":"));
    assert_true(dropped >= 0);
    assert_true(shown <= (long)n / 10);
    assert_true(shown + (long)dropped >= (long)n / 10);
    if (dropped == 0) {
        assert_true(got);
        assert_int_equal(shown, n / 10);
    }
    assert_int_equal(count_substr(other_text, "{\"time\":"), 0);
    free(text), free(other_text), free(bad_text), free(bad_log);
    free(tail_log), free(other_log);
    sl_lr_stop(lr);
    agent_free(&a);
}

int main(void)
{
    if (access(sl_t_bin(), X_OK) != 0) {
        fprintf(stderr, "SKIP: sluice binary not found (SLUICE_BIN)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_survives_loki_outage),
        cmocka_unit_test(test_metrics_match_traffic),
        cmocka_unit_test(test_secrets_never_logged),
        cmocka_unit_test(test_failing_sink_logs_rate_limited),
        cmocka_unit_test(test_tail_filters_without_disturbing),
    };
    return sl_t_run_tests(tests);
}
