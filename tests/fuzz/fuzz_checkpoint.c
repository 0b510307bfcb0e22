/* The file input's checkpoint decoder (collector/checkpoint.c) on whatever
 * a damaged or planted data_dir/checkpoints/<input>.json holds: never a
 * crash, and what it accepts keeps the promises the file input relies on
 * (decision 0059): at most SL_CKPT_MAX_ENTRIES entries, one per dev+ino,
 * paths non-empty, terminated, without a `..` component, fp_len within
 * the fingerprint's buffer; and it comes back the same through the
 * writer and the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/checkpoint.h"
#include "core/err.h"

static bool path_ok(const char *p)
{
    size_t n = strnlen(p, 1024);
    if (n == 0 || n >= 1024) return false;
    for (const char *c = p; (c = strstr(c, "..")); c += 2)
        if ((c == p || c[-1] == '/') && (c[2] == '/' || c[2] == '\0')) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_ckpt c = {0};
    sl_err err;
    int rc = sl_ckpt_parse((const char *)data, size, &c, &err);
    if (rc != SL_OK) {
        if (rc != SL_ECORRUPT && rc != SL_ENOMEM) abort();
        if (c.n != 0 || c.e) abort();
        return 0;
    }
    if (c.n > SL_CKPT_MAX_ENTRIES) abort();
    for (size_t i = 0; i < c.n; i++) {
        const sl_ckpt_entry *e = &c.e[i];
        if (!path_ok(e->path) || e->fp_len > SL_CKPT_MAX_FP_BYTES) abort();
        if (sl_ckpt_find(&c, e->dev, e->ino) != e) abort(); /* one per file */
    }
    char *text;
    size_t len;
    if (sl_ckpt_encode(&c, &text, &len, &err) == SL_OK) {
        sl_ckpt again = {0};
        if (sl_ckpt_parse(text, len, &again, &err) != SL_OK) abort();
        if (again.n != c.n || again.drops.invalid || again.drops.duplicate) abort();
        for (size_t i = 0; i < c.n; i++) {
            sl_ckpt_entry *x = sl_ckpt_find(&again, c.e[i].dev, c.e[i].ino);
            if (!x) abort();
            x->look = c.e[i].look;
            if (memcmp(x, &c.e[i], sizeof *x) != 0) abort();
        }
        sl_ckpt_free(&again);
        free(text);
    }
    sl_ckpt_free(&c);
    return 0;
}
