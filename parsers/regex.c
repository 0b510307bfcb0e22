#include "parsers/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "parsers/timestamp.h"

#define MAX_ALTS        2
#define MAX_PATTERN     (64u << 10)
#define JIT_STACK_START (32u << 10)

typedef struct named {
    uint32_t group;
    sl_slice name; /* points into the compiled code's name table */
} named;

typedef struct alt {
    pcre2_code *code;
    pcre2_match_data *md;
    named *names;
    size_t nnames;
    bool jit;
} alt;

struct sl_regex {
    alt alts[MAX_ALTS];
    size_t nalts;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    int time_idx; /* built-ins: index in the names of time_local, or -1 */
    size_t max_names;
};

/* Pieces of the access-log patterns. Quoted fields allow backslash escapes
 * (Apache writes \" inside them, nginx \x22), written as unrolled loops
 * with possessive quantifiers so they never backtrack. */
#define Q_FIELD "[^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+"
#define Q_WORD  "[^ \"\\\\]*+(?:\\\\.[^ \"\\\\]*+)*+"
#define P_TIME  "\\[(?<time_local>[^\\]]+)\\]"
#define P_REQUEST                                                                                  \
    "\"(?:(?<method>[A-Z]+) (?<path>" Q_WORD ")(?: (?<protocol>" Q_WORD "))?|" Q_FIELD ")\""
#define P_STATUS_BYTES " (?<status>\\d{3}) (?<body_bytes_sent>\\d+|-)"
#define P_REF_UA       " \"(?<http_referer>" Q_FIELD ")\" \"(?<http_user_agent>" Q_FIELD ")\""
/* Proxies put X-Forwarded-For chains before the client address, bare
 * (`a, b, c - -`) or quoted (`"a, b" c - -`). Only tried when the strict
 * pattern fails, so ordinary lines never pay for it. */
#define P_XFF_ADDR                                                                                 \
    "^(?:\"(?<x_forwarded_for>[^\"]*)\" |(?<x_forwarded_for>[^\"\\[]*?),? )?"                      \
    "(?<remote_addr>[^\\s,\"\\[]+)"

static const struct builtin {
    const char *name;
    const char *strict;
    const char *lenient; /* NULL: none */
} builtins[] = {
    {"nginx_combined",
     "^(?<remote_addr>\\S+) \\S+ (?<remote_user>\\S+) " P_TIME
     " " P_REQUEST P_STATUS_BYTES P_REF_UA,
     P_XFF_ADDR " \\S+ (?<remote_user>\\S+) " P_TIME " " P_REQUEST P_STATUS_BYTES P_REF_UA},
    {"apache_combined",
     "^(?<remote_addr>\\S+) (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME
     " " P_REQUEST P_STATUS_BYTES P_REF_UA,
     P_XFF_ADDR " (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME
                " " P_REQUEST P_STATUS_BYTES P_REF_UA},
    {"apache_common",
     "^(?<remote_addr>\\S+) (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME
     " " P_REQUEST P_STATUS_BYTES,
     P_XFF_ADDR " (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME " " P_REQUEST P_STATUS_BYTES},
};

const char *sl_regex_builtin_pattern(const char *name)
{
    for (size_t k = 0; k < sizeof builtins / sizeof *builtins; k++)
        if (strcmp(name, builtins[k].name) == 0) return builtins[k].strict;
    return NULL;
}

static int cmp_named(const void *a, const void *b)
{
    const named *x = a, *y = b;
    return (x->group > y->group) - (x->group < y->group);
}

static void free_alt(alt *a)
{
    pcre2_match_data_free(a->md);
    pcre2_code_free(a->code);
    free(a->names);
}

void sl_regex_free(sl_regex *re)
{
    if (!re) return;
    for (size_t k = 0; k < re->nalts; k++) free_alt(&re->alts[k]);
    pcre2_match_context_free(re->mctx);
    pcre2_jit_stack_free(re->stack);
    free(re);
}

static int compile_alt(sl_regex *re, alt *a, const char *pattern, size_t len,
                       const sl_regex_opts *o, uint32_t extra, sl_err *err)
{
    if (len > MAX_PATTERN)
        return sl_errf(err, SL_EINVAL, "regex: pattern longer than %u bytes", MAX_PATTERN);
    uint32_t opts = extra | (o->utf ? PCRE2_UTF | PCRE2_MATCH_INVALID_UTF : PCRE2_NEVER_UTF);
    int ec;
    PCRE2_SIZE off;
    a->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ec, &off, NULL);
    if (!a->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return sl_errf(err, SL_EINVAL, "regex: %s at offset %zu", (const char *)msg, (size_t)off);
    }
    a->jit = !o->no_jit && pcre2_jit_compile(a->code, PCRE2_JIT_COMPLETE) == 0;
    a->md = pcre2_match_data_create_from_pattern(a->code, NULL);
    if (!a->md) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
    uint32_t count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(a->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(a->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(a->code, PCRE2_INFO_NAMETABLE, &table);
    if (count) {
        a->names = calloc(count, sizeof *a->names);
        if (!a->names) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
        for (uint32_t k = 0; k < count; k++) {
            PCRE2_SPTR e = table + (size_t)k * esize;
            a->names[k].group = (uint32_t)e[0] << 8 | e[1];
            a->names[k].name = (sl_slice){(const char *)e + 2, strlen((const char *)e + 2)};
        }
        qsort(a->names, count, sizeof *a->names, cmp_named);
    }
    a->nnames = count;
    if (count > re->max_names) re->max_names = count;
    return 0;
}

static int make(const char *const *patterns, const size_t *lens, size_t n, const sl_regex_opts *o,
                uint32_t extra, sl_regex **out, sl_err *err)
{
    static const sl_regex_opts defaults = {0};
    if (!o) o = &defaults;
    *out = NULL;
    sl_regex *re = calloc(1, sizeof *re);
    if (!re) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
    re->time_idx = -1;
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        rc = compile_alt(re, &re->alts[k], patterns[k], lens[k], o, extra, err);
        re->nalts = k + 1;
    }
    if (!rc) {
        re->mctx = pcre2_match_context_create(NULL);
        re->stack = pcre2_jit_stack_create(JIT_STACK_START,
                                           o->jit_stack_max ? o->jit_stack_max : 1u << 20, NULL);
        if (!re->mctx || !re->stack) rc = sl_errf(err, SL_ENOMEM, "regex: out of memory");
    }
    if (!rc) {
        pcre2_set_match_limit(re->mctx, o->match_limit ? o->match_limit : 1000000);
        pcre2_set_depth_limit(re->mctx, o->depth_limit ? o->depth_limit : 10000);
        pcre2_set_heap_limit(re->mctx, 8192); /* KiB, interpreter backtracking */
        pcre2_jit_stack_assign(re->mctx, NULL, re->stack);
    }
    if (rc) {
        sl_regex_free(re);
        return rc;
    }
    *out = re;
    return 0;
}

int sl_regex_new(const char *pattern, size_t len, const sl_regex_opts *o, sl_regex **out,
                 sl_err *err)
{
    return make(&pattern, &len, 1, o, 0, out, err);
}

int sl_regex_builtin(const char *name, const sl_regex_opts *o, sl_regex **out, sl_err *err)
{
    *out = NULL;
    for (size_t k = 0; k < sizeof builtins / sizeof *builtins; k++) {
        const struct builtin *b = &builtins[k];
        if (strcmp(name, b->name) != 0) continue;
        /* The patterns are ASCII: byte mode is exact and fastest. */
        sl_regex_opts bo = o ? *o : (sl_regex_opts){0};
        bo.utf = false;
        const char *pats[2] = {b->strict, b->lenient};
        size_t lens[2] = {strlen(b->strict), b->lenient ? strlen(b->lenient) : 0};
        int rc = make(pats, lens, b->lenient ? 2 : 1, &bo, PCRE2_DUPNAMES, out, err);
        if (rc) return rc;
        for (size_t i = 0; i < (*out)->alts[0].nnames; i++)
            if (sl_slice_eq((*out)->alts[0].names[i].name, "time_local", 10))
                (*out)->time_idx = (int)i;
        return 0;
    }
    return sl_errf(err, SL_ENOENT,
                   "regex: unknown built-in pattern '%s' (nginx_combined, apache_combined, "
                   "apache_common)",
                   name);
}

size_t sl_regex_nnames(const sl_regex *re)
{
    return re->max_names;
}

bool sl_regex_jitted(const sl_regex *re)
{
    return re->alts[0].jit;
}

static int limit_error(int rc, sl_err *err)
{
    switch (rc) {
    case PCRE2_ERROR_MATCHLIMIT:
        return sl_errf(err, SL_EPARSE, "regex: match limit exceeded");
    case PCRE2_ERROR_DEPTHLIMIT:
        return sl_errf(err, SL_EPARSE, "regex: depth limit exceeded");
    case PCRE2_ERROR_HEAPLIMIT:
        return sl_errf(err, SL_EPARSE, "regex: heap limit exceeded");
    case PCRE2_ERROR_JIT_STACKLIMIT:
        return sl_errf(err, SL_EPARSE, "regex: JIT stack exhausted");
    }
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return sl_errf(err, SL_EPARSE, "regex: %s", (const char *)msg);
}

/* Returns the alternative that matched (its match data holds the groups),
 * or NULL with *rc set. */
static const alt *run(sl_regex *re, const char *p, size_t n, int *rc)
{
    for (size_t k = 0; k < re->nalts; k++) {
        alt *a = &re->alts[k];
        *rc = a->jit ? pcre2_jit_match(a->code, (PCRE2_SPTR)p, n, 0, 0, a->md, re->mctx)
                     : pcre2_match(a->code, (PCRE2_SPTR)p, n, 0, 0, a->md, re->mctx);
        if (*rc >= 0) return a;
        if (*rc != PCRE2_ERROR_NOMATCH) return NULL;
    }
    return NULL;
}

int sl_regex_match(sl_regex *re, const char *p, size_t n, sl_field *out, size_t cap, sl_err *err)
{
    int rc;
    const alt *a = run(re, p, n, &rc);
    if (!a)
        return rc == PCRE2_ERROR_NOMATCH ? sl_errf(err, SL_EPARSE, "regex: no match")
                                         : limit_error(rc, err);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(a->md);
    size_t c = 0;
    /* rc is one more than the highest group set: later groups are unset. */
    for (size_t i = 0; i < a->nnames && c < cap; i++) {
        uint32_t g = a->names[i].group;
        if ((int)g >= rc || ov[2 * g] == PCRE2_UNSET) continue;
        out[c].key = a->names[i].name;
        out[c].val = (sl_slice){p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]};
        out[c].type = SL_V_STRING;
        out[c].flags = 0;
        c++;
    }
    return (int)c;
}

int sl_regex_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_regex *re, sl_err *err)
{
    int rc;
    const alt *a = run(re, in.p, in.n, &rc);
    if (!a)
        return rc == PCRE2_ERROR_NOMATCH ? sl_errf(err, SL_EPARSE, "regex: no match")
                                         : limit_error(rc, err);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(a->md);
    uint32_t start = r->nfields;
    for (size_t i = 0; i < a->nnames; i++) {
        uint32_t g = a->names[i].group;
        if ((int)g >= rc || ov[2 * g] == PCRE2_UNSET) continue;
        sl_slice v = {in.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]};
        if (!sl_record_add_field(b, r, a->names[i].name, v, SL_V_STRING)) {
            r->nfields = start;
            return sl_errf(err, SL_ENOMEM, "regex: batch arena full");
        }
        int64_t ns;
        if (re->time_idx >= 0 && sl_slice_eq(a->names[i].name, "time_local", 10) &&
            sl_ts_parse_nginx(v.p, v.n, &ns) == 0)
            r->time_ns = ns;
    }
    return 0;
}
