/* `sluice check` of the pipeline: every input with its parse steps, every
 * sink with its buffer, and the routing between them; `--connect` probes and
 * the printed pipeline. Errors collect in the configuration, with positions. */
#include <stdatomic.h>
#include <string.h>

#include "pipeline/internal.h"
#include "shipper/kafka.h"

/* Read by sl_cfg_read into sl_buffer_opts: the enums' choices are in the
 * order of enum sl_when_full and enum sl_spool_fsync. */
static const sl_cfg_key buffer_keys[] = {
    /* 16 MiB: the whole agent stays under 64 MiB at full speed with a
     * sink slower than its input, Loki and JSON out included (decisions
     * 0013 and 0043: at 32 MiB those peaked at 66-85 MiB). */
    {.name = "memory_max",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(sl_buffer_opts, memory_max),
     .def = "16MiB",
     .doc = "memory held by queued batches (record text, records, parsed fields)"},
    {.name = "spool_max",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(sl_buffer_opts, spool_max),
     .def = "0",
     .doc = "disk spool in `data_dir/spool/<sink>/` once memory is full; `0`: no spool"},
    {.name = "when_full",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(sl_buffer_opts, when_full),
     .choices = "block|drop_oldest",
     .def = "block",
     .doc = "when the spool is full: `block` the inputs, or `drop_oldest` (counted)"},
    {.name = "fsync",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(sl_buffer_opts, fsync),
     .choices = "always|batch|never",
     .def = "batch",
     .doc = "spool durability: `always`, `batch`, `never`"},
    {.name = "segment_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(sl_buffer_opts, segment_bytes),
     .doc = "spool segment size; 64MiB, or `spool_max`/8 when that is smaller, when absent"},
};

_Static_assert(SL_WHEN_FULL_BLOCK == 0 && SL_WHEN_FULL_DROP_OLDEST == 1,
               "buffer_keys' when_full choices follow enum sl_when_full");
_Static_assert(SL_SPOOL_FSYNC_ALWAYS == 0 && SL_SPOOL_FSYNC_BATCH == 1 && SL_SPOOL_FSYNC_NEVER == 2,
               "buffer_keys' fsync choices follow enum sl_spool_fsync");

const sl_cfg_key *sl_pipeline_buffer_keys(size_t *n)
{
    *n = SL_CFG_NKEYS(buffer_keys);
    return buffer_keys;
}

/* A name becomes a file name (an input's checkpoint, a sink's spool
 * folder), a metric label and a log field: one that climbs out of its
 * folder ("..", "a/b") would have root write there, and control bytes
 * would forge log lines. So: 1 to 200 bytes, no '/', no byte below 0x20
 * or 0x7f, not "." or "..". */
static const char *name_problem(const char *name)
{
    size_t n = strlen(name);
    if (n == 0) return "is empty";
    if (n > 200) return "is longer than 200 bytes";
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return "is '.' or '..'";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/') return "holds a '/'";
        if (c < 0x20 || c == 0x7f) return "holds a control character";
    }
    return NULL;
}

/* Name and type of one input/sink entry; NULL type when unusable. */
static const char *entry_type(sl_cfg *cfg, const sl_cfg_node *n, const char **name, bool input,
                              int index)
{
    if (n->kind != SL_CFG_MAP) {
        sl_cfg_error(cfg, n, "%s %d must be a map", input ? "input" : "sink", index);
        return NULL;
    }
    const char *type = NULL;
    sl_cfg_str(cfg, n, "name", NULL, name);
    sl_cfg_str(cfg, n, "type", NULL, &type);
    if (!*name) sl_cfg_error(cfg, n, "missing required key 'name'");
    const char *bad = *name ? name_problem(*name) : NULL;
    if (bad) {
        /* It names a file: refused here, so no part of the agent uses it. */
        sl_cfg_error(cfg, sl_cfg_get(n, "name"),
                     "%s name %s: it names a file under data_dir (1-200 bytes, no '/', no "
                     "control character, not '.' or '..')",
                     input ? "input" : "sink", bad);
        *name = NULL;
    }
    if (!type) {
        sl_cfg_error(cfg, n, "missing required key 'type' (one of %s)", sl_registry_choices(input));
        return NULL;
    }
    if (input ? !sl_registry_input(type) : !sl_registry_sink(type)) {
        sl_cfg_error(cfg, sl_cfg_get(n, "type"), "unknown %s type '%s' (one of %s)",
                     input ? "input" : "sink", type, sl_registry_choices(input));
        return NULL;
    }
    return type;
}

void sl_pipeline_buffer_opts(sl_cfg *cfg, const sl_cfg_node *sink, sl_buffer_opts *o)
{
    sl_cfg_read(cfg, sl_cfg_get(sink, "buffer"), buffer_keys, SL_CFG_NKEYS(buffer_keys), o);
}

/* Routing: which sinks take which inputs, with unknown names reported. */
static void check_routes(sl_cfg *cfg, const sl_cfg_node *inputs, const sl_cfg_node *sinks)
{
    const char *names[SL_PIPELINE_MAX_INPUTS];
    size_t ninputs = 0;
    for (size_t i = 0; inputs && i < inputs->n && ninputs < SL_PIPELINE_MAX_INPUTS; i++) {
        const char *name = NULL;
        sl_cfg_str(cfg, inputs->items[i], "name", NULL, &name);
        if (!name) continue;
        for (size_t j = 0; j < ninputs; j++)
            if (strcmp(names[j], name) == 0)
                sl_cfg_error(cfg, inputs->items[i], "duplicate input name '%s'", name);
        names[ninputs++] = name;
    }
    for (size_t s = 0; sinks && s < sinks->n; s++) {
        const char *list[SL_PIPELINE_MAX_INPUTS];
        size_t n = 0;
        if (sinks->items[s]->kind != SL_CFG_MAP) continue;
        sl_cfg_list(cfg, sinks->items[s], "inputs", list, SL_PIPELINE_MAX_INPUTS, &n);
        for (size_t k = 0; k < n; k++) {
            bool found = false;
            for (size_t j = 0; j < ninputs; j++) found |= strcmp(names[j], list[k]) == 0;
            if (!found)
                sl_cfg_error(cfg, sl_cfg_get(sinks->items[s], "inputs"),
                             "sink takes unknown input '%s'", list[k]);
        }
    }
}

static const sl_cfg_node *seq_at(sl_cfg *cfg, const char *key)
{
    const sl_cfg_node *n = sl_cfg_get(sl_cfg_root(cfg), key);
    return n && n->kind == SL_CFG_SEQ ? n : NULL;
}

int sl_pipeline_check(sl_cfg *cfg)
{
    const sl_cfg_node *inputs = seq_at(cfg, "inputs"), *sinks = seq_at(cfg, "sinks");
    atomic_bool stop = false;
    for (size_t i = 0; inputs && i < inputs->n; i++) {
        const char *name = NULL;
        const char *type = entry_type(cfg, inputs->items[i], &name, true, (int)i);
        if (!type) continue;
        sl_input_ctx ctx = {.name = name ? name : "?",
                            .cfg = cfg,
                            .node = inputs->items[i],
                            .data_dir = "/nonexistent",
                            .check_only = true,
                            .stop = &stop};
        void *state = NULL;
        sl_err err;
        sl_registry_input(type)->create(&ctx, &state, &err);
        sl_chain *chain = NULL;
        sl_chain_new(cfg, sl_cfg_get(inputs->items[i], "parse"), ctx.name, &chain);
        sl_chain_free(chain);
    }
    for (size_t i = 0; sinks && i < sinks->n; i++) {
        const char *name = NULL;
        const char *type = entry_type(cfg, sinks->items[i], &name, false, (int)i);
        if (!type) continue;
        sl_buffer_opts bo = {0};
        sl_pipeline_buffer_opts(cfg, sinks->items[i], &bo);
        sl_sink_ctx ctx = {.name = name ? name : "?",
                           .cfg = cfg,
                           .node = sinks->items[i],
                           .data_dir = "/nonexistent",
                           .check_only = true,
                           .stop = &stop};
        void *state = NULL;
        sl_err err;
        const sl_sink_ops *ops = sl_registry_sink(type);
        ops->create(&ctx, &state, &err);
        if (ops->check_inputs) ops->check_inputs(cfg, sinks->items[i], inputs);
    }
    check_routes(cfg, inputs, sinks);
    return (int)sl_cfg_nerrors(cfg);
}

int sl_pipeline_probe(sl_cfg *cfg, const char *data_dir, FILE *out)
{
    const sl_cfg_node *sinks = sl_cfg_get(sl_cfg_root(cfg), "sinks");
    int failed = 0;
    for (size_t i = 0; sinks && i < sinks->n; i++) {
        const char *name = "?", *type = "?";
        sl_cfg_str(cfg, sinks->items[i], "name", "?", &name);
        sl_cfg_str(cfg, sinks->items[i], "type", "?", &type);
        const sl_sink_ops *ops = sl_registry_sink(type);
        sl_err res = {0};
        int rc = SL_OK;
        if (!ops || !ops->probe) {
            sl_errf(&res, SL_OK, "nothing to ask");
        } else {
            /* A memory-only buffer: a probe never spools nor sends a record. */
            sl_buffer *buf = NULL;
            sl_buffer_opts bo = {.sink = name, .memory_max = 1u << 20};
            atomic_bool stop = false;
            rc = sl_buffer_new(&bo, &buf, &res);
            if (rc == SL_OK) {
                sl_sink_ctx ctx = {.name = name,
                                   .cfg = cfg,
                                   .node = sinks->items[i],
                                   .data_dir = data_dir,
                                   .buffer = buf,
                                   .stop = &stop};
                rc = ops->probe(&ctx, &res);
            }
            sl_buffer_free(buf);
        }
        fprintf(out, "connect %s (%s): %s: %s\n", name, type, rc == SL_OK ? "ok" : "FAILED",
                res.msg);
        failed += rc != SL_OK;
    }
    /* Inputs that dial out: an aggregator's Kafka group reads from brokers
     * as a sink writes to them, and fails for the same reasons. Listeners
     * (syslog, loki_push) have no one to ask. */
    static const struct {
        const char *type;
        int (*probe)(sl_cfg *cfg, const sl_cfg_node *input, sl_err *result);
    } input_probes[] = {{"kafka", sl_kafka_input_probe}};
    const sl_cfg_node *inputs = sl_cfg_get(sl_cfg_root(cfg), "inputs");
    for (size_t i = 0; inputs && i < inputs->n; i++) {
        const char *name = "?", *type = "?";
        sl_cfg_str(cfg, inputs->items[i], "name", "?", &name);
        sl_cfg_str(cfg, inputs->items[i], "type", "?", &type);
        for (size_t k = 0; k < sizeof input_probes / sizeof *input_probes; k++) {
            if (strcmp(type, input_probes[k].type) != 0) continue;
            sl_err res = {0};
            int rc = input_probes[k].probe(cfg, inputs->items[i], &res);
            fprintf(out, "connect input %s (%s): %s: %s\n", name, type,
                    rc == SL_OK ? "ok" : "FAILED", res.msg);
            failed += rc != SL_OK;
        }
    }
    return failed;
}

bool sl_pipeline_sink_takes(sl_cfg *cfg, const sl_cfg_node *sink, const char *input)
{
    const char *list[SL_PIPELINE_MAX_INPUTS];
    size_t n = 0;
    if (!sl_cfg_get(sink, "inputs")) return true; /* default: every input */
    sl_cfg_list(cfg, sink, "inputs", list, SL_PIPELINE_MAX_INPUTS, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], input) == 0) return true;
    return false;
}

void sl_pipeline_describe(sl_cfg *cfg, FILE *out)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const sl_cfg_node *inputs = sl_cfg_get(root, "inputs"), *sinks = sl_cfg_get(root, "sinks");
    for (size_t i = 0; inputs && i < inputs->n; i++) {
        const char *name = "?", *type = "?";
        sl_cfg_str(cfg, inputs->items[i], "name", "?", &name);
        sl_cfg_str(cfg, inputs->items[i], "type", "?", &type);
        fprintf(out, "#   input %s (%s) ->", name, type);
        for (size_t s = 0; sinks && s < sinks->n; s++) {
            const char *sname = "?";
            sl_cfg_str(cfg, sinks->items[s], "name", "?", &sname);
            if (sl_pipeline_sink_takes(cfg, sinks->items[s], name)) fprintf(out, " %s", sname);
        }
        fprintf(out, "\n");
    }
}
