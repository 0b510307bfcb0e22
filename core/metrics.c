#include "core/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum { KIND_COUNTER, KIND_GAUGE };

struct sl_metric {
    struct sl_metric *next;
    char *name, *help, *labels;
    int kind;
    atomic_int_least64_t value;
};

/* The registry: a list under a mutex for registration (rare); updates are
 * lock-free atomics on the metric itself. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sl_metric *registry_head;
static sl_metric fallback_metric; /* absorbs updates when allocation fails */

static sl_metric *find(const char *name, const char *labels)
{
    for (sl_metric *m = registry_head; m; m = m->next)
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0) return m;
    return NULL;
}

static sl_metric *get_or_create(int kind, const char *name, const char *help, const char *labels)
{
    if (!labels) labels = "";
    pthread_mutex_lock(&registry_mu);
    sl_metric *m = find(name, labels);
    if (!m) {
        m = calloc(1, sizeof *m);
        if (m) {
            m->name = strdup(name);
            m->help = strdup(help ? help : "");
            m->labels = strdup(labels);
            m->kind = kind;
            atomic_init(&m->value, 0);
            if (!m->name || !m->help || !m->labels) {
                free(m->name), free(m->help), free(m->labels), free(m);
                m = NULL;
            }
        }
        if (m) {
            /* Append, so that rendering keeps a family's series together in
             * registration order. */
            sl_metric **pp = &registry_head;
            while (*pp) pp = &(*pp)->next;
            *pp = m;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    return m ? m : &fallback_metric;
}

sl_metric *sl_counter(const char *name, const char *help, const char *labels)
{
    return get_or_create(KIND_COUNTER, name, help, labels);
}

sl_metric *sl_gauge(const char *name, const char *help, const char *labels)
{
    return get_or_create(KIND_GAUGE, name, help, labels);
}

static size_t put_escaped(char *buf, size_t cap, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"')
            buf[o++] = '\\', buf[o++] = *v;
        else if (*v == '\n')
            buf[o++] = '\\', buf[o++] = 'n';
        else
            buf[o++] = *v;
    }
    buf[o] = '\0';
    return o;
}

void sl_metric_labels(char *buf, size_t cap, const char *k1, const char *v1, const char *k2,
                      const char *v2)
{
    size_t o = 0;
    buf[0] = '\0';
    if (k1 && cap > 8) {
        o += (size_t)snprintf(buf + o, cap - o, "%s=\"", k1);
        if (o < cap) o += put_escaped(buf + o, cap - o, v1 ? v1 : "");
        if (o + 1 < cap) buf[o++] = '"', buf[o] = '\0';
    }
    if (k2 && o + 8 < cap) {
        o += (size_t)snprintf(buf + o, cap - o, ",%s=\"", k2);
        if (o < cap) o += put_escaped(buf + o, cap - o, v2 ? v2 : "");
        if (o + 1 < cap) buf[o++] = '"', buf[o] = '\0';
    }
}

void sl_metric_add(sl_metric *m, uint64_t n)
{
    atomic_fetch_add_explicit(&m->value, (int64_t)n, memory_order_relaxed);
}

void sl_metric_inc(sl_metric *m)
{
    atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

void sl_metric_set(sl_metric *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

void sl_metric_gauge_add(sl_metric *m, int64_t delta)
{
    atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

int64_t sl_metric_get(const sl_metric *m)
{
    return atomic_load_explicit(&((sl_metric *)m)->value, memory_order_relaxed);
}

int64_t sl_metrics_value(const char *name, const char *labels)
{
    pthread_mutex_lock(&registry_mu);
    sl_metric *m = find(name, labels ? labels : "");
    int64_t v = m ? sl_metric_get(m) : -1;
    pthread_mutex_unlock(&registry_mu);
    return v;
}

typedef struct outbuf {
    char *p;
    size_t len, cap;
    bool failed;
} outbuf;

static void outf(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(outbuf *o, const char *fmt, ...)
{
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

static bool is_seconds(const char *name)
{
    size_t n = strlen(name);
    return (n > 8 && strcmp(name + n - 8, "_seconds") == 0) ||
           (n > 14 && strcmp(name + n - 14, "_seconds_total") == 0);
}

int sl_metrics_render(char **out, size_t *len)
{
    outbuf o = {malloc(16384), 0, 16384, false};
    if (!o.p) return SL_ENOMEM;
    o.p[0] = '\0';
    pthread_mutex_lock(&registry_mu);
    /* Families are rendered once each, with every series of that name
     * grouped under one HELP/TYPE header as the format requires. */
    for (sl_metric *m = registry_head; m; m = m->next) {
        bool seen = false;
        for (sl_metric *p = registry_head; p != m; p = p->next)
            if (strcmp(p->name, m->name) == 0) {
                seen = true;
                break;
            }
        if (seen) continue;
        outf(&o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
             m->kind == KIND_COUNTER ? "counter" : "gauge");
        for (sl_metric *s = m; s; s = s->next) {
            if (strcmp(s->name, m->name) != 0) continue;
            char val[32];
            int64_t v = sl_metric_get(s);
            if (is_seconds(s->name)) /* Exact: a timestamp in seconds needs all its digits. */
                snprintf(val, sizeof val, "%s%lld.%09lld", v < 0 ? "-" : "",
                         (long long)(v < 0 ? -(v / 1000000000) : v / 1000000000),
                         (long long)(v < 0 ? -(v % 1000000000) : v % 1000000000));
            else
                snprintf(val, sizeof val, "%lld", (long long)sl_metric_get(s));
            if (s->labels[0])
                outf(&o, "%s{%s} %s\n", s->name, s->labels, val);
            else
                outf(&o, "%s %s\n", s->name, val);
        }
    }
    pthread_mutex_unlock(&registry_mu);
    if (o.failed) {
        free(o.p);
        return SL_ENOMEM;
    }
    *out = o.p;
    *len = o.len;
    return SL_OK;
}

void sl_metrics_reset(void)
{
    pthread_mutex_lock(&registry_mu);
    sl_metric *m = registry_head;
    while (m) {
        sl_metric *next = m->next;
        free(m->name), free(m->help), free(m->labels), free(m);
        m = next;
    }
    registry_head = NULL;
    pthread_mutex_unlock(&registry_mu);
}
