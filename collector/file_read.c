/* The file input's reading and emitting (collector/file_read.h). */
#include "collector/file_read.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "collector/file_discovery.h"
#include "core/utf8.h"

static int flush_batch(file_input *in, tracked *t, sl_batch *b, uint64_t begin, uint64_t end)
{
    uint32_t nrecords = b->nrecords;
    if (sl_watermark_issue(t->wm, begin, end) != SL_OK) {
        sl_batch_unref(b);
        return SL_EINVAL;
    }
    b->ticket = (sl_ack_ticket){sl_watermark_ref(t->wm), begin, end};
    /* emit blocks under backpressure: the discoverer may run meanwhile. */
    atomic_store(&in->emit_since_ns, sl_monotonic_ns());
    pthread_mutex_unlock(&in->mu);
    int rc = in->ctx->emit(in->ctx->emit_arg, b);
    pthread_mutex_lock(&in->mu);
    atomic_store(&in->emit_since_ns, 0);
    /* Counted once handed on: a batch refused at a stop is read again by
     * the next start and counted then, not twice. */
    if (rc == SL_OK) sl_metric_add(in->m_lines, nrecords);
    return rc;
}

/* True when u[0, n) is the start of a multi-byte sequence cut short (by
 * max_line_bytes). */
static bool cut_sequence(const unsigned char *u, size_t n)
{
    size_t need = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;
    if (u[0] < 0xc2 || u[0] > 0xf4 || n >= need) return false;
    for (size_t k = 1; k < n; k++)
        if ((u[k] & 0xc0) != 0x80) return false;
    return true;
}

/* Counts (and marks) a line that is not text. The cut ends of a split or
 * truncated line may hold part of a valid sequence: those are not held
 * against it. */
static void check_text(file_input *in, sl_record *r)
{
    const char *p = r->line.p;
    size_t n = r->line.n;
    if (memchr(p, 0, n)) sl_metric_inc(in->m_nul);
    if (!in->validate_utf8) return;
    if (r->flags & SL_RF_SPLIT)
        for (int k = 0; k < 3 && n && ((unsigned char)*p & 0xc0) == 0x80; k++) p++, n--;
    size_t ok = sl_utf8_valid_prefix(p, n);
    if (ok < n && (r->flags & (SL_RF_SPLIT | SL_RF_TRUNCATED)) &&
        cut_sequence((const unsigned char *)p + ok, n - ok))
        ok = n;
    if (ok < n) {
        r->flags |= SL_RF_INVALID_UTF8;
        sl_metric_inc(in->m_bad_utf8);
    }
}

/* The batch being filled by emit_lines. */
typedef struct emitter {
    file_input *in;
    tracked *t;
    uint64_t base; /* file offset of chunk data[0] */
    int64_t now;
    size_t len; /* bytes of the chunk being emitted */
    sl_batch *b;
    uint64_t begin;
    bool suspect; /* a line had a NUL or was not UTF-8: check each record from here */
} emitter;

/* strip_cr: the \r before the \n that ends a record (its source ends one
 * byte after it), and, in a multiline record, before each \n inside it
 * (moved together in place: the bytes are ours until the batch is sent).
 * Returns the new length. */
static size_t strip_cr(file_input *in, char *p, size_t n, bool ends_in_newline)
{
    uint64_t stripped = 0;
    if (ends_in_newline && n && p[n - 1] == '\r') n--, stripped++;
    if (in->multiline && n) {
        const char *nl = memchr(p, '\n', n);
        if (nl) {
            size_t w = (size_t)(nl - p);
            for (size_t r = w; r < n; r++) {
                if (p[r] == '\n' && w && p[w - 1] == '\r') w--, stripped++;
                p[w++] = p[r];
            }
            n = w;
        }
    }
    if (stripped) sl_metric_add(in->m_cr, stripped);
    return n;
}

/* Adds the record data[off, off+n) whose source ends at data[end). */
static int add_record(emitter *e, size_t off, size_t n, size_t end, uint32_t flags)
{
    file_input *in = e->in;
    if (in->strip_cr && !(flags & (SL_RF_SPLIT | SL_RF_TRUNCATED)))
        n = strip_cr(in, e->t->chunk->data + off, n, end == off + n + 1);
    if (!e->b) {
        /* Room for the records the rest of the read can hold at a line of
         * 256 bytes, grown (doubled) up to batch_records as needed: a
         * small file's batch does not allocate and fault in batch_records
         * slots (229 KB at 4096) for its 15 records (issue 19). */
        uint64_t guess = (e->len - off) / 256 + 16;
        sl_batch *b = sl_batch_new(guess < in->batch_records ? (uint32_t)guess : in->batch_records);
        if (!b || sl_batch_add_chunk(b, e->t->chunk) != SL_OK ||
            sl_batch_set_names(b, in->ctx->name, e->t->path) != SL_OK ||
            sl_batch_set_labels(b, in->labels, in->nlabels) != SL_OK) {
            if (b) sl_batch_unref(b);
            return SL_ENOMEM;
        }
        e->b = b;
        e->begin = e->base + off;
    }
    sl_record *r =
        sl_batch_add(e->b, (sl_slice){e->t->chunk->data + off, n}, e->now, e->base + end);
    r->flags = flags;
    if (e->suspect) check_text(in, r);
    if (flags & (SL_RF_ML_CUT | SL_RF_ML_CONT))
        sl_multiline_mark(in->multiline, &e->t->ml, in->ctx->name, e->t->path, e->b, r);
    if (e->b->nrecords == e->b->cap_records &&
        sl_batch_grow_records(e->b, in->batch_records) != SL_OK) {
        sl_batch *b = e->b;
        e->b = NULL;
        return flush_batch(in, e->t, b, e->begin, e->base + end);
    }
    return SL_OK;
}

/* Emits the records of t->chunk->data[0, len) as batches. Lines are found
 * with the AVX2 newline index where the CPU has it, else with the portable
 * memchr scan, in->find_eol (collector/eol_index.h). flush_tail: the writer
 * is done, so an unfinished line or multiline group is complete.
 * backlog_end: this read reached the end of a file after reads that filled
 * their buffer. Its last batch is marked flush_now, so the sinks send it
 * with what they hold at once instead of after their max_batch_wait: the
 * tail of a backlog (a burst, a catch-up after downtime) arrives when read.
 * A trickle (every read short) never is, and at most one batch a second
 * per input is, so an agent sends at most one more request a second
 * (decision 0049, as journald's 0042). */
static int emit_lines(file_input *in, tracked *t, size_t len, bool flush_tail, bool backlog_end)
{
    const char *data = t->chunk->data;
    emitter e = {in, t, t->read_off - len, sl_now_ns(), len, NULL, 0, false};
    if (in->index) {
        sl_eol_index_reset(in->index, data, len);
        in->index->validate = in->validate_utf8;
    }
    size_t pos = 0, max = in->max_line_bytes;
    sl_multiline *ml = in->multiline;
    size_t gstart = 0;   /* multiline group: where it starts */
    uint32_t glines = 0; /* and how many lines it has */
    int rc = SL_OK;
    while (pos < len && rc == SL_OK) {
        bool suspect = false;
        const char *nl = in->index ? sl_eol_index_find(in->index, pos, &suspect)
                                   : in->find_eol(data + pos, data + len, &suspect);
        e.suspect |= suspect;
        size_t line_len = nl ? (size_t)(nl - (data + pos)) : len - pos;
        if (t->skipping) {
            /* Truncate mode: the rest of an over-long line is dropped. */
            if (!nl && len - pos < max && !flush_tail) break;
            t->skipping = !nl;
            pos += nl ? line_len + 1 : line_len;
            continue;
        }
        if (ml && nl && line_len <= max) {
            int v =
                sl_multiline_next(ml, glines, pos + line_len + 1 - gstart, data + pos, line_len);
            if (v != SL_ML_JOIN) {
                if (glines)
                    rc = add_record(&e, gstart, pos - 1 - gstart, pos,
                                    sl_multiline_close(&t->ml, v));
                gstart = pos;
                glines = 0;
            }
            glines++;
            pos += line_len + 1;
            continue;
        }
        if (glines) {
            /* A line that cannot join (too long, or unfinished) ends the group. */
            if (!nl && !flush_tail && len - pos < max) break;
            rc = add_record(&e, gstart, pos - 1 - gstart, pos, sl_multiline_close(&t->ml, 0));
            glines = 0;
            if (rc != SL_OK) break;
        }
        if (!nl && len - pos < max && !flush_tail) break; /* wait for the rest */
        if (line_len > max) {
            sl_metric_inc(in->m_split);
            if (in->long_mode == LONG_SPLIT) {
                rc = add_record(&e, pos, max, pos + max, SL_RF_SPLIT);
                pos += max;
            } else {
                t->skipping = !nl;
                size_t consumed = nl ? line_len + 1 : line_len;
                rc = add_record(&e, pos, max, pos + consumed, SL_RF_TRUNCATED);
                pos += consumed;
            }
            continue;
        }
        if (!nl && line_len == max && !flush_tail) {
            sl_metric_inc(in->m_split);
            t->skipping = in->long_mode == LONG_TRUNCATE;
            rc = add_record(&e, pos, max, pos + max,
                            in->long_mode == LONG_SPLIT ? SL_RF_SPLIT : SL_RF_TRUNCATED);
            pos += max;
            continue;
        }
        rc = add_record(&e, pos, line_len, pos + line_len + (nl ? 1 : 0), 0);
        pos += line_len + (nl ? 1 : 0);
    }
    if (rc == SL_OK && glines) {
        /* An open group waits for the line that ends it, or the timeout. */
        if (flush_tail)
            rc = add_record(&e, gstart, pos - 1 - gstart, pos, sl_multiline_close(&t->ml, 0));
        else
            pos = gstart;
    }
    if (e.b) {
        if (backlog_end) sl_batch_urge(e.b, sl_monotonic_ns(), &in->next_urgent_ns);
        int frc = flush_batch(in, t, e.b, e.begin, e.base + pos);
        if (rc == SL_OK) rc = frc;
    }
    if (rc != SL_OK) return rc;
    /* Keep the unfinished part at the start of a fresh chunk: the old one
     * now belongs to the batches that point into it. */
    t->partial = len - pos;
    if (t->partial && pos) {
        /* Sized to the partial line only: the next read grows it as needed,
         * so a thousand files with half a line each hold little memory. */
        sl_chunk *nc = sl_chunk_new((t->partial + 4095) & ~(size_t)4095);
        if (!nc) return SL_ENOMEM;
        memcpy(nc->data, data + pos, t->partial);
        sl_chunk_unref(t->chunk);
        t->chunk = nc;
    } else if (!t->partial) {
        sl_chunk_unref(t->chunk);
        t->chunk = NULL;
    }
    return SL_OK;
}

/* How long unfinished data waits for more: a multiline group is complete
 * when no line followed it for the multiline timeout. */
static int64_t partial_timeout(const file_input *in)
{
    if (in->multiline && sl_multiline_timeout_ms(in->multiline) < in->flush_partial_ms)
        return sl_multiline_timeout_ms(in->multiline);
    return in->flush_partial_ms;
}

/* The file at this descriptor no longer holds what we read (it shrank, or
 * its first bytes changed): start over at 0 with a new watermark (the old
 * one keeps tracking batches in flight) and an empty fingerprint, which the
 * next read grows again. */
static int restart_at_zero(file_input *in, tracked *t, const char *reason, int64_t size)
{
    sl_metric_inc(in->m_truncated_files);
    in->ckpt_dirty = true;
    char q[2100];
    sl_log(SL_LOG_INFO, "file_truncated", "input=%s path=%s reason=%s old_offset=%llu size=%lld",
           in->ctx->name, sl_file_qpath(q, sizeof q, t->path), reason,
           (unsigned long long)t->read_off, (long long)size);
    sl_watermark *nw = sl_watermark_new(0);
    if (!nw) return SL_ENOMEM;
    sl_watermark_unref(t->wm);
    t->wm = nw;
    t->read_off = 0;
    t->at_eof = false;
    t->partial = 0;
    t->partial_since = 0;
    t->skipping = false;
    t->fp_len = 0;
    if (t->chunk) sl_chunk_unref(t->chunk), t->chunk = NULL;
    return SL_OK;
}

/* One read per file per turn keeps busy files from starving the others.
 * Returns bytes read, 0 at EOF, or a negative error. */
long sl_file_read_some(file_input *in, tracked *t)
{
    struct stat st;
    uint64_t avail = in->chunk_bytes;
    bool have_st;
    if (t->open_size >= 0) {
        /* Opened in this turn: the guard's fstat of the descriptor is
         * this one (a system call per file less: issue 19). */
        st.st_size = t->open_size;
        st.st_mtim = t->open_mtim;
        t->open_size = -1;
        have_st = true;
    } else {
        have_st = fstat(t->fd, &st) == 0;
    }
    if (have_st) {
        int rc = SL_OK;
        if ((uint64_t)st.st_size < t->read_off) {
            /* copytruncate: the file shrank under us. */
            rc = restart_at_zero(in, t, "shrank", st.st_size);
        } else if (t->fp_len &&
                   ((t->caught_up && (uint64_t)st.st_size > t->read_off) ||
                    ((uint64_t)st.st_size == t->read_off &&
                     sl_file_mtime_ns(&st) != t->mtime_ns)) &&
                   sl_file_fingerprint_fd(t->fd, t->fp_len) != t->fp) {
            /* Truncated and written again past our offset between two reads:
             * the size alone cannot tell, the first bytes can. Checked before
             * the first read that finds data after one that reached the end
             * (1 KiB from page cache). */
            rc = restart_at_zero(in, t, "rewritten", st.st_size);
        }
        if (rc != SL_OK) return rc;
        t->at_eof = (uint64_t)st.st_size == t->read_off;
        /* Same size, new mtime: rewritten to exactly the length we had read. */
        t->mtime_ns = sl_file_mtime_ns(&st);
        if (t->read_off != 0) sl_file_grow_fingerprint(in, t, (uint64_t)st.st_size);
        if ((uint64_t)st.st_size > t->read_off) avail = (uint64_t)st.st_size - t->read_off;
        /* Nothing new and no line waiting: the read would return 0 (at
         * 10,000 files, one pread per file and turn saved: issue 19). */
        if ((uint64_t)st.st_size == t->read_off && !t->partial) {
            t->caught_up = true;
            return 0;
        }
    }
    /* A small file needs a small chunk: thousands of them must not each
     * take (and fault in) a full read_chunk. */
    size_t want = in->chunk_bytes;
    if (avail + 4096 < want) want = (size_t)((avail + 4096 + 4095) & ~(uint64_t)4095);
    if (in->read_rate) {
        if (in->tokens <= 0) return 0;
        if ((uint64_t)in->tokens < want) want = (size_t)in->tokens;
    }
    if (t->partial + want < t->partial * 2) want = t->partial; /* grow for long lines */
    size_t cap = t->partial + want;
    if (!t->chunk || t->chunk->cap < cap) {
        sl_chunk *nc = sl_chunk_new(cap);
        if (!nc) return SL_ENOMEM;
        if (t->chunk) {
            memcpy(nc->data, t->chunk->data, t->partial);
            sl_chunk_unref(t->chunk);
        }
        t->chunk = nc;
    }
    size_t asked = t->chunk->cap - t->partial;
    ssize_t r = pread(t->fd, t->chunk->data + t->partial, asked, (off_t)t->read_off);
    /* Reads that fill the buffer are working through a backlog; a short
     * one reached the end, and from then on the writer may truncate and
     * write again unseen: the next read verifies the first bytes. */
    t->caught_up = r < 0 || (size_t)r < asked;
    t->at_eof = r >= 0 && (size_t)r < asked;
    /* Read to the end: nothing to do in the next turn unless inotify
     * says it changed (the run loop marks it dirty then, or marks every
     * file at a sweep). The turn after used to fstat it only to find
     * that (a system call per file: issue 19). A line left unfinished
     * keeps it visited. */
    if (r > 0 && t->caught_up) t->dirty = false;
    bool backlog_end = t->backlog && r > 0 && t->caught_up;
    t->backlog = r > 0 && !t->caught_up;
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) return 0;
        sl_metric_inc(in->m_read_errors);
        return SL_EIO;
    }
    if (r == 0) {
        if (t->partial && !t->partial_since) t->partial_since = sl_monotonic_ns();
        bool stale =
            t->partial && (sl_monotonic_ns() - t->partial_since) / 1000000 >= partial_timeout(in);
        /* A file that is gone will never finish its last line. */
        if (t->partial && (stale || t->gone)) {
            int rc = emit_lines(in, t, t->partial, true, false);
            t->partial_since = 0;
            if (rc != SL_OK) return rc;
        }
        return 0;
    }
    if (t->read_off == 0 && t->fp_len < in->fp_bytes) {
        /* The first bytes of the file are in the chunk (no partial line
         * before offset 0): the fingerprint from them, before strip_cr
         * edits them in place. */
        size_t n = (size_t)r < in->fp_bytes ? (size_t)r : in->fp_bytes;
        if (n > t->fp_len) {
            t->fp = sl_fingerprint(t->chunk->data, n);
            t->fp_len = (uint32_t)n;
        }
    }
    t->read_off += (uint64_t)r;
    if (in->read_rate) in->tokens -= r;
    t->partial_since = 0;
    t->last_data_ns = sl_monotonic_ns();
    sl_metric_add(in->m_bytes, (uint64_t)r);
    int rc = emit_lines(in, t, t->partial + (size_t)r, false, backlog_end);
    return rc == SL_OK ? r : rc;
}

void sl_file_refill_tokens(file_input *in, int64_t now)
{
    if (!in->read_rate) return;
    if (in->tokens_at_ns == 0) in->tokens_at_ns = now;
    int64_t add = (int64_t)((double)(now - in->tokens_at_ns) * (double)in->read_rate / 1e9);
    if (add <= 0) return;
    in->tokens += add;
    if (in->tokens > (int64_t)in->read_rate) in->tokens = (int64_t)in->read_rate; /* 1 s burst */
    in->tokens_at_ns = now;
}
