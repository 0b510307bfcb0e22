#include "parsers/cri.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "parsers/timestamp.h"

#define DOCKER_MAX_DEPTH 64 /* bits in the skip_value stack */

static const sl_slice stream_names[2] = {{"stdout", 6}, {"stderr", 6}};

/* Whether p[0..n) names a stream (stdout|stderr); which one into *stream. */
static bool stream_of(const char *p, size_t n, int *stream)
{
    if (n != 6 || memcmp(p, "std", 3) != 0) return false;
    if (memcmp(p + 3, "out", 3) == 0) {
        *stream = SL_CRI_STDOUT;
        return true;
    }
    if (memcmp(p + 3, "err", 3) == 0) {
        *stream = SL_CRI_STDERR;
        return true;
    }
    return false;
}

int sl_cri_parse(const char *p, size_t n, sl_cri_line *out, sl_err *err)
{
    size_t i = sl_ts_scan_rfc3339(p, n, &out->time_ns);
    if (i == 0 || i >= n || p[i] != ' ') return sl_errf(err, SL_EPARSE, "cri: no timestamp");
    i++;
    if (n - i < 7 || p[i + 6] != ' ' || !stream_of(p + i, 6, &out->stream))
        return sl_errf(err, SL_EPARSE, "cri: no stream (stdout|stderr) at byte %zu", i);
    i += 7;
    /* Tags: P or F, possibly followed by `:`-separated future tags. */
    if (i >= n || (p[i] != 'P' && p[i] != 'F'))
        return sl_errf(err, SL_EPARSE, "cri: no P|F tag at byte %zu", i);
    out->partial = p[i] == 'P';
    i++;
    if (i < n && p[i] == ':')
        while (i < n && p[i] != ' ') i++;
    if (i < n && p[i] != ' ') return sl_errf(err, SL_EPARSE, "cri: bad tag at byte %zu", i - 1);
    if (i < n) i++;
    out->escaped = false;
    out->msg = (sl_slice){p + i, n - i};
    return 0;
}

/* ---- docker json-file ---- */

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    return i;
}

/* At an opening quote: index just past the closing one, or 0. Sets *esc
 * (when non-NULL) to the index of the first backslash (n if none). */
static size_t scan_string(const char *p, size_t n, size_t i, size_t *esc)
{
    size_t first = n;
    for (i++; i < n; i++) {
        const char *q = memchr(p + i, '"', n - i);
        if (!q) return 0;
        const char *b = memchr(p + i, '\\', (size_t)(q - p) - i);
        if (!b) {
            if (esc) *esc = first;
            return (size_t)(q - p) + 1;
        }
        if (first == n) first = (size_t)(b - p);
        i = (size_t)(b - p) + 1; /* skip the escaped byte */
        if (i >= n) return 0;
    }
    return 0;
}

/* Skips one JSON value of a member we do not use. Brackets must match
 * (a 64-bit stack: 1 for an object); scalars are only checked for shape. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
    uint64_t stack = 0;
    int depth = 0;
    do {
        i = skip_ws(p, n, i);
        if (i >= n) return 0;
        char c = p[i];
        if (c == '"') {
            if (!(i = scan_string(p, n, i, NULL))) return 0;
        } else if (c == '{' || c == '[') {
            if (depth == DOCKER_MAX_DEPTH) return 0;
            stack = stack << 1 | (c == '{');
            depth++;
            i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || (stack & 1) != (c == '}')) return 0;
            stack >>= 1;
            depth--;
            i++;
        } else if (c == ',' || c == ':') {
            if (depth == 0) return 0;
            i++;
        } else {
            size_t s = i;
            while (i < n && ((p[i] >= '0' && p[i] <= '9') ||
                             ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z') || p[i] == '-' ||
                             p[i] == '+' || p[i] == '.'))
                i++;
            if (i == s) return 0;
        }
    } while (depth > 0);
    return i;
}

int sl_docker_parse(const char *p, size_t n, sl_cri_line *out, sl_err *err)
{
    size_t i = skip_ws(p, n, 0);
    if (i >= n || p[i] != '{') return sl_errf(err, SL_EPARSE, "docker: not a JSON object");
    i++;
    bool have_log = false, have_stream = false, have_time = false;
    for (;;) {
        i = skip_ws(p, n, i);
        if (i < n && p[i] == '}' && !have_log && !have_stream && !have_time) break;
        if (i >= n || p[i] != '"') return sl_errf(err, SL_EPARSE, "docker: bad key at byte %zu", i);
        size_t ks = i + 1, ke = scan_string(p, n, i, NULL);
        if (!ke) return sl_errf(err, SL_EPARSE, "docker: unterminated key");
        sl_slice key = {p + ks, ke - 1 - ks};
        i = skip_ws(p, n, ke);
        if (i >= n || p[i] != ':') return sl_errf(err, SL_EPARSE, "docker: no ':' at byte %zu", i);
        i = skip_ws(p, n, i + 1);
        bool is_log = sl_slice_eq(key, "log", 3), is_stream = sl_slice_eq(key, "stream", 6),
             is_time = sl_slice_eq(key, "time", 4);
        if (is_log || is_stream || is_time) {
            size_t esc, vs = i + 1, ve;
            if (i >= n || p[i] != '"' || !(ve = scan_string(p, n, i, &esc)))
                return sl_errf(err, SL_EPARSE, "docker: \"%.*s\" is not a string", (int)key.n,
                               key.p);
            sl_slice v = {p + vs, ve - 1 - vs};
            if (is_log) {
                /* A trailing \n escape ends the line; its absence marks a
                 * partial line (the daemon splits lines at 16 KiB). */
                size_t k = 0;
                if (v.n >= 2 && v.p[v.n - 1] == 'n')
                    while (k < v.n - 1 && v.p[v.n - 2 - k] == '\\') k++;
                out->partial = k % 2 == 0;
                if (!out->partial) v.n -= 2;
                out->msg = v;
                out->escaped = esc < vs + v.n;
                have_log = true;
            } else if (is_stream) {
                if (!stream_of(v.p, v.n, &out->stream))
                    return sl_errf(err, SL_EPARSE, "docker: bad stream");
                have_stream = true;
            } else {
                if (sl_ts_parse_rfc3339(v.p, v.n, &out->time_ns) != 0)
                    return sl_errf(err, SL_EPARSE, "docker: bad time");
                have_time = true;
            }
            i = ve;
        } else if (!(i = skip_value(p, n, i))) {
            return sl_errf(err, SL_EPARSE, "docker: bad value for \"%.*s\"",
                           (int)(key.n > 32 ? 32 : key.n), key.p);
        }
        i = skip_ws(p, n, i);
        if (i < n && p[i] == ',') {
            i++;
            continue;
        }
        if (i < n && p[i] == '}') break;
        return sl_errf(err, SL_EPARSE, "docker: expected ',' or '}' at byte %zu", i);
    }
    if (skip_ws(p, n, i + 1) != n) return sl_errf(err, SL_EPARSE, "docker: trailing bytes");
    if (!have_log || !have_stream || !have_time)
        return sl_errf(err, SL_EPARSE, "docker: needs log, stream and time");
    return 0;
}

size_t sl_docker_unescape(sl_slice v, char *dst)
{
    /* The docker daemon wrote the string, but nothing checked it since: a
     * malformed escape loses its backslash, as lenient decoders do. */
    size_t o;
    sl_json_unescape_to(v.p, v.n, dst, v.n, SL_JSON_BAD_LOOSE, &o);
    return o;
}

int sl_cri_mark_partial(sl_batch *b, sl_record *r, int stream, const char *why, sl_err *err)
{
    if (!sl_record_add_field(b, r, SL_SLICE_LIT("stream"), stream_names[stream & 1], SL_V_STRING) ||
        !sl_record_add_field(b, r, SL_SLICE_LIT("partial"), (sl_slice){why, strlen(why)},
                             SL_V_STRING))
        return sl_errf(err, SL_ENOMEM, "cri: batch arena full");
    return 0;
}

int sl_cri_record_set(sl_batch *b, sl_record *r, const sl_cri_line *l, sl_slice msg,
                      int64_t time_ns, unsigned flags, const char *who, sl_err *err)
{
    if (msg.p != l->msg.p) { /* a joiner's buffer: copy it out */
        char *d = sl_arena_alloc(&b->arena, msg.n + 1);
        if (!d) return sl_errf(err, SL_ENOMEM, "%s: batch arena full", who);
        memcpy(d, msg.p, msg.n);
        msg.p = d;
    } else if (l->escaped) {
        char *d = sl_arena_alloc(&b->arena, msg.n + 1);
        if (!d) return sl_errf(err, SL_ENOMEM, "%s: batch arena full", who);
        msg = (sl_slice){d, sl_docker_unescape(msg, d)};
    }
    if (!sl_record_add_field(b, r, SL_SLICE_LIT("stream"), stream_names[l->stream], SL_V_STRING))
        return sl_errf(err, SL_ENOMEM, "%s: batch arena full", who);
    if ((flags & SL_CRI_CUT_SIZE) &&
        !sl_record_add_field(b, r, SL_SLICE_LIT("partial"), SL_SLICE_LIT("max_bytes"), SL_V_STRING))
        return sl_errf(err, SL_ENOMEM, "%s: batch arena full", who);
    r->line = msg;
    r->flags &= ~(uint32_t)SL_RF_LINE_UTF8; /* msg is not what the json step checked */
    r->time_ns = time_ns;
    if (flags & SL_CRI_TRUNCATED) r->flags |= SL_RF_TRUNCATED;
    return 0;
}

int sl_cri_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err)
{
    sl_cri_line l;
    int rc = sl_cri_parse(in.p, in.n, &l, err);
    return rc ? rc : sl_cri_record_set(b, r, &l, l.msg, l.time_ns, 0, "cri", err);
}

int sl_docker_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err)
{
    sl_cri_line l;
    int rc = sl_docker_parse(in.p, in.n, &l, err);
    return rc ? rc : sl_cri_record_set(b, r, &l, l.msg, l.time_ns, 0, "docker", err);
}

/* ---- Kubernetes metadata ---- */

static bool all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

static const char *rchr(const char *p, size_t n, char c)
{
    while (n-- > 0)
        if (p[n] == c) return p + n;
    return NULL;
}

int sl_k8s_from_path(const char *path, size_t n, sl_k8s_meta *m)
{
    memset(m, 0, sizeof *m);
    const char *end = path + n;
    const char *slash = rchr(path, n, '/');
    const char *base = slash ? slash + 1 : path;
    size_t bn = (size_t)(end - base);
    if (bn < 5 || memcmp(end - 4, ".log", 4) != 0) return SL_ENOENT;
    bool numbered = bn > 4;
    for (size_t i = 0; i < bn - 4; i++) numbered &= base[i] >= '0' && base[i] <= '9';
    if (numbered && slash) {
        /* .../<ns>_<pod>_<uid>/<container>/<N>.log */
        const char *s2 = rchr(path, (size_t)(slash - path), '/');
        if (!s2) return SL_ENOENT;
        const char *s3 = rchr(path, (size_t)(s2 - path), '/');
        const char *dir = s3 ? s3 + 1 : path;
        sl_slice container = {s2 + 1, (size_t)(slash - s2 - 1)};
        const char *u1 = memchr(dir, '_', (size_t)(s2 - dir));
        const char *u2 = u1 ? memchr(u1 + 1, '_', (size_t)(s2 - u1 - 1)) : NULL;
        if (!u2 || u1 == dir || u2 == u1 + 1 || u2 + 1 == s2 || container.n == 0 ||
            memchr(u2 + 1, '_', (size_t)(s2 - u2 - 1)))
            return SL_ENOENT;
        m->namespace_ = (sl_slice){dir, (size_t)(u1 - dir)};
        m->pod = (sl_slice){u1 + 1, (size_t)(u2 - u1 - 1)};
        m->pod_uid = (sl_slice){u2 + 1, (size_t)(s2 - u2 - 1)};
        m->container = container;
        return 0;
    }
    /* <pod>_<namespace>_<container>-<id>.log */
    const char *stem_end = end - 4;
    const char *u1 = memchr(base, '_', (size_t)(stem_end - base));
    const char *u2 = u1 ? memchr(u1 + 1, '_', (size_t)(stem_end - u1 - 1)) : NULL;
    if (!u2 || u1 == base || u2 == u1 + 1 || memchr(u2 + 1, '_', (size_t)(stem_end - u2 - 1)))
        return SL_ENOENT;
    const char *dash = rchr(u2 + 1, (size_t)(stem_end - u2 - 1), '-');
    if (!dash || dash == u2 + 1) return SL_ENOENT;
    size_t idn = (size_t)(stem_end - dash - 1);
    if (idn < 12 || idn > 64 || !all_hex(dash + 1, idn)) return SL_ENOENT;
    m->pod = (sl_slice){base, (size_t)(u1 - base)};
    m->namespace_ = (sl_slice){u1 + 1, (size_t)(u2 - u1 - 1)};
    m->container = (sl_slice){u2 + 1, (size_t)(dash - u2 - 1)};
    m->container_id = (sl_slice){dash + 1, idn};
    return 0;
}
