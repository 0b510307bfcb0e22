/* The Kafka input's `format: json` decoder (collector/kafka_record.c) on
 * message values from the network: never a crash, every slice it stores
 * inside the storage it was given, and a bounded arena runs out cleanly.
 * What it accepts renders as valid JSON with every record -> JSON kernel
 * (typed values are JSON of their type, as the spool requires: decisions
 * 0054, 0059). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/kafka_record.h"
#include "core/err.h"
#include "core/buf.h"
#include "parsers/json.h"
#include "shipper/recjson.h"

typedef struct arena {
    char *p;
    size_t len, cap;
} arena;

static char *take(void *arg, size_t n)
{
    arena *a = arg;
    if (n > a->cap - a->len) return NULL;
    char *at = a->p + a->len;
    a->len += n;
    return at;
}

/* Rendered by every record -> JSON kernel, the record is valid JSON, up
 * to the deepest nesting the spool accepts (jansson stops at 2048). */
static void renders_valid(const sl_batch *b, const sl_record *r)
{
    static const sl_json_opts deepest = {.max_depth = SL_JSON_MAX_DEPTH};
    for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
        sl_buf out;
        sl_buf_init(&out, 0);
        if (sl_recjson_append_kernel(&out, b, r, SL_RJ_ALL, k) < 0) abort();
        if (sl_json_validate(out.p, out.len, &deepest, NULL) != 0) abort();
        sl_buf_free(&out);
    }
}

static bool inside(const arena *a, sl_slice s)
{
    return s.n == 0 || (s.p >= a->p && s.p + s.n <= a->p + a->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Once with room, once with too little: both must be safe. */
    for (int round = 0; round < 2; round++) {
        sl_batch *b = sl_batch_new(1);
        if (!b) return 0;
        arena a = {.cap = round == 0 ? 4 * size + 4096 : size / 3};
        a.p = malloc(a.cap + 1);
        sl_record *r = a.p ? sl_batch_add(b, (sl_slice){"", 0}, 0, 1) : NULL;
        if (r) {
            int rc = sl_kafka_record_decode(b, r, (const char *)data, size, take, &a);
            if (rc != SL_OK && rc != SL_EPARSE) abort();
            if (rc == SL_OK && !inside(&a, r->line)) abort();
            for (uint32_t i = 0; i < r->nfields; i++)
                if (!inside(&a, r->fields[i].key) || !inside(&a, r->fields[i].val)) abort();
            if (rc == SL_OK && round == 0) renders_valid(b, r);
        }
        free(a.p);
        sl_batch_unref(b);
    }
    return 0;
}
