/* Read-only inspection of a spool directory, for `sluice spool
 * ls|stat|cat|verify|export` and the fuzzer: scans every segment without
 * taking the spool's lock, so it works beside a running agent. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/spool_segment.h"

/* ------------------------------------------------------------- inspection */

typedef struct iter_ctx {
    const sl_spool_iter_opts *o;
    uint64_t cursor;
    sl_spool_record_fn fn;
    void *arg;
    ZSTD_DCtx *dctx;
} iter_ctx;

static int verify_entry(void *arg, segrd *r, const entry *e)
{
    sl_batch *b = NULL;
    int rc = sl_spool_decode_entry(r, e, arg, &b);
    if (rc == SL_OK) sl_batch_unref(b);
    return rc;
}

static int iterate_entry(void *arg, segrd *r, const entry *e)
{
    iter_ctx *c = arg;
    if (c->o->pending_only && e->seq < c->cursor) return SL_OK;
    if (c->o->since_ns && e->tmax < c->o->since_ns) return SL_OK;
    if (c->o->until_ns && e->tmin >= c->o->until_ns) return SL_OK;
    sl_batch *b = NULL;
    int rc = sl_spool_decode_entry(r, e, c->dctx, &b);
    if (rc != SL_OK) return rc;
    int stop = 0;
    for (uint32_t i = 0; i < b->nrecords && !stop; i++) {
        const sl_record *rec = &b->records[i];
        if (c->o->since_ns && rec->time_ns < c->o->since_ns) continue;
        if (c->o->until_ns && rec->time_ns >= c->o->until_ns) continue;
        stop = c->fn(c->arg, b, rec, e->seq);
    }
    sl_batch_unref(b);
    return stop ? 1 : SL_OK;
}

/* Scans every segment of dir with fn per valid entry. */
static int scan_dir(const char *dir, scan_fn fn, void *arg, sl_spool_info *info,
                    sl_spool_seg_info **segs_out, size_t *nsegs_out, sl_err *err)
{
    uint64_t *firsts;
    size_t n;
    int rc = sl_spool_list_segments(dir, &firsts, &n, err);
    if (rc != SL_OK) return rc;
    bool damaged;
    sl_spool_info tot = {.cursor = sl_spool_read_cursor(dir, &damaged)};
    if (damaged) tot.corrupt++;
    sl_spool_seg_info *segs = calloc(n ? n : 1, sizeof *segs);
    if (!segs) {
        free(firsts);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char path[4200];
        sl_spool_seg_path(path, sizeof path, dir, firsts[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            if (fd >= 0) close(fd);
            if (errno == ENOENT) continue; /* deleted meanwhile by a live agent */
            rc = sl_errf(err, SL_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            rc = sl_errf(err, SL_EIO, "%s: not a regular file", path);
            break;
        }
        sl_spool_seg_info *si = &segs[k++];
        snprintf(si->name, sizeof si->name, "%020" PRIu64 ".seg", firsts[i]);
        si->first_seq = firsts[i];
        segrd r;
        sl_segrd_init(&r, fd, NULL, (uint64_t)st.st_size);
        int src = sl_spool_scan_segment(&r, i + 1 < n ? firsts[i + 1] : 0, tot.cursor, fn, arg, si);
        sl_segrd_free(&r);
        close(fd);
        if (src < 0)
            rc = sl_errf(err, src, "%s: %s", path, sl_strerror(src));
        else if (src > 0)
            break;
        tot.segments++;
        tot.bytes += si->bytes;
        tot.entries += si->entries;
        tot.records += si->records;
        tot.pending_entries += si->pending_entries;
        tot.pending_records += si->pending_records;
        tot.corrupt += si->corrupt;
        if (si->entries && (tot.entries == si->entries || si->time_min < tot.time_min))
            tot.time_min = si->time_min;
        if (si->entries && (tot.entries == si->entries || si->time_max > tot.time_max))
            tot.time_max = si->time_max;
    }
    free(firsts);
    if (info) *info = tot;
    if (segs_out && rc == SL_OK) {
        *segs_out = segs;
        *nsegs_out = k;
    } else
        free(segs);
    return rc;
}

int sl_spool_inspect(const char *dir, bool decode, sl_spool_info *info, sl_spool_seg_info **segs,
                     size_t *nsegs, sl_err *err)
{
    ZSTD_DCtx *dctx = decode ? ZSTD_createDCtx() : NULL;
    if (decode && !dctx) return sl_errf(err, SL_ENOMEM, "out of memory");
    int rc = scan_dir(dir, decode ? verify_entry : NULL, dctx, info, segs, nsegs, err);
    ZSTD_freeDCtx(dctx);
    return rc;
}

int sl_spool_iterate(const char *dir, const sl_spool_iter_opts *o, sl_spool_record_fn fn, void *arg,
                     sl_err *err)
{
    sl_spool_iter_opts none = {0};
    bool damaged;
    iter_ctx c = {o ? o : &none, sl_spool_read_cursor(dir, &damaged), fn, arg, ZSTD_createDCtx()};
    if (!c.dctx) return sl_errf(err, SL_ENOMEM, "out of memory");
    sl_spool_info info = {0};
    int rc = scan_dir(dir, iterate_entry, &c, &info, NULL, NULL, err);
    /* (scan_dir counts a damaged cursor too: no entry was skipped for it) */
    if (o && o->damaged) *o->damaged += info.corrupt - (damaged && info.corrupt ? 1 : 0);
    ZSTD_freeDCtx(c.dctx);
    return rc;
}

int sl_spool_verify_bytes(const void *p, size_t n, uint64_t first_seq, sl_spool_seg_info *out)
{
    memset(out, 0, sizeof *out);
    out->first_seq = first_seq ? first_seq : 1;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) return SL_ENOMEM;
    segrd r;
    sl_segrd_init(&r, -1, p, n);
    int rc = sl_spool_scan_segment(&r, 0, 0, verify_entry, dctx, out);
    ZSTD_freeDCtx(dctx);
    return rc < 0 ? rc : SL_OK;
}
