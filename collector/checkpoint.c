#include "collector/checkpoint.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/utf8.h"

#define CKPT_VERSION 1

uint64_t sl_fingerprint(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

int sl_ckpt_path(const char *data_dir, const char *input, const char *suffix, bool create,
                 char *out, size_t cap, sl_err *err)
{
    /* The name becomes a file name: one that climbs out of the folder or
     * into another would have root write its checkpoint there. */
    if (!input[0] || strchr(input, '/') || strcmp(input, ".") == 0 || strcmp(input, "..") == 0)
        return sl_errf(err, SL_EINVAL,
                       "input name '%s' cannot name a file in data_dir/checkpoints: no '/', "
                       "'.' or '..'",
                       input);
    char dir[2048];
    if (snprintf(dir, sizeof dir, "%s/checkpoints", data_dir) >= (int)sizeof dir ||
        snprintf(out, cap, "%s/%s%s", dir, input, suffix) >= (int)cap)
        return sl_errf(err, SL_EINVAL, "input %s: data_dir is too long", input);
    return create ? sl_mkdirs(dir, 0700, err) : SL_OK;
}

void sl_ckpt_free(sl_ckpt *c)
{
    free(c->e);
    free(c->slots);
    c->e = NULL;
    c->slots = NULL;
    c->n = c->cap = c->nslots = 0;
}

static size_t slot_of(uint64_t dev, uint64_t ino, size_t nslots)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ (dev * 0xc2b2ae3d27d4eb4fULL)) & (nslots - 1);
}

/* Thousands of files: a hash index keeps lookups constant-time. Rebuilt
 * when it fills up or after a removal (rare: pruning). */
static int reindex(sl_ckpt *c)
{
    size_t nslots = 64;
    while (nslots < c->n * 2 + 2) nslots *= 2;
    size_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return SL_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        size_t k = slot_of(c->e[i].dev, c->e[i].ino, nslots);
        while (slots[k]) k = (k + 1) & (nslots - 1);
        slots[k] = i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = nslots;
    return SL_OK;
}

sl_ckpt_entry *sl_ckpt_find(sl_ckpt *c, uint64_t dev, uint64_t ino)
{
    if (c->n == 0) return NULL;
    if (!c->nslots && reindex(c) != SL_OK) {
        for (size_t i = 0; i < c->n; i++)
            if (c->e[i].dev == dev && c->e[i].ino == ino) return &c->e[i];
        return NULL;
    }
    for (size_t k = slot_of(dev, ino, c->nslots); c->slots[k]; k = (k + 1) & (c->nslots - 1)) {
        sl_ckpt_entry *e = &c->e[c->slots[k] - 1];
        if (e->dev == dev && e->ino == ino) return e;
    }
    return NULL;
}

int sl_ckpt_put(sl_ckpt *c, const sl_ckpt_entry *e)
{
    sl_ckpt_entry *old = sl_ckpt_find(c, e->dev, e->ino);
    if (old) {
        *old = *e;
        return SL_OK;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        sl_ckpt_entry *ne = realloc(c->e, cap * sizeof *ne);
        if (!ne) return SL_ENOMEM;
        c->e = ne;
        c->cap = cap;
    }
    c->e[c->n++] = *e;
    if (c->nslots && c->n * 2 + 2 <= c->nslots) {
        size_t k = slot_of(e->dev, e->ino, c->nslots);
        while (c->slots[k]) k = (k + 1) & (c->nslots - 1);
        c->slots[k] = c->n;
    } else {
        c->nslots = 0; /* rebuilt on the next lookup */
    }
    return SL_OK;
}

sl_ckpt_entry *sl_ckpt_put_new(sl_ckpt *c, uint64_t dev, uint64_t ino)
{
    sl_ckpt_entry *old = sl_ckpt_find(c, dev, ino);
    if (old) return old;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        sl_ckpt_entry *ne = realloc(c->e, cap * sizeof *ne);
        if (!ne) return NULL;
        c->e = ne;
        c->cap = cap;
    }
    sl_ckpt_entry *e = &c->e[c->n++];
    /* The numbers and an empty path: not the whole 1.1 KiB zeroed, most
     * of it past the path's end is never read. */
    memset(e, 0, offsetof(sl_ckpt_entry, path) + 1);
    e->dev = dev;
    e->ino = ino;
    if (c->nslots && c->n * 2 + 2 <= c->nslots) {
        size_t k = slot_of(dev, ino, c->nslots);
        while (c->slots[k]) k = (k + 1) & (c->nslots - 1);
        c->slots[k] = c->n;
    } else {
        c->nslots = 0; /* rebuilt on the next lookup */
    }
    return e;
}

/* The slot that holds entry index i (i + 1 in it); SIZE_MAX if none. */
static size_t slot_holding(const sl_ckpt *c, size_t i)
{
    const sl_ckpt_entry *e = &c->e[i];
    for (size_t k = slot_of(e->dev, e->ino, c->nslots); c->slots[k]; k = (k + 1) & (c->nslots - 1))
        if (c->slots[k] == i + 1) return k;
    return SIZE_MAX;
}

/* In place, index kept (backward-shift deletion of linear probing): the
 * entries of files deleted are forgotten one by one as they are closed
 * (decision 0069), and a rebuild of the index per removal would cost
 * every entry's rehash per closed file. */
void sl_ckpt_remove(sl_ckpt *c, size_t i)
{
    if (i >= c->n) return;
    size_t last = c->n - 1;
    size_t k = c->nslots ? slot_holding(c, i) : SIZE_MAX;
    size_t kl = c->nslots && last != i ? slot_holding(c, last) : SIZE_MAX;
    if (k == SIZE_MAX || (last != i && kl == SIZE_MAX)) c->nslots = 0; /* rebuilt on lookup */
    c->e[i] = c->e[last]; /* the last entry moves to i */
    c->n--;
    if (!c->nslots) return;
    if (last != i) c->slots[kl] = i + 1;
    size_t mask = c->nslots - 1;
    c->slots[k] = 0;
    for (size_t j = (k + 1) & mask; c->slots[j]; j = (j + 1) & mask) {
        const sl_ckpt_entry *m = &c->e[c->slots[j] - 1];
        size_t home = slot_of(m->dev, m->ino, c->nslots);
        if (((j - home) & mask) >= ((j - k) & mask)) {
            c->slots[k] = c->slots[j];
            c->slots[j] = 0;
            k = j;
        }
    }
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* One past the JSON value that starts at s[i], found by walking strings
 * and counting brackets (no grammar: jansson checks each entry); n when it
 * does not end or nests deeper than any checkpoint does (NO_END). A
 * scalar may end the text (n); a string or container may not. No allocation:
 * only one entry at a time becomes a jansson tree, so a crafted file
 * (`[0,0,0,...]` costs jansson ~20 bytes per byte) cannot take memory
 * beyond SL_CKPT_MAX_ENTRY_BYTES' worth at once. */
#define NO_END SIZE_MAX

static size_t value_end(const char *s, size_t n, size_t i)
{
    size_t depth = 0;
    for (; i < n; i++) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            if (i >= n) return NO_END;
            if (depth == 0) return i + 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > 32) return NO_END;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0) return i; /* a scalar ended by its container */
            if (--depth == 0) return i + 1;
        } else if (depth == 0 &&
                   (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
            return i;
        }
    }
    return depth == 0 ? n : NO_END;
}

static bool key_is(const char *s, size_t a, size_t b, const char *key)
{
    size_t k = strlen(key);
    return b - a == k + 2 && memcmp(s + a + 1, key, k) == 0;
}

/* A non-negative JSON integer member of f, or -1 when absent or not one. */
static int64_t uint_member(json_t *f, const char *key)
{
    json_t *v = json_object_get(f, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

/* Counts a dropped entry (i: its index in the file) under *count. */
static void note_drop(size_t *count, char first[96], size_t i, const char *why)
{
    if ((*count)++ == 0) snprintf(first, 96, "entry %zu: %s", i, why);
}

/* Checks one entry against what the writer always writes; NULL when it
 * holds, else why not. A path that is cut, empty, holds a NUL or climbs
 * with `..` is no path the input could have read; fp_len past
 * SL_CKPT_MAX_FP_BYTES would ask for more than the fingerprint reads. */
static const char *decode_entry(json_t *f, sl_ckpt_entry *e)
{
    if (!json_is_object(f)) return "not an object";
    json_t *jp = json_object_get(f, "path"), *jf = json_object_get(f, "fp");
    if (!json_is_string(jp)) return "no path";
    const char *path = json_string_value(jp);
    size_t plen = json_string_length(jp);
    if (plen == 0 || plen >= sizeof e->path || strlen(path) != plen)
        return "path empty, too long or with a NUL";
    for (const char *c = path; (c = strstr(c, "..")); c += 2)
        if ((c == path || c[-1] == '/') && (c[2] == '/' || c[2] == '\0')) return "path with ..";
    const char *fp = json_string_value(jf);
    if (!fp || json_string_length(jf) != 16 || strspn(fp, "0123456789abcdef") != 16)
        return "fp is not 16 hex digits";
    int64_t dev = uint_member(f, "dev"), ino = uint_member(f, "ino"),
            fp_len = uint_member(f, "fp_len"), off = uint_member(f, "offset"),
            seen = uint_member(f, "seen"), size = uint_member(f, "size");
    if (dev < 0 || ino < 0 || fp_len < 0 || off < 0 || seen < 0)
        return "dev, ino, fp_len, offset or seen missing or not a non-negative integer";
    if (json_object_get(f, "size") && size < 0) return "size not a non-negative integer";
    if (fp_len > (int64_t)SL_CKPT_MAX_FP_BYTES) return "fp_len over 65536";
    memcpy(e->path, path, plen + 1);
    e->dev = (uint64_t)dev;
    e->ino = (uint64_t)ino;
    e->fp_len = (uint32_t)fp_len;
    e->fp = strtoull(fp, NULL, 16);
    e->offset = (uint64_t)off;
    e->seen = seen;
    e->size = size > 0 ? (uint64_t)size : 0; /* absent before 0015 */
    return NULL;
}

/* Adds a decoded entry; a second one for the same file keeps the lower
 * offset (read twice rather than skipped). */
static int add_entry(sl_ckpt *c, const sl_ckpt_entry *e, size_t i)
{
    sl_ckpt_entry *old = sl_ckpt_find(c, e->dev, e->ino);
    if (old) {
        note_drop(&c->drops.duplicate, c->drops.first_duplicate, i,
                  "a second entry for the same dev and ino");
        if (e->offset < old->offset) *old = *e;
        return SL_OK;
    }
    if (c->n >= SL_CKPT_MAX_ENTRIES) {
        note_drop(&c->drops.over_limit, c->drops.first_over_limit, i, "more entries than 262144");
        return SL_OK;
    }
    return sl_ckpt_put(c, e);
}

/* The files array from s[i] (its '['); returns the index after its ']'
 * or n on damage. */
static size_t parse_files(const char *s, size_t n, size_t i, sl_ckpt *c, int *rc, sl_err *err)
{
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == ']') return i + 1;
    for (size_t k = 0;; k++) {
        size_t end = i < n && s[i] == '{' ? value_end(s, n, i) : NO_END;
        if (end == NO_END) {
            *rc = sl_errf(err, SL_ECORRUPT, "entry %zu is not a complete object", k);
            return n;
        }
        if (end - i > SL_CKPT_MAX_ENTRY_BYTES) {
            note_drop(&c->drops.invalid, c->drops.first_invalid, k, "over 16 KiB");
        } else {
            json_error_t je;
            /* NULs allowed here so that a path holding one is dropped
             * alone (below) rather than damaging the whole file. */
            json_t *f = json_loadb(s + i, end - i, JSON_ALLOW_NUL, &je);
            if (!f) {
                *rc = sl_errf(err, SL_ECORRUPT, "entry %zu: %s", k, je.text);
                return n;
            }
            sl_ckpt_entry e = {0};
            const char *why = decode_entry(f, &e);
            json_decref(f);
            if (why) {
                note_drop(&c->drops.invalid, c->drops.first_invalid, k, why);
            } else if ((*rc = add_entry(c, &e, k)) != SL_OK) {
                sl_errf(err, *rc, "out of memory");
                return n;
            }
        }
        i = skip_ws(s, n, end);
        if (i < n && s[i] == ']') return i + 1;
        if (i >= n || s[i] != ',') {
            *rc = sl_errf(err, SL_ECORRUPT, "after entry %zu: expected , or ]", k);
            return n;
        }
        i = skip_ws(s, n, i + 1);
    }
}

/* {"version":1,"files":[...]}, members in any order and spacing (older
 * writers used jansson); other members are skipped unread. */
int sl_ckpt_parse(const char *s, size_t n, sl_ckpt *c, sl_err *err)
{
    int rc = SL_OK;
    bool version = false, files = false;
    memset(&c->drops, 0, sizeof c->drops);
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') {
        rc = sl_errf(err, SL_ECORRUPT, "not a JSON object");
        goto out;
    }
    i = skip_ws(s, n, i + 1);
    while (rc == SL_OK && i < n && s[i] != '}') {
        size_t kend = s[i] == '"' ? value_end(s, n, i) : NO_END;
        size_t v = kend != NO_END ? skip_ws(s, n, kend) : n;
        if (v >= n || s[v] != ':') {
            rc = sl_errf(err, SL_ECORRUPT, "bad member at byte %zu", i);
            break;
        }
        v = skip_ws(s, n, v + 1);
        size_t after;
        if (key_is(s, i, kend, "files")) {
            if (v >= n || s[v] != '[') {
                rc = sl_errf(err, SL_ECORRUPT, "files is not an array");
                break;
            }
            if (files) {
                rc = sl_errf(err, SL_ECORRUPT, "files given twice");
                break;
            }
            files = true;
            after = parse_files(s, n, v, c, &rc, err);
            if (rc != SL_OK) break;
        } else {
            after = value_end(s, n, v);
            if (after == NO_END || after == v) {
                rc = sl_errf(err, SL_ECORRUPT, "bad value at byte %zu", v);
                break;
            }
            if (key_is(s, i, kend, "version")) {
                char num[24];
                size_t len = after - v;
                if (len >= sizeof num || version) {
                    rc = sl_errf(err, SL_ECORRUPT, "bad version");
                    break;
                }
                memcpy(num, s + v, len);
                num[len] = '\0';
                if (strcmp(num, "1") != 0) {
                    rc = sl_errf(err, SL_ECORRUPT, "unknown version %s", num);
                    break;
                }
                version = true;
            }
        }
        i = skip_ws(s, n, after);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, n, i + 1);
            if (i < n && s[i] == '}') rc = sl_errf(err, SL_ECORRUPT, "trailing comma");
        } else if (i >= n || s[i] != '}') {
            rc = sl_errf(err, SL_ECORRUPT, "expected , or } at byte %zu", i);
        }
    }
    if (rc == SL_OK && (i >= n || skip_ws(s, n, i + 1) != n))
        rc = sl_errf(err, SL_ECORRUPT, "truncated, or bytes after the object");
    if (rc == SL_OK && (!version || !files))
        rc = sl_errf(err, SL_ECORRUPT, "unknown version or layout");
out:
    if (rc != SL_OK) {
        sl_ckpt_drops d = c->drops;
        sl_ckpt_free(c);
        c->drops = d;
    }
    return rc;
}

int sl_ckpt_load(const char *path, sl_ckpt *c, int *fell_back, sl_err *err)
{
    char prev[4096];
    snprintf(prev, sizeof prev, "%s.prev", path);
    *fell_back = 0;
    char *text;
    size_t len;
    int rc = sl_read_state_file(path, SL_CKPT_MAX_BYTES, &text, &len, err);
    if (rc == SL_ENOENT) {
        /* A crash may have left only the previous generation. */
        if (sl_read_state_file(prev, SL_CKPT_MAX_BYTES, &text, &len, NULL) != SL_OK) return SL_OK;
        *fell_back = 1;
        rc = sl_ckpt_parse(text, len, c, err);
        free(text);
        return rc;
    }
    if (rc == SL_OK) {
        rc = sl_ckpt_parse(text, len, c, err);
        free(text);
        if (rc == SL_OK) return SL_OK;
    }
    sl_err perr;
    if (sl_read_state_file(prev, SL_CKPT_MAX_BYTES, &text, &len, &perr) != SL_OK) return rc;
    *fell_back = 1;
    rc = sl_ckpt_parse(text, len, c, err);
    free(text);
    return rc;
}

/* key (a literal, k bytes) then v in decimal, as jansson writes a
 * json_int_t; two digits a division (each save writes six numbers for
 * each of 10,000 entries: issue 19). */
static char *put_key_int(char *o, const char *key, size_t k, int64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    memcpy(o, key, k);
    o += k;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (v < 0) *o++ = '-';
    char digits[20];
    int n = 20;
    while (u >= 100) {
        n -= 2;
        memcpy(digits + n, pairs + (u % 100) * 2, 2);
        u /= 100;
    }
    if (u >= 10) {
        n -= 2;
        memcpy(digits + n, pairs + u * 2, 2);
    } else {
        digits[--n] = (char)('0' + u);
    }
    memcpy(o, digits + n, (size_t)(20 - n));
    return o + (20 - n);
}
#define PUT_KEY_INT(o, key, v) put_key_int(o, key, sizeof key - 1, v)

/* True when p[0, n) is ASCII that a JSON string holds as it is (no quote,
 * backslash or control byte): what sl_json_escape_ref would copy byte for
 * byte, and valid UTF-8. Eight bytes a step; most paths are. */
static bool plain_ascii(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, b;
        memcpy(&w, p + i, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        /* A byte >= 0x80, < 0x20, == '"' or == '\\' sets its high bit. */
        if ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high)
            return false;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
    }
    return true;
}

/* Written by hand rather than through jansson: at 10,000 files the tree
 * of json_t objects made each save ~70 ms of the input's thread, once a
 * second (issue 19). The same compact JSON, key for key; as before, an
 * entry whose path is not UTF-8 is left out (JSON cannot hold it; the
 * file is then read again from its start after a restart, never skipped). */
int sl_ckpt_encode(const sl_ckpt *c, char **out, size_t *len, sl_err *err)
{
    sl_buf b;
    sl_buf_init(&b, SL_CKPT_MAX_BYTES);
    sl_buf_printf(&b, "{\"version\":%d,\"files\":[", CKPT_VERSION);
    bool first = true;
    for (size_t i = 0; i < c->n && !b.failed; i++) {
        const sl_ckpt_entry *e = &c->e[i];
        size_t plen = strnlen(e->path, sizeof e->path);
        bool plain = plain_ascii(e->path, plen);
        if (!plain && !sl_utf8_valid(e->path, plen)) continue;
        sl_buf_append(&b, first ? "{\"path\":\"" : ",{\"path\":\"", first ? 9 : 10);
        first = false;
        if (plain)
            sl_buf_append(&b, e->path, plen);
        else
            sl_buf_json_escape(&b, e->path, plen);
        char num[160], *o = num;
        o = PUT_KEY_INT(o, "\",\"dev\":", (int64_t)e->dev);
        o = PUT_KEY_INT(o, ",\"ino\":", (int64_t)e->ino);
        o = PUT_KEY_INT(o, ",\"fp_len\":", (int64_t)e->fp_len);
        memcpy(o, ",\"fp\":\"", 7), o += 7;
        for (int k = 15; k >= 0; k--) *o++ = "0123456789abcdef"[(e->fp >> (k * 4)) & 15];
        *o++ = '"';
        o = PUT_KEY_INT(o, ",\"offset\":", (int64_t)e->offset);
        o = PUT_KEY_INT(o, ",\"seen\":", e->seen);
        o = PUT_KEY_INT(o, ",\"size\":", (int64_t)e->size);
        *o++ = '}';
        sl_buf_append(&b, num, (size_t)(o - num));
    }
    sl_buf_append(&b, "]}", 2);
    if (b.failed) {
        sl_buf_free(&b);
        return sl_errf(err, SL_ENOMEM, "checkpoint: out of memory or over %u bytes",
                       SL_CKPT_MAX_BYTES);
    }
    *out = b.p;
    *len = b.len;
    return SL_OK;
}

int sl_ckpt_save(const char *path, const sl_ckpt *c, sl_err *err)
{
    char *text;
    size_t len;
    int rc = sl_ckpt_encode(c, &text, &len, err);
    if (rc != SL_OK) return rc;
    rc = sl_write_atomic(path, text, len, 1, err);
    free(text);
    return rc;
}
