/* The file input (collector/file.h): the plugin's create, run loop,
 * discoverer thread and destroy. Its parts and their shared state:
 * collector/file_state.h. */
#include "collector/file.h"

#include <stdlib.h>

#include "collector/file_checkpoint.h"
#include "collector/file_config.h"
#include "collector/file_discovery.h"
#include "collector/file_read.h"

static int file_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    file_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    if (sl_file_configure(in, ctx) != SL_OK) {
        sl_multiline_free(in->multiline);
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    in->find_eol = sl_eol_pick(in->validate_utf8);
    if (ctx->check_only) {
        sl_multiline_free(in->multiline);
        free(in);
        *state = NULL;
        return SL_OK;
    }
    sl_file_register_metrics(in);
    int rc = sl_file_ckpt_open(in, err);
    if (rc != SL_OK) {
        sl_multiline_free(in->multiline);
        free(in);
        return rc;
    }
    if (sl_file_guard_init(&in->guard, in->follow, in->globs, in->nglobs, in->follow_into,
                           in->nfollow_into, err) != SL_OK) {
        sl_ckpt_free(&in->ckpt);
        sl_multiline_free(in->multiline);
        free(in);
        return SL_EINVAL;
    }
    if (in->fresh && !ctx->dry_run) sl_file_ckpt_mark_started(in);
    /* The first turn saves, so that a checkpoint exists from the start. */
    in->ckpt_dirty = true;
    pthread_mutex_init(&in->mu, NULL);
    pthread_mutex_init(&in->stop_mu, NULL);
    pthread_cond_init(&in->stop_cv, NULL);
    in->watch = sl_watch_new();
    in->refused = calloc(INDEX_BUCKETS, sizeof *in->refused);
    in->waiting = calloc(INDEX_BUCKETS, sizeof *in->waiting);
    in->by_id = calloc(INDEX_BUCKETS, sizeof *in->by_id);
    in->by_path = calloc(INDEX_BUCKETS, sizeof *in->by_path);
    if (!in->find_eol) in->index = malloc(sizeof *in->index);
    if (!in->watch || !in->by_id || !in->by_path || !in->refused || !in->waiting ||
        (!in->find_eol && !in->index)) {
        sl_file_guard_free(&in->guard);
        free(in->refused);
        free(in->waiting);
        sl_watch_free(in->watch);
        free(in->by_id);
        free(in->by_path);
        free(in->index);
        sl_ckpt_free(&in->ckpt);
        sl_multiline_free(in->multiline);
        free(in);
        return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    }
    *state = in;
    return SL_OK;
}

/* The second thread: when the input's thread has been inside emit for a
 * poll interval (a full buffer under `when_full: block`), it takes mu and
 * scans, so files created and rotated away meanwhile are held open. */
static void *discoverer(void *arg)
{
    file_input *in = arg;
    pthread_mutex_lock(&in->stop_mu);
    while (!in->discoverer_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + in->poll_ms * 1000000;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&in->stop_cv, &in->stop_mu, &until);
        if (in->discoverer_stop) break;
        int64_t since = atomic_load(&in->emit_since_ns);
        if (!since || (sl_monotonic_ns() - since) / 1000000 < in->poll_ms) continue;
        if (pthread_mutex_trylock(&in->mu) != 0) continue;
        /* Still inside the same emit: the input's thread waits for mu. */
        if (atomic_load(&in->emit_since_ns) == since) sl_file_discover(in);
        pthread_mutex_unlock(&in->mu);
    }
    pthread_mutex_unlock(&in->stop_mu);
    return NULL;
}

static int run_loop(file_input *in);

static int file_run(void *state)
{
    file_input *in = state;
    pthread_mutex_lock(&in->mu);
    in->discoverer_started = pthread_create(&in->discoverer, NULL, discoverer, in) == 0;
    int rc = run_loop(in);
    pthread_mutex_lock(&in->stop_mu);
    in->discoverer_stop = true;
    pthread_cond_signal(&in->stop_cv);
    pthread_mutex_unlock(&in->stop_mu);
    pthread_mutex_unlock(&in->mu);
    if (in->discoverer_started) pthread_join(in->discoverer, NULL);
    in->discoverer_started = false;
    return rc;
}

static int run_loop(file_input *in)
{
    int64_t next_scan = 0, next_sweep = 0;
    while (!atomic_load(in->ctx->stop)) {
        int64_t now = sl_monotonic_ns();
        bool watching = sl_watch_active(in->watch);
        if (in->need_scan || now >= next_scan) {
            sl_file_scan(in);
            sl_file_reap(in);
            /* With inotify, rescans are a safety net; without, they are
             * how new files are found. */
            next_scan = now + (watching ? in->rescan_ms : in->poll_ms) * 1000000;
        }
        if (!watching || now >= next_sweep) {
            for (tracked *t = in->files; t; t = t->next) t->dirty = true;
            next_sweep = now + (watching ? in->rescan_ms : in->poll_ms) * 1000000;
        }
        sl_file_refill_tokens(in, now);
        in->turn++;
        if (in->wait_head) sl_file_open_waiting(in);
        bool busy = false;
        for (tracked *t = in->files; t && !atomic_load(in->ctx->stop); t = t->next) {
            if (!t->dirty && !t->partial && !t->gone) continue;
            long r = sl_file_read_some(in, t);
            if (r == SL_ECLOSED) return SL_OK;
            if (r > 0)
                busy = true;
            else
                t->dirty = false;
        }
        if (in->read_rate && in->tokens <= 0) busy = false;
        sl_file_close_idle_files(in, now);
        /* When something changed: periodically, and as soon as the input
         * is idle with acks that arrived since the last save (a crash right
         * after a burst then repeats little). Nothing changed: no write. */
        bool due = now >= in->next_ckpt_ns;
        /* Paths waiting for room: the input is not idle, only waiting. */
        if ((!busy && !in->wait_head) || due) {
            uint64_t marks = 0;
            for (tracked *t = in->files; t; t = t->next) marks += sl_watermark_get(t->wm) + t->ino;
            if (marks != in->saved_marks || in->ckpt_dirty) {
                /* Events first: files they name are looked at (fstat),
                 * the others are known to be at their end (issue 19). */
                sl_file_take_events(in);
                sl_file_save_checkpoint(in);
                in->events_fresh = false;
                in->saved_marks = marks;
                in->ckpt_dirty = false;
                in->next_ckpt_ns = now + in->checkpoint_ms * 1000000;
            }
        }
        if (in->deferred) {
            /* Files wait for room under max_open_files: look again soon,
             * not on every turn. */
            in->deferred = false;
            if (next_scan > now + in->poll_ms * 1000000) next_scan = now + in->poll_ms * 1000000;
        }
        if (!busy && in->ctx->idle && in->ctx->idle(in->ctx->emit_arg) == SL_ECLOSED) return SL_OK;
        /* Events taken early (before a save, a round of opens) were not
         * acted on yet: turn at once, as their arrival would have. */
        if (in->events_taken) {
            in->events_taken = false;
            continue;
        }
        if (!busy) {
            int wait_ms = (int)(in->poll_ms < 100 ? in->poll_ms : 100);
            bool pending = false;
            for (tracked *t = in->files; t && !pending; t = t->next)
                pending = t->partial || t->gone;
            if (watching && !pending) wait_ms = (int)in->poll_ms;
            if (in->wait_head && wait_ms > in->wait_backoff_ms) wait_ms = (int)in->wait_backoff_ms;
            sl_watch_wait(in->watch, wait_ms, sl_file_on_watch_event, in);
        }
    }
    return SL_OK;
}

static void file_destroy(void *state)
{
    file_input *in = state;
    if (!in) return;
    sl_file_save_checkpoint(in);
    while (in->files) {
        tracked *t = in->files;
        in->files = t->next;
        sl_file_close(in, t, NULL);
    }
    sl_ckpt_free(&in->ckpt);
    sl_file_discovery_free(in);
    free(in->refused);
    free(in->waiting);
    free(in->victims);
    sl_file_guard_free(&in->guard);
    sl_watch_free(in->watch);
    sl_multiline_free(in->multiline);
    pthread_mutex_destroy(&in->mu);
    pthread_mutex_destroy(&in->stop_mu);
    pthread_cond_destroy(&in->stop_cv);
    free(in->by_id);
    free(in->by_path);
    free(in->index);
    free(in);
}

const sl_input_ops sl_file_input_ops = {.type = "file",
                                        .create = file_create,
                                        .run = file_run,
                                        .destroy = file_destroy,
                                        .keys = sl_file_keys,
                                        .nkeys = SL_FILE_NKEYS};
