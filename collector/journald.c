#include "collector/journald.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"

#define MAX_UNITS        64
#define MAX_MATCHES      64
#define MAX_NAMES        64 /* fields.keep, fields.drop */
#define MAX_LABELS       32 /* static labels */
#define MAX_LABELS_FROM  16
#define MAX_SLOTS        (8 + 2 * MAX_NAMES + MAX_LABELS_FROM)
#define MAX_ENTRY_FIELDS 128 /* extra fields of one entry with fields.keep: ["*"] */
#define MAX_FIELD_NAME   64  /* the journal's own limit */
#define RING_CAP         4096
#define SEEN_CAP         1024
#define CKPT_MAX         65536
#define CURSOR_MAX       1024
#define ENTRIES_PER_TURN 1024
#define MAX_NEXT_ERRORS  10

enum { START_BEGINNING, START_END };
enum slot_kind { SLOT_MESSAGE, SLOT_PRIORITY, SLOT_PLAIN };

/* A journal field the input looks for in every entry: where it goes (an
 * output field, labels, both, or nowhere when dropped). */
typedef struct slot {
    const char *jname; /* journal field name */
    size_t jlen;
    const char *out; /* output field name; NULL: not emitted as a field */
    size_t outlen;
    int kind;
    const char *labels[MAX_LABELS_FROM];
    uint32_t nlabels;
} slot;

/* Acknowledgement bookkeeping: the cursor of the last entry of each batch in
 * flight, by the batch's end position. Oldest first. */
typedef struct cursor_slot {
    uint64_t end;
    uint64_t rt_usec;
    char *cursor; /* NULL when sd-journal could not give one */
} cursor_slot;

typedef struct seen_file {
    dev_t dev;
    ino_t ino;
} seen_file;

typedef struct jd_input {
    const sl_input_ctx *ctx;
    /* configuration */
    const char *directory;
    char units[MAX_UNITS][256];
    size_t nunits;
    const char *matches[MAX_MATCHES];
    size_t nmatches;
    int priority; /* max level, 0-7; 7 = no filter */
    int start_at;
    bool keep_all;
    uint64_t max_message_bytes, max_field_bytes, chunk_bytes;
    uint32_t batch_records;
    int64_t checkpoint_ms;
    /* Read from journald_keys as the table types them, then converted. */
    struct {
        const char *priority;
        int64_t batch_records;
    } keys;
    slot slots[MAX_SLOTS];
    size_t nslots;
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    char ckpt_path[4096];
    /* journal */
    sd_journal *j;
    bool have_fd;    /* inotify works: sd_journal_wait tells of changes */
    bool pending;    /* positioned on an entry that was not read yet */
    int next_errors; /* consecutive sd_journal_next failures */
    /* entry being read: offsets relative to e_off in chunk */
    sl_chunk *chunk;
    size_t e_off;
    bool present[MAX_SLOTS];
    uint32_t val_off[MAX_SLOTS], val_len[MAX_SLOTS];
    uint8_t prio;
    uint32_t x_key_off[MAX_ENTRY_FIELDS], x_key_len[MAX_ENTRY_FIELDS];
    uint32_t x_val_off[MAX_ENTRY_FIELDS], x_val_len[MAX_ENTRY_FIELDS];
    uint32_t nextra;
    bool entry_failed; /* the entry did not fit in memory */
    /* batching and acknowledgements */
    sl_batch *batch;
    uint64_t batch_begin;
    uint64_t seq; /* entries read this run: entry k spans positions [k-1, k) */
    uint64_t last_rt_usec;
    sl_watermark *wm;
    cursor_slot *ring;
    size_t ring_head, ring_len;
    char *acked_cursor; /* what the checkpoint records */
    uint64_t acked_rt_usec;
    bool acked_dirty;
    char *read_cursor; /* last entry handed on, for reopening */
    uint64_t read_rt_usec;
    bool ckpt_damaged; /* both checkpoint generations unreadable */
    int64_t next_process_ns;
    int64_t next_pause_ns;
    /* directory mode: journal files already checked */
    seen_file seen[SEEN_CAP];
    size_t nseen, seen_next;
    int64_t rescan_at_ns; /* a fresh file failed to open: look again then */
    struct timespec dir_mtime;
    sl_ratelimit rl_errors;
    sl_metric *m_records, *m_bytes, *m_truncated, *m_missing, *m_lost, *m_errors, *m_ckpt_errors,
        *m_ckpt_fallback, *m_inflight;
} jd_input;

static const char *const level_names[8] = {"emerg",   "alert",  "crit", "err",
                                           "warning", "notice", "info", "debug"};

/* Journal fields every record gets unless dropped, and their output names. */
static const struct {
    const char *jname, *out;
    int kind;
} default_fields[] = {
    {"MESSAGE", NULL, SLOT_MESSAGE},       {"PRIORITY", "level", SLOT_PRIORITY},
    {"_SYSTEMD_UNIT", "unit", SLOT_PLAIN}, {"SYSLOG_IDENTIFIER", "identifier", SLOT_PLAIN},
    {"_HOSTNAME", "hostname", SLOT_PLAIN}, {"_PID", "pid", SLOT_PLAIN},
    {"_COMM", "comm", SLOT_PLAIN},         {"_BOOT_ID", "boot_id", SLOT_PLAIN},
};

static const sl_cfg_key journald_keys[] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "directory",
     .at = SL_CFG_AT(jd_input, directory),
     .type = SL_KEY_STR,
     .doc = "read the journal files of this folder instead of the local journal"},
    {.name = "units",
     .type = SL_KEY_LIST,
     .doc = "systemd units (`.service` is added to bare names); OR'd"},
    {.name = "matches",
     .type = SL_KEY_LIST,
     .doc = "`FIELD=value` list: OR within a field, AND across fields"},
    {.name = "priority",
     .at = SL_CFG_AT(jd_input, keys.priority),
     .type = SL_KEY_STR,
     .def = "debug",
     .doc = "maximum level, `0`–`7` or `emerg`…`debug`"},
    {.name = "start_at",
     .at = SL_CFG_AT(jd_input, start_at),
     .type = SL_KEY_ENUM,
     .choices = "beginning|end",
     .def = "beginning",
     .doc = "where to start without a saved cursor: `beginning` or `end`"},
    {.name = "fields",
     .type = SL_KEY_MAP,
     .doc = "`{keep: [FIELD, …] or [\"*\"], drop: [FIELD, …]}`: journal fields shipped besides the "
            "defaults"},
    {.name = "labels_from",
     .type = SL_KEY_MAP,
     .doc = "`{label: FIELD}`: labels from journal fields"},
    {.name = "max_message_bytes",
     .at = SL_CFG_AT(jd_input, max_message_bytes),
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 16,
     .max = 64 * 1024 * 1024,
     .doc = "longer messages are cut and counted"},
    {.name = "max_field_bytes",
     .at = SL_CFG_AT(jd_input, max_field_bytes),
     .type = SL_KEY_SIZE,
     .def = "64KiB",
     .min = 16,
     .max = 16 * 1024 * 1024,
     .doc = "longer values of other fields are cut"},
    {.name = "read_chunk",
     .at = SL_CFG_AT(jd_input, chunk_bytes),
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .min = 4096,
     .max = 256 * 1024 * 1024,
     .doc = "bytes of entries gathered into one chunk before they are emitted"},
    {.name = "batch_records",
     .at = SL_CFG_AT(jd_input, keys.batch_records),
     .type = SL_KEY_INT,
     .def = "2048",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "entries per batch"},
    {.name = "checkpoint_interval",
     .at = SL_CFG_AT(jd_input, checkpoint_ms),
     .type = SL_KEY_DURATION,
     .def = "1s",
     .doc = "how often the acknowledged cursor is saved"},
};

static const sl_cfg_key fields_keys[] = {
    {.name = "keep",
     .type = SL_KEY_LIST,
     .doc = "journal fields to ship besides the defaults, or `[\"*\"]` for every field"},
    {.name = "drop", .type = SL_KEY_LIST, .doc = "fields to leave out"},
};

/* ---- configuration ---- */

static int parse_priority(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"emerg", 0},   {"alert", 1}, {"crit", 2},   {"err", 3},  {"error", 3},
                 {"warning", 4}, {"warn", 4},  {"notice", 5}, {"info", 6}, {"debug", 7}};
    if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0') return s[0] - '0';
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].level;
    return -1;
}

/* Journal field names: uppercase letters, digits and '_', not starting with
 * a digit, at most 64 bytes. */
static bool valid_field_name(const char *s, size_t n)
{
    if (n == 0 || n > MAX_FIELD_NAME || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!*s || (s[0] >= '0' && s[0] <= '9')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* The slot of a journal field name or of a default output name. */
static slot *find_slot_by_name(jd_input *in, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < in->nslots; i++) {
        slot *s = &in->slots[i];
        if ((s->jlen == n && memcmp(s->jname, name, n) == 0) ||
            (s->out && s->outlen == n && memcmp(s->out, name, n) == 0))
            return s;
    }
    return NULL;
}

static slot *add_slot(jd_input *in, const char *jname, const char *out, int kind)
{
    if (in->nslots == MAX_SLOTS) return NULL;
    slot *s = &in->slots[in->nslots++];
    memset(s, 0, sizeof *s);
    s->jname = jname;
    s->jlen = strlen(jname);
    s->out = out;
    s->outlen = out ? strlen(out) : 0;
    s->kind = kind;
    return s;
}

static void configure_fields(jd_input *in, sl_cfg *cfg, const sl_cfg_node *n)
{
    for (size_t i = 0; i < sizeof default_fields / sizeof *default_fields; i++)
        add_slot(in, default_fields[i].jname, default_fields[i].out, default_fields[i].kind);
    const sl_cfg_node *fields = sl_cfg_get(n, "fields");
    const char *keep[MAX_NAMES], *drop[MAX_NAMES];
    size_t nkeep = 0, ndrop = 0;
    if (fields) {
        sl_cfg_check(cfg, fields, fields_keys, sizeof fields_keys / sizeof *fields_keys);
        sl_cfg_list(cfg, fields, "keep", keep, MAX_NAMES, &nkeep);
        sl_cfg_list(cfg, fields, "drop", drop, MAX_NAMES, &ndrop);
    }
    for (size_t i = 0; i < nkeep; i++) {
        if (strcmp(keep[i], "*") == 0) {
            in->keep_all = true;
            continue;
        }
        if (!valid_field_name(keep[i], strlen(keep[i]))) {
            sl_cfg_error(cfg, sl_cfg_get(fields, "keep"),
                         "fields.keep: '%s' is not a journal field name (A-Z, 0-9, _)", keep[i]);
            continue;
        }
        if (!find_slot_by_name(in, keep[i])) add_slot(in, keep[i], keep[i], SLOT_PLAIN);
    }
    for (size_t i = 0; i < ndrop; i++) {
        slot *s = find_slot_by_name(in, drop[i]);
        if (s && s->kind == SLOT_MESSAGE) {
            sl_cfg_error(cfg, sl_cfg_get(fields, "drop"),
                         "fields.drop: MESSAGE is the record's line and cannot be dropped");
            continue;
        }
        if (s) {
            s->out = NULL; /* still a slot, so keep: ["*"] does not bring it back */
            s->outlen = 0;
        } else if (valid_field_name(drop[i], strlen(drop[i]))) {
            add_slot(in, drop[i], NULL, SLOT_PLAIN);
        } else {
            sl_cfg_error(cfg, sl_cfg_get(fields, "drop"), "fields.drop: unknown field '%s'",
                         drop[i]);
        }
    }
    const sl_cfg_node *lf = sl_cfg_get(n, "labels_from");
    if (lf && lf->kind == SL_CFG_MAP) {
        if (lf->n > MAX_LABELS_FROM)
            sl_cfg_error(cfg, lf, "labels_from: at most %d labels", MAX_LABELS_FROM);
        for (size_t i = 0; i < lf->n && i < MAX_LABELS_FROM; i++) {
            const sl_cfg_node *v = lf->items[i];
            const char *label = lf->keys[i];
            if (v->kind != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, v, "labels_from.%s must name a field", label);
                continue;
            }
            if (!valid_label_name(label)) {
                sl_cfg_error(cfg, lf->key_nodes[i], "labels_from: '%s' is not a valid label name",
                             label);
                continue;
            }
            slot *s = find_slot_by_name(in, v->scalar);
            if (!s) {
                if (!valid_field_name(v->scalar, v->scalar_len)) {
                    sl_cfg_error(cfg, v,
                                 "labels_from.%s: '%s' is neither a journal field nor one of "
                                 "level, unit, identifier, hostname, pid, comm, boot_id",
                                 label, v->scalar);
                    continue;
                }
                s = add_slot(in, v->scalar, NULL, SLOT_PLAIN);
                if (!s) continue;
            }
            if (s->kind == SLOT_MESSAGE) {
                sl_cfg_error(cfg, v, "labels_from.%s: MESSAGE cannot be a label", label);
                continue;
            }
            s->labels[s->nlabels++] = label;
        }
    }
}

static int configure(jd_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, journald_keys, SL_CFG_NKEYS(journald_keys), in);
    if (in->directory && !*in->directory)
        sl_cfg_error(cfg, sl_cfg_get(n, "directory"), "directory must not be empty");

    const char *units[MAX_UNITS];
    sl_cfg_list(cfg, n, "units", units, MAX_UNITS, &in->nunits);
    for (size_t i = 0; i < in->nunits; i++) {
        size_t len = strlen(units[i]);
        if (len == 0 || len > 230) {
            sl_cfg_error(cfg, sl_cfg_get(n, "units"), "units: '%s' is not a unit name", units[i]);
            continue;
        }
        /* Like journalctl -u: a name without a type is a service. */
        const char *suffix = strchr(units[i], '.') ? "" : ".service";
        memcpy(in->units[i], "_SYSTEMD_UNIT=", 14);
        memcpy(in->units[i] + 14, units[i], len);
        memcpy(in->units[i] + 14 + len, suffix, strlen(suffix) + 1);
    }

    sl_cfg_list(cfg, n, "matches", in->matches, MAX_MATCHES, &in->nmatches);
    for (size_t i = 0; i < in->nmatches; i++) {
        const char *eq = strchr(in->matches[i], '=');
        if (!eq || !valid_field_name(in->matches[i], (size_t)(eq - in->matches[i])))
            sl_cfg_error(cfg, sl_cfg_get(n, "matches"),
                         "matches: '%s' must be FIELD=value with FIELD in A-Z, 0-9, _",
                         in->matches[i]);
    }

    in->priority = in->keys.priority ? parse_priority(in->keys.priority) : 7;
    if (in->priority < 0) {
        sl_cfg_error(cfg, sl_cfg_get(n, "priority"),
                     "priority '%s': use 0-7 or emerg, alert, crit, err, warning, notice, "
                     "info, debug",
                     in->keys.priority);
        in->priority = 7;
    }
    in->batch_records = (uint32_t)in->keys.batch_records;
    configure_fields(in, cfg, n);

    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

static void register_metrics(jd_input *in)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_records = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_truncated =
        sl_counter("sluice_journald_truncated_total",
                   "Journal entries cut to max_message_bytes / max_field_bytes or to the field "
                   "limit.",
                   l);
    in->m_missing = sl_counter("sluice_journald_missing_message_total",
                               "Journal entries without MESSAGE (shipped with an empty line).", l);
    in->m_lost = sl_counter("sluice_journald_cursor_lost_total",
                            "Saved cursors whose entry was gone (vacuumed); reading resumed at "
                            "the oldest entry after it.",
                            l);
    in->m_errors = sl_counter("sluice_journald_errors_total",
                              "Journal read errors: unreadable journal files, failed reads.", l);
    in->m_ckpt_errors =
        sl_counter("sluice_checkpoint_write_errors_total", "Failed checkpoint writes.", l);
    in->m_ckpt_fallback = sl_counter("sluice_checkpoint_fallbacks_total",
                                     "Damaged checkpoints replaced by the previous generation.", l);
    in->m_inflight = sl_gauge("sluice_journald_unacked_entries",
                              "Journal entries read but not yet acknowledged by every sink.", l);
}

static void count_error(jd_input *in, const char *what, int r)
{
    sl_metric_inc(in->m_errors);
    uint64_t suppressed;
    if (sl_ratelimit_ok(&in->rl_errors, &suppressed))
        sl_log(SL_LOG_WARN, "journal_error", "input=%s op=%s error=\"%s\" suppressed=%llu",
               in->ctx->name, what, strerror(r < 0 ? -r : r), (unsigned long long)suppressed);
}

/* ---- checkpoint ---- */

static bool valid_cursor(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n >= CURSOR_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (c[i] < 0x21 || c[i] > 0x7e) return false;
    return true;
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

static int parse_checkpoint(const char *path, char **cursor, uint64_t *rt, sl_err *err)
{
    char *data = NULL;
    size_t n = 0;
    int rc = sl_read_state_file(path, CKPT_MAX, &data, &n, err);
    if (rc != SL_OK) return rc;
    json_error_t je;
    json_t *root = json_loadb(data, n, 0, &je);
    free(data);
    const char *c = NULL;
    json_int_t t = 0;
    if (!root || json_unpack(root, "{s:s, s?I}", "cursor", &c, "realtime_usec", &t) != 0 ||
        !valid_cursor(c)) {
        json_decref(root);
        return sl_errf(err, SL_ECORRUPT, "%s: not a journal checkpoint", path);
    }
    *cursor = strdup(c);
    *rt = t > 0 ? (uint64_t)t : cursor_realtime(c);
    json_decref(root);
    return *cursor ? SL_OK : sl_errf(err, SL_ENOMEM, "out of memory");
}

/* Loads the saved cursor (or the previous generation when the file is
 * damaged). No checkpoint at all: *cursor stays NULL. */
static void load_checkpoint(jd_input *in, char **cursor, uint64_t *rt)
{
    sl_err err = {0};
    int rc = parse_checkpoint(in->ckpt_path, cursor, rt, &err);
    if (rc == SL_OK || rc == SL_ENOENT) return;
    char prev[4200];
    snprintf(prev, sizeof prev, "%s.prev", in->ckpt_path);
    sl_err perr = {0};
    if (parse_checkpoint(prev, cursor, rt, &perr) == SL_OK) {
        sl_metric_inc(in->m_ckpt_fallback);
        sl_log(SL_LOG_WARN, "checkpoint_fallback", "input=%s path=%s used=previous_generation",
               in->ctx->name, in->ckpt_path);
        return;
    }
    /* Both generations are damaged: keep the file for a human and read the
     * journal from its beginning: duplicates rather than losses. */
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.damaged", in->ckpt_path);
    rename(in->ckpt_path, aside);
    sl_metric_inc(in->m_ckpt_fallback);
    sl_log(SL_LOG_ERROR, "checkpoint_unreadable", "input=%s path=%s error=\"%s\" kept=%s",
           in->ctx->name, in->ckpt_path, err.msg, aside);
    in->ckpt_damaged = true;
}

static void save_checkpoint(jd_input *in)
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

static void set_acked(jd_input *in, char *cursor, uint64_t rt)
{
    free(in->acked_cursor);
    in->acked_cursor = cursor;
    in->acked_rt_usec = rt;
    in->acked_dirty = true;
}

/* Moves the acknowledged cursor to the last batch every sink is done with. */
static void prune_ring(jd_input *in)
{
    if (!in->wm) return;
    uint64_t mark = sl_watermark_get(in->wm);
    while (in->ring_len && in->ring[in->ring_head].end <= mark) {
        cursor_slot *s = &in->ring[in->ring_head];
        if (s->cursor) set_acked(in, s->cursor, s->rt_usec);
        s->cursor = NULL;
        in->ring_head = (in->ring_head + 1) % RING_CAP;
        in->ring_len--;
    }
    sl_metric_set(in->m_inflight, (int64_t)(in->seq - mark));
}

/* ---- journal ---- */

static int add_matches(jd_input *in, sd_journal *j)
{
    int r = 0;
    bool group = false;
    /* Groups are ANDed; within a group, sd-journal ORs values of the same
     * field and ANDs different fields. */
    for (size_t i = 0; i < in->nunits && r >= 0; i++) r = sd_journal_add_match(j, in->units[i], 0);
    group = in->nunits > 0;
    if (in->nmatches && group && r >= 0) r = sd_journal_add_conjunction(j);
    for (size_t i = 0; i < in->nmatches && r >= 0; i++)
        r = sd_journal_add_match(j, in->matches[i], 0);
    group = group || in->nmatches > 0;
    if (in->priority < 7) {
        if (group && r >= 0) r = sd_journal_add_conjunction(j);
        for (int p = 0; p <= in->priority && r >= 0; p++) {
            char m[] = "PRIORITY=0";
            m[9] = (char)('0' + p);
            r = sd_journal_add_match(j, m, 0);
        }
    }
    return r;
}

/* Positions the journal just after cursor (the entry read or acknowledged
 * last). When that entry is gone the journal is left on the oldest entry
 * after it, to be read first, and the loss is counted. */
static void seek_after(jd_input *in, const char *cursor, uint64_t rt_usec)
{
    sd_journal *j = in->j;
    in->pending = false;
    if (cursor && sd_journal_seek_cursor(j, cursor) >= 0) {
        int r = sd_journal_next(j);
        if (r > 0 && sd_journal_test_cursor(j, cursor) > 0) return; /* on it: next() moves on */
        sl_metric_inc(in->m_lost);
        if (r > 0) {
            uint64_t t = 0;
            sd_journal_get_realtime_usec(j, &t);
            in->pending = true;
            sl_log(SL_LOG_WARN, "journal_cursor_lost",
                   "input=%s cursor=%s resumed_at_usec=%llu reason=entry_gone", in->ctx->name,
                   cursor, (unsigned long long)t);
        } else {
            /* Nothing after it yet; the seek position stays, so entries
             * that arrive later are read. */
            sl_log(SL_LOG_WARN, "journal_cursor_lost",
                   "input=%s cursor=%s reason=entry_gone waiting=new_entries", in->ctx->name,
                   cursor);
        }
        return;
    }
    if (cursor || rt_usec) {
        /* The cursor itself is unusable; its time still tells where to go. */
        sl_metric_inc(in->m_lost);
        sl_log(SL_LOG_WARN, "journal_cursor_lost", "input=%s reason=bad_cursor resume_usec=%llu",
               in->ctx->name, (unsigned long long)rt_usec);
        if (rt_usec)
            sd_journal_seek_realtime_usec(j, rt_usec);
        else
            sd_journal_seek_head(j);
        return;
    }
    if (in->start_at == START_BEGINNING || in->ckpt_damaged) {
        sd_journal_seek_head(j);
        in->ckpt_damaged = false;
        return;
    }
    sd_journal_seek_tail(j);
    if (sd_journal_previous(j) > 0) {
        /* Remember where "end" was, so a crash before the first
         * acknowledgement does not skip what was written meanwhile. */
        char *c = NULL;
        uint64_t t = 0;
        sd_journal_get_realtime_usec(j, &t);
        if (sd_journal_get_cursor(j, &c) >= 0) {
            set_acked(in, c, t);
            save_checkpoint(in);
            free(in->read_cursor);
            in->read_cursor = strdup(c);
            in->read_rt_usec = t;
        }
    }
}

static int open_journal(jd_input *in, const char *cursor, uint64_t rt_usec)
{
    sd_journal *j = NULL;
    int r = in->directory ? sd_journal_open_directory(&j, in->directory, 0)
                          : sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0) return r;
    /* Large enough that a MESSAGE of max_message_bytes comes whole, and one
     * byte more tells that it was longer. */
    uint64_t maxv =
        in->max_message_bytes > in->max_field_bytes ? in->max_message_bytes : in->max_field_bytes;
    r = sd_journal_set_data_threshold(j, (size_t)maxv + MAX_FIELD_NAME + 2);
    if (r >= 0) r = add_matches(in, j);
    if (r < 0) {
        sd_journal_close(j);
        return r;
    }
    /* The inotify watches are made here, so files created from now on are
     * seen. Without them, new files are found by reopening. */
    in->have_fd = sd_journal_get_fd(j) >= 0;
    in->j = j;
    seek_after(in, cursor, rt_usec);
    return 0;
}

/* ---- directory mode: files sd-journal skips ---- */

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* sd-journal quietly ignores journal files it cannot open (and does not
 * report them as a change); look at new files of the folder once each, so a
 * corrupt one is counted and logged. */
static void scan_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    if (stat(in->directory, &dst) == 0) in->dir_mtime = dst.st_mtim;
    DIR *d = opendir(in->directory);
    if (!d) return;
    in->rescan_at_ns = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_suffix(de->d_name, ".journal") && !has_suffix(de->d_name, ".journal~")) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
        bool known = false;
        for (size_t i = 0; i < in->nseen && !known; i++)
            known = in->seen[i].dev == st.st_dev && in->seen[i].ino == st.st_ino;
        if (known) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", in->directory, de->d_name);
        const char *paths[] = {path, NULL};
        sd_journal *t = NULL;
        int r = sd_journal_open_files(&t, paths, 0);
        if (t) sd_journal_close(t);
        if (r < 0 && time(NULL) - st.st_mtime < 2) {
            /* Possibly still being created by its writer: look again soon. */
            in->rescan_at_ns = sl_monotonic_ns() + 1000000000LL;
            continue;
        }
        if (r < 0) {
            sl_metric_inc(in->m_errors);
            sl_log(SL_LOG_WARN, "journal_file_unreadable", "input=%s path=%s error=\"%s\"",
                   in->ctx->name, path, strerror(-r));
        }
        in->seen[in->seen_next] = (seen_file){st.st_dev, st.st_ino};
        in->seen_next = (in->seen_next + 1) % SEEN_CAP;
        if (in->nseen < SEEN_CAP) in->nseen++;
    }
    closedir(d);
}

/* Scans when the folder changed (a stat per turn) or a retry is due. */
static void check_directory(jd_input *in)
{
    if (!in->directory) return;
    struct stat dst;
    bool changed = stat(in->directory, &dst) == 0 && (dst.st_mtim.tv_sec != in->dir_mtime.tv_sec ||
                                                      dst.st_mtim.tv_nsec != in->dir_mtime.tv_nsec);
    if (changed || (in->rescan_at_ns && sl_monotonic_ns() >= in->rescan_at_ns)) scan_directory(in);
}

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

static slot *lookup(jd_input *in, const char *name, size_t n, size_t *idx)
{
    for (size_t i = 0; i < in->nslots; i++) {
        slot *s = &in->slots[i];
        if (s->jlen == n && s->jname[0] == name[0] && memcmp(s->jname, name, n) == 0) {
            *idx = i;
            return s;
        }
    }
    return NULL;
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
    while ((r = sd_journal_enumerate_available_data(j, &d, &l)) > 0) {
        const char *p = d;
        const char *eq = memchr(p, '=', l);
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
    if (r < 0) count_error(in, "enumerate_data", r);
    if (truncated) flags |= SL_RF_TRUNCATED;
    return flags;
}

static int flush_batch(jd_input *in)
{
    sl_batch *b = in->batch;
    if (!b) return SL_OK;
    in->batch = NULL;
    if (in->pending) {
        /* The journal is on an entry not read yet, so the batch's cursor is
         * unknown: never acknowledge it; it is read again after a restart. */
        sl_batch_unref(b);
        return SL_OK;
    }
    uint64_t begin = in->batch_begin, end = in->seq;
    sl_metric_add(in->m_records, b->nrecords);
    /* The journal is still on the batch's last entry. */
    char *c = NULL;
    if (sd_journal_get_cursor(in->j, &c) < 0) {
        count_error(in, "get_cursor", EIO);
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
    return in->ctx->emit(in->ctx->emit_arg, b);
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
    sl_metric_add(in->m_bytes, in->chunk->len - in->e_off);
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
         * most one chunk to a batch, so checking before each one suffices. */
        if (in->batch && (in->batch->nrecords == in->batch->cap_records ||
                          in->batch->nchunks >= SL_BATCH_MAX_CHUNKS)) {
            int rc = flush_batch(in);
            if (rc != SL_OK) return rc;
            if (stopping(in)) return n;
            int64_t now = sl_monotonic_ns();
            if (now >= in->next_process_ns) {
                /* Busy: still drain change notifications now and then. */
                sd_journal_process(j);
                check_directory(in);
                in->next_process_ns = now + 1000000000LL;
            }
        }
        if (!in->batch && !in->ctx->dry_run && in->ring_len == RING_CAP) {
            prune_ring(in);
            if (in->ring_len == RING_CAP) return n ? n : SL_EAGAIN;
        }
        int r = in->pending ? 1 : sd_journal_next(j);
        in->pending = false;
        if (r < 0) {
            count_error(in, "next", r);
            int rc = flush_batch(in);
            if (rc != SL_OK) return rc;
            in->next_errors++;
            return SL_EAGAIN;
        }
        in->next_errors = 0;
        if (r == 0) {
            int rc = flush_batch(in);
            return rc != SL_OK ? rc : n;
        }
        uint32_t flags = read_fields(in, j);
        if (!in->present[0]) flags = reread_without_message(in, j, flags);
        if (in->entry_failed) {
            /* Out of memory for this entry: the record carries what fit. */
            count_error(in, "copy_entry", ENOMEM);
            flags |= SL_RF_TRUNCATED;
        }
        if (flags & SL_RF_TRUNCATED) sl_metric_inc(in->m_truncated);
        int rc = commit_entry(in, j, flags);
        if (rc != SL_OK) {
            /* Out of memory before the record existed: read it again. */
            in->pending = true;
            count_error(in, "commit_entry", ENOMEM);
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

/* Starts over with a fresh sd_journal after the last entry handed on. */
static void reopen(jd_input *in)
{
    flush_batch(in);
    close_journal(in);
    char *c = in->read_cursor ? strdup(in->read_cursor) : NULL;
    int r = open_journal(in, c, c ? in->read_rt_usec : 0);
    free(c);
    if (r < 0) count_error(in, "reopen", r);
}

static int jd_create(const sl_input_ctx *ctx, void **state, sl_err *err)
{
    jd_input *in = calloc(1, sizeof *in);
    if (!in) return sl_errf(err, SL_ENOMEM, "input %s: out of memory", ctx->name);
    in->ctx = ctx;
    if (configure(in, ctx) != SL_OK) {
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: invalid configuration", ctx->name);
    }
    if (ctx->check_only) {
        free(in);
        *state = NULL;
        return SL_OK;
    }
    register_metrics(in);
    in->rl_errors.interval_ns = 10 * 1000000000LL;
    char dir[2048];
    if (snprintf(dir, sizeof dir, "%s/checkpoints", ctx->data_dir) >= (int)sizeof dir) {
        free(in);
        return sl_errf(err, SL_EINVAL, "input %s: data_dir is too long", ctx->name);
    }
    int rc = ctx->dry_run ? SL_OK : sl_mkdirs(dir, 0700, err); /* a dry run writes nothing */
    if (rc != SL_OK) {
        free(in);
        return rc;
    }
    snprintf(in->ckpt_path, sizeof in->ckpt_path, "%s/%s.journal", dir, ctx->name);
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
    load_checkpoint(in, &cursor, &rt);
    if (cursor) {
        in->acked_cursor = strdup(cursor);
        in->acked_rt_usec = rt;
        in->read_cursor = cursor;
        in->read_rt_usec = rt;
    }
    int64_t next_open = 0, next_ckpt = 0, next_reopen = 0;
    int rc = SL_OK;
    while (!stopping(in)) {
        int64_t now = sl_monotonic_ns();
        if (!in->j) {
            if (now >= next_open) {
                char *c = in->read_cursor ? strdup(in->read_cursor) : NULL;
                int r = open_journal(in, c, in->read_rt_usec);
                free(c);
                if (r < 0) {
                    count_error(in, in->directory ? "open_directory" : "open", r);
                    next_open = now + 2000000000LL;
                } else {
                    sl_log(SL_LOG_INFO, "journal_opened", "input=%s source=%s cursor=%s",
                           in->ctx->name, in->directory ? in->directory : "local",
                           in->read_cursor ? in->read_cursor : "none");
                    scan_directory(in);
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
            prune_ring(in);
            save_checkpoint(in);
            next_ckpt = now + in->checkpoint_ms * 1000000;
        }
        int n = read_some(in);
        if (n == SL_ECLOSED) break;
        if (n < 0 && n != SL_EAGAIN) {
            rc = n;
            count_error(in, "read", n == SL_ENOMEM ? ENOMEM : EIO);
        }
        if (in->next_errors >= MAX_NEXT_ERRORS) {
            reopen(in);
            in->next_errors = 0;
            continue;
        }
        if (!in->j) continue;
        if (n > 0) continue;
        if (n == SL_EAGAIN || !in->have_fd) {
            struct timespec ts = {0, n == SL_EAGAIN ? 10000000 : 100000000};
            nanosleep(&ts, NULL);
            if (!in->have_fd && now >= next_reopen) {
                /* No inotify: new journal files show up by reopening. */
                reopen(in);
                next_reopen = now + 10000000000LL;
            }
        } else {
            int r = sd_journal_wait(in->j, 100000);
            if (r < 0) {
                count_error(in, "wait", r);
                struct timespec ts = {0, 100000000};
                nanosleep(&ts, NULL);
            }
        }
        check_directory(in);
    }
    /* Whatever was read goes out while the sinks drain. */
    if (in->batch && in->j) flush_batch(in);
    return rc == SL_ECLOSED ? SL_OK : rc;
}

static void jd_destroy(void *state)
{
    jd_input *in = state;
    if (!in) return;
    if (in->batch) sl_batch_unref(in->batch);
    prune_ring(in);
    save_checkpoint(in);
    close_journal(in);
    for (size_t i = 0; i < in->ring_len; i++) free(in->ring[(in->ring_head + i) % RING_CAP].cursor);
    free(in->ring);
    sl_watermark_unref(in->wm);
    if (in->chunk) sl_chunk_unref(in->chunk);
    free(in->acked_cursor);
    free(in->read_cursor);
    free(in);
}

const sl_input_ops sl_journald_input_ops = {.type = "journald",
                                            .create = jd_create,
                                            .run = jd_run,
                                            .destroy = jd_destroy,
                                            .keys = journald_keys,
                                            .nkeys = SL_CFG_NKEYS(journald_keys)};
