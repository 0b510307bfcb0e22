/* The tap: `GET /tail?match=RE&label=k=v` streams the records the agent
 * routes as JSON lines, for `sluice tail`. Off unless the configuration
 * has a `tap:` section; then on its own listener (default 127.0.0.1:9881,
 * never the metrics one), and every request needs
 * `Authorization: Bearer <token>` (token from tap.token_file or the
 * variable named by tap.token_env).
 *
 * Inputs copy their batches into a bounded, lossy ring (a contended ring
 * loses the batch for the tap; the pipeline never waits). Each tail client
 * is served by its own thread, which reads the ring and runs the match
 * (PCRE2, no JIT, with match, depth and heap limits) outside any lock the
 * pipeline takes: a costly pattern or a slow reader only makes that client
 * skip records, counted in sluice_tap_dropped_records_total. */
#ifndef SLUICE_CLI_HTTP_TAP_H
#define SLUICE_CLI_HTTP_TAP_H

#include <stdbool.h>
#include <stdio.h>

#include "core/batch.h"
#include "core/config.h"
#include "core/err.h"

#define SL_TAP_DEFAULT_LISTEN "127.0.0.1:9881"

typedef struct sl_http_tap sl_http_tap;

typedef struct sl_http_tap_opts {
    const char *listen; /* host:port; NULL: SL_TAP_DEFAULT_LISTEN */
    const char *token;  /* bearer token every request must carry; required */
} sl_http_tap_opts;

int sl_http_tap_start(const sl_http_tap_opts *o, sl_http_tap **out, sl_err *err);
int sl_http_tap_port(const sl_http_tap *t);
/* Ends every stream and joins the client threads (each notices within
 * 100 ms, or after the match in progress, itself bounded). NULL is fine. */
void sl_http_tap_stop(sl_http_tap *t);

/* True while some client tails; NULL is fine. */
bool sl_http_tap_active(const sl_http_tap *t);
/* Called on an input's thread after parsing; reads b, keeps nothing of it,
 * never blocks. A no-op while nobody tails. */
void sl_http_tap_publish(sl_http_tap *t, const sl_batch *b);

/* The `tap:` section (node may be NULL: the tap is off). Validates what the
 * key table cannot: the listen address and one token source. */
void sl_http_tap_check_config(sl_cfg *cfg, const sl_cfg_node *node);
/* Warnings for `sluice check` (a tap on a non-loopback address), one line
 * each on out. Returns how many. */
int sl_http_tap_warnings(sl_cfg *cfg, const sl_cfg_node *node, FILE *out);
/* Resolves listen (default applied; points into cfg) and reads the token
 * (malloc'ed, caller frees). SL_EINVAL with a message when the token is
 * missing or empty. */
int sl_http_tap_settings(sl_cfg *cfg, const sl_cfg_node *node, const char **listen, char **token,
                         sl_err *err);

#endif
