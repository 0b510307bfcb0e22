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

/* What regex_keys reads; the field goes to the step. */
typedef struct regex_args {
    const char *pattern, *field;
    int builtin; /* index in the choices, -1: none */
    int64_t match_limit;
} regex_args;

static const sl_cfg_key regex_keys[] = {
    {.name = "pattern",
     .at = SL_CFG_AT(regex_args, pattern),
     .type = SL_KEY_STR,
     .doc = "PCRE2 pattern whose named groups become fields (one of `pattern`, `builtin`)"},
    {.name = "builtin",
     .at = SL_CFG_AT(regex_args, builtin),
     .type = SL_KEY_ENUM,
     .choices =
         "nginx_combined|apache_combined|apache_common|vhost_combined|apache_error|nginx_error",
     .doc = "a built-in pattern instead of `pattern`"},
    {.name = "field",
     .at = SL_CFG_AT(regex_args, field),
     .type = SL_KEY_STR,
     .doc = "the field to match; the line when absent"},
    {.name = "match_limit",
     .at = SL_CFG_AT(regex_args, match_limit),
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
    if (!s) return SL_ENOMEM;
    *state = s;
    regex_args a;
    if (sl_cfg_read(cfg, args, regex_keys, SL_CFG_NKEYS(regex_keys), &a)) return SL_EINVAL;
    s->field = a.field;
    const char *pattern = a.pattern;
    /* The name as written (the table checked it is one of the choices). */
    const char *builtin = a.builtin >= 0 ? sl_cfg_get(args, "builtin")->scalar : NULL;
    if (!pattern == !builtin) {
        sl_cfg_error(cfg, args, "regex needs exactly one of 'pattern' or 'builtin'");
        return SL_EINVAL;
    }
    sl_regex_opts o = {.match_limit = (uint32_t)a.match_limit, .utf = true};
    sl_err err;
    int rc = pattern ? sl_regex_new(pattern, strlen(pattern), &o, &s->regex, &err)
                     : sl_regex_builtin(builtin, &o, &s->regex, &err);
    if (rc != 0) {
        sl_cfg_error(cfg, sl_cfg_get(args, pattern ? "pattern" : "builtin"), "%s", err.msg);
        return SL_EINVAL;
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
    .nkeys = SL_CFG_NKEYS(regex_keys),
    .create = regex_create,
    .apply = regex_apply,
    .destroy = regex_destroy,
};
