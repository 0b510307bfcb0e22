#include "shipper/loki_tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "shipper/loki_limits.h"
#include "shipper/template.h"

#define TENANT_MAX 150
/* Renders past TENANT_MAX are cut to it anyway; the margin only tells a
 * cut rendering from one of exactly 150 bytes. */
#define RENDER_MAX (TENANT_MAX + 1)

struct sl_loki_tpl {
    sl_tpl *t;
};

void sl_loki_tpl_free(sl_loki_tpl *t)
{
    if (!t) return;
    sl_tpl_free(t->t);
    free(t);
}

bool sl_loki_tpl_per_record(const sl_loki_tpl *t)
{
    return t && sl_tpl_uses(t->t) != 0;
}

static bool tenant_chars_ok(const char *p, size_t n)
{
    char why[200];
    /* Pieces are checked by the whole-tenant rule, which also refuses "",
     * "." and "..": only the characters matter here. */
    for (size_t i = 0; i < n; i++)
        if (sl_loki_tenant_check(p + i, 1, why, sizeof why) != 0 && p[i] != '.') return false;
    return true;
}

int sl_loki_tpl_parse(const char *text, sl_loki_tpl **out, char *why, size_t cap)
{
    static const sl_tpl_rules rules = {
        .need_default = true,
        .text_ok = tenant_chars_ok,
        .text_rule = "Loki refuses in a tenant (allowed: letters, digits and !-_.*'())",
    };
    sl_loki_tpl *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(why, cap, "out of memory");
        return SL_ENOMEM;
    }
    sl_err err;
    int rc = sl_tpl_compile(text, &rules, &t->t, &err);
    if (rc != SL_OK) {
        snprintf(why, cap, "%s", err.msg);
        free(t);
        return rc;
    }
    *out = t;
    return SL_OK;
}

int sl_loki_tpl_render(const sl_loki_tpl *t, const sl_batch *b, const sl_record *r, sl_buf *out)
{
    char text[RENDER_MAX];
    bool cut = false;
    size_t n = sl_tpl_render(t->t, b, r, text, sizeof text, &cut);
    /* Made acceptable: other bytes become '_', at most 150, never empty,
     * "." or "..". */
    int changed = cut;
    for (size_t i = 0; i < n; i++) {
        char why[8];
        if (text[i] != '.' && sl_loki_tenant_check(text + i, 1, why, sizeof why) != 0) {
            text[i] = '_';
            changed = 1;
        }
    }
    if (n > TENANT_MAX) {
        n = TENANT_MAX;
        changed = 1;
    }
    if (n == 0 || (n <= 2 && text[0] == '.' && text[n - 1] == '.')) {
        text[0] = '_';
        n = 1;
        changed = 1;
    }
    sl_buf_reset(out);
    if (sl_buf_append(out, text, n)) return SL_ENOMEM;
    return changed;
}
