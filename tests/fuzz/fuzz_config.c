/* Fuzz target for the config loader: any bytes are loaded as YAML, checked
 * against small key tables, read through every typed getter and dumped.
 * Properties checked (abort on violation, so the fuzzer reports them):
 *   - every error message carries a "fuzz.yml:line:col: " position;
 *   - a successful load dumps to YAML that loads again, to the same tree
 *     (values under secret keys excepted: they read "<redacted>"; URLs lose
 *     their credentials, core/redact.h), and
 *     dumping that tree gives the same text again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/redact.h"

#define NKEYS(t) (sizeof(t) / sizeof *(t))

static const sl_cfg_key top_keys[] = {
    {.name = "data_dir", .type = SL_KEY_STR, .required = true},
    {.name = "metrics", .type = SL_KEY_MAP},
    {.name = "log", .type = SL_KEY_MAP},
    {.name = "inputs", .type = SL_KEY_SEQ},
    {.name = "sinks", .type = SL_KEY_SEQ},
    {.name = "shutdown_timeout", .type = SL_KEY_DURATION},
};

static const sl_cfg_key item_keys[] = {
    {.name = "name", .type = SL_KEY_STR, .required = true},
    {.name = "type", .type = SL_KEY_ENUM, .choices = "file|journald|loki|kafka|stdout"},
    {.name = "paths", .type = SL_KEY_LIST},
    {.name = "max_line_bytes", .type = SL_KEY_SIZE},
    {.name = "idle_timeout", .type = SL_KEY_DURATION},
    {.name = "max_open_files", .type = SL_KEY_INT},
    {.name = "follow", .type = SL_KEY_BOOL},
    {.name = "labels", .type = SL_KEY_MAP},
    {.name = "parse", .type = SL_KEY_SEQ},
    {.name = "dsn", .type = SL_KEY_STR, .secret = true},
    {.name = "extra", .type = SL_KEY_ANY},
};

/* The same keys read declaratively (sl_cfg_read), with defaults and
 * ranges from the table. */
typedef struct item {
    const char *name;
    int type;
    const sl_cfg_node *paths, *labels;
    uint64_t max_line_bytes;
    int64_t idle_ms, max_open_files;
    bool follow;
} item;

static const sl_cfg_key read_keys[] = {
    {.name = "name", .type = SL_KEY_STR, .required = true, .at = SL_CFG_AT(item, name)},
    {.name = "type",
     .type = SL_KEY_ENUM,
     .choices = "file|journald|loki|kafka|stdout",
     .def = "file",
     .at = SL_CFG_AT(item, type)},
    {.name = "paths", .type = SL_KEY_LIST, .at = SL_CFG_AT(item, paths)},
    {.name = "max_line_bytes",
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 16,
     .max = 64 << 20,
     .at = SL_CFG_AT(item, max_line_bytes)},
    {.name = "idle_timeout",
     .type = SL_KEY_DURATION,
     .def = "5s",
     .min = 1,
     .max = 3600000,
     .at = SL_CFG_AT(item, idle_ms)},
    {.name = "max_open_files",
     .type = SL_KEY_INT,
     .def = "1024",
     .min = 1,
     .max = 1 << 20,
     .at = SL_CFG_AT(item, max_open_files)},
    {.name = "follow", .type = SL_KEY_BOOL, .def = "true", .at = SL_CFG_AT(item, follow)},
    {.name = "labels", .type = SL_KEY_MAP, .at = SL_CFG_AT(item, labels)},
    {.name = "parse", .type = SL_KEY_SEQ},
    {.name = "dsn", .type = SL_KEY_STR, .secret = true},
    {.name = "extra", .type = SL_KEY_ANY},
};

static void read_declared(sl_cfg *c, const sl_cfg_node *m)
{
    item it;
    memset(&it, 0xa5, sizeof it);
    sl_cfg_read(c, m, read_keys, NKEYS(read_keys), &it);
    /* Whatever the input, every value is the given one or the default, in
     * range. */
    if (it.type < 0 || it.type > 4 || it.max_line_bytes < 16 || it.max_line_bytes > (64 << 20) ||
        it.idle_ms < 1 || it.idle_ms > 3600000 || it.max_open_files < 1 ||
        it.max_open_files > (1 << 20)) {
        fprintf(stderr, "sl_cfg_read left a value outside the table's range\n");
        abort();
    }
}

static FILE *devnull;

static void check_positions(const sl_cfg *c)
{
    for (size_t i = 0; i < sl_cfg_nerrors(c); i++) {
        int line = 0, col = 0, end = 0;
        const char *e = sl_cfg_error_at(c, i);
        /* before a successful load, the root is an empty map of its own */
        const char *p = strncmp(e, "fuzz.yml:", 9) == 0              ? e + 9
                        : strncmp(e, "<no configuration>:", 19) == 0 ? e + 19
                                                                     : "";
        if (sscanf(p, "%d:%d: %n", &line, &col, &end) != 2 || end == 0 || line < 1 || col < 1) {
            fprintf(stderr, "error without a position: %s\n", e);
            abort();
        }
    }
}

static void getters(sl_cfg *c, const sl_cfg_node *m)
{
    const char *s, *list[8];
    int64_t i;
    uint64_t u;
    bool b;
    int e;
    size_t n;
    char *secret = NULL;
    sl_cfg_str(c, m, "name", NULL, &s);
    sl_cfg_enum(c, m, "type", "file|journald|loki|kafka|stdout", 0, &e);
    sl_cfg_list(c, m, "paths", list, 8, &n);
    sl_cfg_size(c, m, "max_line_bytes", 0, &u);
    sl_cfg_duration_ms(c, m, "idle_timeout", 0, &i);
    sl_cfg_int(c, m, "max_open_files", 0, 1, 1000, &i);
    sl_cfg_bool(c, m, "follow", false, &b);
    /* only the inline form: the fuzzer must not read files by name */
    if (!sl_cfg_get(m, "dsn_file")) sl_cfg_secret(c, m, "dsn", &secret);
    free(secret);
}

static void walk_scalars(const sl_cfg_node *n)
{
    if (n->kind == SL_CFG_SCALAR) {
        uint64_t u;
        int64_t i;
        sl_parse_size(n->scalar, &u);
        sl_parse_duration_ms(n->scalar, &i);
        return;
    }
    for (size_t k = 0; k < n->n; k++) walk_scalars(n->items[k]);
}

static void same_tree(const sl_cfg_node *a, const sl_cfg_node *b)
{
    if (b->kind == SL_CFG_SCALAR && strcmp(b->scalar, "<redacted>") == 0) return;
    bool same = a->kind == b->kind;
    if (same && a->kind == SL_CFG_SCALAR && sl_redact_wanted(a->scalar, a->scalar_len)) {
        /* URLs are dumped without their credentials */
        size_t cap = a->scalar_len * 4 + 64;
        char *r = malloc(cap);
        size_t rn = sl_redact_text(r, cap, a->scalar, a->scalar_len);
        same = rn == b->scalar_len && memcmp(r, b->scalar, rn) == 0;
        free(r);
    } else if (same && a->kind == SL_CFG_SCALAR) {
        same = a->scalar_len == b->scalar_len && memcmp(a->scalar, b->scalar, a->scalar_len) == 0;
    }
    if (same && (a->kind == SL_CFG_MAP || a->kind == SL_CFG_SEQ)) same = a->n == b->n;
    if (!same) {
        fprintf(stderr, "round trip changed the node at %d:%d\n", a->line, a->col);
        abort();
    }
    for (size_t k = 0; a->kind != SL_CFG_SCALAR && k < a->n; k++) {
        if (a->kind == SL_CFG_MAP && strcmp(a->keys[k], b->keys[k]) != 0) {
            fprintf(stderr, "round trip changed key '%s' into '%s'\n", a->keys[k], b->keys[k]);
            abort();
        }
        same_tree(a->items[k], b->items[k]);
    }
}

static char *dump_to_string(const sl_cfg *c, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (!f) return NULL;
    sl_cfg_dump(c, f);
    fclose(f);
    return out;
}

static void round_trip(const sl_cfg *c)
{
    size_t n1, n2;
    char *d1 = dump_to_string(c, &n1);
    if (!d1) return;
    sl_cfg *c2 = sl_cfg_new();
    if (!c2) {
        free(d1);
        return;
    }
    if (sl_cfg_load_string(c2, "fuzz.yml", d1, n1) != 0) {
        fprintf(stderr, "dump does not load again: %s\n--- dump:\n%s\n", sl_cfg_error_at(c2, 0),
                d1);
        abort();
    }
    same_tree(sl_cfg_root(c), sl_cfg_root(c2));
    char *d2 = dump_to_string(c2, &n2);
    if (d2 && (n1 != n2 || memcmp(d1, d2, n1) != 0)) {
        fprintf(stderr, "dump is not stable:\n%s\n--- then:\n%s\n", d1, d2);
        abort();
    }
    free(d2);
    free(d1);
    sl_cfg_free(c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        /* a value that needs every kind of escaping when dumped */
        setenv("SLUICE_FUZZ_ENV",
               "a\xc2\x85"
               "b\"c\\d$e\n\t\x01 \xe2\x80\xa8#: - {x}",
               0);
    }
    sl_cfg *c = sl_cfg_new();
    if (!c) return 0;
    int rc = sl_cfg_load_string(c, "fuzz.yml", (const char *)data, size);
    check_positions(c);
    if (rc == 0) round_trip(c);
    const sl_cfg_node *root = sl_cfg_root(c);
    sl_cfg_check(c, root, top_keys, NKEYS(top_keys));
    static const char *const seqs[] = {"inputs", "sinks"};
    for (size_t s = 0; s < 2; s++) {
        const sl_cfg_node *seq = sl_cfg_get(root, seqs[s]);
        for (size_t i = 0; seq && seq->kind == SL_CFG_SEQ && i < seq->n; i++) {
            sl_cfg_check(c, seq->items[i], item_keys, NKEYS(item_keys));
            getters(c, seq->items[i]);
            read_declared(c, seq->items[i]);
        }
    }
    walk_scalars(root);
    check_positions(c);
    if (devnull) sl_cfg_dump(c, devnull);
    sl_cfg_free(c);
    return 0;
}
