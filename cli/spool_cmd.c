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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "cli/agent.h"
#include "core/buf.h"
#include "core/config.h"
#include "parsers/timestamp.h"
#include "shipper/recjson.h"
#include "shipper/spool.h"

enum { SP_OK = 0, SP_FAIL = 1, SP_USAGE = 2 };

#define MAX_CONFIGS 16
#define MAX_SINKS   64
/* Output is flushed past this; bounds the command's memory. */
#define OUT_FLUSH (1u << 20)

typedef struct spool_args {
    const char *configs[MAX_CONFIGS];
    int nconfigs;
    const char *sink, *out_path, *match;
    int64_t since_ns, until_ns;
    bool zstd, all;
} spool_args;

static void spool_usage(FILE *out)
{
    fprintf(
        out,
        "usage: sluice spool ls|stat|cat|verify -c FILE [-c FILE ...] [--sink NAME]\n"
        "       sluice spool export -c FILE --sink NAME [--since RFC3339] [--until RFC3339]\n"
        "                           [--match REGEX] [--zstd] [-o FILE] [--all]\n"
        "\n"
        "  ls      segments of each spool: size, sequences, records, pending, corruption\n"
        "  stat    one summary per spool: size, records pending, oldest/newest time\n"
        "  cat     the pending records as JSON lines (--all: delivered ones still on disk too)\n"
        "  verify  decode every entry; exit 1 when corruption is found\n"
        "  export  like cat for one sink, filtered by time (--since inclusive, --until\n"
        "          exclusive) and by a PCRE2 regex on the line, optionally zstd-compressed\n"
        "\n"
        "Read-only and safe while the agent runs. Exit: 0 ok, 1 corruption or I/O error,\n"
        "2 usage or configuration error.\n");
}

static int parse_time(const char *opt, const char *s, int64_t *ns)
{
    if (sl_ts_parse_rfc3339(s, strlen(s), ns) != 0) {
        fprintf(stderr, "sluice spool: %s: '%s' is not an RFC 3339 time\n", opt, s);
        return -1;
    }
    return 0;
}

static int parse_spool_args(int argc, char **argv, bool export, spool_args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(o, "-c") || !strcmp(o, "--config")) {
            if (!has_val || a->nconfigs == MAX_CONFIGS) goto bad_value;
            a->configs[a->nconfigs++] = argv[++i];
        } else if (!strcmp(o, "--sink")) {
            if (!has_val) goto bad_value;
            a->sink = argv[++i];
        } else if (!strcmp(o, "--all")) {
            a->all = true;
        } else if (export && (!strcmp(o, "-o") || !strcmp(o, "--output"))) {
            if (!has_val) goto bad_value;
            a->out_path = argv[++i];
        } else if (export && !strcmp(o, "--match")) {
            if (!has_val) goto bad_value;
            a->match = argv[++i];
        } else if (export && !strcmp(o, "--zstd")) {
            a->zstd = true;
        } else if (export && !strcmp(o, "--since")) {
            if (!has_val || parse_time(o, argv[++i], &a->since_ns) != 0) return -1;
        } else if (export && !strcmp(o, "--until")) {
            if (!has_val || parse_time(o, argv[++i], &a->until_ns) != 0) return -1;
        } else {
            fprintf(stderr, "sluice spool: unknown option '%s'\n", o);
            return -1;
        }
        continue;
    bad_value:
        fprintf(stderr, "sluice spool: %s needs a value (at most %d config files)\n", o,
                MAX_CONFIGS);
        return -1;
    }
    if (a->nconfigs == 0) {
        fprintf(stderr, "sluice spool: no configuration given (-c FILE)\n");
        return -1;
    }
    if (export && !a->sink) {
        fprintf(stderr, "sluice spool export: --sink NAME is required\n");
        return -1;
    }
    return 0;
}

typedef struct sink_set {
    char *names[MAX_SINKS];
    size_t n;
    char *data_dir;
} sink_set;

static bool set_has(const sink_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) return true;
    return false;
}

static void set_add(sink_set *s, const char *name)
{
    if (s->n < MAX_SINKS && !set_has(s, name)) {
        char *d = strdup(name);
        if (d) s->names[s->n++] = d;
    }
}

static void set_free(sink_set *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->names[i]);
    free(s->data_dir);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The sinks to look at: the configured ones plus spools left on disk by
 * sinks since removed from the configuration (they still hold records). */
static int resolve_sinks(const spool_args *a, sink_set *out)
{
    sl_cfg *cfg = sl_cfg_new();
    if (!cfg) return SP_FAIL;
    for (int i = 0; i < a->nconfigs; i++) sl_cfg_load_file(cfg, a->configs[i]);
    if (sl_cfg_nerrors(cfg) == 0) sl_agent_check(cfg);
    size_t nerr = sl_cfg_nerrors(cfg);
    if (nerr) {
        for (size_t i = 0; i < nerr; i++) fprintf(stderr, "%s\n", sl_cfg_error_at(cfg, i));
        fprintf(stderr, "sluice: %zu configuration error%s\n", nerr, nerr == 1 ? "" : "s");
        sl_cfg_free(cfg);
        return SP_USAGE;
    }
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const char *dd = "/var/lib/sluice";
    sl_cfg_str(cfg, root, "data_dir", dd, &dd);
    out->data_dir = strdup(dd);
    sink_set configured = {0};
    const sl_cfg_node *sinks = sl_cfg_get(root, "sinks");
    for (size_t i = 0; sinks && i < sinks->n; i++) {
        const char *name = NULL;
        sl_cfg_str(cfg, sinks->items[i], "name", NULL, &name);
        if (name) set_add(&configured, name);
    }
    sl_cfg_free(cfg);
    if (!out->data_dir) {
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
        set_add(out, a->sink);
        set_free(&configured);
        return SP_OK;
    }
    for (size_t i = 0; i < configured.n; i++) set_add(out, configured.names[i]);
    set_free(&configured);
    snprintf(path, sizeof path, "%s/spool", out->data_dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && e->d_type == DT_DIR) set_add(out, e->d_name);
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
    pcre2_code *re;
    pcre2_match_data *md;
    uint64_t records;
    int failed; /* an SL_E* code */
} writer;

static int writer_put(writer *w, const void *p, size_t n, ZSTD_EndDirective end)
{
    if (!w->z) return fwrite(p, 1, n, w->f) == n ? 0 : SL_EIO;
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout.p, w->zout.cap, 0};
        size_t left = ZSTD_compressStream2(w->z, &out, &in, end);
        if (ZSTD_isError(left)) return SL_EIO;
        if (out.pos && fwrite(w->zout.p, 1, out.pos, w->f) != out.pos) return SL_EIO;
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

static int on_record(void *arg, const sl_batch *b, const sl_record *r, uint64_t seq)
{
    (void)seq;
    writer *w = arg;
    if (w->re && pcre2_match(w->re, (PCRE2_SPTR)r->line.p, r->line.n, 0, 0, w->md, NULL) < 0)
        return 0;
    if (sl_recjson_append(&w->buf, b, r, SL_RJ_ALL) < 0 || sl_buf_putc(&w->buf, '\n') != 0) {
        w->failed = SL_ENOMEM;
        return 1;
    }
    w->records++;
    if (w->buf.len >= OUT_FLUSH && (w->failed = writer_flush(w)) != 0) return 1;
    return 0;
}

static int cmd_records(const spool_args *a, const sink_set *s, const char *dirs[])
{
    writer w = {.f = stdout};
    sl_buf_init(&w.buf, 0);
    sl_buf_init(&w.zout, 0);
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
        int fd = open(a->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || !(w.f = fdopen(fd, "w"))) {
            fprintf(stderr, "sluice spool: %s: %s\n", a->out_path, strerror(errno));
            if (fd >= 0) close(fd);
            w.f = NULL;
            rc = SP_FAIL;
            goto out;
        }
    } else if (a->zstd && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "sluice spool: not writing compressed data to a terminal (use -o)\n");
        rc = SP_USAGE;
        goto out;
    }
    sl_spool_iter_opts io = {
        .pending_only = !a->all, .since_ns = a->since_ns, .until_ns = a->until_ns};
    for (size_t i = 0; i < s->n && rc == SP_OK; i++) {
        if (!is_dir(dirs[i])) continue;
        sl_err err = {0};
        if (sl_spool_iterate(dirs[i], &io, on_record, &w, &err) != 0 && !w.failed) {
            fprintf(stderr, "sluice spool: %s: %s\n", dirs[i], err.msg);
            rc = SP_FAIL;
        }
        if (w.failed) {
            fprintf(stderr, "sluice spool: writing records failed\n");
            rc = SP_FAIL;
        }
    }
    if (writer_flush(&w) != 0 || (w.z && writer_put(&w, "", 0, ZSTD_e_end) != 0) ||
        fflush(w.f) != 0) {
        fprintf(stderr, "sluice spool: writing records failed\n");
        rc = SP_FAIL;
    }
    fprintf(stderr, "sluice spool: %" PRIu64 " record%s\n", w.records, w.records == 1 ? "" : "s");
out:
    if (w.f && w.f != stdout && fclose(w.f) != 0 && rc == SP_OK) rc = SP_FAIL;
    ZSTD_freeCCtx(w.z);
    pcre2_match_data_free(w.md);
    pcre2_code_free(w.re);
    sl_buf_free(&w.buf);
    sl_buf_free(&w.zout);
    return rc;
}

int sl_cli_spool(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
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
    if (parse_spool_args(argc - 1, argv + 1, export, &a) != 0) {
        spool_usage(stderr);
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
