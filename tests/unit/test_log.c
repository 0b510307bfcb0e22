/* The agent's own log lines (core/log.c) and URL redaction (core/redact.c):
 * no value can start a line or forge a key, and no credential in a URL is
 * printed. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"
#include "tests/helpers.h"

static char out[8192];

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    sl_log_format(out, sizeof out, f, ap);
    va_end(ap);
    return out;
}

static void test_values_quoted_when_needed(void **st)
{
    (void)st;
    assert_string_equal(fmt("input=%s path=%s", "app", "/var/log/a.log"),
                        "input=app path=/var/log/a.log");
    assert_string_equal(fmt("path=%s", "/var/log/a b.log"), "path=\"/var/log/a b.log\"");
    assert_string_equal(fmt("path=%s", "a\nts=x level=error event=forged"),
                        "path=\"a\\nts=x level=error event=forged\"");
    assert_string_equal(fmt("v=%s", "q\"uo\\te\r\t\x01\x7f"),
                        "v=\"q\\\"uo\\\\te\\r\\t\\x01\\x7f\"");
    assert_string_equal(fmt("v=%s", "k=v"), "v=\"k=v\"");
    assert_string_equal(fmt("v=%s end=1", ""), "v=\"\" end=1");
    assert_string_equal(fmt("%s", ""), "");
    assert_string_equal(fmt("v=%s", "caf\xc3\xa9"), "v=\"caf\xc3\xa9\"");
    /* C1 controls and the Unicode line separators are escaped too. */
    assert_string_equal(fmt("v=%s", "a\xc2\x85"
                                    "b\xe2\x80\xa8"
                                    "c"),
                        "v=\"a\\u0085b\\u2028c\"");
    assert_string_equal(fmt("v=%.*s", 3, "abcdef"), "v=abc");
    assert_string_equal(fmt("v=%.*s", 4, "a b\ncd"), "v=\"a b\\n\"");
    assert_string_equal(fmt("v=%s", (const char *)NULL), "v=(null)");
    assert_string_equal(fmt("c=%c", '\n'), "c=\"\\n\"");
}

/* Inside quotes the format already wrote, only escapes are added. */
static void test_values_inside_format_quotes(void **st)
{
    (void)st;
    assert_string_equal(fmt("error=\"%s\" n=%d", "No such file", 2), "error=\"No such file\" n=2");
    assert_string_equal(fmt("error=\"%s\"", "x\" level=error \"y\nz"),
                        "error=\"x\\\" level=error \\\"y\\nz\"");
    assert_string_equal(fmt("error=\"%s: %s\" n=%s", "open /a b", "No\nway", "x y"),
                        "error=\"open /a b: No\\nway\" n=\"x y\"");
}

/* sl_log_quote's output passes as it is; a lookalike that is not one valid
 * quoted value is quoted again. */
static void test_already_quoted(void **st)
{
    (void)st;
    char q[128];
    const char *v = sl_log_quote(q, sizeof q, "a b\"c", 5);
    assert_string_equal(v, "\"a b\\\"c\"");
    assert_string_equal(fmt("reason=%s", v), "reason=\"a b\\\"c\"");
    assert_string_equal(fmt("reason=%s", "\"x\" level=error \"y\""),
                        "reason=\"\\\"x\\\" level=error \\\"y\\\"\"");
    assert_string_equal(fmt("reason=%s", "\"x\\\""), "reason=\"\\\"x\\\\\\\"\"");
    /* a quoted lookalike holding a raw NEL is escaped, not passed through */
    assert_string_equal(fmt("reason=%s", "\"a\xc2\x85\""), "reason=\"\\\"a\\u0085\\\"\"");
}

static void test_numbers_as_printf(void **st)
{
    (void)st;
    char want[256];
    uint64_t big = 18446744073709551615ULL;
    snprintf(want, sizeof want,
             "a=%d b=%u c=%lld d=%llu e=%zu f=%ld g=%5.2f h=%x seg=%020" PRIu64 ".seg i=%" PRId64
             " pct=100%%",
             -5, 7u, -9LL, 12345678901ULL, (size_t)42, -3L, 3.14159, 255u, big, (int64_t)-1);
    assert_string_equal(fmt("a=%d b=%u c=%lld d=%llu e=%zu f=%ld g=%5.2f h=%x seg=%020" PRIu64
                            ".seg i=%" PRId64 " pct=100%%",
                            -5, 7u, -9LL, 12345678901ULL, (size_t)42, -3L, 3.14159, 255u, big,
                            (int64_t)-1),
                        want);
    assert_string_equal(fmt("w=%*d p=%.*f", 4, 7, 1, 2.25), "w=   7 p=2.2");
}

static size_t fmt_into(char *buf, size_t cap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static size_t fmt_into(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    size_t n = sl_log_format(buf, cap, f, ap);
    va_end(ap);
    return n;
}

/* A value longer than the line is cut, but its closing quote stays and no
 * escape is split. */
static void test_long_values_cut_closed(void **st)
{
    (void)st;
    size_t n = 20000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = i % 7 ? 'a' : '\n';
    big[n] = '\0';
    const char *r = fmt("v=%s", big);
    assert_true(strlen(r) < sizeof out);
    assert_int_equal(r[strlen(r) - 1], '"');
    free(big);
    char small[16];
    memset(small, 'x', sizeof small);
    size_t k = fmt_into(small, 12, "v=%s", "ab\ncd\nef\ngh");
    assert_int_equal(k, strlen(small));
    assert_true(k <= 11);
    assert_int_equal(small[k - 1], '"');
    assert_int_equal(small[12], 'x'); /* nothing past cap */
}

/* The line sl_log writes for a hostile file name: one line, the name one
 * quoted value. */
static void test_sl_log_one_line(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("log");
    char *path = sl_t_path(dir, "stderr");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    dup2(fileno(f), 2);
    sl_log(SL_LOG_ERROR, "file_opened", "input=%s path=%s offset=%d", "app",
           "/var/log/a\nts=2026-01-01T00:00:00.000Z level=error event=forged", 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    size_t len;
    char *text = sl_t_read_file(path, &len);
    fprintf(stderr, "%s", text);
    assert_int_equal(sl_t_count_lines(path), 1);
    assert_non_null(
        strstr(text, " level=error event=file_opened input=app path=\"/var/log/a\\nts="));
    assert_non_null(strstr(text, "event=forged\" offset=0\n"));
    free(text);
    sl_t_rmtree(dir);
    free(dir), free(path);
}

static const char *red(const char *s)
{
    static char buf[1024];
    sl_redact_text(buf, sizeof buf, s, strlen(s));
    return buf;
}

static void test_redact_urls(void **st)
{
    (void)st;
    assert_string_equal(red("http://alice:s3cret@loki:3100/loki/api/v1/push"),
                        "http://<redacted>@loki:3100/loki/api/v1/push");
    assert_string_equal(red("https://loki/push?tenant=a&token=abc&Api_Key=k1&x=1#access_token=t"),
                        "https://loki/push?tenant=a&token=<redacted>&Api_Key=<redacted>&x=1"
                        "#access_token=<redacted>");
    assert_string_equal(
        red("https://b.s3/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&sig=1&password=p&secret=s"
            "&key=k&apikey=a&%74oken=t&subscription-key=z&page=2"),
        "https://b.s3/o?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&sig=<redacted>"
        "&password=<redacted>&secret=<redacted>&key=<redacted>&apikey=<redacted>"
        "&%74oken=<redacted>&subscription-key=<redacted>&page=2");
    /* Inside free text (curl and librdkafka errors), several URLs. */
    assert_string_equal(red("POST http://u:p@h:1/x?access_token=zz failed; retry "
                            "'https://h2/?pwd=1' now"),
                        "POST http://<redacted>@h:1/x?access_token=<redacted> failed; retry "
                        "'https://h2/?pwd=<redacted>' now");
    /* An @ in the path is not userinfo; text without a URL is unchanged. */
    assert_string_equal(red("http://h/users/a@b?q=1"), "http://h/users/a@b?q=1");
    assert_string_equal(red("token=abc user@host"), "token=abc user@host");
    assert_false(sl_redact_wanted("no url here", 11));
    /* Already redacted stays so (sl_log may see a URL twice). */
    assert_string_equal(red(red("http://u:p@h/?token=1")), "http://<redacted>@h/?token=<redacted>");
    char small[16];
    sl_redact_url(small, sizeof small, "http://u:p@h/?token=1");
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* sl_log hides credentials whatever the call site passes. */
static void test_log_redacts(void **st)
{
    (void)st;
    assert_string_equal(fmt("url=%s", "http://bob:pw@h/push?token=abc"),
                        "url=\"http://<redacted>@h/push?token=<redacted>\"");
    assert_string_equal(fmt("error=\"%s\"", "Failed http://bob:pw@h/ x"),
                        "error=\"Failed http://<redacted>@h/ x\"");
}

static void test_level_names(void **st)
{
    (void)st;
    int level = -7;
    assert_int_equal(sl_log_level_from_name("WARN", &level), SL_OK);
    assert_int_equal(level, SL_LOG_WARN);
    assert_int_equal(sl_log_level_from_name("off", &level), SL_OK);
    assert_int_equal(level, SL_LOG_OFF);
    assert_int_equal(sl_log_level_from_name("loud", &level), SL_EINVAL);
    assert_int_equal(level, SL_LOG_OFF); /* left as it was */
    assert_int_equal(sl_log_level_from_name("", &level), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_quoted_when_needed),
        cmocka_unit_test(test_values_inside_format_quotes),
        cmocka_unit_test(test_already_quoted),
        cmocka_unit_test(test_numbers_as_printf),
        cmocka_unit_test(test_long_values_cut_closed),
        cmocka_unit_test(test_sl_log_one_line),
        cmocka_unit_test(test_redact_urls),
        cmocka_unit_test(test_log_redacts),
        cmocka_unit_test(test_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
