#include "collector/file_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Not every libc's linux/magic.h has them all. */
#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC 0x74726163
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef EFIVARFS_MAGIC
#define EFIVARFS_MAGIC 0xde5e81e4
#endif
#ifndef FUSE_CTL_SUPER_MAGIC
#define FUSE_CTL_SUPER_MAGIC 0x65735543
#endif
#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif

/* Where container runtimes keep the files /var/log/containers links to:
 * kubelet's per-pod folders and dockerd's json-file logs. */
static const char *const container_roots[] = {"/var/log/pods", "/var/lib/docker/containers"};

const char *sl_file_refusal_name(int refused)
{
    switch (refused) {
    case SL_REFUSED_SYMLINK_OUTSIDE:
        return "symlink_outside";
    case SL_REFUSED_SYMLINK:
        return "symlink";
    case SL_REFUSED_NOT_REGULAR:
        return "not_regular";
    case SL_REFUSED_PSEUDO_FS:
        return "pseudo_fs";
    default:
        return "none";
    }
}

/* True when the file system of fd (whose fstat is st) holds kernel state,
 * not logs. */
static bool on_pseudo_fs(int fd, const struct stat *st)
{
    /* A file system on a block device (a device number with a major) is
     * not one of them: every file system without a device, all of those
     * below among them, gets an anonymous number (major 0). Only those are
     * asked (a system call per file on ext4 or xfs less: issue 19). */
    if (major(st->st_dev) != 0) return false;
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0) return false;
    /* Kernel state presented as files: sizes are 0 or lies, reads have
     * effects or never end. devtmpfs reports itself as tmpfs, whose
     * regular files are real (and /dev's device nodes are not regular). */
    static const unsigned long pseudo[] = {
        PROC_SUPER_MAGIC,    SYSFS_MAGIC,        DEBUGFS_MAGIC,       TRACEFS_MAGIC,
        SECURITYFS_MAGIC,    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, BPF_FS_MAGIC,
        PSTOREFS_MAGIC,      EFIVARFS_MAGIC,     CONFIGFS_MAGIC,      SELINUX_MAGIC,
        SMACK_MAGIC,         NSFS_MAGIC,         BINFMTFS_MAGIC,      DEVPTS_SUPER_MAGIC,
        ANON_INODE_FS_MAGIC, SOCKFS_MAGIC,       PIPEFS_MAGIC,        FUSE_CTL_SUPER_MAGIC,
    };
    for (size_t i = 0; i < sizeof pseudo / sizeof *pseudo; i++)
        if ((unsigned long)sf.f_type == pseudo[i]) return true;
    return false;
}

static int add_root(sl_file_guard *g, const char *dir, sl_err *err)
{
    if (g->nroots == SL_GUARD_MAX_ROOTS)
        return sl_errf(err, SL_EINVAL, "more than %d folders for follow_symlinks",
                       SL_GUARD_MAX_ROOTS);
    for (size_t i = 0; i < g->nroots; i++)
        if (strcmp(g->roots[i], dir) == 0) return SL_OK;
    char *copy = strdup(dir);
    if (!copy) return sl_errf(err, SL_ENOMEM, "out of memory");
    g->roots[g->nroots++] = copy;
    return SL_OK;
}

/* The folder a glob names: its components up to the first with a
 * wildcard (a glob of files in /var/log/app gives /var/log/app; one whose
 * second folder is a wildcard gives /var/log), made absolute. */
static int glob_root(const char *glob, char *out, size_t cap)
{
    char buf[4096];
    size_t n = 0;
    if (glob[0] != '/') {
        if (!getcwd(buf, sizeof buf - 1)) return SL_EIO;
        n = strlen(buf);
        buf[n++] = '/';
    }
    if (n + strlen(glob) >= sizeof buf) return SL_EINVAL;
    strcpy(buf + n, glob);
    char *wild = strpbrk(buf, "*?[");
    char *cut = wild ? wild : buf + strlen(buf);
    while (cut > buf && *cut != '/') cut--; /* back to the folder it is in */
    if (cut == buf)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(cut - buf), buf);
    return SL_OK;
}

int sl_file_guard_init(sl_file_guard *g, int follow, const char *const *globs, size_t nglobs,
                       const char *const *extra, size_t nextra, sl_err *err)
{
    memset(g, 0, sizeof *g);
    g->follow = follow;
    int rc = SL_OK;
    bool containers = false;
    for (size_t i = 0; i < nglobs && rc == SL_OK; i++) {
        char root[4096];
        if (glob_root(globs[i], root, sizeof root) != SL_OK) continue;
        rc = add_root(g, root, err);
        /* /var/log/containers/x.log -> /var/log/pods/... (-> dockerd's file). */
        containers |=
            strncmp(root, "/var/log/containers", 19) == 0 && (root[19] == '\0' || root[19] == '/');
    }
    for (size_t i = 0; containers && rc == SL_OK && i < 2; i++)
        rc = add_root(g, container_roots[i], err);
    for (size_t i = 0; i < nextra && rc == SL_OK; i++) {
        /* A folder is given: all of it (as the folder of a glob in it). */
        char inside[4096], root[4096];
        if (snprintf(inside, sizeof inside, "%s/*", extra[i]) >= (int)sizeof inside ||
            glob_root(inside, root, sizeof root) != SL_OK)
            continue;
        size_t len = strlen(root);
        while (len > 1 && root[len - 1] == '/') root[--len] = '\0';
        rc = add_root(g, root, err);
    }
    if (rc != SL_OK) sl_file_guard_free(g);
    return rc;
}

void sl_file_guard_forget_dirs(sl_file_guard *g)
{
    for (size_t i = 0; i < g->ndirs; i++) {
        close(g->dirs[i].fd);
        free(g->dirs[i].path);
    }
    g->ndirs = 0;
}

void sl_file_guard_free(sl_file_guard *g)
{
    sl_file_guard_forget_dirs(g);
    for (size_t i = 0; i < g->nroots; i++) free(g->roots[i]);
    g->nroots = 0;
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* True when real (a path without links) lies in an allowed folder, taken
 * as written or resolved (/var/log may itself be a link). */
static bool inside_roots(const sl_file_guard *g, const char *real)
{
    for (size_t i = 0; i < g->nroots; i++) {
        if (under(real, g->roots[i])) return true;
        char rr[PATH_MAX];
        if (realpath(g->roots[i], rr) && under(real, rr)) return true;
    }
    return false;
}

/* Where the descriptor's file is, every link resolved, as the kernel
 * knows it: one readlink of /proc/self/fd/N where realpath() reads each
 * component of the path (five system calls a file: issue 19). False
 * without /proc; the caller then resolves the path. */
static bool fd_path(int fd, char real[PATH_MAX])
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, PATH_MAX - 1);
    if (n <= 0 || real[0] != '/') return false;
    real[n] = '\0';
    return true;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* True when path is absolute, has no empty, "." or ".." component, and
 * lies in an allowed folder as written: opened without following a link
 * (openat2 RESOLVE_NO_SYMLINKS), it is where it says it is. */
static bool plain_inside(const sl_file_guard *g, const char *path)
{
    if (path[0] != '/') return false;
    for (const char *c = path; c; c = strchr(c + 1, '/')) {
        const char *n = c + 1;
        if (*n == '/' || (n[0] == '.' && (n[1] == '/' || n[1] == '\0')) ||
            (n[0] == '.' && n[1] == '.' && (n[2] == '/' || n[2] == '\0')))
            return false;
    }
    for (size_t i = 0; i < g->nroots; i++)
        if (under(path, g->roots[i])) return true;
    return false;
}

/* Opens path (relative to dir) resolving no link at all, in any
 * component, atomically (Linux 5.6); with a folder descriptor, never
 * above it either. -1 when it could not: a link on the way (ELOOP), no
 * openat2 (ENOSYS, or EPERM under a seccomp filter), or an error the
 * ordinary open then reports. */
static int open_no_links(int dir, const char *path, int flags)
{
#ifdef SYS_openat2
    struct open_how how = {.flags = (uint64_t)flags,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                                      (dir == AT_FDCWD ? 0 : RESOLVE_BENEATH)};
    int f = (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
    if (f < 0 && errno == EPERM && (flags & O_NOATIME)) {
        how.flags &= ~(uint64_t)O_NOATIME;
        f = (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
    }
    return f;
#else
    (void)dir, (void)path, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* The folder path[0, len) held open, opened now (no link followed on the
 * way, as the file's own open would) when it is not yet; NULL when it
 * cannot be (or SL_GUARD_MAX_DIRS are held): the file is then opened by
 * its whole path. */
static const sl_guard_dir *held_dir(sl_file_guard *g, const char *path, size_t len)
{
    for (size_t i = g->ndirs; i-- > 0;)
        if (g->dirs[i].len == len && memcmp(g->dirs[i].path, path, len) == 0) return &g->dirs[i];
    if (g->ndirs == SL_GUARD_MAX_DIRS || len == 0) return NULL;
    char *copy = strndup(path, len);
    if (!copy) return NULL;
    int fd = open_no_links(AT_FDCWD, copy, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        free(copy);
        return NULL;
    }
    g->dirs[g->ndirs] = (sl_guard_dir){copy, len, fd};
    return &g->dirs[g->ndirs++];
}

/* A plain path (plain_inside) opened by its name in its folder held open,
 * no link followed: the folder's path is walked once per scan, not once
 * per file (the walk was the larger part of each open at 10,000 files:
 * issue 19). The folder held was reached by its path, plain, at the first
 * open in it since the scan; if it was renamed or replaced since, the name
 * opens in the folder as it now is, wherever that is, and what that gives
 * is kept only when it is the very file found (dev, ino) at the path by
 * the caller: a file that was at this path in an allowed folder. That
 * is what the open by path promises too (a hard link to a file outside
 * in the folder is read either way). Anything else, the open by path
 * decides: -1 here. */
static int open_in_held_dir(sl_file_guard *g, const char *path, int flags, const struct stat *found,
                            struct stat *st)
{
    const char *slash = strrchr(path, '/');
    const sl_guard_dir *d = held_dir(g, path, (size_t)(slash - path));
    if (!d) return -1;
    int f = open_no_links(d->fd, slash + 1, flags);
    if (f < 0) return -1;
    if (fstat(f, st) == 0 && S_ISREG(st->st_mode) && same_file(found, st)) return f;
    close(f);
    return -1;
}

/* The checks on the descriptor; no_links: it was opened by open_no_links
 * at a path plain_inside accepted, so where it is was settled by the open
 * itself: the readlink of /proc/self/fd/N and the stat of what it names
 * (two system calls of about 9 per file: issue 19) would only say so
 * again. */
static int check_fd(const sl_file_guard *g, const char *path, int fd, const struct stat *found,
                    struct stat *st, int *refused, bool no_links)
{
    *refused = SL_REFUSED_NONE;
    if (fstat(fd, st) != 0) return SL_EIO;
    if (!S_ISREG(st->st_mode)) {
        *refused = SL_REFUSED_NOT_REGULAR;
        return SL_EINVAL;
    }
    if (on_pseudo_fs(fd, st)) {
        *refused = SL_REFUSED_PSEUDO_FS;
        return SL_EINVAL;
    }
    /* The name was swapped between discovery and open. */
    if (found && !same_file(found, st)) return SL_EAGAIN;
    if (g->follow == SL_FOLLOW_ALWAYS || no_links) return SL_OK;
    /* Where the path leads now, every link resolved; it must still be the
     * file we hold, or it moved under us. */
    char real[PATH_MAX];
    struct stat rst;
    if (!fd_path(fd, real) && !realpath(path, real)) return SL_EAGAIN;
    if (stat(real, &rst) != 0 || !same_file(&rst, st)) return SL_EAGAIN;
    if (!inside_roots(g, real)) {
        *refused = SL_REFUSED_SYMLINK_OUTSIDE;
        return SL_EINVAL;
    }
    return SL_OK;
}

int sl_file_guard_check_fd(const sl_file_guard *g, const char *path, int fd,
                           const struct stat *found, struct stat *st, int *refused)
{
    return check_fd(g, path, fd, found, st, refused, false);
}

/* The opened fd handed out when check_fd passes, else closed with the
 * check's errno kept for the caller. */
static int keep_if_checked(const sl_file_guard *g, const char *path, int f,
                           const struct stat *found, struct stat *st, int *refused, bool no_links,
                           int *fd)
{
    int rc = check_fd(g, path, f, found, st, refused, no_links);
    if (rc != SL_OK) {
        int e = errno;
        close(f);
        errno = e;
        return rc;
    }
    *fd = f;
    return SL_OK;
}

int sl_file_guard_open(sl_file_guard *g, const char *path, const struct stat *found,
                       const struct stat *name, int *fd, struct stat *st, int *refused)
{
    *refused = SL_REFUSED_NONE;
    *fd = -1;
    /* O_NOATIME: reading a log is no access its owner needs recorded, and
     * with relatime the first read after each write would dirty the inode
     * (an ext4 journal update per file read at 10,000 files: issue 19).
     * Allowed to the file's owner and to root (CAP_FOWNER); anyone else
     * opens without it. */
    int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOATIME;
    /* A name that was no link when discovered, under an allowed folder as
     * written: opened without following any link, which settles where the
     * file is in the open itself. A link met on the way (the folder of
     * the glob is one, or the name became one) or no openat2: the checks
     * below, as for any other name. found was taken just before by the
     * caller; a device is refused before it is opened. */
    if (found && name && !S_ISLNK(name->st_mode) && S_ISREG(found->st_mode) &&
        g->follow != SL_FOLLOW_ALWAYS && plain_inside(g, path)) {
        int f = open_in_held_dir(g, path, flags, found, st);
        if (f >= 0) {
            /* Regular and the file found: the checks left are the file
             * system's (check_fd's order: it is regular, then not on a
             * pseudo file system, then the file found). */
            if (on_pseudo_fs(f, st)) {
                close(f);
                *refused = SL_REFUSED_PSEUDO_FS;
                return SL_EINVAL;
            }
            *fd = f;
            return SL_OK;
        }
        f = open_no_links(AT_FDCWD, path, flags);
        if (f >= 0) return keep_if_checked(g, path, f, found, st, refused, true, fd);
    }
    struct stat pre;
    if (g->follow == SL_FOLLOW_NEVER) {
        if (lstat(path, &pre) != 0) return SL_EIO;
        if (S_ISLNK(pre.st_mode)) {
            *refused = SL_REFUSED_SYMLINK;
            return SL_EINVAL;
        }
    }
    /* A device is refused before it is opened: opening some has effects
     * (a watchdog starts, a tape rewinds). The descriptor is checked again
     * below, which closes the window between the two. found was taken just
     * before by the caller: not taken again (a system call per file at
     * 10,000 files: issue 19). */
    if (found)
        pre = *found;
    else if (stat(path, &pre) != 0)
        return SL_EIO;
    if (!S_ISREG(pre.st_mode)) {
        *refused = SL_REFUSED_NOT_REGULAR;
        return SL_EINVAL;
    }
    if (g->follow == SL_FOLLOW_NEVER) flags |= O_NOFOLLOW;
    int f = open(path, flags);
    if (f < 0 && errno == EPERM) f = open(path, flags & ~O_NOATIME);
    if (f < 0) {
        if (errno == ELOOP && g->follow == SL_FOLLOW_NEVER) {
            *refused = SL_REFUSED_SYMLINK;
            return SL_EINVAL;
        }
        return SL_EIO;
    }
    return keep_if_checked(g, path, f, found ? found : &pre, st, refused, false, fd);
}
