/* What the spool's own files share and nothing else may use: the entry
 * header constants, the little-endian helpers, the segment reader, the
 * batch codec and the live spool's state. shipper/spool.h stays the public
 * header; spool.c was one 2,100-line file until its codec, segment reading,
 * reader and inspection became files of their own.
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
#include "shipper/spool.h"

/* Format 2: fields may point into their record's line (REF_STR); 1 is
 * still read. */
#define HDR            SL_SPOOL_ENTRY_HDR
#define FORMAT_VERSION 2
#define FLAG_ZSTD      1

extern const uint8_t sl_spool_magic[4];

/* ------------------------------------------------------- little-endian I/O */

static inline void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static inline void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static inline uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* ------------------------------------------------- batch codec (spool_codec.c) */

/* Serialises b into raw (reset first); *nrec and the time range are what
 * the entry header carries. */
int sl_spool_encode_batch(sl_buf *raw, const sl_batch *b, uint32_t *nrec, int64_t *tmin,
                          int64_t *tmax);
/* Decodes n bytes of chunk (a decompressed payload) into a new batch that
 * holds a reference to chunk; expect is the header's record count. */
int sl_spool_decode_raw(sl_chunk *chunk, size_t n, uint32_t expect, sl_batch **out);

/* ------------------------------------------- segment reading (spool_segment.c) */

/* A read window over a segment file or an in-memory image. */
typedef struct segrd {
    int fd;             /* -1: mem */
    const uint8_t *mem; /* in-memory image (fuzzing, tests) */
    uint64_t size;      /* readable bytes */
    uint8_t *win;
    size_t win_cap, win_len;
    uint64_t win_off;
    int err; /* errno of the last failed read, 0 if none */
} segrd;
typedef struct entry {
    uint64_t off, seq;
    int64_t tmin, tmax;
    uint32_t records, plen, rawlen;
    uint8_t flags;
} entry;
/* Per valid entry of a scan: return SL_ECORRUPT when the payload does not
 * decode (counted as a damaged entry), another negative code to abort, or
 * 1 to stop early. */
typedef int (*scan_fn)(void *arg, segrd *r, const entry *e);

void sl_segrd_init(segrd *r, int fd, const uint8_t *mem, uint64_t size);
void sl_segrd_free(segrd *r);
/* From *off, the next valid entry: true with *e set and *off just past it,
 * false at the end (*off = size). *bad_at is where skipped bytes began
 * (UINT64_MAX when none were skipped). */
bool sl_segrd_next(segrd *r, uint64_t *off, entry *e, uint64_t *bad_at);
/* How many entries a damaged region of `bytes` held (see spool_segment.c). */
uint64_t sl_spool_region_entries(uint64_t prev_seq, uint64_t next_seq, uint64_t bytes);
/* Decodes e's payload (which r holds) into a new batch. */
int sl_spool_decode_entry(segrd *r, const entry *e, ZSTD_DCtx *dctx, sl_batch **out);
/* Walks a whole segment image, filling the counts of *si (first_seq set by
 * the caller). next_first: first sequence of the following segment, 0 if
 * none. cursor: entries below it are delivered. */
int sl_spool_scan_segment(segrd *r, uint64_t next_first, uint64_t cursor, scan_fn fn, void *arg,
                          sl_spool_seg_info *si);
/* The first sequences of dir's segments, ascending; *out is the caller's. */
int sl_spool_list_segments(const char *dir, uint64_t **out, size_t *n, sl_err *err);
void sl_spool_seg_path(char *buf, size_t cap, const char *dir, uint64_t first);
uint64_t sl_spool_read_cursor(const char *dir, bool *damaged);

/* ------------------------------------------------- the live spool (spool.c) */

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
    uint64_t wseq; /* next sequence to assign */
    ZSTD_CCtx *cctx;
    sl_buf raw, out;
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
