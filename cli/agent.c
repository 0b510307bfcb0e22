/* The CLI's side of the running agent: the top-level sections that are the
 * process's (metrics, tap, log, the data_dir lock), and the hooks through
 * which the pipeline (pipeline/) feeds the tail tap, the dry-run printer and
 * /healthz. Inputs, sinks, routing and teardown are the pipeline's. */
#include "cli/agent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli/http_metrics.h"
#include "cli/http_tap.h"
#include "core/datadir.h"
#include "core/log.h"
#include "pipeline/pipeline.h"
#include "shipper/recjson.h"

/* What sl_cfg_read fills from the tables below: each default is written
 * once, in its table. The sections themselves (`tap:` with nothing after
 * it still turns the tap on) are looked up with sl_cfg_get. */
typedef struct metrics_conf {
    const char *listen;
    int64_t unhealthy_ms;
} metrics_conf;
typedef struct tap_conf {
    const char *listen, *token_file, *token_env;
} tap_conf;
typedef struct log_conf {
    int level; /* index in "debug|info|warn|error", which is SL_LOG_* order */
} log_conf;
typedef struct top_conf {
    const char *data_dir;
    int64_t shutdown_ms;
    bool dev;
} top_conf;

static const sl_cfg_key metrics_keys[] = {
    {.name = "listen",
     .at = SL_CFG_AT(metrics_conf, listen),
     .type = SL_KEY_STR,
     .doc = "address for `/metrics`, `/healthz` (liveness) and `/readyz` (readiness); off when "
            "absent (see Security)"},
    {.name = "unhealthy_after",
     .at = SL_CFG_AT(metrics_conf, unhealthy_ms),
     .type = SL_KEY_DURATION,
     .def = "1m",
     .doc =
         "`/readyz` answers 503 once a sink has failed for longer than this (`/healthz` does not)"},
};
/* `sluice tail`'s tap (cli/http_tap.h): off unless this section is present. */
static const sl_cfg_key tap_keys[] = {
    {.name = "listen",
     .at = SL_CFG_AT(tap_conf, listen),
     .type = SL_KEY_STR,
     .def = SL_TAP_DEFAULT_LISTEN, /* also the tap's own, without a configuration */
     .doc = "address of the tap for `sluice tail`"},
    {.name = "token_file",
     .at = SL_CFG_AT(tap_conf, token_file),
     .type = SL_KEY_STR,
     .doc = "file holding the tap's bearer token (one of `token_file`, `token_env` is required)"},
    {.name = "token_env",
     .at = SL_CFG_AT(tap_conf, token_env),
     .type = SL_KEY_STR,
     .doc = "name of an environment variable holding the tap's bearer token"},
};
static const sl_cfg_key log_keys[] = {
    {.name = "level",
     .at = SL_CFG_AT(log_conf, level),
     .type = SL_KEY_ENUM,
     .choices = "debug|info|warn|error",
     .def = "info",
     .doc = "`debug`, `info`, `warn`, `error`; one logfmt line per event on stderr"},
};
static const sl_cfg_key top_keys[] = {
    {.name = "data_dir",
     .at = SL_CFG_AT(top_conf, data_dir),
     .type = SL_KEY_STR,
     .def = "/var/lib/sluice",
     .doc = "checkpoints and spools (created 0700); absolute; one agent per `data_dir`, which must "
            "be the agent's own and not group/world-writable (see Security)"},
    {.name = "metrics",
     .type = SL_KEY_MAP,
     .sub = metrics_keys,
     .nsub = SL_CFG_NKEYS(metrics_keys),
     .doc = "the `/metrics`, `/healthz` and `/readyz` endpoint"},
    {.name = "tap",
     .type = SL_KEY_MAP,
     .sub = tap_keys,
     .nsub = SL_CFG_NKEYS(tap_keys),
     .doc = "the tap for `sluice tail`; off unless this section is present"},
    {.name = "log",
     .type = SL_KEY_MAP,
     .sub = log_keys,
     .nsub = SL_CFG_NKEYS(log_keys),
     .doc = "the agent's own log"},
    {.name = "shutdown_timeout",
     .at = SL_CFG_AT(top_conf, shutdown_ms),
     .type = SL_KEY_DURATION,
     .def = "10s",
     .doc = "how long SIGTERM lets sinks drain (the process exits within it + 1 s)"},
    {.name = "inputs", .type = SL_KEY_SEQ, .required = true, .doc = "list of inputs"},
    {.name = "sinks", .type = SL_KEY_SEQ, .required = true, .doc = "list of sinks"},
    /* A development configuration: relative paths allowed (decision 0020). */
    {.name = "dev",
     .at = SL_CFG_AT(top_conf, dev),
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "a development configuration: relative paths allowed, refused by `check --service` and "
            "deploy.sh"},
};
struct sl_agent {
    sl_agent_opts opts;
    sl_pipeline *pipeline;
    pthread_mutex_t print_mu; /* dry-run output */
    sl_http_metrics *http;    /* NULL unless metrics.listen is set */
    sl_http_tap *tap;         /* NULL unless the tap section is present */
    sl_datadir *datadir;      /* the lock on data_dir; NULL in a dry run */
};

typedef struct agent_conf {
    top_conf top;
    metrics_conf metrics;
    tap_conf tap;
    log_conf log;
} agent_conf;

/* The top-level keys and the process's sections, with the tables'
 * defaults. Returns the number of errors recorded. */
static int read_conf(sl_cfg *cfg, agent_conf *ac)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, root, top_keys, SL_CFG_NKEYS(top_keys), &ac->top);
    sl_cfg_read(cfg, sl_cfg_get(root, "metrics"), metrics_keys, SL_CFG_NKEYS(metrics_keys),
                &ac->metrics);
    const sl_cfg_node *t = sl_cfg_get(root, "tap");
    if (sl_cfg_read(cfg, t, tap_keys, SL_CFG_NKEYS(tap_keys), &ac->tap) == 0 && t)
        sl_http_tap_check_config(cfg, t);
    sl_cfg_read(cfg, sl_cfg_get(root, "log"), log_keys, SL_CFG_NKEYS(log_keys), &ac->log);
    return (int)(sl_cfg_nerrors(cfg) - before);
}

/* Validates top-level keys and returns the inputs/sinks sequences. */
static void check_top(sl_cfg *cfg, const sl_cfg_node **inputs, const sl_cfg_node **sinks)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    agent_conf ac;
    read_conf(cfg, &ac);
    *inputs = sl_cfg_get(root, "inputs");
    *sinks = sl_cfg_get(root, "sinks");
    if (*inputs && (*inputs)->kind != SL_CFG_SEQ) *inputs = NULL;
    if (*sinks && (*sinks)->kind != SL_CFG_SEQ) *sinks = NULL;
}

const char *sl_agent_data_dir(sl_cfg *cfg)
{
    const sl_cfg_key *k = &top_keys[0];
    while (strcmp(k->name, "data_dir") != 0) k++; /* in the table */
    const char *dd = NULL;
    sl_err err;
    sl_cfg_key_default(k, &dd, &err); /* a string: cannot fail */
    sl_cfg_str(cfg, sl_cfg_root(cfg), k->name, dd, &dd);
    return dd;
}

const sl_cfg_key *sl_agent_keys(size_t *n)
{
    *n = SL_CFG_NKEYS(top_keys);
    return top_keys;
}

int sl_agent_check(sl_cfg *cfg)
{
    const sl_cfg_node *inputs, *sinks;
    check_top(cfg, &inputs, &sinks);
    return sl_pipeline_check(cfg);
}

int sl_agent_probe(sl_cfg *cfg, FILE *out)
{
    agent_conf ac;
    read_conf(cfg, &ac);
    return sl_pipeline_probe(cfg, ac.top.data_dir, out);
}

void sl_agent_describe(sl_cfg *cfg, FILE *out)
{
    fprintf(out, "# pipeline\n");
    sl_pipeline_describe(cfg, out);
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

/* Every parsed batch, on its input's thread. */
static void observe(void *arg, sl_batch *b)
{
    sl_agent *a = arg;
    /* `sluice tail`: a copy into a lossy ring, only while someone watches. */
    if (sl_http_tap_active(a->tap)) sl_http_tap_publish(a->tap, b);
    if (a->opts.dry_run) print_dry_run(a, b);
}

static void thread_died(void *arg, const char *name)
{
    sl_agent *a = arg;
    sl_http_metrics_thread_died(a->http, name);
}

static void inputs_stopped(void *arg)
{
    sl_agent *a = arg;
    sl_http_tap_stop(a->tap);
    a->tap = NULL;
}

/* After the pipeline: /metrics shows the drain until the end, and data_dir
 * stays locked until the last checkpoint is saved. */
static void release(sl_agent *a)
{
    sl_http_tap_stop(a->tap);
    sl_http_metrics_stop(a->http);
    sl_datadir_close(a->datadir);
    pthread_mutex_destroy(&a->print_mu);
    free(a);
}

int sl_agent_start(sl_cfg *cfg, const sl_agent_opts *o, sl_agent **out, sl_err *err)
{
    if (sl_cfg_nerrors(cfg) != 0)
        return sl_errf(err, SL_EINVAL, "configuration has %zu error(s)", sl_cfg_nerrors(cfg));
    sl_agent *a = calloc(1, sizeof *a);
    if (!a) return sl_errf(err, SL_ENOMEM, "out of memory");
    a->opts = *o;
    pthread_mutex_init(&a->print_mu, NULL);
    const sl_cfg_node *root = sl_cfg_root(cfg);
    agent_conf ac;
    read_conf(cfg, &ac); /* checked: no error */
    sl_log_set_level(ac.log.level);
    /* One agent per data_dir, and one nobody else can write to; a dry run
     * writes nothing under data_dir, not even the directory. */
    int rc = o->dry_run ? SL_OK : sl_datadir_open(ac.top.data_dir, &a->datadir, err);
    if (rc != SL_OK) goto fail;
    const char *mlisten = ac.metrics.listen;
    if (mlisten && *mlisten && !o->dry_run &&
        (rc = sl_http_metrics_start(mlisten, ac.metrics.unhealthy_ms, &a->http, err)) != SL_OK)
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
    sl_pipeline_opts po = {.dry_run = o->dry_run,
                           .data_dir = ac.top.data_dir,
                           .shutdown_ms = ac.top.shutdown_ms,
                           .hooks = {.observe = observe,
                                     .thread_died = thread_died,
                                     .inputs_stopped = inputs_stopped,
                                     .arg = a}};
    if ((rc = sl_pipeline_start(cfg, &po, &a->pipeline, err)) != SL_OK) goto fail;
    sl_http_metrics_set_started(a->http);
    *out = a;
    return SL_OK;
fail:
    release(a);
    return rc;
}

void sl_agent_stop(sl_agent *a)
{
    if (!a) return;
    /* Stuck sink threads still use what the agent holds: leave it all to
     * the process's exit (checkpoints stay where the inputs last saved
     * them, as after a kill). */
    if (sl_pipeline_stop(a->pipeline) == 0) release(a);
    sl_log(SL_LOG_INFO, "agent_stopped", "%s", "");
}
