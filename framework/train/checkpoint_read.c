/* Reading checkpoints (layout in checkpoint.h) with every name and shape checked, so a
 * checkpoint of another model is refused naming the first parameter that differs, and a
 * corrupt or truncated file in one sentence naming it; and fine-tuning (--init-from). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "experiment_internal.h"

/* ---------------------------------------------------------------- reading */
typedef struct reader {
    const char *path;
    hid_t file;
    mf_error *err;
} reader;

static int attr_read(hid_t loc, const char *name, hid_t mem_type, void *out)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mem_type, out) >= 0;
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

/* A string attribute into buf; -1 when absent. */
static int read_string(hid_t loc, const char *name, char *buf, size_t size)
{
    hid_t t = mfi_h5_string_type();
    char *v = NULL;
    int rc = attr_read(loc, name, t, &v);
    if (rc == 0)
        snprintf(buf, size, "%s", v ? v : "");
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

/* Dataset `group/name` as float32 with shape s into dst. 0 done, 1 absent, 2 other shape
 * (its shape in got), -1 unreadable. */
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
             : H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0 ? -1 : 0;
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
        else if (rc < 0)
            mf_error_set(r->err, "%s: /%s/%s cannot be read: the file is corrupt (its checksum "
                         "does not match) or truncated",
                         r->path, group, mf_param_name(q));
        if (rc)
            return -1;
    }
    return 0;
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
             H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->kept_value) < 0 ||
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
    int rc = g < 0 || read_int(r, g, "higher_is_better", &sel[0]) ||
             read_int(r, g, "best_epoch", &sel[1]) || read_int(r, g, "best_step", &sel[2]) ||
             read_int(r, g, "best_evaluation", &sel[3]) ||
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
             H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, words) >= 0;
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
    int rc = g < 0 || read_string(g, "type", type, sizeof type) || read_int(r, g, "step", &step);
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
             H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
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
        for (int64_t i = 0; !rc && i < n; i++) {
            in->mean[i] = (float)v[i];
            in->inv_std[i] = (float)(1.0 / v[n + i]);
        }
        free(v);
        if (rc) {
            mf_error_set(r->err, "%s: no /standardization/%s of %lld features for input '%s'",
                         r->path, in->name, (long long)n, in->name);
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
    char **grown = realloc(l->name, (size_t)(l->n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    l->name = grown;
    l->name[l->n++] = strdup(name);
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
    for (int i = 0; i < np; i++) {
        mf_param *q = mf_params_at(e->params, i);
        char got[96] = "";
        int rc = tensor_read(r.file, "params", mf_param_name(q), mf_param_shape(q),
                             mf_param_value(q), got, sizeof got);
        if (rc == 0)
            n_loaded++;
        else if (rc == 1)
            missing[n_missing++] = (char *)mf_param_name(q);
        else
            shaped[n_shaped++] = (char *)mf_param_name(q);
    }
    /* the checkpoint's parameters this model has no place for */
    char **unused = calloc((size_t)in_file.n + 1, sizeof *unused);
    for (int k = 0; unused && k < in_file.n; k++)
        if (!mf_params_find(e->params, in_file.name[k]))
            unused[used_count++] = in_file.name[k];
    if (n_loaded > 0 && !e->quiet) {
        fprintf(e->log, "init-from %s: %d of %d parameters loaded\n", path, n_loaded, np);
        print_names(e->log, "not in the checkpoint, initialised as usual", missing, n_missing);
        print_names(e->log, "of another shape in the checkpoint, initialised as usual", shaped,
                    n_shaped);
        print_names(e->log, "in the checkpoint but not in this model, ignored", unused, used_count);
    }
    if (n_loaded == 0)
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
