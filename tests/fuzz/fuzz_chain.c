/* The parse chain as an input runs it: one fixed chain of many steps over
 * the fuzzer's bytes split into lines, after the container framing its
 * leading cri step asks for. An empty line ends a batch; batches
 * alternate between two container log sources, so partial CRI lines are
 * held and joined across batches and sources; what is unfinished at the
 * end is taken out as when flush_partial_after passes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/container_frame.h"
#include "core/batch.h"
#include "core/config.h"
#include "parsers/chain.h"

#define BATCH_MAX 16

static const char chain_yaml[] = "parse:\n"
                                 "  - cri: {max_bytes: 1KiB}\n"
                                 "  - json: {flatten: true}\n"
                                 "  - logfmt: {field: kv}\n"
                                 "  - regex: {field: req, pattern: '^(?<method>[A-Z]+) "
                                 "(?<path>\\S+)( (?<proto>HTTP/[0-9.]+))?$'}\n"
                                 "  - regex: {field: access, builtin: nginx_combined}\n"
                                 "  - syslog: {field: sys}\n"
                                 "  - timestamp: {field: ts}\n"
                                 "  - timestamp: {field: t2, format: '%d/%b/%Y:%H:%M:%S %z'}\n"
                                 "  - kubernetes:\n"
                                 "  - drop: {field: level, regex: '^debug$'}\n"
                                 "  - keep: {regex: '^(?!SKIP)'}\n"
                                 "  - labels: {lvl: level, app: app}\n"
                                 "  - rename: {msg: message}\n"
                                 "  - remove: {fields: [secret]}\n"
                                 "  - sample: {one_in: 2, field: trace}\n";

static const char *const sources[] = {
    "/var/log/containers/a-1_ns_c-0123456789abcdef.log",
    "/var/log/pods/ns_b-2_uid/c/0.log",
};

static sl_chain *the_chain(sl_container_frame **frame)
{
    static sl_chain *c;
    static sl_container_frame *f;
    static sl_cfg *cfg;
    if (!c) {
        cfg = sl_cfg_new();
        if (!cfg || sl_cfg_load_string(cfg, "fuzz.yml", chain_yaml, strlen(chain_yaml)) != 0 ||
            sl_chain_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "fuzz", &c) != 0 || !c ||
            sl_container_frame_new(cfg, sl_cfg_get(sl_cfg_root(cfg), "parse"), "fuzz", &f) !=
                SL_OK ||
            !f)
            abort();
    }
    *frame = f;
    return c;
}

static void check(const sl_batch *b)
{
    for (uint32_t i = 0; i < b->nrecords; i++) {
        const sl_record *r = &b->records[i];
        bool marked = (r->flags & SL_RF_PARSE_ERROR) != 0;
        const sl_field *pe = sl_record_field(r, "parse_error", 11);
        /* A marked record names its step (unless the arena ran out). */
        if (marked && pe && pe->val.n == 0) abort();
        for (uint32_t k = 0; k < r->nfields; k++) {
            const sl_field *f = &r->fields[k];
            /* Touch every byte so ASan sees a slice past its memory. */
            volatile char sink = 0;
            for (size_t m = 0; m < f->key.n; m++) sink ^= f->key.p[m];
            for (size_t m = 0; m < f->val.n; m++) sink ^= f->val.p[m];
            (void)sink;
        }
        volatile char sink = 0;
        for (size_t m = 0; m < r->line.n; m++) sink ^= r->line.p[m];
        (void)sink;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_container_frame *f;
    sl_chain *c = the_chain(&f);
    /* Lines are copied into one buffer the batches point into, as a chunk. */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    sl_batch *b = NULL;
    unsigned nb = 0;
    size_t s = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && copy[i] != '\n') continue;
        size_t n = i - s;
        if (!b) {
            b = sl_batch_new(BATCH_MAX);
            if (!b || sl_batch_set_names(b, "fuzz", sources[nb++ % 2]) != 0) break;
        }
        if (n > 0) sl_batch_add(b, (sl_slice){copy + s, n}, (int64_t)1700000000 * 1000000000, i);
        if (n == 0 || b->nrecords == BATCH_MAX || i == size) {
            sl_container_frame_run(f, b);
            sl_chain_run(c, b);
            check(b);
            sl_batch_unref(b);
            b = NULL;
        }
        s = i + 1;
    }
    if (b) sl_batch_unref(b);
    /* Unfinished container messages, shipped as their time is up (all of
     * them here): each a batch of its own, run through the later steps. */
    for (sl_batch *p; (p = sl_container_frame_take(f, INT64_MAX));) {
        if (p->nrecords == 0 || p->nrecords > 2) abort();
        sl_chain_run(c, p);
        check(p);
        sl_batch_unref(p);
    }
    free(copy);
    return 0;
}
