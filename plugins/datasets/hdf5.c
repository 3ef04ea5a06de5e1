/* hdf5 — datasets stored as HDF5 files in mmfuse's layout (readable as-is by h5py):
 *
 *   /modalities/<name>  one dataset per modality, first axis = samples, any numeric type
 *                       (delivered as float32); creation order when the group tracks it
 *                       (as `mmfuse import csv` writes it), else name order
 *   /label              integer class indices, (N) or (N,1)          } exactly one
 *   /target             regression targets, (N) or (N,D)             }
 *   /split              optional, (N) integers: 0 train, 1 val, 2 test
 *   /classes            optional, (K) strings, variable- or fixed-length: the class names
 *
 * open() checks the whole layout and every label and split value (they are small), so a bad
 * file fails before training starts; read() reads only the batch's rows (one hyperslab
 * selection of sorted, coalesced runs), so files larger than memory work, and reports NaN
 * or Inf with the file, dataset and sample. Every message is one sentence naming the file.
 *
 * Chunked datasets keep whole chunks (as float32) in a cache of their own, cache_mb each:
 * a batch whose chunks all fit is read chunk by chunk, each chunk one regular hyperslab.
 * Why: HDF5 1.10 maps an irregular selection (the batch's scattered rows) onto chunks
 * element by element, which took 60 % of a step on a 4 GB file read in chunk order
 * (data.shuffle: chunks); whole chunks map at once, and a chunk serves every batch of its
 * shuffle buffer. Batches spread over more chunks than the cache holds (a uniform shuffle)
 * read just their rows, as contiguous files do.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include <mmfuse/mmfuse.h>

#include "data_file.h"
#include "hdf5_vlen.h"

/* Labels and splits are checked at open in blocks of this many samples, so a file with
 * 10^9 samples needs no 8 GB of temporary integers. */
#define INT_BLOCK ((int64_t)1 << 20)
#define MAX_CLASSES ((int64_t)INT32_MAX - 1)
/* Without /classes, the classes are 0 … the largest label: that label must be below this,
 * and below max(UNNAMED_FLOOR, the sample count) — one stray label of 20000 among 64 samples
 * would otherwise make a 20001-class head and a 20001² confusion matrix (3.2 GB). */
#define MAX_UNNAMED_CLASS 65535
#define UNNAMED_FLOOR 1024

/* A dataset read by rows: a modality or /target. */
typedef struct rowset {
    hid_t id, space;
    char path[288];  /* "/modalities/nir", in messages */
    int rank;        /* of the dataset: 1 + the per-sample axes */
    hsize_t dims[MF_MAX_DIMS + 1];
    int64_t width;   /* values per sample */
    int dtype;       /* mf_dtype */
    float *data;     /* all samples, when preloaded; else NULL: read batch by batch */
    /* chunked and read batch by batch: whole chunks of chunk_rows samples, float32 */
    struct cslot { int64_t chunk; uint64_t used; float *data; } *cache;
    int64_t chunk_rows, n_cache;
    uint64_t tick;
    int direct;      /* chunks are float32 rows unfiltered: read as stored (H5Dread_chunk) */
} rowset;

typedef struct hdf5_state {
    char *file;      /* the resolved path, in messages */
    hid_t fid;
    int advise_fd;   /* HDF5's own descriptor of the file (sec2 driver), for read-ahead; 0: none */
    int n_modalities, n_rows; /* rows: the modalities, then /target for regression */
    rowset *rows;
    mf_modality_info *modality;
    char (*name)[256];
    int64_t n;
    int32_t *label;
    uint8_t *split;
    char **class_names;
    int n_classes;
    /* read() scratch, grown as needed */
    struct pick { int64_t row, pos; } *pick;
    int64_t *slot, *unique, *at, *block_start, *block_len, n_blocks;
    size_t pick_cap;
    float *buf;
    size_t buf_cap;
    int cause;       /* of the last failed read: see note_cause */
} hdf5_state;

static const mf_param_spec hdf5_params[] = {
    {"path", MF_TYPE_STRING, "\"\"", 0, 0, 0, NULL,
     "The HDF5 file, relative to the experiment file (required: the empty default is refused)."},
    {"cache_mb", MF_TYPE_INT, "16", MF_PARAM_MIN | MF_PARAM_MAX, 0, 65536, NULL,
     "Chunk cache per dataset in MiB (whole chunks as float32), for chunked (e.g. compressed) "
     "files read batch by batch: with data.shuffle: chunks it should hold data.shuffle_buffer "
     "samples' chunks."},
    {"preload_mb", MF_TYPE_INT, "256", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 20, NULL,
     "Datasets that fit in this many MiB as float32 (all together, in file order) are read "
     "whole at open and checked there; the others are read batch by batch (0: none)."},
    MF_PARAM_END,
};

/* ---------------------------------------------------------------- helpers */
static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id > 0)
        fn(*id);
    *id = 0;
}

static void hdf5_close(mf_dataset *self)
{
    hdf5_state *st = mf_dataset_state(self);
    for (int r = 0; r < st->n_rows; r++) {
        free(st->rows[r].data);
        for (int64_t k = 0; k < st->rows[r].n_cache; k++)
            free(st->rows[r].cache[k].data);
        free(st->rows[r].cache);
        close_id(&st->rows[r].space, H5Sclose);
        close_id(&st->rows[r].id, H5Dclose);
    }
    close_id(&st->fid, H5Fclose);
    for (int k = 0; st->class_names && k < st->n_classes; k++)
        free(st->class_names[k]);
    free(st->class_names);
    free(st->rows);
    free(st->modality);
    free(st->name);
    free(st->label);
    free(st->split);
    free(st->pick);
    free(st->slot);
    free(st->unique);
    free(st->at);
    free(st->block_start);
    free(st->block_len);
    free(st->buf);
    free(st->file);
    memset(st, 0, sizeof *st);
}

static const char *class_word(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integers";
    case H5T_FLOAT: return "floating-point values";
    case H5T_STRING: return "strings";
    case H5T_COMPOUND: return "compound records";
    case H5T_ENUM: return "enumerated values";
    case H5T_ARRAY: return "arrays";
    case H5T_VLEN: return "variable-length sequences";
    case H5T_REFERENCE: return "references";
    case H5T_OPAQUE: return "opaque bytes";
    case H5T_BITFIELD: return "bit fields";
    default: return "values of an unknown type";
    }
}

static int dtype_of(hid_t type)
{
    size_t size = H5Tget_size(type);
    if (H5Tget_class(type) == H5T_FLOAT)
        return size <= 4 ? MF_DTYPE_F32 : MF_DTYPE_F64;
    int is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
    case 1: return is_signed ? MF_DTYPE_I8 : MF_DTYPE_U8;
    case 2: return is_signed ? MF_DTYPE_I16 : MF_DTYPE_U16;
    case 4: return is_signed ? MF_DTYPE_I32 : MF_DTYPE_I64; /* uint32 fits int64 */
    default: return MF_DTYPE_I64;
    }
}

/* The type class of dataset d; H5T_NO_CLASS when it cannot be told. */
static H5T_class_t class_of(hid_t d)
{
    hid_t t = H5Dget_type(d);
    H5T_class_t c = t > 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t > 0)
        H5Tclose(t);
    return c;
}

/* Open the object at `path` as a dataset; -1 with a message when it is not one. */
static hid_t open_dataset(hdf5_state *st, const char *path, mf_error *err)
{
    hid_t obj = H5Oopen(st->fid, path, H5P_DEFAULT);
    if (obj < 0) {
        mf_error_set(err, "%s: %s cannot be opened: the file is truncated or corrupt", st->file,
                     path);
        return -1;
    }
    H5I_type_t type = H5Iget_type(obj);
    if (type == H5I_DATASET)
        return obj;
    H5Oclose(obj);
    mf_error_set(err, "%s: %s is %s, not a dataset", st->file, path,
                 type == H5I_GROUP ? "a group" : type == H5I_DATATYPE ? "a named type" : "an object");
    return -1;
}

/* The dataset's dimensions (rank 1…max_rank, no empty axis), or -1 with a message. */
static int get_dims(hdf5_state *st, hid_t d, const char *path, int max_rank, hsize_t *dims,
                    mf_error *err)
{
    hid_t space = H5Dget_space(d);
    int rank = space > 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank >= 1 && rank <= max_rank)
        H5Sget_simple_extent_dims(space, dims, NULL);
    if (space > 0)
        H5Sclose(space);
    if (rank < 0)
        mf_error_set(err, "%s: %s has no readable shape: the file is corrupt", st->file, path);
    else if (rank == 0)
        mf_error_set(err, "%s: %s is a single value, not one entry per sample", st->file, path);
    else if (rank > max_rank && max_rank == 1)
        mf_error_set(err, "%s: %s has %d axes; it must be a list, one entry per %s", st->file,
                     path, rank, strcmp(path, "/classes") == 0 ? "class" : "sample");
    else if (rank > max_rank && max_rank == 2)
        mf_error_set(err, "%s: %s has %d axes; it must hold one %s per sample, shape (N) or "
                     "(N,%s)", st->file, path, rank, strcmp(path, "/target") == 0 ? "row of "
                     "values" : "value", strcmp(path, "/target") == 0 ? "D" : "1");
    else if (rank > max_rank)
        mf_error_set(err, "%s: %s has %d axes per sample; mmfuse takes at most %d", st->file,
                     path, rank - 1, max_rank - 1);
    if (rank < 1 || rank > max_rank)
        return -1;
    if (dims[0] > (hsize_t)1 << 40) { /* keeps every count and size below in int64_t */
        mf_error_set(err, "%s: %s claims %llu samples, more than mmfuse takes (2^40)", st->file,
                     path, (unsigned long long)dims[0]);
        return -1;
    }
    for (int a = 0; a < rank; a++)
        if (dims[a] == 0) {
            mf_error_set(err, "%s: %s has no %s (axis %d is empty)", st->file, path,
                         a == 0 ? "samples" : "values per sample", a);
            return -1;
        }
    return rank;
}

/* libhdf5 1.10 reads past the stored bytes of a compact dataset that holds fewer than its
 * shape needs (a corrupt file): refuse those before reading. */
static int compact_ok(hdf5_state *st, hid_t d, const char *path, mf_error *err)
{
    hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d), space = H5Dget_space(d);
    int compact = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_COMPACT;
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t size = type >= 0 ? H5Tget_size(type) : 0;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (compact && (points < 0 || H5Dget_storage_size(d) < (hsize_t)points * size)) {
        mf_error_set(err, "%s: %s stores fewer bytes than its shape needs: the file is corrupt",
                     st->file, path);
        return -1;
    }
    return 0;
}

/* Every filter in d's pipeline is one this libhdf5 has (built in, or a plugin it can load
 * from HDF5_PLUGIN_PATH): else the file would pass validation and fail at its first read. */
static int filters_ok(hdf5_state *st, hid_t d, const char *path, mf_error *err)
{
    hid_t dcpl = H5Dget_create_plist(d);
    const int n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    int rc = dcpl >= 0 && n >= 0 ? 0 : -1;
    if (rc)
        mf_error_set(err, "%s: %s has an unreadable filter pipeline: the file is corrupt",
                     st->file, path);
    for (int i = 0; !rc && i < n; i++) {
        unsigned flags = 0, cd[16], config = 0;
        size_t n_cd = sizeof cd / sizeof *cd;
        char name[64] = "";
        H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_cd, cd, sizeof name, name,
                                        &config);
        for (char *c = name; *c; c++) /* the name is the file's: keep messages one line */
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        if (f < 0) {
            mf_error_set(err, "%s: %s has an unreadable filter pipeline: the file is corrupt",
                         st->file, path);
            rc = -1;
        } else if (H5Zfilter_avail(f) <= 0) {
            mf_error_set(err, "%s: %s is stored through HDF5 filter %d%s%s%s, which this "
                         "libhdf5 does not have: install the filter's plugin (HDF5_PLUGIN_PATH) "
                         "or rewrite the dataset without it (e.g. h5py's compression='gzip')",
                         st->file, path, (int)f, *name ? " ('" : "", name, *name ? "')" : "");
            rc = -1;
        }
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

/* A numeric dataset read by rows; max_rank bounds its rank (samples axis included). */
static int rowset_open(hdf5_state *st, rowset *r, const char *path, int max_rank, mf_error *err)
{
    snprintf(r->path, sizeof r->path, "%s", path);
    if ((r->id = open_dataset(st, path, err)) < 0) {
        r->id = 0;
        return -1;
    }
    H5T_class_t c = class_of(r->id);
    if (c != H5T_INTEGER && c != H5T_FLOAT) {
        mf_error_set(err, "%s: %s holds %s, not numbers", st->file, path, class_word(c));
        return -1;
    }
    if ((r->rank = get_dims(st, r->id, path, max_rank, r->dims, err)) < 0)
        return -1;
    hid_t t = H5Dget_type(r->id);
    size_t size = t >= 0 ? H5Tget_size(t) : 0, bits = 8 * size;
    r->dtype = dtype_of(t);
    /* libhdf5 1.10 converts a number type whose bit fields overrun its size out of bounds
     * (a corrupt file): check them first */
    size_t prec = H5Tget_precision(t), sp = 0, ep = 0, es = 0, mp = 0, ms = 0;
    int offset = H5Tget_offset(t);
    int sane = prec >= 1 && offset >= 0 && (size_t)offset + prec <= bits;
    if (sane && c == H5T_FLOAT)
        sane = H5Tget_fields(t, &sp, &ep, &es, &mp, &ms) >= 0 && sp < bits && es >= 1 &&
               ep + es <= bits && ms >= 1 && mp + ms <= bits;
    H5Tclose(t);
    if (!(size == 1 && c == H5T_INTEGER) && size != 2 && size != 4 && size != 8) {
        mf_error_set(err, "%s: %s holds %zu-byte %s; mmfuse reads integers of 1, 2, 4 or 8 "
                          "bytes and floats of 2, 4 or 8", st->file, path, size, class_word(c));
        return -1;
    }
    if (!sane) {
        mf_error_set(err, "%s: %s has a corrupt number type (bit fields beyond its size)",
                     st->file, path);
        return -1;
    }
    r->width = 1;
    for (int a = 1; a < r->rank; a++) {
        if (r->dims[a] > (hsize_t)INT64_MAX / (hsize_t)r->width / 4) {
            mf_error_set(err, "%s: %s has too many values per sample", st->file, path);
            return -1;
        }
        r->width *= (int64_t)r->dims[a];
    }
    if (compact_ok(st, r->id, path, err) || filters_ok(st, r->id, path, err))
        return -1;
    if ((r->space = H5Dget_space(r->id)) < 0) {
        r->space = 0;
        mf_error_set(err, "%s: %s has no readable shape: the file is corrupt", st->file, path);
        return -1;
    }
    return 0;
}

/* The cause of the read that just failed, from HDF5's error stack (H5Ewalk2 leaves it as
 * it is; any other call would clear it): 1 a fletcher32 mismatch, 2 a filter it lacks. */
static herr_t find_cause(unsigned n, const H5E_error2_t *e, void *data)
{
    int *cause = data;
    (void)n;
    if (e->desc && strstr(e->desc, "detected by Fletcher32 checksum"))
        *cause = 1;
    else if (e->desc && strstr(e->desc, "filter") && strstr(e->desc, "not registered") &&
             !*cause)
        *cause = 2;
    return 0;
}

/* Called right after a read failed, before any other HDF5 call (closing the selection's
 * spaces clears the stack). Returns rc. */
static herr_t note_cause(hdf5_state *st, herr_t rc)
{
    if (rc < 0) {
        st->cause = 0;
        (void)H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_cause, &st->cause);
    }
    return rc;
}

/* The message for sample `row` of r that cannot be read, named by the noted cause. */
static void unreadable(const hdf5_state *st, const rowset *r, int64_t row, mf_error *err)
{
    const int cause = st->cause;
    if (cause == 1)
        mf_error_set(err, "%s: %s: the chunk holding sample %lld fails its fletcher32 "
                          "checksum: the file is corrupt", st->file, r->path, (long long)row);
    else if (cause == 2)
        mf_error_set(err, "%s: %s: sample %lld needs an HDF5 filter this libhdf5 does not have",
                     st->file, r->path, (long long)row);
    else
        mf_error_set(err, "%s: %s: sample %lld cannot be read: the file is truncated or corrupt",
                     st->file, r->path, (long long)row);
}

/* Select rows [first, first+count) (all of each row) in `space`, a copy of r's. */
static herr_t select_rows(const rowset *r, hid_t space, H5S_seloper_t op, hsize_t first,
                          hsize_t count)
{
    hsize_t start[MF_MAX_DIMS + 1] = {first}, cnt[MF_MAX_DIMS + 1] = {count};
    for (int a = 1; a < r->rank; a++)
        cnt[a] = r->dims[a];
    return H5Sselect_hyperslab(space, op, start, NULL, cnt, NULL);
}

/* Blocks of rows start[i], len[i] (i < n) as one selection in a new copy of r's space.
 * Adding blocks one by one costs time quadratic in their number in HDF5 1.10, so groups of
 * up to 16 are OR-ed and the groups combined pairwise. */
static hid_t select_blocks(const rowset *r, const int64_t *start, const int64_t *len, int64_t n)
{
#if H5_VERSION_GE(1, 10, 7)
    if (n > 16) {
        hid_t a = select_blocks(r, start, len, n / 2);
        hid_t b = a >= 0 ? select_blocks(r, start + n / 2, len + n / 2, n - n / 2) : -1;
        hid_t both = b >= 0 ? H5Scombine_select(a, H5S_SELECT_OR, b) : -1;
        if (a >= 0)
            H5Sclose(a);
        if (b >= 0)
            H5Sclose(b);
        return both;
    }
#endif
    hid_t space = H5Scopy(r->space);
    for (int64_t i = 0; space >= 0 && i < n; i++)
        if (select_rows(r, space, i ? H5S_SELECT_OR : H5S_SELECT_SET, (hsize_t)start[i],
                        (hsize_t)len[i]) < 0) {
            H5Sclose(space);
            space = -1;
        }
    return space;
}

/* Plan the reading of rows unique[0..n) (sorted, distinct) of r: contiguous blocks, merging
 * the gaps of up to 4096 values between them (reading a few unwanted rows costs less than
 * one more block) while the rows read stay under twice the rows wanted. Sets at[i], where
 * row unique[i] lands in the buffer; returns the rows to read. */
static int64_t plan_blocks(hdf5_state *st, const rowset *r, const int64_t *unique, int64_t n)
{
    const int64_t max_gap = 4096 / r->width;
    int64_t rows = 0, extra = 0;
    st->n_blocks = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t nb = st->n_blocks, gap = nb ? unique[i] - (st->block_start[nb - 1] +
                                                          st->block_len[nb - 1]) : 0;
        if (nb && gap <= max_gap && extra + gap <= n) {
            st->block_len[nb - 1] += gap + 1;
            extra += gap;
            rows += gap;
        } else {
            st->block_start[nb] = unique[i];
            st->block_len[nb] = 1;
            st->n_blocks++;
        }
        st->at[i] = rows++;
    }
    return rows;
}

/* A memory space of `rows` samples of r, shaped as r: HDF5 1.10 maps a selection onto
 * chunks element by element unless memory and file selections have the same shape. */
static hid_t mem_rows(const rowset *r, int64_t rows)
{
    hsize_t dims[MF_MAX_DIMS + 1];
    memcpy(dims, r->dims, sizeof dims);
    dims[0] = (hsize_t)rows;
    return H5Screate_simple(r->rank, dims, NULL);
}

/* Read the planned blocks of r as float32 into out (rows × width). */
static herr_t read_blocks(hdf5_state *st, const rowset *r, int64_t rows, float *out)
{
    st->cause = 0;
    hid_t space = select_blocks(r, st->block_start, st->block_len, st->n_blocks);
    hid_t mem = space >= 0 ? mem_rows(r, rows) : -1;
    herr_t rc = mem >= 0 ? note_cause(st, H5Dread(r->id, H5T_NATIVE_FLOAT, mem, space,
                                                  H5P_DEFAULT, out)) : -1;
    if (mem >= 0)
        H5Sclose(mem);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* Why value j of sample `row` is not finite: float64 data is read again as float64 to tell
 * a stored Inf from a number beyond float32's range. */
static void describe_nonfinite(rowset *r, int64_t row, int64_t j, float v, char *buf, size_t size)
{
    snprintf(buf, size, "%s", isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf");
    if (r->dtype != MF_DTYPE_F64 || isnan(v))
        return;
    hsize_t coord[MF_MAX_DIMS + 1] = {(hsize_t)row}, one = 1;
    for (int a = r->rank - 1; a >= 1; a--) {
        coord[a] = (hsize_t)j % r->dims[a];
        j /= (int64_t)r->dims[a];
    }
    double d = 0;
    hid_t mem = H5Screate_simple(1, &one, NULL);
    if (mem >= 0 && H5Sselect_elements(r->space, H5S_SELECT_SET, 1, coord) >= 0 &&
        H5Dread(r->id, H5T_NATIVE_DOUBLE, mem, r->space, H5P_DEFAULT, &d) >= 0 && isfinite(d))
        snprintf(buf, size, "%g, beyond float32's range", d);
    if (mem >= 0)
        H5Sclose(mem);
}

/* -1 with a message when one of the values x[0..width) of sample `row` is not finite. */
static int check_row(hdf5_state *st, rowset *r, int64_t row, const float *x, mf_error *err)
{
    /* all-ones exponents, tested as integers so the loop vectorises (isfinite() per value
     * took 8 % of a step on wide rows) */
    uint32_t bad = 0;
    for (int64_t j = 0; j < r->width; j++) {
        uint32_t u;
        memcpy(&u, x + j, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    for (int64_t j = 0; bad && j < r->width; j++)
        if (!isfinite(x[j])) {
            char what[96];
            describe_nonfinite(r, row, j, x[j], what, sizeof what);
            mf_error_set(err, "%s: %s: sample %lld holds %s", st->file, r->path, (long long)row,
                         what);
            return -1;
        }
    return 0;
}

static int is_float(const rowset *r)
{
    return r->dtype == MF_DTYPE_F32 || r->dtype == MF_DTYPE_F64;
}

/* Rows [first, first+rows) of r as float32 into out, the cause of a failure noted. */
static herr_t read_rows(hdf5_state *st, const rowset *r, int64_t first, int64_t rows, float *out)
{
    st->cause = 0;
    hid_t space = H5Scopy(r->space), mem = mem_rows(r, rows);
    herr_t rc = space >= 0 && mem >= 0 &&
                        select_rows(r, space, H5S_SELECT_SET, (hsize_t)first, (hsize_t)rows) >= 0
                    ? note_cause(st, H5Dread(r->id, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, out))
                    : -1;
    if (mem >= 0)
        H5Sclose(mem);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* After a whole read of r failed: read it again in blocks, and a failing block row by row
 * (into r->data), to name the first sample that cannot be read; 1 with the message, 0 when
 * every row reads (the failure was not the file's). */
static int first_unreadable(hdf5_state *st, rowset *r, mf_error *err)
{
    const int64_t block = r->width >= 65536 ? 1 : 65536 / r->width;
    for (int64_t first = 0; first < st->n; first += block) {
        const int64_t count = st->n - first < block ? st->n - first : block;
        if (read_rows(st, r, first, count, r->data) >= 0)
            continue;
        for (int64_t row = first; row < first + count; row++)
            if (read_rows(st, r, row, 1, r->data) < 0) {
                unreadable(st, r, row, err);
                return 1;
            }
    }
    return 0;
}

/* Read whole the datasets that fit in budget bytes, checking every value. A dataset that
 * cannot be read whole is left to the batch reads, which name the sample that fails. */
static int preload(hdf5_state *st, int64_t budget, mf_error *err)
{
    for (int i = 0; i < st->n_rows; i++) {
        rowset *r = &st->rows[i];
        if (st->n > budget / ((int64_t)sizeof(float) * r->width))
            continue; /* (compared so, the product cannot overflow) */
        int64_t bytes = st->n * r->width * (int64_t)sizeof(float);
        if (!(r->data = malloc((size_t)bytes)))
            continue;
        if (H5Dread(r->id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->data) < 0) {
            /* bad bytes (a checksum, a chunk that does not inflate) are refused now, at
             * validation, naming the sample; anything else is left to the batch reads */
            const int bad = first_unreadable(st, r, err);
            free(r->data);
            r->data = NULL;
            if (bad)
                return -1;
            continue;
        }
        budget -= bytes;
        for (int64_t row = 0; is_float(r) && row < st->n; row++)
            if (check_row(st, r, row, r->data + row * r->width, err))
                return -1;
    }
    return 0;
}

/* A chunk cache for r when it is chunked and read batch by batch: as many whole chunks as
 * `bytes` hold (at most 1024; none when one does not fit). HDF5's own cache would keep the
 * same chunks again: r is reopened without it. */
static void setup_cache(hdf5_state *st, rowset *r, int64_t bytes)
{
    hid_t dcpl = H5Dget_create_plist(r->id);
    hsize_t cdims[MF_MAX_DIMS + 1] = {0};
    int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
                  H5Pget_chunk(dcpl, MF_MAX_DIMS + 1, cdims) == r->rank && cdims[0] > 0;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (!chunked || r->data)
        return;
    int full_rows = 1; /* a chunk holds whole samples */
    for (int a = 1; a < r->rank; a++)
        full_rows &= cdims[a] == r->dims[a];
    hid_t t = H5Dget_type(r->id);
    dcpl = H5Dget_create_plist(r->id);
#if H5_VERSION_GE(1, 10, 5)
    r->direct = full_rows && t >= 0 && H5Tequal(t, H5T_NATIVE_FLOAT) > 0 && dcpl >= 0 &&
                H5Pget_nfilters(dcpl) == 0;
#endif
    if (t >= 0)
        H5Tclose(t);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    int64_t rows = (int64_t)cdims[0], chunk_bytes;
    /* a corrupt file may claim any chunk size: no cache when one chunk's floats overflow */
    if (cdims[0] > (hsize_t)INT64_MAX ||
        __builtin_mul_overflow(rows, r->width * (int64_t)sizeof(float), &chunk_bytes))
        return;
    int64_t k = bytes / chunk_bytes;
    k = k > 1024 ? 1024 : k; /* (found by a linear search) */
    if (k < 1 || !(r->cache = calloc((size_t)k, sizeof *r->cache)))
        return;
    r->n_cache = k;
    r->chunk_rows = rows;
    for (int64_t i = 0; i < k; i++)
        r->cache[i].chunk = -1;
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS), id = -1;
    if (dapl >= 0 && H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, 1.0) >= 0)
        id = H5Dopen2(st->fid, r->path, dapl);
    if (dapl >= 0)
        H5Pclose(dapl);
    if (id >= 0) {
        H5Dclose(r->id);
        r->id = id;
    }
}

/* ---------------------------------------------------------------- open */
/* The datasets under /modalities, in creation order when tracked, else in name order. */
static int open_modalities(hdf5_state *st, mf_error *err)
{
    htri_t exists = H5Lexists(st->fid, "modalities", H5P_DEFAULT);
    if (exists <= 0) {
        mf_error_set(err, "%s: no /modalities group (one dataset per modality, first axis = "
                          "samples)", st->file);
        return -1;
    }
    hid_t g = H5Oopen(st->fid, "modalities", H5P_DEFAULT);
    if (g < 0 || H5Iget_type(g) != H5I_GROUP) {
        if (g >= 0)
            H5Oclose(g);
        mf_error_set(err, "%s: /modalities is %s, not a group of datasets", st->file,
                     g < 0 ? "unreadable" : "a single object");
        return -1;
    }
    H5_index_t order = H5_INDEX_NAME;
    unsigned crt = 0;
    hid_t gcpl = H5Gget_create_plist(g);
    if (gcpl >= 0 && H5Pget_link_creation_order(gcpl, &crt) >= 0 && (crt & H5P_CRT_ORDER_INDEXED))
        order = H5_INDEX_CRT_ORDER;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    H5G_info_t gi;
    int rc = 0;
    if (H5Gget_info(g, &gi) < 0) {
        mf_error_set(err, "%s: /modalities cannot be listed: the file is truncated or corrupt",
                     st->file);
        rc = -1;
    } else if (gi.nlinks == 0) {
        mf_error_set(err, "%s: /modalities holds no datasets", st->file);
        rc = -1;
    } else if (gi.nlinks > 4096) {
        mf_error_set(err, "%s: /modalities holds %llu entries; mmfuse takes at most 4096",
                     st->file, (unsigned long long)gi.nlinks);
        rc = -1;
    }
    int n = rc ? 0 : (int)gi.nlinks;
    if (!rc && (!(st->rows = calloc((size_t)n + 1, sizeof *st->rows)) ||
                !(st->modality = calloc((size_t)n, sizeof *st->modality)) ||
                !(st->name = calloc((size_t)n, sizeof *st->name)))) {
        mf_error_set(err, "%s: out of memory for %d modalities", st->file, n);
        rc = -1;
    }
    for (int m = 0; !rc && m < n; m++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", order, H5_ITER_INC, (hsize_t)m, st->name[m],
                                         sizeof st->name[m], H5P_DEFAULT);
        if (len < 0 || len >= (ssize_t)sizeof st->name[m]) {
            mf_error_set(err, "%s: /modalities: entry %d has %s", st->file, m,
                         len < 0 ? "no readable name" : "a name longer than 255 bytes");
            rc = -1;
            break;
        }
        /* the name becomes a YAML key (model.encoders.<name>) and goes into messages */
        for (const char *c = st->name[m]; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '.') {
                mf_error_set(err, "%s: /modalities: entry %d has a name with %s", st->file, m,
                             *c == '.' ? "a '.', which would read as a key path"
                                       : "control characters");
                rc = -1;
                break;
            }
        if (rc)
            break;
        char path[288];
        snprintf(path, sizeof path, "/modalities/%s", st->name[m]);
        st->n_rows = m + 1; /* so close() releases what this one opened */
        rc = rowset_open(st, &st->rows[m], path, MF_MAX_DIMS + 1, err);
        if (!rc && st->rows[m].dims[0] != st->rows[0].dims[0]) {
            mf_error_set(err, "%s: %s has %llu samples but %s has %llu", st->file,
                         st->rows[0].path, (unsigned long long)st->rows[0].dims[0], path,
                         (unsigned long long)st->rows[m].dims[0]);
            rc = -1;
        }
        if (!rc) {
            mf_modality_info *mi = &st->modality[m];
            mi->name = st->name[m];
            mi->dtype = st->rows[m].dtype;
            mi->shape.ndim = st->rows[m].rank > 1 ? st->rows[m].rank - 1 : 1;
            mi->shape.dim[0] = 1; /* one value per sample */
            for (int a = 1; a < st->rows[m].rank; a++)
                mi->shape.dim[a - 1] = (int64_t)st->rows[m].dims[a];
        }
    }
    H5Oclose(g);
    if (!rc) {
        st->n_modalities = n;
        st->n = (int64_t)st->rows[0].dims[0];
    }
    return rc;
}

/* The class names of /classes: K strings, variable- or fixed-length. */
static int read_classes(hdf5_state *st, mf_error *err)
{
    hid_t d = open_dataset(st, "/classes", err);
    if (d < 0)
        return -1;
    hid_t ft = H5Dget_type(d), mt = -1, space = -1;
    hsize_t dims[1];
    int rc = -1;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        mf_error_set(err, "%s: /classes holds %s, not strings", st->file,
                     class_word(ft < 0 ? H5T_NO_CLASS : H5Tget_class(ft)));
        goto done;
    }
    if (get_dims(st, d, "/classes", 1, dims, err) < 0 || compact_ok(st, d, "/classes", err) ||
        filters_ok(st, d, "/classes", err))
        goto done;
    if (dims[0] > (hsize_t)MAX_CLASSES) {
        mf_error_set(err, "%s: /classes names %llu classes; mmfuse takes at most %lld", st->file,
                     (unsigned long long)dims[0], (long long)MAX_CLASSES);
        goto done;
    }
    const size_t k = (size_t)dims[0];
    htri_t vlen = H5Tis_variable_str(ft);
    size_t fixed = vlen > 0 ? sizeof(char *) : H5Tget_size(ft) + 1; /* room for the NUL */
    char *raw = NULL;
    space = H5Dget_space(d);
    if (vlen < 0 || space < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 ||
        H5Tset_size(mt, vlen > 0 ? H5T_VARIABLE : fixed) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(ft)) < 0 ||
        (vlen <= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0)) {
        mf_error_set(err, "%s: /classes has an unreadable string type: the file is corrupt",
                     st->file);
        goto done;
    }
    char why[160];
    if (vlen > 0 && vlen_heaps_ok(st->file, st->fid, d, k, why, sizeof why)) {
        mf_error_set(err, "%s: /classes: %s: the file is corrupt", st->file, why);
        goto done;
    }
    if (fixed > (size_t)1 << 20 || !(raw = calloc(k, fixed)) ||
        !(st->class_names = calloc(k, sizeof *st->class_names))) {
        free(raw);
        mf_error_set(err, "%s: /classes: out of memory for %zu names", st->file, k);
        goto done;
    }
    st->n_classes = (int)k;
    if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        free(raw);
        mf_error_set(err, "%s: /classes cannot be read: the file is truncated or corrupt",
                     st->file);
        goto done;
    }
    rc = 0;
    for (size_t i = 0; i < k; i++) {
        const char *s = vlen > 0 ? ((char **)raw)[i] : raw + i * fixed;
        if (!(st->class_names[i] = strdup(s ? s : "")))
            rc = -1;
    }
    if (vlen > 0) {
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mt, space, H5P_DEFAULT, raw);
#else
        H5Dvlen_reclaim(mt, space, H5P_DEFAULT, raw);
#endif
    }
    free(raw);
    if (rc)
        mf_error_set(err, "%s: /classes: out of memory for %zu names", st->file, k);
done:
    if (mt >= 0)
        H5Tclose(mt);
    if (space >= 0)
        H5Sclose(space);
    if (ft >= 0)
        H5Tclose(ft);
    H5Dclose(d);
    return rc;
}

/* Read an integer dataset of one value per sample — shape (N) or (N,1) — in blocks into
 * out32 or out8, checking lo <= value <= hi. Returns 0; 1 with *bad, *value at the first
 * value outside; -1 with a message. *max gets the largest value. */
static int read_ints(hdf5_state *st, const char *path, int64_t lo, int64_t hi, int32_t *out32,
                     uint8_t *out8, int64_t *bad, int64_t *value, int64_t *max, mf_error *err)
{
    rowset r = {0};
    int rc = rowset_open(st, &r, path, 2, err);
    int64_t *block = NULL;
    if (!rc && class_of(r.id) != H5T_INTEGER) {
        mf_error_set(err, "%s: %s holds %s, not integers%s", st->file, path,
                     class_word(class_of(r.id)),
                     strcmp(path, "/label") == 0 ? " (regression targets go in /target)" : "");
        rc = -1;
    }
    if (!rc && r.width != 1) {
        mf_error_set(err, "%s: %s has %lld values per sample; expected one", st->file, path,
                     (long long)r.width);
        rc = -1;
    }
    if (!rc && (int64_t)r.dims[0] != st->n) {
        mf_error_set(err, "%s: %s has %lld samples but %s has %llu", st->file, st->rows[0].path,
                     (long long)st->n, path, (unsigned long long)r.dims[0]);
        rc = -1;
    }
    if (!rc && !(block = malloc((size_t)(st->n < INT_BLOCK ? st->n : INT_BLOCK) * sizeof *block))) {
        mf_error_set(err, "%s: %s: out of memory", st->file, path);
        rc = -1;
    }
    *max = lo;
    for (int64_t first = 0; !rc && first < st->n; first += INT_BLOCK) {
        hsize_t count = (hsize_t)(st->n - first < INT_BLOCK ? st->n - first : INT_BLOCK);
        hid_t mem = H5Screate_simple(1, &count, NULL);
        st->cause = 0;
        if (mem < 0 || select_rows(&r, r.space, H5S_SELECT_SET, (hsize_t)first, count) < 0 ||
            note_cause(st, H5Dread(r.id, H5T_NATIVE_INT64, mem, r.space, H5P_DEFAULT,
                                   block)) < 0) {
            mf_error_set(err, "%s: %s: samples %lld to %lld %s", st->file, path,
                         (long long)first, (long long)(first + (int64_t)count - 1),
                         mem >= 0 && st->cause == 1
                             ? "fail their fletcher32 checksum: the file is corrupt"
                             : "cannot be read: the file is truncated or corrupt");
            rc = -1;
        }
        if (mem >= 0)
            H5Sclose(mem);
        for (hsize_t i = 0; !rc && i < count; i++) {
            int64_t v = block[i];
            if (v < lo || v > hi) {
                *bad = first + (int64_t)i;
                *value = v;
                rc = 1;
                break;
            }
            if (v > *max)
                *max = v;
            if (out32)
                out32[first + (int64_t)i] = (int32_t)v;
            else
                out8[first + (int64_t)i] = (uint8_t)v;
        }
    }
    free(block);
    close_id(&r.space, H5Sclose);
    close_id(&r.id, H5Dclose);
    return rc;
}

static int read_labels(hdf5_state *st, mf_dataset_info *info, mf_error *err)
{
    if (H5Lexists(st->fid, "classes", H5P_DEFAULT) > 0 && read_classes(st, err))
        return -1;
    if (!(st->label = malloc((size_t)st->n * sizeof *st->label))) {
        mf_error_set(err, "%s: out of memory for %lld labels", st->file, (long long)st->n);
        return -1;
    }
    int64_t bad = 0, value = 0, max = 0;
    /* unnamed classes: below max(UNNAMED_FLOOR, N) and MAX_UNNAMED_CLASS (docs/datasets.md) */
    const int64_t floor_ = st->n > UNNAMED_FLOOR ? st->n : UNNAMED_FLOOR;
    const int64_t hi = st->n_classes            ? st->n_classes - 1
                       : floor_ - 1 < MAX_UNNAMED_CLASS ? floor_ - 1
                                                       : MAX_UNNAMED_CLASS;
    int rc = read_ints(st, "/label", 0, hi, st->label, NULL, &bad, &value, &max, err);
    if (rc == 1) {
        if (st->n_classes)
            mf_error_set(err, "%s: /label: sample %lld holds %lld, outside 0 to %d (/classes "
                              "names %d classes)", st->file, (long long)bad, (long long)value,
                         st->n_classes - 1, st->n_classes);
        else if (value < 0)
            mf_error_set(err, "%s: /label: sample %lld holds %lld; class indices start at 0",
                         st->file, (long long)bad, (long long)value);
        else if (value > MAX_UNNAMED_CLASS)
            mf_error_set(err, "%s: /label: sample %lld holds %lld, above %d, the largest class "
                              "index taken without /classes; name the classes in /classes to "
                              "use larger indices", st->file, (long long)bad, (long long)value,
                         MAX_UNNAMED_CLASS);
        else
            mf_error_set(err, "%s: /label: sample %lld holds %lld, which would make %lld classes "
                              "for %lld samples; number the classes from 0, or name them in "
                              "/classes", st->file, (long long)bad, (long long)value,
                         (long long)value + 1, (long long)st->n);
        return -1;
    }
    if (rc)
        return -1;
    info->label_kind = MF_LABELS_CLASSES;
    info->n_classes = st->n_classes ? st->n_classes : (int)max + 1;
    info->class_names = (const char *const *)st->class_names;
    return 0;
}

static int read_split(hdf5_state *st, mf_error *err)
{
    if (!(st->split = malloc((size_t)st->n))) {
        mf_error_set(err, "%s: out of memory for the split of %lld samples", st->file,
                     (long long)st->n);
        return -1;
    }
    int64_t bad = 0, value = 0, max = 0;
    int rc = read_ints(st, "/split", MF_SPLIT_TRAIN, MF_SPLIT_TEST, NULL, st->split, &bad, &value,
                       &max, err);
    if (rc == 1)
        mf_error_set(err, "%s: /split: sample %lld holds %lld; splits are 0 (train), 1 (val) "
                          "or 2 (test)", st->file, (long long)bad, (long long)value);
    return rc ? -1 : 0;
}

/* Where the file is: relative paths from the experiment file's folder. */
static char *resolve(const char *base, const char *path)
{
    int relative = path[0] != '/' && base && *base && strcmp(base, ".") != 0;
    int slash = relative && base[strlen(base) - 1] != '/';
    size_t len = (relative ? strlen(base) : 0) + 1 + strlen(path) + 1;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s%s%s", relative ? base : "", slash ? "/" : "", path);
    return out;
}

static int hdf5_open(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info,
                     mf_error *err)
{
    hdf5_state *st = mf_dataset_state(self);
    const char *path;
    int64_t cache_mb, preload_mb;
    if (mf_config_string(cfg, "path", &path, err) || mf_config_int(cfg, "cache_mb", &cache_mb, err) ||
        mf_config_int(cfg, "preload_mb", &preload_mb, err))
        return -1;
    const mf_config *where = mf_config_get(cfg, "path");
    if (!*path) {
        mf_config_error(err, where, "no HDF5 file given: set path to the file, relative to the "
                                    "experiment file");
        return -1;
    }
    if (!(st->file = resolve(mf_dataset_base_dir(self), path))) {
        mf_error_set(err, "%s: out of memory", path);
        return -1;
    }
    /* The reasons go into our one sentence; HDF5's own stack would be noise on stderr. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* a FIFO with no writer would hang HDF5's open, a device never end: refused first */
    char why[128];
    int fd = data_file_open(st->file, why, sizeof why);
    if (fd < 0) {
        mf_config_error(err, where, "cannot open '%s': %s", st->file, why);
        hdf5_close(self);
        return -1;
    }
    close(fd);
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_hdf5 = H5Fis_accessible(st->file, H5P_DEFAULT);
#else
    htri_t is_hdf5 = H5Fis_hdf5(st->file);
#endif
    int rc = 0;
    if (is_hdf5 <= 0) {
        mf_error_set(err, "%s: not an HDF5 file", st->file);
        rc = -1;
    }
    hid_t fapl = rc ? -1 : H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) {
        /* a prime slot count well above the chunks a cache of this size holds */
        H5Pset_cache(fapl, 0, 12421, (size_t)cache_mb << 20, 0.75);
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
        st->fid = H5Fopen(st->file, H5F_ACC_RDONLY, fapl);
        void *handle = NULL;
        if (st->fid >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
            H5Fget_vfd_handle(st->fid, fapl, &handle) >= 0 && handle)
            st->advise_fd = *(int *)handle + 1;
        H5Pclose(fapl);
        if (st->fid < 0) {
            st->fid = 0;
            mf_error_set(err, "%s: HDF5 cannot open it: the file is truncated or corrupt",
                         st->file);
            rc = -1;
        }
    } else if (!rc) {
        mf_error_set(err, "%s: the HDF5 library cannot start", st->file);
        rc = -1;
    }
    if (!rc)
        rc = open_modalities(st, err);
    htri_t has_label = 0, has_target = 0;
    if (!rc) {
        has_label = H5Lexists(st->fid, "label", H5P_DEFAULT) > 0;
        has_target = H5Lexists(st->fid, "target", H5P_DEFAULT) > 0;
        if (has_label == has_target) {
            mf_error_set(err, has_label ? "%s: both /label and /target are present; keep /label "
                                          "for classes or /target for regression"
                                        : "%s: no /label (class indices) or /target "
                                          "(regression targets)",
                         st->file);
            rc = -1;
        }
    }
    if (!rc && has_label)
        rc = read_labels(st, info, err);
    if (!rc && has_target) {
        rowset *t = &st->rows[st->n_rows];
        st->n_rows++;
        rc = rowset_open(st, t, "/target", 2, err);
        if (!rc && (int64_t)t->dims[0] != st->n) {
            mf_error_set(err, "%s: %s has %lld samples but /target has %llu", st->file,
                         st->rows[0].path, (long long)st->n, (unsigned long long)t->dims[0]);
            rc = -1;
        }
        info->label_kind = MF_LABELS_TARGETS;
        info->target_dim = t->width;
    }
    if (!rc && H5Lexists(st->fid, "split", H5P_DEFAULT) > 0)
        rc = read_split(st, err);
    if (!rc)
        rc = preload(st, preload_mb << 20, err);
    for (int r = 0; !rc && r < st->n_rows; r++)
        setup_cache(st, &st->rows[r], cache_mb << 20);
    if (rc) {
        hdf5_close(self);
        return -1;
    }
    info->n_modalities = st->n_modalities;
    info->modalities = st->modality;
    info->n_samples = st->n;
    info->split = st->split;
    /* the longest chunk among the modalities read batch by batch: an epoch ordered by these
     * reads each chunk once (data.shuffle: auto) */
    for (int r = 0; r < st->n_rows; r++)
        if (st->rows[r].cache && st->rows[r].chunk_rows > info->chunk_samples)
            info->chunk_samples = st->rows[r].chunk_rows;
    return 0;
}

/* ---------------------------------------------------------------- read */
static int by_row(const void *a, const void *b)
{
    const struct pick *x = a, *y = b;
    return x->row < y->row ? -1 : x->row > y->row ? 1 : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The batch's distinct rows in file order (st->unique[0..*u)), and for each position i of
 * the batch the index of its row among them (st->slot[i]). */
static int sort_batch(hdf5_state *st, int64_t n, const int64_t *idx, int64_t *u, mf_error *err)
{
    if ((size_t)n > st->pick_cap) {
        int64_t **arrays[] = {&st->slot, &st->unique, &st->at, &st->block_start,
                              &st->block_len};
        free(st->pick);
        int ok = (st->pick = malloc((size_t)n * sizeof *st->pick)) != NULL;
        for (size_t a = 0; a < sizeof arrays / sizeof *arrays; a++) {
            free(*arrays[a]);
            ok &= (*arrays[a] = malloc((size_t)n * sizeof(int64_t))) != NULL;
        }
        st->pick_cap = ok ? (size_t)n : 0;
        if (!ok) {
            mf_error_set(err, "%s: out of memory for a batch of %lld samples", st->file,
                         (long long)n);
            return -1;
        }
    }
    for (int64_t i = 0; i < n; i++)
        st->pick[i] = (struct pick){idx[i], i};
    qsort(st->pick, (size_t)n, sizeof *st->pick, by_row);
    *u = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || st->pick[i].row != st->pick[i - 1].row)
            st->unique[(*u)++] = st->pick[i].row;
        st->slot[st->pick[i].pos] = *u - 1;
    }
    return 0;
}

/* Chunk c of r into a cache slot not used by this batch (tick `now`); its index, or -1 with
 * a message naming `row`, the first of the batch's samples in it. */
static int64_t load_chunk(hdf5_state *st, rowset *r, int64_t c, int64_t row, uint64_t now,
                          mf_error *err)
{
    int64_t k = 0;
    for (int64_t i = 1; i < r->n_cache; i++) /* the least recently used; empty ones first */
        if (r->cache[i].used < r->cache[k].used)
            k = i;
    struct cslot *sl = &r->cache[k];
    const int64_t first = c * r->chunk_rows, left = (int64_t)r->dims[0] - first;
    const int64_t rows = left < r->chunk_rows ? left : r->chunk_rows;
    sl->chunk = -1;
    if (!sl->data && !(sl->data = malloc((size_t)(r->chunk_rows * r->width) * sizeof(float)))) {
        mf_error_set(err, "%s: %s: out of memory for its chunk cache", st->file, r->path);
        return -1;
    }
    herr_t rc = -1;
    st->cause = 0;
#if H5_VERSION_GE(1, 10, 5)
    /* as stored, into the slot: HDF5's own path copies through a buffer it allocates per
     * chunk (page faults in every read); unwritten chunks fail here and take that path */
    hsize_t offset[MF_MAX_DIMS + 1] = {(hsize_t)first};
    uint32_t mask = 0;
    hsize_t stored = 0;
    if (r->direct && H5Dget_chunk_storage_size(r->id, offset, &stored) >= 0 &&
        stored == (hsize_t)(r->chunk_rows * r->width) * sizeof(float))
        rc = H5Dread_chunk(r->id, H5P_DEFAULT, offset, &mask, sl->data);
#endif
    hid_t space = rc >= 0 ? -1 : H5Scopy(r->space), mem = rc >= 0 ? -1 : mem_rows(r, rows);
    if (rc < 0)
        rc = space >= 0 && mem >= 0 &&
                        select_rows(r, space, H5S_SELECT_SET, (hsize_t)first, (hsize_t)rows) >= 0
                    ? note_cause(st, H5Dread(r->id, H5T_NATIVE_FLOAT, mem, space,
                                             H5P_DEFAULT, sl->data)) : -1;
    if (mem >= 0)
        H5Sclose(mem);
    if (space >= 0)
        H5Sclose(space);
    if (rc < 0) {
        unreadable(st, r, row, err);
        return -1;
    }
    sl->chunk = c;
    sl->used = now;
    return k;
}

/* The cache slot holding chunk c of r, or r->n_cache when none does. */
static int64_t cached_slot(const rowset *r, int64_t c)
{
    int64_t k = 0;
    while (k < r->n_cache && r->cache[k].chunk != c)
        k++;
    return k;
}

/* The batch's rows of r from whole cached chunks; 1 when they span more chunks than the
 * cache holds (the caller reads the rows themselves), 0, or -1 with a message. */
static int read_cached(hdf5_state *st, rowset *r, int64_t n, int64_t u, float *dst,
                       mf_error *err)
{
    const int64_t w = r->width, cr = r->chunk_rows;
    int64_t touched = 0;
    for (int64_t i = 0; i < u; i++)
        touched += i == 0 || st->unique[i] / cr != st->unique[i - 1] / cr;
    if (touched > r->n_cache)
        return 1;
    const uint64_t now = ++r->tick;
    for (int64_t i = 0, k = -1; i < u; i++) {
        const int64_t c = st->unique[i] / cr;
        if (i == 0 || c != st->unique[i - 1] / cr) { /* a new chunk: cached, or read now */
            if ((k = cached_slot(r, c)) < r->n_cache)
                r->cache[k].used = now;
            else if ((k = load_chunk(st, r, c, st->unique[i], now, err)) < 0)
                return -1;
        }
        st->at[i] = k * cr + st->unique[i] - c * cr; /* slot k, row within the chunk */
        if (is_float(r) &&
            check_row(st, r, st->unique[i], r->cache[k].data + (st->at[i] - k * cr) * w, err))
            return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t at = st->at[st->slot[i]];
        memcpy(dst + i * w, r->cache[at / cr].data + (at % cr) * w, (size_t)w * sizeof(float));
    }
    return 0;
}

/* Ask the kernel to start reading every chunk of r this batch will load (read as stored,
 * not in the cache), all at once, so that the loads wait on reads already in flight. Each
 * 2 MB chunk's own read had run the kernel's read-ahead piece after piece: data wait 30 % at
 * 1 thread on a 4.3 GB file read from disk, whose disk reads 1.6–2.1 GB/s. */
static void advise_chunks(const hdf5_state *st, const rowset *r, int64_t u)
{
#if H5_VERSION_GE(1, 10, 5) && defined(POSIX_FADV_WILLNEED)
    const int64_t cr = r->chunk_rows;
    if (!st->advise_fd || !r->cache || !r->direct)
        return;
    for (int64_t i = 0; i < u; i++) {
        const int64_t c = st->unique[i] / cr;
        if ((i > 0 && c == st->unique[i - 1] / cr) || cached_slot(r, c) < r->n_cache)
            continue;
        hsize_t offset[MF_MAX_DIMS + 1] = {(hsize_t)(c * cr)}, size = 0;
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        if (H5Dget_chunk_info_by_coord(r->id, offset, &mask, &addr, &size) >= 0 &&
            addr != HADDR_UNDEF && size > 0)
            (void)posix_fadvise(st->advise_fd - 1, (off_t)addr, (off_t)size, POSIX_FADV_WILLNEED);
    }
#else
    (void)st, (void)r, (void)u;
#endif
}

/* The batch's rows of r (not preloaded) into dst: each row read once, in file order. */
static int read_rowset(hdf5_state *st, rowset *r, int64_t n, int64_t u, float *dst,
                       mf_error *err)
{
    int cached = r->cache ? read_cached(st, r, n, u, dst, err) : 1;
    if (cached <= 0)
        return cached;
    const int64_t w = r->width, rows = plan_blocks(st, r, st->unique, u);
    if ((size_t)(rows * w) > st->buf_cap) {
        float *grown = realloc(st->buf, (size_t)(rows * w) * sizeof *grown);
        if (!grown) {
            mf_error_set(err, "%s: %s: out of memory for a batch of %lld samples", st->file,
                         r->path, (long long)n);
            return -1;
        }
        st->buf = grown;
        st->buf_cap = (size_t)(rows * w);
    }
    if (read_blocks(st, r, rows, st->buf) < 0) {
        /* find the first sample that cannot be read, to name it */
        int64_t bad = 0;
        while (bad < u - 1 && plan_blocks(st, r, st->unique + bad, 1) &&
               read_blocks(st, r, 1, st->buf) >= 0)
            bad++;
        if (bad == u - 1) /* not read in the search: read it for its cause */
            (void)(plan_blocks(st, r, st->unique + bad, 1) && read_blocks(st, r, 1, st->buf));
        unreadable(st, r, st->unique[bad], err);
        return -1;
    }
    for (int64_t i = 0; is_float(r) && i < u; i++)
        if (check_row(st, r, st->unique[i], st->buf + st->at[i] * w, err))
            return -1;
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + i * w, st->buf + st->at[st->slot[i]] * w, (size_t)w * sizeof(float));
    return 0;
}

/* Every modality's missing chunks of samples idx[0..n) in flight (sorted into st->unique,
 * *u of them, when any dataset is read from the file); -1 when sorting failed. */
static int advise_batch(hdf5_state *st, int64_t n, const int64_t *idx, int64_t *u,
                        mf_error *err)
{
    for (int r = 0; r < st->n_rows && n > 0; r++) {
        if (st->rows[r].data)
            continue;
        if (*u < 0 && sort_batch(st, n, idx, u, err))
            return -1;
        advise_chunks(st, &st->rows[r], *u);
    }
    return 0;
}

/* A batch the loader will read a few batches from now: its chunks asked of the kernel now,
 * so that they are in the page cache when it comes (indices out of range are left to read,
 * which names them). */
static void hdf5_will_read(mf_dataset *self, int64_t n, const int64_t *idx)
{
    hdf5_state *st = mf_dataset_state(self);
    int from_file = 0;
    for (int r = 0; r < st->n_rows; r++)
        from_file |= st->rows[r].data == NULL;
    if (!from_file || !st->advise_fd) /* preloaded: nothing to fetch */
        return;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= st->n)
            return;
    mf_error ignored;
    mf_error_clear(&ignored);
    int64_t u = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    (void)advise_batch(st, n, idx, &u, &ignored);
}

static int hdf5_read(mf_dataset *self, int64_t n, const int64_t *idx,
                     const mf_batch_buffers *out, mf_error *err)
{
    hdf5_state *st = mf_dataset_state(self);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread in a thread-safe HDF5 */
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= st->n) {
            mf_error_set(err, "%s: sample %lld is outside 0 to %lld", st->file,
                         (long long)idx[i], (long long)st->n - 1);
            return -1;
        }
    int64_t u = -1; /* rows sorted when a dataset is read from the file */
    if (advise_batch(st, n, idx, &u, err))
        return -1;
    for (int r = 0; r < st->n_rows && n > 0; r++) {
        rowset *rs = &st->rows[r];
        float *dst = r < st->n_modalities ? out->modality[r] : out->targets;
        if (rs->data) { /* preloaded, and checked at open */
            for (int64_t i = 0; i < n; i++)
                memcpy(dst + i * rs->width, rs->data + idx[i] * rs->width,
                       (size_t)rs->width * sizeof(float));
        } else if ((u < 0 && sort_batch(st, n, idx, &u, err)) ||
                   read_rowset(st, rs, n, u, dst, err)) {
            return -1;
        }
    }
    for (int64_t i = 0; st->label && i < n; i++)
        out->labels[i] = st->label[idx[i]];
    return 0;
}

static const mf_dataset_ops hdf5_ops = {
    .struct_size = sizeof(mf_dataset_ops),
    .state_size = sizeof(hdf5_state),
    .open = hdf5_open,
    .read = hdf5_read,
    .close = hdf5_close,
    .will_read = hdf5_will_read,
};

static const mf_plugin hdf5_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_DATASET,
    .name = "hdf5",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Reads HDF5 files in mmfuse's layout (/modalities/<name>, /label or /target, "
               "/split, /classes)",
    .params = hdf5_params,
    .ops = &hdf5_ops,
};

MF_PLUGIN_DEFINE(&hdf5_plugin)
