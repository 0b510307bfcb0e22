#include "tests/push_body.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void pb_put(pbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

void pb_varint(pbuf *b, uint64_t v)
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

void pb_bytes(pbuf *b, uint32_t field, const void *d, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}

void pb_msg(pbuf *b, uint32_t field, pbuf *m)
{
    pb_bytes(b, field, m->p, m->n);
    free(m->p);
    memset(m, 0, sizeof *m);
}

/* EntryAdapter{timestamp, line, structuredMetadata...}; meta is
 * name, value, name, value, ..., NULL. */
void pb_entry(pbuf *stream, int64_t ts_ns, const char *line, size_t len, const char *const *meta)
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
void pb_stream_labels(pbuf *stream, const char *labels)
{
    pb_bytes(stream, 1, labels, strlen(labels));
}

void pb_add_stream(pbuf *req, pbuf *stream)
{
    pb_msg(req, 1, stream);
}

/* The request as a snappy block; caller frees. */
char *pb_snappy(pbuf *req, size_t *n)
{
    size_t cap = snappy_max_compressed_length(req->n);
    char *o = malloc(cap);
    if (!o || snappy_compress((const char *)req->p, req->n, o, &cap) != SNAPPY_OK) abort();
    free(req->p);
    memset(req, 0, sizeof *req);
    *n = cap;
    return o;
}

char *pb_gzip(const char *s, size_t n, size_t *out)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, n);
    char *o = malloc(cap);
    if (!o) abort();
    z.next_in = (Bytef *)(uintptr_t)s;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)o;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *out = cap - z.avail_out;
    deflateEnd(&z);
    return o;
}

static void deflate_some(z_stream *z, const void *p, size_t n)
{
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)n;
    if (deflate(z, Z_NO_FLUSH) != Z_OK || z->avail_out == 0 || z->avail_in != 0) abort();
}

char *pb_gzip_fill(const char *prefix, const char *pattern, size_t reps, const char *suffix,
                   size_t *out)
{
    z_stream z = {0};
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t pn = strlen(pattern), per = 65536 / pn, cap = reps * pn / 256 + 65536;
    char *o = malloc(cap), *block = malloc(per * pn);
    if (!o || !block) abort();
    for (size_t i = 0; i < per; i++) memcpy(block + i * pn, pattern, pn);
    z.next_out = (Bytef *)o;
    z.avail_out = (uInt)cap;
    deflate_some(&z, prefix, strlen(prefix));
    for (size_t done = 0; done < reps;) {
        size_t k = reps - done < per ? reps - done : per;
        deflate_some(&z, block, k * pn);
        done += k;
    }
    z.next_in = (Bytef *)(uintptr_t)suffix;
    z.avail_in = (uInt)strlen(suffix);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *out = cap - z.avail_out;
    deflateEnd(&z);
    free(block);
    return o;
}
