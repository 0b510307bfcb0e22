#include "collector/multiline.h"

#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"

struct sl_multiline {
    pcre2_code *re;
    pcre2_match_data *md;
    bool is_start; /* pattern marks record starts (else continuations) */
    uint32_t max_lines;
    uint64_t max_bytes;
    int64_t timeout_ms;
    sl_metric *cuts; /* registered at the first cut (the input's name comes with it) */
};

static const sl_cfg_key multiline_keys[] = {
    {.name = "start",
     .type = SL_KEY_STR,
     .doc = "a line matching this regex starts a new record (one of `start`, `continue`)"},
    {.name = "continue",
     .type = SL_KEY_STR,
     .doc = "a line matching this regex continues the record before it"},
    {.name = "max_lines",
     .type = SL_KEY_INT,
     .def = "500",
     .min = 1,
     .max = 1000000,
     .doc = "a record is cut after this many lines"},
    {.name = "max_bytes",
     .type = SL_KEY_SIZE,
     .def = "1MiB",
     .doc = "a record is cut at this size"},
    {.name = "timeout",
     .type = SL_KEY_DURATION,
     .def = "1s",
     .doc = "a record is shipped when no line has come for this long"},
};

int sl_multiline_new(sl_cfg *cfg, const sl_cfg_node *node, sl_multiline **out)
{
    *out = NULL;
    if (!node) return 0;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_check(cfg, node, multiline_keys, sizeof multiline_keys / sizeof *multiline_keys);
    const char *start = NULL, *cont = NULL;
    int64_t max_lines = 500, timeout = 1000;
    uint64_t max_bytes = 1 << 20;
    sl_cfg_str(cfg, node, "start", NULL, &start);
    sl_cfg_str(cfg, node, "continue", NULL, &cont);
    sl_cfg_int(cfg, node, "max_lines", 500, 1, 1000000, &max_lines);
    sl_cfg_size(cfg, node, "max_bytes", 1 << 20, &max_bytes);
    sl_cfg_duration_ms(cfg, node, "timeout", 1000, &timeout);
    if (!start == !cont) {
        sl_cfg_error(cfg, node, "multiline needs exactly one of 'start' or 'continue'");
        return -1;
    }
    int errcode;
    PCRE2_SIZE erroff;
    const char *pattern = start ? start : cont;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        sl_cfg_error(cfg, sl_cfg_get(node, start ? "start" : "continue"),
                     "bad regex at offset %zu: %s", (size_t)erroff, (const char *)msg);
        return -1;
    }
    if (sl_cfg_nerrors(cfg) > before) {
        pcre2_code_free(re);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    sl_multiline *m = calloc(1, sizeof *m);
    if (!m || !(m->md = pcre2_match_data_create_from_pattern(re, NULL))) {
        free(m);
        pcre2_code_free(re);
        return -1;
    }
    m->re = re;
    m->is_start = start != NULL;
    m->max_lines = (uint32_t)max_lines;
    m->max_bytes = max_bytes;
    m->timeout_ms = timeout;
    *out = m;
    return 0;
}

void sl_multiline_free(sl_multiline *m)
{
    if (!m) return;
    pcre2_match_data_free(m->md);
    pcre2_code_free(m->re);
    free(m);
}

bool sl_multiline_continues(sl_multiline *m, const char *line, size_t n)
{
    int rc = pcre2_match(m->re, (PCRE2_SPTR)line, n, 0, 0, m->md, NULL);
    bool matched = rc >= 0;
    return m->is_start ? !matched : matched;
}

uint32_t sl_multiline_max_lines(const sl_multiline *m)
{
    return m->max_lines;
}

uint64_t sl_multiline_max_bytes(const sl_multiline *m)
{
    return m->max_bytes;
}

int64_t sl_multiline_timeout_ms(const sl_multiline *m)
{
    return m->timeout_ms;
}

int sl_multiline_next(sl_multiline *m, uint32_t glines, uint64_t gbytes, const char *line, size_t n)
{
    if (!glines || !sl_multiline_continues(m, line, n)) return SL_ML_START;
    return glines < m->max_lines && gbytes <= m->max_bytes ? SL_ML_JOIN : SL_ML_CUT;
}

uint32_t sl_multiline_close(sl_ml_file *f, int verdict)
{
    uint32_t flags =
        (f->open_continues ? SL_RF_ML_CONT : 0) | (verdict == SL_ML_CUT ? SL_RF_ML_CUT : 0);
    f->open_continues = verdict == SL_ML_CUT;
    return flags;
}

static bool add_true(sl_batch *b, sl_record *r, sl_slice key)
{
    return sl_record_add_field(b, r, key, SL_SLICE_LIT("true"), SL_V_TRUE) != NULL;
}

int sl_multiline_mark(sl_multiline *m, sl_ml_file *f, const char *input, const char *path,
                      sl_batch *b, sl_record *r)
{
    if (r->flags & SL_RF_ML_CUT) {
        if (!m->cuts) {
            char l[256];
            sl_metric_labels(l, sizeof l, "input", input, NULL, NULL);
            m->cuts = sl_counter("sluice_multiline_truncated_total",
                                 "Multiline records cut at max_lines or max_bytes.", l);
        }
        sl_metric_inc(m->cuts);
        if (!f->cut_logged) {
            f->cut_logged = true;
            char q[1100];
            sl_log(SL_LOG_WARN, "multiline_truncated",
                   "input=%s path=%s max_lines=%u max_bytes=%llu note=\"a record was cut; the rest "
                   "ships as records marked multiline_continued, with the first part's time; "
                   "logged once per file\"",
                   input, sl_log_quote(q, sizeof q, path, strlen(path)), m->max_lines,
                   (unsigned long long)m->max_bytes);
        }
        if (!add_true(b, r, SL_SLICE_LIT("multiline_truncated"))) return SL_ENOMEM;
    }
    if ((r->flags & SL_RF_ML_CONT) && !add_true(b, r, SL_SLICE_LIT("multiline_continued")))
        return SL_ENOMEM;
    return SL_OK;
}
