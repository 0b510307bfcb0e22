/* Container runtime log files: CRI (`<RFC3339Nano> <stdout|stderr> <P|F> <msg>`,
 * containerd and CRI-O) and Docker's json-file driver
 * (`{"log":"...\n","stream":"stdout","time":"..."}`), with partial lines
 * joined back, and Kubernetes metadata from the log file's path. */
#ifndef SLUICE_PARSERS_CRI_H
#define SLUICE_PARSERS_CRI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/record.h"

enum sl_cri_stream { SL_CRI_STDOUT = 0, SL_CRI_STDERR = 1 };

typedef struct sl_cri_line {
    int64_t time_ns;
    int stream;   /* enum sl_cri_stream */
    bool partial; /* CRI tag P; docker: log without a trailing newline */
    bool escaped; /* docker: msg still holds JSON escapes */
    sl_slice msg; /* docker: the trailing \n escape is already cut off */
} sl_cri_line;

/* One CRI line (without its newline). 0 or SL_EPARSE. */
int sl_cri_parse(const char *p, size_t n, sl_cri_line *out, sl_err *err);
/* One docker json-file line: an object with "log", "stream", "time" (any
 * order, other members skipped). 0 or SL_EPARSE. */
int sl_docker_parse(const char *p, size_t n, sl_cri_line *out, sl_err *err);
/* JSON string text to bytes (dst: room for v.n; the output is never
 * longer). Lone surrogates become U+FFFD; a backslash before a byte that is
 * not an escape is dropped. Returns the length. */
size_t sl_docker_unescape(sl_slice v, char *dst);

/* Joins partial lines per stream until the final piece. The joiner owns a
 * heap buffer per stream. A message that reaches max_bytes is given out at
 * once, marked SL_CRI_CUT_SIZE (its later pieces start a new message), so
 * a buffer holds less than max_bytes plus one piece (a piece is one line
 * of the file, bounded by the input). A message whose final piece never
 * comes is taken out with sl_cri_joiner_take once it waited long enough.
 * Either way no piece is lost and nothing waits without a bound. */
typedef struct sl_cri_joiner sl_cri_joiner;

enum sl_cri_join_flags {
    SL_CRI_TRUNCATED = 1 << 0, /* bytes were cut (the buffer could not grow) */
    SL_CRI_CUT_SIZE = 1 << 1,  /* given out unfinished: it reached max_bytes */
};

int sl_cri_joiner_new(size_t max_bytes, sl_cri_joiner **out);
void sl_cri_joiner_free(sl_cri_joiner *j);
/* Feeds one line. SL_EAGAIN: a partial piece was held, nothing to emit.
 * 0: *msg is a whole message (the line's own text when nothing was held,
 * else the joiner's buffer, valid until the next call), *time_ns the time of
 * its first piece, *flags from enum sl_cri_join_flags. Escaped docker text
 * is unescaped on the way in; a lone unheld escaped line is returned as it
 * is (check l->escaped). When the buffer cannot grow, the held text is
 * returned early and flagged truncated. */
int sl_cri_joiner_add(sl_cri_joiner *j, const sl_cri_line *l, sl_slice *msg, int64_t *time_ns,
                      unsigned *flags);
/* Bytes held in pieces not yet completed (both streams). */
size_t sl_cri_joiner_pending(const sl_cri_joiner *j);
/* Takes out one unfinished message whose first piece was held before
 * held_before_ns (CLOCK_MONOTONIC, as sl_monotonic_ns; INT64_MAX: any):
 * *msg (valid until the next call), the time of its first piece and its
 * stream. 0, or SL_ENOENT when there is none. */
int sl_cri_joiner_take(sl_cri_joiner *j, int64_t held_before_ns, sl_slice *msg, int64_t *time_ns,
                       int *stream);

/* Parse steps `cri` and `docker`: set r->time_ns, replace r->line by the
 * container's message (joined and unescaped in the batch arena when
 * needed) and add the field `stream`. With a joiner, a partial piece is
 * held and its record flagged SL_RF_DROPPED (see decision 0004 on what
 * that means for acknowledgements); the last piece's record carries the
 * whole message. A message given out at max_bytes also gets the field
 * `partial: max_bytes`; *cut (may be NULL) tells the caller, to count it.
 * SL_EPARSE leaves r untouched. */
int sl_cri_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_cri_joiner *j, bool *cut,
                        sl_err *err);
int sl_docker_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_cri_joiner *j, bool *cut,
                           sl_err *err);
/* Adds `stream` and `partial: <why>` to r, a record made for a message
 * taken out of a joiner unfinished (sl_cri_joiner_take). */
int sl_cri_mark_partial(sl_batch *b, sl_record *r, int stream, const char *why, sl_err *err);

/* Kubernetes metadata from a log path, as slices of path:
 *   /var/log/containers/<pod>_<namespace>_<container>-<id>.log
 *   /var/log/pods/<namespace>_<pod>_<uid>/<container>/<N>.log
 * (any directory prefix). Absent parts are empty. 0 or SL_ENOENT. */
typedef struct sl_k8s_meta {
    sl_slice namespace_, pod, container, container_id, pod_uid;
} sl_k8s_meta;

int sl_k8s_from_path(const char *path, size_t n, sl_k8s_meta *m);

#endif
