/* The registry of parse steps (parsers/steps.def) and what steps share. */
#include "parsers/step.h"

#include <string.h>

#include "parsers/json.h"

#define SL_STEP(n) extern const sl_step_ops sl_##n##_step_ops;
#include "parsers/steps.def"
#undef SL_STEP

#define SL_STEP(n) &sl_##n##_step_ops,
static const sl_step_ops *const steps[] = {
#include "parsers/steps.def"
};
#undef SL_STEP

#define SL_STEP(n) ", " #n
static const char choices[] =
#include "parsers/steps.def"
    ;
#undef SL_STEP

const sl_step_ops *sl_step_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof steps / sizeof *steps; i++)
        if (strcmp(steps[i]->name, name) == 0) return steps[i];
    return NULL;
}

const sl_step_ops *sl_step_at(size_t i)
{
    return i < sizeof steps / sizeof *steps ? steps[i] : NULL;
}

const char *sl_step_choices(void)
{
    return choices + 2; /* past the leading ", " */
}

int sl_step_subject(sl_batch *b, const sl_record *r, const char *field, sl_slice *out, sl_err *err)
{
    if (!field || strcmp(field, "line") == 0) {
        *out = r->line;
        return 0;
    }
    sl_field *f = sl_record_field(r, field, strlen(field));
    if (!f) return sl_errf(err, SL_ENOENT, "no field '%s'", field);
    *out = f->val;
    if (f->type != SL_V_ESCAPED) return 0;
    char *d = sl_arena_alloc(&b->arena, f->val.n + 1);
    if (!d) return sl_errf(err, SL_ENOMEM, "batch arena full");
    ptrdiff_t m = sl_json_unescape(f->val.p, f->val.n, d, f->val.n);
    if (m < 0) return sl_errf(err, SL_EPARSE, "field '%s' holds an invalid JSON escape", field);
    d[m] = '\0';
    *out = (sl_slice){d, (size_t)m};
    return 0;
}
