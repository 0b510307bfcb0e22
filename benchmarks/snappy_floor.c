/* Is libsnappy's compressor the floor for the Loki path? (decision 0062)
 *
 *   snappy_floor CORPUS [MIB]
 *
 * Reads the first MIB MiB (default 100) of a newline-separated corpus,
 * lays its lines out as the Loki sink's protobuf lays out entries (one
 * stream; each entry a timestamp and the line) and cuts that into 1 MiB
 * requests, as the sink compresses them. Each request is compressed by
 * libsnappy (`snappy_compress`, the sink's call) and by a plain greedy
 * hash-table encoder writing the same snappy block format, in three
 * settings (bytes hashed, table size, first search step); per request the
 * fastest of 5 tries of each, taken in turn, so load on the machine hits
 * both alike. Every output of the plain encoder is decoded by libsnappy
 * and compared byte for byte. Prints MB/s, the compressed share, the time
 * against libsnappy's, and the copies and literals it wrote per MB: the
 * per-token cost, not the search, is what sets the speed on log lines.
 *
 * The plain encoder is a measuring stick, not a candidate: the sink uses
 * Debian's libsnappy (decision 0062 says why). */
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REQ_BYTES (1u << 20)
#define TRIES     5
#define WINDOW    65535u

typedef struct tokens {
    uint64_t copies, literals, literal_bytes;
} tokens;

static inline uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint8_t *put_varint(uint8_t *o, uint64_t v)
{
    for (; v >= 0x80; v >>= 7) *o++ = (uint8_t)(v | 0x80);
    *o++ = (uint8_t)v;
    return o;
}

static inline uint8_t *emit_literal(uint8_t *o, const uint8_t *s, size_t n, tokens *t)
{
    size_t m = n - 1;
    t->literals++;
    t->literal_bytes += n;
    if (m < 60) {
        *o++ = (uint8_t)(m << 2);
    } else if (m < 256) {
        *o++ = 60 << 2;
        *o++ = (uint8_t)m;
    } else if (m < 65536) {
        *o++ = 61 << 2;
        *o++ = (uint8_t)m;
        *o++ = (uint8_t)(m >> 8);
    } else if (m < (1u << 24)) {
        *o++ = 62 << 2;
        *o++ = (uint8_t)m;
        *o++ = (uint8_t)(m >> 8);
        *o++ = (uint8_t)(m >> 16);
    } else {
        *o++ = 63 << 2;
        *o++ = (uint8_t)m;
        *o++ = (uint8_t)(m >> 8);
        *o++ = (uint8_t)(m >> 16);
        *o++ = (uint8_t)(m >> 24);
    }
    memcpy(o, s, n);
    return o + n;
}

/* As libsnappy's EmitCopy: 64-byte pieces, then a 1-byte-offset copy when
 * it fits, else a 2-byte-offset one. */
static inline uint8_t *emit_copy(uint8_t *o, size_t off, size_t len, tokens *t)
{
    t->copies++;
    while (len >= 68) {
        *o++ = (uint8_t)(2 | (63 << 2));
        *o++ = (uint8_t)off;
        *o++ = (uint8_t)(off >> 8);
        len -= 64;
    }
    if (len > 64) {
        *o++ = (uint8_t)(2 | (59 << 2));
        *o++ = (uint8_t)off;
        *o++ = (uint8_t)(off >> 8);
        len -= 60;
    }
    if (len < 12 && off < 2048) {
        *o++ = (uint8_t)(1 | ((len - 4) << 2) | ((off >> 8) << 5));
        *o++ = (uint8_t)off;
    } else {
        *o++ = (uint8_t)(2 | ((len - 1) << 2));
        *o++ = (uint8_t)off;
        *o++ = (uint8_t)(off >> 8);
    }
    return o;
}

/* One greedy encoder per setting: HASHED bytes hashed (4 or 6), a table of
 * 2^TBITS positions, the search step starting at STEP0 and growing by one
 * every 32 misses (libsnappy's heuristic). */
#define PLAIN_ENCODER(NAME, HASHED, TBITS, STEP0)                                                  \
    static inline uint32_t NAME##_hash(const uint8_t *p)                                           \
    {                                                                                              \
        if (HASHED == 4) return (load32(p) * 0x1e35a7bdu) >> (32 - TBITS);                         \
        return (uint32_t)(((load64(p) << (64 - 8 * HASHED)) * 0xcf1bbcdcb7a56463ull) >>            \
                          (64 - TBITS));                                                           \
    }                                                                                              \
    static size_t NAME(const uint8_t *in, size_t n, uint8_t *out, tokens *t)                       \
    {                                                                                              \
        static uint32_t tab[1u << TBITS];                                                          \
        uint8_t *o = put_varint(out, n);                                                           \
        const uint8_t *end = in + n, *lit = in, *ip = in + 1;                                      \
        if (n < 16) goto last;                                                                     \
        memset(tab, 0, sizeof tab);                                                                \
        const uint8_t *ilimit = end - 15;                                                          \
        while (ip < ilimit) {                                                                      \
            uint32_t skip = 32u * STEP0;                                                           \
            const uint8_t *cand;                                                                   \
            for (;;) {                                                                             \
                uint32_t h = NAME##_hash(ip);                                                      \
                cand = in + tab[h];                                                                \
                tab[h] = (uint32_t)(ip - in);                                                      \
                if (cand < ip && (size_t)(ip - cand) <= WINDOW && load32(cand) == load32(ip))      \
                    break;                                                                         \
                ip += skip++ >> 5;                                                                 \
                if (ip >= ilimit) goto last;                                                       \
            }                                                                                      \
            while (ip > lit && cand > in && ip[-1] == cand[-1]) {                                  \
                ip--;                                                                              \
                cand--;                                                                            \
            }                                                                                      \
            if (ip > lit) o = emit_literal(o, lit, (size_t)(ip - lit), t);                         \
            for (;;) {                                                                             \
                const uint8_t *s = ip + 4, *c = cand + 4;                                          \
                while (s + 8 <= end) {                                                             \
                    uint64_t x = load64(s) ^ load64(c);                                            \
                    if (x) {                                                                       \
                        s += __builtin_ctzll(x) >> 3;                                              \
                        goto matched;                                                              \
                    }                                                                              \
                    s += 8;                                                                        \
                    c += 8;                                                                        \
                }                                                                                  \
                while (s < end && *s == *c) {                                                      \
                    s++;                                                                           \
                    c++;                                                                           \
                }                                                                                  \
            matched:                                                                               \
                o = emit_copy(o, (size_t)(ip - cand), (size_t)(s - ip), t);                        \
                ip = lit = s;                                                                      \
                if (ip >= ilimit) goto last;                                                       \
                tab[NAME##_hash(ip - 2)] = (uint32_t)(ip - 2 - in);                                \
                uint32_t h = NAME##_hash(ip);                                                      \
                cand = in + tab[h];                                                                \
                tab[h] = (uint32_t)(ip - in);                                                      \
                if (!(cand < ip && (size_t)(ip - cand) <= WINDOW && load32(cand) == load32(ip))) { \
                    ip++;                                                                          \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    last:                                                                                          \
        if (lit < end) o = emit_literal(o, lit, (size_t)(end - lit), t);                           \
        return (size_t)(o - out);                                                                  \
    }

PLAIN_ENCODER(plain_h4_t14, 4, 14, 1)
PLAIN_ENCODER(plain_h6_t14, 6, 14, 1)
PLAIN_ENCODER(plain_h6_t12_s2, 6, 12, 2)

typedef size_t (*encoder)(const uint8_t *, size_t, uint8_t *, tokens *);
static const struct {
    const char *name;
    encoder fn;
} plains[] = {
    {"plain, 4 bytes hashed, 16K table", plain_h4_t14},
    {"plain, 6 bytes hashed, 16K table", plain_h6_t14},
    {"plain, 6 bytes hashed, 4K table, step 2", plain_h6_t12_s2},
};
#define NPLAINS (sizeof plains / sizeof plains[0])

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The corpus's lines as Loki entries: StreamAdapter.entries (2) holding
 * the timestamp {seconds, nanos} (1) and the line (2). */
static uint8_t *protobuf_of(const uint8_t *raw, size_t n, size_t *out_n)
{
    uint8_t *pb = malloc(n + n / 4 + 64);
    if (!pb) return NULL;
    size_t pn = 0, start = 0;
    uint64_t sec = 1700000000, nsec = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] != '\n') continue;
        size_t len = i - start;
        uint8_t head[40], *h = head;
        nsec = (nsec + 1234567) % 1000000000;
        *h++ = 0x0A;
        uint8_t *tslen = h++;
        *h++ = 0x08;
        h = put_varint(h, sec);
        *h++ = 0x10;
        h = put_varint(h, nsec);
        *tslen = (uint8_t)(h - tslen - 1);
        *h++ = 0x12;
        h = put_varint(h, len);
        pb[pn++] = 0x12;
        pn = (size_t)(put_varint(pb + pn, (size_t)(h - head) + len) - pb);
        memcpy(pb + pn, head, (size_t)(h - head));
        pn += (size_t)(h - head);
        memcpy(pb + pn, raw + start, len);
        pn += len;
        start = i + 1;
    }
    *out_n = pn;
    return pb;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: snappy_floor CORPUS [MIB]\n");
        return 2;
    }
    size_t want = (size_t)(argc > 2 ? atoi(argv[2]) : 100) << 20;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    uint8_t *raw = malloc(want);
    size_t n = raw ? fread(raw, 1, want, f) : 0;
    fclose(f);
    size_t pn = 0;
    uint8_t *pb = n ? protobuf_of(raw, n, &pn) : NULL;
    size_t cap = snappy_max_compressed_length(REQ_BYTES) + 64;
    uint8_t *out = malloc(cap), *back = malloc(REQ_BYTES);
    if (!pb || !out || !back) {
        fprintf(stderr, "snappy_floor: no input or out of memory\n");
        return 1;
    }
    double t_lib = 0, t_plain[NPLAINS] = {0};
    size_t z_lib = 0, z_plain[NPLAINS] = {0};
    tokens tk[NPLAINS] = {{0}};
    for (size_t off = 0; off < pn; off += REQ_BYTES) {
        size_t m = pn - off < REQ_BYTES ? pn - off : REQ_BYTES;
        double best_lib = 1e9, best[NPLAINS];
        size_t got_lib = 0, got[NPLAINS];
        for (size_t k = 0; k < NPLAINS; k++) best[k] = 1e9;
        for (int rep = 0; rep < TRIES; rep++) {
            double t0 = cpu_now();
            got_lib = cap;
            if (snappy_compress((const char *)pb + off, m, (char *)out, &got_lib) != SNAPPY_OK) {
                fprintf(stderr, "snappy_floor: libsnappy failed\n");
                return 1;
            }
            double t1 = cpu_now();
            if (t1 - t0 < best_lib) best_lib = t1 - t0;
            for (size_t k = 0; k < NPLAINS; k++) {
                tokens t = {0};
                t0 = cpu_now();
                got[k] = plains[k].fn(pb + off, m, out, &t);
                t1 = cpu_now();
                if (t1 - t0 < best[k]) best[k] = t1 - t0;
                size_t bl = REQ_BYTES;
                if (snappy_uncompress((const char *)out, got[k], (char *)back, &bl) != SNAPPY_OK ||
                    bl != m || memcmp(back, pb + off, m) != 0) {
                    fprintf(stderr, "snappy_floor: %s wrote a block that does not decode\n",
                            plains[k].name);
                    return 1;
                }
                if (rep == 0) {
                    tk[k].copies += t.copies;
                    tk[k].literals += t.literals;
                    tk[k].literal_bytes += t.literal_bytes;
                }
            }
        }
        t_lib += best_lib;
        z_lib += got_lib;
        for (size_t k = 0; k < NPLAINS; k++) {
            t_plain[k] += best[k];
            z_plain[k] += got[k];
        }
    }
    double mb = (double)pn / 1e6;
    printf("protobuf of %zu bytes of lines: %zu bytes in %zu requests of 1 MiB\n", n, pn,
           (pn + REQ_BYTES - 1) / REQ_BYTES);
    printf("  %-42s %6.0f MB/s  %.4f of the bytes\n", "libsnappy (snappy_compress)", mb / t_lib,
           (double)z_lib / (double)pn);
    for (size_t k = 0; k < NPLAINS; k++)
        printf("  %-42s %6.0f MB/s  %.4f of the bytes  %.2fx libsnappy's time  per MB: %.0f "
               "copies, %.0f literals (%.0f bytes)\n",
               plains[k].name, mb / t_plain[k], (double)z_plain[k] / (double)pn, t_plain[k] / t_lib,
               (double)tk[k].copies / mb, (double)tk[k].literals / mb,
               (double)tk[k].literal_bytes / mb);
    free(raw);
    free(pb);
    free(out);
    free(back);
    return 0;
}
