/* `sluice keys`: every configuration key of the agent — the top level,
 * each registered input, parse step and sink, every sink's buffer — with
 * its type, default and one line of doc, printed from the plugins' key
 * tables (the same tables `sluice check` checks against). With --markdown,
 * the README's key tables, each between markers that
 * tests/ops/test_readme_keys.py holds the README to. */
#ifndef SLUICE_CLI_KEYS_CMD_H
#define SLUICE_CLI_KEYS_CMD_H

#include <stdio.h>

/* argv after "keys". Exit status: 0, 1 when a table is broken (a key
 * without a doc, a default that does not parse: printed on stderr), 2 on
 * a usage error. */
int sl_cli_keys(int argc, char **argv, FILE *out);

#endif
