/* Builds Loki push bodies for the loki_push tests the way Promtail does
 * (logproto.PushRequest, snappy block), written from the .proto field
 * numbers, independently of collector/loki_push_decode.c; and gzip, for
 * the Content-Encoding: gzip bodies. Shared by tests/unit/test_loki_push_decode.c
 * and tests/integration/itest_loki_push.c; any failure aborts (a test
 * rig, not a decoder). */
#ifndef SLUICE_TESTS_PUSH_BODY_H
#define SLUICE_TESTS_PUSH_BODY_H

#include <stddef.h>
#include <stdint.h>

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

/* The wire pieces, for bodies a Loki client would not send: bytes as
 * they are, a varint, a length-delimited field, and m as a field of b
 * (m is emptied). */
void pb_put(pbuf *b, const void *d, size_t n);
void pb_varint(pbuf *b, uint64_t v);
void pb_bytes(pbuf *b, uint32_t field, const void *d, size_t n);
void pb_msg(pbuf *b, uint32_t field, pbuf *m);
/* EntryAdapter{timestamp, line, structuredMetadata...} appended to stream;
 * meta is name, value, name, value, ..., NULL. */
void pb_entry(pbuf *stream, int64_t ts_ns, const char *line, size_t len, const char *const *meta);
/* Starts a StreamAdapter with its label string. */
void pb_stream_labels(pbuf *stream, const char *labels);
/* Appends stream to req (and empties stream for the next one). */
void pb_add_stream(pbuf *req, pbuf *stream);
/* The request as a snappy block (req is emptied); caller frees. */
char *pb_snappy(pbuf *req, size_t *n);
/* s[0..n) gzip'd (one member); caller frees. */
char *pb_gzip(const char *s, size_t n, size_t *out);
/* A gzip member of prefix, pattern repeated reps times, suffix (a
 * decompression bomb: 1 GiB of a repeated pattern is about 1 MiB), made
 * without holding the text; caller frees. */
char *pb_gzip_fill(const char *prefix, const char *pattern, size_t reps, const char *suffix,
                   size_t *out);

#endif
