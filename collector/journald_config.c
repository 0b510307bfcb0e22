/* The journald input's keys, their reading into its state (field slots,
 * matches, labels) and its metrics; split from journald.c, which reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "collector/journald_internal.h"
#include "core/log.h"
#include "core/metrics.h"

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

/* `fields:`'s table, defined below; declared here so `sluice keys` lists
 * `fields.keep` under `fields`. A key added or removed below changes the
 * count (the compiler refuses an excess). */
static const sl_cfg_key fields_keys[2];

const sl_cfg_key sl_jd_keys[SL_JD_NKEYS] = {
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
     .doc =
         "where to start without a saved cursor: `beginning` or `end`, only the first time the "
         "input runs in this `data_dir`; after its cursor file was damaged or deleted the journal "
         "is read from its beginning (decision 0059)"},
    {.name = "fields",
     .type = SL_KEY_MAP,
     .sub = fields_keys,
     .nsub = SL_CFG_NKEYS(fields_keys),
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
    {.name = "reopen_after",
     .at = SL_CFG_AT(jd_input, reopen_bytes),
     .type = SL_KEY_SIZE,
     .def = "32MiB",
     .min = 0,
     .max = (int64_t)1 << 40,
     .doc = "the journal is closed and reopened at the last entry read after about this many "
            "bytes of entries, so the journal files libsystemd keeps mapped stay out of the "
            "agent's RSS; `0`: never (decision 0048)"},
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

/* The syslog level named (or numbered) s into *level; false when s is none. */
static bool parse_priority(const char *s, int *level)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"emerg", 0},   {"alert", 1}, {"crit", 2},   {"err", 3},  {"error", 3},
                 {"warning", 4}, {"warn", 4},  {"notice", 5}, {"info", 6}, {"debug", 7}};
    if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0') {
        *level = s[0] - '0';
        return true;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *level = names[i].level;
            return true;
        }
    return false;
}

/* Journal field names: uppercase letters, digits and '_', not starting with
 * a digit, at most 64 bytes. */
bool sl_jd_valid_field_name(const char *s, size_t n)
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

/* A label from labels_from must not share its name with a static label
 * (which value would the stream get?) nor with a field of the record other
 * than its own source (the record would hold two fields of that name, one of
 * them a label): refused, with what it collides with. */
static bool label_collides(jd_input *in, sl_cfg *cfg, const sl_cfg_node *at, const char *label,
                           const slot *src)
{
    size_t n = strlen(label);
    for (uint32_t k = 0; k < in->nlabels; k++) {
        if (in->labels[k].key.n == n && memcmp(in->labels[k].key.p, label, n) == 0) {
            sl_cfg_error(cfg, at, "labels_from: '%s' is also a static label (labels:)", label);
            return true;
        }
    }
    for (size_t i = 0; i < in->nslots; i++) {
        const slot *o = &in->slots[i];
        if (o == src || !o->out || o->outlen != n || memcmp(o->out, label, n) != 0) continue;
        sl_cfg_error(cfg, at,
                     "labels_from: '%s' is already the field of %s; name the label otherwise, "
                     "or drop that field (fields.drop: [%s])",
                     label, o->jname, o->jname);
        return true;
    }
    if (in->keep_all && sl_jd_valid_field_name(label, n)) {
        sl_cfg_error(cfg, at,
                     "labels_from: '%s' could be the name of a journal field that fields.keep: "
                     "[\"*\"] ships; name the label in lower case",
                     label);
        return true;
    }
    return false;
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
        if (!sl_jd_valid_field_name(keep[i], strlen(keep[i]))) {
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
        } else if (sl_jd_valid_field_name(drop[i], strlen(drop[i]))) {
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
                if (!sl_jd_valid_field_name(v->scalar, v->scalar_len)) {
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
            if (label_collides(in, cfg, lf->key_nodes[i], label, s)) continue;
            s->labels[s->nlabels++] = label;
        }
    }
}

int sl_jd_configure(jd_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, sl_jd_keys, SL_JD_NKEYS, in);
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
        if (!eq || !sl_jd_valid_field_name(in->matches[i], (size_t)(eq - in->matches[i])))
            sl_cfg_error(cfg, sl_cfg_get(n, "matches"),
                         "matches: '%s' must be FIELD=value with FIELD in A-Z, 0-9, _",
                         in->matches[i]);
    }

    in->priority = 7;
    if (in->keys.priority && !parse_priority(in->keys.priority, &in->priority)) {
        sl_cfg_error(cfg, sl_cfg_get(n, "priority"),
                     "priority '%s': use 0-7 or emerg, alert, crit, err, warning, notice, "
                     "info, debug",
                     in->keys.priority);
        in->priority = 7;
    }
    in->batch_records = (uint32_t)in->keys.batch_records;
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    configure_fields(in, cfg, n);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

void sl_jd_register_metrics(jd_input *in)
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
    in->m_damaged = sl_counter("sluice_journald_damaged_files_total",
                               "Journal files of the folder no writer adds to whose entries "
                               "libsystemd cannot read from head to tail (cut or zeroed tail, "
                               "damaged entry array); it reads what it can.",
                               l);
    in->m_invalid_names =
        sl_counter("sluice_journald_invalid_field_names_total",
                   "Fields of entries whose names journald never writes (not A-Z, 0-9, _), left "
                   "out by fields.keep: [\"*\"].",
                   l);
    in->m_shrank = sl_counter("sluice_journald_file_shrank_total",
                              "Reads of a journal file page that was cut off the file under the "
                              "reader (SIGBUS turned into a zero page); the journal is reopened.",
                              l);
    in->m_removed_unread =
        sl_counter("sluice_journald_removed_unread_files_total",
                   "Journal files removed from the folder (vacuumed, moved) before the input "
                   "read them to their end: their unread entries are a gap.",
                   l);
    in->m_reopens = sl_counter("sluice_journald_reopens_total",
                               "Times the journal was closed and reopened at the last entry read "
                               "after reopen_after bytes, to unmap the journal files.",
                               l);
}

void sl_jd_count_error(jd_input *in, const char *what, int r)
{
    sl_metric_inc(in->m_errors);
    uint64_t suppressed;
    if (sl_ratelimit_ok(&in->rl_errors, &suppressed))
        sl_log(SL_LOG_WARN, "journal_error", "input=%s op=%s error=\"%s\" suppressed=%llu",
               in->ctx->name, what, strerror(r < 0 ? -r : r), (unsigned long long)suppressed);
}
