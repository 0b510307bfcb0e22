/* A stand-in for Loki's push endpoint, for tests and benchmarks: an HTTP/1.1
 * server on 127.0.0.1 that decodes what Loki accepts on
 * POST /loki/api/v1/push (snappy block + protobuf PushRequest, JSON, either
 * optionally gzip'd), records every entry, and fails on command. Written from
 * Loki's documented push API, independently of shipper/loki_encode.c, so a
 * test that passes through it checks the real wire format.
 *
 * Also built as the program `loki-receiver --port N --out FILE`. */
#ifndef SLUICE_TESTS_LOKI_RECEIVER_H
#define SLUICE_TESTS_LOKI_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- decoding (usable without a server) ---- */

typedef struct sl_lr_kv {
    char *name, *value;
} sl_lr_kv;

typedef struct sl_lr_entry {
    const char *labels; /* canonical `{a="x", b="y"}` of its stream (sorted pairs) */
    int64_t ts_ns;
    char *line;
    size_t line_n;
    sl_lr_kv *meta;
    uint32_t nmeta;
    char *tenant; /* X-Scope-OrgID of its request (server only; NULL when decoding) */
} sl_lr_entry;

typedef struct sl_lr_stream {
    char *labels; /* canonical label string */
    sl_lr_kv *pairs;
    uint32_t npairs;
    sl_lr_entry *entries; /* entries[i].labels == labels */
    size_t n;
} sl_lr_stream;

typedef struct sl_lr_push {
    sl_lr_stream *streams;
    size_t n;
} sl_lr_push;

/* Decodes a push body as Loki does: content_type "application/json" is JSON,
 * anything else (or NULL) protobuf with snappy block compression;
 * content_encoding "gzip" (or "deflate") is inflated first. Returns 0, or -1
 * with a message in err. */
int sl_lr_decode(const char *content_type, const char *content_encoding, const void *body, size_t n,
                 sl_lr_push *out, char *err, size_t errcap);
/* Decodes an uncompressed protobuf PushRequest. */
int sl_lr_decode_protobuf(const void *body, size_t n, sl_lr_push *out, char *err, size_t errcap);
void sl_lr_push_free(sl_lr_push *p);

/* The strict rules, for tests and fuzz targets that check an encoder's
 * output without a server: a valid label name ([a-zA-Z_][a-zA-Z0-9_]*), a
 * tenant Loki accepts. */
bool sl_lr_name_valid(const char *s);
bool sl_lr_tenant_valid(const char *t);
/* Decodes like sl_lr_decode and applies the strict label rules: -1 with a
 * message when a strict Loki would refuse the request as a whole. */
int sl_lr_decode_strict(const char *content_type, const char *content_encoding, const void *body,
                        size_t n, sl_lr_push *out, char *err, size_t errcap);

/* ---- the server ---- */

typedef struct sl_lr sl_lr;

typedef struct sl_lr_opts {
    int port;             /* 0: any free port */
    size_t max_body;      /* > 0: bodies larger than this get 413 */
    size_t max_line;      /* > 0: longer lines are rejected Loki-style (400, rest kept) */
    bool enforce_order;   /* entries older than their stream's newest: 400 out of order */
    const char *tenant;   /* when set, X-Scope-OrgID must equal it, else 401 */
    const char *auth;     /* when set, Authorization must equal it, else 401 */
    const char *out_path; /* when set, every entry is appended as a JSON line */
    bool discard;         /* count entries but do not keep them in memory */
    /* Refuse what a stock Loki (its default limits) refuses: a label set its
     * label parser rejects (invalid UTF-8, U+FFFD; here also any control
     * character, even escaped), over 15 names, names over 1024 or values
     * over 2048 bytes, or an invalid name: the whole request, 400; a
     * tenant outside [A-Za-z0-9!-_.*'()] or over 150: 400; per entry
     * (Loki-style 400 naming it, the rest kept): lines over max_line
     * (256000 when 0), times older than 1 week or over 10 minutes ahead,
     * invalid structured-metadata names. */
    bool strict;
    int delay_ms; /* > 0: a push not answered by a fault waits this long first */
} sl_lr_opts;

enum sl_lr_action {
    SL_LR_OK,       /* decode, record, 204 */
    SL_LR_STATUS,   /* answer `code` (Retry-After: param seconds when param > 0), record nothing */
    SL_LR_DROP,     /* read the request, close without answering */
    SL_LR_MIDCLOSE, /* send part of a 200 response, then close */
    SL_LR_STALL,    /* read the request, wait param ms, close without answering */
    SL_LR_GARBAGE,  /* answer bytes that are not HTTP, then close */
    SL_LR_HOSTILE,  /* a hostile answer of kind `code` (enum sl_lr_hostile), then close */
};

/* What a hostile destination answers (SL_LR_HOSTILE's code; param as said).
 * The streaming ones send until the client hangs up or the server stops;
 * the bytes sent are counted in hostile_bytes. HEAD_STALL, DRIP,
 * ENDLESS_CHUNKED, HEADER_FLOOD and HTTP09 record the push first (a Loki
 * that stored it, then misbehaved); HUGE records it when param is 0 (200). */
enum sl_lr_hostile {
    SL_LR_H_HEAD_STALL = 1,  /* 200 headers (Content-Length: 100), then nothing for param ms */
    SL_LR_H_DRIP,            /* 200, Content-Length: 100, the body 1 byte a second */
    SL_LR_H_ENDLESS_CHUNKED, /* 200 chunked, 64 KiB chunks without end */
    SL_LR_H_HUGE, /* status param (200 when 0), Content-Length: 1 GiB, sent at full speed */
    SL_LR_H_INFORMATIONAL, /* `102 Processing` answers without end, never a final one */
    SL_LR_H_REDIRECT,      /* 307, Location: http://127.0.0.1:<param>/loki/api/v1/push */
    SL_LR_H_HTTP09,        /* a body and no status line (HTTP/0.9) */
    SL_LR_H_BAD_STATUS,    /* `HTTP/1.1 20000000000000000000 OK` */
    SL_LR_H_HEADER_FLOOD,  /* a 200 status line, then header lines without end */
    SL_LR_H_RETRY_AFTER,   /* 503 with Retry-After: sl_lr_hostile_retry_after[param] */
};
/* Retry-After values no server should send: negative, past int64, a date
 * in year 9999, garbage, a number with a fraction. */
extern const char *const sl_lr_hostile_retry_after[];
#define SL_LR_HOSTILE_RETRY_AFTER_N 6

int sl_lr_start(const sl_lr_opts *o, sl_lr **out);
int sl_lr_port(const sl_lr *lr);
/* Stops the server and frees everything it recorded. */
void sl_lr_stop(sl_lr *lr);

/* Queues an action for the next `repeat` requests (after those queued). */
int sl_lr_fault(sl_lr *lr, int action, int code, int param, int repeat);
/* Queues actions from a spec: comma-separated `ok`, `500`, `429:2` (status
 * with Retry-After), `drop`, `midclose`, `stall:MS`, `garbage`, each with an
 * optional `*N` repeat. Returns -1 on a bad spec. */
int sl_lr_faults(sl_lr *lr, const char *spec);
/* When no queued action is left, fails a request with probability p with a
 * fault drawn from {500, 503, 429:1, drop, midclose, garbage}, from a
 * deterministic generator seeded with seed. p = 0 turns this off. */
void sl_lr_fault_rate(sl_lr *lr, double p, uint64_t seed);

typedef struct sl_lr_stats {
    uint64_t requests;         /* complete requests read */
    uint64_t accepted;         /* answered 2xx */
    uint64_t faults;           /* answered by an injected fault */
    uint64_t bad_requests;     /* bodies that did not decode (400) */
    uint64_t entries;          /* entries recorded */
    uint64_t rejected_entries; /* entries refused by max_line / enforce_order / strict */
    uint64_t strict_refused;   /* requests refused whole by the strict rules */
    uint64_t strict_rejected;  /* entries refused by the strict rules */
    uint64_t body_bytes;       /* body bytes of decoded requests */
    uint64_t unsorted_streams; /* streams whose entries were not in time order */
    uint64_t invalid_utf8;     /* strings that were not valid UTF-8 */
    uint64_t connections;
    uint64_t most_in_flight; /* with delay_ms: the most pushes waiting at once */
    uint64_t hostile_bytes;  /* bytes sent by SL_LR_HOSTILE answers */
    uint64_t by_code[600];   /* answers by HTTP status */
    char content_type[64], content_encoding[32], tenant[64], auth[128];
} sl_lr_stats;

void sl_lr_get_stats(sl_lr *lr, sl_lr_stats *st);
size_t sl_lr_nentries(sl_lr *lr);
/* Entries in arrival order; the pointer stays valid until sl_lr_stop. */
const sl_lr_entry *sl_lr_entry_at(sl_lr *lr, size_t i);

#endif
