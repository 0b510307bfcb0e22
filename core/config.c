#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/fsutil.h"

/* Bounds that keep a hostile or broken file from eating the agent. */
#define CFG_MAX_FILE_BYTES (16u << 20)
#define CFG_MAX_DEPTH      64
#define CFG_MAX_NODES      1000000
#define CFG_MAX_ERRORS     1000
#define CFG_MAX_SCALAR     (1u << 20)

typedef struct pool_item {
    struct pool_item *next;
    _Alignas(16) char data[];
} pool_item;

struct sl_cfg {
    pool_item *pool; /* every allocation of the tree, freed together */
    sl_cfg_node *root;
    char **errors;
    size_t nerrors, cap_errors;
    size_t nodes;
};

/* Mutable view of a node while it is being built. */
typedef struct mnode {
    sl_cfg_node pub;
    size_t cap;
} mnode;

static void *palloc(sl_cfg *c, size_t n)
{
    pool_item *p = malloc(sizeof *p + n);
    if (!p) return NULL;
    p->next = c->pool;
    c->pool = p;
    memset(p->data, 0, n);
    return p->data;
}

static char *pdup(sl_cfg *c, const char *s, size_t n)
{
    char *d = palloc(c, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void add_error(sl_cfg *c, const char *file, int line, int col, const char *fmt, va_list ap)
{
    if (c->nerrors >= CFG_MAX_ERRORS) return;
    if (c->nerrors == c->cap_errors) {
        size_t cap = c->cap_errors ? c->cap_errors * 2 : 16;
        char **e = realloc(c->errors, cap * sizeof *e);
        if (!e) return;
        c->errors = e;
        c->cap_errors = cap;
    }
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char full[1400];
    if (file)
        snprintf(full, sizeof full, "%s:%d:%d: %s", file, line, col, msg);
    else
        snprintf(full, sizeof full, "%s", msg);
    char *dup = strdup(full);
    if (dup) c->errors[c->nerrors++] = dup;
}

void sl_cfg_error(sl_cfg *c, const sl_cfg_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, at ? at->file : NULL, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

static void error_at(sl_cfg *c, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void error_at(sl_cfg *c, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, file, line, col, fmt, ap);
    va_end(ap);
}

size_t sl_cfg_nerrors(const sl_cfg *c)
{
    return c->nerrors;
}

const char *sl_cfg_error_at(const sl_cfg *c, size_t i)
{
    return i < c->nerrors ? c->errors[i] : NULL;
}

static mnode *new_node(sl_cfg *c, sl_cfg_kind kind, const char *file, int line, int col)
{
    if (c->nodes >= CFG_MAX_NODES) return NULL;
    mnode *n = palloc(c, sizeof *n);
    if (!n) return NULL;
    c->nodes++;
    n->pub.kind = kind;
    n->pub.file = file;
    n->pub.line = line;
    n->pub.col = col;
    return n;
}

static int grow(sl_cfg *c, mnode *n)
{
    if (n->pub.n < n->cap) return 0;
    size_t cap = n->cap ? n->cap * 2 : 8;
    const char **keys = palloc(c, cap * sizeof *keys);
    const sl_cfg_node **key_nodes = palloc(c, cap * sizeof *key_nodes);
    const sl_cfg_node **items = palloc(c, cap * sizeof *items);
    if (!keys || !key_nodes || !items) return -1;
    if (n->pub.n) {
        if (n->pub.keys) memcpy(keys, n->pub.keys, n->pub.n * sizeof *keys);
        if (n->pub.key_nodes) memcpy(key_nodes, n->pub.key_nodes, n->pub.n * sizeof *key_nodes);
        memcpy(items, n->pub.items, n->pub.n * sizeof *items);
    }
    n->pub.keys = keys;
    n->pub.key_nodes = key_nodes;
    n->pub.items = items;
    n->cap = cap;
    return 0;
}

sl_cfg *sl_cfg_new(void)
{
    sl_cfg *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    mnode *root = new_node(c, SL_CFG_MAP, "<empty>", 0, 0);
    if (!root) {
        free(c);
        return NULL;
    }
    c->root = &root->pub;
    return c;
}

void sl_cfg_free(sl_cfg *c)
{
    if (!c) return;
    while (c->pool) {
        pool_item *next = c->pool->next;
        free(c->pool);
        c->pool = next;
    }
    for (size_t i = 0; i < c->nerrors; i++) free(c->errors[i]);
    free(c->errors);
    free(c);
}

const sl_cfg_node *sl_cfg_root(const sl_cfg *c)
{
    return c->root;
}

/* ${VAR}, ${VAR:-default} and $$. Unset without default is an error. */
static char *expand(sl_cfg *c, const char *s, size_t n, const char *file, int line, int col,
                    size_t *out_len)
{
    if (!memchr(s, '$', n)) {
        *out_len = n;
        return pdup(c, s, n);
    }
    size_t cap = n + 256, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (size_t i = 0; i < n;) {
        const char *add = NULL;
        size_t add_n = 0;
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '$') {
            add = "$", add_n = 1, i += 2;
        } else if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', n - i - 2);
            if (!end) {
                error_at(c, file, line, col, "unterminated ${ in value");
                free(buf);
                return NULL;
            }
            char name[256];
            size_t inner = (size_t)(end - (s + i + 2));
            const char *dflt = NULL;
            size_t dflt_n = 0, name_n = inner;
            const char *sep = NULL;
            for (size_t k = 0; k + 1 < inner; k++)
                if (s[i + 2 + k] == ':' && s[i + 3 + k] == '-') {
                    sep = s + i + 2 + k;
                    break;
                }
            if (sep) {
                name_n = (size_t)(sep - (s + i + 2));
                dflt = sep + 2;
                dflt_n = (size_t)(end - dflt);
            }
            bool valid = name_n > 0 && name_n < sizeof name;
            for (size_t k = 0; valid && k < name_n; k++) {
                char ch = s[i + 2 + k];
                valid = isalnum((unsigned char)ch) || ch == '_';
            }
            if (!valid) {
                error_at(c, file, line, col, "bad variable reference '%.*s'",
                         (int)(end - (s + i) + 1), s + i);
                free(buf);
                return NULL;
            }
            memcpy(name, s + i + 2, name_n);
            name[name_n] = '\0';
            const char *v = getenv(name);
            if (v && (*v || !dflt)) {
                add = v, add_n = strlen(v);
            } else if (dflt) {
                add = dflt, add_n = dflt_n;
            } else {
                error_at(c, file, line, col,
                         "environment variable '%s' is not set (use ${%s:-default} for a default)",
                         name, name);
                free(buf);
                return NULL;
            }
            i = (size_t)(end - s) + 1;
        } else {
            add = s + i, add_n = 1, i++;
        }
        if (len + add_n + 1 > cap) {
            if (len + add_n > CFG_MAX_SCALAR) {
                error_at(c, file, line, col, "value longer than %u bytes after expansion",
                         CFG_MAX_SCALAR);
                free(buf);
                return NULL;
            }
            cap = (len + add_n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, add, add_n);
        len += add_n;
    }
    char *r = pdup(c, buf, len);
    free(buf);
    *out_len = len;
    return r;
}

typedef struct loader {
    sl_cfg *c;
    yaml_parser_t parser;
    const char *file;
    int errors;
} loader;

static void yaml_fail(loader *L)
{
    yaml_parser_t *p = &L->parser;
    const char *what = p->problem ? p->problem : "invalid YAML";
    error_at(L->c, L->file, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
             "YAML syntax error: %s%s%s", what, p->context ? " " : "",
             p->context ? p->context : "");
    L->errors++;
}

static sl_cfg_node *parse_node(loader *L, yaml_event_t *ev, int depth);

/* Reads events until the end of the collection started by *start. */
static sl_cfg_node *parse_collection(loader *L, yaml_event_t *start, int depth)
{
    bool is_map = start->type == YAML_MAPPING_START_EVENT;
    int line = (int)start->start_mark.line + 1, col = (int)start->start_mark.column + 1;
    if (depth > CFG_MAX_DEPTH) {
        error_at(L->c, L->file, line, col, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        L->errors++;
        return NULL;
    }
    mnode *n = new_node(L->c, is_map ? SL_CFG_MAP : SL_CFG_SEQ, L->file, line, col);
    if (!n) {
        error_at(L->c, L->file, line, col, "configuration too large (more than %d nodes)",
                 CFG_MAX_NODES);
        L->errors++;
        return NULL;
    }
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&L->parser, &ev)) {
            yaml_fail(L);
            return NULL;
        }
        if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return &n->pub;
        }
        const sl_cfg_node *key = NULL;
        if (is_map) {
            if (ev.type != YAML_SCALAR_EVENT) {
                error_at(L->c, L->file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "map keys must be plain strings");
                L->errors++;
                yaml_event_delete(&ev);
                return NULL;
            }
            key = parse_node(L, &ev, depth + 1);
            yaml_event_delete(&ev);
            if (!key) return NULL;
            for (size_t i = 0; i < n->pub.n; i++)
                if (strcmp(n->pub.keys[i], key->scalar ? key->scalar : "") == 0) {
                    sl_cfg_error(L->c, key, "duplicate key '%s' (first at line %d)", n->pub.keys[i],
                                 n->pub.key_nodes[i]->line);
                    L->errors++;
                }
            if (!yaml_parser_parse(&L->parser, &ev)) {
                yaml_fail(L);
                return NULL;
            }
        }
        const sl_cfg_node *val = parse_node(L, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!val) return NULL;
        if (grow(L->c, n) != 0) return NULL;
        if (is_map) {
            n->pub.keys[n->pub.n] = key->scalar ? key->scalar : "";
            n->pub.key_nodes[n->pub.n] = key;
        }
        n->pub.items[n->pub.n++] = val;
    }
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && v[0] == '~') || (n == 4 && strncasecmp(v, "null", 4) == 0);
}

static sl_cfg_node *parse_node(loader *L, yaml_event_t *ev, int depth)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        if (ev->data.scalar.anchor) goto anchors;
        if (ev->data.scalar.length > CFG_MAX_SCALAR) {
            error_at(L->c, L->file, line, col, "value longer than %u bytes", CFG_MAX_SCALAR);
            L->errors++;
            return NULL;
        }
        bool null = is_null_scalar(ev);
        mnode *n = new_node(L->c, null ? SL_CFG_NULL : SL_CFG_SCALAR, L->file, line, col);
        if (!n) return NULL;
        size_t len = 0;
        char *v = expand(L->c, (const char *)ev->data.scalar.value, ev->data.scalar.length, L->file,
                         line, col, &len);
        if (!v) {
            L->errors++;
            v = pdup(L->c, "", 0);
            if (!v) return NULL;
        }
        n->pub.scalar = v;
        n->pub.scalar_len = len;
        n->pub.quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return &n->pub;
    }
    case YAML_MAPPING_START_EVENT:
        if (ev->data.mapping_start.anchor) goto anchors;
        return parse_collection(L, ev, depth);
    case YAML_SEQUENCE_START_EVENT:
        if (ev->data.sequence_start.anchor) goto anchors;
        return parse_collection(L, ev, depth);
    case YAML_ALIAS_EVENT:
        goto anchors;
    default:
        error_at(L->c, L->file, line, col, "unexpected YAML event");
        L->errors++;
        return NULL;
    }
anchors:
    /* Aliases let a small file expand without bound; configs don't need them. */
    error_at(L->c, L->file, line, col, "YAML anchors and aliases are not supported");
    L->errors++;
    return NULL;
}

static bool named_items(const sl_cfg_node *seq)
{
    if (seq->kind != SL_CFG_SEQ || seq->n == 0) return false;
    for (size_t i = 0; i < seq->n; i++) {
        const sl_cfg_node *it = seq->items[i];
        if (it->kind != SL_CFG_MAP) return false;
        bool has = false;
        for (size_t k = 0; k < it->n; k++)
            if (strcmp(it->keys[k], "name") == 0 && it->items[k]->kind == SL_CFG_SCALAR) has = true;
        if (!has) return false;
    }
    return true;
}

static const char *name_of(const sl_cfg_node *map)
{
    for (size_t k = 0; k < map->n; k++)
        if (strcmp(map->keys[k], "name") == 0) return map->items[k]->scalar;
    return "";
}

/* Overlays src on dst and returns the result (dst updated in place when
 * both are maps or named sequences). */
static const sl_cfg_node *merge(sl_cfg *c, const sl_cfg_node *dst, const sl_cfg_node *src)
{
    if (dst->kind == SL_CFG_MAP && src->kind == SL_CFG_MAP) {
        mnode *d = (mnode *)dst;
        for (size_t i = 0; i < src->n; i++) {
            size_t k;
            for (k = 0; k < d->pub.n; k++)
                if (strcmp(d->pub.keys[k], src->keys[i]) == 0) break;
            if (k < d->pub.n) {
                d->pub.items[k] = merge(c, d->pub.items[k], src->items[i]);
            } else {
                if (grow(c, d) != 0) return dst;
                d->pub.keys[d->pub.n] = src->keys[i];
                d->pub.key_nodes[d->pub.n] = src->key_nodes[i];
                d->pub.items[d->pub.n++] = src->items[i];
            }
        }
        return dst;
    }
    if (named_items(dst) && named_items(src)) {
        mnode *d = (mnode *)dst;
        for (size_t i = 0; i < src->n; i++) {
            size_t k;
            for (k = 0; k < d->pub.n; k++)
                if (strcmp(name_of(d->pub.items[k]), name_of(src->items[i])) == 0) break;
            if (k < d->pub.n) {
                d->pub.items[k] = merge(c, d->pub.items[k], src->items[i]);
            } else {
                if (grow(c, d) != 0) return dst;
                d->pub.items[d->pub.n++] = src->items[i];
            }
        }
        return dst;
    }
    return src;
}

int sl_cfg_load_string(sl_cfg *c, const char *name, const char *text, size_t len)
{
    loader L = {.c = c, .file = pdup(c, name, strlen(name))};
    if (!L.file) return 1;
    if (len > CFG_MAX_FILE_BYTES) {
        error_at(c, L.file, 1, 1, "file larger than %u bytes", CFG_MAX_FILE_BYTES);
        return 1;
    }
    yaml_parser_initialize(&L.parser);
    yaml_parser_set_input_string(&L.parser, (const unsigned char *)text, len);
    const sl_cfg_node *doc = NULL;
    int docs = 0;
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&L.parser, &ev)) {
            yaml_fail(&L);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                error_at(c, L.file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         "only one YAML document per file");
                L.errors++;
                done = true;
            }
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
            doc = parse_node(&L, &ev, 0);
            if (!doc) done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&L.parser);
    if (L.errors) return L.errors;
    if (!doc || doc->kind == SL_CFG_NULL) return 0; /* an empty file changes nothing */
    if (doc->kind != SL_CFG_MAP) {
        sl_cfg_error(c, doc, "the configuration must be a map of keys");
        return 1;
    }
    c->root = (sl_cfg_node *)merge(c, c->root, doc);
    return 0;
}

int sl_cfg_load_file(sl_cfg *c, const char *path)
{
    char *text;
    size_t len;
    sl_err err;
    if (sl_read_file(path, CFG_MAX_FILE_BYTES, &text, &len, &err) != SL_OK) {
        error_at(c, path, 1, 1, "cannot read configuration: %s", err.msg);
        return 1;
    }
    int rc = sl_cfg_load_string(c, path, text, len);
    free(text);
    return rc;
}

const sl_cfg_node *sl_cfg_get(const sl_cfg_node *map, const char *key)
{
    if (!map || map->kind != SL_CFG_MAP) return NULL;
    for (size_t i = map->n; i-- > 0;)
        if (strcmp(map->keys[i], key) == 0) return map->items[i];
    return NULL;
}

/* Parsing of typed scalars. */

int sl_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024},
        {"kb", 1000},
        {"kib", 1024},
        {"m", 1u << 20},
        {"mb", 1000000},
        {"mib", 1u << 20},
        {"g", 1u << 30},
        {"gb", 1000000000},
        {"gib", 1u << 30},
        {"t", 1ULL << 40},
        {"tb", 1000000000000ULL},
        {"tib", 1ULL << 40},
    };
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || v < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    char unit[8];
    size_t n = strlen(end);
    if (n >= sizeof unit) return -1;
    for (size_t i = 0; i <= n; i++) unit[i] = (char)tolower((unsigned char)end[i]);
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (strcmp(unit, units[i].unit) != 0) continue;
        double bytes = v * (double)units[i].mul;
        if (bytes >= 18446744073709551615.0) return -1;
        *out = (uint64_t)bytes;
        return 0;
    }
    return -1;
}

int sl_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"us", 0.001}, {"ms", 1},      {"s", 1000},
                 {"m", 60000},  {"h", 3600000}, {"d", 86400000}};
    while (isspace((unsigned char)*s)) s++;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    double total = 0;
    bool any = false;
    while (*s) {
        if (!isdigit((unsigned char)*s)) return -1;
        errno = 0;
        char *end;
        double v = strtod(s, &end);
        if (errno || v < 0) return -1;
        size_t ulen = 0;
        while (isalpha((unsigned char)end[ulen])) ulen++;
        bool found = false;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++)
            if (strlen(units[i].unit) == ulen && strncmp(end, units[i].unit, ulen) == 0) {
                total += v * units[i].ms;
                found = true;
            }
        if (!found) return -1;
        s = end + ulen;
        any = true;
    }
    if (!any || total > 9.2e15) return -1;
    int64_t ms = (int64_t)total;
    if (total > 0 && ms == 0) ms = 1; /* sub-millisecond rounds up, never to "off" */
    *out = ms;
    return 0;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, true;
        if (strcasecmp(s, no[i]) == 0) return *out = false, true;
    }
    return false;
}

static bool parse_int(const char *s, int64_t *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static int choice_index(const char *choices, const char *v)
{
    int idx = 0;
    size_t vn = strlen(v);
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vn && strncmp(p, v, n) == 0) return idx;
        if (!bar) return -1;
        p = bar + 1;
    }
}

static const char *kind_name(sl_cfg_kind k)
{
    switch (k) {
    case SL_CFG_NULL:
        return "nothing";
    case SL_CFG_SCALAR:
        return "a value";
    case SL_CFG_MAP:
        return "a map";
    case SL_CFG_SEQ:
        return "a list";
    }
    return "?";
}

static bool need_scalar(sl_cfg *c, const sl_cfg_node *n, const char *key)
{
    if (n->kind == SL_CFG_SCALAR) return true;
    sl_cfg_error(c, n, "'%s' must be a single value, not %s", key, kind_name(n->kind));
    return false;
}

int sl_cfg_str(sl_cfg *c, const sl_cfg_node *map, const char *key, const char *def,
               const char **out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    if (!need_scalar(c, n, key)) return -1;
    *out = n->scalar;
    return 0;
}

int sl_cfg_int(sl_cfg *c, const sl_cfg_node *map, const char *key, int64_t def, int64_t min,
               int64_t max, int64_t *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    int64_t v;
    if (!need_scalar(c, n, key)) return -1;
    if (!parse_int(n->scalar, &v) || v < min || v > max) {
        sl_cfg_error(c, n, "'%s' must be an integer from %lld to %lld, got '%s'", key,
                     (long long)min, (long long)max, n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_bool(sl_cfg *c, const sl_cfg_node *map, const char *key, bool def, bool *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    bool v;
    if (!need_scalar(c, n, key)) return -1;
    if (!parse_bool(n->scalar, &v)) {
        sl_cfg_error(c, n, "'%s' must be true or false, got '%s'", key, n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_size(sl_cfg *c, const sl_cfg_node *map, const char *key, uint64_t def, uint64_t *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    uint64_t v;
    if (!need_scalar(c, n, key)) return -1;
    if (sl_parse_size(n->scalar, &v) != 0) {
        sl_cfg_error(c, n, "'%s' must be a size like 64MiB, 512kB or 1GiB, got '%s'", key,
                     n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_duration_ms(sl_cfg *c, const sl_cfg_node *map, const char *key, int64_t def,
                       int64_t *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    int64_t v;
    if (!need_scalar(c, n, key)) return -1;
    if (sl_parse_duration_ms(n->scalar, &v) != 0) {
        sl_cfg_error(c, n, "'%s' must be a duration like 500ms, 5s, 2m or 1h30m, got '%s'", key,
                     n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_enum(sl_cfg *c, const sl_cfg_node *map, const char *key, const char *choices, int def,
                int *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    if (!need_scalar(c, n, key)) return -1;
    int idx = choice_index(choices, n->scalar);
    if (idx < 0) {
        sl_cfg_error(c, n, "'%s' must be one of %s, got '%s'", key, choices, n->scalar);
        return -1;
    }
    *out = idx;
    return 0;
}

int sl_cfg_list(sl_cfg *c, const sl_cfg_node *map, const char *key, const char **out, size_t cap,
                size_t *count)
{
    *count = 0;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    if (n->kind == SL_CFG_SCALAR) {
        if (cap == 0) return -1;
        out[0] = n->scalar;
        *count = 1;
        return 0;
    }
    if (n->kind != SL_CFG_SEQ) {
        sl_cfg_error(c, n, "'%s' must be a list, not %s", key, kind_name(n->kind));
        return -1;
    }
    if (n->n > cap) {
        sl_cfg_error(c, n, "'%s' has %zu items; at most %zu are allowed", key, n->n, cap);
        return -1;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->kind != SL_CFG_SCALAR) {
            sl_cfg_error(c, n->items[i], "items of '%s' must be single values", key);
            return -1;
        }
        out[(*count)++] = n->items[i]->scalar;
    }
    return 0;
}

int sl_cfg_secret(sl_cfg *c, const sl_cfg_node *map, const char *key, char **out)
{
    *out = NULL;
    const char *v = NULL, *file = NULL;
    char file_key[128];
    snprintf(file_key, sizeof file_key, "%s_file", key);
    if (sl_cfg_str(c, map, key, NULL, &v) != 0 || sl_cfg_str(c, map, file_key, NULL, &file) != 0)
        return -1;
    if (v && file) {
        sl_cfg_error(c, sl_cfg_get(map, file_key), "give '%s' or '%s', not both", key, file_key);
        return -1;
    }
    if (v) {
        *out = strdup(v);
        return *out ? 0 : -1;
    }
    if (!file) return 0;
    char *text;
    size_t len;
    sl_err err;
    if (sl_read_file(file, 1 << 20, &text, &len, &err) != SL_OK) {
        sl_cfg_error(c, sl_cfg_get(map, file_key), "cannot read secret file: %s", err.msg);
        return -1;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = '\0';
    *out = text;
    return 0;
}

/* Edit distance with transpositions, capped: only small distances matter. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 64;
    size_t d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

static void check_type(sl_cfg *c, const sl_cfg_node *v, const sl_cfg_key *k)
{
    const char *name = k->name;
    const sl_cfg_node map = {.kind = SL_CFG_MAP, .n = 1, .keys = &name, .items = &v};
    switch (k->type) {
    case SL_KEY_STR: {
        const char *s;
        sl_cfg_str(c, &map, k->name, NULL, &s);
        break;
    }
    case SL_KEY_INT: {
        int64_t i;
        sl_cfg_int(c, &map, k->name, 0, INT64_MIN, INT64_MAX, &i);
        break;
    }
    case SL_KEY_BOOL: {
        bool b;
        sl_cfg_bool(c, &map, k->name, false, &b);
        break;
    }
    case SL_KEY_SIZE: {
        uint64_t s;
        sl_cfg_size(c, &map, k->name, 0, &s);
        break;
    }
    case SL_KEY_DURATION: {
        int64_t d;
        sl_cfg_duration_ms(c, &map, k->name, 0, &d);
        break;
    }
    case SL_KEY_ENUM: {
        int e;
        sl_cfg_enum(c, &map, k->name, k->choices ? k->choices : "", 0, &e);
        break;
    }
    case SL_KEY_LIST:
        if (v->kind == SL_CFG_MAP)
            sl_cfg_error(c, v, "'%s' must be a list, not a map", k->name);
        else if (v->kind == SL_CFG_SEQ)
            for (size_t i = 0; i < v->n; i++)
                if (v->items[i]->kind != SL_CFG_SCALAR)
                    sl_cfg_error(c, v->items[i], "items of '%s' must be single values", k->name);
        break;
    case SL_KEY_MAP:
        if (v->kind != SL_CFG_MAP && v->kind != SL_CFG_NULL)
            sl_cfg_error(c, v, "'%s' must be a map, not %s", k->name, kind_name(v->kind));
        break;
    case SL_KEY_SEQ:
        if (v->kind != SL_CFG_SEQ && v->kind != SL_CFG_NULL)
            sl_cfg_error(c, v, "'%s' must be a list, not %s", k->name, kind_name(v->kind));
        break;
    case SL_KEY_ANY:
        break;
    }
}

int sl_cfg_check(sl_cfg *c, const sl_cfg_node *node, const sl_cfg_key *keys, size_t nkeys)
{
    size_t before = c->nerrors;
    if (!node) return 0;
    if (node->kind == SL_CFG_NULL)
        node = NULL;
    else if (node->kind != SL_CFG_MAP) {
        sl_cfg_error(c, node, "expected a map of keys, not %s", kind_name(node->kind));
        return (int)(c->nerrors - before);
    }
    for (size_t i = 0; node && i < node->n; i++) {
        const sl_cfg_key *k = NULL;
        for (size_t j = 0; j < nkeys && !k; j++)
            if (strcmp(keys[j].name, node->keys[i]) == 0) k = &keys[j];
        if (k) {
            check_type(c, node->items[i], k);
            continue;
        }
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t j = 0; j < nkeys; j++) {
            size_t d = distance(node->keys[i], keys[j].name);
            size_t limit = strlen(keys[j].name) < 4 ? 1 : 2;
            if (d <= limit && d < best_d) best = keys[j].name, best_d = d;
        }
        const sl_cfg_node *at = node->key_nodes[i] ? node->key_nodes[i] : node->items[i];
        if (best) {
            sl_cfg_error(c, at, "unknown key '%s'; did you mean '%s'?", node->keys[i], best);
        } else {
            char valid[512];
            size_t o = 0;
            for (size_t j = 0; j < nkeys && o + 2 < sizeof valid; j++)
                o += (size_t)snprintf(valid + o, sizeof valid - o, "%s%s", j ? ", " : "",
                                      keys[j].name);
            sl_cfg_error(c, at, "unknown key '%s' (valid keys: %s)", node->keys[i], valid);
        }
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (!keys[j].required) continue;
        const sl_cfg_node *v = node ? sl_cfg_get(node, keys[j].name) : NULL;
        if (!v || v->kind == SL_CFG_NULL)
            sl_cfg_error(c, node ? node : v, "missing required key '%s'", keys[j].name);
    }
    return (int)(c->nerrors - before);
}

/* Dump as YAML that loads back to the same tree: every scalar is double
 * quoted, and `$` is written as `$$` so nothing expands twice. */
static bool secret_key(const char *k)
{
    static const char *const marks[] = {"password",   "token",   "secret", "authorization",
                                        "credential", "api_key", "apikey", "private_key"};
    char low[128];
    size_t n = strlen(k);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)k[i]);
    low[n] = '\0';
    if (n > 5 && strcmp(low + n - 5, "_file") == 0) return false; /* a path, not the secret */
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (strstr(low, marks[i])) return true;
    return n >= 4 && strcmp(low + n - 4, "_key") == 0 && !strstr(low, "key_file");
}

static void put_quoted(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '$')
            fputs("$$", out);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void put_key(FILE *out, const char *k)
{
    bool plain = *k && (isalpha((unsigned char)*k) || *k == '_');
    for (const char *p = k; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.';
    if (plain) fputs(k, out);
    else put_quoted(out, k, strlen(k));
}

static void dump_node(const sl_cfg_node *n, FILE *out, int indent, bool redact);

static void dump_value(const sl_cfg_node *v, FILE *out, int indent, bool redact)
{
    if (redact && v->kind != SL_CFG_NULL) {
        fputs(" \"<redacted>\"\n", out);
        return;
    }
    switch (v->kind) {
    case SL_CFG_NULL:
        fputs(" null\n", out);
        break;
    case SL_CFG_SCALAR:
        fputc(' ', out);
        put_quoted(out, v->scalar, v->scalar_len);
        fputc('\n', out);
        break;
    case SL_CFG_MAP:
        if (v->n == 0) {
            fputs(" {}\n", out);
            break;
        }
        fputc('\n', out);
        dump_node(v, out, indent + 2, false);
        break;
    case SL_CFG_SEQ:
        if (v->n == 0) {
            fputs(" []\n", out);
            break;
        }
        fputc('\n', out);
        dump_node(v, out, indent + 2, false);
        break;
    }
}

static void dump_node(const sl_cfg_node *n, FILE *out, int indent, bool redact)
{
    for (size_t i = 0; i < n->n; i++) {
        fprintf(out, "%*s", indent, "");
        if (n->kind == SL_CFG_MAP) {
            put_key(out, n->keys[i]);
            fputc(':', out);
            dump_value(n->items[i], out, indent, redact || secret_key(n->keys[i]));
        } else {
            fputc('-', out);
            dump_value(n->items[i], out, indent, redact);
        }
    }
}

int sl_cfg_dump(const sl_cfg *c, FILE *out)
{
    if (c->root->n == 0)
        fputs("{}\n", out);
    else
        dump_node(c->root, out, 0, false);
    return ferror(out) ? -1 : 0;
}
