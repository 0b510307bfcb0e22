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

static const sl_cfg_key metrics_keys[] = {
    {.name = "listen",
     .type = SL_KEY_STR,
     .doc = "address for `/metrics`, `/healthz` (liveness) and `/readyz` (readiness); off when "
            "absent (see Security)"},
    {.name = "unhealthy_after",
     .type = SL_KEY_DURATION,
     .def = "1m",
     .doc =
         "`/readyz` answers 503 once a sink has failed for longer than this (`/healthz` does not)"},
};
/* `sluice tail`'s tap (cli/http_tap.h): off unless this section is present. */
static const sl_cfg_key tap_keys[] = {
    {.name = "listen",
     .type = SL_KEY_STR,
     .def = "127.0.0.1:9881",
     .doc = "address of the tap for `sluice tail`"},
    {.name = "token_file",
     .type = SL_KEY_STR,
     .doc = "file holding the tap's bearer token (one of `token_file`, `token_env` is required)"},
    {.name = "token_env",
     .type = SL_KEY_STR,
     .doc = "name of an environment variable holding the tap's bearer token"},
};
static const sl_cfg_key log_keys[] = {
    {.name = "level",
     .type = SL_KEY_ENUM,
     .choices = "debug|info|warn|error",
     .def = "info",
     .doc = "`debug`, `info`, `warn`, `error`; one logfmt line per event on stderr"},
};
static const sl_cfg_key top_keys[] = {
    {.name = "data_dir",
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
     .type = SL_KEY_DURATION,
     .def = "10s",
     .doc = "how long SIGTERM lets sinks drain (the process exits within it + 1 s)"},
    {.name = "inputs", .type = SL_KEY_SEQ, .required = true, .doc = "list of inputs"},
    {.name = "sinks", .type = SL_KEY_SEQ, .required = true, .doc = "list of sinks"},
    /* A development configuration: relative paths allowed (decision 0020). */
    {.name = "dev",
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
    return sl_pipeline_probe(cfg, out);
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
    const char *data_dir = "/var/lib/sluice";
    sl_cfg_str(cfg, root, "data_dir", "/var/lib/sluice", &data_dir);
    const char *level = "info";
    sl_cfg_str(cfg, sl_cfg_get(root, "log"), "level", "info", &level);
    sl_log_set_level(sl_log_level_from_name(level));
    /* One agent per data_dir, and one nobody else can write to; a dry run
     * writes nothing under data_dir, not even the directory. */
    int rc = o->dry_run ? SL_OK : sl_datadir_open(data_dir, &a->datadir, err);
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
    sl_pipeline_opts po = {.dry_run = o->dry_run,
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
