/* What the configuration's files share and nothing else may use: the
 * mutable node representation (mnode, in one memory pool, with its secret
 * and unresolved-variable marks), the limits, and the tree helpers.
 * core/config.h stays the public header.
 *
 *   config.c         the tree, its pool, errors, variables, lookup
 *   config_load.c    YAML to the tree: ${VAR} expansion, positions, overlays
 *   config_schema.c  typed getters, sizes and durations, key-table checks
 *   config_read.c    key tables read into a plugin's struct (sl_cfg_read)
 *   config_dump.c    the tree back to YAML, secrets redacted */
#ifndef SLUICE_CORE_CONFIG_INTERNAL_H
#define SLUICE_CORE_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

/* Bounds that keep a hostile or broken file from eating the agent. */
#define CFG_MAX_FILE_BYTES (16u << 20)
#define CFG_MAX_DEPTH      64
#define CFG_MAX_NODES      1000000
#define CFG_MAX_ERRORS     1000
#define CFG_MAX_SCALAR     (1u << 20)
/* Everything the tree owns (nodes, strings, arrays) across all loads. */
#define CFG_MAX_MEMORY (256u << 20)

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

/* A copy of s[0..n) in c's pool (NUL-terminated); NULL past the bound. */
char *sl_cfg_pdup(sl_cfg *c, const char *s, size_t n);
void sl_cfg_errorf_at(sl_cfg *c, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
mnode *sl_cfg_new_node(sl_cfg *c, sl_cfg_kind kind, const char *file, int line, int col);
/* Makes room for one more entry of a map or sequence: 0, or SL_ENOMEM past the
 * memory bound. */
int sl_cfg_grow(sl_cfg *c, mnode *n);
/* The environment first, then sl_cfg_add_var's names; NULL when unset. */
const char *sl_cfg_lookup_var(const sl_cfg *c, const char *name);

static inline bool errors_full(const sl_cfg *c)
{
    return c->nerrors >= CFG_MAX_ERRORS;
}

/* Shared by config_schema.c (checks) and config_read.c (the reader). */
/* Whether v is one of choices ("a|b|c"); its position into *index. */
bool sl_cfg_choice_index(const char *choices, const char *v, int *index);
bool sl_cfg_parse_bool(const char *s, bool *out);
bool sl_cfg_parse_int(const char *s, int64_t *out);
bool sl_cfg_has_range(const sl_cfg_key *k);
void sl_cfg_format_duration(int64_t ms, char *buf, size_t cap);
void sl_cfg_duration_range_error(sl_cfg *c, const sl_cfg_node *v, const sl_cfg_key *k);

#endif
