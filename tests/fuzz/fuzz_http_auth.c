/* The Authorization check of net/http_auth.c, which sees what any client
 * sends (loki_push): input is "expected\0given". Properties: a value always
 * matches itself, and matches another only when the schemes agree without
 * case and the credentials are the same bytes; nothing reads past either
 * string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    const char *expected = buf, *given = buf + strlen(buf) + 1;
    bool m = sl_http_auth_matches(expected, given);
    const char *es = strchr(expected, ' '), *gs = strchr(given, ' ');
    bool want = es && gs && es - expected == gs - given &&
                strncasecmp(expected, given, (size_t)(es - expected)) == 0 &&
                strcmp(es + 1, gs + 1) == 0;
    if (m != want) abort();
    if (es && !sl_http_auth_matches(expected, expected)) abort();
    free(buf);
    return 0;
}
