/* The spool's reader: hands entries out oldest first (given-back ones
 * before them), counts damage found on the way, and deletes segments once
 * every entry is delivered; also drop-oldest and the usage counts. Apart
 * from spool.c because it runs on the sink's thread under its own lock
 * (rmu), while the writer runs on the producer's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/spool_internal.h"

/* ----------------------------------------------------------------- reader */

/* First segment at or after sequence first; NULL when none. */
static seg *find_seg_locked(sl_spool *s, uint64_t first)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].first >= first) return &s->segs[i];
    return NULL;
}

static void entry_done(sl_batch *b, void *arg)
{
    sl_spool *s = arg;
    /* When no append is running, the segment being written goes too once
     * all of it is delivered: otherwise, after an outage, a spool nobody
     * writes to any more would keep up to a segment of delivered data on
     * disk (and in sluice_spool_bytes) until the next spill. Never waits
     * for the writer: it deletes that segment itself on its next append. */
    bool idle = pthread_mutex_trylock(&s->wmu) == 0;
    pthread_mutex_lock(&s->mu);
    sl_watermark_ack(s->wm, b->ticket.begin, b->ticket.end);
    s->pending_records = sat_sub(s->pending_records, b->nrecords);
    sl_spool_collect_locked(s, idle && s->npend == 0);
    bool drop_fd = idle && !s->active && s->wfd >= 0;
    sl_spool_update_gauges_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (drop_fd) {
        close(s->wfd); /* unlinked: frees the space now */
        s->wfd = -1;
    }
    if (idle) pthread_mutex_unlock(&s->wmu);
    sl_spool_persist_cursor(s, false);
    if (s->o.on_space) s->o.on_space(s->o.on_space_arg);
}

/* Entries of the segment being read that were counted as unread but will
 * never be read (damaged or gone since) stop counting. */
static void forget_unread(sl_spool *s)
{
    pthread_mutex_lock(&s->mu);
    seg *g = find_seg_locked(s, s->rseg);
    if (g && g->first == s->rseg) {
        s->unread_entries = sat_sub(s->unread_entries, g->unread_entries);
        s->pending_records = sat_sub(s->pending_records, g->unread_records);
        if (g->first < s->replay_end) s->replay_left = sat_sub(s->replay_left, g->unread_entries);
        g->unread_entries = g->unread_records = 0;
        sl_spool_collect_locked(s, false);
        sl_spool_update_gauges_locked(s);
    }
    pthread_mutex_unlock(&s->mu);
}

/* The reader leaves the segment it was in; whatever it still counted as
 * unread (entries damaged since they were counted) is forgotten. */
static void leave_segment(sl_spool *s)
{
    forget_unread(s);
    if (s->rd.fd >= 0) close(s->rd.fd);
    sl_segrd_free(&s->rd);
    sl_segrd_init(&s->rd, -1, NULL, 0);
    s->rin = false;
    s->rseg++;
    s->roff = 0;
}

/* reason: "framing" (bytes that are no valid entry: torn, flipped, cut) or
 * "payload" (checksums hold, the payload does not decode or breaks what
 * the encoder writes: decision 0054), so an operator can tell a disk's
 * damage from contents written by something else. */
static void count_damage(sl_spool *s, uint64_t n, uint64_t at, const char *reason)
{
    sl_metric_add(s->m_corrupt, n);
    uint64_t skipped;
    if (sl_ratelimit_ok(&s->rl_read, &skipped))
        sl_log(SL_LOG_WARN, "spool_corrupt_entries",
               "sink=%s segment=%020" PRIu64 ".seg offset=%" PRIu64 " damaged_entries=%" PRIu64
               " reason=%s repeated=%" PRIu64,
               s->sink, s->rseg, at, n, reason, skipped);
}

void sl_spool_requeue(sl_spool *s, sl_batch *b)
{
    pthread_mutex_lock(&s->mu);
    if (s->nrq == s->cap_rq) {
        size_t nc = s->cap_rq ? s->cap_rq * 2 : 8;
        sl_batch **n = realloc(s->rq, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&s->mu);
            sl_batch_unref(b); /* the cursor stays before it: replayed after a restart */
            return;
        }
        s->rq = n;
        s->cap_rq = nc;
    }
    size_t i = s->nrq;
    while (i > 0 && s->rq[i - 1]->ticket.begin > b->ticket.begin) {
        s->rq[i] = s->rq[i - 1];
        i--;
    }
    s->rq[i] = b;
    s->nrq++;
    pthread_mutex_unlock(&s->mu);
}

int sl_spool_next(sl_spool *s, sl_batch **out)
{
    int rc = SL_ENOENT;
    pthread_mutex_lock(&s->mu);
    if (s->nrq) {
        *out = s->rq[0];
        memmove(s->rq, s->rq + 1, --s->nrq * sizeof *s->rq);
        pthread_mutex_unlock(&s->mu);
        return SL_OK;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->rmu);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        seg *g = find_seg_locked(s, s->rseg);
        if (!g) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (!s->rin || g->first != s->rseg) { /* the next one (or ours was deleted) */
            if (s->rd.fd >= 0) close(s->rd.fd);
            sl_segrd_free(&s->rd);
            sl_segrd_init(&s->rd, -1, NULL, 0);
            s->rin = true;
            s->rseg = g->first;
            s->roff = 0;
            s->rlast = g->first - 1;
            if (g->first >= s->replay_end) s->replay_left = 0;
        }
        uint64_t size = g->bytes, scanned = g->scanned;
        bool last = g == &s->segs[s->nsegs - 1];
        uint64_t next_first = last ? 0 : g[1].first;
        bool stale = s->roff >= size && last && g->unread_entries;
        pthread_mutex_unlock(&s->mu);

        if (s->roff >= size) {
            if (stale) forget_unread(s); /* counted, not found: damaged since */
            if (last) break;
            leave_segment(s);
            continue;
        }
        if (s->rd.fd < 0) {
            char path[4200];
            sl_spool_seg_path(path, sizeof path, s->dir, s->rseg);
            int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
            if (fd < 0) {
                /* Gone or unreadable: what it held cannot be delivered. */
                uint64_t skipped;
                if (sl_ratelimit_ok(&s->rl_read, &skipped))
                    sl_log(SL_LOG_ERROR, "spool_segment_unreadable",
                           "sink=%s segment=%s error=\"%s\"", s->sink, path, strerror(errno));
                forget_unread(s);
                if (!last) {
                    leave_segment(s);
                    continue;
                }
                s->roff = size;
                break;
            }
            sl_segrd_init(&s->rd, fd, NULL, size);
        }
        s->rd.size = size;
        s->rd.err = 0;
        uint64_t before = s->roff, bad_at;
        entry e;
        bool got = sl_segrd_next(&s->rd, &s->roff, &e, &bad_at);
        if (s->rd.err == ENOMEM && !got) {
            s->roff = before;
            rc = SL_ENOMEM;
            break;
        }
        if (bad_at != UINT64_MAX && bad_at >= scanned) {
            uint64_t end = got ? e.off : size;
            count_damage(s,
                         sl_spool_region_entries(s->rlast, got ? e.seq : next_first, end - bad_at),
                         bad_at, "framing");
        }
        if (!got) continue;
        uint64_t prev_last = s->rlast;
        s->rlast = e.seq;
        if (e.seq < s->cursor0) continue; /* delivered before the restart */
        sl_batch *b = NULL;
        int d = sl_spool_decode_entry(&s->rd, &e, s->dctx, &b);
        if (d == SL_ENOMEM) {
            s->roff = e.off;
            s->rlast = prev_last;
            rc = SL_ENOMEM;
            break;
        }
        pthread_mutex_lock(&s->mu);
        g = find_seg_locked(s, s->rseg);
        if (g && g->first == s->rseg && g->unread_entries) {
            g->unread_entries--;
            g->unread_records = sat_sub(g->unread_records, e.records);
            s->unread_entries = sat_sub(s->unread_entries, 1);
            if (e.seq < s->replay_end) s->replay_left = sat_sub(s->replay_left, 1);
            if (d != SL_OK) s->pending_records = sat_sub(s->pending_records, e.records);
        }
        int wrc = d == SL_OK ? sl_watermark_issue(s->wm, e.seq, e.seq + 1) : SL_OK;
        sl_spool_update_gauges_locked(s);
        pthread_mutex_unlock(&s->mu);
        if (d != SL_OK) {
            count_damage(s, 1, e.off, "payload");
            continue;
        }
        if (wrc == SL_ENOMEM) { /* hand it out later */
            sl_batch_unref(b);
            s->roff = e.off;
            s->rlast = prev_last;
            rc = SL_ENOMEM;
            break;
        }
        /* A sequence out of order (only a tampered file has one) is still
         * delivered, just not tracked by the cursor. */
        b->ticket = wrc == SL_OK ? (sl_ack_ticket){NULL, e.seq, e.seq + 1} : (sl_ack_ticket){0};
        b->on_done = entry_done;
        b->on_done_arg = s;
        sl_metric_add(s->m_replayed, b->nrecords);
        *out = b;
        rc = SL_OK;
        break;
    }
    pthread_mutex_unlock(&s->rmu);
    return rc;
}

uint64_t sl_spool_unread(sl_spool *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->unread_entries + s->nrq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool sl_spool_replaying(sl_spool *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->replay_left > 0;
    pthread_mutex_unlock(&s->mu);
    return r;
}

int sl_spool_drop_oldest(sl_spool *s, uint64_t *records)
{
    *records = 0;
    pthread_mutex_lock(&s->wmu);
    pthread_mutex_lock(&s->rmu);
    pthread_mutex_lock(&s->mu);
    if (s->nsegs == 0) {
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->rmu);
        pthread_mutex_unlock(&s->wmu);
        return SL_ENOENT;
    }
    seg g = s->segs[0];
    if (s->active && s->nsegs == 1) {
        if (s->wfd >= 0) close(s->wfd);
        s->wfd = -1;
        s->active = false;
    }
    sl_spool_remove_seg_locked(s, 0);
    sl_spool_update_gauges_locked(s);
    if (s->rseg == g.first) {
        /* Handed-out entries of it may still be delivered; the rest are gone. */
        if (s->rd.fd >= 0) close(s->rd.fd);
        sl_segrd_free(&s->rd);
        sl_segrd_init(&s->rd, -1, NULL, 0);
        s->rin = false;
        s->rseg = g.first + 1;
        s->roff = 0;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->rmu);
    pthread_mutex_unlock(&s->wmu);
    sl_metric_add(s->m_dropped, g.unread_records);
    sl_log(SL_LOG_WARN, "spool_segment_dropped",
           "sink=%s segment=%020" PRIu64 ".seg bytes=%" PRIu64 " records=%" PRIu64
           " reason=when_full_drop_oldest",
           s->sink, g.first, g.bytes, g.unread_records);
    *records = g.unread_records;
    return SL_OK;
}

void sl_spool_get_usage(sl_spool *s, sl_spool_usage *u)
{
    pthread_mutex_lock(&s->mu);
    u->bytes = s->bytes;
    u->segments = s->nsegs;
    u->unread_entries = s->unread_entries;
    u->pending_records = s->pending_records;
    pthread_mutex_unlock(&s->mu);
    u->cursor = sl_watermark_get(s->wm);
}
