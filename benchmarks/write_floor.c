/* What the kernel takes to put N bytes into a file, with no encoder in
 * front: the bytes of SRC read into memory first (untimed), then written to
 * OUT in CHUNK-byte write(2)s (the file sink writes groups of up to 1 MiB),
 * then OUT unlinked (what a reader that removes the output pays). Prints
 * the system CPU of the writes and of the unlink, medians of RUNS, and per
 * GB: the floor under a format that writes more bytes (decision 0082: the
 * record JSON's default shape is 2.23x the input's bytes).
 *
 * usage: write_floor SRC OUT CHUNK RUNS   (OUT on the file system to
 * measure, e.g. /dev/shm; SRC the output of a pass, or any file of that
 * size: the page cache does not look at the bytes) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXRUNS 64

static double sys_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: write_floor SRC OUT CHUNK RUNS\n");
        return 2;
    }
    size_t chunk = (size_t)atol(argv[3]);
    int runs = atoi(argv[4]);
    if (chunk == 0 || runs <= 0 || runs > MAXRUNS) return 2;
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *p = malloc(n ? n : 1);
    while (p && got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) return 1;
        got += (size_t)r;
    }
    close(fd);
    if (!p) return 1;
    double w[MAXRUNS], u[MAXRUNS];
    for (int k = 0; k < runs; k++) {
        double s0 = sys_s();
        int o = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (o < 0) {
            perror(argv[2]);
            return 1;
        }
        for (size_t at = 0; at < n; at += chunk) {
            size_t m = n - at < chunk ? n - at : chunk;
            if (write(o, p + at, m) != (ssize_t)m) return 1;
        }
        close(o);
        double s1 = sys_s();
        unlink(argv[2]);
        w[k] = s1 - s0, u[k] = sys_s() - s1;
    }
    qsort(w, (size_t)runs, sizeof *w, cmp_d);
    qsort(u, (size_t)runs, sizeof *u, cmp_d);
    double gb = (double)n / 1e9;
    printf("write_floor: %zu bytes in %zu-byte writes: write %.4f s system (%.3f s/GB), "
           "unlink %.4f s (%.3f s/GB); medians of %d\n",
           n, chunk, w[runs / 2], w[runs / 2] / gb, u[runs / 2], u[runs / 2] / gb, runs);
    free(p);
    return 0;
}
