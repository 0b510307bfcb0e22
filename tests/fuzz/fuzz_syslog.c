/* Syslog: the input as one message and as an RFC 6587 stream of frames;
 * each record the step made must give valid JSON (recjson_valid.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "parsers/syslog.h"
#include "tests/fuzz/recjson_valid.h"

static void message(sl_batch *b, const char *p, size_t n)
{
    static const sl_syslog_opts o = {1736467200LL * 1000000000, NULL};
    sl_syslog_msg m;
    if (sl_syslog_parse(p, n, &o, &m, NULL) == 0) {
        if (m.msg.p < p || m.msg.p + m.msg.n > p + n) abort();
        sl_syslog_param prm[16];
        size_t np = sl_syslog_sd_params(m.sd, prm, 16);
        for (size_t i = 0; i < np && i < 16; i++) {
            if (prm[i].value.n && (prm[i].value.p < p || prm[i].value.p + prm[i].value.n > p + n))
                abort();
            char *u = malloc(prm[i].value.n + 1);
            if (u && sl_syslog_sd_unescape(prm[i].value, u) > prm[i].value.n) abort();
            free(u);
        }
    }
    sl_record r = {.line = {p, n}};
    sl_syslog_parse_record(b, &r, r.line, &o, NULL);
    fuzz_recjson_valid(b, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    sl_batch *b = sl_batch_new(1);
    if (!b) return 0;
    message(b, p, size);
    size_t off = 0;
    while (off < size) {
        sl_slice msg;
        size_t used;
        if (sl_syslog_frame(p + off, size - off, 4096, &msg, &used) != 0) break;
        if (used == 0 || used > size - off) abort();
        message(b, msg.p, msg.n);
        off += used;
    }
    sl_batch_unref(b);
    return 0;
}
