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
#include "parsers/timestamp.h"

#define S 1000000000LL

/* A heap copy of exactly n bytes, so ASan catches any read past the end. */
static char *exact(const char *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static int rfc(const char *s, int64_t *ns)
{
    char *d = exact(s, strlen(s));
    int rc = sl_ts_parse_rfc3339(d, strlen(s), ns);
    free(d);
    return rc;
}

static void test_rfc3339(void **st)
{
    (void)st;
    int64_t ns;
    assert_int_equal(rfc("2015-08-05T21:58:59.693Z", &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    assert_int_equal(rfc("2015-08-05t23:58:59.693+02:00", &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    assert_int_equal(rfc("2015-08-05 16:28:59.693-0530", &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    assert_int_equal(rfc("2015-08-05T21:58:59.693000000999z", &ns), 0); /* extra digits ignored */
    assert_int_equal(ns, 1438811939693000000LL);
    assert_int_equal(rfc("2016-10-06T00:17:09.669794202Z", &ns), 0);
    assert_int_equal(ns % S, 669794202);
    assert_int_equal(rfc("1970-01-01T00:00:00Z", &ns), 0);
    assert_int_equal(ns, 0);
    assert_int_equal(rfc("1969-12-31T23:59:59.5Z", &ns), 0);
    assert_int_equal(ns, -S / 2);
    assert_int_equal(rfc("2024-02-29T00:00:00Z", &ns), 0);
    const char *bad[] = {
        "2023-02-29T00:00:00Z",
        "2015-13-05T21:58:59Z",
        "2015-08-32T21:58:59Z",
        "2015-08-05T24:00:00Z",
        "2015-08-05T21:60:59Z",
        "2015-08-05T21:58:59",
        "2015-08-05T21:58:59.Z",
        "2015-08-05T21:58:59Zjunk",
        "2015-08-05X21:58:59Z",
        "2015-08-05T21:58:59+2:00",
        "1600-01-01T00:00:00Z",
        "2300-01-01T00:00:00Z",
        "",
        "Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(rfc(bad[i], &ns), SL_EPARSE);
    /* Scanning: a timestamp at the start of a longer text. */
    const char *line = "2015-08-05T21:58:59Z stdout F x";
    assert_int_equal(sl_ts_scan_rfc3339(line, strlen(line), &ns), 20);
}

static int unix_ts(const char *s, enum sl_ts_unit u, int64_t *ns)
{
    char *d = exact(s, strlen(s));
    int rc = sl_ts_parse_unix(d, strlen(s), u, ns);
    free(d);
    return rc;
}

static void test_unix(void **st)
{
    (void)st;
    int64_t ns;
    assert_int_equal(unix_ts("1700000000", SL_TS_UNIX_AUTO, &ns), 0);
    assert_int_equal(ns, 1700000000 * S);
    assert_int_equal(unix_ts("1700000000123", SL_TS_UNIX_AUTO, &ns), 0);
    assert_int_equal(ns, 1700000000123000000LL);
    assert_int_equal(unix_ts("1700000000123456", SL_TS_UNIX_AUTO, &ns), 0);
    assert_int_equal(ns, 1700000000123456000LL);
    assert_int_equal(unix_ts("1700000000123456789", SL_TS_UNIX_AUTO, &ns), 0);
    assert_int_equal(ns, 1700000000123456789LL);
    assert_int_equal(unix_ts("1700000000.25", SL_TS_UNIX_S, &ns), 0);
    assert_int_equal(ns, 1700000000250000000LL);
    assert_int_equal(unix_ts("1700000000123.5", SL_TS_UNIX_MS, &ns), 0);
    assert_int_equal(ns, 1700000000123500000LL);
    assert_int_equal(unix_ts("-1", SL_TS_UNIX_S, &ns), 0);
    assert_int_equal(ns, -S);
    assert_int_equal(unix_ts("42", SL_TS_UNIX_NS, &ns), 0);
    assert_int_equal(ns, 42);
    const char *bad[] = {"",           "-",   "1.",  "abc", "12a", "99999999999999999999",
                         "9300000000", "1 2", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(unix_ts(bad[i], SL_TS_UNIX_S, &ns), SL_EPARSE);
}

static void test_nginx_time(void **st)
{
    (void)st;
    int64_t ns;
    char *d = exact("20/Jul/2009:22:59:26 +0000", 26);
    assert_int_equal(sl_ts_parse_nginx(d, 26, &ns), 0);
    assert_int_equal(ns, 1248130766 * S);
    free(d);
    d = exact("07/Dec/2016:11:05:07 +0100", 26);
    assert_int_equal(sl_ts_parse_nginx(d, 26, &ns), 0);
    assert_int_equal(ns, 1481105107 * S);
    free(d);
    const char *bad[] = {"20/Jux/2009:22:59:26 +0000", "32/Jul/2009:22:59:26 +0000",
                         "20/Jul/2009:22:59:26 *0000", "20/Jul/2009 22:59:26 +0000",
                         "20/Jul/2009:22:59:26 +0000 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sl_ts_parse_nginx(bad[i], strlen(bad[i]), &ns), SL_EPARSE);
}

static void test_month_names(void **st)
{
    (void)st;
    struct {
        const char *s;
        int mon;
        size_t len;
    } cases[] = {
        {"Jan 1", 1, 3},
        {"dec", 12, 3},
        {"SEP 1", 9, 3},
        {"September 3", 9, 9},
        {"Sept 3", 9, 4},
        {"ao\xc3\xbbt 19", 8, 5},
        {"f\xc3\xa9vr. 2", 2, 6},
        {"mars 1", 3, 4},
        {"janv. 1", 1, 5},
        {"M\xc3\xa4r 1", 3, 4},
        {"Okt 1", 10, 3},
        {"d\xc3\xa9"
         "c. 1",
         12, 5},
        {"Janx", 0, 0},
        {"Foo 1", 0, 0},
        {"Ja", 0, 0},
        {"ao\xc3", 0, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].s), len = 0;
        char *d = exact(cases[i].s, n);
        int m = sl_ts_month(d, n, &len);
        free(d);
        assert_int_equal(m, cases[i].mon);
        if (m) assert_int_equal(len, cases[i].len);
    }
}

static void test_infer_year(void **st)
{
    (void)st;
    int64_t jan10_2025 = 1736467200, dec31_2024 = 1735603200;
    assert_int_equal(sl_ts_infer_year(12, 3, 0, jan10_2025), 2024); /* Dec read in January */
    assert_int_equal(sl_ts_infer_year(1, 3, 0, jan10_2025), 2025);
    assert_int_equal(sl_ts_infer_year(1, 10, 600, jan10_2025), 2025); /* the grace itself */
    assert_int_equal(sl_ts_infer_year(1, 10, 601, jan10_2025), 2024); /* a second past it */
    assert_int_equal(sl_ts_infer_year(2, 5, 0, jan10_2025), 2024);    /* ahead: last year's */
    assert_int_equal(sl_ts_infer_year(3, 5, 0, jan10_2025), 2024);
    /* Next year only within the grace: 23:59:00 on Dec 31 reading 00:05. */
    assert_int_equal(sl_ts_infer_year(1, 1, 300, dec31_2024 + 86340), 2025);
    assert_int_equal(sl_ts_infer_year(1, 1, 60, dec31_2024), 2024);
    assert_int_equal(sl_ts_infer_year(11, 3, 0, dec31_2024), 2024);
    assert_int_equal(sl_ts_infer_year(2, 29, 0, jan10_2025), 2024); /* last year, a leap year */
}

/* Issue 21 case 9: `Jan  6 06:55:46` read on 6 December is last January's,
 * never next January's (Loki refuses entries beyond its grace period). */
static void test_infer_year_never_ahead(void **st)
{
    (void)st;
    int64_t dec6_2026 = sl_ts_days_from_civil(2026, 12, 6) * 86400 + 3600;
    assert_int_equal(sl_ts_infer_year(1, 6, 6 * 3600 + 55 * 60 + 46, dec6_2026), 2026);
    /* Every day of a year, read at noon on every day of the year: never
     * more than the grace ahead, never a year or more behind. */
    for (int64_t now = sl_ts_days_from_civil(2027, 1, 1) * 86400 + 43200;
         now < sl_ts_days_from_civil(2028, 1, 1) * 86400; now += 86400) {
        for (int mon = 1; mon <= 12; mon++)
            for (int day = 1; day <= sl_ts_days_in_month(2027, mon); day++) {
                for (int64_t sod = 0; sod < 86400; sod += 43199) {
                    int64_t y = sl_ts_infer_year(mon, day, sod, now);
                    int64_t t = sl_ts_days_from_civil(y, mon, day) * 86400 + sod;
                    assert_true(t <= now + SL_TS_FUTURE_GRACE_S);
                    assert_true(t > now - 366 * 86400);
                }
            }
    }
}

static sl_tz *load_or_skip(const char *name)
{
    sl_tz *tz = NULL;
    sl_err e = {0};
    int rc = sl_tz_load(name, &tz, &e);
    if (rc == SL_ENOENT) {
        fprintf(stderr, "zoneinfo for %s absent (%s): skipping\n", name, e.msg);
        return NULL;
    }
    assert_int_equal(rc, 0);
    return tz;
}

static void test_time_zones(void **st)
{
    (void)st;
    sl_tz *paris = load_or_skip("Europe/Paris");
    if (!paris) skip();
    assert_int_equal(sl_tz_offset_at(paris, 1719835200), 7200); /* 2024-07-01 */
    assert_int_equal(sl_tz_offset_at(paris, 1704110400), 3600); /* 2024-01-01 */
    assert_int_equal(sl_tz_offset_at(paris, 4118126400), 7200); /* 2100-07-01: POSIX rule */
    assert_int_equal(sl_tz_offset_at(paris, 4102488000), 3600); /* 2100-01-01 */
    /* 2024-03-31 02:30 does not exist: read with the offset before the gap. */
    int64_t gap = sl_ts_days_from_civil(2024, 3, 31) * 86400 + 2 * 3600 + 1800;
    assert_int_equal(sl_tz_local_to_utc(paris, gap), 1711848600);
    /* 2024-10-27 02:30 happens twice: the earlier instant wins. */
    int64_t twice = sl_ts_days_from_civil(2024, 10, 27) * 86400 + 2 * 3600 + 1800;
    assert_int_equal(sl_tz_local_to_utc(paris, twice), 1729989000);
    sl_tz_free(paris);

    sl_tz *ny = load_or_skip("America/New_York");
    if (ny) {
        assert_int_equal(sl_tz_offset_at(ny, 1719835200), -4 * 3600);
        assert_int_equal(sl_tz_offset_at(ny, 1704110400), -5 * 3600);
        sl_tz_free(ny);
    }
    sl_tz *fx = NULL;
    assert_int_equal(sl_tz_load("+05:30", &fx, NULL), 0);
    assert_int_equal(sl_tz_offset_at(fx, 0), 5 * 3600 + 1800);
    sl_tz_free(fx);
    assert_int_equal(sl_tz_load("UTC", &fx, NULL), 0);
    assert_int_equal(sl_tz_offset_at(fx, 1719835200), 0);
    sl_tz_free(fx);
    sl_err e = {0};
    assert_int_equal(sl_tz_load("../../etc/passwd", &fx, &e), SL_EINVAL);
    assert_null(fx);
    assert_int_equal(sl_tz_load("Nowhere/Atlantis", &fx, &e), SL_ENOENT);
    assert_non_null(strstr(e.msg, "Atlantis"));
}

static int fmt_parse(const char *fmt, const char *tz, const char *text, int64_t now_ns, int64_t *ns)
{
    sl_ts_format *f = NULL;
    sl_err e = {0};
    int rc = sl_ts_format_new(fmt, tz, &f, &e);
    if (rc) return rc;
    char *d = exact(text, strlen(text));
    rc = sl_ts_format_parse(f, d, strlen(text), now_ns, ns);
    free(d);
    sl_ts_format_free(f);
    return rc;
}

static void test_formats(void **st)
{
    (void)st;
    int64_t ns, jan10_2025 = 1736467200 * S;
    assert_int_equal(fmt_parse("%d/%b/%Y:%H:%M:%S %z", NULL, "20/Jul/2009:22:59:26 +0000", 0, &ns),
                     0);
    assert_int_equal(ns, 1248130766 * S);
    assert_int_equal(fmt_parse("nginx", NULL, "07/Dec/2016:11:05:07 +0100", 0, &ns), 0);
    assert_int_equal(ns, 1481105107 * S);
    assert_int_equal(fmt_parse("%Y-%m-%dT%H:%M:%S.%f%z", NULL, "2015-08-05T21:58:59.693Z", 0, &ns),
                     0);
    assert_int_equal(ns, 1438811939693000000LL);
    /* %S takes a fraction by itself; %T expands. */
    assert_int_equal(fmt_parse("%F %T", NULL, "2015-08-05 21:58:59,693", 0, &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    /* Syslog style: blanks collapse, the year comes from now. */
    assert_int_equal(fmt_parse("%b %e %H:%M:%S", NULL, "Dec  3 09:23:38", jan10_2025, &ns), 0);
    assert_int_equal(ns, 1733217818 * S);
    assert_int_equal(fmt_parse("%b %d %H:%M:%S", NULL, "Jan 3 09:47:02", jan10_2025, &ns), 0);
    assert_int_equal(ns, 1735897622 * S);
    assert_int_equal(fmt_parse("%s", NULL, "1700000000", 0, &ns), 0);
    assert_int_equal(ns, 1700000000 * S);
    assert_int_equal(fmt_parse("%Y%m%d %I:%M:%S %p", NULL, "20150805 09:58:59 PM", 0, &ns), 0);
    assert_int_equal(ns, 1438811939 * S);
    assert_int_equal(fmt_parse("%Y-%m-%d %I:%M %p", NULL, "2015-08-05 12:10 am", 0, &ns), 0);
    assert_int_equal(ns, (1438732800 + 600) * S);
    assert_int_equal(fmt_parse("%Y %j", NULL, "2024 366", 0, &ns), 0);
    assert_int_equal(ns, 1735603200 * S);
    assert_int_equal(
        fmt_parse("%a, %d %b %Y %H:%M:%S %Z", NULL, "Wed, 05 Aug 2015 21:58:59 GMT", 0, &ns), 0);
    assert_int_equal(ns, 1438811939 * S);
    assert_int_equal(fmt_parse("rfc3339", "+02:00", "2015-08-05 23:58:59.693", 0, &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    assert_int_equal(fmt_parse("unix_ms", NULL, "1438811939693", 0, &ns), 0);
    assert_int_equal(ns, 1438811939693000000LL);
    sl_tz *probe = load_or_skip("Europe/Paris");
    if (probe) {
        sl_tz_free(probe);
        assert_int_equal(
            fmt_parse("%Y-%m-%d %H:%M:%S", "Europe/Paris", "2024-05-06 14:30:15", 0, &ns), 0);
        assert_int_equal(ns, 1714998615 * S);
        /* An explicit offset beats the configured zone. */
        assert_int_equal(
            fmt_parse("%Y-%m-%d %H:%M:%S %z", "Europe/Paris", "2024-05-06 12:30:15 +0000", 0, &ns),
            0);
        assert_int_equal(ns, 1714998615 * S);
    }
    /* Mismatches. */
    assert_int_equal(fmt_parse("%Y-%m-%d", NULL, "2015-08-05x", 0, &ns), SL_EPARSE);
    assert_int_equal(fmt_parse("%Y-%m-%d", NULL, "2015-02-30", 0, &ns), SL_EPARSE);
    assert_int_equal(fmt_parse("%Y-%m-%d", NULL, "15-08-05", 0, &ns), SL_EPARSE);
    assert_int_equal(fmt_parse("%H:%M", NULL, "25:00", 0, &ns), SL_EPARSE);
    assert_int_equal(fmt_parse("%b", NULL, "Foo", 0, &ns), SL_EPARSE);
    /* Bad formats are configuration errors. */
    sl_ts_format *f = NULL;
    sl_err e = {0};
    assert_int_equal(sl_ts_format_new("%Y-%Q", NULL, &f, &e), SL_EINVAL);
    assert_non_null(strstr(e.msg, "%Q"));
    assert_int_equal(sl_ts_format_new("", NULL, &f, &e), SL_EINVAL);
    assert_int_equal(sl_ts_format_new("%Y", "Nowhere/Atlantis", &f, &e), SL_ENOENT);
    assert_null(f);
}

/* Issue 21 case 1: `18:59:20,376 INFO [main] ...` with `%H:%M:%S,%f` is
 * today's time of day, or yesterday's when today's is ahead of now. */
static void test_time_only_formats(void **st)
{
    (void)st;
    int64_t ns, day = sl_ts_days_from_civil(2026, 12, 7) * 86400;
    int64_t now = (day + 19 * 3600) * S; /* 19:00:00Z */
    assert_int_equal(fmt_parse("%H:%M:%S,%f", NULL, "18:59:20,376", now, &ns), 0);
    assert_int_equal(ns, (day + 18 * 3600 + 59 * 60 + 20) * S + 376000000);
    /* Read just after midnight: the line is from the evening before. */
    now = (day + 60) * S;
    assert_int_equal(fmt_parse("%H:%M:%S,%f", NULL, "23:59:58,001", now, &ns), 0);
    assert_int_equal(ns, (day - 2) * S + 1000000);
    /* A writer's clock a little ahead stays today (within the grace). */
    assert_int_equal(fmt_parse("%H:%M:%S", NULL, "00:05:00", now, &ns), 0);
    assert_int_equal(ns, (day + 300) * S);
    assert_int_equal(fmt_parse("%T", NULL, "00:11:01", now, &ns), 0); /* past it: yesterday */
    assert_int_equal(ns, (day - 86400 + 661) * S);
    assert_int_equal(fmt_parse("%I:%M:%S %p", NULL, "06:30:00 PM", (day + 19 * 3600) * S, &ns), 0);
    assert_int_equal(ns, (day + 18 * 3600 + 1800) * S);
    /* "Today" is the configured zone's: 01:30 in Tokyo (+09) is 16:30Z
     * the day before; 10:00 there today would be ahead: yesterday 01:00Z. */
    sl_tz *probe = load_or_skip("Asia/Tokyo");
    if (probe) {
        sl_tz_free(probe);
        now = (day - 86400 + 16 * 3600 + 1800) * S;
        assert_int_equal(fmt_parse("%H:%M:%S", "Asia/Tokyo", "01:00:00", now, &ns), 0);
        assert_int_equal(ns, (day - 86400 + 16 * 3600) * S);
        assert_int_equal(fmt_parse("%H:%M:%S", "Asia/Tokyo", "10:00:00", now, &ns), 0);
        assert_int_equal(ns, (day - 86400 + 3600) * S);
    }
    /* A date part anywhere keeps the old rules (the year from now). */
    assert_int_equal(fmt_parse("%d %H:%M:%S", NULL, "05 10:00:00", now, &ns), 0);
}

/* Issue 21 case 4: `%Z` with zone abbreviations and IANA names. */
static void test_zone_names(void **st)
{
    (void)st;
    int64_t ns;
    const char *f = "%a %b %d %H:%M:%S %Z %Y";
    int64_t dec26 = sl_ts_days_from_civil(2016, 12, 26) * 86400;
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 CET 2016", 0, &ns), 0);
    assert_int_equal(ns, (dec26 + 15 * 3600 + 22 * 60 + 8) * S);
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 PST 2016", 0, &ns), 0);
    assert_int_equal(ns, (dec26 + 24 * 3600 + 22 * 60 + 8) * S);
    static const struct {
        const char *abbr;
        int32_t off;
    } known[] = {{"UTC", 0},      {"GMT", 0},      {"CEST", 7200},  {"EET", 7200},
                 {"PDT", -25200}, {"EST", -18000}, {"EDT", -14400}, {"CST", -21600},
                 {"IST", 19800},  {"JST", 32400},  {"AEST", 36000}, {"NZDT", 46800},
                 {"MST", -25200}, {"HST", -36000}, {"BST", 3600},   {"MSK", 10800}};
    for (size_t k = 0; k < sizeof known / sizeof *known; k++) {
        char line[64];
        snprintf(line, sizeof line, "Mon Dec 26 16:22:08 %s 2016", known[k].abbr);
        assert_int_equal(fmt_parse(f, NULL, line, 0, &ns), 0);
        assert_int_equal(ns, (dec26 + 16 * 3600 + 22 * 60 + 8 - known[k].off) * S);
    }
    /* date(1) writes a numeric abbreviation for zones without a name. */
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 +03 2016", 0, &ns), 0);
    assert_int_equal(ns, (dec26 + 13 * 3600 + 22 * 60 + 8) * S);
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 -0330 2016", 0, &ns), 0);
    assert_int_equal(ns, (dec26 + 19 * 3600 + 52 * 60 + 8) * S);
    /* A name we cannot place is an error, never a silent UTC. */
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 XYZT 2016", 0, &ns), SL_EPARSE);
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 Nowhere/Atlantis 2016", 0, &ns),
                     SL_EPARSE);
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 ../../etc/passwd 2016", 0, &ns),
                     SL_EPARSE);
    sl_tz *probe = load_or_skip("Europe/Dublin");
    if (!probe) return;
    sl_tz_free(probe);
    /* The configured zone settles an ambiguous abbreviation: IST is
     * Irish Standard Time (+01) in Dublin, India's (+05:30) elsewhere. */
    int64_t jul1 = sl_ts_days_from_civil(2024, 7, 1) * 86400 + 12 * 3600;
    assert_int_equal(
        fmt_parse("%Y-%m-%d %H:%M:%S %Z", "Europe/Dublin", "2024-07-01 12:00:00 IST", 0, &ns), 0);
    assert_int_equal(ns, (jul1 - 3600) * S);
    assert_int_equal(fmt_parse("%Y-%m-%d %H:%M:%S %Z", NULL, "2024-07-01 12:00:00 IST", 0, &ns), 0);
    assert_int_equal(ns, (jul1 - 19800) * S);
    /* IANA names in the text, with their DST rules: summer and winter. */
    assert_int_equal(
        fmt_parse("%Y-%m-%d %H:%M:%S %Z", NULL, "2024-07-01 12:00:00 Europe/Berlin", 0, &ns), 0);
    assert_int_equal(ns, (jul1 - 7200) * S);
    assert_int_equal(fmt_parse(f, NULL, "Mon Dec 26 16:22:08 America/Los_Angeles 2016", 0, &ns), 0);
    assert_int_equal(ns, (dec26 + 24 * 3600 + 22 * 60 + 8) * S);
    /* One format, many names: the zone cache turns over and stays right. */
    sl_ts_format *fm = NULL;
    sl_err e = {0};
    assert_int_equal(sl_ts_format_new("%H:%M %Z %Y-%m-%d", NULL, &fm, &e), 0);
    const char *zones[] = {"Europe/Berlin",    "Asia/Tokyo",    "America/New_York", "Europe/London",
                           "Australia/Sydney", "Europe/Berlin", "Asia/Kolkata"};
    const int32_t offs[] = {3600, 32400, -18000, 0, 39600, 3600, 19800};
    for (int rep = 0; rep < 3; rep++)
        for (size_t k = 0; k < sizeof zones / sizeof *zones; k++) {
            char line[80];
            int n = snprintf(line, sizeof line, "12:00 %s 2016-12-26", zones[k]);
            assert_int_equal(sl_ts_format_parse(fm, line, (size_t)n, 0, &ns), 0);
            assert_int_equal(ns, (dec26 + 12 * 3600 - offs[k]) * S);
        }
    sl_ts_format_free(fm);
}

static void test_parse_record(void **st)
{
    (void)st;
    sl_batch *b = sl_batch_new(4);
    assert_non_null(b);
    const char *line = "ts=2015-08-05T21:58:59.693Z msg=hi";
    sl_record *r = sl_batch_add(b, (sl_slice){line, strlen(line)}, 42, 0);
    assert_non_null(r);
    sl_record_add_field(b, r, SL_SLICE_LIT("ts"), (sl_slice){line + 3, 24}, SL_V_STRING);
    sl_ts_format *f = NULL;
    assert_int_equal(sl_ts_format_new("rfc3339", NULL, &f, NULL), 0);
    sl_err e = {0};
    assert_int_equal(sl_ts_parse_record(b, r, f, "missing", &e), SL_ENOENT);
    assert_int_equal(r->time_ns, 42);
    assert_int_equal(sl_ts_parse_record(b, r, f, "line", &e), SL_EPARSE);
    assert_int_equal(r->time_ns, 42);
    assert_int_equal(sl_ts_parse_record(b, r, f, "ts", &e), 0);
    assert_int_equal(r->time_ns, 1438811939693000000LL);
    sl_ts_format_free(f);
    sl_batch_unref(b);
}

/* Every prefix of every sample, each in an exact-size heap copy: no read
 * past the end (ASan), no crash, and garbage never parses as a time. */
static void test_truncation_and_garbage(void **st)
{
    (void)st;
    const char *samples[] = {
        "2015-08-05T21:58:59.693123456+02:00",
        "20/Jul/2009:22:59:26 +0000",
        "Dec  3 09:23:38",
        "1700000000.123",
        "Wed, 05 Aug 2015 21:58:59 GMT",
        "ao\xc3\xbbt 19 11:08:37",
    };
    const char *fmts[] = {"rfc3339", "nginx", "%b %e %H:%M:%S", "unix", "%a, %d %b %Y %T %Z",
                          "%b %d %T"};
    sl_ts_format *f[6];
    for (int k = 0; k < 6; k++) assert_int_equal(sl_ts_format_new(fmts[k], NULL, &f[k], NULL), 0);
    int ok_full = 0;
    for (size_t s = 0; s < 6; s++) {
        size_t n = strlen(samples[s]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *d = exact(samples[s], cut);
            int64_t ns;
            size_t len;
            sl_ts_scan_rfc3339(d, cut, &ns);
            sl_ts_parse_unix(d, cut, SL_TS_UNIX_AUTO, &ns);
            sl_ts_parse_nginx(d, cut, &ns);
            sl_ts_month(d, cut, &len);
            for (int k = 0; k < 6; k++) {
                int rc = sl_ts_format_parse(f[k], d, cut, 1736467200 * S, &ns);
                if (rc == 0 && cut == n && k == (int)s) ok_full++;
            }
            free(d);
        }
    }
    assert_int_equal(ok_full, 6); /* each sample parses with its own format when whole */
    /* NUL bytes and invalid UTF-8 inside. */
    const char nul[] = "2015-08-05T21:58:59\0Z";
    int64_t ns;
    assert_int_equal(sl_ts_parse_rfc3339(nul, sizeof nul - 1, &ns), SL_EPARSE);
    assert_int_equal(sl_ts_format_parse(f[2], "D\xff\xfe  3 09:23:38", 15, 0, &ns), SL_EPARSE);
    /* Pseudo-random bytes. */
    uint32_t x = 12345;
    for (int it = 0; it < 20000; it++) {
        char buf[40];
        size_t n = 1 + it % 39;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            buf[i] = (char)(x >> 16);
            if ((x >> 8) % 3 == 0) buf[i] = "0123456789-:T Z+./"[(x >> 11) % 18];
        }
        char *d = exact(buf, n);
        for (int k = 0; k < 6; k++) sl_ts_format_parse(f[k], d, n, 0, &ns);
        free(d);
    }
    for (int k = 0; k < 6; k++) sl_ts_format_free(f[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),           cmocka_unit_test(test_unix),
        cmocka_unit_test(test_nginx_time),        cmocka_unit_test(test_month_names),
        cmocka_unit_test(test_infer_year),        cmocka_unit_test(test_infer_year_never_ahead),
        cmocka_unit_test(test_time_zones),        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_time_only_formats), cmocka_unit_test(test_zone_names),
        cmocka_unit_test(test_parse_record),      cmocka_unit_test(test_truncation_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
