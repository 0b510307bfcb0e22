/* The files the service and the command line agree on (decision 0020):
 * /etc/sluice/base.yml first, then every other *.yml of /etc/sluice in byte
 * order of its name, and the variables of /etc/sluice/site.env. The unit
 * runs `sluice run` with no -c, so it reads exactly what `sluice check` and
 * `sluice spool ...` read from an operator's shell. SLUICE_CONFIG_DIR
 * replaces /etc/sluice (tests, staging trees). */
#ifndef SLUICE_CLI_CONF_FILES_H
#define SLUICE_CLI_CONF_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

#define SL_CONF_DIR_DEFAULT "/etc/sluice"
/* At most this many configuration files, given or found. */
#define SL_CONF_MAX_FILES 16

typedef struct sl_conf_files {
    char dir[1024];      /* the configuration directory */
    char site_env[1100]; /* dir/site.env */
    char *paths[SL_CONF_MAX_FILES];
    size_t n;
} sl_conf_files;

/* Fills the directory names (from SLUICE_CONFIG_DIR or the default). */
void sl_conf_init(sl_conf_files *f);
/* Adds the directory's *.yml files in the defined order. An error when the
 * directory cannot be read or holds no *.yml file. */
int sl_conf_find(sl_conf_files *f, sl_err *err);
void sl_conf_free(sl_conf_files *f);

/* Reads KEY=VALUE lines (systemd EnvironmentFile syntax: `#` comments,
 * optional single or double quotes) and sets each variable the environment
 * does not already have: the process environment wins, as it does for a
 * unit's Environment= over nothing. A missing file is fine when !required;
 * an unreadable one or a malformed line is an error naming file:line. */
int sl_conf_read_env(const char *path, bool required, sl_err *err);

/* What every command does first: sl_conf_init, then the variables of
 * site.env (an unreadable file is an error when the defaults are used, a
 * warning beside -c), then SLUICE_HOST from the host name when unset (the
 * unit runs the same code, so both agree). Messages go to stderr; returns
 * 0 or -1. */
int sl_conf_prepare(sl_conf_files *f, bool defaults);

/* Records an error for each relative path in the configuration (data_dir,
 * inputs' paths/exclude/directory, a sink's path, every *_file key) unless
 * the top level says `dev: true`: the unit runs with cwd / and a read-only
 * root, where a relative path names nothing. Returns the number found. */
int sl_conf_check_paths(sl_cfg *cfg);

/* `sluice check` only: warnings (to stderr) for file input globs that match
 * nothing now, and errors when data_dir is neither a writable directory nor
 * creatable. Returns the number of errors recorded. */
int sl_conf_check_host(sl_cfg *cfg, int *warnings);

#endif
