/* `sluice check` for Loki sinks: label names that look high-cardinality
 * and configured names Loki's rules would change (see loki.h); and
 * `sluice check --connect`, the empty push that asks Loki whether it would
 * accept (decision 0085). */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/redact.h"
#include "shipper/loki.h"
#include "shipper/loki_internal.h"
#include "shipper/loki_limits.h"

/* ---- sluice check: label cardinality ---- */

/* True when a field or label name looks like it holds a value per request,
 * user, connection or moment. Judged on the name's last word (snake_case,
 * kebab-case, dotted or camelCase), so `request_id`, `traceId`, `client.ip`
 * and `http_path` match while `level` or `valid` do not. */
static bool high_cardinality_name(const char *name)
{
    static const char *const last_words[] = {
        "id",   "ids",    "uuid",    "guid",      "ip",   "addr",  "address", "path",
        "url",  "uri",    "ts",      "timestamp", "time", "email", "session", "sessionid",
        "pid",  "nonce",  "token",   "port",      "span", "trace", "query",   "datetime",
        "date", "offset", "latency", "duration",  "bytes"};
    static const char *const whole[] = {"remote", "host_ip", "x_forwarded_for", "user_agent"};
    char low[128];
    size_t n = 0, word = 0;
    for (const char *p = name; *p && n + 1 < sizeof low; p++) {
        unsigned char c = (unsigned char)*p;
        bool upper = c >= 'A' && c <= 'Z';
        if (c == '_' || c == '-' || c == '.' || c == '/' || c == ' ') {
            low[n++] = '_';
            word = n;
            continue;
        }
        /* camelCase: a capital after a lower-case letter starts a word. */
        if (upper && n > 0 && low[n - 1] >= 'a' && low[n - 1] <= 'z') {
            low[n++] = '_';
            word = n;
            if (n + 1 >= sizeof low) break;
        }
        low[n++] = (char)(upper ? c + 32 : c);
    }
    low[n] = '\0';
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++)
        if (strcmp(low, whole[i]) == 0) return true;
    const char *last = low + word;
    for (size_t i = 0; i < sizeof last_words / sizeof *last_words; i++)
        if (strcmp(last, last_words[i]) == 0) return true;
    return false;
}

static void warn_label(const sl_cfg_node *at, const char *sink, const char *label,
                       const char *field, const char *where)
{
    fprintf(stderr,
            "%s:%d:%d: warning: sink %s: Loki label '%s' comes from %s '%s', which looks "
            "high-cardinality; every distinct value makes a new Loki stream (send it as "
            "structured_metadata or leave it in the line instead)\n",
            at && at->file ? at->file : "?", at ? at->line : 0, at ? at->col : 0, sink, label,
            where, field);
}

static bool sink_takes_input(sl_cfg *cfg, const sl_cfg_node *sink, const char *input)
{
    const sl_cfg_node *list = sl_cfg_get(sink, "inputs");
    if (!list) return true; /* default: every input */
    (void)cfg;
    if (list->kind != SL_CFG_SEQ) return false;
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i]->kind == SL_CFG_SCALAR && strcmp(list->items[i]->scalar, input) == 0)
            return true;
    return false;
}

/* Says (once per configured name) when Loki's name rules change a name:
 * the stream or metadata then carries the normalised one. */
static int warn_renamed(const sl_cfg_node *at, const char *sink, const char *what, const char *name)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    int changed = sl_loki_name_normalize(name, strlen(name), 1024, &b);
    if (changed > 0)
        fprintf(stderr,
                "%s:%d:%d: warning: sink %s: %s '%s' is sent as '%.*s' (Loki names use only "
                "[A-Za-z0-9_] and do not start with a digit)\n",
                at && at->file ? at->file : "?", at ? at->line : 0, at ? at->col : 0, sink, what,
                name, (int)b.len, b.p ? b.p : "");
    sl_buf_free(&b);
    return changed > 0;
}

int sl_loki_check_labels(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs)
{
    int warnings = 0;
    const char *name = "?";
    const sl_cfg_node *nn = sl_cfg_get(sink, "name");
    if (nn && nn->kind == SL_CFG_SCALAR) name = nn->scalar;
    const sl_cfg_node *lab = sl_cfg_get(sink, "labels");
    const sl_cfg_node *meta = sl_cfg_get(sink, "structured_metadata");
    for (size_t i = 0; meta && meta->kind == SL_CFG_SEQ && i < meta->n; i++)
        if (meta->items[i]->kind == SL_CFG_SCALAR)
            warnings += warn_renamed(meta->items[i], name, "structured-metadata name",
                                     meta->items[i]->scalar);
    if (meta && meta->kind == SL_CFG_SCALAR)
        warnings += warn_renamed(meta, name, "structured-metadata name", meta->scalar);
    for (size_t i = 0; lab && lab->kind == SL_CFG_MAP && i < lab->n; i++) {
        warnings += warn_renamed(lab->key_nodes[i], name, "label name", lab->keys[i]);
        const sl_cfg_node *v = lab->items[i];
        if (v->kind == SL_CFG_SCALAR &&
            !sl_loki_label_value_ok(v->scalar, strlen(v->scalar), 2048)) {
            fprintf(stderr,
                    "%s:%d:%d: warning: sink %s: label %s: value has characters Loki's label "
                    "parser refuses (control bytes, U+FFFD, invalid UTF-8) or is over 2048 "
                    "bytes; it is sent repaired\n",
                    v->file ? v->file : "?", v->line, v->col, name, lab->keys[i]);
            warnings++;
        }
    }
    for (size_t i = 0; lab && lab->kind == SL_CFG_MAP && i < lab->n; i++)
        if (high_cardinality_name(lab->keys[i])) {
            warn_label(lab->key_nodes[i], name, lab->keys[i], lab->keys[i],
                       "the sink's labels key");
            warnings++;
        }
    for (size_t i = 0; inputs && inputs->kind == SL_CFG_SEQ && i < inputs->n; i++) {
        const sl_cfg_node *in = inputs->items[i];
        const sl_cfg_node *in_name = sl_cfg_get(in, "name");
        if (!in_name || in_name->kind != SL_CFG_SCALAR ||
            !sink_takes_input(cfg, sink, in_name->scalar))
            continue;
        const sl_cfg_node *parse = sl_cfg_get(in, "parse");
        for (size_t k = 0; parse && parse->kind == SL_CFG_SEQ && k < parse->n; k++) {
            const sl_cfg_node *labels = sl_cfg_get(parse->items[k], "labels");
            if (!labels) continue;
            /* `labels: [field, ...]` or `labels: {label: field}` */
            for (size_t j = 0; j < labels->n; j++) {
                const sl_cfg_node *f = labels->items[j];
                if ((labels->kind != SL_CFG_SEQ && labels->kind != SL_CFG_MAP) ||
                    f->kind != SL_CFG_SCALAR)
                    continue;
                const char *label = labels->kind == SL_CFG_MAP ? labels->keys[j] : f->scalar;
                warnings += warn_renamed(labels->kind == SL_CFG_MAP ? labels->key_nodes[j] : f,
                                         name, "label name", label);
                if (high_cardinality_name(f->scalar) || high_cardinality_name(label)) {
                    warn_label(f, name, label, f->scalar, "field");
                    warnings++;
                }
            }
        }
    }
    return warnings;
}

/* ---- sluice check --connect ---- */

/* What an HTTP status says to the operator, first word of the report. */
static const char *status_kind(long status)
{
    if (status == 401 || status == 403) return "auth";
    if (status == 404) return "path";
    if (status == 429) return "limited";
    if (status >= 500) return "server";
    return "HTTP";
}

/* host:port of a url (the scheme's port when none is written), for a
 * failure that happened before any address was tried (a refused connect
 * leaves libcurl none to report). */
static void url_address(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    const char *rb = memchr(host, ']', n);
    const char *from = rb ? rb : host;
    bool port = memchr(from, ':', n - (size_t)(from - host)) != NULL;
    bool tls = scheme && scheme - url == 5 && strncmp(url, "https", 5) == 0;
    snprintf(out, cap, port ? "%.*s" : "%.*s:%s", (int)n, host, tls ? "443" : "80");
}

/* An empty push: Loki answers 204 without storing anything, so the push
 * path, the tenant and the credentials are checked without a record. A
 * failure names what failed first (DNS, refused, unreachable, timeout,
 * TLS, closed; auth, path, server for an answer), then the url without
 * its credentials and the address tried, so one line from any of a
 * fleet's agents says where and why. */
int sl_loki_sink_probe(const sl_sink_ctx *ctx, sl_err *result)
{
    void *state = NULL;
    int rc = sl_loki_sink_create(ctx, &state, result);
    if (rc != SL_OK) return rc;
    loki *s = state;
    static const char body[] = "{\"streams\":[]}";
    sl_http_result r;
    char msg[sizeof result->msg], at[96] = "";
    rc = sl_http_post(s->w[0].http, "application/json", NULL, body, sizeof body - 1, &r);
    /* The address tried, or the url's when none was (a url's query may
     * hold a token, so a space, not ':', ends it for the redaction). */
    char addr[80];
    if (r.peer[0])
        snprintf(addr, sizeof addr, "%s", r.peer);
    else
        url_address(s->url_log, addr, sizeof addr);
    snprintf(at, sizeof at, " (%s)", addr);
    if (rc != SL_OK) {
        snprintf(msg, sizeof msg, "%s: POST %s%s: no answer after %.1f s: %s",
                 r.kind ? r.kind : "transport", s->url_log, at, r.seconds, r.error);
        rc = SL_EIO;
    } else if (r.status >= 200 && r.status < 300) {
        snprintf(msg, sizeof msg, "POST %s%s: HTTP %ld (the push path accepts)", s->url_log, at,
                 r.status);
    } else {
        /* Loki says why in its body ("no org id", "authentication
         * required"): the start of it, one line of printable bytes. */
        char said[121];
        size_t n = 0;
        for (size_t i = 0; i < r.body_len && n + 1 < sizeof said; i++) {
            unsigned char c = (unsigned char)r.body[i];
            said[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
        while (n && said[n - 1] == ' ') n--;
        said[n] = '\0';
        snprintf(msg, sizeof msg, "%s: POST %s%s: HTTP %ld%s%s%s", status_kind(r.status),
                 s->url_log, at, r.status,
                 r.status == 404                      ? " (wrong path? Loki pushes to "
                                                        "/loki/api/v1/push)"
                 : r.status == 401 || r.status == 403 ? " (check auth and tenant)"
                                                      : "",
                 n ? ": " : "", said);
        rc = SL_EIO;
    }
    /* The url's query may hold a token (url_log hides only user:password@). */
    char shown[sizeof result->msg];
    sl_redact_text(shown, sizeof shown, msg, strlen(msg));
    sl_errf(result, rc, "%s", shown);
    sl_loki_sink_destroy(s);
    return rc;
}
