#include "collector/journald.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "collector/checkpoint.h"
#include "collector/journald_internal.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"

static const char *const level_names[8] = {"emerg",   "alert",  "crit", "err",
                                           "warning", "notice", "info", "debug"};

/* ---- reading ---- */

static int new_chunk(jd_input *in, size_t need)
{
    size_t so_far = in->chunk ? in->chunk->len - in->e_off : 0;
    size_t want = so_far + need;
    size_t cap = in->chunk_bytes;
    /* An entry larger than a chunk gets a chunk of its own, with room for
     * the fields that usually follow. */
    if (cap < want + (64 << 10)) cap = want + (64 << 10);
    sl_chunk *c = sl_chunk_new(cap);
    if (!c) return SL_ENOMEM;
    if (so_far) memcpy(c->data, in->chunk->data + in->e_off, so_far);
    c->len = so_far;
    if (in->chunk) {
        in->chunk->len = in->e_off;
        sl_chunk_unref(in->chunk);
    }
    in->chunk = c;
    in->e_off = 0;
    return SL_OK;
}

/* Copies bytes of the current entry; returns their offset from the entry's
 * start, or -1 when memory ran out (the entry is then skipped). */
static int64_t copy_in(jd_input *in, const void *p, size_t n)
{
    if (!in->chunk || in->chunk->cap - in->chunk->len < n) {
        if (new_chunk(in, n) != SL_OK) {
            in->entry_failed = true;
            return -1;
        }
    }
    size_t off = in->chunk->len - in->e_off;
    memcpy(in->chunk->data + in->chunk->len, p, n);
    in->chunk->len += n;
    return (int64_t)off;
}

_Static_assert(MAX_SLOTS < 255, "slot_hash holds slot index + 1 in a byte");

/* Field names are 1-64 bytes; their length and three of their bytes tell
 * apart the names an input looks for (at most MAX_SLOTS). */
static size_t name_hash(const char *name, size_t n)
{
    size_t h = n * 0x9e37u ^ (unsigned char)name[0] * 0x85ebu ^
               (unsigned char)name[n / 2] * 0xc2b2u ^ (unsigned char)name[n - 1] * 0x27d4u;
    return (h ^ h >> 9) & (SLOT_HASH - 1);
}

static void index_slots(jd_input *in)
{
    memset(in->slot_hash, 0, sizeof in->slot_hash);
    for (size_t i = 0; i < in->nslots; i++) {
        size_t h = name_hash(in->slots[i].jname, in->slots[i].jlen);
        while (in->slot_hash[h]) h = (h + 1) & (SLOT_HASH - 1);
        in->slot_hash[h] = (uint8_t)(i + 1);
    }
}

static slot *lookup(jd_input *in, const char *name, size_t n, size_t *idx)
{
    if (n == 0 || n > MAX_FIELD_NAME) return NULL;
    for (size_t h = name_hash(name, n); in->slot_hash[h]; h = (h + 1) & (SLOT_HASH - 1)) {
        slot *s = &in->slots[in->slot_hash[h] - 1];
        if (s->jlen == n && memcmp(s->jname, name, n) == 0) {
            *idx = (size_t)in->slot_hash[h] - 1;
            return s;
        }
    }
    return NULL;
}

/* The '=' ending a field name: names are at most 64 bytes, so a longer
 * prefix is no name (such a field is skipped, as it always was). */
static const char *name_end(const char *p, size_t l)
{
    return memchr(p, '=', l < MAX_FIELD_NAME + 1 ? l : MAX_FIELD_NAME + 1);
}

static bool slot_wanted(const slot *s)
{
    return s->kind == SLOT_MESSAGE || s->out || s->nlabels;
}

/* Copies the kept fields of the current entry into the chunk. Returns flags
 * for the record. */
static uint32_t read_fields(jd_input *in, sd_journal *j)
{
    uint32_t flags = 0;
    bool truncated = false;
    const void *d;
    size_t l;
    int r;
    memset(in->present, 0, in->nslots);
    in->nextra = 0;
    in->entry_failed = false;
    in->e_off = in->chunk ? in->chunk->len : 0;
    sd_journal_restart_data(j);
    /* The entry object and its item array (16 bytes a field), and each data
     * object (its header is 64 bytes). */
    uint64_t touched = 64;
    while ((r = sd_journal_enumerate_available_data(j, &d, &l)) > 0) {
        touched += l + 64 + 16;
        const char *p = d;
        const char *eq = name_end(p, l);
        if (!eq) continue;
        size_t nlen = (size_t)(eq - p), vlen = l - nlen - 1;
        size_t idx;
        slot *s = lookup(in, p, nlen, &idx);
        if (s) {
            if (in->present[idx] || !slot_wanted(s)) continue; /* first value wins */
            if (s->kind == SLOT_PRIORITY) {
                if (vlen != 1 || eq[1] < '0' || eq[1] > '7') continue;
                in->prio = (uint8_t)(eq[1] - '0');
                in->present[idx] = true;
                continue;
            }
            size_t lim = s->kind == SLOT_MESSAGE ? in->max_message_bytes : in->max_field_bytes;
            if (vlen > lim) {
                vlen = lim;
                truncated = true;
            }
            int64_t off = copy_in(in, eq + 1, vlen);
            if (off < 0) break;
            in->present[idx] = true;
            in->val_off[idx] = (uint32_t)off;
            in->val_len[idx] = (uint32_t)vlen;
            continue;
        }
        if (!in->keep_all || nlen == 0 || nlen > MAX_FIELD_NAME) continue;
        if (!sl_jd_valid_field_name(p, nlen)) {
            /* No journald writes such a name (a damaged or crafted file):
             * as a record's key it could pass for one of the input's own
             * lower-case fields, or carry bytes no sink takes as a key. */
            sl_metric_inc(in->m_invalid_names);
            continue;
        }
        if (in->nextra == MAX_ENTRY_FIELDS) {
            truncated = true;
            continue;
        }
        if (vlen > in->max_field_bytes) {
            vlen = in->max_field_bytes;
            truncated = true;
        }
        int64_t off = copy_in(in, p, nlen + 1 + vlen);
        if (off < 0) break;
        in->x_key_off[in->nextra] = (uint32_t)off;
        in->x_key_len[in->nextra] = (uint32_t)nlen;
        in->x_val_off[in->nextra] = (uint32_t)(off + (int64_t)nlen + 1);
        in->x_val_len[in->nextra] = (uint32_t)vlen;
        in->nextra++;
    }
    in->read_since_open += touched;
    if (r < 0) sl_jd_count_error(in, "enumerate_data", r);
    if (truncated) flags |= SL_RF_TRUNCATED;
    return flags;
}

static bool batch_full(const sl_batch *b)
{
    return b->nrecords == b->cap_records || b->nchunks >= SL_BATCH_MAX_CHUNKS;
}

/* Takes the current batch off the input with its cursor (the journal is
 * still on the batch's last entry) and its acknowledgement ticket. *out is
 * NULL when there is nothing to hand on. */
static int seal_batch(jd_input *in, sl_batch **out)
{
    *out = NULL;
    sl_batch *b = in->batch;
    if (!b) return SL_OK;
    in->batch = NULL;
    sl_metric_add(in->m_bytes, in->bytes_unreported);
    in->bytes_unreported = 0;
    if (in->pending) {
        /* The journal is on an entry not read yet, so the batch's cursor is
         * unknown: never acknowledge it; it is read again after a restart. */
        sl_batch_unref(b);
        return SL_OK;
    }
    uint64_t begin = in->batch_begin, end = in->seq;
    sl_metric_add(in->m_records, b->nrecords);
    char *c = NULL;
    if (sd_journal_get_cursor(in->j, &c) < 0) {
        sl_jd_count_error(in, "get_cursor", EIO);
        c = NULL;
    }
    if (c) {
        free(in->read_cursor);
        in->read_cursor = strdup(c);
        in->read_rt_usec = in->last_rt_usec;
    }
    if (!in->ctx->dry_run) {
        if (sl_watermark_issue(in->wm, begin, end) != SL_OK) {
            free(c);
            sl_batch_unref(b);
            return SL_EINVAL;
        }
        /* read_some made room before the batch was started. */
        cursor_slot *s = &in->ring[(in->ring_head + in->ring_len) % RING_CAP];
        *s = (cursor_slot){end, in->last_rt_usec, c};
        in->ring_len++;
        b->ticket = (sl_ack_ticket){sl_watermark_ref(in->wm), begin, end};
    } else {
        free(c);
    }
    *out = b;
    return SL_OK;
}

/* Hands a sealed batch to the pipeline. caught_up: it ends at the end of
 * the journal. An input that read at least a whole batch before catching
 * up marks the batch flush_now, so the sinks send it with what they hold
 * at once instead of after their max_batch_wait: the backlog's tail (the
 * last entries of a run over a journal, or of a catch-up after downtime)
 * arrives when read. A trickle (each wake-up reads less than a batch)
 * never does, and at most one batch a second does, so the requests an
 * agent sends grow by at most one a second (decision 0042). */
static int hand_on(jd_input *in, sl_batch *b, bool caught_up)
{
    if (!b) return SL_OK;
    bool full = batch_full(b);
    if (caught_up) {
        if (in->behind || full) sl_batch_urge(b, sl_monotonic_ns(), &in->next_urgent_ns);
        in->behind = false;
    } else if (full) {
        in->behind = true;
    }
    return in->ctx->emit(in->ctx->emit_arg, b);
}

static int flush_batch(jd_input *in, bool caught_up)
{
    sl_batch *b;
    int rc = seal_batch(in, &b);
    return rc != SL_OK ? rc : hand_on(in, b, caught_up);
}

static sl_field *add_field(sl_batch *b, sl_record *r, const char *k, size_t kn, sl_slice v)
{
    return sl_record_add_field(b, r, (sl_slice){k, kn}, v, SL_V_STRING);
}

/* Turns the entry read by read_fields into a record of the current batch. */
static int commit_entry(jd_input *in, sd_journal *j, uint32_t flags)
{
    if (!in->batch) {
        sl_batch *b = sl_batch_new(in->batch_records);
        if (!b ||
            sl_batch_set_names(b, in->ctx->name, in->directory ? in->directory : "journal") !=
                SL_OK ||
            sl_batch_set_labels(b, in->labels, in->nlabels) != SL_OK) {
            if (b) sl_batch_unref(b);
            return SL_ENOMEM;
        }
        in->batch = b;
        in->batch_begin = in->seq;
    }
    sl_batch *b = in->batch;
    /* Failing here leaves the batch empty (a batch holding records always
     * has a chunk, and read_some keeps room for one more). */
    if (!in->chunk && new_chunk(in, 0) != SL_OK) return SL_ENOMEM;
    if (sl_batch_add_chunk(b, in->chunk) != SL_OK) return SL_ENOMEM;
    const char *base = in->chunk->data + in->e_off;
    uint64_t usec = 0;
    int64_t t = sd_journal_get_realtime_usec(j, &usec) >= 0 ? (int64_t)usec * 1000 : sl_now_ns();
    in->last_rt_usec = usec;
    sl_slice line = {"", 0};
    if (in->present[0]) {
        line = (sl_slice){base + in->val_off[0], in->val_len[0]};
        if (sl_utf8_valid_prefix(line.p, line.n) != line.n) flags |= SL_RF_INVALID_UTF8;
    } else {
        sl_metric_inc(in->m_missing);
    }
    sl_record *r = sl_batch_add(b, line, t, in->seq + 1);
    if (!r) return SL_ENOMEM;
    in->seq++;
    r->flags = flags;
    in->bytes_unreported += in->chunk->len - in->e_off;
    /* The record's field array at its final size at once: grown from the
     * default 16 it would be allocated again and copied at 16, 32 and 64
     * fields (fields.keep: ["*"]), and hold unused room below 16. */
    uint32_t nf = in->nextra;
    for (size_t i = 1; i < in->nslots; i++)
        if (in->present[i]) nf += (in->slots[i].out ? 1 : 0) + in->slots[i].nlabels;
    if (nf && (r->fields = sl_arena_alloc(&b->arena, (size_t)nf * sizeof *r->fields)))
        r->cap_fields = nf;
    for (size_t i = 1; i < in->nslots; i++) {
        if (!in->present[i]) continue;
        const slot *s = &in->slots[i];
        sl_slice v = s->kind == SLOT_PRIORITY
                         ? (sl_slice){level_names[in->prio], strlen(level_names[in->prio])}
                         : (sl_slice){base + in->val_off[i], in->val_len[i]};
        sl_field *f = s->out ? add_field(b, r, s->out, s->outlen, v) : NULL;
        if (s->out && !f) r->flags |= SL_RF_TRUNCATED; /* arena bound: the record goes as is */
        for (uint32_t k = 0; k < s->nlabels; k++) {
            if (f && strcmp(s->labels[k], s->out) == 0) {
                f->flags |= SL_FF_LABEL;
                continue;
            }
            sl_field *lf = add_field(b, r, s->labels[k], strlen(s->labels[k]), v);
            if (lf)
                lf->flags |= SL_FF_LABEL;
            else
                r->flags |= SL_RF_TRUNCATED;
        }
    }
    for (uint32_t i = 0; i < in->nextra; i++)
        if (!add_field(b, r, base + in->x_key_off[i], in->x_key_len[i],
                       (sl_slice){base + in->x_val_off[i], in->x_val_len[i]}))
            r->flags |= SL_RF_TRUNCATED;
    return SL_OK;
}

/* sd-journal makes the newest entry visible before its writer has linked
 * the entry's new data objects; a reader in between sees those objects as
 * bad and enumerate_data skips them silently (systemd 252). A MESSAGE that
 * is missing may be such a field: read the entry again, at once and then
 * after a short pause (at most ten pauses a second, so entries that truly
 * have no MESSAGE cannot slow the input down). */
static uint32_t reread_without_message(jd_input *in, sd_journal *j, uint32_t flags)
{
    for (int attempt = 0; attempt < 3 && !in->present[0]; attempt++) {
        if (attempt == 2) {
            int64_t now = sl_monotonic_ns();
            if (now < in->next_pause_ns) break;
            in->next_pause_ns = now + 100000000;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
        flags = read_fields(in, j);
    }
    return flags;
}

/* Time to close the journal and open it again, so libsystemd unmaps the
 * journal file windows the reader went through (decision 0048). */
static bool reopen_due(const jd_input *in)
{
    return in->reopen_bytes && in->read_since_open >= in->reopen_bytes;
}

static bool stopping(const jd_input *in)
{
    return atomic_load(in->ctx->stop);
}

/* Reads up to ENTRIES_PER_TURN entries. Returns how many (0: at the end of
 * the journal), SL_EAGAIN when acknowledgements must catch up first, or an
 * error (SL_ECLOSED: shutting down). */
static int read_some(jd_input *in)
{
    sd_journal *j = in->j;
    int n = 0;
    while (n < ENTRIES_PER_TURN) {
        /* Flush points are here, between entries, while the journal is on
         * the last entry read: its cursor is the batch's. An entry adds at
         * most one chunk to a batch, so checking before each one suffices.
         * A full batch is sealed here and handed on once the next step
         * tells whether it ends at the end of the journal (hand_on). */
        sl_batch *sealed = NULL;
        if (in->batch && batch_full(in->batch)) {
            int rc = seal_batch(in, &sealed);
            if (rc != SL_OK) return rc;
            if (stopping(in)) {
                rc = hand_on(in, sealed, false);
                return rc != SL_OK ? rc : n;
            }
            int64_t now = sl_monotonic_ns();
            if (now >= in->next_process_ns) {
                /* Busy: still drain change notifications now and then. */
                sd_journal_process(j);
                sl_jd_check_directory(in);
                in->next_process_ns = now + 1000000000LL;
            }
        }
        if (!in->batch && !in->ctx->dry_run && in->ring_len == RING_CAP) {
            sl_jd_prune_ring(in);
            if (in->ring_len == RING_CAP) {
                int rc = hand_on(in, sealed, false);
                if (rc != SL_OK) return rc;
                return n ? n : SL_EAGAIN;
            }
        }
        int r = in->pending ? 1 : sd_journal_next(j);
        in->pending = false;
        if (sealed) {
            int rc = hand_on(in, sealed, r == 0);
            /* Stopping or shutting down: the entry the journal moved to is
             * read first next time (pending). */
            if (rc != SL_OK || stopping(in)) {
                if (r > 0) in->pending = true;
                return rc != SL_OK ? rc : n;
            }
            if (r > 0 && reopen_due(in)) {
                /* Between batches: the entry the journal moved to is read
                 * first after the reopen, which seeks just after the batch
                 * handed on (jd_run). */
                in->pending = true;
                return n;
            }
        }
        if (r < 0) {
            sl_jd_count_error(in, "next", r);
            int rc = flush_batch(in, false);
            if (rc != SL_OK) return rc;
            in->next_errors++;
            return SL_EAGAIN;
        }
        in->next_errors = 0;
        if (r == 0) {
            int rc = flush_batch(in, true);
            return rc != SL_OK ? rc : n;
        }
        uint32_t flags = read_fields(in, j);
        if (!in->present[0]) flags = reread_without_message(in, j, flags);
        if (in->entry_failed) {
            /* Out of memory for this entry: the record carries what fit. */
            sl_jd_count_error(in, "copy_entry", ENOMEM);
            flags |= SL_RF_TRUNCATED;
        }
        if (flags & SL_RF_TRUNCATED) sl_metric_inc(in->m_truncated);
        int rc = commit_entry(in, j, flags);
        if (rc != SL_OK) {
            /* Out of memory before the record existed: read it again. */
            in->pending = true;
            sl_jd_count_error(in, "commit_entry", ENOMEM);
            return SL_EAGAIN;
        }
        n++;
    }
    return n;
}

static void close_journal(jd_input *in)
{
    if (in->j) sd_journal_close(in->j);
    in->j = NULL;
}

/* Starts over with a fresh sd_journal after the last entry handed on.
 * defer_watch: see watch_deferred. */
static void reopen(jd_input *in, bool defer_watch)
{
    flush_batch(in, false);
    close_journal(in);
    char *c = in->read_cursor ? strdup(in->read_cursor) : NULL;
    int r = sl_jd_open_journal(in, c, c ? in->read_rt_usec : 0, defer_watch);
    free(c);
    in->read_since_open = 0;
    if (r < 0) sl_jd_count_error(in, "reopen", r);
}

static int jd_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    jd_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    if (sl_jd_configure(in, ctx) != SL_OK) {
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) {
        free(in);
        *state = NULL;
        return SL_OK;
    }
    index_slots(in);
    sl_jd_register_metrics(in);
    sl_jd_sigbus_install();
    in->rl_errors.interval_ns = 10 * 1000000000LL;
    /* A dry run writes nothing. */
    int rc = sl_ckpt_path(ctx->data_dir, ctx->name, ".journal", !ctx->dry_run, in->ckpt_path,
                          sizeof in->ckpt_path, err);
    if (rc != SL_OK) {
        free(in);
        return rc;
    }
    in->ring = calloc(RING_CAP, sizeof *in->ring);
    in->wm = sl_watermark_new(0);
    if (!in->ring || !in->wm) {
        free(in->ring);
        sl_watermark_unref(in->wm);
        free(in);
        return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    }
    *state = in;
    return SL_OK;
}

static int jd_run(void *state)
{
    jd_input *in = state;
    char *cursor = NULL;
    uint64_t rt = 0;
    sl_jd_load_checkpoint(in, &cursor, &rt);
    if (cursor) {
        in->acked_cursor = strdup(cursor);
        in->acked_rt_usec = rt;
        in->read_cursor = cursor;
        in->read_rt_usec = rt;
    }
    int64_t next_open = 0, next_ckpt = 0, next_reopen = 0;
    int rc = SL_OK;
    in->sigbus_seen = sl_jd_sigbus_count();
    while (!stopping(in)) {
        int64_t now = sl_monotonic_ns();
        if (!in->j) {
            if (now >= next_open) {
                char *c = in->read_cursor ? strdup(in->read_cursor) : NULL;
                int r = sl_jd_open_journal(in, c, in->read_rt_usec, false);
                free(c);
                if (r < 0) {
                    sl_jd_count_error(in, in->directory ? "open_directory" : "open", r);
                    next_open = now + 2000000000LL;
                } else {
                    sl_log(SL_LOG_INFO, "journal_opened", "input=%s source=%s cursor=%s",
                           in->ctx->name, in->directory ? in->directory : "local",
                           in->read_cursor ? in->read_cursor : "none");
                    sl_jd_scan_directory(in);
                    next_reopen = now + 10000000000LL;
                }
            }
            if (!in->j) {
                struct timespec ts = {0, 100000000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        if (now >= next_ckpt) {
            sl_jd_prune_ring(in);
            sl_jd_save_checkpoint(in);
            next_ckpt = now + in->checkpoint_ms * 1000000;
        }
        int n = read_some(in);
        if (n == SL_ECLOSED) break;
        if (n < 0 && n != SL_EAGAIN) {
            rc = n;
            sl_jd_count_error(in, "read", n == SL_ENOMEM ? ENOMEM : EIO);
        }
        uint64_t faults = sl_jd_sigbus_count();
        if (faults != in->sigbus_seen) {
            /* A journal file was cut under its mappings (a zero page now
             * stands for what is gone): start over on the files as they
             * are, and look at each again, so the cut one is reported. */
            sl_metric_add(in->m_shrank, faults - in->sigbus_seen);
            sl_log(SL_LOG_WARN, "journal_file_shrank", "input=%s faults=%llu action=reopen",
                   in->ctx->name, (unsigned long long)(faults - in->sigbus_seen));
            in->sigbus_seen = faults;
            sl_jd_forget_files(in);
            in->reopen_wanted = true;
        }
        if (in->reopen_wanted) {
            reopen(in, false);
            if (in->j) sl_jd_scan_directory(in);
            continue;
        }
        if (in->next_errors >= MAX_NEXT_ERRORS) {
            reopen(in, false);
            in->next_errors = 0;
            continue;
        }
        if (n >= 0 && !in->batch && reopen_due(in)) {
            /* Only between batches: a batch is never cut short here, and
             * the batch handed on last holds the cursor reopened after. */
            sl_log(SL_LOG_DEBUG, "journal_reopened", "input=%s read_bytes=%llu cursor=%s",
                   in->ctx->name, (unsigned long long)in->read_since_open,
                   in->read_cursor ? in->read_cursor : "none");
            reopen(in, in->have_fd);
            sl_metric_inc(in->m_reopens);
            continue;
        }
        if (!in->j) continue;
        if (n > 0) continue;
        if (n == SL_EAGAIN || !in->have_fd) {
            struct timespec ts = {0, n == SL_EAGAIN ? 10000000 : 100000000};
            nanosleep(&ts, NULL);
            if (!in->have_fd && now >= next_reopen) {
                /* No inotify: new journal files show up by reopening. */
                reopen(in, false);
                next_reopen = now + 10000000000LL;
            }
        } else {
            if (in->watch_deferred) {
                /* Read once more with the watches made: entries appended
                 * before they existed raised no event. */
                in->watch_deferred = false;
                in->have_fd = sd_journal_get_fd(in->j) >= 0;
                continue;
            }
            int r = sd_journal_wait(in->j, 100000);
            if (r < 0) {
                sl_jd_count_error(in, "wait", r);
                struct timespec ts = {0, 100000000};
                nanosleep(&ts, NULL);
            }
        }
        sl_jd_check_directory(in);
    }
    /* Whatever was read goes out while the sinks drain. */
    if (in->batch && in->j) flush_batch(in, false);
    return rc == SL_ECLOSED ? SL_OK : rc;
}

static void jd_destroy(void *state)
{
    jd_input *in = state;
    if (!in) return;
    if (in->batch) sl_batch_unref(in->batch);
    sl_jd_prune_ring(in);
    sl_jd_save_checkpoint(in);
    close_journal(in);
    for (size_t i = 0; i < in->ring_len; i++) free(in->ring[(in->ring_head + i) % RING_CAP].cursor);
    free(in->ring);
    sl_watermark_unref(in->wm);
    if (in->chunk) sl_chunk_unref(in->chunk);
    free(in->acked_cursor);
    free(in->read_cursor);
    sl_jd_forget_files(in);
    free(in->seen);
    free(in);
}

const sl_input_ops sl_journald_input_ops = {.type = "journald",
                                            .create = jd_create,
                                            .run = jd_run,
                                            .destroy = jd_destroy,
                                            .keys = sl_jd_keys,
                                            .nkeys = SL_JD_NKEYS};
