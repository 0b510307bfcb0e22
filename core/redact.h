/* Credentials in URLs, hidden wherever a URL may be printed: the agent's
 * own log lines (sl_log runs every value through sl_redact_text), the
 * resolved configuration and the errors `sluice check` prints. The userinfo
 * (`user:password@`) becomes `<redacted>@`, and the value of every query or
 * fragment parameter whose name says it is a credential (token,
 * access_token, key, api_key, apikey, password, secret, sig, signature,
 * credential, auth..., matched case-insensitively after %-decoding)
 * becomes `<redacted>`. Everything else is kept, so the host and path still
 * say where the agent sends. */
#ifndef SLUICE_CORE_REDACT_H
#define SLUICE_CORE_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) holds something sl_redact_text would look at (a
 * "scheme://"): the cheap test before copying. */
bool sl_redact_wanted(const char *s, size_t n);

/* s[0..n) with every URL in it redacted, into out (always NUL-terminated,
 * cut at cap - 1). Returns the length written. */
size_t sl_redact_text(char *out, size_t cap, const char *s, size_t n);

/* One URL (a NUL-terminated string), redacted into out; returns out. */
const char *sl_redact_url(char *out, size_t cap, const char *url);

#endif
