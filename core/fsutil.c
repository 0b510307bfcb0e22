#include "core/fsutil.h"

#include "core/log.h"
#include "core/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_mkdirs(const char *path, mode_t mode, sl_err *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return sl_errf(err, SL_EINVAL, "bad directory path");
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return sl_errf(err, errno == ENOSPC ? SL_ENOSPC : SL_EIO, "mkdir %s: %s", buf,
                               strerror(errno));
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return SL_OK;
}

static int fsync_dir_of(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return SL_EIO;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int sl_write_atomic(const char *path, const void *data, size_t n, int keep_prev, sl_err *err)
{
    char tmp[4096], prev[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sl_errf(err, SL_EINVAL, "path too long");
    /* A fresh file, never one a link leads to (O_EXCL does not follow): a
     * leftover path.tmp is removed first. */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return sl_errf(err, SL_EIO, "unlink %s: %s", tmp, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_errf(err, errno == ENOSPC ? SL_ENOSPC : SL_EIO, "open %s: %s", tmp,
                       strerror(errno));
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return sl_errf(err, e == ENOSPC ? SL_ENOSPC : SL_EIO, "write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return sl_errf(err, e == ENOSPC ? SL_ENOSPC : SL_EIO, "fsync %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (keep_prev) {
        snprintf(prev, sizeof prev, "%s.prev", path);
        /* A crash between these steps leaves path.prev and path.tmp; the
         * reader falls back to .prev, so the worst case is one generation. */
        unlink(prev);
        if (link(path, prev) != 0 && errno != ENOENT) {
            /* Not fatal: we only lose the spare generation. */
        }
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sl_errf(err, SL_EIO, "rename %s: %s", tmp, strerror(e));
    }
    fsync_dir_of(path);
    return SL_OK;
}

static int read_file(const char *path, int flags, size_t max, char **out, size_t *n, sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return sl_errf(err, errno == ENOENT ? SL_ENOENT : SL_EIO, "open %s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        return sl_errf(err, SL_EINVAL, "%s: not a regular file of at most %zu bytes", path, max);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return sl_errf(err, SL_ENOMEM, "out of memory");
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *n = got;
    return SL_OK;
}

int sl_read_file(const char *path, size_t max, char **out, size_t *n, sl_err *err)
{
    return read_file(path, 0, max, out, n, err);
}

int sl_read_state_file(const char *path, size_t max, char **out, size_t *n, sl_err *err)
{
    return read_file(path, O_NOFOLLOW | O_NONBLOCK, max, out, n, err);
}

/* May whoever owns st, and whoever could write into it, decide where root
 * goes next? Root and the agent's own user only; a group- or
 * world-writable folder only when sticky (others cannot rename or replace
 * what they do not own there). */
static const char *untrusted_why(const struct stat *st)
{
    if (st->st_uid != 0 && st->st_uid != geteuid()) return "owned by another user";
    if (S_ISDIR(st->st_mode) && (st->st_mode & 022) && !(st->st_mode & S_ISVTX))
        return "writable by group or others";
    return NULL;
}

enum { MAX_LINKS = 40, PATH_CAP = 4096 };

/* Walks `path` (absolute) to its last folder, holding a checked folder
 * descriptor at each step, and leaves that descriptor in *dirfd and the
 * last component in base. */
static int open_checked_parent(const char *path, int *dirfd, char *base, size_t base_cap,
                               sl_err *err)
{
    char rest[2 * PATH_CAP];
    size_t n = strlen(path), o = 0;
    if (n == 0 || n >= PATH_CAP)
        return sl_errf(err, SL_EINVAL, "%s: not a path under %d bytes", path, PATH_CAP);
    if (path[0] != '/') {
        /* Relative to the working folder, whose own folders are checked. */
        if (!getcwd(rest, PATH_CAP))
            return sl_errf(err, SL_EIO, "%s: getcwd: %s", path, strerror(errno));
        o = strlen(rest);
        rest[o++] = '/';
    }
    memcpy(rest + o, path, n + 1);
    int cur = -1, links = 0;
    char *p = rest;
    for (;;) {
        if (*p == '/') {
            if (cur >= 0) close(cur);
            cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (cur < 0) return sl_errf(err, SL_EIO, "open /: %s", strerror(errno));
            while (*p == '/') p++;
        }
        struct stat st;
        if (fstat(cur, &st) != 0) {
            int e = errno;
            close(cur);
            return sl_errf(err, SL_EIO, "%s: fstat: %s", path, strerror(e));
        }
        const char *why = untrusted_why(&st);
        if (why) {
            close(cur);
            return sl_errf(err, SL_EINVAL,
                           "%s: a folder on the way is %s (uid %u, mode %03o): another user "
                           "could choose where root writes; chown root or chmod go-w it, or "
                           "choose a folder of the agent's own",
                           path, why, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        }
        char *end = strchr(p, '/');
        size_t cn = end ? (size_t)(end - p) : strlen(p);
        const char *after = end ? end : p + cn;
        while (*after == '/') after++;
        if (*after == '\0') {
            /* p is the last component: the file's name. */
            if (cn == 0 || cn >= base_cap || (cn == 1 && p[0] == '.') ||
                (cn == 2 && p[0] == '.' && p[1] == '.')) {
                close(cur);
                return sl_errf(err, SL_EINVAL, "%s: does not name a file", path);
            }
            memcpy(base, p, cn);
            base[cn] = '\0';
            *dirfd = cur;
            return SL_OK;
        }
        char comp[256];
        if (cn >= sizeof comp) {
            close(cur);
            return sl_errf(err, SL_EINVAL, "%s: a component is too long", path);
        }
        memcpy(comp, p, cn);
        comp[cn] = '\0';
        p = (char *)after;
        if (strcmp(comp, ".") == 0) continue;
        int next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int e = errno;
            close(cur);
            return sl_errf(err, e == ENOENT ? SL_ENOENT : SL_EIO, "%s: %s: %s", path, comp,
                           strerror(e));
        }
        if (fstat(next, &st) != 0 || (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))) {
            close(next), close(cur);
            return sl_errf(err, SL_EINVAL, "%s: %s is not a folder", path, comp);
        }
        if (S_ISDIR(st.st_mode)) {
            close(cur);
            cur = next;
            continue;
        }
        /* A link: followed only when root or the agent's user made it, as
         * the kernel's protected_symlinks would in a sticky folder. */
        char target[PATH_CAP];
        ssize_t tn = readlinkat(next, "", target, sizeof target);
        bool ours = st.st_uid == 0 || st.st_uid == geteuid();
        close(next);
        if (!ours || tn <= 0 || (size_t)tn >= sizeof target || ++links > MAX_LINKS) {
            close(cur);
            return sl_errf(err, SL_EINVAL, "%s: %s is a link %s", path, comp,
                           !ours ? "owned by another user" : "that cannot be followed");
        }
        size_t rn = strlen(p);
        if ((size_t)tn + 1 + rn >= sizeof rest) {
            close(cur);
            return sl_errf(err, SL_EINVAL, "%s: too long once its links are resolved", path);
        }
        char tail[2 * PATH_CAP];
        memcpy(tail, p, rn + 1);
        memcpy(rest, target, (size_t)tn);
        rest[tn] = '/';
        memcpy(rest + tn + 1, tail, rn + 1);
        p = rest; /* absolute targets restart from /, relative ones from cur */
    }
}

int sl_open_append_checked(const char *path, int *fd, sl_err *err)
{
    int dirfd = -1;
    char base[256];
    int rc = open_checked_parent(path, &dirfd, base, sizeof base, err);
    if (rc != SL_OK) return rc;
    /* Look before opening: opening a device can act on it, a FIFO blocks
     * the writer once full. */
    struct stat st;
    bool exists = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    /* A character device root made there is the operator's (/dev/full in
     * tests); no other user can make one. */
    bool device = exists && S_ISCHR(st.st_mode) && st.st_uid == 0;
    /* So is a FIFO root or the agent's user made that no other user can
     * write (a pipe to another program; tests block a sink with one); one
     * another user made or can write could hold the writer. */
    bool fifo = exists && S_ISFIFO(st.st_mode) && (st.st_uid == 0 || st.st_uid == geteuid()) &&
                !(st.st_mode & 022);
    if (exists && !device && !fifo && !S_ISREG(st.st_mode)) {
        close(dirfd);
        return sl_errf(err, SL_EINVAL, "%s: is %s, not a regular file", path,
                       S_ISLNK(st.st_mode)    ? "a symbolic link"
                       : S_ISFIFO(st.st_mode) ? "a FIFO another user made or can write"
                       : S_ISDIR(st.st_mode)  ? "a folder"
                                              : "a device or socket");
    }
    int f =
        openat(dirfd, base,
               O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0640);
    int e = errno;
    close(dirfd);
    if (f < 0)
        return sl_errf(err, e == ENOSPC ? SL_ENOSPC : SL_EIO, "%s: %s", path,
                       e == ELOOP ? "is a symbolic link" : strerror(e));
    const char *why = NULL;
    if (fstat(f, &st) != 0)
        why = "cannot be checked";
    else if (device ? !S_ISCHR(st.st_mode) || st.st_uid != 0
             : fifo ? !S_ISFIFO(st.st_mode) || (st.st_mode & 022)
                    : !S_ISREG(st.st_mode))
        why = "is not a regular file";
    else if (!device && !fifo && st.st_nlink != 1)
        why = "has other names (hard links)";
    else
        why = untrusted_why(&st);
    if (why) {
        close(f);
        return sl_errf(err, SL_EINVAL, "%s: %s: refused as an output root writes", path, why);
    }
    fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK);
    *fd = f;
    return SL_OK;
}

int sl_keep_aside(const char *path, int keep, int *discarded, sl_err *err)
{
    char from[4200], to[4200];
    if (discarded) *discarded = 0;
    if (keep < 1) keep = 1;
    /* The oldest slot goes, then each moves one up: .damaged.<k-2> to
     * .damaged.<k-1>, ..., .damaged to .damaged.1. */
    snprintf(to, sizeof to, "%s.damaged.%d", path, keep - 1);
    if (keep > 1 && unlink(to) == 0 && discarded) *discarded = 1;
    for (int i = keep - 2; i >= 0; i--) {
        if (i == 0)
            snprintf(from, sizeof from, "%s.damaged", path);
        else
            snprintf(from, sizeof from, "%s.damaged.%d", path, i);
        snprintf(to, sizeof to, "%s.damaged.%d", path, i + 1);
        if (rename(from, to) != 0 && errno != ENOENT)
            return sl_errf(err, SL_EIO, "rename %s: %s", from, strerror(errno));
    }
    snprintf(to, sizeof to, "%s.damaged", path);
    if (keep == 1) {
        struct stat st;
        if (discarded && lstat(to, &st) == 0) *discarded = 1;
    }
    if (rename(path, to) != 0)
        return sl_errf(err, errno == ENOENT ? SL_ENOENT : SL_EIO, "rename %s: %s", path,
                       strerror(errno));
    return SL_OK;
}

void sl_keep_damaged(const char *path, const char *input)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, NULL, NULL);
    sl_metric *m = sl_counter("sluice_checkpoint_damaged_discarded_total",
                              "Damaged checkpoint files removed to keep the newest "
                              "ones aside (decision 0065).",
                              l);
    int discarded = 0;
    sl_err err = {0};
    char q[4300];
    if (sl_keep_aside(path, SL_KEEP_DAMAGED, &discarded, &err) != SL_OK)
        sl_log(SL_LOG_WARN, "checkpoint_keep_aside_failed", "input=%s error=%s", input,
               sl_log_quote(q, sizeof q, err.msg, strlen(err.msg)));
    if (!discarded) return;
    sl_metric_inc(m);
    sl_log(SL_LOG_WARN, "checkpoint_damaged_discarded", "input=%s path=%s kept=%d", input,
           sl_log_quote(q, sizeof q, path, strlen(path)), SL_KEEP_DAMAGED);
}
