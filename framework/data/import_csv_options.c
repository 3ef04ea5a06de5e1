/* The options of mf_import_csv that name columns: --modality NAME=COLUMNS[:SHAPE], --label,
 * --target, --split; the --split row ranges once the row count is known. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import_csv.h"

/* A column in messages: its header name, else its number. */
const char *mfi_csv_col_name(const mfi_importer *im, int c, char *buf, size_t size)
{
    if (im->header && *im->header[c])
        snprintf(buf, size, "%s", im->header[c]);
    else
        snprintf(buf, size, "%d", c + 1);
    return buf;
}

/* A 1-based column number (digits only), or -1. */
static int column_number(const char *s, size_t len)
{
    long v = 0;
    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = 10 * v + (s[i] - '0');
    }
    return (int)v;
}

/* Resolve s[0..len) — a header name or a 1-based number — to a 0-based column; -1 with a
 * message when quiet is 0. */
int mfi_csv_resolve_column(const mfi_importer *im, const char *opt, const char *s, size_t len,
                          int quiet, mf_error *err)
{
    char word[256];
    snprintf(word, sizeof word, "%.*s", (int)(len < 255 ? len : 255), s);
    int found = -1;
    for (int c = 0; im->header && c < im->n_col; c++)
        if (strlen(im->header[c]) == len && memcmp(im->header[c], s, len) == 0) {
            if (found >= 0) {
                if (!quiet)
                    mf_error_set(err, "%s: column name '%s' appears twice in %s's header "
                                      "(columns %d and %d); use the number",
                                 opt, word, im->in.name, found + 1, c + 1);
                return -1;
            }
            found = c;
        }
    if (found >= 0)
        return found;
    int number = column_number(s, len);
    if (number >= 1 && number <= im->n_col)
        return number - 1;
    if (quiet)
        return -1;
    if (number >= 0) {
        mf_error_set(err, "%s: column %d does not exist (%s has %d columns)", opt, number,
                     im->in.name, im->n_col);
    } else {
        const char *hint = im->header ? mf_suggestion(word, (const char *const *)im->header)
                                      : "";
        mf_error_set(err, "%s: %s has no column '%s'%s", opt, im->in.name, word,
                     hint);
    }
    return -1;
}

/* COLUMNS: comma-separated items, each a column (name or number), a range A-B, or a range
 * with a step A-B/S (every S-th column from A to B). Appends to *cols. */
int mfi_csv_parse_columns(const mfi_importer *im, const char *opt, const char *spec, int **cols,
                         int *n, mf_error *err)
{
    int cap = 0;
    *cols = NULL;
    *n = 0;
    for (const char *p = spec;; p++) {
        size_t len = strcspn(p, ",");
        int first = -1, last = -1, step = 1;
        if (len == 0) {
            mf_error_set(err, "%s: an empty item in the column list", opt);
            return -1;
        }
        first = last = mfi_csv_resolve_column(im, opt, p, len, 1, err);
        if (first < 0) {
            /* a range: split at a '-' (and a '/' for the step) where both ends resolve */
            size_t body = len;
            const char *slash = memchr(p, '/', len);
            if (slash) {
                long s = column_number(slash + 1, len - (size_t)(slash + 1 - p));
                if (s < 1) {
                    mf_error_set(err, "%s: '%.*s' has a step that is not a positive integer",
                                 opt, (int)len, p);
                    return -1;
                }
                step = (int)s;
                body = (size_t)(slash - p);
            }
            size_t half = 0; /* a '-' after a valid start: the end is what is wrong */
            for (size_t i = 1; i + 1 < body && first < 0; i++)
                if (p[i] == '-' && (first = mfi_csv_resolve_column(im, opt, p, i, 1, err)) >= 0 &&
                    (last = mfi_csv_resolve_column(im, opt, p + i + 1, body - i - 1, 1, err)) < 0) {
                    first = -1;
                    half = half ? half : i;
                }
            if (first < 0) {
                if (half)
                    mfi_csv_resolve_column(im, opt, p + half + 1, body - half - 1, 0, err);
                else if (slash && mfi_csv_resolve_column(im, opt, p, body, 1, err) >= 0)
                    mf_error_set(err, "%s: '%.*s' has a step but is not a range A-B/S", opt,
                                 (int)len, p); /* "1/2" once failed without a message */
                else
                    mfi_csv_resolve_column(im, opt, p, body, 0, err);
                return -1;
            }
        }
        int dir = last >= first ? 1 : -1;
        for (int c = first; dir * (last - c) >= 0; c += dir * step) {
            if (*n == cap) {
                if (cap >= 1 << 26) { /* and the int counts below cannot overflow */
                    mf_error_set(err, "%s: lists more than %d columns", opt, 1 << 26);
                    return -1;
                }
                cap = cap ? 2 * cap : 64;
                int *grown = realloc(*cols, (size_t)cap * sizeof *grown);
                if (!grown) {
                    mf_error_set(err, "%s: out of memory", opt);
                    return -1;
                }
                *cols = grown;
            }
            (*cols)[(*n)++] = c;
        }
        p += len;
        if (!*p)
            return 0;
    }
}

/* "2x3x3" → shape; -1 with a message. */
static int parse_shape(const char *opt, const char *s, mf_shape *shape, mf_error *err)
{
    shape->ndim = 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, "x");
        int d = column_number(p, len);
        if (d < 1 || shape->ndim == MF_MAX_DIMS - 1) { /* the batch is the file's first */
            mf_error_set(err, d < 1 ? "%s: '%s' is not a shape like 2x3x3"
                                    : "%s: shape '%s' has more than 3 axes (mmfuse reads at "
                                      "most 3 per sample)",
                         opt, s);
            return -1;
        }
        shape->dim[shape->ndim++] = d;
        p += len;
        if (!*p)
            return 0;
    }
}

int mfi_csv_parse_modality(mfi_importer *im, mfi_modality *m, const char *spec, mf_error *err)
{
    char opt[320];
    snprintf(opt, sizeof opt, "--modality '%.300s'", spec);
    m->spec = spec;
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        mf_error_set(err, "%s: expected NAME=COLUMNS[:SHAPE], e.g. visible=1-4:2x2", opt);
        return -1;
    }
    size_t name_len = (size_t)(eq - spec);
    for (size_t i = 0; i < name_len; i++)
        if (!(isalnum((unsigned char)spec[i]) || spec[i] == '_' || spec[i] == '-')) {
            mf_error_set(err, "%s: a modality name is letters, digits, '_' and '-'", opt);
            return -1;
        }
    if (name_len > 255 || !(m->name = strndup(spec, name_len))) {
        mf_error_set(err, "%s: a modality name is at most 255 bytes", opt);
        return -1;
    }
    for (mfi_modality *o = im->mod; o < m; o++)
        if (strcmp(o->name, m->name) == 0) {
            mf_error_set(err, "%s: modality '%s' is given twice", opt, m->name);
            return -1;
        }
    const char *columns = eq + 1, *colon = strrchr(columns, ':');
    char *list = strndup(columns, colon ? (size_t)(colon - columns) : strlen(columns));
    int rc = list ? mfi_csv_parse_columns(im, opt, list, &m->col, &m->n_col, err) : -1;
    free(list);
    if (rc)
        return -1;
    m->shape = mf_shape1(m->n_col);
    if (colon && parse_shape(opt, colon + 1, &m->shape, err))
        return -1;
    /* -1: the product overflows (a 111620x429509837x384773 shape once wrapped to 4) */
    const int64_t numel = mf_shape_numel(&m->shape);
    if (numel < 0) {
        mf_error_set(err, "%s: shape %s holds more values than mmfuse can count (the product "
                          "overflows), not the %d columns listed", opt, colon + 1, m->n_col);
        return -1;
    }
    if (numel != m->n_col) {
        mf_error_set(err, "%s: shape %s holds %lld values but %d columns are listed", opt,
                     colon + 1, (long long)numel, m->n_col);
        return -1;
    }
    m->integral = 1;
    m->lo = INFINITY;
    m->hi = -INFINITY;
    return 0;
}

int mfi_csv_split_value(const char *s)
{
    static const char *const names[] = {"train", "val", "test", "0", "1", "2", "validation"};
    static const int splits[] = {0, 1, 2, 0, 1, 2, 1};
    for (int i = 0; i < 7; i++)
        if (strcmp(s, names[i]) == 0)
            return splits[i];
    return -1;
}

/* --split rows:A-B=NAME,… or column:COLUMN; the row ranges are checked after pass 1. */
int mfi_csv_parse_split(mfi_importer *im, mf_error *err)
{
    const char *spec = im->o->split;
    char opt[320];
    snprintf(opt, sizeof opt, "--split '%.300s'", spec);
    if (strncmp(spec, "column:", 7) == 0) {
        im->split_col = mfi_csv_resolve_column(im, opt, spec + 7, strlen(spec + 7), 0, err);
        return im->split_col < 0 ? -1 : 0;
    }
    if (strncmp(spec, "rows:", 5) != 0) {
        mf_error_set(err, "%s: expected rows:1-4435=train,4436-6435=test or column:NAME", opt);
        return -1;
    }
    for (const char *p = spec + 5;; p++) {
        size_t len = strcspn(p, ",");
        char item[128], name[16];
        long long first, last;
        int used = 0;
        snprintf(item, sizeof item, "%.*s", (int)(len < 127 ? len : 127), p);
        int ok = sscanf(item, "%lld-%lld=%15s%n", &first, &last, name, &used) == 3 ||
                 (sscanf(item, "%lld=%15s%n", &first, name, &used) == 2 && (last = first, 1));
        int split = ok ? mfi_csv_split_value(name) : -1;
        if (!ok || (size_t)used != strlen(item) || split < 0 || first < 1 || last < first) {
            mf_error_set(err, "%s: '%s' is not FIRST-LAST=train|val|test with 1 <= FIRST <= LAST",
                         opt, item);
            return -1;
        }
        mfi_range *grown = realloc(im->ranges, (size_t)(im->n_ranges + 1) * sizeof *grown);
        if (!grown) {
            mf_error_set(err, "%s: out of memory", opt);
            return -1;
        }
        im->ranges = grown;
        im->ranges[im->n_ranges++] = (mfi_range){first, last, split};
        p += len;
        if (!*p)
            return 0;
    }
}

static int by_first(const void *a, const void *b)
{
    const mfi_range *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

/* After pass 1, when the row count is known: ranges in order, disjoint, covering all rows. */
int mfi_csv_check_ranges(mfi_importer *im, mf_error *err)
{
    char opt[320];
    snprintf(opt, sizeof opt, "--split '%.300s'", im->o->split);
    qsort(im->ranges, (size_t)im->n_ranges, sizeof *im->ranges, by_first);
    int64_t next = 1;
    for (int i = 0; i < im->n_ranges; i++) {
        const mfi_range *r = &im->ranges[i];
        if (r->first < next)
            mf_error_set(err, "%s: data row %lld is in two ranges", opt, (long long)r->first);
        else if (r->first > next)
            mf_error_set(err, "%s: data row %lld is in no range", opt, (long long)next);
        else if (r->last > im->n)
            mf_error_set(err, "%s: range %lld-%lld goes past the last data row (%lld) of %s",
                         opt, (long long)r->first, (long long)r->last, (long long)im->n,
                         im->in.name);
        if (r->first != next || r->last > im->n)
            return -1;
        next = r->last + 1;
        im->count[r->split] += r->last - r->first + 1;
    }
    if (next <= im->n) {
        mf_error_set(err, "%s: data rows %lld to %lld are in no range", opt, (long long)next,
                     (long long)im->n);
        return -1;
    }
    return 0;
}

/* The split of data row `row` (from 1) under --split rows:… */
int mfi_csv_split_of_row(const mfi_importer *im, int64_t row)
{
    int lo = 0, hi = im->n_ranges - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (im->ranges[mid].first <= row)
            lo = mid;
        else
            hi = mid - 1;
    }
    return im->ranges[lo].split;
}
