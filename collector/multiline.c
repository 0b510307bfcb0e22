#include "collector/multiline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

struct sl_multiline {
    pcre2_code *re;
    pcre2_match_data *md;
    bool is_start; /* pattern marks record starts (else continuations) */
    uint32_t max_lines;
    uint64_t max_bytes;
    int64_t timeout_ms;
};

static const sl_cfg_key multiline_keys[] = {
    {"start", SL_KEY_STR, false, NULL, false},
    {"continue", SL_KEY_STR, false, NULL, false},
    {"max_lines", SL_KEY_INT, false, NULL, false},
    {"max_bytes", SL_KEY_SIZE, false, NULL, false},
    {"timeout", SL_KEY_DURATION, false, NULL, false},
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
