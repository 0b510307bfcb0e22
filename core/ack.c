#include "core/ack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

/* Issued ranges form a FIFO in position order (inputs issue in order), kept
 * in a ring that grows on demand. Acks mark a range done (found by binary
 * search); the watermark advances past the done prefix. */
typedef struct wm_range {
    uint64_t begin, end;
    bool done;
} wm_range;

struct sl_watermark {
    atomic_int refs;
    pthread_mutex_t mu;
    uint64_t mark;     /* end of the acknowledged prefix */
    uint64_t last_end; /* end of the last issued range */
    wm_range *ring;
    size_t cap, head, len;
};

sl_watermark *sl_watermark_new(uint64_t start)
{
    sl_watermark *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->mu, NULL);
    w->mark = w->last_end = start;
    return w;
}

sl_watermark *sl_watermark_ref(sl_watermark *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void sl_watermark_unref(sl_watermark *w)
{
    if (!w || atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_destroy(&w->mu);
    free(w->ring);
    free(w);
}

static wm_range *at(sl_watermark *w, size_t i)
{
    return &w->ring[(w->head + i) % w->cap];
}

int sl_watermark_issue(sl_watermark *w, uint64_t begin, uint64_t end)
{
    if (end < begin) return SL_EINVAL;
    pthread_mutex_lock(&w->mu);
    if (begin < w->last_end) {
        pthread_mutex_unlock(&w->mu);
        return SL_EINVAL;
    }
    if (w->len == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        wm_range *r = malloc(cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&w->mu);
            return SL_ENOMEM;
        }
        for (size_t i = 0; i < w->len; i++) r[i] = *at(w, i);
        free(w->ring);
        w->ring = r;
        w->cap = cap;
        w->head = 0;
    }
    /* With nothing pending, a gap before begin is already complete. */
    if (w->len == 0) w->mark = begin;
    w->ring[(w->head + w->len) % w->cap] = (wm_range){begin, end, false};
    w->len++;
    w->last_end = end;
    pthread_mutex_unlock(&w->mu);
    return SL_OK;
}

int sl_watermark_ack(sl_watermark *w, uint64_t begin, uint64_t end)
{
    pthread_mutex_lock(&w->mu);
    size_t lo = 0, hi = w->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(w, mid)->begin < begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Empty ranges share a begin with their successor; find the exact one. */
    while (lo < w->len && at(w, lo)->begin == begin && (at(w, lo)->end != end || at(w, lo)->done))
        lo++;
    if (lo == w->len || at(w, lo)->begin != begin || at(w, lo)->end != end) {
        pthread_mutex_unlock(&w->mu);
        return SL_ENOENT;
    }
    at(w, lo)->done = true;
    while (w->len && at(w, 0)->done) {
        w->mark = at(w, 0)->end;
        w->head = (w->head + 1) % w->cap;
        w->len--;
    }
    /* The gap to the next pending range is complete too. */
    if (w->len) w->mark = at(w, 0)->begin;
    pthread_mutex_unlock(&w->mu);
    return SL_OK;
}

uint64_t sl_watermark_get(sl_watermark *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t m = w->mark;
    pthread_mutex_unlock(&w->mu);
    return m;
}

size_t sl_watermark_pending(sl_watermark *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->len;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void sl_watermark_reset(sl_watermark *w, uint64_t pos)
{
    pthread_mutex_lock(&w->mu);
    if (w->len == 0) w->mark = w->last_end = pos;
    pthread_mutex_unlock(&w->mu);
}
