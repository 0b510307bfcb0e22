/* Timestamps: the fixed readers on the whole input, and the first line as
 * a strftime-style format applied to the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parsers/timestamp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    int64_t ns;
    size_t len;
    if (sl_ts_scan_rfc3339(p, size, &ns) > size) abort();
    sl_ts_parse_unix(p, size, SL_TS_UNIX_AUTO, &ns);
    sl_ts_parse_nginx(p, size, &ns);
    if (sl_ts_month(p, size, &len) && len > size) abort();
    const char *nl = memchr(p, '\n', size);
    if (!nl || nl - p > 64) return 0;
    char fmt[65];
    memcpy(fmt, p, (size_t)(nl - p));
    fmt[nl - p] = 0;
    if (memchr(fmt, 0, (size_t)(nl - p))) return 0;
    sl_ts_format *f = NULL;
    if (sl_ts_format_new(fmt, NULL, &f, NULL) != 0) return 0;
    sl_ts_format_parse(f, nl + 1, size - (size_t)(nl + 1 - p), 1736467200LL * 1000000000, &ns);
    sl_ts_format_free(f);
    return 0;
}
