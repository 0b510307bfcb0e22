/* Container partial-line joining as input framing (container_frame.h): the
 * joiner of one source file's two streams, and the frame that keeps one
 * joiner per source file of an input and the batches holding its pieces. */
#include "collector/container_frame.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- the joiner ---- */

typedef struct held {
    char *buf;
    size_t len, cap;
    int64_t time_ns;
    int64_t since_ns; /* monotonic: when its first piece came */
    bool active, truncated;
} held;

struct sl_cri_joiner {
    size_t max;
    held s[2];
};

int sl_cri_joiner_new(size_t max_bytes, sl_cri_joiner **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return SL_ENOMEM;
    (*out)->max = max_bytes ? max_bytes : 1;
    return 0;
}

void sl_cri_joiner_free(sl_cri_joiner *j)
{
    if (!j) return;
    free(j->s[0].buf);
    free(j->s[1].buf);
    free(j);
}

size_t sl_cri_joiner_pending(const sl_cri_joiner *j)
{
    return (j->s[0].active ? j->s[0].len : 0) + (j->s[1].active ? j->s[1].len : 0);
}

/* Makes room for want more bytes, up to max; false on ENOMEM. */
static bool reserve(held *h, size_t want, size_t max)
{
    size_t need = h->len + want;
    if (need > max) need = max;
    if (need <= h->cap) return true;
    size_t cap = h->cap ? h->cap : 256;
    if (cap > max) cap = max;
    while (cap < need) cap = cap > max / 2 ? max : cap * 2;
    char *nb = realloc(h->buf, cap);
    if (!nb) return false;
    h->buf = nb;
    h->cap = cap;
    return true;
}

int sl_cri_joiner_add(sl_cri_joiner *j, const sl_cri_line *l, sl_slice *msg, int64_t *time_ns,
                      unsigned *flags)
{
    held *h = &j->s[l->stream == SL_CRI_STDERR];
    *flags = 0;
    if (!h->active && !l->partial) {
        *msg = l->msg;
        *time_ns = l->time_ns;
        return 0;
    }
    if (!h->active) {
        h->active = true;
        h->len = 0;
        h->time_ns = l->time_ns;
        h->since_ns = sl_monotonic_ns();
        h->truncated = false;
    }
    /* A piece is taken whole: held text stays under max, so the buffer is
     * bounded by max plus one line (which the input bounds). */
    int rc = 0;
    if (!reserve(h, l->msg.n, h->len + l->msg.n)) {
        h->truncated = true;
        rc = SL_ENOMEM;
    }
    size_t room = h->cap - h->len;
    if (l->escaped) {
        /* The docker daemon wrote the string, but nothing checked it
         * since: a malformed escape loses its backslash (decision 0029). */
        size_t o;
        bool cut = sl_json_unescape_to(l->msg.p, l->msg.n, h->buf + h->len, room, SL_JSON_BAD_LOOSE,
                                       &o) == SL_EFULL;
        h->len += o;
        h->truncated |= cut;
    } else {
        size_t k = l->msg.n < room ? l->msg.n : room;
        if (k) memcpy(h->buf + h->len, l->msg.p, k);
        h->len += k;
        h->truncated |= k < l->msg.n;
    }
    bool full = h->len >= j->max;
    if (l->partial && rc == 0 && !full) return SL_EAGAIN;
    *msg = (sl_slice){h->buf ? h->buf : "", h->len};
    *time_ns = h->time_ns;
    *flags = (h->truncated ? SL_CRI_TRUNCATED : 0u) | (l->partial ? SL_CRI_CUT_SIZE : 0u);
    h->active = false;
    return 0;
}

int sl_cri_joiner_take(sl_cri_joiner *j, int64_t held_before_ns, sl_slice *msg, int64_t *time_ns,
                       int *stream)
{
    for (int k = 0; k < 2; k++) {
        held *h = &j->s[k];
        if (!h->active || h->since_ns >= held_before_ns) continue;
        *msg = (sl_slice){h->buf ? h->buf : "", h->len};
        *time_ns = h->time_ns;
        *stream = k;
        h->active = false;
        return 0;
    }
    return SL_ENOENT;
}

int sl_cri_join_record(sl_batch *b, sl_record *r, bool docker, sl_cri_joiner *j, bool *cut,
                       sl_err *err)
{
    sl_cri_line l;
    int rc = docker ? sl_docker_parse(r->line.p, r->line.n, &l, err)
                    : sl_cri_parse(r->line.p, r->line.n, &l, err);
    if (cut) *cut = false;
    if (rc != 0) return rc;
    sl_slice msg = l.msg;
    int64_t t = l.time_ns;
    unsigned flags = 0;
    if (j && sl_cri_joiner_add(j, &l, &msg, &t, &flags) == SL_EAGAIN) {
        r->time_ns = l.time_ns;
        r->flags |= SL_RF_DROPPED;
        return 0;
    }
    rc = sl_cri_record_set(b, r, &l, msg, t, flags, docker ? "docker" : "cri", err);
    if (rc == 0 && cut) *cut = (flags & SL_CRI_CUT_SIZE) != 0;
    return rc;
}

/* ---- the frame ---- */

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

struct sl_container_frame {
    bool docker;
    sl_container_frame_opts o;
    int64_t join_wait_ns;
    sl_metric *errors, *partial_size, *partial_age, *partial_sources;
    joiner_slot *joiners;
    uint64_t clock;
    /* Messages of joiners given up for another source (more than
     * MAX_JOINERS with a piece held), shipped by the next take: at most one
     * per batch run between two takes, so a few slots suffice. */
    sl_batch *evicted[4];
    uint32_t nevicted;
};

const sl_cfg_key sl_container_frame_keys[SL_CONTAINER_FRAME_NKEYS] = {
    {.name = "max_bytes",
     .at = SL_CFG_AT(sl_container_frame_opts, max_bytes),
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .doc = "a joined message reaching this size is shipped as it is (`partial: max_bytes`)"},
    {.name = "flush_partial_after",
     .at = SL_CFG_AT(sl_container_frame_opts, flush_partial_after_ms),
     .type = SL_KEY_DURATION,
     .def = "5s",
     .doc = "a message whose last piece has not come after this long is shipped as it is "
            "(`partial: flush_partial_after`)"},
};

int sl_container_frame_new(sl_cfg *cfg, const sl_cfg_node *parse, const char *input,
                           sl_container_frame **out)
{
    *out = NULL;
    if (!parse || parse->kind != SL_CFG_SEQ || parse->n == 0) return SL_OK;
    const sl_cfg_node *first = parse->items[0];
    if (first->kind != SL_CFG_MAP || first->n != 1) return SL_OK;
    bool docker = strcmp(first->keys[0], "docker") == 0;
    if (!docker && strcmp(first->keys[0], "cri") != 0) return SL_OK;
    sl_container_frame *f = calloc(1, sizeof *f);
    if (!f) return SL_ENOMEM;
    f->docker = docker;
    /* flush_partial_after defaults to 5 s, as the file input's for a last
     * line without its newline. */
    if (sl_cfg_read(cfg, first->items[0], sl_container_frame_keys, SL_CONTAINER_FRAME_NKEYS,
                    &f->o)) {
        free(f);
        return SL_EINVAL;
    }
    f->join_wait_ns = f->o.flush_partial_after_ms * 1000000;
    char l[320];
    sl_metric_labels(l, sizeof l, "input", input, "step", first->keys[0]);
    /* The same series the chain counts the step's failures in. */
    f->errors = sl_counter("sluice_parse_errors_total",
                           "Records a parse step could not parse (shipped raw).", l);
    static const char help[] = "Container messages shipped before their final piece, by "
                               "reason (max_bytes, flush_partial_after, sources: more "
                               "files with a piece held than the 256 joined at once).";
    sl_metric_labels(l, sizeof l, "input", input, "reason", "max_bytes");
    f->partial_size = sl_counter("sluice_parse_partial_flushed_total", help, l);
    sl_metric_labels(l, sizeof l, "input", input, "reason", "flush_partial_after");
    f->partial_age = sl_counter("sluice_parse_partial_flushed_total", help, l);
    sl_metric_labels(l, sizeof l, "input", input, "reason", "sources");
    f->partial_sources = sl_counter("sluice_parse_partial_flushed_total", help, l);
    f->joiners = calloc(MAX_JOINERS, sizeof *f->joiners);
    if (!f->joiners) {
        free(f);
        return SL_ENOMEM;
    }
    *out = f;
    return SL_OK;
}

void sl_container_frame_free(sl_container_frame *f)
{
    if (!f) return;
    for (size_t k = 0; k < MAX_JOINERS; k++) {
        free(f->joiners[k].source);
        sl_cri_joiner_free(f->joiners[k].j);
        /* Stopping: held pieces stay unacknowledged and are read again. */
        for (uint32_t h = 0; h < f->joiners[k].nheld; h++) sl_batch_unref(f->joiners[k].held[h]);
    }
    for (uint32_t k = 0; k < f->nevicted; k++) sl_batch_unref(f->evicted[k]);
    free(f->joiners);
    free(f);
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

static sl_batch *take_slot(sl_container_frame *f, joiner_slot *js, int64_t held_before,
                           const char *why, sl_metric *count);

/* The joiner slot of the batch's source, made on first use. */
static joiner_slot *joiner_for(sl_container_frame *f, const sl_batch *b)
{
    const char *src = b->source ? b->source : "";
    joiner_slot *free_slot = NULL, *lru = NULL;
    f->clock++;
    for (size_t k = 0; k < MAX_JOINERS; k++) {
        joiner_slot *js = &f->joiners[k];
        if (js->source && strcmp(js->source, src) == 0) {
            js->used = f->clock;
            return js;
        }
        if (!js->source && !free_slot) free_slot = js;
        if (js->source && (!lru || js->used < lru->used)) lru = js;
    }
    joiner_slot *js = free_slot ? free_slot : lru;
    /* Given up with pieces held: its unfinished messages ship now, as a
     * flush_partial_after would later, and its batches are acknowledged
     * once they are (dropped with the joiner, they were lost unseen). */
    if (js->j && sl_cri_joiner_pending(js->j) && f->nevicted < 4) {
        sl_batch *nb = take_slot(f, js, INT64_MAX, "sources", f->partial_sources);
        if (nb) f->evicted[f->nevicted++] = nb;
    }
    release_held(js, NULL);
    free(js->source);
    sl_cri_joiner_free(js->j);
    js->source = strdup(src);
    js->j = NULL;
    if (!js->source || sl_cri_joiner_new(f->o.max_bytes, &js->j) != 0) {
        free(js->source);
        js->source = NULL;
        return NULL;
    }
    js->used = f->clock;
    return js;
}

/* One record. A line the frame cannot take (not the format, or no memory)
 * is left unflagged: the step parses it alone and reports it. */
static void frame_record(sl_container_frame *f, sl_batch *b, sl_record *r)
{
    joiner_slot *js = joiner_for(f, b);
    sl_cri_joiner *j = js ? js->j : NULL;
    bool cut = false;
    if (sl_cri_join_record(b, r, f->docker, j, &cut, NULL) != 0) return;
    if (!(r->flags & SL_RF_DROPPED)) r->flags |= SL_RF_FRAMED;
    if (cut) sl_metric_inc(f->partial_size);
    if (!js) return;
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
}

void sl_container_frame_run(sl_container_frame *f, sl_batch *b)
{
    if (!f) return;
    for (uint32_t i = 0; i < b->nrecords; i++)
        if (!(b->records[i].flags & SL_RF_DROPPED)) frame_record(f, b, &b->records[i]);
}

/* A batch of the slot's messages that waited since before held_before,
 * marked partial: why and counted in count; NULL when there are none. */
static sl_batch *take_slot(sl_container_frame *f, joiner_slot *js, int64_t held_before,
                           const char *why, sl_metric *count)
{
    sl_batch *nb = NULL;
    sl_slice msg;
    int64_t t;
    int stream;
    while (sl_cri_joiner_take(js->j, held_before, &msg, &t, &stream) == 0) {
        sl_metric_inc(count);
        if (!nb) {
            nb = sl_batch_new(2);
            if (!nb) {
                /* Out of memory: this message is lost, counted as a parse
                 * error; its pieces' batches must not stall the checkpoint. */
                sl_metric_inc(f->errors);
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
        /* Framed even when marking fails: the step must not parse the
         * joined text as a line of its own. */
        if (r) r->flags |= SL_RF_FRAMED;
        sl_err err;
        if (!r || sl_cri_mark_partial(nb, r, stream, why, &err) != 0) {
            /* Out of memory: the pieces are lost, counted as a parse error;
             * their batches are released below so nothing stalls. */
            sl_metric_inc(f->errors);
            continue;
        }
    }
    /* Nothing left in this joiner: the batches that held its pieces are
     * acknowledged once the new batch is. */
    if (nb && sl_cri_joiner_pending(js->j) == 0) release_held(js, nb);
    return nb;
}

sl_batch *sl_container_frame_take(sl_container_frame *f, int64_t now_ns)
{
    if (!f) return NULL;
    if (f->nevicted) {
        sl_batch *nb = f->evicted[0];
        memmove(f->evicted, f->evicted + 1, --f->nevicted * sizeof *f->evicted);
        return nb;
    }
    int64_t held_before = now_ns == INT64_MAX ? INT64_MAX : now_ns - f->join_wait_ns;
    for (size_t i = 0; i < MAX_JOINERS; i++) {
        joiner_slot *js = &f->joiners[i];
        if (!js->j || sl_cri_joiner_pending(js->j) == 0) continue;
        sl_batch *nb = take_slot(f, js, held_before, "flush_partial_after", f->partial_age);
        if (nb) return nb;
    }
    return NULL;
}
