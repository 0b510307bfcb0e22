#include "tests/fake_kubelet.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sl_fk {
    pthread_mutex_t mu;
    json_t *pods; /* array of Pod objects */
    char *token, *cert, *key;
    int port;
    struct MHD_Daemon *d;
    atomic_int delay_ms, fail;
    atomic_uint_fast64_t requests, authorized, list_bytes;
    char *raw; /* under mu */
    size_t raw_n;
    atomic_uint_fast64_t stream_bytes, stream_sent;
    atomic_int stream_ms, redirect_port;
    atomic_bool stopping;
    uint64_t watch_events, watch_bytes; /* under mu */
};

/* Counts one watch event of the pod in the state `phase` (with a
 * deletionTimestamp when deleting), as the API server would stream it. */
static void count_watch_event(sl_fk *k, const char *type, json_t *pod, const char *phase,
                              bool deleting)
{
    json_t *copy = json_deep_copy(pod);
    if (!copy) return;
    json_object_set_new(json_object_get(copy, "status"), "phase", json_string(phase));
    if (deleting)
        json_object_set_new(json_object_get(copy, "metadata"), "deletionTimestamp",
                            json_string("2026-12-07T00:00:00Z"));
    json_t *ev = json_pack("{s:s, s:o}", "type", type, "object", copy);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (text) {
        k->watch_events++;
        k->watch_bytes += strlen(text) + 1;
    }
    free(text);
    json_decref(ev);
}

static char *slurp(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf && n == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

typedef struct stream {
    sl_fk *k;
    uint64_t left;
    int ms;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    static const char head[] = "{\"kind\":\"PodList\",\"items\":[";
    if (atomic_load(&st->k->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (st->left == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < st->left ? max : (size_t)st->left;
    if (st->ms > 0) {
        struct timespec ts = {st->ms / 1000, (long)(st->ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        n = 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = pos + i < sizeof head - 1 ? head[pos + i] : ' ';
    st->left -= n;
    atomic_fetch_add(&st->k->stream_sent, n);
    return (ssize_t)n;
}

/* The hostile answers set by sl_fk_set_raw/_stream/_redirect; false when
 * none is set. */
static bool hostile_answer(sl_fk *k, struct MHD_Connection *c, enum MHD_Result *rc)
{
    struct MHD_Response *r = NULL;
    unsigned status = MHD_HTTP_OK;
    int port = atomic_load(&k->redirect_port);
    uint64_t bytes = atomic_load(&k->stream_bytes);
    pthread_mutex_lock(&k->mu);
    if (k->raw) r = MHD_create_response_from_buffer(k->raw_n, k->raw, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_unlock(&k->mu);
    if (!r && port) {
        char where[128];
        snprintf(where, sizeof where, "https://127.0.0.1:%d/pods", port);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (r) MHD_add_response_header(r, "Location", where);
        status = 307;
    } else if (!r && bytes) {
        stream *st = malloc(sizeof *st);
        if (!st) return false;
        *st = (stream){k, bytes, atomic_load(&k->stream_ms)};
        r = MHD_create_response_from_callback(bytes, 64 << 10, stream_read, st, free);
        if (!r) free(st);
    }
    if (!r) return false;
    MHD_add_response_header(r, "Content-Type", "application/json");
    *rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return true;
}

void sl_fk_set_raw(sl_fk *k, const char *body, size_t n)
{
    char *copy = body ? malloc(n ? n : 1) : NULL;
    if (copy) memcpy(copy, body, n);
    pthread_mutex_lock(&k->mu);
    free(k->raw);
    k->raw = copy;
    k->raw_n = copy ? n : 0;
    pthread_mutex_unlock(&k->mu);
}

void sl_fk_set_stream(sl_fk *k, uint64_t bytes, int ms_per_byte)
{
    atomic_store(&k->stream_ms, ms_per_byte);
    atomic_store(&k->stream_bytes, bytes);
}

void sl_fk_set_redirect(sl_fk *k, int port)
{
    atomic_store(&k->redirect_port, port);
}

uint64_t sl_fk_stream_sent(sl_fk *k)
{
    return atomic_load(&k->stream_sent);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    (void)version, (void)data, (void)data_size;
    sl_fk *k = cls;
    if (!*con_cls) { /* first call: headers only */
        *con_cls = k;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 || strcmp(url, "/pods") != 0)
        return answer(c, MHD_HTTP_NOT_FOUND, "{\"kind\":\"Status\",\"code\":404}");
    atomic_fetch_add(&k->requests, 1);
    int delay = atomic_load(&k->delay_ms);
    if (delay > 0) {
        struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char want[512];
    snprintf(want, sizeof want, "Bearer %s", k->token);
    if (!auth || strcmp(auth, want) != 0)
        return answer(c, MHD_HTTP_UNAUTHORIZED, "{\"kind\":\"Status\",\"code\":401}");
    atomic_fetch_add(&k->authorized, 1);
    int fail = atomic_load(&k->fail);
    if (fail) return answer(c, (unsigned)fail, "{\"kind\":\"Status\"}");
    enum MHD_Result hostile;
    if (hostile_answer(k, c, &hostile)) return hostile;
    pthread_mutex_lock(&k->mu);
    json_t *list = json_pack("{s:s, s:s, s:{}, s:O}", "kind", "PodList", "apiVersion", "v1",
                             "metadata", "items", k->pods);
    char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
    pthread_mutex_unlock(&k->mu);
    json_decref(list);
    if (!text) return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "{}");
    atomic_fetch_add(&k->list_bytes, strlen(text));
    enum MHD_Result rc = answer(c, MHD_HTTP_OK, text);
    free(text);
    return rc;
}

/* Loopback only: binds 127.0.0.1 explicitly. Port 0 picks a free one,
 * kept for sl_fk_up after sl_fk_down. */
int sl_fk_up(sl_fk *k)
{
    if (k->d) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)k->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    k->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_TLS | MHD_USE_ERROR_LOG,
                            (uint16_t)k->port, NULL, NULL, on_request, k, MHD_OPTION_HTTPS_MEM_KEY,
                            k->key, MHD_OPTION_HTTPS_MEM_CERT, k->cert, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&sa, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_END);
    if (!k->d) return -1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(k->d, MHD_DAEMON_INFO_BIND_PORT);
    if (di) k->port = di->port;
    return 0;
}

void sl_fk_down(sl_fk *k)
{
    if (k->d) MHD_stop_daemon(k->d);
    k->d = NULL;
}

int sl_fk_start(const char *cert_dir, int port, const char *token, sl_fk **out)
{
    *out = NULL;
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) return -1;
    sl_fk *k = calloc(1, sizeof *k);
    if (!k) return -1;
    pthread_mutex_init(&k->mu, NULL);
    k->pods = json_array();
    k->token = strdup(token);
    k->cert = slurp(cert_dir, "kubelet-test.crt");
    k->key = slurp(cert_dir, "kubelet-test.key");
    k->port = port;
    if (!k->pods || !k->token || !k->cert || !k->key || sl_fk_up(k) != 0) {
        sl_fk_stop(k);
        return -1;
    }
    *out = k;
    return 0;
}

int sl_fk_port(const sl_fk *k)
{
    return k->port;
}

void sl_fk_stop(sl_fk *k)
{
    if (!k) return;
    atomic_store(&k->stopping, true);
    sl_fk_down(k);
    free(k->raw);
    json_decref(k->pods);
    free(k->token);
    free(k->cert);
    free(k->key);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

void sl_fk_delete_pod(sl_fk *k, const char *uid)
{
    pthread_mutex_lock(&k->mu);
    size_t i;
    json_t *p;
    json_array_foreach(k->pods, i, p)
    {
        const char *u = json_string_value(json_object_get(json_object_get(p, "metadata"), "uid"));
        if (u && strcmp(u, uid) == 0) {
            count_watch_event(k, "MODIFIED", p, "Running", true);
            count_watch_event(k, "DELETED", p, "Succeeded", true);
            json_array_remove(k->pods, i);
            break;
        }
    }
    pthread_mutex_unlock(&k->mu);
}

int sl_fk_add_pod(sl_fk *k, const char *ns, const char *name, const char *uid, const char *labels,
                  const char *annotations)
{
    json_t *l = labels ? json_loads(labels, 0, NULL) : json_object();
    json_t *a = annotations ? json_loads(annotations, 0, NULL) : json_object();
    if (!l || !a) {
        json_decref(l);
        json_decref(a);
        return -1;
    }
    char owner[256];
    snprintf(owner, sizeof owner, "%s-rs", name);
    json_t *pod = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:s, s:o, s:o, s:[{s:s, s:s, s:s, s:b}]}, s:{s:s, s:[{s:s}]}, "
        "s:{s:s}}",
        "kind", "Pod", "apiVersion", "v1", "metadata", "name", name, "namespace", ns, "uid", uid,
        "labels", l, "annotations", a, "ownerReferences", "apiVersion", "apps/v1", "kind",
        "ReplicaSet", "name", owner, "controller", 1, "spec", "nodeName", "fake-node", "containers",
        "name", "main", "status", "phase", "Running");
    if (!pod) return -1;
    sl_fk_delete_pod(k, uid);
    pthread_mutex_lock(&k->mu);
    count_watch_event(k, "ADDED", pod, "Pending", false);
    count_watch_event(k, "MODIFIED", pod, "Running", false);
    int rc = json_array_append_new(k->pods, pod);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

void sl_fk_set_delay_ms(sl_fk *k, int ms)
{
    atomic_store(&k->delay_ms, ms);
}

void sl_fk_set_fail(sl_fk *k, int status)
{
    atomic_store(&k->fail, status);
}

uint64_t sl_fk_requests(sl_fk *k)
{
    return atomic_load(&k->requests);
}

uint64_t sl_fk_authorized(sl_fk *k)
{
    return atomic_load(&k->authorized);
}

uint64_t sl_fk_list_bytes(sl_fk *k)
{
    return atomic_load(&k->list_bytes);
}

void sl_fk_watch_equivalent(sl_fk *k, uint64_t *events, uint64_t *bytes)
{
    pthread_mutex_lock(&k->mu);
    *events = k->watch_events;
    *bytes = k->watch_bytes;
    pthread_mutex_unlock(&k->mu);
}
