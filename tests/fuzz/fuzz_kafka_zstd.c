/* ZSTD_decompress as the sluice binary defines it for librdkafka
 * (collector/kafka_zstd.c, decision 0064) on message sets from the
 * network: called the way librdkafka 2.0.2 calls it (2x the input, then
 * tripled after each "too small") and at the largest size, each answer
 * must be libzstd's for that buffer size: the same bytes and size when the
 * output fits, an error when it does not or when libzstd has one. Never a
 * crash; what it keeps is bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "collector/kafka_zstd.h"

#define CAP_MAX (8u * 1024 * 1024) /* the largest buffer tried */

static unsigned char *ref_out, *out;
static ZSTD_DCtx *ref_dctx;

/* One call with a buffer of `cap` bytes, against libzstd's answer with
 * CAP_MAX (ref: its size or error). */
static void check(const uint8_t *data, size_t n, size_t cap, size_t ref, int *fitted)
{
    size_t r = ZSTD_decompress(out, cap, data, n);
    if (ZSTD_isError(ref)) {
        if (!ZSTD_isError(r)) abort(); /* libzstd fails on these bytes */
        return;
    }
    if (ref > cap) {
        if (!ZSTD_isError(r) || ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) abort();
        return;
    }
    if (ZSTD_isError(r) || r != ref || memcmp(out, ref_out, r) != 0) abort();
    *fitted = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!ref_out) {
        sl_kafka_zstd_init();
        ref_out = malloc(CAP_MAX);
        out = malloc(CAP_MAX);
        ref_dctx = ZSTD_createDCtx();
        if (!ref_out || !out || !ref_dctx) abort();
    }
    size_t ref = ZSTD_decompressDCtx(ref_dctx, ref_out, CAP_MAX, data, n);
    int fitted = 0;
    /* librdkafka's sizes, then the largest; each answer stands alone, and
     * a retry may be served from what the call before kept. */
    for (size_t cap = n * 2; cap <= CAP_MAX && !fitted; cap += cap * 2 > 4000 ? cap * 2 : 4000)
        check(data, n, cap, ref, &fitted);
    check(data, n, CAP_MAX, ref, &fitted);
    /* Small buffers after a large one, and the same call twice. */
    check(data, n, 0, ref, &fitted);
    check(data, n, n, ref, &fitted);
    check(data, n, n, ref, &fitted);
    return 0;
}
