/* `sluice spool` through the binary: exit codes (0 ok, 1 corruption or no
 * data_dir, 2 usage/config), output on an empty and a non-empty spool, that
 * it runs beside a live agent holding the spool's lock, and the shell
 * habits: the service's files without -c, a closed pipe, relative times,
 * label/input filters, the raw and loki-push formats, no binary to a
 * terminal. */
#include <fcntl.h>
#include <jansson.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "tests/fault/ftest_spool_rig.h"

static int run_cli(char *const *args, const char *out)
{
    unlink(out);
    pid_t pid = sl_t_spawn(args, out);
    return pid > 0 ? sl_t_wait(pid, 30000) : -1;
}

static bool file_has(const char *path, const char *needle)
{
    char *text = sl_t_read_file(path, NULL);
    bool found = text && strstr(text, needle);
    if (!found) fprintf(stderr, "%s lacks '%s':\n%s\n", path, needle, text ? text : "(none)");
    free(text);
    return found;
}

/* Records written by cat/export, from its summary line on stderr. */
static long summary_records(const char *log)
{
    char *text = sl_t_read_file(log, NULL);
    assert_non_null(text);
    char *p = strstr(text, "sluice spool: ");
    long n = -1;
    while (p) {
        char *end;
        long v = strtol(p + 14, &end, 10);
        if (end != p + 14 && !strncmp(end, " record", 7)) n = v;
        p = strstr(p + 1, "sluice spool: ");
    }
    free(text);
    return n;
}

/* Runs args with stdout into a pipe, reads one line, closes the pipe
 * (like `| head -1`); returns the exit status, stderr into err_path. */
static int run_into_closed_pipe(char *const *args, const char *err_path, char *first, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(p[1], STDOUT_FILENO);
        if (fd >= 0) dup2(fd, STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        /* A shell leaves SIGPIPE at its default: the binary must cope. */
        signal(SIGPIPE, SIG_DFL);
        execv(args[0], args);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(p[0], first + n, 1);
        if (r <= 0 || first[n] == '\n') break;
        n++;
    }
    first[n] = '\0';
    close(p[0]);
    return sl_t_wait(pid, 30000);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(sl_t_write_file(path, text, strlen(text)), 0);
}

/* cfg with `old` replaced by `new` (first occurrence). */
static char *replaced(const char *cfg, const char *old, const char *new)
{
    char *text = sl_t_read_file(cfg, NULL);
    assert_non_null(text);
    char *at = strstr(text, old);
    assert_non_null(at);
    size_t n = strlen(text) + strlen(new) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, new, at + strlen(old));
    free(text);
    return out;
}

static void test_cli(void **st)
{
    (void)st;
    srig r;
    srig_init(&r, "spool-cli", "{memory_max: 16KiB, spool_max: 1GiB}", NULL,
              "shutdown_timeout: 1s\n");
    /* The input carries a label, for --label. */
    char *labelled = replaced(r.cfg, "    start_at: beginning\n",
                              "    start_at: beginning\n    labels: {team: pay}\n");
    write_text(r.cfg, labelled);
    free(labelled);
    char *conf_dir = sl_t_path(r.dir, "etc");
    setenv("SLUICE_CONFIG_DIR", conf_dir, 1); /* never the machine's /etc/sluice */
    char *out = sl_t_path(r.dir, "cli.out");
    char *bin = (char *)sl_t_bin();
    char *no_cfg[] = {bin, "spool", "ls", NULL};
    assert_int_equal(run_cli(no_cfg, out), 2);
    assert_true(file_has(out, conf_dir));
    char *bad_sub[] = {bin, "spool", "frobnicate", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(bad_sub, out), 2);
    char *no_sink[] = {bin, "spool", "export", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(no_sink, out), 2);
    char *bad_time[] = {bin,      "spool", "export",  "-c",        r.cfg,
                        "--sink", "lk",    "--since", "yesterday", NULL};
    assert_int_equal(run_cli(bad_time, out), 2);
    char *bad_re[] = {bin, "spool", "export", "-c", r.cfg, "--sink", "lk", "--match", "(", NULL};
    assert_int_equal(run_cli(bad_re, out), 2);
    char *bad_fmt[] = {bin, "spool", "cat", "-c", r.cfg, "--format", "xml", NULL};
    assert_int_equal(run_cli(bad_fmt, out), 2);
    /* No data_dir: an error naming it, not "0 segments". */
    char *ls[] = {bin, "spool", "ls", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(ls, out), 1);
    assert_true(file_has(out, r.data));
    assert_true(file_has(out, "No such file or directory"));
    char *verify[] = {bin, "spool", "verify", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(verify, out), 1);
    /* data_dir there, no spool yet: empty, fine. */
    assert_int_equal(mkdir(r.data, 0700), 0);
    assert_int_equal(run_cli(verify, out), 0);
    char *unknown[] = {bin, "spool", "stat", "-c", r.cfg, "--sink", "nope", NULL};
    assert_int_equal(run_cli(unknown, out), 2);

    /* A live agent spooling during an outage: inspection works beside it. */
    srig_outage(&r, true);
    srig_append_ids(r.in, 0, 100000, 0);
    srig_start(&r);
    assert_true(sl_t_wait_until(srig_metric_ready, &r, 10000));
    for (int i = 0; i < 100 && srig_metric(&r, "sluice_spool_written_records_total") <= 0; i++)
        sl_t_sleep_ms(100);
    char *stat_[] = {bin, "spool", "stat", "-c", r.cfg, "--sink", "lk", NULL};
    assert_int_equal(run_cli(stat_, out), 0);
    char *text = sl_t_read_file(out, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "pending_records:"));
    if (strstr(text, "pending_records: 0\n")) fprintf(stderr, "stat said:\n%s\n", text);
    assert_null(strstr(text, "pending_records: 0\n"));
    free(text);
    assert_int_equal(run_cli(ls, out), 0);
    /* Every line read (so spooled: the outage holds them) before stopping. */
    for (int i = 0; i < 600 && srig_metric(&r, "sluice_input_records_total") < 100000; i++)
        sl_t_sleep_ms(100);
    assert_int_equal(srig_stop(&r, SIGTERM), 0);
    /* Stopped: cat prints every pending record once. */
    char *cat_out = sl_t_path(r.dir, "cat.out");
    char *cat[] = {bin, "spool", "cat", "-c", r.cfg, NULL};
    assert_int_equal(run_cli(cat, cat_out), 0);
    long lines = sl_t_count_lines(cat_out);
    fprintf(stderr, "spool cat: %ld lines (100000 records + 1 summary line)\n", lines);
    assert_int_equal(lines, 100000 + 1); /* the summary goes to stderr, same file here */
    assert_int_equal(run_cli(verify, out), 0);

    /* | head -1: the first record, then a quiet exit 0. */
    char *err = sl_t_path(r.dir, "pipe.err");
    char first[4096];
    assert_int_equal(run_into_closed_pipe(cat, err, first, sizeof first), 0);
    if (!strstr(first, "\"line\":\"id=")) fprintf(stderr, "first line: %s\n", first);
    assert_non_null(strstr(first, "\"line\":\"id="));
    text = sl_t_read_file(err, NULL);
    if (text && *text) fprintf(stderr, "stderr after a closed pipe:\n%s\n", text);
    assert_true(!text || !*text);
    free(text);

    /* Relative times: every record was read just now. */
    char *recent[] = {bin, "spool", "cat", "-c", r.cfg, "--since", "1h", "-o", cat_out, NULL};
    assert_int_equal(run_cli(recent, out), 0);
    assert_int_equal(summary_records(out), 100000);
    char *old[] = {bin, "spool", "cat", "-c", r.cfg, "--until", "1h", "-o", cat_out, NULL};
    assert_int_equal(run_cli(old, out), 0);
    assert_int_equal(summary_records(out), 0);
    /* Label and input filters. */
    char *label[] = {bin, "spool", "cat", "-c", r.cfg, "--label", "team=pay", "-o", cat_out, NULL};
    assert_int_equal(run_cli(label, out), 0);
    assert_int_equal(summary_records(out), 100000);
    char *label_no[] = {bin,       "spool",      "cat", "-c",    r.cfg,
                        "--label", "team=other", "-o",  cat_out, NULL};
    assert_int_equal(run_cli(label_no, out), 0);
    assert_int_equal(summary_records(out), 0);
    char *input[] = {
        bin,  "spool", "cat", "-c", r.cfg, "--input", "in", "--match", "id=0000001[0-9] ",
        "-o", cat_out, NULL};
    assert_int_equal(run_cli(input, out), 0);
    assert_int_equal(summary_records(out), 10);
    char *input_no[] = {bin, "spool", "cat", "-c", r.cfg, "--input", "other", "-o", cat_out, NULL};
    assert_int_equal(run_cli(input_no, out), 0);
    assert_int_equal(summary_records(out), 0);

    /* raw: the lines as they were read. */
    char *raw[] = {bin, "spool", "cat", "-c", r.cfg, "--format", "raw", "-o", cat_out, NULL};
    assert_int_equal(run_cli(raw, out), 0);
    assert_int_equal(sl_t_count_lines(cat_out), 100000);
    text = sl_t_read_file(cat_out, NULL);
    assert_non_null(text);
    /* (spool order, not file order: the first batches waited in memory) */
    assert_memory_equal(text, "id=", 3);
    assert_memory_equal(text + 11, " some payload text for the spool\n", 33);
    free(text);

    /* loki-push: one JSON body with the sink's and the input's labels and
     * every record as [ns-string, line]. */
    char *push[] = {bin,  "spool",    "export",    "-c", r.cfg,   "--sink",
                    "lk", "--format", "loki-push", "-o", cat_out, NULL};
    assert_int_equal(run_cli(push, out), 0);
    json_error_t jerr;
    json_t *body = json_load_file(cat_out, 0, &jerr);
    if (!body) fprintf(stderr, "loki-push body: %s at %d\n", jerr.text, jerr.line);
    assert_non_null(body);
    json_t *streams = json_object_get(body, "streams");
    assert_true(json_is_array(streams) && json_array_size(streams) >= 1);
    size_t values = 0;
    for (size_t i = 0; i < json_array_size(streams); i++) {
        json_t *s = json_array_get(streams, i);
        json_t *labels = json_object_get(s, "stream");
        assert_string_equal(json_string_value(json_object_get(labels, "job")), "ftest");
        assert_string_equal(json_string_value(json_object_get(labels, "team")), "pay");
        json_t *v = json_object_get(s, "values");
        for (size_t k = 0; k < json_array_size(v); k++) {
            json_t *pair = json_array_get(v, k);
            const char *ts = json_string_value(json_array_get(pair, 0));
            assert_non_null(ts);
            assert_true(strtoll(ts, NULL, 10) > 1600000000000000000LL);
            assert_non_null(json_string_value(json_array_get(pair, 1)));
        }
        values += json_array_size(v);
    }
    assert_int_equal(values, 100000);
    json_decref(body);

    /* A tampered entry (checksums valid, an escaped value with a bare
     * quote: decision 0054): export skips it and says so, its JSON holds
     * nothing the entry injected, verify fails. */
    char seed[4096], segp[4200];
    snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus/spool/hostile_escaped_quote.seg", sl_t_src());
    size_t seed_n;
    char *seed_img = sl_t_read_file(seed, &seed_n);
    assert_non_null(seed_img);
    snprintf(segp, sizeof segp, "%s/spool/lk/10000000000000000000.seg", r.data);
    assert_int_equal(sl_t_write_file(segp, seed_img, seed_n), 0);
    free(seed_img);
    char *tampered[] = {bin,  "spool", "export", "-c",    r.cfg, "--sink",
                        "lk", "--all", "-o",     cat_out, NULL};
    assert_int_equal(run_cli(tampered, out), 0);
    assert_true(file_has(out, "1 damaged entry skipped"));
    assert_true(summary_records(out) >= 100000);
    assert_false(sl_t_file_has(cat_out, "injected"));
    char *verify_lk[] = {bin, "spool", "verify", "-c", r.cfg, "--sink", "lk", NULL};
    assert_int_equal(run_cli(verify_lk, out), 1);
    assert_true(file_has(out, "CORRUPT"));
    unlink(segp);
    /* A label whose key holds a JSON escape (k\u0041) is Loki's label kA,
     * not a key with a backslash. */
    snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus/spool/hostile_ok_types.seg", sl_t_src());
    seed_img = sl_t_read_file(seed, &seed_n);
    assert_non_null(seed_img);
    assert_int_equal(sl_t_write_file(segp, seed_img, seed_n), 0);
    free(seed_img);
    char *push_all[] = {bin,     "spool",    "export",    "-c", r.cfg,   "--sink", "lk",
                        "--all", "--format", "loki-push", "-o", cat_out, NULL};
    assert_int_equal(run_cli(push_all, out), 0);
    body = json_load_file(cat_out, 0, &jerr);
    assert_non_null(body);
    streams = json_object_get(body, "streams");
    bool escaped_key = false;
    for (size_t i = 0; i < json_array_size(streams); i++) {
        json_t *labels = json_object_get(json_array_get(streams, i), "stream");
        const char *v = json_string_value(json_object_get(labels, "kA"));
        escaped_key |= v && !strcmp(v, "v");
    }
    assert_true(escaped_key);
    json_decref(body);
    unlink(segp);

    /* Compressed output: to a file yes, to a terminal never. */
    char *z[] = {bin, "spool", "cat", "-c", r.cfg, "--zstd", "-o", cat_out, NULL};
    assert_int_equal(run_cli(z, out), 0);
    int ptm = posix_openpt(O_RDWR | O_NOCTTY);
    if (ptm >= 0 && grantpt(ptm) == 0 && unlockpt(ptm) == 0) {
        char *tty = ptsname(ptm);
        char *z_tty[] = {bin, "spool", "cat", "-c", r.cfg, "--zstd", "-o", tty, NULL};
        assert_int_equal(run_cli(z_tty, out), 2);
        assert_true(file_has(out, "terminal"));
    } else {
        fprintf(stderr, "no pseudo-terminal here: --zstd to a terminal not tried\n");
    }
    if (ptm >= 0) close(ptm);

    /* Without -c: the service's files, variables from site.env, and an
     * unset destination variable the spool tools do not need. */
    assert_int_equal(mkdir(conf_dir, 0750), 0);
    char *base = sl_t_path(conf_dir, "base.yml");
    char *from_env = replaced(r.cfg, r.data, "${SLUICE_T_SPOOL_DATA}");
    write_text(base, from_env);
    free(from_env);
    char *overlay = sl_t_path(conf_dir, "zz-site.yml");
    write_text(overlay, "sinks:\n  - name: lk\n    url: ${SLUICE_T_UNSET_URL}\n");
    char *site = sl_t_path(conf_dir, "site.env");
    char env_line[4200];
    snprintf(env_line, sizeof env_line, "# test\nSLUICE_T_SPOOL_DATA=\"%s\"\n", r.data);
    write_text(site, env_line);
    unsetenv("SLUICE_T_SPOOL_DATA");
    unsetenv("SLUICE_T_UNSET_URL");
    char *stat_default[] = {bin, "spool", "stat", NULL};
    assert_int_equal(run_cli(stat_default, out), 0);
    assert_true(file_has(out, "pending_records: 100000\n"));
    /* ... while check, which needs the destination, names the variable. */
    char *check_default[] = {bin, "check", NULL};
    assert_int_equal(run_cli(check_default, out), 2);
    assert_true(file_has(out, "environment variable 'SLUICE_T_UNSET_URL' is not set (set it in"));
    assert_true(file_has(out, site));
    unsetenv("SLUICE_CONFIG_DIR");
    free(base), free(overlay), free(site), free(conf_dir);
    free(out), free(cat_out), free(err);
    srig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli),
    };
    return sl_t_run_tests(tests);
}
