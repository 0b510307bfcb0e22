/* `sluice run --dry-run --stdin --input NAME`: lines from standard input go
 * through that input's framing (multiline) and parse steps and come out as
 * JSON records (time, line, fields, labels) — the same view `run --dry-run`
 * prints, without opening any file of the input, any checkpoint, any sink
 * or anything under data_dir. For trying a parse configuration against
 * sample lines next to a live agent. */
#ifndef SLUICE_CLI_DRYRUN_CMD_H
#define SLUICE_CLI_DRYRUN_CMD_H

#include <stdio.h>

#include "core/config.h"
#include "core/err.h"

/* cfg has passed sl_agent_check. Reads fd to its end; prints one JSON
 * object per record on out. SL_EINVAL: no input of that name. */
int sl_dryrun_stdin(sl_cfg *cfg, const char *input, int fd, FILE *out, sl_err *err);

#endif
