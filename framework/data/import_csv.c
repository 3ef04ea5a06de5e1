/* mf_import_csv — a CSV table into a dataset file of the layout the `hdf5` reader takes
 * (docs/datasets.md): /modalities/<name>, /label + /classes or /target, /split, and
 * provenance attributes on the root.
 *
 * Two passes over the CSV: the first checks every value and learns what to write (row count,
 * the smallest storage type holding each modality exactly, the class names), the second
 * writes blocks of rows, so memory stays bounded by the block size whatever the file's size.
 * The output is written to a temporary beside it and renamed into place when complete.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include <mmfuse/host.h>

/* Rows written at once: about this many bytes of values in memory. */
#define BLOCK_BYTES ((size_t)8 << 20)

/* ---------------------------------------------------------------- CSV (RFC 4180)
 * No CSV library is a standard Debian build dependency, and the format is small: fields
 * separated by commas, records by LF or CRLF; a field in double quotes may hold commas, line
 * breaks and "" for a quote. Blank lines are skipped and a UTF-8 byte-order mark ignored. */
typedef struct csv {
    FILE *f;
    const char *name;
    long line;        /* the physical line being read, from 1 */
    long record_line; /* where the current record starts */
    char *text;       /* the record's fields, each NUL-terminated */
    size_t len, cap;
    size_t *field;    /* offsets into text */
    int n, field_cap;
} csv;

static int csv_put(csv *c, char ch)
{
    if (c->len + 1 > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        char *grown = realloc(c->text, cap);
        if (!grown)
            return -1;
        c->text = grown;
        c->cap = cap;
    }
    c->text[c->len++] = ch;
    return 0;
}

static int csv_start_field(csv *c)
{
    if (c->n == c->field_cap) {
        int cap = c->field_cap ? 2 * c->field_cap : 64;
        size_t *grown = realloc(c->field, (size_t)cap * sizeof *grown);
        if (!grown)
            return -1;
        c->field = grown;
        c->field_cap = cap;
    }
    c->field[c->n++] = c->len;
    return 0;
}

static const char *csv_field(const csv *c, int i)
{
    return c->text + c->field[i];
}

/* Back to the first record. */
static int csv_rewind(csv *c)
{
    if (fseek(c->f, 0, SEEK_SET) != 0)
        return -1;
    c->line = 1;
    int a = getc(c->f), b = getc(c->f), d = getc(c->f);
    if (!(a == 0xEF && b == 0xBB && d == 0xBF) && fseek(c->f, 0, SEEK_SET) != 0)
        return -1;
    return 0;
}

/* The next record: 1, 0 at the end of the file, -1 with a message. */
static int csv_next(csv *c, mf_error *err)
{
    c->len = 0;
    c->n = 0;
    int ch = getc(c->f);
    while (ch == '\n' || ch == '\r') { /* blank lines */
        c->line += ch == '\n';
        ch = getc(c->f);
    }
    if (ch == EOF) {
        if (ferror(c->f)) {
            mf_error_set(err, "%s:%ld: cannot be read: %s", c->name, c->line, strerror(errno));
            return -1;
        }
        return 0;
    }
    c->record_line = c->line;
    for (;;) { /* one field per turn; ch is its first character */
        if (csv_start_field(c))
            goto oom;
        if (ch == '"') {
            for (;;) {
                ch = getc(c->f);
                if (ch == EOF) {
                    mf_error_set(err, "%s:%ld: field %d opens a quote that is never closed",
                                 c->name, c->record_line, c->n);
                    return -1;
                }
                if (ch == '"' && (ch = getc(c->f)) != '"')
                    break; /* the closing quote; ch follows it */
                c->line += ch == '\n';
                if (ch == 0 || csv_put(c, (char)ch))
                    goto bad_byte;
            }
            if (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
                mf_error_set(err, "%s:%ld: field %d has text after its closing quote", c->name,
                             c->line, c->n);
                return -1;
            }
        } else {
            while (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
                if (ch == 0 || csv_put(c, (char)ch))
                    goto bad_byte;
                ch = getc(c->f);
            }
        }
        if (csv_put(c, '\0'))
            goto oom;
        if (ch == ',') {
            ch = getc(c->f);
            continue;
        }
        if (ch == '\r' && (ch = getc(c->f)) != '\n' && ch != EOF)
            ungetc(ch, c->f);
        c->line++;
        return 1;
    }
bad_byte:
    if (ch == 0) {
        mf_error_set(err, "%s:%ld: a NUL byte: this is not a text file", c->name, c->line);
        return -1;
    }
oom:
    mf_error_set(err, "%s:%ld: out of memory for a record", c->name, c->record_line);
    return -1;
}

/* ---------------------------------------------------------------- the import */
typedef struct modality {
    const char *spec;  /* "NAME=COLUMNS[:SHAPE]", in messages */
    char *name;
    int *col, n_col;
    mf_shape shape;
    int integral;      /* every value an integer (pass 1) */
    double lo, hi;
    hid_t type, dset;
    double *block;
} modality;

typedef struct range {
    int64_t first, last; /* data rows, from 1 */
    int split;
} range;

typedef struct importer {
    const mf_csv_import *o;
    csv in;
    int n_col;
    char **header;           /* n_col names, NULL-terminated; NULL without a header */
    modality *mod;
    int n_mod;
    int label_col, split_col; /* -1: none */
    int *target_col, n_target;
    range *ranges;
    int n_ranges;
    int64_t n;               /* data rows */
    int64_t written;         /* pass 2: rows before the current block */
    int64_t count[3];        /* per split */
    /* labels (pass 1) */
    char **names;            /* distinct label values in strcmp order */
    int n_names, names_cap;
    int *class_of;           /* names[i] → class index; NULL: integer labels kept */
    char **classes;          /* the names in class order */
    int all_numeric, all_integral;
    long non_integral_line, negative_line;
    char non_integral[64];
    int64_t negative, max_label;
    /* output */
    mf_atomic_file af;
    hid_t file, label_dset, target_dset, split_dset;
    int32_t *label_block;
    float *target_block;
    uint8_t *split_block;
    int64_t block_rows;
} importer;

/* A column in messages: its header name, else its number. */
static const char *col_name(const importer *im, int c, char *buf, size_t size)
{
    if (im->header && *im->header[c])
        snprintf(buf, size, "%s", im->header[c]);
    else
        snprintf(buf, size, "%d", c + 1);
    return buf;
}

/* A value in messages: at most 40 bytes. */
static const char *excerpt(const char *s, char *buf, size_t size)
{
    size_t len = strlen(s);
    snprintf(buf, size, "%.40s%s", s, len > 40 ? "…" : "");
    return buf;
}

/* 0: a number; 1: empty; 2: not a number; 3: not finite. Blanks around it are allowed. */
static int parse_number(const char *s, double *v)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return 1;
    char *end;
    *v = strtod(s, &end);
    if (end == s)
        return 2;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return 2;
    return isfinite(*v) ? 0 : 3;
}

static int number_at(importer *im, int c, double *v, mf_error *err)
{
    char name[128], value[64];
    const char *s = csv_field(&im->in, c);
    int rc = parse_number(s, v);
    if (rc)
        mf_error_set(err, rc == 1 ? "%s:%ld: column %s: an empty value where a number belongs"
                     : rc == 2    ? "%s:%ld: column %s: '%s' is not a number"
                                  : "%s:%ld: column %s: '%s' is not a finite number",
                     im->in.name, im->in.record_line, col_name(im, c, name, sizeof name),
                     excerpt(s, value, sizeof value));
    return rc ? -1 : 0;
}

static int is_integral(double v)
{
    return v == floor(v) && fabs(v) <= 9007199254740992.0; /* 2^53 */
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
static int resolve_column(const importer *im, const char *opt, const char *s, size_t len,
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
static int parse_columns(const importer *im, const char *opt, const char *spec, int **cols,
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
        first = last = resolve_column(im, opt, p, len, 1, err);
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
                if (p[i] == '-' && (first = resolve_column(im, opt, p, i, 1, err)) >= 0 &&
                    (last = resolve_column(im, opt, p + i + 1, body - i - 1, 1, err)) < 0) {
                    first = -1;
                    half = half ? half : i;
                }
            if (first < 0) {
                if (half)
                    resolve_column(im, opt, p + half + 1, body - half - 1, 0, err);
                else
                    resolve_column(im, opt, p, body, 0, err);
                return -1;
            }
        }
        int dir = last >= first ? 1 : -1;
        for (int c = first; dir * (last - c) >= 0; c += dir * step) {
            if (*n == cap) {
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
        if (d < 1 || shape->ndim == MF_MAX_DIMS) {
            mf_error_set(err, d < 1 ? "%s: '%s' is not a shape like 2x3x3"
                                    : "%s: shape '%s' has more than 4 axes",
                         opt, s);
            return -1;
        }
        shape->dim[shape->ndim++] = d;
        p += len;
        if (!*p)
            return 0;
    }
}

static int parse_modality(importer *im, modality *m, const char *spec, mf_error *err)
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
    for (modality *o = im->mod; o < m; o++)
        if (strcmp(o->name, m->name) == 0) {
            mf_error_set(err, "%s: modality '%s' is given twice", opt, m->name);
            return -1;
        }
    const char *columns = eq + 1, *colon = strrchr(columns, ':');
    char *list = strndup(columns, colon ? (size_t)(colon - columns) : strlen(columns));
    int rc = list ? parse_columns(im, opt, list, &m->col, &m->n_col, err) : -1;
    free(list);
    if (rc)
        return -1;
    m->shape = mf_shape1(m->n_col);
    if (colon && parse_shape(opt, colon + 1, &m->shape, err))
        return -1;
    if (mf_shape_numel(&m->shape) != m->n_col) {
        mf_error_set(err, "%s: shape %s holds %lld values but %d columns are listed", opt,
                     colon + 1, (long long)mf_shape_numel(&m->shape), m->n_col);
        return -1;
    }
    m->integral = 1;
    m->lo = INFINITY;
    m->hi = -INFINITY;
    return 0;
}

static int split_value(const char *s)
{
    static const char *const names[] = {"train", "val", "test", "0", "1", "2", "validation"};
    static const int splits[] = {0, 1, 2, 0, 1, 2, 1};
    for (int i = 0; i < 7; i++)
        if (strcmp(s, names[i]) == 0)
            return splits[i];
    return -1;
}

/* --split rows:A-B=NAME,… or column:COLUMN; the row ranges are checked after pass 1. */
static int parse_split(importer *im, mf_error *err)
{
    const char *spec = im->o->split;
    char opt[320];
    snprintf(opt, sizeof opt, "--split '%.300s'", spec);
    if (strncmp(spec, "column:", 7) == 0) {
        im->split_col = resolve_column(im, opt, spec + 7, strlen(spec + 7), 0, err);
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
        int split = ok ? split_value(name) : -1;
        if (!ok || (size_t)used != strlen(item) || split < 0 || first < 1 || last < first) {
            mf_error_set(err, "%s: '%s' is not FIRST-LAST=train|val|test with 1 <= FIRST <= LAST",
                         opt, item);
            return -1;
        }
        range *grown = realloc(im->ranges, (size_t)(im->n_ranges + 1) * sizeof *grown);
        if (!grown) {
            mf_error_set(err, "%s: out of memory", opt);
            return -1;
        }
        im->ranges = grown;
        im->ranges[im->n_ranges++] = (range){first, last, split};
        p += len;
        if (!*p)
            return 0;
    }
}

static int by_first(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

/* After pass 1, when the row count is known: ranges in order, disjoint, covering all rows. */
static int check_ranges(importer *im, mf_error *err)
{
    char opt[320];
    snprintf(opt, sizeof opt, "--split '%.300s'", im->o->split);
    qsort(im->ranges, (size_t)im->n_ranges, sizeof *im->ranges, by_first);
    int64_t next = 1;
    for (int i = 0; i < im->n_ranges; i++) {
        const range *r = &im->ranges[i];
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
static int split_of_row(const importer *im, int64_t row)
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

static int find_name(const importer *im, const char *s, int *at)
{
    int lo = 0, hi = im->n_names;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(im->names[mid], s);
        if (c == 0) {
            *at = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return 0;
}

/* Pass 1: remember the label value (its string, and what kind of number it is). */
static int note_label(importer *im, const char *s, mf_error *err)
{
    char name[128];
    int at;
    if (!*s) {
        mf_error_set(err, "%s:%ld: column %s: an empty label", im->in.name, im->in.record_line,
                     col_name(im, im->label_col, name, sizeof name));
        return -1;
    }
    double v;
    if (parse_number(s, &v) != 0) {
        im->all_numeric = im->all_integral = 0;
    } else if (!is_integral(v)) {
        if (im->all_integral && !im->non_integral_line) {
            im->non_integral_line = im->in.record_line;
            excerpt(s, im->non_integral, sizeof im->non_integral);
        }
        im->all_integral = 0;
    } else {
        if (v < 0 && !im->negative_line) {
            im->negative_line = im->in.record_line;
            im->negative = (int64_t)v;
        }
        if (v > (double)im->max_label)
            im->max_label = v > 4e18 ? INT64_MAX : (int64_t)v;
    }
    if (find_name(im, s, &at))
        return 0;
    if (im->n_names == im->names_cap) {
        int cap = im->names_cap ? 2 * im->names_cap : 64;
        char **grown = realloc(im->names, (size_t)cap * sizeof *grown);
        if (!grown)
            goto oom;
        im->names = grown;
        im->names_cap = cap;
    }
    char *copy = strdup(s);
    if (!copy)
        goto oom;
    memmove(im->names + at + 1, im->names + at, (size_t)(im->n_names - at) * sizeof *im->names);
    im->names[at] = copy;
    im->n_names++;
    return 0;
oom:
    mf_error_set(err, "%s:%ld: out of memory for the class names", im->in.name,
                 im->in.record_line);
    return -1;
}

/* One data record: pass 1 checks it and gathers what the output needs; pass 2 puts it in
 * the block at row b. */
static int process(importer *im, int pass, int64_t b, mf_error *err)
{
    char name[128], value[64];
    if (im->in.n != im->n_col) {
        mf_error_set(err, "%s:%ld: %d fields where the %s has %d", im->in.name,
                     im->in.record_line, im->in.n, im->header ? "header" : "first row",
                     im->n_col);
        return -1;
    }
    double v;
    for (int m = 0; m < im->n_mod; m++) {
        modality *md = &im->mod[m];
        for (int j = 0; j < md->n_col; j++) {
            if (number_at(im, md->col[j], &v, err))
                return -1;
            if (pass == 2) {
                md->block[b * md->n_col + j] = v;
                continue;
            }
            md->integral &= is_integral(v);
            md->lo = v < md->lo ? v : md->lo;
            md->hi = v > md->hi ? v : md->hi;
        }
    }
    for (int j = 0; j < im->n_target; j++) {
        if (number_at(im, im->target_col[j], &v, err))
            return -1;
        if (pass == 2)
            im->target_block[b * im->n_target + j] = (float)v;
    }
    if (im->label_col >= 0) {
        const char *s = csv_field(&im->in, im->label_col);
        if (pass == 1 && note_label(im, s, err))
            return -1;
        if (pass == 2) {
            int at;
            if (im->class_of && find_name(im, s, &at))
                im->label_block[b] = im->class_of[at];
            else if (!im->class_of && parse_number(s, &v) == 0)
                im->label_block[b] = (int32_t)v;
            else {
                mf_error_set(err, "%s:%ld: column %s: '%s' was not there when the file was "
                                  "first read (did it change?)",
                             im->in.name, im->in.record_line,
                             col_name(im, im->label_col, name, sizeof name),
                             excerpt(s, value, sizeof value));
                return -1;
            }
        }
    }
    if (im->split_col >= 0) {
        const char *s = csv_field(&im->in, im->split_col);
        int split = split_value(s);
        if (split < 0) {
            mf_error_set(err, "%s:%ld: column %s: '%s' is not a split (train, val, test, or "
                              "0, 1, 2)",
                         im->in.name, im->in.record_line,
                         col_name(im, im->split_col, name, sizeof name),
                         excerpt(s, value, sizeof value));
            return -1;
        }
        if (pass == 1)
            im->count[split]++;
        else
            im->split_block[b] = (uint8_t)split;
    } else if (im->n_ranges && pass == 2) {
        im->split_block[b] = (uint8_t)split_of_row(im, im->written + b + 1);
    }
    return 0;
}

/* Class order: numeric when every name is a number (1, 2, 10), else byte order. */
static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_number(const void *a, const void *b)
{
    double x = strtod(*(const char *const *)a, NULL), y = strtod(*(const char *const *)b, NULL);
    return x != y ? (x > y) - (x < y) : by_string(a, b);
}

/* After pass 1: how the labels are stored. */
static int decide_labels(importer *im, mf_error *err)
{
    char name[128];
    col_name(im, im->label_col, name, sizeof name);
    if (im->all_numeric && !im->all_integral && !im->o->classes_from_label) {
        mf_error_set(err, "%s:%ld: column %s: label '%s' is not an integer (regression targets "
                          "go in --target; --classes-from-label takes the values as names)",
                     im->in.name, im->non_integral_line, name, im->non_integral);
        return -1;
    }
    if (im->all_integral && !im->o->classes_from_label) {
        if (im->negative_line) {
            mf_error_set(err, "%s:%ld: column %s: label %lld is negative (class indices start "
                              "at 0; --classes-from-label takes the values as names)",
                         im->in.name, im->negative_line, name, (long long)im->negative);
            return -1;
        }
        if (im->max_label > INT32_MAX - 1) {
            mf_error_set(err, "%s: column %s: label %lld is above the largest class index "
                              "mmfuse takes (%d)", im->in.name, name, (long long)im->max_label,
                         INT32_MAX - 1);
            return -1;
        }
        return 0; /* integer labels are kept as they are: no /classes */
    }
    /* the names in class order (sorted, documented in docs/datasets.md); names[] stays in
     * strcmp order for lookups */
    im->classes = malloc((size_t)im->n_names * sizeof *im->classes);
    im->class_of = malloc((size_t)im->n_names * sizeof *im->class_of);
    if (!im->classes || !im->class_of) {
        mf_error_set(err, "%s: out of memory for %d class names", im->in.name, im->n_names);
        return -1;
    }
    memcpy(im->classes, im->names, (size_t)im->n_names * sizeof *im->classes);
    qsort(im->classes, (size_t)im->n_names, sizeof *im->classes,
          im->all_numeric ? by_number : by_string);
    for (int k = 0; k < im->n_names; k++) {
        int at;
        find_name(im, im->classes[k], &at);
        im->class_of[at] = k;
    }
    return 0;
}

/* ---------------------------------------------------------------- writing */
static hid_t storage_type(const modality *m, const char **dtype)
{
    if (m->integral && m->lo >= 0 && m->hi <= 255)
        return *dtype = "uint8", H5T_STD_U8LE;
    if (m->integral && m->lo >= -32768 && m->hi <= 32767)
        return *dtype = "int16", H5T_STD_I16LE;
    if (m->integral && m->lo >= INT32_MIN && m->hi <= INT32_MAX)
        return *dtype = "int32", H5T_STD_I32LE;
    if (m->integral)
        return *dtype = "float64", H5T_IEEE_F64LE; /* exact beyond int32 */
    return *dtype = "float32", H5T_IEEE_F32LE;
}

/* A scalar string attribute (variable-length UTF-8, as h5py writes str). */
static int string_attr(hid_t obj, const char *key, const char *value)
{
    if (H5Aexists(obj, key) > 0)
        return 0; /* given by the user: theirs wins */
    hid_t t = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && space >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (a = H5Acreate2(obj, key, t, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, t, &value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (space >= 0)
        H5Sclose(space);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : -1;
}

/* The list of a modality's source columns, for its `columns` attribute. */
static char *columns_text(const importer *im, const int *col, int n)
{
    size_t len = 1;
    char name[128];
    for (int j = 0; j < n; j++)
        len += strlen(col_name(im, col[j], name, sizeof name)) + 1;
    char *s = malloc(len), *p = s;
    for (int j = 0; s && j < n; j++)
        p += sprintf(p, "%s%s", j ? "," : "", col_name(im, col[j], name, sizeof name));
    return s;
}

/* Objects record no modification times: the same CSV and command give the same bytes. */
static hid_t make_dataset(hid_t where, const char *path, hid_t type, int rank,
                          const hsize_t *dims)
{
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = space >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0
                  ? H5Dcreate2(where, path, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                  : -1;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return d;
}

/* Rows [first, first+count) of dataset d (rank dims, rows of `width` values) from mem. */
static int write_rows(hid_t d, hid_t mem_type, int rank, const hsize_t *dims, int64_t first,
                      int64_t count, const void *data)
{
    hsize_t start[MF_MAX_DIMS + 1] = {(hsize_t)first}, cnt[MF_MAX_DIMS + 1] = {(hsize_t)count};
    for (int a = 1; a < rank; a++)
        cnt[a] = dims[a];
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, cnt, NULL);
    int ok = fs >= 0 && ms >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
             H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, data) >= 0;
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
    return ok ? 0 : -1;
}

static void modality_dims(const modality *m, int64_t n, int *rank, hsize_t *dims)
{
    dims[0] = (hsize_t)n;
    for (int a = 0; a < m->shape.ndim; a++)
        dims[a + 1] = (hsize_t)m->shape.dim[a];
    *rank = m->shape.ndim + 1;
}

/* Create every dataset and attribute of the output file. */
static int create_layout(importer *im, mf_error *err)
{
    const mf_csv_import *o = im->o;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    /* the reader lists modalities in creation order when the group tracks it */
    if (gcpl >= 0) {
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
        H5Pset_obj_track_times(gcpl, 0);
    }
    g = gcpl >= 0 ? H5Gcreate2(im->file, "modalities", H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    int ok = g >= 0;
    for (int m = 0; ok && m < im->n_mod; m++) {
        modality *md = &im->mod[m];
        hsize_t dims[MF_MAX_DIMS + 1];
        int rank;
        const char *dtype;
        modality_dims(md, im->n, &rank, dims);
        md->type = storage_type(md, &dtype);
        char *cols = columns_text(im, md->col, md->n_col);
        ok = cols && (md->dset = make_dataset(g, md->name, md->type, rank, dims)) >= 0 &&
             string_attr(md->dset, "columns", cols) == 0;
        free(cols);
    }
    if (g >= 0)
        H5Gclose(g);
    hsize_t dims[2] = {(hsize_t)im->n, (hsize_t)im->n_target};
    char label_name[128];
    if (ok && im->label_col >= 0)
        ok = (im->label_dset = make_dataset(im->file, "label", H5T_STD_I32LE, 1, dims)) >= 0 &&
             string_attr(im->label_dset, "column",
                         col_name(im, im->label_col, label_name, sizeof label_name)) == 0;
    if (ok && im->n_target) {
        char *cols = columns_text(im, im->target_col, im->n_target);
        ok = cols &&
             (im->target_dset = make_dataset(im->file, "target", H5T_IEEE_F32LE,
                                             im->n_target > 1 ? 2 : 1, dims)) >= 0 &&
             string_attr(im->target_dset, "columns", cols) == 0;
        free(cols);
    }
    if (ok && (im->split_col >= 0 || im->n_ranges))
        ok = (im->split_dset = make_dataset(im->file, "split", H5T_STD_U8LE, 1, dims)) >= 0;
    if (ok && im->class_of) {
        hsize_t k = (hsize_t)im->n_names;
        hid_t t = H5Tcopy(H5T_C_S1), d = -1;
        ok = t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (d = make_dataset(im->file, "classes", t, 1, &k)) >= 0 &&
             H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, im->classes) >= 0;
        if (d >= 0)
            H5Dclose(d);
        if (t >= 0)
            H5Tclose(t);
    }
    /* provenance: the user's attributes, then source and created_by unless given */
    for (int i = 0; ok && i < o->n_attrs; i++) {
        const char *eq = strchr(o->attrs[i], '=');
        char *key = strndup(o->attrs[i], (size_t)(eq - o->attrs[i]));
        ok = key && string_attr(im->file, key, eq + 1) == 0;
        free(key);
    }
    const char *base = strrchr(o->csv, '/');
    if (ok)
        ok = string_attr(im->file, "source", base ? base + 1 : o->csv) == 0 &&
             string_attr(im->file, "created_by", "mmfuse " MF_VERSION_STRING) == 0;
    if (!ok)
        mf_error_set(err, "cannot write '%s': HDF5 failed to create its datasets and attributes", o->out);
    return ok ? 0 : -1;
}

/* Pass 2: read the CSV again and write it block by block. */
static int write_data(importer *im, mf_error *err)
{
    size_t row_bytes = sizeof(int32_t) + 1 + (size_t)im->n_target * sizeof(float);
    for (int m = 0; m < im->n_mod; m++)
        row_bytes += (size_t)im->mod[m].n_col * sizeof(double);
    im->block_rows = (int64_t)(BLOCK_BYTES / row_bytes);
    if (im->block_rows < 1)
        im->block_rows = 1;
    if (im->block_rows > im->n)
        im->block_rows = im->n;
    const size_t rows = (size_t)im->block_rows;
    int ok = (im->label_block = malloc(rows * sizeof(int32_t))) &&
             (im->split_block = malloc(rows)) &&
             (im->target_block = malloc(rows * (size_t)(im->n_target + 1) * sizeof(float)));
    for (int m = 0; ok && m < im->n_mod; m++)
        ok = (im->mod[m].block = malloc(rows * (size_t)im->mod[m].n_col * sizeof(double))) != NULL;
    if (!ok) {
        mf_error_set(err, "out of memory for blocks of %zu rows", rows);
        return MF_EXIT_FAILED;
    }
    if (csv_rewind(&im->in) || (im->header && csv_next(&im->in, err) != 1)) {
        mf_error_set(err, "%s: cannot be read again: %s", im->in.name, strerror(errno));
        return MF_EXIT_FAILED;
    }
    int64_t b = 0;
    im->written = 0;
    for (;;) {
        int rc = im->written + b < im->n ? csv_next(&im->in, err) : 0;
        if (rc < 0 || (rc == 1 && process(im, 2, b, err)))
            return MF_EXIT_BAD_INPUT;
        if (rc == 0 && im->written + b < im->n) {
            mf_error_set(err, "%s: has fewer rows than when it was first read (did it change?)",
                         im->in.name);
            return MF_EXIT_BAD_INPUT;
        }
        b += rc;
        if (b == im->block_rows || (rc == 0 && b > 0)) {
            hsize_t dims[MF_MAX_DIMS + 1];
            int rank;
            for (int m = 0; ok && m < im->n_mod; m++) {
                modality_dims(&im->mod[m], im->n, &rank, dims);
                ok = write_rows(im->mod[m].dset, H5T_NATIVE_DOUBLE, rank, dims, im->written, b,
                                im->mod[m].block) == 0;
            }
            dims[1] = (hsize_t)im->n_target;
            if (ok && im->label_col >= 0)
                ok = write_rows(im->label_dset, H5T_NATIVE_INT32, 1, dims, im->written, b,
                                im->label_block) == 0;
            if (ok && im->n_target)
                ok = write_rows(im->target_dset, H5T_NATIVE_FLOAT, im->n_target > 1 ? 2 : 1,
                                dims, im->written, b, im->target_block) == 0;
            if (ok && im->split_dset > 0)
                ok = write_rows(im->split_dset, H5T_NATIVE_UINT8, 1, dims, im->written, b,
                                im->split_block) == 0;
            if (!ok) {
                mf_error_set(err, "cannot write '%s': HDF5 failed writing rows %lld to %lld",
                             im->o->out, (long long)im->written + 1, (long long)(im->written + b));
                return MF_EXIT_FAILED;
            }
            im->written += b;
            b = 0;
        }
        if (rc == 0)
            return MF_EXIT_OK;
    }
}

static void importer_free(importer *im)
{
    for (int m = 0; im->mod && m < im->n_mod; m++) {
        if (im->mod[m].dset > 0)
            H5Dclose(im->mod[m].dset);
        free(im->mod[m].name);
        free(im->mod[m].col);
        free(im->mod[m].block);
    }
    free(im->mod);
    hid_t *ids[] = {&im->label_dset, &im->target_dset, &im->split_dset};
    for (int i = 0; i < 3; i++)
        if (*ids[i] > 0)
            H5Dclose(*ids[i]);
    if (im->file > 0)
        H5Fclose(im->file);
    if (im->af.path)
        mf_atomic_abort(&im->af); /* nothing committed: the temporary goes */
    for (int c = 0; im->header && c < im->n_col; c++)
        free(im->header[c]);
    free(im->header);
    for (int k = 0; k < im->n_names; k++)
        free(im->names[k]);
    free(im->names);
    free(im->classes);
    free(im->class_of);
    free(im->target_col);
    free(im->ranges);
    free(im->label_block);
    free(im->target_block);
    free(im->split_block);
    free(im->in.text);
    free(im->in.field);
    if (im->in.f)
        fclose(im->in.f);
}

/* Everything that can be checked before the data: the options, the header, the columns. */
static int prepare(importer *im, mf_error *err)
{
    const mf_csv_import *o = im->o;
    if (!o->csv || !o->out) {
        mf_error_set(err, "no %s file given", !o->csv ? "CSV" : "output");
        return -1;
    }
    if (o->n_modalities < 1) {
        mf_error_set(err, "no --modality NAME=COLUMNS given: a dataset needs at least one");
        return -1;
    }
    if (!o->label == !o->target) {
        mf_error_set(err, o->label ? "--label and --target both given: a dataset has class "
                                     "labels or regression targets"
                                   : "no --label COLUMN (classes) or --target COLUMNS "
                                     "(regression) given");
        return -1;
    }
    for (int i = 0; i < o->n_attrs; i++)
        if (!strchr(o->attrs[i], '=') || o->attrs[i][0] == '=') {
            mf_error_set(err, "--attr '%s': expected KEY=VALUE", o->attrs[i]);
            return -1;
        }
    im->in.name = o->csv;
    if (!(im->in.f = fopen(o->csv, "rb"))) {
        mf_error_set(err, "cannot read '%s': %s", o->csv, strerror(errno));
        return -1;
    }
    int rc = csv_rewind(&im->in) ? -1 : csv_next(&im->in, err);
    if (rc <= 0) {
        if (rc == 0)
            mf_error_set(err, "%s: the file is empty", o->csv);
        return -1;
    }
    im->n_col = im->in.n;
    if (!o->no_header) {
        if (!(im->header = calloc((size_t)im->n_col + 1, sizeof *im->header)))
            goto oom;
        for (int c = 0; c < im->n_col; c++)
            if (!(im->header[c] = strdup(csv_field(&im->in, c))))
                goto oom;
    } else if (csv_rewind(&im->in)) { /* the first row is data */
        mf_error_set(err, "%s: cannot be read again: %s", o->csv, strerror(errno));
        return -1;
    }
    if (!(im->mod = calloc((size_t)o->n_modalities, sizeof *im->mod)))
        goto oom;
    for (; im->n_mod < o->n_modalities; im->n_mod++)
        if (parse_modality(im, &im->mod[im->n_mod], o->modalities[im->n_mod], err)) {
            im->n_mod++; /* so it is freed */
            return -1;
        }
    if (o->label) {
        char opt[320];
        snprintf(opt, sizeof opt, "--label '%.300s'", o->label);
        if ((im->label_col = resolve_column(im, opt, o->label, strlen(o->label), 0, err)) < 0)
            return -1;
    } else {
        char opt[320];
        snprintf(opt, sizeof opt, "--target '%.300s'", o->target);
        if (parse_columns(im, opt, o->target, &im->target_col, &im->n_target, err))
            return -1;
    }
    return o->split ? parse_split(im, err) : 0;
oom:
    mf_error_set(err, "%s: out of memory for the header", o->csv);
    return -1;
}

/* "wrote OUT: N samples; visible (2,3,3) uint8, …; 6 classes; split 4435/0/2000" */
static void summary(const importer *im, FILE *log)
{
    fprintf(log, "wrote %s: %lld samples; ", im->o->out, (long long)im->n);
    for (int m = 0; m < im->n_mod; m++) {
        char shape[64];
        const char *dtype;
        storage_type(&im->mod[m], &dtype);
        fprintf(log, "%s%s %s %s", m ? ", " : "", im->mod[m].name,
                mf_shape_str(&im->mod[m].shape, shape, sizeof shape), dtype);
    }
    if (im->class_of)
        fprintf(log, "; %d classes (/classes)", im->n_names);
    else if (im->label_col >= 0)
        fprintf(log, "; integer labels 0 to %lld", (long long)im->max_label);
    else
        fprintf(log, "; targets of %d values", im->n_target);
    if (im->split_col >= 0 || im->n_ranges)
        fprintf(log, "; split %lld train, %lld val, %lld test\n", (long long)im->count[0],
                (long long)im->count[1], (long long)im->count[2]);
    else
        fprintf(log, "; no split (training carves out validation)\n");
}

int mf_import_csv(const mf_csv_import *o, mf_error *err)
{
    importer im = {.o = o, .label_col = -1, .split_col = -1, .all_numeric = 1,
                   .all_integral = 1};
    int status = MF_EXIT_BAD_INPUT, rc;
    if (prepare(&im, err))
        goto done;
    /* the output's temporary now, so an unwritable place fails before a long first pass */
    if (!mf_atomic_open(&im.af, o->out, err)) {
        status = MF_EXIT_FAILED;
        goto done;
    }
    /* pass 1: check everything, learn the sizes and types */
    while ((rc = csv_next(&im.in, err)) == 1) {
        if (process(&im, 1, 0, err))
            goto done;
        im.n++;
    }
    if (rc < 0)
        goto done;
    if (im.n == 0) {
        mf_error_set(err, "%s: no data rows", o->csv);
        goto done;
    }
    if ((im.label_col >= 0 && decide_labels(&im, err)) || (im.n_ranges && check_ranges(&im, err)))
        goto done;
    /* pass 2: into the temporary, renamed into place when complete (HDF5 truncates it in
     * place, so committing fsyncs what HDF5 wrote) */
    status = MF_EXIT_FAILED;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say what failed */
    if ((im.file = H5Fcreate(im.af.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        im.file = 0;
        mf_error_set(err, "cannot write '%s': HDF5 cannot create it", o->out);
        goto done;
    }
    if (create_layout(&im, err) || (status = write_data(&im, err)) != MF_EXIT_OK)
        goto done;
    status = MF_EXIT_FAILED;
    for (int m = 0; m < im.n_mod; m++) {
        H5Dclose(im.mod[m].dset);
        im.mod[m].dset = 0;
    }
    hid_t *ids[] = {&im.label_dset, &im.target_dset, &im.split_dset};
    for (int i = 0; i < 3; i++)
        if (*ids[i] > 0)
            H5Dclose(*ids[i]), *ids[i] = 0;
    herr_t closed = H5Fclose(im.file);
    im.file = 0;
    if (closed < 0) {
        mf_error_set(err, "cannot write '%s': HDF5 failed to finish it", o->out);
        goto done;
    }
    if (mf_atomic_commit(&im.af, err))
        goto done;
    status = MF_EXIT_OK;
    if (o->log)
        summary(&im, o->log);
done:
    importer_free(&im);
    return status;
}
