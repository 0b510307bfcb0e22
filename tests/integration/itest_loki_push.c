/* The loki_push input driven through the real binary, relaying to the Loki
 * test receiver (tests/loki_receiver.c): Promtail-shaped pushes
 * (protobuf + snappy, tenant header, escaped labels, structured metadata),
 * JSON and gzip'd JSON, and a second sluice's Loki sink, arrive byte-exact
 * in lines, labels and tenant; malformed bodies get 400 with the reason,
 * oversize 413, wrong path/method/credentials 404/405/401; a full buffer
 * answers 429 with Retry-After and the retried push arrives once; a
 * sluice -> sluice -> Loki chain loses nothing when the middle one is
 * killed with -9 (the middle answers 204 only once it delivered). Hostile
 * senders (decision 0072): bodies built to take memory get 413, slow and
 * greedy clients are bounded, SIGTERM with them attached is prompt. Every
 * server listens on 127.0.0.1 (clients may come from other 127/8
 * addresses).
 *
 * One file over 800 lines: every case drives the same relay agent, client
 * and receiver helpers of the one input. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers.h"
#include "tests/push_body.h"
#include "tests/loki_receiver.h"

typedef struct agent {
    char *dir, *cfg, *log;
    pid_t pid;
} agent;

static void agent_start(agent *a, const char *tag, const char *yaml_fmt, ...)
{
    memset(a, 0, sizeof *a);
    a->dir = sl_t_tmpdir(tag);
    a->cfg = sl_t_path(a->dir, "c.yml");
    a->log = sl_t_path(a->dir, "agent.log");
    char *body = NULL;
    va_list ap;
    va_start(ap, yaml_fmt);
    assert_true(vasprintf(&body, yaml_fmt, ap) > 0);
    va_end(ap);
    char *yaml = NULL;
    assert_true(asprintf(&yaml, "data_dir: %s/data\nshutdown_timeout: 5s\n%s", a->dir, body) > 0);
    assert_int_equal(sl_t_write_file(a->cfg, yaml, strlen(yaml)), 0);
    free(yaml), free(body);
}

static void agent_run(agent *a)
{
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", a->cfg, NULL};
    long before = sl_t_file_count(a->log, "agent_started");
    a->pid = sl_t_spawn(argv, a->log);
    assert_true(a->pid > 0);
    sl_t_kill_at_exit(a->pid);
    bool up = sl_t_wait_log(a->log, "agent_started", (int)before + 1, sl_t_scaled_ms(20000));
    if (!up) {
        char *l = sl_t_read_file(a->log, NULL);
        fprintf(stderr, "agent log:\n%s\n", l ? l : "");
        free(l);
    }
    assert_true(up);
}

static void agent_stop(agent *a)
{
    int st = a->pid > 0 ? sl_t_stop(a->pid, SIGTERM, sl_t_scaled_ms(20000)) : 0;
    sl_t_kill_at_exit(0);
    if (st != 0) {
        char *l = sl_t_read_file(a->log, NULL);
        fprintf(stderr, "agent log:\n%s\n", l ? l : "");
        free(l);
    }
    sl_t_rmtree(a->dir);
    free(a->dir), free(a->cfg), free(a->log);
    assert_int_equal(st, 0);
}

/* ---- a client ---- */

typedef struct reply {
    long code;
    char body[512];
    size_t n;
    char retry_after[32];
} reply;

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
    reply *r = arg;
    size_t n = sz * nm, room = sizeof r->body - 1 - r->n;
    memcpy(r->body + r->n, p, n < room ? n : room);
    r->n += n < room ? n : room;
    r->body[r->n] = 0;
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
    reply *r = arg;
    size_t n = sz * nm;
    if (n > 13 && !strncasecmp(p, "Retry-After: ", 13))
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)strcspn(p + 13, "\r\n"),
                 p + 13);
    return n;
}

/* When set, requests go over HTTPS trusting this PEM file. */
static const char *https_ca;
/* When set, requests come from this loopback address (another sender). */
static const char *client_src;

/* POSTs body (GET when method says so) to path on 127.0.0.1:port. */
static reply post(int port, const char *method, const char *path, const char *ctype,
                  const char *cenc, const char *tenant, const char *auth, const void *body,
                  size_t n)
{
    reply r = {0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[256], h[4][256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", https_ca ? "https" : "http", port, path);
    if (https_ca) curl_easy_setopt(c, CURLOPT_CAINFO, https_ca);
    if (client_src) curl_easy_setopt(c, CURLOPT_INTERFACE, client_src);
    struct curl_slist *hs = NULL;
    snprintf(h[0], sizeof h[0], "Content-Type: %s", ctype ? ctype : "application/x-protobuf");
    hs = curl_slist_append(hs, h[0]);
    if (cenc)
        snprintf(h[1], sizeof h[1], "Content-Encoding: %s", cenc), hs = curl_slist_append(hs, h[1]);
    if (tenant)
        snprintf(h[2], sizeof h[2], "X-Scope-OrgID: %s", tenant), hs = curl_slist_append(hs, h[2]);
    if (auth)
        snprintf(h[3], sizeof h[3], "Authorization: %s", auth), hs = curl_slist_append(hs, h[3]);
    hs = curl_slist_append(hs, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)sl_t_scaled_ms(30000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
    else
        r.code = -1;
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return r;
}

/* A JSON push to the push path (auth: an Authorization value or NULL). */
static reply push_json(int port, const char *auth, const char *j)
{
    return post(port, "POST", "/loki/api/v1/push", "application/json", NULL, NULL, auth, j,
                strlen(j));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the receiver's view ---- */

typedef struct lr_goal {
    sl_lr *lr;
    size_t n;
} lr_goal;

static bool lr_has(void *arg)
{
    lr_goal *g = arg;
    return sl_lr_nentries(g->lr) >= g->n;
}

static void wait_entries(sl_lr *lr, size_t n)
{
    lr_goal g = {lr, n};
    if (!sl_t_wait_until(lr_has, &g, sl_t_scaled_ms(30000)))
        fail_msg("receiver has %zu entries, waited for %zu", sl_lr_nentries(lr), n);
}

/* The entry whose line is exactly line (n bytes); fails when absent or
 * present more than once. */
static const sl_lr_entry *find_once(sl_lr *lr, const char *line, size_t n)
{
    const sl_lr_entry *hit = NULL;
    size_t count = 0;
    for (size_t i = 0; i < sl_lr_nentries(lr); i++) {
        const sl_lr_entry *e = sl_lr_entry_at(lr, i);
        if (e->line_n == n && !memcmp(e->line, line, n)) hit = e, count++;
    }
    if (count != 1) fail_msg("line '%.*s' arrived %zu times", (int)n, line, count);
    return hit;
}

static const char *meta_of(const sl_lr_entry *e, const char *name)
{
    for (uint32_t i = 0; i < e->nmeta; i++)
        if (!strcmp(e->meta[i].name, name)) return e->meta[i].value;
    return NULL;
}

/* Starts (and waits for) a sluice whose loki_push input (input_more: its
 * further keys, YAML lines) relays to the receiver on lport through a Loki
 * sink that waits batch_wait for more (sink_more: its further keys);
 * returns the input's port. */
static int relay_start(agent *m, const char *tag, int lport, const char *batch_wait,
                       const char *input_more, const char *sink_more)
{
    int port = sl_t_free_port();
    agent_start(m, tag,
                "inputs:\n"
                "  - name: push\n"
                "    type: loki_push\n"
                "    listen: \"127.0.0.1:%d\"\n"
                "%s"
                "sinks:\n"
                "  - name: lk\n"
                "    type: loki\n"
                "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                "    tenant: \"${fields.tenant:-anonymous}\"\n"
                "    structured_metadata: [trace_id]\n"
                "    max_batch_wait: %s\n"
                "    min_backoff: 10ms\n"
                "    max_backoff: 200ms\n"
                "%s",
                port, input_more ? input_more : "", lport, batch_wait ? batch_wait : "20ms",
                sink_more ? sink_more : "");
    agent_run(m);
    return port;
}

/* An agent reading the file path into the Loki sink at port (sink_more:
 * the sink's further keys); started. */
static void edge_start(agent *a, const char *tag, char **path, const char *labels, int port,
                       const char *sink_more)
{
    agent_start(a, tag, "%s", "# written below, once the folder exists\n");
    *path = sl_t_path(a->dir, "app.log");
    char *yaml = NULL;
    assert_true(asprintf(&yaml,
                         "data_dir: %s/data\n"
                         "shutdown_timeout: 5s\n"
                         "inputs:\n"
                         "  - name: app\n"
                         "    type: file\n"
                         "    paths: [\"%s\"]\n"
                         "    poll_interval: 20ms\n"
                         "    checkpoint_interval: 100ms\n"
                         "    labels: %s\n"
                         "sinks:\n"
                         "  - name: up\n"
                         "    type: loki\n"
                         "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                         "    max_batch_wait: 20ms\n"
                         "%s",
                         a->dir, *path, labels, port, sink_more) > 0);
    assert_int_equal(sl_t_write_file(a->cfg, yaml, strlen(yaml)), 0);
    free(yaml);
}

/* A JSON push of ten entries of stream {job="<job>"}, push k; padded_line
 * gives the lines. */
static void padded_line(char *line, size_t cap, const char *job, int k, int i)
{
    snprintf(line, cap, "%s %03d line %02d %s", job, k, i, "padding padding padding padding");
}

static void padded_push(char *j, size_t cap, const char *job, int64_t t0, int k)
{
    int o = snprintf(j, cap, "{\"streams\":[{\"stream\":{\"job\":\"%s\"},\"values\":[", job);
    for (int i = 0; i < 10; i++) {
        char line[128];
        padded_line(line, sizeof line, job, k, i);
        o += snprintf(j + o, cap - (size_t)o, "%s[\"%lld\",\"%s\"]", i ? "," : "",
                      (long long)t0 + k * 10 + i, line);
    }
    snprintf(j + o, cap - (size_t)o, "]}]}");
}

/* Promtail-, JSON- and sluice-shaped pushes relayed byte-exact. */
static void test_relay_byte_exact(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    agent m;
    int port = relay_start(&m, "lpush", sl_lr_port(lr), NULL, NULL, NULL);

    /* Promtail: protobuf in a snappy block, a tenant, labels with escapes. */
    int64_t t0 = now_ns();
    pbuf req = {0}, s = {0};
    pb_stream_labels(&s, "{job=\"promtail\", path=\"/var/log/a \\\"q\\\" \\\\ \\u00e9\"}");
    static const char *const meta[] = {"trace_id", "abc123", NULL};
    pb_entry(&s, t0, "promtail one\ttab \"quoted\" \xc3\xa9", 26, NULL);
    pb_entry(&s, t0 + 1, "promtail two", 12, meta);
    pb_add_stream(&req, &s);
    pb_stream_labels(&s, "{job=\"promtail\", stream=\"stderr\"}");
    pb_entry(&s, t0 + 2, "promtail three", 14, NULL);
    pb_add_stream(&req, &s);
    size_t n;
    char *body = pb_snappy(&req, &n);
    reply r = post(port, "POST", "/loki/api/v1/push", NULL, NULL, "team-a", NULL, body, n);
    free(body);
    assert_int_equal(r.code, 204);

    /* JSON, then gzip'd JSON. */
    char j[512];
    snprintf(j, sizeof j,
             "{\"streams\":[{\"stream\":{\"job\":\"json\",\"env\":\"a\\\"b\"},\"values\":"
             "[[\"%lld\",\"json one \\u00e9\"],[\"%lld\",\"json two\",{\"trace_id\":\"t2\"}]]}]}",
             (long long)t0 + 3, (long long)t0 + 4);
    r = push_json(port, NULL, j);
    assert_int_equal(r.code, 204);
    snprintf(j, sizeof j,
             "{\"streams\":[{\"stream\":{\"job\":\"gz\"},\"values\":[[\"%lld\",\"gzip one\"]]}]}",
             (long long)t0 + 5);
    char *gz = pb_gzip(j, strlen(j), &n);
    r = post(port, "POST", "/loki/api/v1/push", "application/json", "gzip", "team-b", NULL, gz, n);
    free(gz);
    assert_int_equal(r.code, 204);

    /* Another sluice's Loki sink (protobuf) pushing a file. */
    agent a;
    char *logf;
    edge_start(&a, "lpush-src", &logf, "{job: sluice, host: \"node-1\"}", port,
               "    tenant: team-c\n");
    const char *lines = "sluice one\nsluice two \\ \"x\"\n";
    assert_int_equal(sl_t_write_file(logf, lines, strlen(lines)), 0);
    agent_run(&a);
    wait_entries(lr, 8);

    const sl_lr_entry *e = find_once(lr, "promtail one\ttab \"quoted\" \xc3\xa9", 26);
    assert_string_equal(e->labels,
                        "{job=\"promtail\", path=\"/var/log/a \\\"q\\\" \\\\ \xc3\xa9\"}");
    assert_int_equal(e->ts_ns, t0);
    assert_string_equal(e->tenant, "team-a");
    e = find_once(lr, "promtail two", 12);
    assert_non_null(meta_of(e, "trace_id"));
    assert_string_equal(meta_of(e, "trace_id"), "abc123");
    assert_int_equal(e->ts_ns, t0 + 1);
    e = find_once(lr, "promtail three", 14);
    assert_string_equal(e->labels, "{job=\"promtail\", stream=\"stderr\"}");
    e = find_once(lr, "json one \xc3\xa9", 11);
    assert_string_equal(e->labels, "{env=\"a\\\"b\", job=\"json\"}");
    assert_string_equal(e->tenant, "anonymous");
    assert_int_equal(e->ts_ns, t0 + 3);
    e = find_once(lr, "json two", 8);
    assert_string_equal(meta_of(e, "trace_id"), "t2");
    e = find_once(lr, "gzip one", 8);
    assert_string_equal(e->labels, "{job=\"gz\"}");
    assert_string_equal(e->tenant, "team-b");
    e = find_once(lr, "sluice one", 10);
    assert_string_equal(e->labels, "{host=\"node-1\", job=\"sluice\"}");
    assert_string_equal(e->tenant, "team-c");
    e = find_once(lr, "sluice two \\ \"x\"", 16);
    assert_string_equal(e->labels, "{host=\"node-1\", job=\"sluice\"}");

    free(logf);
    agent_stop(&a);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* Malformed, oversize, unauthorized: refused with a reason, nothing relayed. */
static void test_refusals(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    agent m;
    int port = relay_start(&m, "lpush-bad", sl_lr_port(lr), NULL,
                           "    max_body_bytes: 4KiB\n"
                           "    auth: {bearer_token: s3cret}\n",
                           NULL);
    const char *tok = "Bearer s3cret";
    const char *j = "{\"streams\":[]}";
    reply r = push_json(port, NULL, j);
    assert_int_equal(r.code, 401);
    r = push_json(port, "Bearer wrong", j);
    assert_int_equal(r.code, 401);
    r = push_json(port, tok, j);
    assert_int_equal(r.code, 204);
    r = post(port, "POST", "/api/prom/push", "application/json", NULL, NULL, tok, j, strlen(j));
    assert_int_equal(r.code, 404);
    r = post(port, "GET", "/loki/api/v1/push", NULL, NULL, NULL, tok, NULL, 0);
    assert_int_equal(r.code, 405);

    static const struct {
        const char *ctype, *cenc, *body, *reason;
    } bad[] = {
        {NULL, NULL, "definitely not snappy", "snappy"},
        {"application/json", NULL, "{\"streams\":[", "JSON"},
        {"application/json", NULL, "{\"streams\":[{\"stream\":{},\"values\":[[\"x\",\"l\"]]}]}",
         "timestamp"},
        {"application/json", "br", "{}", "Content-Encoding"},
        {NULL, "gzip", "not gzip", "gzip"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = post(port, "POST", "/loki/api/v1/push", bad[i].ctype, bad[i].cenc, NULL, tok,
                 bad[i].body, strlen(bad[i].body));
        if (r.code != 400 || !strstr(r.body, bad[i].reason))
            fail_msg("case %zu: %ld '%s'", i, r.code, r.body);
    }
    /* Protobuf with a label string Loki would not parse. */
    pbuf req = {0}, s = {0};
    pb_stream_labels(&s, "{job=\"a\\q\"}");
    pb_entry(&s, now_ns(), "x", 1, NULL);
    pb_add_stream(&req, &s);
    size_t n;
    char *body = pb_snappy(&req, &n);
    r = post(port, "POST", "/loki/api/v1/push", NULL, NULL, NULL, tok, body, n);
    free(body);
    assert_int_equal(r.code, 400);
    assert_non_null(strstr(r.body, "escape"));
    /* Above max_body_bytes. */
    char *big = malloc(8192);
    memset(big, 'x', 8192);
    r = post(port, "POST", "/loki/api/v1/push", "application/json", NULL, NULL, tok, big, 8192);
    free(big);
    assert_int_equal(r.code, 413);
    assert_int_equal(sl_lr_nentries(lr), 0);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* A full buffer (Loki down, no spool, when_full: block) answers 429 with
 * Retry-After; the refused push is in no sink, so its retry arrives once. */
static void test_full_buffer_429(void **st)
{
    (void)st;
    int lport = sl_t_free_port();
    agent m;
    int port = relay_start(&m, "lpush-full", lport, NULL,
                           "    ack_timeout: 300ms\n"
                           "    full_wait: 200ms\n"
                           "    retry_after: 3s\n",
                           "    buffer: {memory_max: 1KiB, when_full: block}\n");
    /* Each push is taken while the buffer has room, then waits for an
     * acknowledgement that cannot come (503); once the sink holds what it
     * can and memory is full, pushes are refused at once (429). */
    int64_t t0 = now_ns();
    int taken = 0;
    reply r = {0};
    char j[4096];
    for (int k = 0; k < 50; k++) {
        padded_push(j, sizeof j, "full", t0, k);
        r = push_json(port, NULL, j);
        assert_string_equal(r.retry_after, "3");
        if (r.code == 429) break;
        assert_int_equal(r.code, 503);
        taken++;
    }
    assert_int_equal(r.code, 429);
    assert_true(taken >= 1);
    /* Loki comes up: what was taken drains, the refused push gets 204 on
     * a retry and arrives once. */
    sl_lr *lr;
    sl_lr_opts lo = {.port = lport};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    wait_entries(lr, (size_t)taken * 10);
    do r = push_json(port, NULL, j);
    while (r.code == 429);
    assert_int_equal(r.code, 204);
    wait_entries(lr, (size_t)taken * 10 + 10);
    char line[128];
    for (int k = 0; k <= taken; k++) {
        padded_line(line, sizeof line, "full", k, 9);
        find_once(lr, line, strlen(line));
    }
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* Loki down with a small spool: pushes are answered 204 once spooled
 * (memory is full, the spool takes the oldest), then 429 once the spool is
 * full too; everything answered 204 arrives when Loki is back. */
static void test_spool_then_429(void **st)
{
    (void)st;
    int lport = sl_t_free_port();
    agent m;
    int port = relay_start(&m, "lpush-spool", lport, NULL,
                           "    ack_timeout: 100ms\n"
                           "    full_wait: 100ms\n",
                           "    buffer: {memory_max: 4KiB, spool_max: 16KiB, when_full: block}\n");
    int64_t t0 = now_ns();
    int acked[400] = {0}, n204 = 0, k;
    reply r = {0};
    char j[4096];
    for (k = 0; k < 400; k++) {
        padded_push(j, sizeof j, "spool", t0, k);
        r = push_json(port, NULL, j);
        if (r.code == 429) break;
        if (r.code != 204 && r.code != 503) fail_msg("push %d: %ld %s", k, r.code, r.body);
        if (r.code == 204) acked[k] = 1, n204++;
    }
    assert_int_equal(r.code, 429);
    assert_true(n204 >= 1);
    sl_lr *lr;
    sl_lr_opts lo = {.port = lport};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    wait_entries(lr, (size_t)n204 * 10);
    char line[128];
    for (int i = 0; i < k; i++) {
        if (!acked[i]) continue;
        for (int e = 0; e < 10; e++) {
            padded_line(line, sizeof line, "spool", i, e);
            size_t n = strlen(line);
            bool found = false;
            for (size_t x = 0; x < sl_lr_nentries(lr) && !found; x++) {
                const sl_lr_entry *en = sl_lr_entry_at(lr, x);
                found = en->line_n == n && !memcmp(en->line, line, n);
            }
            if (!found) fail_msg("acknowledged '%s' never arrived", line);
        }
    }
    fprintf(stderr, "spool: %d pushes answered 204 with Loki down, 429 at push %d\n", n204, k);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* A dry run acknowledges nothing, so a push is answered once it is in the
 * (printing) pipeline, not after ack_timeout; the record is printed. */
static void test_dry_run(void **st)
{
    (void)st;
    int port = sl_t_free_port();
    agent m;
    agent_start(&m, "lpush-dry",
                "inputs:\n"
                "  - name: push\n"
                "    type: loki_push\n"
                "    listen: \"127.0.0.1:%d\"\n"
                "    ack_timeout: 1h\n"
                "sinks:\n"
                "  - {name: out, type: stdout}\n",
                port);
    char *argv[] = {(char *)sl_t_bin(), "run", "--dry-run", "-c", m.cfg, NULL};
    m.pid = sl_t_spawn(argv, m.log);
    assert_true(m.pid > 0);
    sl_t_kill_at_exit(m.pid);
    assert_true(sl_t_wait_log(m.log, "agent_started", 1, sl_t_scaled_ms(20000)));
    const char *j = "{\"streams\":[{\"stream\":{\"job\":\"dry\"},\"values\":[[\"1\",\"dry run "
                    "line\"]]}]}";
    reply r = push_json(port, NULL, j);
    assert_int_equal(r.code, 204);
    assert_true(sl_t_wait_log(m.log, "\"line\":\"dry run line\"", 1, sl_t_scaled_ms(20000)));
    agent_stop(&m);
}

typedef struct ids_goal {
    sl_lr *lr;
    long want;
    long distinct;
    unsigned char *seen;
} ids_goal;

static bool all_ids(void *arg)
{
    ids_goal *g = arg;
    size_t n = sl_lr_nentries(g->lr);
    long d = 0;
    memset(g->seen, 0, (size_t)g->want);
    for (size_t i = 0; i < n; i++) {
        const sl_lr_entry *e = sl_lr_entry_at(g->lr, i);
        long id = sl_t_parse_id(e->line, e->line + e->line_n, "id=");
        if (id >= 0 && id < g->want && !g->seen[id]) g->seen[id] = 1, d++;
    }
    g->distinct = d;
    return d == g->want;
}

static bool lr_at_least(void *arg)
{
    lr_goal *g = arg;
    return sl_lr_nentries(g->lr) >= g->n;
}

/* sluice -> sluice -> Loki: kill -9 the middle one mid-way, start it again
 * on the same port: every line arrives (at least once). */
static void test_chain_kill9(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {.discard = false};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    agent m;
    int port = relay_start(&m, "lpush-mid", sl_lr_port(lr), NULL, NULL,
                           "    buffer: {spool_max: 64MiB}\n");
    agent a;
    char *logf;
    edge_start(&a, "lpush-edge", &logf, "{job: chain}", port,
               "    max_batch_bytes: 16KiB\n"
               "    min_backoff: 20ms\n"
               "    max_backoff: 300ms\n");
    const long total = sl_t_sanitized() ? 20000 : 60000;
    assert_int_equal(sl_t_append_ids(logf, 0, total, ""), 0);
    agent_run(&a);
    /* Mid-stream: pushes in flight from the edge, batches in the middle's
     * buffer and sink. */
    lr_goal g = {lr, (size_t)total / 4};
    assert_true(sl_t_wait_until(lr_at_least, &g, sl_t_scaled_ms(30000)));
    kill(m.pid, SIGKILL);
    assert_int_equal(sl_t_wait(m.pid, sl_t_scaled_ms(10000)), 128 + SIGKILL);
    size_t at_kill = sl_lr_nentries(lr);
    agent_run(&m);
    ids_goal ig = {lr, total, 0, calloc((size_t)total, 1)};
    bool ok = sl_t_wait_until(all_ids, &ig, sl_t_scaled_ms(60000));
    if (!ok) fail_msg("%ld of %ld lines arrived", ig.distinct, total);
    fprintf(stderr, "chain: %ld lines, %zu entries at the kill, %zu in all (%zu duplicates)\n",
            total, at_kill, sl_lr_nentries(lr), sl_lr_nentries(lr) - (size_t)total);
    free(ig.seen);
    free(logf);
    agent_stop(&a);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* ack: delivered with a relay sink that would wait an hour to fill a
 * request: the push asks its sinks to send at once (the batch's
 * flush_now), so each is answered as soon as the receiver has it, not
 * max_batch_wait (or ack_timeout) later. */
static void test_delivered_flushes_now(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    agent m;
    int port = relay_start(&m, "lpush-now", sl_lr_port(lr), "1h", "    ack_timeout: 1h\n", NULL);
    int64_t t0 = now_ns();
    char j[4096];
    for (int k = 0; k < 3; k++) {
        padded_push(j, sizeof j, "now", t0, k);
        int64_t start = sl_t_now_ms();
        reply r = push_json(port, NULL, j);
        int64_t took = sl_t_now_ms() - start;
        if (r.code != 204)
            fail_msg("push %d: %ld '%s' after %lld ms", k, r.code, r.body, (long long)took);
        /* Well under any batch wait (a loaded machine takes some ms). */
        if (took > sl_t_scaled_ms(5000))
            fail_msg("push %d answered after %lld ms", k, (long long)took);
        /* Delivered means delivered: the receiver has it already. */
        assert_true(sl_lr_nentries(lr) >= (size_t)(k + 1) * 10);
    }
    char line[128];
    padded_line(line, sizeof line, "now", 2, 9);
    find_once(lr, line, strlen(line));
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* HTTPS with basic auth: the listener speaks only TLS, and the relayed
 * entry arrives. */
static void test_https_basic_auth(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    char *crt = NULL, *key = NULL, *more = NULL;
    assert_true(asprintf(&crt, "%s/tests/fixtures/k8s/kubelet-test.crt", sl_t_src()) > 0);
    assert_true(asprintf(&key, "%s/tests/fixtures/k8s/kubelet-test.key", sl_t_src()) > 0);
    assert_true(asprintf(&more,
                         "    tls: {cert_file: \"%s\", key_file: \"%s\"}\n"
                         "    auth: {username: node, password: \"pa:ss\"}\n",
                         crt, key) > 0);
    agent m;
    int port = relay_start(&m, "lpush-tls", sl_lr_port(lr), NULL, more, NULL);
    free(more);
    char j[256];
    snprintf(j, sizeof j,
             "{\"streams\":[{\"stream\":{\"job\":\"tls\"},\"values\":[[\"%lld\",\"over "
             "tls\"]]}]}",
             (long long)now_ns());
    /* Plain HTTP to the TLS port gets no answer. */
    reply r = push_json(port, NULL, j);
    assert_true(r.code != 204);
    https_ca = crt;
    r = post(port, "POST", "/loki/api/v1/push", "application/json", NULL, NULL,
             "Basic bm9kZTpwYTpzcw==", j, strlen(j)); /* node:pa:ss */
    https_ca = NULL;
    assert_int_equal(r.code, 204);
    wait_entries(lr, 1);
    find_once(lr, "over tls", 8);
    https_ca = crt;
    r = post(port, "POST", "/loki/api/v1/push", "application/json", NULL, NULL,
             "Basic bm9kZTp3cm9uZw==", j, strlen(j)); /* node:wrong */
    https_ca = NULL;
    assert_int_equal(r.code, 401);
    free(crt), free(key);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* ---- hostile clients ---- */

/* Bodies made to take memory once decoded get 413 with the reason, the
 * agent's peak memory stays bounded, and it relays the next push. */
static void test_hostile_bodies(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    agent m;
    int port = relay_start(&m, "lpush-bomb", sl_lr_port(lr), NULL, NULL, NULL);
    /* gzip: 256 MiB in about 256 KiB. */
    size_t n;
    char *b = pb_gzip_fill("", "A", 256u << 20, "", &n);
    reply r = post(port, "POST", "/loki/api/v1/push", NULL, "gzip", NULL, NULL, b, n);
    free(b);
    if (r.code != 413 || !strstr(r.body, "decoded body above"))
        fail_msg("gzip bomb: %ld '%s'", r.code, r.body);
    /* snappy whose header claims 4 GiB - 1. */
    static const unsigned char claim[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 'x'};
    r = post(port, "POST", "/loki/api/v1/push", NULL, NULL, NULL, NULL, claim, sizeof claim);
    if (r.code != 413 || !strstr(r.body, "decoded body above"))
        fail_msg("snappy claim: %ld '%s'", r.code, r.body);
    /* 200,000 one-byte entries under 64 labels: a small body, 2 GB of
     * records and fields. */
    pbuf req = {0}, s = {0};
    char labels[2048];
    int o = snprintf(labels, sizeof labels, "{");
    for (int i = 0; i < 64; i++)
        o += snprintf(labels + o, sizeof labels - (size_t)o, "%sl%02d=\"v\"", i ? "," : "", i);
    snprintf(labels + o, sizeof labels - (size_t)o, "}");
    pb_stream_labels(&s, labels);
    for (int i = 0; i < 200000; i++) pb_entry(&s, 1, "x", 1, NULL);
    pb_add_stream(&req, &s);
    b = pb_snappy(&req, &n);
    r = post(port, "POST", "/loki/api/v1/push", NULL, NULL, NULL, NULL, b, n);
    free(b);
    if (r.code != 413 || !strstr(r.body, "as records"))
        fail_msg("labels x entries: %ld '%s' (%zu bytes)", r.code, r.body, n);
    /* JSON of 10 million empty arrays and objects behind gzip: 60 MB of
     * text (under max_decoded_bytes), gigabytes as a jansson tree. */
    b = pb_gzip_fill("{\"streams\":[],\"x\":[", "[],{},", 10000000, "[]]}", &n);
    r = post(port, "POST", "/loki/api/v1/push", "application/json", "gzip", NULL, NULL, b, n);
    free(b);
    if (r.code != 413 || !strstr(r.body, "once parsed"))
        fail_msg("JSON tree bomb: %ld '%s'", r.code, r.body);
    long rss = sl_t_peak_rss_kib(m.pid);
    fprintf(stderr, "hostile bodies: peak RSS %ld KiB\n", rss);
    assert_true(rss > 0 && rss < (sl_t_sanitized() ? 1024 : 256) * 1024);
    const char *j = "{\"streams\":[{\"stream\":{\"job\":\"after\"},\"values\":[[\"1\",\"after "
                    "the bombs\"]]}]}";
    r = push_json(port, NULL, j);
    assert_int_equal(r.code, 204);
    wait_entries(lr, 1);
    find_once(lr, "after the bombs", 15);
    agent_stop(&m);
    sl_lr_stop(lr);
}

/* Raw clients: connections from a loopback address, each sending a head
 * (and some body), then one byte per 100 ms while `dribble` is set. */
typedef struct slow {
    int fd[16];
    int n;
    bool dribble;
    _Atomic int closed; /* connections the agent closed */
    _Atomic bool stop;
    pthread_t t;
} slow;

static int connect_from(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

/* The peer closed fd (within the time limit). */
static bool closed_by_peer(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[4096];
    int64_t deadline = sl_t_now_ms() + sl_t_scaled_ms(20000);
    while (sl_t_now_ms() < deadline) {
        if (poll(&p, 1, 100) != 1) continue;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    }
    return false;
}

static void *slow_run(void *arg)
{
    slow *w = arg;
    bool open[16];
    for (int i = 0; i < w->n; i++) open[i] = true;
    while (!atomic_load(&w->stop)) {
        struct pollfd p[16];
        for (int i = 0; i < w->n; i++) {
            p[i] = (struct pollfd){open[i] ? w->fd[i] : -1, POLLIN, 0};
            if (open[i] && w->dribble && send(w->fd[i], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN) {
                open[i] = false;
                atomic_fetch_add(&w->closed, 1);
            }
        }
        if (poll(p, (nfds_t)w->n, 100) <= 0) continue;
        for (int i = 0; i < w->n; i++) {
            char buf[512];
            if (!open[i] || !p[i].revents) continue;
            ssize_t r = recv(w->fd[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                open[i] = false;
                atomic_fetch_add(&w->closed, 1);
            }
        }
    }
    return NULL;
}

static void slow_start(slow *w, int port, const char *src, int n, const char *head, bool dribble)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    w->dribble = dribble;
    for (int i = 0; i < n; i++) {
        w->fd[i] = connect_from(port, src);
        send_all(w->fd[i], head, strlen(head));
    }
    assert_int_equal(pthread_create(&w->t, NULL, slow_run, w), 0);
}

static void slow_stop(slow *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->t, NULL);
    for (int i = 0; i < w->n; i++) close(w->fd[i]);
}

static bool all_closed(void *arg)
{
    slow *w = arg;
    return atomic_load(&w->closed) == w->n;
}

typedef struct metric_goal {
    int port;
    const char *name;
    double want;
    bool exact;
} metric_goal;

static bool metric_at(void *arg)
{
    metric_goal *g = arg;
    double v = sl_t_metric(g->port, g->name);
    return g->exact ? v == g->want : v >= g->want;
}

static void wait_metric(int port, const char *name, double want, bool exact)
{
    metric_goal g = {port, name, want, exact};
    if (!sl_t_wait_until(metric_at, &g, sl_t_scaled_ms(20000)))
        fail_msg("%s = %g, waited for %g", name, sl_t_metric(port, name), want);
}

#define BODY_HEAD                                                                                  \
    "POST /loki/api/v1/push HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"             \
    "Content-Length: 100000\r\n\r\n"

/* Slow and greedy senders: one address holds at most its share of the
 * connections, a body dribbled under idle_timeout is cut at
 * request_timeout, bodies held at once are bounded by max_pending_bytes
 * (429, then 204 once room frees); SIGTERM with dribblers, half-sent heads
 * and a half-sent body attached exits within shutdown_timeout. */
static void test_slow_and_greedy_clients(void **st)
{
    (void)st;
    sl_lr *lr;
    sl_lr_opts lo = {0};
    assert_int_equal(sl_lr_start(&lo, &lr), 0);
    int port = sl_t_free_port(), mport = sl_t_free_port();
    agent m;
    agent_start(&m, "lpush-slow",
                "metrics: {listen: \"127.0.0.1:%d\"}\n"
                "inputs:\n"
                "  - name: push\n"
                "    type: loki_push\n"
                "    listen: \"127.0.0.1:%d\"\n"
                "    max_connections: 32\n"
                "    max_connections_per_address: 4\n"
                "    request_timeout: 2s\n"
                "    idle_timeout: 3s\n"
                "    max_pending_bytes: 100KiB\n"
                "sinks:\n"
                "  - name: lk\n"
                "    type: loki\n"
                "    url: \"http://127.0.0.1:%d/loki/api/v1/push\"\n"
                "    max_batch_wait: 20ms\n",
                mport, port, sl_lr_port(lr));
    agent_run(&m);
    slow d;
    slow_start(&d, port, "127.0.0.1", 4, BODY_HEAD "x", true);
    /* The address's fifth connection is closed at once. */
    int fifth = connect_from(port, "127.0.0.1");
    assert_true(closed_by_peer(fifth));
    close(fifth);
    /* Another address is served meanwhile. */
    const char *j = "{\"streams\":[{\"stream\":{\"job\":\"slow\"},\"values\":[[\"1\",\"served "
                    "while dribbled\"]]}]}";
    client_src = "host!127.0.0.2";
    reply r = push_json(port, NULL, j);
    client_src = NULL;
    assert_int_equal(r.code, 204);
    /* The dribbled bodies are cut at request_timeout. */
    if (!sl_t_wait_until(all_closed, &d, sl_t_scaled_ms(20000)))
        fail_msg("%d of 4 dribbled requests closed", atomic_load(&d.closed));
    wait_metric(mport, "sluice_loki_push_request_timeouts_total", 4, false);
    slow_stop(&d);

    /* A body half sent holds 60 KB of the 100 KiB; an 80 KB push would
     * pass it: refused. */
    int holder = connect_from(port, "127.0.0.3");
    send_all(holder, BODY_HEAD, strlen(BODY_HEAD));
    char *pad = malloc(90000);
    memset(pad, 'p', 90000);
    send_all(holder, pad, 60000);
    wait_metric(mport, "sluice_loki_push_pending_bytes", 60000, false);
    char *big = malloc(90000);
    snprintf(big, 90000,
             "{\"streams\":[{\"stream\":{\"job\":\"big\"},\"values\":[[\"2\",\"%.*s\"]]}]}", 80000,
             pad);
    client_src = "host!127.0.0.4";
    r = push_json(port, NULL, big);
    if (r.code != 429 || !strstr(r.body, "max_pending_bytes") || !r.retry_after[0])
        fail_msg("past max_pending_bytes: %ld '%s'", r.code, r.body);
    close(holder);
    wait_metric(mport, "sluice_loki_push_pending_bytes", 0, true);
    r = push_json(port, NULL, big);
    client_src = NULL;
    assert_int_equal(r.code, 204);
    wait_entries(lr, 2);
    free(big);

    /* Malformed framing: a head of 3,000 fields (431), a chunk size past
     * 64 bits, a Content-Length never reached (closed at idle_timeout), a
     * 256 MiB chunk streamed past max_body_bytes (read and dropped, no
     * memory held, closed once it stalls). */
    int f1 = connect_from(port, "127.0.0.8");
    const char *h1 = "POST /loki/api/v1/push HTTP/1.1\r\nHost: a\r\n";
    send_all(f1, h1, strlen(h1));
    /* 81 KB of fields: the server answers 431 and closes, maybe before
     * all of them are sent (then a reset ends the sending). */
    for (int i = 0; i < 3000; i++)
        if (send(f1, "X-Flood: aaaaaaaaaaaaaaaa\r\n", 27, MSG_NOSIGNAL) != 27) break;
    assert_true(closed_by_peer(f1));
    close(f1);
    const char *chunked = "POST /loki/api/v1/push HTTP/1.1\r\nHost: a\r\nContent-Type: "
                          "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    int f2 = connect_from(port, "127.0.0.8");
    send_all(f2, chunked, strlen(chunked));
    send_all(f2, "FFFFFFFFFFFFFFFFFFFF\r\nxx", 24);
    assert_true(closed_by_peer(f2));
    close(f2);
    int f3 = connect_from(port, "127.0.0.8");
    send_all(f3, BODY_HEAD "{\"streams\"", strlen(BODY_HEAD) + 10);
    assert_true(closed_by_peer(f3));
    close(f3);
    int f4 = connect_from(port, "127.0.0.8");
    send_all(f4, chunked, strlen(chunked));
    send_all(f4, "10000000\r\n", 10);
    char *mb = malloc(1 << 20);
    memset(mb, 'c', 1 << 20);
    /* Closed at request_timeout if the sending takes that long. */
    for (int i = 0; i < 12; i++)
        if (send(f4, mb, 1 << 20, MSG_NOSIGNAL) <= 0) break;
    free(mb);
    assert_true(closed_by_peer(f4));
    close(f4);
    wait_metric(mport, "sluice_loki_push_pending_bytes", 0, true);
    long rss = sl_t_peak_rss_kib(m.pid);
    fprintf(stderr, "slow clients: peak RSS %ld KiB\n", rss);
    assert_true(rss > 0 && rss < (sl_t_sanitized() ? 1024 : 256) * 1024);

    /* SIGTERM with body dribblers, heads half sent and a body half sent. */
    slow d2, h;
    slow_start(&d2, port, "127.0.0.5", 4, BODY_HEAD "x", true);
    slow_start(&h, port, "127.0.0.6", 4, "POST /loki/api/v1/push HTTP/1.1\r\nHo", false);
    holder = connect_from(port, "127.0.0.7");
    send_all(holder, BODY_HEAD, strlen(BODY_HEAD));
    send_all(holder, pad, 50000);
    wait_metric(mport, "sluice_loki_push_pending_bytes", 50000, false);
    free(pad);
    int64_t t0 = sl_t_now_ms();
    assert_int_equal(kill(m.pid, SIGTERM), 0);
    int stst = sl_t_wait(m.pid, sl_t_scaled_ms(20000));
    int64_t took = sl_t_now_ms() - t0;
    fprintf(stderr, "slow clients: SIGTERM to exit %lld ms\n", (long long)took);
    assert_int_equal(stst, 0);
    assert_true(took < 6000); /* shutdown_timeout (5 s) + 1 s */
    m.pid = 0;
    slow_stop(&d2);
    slow_stop(&h);
    close(holder);
    agent_stop(&m);
    sl_lr_stop(lr);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_byte_exact), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_https_basic_auth), cmocka_unit_test(test_full_buffer_429),
        cmocka_unit_test(test_spool_then_429),   cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_chain_kill9),      cmocka_unit_test(test_delivered_flushes_now),
        cmocka_unit_test(test_hostile_bodies),   cmocka_unit_test(test_slow_and_greedy_clients),
    };
    int rc = sl_t_run_tests(tests);
    curl_global_cleanup();
    return rc;
}
