/* The recipes of README.md's "Parsing real logs", run as they stand: each
 * `<!-- recipe: NAME -->` block is taken from the README, its `paths:`
 * lines pointed at sample files written here (lines of each shape, written
 * for this test), and run through the real binary with `--dry-run`; the
 * printed records must carry the fields and times the README promises. The
 * journald recipe's steps run through the chain API (a journal needs more
 * than a file), and the whole recipe through `sluice check`. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/batch.h"
#include "core/config.h"
#include "parsers/chain.h"
#include "tests/helpers.h"

#define MAX_INPUTS 4
#define MAX_WANT   40

/* The YAML of recipe `name` from README.md (malloc'ed), or NULL. */
static char *recipe(const char *name)
{
    char *readme_path = sl_t_path(sl_t_src(), "README.md");
    char *text = sl_t_read_file(readme_path, NULL);
    free(readme_path);
    assert_non_null(text);
    char marker[128];
    snprintf(marker, sizeof marker, "<!-- recipe: %s -->\n```yaml\n", name);
    char *s = strstr(text, marker), *out = NULL;
    if (s) {
        s += strlen(marker);
        char *e = strstr(s, "```");
        if (e) out = strndup(s, (size_t)(e - s));
    }
    free(text);
    if (!out) fail_msg("README.md has no recipe '%s'", name);
    return out;
}

/* y via the k-th `paths:` line of yaml replaced by paths: [files[k]]. */
static char *with_paths(const char *yaml, char *const *files, size_t nfiles)
{
    size_t cap = strlen(yaml) + 4096, o = 0, k = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *l = yaml; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l + 1) : strlen(l);
        const char *key = l;
        while (*key == ' ') key++;
        if (strncmp(key, "paths:", 6) == 0) {
            assert_true(k < nfiles);
            o += (size_t)snprintf(out + o, cap - o, "%.*spaths: [\"%s\"]\n", (int)(key - l), l,
                                  files[k++]);
        } else {
            memcpy(out + o, l, len);
            o += len;
        }
        l += len;
    }
    out[o] = 0;
    assert_int_equal(k, nfiles); /* every input got its sample */
    return out;
}

/* Local wall time to the dry-run's RFC 3339 rendering (UTC, ns). */
static void utc_text(int y, int mo, int d, int h, int mi, int s, long ns, char *out, size_t cap)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s,
                    .tm_isdst = -1};
    time_t t = mktime(&tm);
    struct tm u;
    gmtime_r(&t, &u);
    snprintf(out, cap, "\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"", u.tm_year + 1900,
             u.tm_mon + 1, u.tm_mday, u.tm_hour, u.tm_min, u.tm_sec, ns);
}

typedef struct run {
    const char *name;
    const char *samples[MAX_INPUTS];
    size_t ninputs;
    int records;
    const char *want[MAX_WANT];
    const char *absent[8];
} run;

static size_t count(const char *hay, const char *needle)
{
    size_t c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) c++;
    return c;
}

/* Runs recipe r.name on its samples with --dry-run; checks the output. */
static void run_recipe(const run *r)
{
    char *dir = sl_t_tmpdir("recipes");
    char *files[MAX_INPUTS];
    for (size_t k = 0; k < r->ninputs; k++) {
        char name[32];
        snprintf(name, sizeof name, "in%zu.log", k);
        files[k] = sl_t_path(dir, name);
        assert_int_equal(sl_t_write_file(files[k], r->samples[k], strlen(r->samples[k])), 0);
    }
    char *yaml = recipe(r->name);
    char *inputs = with_paths(yaml, files, r->ninputs);
    char *cfg = sl_t_path(dir, "recipe.yml"), *out = sl_t_path(dir, "out.txt");
    size_t cap = strlen(inputs) + 8192;
    char *full = malloc(cap);
    int n = snprintf(full, cap,
                     "data_dir: %s/data\n%s\nsinks:\n  - {name: out, type: file, path: \"%s\"}\n",
                     dir, inputs, out);
    assert_int_equal(sl_t_write_file(cfg, full, (size_t)n), 0);
    char *log = sl_t_path(dir, "agent.out");
    char *argv[] = {(char *)sl_t_bin(), "run", "-c", cfg, "--dry-run", NULL};
    pid_t pid = sl_t_spawn(argv, log);
    assert_true(pid > 0);
    char *text = NULL;
    int limit = sl_t_sanitized() ? 60000 : 20000;
    for (int ms = 0; ms < limit; ms += 20) {
        free(text);
        text = sl_t_read_file(log, NULL);
        if (text && (int)count(text, "\n{\"time\":") >= r->records) break;
        sl_t_sleep_ms(20);
    }
    assert_int_equal(sl_t_stop(pid, SIGTERM, 10000), 0);
    free(text);
    text = sl_t_read_file(log, NULL); /* all of it, after the agent stopped */
    assert_non_null(text);
    if ((int)count(text, "\n{\"time\":") != r->records)
        fail_msg("recipe %s: %zu records, want %d\n%s", r->name, count(text, "\n{\"time\":"),
                 r->records, text);
    for (size_t k = 0; k < MAX_WANT && r->want[k]; k++)
        if (!strstr(text, r->want[k]))
            fail_msg("recipe %s: no %s in\n%s", r->name, r->want[k], text);
    for (size_t k = 0; k < 8 && r->absent[k]; k++)
        if (strstr(text, r->absent[k]))
            fail_msg("recipe %s: unexpected %s in\n%s", r->name, r->absent[k], text);
    free(text);
    free(log), free(full), free(cfg), free(out), free(inputs), free(yaml);
    for (size_t k = 0; k < r->ninputs; k++) free(files[k]);
    sl_t_rmtree(dir);
    free(dir);
}

static void test_syslog(void **st)
{
    (void)st;
    /* Dated yesterday in local time, so the inferred year is certain. */
    time_t t = time(NULL) - 86400;
    struct tm lt;
    localtime_r(&t, &lt);
    char stamp[32], lines[1024], when[80];
    strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &lt);
    snprintf(lines, sizeof lines,
             "%s web1 sshd[4242]: Accepted publickey for deploy\n"
             "%s mbp Microsoft Word[14463]: Font cache rebuilt\n"
             "%s web1 nginx upstream timed out\n"
             "<34>1 2026-12-06T23:00:01.5+01:00 web2 api 77 ID47 [exampleSDID@32473 iut=\"3\"] "
             "started\n"
             "2026-12-06T23:00:02.25 web3 sudo: pam_unix(sudo:session): session closed\n",
             stamp, stamp, stamp);
    utc_text(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec, 0,
             when, sizeof when);
    char iso_local[80];
    utc_text(2026, 12, 6, 23, 0, 2, 250000000, iso_local, sizeof iso_local);
    run r = {"syslog",
             {lines},
             1,
             5,
             {when, "\"hostname\":\"web1\"", "\"appname\":\"sshd\"", "\"procid\":\"4242\"",
              "\"message\":\"Accepted publickey for deploy\"", "\"appname\":\"Microsoft Word\"",
              "\"procid\":\"14463\"", "\"message\":\"nginx upstream timed out\"",
              "\"parse_warning\":\"syslog: rfc3164: no tag after host\"",
              "\"time\":\"2026-12-06T22:00:01.500000000Z\"", "\"exampleSDID@32473.iut\":\"3\"",
              "\"hostname\":\"web3\"", iso_local},
             {"parse_error"}};
    run_recipe(&r);
}

static void test_nginx(void **st)
{
    (void)st;
    const char *access =
        "192.0.2.4 - - [06/Dec/2026:23:00:01 +0000] \"GET /a HTTP/1.1\" 200 512 \"-\" "
        "\"curl/8.5\"\n"
        "10.0.0.2, 10.0.0.1 192.0.2.5 - - [06/Dec/2026:23:00:02 +0100] \"POST /b HTTP/2.0\" 201 "
        "7 \"https://example.org/\" \"Mozilla/5.0\"\n";
    const char *error = "2026/12/06 23:00:03 [error] 31#31: *7 open() \"/srv/x\" failed (2: No "
                        "such file or directory), client: 192.0.2.4, server: example.org, "
                        "request: \"GET /x HTTP/1.1\", host: \"example.org\"\n"
                        "2026/12/06 23:00:04 [notice] 1#1: signal process started\n";
    char t3[80], t4[80];
    utc_text(2026, 12, 6, 23, 0, 3, 0, t3, sizeof t3);
    utc_text(2026, 12, 6, 23, 0, 4, 0, t4, sizeof t4);
    run r = {"nginx",
             {access, error},
             2,
             4,
             {"\"time\":\"2026-12-06T23:00:01.000000000Z\"", "\"path\":\"/a\"",
              "\"http_user_agent\":\"curl/8.5\"", "\"time\":\"2026-12-06T22:00:02.000000000Z\"",
              "\"x_forwarded_for\":\"10.0.0.2, 10.0.0.1\"", "\"remote_addr\":\"192.0.2.5\"", t3, t4,
              "\"level\":\"error\"", "\"client\":\"192.0.2.4\"", "\"request\":\"GET /x HTTP/1.1\"",
              "\"connection\":\"7\"", "\"message\":\"signal process started\""},
             {"parse_error"}};
    run_recipe(&r);
}

static void test_apache(void **st)
{
    (void)st;
    const char *access =
        "192.0.2.4 - frank [06/Dec/2026:23:00:01 +0000] \"GET /a HTTP/1.1\" 200 512 \"-\" "
        "\"curl/8.5\"\n"
        "192.0.2.6 - - [06/Dec/2026:23:00:05 +0000] \"GET /c.gif HTTP/1.0\" 304 -\n";
    const char *vhosts = "www.example.org:443 192.0.2.7 - - [06/Dec/2026:23:00:06 +0000] \"GET / "
                         "HTTP/1.1\" 200 512 \"-\" \"curl/8.5\"\n";
    const char *error = "[Sun Dec 06 23:00:07.123456 2026] [core:error] [pid 35708:tid 4328636416] "
                        "[client 192.0.2.4:56000] AH00126: Invalid URI\n"
                        "[Sun Dec 06 23:00:08 2026] [error] [client 192.0.2.4] File does not "
                        "exist: /x\n";
    char t7[80], t8[80];
    utc_text(2026, 12, 6, 23, 0, 7, 123456000, t7, sizeof t7);
    utc_text(2026, 12, 6, 23, 0, 8, 0, t8, sizeof t8);
    run r = {"apache",
             {access, vhosts, error},
             3,
             5,
             {"\"remote_user\":\"frank\"", "\"ident\":\"-\"", "\"path\":\"/c.gif\"",
              "\"status\":\"304\"", "\"time\":\"2026-12-06T23:00:05.000000000Z\"",
              "\"vhost\":\"www.example.org\"", "\"port\":\"443\"", "\"remote_addr\":\"192.0.2.7\"",
              t7, t8, "\"module\":\"core\"", "\"error_code\":\"AH00126\"",
              "\"message\":\"Invalid URI\"", "\"message\":\"File does not exist: /x\""},
             {"parse_error", "x_forwarded_for"}};
    run_recipe(&r);
}

static void test_java(void **st)
{
    (void)st;
    const char *app = "2026-12-06 23:00:01,250 ERROR [main] com.example.Api - request failed\n"
                      "java.lang.IllegalStateException: pool exhausted\n"
                      "\tat com.example.pool.Pool.take(Pool.java:88)\n"
                      "\tat com.example.Api.handle(Api.java:12)\n"
                      "2026-12-06 23:00:02,500 INFO  [worker-1] com.example.Api - recovered\n";
    char t1[80], t2[80];
    utc_text(2026, 12, 6, 23, 0, 1, 250000000, t1, sizeof t1);
    utc_text(2026, 12, 6, 23, 0, 2, 500000000, t2, sizeof t2);
    run r = {"java",
             {app},
             1,
             2,
             {t1, t2, "\"level\":\"ERROR\"", "\"thread\":\"main\"",
              "\"logger\":\"com.example.Api\"",
              "\"message\":\"request failed\\njava.lang.IllegalStateException: pool "
              "exhausted\\n\\tat com.example.pool.Pool.take(Pool.java:88)\\n\\tat "
              "com.example.Api.handle(Api.java:12)\"",
              "\"thread\":\"worker-1\"", "\"message\":\"recovered\""},
             {"parse_error", "multiline_truncated"}};
    run_recipe(&r);
}

static void test_python(void **st)
{
    (void)st;
    const char *app = "2026-12-06 23:00:01,250 ERROR worker.jobs: job 17 failed\n"
                      "Traceback (most recent call last):\n"
                      "  File \"/srv/worker/jobs.py\", line 42, in run\n"
                      "    result = step()\n"
                      "ZeroDivisionError: division by zero\n"
                      "2026-12-06 23:00:03,000 INFO worker.jobs: job 18 done\n";
    char t1[80], t3[80];
    utc_text(2026, 12, 6, 23, 0, 1, 250000000, t1, sizeof t1);
    utc_text(2026, 12, 6, 23, 0, 3, 0, t3, sizeof t3);
    run r = {"python",
             {app},
             1,
             2,
             {t1, t3, "\"logger\":\"worker.jobs\"",
              "\"message\":\"job 17 failed\\nTraceback (most recent call last):\\n  File "
              "\\\"/srv/worker/jobs.py\\\", line 42, in run\\n    result = step()\\n"
              "ZeroDivisionError: division by zero\"",
              "\"message\":\"job 18 done\""},
             {"parse_error"}};
    run_recipe(&r);
}

/* journald: the recipe validates as a whole, and its steps parse journal
 * records (MESSAGE as the line, journal fields beside it). */
static void test_journald(void **st)
{
    (void)st;
    char *yaml = recipe("journald");
    char *dir = sl_t_tmpdir("recipes");
    char *cfgp = sl_t_path(dir, "recipe.yml"), *out = sl_t_path(dir, "out.txt");
    char full[4096];
    int n = snprintf(full, sizeof full,
                     "data_dir: %s/data\n%s\nsinks:\n  - {name: out, type: file, path: \"%s\"}\n",
                     dir, yaml, out);
    assert_int_equal(sl_t_write_file(cfgp, full, (size_t)n), 0);
    char *log = sl_t_path(dir, "check.out");
    char *argv[] = {(char *)sl_t_bin(), "check", "-c", cfgp, NULL};
    pid_t pid = sl_t_spawn(argv, log);
    int status = sl_t_wait(pid, 20000);
    if (status != 0) {
        char *t = sl_t_read_file(log, NULL);
        fail_msg("sluice check: %d\n%s", status, t ? t : "");
    }

    sl_cfg *cfg = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(cfg, "recipe", full, (size_t)n), 0);
    const sl_cfg_node *in = sl_cfg_get(sl_cfg_root(cfg), "inputs")->items[0];
    sl_chain *chain = NULL;
    assert_int_equal(sl_chain_new(cfg, sl_cfg_get(in, "parse"), "journal", &chain), 0);
    sl_batch *b = sl_batch_new(4);
    const char *msgs[] = {"{\"msg\":\"ready\",\"port\":8080}", "plain text from the unit"};
    for (int k = 0; k < 2; k++) {
        sl_record *r = sl_batch_add(b, (sl_slice){msgs[k], strlen(msgs[k])}, 1, 0);
        sl_record_add_field(b, r, SL_SLICE_LIT("unit"), SL_SLICE_LIT("api.service"), SL_V_STRING);
        sl_record_add_field(b, r, SL_SLICE_LIT("level"), SL_SLICE_LIT("info"), SL_V_STRING);
    }
    sl_chain_run(chain, b);
    sl_record *r0 = &b->records[0], *r1 = &b->records[1];
    sl_field *f = sl_record_field(r0, "msg", 3);
    assert_non_null(f);
    assert_true(sl_slice_eq(f->val, "ready", 5));
    assert_non_null(sl_record_field(r0, "port", 4));
    f = sl_record_field(r0, "unit", 4);
    assert_true(f && (f->flags & SL_FF_LABEL));
    assert_false(r0->flags & SL_RF_PARSE_ERROR);
    assert_true(r1->flags & SL_RF_PARSE_ERROR); /* not JSON: shipped raw, marked */
    sl_batch_unref(b);
    sl_chain_free(chain);
    sl_cfg_free(cfg);
    free(log), free(cfgp), free(out), free(yaml);
    sl_t_rmtree(dir);
    free(dir);
}

int main(void)
{
    unsetenv("TZ"); /* libc's local time: /etc/localtime, as the agent's `Local` */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syslog), cmocka_unit_test(test_nginx),
        cmocka_unit_test(test_apache), cmocka_unit_test(test_java),
        cmocka_unit_test(test_python), cmocka_unit_test(test_journald),
    };
    return sl_t_run_tests(tests);
}
