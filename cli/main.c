/* sluice: the command line. Everything below cli/ returns errors; only
 * this file decides exit codes. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/agent.h"
#include "cli/tail_cmd.h"
#include "cli/spool_cmd.h"
#include "core/config.h"
#include "core/log.h"

#define MAX_CONFIGS 16

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice <command> [options]\n"
            "\n"
            "commands:\n"
            "  run -c FILE [-c FILE ...] [--dry-run]   run the agent; later files override earlier "
            "ones\n"
            "  check -c FILE [-c FILE ...]             validate and print the resolved pipeline\n"
            "  tail -c FILE [--match RE] [--label K=V] follow the records the local agent ships\n"
            "                                          (JSON lines; needs metrics.listen)\n"
            "  spool ls|stat|cat|verify|export -c FILE inspect the disk spools (read-only;\n"
            "                                          `sluice spool --help`)\n"
            "  version                                 print the version\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   configuration file (YAML); repeatable\n"
            "  --dry-run           read and parse, print records as JSON, send nothing,\n"
            "                      move no checkpoint\n"
            "  --match REGEX       tail: only records whose line matches (extended regex)\n"
            "  --label KEY=VALUE   tail: only records with this label (or input=NAME);\n"
            "                      repeatable, all must hold\n"
            "  -h, --help          this help\n");
}

typedef struct cli_args {
    const char *configs[MAX_CONFIGS];
    int nconfigs;
    int dry_run;
    sl_tail_opts tail;
    int is_tail;
} cli_args;

static int parse_args(int argc, char **argv, cli_args *a)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice: %s needs a file\n", argv[i]);
                return -1;
            }
            if (a->nconfigs == MAX_CONFIGS) {
                fprintf(stderr, "sluice: at most %d config files\n", MAX_CONFIGS);
                return -1;
            }
            a->configs[a->nconfigs++] = argv[++i];
        } else if (a->is_tail && (!strcmp(argv[i], "--match") || !strcmp(argv[i], "--label"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice: %s needs a value\n", argv[i]);
                return -1;
            }
            if (argv[i][2] == 'm') {
                a->tail.match = argv[++i];
            } else if (a->tail.nlabels == SL_TAIL_MAX_LABELS || !strchr(argv[i + 1], '=')) {
                fprintf(stderr, "sluice: --label wants KEY=VALUE (at most %d)\n",
                        SL_TAIL_MAX_LABELS);
                return -1;
            } else {
                a->tail.labels[a->tail.nlabels++] = argv[++i];
            }
        } else if (!strcmp(argv[i], "--dry-run")) {
            a->dry_run = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            exit(EXIT_OK);
        } else {
            fprintf(stderr, "sluice: unknown option '%s'\n", argv[i]);
            return -1;
        }
    }
    if (a->nconfigs == 0) {
        fprintf(stderr, "sluice: no configuration given (-c FILE)\n");
        return -1;
    }
    return 0;
}

/* Loads and validates; prints every error. NULL when anything is wrong. */
static sl_cfg *load_config(const cli_args *a)
{
    sl_cfg *cfg = sl_cfg_new();
    if (!cfg) {
        fprintf(stderr, "sluice: out of memory\n");
        return NULL;
    }
    for (int i = 0; i < a->nconfigs; i++) sl_cfg_load_file(cfg, a->configs[i]);
    if (sl_cfg_nerrors(cfg) == 0) sl_agent_check(cfg);
    size_t n = sl_cfg_nerrors(cfg);
    if (n == 0) return cfg;
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s\n", sl_cfg_error_at(cfg, i));
    fprintf(stderr, "sluice: %zu configuration error%s\n", n, n == 1 ? "" : "s");
    sl_cfg_free(cfg);
    return NULL;
}

static int cmd_check(const cli_args *a)
{
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    sl_agent_describe(cfg, stdout);
    printf("# configuration OK\n");
    sl_cfg_free(cfg);
    return EXIT_OK;
}

static int cmd_tail(cli_args *a, sigset_t set)
{
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    const char *listen = NULL;
    sl_cfg_str(cfg, sl_cfg_get(sl_cfg_root(cfg), "metrics"), "listen", NULL, &listen);
    if (!listen || !*listen) {
        fprintf(stderr, "sluice: tail needs metrics.listen in the configuration\n");
        sl_cfg_free(cfg);
        return EXIT_USAGE;
    }
    a->tail.listen = listen;
    /* A terminal's Ctrl-C simply ends the tail. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    sl_err err = {0};
    int rc = sl_tail_run(&a->tail, stdout, &err);
    fprintf(stderr, "sluice tail: %s\n", err.msg);
    sl_cfg_free(cfg);
    return rc == SL_ECLOSED ? EXIT_OK : rc == SL_EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

static int cmd_run(const cli_args *a, sigset_t set)
{
    sl_cfg *cfg = load_config(a);
    if (!cfg) return EXIT_USAGE;
    for (;;) {
        sl_agent *agent;
        sl_err err = {0};
        sl_agent_opts opts = {.dry_run = a->dry_run != 0};
        if (sl_agent_start(cfg, &opts, &agent, &err) != 0) {
            sl_log(SL_LOG_ERROR, "start_failed", "error=\"%s\"", err.msg);
            sl_cfg_free(cfg);
            /* SL_EAGAIN: another agent holds data_dir (core/datadir.h). */
            return err.code == SL_EAGAIN ? EXIT_USAGE : EXIT_FAIL;
        }
        int sig = 0;
        sigwait(&set, &sig);
        sl_log(SL_LOG_INFO, "signal", "signal=%s",
               sig == SIGHUP   ? "HUP"
               : sig == SIGINT ? "INT"
                               : "TERM");
        if (sig != SIGHUP) {
            sl_agent_stop(agent);
            sl_cfg_free(cfg);
            return EXIT_OK;
        }
        /* Reload: validate the new configuration before touching the running
         * one; a bad file keeps the agent as it is. */
        sl_cfg *next = load_config(a);
        if (!next) {
            sl_log(SL_LOG_ERROR, "reload_rejected", "reason=\"configuration errors\"");
            /* Keep running the old pipeline: restart it as it was. */
            next = cfg;
        }
        /* Stopping drains every sink and saves checkpoints, so restarting
         * with the new pipeline neither loses nor repeats records. */
        sl_agent_stop(agent);
        if (next != cfg) sl_cfg_free(cfg);
        cfg = next;
        sl_log(SL_LOG_INFO, "reloaded", "%s", "");
    }
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
        printf("sluice %s\n", SLUICE_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "spool")) return sl_cli_spool(argc - 2, argv + 2);
    cli_args a = {0};
    if (!strcmp(cmd, "run") || !strcmp(cmd, "check") || !strcmp(cmd, "tail")) {
        a.is_tail = !strcmp(cmd, "tail");
        if (parse_args(argc - 2, argv + 2, &a) != 0) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (a.is_tail) return cmd_tail(&a, set);
        return !strcmp(cmd, "run") ? cmd_run(&a, set) : cmd_check(&a);
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
