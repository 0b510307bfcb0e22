/* Error codes and messages. Functions return 0 or a negative SL_E* code and,
 * where they take an sl_err, fill a human-readable message. */
#ifndef SLUICE_CORE_ERR_H
#define SLUICE_CORE_ERR_H

enum {
    SL_OK = 0,
    SL_EINVAL = -1,    /* bad argument or configuration */
    SL_ENOMEM = -2,    /* allocation failed or a configured bound was hit */
    SL_EIO = -3,       /* read/write/syscall failure */
    SL_EAGAIN = -4,    /* try again later (non-blocking) */
    SL_ETIMEDOUT = -5, /* a deadline passed */
    SL_ECLOSED = -6,   /* the queue or component was closed */
    SL_EPARSE = -7,    /* input did not parse */
    SL_EFULL = -8,     /* a bounded buffer is full */
    SL_ENOSPC = -9,    /* disk full */
    SL_ECORRUPT = -10, /* checksum or format mismatch */
    SL_ENOENT = -11,   /* not found */
};

typedef struct sl_err {
    int code;
    char msg[512];
} sl_err;

/* Fills e (when non-NULL) and returns code, so callers can `return sl_errf(...)`. */
int sl_errf(sl_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *sl_strerror(int code);

#endif
