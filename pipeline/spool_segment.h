/* Reading spool segments (spool_segment.c): the entry header constants,
 * the read window, entry scanning and decoding, and the names of segment
 * and cursor files. Private to pipeline/spool*.c. */
#ifndef SLUICE_SHIPPER_SPOOL_SEGMENT_H
#define SLUICE_SHIPPER_SPOOL_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

#include "pipeline/spool.h"

/* Format 2: fields may point into their record's line (REF_STR); 1 is
 * still read. */
#define HDR            SL_SPOOL_ENTRY_HDR
#define FORMAT_VERSION 2
#define FLAG_ZSTD      1
#define FLAG_LZ4       2 /* since 0031: the default codec; zstd entries are still read */

extern const uint8_t sl_spool_magic[4];

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

#endif
