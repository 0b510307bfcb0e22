/* The journald input's checkpoint and the cursors of batches in flight
 * (see journald_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collector/journald_internal.h"
#include "core/fsutil.h"

static bool valid_cursor(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n >= CURSOR_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (c[i] < 0x21 || c[i] > 0x7e) return false;
    return true;
}

/* A time no honest checkpoint holds: more than a day past the clock (a
 * clock set wrong writes such times too, so it is not damage: the time is
 * only a hint for when the cursor itself is unusable). */
static uint64_t plausible_usec(uint64_t t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t limit = ((uint64_t)now.tv_sec + 86400) * 1000000u;
    return t <= limit ? t : 0;
}

/* The realtime (t=, hex microseconds) inside a cursor; 0 when absent. */
static uint64_t cursor_realtime(const char *c)
{
    for (const char *p = c; p && *p; p = strchr(p, ';')) {
        if (*p == ';') p++;
        if (p[0] == 't' && p[1] == '=') return strtoull(p + 2, NULL, 16);
    }
    return 0;
}

int sl_jd_parse_checkpoint(const char *data, size_t n, char **cursor, uint64_t *rt, sl_err *err)
{
    *cursor = NULL;
    *rt = 0;
    json_error_t je;
    json_t *root = json_loadb(data, n, 0, &je);
    const char *c = NULL;
    json_int_t t = 0, version = 1;
    if (!root ||
        json_unpack(root, "{s:s, s?I, s?I}", "cursor", &c, "realtime_usec", &t, "version",
                    &version) != 0 ||
        !valid_cursor(c) || version != 1 || t < 0) {
        json_decref(root);
        return sl_errf(err, SL_ECORRUPT, "not a journal checkpoint of version 1");
    }
    *cursor = strdup(c);
    *rt = plausible_usec(t > 0 ? (uint64_t)t : cursor_realtime(c));
    json_decref(root);
    return *cursor ? SL_OK : sl_errf(err, SL_ENOMEM, "out of memory");
}

static int parse_checkpoint(const char *path, char **cursor, uint64_t *rt, sl_err *err)
{
    char *data = NULL;
    size_t n = 0;
    int rc = sl_read_state_file(path, CKPT_MAX, &data, &n, err);
    if (rc != SL_OK) return rc;
    rc = sl_jd_parse_checkpoint(data, n, cursor, rt, err);
    free(data);
    if (rc == SL_ECORRUPT) sl_errf(err, rc, "%s: not a journal checkpoint of version 1", path);
    return rc;
}

/* Loads the saved cursor (or the previous generation when the file is
 * damaged). No checkpoint at all: *cursor stays NULL. Both generations
 * damaged, or gone after an earlier run (the .started marker says so):
 * the damaged file is kept aside, the journal read from its head
 * (duplicates rather than losses), counted and logged (decision 0059). */
void sl_jd_load_checkpoint(jd_input *in, char **cursor, uint64_t *rt)
{
    char prev[4200], aside[4200], marker[4200];
    snprintf(prev, sizeof prev, "%s.prev", in->ckpt_path);
    snprintf(aside, sizeof aside, "%s.damaged", in->ckpt_path);
    snprintf(marker, sizeof marker, "%s.started", in->ckpt_path);
    char l[256];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    sl_metric *lost =
        sl_counter("sluice_checkpoint_lost_total",
                   "Checkpoints found unreadable or missing after earlier runs: every "
                   "file was read again from its start.",
                   l);
    struct stat mst;
    bool ran_before = lstat(marker, &mst) == 0 || lstat(aside, &mst) == 0;
    if (!ran_before && !in->ctx->dry_run) {
        static const char note[] = "this input has run in this data_dir: start_at no longer "
                                   "applies\n";
        sl_err merr;
        if (sl_write_atomic(marker, note, sizeof note - 1, 0, &merr) != SL_OK)
            sl_log(SL_LOG_WARN, "marker_write_failed", "input=%s error=\"%s\"", in->ctx->name,
                   merr.msg);
    }
    sl_err err = {0};
    int rc = parse_checkpoint(in->ckpt_path, cursor, rt, &err);
    if (rc == SL_OK) return;
    sl_err perr = {0};
    int prc = parse_checkpoint(prev, cursor, rt, &perr);
    if (prc == SL_OK) {
        sl_metric_inc(in->m_ckpt_fallback);
        sl_log(SL_LOG_WARN, "checkpoint_fallback", "input=%s path=%s used=previous_generation",
               in->ctx->name, in->ckpt_path);
        return;
    }
    if (rc == SL_ENOENT && prc == SL_ENOENT) {
        if (!ran_before) return; /* a first run: start_at applies */
        snprintf(perr.msg, sizeof perr.msg, "missing");
    }
    if (rc != SL_ENOENT && !in->ctx->dry_run) sl_keep_damaged(in->ckpt_path, in->ctx->name);
    sl_metric_inc(lost);
    char q[4300];
    sl_log(SL_LOG_ERROR, "checkpoint_unreadable",
           "input=%s path=%s error=\"%s\" kept=%s journal=read_from_start", in->ctx->name,
           sl_log_quote(q, sizeof q, in->ckpt_path, strlen(in->ckpt_path)),
           rc == SL_ENOENT ? perr.msg : err.msg, rc != SL_ENOENT ? "damaged" : "none");
    in->ckpt_damaged = true;
}

void sl_jd_save_checkpoint(jd_input *in)
{
    if (in->ctx->dry_run || !in->acked_dirty || !in->acked_cursor) return;
    json_t *root = json_pack("{s:i, s:s, s:I}", "version", 1, "cursor", in->acked_cursor,
                             "realtime_usec", (json_int_t)in->acked_rt_usec);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    sl_err err = {0};
    int rc = text ? sl_write_atomic(in->ckpt_path, text, strlen(text), 1, &err)
                  : sl_errf(&err, SL_ENOMEM, "out of memory");
    free(text);
    if (rc != SL_OK) {
        sl_metric_inc(in->m_ckpt_errors);
        sl_log(SL_LOG_ERROR, "checkpoint_write_failed", "input=%s error=\"%s\"", in->ctx->name,
               err.msg);
        return;
    }
    in->acked_dirty = false;
}

void sl_jd_set_acked(jd_input *in, char *cursor, uint64_t rt)
{
    free(in->acked_cursor);
    in->acked_cursor = cursor;
    in->acked_rt_usec = rt;
    in->acked_dirty = true;
}

/* Moves the acknowledged cursor to the last batch every sink is done with. */
void sl_jd_prune_ring(jd_input *in)
{
    if (!in->wm) return;
    uint64_t mark = sl_watermark_get(in->wm);
    while (in->ring_len && in->ring[in->ring_head].end <= mark) {
        cursor_slot *s = &in->ring[in->ring_head];
        if (s->cursor) sl_jd_set_acked(in, s->cursor, s->rt_usec);
        s->cursor = NULL;
        in->ring_head = (in->ring_head + 1) % RING_CAP;
        in->ring_len--;
    }
    sl_metric_set(in->m_inflight, (int64_t)(in->seq - mark));
}
