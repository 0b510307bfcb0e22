/* data_dir checks in process: the lock (a second open on the same folder
 * is refused naming this PID, and free again once closed), the modes and
 * owners refused, links inside refused. */
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

#include "core/datadir.h"
#include "tests/helpers.h"

static void test_lock(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("datadir");
    char *data = sl_t_path(dir, "data");
    sl_datadir *a = NULL, *b = NULL;
    sl_err err;
    assert_int_equal(sl_datadir_open(data, &a, &err), SL_OK);
    struct stat sb;
    assert_int_equal(stat(data, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    char *ck = sl_t_path(data, "checkpoints");
    assert_int_equal(stat(ck, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sl_datadir_open(data, &b, &err), SL_EAGAIN);
    assert_null(b);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld,", (long)getpid());
    assert_non_null(strstr(err.msg, want));
    sl_datadir_close(a);
    assert_int_equal(sl_datadir_open(data, &b, &err), SL_OK);
    sl_datadir_close(b);
    sl_datadir_close(NULL);
    sl_t_rmtree(dir);
    free(dir), free(data), free(ck);
}

static void test_refusals(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("datadir");
    char *data = sl_t_path(dir, "data");
    assert_int_equal(mkdir(data, 0700), 0);
    sl_datadir *d = NULL;
    sl_err err;
    assert_int_equal(chmod(data, 0777), 0);
    assert_int_equal(sl_datadir_open(data, &d, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "chmod 700"));
    assert_int_equal(chmod(data, 0720), 0);
    assert_int_equal(sl_datadir_open(data, &d, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "its group"));
    assert_int_equal(chmod(data, 0700), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(data, 65534, 65534), 0);
        assert_int_equal(sl_datadir_open(data, &d, &err), SL_EINVAL);
        assert_non_null(strstr(err.msg, "owned by uid 65534"));
        assert_int_equal(chown(data, 0, 0), 0);
    }
    /* A group-writable folder inside is refused like data_dir itself. */
    char *spool = sl_t_path(data, "spool"), *sink = sl_t_path(spool, "loki");
    assert_int_equal(mkdir(spool, 0700), 0);
    assert_int_equal(mkdir(sink, 0700), 0);
    assert_int_equal(chmod(sink, 0770), 0);
    assert_int_equal(sl_datadir_open(data, &d, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "spool/loki"));
    assert_int_equal(rmdir(sink), 0);
    /* A planted lock link is not followed. */
    char *lock = sl_t_path(data, "lock"), *victim = sl_t_path(dir, "victim");
    sl_t_write_file(victim, "keep", 4);
    assert_int_equal(unlink(lock), 0); /* left by the tries above */
    assert_int_equal(symlink(victim, lock), 0);
    assert_int_not_equal(sl_datadir_open(data, &d, &err), SL_OK);
    size_t n;
    char *v = sl_t_read_file(victim, &n);
    assert_int_equal(n, 4);
    free(v);
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(sl_datadir_open(data, &d, &err), SL_OK);
    sl_datadir_close(d);
    sl_t_rmtree(dir);
    free(dir), free(data), free(spool), free(sink), free(lock), free(victim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
