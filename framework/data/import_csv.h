/* import_csv.h — the parts of mf_import_csv (private to framework/data):
 *   import_csv_parse.c    the input (a regular file, or standard input spooled) and RFC 4180
 *   import_csv_options.c  --modality, --label/--target columns, shapes, --split
 *   import_csv_rows.c     one record: values, labels, splits (both passes); class order
 *   import_csv_write.c    the HDF5 layout, the blocks of rows, closing every handle once
 *   h5_guard.c            the file driver that keeps HDF5 from seeing a failed write
 *   import_csv.c          mf_import_csv: the order of it all, refusals about the paths
 */
#ifndef MMFUSE_IMPORT_CSV_H
#define MMFUSE_IMPORT_CSV_H

#include <stdint.h>
#include <stdio.h>

#include <hdf5.h>

#include "h5_guard.h"

#include <mmfuse/host.h>

/* Rows written at once: about this many bytes of values in memory. */
#define MFI_CSV_BLOCK_BYTES ((size_t)8 << 20)

/* ---------------------------------------------------------------- the CSV reader */
typedef struct mfi_csv {
    FILE *f;
    const char *name;  /* in messages */
    long line;         /* the physical line being read, from 1 */
    long record_line;  /* where the current record starts */
    char *text;        /* the record's fields, each NUL-terminated */
    size_t len, cap;
    size_t *field;     /* offsets into text */
    int n, field_cap;
    int64_t start;     /* the offset of the first byte (after a byte-order mark) */
    unsigned char peek[3];
    int n_peek, at_peek; /* bytes read ahead at the start, not yet consumed */
} mfi_csv;

/* Open `path` for reading (stdin for "-" and "/dev/stdin", copied to an unlinked temporary
 * file unless it is a regular file) and step over a byte-order mark. A path that is not a
 * regular file is refused (a FIFO would block forever). MF_EXIT_OK, BAD_INPUT or FAILED. */
int mfi_csv_open(mfi_csv *c, const char *path, mf_error *err);
void mfi_csv_close(mfi_csv *c);
/* Back to the first record. */
int mfi_csv_rewind(mfi_csv *c);
/* The next record: 1, 0 at the end of the file, -1 with a message. */
int mfi_csv_next(mfi_csv *c, mf_error *err);
static inline const char *mfi_csv_field(const mfi_csv *c, int i)
{
    return c->text + c->field[i];
}

/* ---------------------------------------------------------------- the import */
typedef struct mfi_modality {
    const char *spec;  /* "NAME=COLUMNS[:SHAPE]", in messages */
    char *name;
    int *col, n_col;
    mf_shape shape;
    int integral;      /* every value an integer (pass 1) */
    double lo, hi;
    hid_t type, dset;
    double *block;
} mfi_modality;

typedef struct mfi_range {
    int64_t first, last; /* data rows, from 1 */
    int split;
} mfi_range;

typedef struct mfi_importer {
    const mf_csv_import *o;
    mfi_csv in;
    int n_col;
    char **header;           /* n_col names, NULL-terminated; NULL without a header */
    mfi_modality *mod;
    int n_mod;
    int label_col, split_col; /* -1: none */
    int *target_col, n_target;
    mfi_range *ranges;
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
    hid_t file, label_dset, target_dset, split_dset; /* 0: not open */
    int write_errno;         /* the first failed write's errno (h5_guard.c) */
    int closed_ok;
    int32_t *label_block;
    float *target_block;
    uint8_t *split_block;
    int64_t block_rows;
} mfi_importer;

/* import_csv_options.c */
const char *mfi_csv_col_name(const mfi_importer *im, int c, char *buf, size_t size);
int mfi_csv_resolve_column(const mfi_importer *im, const char *opt, const char *s, size_t len,
                           int quiet, mf_error *err);
int mfi_csv_parse_columns(const mfi_importer *im, const char *opt, const char *spec, int **cols,
                          int *n, mf_error *err);
int mfi_csv_parse_modality(mfi_importer *im, mfi_modality *m, const char *spec, mf_error *err);
int mfi_csv_parse_split(mfi_importer *im, mf_error *err);
int mfi_csv_check_ranges(mfi_importer *im, mf_error *err);
int mfi_csv_split_value(const char *s);
int mfi_csv_split_of_row(const mfi_importer *im, int64_t row);

/* import_csv_rows.c */
int mfi_csv_process(mfi_importer *im, int pass, int64_t b, mf_error *err);
int mfi_csv_decide_labels(mfi_importer *im, mf_error *err);

/* import_csv_write.c: create OUT's temporary, write pass 2 into it, close it (every handle
 * exactly once, whatever failed). MF_EXIT_* statuses. */
int mfi_csv_write(mfi_importer *im, mf_error *err);
hid_t mfi_csv_storage_type(const mfi_modality *m, const char **dtype);

/* h5_guard.h: mfi_h5_guarded_fapl, the driver that keeps a failed write from HDF5 */

#endif
