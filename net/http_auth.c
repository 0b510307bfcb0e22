#include "net/http_auth.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

const sl_cfg_key sl_http_auth_keys[SL_HTTP_AUTH_NKEYS] = {
    {.name = "username",
     .type = SL_KEY_STR,
     .at = SL_CFG_AT(sl_http_auth, user),
     .doc = "basic auth user"},
    {.name = "password",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "basic auth password (prefer `password_file`)"},
    {.name = "password_file", .type = SL_KEY_STR, .doc = "file holding the password"},
    {.name = "bearer_token",
     .type = SL_KEY_STR,
     .secret = true,
     .doc = "bearer token (prefer `bearer_token_file`)"},
    {.name = "bearer_token_file", .type = SL_KEY_STR, .doc = "file holding the bearer token"},
};

int sl_http_auth_read(sl_cfg *cfg, const sl_cfg_node *map, enum sl_http_auth_role role,
                      sl_http_auth *out)
{
    *out = (sl_http_auth){0};
    if (!map) return SL_OK;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, map, sl_http_auth_keys, SL_HTTP_AUTH_NKEYS, out);
    sl_cfg_secret(cfg, map, "password", &out->password);
    sl_cfg_secret(cfg, map, "bearer_token", &out->bearer_token);
    bool basic = out->user || out->password;
    if (basic && out->bearer_token)
        sl_cfg_error(cfg, map, "auth: use either username/password or bearer_token");
    if (out->password && !out->user) sl_cfg_error(cfg, map, "auth: password needs a username");
    if (role == SL_HTTP_AUTH_SERVER) {
        if (out->user && !out->password)
            sl_cfg_error(cfg, map, "auth: username and password go together");
        if (!basic && !out->bearer_token)
            sl_cfg_error(cfg, map, "auth: needs username/password or bearer_token");
    }
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

static int basic_value(const char *user, const char *password, char **out)
{
    size_t nu = strlen(user), np = strlen(password);
    char *up = malloc(nu + 1 + np);
    if (!up) return SL_ENOMEM;
    memcpy(up, user, nu);
    up[nu] = ':';
    memcpy(up + nu + 1, password, np);
    gnutls_datum_t in = {(unsigned char *)up, (unsigned)(nu + 1 + np)}, b64 = {0};
    int grc = gnutls_base64_encode2(&in, &b64);
    explicit_bzero(up, nu + 1 + np);
    free(up);
    if (grc < 0) return SL_ENOMEM;
    char *v = malloc(sizeof "Basic " + b64.size);
    if (v) {
        memcpy(v, "Basic ", 6);
        memcpy(v + 6, b64.data, b64.size);
        v[6 + b64.size] = '\0';
    }
    explicit_bzero(b64.data, b64.size);
    gnutls_free(b64.data);
    *out = v;
    return v ? SL_OK : SL_ENOMEM;
}

int sl_http_auth_header(const sl_http_auth *a, char **out)
{
    *out = NULL;
    if (a->user) return basic_value(a->user, a->password ? a->password : "", out);
    if (!a->bearer_token) return SL_OK;
    size_t n = strlen(a->bearer_token);
    char *v = malloc(sizeof "Bearer " + n);
    if (!v) return SL_ENOMEM;
    memcpy(v, "Bearer ", 7);
    memcpy(v + 7, a->bearer_token, n + 1);
    *out = v;
    return SL_OK;
}

/* The credentials' digests are compared, so neither the position of the
 * first difference nor the lengths show in the time taken. */
bool sl_http_auth_matches(const char *expected, const char *given)
{
    if (!expected) return true;
    if (!given) return false;
    const char *es = strchr(expected, ' '), *gs = strchr(given, ' ');
    if (!es || !gs || es - expected != gs - given ||
        strncasecmp(expected, given, (size_t)(es - expected)) != 0)
        return false;
    unsigned char de[32], dg[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, es + 1, strlen(es + 1), de) < 0 ||
        gnutls_hash_fast(GNUTLS_DIG_SHA256, gs + 1, strlen(gs + 1), dg) < 0)
        return false;
    return gnutls_memcmp(de, dg, sizeof de) == 0;
}

void sl_http_auth_free(sl_http_auth *a)
{
    if (a->password) explicit_bzero(a->password, strlen(a->password));
    if (a->bearer_token) explicit_bzero(a->bearer_token, strlen(a->bearer_token));
    free(a->password);
    free(a->bearer_token);
    *a = (sl_http_auth){0};
}
