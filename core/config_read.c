/* The declarative reader: a plugin's key table (name, type, default,
 * range, where the value goes) read into its struct in one call, and the
 * helpers `sluice keys` prints tables with. Split from config_schema.c,
 * which checks maps against the same tables. */
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"

const char *sl_cfg_type_name(sl_cfg_type t)
{
    switch (t) {
    case SL_KEY_STR:
        return "string";
    case SL_KEY_INT:
        return "integer";
    case SL_KEY_BOOL:
        return "bool";
    case SL_KEY_SIZE:
        return "size";
    case SL_KEY_DURATION:
        return "duration";
    case SL_KEY_ENUM:
        return "enum";
    case SL_KEY_LIST:
        return "list";
    case SL_KEY_MAP:
        return "map";
    case SL_KEY_SEQ:
        return "sequence";
    case SL_KEY_ANY:
        return "any";
    }
    return "?";
}

void sl_cfg_key_range(const sl_cfg_key *k, char *buf, size_t cap)
{
    char lo[32], hi[32];
    buf[0] = '\0';
    if (!sl_cfg_has_range(k)) return;
    switch (k->type) {
    case SL_KEY_INT:
        snprintf(buf, cap, "%lld to %lld", (long long)k->min, (long long)k->max);
        break;
    case SL_KEY_SIZE:
        sl_format_size((uint64_t)k->min, lo, sizeof lo);
        sl_format_size((uint64_t)k->max, hi, sizeof hi);
        snprintf(buf, cap, "%s to %s", lo, hi);
        break;
    case SL_KEY_DURATION:
        sl_cfg_format_duration(k->min, lo, sizeof lo);
        sl_cfg_format_duration(k->max, hi, sizeof hi);
        snprintf(buf, cap, "%s to %s", lo, hi);
        break;
    default:
        break;
    }
}

/* The member a key fills, by type. */
typedef union key_value {
    const char *str;
    int64_t i;
    bool b;
    uint64_t size;
    int e;
    const sl_cfg_node *node;
} key_value;

static size_t value_size(sl_cfg_type t)
{
    switch (t) {
    case SL_KEY_STR:
        return sizeof(const char *);
    case SL_KEY_INT:
    case SL_KEY_DURATION:
        return sizeof(int64_t);
    case SL_KEY_BOOL:
        return sizeof(bool);
    case SL_KEY_SIZE:
        return sizeof(uint64_t);
    case SL_KEY_ENUM:
        return sizeof(int);
    default:
        return sizeof(const sl_cfg_node *);
    }
}

static void *value_ptr(key_value *v, sl_cfg_type t)
{
    switch (t) {
    case SL_KEY_STR:
        return &v->str;
    case SL_KEY_INT:
    case SL_KEY_DURATION:
        return &v->i;
    case SL_KEY_BOOL:
        return &v->b;
    case SL_KEY_SIZE:
        return &v->size;
    case SL_KEY_ENUM:
        return &v->e;
    default:
        return &v->node;
    }
}

static bool in_range(const sl_cfg_key *k, const key_value *v)
{
    if (!sl_cfg_has_range(k)) return true;
    if (k->type == SL_KEY_SIZE) return v->size >= (uint64_t)k->min && v->size <= (uint64_t)k->max;
    if (k->type == SL_KEY_INT || k->type == SL_KEY_DURATION)
        return v->i >= k->min && v->i <= k->max;
    return true;
}

int sl_cfg_key_default(const sl_cfg_key *k, void *value, sl_err *err)
{
    key_value v = {0};
    if (k->type == SL_KEY_ENUM) v.e = -1;
    const char *d = k->def;
    bool ok = true;
    if (d) {
        switch (k->type) {
        case SL_KEY_STR:
            v.str = d;
            break;
        case SL_KEY_INT:
            ok = sl_cfg_parse_int(d, &v.i);
            break;
        case SL_KEY_BOOL:
            ok = sl_cfg_parse_bool(d, &v.b);
            break;
        case SL_KEY_SIZE:
            ok = sl_parse_size(d, &v.size) == 0;
            break;
        case SL_KEY_DURATION:
            ok = sl_parse_duration_ms(d, &v.i) == 0;
            break;
        case SL_KEY_ENUM:
            ok = k->choices && sl_cfg_choice_index(k->choices, d, &v.e);
            break;
        default:
            ok = false;
            break; /* lists and maps have no textual default */
        }
    }
    if (d && (!ok || !in_range(k, &v))) {
        char range[96];
        sl_cfg_key_range(k, range, sizeof range);
        return sl_errf(err, SL_EINVAL, "key '%s': default '%s' is not a valid %s%s%s", k->name, d,
                       k->type == SL_KEY_ENUM && k->choices ? k->choices
                                                            : sl_cfg_type_name(k->type),
                       *range ? " from " : "", range);
    }
    memcpy(value, value_ptr(&v, k->type), value_size(k->type));
    return SL_OK;
}

int sl_cfg_read(sl_cfg *c, const sl_cfg_node *map, const sl_cfg_key *keys, size_t nkeys, void *out)
{
    size_t before = c->nerrors;
    sl_cfg_check(c, map, keys, nkeys);
    bool is_map = map && map->kind == SL_CFG_MAP;
    for (size_t i = 0; i < nkeys; i++) {
        const sl_cfg_key *k = &keys[i];
        if (!k->at) continue;
        key_value v;
        sl_err err;
        if (sl_cfg_key_default(k, value_ptr(&v, k->type), &err) != SL_OK) {
            /* A table's mistake, not the operator's: said once, at the map. */
            sl_cfg_error(c, map, "internal: %s", err.msg);
            continue;
        }
        const sl_cfg_node *n = is_map ? sl_cfg_get(map, k->name) : NULL;
        if (n && n->kind != SL_CFG_NULL) {
            key_value got = v;
            int rc = SL_OK;
            switch (k->type) {
            case SL_KEY_STR:
                rc = sl_cfg_str(c, map, k->name, v.str, &got.str);
                break;
            case SL_KEY_INT:
                rc = sl_cfg_has_range(k)
                         ? sl_cfg_int(c, map, k->name, v.i, k->min, k->max, &got.i)
                         : sl_cfg_int(c, map, k->name, v.i, INT64_MIN, INT64_MAX, &got.i);
                break;
            case SL_KEY_BOOL:
                rc = sl_cfg_bool(c, map, k->name, v.b, &got.b);
                break;
            case SL_KEY_SIZE:
                rc = sl_cfg_size_range(
                    c, map, k->name, v.size, sl_cfg_has_range(k) ? (uint64_t)k->min : 0,
                    sl_cfg_has_range(k) ? (uint64_t)k->max : UINT64_MAX, &got.size);
                break;
            case SL_KEY_DURATION:
                rc = sl_cfg_duration_ms(c, map, k->name, v.i, &got.i);
                if (rc == SL_OK && !in_range(k, &got)) {
                    sl_cfg_duration_range_error(c, n, k);
                    rc = SL_EINVAL;
                }
                break;
            case SL_KEY_ENUM:
                rc = sl_cfg_enum(c, map, k->name, k->choices ? k->choices : "", v.e, &got.e);
                break;
            default:
                got.node = n;
                break; /* checked by sl_cfg_check, read by the caller */
            }
            if (rc == SL_OK) v = got;
        }
        memcpy((char *)out + k->at - 1, value_ptr(&v, k->type), value_size(k->type));
    }
    return (int)(c->nerrors - before);
}
