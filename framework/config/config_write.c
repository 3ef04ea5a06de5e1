/* config_write.c — the tree back to YAML (libyaml emitter), written atomically:
 * a temporary beside PATH, fsynced and renamed over it (mf_atomic_*), so PATH is never
 * half written.
 *
 * Scalars keep their quoting style, so "123" stays a string and 123 a number; maps are
 * written in block style; lists of short plain words/numbers in flow style ([64, 64]).
 * Comments of the original file are not kept (libyaml does not report them). A "${" in a
 * value is written "$${", so that loading the file again (which expands ${env:…}) gives
 * back the same text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"

/* A plain scalar the emitter would write as-is inside [ ]: non-empty, no flow indicators.
 * (An empty plain scalar — null — would become '' there, changing its meaning.) */
static int flow_safe_plain(const mf_config *n)
{
    if (n->kind != MF_CONFIG_SCALAR || !n->text[0])
        return 0;
    for (const char *p = n->text; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", *p))
            return 0;
    return 1;
}

static int flow_list(const mf_config *n)
{
    for (int i = 0; i < n->length; i++) {
        const mf_config *item = n->entries[i].value;
        if (!flow_safe_plain(item) && !mfi_config_is_quoted(item))
            return 0;
    }
    return 1;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    return yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
                                        1, 1, style) &&
           yaml_emitter_emit(em, &ev);
}

/* A value's text with every "${" written "$${" (see mfi_config_interpolate). */
static int emit_value(yaml_emitter_t *em, const mf_config *n)
{
    if (!strstr(n->text, "${"))
        return emit_scalar(em, n->text, n->style);
    size_t count = 0;
    for (const char *p = strstr(n->text, "${"); p; p = strstr(p + 2, "${"))
        count++;
    char *escaped = malloc(strlen(n->text) + count + 1), *out = escaped;
    if (!escaped)
        return 0;
    for (const char *p = n->text; *p; p++) {
        if (p[0] == '$' && p[1] == '{')
            *out++ = '$';
        *out++ = *p;
    }
    *out = '\0';
    int ok = emit_scalar(em, escaped, n->style);
    free(escaped);
    return ok;
}

/* A key is a string; the few that plain YAML reads otherwise (~ and null are no key, << a
 * merge key) are quoted. */
static yaml_scalar_style_t key_style(const char *key)
{
    mf_config plain = {.kind = MF_CONFIG_SCALAR, .text = (char *)key,
                       .style = YAML_PLAIN_SCALAR_STYLE};
    return mfi_config_is_null(&plain) || strcmp(key, "<<") == 0 ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                                                : YAML_ANY_SCALAR_STYLE;
}

static int emit_node(yaml_emitter_t *em, const mf_config *n)
{
    yaml_event_t ev;
    switch (n->kind) {
    case MF_CONFIG_SCALAR:
        return emit_value(em, n);
    case MF_CONFIG_LIST:
        if (!yaml_sequence_start_event_initialize(
                &ev, NULL, NULL, 1, flow_list(n) ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (int i = 0; i < n->length; i++)
            if (!emit_node(em, n->entries[i].value))
                return 0;
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    case MF_CONFIG_MAP:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (int i = 0; i < n->length; i++)
            if (!emit_scalar(em, n->entries[i].key, key_style(n->entries[i].key)) ||
                !emit_node(em, n->entries[i].value))
                return 0;
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    return 0;
}

static int emit_document(yaml_emitter_t *em, const mf_config *root)
{
    yaml_event_t ev;
    return yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
           yaml_emitter_emit(em, &ev) &&
           yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
           yaml_emitter_emit(em, &ev) && emit_node(em, root) &&
           yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(em, &ev) &&
           yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev) &&
           yaml_emitter_flush(em);
}

int mf_config_write(const mf_config *root, const char *path, mf_error *err)
{
    if (!root || !path) {
        mfi_config_set_error(err, "mf_config_write: no configuration or path given");
        return -1;
    }
    mf_atomic_file af;
    FILE *f = mf_atomic_open(&af, path, err);
    if (!f)
        return -1;

    yaml_emitter_t em;
    int ok = yaml_emitter_initialize(&em);
    if (!ok) {
        mfi_config_set_error(err, "cannot write '%s': out of memory", path);
    } else {
        yaml_emitter_set_output_file(&em, f);
        yaml_emitter_set_unicode(&em, 1);
        yaml_emitter_set_width(&em, -1); /* never fold long strings */
        yaml_emitter_set_indent(&em, 2);
        ok = emit_document(&em, root);
        if (!ok)
            mfi_config_set_error(err, "cannot write '%s': %s", path,
                         em.error == YAML_WRITER_ERROR ? strerror(errno)
                         : em.problem                  ? em.problem
                                                       : "YAML emitter error");
        yaml_emitter_delete(&em);
    }
    if (!ok) {
        mf_atomic_abort(&af);
        return -1;
    }
    return mf_atomic_commit(&af, err);
}

