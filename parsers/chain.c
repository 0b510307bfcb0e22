#include "parsers/chain.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "parsers/cri.h"
#include "parsers/json.h"
#include "parsers/kubernetes.h"
#include "parsers/logfmt.h"
#include "parsers/regex.h"
#include "parsers/syslog.h"
#include "parsers/timestamp.h"

#define MAX_STEPS 32
#define MAX_NAMES 32

enum step_kind {
    STEP_LABELS,
    STEP_DROP,
    STEP_KEEP,
    STEP_RENAME,
    STEP_REMOVE,
    STEP_JSON,
    STEP_REGEX,
    STEP_LOGFMT,
    STEP_CRI,
    STEP_DOCKER,
    STEP_SYSLOG,
    STEP_TIMESTAMP,
    STEP_KUBERNETES,
};

static const char *const step_names[] = {"labels", "drop",      "keep",      "rename", "remove",
                                         "json",   "regex",     "logfmt",    "cri",    "docker",
                                         "syslog", "timestamp", "kubernetes"};

/* Partial container lines are joined per source file: pieces of two files
 * must never meet. A bounded set, the least recently used goes first. */
#define MAX_JOINERS 256

/* Batches holding pieces of a message the joiner has not finished: their
 * acknowledgement waits until the batch that completes it is delivered. */
#define MAX_HELD 8

typedef struct joiner_slot {
    sl_batch *held[MAX_HELD];
    uint32_t nheld;
    char *source;
    sl_cri_joiner *j;
    uint64_t used;
} joiner_slot;

typedef struct step {
    int kind;
    const char *field; /* NULL: the record's line */
    pcre2_code *re;
    pcre2_match_data *md;
    const char *from[MAX_NAMES], *to[MAX_NAMES]; /* labels/rename: from field -> to name */
    size_t nnames;
    sl_metric *errors, *dropped, *warnings;
    sl_json_opts json;
    sl_regex *regex;
    sl_ts_format *ts;
    sl_tz *tz;
    uint64_t join_max;
    joiner_slot *joiners;
    uint64_t clock;
    sl_k8s_step *k8s;
} step;

/* The time of the last multiline record cut at its limits, for the record
 * that carries on from it (maybe in the next batch of the same file). */
typedef struct cut_time {
    int64_t time_ns;
    bool have;
    char source[1024];
} cut_time;

struct sl_chain {
    step steps[MAX_STEPS];
    size_t n;
    sl_metric *records_dropped;
    cut_time cut;
};

static const sl_cfg_key filter_keys[] = {
    {"field", SL_KEY_STR, false, NULL, false},
    {"regex", SL_KEY_STR, true, NULL, false},
};
static const sl_cfg_key remove_keys[] = {
    {"fields", SL_KEY_LIST, true, NULL, false},
};

static const sl_cfg_key field_keys[] = {
    {"field", SL_KEY_STR, false, NULL, false},
};
static const sl_cfg_key join_keys[] = {
    {"max_bytes", SL_KEY_SIZE, false, NULL, false},
};
static const sl_cfg_key regex_keys[] = {
    {"pattern", SL_KEY_STR, false, NULL, false},
    {"builtin", SL_KEY_ENUM, false,
     "nginx_combined|apache_combined|apache_common|vhost_combined|apache_error|nginx_error", false},
    {"field", SL_KEY_STR, false, NULL, false},
    {"match_limit", SL_KEY_INT, false, NULL, false},
};
static const sl_cfg_key syslog_keys[] = {
    {"field", SL_KEY_STR, false, NULL, false},
    {"timezone", SL_KEY_STR, false, NULL, false},
};
static const sl_cfg_key timestamp_keys[] = {
    {"field", SL_KEY_STR, false, NULL, false},
    {"format", SL_KEY_STR, false, NULL, false},
    {"timezone", SL_KEY_STR, false, NULL, false},
};

static int build_regex(sl_cfg *cfg, const sl_cfg_node *args, step *s)
{
    if (sl_cfg_check(cfg, args, regex_keys, sizeof regex_keys / sizeof *regex_keys)) return -1;
    const char *pattern = NULL, *builtin = NULL;
    int64_t limit = 1000000;
    sl_cfg_str(cfg, args, "pattern", NULL, &pattern);
    sl_cfg_str(cfg, args, "builtin", NULL, &builtin);
    sl_cfg_str(cfg, args, "field", NULL, &s->field);
    if (sl_cfg_int(cfg, args, "match_limit", 1000000, 1000, 100000000, &limit) != 0) return -1;
    if (!pattern == !builtin) {
        sl_cfg_error(cfg, args, "regex needs exactly one of 'pattern' or 'builtin'");
        return -1;
    }
    sl_regex_opts o = {.match_limit = (uint32_t)limit, .utf = true};
    sl_err err;
    int rc = pattern ? sl_regex_new(pattern, strlen(pattern), &o, &s->regex, &err)
                     : sl_regex_builtin(builtin, &o, &s->regex, &err);
    if (rc != 0) {
        sl_cfg_error(cfg, sl_cfg_get(args, pattern ? "pattern" : "builtin"), "%s", err.msg);
        return -1;
    }
    return 0;
}

static int build_syslog(sl_cfg *cfg, const sl_cfg_node *args, step *s)
{
    if (args && args->kind != SL_CFG_NULL &&
        sl_cfg_check(cfg, args, syslog_keys, sizeof syslog_keys / sizeof *syslog_keys))
        return -1;
    const char *tz = NULL;
    sl_cfg_str(cfg, args, "field", NULL, &s->field);
    sl_cfg_str(cfg, args, "timezone", NULL, &tz);
    if (!tz) return 0;
    sl_err err;
    if (sl_tz_load(tz, &s->tz, &err) != 0) {
        sl_cfg_error(cfg, sl_cfg_get(args, "timezone"), "%s", err.msg);
        return -1;
    }
    return 0;
}

static int build_timestamp(sl_cfg *cfg, const sl_cfg_node *args, step *s)
{
    if (sl_cfg_check(cfg, args, timestamp_keys, sizeof timestamp_keys / sizeof *timestamp_keys))
        return -1;
    const char *format = "rfc3339", *tz = NULL;
    sl_cfg_str(cfg, args, "field", NULL, &s->field);
    sl_cfg_str(cfg, args, "format", "rfc3339", &format);
    sl_cfg_str(cfg, args, "timezone", NULL, &tz);
    sl_err err;
    if (sl_ts_format_new(format, tz, &s->ts, &err) != 0) {
        sl_cfg_error(cfg, args, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int compile(sl_cfg *cfg, const sl_cfg_node *at, const char *pattern, step *s)
{
    int errcode;
    PCRE2_SIZE erroff;
    s->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        sl_cfg_error(cfg, at, "bad regex at offset %zu: %s", (size_t)erroff, (const char *)msg);
        return -1;
    }
    pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE);
    s->md = pcre2_match_data_create_from_pattern(s->re, NULL);
    return s->md ? 0 : -1;
}

/* `labels: [a, b]` or `labels: {label: field}`. */
static int build_names(sl_cfg *cfg, const sl_cfg_node *n, step *s, bool allow_list)
{
    if (n->kind == SL_CFG_SEQ && allow_list) {
        for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
            if (n->items[i]->kind != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, n->items[i], "expected a field name");
                return -1;
            }
            s->from[s->nnames] = s->to[s->nnames] = n->items[i]->scalar;
            s->nnames++;
        }
        return 0;
    }
    if (n->kind != SL_CFG_MAP) {
        sl_cfg_error(cfg, n,
                     allow_list ? "expected a list of fields or a map of label: field"
                                : "expected a map of from: to");
        return -1;
    }
    for (size_t i = 0; i < n->n && s->nnames < MAX_NAMES; i++) {
        if (n->items[i]->kind != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, n->items[i], "expected a field name");
            return -1;
        }
        /* labels map label -> field; rename maps from -> to. */
        s->from[s->nnames] = allow_list ? n->items[i]->scalar : n->keys[i];
        s->to[s->nnames] = allow_list ? n->keys[i] : n->items[i]->scalar;
        s->nnames++;
    }
    return 0;
}

static int build_step(sl_cfg *cfg, const sl_cfg_node *item, const char *input, step *s)
{
    if (item->kind != SL_CFG_MAP || item->n != 1) {
        sl_cfg_error(cfg, item,
                     "a parse step is a map with one key, the step's name (e.g. `- json: {}`)");
        return -1;
    }
    const char *name = item->keys[0];
    const sl_cfg_node *args = item->items[0];
    s->kind = -1;
    for (size_t k = 0; k < sizeof step_names / sizeof *step_names; k++)
        if (strcmp(name, step_names[k]) == 0) s->kind = (int)k;
    if (s->kind < 0) {
        sl_cfg_error(cfg, item->key_nodes[0],
                     "unknown parse step '%s' (one of json, regex, logfmt, cri, docker, syslog, "
                     "timestamp, kubernetes, labels, drop, keep, rename, remove)",
                     name);
        return -1;
    }
    char l[256];
    sl_metric_labels(l, sizeof l, "input", input, "step", name);
    s->errors = sl_counter("sluice_parse_errors_total",
                           "Records a parse step could not parse (shipped raw).", l);
    s->dropped =
        sl_counter("sluice_records_filtered_total", "Records removed by drop/keep steps.", l);
    s->warnings = sl_counter("sluice_parse_warnings_total",
                             "Records a parse step parsed without a part (parse_warning).", l);
    switch (s->kind) {
    case STEP_LABELS:
        return build_names(cfg, args, s, true);
    case STEP_RENAME:
        return build_names(cfg, args, s, false);
    case STEP_REMOVE: {
        if (sl_cfg_check(cfg, args, remove_keys, 1)) return -1;
        size_t n = 0;
        sl_cfg_list(cfg, args, "fields", s->from, MAX_NAMES, &n);
        s->nnames = n;
        return 0;
    }
    case STEP_JSON:
        return sl_json_opts_from_cfg(cfg, args, &s->json);
    case STEP_REGEX:
        return build_regex(cfg, args, s);
    case STEP_LOGFMT:
        if (args && args->kind != SL_CFG_NULL && sl_cfg_check(cfg, args, field_keys, 1)) return -1;
        return sl_cfg_str(cfg, args, "field", NULL, &s->field);
    case STEP_CRI:
    case STEP_DOCKER: {
        if (args && args->kind != SL_CFG_NULL && sl_cfg_check(cfg, args, join_keys, 1)) return -1;
        if (sl_cfg_size(cfg, args, "max_bytes", 1 << 20, &s->join_max) != 0) return -1;
        s->joiners = calloc(MAX_JOINERS, sizeof *s->joiners);
        return s->joiners ? 0 : -1;
    }
    case STEP_SYSLOG:
        return build_syslog(cfg, args, s);
    case STEP_TIMESTAMP:
        return build_timestamp(cfg, args, s);
    case STEP_KUBERNETES:
        return sl_k8s_step_new(cfg, args, input, &s->k8s);
    case STEP_DROP:
    case STEP_KEEP: {
        if (sl_cfg_check(cfg, args, filter_keys, 2)) return -1;
        const char *re = NULL;
        sl_cfg_str(cfg, args, "field", NULL, &s->field);
        sl_cfg_str(cfg, args, "regex", NULL, &re);
        return re ? compile(cfg, sl_cfg_get(args, "regex"), re, s) : -1;
    }
    }
    return -1;
}

int sl_chain_new(sl_cfg *cfg, const sl_cfg_node *steps, const char *input, sl_chain **out)
{
    *out = NULL;
    if (!steps || steps->n == 0) return 0;
    if (steps->kind != SL_CFG_SEQ) {
        sl_cfg_error(cfg, steps, "parse must be a list of steps");
        return -1;
    }
    if (steps->n > MAX_STEPS) {
        sl_cfg_error(cfg, steps, "at most %d parse steps", MAX_STEPS);
        return -1;
    }
    sl_chain *c = calloc(1, sizeof *c);
    if (!c) return -1;
    int rc = 0;
    for (size_t i = 0; i < steps->n; i++) {
        if (build_step(cfg, steps->items[i], input, &c->steps[c->n]) != 0) rc = -1;
        c->n++;
    }
    if (rc != 0) {
        sl_chain_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void sl_chain_free(sl_chain *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        step *st = &c->steps[i];
        pcre2_match_data_free(st->md);
        pcre2_code_free(st->re);
        sl_regex_free(st->regex);
        sl_ts_format_free(st->ts);
        sl_tz_free(st->tz);
        for (size_t k = 0; st->joiners && k < MAX_JOINERS; k++) {
            free(st->joiners[k].source);
            sl_cri_joiner_free(st->joiners[k].j);
            /* Stopping: held pieces stay unacknowledged and are read again. */
            for (uint32_t h = 0; h < st->joiners[k].nheld; h++)
                sl_batch_unref(st->joiners[k].held[h]);
        }
        free(st->joiners);
        sl_k8s_step_free(st->k8s);
    }
    free(c);
}

/* The text a step looks at: a field's value, or the line. A value that
 * still holds JSON escapes is unescaped into the batch arena first, so
 * patterns see the text the application logged, not its JSON spelling. */
static int subject(sl_batch *b, const sl_record *r, const char *field, sl_slice *out, sl_err *err)
{
    if (!field || strcmp(field, "line") == 0) {
        *out = r->line;
        return 0;
    }
    sl_field *f = sl_record_field(r, field, strlen(field));
    if (!f) return sl_errf(err, SL_ENOENT, "no field '%s'", field);
    *out = f->val;
    if (f->type != SL_V_ESCAPED) return 0;
    char *d = sl_arena_alloc(&b->arena, f->val.n + 1);
    if (!d) return sl_errf(err, SL_ENOMEM, "batch arena full");
    ptrdiff_t m = sl_json_unescape(f->val.p, f->val.n, d, f->val.n);
    if (m < 0) return sl_errf(err, SL_EPARSE, "field '%s' holds an invalid JSON escape", field);
    d[m] = '\0';
    *out = (sl_slice){d, (size_t)m};
    return 0;
}

/* Releases a slot's held batches after `after` (or at once when NULL). */
static void release_held(joiner_slot *js, sl_batch *after)
{
    for (uint32_t h = 0; h < js->nheld; h++) {
        if (after)
            sl_batch_release_after(js->held[h], after);
        else
            sl_batch_done(js->held[h]);
    }
    js->nheld = 0;
}

/* The joiner slot of the batch's source, made on first use. */
static joiner_slot *joiner_for(step *s, const sl_batch *b)
{
    const char *src = b->source ? b->source : "";
    joiner_slot *free_slot = NULL, *lru = NULL;
    s->clock++;
    for (size_t k = 0; k < MAX_JOINERS; k++) {
        joiner_slot *js = &s->joiners[k];
        if (js->source && strcmp(js->source, src) == 0) {
            js->used = s->clock;
            return js;
        }
        if (!js->source && !free_slot) free_slot = js;
        if (js->source && (!lru || js->used < lru->used)) lru = js;
    }
    joiner_slot *js = free_slot ? free_slot : lru;
    /* Evicted with pieces held: they are lost with the joiner, so their
     * batches must not stall the checkpoint forever. */
    release_held(js, NULL);
    free(js->source);
    sl_cri_joiner_free(js->j);
    js->source = strdup(src);
    js->j = NULL;
    if (!js->source || sl_cri_joiner_new(s->join_max, &js->j) != 0) {
        free(js->source);
        js->source = NULL;
        return NULL;
    }
    js->used = s->clock;
    return js;
}

/* Runs one step on one record; SL_EPARSE when it does not apply. */
static int run_step(step *s, sl_batch *b, sl_record *r, sl_err *err)
{
    sl_slice in;
    int rc;
    switch (s->kind) {
    case STEP_JSON:
        return sl_json_parse_record(b, r, &s->json, err);
    case STEP_REGEX:
        if ((rc = subject(b, r, s->field, &in, err)) != 0) return rc;
        return sl_regex_parse_record(b, r, in, s->regex, err);
    case STEP_LOGFMT:
        if ((rc = subject(b, r, s->field, &in, err)) != 0) return rc;
        return sl_logfmt_parse_record(b, r, in, err);
    case STEP_CRI:
    case STEP_DOCKER: {
        joiner_slot *js = joiner_for(s, b);
        sl_cri_joiner *j = js ? js->j : NULL;
        rc = s->kind == STEP_CRI ? sl_cri_parse_record(b, r, r->line, j, err)
                                 : sl_docker_parse_record(b, r, r->line, j, err);
        if (rc != 0 || !js) return rc;
        if (sl_cri_joiner_pending(j)) {
            /* A piece is held: this batch is acknowledged only once the
             * batch that completes the message is. */
            bool known = false;
            for (uint32_t h = 0; h < js->nheld; h++) known |= js->held[h] == b;
            if (!known && js->nheld < MAX_HELD) {
                sl_batch_hold(b, 1);
                js->held[js->nheld++] = b;
            }
        } else if (js->nheld) {
            release_held(js, b);
        }
        return 0;
    }
    case STEP_SYSLOG: {
        if ((rc = subject(b, r, s->field, &in, err)) != 0) return rc;
        sl_syslog_opts o = {.now_ns = r->time_ns, .tz = s->tz};
        return sl_syslog_parse_record(b, r, in, &o, err);
    }
    case STEP_TIMESTAMP: {
        /* Some encoders (PHP's json_encode) escape '/', as in 10\/Oct\/2023. */
        const sl_field *f = s->field && strcmp(s->field, "line") != 0
                                ? sl_record_field(r, s->field, strlen(s->field))
                                : NULL;
        if (!f || f->type != SL_V_ESCAPED) return sl_ts_parse_record(b, r, s->ts, s->field, err);
        if ((rc = subject(b, r, s->field, &in, err)) != 0) return rc;
        int64_t ns;
        if (sl_ts_format_parse(s->ts, in.p, in.n, r->time_ns, &ns) != 0)
            return sl_errf(err, SL_EPARSE, "'%.*s' does not match the format",
                           (int)(in.n > 64 ? 64 : in.n), in.p);
        r->time_ns = ns;
        return 0;
    }
    case STEP_KUBERNETES:
        return sl_k8s_step_run(s->k8s, b, r, err);
    case STEP_LABELS:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
            if (!f) continue;
            if (strcmp(s->from[i], s->to[i]) == 0) {
                f->flags |= SL_FF_LABEL;
            } else {
                sl_field *nf = sl_record_add_field(b, r, (sl_slice){s->to[i], strlen(s->to[i])},
                                                   f->val, f->type);
                if (nf) nf->flags |= SL_FF_LABEL;
            }
        }
        break;
    case STEP_RENAME:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f = sl_record_field(r, s->from[i], strlen(s->from[i]));
            if (f) f->key = (sl_slice){s->to[i], strlen(s->to[i])};
        }
        break;
    case STEP_REMOVE:
        for (size_t i = 0; i < s->nnames; i++) {
            sl_field *f;
            while ((f = sl_record_field(r, s->from[i], strlen(s->from[i]))))
                f->flags |= SL_FF_REMOVED;
        }
        break;
    case STEP_DROP:
    case STEP_KEEP: {
        sl_slice text;
        rc = subject(b, r, s->field, &text, err);
        if (rc != 0 && rc != SL_ENOENT) return rc;
        bool matched =
            rc == 0 && pcre2_match(s->re, (PCRE2_SPTR)text.p, text.n, 0, 0, s->md, NULL) >= 0;
        if (matched == (s->kind == STEP_DROP)) {
            r->flags |= SL_RF_DROPPED;
            sl_metric_inc(s->dropped);
        }
        break;
    }
    }
    return SL_OK;
}

/* A failed step: the record ships raw, marked, with the first failing
 * step named in `parse_error`; every failure is counted. */
static void mark_failed(const step *s, sl_batch *b, sl_record *r, const sl_err *err)
{
    sl_metric_inc(s->errors);
    if (r->flags & SL_RF_PARSE_ERROR) return;
    r->flags |= SL_RF_PARSE_ERROR;
    const char *name = step_names[s->kind];
    size_t nl = strlen(name);
    const char *msg = err->msg;
    /* Parsers often prefix their own name already. */
    if (strncmp(msg, name, nl) == 0 && msg[nl] == ':') msg += nl + 1;
    while (*msg == ' ') msg++;
    size_t ml = strnlen(msg, sizeof err->msg);
    char *v = sl_arena_alloc(&b->arena, nl + 2 + ml + 1);
    if (!v) return;
    memcpy(v, name, nl);
    size_t n = nl;
    if (ml) {
        memcpy(v + n, ": ", 2);
        memcpy(v + n + 2, msg, ml);
        n += 2 + ml;
    }
    v[n] = '\0';
    sl_record_add_field(b, r, SL_SLICE_LIT("parse_error"), (sl_slice){v, n}, SL_V_STRING);
}

/* The rest of a cut multiline record (its first line is no record start,
 * so it has no time of its own) takes the time of the part before it. */
static void carry_cut_time(cut_time *ct, const sl_batch *b, sl_record *r)
{
    const char *src = b->source ? b->source : "";
    if ((r->flags & SL_RF_ML_CONT) && ct->have && strcmp(ct->source, src) == 0)
        r->time_ns = ct->time_ns;
    ct->have = (r->flags & SL_RF_ML_CUT) && strlen(src) < sizeof ct->source;
    if (ct->have) {
        memcpy(ct->source, src, strlen(src) + 1);
        ct->time_ns = r->time_ns;
    }
}

void sl_chain_run_record(sl_chain *c, sl_batch *b, sl_record *r)
{
    for (size_t k = 0; k < c->n && !(r->flags & SL_RF_DROPPED); k++) {
        sl_err err;
        err.msg[0] = '\0';
        uint32_t before = r->flags;
        if (run_step(&c->steps[k], b, r, &err) != 0)
            mark_failed(&c->steps[k], b, r, &err);
        else if (r->flags & ~before & SL_RF_PARSE_WARNING)
            sl_metric_inc(c->steps[k].warnings);
    }
    if (r->flags & (SL_RF_ML_CUT | SL_RF_ML_CONT)) carry_cut_time(&c->cut, b, r);
}

void sl_chain_run(sl_chain *c, sl_batch *b)
{
    if (!c) return;
    for (uint32_t i = 0; i < b->nrecords; i++) sl_chain_run_record(c, b, &b->records[i]);
}
