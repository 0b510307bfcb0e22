/* sl_t_run_group: a cmocka test table run one test at a time, so that what
 * a failed test started is stopped before the next test begins (cmocka
 * itself only goes on with the next test). Apart from tests/helpers.c so
 * that the benchmarks, which share helpers.c, need no cmocka. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/helpers.h"

/* Whether name is one of the comma-separated names of list. */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && memcmp(p, name, n) == 0) return true;
        p += k + (p[k] == ',');
    }
    return false;
}

/* SLUICE_TEST_PART: one part of a long test program, so that its parts run
 * beside each other (tests/meson.build registers such a program once per
 * part, under one name). "+a,b" runs the tests named a and b; "-a,b" runs
 * every other test of the table. meson.build makes the "-" part from the
 * names of all its "+" parts, so every test runs in exactly one part, one
 * added later included. A listed name that is not in the table is an
 * error: a renamed test would otherwise run in no part at all. */
static bool part_check(const char *part, const struct CMUnitTest *tests, size_t n)
{
    for (const char *p = part + 1; *p;) {
        size_t k = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strlen(tests[i].name) == k && memcmp(tests[i].name, p, k) == 0;
        if (!found) {
            fprintf(stderr, "SLUICE_TEST_PART names %.*s, which this program does not have\n",
                    (int)k, p);
            return false;
        }
        p += k + (p[k] == ',');
    }
    return true;
}

int sl_t_run_group(const char *name, const struct CMUnitTest *tests, size_t n)
{
    /* SLUICE_TEST_ONLY=part runs only the tests whose name holds it. */
    const char *only = getenv("SLUICE_TEST_ONLY");
    const char *part = getenv("SLUICE_TEST_PART");
    if (part && *part) {
        if ((part[0] != '+' && part[0] != '-') || !part_check(part, tests, n)) {
            fprintf(stderr, "SLUICE_TEST_PART=%s: expected +name,... or -name,...\n", part);
            return 1;
        }
        fprintf(stderr, "# %s: part %s\n", name, part);
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (part && *part && (part[0] == '+') != in_list(part + 1, tests[i].name)) continue;
        if (only && *only && !strstr(tests[i].name, only)) continue;
        int64_t t0 = sl_t_now_ms();
        sl_t_test_begins((unsigned)i + 1);
        failed += _cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL);
        sl_t_test_ended(tests[i].name);
        /* Each test's time, for the parts and priorities in tests/meson.build. */
        fprintf(stderr, "# %s: %.1f s\n", tests[i].name, (double)(sl_t_now_ms() - t0) / 1000.0);
    }
    return failed;
}
