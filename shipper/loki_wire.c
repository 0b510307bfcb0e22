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

/* The protobuf is written through a window: all of it at once into the
 * output (sl_loki_req_protobuf), or 64 KiB at a time, each piece
 * compressed as soon as it is full (sl_loki_req_snappy), so the request's
 * text is never held uncompressed whole and snappy reads what was just
 * written, still in the cache. */
typedef struct pb_window pb_window;
struct pb_window {
    char *buf;
    size_t len, cap;
    /* Called with len == cap; empties the window. NULL: it never fills. */
    int (*flush)(pb_window *w);
};

static int wput(pb_window *w, const char *s, size_t n)
{
    while (n) {
        size_t k = w->cap - w->len < n ? w->cap - w->len : n;
        if (!k) return -1; /* full with no flush: the sizes were wrong */
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
        if (w->len == w->cap && w->flush && w->flush(w)) return -1;
    }
    return 0;
}

/* A tag and a length, then s: the length-delimited field, or nothing when
 * n is 0 (the protobuf default). */
static int wput_len(pb_window *w, uint8_t tag, const char *s, size_t n)
{
    if (!n) return 0;
    char h[11], *p = h;
    *p++ = (char)tag;
    p = put_varint(p, n);
    return wput(w, h, (size_t)(p - h)) || wput(w, s, n);
}

/* The PushRequest's size (the streams with entries). */
static uint64_t protobuf_size(sl_loki_req *q)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < q->nst; i++) {
        sl_loki_stream *st = &q->st[i];
        if (!st->n) continue;
        uint64_t sb = len_field(st->labels_n) + st->body;
        total += 1 + varint_len(sb) + sb;
    }
    return total;
}

/* Writes the PushRequest (sorted, sized) through w; -1 when a write does
 * not fit or a flush fails. */
static int protobuf_write(const sl_loki_req *q, pb_window *w)
{
    for (uint32_t i = 0; i < q->nst; i++) {
        const sl_loki_stream *st = &q->st[i];
        if (!st->n) continue;
        /* PushRequest.streams = 1 */
        char h[48], *p = h;
        *p++ = 0x0A;
        p = put_varint(p, len_field(st->labels_n) + st->body);
        /* StreamAdapter.labels = 1 */
        if (wput(w, h, (size_t)(p - h)) || wput_len(w, 0x0A, st->labels, st->labels_n)) return -1;
        for (uint32_t k = 0; k < st->n; k++) {
            const sl_loki_entry *e = &st->e[k];
            p = h;
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
            if (wput(w, h, (size_t)(p - h)) || wput_len(w, 0x12, e->line, e->line_n)) return -1;
            /* EntryAdapter.structuredMetadata = 3 {name = 1, value = 2} */
            for (uint32_t m = e->meta_off; m < e->meta_off + e->nmeta; m++) {
                const sl_loki_kv *kv = &q->meta[m];
                p = h;
                *p++ = 0x1A;
                p = put_varint(p, len_field(kv->name.n) + len_field(kv->value.n));
                if (wput(w, h, (size_t)(p - h)) || wput_len(w, 0x0A, kv->name.p, kv->name.n) ||
                    wput_len(w, 0x12, kv->value.p, kv->value.n))
                    return -1;
            }
        }
    }
    return 0;
}

int sl_loki_req_protobuf(sl_loki_req *q, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    uint64_t total = protobuf_size(q);
    if (total > SIZE_MAX / 2 || buf_reserve(out, (size_t)total))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %llu bytes for a Loki request",
                       (unsigned long long)total);
    pb_window w = {.buf = out->p + out->len, .cap = (size_t)total};
    if (protobuf_write(q, &w) || w.len != total)
        return sl_errf(err, SL_EINVAL, "internal: protobuf size mismatch (%llu != %llu)",
                       (unsigned long long)w.len, (unsigned long long)total);
    out->len += (size_t)total;
    return 0;
}

/* libsnappy compresses its input in independent fragments of 64 KiB
 * (kBlockSize) after one length varint, so compressing the protobuf a
 * piece of 64 KiB at a time and joining the pieces under the whole
 * length gives the bytes one snappy_compress call gives. */
#define SNAPPY_PIECE 65536u

typedef struct snappy_window {
    pb_window w;
    sl_buf *out;
    uint64_t done; /* protobuf bytes compressed */
} snappy_window;

/* Compresses the window's bytes onto the end of out: snappy writes the
 * piece's own length varint first, so it writes over the last bytes of
 * out, which are saved and put back. */
static int snappy_piece(pb_window *w)
{
    snappy_window *sw = (snappy_window *)w;
    sl_buf *out = sw->out;
    char pre[5], *pe = put_varint(pre, w->len);
    size_t plen = (size_t)(pe - pre);
    if (out->len < plen) return -1; /* out starts with the whole length, >= plen */
    char keep[5];
    memcpy(keep, out->p + out->len - plen, plen);
    size_t got = out->cap - (out->len - plen);
    if (snappy_compress(w->buf, w->len, out->p + out->len - plen, &got) != SNAPPY_OK ||
        got < plen || memcmp(out->p + out->len - plen, pre, plen) != 0)
        return -1;
    memcpy(out->p + out->len - plen, keep, plen);
    out->len += got - plen;
    sw->done += w->len;
    w->len = 0;
    return 0;
}

int sl_loki_req_snappy(sl_loki_req *q, sl_buf *window, sl_buf *out, sl_err *err)
{
    sort_streams(q);
    uint64_t total = protobuf_size(q);
    if (total > UINT32_MAX)
        return sl_errf(err, SL_EINVAL, "%llu bytes are more than a snappy block holds",
                       (unsigned long long)total);
    /* The whole length, then each piece at most its own bound. */
    size_t pieces = (size_t)((total + SNAPPY_PIECE - 1) / SNAPPY_PIECE);
    size_t max = 5 + pieces * snappy_max_compressed_length(SNAPPY_PIECE);
    sl_buf_reset(window);
    sl_buf_reset(out);
    if (buf_reserve(window, SNAPPY_PIECE) || buf_reserve(out, max))
        return sl_errf(err, SL_ENOMEM, "cannot allocate %zu bytes for a Loki request", max);
    out->len = (size_t)(put_varint(out->p, total) - out->p);
    snappy_window sw = {{.buf = window->p, .cap = SNAPPY_PIECE, .flush = snappy_piece}, out, 0};
    if (protobuf_write(q, &sw.w) || (sw.w.len && snappy_piece(&sw.w)))
        return sl_errf(err, SL_EIO, "snappy compression of a Loki request failed");
    if (sw.done != total)
        return sl_errf(err, SL_EINVAL, "internal: protobuf size mismatch (%llu != %llu)",
                       (unsigned long long)sw.done, (unsigned long long)total);
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
