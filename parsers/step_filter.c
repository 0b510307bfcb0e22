/* `drop` and `keep`: a record whose line (or field) matches a pattern is
 * dropped, or every record that does not match is. Counted in
 * sluice_records_filtered_total. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "parsers/step.h"

typedef struct filter_step {
    const char *field; /* NULL: the record's line */
    const char *regex; /* read from filter_keys */
    bool drop_matches; /* drop; keep drops what does not match */
    pcre2_code *re;
    pcre2_match_data *md;
    sl_metric *dropped;
} filter_step;

static const sl_cfg_key filter_keys[] = {
    {.name = "field",
     .at = SL_CFG_AT(filter_step, field),
     .type = SL_KEY_STR,
     .doc = "the field to match; the line when absent (a record without the field does not match)"},
    {.name = "regex",
     .at = SL_CFG_AT(filter_step, regex),
     .type = SL_KEY_STR,
     .required = true,
     .doc = "PCRE2 pattern: `drop` drops the records matching it, `keep` those not matching"},
};

static int compile(sl_cfg *cfg, const sl_cfg_node *at, const char *pattern, filter_step *s)
{
    int errcode;
    PCRE2_SIZE erroff;
    s->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        sl_cfg_error(cfg, at, "bad regex at offset %zu: %s", (size_t)erroff, (const char *)msg);
        return SL_EINVAL;
    }
    pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE);
    s->md = pcre2_match_data_create_from_pattern(s->re, NULL);
    return s->md ? 0 : -1;
}

static int create(const sl_step_ctx *ctx, void **state, bool drop_matches)
{
    filter_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    s->drop_matches = drop_matches;
    s->dropped = ctx->dropped;
    if (sl_cfg_read(ctx->cfg, ctx->args, filter_keys, SL_CFG_NKEYS(filter_keys), s) || !s->regex)
        return SL_EINVAL;
    return compile(ctx->cfg, sl_cfg_get(ctx->args, "regex"), s->regex, s);
}

static int drop_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, true);
}

static int keep_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, false);
}

static int filter_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    filter_step *s = state;
    sl_slice text;
    int rc = sl_step_subject(b, r, s->field, &text, err);
    if (rc != 0 && rc != SL_ENOENT) return rc;
    bool matched =
        rc == 0 && pcre2_match(s->re, (PCRE2_SPTR)text.p, text.n, 0, 0, s->md, NULL) >= 0;
    if (matched == s->drop_matches) {
        r->flags |= SL_RF_DROPPED;
        sl_metric_inc(s->dropped);
    }
    return SL_OK;
}

static void filter_destroy(void *state)
{
    filter_step *s = state;
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_code_free(s->re);
    free(s);
}

const sl_step_ops sl_drop_step_ops = {
    .name = "drop",
    .keys = filter_keys,
    .nkeys = sizeof filter_keys / sizeof *filter_keys,
    .create = drop_create,
    .apply = filter_apply,
    .destroy = filter_destroy,
};

const sl_step_ops sl_keep_step_ops = {
    .name = "keep",
    .keys = filter_keys,
    .nkeys = sizeof filter_keys / sizeof *filter_keys,
    .create = keep_create,
    .apply = filter_apply,
    .destroy = filter_destroy,
};
