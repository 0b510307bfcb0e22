/* The Loki sink's configuration: the key tables, `create` (every key read,
 * checked and turned into the sink's state), `destroy`, and the `sluice
 * check --connect` probe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_auth.h"
#include "shipper/loki.h"
#include "shipper/loki_internal.h"

/* What sl_cfg_read fills from the tables below: each key's default is
 * written once, in its table. */
typedef struct limits_conf {
    uint64_t max_line_size;
    bool truncate, reject_old;
    const char *old_age, *grace; /* Loki's durations (`1w`), parsed by loki_duration */
    int64_t max_label_names, max_label_value_len, max_label_name_len;
} limits_conf;

typedef struct tls_conf {
    const char *ca, *cert, *key;
    bool insecure;
} tls_conf;

typedef struct loki_conf {
    const char *url, *tenant;
    const sl_cfg_node *auth, *tls, *labels, *meta, *limits;
    int encoding, compression, line_format, long_lines, out_of_window;
    int64_t timeout_ms, wait_ms, concurrency, min_backoff, max_backoff;
    int64_t max_in_flight;
    bool adaptive;
    uint64_t max_bytes;
} loki_conf;

/* The tables' choices are indexes into these enums. */
_Static_assert(ENC_PROTOBUF == 0 && ENC_JSON == 1, "encoding: protobuf|json");
_Static_assert(COMP_SNAPPY == 0 && COMP_GZIP == 1 && COMP_NONE == 2, "snappy|gzip|none");
_Static_assert(SL_LOKI_LINE_RAW == 0 && SL_LOKI_LINE_JSON == 1, "line_format: raw|json");
_Static_assert(SL_LOKI_LONG_SPLIT == 0 && SL_LOKI_LONG_TRUNCATE == 1, "long_lines");
_Static_assert(SL_LOKI_WINDOW_CLAMP == 0 && SL_LOKI_WINDOW_DROP == 1, "out_of_window");

/* The sub-maps' tables, defined below; declared here so `sluice keys` and
 * the README list their keys under the parent (`limits.max_line_size`).
 * A key added below needs its count raised here (the compiler refuses the
 * excess), a key removed needs it lowered. */
static const sl_cfg_key limits_keys[8], tls_keys[4];

const sl_cfg_key sl_loki_keys[SL_LOKI_NKEYS] = {
    SL_SINK_COMMON_KEYS,
    {.name = "url",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(loki_conf, url),
     .required = true,
     .doc = "`http(s)://host:3100/loki/api/v1/push`"},
    {.name = "tenant",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(loki_conf, tenant),
     .doc = "`X-Scope-OrgID`: a tenant, or a template per record like the Kafka topic's "
            "(`${labels.team:-ops}`, `${fields.NAME:-x}`, `${input}`, `${source}`)"},
    {.name = "auth",
     .type = SL_KEY_MAP,
     .at = SL_CFG_AT(loki_conf, auth),
     .sub = sl_http_auth_keys, /* net/http_auth.h, shared with loki_push */
     .nsub = SL_HTTP_AUTH_NKEYS,
     .doc = "`{username, password | password_file}` or `{bearer_token | bearer_token_file}`"},
    {.name = "tls",
     .type = SL_KEY_MAP,
     .at = SL_CFG_AT(loki_conf, tls),
     .sub = tls_keys,
     .nsub = SL_CFG_NKEYS(tls_keys),
     .doc = "`{ca_file, cert_file, key_file, insecure_skip_verify}`"},
    {.name = "encoding",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(loki_conf, encoding),
     .choices = "protobuf|json",
     .def = "protobuf",
     .doc = "`protobuf` (snappy) or `json`"},
    {.name = "compression",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(loki_conf, compression),
     .choices = "snappy|gzip|none",
     .doc = "`snappy`, `gzip`, `none`; snappy for protobuf and gzip for json when absent; `none` "
            "with protobuf: snappy's stored form, no compression CPU here or at Loki, ~2.6x the "
            "bytes on the wire"},
    {.name = "labels",
     .type = SL_KEY_MAP,
     .at = SL_CFG_AT(loki_conf, labels),
     .doc = "static labels; fields marked by the `labels` step are added"},
    {.name = "structured_metadata",
     .type = SL_KEY_LIST,
     .at = SL_CFG_AT(loki_conf, meta),
     .doc = "fields sent as structured metadata"},
    {.name = "line_format",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(loki_conf, line_format),
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` line or the record as `json`"},
    {.name = "timeout",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(loki_conf, timeout_ms),
     .def = "10s",
     .doc = "one push request"},
    {.name = "max_batch_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(loki_conf, max_bytes),
     .def = "1MiB",
     .doc = "request size"},
    {.name = "max_batch_wait",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(loki_conf, wait_ms),
     .def = "1s",
     .doc = "request latency: a batch is sent at the latest after this long"},
    {.name = "concurrency",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(loki_conf, concurrency),
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "requests in flight at once, each from its own worker; streams are split between "
            "workers so each stream stays in order"},
    {.name = "max_in_flight",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(loki_conf, max_in_flight),
     .def = "1",
     .min = 1,
     .max = LOKI_RING,
     .doc = "whole requests in flight at once (for a distant Loki: throughput grows with them "
            "when each push waits on latency); they may arrive out of order, which Loki accepts "
            "with `unordered_writes` (its default since 2.4); not with `concurrency` > 1"},
    {.name = "adaptive_in_flight",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(loki_conf, adaptive),
     .def = "true",
     .doc = "with `max_in_flight` > 1: start at 1 request in flight, raise it while Loki holds "
            "the sink back and it pays, halve on 429/5xx/timeouts (gauge "
            "`sluice_sink_concurrency`); false: always `max_in_flight`"},
    {.name = "min_backoff",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(loki_conf, min_backoff),
     .def = "500ms",
     .doc = "first retry delay; retries are unbounded, back off with jitter and honour Retry-After "
            "(see the status policy)"},
    {.name = "max_backoff",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(loki_conf, max_backoff),
     .def = "1m",
     .doc = "longest retry delay"},
    {.name = "limits",
     .type = SL_KEY_MAP,
     .at = SL_CFG_AT(loki_conf, limits),
     .sub = limits_keys,
     .nsub = SL_CFG_NKEYS(limits_keys),
     .doc = "what your Loki accepts, named as in its `limits_config` (copy them from there); "
            "Loki's defaults when absent (see What Loki accepts)"},
    {.name = "long_lines",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(loki_conf, long_lines),
     .choices = "split|truncate",
     .def = "split",
     .doc = "a line over `limits.max_line_size`: `split` into several entries (same time, in "
            "order) or `truncate`"},
    {.name = "out_of_window",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(loki_conf, out_of_window),
     .choices = "clamp|drop",
     .def = "clamp",
     .doc = "a time outside Loki's window: `clamp` (sent at the nearest accepted time, the "
            "original in structured metadata `original_ts`) or `drop` (counted)"},
};

/* Named as in Loki's limits_config, so they can be copied from it. */
static const sl_cfg_key limits_keys[8] = {
    {.name = "max_line_size",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(limits_conf, max_line_size),
     .def = "256kB",
     .doc = "longest line Loki accepts"},
    {.name = "max_line_size_truncate",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(limits_conf, truncate),
     .def = "false",
     .doc = "Loki truncates long lines instead of refusing them (sluice then cuts them too)"},
    {.name = "reject_old_samples",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(limits_conf, reject_old),
     .def = "true",
     .doc = "Loki refuses entries older than `reject_old_samples_max_age`"},
    {.name = "reject_old_samples_max_age",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(limits_conf, old_age),
     .def = "1w",
     .doc = "oldest entry Loki accepts (Loki's `1w` or sluice's `168h`)"},
    {.name = "creation_grace_period",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(limits_conf, grace),
     .def = "10m",
     .doc = "how far in the future an entry may be"},
    {.name = "max_label_names_per_series",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(limits_conf, max_label_names),
     .def = "15",
     .min = 1,
     .max = 1000,
     .doc = "labels per stream"},
    {.name = "max_label_value_length",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(limits_conf, max_label_value_len),
     .def = "2048",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "longest label value"},
    {.name = "max_label_name_length",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(limits_conf, max_label_name_len),
     .def = "1024",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "longest label name"},
};

static const sl_cfg_key tls_keys[4] = {
    {.name = "ca_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(tls_conf, ca),
     .doc = "PEM CA to verify Loki"},
    {.name = "cert_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(tls_conf, cert),
     .doc = "PEM client certificate (with `key_file`)"},
    {.name = "key_file",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(tls_conf, key),
     .doc = "PEM client key"},
    {.name = "insecure_skip_verify",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(tls_conf, insecure),
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
static bool parse_loki_duration(const char *v, int64_t *out_ms)
{
    size_t n = strlen(v);
    char *end;
    long long w = n > 1 && v[n - 1] == 'w' ? strtoll(v, &end, 10) : -1;
    if (w >= 0 && w <= 5200 && end == v + n - 1) {
        *out_ms = w * 7 * 86400000LL;
        return true;
    }
    return sl_parse_duration_ms(v, out_ms) == 0 && *out_ms >= 0;
}

/* limits.NAME, a Loki duration read as text by sl_cfg_read: a value that
 * does not parse is an error and leaves the table's default. */
static int64_t loki_duration(sl_cfg *cfg, const sl_cfg_node *m, const char *name, const char *v)
{
    int64_t ms = 0;
    if (parse_loki_duration(v, &ms)) return ms;
    sl_cfg_error(cfg, sl_cfg_get(m, name), "%s: '%s' is not a duration (e.g. 1w, 168h, 10m)", name,
                 v);
    for (size_t i = 0; i < NKEYS(limits_keys); i++)
        if (strcmp(limits_keys[i].name, name) == 0) parse_loki_duration(limits_keys[i].def, &ms);
    return ms;
}

/* The limits from the sink's config, the table's (Loki's) defaults for
 * what is unset. */
static void read_limits(sl_cfg *cfg, const loki_conf *c, sl_loki_limits *l)
{
    limits_conf lc;
    sl_cfg_read(cfg, c->limits, limits_keys, NKEYS(limits_keys), &lc);
    int64_t old_ms = loki_duration(cfg, c->limits, "reject_old_samples_max_age", lc.old_age);
    int64_t grace_ms = loki_duration(cfg, c->limits, "creation_grace_period", lc.grace);
    *l = (sl_loki_limits){
        .max_line_size = lc.max_line_size,
        /* Loki itself truncates then, so sluice sends what Loki would keep. */
        .long_lines = lc.truncate ? SL_LOKI_LONG_TRUNCATE : c->long_lines,
        .reject_old_ns = lc.reject_old ? old_ms * 1000000 : 0,
        .grace_ns = grace_ms * 1000000,
        .out_of_window = c->out_of_window,
        .max_label_names = (uint32_t)lc.max_label_names,
        .max_label_value_len = (uint32_t)lc.max_label_value_len,
        .max_label_name_len = (uint32_t)lc.max_label_name_len,
    };
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

int sl_loki_sink_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    loki_conf c;
    sl_http_auth ac;
    tls_conf tc;
    sl_cfg_read(cfg, n, sl_loki_keys, SL_LOKI_NKEYS, &c);
    sl_http_auth_read(cfg, c.auth, SL_HTTP_AUTH_CLIENT, &ac); /* its errors, "auth: ..." */
    sl_cfg_read(cfg, c.tls, tls_keys, NKEYS(tls_keys), &tc);
    const sl_cfg_node *tls = c.tls, *lab = c.labels;
    const char *url = c.url, *tenant = c.tenant, *user = ac.user;
    const char *cert = tc.cert, *key = tc.key;
    int encoding = c.encoding, compression = c.compression;
    int64_t min_backoff = c.min_backoff, max_backoff = c.max_backoff;

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
    read_limits(cfg, &c, &limits);
    if (compression < 0) compression = encoding == ENC_PROTOBUF ? COMP_SNAPPY : COMP_GZIP;
    if (encoding == ENC_PROTOBUF && compression == COMP_GZIP)
        sl_cfg_error(cfg, sl_cfg_get(n, "compression"),
                     "protobuf requests are in snappy's format (Loki expects it): snappy, or "
                     "none (stored, uncompressed); use encoding: json for gzip");
    if (encoding == ENC_JSON && compression == COMP_SNAPPY)
        sl_cfg_error(cfg, sl_cfg_get(n, "compression"), "json requests use gzip or none");
    if (c.max_bytes < 1024)
        sl_cfg_error(cfg, sl_cfg_get(n, "max_batch_bytes"), "max_batch_bytes must be >= 1KiB");
    if (min_backoff < 1) min_backoff = 1;
    if (max_backoff < min_backoff)
        sl_cfg_error(cfg, sl_cfg_get(n, "max_backoff"), "max_backoff must be >= min_backoff");
    if (c.max_in_flight > 1 && c.concurrency > 1)
        sl_cfg_error(cfg, sl_cfg_get(n, "max_in_flight"),
                     "max_in_flight (whole requests, any order) and concurrency (streams split, "
                     "each in order) do not go together: choose one");
    if ((cert == NULL) != (key == NULL))
        sl_cfg_error(cfg, tls, "tls: cert_file and key_file go together");

    char *password = ac.password, *token = ac.bearer_token; /* freed below */

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
    s->max_wait_ms = c.wait_ms;
    s->max_batch_bytes = c.max_bytes;
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
    s->eopts.line_format = c.line_format;
    s->eopts.labels = s->labels;
    s->eopts.meta_fields = s->meta;
    if (pthread_mutex_init(&s->mu, NULL) == 0) {
        if (pthread_cond_init(&s->cv, NULL) == 0)
            s->sync_ok = true;
        else
            pthread_mutex_destroy(&s->mu);
    }
    /* max_in_flight > 1: that many workers, each sending whole requests. */
    s->whole = c.max_in_flight > 1;
    uint32_t nworkers = (uint32_t)(s->whole ? c.max_in_flight : c.concurrency);
    s->adaptive = s->whole && c.adaptive;
    s->limit = s->adaptive ? 1 : nworkers;
    s->w = calloc(nworkers, sizeof *s->w);
    nomem = nomem || !s->w || !s->sync_ok;
    for (uint32_t i = 0; s->w && i < nworkers; i++) {
        worker *w = &s->w[s->nw++];
        w->s = s;
        w->id = i;
        sl_buf_init(&w->raw, 0);
        sl_buf_init(&w->body, 0);
        w->req = sl_loki_req_new(&s->eopts);
        if (!w->req)
            nomem = true;
        else if (!s->whole)
            sl_loki_req_set_part(w->req, i, nworkers);
    }
    s->njobs = s->whole ? nworkers : s->nw == 1 ? 1 : LOKI_JOBS;
    sl_buf_init(&s->pre_raw, 0);
    for (uint32_t i = 0; s->nw == 1 && i < 2; i++) {
        sl_buf_init(&s->pre[i].body, 0);
        s->pre[i].req = sl_loki_req_new(&s->eopts);
        nomem = nomem || !s->pre[i].req;
    }
    if (nomem) {
        free(password);
        free(token);
        sl_loki_sink_destroy(s);
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
        .timeout_ms = c.timeout_ms,
        .connect_timeout_ms = c.timeout_ms < 5000 ? c.timeout_ms : 5000,
        .ca_file = tc.ca,
        .cert_file = cert,
        .key_file = key,
        .insecure_skip_verify = tc.insecure,
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
    s->min_backoff_ms = min_backoff;
    s->max_backoff_ms = max_backoff;
    if (rc == 0) rc = sl_loki_batcher_new(s, err);
    if (rc) {
        sl_loki_sink_destroy(s);
        return rc;
    }
    /* Seeded from the clock and the sink: agents restarted together must not
     * retry in lockstep. */
    for (uint32_t i = 0; i < s->nw; i++)
        sl_retry_init(&s->w[i].retry, min_backoff, max_backoff,
                      (uint64_t)sl_monotonic_ns() ^ (uint64_t)(uintptr_t)&s->w[i]);

    s->m = sl_sink_metrics_of(ctx, SL_SINK_M_RETRIES | SL_SINK_M_LAST_SUCCESS | SL_SINK_M_FAILING,
                              &s->own_m);
    s->m_invalid =
        sl_counter("sluice_sink_invalid_utf8_total",
                   "Records whose text had invalid UTF-8 replaced with U+FFFD.", s->m->labels);
    s->m_status = sl_gauge("sluice_sink_last_status",
                           "HTTP status of the sink's last answer (0: none or a transport error).",
                           s->m->labels);
    s->m_limit = sl_gauge("sluice_sink_concurrency",
                          "Requests the sink lets be in flight at once now (max_in_flight, or "
                          "between 1 and it when adaptive).",
                          s->m->labels);
    sl_metric_set(s->m_limit, s->whole ? s->limit : s->nw);
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
    sl_log(SL_LOG_INFO, "sink_started",
           "sink=%s type=loki url=%s encoding=%s concurrency=%u max_in_flight=%u adaptive=%s",
           ctx->name, s->url_log, encoding == ENC_PROTOBUF ? "protobuf" : "json",
           s->whole ? 1 : s->nw, s->whole ? s->nw : 1, s->adaptive ? "true" : "false");
    *state = s;
    return SL_OK;
}

void sl_loki_sink_destroy(void *state)
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
    for (uint32_t i = 0; i < 2; i++) {
        sl_loki_req_free(s->pre[i].req);
        sl_buf_free(&s->pre[i].body);
    }
    sl_buf_free(&s->pre_raw);
    if (s->sync_ok) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    for (size_t i = 0; i < s->nstrings; i++) free(s->strings[i]);
    sl_loki_tpl_free(s->tenant_tpl);
    sl_batcher_free(s->batcher);
    free(s->given);
    free(s->url_log);
    free(s);
}
