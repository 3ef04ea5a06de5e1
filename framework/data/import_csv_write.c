/* The output of mf_import_csv: the HDF5 layout, pass 2's blocks of rows, and closing.
 *
 * Every dataset is chunked with a fletcher32 checksum per chunk, which the hdf5 reader (and
 * h5py) verify on every read: a flipped bit on disk is an error naming the sample, never a
 * silently wrong value. Objects record no modification times: the same CSV and command
 * give the same bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "import_csv.h"

/* Chunks hold about this many bytes: whole samples when one fits, and small enough that
 * the chunk a block of rows ends in stays in HDF5's default 1 MiB chunk cache until the
 * next block completes it (a chunk evicted half-written is read back and checksummed
 * twice). */
#define CHUNK_BYTES ((size_t)256 << 10)

hid_t mfi_csv_storage_type(const mfi_modality *m, const char **dtype)
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

/* "cannot write 'OUT': <why>" — the system's reason when a write failed (a full disk: "No
 * space left on device"), else what HDF5 was doing. */
static void write_error(const mfi_importer *im, int e, mf_error *err, const char *doing)
{
    if (e)
        mf_error_set(err, "cannot write '%s': %s", im->o->out, strerror(e));
    else
        mf_error_set(err, "cannot write '%s': HDF5 failed %s", im->o->out, doing);
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
static char *columns_text(const mfi_importer *im, const int *col, int n)
{
    size_t len = 1;
    char name[128];
    for (int j = 0; j < n; j++)
        len += strlen(mfi_csv_col_name(im, col[j], name, sizeof name)) + 1;
    char *s = malloc(len), *p = s;
    for (int j = 0; s && j < n; j++)
        p += sprintf(p, "%s%s", j ? "," : "", mfi_csv_col_name(im, col[j], name, sizeof name));
    return s;
}

/* A dataset, chunked and checksummed — but for variable-length strings (/classes), which
 * HDF5 cannot filter: theirs are references into a heap that has no checksum anyway. */
static hid_t make_dataset(hid_t where, const char *path, hid_t type, int rank,
                          const hsize_t *dims)
{
    const int vlen = H5Tis_variable_str(type) > 0;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = vlen ? H5Pcreate(H5P_DATASET_CREATE)
                      : mfi_h5_checksummed(rank, dims, H5Tget_size(type), CHUNK_BYTES);
    hid_t d = space >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0
                  ? H5Dcreate2(where, path, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                  : -1;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return d;
}

/* Rows [first, first+count) of dataset d (rank dims) from mem. */
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

static void modality_dims(const mfi_modality *m, int64_t n, int *rank, hsize_t *dims)
{
    dims[0] = (hsize_t)n;
    for (int a = 0; a < m->shape.ndim; a++)
        dims[a + 1] = (hsize_t)m->shape.dim[a];
    *rank = m->shape.ndim + 1;
}

/* /modalities/<name> for each modality (the reader lists them in creation order when the
 * group tracks it, as h5py's track_order does). */
static int create_modalities(mfi_importer *im)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl >= 0) {
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
        H5Pset_obj_track_times(gcpl, 0);
    }
    g = gcpl >= 0 ? H5Gcreate2(im->file, "modalities", H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    int ok = g >= 0;
    for (int m = 0; ok && m < im->n_mod; m++) {
        mfi_modality *md = &im->mod[m];
        hsize_t dims[MF_MAX_DIMS + 1];
        int rank;
        const char *dtype;
        modality_dims(md, im->n, &rank, dims);
        md->type = mfi_csv_storage_type(md, &dtype);
        char *cols = columns_text(im, md->col, md->n_col);
        ok = cols && (md->dset = make_dataset(g, md->name, md->type, rank, dims)) >= 0 &&
             string_attr(md->dset, "columns", cols) == 0;
        if (md->dset < 0)
            md->dset = 0;
        free(cols);
    }
    if (g >= 0)
        H5Gclose(g);
    return ok ? 0 : -1;
}

static int create_classes(mfi_importer *im)
{
    hsize_t k = (hsize_t)im->n_names;
    hid_t t = H5Tcopy(H5T_C_S1), d = -1;
    int ok = t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (d = make_dataset(im->file, "classes", t, 1, &k)) >= 0 &&
             H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, im->classes) >= 0;
    if (d >= 0)
        H5Dclose(d);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : -1;
}

/* Provenance: the user's attributes, then source and created_by unless given. */
static int create_attributes(mfi_importer *im)
{
    const mf_csv_import *o = im->o;
    int ok = 1;
    for (int i = 0; ok && i < o->n_attrs; i++) {
        const char *eq = strchr(o->attrs[i], '=');
        char *key = strndup(o->attrs[i], (size_t)(eq - o->attrs[i]));
        ok = key && string_attr(im->file, key, eq + 1) == 0;
        free(key);
    }
    const char *base = strrchr(im->in.name, '/');
    return ok && string_attr(im->file, "source", base ? base + 1 : im->in.name) == 0 &&
                   string_attr(im->file, "created_by", "mmfuse " MF_VERSION_STRING) == 0
               ? 0
               : -1;
}

/* Every dataset and attribute of the output file. */
static int create_layout(mfi_importer *im, mf_error *err)
{
    hsize_t dims[2] = {(hsize_t)im->n, (hsize_t)im->n_target};
    char label_name[128];
    int ok = create_modalities(im) == 0;
    if (ok && im->label_col >= 0)
        ok = (im->label_dset = make_dataset(im->file, "label", H5T_STD_I32LE, 1, dims)) >= 0 &&
             string_attr(im->label_dset, "column",
                         mfi_csv_col_name(im, im->label_col, label_name, sizeof label_name)) == 0;
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
    ok = ok && (!im->class_of || create_classes(im) == 0) && create_attributes(im) == 0;
    hid_t *ids[] = {&im->label_dset, &im->target_dset, &im->split_dset};
    for (int i = 0; i < 3; i++)
        if (*ids[i] < 0)
            *ids[i] = 0; /* a failed create: nothing to close */
    if (!ok || im->write_errno)
        write_error(im, im->write_errno, err, "to create its datasets and attributes");
    return ok && !im->write_errno ? 0 : -1;
}

static int alloc_blocks(mfi_importer *im, mf_error *err)
{
    size_t row_bytes = sizeof(int32_t) + 1 + (size_t)im->n_target * sizeof(float);
    for (int m = 0; m < im->n_mod; m++)
        row_bytes += (size_t)im->mod[m].n_col * sizeof(double);
    im->block_rows = (int64_t)(MFI_CSV_BLOCK_BYTES / row_bytes);
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
    if (!ok)
        mf_error_set(err, "out of memory for blocks of %zu rows", rows);
    return ok ? 0 : -1;
}

/* The block of b rows after im->written into every dataset. */
static int write_block(mfi_importer *im, int64_t b, mf_error *err)
{
    hsize_t dims[MF_MAX_DIMS + 1];
    int rank, e = 0;
    for (int m = 0; !e && m < im->n_mod; m++) {
        modality_dims(&im->mod[m], im->n, &rank, dims);
        e = write_rows(im->mod[m].dset, H5T_NATIVE_DOUBLE, rank, dims, im->written, b,
                       im->mod[m].block);
    }
    dims[1] = (hsize_t)im->n_target;
    if (!e && im->label_col >= 0)
        e = write_rows(im->label_dset, H5T_NATIVE_INT32, 1, dims, im->written, b,
                       im->label_block);
    if (!e && im->n_target)
        e = write_rows(im->target_dset, H5T_NATIVE_FLOAT, im->n_target > 1 ? 2 : 1, dims,
                       im->written, b, im->target_block);
    if (!e && im->split_dset > 0)
        e = write_rows(im->split_dset, H5T_NATIVE_UINT8, 1, dims, im->written, b,
                       im->split_block);
    if (e || im->write_errno) { /* the driver's failure, kept for us */
        char doing[96];
        snprintf(doing, sizeof doing, "writing rows %lld to %lld", (long long)im->written + 1,
                 (long long)(im->written + b));
        write_error(im, im->write_errno, err, doing);
        return -1;
    }
    im->written += b;
    return 0;
}

/* Pass 2: read the CSV again and write it block by block. */
static int write_data(mfi_importer *im, mf_error *err)
{
    if (alloc_blocks(im, err))
        return MF_EXIT_FAILED;
    if (mfi_csv_rewind(&im->in) || (im->header && mfi_csv_next(&im->in, err) != 1)) {
        mf_error_set(err, "%s: cannot be read again: %s", im->in.name, strerror(errno));
        return MF_EXIT_FAILED;
    }
    int64_t b = 0;
    im->written = 0;
    for (;;) {
        int rc = im->written + b < im->n ? mfi_csv_next(&im->in, err) : 0;
        if (rc < 0 || (rc == 1 && mfi_csv_process(im, 2, b, err)))
            return MF_EXIT_BAD_INPUT;
        if (rc == 0 && im->written + b < im->n) {
            mf_error_set(err, "%s: has fewer rows than when it was first read (did it change?)",
                         im->in.name);
            return MF_EXIT_BAD_INPUT;
        }
        b += rc;
        if (b == im->block_rows || (rc == 0 && b > 0)) {
            if (write_block(im, b, err))
                return MF_EXIT_FAILED;
            b = 0;
        }
        if (rc == 0)
            return MF_EXIT_OK;
    }
}

/* Close every dataset and the file, each exactly once, whatever failed before. No call
 * here can fail for want of space: the driver keeps such failures in im->write_errno
 * (h5_guard.c says why). */
static void close_all(mfi_importer *im)
{
    for (int m = 0; m < im->n_mod; m++)
        if (im->mod[m].dset > 0)
            H5Dclose(im->mod[m].dset), im->mod[m].dset = 0;
    hid_t *ids[] = {&im->label_dset, &im->target_dset, &im->split_dset};
    for (int i = 0; i < 3; i++)
        if (*ids[i] > 0)
            H5Dclose(*ids[i]), *ids[i] = 0;
    im->closed_ok = H5Fclose(im->file) >= 0;
    im->file = 0;
}

int mfi_csv_write(mfi_importer *im, mf_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say what failed */
    hid_t fapl = mfi_h5_guarded_fapl(&im->write_errno);
    im->file = fapl >= 0 ? H5Fcreate(im->af.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (im->file < 0) {
        im->file = 0;
        write_error(im, im->write_errno, err, "to create it");
        return MF_EXIT_FAILED;
    }
    int status = create_layout(im, err) ? MF_EXIT_FAILED : write_data(im, err);
    close_all(im);
    if (status == MF_EXIT_OK && (im->write_errno || !im->closed_ok)) {
        write_error(im, im->write_errno, err, "to finish it");
        status = MF_EXIT_FAILED;
    }
    return status;
}
