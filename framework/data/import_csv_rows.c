/* One CSV record of mf_import_csv, on both passes: pass 1 checks every value and learns
 * what to write (the storage type of each modality, the class names), pass 2 puts the
 * record into the block of rows being written. After pass 1: the class order. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import_csv.h"

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

static int number_at(mfi_importer *im, int c, double *v, mf_error *err)
{
    char name[128], value[64];
    const char *s = mfi_csv_field(&im->in, c);
    int rc = parse_number(s, v);
    if (rc)
        mf_error_set(err, rc == 1 ? "%s:%ld: column %s: an empty value where a number belongs"
                     : rc == 2    ? "%s:%ld: column %s: '%s' is not a number"
                                  : "%s:%ld: column %s: '%s' is not a finite number",
                     im->in.name, im->in.record_line, mfi_csv_col_name(im, c, name, sizeof name),
                     excerpt(s, value, sizeof value));
    return rc ? -1 : 0;
}

static int is_integral(double v)
{
    return v == floor(v) && fabs(v) <= 9007199254740992.0; /* 2^53 */
}

static int find_name(const mfi_importer *im, const char *s, int *at)
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
static int note_label(mfi_importer *im, const char *s, mf_error *err)
{
    char name[128];
    int at;
    if (!*s) {
        mf_error_set(err, "%s:%ld: column %s: an empty label", im->in.name, im->in.record_line,
                     mfi_csv_col_name(im, im->label_col, name, sizeof name));
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
int mfi_csv_process(mfi_importer *im, int pass, int64_t b, mf_error *err)
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
        mfi_modality *md = &im->mod[m];
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
        const char *s = mfi_csv_field(&im->in, im->label_col);
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
                             mfi_csv_col_name(im, im->label_col, name, sizeof name),
                             excerpt(s, value, sizeof value));
                return -1;
            }
        }
    }
    if (im->split_col >= 0) {
        const char *s = mfi_csv_field(&im->in, im->split_col);
        int split = mfi_csv_split_value(s);
        if (split < 0) {
            mf_error_set(err, "%s:%ld: column %s: '%s' is not a split (train, val, test, or "
                              "0, 1, 2)",
                         im->in.name, im->in.record_line,
                         mfi_csv_col_name(im, im->split_col, name, sizeof name),
                         excerpt(s, value, sizeof value));
            return -1;
        }
        if (pass == 1)
            im->count[split]++;
        else
            im->split_block[b] = (uint8_t)split;
    } else if (im->n_ranges && pass == 2) {
        im->split_block[b] = (uint8_t)mfi_csv_split_of_row(im, im->written + b + 1);
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
int mfi_csv_decide_labels(mfi_importer *im, mf_error *err)
{
    char name[128];
    mfi_csv_col_name(im, im->label_col, name, sizeof name);
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
