/* The shared HTTP auth module (net/http_auth.c): the `auth:` map read for
 * a client and for a server (secrets inline and from files, the rules and
 * their messages), the Authorization value it stands for, and the check of
 * what a request sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "net/http_auth.h"
#include "tests/helpers.h"

/* Reads `auth:` from yaml (a map under the key auth) for role; returns the
 * errors recorded, the first one in why. */
static size_t read_auth(const char *yaml, enum sl_http_auth_role role, sl_http_auth *a, char *why,
                        size_t cap)
{
    sl_cfg *c = sl_cfg_new();
    assert_non_null(c);
    assert_int_equal(sl_cfg_load_string(c, "t.yml", yaml, strlen(yaml)), 0);
    const sl_cfg_node *map = sl_cfg_get(sl_cfg_root(c), "auth");
    int rc = sl_http_auth_read(c, map, role, a);
    size_t n = sl_cfg_nerrors(c);
    assert_int_equal(rc, n ? SL_EINVAL : SL_OK);
    snprintf(why, cap, "%s", n ? sl_cfg_error_at(c, 0) : "");
    /* user points into the tree: keep a copy past sl_cfg_free. */
    static char user[64];
    if (a->user) {
        snprintf(user, sizeof user, "%s", a->user);
        a->user = user;
    }
    sl_cfg_free(c);
    return n;
}

static void test_basic_and_bearer_values(void **st)
{
    (void)st;
    sl_http_auth a;
    char why[256], *v;
    assert_int_equal(read_auth("auth: {username: node, password: \"pa:ss\"}\n", SL_HTTP_AUTH_SERVER,
                               &a, why, sizeof why),
                     0);
    assert_int_equal(sl_http_auth_header(&a, &v), SL_OK);
    assert_string_equal(v, "Basic bm9kZTpwYTpzcw=="); /* base64("node:pa:ss") */
    assert_true(sl_http_auth_matches(v, "Basic bm9kZTpwYTpzcw=="));
    assert_true(sl_http_auth_matches(v, "basic bm9kZTpwYTpzcw==")); /* scheme: any case */
    assert_false(sl_http_auth_matches(v, "Basic bm9kZTp3cm9uZw=="));
    assert_false(sl_http_auth_matches(v, "Basic bm9kZTpwYTpzcw=")); /* shorter */
    assert_false(sl_http_auth_matches(v, "Basic bm9kZTpwYTpzcw==x"));
    assert_false(sl_http_auth_matches(v, "Bearer bm9kZTpwYTpzcw=="));
    assert_false(sl_http_auth_matches(v, "bm9kZTpwYTpzcw=="));
    assert_false(sl_http_auth_matches(v, ""));
    assert_false(sl_http_auth_matches(v, NULL));
    free(v);
    sl_http_auth_free(&a);
    assert_null(a.password);

    assert_int_equal(
        read_auth("auth: {bearer_token: s3cret}\n", SL_HTTP_AUTH_SERVER, &a, why, sizeof why), 0);
    assert_int_equal(sl_http_auth_header(&a, &v), SL_OK);
    assert_string_equal(v, "Bearer s3cret");
    assert_true(sl_http_auth_matches(v, "BEARER s3cret"));
    assert_false(sl_http_auth_matches(v, "Bearer s3cre"));
    free(v);
    sl_http_auth_free(&a);

    /* No map: no auth, and anything passes. */
    assert_int_equal(read_auth("x: 1\n", SL_HTTP_AUTH_SERVER, &a, why, sizeof why), 0);
    assert_int_equal(sl_http_auth_header(&a, &v), SL_OK);
    assert_null(v);
    assert_true(sl_http_auth_matches(NULL, NULL));
}

static void test_secret_files(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("http-auth");
    char *pw = sl_t_path(dir, "pw"), *tok = sl_t_path(dir, "tok");
    assert_int_equal(sl_t_write_file(pw, "from-file\n", 10), 0);
    assert_int_equal(sl_t_write_file(tok, "tok-456\n", 8), 0);
    char yaml[512], why[256], *v;
    sl_http_auth a;
    snprintf(yaml, sizeof yaml, "auth: {username: u, password_file: \"%s\"}\n", pw);
    assert_int_equal(read_auth(yaml, SL_HTTP_AUTH_CLIENT, &a, why, sizeof why), 0);
    assert_string_equal(a.password, "from-file"); /* trailing newline stripped */
    sl_http_auth_free(&a);
    snprintf(yaml, sizeof yaml, "auth: {bearer_token_file: \"%s\"}\n", tok);
    assert_int_equal(read_auth(yaml, SL_HTTP_AUTH_SERVER, &a, why, sizeof why), 0);
    assert_int_equal(sl_http_auth_header(&a, &v), SL_OK);
    assert_string_equal(v, "Bearer tok-456");
    free(v);
    sl_http_auth_free(&a);
    sl_t_rmtree(dir);
    free(dir), free(pw), free(tok);
}

static void test_rules_by_role(void **st)
{
    (void)st;
    static const struct {
        const char *yaml;
        enum sl_http_auth_role role;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"auth: {username: u, bearer_token: t, password: p}\n", SL_HTTP_AUTH_CLIENT, "use either"},
        {"auth: {password: p}\n", SL_HTTP_AUTH_CLIENT, "password needs a username"},
        {"auth: {username: u}\n", SL_HTTP_AUTH_CLIENT, NULL}, /* curl sends "u:" */
        {"auth: {username: u}\n", SL_HTTP_AUTH_SERVER, "go together"},
        {"auth: {}\n", SL_HTTP_AUTH_CLIENT, NULL},
        {"auth: {}\n", SL_HTTP_AUTH_SERVER, "needs username/password or bearer_token"},
        {"auth: {user: u, password: p}\n", SL_HTTP_AUTH_SERVER, "user"}, /* unknown key */
        {"auth: {password_file: /nonexistent/pw, username: u}\n", SL_HTTP_AUTH_SERVER,
         "/nonexistent/pw"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl_http_auth a;
        char why[256];
        size_t n = read_auth(cases[i].yaml, cases[i].role, &a, why, sizeof why);
        if (cases[i].error ? (n == 0 || !strstr(why, cases[i].error)) : n != 0)
            fail_msg("case %zu: %zu errors, first '%s'", i, n, why);
        sl_http_auth_free(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_and_bearer_values),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_rules_by_role),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
