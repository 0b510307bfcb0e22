/* Which files the file input reads: scans of the globs, inotify events,
 * opening (through collector/file_guard.h) and identity (device, inode and
 * a fingerprint of the first bytes), rename and copy rotation, rescue of
 * files rotated out of the globs, paths waiting for room under
 * max_open_files, and closing idle, gone and deleted files. All with
 * in->mu held. */
#ifndef SLUICE_COLLECTOR_FILE_DISCOVERY_H
#define SLUICE_COLLECTOR_FILE_DISCOVERY_H

#include "collector/file_state.h"

/* The hash of the first len bytes of the file at fd. */
uint64_t sl_file_fingerprint_fd(int fd, uint32_t len);
/* Refreshes t's fingerprint while the file is shorter than fp_bytes. */
void sl_file_grow_fingerprint(file_input *in, tracked *t, uint64_t size);
tracked *sl_file_find_by_id(file_input *in, uint64_t dev, uint64_t ino);
/* The file t holds was deleted (no name leads to it). */
bool sl_file_deleted(const tracked *t);
/* Takes inotify's pending events now (without waiting), marking the files
 * they name dirty, and sets in->events_fresh (the caller clears it). */
void sl_file_take_events(file_input *in);
/* t was read to its end and no event has marked it since events were last
 * taken (in->events_fresh): its size is read_off, and it was not deleted
 * or renamed as far as an fstat could tell. False without inotify. */
bool sl_file_known_at_eof(const file_input *in, const tracked *t);
/* Closes t, which is no longer listed, and remembers where it was. known:
 * its fstat when the caller has just taken it, else NULL. */
void sl_file_close(file_input *in, tracked *t, const struct stat *known);
/* A full scan of the globs (then rescue); what the discoverer thread
 * does instead (opens, never closes or renames); the paths waiting for
 * room; an inotify event (sl_watch_fn). */
void sl_file_scan(file_input *in);
void sl_file_discover(file_input *in);
void sl_file_open_waiting(file_input *in);
void sl_file_on_watch_event(void *arg, const char *path, int event);
/* Closes files idle for close_idle_after; files gone from their path once
 * read and acknowledged. */
void sl_file_close_idle_files(file_input *in, int64_t now);
void sl_file_reap(file_input *in);
/* Frees the refused names and the waiting paths (at destroy). */
void sl_file_discovery_free(file_input *in);

#endif
