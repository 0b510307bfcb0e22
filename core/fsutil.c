#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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
