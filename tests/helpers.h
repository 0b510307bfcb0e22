/* Small helpers shared by the C tests: temporary directories, files, child
 * processes (the real sluice binary), waiting with deadlines. */
#ifndef SLUICE_TESTS_HELPERS_H
#define SLUICE_TESTS_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under $TMPDIR (or /tmp), removed by sl_t_rmtree, or at
 * exit when a failed assertion skipped the test's cleanup. */
char *sl_t_tmpdir(const char *tag);
void sl_t_rmtree(const char *path);
/* Path join into a static-free, malloc'ed string. */
char *sl_t_path(const char *dir, const char *name);
int sl_t_write_file(const char *path, const void *data, size_t n);
int sl_t_append_file(const char *path, const void *data, size_t n);
/* Reads a whole file (NUL-terminated); NULL when absent. */
char *sl_t_read_file(const char *path, size_t *n);
/* Appends the lines `id=%08ld<suffix>` for ids [from, to) to path, 1 MiB
 * at a time; 0, or -1 when a write fails. */
int sl_t_append_ids(const char *path, long from, long to, const char *suffix);
/* Appends n lines `seq=%06u<suffix>`, numbered from *seq on (advancing
 * it), in one write; 0, or -1 when it fails. */
int sl_t_append_seq(const char *path, uint32_t *seq, uint32_t n, const char *suffix);
/* The `id=N` lines of a file: distinct ids below max_id, repeats of them,
 * and every other line. */
typedef struct sl_t_tally {
    long distinct, dups, other;
} sl_t_tally;
sl_t_tally sl_t_count_ids(const char *path, long max_id);
/* The same where `id=N` may stand anywhere in a line (JSON lines). */
sl_t_tally sl_t_count_ids_within(const char *path, long max_id);
/* Whether the text of the file at path holds needle (false when absent). */
bool sl_t_file_has(const char *path, const char *needle);
/* Non-overlapping occurrences of needle in the file at path (0 when absent). */
long sl_t_file_count(const char *path, const char *needle);
/* Counts '\n' in a file; -1 when absent. */
long sl_t_count_lines(const char *path);

/* Parses `<prefix><digits>` at p (not reading past end); -1 if absent.
 * Unlike sscanf it never scans the rest of a large buffer. */
long sl_t_parse_id(const char *p, const char *end, const char *prefix);

/* Environment: the sluice binary, the source tree, ../shared/testdata. */
const char *sl_t_bin(void);
const char *sl_t_src(void);
/* NULL (and a message on stderr) when the shared test data is absent. */
const char *sl_t_testdata(const char *sub);

/* Starts argv[0] with argv, stdout/stderr to log_path (appended) when not
 * NULL. Returns the pid or -1. The child gets SIGKILL when the test process
 * dies (PR_SET_PDEATHSIG), so no agent outlives its test. */
pid_t sl_t_spawn(char *const argv[], const char *log_path);
/* Runs a cmocka test table one test at a time. After each test, pass or
 * fail, it SIGKILLs and reaps the processes the test started with
 * sl_t_spawn and left running, and removes the folders it made with
 * sl_t_tmpdir and left: a failed assertion skips the test's own cleanup,
 * and nothing it started may live on into the next test. Returns the
 * number of failed tests, as cmocka_run_group_tests does. */
struct CMUnitTest;
int sl_t_run_group(const char *name, const struct CMUnitTest *tests, size_t n);
#define sl_t_run_tests(tests) sl_t_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]))
/* What sl_t_run_group (tests/run_group.c, the part that needs cmocka) calls
 * around each test: processes and folders are counted to the test that
 * began last, and stopped and removed when it ends. */
void sl_t_test_begins(unsigned number);
void sl_t_test_ended(const char *name);
/* Remembers pid (0: forgets it) as the one agent to SIGKILL when the test
 * program exits: a failed assertion ends the program before the test could
 * stop its agent. */
void sl_t_kill_at_exit(pid_t pid);
/* Sends sig and waits up to timeout_ms; returns exit status (or 128+signal),
 * -1 on timeout (the child is then killed with SIGKILL). */
int sl_t_stop(pid_t pid, int sig, int timeout_ms);
/* Waits for exit up to timeout_ms; same results as sl_t_stop. */
int sl_t_wait(pid_t pid, int timeout_ms);

/* Polls until pred(arg) is true or timeout_ms passes. */
bool sl_t_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);
/* Waits until the text needle occurs at least count times in the file at
 * path (an agent's log: `agent_started` is its readiness). */
bool sl_t_wait_log(const char *path, const char *needle, int count, int timeout_ms);
/* A time limit scaled for the sanitizer build (x4 under SLUICE_SANITIZED). */
int sl_t_scaled_ms(int ms);
/* Waits until path has at least n lines. */
bool sl_t_wait_lines(const char *path, long n, int timeout_ms);
void sl_t_sleep_ms(int ms);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t sl_t_now_ms(void);
/* A free TCP port on 127.0.0.1. */
int sl_t_free_port(void);
/* GET path from 127.0.0.1:port, reading the answer until the server closes
 * (5 s at most). Returns the status (-1 when unreachable); *body gets the
 * malloc'ed body ("" when none) when body is not NULL. */
/* The peak resident size of pid (VmHWM), in KiB; -1 when unreadable. */
long sl_t_peak_rss_kib(pid_t pid);
/* Descriptors pid holds open (entries of /proc/PID/fd); -1 when unreadable. */
long sl_t_open_fds(pid_t pid);
int sl_t_http_get(int port, const char *path, char **body);
/* Sum of a metric scraped from 127.0.0.1:port/metrics (-1: no answer). */
double sl_t_metric(int port, const char *name);
/* Value of one exact series line `series V` in a scraped /metrics text;
 * -1 when absent. */
double sl_t_series_value(const char *text, const char *series);
/* True when running under the sanitizer build (SLUICE_SANITIZED=1), where
 * load tests may scale their sizes down. */
bool sl_t_sanitized(void);
/* True under `make test-long` (SLUICE_TEST_LONG=1): load and fault tests run
 * the full budgets their issues name; `make test` runs shorter ones with the
 * same assertions. */
bool sl_t_long(void);

#endif
