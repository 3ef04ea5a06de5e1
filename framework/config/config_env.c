/* config_env.c — "${env:NAME}" and "${env:NAME,default}" inside scalar values.
 *
 * Expanded once, when a file is loaded (after includes). A node keeps its mark and its
 * style, so a plain `lr: ${env:LR,1e-3}` is read as a number and a quoted one as a string.
 * The default runs to the first '}' and is used only when NAME is unset (set but empty
 * gives an empty value), like the shell's ${NAME-default}. "$${" is a literal "${"; any
 * other "${…}" is an error, so a typo (${LR}, ${env:LR) does not pass as text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/text.h"
#include "config_internal.h"

static int is_name(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* Text for a message: the len bytes at s, cut and with control characters escaped. */
static void excerpt(const char *s, size_t len, char *buf, size_t size)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        snprintf(buf, size, "…");
        return;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    mfi_config_excerpt(copy, buf, size);
    free(copy);
}

/* Expand one scalar's text; 0, or 1 after reporting its first problem. */
static int expand(mf_config *n, mf_error *err)
{
    if (!strstr(n->text, "${"))
        return 0;
    mfi_text out = {0};
    char what[4 * MFI_CONFIG_EXCERPT + 16];
    mfi_text_add(&out, "", 0);
    for (const char *p = n->text; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            mfi_text_add(&out, "${", 2);
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            mfi_text_add(&out, p++, 1);
            continue;
        }
        const char *close = strchr(p + 2, '}');
        if (!close) {
            excerpt(p, strlen(p), what, sizeof what);
            mfi_config_report(err, &n->mark, n->path,
                              "'%s' has no closing '}' (write $${ for a literal '${')", what);
            goto fail;
        }
        if (strncmp(p + 2, "env:", 4) != 0) {
            excerpt(p, (size_t)(close + 1 - p), what, sizeof what);
            mfi_config_report(err, &n->mark, n->path,
                              "unknown substitution '%s' (write ${env:NAME} for an environment "
                              "variable, or $${ for a literal '${')",
                              what);
            goto fail;
        }
        const char *name = p + 6, *comma = memchr(name, ',', (size_t)(close - name));
        size_t name_len = (size_t)((comma ? comma : close) - name);
        excerpt(name, name_len, what, sizeof what);
        if (!is_name(name, name_len)) {
            mfi_config_report(err, &n->mark, n->path,
                              "'%s' is not an environment variable name (letters, digits and "
                              "'_', not starting with a digit)",
                              what);
            goto fail;
        }
        char var[256] = ""; /* longer names are taken as unset */
        if (name_len < sizeof var) {
            memcpy(var, name, name_len);
            var[name_len] = '\0';
        }
        const char *value = var[0] ? getenv(var) : NULL;
        if (!value && !comma) {
            mfi_config_report(err, &n->mark, n->path,
                              "environment variable '%s' is not set (write ${env:%s,default} "
                              "for a default)",
                              what, what);
            goto fail;
        }
        char bad[64];
        if (value && mfi_config_bad_text(value, strlen(value), bad, sizeof bad) < strlen(value)) {
            mfi_config_report(err, &n->mark, n->path,
                              "environment variable '%s' holds %s; values must be UTF-8 text",
                              what, bad);
            goto fail;
        }
        if (value)
            mfi_text_add(&out, value, strlen(value));
        else
            mfi_text_add(&out, comma + 1, (size_t)(close - comma - 1));
        p = close + 1;
    }
    if (out.oom) {
        mfi_config_report(err, &n->mark, n->path, "out of memory");
        goto fail;
    }
    if (n->style == YAML_PLAIN_SCALAR_STYLE) { /* as YAML would have read the result */
        size_t start = strspn(out.s, " \t\r\n"), end = out.len;
        while (end > start && strchr(" \t\r\n", out.s[end - 1]))
            end--;
        memmove(out.s, out.s + start, end - start);
        out.s[end - start] = '\0';
    }
    free(n->text);
    n->text = out.s;
    return 0;
fail:
    free(out.s);
    return 1;
}

int mfi_config_interpolate(mf_config *n, mf_error *err)
{
    if (n->kind == MF_CONFIG_SCALAR)
        return expand(n, err);
    int problems = 0;
    for (int i = 0; i < n->length; i++)
        problems += mfi_config_interpolate(n->entries[i].value, err);
    return problems;
}
