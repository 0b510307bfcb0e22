#include "collector/loki_push_decode.h"

#include <jansson.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/json_str.h"
#include "core/utf8.h"

/* ---- growing arrays (each element is backed by body bytes, so the body
 * length bounds them) ---- */

/* Counts n more bytes of memory against the push's budget (max_decoded):
 * false, and `over` set, when they do not fit. */
static bool charge(sl_lp_push *p, size_t n)
{
    if (n > p->mem_max - p->mem) {
        p->over = true;
        return false;
    }
    p->mem += n;
    return true;
}

static int grow(sl_lp_push *p, void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) return SL_OK;
    uint64_t nc = *cap ? (uint64_t)*cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (nc > UINT32_MAX / 2) return SL_ENOMEM;
    if (!charge(p, (size_t)(nc - *cap) * elem)) return SL_EFULL;
    void *np = realloc(*arr, nc * elem);
    if (!np) return SL_ENOMEM;
    *arr = np;
    *cap = (uint32_t)nc;
    return SL_OK;
}

static sl_lp_pair *add_pair(sl_lp_push *p)
{
    if (grow(p, (void **)&p->pairs, &p->cap_pairs, p->npairs + 1, sizeof *p->pairs)) return NULL;
    return &p->pairs[p->npairs++];
}

static sl_lp_entry *add_entry(sl_lp_push *p)
{
    if (grow(p, (void **)&p->entries, &p->cap_entries, p->nentries + 1, sizeof *p->entries))
        return NULL;
    sl_lp_entry *e = &p->entries[p->nentries++];
    memset(e, 0, sizeof *e);
    e->meta = p->npairs;
    return e;
}

static sl_lp_stream *add_stream(sl_lp_push *p)
{
    if (grow(p, (void **)&p->streams, &p->cap_streams, p->nstreams + 1, sizeof *p->streams))
        return NULL;
    sl_lp_stream *s = &p->streams[p->nstreams++];
    memset(s, 0, sizeof *s);
    s->labels = p->npairs;
    s->entries = p->nentries;
    return s;
}

/* Why an array could not grow: the budget (a 413) or malloc. */
static int no_room(const sl_lp_push *p, sl_err *err)
{
    if (p->over)
        return sl_errf(err, SL_EFULL,
                       "decoded push takes more than max_decoded_bytes (%zu) in memory",
                       p->mem_max);
    return sl_errf(err, SL_ENOMEM, "out of memory decoding a push");
}

/* ---- the label string ---- */

static bool name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static void skip_space(const char *p, size_t n, size_t *i)
{
    while (*i < n && (p[*i] == ' ' || p[*i] == '\t' || p[*i] == '\n' || p[*i] == '\r')) (*i)++;
}

/* A quoted value at p[*i] (the opening quote), unescaped to o. Returns the
 * bytes written, or -1 with why. Every escape is at least as long as what
 * it stands for (\U0010FFFF is 10 bytes for 4), so o needs no more room
 * than the text. */
static ptrdiff_t unquote(const char *p, size_t n, size_t *i, char *o, sl_err *err)
{
    size_t k = *i + 1, w = 0;
    for (;;) {
        if (k >= n) return sl_errf(err, SL_EPARSE, "unterminated label value"), -1;
        unsigned char c = (unsigned char)p[k];
        if (c == '"') break;
        if (c == '\n') return sl_errf(err, SL_EPARSE, "newline in a label value"), -1;
        if (c != '\\') {
            o[w++] = (char)c;
            k++;
            continue;
        }
        if (k + 1 >= n) return sl_errf(err, SL_EPARSE, "unterminated escape in a label value"), -1;
        unsigned char e = (unsigned char)p[k + 1];
        k += 2;
        uint32_t cp;
        int digits = 0;
        switch (e) {
        case '\\':
            o[w++] = '\\';
            continue;
        case '"':
            o[w++] = '"';
            continue;
        case '\'':
            o[w++] = '\'';
            continue;
        case 'n':
            o[w++] = '\n';
            continue;
        case 't':
            o[w++] = '\t';
            continue;
        case 'r':
            o[w++] = '\r';
            continue;
        case 'a':
            o[w++] = '\a';
            continue;
        case 'b':
            o[w++] = '\b';
            continue;
        case 'f':
            o[w++] = '\f';
            continue;
        case 'v':
            o[w++] = '\v';
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            if (e >= '0' && e <= '7') {
                if (k + 2 > n || p[k] < '0' || p[k] > '7' || p[k + 1] < '0' || p[k + 1] > '7')
                    return sl_errf(err, SL_EPARSE, "bad octal escape in a label value"), -1;
                cp = (uint32_t)((e - '0') * 64 + (p[k] - '0') * 8 + (p[k + 1] - '0'));
                if (cp > 255) return sl_errf(err, SL_EPARSE, "octal escape above \\377"), -1;
                k += 2;
                o[w++] = (char)cp;
                continue;
            }
            return sl_errf(err, SL_EPARSE, "unknown escape \\%c in a label value",
                           e >= 0x20 && e < 0x7f ? e : '?'),
                   -1;
        }
        if (k + (size_t)digits > n)
            return sl_errf(err, SL_EPARSE, "short \\%c escape in a label value", e), -1;
        cp = 0;
        for (int d = 0; d < digits; d++) {
            int h = sl_json_hexval((unsigned char)p[k + (size_t)d]);
            if (h < 0) return sl_errf(err, SL_EPARSE, "bad hex digit in a label value"), -1;
            cp = cp * 16 + (uint32_t)h;
        }
        k += (size_t)digits;
        if (e == 'x') {
            o[w++] = (char)cp; /* a byte, as Go does */
            continue;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return sl_errf(err, SL_EPARSE, "escape is not a Unicode code point"), -1;
        w += sl_json_utf8_put(o + w, cp);
    }
    *i = k + 1;
    return (ptrdiff_t)w;
}

int sl_lp_parse_labels(const char *p, size_t n, char *scratch, size_t cap, size_t *used,
                       sl_lp_pair *out, size_t cap_pairs, size_t *npairs, sl_err *err)
{
    size_t i = 0, np = 0, u = *used;
    *npairs = 0;
    skip_space(p, n, &i);
    if (i >= n || p[i] != '{') return sl_errf(err, SL_EPARSE, "labels must start with '{'");
    i++;
    skip_space(p, n, &i);
    if (i < n && p[i] == '}') goto end;
    for (;;) {
        skip_space(p, n, &i);
        size_t ns = i;
        if (i >= n || !name_start((unsigned char)p[i]))
            return sl_errf(err, SL_EPARSE, "expected a label name at byte %zu", i);
        while (i < n && name_char((unsigned char)p[i])) i++;
        size_t ne = i;
        skip_space(p, n, &i);
        if (i >= n || p[i] != '=')
            return sl_errf(err, SL_EPARSE, "expected '=' after label name at byte %zu", i);
        i++;
        skip_space(p, n, &i);
        if (i >= n || p[i] != '"')
            return sl_errf(err, SL_EPARSE, "expected a quoted label value at byte %zu", i);
        if (np >= cap_pairs)
            return sl_errf(err, SL_EPARSE, "more than %zu labels in a stream", cap_pairs);
        if (cap - u < n - i) return sl_errf(err, SL_EPARSE, "label values exceed scratch space");
        ptrdiff_t w = unquote(p, n, &i, scratch + u, err);
        if (w < 0) return SL_EPARSE;
        sl_slice name = {p + ns, ne - ns};
        for (size_t j = 0; j < np; j++)
            if (out[j].name.n == name.n && !memcmp(out[j].name.p, name.p, name.n))
                return sl_errf(err, SL_EPARSE, "duplicate label name '%.*s'",
                               (int)(name.n > 64 ? 64 : name.n), name.p);
        out[np].name = name;
        out[np].value = (sl_slice){scratch + u, (size_t)w};
        np++;
        u += (size_t)w;
        skip_space(p, n, &i);
        if (i < n && p[i] == ',') {
            i++;
            skip_space(p, n, &i);
            if (i < n && p[i] == '}') break; /* a trailing comma, as PromQL allows */
            continue;
        }
        if (i < n && p[i] == '}') break;
        return sl_errf(err, SL_EPARSE, "expected ',' or '}' at byte %zu", i);
    }
end:
    i++; /* the '}' */
    skip_space(p, n, &i);
    if (i != n) return sl_errf(err, SL_EPARSE, "text after the closing '}'");
    *used = u;
    *npairs = np;
    return SL_OK;
}

/* ---- protobuf (logproto.PushRequest) ---- */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static bool varint(pb *b, uint64_t *v)
{
    uint64_t r = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end) return false;
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Reads the next field's tag; for length-delimited ones also its bytes. */
static int next_field(pb *b, uint32_t *field, int *wt, pb *sub, uint64_t *v, sl_err *err)
{
    uint64_t tag;
    if (!varint(b, &tag)) return sl_errf(err, SL_EPARSE, "truncated protobuf tag");
    *field = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    if (*field == 0) return sl_errf(err, SL_EPARSE, "protobuf field number 0");
    switch (*wt) {
    case 0:
        if (!varint(b, v)) return sl_errf(err, SL_EPARSE, "truncated protobuf varint");
        return SL_OK;
    case 1:
        if (b->end - b->p < 8) return sl_errf(err, SL_EPARSE, "truncated protobuf fixed64");
        b->p += 8;
        return SL_OK;
    case 5:
        if (b->end - b->p < 4) return sl_errf(err, SL_EPARSE, "truncated protobuf fixed32");
        b->p += 4;
        return SL_OK;
    case 2: {
        uint64_t len;
        if (!varint(b, &len) || len > (uint64_t)(b->end - b->p))
            return sl_errf(err, SL_EPARSE, "protobuf length past the end of the body");
        sub->p = b->p;
        sub->end = b->p + len;
        b->p += len;
        return SL_OK;
    }
    default:
        return sl_errf(err, SL_EPARSE, "protobuf wire type %d is not supported", *wt);
    }
}

static int pb_pair(sl_lp_push *p, pb m, sl_err *err)
{
    sl_lp_pair *pair = add_pair(p);
    if (!pair) return no_room(p, err);
    memset(pair, 0, sizeof *pair);
    while (m.p < m.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v;
        int rc = next_field(&m, &f, &wt, &sub, &v, err);
        if (rc) return rc;
        if ((f == 1 || f == 2) && wt == 2) {
            sl_slice s = {(const char *)sub.p, (size_t)(sub.end - sub.p)};
            if (f == 1)
                pair->name = s;
            else
                pair->value = s;
        }
    }
    if (pair->name.n == 0) return sl_errf(err, SL_EPARSE, "structured metadata without a name");
    p->text_bytes += pair->name.n + pair->value.n;
    return SL_OK;
}

static int pb_timestamp(pb m, int64_t *ts, sl_err *err)
{
    int64_t sec = 0, nanos = 0;
    while (m.p < m.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v = 0;
        int rc = next_field(&m, &f, &wt, &sub, &v, err);
        if (rc) return rc;
        if (f == 1 && wt == 0) sec = (int64_t)v;
        if (f == 2 && wt == 0) nanos = (int32_t)(uint32_t)v;
    }
    /* Timestamps Loki can hold: after 1970 and before 2262 in ns. */
    if (sec < 0 || sec > INT64_MAX / 1000000000 - 1 || nanos < 0 || nanos > 999999999)
        return sl_errf(err, SL_EPARSE, "entry timestamp out of range");
    *ts = sec * 1000000000 + nanos;
    return SL_OK;
}

static int pb_entry(sl_lp_push *p, pb m, sl_err *err)
{
    sl_lp_entry *e = add_entry(p);
    if (!e) return no_room(p, err);
    uint32_t idx = p->nentries - 1;
    bool have_ts = false;
    while (m.p < m.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v;
        int rc = next_field(&m, &f, &wt, &sub, &v, err);
        if (rc) return rc;
        if (wt != 2) continue;
        if (f == 1) {
            int64_t ts = 0;
            if ((rc = pb_timestamp(sub, &ts, err))) return rc;
            p->entries[idx].ts_ns = ts;
            have_ts = true;
        } else if (f == 2) {
            p->entries[idx].line = (sl_slice){(const char *)sub.p, (size_t)(sub.end - sub.p)};
        } else if (f == 3) {
            if ((rc = pb_pair(p, sub, err))) return rc;
            p->entries[idx].nmeta++;
        }
    }
    if (!have_ts) return sl_errf(err, SL_EPARSE, "entry without a timestamp");
    p->text_bytes += p->entries[idx].line.n;
    return SL_OK;
}

static int pb_stream(sl_lp_push *p, pb m, sl_err *err)
{
    sl_lp_stream *s = add_stream(p);
    if (!s) return no_room(p, err);
    uint32_t idx = p->nstreams - 1;
    pb labels = {0};
    bool have_labels = false;
    /* Labels first, wherever they are, so a stream's pairs are contiguous
     * before its entries' metadata. */
    pb scan = m;
    while (scan.p < scan.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v;
        int rc = next_field(&scan, &f, &wt, &sub, &v, err);
        if (rc) return rc;
        if (f == 1 && wt == 2) {
            labels = sub;
            have_labels = true;
        }
    }
    if (!have_labels) return sl_errf(err, SL_EPARSE, "stream without labels");
    sl_lp_pair tmp[SL_LP_MAX_LABELS];
    size_t np;
    size_t ln = (size_t)(labels.end - labels.p);
    int rc = sl_lp_parse_labels((const char *)labels.p, ln, p->scratch, p->scratch_cap,
                                &p->scratch_len, tmp, SL_LP_MAX_LABELS, &np, err);
    if (rc) return rc;
    for (size_t i = 0; i < np; i++) {
        sl_lp_pair *pair = add_pair(p);
        if (!pair) return no_room(p, err);
        *pair = tmp[i];
        p->text_bytes += tmp[i].name.n + tmp[i].value.n;
    }
    p->streams[idx].nlabels = (uint32_t)np;
    p->streams[idx].entries = p->nentries;
    while (m.p < m.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v;
        if ((rc = next_field(&m, &f, &wt, &sub, &v, err))) return rc;
        if (f == 2 && wt == 2) {
            if ((rc = pb_entry(p, sub, err))) return rc;
            p->streams[idx].nentries++;
        }
    }
    return SL_OK;
}

static int decode_protobuf(sl_lp_push *p, const char *body, size_t n, sl_err *err)
{
    /* Unescaped label values are never longer than the body. */
    if (!charge(p, n)) return no_room(p, err);
    p->scratch = malloc(n ? n : 1);
    if (!p->scratch) return sl_errf(err, SL_ENOMEM, "out of memory decoding a push");
    p->scratch_cap = n;
    pb m = {(const uint8_t *)body, (const uint8_t *)body + n};
    while (m.p < m.end) {
        uint32_t f;
        int wt;
        pb sub;
        uint64_t v;
        int rc = next_field(&m, &f, &wt, &sub, &v, err);
        if (rc) return rc;
        if (f == 1 && wt == 2 && (rc = pb_stream(p, sub, err))) return rc;
    }
    return SL_OK;
}

/* ---- JSON ---- */

static int json_ts(json_t *v, int64_t *ts, sl_err *err)
{
    const char *s = json_string_value(v);
    if (!s) return sl_errf(err, SL_EPARSE, "entry timestamp must be a string of nanoseconds");
    size_t n = json_string_length(v);
    if (n == 0 || n > 19) return sl_errf(err, SL_EPARSE, "entry timestamp out of range");
    int64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return sl_errf(err, SL_EPARSE, "entry timestamp must be a string of nanoseconds");
        if (r > (INT64_MAX - (s[i] - '0')) / 10)
            return sl_errf(err, SL_EPARSE, "entry timestamp out of range");
        r = r * 10 + (s[i] - '0');
    }
    *ts = r;
    return SL_OK;
}

static int json_pairs(sl_lp_push *p, json_t *obj, const char *what, uint32_t *count, sl_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v)) return sl_errf(err, SL_EPARSE, "%s values must be strings", what);
        size_t kn = strlen(k);
        if (kn == 0) return sl_errf(err, SL_EPARSE, "%s with an empty name", what);
        sl_lp_pair *pair = add_pair(p);
        if (!pair) return no_room(p, err);
        pair->name = (sl_slice){k, kn};
        pair->value = (sl_slice){json_string_value(v), json_string_length(v)};
        p->text_bytes += kn + pair->value.n;
        (*count)++;
    }
    return SL_OK;
}

static bool label_name_ok(sl_slice s)
{
    if (s.n == 0 || !name_start((unsigned char)s.p[0])) return false;
    for (size_t i = 1; i < s.n; i++)
        if (!name_char((unsigned char)s.p[i])) return false;
    return true;
}

/* What jansson allocates for a JSON text, from its tokens, before it is
 * parsed: a 3-byte `[],` or `{},` costs jansson 150-250 bytes, so a 64 MiB
 * text of them would take gigabytes. jansson 2.14's sizes on x86-64 with
 * glibc's chunk headers, rounded up: an object (72 bytes) and its first
 * hash table (8 buckets, 128); an array (40) and its first table (8
 * slots, 64); a string (32) and its copy (32 at least); a number (24); an
 * object member (a 56-byte pair plus the key); an array slot (8, doubled
 * as the table grows). Keys are counted as strings too (an overestimate). */
enum {
    JSON_OBJECT_BYTES = 256,
    JSON_ARRAY_BYTES = 144,
    JSON_STRING_BYTES = 96,
    JSON_NUMBER_BYTES = 48,
    JSON_MEMBER_BYTES = 72,
    JSON_SLOT_BYTES = 16,
};

static size_t json_tree_bytes(const char *s, size_t n)
{
    size_t est = 0;
    bool in_str = false, in_num = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        bool num = (c >= '0' && c <= '9') || c == '-';
        if (num && !in_num) est += JSON_NUMBER_BYTES;
        in_num = num || c == '.' || c == 'e' || c == 'E' || c == '+';
        switch (c) {
        case '{':
            est += JSON_OBJECT_BYTES;
            break;
        case '[':
            est += JSON_ARRAY_BYTES;
            break;
        case '"':
            in_str = true;
            est += JSON_STRING_BYTES;
            break;
        case ':':
            est += JSON_MEMBER_BYTES;
            break;
        case ',':
            est += JSON_SLOT_BYTES;
            break;
        default:
            break;
        }
    }
    return est;
}

static int decode_json(sl_lp_push *p, const char *body, size_t n, sl_err *err)
{
    json_error_t je;
    if (!charge(p, json_tree_bytes(body, n)))
        return sl_errf(err, SL_EFULL,
                       "JSON body would take more than max_decoded_bytes (%zu) in memory once "
                       "parsed",
                       p->mem_max);
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) return sl_errf(err, SL_EPARSE, "JSON: %s at byte %d", je.text, je.position);
    p->json = root;
    json_t *streams = json_object_get(root, "streams");
    if (!json_is_array(streams)) return sl_errf(err, SL_EPARSE, "JSON: no \"streams\" array");
    size_t i;
    json_t *st;
    json_array_foreach(streams, i, st)
    {
        json_t *labels = json_object_get(st, "stream");
        json_t *values = json_object_get(st, "values");
        if (!json_is_object(labels) || !json_is_array(values))
            return sl_errf(err, SL_EPARSE, "JSON: stream %zu needs \"stream\" and \"values\"", i);
        if (json_object_size(labels) > SL_LP_MAX_LABELS)
            return sl_errf(err, SL_EPARSE, "more than %d labels in a stream", SL_LP_MAX_LABELS);
        sl_lp_stream *s = add_stream(p);
        if (!s) return no_room(p, err);
        uint32_t idx = p->nstreams - 1, nl = 0;
        int rc = json_pairs(p, labels, "labels", &nl, err);
        if (rc) return rc;
        for (uint32_t k = 0; k < nl; k++)
            if (!label_name_ok(p->pairs[p->streams[idx].labels + k].name))
                return sl_errf(err, SL_EPARSE, "invalid label name in stream %zu", i);
        p->streams[idx].nlabels = nl;
        p->streams[idx].entries = p->nentries;
        size_t j;
        json_t *val;
        json_array_foreach(values, j, val)
        {
            size_t vn = json_array_size(val);
            if (!json_is_array(val) || vn < 2 || vn > 3 || !json_is_string(json_array_get(val, 1)))
                return sl_errf(err, SL_EPARSE,
                               "JSON: value %zu of stream %zu must be [\"<ns>\", \"<line>\"(, "
                               "{metadata})]",
                               j, i);
            sl_lp_entry *e = add_entry(p);
            if (!e) return no_room(p, err);
            uint32_t ei = p->nentries - 1;
            if ((rc = json_ts(json_array_get(val, 0), &p->entries[ei].ts_ns, err))) return rc;
            json_t *line = json_array_get(val, 1);
            p->entries[ei].line = (sl_slice){json_string_value(line), json_string_length(line)};
            p->text_bytes += p->entries[ei].line.n;
            if (vn == 3) {
                json_t *meta = json_array_get(val, 2);
                if (!json_is_object(meta))
                    return sl_errf(err, SL_EPARSE, "JSON: structured metadata must be an object");
                uint32_t nm = 0;
                if ((rc = json_pairs(p, meta, "structured metadata", &nm, err))) return rc;
                p->entries[ei].nmeta = nm;
            }
            p->streams[idx].nentries++;
        }
    }
    return SL_OK;
}

/* ---- bodies ---- */

static int gunzip(const void *in, size_t n, size_t max, char **out, size_t *outn, sl_err *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return sl_errf(err, SL_ENOMEM, "cannot start gzip decoding");
    size_t cap = n * 4 + 1024 < max ? n * 4 + 1024 : max + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        inflateEnd(&z);
        return sl_errf(err, SL_ENOMEM, "out of memory decoding gzip");
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    int zr, rc = SL_OK;
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                rc = sl_errf(err, SL_EFULL, "decoded body above %zu bytes", max);
                break;
            }
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                rc = sl_errf(err, SL_ENOMEM, "out of memory decoding gzip");
                break;
            }
            buf = nb;
            cap = nc;
        }
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in != 0) rc = sl_errf(err, SL_EPARSE, "bytes after the gzip stream");
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_out != 0) {
            rc = sl_errf(err, SL_EPARSE, "truncated gzip body");
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = sl_errf(err, SL_EPARSE, "gzip: %s", z.msg ? z.msg : "corrupt data");
            break;
        }
    }
    inflateEnd(&z);
    if (rc == SL_OK && len > max) rc = sl_errf(err, SL_EFULL, "decoded body above %zu bytes", max);
    if (rc != SL_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outn = len;
    return SL_OK;
}

/* The arena bytes of a record's fields when nf are added one by one
 * (core/batch.c's grow_fields: 16, then doubling, the old arrays left in
 * the arena). */
static size_t fields_arena_bytes(size_t nf)
{
    size_t total = 0;
    for (size_t cap = 16; nf > 0; cap *= 2) {
        total += cap * sizeof(sl_field);
        if (cap >= nf) break;
    }
    return total;
}

/* What the entries become in the input's batch: a record each, and the
 * stream's labels, the entry's metadata and the tenant as its fields. */
static int charge_records(sl_lp_push *p, sl_err *err)
{
    size_t fields = 0;
    for (uint32_t s = 0; s < p->nstreams; s++) {
        const sl_lp_stream *st = &p->streams[s];
        for (uint32_t e = 0; e < st->nentries; e++)
            fields += fields_arena_bytes(st->nlabels + p->entries[st->entries + e].nmeta + 1);
    }
    p->fields_bytes = fields;
    if (!charge(p, (size_t)p->nentries * sizeof(sl_record)) || !charge(p, fields))
        return sl_errf(err, SL_EFULL,
                       "push of %u entries takes more than max_decoded_bytes (%zu) in memory as "
                       "records",
                       p->nentries, p->mem_max);
    return SL_OK;
}

int sl_lp_decode(const char *content_type, const char *content_encoding, const void *body, size_t n,
                 size_t max_decoded, sl_lp_push *out, sl_err *err)
{
    memset(out, 0, sizeof *out);
    out->mem_max = max_decoded;
    bool json = content_type && !strncasecmp(content_type, "application/json", 16);
    const char *data = body;
    size_t len = n;
    char *inflated = NULL;
    if (content_encoding && *content_encoding && strcasecmp(content_encoding, "identity")) {
        if (strcasecmp(content_encoding, "gzip"))
            return sl_errf(err, SL_EPARSE, "Content-Encoding '%.32s' is not supported (gzip is)",
                           content_encoding);
        int rc = gunzip(body, n, max_decoded, &inflated, &len, err);
        if (rc) return rc;
        data = inflated;
    }
    int rc;
    if (json) {
        if (!charge(out, len)) {
            free(inflated);
            return sl_errf(err, SL_EFULL, "decoded body above %zu bytes", max_decoded);
        }
        rc = decode_json(out, data, len, err);
        free(inflated);
        return rc ? rc : charge_records(out, err);
    }
    size_t raw_n;
    if (snappy_uncompressed_length(data, len, &raw_n) != SNAPPY_OK) {
        free(inflated);
        return sl_errf(err, SL_EPARSE, "body is not a snappy block");
    }
    /* The gzip'd snappy block and what it decodes to live at once. */
    if ((inflated && !charge(out, len)) || !charge(out, raw_n)) {
        free(inflated);
        return sl_errf(err, SL_EFULL, "decoded body above %zu bytes", max_decoded);
    }
    out->raw = malloc(raw_n ? raw_n : 1);
    if (!out->raw) {
        free(inflated);
        return sl_errf(err, SL_ENOMEM, "out of memory decoding a push");
    }
    size_t got = raw_n;
    snappy_status st = snappy_uncompress(data, len, out->raw, &got);
    free(inflated);
    if (st != SNAPPY_OK || got != raw_n) return sl_errf(err, SL_EPARSE, "corrupt snappy block");
    rc = decode_protobuf(out, out->raw, raw_n, err);
    return rc ? rc : charge_records(out, err);
}

void sl_lp_push_free(sl_lp_push *p)
{
    if (!p) return;
    free(p->streams);
    free(p->entries);
    free(p->pairs);
    free(p->raw);
    free(p->scratch);
    if (p->json) json_decref(p->json);
    memset(p, 0, sizeof *p);
}
