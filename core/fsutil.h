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

#endif
