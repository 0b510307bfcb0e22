/* Sending a Loki request with the status policy of decision 0016: build
 * (encode, compress), post, and on the answer deliver, retry later, split
 * (413 or a 400 naming no entry) or count what Loki refused for good. Runs
 * on the sink's thread (concurrency 1) or on a worker's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shipper/loki_internal.h"

static void count_request(loki *s, const char *code)
{
    sl_sink_metrics_request(s->m, code);
}

static void count_drop(loki *s, const char *reason, uint64_t n)
{
    sl_sink_metrics_dropped(s->m, reason, n);
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
        /* Encoded and compressed 64 KiB at a time (decision 0062). */
        if (s->compression != COMP_NONE) return sl_loki_req_snappy(w->req, &w->raw, &w->body, err);
        int rc = sl_loki_req_protobuf(w->req, &w->raw, err);
        if (rc) return rc;
        return sl_loki_snappy_stored(w->raw.p, w->raw.len, &w->body, err);
    }
    int rc = sl_loki_req_json(w->req, &w->raw, err);
    if (rc) return rc;
    if (s->compression == COMP_GZIP) return sl_loki_gzip(w->raw.p, w->raw.len, &w->body, err);
    sl_buf_reset(&w->body);
    return sl_buf_append(&w->body, w->raw.p, w->raw.len);
}

/* Which permanent rejection Loki reported, and for how many entries: for
 * each stream, its "total ignored: N out of M" line (Loki lists at most 10
 * of a stream's entries before it), else one per line naming a reason of
 * one entry. *per_entry is false when the body names no entry (a request
 * refused as a whole: it did not decode, or a stream's labels did not
 * parse): then nothing is known to be stored, and the request is split
 * until the refused records are alone. A body cut at the read limit
 * (truncated) loses its last line, which is not taken for an unknown
 * reason, and the streams after the cut, so the count is then a lower
 * bound. */
const char *sl_loki_classify_400(const char *body, bool truncated, uint64_t entries,
                                 uint64_t *dropped, bool *per_entry)
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
    uint64_t total = 0, lines = 0; /* lines: since the last total */
    bool whole = false, any_total = false;
    for (const char *line = body; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol && truncated) break; /* cut at the read limit */
        size_t ln = eol ? (size_t)(eol - line) : strlen(line);
        const char *ti = memmem(line, ln, "total ignored: ", 15);
        if (ti) {
            /* Saturating: a hostile body's totals must not wrap round to
             * a small count, the refused records counted as delivered. */
            uint64_t t = strtoull(ti + 15, NULL, 10);
            total = total > UINT64_MAX - t ? UINT64_MAX : total + t;
            any_total = true;
            lines = 0;
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
    *per_entry = any_total || (lines && !whole);
    uint64_t n = !*per_entry ? entries : total > UINT64_MAX - lines ? UINT64_MAX : total + lines;
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
    sl_sink_metrics_delivered(s->m, records, bytes);
    sl_metric_add(s->m_invalid, sl_loki_req_invalid_utf8(w->req));
    account(w);
    sl_retry_success(&w->retry);
    pthread_mutex_lock(&s->mu);
    if (s->failing) {
        sl_log(SL_LOG_INFO, "sink_recovered", "sink=%s failed_attempts=%u", s->ctx->name,
               s->fail_streak);
        s->failing = false;
        sl_sink_metrics_set_failing(s->m, false);
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
    sl_sink_metrics_retried(s->m);
    pthread_mutex_lock(&s->mu);
    s->fail_streak++;
    if (!s->failing) {
        s->failing = true;
        sl_sink_metrics_set_failing(s->m, true);
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
        loki_nap(w->s, delay);
        return -1;
    }
    w->wait_ms = delay;
    return RETRY;
}

static int send_part(worker *w, const span *sp, uint32_t nsp, const char *tenant);

/* 413, or a 400 that names no entry: halves the request by records and
 * sends each half (of the same tenant). SL_ENOMEM when out of memory. */
static int split(worker *w, const span *sp, uint32_t nsp, uint64_t total, const char *tenant)
{
    uint64_t half = total / 2, acc = 0;
    span *l = malloc(nsp * sizeof *l), *r = malloc(nsp * sizeof *r);
    if (!l || !r) {
        free(l);
        free(r);
        return SL_ENOMEM;
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
        if (loki_stopping(s)) return ABORTED;
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
        loki_nap(s, d);
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
    if (w->built) { /* built ahead by the sink's thread (concurrency 1) */
        w->built = false;
    } else {
        sl_loki_req_set_tenant(w->req, tenant, tenant ? strlen(tenant) : 0);
        if (build_retry(w, sp, nsp)) return ABORTED;
    }
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
        if (loki_stopping(s)) return ABORTED;
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
            sl_loki_congested(s); /* refused, reset, timed out: fewer in flight */
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
            if (!config_status(r.status)) sl_loki_congested(s); /* 429, 5xx, 408, 425 */
            int64_t d = sl_retry_next(&w->retry, r.retry_after_ms);
            failed(s, &r, "send", d);
            int rl = retry_later(w, d, &tries);
            if (rl >= 0) return rl;
            continue;
        }
        uint64_t dropped = entries;
        bool per_entry = false;
        const char *reason = "too_large";
        if (r.status != 413)
            reason = sl_loki_classify_400(r.body, r.body_truncated, entries, &dropped, &per_entry);
        if (!per_entry && total > 1) {
            /* Refused as a whole: nothing is stored, so halves are sent
             * until the refused records are alone. */
            sl_log(SL_LOG_INFO, "sink_request_split", "sink=%s status=%ld records=%llu bytes=%zu",
                   s->ctx->name, r.status, (unsigned long long)total, w->body.len);
            int sr = split(w, sp, nsp, total, tenant);
            if (sr >= 0) return sr;
            int64_t d = sl_retry_next(&w->retry, -1);
            loki_nap(s, d);
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
    while (!ts && !loki_stopping(w->s)) {
        loki_nap(w->s, 100);
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
int sl_loki_send_batches(worker *w, sl_batch *const *b, const uint64_t *skip, uint32_t n)
{
    loki *s = w->s;
    span *sp = malloc(n * sizeof *sp);
    while (!sp && !loki_stopping(s)) {
        loki_nap(s, 100);
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

int sl_loki_prebuild(worker *w, sl_batch *const *b, uint32_t n, sl_err *err)
{
    span *sp = malloc(n * sizeof *sp);
    if (!sp) return sl_errf(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) sp[i] = (span){b[i], 0, b[i]->nrecords};
    sl_loki_req_set_tenant(w->req, NULL, 0);
    sl_loki_req_set_now(w->req, sl_now_ns());
    int rc = build(w, sp, n, err);
    free(sp);
    return rc;
}
