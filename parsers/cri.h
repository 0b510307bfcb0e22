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
 * heap buffer per stream, bounded by max_bytes: a message longer than that
 * keeps its first max_bytes and is flagged truncated. */
typedef struct sl_cri_joiner sl_cri_joiner;

int sl_cri_joiner_new(size_t max_bytes, sl_cri_joiner **out);
void sl_cri_joiner_free(sl_cri_joiner *j);
/* Feeds one line. SL_EAGAIN: a partial piece was held, nothing to emit.
 * 0: *msg is a whole message (the line's own text when nothing was held,
 * else the joiner's buffer, valid until the next call), *time_ns the time of
 * its first piece, *truncated set when bytes were cut. Escaped docker text
 * is unescaped on the way in; a lone unheld escaped line is returned as it
 * is (check l->escaped). When the buffer cannot grow, the held text is
 * returned early and flagged truncated. */
int sl_cri_joiner_add(sl_cri_joiner *j, const sl_cri_line *l, sl_slice *msg, int64_t *time_ns,
                      bool *truncated);
/* Bytes held in pieces not yet completed (both streams). */
size_t sl_cri_joiner_pending(const sl_cri_joiner *j);

/* Parse steps `cri` and `docker`: set r->time_ns, replace r->line by the
 * container's message (joined and unescaped in the batch arena when
 * needed) and add the field `stream`. With a joiner, a partial piece is
 * held and its record flagged SL_RF_DROPPED (see decision 0004 on what
 * that means for acknowledgements); the last piece's record carries the
 * whole message. SL_EPARSE leaves r untouched. */
int sl_cri_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_cri_joiner *j, sl_err *err);
int sl_docker_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_cri_joiner *j, sl_err *err);

/* Kubernetes metadata from a log path, as slices of path:
 *   /var/log/containers/<pod>_<namespace>_<container>-<id>.log
 *   /var/log/pods/<namespace>_<pod>_<uid>/<container>/<N>.log
 * (any directory prefix). Absent parts are empty. 0 or SL_ENOENT. */
typedef struct sl_k8s_meta {
    sl_slice namespace_, pod, container, container_id, pod_uid;
} sl_k8s_meta;

int sl_k8s_from_path(const char *path, size_t n, sl_k8s_meta *m);
/* Appends namespace, pod, container, container_id, pod_uid (non-empty
 * ones) to r; the slices must outlive the batch (e.g. b->source). */
int sl_k8s_add_fields(sl_batch *b, sl_record *r, const sl_k8s_meta *m, sl_err *err);

#endif
