/* The RFC 6587 stream decoder of the syslog input: both framings, the
 * per-frame auto-detection, cuts at max_frame, the errors that close a
 * connection, and what a close leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/syslog_framer.h"

typedef struct frames {
    char text[16][256];
    uint32_t flags[16];
    int n;
    int stop_after; /* return SL_ECLOSED after this many frames; 0: never */
} frames;

static int collect(void *arg, sl_slice f, uint32_t flags)
{
    frames *fr = arg;
    assert_true(fr->n < 16 && f.n < 256);
    memcpy(fr->text[fr->n], f.p, f.n);
    fr->text[fr->n][f.n] = 0;
    fr->flags[fr->n++] = flags;
    return fr->stop_after && fr->n == fr->stop_after ? SL_ECLOSED : 0;
}

/* Feeds s whole, then byte by byte into a second decoder: both must give
 * the same frames. Returns the feed result (and the finish result when
 * finish is set and the feed succeeded). */
static int feedn(int mode, size_t max, const char *s, size_t n, bool finish, frames *out)
{
    memset(out, 0, sizeof *out);
    sl_syslog_framer f, g;
    sl_syslog_framer_init(&f, mode, max);
    sl_syslog_framer_init(&g, mode, max);
    sl_err err;
    int rc = sl_syslog_framer_feed(&f, s, n, collect, out, &err);
    if (rc == SL_OK && finish) rc = sl_syslog_framer_finish(&f, collect, out, &err);
    frames bytewise = {0};
    int rc2 = SL_OK;
    for (size_t i = 0; i < n && rc2 == SL_OK; i++)
        rc2 = sl_syslog_framer_feed(&g, s + i, 1, collect, &bytewise, &err);
    if (rc2 == SL_OK && finish) rc2 = sl_syslog_framer_finish(&g, collect, &bytewise, &err);
    assert_int_equal(rc, rc2);
    assert_int_equal(out->n, bytewise.n);
    for (int i = 0; i < out->n; i++) {
        assert_string_equal(out->text[i], bytewise.text[i]);
        assert_int_equal(out->flags[i], bytewise.flags[i]);
    }
    sl_syslog_framer_free(&f);
    sl_syslog_framer_free(&g);
    return rc;
}

static int feed(int mode, size_t max, const char *s, bool finish, frames *out)
{
    return feedn(mode, max, s, strlen(s), finish, out);
}

static void test_newline(void **st)
{
    (void)st;
    frames f;
    assert_int_equal(
        feedn(SL_SYSLOG_FRAMING_AUTO, 1024, "<13>a\r\n\n<14>b\0<15>c\n", 20, false, &f), SL_OK);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.text[0], "<13>a");
    assert_string_equal(f.text[1], "<14>b");
    assert_string_equal(f.text[2], "<15>c");
    /* In newline mode a leading digit is text. */
    assert_int_equal(feed(SL_SYSLOG_FRAMING_NEWLINE, 1024, "12 no pri\n", false, &f), SL_OK);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.text[0], "12 no pri");
}

static void test_octet_counting_and_auto(void **st)
{
    (void)st;
    frames f;
    assert_int_equal(
        feed(SL_SYSLOG_FRAMING_AUTO, 1024, "7 <13>a\nb3 xyz<14>line\n5 hello", false, &f), SL_OK);
    assert_int_equal(f.n, 4);
    assert_string_equal(f.text[0], "<13>a\nb"); /* an LF inside an octet frame is data */
    assert_string_equal(f.text[1], "xyz");
    assert_string_equal(f.text[2], "<14>line");
    assert_string_equal(f.text[3], "hello");
    /* A newline some senders add after each octet frame is skipped. */
    assert_int_equal(feed(SL_SYSLOG_FRAMING_OCTET, 1024, "3 abc\n3 def\r\n", false, &f), SL_OK);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.text[1], "def");
}

static void test_too_large_is_cut_and_skipped(void **st)
{
    (void)st;
    frames f;
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 4, "abcdefgh\nok\n10 0123456789", false, &f),
                     SL_OK);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.text[0], "abcd");
    assert_int_equal(f.flags[0], SL_SYSLOG_FRAME_TRUNCATED);
    assert_string_equal(f.text[1], "ok");
    assert_int_equal(f.flags[1], 0);
    assert_string_equal(f.text[2], "0123");
    assert_int_equal(f.flags[2], SL_SYSLOG_FRAME_TRUNCATED);
    /* Exactly max is not cut. */
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 4, "abcd\n4 wxyz", false, &f), SL_OK);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.flags[0] | f.flags[1], 0);
}

static void test_bad_octet_counts(void **st)
{
    (void)st;
    frames f;
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "3 abc05 x", false, &f), SL_EPARSE);
    assert_int_equal(f.n, 1); /* the frames before the error were handed on */
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "1234567890 x", false, &f), SL_EPARSE);
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "12x", false, &f), SL_EPARSE);
    assert_int_equal(feed(SL_SYSLOG_FRAMING_OCTET, 1024, "<13>text\n", false, &f), SL_EPARSE);
    assert_int_equal(f.n, 0);
}

static void test_close(void **st)
{
    (void)st;
    frames f;
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "<13>a\n<14>no lf", true, &f), SL_OK);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.text[1], "<14>no lf");
    assert_int_equal(f.flags[1], SL_SYSLOG_FRAME_AT_CLOSE);
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "10 abc", true, &f), SL_EPARSE);
    assert_int_equal(f.n, 0);
    assert_int_equal(feed(SL_SYSLOG_FRAMING_AUTO, 1024, "\n\r\n", true, &f), SL_OK);
    assert_int_equal(f.n, 0);
}

static void test_callback_stops(void **st)
{
    (void)st;
    frames f = {.stop_after = 1};
    sl_syslog_framer fr;
    sl_syslog_framer_init(&fr, SL_SYSLOG_FRAMING_AUTO, 64);
    assert_int_equal(sl_syslog_framer_feed(&fr, "a\nb\n", 4, collect, &f, NULL), SL_ECLOSED);
    assert_int_equal(f.n, 1);
    sl_syslog_framer_free(&fr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newline),
        cmocka_unit_test(test_octet_counting_and_auto),
        cmocka_unit_test(test_too_large_is_cut_and_skipped),
        cmocka_unit_test(test_bad_octet_counts),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
