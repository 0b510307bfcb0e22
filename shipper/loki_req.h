/* The Loki request's inside, shared by the three files that build and
 * write it: loki_encode.c (the request, records to entries), loki_streams.c
 * (label sets to streams) and loki_wire.c (protobuf, JSON, compression).
 * Building computes the protobuf sizes the writer relies on, so they share
 * the structures below. Internal: include it only from those three. */
#ifndef SLUICE_SHIPPER_LOKI_REQ_H
#define SLUICE_SHIPPER_LOKI_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "shipper/loki_encode.h"

/* ---- buffers ---- */

static inline int buf_reserve(sl_buf *b, size_t extra)
{
    return sl_buf_reserve(b, extra) == SL_OK ? 0 : -1;
}

static inline int buf_put(sl_buf *b, const void *p, size_t n)
{
    return sl_buf_append(b, p, n) == SL_OK ? 0 : -1;
}

#define BUF_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

/* ---- scratch memory with stable addresses ---- */

typedef struct sl_loki_scratch_block {
    char *p;
    size_t cap, used;
} sl_loki_scratch_block;

typedef struct sl_loki_scratch {
    sl_loki_scratch_block *v;
    size_t n, cap, cur;
} sl_loki_scratch;

/* A copy of p[0..n) in scratch: it keeps its address until the request is
 * reset. NULL when out of memory. */
const char *sl_loki_scratch_dup(sl_loki_scratch *s, const char *p, size_t n);

/* ---- the request model ---- */

typedef struct sl_loki_entry {
    int64_t ts;
    const char *line;
    uint32_t line_n;
    uint32_t seq;
    uint32_t meta_off, nmeta;
    uint32_t size; /* encoded EntryAdapter body */
} sl_loki_entry;

typedef struct sl_loki_stream {
    const char *labels; /* `{a="x", b="y"}` */
    uint32_t labels_n;
    uint32_t pair_off, npairs; /* sorted pairs in q->pairs, for JSON */
    uint64_t hash;
    sl_loki_entry *e;
    uint32_t n, cap;
    int64_t last_ts;
    bool unsorted;
    uint64_t body; /* encoded StreamAdapter body */
} sl_loki_stream;

struct sl_loki_req {
    const sl_loki_opts *o;
    sl_loki_scratch mem;
    sl_loki_stream *st;
    uint32_t nst, capst;
    uint32_t *tab; /* open addressing: stream index + 1, 0 = empty */
    uint32_t tabcap;
    sl_loki_kv *meta;
    uint32_t nmeta, capmeta;
    sl_loki_kv *pairs; /* label pairs of every sl_loki_stream */
    uint32_t npairs, cappairs;
    uint64_t nentries, nrecords, invalid;
    uint64_t adj[SL_LOKI_ADJ_N]; /* records per adjustment */
    uint64_t drop_old, drop_new; /* records outside the window, dropped */
    int64_t now_ns;              /* 0: no time window */
    const sl_loki_limits *lim;   /* o->limits or deflim */
    sl_loki_limits deflim;
    uint32_t label_adj;  /* adjustments of the label set being built */
    const char *tfilter; /* only this tenant (tenant templates), or NULL */
    size_t tfilter_n;
    sl_slice *tenants; /* distinct tenants seen, in sl_loki_scratch */
    uint32_t ntenants, captenants;
    uint32_t seq;
    /* temporaries */
    sl_loki_kv *tmp;
    uint32_t ntmp, captmp;
    sl_buf t1, t2, t3;
    /* Label sets of recent records of the batch being added, so records
     * with the same label fields skip building and hashing the string. */
    struct {
        uint64_t h;
        const sl_record *r;
        uint32_t stream;
        uint32_t adj; /* adjustments its label set needed */
    } sig[16];
    uint32_t nsig, sig_next;
    uint32_t part, nparts; /* add only streams whose hash % nparts == part */
};

#define GROW(arr, n, cap, min)                                                                     \
    ((n) < (cap) ? 0 : sl_loki_grow_array((void **)&(arr), &(cap), sizeof *(arr), (min)))

/* Doubles *cap (min when 0) and reallocates *arr; SL_ENOMEM when out of memory. */
int sl_loki_grow_array(void **arr, uint32_t *cap, size_t elem, uint32_t min);

static inline uint32_t varint_len(uint64_t v)
{
    uint32_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static inline uint32_t len_field(uint64_t n)
{
    return n ? 1 + varint_len(n) + (uint32_t)n : 0;
}

static inline void ts_split(int64_t ts, int64_t *sec, int32_t *nsec)
{
    int64_t s = ts / 1000000000;
    int64_t ns = ts % 1000000000;
    if (ns < 0) {
        ns += 1000000000;
        s--;
    }
    *sec = s;
    *nsec = (int32_t)ns;
}

static inline uint32_t ts_body(int64_t ts)
{
    int64_t s;
    int32_t ns;
    ts_split(ts, &s, &ns);
    return (s ? 1 + varint_len((uint64_t)s) : 0) + (ns ? 1 + varint_len((uint64_t)ns) : 0);
}

/* p escaped as a JSON string body into b; invalid UTF-8 becomes U+FFFD and
 * sets *bad. SL_ENOMEM when b cannot grow. */
int sl_loki_json_escape(const char *p, size_t n, sl_buf *b, bool *bad);

/* ---- label sets and streams (loki_streams.c) ---- */

/* A label or metadata name normalised as Loki does (loki_limits.h): s
 * itself when valid, else a copy in scratch (its length in q->t3.len) with
 * *changed set. NULL on allocation failure. */
const char *sl_loki_norm_name(sl_loki_req *q, sl_slice s, size_t max, bool *changed);
/* Adds a (name, value) label candidate to q->tmp; val_stable: val lives in
 * the batch or the options rather than in a temporary buffer. */
int sl_loki_tmp_label(sl_loki_req *q, sl_slice name, sl_slice val, bool val_stable);
/* Sorts q->tmp[from..] by name (stable) and keeps the last of equal names. */
void sl_loki_tmp_sort_dedup(sl_loki_req *q, uint32_t from);
/* Leaves at most max_label_names pairs in q->tmp[from..] (see the file). */
void sl_loki_tmp_cap(sl_loki_req *q, uint32_t from, uint32_t nbase);
/* Finds or creates the stream for the label pairs q->tmp[from..]. */
int sl_loki_stream_for(sl_loki_req *q, uint32_t from, const char *input, uint32_t *out);

#endif
