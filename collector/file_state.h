/* The file input's state, shared by its parts (collector/file.c and the
 * file_*.c beside it): the tracked files with their hash indexes, the
 * checkpoint set, refused names and paths waiting for room, under one
 * mutex (the discoverer thread takes it while the input's thread waits in
 * emit). Internal to the file input: include it only from collector/file*.c.
 * The parts, each with its header:
 *   file_config.c      keys, configuration, metrics
 *   file_discovery.c   scans, identity, opening and closing, rotation, inotify
 *   file_read.c        reading, truncation, records and batches, rate limit
 *   eol_index.c        finding line ends (portable scan, AVX2 newline index)
 *   file_checkpoint.c  loading and saving positions
 *   file.c             the plugin: create, run loop, discoverer thread, destroy */
#ifndef SLUICE_COLLECTOR_FILE_STATE_H
#define SLUICE_COLLECTOR_FILE_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "collector/checkpoint.h"
#include "collector/eol_index.h"
#include "collector/file_guard.h"
#include "collector/multiline.h"
#include "collector/watch.h"
#include "core/ack.h"
#include "core/chunk.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/plugin.h"

#define MAX_GLOBS  32
#define MAX_LABELS 32

/* Thousands of files per input: lookups by identity and by path go
 * through hash chains, never a walk of every file. */
#define INDEX_BUCKETS 4096

enum { START_BEGINNING, START_END };
enum { LONG_SPLIT, LONG_TRUNCATE };

typedef struct tracked {
    struct tracked *next, *prev;
    struct tracked *id_next, *path_next; /* hash chains */
    char path[1024];
    int fd;
    uint64_t dev, ino;
    uint32_t fp_len;
    uint64_t fp;
    uint64_t read_off; /* next byte to read */
    sl_watermark *wm;  /* positions are file offsets */
    sl_chunk *chunk;   /* holds the unfinished line at [0, partial) */
    size_t partial;
    int64_t partial_since;
    bool skipping;    /* truncate mode: dropping the rest of a long line */
    bool gone;        /* path no longer leads here: read to EOF, then close */
    bool dirty;       /* may have data: read it on the next turn */
    int64_t mtime_ns; /* modification time when last looked at */
    /* The open's fstat, for the first read (-1: taken; fstat again). */
    int64_t open_size;
    struct timespec open_mtim;
    bool caught_up; /* the last read reached the end of the file */
    /* The last look at the file (its fstat, or a read that came back
     * short) found its end at read_off. With inotify on and no event
     * marking it dirty since (events taken just before: sl_file_take_events),
     * its size is read_off without another fstat (issue 19). */
    bool at_eof;
    bool backlog;       /* the last read filled its buffer: reading a backlog */
    size_t victim_slot; /* its index in file_input.victims + 1; 0: not listed */
    int64_t last_data_ns;
    sl_ml_file ml; /* multiline: the open group's state */
} tracked;

/* A name refused once (file_guard.h): logged and counted once, not
 * opened again while the name stays the same (same inode of the name
 * itself). Forgotten when a full scan no longer finds it. */
typedef struct refused_name {
    struct refused_name *next;
    uint64_t dev, ino; /* lstat of the name */
    uint32_t scan;     /* the last scan that saw it */
    char path[];
} refused_name;

/* Beyond this many, refused names are still refused but logged and
 * counted on every look (a folder with 64k FIFOs is an alarm anyway). */
#define MAX_REFUSED 65536

/* A path found while max_open_files were open: opened, in the order
 * found, as soon as a file is read and acknowledged and can be closed for
 * it, without another scan of the globs (at 10,000 files a scan is
 * 30,000 system calls, and a scan every poll_interval left the input
 * waiting for it: issue 19). */
typedef struct waiting_path {
    struct waiting_path *next, *hash_next; /* queue order, path_bucket chain */
    uint64_t dev, ino;                     /* the file found at the path last */
    bool plain;                            /* it was a regular file, the name no link */
    char path[];
} waiting_path;

/* Beyond this many, paths that find no room wait for a later scan. */
#define MAX_WAITING 65536

typedef struct file_input {
    const sl_input_ctx *ctx;
    const char *globs[MAX_GLOBS];
    size_t nglobs;
    const char *excludes[MAX_GLOBS];
    size_t nexcludes;
    int start_at;
    int long_mode;
    uint64_t max_line_bytes;
    bool validate_utf8;
    bool strip_cr; /* CRLF files: the \r before each \n is not part of the record */
    uint64_t chunk_bytes;
    uint32_t fp_bytes;
    uint64_t fp_bytes_read; /* fingerprint_bytes as read; fp_bytes is at most 64KiB of it */
    int64_t poll_ms, flush_partial_ms, checkpoint_ms, forget_after_ms, close_idle_ms, rescan_ms;
    int64_t max_open_files;
    int64_t max_ckpt_entries;   /* max_checkpoint_entries (decision 0069) */
    int64_t over_max_logged_ns; /* the last log line of entries dropped over it */
    uint64_t ckpt_looks;        /* sl_file_saw's clock */
    sl_metric *m_ckpt_entries, *m_ckpt_over_max;
    uint64_t read_rate; /* bytes per second, 0: unlimited */
    int64_t tokens;     /* read budget of the rate limit */
    int64_t tokens_at_ns;
    sl_watch *watch;
    sl_multiline *multiline;
    bool need_scan;
    bool deferred; /* a file waits for room under max_open_files */
    waiting_path *wait_head, *wait_tail;
    waiting_path **waiting; /* INDEX_BUCKETS chains */
    size_t nwaiting;
    int64_t wait_backoff_ms; /* between looks for room while paths wait */
    /* Idle files found by one walk, least recently active last, so that
     * close_one_idle does not walk every open file per close (10,000 files
     * made that quadratic: issue 19). NULL where a listed file was closed. */
    tracked **victims;
    size_t nvictims, victims_cap;
    uint64_t turn, no_victims_turn; /* a walk found none in this turn */
    bool ckpt_dirty;                /* files opened or closed since the last save */
    /* inotify's events were taken just now (sl_file_take_events): a file
     * sl_file_known_at_eof finds at its end needs no fstat to say so. */
    bool events_fresh;
    bool events_taken; /* sl_file_take_events reported some: the run loop turns without waiting */
    uint64_t saved_marks; /* sum of positions at the last checkpoint save */
    int open_count;
    uint32_t batch_records;
    int64_t batch_records_read; /* as read (1 to 2^20) */
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    char ckpt_path[4096];
    sl_ckpt ckpt; /* last known position of every file, open or not */
    tracked *files;
    tracked **by_id, **by_path; /* INDEX_BUCKETS chains each */
    bool first_scan_done;
    sl_file_guard guard;
    int follow; /* enum sl_follow */
    const char *follow_into[MAX_GLOBS];
    size_t nfollow_into;
    refused_name **refused; /* INDEX_BUCKETS chains */
    size_t nrefused;
    uint32_t scan_no;
    sl_metric *m_refused[SL_REFUSED_NREASONS];
    /* start_at applies only when this input never ran in this data_dir;
     * checkpoints that existed and were lost make every file read from
     * its start (decision 0015). */
    bool fresh;
    sl_metric *m_lost_bytes, *m_ckpt_lost, *m_cr;
    /* While the thread is blocked handing a batch over (backpressure),
     * a second thread keeps discovering and opening files, so that
     * rotation cannot take them out of reach: mu is held by the input's
     * thread except inside emit. */
    pthread_mutex_t mu;
    _Atomic int64_t emit_since_ns; /* 0: not inside emit */
    bool discovering;              /* the scan is the second thread's */
    pthread_t discoverer;
    bool discoverer_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool discoverer_stop;
    int64_t next_ckpt_ns;
    /* A backlog's last batch asks the sinks to send at once (flush_now),
     * at most once a second per input (decision 0049). */
    int64_t next_urgent_ns;
    sl_metric *m_lines, *m_bytes, *m_split, *m_truncated_files, *m_rotations, *m_open,
        *m_ckpt_errors, *m_ckpt_fallback, *m_read_errors, *m_deferred, *m_deleted_bytes,
        *m_bad_utf8, *m_nul;
    sl_eol_fn find_eol;
    sl_eol_index *index; /* when find_eol is NULL */
} file_input;

/* A path as a log value: a file name can hold spaces, quotes, newlines. */
static inline const char *sl_file_qpath(char *buf, size_t cap, const char *path)
{
    return sl_log_quote(buf, cap, path, strlen(path));
}

static inline int64_t sl_file_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

#endif
