#include "shipper/filesink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "shipper/buffer.h"
#include "shipper/recjson.h"

enum { FORMAT_RAW, FORMAT_JSON };

typedef struct filesink {
    const sl_sink_ctx *ctx;
    int fd;
    bool own_fd;
    bool fsync_each;
    int format;
    sl_buf out;
    sl_metric *records, *bytes, *errors, *dropped;
    sl_ratelimit rl;
} filesink;

static const sl_cfg_key stdout_keys[] = {
    SL_SINK_COMMON_KEYS,
    {.name = "format",
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` line or `json` record"},
};

static const sl_cfg_key file_keys[] = {
    SL_SINK_COMMON_KEYS,
    {.name = "format",
     .type = SL_KEY_ENUM,
     .choices = "raw|json",
     .def = "raw",
     .doc = "`raw` line or `json` record"},
    {.name = "path",
     .type = SL_KEY_STR,
     .required = true,
     .doc = "output file, appended; absolute"},
    {.name = "fsync", .type = SL_KEY_BOOL, .def = "false", .doc = "fsync after every batch"},
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

static int create_common(const sl_sink_ctx *ctx, bool to_file, void **state, sl_err *err)
{
    sl_cfg *cfg = ctx->cfg;
    size_t before = sl_cfg_nerrors(cfg);
    if (to_file)
        sl_cfg_check(cfg, ctx->node, file_keys, sizeof file_keys / sizeof *file_keys);
    else
        sl_cfg_check(cfg, ctx->node, stdout_keys, sizeof stdout_keys / sizeof *stdout_keys);
    int format = FORMAT_RAW;
    bool fsync_each = false;
    const char *path = NULL;
    sl_cfg_enum(cfg, ctx->node, "format", "raw|json", FORMAT_RAW, &format);
    if (to_file) {
        sl_cfg_str(cfg, ctx->node, "path", NULL, &path);
        sl_cfg_bool(cfg, ctx->node, "fsync", false, &fsync_each);
    }
    if (sl_cfg_nerrors(cfg) > before)
        return sl_errf(err, SL_EINVAL, "sink %s: invalid configuration", ctx->name);
    if (ctx->check_only) return SL_OK;

    filesink *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(err, SL_ENOMEM, "sink %s: out of memory", ctx->name);
    s->ctx = ctx;
    s->format = format;
    s->fsync_each = fsync_each;
    s->fd = STDOUT_FILENO;
    if (to_file) {
        s->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (s->fd < 0) {
            int e = errno;
            free(s);
            return sl_errf(err, SL_EIO, "sink %s: cannot open %s: %s", ctx->name, path,
                           strerror(e));
        }
        s->own_fd = true;
        terminate_torn_line(s->fd);
    }
    sl_buf_init(&s->out, 0);
    char labels[256];
    sl_metric_labels(labels, sizeof labels, "sink", ctx->name, NULL, NULL);
    s->records = sl_counter("sluice_sink_records_total", "Records delivered by the sink.", labels);
    s->bytes = sl_counter("sluice_sink_bytes_total", "Bytes written or sent by the sink.", labels);
    char dl[320];
    sl_metric_labels(dl, sizeof dl, "sink", ctx->name, "reason", "too_large");
    s->dropped = sl_counter("sluice_sink_dropped_records_total",
                            "Records a sink dropped permanently, by reason.", dl);
    s->errors = sl_counter("sluice_sink_errors_total", "Failed write or send attempts.", labels);
    s->rl.interval_ns = 10 * 1000000000LL;
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

static int encode(filesink *s, const sl_batch *b)
{
    sl_buf_reset(&s->out);
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        if (r->flags & SL_RF_DROPPED) continue;
        if (s->format == FORMAT_JSON)
            sl_recjson_append(&s->out, b, r, SL_RJ_ALL);
        else
            sl_buf_append(&s->out, r->line.p, r->line.n);
        sl_buf_putc(&s->out, '\n');
    }
    return s->out.failed ? SL_ENOMEM : SL_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Retries a failing write until it succeeds or the sink is told to stop: a
 * full disk must hold the batch back, never lose it. */
static int deliver(filesink *s, sl_batch *b)
{
    if (encode(s, b) != SL_OK) {
        sl_log(SL_LOG_ERROR, "sink_encode_failed", "sink=%s records=%u", s->ctx->name, b->nrecords);
        return SL_ENOMEM;
    }
    for (int backoff_ms = 10;; backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000) {
        int rc = write_all(s->fd, s->out.p, s->out.len);
        if (rc == 0 && s->fsync_each && s->own_fd) rc = fsync(s->fd) ? -errno : 0;
        if (rc == 0) return SL_OK;
        sl_metric_inc(s->errors);
        uint64_t skipped;
        if (sl_ratelimit_ok(&s->rl, &skipped))
            sl_log(SL_LOG_ERROR, "sink_write_failed", "sink=%s error=\"%s\" repeated=%llu",
                   s->ctx->name, strerror(-rc), (unsigned long long)skipped);
        if (atomic_load(s->ctx->stop)) return SL_EIO;
        usleep((useconds_t)backoff_ms * 1000);
    }
}

static int filesink_run(void *state)
{
    filesink *s = state;
    for (;;) {
        sl_batch *b;
        int rc = sl_buffer_pop(s->ctx->buffer, &b, 200);
        if (rc == SL_ECLOSED) return SL_OK;
        if (rc != SL_OK) continue;
        rc = deliver(s, b);
        if (rc == SL_OK) {
            sl_metric_add(s->records, b->nrecords);
            sl_metric_add(s->bytes, s->out.len);
            sl_batch_done(b);
        } else if (rc == SL_ENOMEM) {
            /* Larger than the encoder's bound: it can never be written. */
            sl_metric_add(s->dropped, b->nrecords);
            sl_batch_done(b);
        } else {
            /* Stopping with the write still failing: back to the buffer,
             * which spools it or leaves it unacknowledged to be read again. */
            sl_buffer_unpop(s->ctx->buffer, b);
            return SL_OK;
        }
    }
}

static void filesink_destroy(void *state)
{
    filesink *s = state;
    if (!s) return;
    if (s->own_fd) close(s->fd);
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
    if (access(path, F_OK) == 0)
        return access(path, W_OK) == 0 ? sl_errf(result, SL_OK, "%s exists and is writable", path)
                                       : sl_errf(result, SL_EIO, "%s: %s", path, strerror(errno));
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
