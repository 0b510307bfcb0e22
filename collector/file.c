/* The file input (collector/file.h). One file of ~1600 lines because its
 * parts share one state, the tracked files with their hash indexes and the
 * checkpoint set, under one mutex (the discoverer thread takes it while the
 * input's thread waits in emit); split up, that state would need a header
 * of its own and every part could touch it. In order: configuration and
 * metrics; refused names; opening (through collector/file_guard.c) and
 * identity; scans, rescue of files rotated out of the globs, inotify
 * events; line splitting (the portable scan and the AVX2 newline index),
 * records and batches; reading, truncation; checkpoints; the run loop and
 * the discoverer. */
#include "collector/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/checkpoint.h"
#include "collector/file_guard.h"
#include "collector/multiline.h"
#include "collector/watch.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"

#define MAX_GLOBS  32
#define MAX_LABELS 32
/* Thousands of files per input: lookups by identity and by path go
 * through hash chains, never a walk of every file. */
#define INDEX_BUCKETS 4096

enum { START_BEGINNING, START_END };
enum { LONG_SPLIT, LONG_TRUNCATE };

typedef struct tracked {
    struct tracked *next, *prev;
    struct tracked *id_next, *path_next; /* hash chains */
    char path[1024];
    int fd;
    uint64_t dev, ino;
    uint32_t fp_len;
    uint64_t fp;
    uint64_t read_off; /* next byte to read */
    sl_watermark *wm;  /* positions are file offsets */
    sl_chunk *chunk;   /* holds the unfinished line at [0, partial) */
    size_t partial;
    int64_t partial_since;
    bool skipping;    /* truncate mode: dropping the rest of a long line */
    bool gone;        /* path no longer leads here: read to EOF, then close */
    bool dirty;       /* may have data: read it on the next turn */
    int64_t mtime_ns; /* modification time when last looked at */
    bool caught_up;   /* the last read reached the end of the file */
    int64_t last_data_ns;
    sl_ml_file ml; /* multiline: the open group's state */
} tracked;

/* A name refused once (file_guard.h): logged and counted once, not
 * opened again while the name stays the same (same inode of the name
 * itself). Forgotten when a full scan no longer finds it. */
typedef struct refused_name {
    struct refused_name *next;
    uint64_t dev, ino; /* lstat of the name */
    uint32_t scan;     /* the last scan that saw it */
    char path[];
} refused_name;
/* Beyond this many, refused names are still refused but logged and
 * counted on every look (a folder with 64k FIFOs is an alarm anyway). */
#define MAX_REFUSED 65536

/* Finds the end of a line (see eol_scalar). */
typedef const char *(*eol_fn)(const char *p, const char *end, bool *suspect);
/* NULL: the AVX2 newline index (which also validates) is used instead. */
static eol_fn pick_eol(bool validate_utf8);

/* Newlines found a window at a time (eol_index_window). */
#define EOL_WINDOW 16384
typedef struct eol_index {
    const char *data;
    size_t len;                             /* the bytes being split */
    size_t wbeg, wend;                      /* the window [wbeg, wend) indexed */
    bool wnul;                              /* it holds a NUL */
    bool validate;                          /* validate_utf8: check the windows as well */
    bool wbad;                              /* the window is not UTF-8 (or may end in a cut) */
    bool carry;                             /* the window follows the last one: carry[] applies */
    uint8_t carry_prev[32], carry_open[32]; /* UTF-8 state at wend (malloc'd: unaligned) */
    uint32_t n, i;                          /* newlines in it, and the cursor */
    uint16_t at[EOL_WINDOW + 1];            /* their offsets from wbeg; 1 of slack */
} eol_index;

typedef struct file_input {
    const sl_input_ctx *ctx;
    const char *globs[MAX_GLOBS];
    size_t nglobs;
    const char *excludes[MAX_GLOBS];
    size_t nexcludes;
    int start_at;
    int long_mode;
    uint64_t max_line_bytes;
    bool validate_utf8;
    bool strip_cr; /* CRLF files: the \r before each \n is not part of the record */
    uint64_t chunk_bytes;
    uint32_t fp_bytes;
    int64_t poll_ms, flush_partial_ms, checkpoint_ms, forget_after_ms, close_idle_ms, rescan_ms;
    int64_t max_open_files;
    uint64_t read_rate; /* bytes per second, 0: unlimited */
    int64_t tokens;     /* read budget of the rate limit */
    int64_t tokens_at_ns;
    sl_watch *watch;
    sl_multiline *multiline;
    bool need_scan;
    bool deferred;        /* a file waits for room under max_open_files */
    bool ckpt_dirty;      /* files opened or closed since the last save */
    uint64_t saved_marks; /* sum of positions at the last checkpoint save */
    int open_count;
    uint32_t batch_records;
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    char ckpt_path[4096];
    sl_ckpt ckpt; /* last known position of every file, open or not */
    tracked *files;
    tracked **by_id, **by_path; /* INDEX_BUCKETS chains each */
    bool first_scan_done;
    sl_file_guard guard;
    int follow; /* enum sl_follow */
    const char *follow_into[MAX_GLOBS];
    size_t nfollow_into;
    refused_name **refused; /* INDEX_BUCKETS chains */
    size_t nrefused;
    uint32_t scan_no;
    sl_metric *m_refused[SL_REFUSED_NREASONS];
    /* start_at applies only when this input never ran in this data_dir;
     * checkpoints that existed and were lost make every file read from
     * its start (decision 0015). */
    bool fresh;
    sl_metric *m_lost_bytes, *m_ckpt_lost, *m_cr;
    /* While the thread is blocked handing a batch over (backpressure),
     * a second thread keeps discovering and opening files, so that
     * rotation cannot take them out of reach: mu is held by the input's
     * thread except inside emit. */
    pthread_mutex_t mu;
    _Atomic int64_t emit_since_ns; /* 0: not inside emit */
    bool discovering;              /* the scan is the second thread's */
    pthread_t discoverer;
    bool discoverer_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool discoverer_stop;
    int64_t next_ckpt_ns;
    sl_metric *m_lines, *m_bytes, *m_split, *m_truncated_files, *m_rotations, *m_open,
        *m_ckpt_errors, *m_ckpt_fallback, *m_read_errors, *m_deferred, *m_deleted_bytes,
        *m_bad_utf8, *m_nul;
    eol_fn find_eol;
    eol_index *index; /* when find_eol is NULL */
} file_input;

static const sl_cfg_key file_keys[] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "paths",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "glob patterns of the files to read"},
    {.name = "exclude", .type = SL_KEY_LIST, .doc = "glob patterns to skip"},
    {.name = "start_at",
     .type = SL_KEY_ENUM,
     .choices = "beginning|end",
     .def = "beginning",
     .doc = "`beginning` or `end`, only for the files present the first time the input runs in "
            "this `data_dir`; files that appear later, and every file after checkpoints were lost, "
            "are read from their start"},
    {.name = "max_line_bytes",
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 16,
     .max = 64 * 1024 * 1024,
     .doc = "longer lines are split (`long_lines: split`) or truncated (`truncate`), and counted"},
    {.name = "validate_utf8",
     .type = SL_KEY_BOOL,
     .def = "false",
     .doc = "also count (in `sluice_input_invalid_lines_total{reason=\"invalid_utf8\"}`) and flag "
            "lines that are not UTF-8 (a few per cent on ASCII logs, about half the line-splitting "
            "speed on text with non-ASCII bytes on most lines); lines with NUL bytes are always "
            "counted (`reason=\"nul\"`)"},
    {.name = "long_lines",
     .type = SL_KEY_ENUM,
     .choices = "split|truncate",
     .def = "split",
     .doc = "a line over `max_line_bytes`: `split` into several records, or `truncate`d"},
    {.name = "read_chunk",
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 4096,
     .max = 256 * 1024 * 1024,
     .doc = "largest read; small files get chunks their size"},
    {.name = "fingerprint_bytes",
     .type = SL_KEY_SIZE,
     .def = "1KiB",
     .doc =
         "bytes hashed to tell a file from another with a reused inode (at most 64KiB are used)"},
    {.name = "poll_interval",
     .type = SL_KEY_DURATION,
     .def = "250ms",
     .doc = "how often globs are re-scanned where inotify is unavailable"},
    {.name = "flush_partial_after",
     .type = SL_KEY_DURATION,
     .def = "5s",
     .doc = "a last line without newline is shipped after this long"},
    {.name = "checkpoint_interval",
     .type = SL_KEY_DURATION,
     .def = "1s",
     .doc = "how often acknowledged positions are saved"},
    {.name = "forget_after",
     .type = SL_KEY_DURATION,
     .def = "7d",
     .doc = "checkpoint entries of files gone this long are pruned"},
    {.name = "batch_records",
     .type = SL_KEY_INT,
     .def = "4096",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "records per batch"},
    {.name = "max_open_files",
     .type = SL_KEY_INT,
     .def = "1024",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "idle files are closed to stay under it and reopened from their checkpoint"},
    {.name = "close_idle_after",
     .type = SL_KEY_DURATION,
     .def = "1m",
     .doc = "close a fully read, fully acknowledged file idle this long"},
    {.name = "rescan_interval",
     .type = SL_KEY_DURATION,
     .def = "10s",
     .doc = "safety rescan of the globs while inotify is active"},
    {.name = "read_bytes_per_sec",
     .type = SL_KEY_SIZE,
     .def = "0",
     .doc = "read rate limit of the input; `0`: unlimited"},
    {.name = "multiline",
     .type = SL_KEY_MAP,
     .doc = "`{start: REGEX}` or `{continue: REGEX}`, plus `max_lines` (500), `max_bytes` (1MiB), "
            "`timeout` (1s); a record cut at a limit is marked (see Parsing real logs)"},
    {.name = "follow_symlinks",
     .type = SL_KEY_ENUM,
     .choices = "inside|always|never",
     .def = "inside",
     .doc =
         "`inside`: follow links whose target stays in the folders the globs name (plus "
         "`/var/log/pods` and `/var/lib/docker/containers` for globs under `/var/log/containers`, "
         "plus `follow_symlinks_into`); `always`; `never` (see Security)"},
    {.name = "follow_symlinks_into",
     .type = SL_KEY_LIST,
     .doc = "more folders links may lead into, e.g. `[/data/docker/containers]`"},
    {.name = "strip_cr",
     .type = SL_KEY_BOOL,
     .def = "true",
     .doc = "drop the `\\r` before each `\\n` (CRLF files), counted in "
            "`sluice_input_cr_stripped_total`; `false` keeps lines byte for byte"},
};

static int configure(file_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_check(cfg, n, file_keys, sizeof file_keys / sizeof *file_keys);
    sl_cfg_list(cfg, n, "paths", in->globs, MAX_GLOBS, &in->nglobs);
    sl_cfg_list(cfg, n, "exclude", in->excludes, MAX_GLOBS, &in->nexcludes);
    sl_cfg_enum(cfg, n, "start_at", "beginning|end", START_BEGINNING, &in->start_at);
    sl_cfg_enum(cfg, n, "follow_symlinks", "inside|always|never", SL_FOLLOW_INSIDE, &in->follow);
    sl_cfg_list(cfg, n, "follow_symlinks_into", in->follow_into, MAX_GLOBS, &in->nfollow_into);
    sl_cfg_enum(cfg, n, "long_lines", "split|truncate", LONG_SPLIT, &in->long_mode);
    sl_cfg_size_range(cfg, n, "max_line_bytes", 1 << 20, 16, 64u << 20, &in->max_line_bytes);
    sl_cfg_bool(cfg, n, "validate_utf8", false, &in->validate_utf8);
    sl_cfg_bool(cfg, n, "strip_cr", true, &in->strip_cr);
    sl_cfg_size_range(cfg, n, "read_chunk", 1 << 20, 4096, 256u << 20, &in->chunk_bytes);
    uint64_t fpb;
    sl_cfg_size(cfg, n, "fingerprint_bytes", 1024, &fpb);
    in->fp_bytes = (uint32_t)(fpb > 65536 ? 65536 : fpb);
    sl_cfg_duration_ms(cfg, n, "poll_interval", 250, &in->poll_ms);
    sl_cfg_duration_ms(cfg, n, "flush_partial_after", 5000, &in->flush_partial_ms);
    sl_cfg_duration_ms(cfg, n, "checkpoint_interval", 1000, &in->checkpoint_ms);
    sl_cfg_duration_ms(cfg, n, "forget_after", 7 * 24 * 3600 * 1000LL, &in->forget_after_ms);
    sl_cfg_int(cfg, n, "max_open_files", 1024, 1, 1 << 20, &in->max_open_files);
    sl_cfg_duration_ms(cfg, n, "close_idle_after", 60000, &in->close_idle_ms);
    sl_cfg_duration_ms(cfg, n, "rescan_interval", 10000, &in->rescan_ms);
    sl_cfg_size(cfg, n, "read_bytes_per_sec", 0, &in->read_rate);
    int64_t br;
    sl_cfg_int(cfg, n, "batch_records", 4096, 1, 1 << 20, &br);
    in->batch_records = (uint32_t)br;
    sl_multiline_new(cfg, sl_cfg_get(n, "multiline"), &in->multiline);
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

static void register_metrics(file_input *in)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_lines = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_split = sl_counter("sluice_input_long_lines_total",
                             "Lines longer than max_line_bytes (split or truncated).", l);
    in->m_truncated_files = sl_counter("sluice_input_file_truncations_total",
                                       "Files that shrank under us (copytruncate).", l);
    in->m_rotations = sl_counter("sluice_input_file_rotations_total",
                                 "Files replaced at their path (rename rotation).", l);
    in->m_open = sl_gauge("sluice_input_open_files", "Files the input holds open.", l);
    in->m_ckpt_errors =
        sl_counter("sluice_checkpoint_write_errors_total", "Failed checkpoint writes.", l);
    in->m_ckpt_fallback = sl_counter("sluice_checkpoint_fallbacks_total",
                                     "Damaged checkpoints replaced by the previous generation.", l);
    in->m_read_errors =
        sl_counter("sluice_input_read_errors_total", "Failed opens and reads of files.", l);
    in->m_deferred = sl_counter("sluice_input_files_deferred_total",
                                "File opens put off because max_open_files was reached.", l);
    in->m_deleted_bytes = sl_gauge("sluice_input_deleted_unread_bytes",
                                   "Unread bytes held open in files deleted or rotated away.", l);
    static const char help[] = "Lines shipped as read but not text: invalid UTF-8 or NUL bytes.";
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", "invalid_utf8");
    in->m_bad_utf8 = sl_counter("sluice_input_invalid_lines_total", help, l);
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", "nul");
    in->m_nul = sl_counter("sluice_input_invalid_lines_total", help, l);
    for (int r = SL_REFUSED_NONE + 1; r < SL_REFUSED_NREASONS; r++) {
        sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", sl_file_refusal_name(r));
        in->m_refused[r] = sl_counter("sluice_input_files_refused_total",
                                      "Files matched by the globs but not read (each once): "
                                      "links leading outside, FIFOs and devices, kernel "
                                      "pseudo files.",
                                      l);
    }
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_lost_bytes = sl_counter("sluice_input_lost_bytes_total",
                                  "Bytes of files that went away before they were read "
                                  "(deleted, or rotated out of reach, unread).",
                                  l);
    in->m_cr = sl_counter("sluice_input_cr_stripped_total",
                          "Carriage returns removed before a newline (strip_cr).", l);
    in->m_ckpt_lost =
        sl_counter("sluice_checkpoint_lost_total",
                   "Checkpoints found unreadable or missing after earlier runs: every file "
                   "was read again from its start.",
                   l);
}

/* A path as a log value: a file name can hold spaces, quotes, newlines. */
static const char *qpath(char *buf, size_t cap, const char *path)
{
    return sl_log_quote(buf, cap, path, strlen(path));
}

static int file_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    file_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    if (configure(in, ctx) != SL_OK) {
        sl_multiline_free(in->multiline);
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    in->find_eol = pick_eol(in->validate_utf8);
    if (ctx->check_only) {
        sl_multiline_free(in->multiline);
        free(in);
        *state = NULL;
        return SL_OK;
    }
    register_metrics(in);
    char dir[2048];
    if (snprintf(dir, sizeof dir, "%s/checkpoints", ctx->data_dir) >= (int)sizeof dir) {
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: data_dir is too long", ctx->name);
    }
    /* A dry run reads the checkpoint if there is one and writes nothing. */
    int rc = ctx->dry_run ? SL_OK : sl_mkdirs(dir, 0700, err);
    if (rc != SL_OK) {
        free(in);
        return rc;
    }
    snprintf(in->ckpt_path, sizeof in->ckpt_path, "%s/%s.json", dir, ctx->name);
    /* Has this input run in this data_dir before? Its marker, or any
     * checkpoint generation (data_dirs from before the marker), says so. */
    char marker[4200], prev[4200], aside[4200];
    snprintf(marker, sizeof marker, "%s/%s.started", dir, ctx->name);
    snprintf(prev, sizeof prev, "%s.prev", in->ckpt_path);
    snprintf(aside, sizeof aside, "%s.damaged", in->ckpt_path);
    struct stat mst;
    bool ran_before = lstat(marker, &mst) == 0 || lstat(in->ckpt_path, &mst) == 0 ||
                      lstat(prev, &mst) == 0 || lstat(aside, &mst) == 0;
    in->fresh = !ran_before;
    int fell_back = 0;
    sl_err lerr = {0};
    rc = sl_ckpt_load(in->ckpt_path, &in->ckpt, &fell_back, &lerr);
    bool missing = rc == SL_OK && !fell_back && lstat(in->ckpt_path, &mst) != 0;
    if (rc != SL_OK || (ran_before && missing)) {
        /* Both generations are damaged (or gone after earlier runs). Skipping
         * to start_at would lose what was written meanwhile, and stopping
         * would crash-loop the node's agent: every file is read again from
         * its start (duplicates, never loss), the damaged file kept aside
         * for a human. */
        if (rc != SL_OK && !ctx->dry_run) rename(in->ckpt_path, aside);
        sl_metric_inc(in->m_ckpt_lost);
        char q[4200];
        sl_log(SL_LOG_ERROR, "checkpoint_unreadable",
               "input=%s path=%s error=\"%s\" kept=%s files=read_from_start", ctx->name,
               qpath(q, sizeof q, in->ckpt_path), rc != SL_OK ? lerr.msg : "missing",
               rc != SL_OK ? "damaged" : "none");
        sl_ckpt_free(&in->ckpt);
        rc = SL_OK;
    } else if (fell_back) {
        sl_metric_inc(in->m_ckpt_fallback);
        sl_log(SL_LOG_WARN, "checkpoint_fallback", "input=%s path=%s used=previous_generation",
               ctx->name, in->ckpt_path);
    }
    if (sl_file_guard_init(&in->guard, in->follow, in->globs, in->nglobs, in->follow_into,
                           in->nfollow_into, err) != SL_OK) {
        sl_ckpt_free(&in->ckpt);
        free(in);
        return SL_EINVAL;
    }
    if (in->fresh && !ctx->dry_run) {
        sl_err merr;
        static const char note[] = "this input has run in this data_dir: start_at no longer "
                                   "applies\n";
        if (sl_write_atomic(marker, note, sizeof note - 1, 0, &merr) != SL_OK)
            sl_log(SL_LOG_WARN, "marker_write_failed", "input=%s error=\"%s\"", ctx->name,
                   merr.msg);
    }
    /* The first turn saves, so that a checkpoint exists from the start. */
    in->ckpt_dirty = true;
    pthread_mutex_init(&in->mu, NULL);
    pthread_mutex_init(&in->stop_mu, NULL);
    pthread_cond_init(&in->stop_cv, NULL);
    in->watch = sl_watch_new();
    in->refused = calloc(INDEX_BUCKETS, sizeof *in->refused);
    in->by_id = calloc(INDEX_BUCKETS, sizeof *in->by_id);
    in->by_path = calloc(INDEX_BUCKETS, sizeof *in->by_path);
    if (!in->find_eol) in->index = malloc(sizeof *in->index);
    if (!in->watch || !in->by_id || !in->by_path || !in->refused || (!in->find_eol && !in->index)) {
        sl_file_guard_free(&in->guard);
        free(in->refused);
        sl_watch_free(in->watch);
        free(in->by_id);
        free(in->by_path);
        free(in->index);
        sl_ckpt_free(&in->ckpt);
        free(in);
        return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    }
    *state = in;
    return SL_OK;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool excluded(const file_input *in, const char *path)
{
    for (size_t i = 0; i < in->nexcludes; i++)
        if (fnmatch(in->excludes[i], path, FNM_PATHNAME) == 0) return true;
    return false;
}

static uint64_t fingerprint_fd(int fd, uint32_t len)
{
    char buf[65536];
    ssize_t r = pread(fd, buf, len, 0);
    return sl_fingerprint(buf, r > 0 ? (size_t)r : 0);
}

/* Refreshes the fingerprint while the file is shorter than fp_bytes, so
 * that it covers as much of the file as exists. */
static void grow_fingerprint(file_input *in, tracked *t, uint64_t size)
{
    if (t->fp_len >= in->fp_bytes || size <= t->fp_len) return;
    uint32_t len = size < in->fp_bytes ? (uint32_t)size : in->fp_bytes;
    t->fp = fingerprint_fd(t->fd, len);
    t->fp_len = len;
}

static size_t id_bucket(uint64_t dev, uint64_t ino)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ dev) & (INDEX_BUCKETS - 1);
}

static size_t path_bucket(const char *path)
{
    return (size_t)sl_fingerprint(path, strlen(path)) & (INDEX_BUCKETS - 1);
}

static void index_add(file_input *in, tracked *t)
{
    size_t i = id_bucket(t->dev, t->ino), p = path_bucket(t->path);
    t->id_next = in->by_id[i];
    in->by_id[i] = t;
    t->path_next = in->by_path[p];
    in->by_path[p] = t;
}

static void index_del_path(file_input *in, tracked *t)
{
    for (tracked **pp = &in->by_path[path_bucket(t->path)]; *pp; pp = &(*pp)->path_next)
        if (*pp == t) {
            *pp = t->path_next;
            return;
        }
}

static void index_del(file_input *in, tracked *t)
{
    for (tracked **pp = &in->by_id[id_bucket(t->dev, t->ino)]; *pp; pp = &(*pp)->id_next)
        if (*pp == t) {
            *pp = t->id_next;
            break;
        }
    index_del_path(in, t);
}

static tracked *find_by_id(file_input *in, uint64_t dev, uint64_t ino)
{
    for (tracked *t = in->by_id[id_bucket(dev, ino)]; t; t = t->id_next)
        if (t->dev == dev && t->ino == ino) return t;
    return NULL;
}

static tracked *find_by_path(file_input *in, const char *path)
{
    for (tracked *t = in->by_path[path_bucket(path)]; t; t = t->path_next)
        if (strcmp(t->path, path) == 0) return t;
    return NULL;
}

static bool deleted(const tracked *t)
{
    struct stat st;
    return fstat(t->fd, &st) == 0 && st.st_nlink == 0;
}

/* The open file that a path's stat result leads to. A file we hold that
 * was deleted can share its inode number with a new file at the same path
 * (inode reuse): the new file is a different one. */
static tracked *find_live(file_input *in, const struct stat *st)
{
    for (tracked *t = in->by_id[id_bucket(st->st_dev, st->st_ino)]; t; t = t->id_next)
        if (t->dev == st->st_dev && t->ino == st->st_ino && !deleted(t)) return t;
    return NULL;
}

static refused_name *find_refused(file_input *in, const char *path)
{
    for (refused_name *r = in->refused[path_bucket(path)]; r; r = r->next)
        if (strcmp(r->path, path) == 0) return r;
    return NULL;
}

/* True when path was refused before and its name still is what it was. */
static bool known_refused(file_input *in, const char *path, const struct stat *lst)
{
    refused_name *r = find_refused(in, path);
    if (!r || r->dev != (uint64_t)lst->st_dev || r->ino != (uint64_t)lst->st_ino) return false;
    r->scan = in->scan_no;
    return true;
}

static void refuse(file_input *in, const char *path, const struct stat *lst, int reason)
{
    refused_name *r = find_refused(in, path);
    if (!r && in->nrefused < MAX_REFUSED) {
        size_t len = strlen(path);
        r = malloc(sizeof *r + len + 1);
        if (r) {
            memcpy(r->path, path, len + 1);
            size_t b = path_bucket(path);
            r->next = in->refused[b];
            in->refused[b] = r;
            in->nrefused++;
        }
    }
    if (r) {
        r->dev = (uint64_t)lst->st_dev;
        r->ino = (uint64_t)lst->st_ino;
        r->scan = in->scan_no;
    }
    sl_metric_inc(in->m_refused[reason]);
    char q[2100];
    sl_log(SL_LOG_WARN, "file_refused", "input=%s path=%s reason=%s", in->ctx->name,
           qpath(q, sizeof q, path), sl_file_refusal_name(reason));
}

/* After a full scan: names it did not see are forgotten (all when
 * everything is to be forgotten). */
static void sweep_refused(file_input *in, bool all)
{
    for (size_t b = 0; b < INDEX_BUCKETS; b++)
        for (refused_name **pp = &in->refused[b]; *pp;) {
            refused_name *r = *pp;
            if (all || r->scan != in->scan_no) {
                *pp = r->next;
                free(r);
                in->nrefused--;
            } else {
                pp = &r->next;
            }
        }
}

static bool close_one_idle(file_input *in);

/* A file that could not be opened yet (max_open_files) is remembered
 * with its size, so that if it is rotated out of the globs' reach before
 * there is room, it is still looked for (rescue), or counted as lost. */
static void remember_unopened(file_input *in, const char *path, const struct stat *st, bool initial)
{
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st->st_dev, st->st_ino);
    if (e) {
        if ((uint64_t)st->st_size > e->size) e->size = (uint64_t)st->st_size;
        e->seen = sl_now_ns() / 1000000000;
        return;
    }
    sl_ckpt_entry ne = {0};
    snprintf(ne.path, sizeof ne.path, "%s", path);
    ne.dev = st->st_dev;
    ne.ino = st->st_ino;
    ne.size = (uint64_t)st->st_size;
    /* fp_len 0: no fingerprint yet, the offset says where to start. */
    if (initial && in->fresh && in->start_at == START_END) ne.offset = ne.size;
    ne.seen = sl_now_ns() / 1000000000;
    sl_ckpt_put(&in->ckpt, &ne);
    in->ckpt_dirty = true;
}

/* found: the path's stat when discovered; lst: its lstat (the name).
 * only_known: open it only if it is the file the checkpoint knows (a
 * rescue). Returns the file when it was opened. */
static tracked *open_file(file_input *in, const char *path, const struct stat *found,
                          const struct stat *lst, bool initial, bool only_known)
{
    /* The second thread never closes files: the input's thread may be
     * using them. */
    if (in->open_count >= in->max_open_files && (in->discovering || !close_one_idle(in))) {
        /* Every open file still has unread or unacknowledged data; this one
         * waits for a later scan rather than exceed the bound. */
        sl_metric_inc(in->m_deferred);
        in->deferred = true;
        if (S_ISREG(found->st_mode)) remember_unopened(in, path, found, initial);
        return NULL;
    }
    int fd, why;
    struct stat fst;
    int grc = sl_file_guard_open(&in->guard, path, found, &fd, &fst, &why);
    if (grc == SL_EINVAL) {
        refuse(in, path, lst, why);
        return NULL;
    }
    if (grc == SL_EAGAIN) {
        /* The name changed between discovery and open: look again soon. */
        in->deferred = true;
        return NULL;
    }
    if (grc != SL_OK) {
        char q[2100];
        sl_metric_inc(in->m_read_errors);
        sl_log(SL_LOG_WARN, "file_open_failed", "input=%s path=%s error=\"%s\"", in->ctx->name,
               qpath(q, sizeof q, path), strerror(errno));
        return NULL;
    }
    const struct stat *st = &fst;
    uint64_t size = (uint64_t)st->st_size;
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st->st_dev, st->st_ino);
    /* fp_len 0: first seen empty (or not opened yet); nothing to compare,
     * and its offset cannot be past anything the file could have held. */
    bool same =
        e && (e->fp_len == 0 || (e->fp_len <= size && fingerprint_fd(fd, e->fp_len) == e->fp));
    if (only_known && !same) {
        close(fd);
        return NULL;
    }
    tracked *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return NULL;
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    t->fd = fd;
    t->dev = st->st_dev;
    t->ino = st->st_ino;
    uint64_t start = 0;
    if (same) {
        /* Same file as checkpointed; an offset past the end means it was
         * truncated while we were away. */
        start = e->offset <= size ? e->offset : 0;
        t->fp_len = e->fp_len;
        t->fp = e->fp;
    } else {
        char q[2100];
        if (e)
            sl_log(SL_LOG_INFO, "file_identity_changed", "input=%s path=%s reason=inode_reused",
                   in->ctx->name, qpath(q, sizeof q, path));
        if (e && e->size > e->offset) {
            /* The file that had this inode went away with bytes unread. */
            sl_metric_add(in->m_lost_bytes, e->size - e->offset);
            sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
                   in->ctx->name, qpath(q, sizeof q, e->path),
                   (unsigned long long)(e->size - e->offset), (unsigned long long)e->offset);
        }
        /* start_at is for the files present when the input first runs in
         * this data_dir; anything after that is new data, read from its
         * start (decision 0015). */
        if (!e && initial && in->fresh && in->start_at == START_END) start = size;
    }
    grow_fingerprint(in, t, size);
    t->read_off = start;
    t->wm = sl_watermark_new(start);
    t->last_data_ns = sl_monotonic_ns();
    if (!t->wm) {
        close(fd);
        free(t);
        return NULL;
    }
    t->next = in->files;
    t->prev = NULL;
    if (in->files) in->files->prev = t;
    in->files = t;
    index_add(in, t);
    in->ckpt_dirty = true;
    t->dirty = true;
    t->caught_up = true;
    in->open_count++;
    sl_metric_gauge_add(in->m_open, 1);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    sl_watch_dir(in->watch, dirname(dir));
    char q[2100];
    sl_log(SL_LOG_INFO, "file_opened", "input=%s path=%s inode=%llu offset=%llu", in->ctx->name,
           qpath(q, sizeof q, path), (unsigned long long)t->ino, (unsigned long long)start);
    return t;
}

static void remember(file_input *in, tracked *t)
{
    sl_ckpt_entry e = {0};
    snprintf(e.path, sizeof e.path, "%s", t->path);
    e.dev = t->dev;
    e.ino = t->ino;
    e.fp_len = t->fp_len;
    e.fp = t->fp;
    e.offset = sl_watermark_get(t->wm);
    e.seen = sl_now_ns() / 1000000000;
    struct stat st;
    e.size = fstat(t->fd, &st) == 0 ? (uint64_t)st.st_size : t->read_off;
    sl_ckpt_put(&in->ckpt, &e);
}

static void close_file(file_input *in, tracked *t)
{
    in->ckpt_dirty = true;
    /* A deleted file can never be opened again, and its inode number may
     * already belong to a new file whose entry must not be overwritten;
     * its own entry (same fingerprint) says it needs no looking for. */
    if (!deleted(t)) {
        remember(in, t);
    } else {
        uint64_t acked = sl_watermark_get(t->wm);
        sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, t->dev, t->ino);
        if (e && e->fp == t->fp && e->fp_len == t->fp_len) e->size = e->offset = acked;
        struct stat st;
        if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size > acked) {
            /* Only at shutdown: deleted with bytes not delivered. */
            char q[2100];
            sl_metric_add(in->m_lost_bytes, (uint64_t)st.st_size - acked);
            sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
                   in->ctx->name, qpath(q, sizeof q, t->path),
                   (unsigned long long)((uint64_t)st.st_size - acked), (unsigned long long)acked);
        }
    }
    close(t->fd);
    sl_watermark_unref(t->wm);
    if (t->chunk) sl_chunk_unref(t->chunk);
    in->open_count--;
    sl_metric_gauge_add(in->m_open, -1);
    free(t);
}

/* A file is idle when everything in it was read and acknowledged. */
static bool is_idle(const tracked *t)
{
    return t->partial == 0 && !t->skipping && sl_watermark_pending(t->wm) == 0;
}

static void unlink_tracked(file_input *in, tracked *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        in->files = t->next;
    if (t->next) t->next->prev = t->prev;
    index_del(in, t);
}

/* Closes the least recently active idle file, to make room under
 * max_open_files. Its checkpoint entry lets it reopen where it was. */
static bool close_one_idle(file_input *in)
{
    tracked *victim = NULL;
    for (tracked *t = in->files; t; t = t->next)
        if (is_idle(t) && (!victim || t->last_data_ns < victim->last_data_ns)) victim = t;
    if (!victim) return false;
    struct stat st;
    if (fstat(victim->fd, &st) == 0 && (uint64_t)st.st_size > victim->read_off) return false;
    unlink_tracked(in, victim);
    close_file(in, victim);
    return true;
}

static void close_idle_files(file_input *in, int64_t now)
{
    for (tracked *t = in->files, *next; t; t = next) {
        next = t->next;
        if (!t->gone && is_idle(t) && (now - t->last_data_ns) / 1000000 >= in->close_idle_ms) {
            struct stat st;
            if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size > t->read_off) continue;
            unlink_tracked(in, t);
            close_file(in, t);
        }
    }
}

/* A path the globs (or inotify) found: followed when tracked, opened when
 * new, refused (once) when it must not be read. */
static void look_at(file_input *in, const char *path, bool initial)
{
    struct stat lst, st;
    if (excluded(in, path) || lstat(path, &lst) != 0) return;
    if (known_refused(in, path, &lst)) return;
    if (stat(path, &st) != 0 || S_ISDIR(st.st_mode)) return; /* dangling link, folder */
    if (!S_ISREG(st.st_mode)) {
        refuse(in, path, &lst, SL_REFUSED_NOT_REGULAR);
        return;
    }
    bool link = S_ISLNK(lst.st_mode);
    if (link && in->follow == SL_FOLLOW_NEVER) {
        refuse(in, path, &lst, SL_REFUSED_SYMLINK);
        return;
    }
    tracked *t = find_live(in, &st);
    if (t) {
        t->gone = false;
        t->dirty = true;
        /* Renamed within the glob: follow the new name. A link to a file
         * we read is that file, read once under its own name. */
        if (!link && !in->discovering && strcmp(t->path, path) != 0) {
            index_del_path(in, t);
            snprintf(t->path, sizeof t->path, "%s", path);
            t->path_next = in->by_path[path_bucket(t->path)];
            in->by_path[path_bucket(t->path)] = t;
            in->ckpt_dirty = true;
        }
        return;
    }
    sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st.st_dev, st.st_ino);
    if (e && e->offset == (uint64_t)st.st_size && mtime_ns(&st) < (e->seen - 1) * 1000000000) {
        /* Read to its end and unchanged since: stays closed (a write
         * reopens it); still present, so not to be forgotten. */
        e->seen = sl_now_ns() / 1000000000;
        return;
    }
    open_file(in, path, &st, &lst, initial, false);
}

/* Whether the checkpoint's file e is to be looked for: no glob led to it,
 * and it has bytes we never read (or, at the first scan, its size is
 * unknown: checkpoints from before sizes were kept). */
static bool wants_rescue(file_input *in, const sl_ckpt_entry *e, bool first)
{
    if (find_by_id(in, e->dev, e->ino)) return false;
    return e->size > e->offset || (first && e->size == 0 && e->fp_len > 0);
}

#define MAX_RESCUE_DIRS 64

/* Files the checkpoint knows with unread bytes that no glob led to: renamed
 * out of the globs' reach (app.log -> app.log.1 with *.log) while the agent
 * was down, or before it had room to open them. They are looked for by
 * identity among the files of the folder they were in, and read to their
 * end; what cannot be found is logged and counted as lost. */
static void rescue(file_input *in, bool first)
{
    char *dirs[MAX_RESCUE_DIRS];
    size_t ndirs = 0;
    bool any = false;
    for (size_t i = 0; i < in->ckpt.n; i++) {
        sl_ckpt_entry *e = &in->ckpt.e[i];
        e->look = 0;
        if (!wants_rescue(in, e, first)) continue;
        any = true;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", e->path);
        const char *d = dirname(dir);
        size_t k = 0;
        while (k < ndirs && strcmp(dirs[k], d) != 0) k++;
        if (k == ndirs && ndirs < MAX_RESCUE_DIRS && (dirs[k] = strdup(d))) ndirs++;
        if (k < ndirs) e->look = 1; /* its folder is walked: 2 once found */
    }
    if (!any) return;
    for (size_t k = 0; k < ndirs; k++) {
        DIR *d = opendir(dirs[k]);
        for (struct dirent *de; d && (de = readdir(d));) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(st.st_mode))
                continue;
            sl_ckpt_entry *e = sl_ckpt_find(&in->ckpt, st.st_dev, st.st_ino);
            if (!e || e->look != 1) continue;
            e->look = 2;
            if ((uint64_t)st.st_size <= e->offset) continue;
            char path[2048];
            if (snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name) >= (int)sizeof path)
                continue;
            uint64_t from = e->offset;
            tracked *t = open_file(in, path, &st, &st, false, true);
            if (!t) continue;
            /* Not in the globs: read to its end, then released. */
            t->gone = true;
            char q[2100];
            sl_log(SL_LOG_INFO, "file_found_again", "input=%s path=%s offset=%llu size=%llu",
                   in->ctx->name, qpath(q, sizeof q, path), (unsigned long long)from,
                   (unsigned long long)st.st_size);
        }
        if (d) closedir(d);
        free(dirs[k]);
    }
    for (size_t i = 0; i < in->ckpt.n; i++) {
        sl_ckpt_entry *e = &in->ckpt.e[i];
        if (e->look != 1 || e->size <= e->offset) continue;
        /* Gone with bytes never read: the loss is said once, and the entry
         * no longer asks to be looked for. */
        uint64_t lost = e->size - e->offset;
        sl_metric_add(in->m_lost_bytes, lost);
        char q[2100];
        sl_log(SL_LOG_ERROR, "file_lost", "input=%s path=%s unread_bytes=%llu offset=%llu",
               in->ctx->name, qpath(q, sizeof q, e->path), (unsigned long long)lost,
               (unsigned long long)e->offset);
        e->offset = e->size;
        in->ckpt_dirty = true;
    }
}

static void scan(file_input *in)
{
    in->scan_no++;
    for (tracked *t = in->files; t; t = t->next) t->gone = true;
    for (size_t g = 0; g < in->nglobs; g++) {
        /* Watch the glob's directory when it has no wildcard, so files
         * created there later are seen at once. */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", in->globs[g]);
        char *d = dirname(dir);
        if (!strpbrk(d, "*?[")) sl_watch_dir(in->watch, d);
        glob_t gl;
        if (glob(in->globs[g], GLOB_NOSORT, NULL, &gl) != 0) continue;
        for (size_t i = 0; i < gl.gl_pathc; i++) look_at(in, gl.gl_pathv[i], !in->first_scan_done);
        globfree(&gl);
    }
    sweep_refused(in, false);
    rescue(in, !in->first_scan_done);
    in->first_scan_done = true;
    in->need_scan = false;
}

static bool matches_globs(const file_input *in, const char *path)
{
    for (size_t g = 0; g < in->nglobs; g++)
        if (fnmatch(in->globs[g], path, FNM_PATHNAME) == 0) return !excluded(in, path);
    return false;
}

static void on_watch_event(void *arg, const char *path, int event)
{
    file_input *in = arg;
    if (event == SL_WATCH_OVERFLOW) {
        in->need_scan = true;
        for (tracked *t = in->files; t; t = t->next) t->dirty = true;
        return;
    }
    tracked *t = find_by_path(in, path);
    if (t) {
        t->dirty = true;
        if (event != SL_WATCH_MODIFIED) in->need_scan = true;
        return;
    }
    if (!matches_globs(in, path)) return;
    if (event == SL_WATCH_MODIFIED) {
        /* A file closed while idle got data: reopen just that one. */
        look_at(in, path, false);
        return;
    }
    in->need_scan = true;
}

static int flush_batch(file_input *in, tracked *t, sl_batch *b, uint64_t begin, uint64_t end)
{
    sl_metric_add(in->m_lines, b->nrecords);
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
    return rc;
}

/* The end of the line starting at p (its '\n', or NULL when it has none
 * before end); *suspect is set when a NUL byte comes first, and, for
 * eol_utf8_scalar, when the line is not valid UTF-8 (check_text then says
 * which). The portable scan: memchr for the newline, then for a NUL before
 * it (as `wc -l` is bound by memchr). With AVX2 the newline index
 * (eol_index_window) is used instead and looks at each byte once, NULs and
 * UTF-8 in the same pass. */
static const char *eol_scalar(const char *p, const char *end, bool *suspect)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (memchr(p, 0, (size_t)((nl ? nl : end) - p))) *suspect = true;
    return nl;
}

static const char *eol_utf8_scalar(const char *p, const char *end, bool *suspect)
{
    const char *nl = eol_scalar(p, end, suspect);
    if (!sl_utf8_valid(p, (size_t)((nl ? nl : end) - p))) *suspect = true;
    return nl;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/utf8_lookup.h"

/* Most log text is ASCII: a block of it only has to close what the block
 * before left open. In text with a few non-ASCII bytes per line the branch
 * mispredicts, but costs no more than the check it skips (bench_lines). */
__attribute__((target("avx2"))) static inline void check_or_skip_ascii(sl_u8_256 *u, __m256i a,
                                                                       __m256i b)
{
    if (_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
        sl_u8_check64(u, a, b);
    } else {
        u->err = _mm256_or_si256(u->err, u->incomplete);
        u->incomplete = _mm256_setzero_si256();
        u->prev = b;
    }
}

#endif

/* $SLUICE_SIMD=scalar (as for the JSON kernels) forces the portable scan,
 * so tests cover it on any CPU. */
static eol_fn pick_eol(bool validate_utf8)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *simd = getenv("SLUICE_SIMD");
    bool forced_scalar = simd && strcmp(simd, "scalar") == 0;
    if (!forced_scalar && __builtin_cpu_supports("avx2")) return NULL;
#endif
    return validate_utf8 ? eol_utf8_scalar : eol_scalar;
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

/* Newlines found a window at a time. Short lines (access logs: ~150 bytes)
 * made the per-line scan restart and mispredict its exit once per line, and
 * it cost as much as copying the data in; here each 64-byte block is looked
 * at once, and finding the next line is a cursor step. NULs, and with
 * validate_utf8 invalid UTF-8 (the lookup method, state carried from one
 * window to the next), are noted per window: the lines of a window with
 * either are checked exactly (check_text), so a false alarm costs time,
 * never a count. The array is bounded by the window (16 KiB -> 32 KiB). */
static void eol_index_reset(eol_index *x, const char *data, size_t len)
{
    x->data = data;
    x->len = len;
    x->wbeg = x->wend = 0;
    x->n = x->i = 0;
    x->wnul = x->wbad = x->carry = false;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,bmi,popcnt"))) static void eol_index_window(eol_index *x, size_t from)
{
    const char *p = x->data + from;
    size_t n = x->len - from < EOL_WINDOW ? x->len - from : EOL_WINDOW;
    const __m256i nl = _mm256_set1_epi8('\n'), zero = _mm256_setzero_si256();
    __m256i nul = zero;
    /* A window that does not follow the last one starts at a line (the
     * byte before is '\n', ASCII) or at a cut, which check_text excuses. */
    bool follows = x->carry && from == x->wend;
    sl_u8_256 u = {zero, follows ? _mm256_loadu_si256((const __m256i *)x->carry_prev) : zero,
                   follows ? _mm256_loadu_si256((const __m256i *)x->carry_open) : zero};
    uint32_t cnt = 0;
    size_t off = 0;
    for (; off < n; off += 64) {
        __m256i a, b;
        if (n - off >= 64) {
            a = _mm256_loadu_si256((const __m256i *)(p + off));
            b = _mm256_loadu_si256((const __m256i *)(p + off + 32));
        } else {
            /* The last bytes, padded with neither '\n' nor NUL (and ASCII). */
            _Alignas(32) char tail[64];
            memset(tail, ' ', sizeof tail);
            memcpy(tail, p + off, n - off);
            a = _mm256_load_si256((const __m256i *)tail);
            b = _mm256_load_si256((const __m256i *)(tail + 32));
        }
        nul = _mm256_or_si256(
            nul, _mm256_or_si256(_mm256_cmpeq_epi8(a, zero), _mm256_cmpeq_epi8(b, zero)));
        if (x->validate) check_or_skip_ascii(&u, a, b);
        uint64_t bits = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, nl)) |
                        (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, nl)) << 32;
        /* One store whatever the count: a block holds at most one newline
         * in most text, and branching on "any?" mispredicts on short lines.
         * The store lands in the slack when there is none (tzcnt(0) = 64). */
        uint32_t c = (uint32_t)__builtin_popcountll(bits);
        x->at[cnt] = (uint16_t)(off + (size_t)_tzcnt_u64(bits));
        if (c > 1) {
            for (uint32_t k = 1; k < c; k++) {
                bits = _blsr_u64(bits);
                x->at[cnt + k] = (uint16_t)(off + (size_t)_tzcnt_u64(bits));
            }
        }
        cnt += c;
    }
    x->wbeg = from;
    x->wend = from + n;
    x->n = cnt;
    x->i = 0;
    x->wnul = !_mm256_testz_si256(nul, nul);
    x->wbad = false;
    if (x->validate) {
        /* A sequence left open at the end of the bytes is a cut: flagged
         * here, judged by check_text if the line is emitted now. */
        if (x->wend == x->len) u.err = _mm256_or_si256(u.err, u.incomplete);
        x->wbad = !_mm256_testz_si256(u.err, u.err);
        _mm256_storeu_si256((__m256i *)x->carry_prev, u.prev);
        _mm256_storeu_si256((__m256i *)x->carry_open, u.incomplete);
        x->carry = true;
    }
}
#else
static void eol_index_window(eol_index *x, size_t from)
{
    (void)x, (void)from; /* only built where the AVX2 scan is */
}
#endif

/* The next newline at or after pos, or NULL when there is none before len;
 * *suspect when a window the line touches holds a NUL or is not UTF-8. */
static const char *eol_index_find(eol_index *x, size_t pos, bool *suspect)
{
    size_t from = pos;
    for (;;) {
        if (from < x->wbeg || from >= x->wend) {
            if (from >= x->len) return NULL;
            eol_index_window(x, from);
        }
        while (x->i < x->n && x->wbeg + x->at[x->i] < from) x->i++;
        if (x->wnul || x->wbad) *suspect = true;
        if (x->i < x->n) return x->data + x->wbeg + x->at[x->i];
        from = x->wend;
    }
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
        sl_batch *b = sl_batch_new(in->batch_records);
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
    if (e->b->nrecords == e->b->cap_records) {
        sl_batch *b = e->b;
        e->b = NULL;
        return flush_batch(in, e->t, b, e->begin, e->base + end);
    }
    return SL_OK;
}

/* Emits the records of t->chunk->data[0, len) as batches. Lines are found
 * with the AVX2 newline index where the CPU has it (eol_index_find), else
 * with the portable memchr scan (in->find_eol). flush_tail: the writer is
 * done, so an unfinished line or multiline group is complete. */
static int emit_lines(file_input *in, tracked *t, size_t len, bool flush_tail)
{
    const char *data = t->chunk->data;
    emitter e = {in, t, t->read_off - len, sl_now_ns(), NULL, 0, false};
    if (in->index) {
        eol_index_reset(in->index, data, len);
        in->index->validate = in->validate_utf8;
    }
    size_t pos = 0, max = in->max_line_bytes;
    sl_multiline *ml = in->multiline;
    size_t gstart = 0;   /* multiline group: where it starts */
    uint32_t glines = 0; /* and how many lines it has */
    int rc = SL_OK;
    while (pos < len && rc == SL_OK) {
        bool suspect = false;
        const char *nl = in->index ? eol_index_find(in->index, pos, &suspect)
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
           in->ctx->name, qpath(q, sizeof q, t->path), reason, (unsigned long long)t->read_off,
           (long long)size);
    sl_watermark *nw = sl_watermark_new(0);
    if (!nw) return SL_ENOMEM;
    sl_watermark_unref(t->wm);
    t->wm = nw;
    t->read_off = 0;
    t->partial = 0;
    t->partial_since = 0;
    t->skipping = false;
    t->fp_len = 0;
    if (t->chunk) sl_chunk_unref(t->chunk), t->chunk = NULL;
    return SL_OK;
}

/* One read per file per turn keeps busy files from starving the others.
 * Returns bytes read, 0 at EOF, or a negative error. */
static long read_some(file_input *in, tracked *t)
{
    struct stat st;
    uint64_t avail = in->chunk_bytes;
    if (fstat(t->fd, &st) == 0) {
        int rc = SL_OK;
        if ((uint64_t)st.st_size < t->read_off) {
            /* copytruncate: the file shrank under us. */
            rc = restart_at_zero(in, t, "shrank", st.st_size);
        } else if (t->fp_len &&
                   ((t->caught_up && (uint64_t)st.st_size > t->read_off) ||
                    ((uint64_t)st.st_size == t->read_off && mtime_ns(&st) != t->mtime_ns)) &&
                   fingerprint_fd(t->fd, t->fp_len) != t->fp) {
            /* Truncated and written again past our offset between two reads:
             * the size alone cannot tell, the first bytes can. Checked before
             * every read that will find data (1 KiB from page cache). */
            rc = restart_at_zero(in, t, "rewritten", st.st_size);
        }
        if (rc != SL_OK) return rc;
        /* Same size, new mtime: rewritten to exactly the length we had read. */
        t->mtime_ns = mtime_ns(&st);
        grow_fingerprint(in, t, (uint64_t)st.st_size);
        if ((uint64_t)st.st_size > t->read_off) avail = (uint64_t)st.st_size - t->read_off;
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
            int rc = emit_lines(in, t, t->partial, true);
            t->partial_since = 0;
            if (rc != SL_OK) return rc;
        }
        return 0;
    }
    t->read_off += (uint64_t)r;
    if (in->read_rate) in->tokens -= r;
    t->partial_since = 0;
    t->last_data_ns = sl_monotonic_ns();
    sl_metric_add(in->m_bytes, (uint64_t)r);
    int rc = emit_lines(in, t, t->partial + (size_t)r, false);
    return rc == SL_OK ? r : rc;
}

static void save_checkpoint(file_input *in)
{
    if (in->ctx->dry_run) return;
    for (tracked *t = in->files; t; t = t->next)
        if (!deleted(t)) remember(in, t);
    int64_t now = sl_now_ns() / 1000000000;
    for (size_t i = 0; i < in->ckpt.n;) {
        const sl_ckpt_entry *e = &in->ckpt.e[i];
        if (!find_by_id(in, e->dev, e->ino) && (now - e->seen) * 1000 > in->forget_after_ms)
            sl_ckpt_remove(&in->ckpt, i);
        else
            i++;
    }
    sl_err err;
    if (sl_ckpt_save(in->ckpt_path, &in->ckpt, &err) != SL_OK) {
        sl_metric_inc(in->m_ckpt_errors);
        sl_log(SL_LOG_ERROR, "checkpoint_write_failed", "input=%s error=\"%s\"", in->ctx->name,
               err.msg);
    }
}

/* Closes files that are gone, fully read and fully acknowledged, and
 * reports how much unread data deleted files still hold. */
static void reap(file_input *in)
{
    int64_t held = 0;
    for (tracked *t = in->files, *next; t; t = next) {
        next = t->next;
        if (!t->gone) continue;
        struct stat st;
        if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size > t->read_off) {
            held += st.st_size - (off_t)t->read_off;
            t->dirty = true;
            continue;
        }
        if (!is_idle(t)) continue;
        sl_metric_inc(in->m_rotations);
        char q[2100];
        sl_log(SL_LOG_INFO, "file_released", "input=%s path=%s offset=%llu", in->ctx->name,
               qpath(q, sizeof q, t->path), (unsigned long long)t->read_off);
        unlink_tracked(in, t);
        close_file(in, t);
    }
    sl_metric_set(in->m_deleted_bytes, held);
}

static void refill_tokens(file_input *in, int64_t now)
{
    if (!in->read_rate) return;
    if (in->tokens_at_ns == 0) in->tokens_at_ns = now;
    int64_t add = (int64_t)((double)(now - in->tokens_at_ns) * (double)in->read_rate / 1e9);
    if (add <= 0) return;
    in->tokens += add;
    if (in->tokens > (int64_t)in->read_rate) in->tokens = (int64_t)in->read_rate; /* 1 s burst */
    in->tokens_at_ns = now;
}

/* The discoverer's scan: new files opened (up to max_open_files, the rest
 * remembered), rotated ones looked for; nothing closed or renamed. */
static void discover(file_input *in)
{
    in->discovering = true;
    for (size_t g = 0; g < in->nglobs; g++) {
        glob_t gl;
        if (glob(in->globs[g], GLOB_NOSORT, NULL, &gl) != 0) continue;
        for (size_t i = 0; i < gl.gl_pathc; i++) look_at(in, gl.gl_pathv[i], false);
        globfree(&gl);
    }
    rescue(in, false);
    in->discovering = false;
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
        if (atomic_load(&in->emit_since_ns) == since) discover(in);
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
            scan(in);
            reap(in);
            /* With inotify, rescans are a safety net; without, they are
             * how new files are found. */
            next_scan = now + (watching ? in->rescan_ms : in->poll_ms) * 1000000;
        }
        if (!watching || now >= next_sweep) {
            for (tracked *t = in->files; t; t = t->next) t->dirty = true;
            next_sweep = now + (watching ? in->rescan_ms : in->poll_ms) * 1000000;
        }
        refill_tokens(in, now);
        bool busy = false;
        for (tracked *t = in->files; t && !atomic_load(in->ctx->stop); t = t->next) {
            if (!t->dirty && !t->partial && !t->gone) continue;
            long r = read_some(in, t);
            if (r == SL_ECLOSED) return SL_OK;
            if (r > 0)
                busy = true;
            else
                t->dirty = false;
        }
        if (in->read_rate && in->tokens <= 0) busy = false;
        close_idle_files(in, now);
        /* When something changed: periodically, and as soon as the input
         * is idle with acks that arrived since the last save (a crash right
         * after a burst then repeats little). Nothing changed: no write. */
        bool due = now >= in->next_ckpt_ns;
        if (!busy || due) {
            uint64_t marks = 0;
            for (tracked *t = in->files; t; t = t->next) marks += sl_watermark_get(t->wm) + t->ino;
            if (marks != in->saved_marks || in->ckpt_dirty) {
                save_checkpoint(in);
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
        if (!busy) {
            int wait_ms = (int)(in->poll_ms < 100 ? in->poll_ms : 100);
            bool pending = false;
            for (tracked *t = in->files; t && !pending; t = t->next)
                pending = t->partial || t->gone;
            if (watching && !pending) wait_ms = (int)in->poll_ms;
            sl_watch_wait(in->watch, wait_ms, on_watch_event, in);
        }
    }
    return SL_OK;
}

static void file_destroy(void *state)
{
    file_input *in = state;
    if (!in) return;
    save_checkpoint(in);
    while (in->files) {
        tracked *t = in->files;
        in->files = t->next;
        close_file(in, t);
    }
    sl_ckpt_free(&in->ckpt);
    sweep_refused(in, true);
    free(in->refused);
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
                                        .keys = file_keys,
                                        .nkeys = SL_CFG_NKEYS(file_keys)};
