/* The file guard: the decision on the descriptor (regular file, not a
 * pseudo file system, the file that was found) and the follow_symlinks
 * policies. The race between discovery and open is made deterministic by
 * handing the check the descriptor open() would have returned after the
 * swap. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector/file_guard.h"
#include "tests/helpers.h"

typedef struct tree {
    char *dir, *logs, *app, *secret, *glob;
} tree;

static int setup(void **st)
{
    tree *t = calloc(1, sizeof *t);
    t->dir = sl_t_tmpdir("guard");
    t->logs = sl_t_path(t->dir, "logs");
    mkdir(t->logs, 0755);
    t->app = sl_t_path(t->logs, "app.log");
    t->secret = sl_t_path(t->dir, "secret");
    t->glob = sl_t_path(t->logs, "*.log");
    sl_t_write_file(t->app, "line\n", 5);
    sl_t_write_file(t->secret, "TOPSECRET\n", 10);
    *st = t;
    return 0;
}

static int teardown(void **st)
{
    tree *t = *st;
    sl_t_rmtree(t->dir);
    free(t->dir), free(t->logs), free(t->app), free(t->secret), free(t->glob), free(t);
    return 0;
}

static void guard_for(sl_file_guard *g, tree *t, int follow)
{
    const char *globs[] = {t->glob};
    assert_int_equal(sl_file_guard_init(g, follow, globs, 1, NULL, 0, NULL), SL_OK);
}

/* name: the lstat of path at discovery (the caller's), or NULL. */
static int try_open_named(sl_file_guard *g, const char *path, const struct stat *found,
                          const struct stat *name, int *why)
{
    int fd = -1;
    struct stat st;
    int rc = sl_file_guard_open(g, path, found, name, &fd, &st, why);
    if (rc == SL_OK) {
        assert_true(fd >= 0);
        assert_true(S_ISREG(st.st_mode));
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return rc;
}

static int try_open(sl_file_guard *g, const char *path, const struct stat *found, int *why)
{
    return try_open_named(g, path, found, NULL, why);
}

/* A name that was no link when discovered is opened with no link followed
 * on the way (decision 0056); whatever changed between discovery and open
 * is still caught, and paths that are not plain go the long way. */
static void test_plain_name_races(void **st)
{
    tree *t = *st;
    int why;
    struct stat found, name;
    char *tmp = sl_t_path(t->logs, "swap.tmp"), *keep = sl_t_path(t->dir, "keep");
    for (int follow = SL_FOLLOW_INSIDE; follow <= SL_FOLLOW_NEVER; follow++) {
        if (follow == SL_FOLLOW_ALWAYS) continue;
        sl_file_guard g;
        guard_for(&g, t, follow);
        sl_t_write_file(t->app, "line\n", 5);
        assert_int_equal(lstat(t->app, &name), 0);
        assert_int_equal(stat(t->app, &found), 0);
        assert_int_equal(try_open_named(&g, t->app, &found, &name, &why), SL_OK);
        /* Kept under another name, so no file below gets its inode. */
        assert_int_equal(link(t->app, keep), 0);
        /* Swapped for a link to the secret after discovery. */
        assert_int_equal(symlink(t->secret, tmp), 0);
        assert_int_equal(rename(tmp, t->app), 0);
        int rc = try_open_named(&g, t->app, &found, &name, &why);
        if (follow == SL_FOLLOW_NEVER) {
            assert_int_equal(rc, SL_EINVAL);
            assert_int_equal(why, SL_REFUSED_SYMLINK);
        } else {
            assert_int_equal(rc, SL_EAGAIN);
        }
        /* Swapped for a FIFO: opened without blocking, refused. */
        assert_int_equal(unlink(t->app), 0);
        assert_int_equal(mkfifo(t->app, 0600), 0);
        assert_int_equal(try_open_named(&g, t->app, &found, &name, &why), SL_EINVAL);
        assert_int_equal(why, SL_REFUSED_NOT_REGULAR);
        /* Swapped for another regular file: not the file found. */
        assert_int_equal(unlink(t->app), 0);
        sl_t_write_file(t->app, "other\n", 6);
        assert_int_equal(try_open_named(&g, t->app, &found, &name, &why), SL_EAGAIN);
        assert_int_equal(unlink(keep), 0);
        sl_file_guard_free(&g);
    }
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_INSIDE);
    /* A folder on the way is a link out: the name itself is no link. */
    char *dirlink = sl_t_path(t->logs, "sub");
    assert_int_equal(symlink(t->dir, dirlink), 0);
    char *through = sl_t_path(dirlink, "secret");
    assert_int_equal(lstat(through, &name), 0);
    assert_int_equal(stat(through, &found), 0);
    assert_int_equal(try_open_named(&g, through, &found, &name, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
    /* ".." out of the folder, no link anywhere: not inside as written. */
    char *up = sl_t_path(t->logs, "../secret");
    assert_int_equal(lstat(up, &name), 0);
    assert_int_equal(try_open_named(&g, up, &name, &name, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
    sl_file_guard_free(&g);
    free(tmp), free(keep), free(dirlink), free(through), free(up);
}

/* Reading through the guard leaves the file's access time alone
 * (O_NOATIME: the owner, or root, may). */
static void test_read_keeps_atime(void **st)
{
    tree *t = *st;
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_INSIDE);
    struct timespec times[2] = {{.tv_sec = 1000000000}, {.tv_nsec = UTIME_OMIT}};
    assert_int_equal(utimensat(AT_FDCWD, t->app, times, 0), 0);
    struct stat name, found, got;
    assert_int_equal(lstat(t->app, &name), 0);
    assert_int_equal(stat(t->app, &found), 0);
    for (int plain = 0; plain < 2; plain++) {
        int fd = -1, why;
        assert_int_equal(
            sl_file_guard_open(&g, t->app, &found, plain ? &name : NULL, &fd, &got, &why), SL_OK);
        char buf[16];
        assert_int_equal(read(fd, buf, sizeof buf), 5);
        close(fd);
        struct stat after;
        assert_int_equal(stat(t->app, &after), 0);
        assert_int_equal(after.st_atim.tv_sec, 1000000000);
    }
    sl_file_guard_free(&g);
}

static void test_regular_file_inside_opens(void **st)
{
    tree *t = *st;
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_INSIDE);
    int why;
    assert_int_equal(try_open(&g, t->app, NULL, &why), SL_OK);
    /* A link to it from inside the tree is fine too. */
    char *link = sl_t_path(t->logs, "link.log");
    assert_int_equal(symlink(t->app, link), 0);
    assert_int_equal(try_open(&g, link, NULL, &why), SL_OK);
    free(link);
    sl_file_guard_free(&g);
}

static void test_links_out_refused(void **st)
{
    tree *t = *st;
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_INSIDE);
    char *shadow = sl_t_path(t->logs, "shadow.log"), *proc = sl_t_path(t->logs, "proc.log"),
         *zero = sl_t_path(t->logs, "zero.log"), *fifo = sl_t_path(t->logs, "fifo.log");
    assert_int_equal(symlink(t->secret, shadow), 0);
    assert_int_equal(symlink("/proc/self/status", proc), 0);
    assert_int_equal(symlink("/dev/zero", zero), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int why;
    assert_int_equal(try_open(&g, shadow, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
    assert_int_equal(try_open(&g, proc, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_PSEUDO_FS);
    assert_int_equal(try_open(&g, zero, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_NOT_REGULAR);
    /* A FIFO nobody writes to: refused at once, never blocking. */
    assert_int_equal(try_open(&g, fifo, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_NOT_REGULAR);
    /* A folder link inside the tree leading out is caught the same way. */
    char *dirlink = sl_t_path(t->logs, "sub");
    assert_int_equal(symlink(t->dir, dirlink), 0);
    char *through = sl_t_path(dirlink, "secret");
    assert_int_equal(try_open(&g, through, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
    assert_string_equal(sl_file_refusal_name(SL_REFUSED_PSEUDO_FS), "pseudo_fs");
    free(shadow), free(proc), free(zero), free(fifo), free(dirlink), free(through);
    sl_file_guard_free(&g);
}

/* The name is swapped between discovery (found) and open. */
static void test_swap_between_discovery_and_open(void **st)
{
    tree *t = *st;
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_INSIDE);
    struct stat found;
    assert_int_equal(stat(t->app, &found), 0);
    int why;
    struct stat got;
    /* open() raced to /dev/zero: the descriptor says what it is. */
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(sl_file_guard_check_fd(&g, t->app, fd, &found, &got, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_NOT_REGULAR);
    close(fd);
    /* open() raced to a regular file elsewhere: not the file found. */
    fd = open(t->secret, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(sl_file_guard_check_fd(&g, t->app, fd, &found, &got, &why), SL_EAGAIN);
    assert_int_equal(why, SL_REFUSED_NONE);
    close(fd);
    /* open() raced to /proc: refused before identity. */
    fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(sl_file_guard_check_fd(&g, t->app, fd, &found, &got, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_PSEUDO_FS);
    close(fd);
    /* The whole open after a real swap of the name to a link to the
     * secret: found says it was another file, so it is looked at again. */
    char *tmp = sl_t_path(t->logs, "swap.tmp");
    assert_int_equal(symlink(t->secret, tmp), 0);
    assert_int_equal(rename(tmp, t->app), 0);
    assert_int_equal(try_open(&g, t->app, &found, &why), SL_EAGAIN);
    /* Looked at again, it is refused for what it is now. */
    assert_int_equal(try_open(&g, t->app, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
    /* And swapped to /dev/zero: refused without being opened. */
    assert_int_equal(symlink("/dev/zero", tmp), 0);
    assert_int_equal(rename(tmp, t->app), 0);
    assert_int_equal(try_open(&g, t->app, &found, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_NOT_REGULAR);
    free(tmp);
    sl_file_guard_free(&g);
}

static void test_policies(void **st)
{
    tree *t = *st;
    char *inner = sl_t_path(t->logs, "inner.log"), *outer = sl_t_path(t->logs, "outer.log");
    assert_int_equal(symlink(t->app, inner), 0);
    assert_int_equal(symlink(t->secret, outer), 0);
    int why;
    sl_file_guard g;
    guard_for(&g, t, SL_FOLLOW_NEVER);
    assert_int_equal(try_open(&g, t->app, NULL, &why), SL_OK);
    assert_int_equal(try_open(&g, inner, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK);
    assert_int_equal(try_open(&g, outer, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_SYMLINK);
    sl_file_guard_free(&g);
    guard_for(&g, t, SL_FOLLOW_ALWAYS);
    assert_int_equal(try_open(&g, inner, NULL, &why), SL_OK);
    assert_int_equal(try_open(&g, outer, NULL, &why), SL_OK);
    /* Still never a device or kernel file. */
    char *zero = sl_t_path(t->logs, "zero.log");
    assert_int_equal(symlink("/proc/self/status", zero), 0);
    assert_int_equal(try_open(&g, zero, NULL, &why), SL_EINVAL);
    assert_int_equal(why, SL_REFUSED_PSEUDO_FS);
    sl_file_guard_free(&g);
    /* follow_symlinks_into adds a folder links may lead to. */
    const char *globs[] = {t->glob};
    const char *into[] = {t->dir};
    assert_int_equal(sl_file_guard_init(&g, SL_FOLLOW_INSIDE, globs, 1, into, 1, NULL), SL_OK);
    assert_int_equal(try_open(&g, outer, NULL, &why), SL_OK);
    sl_file_guard_free(&g);
    free(inner), free(outer), free(zero);
}

/* Container logs: /var/log/containers/x.log links to /var/log/pods/...,
 * which (with dockerd) links on to /var/lib/docker/containers/...: both
 * allowed out of the box for a glob there. */
static void test_container_folders_allowed(void **st)
{
    (void)st;
    sl_file_guard g;
    const char *globs[] = {"/var/log/containers/*.log", "relative/x*/y.log"};
    const char *into[] = {"/data/docker/containers/", "rel"};
    assert_int_equal(sl_file_guard_init(&g, SL_FOLLOW_INSIDE, globs, 2, into, 2, NULL), SL_OK);
    assert_int_equal(g.nroots, 6);
    assert_string_equal(g.roots[0], "/var/log/containers");
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char want[4200];
    snprintf(want, sizeof want, "%s/relative", cwd);
    assert_string_equal(g.roots[1], want);
    assert_string_equal(g.roots[2], "/var/log/pods");
    assert_string_equal(g.roots[3], "/var/lib/docker/containers");
    assert_string_equal(g.roots[4], "/data/docker/containers");
    snprintf(want, sizeof want, "%s/rel", cwd);
    assert_string_equal(g.roots[5], want);
    sl_file_guard_free(&g);
}

/* The file's open, and its descriptor's first bytes, into buf. */
static int open_read(sl_file_guard *g, const char *path, const struct stat *found,
                     const struct stat *name, struct stat *got, char *buf, size_t cap, int *why)
{
    int fd = -1;
    int rc = sl_file_guard_open(g, path, found, name, &fd, got, why);
    memset(buf, 0, cap);
    if (rc == SL_OK) {
        assert_true(read(fd, buf, cap - 1) > 0);
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return rc;
}

/* A plain name is opened in its folder held open since the first open in
 * it after the last scan (issue 19). The folder renamed, swapped for a
 * link out, or replaced meanwhile: only the very file found at the path
 * is read through the folder held; anything else at the path now is
 * decided by the open by path, as before, and the next scan (forget_dirs)
 * holds the folder at the path again. Globs logs/x/a.log: the allowed
 * folder is logs, x is a folder in it anyone could rename. */
static void test_held_folder_moved(void **st)
{
    tree *t = *st;
    int why;
    char buf[32];
    struct stat found, name, got;
    char *sub = sl_t_path(t->logs, "x"), *old = sl_t_path(t->logs, "x.old");
    char *app = sl_t_path(sub, "a.log"), *glob = sl_t_path(t->logs, "*/*.log");
    char *out = sl_t_path(t->dir, "out"), *out_app = sl_t_path(out, "a.log");
    char *tmp = sl_t_path(old, "swap.tmp"), *old_app = sl_t_path(old, "a.log");
    mkdir(out, 0755);
    sl_t_write_file(out_app, "TOPSECRET\n", 10);
    for (int follow = SL_FOLLOW_INSIDE; follow <= SL_FOLLOW_NEVER; follow++) {
        if (follow == SL_FOLLOW_ALWAYS) continue;
        mkdir(sub, 0755);
        sl_t_write_file(app, "line\n", 5);
        sl_file_guard g;
        const char *globs[] = {glob};
        assert_int_equal(sl_file_guard_init(&g, follow, globs, 1, NULL, 0, NULL), SL_OK);
        assert_int_equal(lstat(app, &name), 0);
        assert_int_equal(stat(app, &found), 0);
        assert_int_equal(open_read(&g, app, &found, &name, &got, buf, sizeof buf, &why), SL_OK);
        assert_string_equal(buf, "line\n");
        assert_int_equal(g.ndirs, 1);
        /* The folder renamed and the path swapped for a link out: what the
         * path leads to now is refused, never read. */
        assert_int_equal(rename(sub, old), 0);
        assert_int_equal(symlink(out, sub), 0);
        struct stat found2, name2;
        assert_int_equal(lstat(app, &name2), 0);
        assert_int_equal(stat(app, &found2), 0);
        assert_int_equal(open_read(&g, app, &found2, &name2, &got, buf, sizeof buf, &why),
                         SL_EINVAL);
        assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
        /* The file found before the rename is the one read through the
         * folder held, as an open file renamed away is read to its end. */
        assert_int_equal(open_read(&g, app, &found, &name, &got, buf, sizeof buf, &why), SL_OK);
        assert_string_equal(buf, "line\n");
        assert_true(got.st_ino == found.st_ino);
        /* After a scan the folder is looked for at the path again: a link,
         * not held; the file found before is not what the path leads to. */
        sl_file_guard_forget_dirs(&g);
        assert_int_equal(open_read(&g, app, &found, &name, &got, buf, sizeof buf, &why), SL_EAGAIN);
        assert_int_equal(g.ndirs, 0);
        assert_int_equal(open_read(&g, app, &found2, &name2, &got, buf, sizeof buf, &why),
                         SL_EINVAL);
        assert_int_equal(why, SL_REFUSED_SYMLINK_OUTSIDE);
        /* Back to a real folder, held again; then replaced by another real
         * folder with a new file at the name: that new file is opened. */
        assert_int_equal(unlink(sub), 0);
        assert_int_equal(rename(old, sub), 0);
        assert_int_equal(open_read(&g, app, &found, &name, &got, buf, sizeof buf, &why), SL_OK);
        assert_int_equal(g.ndirs, 1);
        assert_int_equal(rename(sub, old), 0);
        mkdir(sub, 0755);
        sl_t_write_file(app, "new\n", 4);
        assert_int_equal(lstat(app, &name2), 0);
        assert_int_equal(stat(app, &found2), 0);
        assert_int_equal(open_read(&g, app, &found2, &name2, &got, buf, sizeof buf, &why), SL_OK);
        assert_string_equal(buf, "new\n");
        assert_true(got.st_ino == found2.st_ino);
        /* The name in the folder held swapped for a link to the secret: not
         * followed there, even when the caller found the secret itself. */
        assert_int_equal(symlink(t->secret, tmp), 0);
        assert_int_equal(rename(tmp, old_app), 0);
        struct stat secret;
        assert_int_equal(stat(t->secret, &secret), 0);
        assert_int_not_equal(open_read(&g, app, &secret, &name, &got, buf, sizeof buf, &why),
                             SL_OK);
        sl_file_guard_free(&g);
        assert_int_equal(g.ndirs, 0);
        sl_t_rmtree(sub);
        sl_t_rmtree(old);
    }
    free(sub), free(old), free(app), free(glob), free(out), free(out_app), free(tmp), free(old_app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_regular_file_inside_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_out_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_between_discovery_and_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_name_races, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_keeps_atime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_folders_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_folder_moved, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
