/* The record JSON the Kafka sink writes with `value: json` (shipper/
 * recjson.c), read back by the Kafka input's `format: json`. A decoder of
 * what arrives from the network: anything that is not such an object is
 * SL_EPARSE, never a crash, and what it stores is bounded by what the
 * caller's reserve gives. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/kafka_record.h"
#include "core/err.h"

typedef struct decoder {
    sl_batch *b;
    sl_kafka_reserve_fn reserve;
    void *arg;
} decoder;

static sl_slice copy(decoder *d, const void *p, size_t n, bool *ok)
{
    char *at = n ? d->reserve(d->arg, n) : "";
    if (!at) {
        *ok = false;
        return (sl_slice){"", 0};
    }
    if (n) memcpy(at, p, n);
    return (sl_slice){at, n};
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS[.fraction]Z", as the record JSON writes it, and
 * only a real date (2024-02-30 is refused, not moved to March) whose
 * nanoseconds fit the record's int64 (years 1677 to 2262: a later year
 * overflowed the multiplication before). */
static bool parse_time_utc(const char *s, int64_t *ns)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        se > 60)
        return false;
    const char *p = s + 19;
    int64_t frac = 0, scale = 1000000000;
    if (*p == '.') {
        const char *f = ++p;
        for (; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) scale /= 10, frac += (*p - '0') * scale;
        if (p == f || p - f > 9) return false;
    }
    if (strcmp(p, "Z") != 0) return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    int64_t t = (int64_t)timegm(&tm), whole;
    return !__builtin_mul_overflow(t, (int64_t)1000000000, &whole) &&
           !__builtin_add_overflow(whole, frac, ns);
}

/* One JSON value as a field of r (strings unescaped, the rest as text). */
static bool add_json_field(decoder *d, sl_record *r, const char *key, json_t *v, uint8_t flags)
{
    bool ok = true;
    int type = SL_V_STRING;
    char num[64];
    const char *text = NULL;
    size_t n = 0;
    char *dumped = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        text = json_string_value(v), n = json_string_length(v);
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        text = num, type = SL_V_NUMBER;
        break;
    case JSON_REAL:
        n = (size_t)snprintf(num, sizeof num, "%.17g", json_real_value(v));
        text = num, type = SL_V_NUMBER;
        break;
    case JSON_TRUE:
        text = "true", n = 4, type = SL_V_TRUE;
        break;
    case JSON_FALSE:
        text = "false", n = 5, type = SL_V_FALSE;
        break;
    case JSON_NULL:
        text = "null", n = 4, type = SL_V_NULL;
        break;
    default:
        dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dumped) return false;
        text = dumped, n = strlen(dumped);
        type = json_is_object(v) ? SL_V_OBJECT : SL_V_ARRAY;
    }
    sl_slice k = copy(d, key, strlen(key), &ok);
    sl_slice val = copy(d, text, n, &ok);
    free(dumped);
    if (!ok) return false;
    sl_field *f = sl_record_add_field(d->b, r, k, val, type);
    if (!f) return false;
    f->flags |= flags;
    return true;
}

/* The record JSON the Kafka sink writes with `value: json`:
 * {"time":..., "line":..., "fields":{...}, "labels":{...}}. Fields that are
 * also labels appear in both; they come back once, as labels. */
int sl_kafka_record_decode(sl_batch *b, sl_record *r, const char *p, size_t n,
                           sl_kafka_reserve_fn reserve, void *arg)
{
    decoder dd = {b, reserve, arg}, *d = &dd;
    json_error_t jerr;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return SL_EPARSE;
    }
    json_t *line = json_object_get(root, "line");
    json_t *time = json_object_get(root, "time");
    json_t *fields = json_object_get(root, "fields");
    json_t *labels = json_object_get(root, "labels");
    /* What the writer never writes makes the message not its record JSON
     * (shipped as it came, counted by the caller): a time that is not a
     * real UTC time of its format. (Labels keep their type: a label
     * promoted from a number is written as one.) */
    int64_t ns = 0;
    bool bad = !json_is_string(line) || (fields && !json_is_object(fields)) ||
               (labels && !json_is_object(labels)) ||
               (time && !(json_is_string(time) && parse_time_utc(json_string_value(time), &ns)));
    if (bad) {
        json_decref(root);
        return SL_EPARSE;
    }
    bool ok = true;
    r->line = copy(d, json_string_value(line), json_string_length(line), &ok);
    if (time) r->time_ns = ns;
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) ok = ok && add_json_field(d, r, k, v, SL_FF_LABEL);
    json_object_foreach(fields, k, v)
    {
        json_t *same = labels ? json_object_get(labels, k) : NULL;
        if (same && json_equal(same, v)) continue;
        ok = ok && add_json_field(d, r, k, v, 0);
    }
    json_decref(root);
    if (!ok) r->flags |= SL_RF_TRUNCATED;
    return SL_OK;
}
