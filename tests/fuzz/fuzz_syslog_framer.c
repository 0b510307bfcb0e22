/* The RFC 6587 stream decoder of the syslog input: byte 0 picks the framing
 * mode, byte 1 the frame limit, byte 2 the read size; the rest is the
 * stream. Frames must stay within the limit and must not depend on how the
 * stream was split into reads (the same frames, flags and error as when fed
 * at once). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/syslog_framer.h"

#define MAX_FRAMES 4096

typedef struct seen {
    size_t max_frame;
    size_t n;
    uint64_t hash[MAX_FRAMES];
    uint32_t flags[MAX_FRAMES];
} seen;

static int on_frame(void *arg, sl_slice f, uint32_t flags)
{
    seen *s = arg;
    if (f.n > s->max_frame) abort();
    uint64_t h = 1469598103934665603ULL ^ f.n;
    for (size_t i = 0; i < f.n; i++) h = (h ^ (unsigned char)f.p[i]) * 1099511628211ULL;
    if (s->n < MAX_FRAMES) {
        s->hash[s->n] = h;
        s->flags[s->n] = flags;
    }
    s->n++;
    return 0;
}

static int run(const char *p, size_t n, int mode, size_t max_frame, size_t step, seen *s)
{
    sl_syslog_framer f;
    sl_syslog_framer_init(&f, mode, max_frame);
    s->max_frame = max_frame;
    int rc = SL_OK;
    for (size_t off = 0; off < n && rc == SL_OK; off += step) {
        size_t k = n - off < step ? n - off : step;
        rc = sl_syslog_framer_feed(&f, p + off, k, on_frame, s, NULL);
        if (sl_syslog_framer_held(&f) > max_frame + 9) abort();
    }
    if (rc == SL_OK) rc = sl_syslog_framer_finish(&f, on_frame, s, NULL);
    sl_syslog_framer_free(&f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int mode = data[0] % 3;
    size_t max_frame = 1 + data[1] % 64 * 8;
    size_t step = 1 + data[2] % 32;
    const char *p = (const char *)data + 3;
    size_t n = size - 3;
    static seen whole, pieces;
    memset(&whole, 0, sizeof whole);
    memset(&pieces, 0, sizeof pieces);
    int r1 = run(p, n, mode, max_frame, n ? n : 1, &whole);
    int r2 = run(p, n, mode, max_frame, step, &pieces);
    if (r1 != r2 || whole.n != pieces.n) abort();
    size_t m = whole.n < MAX_FRAMES ? whole.n : MAX_FRAMES;
    for (size_t i = 0; i < m; i++)
        if (whole.hash[i] != pieces.hash[i] || whole.flags[i] != pieces.flags[i]) abort();
    return 0;
}
