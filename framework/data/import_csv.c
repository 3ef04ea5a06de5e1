/* mf_import_csv — a CSV table into a dataset file of the layout the `hdf5` reader takes
 * (docs/datasets.md): /modalities/<name>, /label + /classes or /target, /split, and
 * provenance attributes on the root.
 *
 * Two passes over the CSV: the first checks every value and learns what to write (row count,
 * the smallest storage type holding each modality exactly, the class names), the second
 * writes blocks of rows, so memory stays bounded by the block size whatever the file's size.
 * The output is written to a temporary beside it and renamed into place when complete.
 * The parts are in import_csv_*.c (import_csv.h lists them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "import_csv.h"

static void importer_free(mfi_importer *im)
{
    for (int m = 0; im->mod && m < im->n_mod; m++) {
        free(im->mod[m].name);
        free(im->mod[m].col);
        free(im->mod[m].block);
    }
    free(im->mod);
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
    mfi_csv_close(&im->in);
}

static int check_options(const mf_csv_import *o, mf_error *err)
{
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
    return 0;
}

/* The output must not be the input under any name (a symlink, a hard link, stdin
 * redirected from it): the rename at the end would replace the data with the import. */
static int check_not_input(const mfi_importer *im, mf_error *err)
{
    struct stat in, out;
    if (fstat(fileno(im->in.f), &in) != 0 || stat(im->o->out, &out) != 0)
        return 0; /* no such output yet: nothing to lose */
    if (in.st_dev != out.st_dev || in.st_ino != out.st_ino)
        return 0;
    mf_error_set(err, "-o '%s' is the CSV file being imported (%s); write the output to "
                      "another file", im->o->out, im->in.name);
    return -1;
}

/* The header row, or none (the first row is data). */
static int read_header(mfi_importer *im, mf_error *err)
{
    int rc = mfi_csv_next(&im->in, err);
    if (rc <= 0) {
        if (rc == 0)
            mf_error_set(err, "%s: the file is empty", im->in.name);
        return -1;
    }
    im->n_col = im->in.n;
    if (im->o->no_header) {
        if (mfi_csv_rewind(&im->in) == 0)
            return 0;
        mf_error_set(err, "%s: cannot be read again: %s", im->in.name, strerror(errno));
        return -1;
    }
    if (!(im->header = calloc((size_t)im->n_col + 1, sizeof *im->header)))
        goto oom;
    for (int c = 0; c < im->n_col; c++)
        if (!(im->header[c] = strdup(mfi_csv_field(&im->in, c))))
            goto oom;
    return 0;
oom:
    mf_error_set(err, "%s: out of memory for the header", im->in.name);
    return -1;
}

/* Everything that can be checked before the data: the options, the input, the header, the
 * columns. An MF_EXIT_* status. */
static int prepare(mfi_importer *im, mf_error *err)
{
    const mf_csv_import *o = im->o;
    if (check_options(o, err))
        return MF_EXIT_BAD_INPUT;
    int status = mfi_csv_open(&im->in, o->csv, err);
    if (status != MF_EXIT_OK)
        return status;
    if (check_not_input(im, err) || read_header(im, err))
        return MF_EXIT_BAD_INPUT;
    if (!(im->mod = calloc((size_t)o->n_modalities, sizeof *im->mod))) {
        mf_error_set(err, "out of memory for %d modalities", o->n_modalities);
        return MF_EXIT_FAILED;
    }
    for (; im->n_mod < o->n_modalities; im->n_mod++)
        if (mfi_csv_parse_modality(im, &im->mod[im->n_mod], o->modalities[im->n_mod], err)) {
            im->n_mod++; /* so it is freed */
            return MF_EXIT_BAD_INPUT;
        }
    char opt[320];
    if (o->label) {
        snprintf(opt, sizeof opt, "--label '%.300s'", o->label);
        im->label_col = mfi_csv_resolve_column(im, opt, o->label, strlen(o->label), 0, err);
        if (im->label_col < 0)
            return MF_EXIT_BAD_INPUT;
    } else {
        snprintf(opt, sizeof opt, "--target '%.300s'", o->target);
        if (mfi_csv_parse_columns(im, opt, o->target, &im->target_col, &im->n_target, err))
            return MF_EXIT_BAD_INPUT;
    }
    return o->split && mfi_csv_parse_split(im, err) ? MF_EXIT_BAD_INPUT : MF_EXIT_OK;
}

/* "wrote OUT: N samples; visible (2,3,3) uint8, …; 6 classes; split 4435/0/2000" */
static void summary(const mfi_importer *im, FILE *log)
{
    fprintf(log, "wrote %s: %lld samples; ", im->o->out, (long long)im->n);
    for (int m = 0; m < im->n_mod; m++) {
        char shape[64];
        const char *dtype;
        mfi_csv_storage_type(&im->mod[m], &dtype);
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

/* Pass 1: check everything, learn the sizes and types. */
static int first_pass(mfi_importer *im, mf_error *err)
{
    int rc;
    while ((rc = mfi_csv_next(&im->in, err)) == 1) {
        if (mfi_csv_process(im, 1, 0, err))
            return -1;
        im->n++;
    }
    if (rc < 0)
        return -1;
    if (im->n == 0) {
        mf_error_set(err, "%s: no data rows", im->in.name);
        return -1;
    }
    return (im->label_col >= 0 && mfi_csv_decide_labels(im, err)) ||
                   (im->n_ranges && mfi_csv_check_ranges(im, err))
               ? -1
               : 0;
}

/* Messages quote option values, header names and field values: a control byte in one
 * (a tab, an escape sequence) would reach the terminal as it is. */
static void printable(mf_error *err, size_t from)
{
    if (!err)
        return;
    for (char *c = err->msg + from + (from > 0); *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

int mf_import_csv(const mf_csv_import *o, mf_error *err)
{
    const size_t before = err ? strnlen(err->msg, sizeof err->msg) : 0;
    mfi_importer im = {.o = o, .label_col = -1, .split_col = -1, .all_numeric = 1,
                       .all_integral = 1};
    int status = prepare(&im, err);
    if (status != MF_EXIT_OK)
        goto done;
    /* the output's temporary now, so an unwritable place fails before a long first pass */
    if (!mf_atomic_open(&im.af, o->out, err)) {
        status = MF_EXIT_FAILED;
        goto done;
    }
    if (first_pass(&im, err)) {
        status = MF_EXIT_BAD_INPUT;
        goto done;
    }
    /* pass 2: into the temporary, renamed into place when complete (HDF5 truncates it in
     * place, so committing fsyncs what HDF5 wrote) */
    if ((status = mfi_csv_write(&im, err)) != MF_EXIT_OK)
        goto done;
    if (mf_atomic_commit(&im.af, err)) {
        status = MF_EXIT_FAILED;
        goto done;
    }
    if (o->log)
        summary(&im, o->log);
done:
    importer_free(&im);
    if (status != MF_EXIT_OK)
        printable(err, before < sizeof err->msg ? before : 0);
    return status;
}
