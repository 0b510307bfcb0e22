#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector/checkpoint.h"
#include "core/json_str.h"
#include "collector/journald_internal.h"
#include "core/buf.h"
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

/* An input's name is a file name in data_dir/checkpoints, never a path. */
static void test_input_names_stay_in_the_folder(void **st)
{
    (void)st;
    char out[4096];
    static const char *const bad[] = {"", ".", "..", "../../etc/cron.d/x", "a/b", "/abs"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_err err;
        assert_int_equal(
            sl_ckpt_path("/var/lib/sluice", bad[i], ".json", false, out, sizeof out, &err),
            SL_EINVAL);
    }
    assert_int_equal(
        sl_ckpt_path("/var/lib/sluice", "app..logs.v2", ".json", false, out, sizeof out, NULL),
        SL_OK);
    assert_string_equal(out, "/var/lib/sluice/checkpoints/app..logs.v2.json");
}

static void test_missing_is_empty(void **st)
{
    (void)st;
    sl_ckpt c = {0};
    int fell;
    assert_int_equal(sl_ckpt_load("/nonexistent/dir/x.json", &c, &fell, NULL), 0);
    assert_int_equal(c.n, 0);
}

/* A valid file with one entry, as the writer writes it. */
static char *one_entry_text(size_t *len)
{
    sl_ckpt c = {0};
    sl_ckpt_entry e = entry(7, 70);
    e.size = 700;
    sl_ckpt_put(&c, &e);
    char *text;
    assert_int_equal(sl_ckpt_encode(&c, &text, len, NULL), SL_OK);
    sl_ckpt_free(&c);
    return text;
}

/* Damage to the file as a whole is SL_ECORRUPT and an empty set (the
 * caller falls back, then reads from the start): every cut of a valid
 * file, and the layouts below. */
static void test_damaged_file_is_refused(void **st)
{
    (void)st;
    size_t len;
    char *text = one_entry_text(&len);
    for (size_t cut = 0; cut < len; cut++) {
        sl_ckpt c = {0};
        sl_err err;
        assert_int_equal(sl_ckpt_parse(text, cut, &c, &err), SL_ECORRUPT);
        assert_int_equal(c.n, 0);
    }
    sl_ckpt c = {0};
    assert_int_equal(sl_ckpt_parse(text, len, &c, NULL), SL_OK);
    assert_int_equal(c.n, 1);
    sl_ckpt_free(&c);
    static const char *const damaged[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"version\":1}",
        "{\"files\":[]}",
        "{\"version\":2,\"files\":[]}",
        "{\"version\":\"1\",\"files\":[]}",
        "{\"version\":1.0,\"files\":[]}",
        "{\"version\":1,\"files\":{}}",
        "{\"version\":1,\"files\":[]}x",
        "{\"version\":1,\"files\":[]} {}",
        "{\"version\":1,\"files\":[],}",
        "{\"version\":1,\"files\":[],\"files\":[]}",
        "{\"version\":1,\"version\":1,\"files\":[]}",
        "{\"version\":1,\"files\":[0]}",
        "{\"version\":1,\"files\":[{}0]}",
        "{\"version\":1,\"files\":[{\"path\":\"/a\"},]}",
        "{\"version\":1,\"files\":[{\"path\":\"\xff\"}]}",      /* not UTF-8 */
        "{\"version\":1,\"files\":[{\"path\":\"/a\\ud800\"}]}", /* a lone surrogate */
        "{\"version\":1,\"files\":[{\"path\":\"/a\"]}",
        "{\"version\":1,\"files\":[{\"path\":\"/a}]}",
        "{\"version\":1,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]],"
        "\"files\":[]}",
        "\xef\xbb\xbf{\"version\":1,\"files\":[]}",
    };
    for (size_t i = 0; i < sizeof damaged / sizeof *damaged; i++) {
        sl_ckpt d = {0};
        sl_err err;
        if (sl_ckpt_parse(damaged[i], strlen(damaged[i]), &d, &err) != SL_ECORRUPT)
            fail_msg("accepted: %s", damaged[i]);
        assert_int_equal(d.n, 0);
    }
    /* Members in another order and spacing (earlier writers) still load. */
    static const char spaced[] =
        " { \"other\" : {\"a\":[1,2]} , \"files\" : [ {\"seen\":9,\"offset\":7,\"fp\":"
        "\"00000000000000ff\",\"fp_len\":4,\"ino\":2,\"dev\":1,\"path\":\"/a\"} ] ,\n"
        "\"version\" : 1 }\n";
    assert_int_equal(sl_ckpt_parse(spaced, sizeof spaced - 1, &c, NULL), SL_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(sl_ckpt_find(&c, 1, 2)->offset, 7);
    sl_ckpt_free(&c);
    free(text);
}

/* Entries that break the writer's promises are left out one by one and
 * counted; the others load. A duplicate keeps the lower offset. */
static void test_bad_entries_are_dropped(void **st)
{
    (void)st;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"version\":1,\"files\":[");
#define ENT(path, rest) "{\"path\":\"" path "\",\"dev\":1,\"fp\":\"00000000000000ff\"," rest "},"
    static const char *const bad[] = {
        ENT("/var/log/../../etc/shadow", "\"ino\":100,\"fp_len\":0,\"offset\":0,\"seen\":1"),
        ENT("..", "\"ino\":101,\"fp_len\":0,\"offset\":0,\"seen\":1"),
        ENT("", "\"ino\":102,\"fp_len\":0,\"offset\":0,\"seen\":1"),
        ENT("/a", "\"ino\":103,\"fp_len\":70000,\"offset\":0,\"seen\":1"),
        ENT("/a", "\"ino\":104,\"fp_len\":4294967297,\"offset\":0,\"seen\":1"),
        ENT("/a", "\"ino\":105,\"fp_len\":0,\"offset\":-1,\"seen\":1"),
        ENT("/a", "\"ino\":\"106\",\"fp_len\":0,\"offset\":0,\"seen\":1"),
        ENT("/a", "\"ino\":107,\"fp_len\":0,\"offset\":1.5,\"seen\":1"),
        ENT("/a", "\"ino\":108,\"fp_len\":0,\"seen\":1"),
        ENT("/a", "\"ino\":109,\"fp_len\":0,\"offset\":0,\"seen\":1,\"size\":-5"),
        "{\"path\":\"/a\",\"dev\":1,\"ino\":110,\"fp\":\"xyz\",\"fp_len\":0,\"offset\":0,"
        "\"seen\":1},",
        "{\"path\":\"/a\",\"dev\":1,\"ino\":111,\"fp\":\"00000000000000FF\",\"fp_len\":0,"
        "\"offset\":0,\"seen\":1},",
        ENT("/var/log/a\\u0000/../../etc/shadow",
            "\"ino\":114,\"fp_len\":0,\"offset\":0,\"seen\":1"),
        "{\"path\":\"/a\",\"dev\":1,\"ino\":115,\"fp\":\"00000000000000f\\u0000\",\"fp_len\":0,"
        "\"offset\":0,\"seen\":1},",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) sl_buf_printf(&b, "%s", bad[i]);
    /* A path of 1024 bytes (one more than the writer keeps). */
    sl_buf_printf(&b, "{\"path\":\"/");
    for (int i = 0; i < 1023; i++) sl_buf_putc(&b, 'p');
    sl_buf_printf(&b, "\",\"dev\":1,\"ino\":112,\"fp\":\"00000000000000ff\",\"fp_len\":0,"
                      "\"offset\":0,\"seen\":1},");
    /* An entry over 16 KiB (never written: paths stop at 1023 bytes). */
    sl_buf_printf(&b, "{\"pad\":\"");
    for (int i = 0; i < 17000; i++) sl_buf_putc(&b, 'x');
    sl_buf_printf(&b, "\",\"path\":\"/a\",\"dev\":1,\"ino\":113,\"fp\":\"00000000000000ff\","
                      "\"fp_len\":0,\"offset\":0,\"seen\":1},");
    /* Good ones, hostile bytes in paths included, and a duplicate. */
    sl_buf_printf(&b, ENT("/var/log/new\\nline \\\"quoted\\\" \\\\ \\t.log",
                          "\"ino\":1,\"fp_len\":4,\"offset\":500,\"seen\":1,\"size\":900"));
    sl_buf_printf(&b, ENT("/var/log/a.log", "\"ino\":2,\"fp_len\":4,\"offset\":300,\"seen\":1"));
    sl_buf_printf(&b, ENT("/var/log/a.log", "\"ino\":2,\"fp_len\":4,\"offset\":100,\"seen\":1"));
    sl_buf_printf(&b, ENT("/var/log/a.log", "\"ino\":2,\"fp_len\":4,\"offset\":200,\"seen\":1"));
    sl_buf_printf(&b, ENT("./rel..ative/x..y", "\"ino\":3,\"fp_len\":0,\"offset\":0,\"seen\":1"));
#undef ENT
    b.len--; /* the last comma */
    sl_buf_printf(&b, "]}");
    assert_false(b.failed);
    sl_ckpt c = {0};
    sl_err err;
    assert_int_equal(sl_ckpt_parse(b.p, b.len, &c, &err), SL_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.drops.invalid, sizeof bad / sizeof *bad + 2);
    assert_int_equal(c.drops.duplicate, 2);
    assert_int_equal(c.drops.over_limit, 0);
    assert_string_equal(c.drops.first_invalid, "entry 0: path with ..");
    assert_string_equal(c.drops.first_duplicate,
                        "entry 18: a second entry for the same dev and ino");
    assert_string_equal(sl_ckpt_find(&c, 1, 1)->path, "/var/log/new\nline \"quoted\" \\ \t.log");
    assert_int_equal(sl_ckpt_find(&c, 1, 2)->offset, 100);
    assert_non_null(sl_ckpt_find(&c, 1, 3));
    /* What loaded is written back as it was. */
    char *text;
    size_t len;
    assert_int_equal(sl_ckpt_encode(&c, &text, &len, NULL), SL_OK);
    sl_ckpt again = {0};
    assert_int_equal(sl_ckpt_parse(text, len, &again, NULL), SL_OK);
    assert_int_equal(again.n, 3);
    assert_int_equal(again.drops.invalid + again.drops.duplicate, 0);
    for (size_t i = 0; i < c.n; i++) {
        sl_ckpt_entry *x = sl_ckpt_find(&again, c.e[i].dev, c.e[i].ino);
        assert_non_null(x);
        x->look = c.e[i].look;
        assert_memory_equal(x, &c.e[i], sizeof *x);
    }
    free(text);
    sl_ckpt_free(&again);
    sl_ckpt_free(&c);
    sl_buf_free(&b);
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Memory stays bounded whatever the file says: 60 MiB of small JSON
 * values (jansson's tree of them would take over 1 GiB) are skipped, or
 * refused as an entry over 16 KiB, without building any. Runs before the
 * test below: the peak it measures must not be hidden by that one's. */
static void test_junk_is_not_parsed(void **st)
{
    (void)st;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"version\":1,\"junk\":[");
    const size_t zeros = 30u << 20;
    assert_int_equal(sl_buf_reserve(&b, 2 * zeros + 64), SL_OK);
    for (size_t i = 0; i < zeros; i++) memcpy(b.p + b.len + 2 * i, "0,", 2);
    b.len += 2 * zeros;
    sl_buf_printf(&b, "0],\"files\":[]}");
    long before = maxrss_kib();
    sl_ckpt c = {0};
    assert_int_equal(sl_ckpt_parse(b.p, b.len, &c, NULL), SL_OK);
    assert_int_equal(c.n, 0);
    memcpy(b.p, "{\"version\":1,\"files\":[{\"x\":[", 28); /* an entry of 60 MiB */
    b.p[b.len - 13] = ']';
    b.p[b.len - 12] = '}';
    b.p[b.len - 11] = ']';
    b.p[b.len - 10] = '}';
    memset(b.p + b.len - 9, ' ', 9);
    assert_int_equal(sl_ckpt_parse(b.p, b.len, &c, NULL), SL_OK);
    assert_int_equal(c.drops.invalid, 1);
    long grew = maxrss_kib() - before;
    fprintf(stderr, "60 MiB of junk: peak memory grew by %ld KiB\n", grew);
    if (!sl_t_sanitized()) assert_true(grew < 16 * 1024);
    sl_ckpt_free(&c);
    sl_buf_free(&b);
}

/* More entries than SL_CKPT_MAX_ENTRIES are dropped (counted). */
static void test_entries_over_limit(void **st)
{
    (void)st;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"version\":1,\"files\":[");
    const size_t n = SL_CKPT_MAX_ENTRIES + 3;
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b,
                      "%s{\"path\":\"/l\",\"dev\":1,\"ino\":%zu,\"fp\":\"0000000000000000\","
                      "\"fp_len\":0,\"offset\":0,\"seen\":0}",
                      i ? "," : "", i + 1);
    sl_buf_printf(&b, "]}");
    sl_ckpt c = {0};
    assert_int_equal(sl_ckpt_parse(b.p, b.len, &c, NULL), SL_OK);
    assert_int_equal(c.n, SL_CKPT_MAX_ENTRIES);
    assert_int_equal(c.drops.over_limit, 3);
    assert_non_null(sl_ckpt_find(&c, 1, SL_CKPT_MAX_ENTRIES));
    assert_null(sl_ckpt_find(&c, 1, SL_CKPT_MAX_ENTRIES + 1));
    sl_ckpt_free(&c);
    sl_buf_free(&b);
}

/* A checkpoint that is a FIFO, a huge file or a folder is refused without
 * blocking or reading it (and its previous generation used). */
static void test_not_a_regular_file(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("ckpt_kind");
    char *path = sl_t_path(dir, "in.json"), *prev = sl_t_path(dir, "in.json.prev");
    size_t len;
    char *text = one_entry_text(&len);
    for (int kind = 0; kind < 3; kind++) {
        unlink(path);
        rmdir(path);
        if (kind == 0) assert_int_equal(mkfifo(path, 0600), 0);
        if (kind == 1) {
            assert_int_equal(sl_t_write_file(path, "{", 1), 0);
            assert_int_equal(truncate(path, (off_t)SL_CKPT_MAX_BYTES + 1), 0);
        }
        if (kind == 2) assert_int_equal(mkdir(path, 0700), 0);
        sl_ckpt c = {0};
        int fell = 0;
        sl_err err;
        unlink(prev);
        assert_int_not_equal(sl_ckpt_load(path, &c, &fell, &err), SL_OK);
        assert_int_equal(c.n, 0);
        assert_int_equal(sl_t_write_file(prev, text, len), 0);
        assert_int_equal(sl_ckpt_load(path, &c, &fell, &err), SL_OK);
        assert_int_equal(fell, 1);
        assert_int_equal(c.n, 1);
        sl_ckpt_free(&c);
    }
    rmdir(path);
    free(text), free(path), free(prev);
    sl_t_rmtree(dir);
    free(dir);
}

/* The journald input's cursor file. */
static void test_journald_checkpoint_decoder(void **st)
{
    (void)st;
    char *cur;
    uint64_t rt;
    static const char good[] = "{\"version\":1,\"cursor\":\"s=ab;i=1f;t=5f5e100\","
                               "\"realtime_usec\":1700000000000000}";
    assert_int_equal(sl_jd_parse_checkpoint(good, sizeof good - 1, &cur, &rt, NULL), SL_OK);
    assert_string_equal(cur, "s=ab;i=1f;t=5f5e100");
    assert_int_equal(rt, 1700000000000000ULL);
    free(cur);
    /* No time: the cursor's own; a time far in the future is no hint. */
    static const char no_t[] = "{\"cursor\":\"s=ab;i=1f;t=5f5e100\"}";
    assert_int_equal(sl_jd_parse_checkpoint(no_t, sizeof no_t - 1, &cur, &rt, NULL), SL_OK);
    assert_int_equal(rt, 100000000);
    free(cur);
    static const char future[] = "{\"version\":1,\"cursor\":\"s=ab;t=ffffffffffffffff\","
                                 "\"realtime_usec\":9000000000000000000}";
    assert_int_equal(sl_jd_parse_checkpoint(future, sizeof future - 1, &cur, &rt, NULL), SL_OK);
    assert_int_equal(rt, 0);
    free(cur);
    static const char fut_cursor[] = "{\"cursor\":\"s=ab;t=fffffffffffffffffffff\"}";
    assert_int_equal(sl_jd_parse_checkpoint(fut_cursor, sizeof fut_cursor - 1, &cur, &rt, NULL),
                     SL_OK);
    assert_int_equal(rt, 0);
    free(cur);
    char longc[CURSOR_MAX + 40];
    int k = snprintf(longc, sizeof longc, "{\"cursor\":\"");
    memset(longc + k, 'a', CURSOR_MAX);
    snprintf(longc + k + CURSOR_MAX, sizeof longc - (size_t)k - CURSOR_MAX, "\"}");
    static const char *const damaged[] = {
        "",
        "{}",
        "{\"cursor\":\"\"}",
        "{\"cursor\":\"a b\"}",
        "{\"cursor\":\"a\\nb\"}",
        "{\"cursor\":\"a\\u0000b\"}",
        "{\"cursor\":\"caf\xc3\xa9\"}",
        "{\"cursor\":5}",
        "{\"cursor\":\"s=a\",\"version\":2}",
        "{\"cursor\":\"s=a\",\"realtime_usec\":-1}",
        "{\"cursor\":\"s=a\",\"realtime_usec\":\"1\"}",
        "{\"cursor\":\"s=a\"",
        "[\"cursor\"]",
    };
    for (size_t i = 0; i < sizeof damaged / sizeof *damaged + 1; i++) {
        const char *t = i < sizeof damaged / sizeof *damaged ? damaged[i] : longc;
        sl_err err;
        if (sl_jd_parse_checkpoint(t, strlen(t), &cur, &rt, &err) != SL_ECORRUPT)
            fail_msg("accepted: %s", t);
        assert_null(cur);
    }
}

/* sl_ckpt_put_new: a new entry is all zero but its identity, the same
 * entry comes back for the same dev+ino, and entries filled in place are
 * found by identity (through index rebuilds) and saved and loaded as put. */
static void test_put_new_fills_in_place(void **st)
{
    (void)st;
    sl_ckpt c = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        sl_ckpt_entry *e = sl_ckpt_put_new(&c, 7, 1000 + i);
        assert_non_null(e);
        assert_int_equal(e->dev, 7);
        assert_int_equal(e->ino, 1000 + i);
        assert_int_equal(e->offset, 0);
        assert_int_equal(e->size, 0);
        assert_int_equal(e->fp_len, 0);
        assert_int_equal(e->seen, 0);
        assert_int_equal(e->path[0], '\0');
        snprintf(e->path, sizeof e->path, "/logs/f%llu.log", (unsigned long long)i);
        e->offset = e->size = i * 10;
        e->seen = 1700000000;
        if (i % 100 == 0) assert_ptr_equal(sl_ckpt_find(&c, 7, 1000 + i / 2), &c.e[i / 2]);
    }
    assert_int_equal(c.n, 3000);
    sl_ckpt_entry *again = sl_ckpt_put_new(&c, 7, 1500);
    assert_non_null(again);
    assert_int_equal(c.n, 3000);
    assert_string_equal(again->path, "/logs/f500.log");
    assert_int_equal(again->offset, 5000);
    char *dir = sl_t_tmpdir("ckpt_put_new");
    char *path = sl_t_path(dir, "c.json");
    sl_err err;
    assert_int_equal(sl_ckpt_save(path, &c, &err), SL_OK);
    sl_ckpt l = {0};
    int fell_back = 0;
    assert_int_equal(sl_ckpt_load(path, &l, &fell_back, &err), SL_OK);
    assert_int_equal(l.n, 3000);
    for (uint64_t i = 0; i < 3000; i += 37) {
        sl_ckpt_entry *e = sl_ckpt_find(&l, 7, 1000 + i);
        assert_non_null(e);
        char want[64];
        snprintf(want, sizeof want, "/logs/f%llu.log", (unsigned long long)i);
        assert_string_equal(e->path, want);
        assert_int_equal(e->offset, i * 10);
    }
    sl_ckpt_free(&l);
    sl_ckpt_free(&c);
    sl_t_rmtree(dir);
    free(path), free(dir);
}

/* Removal keeps the index (decision 0069: an entry forgotten per deleted
 * file closed): after thousands of random puts and removes, with inode
 * numbers that collide in the index, every entry present is found where
 * it is and no removed one is found. */
static void test_remove_keeps_the_index(void **st)
{
    (void)st;
    enum { IDS = 4096 };
    static bool present[IDS];
    memset(present, 0, sizeof present);
    sl_ckpt c = {0};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int step = 0; step < 40000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint64_t id = (rng >> 11) % IDS;
        /* Colliding numbers: multiples of a power of two, two devices. */
        uint64_t dev = id & 1, ino = (id >> 1) << 12;
        if (rng % 3) {
            sl_ckpt_entry *e = sl_ckpt_put_new(&c, dev, ino);
            assert_non_null(e);
            e->offset = id;
            present[id] = true;
        } else {
            sl_ckpt_entry *e = sl_ckpt_find(&c, dev, ino);
            assert_int_equal(e != NULL, present[id]);
            if (e) sl_ckpt_remove(&c, (size_t)(e - c.e));
            present[id] = false;
        }
        if (step % 997 == 0) {
            size_t n = 0;
            for (uint64_t k = 0; k < IDS; k++) {
                sl_ckpt_entry *e = sl_ckpt_find(&c, k & 1, (k >> 1) << 12);
                assert_int_equal(e != NULL, present[k]);
                if (e) assert_int_equal(e->offset, k), n++;
            }
            assert_int_equal(c.n, n);
        }
    }
    sl_ckpt_free(&c);
}

/* The encoder's fast paths (plain ASCII paths copied as they are, numbers
 * two digits a division) write what the escaper and printf write: paths
 * of every length around the eight-byte steps with each kind of byte at
 * each place, numbers at each digit count and both ends of the range. */
static void test_encode_matches_reference(void **st)
{
    (void)st;
    const char *kinds[] = {"a", "\"", "\\", "\x01", "\x1f", "\x7f", "\xc3\xa9", " ", "/", "~"};
    const int64_t nums[] = {0,       9,          10,        99,        100, 101, 12345,     999999,
                            1000000, 1700000000, INT64_MAX, INT64_MIN, -1,  -10, 4294967296};
    size_t nk = sizeof kinds / sizeof *kinds, nn = sizeof nums / sizeof *nums;
    for (size_t len = 1; len <= 19; len++)
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < nk; k++) {
                sl_ckpt c = {0};
                sl_ckpt_entry e = {0};
                size_t n = 0;
                for (size_t i = 0; i < len; i++) {
                    const char *b = i == at ? kinds[k] : "p";
                    memcpy(e.path + n, b, strlen(b));
                    n += strlen(b);
                }
                size_t v = (len * 31 + at * 7 + k) % nn;
                e.dev = (uint64_t)nums[v];
                e.ino = (uint64_t)nums[(v + 1) % nn];
                e.fp_len = (uint32_t)(len * 100 + at);
                e.fp = 0x0123456789abcdefULL * (k + 1);
                e.offset = (uint64_t)nums[(v + 2) % nn];
                e.seen = nums[(v + 3) % nn];
                e.size = (uint64_t)nums[(v + 4) % nn];
                sl_ckpt_put(&c, &e);
                char *text;
                size_t tlen;
                assert_int_equal(sl_ckpt_encode(&c, &text, &tlen, NULL), SL_OK);
                char esc[200], want[600];
                size_t replaced = 0;
                size_t elen = sl_json_escape_ref(esc, e.path, n, &replaced);
                esc[elen] = '\0';
                snprintf(want, sizeof want,
                         "{\"version\":1,\"files\":[{\"path\":\"%s\",\"dev\":%lld,\"ino\":%lld,"
                         "\"fp_len\":%u,\"fp\":\"%016llx\",\"offset\":%lld,\"seen\":%lld,"
                         "\"size\":%lld}]}",
                         esc, (long long)e.dev, (long long)e.ino, e.fp_len,
                         (unsigned long long)e.fp, (long long)e.offset, (long long)e.seen,
                         (long long)e.size);
                assert_int_equal(tlen, strlen(want));
                assert_memory_equal(text, want, tlen);
                free(text);
                sl_ckpt_free(&c);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_junk_is_not_parsed),
        cmocka_unit_test(test_roundtrip_and_prev_generation),
        cmocka_unit_test(test_missing_is_empty),
        cmocka_unit_test(test_input_names_stay_in_the_folder),
        cmocka_unit_test(test_sizes_and_links),
        cmocka_unit_test(test_damaged_file_is_refused),
        cmocka_unit_test(test_bad_entries_are_dropped),
        cmocka_unit_test(test_entries_over_limit),
        cmocka_unit_test(test_not_a_regular_file),
        cmocka_unit_test(test_journald_checkpoint_decoder),
        cmocka_unit_test(test_put_new_fills_in_place),
        cmocka_unit_test(test_remove_keeps_the_index),
        cmocka_unit_test(test_encode_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
