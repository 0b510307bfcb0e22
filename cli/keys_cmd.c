#include "cli/keys_cmd.h"

#include <stdbool.h>
#include <string.h>

#include "cli/agent.h"
#include "core/config.h"
#include "parsers/step.h"
#include "pipeline/pipeline.h"

typedef struct printer {
    FILE *out;
    bool markdown;
    const char *only; /* print only sections whose type or title is this */
    int broken;       /* keys with no doc or a default that does not parse */
    bool printed;
} printer;

/* A Markdown cell: '|' would end it. */
static void cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

/* The type column: "size, 16 to 64MiB", or an enum's choices. */
static void type_text(const sl_cfg_key *k, bool markdown, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    if (k->type != SL_KEY_ENUM || !k->choices) {
        char range[96];
        sl_cfg_key_range(k, range, sizeof range);
        snprintf(buf, cap, "%s%s%s", sl_cfg_type_name(k->type), *range ? ", " : "", range);
        return;
    }
    for (const char *p = k->choices; *p && o < cap;) {
        size_t n = strcspn(p, "|");
        int w = snprintf(buf + o, cap - o, markdown ? "`%.*s`%s" : "%.*s%s", (int)n, p,
                         p[n] ? (markdown ? " | " : "|") : "");
        if (w < 0) break;
        o += (size_t)w;
        p += n + (p[n] != '\0');
    }
}

static void row(printer *p, const char *step, const char *parent, const sl_cfg_key *k)
{
    sl_err err;
    union {
        char bytes[16];
        void *align;
    } scratch;
    if (!k->doc || !*k->doc) {
        fprintf(stderr, "sluice keys: key '%s' has no doc\n", k->name);
        p->broken++;
    }
    if (k->def && sl_cfg_key_default(k, &scratch, &err) != SL_OK) {
        fprintf(stderr, "sluice keys: %s\n", err.msg);
        p->broken++;
    }
    FILE *out = p->out;
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", parent ? parent : "", parent ? "." : "", k->name);
    char type[256];
    type_text(k, p->markdown, type, sizeof type);
    if (p->markdown) {
        fputs("| ", out);
        if (step) fprintf(out, "`%s` | ", step);
        fprintf(out, "`%s` | ", name);
        cell(out, type);
        fputs(" | ", out);
        if (k->required)
            fputs("required", out);
        else if (k->def)
            cell(out, "`"), cell(out, k->def), cell(out, "`");
        else
            fputs("—", out);
        fputs(" | ", out);
        cell(out, k->doc);
        fputs(" |\n", out);
        return;
    }
    fprintf(out, "  %-28s %-22s %-16s %s%s\n", name, type,
            k->required ? "required"
            : k->def    ? k->def
                        : "-",
            k->secret ? "[secret] " : "", k->doc ? k->doc : "");
}

static void rows(printer *p, const char *step, const sl_cfg_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        row(p, step, NULL, &keys[i]);
        for (size_t j = 0; j < keys[i].nsub; j++) row(p, step, keys[i].name, &keys[i].sub[j]);
    }
}

static bool wanted(const printer *p, const char *title, const char *type)
{
    return !p->only || !strcmp(p->only, title) || (type && !strcmp(p->only, type));
}

static void begin(printer *p, const char *title, bool step_column)
{
    p->printed = true;
    if (!p->markdown) {
        fprintf(p->out, "%s\n", title);
        return;
    }
    fprintf(p->out, "<!-- sluice keys: %s -->\n", title);
    fprintf(p->out, step_column
                        ? "| step | key | type | default | meaning |\n|---|---|---|---|---|\n"
                        : "| key | type | default | meaning |\n|---|---|---|---|\n");
}

static void end(printer *p)
{
    fputs(p->markdown ? "<!-- end sluice keys -->\n\n" : "\n", p->out);
}

static void section(printer *p, const char *title, const char *type, const sl_cfg_key *keys,
                    size_t n)
{
    if (!wanted(p, title, type)) return;
    begin(p, title, false);
    rows(p, NULL, keys, n);
    end(p);
}

int sl_cli_keys(int argc, char **argv, FILE *out)
{
    printer p = {.out = out};
    char only[128] = "";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--markdown")) {
            p.markdown = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fprintf(out, "usage: sluice keys [--markdown] [SECTION|TYPE]\n\n"
                         "Prints every configuration key with its type, default and meaning,\n"
                         "from the key tables `sluice check` checks against: the top level,\n"
                         "each input, parse step and sink type, and every sink's buffer.\n"
                         "SECTION (\"input file\", \"step json\", \"sink buffer\") or TYPE (loki,\n"
                         "journald, sample) prints one part. --markdown prints the README's\n"
                         "tables.\n");
            return 0;
        } else if (argv[i][0] != '-' && !only[0]) {
            /* "sink loki" as one argument or two. */
            snprintf(only, sizeof only, "%s%s%s", argv[i],
                     i + 1 < argc && argv[i + 1][0] != '-' ? " " : "",
                     i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : "");
            i += i + 1 < argc && argv[i + 1][0] != '-';
            p.only = only;
        } else {
            fprintf(stderr, "sluice keys: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    size_t n;
    const sl_cfg_key *keys = sl_agent_keys(&n);
    section(&p, "top", NULL, keys, n);
    char title[64];
    for (size_t i = 0; sl_pipeline_input_type(i); i++) {
        const sl_input_ops *ops = sl_pipeline_input_type(i);
        snprintf(title, sizeof title, "input %s", ops->type);
        section(&p, title, ops->type, ops->keys, ops->nkeys);
    }
    /* The README has one table of every step's keys; a terminal, a
     * section per step. */
    bool steps = wanted(&p, "steps", NULL);
    for (size_t i = 0; !steps && sl_step_at(i); i++) {
        snprintf(title, sizeof title, "step %s", sl_step_at(i)->name);
        steps = wanted(&p, title, sl_step_at(i)->name);
    }
    if (steps && p.markdown) begin(&p, "steps", true);
    for (size_t i = 0; steps && sl_step_at(i); i++) {
        const sl_step_ops *ops = sl_step_at(i);
        snprintf(title, sizeof title, "step %s", ops->name);
        if (!ops->nkeys || !(wanted(&p, "steps", NULL) || wanted(&p, title, ops->name))) continue;
        if (!p.markdown) begin(&p, title, false);
        rows(&p, p.markdown ? ops->name : NULL, ops->keys, ops->nkeys);
        if (!p.markdown) end(&p);
    }
    if (steps && p.markdown) end(&p);
    for (size_t i = 0; sl_pipeline_sink_type(i); i++) {
        const sl_sink_ops *ops = sl_pipeline_sink_type(i);
        snprintf(title, sizeof title, "sink %s", ops->type);
        section(&p, title, ops->type, ops->keys, ops->nkeys);
    }
    keys = sl_pipeline_buffer_keys(&n);
    section(&p, "sink buffer", "buffer", keys, n);
    if (!p.printed) {
        fprintf(stderr, "sluice keys: no section or type '%s'\n", p.only);
        return 2;
    }
    return p.broken ? 1 : 0;
}
