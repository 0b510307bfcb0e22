#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "collector/multiline.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "core/config.h"
#include "core/metrics.h"
#include "parsers/chain.h"
#include "parsers/syslog.h"
#include "tests/helpers.h"

#define S          1000000000LL
#define JAN10_2025 (1736467200 * S)

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

/* A sample file from ../shared/testdata, or NULL (skip) when absent. */
static char *sample(const char *dir, const char *name, size_t *n)
{
    const char *d = sl_t_testdata(dir);
    if (!d) return NULL;
    char *path = sl_t_path(d, name);
    char *text = sl_t_read_file(path, n);
    if (!text) fprintf(stderr, "%s missing\n", path);
    free(path);
    return text;
}

/* Splits text into lines (no newlines); returns the count. */
static size_t lines_of(char *text, size_t n, sl_slice *out, size_t cap)
{
    size_t c = 0, s = 0;
    for (size_t i = 0; i <= n && c < cap; i++)
        if (i == n || text[i] == '\n') {
            if (i > s || i < n) out[c++] = (sl_slice){text + s, i - s};
            s = i + 1;
        }
    return c;
}

static const sl_syslog_opts at_jan10 = {JAN10_2025, NULL};

static void check_secureauth(const sl_syslog_msg *m, size_t msg_len)
{
    assert_int_equal(m->proto, SL_SYSLOG_RFC5424);
    assert_int_equal(m->pri, 86);
    assert_int_equal(m->facility, 10);
    assert_int_equal(m->severity, 6);
    assert_int_equal(m->version, 1);
    assert_true(m->has_time);
    assert_int_equal(m->time_ns, 1438811939693000000LL);
    assert_slice(m->timestamp, "2015-08-05T21:58:59.693Z");
    assert_slice(m->hostname, "192.168.2.132");
    assert_slice(m->appname, "SecureAuth0");
    assert_slice(m->procid, "23108");
    assert_slice(m->msgid, "ID52020");
    assert_int_equal(m->sd_elements, 1);
    assert_int_equal(m->sd_params, 4);
    sl_syslog_param p[8];
    assert_int_equal(sl_syslog_sd_params(m->sd, p, 8), 4);
    const char *names[] = {"UserHostAddress", "Realm", "UserID", "PEN"};
    const char *vals[] = {"192.168.2.132", "SecureAuth0", "Tester2", "27389"};
    for (int i = 0; i < 4; i++) {
        assert_slice(p[i].id, "SecureAuth@27389");
        assert_slice(p[i].name, names[i]);
        assert_slice(p[i].value, vals[i]);
        assert_false(p[i].escaped);
    }
    assert_slice(m->msg, "Found the user for retrieving user's profile");
    assert_int_equal(m->msg.n, msg_len);
}

static void test_otel_rfc5424(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/otel-dynatrace", "RFC5424", &n);
    if (!t) skip();
    char *d = exact(t, n);
    sl_syslog_msg m;
    sl_err e = {0};
    assert_int_equal(sl_syslog_parse(d, n, &at_jan10, &m, &e), 0);
    check_secureauth(&m, 44);

    /* The same through a record. */
    sl_batch *b = sl_batch_new(2);
    sl_record *r = sl_batch_add(b, (sl_slice){d, n}, 7, n);
    assert_int_equal(sl_syslog_parse_record(b, r, r->line, &at_jan10, &e), 0);
    assert_int_equal(r->time_ns, 1438811939693000000LL);
    struct {
        const char *k, *v;
        int type;
    } want[] = {
        {"facility", "10", SL_V_NUMBER},
        {"severity", "6", SL_V_NUMBER},
        {"level", "info", SL_V_STRING},
        {"version", "1", SL_V_NUMBER},
        {"hostname", "192.168.2.132", SL_V_STRING},
        {"appname", "SecureAuth0", SL_V_STRING},
        {"procid", "23108", SL_V_STRING},
        {"msgid", "ID52020", SL_V_STRING},
        {"SecureAuth@27389.UserHostAddress", "192.168.2.132", SL_V_STRING},
        {"SecureAuth@27389.PEN", "27389", SL_V_STRING},
        {"message", "Found the user for retrieving user's profile", SL_V_STRING},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        sl_field *f = sl_record_field(r, want[i].k, strlen(want[i].k));
        if (!f) fail_msg("no field %s", want[i].k);
        assert_slice(f->val, want[i].v);
        assert_int_equal(f->type, want[i].type);
    }
    assert_int_equal(r->nfields, 4 + 4 + 4 + 1);
    assert_ptr_equal(r->line.p, d); /* the line itself stays */
    sl_batch_unref(b);
    free(d);
    free(t);

    /* PRI 123: facility 15, severity 3. */
    t = sample("syslog/otel-dynatrace", "rfc5424-skip-pri-present", &n);
    assert_non_null(t);
    d = exact(t, n);
    assert_int_equal(sl_syslog_parse(d, n, &at_jan10, &m, &e), 0);
    assert_int_equal(m.pri, 123);
    assert_int_equal(m.facility, 15);
    assert_int_equal(m.severity, 3);
    assert_slice(m.appname, "SecureAuth0");
    free(d);
    free(t);
}

static void test_otel_rfc3164(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/otel-dynatrace", "RFC3164", &n);
    if (!t) skip();
    char *d = exact(t, n);
    sl_syslog_msg m;
    sl_err e = {0};
    assert_int_equal(sl_syslog_parse(d, n, &at_jan10, &m, &e), 0);
    assert_int_equal(m.proto, SL_SYSLOG_RFC3164);
    assert_int_equal(m.pri, 34);
    assert_int_equal(m.facility, 4);
    assert_int_equal(m.severity, 2);
    assert_slice(m.hostname, "1.2.3.4");
    assert_slice(m.appname, "apache_server");
    assert_int_equal(m.procid.n, 0);
    assert_slice(m.msg, "test message");
    /* Feb 4 11:14:27 read on 2025-01-10 is ahead of now: last year's
     * (a year is never inferred into the future, issue 21 case 9). */
    assert_true(m.has_time);
    assert_int_equal(m.time_ns, (sl_ts_days_from_civil(2024, 2, 4) * 86400 + 40467) * S);
    free(d);
    free(t);

    t = sample("syslog/otel-dynatrace", "rfc3164-skip-pri-absent", &n);
    assert_non_null(t);
    d = exact(t, n);
    assert_int_equal(sl_syslog_parse(d, n, &at_jan10, &m, &e), 0);
    assert_true(m.flags & SL_SYSLOG_NO_PRI);
    assert_int_equal(m.pri, -1);
    assert_int_equal(m.facility, -1);
    assert_slice(m.hostname, "1.2.3.4");
    assert_slice(m.appname, "apache_server");
    assert_slice(m.msg, "test message");
    free(d);
    free(t);
}

static void test_otel_framing(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/otel-dynatrace", "rfc6587-octet-counting", &n);
    if (!t) skip();
    sl_slice msg;
    size_t used;
    char *d = exact(t, n);
    assert_int_equal(sl_syslog_frame(d, n, 1 << 20, &msg, &used), 0);
    assert_int_equal(msg.n, 215);
    assert_int_equal(used, n);
    sl_syslog_msg m;
    sl_err e = {0};
    assert_int_equal(sl_syslog_parse(msg.p, msg.n, &at_jan10, &m, &e), 0);
    check_secureauth(&m, 44);
    /* Every shorter prefix is an incomplete frame, never a wrong one. */
    for (size_t cut = 0; cut < n; cut++) {
        char *c = exact(t, cut);
        assert_int_equal(sl_syslog_frame(c, cut, 1 << 20, &msg, &used), SL_EAGAIN);
        free(c);
    }
    assert_int_equal(sl_syslog_frame(d, n, 100, &msg, &used), SL_EPARSE); /* over max_len */
    free(d);
    free(t);

    t = sample("syslog/otel-dynatrace", "rfc6587-octet-counting-preserve-space", &n);
    assert_non_null(t);
    /* Two frames back to back, then a partial third. */
    char *two = malloc(2 * n + 3);
    memcpy(two, t, n);
    memcpy(two + n, t, n);
    memcpy(two + 2 * n, "77 ", 3);
    size_t off = 0;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sl_syslog_frame(two + off, 2 * n + 3 - off, 1 << 20, &msg, &used), 0);
        assert_int_equal(msg.n, 77);
        assert_int_equal(msg.p[76], ' ');
        off += used;
    }
    assert_int_equal(sl_syslog_frame(two + off, 2 * n + 3 - off, 1 << 20, &msg, &used), SL_EAGAIN);
    assert_int_equal(sl_syslog_frame(two, 2 * n + 3, 1 << 20, &msg, &used), 0);
    assert_int_equal(sl_syslog_parse(msg.p, msg.n, &at_jan10, &m, &e), 0);
    assert_slice(m.hostname, "192.168.2.132");
    assert_slice(m.appname, "inactive");
    assert_int_equal(m.procid.n + m.msgid.n + m.sd.n, 0);
    assert_slice(m.msg, " partition is p2 "); /* leading and trailing spaces kept */
    free(two);
    free(t);

    t = sample("syslog/otel-dynatrace", "rfc6587-non-transparent-framing", &n);
    assert_non_null(t);
    d = exact(t, n);
    assert_int_equal(sl_syslog_frame(d, n, 1 << 20, &msg, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(msg.n, n - 1); /* the NUL trailer is the delimiter */
    assert_int_equal(sl_syslog_parse(msg.p, msg.n, &at_jan10, &m, &e), 0);
    check_secureauth(&m, 44);
    /* The parser alone also ignores the NUL trailer. */
    assert_int_equal(sl_syslog_parse(d, n, &at_jan10, &m, &e), 0);
    check_secureauth(&m, 44);
    free(d);
    free(t);
    /* Bad length prefixes. */
    assert_int_equal(sl_syslog_frame("0 x", 3, 100, &msg, &used), SL_EPARSE);
    assert_int_equal(sl_syslog_frame("12x", 3, 100, &msg, &used), SL_EPARSE);
    assert_int_equal(sl_syslog_frame("1234567890123 ", 14, SIZE_MAX, &msg, &used), SL_EPARSE);
}

static void check_line(sl_slice l, const char *host, const char *tag, const char *pid,
                       const char *msg)
{
    char *d = exact(l.p, l.n);
    sl_syslog_msg m;
    sl_err e = {0};
    int rc = sl_syslog_parse(d, l.n, &at_jan10, &m, &e);
    if (rc) fail_msg("'%.*s': %s", (int)l.n, l.p, e.msg);
    assert_true(m.flags & SL_SYSLOG_NO_PRI);
    assert_true(m.has_time);
    assert_slice(m.hostname, host);
    assert_slice(m.appname, tag);
    assert_slice(m.procid, pid);
    assert_slice(m.msg, msg);
    free(d);
}

static void test_lnav_good(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_syslog.0", &n);
    if (!t) skip();
    sl_slice l[8];
    assert_int_equal(lines_of(t, n, l, 8), 4);
    check_line(l[0], "veridian", "automount", "7998", "lookup(file): lookup for foobar failed");
    check_line(l[1], "veridian", "automount", "16442", "attempting to mount entry /auto/opt");
    check_line(l[2], "veridian", "automount", "7999", "lookup(file): lookup for opt failed");
    check_line(l[3], "veridian", "sudo", "",
               "timstack : TTY=pts/6 ; PWD=/auto/wstimstack/rpms/lbuild/test ; USER=root ; "
               "COMMAND=/usr/bin/tail /var/log/messages");
    free(t);
    t = sample("syslog/lnav", "logfile_syslog.2", &n);
    assert_non_null(t);
    assert_int_equal(lines_of(t, n, l, 8), 3);
    check_line(l[0], "veridian", "foo", "7998", "eth0 is up");
    check_line(l[2], "veridian", "foo", "7999", "eth0 is down");
    free(t);
}

static void test_lnav_no_tag_is_flagged(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_bad_syslog.0", &n);
    if (!t) skip();
    sl_slice l[8];
    assert_int_equal(lines_of(t, n, l, 8), 4);
    check_line(l[0], "veridian", "automount", "7998", "lookup(file): lookup for foobar failed");
    check_line(l[3], "veridian", "sudo", "",
               "timstack : TTY=pts/6 ; PWD=/auto/wstimstack/rpms/lbuild/test ; USER=root ; "
               "COMMAND=/usr/bin/tail /var/log/messages");
    /* Line 3 has no `tag:`: host, time and message are kept, the tag is
     * marked missing, never "lookup" taken as the tag. */
    char *d = exact(l[2].p, l[2].n);
    sl_syslog_msg m;
    sl_err e = {0};
    assert_int_equal(sl_syslog_parse(d, l[2].n, &at_jan10, &m, &e), 0);
    assert_true(m.flags & SL_SYSLOG_NO_TAG);
    assert_slice(m.hostname, "veridian");
    assert_int_equal(m.appname.n, 0);
    assert_slice(m.msg, "lookup for opt failed");
    sl_batch *b = sl_batch_new(2);
    sl_record *r = sl_batch_add(b, (sl_slice){d, l[2].n}, 5, 0);
    assert_int_equal(sl_syslog_parse_record(b, r, r->line, &at_jan10, &e), 0);
    assert_non_null(sl_record_field(r, "hostname", 8));
    assert_null(sl_record_field(r, "appname", 7));
    sl_field *w = sl_record_field(r, "parse_warning", 13);
    assert_non_null(w);
    assert_non_null(memmem(w->val.p, w->val.n, "no tag", 6));
    sl_field *msg = sl_record_field(r, "message", 7);
    assert_non_null(msg);
    assert_int_equal(msg->val.n, strlen("lookup for opt failed"));
    assert_int_equal(r->time_ns, (sl_ts_days_from_civil(2024, 11, 3) * 86400 + 33818) * S);
    sl_batch_unref(b);
    free(d);
    free(t);
}

/* One 3164 line through sl_syslog_parse from an exact-size copy. */
static int parse_one(const char *line, const sl_syslog_opts *o, sl_syslog_msg *m)
{
    size_t n = strlen(line);
    char *d = exact(line, n);
    sl_err e = {0};
    int rc = sl_syslog_parse(d, n, o, m, &e);
    /* Slices point into d: rebase them onto line before freeing. */
    sl_slice *sl[] = {&m->timestamp, &m->hostname, &m->appname, &m->procid, &m->msgid, &m->msg};
    for (size_t k = 0; k < sizeof sl / sizeof *sl; k++)
        if (sl[k]->p >= d && sl[k]->p <= d + n) sl[k]->p = line + (sl[k]->p - d);
    free(d);
    return rc;
}

/* Issue 21 case 2: tags not shaped `tag[pid]:` (written for this test in
 * the shapes seen on macOS, old sysklogd and rsyslog). */
static void test_lenient_tags(void **st)
{
    (void)st;
    static const struct {
        const char *line, *host, *app, *pid, *msg;
        bool no_tag;
    } cases[] = {
        {"Jul  4 23:22:09 mbp Microsoft Word[14463]: Font cache rebuilt", "mbp", "Microsoft Word",
         "14463", "Font cache rebuilt", false},
        {"Jul  4 23:22:10 mbp sandboxd[129] ([31211]): Python(31211) deny file-read-data", "mbp",
         "sandboxd", "129", "Python(31211) deny file-read-data", false},
        {"Jun 14 15:16:01 combo syslogd 1.4.1: restart.", "combo", "syslogd 1.4.1", "", "restart.",
         false},
        {"Jun 14 15:16:02 vm nginx upstream timed out", "vm", "", "", "nginx upstream timed out",
         true},
        {"Jun 14 15:16:03 vm Google Chrome Helper[77]: GPU reset", "vm", "Google Chrome Helper",
         "77", "GPU reset", false},
        {"Jun 14 15:16:04 vm kernel: [ 1.234] usb 1-1: new device", "vm", "kernel", "",
         "[ 1.234] usb 1-1: new device", false},
        {"Jun 14 15:16:05 vm CRON[991]: (root) CMD (run-parts /etc/cron.hourly)", "vm", "CRON",
         "991", "(root) CMD (run-parts /etc/cron.hourly)", false},
        /* A colon deep in a sentence is not a tag: too many words before it. */
        {"Jun 14 15:16:06 vm the backup job on disk two failed: no space", "vm", "", "",
         "the backup job on disk two failed: no space", true},
        /* An unclosed `[`: no tag, all of it is the message. */
        {"Jun 14 15:16:07 vm app[12 started", "vm", "", "", "app[12 started", true},
        {"Jun 14 15:16:08 vm app:", "vm", "app", "", "", false},
        /* One-word tags keep the strict reading: no blank needed after it. */
        {"Jun 14 15:16:09 vm sshd[7]:Accepted key", "vm", "sshd", "7", "Accepted key", false},
        {"Jun 14 15:16:10 vm app:started", "vm", "app", "", "started", false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        sl_syslog_msg m;
        assert_int_equal(parse_one(cases[k].line, &at_jan10, &m), 0);
        assert_true(m.has_time);
        assert_slice(m.hostname, cases[k].host);
        assert_slice(m.appname, cases[k].app);
        assert_slice(m.procid, cases[k].pid);
        assert_slice(m.msg, cases[k].msg);
        assert_int_equal(!!(m.flags & SL_SYSLOG_NO_TAG), cases[k].no_tag);
    }
}

/* Through the chain: a tag-less line is parsed, marked and counted as a
 * warning, not as a parse error. */
static void test_no_tag_counted(void **st)
{
    (void)st;
    const char *yaml = "parse:\n  - syslog: {}\n";
    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "t", yaml, strlen(yaml)), 0);
    sl_chain *c = NULL;
    assert_int_equal(sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "notag", &c), 0);
    sl_batch *b = sl_batch_new(4);
    const char *lines[] = {"Jun 14 15:16:02 vm nginx upstream timed out",
                           "Jun 14 15:16:03 vm sshd[1]: ok", "Jun 14 15:16:04 vm worker stalled"};
    for (int k = 0; k < 3; k++) sl_batch_add(b, (sl_slice){lines[k], strlen(lines[k])}, 1, 0);
    sl_chain_run(c, b);
    assert_true(b->records[0].flags & SL_RF_PARSE_WARNING);
    assert_false(b->records[1].flags & SL_RF_PARSE_WARNING);
    for (int k = 0; k < 3; k++) assert_false(b->records[k].flags & SL_RF_PARSE_ERROR);
    assert_int_equal(
        sl_metrics_value("sluice_parse_warnings_total", "input=\"notag\",step=\"syslog\""), 2);
    assert_int_equal(
        sl_metrics_value("sluice_parse_errors_total", "input=\"notag\",step=\"syslog\""), 0);
    sl_batch_unref(b);
    sl_chain_free(c);
    sl_cfg_free(cfg);
}

/* Issue 21 case 3: an ISO time without offset is a wall time in the
 * step's zone (UTC without one). */
static void test_iso_local_time(void **st)
{
    (void)st;
    const char *line = "2019-06-14T10:40:20.912134 localhost sudo: pam_unix(sudo:session): closed";
    int64_t utc =
        (sl_ts_days_from_civil(2019, 6, 14) * 86400 + 10 * 3600 + 40 * 60 + 20) * S + 912134000;
    sl_syslog_msg m;
    assert_int_equal(parse_one(line, &at_jan10, &m), 0);
    assert_true(m.has_time);
    assert_int_equal(m.time_ns, utc);
    assert_slice(m.hostname, "localhost");
    assert_slice(m.appname, "sudo");
    sl_tz *berlin = NULL;
    sl_err e = {0};
    if (sl_tz_load("Europe/Berlin", &berlin, &e) != 0) skip();
    sl_syslog_opts o = {JAN10_2025, berlin};
    assert_int_equal(parse_one(line, &o, &m), 0);
    assert_int_equal(m.time_ns, utc - 7200 * S); /* CEST */
    /* An offset in the text still wins over the zone. */
    assert_int_equal(parse_one("2019-06-14T10:40:20Z localhost sudo: x", &o, &m), 0);
    assert_int_equal(m.time_ns, (utc - 912134000));
    sl_tz_free(berlin);
}

static int64_t line_time(sl_slice l, int64_t now_ns)
{
    char *d = exact(l.p, l.n);
    sl_syslog_msg m;
    sl_syslog_opts o = {now_ns, NULL};
    sl_err e = {0};
    int rc = sl_syslog_parse(d, l.n, &o, &m, &e);
    free(d);
    if (rc) fail_msg("'%.*s': %s", (int)l.n, l.p, e.msg);
    assert_true(m.has_time);
    return m.time_ns;
}

static void test_lnav_year_rollover(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_syslog.1", &n);
    if (!t) skip();
    sl_slice l[8];
    assert_int_equal(lines_of(t, n, l, 8), 4);
    /* Read on 2025-01-10 and on 2025-03-01: December is 2024, January 2025. */
    int64_t nows[] = {JAN10_2025, (int64_t)(sl_ts_days_from_civil(2025, 3, 1) * 86400) * S};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(line_time(l[0], nows[k]), 1733217818 * S); /* 2024-12-03 09:23:38 */
        assert_int_equal(line_time(l[3], nows[k]), 1735897622 * S); /* 2025-01-03 09:47:02 */
        for (int i = 1; i < 4; i++)
            assert_true(line_time(l[i], nows[k]) >= line_time(l[i - 1], nows[k]));
    }
    free(t);
}

static void test_lnav_mixed_times(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_syslog_with_mixed_times.0", &n);
    if (!t) skip();
    sl_slice l[16];
    assert_int_equal(lines_of(t, n, l, 16), 13);
    int64_t base = (sl_ts_days_from_civil(2024, 9, 13) * 86400) * S;
    /* Each line keeps its own time: out of order stays out of order. */
    assert_int_equal(line_time(l[0], JAN10_2025), base + (58 * 60 + 45) * S);
    assert_int_equal(line_time(l[4], JAN10_2025), base + (3 * 3600 + 12 * 60 + 4) * S);
    assert_int_equal(line_time(l[5], JAN10_2025), base + (1 * 3600 + 25 * 60 + 39) * S);
    assert_true(line_time(l[5], JAN10_2025) < line_time(l[4], JAN10_2025));
    check_line(l[1], "Tim-Stacks-iMac.local", "airportd", "59",
               "_configureScanOffloadParameters: Unable to configure scan offloading on en1 "
               "(Device power is off)");
    check_line(l[0], "Tim-Stacks-iMac", "kernel", "0",
               "AirParrot device perform power state change 0 -> 1");
    for (int i = 0; i < 13; i++) line_time(l[i], JAN10_2025);
    free(t);
}

static void test_lnav_french_month(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_syslog_fr.0", &n);
    if (!t) skip();
    sl_slice l[2];
    assert_int_equal(lines_of(t, n, l, 2), 1);
    check_line(l[0], "nlaptop", "symphorien", "4961", "test");
    /* août 19 11:08:37, read on 2025-01-10: 2024-08-19. */
    assert_int_equal(line_time(l[0], JAN10_2025),
                     (sl_ts_days_from_civil(2024, 8, 19) * 86400 + 11 * 3600 + 8 * 60 + 37) * S);
    /* A month name of a language we do not know keeps the fields but not
     * the time (the record keeps its read time). */
    const char *xx = "elokuu 19 11:08:37 nlaptop symphorien[4961]: test";
    sl_syslog_msg m;
    assert_int_equal(sl_syslog_parse(xx, strlen(xx), &at_jan10, &m, NULL), 0);
    assert_true(m.flags & SL_SYSLOG_TIME_UNKNOWN);
    assert_false(m.has_time);
    assert_slice(m.hostname, "nlaptop");
    assert_slice(m.msg, "test");
    free(t);
}

static void test_lnav_continuation_lines(void **st)
{
    (void)st;
    size_t n;
    char *t = sample("syslog/lnav", "logfile_syslog.3", &n);
    if (!t) skip();
    /* The file input joins TAB-indented lines with `multiline: {continue: '^\t'}`;
     * the joined record is one slice, and the parser keeps it whole. */
    sl_cfg *cfg = sl_cfg_new();
    const char *y = "continue: '^\\s'\n";
    assert_int_equal(sl_cfg_load_string(cfg, "test", y, strlen(y)), 0);
    sl_multiline *ml = NULL;
    assert_int_equal(sl_multiline_new(cfg, sl_cfg_root(cfg), &ml), 0);
    sl_slice l[32], rec[16];
    size_t nl = lines_of(t, n, l, 32), nr = 0;
    assert_int_equal(nl, 17);
    for (size_t i = 0; i < nl; i++) {
        if (nr > 0 && sl_multiline_continues(ml, l[i].p, l[i].n))
            rec[nr - 1].n = (size_t)(l[i].p + l[i].n - rec[nr - 1].p);
        else
            rec[nr++] = l[i];
    }
    assert_int_equal(nr, 7);
    sl_syslog_msg m;
    char *d = exact(rec[2].p, rec[2].n);
    assert_int_equal(sl_syslog_parse(d, rec[2].n, &at_jan10, &m, NULL), 0);
    assert_slice(m.hostname, "Tims-Air");
    assert_slice(m.appname, "syslogd");
    assert_slice(m.procid, "314");
    assert_slice(m.msg, "Configuration Notice:\n"
                        "\tASL Module \"com.apple.cdscheduler\" claims selected messages.\n"
                        "\tThose messages may not appear in standard system log files or in the "
                        "ASL database.");
    free(d);
    sl_multiline_free(ml);
    sl_cfg_free(cfg);
    free(t);
}

static void test_edge_cases(void **st)
{
    (void)st;
    sl_syslog_msg m;
    sl_err e = {0};
    /* RFC 5424 examples: nil fields, several SD elements, escapes, BOM. */
    const char *a = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
                    "[exampleSDID@32473 iut=\"3\" eventSource=\"App\\\"li\\]cation\"]"
                    "[examplePriority@32473 class=\"high\"][noParams] \xef\xbb\xbf"
                    "An application event";
    assert_int_equal(sl_syslog_parse(a, strlen(a), NULL, &m, &e), 0);
    assert_int_equal(m.facility, 20);
    assert_int_equal(m.severity, 5);
    assert_int_equal(m.procid.n, 0);
    assert_int_equal(m.sd_elements, 3);
    assert_int_equal(m.sd_params, 3);
    assert_true(m.flags & SL_SYSLOG_BOM);
    assert_slice(m.msg, "An application event");
    sl_syslog_param p[8];
    assert_int_equal(sl_syslog_sd_params(m.sd, p, 8), 4);
    assert_true(p[1].escaped);
    char buf[64];
    sl_slice un = {buf, sl_syslog_sd_unescape(p[1].value, buf)};
    assert_slice(un, "App\"li]cation");
    assert_slice(p[3].id, "noParams");
    assert_int_equal(p[3].name.n, 0);
    sl_batch *b = sl_batch_new(2);
    sl_record *r = sl_batch_add(b, (sl_slice){a, strlen(a)}, 0, 0);
    assert_int_equal(sl_syslog_parse_record(b, r, r->line, NULL, &e), 0);
    sl_field *f = sl_record_field(r, "exampleSDID@32473.eventSource", 29);
    assert_non_null(f);
    assert_slice(f->val, "App\"li]cation");
    assert_non_null(sl_record_field(r, "noParams", 8));
    assert_null(sl_record_field(r, "procid", 6));
    sl_batch_unref(b);

    /* No MSG at all, nil timestamp. */
    const char *c = "<14>1 - host app - - -";
    assert_int_equal(sl_syslog_parse(c, strlen(c), NULL, &m, &e), 0);
    assert_false(m.has_time);
    assert_int_equal(m.msg.n, 0);
    /* 3164 without host; with an RFC 3339 date; Cisco-style colon. */
    const char *d = "<34>Oct 11 22:14:15 su: 'su root' failed";
    assert_int_equal(sl_syslog_parse(d, strlen(d), &at_jan10, &m, &e), 0);
    assert_true(m.flags & SL_SYSLOG_NO_HOST);
    assert_slice(m.appname, "su");
    assert_slice(m.msg, "'su root' failed");
    const char *g = "2025-01-09T10:00:00.5+01:00 web1 nginx[12]: started";
    assert_int_equal(sl_syslog_parse(g, strlen(g), &at_jan10, &m, &e), 0);
    assert_int_equal(m.time_ns, 1736413200 * S + S / 2);
    assert_slice(m.hostname, "web1");
    assert_slice(m.procid, "12");
    const char *h = "<189>Mar  1 18:46:11: host1 %SYS-5-CONFIG_I: Configured";
    assert_int_equal(sl_syslog_parse(h, strlen(h), &at_jan10, &m, &e), 0);
    assert_slice(m.hostname, "host1");
    assert_slice(m.appname, "%SYS-5-CONFIG_I");
    /* A time zone for 3164 dates. */
    sl_tz *tz = NULL;
    assert_int_equal(sl_tz_load("+02:00", &tz, NULL), 0);
    sl_syslog_opts o = {JAN10_2025, tz};
    const char *k = "Jan  9 12:00:00 h t: x";
    assert_int_equal(sl_syslog_parse(k, strlen(k), &o, &m, &e), 0);
    assert_int_equal(m.time_ns, (1736424000 - 7200) * S);
    sl_tz_free(tz);
    /* Rejected. */
    const char *bad[] = {
        "",
        "<>1 - - - - - -",
        "<192>1 - - - - - -",
        "<01>1 - - - - - -",
        "<14>0 - - - - - -",
        "<14>1 2003-13-11T22:14:15Z h a - - -",
        "<14>1 - h a - - [x a=\"unterminated]",
        "<14>1 - h a - - [x a=b]",
        "<14>1 - h a - - [x",
        "<14>1 - h a - - [] m",
        "<14>1 - h a - -",
        "<14>1 - h a - - -x",
        "<14>Foo bar baz",
        "<14>Jan 32 10:00:00 h t: m",
        "<14>Jan  1 25:00:00 h t: m",
        "Jan  1 10:00:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *x = exact(bad[i], strlen(bad[i]));
        if (sl_syslog_parse(x, strlen(bad[i]), &at_jan10, &m, &e) != SL_EPARSE)
            fail_msg("accepted '%s'", bad[i]);
        free(x);
    }
    /* Time and host but no tag that fits: kept, the tag marked missing. */
    const char *no_tag[] = {
        "Jan  1 10:00:00 host",
        "Jan  1 10:00:00 host tag[12 x: m",
        "Jan  1 10:00:00 host tag[12]",
        "Jan  1 10:00:00 host tag[] : m",
    };
    for (size_t i = 0; i < sizeof no_tag / sizeof *no_tag; i++) {
        char *x = exact(no_tag[i], strlen(no_tag[i]));
        assert_int_equal(sl_syslog_parse(x, strlen(no_tag[i]), &at_jan10, &m, &e), 0);
        assert_true(m.flags & SL_SYSLOG_NO_TAG);
        assert_slice(m.hostname, "host");
        free(x);
    }
}

static void test_hostile(void **st)
{
    (void)st;
    const char *samples[] = {
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"App\\\"li\\]cation\"][noParams] "
        "\xef\xbb\xbf"
        "msg",
        "<34>Feb  4 11:14:27 1.2.3.4 apache_server: test message",
        "Nov  3 09:23:38 veridian automount[7998]: lookup(file): x",
        "ao\xc3\xbbt 19 11:08:37 nlaptop symphorien[4961]: test",
        "2025-01-09T10:00:00.5+01:00 web1 nginx[12]: started",
        "215 <86>1 - h a - - - m",
    };
    int full_ok = 0;
    sl_batch *b = sl_batch_new(1);
    for (size_t s = 0; s < sizeof samples / sizeof *samples; s++) {
        size_t n = strlen(samples[s]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *d = exact(samples[s], cut);
            sl_syslog_msg m;
            int rc = sl_syslog_parse(d, cut, &at_jan10, &m, NULL);
            if (rc == 0) { /* whatever parsed lies inside the input */
                assert_true(m.msg.p >= d && m.msg.p + m.msg.n <= d + cut);
                assert_true(m.hostname.p >= d && m.hostname.p + m.hostname.n <= d + cut);
                sl_syslog_param p[8];
                size_t np = sl_syslog_sd_params(m.sd, p, 8);
                for (size_t i = 0; i < np && i < 8; i++)
                    assert_true(p[i].value.p >= d && p[i].value.p + p[i].value.n <= d + cut);
                if (cut == n) full_ok++;
            }
            sl_slice msg;
            size_t used;
            sl_syslog_frame(d, cut, 1 << 20, &msg, &used);
            sl_record r = {.line = {d, cut}};
            sl_syslog_parse_record(b, &r, r.line, &at_jan10, NULL);
            free(d);
        }
    }
    assert_int_equal(full_ok, 5); /* the framed one is not a message by itself */
    /* NUL bytes and invalid UTF-8 are message bytes like any other. */
    const char nul[] = "<14>1 - h a - - - bad \0 \xff\xfe bytes";
    sl_syslog_msg m;
    assert_int_equal(sl_syslog_parse(nul, sizeof nul - 1, NULL, &m, NULL), 0);
    assert_int_equal(m.msg.n, 14);
    /* Pseudo-random lines biased to syslog bytes. */
    uint32_t x = 99;
    for (int it = 0; it < 30000; it++) {
        char buf[96];
        size_t n = 1 + it % 95;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            buf[i] = (x >> 9) % 4 ? "<>[]=\" \\-:1 a\t"[(x >> 13) % 14] : (char)(x >> 16);
        }
        char *d = exact(buf, n);
        sl_syslog_parse(d, n, &at_jan10, &m, NULL);
        free(d);
    }
    sl_batch_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_otel_rfc5424),
        cmocka_unit_test(test_otel_rfc3164),
        cmocka_unit_test(test_otel_framing),
        cmocka_unit_test(test_lnav_good),
        cmocka_unit_test(test_lnav_no_tag_is_flagged),
        cmocka_unit_test(test_lenient_tags),
        cmocka_unit_test(test_no_tag_counted),
        cmocka_unit_test(test_iso_local_time),
        cmocka_unit_test(test_lnav_year_rollover),
        cmocka_unit_test(test_lnav_mixed_times),
        cmocka_unit_test(test_lnav_french_month),
        cmocka_unit_test(test_lnav_continuation_lines),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
