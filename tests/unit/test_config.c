/* The config loader: YAML into sl_cfg, overlays, the key tables (types,
 * bounds, defaults, unknown keys) and the error messages an operator sees.
 * One file over 800 lines: one table for one module, its cases sharing the
 * load() helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "tests/helpers.h"

#define NKEYS(t) (sizeof(t) / sizeof *(t))

/* Loads text as `name` into a fresh config and checks the load's result. */
static sl_cfg *load(const char *name, const char *text, int want_errors)
{
    sl_cfg *c = sl_cfg_new();
    assert_non_null(c);
    int rc = sl_cfg_load_string(c, name, text, strlen(text));
    if (rc != want_errors)
        for (size_t i = 0; i < sl_cfg_nerrors(c); i++)
            fprintf(stderr, "unexpected: %s\n", sl_cfg_error_at(c, i));
    assert_int_equal(rc, want_errors);
    return c;
}

/* Asserts that the config recorded exactly one error, equal to want. */
static void assert_one_error(const sl_cfg *c, const char *want)
{
    if (sl_cfg_nerrors(c) != 1 || strcmp(sl_cfg_error_at(c, 0), want) != 0)
        for (size_t i = 0; i < sl_cfg_nerrors(c); i++)
            fprintf(stderr, "  got: %s\n", sl_cfg_error_at(c, i));
    assert_int_equal(sl_cfg_nerrors(c), 1);
    assert_string_equal(sl_cfg_error_at(c, 0), want);
}

static void assert_load_error(const char *text, const char *want)
{
    sl_cfg *c = load("t.yml", text, 1);
    assert_one_error(c, want);
    sl_cfg_free(c);
}

/* Walks a dotted path: "sinks.loki.buffer" picks named sequence items by
 * name, "paths.0" by index. */
static const sl_cfg_node *at(const sl_cfg *c, const char *path)
{
    const sl_cfg_node *n = sl_cfg_root(c);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save, *part = strtok_r(buf, ".", &save); part && n;
         part = strtok_r(NULL, ".", &save)) {
        if (n->kind == SL_CFG_MAP) {
            n = sl_cfg_get(n, part);
            continue;
        }
        if (n->kind != SL_CFG_SEQ) return NULL;
        const sl_cfg_node *found = NULL;
        for (size_t i = 0; i < n->n && !found; i++) {
            const sl_cfg_node *name = sl_cfg_get(n->items[i], "name");
            if (name && name->kind == SL_CFG_SCALAR && strcmp(name->scalar, part) == 0)
                found = n->items[i];
        }
        if (!found && part[0] >= '0' && part[0] <= '9' && (size_t)atoi(part) < n->n)
            found = n->items[atoi(part)];
        n = found;
    }
    return n;
}

static const char *str_at(const sl_cfg *c, const char *path)
{
    const sl_cfg_node *n = at(c, path);
    assert_non_null(n);
    assert_int_equal(n->kind, SL_CFG_SCALAR);
    return n->scalar;
}

/* ---- overlays ---- */

static const char base_yml[] =
    "data_dir: /var/lib/sluice\n"
    "metrics: { listen: \"127.0.0.1:9880\" }\n"
    "log: { level: info }\n"
    "inputs:\n"
    "  - name: app\n"
    "    type: file\n"
    "    paths: [\"/var/log/app/*.log\", \"/var/log/app2/*.log\"]\n"
    "    parse: [ { json: {} }, { labels: [level] } ]\n"
    "    labels: { job: app, env: base }\n"
    "sinks:\n"
    "  - name: loki\n"
    "    type: loki\n"
    "    url: \"http://127.0.0.1:3100/loki/api/v1/push\"\n"
    "    buffer: { memory_max: 64MiB, spool_max: 1GiB, when_full: block }\n"
    "  - name: events\n"
    "    type: kafka\n"
    "    topic: logs\n";

static const char prod_yml[] = "log: { level: warn }\n"
                               "inputs:\n"
                               "  - name: app\n"
                               "    paths: [\"/srv/app/*.log\"]\n"
                               "    parse: [ { logfmt: {} } ]\n"
                               "    labels: { env: prod }\n"
                               "sinks:\n"
                               "  - name: loki\n"
                               "    buffer:\n"
                               "      memory_max: 256MiB\n"
                               "  - name: debug\n"
                               "    type: stdout\n";

static void test_overlay_two_files(void **st)
{
    (void)st;
    sl_cfg *c = load("base.yml", base_yml, 0);
    assert_int_equal(sl_cfg_load_string(c, "prod.yml", prod_yml, strlen(prod_yml)), 0);
    assert_int_equal(sl_cfg_nerrors(c), 0);

    /* maps merge key by key, scalars replace */
    assert_string_equal(str_at(c, "log.level"), "warn");
    assert_string_equal(str_at(c, "metrics.listen"), "127.0.0.1:9880");
    assert_string_equal(str_at(c, "data_dir"), "/var/lib/sluice");
    assert_string_equal(str_at(c, "inputs.app.labels.job"), "app");
    assert_string_equal(str_at(c, "inputs.app.labels.env"), "prod");
    /* named sequences merge by name: kept fields, changed fields, new item */
    const sl_cfg_node *inputs = at(c, "inputs");
    assert_int_equal(inputs->n, 1);
    assert_string_equal(str_at(c, "inputs.app.type"), "file");
    const sl_cfg_node *sinks = at(c, "sinks");
    assert_int_equal(sinks->n, 3);
    assert_string_equal(str_at(c, "sinks.0.name"), "loki");
    assert_string_equal(str_at(c, "sinks.1.name"), "events");
    assert_string_equal(str_at(c, "sinks.2.name"), "debug");
    assert_string_equal(str_at(c, "sinks.loki.type"), "loki");
    assert_string_equal(str_at(c, "sinks.loki.url"), "http://127.0.0.1:3100/loki/api/v1/push");
    assert_string_equal(str_at(c, "sinks.events.topic"), "logs");
    uint64_t mem, spool;
    const sl_cfg_node *buf = at(c, "sinks.loki.buffer");
    assert_int_equal(sl_cfg_size(c, buf, "memory_max", 0, &mem), 0);
    assert_int_equal(sl_cfg_size(c, buf, "spool_max", 0, &spool), 0);
    assert_int_equal(mem, 256ull << 20);
    assert_int_equal(spool, 1ull << 30);
    assert_string_equal(str_at(c, "sinks.loki.buffer.when_full"), "block");
    /* other sequences replace as a whole */
    assert_int_equal(at(c, "inputs.app.paths")->n, 1);
    assert_string_equal(str_at(c, "inputs.app.paths.0"), "/srv/app/*.log");
    assert_int_equal(at(c, "inputs.app.parse")->n, 1);
    assert_non_null(sl_cfg_get(at(c, "inputs.app.parse.0"), "logfmt"));
    /* every value remembers the file and line it came from */
    const sl_cfg_node *m = at(c, "sinks.loki.buffer.memory_max");
    assert_string_equal(m->file, "prod.yml");
    assert_int_equal(m->line, 10);
    assert_int_equal(m->col, 19);
    const sl_cfg_node *wf = at(c, "sinks.loki.buffer.when_full");
    assert_string_equal(wf->file, "base.yml");
    assert_int_equal(wf->line, 14);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    sl_cfg_free(c);
}

static void test_overlay_three_files_and_null(void **st)
{
    (void)st;
    sl_cfg *c = load("base.yml", base_yml, 0);
    assert_int_equal(sl_cfg_load_string(c, "prod.yml", prod_yml, strlen(prod_yml)), 0);
    const char *local = "data_dir: /data\n"
                        "metrics: ~\n" /* null resets to the default */
                        "sinks:\n  - name: debug\n    type: file\n    path: /tmp/x\n"
                        "inputs: [ {type: journald} ]\n"; /* unnamed: replaces */
    assert_int_equal(sl_cfg_load_string(c, "local.yml", local, strlen(local)), 0);
    assert_string_equal(str_at(c, "data_dir"), "/data");
    assert_int_equal(at(c, "metrics")->kind, SL_CFG_NULL);
    const char *listen;
    assert_int_equal(sl_cfg_str(c, at(c, "metrics"), "listen", "def", &listen), 0);
    assert_string_equal(listen, "def");
    assert_int_equal(at(c, "sinks")->n, 3);
    assert_string_equal(str_at(c, "sinks.debug.type"), "file");
    assert_string_equal(str_at(c, "sinks.debug.path"), "/tmp/x");
    assert_string_equal(str_at(c, "log.level"), "warn");
    assert_int_equal(at(c, "inputs")->n, 1);
    assert_string_equal(str_at(c, "inputs.0.type"), "journald");
    assert_null(sl_cfg_get(at(c, "inputs.0"), "name"));

    /* a broken overlay reports its errors and changes nothing */
    const char *bad = "data_dir: /elsewhere\nlog: { level: [\n";
    assert_int_equal(sl_cfg_load_string(c, "bad.yml", bad, strlen(bad)), 1);
    assert_string_equal(str_at(c, "data_dir"), "/data");
    assert_int_equal(sl_cfg_nerrors(c), 1);
    sl_cfg_free(c);
}

static void test_overlay_empty_and_files(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cfg");
    assert_non_null(dir);
    char *a = sl_t_path(dir, "a.yml"), *b = sl_t_path(dir, "b.yml"), *e = sl_t_path(dir, "e.yml");
    assert_int_equal(sl_t_write_file(a, "x: 1\ny: {z: 2}\n", 15), 0);
    assert_int_equal(sl_t_write_file(b, "y: {w: 3}\n", 10), 0);
    assert_int_equal(sl_t_write_file(e, "# only a comment\n", 17), 0);
    sl_cfg *c = sl_cfg_new();
    /* before anything is loaded: an empty map */
    assert_int_equal(sl_cfg_root(c)->kind, SL_CFG_MAP);
    assert_int_equal(sl_cfg_root(c)->n, 0);
    assert_int_equal(sl_cfg_load_file(c, a), 0);
    assert_int_equal(sl_cfg_load_file(c, e), 0);
    assert_int_equal(sl_cfg_load_file(c, b), 0);
    assert_string_equal(str_at(c, "x"), "1");
    assert_string_equal(str_at(c, "y.z"), "2");
    assert_string_equal(str_at(c, "y.w"), "3");
    assert_string_equal(at(c, "y.w")->file, b);
    assert_string_equal(at(c, "x")->file, a);

    char *missing = sl_t_path(dir, "missing.yml");
    assert_int_equal(sl_cfg_load_file(c, missing), 1);
    char want[4200];
    snprintf(want, sizeof want, "%s:1:1: cannot read configuration", missing);
    assert_int_equal(strncmp(sl_cfg_error_at(c, 0), want, strlen(want)), 0);
    sl_cfg_free(c);
    sl_t_rmtree(dir);
    free(a), free(b), free(e), free(missing), free(dir);
}

/* ---- environment expansion ---- */

static void test_env_expansion(void **st)
{
    (void)st;
    setenv("SL_TCFG_HOST", "loki.local", 1);
    setenv("SL_TCFG_EMPTY", "", 1);
    setenv("SL_TCFG_DOLLAR", "a$b${SL_TCFG_HOST}", 1);
    unsetenv("SL_TCFG_UNSET");
    sl_cfg *c = load("env.yml",
                     "url: \"http://${SL_TCFG_HOST}:${SL_TCFG_UNSET:-3100}/push\"\n"
                     "d1: ${SL_TCFG_UNSET:-}\n"
                     "d2: ${SL_TCFG_EMPTY:-fallback}\n"
                     "d3: ${SL_TCFG_EMPTY}\n"
                     "d4: ${SL_TCFG_UNSET:-a:-b c}\n"
                     "lit: $$HOME costs $$5 and $${SL_TCFG_HOST} $ end$\n"
                     "raw: ${SL_TCFG_DOLLAR}\n"
                     "${SL_TCFG_HOST}: key is literal\n"
                     "list: [\"${SL_TCFG_HOST}\", \"x${SL_TCFG_HOST}y\"]\n",
                     0);
    assert_string_equal(str_at(c, "url"), "http://loki.local:3100/push");
    assert_string_equal(str_at(c, "d1"), "");
    assert_string_equal(str_at(c, "d2"), "fallback");
    assert_string_equal(str_at(c, "d3"), "");
    assert_string_equal(str_at(c, "d4"), "a:-b c");
    assert_string_equal(str_at(c, "lit"), "$HOME costs $5 and ${SL_TCFG_HOST} $ end$");
    /* a value from the environment is not expanded again */
    assert_string_equal(str_at(c, "raw"), "a$b${SL_TCFG_HOST}");
    assert_string_equal(str_at(c, "${SL_TCFG_HOST}"), "key is literal");
    assert_string_equal(str_at(c, "list.0"), "loki.local");
    assert_string_equal(str_at(c, "list.1"), "xloki.localy");
    assert_int_equal(at(c, "url")->scalar_len, strlen("http://loki.local:3100/push"));
    sl_cfg_free(c);
}

static void test_env_errors_have_exact_positions(void **st)
{
    (void)st;
    setenv("SL_TCFG_HOST", "loki.local", 1);
    unsetenv("SL_TCFG_UNSET");
    unsetenv("SL_TCFG_UNSET2");
    assert_load_error("data_dir: ${SL_TCFG_UNSET}\n",
                      "t.yml:1:11: environment variable 'SL_TCFG_UNSET' is not set "
                      "(use ${SL_TCFG_UNSET:-default} for a default)");
    /* the second reference in a value, after a set one */
    assert_load_error("a: 1\nurl: \"http://${SL_TCFG_HOST}:${SL_TCFG_UNSET}/x\"\n",
                      "t.yml:2:30: environment variable 'SL_TCFG_UNSET' is not set "
                      "(use ${SL_TCFG_UNSET:-default} for a default)");
    /* columns count characters, like the YAML parser's */
    assert_load_error("k: \"\xc3\xa9\xc3\xa9 ${SL_TCFG_UNSET}\"\n",
                      "t.yml:1:8: environment variable 'SL_TCFG_UNSET' is not set "
                      "(use ${SL_TCFG_UNSET:-default} for a default)");
    /* inside a multi-line value */
    assert_load_error("m: >\n  line one\n  and ${SL_TCFG_UNSET} here\n",
                      "t.yml:3:7: environment variable 'SL_TCFG_UNSET' is not set "
                      "(use ${SL_TCFG_UNSET:-default} for a default)");
    /* $${...} is literal and does not hide the next reference */
    assert_load_error("k: $${SL_TCFG_UNSET} ${SL_TCFG_UNSET}\n",
                      "t.yml:1:22: environment variable 'SL_TCFG_UNSET' is not set "
                      "(use ${SL_TCFG_UNSET:-default} for a default)");
    assert_load_error("k: ${1ABC}\n",
                      "t.yml:1:4: bad variable reference '${1ABC}' (names are letters, digits "
                      "and '_')");
    assert_load_error("k: ${}\n", "t.yml:1:4: bad variable reference '${}' (names are letters, "
                                  "digits and '_')");
    assert_load_error("k: abc ${SL_TCFG_HOST\n",
                      "t.yml:1:4: unterminated '${' in value (write '$$' for a literal '$')");

    /* every unset variable is reported, and the load changes nothing */
    sl_cfg *c = load("t.yml", "a: ${SL_TCFG_UNSET}\nb:\n  - ${SL_TCFG_UNSET2}\n", 2);
    assert_int_equal(sl_cfg_nerrors(c), 2);
    assert_non_null(
        strstr(sl_cfg_error_at(c, 0), "t.yml:1:4: environment variable 'SL_TCFG_UNSET'"));
    assert_non_null(
        strstr(sl_cfg_error_at(c, 1), "t.yml:3:5: environment variable 'SL_TCFG_UNSET2'"));
    assert_int_equal(sl_cfg_root(c)->n, 0);
    sl_cfg_free(c);
    /* the same name twice in one value: each error points at its own reference */
    c = load("t.yml", "k: ${SL_TCFG_UNSET}/${SL_TCFG_UNSET}\n", 2);
    assert_non_null(strstr(sl_cfg_error_at(c, 0), "t.yml:1:4: environment variable"));
    assert_non_null(strstr(sl_cfg_error_at(c, 1), "t.yml:1:21: environment variable"));
    sl_cfg_free(c);
}

/* ---- broken YAML ---- */

static void test_broken_yaml_positions(void **st)
{
    (void)st;
    assert_load_error("a: 1\nb: [1, 2\nc: 3\n",
                      "t.yml:3:2: YAML syntax error: did not find expected ',' or ']' while "
                      "parsing a flow sequence");
    assert_load_error("a:\n\tb: 1\n", "t.yml:2:1: YAML syntax error: found character that cannot "
                                      "start any token while scanning for the next token");
    assert_load_error("a: 1\n b: 2\n",
                      "t.yml:2:3: YAML syntax error: mapping values are not allowed in this "
                      "context");
    assert_load_error("x: \"unterminated\n",
                      "t.yml:2:1: YAML syntax error: found unexpected end of stream while "
                      "scanning a quoted scalar");
    assert_load_error("a: 1\nb: &anchor {c: 1}\n",
                      "t.yml:2:4: YAML anchors and aliases are not supported");
    assert_load_error("a: 1\nb: *alias\n", "t.yml:2:4: YAML anchors and aliases are not supported");
    assert_load_error("a: 1\nb: 2\na: 3\n", "t.yml:3:1: duplicate key 'a' (first at line 1)");
    assert_load_error("- a\n- b\n",
                      "t.yml:1:1: the configuration must be a map of keys, not a list");
    assert_load_error("just a string\n",
                      "t.yml:1:1: the configuration must be a map of keys, not a single value");
    assert_load_error("a: 1\n---\nb: 2\n", "t.yml:2:1: only one YAML document per file");
    assert_load_error("? [a, b]\n: 1\n", "t.yml:1:3: map keys must be plain strings");
    assert_load_error("a: \"x\\0y\"\n", "t.yml:1:4: value contains a NUL character");
    /* not UTF-8 */
    assert_load_error("a: \xff\xfe\xfd\n",
                      "t.yml:1:4: YAML syntax error: invalid leading UTF-8 octet (at byte 3)");
    assert_load_error("a: \"\xc3\xa9\"\r\nb: x\x01\n",
                      "t.yml:2:5: YAML syntax error: control characters are not allowed (at byte "
                      "13)");
}

/* ---- validation against key tables ---- */

static const sl_cfg_key input_keys[] = {
    {.name = "name", .type = SL_KEY_STR, .required = true},
    {.name = "type", .type = SL_KEY_ENUM, .required = true, .choices = "file|journald"},
    {.name = "paths", .type = SL_KEY_LIST, .required = true},
    {.name = "exclude", .type = SL_KEY_LIST},
    {.name = "start_at", .type = SL_KEY_ENUM, .choices = "beginning|end"},
    {.name = "max_line_bytes", .type = SL_KEY_SIZE},
    {.name = "idle_timeout", .type = SL_KEY_DURATION},
    {.name = "max_open_files", .type = SL_KEY_INT},
    {.name = "follow", .type = SL_KEY_BOOL},
    {.name = "labels", .type = SL_KEY_MAP},
    {.name = "parse", .type = SL_KEY_SEQ},
    {.name = "extra", .type = SL_KEY_ANY},
};

static sl_cfg *check_input(const char *yaml)
{
    sl_cfg *c = load("in.yml", yaml, 0);
    const sl_cfg_node *in = at(c, "inputs.0");
    assert_non_null(in);
    sl_cfg_check(c, in, input_keys, NKEYS(input_keys));
    return c;
}

static void assert_check_error(const char *yaml, const char *want)
{
    sl_cfg *c = check_input(yaml);
    assert_one_error(c, want);
    sl_cfg_free(c);
}

static void test_check_valid(void **st)
{
    (void)st;
    sl_cfg *c = check_input("inputs:\n  - name: app\n    type: file\n    paths: /var/log/*.log\n"
                            "    start_at: end\n    max_line_bytes: 1MiB\n    idle_timeout: 5m\n"
                            "    max_open_files: 100\n    follow: yes\n    labels: {a: b}\n"
                            "    parse: []\n    extra: [1, {x: y}]\n    exclude: ~\n");
    assert_int_equal(sl_cfg_nerrors(c), 0);
    const sl_cfg_node *in = at(c, "inputs.0");
    const char *paths[4];
    size_t n;
    assert_int_equal(sl_cfg_list(c, in, "paths", paths, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(paths[0], "/var/log/*.log");
    assert_int_equal(sl_cfg_list(c, in, "exclude", paths, 4, &n), 0);
    assert_int_equal(n, 0);
    int e;
    assert_int_equal(sl_cfg_enum(c, in, "start_at", "beginning|end", 0, &e), 0);
    assert_int_equal(e, 1);
    assert_int_equal(sl_cfg_enum(c, in, "absent", "beginning|end", 0, &e), 0);
    assert_int_equal(e, 0);
    int64_t v;
    assert_int_equal(sl_cfg_duration_ms(c, in, "idle_timeout", 0, &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(sl_cfg_int(c, in, "max_open_files", 7, 1, 1000, &v), 0);
    assert_int_equal(v, 100);
    bool b;
    assert_int_equal(sl_cfg_bool(c, in, "follow", false, &b), 0);
    assert_true(b);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    sl_cfg_free(c);
}

static void test_check_unknown_key_suggests(void **st)
{
    (void)st;
    assert_check_error("inputs:\n  - name: app\n    type: file\n    paths: [a]\n    pahts: [b]\n",
                       "in.yml:5:5: unknown key 'pahts'; did you mean 'paths'?");
    assert_check_error("inputs:\n  - {name: a, type: file, paths: [a], start: end}\n",
                       "in.yml:2:39: unknown key 'start'; did you mean 'start_at'?");
    assert_check_error("inputs:\n  - {name: a, type: file, paths: [a], nmae2: x}\n",
                       "in.yml:2:39: unknown key 'nmae2'; did you mean 'name'?");
    /* nothing close: list what is valid */
    assert_check_error("inputs:\n  - {name: a, type: file, paths: [a], colour: red}\n",
                       "in.yml:2:39: unknown key 'colour' (valid keys: name, type, paths, "
                       "exclude, start_at, max_line_bytes, idle_timeout, max_open_files, follow, "
                       "labels, parse, extra)");
}

static void test_check_wrong_types(void **st)
{
    (void)st;
    const char *pre = "inputs:\n  - name: a\n    type: file\n    paths: [a]\n";
    char y[512];
    snprintf(y, sizeof y, "%s    max_line_bytes: lots\n", pre);
    assert_check_error(y, "in.yml:5:21: 'max_line_bytes' must be a size: bytes (512) or a number "
                          "with KiB, MiB, GiB, TiB (1024s) or kB, MB, GB, TB (1000s), no space, "
                          "got 'lots'");
    snprintf(y, sizeof y, "%s    idle_timeout: -5s\n", pre);
    assert_check_error(y, "in.yml:5:19: 'idle_timeout' must be a duration like 500ms, 5s, 2m or "
                          "1h30m, got '-5s'");
    snprintf(y, sizeof y, "%s    follow: maybe\n", pre);
    assert_check_error(y, "in.yml:5:13: 'follow' must be true or false, got 'maybe'");
    snprintf(y, sizeof y, "%s    max_open_files: 12x\n", pre);
    assert_check_error(y, "in.yml:5:21: 'max_open_files' must be an integer from "
                          "-9223372036854775808 to 9223372036854775807, got '12x'");
    snprintf(y, sizeof y, "%s    labels: [a, b]\n", pre);
    assert_check_error(y, "in.yml:5:13: 'labels' must be a map, not a list");
    snprintf(y, sizeof y, "%s    parse: {json: {}}\n", pre);
    assert_check_error(y, "in.yml:5:12: 'parse' must be a list, not a map");
    snprintf(y, sizeof y, "%s    exclude: [a, [b]]\n", pre);
    assert_check_error(y, "in.yml:5:18: items of 'exclude' must be single values");
    snprintf(y, sizeof y, "%s    start_at: {x: 1}\n", pre);
    assert_check_error(y, "in.yml:5:15: 'start_at' must be a single value, not a map");
    assert_check_error("inputs:\n  - [a]\n", "in.yml:2:5: expected a map of keys, not a list");
}

static void test_check_missing_required(void **st)
{
    (void)st;
    assert_check_error("inputs:\n  - name: app\n    type: file\n",
                       "in.yml:2:5: missing required key 'paths'");
    /* null counts as missing */
    assert_check_error("inputs:\n  - name: app\n    type: file\n    paths:\n",
                       "in.yml:2:5: missing required key 'paths'");
    sl_cfg *c = check_input("inputs:\n  - {}\n");
    assert_int_equal(sl_cfg_nerrors(c), 3);
    assert_string_equal(sl_cfg_error_at(c, 0), "in.yml:2:5: missing required key 'name'");
    assert_string_equal(sl_cfg_error_at(c, 1), "in.yml:2:5: missing required key 'type'");
    assert_string_equal(sl_cfg_error_at(c, 2), "in.yml:2:5: missing required key 'paths'");
    sl_cfg_free(c);
    /* a null map (`buffer:` with nothing under it) is checked as empty, at its position */
    c = load("n.yml", "inputs:\n  - buffer:\n", 0);
    const sl_cfg_key k[] = {{.name = "memory_max", .type = SL_KEY_SIZE, .required = true}};
    assert_int_equal(sl_cfg_check(c, sl_cfg_get(at(c, "inputs.0"), "buffer"), k, 1), 1);
    assert_string_equal(sl_cfg_error_at(c, 0), "n.yml:2:12: missing required key 'memory_max'");
    sl_cfg_free(c);
}

static void test_check_bad_enum(void **st)
{
    (void)st;
    const char *pre = "inputs:\n  - name: a\n    type: file\n    paths: [a]\n";
    char y[512];
    snprintf(y, sizeof y, "%s    start_at: middle\n", pre);
    assert_check_error(y, "in.yml:5:15: 'start_at' must be one of beginning|end, got 'middle'");
    snprintf(y, sizeof y, "%s    start_at: begining\n", pre);
    assert_check_error(y, "in.yml:5:15: 'start_at' must be one of beginning|end, got "
                          "'begining'; did you mean 'beginning'?");
    assert_check_error("inputs:\n  - {name: a, type: File, paths: [a]}\n",
                       "in.yml:2:21: 'type' must be one of file|journald, got 'File'; did you "
                       "mean 'file'?");
}

static void test_check_error_cap(void **st)
{
    (void)st;
    /* thousands of bad keys: errors stop at a bound instead of growing */
    size_t n = 3000, cap = n * 16 + 16, o = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    for (size_t i = 0; i < n; i++) o += (size_t)snprintf(y + o, cap - o, "k%zu: 1\n", i);
    sl_cfg *c = load("many.yml", y, 0);
    sl_cfg_check(c, sl_cfg_root(c), input_keys, NKEYS(input_keys));
    assert_int_equal(sl_cfg_nerrors(c), 1000);
    sl_cfg_free(c);
    free(y);
}

/* ---- typed getters ---- */

static void test_getters(void **st)
{
    (void)st;
    sl_cfg *c = load("g.yml",
                     "n: 42\nneg: -7\nbig: 9223372036854775808\nq: \"12\"\nb1: On\nb2: off\n"
                     "l: [a, b, c]\nm: {x: 1}\nnul: ~\n",
                     0);
    const sl_cfg_node *r = sl_cfg_root(c);
    int64_t v;
    assert_int_equal(sl_cfg_int(c, r, "n", 0, 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(sl_cfg_int(c, r, "neg", 0, -10, 10, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(sl_cfg_int(c, r, "q", 0, 0, 100, &v), 0); /* quoted numbers are fine */
    assert_int_equal(v, 12);
    assert_true(at(c, "q")->quoted);
    assert_false(at(c, "n")->quoted);
    assert_int_equal(sl_cfg_int(c, r, "absent", 5, 0, 100, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(sl_cfg_int(c, r, "nul", 6, 0, 100, &v), 0);
    assert_int_equal(v, 6);
    assert_int_equal(sl_cfg_int(c, NULL, "n", 8, 0, 100, &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    assert_int_equal(sl_cfg_int(c, r, "n", 3, 0, 41, &v), -1);
    assert_int_equal(v, 3);
    assert_string_equal(sl_cfg_error_at(c, 0),
                        "g.yml:1:4: 'n' must be an integer from 0 to 41, got '42'");
    assert_int_equal(sl_cfg_int(c, r, "big", 0, INT64_MIN, INT64_MAX, &v), -1);
    bool b;
    assert_int_equal(sl_cfg_bool(c, r, "b1", false, &b), 0);
    assert_true(b);
    assert_int_equal(sl_cfg_bool(c, r, "b2", true, &b), 0);
    assert_false(b);
    const char *list[3];
    size_t n;
    assert_int_equal(sl_cfg_list(c, r, "l", list, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[2], "c");
    size_t before = sl_cfg_nerrors(c);
    assert_int_equal(sl_cfg_list(c, r, "l", list, 2, &n), -1);
    assert_int_equal(sl_cfg_nerrors(c), before + 1);
    assert_string_equal(sl_cfg_error_at(c, before),
                        "g.yml:7:4: 'l' has 3 items; at most 2 are allowed");
    assert_int_equal(sl_cfg_list(c, r, "m", list, 3, &n), -1);
    const char *s;
    assert_int_equal(sl_cfg_str(c, r, "m", "d", &s), -1);
    assert_string_equal(s, "d");
    uint64_t sz;
    assert_int_equal(sl_cfg_size(c, r, "absent", 77, &sz), 0);
    assert_int_equal(sz, 77);
    sl_cfg_free(c);
}

static void test_size_table(void **st)
{
    (void)st;
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"123", 123},
        {"123B", 123},
        {"64MiB", 64ull << 20},
        {"1GiB", 1ull << 30},
        {"10MB", 10000000},
        {"5kB", 5000},
        {"5KiB", 5120},
        {"1.5GiB", 1610612736ull},
        {"0.5kB", 500},
        {"2TiB", 2ull << 40},
        {"3TB", 3000000000000ull},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < NKEYS(ok); i++) {
        uint64_t v = 1;
        if (sl_parse_size(ok[i].in, &v) != 0) fail_msg("size '%s' rejected", ok[i].in);
        if (v != ok[i].want)
            fail_msg("size '%s' = %llu, want %llu", ok[i].in, (unsigned long long)v,
                     (unsigned long long)ok[i].want);
    }
    static const char *const bad[] = {
        "",
        "lots",
        "-1",
        "-5MiB",
        "1e3",
        "0x10",
        "MiB",
        "1.5",
        "1.",
        ".5k",
        "5 k b",
        "5XiB",
        "5kibb",
        "15EiB",
        "NaN",
        "inf",
        "1,000",
        "18446744073709551616",
        "17179869184GiB",
        "99999999999999999999999",
        "16777216TiB",
        "5 MiB x",
        /* one spelling per unit (decision 0020) */
        "1M",
        "32mb",
        "1 MiB",
        "64mib",
        "5k",
        "2m",
        "123b",
        "1KB",
        "1Mb",
        " 1MiB",
        "1MiB ",
    };
    for (size_t i = 0; i < NKEYS(bad); i++) {
        uint64_t v = 99;
        if (sl_parse_size(bad[i], &v) == 0)
            fail_msg("size '%s' accepted as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 99);
    }
}

/* A bad size is one error (the key table and the consumer both look at
 * it), and an out-of-range one names the one range. */
static void test_size_errors_once_with_one_range(void **st)
{
    (void)st;
    sl_cfg *c = check_input("inputs:\n  - {name: a, type: file, paths: [a], max_line_bytes: 1M}\n");
    uint64_t v = 7;
    const sl_cfg_node *in = at(c, "inputs.0");
    assert_int_equal(sl_cfg_size_range(c, in, "max_line_bytes", 9, 16, 64u << 20, &v), -1);
    assert_int_equal(v, 9);
    assert_one_error(c, "in.yml:2:55: 'max_line_bytes' must be a size: bytes (512) or a number "
                        "with KiB, MiB, GiB, TiB (1024s) or kB, MB, GB, TB (1000s), no space, "
                        "got '1M'; did you mean '1MiB' or '1MB'?");
    sl_cfg_free(c);
    c = check_input("inputs:\n  - {name: a, type: file, paths: [a], max_line_bytes: 1TiB}\n");
    in = at(c, "inputs.0");
    assert_int_equal(sl_cfg_size_range(c, in, "max_line_bytes", 9, 16, 64u << 20, &v), -1);
    assert_int_equal(sl_cfg_size_range(c, in, "max_line_bytes", 9, 16, 64u << 20, &v), -1);
    assert_one_error(c, "in.yml:2:55: 'max_line_bytes' must be from 16 to 64MiB, got '1TiB'");
    sl_cfg_free(c);
    c = check_input("inputs:\n  - {name: a, type: file, paths: [a], max_line_bytes: 2MiB}\n");
    in = at(c, "inputs.0");
    assert_int_equal(sl_cfg_size_range(c, in, "max_line_bytes", 9, 16, 64u << 20, &v), 0);
    assert_int_equal(v, 2u << 20);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    sl_cfg_free(c);
    char b[32];
    sl_format_size(1536, b, sizeof b);
    assert_string_equal(b, "1536");
    sl_format_size(3ull << 40, b, sizeof b);
    assert_string_equal(b, "3TiB");
}

/* Deferred: an unset variable is an error only where the value is used,
 * and an overlay that replaces the value removes it. */
static void test_deferred_unset_vars(void **st)
{
    (void)st;
    unsetenv("SL_TCFG_UNSET");
    sl_cfg *c = sl_cfg_new();
    sl_cfg_defer_unset_vars(c);
    sl_cfg_set_env_hint(c, "/etc/sluice/site.env");
    const char *base = "data_dir: /d\nurl: ${SL_TCFG_UNSET}\nother: ${SL_TCFG_UNSET}\n";
    assert_int_equal(sl_cfg_load_string(c, "b.yml", base, strlen(base)), 0);
    const char *over = "url: http://x\n";
    assert_int_equal(sl_cfg_load_string(c, "o.yml", over, strlen(over)), 0);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    const sl_cfg_node *r = sl_cfg_root(c);
    assert_null(sl_cfg_unresolved(sl_cfg_get(r, "data_dir")));
    assert_null(sl_cfg_unresolved(sl_cfg_get(r, "url")));
    assert_non_null(sl_cfg_unresolved(sl_cfg_get(r, "other")));
    assert_int_equal(sl_cfg_report_unresolved(c, r), 1);
    /* variables given to the config fill in where the environment has none */
    sl_cfg *v = sl_cfg_new();
    setenv("SL_TCFG_HOST", "from-env", 1);
    assert_int_equal(sl_cfg_add_var(v, "SL_TCFG_UNSET", "one"), 0);
    assert_int_equal(sl_cfg_add_var(v, "SL_TCFG_UNSET", "two"), 0);
    assert_int_equal(sl_cfg_add_var(v, "SL_TCFG_HOST", "from-file"), 0);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "SL_TCFG_V%d", i);
        assert_int_equal(sl_cfg_add_var(v, name, name), 0);
    }
    const char *y = "a: ${SL_TCFG_UNSET}\nb: ${SL_TCFG_HOST}\nc: ${SL_TCFG_V39}\n";
    assert_int_equal(sl_cfg_load_string(v, "v.yml", y, strlen(y)), 0);
    assert_string_equal(sl_cfg_get(sl_cfg_root(v), "a")->scalar, "two");
    assert_string_equal(sl_cfg_get(sl_cfg_root(v), "b")->scalar, "from-env");
    assert_string_equal(sl_cfg_get(sl_cfg_root(v), "c")->scalar, "SL_TCFG_V39");
    sl_cfg_free(v);
    assert_one_error(c, "b.yml:3:8: environment variable 'SL_TCFG_UNSET' is not set (set it in "
                        "/etc/sluice/site.env or the environment, or use ${SL_TCFG_UNSET:-default} "
                        "for a default)");
    sl_cfg_free(c);
}

static void test_duration_table(void **st)
{
    (void)st;
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"0", 0},           {"0s", 0},
        {"500ms", 500},     {"5s", 5000},
        {"2m", 120000},     {"1h", 3600000},
        {"1h30m", 5400000}, {"1h30m15s", 5415000},
        {"250us", 1},       {"1500us", 1},
        {"2500us", 2},      {"1.5s", 1500},
        {"0.5m", 30000},    {"1d", 86400000},
        {"90s", 90000},     {" 5s ", 5000},
        {"0.001ms", 1},     {"106751991d", 106751991LL * 86400000},
    };
    for (size_t i = 0; i < NKEYS(ok); i++) {
        int64_t v = -1;
        if (sl_parse_duration_ms(ok[i].in, &v) != 0) fail_msg("duration '%s' rejected", ok[i].in);
        if (v != ok[i].want)
            fail_msg("duration '%s' = %lld, want %lld", ok[i].in, (long long)v,
                     (long long)ok[i].want);
    }
    static const char *const bad[] = {
        "",    "5",      "-5s",    "5 s",        "5x",
        "s",   "1h-30m", "1e3s",   "0x5s",       "1.s",
        "abc", "5sec",   "1h 30m", "1.5",        "5msx",
        "nan", "inf",    "10",     "106752000d", "99999999999999999999s",
        "5s!",
    };
    for (size_t i = 0; i < NKEYS(bad); i++) {
        int64_t v = 99;
        if (sl_parse_duration_ms(bad[i], &v) == 0)
            fail_msg("duration '%s' accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, 99);
    }
}

/* ---- bounds ---- */

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 16);
    size_t o = 0;
    o += (size_t)sprintf(s, "a: ");
    for (int i = 0; i < depth; i++) s[o++] = '[';
    for (int i = 0; i < depth; i++) s[o++] = ']';
    s[o++] = '\n';
    s[o] = '\0';
    return s;
}

static void test_depth_bound(void **st)
{
    (void)st;
    /* the root map is one level: 63 more fit, the 64th nested list does not */
    char *ok = nested(63), *deep = nested(64), *hostile = nested(100000);
    sl_cfg *c = load("d.yml", ok, 0);
    sl_cfg_free(c);
    c = load("d.yml", deep, 1);
    assert_one_error(c, "d.yml:1:67: nesting deeper than 64 levels");
    sl_cfg_free(c);
    c = load("d.yml", hostile, 1);
    assert_one_error(c, "d.yml:1:67: nesting deeper than 64 levels");
    sl_cfg_free(c);
    free(ok), free(deep), free(hostile);
}

static void test_size_bounds(void **st)
{
    (void)st;
    /* file size: refused before parsing */
    size_t big = (16u << 20) + 1;
    char *s = malloc(big);
    assert_non_null(s);
    memset(s, '#', big);
    sl_cfg *c = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(c, "big.yml", s, big), 1);
    assert_one_error(c, "big.yml:1:1: file larger than 16777216 bytes");
    sl_cfg_free(c);
    free(s);

    /* node count: a flat list of 1,000,000+ tiny items */
    size_t items = 1000001;
    s = malloc(items * 2 + 16);
    assert_non_null(s);
    size_t o = (size_t)sprintf(s, "a: [");
    for (size_t i = 0; i < items; i++) s[o++] = '1', s[o++] = ',';
    s[o - 1] = ']';
    s[o] = '\0';
    c = sl_cfg_new();
    assert_int_equal(sl_cfg_load_string(c, "nodes.yml", s, o), 1);
    assert_int_equal(sl_cfg_nerrors(c), 1);
    assert_non_null(
        strstr(sl_cfg_error_at(c, 0), "configuration too large (more than 1000000 nodes"));
    assert_int_equal(strncmp(sl_cfg_error_at(c, 0), "nodes.yml:1:", 12), 0);
    sl_cfg_free(c);
    free(s);

    /* one value longer than 1 MiB after expansion */
    size_t vlen = 100000;
    char *val = malloc(vlen + 1);
    memset(val, 'v', vlen);
    val[vlen] = '\0';
    setenv("SL_TCFG_LONG", val, 1);
    free(val);
    char y[512] = "k: ";
    for (int i = 0; i < 11; i++) strcat(y, "${SL_TCFG_LONG}");
    strcat(y, "\n");
    c = load("long.yml", y, 1);
    assert_one_error(c, "long.yml:1:4: value longer than 1048576 bytes after expansion");
    sl_cfg_free(c);
    /* ten fit */
    y[3 + 10 * strlen("${SL_TCFG_LONG}")] = '\0';
    c = load("long.yml", y, 0);
    assert_int_equal(at(c, "k")->scalar_len, 10 * vlen);
    sl_cfg_free(c);
    unsetenv("SL_TCFG_LONG");
}

static void test_big_maps_stay_fast(void **st)
{
    (void)st;
    /* 100,000 keys in one map, overlaid by another 100,000: duplicate checks
     * and merging are linear (a quadratic version takes minutes here). */
    size_t n = sl_t_sanitized() ? 20000 : 100000, cap = n * 24 + 16;
    char *a = malloc(cap), *b = malloc(cap);
    size_t oa = 0, ob = 0;
    for (size_t i = 0; i < n; i++) {
        oa += (size_t)snprintf(a + oa, cap - oa, "key%zu: %zu\n", i, i);
        ob += (size_t)snprintf(b + ob, cap - ob, "key%zu: x\n", i + n / 2);
    }
    sl_cfg *c = load("a.yml", a, 0);
    assert_int_equal(sl_cfg_load_string(c, "b.yml", b, ob), 0);
    assert_int_equal(sl_cfg_root(c)->n, n + n / 2);
    assert_string_equal(str_at(c, "key0"), "0");
    char k[32];
    snprintf(k, sizeof k, "key%zu", n / 2);
    assert_string_equal(str_at(c, k), "x");
    sl_cfg_free(c);
    /* a duplicate at the very end is still found */
    snprintf(a + oa, cap - oa, "key7: again\n");
    c = load("a.yml", a, 1);
    assert_non_null(strstr(sl_cfg_error_at(c, 0), "duplicate key 'key7' (first at line 8)"));
    sl_cfg_free(c);
    free(a), free(b);
}

/* ---- dump ---- */

static char *dump(const sl_cfg *c)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    assert_int_equal(sl_cfg_dump(c, f), 0);
    fclose(f);
    return out;
}

static void assert_same_tree(const sl_cfg_node *a, const sl_cfg_node *b)
{
    assert_int_equal(a->kind, b->kind);
    if (a->kind == SL_CFG_SCALAR) {
        assert_int_equal(a->scalar_len, b->scalar_len);
        assert_memory_equal(a->scalar, b->scalar, a->scalar_len);
        return;
    }
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->kind == SL_CFG_MAP) assert_string_equal(a->keys[i], b->keys[i]);
        assert_same_tree(a->items[i], b->items[i]);
    }
}

static void test_dump_round_trip(void **st)
{
    (void)st;
    setenv("SL_TCFG_HOST", "loki.local", 1);
    char longkey[1500];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    char y[8192];
    snprintf(y, sizeof y,
             "%s"
             "odd: \"quote \\\" backslash \\\\ tab \\t nl \\n nul-free \\x01 del \\x7f\"\n"
             "unicode: \"caf\xc3\xa9 \\x85 nel \\u2028 ls \\u2029 ps \\uFEFF bom \\x9b csi\"\n"
             "dollars: \"$$HOME ${SL_TCFG_HOST} $${SL_TCFG_HOST}\"\n"
             "yamlish: [\"- a\", \": b\", \"#c\", \"{d}\", \"null\", \"~\", \"\", \" pad \", "
             "\"true\", \"123\", \"a: b\", \"x #y\", \"@at\", \"%%p\", \"`t\", \"!n\", \"&a\", "
             "\"*b\", \"|\", \">\", \"'\", \"?\"]\n"
             "plain: [true, 123, 1.5, -7, /var/log, a-b_c.d+e]\n"
             "nulls: [~, null, NULL]\n"
             "empty: {m: {}, s: []}\n"
             "nested: [[1, [2, {a: [3]}]], {b: c}]\n"
             "\"key with: colon\": 1\n"
             "\"-dash\": 2\n"
             "\"~\": tilde key\n"
             "\"\": empty key\n"
             "? \"%s\"\n: long key\n"
             "long_key_map:\n  ? \"%s\"\n  :\n    inner: [1, 2]\n",
             base_yml, longkey, longkey);
    sl_cfg *c = load("rt.yml", y, 0);
    assert_int_equal(sl_cfg_load_string(c, "prod.yml", prod_yml, strlen(prod_yml)), 0);
    char *d1 = dump(c);
    sl_cfg *c2 = load("dump.yml", d1, 0);
    assert_same_tree(sl_cfg_root(c), sl_cfg_root(c2));
    /* quoting decisions are stable: dumping the reloaded tree gives the same text */
    char *d2 = dump(c2);
    assert_string_equal(d1, d2);
    /* values are written quoted, so no string turns into syntax or a null */
    assert_true(at(c2, "plain.1")->quoted);
    assert_string_equal(str_at(c2, "yamlish.4"), "null");
    assert_string_equal(str_at(c2, "yamlish.0"), "- a");
    assert_non_null(strstr(d1, "\n  - \"123\"\n"));
    assert_string_equal(str_at(c2, "dollars"), "$HOME loki.local ${SL_TCFG_HOST}");
    assert_int_equal(at(c2, "nulls.2")->kind, SL_CFG_NULL);
    sl_cfg_free(c), sl_cfg_free(c2);
    free(d1), free(d2);

    c = sl_cfg_new();
    d1 = dump(c);
    assert_string_equal(d1, "{}\n");
    c2 = load("dump.yml", d1, 0);
    assert_int_equal(sl_cfg_root(c2)->n, 0);
    sl_cfg_free(c), sl_cfg_free(c2);
    free(d1);
}

static void test_dump_masks_secrets(void **st)
{
    (void)st;
    setenv("SL_TCFG_PW", "hunter2-from-env", 1);
    sl_cfg *c = load("s.yml",
                     "sinks:\n"
                     "  - name: loki\n"
                     "    password: ${SL_TCFG_PW}\n"
                     "    password_file: /run/secrets/loki\n"
                     "    bearer_token: tok-AAAA\n"
                     "    headers: { Authorization: \"Basic QUJD\", X-Other: visible-1 }\n"
                     "  - name: kafka\n"
                     "    sasl_password: sasl-BBBB\n"
                     "    tls: { client_key: key-CCCC, client_cert: visible-2, key: key-DDDD }\n"
                     "    api_key: key-EEEE\n"
                     "    client_secret: [sec-FFFF, sec-GGGG]\n"
                     "    auth: { user: visible-3, dsn: dsn-HHHH }\n",
                     0);
    /* a key table can mark keys secret that no name pattern would catch */
    const sl_cfg_key auth_keys[] = {{.name = "user", .type = SL_KEY_STR},
                                    {.name = "dsn", .type = SL_KEY_STR, .secret = true}};
    assert_int_equal(sl_cfg_check(c, at(c, "sinks.kafka.auth"), auth_keys, 2), 0);
    char *d = dump(c);
    static const char *const hidden[] = {"hunter2",  "tok-AAAA", "QUJD",     "sasl-BBBB",
                                         "key-CCCC", "key-DDDD", "key-EEEE", "sec-FFFF",
                                         "sec-GGGG", "dsn-HHHH"};
    for (size_t i = 0; i < NKEYS(hidden); i++)
        if (strstr(d, hidden[i])) fail_msg("secret %s printed:\n%s", hidden[i], d);
    static const char *const shown[] = {"visible-1",
                                        "visible-2",
                                        "visible-3",
                                        "/run/secrets/loki",
                                        "password: \"<redacted>\"",
                                        "sasl_password: \"<redacted>\"",
                                        "dsn: \"<redacted>\""};
    for (size_t i = 0; i < NKEYS(shown); i++)
        if (!strstr(d, shown[i])) fail_msg("'%s' missing from:\n%s", shown[i], d);
    /* the dump still loads */
    sl_cfg *c2 = load("dump.yml", d, 0);
    assert_string_equal(str_at(c2, "sinks.loki.password"), "<redacted>");
    sl_cfg_free(c2);
    free(d);
    /* the real values are still there for the code that needs them */
    char *pw = NULL;
    assert_int_equal(sl_cfg_secret(c, at(c, "sinks.kafka"), "sasl_password", &pw), 0);
    assert_string_equal(pw, "sasl-BBBB");
    free(pw);
    sl_cfg_free(c);
}

static void test_secret_from_file(void **st)
{
    (void)st;
    char *dir = sl_t_tmpdir("cfg");
    char *f = sl_t_path(dir, "pw");
    assert_int_equal(sl_t_write_file(f, "s3cret\n", 7), 0);
    char y[8192];
    snprintf(y, sizeof y,
             "a: {password_file: \"%s\"}\nb: {password: inline}\n"
             "c: {password: x, password_file: \"%s\"}\nd: {password_file: \"%s.missing\"}\n"
             "e: {}\n",
             f, f, f);
    sl_cfg *c = load("sec.yml", y, 0);
    char *v = NULL;
    assert_int_equal(sl_cfg_secret(c, at(c, "a"), "password", &v), 0);
    assert_string_equal(v, "s3cret");
    free(v);
    assert_int_equal(sl_cfg_secret(c, at(c, "b"), "password", &v), 0);
    assert_string_equal(v, "inline");
    free(v);
    assert_int_equal(sl_cfg_secret(c, at(c, "e"), "password", &v), 0);
    assert_null(v);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    assert_int_equal(sl_cfg_secret(c, at(c, "c"), "password", &v), -1);
    assert_null(v);
    assert_non_null(strstr(sl_cfg_error_at(c, 0),
                           "sec.yml:3:33: give 'password' or 'password_file', not both"));
    assert_int_equal(sl_cfg_secret(c, at(c, "d"), "password", &v), -1);
    assert_null(v);
    assert_non_null(strstr(sl_cfg_error_at(c, 1), "sec.yml:4:20: cannot read secret file"));
    sl_cfg_free(c);
    sl_t_rmtree(dir);
    free(f), free(dir);
}

static void test_caller_errors(void **st)
{
    (void)st;
    sl_cfg *c = load("e.yml", "a:\n  b: 1\n", 0);
    sl_cfg_error(c, at(c, "a.b"), "custom %s %d", "problem", 7);
    sl_cfg_error(c, NULL, "no position");
    assert_int_equal(sl_cfg_nerrors(c), 2);
    assert_string_equal(sl_cfg_error_at(c, 0), "e.yml:2:6: custom problem 7");
    assert_string_equal(sl_cfg_error_at(c, 1), "no position");
    assert_null(sl_cfg_error_at(c, 2));
    sl_cfg_free(c);
}

/* ---- the declarative reader (sl_cfg_read) ---- */

typedef struct read_target {
    const char *format;
    int64_t batch;
    bool fsync;
    uint64_t max_bytes;
    int64_t wait_ms;
    int mode, unset_mode;
    const sl_cfg_node *labels;
    const char *untouched;
} read_target;

static const sl_cfg_key read_keys[] = {
    {.name = "format",
     .type = SL_KEY_STR,
     .def = "raw",
     .at = SL_CFG_AT(read_target, format),
     .doc = "d"},
    {.name = "batch",
     .type = SL_KEY_INT,
     .def = "100",
     .min = 1,
     .max = 1000,
     .at = SL_CFG_AT(read_target, batch),
     .doc = "d"},
    {.name = "fsync",
     .type = SL_KEY_BOOL,
     .def = "true",
     .at = SL_CFG_AT(read_target, fsync),
     .doc = "d"},
    {.name = "max_bytes",
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 16,
     .max = 64 << 20,
     .at = SL_CFG_AT(read_target, max_bytes),
     .doc = "d"},
    {.name = "wait",
     .type = SL_KEY_DURATION,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .at = SL_CFG_AT(read_target, wait_ms),
     .doc = "d"},
    {.name = "mode",
     .type = SL_KEY_ENUM,
     .choices = "split|truncate",
     .def = "truncate",
     .at = SL_CFG_AT(read_target, mode),
     .doc = "d"},
    {.name = "unset_mode",
     .type = SL_KEY_ENUM,
     .choices = "a|b",
     .at = SL_CFG_AT(read_target, unset_mode),
     .doc = "d"},
    {.name = "labels", .type = SL_KEY_MAP, .at = SL_CFG_AT(read_target, labels), .doc = "d"},
    /* Checked, read by the caller. */
    {.name = "other", .type = SL_KEY_STR, .doc = "d"},
};

static void test_read_defaults_and_values(void **st)
{
    (void)st;
    sl_cfg *c = load("r.yml", "s: {}\n", 0);
    read_target r = {.untouched = "x"};
    assert_int_equal(sl_cfg_read(c, at(c, "s"), read_keys, NKEYS(read_keys), &r), 0);
    assert_string_equal(r.format, "raw");
    assert_int_equal(r.batch, 100);
    assert_true(r.fsync);
    assert_int_equal(r.max_bytes, 1 << 20);
    assert_int_equal(r.wait_ms, 1000);
    assert_int_equal(r.mode, 1);
    assert_int_equal(r.unset_mode, -1);
    assert_null(r.labels);
    assert_string_equal(r.untouched, "x");
    sl_cfg_free(c);

    /* Null values are absent: the defaults apply, and nothing is out of range. */
    c = load("r.yml", "s: {batch: ~, wait: ~, max_bytes: ~, mode: ~, format: ~}\n", 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(sl_cfg_read(c, at(c, "s"), read_keys, NKEYS(read_keys), &r), 0);
    assert_int_equal(r.batch, 100);
    assert_int_equal(r.wait_ms, 1000);
    assert_int_equal(r.max_bytes, 1 << 20);
    assert_int_equal(r.mode, 1);
    assert_string_equal(r.format, "raw");
    sl_cfg_free(c);

    /* A missing map (`step:` with nothing after it) reads as all defaults. */
    c = load("r.yml", "s:\n", 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(sl_cfg_read(c, at(c, "s"), read_keys, NKEYS(read_keys), &r), 0);
    assert_int_equal(r.batch, 100);
    sl_cfg_free(c);

    c = load("r.yml",
             "s: {format: json, batch: 1000, fsync: off, max_bytes: 16, wait: 250ms, mode: split,\n"
             "    unset_mode: b, labels: {a: b}, other: o}\n",
             0);
    assert_int_equal(sl_cfg_read(c, at(c, "s"), read_keys, NKEYS(read_keys), &r), 0);
    assert_string_equal(r.format, "json");
    assert_int_equal(r.batch, 1000);
    assert_false(r.fsync);
    assert_int_equal(r.max_bytes, 16);
    assert_int_equal(r.wait_ms, 250);
    assert_int_equal(r.mode, 0);
    assert_int_equal(r.unset_mode, 1);
    assert_non_null(r.labels);
    assert_int_equal(r.labels->kind, SL_CFG_MAP);
    assert_int_equal(sl_cfg_nerrors(c), 0);
    sl_cfg_free(c);
}

/* A value out of the table's range: one error (the check and the read say
 * the same thing), naming the range; the default stays. */
static void test_read_ranges(void **st)
{
    (void)st;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"s: {batch: 0}\n", "r.yml:1:12: 'batch' must be an integer from 1 to 1000, got '0'"},
        {"s: {max_bytes: 128MiB}\n",
         "r.yml:1:16: 'max_bytes' must be from 16 to 64MiB, got '128MiB'"},
        {"s: {wait: 2m}\n", "r.yml:1:11: 'wait' must be from 10ms to 1m, got '2m'"},
        {"s: {mode: spilt}\n",
         "r.yml:1:11: 'mode' must be one of split|truncate, got 'spilt'; did you mean 'split'?"},
        {"s: {fromat: json}\n", "r.yml:1:5: unknown key 'fromat'; did you mean 'format'?"},
    };
    for (size_t i = 0; i < NKEYS(cases); i++) {
        sl_cfg *c = load("r.yml", cases[i].yaml, 0);
        read_target r;
        assert_int_equal(sl_cfg_read(c, at(c, "s"), read_keys, NKEYS(read_keys), &r), 1);
        assert_one_error(c, cases[i].want);
        assert_int_equal(r.batch, 100);
        assert_int_equal(r.max_bytes, 1 << 20);
        assert_int_equal(r.wait_ms, 1000);
        assert_int_equal(r.mode, 1);
        sl_cfg_free(c);
    }
}

/* A table's default must parse as its type and lie in its range; the reader
 * says so (once, at the map) instead of reading garbage. */
static void test_read_bad_table_defaults(void **st)
{
    (void)st;
    static const sl_cfg_key bad[] = {
        {.name = "a", .type = SL_KEY_SIZE, .def = "1M", .doc = "d"},
        {.name = "b", .type = SL_KEY_INT, .def = "5", .min = 10, .max = 20, .doc = "d"},
        {.name = "c", .type = SL_KEY_ENUM, .choices = "x|y", .def = "z", .doc = "d"},
        {.name = "d", .type = SL_KEY_DURATION, .def = "5", .doc = "d"},
        {.name = "e", .type = SL_KEY_LIST, .def = "[a]", .doc = "d"},
    };
    const char *want[] = {
        "key 'a': default '1M' is not a valid size",
        "key 'b': default '5' is not a valid integer from 10 to 20",
        "key 'c': default 'z' is not a valid x|y",
        "key 'd': default '5' is not a valid duration",
        "key 'e': default '[a]' is not a valid list",
    };
    for (size_t i = 0; i < NKEYS(bad); i++) {
        union {
            int64_t i;
            void *p;
        } v;
        sl_err err;
        assert_int_equal(sl_cfg_key_default(&bad[i], &v, &err), SL_EINVAL);
        assert_string_equal(err.msg, want[i]);
    }
    static const sl_cfg_key one[] = {
        {.name = "a", .type = SL_KEY_SIZE, .def = "1M", .at = 1, .doc = "d"},
    };
    sl_cfg *c = load("r.yml", "s: {}\n", 0);
    uint64_t out = 7;
    assert_int_equal(sl_cfg_read(c, at(c, "s"), one, 1, &out), 1);
    assert_one_error(c, "r.yml:1:4: internal: key 'a': default '1M' is not a valid size");
    sl_cfg_free(c);

    char range[64];
    sl_cfg_key_range(&read_keys[3], range, sizeof range);
    assert_string_equal(range, "16 to 64MiB");
    sl_cfg_key_range(&read_keys[4], range, sizeof range);
    assert_string_equal(range, "10ms to 1m");
    sl_cfg_key_range(&read_keys[0], range, sizeof range);
    assert_string_equal(range, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlay_two_files),
        cmocka_unit_test(test_overlay_three_files_and_null),
        cmocka_unit_test(test_overlay_empty_and_files),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_errors_have_exact_positions),
        cmocka_unit_test(test_broken_yaml_positions),
        cmocka_unit_test(test_check_valid),
        cmocka_unit_test(test_check_unknown_key_suggests),
        cmocka_unit_test(test_check_wrong_types),
        cmocka_unit_test(test_check_missing_required),
        cmocka_unit_test(test_check_bad_enum),
        cmocka_unit_test(test_check_error_cap),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_size_table),
        cmocka_unit_test(test_duration_table),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_big_maps_stay_fast),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_masks_secrets),
        cmocka_unit_test(test_secret_from_file),
        cmocka_unit_test(test_caller_errors),
        cmocka_unit_test(test_size_errors_once_with_one_range),
        cmocka_unit_test(test_deferred_unset_vars),
        cmocka_unit_test(test_read_defaults_and_values),
        cmocka_unit_test(test_read_ranges),
        cmocka_unit_test(test_read_bad_table_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
