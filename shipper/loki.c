/* The Loki sink: configuration, batching from the buffer, the workers'
 * job ring (concurrency), and sending with the status policy (retry, give
 * back, split, reject). One file because these share the sink's state and
 * its locking; what Loki accepts lives in loki_limits.c, the wire format in
 * loki_encode.c, per-record tenants in loki_tenant.c, `sluice check`'s
 * warnings in loki_check.c. */
#include "shipper/loki.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/buffer.h"
#include "shipper/http.h"
#include "shipper/loki_encode.h"
#include "shipper/loki_limits.h"
#include "shipper/loki_tenant.h"
#include "shipper/retry.h"

#define LOKI_MAX_LABELS 64
#define LOKI_MAX_META   64

enum { ENC_PROTOBUF, ENC_JSON };
enum { COMP_SNAPPY, COMP_GZIP, COMP_NONE };

/* A record range of one batch; requests are lists of spans so a 413 can
 * split inside a batch. */
typedef struct span {
    sl_batch *b;
    uint32_t first, count;
} span;

/* How a request ended. RETRY: it failed and may succeed later; with one
 * worker the caller gives the batches back to the buffer and waits (the
 * input's checkpoint keeps moving meanwhile, decision 0016). */
enum { SENT, ABORTED, RETRY };

/* Requests of one flush: with concurrency N, every worker sends the part of
 * the same batches whose streams hash to it; the batches are acknowledged
 * once every part is delivered. */
typedef struct job {
    sl_batch **b;
    uint64_t *skip; /* per batch, parts delivered before it was given back
                       (bit = worker), or NULL: see given_part */
    uint32_t n;
    uint32_t left; /* parts not finished */
    uint64_t sent; /* parts delivered (bit = worker) */
    bool aborted;  /* a part was not delivered (stopping) */
    bool acked;    /* every part delivered and the batches acknowledged */
} job;

/* Jobs in flight (queued or being sent): enough to keep every worker busy
 * while the next flush is gathered, few enough to bound memory. */
#define LOKI_JOBS 4
/* With several workers, failures in a row a part is retried holding its
 * job before the job is given back (see retry_later). */
#define LOKI_HOLD_TRIES 3
/* Batches given back with parts already delivered that the sink remembers
 * (about 4 jobs of small batches); beyond it the oldest are forgotten and
 * their delivered parts are sent again. */
#define LOKI_GIVEN_MAX 4096

/* A batch given back (concurrency > 1) after some workers delivered their
 * parts of it: when it comes back, those parts are skipped, so Loki never
 * gets a stream's entries again after newer ones (an ordered Loki refuses
 * them as out of order). Known by content, since a given-back batch may
 * come back as another object (moved to the spool and read again). */
typedef struct given_part {
    uint64_t key;  /* batch_key */
    uint64_t sent; /* parts delivered (bit = worker) */
} given_part;

struct loki;

/* One request in flight at a time, with its own connection, encoder,
 * buffers and backoff. */
typedef struct worker {
    struct loki *s;
    uint32_t id;
    sl_http *http;
    sl_loki_req *req;
    sl_buf raw, body;
    sl_retry retry;
    int64_t wait_ms; /* after RETRY: how long to wait before the next try */
    pthread_t thr;
    bool started;
    uint64_t next; /* the next job this worker sends */
} worker;

typedef struct loki {
    const sl_sink_ctx *ctx;
    char *url_log; /* the url without credentials */
    int encoding, compression;
    int64_t max_wait_ms;
    uint64_t max_batch_bytes;
    sl_loki_opts eopts;
    sl_loki_limits limits;
    sl_loki_tpl *tenant_tpl; /* a tenant per record, or NULL */
    sl_loki_kv labels[LOKI_MAX_LABELS];
    sl_slice meta[LOKI_MAX_META];
    char *strings[2 * LOKI_MAX_LABELS + LOKI_MAX_META]; /* owned copies */
    size_t nstrings;

    worker *w;
    uint32_t nw;
    /* Workers (concurrency > 1) and the job ring, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ok, quit;
    bool retrying;          /* a part failed: workers skip, settle() gives back */
    int64_t retry_until_ns; /* the latest end of the backoffs asked for meanwhile */
    job ring[LOKI_JOBS];
    uint64_t head, tail; /* ring[head % LOKI_JOBS ..tail) in flight */

    sl_batch **pend;
    uint32_t npend, cappend;
    uint64_t pend_bytes;
    int64_t pend_since_ns;
    /* After a give-back: the batches given back have waited already, so
     * pend is flushed as soon as the buffer has nothing more queued, not
     * max_batch_wait after the first pop. */
    bool resend;
    given_part *given; /* sink thread only */
    uint32_t ngiven, capgiven;

    sl_metric *m_records, *m_bytes, *m_retries, *m_invalid, *m_last_ok, *m_failing;
    sl_metric *m_adjusted[SL_LOKI_ADJ_N], *m_status;
    char mlabels[256];
    bool failing;
    uint32_t fail_streak;
    sl_ratelimit rl_fail, rl_drop, rl_adj;
} loki;

static const sl_cfg_key loki_keys[] = {
    SL_SINK_COMMON_KEYS,
    {.name = "url",
     .type = SL_KEY_STR,
     .required = true,
     .doc = "`http(s)://host:3100/loki/api/v1/push`"},
    {.name = "tenant",
     .type = SL_KEY_STR,
     .doc = "`X-Scope-OrgID`: a tenant, or a template per record like the Kafka topic's "
            "(`${labels.team:-ops}`, `${fields.NAME:-x}`, `${input}`, `${source}`)"},
    {.name = "auth",
     .type = SL_KEY_MAP,
     .doc = "`{username, password | password_file}` or `{bearer_token | bearer_token_file}`"},
    {.name = "tls",
     .type = SL_KEY_MAP,
     .doc = "`{ca_file, cert_file, key_file, insecure_skip_verify}`"},
    {.name = "encoding",
     .type = SL_KEY_ENUM,
     .choices = "protobuf|json",
     .def = "protobuf",
     .doc = "`protobuf` (snappy) or `json`"},
    {.name = "compression",
     .type = SL_KEY_ENUM,
     .choices = "snappy|gzip|none",
     .doc = "`snappy`, `gzip`, `none`; snappy for protobuf and gzip for json when absent"},
    {.name = "labels",
     .type = SL_KEY_MAP,
     .doc = "static labels; fields marked by the `labels` step are added"},
    {.name = "structured_metadata",
     .type = SL_KEY_LIST,
     .doc = "fields sent as structured metadata"},
    {.name = "line_format",
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` line or the record as `json`"},
    {.name = "timeout", .type = SL_KEY_DURATION, .def = "10s", .doc = "one push request"},
    {.name = "max_batch_bytes", .type = SL_KEY_SIZE, .def = "1MiB", .doc = "request size"},
    {.name = "max_batch_wait",
     .type = SL_KEY_DURATION,
     .def = "1s",
     .doc = "request latency: a batch is sent at the latest after this long"},
    {.name = "concurrency",
     .type = SL_KEY_INT,
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "requests in flight at once, each from its own worker; streams are split between "
            "workers so each stream stays in order"},
    {.name = "min_backoff",
     .type = SL_KEY_DURATION,
     .def = "500ms",
     .doc = "first retry delay; retries are unbounded, back off with jitter and honour Retry-After "
            "(see the status policy)"},
    {.name = "max_backoff", .type = SL_KEY_DURATION, .def = "1m", .doc = "longest retry delay"},
    {.name = "limits",
     .type = SL_KEY_MAP,
     .doc = "what your Loki accepts, named as in its `limits_config` (copy them from there); "
            "Loki's defaults when absent (see What Loki accepts)"},
    {.name = "long_lines",
     .type = SL_KEY_ENUM,
     .choices = "split|truncate",
     .def = "split",
     .doc = "a line over `limits.max_line_size`: `split` into several entries (same time, in "
            "order) or `truncate`"},
    {.name = "out_of_window",
     .type = SL_KEY_ENUM,
     .choices = "clamp|drop",
     .def = "clamp",
     .doc = "a time outside Loki's window: `clamp` (sent at the nearest accepted time, the "
            "original in structured metadata `original_ts`) or `drop` (counted)"},
};

/* Named as in Loki's limits_config, so they can be copied from it. */
static const sl_cfg_key limits_keys[] = {
    {.name = "max_line_size",
     .type = SL_KEY_SIZE,
     .def = "256kB",
     .doc = "longest line Loki accepts"},
    {.name = "max_line_size_truncate",
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "Loki truncates long lines instead of refusing them (sluice then cuts them too)"},
    {.name = "reject_old_samples",
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "Loki refuses entries older than `reject_old_samples_max_age`"},
    {.name = "reject_old_samples_max_age",
     .type = SL_KEY_STR,
     .def = "1w",
     .doc = "oldest entry Loki accepts (Loki's `1w` or sluice's `168h`)"},
    {.name = "creation_grace_period",
     .type = SL_KEY_STR,
     .def = "10m",
     .doc = "how far in the future an entry may be"},
    {.name = "max_label_names_per_series",
     .type = SL_KEY_INT,
     .def = "15",
     .min = 1,
     .max = 1000,
     .doc = "labels per stream"},
    {.name = "max_label_value_length",
     .type = SL_KEY_INT,
     .def = "2048",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "longest label value"},
    {.name = "max_label_name_length",
     .type = SL_KEY_INT,
     .def = "1024",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "longest label name"},
};

static const sl_cfg_key auth_keys[] = {
    {.name = "username", .type = SL_KEY_STR, .doc = "basic auth user"},
    {.name = "password",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "basic auth password (prefer `password_file`)"},
    {.name = "password_file", .type = SL_KEY_STR, .doc = "file holding the password"},
    {.name = "bearer_token",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "bearer token (prefer `bearer_token_file`)"},
    {.name = "bearer_token_file", .type = SL_KEY_STR, .doc = "file holding the bearer token"},
};

static const sl_cfg_key tls_keys[] = {
    {.name = "ca_file", .type = SL_KEY_STR, .doc = "PEM CA to verify Loki"},
    {.name = "cert_file", .type = SL_KEY_STR, .doc = "PEM client certificate (with `key_file`)"},
    {.name = "key_file", .type = SL_KEY_STR, .doc = "PEM client key"},
    {.name = "insecure_skip_verify",
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "do not verify Loki's certificate"},
};

#define NKEYS(k) (sizeof(k) / sizeof *(k))

/* ---- configuration ---- */

static const char *keep(loki *s, const char *str)
{
    if (!str || s->nstrings == sizeof s->strings / sizeof *s->strings) return NULL;
    char *d = strdup(str);
    if (d) s->strings[s->nstrings++] = d;
    return d;
}

/* The url for logs: userinfo (user:password@) replaced. */
static char *redact_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == '@') at = p;
    size_t n = strlen(url) + 16;
    char *out = malloc(n);
    if (!out) return NULL;
    if (at)
        snprintf(out, n, "%.*s<redacted>%s", (int)(host - url), url, at);
    else
        snprintf(out, n, "%s", url);
    return out;
}

/* A duration as Loki writes it: ours (500ms, 10m, 168h, 7d) or weeks (1w). */
static void loki_duration(sl_cfg *cfg, const sl_cfg_node *map, const char *key, int64_t def_ms,
                          int64_t *out_ms)
{
    const char *v = NULL;
    *out_ms = def_ms;
    if (sl_cfg_str(cfg, map, key, NULL, &v) || !v) return;
    size_t n = strlen(v);
    char *end;
    long long w = n > 1 && v[n - 1] == 'w' ? strtoll(v, &end, 10) : -1;
    if (w >= 0 && w <= 5200 && end == v + n - 1) {
        *out_ms = w * 7 * 86400000LL;
        return;
    }
    if (sl_parse_duration_ms(v, out_ms) == 0 && *out_ms >= 0) return;
    *out_ms = def_ms;
    sl_cfg_error(cfg, sl_cfg_get(map, key), "%s: '%s' is not a duration (e.g. 1w, 168h, 10m)", key,
                 v);
}

/* The limits from the sink's config, Loki's defaults for what is unset. */
static void read_limits(sl_cfg *cfg, const sl_cfg_node *n, sl_loki_limits *l)
{
    sl_loki_limits_default(l);
    const sl_cfg_node *m = sl_cfg_get(n, "limits");
    if (m) sl_cfg_check(cfg, m, limits_keys, NKEYS(limits_keys));
    bool truncate = false, reject_old = true;
    int64_t v, old_ms, grace_ms;
    sl_cfg_size(cfg, m, "max_line_size", l->max_line_size, &l->max_line_size);
    sl_cfg_bool(cfg, m, "max_line_size_truncate", false, &truncate);
    sl_cfg_bool(cfg, m, "reject_old_samples", true, &reject_old);
    loki_duration(cfg, m, "reject_old_samples_max_age", l->reject_old_ns / 1000000, &old_ms);
    loki_duration(cfg, m, "creation_grace_period", l->grace_ns / 1000000, &grace_ms);
    l->reject_old_ns = reject_old ? old_ms * 1000000 : 0;
    l->grace_ns = grace_ms * 1000000;
    sl_cfg_int(cfg, m, "max_label_names_per_series", l->max_label_names, 1, 1000, &v);
    l->max_label_names = (uint32_t)v;
    sl_cfg_int(cfg, m, "max_label_value_length", l->max_label_value_len, 1, 1 << 20, &v);
    l->max_label_value_len = (uint32_t)v;
    sl_cfg_int(cfg, m, "max_label_name_length", l->max_label_name_len, 1, 1 << 20, &v);
    l->max_label_name_len = (uint32_t)v;
    sl_cfg_enum(cfg, n, "long_lines", "split|truncate", SL_LOKI_LONG_SPLIT, &l->long_lines);
    /* Loki itself truncates then, so sluice sends what Loki would keep. */
    if (truncate) l->long_lines = SL_LOKI_LONG_TRUNCATE;
    sl_cfg_enum(cfg, n, "out_of_window", "clamp|drop", SL_LOKI_WINDOW_CLAMP, &l->out_of_window);
}

/* The url's path must lead to Loki's push endpoint: a bare host (the usual
 * slip) answers 404 forever. */
static void check_url_path(sl_cfg *cfg, const sl_cfg_node *at, const char *url)
{
    const char *host = strstr(url, "://");
    if (!host) return;
    host += 3;
    const char *path = host + strcspn(host, "/?#");
    size_t pn = strcspn(path, "?#");
    if (memmem(path, pn, "/push", 5)) return;
    sl_cfg_error(cfg, at,
                 "url has path '%.*s', which is not Loki's push endpoint: use "
                 "\"%.*s/loki/api/v1/push\"",
                 (int)pn, path,
                 (int)(path - url) + (pn && path[pn - 1] == '/' ? (int)pn - 1 : (int)pn), url);
}

static int abort_cb(void *arg)
{
    const loki *s = arg;
    return atomic_load(s->ctx->stop) ? 1 : 0;
}

static void loki_destroy(void *state);

static int loki_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_check(cfg, n, loki_keys, NKEYS(loki_keys));
    const sl_cfg_node *auth = sl_cfg_get(n, "auth");
    const sl_cfg_node *tls = sl_cfg_get(n, "tls");
    if (auth) sl_cfg_check(cfg, auth, auth_keys, NKEYS(auth_keys));
    if (tls) sl_cfg_check(cfg, tls, tls_keys, NKEYS(tls_keys));

    const char *url = NULL, *tenant = NULL, *user = NULL;
    const char *ca = NULL, *cert = NULL, *key = NULL;
    bool insecure = false;
    int encoding = ENC_PROTOBUF, compression = -1, line_format = SL_LOKI_LINE_RAW;
    int64_t timeout_ms = 10000, wait_ms = 1000, min_backoff = 500, max_backoff = 60000;
    int64_t concurrency = 1;
    uint64_t max_bytes = 1 << 20;
    sl_cfg_str(cfg, n, "url", NULL, &url);
    sl_cfg_str(cfg, n, "tenant", NULL, &tenant);
    sl_cfg_enum(cfg, n, "encoding", "protobuf|json", ENC_PROTOBUF, &encoding);
    sl_cfg_enum(cfg, n, "compression", "snappy|gzip|none", -1, &compression);
    sl_cfg_enum(cfg, n, "line_format", "raw|json", SL_LOKI_LINE_RAW, &line_format);
    sl_cfg_duration_ms(cfg, n, "timeout", 10000, &timeout_ms);
    sl_cfg_size(cfg, n, "max_batch_bytes", 1 << 20, &max_bytes);
    sl_cfg_duration_ms(cfg, n, "max_batch_wait", 1000, &wait_ms);
    sl_cfg_int(cfg, n, "concurrency", 1, 1, 64, &concurrency);
    sl_cfg_duration_ms(cfg, n, "min_backoff", 500, &min_backoff);
    sl_cfg_duration_ms(cfg, n, "max_backoff", 60000, &max_backoff);
    sl_cfg_str(cfg, auth, "username", NULL, &user);
    sl_cfg_str(cfg, tls, "ca_file", NULL, &ca);
    sl_cfg_str(cfg, tls, "cert_file", NULL, &cert);
    sl_cfg_str(cfg, tls, "key_file", NULL, &key);
    sl_cfg_bool(cfg, tls, "insecure_skip_verify", false, &insecure);

    if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        sl_cfg_error(cfg, sl_cfg_get(n, "url"), "url must start with http:// or https://");
    else if (url)
        check_url_path(cfg, sl_cfg_get(n, "url"), url);
    sl_loki_tpl *tpl = NULL;
    if (tenant && *tenant) {
        char why[300];
        if (strchr(tenant, '$')) {
            if (sl_loki_tpl_parse(tenant, &tpl, why, sizeof why))
                sl_cfg_error(cfg, sl_cfg_get(n, "tenant"), "tenant template: %s", why);
            else if (!sl_loki_tpl_per_record(tpl)) /* only "$$": a literal '$' */
                sl_cfg_error(cfg, sl_cfg_get(n, "tenant"),
                             "tenant: '$' is not a character Loki accepts in a tenant");
        } else if (sl_loki_tenant_check(tenant, strlen(tenant), why, sizeof why)) {
            sl_cfg_error(cfg, sl_cfg_get(n, "tenant"), "tenant: %s", why);
        }
    }
    sl_loki_limits limits;
    read_limits(cfg, n, &limits);
    if (compression < 0) compression = encoding == ENC_PROTOBUF ? COMP_SNAPPY : COMP_GZIP;
    if (encoding == ENC_PROTOBUF && compression != COMP_SNAPPY)
        sl_cfg_error(cfg, sl_cfg_get(n, "compression"),
                     "protobuf requests are always snappy-compressed (Loki expects it); use "
                     "encoding: json for gzip or none");
    if (encoding == ENC_JSON && compression == COMP_SNAPPY)
        sl_cfg_error(cfg, sl_cfg_get(n, "compression"), "json requests use gzip or none");
    if (max_bytes < 1024)
        sl_cfg_error(cfg, sl_cfg_get(n, "max_batch_bytes"), "max_batch_bytes must be >= 1KiB");
    if (min_backoff < 1) min_backoff = 1;
    if (max_backoff < min_backoff)
        sl_cfg_error(cfg, sl_cfg_get(n, "max_backoff"), "max_backoff must be >= min_backoff");
    if ((cert == NULL) != (key == NULL))
        sl_cfg_error(cfg, tls, "tls: cert_file and key_file go together");

    char *password = NULL, *token = NULL;
    if (auth) {
        sl_cfg_secret(cfg, auth, "password", &password);
        sl_cfg_secret(cfg, auth, "bearer_token", &token);
        if (password && !user) sl_cfg_error(cfg, auth, "auth: password needs a username");
        if (user && token)
            sl_cfg_error(cfg, auth, "auth: use either username/password or bearer_token");
    }

    const sl_cfg_node *lab = sl_cfg_get(n, "labels");
    if (lab && lab->kind == SL_CFG_MAP) {
        if (lab->n > LOKI_MAX_LABELS)
            sl_cfg_error(cfg, lab, "at most %d static labels", LOKI_MAX_LABELS);
        for (size_t i = 0; i < lab->n; i++)
            if (lab->items[i]->kind != SL_CFG_SCALAR)
                sl_cfg_error(cfg, lab->items[i], "label %s: value must be a string", lab->keys[i]);
    }
    const char *meta[LOKI_MAX_META];
    size_t nmeta = 0;
    sl_cfg_list(cfg, n, "structured_metadata", meta, LOKI_MAX_META, &nmeta);

    if (sl_cfg_nerrors(cfg) > before || ctx->check_only) {
        sl_loki_tpl_free(tpl);
        free(password);
        free(token);
        if (sl_cfg_nerrors(cfg) > before)
            return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
        return SL_OK;
    }

    loki *s = calloc(1, sizeof *s);
    if (!s) {
        sl_loki_tpl_free(tpl);
        free(password);
        free(token);
        return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    }
    s->ctx = ctx;
    s->tenant_tpl = tpl;
    s->eopts.tenant = tpl;
    s->encoding = encoding;
    s->compression = compression;
    s->max_wait_ms = wait_ms;
    s->max_batch_bytes = max_bytes;
    s->url_log = redact_url(url);
    bool nomem = !s->url_log;
    for (size_t i = 0; lab && lab->kind == SL_CFG_MAP && i < lab->n; i++) {
        const char *k = keep(s, lab->keys[i]), *v = keep(s, lab->items[i]->scalar);
        if (!k || !v) {
            nomem = true;
            break;
        }
        s->labels[s->eopts.nlabels++] = (sl_loki_kv){{k, strlen(k)}, {v, strlen(v)}};
    }
    for (size_t i = 0; i < nmeta; i++) {
        const char *m = keep(s, meta[i]);
        if (!m) {
            nomem = true;
            break;
        }
        s->meta[s->eopts.nmeta_fields++] = (sl_slice){m, strlen(m)};
    }
    s->limits = limits;
    s->eopts.limits = &s->limits;
    s->eopts.line_format = line_format;
    s->eopts.labels = s->labels;
    s->eopts.meta_fields = s->meta;
    if (pthread_mutex_init(&s->mu, NULL) == 0) {
        if (pthread_cond_init(&s->cv, NULL) == 0)
            s->sync_ok = true;
        else
            pthread_mutex_destroy(&s->mu);
    }
    s->w = calloc((size_t)concurrency, sizeof *s->w);
    nomem = nomem || !s->w || !s->sync_ok;
    for (uint32_t i = 0; s->w && i < (uint32_t)concurrency; i++) {
        worker *w = &s->w[s->nw++];
        w->s = s;
        w->id = i;
        sl_buf_init(&w->raw, 0);
        sl_buf_init(&w->body, 0);
        w->req = sl_loki_req_new(&s->eopts);
        if (!w->req)
            nomem = true;
        else
            sl_loki_req_set_part(w->req, i, (uint32_t)concurrency);
    }
    if (nomem) {
        free(password);
        free(token);
        loki_destroy(s);
        return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    }

    char tenant_hdr[256];
    const char *headers[2] = {NULL, NULL};
    if (tenant && *tenant && !tpl) {
        snprintf(tenant_hdr, sizeof tenant_hdr, "X-Scope-OrgID: %s", tenant);
        headers[0] = tenant_hdr;
    }
    sl_http_opts ho = {
        .url = url,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000,
        .ca_file = ca,
        .cert_file = cert,
        .key_file = key,
        .insecure_skip_verify = insecure,
        .username = user,
        .password = password,
        .bearer_token = token,
        .headers = headers,
        .abort_cb = abort_cb,
        .abort_arg = s,
    };
    int rc = 0;
    for (uint32_t i = 0; i < s->nw && rc == 0; i++) rc = sl_http_new(&ho, &s->w[i].http, err);
    if (password) explicit_bzero(password, strlen(password));
    if (token) explicit_bzero(token, strlen(token));
    free(password);
    free(token);
    if (rc) {
        loki_destroy(s);
        return rc;
    }
    /* Seeded from the clock and the sink: agents restarted together must not
     * retry in lockstep. */
    for (uint32_t i = 0; i < s->nw; i++)
        sl_retry_init(&s->w[i].retry, min_backoff, max_backoff,
                      (uint64_t)sl_monotonic_ns() ^ (uint64_t)(uintptr_t)&s->w[i]);

    sl_metric_labels(s->mlabels, sizeof s->mlabels, "sink", ctx->name, NULL, NULL);
    s->m_records =
        sl_counter("sluice_sink_records_total", "Records delivered by the sink.", s->mlabels);
    s->m_bytes =
        sl_counter("sluice_sink_bytes_total", "Bytes written or sent by the sink.", s->mlabels);
    s->m_retries =
        sl_counter("sluice_sink_retries_total", "Requests retried after a failure.", s->mlabels);
    s->m_invalid =
        sl_counter("sluice_sink_invalid_utf8_total",
                   "Records whose text had invalid UTF-8 replaced with U+FFFD.", s->mlabels);
    s->m_last_ok = sl_gauge("sluice_sink_last_success_timestamp_seconds",
                            "Unix time of the sink's last successful delivery.", s->mlabels);
    s->m_failing =
        sl_gauge("sluice_sink_failing",
                 "1 while the sink's deliveries are failing and being retried.", s->mlabels);
    sl_metric_set(s->m_failing, 0);
    s->m_status = sl_gauge("sluice_sink_last_status",
                           "HTTP status of the sink's last answer (0: none or a transport error).",
                           s->mlabels);
    for (int a = 0; a < SL_LOKI_ADJ_N; a++) {
        char l[320];
        sl_metric_labels(l, sizeof l, "sink", ctx->name, "reason", sl_loki_adjust_reason(a));
        s->m_adjusted[a] = sl_counter("sluice_sink_adjusted_total",
                                      "Records changed so that the destination accepts them, "
                                      "by reason.",
                                      l);
    }
    s->rl_fail.interval_ns = 10 * 1000000000LL;
    s->rl_drop.interval_ns = 10 * 1000000000LL;
    s->rl_adj.interval_ns = 60 * 1000000000LL;
    sl_log(SL_LOG_INFO, "sink_started", "sink=%s type=loki url=%s encoding=%s concurrency=%u",
           ctx->name, s->url_log, encoding == ENC_PROTOBUF ? "protobuf" : "json", s->nw);
    *state = s;
    return SL_OK;
}

static void loki_destroy(void *state)
{
    loki *s = state;
    if (!s) return;
    for (uint32_t i = 0; i < s->nw; i++) {
        sl_http_free(s->w[i].http);
        sl_loki_req_free(s->w[i].req);
        sl_buf_free(&s->w[i].raw);
        sl_buf_free(&s->w[i].body);
    }
    free(s->w);
    if (s->sync_ok) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    for (size_t i = 0; i < s->nstrings; i++) free(s->strings[i]);
    sl_loki_tpl_free(s->tenant_tpl);
    free(s->pend);
    free(s->given);
    free(s->url_log);
    free(s);
}

/* ---- sending ---- */

static bool stopping(const loki *s)
{
    return atomic_load(s->ctx->stop);
}

/* Sleeps ms, waking early on stop. */
static void nap(const loki *s, int64_t ms)
{
    int64_t end = sl_monotonic_ns() + ms * 1000000;
    while (!stopping(s)) {
        int64_t left = end - sl_monotonic_ns();
        if (left <= 0) break;
        if (left > 50 * 1000000) left = 50 * 1000000;
        struct timespec ts = {0, (long)left};
        nanosleep(&ts, NULL);
    }
}

static void count_request(loki *s, const char *code)
{
    char l[320];
    sl_metric_labels(l, sizeof l, "sink", s->ctx->name, "code", code);
    sl_metric_inc(
        sl_counter("sluice_sink_requests_total", "Requests sent by the sink, by result.", l));
}

static void count_drop(loki *s, const char *reason, uint64_t n)
{
    char l[320];
    sl_metric_labels(l, sizeof l, "sink", s->ctx->name, "reason", reason);
    sl_metric_add(sl_counter("sluice_sink_dropped_records_total",
                             "Records the destination rejected for good, by reason.", l),
                  n);
}

static int build(worker *w, const span *sp, uint32_t nsp, sl_err *err)
{
    const loki *s = w->s;
    sl_loki_req_reset(w->req);
    for (uint32_t i = 0; i < nsp; i++) {
        int rc = sl_loki_req_add(w->req, sp[i].b, sp[i].first, sp[i].count, err);
        if (rc) return rc;
    }
    sl_buf_reset(&w->raw);
    if (s->encoding == ENC_PROTOBUF) {
        int rc = sl_loki_req_protobuf(w->req, &w->raw, err);
        return rc ? rc : sl_loki_snappy(w->raw.p, w->raw.len, &w->body, err);
    }
    int rc = sl_loki_req_json(w->req, &w->raw, err);
    if (rc) return rc;
    if (s->compression == COMP_GZIP) return sl_loki_gzip(w->raw.p, w->raw.len, &w->body, err);
    sl_buf_reset(&w->body);
    return sl_buf_append(&w->body, w->raw.p, w->raw.len);
}

/* Which permanent rejection Loki reported, and for how many entries: the
 * sum of its "total ignored: N out of M" lines when present, else one per
 * line naming a reason of one entry. *per_entry is false when the body
 * names no entry (a request refused as a whole: it did not decode, or a
 * stream's labels did not parse): then nothing is known to be stored, and
 * the request is split until the refused records are alone. */
static const char *classify_400(const char *body, uint64_t entries, uint64_t *dropped,
                                bool *per_entry)
{
    static const struct {
        const char *needle, *reason;
        bool entry; /* names one entry, the others of the request were stored */
    } reasons[] = {
        {"out of order", "out_of_order", true},
        {"too far behind", "too_far_behind", true},
        {"line too long", "line_too_long", true},
        {"max entry size", "line_too_long", true},
        {"timestamp too old", "too_old", true},
        {"greater than max sample age", "too_old", true},
        {"timestamp too new", "too_new", true},
        {"too far in future", "too_new", true},
        {"structured metadata", "structured_metadata", true},
        {"stream limit", "stream_limit", false},
        {"label", "bad_labels", false},
    };
    const char *reason = NULL;
    uint64_t total = 0, lines = 0;
    bool whole = false;
    for (const char *line = body; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ln = eol ? (size_t)(eol - line) : strlen(line);
        const char *ti = memmem(line, ln, "total ignored: ", 15);
        if (ti) {
            total += strtoull(ti + 15, NULL, 10);
        } else if (ln) {
            bool known = false;
            for (size_t r = 0; r < sizeof reasons / sizeof *reasons && !known; r++) {
                size_t nl = strlen(reasons[r].needle);
                for (size_t i = 0; i + nl <= ln && !known; i++)
                    known = strncasecmp(line + i, reasons[r].needle, nl) == 0;
                if (known) {
                    if (!reason) reason = reasons[r].reason;
                    if (reasons[r].entry)
                        lines++;
                    else
                        whole = true;
                }
            }
            if (!known) whole = true;
        }
        line = eol ? eol + 1 : NULL;
    }
    *per_entry = total || (lines && !whole);
    uint64_t n = total ? total : *per_entry ? lines : entries;
    *dropped = n < entries ? n : entries;
    return reason ? reason : "rejected";
}

/* Adds what the request needed to be accepted to the counters, and logs
 * it (at most once a minute per sink): adjustments, and records dropped for
 * their time under out_of_window: drop. Called once per request that is
 * done (delivered or refused for good). */
static void account(worker *w)
{
    loki *s = w->s;
    uint64_t any = 0, old = 0, young = 0;
    char what[400];
    size_t o = 0;
    what[0] = 0;
    for (int a = 0; a < SL_LOKI_ADJ_N; a++) {
        uint64_t n = sl_loki_req_adjusted(w->req, a);
        if (!n) continue;
        sl_metric_add(s->m_adjusted[a], n);
        any += n;
        if (o < sizeof what)
            o += (size_t)snprintf(what + o, sizeof what - o, "%s%s=%llu", o ? "," : "",
                                  sl_loki_adjust_reason(a), (unsigned long long)n);
    }
    sl_loki_req_window_dropped(w->req, &old, &young);
    if (old) count_drop(s, "timestamp_too_old", old);
    if (young) count_drop(s, "timestamp_too_new", young);
    if (old || young) {
        uint64_t skipped = 0;
        pthread_mutex_lock(&s->mu);
        bool log = sl_ratelimit_ok(&s->rl_drop, &skipped);
        pthread_mutex_unlock(&s->mu);
        if (log)
            sl_log(SL_LOG_WARN, "sink_records_dropped",
                   "sink=%s reason=out_of_window too_old=%llu too_new=%llu policy=drop "
                   "suppressed=%llu",
                   s->ctx->name, (unsigned long long)old, (unsigned long long)young,
                   (unsigned long long)skipped);
    }
    if (any) {
        uint64_t skipped = 0;
        pthread_mutex_lock(&s->mu);
        bool log = sl_ratelimit_ok(&s->rl_adj, &skipped);
        pthread_mutex_unlock(&s->mu);
        if (log)
            sl_log(SL_LOG_INFO, "sink_records_adjusted",
                   "sink=%s adjusted=\"%s\" why=\"what Loki would refuse\" suppressed=%llu",
                   s->ctx->name, what, (unsigned long long)skipped);
    }
}

static void succeeded(worker *w, uint64_t records, size_t bytes)
{
    loki *s = w->s;
    sl_metric_add(s->m_records, records);
    sl_metric_add(s->m_bytes, bytes);
    sl_metric_add(s->m_invalid, sl_loki_req_invalid_utf8(w->req));
    sl_metric_set(s->m_last_ok, sl_now_ns()); /* ns: rendered in seconds */
    account(w);
    sl_retry_success(&w->retry);
    pthread_mutex_lock(&s->mu);
    if (s->failing) {
        sl_log(SL_LOG_INFO, "sink_recovered", "sink=%s failed_attempts=%u", s->ctx->name,
               s->fail_streak);
        s->failing = false;
        sl_metric_set(s->m_failing, 0);
    }
    s->fail_streak = 0;
    pthread_mutex_unlock(&s->mu);
}

/* Statuses that say the configuration is wrong (where, who): retried,
 * since the operator can fix it and dropping meanwhile would lose data,
 * and logged as errors naming the fix. */
static bool config_status(long st)
{
    return (st >= 300 && st < 400) || st == 401 || st == 403 || st == 404 || st == 405;
}

static bool retryable_status(long st)
{
    return config_status(st) || st == 408 || st == 425 || st == 429 || st >= 500;
}

static void failed(loki *s, const sl_http_result *r, const char *what, int64_t delay)
{
    sl_metric_inc(s->m_retries);
    pthread_mutex_lock(&s->mu);
    s->fail_streak++;
    if (!s->failing) {
        s->failing = true;
        sl_metric_set(s->m_failing, 1);
    }
    uint64_t skipped = 0;
    bool log = sl_ratelimit_ok(&s->rl_fail, &skipped);
    uint32_t streak = s->fail_streak;
    pthread_mutex_unlock(&s->mu);
    if (!log) return;
    char q1[700], q2[200];
    char msg[600];
    long st = r->status;
    if (st >= 300 && st < 400)
        snprintf(msg, sizeof msg,
                 "HTTP %ld (check url): Loki answered %ld to %s%s%s: point url at it", st, st,
                 s->url_log, r->location[0] ? ", redirecting to " : "",
                 r->location[0] ? r->location : "");
    else if (st == 401 || st == 403)
        snprintf(msg, sizeof msg,
                 "HTTP %ld (check auth and tenant): Loki answered %ld to %s: fix auth or tenant",
                 st, st, s->url_log);
    else if (st == 404 || st == 405)
        snprintf(msg, sizeof msg,
                 "HTTP %ld (check url): Loki answered %ld to %s: point url at Loki's push "
                 "endpoint, http(s)://HOST:PORT/loki/api/v1/push",
                 st, st, s->url_log);
    else if (st)
        snprintf(msg, sizeof msg, "HTTP %ld", st);
    else
        snprintf(msg, sizeof msg, "%s", r->error);
    sl_log(config_status(st) ? SL_LOG_ERROR : SL_LOG_WARN, "sink_send_failed",
           "sink=%s url=%s error=%s body=%s during=%s attempt=%u retry_in_ms=%lld "
           "suppressed=%llu",
           s->ctx->name, s->url_log, sl_log_quote(q1, sizeof q1, msg, strlen(msg)),
           sl_log_quote(q2, sizeof q2, r->body, r->body_len < 160 ? r->body_len : 160), what,
           streak, (long long)delay, (unsigned long long)skipped);
}

/* The drop log's rate limit is shared by the workers. */
static bool drop_log_ok(loki *s, uint64_t *skipped)
{
    pthread_mutex_lock(&s->mu);
    bool ok = sl_ratelimit_ok(&s->rl_drop, skipped);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* After a failed attempt that may succeed later: RETRY, and the caller
 * gives the batches back, waits delay, and pops them again (with several
 * workers, after LOKI_HOLD_TRIES failures in a row and once every queued
 * job is finished or skipped: settle()); -1: try again now. */
static int retry_later(worker *w, int64_t delay, int *tries)
{
    /* Several workers: a brief failure is retried holding the part, since
     * giving its job back resends the parts the other workers delivered
     * (at a 20 % fault rate that more than doubled what Loki received); a
     * failure that lasts gives the job back as one worker does. */
    if (w->s->nw > 1 && ++*tries < LOKI_HOLD_TRIES) {
        nap(w->s, delay);
        return -1;
    }
    w->wait_ms = delay;
    return RETRY;
}

static int send_part(worker *w, const span *sp, uint32_t nsp, const char *tenant);

/* 413, or a 400 that names no entry: halves the request by records and
 * sends each half (of the same tenant). -1 when out of memory. */
static int split(worker *w, const span *sp, uint32_t nsp, uint64_t total, const char *tenant)
{
    uint64_t half = total / 2, acc = 0;
    span *l = malloc(nsp * sizeof *l), *r = malloc(nsp * sizeof *r);
    if (!l || !r) {
        free(l);
        free(r);
        return -1;
    }
    uint32_t nl = 0, nr = 0;
    for (uint32_t i = 0; i < nsp; i++) {
        if (acc >= half) {
            r[nr++] = sp[i];
        } else if (acc + sp[i].count <= half) {
            l[nl++] = sp[i];
            acc += sp[i].count;
        } else {
            uint32_t take = (uint32_t)(half - acc);
            l[nl++] = (span){sp[i].b, sp[i].first, take};
            r[nr++] = (span){sp[i].b, sp[i].first + take, sp[i].count - take};
            acc = half;
        }
    }
    int rc = send_part(w, l, nl, tenant);
    if (rc == SENT) rc = send_part(w, r, nr, tenant);
    free(l);
    free(r);
    return rc;
}

/* Records refused for good: counted by reason and logged. */
static void rejected(worker *w, long status, const char *reason, uint64_t n, uint64_t of,
                     const sl_http_result *r)
{
    loki *s = w->s;
    count_drop(s, reason, n);
    uint64_t skipped = 0;
    if (drop_log_ok(s, &skipped)) {
        char q[400];
        sl_log(SL_LOG_WARN, "sink_records_dropped",
               "sink=%s status=%ld reason=%s records=%llu of=%llu bytes=%zu body=%s "
               "suppressed=%llu",
               s->ctx->name, status, reason, (unsigned long long)n, (unsigned long long)of,
               w->body.len,
               sl_log_quote(q, sizeof q, r->body, r->body_len < 300 ? r->body_len : 300),
               (unsigned long long)skipped);
    }
}

/* Builds the request (the worker's part; with a tenant template, the
 * records of the tenant set by sl_loki_req_set_tenant); on memory
 * shortage waits and tries again, never dropping data for it. 0, or
 * ABORTED when stopping. */
static int build_retry(worker *w, const span *sp, uint32_t nsp)
{
    loki *s = w->s;
    sl_err err = {0};
    for (;;) {
        if (stopping(s)) return ABORTED;
        /* The time window is judged at each attempt: a batch that waited
         * through an outage is clamped to the window as it is now. */
        sl_loki_req_set_now(w->req, sl_now_ns());
        int rc = build(w, sp, nsp, &err);
        if (rc == 0) break;
        /* Out of memory: wait and try again; never drop data for it. */
        sl_http_result r = {.retry_after_ms = -1, .body = ""};
        snprintf(r.error, sizeof r.error, "%.200s", err.msg);
        int64_t d = sl_retry_next(&w->retry, -1);
        failed(s, &r, "encode", d);
        nap(s, d);
    }
    return 0;
}

/* Sends the records of sp (of one tenant when tenant is set, with its
 * X-Scope-OrgID) until delivered, refused for good, or RETRY/ABORTED. */
static int send_part(worker *w, const span *sp, uint32_t nsp, const char *tenant)
{
    loki *s = w->s;
    uint64_t total = 0;
    for (uint32_t i = 0; i < nsp; i++) total += sp[i].count;
    sl_loki_req_set_tenant(w->req, tenant, tenant ? strlen(tenant) : 0);
    if (build_retry(w, sp, nsp)) return ABORTED;
    char hdr[200];
    if (tenant) snprintf(hdr, sizeof hdr, "X-Scope-OrgID: %s", tenant);
    uint64_t entries = sl_loki_req_entries(w->req);
    uint64_t records = sl_loki_req_records(w->req);
    if (entries == 0) {
        account(w); /* everything was dropped for its time, or nothing was ours */
        return SENT;
    }
    const char *ctype = s->encoding == ENC_PROTOBUF ? "application/x-protobuf" : "application/json";
    const char *cenc = s->compression == COMP_GZIP ? "gzip" : NULL;
    int tries = 0;
    for (;;) {
        if (stopping(s)) return ABORTED;
        sl_http_result r;
        int rc =
            sl_http_post_hdr(w->http, ctype, cenc, tenant ? hdr : NULL, w->body.p, w->body.len, &r);
        if (rc == SL_ECLOSED || r.aborted) {
            count_request(s, "aborted");
            return ABORTED;
        }
        sl_metric_set(s->m_status, r.status);
        if (rc != 0) {
            count_request(s, "error");
            int64_t d = sl_retry_next(&w->retry, -1);
            failed(s, &r, "send", d);
            int rl = retry_later(w, d, &tries);
            if (rl >= 0) return rl;
            continue;
        }
        char code[16];
        snprintf(code, sizeof code, "%ld", r.status);
        count_request(s, code);
        if (r.status >= 200 && r.status < 300) {
            succeeded(w, records, w->body.len);
            return SENT;
        }
        if (retryable_status(r.status)) {
            int64_t d = sl_retry_next(&w->retry, r.retry_after_ms);
            failed(s, &r, "send", d);
            int rl = retry_later(w, d, &tries);
            if (rl >= 0) return rl;
            continue;
        }
        uint64_t dropped = entries;
        bool per_entry = false;
        const char *reason = "too_large";
        if (r.status != 413) reason = classify_400(r.body, entries, &dropped, &per_entry);
        if (!per_entry && total > 1) {
            /* Refused as a whole: nothing is stored, so halves are sent
             * until the refused records are alone. */
            sl_log(SL_LOG_INFO, "sink_request_split", "sink=%s status=%ld records=%llu bytes=%zu",
                   s->ctx->name, r.status, (unsigned long long)total, w->body.len);
            int sr = split(w, sp, nsp, total, tenant);
            if (sr >= 0) return sr;
            int64_t d = sl_retry_next(&w->retry, -1);
            nap(s, d);
            continue;
        }
        /* Loki stored the other entries of the request (or this was the
         * only record): the request is done, minus what it refused. */
        if (!per_entry) { /* one record (perhaps a split line's pieces) */
            rejected(w, r.status, reason, records, records, &r);
            succeeded(w, 0, 0);
            return SENT;
        }
        rejected(w, r.status, reason, dropped, entries, &r);
        uint64_t kept = entries - dropped;
        succeeded(w, kept < records ? kept : records, kept ? w->body.len : 0);
        return SENT;
    }
}

/* Sends sp: as one request, or with a tenant template one request per
 * tenant among its records (found by a first build), each tenant's records
 * in their own. */
static int send_spans(worker *w, const span *sp, uint32_t nsp)
{
    if (!w->s->tenant_tpl) return send_part(w, sp, nsp, NULL);
    sl_loki_req_set_tenant(w->req, NULL, 0);
    if (build_retry(w, sp, nsp)) return ABORTED;
    uint32_t nt = sl_loki_req_ntenants(w->req);
    if (nt == 0) {
        account(w); /* nothing of ours, or every record dropped for its time */
        return SENT;
    }
    char(*ts)[160] = malloc(nt * sizeof *ts);
    while (!ts && !stopping(w->s)) {
        nap(w->s, 100);
        ts = malloc(nt * sizeof *ts);
    }
    if (!ts) return ABORTED;
    for (uint32_t i = 0; i < nt; i++) {
        sl_slice t = sl_loki_req_tenant(w->req, i);
        snprintf(ts[i], sizeof ts[i], "%.*s", (int)t.n, t.p);
    }
    int rc = SENT;
    for (uint32_t i = 0; i < nt && rc == SENT; i++) rc = send_part(w, sp, nsp, ts[i]);
    sl_loki_req_set_tenant(w->req, NULL, 0);
    free(ts);
    return rc;
}

/* Sends batches (all their records, or with concurrency > 1 this worker's
 * streams, except in the batches whose skip has this worker's bit: its
 * part of them was delivered before they were given back). */
static int send_batches(worker *w, sl_batch *const *b, const uint64_t *skip, uint32_t n)
{
    loki *s = w->s;
    span *sp = malloc(n * sizeof *sp);
    while (!sp && !stopping(s)) {
        nap(s, 100);
        sp = malloc(n * sizeof *sp);
    }
    if (!sp) return ABORTED;
    uint32_t nsp = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!skip || !(skip[i] >> w->id & 1)) sp[nsp++] = (span){b[i], 0, b[i]->nrecords};
    int rc = nsp ? send_spans(w, sp, nsp) : SENT;
    free(sp);
    return rc;
}

/* What identifies a batch's content (input, source, times and lines), so
 * a batch given back is known again when it comes back from the spool as
 * another object. Two batches alike in all of that hold the same entries,
 * which Loki keeps once anyway. */
static uint64_t batch_key(const sl_batch *b)
{
    uint64_t h = 0xcbf29ce484222325ull;
#define MIX(p, n)                                                                                  \
    for (size_t k_ = 0; k_ < (n); k_++)                                                            \
    h = (h ^ ((const unsigned char *)(p))[k_]) * 0x100000001b3ull
    uint64_t nr = b->nrecords;
    MIX(&nr, sizeof nr);
    if (b->input) MIX(b->input, strlen(b->input) + 1);
    if (b->source) MIX(b->source, strlen(b->source) + 1);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        uint64_t t = (uint64_t)r->time_ns, ln = r->line.n;
        MIX(&t, sizeof t);
        MIX(&ln, sizeof ln);
        MIX(r->line.p, r->line.n);
    }
#undef MIX
    return h;
}

/* Remembers that parts sent of batch b were delivered before b was given
 * back. Sink thread. */
static void remember_given(loki *s, const sl_batch *b, uint64_t sent)
{
    if (s->ngiven == s->capgiven) {
        uint32_t nc = s->capgiven ? s->capgiven * 2 : 64;
        given_part *g = nc <= LOKI_GIVEN_MAX ? realloc(s->given, nc * sizeof *g) : NULL;
        if (g) {
            s->given = g;
            s->capgiven = nc;
        } else if (s->ngiven) { /* forget the oldest: their parts come again */
            memmove(s->given, s->given + 1, --s->ngiven * sizeof *s->given);
        } else {
            return;
        }
    }
    s->given[s->ngiven++] = (given_part){batch_key(b), sent};
}

/* The parts of b delivered before it was given back (0: none, or not
 * remembered), forgetting them: if b is given back again, its job says so
 * again. Sink thread. */
static uint64_t recall_given(loki *s, const sl_batch *b)
{
    if (!s->ngiven) return 0;
    uint64_t key = batch_key(b);
    for (uint32_t i = 0; i < s->ngiven; i++) {
        if (s->given[i].key != key) continue;
        uint64_t sent = s->given[i].sent;
        memmove(s->given + i, s->given + i + 1, (--s->ngiven - i) * sizeof *s->given);
        return sent;
    }
    return 0;
}

/* Not sent (a failure to retry later, or stopping): the batches go back to
 * the buffer, newest first so it keeps their order; it hands them out
 * again, spools them when memory fills up, or at shutdown spools them or
 * leaves them unacknowledged. */
static void give_back(loki *s, sl_batch *const *b, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;) sl_buffer_unpop(s->ctx->buffer, b[i]);
}

/* Sends the worker's part of its next job, if there is one (or waits for
 * one when wait is set). The worker that finishes a job's last part
 * acknowledges its batches, unless a part was abandoned at shutdown. False
 * when there is nothing left to do. mu is not held. */
static bool work_one(worker *w, bool wait)
{
    loki *s = w->s;
    pthread_mutex_lock(&s->mu);
    while (wait && w->next == s->tail && !s->quit) pthread_cond_wait(&s->cv, &s->mu);
    if (w->next == s->tail) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    /* The slot is not reused before every part, ours included, is done. */
    job *j = &s->ring[w->next % LOKI_JOBS];
    /* Another part failed: this one is given back with it rather than
     * sent after it, so a stream's entries never overtake each other. */
    bool skip = s->retrying;
    pthread_mutex_unlock(&s->mu);
    int rc = skip ? RETRY : send_batches(w, j->b, j->skip, j->n);
    pthread_mutex_lock(&s->mu);
    if (rc == SENT) j->sent |= 1ull << w->id;
    if (rc != SENT) j->aborted = true;
    if (rc == RETRY && !skip) {
        s->retrying = true;
        int64_t until = sl_monotonic_ns() + w->wait_ms * 1000000;
        if (until > s->retry_until_ns) s->retry_until_ns = until;
    }
    bool last = --j->left == 0, ack = last && !j->aborted;
    w->next++;
    /* Acknowledged under mu: settle() sees the last part finish and must
     * see the job acknowledged with it, or it would give back batches
     * already done. */
    if (ack) {
        for (uint32_t i = 0; i < j->n; i++) sl_batch_done(j->b[i]);
        j->acked = true;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void *worker_main(void *arg)
{
    while (work_one(arg, true)) {
    }
    return NULL;
}

/* Frees acknowledged jobs at the head of the ring; mu held. */
static void reap(loki *s)
{
    while (s->head < s->tail) {
        job *j = &s->ring[s->head % LOKI_JOBS];
        if (!j->acked) break;
        free(j->b);
        free(j->skip);
        j->b = NULL;
        j->skip = NULL;
        s->head++;
    }
}

/* True when no queued job has a part still being sent; mu held. */
static bool ring_idle(const loki *s)
{
    for (uint64_t k = s->head; k < s->tail; k++)
        if (s->ring[k % LOKI_JOBS].left) return false;
    return true;
}

/* With several workers, after a part failed: once every queued job is
 * finished or skipped, gives back what was not delivered (what is pending,
 * then the jobs, newest first, so the buffer keeps the order) and waits the
 * backoff holding nothing, as one worker does. The parts of a job given
 * back that were delivered are remembered with its batches and skipped
 * when they come back: sent again, they would reach Loki after newer
 * entries of their streams (each worker delivers its parts in order, so
 * what it delivered of the jobs given back is older than anything it
 * sends next). Returns at once when nothing failed; when stopping,
 * finish() gives back instead. */
static void settle(loki *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->retrying) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    while (!ring_idle(s) && !stopping(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    if (!ring_idle(s)) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    job back[LOKI_JOBS];
    uint32_t nback = 0;
    for (uint64_t k = s->tail; k-- > s->head;) back[nback++] = s->ring[k % LOKI_JOBS];
    s->head = s->tail;
    int64_t until = s->retry_until_ns;
    s->retrying = false;
    s->retry_until_ns = 0;
    pthread_mutex_unlock(&s->mu);
    give_back(s, s->pend, s->npend);
    s->npend = 0;
    s->pend_bytes = 0;
    for (uint32_t i = nback; i-- > 0;) /* oldest first: recalled in that order */
        for (uint32_t k = 0; !back[i].acked && k < back[i].n; k++) {
            uint64_t sent = back[i].sent | (back[i].skip ? back[i].skip[k] : 0);
            if (sent) remember_given(s, back[i].b[k], sent);
        }
    for (uint32_t i = 0; i < nback; i++) {
        if (!back[i].acked) give_back(s, back[i].b, back[i].n);
        free(back[i].b);
        free(back[i].skip);
    }
    {
        FILE *f = fopen("/tmp/h13_dbg.log", "a");
        if (f) {
            fprintf(f, "giveback nback=%u ngiven=%u\n", nback, s->ngiven);
            fclose(f);
        }
    }
    s->resend = true;
    /* Each backoff counts from its worker's failure, not from when the
     * last part finished. */
    int64_t left = (until - sl_monotonic_ns()) / 1000000;
    if (left > 0) nap(s, left);
}

/* Sends everything pending; acks on delivery, releases without ack on
 * shutdown. */
static void flush(loki *s)
{
    if (!s->npend) return;
    if (s->nw == 1) {
        int rc = send_batches(&s->w[0], s->pend, NULL, s->npend);
        if (rc == SENT)
            for (uint32_t i = 0; i < s->npend; i++) sl_batch_done(s->pend[i]);
        else
            give_back(s, s->pend, s->npend);
        s->npend = 0;
        s->pend_bytes = 0;
        /* Failed: the batches wait in the buffer, not here, so memory that
         * fills up moves them to the spool and the input's checkpoint
         * moves on; they are popped again after the backoff. */
        if (rc == RETRY) {
            s->resend = true;
            nap(s, s->w[0].wait_ms);
        }
        return;
    }
    /* Concurrency: one job, split by stream over the workers, so each
     * stream's entries leave in order while N requests are in flight. */
    settle(s);
    if (!s->npend) return; /* given back */
    sl_batch **b = malloc(s->npend * sizeof *b);
    while (!b && !stopping(s)) {
        nap(s, 100);
        b = malloc(s->npend * sizeof *b);
    }
    if (!b) return; /* stopping: pend is given back by loki_run */
    memcpy(b, s->pend, s->npend * sizeof *b);
    uint64_t *skip = NULL;
    if (s->ngiven) { /* batches given back: which parts were delivered */
        skip = calloc(s->npend, sizeof *skip);
        while (!skip && !stopping(s)) {
            nap(s, 100);
            skip = calloc(s->npend, sizeof *skip);
        }
        if (!skip) {
            free(b);
            return;
        }
        bool any = false;
        for (uint32_t i = 0; i < s->npend; i++) any |= (skip[i] = recall_given(s, b[i])) != 0;
        if (!any) {
            free(skip);
            skip = NULL;
        }
    }
    pthread_mutex_lock(&s->mu);
    reap(s);
    while (s->tail - s->head == LOKI_JOBS && !stopping(s) && !s->retrying) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        reap(s);
    }
    if (s->tail - s->head == LOKI_JOBS) {
        pthread_mutex_unlock(&s->mu);
        /* What was recalled goes back with pend (its parts stay skipped). */
        for (uint32_t i = 0; skip && i < s->npend; i++)
            if (skip[i]) remember_given(s, b[i], skip[i]);
        free(b);
        free(skip);
        settle(s); /* a part failed (or stopping: pend is given back by loki_run) */
        return;
    }
    s->ring[s->tail % LOKI_JOBS] =
        (job){.b = b, .skip = skip, .n = s->npend, .left = s->nw, .sent = 0};
    s->tail++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->npend = 0;
    s->pend_bytes = 0;
    /* A worker whose thread could not start is served here. */
    for (uint32_t i = 0; i < s->nw; i++)
        while (!s->w[i].started && work_one(&s->w[i], false)) {
        }
}

/* Stops the workers once every job is sent (or abandoned at shutdown) and
 * gives back what was not delivered, newest first. */
static void finish(loki *s)
{
    if (s->nw > 1) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (uint32_t i = 0; i < s->nw; i++) {
            if (s->w[i].started)
                pthread_join(s->w[i].thr, NULL);
            else
                while (work_one(&s->w[i], false)) {
                }
            s->w[i].started = false;
        }
    }
    give_back(s, s->pend, s->npend);
    s->npend = 0;
    for (uint64_t k = s->tail; k-- > s->head;) {
        job *j = &s->ring[k % LOKI_JOBS];
        if (!j->acked) give_back(s, j->b, j->n);
        free(j->b);
        free(j->skip);
        j->b = NULL;
        j->skip = NULL;
    }
    s->head = s->tail;
}

static int loki_run(void *state)
{
    loki *s = state;
    for (uint32_t i = 0; s->nw > 1 && i < s->nw; i++) {
        s->w[i].started = pthread_create(&s->w[i].thr, NULL, worker_main, &s->w[i]) == 0;
        if (!s->w[i].started)
            sl_log(SL_LOG_WARN, "sink_worker_failed",
                   "sink=%s worker=%u error=\"cannot start a thread; its requests are sent by "
                   "the sink's thread\"",
                   s->ctx->name, i);
    }
    for (;;) {
        if (stopping(s)) break;
        if (s->nw > 1) settle(s); /* a part failed: give back, wait */
        int64_t timeout = 200;
        if (s->npend && s->resend) {
            timeout = 0; /* take what is queued, then flush */
        } else if (s->npend) {
            int64_t left =
                (s->pend_since_ns + s->max_wait_ms * 1000000 - sl_monotonic_ns()) / 1000000;
            if (left <= 0) {
                flush(s);
                continue;
            }
            if (left < timeout) timeout = left;
        }
        sl_batch *b;
        int rc = sl_buffer_pop(s->ctx->buffer, &b, timeout);
        if (rc == SL_ECLOSED) {
            /* Draining at shutdown: a failed flush gave its batches back,
             * so they are popped and tried again until delivered or told
             * to stop. */
            if (!s->npend) break;
            flush(s);
            continue;
        }
        if (rc != SL_OK) {
            if (s->resend && s->npend) {
                s->resend = false;
                flush(s);
            }
            continue;
        }
        if (s->npend && s->pend_bytes + b->bytes > s->max_batch_bytes) flush(s);
        while (s->npend == s->cappend) {
            uint32_t nc = s->cappend ? s->cappend * 2 : 64;
            sl_batch **p = realloc(s->pend, nc * sizeof *p);
            if (p) {
                s->pend = p;
                s->cappend = nc;
            } else if (stopping(s)) {
                break;
            } else if (s->npend) {
                flush(s); /* send what we hold, then there is room */
            } else {
                nap(s, 100);
            }
        }
        if (s->npend == s->cappend) {
            sl_buffer_unpop(s->ctx->buffer, b); /* stopping: not delivered */
            break;
        }
        if (!s->npend) s->pend_since_ns = sl_monotonic_ns();
        s->pend[s->npend++] = b;
        s->pend_bytes += b->bytes;
        if (s->pend_bytes >= s->max_batch_bytes) flush(s);
    }
    /* Stopped: what was not delivered goes back to the buffer, which spools
     * it or releases it unacknowledged (read again after a restart). */
    finish(s);
    return SL_OK;
}

/* An empty push: Loki answers 204 without storing anything, so the push
 * path, the tenant and the credentials are checked without a record. */
static int loki_probe(const sl_sink_ctx *ctx, sl_err *result)
{
    void *state = NULL;
    int rc = loki_create(ctx, &state, result);
    if (rc != SL_OK) return rc;
    loki *s = state;
    static const char body[] = "{\"streams\":[]}";
    sl_http_result r;
    rc = sl_http_post(s->w[0].http, "application/json", NULL, body, sizeof body - 1, &r);
    if (rc != SL_OK)
        rc = sl_errf(result, SL_EIO, "POST %s: no answer: %s", s->url_log, r.error);
    else if (r.status >= 200 && r.status < 300)
        sl_errf(result, SL_OK, "POST %s: HTTP %ld (the push path accepts)", s->url_log, r.status);
    else
        rc = sl_errf(result, SL_EIO, "POST %s: HTTP %ld%s", s->url_log, r.status,
                     r.status == 404                      ? " (wrong path? Loki pushes to "
                                                            "/loki/api/v1/push)"
                     : r.status == 401 || r.status == 403 ? " (check auth and tenant)"
                                                          : "");
    loki_destroy(s);
    return rc;
}

const sl_sink_ops sl_loki_sink_ops = {.type = "loki",
                                      .create = loki_create,
                                      .run = loki_run,
                                      .destroy = loki_destroy,
                                      .probe = loki_probe,
                                      .check_inputs = sl_loki_check_labels,
                                      .keys = loki_keys,
                                      .nkeys = SL_CFG_NKEYS(loki_keys)};
