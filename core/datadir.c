#include "core/datadir.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"

struct sl_datadir {
    int lock_fd;
};

/* Others must not be able to change what the agent keeps here: a planted
 * link in checkpoints/ or a rewritten spool is then theirs to use. */
static int check_owned(const char *what, const struct stat *st, sl_err *err)
{
    if (st->st_uid != geteuid())
        return sl_errf(err, SL_EINVAL,
                       "%s is owned by uid %u, not by the agent's uid %u: give it to the agent "
                       "(chown %u %s) or point data_dir elsewhere",
                       what, (unsigned)st->st_uid, (unsigned)geteuid(), (unsigned)geteuid(), what);
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return sl_errf(err, SL_EINVAL, "%s is writable by %s (mode %03o): chmod 700 %s", what,
                       (st->st_mode & S_IWOTH) ? "everyone" : "its group",
                       (unsigned)(st->st_mode & 07777), what);
    return SL_OK;
}

/* A folder the agent keeps inside data_dir: created when missing, and
 * refused when it is a link or not the agent's own. Returns its fd. */
static int open_subdir(int parent, const char *parent_path, const char *name, bool create, int *out,
                       sl_err *err)
{
    char what[4200];
    snprintf(what, sizeof what, "%s/%s", parent_path, name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
            return sl_errf(err, errno == ENOSPC ? SL_ENOSPC : SL_EIO, "mkdir %s: %s", what,
                           strerror(errno));
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0 && errno == ENOENT) {
        *out = -1;
        return SL_OK;
    }
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
        return sl_errf(err, SL_EINVAL,
                       "%s is a link or not a folder: the agent does not follow links inside "
                       "data_dir; remove it (rm %s) and restart",
                       what, what);
    if (fd < 0) return sl_errf(err, SL_EIO, "open %s: %s", what, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? check_owned(what, &st, err)
                                 : sl_errf(err, SL_EIO, "stat %s: %s", what, strerror(errno));
    if (rc != SL_OK) {
        close(fd);
        return rc;
    }
    *out = fd;
    return SL_OK;
}

/* Every spool/<sink> is checked like the folders above. */
static int check_spools(int spool, const char *spool_path, sl_err *err)
{
    int fd = dup(spool);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return sl_errf(err, SL_EIO, "open %s: %s", spool_path, strerror(errno));
    }
    int rc = SL_OK;
    for (struct dirent *de; rc == SL_OK && (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        int sub = -1;
        rc = open_subdir(spool, spool_path, de->d_name, false, &sub, err);
        if (sub >= 0) close(sub);
    }
    closedir(d);
    return rc;
}

static int take_lock(int dir, const char *path, int *out, sl_err *err)
{
    char what[4200];
    snprintf(what, sizeof what, "%s/lock", path);
    int fd = openat(dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_errf(err, errno == ELOOP ? SL_EINVAL : SL_EIO, "open %s: %s", what,
                       strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            return sl_errf(err, SL_EAGAIN,
                           "data_dir %s is in use by another sluice (pid %s, holding %s): one "
                           "agent per data_dir; stop it or give this one its own data_dir",
                           path, pid[0] ? pid : "unknown", what);
        return sl_errf(err, SL_EIO, "flock %s: %s", what, strerror(e));
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return sl_errf(err, SL_EIO, "write %s: %s", what, strerror(e));
    }
    *out = fd;
    return SL_OK;
}

int sl_datadir_open(const char *path, sl_datadir **out, sl_err *err)
{
    *out = NULL;
    int rc = sl_mkdirs(path, 0700, err);
    if (rc != SL_OK) return rc;
    /* data_dir itself may be a link (/var/lib/sluice -> /data/sluice): the
     * operator chose it. What is inside is the agent's alone. */
    int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return sl_errf(err, SL_EIO, "open data_dir %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(dir, &st) != 0) rc = sl_errf(err, SL_EIO, "stat %s: %s", path, strerror(errno));
    if (rc == SL_OK) rc = check_owned(path, &st, err);
    int lock = -1;
    if (rc == SL_OK) rc = take_lock(dir, path, &lock, err);
    int sub = -1;
    if (rc == SL_OK) rc = open_subdir(dir, path, "checkpoints", true, &sub, err);
    if (sub >= 0) close(sub), sub = -1;
    char spool_path[4200];
    snprintf(spool_path, sizeof spool_path, "%s/spool", path);
    if (rc == SL_OK) rc = open_subdir(dir, path, "spool", false, &sub, err);
    if (rc == SL_OK && sub >= 0) rc = check_spools(sub, spool_path, err);
    if (sub >= 0) close(sub);
    close(dir);
    sl_datadir *d = rc == SL_OK ? calloc(1, sizeof *d) : NULL;
    if (rc == SL_OK && !d) rc = sl_errf(err, SL_ENOMEM, "out of memory");
    if (rc != SL_OK) {
        if (lock >= 0) close(lock);
        return rc;
    }
    d->lock_fd = lock;
    *out = d;
    return SL_OK;
}

void sl_datadir_close(sl_datadir *d)
{
    if (!d) return;
    close(d->lock_fd); /* releases the flock */
    free(d);
}
