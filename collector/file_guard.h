/* Which files the file input may read. A glob in a folder anyone can write
 * to is an invitation: a symlink to /etc/shadow, to /proc/self/status or
 * to /dev/zero, a FIFO. The guard opens first and decides on the
 * descriptor (regular file, not on a pseudo file system, the very file
 * that was found), and allows symlinks by the input's `follow_symlinks`
 * policy. See docs/decisions/0015-hostile-files-and-data-dir.md. */
#ifndef SLUICE_COLLECTOR_FILE_GUARD_H
#define SLUICE_COLLECTOR_FILE_GUARD_H

#include <stddef.h>
#include <sys/stat.h>

#include "core/err.h"

enum sl_follow {
    SL_FOLLOW_INSIDE, /* links whose target stays inside the allowed folders */
    SL_FOLLOW_ALWAYS, /* any link (still regular files on real file systems) */
    SL_FOLLOW_NEVER,  /* no link as the file itself */
};

/* Why a file was refused: the `reason` label of
 * sluice_input_files_refused_total. */
enum sl_refusal {
    SL_REFUSED_NONE,
    SL_REFUSED_SYMLINK_OUTSIDE, /* resolves outside the allowed folders */
    SL_REFUSED_SYMLINK,         /* a link, and follow_symlinks: never */
    SL_REFUSED_NOT_REGULAR,     /* FIFO, device, socket, directory */
    SL_REFUSED_PSEUDO_FS,       /* procfs, sysfs, debugfs, cgroupfs, ... */
    SL_REFUSED_NREASONS,
};

#define SL_GUARD_MAX_ROOTS 64
/* Folders held open (O_PATH) between two scans, so that a file in one is
 * opened by its name alone, not by walking its whole path (issue 19). */
#define SL_GUARD_MAX_DIRS 64

typedef struct sl_guard_dir {
    char *path; /* as written: absolute, plain, inside an allowed folder */
    size_t len;
    int fd; /* opened with no link followed on the way (openat2) */
} sl_guard_dir;

typedef struct sl_file_guard {
    int follow; /* enum sl_follow */
    /* The allowed folders: where each glob's wildcards begin, the
     * container runtimes' folders when a glob is under /var/log/containers,
     * and follow_symlinks_into. Resolved again at each check, so folders
     * created later (or links among them) count. */
    char *roots[SL_GUARD_MAX_ROOTS];
    size_t nroots;
    sl_guard_dir dirs[SL_GUARD_MAX_DIRS];
    size_t ndirs;
} sl_file_guard;

/* globs and extra (follow_symlinks_into) are copied. */
int sl_file_guard_init(sl_file_guard *g, int follow, const char *const *globs, size_t nglobs,
                       const char *const *extra, size_t nextra, sl_err *err);
void sl_file_guard_free(sl_file_guard *g);

/* Opens path read-only (O_NOCTTY|O_NONBLOCK|O_CLOEXEC) and checks the
 * descriptor. found: what the path was when discovered (stat, following
 * links), or NULL; a different file at open time is SL_EAGAIN (look again
 * later). Returns SL_OK with *fd and *st (fstat of *fd); SL_EINVAL with
 * *refused set when the file must not be read; SL_EIO when it cannot be
 * opened (errno kept). Files that are not regular are refused without
 * being opened (opening a device can have effects). */
int sl_file_guard_open(sl_file_guard *g, const char *path, const struct stat *found,
                       const struct stat *name, int *fd, struct stat *st, int *refused);
/* Lets go of the folders held open: each scan starts with none, so a
 * folder is held only from the first open in it until the next scan
 * (renamed, replaced or swapped for a link meanwhile: see
 * sl_file_guard_open). */
void sl_file_guard_forget_dirs(sl_file_guard *g);
/* The decision on a descriptor already open on path (the second half of
 * sl_file_guard_open, apart so the race it closes can be tested: fd is
 * whatever open() returned, found what the path was before). */
int sl_file_guard_check_fd(const sl_file_guard *g, const char *path, int fd,
                           const struct stat *found, struct stat *st, int *refused);
/* The label value of a reason. */
const char *sl_file_refusal_name(int refused);

#endif
