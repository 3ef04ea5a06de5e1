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

#include "config_internal.h"

#define STD_TAG_PREFIX "tag:yaml.org,2002:"

typedef struct frame {
    mf_config *node;
    char *pending_key; /* maps: the key just read, waiting for its value */
    mfi_config_mark pending_key_mark;
    int anchor; /* index in builder.anchors completed when this node ends, or -1 */
    /* maps: open-addressing table of entry index + 1 (0: free), for duplicate keys in
     * constant time — a linear scan would make a file of many keys quadratic */
    int *key_slots;
    size_t slot_count;
} frame;

typedef struct anchor {
    char *name;
    mf_config *node;
    int complete; /* an alias to an unfinished node would make a cycle */
} anchor;

typedef struct builder {
    const char *text;
    size_t len;
    const mfi_config_source *source;
    mfi_config_problem *problem;
    frame stack[MFI_CONFIG_MAX_DEPTH];
    int depth;
    anchor *anchors;
    int anchor_count, anchor_capacity;
    long node_count;
    int documents;
    mf_config *root;
} builder;

/* ---------------------------------------------------------------- positions */
/* A libyaml mark (0-based, characters) as a user-facing mark. The file name is borrowed. */
static mfi_config_mark user_mark(const builder *b, yaml_mark_t m)
{
    mfi_config_mark mark = {(char *)b->source->name, (int)m.line + 1, (int)m.column + 1};
    if (m.line == 0)
        mark.column += b->source->column_offset;
    return mark;
}

/* Line and column (from 1, in characters) of a byte offset. */
static void offset_position(const char *text, size_t offset, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            ++*line;
            *column = 1;
        } else if ((c & 0xC0) != 0x80) {
            ++*column;
        }
    }
}

/* The byte offset of a libyaml mark (line/column in characters); len past the end. */
static size_t offset_of_mark(const char *text, size_t len, yaml_mark_t m)
{
    size_t i = 0;
    for (size_t line = 0; line < m.line && i < len; i++)
        if (text[i] == '\n')
            line++;
    for (size_t col = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80)
            continue;
        if (col++ == m.column)
            break;
    }
    return i;
}

/* The byte at a libyaml mark, or -1 past the end. */
static int byte_at_mark(const char *text, size_t len, yaml_mark_t m)
{
    size_t i = offset_of_mark(text, len, m);
    return i < len ? (unsigned char)text[i] : -1;
}

static void fail_at(builder *b, const mfi_config_mark *mark, const char *path, const char *fmt,
                    ...) MF_PRINTF(4, 5);
static void fail_at(builder *b, const mfi_config_mark *mark, const char *path, const char *fmt,
                    ...)
{
    mfi_config_problem *p = b->problem;
    if (p->message[0])
        return; /* keep the first problem */
    size_t used = 0;
    if (path && path[0]) /* a long key path is cut; snprintf tells the uncut length */
        used = (size_t)snprintf(p->message, sizeof p->message, "%s: ", path);
    if (used >= sizeof p->message)
        used = sizeof p->message - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message + used, sizeof p->message - used, fmt, ap);
    va_end(ap);
    p->line = mark ? mark->line : 0;
    p->column = mark ? mark->column : 0;
}

static void out_of_memory(builder *b)
{
    fail_at(b, NULL, NULL, "out of memory");
}

/* ---------------------------------------------------------------- text checks */
/* Bytes libyaml would reject (or read as line breaks: C1 controls such as U+0085), found
 * first so the message can name the exact spot; libyaml reports reader errors by offset
 * only. */
size_t mfi_config_bad_text(const char *text, size_t len, char *what, size_t size)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0, width = 1; i < len; i += width) {
        unsigned char c = s[i];
        width = 1;
        if (c == 0) {
            snprintf(what, size, "a NUL byte (0x00)");
            return i;
        } else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
            snprintf(what, size, "a control character (0x%02X)", c);
            return i;
        } else if (c >= 0x80) {
            width = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            int ok = width != 0 && i + width <= len;
            for (size_t k = 1; ok && k < width; k++)
                ok = (s[i + k] & 0xC0) == 0x80;
            if (ok && width == 3) /* overlong or surrogate */
                ok = !(c == 0xE0 && s[i + 1] < 0xA0) && !(c == 0xED && s[i + 1] >= 0xA0);
            if (ok && width == 4)
                ok = !(c == 0xF0 && s[i + 1] < 0x90) && !(c == 0xF4 && s[i + 1] >= 0x90);
            if (!ok) {
                snprintf(what, size, "bytes that are not UTF-8 text (0x%02X)", c);
                return i;
            }
            if (c == 0xC2 && s[i + 1] < 0xA0) {
                snprintf(what, size, "a control character (U+%04X)", s[i + 1]);
                return i;
            }
        }
    }
    return len;
}

/* The text checked before libyaml sees it: 0 when clean. */
static int check_text(builder *b)
{
    char what[64];
    size_t i = mfi_config_bad_text(b->text, b->len, what, sizeof what);
    if (i == b->len)
        return 0;
    mfi_config_mark mark = {(char *)b->source->name, 0, 0};
    offset_position(b->text, i, &mark.line, &mark.column);
    if (mark.line == 1)
        mark.column += b->source->column_offset;
    fail_at(b, &mark, NULL, "found %s — is this a binary file? YAML must be UTF-8 text", what);
    return -1;
}

/* Whether only spaces precede a libyaml mark on its line (so it starts a new entry). */
static int starts_line(const char *text, size_t len, yaml_mark_t m)
{
    size_t i = 0;
    for (size_t line = 0; line < m.line && i < len; i++)
        if (text[i] == '\n')
            line++;
    for (size_t col = 0; col < m.column && i < len; col++, i++)
        if (text[i] != ' ')
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- libyaml errors */
/* "{a: ${env:X}}": in [ ] and { } the '{' of "${" opens a map, so a flow collection fails
 * at "${" (or just after it); say why instead of reporting the brackets. */
static int in_flow_substitution(const builder *b, const yaml_parser_t *parser)
{
    if (!parser->context || !strstr(parser->context, "flow"))
        return 0;
    size_t at = offset_of_mark(b->text, b->len, parser->problem_mark);
    for (size_t i = at > 8 ? at - 8 : 0; i + 1 < b->len && i <= at; i++)
        if (b->text[i] == '$' && b->text[i + 1] == '{')
            return 1;
    return 0;
}

static void report_parser_error(builder *b, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";
    const char *context = parser->context ? parser->context : "";
    mfi_config_mark at = user_mark(b, parser->problem_mark);
    mfi_config_mark opened = user_mark(b, parser->context_mark);

    if (parser->error == YAML_MEMORY_ERROR) {
        out_of_memory(b);
    } else if (parser->error == YAML_READER_ERROR) {
        /* check_text catches nearly everything; this covers the rest (e.g. C1 controls). */
        offset_position(b->text, parser->problem_offset < b->len ? parser->problem_offset : b->len,
                        &at.line, &at.column);
        fail_at(b, &at, NULL, "%s (0x%02X) — YAML must be printable UTF-8 text", problem,
                (unsigned)parser->problem_value);
    } else if (byte_at_mark(b->text, b->len, parser->problem_mark) == '\t' ||
               strstr(problem, "tab character")) {
        fail_at(b, &at, NULL,
                "found a tab character where indentation was expected — YAML indents with spaces");
    } else if (in_flow_substitution(b, parser)) {
        fail_at(b, &at, NULL,
                "a ${…} cannot be written plainly inside [ ] or { }: write the list or map in "
                "block style (one 'key: value' or '- item' per line), or quote it (then it is a "
                "string)");
    } else if (strcmp(problem, "did not find expected ',' or ']'") == 0 ||
               strcmp(problem, "did not find expected ',' or '}'") == 0) {
        char close = problem[strlen(problem) - 2];
        fail_at(b, &at, NULL, "unclosed '%c' (opened at line %d, column %d): expected ',' or '%c'",
                close == ']' ? '[' : '{', opened.line, opened.column, close);
    } else if (strcmp(problem, "mapping values are not allowed in this context") == 0) {
        fail_at(b, &at, NULL,
                "unexpected ':' — put a value that contains ': ' in quotes, or check the indentation");
    } else if ((strcmp(problem, "did not find expected key") == 0 ||
                strcmp(problem, "did not find expected '-' indicator") == 0) &&
               !starts_line(b->text, b->len, parser->problem_mark)) {
        int c = byte_at_mark(b->text, b->len, parser->problem_mark);
        if (c == ']' || c == '}')
            fail_at(b, &at, NULL, "unexpected '%c' without a matching '%c'", c, c == ']' ? '[' : '{');
        else
            fail_at(b, &at, NULL, "unexpected text after the value (to keep it, quote the whole "
                                  "value)");
    } else if (strcmp(problem, "did not find expected key") == 0) {
        fail_at(b, &at, NULL,
                "bad indentation: expected a key lined up with the map that starts at line %d, column %d",
                opened.line, opened.column);
    } else if (strcmp(problem, "did not find expected '-' indicator") == 0) {
        fail_at(b, &at, NULL,
                "bad indentation: expected a '- ' item lined up with the list that starts at line %d, column %d",
                opened.line, opened.column);
    } else if (strcmp(problem, "could not find expected ':'") == 0) {
        fail_at(b, &opened, NULL, "this key has no ':' after it (write 'key: value')");
    } else if (strcmp(problem, "found unexpected end of stream") == 0 &&
               strstr(context, "quoted scalar")) {
        fail_at(b, &opened, NULL, "unclosed quote: the string that starts here never ends");
    } else if (strcmp(problem, "found unknown escape character") == 0) {
        fail_at(b, &at, NULL,
                "unknown escape in a double-quoted string (write '\\\\' for a backslash, or use single quotes)");
    } else if (strcmp(problem, "found character that cannot start any token") == 0) {
        int c = byte_at_mark(b->text, b->len, parser->problem_mark);
        if (c > 0x20 && c < 0x7F)
            fail_at(b, &at, NULL, "'%c' cannot start a value — put the value in quotes", c);
        else
            fail_at(b, &at, NULL, "found a character that cannot start a value");
    } else if (strcmp(problem, "did not find expected node content") == 0) {
        fail_at(b, &at, NULL, "expected a value here");
    } else if (context[0]) {
        fail_at(b, &at, NULL, "%s (%s)", problem, context);
    } else {
        fail_at(b, &at, NULL, "%s", problem);
    }
}

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
    fail_at(b, mark, NULL, "the tag '%s' is not supported; write the value without it",
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
        fail_at(b, mark, NULL, "aliases expand the file past %d values", MFI_CONFIG_MAX_NODES);
    else
        fail_at(b, mark, NULL, "more than %d values; experiment files are for settings, not data",
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
            out_of_memory(b);
            return -2;
        }
        b->anchors = grown;
        b->anchor_capacity = capacity;
    }
    char *copy = mfi_config_strdup((const char *)name);
    if (!copy) {
        out_of_memory(b);
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
        return mfi_config_set_path(node, b->source->path) == 0 ? 0 : (out_of_memory(b), -1);
    }
    frame *top = &b->stack[b->depth - 1];
    int rc = mfi_config_append(top->node, top->pending_key, &top->pending_key_mark, node);
    free(top->pending_key);
    top->pending_key = NULL;
    free(top->pending_key_mark.file);
    top->pending_key_mark.file = NULL;
    if (rc != 0) {
        mfi_config_node_free(node);
        out_of_memory(b);
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
    mfi_config_mark mark = user_mark(b, ev->start_mark);
    const char *path = top->node->path;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (check_tag(b, ev->data.scalar.tag, STD_TAG_PREFIX "str", &mark) != 0)
        return -1;
    if (ev->data.scalar.anchor) {
        fail_at(b, &mark, path, "anchors (&name) on keys are not supported");
        return -1;
    }
    if (strlen(key) != len) {
        fail_at(b, &mark, path, "a key may not contain a NUL character");
        return -1;
    }
    if (len == 0 || (plain && strcmp(key, "~") == 0)) {
        fail_at(b, &mark, path, "empty key");
        return -1;
    }
    if (plain && strcmp(key, "<<") == 0) {
        fail_at(b, &mark, path, "merge keys ('<<: *name') are not supported; write the keys out");
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
        fail_at(b, &mark, path, "key '%s' contains '%c', which key paths (a.b[1]=…) reserve%s",
                excerpt, *bad, mfi_config_colon_hint(key, hint, sizeof hint));
        return -1;
    }
    int first = claim_key(top, key);
    if (first == -2) {
        out_of_memory(b);
        return -1;
    }
    if (first >= 0) {
        char excerpt[4 * MFI_CONFIG_EXCERPT + 16];
        mfi_config_excerpt(key, excerpt, sizeof excerpt);
        fail_at(b, &mark, path, "duplicate key '%s' (first defined at line %d)", excerpt,
                top->node->entries[first].key_mark.line);
        return -1;
    }
    top->pending_key = mfi_config_strdup(key);
    if (!top->pending_key || mfi_config_mark_set(&top->pending_key_mark, mark.file, mark.line,
                                                 mark.column) != 0) {
        out_of_memory(b);
        return -1;
    }
    return 0;
}

static int on_scalar(builder *b, const yaml_event_t *ev)
{
    if (in_key_position(b))
        return take_key(b, ev);
    mfi_config_mark mark = user_mark(b, ev->start_mark);
    if (check_tag(b, ev->data.scalar.tag, STD_TAG_PREFIX "str", &mark) != 0 ||
        add_nodes(b, 1, &mark, 0) != 0)
        return -1;
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        fail_at(b, &mark, NULL, "a value may not contain a NUL character");
        return -1;
    }
    mf_config *node = mfi_config_node_new(MF_CONFIG_SCALAR, &mark);
    if (!node || !(node->text = mfi_config_strdup((const char *)ev->data.scalar.value))) {
        mfi_config_node_free(node);
        out_of_memory(b);
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
    mfi_config_mark mark = user_mark(b, ev->start_mark);
    int is_list = kind == MF_CONFIG_LIST;
    if (in_key_position(b)) {
        fail_at(b, &mark, b->stack[b->depth - 1].node->path,
                "a key must be a plain word or quoted text, got %s", is_list ? "a list" : "a map");
        return -1;
    }
    if (b->depth == MFI_CONFIG_MAX_DEPTH) {
        fail_at(b, &mark, NULL, "values nested more than %d levels deep", MFI_CONFIG_MAX_DEPTH);
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
        out_of_memory(b);
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
    mfi_config_mark mark = user_mark(b, ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    if (in_key_position(b)) {
        fail_at(b, &mark, b->stack[b->depth - 1].node->path,
                "an alias (*%s) cannot be used as a key", name);
        return -1;
    }
    const anchor *found = NULL;
    for (int i = b->anchor_count - 1; i >= 0 && !found; i--) /* the latest definition wins */
        if (strcmp(b->anchors[i].name, name) == 0)
            found = &b->anchors[i];
    if (!found) {
        fail_at(b, &mark, NULL, "undefined alias '*%s' (define it first with '&%s')", name, name);
        return -1;
    }
    if (!found->complete) {
        fail_at(b, &mark, NULL, "alias '*%s' refers to a value that contains it", name);
        return -1;
    }
    if (add_nodes(b, count_nodes(found->node), &mark, 1) != 0)
        return -1;
    mf_config *copy = mfi_config_copy(found->node);
    if (!copy || mfi_config_mark_set(&copy->mark, mark.file, mark.line, mark.column) != 0) {
        mfi_config_node_free(copy);
        out_of_memory(b);
        return -1;
    }
    return attach(b, copy);
}

static int on_event(builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            mfi_config_mark mark = user_mark(b, ev->start_mark);
            fail_at(b, &mark, NULL,
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
    if (check_text(b) != 0) {
        free(b);
        return NULL;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        out_of_memory(b);
        free(b);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)b->text, b->len);
    for (int done = 0; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            report_parser_error(b, &parser);
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
