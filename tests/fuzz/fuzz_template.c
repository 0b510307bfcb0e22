/* The template compiler (shipper/template.h) on any text, under each set of
 * rules, and what a compiled template renders to: never past the buffer, a
 * cut rendering is a prefix of the whole one, and the same record always
 * renders the same. Input: one byte of rules, the template text up to the
 * first newline, then a field value (with JSON escapes) the record holds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shipper/template.h"

static bool no_space(const char *p, size_t n)
{
    return !memchr(p, ' ', n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    sl_tpl_rules rules = {.label_set = data[0] & 1, .need_default = data[0] & 2};
    if (data[0] & 4) rules.text_ok = no_space, rules.text_rule = "with a space";
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(in, '\n', n);
    size_t tn = nl ? (size_t)(nl - in) : n;
    char *text = malloc(tn + 1);
    if (!text) return 0;
    memcpy(text, in, tn);
    text[tn] = '\0'; /* a NUL inside ends the text, as in a config value */
    const char *val = nl ? nl + 1 : "";
    size_t vn = nl ? n - tn - 1 : 0;

    sl_tpl *t = NULL;
    sl_err err;
    int rc = sl_tpl_compile(text, &rules, &t, &err);
    if (rc != SL_OK) {
        if (t || rc != SL_EINVAL || !err.msg[0]) abort();
        free(text);
        return 0;
    }
    sl_field labels[] = {{{"job", 3}, {"web", 3}, SL_V_STRING, 0},
                         {{"a", 1}, {val, vn}, SL_V_ESCAPED, 0}};
    sl_field fields[] = {{{"a", 1}, {val, vn}, SL_V_ESCAPED, 0},
                         {{"b", 1}, {val, vn}, SL_V_STRING, SL_FF_LABEL},
                         {{"job", 3}, {val, vn}, SL_V_ESCAPED, SL_FF_LABEL}};
    sl_record r = {.line = {val, vn}, .fields = fields, .nfields = 3};
    sl_batch b = {.records = &r,
                  .nrecords = 1,
                  .input = "in",
                  .source = "/var/log/x.log",
                  .labels = labels,
                  .nlabels = 2};
    static char whole[1 << 16], part[64], again[1 << 16];
    bool cut_whole, cut_part, cut_again;
    size_t w = sl_tpl_render(t, &b, &r, whole, sizeof whole, &cut_whole);
    size_t p = sl_tpl_render(t, &b, &r, part, sizeof part, &cut_part);
    size_t a = sl_tpl_render(t, &b, &r, again, sizeof again, &cut_again);
    if (w > sizeof whole || p > sizeof part || a != w || cut_again != cut_whole) abort();
    if (memcmp(whole, again, w) != 0) abort();
    if (p > w || memcmp(whole, part, p) != 0) abort();
    if (cut_part != (w > sizeof part || cut_whole)) abort();
    (void)sl_tpl_varies(t, &r);
    char none[256];
    if (sl_tpl_render(t, NULL, NULL, none, sizeof none, NULL) > sizeof none) abort();
    sl_tpl_free(t);
    free(text);
    return 0;
}
