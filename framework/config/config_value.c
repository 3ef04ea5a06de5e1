/* config_value.c — what scalar text means (integers, numbers, booleans, enums), range and
 * list checks, type names and "did you mean". Used by both the checker and the getters,
 * so a value accepted by one is read the same way by the other.
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

#define MAX_CHOICES 64
#define MAX_SUGGEST_LEN 256

const char *mf_type_name(mf_type t)
{
    static const char *const names[MF_TYPE_COUNT] = {
        [MF_TYPE_INT] = "an integer",
        [MF_TYPE_FLOAT] = "a number",
        [MF_TYPE_BOOL] = "true or false",
        [MF_TYPE_STRING] = "a string",
        [MF_TYPE_ENUM] = "one of the choices",
        [MF_TYPE_INT_LIST] = "a list of integers",
        [MF_TYPE_FLOAT_LIST] = "a list of numbers",
        [MF_TYPE_STRING_LIST] = "a list of strings",
        [MF_TYPE_MAP] = "a map",
    };
    return (unsigned)t < MF_TYPE_COUNT ? names[t] : "a value of unknown type";
}

mf_type mfi_config_element_type(mf_type t)
{
    switch (t) {
    case MF_TYPE_INT_LIST:
        return MF_TYPE_INT;
    case MF_TYPE_FLOAT_LIST:
        return MF_TYPE_FLOAT;
    case MF_TYPE_STRING_LIST:
        return MF_TYPE_STRING;
    default:
        return t;
    }
}

/* ---------------------------------------------------------------- did you mean */
/* Optimal-string-alignment distance (Levenshtein plus adjacent transpositions: "tpye"
 * is one edit from "type"), ignoring case. */
static int edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    int rows[3][MAX_SUGGEST_LEN + 1];
    int *before = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int best = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && before[j - 2] + 1 < best)
                best = before[j - 2] + 1;
            cur[j] = best;
        }
        int *recycled = before;
        before = prev;
        prev = cur;
        cur = recycled;
    }
    return prev[lb];
}

const char *mf_did_you_mean(const char *word, const char *const *candidates)
{
    if (!word || !candidates)
        return NULL;
    size_t len = strlen(word);
    if (len > MAX_SUGGEST_LEN)
        return NULL;
    int limit = len / 3 > 1 ? (int)(len / 3) : 1;
    const char *best = NULL;
    int best_distance = limit + 1;
    for (const char *const *c = candidates; *c; c++) {
        size_t clen = strlen(*c);
        if (clen > MAX_SUGGEST_LEN || strcmp(*c, word) == 0)
            continue;
        int d = edit_distance(word, len, *c, clen);
        if (d < best_distance) { /* strictly better: ties keep the first */
            best = *c;
            best_distance = d;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- numbers */
/* strtod and %g follow LC_NUMERIC; YAML numbers always use '.', whatever the host's locale. */
typedef struct c_numeric {
    locale_t c, previous;
} c_numeric;

static c_numeric c_numeric_begin(void)
{
    c_numeric s = {newlocale(LC_NUMERIC_MASK, "C", (locale_t)0), (locale_t)0};
    if (s.c)
        s.previous = uselocale(s.c);
    return s;
}

static void c_numeric_end(c_numeric s)
{
    if (s.c) {
        uselocale(s.previous);
        freelocale(s.c);
    }
}

static size_t skip_digits(const char *s, int hex)
{
    size_t n = 0;
    while (hex ? isxdigit((unsigned char)s[n]) : isdigit((unsigned char)s[n]))
        n++;
    return n;
}

/* Decimal or 0x hex integer with an optional sign. *why explains out-of-range failures. */
static int parse_int(const char *s, int64_t *out, const char **why)
{
    const char *p = s;
    int negative = *p == '-';
    if (*p == '+' || *p == '-')
        p++;
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    if (hex)
        p += 2;
    size_t digits = skip_digits(p, hex);
    if (digits == 0 || p[digits] != '\0')
        return -1;
    errno = 0;
    unsigned long long magnitude = strtoull(p, NULL, hex ? 16 : 10);
    unsigned long long limit = negative ? (unsigned long long)INT64_MAX + 1 : INT64_MAX;
    if (errno == ERANGE || magnitude > limit) {
        *why = " (outside the 64-bit integer range)";
        return -1;
    }
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}

/* YAML 1.2 core numbers: integers as above, or [sign](digits[.digits]|.digits)[e[sign]digits].
 * Infinity and NaN are refused: no experiment wants them, and they hide typos. */
static int parse_number(const char *s, double *out, const char **why)
{
    int64_t i;
    if (parse_int(s, &i, why) == 0) {
        *out = (double)i;
        return 0;
    }
    *why = "";
    const char *p = s + (*s == '+' || *s == '-');
    if (strcasecmp(p, ".inf") == 0 || strcasecmp(p, ".nan") == 0 || strcasecmp(p, "inf") == 0 ||
        strcasecmp(p, "nan") == 0 || strcasecmp(p, "infinity") == 0) {
        *why = " (infinity and NaN are not allowed)";
        return -1;
    }
    size_t whole = skip_digits(p, 0), fraction = 0;
    p += whole;
    if (*p == '.') {
        fraction = skip_digits(p + 1, 0);
        p += 1 + fraction;
    }
    if (whole + fraction == 0)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p += 1 + (p[1] == '+' || p[1] == '-');
        size_t exponent = skip_digits(p, 0);
        if (exponent == 0)
            return -1;
        p += exponent;
    }
    if (*p != '\0')
        return -1;
    c_numeric locale = c_numeric_begin();
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    int range_error = errno == ERANGE && isinf(v);
    c_numeric_end(locale);
    if (*end != '\0')
        return -1;
    if (range_error) {
        *why = " (too large for a number)";
        return -1;
    }
    *out = v;
    return 0;
}

/* Bounds as written in a spec: 1000000, not %g's 1e+06 (which reads oddly for an integer). */
static void format_number(double v, char *buf, size_t size)
{
    c_numeric locale = c_numeric_begin();
    snprintf(buf, size, "%.15g", v);
    c_numeric_end(locale);
}

/* ---------------------------------------------------------------- scalars */
static int type_error(const mf_config *n, const char *expected, const char *hint, mf_error *err)
{
    char got[256], colon[128] = "";
    mfi_config_describe(n, got, sizeof got);
    if (!hint && n->kind == MF_CONFIG_SCALAR && n->style == YAML_PLAIN_SCALAR_STYLE)
        hint = mfi_config_colon_hint(n->text, colon, sizeof colon);
    mfi_config_report(err, &n->mark, n->path, "expected %s, got %s%s", expected, got,
                      hint ? hint : "");
    return -1;
}

/* Splits "a|b|c" into words (pointing into buf). Returns the count. */
static int split_choices(const char *choices, char *buf, size_t size, const char **words)
{
    snprintf(buf, size, "%s", choices ? choices : "");
    int count = 0;
    for (char *p = buf; count < MAX_CHOICES;) {
        words[count++] = p;
        char *bar = strchr(p, '|');
        if (!bar)
            break;
        *bar = '\0';
        p = bar + 1;
    }
    words[count] = NULL;
    return count;
}

static int read_enum(const mf_config *n, const char *choices, mfi_config_value *out,
                     mf_error *err)
{
    char buf[1024], expected[1100] = "one of ";
    const char *words[MAX_CHOICES + 1];
    int count = split_choices(choices, buf, sizeof buf, words);
    if (n->kind == MF_CONFIG_SCALAR) {
        for (int i = 0; i < count; i++) {
            if (strcmp(n->text, words[i]) == 0) {
                out->choice = i;
                return 0;
            }
        }
    }
    for (int i = 0; i < count; i++) {
        strncat(expected, words[i], sizeof expected - strlen(expected) - 1);
        if (i + 1 < count)
            strncat(expected, ", ", sizeof expected - strlen(expected) - 1);
    }
    char hint[300] = "";
    const char *near = n->kind == MF_CONFIG_SCALAR ? mf_did_you_mean(n->text, words) : NULL;
    if (near)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    return type_error(n, expected, hint, err);
}

static int read_bool(const mf_config *n, mfi_config_value *out, mf_error *err)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    /* YAML 1.1 spellings: refused (YAML 1.2 reads them as strings), with the fix. */
    static const char *const old_yes[] = {"yes", "y", "on"};
    static const char *const old_no[] = {"no", "n", "off"};
    const char *hint = NULL;
    if (!mfi_config_is_quoted(n)) {
        for (int i = 0; i < 3; i++) {
            if (strcmp(n->text, yes[i]) == 0 || strcmp(n->text, no[i]) == 0) {
                out->b = strcmp(n->text, yes[i]) == 0;
                return 0;
            }
            if (strcasecmp(n->text, old_yes[i]) == 0)
                hint = " (did you mean 'true'?)";
            if (strcasecmp(n->text, old_no[i]) == 0)
                hint = " (did you mean 'false'?)";
        }
    }
    return type_error(n, mf_type_name(MF_TYPE_BOOL), hint, err);
}

int mfi_config_read_scalar(const mf_config *n, mf_type type, const char *choices,
                           mfi_config_value *out, mf_error *err)
{
    mfi_config_value ignored;
    if (!out)
        out = &ignored;
    if (type == MF_TYPE_ENUM)
        return read_enum(n, choices, out, err);
    if (n->kind != MF_CONFIG_SCALAR)
        return type_error(n, mf_type_name(type), NULL, err);
    const char *why = "";
    switch (type) {
    case MF_TYPE_STRING:
        out->s = n->text;
        return 0;
    case MF_TYPE_BOOL:
        return read_bool(n, out, err);
    case MF_TYPE_INT:
        if (!mfi_config_is_quoted(n) && parse_int(n->text, &out->i, &why) == 0)
            return 0;
        return type_error(n, mf_type_name(type), why, err);
    case MF_TYPE_FLOAT:
        if (!mfi_config_is_quoted(n) && parse_number(n->text, &out->f, &why) == 0)
            return 0;
        return type_error(n, mf_type_name(type), why, err);
    default:
        return type_error(n, mf_type_name(type), NULL, err);
    }
}

/* ---------------------------------------------------------------- checks */
static int check_range(const mf_config *n, mf_type type, double v, const mf_param_spec *spec,
                       mf_error *err)
{
    int has_min = (spec->flags & MF_PARAM_MIN) != 0, has_max = (spec->flags & MF_PARAM_MAX) != 0;
    if (!(has_min && v < spec->min) && !(has_max && v > spec->max))
        return 0;
    char min[64], max[64], bound[160], got[4 * MFI_CONFIG_EXCERPT + 16];
    format_number(spec->min, min, sizeof min);
    format_number(spec->max, max, sizeof max);
    if (has_min && has_max)
        snprintf(bound, sizeof bound, "between %s and %s", min, max);
    else
        snprintf(bound, sizeof bound, "%s %s", has_min ? ">=" : "<=", has_min ? min : max);
    mfi_config_excerpt(n->text, got, sizeof got);
    mfi_config_report(err, &n->mark, n->path, "expected %s %s, got %s", mf_type_name(type),
                      bound, got);
    return 1;
}

static int validate_scalar(const mf_config *n, mf_type type, const mf_param_spec *spec,
                           mf_error *err)
{
    mfi_config_value v;
    if (mfi_config_read_scalar(n, type, spec->choices, &v, err) != 0)
        return 1;
    if (type == MF_TYPE_INT)
        return check_range(n, type, (double)v.i, spec, err);
    if (type == MF_TYPE_FLOAT)
        return check_range(n, type, v.f, spec, err);
    return 0;
}

int mfi_config_validate(const mf_config *n, const mf_param_spec *spec, mf_error *err)
{
    switch (spec->type) {
    case MF_TYPE_MAP:
        if (n->kind == MF_CONFIG_MAP)
            return 0;
        type_error(n, mf_type_name(spec->type), NULL, err);
        return 1;
    case MF_TYPE_INT_LIST:
    case MF_TYPE_FLOAT_LIST:
    case MF_TYPE_STRING_LIST: {
        if (n->kind != MF_CONFIG_LIST) {
            type_error(n, mf_type_name(spec->type), NULL, err);
            return 1;
        }
        int problems = 0;
        for (int i = 0; i < n->length; i++)
            problems += validate_scalar(n->entries[i].value, mfi_config_element_type(spec->type),
                                        spec, err);
        return problems;
    }
    default:
        return validate_scalar(n, spec->type, spec, err);
    }
}

const char *mf_suggestion(const char *word, const char *const *candidates)
{
    static _Thread_local char hint[160];
    const char *near = mf_did_you_mean(word, candidates);
    if (!near)
        return "";
    snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    return hint;
}

/* Beside the other getters (config_check.c), which share their missing-key report: a key that
 * mf_config_get does not find goes through mf_config_string for the same sentence. */
int mf_config_string_list(const mf_config *map, const char *key, const char **out, int cap,
                          int *n, mf_error *err)
{
    const mf_config *list = map && key ? mf_config_get(map, key) : NULL;
    const char *ignored;
    if (!list) {
        mf_config_string(map, key, &ignored, err);
        return -1;
    }
    mf_param_spec spec = {key, MF_TYPE_STRING_LIST, NULL, 0, 0, 0, NULL, NULL};
    if (mfi_config_validate(list, &spec, err) != 0)
        return -1;
    *n = list->length;
    if (list->length > cap) {
        mfi_config_report(err, &list->mark, list->path,
                          "expected at most %d elements, got a list of %d", cap, list->length);
        return -1;
    }
    for (int i = 0; i < list->length; i++)
        out[i] = list->entries[i].value->text;
    return 0;
}
