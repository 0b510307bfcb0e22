/* Fuzz target for the site.env parser (cli/conf_files.c): any bytes are
 * parsed as NAME=value lines. Properties checked (abort on violation):
 *   - every variable reported has a name of letters, digits and '_' not
 *     starting with a digit, and a non-empty value without a newline;
 *   - an error names the file and a line. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/conf_files.h"

static int check_var(void *arg, const char *name, const char *value)
{
    (void)arg;
    if (!*name || isdigit((unsigned char)name[0]) || !*value || strchr(value, '\n')) abort();
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sl_err err = {0};
    if (sl_conf_parse_env(text, size, "site.env", check_var, NULL, &err) != SL_OK &&
        strncmp(err.msg, "site.env", 8) != 0)
        abort();
    free(text);
    return 0;
}
