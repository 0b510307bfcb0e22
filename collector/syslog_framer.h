/* RFC 6587 framing of a syslog byte stream (TCP, TLS), one decoder per
 * connection: octet counting (`LEN SP MSG`) and non-transparent framing
 * (MSG ends at LF or NUL), auto-detected at the start of every frame as
 * RFC 6587 section 3.4 suggests (a digit starts a length), or fixed by
 * configuration. Memory is bounded by max_frame per connection.
 *
 * Hostile streams: a frame above max_frame is handed on cut to max_frame
 * (flagged) and the rest skipped, so the stream stays in step and the
 * connection is kept; a length that is not one (a leading zero, more than 9
 * digits, no space after it) leaves no way to find the next frame, so the
 * decoder fails and the caller closes the connection. */
#ifndef SLUICE_COLLECTOR_SYSLOG_FRAMER_H
#define SLUICE_COLLECTOR_SYSLOG_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/record.h"

enum sl_syslog_framing {
    SL_SYSLOG_FRAMING_AUTO = 0,
    SL_SYSLOG_FRAMING_OCTET = 1,   /* octet counting only */
    SL_SYSLOG_FRAMING_NEWLINE = 2, /* non-transparent only: a digit is just text */
};

enum sl_syslog_frame_flags {
    SL_SYSLOG_FRAME_TRUNCATED = 1 << 0, /* longer than max_frame: the rest was skipped */
    SL_SYSLOG_FRAME_AT_CLOSE = 1 << 1,  /* a last line without LF, ended by the close */
};

/* Receives each frame (a slice valid during the call). A non-zero return
 * stops sl_syslog_framer_feed, which returns it. */
typedef int (*sl_syslog_frame_fn)(void *arg, sl_slice frame, uint32_t flags);

typedef struct sl_syslog_framer {
    int mode;         /* enum sl_syslog_framing */
    size_t max_frame; /* bytes of MSG */
    int state;
    uint64_t want; /* octet counting: the length being read */
    uint64_t skip; /* bytes to discard after the kept part of a frame */
    size_t keep;   /* bytes of the current octet-counted frame to keep */
    uint32_t ndigits;
    char *buf; /* the part of a frame seen so far, when it spans reads */
    size_t len, cap;
} sl_syslog_framer;

void sl_syslog_framer_init(sl_syslog_framer *f, int mode, size_t max_frame);
void sl_syslog_framer_free(sl_syslog_framer *f);

/* Decodes n bytes, calling fn for each complete frame (leading LF, CR and
 * NUL between frames are skipped). SL_OK when every byte was taken; the
 * callback's non-zero value; SL_EPARSE with the reason in err when the
 * stream cannot be framed (close the connection); SL_ENOMEM when the frame
 * buffer could not grow. */
int sl_syslog_framer_feed(sl_syslog_framer *f, const char *p, size_t n, sl_syslog_frame_fn fn,
                          void *arg, sl_err *err);

/* The peer closed: a non-transparent frame without its LF is handed on
 * (SL_SYSLOG_FRAME_AT_CLOSE); an incomplete octet-counted frame is not, and
 * SL_EPARSE says so. SL_OK when nothing was pending. */
int sl_syslog_framer_finish(sl_syslog_framer *f, sl_syslog_frame_fn fn, void *arg, sl_err *err);

/* Bytes held for an incomplete frame. */
size_t sl_syslog_framer_held(const sl_syslog_framer *f);

#endif
