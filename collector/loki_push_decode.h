/* Decoding of Loki push bodies (POST /loki/api/v1/push) for the loki_push
 * input: protobuf logproto.PushRequest in a snappy block, or JSON, either
 * optionally gzip'd; and the `{a="b", c="d"}` stream label strings of the
 * protobuf form. Network-facing, so every bound is explicit: the decoded
 * body is at most max_decoded bytes, and every array grows only with what
 * the body holds (each element takes bytes of it). The protobuf decoder is
 * written here (decision 0034: seven fields, no generated code); JSON is
 * read with jansson. Fuzz targets: tests/fuzz/fuzz_loki_push.c and
 * fuzz_loki_labels.c. */
#ifndef SLUICE_COLLECTOR_LOKI_PUSH_DECODE_H
#define SLUICE_COLLECTOR_LOKI_PUSH_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/record.h"

typedef struct sl_lp_pair {
    sl_slice name, value;
} sl_lp_pair;

typedef struct sl_lp_entry {
    int64_t ts_ns;
    sl_slice line;
    uint32_t meta, nmeta; /* into sl_lp_push.pairs */
} sl_lp_entry;

typedef struct sl_lp_stream {
    uint32_t labels, nlabels;   /* into sl_lp_push.pairs */
    uint32_t entries, nentries; /* into sl_lp_push.entries */
} sl_lp_stream;

/* One decoded push. Slices point into memory the push owns. */
typedef struct sl_lp_push {
    sl_lp_stream *streams;
    uint32_t nstreams;
    sl_lp_entry *entries;
    uint32_t nentries;
    sl_lp_pair *pairs;
    uint32_t npairs;
    size_t text_bytes; /* sum of every line, name and value length */
    /* owned storage */
    char *raw;     /* the decompressed body */
    char *scratch; /* unescaped label values */
    size_t scratch_len, scratch_cap;
    void *json; /* jansson root of a JSON body */
    uint32_t cap_streams, cap_entries, cap_pairs;
    /* memory: what the push takes (decoded text, JSON tree, arrays, the
     * records it becomes), bounded by max_decoded */
    size_t mem, mem_max;
    bool over;
    size_t fields_bytes; /* the records' field arrays in a batch's arena */
} sl_lp_push;

enum { SL_LP_MAX_LABELS = 64 }; /* per stream; Loki's default allows 15 */

/* Parses a label string `{name="value", ...}` (Prometheus/PromQL syntax;
 * values in Go string-literal escapes: \\ \" \n \t \r \a \b \f \v \' \xHH,
 * \ooo, \uXXXX, \UXXXXXXXX). Unescaped values go to scratch (cap bytes;
 * the input's length always suffices), names are [a-zA-Z_][a-zA-Z0-9_]*.
 * Returns SL_OK with *n pairs (at most cap_pairs), or SL_EPARSE with why. */
int sl_lp_parse_labels(const char *p, size_t n, char *scratch, size_t cap, size_t *used,
                       sl_lp_pair *out, size_t cap_pairs, size_t *npairs, sl_err *err);

/* Decodes a body as Loki does: content_type starting "application/json" is
 * JSON, anything else protobuf in a snappy block; content_encoding "gzip"
 * is inflated first ("" / NULL / "identity": none; anything else refused).
 * max_decoded bounds the memory the push takes, not only its decoded
 * bytes: the decompressed body, the JSON tree (estimated from the text's
 * tokens before parsing), the decoder's arrays and the records and fields
 * the entries become (decision 0072), so neither a compression bomb nor a
 * body of tiny entries under many labels can take more.
 * SL_OK, SL_EPARSE with why (a 400), SL_EFULL when the push exceeds
 * max_decoded (a 413), SL_ENOMEM. Free with sl_lp_push_free even on
 * error. */
int sl_lp_decode(const char *content_type, const char *content_encoding, const void *body, size_t n,
                 size_t max_decoded, sl_lp_push *out, sl_err *err);
void sl_lp_push_free(sl_lp_push *p);

#endif
