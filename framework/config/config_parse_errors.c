/* config_parse.c's messages: positions in the user's file (or -o value), the text checks
 * (UTF-8, no control characters), and libyaml's errors said in the user's terms. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

/* ---------------------------------------------------------------- positions */
/* A libyaml mark (0-based, characters) as a user-facing mark. The file name is borrowed. */
mfi_config_mark mfi_parse_user_mark(const builder *b, yaml_mark_t m)
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

void mfi_parse_fail_at(builder *b, const mfi_config_mark *mark, const char *path,
                       const char *fmt, ...)
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

void mfi_parse_out_of_memory(builder *b)
{
    mfi_parse_fail_at(b, NULL, NULL, "out of memory");
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
int mfi_parse_check_text(builder *b)
{
    char what[64];
    size_t i = mfi_config_bad_text(b->text, b->len, what, sizeof what);
    if (i == b->len)
        return 0;
    mfi_config_mark mark = {(char *)b->source->name, 0, 0};
    offset_position(b->text, i, &mark.line, &mark.column);
    if (mark.line == 1)
        mark.column += b->source->column_offset;
    mfi_parse_fail_at(b, &mark, NULL, "found %s — is this a binary file? YAML must be UTF-8 text", what);
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

void mfi_parse_report_error(builder *b, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";
    const char *context = parser->context ? parser->context : "";
    mfi_config_mark at = mfi_parse_user_mark(b, parser->problem_mark);
    mfi_config_mark opened = mfi_parse_user_mark(b, parser->context_mark);

    if (parser->error == YAML_MEMORY_ERROR) {
        mfi_parse_out_of_memory(b);
    } else if (parser->error == YAML_READER_ERROR) {
        /* check_text catches nearly everything; this covers the rest (e.g. C1 controls). */
        offset_position(b->text, parser->problem_offset < b->len ? parser->problem_offset : b->len,
                        &at.line, &at.column);
        mfi_parse_fail_at(b, &at, NULL, "%s (0x%02X) — YAML must be printable UTF-8 text", problem,
                (unsigned)parser->problem_value);
    } else if (byte_at_mark(b->text, b->len, parser->problem_mark) == '\t' ||
               strstr(problem, "tab character")) {
        mfi_parse_fail_at(b, &at, NULL,
                "found a tab character where indentation was expected — YAML indents with spaces");
    } else if (in_flow_substitution(b, parser)) {
        mfi_parse_fail_at(b, &at, NULL,
                "a ${…} cannot be written plainly inside [ ] or { }: write the list or map in "
                "block style (one 'key: value' or '- item' per line), or quote it (then it is a "
                "string)");
    } else if (strcmp(problem, "did not find expected ',' or ']'") == 0 ||
               strcmp(problem, "did not find expected ',' or '}'") == 0) {
        char close = problem[strlen(problem) - 2];
        mfi_parse_fail_at(b, &at, NULL, "unclosed '%c' (opened at line %d, column %d): expected ',' or '%c'",
                close == ']' ? '[' : '{', opened.line, opened.column, close);
    } else if (strcmp(problem, "mapping values are not allowed in this context") == 0) {
        mfi_parse_fail_at(b, &at, NULL,
                "unexpected ':' — put a value that contains ': ' in quotes, or check the indentation");
    } else if ((strcmp(problem, "did not find expected key") == 0 ||
                strcmp(problem, "did not find expected '-' indicator") == 0) &&
               !starts_line(b->text, b->len, parser->problem_mark)) {
        int c = byte_at_mark(b->text, b->len, parser->problem_mark);
        if (c == ']' || c == '}')
            mfi_parse_fail_at(b, &at, NULL, "unexpected '%c' without a matching '%c'", c, c == ']' ? '[' : '{');
        else
            mfi_parse_fail_at(b, &at, NULL, "unexpected text after the value (to keep it, quote the whole "
                                  "value)");
    } else if (strcmp(problem, "did not find expected key") == 0) {
        mfi_parse_fail_at(b, &at, NULL,
                "bad indentation: expected a key lined up with the map that starts at line %d, column %d",
                opened.line, opened.column);
    } else if (strcmp(problem, "did not find expected '-' indicator") == 0) {
        mfi_parse_fail_at(b, &at, NULL,
                "bad indentation: expected a '- ' item lined up with the list that starts at line %d, column %d",
                opened.line, opened.column);
    } else if (strcmp(problem, "could not find expected ':'") == 0) {
        mfi_parse_fail_at(b, &opened, NULL, "this key has no ':' after it (write 'key: value')");
    } else if (strcmp(problem, "found unexpected end of stream") == 0 &&
               strstr(context, "quoted scalar")) {
        mfi_parse_fail_at(b, &opened, NULL, "unclosed quote: the string that starts here never ends");
    } else if (strcmp(problem, "found unknown escape character") == 0) {
        mfi_parse_fail_at(b, &at, NULL,
                "unknown escape in a double-quoted string (write '\\\\' for a backslash, or use single quotes)");
    } else if (strcmp(problem, "found character that cannot start any token") == 0) {
        int c = byte_at_mark(b->text, b->len, parser->problem_mark);
        if (c > 0x20 && c < 0x7F)
            mfi_parse_fail_at(b, &at, NULL, "'%c' cannot start a value — put the value in quotes", c);
        else
            mfi_parse_fail_at(b, &at, NULL, "found a character that cannot start a value");
    } else if (strcmp(problem, "did not find expected node content") == 0) {
        mfi_parse_fail_at(b, &at, NULL, "expected a value here");
    } else if (context[0]) {
        mfi_parse_fail_at(b, &at, NULL, "%s (%s)", problem, context);
    } else {
        mfi_parse_fail_at(b, &at, NULL, "%s", problem);
    }
}
