/* Container runtime log files: CRI (`<RFC3339Nano> <stdout|stderr> <P|F> <msg>`,
 * containerd and CRI-O) and Docker's json-file driver
 * (`{"log":"...\n","stream":"stdout","time":"..."}`): the line syntax, a
 * whole message set on its record, and Kubernetes metadata from the log
 * file's path. Partial lines are joined by the input's framing
 * (collector/container_frame.h). */
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

/* What happened to a whole message on its way (a joiner's answer,
 * collector/container_frame.h). */
enum sl_cri_msg_flags {
    SL_CRI_TRUNCATED = 1 << 0, /* bytes were cut (the buffer could not grow) */
    SL_CRI_CUT_SIZE = 1 << 1,  /* given out unfinished: it reached max_bytes */
};

/* Sets r from the whole message msg of line l (l->msg itself, unescaped in
 * the batch arena when l->escaped, or a joiner's buffer, copied into the
 * arena): r->line, r->time_ns, the field `stream`, and for flags
 * SL_CRI_CUT_SIZE the field `partial: max_bytes`, SL_CRI_TRUNCATED the
 * record flag. who names the format in errors. 0 or SL_ENOMEM. */
int sl_cri_record_set(sl_batch *b, sl_record *r, const sl_cri_line *l, sl_slice msg,
                      int64_t time_ns, unsigned flags, const char *who, sl_err *err);

/* Parse steps `cri` and `docker` on one whole record: set r->time_ns,
 * replace r->line by the container's message (unescaped in the batch arena
 * when needed) and add the field `stream`. A partial piece is parsed alone:
 * joining pieces is input framing (collector/container_frame.h). SL_EPARSE
 * leaves r untouched. */
int sl_cri_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err);
int sl_docker_parse_record(sl_batch *b, sl_record *r, sl_slice in, sl_err *err);
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
