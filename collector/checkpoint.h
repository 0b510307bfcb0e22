/* Per-file checkpoints of a file input: where each file (identified by
 * device, inode and a fingerprint of its first bytes) has been read and
 * acknowledged up to. Saved atomically as JSON in data_dir with the previous
 * generation kept beside it; a damaged file falls back to that generation. */
#ifndef SLUICE_COLLECTOR_CHECKPOINT_H
#define SLUICE_COLLECTOR_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct sl_ckpt_entry {
    /* The numbers first, the path after them: a walk of every entry (each
     * save, each scan's rescue) reads the numbers and the path's start
     * from neighbouring cache lines, not from both ends of 1.1 KiB
     * (10,000 entries: issue 19). */
    uint64_t dev, ino;
    uint64_t fp;      /* hash of the first fp_len bytes */
    uint64_t offset;  /* acknowledged position */
    int64_t seen;     /* unix seconds when the file was last present */
    uint64_t size;    /* its size when last looked at (0: unknown, or empty) */
    uint64_t touched; /* not saved: the file input's count of looks when it last saw it */
    uint32_t fp_len;  /* bytes the fingerprint covers (grows up to fp_bytes) */
    uint8_t look;     /* the file input's scratch mark while looking for it */
    char path[1024];
} sl_ckpt_entry;

/* The most a checkpoint may hold, and what its decoder takes from a file
 * before it gives up (decision 0059): memory stays bounded whatever the
 * file says. More entries than CKPT_MAX_ENTRIES are dropped (counted). */
#define SL_CKPT_MAX_BYTES       (64u << 20)
#define SL_CKPT_MAX_ENTRIES     (1u << 18)
#define SL_CKPT_MAX_ENTRY_BYTES (16u << 10)
#define SL_CKPT_MAX_FP_BYTES    65536u

/* Entries a load left out, by reason (sluice_checkpoint_entries_dropped_total). */
typedef struct sl_ckpt_drops {
    size_t invalid;    /* a field our writer never writes: path, types, ranges */
    size_t duplicate;  /* a second entry for one dev+ino (the lower offset kept) */
    size_t over_limit; /* past SL_CKPT_MAX_ENTRIES */
    /* why the first of each was dropped, for the log */
    char first_invalid[96], first_duplicate[96], first_over_limit[96];
} sl_ckpt_drops;

typedef struct sl_ckpt {
    sl_ckpt_entry *e;
    size_t n, cap;
    size_t *slots;       /* open-addressing index by dev+ino: entry index + 1 */
    size_t nslots;       /* 0: index to be rebuilt */
    sl_ckpt_drops drops; /* what the last load left out */
} sl_ckpt;

/* Loads path (or path.prev when path is damaged). A missing file is an
 * empty set. *fell_back is set when the previous generation was used.
 * Damaged: not JSON, another version or layout, over SL_CKPT_MAX_BYTES,
 * not a regular file, a link. Entries that break the writer's promises
 * are left out one by one and counted in c->drops. */
int sl_ckpt_load(const char *path, sl_ckpt *c, int *fell_back, sl_err *err);
/* The decoder of sl_ckpt_load on text already read (SL_ECORRUPT when the
 * file is damaged; c is then empty). */
int sl_ckpt_parse(const char *text, size_t len, sl_ckpt *c, sl_err *err);
int sl_ckpt_save(const char *path, const sl_ckpt *c, sl_err *err);
/* The text sl_ckpt_save writes, into a fresh buffer (caller frees);
 * SL_ENOMEM when it would exceed SL_CKPT_MAX_BYTES. */
int sl_ckpt_encode(const sl_ckpt *c, char **out, size_t *len, sl_err *err);
/* Adds or replaces the entry with the same dev+ino. */
int sl_ckpt_put(sl_ckpt *c, const sl_ckpt_entry *e);
sl_ckpt_entry *sl_ckpt_find(sl_ckpt *c, uint64_t dev, uint64_t ino);
/* The entry for dev+ino: the one there is, else a new one with every
 * number zero and an empty path (the bytes past its end are not
 * zeroed), to be filled in place (no 1.1 KiB entry built and copied
 * in: issue 19). NULL when out of memory. */
sl_ckpt_entry *sl_ckpt_put_new(sl_ckpt *c, uint64_t dev, uint64_t ino);
void sl_ckpt_remove(sl_ckpt *c, size_t i);
void sl_ckpt_free(sl_ckpt *c);

/* The path of input's state file in data_dir's checkpoint folder
 * (data_dir/checkpoints/<input><suffix>), into out; the folder is created
 * (0700) when create is set. One place for the file and journald inputs. */
int sl_ckpt_path(const char *data_dir, const char *input, const char *suffix, bool create,
                 char *out, size_t cap, sl_err *err);

/* FNV-1a over a prefix of a file, used as its fingerprint. */
uint64_t sl_fingerprint(const void *p, size_t n);

#endif
