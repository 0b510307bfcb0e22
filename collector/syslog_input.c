/* The `syslog` input: UDP, TCP and TLS listeners (net/), RFC 6587 framing
 * on streams (collector/syslog_framer.h), RFC 5424 / RFC 3164 parsing
 * (parsers/syslog.h). One thread per input polls every socket of it.
 *
 * Backpressure: frames go to the pipeline from this thread, and emit blocks
 * while the sinks' buffers are full; meanwhile nothing is read, so the
 * kernel's TCP window closes and senders wait (TCP, TLS), or the kernel
 * drops datagrams, which SO_RXQ_OVFL reports and the input counts (UDP).
 * Memory: at most max_connections frame buffers of max_frame_bytes, one
 * 64 KiB read buffer and the batch being built.
 *
 * Nothing is acknowledged to senders beyond TCP itself; a batch carries no
 * ticket (there is no position to checkpoint). What a kill -9 can lose is
 * in README "Input `type: syslog`" and decision 0032. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector/syslog_framer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "core/utf8.h"
#include "net/listen.h"
#include "net/tls.h"
#include "parsers/syslog.h"
#include "parsers/timestamp.h"

#define MAX_LABELS      32
#define READ_BYTES      65536 /* above the largest UDP datagram (65507) */
#define UDP_PER_ROUND   256   /* datagrams read before the other sockets get a turn */
#define READS_PER_CONN  4     /* reads of one connection per round, for fairness */
#define ACCEPT_PER_TURN 64
#define CHUNK_BYTES     (256u << 10)
#define POLL_MS         100 /* how soon a stop or an idle connection is noticed */
#define PEER_MAX        64

enum { T_UDP, T_TCP, T_TLS, T_N };
static const char *const transport_names[T_N] = {"udp", "tcp", "tls"};
static const char *const listen_keys[T_N] = {"listen_udp", "listen_tcp", "listen_tls"};
enum { LINE_MESSAGE, LINE_RAW };
_Static_assert(SL_SYSLOG_FRAMING_AUTO == 0 && SL_SYSLOG_FRAMING_OCTET == 1 &&
                   SL_SYSLOG_FRAMING_NEWLINE == 2,
               "framing: auto|octet_counting|newline");

/* Why a connection ended, one counter each. */
enum {
    CLOSE_PEER,
    CLOSE_IDLE,
    CLOSE_FRAMING,
    CLOSE_TLS,
    CLOSE_TLS_TIMEOUT,
    CLOSE_READ_ERROR,
    CLOSE_MEMORY,
    CLOSE_SHUTDOWN,
    CLOSE_N
};
static const char *const close_reasons[CLOSE_N] = {
    "peer_closed",           "idle_timeout", "framing_error", "tls_handshake",
    "tls_handshake_timeout", "read_error",   "out_of_memory", "shutdown"};

/* Why a connection was closed at accept, one counter each. */
enum { REJECT_TOTAL, REJECT_PER_ADDRESS, REJECT_N };
static const char *const reject_reasons[REJECT_N] = {"max_connections",
                                                     "max_connections_per_address"};

/* Frames that were not shipped as they came, one counter each. */
enum { BAD_OCTET_COUNT, BAD_INCOMPLETE, BAD_TOO_LARGE, BAD_UNPARSABLE, BAD_N };
static const char *const bad_reasons[BAD_N] = {"bad_octet_count", "incomplete_at_close",
                                               "too_large", "unparsable"};

typedef struct conn {
    int fd;
    int transport;
    sl_tls_conn *tls;
    bool handshaken;
    bool closed;
    char peer[PEER_MAX];
    sl_syslog_framer fr;
    int64_t last_ns;     /* monotonic time of the last bytes (or the accept) */
    int64_t accepted_ns; /* monotonic time of the accept (TLS: the handshake's deadline) */
} conn;

typedef struct sy_input {
    const sl_input_ctx *ctx;
    /* configuration */
    const char *listen[T_N];
    sl_tls_server_opts tls_opts;
    int framing;
    uint64_t max_frame, udp_rcvbuf;
    int64_t max_conns, max_conns_addr, idle_ms, handshake_ms;
    int line_mode;
    const char *tz_name; /* timezone; NULL: UTC */
    sl_tz *tz;
    int64_t batch_records_read; /* as read; batch_records once checked */
    uint32_t batch_records;
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    /* sockets */
    int lfd[T_N];
    sl_tls_server *tls;
    int64_t accept_paused_until; /* out of descriptors: listeners rest until then */
    conn **conns;
    size_t nconns;
    struct pollfd *pfds;
    conn **pconn; /* the connection of each pfds entry (NULL: a listener) */
    char *rbuf;
    uint32_t udp_drops_seen; /* the kernel's cumulative SO_RXQ_OVFL count */
    /* the batch being built */
    sl_batch *batch;
    sl_chunk *chunk;
    bool chunk_in_batch;
    const conn *cur; /* connection whose frames are being decoded */
    sl_ratelimit rl_warn;
    sl_metric *m_records, *m_bytes, *m_open, *m_accepted[T_N], *m_rejected[REJECT_N],
        *m_closed[CLOSE_N], *m_bad[BAD_N], *m_udp_dropped, *m_blocked, *m_errors;
} sy_input;

static const sl_cfg_key syslog_keys[] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "listen_udp",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sy_input, listen[T_UDP]),
     .doc = "UDP address `host:port` (numeric)"},
    {.name = "listen_tcp",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sy_input, listen[T_TCP]),
     .doc = "TCP address `host:port` (numeric)"},
    {.name = "listen_tls",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sy_input, listen[T_TLS]),
     .doc = "TLS address `host:port`; needs `tls:`"},
    {.name = "tls", .type = SL_KEY_MAP, .doc = "cert_file, key_file, ca_file, client_auth"},
    {.name = "framing",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(sy_input, framing),
     .choices = "auto|octet_counting|newline",
     .def = "auto",
     .doc = "TCP/TLS framing (RFC 6587); auto decides per frame"},
    /* RFC 5425 asks receivers for 8 KiB at least; 64 KiB holds any UDP message. */
    {.name = "max_frame_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(sy_input, max_frame),
     .min = 480,
     .max = 16 << 20,
     .def = "64KiB",
     .doc = "longer frames are cut, flagged and counted"},
    {.name = "max_connections",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(sy_input, max_conns),
     .min = 1,
     .max = 65536,
     .def = "512",
     .doc = "TCP and TLS connections at once; more are refused and counted"},
    {.name = "max_connections_per_address",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(sy_input, max_conns_addr),
     .min = 1,
     .max = 65536,
     .def = "64",
     .doc = "TCP and TLS connections at once from one address; more are refused and counted"},
    {.name = "idle_timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(sy_input, idle_ms),
     .def = "5m",
     .doc = "a connection silent this long is closed"},
    {.name = "tls_handshake_timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(sy_input, handshake_ms),
     .min = 100,
     .max = 3600000,
     .def = "10s",
     .doc = "a TLS connection whose handshake is not done this long after its accept is closed"},
    {.name = "udp_receive_buffer",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(sy_input, udp_rcvbuf),
     .min = 0,
     .max = 1 << 30,
     .def = "4MiB",
     .doc = "the UDP socket's kernel receive buffer"},
    {.name = "line",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(sy_input, line_mode),
     .choices = "message|raw",
     .def = "message",
     .doc = "the record's line: the MSG part, or the whole frame"},
    {.name = "timezone",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sy_input, tz_name),
     .doc = "zone of RFC 3164 times, which carry none (default: UTC)"},
    {.name = "batch_records",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(sy_input, batch_records_read),
     .min = 1,
     .max = 1 << 20,
     .def = "1024",
     .doc = "records per batch handed to the pipeline"},
};

/* ---- configuration ---- */

static int configure(sy_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, syslog_keys, SL_CFG_NKEYS(syslog_keys), in);
    bool any = false;
    for (int t = 0; t < T_N; t++) {
        if (!in->listen[t]) continue;
        any = true;
        sl_net_addr a;
        sl_err err;
        if (sl_net_parse_addr(in->listen[t], &a, &err) != SL_OK)
            sl_cfg_error(cfg, sl_cfg_get(n, listen_keys[t]), "%s", err.msg);
    }
    if (!any)
        sl_cfg_error(cfg, n,
                     "input %s: a syslog input needs listen_udp, listen_tcp or listen_tls "
                     "(an explicit host:port)",
                     ctx->name);
    /* Looked up, not read: `tls:` with no value is a map without the
     * required cert_file and key_file, not an absent one. */
    const sl_cfg_node *tls = sl_cfg_get(n, "tls");
    if (in->listen[T_TLS] && !tls)
        sl_cfg_error(cfg, sl_cfg_get(n, "listen_tls"),
                     "listen_tls needs a tls: map with cert_file and key_file");
    if (tls && !in->listen[T_TLS]) sl_cfg_error(cfg, tls, "tls: is only used with listen_tls");
    if (tls) sl_tls_server_configure(cfg, tls, &in->tls_opts);
    if (in->idle_ms <= 0) {
        sl_cfg_error(cfg, sl_cfg_get(n, "idle_timeout"), "idle_timeout must be above 0");
        in->idle_ms = 1000;
    }
    in->batch_records = (uint32_t)in->batch_records_read;
    if (in->tz_name) {
        sl_err err;
        if (sl_tz_load(in->tz_name, &in->tz, &err) != SL_OK)
            sl_cfg_error(cfg, sl_cfg_get(n, "timezone"), "%s", err.msg);
    }
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

static void register_metrics(sy_input *in)
{
    const char *name = in->ctx->name;
    char l[256], l2[320];
    sl_metric_labels(l, sizeof l, "input", name, NULL, NULL);
    in->m_records = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_open = sl_gauge("sluice_syslog_connections", "Open syslog TCP/TLS connections.", l);
    for (int t = T_TCP; t < T_N; t++) {
        sl_metric_labels(l2, sizeof l2, "input", name, "transport", transport_names[t]);
        in->m_accepted[t] = sl_counter("sluice_syslog_connections_accepted_total",
                                       "Syslog connections accepted.", l2);
    }
    for (int r = 0; r < REJECT_N; r++) {
        sl_metric_labels(l2, sizeof l2, "input", name, "reason", reject_reasons[r]);
        in->m_rejected[r] = sl_counter("sluice_syslog_connections_rejected_total",
                                       "Syslog connections closed at once: max_connections or "
                                       "max_connections_per_address reached.",
                                       l2);
    }
    for (int r = 0; r < CLOSE_N; r++) {
        sl_metric_labels(l2, sizeof l2, "input", name, "reason", close_reasons[r]);
        in->m_closed[r] =
            sl_counter("sluice_syslog_connections_closed_total", "Syslog connections closed.", l2);
    }
    for (int r = 0; r < BAD_N; r++) {
        sl_metric_labels(l2, sizeof l2, "input", name, "reason", bad_reasons[r]);
        in->m_bad[r] = sl_counter("sluice_syslog_invalid_frames_total",
                                  "Syslog frames not shipped as sent: bad_octet_count (connection "
                                  "closed), incomplete_at_close (lost), too_large (cut), "
                                  "unparsable (shipped raw).",
                                  l2);
    }
    sl_metric_labels(l2, sizeof l2, "input", name, "reason", "receive_buffer");
    in->m_udp_dropped = sl_counter("sluice_syslog_udp_dropped_total",
                                   "Syslog datagrams the kernel dropped because the input's "
                                   "receive buffer was full.",
                                   l2);
    in->m_blocked = sl_counter("sluice_syslog_blocked_seconds_total",
                               "Time the input stood still while the sinks were full.", l);
    in->m_errors =
        sl_counter("sluice_syslog_errors_total", "Syslog socket errors: accept, receive, poll.", l);
}

static void warn(sy_input *in, const char *event, const char *peer, const char *what)
{
    uint64_t suppressed;
    if (sl_ratelimit_ok(&in->rl_warn, &suppressed))
        sl_log(SL_LOG_WARN, event, "input=%s peer=%s error=\"%s\" suppressed=%llu", in->ctx->name,
               peer, what, (unsigned long long)suppressed);
}

/* ---- batches ---- */

static void close_all(sy_input *in, int reason);

/* Hands the batch on. Time spent blocked is not idleness of the
 * connections that waited behind it. */
static int flush(sy_input *in)
{
    sl_batch *b = in->batch;
    in->batch = NULL;
    in->chunk_in_batch = false;
    if (!b) return SL_OK;
    if (b->nrecords == 0) {
        sl_batch_unref(b);
        return SL_OK;
    }
    sl_metric_add(in->m_records, b->nrecords);
    int64_t t0 = sl_monotonic_ns();
    int rc = in->ctx->emit(in->ctx->emit_arg, b);
    int64_t dt = sl_monotonic_ns() - t0;
    if (dt > 10000000) {
        sl_metric_add(in->m_blocked, (uint64_t)dt);
        for (size_t i = 0; i < in->nconns; i++) {
            in->conns[i]->last_ns += dt;
            in->conns[i]->accepted_ns += dt;
        }
    }
    return rc;
}

/* A batch with a chunk that has need bytes free, emitting the batch first
 * when it is full. */
static int make_room(sy_input *in, size_t need)
{
    int rc;
    if (in->batch && in->batch->nrecords >= in->batch->cap_records && (rc = flush(in)) != SL_OK)
        return rc;
    if (!in->chunk || in->chunk->cap - in->chunk->len < need) {
        sl_chunk *c = sl_chunk_new(need > CHUNK_BYTES ? need : CHUNK_BYTES);
        if (!c) return SL_ENOMEM;
        if (in->chunk) sl_chunk_unref(in->chunk);
        in->chunk = c;
        in->chunk_in_batch = false;
    }
    if (in->batch && !in->chunk_in_batch && in->batch->nchunks >= SL_BATCH_MAX_CHUNKS &&
        (rc = flush(in)) != SL_OK)
        return rc;
    if (!in->batch) {
        sl_batch *b = sl_batch_new(in->batch_records);
        if (!b || sl_batch_set_names(b, in->ctx->name, "syslog") != SL_OK ||
            sl_batch_set_labels(b, in->labels, in->nlabels) != SL_OK) {
            if (b) sl_batch_unref(b);
            return SL_ENOMEM;
        }
        in->batch = b;
        in->chunk_in_batch = false;
    }
    if (!in->chunk_in_batch) {
        if (sl_batch_add_chunk(in->batch, in->chunk) != SL_OK) return SL_ENOMEM;
        in->chunk_in_batch = true;
    }
    return SL_OK;
}

static void add_str(sl_batch *b, sl_record *r, sl_slice key, sl_slice val)
{
    if (!sl_record_add_field(b, r, key, val, SL_V_STRING)) r->flags |= SL_RF_TRUNCATED;
}

/* One message from a peer becomes one record: the text and the peer's
 * address go into the chunk (the connection may be gone before the batch
 * is delivered), the header into fields. */
static int add_message(sy_input *in, sl_slice frame, bool cut, const char *peer, int transport)
{
    size_t plen = strnlen(peer, PEER_MAX);
    int rc = make_room(in, frame.n + plen);
    if (rc != SL_OK) return rc;
    char *dst = in->chunk->data + in->chunk->len;
    memcpy(dst, frame.p, frame.n);
    memcpy(dst + frame.n, peer, plen);
    in->chunk->len += frame.n + plen;
    sl_batch *b = in->batch;
    int64_t now = sl_now_ns();
    sl_slice line = {dst, frame.n};
    sl_record *r = sl_batch_add(b, line, now, 0);
    if (!r) return SL_ENOMEM; /* make_room left a free record */
    if (cut) {
        r->flags |= SL_RF_TRUNCATED;
        sl_metric_inc(in->m_bad[BAD_TOO_LARGE]);
    }
    if (sl_utf8_valid_prefix(line.p, line.n) != line.n) r->flags |= SL_RF_INVALID_UTF8;
    sl_syslog_opts o = {.now_ns = now, .tz = in->tz};
    sl_err err = {0};
    rc = sl_syslog_parse_record(b, r, line, &o, &err);
    if (rc == SL_EPARSE) {
        /* Shipped raw and marked, as a failed parse step would. */
        r->flags |= SL_RF_PARSE_ERROR;
        sl_metric_inc(in->m_bad[BAD_UNPARSABLE]);
        size_t ml = strnlen(err.msg, sizeof err.msg);
        char *v = sl_arena_alloc(&b->arena, ml + 1);
        if (v) {
            memcpy(v, err.msg, ml + 1);
            add_str(b, r, SL_SLICE_LIT("parse_error"), (sl_slice){v, ml});
        }
    } else if (rc != SL_OK) {
        r->flags |= SL_RF_TRUNCATED; /* arena bound: what fit */
    } else if (in->line_mode == LINE_MESSAGE && r->nfields &&
               sl_slice_eq(r->fields[r->nfields - 1].key, "message", 7)) {
        /* The message field is the last one the parser adds. */
        r->line = r->fields[r->nfields - 1].val;
        r->nfields--;
    }
    add_str(b, r, SL_SLICE_LIT("source_address"), (sl_slice){dst + frame.n, plen});
    add_str(b, r, SL_SLICE_LIT("transport"),
            (sl_slice){transport_names[transport], strlen(transport_names[transport])});
    return SL_OK;
}

static int on_frame(void *arg, sl_slice frame, uint32_t flags)
{
    sy_input *in = arg;
    return add_message(in, frame, flags & SL_SYSLOG_FRAME_TRUNCATED, in->cur->peer,
                       in->cur->transport);
}

/* ---- UDP ---- */

static int read_udp(sy_input *in)
{
    for (int k = 0; k < UDP_PER_ROUND; k++) {
        struct sockaddr_storage ss;
        struct iovec iov = {in->rbuf, READ_BYTES};
        union {
            char buf[CMSG_SPACE(sizeof(uint32_t))];
            struct cmsghdr align;
        } ctrl;
        struct msghdr mh = {.msg_name = &ss,
                            .msg_namelen = sizeof ss,
                            .msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctrl.buf,
                            .msg_controllen = sizeof ctrl.buf};
        ssize_t r = recvmsg(in->lfd[T_UDP], &mh, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sl_metric_inc(in->m_errors);
                warn(in, "syslog_receive_error", "-", strerror(errno));
            }
            return SL_OK;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_RXQ_OVFL) continue;
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof drops);
            /* The kernel's count is cumulative and wraps. */
            sl_metric_add(in->m_udp_dropped, (uint32_t)(drops - in->udp_drops_seen));
            in->udp_drops_seen = drops;
        }
        sl_metric_add(in->m_bytes, (uint64_t)r);
        size_t len = (size_t)r;
        while (len && (in->rbuf[len - 1] == '\n' || in->rbuf[len - 1] == '\r' ||
                       in->rbuf[len - 1] == '\0'))
            len--;
        if (len == 0) continue;
        bool cut = (mh.msg_flags & MSG_TRUNC) || len > in->max_frame;
        if (len > in->max_frame) len = in->max_frame;
        char peer[PEER_MAX];
        sl_net_format_host((struct sockaddr *)&ss, peer, sizeof peer);
        int rc = add_message(in, (sl_slice){in->rbuf, len}, cut, peer, T_UDP);
        if (rc != SL_OK) return rc;
    }
    return SL_OK;
}

/* ---- TCP and TLS ---- */

static void close_conn(sy_input *in, conn *c, int reason)
{
    if (c->closed) return;
    c->closed = true;
    sl_metric_inc(in->m_closed[reason]);
    sl_metric_gauge_add(in->m_open, -1);
    sl_tls_conn_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    sl_syslog_framer_free(&c->fr);
}

/* Drops closed connections from the table. */
static void compact(sy_input *in)
{
    size_t k = 0;
    for (size_t i = 0; i < in->nconns; i++) {
        if (in->conns[i]->closed)
            free(in->conns[i]);
        else
            in->conns[k++] = in->conns[i];
    }
    in->nconns = k;
}

static void close_all(sy_input *in, int reason)
{
    for (size_t i = 0; i < in->nconns; i++) close_conn(in, in->conns[i], reason);
    compact(in);
}

static void accept_some(sy_input *in, int t, int64_t now)
{
    for (int k = 0; k < ACCEPT_PER_TURN; k++) {
        int fd;
        char peer[PEER_MAX];
        sl_err err;
        int rc = sl_net_accept(in->lfd[t], &fd, peer, sizeof peer, &err);
        if (rc == SL_EAGAIN) return;
        if (rc != SL_OK) {
            sl_metric_inc(in->m_errors);
            warn(in, "syslog_accept_error", "-", err.msg);
            /* Out of descriptors: the backlog waits instead of a busy loop. */
            in->accept_paused_until = now + 100000000;
            return;
        }
        if (in->nconns >= (size_t)in->max_conns) {
            close(fd);
            sl_metric_inc(in->m_rejected[REJECT_TOTAL]);
            warn(in, "syslog_max_connections", peer, "max_connections reached");
            continue;
        }
        /* One address cannot take every slot from the other senders. */
        int64_t same = 0;
        for (size_t i = 0; i < in->nconns; i++)
            same += !in->conns[i]->closed && !strcmp(in->conns[i]->peer, peer);
        if (same >= in->max_conns_addr) {
            close(fd);
            sl_metric_inc(in->m_rejected[REJECT_PER_ADDRESS]);
            warn(in, "syslog_max_connections", peer, "max_connections_per_address reached");
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            sl_metric_inc(in->m_closed[CLOSE_MEMORY]);
            continue;
        }
        c->fd = fd;
        c->transport = t;
        c->last_ns = c->accepted_ns = now;
        memcpy(c->peer, peer, sizeof peer);
        sl_syslog_framer_init(&c->fr, in->framing, in->max_frame);
        if (t == T_TLS && sl_tls_conn_new(in->tls, fd, &c->tls, &err) != SL_OK) {
            close(fd);
            free(c);
            sl_metric_inc(in->m_closed[CLOSE_MEMORY]);
            continue;
        }
        in->conns[in->nconns++] = c;
        sl_metric_inc(in->m_accepted[t]);
        sl_metric_gauge_add(in->m_open, 1);
    }
}

/* Reads what one connection has, a few reads at most. SL_ECLOSED when the
 * pipeline is shutting down. */
static int read_conn(sy_input *in, conn *c, int64_t now)
{
    sl_err err = {0};
    if (c->tls && !c->handshaken) {
        int rc = sl_tls_handshake(c->tls, &err);
        if (rc == SL_EAGAIN) return SL_OK;
        if (rc != SL_OK) {
            warn(in, "syslog_tls_handshake_failed", c->peer, err.msg);
            close_conn(in, c, CLOSE_TLS);
            return SL_OK;
        }
        c->handshaken = true;
        c->last_ns = now;
    }
    in->cur = c;
    for (int k = 0; k < READS_PER_CONN; k++) {
        ssize_t r;
        if (c->tls) {
            r = sl_tls_read(c->tls, in->rbuf, READ_BYTES, &err);
        } else {
            r = recv(c->fd, in->rbuf, READ_BYTES, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                r = SL_EAGAIN;
            else if (r < 0)
                snprintf(err.msg, sizeof err.msg, "%s", strerror(errno));
        }
        if (r == SL_EAGAIN) return SL_OK;
        if (r < 0) {
            warn(in, "syslog_read_error", c->peer, err.msg);
            close_conn(in, c, CLOSE_READ_ERROR);
            return SL_OK;
        }
        if (r == 0) {
            int rc = sl_syslog_framer_finish(&c->fr, on_frame, in, &err);
            if (rc == SL_EPARSE) {
                sl_metric_inc(in->m_bad[BAD_INCOMPLETE]);
                warn(in, "syslog_incomplete_frame", c->peer, err.msg);
            }
            close_conn(in, c, CLOSE_PEER);
            return rc == SL_ECLOSED ? rc : SL_OK;
        }
        c->last_ns = now;
        sl_metric_add(in->m_bytes, (uint64_t)r);
        int rc = sl_syslog_framer_feed(&c->fr, in->rbuf, (size_t)r, on_frame, in, &err);
        if (rc == SL_ECLOSED) return rc;
        if (rc == SL_EPARSE) {
            /* RFC 6587 octet counting has no way back into step. */
            sl_metric_inc(in->m_bad[BAD_OCTET_COUNT]);
            warn(in, "syslog_framing_error", c->peer, err.msg);
            close_conn(in, c, CLOSE_FRAMING);
            return SL_OK;
        }
        if (rc != SL_OK) {
            close_conn(in, c, CLOSE_MEMORY);
            return SL_OK;
        }
        if ((size_t)r < READ_BYTES && !(c->tls && sl_tls_pending(c->tls))) return SL_OK;
    }
    return SL_OK;
}

/* ---- the thread ---- */

static void open_listeners(sy_input *in, sl_err *err, int *rc)
{
    for (int t = 0; t < T_N && *rc == SL_OK; t++) {
        if (!in->listen[t]) continue;
        sl_net_listen_opts o = {.backlog = 128, .receive_buffer = t == T_UDP ? in->udp_rcvbuf : 0};
        *rc = sl_net_listen(in->listen[t], t == T_UDP ? SL_NET_UDP : SL_NET_TCP, &o, &in->lfd[t],
                            err);
        if (*rc == SL_OK && t == T_UDP) {
            int one = 1;
            setsockopt(in->lfd[t], SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        }
    }
}

static void free_input(sy_input *in)
{
    if (!in) return;
    close_all(in, CLOSE_SHUTDOWN);
    for (int t = 0; t < T_N; t++)
        if (in->lfd[t] >= 0) close(in->lfd[t]);
    if (in->batch) sl_batch_unref(in->batch);
    if (in->chunk) sl_chunk_unref(in->chunk);
    sl_tls_server_free(in->tls);
    sl_tz_free(in->tz);
    free(in->conns);
    free(in->pfds);
    free(in->pconn);
    free(in->rbuf);
    free(in);
}

static int sy_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    sy_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    for (int t = 0; t < T_N; t++) in->lfd[t] = -1;
    if (configure(in, ctx) != SL_OK) {
        free_input(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) {
        const sl_cfg_node *tls = sl_cfg_get(ctx->node, "tls");
        size_t before = sl_cfg_nerrors(ctx->cfg);
        if (in->listen[T_TLS] && tls) sl_tls_server_check(ctx->cfg, tls, &in->tls_opts);
        bool bad = sl_cfg_nerrors(ctx->cfg) > before;
        free_input(in);
        if (bad) return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
        *state = NULL;
        return SL_OK;
    }
    size_t npoll = T_N + (size_t)in->max_conns;
    in->conns = calloc((size_t)in->max_conns, sizeof *in->conns);
    in->pfds = calloc(npoll, sizeof *in->pfds);
    in->pconn = calloc(npoll, sizeof *in->pconn);
    in->rbuf = malloc(READ_BYTES);
    if (!in->conns || !in->pfds || !in->pconn || !in->rbuf) {
        free_input(in);
        return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    }
    int rc = SL_OK;
    if (in->listen[T_TLS]) rc = sl_tls_server_new(&in->tls_opts, &in->tls, err);
    if (rc == SL_OK) open_listeners(in, err, &rc);
    if (rc != SL_OK) {
        free_input(in);
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return sl_errf(err, rc, "input %s: %s", ctx->name, msg);
    }
    register_metrics(in);
    in->rl_warn.interval_ns = 10 * 1000000000LL;
    for (int t = 0; t < T_N; t++)
        if (in->lfd[t] >= 0)
            sl_log(SL_LOG_INFO, "syslog_listening", "input=%s transport=%s address=%s", ctx->name,
                   transport_names[t], in->listen[t]);
    *state = in;
    return SL_OK;
}

static int sy_run(void *state)
{
    sy_input *in = state;
    int rc = SL_OK;
    while (!atomic_load(in->ctx->stop)) {
        int64_t now = sl_monotonic_ns();
        nfds_t n = 0;
        bool tls_pending = false;
        for (int t = 0; t < T_N; t++) {
            if (in->lfd[t] < 0 || (t != T_UDP && now < in->accept_paused_until)) continue;
            in->pfds[n] = (struct pollfd){in->lfd[t], POLLIN, 0};
            in->pconn[n++] = NULL;
        }
        for (size_t i = 0; i < in->nconns; i++) {
            conn *c = in->conns[i];
            short ev = POLLIN;
            if (c->tls && !c->handshaken && sl_tls_wants_write(c->tls)) ev = POLLOUT;
            if (c->tls && c->handshaken && sl_tls_pending(c->tls)) tls_pending = true;
            in->pfds[n] = (struct pollfd){c->fd, ev, 0};
            in->pconn[n++] = c;
        }
        int ready = poll(in->pfds, n, tls_pending ? 0 : POLL_MS);
        if (ready < 0 && errno != EINTR) {
            sl_metric_inc(in->m_errors);
            warn(in, "syslog_poll_error", "-", strerror(errno));
        }
        now = sl_monotonic_ns();
        for (nfds_t i = 0; i < n && rc == SL_OK; i++) {
            conn *c = in->pconn[i];
            bool go = in->pfds[i].revents != 0 ||
                      (c && c->tls && c->handshaken && sl_tls_pending(c->tls));
            if (!go) continue;
            if (!c) {
                int t = in->pfds[i].fd == in->lfd[T_UDP]   ? T_UDP
                        : in->pfds[i].fd == in->lfd[T_TCP] ? T_TCP
                                                           : T_TLS;
                if (t == T_UDP)
                    rc = read_udp(in);
                else
                    accept_some(in, t, now);
            } else if (!c->closed) {
                rc = read_conn(in, c, now);
            }
        }
        if (rc == SL_OK) rc = flush(in);
        if (rc == SL_ECLOSED) break;
        if (rc == SL_ENOMEM) {
            /* The batch or its chunk could not be allocated: what was read
             * into it is gone; counted, and the input carries on. */
            sl_metric_inc(in->m_errors);
            warn(in, "syslog_out_of_memory", "-", "batch allocation failed");
            rc = SL_OK;
        }
        now = sl_monotonic_ns();
        for (size_t i = 0; i < in->nconns; i++) {
            conn *c = in->conns[i];
            if (c->closed) continue;
            if (c->tls && !c->handshaken && now - c->accepted_ns > in->handshake_ms * 1000000) {
                /* Bytes that never finish a handshake are not activity. */
                warn(in, "syslog_tls_handshake_failed", c->peer, "tls_handshake_timeout");
                close_conn(in, c, CLOSE_TLS_TIMEOUT);
            } else if (now - c->last_ns > in->idle_ms * 1000000) {
                if (sl_syslog_framer_held(&c->fr)) sl_metric_inc(in->m_bad[BAD_INCOMPLETE]);
                close_conn(in, c, CLOSE_IDLE);
            }
        }
        compact(in);
    }
    /* What was read goes out while the sinks drain. */
    if (rc == SL_OK || rc == SL_ECLOSED) flush(in);
    close_all(in, CLOSE_SHUTDOWN);
    return SL_OK;
}

static void sy_destroy(void *state)
{
    free_input(state);
}

const sl_input_ops sl_syslog_input_ops = {.type = "syslog",
                                          .create = sy_create,
                                          .run = sy_run,
                                          .destroy = sy_destroy,
                                          .keys = syslog_keys,
                                          .nkeys = SL_CFG_NKEYS(syslog_keys)};
