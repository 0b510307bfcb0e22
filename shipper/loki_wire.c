/* A built request written out: the protobuf PushRequest (sizes computed
 * while building, loki_encode.c), the JSON push body, and the snappy and
 * gzip compressions of either. */
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shipper/loki_req.h"

static int entry_cmp(const void *a, const void *b)
{
    const sl_loki_entry *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void sort_streams(sl_loki_req *q)
{
    for (uint32_t i = 0; i < q->nst; i++) {
        sl_loki_stream *st = &q->st[i];
        if (!st->unsorted) continue;
        /* seq breaks ties, so the order is stable. */
        qsort(st->e, st->n, sizeof *st->e, entry_cmp);
        st->unsorted = false;
        st->last_ts = st->n ? st->e[st->n - 1].ts : INT64_MIN;
    }
}

/* ---- protobuf ---- */

static inline char *put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static inline char *put_len(char *p, uint8_t tag, const char *s, size_t n)
{
    if (!n) return p;
    *p++ = (char)tag;
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

int sl_loki_req_protobuf(sl_loki_req *q, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    uint64_t total = 0;
    for (uint32_t i = 0; i < q->nst; i++) {
        sl_loki_stream *st = &q->st[i];
        if (!st->n) continue;
        uint64_t sb = len_field(st->labels_n) + st->body;
        total += 1 + varint_len(sb) + sb;
    }
    if (total > SIZE_MAX / 2 || buf_reserve(out, (size_t)total))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %llu bytes for a Loki request",
                       (unsigned long long)total);
    char *p = out->p + out->len;
    char *const start = p;
    for (uint32_t i = 0; i < q->nst; i++) {
        const sl_loki_stream *st = &q->st[i];
        if (!st->n) continue;
        /* PushRequest.streams = 1 */
        *p++ = 0x0A;
        p = put_varint(p, len_field(st->labels_n) + st->body);
        /* StreamAdapter.labels = 1 */
        p = put_len(p, 0x0A, st->labels, st->labels_n);
        for (uint32_t k = 0; k < st->n; k++) {
            const sl_loki_entry *e = &st->e[k];
            /* StreamAdapter.entries = 2 */
            *p++ = 0x12;
            p = put_varint(p, e->size);
            /* EntryAdapter.timestamp = 1 {seconds = 1, nanos = 2} */
            int64_t s;
            int32_t ns;
            ts_split(e->ts, &s, &ns);
            *p++ = 0x0A;
            p = put_varint(p, ts_body(e->ts));
            if (s) {
                *p++ = 0x08;
                p = put_varint(p, (uint64_t)s);
            }
            if (ns) {
                *p++ = 0x10;
                p = put_varint(p, (uint64_t)ns);
            }
            /* EntryAdapter.line = 2 */
            p = put_len(p, 0x12, e->line, e->line_n);
            /* EntryAdapter.structuredMetadata = 3 {name = 1, value = 2} */
            for (uint32_t m = e->meta_off; m < e->meta_off + e->nmeta; m++) {
                const sl_loki_kv *kv = &q->meta[m];
                *p++ = 0x1A;
                p = put_varint(p, len_field(kv->name.n) + len_field(kv->value.n));
                p = put_len(p, 0x0A, kv->name.p, kv->name.n);
                p = put_len(p, 0x12, kv->value.p, kv->value.n);
            }
        }
    }
    if ((uint64_t)(p - start) != total)
        return sl_errf(err, SL_EINVAL, "internal: protobuf size mismatch (%llu != %llu)",
                       (unsigned long long)(p - start), (unsigned long long)total);
    out->len += (size_t)total;
    return 0;
}

/* ---- JSON ---- */

static int put_i64(sl_buf *b, int64_t v)
{
    char t[24];
    char *e = t + sizeof t, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return buf_put(b, p, (size_t)(e - p));
}

/* p is valid UTF-8 here (stable_utf8, label_value), so nothing is
 * replaced. */
static int json_str(sl_buf *b, const char *p, size_t n)
{
    bool bad = false;
    return BUF_LIT(b, "\"") || sl_loki_json_escape(p, n, b, &bad) || BUF_LIT(b, "\"");
}

int sl_loki_req_json(sl_loki_req *q, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    size_t n0 = out->len;
    if (BUF_LIT(out, "{\"streams\":[")) goto nomem;
    bool firsts = true;
    for (uint32_t i = 0; i < q->nst; i++) {
        const sl_loki_stream *st = &q->st[i];
        if (!st->n) continue;
        if (!firsts && BUF_LIT(out, ",")) goto nomem;
        firsts = false;
        if (BUF_LIT(out, "{\"stream\":{")) goto nomem;
        for (uint32_t k = 0; k < st->npairs; k++) {
            const sl_loki_kv *kv = &q->pairs[st->pair_off + k];
            if ((k && BUF_LIT(out, ",")) || json_str(out, kv->name.p, kv->name.n) ||
                BUF_LIT(out, ":") || json_str(out, kv->value.p, kv->value.n))
                goto nomem;
        }
        if (BUF_LIT(out, "},\"values\":[")) goto nomem;
        for (uint32_t k = 0; k < st->n; k++) {
            const sl_loki_entry *e = &st->e[k];
            if ((k && BUF_LIT(out, ",")) || BUF_LIT(out, "[\"") || put_i64(out, e->ts) ||
                BUF_LIT(out, "\",") || json_str(out, e->line, e->line_n))
                goto nomem;
            if (e->nmeta) {
                if (BUF_LIT(out, ",{")) goto nomem;
                for (uint32_t m = 0; m < e->nmeta; m++) {
                    const sl_loki_kv *kv = &q->meta[e->meta_off + m];
                    if ((m && BUF_LIT(out, ",")) || json_str(out, kv->name.p, kv->name.n) ||
                        BUF_LIT(out, ":") || json_str(out, kv->value.p, kv->value.n))
                        goto nomem;
                }
                if (BUF_LIT(out, "}")) goto nomem;
            }
            if (BUF_LIT(out, "]")) goto nomem;
        }
        if (BUF_LIT(out, "]}")) goto nomem;
    }
    if (BUF_LIT(out, "]}")) goto nomem;
    return 0;
nomem:
    out->len = n0;
    return sl_errf(err, SL_ENOMEM, "out of memory while writing a Loki JSON request");
}

/* ---- compression ---- */

int sl_loki_snappy(const void *in, size_t n, sl_buf *out, sl_err *err)
{
    size_t max = snappy_max_compressed_length(n);
    sl_buf_reset(out);
    if (buf_reserve(out, max))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for snappy", max);
    size_t got = max;
    if (snappy_compress(in, n, out->p, &got) != SNAPPY_OK)
        return sl_errf(err, SL_EIO, "snappy compression failed");
    out->len = got;
    return 0;
}

/* Snappy's block format with literals only: the preamble (the length as a
 * varint), then each piece of at most 64 KiB as one literal (its length
 * - 1 in the tag, or in the one or two bytes after it), as snappy itself
 * writes data it cannot compress. Any snappy decoder (Loki's included) reads it; it
 * costs one copy instead of a compression on each side. */
#define STORED_PIECE 65536u

int sl_loki_snappy_stored(const void *in, size_t n, sl_buf *out, sl_err *err)
{
    if (n > UINT32_MAX)
        return sl_errf(err, SL_EINVAL, "%zu bytes are more than a snappy block holds", n);
    size_t max = 5 + n + (n / STORED_PIECE + 1) * 3;
    sl_buf_reset(out);
    if (buf_reserve(out, max))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for a Loki request", max);
    unsigned char *o = (unsigned char *)out->p;
    size_t k = 0;
    uint64_t v = n;
    for (; v >= 0x80; v >>= 7) o[k++] = (unsigned char)(v | 0x80);
    o[k++] = (unsigned char)v;
    for (size_t off = 0; off < n; off += STORED_PIECE) {
        size_t len = n - off < STORED_PIECE ? n - off : STORED_PIECE;
        size_t m = len - 1;
        if (m < 60) {
            o[k++] = (unsigned char)(m << 2);
        } else if (m < 256) {
            o[k++] = 60 << 2;
            o[k++] = (unsigned char)m;
        } else {
            o[k++] = 61 << 2;
            o[k++] = (unsigned char)(m & 0xff);
            o[k++] = (unsigned char)(m >> 8);
        }
        memcpy(o + k, (const char *)in + off, len);
        k += len;
    }
    out->len = k;
    return 0;
}

int sl_loki_gzip(const void *in, size_t n, sl_buf *out, sl_err *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* Level 1: logs compress well even at the fastest level, and the sink
     * must never be the bottleneck. 15 + 16 = gzip wrapper. */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return sl_errf(err, SL_ENOMEM, "gzip: deflateInit2 failed");
    sl_buf_reset(out);
    size_t bound = deflateBound(&z, (uLong)n) + 32;
    if (n > UINT32_MAX || buf_reserve(out, bound)) {
        deflateEnd(&z);
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for gzip", bound);
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->p;
    z.avail_out = (uInt)(bound > UINT32_MAX ? UINT32_MAX : bound);
    int rc = deflate(&z, Z_FINISH);
    out->len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) return sl_errf(err, SL_EIO, "gzip compression failed (%d)", rc);
    return 0;
}
