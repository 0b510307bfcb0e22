#include "cli/dryrun_cmd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/container_frame.h"
#include "collector/multiline.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/chunk.h"
#include "core/log.h"
#include "core/plugin.h"
#include "parsers/chain.h"
#include "shipper/recjson.h"

/* Standard input is read this much at a time; a longer line is cut here
 * (and marked truncated), so memory stays bounded whatever comes in. */
#define READ_CAP      (1u << 20)
#define BATCH_RECORDS 1024u
#define SPAN_CAP      8192u /* records framed before they are printed */
#define MAX_LABELS    64u

typedef struct span {
    size_t off, n;
    uint32_t flags;
} span;

typedef struct dryrun {
    const char *input;
    sl_container_frame *frame;
    sl_chain *chain;
    sl_multiline *ml;
    sl_field labels[MAX_LABELS];
    uint32_t nlabels;
    FILE *out;
    span spans[SPAN_CAP]; /* records framed from the current read */
    size_t nspans;
    bool full;     /* framing stopped at SPAN_CAP: more records wait in the read */
    bool skipping; /* inside the cut-off rest of an over-long line */
} dryrun;

static const sl_cfg_node *find_input(sl_cfg *cfg, const char *name, sl_buf *names)
{
    const sl_cfg_node *inputs = sl_cfg_get(sl_cfg_root(cfg), "inputs");
    for (size_t i = 0; inputs && i < inputs->n; i++) {
        const char *n = NULL;
        sl_cfg_str(cfg, inputs->items[i], "name", NULL, &n);
        if (!n) continue;
        if (strcmp(n, name) == 0) return inputs->items[i];
        if (names->len) sl_buf_putc(names, ' ');
        sl_buf_append(names, n, strlen(n));
    }
    return NULL;
}

/* Runs the steps over the spans of data[0, len) and prints the records. */
static int emit(dryrun *d, const char *data, size_t len)
{
    if (d->nspans == 0) return SL_OK;
    sl_chunk *c = sl_chunk_new(len ? len : 1);
    if (!c) return SL_ENOMEM;
    memcpy(c->data, data, len);
    c->len = len;
    int rc = SL_OK;
    sl_buf out;
    sl_buf_init(&out, 0);
    for (size_t first = 0; first < d->nspans && rc == SL_OK; first += BATCH_RECORDS) {
        size_t n = d->nspans - first < BATCH_RECORDS ? d->nspans - first : BATCH_RECORDS;
        sl_batch *b = sl_batch_new((uint32_t)n);
        if (!b || sl_batch_add_chunk(b, c) != SL_OK ||
            sl_batch_set_names(b, d->input, "-") != SL_OK ||
            sl_batch_set_labels(b, d->labels, d->nlabels) != SL_OK) {
            if (b) sl_batch_unref(b);
            rc = SL_ENOMEM;
            break;
        }
        int64_t now = sl_now_ns();
        for (size_t i = 0; i < n; i++) {
            const span *s = &d->spans[first + i];
            sl_record *r = sl_batch_add(b, (sl_slice){c->data + s->off, s->n}, now, 0);
            r->flags = s->flags;
        }
        sl_container_frame_run(d->frame, b);
        sl_chain_run(d->chain, b);
        out.len = 0;
        for (uint32_t i = 0; i < b->nrecords; i++) {
            if (b->records[i].flags & SL_RF_DROPPED) continue;
            sl_recjson_append(&out, b, &b->records[i], SL_RJ_ALL);
            sl_buf_putc(&out, '\n');
        }
        if (out.failed)
            rc = SL_ENOMEM;
        else if (fwrite(out.p, 1, out.len, d->out) != out.len)
            rc = errno == EPIPE ? SL_ECLOSED : SL_EIO; /* `| head`: the reader is done */
        sl_batch_unref(b); /* never acknowledged: nothing to acknowledge */
    }
    sl_buf_free(&out);
    sl_chunk_unref(c);
    d->nspans = 0;
    return rc;
}

static void add_span(dryrun *d, size_t off, size_t n, uint32_t flags)
{
    d->spans[d->nspans++] = (span){off, n, flags};
}

/* Frames the records of data[0, len); returns how many bytes they used
 * (the rest is an unfinished line or multiline group, kept for the next
 * read unless eof). */
static size_t frame(dryrun *d, const char *data, size_t len, bool eof)
{
    size_t pos = 0, gstart = 0;
    uint32_t glines = 0;
    d->full = false;
    while (pos < len) {
        if (d->nspans == SPAN_CAP) {
            d->full = true;
            break;
        }
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (data + pos)) : len - pos;
        if (d->skipping) {
            d->skipping = !nl;
            pos += nl ? line_len + 1 : line_len;
            continue;
        }
        if (!nl && !eof) break; /* the rest comes with the next read */
        if (d->ml) {
            bool joins = glines && glines < sl_multiline_max_lines(d->ml) &&
                         pos + line_len - gstart <= sl_multiline_max_bytes(d->ml) &&
                         sl_multiline_continues(d->ml, data + pos, line_len);
            if (!joins) {
                if (glines) add_span(d, gstart, pos - 1 - gstart, 0);
                gstart = pos;
                glines = 0;
            }
            glines++;
            pos += line_len + (nl ? 1 : 0);
            continue;
        }
        add_span(d, pos, line_len, 0);
        pos += line_len + (nl ? 1 : 0);
    }
    if (glines) {
        /* An open group may go on in the next read, unless nothing comes or
         * it fills the whole read. */
        if ((eof && pos == len && !d->full) || (gstart == 0 && len == READ_CAP)) {
            size_t end = pos > gstart && data[pos - 1] == '\n' ? pos - 1 : pos;
            add_span(d, gstart, end - gstart, 0);
        } else {
            pos = gstart;
        }
    }
    if (pos == 0 && len == READ_CAP) {
        /* One line fills the whole read: cut it, skip its rest. */
        add_span(d, 0, len, SL_RF_TRUNCATED);
        d->skipping = true;
        pos = len;
    }
    return pos;
}

int sl_dryrun_stdin(sl_cfg *cfg, const char *input, int fd, FILE *out, sl_err *err)
{
    sl_buf names;
    sl_buf_init(&names, 0);
    const sl_cfg_node *node = find_input(cfg, input, &names);
    if (!node) {
        sl_buf_putc(&names, '\0');
        int rc = sl_errf(err, SL_EINVAL, "no input named '%s' (inputs: %s)", input,
                         names.failed ? "?" : names.p);
        sl_buf_free(&names);
        return rc;
    }
    sl_buf_free(&names);
    /* The span table is large: on the heap, not the stack. */
    dryrun *d = calloc(1, sizeof *d);
    if (!d) return sl_errf(err, SL_ENOMEM, "out of memory");
    d->input = input;
    d->out = out;
    const char *type = "";
    sl_cfg_str(cfg, node, "type", "", &type);
    sl_input_labels(cfg, node, d->labels, MAX_LABELS, &d->nlabels);
    if (sl_chain_new(cfg, sl_cfg_get(node, "parse"), input, &d->chain) != 0) {
        free(d);
        return sl_errf(err, SL_EINVAL, "input %s: invalid parse steps", input);
    }
    int frc = sl_container_frame_new(cfg, sl_cfg_get(node, "parse"), input, &d->frame);
    if (frc != SL_OK) {
        sl_chain_free(d->chain);
        free(d);
        return sl_errf(err, frc, "input %s: cannot set up container framing", input);
    }
    /* Multiline framing belongs to the file input; journald entries are
     * records already, one per line here. */
    if (strcmp(type, "file") == 0 &&
        sl_multiline_new(cfg, sl_cfg_get(node, "multiline"), &d->ml) != 0) {
        sl_container_frame_free(d->frame);
        sl_chain_free(d->chain);
        free(d);
        return sl_errf(err, SL_EINVAL, "input %s: invalid multiline", input);
    }
    char *buf = malloc(READ_CAP);
    int rc = buf ? SL_OK : sl_errf(err, SL_ENOMEM, "out of memory");
    size_t len = 0;
    bool eof = false;
    while (rc == SL_OK && !eof) {
        ssize_t r = read(fd, buf + len, READ_CAP - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = sl_errf(err, SL_EIO, "reading standard input: %s", strerror(errno));
            break;
        }
        eof = r == 0;
        len += (size_t)r;
        if (!eof && len < READ_CAP && !memchr(buf + len - (size_t)r, '\n', (size_t)r)) continue;
        do {
            size_t used = frame(d, buf, len, eof);
            if ((rc = emit(d, buf, used)) != SL_OK) {
                sl_errf(err, rc,
                        rc == SL_ECLOSED ? "output closed"
                        : rc == SL_EIO   ? "writing records failed"
                                         : "out of memory");
                break;
            }
            memmove(buf, buf + used, len - used);
            len -= used;
        } while (d->full);
    }
    if (rc == SL_OK && fflush(out) != 0)
        rc = errno == EPIPE ? sl_errf(err, SL_ECLOSED, "output closed")
                            : sl_errf(err, SL_EIO, "writing records failed");
    free(buf);
    sl_multiline_free(d->ml);
    sl_container_frame_free(d->frame);
    sl_chain_free(d->chain);
    free(d);
    return rc;
}
