/* Opening the journal for the journald input (see journald_internal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "collector/journald_internal.h"
#include "core/fsutil.h"

static int add_matches(jd_input *in, sd_journal *j)
{
    int r = 0;
    bool group = false;
    /* Groups are ANDed; within a group, sd-journal ORs values of the same
     * field and ANDs different fields. */
    for (size_t i = 0; i < in->nunits && r >= 0; i++) r = sd_journal_add_match(j, in->units[i], 0);
    group = in->nunits > 0;
    if (in->nmatches && group && r >= 0) r = sd_journal_add_conjunction(j);
    for (size_t i = 0; i < in->nmatches && r >= 0; i++)
        r = sd_journal_add_match(j, in->matches[i], 0);
    group = group || in->nmatches > 0;
    if (in->priority < 7) {
        if (group && r >= 0) r = sd_journal_add_conjunction(j);
        for (int p = 0; p <= in->priority && r >= 0; p++) {
            char m[] = "PRIORITY=0";
            m[9] = (char)('0' + p);
            r = sd_journal_add_match(j, m, 0);
        }
    }
    return r;
}

/* Positions the journal just after cursor (the entry read or acknowledged
 * last). When that entry is gone the journal is left on the oldest entry
 * after it, to be read first, and the loss is counted. */
static void seek_after(jd_input *in, const char *cursor, uint64_t rt_usec)
{
    sd_journal *j = in->j;
    in->pending = false;
    if (cursor && sd_journal_seek_cursor(j, cursor) >= 0) {
        int r = sd_journal_next(j);
        if (r > 0 && sd_journal_test_cursor(j, cursor) > 0) return; /* on it: next() moves on */
        sl_metric_inc(in->m_lost);
        if (r > 0) {
            uint64_t t = 0;
            sd_journal_get_realtime_usec(j, &t);
            in->pending = true;
            /* The gap, when the entry resumed at has the cursor's seqnum
             * id: the entries numbered between them (an upper bound: some
             * may not have matched the filters). */
            char *now = NULL;
            uint64_t was = 0, is = 0;
            char gap[24] = "unknown";
            if (sd_journal_get_cursor(j, &now) >= 0 && strncmp(now, cursor, 35) == 0 &&
                sl_jd_cursor_seqnum(cursor, &was) && sl_jd_cursor_seqnum(now, &is) && is > was)
                snprintf(gap, sizeof gap, "%llu", (unsigned long long)(is - was - 1));
            free(now);
            sl_log(SL_LOG_WARN, "journal_cursor_lost",
                   "input=%s cursor=%s resumed_at_usec=%llu reason=entry_gone skipped_at_most=%s",
                   in->ctx->name, cursor, (unsigned long long)t, gap);
        } else {
            /* Nothing after it yet; the seek position stays, so entries
             * that arrive later are read. */
            sl_log(SL_LOG_WARN, "journal_cursor_lost",
                   "input=%s cursor=%s reason=entry_gone waiting=new_entries", in->ctx->name,
                   cursor);
        }
        return;
    }
    if (cursor || rt_usec) {
        /* The cursor itself is unusable; its time still tells where to go. */
        sl_metric_inc(in->m_lost);
        sl_log(SL_LOG_WARN, "journal_cursor_lost", "input=%s reason=bad_cursor resume_usec=%llu",
               in->ctx->name, (unsigned long long)rt_usec);
        if (rt_usec)
            sd_journal_seek_realtime_usec(j, rt_usec);
        else
            sd_journal_seek_head(j);
        return;
    }
    if (in->start_at == START_BEGINNING || in->ckpt_damaged) {
        sd_journal_seek_head(j);
        in->ckpt_damaged = false;
        return;
    }
    sd_journal_seek_tail(j);
    if (sd_journal_previous(j) > 0) {
        /* Remember where "end" was, so a crash before the first
         * acknowledgement does not skip what was written meanwhile. */
        char *c = NULL;
        uint64_t t = 0;
        sd_journal_get_realtime_usec(j, &t);
        if (sd_journal_get_cursor(j, &c) >= 0) {
            sl_jd_set_acked(in, c, t);
            sl_jd_save_checkpoint(in);
            free(in->read_cursor);
            in->read_cursor = strdup(c);
            in->read_rt_usec = t;
        }
    }
}

int sl_jd_open_journal(jd_input *in, const char *cursor, uint64_t rt_usec, bool defer_watch)
{
    sd_journal *j = NULL;
    struct stat dst;
    if (in->directory && stat(in->directory, &dst) == 0) {
        in->dir_dev = dst.st_dev;
        in->dir_ino = dst.st_ino;
        in->dir_known = true;
        in->dir_missing = false;
    }
    in->reopen_wanted = false;
    int r = in->directory ? sd_journal_open_directory(&j, in->directory, 0)
                          : sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0) return r;
    /* Large enough that a MESSAGE of max_message_bytes comes whole, and one
     * byte more tells that it was longer. */
    uint64_t maxv =
        in->max_message_bytes > in->max_field_bytes ? in->max_message_bytes : in->max_field_bytes;
    r = sd_journal_set_data_threshold(j, (size_t)maxv + MAX_FIELD_NAME + 2);
    if (r >= 0) r = add_matches(in, j);
    if (r < 0) {
        sd_journal_close(j);
        return r;
    }
    /* The inotify watches are made here, so files created from now on are
     * seen. Without them, new files are found by reopening. Deferred, they
     * are made before the next wait; sd-journal then scans the folder again
     * for files created meanwhile. */
    in->watch_deferred = defer_watch;
    if (!defer_watch) in->have_fd = sd_journal_get_fd(j) >= 0;
    in->j = j;
    seek_after(in, cursor, rt_usec);
    return 0;
}

/* ---- a journal file truncated under its mappings ---- */

/* Process-wide because signals are: the count of SIGBUS faults the handler
 * turned into zero pages (the one piece of global state of the input). */
static atomic_uint_fast64_t sigbus_faults;
static size_t sigbus_page;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static struct sigaction sigbus_prev;

/* libsystemd reads journal files through mmap; a page past the end of a
 * file truncated since it was mapped raises SIGBUS (BUS_ADRERR), which
 * kills the process. systemd's own tools map an anonymous page there
 * (src/basic/sigbus.c, not exported by libsystemd); so does this. The
 * reader then finds zeros, which it takes for a bad object. Any other
 * SIGBUS goes to the handler there was before (by default the process
 * ends): the handler steps aside and the faulting access runs again. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_code == BUS_ADRERR && si->si_addr && sigbus_page) {
        void *page = (void *)((uintptr_t)si->si_addr & ~(uintptr_t)(sigbus_page - 1));
        if (mmap(page, sigbus_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                 -1, 0) != MAP_FAILED) {
            atomic_fetch_add(&sigbus_faults, 1);
            return;
        }
    }
    /* Not ours: the handler found at install time (default: the process
     * ends) takes the fault when the access runs again, or a signal sent
     * by a process (kill -BUS) at once. */
    sigaction(sig, &sigbus_prev, NULL);
    if (si->si_code <= 0) raise(sig);
}

static void sigbus_install_once(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    sigbus_page = pg > 0 ? (size_t)pg : 4096;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &sigbus_prev);
}

void sl_jd_sigbus_install(void)
{
    pthread_once(&sigbus_once, sigbus_install_once);
}

uint64_t sl_jd_sigbus_count(void)
{
    return atomic_load(&sigbus_faults);
}

/* ---- directory mode: files sd-journal skips or reads only in part ---- */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int sl_jd_parse_header(const void *buf, size_t n, jd_file_header *h, sl_err *err)
{
    const unsigned char *p = buf;
    memset(h, 0, sizeof *h);
    if (n < JD_HEADER_MIN || memcmp(p, "LPKSHHRH", 8) != 0)
        return sl_errf(err, SL_ECORRUPT, "not a journal file header");
    uint64_t header_size = le64(p + 88);
    if (header_size < JD_HEADER_MIN || header_size > n)
        return sl_errf(err, SL_ECORRUPT, "journal header size %llu",
                       (unsigned long long)header_size);
    h->state = p[16];
    memcpy(h->seqnum_id, p + 72, sizeof h->seqnum_id);
    h->head_rt_usec = le64(p + 184);
    h->tail_rt_usec = le64(p + 192);
    h->n_entries = le64(p + 152);
    h->tail_seqnum = le64(p + 160);
    h->head_seqnum = le64(p + 168);
    if (h->state > JD_STATE_ARCHIVED || (h->n_entries && h->head_seqnum > h->tail_seqnum))
        return sl_errf(err, SL_ECORRUPT, "journal header state %u, seqnums %llu..%llu",
                       (unsigned)h->state, (unsigned long long)h->head_seqnum,
                       (unsigned long long)h->tail_seqnum);
    return SL_OK;
}

bool sl_jd_cursor_seqnum(const char *c, uint64_t *seqnum)
{
    for (const char *p = c; p && *p; p = strchr(p, ';')) {
        if (*p == ';') p++;
        if (p[0] == 'i' && p[1] == '=') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + 2, &end, 16);
            if (end == p + 2 || errno || (*end && *end != ';')) return false;
            *seqnum = v;
            return true;
        }
    }
    return false;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* The seqnum of the entry t stands on after seek+step; 0 when none. */
static uint64_t readable_seqnum(sd_journal *t, bool tail)
{
    int r = tail ? sd_journal_seek_tail(t) : sd_journal_seek_head(t);
    if (r >= 0) r = tail ? sd_journal_previous(t) : sd_journal_next(t);
    char *c = NULL;
    uint64_t seq = 0;
    if (r > 0 && sd_journal_get_cursor(t, &c) >= 0 && !sl_jd_cursor_seqnum(c, &seq)) seq = 0;
    free(c);
    return seq;
}

/* The header of a regular file of the folder named like a journal file. */
static bool read_header(int dfd, const char *name, jd_file_header *h)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return false;
    unsigned char buf[512];
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    close(fd);
    sl_err err;
    return got > 0 && sl_jd_parse_header(buf, (size_t)got, h, &err) == SL_OK;
}

/* A file no writer adds to any more (offline, archived, or a `.journal~`
 * set aside after a crash) whose entry arrays libsystemd cannot walk from
 * end to end: a zero-filled or cut tail, a damaged entry array. sd-journal
 * reads what it can of it and says nothing; this says it, once a file. */
static void check_damage(jd_input *in, sd_journal *t, const jd_file_header *hp, const char *name,
                         const char *path)
{
    jd_file_header h = *hp;
    if (!h.n_entries || (h.state == JD_STATE_ONLINE && !has_suffix(name, ".journal~"))) return;
    uint64_t head = readable_seqnum(t, false), tail = readable_seqnum(t, true);
    if (head && tail && head <= h.head_seqnum && tail >= h.tail_seqnum) return;
    /* Entries before the first readable one and after the last: a lower
     * bound, as a damaged array also hides entries in between. */
    uint64_t at_least = h.n_entries;
    if (head && tail && tail >= head)
        at_least = (head - h.head_seqnum) + (h.tail_seqnum > tail ? h.tail_seqnum - tail : 0);
    else if (head || tail)
        at_least = h.n_entries - 1;
    sl_metric_inc(in->m_damaged);
    sl_log(SL_LOG_WARN, "journal_file_damaged",
           "input=%s path=%s entries=%llu seqnums=%llu..%llu readable_head=%llu "
           "readable_tail=%llu unreadable_at_least=%llu",
           in->ctx->name, path, (unsigned long long)h.n_entries, (unsigned long long)h.head_seqnum,
           (unsigned long long)h.tail_seqnum, (unsigned long long)head, (unsigned long long)tail,
           (unsigned long long)at_least);
}

static seen_file *find_seen(jd_input *in, dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < in->nseen; i++)
        if (in->seen[i].dev == dev && in->seen[i].ino == ino) return &in->seen[i];
    return NULL;
}

static seen_file *remember(jd_input *in, dev_t dev, ino_t ino, const char *name)
{
    if (in->nseen == in->seen_cap) {
        if (in->seen_cap == SEEN_MAX) return NULL;
        size_t cap = in->seen_cap ? in->seen_cap * 2 : 64;
        if (cap > SEEN_MAX) cap = SEEN_MAX;
        seen_file *s = realloc(in->seen, cap * sizeof *s);
        if (!s) return NULL;
        in->seen = s;
        in->seen_cap = cap;
    }
    seen_file *s = &in->seen[in->nseen++];
    *s = (seen_file){.dev = dev, .ino = ino, .present = true, .name = strdup(name)};
    return s;
}

void sl_jd_forget_files(jd_input *in)
{
    for (size_t i = 0; i < in->nseen; i++) free(in->seen[i].name);
    in->nseen = 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The seqnum id (s=, 32 hex digits) of a cursor. */
static bool cursor_seqnum_id(const char *c, uint8_t id[16])
{
    if (strncmp(c, "s=", 2) != 0) return false;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(c[2 + 2 * i]), lo = hi < 0 ? -1 : hexval(c[3 + 2 * i]);
        if (hi < 0 || lo < 0) return false;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return c[34] == ';';
}

/* A file gone from the folder (vacuumed, moved away) before the input read
 * it to its end: sd-journal drops it when it hears of it and goes on with
 * the other files, saying nothing; the entries past the input's position
 * are a gap. Said and counted here, with an upper bound of the entries:
 * exact for the file the input was reading (same seqnum id), the whole
 * file when it lies after the input's position in time. */
static void note_removed(jd_input *in, const seen_file *sf)
{
    const jd_file_header *h = &sf->h;
    if (!sf->have_header || !h->n_entries) return;
    char *cur = NULL;
    if (!in->j || sd_journal_get_cursor(in->j, &cur) < 0) cur = NULL;
    const char *c = cur ? cur : in->read_cursor;
    uint64_t seq = 0, rt = 0;
    uint8_t id[16];
    bool same = c && cursor_seqnum_id(c, id) && memcmp(id, h->seqnum_id, 16) == 0 &&
                sl_jd_cursor_seqnum(c, &seq);
    if (c && !same) {
        const char *t = strstr(c, ";t=");
        rt = t ? strtoull(t + 3, NULL, 16) : 0;
    }
    uint64_t unread = 0;
    if (!c)
        unread = h->n_entries; /* nothing read yet */
    else if (same)
        unread = h->tail_seqnum > seq
                     ? h->tail_seqnum - (seq >= h->head_seqnum ? seq : h->head_seqnum - 1)
                     : 0;
    else if (h->head_rt_usec > rt)
        unread = h->n_entries;
    else if (h->tail_rt_usec > rt)
        unread = h->n_entries; /* partly read, by time: at most all of it */
    free(cur);
    if (!unread) return;
    sl_metric_inc(in->m_removed_unread);
    sl_log(SL_LOG_WARN, "journal_file_removed_unread",
           "input=%s directory=%s file=%s entries=%llu unread_at_most=%llu", in->ctx->name,
           in->directory, sf->name ? sf->name : "", (unsigned long long)h->n_entries,
           (unsigned long long)unread);
}

static const char *type_name(mode_t m)
{
    return S_ISDIR(m)    ? "directory"
           : S_ISFIFO(m) ? "fifo"
           : S_ISSOCK(m) ? "socket"
           : S_ISCHR(m)  ? "char_device"
           : S_ISBLK(m)  ? "block_device"
           : S_ISLNK(m)  ? "dangling_symlink"
                         : "other";
}

/* Something named like a journal file that sd-journal will not read as one
 * (a FIFO, a socket, a folder, a dangling link), or a symlink to a file,
 * which it follows: said once. */
static void note_odd_entry(jd_input *in, const char *path, const struct stat *st, bool link)
{
    sl_metric_inc(in->m_errors);
    if (link)
        sl_log(SL_LOG_WARN, "journal_file_symlink", "input=%s path=%s read=followed_by_libsystemd",
               in->ctx->name, path);
    else
        sl_log(SL_LOG_WARN, "journal_file_not_regular", "input=%s path=%s type=%s read=skipped",
               in->ctx->name, path, type_name(st->st_mode));
}

/* sd-journal quietly ignores journal files it cannot open (and does not
 * report them as a change), and reads quietly what it can of a damaged one;
 * look at new files of the folder once each, so both are counted and
 * logged. Files gone from the folder are forgotten. */
void sl_jd_scan_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    if (stat(in->directory, &dst) == 0) in->dir_mtime = dst.st_mtim;
    DIR *d = opendir(in->directory);
    if (!d) return;
    in->rescan_at_ns = 0;
    for (size_t i = 0; i < in->nseen; i++) in->seen[i].present = false;
    size_t nfiles = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_suffix(de->d_name, ".journal") && !has_suffix(de->d_name, ".journal~")) continue;
        struct stat lst, st;
        if (fstatat(dirfd(d), de->d_name, &lst, AT_SYMLINK_NOFOLLOW) != 0) continue;
        bool link = S_ISLNK(lst.st_mode);
        if (link && fstatat(dirfd(d), de->d_name, &st, 0) != 0) st = lst; /* dangling */
        if (!link) st = lst;
        if (S_ISREG(st.st_mode)) nfiles++;
        seen_file *known = find_seen(in, lst.st_dev, lst.st_ino);
        if (known) {
            known->present = true;
            if (known->have_header && known->h.state == JD_STATE_ONLINE)
                known->have_header = read_header(dirfd(d), de->d_name, &known->h);
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", in->directory, de->d_name);
        if (!S_ISREG(st.st_mode) || link)
            note_odd_entry(in, path, &st, link && S_ISREG(st.st_mode));
        jd_file_header h;
        bool have_header = S_ISREG(st.st_mode) && read_header(dirfd(d), de->d_name, &h);
        if (S_ISREG(st.st_mode)) {
            const char *paths[] = {path, NULL};
            sd_journal *t = NULL;
            int r = sd_journal_open_files(&t, paths, 0);
            if (r < 0 && time(NULL) - st.st_mtime < 2) {
                /* Possibly still being created by its writer: look again soon. */
                if (t) sd_journal_close(t);
                in->rescan_at_ns = sl_monotonic_ns() + 1000000000LL;
                continue;
            }
            if (r < 0) {
                sl_metric_inc(in->m_errors);
                sl_log(SL_LOG_WARN, "journal_file_unreadable", "input=%s path=%s error=\"%s\"",
                       in->ctx->name, path, strerror(-r));
            } else if (t && have_header) {
                check_damage(in, t, &h, de->d_name, path);
            }
            if (t) sd_journal_close(t);
        }
        seen_file *sf = remember(in, lst.st_dev, lst.st_ino, de->d_name);
        if (sf) {
            sf->have_header = have_header;
            if (have_header) sf->h = h;
        } else if (!in->seen_full_logged) {
            in->seen_full_logged = true;
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "journal_files_unchecked",
                   "input=%s directory=%s limit=%d checked=first_files", in->ctx->name,
                   in->directory, SEEN_MAX);
        }
    }
    closedir(d);
    if (nfiles > JOURNAL_FILES_MAX && !in->files_max_logged) {
        /* sd-journal opens no more than this many files and skips the rest
         * without a word. */
        in->files_max_logged = true;
        sl_metric_inc(in->m_errors);
        sl_log(SL_LOG_ERROR, "journal_too_many_files",
               "input=%s directory=%s files=%zu libsystemd_reads_at_most=%d", in->ctx->name,
               in->directory, nfiles, JOURNAL_FILES_MAX);
    }
    size_t k = 0;
    for (size_t i = 0; i < in->nseen; i++) {
        if (in->seen[i].present) {
            in->seen[k++] = in->seen[i];
            continue;
        }
        note_removed(in, &in->seen[i]);
        free(in->seen[i].name);
    }
    in->nseen = k;
}

/* Scans when the folder changed (a stat per turn) or a retry is due. A
 * folder path that now names another folder (replaced, or a symlink
 * pointed elsewhere) has the journal reopened there, as a restart would;
 * one that names nothing is said once, and the journal open keeps being
 * read. */
void sl_jd_check_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    if (stat(in->directory, &dst) != 0) {
        if (!in->dir_missing) {
            in->dir_missing = true;
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "journal_directory_missing", "input=%s directory=%s error=\"%s\"",
                   in->ctx->name, in->directory, strerror(errno));
        }
        return;
    }
    if (in->dir_known && (dst.st_dev != in->dir_dev || dst.st_ino != in->dir_ino)) {
        if (!in->reopen_wanted) {
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "journal_directory_replaced", "input=%s directory=%s action=reopen",
                   in->ctx->name, in->directory);
        }
        in->reopen_wanted = true;
        return;
    }
    if (in->dir_missing) {
        in->dir_missing = false;
        sl_log(SL_LOG_INFO, "journal_directory_back", "input=%s directory=%s", in->ctx->name,
               in->directory);
    }
    bool changed =
        dst.st_mtim.tv_sec != in->dir_mtime.tv_sec || dst.st_mtim.tv_nsec != in->dir_mtime.tv_nsec;
    if (changed || (in->rescan_at_ns && sl_monotonic_ns() >= in->rescan_at_ns))
        sl_jd_scan_directory(in);
}
