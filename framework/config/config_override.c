/* config_override.c — command-line overrides "-o key.path=value".
 *
 * The value is YAML (a flow node: 3e-4, [64, 64], {type: sum}, "x"), so it is typed
 * exactly like the file's values. New nodes are marked "-o key.path=value", line 1, and
 * the column of what they came from, so later errors point into the override.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static int has_empty_segment(const char *key, size_t len)
{
    if (key[0] == '.' || key[len - 1] == '.')
        return 1;
    for (size_t i = 0; i + 1 < len; i++)
        if (key[i] == '.' && key[i + 1] == '.')
            return 1;
    return 0;
}

/* The entry of map n that the key path from seg (to end) steps into: the entry named by the
 * next segment or, longer, a dotted key naming several (a sweep grid's `model.fusion:`),
 * so that `-o sweep.model.fusion=…` replaces the file's `model.fusion` rather than adding a
 * second spelling beside it. *len: the bytes of the path it takes; -1 when none. */
static int find_step(const mf_config *n, const char *seg, const char *end, size_t *len)
{
    const char *dot = memchr(seg, '.', (size_t)(end - seg));
    *len = dot ? (size_t)(dot - seg) : (size_t)(end - seg);
    int found = mfi_config_find(n, seg, *len);
    for (int i = 0; i < n->length; i++) {
        const char *k = n->entries[i].key;
        size_t kl = k ? strlen(k) : 0;
        if (kl > *len && kl <= (size_t)(end - seg) && memcmp(k, seg, kl) == 0 &&
            (seg + kl == end || seg[kl] == '.')) {
            found = i;
            *len = kl;
        }
    }
    return found;
}

/* Walk the existing part of key (len bytes): the first node on the way that is neither a
 * map nor empty (an empty "model:" becomes a map), or NULL when the path can be set. */
static const mf_config *blocking_scalar(const mf_config *root, const char *key, size_t len)
{
    const mf_config *n = root;
    for (const char *seg = key, *end = key + len; seg <= end;) {
        if (mfi_config_is_null(n))
            return NULL;
        if (n->kind != MF_CONFIG_MAP)
            return n;
        size_t seg_len;
        int i = find_step(n, seg, end, &seg_len);
        const char *dot = seg + seg_len < end ? seg + seg_len : NULL;
        if (i < 0 || !dot)
            return NULL; /* the rest gets created, or this is the key being replaced */
        n = n->entries[i].value;
        seg = dot + 1;
    }
    return NULL;
}

/* Put value in place of the entry's value; the key and its mark stay. */
static int replace_value(mfi_config_entry *e, mf_config *value)
{
    if (mfi_config_set_path(value, e->value->path) != 0)
        return -1;
    mfi_config_node_free(e->value);
    e->value = value;
    return 0;
}

static int append_key(mf_config *map, const char *key, size_t key_len,
                      const mfi_config_mark *mark, mf_config *value)
{
    char *copy = malloc(key_len + 1);
    if (!copy)
        return -1;
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    int rc = mfi_config_append(map, copy, mark, value);
    free(copy);
    return rc;
}

/* Set the value at the key path (checked by blocking_scalar), creating maps on the way.
 * On failure (out of memory) value is not placed. */
static int set_value(mf_config *root, const char *assignment, size_t key_len, mf_config *value,
                     const char *name)
{
    mf_config *n = root;
    for (const char *seg = assignment, *end = assignment + key_len;;) {
        size_t seg_len;
        int i = find_step(n, seg, end, &seg_len);
        if (i < 0) { /* new keys are created one segment at a time */
            const char *d = memchr(seg, '.', (size_t)(end - seg));
            seg_len = d ? (size_t)(d - seg) : (size_t)(end - seg);
        }
        const char *dot = seg + seg_len < end ? seg + seg_len : NULL;
        if (dot && i >= 0 && !mfi_config_is_null(n->entries[i].value)) {
            n = n->entries[i].value; /* an existing map */
            seg = dot + 1;
            continue;
        }
        /* the value itself, or a new map standing in for a missing or empty step */
        mfi_config_mark mark = {(char *)name, 1, (int)(seg - assignment) + 1};
        mf_config *placed = dot ? mfi_config_node_new(MF_CONFIG_MAP, &mark) : value;
        if (!placed)
            return -1;
        int rc = i >= 0 ? replace_value(&n->entries[i], placed)
                        : append_key(n, seg, seg_len, &mark, placed);
        if (rc != 0) {
            if (placed != value)
                mfi_config_node_free(placed);
            return -1;
        }
        if (!dot)
            return 0;
        n = placed;
        seg = dot + 1;
    }
}

/* The assignment as messages quote it: whole up to 160 bytes, else its first 120 (cut on a
 * character boundary) and its length, so that the reason still fits in the message. */
#define QUOTE_MAX 160
static void quotable(const char *assignment, char *out, size_t size)
{
    size_t len = strlen(assignment), cut = 120;
    if (len <= QUOTE_MAX) {
        snprintf(out, size, "%s", assignment);
        return;
    }
    while (cut > 0 && ((unsigned char)assignment[cut] & 0xC0) == 0x80)
        cut--; /* not inside a UTF-8 sequence */
    snprintf(out, size, "%.*s… (%zu bytes)", (int)cut, assignment, len);
}

/* Override errors name the assignment as typed: "-o 'a.b=1': message". */
static int override_error(mf_error *err, const char *assignment, const char *fmt, ...)
    MF_PRINTF(3, 4);
static int override_error(mf_error *err, const char *assignment, const char *fmt, ...)
{
    char message[1024], quoted[QUOTE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    quotable(assignment, quoted, sizeof quoted);
    mfi_config_set_error(err, "-o '%s': %s", quoted, message);
    return -1;
}

int mf_config_override(mf_config *root, const char *assignment, mf_error *err)
{
    if (!root || !assignment) {
        mfi_config_set_error(err, "-o: no configuration or assignment given");
        return -1;
    }
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return override_error(err, assignment, "expected KEY.PATH=VALUE");
    int key_len = (int)(eq - assignment);
    if (has_empty_segment(assignment, (size_t)key_len))
        return override_error(err, assignment, "empty key in '%.*s'", key_len, assignment);
    if (memchr(assignment, '[', (size_t)key_len) || memchr(assignment, ']', (size_t)key_len))
        return override_error(err, assignment, "list items cannot be set one by one; give the "
                                               "whole list (KEY=[a, b, …])");
    char what[64];
    if (mfi_config_bad_text(assignment, (size_t)key_len, what, sizeof what) < (size_t)key_len)
        return override_error(err, assignment, "found %s in the key; keys are UTF-8 text", what);
    if (root->kind != MF_CONFIG_MAP)
        return override_error(err, assignment, "the configuration is not a map");
    const mf_config *blocker = blocking_scalar(root, assignment, (size_t)key_len);
    if (blocker)
        return override_error(err, assignment, "'%s' is not a map", blocker->path);

    /* New nodes are marked "-o key=value"; the value's columns count from its '='. */
    size_t name_size = QUOTE_MAX + 64;
    char *name = malloc(name_size);
    char *key = malloc((size_t)key_len + 1);
    int rc = -1;
    if (name && key) {
        char quoted[QUOTE_MAX + 60];
        quotable(assignment, quoted, sizeof quoted);
        snprintf(name, name_size, "-o %s", quoted);
        snprintf(key, (size_t)key_len + 1, "%s", assignment);
        mfi_config_source source = {name, key_len + 1, key, 0};
        mfi_config_problem problem;
        mf_config *value = mfi_config_parse_value(eq + 1, &source, &problem);
        if (!value) {
            override_error(err, assignment, "%s", problem.message);
        } else if (set_value(root, assignment, (size_t)key_len, value, name) != 0) {
            mfi_config_node_free(value);
            override_error(err, assignment, "out of memory");
        } else {
            rc = 0;
        }
    } else {
        override_error(err, assignment, "out of memory");
    }
    free(name);
    free(key);
    return rc;
}
