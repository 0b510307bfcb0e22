#include "collector/k8s_meta.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"

/* UIDs that already waited once: later lookups of them do not wait again
 * until the resync interval has passed (a pod the kubelet no longer lists,
 * whose files are still being read, must not slow every batch). */
#define MAX_MISSED 64

typedef struct missed {
    char uid[64];
    int64_t at_ns;
} missed;

struct sl_k8s_cache {
    char *url, *token_file, *ca_file;
    bool insecure;
    int64_t timeout_ms, min_interval_ns, resync_ns, grace_ns;
    char **want;
    size_t nwant;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* to the fetch thread: refresh asked, or stop */
    pthread_cond_t done; /* from the fetch thread: a fetch finished */
    pthread_t thread;
    bool inited, started, stop, want_refresh, last_ok;
    uint64_t fetches_started, fetches_done;
    int64_t last_fetch_ns; /* monotonic start of the last fetch; 0: never */
    atomic_uint_fast64_t generation;
    atomic_bool aborting;

    sl_k8s_pod **pods; /* listed pods, then gone ones within their grace */
    size_t npods;
    missed missed[MAX_MISSED];
    size_t nmissed_next;

    sl_metric *req_ok, *req_err, *pods_gauge;
    sl_ratelimit rl_fail; /* fetch thread only */
};

/* ------------------------------------------------------------ pods */

static void pod_free(sl_k8s_pod *p)
{
    free(p->uid);
    free(p->name);
    free(p->namespace_);
    free(p->node);
    free(p->owner_kind);
    free(p->owner_name);
    for (size_t i = 0; i < p->nlabels; i++) {
        free(p->labels[i].key);
        free(p->labels[i].val);
    }
    for (size_t i = 0; i < p->nannotations; i++) {
        free(p->annotations[i].key);
        free(p->annotations[i].val);
    }
    free(p->labels);
    free(p->annotations);
    free(p);
}

void sl_k8s_pod_unref(sl_k8s_pod *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1) pod_free(p);
}

static const char *kv_find(const sl_k8s_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0) return kv[i].val;
    return NULL;
}

const char *sl_k8s_pod_label(const sl_k8s_pod *p, const char *key)
{
    return kv_find(p->labels, p->nlabels, key);
}

const char *sl_k8s_pod_annotation(const sl_k8s_pod *p, const char *key)
{
    return kv_find(p->annotations, p->nannotations, key);
}

/* A copy of a JSON string member, bounded; NULL when absent or not a string. */
static char *str_of(json_t *obj, const char *key, bool *oom)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return NULL;
    size_t n = json_string_length(v);
    if (n > SL_K8S_MAX_VALUE_BYTES) n = SL_K8S_MAX_VALUE_BYTES;
    char *s = strndup(json_string_value(v), n);
    if (!s) *oom = true;
    return s;
}

static bool wanted(const char *key, const char *const *want, size_t nwant)
{
    if (strncmp(key, "sluice.io/", 10) == 0) return true;
    for (size_t i = 0; i < nwant; i++)
        if (strcmp(key, want[i]) == 0) return true;
    return false;
}

/* String members of a JSON object into kv (filtered when want_all is false). */
static size_t kv_of(json_t *obj, sl_k8s_kv **out, bool want_all, const char *const *want,
                    size_t nwant, bool *oom)
{
    *out = NULL;
    if (!json_is_object(obj)) return 0;
    size_t cap = json_object_size(obj);
    if (cap > SL_K8S_MAX_LABELS) cap = SL_K8S_MAX_LABELS;
    if (cap == 0) return 0;
    sl_k8s_kv *kv = calloc(cap, sizeof *kv);
    if (!kv) {
        *oom = true;
        return 0;
    }
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (n == cap) break;
        if (!json_is_string(v) || strlen(k) > 317) continue; /* 253 prefix + '/' + 63 name */
        if (!want_all && !wanted(k, want, nwant)) continue;
        size_t vn = json_string_length(v);
        if (vn > SL_K8S_MAX_VALUE_BYTES) continue;
        kv[n].key = strdup(k);
        kv[n].val = strndup(json_string_value(v), vn);
        if (!kv[n].key || !kv[n].val) {
            free(kv[n].key);
            free(kv[n].val);
            *oom = true;
            break;
        }
        n++;
    }
    *out = kv;
    return n;
}

static sl_k8s_pod *pod_of(json_t *item, const char *const *want, size_t nwant, bool *oom)
{
    json_t *md = json_object_get(item, "metadata");
    if (!json_is_object(md)) return NULL;
    json_t *uid = json_object_get(md, "uid");
    if (!json_is_string(uid) || json_string_length(uid) == 0 || json_string_length(uid) >= 64)
        return NULL;
    sl_k8s_pod *p = calloc(1, sizeof *p);
    if (!p) {
        *oom = true;
        return NULL;
    }
    atomic_init(&p->refs, 1);
    p->uid = str_of(md, "uid", oom);
    p->name = str_of(md, "name", oom);
    p->namespace_ = str_of(md, "namespace", oom);
    p->node = str_of(json_object_get(item, "spec"), "nodeName", oom);
    json_t *owners = json_object_get(md, "ownerReferences");
    json_t *owner = NULL, *o;
    size_t i;
    json_array_foreach(owners, i, o)
    {
        if (!json_is_object(o)) continue;
        if (!owner || json_is_true(json_object_get(o, "controller"))) owner = o;
    }
    if (owner) {
        p->owner_kind = str_of(owner, "kind", oom);
        p->owner_name = str_of(owner, "name", oom);
    }
    p->nlabels = kv_of(json_object_get(md, "labels"), &p->labels, true, NULL, 0, oom);
    p->nannotations =
        kv_of(json_object_get(md, "annotations"), &p->annotations, false, want, nwant, oom);
    if (*oom || !p->uid) {
        pod_free(p);
        return NULL;
    }
    return p;
}

/* What jansson would allocate for the tree of this text, estimated
 * before it builds it: the body bound alone does not bound the tree, since
 * 31 MiB of `{},` are ten million objects (2.5 GiB as jansson's tree;
 * decision 0073). Counted outside strings: objects and arrays, strings,
 * and commas (a value after the first of a container); plus the bytes,
 * which strings copy. Over every shape measured the estimate is above
 * jansson 2.14's own allocations (1.2-1.7 times). */
static uint64_t tree_cost(const char *p, size_t n)
{
    uint64_t containers = 0, values = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
            values++;
        } else if (c == '{' || c == '[') {
            containers++;
        } else if (c == ',') {
            values++;
        }
    }
    return containers * SL_K8S_CONTAINER_COST + values * SL_K8S_VALUE_COST + n;
}

int sl_k8s_podlist_decode(const char *json, size_t len, const char *const *want, size_t nwant,
                          sl_k8s_pod ***pods, size_t *n, sl_err *err)
{
    *pods = NULL;
    *n = 0;
    if (len > SL_K8S_BODY_MAX)
        return sl_errf(err, SL_ENOMEM, "PodList of %zu bytes is over the %u byte limit", len,
                       SL_K8S_BODY_MAX);
    uint64_t cost = tree_cost(json, len);
    if (cost > SL_K8S_TREE_MAX)
        return sl_errf(err, SL_ENOMEM,
                       "PodList of %zu bytes would take about %llu MiB to decode, over the %u MiB "
                       "limit (too many objects, arrays or values)",
                       len, (unsigned long long)(cost >> 20), SL_K8S_TREE_MAX >> 20);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sl_errf(err, SL_EPARSE, "PodList is not JSON (line %d column %d: %s)", je.line,
                       je.column, je.text);
    json_t *items = json_object_get(root, "items");
    if (!json_is_object(root) || !(json_is_array(items) || json_is_null(items) || !items)) {
        json_decref(root);
        return sl_errf(err, SL_EPARSE, "PodList has no 'items' array");
    }
    size_t cap = json_array_size(items);
    if (cap > SL_K8S_MAX_PODS) cap = SL_K8S_MAX_PODS;
    sl_k8s_pod **out = calloc(cap ? cap : 1, sizeof *out);
    if (!out) {
        json_decref(root);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    bool oom = false;
    size_t i, k = 0;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (k == cap || oom) break;
        if (!json_is_object(item)) continue;
        sl_k8s_pod *p = pod_of(item, want, nwant, &oom);
        if (p) out[k++] = p;
    }
    json_decref(root);
    if (oom) {
        for (size_t j = 0; j < k; j++) sl_k8s_pod_unref(out[j]);
        free(out);
        return sl_errf(err, SL_ENOMEM, "out of memory decoding the PodList");
    }
    *pods = out;
    *n = k;
    return 0;
}

/* ------------------------------------------------------------ fetching */

typedef struct body {
    char *p;
    size_t n, cap;
    bool over;
} body;

static size_t on_data(char *d, size_t size, size_t nmemb, void *arg)
{
    body *b = arg;
    size_t n = size * nmemb;
    if (b->n + n > SL_K8S_BODY_MAX) {
        b->over = true;
        return 0;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64 << 10;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    sl_k8s_cache *m = arg;
    return atomic_load(&m->aborting) ? 1 : 0;
}

static char *read_token(const char *path, sl_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        sl_errf(err, SL_EIO, "cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *t = calloc(1, 16385);
    size_t n = t ? fread(t, 1, 16384, f) : 0;
    fclose(f);
    if (!t) return NULL;
    t[n] = '\0';
    /* One line: a token never carries a header break into the request. */
    n = strcspn(t, "\r\n");
    while (n && t[n - 1] == ' ') n--;
    t[n] = '\0';
    return t;
}

static int fetch(sl_k8s_cache *m, sl_k8s_pod ***pods, size_t *npods, sl_err *err)
{
    char *token = NULL, *hdr = NULL;
    if (m->token_file && !(token = read_token(m->token_file, err))) return SL_EIO;
    CURL *c = curl_easy_init();
    if (!c) {
        free(token);
        return sl_errf(err, SL_ENOMEM, "curl_easy_init failed");
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Accept: application/json");
    if (token && asprintf(&hdr, "Authorization: Bearer %s", token) > 0)
        hl = curl_slist_append(hl, hdr);
    body b = {0};
    curl_easy_setopt(c, CURLOPT_URL, m->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(m->timeout_ms < 5000 ? m->timeout_ms : 5000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, m);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (m->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, m->ca_file);
    if (m->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    if (hdr) {
        memset(hdr, 0, strlen(hdr));
        free(hdr);
    }
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    int out;
    if (b.over)
        out = sl_errf(err, SL_ENOMEM, "kubelet answer is over %u bytes", SL_K8S_BODY_MAX);
    else if (rc != CURLE_OK)
        out = sl_errf(err, SL_EIO, "kubelet request failed: %s", curl_easy_strerror(rc));
    else if (status != 200)
        out = sl_errf(err, SL_EIO, "kubelet answered HTTP %ld", status);
    else
        out = sl_k8s_podlist_decode(b.p ? b.p : "", b.n, (const char *const *)m->want, m->nwant,
                                    pods, npods, err);
    free(b.p);
    return out;
}

/* Merges a fresh list into the cache (under the lock): listed pods replace
 * their old entries, pods no longer listed start (or continue) their grace,
 * and those past it leave. */
static void merge(sl_k8s_cache *m, sl_k8s_pod **fresh, size_t nfresh, int64_t now)
{
    size_t cap = nfresh + m->npods;
    sl_k8s_pod **next = calloc(cap ? cap : 1, sizeof *next);
    if (!next) {
        for (size_t i = 0; i < nfresh; i++) sl_k8s_pod_unref(fresh[i]);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < nfresh; i++) next[n++] = fresh[i];
    for (size_t i = 0; i < m->npods; i++) {
        sl_k8s_pod *old = m->pods[i];
        bool listed = false;
        for (size_t j = 0; j < nfresh && !listed; j++)
            listed = strcmp(fresh[j]->uid, old->uid) == 0;
        if (listed || n >= SL_K8S_MAX_PODS) {
            sl_k8s_pod_unref(old);
            continue;
        }
        if (old->gone_ns == 0) {
            /* Pods are immutable once shared: a gone copy records when. */
            old->gone_ns = now; /* only the fetch thread writes, under the lock */
        }
        if (now - old->gone_ns >= m->grace_ns) {
            sl_k8s_pod_unref(old);
            continue;
        }
        next[n++] = old;
    }
    free(m->pods);
    m->pods = next;
    m->npods = n;
    sl_metric_set(m->pods_gauge, (int64_t)n);
}

static void *fetch_thread(void *arg)
{
    sl_k8s_cache *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        int64_t now = sl_monotonic_ns();
        int64_t next = m->last_fetch_ns == 0 ? now : m->last_fetch_ns + m->resync_ns;
        if (m->want_refresh) {
            int64_t soon = m->last_fetch_ns + m->min_interval_ns;
            if (m->last_fetch_ns == 0 || soon < next) next = soon;
        }
        if (now < next) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (next - now);
            ts.tv_sec = at / 1000000000;
            ts.tv_nsec = at % 1000000000;
            pthread_cond_timedwait(&m->wake, &m->mu, &ts);
            continue;
        }
        m->want_refresh = false;
        m->last_fetch_ns = now;
        m->fetches_started++;
        pthread_mutex_unlock(&m->mu);

        sl_k8s_pod **fresh = NULL;
        size_t nfresh = 0;
        sl_err err = {0};
        int rc = fetch(m, &fresh, &nfresh, &err);
        sl_metric_inc(rc == 0 ? m->req_ok : m->req_err);
        uint64_t suppressed = 0;
        if (rc != 0 && !atomic_load(&m->aborting) && sl_ratelimit_ok(&m->rl_fail, &suppressed))
            sl_log(SL_LOG_WARN, "k8s_metadata_fetch_failed", "error=%s suppressed=%llu", err.msg,
                   (unsigned long long)suppressed);

        pthread_mutex_lock(&m->mu);
        if (rc == 0) {
            merge(m, fresh, nfresh, sl_monotonic_ns());
            free(fresh);
            atomic_fetch_add(&m->generation, 1);
        }
        m->last_ok = rc == 0;
        m->fetches_done++;
        pthread_cond_broadcast(&m->done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ------------------------------------------------------------ the cache */

int sl_k8s_cache_new(const sl_k8s_cache_opts *o, sl_k8s_cache **out, sl_err *err)
{
    *out = NULL;
    sl_k8s_cache *m = calloc(1, sizeof *m);
    if (!m) return sl_errf(err, SL_ENOMEM, "out of memory");
    m->url = strdup(o->url);
    m->token_file = o->token_file ? strdup(o->token_file) : NULL;
    m->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    m->insecure = o->insecure_skip_verify;
    m->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    m->min_interval_ns = o->refresh_min_interval_ms * 1000000;
    m->resync_ns = (o->resync_interval_ms > 0 ? o->resync_interval_ms : 60000) * 1000000;
    m->grace_ns = o->grace_ms * 1000000;
    m->want = o->nannotations ? calloc(o->nannotations, sizeof *m->want) : NULL;
    m->last_ok = true;
    m->rl_fail.interval_ns = 60 * (int64_t)1000000000;
    bool oom = !m->url || (o->token_file && !m->token_file) || (o->ca_file && !m->ca_file) ||
               (o->nannotations && !m->want);
    for (size_t i = 0; !oom && i < o->nannotations; i++) {
        m->want[i] = strdup(o->annotations[i]);
        oom = !m->want[i];
        m->nwant = i + 1;
    }
    if (oom) {
        sl_k8s_cache_free(m);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_cond_init(&m->done, &ca);
    pthread_condattr_destroy(&ca);
    m->inited = true;
    m->req_ok = sl_counter("sluice_k8s_kubelet_requests_total",
                           "Pod list requests to the kubelet, by result.", "result=\"ok\"");
    m->req_err = sl_counter("sluice_k8s_kubelet_requests_total",
                            "Pod list requests to the kubelet, by result.", "result=\"error\"");
    m->pods_gauge =
        sl_gauge("sluice_k8s_cached_pods",
                 "Pods in the metadata cache (listed, or gone within their grace).", "");
    *out = m;
    return 0;
}

void sl_k8s_cache_free(sl_k8s_cache *m)
{
    if (!m) return;
    if (m->started) {
        atomic_store(&m->aborting, true);
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_broadcast(&m->wake);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; i < m->nwant; i++) free(m->want[i]);
    for (size_t i = 0; i < m->npods; i++) sl_k8s_pod_unref(m->pods[i]);
    if (m->inited) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->done);
    }
    free(m->pods);
    free(m->want);
    free(m->url);
    free(m->token_file);
    free(m->ca_file);
    free(m);
}

uint64_t sl_k8s_cache_generation(sl_k8s_cache *m)
{
    return atomic_load(&m->generation);
}

static sl_k8s_pod *find(sl_k8s_cache *m, const char *uid, size_t n)
{
    for (size_t i = 0; i < m->npods; i++)
        if (strlen(m->pods[i]->uid) == n && memcmp(m->pods[i]->uid, uid, n) == 0) {
            atomic_fetch_add(&m->pods[i]->refs, 1);
            return m->pods[i];
        }
    return NULL;
}

/* Records that uid waited (under the lock); true when it already had. */
static bool waited_before(sl_k8s_cache *m, const char *uid, size_t n, int64_t now)
{
    for (size_t i = 0; i < MAX_MISSED; i++) {
        missed *x = &m->missed[i];
        if (x->at_ns && strlen(x->uid) == n && memcmp(x->uid, uid, n) == 0) {
            if (now - x->at_ns < m->resync_ns) return true;
            x->at_ns = now;
            return false;
        }
    }
    missed *x = &m->missed[m->nmissed_next++ % MAX_MISSED];
    memcpy(x->uid, uid, n);
    x->uid[n] = '\0';
    x->at_ns = now;
    return false;
}

sl_k8s_pod *sl_k8s_cache_get(sl_k8s_cache *m, const char *uid, size_t n, int64_t wait_ms)
{
    if (n == 0 || n >= 64) return NULL;
    pthread_mutex_lock(&m->mu);
    if (!m->started) {
        m->started = pthread_create(&m->thread, NULL, fetch_thread, m) == 0;
        if (!m->started) sl_log(SL_LOG_ERROR, "k8s_metadata_thread_failed", "url=%s", m->url);
    }
    sl_k8s_pod *p = find(m, uid, n);
    if (p || !m->started) {
        pthread_mutex_unlock(&m->mu);
        return p;
    }
    m->want_refresh = true;
    pthread_cond_signal(&m->wake);
    int64_t now = sl_monotonic_ns();
    /* The first fetch has not answered yet counts as healthy: new agents wait. */
    if (wait_ms > 0 && m->last_ok && !waited_before(m, uid, n, now)) {
        uint64_t target = m->fetches_started + 1; /* a fetch that starts after this ask */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + wait_ms * 1000000;
        ts.tv_sec = at / 1000000000;
        ts.tv_nsec = at % 1000000000;
        while (!m->stop && m->fetches_done < target && !(p = find(m, uid, n)))
            if (pthread_cond_timedwait(&m->done, &m->mu, &ts) == ETIMEDOUT) break;
        if (!p) p = find(m, uid, n);
    }
    pthread_mutex_unlock(&m->mu);
    return p;
}
