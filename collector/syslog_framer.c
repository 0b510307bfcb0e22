#include "collector/syslog_framer.h"

#include <stdlib.h>
#include <string.h>

enum {
    ST_START,       /* between frames */
    ST_LEN,         /* octet counting: reading the length */
    ST_MSG,         /* octet counting: reading MSG */
    ST_LINE,        /* non-transparent: reading up to LF / NUL */
    ST_SKIP_OCTETS, /* octet counting: discarding what is past max_frame */
    ST_SKIP_LINE,   /* non-transparent: discarding up to LF / NUL */
};

void sl_syslog_framer_init(sl_syslog_framer *f, int mode, size_t max_frame)
{
    *f = (sl_syslog_framer){.mode = mode, .max_frame = max_frame ? max_frame : 1};
}

void sl_syslog_framer_free(sl_syslog_framer *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
}

size_t sl_syslog_framer_held(const sl_syslog_framer *f)
{
    return f->len + f->ndigits;
}

/* Appends k bytes (len + k <= max_frame), growing buf geometrically. */
static int append(sl_syslog_framer *f, const char *p, size_t k, sl_err *err)
{
    if (k == 0) return SL_OK;
    if (f->len + k > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + k) cap *= 2;
        if (cap > f->max_frame) cap = f->max_frame;
        char *nb = realloc(f->buf, cap);
        if (!nb) return sl_errf(err, SL_ENOMEM, "syslog framing: out of memory");
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, p, k);
    f->len += k;
    return SL_OK;
}

static size_t terminator(const char *p, size_t n)
{
    const char *lf = memchr(p, '\n', n);
    size_t t = lf ? (size_t)(lf - p) : n;
    const char *nul = memchr(p, '\0', t);
    return nul ? (size_t)(nul - p) : t;
}

static int emit_line(sl_slice s, uint32_t flags, sl_syslog_frame_fn fn, void *arg)
{
    if (s.n && s.p[s.n - 1] == '\r') s.n--; /* CRLF senders */
    return fn(arg, s, flags);
}

static int bad(sl_syslog_framer *f, sl_err *err, const char *why, unsigned char c)
{
    f->state = ST_START;
    f->len = 0;
    f->ndigits = 0;
    return sl_errf(err, SL_EPARSE, "syslog octet counting: %s (byte 0x%02x)", why, c);
}

int sl_syslog_framer_feed(sl_syslog_framer *f, const char *p, size_t n, sl_syslog_frame_fn fn,
                          void *arg, sl_err *err)
{
    size_t i = 0;
    int rc;
    while (i < n) {
        switch (f->state) {
        case ST_START: {
            unsigned char c = (unsigned char)p[i];
            if (c == '\n' || c == '\r' || c == '\0') {
                i++;
                break;
            }
            bool digit = c >= '0' && c <= '9';
            if (f->mode == SL_SYSLOG_FRAMING_OCTET ||
                (f->mode == SL_SYSLOG_FRAMING_AUTO && digit)) {
                if (c < '1' || c > '9') return bad(f, err, "a frame must start with its length", c);
                f->state = ST_LEN;
                f->want = 0;
                f->ndigits = 0;
            } else {
                f->state = ST_LINE;
                f->len = 0;
            }
            break;
        }
        case ST_LEN: {
            unsigned char c = (unsigned char)p[i];
            if (c >= '0' && c <= '9') {
                if (f->ndigits == 0 && c == '0') return bad(f, err, "length with a leading 0", c);
                if (++f->ndigits > 9) return bad(f, err, "length of more than 9 digits", c);
                f->want = f->want * 10 + (uint64_t)(c - '0');
                i++;
                break;
            }
            if (c != ' ') return bad(f, err, "length not followed by a space", c);
            i++;
            f->ndigits = 0;
            f->keep = f->want > f->max_frame ? f->max_frame : (size_t)f->want;
            f->skip = f->want - f->keep;
            f->len = 0;
            f->state = ST_MSG;
            break;
        }
        case ST_MSG: {
            size_t avail = n - i, need = f->keep - f->len;
            sl_slice frame;
            if (f->len == 0 && avail >= need) {
                frame = (sl_slice){p + i, need}; /* whole in this read: no copy */
                i += need;
            } else {
                size_t k = avail < need ? avail : need;
                if ((rc = append(f, p + i, k, err)) != SL_OK) return rc;
                i += k;
                if (f->len < f->keep) break;
                frame = (sl_slice){f->buf, f->len};
            }
            f->len = 0;
            f->state = f->skip ? ST_SKIP_OCTETS : ST_START;
            if ((rc = fn(arg, frame, f->skip ? SL_SYSLOG_FRAME_TRUNCATED : 0)) != 0) return rc;
            break;
        }
        case ST_SKIP_OCTETS: {
            uint64_t k = n - i < f->skip ? n - i : f->skip;
            i += (size_t)k;
            f->skip -= k;
            if (!f->skip) f->state = ST_START;
            break;
        }
        case ST_LINE: {
            size_t seg = terminator(p + i, n - i), room = f->max_frame - f->len;
            bool found = i + seg < n;
            if (!found && seg <= room) {
                if ((rc = append(f, p + i, seg, err)) != SL_OK) return rc;
                i = n;
                break;
            }
            sl_slice frame;
            size_t k = seg < room ? seg : room;
            if (f->len == 0) {
                frame = (sl_slice){p + i, k};
            } else {
                if ((rc = append(f, p + i, k, err)) != SL_OK) return rc;
                frame = (sl_slice){f->buf, f->len};
            }
            bool cut = seg > room;
            f->len = 0;
            if (found) {
                i += seg + 1;
                f->state = ST_START;
            } else {
                i = n; /* no terminator in the rest: all of it is past max_frame */
                f->state = ST_SKIP_LINE;
            }
            if ((rc = emit_line(frame, cut ? SL_SYSLOG_FRAME_TRUNCATED : 0, fn, arg)) != 0)
                return rc;
            break;
        }
        case ST_SKIP_LINE: {
            size_t seg = terminator(p + i, n - i);
            if (i + seg < n) {
                i += seg + 1;
                f->state = ST_START;
            } else {
                i = n;
            }
            break;
        }
        }
    }
    return SL_OK;
}

int sl_syslog_framer_finish(sl_syslog_framer *f, sl_syslog_frame_fn fn, void *arg, sl_err *err)
{
    int state = f->state;
    size_t len = f->len;
    uint64_t want = f->want;
    f->state = ST_START;
    f->len = 0;
    f->ndigits = 0;
    if (state == ST_LINE && len)
        return emit_line((sl_slice){f->buf, len}, SL_SYSLOG_FRAME_AT_CLOSE, fn, arg);
    if (state == ST_LEN || state == ST_MSG || state == ST_SKIP_OCTETS)
        return sl_errf(err, SL_EPARSE,
                       "syslog octet counting: closed inside a frame of %llu bytes (%zu held)",
                       (unsigned long long)want, len);
    return SL_OK;
}
