/* Reading spool segments: a window over a segment file (or an in-memory
 * image), finding valid entries and skipping damage, decoding an entry,
 * scanning a whole segment, and the names of segment and cursor files.
 * Shared by the live reader (spool_reader.c), open (spool.c) and the
 * read-only inspection (spool_inspect.c). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lz4.h>
#include <zstd_errors.h>

#include "core/crc32c.h"
#include "core/fsutil.h"
#include "pipeline/spool_codec.h"
#include "pipeline/spool_segment.h"

#define RD_WINDOW       ((size_t)1 << 20)
#define SEG_NAME_DIGITS 20

const uint8_t sl_spool_magic[4] = {0x93, 0x53, 0x4c, 0x45};

void sl_segrd_init(segrd *r, int fd, const uint8_t *mem, uint64_t size)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->mem = mem;
    r->size = size;
}

void sl_segrd_free(segrd *r)
{
    free(r->win);
    r->win = NULL;
    r->win_cap = r->win_len = 0;
}

/* n bytes at off, or NULL past the end or on a read error. The pointer is
 * valid until the next call. */
static const uint8_t *segrd_get(segrd *r, uint64_t off, size_t n)
{
    if (off > r->size || n > r->size - off) return NULL;
    if (r->fd < 0) return r->mem + off;
    if (off >= r->win_off && off - r->win_off <= r->win_len && n <= r->win_len - (off - r->win_off))
        return r->win + (off - r->win_off);
    size_t want = n > RD_WINDOW ? n : RD_WINDOW;
    if (want > r->size - off) want = (size_t)(r->size - off);
    if (want > r->win_cap) {
        uint8_t *w = realloc(r->win, want);
        if (!w) {
            r->err = ENOMEM;
            return NULL;
        }
        r->win = w;
        r->win_cap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->win + got, want - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            r->err = k < 0 ? errno : EIO; /* shorter than we were told: truncated */
            break;
        }
        got += (size_t)k;
    }
    r->win_off = off;
    r->win_len = got;
    if (got < n) return NULL;
    r->err = 0;
    return r->win;
}

/* Fuzzing builds (only) skip checksums, so that mutated entries reach the
 * decoder behind them. */
static bool crc_ok(const uint8_t *p, size_t n, uint32_t want)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)p, (void)n, (void)want;
    return true;
#else
    return sl_crc32c(0, p, n) == want;
#endif
}

/* Whether a valid entry starts at off. */
static bool rd_entry_at(segrd *r, uint64_t off, entry *e)
{
    const uint8_t *h = segrd_get(r, off, HDR);
    if (!h || memcmp(h, sl_spool_magic, 4) != 0 || h[4] < 1 || h[4] > FORMAT_VERSION) return false;
    if (!crc_ok(h, HDR - 4, get_u32(h + HDR - 4))) return false;
    e->off = off;
    e->flags = h[5];
    e->seq = get_u64(h + 8);
    e->tmin = (int64_t)get_u64(h + 16);
    e->tmax = (int64_t)get_u64(h + 24);
    e->records = get_u32(h + 32);
    e->plen = get_u32(h + 36);
    e->rawlen = get_u32(h + 40);
    uint32_t pcrc = get_u32(h + 44);
    bool packed = e->flags & (FLAG_ZSTD | FLAG_LZ4);
    /* The time range is what the writer computed from the records: in
     * order, and 0..0 without records (decision 0054); `spool ls|stat`
     * report it and `cat|export --since/--until` skip entries by it. */
    if ((e->flags & ~(FLAG_ZSTD | FLAG_LZ4)) || e->flags == (FLAG_ZSTD | FLAG_LZ4) ||
        get_u16(h + 6) != 0 || e->plen > SL_SPOOL_MAX_PAYLOAD || e->rawlen > SL_SPOOL_MAX_PAYLOAD ||
        (!packed && e->rawlen != e->plen) || e->tmin > e->tmax ||
        (e->records == 0 && (e->tmin || e->tmax)))
        return false;
    const uint8_t *p = segrd_get(r, off + HDR, e->plen);
    return p && crc_ok(p, e->plen, pcrc);
}

/* From *off, the next valid entry: true with *e set and *off just past it,
 * false at the end (*off = size). *bad_at is where skipped bytes began
 * (UINT64_MAX when none were skipped). */
bool sl_segrd_next(segrd *r, uint64_t *off, entry *e, uint64_t *bad_at)
{
    uint64_t pos = *off;
    *bad_at = UINT64_MAX;
    r->err = 0;
    if (pos >= r->size) {
        *off = r->size;
        return false;
    }
    if (rd_entry_at(r, pos, e)) {
        *off = pos + HDR + e->plen;
        return true;
    }
    if (r->err == ENOMEM) return false; /* not damage: the caller retries */
    *bad_at = pos;
    pos++;
    while (pos < r->size && r->size - pos >= HDR) {
        size_t span = r->size - pos > RD_WINDOW ? RD_WINDOW : (size_t)(r->size - pos);
        const uint8_t *p = segrd_get(r, pos, span);
        if (!p && r->err == ENOMEM) {
            *bad_at = UINT64_MAX;
            return false;
        }
        if (!p) break;
        const uint8_t *m = memmem(p, span, sl_spool_magic, sizeof sl_spool_magic);
        if (!m) {
            pos += span - (sizeof sl_spool_magic - 1);
            continue;
        }
        uint64_t cand = pos + (uint64_t)(m - p);
        if (rd_entry_at(r, cand, e)) {
            *off = cand + HDR + e->plen;
            return true;
        }
        if (r->err == ENOMEM) {
            *bad_at = UINT64_MAX;
            return false;
        }
        pos = cand + 1;
    }
    *off = r->size;
    return false;
}

/* How many entries a damaged region of `bytes` held, judged from the
 * sequence numbers around it (entries of a segment are numbered without
 * gaps); next_seq is 0 when nothing follows. At least one, and never more
 * than could fit in the bytes. */
uint64_t sl_spool_region_entries(uint64_t prev_seq, uint64_t next_seq, uint64_t bytes)
{
    uint64_t n = next_seq > prev_seq + 1 ? next_seq - prev_seq - 1 : 1;
    uint64_t fit = bytes / (HDR + 1);
    if (n > fit) n = fit;
    return n ? n : 1;
}

/* Decodes e's payload (which r holds) into a new batch. */
int sl_spool_decode_entry(segrd *r, const entry *e, ZSTD_DCtx *dctx, sl_batch **out)
{
    const uint8_t *p = segrd_get(r, e->off + HDR, e->plen);
    if (!p) return r->err == ENOMEM ? SL_ENOMEM : SL_ECORRUPT;
    sl_chunk *c = sl_chunk_new(e->rawlen ? e->rawlen : 1);
    if (!c) return SL_ENOMEM;
    int rc = SL_OK;
    if (e->flags & FLAG_ZSTD) {
        if (ZSTD_getFrameContentSize(p, e->plen) != e->rawlen)
            rc = SL_ECORRUPT;
        else {
            size_t k = ZSTD_decompressDCtx(dctx, c->data, e->rawlen, p, e->plen);
            if (ZSTD_isError(k)) {
                rc = ZSTD_getErrorCode(k) == ZSTD_error_memory_allocation ? SL_ENOMEM : SL_ECORRUPT;
            } else if (k != e->rawlen)
                rc = SL_ECORRUPT;
        }
    } else if (e->flags & FLAG_LZ4) {
        /* The safe decoder never writes past rawlen nor reads past plen. */
        int k = LZ4_decompress_safe((const char *)p, c->data, (int)e->plen, (int)e->rawlen);
        if (k < 0 || (uint32_t)k != e->rawlen) rc = SL_ECORRUPT;
    } else if (e->plen)
        memcpy(c->data, p, e->plen);
    c->len = e->rawlen;
    if (rc == SL_OK) rc = sl_spool_decode_raw(c, e->rawlen, e->records, e->tmin, e->tmax, out);
    sl_chunk_unref(c);
    return rc;
}

/* Walks a whole segment image, filling the counts of *si (first_seq set by
 * the caller). next_first: first sequence of the following segment, 0 if
 * none. cursor: entries below it are delivered. */
int sl_spool_scan_segment(segrd *r, uint64_t next_first, uint64_t cursor, scan_fn fn, void *arg,
                          sl_spool_seg_info *si)
{
    uint64_t off = 0, prev = si->first_seq - 1, bad_at;
    si->last_seq = prev;
    si->bytes = r->size;
    entry e;
    for (;;) {
        bool got = sl_segrd_next(r, &off, &e, &bad_at);
        if (bad_at != UINT64_MAX) {
            uint64_t end = got ? e.off : r->size;
            si->corrupt += sl_spool_region_entries(prev, got ? e.seq : next_first, end - bad_at);
        }
        if (!got) break;
        prev = e.seq;
        if (fn) {
            int rc = fn(arg, r, &e);
            if (rc == SL_ECORRUPT) {
                si->corrupt++;
                continue;
            }
            if (rc < 0) return rc;
            if (rc > 0) return 1;
        }
        si->entries++;
        si->records += e.records;
        si->last_seq = e.seq;
        if (e.seq >= cursor) {
            si->pending_entries++;
            si->pending_records += e.records;
        }
        if (si->entries == 1 || e.tmin < si->time_min) si->time_min = e.tmin;
        if (si->entries == 1 || e.tmax > si->time_max) si->time_max = e.tmax;
    }
    return SL_OK;
}

/* Segment names: the first sequence, 20 digits, ".seg". */
static bool parse_seg_name(const char *name, uint64_t *first)
{
    size_t n = strlen(name);
    if (n != SEG_NAME_DIGITS + 4 || strcmp(name + SEG_NAME_DIGITS, ".seg") != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *first = v;
    return v > 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted first sequences of the segments in dir. */
int sl_spool_list_segments(const char *dir, uint64_t **out, size_t *n, sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sl_errf(err, errno == ENOENT ? SL_ENOENT : SL_EIO, "spool %s: %s", dir,
                       strerror(errno));
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t first;
        if (!parse_seg_name(de->d_name, &first)) continue;
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return sl_errf(err, SL_ENOMEM, "out of memory");
            }
            v = nv;
            cap = nc;
        }
        v[len++] = first;
    }
    closedir(d);
    if (len) qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return SL_OK;
}

void sl_spool_seg_path(char *buf, size_t cap, const char *dir, uint64_t first)
{
    snprintf(buf, cap, "%s/%020" PRIu64 ".seg", dir, first);
}

/* The cursor file: "sluice-spool-cursor 1 <delivered_below>\n". Missing:
 * 0. Unreadable or damaged: 0 too (everything is replayed: duplicates,
 * never a loss), with *damaged set. */
uint64_t sl_spool_read_cursor(const char *dir, bool *damaged)
{
    char path[4200], *text = NULL;
    size_t n = 0;
    sl_err e;
    *damaged = false;
    snprintf(path, sizeof path, "%s/cursor", dir);
    int rc = sl_read_file(path, 256, &text, &n, &e);
    if (rc == SL_ENOENT) return 0;
    if (rc != SL_OK) {
        *damaged = true;
        return 0;
    }
    unsigned long long v = 0;
    int used = 0;
    if (sscanf(text, "sluice-spool-cursor 1 %llu\n%n", &v, &used) != 1 || (size_t)used != n) {
        *damaged = true;
        v = 0;
    }
    free(text);
    return v;
}
