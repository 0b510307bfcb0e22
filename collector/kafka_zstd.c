/* ZSTD_decompress, defined in the sluice binary for librdkafka's consumer
 * (see kafka_zstd.h and decision 0064).
 *
 * librdkafka 2.0.2 (rdkafka_zstd.c) decompresses a message set whose frame
 * has no content size like this: malloc 2x the compressed size,
 * ZSTD_decompress, and on ZSTD_error_dstSize_tooSmall free, triple the size
 * and decompress again from the start, up to receive.message.max.bytes.
 * For JSON logs (4-8x smaller compressed) that is two or three passes, the
 * first ones stopped only when the guess was full, each with a context
 * made and freed inside libzstd's ZSTD_decompress.
 *
 * Here, per thread (librdkafka calls from its broker threads): one
 * decompression context, kept; and when the set's upper bound
 * (ZSTD_decompressBound: blocks x their maximum size, exact to a block for
 * what a streaming compressor writes) is above the caller's buffer, the set
 * is decompressed whole into a buffer of that bound. If it fits the
 * caller's buffer it is copied there; if not, the answer is
 * dstSize_tooSmall, as libzstd's would be, and the output is kept with a
 * copy of the input: the caller's retry with the same bytes is a copy.
 * So one decompression per set, and the retries cost a copy each.
 *
 * The state is per thread (a pthread key, freed at the thread's exit): the
 * function's signature has no room for a context, and librdkafka's broker
 * threads call it at the same time. What is kept is bounded: at most one
 * set's output (SL_KAFKA_ZSTD_KEEP_MAX) and its input, per thread; the
 * buffers stay with the thread for the next set while at most
 * SL_KAFKA_ZSTD_REUSE_MAX (what a set of a producer's default 1 MB batch
 * needs), so that each set does not take fresh pages. A set above the bound, or anything the bound
 * cannot be computed for, decompresses straight into the caller's buffer,
 * exactly as libzstd's function does. */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound (exported by libzstd 1.5) */
#include "collector/kafka_zstd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>
#include <zstd_errors.h>

typedef struct zstate {
    ZSTD_DCtx *dctx;
    /* The last set decompressed for a caller whose buffer was too small:
     * its input (to know the retry) and its whole output. */
    unsigned char *kept_in, *kept_out;
    size_t kept_in_n, kept_out_n;
    bool kept; /* kept_in/kept_out hold a set for its retry */
    /* The mapping both live in, reused from set to set while at most
     * SL_KAFKA_ZSTD_REUSE_MAX. */
    void *map;
    size_t map_n;
    sl_kafka_zstd_stats stats;
} zstate;

/* Buffers up to this size stay with the thread between sets. */
#define SL_KAFKA_ZSTD_REUSE_MAX (4u * 1024 * 1024)

/* Made once; read-only afterwards. */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static bool key_made;

static void free_buffers(zstate *s)
{
    if (s->map) munmap(s->map, s->map_n);
    s->map = NULL;
    s->map_n = 0;
    s->kept_in = s->kept_out = NULL;
}

/* The kept set is gone; its mapping stays for the next one unless large. */
static void drop_kept(zstate *s)
{
    s->kept = false;
    s->kept_in_n = s->kept_out_n = 0;
    if (s->map_n > SL_KAFKA_ZSTD_REUSE_MAX) free_buffers(s);
}

/* Room for a set's input and output: false when the memory cannot be had.
 * A mapping of its own, not the allocator's arenas: the pages stay with
 * this buffer (librdkafka's buffers of every size come and go in the
 * arenas around it, and with decision 0051's trim threshold the arenas
 * keep what they once held). */
static bool room(zstate *s, size_t in_n, size_t out_n)
{
    size_t page = 4096, need = (in_n + out_n + page - 1) / page * page;
    if (s->map_n < need) {
        free_buffers(s);
        void *m = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        s->map = m;
        s->map_n = need;
    }
    s->kept_out = s->map;
    s->kept_in = (unsigned char *)s->map + out_n;
    return true;
}

static void state_free(void *p)
{
    zstate *s = p;
    free_buffers(s);
    ZSTD_freeDCtx(s->dctx);
    free(s);
}

static void make_key(void)
{
    key_made = pthread_key_create(&key, state_free) == 0;
}

void sl_kafka_zstd_init(void)
{
    pthread_once(&key_once, make_key);
}

/* This thread's state; NULL when it cannot be had (no memory). */
static zstate *state(void)
{
    pthread_once(&key_once, make_key);
    if (!key_made) return NULL;
    zstate *s = pthread_getspecific(key);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->dctx = ZSTD_createDCtx();
    if (!s->dctx || pthread_setspecific(key, s) != 0) {
        ZSTD_freeDCtx(s->dctx);
        free(s);
        return NULL;
    }
    return s;
}

bool sl_kafka_zstd_bound(void)
{
    return dlsym(RTLD_DEFAULT, "ZSTD_decompress") == (void *)ZSTD_decompress;
}

sl_kafka_zstd_stats sl_kafka_zstd_thread_stats(void)
{
    zstate *s = state();
    return s ? s->stats : (sl_kafka_zstd_stats){0, 0};
}

#define ZERR(e) ((size_t) - (int)(e))

size_t ZSTD_decompress(void *dst, size_t cap, const void *src, size_t n)
{
    zstate *s = state();
    if (!s) {
        /* What libzstd's own function does. */
        ZSTD_DCtx *d = ZSTD_createDCtx();
        if (!d) return ZERR(ZSTD_error_memory_allocation);
        size_t r = ZSTD_decompressDCtx(d, dst, cap, src, n);
        ZSTD_freeDCtx(d);
        return r;
    }
    if (s->kept && s->kept_in_n == n && memcmp(s->kept_in, src, n) == 0) {
        /* The retry of the set decompressed last: a copy, or too small
         * again (the caller grows its buffer once more). */
        if (s->kept_out_n > cap) return ZERR(ZSTD_error_dstSize_tooSmall);
        size_t r = s->kept_out_n;
        if (r) memcpy(dst, s->kept_out, r);
        drop_kept(s);
        s->stats.served_kept++;
        return r;
    }
    drop_kept(s);
    s->stats.decompressed++;
    unsigned long long bound = ZSTD_decompressBound(src, n);
    if (bound == ZSTD_CONTENTSIZE_ERROR || bound <= cap || bound > SL_KAFKA_ZSTD_KEEP_MAX ||
        n > SL_KAFKA_ZSTD_KEEP_MAX || !room(s, n, (size_t)bound))
        return ZSTD_decompressDCtx(s->dctx, dst, cap, src, n);
    size_t r = ZSTD_decompressDCtx(s->dctx, s->kept_out, (size_t)bound, src, n);
    if (ZSTD_isError(r)) {
        /* The set's error (a corrupt one may name another error than a
         * smaller buffer would have; the caller fails it either way),
         * except "too small" for the bound, which is not supposed to
         * happen: then as libzstd. */
        if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
            r = ZSTD_decompressDCtx(s->dctx, dst, cap, src, n);
        drop_kept(s);
        return r;
    }
    if (r <= cap) {
        if (r) memcpy(dst, s->kept_out, r);
        drop_kept(s);
        return r;
    }
    memcpy(s->kept_in, src, n);
    s->kept_in_n = n;
    s->kept_out_n = r;
    s->kept = true;
    return ZERR(ZSTD_error_dstSize_tooSmall);
}
