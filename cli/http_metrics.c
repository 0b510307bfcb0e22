#include "cli/http_metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/http_server.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

/* Scrapers and probes make one request at a time per address. 256
 * connections in all keep room for every probe while a few hostile
 * clients hold what they can; 16 per address stop one client from taking
 * them all (a kubelet and a Prometheus use one or two each). */
#define CONN_LIMIT   256
#define PER_IP_LIMIT 16
/* A connection idle this long is closed (libmicrohttpd counts seconds).
 * Scrapes and probes send their request at once; libmicrohttpd 0.9.75
 * keeps a connection whose client half-closed after a malformed head until
 * this timeout, so it is short. */
#define IDLE_TIMEOUT_S 3
/* A GET head is a few hundred bytes; a head that does not fit gets 431. */
#define REQUEST_MEMORY ((size_t)16 << 10)
/* Health is sampled this often even when nobody asks, so "failing since"
 * is known to within a tick. */
#define TICK_MS 1000
/* The sampler renders the registry every tick; when that has not
 * completed for this long, something holds the registry: wedged. */
#define WEDGED_AFTER_MS 15000
/* Bound on a rendered response; a registry this large is a bug elsewhere. */
#define MAX_RESPONSE ((size_t)64 << 20)

struct sl_http_metrics {
    sl_http_server *server;
    int64_t unhealthy_after_ms;
    double start_time;
    pthread_t sampler;
    bool sampler_started;
    pthread_mutex_t mu; /* health, stop */
    pthread_cond_t cv;
    bool stop;
    sl_health health;
    atomic_llong last_sample_ms;
    atomic_bool started;
    atomic_int threads_died;
    atomic_bool died_named;
    char died[128]; /* written once, by the first thread_died */
};

static int64_t mono_ms(void)
{
    return sl_monotonic_ns() / 1000000;
}

static void observe_health(sl_http_metrics *h)
{
    char *text = NULL;
    size_t len = 0;
    if (sl_metrics_render(&text, &len) != SL_OK) return; /* keep the last verdict */
    int64_t now = mono_ms();
    pthread_mutex_lock(&h->mu);
    sl_health_observe(&h->health, text, len, now);
    pthread_mutex_unlock(&h->mu);
    free(text);
    atomic_store(&h->last_sample_ms, now);
}

static void *sampler_thread(void *arg)
{
    sl_http_metrics *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        observe_health(h);
        pthread_mutex_lock(&h->mu);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += TICK_MS / 1000;
        while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static enum MHD_Result answer_json(struct MHD_Connection *c, int status, char *json, size_t cap)
{
    size_t jl = strlen(json);
    if (jl + 1 < cap) json[jl++] = '\n';
    return sl_http_respond(c, (unsigned)status, "application/json", json, jl);
}

static enum MHD_Result answer_metrics(sl_http_metrics *h, struct MHD_Connection *c)
{
    char *text = NULL;
    size_t len = 0;
    if (sl_metrics_render(&text, &len) != SL_OK)
        return sl_http_respond_text(c, 500, "out of memory\n");
    sl_buf body;
    sl_buf_init(&body, MAX_RESPONSE);
    sl_buf_append(&body, text, len);
    free(text);
    sl_process_metrics_append(&body, h->start_time);
    enum MHD_Result r =
        body.failed
            ? sl_http_respond_text(c, 500, "out of memory\n")
            : sl_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body.p, body.len);
    sl_buf_free(&body);
    return r;
}

static enum MHD_Result answer_healthz(sl_http_metrics *h, struct MHD_Connection *c)
{
    sl_liveness l = {.sampler_age_ms = mono_ms() - atomic_load(&h->last_sample_ms),
                     .wedged_after_ms = WEDGED_AFTER_MS,
                     .threads_died = atomic_load(&h->threads_died)};
    if (l.threads_died > 0 && atomic_load(&h->died_named))
        snprintf(l.died, sizeof l.died, "%s", h->died);
    char json[512];
    int status = sl_liveness_eval(&l, json, sizeof json);
    return answer_json(c, status, json, sizeof json);
}

static enum MHD_Result answer_readyz(sl_http_metrics *h, struct MHD_Connection *c)
{
    /* A fresh sample, so a recovered sink is ready at once. */
    observe_health(h);
    char json[4096];
    pthread_mutex_lock(&h->mu);
    int status = sl_readiness_eval(atomic_load(&h->started), &h->health, mono_ms(),
                                   h->unhealthy_after_ms, json, sizeof json);
    pthread_mutex_unlock(&h->mu);
    return answer_json(c, status, json, sizeof json);
}

/* libmicrohttpd's access handler: the whole request head is parsed and
 * bounded by the library; this only routes. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    sl_http_metrics *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return sl_http_respond_text(c, 405, "method not allowed\n");
    if (!strcmp(url, "/metrics")) return answer_metrics(h, c);
    if (!strcmp(url, "/healthz")) return answer_healthz(h, c);
    if (!strcmp(url, "/readyz")) return answer_readyz(h, c);
    if (!strcmp(url, "/"))
        return sl_http_respond_text(c, 200, "sluice agent: /metrics /healthz /readyz\n");
    return sl_http_respond_text(c, 404, "not found\n");
}

int sl_http_metrics_start(const char *listen, int64_t unhealthy_after_ms, sl_http_metrics **out,
                          sl_err *err)
{
    *out = NULL;
    if (!listen || !*listen) return sl_errf(err, SL_EINVAL, "metrics.listen is empty");
    if (unhealthy_after_ms < 0)
        return sl_errf(err, SL_EINVAL, "metrics.unhealthy_after must not be negative");
    sl_http_metrics *h = calloc(1, sizeof *h);
    if (!h) return sl_errf(err, SL_ENOMEM, "metrics: out of memory");
    h->unhealthy_after_ms = unhealthy_after_ms;
    h->start_time = sl_process_start_time();
    sl_health_init(&h->health);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* The first health sample is taken before serving, so "failing since"
     * starts from now and /healthz is live from the first request. */
    observe_health(h);
    int rc;
    if (pthread_create(&h->sampler, NULL, sampler_thread, h) != 0) {
        rc = sl_errf(err, SL_ENOMEM, "metrics: cannot start the health sampler");
        goto fail;
    }
    h->sampler_started = true;
    sl_http_server_opts so = {.what = "metrics.listen",
                              .listen = listen,
                              .conn_limit = CONN_LIMIT,
                              .per_ip_limit = PER_IP_LIMIT,
                              .idle_timeout_s = IDLE_TIMEOUT_S,
                              .request_memory = REQUEST_MEMORY,
                              .handler = handle,
                              .handler_arg = h};
    if ((rc = sl_http_server_start(&so, &h->server, err)) != SL_OK) goto fail;
    sl_log(SL_LOG_INFO, "metrics_listening", "listen=%s port=%d unhealthy_after_ms=%lld", listen,
           sl_http_server_port(h->server), (long long)unhealthy_after_ms);
    *out = h;
    return SL_OK;
fail:
    sl_http_metrics_stop(h);
    return rc;
}

int sl_http_metrics_port(const sl_http_metrics *h)
{
    return h ? sl_http_server_port(h->server) : 0;
}

void sl_http_metrics_set_started(sl_http_metrics *h)
{
    if (h) atomic_store(&h->started, true);
}

void sl_http_metrics_thread_died(sl_http_metrics *h, const char *name)
{
    if (!h) return;
    if (atomic_fetch_add(&h->threads_died, 1) == 0) {
        snprintf(h->died, sizeof h->died, "%s", name ? name : "?");
        atomic_store(&h->died_named, true);
    }
    sl_log(SL_LOG_ERROR, "thread_died", "thread=\"%s\"", name ? name : "?");
}

void sl_http_metrics_stop(sl_http_metrics *h)
{
    if (!h) return;
    sl_http_server_stop(h->server);
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->sampler_started) pthread_join(h->sampler, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
