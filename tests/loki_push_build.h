/* Builds Loki push bodies for the loki_push tests the way Promtail does
 * (logproto.PushRequest, snappy block), written from the .proto field
 * numbers, independently of collector/loki_push_decode.c. */
#ifndef SLUICE_TESTS_LOKI_PUSH_BUILD_H
#define SLUICE_TESTS_LOKI_PUSH_BUILD_H

#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static inline void pb_put(pbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    pb_put(b, t, n);
}

static inline void pb_bytes(pbuf *b, uint32_t field, const void *d, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}

static inline void pb_msg(pbuf *b, uint32_t field, pbuf *m)
{
    pb_bytes(b, field, m->p, m->n);
    free(m->p);
    memset(m, 0, sizeof *m);
}

/* EntryAdapter{timestamp, line, structuredMetadata...}; meta is
 * name, value, name, value, ..., NULL. */
static inline void pb_entry(pbuf *stream, int64_t ts_ns, const char *line, size_t len,
                            const char *const *meta)
{
    pbuf e = {0}, ts = {0};
    pb_varint(&ts, 1 << 3 | 0);
    pb_varint(&ts, (uint64_t)(ts_ns / 1000000000));
    pb_varint(&ts, 2 << 3 | 0);
    pb_varint(&ts, (uint64_t)(ts_ns % 1000000000));
    pb_msg(&e, 1, &ts);
    pb_bytes(&e, 2, line, len);
    for (; meta && meta[0]; meta += 2) {
        pbuf kv = {0};
        pb_bytes(&kv, 1, meta[0], strlen(meta[0]));
        pb_bytes(&kv, 2, meta[1], strlen(meta[1]));
        pb_msg(&e, 3, &kv);
    }
    pb_msg(stream, 2, &e);
}

/* Starts a StreamAdapter with its label string. */
static inline void pb_stream_labels(pbuf *stream, const char *labels)
{
    pb_bytes(stream, 1, labels, strlen(labels));
}

static inline void pb_add_stream(pbuf *req, pbuf *stream)
{
    pb_msg(req, 1, stream);
}

/* The request as a snappy block; caller frees. */
static inline char *pb_snappy(pbuf *req, size_t *n)
{
    size_t cap = snappy_max_compressed_length(req->n);
    char *o = malloc(cap);
    if (!o || snappy_compress((const char *)req->p, req->n, o, &cap) != SNAPPY_OK) abort();
    free(req->p);
    memset(req, 0, sizeof *req);
    *n = cap;
    return o;
}

#endif
