/* For the parse-step fuzz targets: the record -> JSON writer
 * (shipper/recjson.c) on what a step made, every copy of it, must give
 * valid JSON (the json step's strict validator, which also refuses lone
 * surrogates, control bytes and invalid UTF-8); aborts otherwise. */
#ifndef SLUICE_TESTS_FUZZ_RECJSON_VALID_H
#define SLUICE_TESTS_FUZZ_RECJSON_VALID_H

#include <stdlib.h>

#include "core/batch.h"
#include "core/buf.h"
#include "parsers/json.h"
#include "shipper/recjson.h"

static inline void fuzz_recjson_valid(const sl_batch *b, const sl_record *r)
{
    for (int k = SL_RJ_KERNEL_PORTABLE; k <= SL_RJ_KERNEL_AVX2; k++) {
        sl_buf out;
        sl_buf_init(&out, 0);
        if (sl_recjson_append_kernel(&out, b, r, SL_RJ_ALL, k) < 0) abort();
        if (sl_json_validate(out.p, out.len, NULL, NULL) != 0) abort();
        sl_buf_free(&out);
    }
}

#endif
