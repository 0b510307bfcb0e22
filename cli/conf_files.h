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
    /* Variables of site.env (and SLUICE_HOST's default), pointing into
     * env_text or host; given to each configuration by sl_conf_apply. */
    char *env_text;
    char host[256];
    const char **var_names, **var_values;
    size_t nvars, cap_vars;
} sl_conf_files;

/* Fills the directory names (from SLUICE_CONFIG_DIR or the default). */
void sl_conf_init(sl_conf_files *f);
/* Adds the directory's *.yml files in the defined order. An error when the
 * directory cannot be read or holds no *.yml file. */
int sl_conf_find(sl_conf_files *f, sl_err *err);
void sl_conf_free(sl_conf_files *f);

/* Parses NAME=value lines in place (systemd EnvironmentFile syntax: `#`
 * and `;` comments, blank lines, optional single or double quotes) and
 * calls fn for each with a non-empty value (an empty one counts as unset).
 * text is NUL-terminated at len. A malformed line or a NUL byte is an
 * error naming path:line; so is fn's non-zero return. */
typedef int (*sl_conf_var_fn)(void *arg, const char *name, const char *value);
int sl_conf_parse_env(char *text, size_t len, const char *path, sl_conf_var_fn fn, void *arg,
                      sl_err *err);

/* Reads path into f's variables. A missing file is fine when !required;
 * an unreadable one or a malformed line is an error. */
int sl_conf_read_env(sl_conf_files *f, const char *path, bool required, sl_err *err);

/* Gives f's variables to cfg (sl_cfg_add_var): ${NAME} uses them when the
 * process environment has no NAME. Call before loading. */
int sl_conf_apply(const sl_conf_files *f, sl_cfg *cfg);

/* What every command does first: sl_conf_init, then the variables of
 * site.env (an unreadable file is an error when the defaults are used, a
 * warning beside -c), then SLUICE_HOST from the host name when neither the
 * environment nor site.env sets it (the unit runs the same code, so both
 * agree). Nothing touches the process environment, so a reload (SIGHUP)
 * reads site.env afresh. Messages go to stderr; returns 0 or -1. */
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
