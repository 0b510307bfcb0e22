/* data_dir, the agent's state (checkpoints, spools): one agent per folder,
 * and a folder nobody else can change. See
 * docs/decisions/0015-hostile-files-and-data-dir.md. */
#ifndef SLUICE_CORE_DATADIR_H
#define SLUICE_CORE_DATADIR_H

#include "core/err.h"

typedef struct sl_datadir sl_datadir;

/* Creates path (0700) when missing; refuses it when others can write to it
 * (group/world-writable, or owned by another user), and refuses links or
 * foreign folders among what the agent keeps in it (checkpoints/, spool/,
 * spool/<sink>/, lock). Then takes an exclusive flock on path/lock, which
 * holds this process's PID while it runs. SL_EAGAIN when another process
 * holds the lock (the message names its PID); SL_EINVAL when the folder is
 * refused (the message names the fix). */
int sl_datadir_open(const char *path, sl_datadir **out, sl_err *err);
/* Releases the lock. NULL is fine. */
void sl_datadir_close(sl_datadir *d);

#endif
