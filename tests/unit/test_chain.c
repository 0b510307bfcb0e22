/* The parse chain as an input runs it: steps configured from YAML, run over
 * batches built here, checked field by field. One file over 800 lines: one
 * table for the chain, its batch builders shared by every step's cases. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/log.h"
#include "collector/container_frame.h"
#include "parsers/chain.h"
#include "tests/helpers.h"

#define NOW_NS ((int64_t)1700000000 * 1000000000) /* 2023-11-14T22:13:20Z */
#define SEC    ((int64_t)1000000000)

typedef struct fixture {
    sl_cfg *cfg;
    sl_container_frame *frame; /* what a leading cri/docker step asks for */
    sl_chain *chain;
} fixture;

/* Builds the chain from `parse:` in yaml; fails the test on config errors. */
static sl_chain *chain_from(fixture *fx, const char *input, const char *yaml)
{
    fx->cfg = sl_cfg_new();
    assert_non_null(fx->cfg);
    assert_int_equal(sl_cfg_load_string(fx->cfg, "t.yml", yaml, strlen(yaml)), 0);
    const sl_cfg_node *steps = sl_cfg_get(sl_cfg_root(fx->cfg), "parse");
    assert_non_null(steps);
    int rc = sl_chain_new(fx->cfg, steps, input, &fx->chain);
    if (rc != 0) fail_msg("chain: %s", sl_cfg_error_at(fx->cfg, 0));
    assert_int_equal(sl_cfg_nerrors(fx->cfg), 0);
    assert_non_null(fx->chain);
    assert_int_equal(sl_container_frame_new(fx->cfg, steps, input, &fx->frame), SL_OK);
    return fx->chain;
}

/* Expects building the chain to fail with an error containing each of the
 * given strings (NULL-terminated). */
static void chain_fails(const char *yaml, ...)
{
    sl_cfg *cfg = sl_cfg_new();
    assert_non_null(cfg);
    assert_int_equal(sl_cfg_load_string(cfg, "t.yml", yaml, strlen(yaml)), 0);
    sl_chain *c = NULL;
    int rc = sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "bad", &c);
    assert_int_equal(rc, -1);
    assert_null(c);
    assert_true(sl_cfg_nerrors(cfg) >= 1);
    const char *msg = sl_cfg_error_at(cfg, 0);
    va_list ap;
    va_start(ap, yaml);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(msg, want)) fail_msg("error '%s' lacks '%s'", msg, want);
    va_end(ap);
    sl_cfg_free(cfg);
}

static void fx_free(fixture *fx)
{
    sl_container_frame_free(fx->frame);
    fx->frame = NULL;
    sl_chain_free(fx->chain);
    sl_cfg_free(fx->cfg);
    fx->chain = NULL;
    fx->cfg = NULL;
}

/* A batch through the input's framing and its steps, as pipeline/route.c
 * runs it. */
static void run(fixture *fx, sl_batch *b)
{
    sl_container_frame_run(fx->frame, b);
    sl_chain_run(fx->chain, b);
}

/* Messages the framing gives up waiting for, through the steps. */
static sl_batch *take_partials(fixture *fx, int64_t now_ns)
{
    sl_batch *b = sl_container_frame_take(fx->frame, now_ns);
    if (b) sl_chain_run(fx->chain, b);
    return b;
}

static sl_batch *batch_of(const char *source, const char *const *lines, size_t n)
{
    sl_batch *b = sl_batch_new((uint32_t)n);
    assert_non_null(b);
    assert_int_equal(sl_batch_set_names(b, "in", source), 0);
    for (size_t i = 0; i < n; i++)
        assert_non_null(
            sl_batch_add(b, (sl_slice){lines[i], strlen(lines[i])}, NOW_NS, (uint64_t)i + 1));
    return b;
}

static const sl_field *field(const sl_record *r, const char *key)
{
    return sl_record_field(r, key, strlen(key));
}

static void expect_field(const sl_record *r, const char *key, const char *want)
{
    const sl_field *f = field(r, key);
    if (!f) fail_msg("no field '%s'", key);
    if (!sl_slice_eq(f->val, want, strlen(want)))
        fail_msg("field '%s' is '%.*s', want '%s'", key, (int)f->val.n, f->val.p, want);
}

static void expect_line(const sl_record *r, const char *want)
{
    if (!sl_slice_eq(r->line, want, strlen(want)))
        fail_msg("line is '%.*s', want '%s'", (int)r->line.n, r->line.p, want);
}

static int64_t errors(const char *input, const char *step)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, "step", step);
    int64_t v = sl_metrics_value("sluice_parse_errors_total", l);
    return v < 0 ? 0 : v;
}

static void expect_clean(const sl_record *r)
{
    if (r->flags & SL_RF_PARSE_ERROR) {
        const sl_field *f = field(r, "parse_error");
        fail_msg("unexpected parse error: %.*s", f ? (int)f->val.n : 0, f ? f->val.p : "");
    }
    assert_null(field(r, "parse_error"));
}

/* ------------------------------------------------------------------ json */

static void test_json_labels_rename_remove(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_json",
                             "parse:\n"
                             "  - json: {}\n"
                             "  - labels: [level]\n"
                             "  - labels: {app: service}\n"
                             "  - rename: {msg: message}\n"
                             "  - remove: {fields: [secret]}\n");
    const char *lines[] = {
        "{\"level\":\"warn\",\"service\":\"api\",\"msg\":\"slow\",\"secret\":\"s3\",\"n\":42}",
    };
    sl_batch *b = batch_of("/var/log/app.log", lines, 1);
    sl_chain_run(c, b);
    const sl_record *r = &b->records[0];
    expect_clean(r);
    expect_field(r, "level", "warn");
    assert_true(field(r, "level")->flags & SL_FF_LABEL);
    expect_field(r, "app", "api");
    assert_true(field(r, "app")->flags & SL_FF_LABEL);
    assert_false(field(r, "service")->flags & SL_FF_LABEL);
    expect_field(r, "message", "slow");
    assert_null(field(r, "msg"));
    assert_null(field(r, "secret"));
    expect_field(r, "n", "42");
    assert_int_equal(field(r, "n")->type, SL_V_NUMBER);
    /* the line itself is untouched */
    expect_line(r, lines[0]);
    sl_batch_unref(b);
    fx_free(&fx);
}

static void test_json_failure_marked_and_counted(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_jfail", "parse:\n  - json: {}\n");
    int64_t before = errors("in_jfail", "json");
    const char *lines[] = {"{\"a\":1}", "not json at all", "{\"a\":", "{\"b\":2}"};
    sl_batch *b = batch_of("x", lines, 4);
    sl_chain_run(c, b);
    expect_clean(&b->records[0]);
    expect_clean(&b->records[3]);
    for (int i = 1; i <= 2; i++) {
        const sl_record *r = &b->records[i];
        assert_true(r->flags & SL_RF_PARSE_ERROR);
        assert_false(r->flags & SL_RF_DROPPED);
        const sl_field *f = field(r, "parse_error");
        assert_non_null(f);
        assert_true(f->val.n > 4 && memcmp(f->val.p, "json", 4) == 0);
        expect_line(r, lines[i]); /* shipped raw */
        assert_null(field(r, "a"));
    }
    assert_int_equal(errors("in_jfail", "json") - before, 2);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ----------------------------------------------------------------- regex */

static void test_regex_nginx(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_nginx", "parse:\n  - regex: {builtin: nginx_combined}\n");
    int64_t before = errors("in_nginx", "regex");
    const char *lines[] = {
        "192.168.1.10 - alice [10/Oct/2023:13:55:36 +0200] \"GET /index.html?x=1 HTTP/1.1\" "
        "200 2326 \"http://ref.example/\" \"Mozilla/5.0 (X11)\"",
        "this is not an access log line",
    };
    sl_batch *b = batch_of("/var/log/nginx/access.log", lines, 2);
    sl_chain_run(c, b);
    const sl_record *r = &b->records[0];
    expect_clean(r);
    expect_field(r, "remote_addr", "192.168.1.10");
    expect_field(r, "remote_user", "alice");
    expect_field(r, "method", "GET");
    expect_field(r, "path", "/index.html?x=1");
    expect_field(r, "protocol", "HTTP/1.1");
    expect_field(r, "status", "200");
    expect_field(r, "body_bytes_sent", "2326");
    expect_field(r, "http_referer", "http://ref.example/");
    expect_field(r, "http_user_agent", "Mozilla/5.0 (X11)");
    assert_int_equal(r->time_ns, (int64_t)1696938936 * SEC);
    assert_true(b->records[1].flags & SL_RF_PARSE_ERROR);
    assert_int_equal(b->records[1].time_ns, NOW_NS);
    const sl_field *f = field(&b->records[1], "parse_error");
    assert_non_null(f);
    assert_true(f->val.n >= 5 && memcmp(f->val.p, "regex", 5) == 0);
    assert_int_equal(errors("in_nginx", "regex") - before, 1);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* A regex on a JSON field whose value holds escapes sees the unescaped text. */
static void test_regex_on_escaped_field(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_esc",
                             "parse:\n"
                             "  - json: {}\n"
                             "  - regex: {field: req, pattern: '^(?<verb>[A-Z]+) "
                             "(?<path>/[a-z0-9/]+) \"(?<q>[^\"]*)\"$'}\n"
                             "  - logfmt: {field: kv}\n");
    const char *lines[] = {
        "{\"req\":\"GET \\u002Fapi\\/v1 \\\"hi\\\"\",\"kv\":\"a=1 b=\\\"two words\\\"\"}",
    };
    sl_batch *b = batch_of("x", lines, 1);
    sl_chain_run(c, b);
    const sl_record *r = &b->records[0];
    expect_clean(r);
    expect_field(r, "verb", "GET");
    expect_field(r, "path", "/api/v1");
    expect_field(r, "q", "hi");
    expect_field(r, "a", "1");
    expect_field(r, "b", "two words");
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ---------------------------------------------------------------- logfmt */

static void test_logfmt(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_logfmt", "parse:\n  - logfmt:\n  - labels: [level]\n");
    const char *lines[] = {"level=info msg=\"hello world\" dur=12ms ok"};
    sl_batch *b = batch_of("x", lines, 1);
    sl_chain_run(c, b);
    const sl_record *r = &b->records[0];
    expect_clean(r);
    expect_field(r, "level", "info");
    assert_true(field(r, "level")->flags & SL_FF_LABEL);
    expect_field(r, "msg", "hello world");
    expect_field(r, "dur", "12ms");
    assert_non_null(field(r, "ok"));
    assert_null(field(r, "hello"));
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ------------------------------------------------------------ cri/docker */

static sl_record *run_one(fixture *fx, const char *source, const char *line, sl_batch **out)
{
    const char *lines[] = {line};
    *out = batch_of(source, lines, 1);
    run(fx, *out);
    return &(*out)->records[0];
}

static void test_cri_partial_join_per_source(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_cri", "parse:\n  - cri: {}\n");
    const char *A = "/var/log/containers/a_ns_c-1.log";
    const char *B = "/var/log/containers/b_ns_c-2.log";
    sl_batch *b1, *b2, *b3, *b4;

    /* One batch of A: two partial pieces. */
    const char *l1[] = {"2023-10-06T00:17:09.5Z stdout P alpha ",
                        "2023-10-06T00:17:09.6Z stdout P beta "};
    b1 = batch_of(A, l1, 2);
    run(&fx, b1);
    for (int i = 0; i < 2; i++) {
        assert_true(b1->records[i].flags & SL_RF_DROPPED);
        assert_false(b1->records[i].flags & SL_RF_PARSE_ERROR);
    }
    /* B's final line in between: its own text only. */
    sl_record *r = run_one(&fx, B, "2023-10-06T00:17:10Z stderr F other", &b2);
    expect_clean(r);
    assert_false(r->flags & SL_RF_DROPPED);
    expect_line(r, "other");
    expect_field(r, "stream", "stderr");
    assert_int_equal(r->time_ns, (int64_t)1696551430 * SEC);
    /* A's final piece in the next batch joins A's pieces, with A's first time. */
    sl_batch_unref(b1); /* pieces must not depend on the earlier batch's memory */
    r = run_one(&fx, A, "2023-10-06T00:17:11Z stdout F gamma", &b3);
    expect_clean(r);
    assert_false(r->flags & SL_RF_DROPPED);
    expect_line(r, "alpha beta gamma");
    expect_field(r, "stream", "stdout");
    assert_int_equal(r->time_ns, (int64_t)1696551429 * SEC + 500000000);
    /* Nothing left held for A. */
    r = run_one(&fx, A, "2023-10-06T00:17:12Z stdout F solo", &b4);
    expect_line(r, "solo");
    sl_batch_unref(b2);
    sl_batch_unref(b3);
    sl_batch_unref(b4);

    /* A malformed line is a counted parse error, shipped raw. */
    int64_t before = errors("in_cri", "cri");
    sl_batch *b5;
    r = run_one(&fx, A, "garbage without a timestamp", &b5);
    assert_true(r->flags & SL_RF_PARSE_ERROR);
    expect_line(r, "garbage without a timestamp");
    assert_int_equal(errors("in_cri", "cri") - before, 1);
    sl_batch_unref(b5);
    fx_free(&fx);
}

/* A batch whose last record is a held partial piece is acknowledged only
 * once the batch completing the message is delivered: a crash in between
 * leaves the checkpoint before the first piece. */
static void test_cri_held_piece_delays_ack(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_cri_ack", "parse:\n  - cri: {}\n");
    const char *A = "/var/log/containers/a_ns_c-1.log";
    sl_watermark *w = sl_watermark_new(0);
    const char *l1[] = {"2023-10-06T00:17:09Z stdout F whole", "2023-10-06T00:17:10Z stdout P hal"};
    sl_batch *b1 = batch_of(A, l1, 2);
    sl_watermark_issue(w, 0, 100);
    b1->ticket = (sl_ack_ticket){sl_watermark_ref(w), 0, 100};
    run(&fx, b1);
    const char *l2[] = {"2023-10-06T00:17:11Z stdout F f"};
    sl_batch *b2 = batch_of(A, l2, 1);
    sl_watermark_issue(w, 100, 150);
    b2->ticket = (sl_ack_ticket){sl_watermark_ref(w), 100, 150};
    run(&fx, b2);
    expect_line(&b2->records[0], "half");
    sl_batch_done(b1); /* b1 delivered: still held by the unfinished message */
    assert_int_equal(sl_watermark_get(w), 0);
    sl_batch_done(b2); /* the completing batch delivered: both acknowledged */
    assert_int_equal(sl_watermark_get(w), 150);

    /* Undelivered completing batch: the held one is never acknowledged. */
    const char *l3[] = {"2023-10-06T00:17:12Z stdout P x"};
    sl_batch *b3 = batch_of(A, l3, 1);
    sl_watermark_issue(w, 150, 180);
    b3->ticket = (sl_ack_ticket){sl_watermark_ref(w), 150, 180};
    run(&fx, b3);
    const char *l4[] = {"2023-10-06T00:17:13Z stdout F y"};
    sl_batch *b4 = batch_of(A, l4, 1);
    run(&fx, b4);
    sl_batch_done(b3);
    sl_batch_unref(b4); /* crash/stop before delivery */
    assert_int_equal(sl_watermark_get(w), 150);
    sl_watermark_unref(w);
    fx_free(&fx);
}

/* A message whose final piece never comes: after flush_partial_after it
 * is shipped as it is in a batch of its own (marked, counted, through the
 * steps after the joining one), and the batches holding its pieces are
 * acknowledged once that batch is; a message reaching max_bytes ships at
 * once. Neither holds the checkpoint. */
static int64_t partials(const char *input, const char *reason)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, "reason", reason);
    int64_t v = sl_metrics_value("sluice_parse_partial_flushed_total", l);
    return v < 0 ? 0 : v;
}

static void test_cri_unfinished_ships(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_cri_orphan",
               "parse:\n  - cri: {max_bytes: 64, flush_partial_after: 1s}\n"
               "  - kubernetes:\n");
    const char *A = "/var/log/containers/a_ns_c-0123456789ab.log";
    sl_watermark *w = sl_watermark_new(0);
    const char *l1[] = {"2023-10-06T00:17:09Z stdout P first ",
                        "2023-10-06T00:17:10Z stdout P second"};
    sl_batch *b1 = batch_of(A, l1, 2);
    sl_watermark_issue(w, 0, 100);
    b1->ticket = (sl_ack_ticket){sl_watermark_ref(w), 0, 100};
    run(&fx, b1);
    assert_true(b1->records[0].flags & SL_RF_DROPPED);
    assert_true(b1->records[1].flags & SL_RF_DROPPED);
    int64_t now = sl_monotonic_ns();
    assert_null(take_partials(&fx, now)); /* not waited long enough */
    int64_t before = partials("in_cri_orphan", "flush_partial_after");
    sl_batch *nb = take_partials(&fx, now + 2 * SEC);
    assert_non_null(nb);
    assert_null(take_partials(&fx, now + 2 * SEC));
    assert_int_equal(partials("in_cri_orphan", "flush_partial_after") - before, 1);
    assert_int_equal(nb->nrecords, 1);
    sl_record *r = &nb->records[0];
    expect_line(r, "first second");
    expect_field(r, "stream", "stdout");
    expect_field(r, "partial", "flush_partial_after");
    expect_field(r, "pod", "a"); /* the steps after cri ran */
    assert_int_equal(r->time_ns, (int64_t)1696551429 * SEC);
    assert_string_equal(nb->source, A);
    sl_batch_done(b1); /* delivered, but its pieces ship in nb */
    assert_int_equal(sl_watermark_get(w), 0);
    sl_batch_done(nb);
    assert_int_equal(sl_watermark_get(w), 100);

    /* Reaching max_bytes: shipped by the record that reached it. */
    before = partials("in_cri_orphan", "max_bytes");
    const char *l2[] = {"2023-10-06T00:17:11Z stdout P 0123456789012345678901234567890123456789",
                        "2023-10-06T00:17:12Z stdout P abcdefghijabcdefghijabcdefghij",
                        "2023-10-06T00:17:13Z stdout F tail"};
    sl_batch *b2 = batch_of(A, l2, 3);
    sl_watermark_issue(w, 100, 200);
    b2->ticket = (sl_ack_ticket){sl_watermark_ref(w), 100, 200};
    run(&fx, b2);
    assert_true(b2->records[0].flags & SL_RF_DROPPED);
    expect_line(&b2->records[1],
                "0123456789012345678901234567890123456789abcdefghijabcdefghijabcdefghij");
    expect_field(&b2->records[1], "partial", "max_bytes");
    expect_line(&b2->records[2], "tail");
    assert_null(field(&b2->records[2], "partial"));
    assert_int_equal(partials("in_cri_orphan", "max_bytes") - before, 1);
    sl_batch_done(b2);
    assert_int_equal(sl_watermark_get(w), 200);

    /* Stopping with a piece held: it stays unacknowledged (read again). */
    const char *l3[] = {"2023-10-06T00:17:14Z stdout P held at stop"};
    sl_batch *b3 = batch_of(A, l3, 1);
    sl_watermark_issue(w, 200, 230);
    b3->ticket = (sl_ack_ticket){sl_watermark_ref(w), 200, 230};
    run(&fx, b3);
    sl_batch_done(b3);
    fx_free(&fx);
    assert_int_equal(sl_watermark_get(w), 200);
    sl_watermark_unref(w);
}

/* More sources with a piece held than the frame keeps joiners for (256:
 * a node with that many containers writing long lines, or one pod making
 * files forever): the least recently used joiner is given up, and its
 * unfinished message ships at once as it is (partial: sources, counted),
 * never dropped with the joiner while its batches are acknowledged
 * (decision 0065). */
static void test_cri_sources_past_bound(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_cri_many", "parse:\n  - cri: {flush_partial_after: 1h}\n");
    sl_watermark *w = sl_watermark_new(0);
    enum { SOURCES = 300 };
    sl_batch *held[SOURCES];
    bool seen[SOURCES] = {false};
    int got = 0;
    int64_t now = sl_monotonic_ns();
    for (int i = 0; i < SOURCES; i++) {
        /* As pipeline/route.c: what the frame gives out before each batch. */
        sl_batch *nb;
        while ((nb = take_partials(&fx, now))) {
            for (uint32_t k = 0; k < nb->nrecords; k++) {
                int id = -1;
                assert_int_equal(sscanf(nb->records[k].line.p, "piece-of-%d", &id), 1);
                assert_true(id >= 0 && id < SOURCES);
                assert_false(seen[id]);
                seen[id] = true;
                expect_field(&nb->records[k], "partial", "sources");
                got++;
            }
            sl_batch_done(nb);
        }
        char src[128];
        snprintf(src, sizeof src, "/var/log/containers/p%d_ns_c-1.log", i);
        char line[128];
        snprintf(line, sizeof line, "2023-10-06T00:17:09Z stdout P piece-of-%d", i);
        const char *l[] = {line};
        held[i] = batch_of(src, l, 1);
        sl_watermark_issue(w, (uint64_t)i * 10, (uint64_t)i * 10 + 10);
        held[i]->ticket =
            (sl_ack_ticket){sl_watermark_ref(w), (uint64_t)i * 10, (uint64_t)i * 10 + 10};
        run(&fx, held[i]);
        assert_true(held[i]->records[0].flags & SL_RF_DROPPED);
        sl_batch_done(held[i]); /* delivered, but its piece is held */
    }
    /* The 43 given up before the last batch came out, each with its own
     * piece, the oldest first; the 44th comes at the next take. */
    sl_batch *nb = take_partials(&fx, now);
    assert_non_null(nb);
    assert_int_equal(nb->nrecords, 1);
    int last = -1;
    assert_int_equal(sscanf(nb->records[0].line.p, "piece-of-%d", &last), 1);
    assert_int_equal(last, SOURCES - 256 - 1);
    got++;
    seen[last] = true;
    sl_batch_done(nb);
    assert_null(take_partials(&fx, now)); /* the others wait their hour */
    assert_int_equal(got, SOURCES - 256);
    assert_int_equal(partials("in_cri_many", "sources"), SOURCES - 256);
    for (int i = 0; i < SOURCES - 256; i++) assert_true(seen[i]);
    /* The checkpoint moved over those only once they were delivered. */
    assert_int_equal(sl_watermark_get(w), (uint64_t)(SOURCES - 256) * 10);
    while ((nb = take_partials(&fx, INT64_MAX))) {
        got += (int)nb->nrecords;
        sl_batch_done(nb);
    }
    assert_int_equal(got, SOURCES);
    assert_int_equal(sl_watermark_get(w), (uint64_t)SOURCES * 10);
    sl_watermark_unref(w);
    fx_free(&fx);
}

/* The step on its own is a pure function of one record: without the
 * framing (a cri step that is not first gets none) a partial piece is
 * parsed alone, nothing is held. What the framing parsed leaves the chain
 * without its SL_RF_FRAMED mark. */
static void test_cri_step_alone(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_cri_alone", "parse:\n  - sample: {one_in: 1}\n  - cri: {}\n");
    assert_null(fx.frame);
    const char *A = "/var/log/containers/a_ns_c-1.log";
    const char *l1[] = {"2023-10-06T00:17:09Z stdout P hal", "2023-10-06T00:17:10Z stderr F f"};
    sl_batch *b = batch_of(A, l1, 2);
    sl_chain_run(c, b);
    expect_clean(&b->records[0]);
    assert_false(b->records[0].flags & SL_RF_DROPPED);
    expect_line(&b->records[0], "hal");
    expect_field(&b->records[0], "stream", "stdout");
    expect_line(&b->records[1], "f");
    sl_batch_unref(b);
    fx_free(&fx);

    chain_from(&fx, "in_cri_framed", "parse:\n  - cri: {}\n");
    assert_non_null(fx.frame);
    b = batch_of(A, l1, 2);
    run(&fx, b);
    assert_true(b->records[0].flags & SL_RF_DROPPED);
    expect_line(&b->records[1], "f");
    for (int i = 0; i < 2; i++) assert_false(b->records[i].flags & SL_RF_FRAMED);
    sl_batch_unref(b);
    fx_free(&fx);
}

static void test_docker(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_docker", "parse:\n  - docker:\n  - json: {}\n");
    const char *lines[] = {
        "{\"log\":\"say \\\"hi\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2016-10-06T00:17:09Z\"}",
        "{\"log\":\"{\\\"k\\\":\\\"v\\\"}\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:"
        "10Z\"}",
    };
    sl_batch *b = batch_of("x", lines, 2);
    run(&fx, b);
    const sl_record *r = &b->records[0];
    expect_line(r, "say \"hi\"");
    expect_field(r, "stream", "stderr");
    assert_int_equal(r->time_ns, (int64_t)1475713029 * SEC);
    /* The docker message is not JSON: the json step fails on it. */
    assert_true(r->flags & SL_RF_PARSE_ERROR);
    r = &b->records[1];
    expect_clean(r);
    expect_line(r, "{\"k\":\"v\"}");
    expect_field(r, "k", "v");
    expect_field(r, "stream", "stdout");
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ---------------------------------------------------------------- syslog */

static void test_syslog(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_syslog", "parse:\n  - syslog:\n");
    const char *const rfc5424 =
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event";
    const char *lines[] = {
        rfc5424,
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        "",
    };
    sl_batch *b = batch_of("/var/log/syslog", lines, 3);
    sl_chain_run(c, b);
    const sl_record *r = &b->records[0];
    expect_clean(r);
    expect_field(r, "facility", "20");
    expect_field(r, "severity", "5");
    expect_field(r, "hostname", "mymachine.example.com");
    expect_field(r, "appname", "evntslog");
    expect_field(r, "msgid", "ID47");
    expect_field(r, "exampleSDID@32473.iut", "3");
    expect_field(r, "exampleSDID@32473.eventSource", "Application");
    expect_field(r, "message", "An application event");
    assert_int_equal(r->time_ns, (int64_t)1065910455 * SEC + 3000000);
    r = &b->records[1];
    expect_clean(r);
    expect_field(r, "hostname", "mymachine");
    expect_field(r, "appname", "su");
    expect_field(r, "message", "'su root' failed");
    /* No year in RFC 3164: the read time's (2023). */
    assert_int_equal(r->time_ns, (int64_t)1697062455 * SEC);
    assert_true(b->records[2].flags & SL_RF_PARSE_ERROR);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ------------------------------------------------------------- timestamp */

static void test_timestamp_formats(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_ts",
                             "parse:\n"
                             "  - json: {}\n"
                             "  - timestamp: {field: ts}\n"
                             "  - timestamp: {field: ms, format: unix_ms}\n"
                             "  - timestamp: {field: web, format: '%d/%b/%Y:%H:%M:%S %z'}\n"
                             "  - timestamp: {field: local, format: '%Y-%m-%d %H:%M:%S', "
                             "timezone: Europe/Berlin}\n");
    int64_t before = errors("in_ts", "timestamp");
    const char *lines[] = {
        "{\"ts\":\"2024-03-05T10:11:12.5Z\"}",
        "{\"ms\":1709633472123}",
        "{\"web\":\"10/Oct/2023:13:55:36 +0200\"}",
        "{\"local\":\"2024-03-05 11:11:12\"}",
        "{\"ts\":\"yesterday\"}",
        "{\"web\":\"10\\/Oct\\/2023:13:55:36 +0200\"}", /* escaped as PHP does */
    };
    sl_batch *b = batch_of("x", lines, 6);
    sl_chain_run(c, b);
    /* Each record has only one of the fields: the other steps fail on it. */
    assert_int_equal(b->records[0].time_ns, (int64_t)1709633472 * SEC + 500000000);
    assert_int_equal(b->records[1].time_ns, (int64_t)1709633472 * SEC + 123000000);
    assert_int_equal(b->records[2].time_ns, (int64_t)1696938936 * SEC);
    assert_int_equal(b->records[3].time_ns, (int64_t)1709633472 * SEC);
    assert_int_equal(b->records[4].time_ns, NOW_NS); /* read time kept */
    assert_int_equal(b->records[5].time_ns, (int64_t)1696938936 * SEC);
    const sl_field *f = field(&b->records[4], "parse_error");
    assert_non_null(f);
    assert_true(f->val.n > 9 && memcmp(f->val.p, "timestamp", 9) == 0);
    /* 3 absent fields per record for 0..3 and 5, 4 for record 4 (ts bad + 3 absent) */
    assert_int_equal(errors("in_ts", "timestamp") - before, 5 * 3 + 4);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ------------------------------------------------------------ kubernetes */

static void test_kubernetes(void **state)
{
    (void)state;
    fixture fx = {0};
    chain_from(&fx, "in_k8s", "parse:\n  - cri: {}\n  - kubernetes:\n");
    const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char src[256];
    snprintf(src, sizeof src, "/var/log/containers/web-7d4b9c-x2x_prod_nginx-%s.log", id);
    sl_batch *b;
    sl_record *r = run_one(&fx, src, "2023-10-06T00:17:09Z stdout F hello", &b);
    expect_clean(r);
    expect_line(r, "hello");
    expect_field(r, "namespace", "prod");
    expect_field(r, "pod", "web-7d4b9c-x2x");
    expect_field(r, "container", "nginx");
    expect_field(r, "container_id", id);
    sl_batch_unref(b);

    int64_t before = errors("in_k8s", "kubernetes");
    r = run_one(&fx, "/var/log/plain.log", "2023-10-06T00:17:09Z stdout F hello", &b);
    assert_true(r->flags & SL_RF_PARSE_ERROR);
    assert_null(field(r, "namespace"));
    const sl_field *f = field(r, "parse_error");
    assert_non_null(f);
    assert_true(f->val.n > 10 && memcmp(f->val.p, "kubernetes", 10) == 0);
    assert_int_equal(errors("in_k8s", "kubernetes") - before, 1);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* ------------------------------------------------------------ drop/keep */

static void test_drop_keep(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_filter",
                             "parse:\n"
                             "  - json: {}\n"
                             "  - drop: {field: level, regex: '^debug$'}\n"
                             "  - keep: {regex: 'svc=(api|web)'}\n"
                             "  - drop: {field: msg, regex: 'say \"bye\"'}\n"
                             "  - labels: [level]\n");
    const char *lines[] = {
        "{\"level\":\"debug\",\"m\":\"svc=api\"}",                            /* dropped by level */
        "{\"level\":\"info\",\"m\":\"svc=api\"}",                             /* kept */
        "{\"level\":\"info\",\"m\":\"svc=db\"}",                              /* not kept */
        "{\"level\":\"info\",\"m\":\"svc=web\",\"msg\":\"say \\\"bye\\\"\"}", /* escaped drop */
        "{\"m\":\"svc=web\",\"msg\":\"say \\\"hi\\\"\"}", /* no level: drop can't match */
    };
    sl_batch *b = batch_of("x", lines, 5);
    sl_chain_run(c, b);
    assert_true(b->records[0].flags & SL_RF_DROPPED);
    assert_false(b->records[1].flags & SL_RF_DROPPED);
    assert_true(b->records[2].flags & SL_RF_DROPPED);
    assert_true(b->records[3].flags & SL_RF_DROPPED);
    assert_false(b->records[4].flags & SL_RF_DROPPED);
    /* Later steps do not run on dropped records. */
    assert_false(field(&b->records[0], "level")->flags & SL_FF_LABEL);
    assert_true(field(&b->records[1], "level")->flags & SL_FF_LABEL);
    for (int i = 0; i < 5; i++) assert_false(b->records[i].flags & SL_RF_PARSE_ERROR);
    char l[128];
    sl_metric_labels(l, sizeof l, "input", "in_filter", "step", "drop");
    assert_int_equal(sl_metrics_value("sluice_records_filtered_total", l), 2);
    sl_metric_labels(l, sizeof l, "input", "in_filter", "step", "keep");
    assert_int_equal(sl_metrics_value("sluice_records_filtered_total", l), 1);
    sl_batch_unref(b);
    fx_free(&fx);
}

/* `sample` keeps one record in one_in: by count across batches, or by a
 * hash of a field so records sharing the value go together; a record
 * without the field is kept, and so are its (escaped) values compared as
 * text. */
static void test_sample(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_sample", "parse:\n  - sample: {one_in: 3}\n");
    const char *lines[] = {"a", "b", "c", "d", "e"};
    for (int round = 0; round < 2; round++) {
        sl_batch *b = batch_of("x", lines, 5);
        sl_chain_run(c, b);
        /* Records 0, 3, 6, 9 of the input are kept, whatever the batches. */
        for (uint32_t i = 0; i < 5; i++) {
            uint32_t seq = (uint32_t)round * 5 + i;
            assert_int_equal(!(b->records[i].flags & SL_RF_DROPPED), seq % 3 == 0);
        }
        sl_batch_unref(b);
    }
    char l[128];
    sl_metric_labels(l, sizeof l, "input", "in_sample", "step", "sample");
    assert_int_equal(sl_metrics_value("sluice_records_filtered_total", l), 6);
    fx_free(&fx);

    c = chain_from(&fx, "in_sample_f",
                   "parse:\n  - json: {}\n  - sample: {one_in: 2, field: trace}\n");
    char trace_lines[64][64];
    const char *tl[64];
    for (int i = 0; i < 64; i++) {
        /* 14 traces, 4 records each, interleaved; the last 8 have no trace. */
        if (i < 56)
            snprintf(trace_lines[i], sizeof trace_lines[i], "{\"trace\":\"t%02d\",\"n\":%d}",
                     i % 14, i);
        else
            snprintf(trace_lines[i], sizeof trace_lines[i], "{\"n\":%d}", i);
        tl[i] = trace_lines[i];
    }
    sl_batch *b = batch_of("x", tl, 64);
    sl_chain_run(c, b);
    uint32_t kept = 0;
    for (int i = 0; i < 56; i++) {
        bool k = !(b->records[i].flags & SL_RF_DROPPED);
        /* Every record of a trace shares its fate. */
        assert_int_equal(k, !(b->records[i % 14].flags & SL_RF_DROPPED));
        kept += k;
    }
    /* Some traces kept, some dropped (FNV-1a over 14 values, one_in 2). */
    assert_true(kept > 0 && kept < 56);
    for (int i = 56; i < 64; i++) assert_false(b->records[i].flags & SL_RF_DROPPED);
    for (int i = 0; i < 64; i++) assert_false(b->records[i].flags & SL_RF_PARSE_ERROR);
    sl_batch_unref(b);
    fx_free(&fx);

    chain_fails("parse:\n  - sample: {}\n", "missing required key 'one_in'", NULL);
    chain_fails("parse:\n  - sample: {one_in: 0}\n", "one_in", NULL);
    chain_fails("parse:\n  - sample: {one_in: 2, feild: x}\n", "did you mean 'field'", NULL);
}

/* ---------------------------------------------------------- config errors */

static void test_config_errors(void **state)
{
    (void)state;
    chain_fails("parse:\n  - json: {}\n  - jsn: {}\n", "t.yml:3:5", "unknown parse step 'jsn'",
                NULL);
    chain_fails("parse:\n  - regex: {pattern: 'a(?<x>b'}\n", "t.yml:2:", "offset", NULL);
    chain_fails("parse:\n  - drop: {field: a, regex: 'x[y'}\n", "t.yml:2:", "bad regex at offset 3",
                NULL);
    chain_fails("parse:\n  - regex: {pattern: 'x', builtin: nginx_combined}\n",
                "t.yml:2:", "exactly one", NULL);
    chain_fails("parse:\n  - regex: {}\n", "exactly one", NULL);
    chain_fails("parse:\n  - regex: {builtin: iis}\n", "t.yml:2:", NULL);
    chain_fails("parse:\n  - json: {}\n    logfmt: {}\n", "t.yml:2:", "one key", NULL);
    chain_fails("parse: {json: {}}\n", "list", NULL);

    /* No steps: no chain, running it is a no-op. */
    sl_cfg *cfg = sl_cfg_new();
    sl_chain *c = (sl_chain *)1;
    assert_int_equal(sl_chain_new(cfg, NULL, "in", &c), 0);
    assert_null(c);
    sl_chain_run(NULL, NULL);
    sl_cfg_free(cfg);
}

/* ------------------------------------------------- arenas across threads */

/* Batches are made on an input's thread and freed on sinks' threads, and
 * arena blocks are reused between them: fields must stay intact. */
#define XT_BATCHES 32

static void *free_all(void *arg)
{
    sl_batch **bs = arg;
    for (int i = 0; i < XT_BATCHES; i++) sl_batch_unref(bs[i]);
    return NULL;
}

static void test_batches_freed_on_another_thread(void **state)
{
    (void)state;
    fixture fx = {0};
    sl_chain *c = chain_from(&fx, "in_xt", "parse:\n  - json: {}\n");
    static char lines[XT_BATCHES][64];
    sl_batch *prev[XT_BATCHES] = {0}, *cur[XT_BATCHES];
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        bool freeing = round > 0;
        if (freeing) assert_int_equal(pthread_create(&t, NULL, free_all, prev), 0);
        for (int i = 0; i < XT_BATCHES; i++) {
            snprintf(lines[i], sizeof lines[i], "{\"round\":%d,\"i\":\"b%d\"}", round, i);
            sl_batch *b = sl_batch_new(512);
            assert_non_null(b);
            for (int k = 0; k < 512; k++)
                sl_batch_add(b, (sl_slice){lines[i], strlen(lines[i])}, NOW_NS, (uint64_t)k);
            sl_chain_run(c, b);
            cur[i] = b;
        }
        if (freeing) assert_int_equal(pthread_join(t, NULL), 0);
        for (int i = 0; i < XT_BATCHES; i++) {
            char want[16];
            snprintf(want, sizeof want, "b%d", i);
            for (uint32_t k = 0; k < cur[i]->nrecords; k += 97) {
                expect_clean(&cur[i]->records[k]);
                expect_field(&cur[i]->records[k], "i", want);
            }
            prev[i] = cur[i];
        }
    }
    free_all(prev);
    fx_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_labels_rename_remove),
        cmocka_unit_test(test_json_failure_marked_and_counted),
        cmocka_unit_test(test_regex_nginx),
        cmocka_unit_test(test_regex_on_escaped_field),
        cmocka_unit_test(test_logfmt),
        cmocka_unit_test(test_cri_partial_join_per_source),
        cmocka_unit_test(test_cri_held_piece_delays_ack),
        cmocka_unit_test(test_cri_unfinished_ships),
        cmocka_unit_test(test_cri_sources_past_bound),
        cmocka_unit_test(test_cri_step_alone),
        cmocka_unit_test(test_docker),
        cmocka_unit_test(test_syslog),
        cmocka_unit_test(test_timestamp_formats),
        cmocka_unit_test(test_kubernetes),
        cmocka_unit_test(test_drop_keep),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_batches_freed_on_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
