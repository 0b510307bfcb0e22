/* `sluice spool ls|stat|cat|verify|export`: read-only inspection of the
 * sinks' disk spools, safe beside a running agent (it takes no lock and
 * opens nothing for writing). */
#ifndef SLUICE_CLI_SPOOL_CMD_H
#define SLUICE_CLI_SPOOL_CMD_H

/* argv[0] is the subcommand. Returns the exit code: 0 ok, 1 corruption
 * found (verify) or an I/O failure, 2 usage or configuration error. */
int sl_cli_spool(int argc, char **argv);

#endif
