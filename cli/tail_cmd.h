/* `sluice tail`: follows what the local agent ships, through the tap's
 * GET /tail on tap.listen (bearer token from the tap section), and prints
 * the records as JSON lines. The agent copies records for it into a lossy
 * ring, so tailing never slows delivery; records it had to skip are
 * reported on stderr. */
#ifndef SLUICE_CLI_TAIL_CMD_H
#define SLUICE_CLI_TAIL_CMD_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

#define SL_TAIL_MAX_LABELS 8

typedef struct sl_tail_opts {
    const char *listen; /* tap.listen of the agent: host:port, [v6]:port, :port */
    const char *token;  /* the tap's bearer token */
    const char *match;  /* PCRE2 pattern on the record's line, or NULL */
    const char *labels[SL_TAIL_MAX_LABELS]; /* "key=value", all must hold */
    size_t nlabels;
} sl_tail_opts;

/* Streams until the agent closes the connection (SL_ECLOSED) or writing
 * to out fails (SL_EIO). Connection and request errors return their code
 * with a message in err. */
int sl_tail_run(const sl_tail_opts *o, FILE *out, sl_err *err);

#endif
