#include "collector/checkpoint.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/utf8.h"

#define CKPT_VERSION   1
#define CKPT_MAX_BYTES (64u << 20)

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

void sl_ckpt_remove(sl_ckpt *c, size_t i)
{
    if (i < c->n) c->e[i] = c->e[--c->n];
    c->nslots = 0;
}

static int parse(const char *text, size_t len, sl_ckpt *c, sl_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return sl_errf(err, SL_ECORRUPT, "line %d: %s", je.line, je.text);
    int rc = SL_OK;
    json_t *files = json_object_get(root, "files");
    if (json_integer_value(json_object_get(root, "version")) != CKPT_VERSION ||
        !json_is_array(files)) {
        rc = sl_errf(err, SL_ECORRUPT, "unknown version or layout");
        goto out;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        sl_ckpt_entry e = {0};
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *fp = json_string_value(json_object_get(f, "fp"));
        json_t *off = json_object_get(f, "offset");
        if (!path || !fp || !json_is_integer(off) || json_integer_value(off) < 0) {
            rc = sl_errf(err, SL_ECORRUPT, "entry %zu is incomplete", i);
            goto out;
        }
        snprintf(e.path, sizeof e.path, "%s", path);
        e.dev = (uint64_t)json_integer_value(json_object_get(f, "dev"));
        e.ino = (uint64_t)json_integer_value(json_object_get(f, "ino"));
        e.fp_len = (uint32_t)json_integer_value(json_object_get(f, "fp_len"));
        e.fp = strtoull(fp, NULL, 16);
        e.offset = (uint64_t)json_integer_value(off);
        e.seen = json_integer_value(json_object_get(f, "seen"));
        json_int_t size = json_integer_value(json_object_get(f, "size")); /* absent before 0015 */
        e.size = size > 0 ? (uint64_t)size : 0;
        if ((rc = sl_ckpt_put(c, &e)) != SL_OK) goto out;
    }
out:
    json_decref(root);
    if (rc != SL_OK) sl_ckpt_free(c);
    return rc;
}

int sl_ckpt_load(const char *path, sl_ckpt *c, int *fell_back, sl_err *err)
{
    char prev[4096];
    snprintf(prev, sizeof prev, "%s.prev", path);
    *fell_back = 0;
    char *text;
    size_t len;
    int rc = sl_read_state_file(path, CKPT_MAX_BYTES, &text, &len, err);
    if (rc == SL_ENOENT) {
        /* A crash may have left only the previous generation. */
        if (sl_read_state_file(prev, CKPT_MAX_BYTES, &text, &len, NULL) != SL_OK) return SL_OK;
        *fell_back = 1;
        rc = parse(text, len, c, err);
        free(text);
        return rc;
    }
    if (rc == SL_OK) {
        rc = parse(text, len, c, err);
        free(text);
        if (rc == SL_OK) return SL_OK;
    }
    sl_err perr;
    if (sl_read_state_file(prev, CKPT_MAX_BYTES, &text, &len, &perr) != SL_OK) return rc;
    *fell_back = 1;
    rc = parse(text, len, c, err);
    free(text);
    return rc;
}

/* key (a literal) then v in decimal, as jansson writes a json_int_t. */
static char *put_key_int(char *o, const char *key, int64_t v)
{
    size_t k = strlen(key);
    memcpy(o, key, k);
    o += k;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (v < 0) *o++ = '-';
    char digits[20];
    int n = 0;
    do digits[n++] = (char)('0' + u % 10);
    while (u /= 10);
    while (n) *o++ = digits[--n];
    return o;
}

/* Written by hand rather than through jansson: at 10,000 files the tree
 * of json_t objects made each save ~70 ms of the input's thread, once a
 * second (issue 19). The same compact JSON, key for key; as before, an
 * entry whose path is not UTF-8 is left out (JSON cannot hold it; the
 * file is then read again from its start after a restart, never skipped). */
int sl_ckpt_save(const char *path, const sl_ckpt *c, sl_err *err)
{
    sl_buf b;
    sl_buf_init(&b, CKPT_MAX_BYTES);
    sl_buf_printf(&b, "{\"version\":%d,\"files\":[", CKPT_VERSION);
    bool first = true;
    for (size_t i = 0; i < c->n && !b.failed; i++) {
        const sl_ckpt_entry *e = &c->e[i];
        size_t plen = strnlen(e->path, sizeof e->path);
        if (!sl_utf8_valid(e->path, plen)) continue;
        sl_buf_append(&b, first ? "{\"path\":\"" : ",{\"path\":\"", first ? 9 : 10);
        first = false;
        sl_buf_json_escape(&b, e->path, plen);
        char num[160], *o = num;
        o = put_key_int(o, "\",\"dev\":", (int64_t)e->dev);
        o = put_key_int(o, ",\"ino\":", (int64_t)e->ino);
        o = put_key_int(o, ",\"fp_len\":", (int64_t)e->fp_len);
        memcpy(o, ",\"fp\":\"", 7), o += 7;
        for (int k = 15; k >= 0; k--) *o++ = "0123456789abcdef"[(e->fp >> (k * 4)) & 15];
        *o++ = '"';
        o = put_key_int(o, ",\"offset\":", (int64_t)e->offset);
        o = put_key_int(o, ",\"seen\":", e->seen);
        o = put_key_int(o, ",\"size\":", (int64_t)e->size);
        *o++ = '}';
        sl_buf_append(&b, num, (size_t)(o - num));
    }
    sl_buf_append(&b, "]}", 2);
    int rc = b.failed ? sl_errf(err, SL_ENOMEM, "checkpoint: out of memory or over %u bytes",
                                CKPT_MAX_BYTES)
                      : sl_write_atomic(path, b.p, b.len, 1, err);
    sl_buf_free(&b);
    return rc;
}
