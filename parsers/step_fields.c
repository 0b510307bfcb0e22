/* The steps that only move fields about: `labels` (fields as labels),
 * `rename` and `remove`. */
#include <stdlib.h>
#include <string.h>

#include "parsers/step.h"

#define MAX_NAMES 32

typedef struct fields_step {
    const char *from[MAX_NAMES], *to[MAX_NAMES]; /* labels/rename: from field -> to name */
    size_t nnames;
} fields_step;

static const sl_cfg_key remove_keys[] = {
    {.name = "fields", .type = SL_KEY_LIST, .required = true, .doc = "fields to remove"},
};

/* `labels: [a, b]` or `labels: {label: field}`; `rename: {from: to}`. */
static int build_names(sl_cfg *cfg, const sl_cfg_node *n, fields_step *s, bool allow_list)
{
    if (n->kind == SL_CFG_SEQ && allow_list) {
        for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
            if (n->items[i]->kind != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, n->items[i], "expected a field name");
                return SL_EINVAL;
            }
            s->from[s->nnames] = s->to[s->nnames] = n->items[i]->scalar;
            s->nnames++;
        }
        return 0;
    }
    if (n->kind != SL_CFG_MAP) {
        sl_cfg_error(cfg, n,
                     allow_list ? "expected a list of fields or a map of label: field"
                                : "expected a map of from: to");
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
        if (n->items[i]->kind != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, n->items[i], "expected a field name");
            return SL_EINVAL;
        }
        /* labels map label -> field; rename maps from -> to. */
        s->from[s->nnames] = allow_list ? n->items[i]->scalar : n->keys[i];
        s->to[s->nnames] = allow_list ? n->keys[i] : n->items[i]->scalar;
        s->nnames++;
    }
    return 0;
}

static int create_names(const sl_step_ctx *ctx, void **state, bool allow_list)
{
    fields_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    return build_names(ctx->cfg, ctx->args, s, allow_list);
}

static int labels_create(const sl_step_ctx *ctx, void **state)
{
    return create_names(ctx, state, true);
}

static int rename_create(const sl_step_ctx *ctx, void **state)
{
    return create_names(ctx, state, false);
}

static int remove_create(const sl_step_ctx *ctx, void **state)
{
    fields_step *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    *state = s;
    size_t n = 0;
    sl_cfg_list(ctx->cfg, ctx->args, "fields", s->from, MAX_NAMES, &n);
    s->nnames = n;
    return 0;
}

static int labels_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    (void)err;
    fields_step *s = state;
    for (size_t i = 0; i < s->nnames; i++) {
        sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
        if (!f) continue;
        if (strcmp(s->from[i], s->to[i]) == 0) {
            f->flags |= SL_FF_LABEL;
        } else {
            sl_field *nf =
                sl_record_add_field(b, r, (sl_slice){s->to[i], strlen(s->to[i])}, f->val, f->type);
            if (nf) nf->flags |= SL_FF_LABEL;
        }
    }
    return SL_OK;
}

static int rename_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    (void)b;
    (void)err;
    fields_step *s = state;
    for (size_t i = 0; i < s->nnames; i++) {
        sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
        if (f) {
            f->key = (sl_slice){s->to[i], strlen(s->to[i])};
            f->flags &= (uint8_t)~SL_FF_VERBATIM; /* the new key is not the parser's */
        }
    }
    return SL_OK;
}

static int remove_apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    (void)b;
    (void)err;
    fields_step *s = state;
    for (size_t i = 0; i < s->nnames; i++) {
        sl_field *f;
        while ((f = sl_record_field(r, s->from[i], strlen(s->from[i])))) f->flags |= SL_FF_REMOVED;
    }
    return SL_OK;
}

const sl_step_ops sl_labels_step_ops = {
    .name = "labels",
    .own_args = true,
    .create = labels_create,
    .apply = labels_apply,
    .destroy = free,
};

const sl_step_ops sl_rename_step_ops = {
    .name = "rename",
    .own_args = true,
    .create = rename_create,
    .apply = rename_apply,
    .destroy = free,
};

const sl_step_ops sl_remove_step_ops = {
    .name = "remove",
    .keys = remove_keys,
    .nkeys = sizeof remove_keys / sizeof *remove_keys,
    .create = remove_create,
    .apply = remove_apply,
    .destroy = free,
};
