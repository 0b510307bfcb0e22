#include "cli/http_tap.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <poll.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/http_auth.h"
#include "net/http_server.h"
#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/recjson.h"

/* The ring: entries and bytes both bounded, oldest evicted first. */
#define TAP_SLOTS     4096
#define TAP_BYTES     ((size_t)8 << 20)
#define TAP_ENTRY_MAX ((size_t)64 << 10)
/* Tails are for a human at a terminal. */
#define MAX_TAILS 2
/* The tap listener: a few connections, each a thread while it streams. */
#define CONN_LIMIT     8
#define PER_IP_LIMIT   4
#define IDLE_TIMEOUT_S 30
#define REQUEST_MEMORY ((size_t)16 << 10)
/* One pump takes at most this many entries (or bytes) from the ring. */
#define PUMP_ENTRIES 256
#define PUMP_BYTES   ((size_t)1 << 20)
/* Output waiting for the client beyond which new matches are skipped. */
#define TAIL_OUT_MAX ((size_t)1 << 20)
/* A client with nothing to send looks at the ring this often. */
#define POLL_MS 50
/* With nothing to send for this long, hand back to libmicrohttpd, which
 * then notices a client that went away. */
#define IDLE_RETURN_MS 1000
/* A stream with nothing to match still sends an empty line this often, so
 * the listener's idle timeout (which counts only traffic) never closes a
 * quiet tail; `sluice tail` ignores empty lines. */
#define HEARTBEAT_MS     10000
#define TAIL_MAX_LABELS  8
#define TAIL_LABEL_BYTES 256
/* PCRE2 bounds per record: the interpreter (no JIT, whose accounting
 * differs) stops a pattern that backtracks without end after this many
 * steps, recursion depth or heap KiB; the record then does not match. */
#define MATCH_LIMIT    100000u
#define DEPTH_LIMIT    5000u
#define HEAP_LIMIT_KIB 4096u
#define MAX_PATTERN    1024

/* One tapped record, immutable once published and shared by reference:
 * data holds the JSON, then the line, then "\nk=v\nk=v\n" labels. */
typedef struct tap_entry {
    atomic_int refs;
    uint32_t jn, lo, ln, bo, bn;
    size_t size;
    char data[];
} tap_entry;

struct sl_http_tap {
    sl_http_server *server;
    char *expected_auth; /* "Bearer TOKEN", compared by sl_http_auth_matches */
    atomic_bool stopping;
    atomic_int tails;   /* streaming clients; the pipeline copies only when > 0 */
    pthread_mutex_t mu; /* the ring; the pipeline only ever trylocks it */
    tap_entry *ring[TAP_SLOTS];
    uint64_t first, next; /* live entries: sequence numbers [first, next) */
    size_t bytes;
    pthread_mutex_t wait_mu; /* clients sleep on cv between polls; stop wakes them */
    pthread_cond_t cv;
    sl_metric *m_clients, *m_busy, *m_slow, *m_too_large, *m_limit, *m_sent;
};

typedef struct tail_client {
    sl_http_tap *tap;
    int fd; /* the client's socket, watched for a hang-up while idle */
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char labels[TAIL_MAX_LABELS][TAIL_LABEL_BYTES]; /* "\nk=v\n" */
    int nlabels;
    uint64_t next_seq, skipped;
    int64_t last_send_ms;
    sl_buf out;
    size_t out_off;
} tail_client;

static void entry_unref(tap_entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) free(e);
}

/* Caller holds t->mu. */
static void ring_clear(sl_http_tap *t)
{
    for (; t->first < t->next; t->first++) {
        entry_unref(t->ring[t->first % TAP_SLOTS]);
        t->ring[t->first % TAP_SLOTS] = NULL;
    }
    t->bytes = 0;
}

/* Caller holds t->mu. Takes the caller's reference. */
static void ring_push(sl_http_tap *t, tap_entry *e)
{
    while (t->next > t->first &&
           (t->next - t->first == TAP_SLOTS || t->bytes + e->size > TAP_BYTES)) {
        tap_entry *old = t->ring[t->first % TAP_SLOTS];
        t->bytes -= old->size;
        entry_unref(old);
        t->ring[t->first % TAP_SLOTS] = NULL;
        t->first++;
    }
    t->ring[t->next % TAP_SLOTS] = e;
    t->bytes += e->size;
    t->next++;
}

/* ---- the pipeline side -------------------------------------------------- */

bool sl_http_tap_active(const sl_http_tap *t)
{
    return t && atomic_load_explicit(&t->tails, memory_order_relaxed) > 0;
}

static void label_put(sl_buf *b, const char *k, size_t kn, const char *v, size_t vn)
{
    sl_buf_append(b, k, kn);
    sl_buf_putc(b, '=');
    sl_buf_append(b, v, vn);
    sl_buf_putc(b, '\n');
}

void sl_http_tap_publish(sl_http_tap *t, const sl_batch *b)
{
    if (!sl_http_tap_active(t)) return;
    /* Labels every record of the batch shares: the input and its static labels. */
    sl_buf common, one;
    sl_buf_init(&common, TAP_ENTRY_MAX / 2);
    sl_buf_init(&one, TAP_ENTRY_MAX);
    sl_buf_putc(&common, '\n');
    if (b->input) label_put(&common, "input", 5, b->input, strlen(b->input));
    for (uint32_t i = 0; i < b->nlabels; i++)
        label_put(&common, b->labels[i].key.p, b->labels[i].key.n, b->labels[i].val.p,
                  b->labels[i].val.n);
    uint64_t busy = 0, too_large = 0;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        sl_buf_reset(&one);
        if (sl_recjson_append(&one, b, r, SL_RJ_ALL) < 0) {
            too_large++;
            continue;
        }
        uint32_t jn = (uint32_t)one.len;
        uint32_t lo = (uint32_t)one.len;
        sl_buf_append(&one, r->line.p, r->line.n);
        uint32_t bo = (uint32_t)one.len;
        sl_buf_append(&one, common.p, common.len);
        for (uint32_t f = 0; f < r->nfields; f++)
            if (r->fields[f].flags & SL_FF_LABEL)
                label_put(&one, r->fields[f].key.p, r->fields[f].key.n, r->fields[f].val.p,
                          r->fields[f].val.n);
        tap_entry *e = NULL;
        if (one.failed || common.failed || !(e = malloc(sizeof *e + one.len))) {
            too_large++;
            continue;
        }
        atomic_init(&e->refs, 1);
        e->jn = jn;
        e->lo = lo;
        e->ln = (uint32_t)r->line.n;
        e->bo = bo;
        e->bn = (uint32_t)(one.len - bo);
        e->size = sizeof *e + one.len;
        memcpy(e->data, one.p, one.len);
        /* Never wait for a client: a busy ring loses the record for the tap. */
        if (pthread_mutex_trylock(&t->mu) != 0) {
            free(e);
            busy++;
            continue;
        }
        ring_push(t, e);
        pthread_mutex_unlock(&t->mu);
    }
    if (busy) sl_metric_add(t->m_busy, busy);
    if (too_large) sl_metric_add(t->m_too_large, too_large);
    sl_buf_free(&one);
    sl_buf_free(&common);
}

/* ---- a tail client (its own thread) --------------------------------------- */

static bool client_matches(tail_client *c, const tap_entry *e)
{
    for (int i = 0; i < c->nlabels; i++)
        if (!memmem(e->data + e->bo, e->bn, c->labels[i], strlen(c->labels[i]))) return false;
    if (!c->re) return true;
    int rc = pcre2_match(c->re, (PCRE2_SPTR)(e->data + e->lo), e->ln, 0, 0, c->md, c->mctx);
    if (rc >= 0) return true;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_NOMEMORY)
        sl_metric_inc(c->tap->m_limit);
    return false;
}

/* Takes new entries from the ring (references, under the lock, no work)
 * and matches them outside it. Returns whether there was anything new. */
static bool client_pump(tail_client *c)
{
    sl_http_tap *t = c->tap;
    tap_entry *batch[PUMP_ENTRIES];
    size_t n = 0, bytes = 0;
    pthread_mutex_lock(&t->mu);
    if (c->next_seq < t->first) { /* the ring moved on while this client was busy */
        c->skipped += t->first - c->next_seq;
        sl_metric_add(t->m_slow, t->first - c->next_seq);
        c->next_seq = t->first;
    }
    for (; c->next_seq < t->next && n < PUMP_ENTRIES && bytes < PUMP_BYTES; c->next_seq++) {
        tap_entry *e = t->ring[c->next_seq % TAP_SLOTS];
        atomic_fetch_add(&e->refs, 1);
        batch[n++] = e;
        bytes += e->size;
    }
    pthread_mutex_unlock(&t->mu);
    uint64_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        tap_entry *e = batch[i];
        if (!atomic_load(&t->stopping) && client_matches(c, e)) {
            if (c->out.len - c->out_off + e->jn + 1 > TAIL_OUT_MAX) {
                c->skipped++;
                sl_metric_inc(t->m_slow);
            } else {
                sl_buf_append(&c->out, e->data, e->jn);
                sl_buf_putc(&c->out, '\n');
                sent++;
            }
        }
        entry_unref(e);
    }
    if (sent) sl_metric_add(t->m_sent, sent);
    if (c->skipped && c->out.len - c->out_off + 64 < TAIL_OUT_MAX) {
        sl_buf_printf(&c->out, "{\"tail_skipped\":%llu}\n", (unsigned long long)c->skipped);
        c->skipped = 0;
    }
    return n > 0;
}

static void client_sleep(sl_http_tap *t, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&t->wait_mu);
    while (!atomic_load(&t->stopping) &&
           pthread_cond_timedwait(&t->cv, &t->wait_mu, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&t->wait_mu);
}

/* An idle stream writes nothing, so a client that went away would keep
 * its slot until the next matching record: look at the socket instead. */
static bool client_gone(const tail_client *c)
{
    if (c->fd < 0) return false;
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* libmicrohttpd's content reader, on the client's own thread. */
static ssize_t client_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    tail_client *c = cls;
    sl_http_tap *t = c->tap;
    int64_t give_back = sl_monotonic_ns() / 1000000 + IDLE_RETURN_MS;
    for (;;) {
        if (c->out.len > c->out_off) {
            size_t n = c->out.len - c->out_off;
            if (n > max) n = max;
            memcpy(buf, c->out.p + c->out_off, n);
            c->out_off += n;
            c->last_send_ms = sl_monotonic_ns() / 1000000;
            if (c->out_off == c->out.len) {
                sl_buf_reset(&c->out);
                c->out_off = 0;
            }
            return (ssize_t)n;
        }
        if (atomic_load(&t->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (client_pump(c)) continue;
        int64_t now = sl_monotonic_ns() / 1000000;
        if (now - c->last_send_ms >= HEARTBEAT_MS) {
            sl_buf_putc(&c->out, '\n');
            continue;
        }
        if (now >= give_back) return 0;
        if (client_gone(c)) return MHD_CONTENT_READER_END_WITH_ERROR;
        client_sleep(t, POLL_MS);
    }
}

static void client_free(void *cls)
{
    tail_client *c = cls;
    if (c->tap) {
        atomic_fetch_sub(&c->tap->tails, 1);
        sl_metric_gauge_add(c->tap->m_clients, -1);
    }
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_code_free(c->re);
    sl_buf_free(&c->out);
    free(c);
}

/* ---- requests -------------------------------------------------------------- */

typedef struct query_scan {
    tail_client *c;
    const char *match;
    int bad; /* 0 ok, 1 malformed, 2 labels, 3 unknown key */
} query_scan;

static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    query_scan *q = cls;
    if (!value || memchr(value, '\0', value_size) || strlen(key) != key_size) {
        q->bad = 1;
        return MHD_NO;
    }
    if (!strcmp(key, "match") && !q->match) {
        q->match = value;
    } else if (!strcmp(key, "label")) {
        if (!strchr(value, '=') || value[0] == '=' || q->c->nlabels == TAIL_MAX_LABELS ||
            value_size + 3 > TAIL_LABEL_BYTES) {
            q->bad = 2;
            return MHD_NO;
        }
        char *lab = q->c->labels[q->c->nlabels++];
        lab[0] = '\n';
        memcpy(lab + 1, value, value_size);
        lab[value_size + 1] = '\n';
        lab[value_size + 2] = '\0';
    } else {
        q->bad = 3;
        return MHD_NO;
    }
    return MHD_YES;
}

/* The same check as loki_push's (net/http_auth.c): digests compared, so
 * the time taken shows neither a prefix nor the length. */
static bool token_ok(const sl_http_tap *t, const char *auth)
{
    return auth && sl_http_auth_matches(t->expected_auth, auth);
}

static enum MHD_Result compile_match(tail_client *c, struct MHD_Connection *conn, const char *pat)
{
    if (strlen(pat) > MAX_PATTERN)
        return sl_http_respond_text(conn, 400, "bad match regex: longer than 1024 bytes\n");
    int ec = 0;
    PCRE2_SIZE off = 0;
    c->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!c->re) {
        PCRE2_UCHAR why[256];
        pcre2_get_error_message(ec, why, sizeof why);
        char msg[400];
        snprintf(msg, sizeof msg, "bad match regex at offset %zu: %s\n", (size_t)off, why);
        return sl_http_respond_text(conn, 400, msg);
    }
    c->md = pcre2_match_data_create(1, NULL);
    c->mctx = pcre2_match_context_create(NULL);
    if (!c->md || !c->mctx) return sl_http_respond_text(conn, 500, "out of memory\n");
    pcre2_set_match_limit(c->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(c->mctx, HEAP_LIMIT_KIB);
    return MHD_YES;
}

static enum MHD_Result tail_start(sl_http_tap *t, struct MHD_Connection *conn)
{
    tail_client *c = calloc(1, sizeof *c);
    if (!c) return sl_http_respond_text(conn, 500, "out of memory\n");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    query_scan q = {.c = c};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, scan_arg, &q);
    enum MHD_Result r = MHD_YES;
    if (q.bad == 1) {
        r = sl_http_respond_text(conn, 400, "bad query: malformed value\n");
        goto fail;
    }
    if (q.bad == 2) {
        r = sl_http_respond_text(conn, 400,
                                 "bad label filter: want at most 8 of label=KEY=VALUE\n");
        goto fail;
    }
    if (q.bad == 3) {
        r = sl_http_respond_text(conn, 400, "bad query: known parameters are match and label\n");
        goto fail;
    }
    if (q.match && *q.match) {
        r = compile_match(c, conn, q.match);
        if (!c->md || !c->mctx) goto fail;
    }
    if (atomic_fetch_add(&t->tails, 1) >= MAX_TAILS) {
        atomic_fetch_sub(&t->tails, 1);
        r = sl_http_respond_text(conn, 503, "too many tail clients\n");
        goto fail;
    }
    c->tap = t; /* from here client_free gives the slot back */
    sl_metric_gauge_add(t->m_clients, 1);
    sl_buf_init(&c->out, TAIL_OUT_MAX + 4096);
    pthread_mutex_lock(&t->mu);
    c->next_seq = t->next; /* from now on, like tail -f */
    pthread_mutex_unlock(&t->mu);
    c->last_send_ms = sl_monotonic_ns() / 1000000;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 << 10, client_read, c, client_free);
    if (!resp) {
        client_free(c);
        return MHD_NO;
    }
    /* HTTP/1.0 style: the body is the stream until close, no chunking. */
    MHD_set_response_options(resp, MHD_RF_HTTP_1_0_SERVER, MHD_RO_END);
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    r = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
fail:
    client_free(c);
    return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    sl_http_tap *t = cls;
    /* Nothing, not even which paths exist, without the token. */
    if (!token_ok(t, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization")))
        return sl_http_respond_text(conn, 401, "unauthorized: send Authorization: Bearer TOKEN\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return sl_http_respond_text(conn, 405, "method not allowed\n");
    if (strcmp(url, "/tail") != 0) return sl_http_respond_text(conn, 404, "not found\n");
    return tail_start(t, conn);
}

/* ---- lifecycle ------------------------------------------------------------- */

int sl_http_tap_start(const sl_http_tap_opts *o, sl_http_tap **out, sl_err *err)
{
    *out = NULL;
    if (!o->token || !*o->token)
        return sl_errf(err, SL_EINVAL,
                       "tap: a token is required (tap.token_file or tap.token_env)");
    sl_http_tap *t = calloc(1, sizeof *t);
    sl_http_auth bearer = {.bearer_token = (char *)o->token};
    if (!t || sl_http_auth_header(&bearer, &t->expected_auth) != SL_OK || !t->expected_auth) {
        free(t);
        return sl_errf(err, SL_ENOMEM, "tap: out of memory");
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->wait_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->m_clients = sl_gauge("sluice_tap_clients", "Clients following the tap (sluice tail).", "");
    const char *help = "Records a tail client did not get: slow_client (it fell behind the "
                       "ring or its output was full), busy (the ring was in use), too_large.";
    t->m_slow = sl_counter("sluice_tap_dropped_records_total", help, "reason=\"slow_client\"");
    t->m_busy = sl_counter("sluice_tap_dropped_records_total", help, "reason=\"busy\"");
    t->m_too_large = sl_counter("sluice_tap_dropped_records_total", help, "reason=\"too_large\"");
    t->m_limit = sl_counter("sluice_tap_match_limit_total",
                            "Tail matches stopped by the PCRE2 match/depth/heap limits.", "");
    t->m_sent = sl_counter("sluice_tap_sent_records_total", "Records sent to tail clients.", "");
    const char *listen = o->listen && *o->listen ? o->listen : SL_TAP_DEFAULT_LISTEN;
    sl_http_server_opts so = {.what = "tap.listen",
                              .listen = listen,
                              .conn_limit = CONN_LIMIT,
                              .per_ip_limit = PER_IP_LIMIT,
                              .idle_timeout_s = IDLE_TIMEOUT_S,
                              .request_memory = REQUEST_MEMORY,
                              .thread_per_connection = true,
                              .handler = handle,
                              .handler_arg = t};
    int rc = sl_http_server_start(&so, &t->server, err);
    if (rc != SL_OK) {
        sl_http_tap_stop(t);
        return rc;
    }
    sl_log(sl_http_listen_is_loopback(listen) ? SL_LOG_INFO : SL_LOG_WARN, "tap_listening",
           "listen=%s port=%d loopback=%d", listen, sl_http_server_port(t->server),
           sl_http_listen_is_loopback(listen));
    *out = t;
    return SL_OK;
}

int sl_http_tap_port(const sl_http_tap *t)
{
    return t ? sl_http_server_port(t->server) : 0;
}

void sl_http_tap_stop(sl_http_tap *t)
{
    if (!t) return;
    atomic_store(&t->stopping, true);
    pthread_mutex_lock(&t->wait_mu);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->wait_mu);
    sl_http_server_stop(t->server); /* each stream ends at its next look at the flag */
    pthread_mutex_lock(&t->mu);
    ring_clear(t);
    pthread_mutex_unlock(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->wait_mu);
    pthread_mutex_destroy(&t->mu);
    explicit_bzero(t->expected_auth, strlen(t->expected_auth));
    free(t->expected_auth);
    free(t);
}

/* ---- configuration ----------------------------------------------------------- */

void sl_http_tap_check_config(sl_cfg *cfg, const sl_cfg_node *node)
{
    if (!node) return;
    const char *listen = NULL, *file = NULL, *env = NULL;
    sl_cfg_str(cfg, node, "listen", NULL, &listen);
    sl_cfg_str(cfg, node, "token_file", NULL, &file);
    sl_cfg_str(cfg, node, "token_env", NULL, &env);
    char host[256], port[8];
    if (listen && sl_http_split_listen(listen, host, sizeof host, port, sizeof port) != SL_OK)
        sl_cfg_error(cfg, sl_cfg_get(node, "listen"),
                     "tap.listen '%s': expected host:port, [v6addr]:port or :port", listen);
    if (!file && !env)
        sl_cfg_error(cfg, node,
                     "the tap needs a token: set tap.token_file (a file holding it) or "
                     "tap.token_env (a variable holding it)");
    if (file && env)
        sl_cfg_error(cfg, sl_cfg_get(node, "token_env"),
                     "give 'token_file' or 'token_env', not both");
}

int sl_http_tap_warnings(sl_cfg *cfg, const sl_cfg_node *node, FILE *out)
{
    if (!node) return 0;
    const char *listen = SL_TAP_DEFAULT_LISTEN;
    sl_cfg_str(cfg, node, "listen", SL_TAP_DEFAULT_LISTEN, &listen);
    if (sl_http_listen_is_loopback(listen)) return 0;
    fprintf(out,
            "warning: tap.listen '%s' is not a loopback address: anyone who can reach it and "
            "holds the token can read every record the agent ships; prefer 127.0.0.1\n",
            listen);
    return 1;
}

int sl_http_tap_settings(sl_cfg *cfg, const sl_cfg_node *node, const char **listen, char **token,
                         sl_err *err)
{
    *token = NULL;
    *listen = SL_TAP_DEFAULT_LISTEN;
    sl_cfg_str(cfg, node, "listen", SL_TAP_DEFAULT_LISTEN, listen);
    const char *file = NULL, *env = NULL;
    sl_cfg_str(cfg, node, "token_file", NULL, &file);
    sl_cfg_str(cfg, node, "token_env", NULL, &env);
    if (file) {
        size_t len = 0;
        sl_err rerr = {0};
        int rc = sl_read_file(file, 4096, token, &len, &rerr);
        if (rc != SL_OK) return sl_errf(err, rc, "tap.token_file: %s", rerr.msg);
        while (len && ((*token)[len - 1] == '\n' || (*token)[len - 1] == '\r')) (*token)[--len] = 0;
    } else if (env) {
        const char *v = getenv(env);
        if (v && !(*token = strdup(v))) return sl_errf(err, SL_ENOMEM, "tap: out of memory");
    }
    if (!*token || !**token) {
        free(*token);
        *token = NULL;
        return sl_errf(err, SL_EINVAL, "tap: the token is empty or unset (%s '%s')",
                       file ? "tap.token_file" : "tap.token_env",
                       file  ? file
                       : env ? env
                             : "");
    }
    return SL_OK;
}
