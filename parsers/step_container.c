/* The `cri` and `docker` steps: the container runtime's line format
 * (parsers/cri.h), with partial lines joined per source file. A batch that
 * holds pieces of an unfinished message is acknowledged only after the
 * batch that completes it; a message whose last piece does not come within
 * flush_partial_after is handed back through take_held. */
#include <stdlib.h>
#include <string.h>

#include "parsers/cri.h"
#include "parsers/step.h"

/* Partial container lines are joined per source file: pieces of two files
 * must never meet. A bounded set, the least recently used goes first. */
#define MAX_JOINERS 256

/* Batches holding pieces of a message the joiner has not finished: their
 * acknowledgement waits until the batch that completes it is delivered. */
#define MAX_HELD 8

typedef struct joiner_slot {
    sl_batch *held[MAX_HELD];
    uint32_t nheld;
    char *source;
    sl_cri_joiner *j;
    uint64_t used;
} joiner_slot;

typedef struct container_step {
    bool docker;
    uint64_t join_max;    /* max_bytes, read from join_keys */
    int64_t join_wait_ms; /* flush_partial_after, read from join_keys */
    int64_t join_wait_ns;
    sl_metric *errors, *partial_size, *partial_age;
    joiner_slot *joiners;
    uint64_t clock;
} container_step;

static const sl_cfg_key join_keys[] = {
    {.name = "max_bytes",
     .at = SL_CFG_AT(container_step, join_max),
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .doc = "a joined message reaching this size is shipped as it is (`partial: max_bytes`)"},
    {.name = "flush_partial_after",
     .at = SL_CFG_AT(container_step, join_wait_ms),
     .type = SL_KEY_DURATION,
     .def = "5s",
     .doc = "a message whose last piece has not come after this long is shipped as it is "
            "(`partial: flush_partial_after`)"},
};

static int create(const sl_step_ctx *ctx, void **state, bool docker)
{
    sl_cfg *cfg = ctx->cfg;
    container_step *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    s->docker = docker;
    s->errors = ctx->errors;
    /* flush_partial_after defaults to 5 s, as the file input's for a last
     * line without its newline. */
    if (sl_cfg_read(cfg, ctx->args, join_keys, SL_CFG_NKEYS(join_keys), s)) return -1;
    s->join_wait_ns = s->join_wait_ms * 1000000;
    char pl[320];
    sl_metric_labels(pl, sizeof pl, "input", ctx->input, "reason", "max_bytes");
    s->partial_size = sl_counter("sluice_parse_partial_flushed_total",
                                 "Container messages shipped before their final piece, by "
                                 "reason (max_bytes, flush_partial_after).",
                                 pl);
    sl_metric_labels(pl, sizeof pl, "input", ctx->input, "reason", "flush_partial_after");
    s->partial_age = sl_counter("sluice_parse_partial_flushed_total",
                                "Container messages shipped before their final piece, by "
                                "reason (max_bytes, flush_partial_after).",
                                pl);
    s->joiners = calloc(MAX_JOINERS, sizeof *s->joiners);
    return s->joiners ? 0 : -1;
}

static int cri_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, false);
}

static int docker_create(const sl_step_ctx *ctx, void **state)
{
    return create(ctx, state, true);
}

static void destroy(void *state)
{
    container_step *s = state;
    if (!s) return;
    for (size_t k = 0; s->joiners && k < MAX_JOINERS; k++) {
        free(s->joiners[k].source);
        sl_cri_joiner_free(s->joiners[k].j);
        /* Stopping: held pieces stay unacknowledged and are read again. */
        for (uint32_t h = 0; h < s->joiners[k].nheld; h++) sl_batch_unref(s->joiners[k].held[h]);
    }
    free(s->joiners);
    free(s);
}

/* Releases a slot's held batches after `after` (or at once when NULL). */
static void release_held(joiner_slot *js, sl_batch *after)
{
    for (uint32_t h = 0; h < js->nheld; h++) {
        if (after)
            sl_batch_release_after(js->held[h], after);
        else
            sl_batch_done(js->held[h]);
    }
    js->nheld = 0;
}

/* The joiner slot of the batch's source, made on first use. */
static joiner_slot *joiner_for(container_step *s, const sl_batch *b)
{
    const char *src = b->source ? b->source : "";
    joiner_slot *free_slot = NULL, *lru = NULL;
    s->clock++;
    for (size_t k = 0; k < MAX_JOINERS; k++) {
        joiner_slot *js = &s->joiners[k];
        if (js->source && strcmp(js->source, src) == 0) {
            js->used = s->clock;
            return js;
        }
        if (!js->source && !free_slot) free_slot = js;
        if (js->source && (!lru || js->used < lru->used)) lru = js;
    }
    joiner_slot *js = free_slot ? free_slot : lru;
    /* Evicted with pieces held: they are lost with the joiner, so their
     * batches must not stall the checkpoint forever. */
    release_held(js, NULL);
    free(js->source);
    sl_cri_joiner_free(js->j);
    js->source = strdup(src);
    js->j = NULL;
    if (!js->source || sl_cri_joiner_new(s->join_max, &js->j) != 0) {
        free(js->source);
        js->source = NULL;
        return NULL;
    }
    js->used = s->clock;
    return js;
}

static int apply(void *state, sl_batch *b, sl_record *r, sl_err *err)
{
    container_step *s = state;
    joiner_slot *js = joiner_for(s, b);
    sl_cri_joiner *j = js ? js->j : NULL;
    bool cut = false;
    int rc = s->docker ? sl_docker_parse_record(b, r, r->line, j, &cut, err)
                       : sl_cri_parse_record(b, r, r->line, j, &cut, err);
    if (cut) sl_metric_inc(s->partial_size);
    if (rc != 0 || !js) return rc;
    if (sl_cri_joiner_pending(j)) {
        /* A piece is held: this batch is acknowledged only once the batch
         * that completes the message is. */
        bool known = false;
        for (uint32_t h = 0; h < js->nheld; h++) known |= js->held[h] == b;
        if (!known && js->nheld < MAX_HELD) {
            sl_batch_hold(b, 1);
            js->held[js->nheld++] = b;
        }
    } else if (js->nheld) {
        release_held(js, b);
    }
    return 0;
}

/* A batch of the slot's messages that waited since before held_before;
 * NULL when there are none. */
static sl_batch *take_slot(container_step *s, joiner_slot *js, int64_t held_before)
{
    sl_batch *nb = NULL;
    sl_slice msg;
    int64_t t;
    int stream;
    while (sl_cri_joiner_take(js->j, held_before, &msg, &t, &stream) == 0) {
        sl_metric_inc(s->partial_age);
        if (!nb) {
            nb = sl_batch_new(2);
            if (!nb) {
                /* Out of memory: this message is lost, counted as a parse
                 * error; its pieces' batches must not stall the checkpoint. */
                sl_metric_inc(s->errors);
                if (sl_cri_joiner_pending(js->j) == 0) release_held(js, NULL);
                return NULL;
            }
            const sl_batch *from = js->nheld ? js->held[js->nheld - 1] : NULL;
            sl_batch_set_names(nb, from ? from->input : NULL, js->source);
            if (from && from->nlabels) sl_batch_set_labels(nb, from->labels, from->nlabels);
        }
        char *d = sl_arena_alloc(&nb->arena, msg.n + 1);
        if (d) {
            if (msg.n) memcpy(d, msg.p, msg.n);
            d[msg.n] = '\0';
        }
        sl_record *r = d ? sl_batch_add(nb, (sl_slice){d, msg.n}, t, 0) : NULL;
        sl_err err;
        if (!r || sl_cri_mark_partial(nb, r, stream, "flush_partial_after", &err) != 0) {
            /* Out of memory: the pieces are lost, counted as a parse error;
             * their batches are released below so nothing stalls. */
            sl_metric_inc(s->errors);
            continue;
        }
    }
    /* Nothing left in this joiner: the batches that held its pieces are
     * acknowledged once the new batch is. */
    if (nb && sl_cri_joiner_pending(js->j) == 0) release_held(js, nb);
    return nb;
}

static sl_batch *take_held(void *state, int64_t now_ns)
{
    container_step *s = state;
    if (!s->joiners) return NULL;
    int64_t held_before = now_ns == INT64_MAX ? INT64_MAX : now_ns - s->join_wait_ns;
    for (size_t i = 0; i < MAX_JOINERS; i++) {
        joiner_slot *js = &s->joiners[i];
        if (!js->j || sl_cri_joiner_pending(js->j) == 0) continue;
        sl_batch *nb = take_slot(s, js, held_before);
        if (nb) return nb;
    }
    return NULL;
}

const sl_step_ops sl_cri_step_ops = {
    .name = "cri",
    .keys = join_keys,
    .nkeys = sizeof join_keys / sizeof *join_keys,
    .create = cri_create,
    .apply = apply,
    .destroy = destroy,
    .take_held = take_held,
};

const sl_step_ops sl_docker_step_ops = {
    .name = "docker",
    .keys = join_keys,
    .nkeys = sizeof join_keys / sizeof *join_keys,
    .create = docker_create,
    .apply = apply,
    .destroy = destroy,
    .take_held = take_held,
};
