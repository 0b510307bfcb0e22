/* The schema side of the configuration: the typed getters (sizes,
 * durations, enums, lists, secrets) and the check of a map against a key
 * table, with suggestions for misspelt keys. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_internal.h"
#include "core/fsutil.h"

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
    if (__builtin_mul_overflow(whole, mul, &v) || __builtin_add_overflow(v, part, &v))
        return SL_EINVAL;
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
    if (!s) return SL_EINVAL;
    uint64_t whole, frac, den;
    const char *end = read_decimal(s, &whole, &frac, &den);
    if (!end) return SL_EINVAL;
    if (*end == '\0') {
        if (frac) return SL_EINVAL; /* "0.5" bytes is not a size anyone means */
        *out = whole;
        return 0;
    }
    for (size_t i = 0; i < sizeof size_units / sizeof *size_units; i++)
        if (strcmp(end, size_units[i].unit) == 0) {
            uint64_t v;
            if (scale(whole, frac, den, size_units[i].mul, &v) != 0) return SL_EINVAL;
            if (size_units[i].mul == 1 && frac) return SL_EINVAL;
            *out = v;
            return 0;
        }
    return SL_EINVAL;
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
    if (!s) return SL_EINVAL;
    while (isspace((unsigned char)*s)) s++;
    uint64_t total = 0;
    bool any = false;
    while (*s && !isspace((unsigned char)*s)) {
        uint64_t whole, frac, den, v;
        const char *end = read_decimal(s, &whole, &frac, &den);
        if (!end) return SL_EINVAL;
        size_t ulen = 0;
        while (isalpha((unsigned char)end[ulen])) ulen++;
        if (ulen == 0) {
            /* a bare number is ambiguous (seconds? ms?), except zero */
            if (any || whole || frac || *end) return SL_EINVAL;
            s = end;
            any = true;
            continue;
        }
        size_t u = 0;
        while (u < sizeof units / sizeof *units &&
               !(strlen(units[u].unit) == ulen && strncmp(end, units[u].unit, ulen) == 0))
            u++;
        if (u == sizeof units / sizeof *units) return SL_EINVAL;
        if (scale(whole, frac, den, units[u].us, &v) != 0 ||
            __builtin_add_overflow(total, v, &total))
            return SL_EINVAL;
        s = end + ulen;
        any = true;
    }
    while (isspace((unsigned char)*s)) s++;
    if (!any || *s || total > (uint64_t)INT64_MAX) return SL_EINVAL;
    int64_t ms = (int64_t)(total / 1000);
    if (total > 0 && ms == 0) ms = 1; /* sub-millisecond rounds up, never to "off" */
    *out = ms;
    return 0;
}

bool sl_cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, true;
        if (strcasecmp(s, no[i]) == 0) return *out = false, true;
    }
    return false;
}

bool sl_cfg_parse_int(const char *s, int64_t *out)
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

bool sl_cfg_choice_index(const char *choices, const char *v, int *index)
{
    size_t vn = strlen(v);
    int idx = 0;
    for (const char *p = choices;; idx++) {
        size_t n = choice_len(p);
        if (n == vn && strncmp(p, v, n) == 0) {
            *index = idx;
            return true;
        }
        if (!p[n]) return false;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
    if (!sl_cfg_parse_int(n->scalar, &v) || v < min || v > max) {
        sl_cfg_error(c, n, "'%s' must be an integer from %lld to %lld, got '%s'", key,
                     (long long)min, (long long)max, n->scalar);
        return SL_EINVAL;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
    if (!sl_cfg_parse_bool(n->scalar, &v)) {
        sl_cfg_error(c, n, "'%s' must be true or false, got '%s'", key, n->scalar);
        return SL_EINVAL;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
    if (sl_parse_size(n->scalar, &v) != 0) {
        size_grammar_error(c, n, key);
        return SL_EINVAL;
    }
    if (v < min || v > max) {
        char lo[32], hi[32];
        sl_format_size(min, lo, sizeof lo);
        sl_format_size(max, hi, sizeof hi);
        sl_cfg_error(c, n, "'%s' must be from %s to %s, got '%s'", key, lo, hi, n->scalar);
        return SL_EINVAL;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
    if (sl_parse_duration_ms(n->scalar, &v) != 0) {
        sl_cfg_error(c, n, "'%s' must be a duration like 500ms, 5s, 2m or 1h30m, got '%s'", key,
                     n->scalar);
        return SL_EINVAL;
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
    if (!need_scalar(c, n, key)) return SL_EINVAL;
    if (sl_cfg_choice_index(choices, n->scalar, out)) return 0;
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
    return SL_EINVAL;
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
            return SL_EINVAL;
        }
        out[0] = n->scalar;
        *count = 1;
        return 0;
    }
    if (n->kind != SL_CFG_SEQ) {
        sl_cfg_error(c, n, "'%s' must be a list, not %s", key, kind_name(n->kind));
        return SL_EINVAL;
    }
    if (n->n > cap) {
        sl_cfg_error(c, n, "'%s' has %zu items; at most %zu are allowed", key, n->n, cap);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->kind != SL_CFG_SCALAR) {
            sl_cfg_error(c, n->items[i], "items of '%s' must be single values", key);
            *count = 0;
            return SL_EINVAL;
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
    if ((size_t)snprintf(file_key, sizeof file_key, "%s_file", key) >= sizeof file_key)
        return SL_EINVAL;
    if (sl_cfg_str(c, map, key, NULL, &v) != 0 || sl_cfg_str(c, map, file_key, NULL, &file) != 0)
        return SL_EINVAL;
    if (v && file) {
        sl_cfg_error(c, sl_cfg_get(map, file_key), "give '%s' or '%s', not both", key, file_key);
        return SL_EINVAL;
    }
    if (v) {
        *out = strdup(v);
        return *out ? SL_OK : SL_ENOMEM;
    }
    if (!file) return 0;
    char *text;
    size_t len;
    sl_err err;
    if (sl_read_file(file, 1 << 20, &text, &len, &err) != SL_OK) {
        sl_cfg_error(c, sl_cfg_get(map, file_key), "cannot read secret file: %s", err.msg);
        return SL_EINVAL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = '\0';
    *out = text;
    return 0;
}

bool sl_cfg_has_range(const sl_cfg_key *k)
{
    return k->min < k->max;
}

/* 90000 -> "1m30s"; 1500 -> "1500ms". */
void sl_cfg_format_duration(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    if (ms <= 0 || ms % 1000) {
        snprintf(buf, cap, "%lldms", (long long)ms);
        return;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof units / sizeof *units && o < cap; i++) {
        if (ms < units[i].ms) continue;
        int w = snprintf(buf + o, cap - o, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
        if (w < 0) break;
        o += (size_t)w;
        ms %= units[i].ms;
    }
}

void sl_cfg_duration_range_error(sl_cfg *c, const sl_cfg_node *v, const sl_cfg_key *k)
{
    char lo[32], hi[32];
    sl_cfg_format_duration(k->min, lo, sizeof lo);
    sl_cfg_format_duration(k->max, hi, sizeof hi);
    sl_cfg_error(c, v, "'%s' must be from %s to %s, got '%s'", k->name, lo, hi, v->scalar);
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
        if (sl_cfg_has_range(k))
            sl_cfg_int(c, &map, k->name, 0, k->min, k->max, &i);
        else
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
        if (sl_cfg_has_range(k))
            sl_cfg_size_range(c, &map, k->name, 0, (uint64_t)k->min, (uint64_t)k->max, &s);
        else
            sl_cfg_size(c, &map, k->name, 0, &s);
        break;
    }
    case SL_KEY_DURATION: {
        int64_t d;
        /* A null value (`wait:` alone) is absent: the default applies. */
        if (sl_cfg_duration_ms(c, &map, k->name, 0, &d) == 0 && v->kind == SL_CFG_SCALAR &&
            sl_cfg_has_range(k) && (d < k->min || d > k->max))
            sl_cfg_duration_range_error(c, v, k);
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
