/* File system helpers for state that must survive crashes. */
#ifndef SLUICE_CORE_FSUTIL_H
#define SLUICE_CORE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* mkdir -p with mode for every directory it creates. */
int sl_mkdirs(const char *path, mode_t mode, sl_err *err);
/* Replaces path with data so that a crash leaves either the old or the new
 * contents: write path.tmp, fsync, rename over path, fsync the directory.
 * When keep_prev is set the old file is first hard-linked to path.prev, so
 * the previous good generation stays beside the new one. Files are 0600. */
int sl_write_atomic(const char *path, const void *data, size_t n, int keep_prev, sl_err *err);
/* Reads a whole regular file of at most max bytes; caller frees *out. */
int sl_read_file(const char *path, size_t max, char **out, size_t *n, sl_err *err);
/* The same for the agent's own state in data_dir: a link there is never
 * followed (it is refused as unreadable). */
int sl_read_state_file(const char *path, size_t max, char **out, size_t *n, sl_err *err);

/* Opens path for appending (creating it 0640) the way root must open a file
 * in a folder it does not fully control (a file sink's output): the path is
 * walked one component at a time from a checked folder descriptor, and
 * every folder on the way, the link targets included, must be owned by root
 * or the agent's user and not writable by group or others unless sticky; a
 * link is followed only when root or the agent's user owns it. The file
 * itself must be no link (O_NOFOLLOW), a regular file (a FIFO or device is
 * refused before it is opened), with one name, owned by root or the agent's
 * user. Refusals are SL_EINVAL with a message naming the component and why
 * (decision 0065). */
int sl_open_append_checked(const char *path, int *fd, sl_err *err);
/* Moves a damaged state file aside as path.damaged, keeping the last `keep`
 * ones: an older path.damaged becomes path.damaged.1, .1 becomes .2, ...,
 * and path.damaged.<keep-1> is removed (*discarded set) when all are taken.
 * Nothing is followed: links are moved as links. */
int sl_keep_aside(const char *path, int keep, int *discarded, sl_err *err);
/* How many damaged generations of one state file are kept aside. */
#define SL_KEEP_DAMAGED 4
/* sl_keep_aside of an input's damaged checkpoint, keeping SL_KEEP_DAMAGED:
 * the oldest evidence given up is counted in
 * sluice_checkpoint_damaged_discarded_total{input} and logged, as is a
 * move that fails. */
void sl_keep_damaged(const char *path, const char *input);

#endif
