/* Reading checkpoints (layout in checkpoint.h) with every name and shape checked, so a
 * checkpoint of another model is refused naming the first parameter that differs, and a
 * corrupt or truncated file in one sentence naming it; and fine-tuning (--init-from). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "experiment_internal.h"

/* ---------------------------------------------------------------- reading */
typedef struct reader {
    const char *path;
    hid_t file;
    mf_error *err;
} reader;

/* Whether type t (closed here) is one mmfuse writes numbers as: IEEE floats, 32- or 64-bit
 * integers. libhdf5 1.10 converts a damaged type (a float's precision past its size) by
 * reading past its own buffer, so only these are converted. */
static int standard_type(hid_t t)
{
    const hid_t standard[] = {H5T_IEEE_F32LE, H5T_IEEE_F32BE, H5T_IEEE_F64LE, H5T_IEEE_F64BE,
                              H5T_STD_I64LE,  H5T_STD_I64BE,  H5T_STD_U64LE,  H5T_STD_U64BE,
                              H5T_STD_I32LE,  H5T_STD_I32BE};
    int ok = 0;
    for (size_t i = 0; t >= 0 && !ok && i < sizeof standard / sizeof *standard; i++)
        ok = H5Tequal(t, standard[i]) > 0;
    if (t >= 0)
        H5Tclose(t);
    return ok;
}

/* One value: an attribute of several would be read past `out`. */
static int attr_read(hid_t loc, const char *name, hid_t mem_type, void *out)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), space = a >= 0 ? H5Aget_space(a) : -1;
    int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == 1 &&
             (H5Tget_class(mem_type) == H5T_STRING || standard_type(H5Aget_type(a))) &&
             H5Aread(a, mem_type, out) >= 0;
    if (space >= 0)
        H5Sclose(space);
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : -1;
}

static int read_int(reader *r, hid_t loc, const char *name, int64_t *out)
{
    if (attr_read(loc, name, H5T_NATIVE_INT64, out) == 0)
        return 0;
    mf_error_set(r->err, "%s: the checkpoint has no integer attribute '%s' (not a complete "
                 "mmfuse checkpoint)", r->path, name);
    return -1;
}

/* A string attribute into buf; -1 when absent. Control characters become '?': the text
 * may end up in a one-line message. */
static int read_string(hid_t loc, const char *name, char *buf, size_t size)
{
    hid_t t = mfi_h5_string_type();
    char *v = NULL;
    int rc = attr_read(loc, name, t, &v);
    if (rc == 0)
        snprintf(buf, size, "%s", v ? v : "");
    for (unsigned char *p = (unsigned char *)buf; rc == 0 && *p; p++)
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] < 0xA0) /* a C1 control: both bytes */
            p[0] = p[1] = '?';
        else if (*p < 0x20 || *p == 0x7F)
            *p = '?';
    if (v)
        H5free_memory(v);
    H5Tclose(t);
    return rc;
}

static void shape_text(int ndim, const int64_t *dim, char *buf, size_t size)
{
    size_t at = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", d ? "," : "", (long long)dim[d]);
    if (at < size)
        snprintf(buf + at, size - at, ")");
}

/* Whether n floats are all finite: no run saves NaN or Inf (a diverged one stops first). */
static int all_finite(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* H5Dread once the file's type is a standard one (standard_type) */
static herr_t checked_read(hid_t ds, hid_t mem, void *buf)
{
    return standard_type(H5Dget_type(ds)) ? H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                                          : -1;
}

/* Dataset `group/name` as float32 with shape s into dst. 0 done, 1 absent, 2 other shape
 * (its shape in got), 3 a value not finite, -1 unreadable. */
static int tensor_read(hid_t file, const char *group, const char *name, const mf_shape *s,
                       float *dst, char *got, size_t got_size)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", group, name);
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0 || H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return 1;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t space = H5Dget_space(ds);
    int ndim = H5Sget_simple_extent_ndims(space);
    hsize_t dims[8];
    int same = ndim == s->ndim && ndim <= 8;
    if (ndim >= 0 && ndim <= 8) {
        H5Sget_simple_extent_dims(space, dims, NULL);
        int64_t d64[8];
        for (int d = 0; d < ndim; d++) {
            d64[d] = (int64_t)dims[d];
            same = same && d64[d] == s->dim[d];
        }
        shape_text(ndim, d64, got, got_size);
    }
    H5Sclose(space);
    int rc = ndim < 0 || ndim > 8 ? -1 : !same ? 2
             : checked_read(ds, H5T_NATIVE_FLOAT, dst) < 0 ? -1
             : all_finite(dst, mf_shape_numel(s)) ? 0 : 3;
    H5Dclose(ds);
    return rc;
}

/* Every parameter from `group` into buf (a collated buffer). */
static int tensors_read(reader *r, const char *group, mf_params *ps, float *buf)
{
    for (int i = 0; i < mf_params_size(ps); i++) {
        mf_param *q = mf_params_at(ps, i);
        const mf_shape *s = mf_param_shape(q);
        char got[96] = "", want[96];
        int rc = tensor_read(r->file, group, mf_param_name(q), s, buf + mf_param_offset(q), got,
                             sizeof got);
        shape_text(s->ndim, s->dim, want, sizeof want);
        if (rc == 1)
            mf_error_set(r->err, "%s: the checkpoint has no /%s/%s: it was saved from another "
                         "model (this one has the parameter, of shape %s)",
                         r->path, group, mf_param_name(q), want);
        else if (rc == 2)
            mf_error_set(r->err, "%s: /%s/%s has shape %s in the checkpoint but %s in this model: "
                         "it was saved from another model", r->path, group, mf_param_name(q), got,
                         want);
        else if (rc == 3)
            mf_error_set(r->err, "%s: /%s/%s holds a value that is not finite (NaN or Inf): "
                         "the checkpoint is corrupt", r->path, group, mf_param_name(q));
        else if (rc < 0)
            mf_error_set(r->err, "%s: /%s/%s cannot be read: the file is corrupt (its checksum "
                         "does not match) or truncated",
                         r->path, group, mf_param_name(q));
        if (rc)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- global heaps */
static uint64_t le_bytes(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Whether the global heap collection at c (len bytes, the header's) is walked by libhdf5
 * 1.10 (H5HG__cache_heap_deserialize) without harm: every object inside it, and progress at
 * every step (a free space of size 0 loops forever; an object larger than its collection is
 * later memcpy'd whole by H5HG_read). */
static int collection_ok(const uint8_t *c, uint64_t len, size_t ss)
{
    const uint64_t objhdr = 8 + ss;
    for (uint64_t p = 8 + ss; p < len && p + objhdr <= len;) {
        const uint64_t id = le_bytes(c + p, 2), sz = le_bytes(c + p + 8, ss);
        if (sz > len - p)
            return 0;
        const uint64_t need = id > 0 ? objhdr + ((sz + 7) & ~(uint64_t)7) : sz;
        if (need == 0 || need > len - p)
            return 0;
        p += need;
    }
    return 1;
}

/* Variable-length strings (every string attribute, /config, /manifest) live in global heap
 * collections, which libhdf5 1.10 trusts: a corrupt one hangs or crashes the first string
 * read (fuzz_checkpoint.c found both: tests/fuzz/corpus-checkpoint/regression-string-heap-*). Their
 * addresses are not available through the API for attributes, so every collection in the
 * file ("GCOL", version 1, 3 zero bytes, its size) is found and walked before any string is
 * read. */
static int heaps_ok(reader *r)
{
    hid_t fcpl = H5Fget_create_plist(r->file);
    size_t sa = 0, ss = 0;
    int sizes = fcpl >= 0 && H5Pget_sizes(fcpl, &sa, &ss) >= 0 && ss >= 1 && ss <= 8;
    if (fcpl >= 0)
        H5Pclose(fcpl);
    /* mapped, not read: a checkpoint may be as large as its model */
    const int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    const off_t n = fd >= 0 && fstat(fd, &st) == 0 ? st.st_size : -1;
    uint8_t *buf = n > 0 ? mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (fd >= 0)
        close(fd);
    int ok = sizes && buf != MAP_FAILED;
    const uint64_t size = (uint64_t)n, hdr = 8 + ss;
    for (uint64_t at = 0; ok && at + hdr <= size; at++) {
        const uint8_t *c = memchr(buf + at, 'G', (size_t)(size - hdr + 1 - at));
        if (!c)
            break;
        at = (uint64_t)(c - buf);
        if (memcmp(c, "GCOL\1\0\0\0", 8) != 0)
            continue;
        const uint64_t len = le_bytes(c + 8, ss);
        ok = len >= hdr && len <= size - at && collection_ok(c, len, ss);
    }
    if (buf != MAP_FAILED)
        munmap(buf, (size_t)n);
    if (!ok)
        mf_error_set(r->err, "%s: %s", r->path, !sizes || buf == MAP_FAILED
                     ? "cannot be reread to check its strings"
                     : "its string heap is corrupt (the file is damaged), so not a checkpoint "
                     "mmfuse can read");
    return ok ? 0 : -1;
}

/* The checkpoint opened and its format checked. */
static int open_checkpoint(reader *r)
{
    FILE *f = fopen(r->path, "rb");
    if (!f) {
        mf_error_set(r->err, "cannot read the checkpoint '%s': %s", r->path, strerror(errno));
        return -1;
    }
    fclose(f);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if ((r->file = H5Fopen(r->path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        mf_error_set(r->err, "%s: not a readable HDF5 file (corrupt or truncated?), so not a "
                     "checkpoint", r->path);
        return -1;
    }
    char format[64] = "";
    int64_t version = 0;
    if (heaps_ok(r))
        return -1;
    if (read_string(r->file, "format", format, sizeof format) || strcmp(format, "mmfuse-checkpoint")) {
        mf_error_set(r->err, "%s: an HDF5 file, but not an mmfuse checkpoint (no format = "
                     "\"mmfuse-checkpoint\" attribute)", r->path);
        return -1;
    }
    if (read_int(r, r->file, "format_version", &version))
        return -1;
    if (version < 1 || version > MFI_CHECKPOINT_FORMAT_VERSION) {
        mf_error_set(r->err, "%s: checkpoint format %lld; this mmfuse reads formats 1 to %d",
                     r->path, (long long)version, MFI_CHECKPOINT_FORMAT_VERSION);
        return -1;
    }
    return 0;
}

/* /selection/val and its names into the position. */
static int read_kept(hid_t g, mfi_train_position *p)
{
    hid_t ds = H5Dopen2(g, "val", H5P_DEFAULT), space = ds >= 0 ? H5Dget_space(ds) : -1;
    const hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    char names[MFI_MAX_KEPT * 65];
    int rc = n < 1 || n > MFI_MAX_KEPT ||
             checked_read(ds, H5T_NATIVE_DOUBLE, p->kept_value) < 0 ||
             read_string(ds, "names", names, sizeof names);
    if (space >= 0)
        H5Sclose(space);
    if (ds >= 0)
        H5Dclose(ds);
    for (char *name = names, *next; rc == 0 && name && p->n_kept < n; name = next) {
        next = strchr(name, ',');
        if (next)
            *next++ = '\0';
        const size_t len = strlen(name) < sizeof p->kept_name[0] ? strlen(name)
                                                                  : sizeof p->kept_name[0] - 1;
        memcpy(p->kept_name[p->n_kept], name, len);
        p->kept_name[p->n_kept++][len] = '\0';
    }
    return rc || p->n_kept != n ? -1 : 0;
}

static int read_position(reader *r, experiment *e, mfi_train_position *p)
{
    int64_t v[6], sel[4];
    static const char *const names[] = {"step", "epoch", "batch", "forwards", "evaluations",
                                        "finished"};
    for (int i = 0; i < 6; i++)
        if (read_int(r, r->file, names[i], &v[i]))
            return -1;
    hid_t g = H5Lexists(r->file, "selection", H5P_DEFAULT) > 0
                  ? H5Gopen2(r->file, "selection", H5P_DEFAULT) : -1;
    char metric[64] = "";
    /* attr_read, not read_int: one message below names the group */
    int rc = g < 0 || attr_read(g, "higher_is_better", H5T_NATIVE_INT64, &sel[0]) ||
             attr_read(g, "best_epoch", H5T_NATIVE_INT64, &sel[1]) ||
             attr_read(g, "best_step", H5T_NATIVE_INT64, &sel[2]) ||
             attr_read(g, "best_evaluation", H5T_NATIVE_INT64, &sel[3]) ||
             attr_read(g, "best", H5T_NATIVE_DOUBLE, &p->best) ||
             read_string(g, "metric", metric, sizeof metric);
    p->n_kept = 0;
    if (rc == 0 && H5Lexists(g, "val", H5P_DEFAULT) > 0)
        rc = read_kept(g, p);
    if (g >= 0)
        H5Gclose(g);
    if (rc) {
        mf_error_set(r->err, "%s: the checkpoint's /selection is missing or incomplete", r->path);
        return -1;
    }
    if (strcmp(metric, e->select)) {
        mf_error_set(r->err, "%s: the checkpoint selects on %s, the experiment on %s", r->path,
                     metric, e->select);
        return -1;
    }
    /* counts a run can reach (where training resumes is checked against the data later) */
    if (v[0] < 0 || v[1] < 0 || v[1] > INT_MAX || v[2] < 0 || v[3] < 0 || v[4] < 0 ||
        (v[5] != 0 && v[5] != 1) || (sel[0] != 0 && sel[0] != 1) || sel[1] < -1 ||
        sel[1] > INT_MAX || sel[2] < -1 || sel[3] < 0) {
        mf_error_set(r->err, "%s: the checkpoint's position (step, epoch, batch, forwards, "
                     "evaluations, finished or /selection's best point) is out of range: the "
                     "file is corrupt", r->path);
        return -1;
    }
    p->step = v[0];
    p->epoch = (int)v[1];
    p->batch = v[2];
    p->forwards = v[3];
    p->evaluations = v[4];
    p->finished = (int)v[5];
    p->higher = (int)sel[0];
    p->best_epoch = (int)sel[1];
    p->best_step = sel[2];
    p->best_evaluation = sel[3];
    return 0;
}

static int read_rng(reader *r, experiment *e)
{
    uint64_t words[6];
    hid_t ds = H5Lexists(r->file, "rng", H5P_DEFAULT) > 0 &&
                       H5Lexists(r->file, "rng/modality_dropout", H5P_DEFAULT) > 0
                   ? H5Dopen2(r->file, "rng/modality_dropout", H5P_DEFAULT) : -1;
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == 6 &&
             checked_read(ds, H5T_NATIVE_UINT64, words) >= 0;
    if (space >= 0)
        H5Sclose(space);
    if (ds >= 0)
        H5Dclose(ds);
    if (!ok) {
        mf_error_set(r->err, "%s: the checkpoint's /rng/modality_dropout is missing or not 6 "
                     "words", r->path);
        return -1;
    }
    memcpy(e->dropout_rng.s, words, sizeof e->dropout_rng.s);
    e->dropout_rng.has_spare = (int)words[4];
    uint32_t bits = (uint32_t)words[5];
    memcpy(&e->dropout_rng.spare, &bits, sizeof bits);
    return 0;
}

static int read_optim(reader *r, experiment *e)
{
    static const char *const kinds[] = {"adam", "adamw", "sgd"};
    char type[32] = "";
    hid_t g = H5Lexists(r->file, "optim", H5P_DEFAULT) > 0
                  ? H5Gopen2(r->file, "optim", H5P_DEFAULT) : -1;
    int64_t step = 0;
    int rc = g < 0 || read_string(g, "type", type, sizeof type) ||
             attr_read(g, "step", H5T_NATIVE_INT64, &step);
    if (g >= 0)
        H5Gclose(g);
    if (rc) {
        mf_error_set(r->err, "%s: the checkpoint's /optim is missing or incomplete", r->path);
        return -1;
    }
    if (strcmp(type, kinds[e->optim.kind])) {
        mf_error_set(r->err, "%s: the checkpoint holds %s's state, the experiment uses %s",
                     r->path, type, kinds[e->optim.kind]);
        return -1;
    }
    if (step < 0) {
        mf_error_set(r->err, "%s: the checkpoint's /optim step is %lld: the file is corrupt",
                     r->path, (long long)step);
        return -1;
    }
    e->optim.step = step;
    if (e->optim.kind == MF_OPTIM_SGD)
        return tensors_read(r, "optim/momentum_buffer", e->params, mf_params_moment(e->params, 0));
    return tensors_read(r, "optim/exp_avg", e->params, mf_params_moment(e->params, 0)) ||
           tensors_read(r, "optim/exp_avg_sq", e->params, mf_params_moment(e->params, 1));
}

/* One float64 vector of n values at `path`; -1 when absent or of another length. */
static int vector_read(hid_t file, const char *path, int64_t n, double *dst)
{
    if (H5Lexists(file, "standardization", H5P_DEFAULT) <= 0)
        return -1;
    char parent[600];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    if (H5Lexists(file, parent, H5P_DEFAULT) <= 0 || H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT), space = ds >= 0 ? H5Dget_space(ds) : -1;
    int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == n &&
             checked_read(ds, H5T_NATIVE_DOUBLE, dst) >= 0;
    if (space >= 0)
        H5Sclose(space);
    if (ds >= 0)
        H5Dclose(ds);
    return ok ? 0 : -1;
}

static int read_standardization(reader *r, experiment *e)
{
    char path[600];
    for (int m = 0; m < e->n_mod; m++) {
        mfi_input *in = &e->input[m];
        if (!in->standardize)
            continue;
        const int64_t n = mf_shape_numel(&in->shape);
        double *v = malloc((size_t)n * 2 * sizeof(double));
        if (!in->mean) {
            in->mean = malloc((size_t)n * sizeof(float));
            in->inv_std = malloc((size_t)n * sizeof(float));
        }
        snprintf(path, sizeof path, "standardization/%s/mean", in->name);
        int rc = !v || !in->mean || !in->inv_std || vector_read(r->file, path, n, v);
        snprintf(path, sizeof path, "standardization/%s/std", in->name);
        rc = rc || vector_read(r->file, path, n, v + n);
        int bad = 0; /* a mean or 1/std not finite as float32 (a std of 0 included) */
        for (int64_t i = 0; !rc && i < n; i++) {
            in->mean[i] = (float)v[i];
            in->inv_std[i] = (float)(1.0 / v[n + i]);
            bad = bad || !isfinite(in->mean[i]) || !isfinite(in->inv_std[i]) || !(v[n + i] > 0);
        }
        free(v);
        if (rc) {
            mf_error_set(r->err, "%s: no /standardization/%s of %lld features for input '%s'",
                         r->path, in->name, (long long)n, in->name);
            return -1;
        }
        if (bad) {
            mf_error_set(r->err, "%s: /standardization/%s holds a mean that is not finite or a "
                         "std that is not positive and finite: the checkpoint is corrupt",
                         r->path, in->name);
            return -1;
        }
    }
    if (e->target_mean &&
        (vector_read(r->file, "standardization/target/mean", e->target_dim, e->target_mean) ||
         vector_read(r->file, "standardization/target/std", e->target_dim, e->target_std))) {
        mf_error_set(r->err, "%s: no /standardization/target of %lld values", r->path,
                     (long long)e->target_dim);
        return -1;
    }
    for (int64_t i = 0; e->target_mean && i < e->target_dim; i++)
        if (!isfinite(e->target_mean[i]) || !isfinite(e->target_std[i]) ||
            !(e->target_std[i] > 0)) {
            mf_error_set(r->err, "%s: /standardization/target holds a mean that is not finite "
                         "or a std that is not positive and finite: the checkpoint is corrupt",
                         r->path);
            return -1;
        }
    return 0;
}

int mfi_checkpoint_load(experiment *e, const char *path, unsigned what, float *values,
                        mfi_train_position *pos, mf_error *err)
{
    reader r = {path, -1, err};
    int rc = open_checkpoint(&r);
    if (rc == 0 && (what & MFI_CKPT_SAME_RUN))
        rc = mfi_checkpoint_check_plugins(e, r.file, path, 1, err);
    if (rc == 0 && (what & MFI_CKPT_PARAMS))
        rc = tensors_read(&r, "params", e->params, values ? values : mf_params_values(e->params));
    if (rc == 0 && (what & MFI_CKPT_TRAINING)) {
        mfi_train_position local;
        rc = read_position(&r, e, pos ? pos : &local) || read_rng(&r, e) || read_optim(&r, e);
    }
    if (rc == 0 && (what & MFI_CKPT_STANDARDIZATION))
        rc = read_standardization(&r, e);
    if (r.file >= 0)
        H5Fclose(r.file);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- fine-tuning */
typedef struct name_list {
    int n;
    char **name;
} name_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    name_list *l = data;
    char *copy = strdup(name);
    char **grown = copy ? realloc(l->name, (size_t)(l->n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return -1;
    }
    l->name = grown;
    l->name[l->n++] = copy;
    return 0;
}

/* "a, b, c" of at most 8 names, then "and N more". */
static void print_names(FILE *log, const char *what, char **names, int n)
{
    if (n == 0)
        return;
    fprintf(log, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 8; i++)
        fprintf(log, "%s %s", i ? "," : "", names[i]);
    if (n > 8)
        fprintf(log, " and %d more", n - 8);
    fputc('\n', log);
}

int mfi_checkpoint_init_from(experiment *e, const char *path, mf_error *err)
{
    reader r = {path, -1, err};
    if (open_checkpoint(&r) || mfi_checkpoint_check_plugins(e, r.file, path, 0, err))
        goto fail;
    name_list in_file = {0, NULL};
    if (H5Lexists(r.file, "params", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(r.file, "params", H5P_DEFAULT);
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &in_file);
        H5Gclose(g);
    }
    const int np = mf_params_size(e->params);
    char **missing = calloc((size_t)np + 1, sizeof *missing), **shaped = calloc((size_t)np + 1, sizeof *shaped);
    int n_loaded = 0, n_missing = 0, n_shaped = 0, used_count = 0;
    const char *not_finite = NULL; /* the run stops: a parameter was overwritten with it */
    if (!missing || !shaped) {
        mf_error_set(err, "%s: out of memory while reading the checkpoint", path);
        not_finite = "";
    }
    for (int i = 0; i < np && !not_finite; i++) {
        mf_param *q = mf_params_at(e->params, i);
        char got[96] = "";
        int rc = tensor_read(r.file, "params", mf_param_name(q), mf_param_shape(q),
                             mf_param_value(q), got, sizeof got);
        if (rc == 0)
            n_loaded++;
        else if (rc == 1)
            missing[n_missing++] = (char *)mf_param_name(q);
        else if (rc == 3)
            not_finite = mf_param_name(q);
        else
            shaped[n_shaped++] = (char *)mf_param_name(q);
    }
    if (not_finite && *not_finite) {
        mf_error_set(err, "%s: /params/%s holds a value that is not finite (NaN or Inf): the "
                     "checkpoint is corrupt", path, not_finite);
        n_loaded = 0;
    }
    /* the checkpoint's parameters this model has no place for */
    char **unused = calloc((size_t)in_file.n + 1, sizeof *unused);
    for (int k = 0; unused && k < in_file.n; k++)
        if (!mf_params_find(e->params, in_file.name[k]))
            unused[used_count++] = in_file.name[k];
    if (n_loaded > 0 && !e->quiet && !not_finite) {
        fprintf(e->log, "init-from %s: %d of %d parameters loaded\n", path, n_loaded, np);
        print_names(e->log, "not in the checkpoint, initialised as usual", missing, n_missing);
        print_names(e->log, "of another shape in the checkpoint, initialised as usual", shaped,
                    n_shaped);
        print_names(e->log, "in the checkpoint but not in this model, ignored", unused, used_count);
    }
    if (n_loaded == 0 && !not_finite)
        mf_error_set(err, "%s: none of this model's %d parameters is in the checkpoint with its "
                     "shape (the first, %s, is %s): nothing to initialise from", path, np,
                     np ? mf_param_name(mf_params_at(e->params, 0)) : "-",
                     n_shaped && shaped[0] == (char *)mf_param_name(mf_params_at(e->params, 0))
                         ? "of another shape" : "missing");
    for (int k = 0; k < in_file.n; k++)
        free(in_file.name[k]);
    free(in_file.name);
    free(missing);
    free(shaped);
    free(unused);
    H5Fclose(r.file);
    return n_loaded ? 0 : -1;
fail:
    if (r.file >= 0)
        H5Fclose(r.file);
    return -1;
}
