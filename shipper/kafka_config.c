#include "shipper/kafka_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

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

static void secure_free(char *p)
{
    if (!p) return;
    size_t n = strlen(p);
    volatile char *v = p;
    for (size_t i = 0; i < n; i++) v[i] = 0;
    free(p);
}

static int add_prop(sl_kafka_conf *s, const char *k, const char *v)
{
    if (s->nprops == SL_KAFKA_MAX_PROPS) return SL_ENOMEM;
    /* A later setting of the same property replaces the earlier one. */
    sl_kafka_prop *p = NULL;
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
    return SL_OK;
}

static const char *find_prop(const sl_kafka_conf *s, const char *k)
{
    for (int i = 0; i < s->nprops; i++)
        if (strcmp(s->props[i].k, k) == 0) return s->props[i].v;
    return NULL;
}

/* Validates each `librdkafka:` entry on a scratch configuration so errors
 * carry their file:line:col, and records the good ones. */
static void take_passthrough(sl_kafka_conf *s, sl_cfg *cfg, const sl_cfg_node *map)
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
            sl_cfg_error(cfg, v, "too many librdkafka properties (max %d)", SL_KAFKA_MAX_PROPS);
    }
    rd_kafka_conf_destroy(probe);
}

static void check_template(sl_cfg *cfg, const sl_cfg_node *node, const char *key, sl_tpl **t)
{
    const char *text = NULL;
    sl_cfg_str(cfg, node, key, NULL, &text);
    if (!text) return;
    /* ${labels} (the whole label set) is a key, never a topic name. */
    sl_tpl_rules rules = {.label_set = strcmp(key, "key") == 0};
    sl_err err;
    if (sl_tpl_compile(text, &rules, t, &err) != SL_OK)
        sl_cfg_error(cfg, sl_cfg_get(node, key), "%s template: %s", key, err.msg);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

void sl_kafka_conf_free(sl_kafka_conf *s)
{
    sl_tpl_free(s->topic);
    sl_tpl_free(s->key);
    for (int i = 0; i < s->nprops; i++) {
        free(s->props[i].k);
        secure_free(s->props[i].v);
    }
    memset(s, 0, sizeof *s);
}

rd_kafka_conf_t *sl_kafka_conf_new(const sl_kafka_conf *c, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 0; i < c->nprops; i++) {
        if (rd_kafka_conf_set(conf, c->props[i].k, c->props[i].v, errstr, errlen) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

int sl_kafka_conf_read(const sl_sink_ctx *ctx, const sl_cfg_key *keys, size_t nkeys,
                       sl_kafka_conf *s, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    memset(s, 0, sizeof *s);
    /* The checks between keys (idempotence and acks, brokers, SASL) need
     * values of the right type, so a type error skips them; a value out of
     * its range does not, so the operator sees those errors at once. */
    sl_cfg_key typed[48];
    if (nkeys > sizeof typed / sizeof *typed) {
        sl_cfg_error(cfg, n, "internal: kafka key table over %zu keys",
                     sizeof typed / sizeof *typed);
        return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    }
    for (size_t i = 0; i < nkeys; i++) {
        typed[i] = keys[i];
        typed[i].min = typed[i].max = 0;
    }
    bool typed_ok = sl_cfg_check(cfg, n, typed, nkeys) == 0;
    sl_kafka_keys_read kr; /* with a type error, that key's default */
    sl_cfg_read(cfg, n, keys, nkeys, &kr);

    static const char *const codecs[] = {"zstd", "lz4", "snappy", "gzip", "none"};
    static const char *const acks_v[] = {"all", "1", "0"};
    static const char *const protos[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"};
    static const char *const mechs[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    const char *brokers[64];
    size_t nbrokers = 0;
    int compression = kr.compression, acks = kr.acks, proto = kr.security_protocol,
        mech = kr.sasl_mechanism;
    const sl_cfg_node *level_node = sl_cfg_get(n, "compression_level");
    bool level_given = level_node && level_node->kind != SL_CFG_NULL;
    int64_t level = kr.compression_level, linger = kr.linger_ms;
    uint64_t batch_bytes = kr.batch_bytes;
    bool idem = kr.idempotence;
    const char *user = kr.sasl_username, *ca = kr.tls_ca_file, *cert = kr.tls_cert_file,
               *keyf = kr.tls_key_file;
    char *password = NULL, *key_password = NULL;
    s->headers = kr.headers;
    s->max_topics = kr.max_topics > 0 ? (size_t)kr.max_topics : 1;
    if (typed_ok) {
        sl_cfg_list(cfg, n, "brokers", brokers, 64, &nbrokers);
        /* The range is in the message operators know; not the table's. */
        if (batch_bytes > 2147483647u)
            sl_cfg_error(cfg, sl_cfg_get(n, "batch_bytes"), "batch_bytes must be below 2GiB");
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

    s->json_value = kr.value == 1;
    check_template(cfg, n, "topic", &s->topic);
    check_template(cfg, n, "key", &s->key);

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
    if (!level_given) level = compression == 0 ? 1 : -1;
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
    /* Without a key, a partition's batch is complete when its run of
     * SL_KAFKA_SPREAD_RUN messages is (the next ones go elsewhere): sent at
     * once instead of after linger_ms, so the queue's bound is spent on
     * batches being compressed and sent rather than on batches waiting for
     * the timer (decision 0044). */
    bool runs = s->own_partitioner && !s->key;
    char run[16];
    snprintf(run, sizeof run, "%d", SL_KAFKA_SPREAD_RUN);
    if (runs && !find_prop(s, "batch.num.messages") &&
        add_prop(s, "batch.num.messages", run) != SL_OK)
        sl_cfg_error(cfg, n, "out of memory");
    /* Messages point into our batches (no copy), so librdkafka's queue bound
     * also pins the batches its messages come from (a batch stays whole
     * until its last message is delivered): ~25 MiB of batches at 4 MiB on
     * the file -> Kafka path, ~10 MiB at 1 MiB. Runs sent whole need a
     * few runs queued, one per broker thread compressing (1 MiB holds ~6
     * runs of 250 there; smaller bounds measured slower, decision 0052);
     * keyed messages fill their batches over linger_ms, across partitions,
     * and keep 4 MiB (below it the timer caps them). `librdkafka:` can
     * raise either for a far broker (decisions 0007, 0038, 0044). */
    if (!find_prop(s, "queue.buffering.max.kbytes") &&
        add_prop(s, "queue.buffering.max.kbytes", runs ? "1024" : "4096") != SL_OK)
        sl_cfg_error(cfg, n, "out of memory");
    if (ctx->check_only && sl_cfg_nerrors(cfg) == before) {
        /* The whole property set must also hold together. */
        char errstr[512];
        rd_kafka_conf_t *conf = sl_kafka_conf_new(s, errstr, sizeof errstr);
        if (!conf)
            sl_cfg_error(cfg, n, "librdkafka: %s", errstr);
        else
            rd_kafka_conf_destroy(conf);
    }
    if (sl_cfg_nerrors(cfg) > before) {
        sl_kafka_conf_free(s);
        return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    }
    return SL_OK;
}
