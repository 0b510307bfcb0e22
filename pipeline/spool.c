/* The live spool: open (finding what an earlier run left), close, the
 * segment list and its accounting, the cursor file, and the writer. The
 * reader is in spool_reader.c; the files they share are described in
 * spool_internal.h. */
#include "pipeline/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fsutil.h"
#include "pipeline/spool_internal.h"

#define SEG_DEFAULT     ((uint64_t)64 << 20)
#define CURSOR_EVERY_NS (200 * 1000000LL)

void sl_spool_update_gauges_locked(sl_spool *s)
{
    sl_metric_set(s->m_bytes, (int64_t)s->bytes);
    sl_metric_set(s->m_segments, (int64_t)s->nsegs);
    sl_metric_set(s->m_pending, (int64_t)s->pending_records);
}

static void count_write_error(sl_spool *s, int e)
{
    sl_metric_inc(e == ENOSPC || e == EDQUOT ? s->m_err_enospc : s->m_err_io);
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? SL_ENOSPC : e == ENOMEM ? SL_ENOMEM : SL_EIO;
}

static seg *push_seg_locked(sl_spool *s, uint64_t first)
{
    if (s->nsegs == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        seg *ns = realloc(s->segs, nc * sizeof *ns);
        if (!ns) return NULL;
        s->segs = ns;
        s->cap = nc;
    }
    seg *g = &s->segs[s->nsegs++];
    memset(g, 0, sizeof *g);
    g->first = first;
    g->last = first - 1;
    return g;
}

void sl_spool_remove_seg_locked(sl_spool *s, size_t i)
{
    seg *g = &s->segs[i];
    char path[4200];
    sl_spool_seg_path(path, sizeof path, s->dir, g->first);
    if (unlink(path) != 0 && errno != ENOENT)
        sl_log(SL_LOG_WARN, "spool_unlink_failed", "sink=%s segment=%s error=\"%s\"", s->sink, path,
               strerror(errno));
    s->bytes = sat_sub(s->bytes, g->bytes);
    s->unread_entries = sat_sub(s->unread_entries, g->unread_entries);
    s->pending_records = sat_sub(s->pending_records, g->unread_records);
    if (g->first < s->replay_end) s->replay_left = sat_sub(s->replay_left, g->unread_entries);
    memmove(g, g + 1, (s->nsegs - i - 1) * sizeof *g);
    s->nsegs--;
}

/* Deletes leading segments whose every entry was read and delivered. The
 * one being written stays unless with_active (then it must be idle). */
bool sl_spool_collect_locked(sl_spool *s, bool with_active)
{
    uint64_t mark = sl_watermark_get(s->wm);
    bool any = false;
    while (s->nsegs) {
        seg *g = &s->segs[0];
        bool is_active = s->active && s->nsegs == 1;
        if (is_active && (!with_active || g->bytes == 0)) break;
        if (g->unread_entries || (g->last >= g->first && g->last >= mark)) break;
        if (is_active) s->active = false;
        sl_spool_remove_seg_locked(s, 0);
        any = true;
    }
    if (any) sl_spool_update_gauges_locked(s);
    return any;
}

void sl_spool_persist_cursor(sl_spool *s, bool force)
{
    pthread_mutex_lock(&s->cmu);
    uint64_t mark = sl_watermark_get(s->wm);
    int64_t now = sl_monotonic_ns();
    if (mark != s->persisted &&
        (force || s->o.fsync == SL_SPOOL_FSYNC_ALWAYS || now - s->persist_ns >= CURSOR_EVERY_NS)) {
        char path[4200], text[64];
        snprintf(path, sizeof path, "%s/cursor", s->dir);
        int n = snprintf(text, sizeof text, "sluice-spool-cursor 1 %" PRIu64 "\n", mark);
        sl_err e;
        if (sl_write_atomic(path, text, (size_t)n, 0, &e) == SL_OK) {
            s->persisted = mark;
            s->persist_ns = now;
        } else {
            /* Only costs duplicates after a crash: keep going. */
            sl_metric_inc(s->m_err_cursor);
            uint64_t skipped;
            if (sl_ratelimit_ok(&s->rl_cursor, &skipped))
                sl_log(SL_LOG_WARN, "spool_cursor_write_failed",
                       "sink=%s error=\"%s\" repeated=%" PRIu64, s->sink, e.msg, skipped);
        }
    }
    pthread_mutex_unlock(&s->cmu);
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Scans the segments found at open: deletes the delivered ones, counts
 * damage, and queues the rest for replay. */
static int load_segments(sl_spool *s, sl_err *err)
{
    uint64_t *firsts;
    size_t n;
    int rc = sl_spool_list_segments(s->dir, &firsts, &n, err);
    if (rc != SL_OK) return rc;
    uint64_t cursor = s->cursor0, next = cursor > 1 ? cursor : 1;
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        sl_spool_seg_path(path, sizeof path, s->dir, firsts[i]);
        if (firsts[i] + 1 > next) next = firsts[i] + 1;
        if (i + 1 < n && firsts[i + 1] <= cursor) {
            unlink(path); /* every sequence in it is below the cursor */
            continue;
        }
        sl_spool_seg_info si = {.first_seq = firsts[i]};
        /* A FIFO there would hold the start (and SIGTERM) forever, a link
         * lead elsewhere: neither is followed nor waited on (0065). */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            sl_log(SL_LOG_ERROR, "spool_segment_unreadable", "sink=%s segment=%s error=\"%s\"",
                   s->sink, path, fd < 0 ? strerror(errno) : "not a regular file");
            if (fd >= 0) close(fd);
            continue;
        }
        segrd r;
        sl_segrd_init(&r, fd, NULL, (uint64_t)st.st_size);
        sl_spool_scan_segment(&r, i + 1 < n ? firsts[i + 1] : 0, cursor, NULL, NULL, &si);
        sl_segrd_free(&r);
        close(fd);
        if (si.corrupt) {
            sl_metric_add(s->m_corrupt, si.corrupt);
            sl_log(SL_LOG_WARN, "spool_corrupt_entries",
                   "sink=%s segment=%s damaged_entries=%" PRIu64 " good_entries=%" PRIu64
                   " reason=framing",
                   s->sink, path, si.corrupt, si.entries);
        }
        if (si.entries && si.last_seq + 1 > next) next = si.last_seq + 1;
        if (si.pending_entries == 0) {
            unlink(path); /* delivered, or nothing left to save */
            continue;
        }
        seg *g = push_seg_locked(s, firsts[i]);
        if (!g) {
            free(firsts);
            return sl_errf(err, SL_ENOMEM, "out of memory");
        }
        g->last = si.last_seq;
        g->bytes = g->scanned = si.bytes;
        g->unread_entries = si.pending_entries;
        g->unread_records = si.pending_records;
        s->bytes += si.bytes;
        s->unread_entries += si.pending_entries;
        s->pending_records += si.pending_records;
    }
    free(firsts);
    s->wseq = next;
    s->replay_end = next;
    s->replay_left = s->unread_entries;
    return SL_OK;
}

int sl_spool_open(const sl_spool_opts *o, sl_spool **out, sl_err *err)
{
    if (!o->dir || !*o->dir) return sl_errf(err, SL_EINVAL, "spool: no directory");
    int rc = sl_mkdirs(o->dir, 0700, err);
    if (rc != SL_OK) return rc;
    sl_spool *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "out of memory");
    s->o = *o;
    s->dir = strdup(o->dir);
    s->sink = strdup(o->sink ? o->sink : "");
    s->o.dir = s->dir;
    s->o.sink = s->sink;
    s->seg_bytes = o->segment_bytes ? o->segment_bytes : SEG_DEFAULT;
    s->lock_fd = s->wfd = -1;
    s->rd.fd = -1;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    sl_spool_prep_init(&s->prep);
    s->rl_read.interval_ns = s->rl_cursor.interval_ns = 10 * 1000000000LL;
    s->dctx = ZSTD_createDCtx();
    if (!s->dir || !s->sink || !s->dctx) {
        rc = sl_errf(err, SL_ENOMEM, "out of memory");
        goto fail;
    }

    char path[4200];
    snprintf(path, sizeof path, "%s/lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (s->lock_fd < 0) {
        rc = sl_errf(err, errno_code(errno), "spool %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = sl_errf(err, SL_EINVAL, "spool %s is in use by another process", s->dir);
        goto fail;
    }

    char labels[256], lab2[300];
    sl_metric_labels(labels, sizeof labels, "sink", s->sink, NULL, NULL);
    s->m_bytes = sl_gauge("sluice_spool_bytes", "Bytes in the sink's disk spool.", labels);
    s->m_segments =
        sl_gauge("sluice_spool_segments", "Segment files in the sink's disk spool.", labels);
    s->m_pending = sl_gauge("sluice_spool_records_pending",
                            "Records in the disk spool not yet delivered.", labels);
    s->m_written = sl_counter("sluice_spool_written_records_total",
                              "Records written to the disk spool.", labels);
    s->m_replayed = sl_counter("sluice_spool_replayed_records_total",
                               "Records read back from the disk spool for delivery.", labels);
    s->m_corrupt = sl_counter("sluice_spool_corrupt_entries_total",
                              "Damaged disk spool entries detected and skipped.", labels);
    s->m_dropped = sl_counter("sluice_spool_dropped_records_total",
                              "Records discarded with whole spool segments (when_full: "
                              "drop_oldest).",
                              labels);
    const char *help = "Failed disk spool writes by reason.";
    sl_metric_labels(lab2, sizeof lab2, "sink", s->sink, "reason", "enospc");
    s->m_err_enospc = sl_counter("sluice_spool_write_errors_total", help, lab2);
    sl_metric_labels(lab2, sizeof lab2, "sink", s->sink, "reason", "io");
    s->m_err_io = sl_counter("sluice_spool_write_errors_total", help, lab2);
    sl_metric_labels(lab2, sizeof lab2, "sink", s->sink, "reason", "cursor");
    s->m_err_cursor = sl_counter("sluice_spool_write_errors_total", help, lab2);

    bool damaged;
    s->cursor0 = sl_spool_read_cursor(s->dir, &damaged);
    if (damaged) {
        sl_log(SL_LOG_WARN, "spool_cursor_damaged", "sink=%s dir=%s action=replay_all", s->sink,
               s->dir);
        sl_metric_inc(s->m_corrupt);
    }
    s->persisted = s->cursor0;
    if (!(s->wm = sl_watermark_new(s->cursor0))) {
        rc = sl_errf(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = load_segments(s, err)) != SL_OK) goto fail;
    sl_spool_update_gauges_locked(s);
    if (s->unread_entries)
        sl_log(SL_LOG_INFO, "spool_replay", "sink=%s entries=%" PRIu64 " records=%" PRIu64, s->sink,
               s->unread_entries, s->pending_records);
    *out = s;
    return SL_OK;
fail:
    sl_spool_close(s);
    return rc;
}

void sl_spool_close(sl_spool *s)
{
    if (!s) return;
    if (s->wfd >= 0) {
        if (s->o.fsync != SL_SPOOL_FSYNC_NEVER) (void)fdatasync(s->wfd);
        close(s->wfd);
        s->wfd = -1;
    }
    if (s->wm) {
        pthread_mutex_lock(&s->mu);
        s->active = false;
        sl_spool_collect_locked(s, true);
        pthread_mutex_unlock(&s->mu);
        sl_spool_persist_cursor(s, true);
        sl_watermark_unref(s->wm);
    }
    for (size_t i = 0; i < s->nrq; i++) sl_batch_unref(s->rq[i]); /* replayed next start */
    free(s->rq);
    if (s->rd.fd >= 0) close(s->rd.fd);
    sl_segrd_free(&s->rd);
    if (s->lock_fd >= 0) close(s->lock_fd);
    ZSTD_freeDCtx(s->dctx);
    sl_spool_prep_free(&s->prep);
    free(s->pend);
    free(s->segs);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->cmu);
    free(s->dir);
    free(s->sink);
    free(s);
}

void sl_spool_set_write_hook(sl_spool *s, sl_spool_write_fn fn, void *arg)
{
    pthread_mutex_lock(&s->wmu);
    s->hook = fn;
    s->hook_arg = arg;
    pthread_mutex_unlock(&s->wmu);
}

/* ----------------------------------------------------------------- writer */

static int write_at(sl_spool *s, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = s->hook ? s->hook(s->hook_arg, s->wfd, c, n, (off_t)off)
                            : pwrite(s->wfd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        if (w == 0) return EIO;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Bytes of the segment being written that readers may see. */
static uint64_t active_bytes(sl_spool *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->active ? s->segs[s->nsegs - 1].bytes : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Closes the segment being written after a failure: what was written past
 * its committed size is cut off, and the next write starts a new file (the
 * page cache of a file whose fsync failed cannot be trusted). */
static void abandon_active(sl_spool *s)
{
    uint64_t keep = active_bytes(s);
    if (s->wfd >= 0) {
        if (ftruncate(s->wfd, (off_t)keep) != 0) {
            /* The tail stays as garbage; a restart counts it as damage. */
        }
        close(s->wfd);
        s->wfd = -1;
    }
    pthread_mutex_lock(&s->mu);
    s->active = false;
    pthread_mutex_unlock(&s->mu);
    if (s->npend) s->wseq = s->pend[0].seq;
    s->npend = 0;
    s->pend_bytes = 0;
    s->abandons++;
}

/* Makes written entries durable (per policy) and visible to the reader. */
static int flush_pending(sl_spool *s, sl_err *err)
{
    if (!s->npend) return SL_OK;
    if (s->o.fsync != SL_SPOOL_FSYNC_NEVER && fdatasync(s->wfd) != 0) {
        int e = errno;
        count_write_error(s, e);
        abandon_active(s);
        return sl_errf(err, errno_code(e), "spool %s: fdatasync: %s", s->dir, strerror(e));
    }
    uint64_t records = 0;
    pthread_mutex_lock(&s->mu);
    seg *g = &s->segs[s->nsegs - 1];
    for (size_t i = 0; i < s->npend; i++) {
        g->bytes += s->pend[i].size;
        g->last = s->pend[i].seq;
        g->unread_entries++;
        g->unread_records += s->pend[i].records;
        records += s->pend[i].records;
    }
    s->bytes += s->pend_bytes;
    s->unread_entries += s->npend;
    s->pending_records += records;
    sl_spool_update_gauges_locked(s);
    pthread_mutex_unlock(&s->mu);
    sl_metric_add(s->m_written, records);
    s->npend = 0;
    s->pend_bytes = 0;
    return SL_OK;
}

/* Starts a new segment named by the next sequence. */
static int roll(sl_spool *s, sl_err *err)
{
    if (s->wfd >= 0) {
        close(s->wfd); /* its entries were flushed */
        s->wfd = -1;
    }
    pthread_mutex_lock(&s->mu);
    s->active = false;
    sl_spool_collect_locked(s, false);
    pthread_mutex_unlock(&s->mu);
    char path[4200];
    sl_spool_seg_path(path, sizeof path, s->dir, s->wseq);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a crash between creating it and writing its first entry:
         * anything in it has a sequence we are about to reuse. */
        unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        int e = errno;
        count_write_error(s, e);
        return sl_errf(err, errno_code(e), "spool: create %s: %s", path, strerror(e));
    }
    if (s->o.fsync != SL_SPOOL_FSYNC_NEVER) fsync_dir(s->dir);
    pthread_mutex_lock(&s->mu);
    seg *g = push_seg_locked(s, s->wseq);
    if (g) {
        s->active = true;
        sl_spool_update_gauges_locked(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (!g) {
        close(fd);
        unlink(path);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    s->wfd = fd;
    return SL_OK;
}

void sl_spool_prep_init(sl_spool_prep *p)
{
    memset(p, 0, sizeof *p);
    sl_buf_init(&p->raw, SL_SPOOL_MAX_PAYLOAD);
    sl_buf_init(&p->out, (size_t)SL_SPOOL_MAX_PAYLOAD + HDR + 4096);
}

void sl_spool_prep_free(sl_spool_prep *p)
{
    if (!p) return;
    sl_buf_free(&p->raw);
    sl_buf_free(&p->out);
    ZSTD_freeCCtx(p->zstd);
    p->zstd = NULL;
}

/* Compresses p->raw into p->out behind a header whose sequence (and so the
 * header CRC) stay to be filled by stamp_entry. */
static int build_entry(sl_spool *s, sl_spool_prep *p, int64_t tmin, int64_t tmax, sl_err *err)
{
    bool lz4 = s->o.codec == SL_SPOOL_CODEC_LZ4;
    size_t bound =
        lz4 ? (size_t)LZ4_compressBound((int)p->raw.len) : ZSTD_compressBound(p->raw.len);
    sl_buf_reset(&p->out);
    if (p->raw.len > SL_SPOOL_MAX_PAYLOAD || sl_buf_reserve(&p->out, HDR + bound) != SL_OK)
        return sl_errf(err, SL_EINVAL, "spool: batch too large for one entry");
    uint8_t *h = (uint8_t *)p->out.p;
    size_t clen;
    if (lz4) {
        int k = LZ4_compress_default(p->raw.p, (char *)h + HDR, (int)p->raw.len, (int)bound);
        if (k <= 0) return sl_errf(err, SL_EINVAL, "spool: lz4 could not compress the batch");
        clen = (size_t)k;
    } else {
        if (!p->zstd && !(p->zstd = ZSTD_createCCtx()))
            return sl_errf(err, SL_ENOMEM, "spool: out of memory");
        clen = ZSTD_compressCCtx(p->zstd, h + HDR, bound, p->raw.p, p->raw.len,
                                 s->o.zstd_level ? s->o.zstd_level : 1);
        if (ZSTD_isError(clen))
            return sl_errf(err, SL_ENOMEM, "spool: zstd: %s", ZSTD_getErrorName(clen));
    }
    if (clen > SL_SPOOL_MAX_PAYLOAD)
        return sl_errf(err, SL_EINVAL, "spool: batch too large for one entry");
    memcpy(h, sl_spool_magic, 4);
    h[4] = FORMAT_VERSION;
    h[5] = lz4 ? FLAG_LZ4 : FLAG_ZSTD;
    put_u16(h + 6, 0);
    put_u64(h + 8, 0);
    put_u64(h + 16, (uint64_t)tmin);
    put_u64(h + 24, (uint64_t)tmax);
    put_u32(h + 32, p->nrec);
    put_u32(h + 36, (uint32_t)clen);
    put_u32(h + 40, (uint32_t)p->raw.len);
    put_u32(h + 44, sl_crc32c(0, h + HDR, clen));
    p->out.len = HDR + clen;
    return SL_OK;
}

int sl_spool_prepare(sl_spool *s, sl_spool_prep *p, const sl_batch *b, sl_err *err)
{
    int64_t tmin, tmax;
    if (sl_spool_encode_batch(&p->raw, b, &p->nrec, &tmin, &tmax) != SL_OK)
        return sl_errf(err, SL_EINVAL, "spool: batch too large for one entry");
    if (p->nrec == 0) return SL_OK;
    return build_entry(s, p, tmin, tmax, err);
}

/* The sequence goes in last: it is known only under the writer's lock. */
static void stamp_entry(sl_spool_prep *p, uint64_t seq)
{
    uint8_t *h = (uint8_t *)p->out.p;
    put_u64(h + 8, seq);
    put_u32(h + 48, sl_crc32c(0, h, HDR - 4));
}

static int add_pend(sl_spool *s, uint64_t seq, uint64_t size, uint32_t records)
{
    if (s->npend == s->cap_pend) {
        size_t nc = s->cap_pend ? s->cap_pend * 2 : 16;
        pend *np = realloc(s->pend, nc * sizeof *np);
        if (!np) return SL_ENOMEM;
        s->pend = np;
        s->cap_pend = nc;
    }
    s->pend[s->npend++] = (pend){seq, size, records};
    s->pend_bytes += size;
    return SL_OK;
}

/* Appends n entries, each either prepared (pv) or a batch to prepare now
 * (bv), under one writer lock and one sync. */
static int append_entries(sl_spool *s, sl_batch *const *bv, sl_spool_prep *const *pv, size_t n,
                          size_t *written, sl_err *err)
{
    size_t done = 0, flushed = 0;
    int rc = SL_OK;
    pthread_mutex_lock(&s->wmu);
    uint64_t abandons0 = s->abandons;
    for (size_t i = 0; i < n; i++) {
        sl_spool_prep *p = pv ? pv[i] : &s->prep;
        if (!pv && (rc = sl_spool_prepare(s, p, bv[i], err)) != SL_OK) break;
        uint32_t nrec = p->nrec;
        if (nrec == 0) { /* nothing left to ship in it */
            done = i + 1;
            continue;
        }
        stamp_entry(p, s->wseq);
        uint64_t esz = p->out.len;

        pthread_mutex_lock(&s->mu);
        /* A fully delivered segment being written is deleted too, so a
         * spool that keeps up never grows. */
        sl_spool_collect_locked(s, s->npend == 0);
        bool still = s->active;
        uint64_t cur = s->active ? s->segs[s->nsegs - 1].bytes + s->pend_bytes : 0;
        uint64_t total = s->bytes + s->pend_bytes;
        bool full = s->o.max_bytes && total > 0 && total + esz > s->o.max_bytes;
        pthread_mutex_unlock(&s->mu);
        if (!still && s->wfd >= 0) {
            close(s->wfd);
            s->wfd = -1;
        }
        if (full) {
            rc = sl_errf(err, SL_EFULL, "spool %s: full (%" PRIu64 " bytes)", s->dir,
                         s->o.max_bytes);
            break;
        }
        if (s->wfd < 0 || (cur > 0 && cur + esz > s->seg_bytes)) {
            if ((rc = flush_pending(s, err)) != SL_OK) break;
            flushed = done;
            if ((rc = roll(s, err)) != SL_OK) break;
            cur = 0;
        }
        int e = write_at(s, p->out.p, esz, cur);
        if (e) {
            count_write_error(s, e);
            rc = sl_errf(err, errno_code(e), "spool %s: write: %s", s->dir, strerror(e));
            /* Cut the partial entry; entries before it stay pending. */
            if (ftruncate(s->wfd, (off_t)cur) != 0) abandon_active(s);
            break;
        }
        if (add_pend(s, s->wseq, esz, nrec) != SL_OK) {
            if (ftruncate(s->wfd, (off_t)cur) != 0) abandon_active(s);
            rc = sl_errf(err, SL_ENOMEM, "out of memory");
            break;
        }
        s->wseq++;
        done = i + 1;
        if (s->o.fsync == SL_SPOOL_FSYNC_ALWAYS) {
            if ((rc = flush_pending(s, err)) != SL_OK) break;
            flushed = done;
        }
    }
    if (s->npend) {
        sl_err ferr;
        int frc = flush_pending(s, rc == SL_OK ? err : &ferr);
        if (frc != SL_OK && rc == SL_OK) rc = frc;
    }
    /* Unless a failure discarded unsynced entries, all processed are safe. */
    if (s->abandons == abandons0) flushed = done;
    pthread_mutex_unlock(&s->wmu);
    if (written) *written = flushed;
    sl_spool_persist_cursor(s, false);
    return rc;
}

int sl_spool_append(sl_spool *s, sl_batch *const *v, size_t n, size_t *written, sl_err *err)
{
    return append_entries(s, v, NULL, n, written, err);
}

int sl_spool_append_prepared(sl_spool *s, sl_spool_prep *const *v, size_t n, size_t *written,
                             sl_err *err)
{
    return append_entries(s, NULL, v, n, written, err);
}
