/* Loading: YAML text to the configuration tree, with ${VAR} expansion,
 * byte-exact error positions, duplicate-key checks, the bounds of
 * config_internal.h, and the overlay of each further file on what was
 * loaded before. */
#include "core/config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config_internal.h"
#include "core/fsutil.h"

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
    return ix->slots ? SL_OK : SL_ENOMEM;
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
        sl_cfg_errorf_at(L->c, L->file, line, col,
                         "configuration too large (more than %d nodes or %u MiB)", CFG_MAX_NODES,
                         CFG_MAX_MEMORY >> 20);
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
    return sl_cfg_pdup(L->c, full, strlen(full));
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
        sl_cfg_errorf_at(c, L->file, line, col, "value contains a NUL character");
        L->errors++;
        *out_len = 0;
        return sl_cfg_pdup(c, "", 0);
    }
    if (!memchr(s, '$', n)) {
        *out_len = n;
        return sl_cfg_pdup(c, s, n);
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
                sl_cfg_errorf_at(c, L->file, line, col,
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
                sl_cfg_errorf_at(
                    c, L->file, ln, cl,
                    "bad variable reference '%.*s' (names are letters, digits and '_')",
                    (int)(end - (s + i) + 1 > 200 ? 200 : end - (s + i) + 1), s + i);
                failed = true;
                i = (size_t)(end - s) + 1;
                continue;
            }
            memcpy(name, s + i + 2, name_n);
            name[name_n] = '\0';
            const char *v = sl_cfg_lookup_var(c, name);
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
                    sl_cfg_errorf_at(c, L->file, ln, cl, "%s", unset_text(c, name).s);
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
            sl_cfg_errorf_at(c, L->file, line, col, "value longer than %u bytes after expansion",
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
        return sl_cfg_pdup(c, "", 0);
    }
    char *r = sl_cfg_pdup(c, buf, len);
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
        sl_cfg_errorf_at(L->c, L->file, 1, 1, "out of memory while parsing YAML");
    } else if (p->error == YAML_READER_ERROR) {
        /* Encoding errors carry a byte offset instead of a mark. */
        int line = 1, col = 1;
        if (L->precise) byte_position(L, p->problem_offset, &line, &col);
        sl_cfg_errorf_at(L->c, L->file, line, col, "YAML syntax error: %s (at byte %zu)",
                         p->problem ? p->problem : "invalid input", p->problem_offset);
    } else {
        const char *what = p->problem ? p->problem : "invalid YAML";
        sl_cfg_errorf_at(L->c, L->file, (int)p->problem_mark.line + 1,
                         (int)p->problem_mark.column + 1, "YAML syntax error: %s%s%s", what,
                         p->context ? " " : "", p->context ? p->context : "");
    }
    L->errors++;
}

static sl_cfg_node *parse_node(loader *L, yaml_event_t *ev, int depth);

static sl_cfg_node *parse_key(loader *L, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (ev->type != YAML_SCALAR_EVENT) {
        sl_cfg_errorf_at(L->c, L->file, line, col, "map keys must be plain strings");
        L->errors++;
        return NULL;
    }
    if (ev->data.scalar.anchor) {
        sl_cfg_errorf_at(L->c, L->file, line, col, "YAML anchors and aliases are not supported");
        L->errors++;
        return NULL;
    }
    size_t n = ev->data.scalar.length;
    if (n > CFG_MAX_SCALAR || memchr(ev->data.scalar.value, '\0', n)) {
        sl_cfg_errorf_at(L->c, L->file, line, col, "%s",
                         n > CFG_MAX_SCALAR ? "key too long" : "key contains a NUL character");
        L->errors++;
        return NULL;
    }
    /* Keys are taken literally: the environment fills in values, it never
     * changes the shape of the configuration. */
    mnode *k = sl_cfg_new_node(L->c, SL_CFG_SCALAR, L->file, line, col);
    char *v = k ? sl_cfg_pdup(L->c, (const char *)ev->data.scalar.value, n) : NULL;
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
        sl_cfg_errorf_at(L->c, L->file, line, col, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        L->errors++;
        return NULL;
    }
    mnode *n = sl_cfg_new_node(L->c, is_map ? SL_CFG_MAP : SL_CFG_SEQ, L->file, line, col);
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
        if (sl_cfg_grow(L->c, n) != 0) {
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
            sl_cfg_errorf_at(L->c, L->file, line, col, "value longer than %u bytes",
                             CFG_MAX_SCALAR);
            L->errors++;
            return NULL;
        }
        bool null = is_null_scalar(ev);
        mnode *n = sl_cfg_new_node(L->c, null ? SL_CFG_NULL : SL_CFG_SCALAR, L->file, line, col);
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
        sl_cfg_errorf_at(L->c, L->file, line, col, "unexpected YAML event");
        L->errors++;
        return NULL;
    }
anchors:
    /* Aliases let a small file expand without bound ("billion laughs"), and
     * configs read better without them, so they are refused outright. */
    sl_cfg_errorf_at(L->c, L->file, line, col, "YAML anchors and aliases are not supported");
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
    if (idx_init(&ix, d->pub.n + src->n) != 0) return SL_ENOMEM;
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
        if (sl_cfg_grow(c, d) != 0) {
            rc = SL_ENOMEM;
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
    loader L = {.c = c, .file = sl_cfg_pdup(c, name, strlen(name))};
    if (!L.file) {
        sl_cfg_errorf_at(c, name, 1, 1, "configuration too large (more than %u MiB)",
                         CFG_MAX_MEMORY >> 20);
        return 1;
    }
    if (len > CFG_MAX_FILE_BYTES) {
        sl_cfg_errorf_at(c, L.file, 1, 1, "file larger than %u bytes", CFG_MAX_FILE_BYTES);
        return 1;
    }
    L.text = (const unsigned char *)text;
    L.len = len;
    L.precise = !(len >= 2 && ((L.text[0] == 0xFF && L.text[1] == 0xFE) ||
                               (L.text[0] == 0xFE && L.text[1] == 0xFF)));
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) L.base = 3;
    L.cur_byte = L.base;
    if (!yaml_parser_initialize(&L.parser)) {
        sl_cfg_errorf_at(c, L.file, 1, 1, "out of memory while parsing YAML");
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
                sl_cfg_errorf_at(c, L.file, (int)ev.start_mark.line + 1,
                                 (int)ev.start_mark.column + 1, "only one YAML document per file");
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
        sl_cfg_errorf_at(c, path, 1, 1, "cannot read configuration: %s", err.msg);
        return 1;
    }
    int rc = sl_cfg_load_string(c, path, text, len);
    free(text);
    return rc;
}
