/* Templates for sink keys: text with references to the record, compiled once
 * when the sink is created and rendered per record into the caller's buffer
 * without allocating. Used by the Kafka sink (`topic`, `key`) and the Loki
 * sink (`tenant`); a new sink key takes one by calling sl_tpl_compile.
 *
 * Syntax:
 *   ${labels.NAME}  the record's label NAME: a field a parse step marked as
 *                   a label, else the input's static label of that name
 *   ${fields.NAME}  the record's field NAME (the later one when set twice)
 *   ${input}        the name of the record's input
 *   ${source}       the record's file path (or journal), empty when none
 *   ${labels}       the whole label set, {k="v",...} sorted by name (only
 *                   where the sink allows it: SL_TPL_LABEL_SET)
 *   ${REF:-TEXT}    TEXT when REF is missing or renders empty
 *   $$              a literal $
 * Anything else is literal text. A default is literal text up to the first
 * '}' (no references inside it).
 *
 * Missing values: a reference to a label, a field or a source the record
 * does not have renders as nothing (or its default). Field values that
 * still hold JSON escapes are rendered unescaped (a malformed escape is kept
 * as written). The caller decides what an empty or cut rendering means for
 * its key (the Kafka topic drops the record, the Loki tenant becomes "_").
 *
 * The config loader leaves these references for the sink and expands every
 * other ${VAR} from the environment (core/config_load.c); it also turns $$
 * into $ first, and a $ not followed by { or $ is literal here. */
#ifndef SLUICE_SHIPPER_TEMPLATE_H
#define SLUICE_SHIPPER_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/batch.h"
#include "core/err.h"

#define SL_TPL_MAX_PARTS 32
/* At most this many labels take part in ${labels} (and sl_tpl_labels). */
#define SL_TPL_MAX_LABELS 64

typedef struct sl_tpl sl_tpl;

/* What a template refers to (sl_tpl_uses). */
enum sl_tpl_use {
    SL_TPL_USES_LABELS = 1 << 0,
    SL_TPL_USES_FIELDS = 1 << 1,
    SL_TPL_USES_INPUT = 1 << 2,
    SL_TPL_USES_SOURCE = 1 << 3,
};

/* What a sink allows in one of its keys. */
typedef struct sl_tpl_rules {
    bool label_set;    /* ${labels} is allowed */
    bool need_default; /* ${labels.NAME} and ${fields.NAME} need a non-empty :-default */
    /* When set, literal text and defaults must pass it; text_rule then says
     * what is allowed, e.g. "Loki refuses in a tenant (allowed: ...)". */
    bool (*text_ok)(const char *p, size_t n);
    const char *text_rule;
} sl_tpl_rules;

/* Compiles text (rules may be NULL: no restriction, ${labels} refused).
 * SL_EINVAL with a sentence in err when it is not a valid template (unknown
 * reference, unterminated ${, more than SL_TPL_MAX_PARTS parts, a rule
 * broken); SL_ENOMEM. */
int sl_tpl_compile(const char *text, const sl_tpl_rules *rules, sl_tpl **out, sl_err *err);
void sl_tpl_free(sl_tpl *t);

/* enum sl_tpl_use bits; 0 for literal text only. */
unsigned sl_tpl_uses(const sl_tpl *t);

/* True when r may render differently from the other records of its batch
 * (a field, or a label with label fields on r); false when one rendering
 * per batch serves every record. */
bool sl_tpl_varies(const sl_tpl *t, const sl_record *r);

/* Renders for record r of batch b into out (not NUL-terminated) and returns
 * the length. What does not fit in cap is cut, and *cut (when non-NULL)
 * says so. b and r may be NULL: every reference is then missing (a literal
 * template renders its text). */
size_t sl_tpl_render(const sl_tpl *t, const sl_batch *b, const sl_record *r, char *out, size_t cap,
                     bool *cut);

/* The label set of r: the input's static labels, overridden by fields a
 * parse step marked as labels (the later one wins); at most
 * SL_TPL_MAX_LABELS, in that order. Returns how many. */
int sl_tpl_labels(const sl_batch *b, const sl_record *r, const sl_field **out);

/* A field's value as text (JSON escapes resolved), cut at cap. */
size_t sl_tpl_value(const sl_field *f, char *out, size_t cap);

#endif
