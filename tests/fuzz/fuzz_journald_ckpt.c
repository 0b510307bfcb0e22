/* The journald input's checkpoint decoder (collector/journald_ckpt.c) on
 * whatever a damaged or planted data_dir/checkpoints/<input>.journal
 * holds: never a crash; an accepted cursor is non-empty printable ASCII
 * shorter than CURSOR_MAX (it is handed to sd_journal_seek_cursor and
 * written into log lines unquoted), and its time hint is never more than
 * a day ahead of the clock (decision 0059). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/journald_internal.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cursor = (char *)1;
    uint64_t rt = 1;
    sl_err err;
    int rc = sl_jd_parse_checkpoint((const char *)data, size, &cursor, &rt, &err);
    if (rc != SL_OK) {
        if ((rc != SL_ECORRUPT && rc != SL_ENOMEM) || cursor) abort();
        return 0;
    }
    size_t n = strlen(cursor);
    if (n == 0 || n >= CURSOR_MAX) abort();
    for (size_t i = 0; i < n; i++)
        if (cursor[i] < 0x21 || cursor[i] > 0x7e) abort();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (rt > ((uint64_t)now.tv_sec + 86400) * 1000000u) abort();
    free(cursor);
    return 0;
}
