#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/batch.h"
#include "core/err.h"
#include "parsers/regex.h"
#include "tests/helpers.h"

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

static const sl_field *get(const sl_field *f, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (sl_slice_eq(f[i].key, key, strlen(key))) return &f[i];
    return NULL;
}

static void want(const sl_field *f, int n, const char *key, const char *val)
{
    const sl_field *x = get(f, n, key);
    if (!x) fail_msg("no field %s", key);
    assert_slice(x->val, val);
    assert_int_equal(x->type, SL_V_STRING);
}

static sl_regex *compile(const char *pat, const sl_regex_opts *o)
{
    sl_regex *re = NULL;
    sl_err e = {0};
    int rc = sl_regex_new(pat, strlen(pat), o, &re, &e);
    if (rc) fail_msg("compile '%s': %s", pat, e.msg);
    return re;
}

static void test_compile_errors(void **st)
{
    (void)st;
    sl_regex *re = NULL;
    sl_err e = {0};
    assert_int_equal(sl_regex_new("(?<a>x", 6, NULL, &re, &e), SL_EINVAL);
    assert_null(re);
    assert_non_null(strstr(e.msg, "offset 6"));
    assert_int_equal(sl_regex_new("a[b", 3, NULL, &re, &e), SL_EINVAL);
    assert_non_null(strstr(e.msg, "offset 3"));
    assert_int_equal(sl_regex_builtin("nginx_fancy", NULL, &re, &e), SL_ENOENT);
    assert_non_null(strstr(e.msg, "nginx_combined"));
    assert_null(sl_regex_builtin_pattern("nope"));
    assert_non_null(sl_regex_builtin_pattern("apache_common"));
}

static void test_groups(void **st)
{
    (void)st;
    for (int jit = 0; jit < 2; jit++) {
        sl_regex_opts o = {.no_jit = !jit};
        sl_regex *re = compile("^(?<level>\\w+): (?:(?<a>x+)|(?<b>y+)) (?<rest>.*)$", &o);
        uint32_t have_jit = 0;
        pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
        assert_int_equal(sl_regex_jitted(re), jit && have_jit);
        assert_int_equal(sl_regex_nnames(re), 4);
        const char *s = "warn: yyy the rest";
        char *d = exact(s, strlen(s));
        sl_field f[8];
        sl_err e = {0};
        int n = sl_regex_match(re, d, strlen(s), f, 8, &e);
        assert_int_equal(n, 3);          /* a is unset: skipped */
        assert_slice(f[0].key, "level"); /* in pattern order */
        assert_slice(f[0].val, "warn");
        assert_slice(f[1].key, "b");
        assert_slice(f[1].val, "yyy");
        assert_slice(f[2].val, "the rest");
        assert_int_equal(sl_regex_match(re, d, strlen(s), f, 1, &e), 1); /* cap respected */
        free(d);
        assert_int_equal(sl_regex_match(re, "nothing here", 12, f, 8, &e), SL_EPARSE);
        assert_non_null(strstr(e.msg, "no match"));
        /* No named groups at all; an empty (NULL) subject. */
        sl_regex *none = compile("^$", &o);
        assert_int_equal(sl_regex_match(none, NULL, 0, f, 8, &e), 0);
        assert_int_equal(sl_regex_fields_init(none, f, 8), 0);
        assert_int_equal(sl_regex_exec(none, "", 0, f, 8, &e), 0);
        sl_regex_free(none);
        /* Trailing unset groups (rc smaller than the group count). */
        sl_regex *t = compile("(?<x>a)(?<y>b)?", &o);
        assert_int_equal(sl_regex_match(t, "ac", 2, f, 8, &e), 1);
        sl_regex_free(t);
        sl_regex_free(re);
    }
}

static void test_limits_and_bytes(void **st)
{
    (void)st;
    char s[64];
    memset(s, 'a', 40);
    s[40] = 'b';
    for (int jit = 0; jit < 2; jit++) {
        sl_regex_opts o = {.match_limit = 10000, .no_jit = !jit};
        sl_regex *re = compile("^(?<x>(a+)+)$", &o);
        sl_field f[4];
        sl_err e = {0};
        char *d = exact(s, 41);
        assert_int_equal(sl_regex_match(re, d, 41, f, 4, &e), SL_EPARSE);
        assert_non_null(strstr(e.msg, "limit"));
        free(d);
        sl_regex_free(re);
        /* NUL bytes are subject bytes. */
        re = compile("(?<k>a\\x00b)", &o);
        assert_int_equal(sl_regex_match(re, "xa\0b", 4, f, 4, &e), 1);
        assert_int_equal(f[0].val.n, 3);
        sl_regex_free(re);
        /* UTF mode on invalid UTF-8: no match, no crash. */
        sl_regex_opts u = o;
        u.utf = true;
        re = compile("^(?<w>.+)$", &u);
        d = exact("\xff\xfe", 2);
        assert_int_equal(sl_regex_match(re, d, 2, f, 4, &e), SL_EPARSE);
        free(d);
        d = exact("caf\xc3\xa9", 5);
        assert_int_equal(sl_regex_match(re, d, 5, f, 4, &e), 1);
        free(d);
        sl_regex_free(re);
        /* Byte mode: any bytes. */
        re = compile("^(?<w>.+)$", &o);
        d = exact("\xff\xfe", 2);
        assert_int_equal(sl_regex_match(re, d, 2, f, 4, &e), 1);
        free(d);
        sl_regex_free(re);
    }
}

static char *sample(const char *dir, const char *name, size_t *n)
{
    const char *d = sl_t_testdata(dir);
    if (!d) return NULL;
    char *path = sl_t_path(d, name);
    char *text = sl_t_read_file(path, n);
    free(path);
    return text;
}

static size_t lines_of(char *text, size_t n, sl_slice *out, size_t cap)
{
    size_t c = 0, s = 0;
    for (size_t i = 0; i < n && c < cap; i++)
        if (text[i] == '\n') {
            out[c++] = (sl_slice){text + s, i - s};
            s = i + 1;
        }
    if (s < n && c < cap) out[c++] = (sl_slice){text + s, n - s};
    return c;
}

static int match_line(sl_regex *re, sl_slice l, sl_field *f, char **copy)
{
    *copy = exact(l.p, l.n);
    sl_err e = {0};
    return sl_regex_match(re, *copy, l.n, f, 32, &e);
}

static void test_lnav_access(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("access/lnav", "logfile_access_log.0", &n);
    if (!t) skip();
    sl_slice l[8];
    assert_int_equal(lines_of(t, n, l, 8), 3);
    const char *names[] = {"nginx_combined", "apache_combined"};
    for (int k = 0; k < 2; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(names[k], NULL, &re, NULL), 0);
        sl_field f[32];
        char *d;
        int c = match_line(re, l[0], f, &d);
        assert_int_equal(c, k == 0 ? 10 : 11);
        want(f, c, "remote_addr", "192.168.202.254");
        want(f, c, "remote_user", "-");
        want(f, c, "time_local", "20/Jul/2009:22:59:26 +0000");
        want(f, c, "method", "GET");
        want(f, c, "path", "/vmw/cgi/tramp");
        want(f, c, "protocol", "HTTP/1.0");
        want(f, c, "status", "200");
        want(f, c, "body_bytes_sent", "134");
        want(f, c, "http_referer", "-");
        want(f, c, "http_user_agent", "gPXE/0.9.7");
        if (k == 1) want(f, c, "ident", "-");
        free(d);
        c = match_line(re, l[1], f, &d);
        want(f, c, "path", "/vmw/vSphere/default/vmkboot.gz");
        want(f, c, "status", "404");
        want(f, c, "body_bytes_sent", "46210");
        free(d);
        /* The record gets the fields and its time. */
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, l[2], 1, 0);
        assert_int_equal(sl_regex_parse_record(b, r, r->line, re, NULL), 0);
        assert_int_equal(r->time_ns, 1248130769LL * 1000000000);
        assert_slice(sl_record_field(r, "body_bytes_sent", 15)->val, "78929");
        sl_batch_unref(b);
        sl_regex_free(re);
    }
    free(t);

    /* Request "-" with status 400. */
    t = sample("access/lnav", "logfile_access_log.1", &n);
    assert_non_null(t);
    assert_int_equal(lines_of(t, n, l, 8), 1);
    for (int k = 0; k < 2; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(names[k], NULL, &re, NULL), 0);
        sl_field f[32];
        char *d;
        int c = match_line(re, l[0], f, &d);
        assert_true(c > 0);
        want(f, c, "remote_addr", "10.112.81.15");
        want(f, c, "status", "400");
        want(f, c, "body_bytes_sent", "0");
        want(f, c, "time_local", "15/Feb/2013:06:00:31 +0000");
        assert_null(get(f, c, "method"));
        assert_null(get(f, c, "path"));
        free(d);
        sl_regex_free(re);
    }
    free(t);

    /* Line 2 lacks the ident and user fields: rejected, lines 1 and 3 fine. */
    t = sample("access/lnav", "logfile_bad_access_log.0", &n);
    assert_non_null(t);
    assert_int_equal(lines_of(t, n, l, 8), 3);
    for (int k = 0; k < 2; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(names[k], NULL, &re, NULL), 0);
        sl_field f[32];
        char *d;
        assert_true(match_line(re, l[0], f, &d) > 0);
        free(d);
        assert_int_equal(match_line(re, l[1], f, &d), SL_EPARSE);
        free(d);
        assert_true(match_line(re, l[2], f, &d) > 0);
        free(d);
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, l[1], 1, 0);
        assert_int_equal(sl_regex_parse_record(b, r, r->line, re, NULL), SL_EPARSE);
        assert_int_equal(r->nfields, 0);
        assert_int_equal(r->time_ns, 1);
        sl_batch_unref(b);
        sl_regex_free(re);
    }
    free(t);
}

static void test_beats_nginx(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("access/beats-nginx", "test.log", &n);
    if (!t) skip();
    sl_slice l[16];
    assert_int_equal(lines_of(t, n, l, 16), 7);
    const char *names[] = {"nginx_combined", "apache_combined"};
    for (int k = 0; k < 2; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(names[k], NULL, &re, NULL), 0);
        sl_field f[32];
        char *d[7];
        int c[7];
        for (int i = 0; i < 7; i++) {
            c[i] = match_line(re, l[i], f, &d[i]);
            if (c[i] <= 0)
                fail_msg("%s dropped line %d: %.*s", names[k], i + 1, (int)l[i].n, l[i].p);
        }
        /* 1: X-Forwarded-For chain before the client address. */
        c[0] = sl_regex_match(re, d[0], l[0].n, f, 32, NULL);
        want(f, c[0], "x_forwarded_for", "10.0.0.2, 10.0.0.1");
        want(f, c[0], "remote_addr", "127.0.0.1");
        want(f, c[0], "time_local", "07/Dec/2016:11:05:07 +0100");
        want(f, c[0], "path", "/ocelot");
        want(f, c[0], "http_user_agent",
             "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0");
        /* 2: an extra trailing quoted field. */
        c[1] = sl_regex_match(re, d[1], l[1].n, f, 32, NULL);
        want(f, c[1], "remote_addr", "172.17.0.1");
        want(f, c[1], "status", "404");
        want(f, c[1], "http_user_agent",
             "Mozilla/5.0 (Windows NT 6.1; rv:15.0) Gecko/20120716 Firefox/15.0a2");
        assert_null(get(f, c[1], "x_forwarded_for"));
        c[2] = sl_regex_match(re, d[2], l[2].n, f, 32, NULL);
        want(f, c[2], "remote_addr", "85.181.35.98");
        /* 5: a quoted XFF list. */
        c[4] = sl_regex_match(re, d[4], l[4].n, f, 32, NULL);
        want(f, c[4], "x_forwarded_for", "10.5.102.222, 199.96.1.1, 204.246.1.1");
        want(f, c[4], "remote_addr", "10.2.1.185");
        want(f, c[4], "path", "/assets/xxxx?q=100");
        /* 6: IPv6 in the chain. */
        c[5] = sl_regex_match(re, d[5], l[5].n, f, 32, NULL);
        want(f, c[5], "x_forwarded_for", "2a03:0000:10ff:f00f:0000:0000:0:8000, 10.225.192.17");
        want(f, c[5], "remote_addr", "10.2.2.121");
        want(f, c[5], "status", "404");
        /* 7: an empty request with 400. */
        c[6] = sl_regex_match(re, d[6], l[6].n, f, 32, NULL);
        want(f, c[6], "remote_addr", "127.0.0.1");
        want(f, c[6], "status", "400");
        assert_null(get(f, c[6], "method"));
        /* The record time honours the +0100 offset. */
        sl_batch *b = sl_batch_new(1);
        sl_record *r = sl_batch_add(b, (sl_slice){d[0], l[0].n}, 1, 0);
        assert_int_equal(sl_regex_parse_record(b, r, r->line, re, NULL), 0);
        assert_int_equal(r->time_ns, 1481105107LL * 1000000000);
        sl_batch_unref(b);
        for (int i = 0; i < 7; i++) free(d[i]);
        sl_regex_free(re);
    }
    free(t);
}

static void test_more_access_lines(void **st)
{
    (void)st;
    sl_regex *re = NULL;
    assert_int_equal(sl_regex_builtin("nginx_combined", NULL, &re, NULL), 0);
    sl_field f[32];
    const char *v6 =
        "::1 - bob [01/Jan/2024:00:00:00 +0000] \"POST /api?x=\\\"y\\\" HTTP/2.0\" 201 "
        "- \"https://ex.com/\" \"curl/8\"";
    int c = sl_regex_match(re, v6, strlen(v6), f, 32, NULL);
    want(f, c, "remote_addr", "::1");
    want(f, c, "remote_user", "bob");
    want(f, c, "method", "POST");
    want(f, c, "path", "/api?x=\\\"y\\\"");
    want(f, c, "body_bytes_sent", "-");
    want(f, c, "http_referer", "https://ex.com/");
    const char *tls = "1.2.3.4 - - [01/Jan/2024:00:00:00 +0000] \"\\x16\\x03\\x01\\x00\" 400 157 "
                      "\"-\" \"-\"";
    c = sl_regex_match(re, tls, strlen(tls), f, 32, NULL);
    want(f, c, "status", "400");
    assert_null(get(f, c, "method"));
    sl_regex_free(re);
    assert_int_equal(sl_regex_builtin("apache_common", NULL, &re, NULL), 0);
    const char *common = "127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] \"GET "
                         "/apache_pb.gif HTTP/1.0\" 200 2326";
    c = sl_regex_match(re, common, strlen(common), f, 32, NULL);
    want(f, c, "ident", "user-identifier");
    want(f, c, "remote_user", "frank");
    want(f, c, "body_bytes_sent", "2326");
    sl_batch *b = sl_batch_new(1);
    sl_record *r = sl_batch_add(b, (sl_slice){common, strlen(common)}, 0, 0);
    assert_int_equal(sl_regex_parse_record(b, r, r->line, re, NULL), 0);
    assert_int_equal(r->time_ns, 971211336LL * 1000000000);
    sl_batch_unref(b);
    sl_regex_free(re);
}

static void test_fixed_layout(void **st)
{
    (void)st;
    sl_regex *re = NULL;
    assert_int_equal(sl_regex_builtin("nginx_combined", NULL, &re, NULL), 0);
    /* Ten names in the strict pattern, x_forwarded_for from the lenient one. */
    assert_int_equal(sl_regex_nnames(re), 11);
    sl_field f[16];
    assert_int_equal(sl_regex_fields_init(re, f, 16), 11);
    assert_slice(f[0].key, "remote_addr");
    assert_slice(f[9].key, "http_user_agent");
    assert_slice(f[10].key, "x_forwarded_for");
    sl_err e = {0};
    assert_int_equal(sl_regex_exec(re, "x", 1, f, 10, &e), SL_EINVAL);
    const char *a =
        "1.2.3.4 - - [01/Jan/2024:00:00:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"ua\"";
    const char *b = "9.9.9.9, 8.8.8.8 - - [01/Jan/2024:00:00:00 +0000] \"\" 400 0 \"-\" \"-\"";
    for (int round = 0; round < 2; round++) {
        char *d = exact(a, strlen(a));
        assert_int_equal(sl_regex_exec(re, d, strlen(a), f, 16, &e), 0);
        assert_slice(f[0].val, "1.2.3.4");
        assert_slice(f[4].val, "/a");
        assert_null(f[10].val.p); /* not in the strict pattern */
        free(d);
        d = exact(b, strlen(b));
        assert_int_equal(sl_regex_exec(re, d, strlen(b), f, 16, &e), 0);
        assert_slice(f[0].val, "8.8.8.8");
        assert_slice(f[10].val, "9.9.9.9");
        assert_null(f[3].val.p); /* no method in an empty request */
        assert_slice(f[6].val, "400");
        free(d);
        assert_slice(f[2].key, "time_local"); /* keys never change */
    }
    assert_int_equal(sl_regex_exec(re, "nope", 4, f, 16, &e), SL_EPARSE);
    sl_regex_free(re);
    /* Duplicate names and an unnamed group in a user pattern. */
    re = compile("(?J)(x)(?:(?<v>a)|(?<v>b))(?<w>c)?", NULL);
    assert_int_equal(sl_regex_fields_init(re, f, 16), 2);
    assert_int_equal(sl_regex_exec(re, "xb", 2, f, 16, &e), 0);
    assert_slice(f[0].val, "b");
    assert_null(f[1].val.p);
    assert_int_equal(sl_regex_exec(re, "xac", 3, f, 16, &e), 0);
    assert_slice(f[0].val, "a");
    assert_slice(f[1].val, "c");
    sl_regex_free(re);
}

static void test_truncation_and_garbage(void **st)
{
    (void)st;
    const char *lines[] = {
        "10.0.0.2, 10.0.0.1, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] \"GET /ocelot HTTP/1.1\" "
        "200 571 \"-\" \"Mozilla/5.0\" \"-\"",
        "\"10.5.102.222, 199.96.1.1\" 10.2.1.185 - - [22/Jan/2016:13:18:29 +0000] \"GET /a\\\"b "
        "HTTP/1.1\" 200 25507 \"-\" \"Amazon CloudFront\"",
    };
    const char *names[] = {"nginx_combined", "apache_combined", "apache_common"};
    sl_batch *b = sl_batch_new(1);
    int whole = 0;
    for (int k = 0; k < 3; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(names[k], NULL, &re, NULL), 0);
        for (int s = 0; s < 2; s++) {
            size_t n = strlen(lines[s]);
            for (size_t cut = 0; cut <= n; cut++) {
                char *d = exact(lines[s], cut);
                sl_field f[32];
                int c = sl_regex_match(re, d, cut, f, 32, NULL);
                for (int i = 0; i < c; i++)
                    assert_true(f[i].val.p >= d && f[i].val.p + f[i].val.n <= d + cut);
                if (cut == n && c > 0) whole++;
                sl_record r = {.line = {d, cut}};
                sl_regex_parse_record(b, &r, r.line, re, NULL);
                free(d);
            }
        }
        sl_regex_free(re);
    }
    assert_int_equal(whole, 6);
    /* Random patterns: compile or fail cleanly; matches stay bounded. */
    uint32_t x = 11;
    sl_regex_opts o = {.match_limit = 5000};
    for (int it = 0; it < 3000; it++) {
        char pat[24], subj[48];
        size_t pn = 1 + it % 23, sn = it % 48;
        for (size_t i = 0; i < pn; i++) {
            x = x * 1103515245 + 12345;
            pat[i] = "()?*+|[]ab.\\<>dw{}1,^$"[(x >> 13) % 22];
        }
        for (size_t i = 0; i < sn; i++) {
            x = x * 1103515245 + 12345;
            subj[i] = (x >> 9) % 4 ? "ab1 "[(x >> 13) % 4] : (char)(x >> 16);
        }
        sl_regex *re = NULL;
        if (sl_regex_new(pat, pn, &o, &re, NULL) != 0) continue;
        char *d = exact(subj, sn);
        sl_field f[8];
        sl_regex_match(re, d, sn, f, 8, NULL);
        free(d);
        sl_regex_free(re);
    }
    sl_batch_unref(b);
}

/* Built-ins compiled once for builtin_line: field keys point into the
 * compiled pattern, so it lives until the group's teardown. */
static struct {
    const char *name;
    sl_regex *re;
} compiled[8];

static int free_compiled(void **st)
{
    (void)st;
    for (size_t k = 0; k < 8; k++) sl_regex_free(compiled[k].re);
    return 0;
}

/* Matches a C string with a built-in; the fields' values point into a
 * heap copy (*copy, freed by the caller). */
static int builtin_line(const char *name, const char *line, sl_field *f, char **copy)
{
    size_t k = 0;
    while (k < 8 && compiled[k].name && strcmp(compiled[k].name, name) != 0) k++;
    assert_true(k < 8);
    if (!compiled[k].name) {
        assert_int_equal(sl_regex_builtin(name, NULL, &compiled[k].re, NULL), 0);
        compiled[k].name = name;
    }
    return match_line(compiled[k].re, (sl_slice){line, strlen(line)}, f, copy);
}

/* Issue 21 case 6: access-log variants (lines written for this test). */
static void test_access_variants(void **st)
{
    (void)st;
    sl_field f[32];
    char *d;
    /* apache_combined takes common-format lines (both share a file). */
    const char *common = "198.51.100.7 - frank [10/Oct/2026:13:55:36 -0700] \"GET /a.gif "
                         "HTTP/1.0\" 200 2326";
    int c = builtin_line("apache_combined", common, f, &d);
    assert_true(c > 0);
    want(f, c, "remote_addr", "198.51.100.7");
    want(f, c, "remote_user", "frank");
    want(f, c, "status", "200");
    want(f, c, "body_bytes_sent", "2326");
    assert_null(get(f, c, "http_referer"));
    assert_null(get(f, c, "http_user_agent"));
    free(d);
    const char *combined = "198.51.100.7 - - [10/Oct/2026:13:55:36 -0700] \"GET / HTTP/1.1\" 304 "
                           "- \"https://example.org/\" \"curl/8.5\"";
    c = builtin_line("apache_combined", combined, f, &d);
    want(f, c, "http_referer", "https://example.org/");
    want(f, c, "http_user_agent", "curl/8.5");
    want(f, c, "body_bytes_sent", "-");
    free(d);
    /* A vhost before the client is not an X-Forwarded-For chain: an error
     * in apache_combined, and vhost_combined's fields. */
    const char *vhost[] = {
        "vhost1.example 203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] \"GET /x HTTP/1.1\" 200 "
        "512 \"-\" \"Mozilla/5.0\"",
        "vhost1.example:443 203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] \"GET /x HTTP/1.1\" 200 "
        "512 \"-\" \"Mozilla/5.0\"",
    };
    for (int k = 0; k < 2; k++) {
        assert_int_equal(builtin_line("apache_combined", vhost[k], f, &d), SL_EPARSE);
        free(d);
        assert_int_equal(builtin_line("nginx_combined", vhost[k], f, &d), SL_EPARSE);
        free(d);
        c = builtin_line("vhost_combined", vhost[k], f, &d);
        assert_true(c > 0);
        want(f, c, "vhost", "vhost1.example");
        if (k == 1) want(f, c, "port", "443");
        if (k == 0) assert_null(get(f, c, "port"));
        want(f, c, "remote_addr", "203.0.113.9");
        want(f, c, "path", "/x");
        want(f, c, "http_user_agent", "Mozilla/5.0");
        assert_null(get(f, c, "x_forwarded_for"));
        free(d);
    }
    /* The record's time comes from time_local in vhost_combined too. */
    sl_regex *re = NULL;
    assert_int_equal(sl_regex_builtin("vhost_combined", NULL, &re, NULL), 0);
    sl_batch *b = sl_batch_new(1);
    sl_record *r = sl_batch_add(b, (sl_slice){vhost[1], strlen(vhost[1])}, 1, 0);
    assert_int_equal(sl_regex_parse_record(b, r, r->line, re, NULL), 0);
    assert_int_equal(r->time_ns, (int64_t)1791640536 * 1000000000);
    sl_batch_unref(b);
    sl_regex_free(re);
}

static void test_error_logs(void **st)
{
    (void)st;
    sl_field f[32];
    char *d;
    const char *a24 = "[Wed Oct 11 14:32:52.123456 2026] [core:error] [pid 35708:tid 4328636416] "
                      "[client 192.0.2.15:56000] AH00126: Invalid URI in request GET /%%% HTTP/1.1";
    int c = builtin_line("apache_error", a24, f, &d);
    assert_true(c > 0);
    want(f, c, "time", "Wed Oct 11 14:32:52.123456 2026");
    want(f, c, "module", "core");
    want(f, c, "level", "error");
    want(f, c, "pid", "35708");
    want(f, c, "tid", "4328636416");
    want(f, c, "client", "192.0.2.15:56000");
    want(f, c, "error_code", "AH00126");
    want(f, c, "message", "Invalid URI in request GET /%%% HTTP/1.1");
    free(d);
    const char *a22 = "[Sun Dec 04 04:47:44 2026] [error] [client 192.0.2.3] File does not exist: "
                      "/var/www/html/favicon.ico";
    c = builtin_line("apache_error", a22, f, &d);
    want(f, c, "level", "error");
    want(f, c, "client", "192.0.2.3");
    want(f, c, "message", "File does not exist: /var/www/html/favicon.ico");
    assert_null(get(f, c, "module"));
    assert_null(get(f, c, "pid"));
    free(d);
    const char *a22n = "[Sun Dec 04 04:47:44 2026] [notice] workerEnv.init() ok /etc/workers.conf";
    c = builtin_line("apache_error", a22n, f, &d);
    want(f, c, "level", "notice");
    want(f, c, "message", "workerEnv.init() ok /etc/workers.conf");
    free(d);
    assert_int_equal(builtin_line("apache_error", "no brackets here", f, &d), SL_EPARSE);
    free(d);

    const char *n1 = "2026/10/11 14:32:52 [error] 1234#5678: *9 open() \"/srv/www/favicon.ico\" "
                     "failed (2: No such file or directory), client: 192.0.2.4, server: "
                     "example.org, request: \"GET /favicon.ico HTTP/1.1\", host: \"example.org\", "
                     "referrer: \"https://example.org/\"";
    c = builtin_line("nginx_error", n1, f, &d);
    assert_true(c > 0);
    want(f, c, "time", "2026/10/11 14:32:52");
    want(f, c, "level", "error");
    want(f, c, "pid", "1234");
    want(f, c, "tid", "5678");
    want(f, c, "connection", "9");
    want(f, c, "message", "open() \"/srv/www/favicon.ico\" failed (2: No such file or directory)");
    want(f, c, "client", "192.0.2.4");
    want(f, c, "server", "example.org");
    want(f, c, "request", "GET /favicon.ico HTTP/1.1");
    want(f, c, "host", "example.org");
    want(f, c, "referrer", "https://example.org/");
    free(d);
    const char *n2 = "2026/10/11 14:32:53 [notice] 1#1: signal process started";
    c = builtin_line("nginx_error", n2, f, &d);
    want(f, c, "level", "notice");
    want(f, c, "message", "signal process started");
    assert_null(get(f, c, "connection"));
    assert_null(get(f, c, "client"));
    free(d);
    const char *n3 = "2026/10/11 14:32:54 [error] 7#7: *3 upstream timed out (110: Connection "
                     "timed out) while reading response header from upstream, client: 192.0.2.8, "
                     "server: _, request: \"POST /api HTTP/2.0\", upstream: "
                     "\"http://127.0.0.1:8080/api\", host: \"api.example\"";
    c = builtin_line("nginx_error", n3, f, &d);
    want(f, c, "upstream", "http://127.0.0.1:8080/api");
    want(f, c, "server", "_");
    want(f, c, "message",
         "upstream timed out (110: Connection timed out) while reading "
         "response header from upstream");
    free(d);
    /* Details in an order the fast pattern does not know: the lenient one
     * keeps every byte, the unknown part in the message. */
    const char *n4 = "2026/10/11 14:32:55 [warn] 7#7: *4 an upstream response is buffered, client: "
                     "192.0.2.9, server: _, subrequest: \"/auth\", request: \"GET / HTTP/1.1\", "
                     "host: \"h.example\"";
    c = builtin_line("nginx_error", n4, f, &d);
    assert_true(c > 0);
    want(f, c, "message",
         "an upstream response is buffered, client: 192.0.2.9, server: _, "
         "subrequest: \"/auth\"");
    want(f, c, "request", "GET / HTTP/1.1");
    want(f, c, "host", "h.example");
    free(d);
}

/* The new built-ins on every prefix of a line, each an exact-size copy:
 * slices stay inside it (ASan), the whole line matches. */
static void test_new_builtins_cut(void **st)
{
    (void)st;
    static const struct {
        const char *name, *line;
    } c[] = {
        {"vhost_combined", "v.example:80 192.0.2.1 - - [10/Oct/2026:13:55:36 +0000] \"GET /\\\" "
                           "HTTP/1.1\" 200 5 \"-\" \"a\\\"b\""},
        {"apache_error", "[Wed Oct 11 14:32:52 2026] [ssl:warn] [pid 1] AH01909: cert mismatch"},
        {"nginx_error", "2026/10/11 14:32:52 [crit] 2#0: *1 SSL_do_handshake() failed, client: "
                        "192.0.2.1, server: 0.0.0.0:443"},
    };
    sl_batch *b = sl_batch_new(1);
    for (size_t k = 0; k < sizeof c / sizeof *c; k++) {
        sl_regex *re = NULL;
        assert_int_equal(sl_regex_builtin(c[k].name, NULL, &re, NULL), 0);
        size_t n = strlen(c[k].line);
        for (size_t cut = 0; cut <= n; cut++) {
            char *d = exact(c[k].line, cut);
            sl_field f[32];
            int got = sl_regex_match(re, d, cut, f, 32, NULL);
            for (int i = 0; i < got; i++)
                assert_true(f[i].val.p >= d && f[i].val.p + f[i].val.n <= d + cut);
            if (cut == n && got <= 0) fail_msg("%s rejected %s", c[k].name, c[k].line);
            sl_record r = {.line = {d, cut}};
            sl_regex_parse_record(b, &r, r.line, re, NULL);
            free(d);
        }
        sl_regex_free(re);
    }
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_errors),   cmocka_unit_test(test_groups),
        cmocka_unit_test(test_limits_and_bytes), cmocka_unit_test(test_lnav_access),
        cmocka_unit_test(test_beats_nginx),      cmocka_unit_test(test_more_access_lines),
        cmocka_unit_test(test_fixed_layout),     cmocka_unit_test(test_truncation_and_garbage),
        cmocka_unit_test(test_access_variants),  cmocka_unit_test(test_error_logs),
        cmocka_unit_test(test_new_builtins_cut),
    };
    return cmocka_run_group_tests(tests, NULL, free_compiled);
}
