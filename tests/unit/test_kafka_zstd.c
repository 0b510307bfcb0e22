/* ZSTD_decompress as the sluice binary defines it for librdkafka
 * (collector/kafka_zstd.c, decision 0064): for every input, called the
 * way librdkafka 2.0.2 calls it (a 2x guess, then tripled after each
 * "too small"), the bytes and size libzstd's own decompression gives, or
 * an error where it gives one; a retry is served from the kept output only
 * for the very same input bytes; what is kept stays bounded. */

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "collector/kafka_zstd.h"

/* JSON log lines, alike enough to compress ~5-8x as a topic's do. */
static unsigned char *corpus(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    size_t at = 0;
    for (unsigned i = 0; at < n; i++) {
        char line[256];
        int k =
            snprintf(line, sizeof line,
                     "{\"ts\":\"2026-12-07T17:%02u:%02u.%06uZ\",\"level\":\"%s\",\"msg\":\"request "
                     "%u served\",\"user\":%u,\"ms\":%u}\n",
                     (i / 60) % 60, i % 60, (i * 7919u + seed) % 1000000u, i % 5 ? "info" : "warn",
                     i * 31u + seed, (i * 2654435761u) % 9973u, (i * 40503u + seed) % 2000u);
        size_t m = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(p + at, line, m);
        at += m;
    }
    return p;
}

/* A frame as Debian's librdkafka producer writes it: streamed, without
 * the content size in its header (or with it, when asked). */
static unsigned char *compress(const unsigned char *src, size_t n, bool with_size, size_t *out_n)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size)));
    size_t cap = ZSTD_compressBound(n);
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    ZSTD_outBuffer o = {out, cap, 0};
    ZSTD_inBuffer in = {src, n, 0};
    if (!with_size) {
        /* Streamed: the compressor does not know the size ahead. */
        assert_false(ZSTD_isError(ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue)));
        in.size = in.pos = 0;
    } else {
        assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, n)));
    }
    assert_int_equal(ZSTD_compressStream2(c, &o, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    *out_n = o.pos;
    return out;
}

/* libzstd's answer, with a context of its own and room enough: the
 * reference. */
static size_t reference(const void *src, size_t n, unsigned char **out)
{
    size_t cap = 64u * 1024 * 1024;
    *out = malloc(cap);
    assert_non_null(*out);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t r = ZSTD_decompressDCtx(d, *out, cap, src, n);
    ZSTD_freeDCtx(d);
    return r;
}

/* librdkafka 2.0.2's loop (rdkafka_zstd.c): 2x the input, then
 * += max(2x, 4000) after each "too small", up to `limit`. Returns the
 * size (output in *out) or an error code; *calls counts the calls. */
static size_t rdkafka_way(const void *src, size_t n, unsigned long long limit, unsigned char **out,
                          int *calls)
{
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    /* (librdkafka gives up on a header it cannot read; the function is
     * called anyway here, to compare its answer.) */
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) size = n * 2;
    *calls = 0;
    while (size <= limit) {
        unsigned char *d = malloc(size ? size : 1);
        assert_non_null(d);
        size_t r = ZSTD_decompress(d, size, src, n);
        (*calls)++;
        if (!ZSTD_isError(r)) {
            *out = d;
            return r;
        }
        free(d);
        if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) return r;
        size += size * 2 > 4000 ? size * 2 : 4000;
    }
    return (size_t) - (int)ZSTD_error_dstSize_tooSmall;
}

static void check_like_libzstd(const void *src, size_t n)
{
    unsigned char *want, *got = NULL;
    size_t w = reference(src, n, &want);
    int calls;
    size_t g = rdkafka_way(src, n, 100u * 1024 * 1024, &got, &calls);
    assert_int_equal(ZSTD_isError(g), ZSTD_isError(w));
    if (!ZSTD_isError(w)) {
        assert_int_equal(g, w);
        assert_memory_equal(got, want, w);
    }
    free(got);
    free(want);
}

static void test_interposed(void **state)
{
    (void)state;
    /* The definition librdkafka's calls bind to is this program's. */
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "ZSTD_decompress"), (void *)ZSTD_decompress);
    assert_true(sl_kafka_zstd_bound());
}

static void test_one_decompression_per_set(void **state)
{
    (void)state;
    size_t n = 900 * 1024, zn;
    unsigned char *src = corpus(n, 1), *z = compress(src, n, false, &zn);
    assert_true(ZSTD_getFrameContentSize(z, zn) == ZSTD_CONTENTSIZE_UNKNOWN);
    assert_true(zn * 2 < n); /* so the first guess is short */
    sl_kafka_zstd_stats before = sl_kafka_zstd_thread_stats();
    unsigned char *out = NULL;
    int calls;
    size_t r = rdkafka_way(z, zn, 100u * 1024 * 1024, &out, &calls);
    assert_int_equal(r, n);
    assert_memory_equal(out, src, n);
    assert_true(calls >= 2);
    sl_kafka_zstd_stats after = sl_kafka_zstd_thread_stats();
    assert_int_equal(after.decompressed - before.decompressed, 1);
    assert_int_equal(after.served_kept - before.served_kept, 1);
    /* Again with the same bytes: nothing kept from the first time. */
    free(out);
    r = rdkafka_way(z, zn, 100u * 1024 * 1024, &out, &calls);
    assert_int_equal(r, n);
    assert_memory_equal(out, src, n);
    assert_int_equal(sl_kafka_zstd_thread_stats().decompressed - after.decompressed, 1);
    free(out);
    free(z);
    free(src);
}

static void test_like_libzstd(void **state)
{
    (void)state;
    size_t n = 300 * 1024, zn, zn2;
    unsigned char *src = corpus(n, 2);
    /* With the content size (librdkafka's guess is exact then). */
    unsigned char *z = compress(src, n, true, &zn);
    check_like_libzstd(z, zn);
    /* Two frames and a skippable one between them, no sizes. */
    unsigned char *z2 = compress(src, n / 3, false, &zn2);
    unsigned char *multi = malloc(zn2 * 2 + 16);
    assert_non_null(multi);
    memcpy(multi, z2, zn2);
    const unsigned char skip[16] = {0x50, 0x2a, 0x4d, 0x18, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    memcpy(multi + zn2, skip, sizeof skip);
    memcpy(multi + zn2 + sizeof skip, z2, zn2);
    check_like_libzstd(multi, zn2 * 2 + sizeof skip);
    /* Incompressible: fits the first guess. */
    unsigned char *noise = malloc(64 * 1024);
    assert_non_null(noise);
    for (size_t i = 0; i < 64 * 1024; i++) noise[i] = (unsigned char)(i * 2654435761u >> 13);
    size_t zn3;
    unsigned char *z3 = compress(noise, 64 * 1024, false, &zn3);
    check_like_libzstd(z3, zn3);
    /* Empty input, truncated and corrupt frames: errors where libzstd
     * has them. */
    check_like_libzstd(z2, 0);
    check_like_libzstd(z2, zn2 / 2);
    check_like_libzstd(z2, 3);
    unsigned char *bad = malloc(zn2);
    assert_non_null(bad);
    memcpy(bad, z2, zn2);
    for (size_t i = zn2 / 3; i < zn2 - 4; i += 97) bad[i] ^= 0x5a;
    check_like_libzstd(bad, zn2);
    free(bad);
    free(z3);
    free(noise);
    free(multi);
    free(z2);
    free(z);
    free(src);
}

/* Kept output is served only for the very same bytes: an input changed
 * in place between the calls (same address, same length) is decompressed
 * afresh. */
static void test_changed_input_not_served(void **state)
{
    (void)state;
    size_t n = 600 * 1024, zn;
    unsigned char *a = corpus(n, 3), *za = compress(a, n, false, &zn);
    unsigned char *out = malloc(n);
    assert_non_null(out);
    /* Too small: a's output kept. */
    size_t r = ZSTD_decompress(out, zn, za, zn);
    assert_true(ZSTD_isError(r));
    assert_int_equal(ZSTD_getErrorCode(r), ZSTD_error_dstSize_tooSmall);
    /* One byte changed in place: libzstd's answer for the new bytes
     * (an error, or other bytes), not what was kept. */
    za[zn / 2] ^= 0x21;
    unsigned char *want;
    size_t w = reference(za, zn, &want);
    r = ZSTD_decompress(out, n, za, zn);
    assert_int_equal(ZSTD_isError(r), ZSTD_isError(w));
    if (!ZSTD_isError(w)) {
        assert_int_equal(r, w);
        assert_memory_equal(out, want, w);
        assert_true(w != n || memcmp(want, a, n) != 0);
    }
    /* Back as it was: a again. */
    za[zn / 2] ^= 0x21;
    r = ZSTD_decompress(out, n, za, zn);
    assert_int_equal(r, n);
    assert_memory_equal(out, a, n);
    free(want);
    free(out);
    free(za);
    free(a);
}

/* A set whose output is above SL_KAFKA_ZSTD_KEEP_MAX (a bomb-like ratio):
 * decompressed into the caller's buffer each time, as libzstd does;
 * nothing kept. */
static void test_large_set_not_kept(void **state)
{
    (void)state;
    size_t n = SL_KAFKA_ZSTD_KEEP_MAX + 3 * 1024 * 1024, zn;
    unsigned char *src = calloc(1, n);
    assert_non_null(src);
    memcpy(src + n / 2, "a line", 6);
    unsigned char *z = compress(src, n, false, &zn);
    sl_kafka_zstd_stats before = sl_kafka_zstd_thread_stats();
    unsigned char *out = NULL;
    int calls;
    size_t r = rdkafka_way(z, zn, 100u * 1024 * 1024, &out, &calls);
    assert_int_equal(r, n);
    assert_memory_equal(out, src, n);
    sl_kafka_zstd_stats after = sl_kafka_zstd_thread_stats();
    assert_int_equal(after.served_kept, before.served_kept);
    assert_int_equal(after.decompressed - before.decompressed, (uint64_t)calls);
    free(out);
    free(z);
    free(src);
}

/* Several threads at once (librdkafka's broker threads): each its own
 * state. */
typedef struct job {
    unsigned seed;
    int ok;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    size_t n = 512 * 1024 + j->seed * 1000, zn;
    unsigned char *src = corpus(n, j->seed), *z = compress(src, n, false, &zn);
    j->ok = 1;
    for (int i = 0; i < 20 && j->ok; i++) {
        unsigned char *out = NULL;
        int calls;
        size_t r = rdkafka_way(z, zn, 100u * 1024 * 1024, &out, &calls);
        j->ok = r == n && memcmp(out, src, n) == 0;
        free(out);
    }
    sl_kafka_zstd_stats s = sl_kafka_zstd_thread_stats();
    if (s.decompressed != 20 || s.served_kept != 20) j->ok = 0;
    free(z);
    free(src);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[3];
    job j[3];
    for (unsigned i = 0; i < 3; i++) {
        j[i] = (job){.seed = 10 + i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &j[i]), 0);
    }
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(j[i].ok, 1);
    }
}

int main(void)
{
    sl_kafka_zstd_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interposed),         cmocka_unit_test(test_one_decompression_per_set),
        cmocka_unit_test(test_like_libzstd),       cmocka_unit_test(test_changed_input_not_served),
        cmocka_unit_test(test_large_set_not_kept), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
