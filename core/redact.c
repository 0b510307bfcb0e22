#include "core/redact.h"

#include <ctype.h>
#include <string.h>

typedef struct rw {
    char *p;
    size_t len, cap;
} rw;

static void put(rw *w, const char *s, size_t n)
{
    size_t room = w->cap - 1 - w->len;
    if (n > room) n = room;
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

bool sl_redact_wanted(const char *s, size_t n)
{
    return n >= 3 && memmem(s, n, "://", 3) != NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether a parameter name says its value is a credential. Broad on
 * purpose: hiding a harmless value costs little, showing a token costs a
 * rotation. */
static bool secret_name(const char *s, size_t n)
{
    char low[256];
    if (n >= sizeof low) return false; /* no parameter name is that long */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        low[k++] = (char)tolower(c);
    }
    low[k] = '\0';
    static const char *const parts[] = {"token",     "secret",     "passw",     "pwd",
                                        "signature", "credential", "auth",      "apikey",
                                        "api_key",   "api-key",    "accesskey", "access_key",
                                        "private",   "jwt",        "session"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (strstr(low, parts[i])) return true;
    static const char *const exact[] = {"sig", "pass", "pw", "code"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcmp(low, exact[i]) == 0) return true;
    return k >= 3 && strcmp(low + k - 3, "key") == 0; /* key, x-api-key, subscription-key */
}

/* Characters that end a URL inside free text (log messages, errors). Not
 * '<' or '>': a URL already redacted holds "<redacted>". */
static bool url_end(char c)
{
    return c == '\0' || isspace((unsigned char)c) || c == '"' || c == '\'' || c == '`';
}

static void redact_into(rw *w, const char *s, size_t n, int depth);

/* name=value pairs separated by & or ; in s[0..n) with secret values
 * hidden. A value holding a URL of its own (?next=http://u:p@h/?a=b) takes
 * the rest of the part with it: '&' and ';' may belong to that URL's
 * userinfo or query, so it is redacted as a URL of its own. */
static void put_params(rw *w, const char *s, size_t n, int depth)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '&' && s[j] != ';') j++;
        const char *eq = memchr(s + i, '=', j - i);
        size_t name_n = eq ? (size_t)(eq - (s + i)) : j - i;
        if (sl_redact_wanted(s + i, name_n)) {
            redact_into(w, s + i, n - i, depth + 1); /* a URL, not a name */
            return;
        } else if (eq && secret_name(s + i, name_n)) {
            put(w, s + i, name_n);
            put(w, "=<redacted>", 11);
        } else if (sl_redact_wanted(s + i, n - i)) {
            redact_into(w, s + i, n - i, depth + 1);
            return;
        } else {
            put(w, s + i, j - i);
        }
        if (j < n) put(w, s + j, 1);
        i = j + 1;
    }
}

static bool scheme_char(char c)
{
    return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Deep enough for a URL in a parameter of a URL in a path; deeper nesting
 * is hidden whole. */
#define MAX_DEPTH 4

static void redact_into(rw *w, const char *s, size_t n, int depth)
{
    if (depth > MAX_DEPTH) {
        if (sl_redact_wanted(s, n))
            put(w, "<redacted>", 10);
        else
            put(w, s, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        const char *sep = n - i >= 3 ? memmem(s + i, n - i, "://", 3) : NULL;
        if (!sep) {
            put(w, s + i, n - i);
            break;
        }
        size_t a = (size_t)(sep - s) + 3; /* authority starts here */
        put(w, s + i, a - i);
        size_t end = a;
        while (end < n && !url_end(s[end])) end++;
        size_t auth_end = a;
        while (auth_end < end && s[auth_end] != '/' && s[auth_end] != '?' && s[auth_end] != '#' &&
               !(auth_end + 3 <= end && memcmp(s + auth_end, "://", 3) == 0))
            auth_end++;
        /* Another scheme starts inside this authority (a://b://u:p@h): this
         * URL ends before it, the next round takes that one. */
        bool nested = auth_end + 3 <= end && memcmp(s + auth_end, "://", 3) == 0;
        size_t auth_stop = auth_end;
        if (nested)
            while (auth_stop > a && scheme_char(s[auth_stop - 1])) auth_stop--;
        size_t at = auth_stop;
        for (size_t k = a; k < auth_stop; k++)
            if (s[k] == '@') at = k;
        if (at < auth_stop) {
            put(w, "<redacted>", 10);
            put(w, s + at, auth_stop - at);
        } else {
            put(w, s + a, auth_stop - a);
        }
        if (nested) {
            i = auth_stop;
            continue;
        }
        size_t q = auth_end;
        while (q < end && s[q] != '?' && s[q] != '#' &&
               !(q + 3 <= end && memcmp(s + q, "://", 3) == 0))
            q++;
        if (q + 3 <= end && memcmp(s + q, "://", 3) == 0) {
            /* A URL inside the path (http://proxy/http://u:p@h/): it is
             * taken from its scheme by the next round. */
            size_t ps = q;
            while (ps > auth_end && scheme_char(s[ps - 1])) ps--;
            put(w, s + auth_end, ps - auth_end);
            i = ps;
            continue;
        }
        put(w, s + auth_end, q - auth_end); /* the path */
        while (q < end) {                   /* ?query and #fragment */
            size_t part_end = q + 1;
            while (part_end < end && s[part_end] != '#') part_end++;
            put(w, s + q, 1);
            put_params(w, s + q + 1, part_end - q - 1, depth);
            q = part_end;
        }
        i = end;
    }
}

size_t sl_redact_text(char *out, size_t cap, const char *s, size_t n)
{
    if (cap == 0) return 0;
    rw w = {out, 0, cap};
    redact_into(&w, s, n, 0);
    out[w.len] = '\0';
    return w.len;
}

const char *sl_redact_url(char *out, size_t cap, const char *url)
{
    sl_redact_text(out, cap, url, strlen(url));
    return out;
}
