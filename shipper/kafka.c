/* The Kafka sink in one file (~1,400 lines): templates, delivery-report
 * bookkeeping, retries and the producer's configuration all share the sink
 * state and librdkafka's callbacks, which run on the sink's thread; split,
 * they would need that state in a header. */
#include "shipper/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "shipper/buffer.h"
#include "shipper/recjson.h"

/* Kafka's own limit on topic names. */
#define TOPIC_MAX 249
/* Keys only decide the partition; a longer rendering is cut (deterministically). */
#define KEY_MAX              4096
#define HEADER_VALUE_MAX     4096
#define TPL_MAX_PARTS        32
#define MAX_LABELS           64
#define MAX_PROPS            96
#define TOPIC_SLOTS          64
#define MAX_DROP_REASONS     16
#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 5000
/* Keyless messages stay on one partition for this many messages, then move
 * to the next (docs/decisions/0018-kafka-keys-and-log-values.md): a batch's worth
 * for the broker, and a burst of 100,000 still touches every partition. */
#define SPREAD_RUN 1000

enum { VALUE_RAW, VALUE_JSON };
enum { TPL_LIT, TPL_LABEL, TPL_LABELS, TPL_FIELD, TPL_INPUT, TPL_SOURCE };

typedef struct tpl_part {
    int kind;
    const char *s; /* literal text or the label / field name */
    size_t n;
    const char *dflt; /* ${x:-default} */
    size_t dflt_n;
    bool has_dflt;
} tpl_part;

typedef struct tpl {
    char *text; /* owns what the parts point into */
    tpl_part parts[TPL_MAX_PARTS];
    int nparts;
    bool uses_fields; /* ${fields.x}: render per record */
    bool uses_labels; /* ${labels.x}, ${labels}: per record when it has label fields */
    bool uses_source; /* ${source}: one value per file of an input */
} tpl;

typedef struct prop {
    char *k, *v;
    bool secret;
} prop;

struct kafka;

/* One popped batch while its messages are in flight. */
typedef struct ktrack {
    struct kafka *s;
    sl_batch *b;
    char *owned;          /* JSON values the messages point into */
    uint32_t outstanding; /* messages without a final report, +1 while producing */
    bool aborted;         /* a message was given up (stop): release without ack */
    struct ktrack *prev, *next;
} ktrack;

/* A message whose delivery failed with a retriable error, to produce again. */
typedef struct kretry {
    ktrack *t;
    char topic[TOPIC_MAX + 1];
    char *key;
    size_t key_n;
    const void *val; /* in the batch's chunks or t->owned */
    size_t val_n;
    rd_kafka_headers_t *hdrs;
    int64_t ts_ms;
    struct kretry *next;
} kretry;

typedef struct topic_slot {
    char name[TOPIC_MAX + 1];
    rd_kafka_topic_t *rkt;
} topic_slot;

typedef struct kafka {
    const sl_sink_ctx *ctx;
    rd_kafka_t *rk;
    prop props[MAX_PROPS];
    int nprops;
    tpl topic, key;
    bool has_key;           /* `key:` set; without it messages have no key (spread_partition) */
    bool own_partitioner;   /* no `partitioner` in `librdkafka:`: spread_partition is used */
    atomic_uint spread_seq; /* keyless messages partitioned so far (any thread) */
    unsigned spread_start;  /* where this agent's rotation starts */
    bool headers;
    int value;
    topic_slot topics[TOPIC_SLOTS];

    ktrack *tracks; /* in-flight batches */
    size_t ntracks;
    kretry *retry_head, *retry_tail;
    size_t nretry;
    int64_t retry_at_ns;
    int backoff_ms;
    bool stopping; /* failed reports mean "given up", not "retry" */
    bool fatal;    /* librdkafka raised a fatal error: recreate the producer */

    char keybuf[KEY_MAX];
    char scratch[HEADER_VALUE_MAX];
    sl_buf json;
    size_t *offs;
    size_t cap_offs;

    sl_metric *records, *bytes, *errors, *retries, *failing, *last_success, *queue_full;
    struct {
        const char *reason;
        sl_metric *m;
    } drops[MAX_DROP_REASONS];
    int ndrops;
    sl_ratelimit rl_drop, rl_fail, rl_err, rl_log;
} kafka;

/* ---- configuration -------------------------------------------------- */

static const sl_cfg_key kafka_keys[] = {
    SL_SINK_COMMON_KEYS,
    {.name = "brokers",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "`host:port` list (no `user:password@`: use the `sasl_*` keys)"},
    {.name = "topic",
     .type = SL_KEY_STR,
     .required = true,
     .doc = "template: `logs-${labels.job}`, `${fields.x}`, `${input}`, `${source}`"},
    {.name = "key",
     .type = SL_KEY_STR,
     .doc = "template, e.g. `${labels}` (the stream's label set); no key when absent (see Keys and "
            "partitions)"},
    {.name = "value",
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` bytes as read, or the record as `json`"},
    {.name = "headers", .type = SL_KEY_BOOL, .def = "true", .doc = "labels as Kafka headers"},
    {.name = "compression",
     .type = SL_KEY_ENUM,
     .choices = "zstd|lz4|snappy|gzip|none",
     .def = "zstd",
     .doc = "`zstd`, `lz4`, `snappy`, `gzip`, `none`"},
    {.name = "compression_level",
     .type = SL_KEY_INT,
     .doc = "`-1` (codec default) to `12`; 1 for zstd and the codec's default otherwise when "
            "absent; higher costs CPU on every node"},
    {.name = "acks",
     .type = SL_KEY_ENUM,
     .choices = "all|1|0",
     .def = "all",
     .doc = "broker acknowledgements: `all`, `1`, `0`"},
    {.name = "idempotence",
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "the idempotent producer (needs `acks: all`)"},
    {.name = "linger_ms",
     .type = SL_KEY_INT,
     .def = "20",
     .doc = "producer batching: how long a message waits for others (0 to 900000)"},
    {.name = "batch_bytes",
     .type = SL_KEY_SIZE,
     .doc = "producer batching: largest batch (below 2GiB); librdkafka's default when absent"},
    {.name = "security_protocol",
     .type = SL_KEY_ENUM,
     .choices = "plaintext|ssl|sasl_plaintext|sasl_ssl",
     .doc = "`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`; when absent, `sasl_*` keys mean "
            "SASL and `tls_*` keys mean TLS"},
    {.name = "sasl_mechanism",
     .type = SL_KEY_ENUM,
     .choices = "plain|scram-sha-256|scram-sha-512",
     .def = "plain",
     .doc = "`plain`, `scram-sha-256`, `scram-sha-512`"},
    {.name = "sasl_username",
     .type = SL_KEY_STR,
     .doc = "SASL user (or `SLUICE_KAFKA_SASL_USERNAME`)"},
    {.name = "sasl_password",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "SASL password (or `SLUICE_KAFKA_SASL_PASSWORD`; prefer `sasl_password_file`)"},
    {.name = "sasl_password_file",
     .type = SL_KEY_STR,
     .doc = "file holding the SASL password (systemd credential, Kubernetes secret)"},
    {.name = "tls_ca_file", .type = SL_KEY_STR, .doc = "PEM CA to verify the brokers"},
    {.name = "tls_cert_file", .type = SL_KEY_STR, .doc = "PEM client certificate"},
    {.name = "tls_key_file", .type = SL_KEY_STR, .doc = "PEM client key"},
    {.name = "tls_key_password_file",
     .type = SL_KEY_STR,
     .doc = "file holding the password of an encrypted `tls_key_file` (or "
            "`SLUICE_KAFKA_TLS_KEY_PASSWORD`)"},
    {.name = "librdkafka",
     .type = SL_KEY_MAP,
     .doc = "any other librdkafka property; sluice sets `queue.buffering.max.kbytes: 4096` (bounds "
            "what is in flight) and, without a `partitioner` here, `sticky.partitioning.linger.ms: "
            "0` unless given here"},
};

/* Properties the sink relies on, or secrets that must not sit in a config. */
static const char *const forbidden_props[] = {
    "delivery.report.only.error",
    "log.queue",
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "enable.gapless.guarantee",
};

static bool is_secret_prop(const char *k)
{
    return strstr(k, "password") || strstr(k, "secret");
}

static void secure_free(char *p)
{
    if (!p) return;
    size_t n = strlen(p);
    volatile char *v = p;
    for (size_t i = 0; i < n; i++) v[i] = 0;
    free(p);
}

static int add_prop(kafka *s, const char *k, const char *v)
{
    if (s->nprops == MAX_PROPS) return SL_ENOMEM;
    /* A later setting of the same property replaces the earlier one. */
    prop *p = NULL;
    for (int i = 0; i < s->nprops; i++)
        if (strcmp(s->props[i].k, k) == 0) p = &s->props[i];
    char *nk = strdup(k), *nv = strdup(v);
    if (!nk || !nv) {
        free(nk);
        secure_free(nv);
        return SL_ENOMEM;
    }
    if (p) {
        free(p->k);
        secure_free(p->v);
    } else {
        p = &s->props[s->nprops++];
    }
    p->k = nk;
    p->v = nv;
    p->secret = is_secret_prop(k);
    return SL_OK;
}

static const char *find_prop(const kafka *s, const char *k)
{
    for (int i = 0; i < s->nprops; i++)
        if (strcmp(s->props[i].k, k) == 0) return s->props[i].v;
    return NULL;
}

/* ---- templates -------------------------------------------------------- */

/* ${labels.NAME}, ${fields.NAME}, ${input}, ${source}, each with an optional
 * :-default; $$ is a literal $. ${labels} (the whole label set) only where
 * allow_labels: it is a key, never a topic name. */
static int tpl_parse(tpl *t, const char *text, bool allow_labels, char *why, size_t why_n)
{
    memset(t, 0, sizeof *t);
    t->text = strdup(text);
    if (!t->text) return snprintf(why, why_n, "out of memory"), -1;
    const char *p = t->text, *end = p + strlen(p);
    while (p < end) {
        if (t->nparts == TPL_MAX_PARTS)
            return snprintf(why, why_n, "more than %d parts", TPL_MAX_PARTS), -1;
        tpl_part *pt = &t->parts[t->nparts];
        if (p[0] == '$' && p + 1 < end && p[1] == '$') {
            *pt = (tpl_part){.kind = TPL_LIT, .s = p, .n = 1};
            p += 2;
        } else if (p[0] == '$' && p + 1 < end && p[1] == '{') {
            const char *close = memchr(p + 2, '}', (size_t)(end - p - 2));
            if (!close) return snprintf(why, why_n, "unterminated ${"), -1;
            const char *in = p + 2, *in_end = close;
            for (const char *q = in; q + 1 < close; q++)
                if (q[0] == ':' && q[1] == '-') {
                    pt->has_dflt = true;
                    pt->dflt = q + 2;
                    pt->dflt_n = (size_t)(close - q - 2);
                    in_end = q;
                    break;
                }
            size_t n = (size_t)(in_end - in);
            if (n > 7 && memcmp(in, "labels.", 7) == 0) {
                pt->kind = TPL_LABEL, pt->s = in + 7, pt->n = n - 7;
                t->uses_labels = true;
            } else if (n == 6 && memcmp(in, "labels", 6) == 0 && allow_labels) {
                pt->kind = TPL_LABELS;
                t->uses_labels = true;
            } else if (n > 7 && memcmp(in, "fields.", 7) == 0) {
                pt->kind = TPL_FIELD, pt->s = in + 7, pt->n = n - 7;
                t->uses_fields = true;
            } else if (n == 5 && memcmp(in, "input", 5) == 0) {
                pt->kind = TPL_INPUT;
            } else if (n == 6 && memcmp(in, "source", 6) == 0) {
                pt->kind = TPL_SOURCE;
                t->uses_source = true;
            } else {
                return snprintf(why, why_n,
                                "unknown reference '${%.*s}' (use ${labels.NAME}, "
                                "${fields.NAME}, ${input}, ${source}%s)",
                                (int)(close - in), in, allow_labels ? " or ${labels}" : ""),
                       -1;
            }
            p = close + 1;
        } else {
            const char *d = memchr(p + 1, '$', (size_t)(end - p - 1));
            if (!d) d = end;
            *pt = (tpl_part){.kind = TPL_LIT, .s = p, .n = (size_t)(d - p)};
            p = d;
        }
        t->nparts++;
    }
    return 0;
}

static void tpl_free(tpl *t)
{
    free(t->text);
    t->text = NULL;
}

typedef struct wbuf {
    char *p;
    size_t len, cap;
    bool over; /* something did not fit */
} wbuf;

static void wput(wbuf *w, const char *p, size_t n)
{
    if (n > w->cap - w->len) {
        n = w->cap - w->len;
        w->over = true;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end)
{
    if (end - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static void put_utf8(wbuf *w, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80)
        u[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    wput(w, u, n);
}

/* JSON string content with its escapes resolved; a malformed escape is kept
 * as written rather than failing the record. */
static void put_unescaped(wbuf *w, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end && !w->over) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            wput(w, p, (size_t)(end - p));
            return;
        }
        wput(w, p, (size_t)(bs - p));
        p = bs;
        if (end - p < 2) {
            wput(w, p, (size_t)(end - p));
            return;
        }
        char c = p[1], out = 0;
        switch (c) {
        case '"':
            out = '"';
            break;
        case '\\':
            out = '\\';
            break;
        case '/':
            out = '/';
            break;
        case 'b':
            out = '\b';
            break;
        case 'f':
            out = '\f';
            break;
        case 'n':
            out = '\n';
            break;
        case 'r':
            out = '\r';
            break;
        case 't':
            out = '\t';
            break;
        case 'u': {
            int hi = hex4(p + 2, end);
            if (hi < 0) break;
            unsigned cp = (unsigned)hi;
            size_t used = 6;
            if (hi >= 0xd800 && hi < 0xdc00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
                int lo = hex4(p + 8, end);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + (((unsigned)hi - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
                    used = 12;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* lone surrogate */
            put_utf8(w, cp);
            p += used;
            continue;
        }
        default:
            break;
        }
        if (out) {
            wput(w, &out, 1);
            p += 2;
        } else {
            wput(w, p, 2);
            p += 2;
        }
    }
}

static void put_value(wbuf *w, const sl_field *f)
{
    if (f->type == SL_V_ESCAPED)
        put_unescaped(w, f->val.p, f->val.n);
    else
        wput(w, f->val.p, f->val.n);
}

static bool key_eq(const sl_field *f, const char *k, size_t n)
{
    return sl_slice_eq(f->key, k, n);
}

/* The label set of a record: the input's static labels, overridden by
 * fields a parse step marked as labels (the later one wins). */
static int collect_labels(const sl_batch *b, const sl_record *r, const sl_field **out)
{
    int n = 0;
    for (uint32_t i = 0; i < b->nlabels && n < MAX_LABELS; i++) out[n++] = &b->labels[i];
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if (!(f->flags & SL_FF_LABEL) || (f->flags & SL_FF_REMOVED)) continue;
        int j = 0;
        while (j < n && !key_eq(out[j], f->key.p, f->key.n)) j++;
        if (j < n)
            out[j] = f;
        else if (n < MAX_LABELS)
            out[n++] = f;
    }
    return n;
}

static const sl_field *find_label(const sl_batch *b, const sl_record *r, const char *k, size_t n)
{
    for (uint32_t i = r->nfields; i-- > 0;) {
        const sl_field *f = &r->fields[i];
        if ((f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED) && key_eq(f, k, n)) return f;
    }
    for (uint32_t i = 0; i < b->nlabels; i++)
        if (key_eq(&b->labels[i], k, n)) return &b->labels[i];
    return NULL;
}

static void render_label_key(const sl_batch *b, const sl_record *r, wbuf *w, char *scratch);

/* scratch: HEADER_VALUE_MAX bytes for ${labels}. */
static void tpl_render(const tpl *t, const sl_batch *b, const sl_record *r, wbuf *w, char *scratch)
{
    for (int i = 0; i < t->nparts && !w->over; i++) {
        const tpl_part *pt = &t->parts[i];
        const sl_field *f = NULL;
        const char *str = NULL;
        switch (pt->kind) {
        case TPL_LIT:
            wput(w, pt->s, pt->n);
            continue;
        case TPL_LABEL:
            f = find_label(b, r, pt->s, pt->n);
            break;
        case TPL_LABELS:
            render_label_key(b, r, w, scratch);
            continue;
        case TPL_FIELD:
            f = sl_record_field(r, pt->s, pt->n);
            break;
        case TPL_INPUT:
            str = b->input;
            break;
        case TPL_SOURCE:
            str = b->source;
            break;
        }
        size_t before = w->len;
        if (f)
            put_value(w, f);
        else if (str)
            wput(w, str, strlen(str));
        if (w->len == before && pt->has_dflt) wput(w, pt->dflt, pt->dflt_n);
    }
}

static int cmp_label(const sl_field *a, const sl_field *b)
{
    size_t n = a->key.n < b->key.n ? a->key.n : b->key.n;
    int c = n ? memcmp(a->key.p, b->key.p, n) : 0;
    return c ? c : (a->key.n > b->key.n) - (a->key.n < b->key.n);
}

/* ${labels}: {k="v",...} sorted by name, values escaped as in
 * Prometheus/Loki label sets, so one stream always gets one key (and so one
 * partition). */
static void render_label_key(const sl_batch *b, const sl_record *r, wbuf *w, char *scratch)
{
    const sl_field *l[MAX_LABELS];
    int n = collect_labels(b, r, l);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && cmp_label(l[j - 1], l[j]) > 0; j--) {
            const sl_field *x = l[j];
            l[j] = l[j - 1], l[j - 1] = x;
        }
    wput(w, "{", 1);
    for (int i = 0; i < n && !w->over; i++) {
        if (i) wput(w, ",", 1);
        wput(w, l[i]->key.p, l[i]->key.n);
        wput(w, "=\"", 2);
        wbuf v = {scratch, 0, HEADER_VALUE_MAX, false};
        put_value(&v, l[i]);
        for (size_t k = 0; k < v.len; k++) {
            char c = v.p[k];
            if (c == '"' || c == '\\')
                wput(w, "\\", 1), wput(w, &c, 1);
            else if (c == '\n')
                wput(w, "\\n", 2);
            else
                wput(w, &c, 1);
        }
        wput(w, "\"", 1);
    }
    wput(w, "}", 1);
}

/* ---- metrics and logging --------------------------------------------- */

static void count_drop(kafka *s, const char *reason, rd_kafka_resp_err_t err, uint64_t n)
{
    sl_metric *m = NULL;
    for (int i = 0; i < s->ndrops; i++)
        if (strcmp(s->drops[i].reason, reason) == 0) m = s->drops[i].m;
    if (!m) {
        char labels[512];
        sl_metric_labels(labels, sizeof labels, "sink", s->ctx->name, "reason", reason);
        m = sl_counter("sluice_sink_dropped_records_total",
                       "Records dropped by the sink, by reason.", labels);
        if (s->ndrops < MAX_DROP_REASONS) {
            s->drops[s->ndrops].reason = reason;
            s->drops[s->ndrops++].m = m;
        }
    }
    sl_metric_add(m, n);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_drop, &skipped))
        sl_log(SL_LOG_ERROR, "kafka_record_dropped", "sink=%s reason=%s error=%s repeated=%llu",
               s->ctx->name, reason, err ? rd_kafka_err2name(err) : "none",
               (unsigned long long)skipped);
}

/* Errors that can never succeed for this record, whatever we retry: the
 * record is dropped with this reason. Everything else (timeouts, leader
 * moves, brokers down, authorization, broker config) is retried forever. */
static const char *permanent_reason(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        return "message_too_large";
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return "unknown_topic";
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return "invalid_topic";
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return "invalid_record";
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        return "invalid_timestamp";
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return "policy_violation";
    default:
        return NULL;
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kafka *s = rd_kafka_opaque(rk);
    uint64_t skipped;
    if (level > 6 || !sl_ratelimit_ok(&s->rl_log, &skipped)) return;
    /* Errors that matter reach on_error as well; librdkafka's own lines
     * (connection refused, ...) are context, so at most a warning. */
    sl_log(level <= 4 ? SL_LOG_WARN : SL_LOG_INFO, "kafka_log",
           "sink=%s facility=%s message=%s repeated=%llu", s->ctx->name, fac, buf,
           (unsigned long long)skipped);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    kafka *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) s->fatal = true;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sl_metric_set(s->failing, 1);
    sl_metric_inc(s->errors);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_err, &skipped)) {
        sl_log(err == RD_KAFKA_RESP_ERR__FATAL ? SL_LOG_ERROR : SL_LOG_WARN, "kafka_error",
               "sink=%s error=%s reason=%s repeated=%llu", s->ctx->name,
               rd_kafka_err2name((rd_kafka_resp_err_t)err), reason, (unsigned long long)skipped);
    }
}

/* ---- in-flight bookkeeping ------------------------------------------- */

static ktrack *track_new(kafka *s, sl_batch *b)
{
    ktrack *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->s = s;
    t->b = b;
    t->outstanding = 1; /* the producing hold: no completion before all are queued */
    t->next = s->tracks;
    if (s->tracks) s->tracks->prev = t;
    s->tracks = t;
    s->ntracks++;
    return t;
}

static void track_finish(kafka *s, ktrack *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->tracks = t->next;
    if (t->next) t->next->prev = t->prev;
    s->ntracks--;
    /* A batch with any message given up is released unacknowledged: the
     * checkpoint stays before it and it is read again after a restart.
     * Stopping, it goes back to the buffer instead, which spools it when
     * there is a spool (and otherwise releases it the same way). */
    if (t->aborted && s->stopping && s->ctx->buffer)
        sl_buffer_unpop(s->ctx->buffer, t->b);
    else if (t->aborted)
        sl_batch_unref(t->b);
    else
        sl_batch_done(t->b);
    free(t->owned);
    free(t);
}

static void track_release(kafka *s, ktrack *t)
{
    if (--t->outstanding == 0) track_finish(s, t);
}

static void retry_push(kafka *s, kretry *r)
{
    r->next = NULL;
    if (s->retry_tail)
        s->retry_tail->next = r;
    else
        s->retry_head = r;
    s->retry_tail = r;
    s->nretry++;
}

static void retry_free(kretry *r)
{
    free(r->key);
    if (r->hdrs) rd_kafka_headers_destroy(r->hdrs);
    free(r);
}

static void schedule_retry(kafka *s)
{
    s->retry_at_ns = sl_monotonic_ns() + (int64_t)s->backoff_ms * 1000000;
    s->backoff_ms =
        s->backoff_ms * 2 > RETRY_BACKOFF_MAX_MS ? RETRY_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Keeps a failed message for producing again. Returns false when it could
 * not be kept (out of memory): the caller gives it up. */
static bool keep_for_retry(kafka *s, ktrack *t, const char *topic, const void *key, size_t key_n,
                           const void *val, size_t val_n, rd_kafka_headers_t *hdrs, int64_t ts_ms)
{
    kretry *r = calloc(1, sizeof *r);
    if (!r) return false;
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    if (key_n) {
        r->key = malloc(key_n);
        if (!r->key) {
            free(r);
            return false;
        }
        memcpy(r->key, key, key_n);
    }
    r->t = t;
    r->key_n = key_n;
    r->val = val;
    r->val_n = val_n;
    r->hdrs = hdrs;
    r->ts_ms = ts_ms;
    retry_push(s, r);
    return true;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka *s = opaque;
    ktrack *t = m->_private;
    if (!m->err) {
        sl_metric_inc(s->records);
        sl_metric_add(s->bytes, m->len + m->key_len);
        sl_metric_set(s->last_success, sl_now_ns());
        sl_metric_set(s->failing, 0);
        s->backoff_ms = RETRY_BACKOFF_MIN_MS;
        track_release(s, t);
        return;
    }
    if (s->stopping) { /* purged on purpose: not a failure of the destination */
        t->aborted = true;
        track_release(s, t);
        return;
    }
    sl_metric_inc(s->errors);
    const char *reason = permanent_reason(m->err);
    if (reason) {
        count_drop(s, reason, m->err, 1);
        track_release(s, t);
        return;
    }
    /* librdkafka already retried (idempotently) until message.timeout.ms:
     * the destination is failing. Produce the message again after a backoff
     * rather than drop it. */
    sl_metric_set(s->failing, 1);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_fail, &skipped))
        sl_log(SL_LOG_WARN, "kafka_delivery_failed", "sink=%s error=%s retry=true repeated=%llu",
               s->ctx->name, rd_kafka_err2name(m->err), (unsigned long long)skipped);
    rd_kafka_headers_t *h = NULL, *copy = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        copy = rd_kafka_headers_copy(h);
    if (!keep_for_retry(s, t, rd_kafka_topic_name(m->rkt), m->key, m->key_len, m->payload, m->len,
                        copy, rd_kafka_message_timestamp(m, NULL))) {
        if (copy) rd_kafka_headers_destroy(copy);
        t->aborted = true;
        track_release(s, t);
        return;
    }
    if (!s->retry_at_ns || s->nretry == 1) schedule_retry(s);
}

/* ---- the producer ----------------------------------------------------- */

/* Keyed messages: librdkafka's default (CRC32 of the key, so one key stays on
 * one partition). Keyless ones: SPREAD_RUN in a row on one partition, then
 * the next available one. librdkafka's own sticky partitioner switches on
 * time only (sticky.partitioning.linger.ms), so a burst read from a file in
 * 200 ms lands on a handful of partitions; counting messages spreads any
 * burst evenly and still fills the broker's batches. Called on the sink's
 * thread and on librdkafka's (messages queued before the topic's metadata
 * came), hence the atomic. */
static int32_t spread_partition(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    if (key)
        return rd_kafka_msg_partitioner_consistent_random(rkt, key, keylen, partition_cnt,
                                                          rkt_opaque, msg_opaque);
    kafka *s = rkt_opaque;
    unsigned n = atomic_fetch_add_explicit(&s->spread_seq, 1, memory_order_relaxed);
    int32_t p = (int32_t)((s->spread_start + n / SPREAD_RUN) % (unsigned)partition_cnt);
    /* A partition without a leader would hold its messages until it has one. */
    for (int32_t i = 0; i < partition_cnt && !rd_kafka_topic_partition_available(rkt, p); i++)
        p = (p + 1) % partition_cnt;
    return p;
}

static rd_kafka_conf_t *build_conf(kafka *s, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 0; i < s->nprops; i++) {
        if (rd_kafka_conf_set(conf, s->props[i].k, s->props[i].v, errstr, errlen) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_opaque(conf, s);
    if (s->own_partitioner) {
        rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
        rd_kafka_topic_conf_set_partitioner_cb(tc, spread_partition);
        rd_kafka_topic_conf_set_opaque(tc, s);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
}

static int producer_new(kafka *s, sl_err *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = build_conf(s, errstr, sizeof errstr);
    if (!conf) return sl_errf(err, SL_EINVAL, "sink %s: librdkafka: %s", s->ctx->name, errstr);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        return sl_errf(err, SL_EINVAL, "sink %s: librdkafka: %s", s->ctx->name, errstr);
    }
    /* Logs arrive through rd_kafka_poll on the sink's thread, like every
     * other callback, so nothing here needs locking. */
    rd_kafka_set_log_queue(s->rk, NULL);
    return SL_OK;
}

static void topics_clear(kafka *s)
{
    for (int i = 0; i < TOPIC_SLOTS; i++) {
        if (s->topics[i].rkt) rd_kafka_topic_destroy(s->topics[i].rkt);
        s->topics[i].rkt = NULL;
        s->topics[i].name[0] = '\0';
    }
}

static rd_kafka_topic_t *topic_handle(kafka *s, const char *name, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 16777619u;
    topic_slot *slot = &s->topics[h % TOPIC_SLOTS];
    if (slot->rkt && strncmp(slot->name, name, n) == 0 && slot->name[n] == '\0') return slot->rkt;
    if (slot->rkt) rd_kafka_topic_destroy(slot->rkt);
    memcpy(slot->name, name, n);
    slot->name[n] = '\0';
    slot->rkt = rd_kafka_topic_new(s->rk, slot->name, NULL);
    return slot->rkt;
}

enum { PRODUCED, DROPPED, KEPT, GIVEN_UP };

/* Produces one message; a full local queue is backpressure: serve delivery
 * reports and try again until there is room or the sink must stop. */
static int produce_one(kafka *s, ktrack *t, const char *topic, size_t topic_n, const void *key,
                       size_t key_n, const void *val, size_t val_n, rd_kafka_headers_t *hdrs,
                       int64_t ts_ms)
{
    for (;;) {
        rd_kafka_topic_t *rkt = topic_handle(s, topic, topic_n);
        rd_kafka_resp_err_t e =
            rkt ? rd_kafka_producev(
                      s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                      RD_KAFKA_V_VALUE((void *)(uintptr_t)val, val_n), RD_KAFKA_V_KEY(key, key_n),
                      RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE(t),
                      RD_KAFKA_V_END)
                : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            t->outstanding++;
            return PRODUCED;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            sl_metric_inc(s->queue_full);
            rd_kafka_poll(s->rk, 10);
            if (atomic_load(s->ctx->stop)) break;
            continue;
        }
        const char *reason = permanent_reason(e);
        if (reason) {
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            count_drop(s, reason, e, 1);
            return DROPPED;
        }
        if (e == RD_KAFKA_RESP_ERR__FATAL) s->fatal = true;
        sl_metric_inc(s->errors);
        uint64_t skipped;
        if (sl_ratelimit_ok(&s->rl_fail, &skipped))
            sl_log(SL_LOG_WARN, "kafka_produce_failed", "sink=%s error=%s retry=true repeated=%llu",
                   s->ctx->name, rd_kafka_err2name(e), (unsigned long long)skipped);
        char name[TOPIC_MAX + 1];
        memcpy(name, topic, topic_n);
        name[topic_n] = '\0';
        if (keep_for_retry(s, t, name, key, key_n, val, val_n, hdrs, ts_ms)) {
            t->outstanding++;
            if (!s->retry_at_ns || s->nretry == 1) schedule_retry(s);
            return KEPT;
        }
        break;
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    t->aborted = true;
    return GIVEN_UP;
}

static rd_kafka_headers_t *make_headers(kafka *s, const sl_batch *b, const sl_record *r)
{
    const sl_field *l[MAX_LABELS];
    int n = collect_labels(b, r, l);
    if (n == 0) return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)n);
    for (int i = 0; i < n; i++) {
        wbuf v = {s->scratch, 0, HEADER_VALUE_MAX, false};
        put_value(&v, l[i]);
        rd_kafka_header_add(h, l[i]->key.p, (ssize_t)l[i]->key.n, v.p, (ssize_t)v.len);
    }
    return h;
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Renders the topic of r; false when it cannot be a Kafka topic name. */
static bool render_topic(kafka *s, const sl_batch *b, const sl_record *r, char *out, size_t *n)
{
    wbuf w = {out, 0, TOPIC_MAX, false};
    tpl_render(&s->topic, b, r, &w, s->scratch);
    if (w.over || w.len == 0) return false;
    /* Characters Kafka does not allow in names come from field values, not
     * from the operator: map them to '_' rather than lose the record. */
    for (size_t i = 0; i < w.len; i++)
        if (!topic_char_ok(out[i])) out[i] = '_';
    if ((w.len == 1 && out[0] == '.') || (w.len == 2 && out[0] == '.' && out[1] == '.'))
        return false;
    *n = w.len;
    return true;
}

static size_t render_key(kafka *s, const sl_batch *b, const sl_record *r)
{
    wbuf w = {s->keybuf, 0, KEY_MAX, false};
    tpl_render(&s->key, b, r, &w, s->scratch);
    return w.len;
}

static bool record_has_labels(const sl_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if ((r->fields[i].flags & SL_FF_LABEL) && !(r->fields[i].flags & SL_FF_REMOVED))
            return true;
    return false;
}

/* JSON values of the whole batch in one buffer the tracker owns, so the
 * messages can point into it without a copy per message. */
static int encode_json(kafka *s, ktrack *t, const sl_batch *b)
{
    if (s->cap_offs < (size_t)b->nrecords + 1) {
        size_t *o = realloc(s->offs, ((size_t)b->nrecords + 1) * sizeof *o);
        if (!o) return SL_ENOMEM;
        s->offs = o;
        s->cap_offs = (size_t)b->nrecords + 1;
    }
    sl_buf_init(&s->json, 0);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        s->offs[i] = s->json.len;
        if (!(b->records[i].flags & SL_RF_DROPPED))
            sl_recjson_append(&s->json, b, &b->records[i], SL_RJ_ALL);
    }
    s->offs[b->nrecords] = s->json.len;
    if (s->json.failed) {
        sl_buf_free(&s->json);
        return SL_ENOMEM;
    }
    t->owned = s->json.p; /* ownership moves to the tracker */
    s->json.p = NULL;
    return SL_OK;
}

static void send_batch(kafka *s, sl_batch *b)
{
    ktrack *t = track_new(s, b);
    if (!t) {
        sl_log(SL_LOG_ERROR, "kafka_out_of_memory", "sink=%s records=%u", s->ctx->name,
               b->nrecords);
        sl_batch_unref(b);
        return;
    }
    if (s->value == VALUE_JSON && encode_json(s, t, b) != SL_OK) {
        sl_log(SL_LOG_ERROR, "kafka_encode_failed", "sink=%s records=%u", s->ctx->name,
               b->nrecords);
        t->aborted = true;
        track_release(s, t);
        return;
    }
    char topic[TOPIC_MAX + 1];
    size_t topic_n = 0, key_n = 0;
    bool topic_ok = false, have_topic = false, have_key = false;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        /* Templates that depend only on the batch are rendered once. */
        bool labels = (s->topic.uses_labels || s->key.uses_labels) && record_has_labels(r);
        bool topic_per_record = s->topic.uses_fields || (s->topic.uses_labels && labels);
        if (!have_topic || topic_per_record) {
            topic_ok = render_topic(s, b, r, topic, &topic_n);
            have_topic = !topic_per_record;
        }
        if (!topic_ok) {
            count_drop(s, "invalid_topic", RD_KAFKA_RESP_ERR_NO_ERROR, 1);
            continue;
        }
        bool key_per_record = s->key.uses_fields || (s->key.uses_labels && labels);
        if (s->has_key && (!have_key || key_per_record)) {
            key_n = render_key(s, b, r);
            have_key = !key_per_record;
        }
        const void *val = r->line.p;
        size_t val_n = r->line.n;
        if (s->value == VALUE_JSON) {
            val = t->owned + s->offs[i];
            val_n = s->offs[i + 1] - s->offs[i];
        }
        rd_kafka_headers_t *h = s->headers ? make_headers(s, b, r) : NULL;
        int64_t ts_ms = r->time_ns > 0 ? r->time_ns / 1000000 : 0;
        /* No key: a null key (not an empty one), which spread_partition (or
         * the operator's partitioner) spreads over every partition. */
        if (produce_one(s, t, topic, topic_n, s->has_key ? s->keybuf : NULL, key_n, val, val_n, h,
                        ts_ms) == GIVEN_UP)
            break;
        /* Serving reports as we go keeps librdkafka's queue from filling up
         * with finished messages. */
        if ((i & 1023) == 1023) rd_kafka_poll(s->rk, 0);
    }
    track_release(s, t);
}

/* Produces kept messages again, in order. Stops at the first that cannot be
 * queued; the rest wait for the next attempt. */
static void retry_kept(kafka *s)
{
    s->retry_at_ns = 0;
    while (s->retry_head && !atomic_load(s->ctx->stop) && !s->fatal) {
        kretry *r = s->retry_head;
        s->retry_head = r->next;
        if (!s->retry_head) s->retry_tail = NULL;
        s->nretry--;
        ktrack *t = r->t;
        rd_kafka_headers_t *h = r->hdrs;
        r->hdrs = NULL;
        sl_metric_inc(s->retries);
        int rc = produce_one(s, t, r->topic, strlen(r->topic), r->key, r->key_n, r->val, r->val_n,
                             h, r->ts_ms);
        retry_free(r);
        /* The new message (if any) holds its own share of t->outstanding;
         * release the share of the entry it replaces. */
        track_release(s, t);
        if (rc == KEPT || rc == GIVEN_UP) break;
    }
}

/* Gives up every message still in flight: purged messages report back as
 * failed and their batches are released without acknowledgement. */
static void abort_all(kafka *s)
{
    s->stopping = true;
    while (s->retry_head) {
        kretry *r = s->retry_head;
        s->retry_head = r->next;
        r->t->aborted = true;
        track_release(s, r->t);
        retry_free(r);
    }
    s->retry_tail = NULL;
    s->nretry = 0;
    if (s->rk) {
        /* Bounded: the agent's shutdown has shutdown_timeout + 1 s in all.
         * The sink already flushed (polled) until the deadline; purged
         * messages report back on the next polls, and destroy neither
         * flushes nor waits for an unreachable broker. */
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 20 && s->ntracks; i++) rd_kafka_poll(s->rk, 10);
        topics_clear(s);
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
    }
    /* Messages whose reports never came: librdkafka is gone, so their
     * memory is no longer referenced. */
    while (s->tracks) {
        s->tracks->aborted = true;
        s->tracks->outstanding = 1;
        track_release(s, s->tracks);
    }
}

/* After a fatal error (idempotence state lost) the producer is unusable:
 * purge it so every queued message comes back as retriable, then start a
 * new one and produce them again. */
static void recreate(kafka *s)
{
    char why[512];
    rd_kafka_fatal_error(s->rk, why, sizeof why);
    sl_log(SL_LOG_ERROR, "kafka_producer_restart", "sink=%s reason=%s", s->ctx->name, why);
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(s->rk, 5000);
    topics_clear(s);
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
    s->fatal = false;
    sl_err err;
    while (producer_new(s, &err) != SL_OK) {
        sl_log(SL_LOG_ERROR, "kafka_producer_failed", "sink=%s error=%s", s->ctx->name, err.msg);
        if (atomic_load(s->ctx->stop)) return;
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    s->retry_at_ns = sl_monotonic_ns();
}

static int kafka_run(void *state)
{
    kafka *s = state;
    bool closed = false;
    while (!atomic_load(s->ctx->stop)) {
        if (s->fatal) {
            recreate(s);
            if (!s->rk) break;
        }
        rd_kafka_poll(s->rk, 0);
        if (s->retry_head && sl_monotonic_ns() >= s->retry_at_ns) retry_kept(s);
        if (closed || s->retry_head) {
            /* Draining, or holding new batches back until the kept ones are
             * through, so order is kept and the buffer applies backpressure. */
            if (closed && !s->ntracks) break;
            rd_kafka_poll(s->rk, 20);
            continue;
        }
        sl_batch *b;
        int rc = sl_buffer_pop(s->ctx->buffer, &b, s->ntracks ? 5 : 100);
        if (rc == SL_ECLOSED)
            closed = true;
        else if (rc == SL_OK)
            send_batch(s, b);
    }
    if (s->ntracks || s->nretry) {
        sl_log(SL_LOG_WARN, "kafka_stop_undelivered", "sink=%s batches=%zu", s->ctx->name,
               s->ntracks);
        abort_all(s);
    }
    return SL_OK;
}

/* ---- creation ----------------------------------------------------------- */

static void kafka_destroy(void *state)
{
    kafka *s = state;
    if (!s) return;
    abort_all(s);
    tpl_free(&s->topic);
    tpl_free(&s->key);
    for (int i = 0; i < s->nprops; i++) {
        free(s->props[i].k);
        secure_free(s->props[i].v);
    }
    free(s->offs);
    free(s);
}

/* Validates each `librdkafka:` entry on a scratch configuration so errors
 * carry their file:line:col, and records the good ones. */
static void take_passthrough(kafka *s, sl_cfg *cfg, const sl_cfg_node *map)
{
    if (!map || map->kind != SL_CFG_MAP) return;
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i];
        const sl_cfg_node *v = map->items[i];
        bool bad = false;
        for (size_t j = 0; j < sizeof forbidden_props / sizeof *forbidden_props; j++)
            if (strcmp(k, forbidden_props[j]) == 0) bad = true;
        if (bad) {
            sl_cfg_error(cfg, map->key_nodes[i],
                         "librdkafka property '%s' is managed by sluice or is a secret "
                         "(secrets come from the environment or a *_file key)",
                         k);
            continue;
        }
        if (v->kind != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, v, "librdkafka property '%s' must be a single value", k);
            continue;
        }
        char errstr[512];
        rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, k, v->scalar, errstr, sizeof errstr);
        if (res == RD_KAFKA_CONF_UNKNOWN)
            sl_cfg_error(cfg, map->key_nodes[i], "unknown librdkafka property '%s'", k);
        else if (res != RD_KAFKA_CONF_OK)
            sl_cfg_error(cfg, v, "librdkafka property '%s': %s", k, errstr);
        else if (add_prop(s, k, v->scalar) != SL_OK)
            sl_cfg_error(cfg, v, "too many librdkafka properties (max %d)", MAX_PROPS);
    }
    rd_kafka_conf_destroy(probe);
}

static void check_template(sl_cfg *cfg, const sl_cfg_node *node, const char *key, tpl *t,
                           const char *def)
{
    const char *text = def;
    sl_cfg_str(cfg, node, key, def, &text);
    if (!text) return;
    char why[256];
    if (tpl_parse(t, text, strcmp(key, "key") == 0, why, sizeof why) != 0)
        sl_cfg_error(cfg, sl_cfg_get(node, key), "%s template: %s", key, why);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static int kafka_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    kafka *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    s->ctx = ctx;
    bool typed_ok = sl_cfg_check(cfg, n, kafka_keys, sizeof kafka_keys / sizeof *kafka_keys) == 0;

    static const char *const codecs[] = {"zstd", "lz4", "snappy", "gzip", "none"};
    static const char *const acks_v[] = {"all", "1", "0"};
    static const char *const protos[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"};
    static const char *const mechs[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    const char *brokers[64];
    size_t nbrokers = 0;
    int compression = 0, acks = 0, proto = -1, mech = 0;
    int64_t level = -1000, linger = 20;
    uint64_t batch_bytes = 0;
    bool idem = true;
    const char *user = NULL, *ca = NULL, *cert = NULL, *keyf = NULL;
    char *password = NULL, *key_password = NULL;
    s->headers = true;
    if (typed_ok) {
        sl_cfg_list(cfg, n, "brokers", brokers, 64, &nbrokers);
        sl_cfg_enum(cfg, n, "value", "raw|json", VALUE_RAW, &s->value);
        sl_cfg_bool(cfg, n, "headers", true, &s->headers);
        sl_cfg_enum(cfg, n, "compression", "zstd|lz4|snappy|gzip|none", 0, &compression);
        sl_cfg_int(cfg, n, "compression_level", -1000, -1, 12, &level);
        sl_cfg_enum(cfg, n, "acks", "all|1|0", 0, &acks);
        sl_cfg_bool(cfg, n, "idempotence", true, &idem);
        sl_cfg_int(cfg, n, "linger_ms", 20, 0, 900000, &linger);
        sl_cfg_size(cfg, n, "batch_bytes", 0, &batch_bytes);
        if (batch_bytes > 2147483647u)
            sl_cfg_error(cfg, sl_cfg_get(n, "batch_bytes"), "batch_bytes must be below 2GiB");
        sl_cfg_enum(cfg, n, "security_protocol", "plaintext|ssl|sasl_plaintext|sasl_ssl", -1,
                    &proto);
        sl_cfg_enum(cfg, n, "sasl_mechanism", "plain|scram-sha-256|scram-sha-512", 0, &mech);
        sl_cfg_str(cfg, n, "sasl_username", NULL, &user);
        sl_cfg_str(cfg, n, "tls_ca_file", NULL, &ca);
        sl_cfg_str(cfg, n, "tls_cert_file", NULL, &cert);
        sl_cfg_str(cfg, n, "tls_key_file", NULL, &keyf);
        sl_cfg_secret(cfg, n, "sasl_password", &password);
        sl_cfg_secret(cfg, n, "tls_key_password", &key_password);
        if (idem && acks != 0)
            sl_cfg_error(cfg, sl_cfg_get(n, "acks"),
                         "idempotence needs acks: all (or set idempotence: false)");
        if (nbrokers == 0 && sl_cfg_get(n, "brokers"))
            sl_cfg_error(cfg, sl_cfg_get(n, "brokers"), "brokers must not be empty");
        /* librdkafka would try to resolve "user:password@host" and print it
         * in every connection error; the value is not echoed here either. */
        for (size_t i = 0; i < nbrokers; i++)
            if (strchr(brokers[i], '@'))
                sl_cfg_error(cfg, sl_cfg_get(n, "brokers"),
                             "brokers: a broker address with credentials (user:password@) is "
                             "not supported; use sasl_username and sasl_password_file");
    }
    bool sasl_keys = sl_cfg_get(n, "sasl_username") || sl_cfg_get(n, "sasl_password") ||
                     sl_cfg_get(n, "sasl_password_file") || sl_cfg_get(n, "sasl_mechanism");
    bool tls = ca || cert || keyf;
    if (proto < 0) proto = sasl_keys ? (tls ? 3 : 2) : (tls ? 1 : 0);
    /* The environment fills in what the config leaves out, only for the
     * protocols that use it, so a node-wide variable changes nothing else. */
    if (proto >= 2 && !user) user = env_or("SLUICE_KAFKA_SASL_USERNAME", NULL);
    if (proto >= 2 && !password) {
        const char *p = env_or("SLUICE_KAFKA_SASL_PASSWORD", NULL);
        if (p) password = strdup(p);
    }
    if (keyf && !key_password) {
        const char *p = env_or("SLUICE_KAFKA_TLS_KEY_PASSWORD", NULL);
        if (p) key_password = strdup(p);
    }
    if ((proto == 2 || proto == 3) && (!user || !password) && typed_ok &&
        !sl_cfg_get(n, "sasl_password_file"))
        sl_cfg_error(
            cfg, n,
            "SASL needs a username and a password (sasl_username or "
            "SLUICE_KAFKA_SASL_USERNAME; sasl_password_file or SLUICE_KAFKA_SASL_PASSWORD)");

    check_template(cfg, n, "topic", &s->topic, NULL);
    const char *key_text = NULL;
    sl_cfg_str(cfg, n, "key", NULL, &key_text);
    s->has_key = key_text != NULL;
    if (key_text) check_template(cfg, n, "key", &s->key, NULL);

    /* The producer's properties: ours first, the passthrough map last so an
     * operator can override any of them. */
    char brokers_joined[4096] = "";
    for (size_t i = 0; i < nbrokers; i++) {
        size_t len = strlen(brokers_joined);
        snprintf(brokers_joined + len, sizeof brokers_joined - len, "%s%s", i ? "," : "",
                 brokers[i]);
    }
    char num[32], client_id[256];
    snprintf(client_id, sizeof client_id, "sluice-%s", ctx->name);
    int rc = 0;
    rc |= add_prop(s, "bootstrap.servers", brokers_joined);
    rc |= add_prop(s, "client.id", client_id);
    rc |= add_prop(s, "compression.codec", codecs[compression]);
    /* zstd level 1: a node agent spends as little CPU as it can; the ratio
     * is close to the default level on log text. */
    if (level == -1000) level = compression == 0 ? 1 : -1;
    snprintf(num, sizeof num, "%lld", (long long)level);
    rc |= add_prop(s, "compression.level", num);
    rc |= add_prop(s, "acks", acks_v[acks]);
    rc |= add_prop(s, "enable.idempotence", idem ? "true" : "false");
    snprintf(num, sizeof num, "%lld", (long long)linger);
    rc |= add_prop(s, "linger.ms", num);
    if (batch_bytes) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)batch_bytes);
        rc |= add_prop(s, "batch.size", num);
    }
    /* Messages point into our batches (no copy), so this bounds the memory
     * held in flight beyond the sink's queue; librdkafka's own per-message
     * and per-partition buffers grow with it. 4 MiB kept the same
     * throughput into the mock cluster as 64 MiB, with ~170 MiB less RSS
     * (benchmarks/e2e.py, kafka scenario); `librdkafka:` can raise it for
     * a far broker. */
    rc |= add_prop(s, "queue.buffering.max.kbytes", "4096");
    rc |= add_prop(s, "log.queue", "true");
    rc |= add_prop(s, "log.connection.close", "false");
    rc |= add_prop(s, "security.protocol", protos[proto]);
    if (proto >= 2) {
        rc |= add_prop(s, "sasl.mechanisms", mechs[mech]);
        if (user) rc |= add_prop(s, "sasl.username", user);
        if (password) rc |= add_prop(s, "sasl.password", password);
    }
    if (ca) rc |= add_prop(s, "ssl.ca.location", ca);
    if (cert) rc |= add_prop(s, "ssl.certificate.location", cert);
    if (keyf) rc |= add_prop(s, "ssl.key.location", keyf);
    if (key_password) rc |= add_prop(s, "ssl.key.password", key_password);
    secure_free(password);
    secure_free(key_password);
    if (rc) sl_cfg_error(cfg, n, "out of memory");
    take_passthrough(s, cfg, sl_cfg_get(n, "librdkafka"));
    /* Keyless messages are spread by spread_partition unless the operator
     * chose a partitioner; librdkafka's time-based sticky partitioning would
     * take them before it, so it is off (an explicit setting wins). */
    s->own_partitioner = !find_prop(s, "partitioner");
    if (s->own_partitioner && !find_prop(s, "sticky.partitioning.linger.ms") &&
        add_prop(s, "sticky.partitioning.linger.ms", "0") != SL_OK)
        sl_cfg_error(cfg, n, "out of memory");
    s->spread_start = (unsigned)(sl_monotonic_ns() / 1000);

    if (sl_cfg_nerrors(cfg) > before) {
        kafka_destroy(s);
        return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) {
        /* The whole property set must also hold together. */
        char errstr[512];
        rd_kafka_conf_t *conf = build_conf(s, errstr, sizeof errstr);
        if (!conf)
            sl_cfg_error(cfg, n, "librdkafka: %s", errstr);
        else
            rd_kafka_conf_destroy(conf);
        kafka_destroy(s);
        return sl_cfg_nerrors(cfg) > before
                   ? sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name)
                   : SL_OK;
    }

    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", ctx->name, NULL, NULL);
    s->records = sl_counter("sluice_sink_records_total", "Records delivered by the sink.", labels);
    s->bytes = sl_counter("sluice_sink_bytes_total", "Bytes written or sent by the sink.", labels);
    s->errors = sl_counter("sluice_sink_errors_total", "Failed write or send attempts.", labels);
    s->retries = sl_counter("sluice_sink_retries_total", "Records or requests sent again.", labels);
    s->failing = sl_gauge("sluice_sink_failing",
                          "1 while the sink's destination is unreachable or failing.", labels);
    s->last_success = sl_gauge("sluice_sink_last_success_timestamp_seconds",
                               "Time of the sink's last successful delivery.", labels);
    s->queue_full = sl_counter("sluice_kafka_queue_full_total",
                               "Produce attempts that found librdkafka's queue full "
                               "(backpressure).",
                               labels);
    s->rl_drop.interval_ns = s->rl_fail.interval_ns = s->rl_err.interval_ns = 10 * 1000000000LL;
    s->rl_log.interval_ns = 1000000000LL;
    s->backoff_ms = RETRY_BACKOFF_MIN_MS;
    int prc = producer_new(s, err);
    if (prc != SL_OK) {
        kafka_destroy(s);
        return prc;
    }
    *state = s;
    return SL_OK;
}

/* Metadata from the brokers: for the topic when it is fixed, the cluster
 * only when it is a per-record template. */
static int kafka_probe(const sl_sink_ctx *ctx, sl_err *result)
{
    enum { PROBE_TIMEOUT_MS = 5000 };
    void *state = NULL;
    int rc = kafka_create(ctx, &state, result);
    if (rc != SL_OK) return rc;
    kafka *s = state;
    bool fixed = true; /* no reference to a record, its input or its file */
    for (int i = 0; i < s->topic.nparts; i++)
        if (s->topic.parts[i].kind != TPL_LIT) fixed = false;
    const char *topic = fixed ? s->topic.text : NULL;
    rd_kafka_topic_t *rkt = topic ? rd_kafka_topic_new(s->rk, topic, NULL) : NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(s->rk, 0, rkt, &md, PROBE_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = sl_errf(result, SL_EIO, "no metadata from the brokers within %d ms: %s",
                     PROBE_TIMEOUT_MS, rd_kafka_err2str(e));
    else if (!topic)
        sl_errf(result, SL_OK, "%d broker(s) answer; topic is a template, resolved per record",
                md->broker_cnt);
    else if (md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = sl_errf(result, SL_EIO, "topic %s: %s", topic,
                     md->topic_cnt < 1 ? "not in the metadata"
                                       : rd_kafka_err2str(md->topics[0].err));
    else
        sl_errf(result, SL_OK, "topic %s: %d partition(s) on %d broker(s)", topic,
                md->topics[0].partition_cnt, md->broker_cnt);
    if (md) rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    kafka_destroy(s);
    return rc;
}

/* ---- sluice check: where records would all meet one partition ------------ */

static void warn_at(const sl_cfg_node *at, const char *sink, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warn_at(const sl_cfg_node *at, const char *sink, const char *fmt, ...)
{
    char msg[1024], shown[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Values from the configuration: one line, no credentials. */
    size_t n = sl_redact_text(shown, sizeof shown, msg, strlen(msg));
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7f) shown[i] = '?';
    fprintf(stderr, "%s:%d:%d: warning: sink %s: %s\n", at && at->file ? at->file : "?",
            at ? at->line : 0, at ? at->col : 0, sink, shown);
}

static bool sink_takes_input(const sl_cfg_node *sink, const char *input)
{
    const sl_cfg_node *list = sl_cfg_get(sink, "inputs");
    if (!list) return true; /* default: every input */
    if (list->kind != SL_CFG_SEQ) return false;
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i]->kind == SL_CFG_SCALAR && strcmp(list->items[i]->scalar, input) == 0)
            return true;
    return false;
}

/* Labels that can differ from record to record: a `labels` parse step, or
 * journald's `labels_from`. */
static bool input_has_record_labels(const sl_cfg_node *in)
{
    if (sl_cfg_get(in, "labels_from")) return true;
    const sl_cfg_node *parse = sl_cfg_get(in, "parse");
    for (size_t k = 0; parse && parse->kind == SL_CFG_SEQ && k < parse->n; k++)
        if (sl_cfg_get(parse->items[k], "labels")) return true;
    return false;
}

int sl_kafka_check_key(sl_cfg *cfg, const sl_cfg_node *sink, const sl_cfg_node *inputs)
{
    (void)cfg;
    int warnings = 0;
    const char *name = "?";
    const sl_cfg_node *nn = sl_cfg_get(sink, "name");
    if (nn && nn->kind == SL_CFG_SCALAR) name = nn->scalar;
    const sl_cfg_node *key = sl_cfg_get(sink, "key");
    if (!key) {
        const sl_cfg_node *map = sl_cfg_get(sink, "librdkafka");
        const sl_cfg_node *part = map ? sl_cfg_get(map, "partitioner") : NULL;
        if (part && part->kind == SL_CFG_SCALAR &&
            (!strcmp(part->scalar, "consistent") || !strcmp(part->scalar, "murmur2") ||
             !strcmp(part->scalar, "fnv1a"))) {
            warn_at(part, name,
                    "partitioner '%s' hashes the (missing) key, so every message goes to one "
                    "partition; leave it out, or use '%s_random'",
                    part->scalar, part->scalar);
            warnings++;
        }
        return warnings;
    }
    if (key->kind != SL_CFG_SCALAR) return 0;
    tpl t;
    char why[256];
    int bad = tpl_parse(&t, key->scalar, true, why, sizeof why);
    bool varies = t.uses_fields || t.uses_source, by_labels = t.uses_labels;
    tpl_free(&t);
    if (bad || varies) return 0; /* a bad template is already an error */
    for (size_t i = 0; inputs && inputs->kind == SL_CFG_SEQ && i < inputs->n; i++) {
        const sl_cfg_node *in = inputs->items[i];
        const sl_cfg_node *in_name = sl_cfg_get(in, "name");
        if (!in_name || in_name->kind != SL_CFG_SCALAR || !sink_takes_input(sink, in_name->scalar))
            continue;
        if (by_labels && input_has_record_labels(in)) continue;
        warn_at(key, name,
                "key '%s' is the same for every record of input '%s': all of them go to one "
                "partition (order kept, one consumer, one broker's load); leave `key` out to "
                "spread them, or add ${fields.NAME} / ${source}",
                key->scalar, in_name->scalar);
        warnings++;
    }
    return warnings;
}

const sl_sink_ops sl_kafka_sink_ops = {.type = "kafka",
                                       .create = kafka_create,
                                       .run = kafka_run,
                                       .destroy = kafka_destroy,
                                       .probe = kafka_probe,
                                       .check_inputs = sl_kafka_check_key,
                                       .keys = kafka_keys,
                                       .nkeys = SL_CFG_NKEYS(kafka_keys)};
