/* The `regex` step: named groups of a PCRE2 pattern, or of a built-in one,
 * become fields (parsers/regex.h). */
#include <stdlib.h>
#include <string.h>

#include "parsers/regex.h"
#include "parsers/step.h"

typedef struct regex_step {
    const char *field; /* NULL: the record's line */
    sl_regex *regex;
} regex_step;

static const sl_cfg_key regex_keys[] = {
    {.name = "pattern",
     .type = SL_KEY_STR,
     .doc = "PCRE2 pattern whose named groups become fields (one of `pattern`, `builtin`)"},
    {.name = "builtin",
     .type = SL_KEY_ENUM,
     .choices =
         "nginx_combined|apache_combined|apache_common|vhost_combined|apache_error|nginx_error",
     .doc = "a built-in pattern instead of `pattern`"},
    {.name = "field", .type = SL_KEY_STR, .doc = "the field to match; the line when absent"},
    {.name = "match_limit",
     .type = SL_KEY_INT,
     .def = "1000000",
     .min = 1000,
     .max = 100000000,
     .doc = "PCRE2 match limit: a record needing more backtracking is a parse error"},
};

static int regex_create(const sl_step_ctx *ctx, void **state)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *args = ctx->args;
    regex_step *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    const char *pattern = NULL, *builtin = NULL;
    int64_t limit = 1000000;
    sl_cfg_str(cfg, args, "pattern", NULL, &pattern);
    sl_cfg_str(cfg, args, "builtin", NULL, &builtin);
    sl_cfg_str(cfg, args, "field", NULL, &s->field);
    if (sl_cfg_int(cfg, args, "match_limit", 1000000, 1000, 100000000, &limit) != 0) return -1;
    if (!pattern == !builtin) {
        sl_cfg_error(cfg, args, "regex needs exactly one of 'pattern' or 'builtin'");
        return -1;
    }
    sl_regex_opts o = {.match_limit = (uint32_t)limit, .utf = true};
    sl_err err;
    int rc = pattern ? sl_regex_new(pattern, strlen(pattern), &o, &s->regex, &err)
                     : sl_regex_builtin(builtin, &o, &s->regex, &err);
    if (rc != 0) {
        sl_cfg_error(cfg, sl_cfg_get(args, pattern ? "pattern" : "builtin"), "%s", err.msg);
        return -1;
    }
    return 0;
}

static int regex_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    regex_step *s = state;
    sl_slice in;
    int rc = sl_step_subject(b, r, s->field, &in, err);
    if (rc != 0) return rc;
    return sl_regex_parse_record(b, r, in, s->regex, err);
}

static void regex_destroy(void *state)
{
    regex_step *s = state;
    if (!s) return;
    sl_regex_free(s->regex);
    free(s);
}

const sl_step_ops sl_regex_step_ops = {
    .name = "regex",
    .keys = regex_keys,
    .nkeys = sizeof regex_keys / sizeof *regex_keys,
    .create = regex_create,
    .apply = regex_apply,
    .destroy = regex_destroy,
};
