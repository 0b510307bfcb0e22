#include "core/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"

typedef struct q_item {
    void *item;
    size_t bytes;
} q_item;

struct sl_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    q_item *ring;
    size_t cap, head, len;
    size_t bytes, max_bytes;
    bool closed;
};

sl_queue *sl_queue_new(size_t max_items, size_t max_bytes)
{
    if (max_items == 0) return NULL;
    sl_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->ring = calloc(max_items, sizeof *q->ring);
    if (!q->ring) {
        free(q);
        return NULL;
    }
    q->cap = max_items;
    q->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_full, &ca);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_condattr_destroy(&ca);
    return q;
}

void sl_queue_free(sl_queue *q)
{
    if (!q) return;
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    free(q);
}

static struct timespec deadline_after(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits on cv; returns false once the deadline passed. */
static bool wait_on(sl_queue *q, pthread_cond_t *cv, int64_t timeout_ms,
                    const struct timespec *deadline)
{
    if (timeout_ms == 0) return false;
    if (timeout_ms < 0) {
        pthread_cond_wait(cv, &q->mu);
        return true;
    }
    return pthread_cond_timedwait(cv, &q->mu, deadline) != ETIMEDOUT;
}

static bool has_room(const sl_queue *q, size_t bytes)
{
    if (q->len == q->cap) return false;
    return q->len == 0 || q->bytes + bytes <= q->max_bytes;
}

int sl_queue_push(sl_queue *q, void *item, size_t bytes, int64_t timeout_ms)
{
    struct timespec dl = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&q->mu);
    while (!q->closed && !has_room(q, bytes)) {
        if (!wait_on(q, &q->not_full, timeout_ms, &dl) && !has_room(q, bytes) && !q->closed) {
            pthread_mutex_unlock(&q->mu);
            return SL_EFULL;
        }
    }
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return SL_ECLOSED;
    }
    q->ring[(q->head + q->len) % q->cap] = (q_item){item, bytes};
    q->len++;
    q->bytes += bytes;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return SL_OK;
}

int sl_queue_pop(sl_queue *q, void **item, size_t *bytes, int64_t timeout_ms)
{
    struct timespec dl = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&q->mu);
    while (q->len == 0) {
        if (q->closed) {
            pthread_mutex_unlock(&q->mu);
            return SL_ECLOSED;
        }
        if (!wait_on(q, &q->not_empty, timeout_ms, &dl) && q->len == 0) {
            int rc = q->closed ? SL_ECLOSED : SL_ETIMEDOUT;
            pthread_mutex_unlock(&q->mu);
            return rc;
        }
    }
    q_item it = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->bytes -= it.bytes;
    /* Several producers may fit now that bytes were freed. */
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    *item = it.item;
    if (bytes) *bytes = it.bytes;
    return SL_OK;
}

void sl_queue_close(sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

size_t sl_queue_len(sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t sl_queue_bytes(sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->bytes;
    pthread_mutex_unlock(&q->mu);
    return n;
}
