/* config_parse.c — YAML text to an mf_config tree (libyaml event API), with errors that
 * say what is wrong in the user's terms rather than the scanner's.
 *
 * Aliases (*name) are resolved by copying the anchored node, so the tree stays a tree;
 * the copy's root carries the alias's mark, its insides the anchor's. Merge keys ("<<")
 * and explicit tags other than !!str are rejected with a message saying so.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

/* ---------------------------------------------------------------- building */
static const char *short_tag(const char *tag, char *buf, size_t size)
{
    size_t n = strlen(STD_TAG_PREFIX);
    if (strncmp(tag, STD_TAG_PREFIX, n) == 0)
        snprintf(buf, size, "!!%s", tag + n);
    else
        snprintf(buf, size, "%s", tag);
    return buf;
}

/* Explicit tags: only those that change nothing (or, !!str, make a scalar a string). */
static int check_tag(builder *b, const yaml_char_t *tag_text, const char *allowed,
                     const mfi_config_mark *mark)
{
    const char *tag = (const char *)tag_text;
    if (!tag || strcmp(tag, "!") == 0 || strcmp(tag, allowed) == 0)
        return 0;
    char buf[128];
    mfi_parse_fail_at(b, mark, NULL, "the tag '%s' is not supported; write the value without it",
            short_tag(tag, buf, sizeof buf));
    return -1;
}

static int in_key_position(const builder *b)
{
    if (b->depth == 0)
        return 0;
    const frame *top = &b->stack[b->depth - 1];
    return top->node->kind == MF_CONFIG_MAP && !top->pending_key;
}

static int count_nodes(const mf_config *n)
{
    int count = 1;
    for (int i = 0; i < n->length; i++)
        count += count_nodes(n->entries[i].value);
    return count;
}

static int add_nodes(builder *b, int count, const mfi_config_mark *mark, int by_alias)
{
    b->node_count += count;
    if (b->node_count <= MFI_CONFIG_MAX_NODES)
        return 0;
    if (by_alias)
        mfi_parse_fail_at(b, mark, NULL, "aliases expand the file past %d values", MFI_CONFIG_MAX_NODES);
    else
        mfi_parse_fail_at(b, mark, NULL, "more than %d values; experiment files are for settings, not data",
                MFI_CONFIG_MAX_NODES);
    return -1;
}

static int add_anchor(builder *b, const yaml_char_t *name, mf_config *node)
{
    if (!name)
        return -1;
    if (b->anchor_count == b->anchor_capacity) {
        int capacity = b->anchor_capacity ? 2 * b->anchor_capacity : 8;
        anchor *grown = realloc(b->anchors, (size_t)capacity * sizeof *grown);
        if (!grown) {
            mfi_parse_out_of_memory(b);
            return -2;
        }
        b->anchors = grown;
        b->anchor_capacity = capacity;
    }
    char *copy = mfi_config_strdup((const char *)name);
    if (!copy) {
        mfi_parse_out_of_memory(b);
        return -2;
    }
    b->anchors[b->anchor_count] = (anchor){copy, node, node->kind == MF_CONFIG_SCALAR};
    return b->anchor_count++;
}

/* Hang a finished (scalar, alias copy) or just-started (list, map) node in its place. */
static int attach(builder *b, mf_config *node)
{
    if (b->depth == 0) {
        b->root = node;
        return mfi_config_set_path(node, b->source->path) == 0 ? 0 : (mfi_parse_out_of_memory(b), -1);
    }
    frame *top = &b->stack[b->depth - 1];
    int rc = mfi_config_append(top->node, top->pending_key, &top->pending_key_mark, node);
    free(top->pending_key);
    top->pending_key = NULL;
    free(top->pending_key_mark.file);
    top->pending_key_mark.file = NULL;
    if (rc != 0) {
        mfi_config_node_free(node);
        mfi_parse_out_of_memory(b);
    }
    return rc;
}

static size_t key_hash(const char *key)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    return h;
}

/* The slot holding `key` in f's table, or the free slot where it belongs. */
static int *key_slot(const frame *f, const char *key)
{
    size_t mask = f->slot_count - 1;
    for (size_t i = key_hash(key) & mask;; i = (i + 1) & mask) {
        int *slot = &f->key_slots[i];
        if (*slot == 0 || strcmp(f->node->entries[*slot - 1].key, key) == 0)
            return slot;
    }
}

/* Index of an earlier entry with this key, or -1 after recording that the map's next
 * entry will have it; -2 when out of memory. */
static int claim_key(frame *f, const char *key)
{
    size_t next = (size_t)f->node->length;
    if (2 * (next + 1) > f->slot_count) { /* keep the table at most half full */
        size_t count = f->slot_count ? 2 * f->slot_count : 16;
        int *slots = calloc(count, sizeof *slots);
        if (!slots)
            return -2;
        free(f->key_slots);
        f->key_slots = slots;
        f->slot_count = count;
        for (size_t i = 0; i < next; i++)
            *key_slot(f, f->node->entries[i].key) = (int)i + 1;
    }
    int *slot = key_slot(f, key);
    if (*slot)
        return *slot - 1;
    *slot = (int)next + 1;
    return -1;
}

static int take_key(builder *b, const yaml_event_t *ev)
{
    frame *top = &b->stack[b->depth - 1];
    const char *key = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    mfi_config_mark mark = mfi_parse_user_mark(b, ev->start_mark);
    const char *path = top->node->path;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (check_tag(b, ev->data.scalar.tag, STD_TAG_PREFIX "str", &mark) != 0)
        return -1;
    if (ev->data.scalar.anchor) {
        mfi_parse_fail_at(b, &mark, path, "anchors (&name) on keys are not supported");
        return -1;
    }
    if (strlen(key) != len) {
        mfi_parse_fail_at(b, &mark, path, "a key may not contain a NUL character");
        return -1;
    }
    if (len == 0 || (plain && strcmp(key, "~") == 0)) {
        mfi_parse_fail_at(b, &mark, path, "empty key");
        return -1;
    }
    if (plain && strcmp(key, "<<") == 0) {
        mfi_parse_fail_at(b, &mark, path, "merge keys ('<<: *name') are not supported; write the keys out");
        return -1;
    }
    /* a sweep's grid, its cases and optim.lr_scale are keyed by key paths
     * ("model.fusion.type", "model.encoders.rgb"): dots allowed there only */
    const int grid = (b->depth == 2 && strcmp(path, "sweep") == 0) ||
                     (b->depth == 4 && strncmp(path, "sweep.cases.", 12) == 0) ||
                     (b->depth == 3 && strcmp(path, "optim.lr_scale") == 0);
    const char *bad = strpbrk(key, grid ? "[]=" : ".[]=");
    if (bad) {
        char excerpt[4 * MFI_CONFIG_EXCERPT + 16];
        mfi_config_excerpt(key, excerpt, sizeof excerpt);
        char hint[128];
        mfi_parse_fail_at(b, &mark, path, "key '%s' contains '%c', which key paths (a.b[1]=…) reserve%s",
                excerpt, *bad, mfi_config_colon_hint(key, hint, sizeof hint));
        return -1;
    }
    int first = claim_key(top, key);
    if (first == -2) {
        mfi_parse_out_of_memory(b);
        return -1;
    }
    if (first >= 0) {
        char excerpt[4 * MFI_CONFIG_EXCERPT + 16];
        mfi_config_excerpt(key, excerpt, sizeof excerpt);
        mfi_parse_fail_at(b, &mark, path, "duplicate key '%s' (first defined at line %d)", excerpt,
                top->node->entries[first].key_mark.line);
        return -1;
    }
    top->pending_key = mfi_config_strdup(key);
    if (!top->pending_key || mfi_config_mark_set(&top->pending_key_mark, mark.file, mark.line,
                                                 mark.column) != 0) {
        mfi_parse_out_of_memory(b);
        return -1;
    }
    return 0;
}

static int on_scalar(builder *b, const yaml_event_t *ev)
{
    if (in_key_position(b))
        return take_key(b, ev);
    mfi_config_mark mark = mfi_parse_user_mark(b, ev->start_mark);
    if (check_tag(b, ev->data.scalar.tag, STD_TAG_PREFIX "str", &mark) != 0 ||
        add_nodes(b, 1, &mark, 0) != 0)
        return -1;
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        mfi_parse_fail_at(b, &mark, NULL, "a value may not contain a NUL character");
        return -1;
    }
    mf_config *node = mfi_config_node_new(MF_CONFIG_SCALAR, &mark);
    if (!node || !(node->text = mfi_config_strdup((const char *)ev->data.scalar.value))) {
        mfi_config_node_free(node);
        mfi_parse_out_of_memory(b);
        return -1;
    }
    node->style = ev->data.scalar.style;
    /* `!!str 12` is the string "12": remember it as quoted so it is typed and written so. */
    if (ev->data.scalar.tag && node->style == YAML_PLAIN_SCALAR_STYLE &&
        strcmp((const char *)ev->data.scalar.tag, STD_TAG_PREFIX "str") == 0)
        node->style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    if (attach(b, node) != 0)
        return -1;
    if (ev->data.scalar.anchor && add_anchor(b, ev->data.scalar.anchor, node) < -1)
        return -1;
    return 0;
}

static int on_collection_start(builder *b, const yaml_event_t *ev, mf_config_kind kind)
{
    mfi_config_mark mark = mfi_parse_user_mark(b, ev->start_mark);
    int is_list = kind == MF_CONFIG_LIST;
    if (in_key_position(b)) {
        mfi_parse_fail_at(b, &mark, b->stack[b->depth - 1].node->path,
                "a key must be a plain word or quoted text, got %s", is_list ? "a list" : "a map");
        return -1;
    }
    if (b->depth == MFI_CONFIG_MAX_DEPTH) {
        mfi_parse_fail_at(b, &mark, NULL, "values nested more than %d levels deep", MFI_CONFIG_MAX_DEPTH);
        return -1;
    }
    const yaml_char_t *tag = is_list ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;
    const yaml_char_t *anchor_name =
        is_list ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
    if (check_tag(b, tag, is_list ? STD_TAG_PREFIX "seq" : STD_TAG_PREFIX "map", &mark) != 0 ||
        add_nodes(b, 1, &mark, 0) != 0)
        return -1;
    mf_config *node = mfi_config_node_new(kind, &mark);
    if (!node) {
        mfi_parse_out_of_memory(b);
        return -1;
    }
    if (attach(b, node) != 0)
        return -1;
    int anchor_index = anchor_name ? add_anchor(b, anchor_name, node) : -1;
    if (anchor_index < -1)
        return -1;
    b->stack[b->depth++] = (frame){node, NULL, {NULL, 0, 0}, anchor_index, NULL, 0};
    return 0;
}

static int on_collection_end(builder *b)
{
    frame *top = &b->stack[--b->depth];
    free(top->key_slots);
    if (top->anchor >= 0)
        b->anchors[top->anchor].complete = 1;
    return 0;
}

static int on_alias(builder *b, const yaml_event_t *ev)
{
    mfi_config_mark mark = mfi_parse_user_mark(b, ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    if (in_key_position(b)) {
        mfi_parse_fail_at(b, &mark, b->stack[b->depth - 1].node->path,
                "an alias (*%s) cannot be used as a key", name);
        return -1;
    }
    const anchor *found = NULL;
    for (int i = b->anchor_count - 1; i >= 0 && !found; i--) /* the latest definition wins */
        if (strcmp(b->anchors[i].name, name) == 0)
            found = &b->anchors[i];
    if (!found) {
        mfi_parse_fail_at(b, &mark, NULL, "undefined alias '*%s' (define it first with '&%s')", name, name);
        return -1;
    }
    if (!found->complete) {
        mfi_parse_fail_at(b, &mark, NULL, "alias '*%s' refers to a value that contains it", name);
        return -1;
    }
    if (add_nodes(b, count_nodes(found->node), &mark, 1) != 0)
        return -1;
    mf_config *copy = mfi_config_copy(found->node);
    if (!copy || mfi_config_mark_set(&copy->mark, mark.file, mark.line, mark.column) != 0) {
        mfi_config_node_free(copy);
        mfi_parse_out_of_memory(b);
        return -1;
    }
    return attach(b, copy);
}

static int on_event(builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            mfi_config_mark mark = mfi_parse_user_mark(b, ev->start_mark);
            mfi_parse_fail_at(b, &mark, NULL,
                    "a second YAML document ('---'); an experiment file holds exactly one");
            return -1;
        }
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, ev, MF_CONFIG_LIST);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, MF_CONFIG_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_collection_end(b);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    default:
        return 0;
    }
}

static void builder_release(builder *b)
{
    for (int i = 0; i < b->depth; i++) {
        free(b->stack[i].key_slots);
        free(b->stack[i].pending_key);
        free(b->stack[i].pending_key_mark.file);
    }
    for (int i = 0; i < b->anchor_count; i++)
        free(b->anchors[i].name);
    free(b->anchors);
}

mf_config *mfi_config_build(const char *text, size_t len, const mfi_config_source *source,
                            mfi_config_problem *problem)
{
    memset(problem, 0, sizeof *problem);
    builder *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(problem->message, sizeof problem->message, "out of memory");
        return NULL;
    }
    *b = (builder){.text = text ? text : "", .len = text ? len : 0, .source = source,
                   .problem = problem};
    if (mfi_parse_check_text(b) != 0) {
        free(b);
        return NULL;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        mfi_parse_out_of_memory(b);
        free(b);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)b->text, b->len);
    for (int done = 0; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            mfi_parse_report_error(b, &parser);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        int rc = on_event(b, &ev);
        yaml_event_delete(&ev);
        if (rc != 0)
            break;
    }
    yaml_parser_delete(&parser);
    builder_release(b);

    mf_config *root = b->root;
    free(b);
    if (problem->message[0]) {
        mfi_config_node_free(root);
        return NULL;
    }
    /* No document at all, or (for files) nothing but "---" or "~". */
    if (!root || (source->root_must_be_map && mfi_config_is_null(root))) {
        mfi_config_node_free(root);
        problem->empty = 1;
        snprintf(problem->message, sizeof problem->message, "the file is empty");
        return NULL;
    }
    if (source->root_must_be_map && root->kind != MF_CONFIG_MAP) {
        char got[256];
        mfi_config_describe(root, got, sizeof got);
        snprintf(problem->message, sizeof problem->message,
                 "an experiment file must be a map of sections, got %s", got);
        mfi_config_node_free(root);
        return NULL;
    }
    return root;
}

mf_config *mfi_config_parse_value(const char *text, const mfi_config_source *source,
                                  mfi_config_problem *problem)
{
    mf_config *value = mfi_config_build(text, strlen(text), source, problem);
    if (value || !problem->empty)
        return value;
    /* "key=" (no document at all): an empty value, which the checker then judges. */
    mfi_config_mark mark = {(char *)source->name, 1, source->column_offset + 1};
    value = mfi_config_node_new(MF_CONFIG_SCALAR, &mark);
    if (!value || !(value->text = mfi_config_strdup("")) ||
        mfi_config_set_path(value, source->path) != 0) {
        mfi_config_node_free(value);
        snprintf(problem->message, sizeof problem->message, "out of memory");
        return NULL;
    }
    memset(problem, 0, sizeof *problem);
    return value;
}

/* ---------------------------------------------------------------- entry points */
mf_config *mf_config_parse(const char *text, size_t len, const char *name, mf_error *err)
{
    mfi_config_source source = {name ? name : "<text>", 0, "", 1};
    mfi_config_problem problem;
    mf_config *root = mfi_config_build(text, len, &source, &problem);
    if (!root) {
        mfi_config_mark mark = {(char *)source.name, problem.line, problem.column};
        mfi_config_report(err, &mark, NULL, "%s", problem.message);
    }
    return root;
}
