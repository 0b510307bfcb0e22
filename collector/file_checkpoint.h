/* The file input's checkpoint: loaded at create (with the fallback and
 * loss rules of decision 0015), entries kept for open, closed and
 * not-yet-opened files, saved by the run loop. */
#ifndef SLUICE_COLLECTOR_FILE_CHECKPOINT_H
#define SLUICE_COLLECTOR_FILE_CHECKPOINT_H

#include "collector/file_state.h"

/* Sets in->ckpt_path (creating the folder unless dry_run), in->fresh, and
 * loads in->ckpt; an unreadable checkpoint is logged and counted, and
 * every file is read from its start. Fails only when data_dir is unusable. */
int sl_file_ckpt_open(file_input *in, sl_err *err);
/* Writes the marker that says this input ran in this data_dir. */
void sl_file_ckpt_mark_started(file_input *in);
/* The entry of a file not opened for lack of room, with its size. */
void sl_file_remember_unopened(file_input *in, const char *path, const struct stat *st,
                               bool initial);
/* t's entry; size: its size when the caller has just taken it, else -1. */
void sl_file_remember(file_input *in, tracked *t, int64_t size);
void sl_file_save_checkpoint(file_input *in);
/* Marks the file of e as present now: its `seen` (unix seconds, saved)
 * and its place in the order max_checkpoint_entries forgets in (decision
 * 0069; seconds cannot order the thousands of files one second sees). */
static inline void sl_file_saw(file_input *in, sl_ckpt_entry *e)
{
    e->seen = sl_now_ns() / 1000000000;
    e->touched = ++in->ckpt_looks;
}

#endif
