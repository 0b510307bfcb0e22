/* sluice: the command line. Everything below cli/ returns errors; only
 * this file decides exit codes. */
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include <zstd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cli/agent.h"
#include "cli/conf_files.h"
#include "cli/dryrun_cmd.h"
#include "cli/http_tap.h"
#include "cli/keys_cmd.h"
#include "cli/spool_cmd.h"
#include "cli/tail_cmd.h"
#include "core/config.h"
#include "core/log.h"
#include "parsers/json.h"
#include "pipeline/spool.h"
#include "sluice_version.h"

#define MAX_CONFIGS SL_CONF_MAX_FILES

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice <command> [options]      (sluice <command> --help for one command)\n"
            "\n"
            "commands:\n"
            "  run [-c FILE ...] [--dry-run]    run the agent\n"
            "  check [-c FILE ...] [--service] [--connect]\n"
            "                                   validate and print the resolved pipeline\n"
            "  tail [-c FILE ...] [--match RE] [--label K=V]\n"
            "                                   follow the records the local agent ships\n"
            "  spool ls|stat|cat|verify|export  inspect the disk spools (read-only)\n"
            "  keys [--markdown] [SECTION|TYPE] every configuration key: type, default, meaning\n"
            "  version                          commit, build, SIMD kernel, library versions\n"
            "\n"
            "Without -c, every command reads what the service reads: %s/base.yml, then\n"
            "the other %s/*.yml in name order, with variables from %s/site.env\n"
            "(SLUICE_CONFIG_DIR replaces %s). Later files override earlier ones.\n",
            SL_CONF_DIR_DEFAULT, SL_CONF_DIR_DEFAULT, SL_CONF_DIR_DEFAULT, SL_CONF_DIR_DEFAULT);
}

static const char files_help[] =
    "  -c, --config FILE  configuration file (YAML); repeatable, later files override\n"
    "                     earlier ones. Without -c: " SL_CONF_DIR_DEFAULT "/base.yml, then the\n"
    "                     other " SL_CONF_DIR_DEFAULT "/*.yml in name order. Variables come\n"
    "                     from the environment, then " SL_CONF_DIR_DEFAULT "/site.env.\n"
    "  -h, --help         this help\n";

/* Per-command help: printed on stdout for --help (exit 0), on stderr after
 * a usage error (exit 2). */
static void command_usage(const char *cmd, FILE *out)
{
    if (!strcmp(cmd, "run")) {
        fprintf(out,
                "usage: sluice run [-c FILE ...] [--dry-run [--stdin --input NAME]]\n"
                "\n"
                "Runs the agent until SIGTERM or SIGINT; SIGHUP reloads the configuration\n"
                "(a broken one is rejected and the running pipeline stays).\n"
                "\n"
                "%s"
                "  --dry-run          read and parse, print records as JSON on stdout, send\n"
                "                     nothing, move no checkpoint, write nothing to data_dir\n"
                "  --stdin --input N  with --dry-run: lines from standard input through input\n"
                "                     N's multiline framing and parse steps; nothing else runs\n"
                "\n"
                "Exit: 0 stopped cleanly, 1 failed to start, 2 configuration error.\n",
                files_help);
    } else if (!strcmp(cmd, "check")) {
        fprintf(out,
                "usage: sluice check [-c FILE ...] [--service] [--connect]\n"
                "\n"
                "Validates the configuration and prints the resolved pipeline and tree\n"
                "(secrets redacted). Also checks what only this host can tell: data_dir\n"
                "must be a writable directory or creatable; a file path that matches\n"
                "nothing now is a warning. Relative paths are errors unless the\n"
                "configuration says `dev: true`.\n"
                "\n"
                "%s"
                "  --service          the configuration is for the systemd unit: `dev: true`\n"
                "                     is an error too (deploy.sh and the package use this)\n"
                "  --connect          ask each sink's destination whether it would accept\n"
                "                     (exit 1 when one would not)\n"
                "\n"
                "Exit: 0 valid, 2 configuration errors (each printed as file:line:col).\n",
                files_help);
    } else if (!strcmp(cmd, "tail")) {
        fprintf(out,
                "usage: sluice tail [-c FILE ...] [--match REGEX] [--label KEY=VALUE ...]\n"
                "\n"
                "Follows the records the local agent ships, as JSON lines, through its\n"
                "tap (the tap: section; off unless configured, token required).\n"
                "Lossy by design: it never slows delivery.\n"
                "\n"
                "%s"
                "  --match REGEX      only records whose line matches (PCRE2, run with limits)\n"
                "  --label KEY=VALUE  only records with this label (or input=NAME);\n"
                "                     repeatable, all must hold\n"
                "\n"
                "Exit: 0 the agent closed the stream, 1 connection error, 2 usage.\n",
                files_help);
    } else if (!strcmp(cmd, "version")) {
        fprintf(out, "usage: sluice version\n\n"
                     "Prints the version, the commit and build type, the SIMD kernel this CPU\n"
                     "uses, and the versions of the libraries linked.\n");
    } else {
        usage(out);
    }
}

typedef struct cli_args {
    const char *configs[MAX_CONFIGS];
    int nconfigs;
    int dry_run;
    int from_stdin;    /* run --dry-run --stdin */
    int connect;       /* check --connect */
    const char *input; /* --input NAME */
    sl_tail_opts tail;
    int is_tail;
    int service;    /* check --service */
    int check_host; /* check: data_dir and globs on this host */
} cli_args;

static int parse_args(const char *cmd, int argc, char **argv, cli_args *a)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice: %s needs a file\n", argv[i]);
                return SL_EINVAL;
            }
            if (a->nconfigs == MAX_CONFIGS) {
                fprintf(stderr, "sluice: at most %d config files\n", MAX_CONFIGS);
                return SL_EINVAL;
            }
            a->configs[a->nconfigs++] = argv[++i];
        } else if (a->is_tail && (!strcmp(argv[i], "--match") || !strcmp(argv[i], "--label"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice: %s needs a value\n", argv[i]);
                return SL_EINVAL;
            }
            if (argv[i][2] == 'm') {
                a->tail.match = argv[++i];
            } else if (a->tail.nlabels == SL_TAIL_MAX_LABELS || !strchr(argv[i + 1], '=')) {
                fprintf(stderr, "sluice: --label wants KEY=VALUE (at most %d)\n",
                        SL_TAIL_MAX_LABELS);
                return SL_EINVAL;
            } else {
                a->tail.labels[a->tail.nlabels++] = argv[++i];
            }
        } else if (!strcmp(argv[i], "--dry-run") && !strcmp(cmd, "run")) {
            a->dry_run = 1;
        } else if (!a->is_tail && !strcmp(argv[i], "--connect")) {
            a->connect = 1;
        } else if (!a->is_tail && !strcmp(argv[i], "--stdin")) {
            a->from_stdin = 1;
        } else if (!a->is_tail && !strcmp(argv[i], "--input")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice: --input needs an input name\n");
                return SL_EINVAL;
            }
            a->input = argv[++i];
        } else if (!strcmp(argv[i], "--service") && !strcmp(cmd, "check")) {
            a->service = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            command_usage(cmd, stdout);
            exit(EXIT_OK);
        } else {
            fprintf(stderr, "sluice: unknown option '%s'\n", argv[i]);
            return SL_EINVAL;
        }
    }
    if ((a->from_stdin || a->input) && !(a->from_stdin && a->input && a->dry_run)) {
        fprintf(stderr, "sluice: --stdin and --input NAME go together, with --dry-run\n");
        return SL_EINVAL;
    }
    return 0;
}

/* Loads and validates; prints every error. NULL when anything is wrong.
 * Without -c, the files the service reads (cli/conf_files.h). */
static sl_cfg *load_config(const cli_args *a)
{
    sl_conf_files files;
    sl_err err = {0};
    if (sl_conf_prepare(&files, a->nconfigs == 0) != 0) return NULL;
    const char *const *paths = a->configs;
    size_t npaths = (size_t)a->nconfigs;
    if (npaths == 0) {
        if (sl_conf_find(&files, &err) != SL_OK) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            sl_conf_free(&files);
            return NULL;
        }
        paths = (const char *const *)files.paths;
        npaths = files.n;
    }
    sl_cfg *cfg = sl_cfg_new();
    if (!cfg) {
        fprintf(stderr, "sluice: out of memory\n");
        sl_conf_free(&files);
        return NULL;
    }
    /* An unset variable is an error where its value is used, after every
     * overlay had its chance to replace it. */
    sl_cfg_defer_unset_vars(cfg);
    sl_cfg_set_env_hint(cfg, files.site_env);
    sl_conf_apply(&files, cfg); /* out of memory shows as unset variables */
    for (size_t i = 0; i < npaths; i++) sl_cfg_load_file(cfg, paths[i]);
    if (sl_cfg_nerrors(cfg) == 0) sl_cfg_report_unresolved(cfg, sl_cfg_root(cfg));
    if (sl_cfg_nerrors(cfg) == 0) {
        sl_conf_check_paths(cfg);
        sl_agent_check(cfg);
    }
    if (a->service) {
        const sl_cfg_node *dev = sl_cfg_get(sl_cfg_root(cfg), "dev");
        bool is_dev = false;
        if (dev) sl_cfg_bool(cfg, sl_cfg_root(cfg), "dev", false, &is_dev);
        if (is_dev)
            sl_cfg_error(cfg, dev,
                         "a development configuration (`dev: true`: relative paths, console "
                         "output) cannot run as the service");
    }
    if (sl_cfg_nerrors(cfg) == 0 && a->check_host) {
        int warnings = 0;
        sl_conf_check_host(cfg, &warnings);
    }
    size_t n = sl_cfg_nerrors(cfg);
    if (n == 0) {
        if (a->check_host) {
            printf("# files:");
            for (size_t i = 0; i < npaths; i++) printf(" %s", paths[i]);
            printf("\n");
        }
        sl_conf_free(&files);
        return cfg;
    }
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s\n", sl_cfg_error_at(cfg, i));
    fprintf(stderr, "sluice: %zu configuration error%s\n", n, n == 1 ? "" : "s");
    sl_conf_free(&files);
    sl_cfg_free(cfg);
    return NULL;
}

static int cmd_check(cli_args *a)
{
    a->check_host = 1;
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    sl_agent_describe(cfg, stdout);
    sl_http_tap_warnings(cfg, sl_cfg_get(sl_cfg_root(cfg), "tap"), stderr);
    printf("# configuration OK\n");
    int failed = 0;
    if (a->connect) {
        /* The sinks' own start-up lines would drown the per-sink report. */
        sl_log_set_level(SL_LOG_WARN);
        fflush(stdout);
        failed = sl_agent_probe(cfg, stdout);
        printf("# %s\n",
               failed ? "some destinations would not accept" : "every destination answers");
    }
    sl_cfg_free(cfg);
    return failed ? EXIT_FAIL : EXIT_OK;
}

static int cmd_tail(cli_args *a, sigset_t set)
{
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    const sl_cfg_node *tap = sl_cfg_get(sl_cfg_root(cfg), "tap");
    if (!tap) {
        fprintf(stderr, "sluice: tail needs the tap: add a tap: section with token_file or "
                        "token_env to the configuration (README: Security)\n");
        sl_cfg_free(cfg);
        return EXIT_USAGE;
    }
    char *token = NULL;
    sl_err terr = {0};
    if (sl_http_tap_settings(cfg, tap, &a->tail.listen, &token, &terr) != SL_OK) {
        fprintf(stderr, "sluice: %s\n", terr.msg);
        sl_cfg_free(cfg);
        return EXIT_USAGE;
    }
    a->tail.token = token;
    /* A terminal's Ctrl-C simply ends the tail. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    sl_err err = {0};
    int rc = sl_tail_run(&a->tail, stdout, &err);
    fprintf(stderr, "sluice tail: %s\n", err.msg);
    free(token);
    sl_cfg_free(cfg);
    return rc == SL_ECLOSED ? EXIT_OK : rc == SL_EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

static int cmd_dryrun_stdin(const cli_args *a)
{
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    sl_err err = {0};
    int rc = sl_dryrun_stdin(cfg, a->input, 0, stdout, &err);
    if (rc != SL_OK && rc != SL_ECLOSED) fprintf(stderr, "sluice: %s\n", err.msg);
    sl_cfg_free(cfg);
    return rc == SL_OK || rc == SL_ECLOSED ? EXIT_OK : rc == SL_EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

/* The soft limit on open descriptors raised to the hard one: the default
 * soft 1024 is below what the default listener caps add up to (syslog 512,
 * loki_push 256, metrics 256) beside max_open_files (1024), and a listener
 * at EMFILE refuses everyone. The hard limit is the operator's (systemd's
 * LimitNOFILE=, the shell's ulimit -Hn); nothing here needs select(),
 * which breaks past 1024 (libmicrohttpd runs on poll or epoll). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        sl_log(SL_LOG_INFO, "fd_limit_raised", "from=%llu to=%llu", (unsigned long long)was,
               (unsigned long long)rl.rlim_max);
}

static int cmd_run(const cli_args *a, sigset_t set)
{
    if (a->from_stdin) return cmd_dryrun_stdin(a);
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    sl_agent *agent = NULL;
    sl_err err = {0};
    sl_agent_opts opts = {.dry_run = a->dry_run != 0};
    raise_fd_limit();
    if (sl_agent_start(cfg, &opts, &agent, &err) != 0) {
        sl_log(SL_LOG_ERROR, "start_failed", "error=\"%s\"", err.msg);
        sl_cfg_free(cfg);
        /* SL_EAGAIN: another agent holds data_dir (core/datadir.h). */
        return err.code == SL_EAGAIN ? EXIT_USAGE : EXIT_FAIL;
    }
    /* Under systemd (Type=notify): started only now, so a reload asked for
     * during start-up waits for this instead of a SIGHUP reaching the
     * process before main() blocks it, which ended it (decision 0065). No
     * NOTIFY_SOCKET: does nothing. */
    sd_notify(0, "READY=1");
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        sl_log(SL_LOG_INFO, "signal", "signal=%s",
               sig == SIGHUP   ? "HUP"
               : sig == SIGINT ? "INT"
                               : "TERM");
        if (sig != SIGHUP) {
            sd_notify(0, "STOPPING=1");
            sl_agent_stop(agent);
            sl_cfg_free(cfg);
            return EXIT_OK;
        }
        /* Reload: validate the new configuration before touching the running
         * one; a bad file leaves the running pipeline alone — no drain, no
         * restart (decision 0010). */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)now.tv_sec * 1000000ULL +
                       (unsigned long long)now.tv_nsec / 1000ULL);
        sl_cfg *next = load_config(a);
        if (!next) {
            sl_log(SL_LOG_ERROR, "reload_rejected",
                   "reason=\"configuration errors\" action=kept_running");
            sd_notify(0, "READY=1");
            continue;
        }
        /* Stopping drains every sink and saves checkpoints, so restarting
         * with the new pipeline neither loses nor repeats records. */
        sl_agent_stop(agent);
        sl_cfg_free(cfg);
        cfg = next;
        if (sl_agent_start(cfg, &opts, &agent, &err) != 0) {
            sl_log(SL_LOG_ERROR, "start_failed", "error=\"%s\"", err.msg);
            sl_cfg_free(cfg);
            return EXIT_FAIL;
        }
        sl_log(SL_LOG_INFO, "reloaded", "%s", "");
        sd_notify(0, "READY=1");
    }
}

/* libmicrohttpd, when a build links it: a weak reference stays NULL
 * otherwise, so this file does not depend on it. */
extern const char *MHD_get_version(void) __attribute__((weak));

static void print_version(FILE *out)
{
    char pcre2[64] = "?";
    pcre2_config(PCRE2_CONFIG_VERSION, pcre2);
    sl_json_opts jo;
    sl_json_opts_init(&jo, NULL); /* honours SLUICE_SIMD, as the agent does */
    const char *simd_env = getenv("SLUICE_SIMD");
    bool sanitized = strcmp(SLUICE_SANITIZE, "none") != 0;
    fprintf(out, "sluice %s\n", SLUICE_VERSION);
    fprintf(out, "commit:      %s\n", SLUICE_COMMIT);
    fprintf(out, "build:       %s%s%s\n", SLUICE_BUILDTYPE, sanitized ? ", sanitizers " : "",
            sanitized ? SLUICE_SANITIZE : "");
    fprintf(out, "simd:        %s (JSON kernel in use; best on this CPU: %s%s%s), crc32c %s\n",
            sl_json_kernel_name(sl_json_kernel_active(&jo)),
            sl_json_kernel_name(sl_json_kernel_best()), simd_env ? "; SLUICE_SIMD=" : "",
            simd_env ? simd_env : "", sl_crc32c_hw_available() ? "sse4.2" : "portable");
    fprintf(out, "libraries:   librdkafka %s, zstd %s, pcre2 %s, libcurl %s, libyaml %s",
            rd_kafka_version_str(), ZSTD_versionString(), pcre2,
            curl_version_info(CURLVERSION_NOW)->version, yaml_get_version_string());
    if (MHD_get_version) fprintf(out, ", libmicrohttpd %s", MHD_get_version());
    fputc('\n', out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Signals are taken synchronously by the main thread only; every
     * thread the agent starts inherits the mask. Set first thing, so a
     * signal during start-up is not lost. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
            command_usage("version", stdout);
            return EXIT_OK;
        }
        if (argc > 2) {
            fprintf(stderr, "sluice version: unknown option '%s'\n", argv[2]);
            command_usage("version", stderr);
            return EXIT_USAGE;
        }
        print_version(stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "spool")) return sl_cli_spool(argc - 2, argv + 2);
    if (!strcmp(cmd, "keys")) return sl_cli_keys(argc - 2, argv + 2, stdout);
    cli_args a = {0};
    if (!strcmp(cmd, "run") || !strcmp(cmd, "check") || !strcmp(cmd, "tail")) {
        a.is_tail = !strcmp(cmd, "tail");
        if (parse_args(cmd, argc - 2, argv + 2, &a) != 0) {
            command_usage(cmd, stderr);
            return EXIT_USAGE;
        }
        if (a.is_tail) return cmd_tail(&a, set);
        return !strcmp(cmd, "run") ? cmd_run(&a, set) : cmd_check(&a);
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
