/* The live spool's state, shared by spool.c (open, close, segment list,
 * cursor, writer) and spool_reader.c; private to them. pipeline/spool.h
 * stays the public header. spool.c was one 2,100-line file until its
 * codec, segment reading, reader and inspection became files of their own:
 *
 *   spool.c          open, close, segment list and cursor, the writer
 *   spool_reader.c   handing entries out, give-back, drop-oldest, usage
 *   spool_codec.c    batch <-> entry payload (the layout is there)
 *   spool_segment.c  reading a segment file or image; file names; cursor file
 *   spool_inspect.c  read-only scans for `sluice spool` and the fuzzer */
#ifndef SLUICE_SHIPPER_SPOOL_INTERNAL_H
#define SLUICE_SHIPPER_SPOOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "pipeline/spool.h"
#include "pipeline/spool_codec.h"
#include "pipeline/spool_segment.h"

static inline uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

typedef struct seg {
    uint64_t first;   /* first sequence: the file name */
    uint64_t last;    /* last valid sequence (first - 1: none yet) */
    uint64_t bytes;   /* committed size: readers never look past it */
    uint64_t scanned; /* damage below this offset was counted at open */
    uint64_t unread_entries, unread_records;
} seg;

typedef struct pend {
    uint64_t seq, size;
    uint32_t records;
} pend;

/* Locks, always taken in this order: wmu (writer), rmu (reader), mu
 * (segment list, counts, watermark), cmu (cursor file). The writer and the
 * reader do their file I/O holding only their own lock. */
struct sl_spool {
    sl_spool_opts o;
    char *dir, *sink;
    uint64_t seg_bytes;
    int lock_fd;
    pthread_mutex_t wmu, rmu, mu, cmu;

    /* mu */
    seg *segs;
    size_t nsegs, cap;
    bool active; /* segs[nsegs - 1] is being written */
    uint64_t bytes, unread_entries, pending_records;
    uint64_t replay_end, replay_left; /* entries found at open: replayed first */
    sl_watermark *wm;                 /* delivered sequences */
    sl_batch **rq;                    /* given back, by sequence: handed out first */
    size_t nrq, cap_rq;

    /* wmu */
    int wfd;
    uint64_t wseq;      /* next sequence to assign */
    sl_spool_prep prep; /* sl_spool_append's own */
    pend *pend;
    size_t npend, cap_pend;
    uint64_t pend_bytes;
    uint64_t abandons; /* times unsynced entries were discarded */
    sl_spool_write_fn hook;
    void *hook_arg;

    /* rmu */
    segrd rd;
    bool rin;                   /* positioned in segment rseg */
    uint64_t rseg, roff, rlast; /* segment being read, offset, last valid sequence seen */
    uint64_t cursor0;           /* entries below it were delivered before open */
    ZSTD_DCtx *dctx;
    sl_ratelimit rl_read;

    /* cmu */
    uint64_t persisted;
    int64_t persist_ns;
    sl_ratelimit rl_cursor;

    sl_metric *m_bytes, *m_segments, *m_pending;
    sl_metric *m_written, *m_replayed, *m_corrupt, *m_dropped;
    sl_metric *m_err_enospc, *m_err_io, *m_err_cursor;
};

/* Called with mu held. */
void sl_spool_update_gauges_locked(sl_spool *s);
void sl_spool_remove_seg_locked(sl_spool *s, size_t i);
bool sl_spool_collect_locked(sl_spool *s, bool with_active);
/* Takes cmu itself. */
void sl_spool_persist_cursor(sl_spool *s, bool force);

#endif
