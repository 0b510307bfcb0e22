/* `sluice check` for the Kafka sink: where every record of an input would
 * meet one partition (decision 0018). Reads the configuration tree only. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/redact.h"
#include "shipper/kafka.h"
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
