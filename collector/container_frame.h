/* Input framing for container runtime log files (CRI and docker
 * json-file): the runtime splits a long line into partial pieces (CRI tag
 * P, a docker `log` without its trailing newline), and the pieces of one
 * message are interleaved with the other stream's in the file. The frame
 * joins them per source file and stream before the parse steps run, so the
 * `cri` and `docker` steps are pure functions of one record, and it holds
 * the acknowledgement of every batch that carries a piece until the batch
 * completing the message is delivered (sl_batch_release_after).
 *
 * Unlike multiline (collector/multiline.h) a joined message is not one
 * slice of the read chunk, and pieces cross batches, so the frame runs on
 * an input's batches (pipeline/route.c) rather than inside the reader. It
 * is configured by a leading `cri`/`docker` step (decision 0029). */
#ifndef SLUICE_COLLECTOR_CONTAINER_FRAME_H
#define SLUICE_COLLECTOR_CONTAINER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"
#include "parsers/cri.h"

/* ---- the joiner: one source file's two streams ---- */

/* Joins partial lines per stream until the final piece. The joiner owns a
 * heap buffer per stream. A message that reaches max_bytes is given out at
 * once, marked SL_CRI_CUT_SIZE (its later pieces start a new message), so
 * a buffer holds less than max_bytes plus one piece (a piece is one line
 * of the file, bounded by the input). A message whose final piece never
 * comes is taken out with sl_cri_joiner_take once it waited long enough.
 * Either way no piece is lost and nothing waits without a bound. */
typedef struct sl_cri_joiner sl_cri_joiner;

int sl_cri_joiner_new(size_t max_bytes, sl_cri_joiner **out);
void sl_cri_joiner_free(sl_cri_joiner *j);
/* Feeds one line. SL_EAGAIN: a partial piece was held, nothing to emit.
 * 0: *msg is a whole message (the line's own text when nothing was held,
 * else the joiner's buffer, valid until the next call), *time_ns the time of
 * its first piece, *flags from enum sl_cri_msg_flags. Escaped docker text
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

/* One record through a joiner: its line parsed as CRI (or docker), a
 * partial piece held and the record flagged SL_RF_DROPPED (decision 0004
 * on what that means for acknowledgements), a whole message set on the
 * record as sl_cri_record_set does (the last piece's record carries the
 * joined message). *cut (may be NULL) tells that the message was given out
 * at max_bytes. SL_EPARSE leaves r untouched. */
int sl_cri_join_record(sl_batch *b, sl_record *r, bool docker, sl_cri_joiner *j, bool *cut,
                       sl_err *err);

/* ---- the frame: an input's joiners and held batches ---- */

typedef struct sl_container_frame sl_container_frame;

/* The values of the keys below. */
typedef struct sl_container_frame_opts {
    uint64_t max_bytes;
    int64_t flush_partial_after_ms;
} sl_container_frame_opts;

/* The keys of the `cri` and `docker` steps' maps (max_bytes,
 * flush_partial_after): they configure the frame, the steps list them. */
#define SL_CONTAINER_FRAME_NKEYS 2
extern const sl_cfg_key sl_container_frame_keys[SL_CONTAINER_FRAME_NKEYS];

/* The frame an input's `parse:` list asks for: one when its first step is
 * `cri` or `docker`, configured from that step's map; *out NULL otherwise
 * (a later `cri` step parses each piece alone, see pipeline/check.c).
 * Errors go to cfg (build the chain first: it reports the step's keys).
 * SL_OK, SL_EINVAL or SL_ENOMEM. */
int sl_container_frame_new(sl_cfg *cfg, const sl_cfg_node *parse, const char *input,
                           sl_container_frame **out);
/* Stopping: held pieces are dropped unacknowledged (read again). */
void sl_container_frame_free(sl_container_frame *f);
/* Frames every record of b (f may be NULL: nothing to do): a whole
 * container line becomes its message with `stream` (and `partial:
 * max_bytes` when cut at max_bytes), flagged SL_RF_FRAMED; a piece is held
 * and its record SL_RF_DROPPED; a line that is not the container format is
 * left for the step to report. */
void sl_container_frame_run(sl_container_frame *f, sl_batch *b);
/* Messages whose final piece has not come within flush_partial_after, as
 * of now_ns (sl_monotonic_ns; INT64_MAX: every one): a new batch of them,
 * each marked `partial: flush_partial_after` and counted, flagged
 * SL_RF_FRAMED, for the caller to run through the parse steps and route
 * like any other. The batches that held their pieces are acknowledged after
 * it. NULL when there is none; call again until NULL. */
sl_batch *sl_container_frame_take(sl_container_frame *f, int64_t now_ns);

#endif
