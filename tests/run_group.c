/* sl_t_run_group: a cmocka test table run one test at a time, so that what
 * a failed test started is stopped before the next test begins (cmocka
 * itself only goes on with the next test). Apart from tests/helpers.c so
 * that the benchmarks, which share helpers.c, need no cmocka. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/helpers.h"

int sl_t_run_group(const char *name, const struct CMUnitTest *tests, size_t n)
{
    (void)name;
    /* SLUICE_TEST_ONLY=part runs only the tests whose name holds it. */
    const char *only = getenv("SLUICE_TEST_ONLY");
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && *only && !strstr(tests[i].name, only)) continue;
        sl_t_test_begins((unsigned)i + 1);
        failed += _cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL);
        sl_t_test_ended(tests[i].name);
    }
    return failed;
}
