/* The file input's discovery and identity (collector/file_discovery.h).
 * One file past ~800 lines: scanning, the queue for room, opening and
 * closing for room, rotation and rescue all keep the same three indexes
 * (by identity, by path, waiting paths) and the victim list consistent
 * with each other; split, each part would need the others' internals. */
#include "collector/file_discovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "collector/file_checkpoint.h"

static bool excluded(const file_input *in, const char *path)
{
    for (size_t i = 0; i < in->nexcludes; i++)
        if (fnmatch(in->excludes[i], path, FNM_PATHNAME) == 0) return true;
    return false;
}

uint64_t sl_file_fingerprint_fd(int fd, uint32_t len)
{
    char buf[65536];
    if (len > sizeof buf) len = sizeof buf; /* fp_len comes from the checkpoint too */
    ssize_t r = pread(fd, buf, len, 0);
    return sl_fingerprint(buf, r > 0 ? (size_t)r : 0);
}

/* Refreshes the fingerprint while the file is shorter than fp_bytes, so
 * that it covers as much of the file as exists. */
void sl_file_grow_fingerprint(file_input *in, tracked *t, uint64_t size)
{
    if (t->fp_len >= in->fp_bytes || size <= t->fp_len) return;
    uint32_t len = size < in->fp_bytes ? (uint32_t)size : in->fp_bytes;
    t->fp = sl_file_fingerprint_fd(t->fd, len);
    t->fp_len = len;
}

static size_t id_bucket(uint64_t dev, uint64_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ dev) & (INDEX_BUCKETS - 1);
}

/* Eight bytes a step: FNV-1a a byte at a time (sl_fingerprint) took
 * ~60 serial multiplies per path, and a file's path is hashed about six
 * times between its scan and its close (issue 19). Buckets only: the
 * value is never saved. */
static size_t path_bucket(const char *path)
{
    size_t n = strlen(path);
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
    for (; n >= 8; path += 8, n -= 8) {
        memcpy(&w, path, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, path, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return (size_t)(h ^ (h >> 29)) & (INDEX_BUCKETS - 1);
}

static void index_add(file_input *in, tracked *t)
{
    size_t i = id_bucket(t->dev, t->ino), p = path_bucket(t->path);
    t->id_next = in->by_id[i];
    in->by_id[i] = t;
    t->path_next = in->by_path[p];
    in->by_path[p] = t;
}

static void index_del_path(file_input *in, tracked *t)
{
    for (tracked **pp = &in->by_path[path_bucket(t->path)]; *pp; pp = &(*pp)->path_next)
        if (*pp == t) {
            *pp = t->path_next;
            return;
        }
}

static void index_del(file_input *in, tracked *t)
{
    for (tracked **pp = &in->by_id[id_bucket(t->dev, t->ino)]; *pp; pp = &(*pp)->id_next)
        if (*pp == t) {
            *pp = t->id_next;
            break;
        }
    index_del_path(in, t);
}

tracked *sl_file_find_by_id(file_input *in, uint64_t dev, uint64_t ino)
{
    for (tracked *t = in->by_id[id_bucket(dev, ino)]; t; t = t->id_next)
        if (t->dev == dev && t->ino == ino) return t;
    return NULL;
}

static tracked *find_by_path(file_input *in, const char *path)
{
    for (tracked *t = in->by_path[path_bucket(path)]; t; t = t->path_next)
        if (strcmp(t->path, path) == 0) return t;
    return NULL;
}

bool sl_file_deleted(const tracked *t)
{
    struct stat st;
    return fstat(t->fd, &st) == 0 && st.st_nlink == 0;
}

bool sl_file_known_at_eof(const file_input *in, const tracked *t)
{
    return in->events_fresh && t->at_eof && !t->dirty && !t->gone && t->open_size < 0 &&
           sl_watch_active(in->watch);
}

static void on_taken_event(void *arg, const char *path, int event)
{
    file_input *in = arg;
    in->events_taken = true;
    sl_file_on_watch_event(in, path, event);
}

void sl_file_take_events(file_input *in)
{
    in->events_fresh = false; /* the events may open files: no shortcut meanwhile */
    sl_watch_wait(in->watch, 0, on_taken_event, in);
    in->events_fresh = true;
}

/* The open file that a path's stat result leads to. A file we hold that
 * was deleted can share its inode number with a new file at the same path
 * (inode reuse): the new file is a different one. */
static tracked *find_live(file_input *in, const struct stat *st)
{
    for (tracked *t = in->by_id[id_bucket(st->st_dev, st->st_ino)]; t; t = t->id_next)
        if (t->dev == st->st_dev && t->ino == st->st_ino && !sl_file_deleted(t)) return t;
    return NULL;
}

static refused_name *find_refused(file_input *in, const char *path)
{
    for (refused_name *r = in->refused[path_bucket(path)]; r; r = r->next)
        if (strcmp(r->path, path) == 0) return r;
    return NULL;
}

/* True when path was refused before and its name still is what it was. */
static bool known_refused(file_input *in, const char *path, const struct stat *lst)
{
    refused_name *r = find_refused(in, path);
    if (!r || r->dev != (uint64_t)lst->st_dev || r->ino != (uint64_t)lst->st_ino) return false;
    r->scan = in->scan_no;
    return true;
}

static void refuse(file_input *in, const char *path, const struct stat *lst, int reason)
{
    refused_name *r = find_refused(in, path);
    if (!r && in->nrefused < MAX_REFUSED) {
        size_t len = strlen(path);
        r = malloc(sizeof *r + len + 1);
        if (r) {
            memcpy(r->path, path, len + 1);
            size_t b = path_bucket(path);
            r->next = in->refused[b];
            in->refused[b] = r;
            in->nrefused++;
        }
    }
    if (r) {
        r->dev = (uint64_t)lst->st_dev;
        r->ino = (uint64_t)lst->st_ino;
        r->scan = in->scan_no;
    }
    sl_metric_inc(in->m_refused[reason]);
    char q[2100];
    sl_log(SL_LOG_WARN, "file_refused", "input=%s path=%s reason=%s", in->ctx->name,
           sl_file_qpath(q, sizeof q, path), sl_file_refusal_name(reason));
}

/* After a full scan: names it did not see are forgotten (all when
 * everything is to be forgotten). */
static void sweep_refused(file_input *in, bool all)
{
    for (size_t b = 0; b < INDEX_BUCKETS; b++)
        for (refused_name **pp = &in->refused[b]; *pp;) {
            refused_name *r = *pp;
            if (all || r->scan != in->scan_no) {
                *pp = r->next;
                free(r);
                in->nrefused--;
            } else {
                pp = &r->next;
            }
        }
}

static bool close_one_idle(file_input *in);

static waiting_path *find_waiting(file_input *in, const char *path)
{
    for (waiting_path *w = in->waiting[path_bucket(path)]; w; w = w->hash_next)
        if (strcmp(w->path, path) == 0) return w;
    return NULL;
}

/* Says once per file (path and inode) that it waits for room, as
 * file_opened says when it is opened: an operator (and a test) can tell a
 * file put off from one never seen. */
static void log_deferred(const file_input *in, const char *path, const struct stat *st)
{
    if (!sl_log_enabled(SL_LOG_INFO)) return; /* the path's quoting: per file (issue 19) */
    char q[2100];
    sl_log(SL_LOG_INFO, "file_deferred", "input=%s path=%s inode=%llu max_open_files=%lld",
           in->ctx->name, sl_file_qpath(q, sizeof q, path), (unsigned long long)st->st_ino,
           (long long)in->max_open_files);
}

/* Queues a path that found no room (once); false when the queue is full.
 * st: the file, lst: the name. */
static bool add_waiting(file_input *in, const char *path, const struct stat *st,
                        const struct stat *lst)
{
    bool plain = S_ISREG(st->st_mode) && !S_ISLNK(lst->st_mode);
    waiting_path *old = find_waiting(in, path);
    if (old) {
        /* Rotated meanwhile: the path now leads to a newer file. */
        if (old->ino != (uint64_t)st->st_ino || old->dev != (uint64_t)st->st_dev)
            log_deferred(in, path, st);
        old->dev = (uint64_t)st->st_dev;
        old->ino = (uint64_t)st->st_ino;
        old->plain = plain;
        return true;
    }
    if (in->nwaiting == MAX_WAITING) return false;
    size_t len = strlen(path);
    waiting_path *w = malloc(sizeof *w + len + 1);
    if (!w) return false;
    memcpy(w->path, path, len + 1);
    w->dev = (uint64_t)st->st_dev;
    w->ino = (uint64_t)st->st_ino;
    w->plain = plain;
    log_deferred(in, path, st);
    size_t b = path_bucket(path);
    w->hash_next = in->waiting[b];
    in->waiting[b] = w;
    w->next = NULL;
    if (in->wait_tail)
        in->wait_tail->next = w;
    else
        in->wait_head = w;
    in->wait_tail = w;
    in->nwaiting++;
    return true;
}

/* Takes the first path off the queue; the caller frees it. */
static waiting_path *pop_waiting(file_input *in)
{
    waiting_path *w = in->wait_head;
    if (!w) return NULL;
    in->wait_head = w->next;
    if (!in->wait_head) in->wait_tail = NULL;
    for (waiting_path **pp = &in->waiting[path_bucket(w->path)]; *pp; pp = &(*pp)->hash_next)
        if (*pp == w) {
            *pp = w->hash_next;
            break;
        }
    in->nwaiting--;
    return w;
}

/* found: the path's stat when discovered; lst: its lstat (the name).
 * only_known: open it only if it is the file the checkpoint knows (a
 * rescue). noted: found and lst are only the identity a queued path had
 * (dev, ino, a regular file, no link): what look_at decides from the
 * name's size and time is decided from the descriptor's. Returns the file
 * when it was opened. */
/* The checkpoint's file e, now st, was read to its end and has not
 * changed since: it stays closed (a write reopens it). */
static bool read_unchanged(const sl_ckpt_entry *e, const struct stat *st)
{
    return e->offset == (uint64_t)st->st_size &&
           sl_file_mtime_ns(st) < (int64_t)(e->seen - 1) * 1000000000;
}

/* snprintf's "%s" without its format parsing (twice per file opened). */
static void copy_path(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static tracked *open_file(file_input *in, const char *path, const struct stat *found,
                          const struct stat *lst, bool initial, bool only_known, bool noted)
{
    /* The second thread never closes files: the input's thread may be
     * using them. */
    if (in->open_count >= in->max_open_files && (in->discovering || !close_one_idle(in))) {
        /* Every open file still has unread or unacknowledged data; this one
         * waits (in the queue, or for a later scan) rather than exceed the
         * bound. */
        sl_metric_inc(in->m_deferred);
        if (S_ISREG(found->st_mode) && !noted) sl_file_remember_unopened(in, path, found, initial);
        /* A path of the globs waits in the queue; a rescue, for a scan. */
        if (only_known || !add_waiting(in, path, found, lst)) in->deferred = true;
        return NULL;
    }
    int fd, why;
    struct stat fst;
    int grc = sl_file_guard_open(&in->guard, path, found, lst, &fd, &fst, &why);
    if (grc == SL_EINVAL) {
        refuse(in, path, lst, why);
        return NULL;
    }
    if (grc == SL_EAGAIN) {
        /* The name changed between discovery and open: look again soon. */
        in->deferred = true;
        return NULL;
    }
    if (grc != SL_OK) {
        char q[2100];
        sl_metric_inc(in->m_read_errors);
        sl_log(SL_LOG_WARN, "file_open_failed", "input=%s path=%s error=\"%s\"", in->ctx->name,
               sl_file_qpath(q, sizeof q, path), strerror(errno));
        return NULL;
    }
    const struct stat *st = &fst;
    uint64_t size = (uint64_t)st->st_size;
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st->st_dev, st->st_ino);
    if (noted && e && read_unchanged(e, st)) {
        close(fd);
        sl_file_saw(in, e);
        return NULL;
    }
    /* fp_len 0: first seen empty (or not opened yet); nothing to compare,
     * and its offset cannot be past anything the file could have held. */
    bool same = e && (e->fp_len == 0 ||
                      (e->fp_len <= size && sl_file_fingerprint_fd(fd, e->fp_len) == e->fp));
    if (only_known && !same) {
        close(fd);
        return NULL;
    }
    tracked *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return NULL;
    }
    copy_path(t->path, sizeof t->path, path);
    t->fd = fd;
    t->dev = st->st_dev;
    t->ino = st->st_ino;
    uint64_t start = 0;
    if (same) {
        /* Same file as checkpointed; an offset past the end means it was
         * truncated while we were away. */
        start = e->offset <= size ? e->offset : 0;
        if (e->offset > size) {
            /* Or the checkpoint says more than the file ever held: either
             * way read again from 0, counted (decision 0059). */
            char q[2100];
            sl_metric_inc(in->m_truncated_files);
            sl_log(SL_LOG_INFO, "file_truncated",
                   "input=%s path=%s reason=while_stopped old_offset=%llu size=%llu", in->ctx->name,
                   sl_file_qpath(q, sizeof q, path), (unsigned long long)e->offset,
                   (unsigned long long)size);
        }
        t->fp_len = e->fp_len;
        t->fp = e->fp;
    } else {
        char q[2100];
        if (e)
            sl_log(SL_LOG_INFO, "file_identity_changed", "input=%s path=%s reason=inode_reused",
                   in->ctx->name, sl_file_qpath(q, sizeof q, path));
        if (e && e->size > e->offset) {
            /* The file that had this inode went away with bytes unread. */
            sl_metric_add(in->m_lost_bytes, e->size - e->offset);
            sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
                   in->ctx->name, sl_file_qpath(q, sizeof q, e->path),
                   (unsigned long long)(e->size - e->offset), (unsigned long long)e->offset);
        }
        /* start_at is for the files present when the input first runs in
         * this data_dir; anything after that is new data, read from its
         * start (decision 0015). */
        if (!e && initial && in->fresh && in->start_at == START_END) start = size;
    }
    /* Read from its start: the first read takes the fingerprint from what
     * it reads (one pread of fp_bytes per file less: issue 19). */
    if (start != 0) sl_file_grow_fingerprint(in, t, size);
    t->read_off = start;
    t->wm = sl_watermark_new(start);
    t->last_data_ns = sl_monotonic_ns();
    if (!t->wm) {
        close(fd);
        free(t);
        return NULL;
    }
    t->next = in->files;
    t->prev = NULL;
    if (in->files) in->files->prev = t;
    in->files = t;
    index_add(in, t);
    in->ckpt_dirty = true;
    t->dirty = true;
    /* The fingerprint was compared (or taken) just now: the first read
     * need not compare it again, as it would after a read that reached
     * the end (one pread of fp_bytes per file less: issue 19). */
    t->caught_up = false;
    t->at_eof = false;
    t->mtime_ns = sl_file_mtime_ns(st);
    t->open_size = st->st_size;
    t->open_mtim = st->st_mtim;
    in->open_count++;
    sl_metric_gauge_add(in->m_open, 1);
    char dir[1024];
    copy_path(dir, sizeof dir, path);
    sl_watch_dir(in->watch, dirname(dir));
    if (sl_log_enabled(SL_LOG_INFO)) {
        char q[2100];
        sl_log(SL_LOG_INFO, "file_opened", "input=%s path=%s inode=%llu offset=%llu", in->ctx->name,
               sl_file_qpath(q, sizeof q, path), (unsigned long long)t->ino,
               (unsigned long long)start);
    }
    return t;
}

/* st: the file's fstat when the caller has just taken it, else NULL. */
void sl_file_close(file_input *in, tracked *t, const struct stat *known)
{
    in->ckpt_dirty = true;
    /* A deleted file can never be opened again. Its inode number cannot
     * belong to another file while we hold it open, so the entry with it
     * is this file's, or a file's before it that is gone too: it is
     * forgotten, so that nothing looks for it and a new file that gets the
     * number later is read from its start (decision 0069: kept until
     * forget_after, the entries of files created and deleted by the
     * thousand grew without bound where inode numbers are not reused).
     * (An entry left as the last save had it, say with no fingerprint and
     * offset 0 because the file was saved before its first read, was
     * reported lost at the next start and then took a new file with the
     * inode number for itself, skipping its first bytes: 111 lines in the
     * model test, seed 1796614749.) */
    struct stat st;
    bool have_st = known ? (st = *known, true) : fstat(t->fd, &st) == 0;
    if (!have_st || st.st_nlink != 0) {
        sl_file_remember(in, t, have_st ? (int64_t)st.st_size : -1);
    } else {
        uint64_t acked = sl_watermark_get(t->wm);
        sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, t->dev, t->ino);
        if (e) sl_ckpt_remove(&in->ckpt, (size_t)(e - in->ckpt.e));
        if ((uint64_t)st.st_size > acked) {
            /* Only at shutdown: deleted with bytes not delivered. */
            char q[2100];
            sl_metric_add(in->m_lost_bytes, (uint64_t)st.st_size - acked);
            sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
                   in->ctx->name, sl_file_qpath(q, sizeof q, t->path),
                   (unsigned long long)((uint64_t)st.st_size - acked), (unsigned long long)acked);
        }
    }
    close(t->fd);
    sl_watermark_unref(t->wm);
    if (t->chunk) sl_chunk_unref(t->chunk);
    in->open_count--;
    sl_metric_gauge_add(in->m_open, -1);
    free(t);
}

/* A file is idle when everything in it was read and acknowledged. One
 * opened with bytes past where it starts, not read yet, is not (the
 * victim choice listed 1,024 such files and fstat'ed each to find it
 * grown, half the fstats of close_one_idle at 10,000 files: issue 19). */
static bool is_idle(const tracked *t)
{
    return t->partial == 0 && !t->skipping && sl_watermark_pending(t->wm) == 0 &&
           !(t->open_size >= 0 && (uint64_t)t->open_size > t->read_off);
}

static void unlink_tracked(file_input *in, tracked *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        in->files = t->next;
    if (t->next) t->next->prev = t->prev;
    index_del(in, t);
    if (t->victim_slot) in->victims[t->victim_slot - 1] = NULL;
    t->victim_slot = 0;
}

static int cmp_recent_first(const void *a, const void *b)
{
    const tracked *x = *(tracked *const *)a, *y = *(tracked *const *)b;
    return (x->last_data_ns < y->last_data_ns) - (x->last_data_ns > y->last_data_ns);
}

/* Lists the idle files, least recently active last. At most one walk per
 * turn that finds none: acknowledgements arrive between turns. */
static void choose_victims(file_input *in)
{
    if (in->no_victims_turn == in->turn) return;
    size_t n = 0;
    for (tracked *t = in->files; t; t = t->next) {
        if (!is_idle(t)) continue;
        if (n == in->victims_cap) {
            size_t cap = in->victims_cap ? in->victims_cap * 2 : 64;
            tracked **v = realloc(in->victims, cap * sizeof *v);
            if (!v) break;
            in->victims = v;
            in->victims_cap = cap;
        }
        in->victims[n++] = t;
    }
    if (n) qsort(in->victims, n, sizeof *in->victims, cmp_recent_first);
    for (size_t i = 0; i < n; i++) in->victims[i]->victim_slot = i + 1;
    in->nvictims = n;
    if (!n) in->no_victims_turn = in->turn;
}

/* Closes the least recently active idle file, to make room under
 * max_open_files. Its checkpoint entry lets it reopen where it was. */
static bool close_one_idle(file_input *in)
{
    if (!in->nvictims) choose_victims(in);
    while (in->nvictims) {
        tracked *t = in->victims[--in->nvictims];
        if (!t) continue;
        t->victim_slot = 0;
        /* Listed earlier in the turn: it may have got data since. */
        struct stat st;
        if (!is_idle(t)) continue;
        if (sl_file_known_at_eof(in, t)) {
            /* Read to its end, no event since (taken at the start of this
             * round of opens): not grown, not deleted, not renamed as far
             * as an fstat just now could tell (an fstat per file at 10,000
             * files: issue 19). The size is what the checkpoint needs. */
            memset(&st, 0, sizeof st);
            st.st_size = (off_t)t->read_off;
            st.st_nlink = 1;
            unlink_tracked(in, t);
            sl_file_close(in, t, &st);
            return true;
        }
        bool have_st = fstat(t->fd, &st) == 0;
        if (have_st && (uint64_t)st.st_size > t->read_off) continue;
        unlink_tracked(in, t);
        sl_file_close(in, t, have_st ? &st : NULL);
        return true;
    }
    return false;
}

void sl_file_close_idle_files(file_input *in, int64_t now)
{
    for (tracked *t = in->files, *next; t; t = next) {
        next = t->next;
        if (!t->gone && (now - t->last_data_ns) / 1000000 >= in->close_idle_ms && is_idle(t)) {
            struct stat st;
            bool have_st = fstat(t->fd, &st) == 0;
            if (have_st && (uint64_t)st.st_size > t->read_off) continue;
            unlink_tracked(in, t);
            sl_file_close(in, t, have_st ? &st : NULL);
        }
    }
}

/* A path the globs (or inotify) found: followed when tracked, opened when
 * new, refused (once) when it must not be read. */
static void look_at_noted(file_input *in, const char *path, bool initial, const struct stat *noted);

static void look_at(file_input *in, const char *path, bool initial)
{
    look_at_noted(in, path, initial, NULL);
}

/* noted: the name's lstat taken just before by the scan's helper thread
 * (lstat_ahead), else NULL. Taken a moment earlier it says no more than
 * one taken here would: the guard opens the name with no link followed
 * and checks the file it opened against it, whenever it was taken. */
static void look_at_noted(file_input *in, const char *path, bool initial, const struct stat *noted)
{
    struct stat lst, st;
    if (excluded(in, path)) return;
    if (noted)
        lst = *noted;
    else if (lstat(path, &lst) != 0)
        return;
    if (known_refused(in, path, &lst)) return;
    /* Queued for room and still the same file: its size noted (a rescue
     * needs it if it is rotated away before its turn), the rest done when
     * its turn comes (a scan of 10,000 names under backpressure would
     * otherwise check each again). A new file at the path goes on below. */
    waiting_path *w = in->wait_head ? find_waiting(in, path) : NULL;
    if (w && S_ISREG(lst.st_mode) && w->dev == (uint64_t)lst.st_dev &&
        w->ino == (uint64_t)lst.st_ino) {
        sl_file_remember_unopened(in, path, &lst, initial);
        return;
    }
    /* A name that is not a link is its own file: one system call less per
     * file and scan (issue 19). */
    if (S_ISLNK(lst.st_mode) ? stat(path, &st) != 0 : (st = lst, false)) return; /* dangling */
    if (S_ISDIR(st.st_mode)) return;
    if (!S_ISREG(st.st_mode)) {
        refuse(in, path, &lst, SL_REFUSED_NOT_REGULAR);
        return;
    }
    bool link = S_ISLNK(lst.st_mode);
    if (link && in->follow == SL_FOLLOW_NEVER) {
        refuse(in, path, &lst, SL_REFUSED_SYMLINK);
        return;
    }
    tracked *t = find_live(in, &st);
    if (t) {
        t->gone = false;
        t->dirty = true;
        /* Renamed within the glob: follow the new name. A link to a file
         * we read is that file, read once under its own name. */
        if (!link && !in->discovering && strcmp(t->path, path) != 0) {
            index_del_path(in, t);
            snprintf(t->path, sizeof t->path, "%s", path);
            t->path_next = in->by_path[path_bucket(t->path)];
            in->by_path[path_bucket(t->path)] = t;
            in->ckpt_dirty = true;
        }
        return;
    }
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st.st_dev, st.st_ino);
    if (e && read_unchanged(e, &st)) {
        /* Read to its end and unchanged since: stays closed (a write
         * reopens it); still present, so not to be forgotten. */
        sl_file_saw(in, e);
        return;
    }
    open_file(in, path, &st, &lst, initial, false, false);
}

/* Whether the checkpoint's file e is to be looked for: no glob led to it,
 * and it has bytes we never read (or, at the first scan, its size is
 * unknown: checkpoints from before sizes were kept). looks: the
 * checkpoint's clock (sl_file_saw) when this scan began. */
static bool wants_rescue(file_input *in, const sl_ckpt_entry *e, bool first, uint64_t looks)
{
    /* Open: its descriptor follows it wherever it is renamed. */
    if (sl_file_find_by_id(in, e->dev, e->ino)) return false;
    /* Never read (deferred for room under max_open_files, or empty): its
     * size is the one a scan last saw, and bytes written after that are
     * unknown. One this scan met at a name of the globs is still within
     * their reach; one it did not meet was renamed away (app.log ->
     * app.log.1 with *.log) or deleted, and is looked for by identity,
     * whatever its size said (a file deferred while empty, filled and
     * rotated away was never read, and never said lost: decision 0087). */
    if (e->fp_len == 0 && e->touched <= looks) return true;
    /* Waiting for room at the path where it still is: not lost. */
    const waiting_path *w = in->wait_head ? find_waiting(in, e->path) : NULL;
    if (w && w->dev == e->dev && w->ino == e->ino) return false;
    return e->size > e->offset || (first && e->size == 0 && e->fp_len > 0);
}

#define MAX_RESCUE_DIRS 64

/* Files the checkpoint knows with unread bytes that no glob led to: renamed
 * out of the globs' reach (app.log -> app.log.1 with *.log) while the agent
 * was down, or before it had room to open them. They are looked for by
 * identity among the files of the folder they were in, and read to their
 * end; what cannot be found is logged and counted as lost. */
static void rescue(file_input *in, bool first, uint64_t looks)
{
    char *dirs[MAX_RESCUE_DIRS];
    size_t ndirs = 0;
    bool any = false;
    for (size_t i = 0; i < in->ckpt.n; i++) {
        sl_ckpt_entry *e = &in->ckpt.e[i];
        e->look = 0;
        if (!wants_rescue(in, e, first, looks)) continue;
        any = true;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", e->path);
        const char *d = dirname(dir);
        size_t k = 0;
        while (k < ndirs && strcmp(dirs[k], d) != 0) k++;
        if (k == ndirs && ndirs < MAX_RESCUE_DIRS && (dirs[k] = strdup(d))) ndirs++;
        if (k < ndirs) e->look = 1; /* its folder is walked: 2 once found */
    }
    if (!any) return;
    for (size_t k = 0; k < ndirs; k++) {
        DIR *d = opendir(dirs[k]);
        for (struct dirent *de; d && (de = readdir(d));) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(st.st_mode))
                continue;
            sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st.st_dev, st.st_ino);
            if (!e || e->look != 1) continue;
            e->look = 2;
            char path[2048];
            if (snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name) >= (int)sizeof path)
                continue;
            if (e->fp_len == 0) {
                /* Followed by identity: its name now, and what it holds. */
                if ((uint64_t)st.st_size > e->size) e->size = (uint64_t)st.st_size;
                if (strcmp(e->path, path) != 0) {
                    copy_path(e->path, sizeof e->path, path);
                    in->ckpt_dirty = true;
                }
                if ((uint64_t)st.st_size <= e->offset) {
                    /* Nothing to read out of the globs' reach: released,
                     * as an open file read to its end is (its entry would
                     * otherwise ask for a walk of the folder every scan). */
                    e->look = 3;
                    continue;
                }
            }
            if ((uint64_t)st.st_size <= e->offset) continue;
            uint64_t from = e->offset;
            tracked *t = open_file(in, path, &st, &st, false, true, false);
            if (!t) continue;
            /* Not in the globs: read to its end, then released. */
            t->gone = true;
            char q[2100];
            sl_log(SL_LOG_INFO, "file_found_again", "input=%s path=%s offset=%llu size=%llu",
                   in->ctx->name, sl_file_qpath(q, sizeof q, path), (unsigned long long)from,
                   (unsigned long long)st.st_size);
        }
        if (d) closedir(d);
        free(dirs[k]);
    }
    for (size_t i = 0; i < in->ckpt.n;) {
        sl_ckpt_entry *e = &in->ckpt.e[i];
        if ((e->look == 3 || e->look == 1) && e->fp_len == 0 && e->size <= e->offset) {
            /* Never read, nothing known unread: found outside the globs
             * with nothing to read, or gone while empty. Forgotten (no
             * fingerprint: see below). */
            sl_ckpt_remove(&in->ckpt, i);
            in->ckpt_dirty = true;
            continue;
        }
        if (e->look != 1 || e->size <= e->offset) {
            i++;
            continue;
        }
        /* Gone with bytes never read: the loss is said once, and the entry
         * no longer asks to be looked for. */
        uint64_t lost = e->size - e->offset;
        sl_metric_add(in->m_lost_bytes, lost);
        char q[2100];
        sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
               in->ctx->name, sl_file_qpath(q, sizeof q, e->path), (unsigned long long)lost,
               (unsigned long long)e->offset);
        in->ckpt_dirty = true;
        if (e->fp_len == 0) {
            /* No fingerprint: nothing would tell the file from a new one
             * that gets its inode number, and an entry with an offset past
             * 0 would take that new file for itself and skip its first
             * bytes. Forgotten; should the file itself come back, it is
             * read from its start (duplicates, never loss). */
            sl_ckpt_remove(&in->ckpt, i);
            continue;
        }
        e->offset = e->size;
        i++;
    }
}

/* A scan's lstat of each name the glob found, taken on a helper thread
 * from the last name backwards while the input's thread works forwards
 * from the first (issue 19: at 10,000 files the lstats were ~40 % of the
 * first scan, on the thread every record waits for). Each name is taken
 * once by whichever side reaches it first; where they meet, at most one
 * is taken by both. Only for globs of thousands of names (for fewer, the
 * lstats saved are not worth a thread: at 100 files the measurements could
 * not tell, decision 0079), and for at most LSTAT_AHEAD_MAX of them (the
 * rest as before). */
#define LSTAT_AHEAD_MIN 1024
#define LSTAT_AHEAD_MAX 65536

typedef struct lstat_ahead {
    char *const *paths;
    size_t n;
    struct stat *st;
    bool *failed;
    _Atomic size_t from; /* st[from, n) and failed[from, n) are set */
    _Atomic size_t at;   /* the input's thread is at this name */
    pthread_t thread;
} lstat_ahead;

static void *lstat_ahead_run(void *arg)
{
    lstat_ahead *a = arg;
    for (size_t i = a->n; i-- > 0;) {
        if (i < atomic_load_explicit(&a->at, memory_order_acquire)) break;
        a->failed[i] = lstat(a->paths[i], &a->st[i]) != 0;
        atomic_store_explicit(&a->from, i, memory_order_release);
    }
    return NULL;
}

static bool lstat_ahead_start(lstat_ahead *a, char *const *paths, size_t n)
{
    if (n < LSTAT_AHEAD_MIN) return false;
    a->paths = paths;
    a->n = n < LSTAT_AHEAD_MAX ? n : LSTAT_AHEAD_MAX;
    a->st = malloc(a->n * sizeof *a->st);
    a->failed = calloc(a->n, sizeof *a->failed);
    atomic_init(&a->from, a->n);
    atomic_init(&a->at, 0);
    if (a->st && a->failed && pthread_create(&a->thread, NULL, lstat_ahead_run, a) == 0)
        return true;
    free(a->st);
    free(a->failed);
    return false;
}

/* Name i's lstat: TAKEN (in *st) or GONE (it failed) when the helper took
 * it, NOT_TAKEN when it did not (the caller takes it itself). */
enum { LSTAT_NOT_TAKEN, LSTAT_TAKEN, LSTAT_GONE };
static int lstat_ahead_take(lstat_ahead *a, size_t i, struct stat *st)
{
    atomic_store_explicit(&a->at, i + 1, memory_order_release);
    if (i >= a->n || i < atomic_load_explicit(&a->from, memory_order_acquire))
        return LSTAT_NOT_TAKEN;
    if (a->failed[i]) return LSTAT_GONE;
    *st = a->st[i];
    return LSTAT_TAKEN;
}

static void lstat_ahead_stop(lstat_ahead *a)
{
    atomic_store_explicit(&a->at, a->n, memory_order_release);
    pthread_join(a->thread, NULL);
    free(a->st);
    free(a->failed);
}

void sl_file_scan(file_input *in)
{
    in->scan_no++;
    uint64_t looks = in->ckpt_looks; /* entries the globs lead to are seen after this */
    /* Folders held open since the last scan are opened again by their
     * paths when next needed: one renamed or swapped meanwhile is let go. */
    sl_file_guard_forget_dirs(&in->guard);
    for (tracked *t = in->files; t; t = t->next) t->gone = true;
    for (size_t g = 0; g < in->nglobs; g++) {
        /* Watch the glob's directory when it has no wildcard, so files
         * created there later are seen at once. */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", in->globs[g]);
        char *d = dirname(dir);
        if (!strpbrk(d, "*?[")) sl_watch_dir(in->watch, d);
        glob_t gl;
        if (glob(in->globs[g], GLOB_NOSORT, NULL, &gl) != 0) continue;
        lstat_ahead a;
        bool ahead = lstat_ahead_start(&a, gl.gl_pathv, gl.gl_pathc);
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            struct stat noted;
            int took = ahead ? lstat_ahead_take(&a, i, &noted) : LSTAT_NOT_TAKEN;
            if (took == LSTAT_GONE) continue; /* as when look_at's lstat fails */
            look_at_noted(in, gl.gl_pathv[i], !in->first_scan_done,
                          took == LSTAT_TAKEN ? &noted : NULL);
        }
        if (ahead) lstat_ahead_stop(&a);
        globfree(&gl);
    }
    sweep_refused(in, false);
    rescue(in, !in->first_scan_done, looks);
    in->first_scan_done = true;
    in->need_scan = false;
}

/* A queued path, with room for it. A regular file whose name was no link
 * when it was queued, not open under another name, is opened as that
 * file without looking at the name again (an lstat per file at 10,000
 * files: issue 19): the guard opens it with no link followed and checks
 * the descriptor is the file noted; anything else at the name now is
 * looked at by the scan this asks for. Other paths are looked at as a
 * scan would. */
static void open_waiting(file_input *in, waiting_path *w)
{
    if (!w->plain || sl_file_find_by_id(in, w->dev, w->ino)) {
        look_at(in, w->path, false);
        return;
    }
    struct stat noted;
    memset(&noted, 0, sizeof noted);
    noted.st_dev = (dev_t)w->dev;
    noted.st_ino = (ino_t)w->ino;
    noted.st_mode = S_IFREG;
    open_file(in, w->path, &noted, &noted, false, false, true);
}

/* Opens queued paths while there is room (or an idle file to close for
 * it). While none can be opened, the run loop looks again after
 * wait_backoff_ms, doubling up to 32 ms: acknowledgements do not wake it. */
void sl_file_open_waiting(file_input *in)
{
    bool opened = false;
    /* Events that came since the files were read mark them dirty now, so
     * that a file closed for room without an fstat (sl_file_known_at_eof)
     * had no write, deletion or rename reported before this point: the
     * window is this round of opens, as it was the fstat's. */
    if (in->open_count >= in->max_open_files) sl_file_take_events(in);
    while (in->wait_head && !atomic_load(in->ctx->stop)) {
        if (in->open_count >= in->max_open_files && !close_one_idle(in)) break;
        waiting_path *w = pop_waiting(in);
        open_waiting(in, w);
        free(w);
        opened = true;
    }
    in->events_fresh = false;
    int64_t cap = in->poll_ms < 32 ? in->poll_ms : 32;
    if (opened || in->wait_backoff_ms < 1)
        in->wait_backoff_ms = 1;
    else if (in->wait_backoff_ms < cap)
        in->wait_backoff_ms = in->wait_backoff_ms * 2 < cap ? in->wait_backoff_ms * 2 : cap;
}

static bool matches_globs(const file_input *in, const char *path)
{
    for (size_t g = 0; g < in->nglobs; g++)
        if (fnmatch(in->globs[g], path, FNM_PATHNAME) == 0) return !excluded(in, path);
    return false;
}

void sl_file_on_watch_event(void *arg, const char *path, int event)
{
    file_input *in = arg;
    if (event == SL_WATCH_OVERFLOW) {
        in->need_scan = true;
        for (tracked *t = in->files; t; t = t->next) t->dirty = true;
        return;
    }
    tracked *t = find_by_path(in, path);
    if (t) {
        t->dirty = true;
        if (event != SL_WATCH_MODIFIED) in->need_scan = true;
        return;
    }
    if (!matches_globs(in, path)) return;
    if (event == SL_WATCH_MODIFIED) {
        /* A file closed while idle got data: reopen just that one. */
        look_at(in, path, false);
        return;
    }
    in->need_scan = true;
}

/* Closes files that are gone, fully read and fully acknowledged, and
 * reports how much unread data deleted files still hold. */
void sl_file_reap(file_input *in)
{
    int64_t held = 0;
    for (tracked *t = in->files, *next; t; t = next) {
        next = t->next;
        if (!t->gone) continue;
        struct stat st;
        if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size > t->read_off) {
            held += st.st_size - (off_t)t->read_off;
            t->dirty = true;
            continue;
        }
        if (!is_idle(t)) continue;
        sl_metric_inc(in->m_rotations);
        char q[2100];
        sl_log(SL_LOG_INFO, "file_released", "input=%s path=%s offset=%llu", in->ctx->name,
               sl_file_qpath(q, sizeof q, t->path), (unsigned long long)t->read_off);
        unlink_tracked(in, t);
        sl_file_close(in, t, NULL);
    }
    sl_metric_set(in->m_deleted_bytes, held);
}

/* The discoverer's scan: new files opened (up to max_open_files, the rest
 * remembered), rotated ones looked for; nothing closed or renamed. */
void sl_file_discover(file_input *in)
{
    in->discovering = true;
    uint64_t looks = in->ckpt_looks;
    for (size_t g = 0; g < in->nglobs; g++) {
        glob_t gl;
        if (glob(in->globs[g], GLOB_NOSORT, NULL, &gl) != 0) continue;
        for (size_t i = 0; i < gl.gl_pathc; i++) look_at(in, gl.gl_pathv[i], false);
        globfree(&gl);
    }
    rescue(in, false, looks);
    in->discovering = false;
}

void sl_file_discovery_free(file_input *in)
{
    sweep_refused(in, true);
    for (waiting_path *w; (w = pop_waiting(in));) free(w);
}
