/* The `syslog` step: RFC 5424 and RFC 3164 headers become fields and the
 * record's time (parsers/syslog.h). */
#include <stdlib.h>

#include "parsers/step.h"
#include "parsers/syslog.h"
#include "parsers/timestamp.h"

typedef struct syslog_step {
    const char *field;    /* NULL: the record's line */
    const char *timezone; /* read from syslog_keys: the zone's name */
    sl_tz *tz;            /* for RFC 3164 times, which carry no offset */
} syslog_step;

static const sl_cfg_key syslog_keys[] = {
    {.name = "field",
     .at = SL_CFG_AT(syslog_step, field),
     .type = SL_KEY_STR,
     .doc = "the field to parse; the line when absent"},
    {.name = "timezone",
     .at = SL_CFG_AT(syslog_step, timezone),
     .type = SL_KEY_STR,
     .doc = "zone of times without an offset (`Mmm dd hh:mm:ss`, ISO without offset); UTC when "
            "absent"},
};

static int syslog_create(const sl_step_ctx *ctx, void **state)
{
    syslog_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    if (sl_cfg_read(ctx->cfg, ctx->args, syslog_keys, SL_CFG_NKEYS(syslog_keys), s))
        return SL_EINVAL;
    if (!s->timezone) return 0;
    sl_err err;
    if (sl_tz_load(s->timezone, &s->tz, &err) != 0) {
        sl_cfg_error(ctx->cfg, sl_cfg_get(ctx->args, "timezone"), "%s", err.msg);
        return SL_EINVAL;
    }
    return 0;
}

static int syslog_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    syslog_step *s = state;
    sl_slice in;
    int rc = sl_step_subject(b, r, s->field, &in, err);
    if (rc != 0) return rc;
    sl_syslog_opts o = {.now_ns = r->time_ns, .tz = s->tz};
    return sl_syslog_parse_record(b, r, in, &o, err);
}

static void syslog_destroy(void *state)
{
    syslog_step *s = state;
    if (!s) return;
    sl_tz_free(s->tz);
    free(s);
}

const sl_step_ops sl_syslog_step_ops = {
    .name = "syslog",
    .keys = syslog_keys,
    .nkeys = SL_CFG_NKEYS(syslog_keys),
    .create = syslog_create,
    .apply = syslog_apply,
    .destroy = syslog_destroy,
};
