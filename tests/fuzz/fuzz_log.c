/* Fuzz target for the agent's own log lines: hostile values through
 * sl_log_format (core/log.c) and text through sl_redact_text
 * (core/redact.c). Properties (abort on violation):
 *   - a line never holds a control character, a C1 control or U+2028/2029
 *     (no value starts a line, in a terminal or a log viewer either);
 *   - the line reads back as exactly the keys the format wrote (a=, b=,
 *     c=): no value forges a key;
 *   - redaction is bounded by cap and idempotent;
 *   - after redaction no userinfo is left before an '@' in a URL's
 *     authority. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/redact.h"

static size_t line_of(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t line_of(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = sl_log_format(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

/* logfmt keys of line, in order, joined by ','. */
static void keys_of(const char *line, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = line;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ') p++;
        if (o + (size_t)(p - k) + 2 < cap) {
            if (o) out[o++] = ',';
            memcpy(out + o, k, (size_t)(p - k));
            o += (size_t)(p - k);
        }
        if (*p != '=') continue;
        p++;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
        } else {
            while (*p && *p != ' ') p++;
        }
    }
    out[o] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    /* three values: the input split at its first two NULs */
    char *v = malloc(size + 3);
    memcpy(v, data, size);
    v[size] = v[size + 1] = v[size + 2] = '\0';
    const char *a = v, *b = a + strlen(a) + 1;
    if (b > v + size) b = v + size + 1;
    const char *c = b + strlen(b) + 1;
    if (c > v + size + 1) c = v + size + 2;

    static char line[1 << 17];
    size_t n = line_of(line, sizeof line, "a=%s b=\"%s\" c=%.*s", a, b, 64, c);
    if (n >= sizeof line || strlen(line) != n) abort();
    const unsigned char *u = (const unsigned char *)line;
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) abort();
        if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) abort(); /* C1 */
        if (u[i] == 0xe2 && i + 2 < n && u[i + 1] == 0x80 && (u[i + 2] | 1) == 0xa9) abort();
    }
    char keys[64];
    keys_of(line, keys, sizeof keys);
    if (strcmp(keys, "a,b,c") != 0) {
        fprintf(stderr, "keys '%s' in: %s\n", keys, line);
        abort();
    }

    static char r1[1 << 15], r2[1 << 15];
    size_t n1 = sl_redact_text(r1, sizeof r1, (const char *)data, size);
    if (n1 >= sizeof r1) abort();
    size_t n2 = sl_redact_text(r2, sizeof r2, r1, n1);
    if (n1 < sizeof r1 - 1 && (n2 != n1 || memcmp(r1, r2, n1) != 0)) {
        fprintf(stderr, "not idempotent:\n%.*s\n%.*s\n", (int)n1, r1, (int)n2, r2);
        abort();
    }
    /* every "://" is followed by an authority whose '@' (if any) comes
     * right after "<redacted>" */
    for (const char *p = r1; (p = memmem(p, (size_t)(r1 + n1 - p), "://", 3)); p += 3) {
        const char *h = p + 3, *e = h;
        while (e < r1 + n1 && !strchr("/?# \t\r\n\f\v\"'`", *e)) e++;
        const char *at = NULL;
        for (const char *q = h; q < e; q++)
            if (*q == '@') at = q;
        if (at && (at - h != 10 || memcmp(h, "<redacted>", 10) != 0)) {
            fprintf(stderr, "userinfo left: %.*s\n", (int)(e - p), p);
            abort();
        }
    }
    free(v);
    return 0;
}
