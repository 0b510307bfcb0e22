#include "cli/agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/http_metrics.h"
#include "cli/http_tap.h"
#include "collector/file.h"
#include "collector/journald.h"
#include "core/datadir.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"
#include "parsers/chain.h"
#include "shipper/buffer.h"
#include "shipper/filesink.h"
#include "shipper/kafka.h"
#include "shipper/loki.h"
#include "shipper/recjson.h"

#define MAX_INPUTS 64
#define MAX_SINKS  16

static const sl_input_ops *const input_types[] = {&sl_file_input_ops, &sl_journald_input_ops};
static const sl_sink_ops *const sink_types[] = {&sl_stdout_sink_ops, &sl_file_sink_ops,
                                                &sl_loki_sink_ops, &sl_kafka_sink_ops};

static const sl_cfg_key top_keys[] = {
    {"data_dir", SL_KEY_STR, false, NULL, false},
    {"metrics", SL_KEY_MAP, false, NULL, false},
    {"tap", SL_KEY_MAP, false, NULL, false},
    {"log", SL_KEY_MAP, false, NULL, false},
    {"shutdown_timeout", SL_KEY_DURATION, false, NULL, false},
    {"inputs", SL_KEY_SEQ, true, NULL, false},
    {"sinks", SL_KEY_SEQ, true, NULL, false},
    /* A development configuration: relative paths allowed (decision 0020). */
    {"dev", SL_KEY_BOOL, false, NULL, false},
};
static const sl_cfg_key metrics_keys[] = {
    {"listen", SL_KEY_STR, false, NULL, false},
    {"unhealthy_after", SL_KEY_DURATION, false, NULL, false},
};
/* `sluice tail`'s tap (cli/http_tap.h): off unless this section is present. */
static const sl_cfg_key tap_keys[] = {
    {"listen", SL_KEY_STR, false, NULL, false},
    {"token_file", SL_KEY_STR, false, NULL, false},
    {"token_env", SL_KEY_STR, false, NULL, false},
};
static const sl_cfg_key log_keys[] = {
    {"level", SL_KEY_ENUM, false, "debug|info|warn|error", false},
};
static const sl_cfg_key buffer_keys[] = {
    {"memory_max", SL_KEY_SIZE, false, NULL, false},
    {"spool_max", SL_KEY_SIZE, false, NULL, false},
    {"when_full", SL_KEY_ENUM, false, "block|drop_oldest", false},
    {"fsync", SL_KEY_ENUM, false, "always|batch|never", false},
    {"segment_bytes", SL_KEY_SIZE, false, NULL, false},
};

typedef struct sink_rt sink_rt;

typedef struct input_rt {
    sl_input_ctx ctx;
    const sl_input_ops *ops;
    void *state;
    sl_chain *chain;
    pthread_t thread;
    bool started;
    sink_rt *sinks[MAX_SINKS];
    int nsinks;
    struct sl_agent *agent;
} input_rt;

struct sink_rt {
    sl_sink_ctx ctx;
    const sl_sink_ops *ops;
    void *state;
    sl_buffer *buffer;
    pthread_t thread;
    bool started;
    atomic_bool done;
    sl_http_metrics *http;    /* liveness: told when run() returns unasked */
    atomic_bool *inputs_stop; /* sinks end on their own once inputs stop */
};

struct sl_agent {
    sl_cfg *cfg;
    sl_agent_opts opts;
    const char *data_dir;
    int64_t shutdown_ms;
    int64_t stop_deadline;
    atomic_bool inputs_stop;
    atomic_bool sinks_stop;
    input_rt inputs[MAX_INPUTS];
    int ninputs;
    sink_rt sinks[MAX_SINKS];
    int nsinks;
    pthread_mutex_t print_mu; /* dry-run output */
    sl_http_metrics *http;    /* NULL unless metrics.listen is set */
    sl_http_tap *tap;         /* NULL unless the tap section is present */
    sl_datadir *datadir;      /* the lock on data_dir; NULL in a dry run */
};

static const sl_input_ops *find_input(const char *type)
{
    for (size_t i = 0; i < sizeof input_types / sizeof *input_types; i++)
        if (strcmp(input_types[i]->type, type) == 0) return input_types[i];
    return NULL;
}

static const sl_sink_ops *find_sink(const char *type)
{
    for (size_t i = 0; i < sizeof sink_types / sizeof *sink_types; i++)
        if (strcmp(sink_types[i]->type, type) == 0) return sink_types[i];
    return NULL;
}

static const char *type_choices(bool inputs)
{
    return inputs ? "file|journald" : "stdout|file|loki|kafka";
}

/* Validates top-level keys and returns the inputs/sinks sequences. */
static void check_top(sl_cfg *cfg, const sl_cfg_node **inputs, const sl_cfg_node **sinks)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    sl_cfg_check(cfg, root, top_keys, sizeof top_keys / sizeof *top_keys);
    const sl_cfg_node *m = sl_cfg_get(root, "metrics");
    if (m) sl_cfg_check(cfg, m, metrics_keys, sizeof metrics_keys / sizeof *metrics_keys);
    const sl_cfg_node *t = sl_cfg_get(root, "tap");
    if (t && sl_cfg_check(cfg, t, tap_keys, sizeof tap_keys / sizeof *tap_keys) == 0)
        sl_http_tap_check_config(cfg, t);
    const sl_cfg_node *l = sl_cfg_get(root, "log");
    if (l) sl_cfg_check(cfg, l, log_keys, sizeof log_keys / sizeof *log_keys);
    *inputs = sl_cfg_get(root, "inputs");
    *sinks = sl_cfg_get(root, "sinks");
    if (*inputs && (*inputs)->kind != SL_CFG_SEQ) *inputs = NULL;
    if (*sinks && (*sinks)->kind != SL_CFG_SEQ) *sinks = NULL;
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
    if (!type) {
        sl_cfg_error(cfg, n, "missing required key 'type' (one of %s)", type_choices(input));
        return NULL;
    }
    if (input ? !find_input(type) : !find_sink(type)) {
        sl_cfg_error(cfg, sl_cfg_get(n, "type"), "unknown %s type '%s' (one of %s)",
                     input ? "input" : "sink", type, type_choices(input));
        return NULL;
    }
    return type;
}

static void check_buffer(sl_cfg *cfg, const sl_cfg_node *sink, sl_buffer_opts *o)
{
    const sl_cfg_node *b = sl_cfg_get(sink, "buffer");
    if (b) sl_cfg_check(cfg, b, buffer_keys, sizeof buffer_keys / sizeof *buffer_keys);
    /* 32 MiB: the whole agent stays under 64 MiB at full speed with a
     * sink slower than its input (docs/decisions/0013-memory-default.md). */
    sl_cfg_size(cfg, b, "memory_max", 32u << 20, &o->memory_max);
    sl_cfg_size(cfg, b, "spool_max", 0, &o->spool_max);
    sl_cfg_enum(cfg, b, "when_full", "block|drop_oldest", SL_WHEN_FULL_BLOCK, &o->when_full);
    sl_cfg_enum(cfg, b, "fsync", "always|batch|never", SL_SPOOL_FSYNC_BATCH, &o->fsync);
    sl_cfg_size(cfg, b, "segment_bytes", 0, &o->segment_bytes);
}

/* Routing: which sinks take which inputs, with unknown names reported. */
static void check_routes(sl_cfg *cfg, const sl_cfg_node *inputs, const sl_cfg_node *sinks)
{
    const char *names[MAX_INPUTS];
    size_t ninputs = 0;
    for (size_t i = 0; inputs && i < inputs->n && ninputs < MAX_INPUTS; i++) {
        const char *name = NULL;
        sl_cfg_str(cfg, inputs->items[i], "name", NULL, &name);
        if (!name) continue;
        for (size_t j = 0; j < ninputs; j++)
            if (strcmp(names[j], name) == 0)
                sl_cfg_error(cfg, inputs->items[i], "duplicate input name '%s'", name);
        names[ninputs++] = name;
    }
    for (size_t s = 0; sinks && s < sinks->n; s++) {
        const char *list[MAX_INPUTS];
        size_t n = 0;
        if (sinks->items[s]->kind != SL_CFG_MAP) continue;
        sl_cfg_list(cfg, sinks->items[s], "inputs", list, MAX_INPUTS, &n);
        for (size_t k = 0; k < n; k++) {
            bool found = false;
            for (size_t j = 0; j < ninputs; j++) found |= strcmp(names[j], list[k]) == 0;
            if (!found)
                sl_cfg_error(cfg, sl_cfg_get(sinks->items[s], "inputs"),
                             "sink takes unknown input '%s'", list[k]);
        }
    }
}

int sl_agent_check(sl_cfg *cfg)
{
    const sl_cfg_node *inputs, *sinks;
    check_top(cfg, &inputs, &sinks);
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
        find_input(type)->create(&ctx, &state, &err);
        sl_chain *chain = NULL;
        sl_chain_new(cfg, sl_cfg_get(inputs->items[i], "parse"), ctx.name, &chain);
        sl_chain_free(chain);
    }
    for (size_t i = 0; sinks && i < sinks->n; i++) {
        const char *name = NULL;
        const char *type = entry_type(cfg, sinks->items[i], &name, false, (int)i);
        if (!type) continue;
        sl_buffer_opts bo = {0};
        check_buffer(cfg, sinks->items[i], &bo);
        sl_sink_ctx ctx = {.name = name ? name : "?",
                           .cfg = cfg,
                           .node = sinks->items[i],
                           .data_dir = "/nonexistent",
                           .check_only = true,
                           .stop = &stop};
        void *state = NULL;
        sl_err err;
        find_sink(type)->create(&ctx, &state, &err);
        if (strcmp(type, "loki") == 0) sl_loki_check_labels(cfg, sinks->items[i], inputs);
        if (strcmp(type, "kafka") == 0) sl_kafka_check_key(cfg, sinks->items[i], inputs);
    }
    check_routes(cfg, inputs, sinks);
    return (int)sl_cfg_nerrors(cfg);
}

int sl_agent_probe(sl_cfg *cfg, FILE *out)
{
    const sl_cfg_node *sinks = sl_cfg_get(sl_cfg_root(cfg), "sinks");
    const char *data_dir = "/var/lib/sluice";
    sl_cfg_str(cfg, sl_cfg_root(cfg), "data_dir", data_dir, &data_dir);
    int failed = 0;
    for (size_t i = 0; sinks && i < sinks->n; i++) {
        const char *name = "?", *type = "?";
        sl_cfg_str(cfg, sinks->items[i], "name", "?", &name);
        sl_cfg_str(cfg, sinks->items[i], "type", "?", &type);
        const sl_sink_ops *ops = find_sink(type);
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
    return failed;
}

static bool sink_takes(sl_cfg *cfg, const sl_cfg_node *sink, const char *input)
{
    const char *list[MAX_INPUTS];
    size_t n = 0;
    if (!sl_cfg_get(sink, "inputs")) return true; /* default: every input */
    sl_cfg_list(cfg, sink, "inputs", list, MAX_INPUTS, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], input) == 0) return true;
    return false;
}

void sl_agent_describe(sl_cfg *cfg, FILE *out)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const sl_cfg_node *inputs = sl_cfg_get(root, "inputs"), *sinks = sl_cfg_get(root, "sinks");
    fprintf(out, "# pipeline\n");
    for (size_t i = 0; inputs && i < inputs->n; i++) {
        const char *name = "?", *type = "?";
        sl_cfg_str(cfg, inputs->items[i], "name", "?", &name);
        sl_cfg_str(cfg, inputs->items[i], "type", "?", &type);
        fprintf(out, "#   input %s (%s) ->", name, type);
        for (size_t s = 0; sinks && s < sinks->n; s++) {
            const char *sname = "?";
            sl_cfg_str(cfg, sinks->items[s], "name", "?", &sname);
            if (sink_takes(cfg, sinks->items[s], name)) fprintf(out, " %s", sname);
        }
        fprintf(out, "\n");
    }
    fprintf(out, "# resolved configuration\n");
    sl_cfg_dump(cfg, out);
}

static void print_dry_run(sl_agent *a, sl_batch *b)
{
    sl_buf out;
    sl_buf_init(&out, 0);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        if (b->records[i].flags & SL_RF_DROPPED) continue;
        sl_recjson_append(&out, b, &b->records[i], SL_RJ_ALL);
        sl_buf_putc(&out, '\n');
    }
    pthread_mutex_lock(&a->print_mu);
    if (!out.failed) fwrite(out.p, 1, out.len, stdout);
    fflush(stdout);
    pthread_mutex_unlock(&a->print_mu);
    sl_buf_free(&out);
}

/* Hands a parsed batch to every sink of the input (or prints it). */
static int deliver(input_rt *in, sl_batch *b)
{
    sl_agent *a = in->agent;
    /* `sluice tail`: a copy into a lossy ring, only while someone watches. */
    if (sl_http_tap_active(a->tap)) sl_http_tap_publish(a->tap, b);
    if (a->opts.dry_run) {
        print_dry_run(a, b);
        sl_batch_unref(b); /* never acknowledged: no checkpoint moves */
        return SL_OK;
    }
    if (in->nsinks == 0) {
        sl_batch_done(b);
        return SL_OK;
    }
    sl_batch_hold(b, in->nsinks - 1);
    int rc = SL_OK;
    for (int i = 0; i < in->nsinks; i++) {
        if (sl_buffer_push(in->sinks[i]->buffer, b) != SL_OK) {
            /* Shutting down: this copy was not taken, so it must not be
             * acknowledged; the checkpoint stays before it. */
            sl_batch_unref(b);
            rc = SL_ECLOSED;
        }
    }
    return rc;
}

/* Container messages whose last piece did not come in time, ahead of what
 * the input reads next. */
static int deliver_partials(input_rt *in)
{
    sl_batch *b;
    while ((b = sl_chain_take_partials(in->chain, sl_monotonic_ns())))
        if (deliver(in, b) != SL_OK) return SL_ECLOSED;
    return SL_OK;
}

/* The emit callback: runs on the input's thread. */
static int route(void *arg, sl_batch *b)
{
    input_rt *in = arg;
    if (deliver_partials(in) != SL_OK) {
        sl_batch_unref(b);
        return SL_ECLOSED;
    }
    sl_chain_run(in->chain, b);
    return deliver(in, b);
}

/* The idle callback: the input has nothing to read. */
static int route_idle(void *arg)
{
    return deliver_partials(arg);
}

static void *input_thread(void *arg)
{
    input_rt *in = arg;
    in->ops->run(in->state);
    if (!atomic_load(&in->agent->inputs_stop))
        sl_http_metrics_thread_died(in->agent->http, in->ctx.name);
    return NULL;
}

static void *sink_thread(void *arg)
{
    sink_rt *s = arg;
    s->ops->run(s->state);
    if (!atomic_load(s->ctx.stop) && !atomic_load(s->inputs_stop))
        sl_http_metrics_thread_died(s->http, s->ctx.name);
    atomic_store(&s->done, true);
    return NULL;
}

/* Delivered records of one sink, from the counter every sink keeps. */
static int64_t sink_delivered(const sink_rt *s)
{
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", s->ctx.name ? s->ctx.name : "", NULL, NULL);
    return sl_metrics_value("sluice_sink_records_total", labels);
}

/* Joins a sink's thread, waiting at most until deadline (monotonic ns).
 * False when it is still running then: stuck in a call no flag reaches (a
 * write to a hung file system); it is left behind and the process exits
 * without it. */
static bool join_sink(sink_rt *s, int64_t deadline)
{
    while (!atomic_load(&s->done) && sl_monotonic_ns() < deadline) usleep(5000);
    if (!atomic_load(&s->done)) return false;
    pthread_join(s->thread, NULL);
    return true;
}

/* Sinks are told to stop a little before the deadline and get STOP_JOIN_MS
 * from then (at most until STOP_GRACE_MS past the deadline) to give back
 * what they hold: an HTTP request stalled in flight notices the stop only
 * at curl's next progress call, which comes about once a second when
 * nothing moves. The whole shutdown stays within shutdown_timeout + 1 s
 * whatever the destinations do; the last 300 ms or more are for the spool
 * to take what memory holds and for the checkpoints. */
#define STOP_EARLY_MS 1000
#define STOP_JOIN_MS  1300
#define STOP_GRACE_MS 700

static void teardown(sl_agent *a)
{
    /* The deadline counts from the stop request, inputs included. */
    int64_t t0 = sl_monotonic_ns();
    a->stop_deadline = t0 + a->shutdown_ms * 1000000;
    int64_t delivered0[MAX_SINKS];
    for (int i = 0; i < a->nsinks; i++) delivered0[i] = sink_delivered(&a->sinks[i]);
    /* The inputs' side first: an input blocked in a push to a full buffer
     * (destination down) returns at once instead of waiting for room that
     * only delivery would make. What it did not push is not acknowledged,
     * so its checkpoint stays before it. */
    atomic_store(&a->inputs_stop, true);
    for (int i = 0; i < a->nsinks; i++)
        if (a->sinks[i].buffer) sl_buffer_close(a->sinks[i].buffer);
    for (int i = 0; i < a->ninputs; i++)
        if (a->inputs[i].started) pthread_join(a->inputs[i].thread, NULL);
    sl_http_tap_stop(a->tap); /* nothing publishes any more */
    /* Sinks drain what they hold until the deadline, then are told to stop;
     * what they could not deliver goes back to the buffer, which spools it
     * (when there is a spool) or leaves it unacknowledged to be read again. */
    int64_t early = a->shutdown_ms / 2 < STOP_EARLY_MS ? a->shutdown_ms / 2 : STOP_EARLY_MS;
    int64_t deadline = a->stop_deadline - early * 1000000;
    for (;;) {
        bool all = true;
        for (int i = 0; i < a->nsinks; i++)
            if (a->sinks[i].started && !atomic_load(&a->sinks[i].done)) all = false;
        if (all || sl_monotonic_ns() >= deadline) break;
        usleep(10000);
    }
    int64_t stopped_at = sl_monotonic_ns();
    bool timed_out = stopped_at >= deadline;
    atomic_store(&a->sinks_stop, true);
    int64_t join_by = stopped_at + STOP_JOIN_MS * 1000000LL;
    if (join_by > a->stop_deadline + STOP_GRACE_MS * 1000000LL)
        join_by = a->stop_deadline + STOP_GRACE_MS * 1000000LL;
    int stuck = 0;
    for (int i = 0; i < a->nsinks; i++)
        if (a->sinks[i].started && !join_sink(&a->sinks[i], join_by)) {
            stuck++;
            sl_log(SL_LOG_ERROR, "sink_stop_stuck",
                   "sink=%s action=exit_without_it detail=\"what it holds is read again after "
                   "the restart\"",
                   a->sinks[i].ctx.name);
        }
    if (stuck) {
        /* A stuck sink thread still uses its buffer and the inputs'
         * watermarks: free nothing; checkpoints stay where the inputs last
         * saved them, as after a kill (at least once holds). */
        sl_log(SL_LOG_WARN, "agent_shutdown",
               "delivered=? spooled=0 left=? stuck_sinks=%d elapsed_ms=%lld timed_out=1", stuck,
               (long long)((sl_monotonic_ns() - t0) / 1000000));
        return;
    }
    uint64_t delivered = 0, spooled = 0, left = 0;
    for (int i = 0; i < a->nsinks; i++) {
        if (a->sinks[i].state) a->sinks[i].ops->destroy(a->sinks[i].state);
        sl_buffer_leftover lo;
        sl_buffer_free_counted(a->sinks[i].buffer, &lo);
        int64_t d = sink_delivered(&a->sinks[i]) - delivered0[i];
        delivered += d > 0 ? (uint64_t)d : 0;
        spooled += lo.spooled_records;
        left += lo.left_records;
    }
    /* Last: inputs save checkpoints now that every ack has arrived. */
    for (int i = 0; i < a->ninputs; i++)
        if (a->inputs[i].state) a->inputs[i].ops->destroy(a->inputs[i].state);
    for (int i = 0; i < a->ninputs; i++) sl_chain_free(a->inputs[i].chain);
    if (a->nsinks)
        sl_log(timed_out ? SL_LOG_WARN : SL_LOG_INFO, "agent_shutdown",
               "delivered=%llu spooled=%llu left=%llu elapsed_ms=%lld timed_out=%d",
               (unsigned long long)delivered, (unsigned long long)spooled, (unsigned long long)left,
               (long long)((sl_monotonic_ns() - t0) / 1000000), timed_out);
    /* Last, so /metrics shows the drain until the end. */
    sl_http_metrics_stop(a->http);
    sl_datadir_close(a->datadir); /* after the last checkpoint is saved */
    pthread_mutex_destroy(&a->print_mu);
    free(a);
}

int sl_agent_start(sl_cfg *cfg, const sl_agent_opts *o, sl_agent **out, sl_err *err)
{
    if (sl_cfg_nerrors(cfg) != 0)
        return sl_errf(err, SL_EINVAL, "configuration has %zu error(s)", sl_cfg_nerrors(cfg));
    sl_agent *a = calloc(1, sizeof *a);
    if (!a) return sl_errf(err, SL_ENOMEM, "out of memory");
    a->cfg = cfg;
    a->opts = *o;
    pthread_mutex_init(&a->print_mu, NULL);
    const sl_cfg_node *root = sl_cfg_root(cfg);
    sl_cfg_str(cfg, root, "data_dir", "/var/lib/sluice", &a->data_dir);
    sl_cfg_duration_ms(cfg, root, "shutdown_timeout", 10000, &a->shutdown_ms);
    const char *level = "info";
    sl_cfg_str(cfg, sl_cfg_get(root, "log"), "level", "info", &level);
    sl_log_set_level(sl_log_level_from_name(level));
    /* One agent per data_dir, and one nobody else can write to; a dry run
     * writes nothing under data_dir, not even the directory. */
    int rc = o->dry_run ? SL_OK : sl_datadir_open(a->data_dir, &a->datadir, err);
    if (rc != SL_OK) goto fail;
    const char *mlisten = NULL;
    int64_t unhealthy_ms = 60000;
    const sl_cfg_node *mn = sl_cfg_get(root, "metrics");
    sl_cfg_str(cfg, mn, "listen", NULL, &mlisten);
    sl_cfg_duration_ms(cfg, mn, "unhealthy_after", 60000, &unhealthy_ms);
    if (mlisten && *mlisten && !o->dry_run &&
        (rc = sl_http_metrics_start(mlisten, unhealthy_ms, &a->http, err)) != SL_OK)
        goto fail;
    const sl_cfg_node *tn = sl_cfg_get(root, "tap");
    if (tn && !o->dry_run) {
        sl_http_tap_opts to = {0};
        char *token = NULL;
        rc = sl_http_tap_settings(cfg, tn, &to.listen, &token, err);
        to.token = token;
        if (rc == SL_OK) rc = sl_http_tap_start(&to, &a->tap, err);
        free(token);
        if (rc != SL_OK) goto fail;
    }

    const sl_cfg_node *inputs = sl_cfg_get(root, "inputs"), *sinks = sl_cfg_get(root, "sinks");
    for (size_t i = 0; i < sinks->n && !o->dry_run; i++) {
        if (a->nsinks == MAX_SINKS) {
            rc = sl_errf(err, SL_EINVAL, "more than %d sinks", MAX_SINKS);
            goto fail;
        }
        sink_rt *s = &a->sinks[a->nsinks++];
        const sl_cfg_node *n = sinks->items[i];
        const char *type = NULL;
        sl_cfg_str(cfg, n, "name", NULL, &s->ctx.name);
        sl_cfg_str(cfg, n, "type", NULL, &type);
        s->ops = find_sink(type);
        sl_buffer_opts bo = {.sink = s->ctx.name};
        check_buffer(cfg, n, &bo);
        char spool_dir[4096];
        snprintf(spool_dir, sizeof spool_dir, "%s/spool/%s", a->data_dir, s->ctx.name);
        bo.spool_dir = spool_dir;
        if ((rc = sl_buffer_new(&bo, &s->buffer, err)) != SL_OK) goto fail;
        s->ctx.cfg = cfg;
        s->ctx.node = n;
        s->ctx.data_dir = a->data_dir;
        s->ctx.buffer = s->buffer;
        s->ctx.stop = &a->sinks_stop;
        s->http = a->http;
        s->inputs_stop = &a->inputs_stop;
        if ((rc = s->ops->create(&s->ctx, &s->state, err)) != SL_OK) goto fail;
    }
    for (size_t i = 0; i < inputs->n; i++) {
        if (a->ninputs == MAX_INPUTS) {
            rc = sl_errf(err, SL_EINVAL, "more than %d inputs", MAX_INPUTS);
            goto fail;
        }
        input_rt *in = &a->inputs[a->ninputs++];
        const sl_cfg_node *n = inputs->items[i];
        const char *type = NULL;
        sl_cfg_str(cfg, n, "name", NULL, &in->ctx.name);
        sl_cfg_str(cfg, n, "type", NULL, &type);
        in->ops = find_input(type);
        in->agent = a;
        for (int s = 0; s < a->nsinks; s++)
            if (sink_takes(cfg, sinks->items[s], in->ctx.name))
                in->sinks[in->nsinks++] = &a->sinks[s];
        in->ctx.cfg = cfg;
        in->ctx.node = n;
        in->ctx.data_dir = a->data_dir;
        in->ctx.dry_run = o->dry_run;
        in->ctx.emit = route;
        in->ctx.idle = route_idle;
        in->ctx.emit_arg = in;
        in->ctx.stop = &a->inputs_stop;
        if (sl_chain_new(cfg, sl_cfg_get(n, "parse"), in->ctx.name, &in->chain) != 0) {
            rc = sl_errf(err, SL_EINVAL, "input %s: invalid parse steps", in->ctx.name);
            goto fail;
        }
        if ((rc = in->ops->create(&in->ctx, &in->state, err)) != SL_OK) goto fail;
    }
    for (int i = 0; i < a->nsinks; i++) {
        if (pthread_create(&a->sinks[i].thread, NULL, sink_thread, &a->sinks[i]) != 0) {
            rc = sl_errf(err, SL_ENOMEM, "cannot start sink thread");
            goto fail;
        }
        a->sinks[i].started = true;
    }
    for (int i = 0; i < a->ninputs; i++) {
        if (pthread_create(&a->inputs[i].thread, NULL, input_thread, &a->inputs[i]) != 0) {
            rc = sl_errf(err, SL_ENOMEM, "cannot start input thread");
            goto fail;
        }
        a->inputs[i].started = true;
    }
    sl_http_metrics_set_started(a->http);
    sl_log(SL_LOG_INFO, "agent_started", "inputs=%d sinks=%d data_dir=%s dry_run=%d", a->ninputs,
           a->nsinks, a->data_dir, o->dry_run);
    *out = a;
    return SL_OK;
fail:
    teardown(a);
    return rc;
}

void sl_agent_stop(sl_agent *a)
{
    if (!a) return;
    teardown(a);
    sl_log(SL_LOG_INFO, "agent_stopped", "%s", "");
}
