/* Configuration: YAML files (libyaml) loaded into one tree of nodes that
 * remember file:line:column. Several files overlay key by key; ${VAR} and
 * ${VAR:-default} expand from the environment at load time. Consumers
 * (inputs, sinks, parse steps) validate their own part of the tree against
 * a table of keys, and every problem is collected as an error message with
 * its position, so `sluice check` can print them all at once. */
#ifndef SLUICE_CORE_CONFIG_H
#define SLUICE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

typedef enum sl_cfg_kind {
    SL_CFG_NULL,
    SL_CFG_SCALAR,
    SL_CFG_MAP,
    SL_CFG_SEQ,
} sl_cfg_kind;

typedef struct sl_cfg_node sl_cfg_node;
struct sl_cfg_node {
    sl_cfg_kind kind;
    const char *file;   /* the file this node came from */
    int line, col;      /* 1-based */
    const char *scalar; /* SCALAR: value after ${} expansion, NUL-terminated */
    size_t scalar_len;
    bool quoted;                   /* SCALAR was quoted in YAML (so "123" is a string) */
    size_t n;                      /* MAP: pairs, SEQ: items */
    const char **keys;             /* MAP: key strings */
    const sl_cfg_node **key_nodes; /* MAP: key positions (SCALAR nodes) */
    const sl_cfg_node **items;     /* MAP: values, SEQ: items */
};

typedef struct sl_cfg sl_cfg;

sl_cfg *sl_cfg_new(void);
void sl_cfg_free(sl_cfg *c);

/* Parses a file and overlays it on what is loaded: maps merge key by key,
 * scalars replace, and sequences of maps that all have a `name` key merge
 * item by item by name (so an overlay can change one sink); other sequences
 * replace. Errors (YAML syntax, unset ${VAR}, unreadable file) are recorded;
 * returns 0 or the number of errors recorded by this call. */
int sl_cfg_load_file(sl_cfg *c, const char *path);
int sl_cfg_load_string(sl_cfg *c, const char *name, const char *text, size_t len);

/* Unset ${VAR} without a default. By default an error at load. Deferred:
 * the value loads empty and remembers the error, which is recorded only
 * when asked for the nodes that are used (sl_cfg_report_unresolved), so an
 * overlay may replace the value and a tool needing two keys is not stopped
 * by a third. Call before loading. */
void sl_cfg_defer_unset_vars(sl_cfg *c);
/* A variable for ${NAME} when the environment has none (the environment
 * wins), e.g. from a site file; a second call for a name replaces its
 * value. Call before loading. 0, or SL_ENOMEM when out of memory. */
int sl_cfg_add_var(sl_cfg *c, const char *name, const char *value);
/* Where the operator sets variables (a file path), named in the message. */
void sl_cfg_set_env_hint(sl_cfg *c, const char *where);
/* The deferred error of a scalar, or NULL. */
const char *sl_cfg_unresolved(const sl_cfg_node *n);
/* Records the deferred errors in the subtree at n; returns their number. */
int sl_cfg_report_unresolved(sl_cfg *c, const sl_cfg_node *n);

/* The merged tree (an empty map before anything is loaded). */
const sl_cfg_node *sl_cfg_root(const sl_cfg *c);

/* Errors: "file:line:col: message". */
void sl_cfg_error(sl_cfg *c, const sl_cfg_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t sl_cfg_nerrors(const sl_cfg *c);
const char *sl_cfg_error_at(const sl_cfg *c, size_t i);

/* Key tables for validation. */
typedef enum sl_cfg_type {
    SL_KEY_STR,      /* scalar */
    SL_KEY_INT,      /* integer scalar */
    SL_KEY_BOOL,     /* true/false/yes/no/on/off */
    SL_KEY_SIZE,     /* 512, 64KiB, 64MiB, 1GiB, 1TiB, 10MB, 5kB (sl_parse_size) */
    SL_KEY_DURATION, /* 500ms, 5s, 2m, 1h, 1h30m, 250us */
    SL_KEY_ENUM,     /* one of sl_cfg_key.choices, "a|b|c" */
    SL_KEY_LIST,     /* sequence of scalars (a single scalar is accepted as a list of one) */
    SL_KEY_MAP,      /* mapping, validated by the caller */
    SL_KEY_SEQ,      /* sequence of anything, validated by the caller */
    SL_KEY_ANY,
} sl_cfg_type;

/* One key of a plugin's declarative table: what `sluice check` checks,
 * what `sluice keys` and the README print, and what sl_cfg_read fills.
 * Written with designated initializers, so a field added here needs no
 * edit of the tables that do not use it. */
typedef struct sl_cfg_key {
    const char *name;
    sl_cfg_type type;
    bool required;
    const char *choices; /* SL_KEY_ENUM */
    bool secret;         /* never printed by sl_cfg_dump */
    /* The default in configuration syntax ("1MiB", "5s", "raw", "true"),
     * parsed by the key's type; NULL: none (the doc says what absence
     * means). `sluice keys` refuses a default that does not parse. */
    const char *def;
    const char *doc; /* one line: what the key does */
    /* INT, SIZE (bytes), DURATION (ms): the accepted range when min < max,
     * checked by sl_cfg_check and sl_cfg_read and printed with the doc. */
    int64_t min, max;
    /* Where sl_cfg_read stores the value: SL_CFG_AT(struct, member); 0:
     * not read (the caller reads the key itself). The member's type
     * follows the key's: STR const char *, INT int64_t, BOOL bool, SIZE
     * uint64_t, DURATION int64_t milliseconds, ENUM int (the choice's
     * index, -1 without value or default), LIST/MAP/SEQ/ANY
     * const sl_cfg_node * (NULL when absent). */
    size_t at;
    /* MAP keys with keys of their own: their table, for `sluice keys`
     * (rows `parent.key`); the owner still checks the map. */
    const struct sl_cfg_key *sub;
    size_t nsub;
} sl_cfg_key;

#define SL_CFG_AT(type, member) (offsetof(type, member) + 1)
#define SL_CFG_NKEYS(table)     (sizeof(table) / sizeof *(table))

/* Checks that node is a map whose keys are all in keys[] with the right
 * types/values, and that required keys are present. An unknown key gets a
 * suggestion ("did you mean 'paths'?") when one is close. Records errors;
 * returns their number. */
int sl_cfg_check(sl_cfg *c, const sl_cfg_node *node, const sl_cfg_key *keys, size_t nkeys);

/* sl_cfg_check, then every key of the table with an `at` into the struct
 * at out: the value given, else the table's default. A value that does not
 * convert, or lies outside the key's range, is an error and leaves the
 * default. Returns the number of errors recorded (0: out is complete).
 * The declarative form of a create(): the key, its type, default, range
 * and doc are written once, in the table. */
int sl_cfg_read(sl_cfg *c, const sl_cfg_node *map, const sl_cfg_key *keys, size_t nkeys, void *out);
/* A key's default into *value (the member type above; zero without a
 * default): 0, or SL_EINVAL with err->msg when the table's text does not
 * parse as the key's type or lies outside its range. */
int sl_cfg_key_default(const sl_cfg_key *k, void *value, sl_err *err);
/* The type as `sluice keys` names it ("size", "one of raw|json"), and
 * the range as text ("16 to 64MiB"; "" without one). */
const char *sl_cfg_type_name(sl_cfg_type t);
void sl_cfg_key_range(const sl_cfg_key *k, char *buf, size_t cap);

/* Lookups on a map node. Absent key (or NULL map): *out = def, returns 0.
 * A present key that does not convert records an error and returns SL_EINVAL
 * (with *out = def). */
const sl_cfg_node *sl_cfg_get(const sl_cfg_node *map, const char *key);
int sl_cfg_str(sl_cfg *c, const sl_cfg_node *map, const char *key, const char *def,
               const char **out);
int sl_cfg_int(sl_cfg *c, const sl_cfg_node *map, const char *key, int64_t def, int64_t min,
               int64_t max, int64_t *out);
int sl_cfg_bool(sl_cfg *c, const sl_cfg_node *map, const char *key, bool def, bool *out);
int sl_cfg_size(sl_cfg *c, const sl_cfg_node *map, const char *key, uint64_t def, uint64_t *out);
/* A size that must lie in [min, max]: one error, naming the one range, for
 * a value that is out of it or not a size. */
int sl_cfg_size_range(sl_cfg *c, const sl_cfg_node *map, const char *key, uint64_t def,
                      uint64_t min, uint64_t max, uint64_t *out);
int sl_cfg_duration_ms(sl_cfg *c, const sl_cfg_node *map, const char *key, int64_t def,
                       int64_t *out);
/* choices "a|b|c": *out = index of the match. */
int sl_cfg_enum(sl_cfg *c, const sl_cfg_node *map, const char *key, const char *choices, int def,
                int *out);
/* Sequence of scalars (or one scalar): fills up to cap pointers, *n = count.
 * More than cap items is an error. */
int sl_cfg_list(sl_cfg *c, const sl_cfg_node *map, const char *key, const char **out, size_t cap,
                size_t *n);

/* Plain parsers, also used outside config. Return 0 or SL_EINVAL. A size is a
 * whole number of bytes or a number with exactly one of the units KiB, MiB,
 * GiB, TiB (1024s), kB, MB, GB, TB (1000s), B, written without a space
 * ("64MiB", "1.5GiB", "512"); anything else is refused. */
int sl_parse_size(const char *s, uint64_t *out);
/* v as the largest binary unit that divides it ("64MiB", "1000"). */
void sl_format_size(uint64_t v, char *buf, size_t cap);
int sl_parse_duration_ms(const char *s, int64_t *out);

/* Reads a secret: value of key, or the contents of the file named by
 * key_file (trailing newline stripped), or def. Caller frees *out. */
int sl_cfg_secret(sl_cfg *c, const sl_cfg_node *map, const char *key, char **out);

/* Prints the resolved tree as YAML, masking keys that look secret
 * (password, token, secret, key material) as "<redacted>". */
int sl_cfg_dump(const sl_cfg *c, FILE *out);

#endif
