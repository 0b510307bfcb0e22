/* Directory watching for the file input: inotify where the kernel and file
 * system allow it, so idle files cost nothing; otherwise the caller polls. */
#ifndef SLUICE_COLLECTOR_WATCH_H
#define SLUICE_COLLECTOR_WATCH_H

#include <stdbool.h>

typedef struct sl_watch sl_watch;

enum sl_watch_event {
    SL_WATCH_MODIFIED, /* a file in a watched directory got data */
    SL_WATCH_CREATED,  /* created or renamed into the directory */
    SL_WATCH_REMOVED,  /* deleted or renamed away */
    SL_WATCH_OVERFLOW, /* events were lost: rescan everything */
};

typedef void (*sl_watch_fn)(void *arg, const char *path, int event);

/* Never fails for lack of inotify: the watcher is then inactive and
 * sl_watch_wait only sleeps. NULL only when out of memory. */
sl_watch *sl_watch_new(void);
void sl_watch_free(sl_watch *w);
bool sl_watch_active(const sl_watch *w);
/* Watches dir (idempotent). On failure (watch limit, unsupported file
 * system) the watcher turns inactive, and the caller falls back to polling. */
void sl_watch_dir(sl_watch *w, const char *dir);
/* Waits up to timeout_ms for events and reports each through fn. */
void sl_watch_wait(sl_watch *w, int timeout_ms, sl_watch_fn fn, void *arg);

#endif
