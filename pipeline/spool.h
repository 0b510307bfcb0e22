/* A sink's disk spool: an append-only log of segment files in
 * data_dir/spool/<sink>/ holding batches the memory queue had no room for.
 *
 * A segment is named by the first sequence number it holds
 * (00000000000000000001.seg) and is a run of entries:
 *
 *   offset size
 *   0      4    magic 93 53 4c 45
 *   4      1    format version (2; 1 is still read: it has no line references)
 *   5      1    flags: bit 0 = payload is zstd-compressed, bit 1 = LZ4 block
 *                (what is written since decision 0031; neither = stored)
 *   6      2    zero
 *   8      8    sequence number (one per entry, increasing through the spool)
 *   16     8    oldest record time (ns)
 *   24     8    newest record time (ns)
 *   32     4    record count
 *   36     4    payload length
 *   40     4    uncompressed payload length
 *   44     4    CRC32C of the payload
 *   48     4    CRC32C of bytes 0..47 (so a false magic is rejected cheaply)
 *   52     ...  payload: the serialised batch (layout in spool_codec.c)
 *
 * all little-endian. The file `cursor` (written atomically) holds the
 * sequence below which every entry has been delivered. A torn or damaged
 * entry fails its magic/length/CRC checks; the reader counts it and scans
 * forward for the next valid entry, so a damaged segment never stops a sink.
 * An entry whose checksums hold is damaged too when its payload is not what
 * the encoder writes: a value whose text is not its type's, a record time
 * outside bytes 16..31, a dropped record or removed field (decision 0054).
 * See docs/decisions/0008-spool.md. */
#ifndef SLUICE_SHIPPER_SPOOL_H
#define SLUICE_SHIPPER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/crc32c.h" /* its users found it here before it had a file */
#include "core/err.h"

#define SL_SPOOL_ENTRY_HDR 52
/* Bound on an entry's payload, compressed or not. */
#define SL_SPOOL_MAX_PAYLOAD ((uint32_t)256 << 20)

/* Order matches the config choices "always|batch|never". */
enum sl_spool_fsync {
    SL_SPOOL_FSYNC_ALWAYS, /* fdatasync every entry; cursor saved on every advance */
    SL_SPOOL_FSYNC_BATCH,  /* fdatasync once per append call, before it returns */
    SL_SPOOL_FSYNC_NEVER,  /* leave it to the OS: survives a crash, not a power loss */
};

/* How new entries are compressed; every codec is always read. LZ4 costs a
 * third of zstd -1's CPU to write and a sixth to read, for ~1.5x the disk
 * bytes (docs/decisions/0031-spool-spill-thread-and-codec.md). */
enum sl_spool_codec { SL_SPOOL_CODEC_LZ4, SL_SPOOL_CODEC_ZSTD };

typedef struct sl_spool sl_spool;

/* An entry serialised and compressed ahead of its append (by the buffer's
 * spill thread while the batch still waits in memory), so the append that
 * acknowledges it only writes and syncs. Owned by its preparer. */
typedef struct sl_spool_prep {
    sl_buf raw;    /* scratch: the serialised batch */
    sl_buf out;    /* header (sequence stamped at append) + payload */
    uint32_t nrec; /* 0: nothing left to ship in the batch */
    void *zstd;    /* ZSTD_CCtx, made on first use */
} sl_spool_prep;

typedef struct sl_spool_opts {
    const char *dir;        /* created 0700 when missing */
    const char *sink;       /* metric label */
    uint64_t max_bytes;     /* 0: unbounded */
    uint64_t segment_bytes; /* roll to a new segment past this; 0: 64 MiB */
    int fsync;              /* enum sl_spool_fsync */
    int codec;              /* enum sl_spool_codec */
    int zstd_level;         /* 0: 1 */
    /* Called without any spool lock held when delivery freed space or
     * advanced the cursor, so a producer blocked on a full spool can retry. */
    void (*on_space)(void *arg);
    void *on_space_arg;
} sl_spool_opts;

/* Opens (or creates) the spool, takes an exclusive lock on it, deletes
 * segments the cursor says are delivered and scans the rest (counting
 * corruption), so entries after the cursor are replayed first. */
int sl_spool_open(const sl_spool_opts *o, sl_spool **out, sl_err *err);
/* Syncs, saves the cursor, frees. Every batch sl_spool_next returned must
 * have been done or released before. */
void sl_spool_close(sl_spool *s);

/* Serialises and writes v[0..n) in order as one entry each, durably per the
 * fsync policy, then returns. *written (may be NULL) is how many were
 * written: the caller may call sl_batch_done on those. Stops at the first
 * failure: SL_EFULL (max_bytes reached; an entry always fits an empty
 * spool), SL_ENOSPC (disk full), SL_EIO, SL_EINVAL (a batch too large for
 * one entry). A failed write leaves no partial entry behind. */
int sl_spool_append(sl_spool *s, sl_batch *const *v, size_t n, size_t *written, sl_err *err);

void sl_spool_prep_init(sl_spool_prep *p);
void sl_spool_prep_free(sl_spool_prep *p);
/* Serialises and compresses b into p with s's codec. Touches nothing of s
 * that changes: any thread may prepare while another appends. SL_EINVAL
 * when b is too large for one entry. */
int sl_spool_prepare(sl_spool *s, sl_spool_prep *p, const sl_batch *b, sl_err *err);
/* sl_spool_append of entries prepared before (same contract). */
int sl_spool_append_prepared(sl_spool *s, sl_spool_prep *const *v, size_t n, size_t *written,
                             sl_err *err);

/* The oldest entry not yet handed out, decoded into a new batch whose
 * sl_batch_done advances the delivered cursor (deliveries may complete in
 * any order). Damaged entries are skipped and counted. SL_ENOENT when no
 * entry is waiting, SL_ENOMEM when memory ran out (retry later). */
int sl_spool_next(sl_spool *s, sl_batch **out);
/* Gives back a batch from sl_spool_next that could not be delivered yet:
 * the next sl_spool_next returns it again (lowest sequence first). */
void sl_spool_requeue(sl_spool *s, sl_batch *b);
/* Entries written or found at open and not yet handed out (or given back). */
uint64_t sl_spool_unread(sl_spool *s);
/* True while entries that were in the spool at open are still unread:
 * those are replayed before newer data. */
bool sl_spool_replaying(sl_spool *s);

/* Deletes the oldest whole segment (closing it first if it is the one being
 * written). *records = the records in it not yet handed out: they are lost,
 * and counted in sluice_spool_dropped_records_total. SL_ENOENT when empty. */
int sl_spool_drop_oldest(sl_spool *s, uint64_t *records);

typedef struct sl_spool_usage {
    uint64_t bytes, segments;
    uint64_t unread_entries;
    uint64_t pending_records; /* unread plus handed out but not yet done */
    uint64_t cursor;          /* every sequence below it is delivered */
} sl_spool_usage;
void sl_spool_get_usage(sl_spool *s, sl_spool_usage *u);

/* TEST ONLY: replaces pwrite for segment data, to simulate a full disk or a
 * torn write. The hook may write part of the data itself and then fail
 * (return -1 with errno set). NULL restores pwrite. */
typedef ssize_t (*sl_spool_write_fn)(void *arg, int fd, const void *p, size_t n, off_t off);
void sl_spool_set_write_hook(sl_spool *s, sl_spool_write_fn fn, void *arg);

/* --- Read-only inspection (sluice spool ls|stat|cat|verify|export) ---
 * These open nothing for writing, take no lock and may run beside a live
 * agent; an entry being written at that moment shows as a torn tail. */

typedef struct sl_spool_seg_info {
    char name[32];
    uint64_t bytes;
    uint64_t first_seq, last_seq;              /* last_seq < first_seq: no valid entry */
    uint64_t entries, records;                 /* valid ones */
    uint64_t pending_entries, pending_records; /* at or after the cursor */
    uint64_t corrupt;                          /* damaged entries found */
    int64_t time_min, time_max;                /* over valid entries; 0 when none */
} sl_spool_seg_info;

typedef struct sl_spool_info {
    uint64_t cursor;
    uint64_t segments, bytes, entries, records, pending_entries, pending_records;
    uint64_t corrupt; /* damaged entries (bad magic, length, CRC or payload) */
    int64_t time_min, time_max;
} sl_spool_info;

/* Scans every segment of dir. With decode, every payload is also
 * decompressed and parsed (verify); otherwise only headers and CRCs are
 * checked. *segs (may be NULL) gets a malloc'ed array the caller frees. */
int sl_spool_inspect(const char *dir, bool decode, sl_spool_info *info, sl_spool_seg_info **segs,
                     size_t *nsegs, sl_err *err);

typedef struct sl_spool_iter_opts {
    bool pending_only; /* only entries at or after the cursor */
    int64_t since_ns;  /* records with time >= since (0: no bound) */
    int64_t until_ns;  /* records with time < until (0: no bound) */
    /* When set, the damaged entries met on the way (skipped, as the agent
     * skips them) are added to it: a reader of the records can say so. */
    uint64_t *damaged;
} sl_spool_iter_opts;
/* Per record, oldest first; return non-zero to stop the iteration. */
typedef int (*sl_spool_record_fn)(void *arg, const sl_batch *b, const sl_record *r, uint64_t seq);
int sl_spool_iterate(const char *dir, const sl_spool_iter_opts *o, sl_spool_record_fn fn, void *arg,
                     sl_err *err);

/* Verifies an in-memory segment image whose first sequence is first_seq
 * (what sl_spool_inspect does for one file; also the fuzz entry point). */
int sl_spool_verify_bytes(const void *p, size_t n, uint64_t first_seq, sl_spool_seg_info *out);

#endif
