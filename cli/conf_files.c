#include "cli/conf_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"

/* site.env is a few lines; anything larger is not one. */
#define ENV_FILE_MAX (1u << 20)

void sl_conf_init(sl_conf_files *f)
{
    memset(f, 0, sizeof *f);
    const char *dir = getenv("SLUICE_CONFIG_DIR");
    if (!dir || !*dir) dir = SL_CONF_DIR_DEFAULT;
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    size_t n = strlen(f->dir);
    while (n > 1 && f->dir[n - 1] == '/') f->dir[--n] = '\0';
    snprintf(f->site_env, sizeof f->site_env, "%s/site.env", f->dir);
}

void sl_conf_free(sl_conf_files *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->paths[i]);
    f->n = 0;
    free(f->env_text);
    free(f->var_names);
    free(f->var_values);
    f->env_text = NULL;
    f->var_names = f->var_values = NULL;
    f->nvars = f->cap_vars = 0;
}

static int add_var(void *arg, const char *name, const char *value)
{
    sl_conf_files *f = arg;
    for (size_t i = 0; i < f->nvars; i++)
        if (!strcmp(f->var_names[i], name)) {
            f->var_values[i] = value; /* a later line wins, as in systemd */
            return 0;
        }
    if (f->nvars == f->cap_vars) {
        size_t cap = f->cap_vars ? f->cap_vars * 2 : 16;
        const char **n = realloc(f->var_names, cap * sizeof *n);
        if (!n) return SL_ENOMEM;
        f->var_names = n;
        const char **v = realloc(f->var_values, cap * sizeof *v);
        if (!v) return SL_ENOMEM;
        f->var_values = v;
        f->cap_vars = cap;
    }
    f->var_names[f->nvars] = name;
    f->var_values[f->nvars++] = value;
    return 0;
}

int sl_conf_apply(const sl_conf_files *f, sl_cfg *cfg)
{
    for (size_t i = 0; i < f->nvars; i++)
        if (sl_cfg_add_var(cfg, f->var_names[i], f->var_values[i]) != 0) return SL_ENOMEM;
    return SL_OK;
}

static int by_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    const char *bx = strrchr(x, '/'), *by = strrchr(y, '/');
    bx = bx ? bx + 1 : x, by = by ? by + 1 : y;
    bool xb = strcmp(bx, "base.yml") == 0, yb = strcmp(by, "base.yml") == 0;
    if (xb != yb) return xb ? -1 : 1;
    return strcmp(bx, by);
}

int sl_conf_find(sl_conf_files *f, sl_err *err)
{
    DIR *d = opendir(f->dir);
    if (!d)
        return sl_errf(err, SL_EIO,
                       "no configuration given (-c FILE) and cannot read %s: %s (install the "
                       "package, run deploy/deploy.sh, or set SLUICE_CONFIG_DIR)",
                       f->dir, strerror(errno));
    int rc = SL_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".yml") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (f->n == SL_CONF_MAX_FILES) {
            rc = sl_errf(err, SL_EINVAL, "%s: more than %d *.yml files", f->dir, SL_CONF_MAX_FILES);
            break;
        }
        if (!(f->paths[f->n] = strdup(path))) {
            rc = sl_errf(err, SL_ENOMEM, "out of memory");
            break;
        }
        f->n++;
    }
    closedir(d);
    if (rc == SL_OK && f->n == 0)
        rc = sl_errf(err, SL_ENOENT,
                     "no configuration given (-c FILE) and no *.yml in %s (install the package, "
                     "run deploy/deploy.sh, or set SLUICE_CONFIG_DIR)",
                     f->dir);
    if (rc != SL_OK) {
        sl_conf_free(f);
        return rc;
    }
    qsort(f->paths, f->n, sizeof *f->paths, by_name);
    return SL_OK;
}

/* One value: trimmed, unquoted ('...' literal, "..." with \" \\ \$ escapes
 * as systemd reads them). Returns false when a quote is not closed. */
static bool env_value(char *v, char **out)
{
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) v[--n] = '\0';
    if (n && (v[0] == '"' || v[0] == '\'')) {
        char q = v[0];
        if (n < 2 || v[n - 1] != q) return false;
        v[n - 1] = '\0';
        v++;
        if (q == '"') {
            char *w = v;
            for (char *r = v; *r; r++) {
                if (*r == '\\' && (r[1] == '"' || r[1] == '\\' || r[1] == '$')) r++;
                *w++ = *r;
            }
            *w = '\0';
        }
    }
    *out = v;
    return true;
}

int sl_conf_parse_env(char *text, size_t len, const char *path, sl_conf_var_fn fn, void *arg,
                      sl_err *err)
{
    if (memchr(text, '\0', len))
        return sl_errf(err, SL_EINVAL, "%s: contains a NUL byte (not a text file)", path);
    int lineno = 0;
    for (char *line = text, *next; line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        while (*line == ' ' || *line == '\t') line++;
        if (!*line || *line == '#' || *line == ';' || !strcmp(line, "\r")) continue;
        char *eq = strchr(line, '=');
        size_t klen = eq ? (size_t)(eq - line) : 0;
        while (klen && (line[klen - 1] == ' ' || line[klen - 1] == '\t')) klen--;
        bool ok = klen > 0 && (isalpha((unsigned char)line[0]) || line[0] == '_');
        for (size_t i = 0; ok && i < klen; i++)
            ok = isalnum((unsigned char)line[i]) || line[i] == '_';
        char *value = NULL;
        if (ok) {
            line[klen] = '\0';
            ok = env_value(eq + 1, &value);
        }
        if (!ok)
            return sl_errf(err, SL_EINVAL, "%s:%d: expected NAME=value (a # starts a comment)",
                           path, lineno);
        if (*value && fn(arg, line, value) != 0)
            return sl_errf(err, SL_ENOMEM, "%s:%d: out of memory", path, lineno);
    }
    return SL_OK;
}

int sl_conf_read_env(sl_conf_files *f, const char *path, bool required, sl_err *err)
{
    size_t len;
    sl_err rerr;
    free(f->env_text);
    f->env_text = NULL;
    if (sl_read_file(path, ENV_FILE_MAX, &f->env_text, &len, &rerr) != SL_OK) {
        f->env_text = NULL;
        if (!required && access(path, F_OK) != 0 && errno == ENOENT) return SL_OK;
        bool denied = access(path, F_OK) == 0 && access(path, R_OK) != 0;
        return sl_errf(err, SL_EIO, "cannot read %s: %s%s", path, rerr.msg,
                       denied ? " (it may hold secrets: run as root or as a member of the "
                                "group sluice)"
                              : "");
    }
    return sl_conf_parse_env(f->env_text, len, path, add_var, f, err);
}

int sl_conf_prepare(sl_conf_files *f, bool defaults)
{
    sl_conf_init(f);
    sl_err err = {0};
    if (sl_conf_read_env(f, f->site_env, false, &err) != SL_OK) {
        if (defaults) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            sl_conf_free(f);
            return SL_EINVAL;
        }
        fprintf(stderr, "sluice: warning: %s; its variables are not set\n", err.msg);
        f->nvars = 0;
    }
    bool have_host = getenv("SLUICE_HOST") != NULL;
    for (size_t i = 0; i < f->nvars && !have_host; i++)
        have_host = !strcmp(f->var_names[i], "SLUICE_HOST");
    if (!have_host && gethostname(f->host, sizeof f->host) == 0) {
        f->host[sizeof f->host - 1] = '\0';
        if (add_var(f, "SLUICE_HOST", f->host) != 0) {
            sl_conf_free(f);
            return SL_ENOMEM;
        }
    }
    return 0;
}

static bool relative(const char *p)
{
    return p && *p && p[0] != '/';
}

static int path_error(sl_cfg *cfg, const sl_cfg_node *n, const char *key)
{
    sl_cfg_error(cfg, n,
                 "'%s' is a relative path ('%s'), which names nothing for the service (it runs "
                 "in /, on a read-only root); give an absolute path, or set `dev: true` at the "
                 "top of a development configuration",
                 key, n->scalar);
    return 1;
}

static bool path_key(const char *k)
{
    static const char *const keys[] = {"data_dir", "paths", "exclude", "directory", "path"};
    size_t n = strlen(k);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i])) return true;
    return n > 5 && !strcmp(k + n - 5, "_file");
}

/* An input's or a sink's keys, and their nested maps (auth, tls); parse
 * steps and labels hold no paths. */
static int walk_paths(sl_cfg *cfg, const sl_cfg_node *map)
{
    int found = 0;
    if (!map || map->kind != SL_CFG_MAP) return 0;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i];
        const sl_cfg_node *v = map->items[i];
        if (!strcmp(k, "parse") || !strncmp(k, "labels", 6) || !strcmp(k, "librdkafka")) continue;
        if (v->kind == SL_CFG_MAP) {
            found += walk_paths(cfg, v);
        } else if (path_key(k) && v->kind == SL_CFG_SCALAR && relative(v->scalar)) {
            found += path_error(cfg, v, k);
        } else if (path_key(k) && v->kind == SL_CFG_SEQ) {
            for (size_t j = 0; j < v->n; j++)
                if (v->items[j]->kind == SL_CFG_SCALAR && relative(v->items[j]->scalar))
                    found += path_error(cfg, v->items[j], k);
        }
    }
    return found;
}

int sl_conf_check_paths(sl_cfg *cfg)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const sl_cfg_node *dev = sl_cfg_get(root, "dev");
    if (dev && dev->kind == SL_CFG_SCALAR &&
        (!strcmp(dev->scalar, "true") || !strcmp(dev->scalar, "yes") || !strcmp(dev->scalar, "on")))
        return 0;
    int found = 0;
    const sl_cfg_node *dd = sl_cfg_get(root, "data_dir");
    if (dd && dd->kind == SL_CFG_SCALAR && relative(dd->scalar))
        found += path_error(cfg, dd, "data_dir");
    const char *lists[] = {"inputs", "sinks"};
    for (size_t l = 0; l < 2; l++) {
        const sl_cfg_node *seq = sl_cfg_get(root, lists[l]);
        for (size_t i = 0; seq && seq->kind == SL_CFG_SEQ && i < seq->n; i++)
            found += walk_paths(cfg, seq->items[i]);
    }
    return found;
}

static void warn_at(const sl_cfg_node *n, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s:%d:%d: warning: ", n->file, n->line, n->col);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

static int check_globs(const sl_cfg_node *input)
{
    const sl_cfg_node *type = sl_cfg_get(input, "type"), *paths = sl_cfg_get(input, "paths");
    const sl_cfg_node *name = sl_cfg_get(input, "name");
    if (!type || type->kind != SL_CFG_SCALAR || strcmp(type->scalar, "file") || !paths) return 0;
    const sl_cfg_node *one[1] = {paths};
    const sl_cfg_node *const *items = paths->kind == SL_CFG_SEQ ? paths->items : one;
    size_t n = paths->kind == SL_CFG_SEQ ? paths->n : 1;
    int warnings = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->kind != SL_CFG_SCALAR) continue;
        glob_t g;
        int rc = glob(items[i]->scalar, GLOB_NOSORT, NULL, &g);
        if (rc == GLOB_NOMATCH) {
            warn_at(items[i],
                    "'%s' of input '%s' matches no file now (it is read once one appears)",
                    items[i]->scalar, name && name->kind == SL_CFG_SCALAR ? name->scalar : "?");
            warnings++;
        }
        if (rc == 0 || rc == GLOB_NOMATCH) globfree(&g);
    }
    return warnings;
}

static int check_data_dir(sl_cfg *cfg, const sl_cfg_node *at, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            sl_cfg_error(cfg, at, "data_dir '%s' is not a directory", dir);
            return 1;
        }
        /* Writable by us, or by its owner (the service user, when an
         * operator checks a 0700 directory owned by sluice). */
        if (access(dir, W_OK | X_OK) == 0 ||
            (st.st_uid != geteuid() && (st.st_mode & S_IRWXU) == S_IRWXU))
            return 0;
        sl_cfg_error(cfg, at, "data_dir '%s' is not writable (owner uid %u, mode %04o)", dir,
                     (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return 1;
    }
    if (errno != ENOENT) {
        sl_cfg_error(cfg, at, "data_dir '%s': %s", dir, strerror(errno));
        return 1;
    }
    /* Creatable: the nearest existing ancestor is a directory we can write. */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    for (;;) {
        char *slash = strrchr(parent, '/');
        if (!slash) {
            snprintf(parent, sizeof parent, ".");
        } else if (slash == parent) {
            parent[1] = '\0';
        } else {
            *slash = '\0';
        }
        if (stat(parent, &st) == 0) break;
        if (errno != ENOENT || !strcmp(parent, "/") || !strcmp(parent, ".")) {
            sl_cfg_error(cfg, at, "data_dir '%s' cannot be created: %s: %s", dir, parent,
                         strerror(errno));
            return 1;
        }
    }
    if (!S_ISDIR(st.st_mode) || access(parent, W_OK | X_OK) != 0) {
        sl_cfg_error(cfg, at,
                     "data_dir '%s' does not exist and cannot be created: '%s' is not a writable "
                     "directory",
                     dir, parent);
        return 1;
    }
    return 0;
}

int sl_conf_check_host(sl_cfg *cfg, int *warnings)
{
    const sl_cfg_node *root = sl_cfg_root(cfg);
    const sl_cfg_node *inputs = sl_cfg_get(root, "inputs");
    *warnings = 0;
    for (size_t i = 0; inputs && inputs->kind == SL_CFG_SEQ && i < inputs->n; i++)
        *warnings += check_globs(inputs->items[i]);
    const sl_cfg_node *dd = sl_cfg_get(root, "data_dir");
    const char *dir = dd && dd->kind == SL_CFG_SCALAR ? dd->scalar : "/var/lib/sluice";
    return check_data_dir(cfg, dd ? dd : root, dir);
}
