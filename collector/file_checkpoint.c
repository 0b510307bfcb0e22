/* The file input's checkpoint (collector/file_checkpoint.h). */
#include "collector/file_checkpoint.h"

#include <errno.h>
#include <fnmatch.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "collector/file_discovery.h"
#include "core/fsutil.h"

/* Whether path lies in a folder one of the globs leads to: the folder of
 * a glob matches the entry's folder the way glob(3) would (a `*` never
 * crosses a `/` nor matches a leading dot, so never `..`). Rotated files
 * that are looked for again (rescue) stay in the folder they were found
 * in, so every entry the input wrote passes; an entry elsewhere would
 * have the agent walk and read a folder the configuration never named. */
static bool in_glob_folder(const file_input *in, const char *path)
{
    char pdir[1024];
    snprintf(pdir, sizeof pdir, "%s", path);
    const char *pd = dirname(pdir);
    for (size_t g = 0; g < in->nglobs; g++) {
        char gdir[1024];
        snprintf(gdir, sizeof gdir, "%s", in->globs[g]);
        if (fnmatch(dirname(gdir), pd, FNM_PATHNAME | FNM_PERIOD) == 0) return true;
    }
    return false;
}

#define DROPPED_HELP                                                                               \
    "Checkpoint entries dropped: left out at start (decision 0059), or over "                      \
    "max_checkpoint_entries (reason over_max_entries, decision 0069). The file's position is "     \
    "forgotten, a file still in the globs is read from its start."

/* Entries the load left out, and those outside the globs' folders: each
 * file's position is forgotten, so a file still in the globs is read from
 * its start (duplicates, never a skip). Counted by reason, one log line. */
static void drop_foreign_entries(file_input *in)
{
    sl_ckpt_drops *d = &in->ckpt.drops;
    size_t outside = 0;
    char first_outside[1100] = "";
    for (size_t i = 0; i < in->ckpt.n;) {
        if (in_glob_folder(in, in->ckpt.e[i].path)) {
            i++;
            continue;
        }
        if (!outside++) snprintf(first_outside, sizeof first_outside, "%s", in->ckpt.e[i].path);
        sl_ckpt_remove(&in->ckpt, i);
    }
    const struct {
        const char *reason;
        size_t n;
        const char *first;
    } counts[] = {{"invalid", d->invalid, d->first_invalid},
                  {"duplicate", d->duplicate, d->first_duplicate},
                  {"over_limit", d->over_limit, d->first_over_limit},
                  {"outside_globs", outside, first_outside}};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        char l[256];
        sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", counts[k].reason);
        sl_metric *m = sl_counter("sluice_checkpoint_entries_dropped_total", DROPPED_HELP, l);
        if (!counts[k].n) continue;
        sl_metric_add(m, counts[k].n);
        char q[4200], qf[2300];
        sl_log(SL_LOG_ERROR, "checkpoint_entries_dropped",
               "input=%s path=%s reason=%s count=%zu first=%s files=read_from_start", in->ctx->name,
               sl_file_qpath(q, sizeof q, in->ckpt_path), counts[k].reason, counts[k].n,
               sl_file_qpath(qf, sizeof qf, counts[k].first));
    }
}

int sl_file_ckpt_open(file_input *in, sl_err *err)
{
    const sl_input_ctx *ctx = in->ctx;
    /* A dry run reads the checkpoint if there is one and writes nothing. */
    int rc = sl_ckpt_path(ctx->data_dir, ctx->name, ".json", !ctx->dry_run, in->ckpt_path,
                          sizeof in->ckpt_path, err);
    if (rc != SL_OK) return rc;
    /* Has this input run in this data_dir before? Its marker, or any
     * checkpoint generation (data_dirs from before the marker), says so. */
    char marker[4200], prev[4200], aside[4200];
    sl_ckpt_path(ctx->data_dir, ctx->name, ".started", false, marker, sizeof marker, NULL);
    snprintf(prev, sizeof prev, "%s.prev", in->ckpt_path);
    snprintf(aside, sizeof aside, "%s.damaged", in->ckpt_path);
    struct stat mst;
    bool ran_before = lstat(marker, &mst) == 0 || lstat(in->ckpt_path, &mst) == 0 ||
                      lstat(prev, &mst) == 0 || lstat(aside, &mst) == 0;
    in->fresh = !ran_before;
    int fell_back = 0;
    sl_err lerr = {0};
    rc = sl_ckpt_load(in->ckpt_path, &in->ckpt, &fell_back, &lerr);
    bool missing = rc == SL_OK && !fell_back && lstat(in->ckpt_path, &mst) != 0;
    if (rc != SL_OK || (ran_before && missing)) {
        /* Both generations are damaged (or gone after earlier runs). Skipping
         * to start_at would lose what was written meanwhile, and stopping
         * would crash-loop the node's agent: every file is read again from
         * its start (duplicates, never loss), the damaged file kept aside
         * for a human. */
        if (rc != SL_OK && !ctx->dry_run) sl_keep_damaged(in->ckpt_path, ctx->name);
        sl_metric_inc(in->m_ckpt_lost);
        char q[4200];
        sl_log(SL_LOG_ERROR, "checkpoint_unreadable",
               "input=%s path=%s error=\"%s\" kept=%s files=read_from_start", ctx->name,
               sl_file_qpath(q, sizeof q, in->ckpt_path), rc != SL_OK ? lerr.msg : "missing",
               rc != SL_OK ? "damaged" : "none");
        sl_ckpt_free(&in->ckpt);
    } else if (fell_back) {
        sl_metric_inc(in->m_ckpt_fallback);
        sl_log(SL_LOG_WARN, "checkpoint_fallback", "input=%s path=%s used=previous_generation",
               ctx->name, in->ckpt_path);
    }
    drop_foreign_entries(in);
    char l[256];
    sl_metric_labels(l, sizeof l, "input", ctx->name, "reason", "over_max_entries");
    in->m_ckpt_over_max = sl_counter("sluice_checkpoint_entries_dropped_total", DROPPED_HELP, l);
    sl_metric_labels(l, sizeof l, "input", ctx->name, NULL, NULL);
    in->m_ckpt_entries = sl_gauge("sluice_checkpoint_entries",
                                  "Files the input's checkpoint remembers (open, closed, not yet "
                                  "opened, rotated away), as of its last save.",
                                  l);
    return SL_OK;
}

void sl_file_ckpt_mark_started(file_input *in)
{
    char marker[4200];
    sl_ckpt_path(in->ctx->data_dir, in->ctx->name, ".started", false, marker, sizeof marker, NULL);
    sl_err merr;
    static const char note[] = "this input has run in this data_dir: start_at no longer "
                               "applies\n";
    if (sl_write_atomic(marker, note, sizeof note - 1, 0, &merr) != SL_OK)
        sl_log(SL_LOG_WARN, "marker_write_failed", "input=%s error=\"%s\"", in->ctx->name,
               merr.msg);
}
/* A file that could not be opened yet (max_open_files) is remembered
 * with its size, so that if it is rotated out of the globs' reach before
 * there is room, it is still looked for (rescue), or counted as lost. */
void sl_file_remember_unopened(file_input *in, const char *path, const struct stat *st,
                               bool initial)
{
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st->st_dev, st->st_ino);
    if (e) {
        if ((uint64_t)st->st_size > e->size) e->size = (uint64_t)st->st_size;
        sl_file_saw(in, e);
        return;
    }
    /* Filled in place (9,000 of them at the first scan of 10,000 files
     * with max_open_files 1024: issue 19). */
    e = sl_ckpt_put_new(&in->ckpt, st->st_dev, st->st_ino);
    if (!e) return;
    size_t plen = strnlen(path, sizeof e->path - 1);
    memcpy(e->path, path, plen);
    e->path[plen] = '\0';
    e->size = (uint64_t)st->st_size;
    /* fp_len 0: no fingerprint yet, the offset says where to start. */
    if (initial && in->fresh && in->start_at == START_END) e->offset = e->size;
    sl_file_saw(in, e);
    in->ckpt_dirty = true;
}

/* size: the file's size when the caller has just taken it, else -1. */
void sl_file_remember(file_input *in, tracked *t, int64_t size)
{
    struct stat st;
    if (size < 0) size = fstat(t->fd, &st) == 0 ? (int64_t)st.st_size : (int64_t)t->read_off;
    /* Updated in place: an entry is 1.1 KiB, most of it the path, which
     * rarely changes (it was built and copied in, twice per close and per
     * save at 10,000 files: issue 19). */
    sl_ckpt_entry *e = sl_ckpt_put_new(&in->ckpt, t->dev, t->ino);
    if (!e) return;
    size_t plen = strnlen(t->path, sizeof e->path - 1);
    if (strncmp(e->path, t->path, sizeof e->path) != 0) {
        memcpy(e->path, t->path, plen);
        e->path[plen] = '\0';
    }
    e->fp_len = t->fp_len;
    e->fp = t->fp;
    e->offset = sl_watermark_get(t->wm);
    sl_file_saw(in, e);
    e->size = (uint64_t)size;
    e->look = 0;
}

/* Candidates to forget, in the order they go: files read to their end
 * before those with unread bytes (a rescue may still find them), then
 * the least recently seen. */
typedef struct forget_rank {
    bool unread;
    int64_t seen;
    uint64_t touched, dev, ino;
} forget_rank;

static int by_forget_order(const void *a, const void *b)
{
    const forget_rank *x = a, *y = b;
    if (x->unread != y->unread) return x->unread ? 1 : -1;
    if (x->seen != y->seen) return x->seen < y->seen ? -1 : 1;
    return (x->touched > y->touched) - (x->touched < y->touched);
}

/* True when e's file is no longer at its path (deleted, or renamed and
 * another file there): only then may its entry go, since a file still
 * there without one would be read again from its start at the next scan,
 * and again after every save over the bound. */
static bool entry_gone(const sl_ckpt_entry *e)
{
    struct stat st;
    if (lstat(e->path, &st) != 0) return errno == ENOENT || errno == ENOTDIR;
    return (uint64_t)st.st_dev != e->dev || (uint64_t)st.st_ino != e->ino;
}

/* More entries than max_checkpoint_entries: entries of files not open and
 * no longer at their path are forgotten, those read to their end and least
 * recently seen first, counted (reason over_max_entries) and logged at
 * most once a minute. Files created and deleted by the thousand while
 * closed (idle, or for room under max_open_files) leave entries nothing
 * else prunes before forget_after. Files still there are kept past the
 * bound (logged): the file system holds them, not a churn. */
static void forget_over_max(file_input *in)
{
    size_t max = (size_t)in->max_ckpt_entries;
    if (in->ckpt.n <= max) return;
    forget_rank *r = malloc(in->ckpt.n * sizeof *r);
    if (!r) return; /* tried again at the next save */
    size_t nr = 0;
    for (size_t i = 0; i < in->ckpt.n; i++) {
        const sl_ckpt_entry *e = &in->ckpt.e[i];
        if (sl_file_find_by_id(in, e->dev, e->ino)) continue;
        r[nr++] = (forget_rank){e->size > e->offset, e->seen, e->touched, e->dev, e->ino};
    }
    qsort(r, nr, sizeof *r, by_forget_order);
    size_t excess = in->ckpt.n - max, dropped = 0, unread = 0, present = 0;
    char first[1100] = "";
    for (size_t k = 0; k < nr && dropped < excess; k++) {
        sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, r[k].dev, r[k].ino);
        if (!e) continue;
        if (!entry_gone(e)) {
            present++;
            continue;
        }
        if (!dropped) snprintf(first, sizeof first, "%s", e->path);
        unread += r[k].unread;
        sl_ckpt_remove(&in->ckpt, (size_t)(e - in->ckpt.e));
        dropped++;
    }
    free(r);
    sl_metric_add(in->m_ckpt_over_max, dropped);
    int64_t now = sl_monotonic_ns();
    if ((dropped || present) &&
        (!in->over_max_logged_ns || now - in->over_max_logged_ns >= 60000000000)) {
        in->over_max_logged_ns = now;
        char q[4200], qf[2300];
        sl_log(unread ? SL_LOG_ERROR : SL_LOG_WARN, "checkpoint_entries_dropped",
               "input=%s path=%s reason=over_max_entries max=%zu count=%zu with_unread_bytes=%zu "
               "kept_present=%zu first=%s",
               in->ctx->name, sl_file_qpath(q, sizeof q, in->ckpt_path), max, dropped, unread,
               present, sl_file_qpath(qf, sizeof qf, first));
    }
}

void sl_file_save_checkpoint(file_input *in)
{
    if (in->ctx->dry_run) return;
    for (tracked *t = in->files; t; t = t->next) {
        /* Read to its end with no event since (the run loop takes the
         * events just before it saves): its size is read_off and it was
         * not deleted, as an fstat would say (an fstat per open file and
         * save: issue 19). */
        if (sl_file_known_at_eof(in, t)) {
            sl_file_remember(in, t, (int64_t)t->read_off);
            continue;
        }
        struct stat st;
        bool have_st = fstat(t->fd, &st) == 0;
        if (!have_st || st.st_nlink != 0)
            sl_file_remember(in, t, have_st ? (int64_t)st.st_size : -1);
    }
    int64_t now = sl_now_ns() / 1000000000;
    for (size_t i = 0; i < in->ckpt.n;) {
        const sl_ckpt_entry *e = &in->ckpt.e[i];
        if (!sl_file_find_by_id(in, e->dev, e->ino) && (now - e->seen) * 1000 > in->forget_after_ms)
            sl_ckpt_remove(&in->ckpt, i);
        else
            i++;
    }
    forget_over_max(in);
    sl_metric_set(in->m_ckpt_entries, (int64_t)in->ckpt.n);
    sl_err err;
    if (sl_ckpt_save(in->ckpt_path, &in->ckpt, &err) != SL_OK) {
        sl_metric_inc(in->m_ckpt_errors);
        sl_log(SL_LOG_ERROR, "checkpoint_write_failed", "input=%s error=\"%s\"", in->ctx->name,
               err.msg);
    }
}
