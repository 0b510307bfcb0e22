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

#include "collector/checkpoint.h"
#include "tests/helpers.h"

static sl_ckpt_entry entry(uint64_t ino, uint64_t off)
{
    sl_ckpt_entry e = {0};
    snprintf(e.path, sizeof e.path, "/var/log/f%llu.log", (unsigned long long)ino);
    e.dev = 2049;
    e.ino = ino;
    e.fp_len = 1024;
    e.fp = 0xdeadbeefcafef00dULL ^ ino;
    e.offset = off;
    e.seen = 1700000000;
    return e;
}

static void test_roundtrip_and_prev_generation(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("ckpt");
    char *path = sl_t_path(dir, "in.json");
    sl_ckpt c = {0};
    sl_ckpt_entry e1 = entry(11, 100), e2 = entry(12, 200);
    sl_ckpt_put(&c, &e1);
    sl_ckpt_put(&c, &e2);
    assert_int_equal(sl_ckpt_save(path, &c, NULL), 0);
    e1.offset = 150;
    sl_ckpt_put(&c, &e1); /* replaces by dev+ino */
    assert_int_equal(c.n, 2);
    assert_int_equal(sl_ckpt_save(path, &c, NULL), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    sl_ckpt_free(&c);

    sl_ckpt r = {0};
    int fell = -1;
    assert_int_equal(sl_ckpt_load(path, &r, &fell, NULL), 0);
    assert_int_equal(fell, 0);
    assert_int_equal(r.n, 2);
    sl_ckpt_entry *f = sl_ckpt_find(&r, 2049, 11);
    assert_non_null(f);
    assert_int_equal(f->offset, 150);
    assert_int_equal(f->fp, e1.fp);
    sl_ckpt_free(&r);

    /* Garbage over the current generation: the previous one is used. */
    const char *damage[] = {"\0\0\0\0garbage",
                            "{\"version\":1,\"files\":[{\"path\":", "{\"version\":9,\"files\":[]}"};
    size_t lens[] = {11, 30, 25};
    for (int i = 0; i < 3; i++) {
        char *prev = sl_t_path(dir, "in.json.prev");
        char *saved = sl_t_read_file(prev, NULL);
        sl_t_write_file(path, damage[i], lens[i]);
        sl_ckpt p = {0};
        assert_int_equal(sl_ckpt_load(path, &p, &fell, NULL), 0);
        assert_int_equal(fell, 1);
        f = sl_ckpt_find(&p, 2049, 11);
        assert_non_null(f);
        assert_int_equal(f->offset, 100); /* the generation before */
        sl_ckpt_free(&p);
        free(saved);
        free(prev);
    }
    /* Both generations damaged: an error, never a crash. */
    char *prev = sl_t_path(dir, "in.json.prev");
    sl_t_write_file(prev, "xx", 2);
    sl_ckpt p = {0};
    sl_err err;
    assert_int_not_equal(sl_ckpt_load(path, &p, &fell, &err), 0);
    assert_int_equal(p.n, 0);
    free(prev);
    free(path);
    sl_t_rmtree(dir);
    free(dir);
}

/* Sizes are kept (files with unread bytes are looked for after a
 * restart); checkpoints written before sizes existed load with size 0. A
 * checkpoint that is a link is not followed. */
static void test_sizes_and_links(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("ckpt_size");
    char *path = sl_t_path(dir, "in.json");
    sl_ckpt c = {0};
    sl_ckpt_entry e = entry(21, 300);
    e.size = 5000;
    sl_ckpt_put(&c, &e);
    assert_int_equal(sl_ckpt_save(path, &c, NULL), 0);
    sl_ckpt_free(&c);
    int fell;
    assert_int_equal(sl_ckpt_load(path, &c, &fell, NULL), 0);
    assert_int_equal(sl_ckpt_find(&c, 2049, 21)->size, 5000);
    sl_ckpt_free(&c);
    static const char old[] = "{\"version\":1,\"files\":[{\"path\":\"/a\",\"dev\":1,\"ino\":2,"
                              "\"fp_len\":4,\"fp\":\"00000000000000ff\",\"offset\":7,\"seen\":9}]}";
    sl_t_write_file(path, old, sizeof old - 1);
    assert_int_equal(sl_ckpt_load(path, &c, &fell, NULL), 0);
    assert_int_equal(sl_ckpt_find(&c, 1, 2)->size, 0);
    assert_int_equal(sl_ckpt_find(&c, 1, 2)->offset, 7);
    sl_ckpt_free(&c);
    /* A link planted as the checkpoint (and its previous generation). */
    char *target = sl_t_path(dir, "elsewhere.json"), *prev = sl_t_path(dir, "in.json.prev");
    sl_t_write_file(target, old, sizeof old - 1);
    unlink(path);
    unlink(prev);
    assert_int_equal(symlink(target, path), 0);
    sl_err err;
    assert_int_not_equal(sl_ckpt_load(path, &c, &fell, &err), 0);
    assert_int_equal(c.n, 0);
    /* Saving replaces the link, never writes through it. */
    sl_ckpt_put(&c, &e);
    assert_int_equal(sl_ckpt_save(path, &c, NULL), 0);
    sl_ckpt_free(&c);
    size_t n;
    char *kept = sl_t_read_file(target, &n);
    assert_int_equal(n, sizeof old - 1);
    assert_memory_equal(kept, old, n);
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    /* A link planted as the temporary file is not written through. */
    char *tmp = sl_t_path(dir, "in.json.tmp"), *victim = sl_t_path(dir, "victim");
    sl_t_write_file(victim, "keep", 4);
    assert_int_equal(symlink(victim, tmp), 0);
    sl_ckpt_put(&c, &e);
    assert_int_equal(sl_ckpt_save(path, &c, NULL), 0);
    sl_ckpt_free(&c);
    char *v = sl_t_read_file(victim, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(v, "keep", 4);
    free(v), free(kept), free(tmp), free(victim), free(target), free(prev), free(path);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_missing_is_empty(void **st)
{
    (void)st;
    sl_ckpt c = {0};
    int fell;
    assert_int_equal(sl_ckpt_load("/nonexistent/dir/x.json", &c, &fell, NULL), 0);
    assert_int_equal(c.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_prev_generation),
        cmocka_unit_test(test_missing_is_empty),
        cmocka_unit_test(test_sizes_and_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
