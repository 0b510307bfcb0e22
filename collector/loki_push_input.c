/* The `loki_push` input: Loki's push API (POST /loki/api/v1/push) for
 * Promtail, Alloy, Fluent Bit and other sluice agents, on the shared HTTP
 * server (net/http_server.h: libmicrohttpd, optional TLS, one thread per
 * connection so a request may wait for its acknowledgement).
 *
 * What a 2xx promises (decision 0034): with `ack: delivered` (the default)
 * the 204 goes out only once every routed sink is done with the entries:
 * delivered, or written to its disk spool. A sender that gets 204 may
 * forget them; a kill -9 of this process afterwards loses nothing. With
 * `ack: buffered` the 204 goes out once the entries are in every sink's
 * buffer (faster; a kill -9 loses what was only in memory).
 * When a sink's buffer stays full for `full_wait` (when_full: block and no
 * spool room), the answer is 429 with Retry-After and the entries are in
 * no sink. Malformed bodies get 400 with the reason, bodies over
 * max_body_bytes, or taking more than max_decoded_bytes of memory once
 * decoded, 413.
 *
 * Hostile senders (decision 0072): one push is decoded at a time, the
 * bodies being read share max_pending_bytes (429 past it), a body not read
 * whole within request_timeout closes the connection, and one address holds
 * at most max_connections_per_address connections.
 *
 * Each entry becomes a record: its line and time, the stream's labels as
 * label fields, structured metadata as metadata fields, and the request's
 * X-Scope-OrgID as the field `tenant_field` (neither label nor metadata: a
 * Loki sink's `tenant: ${fields.tenant:-fake}` forwards it). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/loki_push_decode.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "net/http_auth.h"
#include "net/http_server.h"
#include "net/tls.h"

#define PUSH_PATH    "/loki/api/v1/push"
#define MAX_LABELS   32
#define STOP_POLL_MS 100
#define TENANT_MAX   256

enum { ACK_DELIVERED, ACK_BUFFERED }; /* ack: delivered|buffered, in that order */

/* Answers, one counter each. */
enum { C204, C400, C401, C404, C405, C413, C429, C500, C503, CN };
static const unsigned codes[CN] = {204, 400, 401, 404, 405, 413, 429, 500, 503};

/* A request waiting for its batch to be done (ack: delivered). Owned by the
 * input's list: on_done may run after the request gave up (then it frees
 * the waiter), and what is left at destroy (sinks gone) is freed there. */
typedef struct waiter {
    struct waiter *prev, *next;
    pthread_cond_t cv;
    bool done, abandoned;
    struct lp_input *in;
} waiter;

typedef struct request {
    char *body;
    size_t len, cap;
    bool too_large;
    bool no_room;     /* the input's max_pending_bytes was reached: 429 */
    int64_t start_ns; /* the head was read */
} request;

typedef struct lp_input {
    const sl_input_ctx *ctx;
    const char *listen, *tenant_field;
    sl_tls_server_opts tls;
    int ack_mode;
    int64_t ack_timeout_ms, full_wait_ms, retry_after_ms, idle_ms, max_conns, max_conns_addr;
    int64_t request_timeout_ms;
    uint64_t max_body, max_decoded, max_pending;
    _Atomic uint64_t pending; /* body bytes received by requests being read */
    char *auth_expected;      /* the whole Authorization value senders must give, or NULL */
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    sl_http_server *server;
    pthread_mutex_t emit_mu;   /* one emit at a time: the parse chain is the input's */
    pthread_mutex_t decode_mu; /* one decode at a time: max_decoded_bytes is the input's */
    pthread_mutex_t wait_mu;
    waiter *waiters;
    sl_metric *m_records, *m_bytes, *m_requests[CN], *m_ack_wait, *m_spills, *m_timeouts,
        *m_pending;
} lp_input;

static const sl_cfg_key loki_push_keys[] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "listen",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(lp_input, listen),
     .required = true,
     .doc = "HTTP address `host:port`, `[v6]:port` or `:port` (every address)"},
    {.name = "tls", .type = SL_KEY_MAP, .doc = "cert_file, key_file: serve HTTPS only"},
    {.name = "auth",
     .type = SL_KEY_MAP,
     .doc = "username/password (basic) or bearer_token senders must give; none when absent",
     .sub = sl_http_auth_keys,
     .nsub = SL_HTTP_AUTH_NKEYS},
    {.name = "ack",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(lp_input, ack_mode),
     .choices = "delivered|buffered",
     .def = "delivered",
     .doc = "204 once every sink delivered or spooled the entries, or once they are in its buffer"},
    {.name = "ack_timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(lp_input, ack_timeout_ms),
     .def = "30s",
     .min = 1,
     .max = 3600000,
     .doc = "`ack: delivered` answers 503 when the sinks take longer (the sender retries)"},
    {.name = "full_wait",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(lp_input, full_wait_ms),
     .def = "1s",
     .min = 0,
     .max = 600000,
     .doc = "how long a request waits for room in a full buffer before 429"},
    {.name = "retry_after",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(lp_input, retry_after_ms),
     .def = "1s",
     .min = 1000,
     .max = 3600000,
     .doc = "the Retry-After of 429 and 503 answers (whole seconds)"},
    {.name = "max_body_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(lp_input, max_body),
     .def = "10MiB",
     .min = 1024,
     .max = 1LL << 30,
     .doc = "larger request bodies get 413"},
    {.name = "max_decoded_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(lp_input, max_decoded),
     .def = "64MiB",
     .min = 1024,
     .max = 4LL << 30,
     .doc = "pushes that take more memory decoded (body, JSON tree, records) get 413"},
    {.name = "max_connections",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(lp_input, max_conns),
     .def = "256",
     .min = 1,
     .max = 65536,
     .doc = "connections at once (a thread each); more are closed at once"},
    {.name = "max_connections_per_address",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(lp_input, max_conns_addr),
     .def = "64",
     .min = 1,
     .max = 65536,
     .doc = "connections at once from one address; more are closed at once"},
    {.name = "idle_timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(lp_input, idle_ms),
     .def = "60s",
     .min = 1000,
     .max = 3600000,
     .doc = "a connection silent this long is closed"},
    {.name = "request_timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(lp_input, request_timeout_ms),
     .def = "60s",
     .min = 1000,
     .max = 3600000,
     .doc = "a request body not read whole this long after its head is closed, unanswered"},
    {.name = "max_pending_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(lp_input, max_pending),
     .def = "64MiB",
     .min = 1024,
     .max = 16LL << 30,
     .doc = "request bodies held at once across connections; a body past it gets 429"},
    {.name = "tenant_field",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(lp_input, tenant_field),
     .def = "tenant",
     .doc = "field holding the request's X-Scope-OrgID (absent without the header)"},
};

/* ---- configuration ---- */

static void configure_auth(lp_input *in, sl_cfg *cfg, const sl_cfg_node *auth)
{
    sl_http_auth ha;
    if (sl_http_auth_read(cfg, auth, SL_HTTP_AUTH_SERVER, &ha) == SL_OK &&
        sl_http_auth_header(&ha, &in->auth_expected) != SL_OK)
        sl_cfg_error(cfg, auth, "auth: out of memory");
    sl_http_auth_free(&ha);
}

static int configure(lp_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, loki_push_keys, SL_CFG_NKEYS(loki_push_keys), in);
    if (in->listen) {
        char host[256], port[8];
        if (sl_http_split_listen(in->listen, host, sizeof host, port, sizeof port) != SL_OK)
            sl_cfg_error(cfg, sl_cfg_get(n, "listen"),
                         "listen: expected host:port, [v6addr]:port or :port");
    }
    /* tls and auth are looked up, not read: either given with no value is
     * an error (missing keys), not an absent map. */
    const sl_cfg_node *tls = sl_cfg_get(n, "tls");
    if (tls && sl_tls_server_configure(cfg, tls, &in->tls) == SL_OK) {
        if (in->tls.ca_file || in->tls.client_auth != SL_TLS_CLIENT_AUTH_NONE)
            sl_cfg_error(cfg, tls,
                         "tls: client certificates are not supported by loki_push (use auth:)");
    }
    const sl_cfg_node *auth = sl_cfg_get(n, "auth");
    if (auth) configure_auth(in, cfg, auth);
    if (in->tenant_field && !*in->tenant_field)
        sl_cfg_error(cfg, sl_cfg_get(n, "tenant_field"), "tenant_field must not be empty");
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

static void register_metrics(lp_input *in)
{
    char l[256], l2[320];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_records = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_ack_wait = sl_counter("sluice_loki_push_ack_wait_seconds_total",
                                "Time push requests waited for the sinks' acknowledgement.", l);
    in->m_timeouts = sl_counter("sluice_loki_push_request_timeouts_total",
                                "Requests whose body was not read whole within request_timeout; "
                                "the connection was closed unanswered.",
                                l);
    in->m_pending =
        sl_gauge("sluice_loki_push_pending_bytes",
                 "Request body bytes held by requests being read (max_pending_bytes).", l);
    in->m_spills = sl_counter("sluice_loki_push_spills_total",
                              "Times a push waited half its ack_timeout and the sinks' memory "
                              "was moved to their spools.",
                              l);
    for (int i = 0; i < CN; i++) {
        char code[8];
        snprintf(code, sizeof code, "%u", codes[i]);
        sl_metric_labels(l2, sizeof l2, "input", in->ctx->name, "code", code);
        in->m_requests[i] = sl_counter("sluice_loki_push_requests_total",
                                       "Push requests answered, by HTTP status.", l2);
    }
}

/* ---- acknowledgements ---- */

static void on_batch_done(sl_batch *b, void *arg)
{
    (void)b;
    waiter *w = arg;
    lp_input *in = w->in;
    pthread_mutex_lock(&in->wait_mu);
    if (w->abandoned) {
        if (w->prev)
            w->prev->next = w->next;
        else
            in->waiters = w->next;
        if (w->next) w->next->prev = w->prev;
        pthread_cond_destroy(&w->cv);
        free(w);
    } else {
        w->done = true;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&in->wait_mu);
}

static waiter *waiter_new(lp_input *in)
{
    waiter *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->in = in;
    pthread_mutex_lock(&in->wait_mu);
    w->next = in->waiters;
    if (in->waiters) in->waiters->prev = w;
    in->waiters = w;
    pthread_mutex_unlock(&in->wait_mu);
    return w;
}

/* Waits for the batch to be done, until timeout or shutdown. True when it
 * was. When done or final, the waiter is released (freed now, or by
 * on_done/destroy); otherwise the caller waits again. */
static bool waiter_wait(lp_input *in, waiter *w, int64_t timeout_ms, bool final)
{
    int64_t t0 = sl_monotonic_ns(), deadline = t0 + timeout_ms * 1000000;
    pthread_mutex_lock(&in->wait_mu);
    while (!w->done && timeout_ms > 0 && !atomic_load(in->ctx->stop)) {
        int64_t now = sl_monotonic_ns();
        if (now >= deadline) break;
        int64_t step = deadline - now;
        if (step > STOP_POLL_MS * 1000000LL) step = STOP_POLL_MS * 1000000LL;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(step % 1000000000);
        ts.tv_sec += (time_t)(step / 1000000000) + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&w->cv, &in->wait_mu, &ts);
    }
    bool done = w->done;
    if (!done && !final) {
        pthread_mutex_unlock(&in->wait_mu);
        sl_metric_add(in->m_ack_wait, (uint64_t)(sl_monotonic_ns() - t0));
        return false;
    }
    if (done) {
        if (w->prev)
            w->prev->next = w->next;
        else
            in->waiters = w->next;
        if (w->next) w->next->prev = w->prev;
        pthread_cond_destroy(&w->cv);
        free(w);
    } else {
        w->abandoned = true;
    }
    pthread_mutex_unlock(&in->wait_mu);
    if (timeout_ms > 0) sl_metric_add(in->m_ack_wait, (uint64_t)(sl_monotonic_ns() - t0));
    return done;
}

/* ---- records ---- */

static void add_field(sl_batch *b, sl_record *r, sl_slice k, sl_slice v, uint8_t flags)
{
    sl_field *f = sl_record_add_field(b, r, k, v, SL_V_STRING);
    if (f)
        f->flags |= flags;
    else
        r->flags |= SL_RF_TRUNCATED;
}

static char *copy_in(sl_chunk *c, sl_slice s)
{
    char *d = c->data + c->len;
    if (s.n) memcpy(d, s.p, s.n);
    c->len += s.n;
    return d;
}

/* One batch with every entry of the push: its text copied into one chunk. */
static int build_batch(lp_input *in, const sl_lp_push *p, const char *tenant, sl_batch **out,
                       sl_err *err)
{
    size_t tn = tenant ? strlen(tenant) : 0;
    sl_batch *b = sl_batch_new(p->nentries);
    sl_chunk *c = sl_chunk_new(p->text_bytes + tn + 1);
    if (!b || !c || sl_batch_add_chunk(b, c) != SL_OK ||
        sl_batch_set_names(b, in->ctx->name, "loki_push") != SL_OK ||
        sl_batch_set_labels(b, in->labels, in->nlabels) != SL_OK) {
        if (c) sl_chunk_unref(c);
        if (b) sl_batch_unref(b);
        return sl_errf(err, SL_ENOMEM, "out of memory for %u entries", p->nentries);
    }
    sl_chunk_unref(c); /* the batch holds it */
    /* The decoder counted the entries' field arrays against max_decoded:
     * they fit, however many labels times entries (beyond the arena's
     * default bound they would be cut from the records). */
    b->arena.limit += p->fields_bytes;
    sl_slice ten = {copy_in(c, (sl_slice){tenant ? tenant : "", tn}), tn};
    sl_slice tkey = {in->tenant_field, strlen(in->tenant_field)};
    for (uint32_t s = 0; s < p->nstreams; s++) {
        const sl_lp_stream *st = &p->streams[s];
        /* The stream's labels, copied once and shared by its entries. */
        sl_lp_pair lab[SL_LP_MAX_LABELS];
        for (uint32_t k = 0; k < st->nlabels && k < SL_LP_MAX_LABELS; k++) {
            const sl_lp_pair *src = &p->pairs[st->labels + k];
            lab[k].name = (sl_slice){copy_in(c, src->name), src->name.n};
            lab[k].value = (sl_slice){copy_in(c, src->value), src->value.n};
        }
        for (uint32_t e = 0; e < st->nentries; e++) {
            const sl_lp_entry *en = &p->entries[st->entries + e];
            sl_slice line = {copy_in(c, en->line), en->line.n};
            sl_record *r = sl_batch_add(b, line, en->ts_ns, 0);
            if (!r) {
                sl_batch_unref(b);
                return sl_errf(err, SL_ENOMEM, "out of memory for %u entries", p->nentries);
            }
            for (uint32_t k = 0; k < st->nlabels; k++)
                add_field(b, r, lab[k].name, lab[k].value, SL_FF_LABEL);
            for (uint32_t k = 0; k < en->nmeta; k++) {
                const sl_lp_pair *m = &p->pairs[en->meta + k];
                sl_slice mk = {copy_in(c, m->name), m->name.n};
                sl_slice mv = {copy_in(c, m->value), m->value.n};
                add_field(b, r, mk, mv, SL_FF_METADATA);
            }
            if (tenant) add_field(b, r, tkey, ten, 0);
        }
    }
    *out = b;
    return SL_OK;
}

/* ---- HTTP ---- */

/* Answers keep the connection open (unlike the metrics endpoint's): a
 * sender pushes again at once, and over TLS a handshake per push would cost
 * more than the push. Request state is per request (con_cls), so nothing
 * carries over between requests of a connection. */
static enum MHD_Result answer(lp_input *in, struct MHD_Connection *c, int which, const char *msg)
{
    sl_metric_inc(in->m_requests[which]);
    size_t n = which == C204 ? 0 : strlen(msg);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)msg, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (n) MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    if (which == C429 || which == C503) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)((in->retry_after_ms + 999) / 1000));
        MHD_add_response_header(r, "Retry-After", ra);
    }
    if (which == C405) MHD_add_response_header(r, "Allow", "POST");
    if (which == C401) MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"sluice\"");
    /* A refused body may be unread: close rather than read it. */
    if (which == C413 || which == C401 || which == C404 || which == C405)
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result res = MHD_queue_response(c, codes[which], r);
    MHD_destroy_response(r);
    return res;
}

static bool authorized(lp_input *in, struct MHD_Connection *c)
{
    return sl_http_auth_matches(in->auth_expected,
                                MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
}

/* Frees what a request holds of its body and returns it to the input's
 * max_pending_bytes. */
static void body_release(lp_input *in, request *rq)
{
    atomic_fetch_sub(&in->pending, rq->len);
    sl_metric_gauge_add(in->m_pending, -(int64_t)rq->len);
    free(rq->body);
    rq->body = NULL;
    rq->len = rq->cap = 0;
}

static enum MHD_Result process(lp_input *in, struct MHD_Connection *c, request *rq)
{
    char msg[sizeof(((sl_err *)0)->msg) + 64];
    if (rq->too_large) {
        snprintf(msg, sizeof msg, "body above max_body_bytes (%llu)\n",
                 (unsigned long long)in->max_body);
        return answer(in, c, C413, msg);
    }
    if (rq->no_room) {
        snprintf(msg, sizeof msg, "bodies being read take max_pending_bytes (%llu), retry later\n",
                 (unsigned long long)in->max_pending);
        return answer(in, c, C429, msg);
    }
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *cenc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *tenant = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Scope-OrgID");
    if (tenant && strlen(tenant) > TENANT_MAX) return answer(in, c, C400, "tenant too long\n");
    sl_lp_push p;
    sl_err err = {0};
    /* One push decoded at a time: with many connections each could
     * otherwise take max_decoded_bytes at once. */
    pthread_mutex_lock(&in->decode_mu);
    int rc = sl_lp_decode(ctype, cenc, rq->body, rq->len, in->max_decoded, &p, &err);
    if (rc != SL_OK) {
        pthread_mutex_unlock(&in->decode_mu);
        sl_lp_push_free(&p);
        snprintf(msg, sizeof msg, "%s\n", err.msg);
        return answer(in, c, rc == SL_EFULL ? C413 : rc == SL_ENOMEM ? C500 : C400, msg);
    }
    if (p.nentries == 0) {
        pthread_mutex_unlock(&in->decode_mu);
        sl_lp_push_free(&p);
        return answer(in, c, C204, "");
    }
    sl_batch *b = NULL;
    rc = build_batch(in, &p, tenant, &b, &err);
    uint32_t nrec = p.nentries;
    size_t bytes = p.text_bytes;
    sl_lp_push_free(&p);
    pthread_mutex_unlock(&in->decode_mu);
    body_release(in, rq); /* the batch holds copies: not kept while the sinks work */
    if (rc != SL_OK) {
        snprintf(msg, sizeof msg, "%s\n", err.msg);
        return answer(in, c, C500, msg);
    }
    waiter *w = NULL;
    /* A dry run acknowledges nothing: answer as `buffered` would. */
    if (in->ack_mode == ACK_DELIVERED && !in->ctx->dry_run) {
        if (!(w = waiter_new(in))) {
            sl_batch_unref(b);
            return answer(in, c, C500, "out of memory\n");
        }
        b->on_done = on_batch_done;
        b->on_done_arg = w;
        b->flush_now = true; /* the sender waits: no sink's max_batch_wait */
    }
    pthread_mutex_lock(&in->emit_mu);
    rc = in->ctx->emit_wait(in->ctx->emit_arg, b, in->full_wait_ms);
    pthread_mutex_unlock(&in->emit_mu);
    if (rc != SL_OK) {
        if (w) waiter_wait(in, w, 0, true); /* never done: released at destroy */
        if (rc == SL_EFULL) return answer(in, c, C429, "sink buffers are full, retry later\n");
        return answer(in, c, C503, "shutting down\n");
    }
    sl_metric_add(in->m_records, nrec);
    sl_metric_add(in->m_bytes, bytes);
    if (w) {
        /* Half the time for delivery; then what the sinks hold in memory
         * goes to their spools (acknowledged there), which is as safe. A
         * batch a sink is already sending stays with it. */
        int64_t half = in->ack_timeout_ms / 2;
        bool done = waiter_wait(in, w, half, false);
        if (!done && in->ctx->spill) {
            in->ctx->spill(in->ctx->emit_arg);
            sl_metric_inc(in->m_spills);
        }
        if (!done && !waiter_wait(in, w, in->ack_timeout_ms - half, true))
            return answer(in, c, C503, "the sinks did not acknowledge in time, retry later\n");
    }
    return answer(in, c, C204, "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    lp_input *in = cls;
    request *rq = *con_cls;
    if (!rq) {
        if (strcmp(url, PUSH_PATH) != 0) return answer(in, c, C404, "not found\n");
        if (strcmp(method, "POST") != 0) return answer(in, c, C405, "only POST\n");
        if (!authorized(in, c)) return answer(in, c, C401, "unauthorized\n");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > in->max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "body above max_body_bytes (%llu)\n",
                     (unsigned long long)in->max_body);
            return answer(in, c, C413, msg);
        }
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->start_ns = sl_monotonic_ns();
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        /* A body dribbled to stay under idle_timeout, or one that never
         * ends (chunked): closed, unanswered, once request_timeout passed. */
        if (sl_monotonic_ns() - rq->start_ns > in->request_timeout_ms * 1000000) {
            sl_metric_inc(in->m_timeouts);
            return MHD_NO;
        }
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_large || rq->no_room) return MHD_YES; /* read and dropped */
        if (rq->len + n > in->max_body) {
            rq->too_large = true;
            body_release(in, rq);
            return MHD_YES;
        }
        /* Counted by the bytes received (a dribbler holds what it sent,
         * not a buffer's worth), across connections. */
        if (atomic_fetch_add(&in->pending, n) + n > in->max_pending) {
            atomic_fetch_sub(&in->pending, n);
            rq->no_room = true;
            body_release(in, rq);
            return MHD_YES;
        }
        if (rq->len + n > rq->cap) {
            size_t nc = rq->cap ? rq->cap * 2 : 16384;
            while (nc < rq->len + n) nc *= 2;
            if (nc > in->max_body) nc = in->max_body;
            char *nb = realloc(rq->body, nc);
            if (!nb) {
                atomic_fetch_sub(&in->pending, n);
                return MHD_NO;
            }
            rq->body = nb;
            rq->cap = nc;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        sl_metric_gauge_add(in->m_pending, (int64_t)n);
        return MHD_YES;
    }
    return process(in, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    request *rq = *con_cls;
    if (!rq) return;
    body_release(cls, rq);
    free(rq);
    *con_cls = NULL;
}

/* ---- the input ---- */

static void lp_destroy(void *state)
{
    lp_input *in = state;
    if (!in) return;
    sl_http_server_stop(in->server);
    /* The sinks are gone: no on_done can run any more. */
    for (waiter *w = in->waiters, *next; w; w = next) {
        next = w->next;
        pthread_cond_destroy(&w->cv);
        free(w);
    }
    pthread_mutex_destroy(&in->emit_mu);
    pthread_mutex_destroy(&in->decode_mu);
    pthread_mutex_destroy(&in->wait_mu);
    if (in->auth_expected) explicit_bzero(in->auth_expected, strlen(in->auth_expected));
    free(in->auth_expected);
    free(in);
}

static int lp_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    lp_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    pthread_mutex_init(&in->emit_mu, NULL);
    pthread_mutex_init(&in->decode_mu, NULL);
    pthread_mutex_init(&in->wait_mu, NULL);
    if (configure(in, ctx) != SL_OK) {
        lp_destroy(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) { /* the caller keeps no state of a check */
        const sl_cfg_node *tls = sl_cfg_get(ctx->node, "tls");
        size_t before = sl_cfg_nerrors(ctx->cfg);
        if (tls) sl_tls_server_check(ctx->cfg, tls, &in->tls);
        bool bad = sl_cfg_nerrors(ctx->cfg) > before;
        lp_destroy(in);
        if (bad) return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
        *state = NULL;
        return SL_OK;
    }
    if (!ctx->emit_wait) {
        lp_destroy(in);
        return sl_errf(err, SL_EINVAL, "input %s: the pipeline has no bounded emit", ctx->name);
    }
    register_metrics(in);
    char what[160];
    snprintf(what, sizeof what, "input %s listen", ctx->name);
    sl_http_server_opts so = {
        .what = what,
        .listen = in->listen,
        .conn_limit = (unsigned)in->max_conns,
        .per_ip_limit =
            (unsigned)(in->max_conns_addr < in->max_conns ? in->max_conns_addr : in->max_conns),
        .idle_timeout_s = (unsigned)((in->idle_ms + 999) / 1000),
        .request_memory = 64 << 10,
        .thread_per_connection = true,
        .handler = on_request,
        .handler_arg = in,
        .completed = on_completed,
        .completed_arg = in,
        .tls_cert_file = in->tls.cert_file,
        .tls_key_file = in->tls.key_file};
    int rc = sl_http_server_start(&so, &in->server, err);
    if (rc != SL_OK) {
        lp_destroy(in);
        return rc;
    }
    sl_log(SL_LOG_INFO, "loki_push_listening", "input=%s listen=%s port=%d tls=%d ack=%s",
           ctx->name, in->listen, sl_http_server_port(in->server), in->tls.cert_file != NULL,
           in->ack_mode == ACK_DELIVERED ? "delivered" : "buffered");
    *state = in;
    return SL_OK;
}

/* The requests run on the server's threads; this one only waits for the
 * stop, then closes the listener so no request starts after the inputs'
 * side of the buffers closed. */
static int lp_run(void *state)
{
    lp_input *in = state;
    while (!atomic_load(in->ctx->stop)) {
        struct timespec ts = {0, STOP_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    sl_http_server_stop(in->server);
    in->server = NULL;
    return SL_OK;
}

const sl_input_ops sl_loki_push_input_ops = {
    .type = "loki_push",
    .create = lp_create,
    .run = lp_run,
    .destroy = lp_destroy,
    .keys = loki_push_keys,
    .nkeys = SL_CFG_NKEYS(loki_push_keys),
};
