/* Opening the journal for the journald input (see journald_internal.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
            sl_log(SL_LOG_WARN, "journal_cursor_lost",
                   "input=%s cursor=%s resumed_at_usec=%llu reason=entry_gone", in->ctx->name,
                   cursor, (unsigned long long)t);
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

/* ---- directory mode: files sd-journal skips ---- */

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* sd-journal quietly ignores journal files it cannot open (and does not
 * report them as a change); look at new files of the folder once each, so a
 * corrupt one is counted and logged. */
void sl_jd_scan_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    if (stat(in->directory, &dst) == 0) in->dir_mtime = dst.st_mtim;
    DIR *d = opendir(in->directory);
    if (!d) return;
    in->rescan_at_ns = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_suffix(de->d_name, ".journal") && !has_suffix(de->d_name, ".journal~")) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
        bool known = false;
        for (size_t i = 0; i < in->nseen && !known; i++)
            known = in->seen[i].dev == st.st_dev && in->seen[i].ino == st.st_ino;
        if (known) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", in->directory, de->d_name);
        const char *paths[] = {path, NULL};
        sd_journal *t = NULL;
        int r = sd_journal_open_files(&t, paths, 0);
        if (t) sd_journal_close(t);
        if (r < 0 && time(NULL) - st.st_mtime < 2) {
            /* Possibly still being created by its writer: look again soon. */
            in->rescan_at_ns = sl_monotonic_ns() + 1000000000LL;
            continue;
        }
        if (r < 0) {
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "journal_file_unreadable", "input=%s path=%s error=\"%s\"",
                   in->ctx->name, path, strerror(-r));
        }
        in->seen[in->seen_next] = (seen_file){st.st_dev, st.st_ino};
        in->seen_next = (in->seen_next + 1) % SEEN_CAP;
        if (in->nseen < SEEN_CAP) in->nseen++;
    }
    closedir(d);
}

/* Scans when the folder changed (a stat per turn) or a retry is due. */
void sl_jd_check_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    bool changed = stat(in->directory, &dst) == 0 && (dst.st_mtim.tv_sec != in->dir_mtime.tv_sec ||
                                                      dst.st_mtim.tv_nsec != in->dir_mtime.tv_nsec);
    if (changed || (in->rescan_at_ns && sl_monotonic_ns() >= in->rescan_at_ns))
        sl_jd_scan_directory(in);
}
