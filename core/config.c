/* One file on purpose (over 800 lines): the loader, the overlay merge, the
 * typed getters, the validation and the dump all work on the private node
 * representation (mnode in one memory pool, with its secret and
 * unresolved-variable marks); splitting them would make that
 * representation a second public header. */
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
#include "core/redact.h"

/* Bounds that keep a hostile or broken file from eating the agent. */
#define CFG_MAX_FILE_BYTES (16u << 20)
#define CFG_MAX_DEPTH      64
#define CFG_MAX_NODES      1000000
#define CFG_MAX_ERRORS     1000
#define CFG_MAX_SCALAR     (1u << 20)
/* Everything the tree owns (nodes, strings, arrays) across all loads. */
#define CFG_MAX_MEMORY (256u << 20)
#define POOL_BLOCK     (64u << 10)
/* YAML limits implicit keys to 1024 characters; longer keys are dumped in
 * the explicit `? key` form. Measured in bytes, so this is conservative. */
#define DUMP_MAX_IMPLICIT_KEY 512

typedef struct pool_block {
    struct pool_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} pool_block;

/* Mutable view of a node: every node in the tree is one of these, so code
 * holding a `const sl_cfg_node *` from this sl_cfg may cast back. */
typedef struct mnode {
    sl_cfg_node pub;
    size_t cap;  /* capacity of keys/key_nodes/items */
    bool secret; /* marked by sl_cfg_check from a key table: redact in dumps */
    /* Deferred mode: the error for an unset ${VAR} in this scalar, reported
     * only if the value is used (sl_cfg_report_unresolved). */
    const char *unresolved;
} mnode;

struct sl_cfg {
    pool_block *pool; /* every allocation of the tree, freed together */
    size_t mem;       /* bytes held by pool, bounded by CFG_MAX_MEMORY */
    sl_cfg_node *root;
    bool loaded; /* root came from a file, not the initial empty map */
    char **errors;
    size_t nerrors, cap_errors;
    size_t nodes;
    bool defer_unset;     /* sl_cfg_defer_unset_vars */
    const char *env_hint; /* where unset variables are set, for the message */
    /* sl_cfg_add_var: consulted when the environment lacks a name; the
     * pool owns the strings, the array grows by doubling. */
    const char **var_names, **var_values;
    size_t nvars, cap_vars;
};

static void *palloc(sl_cfg *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    pool_block *b = c->pool;
    if (b && b->cap - b->used >= n) {
        void *p = b->data + b->used;
        b->used += n;
        memset(p, 0, n);
        return p;
    }
    /* Large requests get a block of their own, placed behind the current
     * one so its free space stays usable. */
    size_t cap = n > POOL_BLOCK / 4 ? n : POOL_BLOCK;
    if (n > CFG_MAX_MEMORY || c->mem + cap > CFG_MAX_MEMORY) return NULL;
    pool_block *nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    c->mem += cap;
    nb->cap = cap;
    nb->used = n;
    if (cap == n && b) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        c->pool = nb;
    }
    memset(nb->data, 0, n);
    return nb->data;
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
    /* Errors quote values: no credential in a URL and no line break of a
     * value reaches the terminal or a CI log. */
    char shown[1400];
    size_t n = sl_redact_text(shown, sizeof shown, full, strlen(full));
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7f) shown[i] = '?';
    /* Two checks of one value (the key table's type check, then the
     * consumer's lookup) say the same thing: it is one error. */
    for (size_t i = 0; i < c->nerrors; i++)
        if (strcmp(c->errors[i], shown) == 0) return;
    char *dup = strdup(shown);
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

static bool errors_full(const sl_cfg *c)
{
    return c->nerrors >= CFG_MAX_ERRORS;
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

/* Makes room for one more entry. Old arrays stay in the pool until
 * sl_cfg_free; doubling keeps that waste below the live size. */
static int grow(sl_cfg *c, mnode *n)
{
    if (n->pub.n < n->cap) return 0;
    size_t cap = n->cap ? n->cap * 2 : 4;
    bool map = n->pub.kind == SL_CFG_MAP;
    const sl_cfg_node **items = palloc(c, cap * sizeof *items);
    const char **keys = map ? palloc(c, cap * sizeof *keys) : NULL;
    const sl_cfg_node **key_nodes = map ? palloc(c, cap * sizeof *key_nodes) : NULL;
    if (!items || (map && (!keys || !key_nodes))) return -1;
    if (n->pub.n) {
        memcpy(items, n->pub.items, n->pub.n * sizeof *items);
        if (map) {
            memcpy(keys, n->pub.keys, n->pub.n * sizeof *keys);
            memcpy(key_nodes, n->pub.key_nodes, n->pub.n * sizeof *key_nodes);
        }
    }
    n->pub.items = items;
    n->pub.keys = keys;
    n->pub.key_nodes = key_nodes;
    n->cap = cap;
    return 0;
}

sl_cfg *sl_cfg_new(void)
{
    sl_cfg *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    mnode *root = new_node(c, SL_CFG_MAP, "<no configuration>", 1, 1);
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
        pool_block *next = c->pool->next;
        free(c->pool);
        c->pool = next;
    }
    for (size_t i = 0; i < c->nerrors; i++) free(c->errors[i]);
    free(c->errors);
    free(c);
}

void sl_cfg_defer_unset_vars(sl_cfg *c)
{
    c->defer_unset = true;
}

void sl_cfg_set_env_hint(sl_cfg *c, const char *where)
{
    c->env_hint = where ? pdup(c, where, strlen(where)) : NULL;
}

int sl_cfg_add_var(sl_cfg *c, const char *name, const char *value)
{
    for (size_t i = 0; i < c->nvars; i++)
        if (strcmp(c->var_names[i], name) == 0) {
            const char *v = pdup(c, value, strlen(value));
            if (!v) return -1;
            c->var_values[i] = v;
            return 0;
        }
    if (c->nvars == c->cap_vars) {
        size_t cap = c->cap_vars ? c->cap_vars * 2 : 16;
        const char **n = palloc(c, cap * sizeof *n), **v = palloc(c, cap * sizeof *v);
        if (!n || !v) return -1;
        if (c->nvars) {
            memcpy(n, c->var_names, c->nvars * sizeof *n);
            memcpy(v, c->var_values, c->nvars * sizeof *v);
        }
        c->var_names = n, c->var_values = v, c->cap_vars = cap;
    }
    const char *dn = pdup(c, name, strlen(name)), *dv = pdup(c, value, strlen(value));
    if (!dn || !dv) return -1;
    c->var_names[c->nvars] = dn;
    c->var_values[c->nvars++] = dv;
    return 0;
}

static const char *lookup_var(const sl_cfg *c, const char *name)
{
    const char *v = getenv(name);
    for (size_t i = 0; !v && i < c->nvars; i++)
        if (strcmp(c->var_names[i], name) == 0) v = c->var_values[i];
    return v;
}

const char *sl_cfg_unresolved(const sl_cfg_node *n)
{
    return n ? ((const mnode *)n)->unresolved : NULL;
}

int sl_cfg_report_unresolved(sl_cfg *c, const sl_cfg_node *n)
{
    if (!n) return 0;
    int found = 0;
    const char *msg = sl_cfg_unresolved(n);
    if (msg && !errors_full(c)) {
        error_at(c, NULL, 0, 0, "%s", msg);
        found++;
    }
    if (n->kind == SL_CFG_MAP || n->kind == SL_CFG_SEQ)
        for (size_t i = 0; i < n->n; i++) found += sl_cfg_report_unresolved(c, n->items[i]);
    return found;
}

const sl_cfg_node *sl_cfg_root(const sl_cfg *c)
{
    return c->root;
}

/* A temporary string → position index, so duplicate-key checks and
 * overlays stay linear even for maps with many keys. */
typedef struct strindex {
    size_t mask;
    struct slot {
        const char *key;
        size_t pos;
    } * slots;
} strindex;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int idx_init(strindex *ix, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? 0 : -1;
}

static struct slot *idx_slot(const strindex *ix, const char *key)
{
    for (size_t i = hash_str(key) & ix->mask;; i = (i + 1) & ix->mask)
        if (!ix->slots[i].key || strcmp(ix->slots[i].key, key) == 0) return &ix->slots[i];
}

/* Returns the position stored for key, or inserts pos and returns SIZE_MAX.
 * The table is sized at init for every key that will be inserted. */
static size_t idx_put(strindex *ix, const char *key, size_t pos)
{
    struct slot *s = idx_slot(ix, key);
    if (s->key) return s->pos;
    s->key = key;
    s->pos = pos;
    return SIZE_MAX;
}

typedef struct loader {
    sl_cfg *c;
    yaml_parser_t parser;
    const char *file;
    const unsigned char *text;
    size_t len;
    /* libyaml marks count characters, not bytes; this cursor converts
     * (only forward, so all conversions of one load cost one pass). */
    size_t cur_idx, cur_byte, base;
    bool precise; /* false for UTF-16 input, where we don't map positions */
    bool too_large;
    int errors;
} loader;

static void fail_too_large(loader *L, int line, int col)
{
    if (!L->too_large)
        error_at(L->c, L->file, line, col, "configuration too large (more than %d nodes or %u MiB)",
                 CFG_MAX_NODES, CFG_MAX_MEMORY >> 20);
    L->too_large = true;
    L->errors++;
}

static size_t next_char(const loader *L, size_t b)
{
    if (b >= L->len) return L->len;
    b++;
    while (b < L->len && (L->text[b] & 0xC0) == 0x80) b++;
    return b;
}

static size_t byte_of(loader *L, size_t idx)
{
    if (idx < L->cur_idx) {
        L->cur_idx = 0;
        L->cur_byte = L->base;
    }
    while (L->cur_idx < idx && L->cur_byte < L->len) {
        L->cur_byte = next_char(L, L->cur_byte);
        L->cur_idx++;
    }
    return L->cur_byte;
}

/* Finds where `${name` appears in the source of the scalar ev, at or after
 * *scan, so an error points at the reference itself rather than at the
 * start of a long value. Falls back to the scalar's start. */
static void ref_position(loader *L, const yaml_event_t *ev, size_t *scan, const char *name,
                         int *line, int *col)
{
    *line = (int)ev->start_mark.line + 1;
    *col = (int)ev->start_mark.column + 1;
    if (!L->precise || errors_full(L->c)) return;
    size_t start = byte_of(L, ev->start_mark.index), end = start;
    for (size_t i = ev->start_mark.index; i < ev->end_mark.index && end < L->len; i++)
        end = next_char(L, end);
    if (*scan < start) *scan = start;
    size_t nlen = strlen(name);
    for (size_t p = *scan; p + 2 + nlen <= end; p++) {
        if (L->text[p] == '$' && L->text[p + 1] == '$') {
            p++; /* an escaped '$', as expand() reads it */
            continue;
        }
        if (L->text[p] != '$' || L->text[p + 1] != '{' || memcmp(L->text + p + 2, name, nlen) != 0)
            continue;
        unsigned char after = p + 2 + nlen < end ? L->text[p + 2 + nlen] : 0;
        if (after != '}' && after != ':') continue;
        int ln = *line, cl = *col;
        for (size_t b = start; b < p; b = next_char(L, b)) {
            if (L->text[b] == '\n' || L->text[b] == '\r') {
                if (L->text[b] == '\r' && b + 1 < p && L->text[b + 1] == '\n') b++;
                ln++;
                cl = 1;
            } else {
                cl++;
            }
        }
        *line = ln;
        *col = cl;
        *scan = p + 2;
        return;
    }
}

/* References to record data in sink templates (`${labels.job}`, `${labels}`,
 * `${fields.x}`, `${input}`, `${source}`): not environment variables, so
 * they are left for the sink to expand per record. */
static bool template_ref(const char *name, size_t n)
{
    return (n > 7 && memcmp(name, "labels.", 7) == 0) || (n == 6 && !memcmp(name, "labels", 6)) ||
           (n > 7 && memcmp(name, "fields.", 7) == 0) || (n == 5 && !memcmp(name, "input", 5)) ||
           (n == 6 && !memcmp(name, "source", 6));
}

typedef struct msgbuf {
    char s[700];
} msgbuf;

static msgbuf unset_text(const sl_cfg *c, const char *name)
{
    msgbuf m;
    if (c->env_hint)
        snprintf(m.s, sizeof m.s,
                 "environment variable '%s' is not set (set it in %s or the environment, or "
                 "use ${%s:-default} for a default)",
                 name, c->env_hint, name);
    else
        snprintf(m.s, sizeof m.s,
                 "environment variable '%s' is not set (use ${%s:-default} for a default)", name,
                 name);
    return m;
}

static const char *unset_message(loader *L, int line, int col, const char *name)
{
    char full[1000];
    snprintf(full, sizeof full, "%s:%d:%d: %s", L->file, line, col, unset_text(L->c, name).s);
    return pdup(L->c, full, strlen(full));
}

/* ${VAR}, ${VAR:-default} and $$ (a literal $). A default is used when the
 * variable is unset or empty, and is itself taken literally (no nesting),
 * so expansion is one bounded pass. Unset without default is an error. */
static char *expand(loader *L, const yaml_event_t *ev, mnode *node, size_t *out_len)
{
    sl_cfg *c = L->c;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (memchr(s, '\0', n)) {
        error_at(c, L->file, line, col, "value contains a NUL character");
        L->errors++;
        *out_len = 0;
        return pdup(c, "", 0);
    }
    if (!memchr(s, '$', n)) {
        *out_len = n;
        return pdup(c, s, n);
    }
    size_t cap = n + 256, len = 0, scan = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    bool failed = false;
    for (size_t i = 0; i < n;) {
        const char *add = NULL;
        size_t add_n = 0;
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '$') {
            add = "$", add_n = 1, i += 2;
        } else if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', n - i - 2);
            if (!end) {
                error_at(c, L->file, line, col,
                         "unterminated '${' in value (write '$$' for a literal '$')");
                failed = true;
                break;
            }
            char name[256];
            size_t inner = (size_t)(end - (s + i + 2));
            const char *dflt = NULL;
            size_t dflt_n = 0, name_n = inner;
            for (size_t k = 0; k + 1 < inner; k++)
                if (s[i + 2 + k] == ':' && s[i + 3 + k] == '-') {
                    name_n = k;
                    dflt = s + i + 4 + k;
                    dflt_n = (size_t)(end - dflt);
                    break;
                }
            if (template_ref(s + i + 2, name_n)) {
                /* A sink's per-record template (topic, key): kept for it. */
                add = s + i, add_n = (size_t)(end - (s + i)) + 1;
                i = (size_t)(end - s) + 1;
                goto append;
            }
            bool valid = name_n > 0 && name_n < sizeof name && !isdigit((unsigned char)s[i + 2]);
            for (size_t k = 0; valid && k < name_n; k++) {
                char ch = s[i + 2 + k];
                valid = isalnum((unsigned char)ch) || ch == '_';
            }
            if (!valid) {
                int ln = line, cl = col;
                if (name_n > 0 && name_n < sizeof name) {
                    memcpy(name, s + i + 2, name_n);
                    name[name_n] = '\0';
                    ref_position(L, ev, &scan, name, &ln, &cl);
                }
                error_at(c, L->file, ln, cl,
                         "bad variable reference '%.*s' (names are letters, digits and '_')",
                         (int)(end - (s + i) + 1 > 200 ? 200 : end - (s + i) + 1), s + i);
                failed = true;
                i = (size_t)(end - s) + 1;
                continue;
            }
            memcpy(name, s + i + 2, name_n);
            name[name_n] = '\0';
            const char *v = lookup_var(c, name);
            if (v && (*v || !dflt)) {
                add = v, add_n = strlen(v);
            } else if (dflt) {
                add = dflt, add_n = dflt_n;
            } else {
                int ln, cl;
                ref_position(L, ev, &scan, name, &ln, &cl);
                if (c->defer_unset) {
                    if (!node->unresolved) node->unresolved = unset_message(L, ln, cl, name);
                } else {
                    error_at(c, L->file, ln, cl, "%s", unset_text(c, name).s);
                    failed = true;
                }
            }
            i = (size_t)(end - s) + 1;
        } else {
            add = s + i, add_n = 1, i++;
        }
    append:
        if (!add_n) continue;
        if (len + add_n > CFG_MAX_SCALAR) {
            error_at(c, L->file, line, col, "value longer than %u bytes after expansion",
                     CFG_MAX_SCALAR);
            failed = true;
            break;
        }
        if (len + add_n + 1 > cap) {
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
    if (failed) {
        free(buf);
        L->errors++;
        *out_len = 0;
        return pdup(c, "", 0);
    }
    char *r = pdup(c, buf, len);
    free(buf);
    *out_len = len;
    return r;
}

/* Line and column (in characters) of a byte offset in the input. */
static void byte_position(const loader *L, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t b = L->base; b < off && b < L->len; b = next_char(L, b)) {
        if (L->text[b] == '\n' ||
            (L->text[b] == '\r' && (b + 1 >= L->len || L->text[b + 1] != '\n')))
            (*line)++, *col = 1;
        else if (L->text[b] != '\r')
            (*col)++;
    }
}

static void yaml_fail(loader *L)
{
    yaml_parser_t *p = &L->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        error_at(L->c, L->file, 1, 1, "out of memory while parsing YAML");
    } else if (p->error == YAML_READER_ERROR) {
        /* Encoding errors carry a byte offset instead of a mark. */
        int line = 1, col = 1;
        if (L->precise) byte_position(L, p->problem_offset, &line, &col);
        error_at(L->c, L->file, line, col, "YAML syntax error: %s (at byte %zu)",
                 p->problem ? p->problem : "invalid input", p->problem_offset);
    } else {
        const char *what = p->problem ? p->problem : "invalid YAML";
        error_at(L->c, L->file, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                 "YAML syntax error: %s%s%s", what, p->context ? " " : "",
                 p->context ? p->context : "");
    }
    L->errors++;
}

static sl_cfg_node *parse_node(loader *L, yaml_event_t *ev, int depth);

static sl_cfg_node *parse_key(loader *L, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (ev->type != YAML_SCALAR_EVENT) {
        error_at(L->c, L->file, line, col, "map keys must be plain strings");
        L->errors++;
        return NULL;
    }
    if (ev->data.scalar.anchor) {
        error_at(L->c, L->file, line, col, "YAML anchors and aliases are not supported");
        L->errors++;
        return NULL;
    }
    size_t n = ev->data.scalar.length;
    if (n > CFG_MAX_SCALAR || memchr(ev->data.scalar.value, '\0', n)) {
        error_at(L->c, L->file, line, col, "%s",
                 n > CFG_MAX_SCALAR ? "key too long" : "key contains a NUL character");
        L->errors++;
        return NULL;
    }
    /* Keys are taken literally: the environment fills in values, it never
     * changes the shape of the configuration. */
    mnode *k = new_node(L->c, SL_CFG_SCALAR, L->file, line, col);
    char *v = k ? pdup(L->c, (const char *)ev->data.scalar.value, n) : NULL;
    if (!v) {
        fail_too_large(L, line, col);
        return NULL;
    }
    k->pub.scalar = v;
    k->pub.scalar_len = n;
    k->pub.quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    return &k->pub;
}

static void check_duplicates(loader *L, const mnode *m)
{
    if (m->pub.n < 2) return;
    strindex ix;
    if (idx_init(&ix, m->pub.n) != 0) {
        fail_too_large(L, m->pub.line, m->pub.col);
        return;
    }
    for (size_t i = 0; i < m->pub.n && !errors_full(L->c); i++) {
        size_t first = idx_put(&ix, m->pub.keys[i], i);
        if (first == SIZE_MAX) continue;
        sl_cfg_error(L->c, m->pub.key_nodes[i], "duplicate key '%s' (first at line %d)",
                     m->pub.keys[i], m->pub.key_nodes[first]->line);
        L->errors++;
    }
    free(ix.slots);
}

/* Reads events until the end of the collection started by *start. */
static sl_cfg_node *parse_collection(loader *L, yaml_event_t *start, int depth)
{
    bool is_map = start->type == YAML_MAPPING_START_EVENT;
    int line = (int)start->start_mark.line + 1, col = (int)start->start_mark.column + 1;
    if (depth >= CFG_MAX_DEPTH) {
        error_at(L->c, L->file, line, col, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        L->errors++;
        return NULL;
    }
    mnode *n = new_node(L->c, is_map ? SL_CFG_MAP : SL_CFG_SEQ, L->file, line, col);
    if (!n) {
        fail_too_large(L, line, col);
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
            if (is_map) check_duplicates(L, n);
            return &n->pub;
        }
        const sl_cfg_node *key = NULL;
        if (is_map) {
            key = parse_key(L, &ev);
            yaml_event_delete(&ev);
            if (!key) return NULL;
            if (!yaml_parser_parse(&L->parser, &ev)) {
                yaml_fail(L);
                return NULL;
            }
        }
        const sl_cfg_node *val = parse_node(L, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!val) return NULL;
        if (grow(L->c, n) != 0) {
            fail_too_large(L, line, col);
            return NULL;
        }
        if (is_map) {
            n->pub.keys[n->pub.n] = key->scalar;
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
        size_t len = 0;
        char *v = n ? expand(L, ev, n, &len) : NULL;
        if (!v) {
            fail_too_large(L, line, col);
            return NULL;
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
    /* Aliases let a small file expand without bound ("billion laughs"), and
     * configs read better without them, so they are refused outright. */
    error_at(L->c, L->file, line, col, "YAML anchors and aliases are not supported");
    L->errors++;
    return NULL;
}

static const char *name_of(const sl_cfg_node *map)
{
    for (size_t k = map->n; k-- > 0;)
        if (strcmp(map->keys[k], "name") == 0 && map->items[k]->kind == SL_CFG_SCALAR)
            return map->items[k]->scalar;
    return NULL;
}

static bool named_items(const sl_cfg_node *seq)
{
    if (seq->kind != SL_CFG_SEQ || seq->n == 0) return false;
    for (size_t i = 0; i < seq->n; i++)
        if (seq->items[i]->kind != SL_CFG_MAP || !name_of(seq->items[i])) return false;
    return true;
}

/* Overlays src on *dst: maps merge key by key, sequences whose items are
 * all maps with a `name` merge item by item by name, anything else is
 * replaced by src. dst is updated in place (all nodes belong to c). */
static int merge(sl_cfg *c, const sl_cfg_node **dst, const sl_cfg_node *src)
{
    bool maps = (*dst)->kind == SL_CFG_MAP && src->kind == SL_CFG_MAP;
    bool named = !maps && named_items(*dst) && named_items(src);
    if (!maps && !named) {
        *dst = src;
        return 0;
    }
    mnode *d = (mnode *)(uintptr_t)*dst;
    strindex ix;
    if (idx_init(&ix, d->pub.n + src->n) != 0) return -1;
    for (size_t k = 0; k < d->pub.n; k++)
        idx_put(&ix, maps ? d->pub.keys[k] : name_of(d->pub.items[k]), k);
    int rc = 0;
    for (size_t i = 0; i < src->n && rc == 0; i++) {
        const char *key = maps ? src->keys[i] : name_of(src->items[i]);
        size_t k = idx_put(&ix, key, d->pub.n);
        if (k != SIZE_MAX) {
            rc = merge(c, &d->pub.items[k], src->items[i]);
            continue;
        }
        if (grow(c, d) != 0) {
            rc = -1;
            break;
        }
        if (maps) {
            d->pub.keys[d->pub.n] = src->keys[i];
            d->pub.key_nodes[d->pub.n] = src->key_nodes[i];
        }
        d->pub.items[d->pub.n++] = src->items[i];
    }
    free(ix.slots);
    return rc;
}

int sl_cfg_load_string(sl_cfg *c, const char *name, const char *text, size_t len)
{
    size_t before = c->nerrors;
    loader L = {.c = c, .file = pdup(c, name, strlen(name))};
    if (!L.file) {
        error_at(c, name, 1, 1, "configuration too large (more than %u MiB)", CFG_MAX_MEMORY >> 20);
        return 1;
    }
    if (len > CFG_MAX_FILE_BYTES) {
        error_at(c, L.file, 1, 1, "file larger than %u bytes", CFG_MAX_FILE_BYTES);
        return 1;
    }
    L.text = (const unsigned char *)text;
    L.len = len;
    L.precise = !(len >= 2 && ((L.text[0] == 0xFF && L.text[1] == 0xFE) ||
                               (L.text[0] == 0xFE && L.text[1] == 0xFF)));
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) L.base = 3;
    L.cur_byte = L.base;
    if (!yaml_parser_initialize(&L.parser)) {
        error_at(c, L.file, 1, 1, "out of memory while parsing YAML");
        return 1;
    }
    yaml_parser_set_input_string(&L.parser, L.text, len);
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
    /* A file with errors changes nothing, so what is loaded stays coherent. */
    if (L.errors) {
        /* what was recorded, or at least 1 once the error list is full */
        size_t recorded = c->nerrors - before;
        return recorded ? (int)recorded : 1;
    }
    if (!doc || doc->kind == SL_CFG_NULL) return 0; /* an empty file changes nothing */
    if (doc->kind != SL_CFG_MAP) {
        sl_cfg_error(c, doc, "the configuration must be a map of keys, not %s",
                     doc->kind == SL_CFG_SEQ ? "a list" : "a single value");
        return 1;
    }
    if (!c->loaded) {
        c->root = (sl_cfg_node *)(uintptr_t)doc;
        c->loaded = true;
        return 0;
    }
    const sl_cfg_node *root = c->root;
    if (merge(c, &root, doc) != 0) {
        sl_cfg_error(c, doc, "configuration too large to overlay (more than %u MiB)",
                     CFG_MAX_MEMORY >> 20);
        return 1;
    }
    c->root = (sl_cfg_node *)(uintptr_t)root;
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

/* Parsing of typed scalars. Numbers are read digit by digit in integers,
 * so large values are exact and overflow is detected, never rounded. */

/* Reads `digits[.digits]`: whole part and up to 9 fraction digits as a
 * numerator over *den. Returns the end, or NULL when there are no digits
 * or the whole part overflows. */
static const char *read_decimal(const char *s, uint64_t *whole, uint64_t *frac, uint64_t *den)
{
    *whole = 0, *frac = 0, *den = 1;
    if (!isdigit((unsigned char)*s)) return NULL;
    for (; isdigit((unsigned char)*s); s++)
        if (__builtin_mul_overflow(*whole, 10, whole) ||
            __builtin_add_overflow(*whole, (uint64_t)(*s - '0'), whole))
            return NULL;
    if (*s != '.') return s;
    s++;
    if (!isdigit((unsigned char)*s)) return NULL;
    for (; isdigit((unsigned char)*s); s++)
        if (*den < 1000000000) {
            *frac = *frac * 10 + (uint64_t)(*s - '0');
            *den *= 10;
        }
    return s;
}

/* whole*mul + frac*mul/den without overflow in the intermediate terms
 * (frac < den <= 1e9, so each product stays below 2^64). */
static int scale(uint64_t whole, uint64_t frac, uint64_t den, uint64_t mul, uint64_t *out)
{
    uint64_t v, part = (mul / den) * frac + (mul % den) * frac / den;
    if (__builtin_mul_overflow(whole, mul, &v) || __builtin_add_overflow(v, part, &v)) return -1;
    *out = v;
    return 0;
}

/* The one size grammar (docs/decisions/0020): a whole number of bytes, or
 * a number (a fraction allowed) immediately followed by one unit, spelled
 * exactly: KiB MiB GiB TiB (powers of 1024) or kB MB GB TB (powers of 1000).
 * No space, no bare K/M/G, no other case: `32mb` could be millibits and
 * `1M` either unit, so they are refused with a suggestion instead of
 * guessed. */
static const struct size_unit {
    const char *unit;
    uint64_t mul;
} size_units[] = {
    {"B", 1},          {"KiB", 1024},       {"MiB", 1u << 20},
    {"GiB", 1u << 30}, {"TiB", 1ULL << 40}, {"kB", 1000},
    {"MB", 1000000},   {"GB", 1000000000},  {"TB", 1000000000000ULL},
};

int sl_parse_size(const char *s, uint64_t *out)
{
    if (!s) return -1;
    uint64_t whole, frac, den;
    const char *end = read_decimal(s, &whole, &frac, &den);
    if (!end) return -1;
    if (*end == '\0') {
        if (frac) return -1; /* "0.5" bytes is not a size anyone means */
        *out = whole;
        return 0;
    }
    for (size_t i = 0; i < sizeof size_units / sizeof *size_units; i++)
        if (strcmp(end, size_units[i].unit) == 0) {
            uint64_t v;
            if (scale(whole, frac, den, size_units[i].mul, &v) != 0) return -1;
            if (size_units[i].mul == 1 && frac) return -1;
            *out = v;
            return 0;
        }
    return -1;
}

/* What the writer of a refused size probably meant: the number with each
 * unit its letters could stand for ("1M" -> "1MiB' or '1MB"). */
static void size_suggestion(const char *s, char *buf, size_t cap)
{
    buf[0] = '\0';
    uint64_t whole, frac, den;
    const char *end = read_decimal(s, &whole, &frac, &den);
    if (!end) return;
    const char *u = end;
    while (*u == ' ') u++;
    char low[8];
    size_t n = 0;
    for (; u[n] && n < sizeof low - 1; n++) low[n] = (char)tolower((unsigned char)u[n]);
    low[n] = '\0';
    if (u[n] || n == 0) return;
    static const char *const iec[] = {"KiB", "MiB", "GiB", "TiB"}, *const si[] = {"kB", "MB", "GB",
                                                                                  "TB"};
    for (size_t i = 0; i < 4; i++) {
        char l = (char)tolower((unsigned char)iec[i][0]);
        bool bare = n == 1 && low[0] == l;
        bool iec_like = n == 3 && low[0] == l && !strcmp(low + 1, "ib");
        bool si_like = n == 2 && low[0] == l && low[1] == 'b';
        if (bare || iec_like || si_like) {
            int num = (int)(end - s);
            if (bare || si_like)
                snprintf(buf, cap, "; did you mean '%.*s%s' or '%.*s%s'?", num, s, iec[i], num, s,
                         si[i]);
            else
                snprintf(buf, cap, "; did you mean '%.*s%s'?", num, s, iec[i]);
            return;
        }
    }
}

void sl_format_size(uint64_t v, char *buf, size_t cap)
{
    static const char *const iec[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t mul = 1ULL << (10 * (4 - i));
        if (v >= mul && v % mul == 0) {
            snprintf(buf, cap, "%llu%s", (unsigned long long)(v / mul), iec[i]);
            return;
        }
    }
    snprintf(buf, cap, "%llu", (unsigned long long)v);
}

int sl_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t us;
    } units[] = {{"us", 1},          {"ms", 1000},         {"s", 1000000},
                 {"m", 60000000ULL}, {"h", 3600000000ULL}, {"d", 86400000000ULL}};
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    uint64_t total = 0;
    bool any = false;
    while (*s && !isspace((unsigned char)*s)) {
        uint64_t whole, frac, den, v;
        const char *end = read_decimal(s, &whole, &frac, &den);
        if (!end) return -1;
        size_t ulen = 0;
        while (isalpha((unsigned char)end[ulen])) ulen++;
        if (ulen == 0) {
            /* a bare number is ambiguous (seconds? ms?), except zero */
            if (any || whole || frac || *end) return -1;
            s = end;
            any = true;
            continue;
        }
        size_t u = 0;
        while (u < sizeof units / sizeof *units &&
               !(strlen(units[u].unit) == ulen && strncmp(end, units[u].unit, ulen) == 0))
            u++;
        if (u == sizeof units / sizeof *units) return -1;
        if (scale(whole, frac, den, units[u].us, &v) != 0 ||
            __builtin_add_overflow(total, v, &total))
            return -1;
        s = end + ulen;
        any = true;
    }
    while (isspace((unsigned char)*s)) s++;
    if (!any || *s || total > (uint64_t)INT64_MAX) return -1;
    int64_t ms = (int64_t)(total / 1000);
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
    const char *d = *s == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)*d)) return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static size_t choice_len(const char *p)
{
    const char *bar = strchr(p, '|');
    return bar ? (size_t)(bar - p) : strlen(p);
}

static int choice_index(const char *choices, const char *v)
{
    size_t vn = strlen(v);
    int idx = 0;
    for (const char *p = choices;; idx++) {
        size_t n = choice_len(p);
        if (n == vn && strncmp(p, v, n) == 0) return idx;
        if (!p[n]) return -1;
        p += n + 1;
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

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions), capped: only small distances matter for suggestions. */
static size_t distance(const char *a, size_t n, const char *b, size_t m)
{
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

/* A close candidate is within 1 edit for short words, 2 otherwise. */
static bool close_enough(size_t d, size_t len)
{
    return d <= (len < 4 ? 1u : 2u);
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

static void size_grammar_error(sl_cfg *c, const sl_cfg_node *n, const char *key)
{
    char hint[128];
    size_suggestion(n->scalar, hint, sizeof hint);
    sl_cfg_error(c, n,
                 "'%s' must be a size: bytes (512) or a number with KiB, MiB, GiB, TiB "
                 "(1024s) or kB, MB, GB, TB (1000s), no space, got '%s'%s",
                 key, n->scalar, hint);
}

int sl_cfg_size(sl_cfg *c, const sl_cfg_node *map, const char *key, uint64_t def, uint64_t *out)
{
    return sl_cfg_size_range(c, map, key, def, 0, UINT64_MAX, out);
}

int sl_cfg_size_range(sl_cfg *c, const sl_cfg_node *map, const char *key, uint64_t def,
                      uint64_t min, uint64_t max, uint64_t *out)
{
    *out = def;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    uint64_t v;
    if (!need_scalar(c, n, key)) return -1;
    if (sl_parse_size(n->scalar, &v) != 0) {
        size_grammar_error(c, n, key);
        return -1;
    }
    if (v < min || v > max) {
        char lo[32], hi[32];
        sl_format_size(min, lo, sizeof lo);
        sl_format_size(max, hi, sizeof hi);
        sl_cfg_error(c, n, "'%s' must be from %s to %s, got '%s'", key, lo, hi, n->scalar);
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
    if (idx >= 0) {
        *out = idx;
        return 0;
    }
    const char *best = NULL;
    size_t best_n = 0, best_d = SIZE_MAX;
    for (const char *p = choices;;) {
        size_t len = choice_len(p);
        size_t d = distance(n->scalar, n->scalar_len, p, len);
        if (close_enough(d, len) && d < best_d) best = p, best_n = len, best_d = d;
        if (!p[len]) break;
        p += len + 1;
    }
    if (best)
        sl_cfg_error(c, n, "'%s' must be one of %s, got '%s'; did you mean '%.*s'?", key, choices,
                     n->scalar, (int)best_n, best);
    else
        sl_cfg_error(c, n, "'%s' must be one of %s, got '%s'", key, choices, n->scalar);
    return -1;
}

int sl_cfg_list(sl_cfg *c, const sl_cfg_node *map, const char *key, const char **out, size_t cap,
                size_t *count)
{
    *count = 0;
    const sl_cfg_node *n = sl_cfg_get(map, key);
    if (!n || n->kind == SL_CFG_NULL) return 0;
    if (n->kind == SL_CFG_SCALAR) {
        if (cap == 0) {
            sl_cfg_error(c, n, "'%s' has 1 item; at most 0 are allowed", key);
            return -1;
        }
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
            *count = 0;
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
    if ((size_t)snprintf(file_key, sizeof file_key, "%s_file", key) >= sizeof file_key) return -1;
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
            for (size_t i = 0; i < v->n && !errors_full(c); i++)
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

static void unknown_key(sl_cfg *c, const sl_cfg_node *map, size_t i, const sl_cfg_key *keys,
                        size_t nkeys)
{
    const char *key = map->keys[i], *best = NULL;
    size_t best_d = SIZE_MAX, klen = strlen(key);
    for (size_t j = 0; j < nkeys; j++) {
        size_t len = strlen(keys[j].name), d = distance(key, klen, keys[j].name, len);
        /* A shortened key ("start" for "start_at") ranks after typos. */
        if (!close_enough(d, len) && klen >= 4 && klen < len &&
            strncmp(key, keys[j].name, klen) == 0)
            d = 100 + len - klen;
        else if (!close_enough(d, len))
            continue;
        if (d < best_d) best = keys[j].name, best_d = d;
    }
    const sl_cfg_node *at = map->key_nodes && map->key_nodes[i] ? map->key_nodes[i] : map;
    if (best) {
        sl_cfg_error(c, at, "unknown key '%s'; did you mean '%s'?", key, best);
        return;
    }
    char valid[512];
    size_t o = 0;
    for (size_t j = 0; j < nkeys && o + 2 < sizeof valid; j++) {
        int w = snprintf(valid + o, sizeof valid - o, "%s%s", j ? ", " : "", keys[j].name);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (o >= sizeof valid) o = sizeof valid - 1;
    valid[o] = '\0';
    sl_cfg_error(c, at, "unknown key '%s' (valid keys: %s)", key, nkeys ? valid : "none");
}

int sl_cfg_check(sl_cfg *c, const sl_cfg_node *node, const sl_cfg_key *keys, size_t nkeys)
{
    size_t before = c->nerrors;
    if (!node) return 0;
    if (node->kind != SL_CFG_MAP && node->kind != SL_CFG_NULL) {
        sl_cfg_error(c, node, "expected a map of keys, not %s", kind_name(node->kind));
        return (int)(c->nerrors - before);
    }
    /* A null node (`buffer:` with nothing after it) is an empty map. */
    bool map = node->kind == SL_CFG_MAP;
    for (size_t i = 0; map && i < node->n && !errors_full(c); i++) {
        const sl_cfg_key *k = NULL;
        for (size_t j = 0; j < nkeys && !k; j++)
            if (strcmp(keys[j].name, node->keys[i]) == 0) k = &keys[j];
        if (!k) {
            unknown_key(c, node, i, keys, nkeys);
            continue;
        }
        /* Every node of a tree is an mnode owned by c; the mark only
         * changes how sl_cfg_dump prints it. */
        if (k->secret) ((mnode *)(uintptr_t)node->items[i])->secret = true;
        check_type(c, node->items[i], k);
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (!keys[j].required) continue;
        const sl_cfg_node *v = map ? sl_cfg_get(node, keys[j].name) : NULL;
        if (!v || v->kind == SL_CFG_NULL)
            sl_cfg_error(c, node, "missing required key '%s'", keys[j].name);
    }
    return (int)(c->nerrors - before);
}

/* Dump: YAML that loads back to the same values. Every value is double
 * quoted with escapes, so no string can turn into syntax, a null or a
 * number's lookalike, and `$` in values is written `$$` so nothing expands
 * twice. Keys are never expanded, so they are written as they are, quoted
 * only when they are not plain words. */
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
    return strcmp(low, "key") == 0 || (n >= 4 && strcmp(low + n - 4, "_key") == 0);
}

static void put_quoted(FILE *out, const char *s, size_t n, bool dollar)
{
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = u[i];
        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch == '$' && dollar) {
            fputs("$$", out);
        } else if (ch == '\n') {
            fputs("\\n", out);
        } else if (ch == '\t') {
            fputs("\\t", out);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        } else if (ch == 0xC2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) {
            /* C1 controls (NEL among them) are not printable or fold as
             * line breaks inside quotes: escape the code point. */
            fprintf(out, "\\x%02x", u[++i]);
        } else if (ch == 0xE2 && i + 2 < n && u[i + 1] == 0x80 &&
                   (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
            fputs(u[i + 2] == 0xA8 ? "\\L" : "\\P", out);
            i += 2;
        } else if (ch == 0xEF && i + 2 < n && u[i + 1] == 0xBB && u[i + 2] == 0xBF) {
            fputs("\\uFEFF", out);
            i += 2;
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
}

/* Conservative: only characters that can never start or change YAML
 * syntax. */
static bool plain_key(const char *s, size_t n)
{
    if (n == 0 || n > 256) return false;
    if (!isalnum((unsigned char)s[0]) && s[0] != '/' && s[0] != '_' && s[0] != '.') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '_' && ch != '-' && ch != '.' && ch != '/' && ch != '+')
            return false;
    }
    return true;
}

static void dump_collection(const sl_cfg_node *n, FILE *out, int indent, bool redact);

static void dump_value(const sl_cfg_node *v, FILE *out, int indent, bool redact)
{
    redact = redact || ((const mnode *)v)->secret;
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
        if (sl_redact_wanted(v->scalar, v->scalar_len)) { /* credentials in a URL */
            /* Each hidden part grows by at most "<redacted>". */
            size_t cap = v->scalar_len * 4 + 64;
            char *shown = malloc(cap);
            if (shown)
                put_quoted(out, shown, sl_redact_text(shown, cap, v->scalar, v->scalar_len), true);
            else
                fputs("\"<redacted>\"", out);
            free(shown);
        } else {
            put_quoted(out, v->scalar, v->scalar_len, true);
        }
        fputc('\n', out);
        break;
    case SL_CFG_MAP:
    case SL_CFG_SEQ:
        if (v->n == 0) {
            fputs(v->kind == SL_CFG_MAP ? " {}\n" : " []\n", out);
            break;
        }
        fputc('\n', out);
        dump_collection(v, out, indent + 2, false);
        break;
    }
}

static void dump_collection(const sl_cfg_node *n, FILE *out, int indent, bool redact)
{
    for (size_t i = 0; i < n->n; i++) {
        fprintf(out, "%*s", indent, "");
        if (n->kind == SL_CFG_SEQ) {
            fputc('-', out);
            dump_value(n->items[i], out, indent, redact);
            continue;
        }
        const char *k = n->keys[i];
        size_t klen = strlen(k);
        bool secret = redact || secret_key(k);
        if (klen > DUMP_MAX_IMPLICIT_KEY) {
            fputs("? ", out);
            put_quoted(out, k, klen, false);
            fprintf(out, "\n%*s:", indent, "");
        } else {
            if (plain_key(k, klen))
                fputs(k, out);
            else
                put_quoted(out, k, klen, false);
            fputc(':', out);
        }
        dump_value(n->items[i], out, indent, secret);
    }
}

int sl_cfg_dump(const sl_cfg *c, FILE *out)
{
    if (c->root->n == 0)
        fputs("{}\n", out);
    else
        dump_collection(c->root, out, 0, false);
    return ferror(out) ? -1 : 0;
}
