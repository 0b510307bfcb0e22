/* HTTP basic and bearer auth, one reading for both sides: the `auth:` map's
 * key table (username, password | password_file, bearer_token |
 * bearer_token_file), its secrets read from the value or the file, the
 * Authorization value it stands for, and the constant-time check a server
 * makes of what a client sent. The Loki sink (client) and the loki_push
 * input (server) use it. See docs/decisions/0036-http-auth-module.md. */
#ifndef SLUICE_NET_HTTP_AUTH_H
#define SLUICE_NET_HTTP_AUTH_H

#include <stdbool.h>

#include "core/config.h"

/* What an `auth:` map holds. user points into the configuration tree;
 * password and bearer_token are the caller's (malloc'd; free them, or
 * sl_http_auth_free zeroes and frees both). */
typedef struct sl_http_auth {
    const char *user;
    char *password;
    char *bearer_token;
} sl_http_auth;

#define SL_HTTP_AUTH_NKEYS 5
/* The keys of the `auth:` map, for a parent key's .sub (README tables). */
extern const sl_cfg_key sl_http_auth_keys[SL_HTTP_AUTH_NKEYS];

/* A client may send a user with an empty password; a server checking
 * senders needs a password with a user, and one scheme at all when the map
 * is given. */
enum sl_http_auth_role { SL_HTTP_AUTH_CLIENT, SL_HTTP_AUTH_SERVER };

/* Reads map (NULL: no auth, *out all NULL). What is wrong is recorded on
 * cfg, prefixed "auth: "; returns SL_OK or SL_EINVAL (out is then still
 * filled as far as it went, to be freed). */
int sl_http_auth_read(sl_cfg *cfg, const sl_cfg_node *map, enum sl_http_auth_role role,
                      sl_http_auth *out);
/* The Authorization header's value: "Basic base64(user:password)" or
 * "Bearer token"; *out NULL without auth. SL_ENOMEM. The caller frees it
 * (it is a credential: zero it first). */
int sl_http_auth_header(const sl_http_auth *a, char **out);
/* True when given (a request's Authorization value, may be NULL) is
 * expected (from sl_http_auth_header; NULL: no auth, anything passes):
 * the scheme compared without case
 * (RFC 9110), the credentials in time that does not depend on where they
 * differ or on their lengths. */
bool sl_http_auth_matches(const char *expected, const char *given);
/* Zeroes the secrets and frees them. */
void sl_http_auth_free(sl_http_auth *a);

#endif
