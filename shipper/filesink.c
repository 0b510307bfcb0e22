#include "shipper/filesink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/batcher.h"
#include "shipper/recjson.h"

enum { FORMAT_RAW, FORMAT_JSON };

/* One write takes the queued batches up to this many bytes (or one larger
 * batch) and this many batches: 10,000 files of ~10 KB are then ~100
 * batches a write, not one each (decision 0057), and the output buffer
 * stays about one default batch. */
#define WRITE_GROUP_BYTES (1u << 20)
#define WRITE_GROUP_MAX   64
enum { JSON_LINE_ALWAYS, JSON_LINE_DEDUP };

typedef struct filesink {
    const sl_sink_ctx *ctx;
    int fd;
    bool own_fd;
    bool torn;            /* a failed write left a cut line that could not be taken back */
    char *path;           /* the output's name, looked at for a rotation */
    int64_t next_look_ns; /* when to look at the name again */
    sl_ratelimit rl_reopen;
    bool fsync_each;
    int format;
    unsigned json_parts; /* sl_recjson_append's parts for FORMAT_JSON */
    sl_buf out;
    sl_batcher *batcher;
    const sl_sink_metrics *m;
    sl_sink_metrics own_m; /* created outside a pipeline */
    sl_ratelimit rl;
} filesink;

/* What sl_cfg_read fills from stdout_keys and file_keys. */
typedef struct filesink_conf {
    int format;    /* FORMAT_RAW, FORMAT_JSON: the order of "raw|json" */
    int json_line; /* JSON_LINE_ALWAYS, JSON_LINE_DEDUP: "always|dedup" */
    const char *path;
    bool fsync_each;
} filesink_conf;

/* The keys of what is written, the same on stdout and in a file. */
#define FILESINK_FORMAT_KEYS                                                                       \
    {.name = "format",                                                                             \
     .at = SL_CFG_AT(filesink_conf, format),                                                       \
     .type = SL_KEY_ENUM,                                                                          \
     .choices = "raw|json",                                                                        \
     .def = "raw",                                                                                 \
     .doc = "`raw` line or `json` record"},                                                        \
    {                                                                                              \
        .name = "json_line", .at = SL_CFG_AT(filesink_conf, json_line), .type = SL_KEY_ENUM,       \
        .choices = "always|dedup", .def = "always",                                                \
        .doc = "with `format: json`: `always` the record's `line`; `dedup` leaves it out when "    \
               "`fields` is the line byte for byte (a JSON line the `json` step parsed, "          \
               "unchanged), so the line is their text: about half the bytes (decision 0045)"       \
    }

static const sl_cfg_key stdout_keys[] = {
    SL_SINK_COMMON_KEYS,
    FILESINK_FORMAT_KEYS,
};

static const sl_cfg_key file_keys[] = {
    SL_SINK_COMMON_KEYS,
    FILESINK_FORMAT_KEYS,
    {.name = "path",
     .at = SL_CFG_AT(filesink_conf, path),
     .type = SL_KEY_STR,
     .required = true,
     .doc = "output file, appended; no link, hard link, other user's file or FIFO, in folders only "
            "root or the agent's user can write (decision 0065)"},
    {.name = "fsync",
     .at = SL_CFG_AT(filesink_conf, fsync_each),
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "fsync after every batch"},
};

/* A crash can leave the output's last line cut short; start the next record
 * on a line of its own so one torn line does not swallow a good one. */
static void terminate_torn_line(int fd)
{
    off_t end = lseek(fd, 0, SEEK_END);
    char last;
    if (end > 0 && pread(fd, &last, 1, end - 1) == 1 && last != '\n') {
        ssize_t w = write(fd, "\n", 1);
        (void)w;
    }
}

static int filesink_flush(void *state, sl_batch *const *b, uint32_t n, uint32_t *ndone,
                          int64_t *retry_ms);
static void filesink_destroy(void *state);

static int create_common(const sl_sink_ctx *ctx, bool to_file, void **state, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    filesink_conf fc = {0}; /* stdout_keys has no path or fsync */
    int nerr = to_file ? sl_cfg_read(cfg, ctx->node, file_keys, SL_CFG_NKEYS(file_keys), &fc)
                       : sl_cfg_read(cfg, ctx->node, stdout_keys, SL_CFG_NKEYS(stdout_keys), &fc);
    const char *path = fc.path;
    if (nerr) return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    if (ctx->check_only) return SL_OK;

    filesink *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    s->ctx = ctx;
    s->format = fc.format;
    s->json_parts = SL_RJ_ALL | (fc.json_line == JSON_LINE_DEDUP ? SL_RJ_LINE_DEDUP : 0);
    s->fsync_each = fc.fsync_each;
    s->fd = STDOUT_FILENO;
    if (to_file) {
        /* Root appends here: no link, another user's file, FIFO or device
         * (but the owner's own pipe, root's device) at the name, no folder on the way another user
         * could redirect (decision 0065). */
        sl_err oerr = {0};
        int rc = sl_open_append_checked(path, &s->fd, &oerr);
        if (rc != SL_OK) {
            free(s);
            return sl_errf(err, rc, "sink %s: cannot open the output: %s", ctx->name, oerr.msg);
        }
        s->own_fd = true;
        terminate_torn_line(s->fd);
        s->path = strdup(path);
        s->rl_reopen.interval_ns = 10 * 1000000000LL;
    }
    sl_buf_init(&s->out, 0);
    s->m = sl_sink_metrics_of(ctx, SL_SINK_M_ERRORS, &s->own_m);
    sl_sink_metrics_dropped(s->m, "too_large", 0); /* listed at 0 from the start */
    s->rl.interval_ns = 10 * 1000000000LL;
    /* What is queued when the sink looks, up to WRITE_GROUP_BYTES, in one
     * write, at once (no added latency: max_wait 0); a failing write is
     * retried from 10 ms up to 5 s apart. */
    sl_batcher_opts bo = {.max_bytes = WRITE_GROUP_BYTES,
                          .max_wait_ms = 0,
                          .min_backoff_ms = 10,
                          .max_backoff_ms = 5000,
                          .sink = s,
                          .flush = filesink_flush};
    int rc = sl_batcher_new(ctx, &bo, &s->batcher, err);
    if (rc != SL_OK) {
        filesink_destroy(s);
        return rc;
    }
    *state = s;
    return SL_OK;
}

static int stdout_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    return create_common(ctx, false, state, err);
}

static int file_create(const sl_sink_ctx *ctx, void **state, sl_err *err)
{
    return create_common(ctx, true, state, err);
}

/* Appends b's lines to s->out; on failure (larger than the buffer's
 * bound, or out of memory) s->out is as it was and SL_ENOMEM. */
static int encode_append(filesink *s, const sl_batch *b)
{
    size_t before = s->out.len;
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        if (s->format == FORMAT_JSON)
            sl_recjson_append(&s->out, b, r, s->json_parts);
        else
            sl_buf_append(&s->out, r->line.p, r->line.n);
        sl_buf_putc(&s->out, '\n');
    }
    if (!s->out.failed) return SL_OK;
    s->out.len = before;
    s->out.failed = 0;
    return SL_ENOMEM;
}

/* Writes p[0..n) (short writes continued); 0, or -errno with *written the
 * bytes that did reach the file. */
static int write_all(int fd, const char *p, size_t n, size_t *written)
{
    *written = 0;
    while (*written < n) {
        ssize_t w = write(fd, p + *written, n - *written);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        *written += (size_t)w;
    }
    return 0;
}

/* Takes back the last cut bytes a failed write left: a full disk takes
 * part of a write and refuses the rest, and the batch written again after
 * the backoff would start in the middle of that cut line, gluing two
 * records into one (decision 0065). */
static void take_back(filesink *s, size_t cut)
{
    if (!cut || !s->own_fd) return;
    /* With O_APPEND the offset is the end of what we wrote; cut only when
     * nothing was appended after it. */
    off_t end = lseek(s->fd, 0, SEEK_CUR);
    struct stat st;
    if (end >= (off_t)cut && fstat(s->fd, &st) == 0 && st.st_size == end &&
        ftruncate(s->fd, end - (off_t)cut) == 0)
        return;
    s->torn = true; /* not taken back: end the cut line first */
}

/* The output renamed or deleted (logrotate's `create`): the next writes
 * went to a file no one reads any more, and once the rotated file was
 * compressed and removed they were lost. The name is looked at every
 * 250 ms and, when it names another file or none, opened again with the
 * same checks (decision 0065); a refused name keeps the old file, logged. */
static void reopen_if_moved(filesink *s)
{
    int64_t now = sl_monotonic_ns();
    if (!s->path || now < s->next_look_ns) return;
    s->next_look_ns = now + 250 * 1000000LL;
    struct stat have, named;
    if (fstat(s->fd, &have) != 0 || !S_ISREG(have.st_mode)) return;
    if (stat(s->path, &named) == 0 && named.st_dev == have.st_dev && named.st_ino == have.st_ino)
        return;
    int fd = -1;
    sl_err err = {0};
    if (sl_open_append_checked(s->path, &fd, &err) != SL_OK) {
        sl_sink_metrics_error(s->m);
        uint64_t skipped;
        if (sl_ratelimit_ok(&s->rl_reopen, &skipped))
            sl_log(SL_LOG_ERROR, "sink_reopen_failed",
                   "sink=%s error=\"%s\" action=kept_old_file repeated=%llu", s->ctx->name, err.msg,
                   (unsigned long long)skipped);
        return;
    }
    close(s->fd);
    s->fd = fd;
    s->torn = false;
    sl_log(SL_LOG_INFO, "sink_reopened", "sink=%s reason=%s", s->ctx->name,
           have.st_nlink ? "renamed" : "deleted");
}

/* Writes b[0..n) oldest first, the batches of one flush (what was queued,
 * decision 0057) in writes of up to WRITE_GROUP_BYTES: one batch per write
 * with fsync, so each is synced before it is acknowledged. A batch is done
 * once all its bytes are written: after a failing write, the batches wholly
 * before the failure are done, the cut part of the next is taken back, and
 * the rest (from the one it cut) go back to the buffer and are written
 * again after the backoff, so a full disk holds the batches back, never
 * loses them, and the input's checkpoint and the spool work as for any
 * sink. */
static int filesink_flush(void *state, sl_batch *const *b, uint32_t n, uint32_t *ndone,
                          int64_t *retry_ms)
{
    filesink *s = state;
    *retry_ms = -1; /* the batcher's backoff */
    reopen_if_moved(s);
    *ndone = 0;
    while (*ndone < n) {
        /* The group: b[first..next), ends[k] where b[first + k] ends. */
        uint32_t first = *ndone, next = first;
        size_t ends[WRITE_GROUP_MAX];
        sl_buf_reset(&s->out);
        while (next < n && next - first < WRITE_GROUP_MAX) {
            const sl_batch *x = b[next];
            if (next > first &&
                (s->fsync_each || s->out.len + x->bytes + x->nrecords > WRITE_GROUP_BYTES))
                break;
            if (encode_append(s, x) != SL_OK) {
                if (next > first) break; /* alone, in the next group */
                /* Larger than the encoder's bound: it can never be written. */
                sl_log(SL_LOG_ERROR, "sink_encode_failed", "sink=%s records=%u", s->ctx->name,
                       x->nrecords);
                sl_sink_metrics_dropped(s->m, "too_large", x->nrecords);
            }
            ends[next - first] = s->out.len;
            next++;
        }
        if (s->torn) {
            terminate_torn_line(s->fd);
            s->torn = false;
        }
        size_t written = 0;
        int rc = write_all(s->fd, s->out.p, s->out.len, &written);
        if (rc != 0) {
            /* What the write cut is taken back to the end of the last
             * batch it holds whole. */
            size_t whole = 0;
            for (uint32_t k = 0; k < next - first && ends[k] <= written; k++) whole = ends[k];
            take_back(s, written - whole);
            written = whole;
        } else if (s->fsync_each && s->own_fd && s->out.len) {
            rc = fsync(s->fd) ? -errno : 0;
        }
        /* Done: the batches whose bytes are all in the file (and synced). */
        uint64_t records = 0;
        size_t bytes = 0;
        while (*ndone < next && (rc == 0 || (!s->fsync_each && ends[*ndone - first] <= written))) {
            const sl_batch *x = b[*ndone];
            size_t start = *ndone > first ? ends[*ndone - first - 1] : 0;
            if (ends[*ndone - first] > start) { /* not dropped as too large */
                records += x->nrecords;
                bytes += ends[*ndone - first] - start;
            }
            (*ndone)++;
        }
        if (records) sl_sink_metrics_delivered(s->m, records, bytes);
        if (rc == 0) continue;
        sl_sink_metrics_error(s->m);
        uint64_t skipped;
        if (sl_ratelimit_ok(&s->rl, &skipped))
            sl_log(SL_LOG_ERROR, "sink_write_failed", "sink=%s error=\"%s\" repeated=%llu",
                   s->ctx->name, strerror(-rc), (unsigned long long)skipped);
        return atomic_load(s->ctx->stop) ? SL_FLUSH_STOPPED : SL_FLUSH_RETRY;
    }
    return SL_FLUSH_DONE;
}

static int filesink_run(void *state)
{
    filesink *s = state;
    return sl_batcher_run(s->batcher);
}

static void filesink_destroy(void *state)
{
    filesink *s = state;
    if (!s) return;
    if (s->own_fd) close(s->fd);
    free(s->path);
    sl_batcher_free(s->batcher);
    sl_buf_free(&s->out);
    free(s);
}

/* The file's directory must let this process create and write the file;
 * nothing is created here. */
static int file_probe(const sl_sink_ctx *ctx, sl_err *result)
{
    const char *path = NULL;
    sl_cfg_str(ctx->cfg, ctx->node, "path", NULL, &path);
    if (!path) return sl_errf(result, SL_EINVAL, "no path");
    struct stat st;
    if (lstat(path, &st) == 0) {
        /* There: opened as `run` opens it (nothing is created or written). */
        int fd = -1;
        sl_err oerr = {0};
        int rc = sl_open_append_checked(path, &fd, &oerr);
        if (rc != SL_OK) return sl_errf(result, rc, "%s", oerr.msg);
        close(fd);
        return sl_errf(result, SL_OK, "%s exists and is writable", path);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0)
        return sl_errf(result, SL_EIO, "cannot create %s: %s: %s", path, dir, strerror(errno));
    return sl_errf(result, SL_OK, "%s can be created in %s", path, dir);
}

const sl_sink_ops sl_stdout_sink_ops = {.type = "stdout",
                                        .create = stdout_create,
                                        .run = filesink_run,
                                        .destroy = filesink_destroy,
                                        .keys = stdout_keys,
                                        .nkeys = SL_CFG_NKEYS(stdout_keys)};
const sl_sink_ops sl_file_sink_ops = {.type = "file",
                                      .create = file_create,
                                      .run = filesink_run,
                                      .destroy = filesink_destroy,
                                      .probe = file_probe,
                                      .keys = file_keys,
                                      .nkeys = SL_CFG_NKEYS(file_keys)};
