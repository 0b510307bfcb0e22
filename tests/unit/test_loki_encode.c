/* Golden tests of the Loki encoder: batches go through the encoder and come
 * back out of the test receiver's independent decoder; tiny cases are
 * compared with protobuf bytes worked out by hand from push.proto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <snappy-c.h>

#include "core/batch.h"
#include "core/utf8.h"
#include "parsers/json.h"
#include "shipper/loki_encode.h"
#include "tests/loki_receiver.h"

#define S(s) ((sl_slice){(s), sizeof(s) - 1})

/* A batch built by hand: the encoder only reads the struct. */
typedef struct tbatch {
    sl_batch b;
    sl_record r[64];
    sl_field f[64][8];
    sl_field labels[8];
} tbatch;

static void tb_init(tbatch *t, const char *input)
{
    memset(t, 0, sizeof *t);
    t->b.records = t->r;
    t->b.input = input;
    t->b.labels = t->labels;
}

static sl_record *tb_rec(tbatch *t, const char *line, int64_t ts)
{
    uint32_t i = t->b.nrecords++;
    sl_record *r = &t->r[i];
    r->line = (sl_slice){line, strlen(line)};
    r->time_ns = ts;
    r->fields = t->f[i];
    return r;
}

static void tb_field(sl_record *r, const char *k, const char *v, int type, int flags)
{
    sl_field *f = &r->fields[r->nfields++];
    f->key = (sl_slice){k, strlen(k)};
    f->val = (sl_slice){v, strlen(v)};
    f->type = (uint8_t)type;
    f->flags = (uint8_t)flags;
}

static void tb_label(tbatch *t, const char *k, const char *v)
{
    sl_field *f = &t->labels[t->b.nlabels++];
    f->key = (sl_slice){k, strlen(k)};
    f->val = (sl_slice){v, strlen(v)};
    f->type = SL_V_STRING;
}

/* Encodes q as snappy protobuf and decodes it with the receiver. */
static void roundtrip_pb(sl_loki_req *q, sl_lr_push *out)
{
    sl_buf raw, z;
    sl_buf_init(&raw, 0);
    sl_buf_init(&z, 0);
    sl_err err;
    assert_int_equal(sl_loki_req_protobuf(q, &raw, &err), 0);
    assert_int_equal(sl_loki_snappy(raw.p, raw.len, &z, &err), 0);
    char msg[256] = "";
    int rc = sl_lr_decode("application/x-protobuf", NULL, z.p, z.len, out, msg, sizeof msg);
    if (rc) fail_msg("decode: %s", msg);
    sl_buf_free(&raw);
    sl_buf_free(&z);
}

static void roundtrip_json(sl_loki_req *q, bool gzip, sl_lr_push *out)
{
    sl_buf raw, z;
    sl_buf_init(&raw, 0);
    sl_buf_init(&z, 0);
    sl_err err;
    assert_int_equal(sl_loki_req_json(q, &raw, &err), 0);
    const sl_buf *body = &raw;
    if (gzip) {
        assert_int_equal(sl_loki_gzip(raw.p, raw.len, &z, &err), 0);
        body = &z;
    }
    char msg[256] = "";
    int rc = sl_lr_decode("application/json", gzip ? "gzip" : NULL, body->p, body->len, out, msg,
                          sizeof msg);
    if (rc) fail_msg("decode: %s (%.*s)", msg, (int)(raw.len > 300 ? 300 : raw.len), raw.p);
    sl_buf_free(&raw);
    sl_buf_free(&z);
}

static const sl_lr_stream *find_stream(const sl_lr_push *p, const char *labels)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->streams[i].labels, labels)) return &p->streams[i];
    return NULL;
}

static void assert_entry(const sl_lr_entry *e, int64_t ts, const char *line)
{
    assert_int_equal(e->ts_ns, ts);
    assert_int_equal(e->line_n, strlen(line));
    assert_memory_equal(e->line, line, e->line_n);
}

static const char *meta_get(const sl_lr_entry *e, const char *name)
{
    for (uint32_t i = 0; i < e->nmeta; i++)
        if (!strcmp(e->meta[i].name, name)) return e->meta[i].value;
    return NULL;
}

/* The golden batch: config labels, batch labels, record labels overriding
 * them, metadata by flag and by name, escapes, invalid UTF-8, unsorted and
 * tied timestamps. */
static void golden_batch(tbatch *t)
{
    tb_init(t, "app");
    tb_label(t, "job", "app");
    tb_label(t, "env", "batch"); /* overrides the config's env */
    sl_record *r;
    r = tb_rec(t, "third", 3000000002);
    tb_field(r, "level", "info", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "trace_id", "abc", SL_V_STRING, SL_FF_METADATA);
    r = tb_rec(t, "first", 1000000001);
    tb_field(r, "level", "info", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "user", "x\\\"y\\u00e9", SL_V_ESCAPED, 0); /* metadata by config name */
    r = tb_rec(t, "no level", 2000000000);
    r = tb_rec(t, "tie-a", 2000000000);
    r = tb_rec(t, "bad \xff\xfe utf8", 1500000000);
    r = tb_rec(t, "err", 5);
    /* the newline is a control byte Loki's label parser refuses: sent as '?' */
    tb_field(r, "level", "error \"quoted\"\n", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "env", "rec", SL_V_STRING, SL_FF_LABEL);
    r = tb_rec(t, "dropped", 7);
    r->flags = SL_RF_DROPPED;
    r = tb_rec(t, "removed label", 9);
    tb_field(r, "level", "gone", SL_V_STRING, SL_FF_LABEL | SL_FF_REMOVED);
}

static const sl_loki_kv cfg_labels[] = {
    {{"cluster", 7}, {"lab", 3}},
    {{"env", 3}, {"cfg", 3}},
};
static const sl_slice cfg_meta[] = {{"user", 4}};

static void check_golden(const sl_lr_push *p)
{
    assert_int_equal(p->n, 3);
    const sl_lr_stream *info = find_stream(p, "{cluster=\"lab\", env=\"batch\", job=\"app\", "
                                              "level=\"info\"}");
    const sl_lr_stream *base = find_stream(p, "{cluster=\"lab\", env=\"batch\", job=\"app\"}");
    const sl_lr_stream *err = find_stream(p, "{cluster=\"lab\", env=\"rec\", job=\"app\", "
                                             "level=\"error \\\"quoted\\\"?\"}");
    assert_non_null(info);
    assert_non_null(base);
    assert_non_null(err);

    assert_int_equal(info->n, 2);
    assert_entry(&info->entries[0], 1000000001, "first");
    assert_entry(&info->entries[1], 3000000002, "third");
    assert_string_equal(meta_get(&info->entries[0], "user"), "x\"y\xc3\xa9");
    assert_int_equal(info->entries[0].nmeta, 1);
    assert_string_equal(meta_get(&info->entries[1], "trace_id"), "abc");

    assert_int_equal(base->n, 4);
    assert_entry(&base->entries[0], 9, "removed label");
    assert_entry(&base->entries[1], 1500000000, "bad \xef\xbf\xbd\xef\xbf\xbd utf8");
    assert_entry(&base->entries[2], 2000000000, "no level"); /* stable among ties */
    assert_entry(&base->entries[3], 2000000000, "tie-a");
    for (size_t i = 0; i < base->n; i++) assert_int_equal(base->entries[i].nmeta, 0);

    assert_int_equal(err->n, 1);
    assert_entry(&err->entries[0], 5, "err");
}

static void test_golden_protobuf(void **state)
{
    (void)state;
    tbatch t;
    golden_batch(&t);
    sl_loki_opts o = {
        .labels = cfg_labels, .nlabels = 2, .meta_fields = cfg_meta, .nmeta_fields = 1};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, t.b.nrecords, &err), 0);
    assert_int_equal(sl_loki_req_entries(q), 7);
    assert_int_equal(sl_loki_req_invalid_utf8(q), 1);
    sl_lr_push p;
    roundtrip_pb(q, &p);
    check_golden(&p);
    sl_lr_push_free(&p);

    /* The same request after a reset encodes the same way. */
    sl_loki_req_reset(q);
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 3, &err), 0);
    assert_int_equal(sl_loki_req_add(q, &t.b, 3, t.b.nrecords - 3, &err), 0);
    roundtrip_pb(q, &p);
    check_golden(&p);
    sl_lr_push_free(&p);
    sl_loki_req_free(q);
}

static void test_golden_json(void **state)
{
    (void)state;
    tbatch t;
    golden_batch(&t);
    sl_loki_opts o = {
        .labels = cfg_labels, .nlabels = 2, .meta_fields = cfg_meta, .nmeta_fields = 1};
    for (int gz = 0; gz < 2; gz++) {
        sl_loki_req *q = sl_loki_req_new(&o);
        sl_err err;
        assert_int_equal(sl_loki_req_add(q, &t.b, 0, t.b.nrecords, &err), 0);
        sl_lr_push p;
        roundtrip_json(q, gz, &p);
        check_golden(&p);
        sl_lr_push_free(&p);
        sl_loki_req_free(q);
    }
}

/* Bytes derived by hand from push.proto for {job="a"} 1.5 s "hi". */
static void test_fixed_bytes(void **state)
{
    (void)state;
    static const unsigned char want[] = {
        0x0A, 0x1B,                                                  /* streams, 27 bytes */
        0x0A, 0x09, '{',  'j',  'o',  'b',  '=', '"', 'a', '"', '}', /* labels */
        0x12, 0x0E,                                                  /* entries, 14 bytes */
        0x0A, 0x08,                                                  /* timestamp, 8 bytes */
        0x08, 0x01,                                                  /* seconds = 1 */
        0x10, 0x80, 0xCA, 0xB5, 0xEE, 0x01,                          /* nanos = 500000000 */
        0x12, 0x02, 'h',  'i',                                       /* line */
    };
    tbatch t;
    tb_init(&t, "in");
    tb_label(&t, "job", "a");
    tb_rec(&t, "hi", 1500000000);
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 1, &err), 0);
    sl_buf raw;
    sl_buf_init(&raw, 0);
    assert_int_equal(sl_loki_req_protobuf(q, &raw, &err), 0);
    assert_int_equal(raw.len, sizeof want);
    assert_memory_equal(raw.p, want, sizeof want);

    /* With one structured metadata pair and an empty line: the empty string
     * is the proto3 default and is left out. */
    static const unsigned char want2[] = {
        0x0A, 0x22, 0x0A, 0x09, '{',  'j', 'o', 'b', '=', '"',
        'a',  '"',  '}',  0x12, 0x15,                          /* entry, 21 bytes */
        0x0A, 0x02, 0x08, 0x02,                                /* timestamp {seconds = 2} */
        0x1A, 0x0F,                                            /* structuredMetadata, 15 bytes */
        0x0A, 0x08, 't',  'r',  'a',  'c', 'e', '_', 'i', 'd', /* name */
        0x12, 0x03, 'x',  'y',  'z',                           /* value */
    };
    tb_init(&t, "in");
    tb_label(&t, "job", "a");
    sl_record *r = tb_rec(&t, "", 2000000000);
    tb_field(r, "trace_id", "xyz", SL_V_STRING, SL_FF_METADATA);
    sl_loki_req_reset(q);
    raw.len = 0;
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 1, &err), 0);
    assert_int_equal(sl_loki_req_protobuf(q, &raw, &err), 0);
    assert_int_equal(raw.len, sizeof want2);
    assert_memory_equal(raw.p, want2, sizeof want2);

    /* Snappy output is a raw block (no framing): uncompressed length first. */
    sl_buf z;
    sl_buf_init(&z, 0);
    assert_int_equal(sl_loki_snappy(raw.p, raw.len, &z, &err), 0);
    assert_int_equal((unsigned char)z.p[0], sizeof want2);
    sl_buf_free(&z);
    sl_buf_free(&raw);
    sl_loki_req_free(q);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
        long reps;
    } cases[] = {
        {"plain", 5, "plain", 0},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 0},
        {"a\xff"
         "b",
         3,
         "a\xef\xbf\xbd"
         "b",
         1},
        {"\xe2\x82", 2, "\xef\xbf\xbd", 1}, /* truncated: one */
        {"\xe2\x82z", 3, "\xef\xbf\xbdz", 1},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3}, /* surrogate */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 2},                 /* overlong */
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
         4}, /* > U+10FFFF */
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 1},
        {"nul\0ok", 6, "nul\0ok", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_buf b;
        sl_buf_init(&b, 0);
        long r = sl_loki_utf8_sanitize(cases[i].in, cases[i].n, &b);
        assert_int_equal(r, cases[i].reps);
        assert_int_equal(sl_utf8_valid(cases[i].in, cases[i].n), cases[i].reps == 0);
        size_t on = strlen(cases[i].out);
        if (i == 9) on = 6;
        assert_int_equal(b.len, on);
        assert_memory_equal(b.p, cases[i].out, on);
        assert_true(sl_utf8_valid(b.p, b.len));
        sl_buf_free(&b);
    }
    /* Long ASCII runs with a bad byte at every position of the fast path. */
    char buf[40];
    for (size_t pos = 0; pos < sizeof buf; pos++) {
        memset(buf, 'x', sizeof buf);
        buf[pos] = (char)0x80;
        assert_false(sl_utf8_valid(buf, sizeof buf));
    }
}

/* The same garbage line through the Loki repair: one pass, not one per bad
 * byte (which was quadratic). */
static void test_utf8_sanitize_hostile_line(void **state)
{
    (void)state;
    size_t n = 8u << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++) in[i] = i % 2 ? 'a' : (char)0xff;
    sl_buf b;
    sl_buf_init(&b, 0);
    assert_int_equal(sl_loki_utf8_sanitize(in, n, &b), (long)(n / 2));
    assert_int_equal(b.len, n / 2 * 4);
    assert_true(sl_utf8_valid(b.p, b.len));
    sl_buf_free(&b);
    free(in);
}

static void test_labels_sanitized(void **state)
{
    (void)state;
    tbatch t;
    tb_init(&t, "my-input");
    sl_record *r = tb_rec(&t, "a", 1);
    tb_field(r, "k8s.pod-name", "p1", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "1st", "v", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "empty", "", SL_V_STRING, SL_FF_LABEL); /* empty values are no label */
    tb_field(r, "n", "42", SL_V_NUMBER, SL_FF_LABEL);
    tb_rec(&t, "b", 2); /* no labels at all: falls back to job=<input> */
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 2, &err), 0);
    sl_lr_push p;
    roundtrip_pb(q, &p);
    assert_int_equal(p.n, 2);
    const sl_lr_stream *s1 = find_stream(&p, "{k8s_pod_name=\"p1\", key_1st=\"v\", n=\"42\"}");
    const sl_lr_stream *s2 = find_stream(&p, "{job=\"my-input\"}");
    assert_non_null(s1);
    assert_non_null(s2);
    assert_entry(&s1->entries[0], 1, "a");
    assert_entry(&s2->entries[0], 2, "b");
    sl_lr_push_free(&p);
    sl_loki_req_free(q);
}

static void test_json_line_format(void **state)
{
    (void)state;
    tbatch t;
    tb_init(&t, "in");
    tb_label(&t, "job", "j");
    sl_record *r = tb_rec(&t, "raw text", 10);
    tb_field(r, "msg", "he said \"hi\"\tok", SL_V_STRING, 0);
    tb_field(r, "esc", "a\\nb", SL_V_ESCAPED, 0);
    tb_field(r, "n", "1.5", SL_V_NUMBER, 0);
    tb_field(r, "t", "", SL_V_TRUE, 0);
    tb_field(r, "z", "", SL_V_NULL, 0);
    tb_field(r, "o", "{\"a\":[1,2]}", SL_V_OBJECT, 0);
    tb_field(r, "gone", "x", SL_V_STRING, SL_FF_REMOVED);
    tb_field(r, "lvl", "warn", SL_V_STRING, SL_FF_LABEL);
    tb_rec(&t, "unparsed \xff", 11); /* no fields: the raw line */
    sl_loki_opts o = {.line_format = SL_LOKI_LINE_JSON};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 2, &err), 0);
    sl_lr_push p;
    roundtrip_pb(q, &p);
    const sl_lr_stream *s = find_stream(&p, "{job=\"j\", lvl=\"warn\"}");
    assert_non_null(s);
    assert_entry(&s->entries[0], 10,
                 "{\"msg\":\"he said \\\"hi\\\"\\tok\",\"esc\":\"a\\nb\",\"n\":1.5,\"t\":true,"
                 "\"z\":null,\"o\":{\"a\":[1,2]},\"lvl\":\"warn\"}");
    s = find_stream(&p, "{job=\"j\"}");
    assert_non_null(s);
    assert_entry(&s->entries[0], 11, "unparsed \xef\xbf\xbd");
    sl_lr_push_free(&p);
    sl_loki_req_free(q);
}

/* Many records over several streams, random times: every record comes back
 * exactly once, in its stream, in time order, stable among equal times. */
static void test_random_roundtrip(void **state)
{
    (void)state;
    enum { N = 20000 };
    sl_batch b;
    memset(&b, 0, sizeof b);
    sl_record *recs = calloc(N, sizeof *recs);
    sl_field *fields = calloc(N, sizeof *fields);
    char(*lines)[32] = calloc(N, sizeof *lines);
    assert_non_null(recs);
    assert_non_null(fields);
    assert_non_null(lines);
    static const char *levels[] = {"debug", "info", "warn", "error"};
    uint64_t x = 42;
    for (uint32_t i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(lines[i], sizeof lines[i], "seq=%u", i);
        recs[i].line = (sl_slice){lines[i], strlen(lines[i])};
        recs[i].time_ns = (int64_t)((x >> 33) % 1000) * 1000;
        const char *lv = levels[(x >> 20) % 4];
        fields[i] = (sl_field){{"level", 5}, {lv, strlen(lv)}, SL_V_STRING, SL_FF_LABEL};
        recs[i].fields = &fields[i];
        recs[i].nfields = 1;
    }
    b.records = recs;
    b.nrecords = N;
    b.input = "rnd";
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &b, 0, N / 2, &err), 0);
    assert_int_equal(sl_loki_req_add(q, &b, N / 2, N - N / 2, &err), 0);
    assert_int_equal(sl_loki_req_streams(q), 5); /* 4 levels + the unused base */
    sl_lr_push p;
    roundtrip_pb(q, &p);
    assert_int_equal(p.n, 4);
    unsigned char *seen = calloc(N, 1);
    size_t total = 0;
    for (size_t s = 0; s < p.n; s++) {
        const sl_lr_stream *st = &p.streams[s];
        long prev_seq = -1;
        int64_t prev_ts = INT64_MIN;
        for (size_t i = 0; i < st->n; i++) {
            unsigned seq;
            assert_int_equal(sscanf(st->entries[i].line, "seq=%u", &seq), 1);
            assert_true(seq < N);
            assert_false(seen[seq]);
            seen[seq] = 1;
            total++;
            assert_int_equal(st->entries[i].ts_ns, recs[seq].time_ns);
            char want[64];
            snprintf(want, sizeof want, "{level=\"%.*s\"}", (int)fields[seq].val.n,
                     fields[seq].val.p);
            assert_string_equal(st->labels, want);
            assert_true(st->entries[i].ts_ns >= prev_ts);
            if (st->entries[i].ts_ns == prev_ts) assert_true((long)seq > prev_seq);
            prev_ts = st->entries[i].ts_ns;
            prev_seq = seq;
        }
    }
    assert_int_equal(total, N);
    sl_lr_push_free(&p);

    /* JSON agrees. */
    roundtrip_json(q, true, &p);
    size_t jt = 0;
    for (size_t s = 0; s < p.n; s++) jt += p.streams[s].n;
    assert_int_equal(jt, N);
    sl_lr_push_free(&p);
    sl_loki_req_free(q);
    free(seen);
    free(recs);
    free(fields);
    free(lines);
}

/* sl_loki_req_add fetches the fields of records a few ahead into the cache
 * (LOKI_FIELDS_AHEAD): ranges that end within that distance, records with
 * no fields and records with more fields than it fetches keep their own
 * labels, and nothing past the range is read (the records array is exactly
 * as long as the batch, so the sanitizers see a read past it). */
/* sl_loki_req_snappy (64 KiB pieces compressed as they fill) gives the
 * bytes sl_loki_req_protobuf + sl_loki_snappy give: requests from empty to
 * ~2 MiB, entries larger than a piece, entries and label sets across piece
 * boundaries, metadata, several streams, protobufs of exactly 64 KiB and
 * its neighbours; the receiver decodes what it wrote. */
static void check_req_snappy(sl_loki_req *q, sl_buf *win, sl_buf *got)
{
    sl_buf raw, want;
    sl_buf_init(&raw, 0);
    sl_buf_init(&want, 0);
    sl_err err;
    assert_int_equal(sl_loki_req_protobuf(q, &raw, &err), 0);
    assert_int_equal(sl_loki_snappy(raw.p, raw.len, &want, &err), 0);
    assert_int_equal(sl_loki_req_snappy(q, win, got, &err), 0);
    assert_int_equal(got->len, want.len);
    assert_memory_equal(got->p, want.p, want.len);
    assert_true(win->cap <= 2 * 65536 + 1); /* the window never held the request */
    sl_buf_free(&raw);
    sl_buf_free(&want);
}

static void test_req_snappy_same_bytes(void **state)
{
    (void)state;
    size_t most = 300000;
    char *text = malloc(most + 1);
    assert_non_null(text);
    static const char *words[] = {"cache ",   "expired ", "r\xc3\xa9sum\xc3\xa9 ", "{\"k\":",
                                  "timeout ", "42 ",      "\"GET /api\" "};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < most;) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x % 4 == 0) { /* incompressible stretches too */
            text[i++] = (char)(33 + (x >> 8) % 90);
            continue;
        }
        const char *w = words[(x >> 16) % 7];
        for (; *w && i < most; w++) text[i++] = *w;
    }
    text[most] = '\0';
    char *lines[64];
    for (int i = 0; i < 64; i++) lines[i] = NULL;
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_buf win, got;
    sl_buf_init(&win, 0);
    sl_buf_init(&got, 0);
    tbatch *t = malloc(sizeof *t);
    assert_non_null(t);
    sl_err err;

    /* Random requests: 0-64 records of 0-150,000 bytes. */
    for (int round = 0; round < 40; round++) {
        tb_init(t, "in");
        tb_label(t, "job", "a");
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t n = (uint32_t)(x % 65);
        for (uint32_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t len = x % 8 == 0 ? (size_t)(x >> 20) % 150000 : (size_t)(x >> 20) % 3000;
            size_t at = (size_t)(x >> 40) % (most - len);
            free(lines[i]);
            lines[i] = strndup(text + at, len);
            assert_non_null(lines[i]);
            sl_record *r = tb_rec(t, lines[i], 1700000000000000000LL + (int64_t)(x % 1000000));
            if (x & 0x100)
                tb_field(r, "level", (x & 0x200) ? "info" : "warn", SL_V_STRING, SL_FF_LABEL);
            if (x & 0x400) tb_field(r, "trace_id", "4bf92f3577b34da6", SL_V_STRING, SL_FF_METADATA);
        }
        sl_loki_req_reset(q);
        assert_int_equal(sl_loki_req_add(q, &t->b, 0, n, &err), 0);
        check_req_snappy(q, &win, &got);
        if (round == 0 || round == 39) {
            sl_lr_push p;
            memset(&p, 0, sizeof p);
            char msg[256] = "";
            if (sl_lr_decode("application/x-protobuf", NULL, got.p, got.len, &p, msg, sizeof msg))
                fail_msg("decode: %s", msg);
            uint64_t entries = 0;
            for (size_t s = 0; s < p.n; s++) entries += p.streams[s].n;
            assert_int_equal(entries, sl_loki_req_entries(q));
            sl_lr_push_free(&p);
        }
    }

    /* One entry whose protobuf is 65,536 bytes, and its neighbours; then
     * 131,072 (two full pieces). */
    static const size_t targets[] = {65534, 65535, 65536, 65537, 65538, 131071, 131072, 131073};
    size_t exact = 0;
    for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
        size_t len = targets[k] - 40;
        for (int tries = 0; tries < 3; tries++) {
            tb_init(t, "in");
            tb_label(t, "job", "a");
            free(lines[0]);
            lines[0] = strndup(text, len);
            tb_rec(t, lines[0], 1700000000123456789LL);
            sl_loki_req_reset(q);
            assert_int_equal(sl_loki_req_add(q, &t->b, 0, 1, &err), 0);
            sl_buf raw;
            sl_buf_init(&raw, 0);
            assert_int_equal(sl_loki_req_protobuf(q, &raw, &err), 0);
            size_t size = raw.len;
            sl_buf_free(&raw);
            if (size != targets[k]) { /* the varints' sizes: adjust once more */
                len = len + targets[k] - size;
                continue;
            }
            check_req_snappy(q, &win, &got);
            exact++;
            break;
        }
    }
    assert_int_equal(exact, sizeof targets / sizeof *targets);
    for (int i = 0; i < 64; i++) free(lines[i]);
    free(t);
    free(text);
    sl_buf_free(&win);
    sl_buf_free(&got);
    sl_loki_req_free(q);
}

static void test_fields_ahead_edges(void **state)
{
    (void)state;
    enum { N = 11, WIDE = 40 }; /* 40 fields: more than the bytes fetched */
    sl_batch b;
    memset(&b, 0, sizeof b);
    sl_record *recs = calloc(N, sizeof *recs);
    sl_field *fields = calloc((size_t)N * WIDE, sizeof *fields);
    char(*lines)[16] = calloc(N, sizeof *lines);
    assert_non_null(recs);
    assert_non_null(fields);
    assert_non_null(lines);
    static const char *levels[] = {"a", "b", "c"};
    for (uint32_t i = 0; i < N; i++) {
        snprintf(lines[i], sizeof lines[i], "seq=%u", i);
        recs[i].line = (sl_slice){lines[i], strlen(lines[i])};
        recs[i].time_ns = 1000 + i;
        sl_field *f = &fields[(size_t)i * WIDE];
        uint32_t nf = i % 3 == 0 ? WIDE : i % 3 == 1 ? 1 : 2;
        for (uint32_t k = 0; k < nf; k++) f[k] = (sl_field){{"x", 1}, {"y", 1}, SL_V_STRING, 0};
        /* The label last: every field's flags are read to find it. */
        f[nf - 1] = (sl_field){{"level", 5}, {levels[i % 3], 1}, SL_V_STRING, SL_FF_LABEL};
        recs[i].fields = f;
        recs[i].nfields = nf;
    }
    b.records = recs;
    b.nrecords = N;
    b.input = "edges";
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    /* Ranges shorter than, equal to and longer than the distance. */
    assert_int_equal(sl_loki_req_add(q, &b, 0, 1, &err), 0);
    assert_int_equal(sl_loki_req_add(q, &b, 1, 4, &err), 0);
    assert_int_equal(sl_loki_req_add(q, &b, 5, 6, &err), 0);
    sl_lr_push p;
    roundtrip_pb(q, &p);
    assert_int_equal(p.n, 3);
    size_t total = 0;
    for (size_t s = 0; s < p.n; s++) {
        for (size_t i = 0; i < p.streams[s].n; i++) {
            unsigned seq;
            assert_int_equal(sscanf(p.streams[s].entries[i].line, "seq=%u", &seq), 1);
            assert_true(seq < N);
            char want[32];
            snprintf(want, sizeof want, "{level=\"%s\"}", levels[seq % 3]);
            assert_string_equal(p.streams[s].labels, want);
            total++;
        }
    }
    assert_int_equal(total, N);
    sl_lr_push_free(&p);
    sl_loki_req_free(q);
    free(recs);
    free(fields);
    free(lines);
}

static void test_bad_range(void **state)
{
    (void)state;
    tbatch t;
    tb_init(&t, "in");
    tb_rec(&t, "x", 1);
    sl_loki_opts o = {0};
    sl_loki_req *q = sl_loki_req_new(&o);
    sl_err err;
    assert_int_equal(sl_loki_req_add(q, &t.b, 1, 1, &err), SL_EINVAL);
    assert_int_equal(sl_loki_req_add(q, &t.b, 0, 2, &err), SL_EINVAL);
    sl_loki_req_free(q);
}

/* The receiver's decoder must reject hostile bytes cleanly. */
static void test_decoder_rejects(void **state)
{
    (void)state;
    static const unsigned char bad[][6] = {
        {0x0A, 0x7F, 0, 0, 0, 0},             /* length past the end */
        {0x0A, 0x02, 0x12, 0x05, 0, 0},       /* nested length past the end */
        {0x0B, 0, 0, 0, 0, 0},                /* group wire type */
        {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, /* unterminated varint */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_lr_push p;
        char msg[128];
        assert_int_equal(sl_lr_decode_protobuf(bad[i], sizeof bad[i], &p, msg, sizeof msg), -1);
    }
    sl_lr_push p;
    char msg[128];
    /* A stream without labels is refused, as Loki does. */
    static const unsigned char nolab[] = {0x0A, 0x04, 0x12, 0x02, 0x12, 0x00};
    assert_int_equal(sl_lr_decode_protobuf(nolab, sizeof nolab, &p, msg, sizeof msg), -1);
    assert_int_equal(
        sl_lr_decode("application/x-protobuf", NULL, "nonsense", 8, &p, msg, sizeof msg), -1);
    assert_int_equal(
        sl_lr_decode("application/json", NULL, "{\"streams\":[{}]}", 16, &p, msg, sizeof msg), -1);
}

/* ---- loki_limits: Loki's rules one by one ---- */

static void norm(const char *in, const char *want, int changed)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    assert_int_equal(sl_loki_name_normalize(in, strlen(in), 12, &b), changed);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    sl_buf_free(&b);
}

static void test_limits_names(void **state)
{
    (void)state;
    norm("level", "level", 0);
    norm("k8s.pod", "k8s_pod", 1);
    norm("1st", "key_1st", 1);
    norm("team a/\xce\xb2", "team_a__", 1); /* one '_' per character */
    norm("bad\xff", "bad_", 1);
    norm("a_very_long_name", "a_very_long_", 1); /* cut to max (12) */
    norm("", "", 0);
    assert_true(sl_loki_name_valid("_x1", 3));
    assert_false(sl_loki_name_valid("1x", 2));
    assert_false(sl_loki_name_valid("", 0));
}

static void value(const char *in, size_t n, size_t max, const char *want, int adj)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    assert_int_equal(sl_loki_label_value(in, n, max, &b), adj);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    assert_true(sl_loki_label_value_ok(b.p, b.len, max));
    sl_buf_free(&b);
}

static void test_limits_label_values(void **state)
{
    (void)state;
    const int inv = 1 << SL_LOKI_ADJ_LABEL_VALUE_INVALID,
              lng = 1 << SL_LOKI_ADJ_LABEL_VALUE_TOO_LONG;
    value("caf\xc3\xa9", 5, 0, "caf\xc3\xa9", 0);
    value("ab\xff"
          "cd",
          5, 0, "ab?cd", inv);
    value("\xef\xbf\xbd", 3, 0, "?", inv);      /* U+FFFD itself */
    value("a\0b\n\t\x7f", 6, 0, "a?b???", inv); /* NUL, controls, DEL */
    value("\xe2\x82", 2, 0, "?", inv);          /* cut short: one maximal subpart */
    value("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 5, "\xc3\xa9\xc3\xa9", lng); /* cut on a boundary */
    value("\xff\xff\xff", 3, 2, "??", inv | lng);
    assert_false(sl_loki_label_value_ok("abc", 3, 2));
    assert_int_equal(sl_loki_utf8_cut("a\xc3\xa9", 3, 2), 1);
    assert_int_equal(sl_loki_utf8_cut("a\xc3\xa9", 3, 3), 3);
}

static void test_limits_tenant(void **state)
{
    (void)state;
    char why[200];
    static const char *good[] = {"a", "team-a_(1)", "x.y*z'!", "fake"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(sl_loki_tenant_check(good[i], strlen(good[i]), why, sizeof why), 0);
    static const char *bad[] = {"",    ".",  "..", "a b", "a\r\nX-Injected: 1", "team/\xce\xb2",
                                "a|b", "a:b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sl_loki_tenant_check(bad[i], strlen(bad[i]), why, sizeof why), SL_EINVAL);
    assert_int_equal(sl_loki_tenant_check("a\nb", 3, why, sizeof why), SL_EINVAL);
    assert_non_null(strstr(why, "inject"));
    char longt[151];
    memset(longt, 'a', sizeof longt);
    assert_int_equal(sl_loki_tenant_check(longt, 150, why, sizeof why), 0);
    assert_int_equal(sl_loki_tenant_check(longt, 151, why, sizeof why), SL_EINVAL);

    sl_loki_tpl *t;
    assert_int_equal(sl_loki_tpl_parse("${labels.team:-ops}-${input}", &t, why, sizeof why), 0);
    assert_true(sl_loki_tpl_per_record(t));
    tbatch tb;
    tb_init(&tb, "in");
    sl_record *r = tb_rec(&tb, "x", 1);
    tb_field(r, "team", "a b", SL_V_STRING, SL_FF_LABEL);
    sl_record *r2 = tb_rec(&tb, "y", 2);
    sl_buf b;
    sl_buf_init(&b, 0);
    assert_int_equal(sl_loki_tpl_render(t, &tb.b, r, &b), 1);
    assert_string_equal(b.p, "a_b-in");
    assert_int_equal(sl_loki_tpl_render(t, &tb.b, r2, &b), 0);
    assert_string_equal(b.p, "ops-in");
    sl_buf_free(&b);
    sl_loki_tpl_free(t);
    assert_int_equal(sl_loki_tpl_parse("${labels.team}", &t, why, sizeof why), SL_EINVAL);
    assert_non_null(strstr(why, "default"));
    assert_int_equal(sl_loki_tpl_parse("${nope:-x}", &t, why, sizeof why), SL_EINVAL);
    assert_int_equal(sl_loki_tpl_parse("a b${input}", &t, why, sizeof why), SL_EINVAL);
}

static void test_limits_window(void **state)
{
    (void)state;
    sl_loki_limits l;
    sl_loki_limits_default(&l);
    const int64_t s = 1000000000LL, now = 1800000000LL * s;
    int64_t out = 0;
    assert_int_equal(sl_loki_window_check(&l, now, now, &out), 0);
    assert_int_equal(sl_loki_window_check(&l, now, now - 7 * 86400 * s + s, &out), 0);
    assert_int_equal(sl_loki_window_check(&l, now, now - 8 * 86400 * s, &out),
                     SL_LOKI_ADJ_TS_TOO_OLD);
    assert_int_equal(out, now - 7 * 86400 * s + 60 * s);
    assert_int_equal(sl_loki_window_check(&l, now, INT64_MIN, &out), SL_LOKI_ADJ_TS_TOO_OLD);
    assert_int_equal(sl_loki_window_check(&l, now, now + 10 * 60 * s, &out), 0);
    assert_int_equal(sl_loki_window_check(&l, now, INT64_MAX, &out), SL_LOKI_ADJ_TS_TOO_NEW);
    assert_int_equal(out, now);
    assert_int_equal(sl_loki_window_check(&l, 0, INT64_MIN, &out), 0); /* no clock: off */
    char t[48];
    sl_loki_rfc3339(-2208988800LL * s + 5, t, sizeof t);
    assert_string_equal(t, "1900-01-01T00:00:00.000000005Z");
}

/* `compression: none` with protobuf: snappy's stored form (literals only)
 * is what libsnappy decodes back to the same bytes, at every literal
 * length encoding (in the tag, one byte, two bytes) and across the 64 KiB
 * pieces; its size is the input's plus a few bytes per piece. */
static void test_snappy_stored(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,   1,     59,    60,    61,     255,    256,
                                   257, 65535, 65536, 65537, 131072, 200001, 1 << 20};
    size_t most = 1 << 20;
    char *in = malloc(most), *back = malloc(most);
    assert_non_null(in);
    assert_non_null(back);
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < most; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        in[i] = (char)x;
    }
    sl_buf z;
    sl_buf_init(&z, 0);
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        size_t n = sizes[t];
        sl_err err;
        assert_int_equal(sl_loki_snappy_stored(in, n, &z, &err), 0);
        assert_int_equal(snappy_validate_compressed_buffer(z.p, z.len), SNAPPY_OK);
        size_t got = 0;
        assert_int_equal(snappy_uncompressed_length(z.p, z.len, &got), SNAPPY_OK);
        assert_int_equal(got, n);
        size_t room = most;
        assert_int_equal(snappy_uncompress(z.p, z.len, back, &room), SNAPPY_OK);
        assert_int_equal(room, n);
        assert_true(n == 0 || memcmp(back, in, n) == 0);
        size_t pieces = (n + 65535) / 65536;
        assert_true(z.len >= n + 1 && z.len <= n + 5 + 3 * pieces);
    }
    sl_buf_free(&z);
    free(in);
    free(back);
}

/* The sink trusts SL_RF_LINE_UTF8 (set by the json step) instead of checking
 * the line again: hostile lines through the real json step, every kernel,
 * must never reach Loki as invalid UTF-8. Hand-picked cases (invalid bytes
 * in a value, a key, after the value, cut at the end, overlong, surrogates,
 * past the first 64-byte window) and deterministic random byte mutations of
 * a line with multi-byte characters. */
static void test_parsed_line_flag_hostile(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "{\"msg\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
        "{\"msg\":\"bad \xff here\"}",
        "{\"k\xfe\":\"v\"}",
        "{\"msg\":\"ok\"} \xff",
        "{\"msg\":\"cut \xe2\x82\"}",
        "{\"msg\":\"overlong \xc0\xaf\"}",
        "{\"msg\":\"surrogate \xed\xa0\x80\"}",
        "{\"msg\":\"too high \xf4\x90\x80\x80\"}",
        "{\"pad\":\"0123456789012345678901234567890123456789012345678901234567890123456789\","
        "\"msg\":\"late \x80\"}",
        "{\"msg\":\"ends in a lead byte\"}\xc3",
        "{\"a\":{\"b\":[\"\xf8\x88\x80\x80\x80\"]}}",
    };
    static const char base[] = "{\"level\":\"info\",\"msg\":\"na\xc3\xafve \xe2\x82\xac 10 "
                               "\xf0\x9f\x98\x80\",\"ctx\":{\"user\":\"\xc3\xa9ric\",\"n\":[1,2]},"
                               "\"pad\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}";
    enum { NRAND = 3000, NLINES = 11 + NRAND };
    char(*lines)[sizeof base] = malloc(sizeof *lines * NRAND);
    assert_non_null(lines);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < NRAND; i++) {
        memcpy(lines[i], base, sizeof base);
        int muts = 1 + i % 3;
        for (int m = 0; m < muts; m++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(seed >> 33) % (sizeof base - 1);
            /* a non-ASCII byte, or a letter (over a continuation byte: invalid) */
            lines[i][at] = (seed >> 40 & 1) ? (char)(0x80 | (seed >> 17 & 0x7f))
                                            : (char)('a' + (seed >> 17) % 26);
        }
    }
    for (int kernel = SL_JSON_AUTO; kernel <= SL_JSON_AVX512; kernel++) {
        if (kernel != SL_JSON_AUTO && !sl_json_kernel_supported(kernel)) continue;
        sl_json_opts jo;
        sl_json_opts_init(&jo, NULL);
        jo.kernel = kernel;
        sl_batch *b = sl_batch_new(NLINES);
        assert_non_null(b);
        size_t flagged = 0, invalid = 0;
        for (int i = 0; i < NLINES; i++) {
            const char *l = i < 11 ? fixed[i] : lines[i - 11];
            size_t n = i < 11 ? strlen(l) : sizeof base - 1;
            sl_record *r = sl_batch_add(b, (sl_slice){l, n}, 1000 + i, (uint64_t)i + 1);
            assert_non_null(r);
            sl_err err;
            (void)sl_json_parse_record(b, r, &jo, &err);
            bool valid = sl_utf8_valid(l, n);
            if (r->flags & SL_RF_LINE_UTF8) {
                flagged++;
                if (!valid) fail_msg("kernel %d flagged invalid line %d", kernel, i);
            }
            invalid += !valid;
        }
        if (flagged < 100 || invalid < 100) /* both sides exercised */
            fail_msg("kernel %d: %zu flagged, %zu invalid", kernel, flagged, invalid);
        sl_loki_opts o = {0};
        sl_loki_req *q = sl_loki_req_new(&o);
        sl_err err;
        assert_int_equal(sl_loki_req_add(q, b, 0, b->nrecords, &err), 0);
        assert_int_equal(sl_loki_req_invalid_utf8(q), invalid);
        sl_lr_push p;
        roundtrip_pb(q, &p);
        size_t got = 0;
        for (size_t s = 0; s < p.n; s++)
            for (size_t e = 0; e < p.streams[s].n; e++, got++)
                assert_true(
                    sl_utf8_valid(p.streams[s].entries[e].line, p.streams[s].entries[e].line_n));
        assert_int_equal(got, NLINES);
        sl_lr_push_free(&p);
        sl_loki_req_free(q);
        sl_batch_unref(b);
    }
    free(lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_protobuf),
        cmocka_unit_test(test_snappy_stored),
        cmocka_unit_test(test_golden_json),
        cmocka_unit_test(test_fixed_bytes),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_sanitize_hostile_line),
        cmocka_unit_test(test_parsed_line_flag_hostile),
        cmocka_unit_test(test_labels_sanitized),
        cmocka_unit_test(test_json_line_format),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_fields_ahead_edges),
        cmocka_unit_test(test_req_snappy_same_bytes),
        cmocka_unit_test(test_bad_range),
        cmocka_unit_test(test_decoder_rejects),
        cmocka_unit_test(test_limits_names),
        cmocka_unit_test(test_limits_label_values),
        cmocka_unit_test(test_limits_tenant),
        cmocka_unit_test(test_limits_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
