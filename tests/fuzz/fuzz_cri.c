/* CRI and docker lines, fed line by line through one joiner; the input is
 * also tried as a Kubernetes log path. Each record the joiner made must give
 * valid JSON (recjson_valid.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "collector/container_frame.h"
#include "parsers/cri.h"
#include "tests/fuzz/recjson_valid.h"

static void inside(const char *p, size_t n, sl_slice s)
{
    if (s.n && (s.p < p || s.p + s.n > p + n)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    sl_k8s_meta m;
    if (sl_k8s_from_path(p, size, &m) == 0) {
        inside(p, size, m.namespace_);
        inside(p, size, m.pod);
        inside(p, size, m.container);
        inside(p, size, m.container_id);
        inside(p, size, m.pod_uid);
    }
    sl_cri_joiner *j = NULL;
    sl_batch *b = sl_batch_new(1);
    if (sl_cri_joiner_new(256, &j) != 0 || !b) goto out;
    size_t s = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && p[i] != '\n') continue;
        const char *l = p + s;
        size_t n = i - s;
        sl_cri_line cl;
        if (sl_cri_parse(l, n, &cl, NULL) == 0) inside(l, n, cl.msg);
        if (sl_docker_parse(l, n, &cl, NULL) == 0) {
            inside(l, n, cl.msg);
            char *u = malloc(cl.msg.n + 1);
            if (u && sl_docker_unescape(cl.msg, u) > cl.msg.n) abort();
            free(u);
        }
        sl_record r = {.line = {l, n}};
        if (sl_cri_join_record(b, &r, false, j, NULL, NULL) != 0)
            sl_cri_join_record(b, &r, true, j, NULL, NULL);
        fuzz_recjson_valid(b, &r);
        /* Each stream holds less than max_bytes (256): a message reaching
         * it is given out at once. */
        if (sl_cri_joiner_pending(j) > 2 * 255) abort();
        s = i + 1;
    }
    /* Unfinished messages come out whole when their time is up. */
    sl_slice msg;
    int64_t t;
    int stream;
    while (sl_cri_joiner_take(j, INT64_MAX, &msg, &t, &stream) == 0)
        if (msg.n > 255 || (stream != SL_CRI_STDOUT && stream != SL_CRI_STDERR)) abort();
    if (sl_cri_joiner_pending(j) != 0) abort();
out:
    sl_cri_joiner_free(j);
    if (b) sl_batch_unref(b);
    return 0;
}
