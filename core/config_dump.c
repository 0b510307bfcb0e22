/* Dumping the configuration as YAML (`sluice check --dump`), with
 * secrets redacted. */
#include "core/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/redact.h"

/* YAML limits implicit keys to 1024 characters; longer keys are dumped in
 * the explicit `? key` form. Measured in bytes, so this is conservative. */
#define DUMP_MAX_IMPLICIT_KEY 512

/* Dump: YAML that loads back to the same values. Every value is double
 * quoted with escapes, so no string can turn into syntax, a null or a
 * number's lookalike, and `$` in values is written `$$` so nothing expands
 * twice. Keys are never expanded, so they are written as they are, quoted
 * only when they are not plain words. */
static bool secret_key(const char *k)
{
    static const char *const marks[] = {"password",   "token",   "secret", "authorization",
                                        "credential", "api_key", "apikey", "private_key"};
    char low[128];
    size_t n = strlen(k);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)k[i]);
    low[n] = '\0';
    if (n > 5 && strcmp(low + n - 5, "_file") == 0) return false; /* a path, not the secret */
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (strstr(low, marks[i])) return true;
    return strcmp(low, "key") == 0 || (n >= 4 && strcmp(low + n - 4, "_key") == 0);
}

static void put_quoted(FILE *out, const char *s, size_t n, bool dollar)
{
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = u[i];
        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch == '$' && dollar) {
            fputs("$$", out);
        } else if (ch == '\n') {
            fputs("\\n", out);
        } else if (ch == '\t') {
            fputs("\\t", out);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        } else if (ch == 0xC2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) {
            /* C1 controls (NEL among them) are not printable or fold as
             * line breaks inside quotes: escape the code point. */
            fprintf(out, "\\x%02x", u[++i]);
        } else if (ch == 0xE2 && i + 2 < n && u[i + 1] == 0x80 &&
                   (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
            fputs(u[i + 2] == 0xA8 ? "\\L" : "\\P", out);
            i += 2;
        } else if (ch == 0xEF && i + 2 < n && u[i + 1] == 0xBB && u[i + 2] == 0xBF) {
            fputs("\\uFEFF", out);
            i += 2;
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
}

/* Conservative: only characters that can never start or change YAML
 * syntax. */
static bool plain_key(const char *s, size_t n)
{
    if (n == 0 || n > 256) return false;
    if (!isalnum((unsigned char)s[0]) && s[0] != '/' && s[0] != '_' && s[0] != '.') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '_' && ch != '-' && ch != '.' && ch != '/' && ch != '+')
            return false;
    }
    return true;
}

static void dump_collection(const sl_cfg_node *n, FILE *out, int indent, bool redact);

static void dump_value(const sl_cfg_node *v, FILE *out, int indent, bool redact)
{
    redact = redact || ((const mnode *)v)->secret;
    if (redact && v->kind != SL_CFG_NULL) {
        fputs(" \"<redacted>\"\n", out);
        return;
    }
    switch (v->kind) {
    case SL_CFG_NULL:
        fputs(" null\n", out);
        break;
    case SL_CFG_SCALAR:
        fputc(' ', out);
        if (sl_redact_wanted(v->scalar, v->scalar_len)) { /* credentials in a URL */
            /* Each hidden part grows by at most "<redacted>". */
            size_t cap = v->scalar_len * 4 + 64;
            char *shown = malloc(cap);
            if (shown)
                put_quoted(out, shown, sl_redact_text(shown, cap, v->scalar, v->scalar_len), true);
            else
                fputs("\"<redacted>\"", out);
            free(shown);
        } else {
            put_quoted(out, v->scalar, v->scalar_len, true);
        }
        fputc('\n', out);
        break;
    case SL_CFG_MAP:
    case SL_CFG_SEQ:
        if (v->n == 0) {
            fputs(v->kind == SL_CFG_MAP ? " {}\n" : " []\n", out);
            break;
        }
        fputc('\n', out);
        dump_collection(v, out, indent + 2, false);
        break;
    }
}

static void dump_collection(const sl_cfg_node *n, FILE *out, int indent, bool redact)
{
    for (size_t i = 0; i < n->n; i++) {
        fprintf(out, "%*s", indent, "");
        if (n->kind == SL_CFG_SEQ) {
            fputc('-', out);
            dump_value(n->items[i], out, indent, redact);
            continue;
        }
        const char *k = n->keys[i];
        size_t klen = strlen(k);
        bool secret = redact || secret_key(k);
        if (klen > DUMP_MAX_IMPLICIT_KEY) {
            fputs("? ", out);
            put_quoted(out, k, klen, false);
            fprintf(out, "\n%*s:", indent, "");
        } else {
            if (plain_key(k, klen))
                fputs(k, out);
            else
                put_quoted(out, k, klen, false);
            fputc(':', out);
        }
        dump_value(n->items[i], out, indent, secret);
    }
}

int sl_cfg_dump(const sl_cfg *c, FILE *out)
{
    if (c->root->n == 0)
        fputs("{}\n", out);
    else
        dump_collection(c->root, out, 0, false);
    return ferror(out) ? -1 : 0;
}
