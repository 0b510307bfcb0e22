/* `sluice check` for the Kafka sink: where every record of an input would
 * meet one partition (decision 0018), from the configuration tree only;
 * and `sluice check --connect`, the brokers asked for the topic's metadata
 * with every failure named per broker (decision 0085). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/redact.h"
#include "shipper/kafka.h"
#include "shipper/kafka_config.h"
#include "shipper/kafka_msg.h"
#include "shipper/template.h"

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
    static const sl_tpl_rules rules = {.label_set = true};
    sl_tpl *t;
    sl_err err;
    if (sl_tpl_compile(key->scalar, &rules, &t, &err) != SL_OK)
        return 0; /* a bad template is already an error */
    unsigned uses = sl_tpl_uses(t);
    sl_tpl_free(t);
    if (uses & (SL_TPL_USES_FIELDS | SL_TPL_USES_SOURCE)) return 0;
    bool by_labels = uses & SL_TPL_USES_LABELS;
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

/* ---- sluice check --connect ---------------------------------------------- */

/* Connection setup (TCP, TLS, SASL, ApiVersion) gets at most this long in
 * a probe, and the probe waits this plus PROBE_SLACK_MS: a broker that
 * accepts and never answers is then reported by librdkafka itself
 * ("Connection setup timed out in state APIVERSION_QUERY") rather than by
 * an anonymous deadline. A shorter socket.connection.setup.timeout.ms
 * under `librdkafka:` is kept. */
enum { PROBE_SETUP_MS = 4000, PROBE_SLACK_MS = 1000, PROBE_BROKERS = 64 };

typedef struct probe_state {
    char broker[PROBE_BROKERS][160]; /* host:port as librdkafka names them */
    char reason[PROBE_BROKERS][256]; /* first failure of each, "" while none */
    const char *kind[PROBE_BROKERS];
    int nbrokers, nfailed;
    char other[256]; /* a failure that names no configured broker */
    const char *other_kind;
} probe_state;

static bool has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (; *s; s++)
        if (strncasecmp(s, w, n) == 0) return true;
    return false;
}

/* What failed, in the words of `sluice check --connect` (the Loki probe
 * uses the same ones): DNS, refused, unreachable, timeout, TLS, auth,
 * closed (the broker hung up: often plaintext against a TLS listener). */
static const char *failure_kind(int err, const char *reason)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__RESOLVE:
        return "DNS";
    case RD_KAFKA_RESP_ERR__SSL:
        return "TLS";
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return "auth";
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        return "timeout";
    default:
        break;
    }
    if (has_word(reason, "Failed to resolve")) return "DNS";
    if (has_word(reason, "refused")) return "refused";
    if (has_word(reason, "timed out")) return "timeout";
    if (has_word(reason, "unreachable")) return "unreachable";
    /* Before SSL: librdkafka's hint for a hang-up names SSL listeners. */
    if (has_word(reason, "Disconnected")) return "closed";
    if (has_word(reason, "SSL") || has_word(reason, "certificate")) return "TLS";
    if (has_word(reason, "SASL") || has_word(reason, "authentication")) return "auth";
    return "closed";
}

/* Served by rd_kafka_poll on the probing thread: no lock. */
static void probe_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    probe_state *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) return; /* the brokers' own say why */
    const char *kind = failure_kind(err, reason);
    for (int i = 0; i < p->nbrokers; i++) {
        char at[176];
        snprintf(at, sizeof at, "%s/", p->broker[i]);
        if (!strstr(reason, at)) continue;
        if (!p->reason[i][0]) {
            snprintf(p->reason[i], sizeof p->reason[i], "%s", reason);
            p->kind[i] = kind;
            p->nfailed++;
        }
        return;
    }
    if (!p->other[0]) {
        snprintf(p->other, sizeof p->other, "%s", reason);
        p->other_kind = kind;
    }
}

/* librdkafka's own lines would go to stderr: the report says it all. */
static void probe_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

/* bootstrap.servers into host:port names, the port librdkafka adds when
 * one is left out (9092) included, so failures can be matched. */
static void probe_brokers(probe_state *p, const char *list)
{
    while (list && *list && p->nbrokers < PROBE_BROKERS) {
        size_t n = strcspn(list, ", ");
        if (n) {
            char *b = p->broker[p->nbrokers++];
            const char *scheme = strstr(list, "://");
            const char *host = scheme && scheme < list + n ? scheme + 3 : list;
            int hn = (int)(list + n - host);
            const char *close = memchr(host, ']', (size_t)hn);
            const char *colon =
                memchr(close ? close : host, ':', (size_t)(list + n - (close ? close : host)));
            snprintf(b, sizeof p->broker[0], colon ? "%.*s" : "%.*s:9092", hn, host);
        }
        list += n;
        list += strspn(list, ", ");
    }
}

static const char *prop_of(const sl_kafka_conf *c, const char *k)
{
    for (int i = 0; i < c->nprops; i++)
        if (strcmp(c->props[i].k, k) == 0) return c->props[i].v;
    return NULL;
}

/* The report of a failure: the kinds, the brokers, then each broker's
 * first failure as librdkafka words it (address and state included), as
 * many as fit, in the order they were given. */
static void probe_failed(const probe_state *p, rd_kafka_resp_err_t e, long long waited_ms,
                         char *out, size_t cap)
{
    char kinds[64] = "", brokers[160] = "", why[512] = "";
    size_t kn = 0, bn = 0, wn = 0;
    for (int i = -1; i < p->nbrokers; i++) {
        const char *k = i < 0 ? p->other_kind : p->kind[i];
        const char *r = i < 0 ? p->other : p->reason[i];
        if (i >= 0 && bn < sizeof brokers)
            bn += (size_t)snprintf(brokers + bn, sizeof brokers - bn, "%s%s", bn ? "," : "",
                                   p->broker[i]);
        if (!k) continue;
        if (!strstr(kinds, k) && kn < sizeof kinds)
            kn += (size_t)snprintf(kinds + kn, sizeof kinds - kn, "%s%s", kn ? "," : "", k);
        if (wn < sizeof why)
            wn += (size_t)snprintf(why + wn, sizeof why - wn, "%s%s", wn ? "; " : "", r);
    }
    if (!kinds[0]) {
        /* Nothing failed by itself: no broker finished its connection
         * setup within the wait. */
        snprintf(kinds, sizeof kinds, "timeout");
        snprintf(why, sizeof why, "no broker answered or failed (%s)", rd_kafka_err2str(e));
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: no metadata from brokers %s in %lld ms: %s", kinds, brokers,
             waited_ms, why);
    /* One line, no credentials (librdkafka's reasons hold neither SASL
     * secrets nor key passwords; a url-shaped broker name is redacted). */
    size_t n = sl_redact_text(out, cap, msg, strlen(msg));
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = ' ';
}

/* Asks the brokers of conf (its bootstrap.servers) for topic's metadata,
 * or the cluster's when topic is NULL; what answered, or what failed, into
 * result. Takes conf. */
static int ask_brokers(rd_kafka_conf_t *conf, const char *bootstrap, const char *setup_given,
                       const char *topic, const char *topic_note, sl_err *result)
{
    char errstr[512];
    probe_state *p = calloc(1, sizeof *p);
    if (!p) {
        rd_kafka_conf_destroy(conf);
        return sl_errf(result, SL_ENOMEM, "out of memory");
    }
    probe_brokers(p, bootstrap);
    long setup = setup_given ? strtol(setup_given, NULL, 10) : PROBE_SETUP_MS;
    if (setup <= 0 || setup > PROBE_SETUP_MS) setup = PROBE_SETUP_MS;
    char num[32];
    snprintf(num, sizeof num, "%ld", setup);
    rd_kafka_conf_set(conf, "socket.connection.setup.timeout.ms", num, errstr, sizeof errstr);
    /* The sink keeps a broker's idle disconnects quiet; here a hang-up is
     * the answer (plaintext against a TLS listener, a proxy that closes). */
    rd_kafka_conf_set(conf, "log.connection.close", "true", errstr, sizeof errstr);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_error_cb(conf, probe_on_error);
    rd_kafka_conf_set_log_cb(conf, probe_on_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return sl_errf(result, SL_EINVAL, "librdkafka: %s", errstr);
    }
    rd_kafka_set_log_queue(rk, NULL);
    rd_kafka_topic_t *rkt = topic ? rd_kafka_topic_new(rk, topic, NULL) : NULL;
    const struct rd_kafka_metadata *md = NULL;
    int64_t t0 = sl_monotonic_ns(), deadline = t0 + (setup + PROBE_SLACK_MS) * 1000000LL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    /* Short asks, the failures served between them: done as soon as a
     * broker answers or every broker has failed once. */
    for (int64_t now = t0; now < deadline; now = sl_monotonic_ns()) {
        int64_t left_ms = (deadline - now) / 1000000LL;
        e = rd_kafka_metadata(rk, 0, rkt, &md, left_ms < 100 ? (int)left_ms + 1 : 100);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        md = NULL;
        rd_kafka_poll(rk, 0);
        if (p->nbrokers && p->nfailed == p->nbrokers) break;
    }
    long long waited = (long long)((sl_monotonic_ns() - t0) / 1000000LL);
    int rc = SL_OK;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        probe_failed(p, e, waited, result->msg, sizeof result->msg);
        rc = result->code = SL_EIO;
    } else if (!topic) {
        sl_errf(result, SL_OK, "%d broker(s) answer; %s", md->broker_cnt, topic_note);
    } else if (md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_resp_err_t te =
            md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : md->topics[0].err;
        rc = sl_errf(result, SL_EIO, "%s: topic %s: %s",
                     te == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ? "auth" : "topic", topic,
                     md->topic_cnt < 1 ? "not in the metadata" : rd_kafka_err2str(te));
    } else {
        sl_errf(result, SL_OK, "topic %s: %d partition(s) on %d broker(s)%s", topic,
                md->topics[0].partition_cnt, md->broker_cnt, topic_note);
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(p);
    return rc;
}

int sl_kafka_probe(const sl_sink_ctx *ctx, const sl_cfg_key *keys, size_t nkeys, sl_err *result)
{
    sl_kafka_conf c;
    int rc = sl_kafka_conf_read(ctx, keys, nkeys, &c, result);
    if (rc != SL_OK) return rc;
    char errstr[512];
    rd_kafka_conf_t *conf = sl_kafka_conf_new(&c, errstr, sizeof errstr);
    if (!conf) {
        rc = sl_errf(result, SL_EINVAL, "librdkafka: %s", errstr);
    } else {
        /* Fixed: no reference to a record, its input or its file. */
        char fixed[SL_KAFKA_TOPIC_MAX + 1];
        size_t fixed_n = sl_tpl_render(c.topic, NULL, NULL, fixed, SL_KAFKA_TOPIC_MAX, NULL);
        fixed[fixed_n] = '\0';
        const char *topic = sl_tpl_uses(c.topic) == 0 ? fixed : NULL;
        rc = ask_brokers(conf, prop_of(&c, "bootstrap.servers"),
                         prop_of(&c, "socket.connection.setup.timeout.ms"), topic,
                         topic ? "" : "topic is a template, resolved per record", result);
    }
    sl_kafka_conf_free(&c);
    return rc;
}

int sl_kafka_input_probe(sl_cfg *cfg, const sl_cfg_node *input, sl_err *result)
{
    /* What the input's consumer connects with (collector/kafka_input.c):
     * the brokers and its `librdkafka:` properties; the consumer's own
     * settings (group, offsets) change nothing of the connection. */
    const char *brokers[64], *topics[64];
    size_t nb = 0, nt = 0;
    sl_cfg_list(cfg, input, "brokers", brokers, 64, &nb);
    sl_cfg_list(cfg, input, "topics", topics, 64, &nt);
    char bootstrap[4096] = "";
    for (size_t i = 0, n = 0; i < nb && n < sizeof bootstrap; i++)
        n +=
            (size_t)snprintf(bootstrap + n, sizeof bootstrap - n, "%s%s", i ? "," : "", brokers[i]);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return sl_errf(result, SL_EINVAL, "librdkafka: %s", errstr);
    }
    const char *setup = NULL;
    const sl_cfg_node *map = sl_cfg_get(input, "librdkafka");
    for (size_t i = 0; map && map->kind == SL_CFG_MAP && i < map->n; i++) {
        const sl_cfg_node *v = map->items[i];
        /* `sluice check` refused what the consumer would refuse. */
        if (v->kind != SL_CFG_SCALAR || strncmp(map->keys[i], "group.", 6) == 0 ||
            strncmp(map->keys[i], "enable.auto.", 12) == 0 ||
            strcmp(map->keys[i], "auto.offset.reset") == 0 ||
            rd_kafka_conf_set(conf, map->keys[i], v->scalar, errstr, sizeof errstr) !=
                RD_KAFKA_CONF_OK)
            continue;
        if (strcmp(map->keys[i], "socket.connection.setup.timeout.ms") == 0) setup = v->scalar;
    }
    /* A topic named by a pattern (^...) is no topic to ask for. */
    const char *topic = nt && topics[0][0] != '^' ? topics[0] : NULL;
    char note[96] = "";
    if (!topic)
        snprintf(note, sizeof note, "topics by pattern, not asked");
    else if (nt > 1)
        snprintf(note, sizeof note, " (the first of %zu topics)", nt);
    return ask_brokers(conf, bootstrap, setup, topic, note, result);
}
