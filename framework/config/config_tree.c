/* config_tree.c — nodes, paths, lookups and the one error formatter. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

char *mfi_config_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

int mfi_config_mark_set(mfi_config_mark *dst, const char *file, int line, int column)
{
    char *copy = mfi_config_strdup(file ? file : "");
    if (!copy)
        return -1;
    free(dst->file);
    dst->file = copy;
    dst->line = line;
    dst->column = column;
    return 0;
}

mf_config *mfi_config_node_new(mf_config_kind kind, const mfi_config_mark *mark)
{
    mf_config *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->style = YAML_PLAIN_SCALAR_STYLE;
    n->path = mfi_config_strdup("");
    if (!n->path || mfi_config_mark_set(&n->mark, mark->file, mark->line, mark->column) != 0) {
        mfi_config_node_free(n);
        return NULL;
    }
    return n;
}

void mfi_config_node_free(mf_config *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->length; i++) {
        free(n->entries[i].key);
        free(n->entries[i].key_mark.file);
        mfi_config_node_free(n->entries[i].value);
    }
    free(n->entries);
    free(n->text);
    free(n->path);
    free(n->mark.file);
    free(n);
}

void mf_config_free(mf_config *root)
{
    mfi_config_node_free(root);
}

mf_config *mfi_config_copy(const mf_config *n)
{
    mf_config *copy = mfi_config_node_new(n->kind, &n->mark);
    if (!copy)
        return NULL;
    copy->style = n->style;
    free(copy->path);
    copy->path = mfi_config_strdup(n->path);
    if (!copy->path || (n->text && !(copy->text = mfi_config_strdup(n->text))))
        goto fail;
    for (int i = 0; i < n->length; i++) {
        const mfi_config_entry *e = &n->entries[i];
        mf_config *value = mfi_config_copy(e->value);
        if (!value)
            goto fail;
        if (mfi_config_append(copy, e->key, &e->key_mark, value) != 0) {
            mfi_config_node_free(value);
            goto fail;
        }
    }
    return copy;
fail:
    mfi_config_node_free(copy);
    return NULL;
}

/* "parent.key" (or "key" at the root) for map entries, "parent[i]" for list items. */
static char *child_path(const char *parent, const char *key, int index)
{
    size_t size = strlen(parent) + (key ? strlen(key) : 24) + 4;
    char *path = malloc(size);
    if (!path)
        return NULL;
    if (key)
        snprintf(path, size, "%s%s%s", parent, parent[0] ? "." : "", key);
    else
        snprintf(path, size, "%s[%d]", parent, index);
    return path;
}

int mfi_config_set_path(mf_config *n, const char *path)
{
    char *copy = mfi_config_strdup(path);
    if (!copy)
        return -1;
    free(n->path);
    n->path = copy;
    for (int i = 0; i < n->length; i++) {
        char *sub = child_path(n->path, n->entries[i].key, i);
        int rc = sub ? mfi_config_set_path(n->entries[i].value, sub) : -1;
        free(sub);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int mfi_config_set_mark(mf_config *n, const mfi_config_mark *mark)
{
    if (mfi_config_mark_set(&n->mark, mark->file, mark->line, mark->column) != 0)
        return -1;
    for (int i = 0; i < n->length; i++) {
        mfi_config_entry *e = &n->entries[i];
        if (e->key && mfi_config_mark_set(&e->key_mark, mark->file, mark->line, mark->column))
            return -1;
        if (mfi_config_set_mark(e->value, mark) != 0)
            return -1;
    }
    return 0;
}

int mfi_config_append(mf_config *parent, const char *key, const mfi_config_mark *key_mark,
                      mf_config *value)
{
    if (parent->length == parent->capacity) {
        int capacity = parent->capacity ? parent->capacity * 2 : 4;
        mfi_config_entry *grown = realloc(parent->entries, (size_t)capacity * sizeof *grown);
        if (!grown)
            return -1;
        parent->entries = grown;
        parent->capacity = capacity;
    }
    mfi_config_entry e = {0};
    if (key) {
        const mfi_config_mark *m = key_mark ? key_mark : &value->mark;
        if (!(e.key = mfi_config_strdup(key)) ||
            mfi_config_mark_set(&e.key_mark, m->file, m->line, m->column) != 0) {
            free(e.key);
            return -1;
        }
    }
    char *path = child_path(parent->path, key, parent->length);
    if (!path || mfi_config_set_path(value, path) != 0) {
        free(path);
        free(e.key);
        free(e.key_mark.file);
        return -1;
    }
    free(path);
    e.value = value;
    parent->entries[parent->length++] = e;
    return 0;
}

int mfi_config_find(const mf_config *map, const char *key, size_t key_len)
{
    if (!map || map->kind != MF_CONFIG_MAP)
        return -1;
    for (int i = 0; i < map->length; i++) {
        const char *k = map->entries[i].key;
        if (strlen(k) == key_len && memcmp(k, key, key_len) == 0)
            return i;
    }
    return -1;
}

int mfi_config_is_null(const mf_config *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (n->kind != MF_CONFIG_SCALAR || n->style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (strcmp(n->text, nulls[i]) == 0)
            return 1;
    return 0;
}

int mfi_config_is_quoted(const mf_config *n)
{
    return n->kind == MF_CONFIG_SCALAR && n->style != YAML_PLAIN_SCALAR_STYLE &&
           n->style != YAML_ANY_SCALAR_STYLE;
}

/* ---------------------------------------------------------------- messages */
/* text with control characters written as \n, \xNN or \uNNNN, cut after max_chars characters
 * (0: no cut) with "…". */
static void escape_text(const char *text, size_t max_chars, char *buf, size_t size)
{
    size_t out = 0, chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && out + 8 < size; p++) {
        if ((*p & 0xC0) != 0x80 && ++chars > max_chars && max_chars) {
            out += (size_t)snprintf(buf + out, size - out, "…");
            break;
        }
        if (*p < 0x20 || *p == 0x7F)
            out += (size_t)snprintf(buf + out, size - out, *p == '\n' ? "\\n" : "\\x%02X", *p);
        else if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] < 0xA0) /* C1 controls, U+0085… */
            out += (size_t)snprintf(buf + out, size - out, "\\u%04X", *++p);
        else
            buf[out++] = (char)*p;
    }
    buf[out < size ? out : size - 1] = '\0';
}

void mfi_config_excerpt(const char *text, char *buf, size_t size)
{
    escape_text(text, MFI_CONFIG_EXCERPT, buf, size);
}

const char *mfi_config_colon_hint(const char *text, char *buf, size_t size)
{
    size_t n = 0;
    while (text && (isalnum((unsigned char)text[n]) || strchr("_-.", text[n])) && text[n])
        n++;
    buf[0] = '\0';
    /* "http://…" and "C:\…" are values, not mistakes */
    if (n == 0 || !text[n] || text[n] != ':' || !text[n + 1] || strchr(" /\\", text[n + 1]))
        return buf;
    snprintf(buf, size, " (YAML starts a value only after a colon and a space: write '%.*s: %.20s%s')",
             (int)n, text, text + n + 1, strlen(text + n + 1) > 20 ? "…" : "");
    return buf;
}

/* Every config message goes through here: one line of printable text, whatever bytes a
 * file name, key or value held. */
static void set_error_v(mf_error *err, const char *fmt, va_list ap) MF_PRINTF(2, 0);
static void set_error_v(mf_error *err, const char *fmt, va_list ap)
{
    if (!err)
        return;
    char line[MF_ERROR_CAPACITY], escaped[MF_ERROR_CAPACITY];
    vsnprintf(line, sizeof line, fmt, ap);
    escape_text(line, 0, escaped, sizeof escaped);
    mf_error_set(err, "%s", escaped);
}

void mfi_config_set_error(mf_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(err, fmt, ap);
    va_end(ap);
}

void mfi_config_vreport(mf_error *err, const mfi_config_mark *mark, const char *path,
                        const char *fmt, va_list ap)
{
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    const char *file = mark && mark->file ? mark->file : "";
    const char *sep = path && path[0] ? ": " : "";
    if (!path)
        path = "";
    if (mark && mark->line > 0)
        mfi_config_set_error(err, "%s:%d:%d: %s%s%s", file, mark->line, mark->column, path, sep,
                             message);
    else
        mfi_config_set_error(err, "%s: %s%s%s", file, path, sep, message);
}

void mfi_config_report(mf_error *err, const mfi_config_mark *mark, const char *path,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mfi_config_vreport(err, mark, path, fmt, ap);
    va_end(ap);
}

void mf_config_error(mf_error *err, const mf_config *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (n)
        mfi_config_vreport(err, &n->mark, n->path, fmt, ap);
    else
        set_error_v(err, fmt, ap);
    va_end(ap);
}

void mfi_config_describe(const mf_config *n, char *buf, size_t size)
{
    char excerpt[4 * MFI_CONFIG_EXCERPT + 16];
    switch (n->kind) {
    case MF_CONFIG_LIST:
        snprintf(buf, size, "a list");
        return;
    case MF_CONFIG_MAP:
        snprintf(buf, size, "a map");
        return;
    case MF_CONFIG_SCALAR:
        break;
    }
    mfi_config_excerpt(n->text, excerpt, sizeof excerpt);
    if (mfi_config_is_quoted(n))
        snprintf(buf, size, "the quoted string \"%s\"", excerpt);
    else if (n->text[0] == '\0')
        snprintf(buf, size, "an empty value");
    else
        snprintf(buf, size, "'%s'", excerpt);
}

/* ---------------------------------------------------------------- reading */
const mf_config *mf_config_get(const mf_config *map, const char *key)
{
    if (!map || !key || !key[0])
        return NULL;
    const mf_config *n = map;
    for (const char *seg = key;;) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        int i = mfi_config_find(n, seg, len);
        if (i < 0)
            return NULL;
        n = n->entries[i].value;
        if (!dot)
            return n;
        seg = dot + 1;
    }
}

int mf_config_has(const mf_config *map, const char *key)
{
    return mf_config_get(map, key) != NULL;
}

mf_config_kind mf_config_node_kind(const mf_config *n)
{
    return n ? n->kind : MF_CONFIG_SCALAR;
}

const char *mf_config_scalar(const mf_config *n)
{
    return n && n->kind == MF_CONFIG_SCALAR ? n->text : NULL;
}

int mf_config_length(const mf_config *n)
{
    return n && n->kind != MF_CONFIG_SCALAR ? n->length : 0;
}

const mf_config *mf_config_at(const mf_config *n, int i)
{
    return n && i >= 0 && i < n->length ? n->entries[i].value : NULL;
}

const char *mf_config_key_at(const mf_config *n, int i)
{
    return n && n->kind == MF_CONFIG_MAP && i >= 0 && i < n->length ? n->entries[i].key : NULL;
}

const char *mf_config_path(const mf_config *n)
{
    return n ? n->path : "";
}

const char *mf_config_file(const mf_config *n)
{
    return n ? n->mark.file : "";
}

int mf_config_line(const mf_config *n)
{
    return n ? n->mark.line : 0;
}

int mf_config_column(const mf_config *n)
{
    return n ? n->mark.column : 0;
}

/* ---------------------------------------------------------------- public wrappers */
int mf_config_is_quoted(const mf_config *n) { return n && mfi_config_is_quoted(n); }
int mf_config_is_null(const mf_config *n) { return n && mfi_config_is_null(n); }
mf_config *mf_config_copy(const mf_config *n) { return n ? mfi_config_copy(n) : NULL; }
