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
    const PCRE2_SIZE *ov; /* md's ovector: fixed for md's lifetime */
    named *names;         /* by group number */
    size_t nnames;
    /* The groups of each slot (sl_regex.slots), compressed rows: slot s has
     * groups[start[s] .. start[s + 1]) (none when the name is not in this
     * alternative, several with duplicate names). */
    uint32_t *start, *groups;
    /* When every slot has at most one group: where its offsets are (an
     * always-unset pair for a name this alternative lacks). */
    const PCRE2_SIZE **src;
    /* Slots 0..ident-1 are groups 1..ident and later slots have no group
     * here: values come from a straight walk of the ovector. 0: not so. */
    size_t ident;
    bool jit;
} alt;

static const PCRE2_SIZE unset_pair[2] = {PCRE2_UNSET, PCRE2_UNSET};

struct sl_regex {
    alt alts[MAX_ALTS];
    size_t nalts;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    sl_slice *slots; /* distinct names: the first alternative's in pattern order, then new ones */
    size_t nslots;
    int time_slot; /* built-ins: the slot of time_local, or -1 */
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
 * pattern fails, so ordinary lines never pay for it. A bare chain holds
 * addresses only (IPv4, IPv6, `unknown`): anything else before the client
 * (a vhost name, decision 0019) is not taken for a chain. */
#define P_ADDR "(?:\\d{1,3}(?:\\.\\d{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*|unknown)"
#define P_XFF_ADDR                                                                                 \
    "^(?:\"(?<x_forwarded_for>[^\"]*)\" |(?<x_forwarded_for>" P_ADDR "(?:, ?" P_ADDR ")*),? )?"    \
    "(?<remote_addr>[^\\s,\"\\[]+)"
/* Apache's combined format, referer and user agent optional: the common
 * format's lines share its files. */
#define P_APACHE_TAIL                                                                              \
    " (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME " " P_REQUEST P_STATUS_BYTES "(?:" P_REF_UA ")" \
    "?"

#define P_NGX_ERR_HEAD                                                                             \
    "^(?<time>\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d) \\[(?<level>\\w+)\\] "                    \
    "(?<pid>\\d+)#(?<tid>\\d+): (?:\\*(?<connection>\\d+) )?"
#define P_NGX_ERR_TAIL                                                                             \
    "(?:, client: (?<client>[^,]++))?(?:, server: (?<server>[^,]*+))?"                             \
    "(?:, request: \"(?<request>" Q_FIELD ")\")?(?:, upstream: \"(?<upstream>" Q_FIELD ")\")?"     \
    "(?:, host: \"(?<host>" Q_FIELD ")\")?(?:, referrer: \"(?<referrer>" Q_FIELD ")\")?$"

static const struct builtin {
    const char *name;
    const char *strict;
    const char *lenient; /* NULL: none */
} builtins[] = {
    {"nginx_combined",
     "^(?<remote_addr>\\S+) \\S+ (?<remote_user>\\S+) " P_TIME
     " " P_REQUEST P_STATUS_BYTES P_REF_UA,
     P_XFF_ADDR " \\S+ (?<remote_user>\\S+) " P_TIME " " P_REQUEST P_STATUS_BYTES P_REF_UA},
    {"apache_combined", "^(?<remote_addr>\\S+)" P_APACHE_TAIL, P_XFF_ADDR P_APACHE_TAIL},
    {"apache_common",
     "^(?<remote_addr>\\S+) (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME
     " " P_REQUEST P_STATUS_BYTES,
     P_XFF_ADDR " (?<ident>\\S+) (?<remote_user>\\S+) " P_TIME " " P_REQUEST P_STATUS_BYTES},
    /* Apache's vhost_combined: `%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i"
     * "%{User-Agent}i"`, the port optional (some configs log `%v` alone). */
    {"vhost_combined", "^(?<vhost>[^\\s:]+)(?::(?<port>\\d+))? (?<remote_addr>\\S+)" P_APACHE_TAIL,
     NULL},
    /* Apache 2.4 `[time] [module:level] [pid N:tid M] [client a:p] AHnnnnn:
     * message`; 2.2's `[time] [level] [client a] message` fits too. */
    {"apache_error",
     "^\\[(?<time>[^\\]]+)\\] \\[(?:(?<module>[^:\\] ]+):)?(?<level>[^\\] ]+)\\]"
     "(?: \\[pid (?<pid>\\d+)(?::tid (?<tid>\\d+))?\\])?"
     "(?: \\[client (?<client>[^\\]]+)\\])?(?: (?<error_code>AH\\d+):)? ?(?<message>.*)",
     NULL},
    /* nginx `YYYY/MM/DD hh:mm:ss [level] pid#tid: *conn message, client: a,
     * server: s, request: "r", upstream: "u", host: "h", referrer: "f"`.
     * The message runs to `, client: ` without backtracking; a line with
     * details in another order falls to the lenient pattern, whose message
     * grows until the rest fits. */
    {"nginx_error", P_NGX_ERR_HEAD "(?<message>(?:[^,]++|,(?! client: ))*+)" P_NGX_ERR_TAIL,
     P_NGX_ERR_HEAD "(?<message>.*?)" P_NGX_ERR_TAIL},
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
    free(a->start);
    free(a->groups);
    free(a->src);
}

void sl_regex_free(sl_regex *re)
{
    if (!re) return;
    for (size_t k = 0; k < re->nalts; k++) free_alt(&re->alts[k]);
    pcre2_match_context_free(re->mctx);
    pcre2_jit_stack_free(re->stack);
    free(re->slots);
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
    a->ov = pcre2_get_ovector_pointer(a->md);
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
    (void)re;
    return 0;
}

static size_t slot_of(const sl_regex *re, sl_slice name)
{
    for (size_t s = 0; s < re->nslots; s++)
        if (sl_slice_eq(re->slots[s], name.p, name.n)) return s;
    return re->nslots;
}

/* The slot layout: distinct names over all alternatives, and per
 * alternative the groups behind each slot. */
static int build_slots(sl_regex *re, sl_err *err)
{
    size_t total = 0;
    for (size_t k = 0; k < re->nalts; k++) total += re->alts[k].nnames;
    re->slots = calloc(total ? total : 1, sizeof *re->slots);
    if (!re->slots) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
    for (size_t k = 0; k < re->nalts; k++)
        for (size_t i = 0; i < re->alts[k].nnames; i++)
            if (slot_of(re, re->alts[k].names[i].name) == re->nslots)
                re->slots[re->nslots++] = re->alts[k].names[i].name;
    for (size_t k = 0; k < re->nalts; k++) {
        alt *a = &re->alts[k];
        a->start = calloc(re->nslots + 1, sizeof *a->start);
        a->groups = calloc(a->nnames ? a->nnames : 1, sizeof *a->groups);
        if (!a->start || !a->groups) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
        uint32_t g = 0;
        for (size_t sl = 0; sl < re->nslots; sl++) {
            a->start[sl] = g;
            for (size_t i = 0; i < a->nnames; i++)
                if (sl_slice_eq(a->names[i].name, re->slots[sl].p, re->slots[sl].n))
                    a->groups[g++] = a->names[i].group;
        }
        a->start[re->nslots] = g;
        bool simple = true, tail_empty = true;
        size_t ident = 0;
        for (size_t sl = 0; sl < re->nslots; sl++) {
            uint32_t ng = a->start[sl + 1] - a->start[sl];
            simple &= ng <= 1;
            if (ident == sl && ng == 1 && a->groups[a->start[sl]] == sl + 1)
                ident++;
            else if (ng)
                tail_empty = false;
        }
        a->ident = tail_empty ? ident : 0;
        if (!simple) continue;
        a->src = calloc(re->nslots ? re->nslots : 1, sizeof *a->src);
        if (!a->src) return sl_errf(err, SL_ENOMEM, "regex: out of memory");
        for (size_t sl = 0; sl < re->nslots; sl++)
            a->src[sl] =
                a->start[sl + 1] > a->start[sl] ? a->ov + 2 * a->groups[a->start[sl]] : unset_pair;
    }
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
    re->time_slot = -1;
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        rc = compile_alt(re, &re->alts[k], patterns[k], lens[k], o, extra, err);
        re->nalts = k + 1;
    }
    if (!rc) rc = build_slots(re, err);
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
        size_t ts = slot_of(*out, SL_SLICE_LIT("time_local"));
        if (ts < (*out)->nslots) (*out)->time_slot = (int)ts;
        return 0;
    }
    return sl_errf(err, SL_ENOENT,
                   "regex: unknown built-in pattern '%s' (nginx_combined, apache_combined, "
                   "apache_common, vhost_combined, apache_error, nginx_error)",
                   name);
}

size_t sl_regex_nnames(const sl_regex *re)
{
    return re->nslots;
}

size_t sl_regex_fields_init(const sl_regex *re, sl_field *out, size_t cap)
{
    for (size_t s = 0; s < re->nslots && s < cap; s++)
        out[s] = (sl_field){re->slots[s], {NULL, 0}, SL_V_STRING, 0};
    return re->nslots;
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
static inline const alt *run(sl_regex *re, const char *p, size_t n, int *rc)
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
    if (!p) p = ""; /* an empty subject: slices must still point somewhere */
    int rc;
    const alt *a = run(re, p, n, &rc);
    if (!a)
        return rc == PCRE2_ERROR_NOMATCH ? sl_errf(err, SL_EPARSE, "regex: no match")
                                         : limit_error(rc, err);
    /* PCRE2 sets every group it did not use to PCRE2_UNSET, including the
     * ones past its return value. Locals, not a->...: the uint8_t stores
     * into out may alias anything and would force reloads. */
    const PCRE2_SIZE *ov = a->ov;
    const named *nm = a->names;
    size_t c = 0, nn = a->nnames;
    for (size_t i = 0; i < nn && c < cap; i++) {
        PCRE2_SIZE s = ov[2 * nm[i].group];
        if (s == PCRE2_UNSET) continue;
        out[c++] = (sl_field){nm[i].name, {p + s, ov[2 * nm[i].group + 1] - s}, SL_V_STRING, 0};
    }
    return (int)c;
}

/* The value of slot s for the alternative that matched; p NULL if unset. */
static inline sl_slice slot_value(const alt *a, size_t s, const char *p)
{
    for (uint32_t k = a->start[s]; k < a->start[s + 1]; k++) {
        PCRE2_SIZE b = a->ov[2 * a->groups[k]];
        if (b != PCRE2_UNSET) return (sl_slice){p + b, a->ov[2 * a->groups[k] + 1] - b};
    }
    return (sl_slice){NULL, 0};
}

int sl_regex_exec(sl_regex *re, const char *p, size_t n, sl_field *out, size_t cap, sl_err *err)
{
    if (!p) p = "";
    if (cap < re->nslots) return sl_errf(err, SL_EINVAL, "regex: field array too small");
    int rc;
    const alt *a = run(re, p, n, &rc);
    if (!a)
        return rc == PCRE2_ERROR_NOMATCH ? sl_errf(err, SL_EPARSE, "regex: no match")
                                         : limit_error(rc, err);
    /* Only values are written: keys and types were set once. */
    size_t ns = re->nslots;
    if (a->ident) { /* the ovector in slot order: a straight walk */
        const PCRE2_SIZE *ov = a->ov + 2;
        size_t s = 0;
        for (; s < a->ident; s++, ov += 2)
            out[s].val =
                ov[0] == PCRE2_UNSET ? (sl_slice){NULL, 0} : (sl_slice){p + ov[0], ov[1] - ov[0]};
        for (; s < ns; s++) out[s].val = (sl_slice){NULL, 0};
        return 0;
    }
    if (a->src) {
        const PCRE2_SIZE *const *src = a->src;
        for (size_t s = 0; s < ns; s++) {
            PCRE2_SIZE b = src[s][0], e = src[s][1];
            out[s].val = b == PCRE2_UNSET ? (sl_slice){NULL, 0} : (sl_slice){p + b, e - b};
        }
        return 0;
    }
    for (size_t s = 0; s < ns; s++) out[s].val = slot_value(a, s, p);
    return 0;
}

int sl_regex_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_regex *re, sl_err *err)
{
    if (!in.p) in.p = "";
    int rc;
    const alt *a = run(re, in.p, in.n, &rc);
    if (!a)
        return rc == PCRE2_ERROR_NOMATCH ? sl_errf(err, SL_EPARSE, "regex: no match")
                                         : limit_error(rc, err);
    uint32_t start = r->nfields;
    for (size_t s = 0; s < re->nslots; s++) {
        sl_slice v = slot_value(a, s, in.p);
        if (!v.p) continue;
        if (!sl_record_add_field(b, r, re->slots[s], v, SL_V_STRING)) {
            r->nfields = start;
            return sl_errf(err, SL_ENOMEM, "regex: batch arena full");
        }
        int64_t ns;
        if ((int)s == re->time_slot && sl_ts_parse_nginx(v.p, v.n, &ns) == 0) r->time_ns = ns;
    }
    return 0;
}
