#include "pipeline/buffer.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"

#define BUFFER_MAX_ITEMS 65536
/* Built entries kept for reuse, so their buffers are not allocated anew. */
#define PREP_SPARE 4
/* The spill thread looks this far from the head; one spill writes at most
 * this many entries (with one sync). */
#define PREP_AHEAD 16
/* Room past the bound for batches put back at the front: the one a failed
 * spill took out, and those sinks give back when stopping. */
#define RING_SLACK     64
#define SPOOL_RETRY_MS 100
#define BACKOFF_MAX_MS 1000
/* After a pop that found batches, a sink that finds memory empty waits this
 * long before it asks to be woken by each push (decision 0057): batches
 * that come back to back (10,000 small files) then cost no wake-up each on
 * the input's thread, and the sink takes them several at a time. An idle
 * sink asks at once, so a trickle is not held. */
#ifndef BUFFER_LINGER_NS
#define BUFFER_LINGER_NS 1000000LL
#endif
/* What a lingering sink is woken for at once: this much queued (or a
 * quarter of memory_max when that is smaller), or a flush_now batch. */
#define LINGER_WAKE_BYTES (256u << 10)
#define LINGER_WAKE_ITEMS 1024

/* One lock (mu) guards the memory ring and the flags, so pop can wait for
 * "memory or spool has something" and push for "memory or spool has room"
 * on one condition each. Spool I/O happens outside it; spill_mu makes one
 * pusher at a time move batches to the spool, so they keep their order.
 * Lock order: spill_mu, mu, then the spool's own locks. Bytes are the
 * records' text, which dominates a batch's memory; the item bound keeps
 * tiny batches bounded too.
 *
 * With a spool, a spill thread serialises and compresses the oldest
 * batches while memory is at least half full, so the pusher that finds
 * memory full only writes and syncs entries already built, while the input
 * threads go on parsing (decision 0031). What a push does and when it
 * returns are unchanged: a batch is acknowledged only once its entry is on
 * disk. */
typedef struct slot {
    sl_batch *b;
    sl_spool_prep *prep; /* its entry, built ahead by the spill thread */
} slot;

struct sl_buffer {
    pthread_mutex_t mu, spill_mu;
    pthread_cond_t cv_pop, cv_push;
    slot *ring;
    size_t cap, head, len; /* cap >= BUFFER_MAX_ITEMS + RING_SLACK */
    uint64_t bytes, max_bytes;
    bool closed;
    /* The inputs are stopping: pushes are refused, except the copies of a
     * batch another sink already took (sl_buffer_push_rest); pops go on. */
    bool refusing;
    bool spill; /* memory overflows into the spool */
    /* The sink's side of the wake-ups (decision 0057). pop_sleeping: it
     * waits on cv_pop and the next push signals it (once: the flag is
     * cleared by the signaller, so an awake sink is not signalled again).
     * pop_lingering: it waits on cv_pop until linger_until_ns, woken early
     * only for a reason (wake_bytes queued, a flush_now batch, a push that
     * must wait). Signals are sent after mu is released, so the sink does
     * not wake only to block on mu. */
    bool pop_sleeping, pop_lingering;
    int64_t linger_until_ns;
    uint64_t wake_bytes;
    uint64_t spool_max;     /* for sl_buffer_wait_room */
    uint64_t space_gen;     /* bumped when the spool frees space */
    int64_t spool_retry_ns; /* pop leaves the spool alone until then */
    int when_full;
    sl_spool *spool;
    char sink[128];
    sl_ratelimit rl;
    sl_metric *queued_bytes, *blocked_ns, *dropped;

    /* The spill thread (only with spill). mu guards all but work. */
    pthread_t spiller;
    bool has_spiller, stop_spiller;
    pthread_cond_t cv_work, cv_prepped;
    sl_batch *preparing; /* the batch the spill thread is building, or NULL */
    sl_spool_prep *spare[PREP_SPARE];
    size_t nspare;
    sl_spool_prep work; /* the spill thread's scratch (its raw buffer) */
};

static void on_space(void *arg)
{
    sl_buffer *b = arg;
    pthread_mutex_lock(&b->mu);
    b->space_gen++;
    pthread_cond_broadcast(&b->cv_push);
    pthread_mutex_unlock(&b->mu);
}

static bool has_segments(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        found = n > 4 && strcmp(de->d_name + n - 4, ".seg") == 0;
    }
    closedir(d);
    return found;
}

static bool usable_dir_name(const char *s)
{
    return s && *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

static void *spill_thread(void *arg);

int sl_buffer_new(const sl_buffer_opts *o, sl_buffer **out, sl_err *err)
{
    sl_buffer *b = calloc(1, sizeof *b);
    if (!b) return sl_errf(err, SL_ENOMEM, "buffer: out of memory");
    b->cap = BUFFER_MAX_ITEMS + RING_SLACK;
    b->ring = calloc(b->cap, sizeof *b->ring);
    if (!b->ring) {
        free(b);
        return sl_errf(err, SL_ENOMEM, "buffer: out of memory");
    }
    b->max_bytes = o->memory_max ? o->memory_max : UINT64_MAX;
    b->wake_bytes = b->max_bytes / 4 < LINGER_WAKE_BYTES ? b->max_bytes / 4 : LINGER_WAKE_BYTES;
    b->when_full = o->when_full;
    snprintf(b->sink, sizeof b->sink, "%s", o->sink ? o->sink : "");
    b->rl.interval_ns = 10 * 1000000000LL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->spill_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv_pop, &ca);
    pthread_cond_init(&b->cv_push, &ca);
    pthread_cond_init(&b->cv_work, NULL);
    pthread_cond_init(&b->cv_prepped, NULL);
    sl_spool_prep_init(&b->work);
    pthread_condattr_destroy(&ca);

    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", b->sink, NULL, NULL);
    b->queued_bytes =
        sl_gauge("sluice_sink_queue_bytes", "Bytes of records in the sink's memory queue.", labels);
    b->blocked_ns = sl_counter("sluice_sink_backpressure_seconds_total",
                               "Time inputs spent blocked by this sink's backpressure.", labels);
    char lab2[300];
    sl_metric_labels(lab2, sizeof lab2, "sink", b->sink, "reason", "buffer_full");
    b->dropped =
        sl_counter("sluice_sink_dropped_records_total", "Records dropped by reason.", lab2);

    /* A spool left from a configuration that had one is still replayed. */
    bool leftover = o->spool_max == 0 && o->spool_dir && has_segments(o->spool_dir);
    if (o->spool_max > 0 || leftover) {
        if (!o->spool_dir || !usable_dir_name(o->sink)) {
            sl_buffer_free(b);
            return sl_errf(err, SL_EINVAL, "sink '%s': name cannot be a spool directory",
                           o->sink ? o->sink : "");
        }
        uint64_t seg = o->segment_bytes;
        if (!seg) {
            /* Several segments per spool, so delivery frees space and
             * drop_oldest drops a fraction, not everything. */
            seg = (uint64_t)64 << 20;
            if (o->spool_max && o->spool_max / 8 < seg) seg = o->spool_max / 8;
            if (seg < (16u << 10)) seg = 16u << 10;
        }
        sl_spool_opts so = {.dir = o->spool_dir,
                            .sink = b->sink,
                            .max_bytes = o->spool_max,
                            .segment_bytes = seg,
                            .fsync = o->fsync,
                            .on_space = on_space,
                            .on_space_arg = b};
        int rc = sl_spool_open(&so, &b->spool, err);
        if (rc != SL_OK) {
            b->spool = NULL;
            sl_buffer_free(b);
            return rc;
        }
        b->spill = o->spool_max > 0;
        b->spool_max = o->spool_max;
        if (b->spill) {
            rc = pthread_create(&b->spiller, NULL, spill_thread, b);
            if (rc != 0) {
                sl_buffer_free(b);
                return sl_errf(err, SL_ENOMEM, "sink '%s': cannot start the spill thread: %s",
                               o->sink ? o->sink : "", strerror(rc));
            }
            b->has_spiller = true;
        }
        if (leftover)
            sl_log(SL_LOG_INFO, "spool_drain_only", "sink=%s dir=%s", b->sink, o->spool_dir);
    }
    *out = b;
    return SL_OK;
}

static bool mem_room(const sl_buffer *b, uint64_t n)
{
    return b->len < BUFFER_MAX_ITEMS && (b->len == 0 || b->bytes + n <= b->max_bytes);
}

/* Memory half full: time to build the oldest batches' entries. */
static bool filling_locked(const sl_buffer *b)
{
    return b->len > 0 && (b->bytes >= b->max_bytes / 2 || b->len >= BUFFER_MAX_ITEMS / 2);
}

static void recycle_prep_locked(sl_buffer *b, sl_spool_prep *p)
{
    if (!p) return;
    if (b->nspare < PREP_SPARE) {
        b->spare[b->nspare++] = p;
        return;
    }
    sl_spool_prep_free(p);
    free(p);
}

static void enqueue_locked(sl_buffer *b, sl_batch *x)
{
    b->ring[(b->head + b->len) % b->cap] = (slot){x, NULL};
    b->len++;
    b->bytes += sl_batch_footprint(x);
    sl_metric_gauge_add(b->queued_bytes, (int64_t)sl_batch_footprint(x));
    if (b->has_spiller && filling_locked(b)) pthread_cond_signal(&b->cv_work);
}

/* Whether the sink must be signalled now (after mu is released); urgent:
 * the sink should not wait out its linger. Clears the sink's flags, so one
 * signal is sent per sleep, not one per push. */
static bool wake_popper_locked(sl_buffer *b, bool urgent)
{
    if (b->pop_sleeping || (b->pop_lingering &&
                            (urgent || b->bytes >= b->wake_bytes || b->len >= LINGER_WAKE_ITEMS))) {
        b->pop_sleeping = false;
        b->pop_lingering = false;
        return true;
    }
    return false;
}

/* Takes the head; its built entry (if any) goes to *prep, or is recycled
 * when prep is NULL. */
static sl_batch *dequeue_prep_locked(sl_buffer *b, sl_spool_prep **prep)
{
    sl_batch *x = b->ring[b->head].b;
    if (prep)
        *prep = b->ring[b->head].prep;
    else
        recycle_prep_locked(b, b->ring[b->head].prep);
    b->ring[b->head].prep = NULL;
    b->head = (b->head + 1) % b->cap;
    b->len--;
    b->bytes -= sl_batch_footprint(x);
    sl_metric_gauge_add(b->queued_bytes, -(int64_t)sl_batch_footprint(x));
    /* Several producers may fit now that bytes were freed. */
    pthread_cond_broadcast(&b->cv_push);
    return x;
}

static sl_batch *dequeue_locked(sl_buffer *b)
{
    return dequeue_prep_locked(b, NULL);
}

/* Puts x back at the head; false when the ring is full and cannot grow. */
/* Doubles the ring, keeping its order. Only batches given back grow it
 * (pushes stop at BUFFER_MAX_ITEMS): they exist already, and the slots
 * they take are theirs. */
static bool grow_ring_locked(sl_buffer *b)
{
    size_t nc = b->cap * 2;
    slot *r = calloc(nc, sizeof *r);
    if (!r) return false;
    for (size_t i = 0; i < b->len; i++) r[i] = b->ring[(b->head + i) % b->cap];
    free(b->ring);
    b->ring = r;
    b->cap = nc;
    b->head = 0;
    return true;
}

static bool push_front_prep_locked(sl_buffer *b, sl_batch *x, sl_spool_prep *prep, size_t keep_free)
{
    /* A sink gives back what it popped while the inputs filled the slots
     * it freed: the ring grows rather than drop what was given back (it
     * would be read again only after a restart). */
    if (b->len + keep_free >= b->cap && !grow_ring_locked(b)) return false;
    b->head = (b->head + b->cap - 1) % b->cap;
    b->ring[b->head] = (slot){x, prep};
    b->len++;
    b->bytes += sl_batch_footprint(x);
    sl_metric_gauge_add(b->queued_bytes, (int64_t)sl_batch_footprint(x));
    if (wake_popper_locked(b, true)) pthread_cond_signal(&b->cv_pop);
    return true;
}

static bool push_front_locked(sl_buffer *b, sl_batch *x, size_t keep_free)
{
    return push_front_prep_locked(b, x, NULL, keep_free);
}

/* The oldest batch in memory without a built entry, among those a spill
 * would take next (the oldest half of memory); NULL when none. */
static sl_batch *next_to_prepare_locked(sl_buffer *b)
{
    if (!filling_locked(b)) return NULL;
    uint64_t before = 0;
    for (size_t i = 0; i < b->len && i < PREP_AHEAD; i++) {
        slot *sl = &b->ring[(b->head + i) % b->cap];
        if (i > 0 && before + sl_batch_footprint(sl->b) > b->max_bytes / 2) return NULL;
        if (!sl->prep) return sl->b;
        before += sl_batch_footprint(sl->b);
    }
    return NULL;
}

/* Builds the entries of the batches the next spill will take, beside the
 * input threads: the batch stays in memory (and counted) meanwhile, and may
 * be popped or spilled by someone else, which wastes only the work. */
static void *spill_thread(void *arg)
{
    sl_buffer *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stop_spiller) {
        sl_batch *x = next_to_prepare_locked(b);
        if (!x) {
            pthread_cond_wait(&b->cv_work, &b->mu);
            continue;
        }
        sl_spool_prep *p = b->nspare ? b->spare[--b->nspare] : NULL;
        b->preparing = sl_batch_ref(x);
        pthread_mutex_unlock(&b->mu);
        if (!p && (p = malloc(sizeof *p))) sl_spool_prep_init(p);
        sl_err err;
        int rc = p ? sl_spool_prepare(b->spool, &b->work, x, &err) : SL_ENOMEM;
        if (rc == SL_OK) {
            /* Copied out at its compressed size: the scratch keeps the
             * compression bound's capacity, the entries kept beside their
             * batches only what they need. */
            sl_buf_reset(&p->out);
            if (sl_buf_append(&p->out, b->work.out.p, b->work.out.len) == SL_OK)
                p->nrec = b->work.nrec;
            else
                rc = SL_ENOMEM;
        }
        pthread_mutex_lock(&b->mu);
        b->preparing = NULL;
        bool placed = false;
        for (size_t i = 0; rc == SL_OK && i < b->len && i < PREP_AHEAD; i++) {
            slot *sl = &b->ring[(b->head + i) % b->cap];
            if (sl->b == x && !sl->prep) {
                sl->prep = p;
                placed = true;
                break;
            }
        }
        if (!placed && p) recycle_prep_locked(b, p);
        pthread_cond_broadcast(&b->cv_prepped);
        pthread_mutex_unlock(&b->mu);
        sl_batch_unref(x);
        pthread_mutex_lock(&b->mu);
        /* A failed build (a batch too large for one entry) is left to the
         * spill itself, which reports it; do not spin on it. */
        if (rc != SL_OK && next_to_prepare_locked(b) == x && !b->stop_spiller)
            pthread_cond_wait(&b->cv_work, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
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

/* Waits on cv for at most ms (< 0: no limit), adding the time to *waited. */
static void timed_wait(sl_buffer *b, pthread_cond_t *cv, int64_t ms, int64_t *waited)
{
    int64_t t0 = sl_monotonic_ns();
    if (ms < 0)
        pthread_cond_wait(cv, &b->mu);
    else {
        struct timespec dl = deadline_after(ms);
        pthread_cond_timedwait(cv, &b->mu, &dl);
    }
    *waited += sl_monotonic_ns() - t0;
}

/* Moves the oldest batch in memory to the spool: with their entries built
 * ahead, the oldest run of built batches in the oldest half of memory, in
 * one append (one sync). Returns 0 when it did (or there was nothing to
 * move), otherwise how many ms to wait before trying again; *gen is the
 * space generation seen before the attempt. */
static int64_t spill_oldest(sl_buffer *b, int64_t *backoff_ms, uint64_t *gen)
{
    pthread_mutex_lock(&b->spill_mu);
    pthread_mutex_lock(&b->mu);
    *gen = b->space_gen;
    /* The spill thread is building the head's entry: it is nearly done. */
    while (!b->closed && b->len > 0 && b->preparing == b->ring[b->head].b)
        pthread_cond_wait(&b->cv_prepped, &b->mu);
    if (b->closed || b->len == 0) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_unlock(&b->spill_mu);
        return 0;
    }
    sl_batch *victim[PREP_AHEAD];
    sl_spool_prep *prep[PREP_AHEAD];
    size_t n = 0;
    uint64_t taken = 0;
    do {
        taken += sl_batch_footprint(b->ring[b->head].b);
        victim[n] = dequeue_prep_locked(b, &prep[n]);
        n++;
    } while (prep[0] && n < PREP_AHEAD && b->len > 0 && b->ring[b->head].prep &&
             taken + sl_batch_footprint(b->ring[b->head].b) <= b->max_bytes / 2);
    pthread_mutex_unlock(&b->mu);
    sl_err err;
    size_t written = 0;
    int rc = prep[0] ? sl_spool_append_prepared(b->spool, prep, n, &written, &err)
                     : sl_spool_append(b->spool, victim, 1, &written, &err);
    pthread_mutex_lock(&b->mu);
    /* Not spooled: back to the front, where they were, newest first. The
     * ring's slack always has room for them (spill_mu makes these the only
     * victims, and PREP_AHEAD < RING_SLACK). */
    for (size_t i = n; i-- > written;) push_front_prep_locked(b, victim[i], prep[i], 0);
    for (size_t i = 0; i < written; i++) recycle_prep_locked(b, prep[i]);
    if (written) pthread_cond_signal(&b->cv_pop);
    if (rc == SL_OK) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_unlock(&b->spill_mu);
        for (size_t i = 0; i < written; i++)
            sl_batch_done(victim[i]); /* durably spooled: the spool owns it now */
        *backoff_ms = 10;
        return 0;
    }
    int64_t wait_ms;
    if (rc == SL_EFULL) {
        wait_ms = SPOOL_RETRY_MS; /* delivery wakes us sooner (on_space) */
    } else {
        /* Disk full or failing: hold on to the data and retry, never lose it. */
        wait_ms = *backoff_ms;
        *backoff_ms = *backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff_ms * 2;
        uint64_t skipped;
        if (sl_ratelimit_ok(&b->rl, &skipped))
            sl_log(SL_LOG_ERROR, "spool_write_failed",
                   "sink=%s error=\"%s\" action=retry_in_%" PRId64 "ms repeated=%" PRIu64, b->sink,
                   err.msg, wait_ms, skipped);
    }
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_unlock(&b->spill_mu);
    for (size_t i = 0; i < written; i++) sl_batch_done(victim[i]);
    if (written) return 0;
    if (rc == SL_EFULL && b->when_full == SL_WHEN_FULL_DROP_OLDEST) {
        uint64_t lost = 0;
        if (sl_spool_drop_oldest(b->spool, &lost) == SL_OK) return 0;
    }
    return wait_ms;
}

static int push(sl_buffer *b, sl_batch *batch, bool rest)
{
    int64_t waited = 0, backoff_ms = 10;
    int rc;
    bool wake = false;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->closed || (b->refusing && !rest)) {
            rc = SL_ECLOSED;
            break;
        }
        if (mem_room(b, sl_batch_footprint(batch))) {
            enqueue_locked(b, batch);
            wake = wake_popper_locked(b, batch->flush_now);
            rc = SL_OK;
            break;
        }
        if (b->refusing) {
            /* Past the bound, by at most one batch per input thread, with
             * half the ring's slack left for the sinks' give-backs. */
            rc = b->len + RING_SLACK / 2 < b->cap ? SL_OK : SL_ECLOSED;
            if (rc == SL_OK) {
                enqueue_locked(b, batch);
                wake = wake_popper_locked(b, true);
            }
            break;
        }
        /* Full: a lingering sink is not left to wait out its linger. */
        if (wake_popper_locked(b, true)) pthread_cond_signal(&b->cv_pop);
        if (!b->spill) {
            if (b->when_full == SL_WHEN_FULL_DROP_OLDEST) {
                sl_batch *old = dequeue_locked(b);
                uint64_t skipped;
                bool log = sl_ratelimit_ok(&b->rl, &skipped);
                pthread_mutex_unlock(&b->mu);
                sl_metric_add(b->dropped, old->nrecords);
                if (log)
                    sl_log(SL_LOG_WARN, "buffer_dropped_oldest",
                           "sink=%s records=%u reason=when_full_drop_oldest repeated=%" PRIu64,
                           b->sink, old->nrecords, skipped);
                sl_batch_done(old); /* permanently dropped: counted, acknowledged */
                pthread_mutex_lock(&b->mu);
                continue;
            }
            timed_wait(b, &b->cv_push, -1, &waited);
            continue;
        }
        pthread_mutex_unlock(&b->mu);
        uint64_t gen;
        int64_t wait_ms = spill_oldest(b, &backoff_ms, &gen);
        pthread_mutex_lock(&b->mu);
        if (wait_ms > 0 && !b->closed && !b->refusing && !mem_room(b, sl_batch_footprint(batch)) &&
            gen == b->space_gen)
            timed_wait(b, &b->cv_push, wait_ms, &waited);
    }
    pthread_mutex_unlock(&b->mu);
    /* After the unlock: the woken sink does not then block on mu. */
    if (wake) pthread_cond_signal(&b->cv_pop);
    if (waited > 0) sl_metric_add(b->blocked_ns, (uint64_t)waited);
    return rc;
}

int sl_buffer_push(sl_buffer *b, sl_batch *batch)
{
    return push(b, batch, false);
}

int sl_buffer_push_rest(sl_buffer *b, sl_batch *batch)
{
    return push(b, batch, true);
}

int sl_buffer_wait_room(sl_buffer *b, sl_batch *batch, int64_t wait_ms)
{
    int64_t deadline = sl_monotonic_ns() + wait_ms * 1000000, waited = 0;
    int rc;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->closed || b->refusing) {
            rc = SL_ECLOSED;
            break;
        }
        /* A push would not wait for the sink: room in memory, room in the
         * spool to spill to, or the oldest to drop. */
        if (mem_room(b, sl_batch_footprint(batch)) || b->when_full == SL_WHEN_FULL_DROP_OLDEST) {
            rc = SL_OK;
            break;
        }
        if (b->spill) {
            /* The spool's lock is taken before ours (on_space): not under mu. */
            pthread_mutex_unlock(&b->mu);
            sl_spool_usage u;
            sl_spool_get_usage(b->spool, &u);
            pthread_mutex_lock(&b->mu);
            if (u.bytes + sl_batch_footprint(batch) <= b->spool_max) {
                rc = SL_OK;
                break;
            }
        }
        int64_t left_ms = (deadline - sl_monotonic_ns()) / 1000000;
        if (left_ms <= 0) {
            rc = SL_EFULL;
            break;
        }
        timed_wait(b, &b->cv_push, left_ms, &waited);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int sl_buffer_spill(sl_buffer *b)
{
    if (!b->spill) return SL_OK;
    pthread_mutex_lock(&b->mu);
    size_t n = b->len; /* what is there now; later pushes are not chased */
    pthread_mutex_unlock(&b->mu);
    int64_t backoff_ms = 10;
    for (size_t i = 0; i < n; i++) {
        uint64_t gen;
        if (spill_oldest(b, &backoff_ms, &gen) != 0) return SL_EFULL;
    }
    return SL_OK;
}

int sl_buffer_pop_many(sl_buffer *b, sl_batch **out, uint32_t max_n, uint64_t max_bytes,
                       uint32_t *n, int64_t timeout_ms)
{
    *n = 0;
    if (max_n == 0) return SL_EINVAL;
    int64_t deadline = timeout_ms >= 0 ? sl_monotonic_ns() + timeout_ms * 1000000 : INT64_MAX;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        int64_t now = sl_monotonic_ns();
        bool mem = b->len > 0;
        bool sp =
            b->spool && !b->closed && now >= b->spool_retry_ns && sl_spool_unread(b->spool) > 0;
        if (sp) { /* the spool holds the older data: one entry at a time */
            pthread_mutex_unlock(&b->mu);
            int rc = sl_spool_next(b->spool, out);
            if (rc == SL_OK) {
                *n = 1;
                return SL_OK;
            }
            pthread_mutex_lock(&b->mu);
            /* Out of memory (or counts that raced a drop): memory first,
             * the spool again shortly. */
            b->spool_retry_ns =
                sl_monotonic_ns() + (rc == SL_ENOMEM ? SPOOL_RETRY_MS : 10) * 1000000LL;
            continue;
        }
        if (mem) {
            /* The head always; then what follows while it fits: one lock
             * and one wake-up for all that is queued. */
            uint64_t text = 0;
            do {
                sl_batch *x = dequeue_locked(b);
                text += x->bytes;
                out[(*n)++] = x;
            } while (*n < max_n && b->len > 0 && text + b->ring[b->head].b->bytes <= max_bytes);
            b->linger_until_ns = now + BUFFER_LINGER_NS;
            pthread_mutex_unlock(&b->mu);
            return SL_OK;
        }
        if (b->closed) {
            pthread_mutex_unlock(&b->mu);
            return SL_ECLOSED;
        }
        if (now >= deadline) {
            pthread_mutex_unlock(&b->mu);
            return SL_ETIMEDOUT;
        }
        int64_t wake = deadline;
        if (b->spool && b->spool_retry_ns > now && b->spool_retry_ns < wake)
            wake = b->spool_retry_ns;
        /* Batches came back to back until just now: wait a little for the
         * next ones without a wake-up per push; otherwise ask for one. */
        bool linger = now < b->linger_until_ns;
        if (linger && b->linger_until_ns < wake) wake = b->linger_until_ns;
        b->pop_lingering = linger;
        b->pop_sleeping = !linger;
        if (wake == INT64_MAX)
            pthread_cond_wait(&b->cv_pop, &b->mu);
        else {
            struct timespec ts = {(time_t)(wake / 1000000000), (long)(wake % 1000000000)};
            pthread_cond_timedwait(&b->cv_pop, &b->mu, &ts);
        }
        b->pop_lingering = false;
        b->pop_sleeping = false;
    }
}

int sl_buffer_pop(sl_buffer *b, sl_batch **out, int64_t timeout_ms)
{
    uint32_t n;
    return sl_buffer_pop_many(b, out, 1, 0, &n, timeout_ms);
}

void sl_buffer_unpop(sl_buffer *b, sl_batch *batch)
{
    pthread_mutex_lock(&b->mu);
    bool kept = true;
    if (b->spool && batch->on_done_arg == b->spool && !batch->ticket.wm) {
        sl_spool_requeue(b->spool, batch);
        pthread_cond_signal(&b->cv_pop);
    } else {
        kept = push_front_locked(b, batch, 1); /* a slot stays free for a spill */
    }
    pthread_mutex_unlock(&b->mu);
    if (!kept) sl_batch_unref(batch); /* unacknowledged: read again from the source */
}

void sl_buffer_refuse(sl_buffer *b)
{
    pthread_mutex_lock(&b->mu);
    b->refusing = true;
    pthread_cond_broadcast(&b->cv_push);
    pthread_mutex_unlock(&b->mu);
}

void sl_buffer_close(sl_buffer *b)
{
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    pthread_cond_broadcast(&b->cv_pop);
    pthread_cond_broadcast(&b->cv_push);
    pthread_mutex_unlock(&b->mu);
}

uint64_t sl_buffer_bytes(sl_buffer *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->bytes;
    pthread_mutex_unlock(&b->mu);
    return n;
}

sl_spool *sl_buffer_spool(sl_buffer *b)
{
    return b->spool;
}

void sl_buffer_free(sl_buffer *b)
{
    sl_buffer_free_counted(b, NULL);
}

void sl_buffer_free_counted(sl_buffer *b, sl_buffer_leftover *out)
{
    if (out) *out = (sl_buffer_leftover){0};
    if (!b) return;
    if (b->has_spiller) {
        pthread_mutex_lock(&b->mu);
        b->stop_spiller = true;
        pthread_cond_broadcast(&b->cv_work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->spiller, NULL);
        b->has_spiller = false;
    }
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    size_t n = b->len;
    sl_batch **left = n ? malloc(n * sizeof *left) : NULL;
    for (size_t i = 0; i < n; i++) {
        sl_batch *x = dequeue_locked(b);
        if (left)
            left[i] = x;
        else
            sl_batch_unref(x);
    }
    pthread_mutex_unlock(&b->mu);
    if (left) {
        /* The sink could not deliver these in time: spooling them lets the
         * source's checkpoint move on and ships them first at the next
         * start. What does not fit stays unacknowledged and is read again
         * from the source. */
        size_t written = 0;
        uint64_t records = 0, unspooled = 0;
        sl_err err = {0};
        int rc = b->spill ? sl_spool_append(b->spool, left, n, &written, &err) : SL_OK;
        for (size_t i = 0; i < n; i++) {
            if (i < written) {
                records += left[i]->nrecords;
                sl_batch_done(left[i]);
            } else {
                unspooled += left[i]->nrecords;
                sl_batch_unref(left[i]);
            }
        }
        if (out) {
            out->spooled_records += records;
            out->left_records += unspooled;
        }
        if (written)
            sl_log(SL_LOG_INFO, "buffer_spooled_on_close", "sink=%s batches=%zu records=%" PRIu64,
                   b->sink, written, records);
        if (written < n)
            sl_log(SL_LOG_WARN, "buffer_released_on_close",
                   "sink=%s batches=%zu records=%" PRIu64 " action=reread_from_source error=\"%s\"",
                   b->sink, n - written, unspooled, rc == SL_OK ? "no spool" : err.msg);
        free(left);
    }
    sl_spool_close(b->spool);
    pthread_cond_destroy(&b->cv_pop);
    pthread_cond_destroy(&b->cv_push);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_prepped);
    for (size_t i = 0; i < b->nspare; i++) {
        sl_spool_prep_free(b->spare[i]);
        free(b->spare[i]);
    }
    sl_spool_prep_free(&b->work);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->spill_mu);
    free(b->ring);
    free(b);
}
