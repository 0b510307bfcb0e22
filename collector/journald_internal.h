/* The journald input's state, shared by its files; private to them.
 * collector/journald.h stays the public header.
 *
 *   journald.c          configuration, metrics, reading entries into
 *                       batches, the run loop
 *   journald_ckpt.c     the checkpoint file and the ring of cursors of the
 *                       batches in flight (acknowledgements)
 *   journald_journal.c  opening the journal: matches, seeking to the saved
 *                       cursor; directory mode's scan for files sd-journal
 *                       skips, reads in part or loses (damaged, removed,
 *                       planted; decision 0075); the SIGBUS handler for
 *                       files cut under their mappings */
#ifndef SLUICE_COLLECTOR_JOURNALD_INTERNAL_H
#define SLUICE_COLLECTOR_JOURNALD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "collector/journald.h"
#include "core/log.h"
#include "core/metrics.h"

#define MAX_UNITS        64
#define MAX_MATCHES      64
#define MAX_NAMES        64 /* fields.keep, fields.drop */
#define MAX_LABELS       32 /* static labels */
#define MAX_LABELS_FROM  16
#define MAX_SLOTS        (8 + 2 * MAX_NAMES + MAX_LABELS_FROM)
#define SLOT_HASH        512 /* open addressing over MAX_SLOTS names: load < 0.3 */
#define MAX_ENTRY_FIELDS 128 /* extra fields of one entry with fields.keep: ["*"] */
#define MAX_FIELD_NAME   64  /* the journal's own limit */
#define RING_CAP         4096
/* Journal files of a folder the scan keeps track of: above sd-journal's own
 * limit (7,168 files, JOURNAL_FILES_MAX), 24 bytes each. */
#define SEEN_MAX          8192
#define JOURNAL_FILES_MAX 7168 /* libsystemd 252's JOURNAL_FILES_MAX */
#define CKPT_MAX          65536
#define CURSOR_MAX        1024
#define ENTRIES_PER_TURN  1024
#define MAX_NEXT_ERRORS   10

enum { START_BEGINNING, START_END };
enum slot_kind { SLOT_MESSAGE, SLOT_PRIORITY, SLOT_PLAIN };

/* A journal field the input looks for in every entry: where it goes (an
 * output field, labels, both, or nowhere when dropped). */
typedef struct slot {
    const char *jname; /* journal field name */
    size_t jlen;
    const char *out; /* output field name; NULL: not emitted as a field */
    size_t outlen;
    int kind;
    const char *labels[MAX_LABELS_FROM];
    uint32_t nlabels;
} slot;

/* Acknowledgement bookkeeping: the cursor of the last entry of each batch in
 * flight, by the batch's end position. Oldest first. */
typedef struct cursor_slot {
    uint64_t end;
    uint64_t rt_usec;
    char *cursor; /* NULL when sd-journal could not give one */
} cursor_slot;

/* What the scan needs of a journal file's header (systemd's
 * docs/JOURNAL_FILE_FORMAT.md: little-endian fields at fixed offsets). */
enum { JD_STATE_OFFLINE, JD_STATE_ONLINE, JD_STATE_ARCHIVED };
typedef struct jd_file_header {
    uint8_t state;
    uint8_t seqnum_id[16];
    uint64_t n_entries, head_seqnum, tail_seqnum, head_rt_usec, tail_rt_usec;
} jd_file_header;

typedef struct seen_file {
    dev_t dev;
    ino_t ino;
    bool present;     /* found by the scan under way */
    bool have_header; /* h was read (refreshed each scan while online) */
    jd_file_header h;
    char *name;
} seen_file;
#define JD_HEADER_MIN 208 /* the oldest header size systemd writes */

typedef struct jd_input {
    const sl_input_ctx *ctx;
    /* configuration */
    const char *directory;
    char units[MAX_UNITS][256];
    size_t nunits;
    const char *matches[MAX_MATCHES];
    size_t nmatches;
    int priority; /* max level, 0-7; 7 = no filter */
    int start_at;
    bool keep_all;
    uint64_t max_message_bytes, max_field_bytes, chunk_bytes;
    uint64_t reopen_bytes; /* reopen_after; 0: never */
    uint32_t batch_records;
    int64_t checkpoint_ms;
    /* Read from journald_keys as the table types them, then converted. */
    struct {
        const char *priority;
        int64_t batch_records;
    } keys;
    slot slots[MAX_SLOTS];
    size_t nslots;
    /* Slot index + 1 by hash of the journal field name (0: empty), so an
     * entry's ~20 fields are matched without walking every slot. */
    uint8_t slot_hash[SLOT_HASH];
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    char ckpt_path[4096];
    /* journal */
    sd_journal *j;
    bool have_fd; /* inotify works: sd_journal_wait tells of changes */
    /* Reopened to unmap (decision 0048) without making the inotify watches
     * yet: closing an inotify descriptor waits for the kernel (an SRCU
     * grace period, ~10 ms), so they are made only when the input next
     * waits for entries, not at every reopen during a backlog. */
    bool watch_deferred;
    bool pending;    /* positioned on an entry that was not read yet */
    int next_errors; /* consecutive sd_journal_next failures */
    /* Bytes of entries read since the journal was opened: each field's
     * length and its object's header, an upper bound of the journal file
     * pages the reader touched, which libsystemd's mmap cache keeps mapped
     * (and in RSS) until the journal is closed (decision 0048). */
    uint64_t read_since_open;
    /* entry being read: offsets relative to e_off in chunk */
    sl_chunk *chunk;
    size_t e_off;
    bool present[MAX_SLOTS];
    uint32_t val_off[MAX_SLOTS], val_len[MAX_SLOTS];
    uint8_t prio;
    uint32_t x_key_off[MAX_ENTRY_FIELDS], x_key_len[MAX_ENTRY_FIELDS];
    uint32_t x_val_off[MAX_ENTRY_FIELDS], x_val_len[MAX_ENTRY_FIELDS];
    uint32_t nextra;
    bool entry_failed;         /* the entry did not fit in memory */
    uint64_t bytes_unreported; /* sluice_input_bytes_total, added per batch */
    /* batching and acknowledgements */
    sl_batch *batch;
    uint64_t batch_begin;
    uint64_t seq; /* entries read this run: entry k spans positions [k-1, k) */
    uint64_t last_rt_usec;
    sl_watermark *wm;
    cursor_slot *ring;
    size_t ring_head, ring_len;
    char *acked_cursor; /* what the checkpoint records */
    uint64_t acked_rt_usec;
    bool acked_dirty;
    char *read_cursor; /* last entry handed on, for reopening */
    uint64_t read_rt_usec;
    bool ckpt_damaged; /* both checkpoint generations unreadable */
    int64_t next_process_ns;
    /* A whole batch was handed on since the input last reached the end of
     * the journal: it is behind, and its tail is sent at once when it
     * catches up (no earlier than next_urgent_ns). */
    bool behind;
    int64_t next_urgent_ns;
    int64_t next_pause_ns;
    /* directory mode: journal files already checked (at most SEEN_MAX;
     * files gone from the folder are forgotten at the next scan) */
    seen_file *seen;
    size_t nseen, seen_cap;
    bool seen_full_logged, files_max_logged;
    int64_t rescan_at_ns; /* a fresh file failed to open: look again then */
    struct timespec dir_mtime;
    /* The folder the journal was opened on, to tell when the path names
     * another one (replaced, or a symlink moved) or none (removed). */
    dev_t dir_dev;
    ino_t dir_ino;
    bool dir_known, dir_missing;
    bool reopen_wanted;   /* the folder was replaced, or a mapped file shrank */
    uint64_t sigbus_seen; /* sl_jd_sigbus_count() when last looked at */
    sl_ratelimit rl_errors;
    sl_metric *m_records, *m_bytes, *m_truncated, *m_missing, *m_lost, *m_errors, *m_ckpt_errors,
        *m_ckpt_fallback, *m_inflight, *m_reopens, *m_damaged, *m_invalid_names, *m_shrank,
        *m_removed_unread;
} jd_input;

/* journald.c */
/* journald_config.c: the key table (the ops table names it), reading a
 * node into in (SL_EINVAL: errors went to ctx->cfg), the metrics. */
#define SL_JD_NKEYS 17
extern const sl_cfg_key sl_jd_keys[SL_JD_NKEYS];
int sl_jd_configure(jd_input *in, const sl_input_ctx *ctx);
/* Journal field names: A-Z, 0-9 and '_', not starting with a digit, 1-64
 * bytes. */
bool sl_jd_valid_field_name(const char *s, size_t n);
void sl_jd_register_metrics(jd_input *in);
void sl_jd_count_error(jd_input *in, const char *what, int r);

/* journald_ckpt.c */
void sl_jd_load_checkpoint(jd_input *in, char **cursor, uint64_t *rt);
/* The checkpoint's decoder on text already read: SL_ECORRUPT unless it is
 * {"version":1,"cursor":"<printable ASCII>","realtime_usec":N}; a time
 * more than a day ahead of the clock reads as 0 (no hint). */
int sl_jd_parse_checkpoint(const char *text, size_t n, char **cursor, uint64_t *rt, sl_err *err);
void sl_jd_save_checkpoint(jd_input *in);
void sl_jd_prune_ring(jd_input *in);
/* The checkpoint moves to cursor (which it takes). */
void sl_jd_set_acked(jd_input *in, char *cursor, uint64_t rt);

/* journald_journal.c */
/* defer_watch: leave the inotify watches to the next wait (watch_deferred). */
int sl_jd_open_journal(jd_input *in, const char *cursor, uint64_t rt_usec, bool defer_watch);
void sl_jd_scan_directory(jd_input *in);
void sl_jd_check_directory(jd_input *in);
void sl_jd_forget_files(jd_input *in);
/* The header decoder on the first bytes of a journal file: SL_ECORRUPT
 * unless it has the signature, a header size of at least JD_HEADER_MIN that
 * n covers, a known state and head <= tail seqnum when it has entries. */
int sl_jd_parse_header(const void *buf, size_t n, jd_file_header *h, sl_err *err);
/* The entry seqnum (i=, hex) of a cursor; false when it has none. */
bool sl_jd_cursor_seqnum(const char *cursor, uint64_t *seqnum);
/* A journal file truncated under libsystemd's mmaps would kill the agent
 * with SIGBUS: the handler maps zeros over the missing page (libsystemd then
 * sees a bad object) and counts. Process-wide, installed once. */
void sl_jd_sigbus_install(void);
uint64_t sl_jd_sigbus_count(void);

#endif
