/* The configuration tree: its memory pool, the error list, variables and
 * lookup. Loading, the typed getters with the key-table checks, and the
 * dump are files of their own that share the node representation through
 * core/config_internal.h. */
#include "core/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/redact.h"

#define POOL_BLOCK (64u << 10)

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

char *sl_cfg_pdup(sl_cfg *c, const char *s, size_t n)
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

void sl_cfg_errorf_at(sl_cfg *c, const char *file, int line, int col, const char *fmt, ...)
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

mnode *sl_cfg_new_node(sl_cfg *c, sl_cfg_kind kind, const char *file, int line, int col)
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
int sl_cfg_grow(sl_cfg *c, mnode *n)
{
    if (n->pub.n < n->cap) return 0;
    size_t cap = n->cap ? n->cap * 2 : 4;
    bool map = n->pub.kind == SL_CFG_MAP;
    const sl_cfg_node **items = palloc(c, cap * sizeof *items);
    const char **keys = map ? palloc(c, cap * sizeof *keys) : NULL;
    const sl_cfg_node **key_nodes = map ? palloc(c, cap * sizeof *key_nodes) : NULL;
    if (!items || (map && (!keys || !key_nodes))) return SL_ENOMEM;
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
    mnode *root = sl_cfg_new_node(c, SL_CFG_MAP, "<no configuration>", 1, 1);
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
    c->env_hint = where ? sl_cfg_pdup(c, where, strlen(where)) : NULL;
}

int sl_cfg_add_var(sl_cfg *c, const char *name, const char *value)
{
    for (size_t i = 0; i < c->nvars; i++)
        if (strcmp(c->var_names[i], name) == 0) {
            const char *v = sl_cfg_pdup(c, value, strlen(value));
            if (!v) return SL_ENOMEM;
            c->var_values[i] = v;
            return 0;
        }
    if (c->nvars == c->cap_vars) {
        size_t cap = c->cap_vars ? c->cap_vars * 2 : 16;
        const char **n = palloc(c, cap * sizeof *n), **v = palloc(c, cap * sizeof *v);
        if (!n || !v) return SL_ENOMEM;
        if (c->nvars) {
            memcpy(n, c->var_names, c->nvars * sizeof *n);
            memcpy(v, c->var_values, c->nvars * sizeof *v);
        }
        c->var_names = n, c->var_values = v, c->cap_vars = cap;
    }
    const char *dn = sl_cfg_pdup(c, name, strlen(name)), *dv = sl_cfg_pdup(c, value, strlen(value));
    if (!dn || !dv) return SL_ENOMEM;
    c->var_names[c->nvars] = dn;
    c->var_values[c->nvars++] = dv;
    return 0;
}

const char *sl_cfg_lookup_var(const sl_cfg *c, const char *name)
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
        sl_cfg_errorf_at(c, NULL, 0, 0, "%s", msg);
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

const sl_cfg_node *sl_cfg_get(const sl_cfg_node *map, const char *key)
{
    if (!map || map->kind != SL_CFG_MAP) return NULL;
    for (size_t i = map->n; i-- > 0;)
        if (strcmp(map->keys[i], key) == 0) return map->items[i];
    return NULL;
}
