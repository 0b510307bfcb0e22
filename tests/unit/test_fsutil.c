/* Output paths root writes in folders others can write (decision 0065):
 * sl_open_append_checked refuses a planted link, FIFO, hard link and
 * another user's file at the name, a folder on the way another user owns
 * or can write, and a link on the way another user owns; it follows the
 * agent's own links and relative paths. sl_keep_aside keeps the last few
 * damaged state files instead of the newest only. */
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

#include "core/fsutil.h"
#include "tests/helpers.h"

static int open_out(const char *path, sl_err *err)
{
    int fd = -1;
    int rc = sl_open_append_checked(path, &fd, err);
    if (rc == SL_OK) {
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return rc;
}

static void assert_refused(const char *path, const char *why)
{
    sl_err err = {0};
    assert_int_not_equal(open_out(path, &err), SL_OK);
    if (!strstr(err.msg, why)) fail_msg("%s: wanted \"%s\" in \"%s\"", path, why, err.msg);
}

static void test_name_planted(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("fsutil");
    char *pub = sl_t_path(dir, "pub");
    assert_int_equal(mkdir(pub, 0755), 0);
    char *secret = sl_t_path(dir, "secret");
    sl_t_write_file(secret, "SECRET\n", 7);
    char *out = sl_t_path(pub, "out.log");

    /* A link at the name: refused, its target untouched. */
    assert_int_equal(symlink(secret, out), 0);
    assert_refused(out, "symbolic link");
    size_t n = 0;
    char *s = sl_t_read_file(secret, &n);
    assert_int_equal(n, 7);
    free(s);
    unlink(out);

    /* A FIFO others can write, or another user made: refused before it is
     * opened (whoever holds it can block the writer). */
    assert_int_equal(mkfifo(out, 0600), 0);
    assert_int_equal(chmod(out, 0622), 0);
    assert_refused(out, "FIFO another user made or can write");
    if (geteuid() == 0) {
        assert_int_equal(chmod(out, 0600), 0);
        assert_int_equal(chown(out, 65534, 65534), 0);
        assert_refused(out, "FIFO another user made or can write");
    }
    unlink(out);
    /* The owner's own pipe (to another program) is taken. */
    assert_int_equal(mkfifo(out, 0600), 0);
    {
        sl_err err = {0};
        assert_int_equal(open_out(out, &err), SL_OK);
    }
    unlink(out);

    /* A second name of another file. */
    assert_int_equal(link(secret, out), 0);
    assert_refused(out, "hard links");
    unlink(out);

    /* A folder. */
    assert_int_equal(mkdir(out, 0700), 0);
    assert_refused(out, "folder");
    rmdir(out);

    /* Nothing there: created 0640, appended. */
    sl_err err = {0};
    assert_int_equal(open_out(out, &err), SL_OK);
    struct stat sb;
    assert_int_equal(lstat(out, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* ... and opened again. */
    assert_int_equal(open_out(out, &err), SL_OK);

    if (geteuid() == 0) {
        /* Another user's file at the name (put in a sticky /tmp before the
         * agent started): root would append what it reads to it. */
        assert_int_equal(chown(out, 65534, 65534), 0);
        assert_refused(out, "owned by another user");
        assert_int_equal(chown(out, 0, 0), 0);
        assert_int_equal(open_out(out, &err), SL_OK);
    }
    /* A character device root made is the operator's choice. */
    assert_int_equal(open_out("/dev/full", &err), SL_OK);
    sl_t_rmtree(dir);
    free(dir), free(pub), free(secret), free(out);
}

static void test_folders_on_the_way(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("fsutil");
    char *pub = sl_t_path(dir, "pub");
    char *sub = sl_t_path(pub, "sub");
    char *target = sl_t_path(dir, "target");
    assert_int_equal(mkdir(pub, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mkdir(target, 0755), 0);
    char *out = sl_t_path(sub, "out.log");
    sl_err err = {0};

    /* A folder on the way others can write (not sticky): refused. */
    assert_int_equal(chmod(pub, 0777), 0);
    assert_refused(out, "writable by group or others");
    assert_int_equal(chmod(pub, 0775), 0);
    assert_refused(out, "writable by group or others");
    /* Sticky: others cannot replace what is there. */
    assert_int_equal(chmod(pub, 01777), 0);
    assert_int_equal(open_out(out, &err), SL_OK);
    assert_int_equal(chmod(pub, 0755), 0);
    unlink(out);

    /* The agent's own link on the way is followed, relative or absolute,
     * and the folder it leads to is checked like any other. */
    rmdir(sub);
    assert_int_equal(symlink("../target", sub), 0);
    assert_int_equal(open_out(out, &err), SL_OK);
    char *in_target = sl_t_path(target, "out.log");
    struct stat sb;
    assert_int_equal(lstat(in_target, &sb), 0);
    assert_int_equal(chmod(target, 0777), 0);
    assert_refused(out, "writable by group or others");
    assert_int_equal(chmod(target, 0755), 0);
    unlink(sub);
    assert_int_equal(symlink(target, sub), 0);
    assert_int_equal(open_out(out, &err), SL_OK);

    if (geteuid() == 0) {
        /* Another user's link on the way (made in a sticky folder): not
         * followed, as the kernel's protected_symlinks would not. */
        assert_int_equal(lchown(sub, 65534, 65534), 0);
        assert_refused(out, "link owned by another user");
        unlink(sub);
        /* Another user's folder on the way. */
        assert_int_equal(mkdir(sub, 0755), 0);
        assert_int_equal(chown(sub, 65534, 65534), 0);
        assert_refused(out, "owned by another user");
        rmdir(sub);
    }

    /* Relative to the working folder, `.` and `..` walked through. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(pub), 0);
    assert_int_equal(open_out("../target/./rel.log", &err), SL_OK);
    assert_int_equal(chdir(cwd), 0);
    char *rel = sl_t_path(target, "rel.log");
    assert_int_equal(lstat(rel, &sb), 0);

    /* A missing folder and a name that is no file. */
    char *missing = sl_t_path(dir, "nope/out.log");
    assert_int_equal(open_out(missing, &err), SL_ENOENT);
    assert_refused("/", "does not name a file");
    sl_t_rmtree(dir);
    free(dir), free(pub), free(sub), free(target), free(out), free(in_target), free(rel);
    free(missing);
}

static int count_aside(const char *path, char *first_bytes, size_t cap)
{
    int n = 0;
    char p[4200];
    for (int i = 0; i < 16; i++) {
        if (i == 0)
            snprintf(p, sizeof p, "%s.damaged", path);
        else
            snprintf(p, sizeof p, "%s.damaged.%d", path, i);
        struct stat sb;
        if (lstat(p, &sb) != 0) continue;
        n++;
        if (i == 0 && first_bytes) {
            size_t len = 0;
            char *s = sl_t_read_file(p, &len);
            snprintf(first_bytes, cap, "%.*s", (int)len, s ? s : "");
            free(s);
        }
    }
    return n;
}

static void test_keep_aside(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("fsutil");
    char *ck = sl_t_path(dir, "in.json");
    sl_err err = {0};
    int discarded = -1;
    /* Nothing to move. */
    assert_int_equal(sl_keep_aside(ck, 4, &discarded, &err), SL_ENOENT);
    char newest[64];
    int total_discarded = 0;
    for (int i = 1; i <= 6; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "damage %d", i);
        sl_t_write_file(ck, text, (size_t)n);
        assert_int_equal(sl_keep_aside(ck, 4, &discarded, &err), SL_OK);
        total_discarded += discarded;
        struct stat sb;
        assert_int_not_equal(lstat(ck, &sb), 0);
        /* The newest at .damaged, at most 4 kept, the older ones not lost
         * until the bound. */
        assert_int_equal(count_aside(ck, newest, sizeof newest), i < 4 ? i : 4);
        assert_string_equal(newest, text);
        assert_int_equal(discarded, i > 4 ? 1 : 0);
    }
    assert_int_equal(total_discarded, 2);
    /* The oldest kept is damage 3. */
    char p[4200];
    snprintf(p, sizeof p, "%s.damaged.3", ck);
    size_t n = 0;
    char *s = sl_t_read_file(p, &n);
    assert_non_null(s);
    assert_memory_equal(s, "damage 3", 8);
    free(s);
    /* A link is moved as a link, never followed. */
    char *secret = sl_t_path(dir, "secret");
    sl_t_write_file(secret, "S", 1);
    assert_int_equal(symlink(secret, ck), 0);
    assert_int_equal(sl_keep_aside(ck, 4, &discarded, &err), SL_OK);
    snprintf(p, sizeof p, "%s.damaged", ck);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(lstat(secret, &sb), 0);
    sl_t_rmtree(dir);
    free(dir), free(ck), free(secret);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_planted),
        cmocka_unit_test(test_folders_on_the_way),
        cmocka_unit_test(test_keep_aside),
    };
    return sl_t_run_group("fsutil", tests, sizeof tests / sizeof tests[0]);
}
