/* A tenant per record for the Loki sink: `tenant: ${labels.team:-ops}`,
 * a template of shipper/template.h (${labels.NAME}, ${fields.NAME},
 * ${input}, ${source}, `:-default`, `$$` for a literal $; JSON escapes in
 * field values resolved). Every reference to a record must carry a default, so
 * no record is left without a tenant. What a record renders to is made a
 * tenant Loki accepts (loki_limits.h): other characters become '_', cut to
 * 150. See docs/decisions/0016-what-loki-accepts.md. */
#ifndef SLUICE_SHIPPER_LOKI_TENANT_H
#define SLUICE_SHIPPER_LOKI_TENANT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/batch.h"
#include "core/buf.h"

typedef struct sl_loki_tpl sl_loki_tpl;

/* 0, or SL_EINVAL with why (a sentence) when text is not a valid template (an
 * unknown reference, an unterminated ${, a reference to a record without a
 * default, a literal part or default Loki would refuse). */
int sl_loki_tpl_parse(const char *text, sl_loki_tpl **out, char *why, size_t cap);
void sl_loki_tpl_free(sl_loki_tpl *t);
/* True when the tenant depends on the record or its batch (any
 * reference); false for a template of literal text only. */
bool sl_loki_tpl_per_record(const sl_loki_tpl *t);
/* Appends the tenant of record r of batch b to out (reset first), made
 * acceptable to Loki. Returns 1 when it had to be changed, 0 when not,
 * SL_ENOMEM when out cannot grow. */
int sl_loki_tpl_render(const sl_loki_tpl *t, const sl_batch *b, const sl_record *r, sl_buf *out);

#endif
