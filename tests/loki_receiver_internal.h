/* What the test receiver's server (loki_receiver.c) shares with its decoder
 * (loki_receiver_decode.c). Not for tests: they use loki_receiver.h. */
#ifndef SLUICE_TESTS_LOKI_RECEIVER_INTERNAL_H
#define SLUICE_TESTS_LOKI_RECEIVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tests/loki_receiver.h"

#define LR_MAX_HEADER (64u << 10)
#define LR_MAX_BODY   (256u << 20)

/* A stock Loki's limits (its defaults) that the strict mode applies. */
#define STRICT_MAX_LINE 256000
#define STRICT_OLD_NS   (7LL * 24 * 3600 * 1000000000LL)
#define STRICT_GRACE_NS (10LL * 60 * 1000000000LL)

/* A small growable string, NUL-terminated; 0 or -1 when out of memory. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;
int sl_lr_sb_put(sbuf *b, const void *p, size_t n);
int sl_lr_sb_str(sbuf *b, const char *s);

/* What decoding saw beyond the push itself. */
typedef struct lstats {
    uint64_t invalid_utf8;
    char label_err[200]; /* the first label set a strict Loki refuses */
} lstats;

/* Decodes a push body by its Content-Type and Content-Encoding; 0, or -1
 * with the reason in err. */
int sl_lr_decode_body(const char *ctype, const char *cenc, const void *body, size_t n,
                      sl_lr_push *out, lstats *ls, char *err, size_t ecap);
void sl_lr_entry_free(sl_lr_entry *e);

#endif
