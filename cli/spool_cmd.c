/* sluice spool: inspects data_dir/spool/<sink>/ through the spool's
 * read-only API (sl_spool_inspect, sl_spool_iterate), so it never competes
 * with the agent for the writer's lock. An entry the agent is writing at
 * that moment can show as a torn tail; running verify again tells. */
#include "cli/spool_cmd.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "cli/agent.h"
#include "cli/conf_files.h"
#include "core/buf.h"
#include "core/config.h"
#include "parsers/timestamp.h"
#include "shipper/recjson.h"
#include "pipeline/spool.h"

enum { SP_OK = 0, SP_FAIL = 1, SP_USAGE = 2 };

#define MAX_CONFIGS SL_CONF_MAX_FILES
#define MAX_SINKS   64
#define MAX_FILTERS 8
/* Output is flushed past this; bounds the command's memory. */
#define OUT_FLUSH (1u << 20)

enum out_format { FMT_NDJSON, FMT_RAW, FMT_LOKI_PUSH };

typedef struct spool_args {
    const char *configs[MAX_CONFIGS];
    int nconfigs;
    const char *sink, *out_path, *match;
    int64_t since_ns, until_ns;
    bool zstd, all;
    int format;                      /* enum out_format */
    const char *labels[MAX_FILTERS]; /* "key=value", all must hold */
    size_t nlabels;
    const char *inputs[MAX_FILTERS]; /* any may hold */
    size_t ninputs;
} spool_args;

static void spool_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice spool ls|stat|verify [-c FILE ...] [--sink NAME]\n"
            "       sluice spool cat|export [-c FILE ...] [--sink NAME] [--all]\n"
            "                    [--since TIME] [--until TIME] [--match REGEX]\n"
            "                    [--label KEY=VALUE ...] [--input NAME ...]\n"
            "                    [--format ndjson|raw|loki-push] [--zstd] [-o FILE]\n"
            "\n"
            "  ls      segments of each spool: size, sequences, records, pending, corruption\n"
            "  stat    one summary per spool: size, records pending, oldest/newest time\n"
            "  verify  decode every entry; exit 1 when corruption is found\n"
            "  cat     the pending records (--all: delivered ones still on disk too)\n"
            "  export  cat for one sink (--sink required)\n"
            "\n"
            "  -c, --config FILE  configuration; without -c, what the service reads:\n"
            "                     " SL_CONF_DIR_DEFAULT "/base.yml, the other *.yml there in name\n"
            "                     order, variables from " SL_CONF_DIR_DEFAULT "/site.env. Only\n"
            "                     data_dir and the sink names are used.\n"
            "  --sink NAME        one sink's spool (also one no longer configured)\n"
            "  --since TIME       records at or after TIME: RFC 3339 (2024-05-01T10:00:00Z)\n"
            "                     or a duration before now (90s, 15m, 1h, 2h30m)\n"
            "  --until TIME       records before TIME (same forms)\n"
            "  --match REGEX      records whose line matches (PCRE2)\n"
            "  --label KEY=VALUE  records with this label (repeatable: all must hold)\n"
            "  --input NAME       records read by this input (repeatable: any)\n"
            "  --format F         ndjson (default): one JSON object per record;\n"
            "                     raw: the line only; loki-push: one Loki push body\n"
            "                     (curl -H 'Content-Type: application/json' --data-binary @FILE\n"
            "                      http://loki:3100/loki/api/v1/push)\n"
            "  --zstd             compress the output (to a file or a pipe, never a terminal)\n"
            "  -o, --output FILE  write there instead of stdout (mode 0600)\n"
            "\n"
            "Damaged entries are skipped, as the agent skips them; cat and export say\n"
            "how many on stderr.\n"
            "Read-only and safe while the agent runs. A closed pipe (| head) ends the\n"
            "output quietly. Exit: 0 ok, 1 corruption, missing data_dir or I/O error,\n"
            "2 usage or configuration error.\n");
}

/* RFC 3339, or a duration meaning that long before now. */
static int parse_time(const char *opt, const char *s, int64_t *ns)
{
    if (sl_ts_parse_rfc3339(s, strlen(s), ns) == 0) return 0;
    int64_t ms;
    struct timespec now;
    if (sl_parse_duration_ms(s, &ms) == 0 && clock_gettime(CLOCK_REALTIME, &now) == 0) {
        *ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - ms * 1000000;
        if (*ns <= 0) *ns = 1; /* 0 means "no bound" */
        return 0;
    }
    fprintf(stderr,
            "sluice spool: %s: '%s' is neither an RFC 3339 time (2024-05-01T10:00:00Z) nor a "
            "duration before now (15m, 1h)\n",
            opt, s);
    return SL_EINVAL;
}

static int parse_spool_args(int argc, char **argv, bool records, spool_args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            spool_usage(stdout);
            exit(SP_OK);
        } else if (!strcmp(o, "-c") || !strcmp(o, "--config")) {
            if (!has_val || a->nconfigs == MAX_CONFIGS) goto bad_value;
            a->configs[a->nconfigs++] = argv[++i];
        } else if (!strcmp(o, "--sink")) {
            if (!has_val) goto bad_value;
            a->sink = argv[++i];
        } else if (records && !strcmp(o, "--all")) {
            a->all = true;
        } else if (records && (!strcmp(o, "-o") || !strcmp(o, "--output"))) {
            if (!has_val) goto bad_value;
            a->out_path = argv[++i];
        } else if (records && !strcmp(o, "--match")) {
            if (!has_val) goto bad_value;
            a->match = argv[++i];
            /* A usage error, told before anything is read. */
            int ec;
            PCRE2_SIZE eo;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)a->match, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                                           &ec, &eo, NULL);
            if (!re) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(ec, msg, sizeof msg);
                fprintf(stderr, "sluice spool: --match at %zu: %s\n", (size_t)eo, (char *)msg);
                return SL_EINVAL;
            }
            pcre2_code_free(re);
        } else if (records && !strcmp(o, "--zstd")) {
            a->zstd = true;
        } else if (records && !strcmp(o, "--since")) {
            if (!has_val || parse_time(o, argv[++i], &a->since_ns) != 0) return SL_EINVAL;
        } else if (records && !strcmp(o, "--until")) {
            if (!has_val || parse_time(o, argv[++i], &a->until_ns) != 0) return SL_EINVAL;
        } else if (records && !strcmp(o, "--label")) {
            if (!has_val || a->nlabels == MAX_FILTERS || !strchr(argv[i + 1], '=')) {
                fprintf(stderr, "sluice spool: --label wants KEY=VALUE (at most %d)\n",
                        MAX_FILTERS);
                return SL_EINVAL;
            }
            a->labels[a->nlabels++] = argv[++i];
        } else if (records && !strcmp(o, "--input")) {
            if (!has_val || a->ninputs == MAX_FILTERS) goto bad_value;
            a->inputs[a->ninputs++] = argv[++i];
        } else if (records && !strcmp(o, "--format")) {
            if (!has_val) goto bad_value;
            const char *f = argv[++i];
            if (!strcmp(f, "ndjson") || !strcmp(f, "json"))
                a->format = FMT_NDJSON;
            else if (!strcmp(f, "raw"))
                a->format = FMT_RAW;
            else if (!strcmp(f, "loki-push"))
                a->format = FMT_LOKI_PUSH;
            else {
                fprintf(stderr, "sluice spool: --format is ndjson, raw or loki-push, not '%s'\n",
                        f);
                return SL_EINVAL;
            }
        } else {
            fprintf(stderr, "sluice spool: unknown option '%s'\n", o);
            return SL_EINVAL;
        }
        continue;
    bad_value:
        fprintf(stderr, "sluice spool: %s needs a value (at most %d of each)\n", o, MAX_CONFIGS);
        return SL_EINVAL;
    }
    return 0;
}

typedef struct sink_set {
    char *names[MAX_SINKS];
    /* The sink's static `labels:` as JSON members ("job":"x",...), which
     * a Loki sink adds to every stream; NULL when none. */
    char *labels[MAX_SINKS];
    size_t n;
    char *data_dir;
} sink_set;

static bool set_has(const sink_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) return true;
    return false;
}

static void set_add(sink_set *s, const char *name, const char *labels)
{
    if (s->n < MAX_SINKS && !set_has(s, name)) {
        char *d = strdup(name), *l = labels ? strdup(labels) : NULL;
        if (d && (l || !labels)) {
            s->labels[s->n] = l;
            s->names[s->n++] = d;
        } else {
            free(d), free(l);
        }
    }
}

static const char *set_labels(const sink_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) return s->labels[i];
    return NULL;
}

static void set_free(sink_set *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->names[i]), free(s->labels[i]);
    free(s->data_dir);
}

/* A sink's static labels as JSON members; NULL when it has none. */
static char *static_labels(const sl_cfg_node *sink)
{
    const sl_cfg_node *lab = sl_cfg_get(sink, "labels");
    if (!lab || lab->kind != SL_CFG_MAP || lab->n == 0) return NULL;
    sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t i = 0; i < lab->n; i++) {
        if (lab->items[i]->kind != SL_CFG_SCALAR) continue;
        if (b.len) sl_buf_putc(&b, ',');
        sl_buf_putc(&b, '"');
        sl_buf_json_escape(&b, lab->keys[i], strlen(lab->keys[i]));
        sl_buf_append(&b, "\":\"", 3);
        sl_buf_json_escape(&b, lab->items[i]->scalar, lab->items[i]->scalar_len);
        sl_buf_putc(&b, '"');
    }
    char *out = b.len && !b.failed ? strndup(b.p, b.len) : NULL;
    sl_buf_free(&b);
    return out;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Records the deferred error of n (an unset variable) if it has one. */
static void need_resolved(sl_cfg *cfg, const sl_cfg_node *n)
{
    if (n && sl_cfg_unresolved(n)) sl_cfg_error(cfg, NULL, "%s", sl_cfg_unresolved(n));
}

/* The sinks to look at: the configured ones plus spools left on disk by
 * sinks since removed from the configuration (they still hold records).
 * Only data_dir and the sinks' names are read, so an unset variable
 * elsewhere (a destination, a credential) does not stop an inspection. */
static int resolve_sinks(const spool_args *a, sink_set *out)
{
    sl_conf_files files;
    if (sl_conf_prepare(&files, a->nconfigs == 0) != 0) return SP_USAGE;
    const char *const *paths = a->configs;
    size_t npaths = (size_t)a->nconfigs;
    sl_err ferr = {0};
    if (npaths == 0) {
        if (sl_conf_find(&files, &ferr) != SL_OK) {
            fprintf(stderr, "sluice spool: %s\n", ferr.msg);
            sl_conf_free(&files);
            return SP_USAGE;
        }
        paths = (const char *const *)files.paths;
        npaths = files.n;
    }
    sl_cfg *cfg = sl_cfg_new();
    if (!cfg) {
        sl_conf_free(&files);
        return SP_FAIL;
    }
    sl_cfg_defer_unset_vars(cfg);
    sl_cfg_set_env_hint(cfg, files.site_env);
    sl_conf_apply(&files, cfg); /* out of memory shows as unset variables */
    for (size_t i = 0; i < npaths; i++) sl_cfg_load_file(cfg, paths[i]);
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const sl_cfg_node *dd_node = sl_cfg_get(root, "data_dir");
    need_resolved(cfg, dd_node);
    const char *dd = sl_agent_data_dir(cfg);
    sink_set configured = {0};
    const sl_cfg_node *sinks = sl_cfg_get(root, "sinks");
    for (size_t i = 0; sinks && sinks->kind == SL_CFG_SEQ && i < sinks->n; i++) {
        const char *name = NULL;
        need_resolved(cfg, sl_cfg_get(sinks->items[i], "name"));
        sl_cfg_str(cfg, sinks->items[i], "name", NULL, &name);
        char *labels = static_labels(sinks->items[i]);
        if (name) set_add(&configured, name, labels);
        free(labels);
    }
    size_t nerr = sl_cfg_nerrors(cfg);
    if (nerr) {
        for (size_t i = 0; i < nerr; i++) fprintf(stderr, "%s\n", sl_cfg_error_at(cfg, i));
        fprintf(stderr, "sluice: %zu configuration error%s\n", nerr, nerr == 1 ? "" : "s");
        sl_cfg_free(cfg);
        set_free(&configured);
        sl_conf_free(&files);
        return SP_USAGE;
    }
    out->data_dir = strdup(dd);
    /* Where data_dir came from, for the message when it is missing. */
    char origin[1200];
    if (dd_node)
        snprintf(origin, sizeof origin, "data_dir of %s:%d", dd_node->file, dd_node->line);
    else
        snprintf(origin, sizeof origin, "the default data_dir (no data_dir in %s%s)",
                 npaths ? paths[npaths - 1] : "the configuration", npaths > 1 ? " or before" : "");
    sl_cfg_free(cfg);
    sl_conf_free(&files);
    if (!out->data_dir) {
        set_free(&configured);
        return SP_FAIL;
    }
    /* No data_dir is not "nothing pending": it is the wrong place (another
     * configuration than the service's) or an agent that never ran. */
    struct stat st;
    if (stat(out->data_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(out->data_dir, R_OK | X_OK) != 0) {
        int e = errno;
        if (stat(out->data_dir, &st) == 0 && !S_ISDIR(st.st_mode)) e = ENOTDIR;
        fprintf(stderr, "sluice spool: %s (%s): %s%s\n", out->data_dir, origin, strerror(e),
                e == ENOENT   ? "; is this the service's configuration? Without -c the tools read "
                                "what the service reads"
                : e == EACCES ? "; run as root or as the service's user"
                              : "");
        set_free(&configured);
        return SP_FAIL;
    }
    char path[4096];
    if (a->sink) {
        snprintf(path, sizeof path, "%s/spool/%s", out->data_dir, a->sink);
        if (!set_has(&configured, a->sink) && !is_dir(path)) {
            fprintf(stderr, "sluice spool: no sink '%s' in the configuration and no spool at %s\n",
                    a->sink, path);
            set_free(&configured);
            return SP_USAGE;
        }
        set_add(out, a->sink, set_labels(&configured, a->sink));
        set_free(&configured);
        return SP_OK;
    }
    for (size_t i = 0; i < configured.n; i++)
        set_add(out, configured.names[i], configured.labels[i]);
    set_free(&configured);
    snprintf(path, sizeof path, "%s/spool", out->data_dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && e->d_type == DT_DIR) set_add(out, e->d_name, NULL);
        closedir(d);
    }
    return SP_OK;
}

static void fmt_time(char *buf, size_t cap, int64_t ns)
{
    if (ns == 0)
        snprintf(buf, cap, "-");
    else
        sl_format_rfc3339_ns(buf, cap, ns);
}

/* A spool that does not exist yet is an empty one. */
static int inspect(const char *dir, bool decode, sl_spool_info *info, sl_spool_seg_info **segs,
                   size_t *nsegs)
{
    memset(info, 0, sizeof *info);
    if (segs) *segs = NULL;
    if (nsegs) *nsegs = 0;
    if (!is_dir(dir)) return SP_OK;
    sl_err err = {0};
    if (sl_spool_inspect(dir, decode, info, segs, nsegs, &err) != 0) {
        fprintf(stderr, "sluice spool: %s: %s\n", dir, err.msg);
        return SP_FAIL;
    }
    return SP_OK;
}

static int cmd_ls(const sink_set *s, const char *dirs[], bool verify)
{
    int rc = SP_OK;
    for (size_t i = 0; i < s->n; i++) {
        sl_spool_info info;
        sl_spool_seg_info *segs;
        size_t n;
        if (inspect(dirs[i], verify, &info, &segs, &n) != SP_OK) {
            rc = SP_FAIL;
            continue;
        }
        printf("sink %s (%s): %" PRIu64 " segment%s, %" PRIu64 " bytes, cursor %" PRIu64 "\n",
               s->names[i], dirs[i], info.segments, info.segments == 1 ? "" : "s", info.bytes,
               info.cursor);
        if (n)
            printf("  %-24s %12s %10s %10s %8s %10s %10s %8s  %-30s  %s\n", "segment", "bytes",
                   "first_seq", "last_seq", "entries", "records", "pending", "corrupt", "oldest",
                   "newest");
        for (size_t k = 0; k < n; k++) {
            const sl_spool_seg_info *g = &segs[k];
            char t0[40], t1[40];
            fmt_time(t0, sizeof t0, g->time_min);
            fmt_time(t1, sizeof t1, g->time_max);
            printf("  %-24s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %10" PRIu64
                   " %10" PRIu64 " %8" PRIu64 "  %-30s  %s\n",
                   g->name, g->bytes, g->first_seq, g->last_seq, g->entries, g->records,
                   g->pending_records, g->corrupt, t0, t1);
        }
        if (verify) {
            printf("  %s: %" PRIu64 " entries checked, %" PRIu64 " damaged\n",
                   info.corrupt ? "CORRUPT" : "ok", info.entries + info.corrupt, info.corrupt);
            if (info.corrupt && rc == SP_OK) rc = SP_FAIL;
        }
        free(segs);
    }
    return rc;
}

static int cmd_stat(const sink_set *s, const char *dirs[])
{
    int rc = SP_OK;
    for (size_t i = 0; i < s->n; i++) {
        sl_spool_info info;
        if (inspect(dirs[i], false, &info, NULL, NULL) != SP_OK) {
            rc = SP_FAIL;
            continue;
        }
        char t0[40], t1[40];
        fmt_time(t0, sizeof t0, info.time_min);
        fmt_time(t1, sizeof t1, info.time_max);
        printf("sink: %s\n"
               "  dir:             %s\n"
               "  segments:        %" PRIu64 "\n"
               "  bytes:           %" PRIu64 "\n"
               "  cursor:          %" PRIu64 "\n"
               "  entries:         %" PRIu64 "\n"
               "  records:         %" PRIu64 "\n"
               "  pending_entries: %" PRIu64 "\n"
               "  pending_records: %" PRIu64 "\n"
               "  corrupt_entries: %" PRIu64 "\n"
               "  oldest:          %s\n"
               "  newest:          %s\n",
               s->names[i], dirs[i], info.segments, info.bytes, info.cursor, info.entries,
               info.records, info.pending_entries, info.pending_records, info.corrupt, t0, t1);
    }
    return rc;
}

/* Where records go: a FILE, through a zstd stream when asked. */
typedef struct writer {
    FILE *f;
    ZSTD_CCtx *z;
    sl_buf buf, zout;
    sl_buf labels, prev_labels; /* loki-push: this record's and the open stream's */
    pcre2_code *re;
    pcre2_match_data *md;
    const spool_args *a;
    const char *sink_labels; /* of the spool being read (loki-push) */
    uint64_t records;
    bool stream_open, body_open;
    bool closed; /* the reader went away (EPIPE): stop quietly */
    int failed;  /* an SL_E* code */
} writer;

static int write_out(writer *w, const void *p, size_t n)
{
    if (fwrite(p, 1, n, w->f) == n) return 0;
    if (errno == EPIPE) w->closed = true;
    return SL_EIO;
}

static int writer_put(writer *w, const void *p, size_t n, ZSTD_EndDirective end)
{
    if (!w->z) return write_out(w, p, n);
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout.p, w->zout.cap, 0};
        size_t left = ZSTD_compressStream2(w->z, &out, &in, end);
        if (ZSTD_isError(left)) return SL_EIO;
        if (out.pos && write_out(w, w->zout.p, out.pos) != 0) return SL_EIO;
        if (end == ZSTD_e_end ? left == 0 : in.pos == in.size) return 0;
    }
}

static int writer_flush(writer *w)
{
    if (w->buf.len == 0) return 0;
    int rc = writer_put(w, w->buf.p, w->buf.len, ZSTD_e_continue);
    sl_buf_reset(&w->buf);
    return rc;
}

/* A label of the record: the input's static labels, then fields marked as
 * labels by a parse step (what the Loki sink sends as the stream). */
static bool has_label(const sl_batch *b, const sl_record *r, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t kn = (size_t)(eq - kv), vn = strlen(eq + 1);
    for (uint32_t i = 0; i < b->nlabels; i++)
        if (sl_slice_eq(b->labels[i].key, kv, kn) && sl_slice_eq(b->labels[i].val, eq + 1, vn))
            return true;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        if ((f->flags & SL_FF_LABEL) && !(f->flags & SL_FF_REMOVED) &&
            sl_slice_eq(f->key, kv, kn) && sl_slice_eq(f->val, eq + 1, vn))
            return true;
    }
    return false;
}

static bool wanted(const writer *w, const sl_batch *b, const sl_record *r)
{
    const spool_args *a = w->a;
    if (a->ninputs) {
        bool any = false;
        for (size_t i = 0; i < a->ninputs && !any; i++)
            any = b->input && !strcmp(b->input, a->inputs[i]);
        if (!any) return false;
    }
    for (size_t i = 0; i < a->nlabels; i++)
        if (!has_label(b, r, a->labels[i])) return false;
    return !w->re || pcre2_match(w->re, (PCRE2_SPTR)r->line.p, r->line.n, 0, 0, w->md, NULL) >= 0;
}

static void put_label(sl_buf *out, const sl_field *f, bool *first)
{
    if (!*first) sl_buf_putc(out, ',');
    *first = false;
    sl_buf_putc(out, '"');
    /* An escaped key is strict JSON text as it is (the spool's decoder
     * checks: decision 0054); escaping it again showed its backslashes. */
    if (f->flags & SL_FF_KEY_ESCAPED)
        sl_buf_append(out, f->key.p, f->key.n);
    else
        sl_buf_json_escape(out, f->key.p, f->key.n);
    sl_buf_append(out, "\":\"", 3);
    if (f->type == SL_V_ESCAPED)
        sl_buf_append(out, f->val.p, f->val.n);
    else
        sl_buf_json_escape(out, f->val.p, f->val.n);
    sl_buf_putc(out, '"');
}

/* Loki push JSON, streamed: consecutive records with the same labels share
 * a stream; `{"streams":[{"stream":{...},"values":[["<ns>","<line>"],...]},...]}`
 * with the time as a string of Unix nanoseconds, as the push API wants. */
static void put_loki(writer *w, const sl_batch *b, const sl_record *r)
{
    sl_buf *l = &w->labels;
    sl_buf_reset(l);
    sl_buf_putc(l, '{');
    bool first = !w->sink_labels;
    if (w->sink_labels) sl_buf_append(l, w->sink_labels, strlen(w->sink_labels));
    for (uint32_t i = 0; i < b->nlabels; i++) put_label(l, &b->labels[i], &first);
    for (uint32_t i = 0; i < r->nfields; i++)
        if ((r->fields[i].flags & SL_FF_LABEL) && !(r->fields[i].flags & SL_FF_REMOVED))
            put_label(l, &r->fields[i], &first);
    sl_buf_putc(l, '}');
    bool same = w->stream_open && l->len == w->prev_labels.len &&
                memcmp(l->p, w->prev_labels.p, l->len) == 0;
    if (!w->body_open) {
        sl_buf_append(&w->buf, "{\"streams\":[", 12);
        w->body_open = true;
    }
    if (same) {
        sl_buf_putc(&w->buf, ',');
    } else {
        if (w->stream_open) sl_buf_append(&w->buf, "]},", 3);
        sl_buf_append(&w->buf, "{\"stream\":", 10);
        sl_buf_append(&w->buf, l->p, l->len);
        sl_buf_append(&w->buf, ",\"values\":[", 11);
        sl_buf_reset(&w->prev_labels);
        sl_buf_append(&w->prev_labels, l->p, l->len);
        w->stream_open = true;
    }
    sl_buf_printf(&w->buf, "[\"%lld\",\"", (long long)r->time_ns);
    sl_buf_json_escape(&w->buf, r->line.p, r->line.n);
    sl_buf_append(&w->buf, "\"]", 2);
}

static int on_record(void *arg, const sl_batch *b, const sl_record *r, uint64_t seq)
{
    (void)seq;
    writer *w = arg;
    if (!wanted(w, b, r)) return 0;
    switch (w->a->format) {
    case FMT_RAW:
        sl_buf_append(&w->buf, r->line.p, r->line.n);
        sl_buf_putc(&w->buf, '\n');
        break;
    case FMT_LOKI_PUSH:
        put_loki(w, b, r);
        break;
    default:
        if (sl_recjson_append(&w->buf, b, r, SL_RJ_ALL) >= 0) sl_buf_putc(&w->buf, '\n');
    }
    if (w->buf.failed || w->labels.failed || w->prev_labels.failed) {
        w->failed = SL_ENOMEM;
        return 1;
    }
    w->records++;
    if (w->buf.len >= OUT_FLUSH && (w->failed = writer_flush(w)) != 0) return 1;
    return 0;
}

/* The end of a loki-push body (or an empty one). */
static void finish_body(writer *w)
{
    if (w->a->format != FMT_LOKI_PUSH) return;
    if (!w->body_open)
        sl_buf_append(&w->buf, "{\"streams\":[]}\n", 15);
    else
        sl_buf_append(&w->buf, w->stream_open ? "]}]}\n" : "]}\n", w->stream_open ? 5 : 3);
}

static int cmd_records(const spool_args *a, const sink_set *s, const char *dirs[])
{
    writer w = {.f = stdout, .a = a};
    sl_buf_init(&w.buf, 0);
    sl_buf_init(&w.zout, 0);
    sl_buf_init(&w.labels, 0);
    sl_buf_init(&w.prev_labels, 0);
    int rc = SP_OK;
    if (a->match) {
        int ec;
        PCRE2_SIZE eo;
        w.re =
            pcre2_compile((PCRE2_SPTR)a->match, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
        if (!w.re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            fprintf(stderr, "sluice spool: --match at %zu: %s\n", (size_t)eo, (char *)msg);
            rc = SP_USAGE;
            goto out;
        }
        pcre2_jit_compile(w.re, PCRE2_JIT_COMPLETE);
        w.md = pcre2_match_data_create_from_pattern(w.re, NULL);
        if (!w.md) {
            rc = SP_FAIL;
            goto out;
        }
    }
    if (a->zstd) {
        w.z = ZSTD_createCCtx();
        if (!w.z || sl_buf_reserve(&w.zout, ZSTD_CStreamOutSize()) != 0) {
            rc = SP_FAIL;
            goto out;
        }
        ZSTD_CCtx_setParameter(w.z, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(w.z, ZSTD_c_checksumFlag, 1);
    }
    if (a->out_path) {
        int fd = open(a->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 || !(w.f = fdopen(fd, "w"))) {
            fprintf(stderr, "sluice spool: %s: %s\n", a->out_path, strerror(errno));
            if (fd >= 0) close(fd);
            w.f = NULL;
            rc = SP_FAIL;
            goto out;
        }
    }
    /* Compressed bytes only to a file or a pipe: -o /dev/tty is a terminal too. */
    if (a->zstd && isatty(fileno(w.f))) {
        fprintf(stderr, "sluice spool: not writing compressed data to a terminal (use -o FILE or "
                        "a pipe)\n");
        rc = SP_USAGE;
        goto out;
    }
    uint64_t damaged = 0;
    sl_spool_iter_opts io = {.pending_only = !a->all,
                             .since_ns = a->since_ns,
                             .until_ns = a->until_ns,
                             .damaged = &damaged};
    for (size_t i = 0; i < s->n && rc == SP_OK && !w.closed; i++) {
        if (!is_dir(dirs[i])) continue;
        w.sink_labels = s->labels[i];
        sl_err err = {0};
        if (sl_spool_iterate(dirs[i], &io, on_record, &w, &err) != 0 && !w.failed) {
            fprintf(stderr, "sluice spool: %s: %s\n", dirs[i], err.msg);
            rc = SP_FAIL;
        }
        if (w.failed && !w.closed) {
            fprintf(stderr, "sluice spool: writing records failed: %s\n", strerror(errno));
            rc = SP_FAIL;
        }
    }
    if (!w.closed && rc == SP_OK) finish_body(&w);
    if (!w.closed && (writer_flush(&w) != 0 || (w.z && writer_put(&w, "", 0, ZSTD_e_end) != 0) ||
                      fflush(w.f) != 0)) {
        if (errno == EPIPE) w.closed = true;
        if (!w.closed) {
            fprintf(stderr, "sluice spool: writing records failed: %s\n", strerror(errno));
            rc = SP_FAIL;
        }
    }
    /* A reader that stopped early (| head) got what it asked for. */
    if (w.closed) {
        if (rc == SP_FAIL && w.failed) rc = SP_OK;
        goto out;
    }
    /* Skipped as the agent skips them (decisions 0008, 0054): said, so a
     * rescue by export does not look complete when it is not. */
    if (damaged)
        fprintf(stderr,
                "sluice spool: %" PRIu64 " damaged entr%s skipped (`sluice spool verify` shows "
                "where)\n",
                damaged, damaged == 1 ? "y" : "ies");
    fprintf(stderr, "sluice spool: %" PRIu64 " record%s\n", w.records, w.records == 1 ? "" : "s");
out:
    if (w.f && w.f != stdout && fclose(w.f) != 0 && rc == SP_OK && !w.closed) rc = SP_FAIL;
    if (w.f == stdout && w.closed) {
        /* stdout's buffer still holds bytes for the closed pipe: drop
         * them so exit() does not try again. */
        __fpurge(stdout);
    }
    ZSTD_freeCCtx(w.z);
    pcre2_match_data_free(w.md);
    pcre2_code_free(w.re);
    sl_buf_free(&w.buf);
    sl_buf_free(&w.zout);
    sl_buf_free(&w.labels);
    sl_buf_free(&w.prev_labels);
    return rc;
}

int sl_cli_spool(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help") ||
        !strcmp(argv[0], "help")) {
        spool_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? SP_USAGE : SP_OK;
    }
    const char *sub = argv[0];
    bool export = !strcmp(sub, "export"), cat = !strcmp(sub, "cat");
    if (!export && !cat && strcmp(sub, "ls") && strcmp(sub, "stat") && strcmp(sub, "verify")) {
        fprintf(stderr, "sluice spool: unknown subcommand '%s'\n", sub);
        spool_usage(stderr);
        return SP_USAGE;
    }
    spool_args a = {0};
    if (parse_spool_args(argc - 1, argv + 1, export || cat, &a) != 0) {
        spool_usage(stderr);
        return SP_USAGE;
    }
    if (export && !a.sink) {
        fprintf(stderr, "sluice spool export: --sink NAME is required (or use cat)\n");
        return SP_USAGE;
    }
    if (a.since_ns && a.until_ns && a.until_ns <= a.since_ns) {
        fprintf(stderr, "sluice spool: --until must be after --since\n");
        return SP_USAGE;
    }
    sink_set s = {0};
    int rc = resolve_sinks(&a, &s);
    if (rc != SP_OK) {
        set_free(&s);
        return rc;
    }
    char *dirs[MAX_SINKS] = {0};
    for (size_t i = 0; i < s.n; i++) {
        if (asprintf(&dirs[i], "%s/spool/%s", s.data_dir, s.names[i]) < 0) {
            dirs[i] = NULL;
            rc = SP_FAIL;
        }
    }
    if (rc == SP_OK) {
        const char **d = (const char **)dirs;
        if (!strcmp(sub, "ls"))
            rc = cmd_ls(&s, d, false);
        else if (!strcmp(sub, "verify"))
            rc = cmd_ls(&s, d, true);
        else if (!strcmp(sub, "stat"))
            rc = cmd_stat(&s, d);
        else
            rc = cmd_records(&a, &s, d);
    }
    for (size_t i = 0; i < s.n; i++) free(dirs[i]);
    set_free(&s);
    return rc;
}
