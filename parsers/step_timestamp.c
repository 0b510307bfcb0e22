/* The `timestamp` step: the record's time from a field, in a named or
 * strftime-like format (parsers/timestamp.h). */
#include <stdlib.h>
#include <string.h>

#include "parsers/step.h"
#include "parsers/timestamp.h"

typedef struct timestamp_step {
    const char *field;             /* NULL: the record's line */
    const char *format, *timezone; /* read from timestamp_keys */
    sl_ts_format *ts;
} timestamp_step;

static const sl_cfg_key timestamp_keys[] = {
    {.name = "field",
     .at = SL_CFG_AT(timestamp_step, field),
     .type = SL_KEY_STR,
     .doc = "the field holding the time; the line when absent"},
    {.name = "format",
     .at = SL_CFG_AT(timestamp_step, format),
     .type = SL_KEY_STR,
     .def = "rfc3339",
     .doc = "`rfc3339`, `unix_ms`, `nginx`, strftime… (see Times)"},
    {.name = "timezone",
     .at = SL_CFG_AT(timestamp_step, timezone),
     .type = SL_KEY_STR,
     .doc = "zone of times without an offset (`Europe/Paris`); UTC when absent"},
};

static int timestamp_create(const sl_step_ctx *ctx, void **state)
{
    timestamp_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    if (sl_cfg_read(ctx->cfg, ctx->args, timestamp_keys, SL_CFG_NKEYS(timestamp_keys), s))
        return SL_EINVAL;
    sl_err err;
    if (sl_ts_format_new(s->format, s->timezone, &s->ts, &err) != 0) {
        sl_cfg_error(ctx->cfg, ctx->args, "%s", err.msg);
        return SL_EINVAL;
    }
    return 0;
}

static int timestamp_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    timestamp_step *s = state;
    /* Some encoders (PHP's json_encode) escape '/', as in 10\/Oct\/2023. */
    const sl_field *f = s->field && strcmp(s->field, "line") != 0
                            ? sl_record_field(r, s->field, strlen(s->field))
                            : NULL;
    if (!f || f->type != SL_V_ESCAPED) return sl_ts_parse_record(b, r, s->ts, s->field, err);
    sl_slice in;
    int rc = sl_step_subject(b, r, s->field, &in, err);
    if (rc != 0) return rc;
    int64_t ns;
    if (sl_ts_format_parse(s->ts, in.p, in.n, r->time_ns, &ns) != 0)
        return sl_errf(err, SL_EPARSE, "'%.*s' does not match the format",
                       (int)(in.n > 64 ? 64 : in.n), in.p);
    r->time_ns = ns;
    return 0;
}

static void timestamp_destroy(void *state)
{
    timestamp_step *s = state;
    if (!s) return;
    sl_ts_format_free(s->ts);
    free(s);
}

const sl_step_ops sl_timestamp_step_ops = {
    .name = "timestamp",
    .keys = timestamp_keys,
    .nkeys = SL_CFG_NKEYS(timestamp_keys),
    .create = timestamp_create,
    .apply = timestamp_apply,
    .destroy = timestamp_destroy,
};
