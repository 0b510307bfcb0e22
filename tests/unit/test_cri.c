#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/err.h"
#include "collector/container_frame.h"
#include "parsers/cri.h"

#define T0 1475713029669794202LL /* 2016-10-06T00:17:09.669794202Z */

static char *exact(const char *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static void assert_slice(sl_slice s, const char *want)
{
    if (!sl_slice_eq(s, want, strlen(want))) fail_msg("got '%.*s', want '%s'", (int)s.n, s.p, want);
}

static int cri(const char *s, sl_cri_line *l)
{
    static char *last; /* kept alive until the next call so slices stay valid */
    free(last);
    last = NULL;
    if (!s) return 0;
    last = exact(s, strlen(s));
    sl_err e = {0};
    return sl_cri_parse(last, strlen(s), l, &e);
}

static void test_cri_lines(void **st)
{
    (void)st;
    sl_cri_line l;
    assert_int_equal(cri("2016-10-06T00:17:09.669794202Z stdout F hello world", &l), 0);
    assert_int_equal(l.time_ns, T0);
    assert_int_equal(l.stream, SL_CRI_STDOUT);
    assert_false(l.partial);
    assert_slice(l.msg, "hello world");
    assert_int_equal(cri("2016-10-06T02:17:09.669794202+02:00 stderr P part one ", &l), 0);
    assert_int_equal(l.time_ns, T0);
    assert_int_equal(l.stream, SL_CRI_STDERR);
    assert_true(l.partial);
    assert_slice(l.msg, "part one "); /* trailing blanks are message bytes */
    assert_int_equal(cri("2016-10-06T00:17:09.669794202Z stdout F", &l), 0);
    assert_int_equal(l.msg.n, 0);
    assert_int_equal(cri("2016-10-06T00:17:09.669794202Z stdout F ", &l), 0);
    assert_int_equal(l.msg.n, 0);
    assert_int_equal(cri("2016-10-06T00:17:09.669794202Z stdout F:x msg", &l), 0);
    assert_slice(l.msg, "msg");
    assert_int_equal(cri("2016-10-06T00:17:09Z stdout F  two spaces", &l), 0);
    assert_slice(l.msg, " two spaces");
    const char *bad[] = {
        "",
        "hello",
        "2016-10-06T00:17:09.669794202Z",
        "2016-10-06T00:17:09.669794202Z stdin F x",
        "2016-10-06T00:17:09.669794202Z stdout X x",
        "2016-10-06T00:17:09.669794202Z stdout FF x",
        "2016-10-06T00:17:09.669794202Z  stdout F x",
        "2016-10-06 00:17:09 stdout F x",
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (cri(bad[i], &l) != SL_EPARSE) fail_msg("accepted '%s'", bad[i]);
    cri(NULL, &l);
}

static int docker(const char *s, sl_cri_line *l)
{
    static char *last;
    free(last);
    last = NULL;
    if (!s) return 0;
    last = exact(s, strlen(s));
    sl_err e = {0};
    return sl_docker_parse(last, strlen(s), l, &e);
}

static void test_docker_lines(void **st)
{
    (void)st;
    sl_cri_line l;
    assert_int_equal(
        docker("{\"log\":\"hello world\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09."
               "669794202Z\"}",
               &l),
        0);
    assert_int_equal(l.time_ns, T0);
    assert_int_equal(l.stream, SL_CRI_STDOUT);
    assert_false(l.partial);
    assert_false(l.escaped);
    assert_slice(l.msg, "hello world");
    /* Any member order, blanks, extra members (attrs objects) skipped. */
    assert_int_equal(docker(" { \"time\" : \"2016-10-06T00:17:09.669794202Z\", \"attrs\": {\"a\":"
                            "[1,{\"b\":\"]}\"}],\"n\":null}, \"stream\":\"stderr\" , \"log\": "
                            "\"tab\\there \\\"q\\\" \\u00e9\\n\" } ",
                            &l),
                     0);
    assert_int_equal(l.stream, SL_CRI_STDERR);
    assert_true(l.escaped);
    assert_slice(l.msg, "tab\\there \\\"q\\\" \\u00e9");
    char buf[64];
    sl_slice u = {buf, sl_docker_unescape(l.msg, buf)};
    assert_slice(u, "tab\there \"q\" \xc3\xa9");
    /* No trailing newline: a partial line. An escaped backslash before a
     * final n is not a newline. */
    assert_int_equal(docker("{\"log\":\"part\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:"
                            "09Z\"}",
                            &l),
                     0);
    assert_true(l.partial);
    assert_slice(l.msg, "part");
    assert_int_equal(docker("{\"log\":\"ends in \\\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-"
                            "06T00:17:09Z\"}",
                            &l),
                     0);
    assert_true(l.partial);
    assert_int_equal(docker("{\"log\":\"ends in \\\\\\n\",\"stream\":\"stdout\",\"time\":\"2016-"
                            "10-06T00:17:09Z\"}",
                            &l),
                     0);
    assert_false(l.partial);
    assert_true(l.escaped);
    assert_slice(l.msg, "ends in \\\\");
    const char *bad[] = {
        "",
        "{}",
        "[]",
        "{\"log\":\"x\\n\",\"stream\":\"stdout\"}",
        "{\"log\":\"x\\n\",\"stream\":\"stdin\",\"time\":\"2016-10-06T00:17:09Z\"}",
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"yesterday\"}",
        "{\"log\":1,\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"}",
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"",
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"}x",
        "{\"log\":\"x\\n\" \"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z\"}",
        ("{\"log\":\"x\\n\",\"a\":{\"b\":[}],\"stream\":\"stdout\","
         "\"time\":\"2016-10-06T00:17:09Z\"}"),
        "{\"log\":\"unterminated,\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:09Z}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (docker(bad[i], &l) != SL_EPARSE) fail_msg("accepted '%s'", bad[i]);
    /* Deep nesting in an ignored member is bounded. */
    char deep[300];
    size_t k = (size_t)sprintf(deep, "{\"a\":");
    for (int i = 0; i < 100; i++) deep[k++] = '[';
    deep[k] = 0;
    assert_int_equal(docker(deep, &l), SL_EPARSE);
    docker(NULL, &l);
}

static void test_unescape(void **st)
{
    (void)st;
    struct {
        const char *in, *out;
    } c[] = {
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},
        {"\\ud83dx", "\xef\xbf\xbd"
                     "x"},
        {"\\ude00", "\xef\xbf\xbd"},
        {"\\q", "q"},
        {"a\\", "a\\"},
        {"\\\xff", "\xff"},
        {"\\/\\b\\f\\r", "/\b\f\r"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char buf[64];
        size_t n = sl_docker_unescape((sl_slice){c[i].in, strlen(c[i].in)}, buf);
        assert_int_equal(n, strlen(c[i].out));
        assert_memory_equal(buf, c[i].out, n);
    }
}

static sl_cri_line piece(const char *msg, int stream, bool partial, int64_t t)
{
    return (sl_cri_line){t, stream, partial, false, {msg, strlen(msg)}};
}

static void test_joiner(void **st)
{
    (void)st;
    sl_cri_joiner *j;
    assert_int_equal(sl_cri_joiner_new(32, &j), 0);
    sl_slice m;
    int64_t t;
    unsigned flags;
    /* Whole lines pass through without a copy. */
    sl_cri_line a = piece("whole", SL_CRI_STDOUT, false, 1);
    assert_int_equal(sl_cri_joiner_add(j, &a, &m, &t, &flags), 0);
    assert_ptr_equal(m.p, a.msg.p);
    assert_int_equal(t, 1);
    /* Interleaved streams join separately; the time is the first piece's. */
    sl_cri_line p1 = piece("out-1 ", SL_CRI_STDOUT, true, 10);
    sl_cri_line e1 = piece("err-1 ", SL_CRI_STDERR, true, 11);
    sl_cri_line p2 = piece("out-2 ", SL_CRI_STDOUT, true, 12);
    sl_cri_line e2 = piece("err-end", SL_CRI_STDERR, false, 13);
    sl_cri_line p3 = piece("out-end", SL_CRI_STDOUT, false, 14);
    assert_int_equal(sl_cri_joiner_add(j, &p1, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_add(j, &e1, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_add(j, &p2, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_pending(j), 18);
    assert_int_equal(sl_cri_joiner_add(j, &e2, &m, &t, &flags), 0);
    assert_slice(m, "err-1 err-end");
    assert_int_equal(t, 11);
    assert_int_equal(flags, 0);
    assert_int_equal(sl_cri_joiner_add(j, &p3, &m, &t, &flags), 0);
    assert_slice(m, "out-1 out-2 out-end");
    assert_int_equal(t, 10);
    assert_int_equal(sl_cri_joiner_pending(j), 0);
    /* Reaching the bound: given out at once, whole and marked; the next
     * pieces start a new message, so nothing is cut and nothing waits. */
    sl_cri_line big = piece("0123456789abcdefghij", SL_CRI_STDOUT, true, 20);
    assert_int_equal(sl_cri_joiner_add(j, &big, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_pending(j), 20);
    assert_int_equal(sl_cri_joiner_add(j, &big, &m, &t, &flags), 0);
    assert_int_equal(m.n, 40);
    assert_memory_equal(m.p, "0123456789abcdefghij0123456789abcdefghij", 40);
    assert_int_equal(flags, SL_CRI_CUT_SIZE);
    assert_int_equal(t, 20);
    assert_int_equal(sl_cri_joiner_pending(j), 0);
    sl_cri_line end = piece("END", SL_CRI_STDOUT, false, 21);
    assert_int_equal(sl_cri_joiner_add(j, &end, &m, &t, &flags), 0);
    assert_slice(m, "END");
    assert_int_equal(flags, 0);
    /* A final piece past the bound completes its message, not cut. */
    assert_int_equal(sl_cri_joiner_add(j, &big, &m, &t, &flags), SL_EAGAIN);
    sl_cri_line last = piece("0123456789abcdefghij-end", SL_CRI_STDOUT, false, 22);
    assert_int_equal(sl_cri_joiner_add(j, &last, &m, &t, &flags), 0);
    assert_int_equal(m.n, 44);
    assert_int_equal(flags, 0);
    /* A message whose final piece never comes is taken out once it waited
     * long enough (held_before), one stream at a time. */
    sl_cri_line o1 = piece("orphan-out", SL_CRI_STDOUT, true, 40);
    sl_cri_line o2 = piece("orphan-err", SL_CRI_STDERR, true, 41);
    assert_int_equal(sl_cri_joiner_add(j, &o1, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_add(j, &o2, &m, &t, &flags), SL_EAGAIN);
    int stream = -1;
    assert_int_equal(sl_cri_joiner_take(j, 0, &m, &t, &stream), SL_ENOENT); /* too young */
    assert_int_equal(sl_cri_joiner_take(j, INT64_MAX, &m, &t, &stream), 0);
    assert_slice(m, "orphan-out");
    assert_int_equal(t, 40);
    assert_int_equal(stream, SL_CRI_STDOUT);
    assert_int_equal(sl_cri_joiner_take(j, INT64_MAX, &m, &t, &stream), 0);
    assert_slice(m, "orphan-err");
    assert_int_equal(stream, SL_CRI_STDERR);
    assert_int_equal(sl_cri_joiner_take(j, INT64_MAX, &m, &t, &stream), SL_ENOENT);
    assert_int_equal(sl_cri_joiner_pending(j), 0);
    /* Escaped docker pieces are unescaped on the way in. */
    sl_cri_line d1 = {30, SL_CRI_STDOUT, true, true, {"a\\tb", 4}};
    sl_cri_line d2 = {31, SL_CRI_STDOUT, false, true, {"\\u00e9", 6}};
    assert_int_equal(sl_cri_joiner_add(j, &d1, &m, &t, &flags), SL_EAGAIN);
    assert_int_equal(sl_cri_joiner_add(j, &d2, &m, &t, &flags), 0);
    assert_slice(m, "a\tb\xc3\xa9");
    assert_int_equal(flags, 0);
    sl_cri_joiner_free(j);
}

static void test_parse_record(void **st)
{
    (void)st;
    const char *lines[] = {
        "2016-10-06T00:17:09.669794202Z stdout P first half, ",
        "2016-10-06T00:17:10Z stdout F second half",
        "2016-10-06T00:17:11Z stderr F alone",
        "not cri at all",
    };
    sl_batch *b = sl_batch_new(8);
    sl_cri_joiner *j;
    assert_int_equal(sl_cri_joiner_new(1 << 20, &j), 0);
    sl_record *r[4];
    sl_err e = {0};
    for (int i = 0; i < 4; i++)
        r[i] = sl_batch_add(b, (sl_slice){lines[i], strlen(lines[i])}, 5, 0);
    assert_int_equal(sl_cri_join_record(b, r[0], false, j, NULL, &e), 0);
    assert_true(r[0]->flags & SL_RF_DROPPED); /* held in the joiner */
    assert_int_equal(sl_cri_join_record(b, r[1], false, j, NULL, &e), 0);
    assert_slice(r[1]->line, "first half, second half");
    assert_int_equal(r[1]->time_ns, T0);
    assert_false(r[1]->flags & SL_RF_DROPPED);
    assert_slice(sl_record_field(r[1], "stream", 6)->val, "stdout");
    assert_int_equal(sl_cri_join_record(b, r[2], false, j, NULL, &e), 0);
    assert_ptr_equal(r[2]->line.p, lines[2] + 30); /* zero copy */
    assert_slice(sl_record_field(r[2], "stream", 6)->val, "stderr");
    assert_int_equal(sl_cri_join_record(b, r[3], false, j, NULL, &e), SL_EPARSE);
    assert_int_equal(r[3]->time_ns, 5);
    assert_ptr_equal(r[3]->line.p, lines[3]);
    assert_int_equal(r[3]->nfields, 0);

    const char *dl =
        "{\"log\":\"caf\\u00e9 \\\"ok\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:17:"
        "09.669794202Z\"}";
    sl_record *rd = sl_batch_add(b, (sl_slice){dl, strlen(dl)}, 0, 0);
    rd->flags |= SL_RF_LINE_UTF8; /* as a json step before it leaves it */
    assert_int_equal(sl_docker_parse_record(b, rd, rd->line, &e), 0);
    assert_slice(rd->line, "caf\xc3\xa9 \"ok\"");
    assert_false(rd->flags & SL_RF_LINE_UTF8); /* a new line: not what was checked */
    assert_int_equal(rd->time_ns, T0);
    sl_cri_joiner_free(j);
    sl_batch_unref(b);
}

static void test_k8s_paths(void **st)
{
    (void)st;
    sl_k8s_meta m;
    const char *p = "/var/log/containers/"
                    "coredns-5d78c9869d-abcde_kube-system_coredns-"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.log";
    char *d = exact(p, strlen(p));
    assert_int_equal(sl_k8s_from_path(d, strlen(p), &m), 0);
    assert_slice(m.pod, "coredns-5d78c9869d-abcde");
    assert_slice(m.namespace_, "kube-system");
    assert_slice(m.container, "coredns");
    assert_slice(m.container_id,
                 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(m.pod_uid.n, 0);
    free(d);
    const char *q = "/var/log/pods/kube-system_etcd-node1_5c0b6d3e-9b1a-4d3c-8a44-2f1e0b7c6d5a/"
                    "etcd/3.log";
    d = exact(q, strlen(q));
    assert_int_equal(sl_k8s_from_path(d, strlen(q), &m), 0);
    assert_slice(m.namespace_, "kube-system");
    assert_slice(m.pod, "etcd-node1");
    assert_slice(m.pod_uid, "5c0b6d3e-9b1a-4d3c-8a44-2f1e0b7c6d5a");
    assert_slice(m.container, "etcd");
    assert_int_equal(m.container_id.n, 0);
    free(d);
    /* A container whose name has dashes. */
    const char *r = "my-app-7f9_default_side-car-0123456789ab.log";
    assert_int_equal(sl_k8s_from_path(r, strlen(r), &m), 0);
    assert_slice(m.container, "side-car");
    assert_slice(m.container_id, "0123456789ab");
    const char *bad[] = {
        "",
        ".log",
        "/var/log/syslog",
        "/var/log/containers/pod_ns_container.log",
        "/var/log/containers/pod_ns_container-xyz.log",
        "/var/log/containers/pod_ns_c_d-0123456789ab.log",
        "/var/log/containers/_ns_c-0123456789ab.log",
        "/var/log/containers/pod__c-0123456789ab.log",
        "/var/log/containers/pod_ns_-0123456789ab.log",
        "/var/log/pods/ns_pod/c/0.log",
        "/var/log/pods/ns_pod_uid//0.log",
        "0.log",
        "/0.log",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = exact(bad[i], strlen(bad[i]));
        if (sl_k8s_from_path(d, strlen(bad[i]), &m) != SL_ENOENT) fail_msg("accepted '%s'", bad[i]);
        free(d);
    }
}

static void test_truncation_and_garbage(void **st)
{
    (void)st;
    const char *samples[] = {
        "2016-10-06T00:17:09.669794202+02:00 stderr P part one ",
        "{\"log\":\"tab\\there \\\"q\\\" "
        "\\ud83d\\ude00\\n\",\"stream\":\"stdout\",\"attrs\":{\"a\":"
        "[1,true,null]},\"time\":\"2016-10-06T00:17:09.669794202Z\"}",
        "/var/log/pods/kube-system_etcd-node1_5c0b6d3e/etcd/3.log",
        "/var/log/containers/a_b_c-0123456789ab.log",
    };
    sl_batch *b = sl_batch_new(1);
    sl_cri_joiner *j;
    assert_int_equal(sl_cri_joiner_new(64, &j), 0);
    int whole = 0;
    for (size_t s = 0; s < 4; s++) {
        size_t n = strlen(samples[s]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *d = exact(samples[s], cut);
            sl_cri_line l;
            sl_k8s_meta m;
            int a = sl_cri_parse(d, cut, &l, NULL);
            if (a == 0) assert_true(l.msg.p >= d && l.msg.p + l.msg.n <= d + cut);
            int c = sl_docker_parse(d, cut, &l, NULL);
            if (c == 0) {
                assert_true(l.msg.p >= d && l.msg.p + l.msg.n <= d + cut);
                char *u = malloc(l.msg.n + 1);
                assert_true(sl_docker_unescape(l.msg, u) <= l.msg.n);
                free(u);
            }
            int k = sl_k8s_from_path(d, cut, &m);
            if (cut == n) whole += (a == 0) + (c == 0) + (k == 0);
            sl_record r = {.line = {d, cut}};
            sl_cri_join_record(b, &r, false, j, NULL, NULL);
            sl_record r2 = {.line = {d, cut}};
            sl_cri_join_record(b, &r2, true, j, NULL, NULL);
            free(d);
        }
    }
    assert_int_equal(whole, 4);
    uint32_t x = 3;
    for (int it = 0; it < 30000; it++) {
        char buf[96];
        size_t n = 1 + it % 95;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            buf[i] = (x >> 9) % 3 ? "{}[]\":,\\ nu0"[(x >> 13) % 12] : (char)(x >> 16);
        }
        char *d = exact(buf, n);
        sl_cri_line l;
        if (sl_docker_parse(d, n, &l, NULL) == 0) {
            sl_slice mm;
            int64_t t;
            unsigned fl;
            sl_cri_joiner_add(j, &l, &mm, &t, &fl);
        }
        sl_cri_parse(d, n, &l, NULL);
        free(d);
    }
    sl_cri_joiner_free(j);
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cri_lines),
        cmocka_unit_test(test_docker_lines),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_joiner),
        cmocka_unit_test(test_parse_record),
        cmocka_unit_test(test_k8s_paths),
        cmocka_unit_test(test_truncation_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
