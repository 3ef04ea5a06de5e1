/* Writing checkpoints in HDF5 (layout in checkpoint.h): to a temporary, fsynced, renamed.
 * Reading them back is checkpoint_read.c's. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5.h>

#include "../data/h5_guard.h"
#include "checkpoint.h"
#include "experiment_internal.h"
#include "../core/text.h"

/* ---------------------------------------------------------------- writing */
hid_t mfi_h5_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* Checkpoint arrays are written whole, in one call: chunks of about 1 MiB. */
#define CHUNK_BYTES ((size_t)1 << 20)

static int attr_write(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, mem_type, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return ok ? 0 : -1;
}

static int attr_int(hid_t loc, const char *name, int64_t v)
{
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_double(hid_t loc, const char *name, double v)
{
    return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int attr_string(hid_t loc, const char *name, const char *v)
{
    hid_t t = mfi_h5_string_type();
    int rc = attr_write(loc, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

/* A dataset of `ndim` axes (0: a scalar). */
static int dataset_write(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int ndim,
                         const int64_t *dim, const void *data)
{
    hsize_t dims[MF_MAX_DIMS + 1];
    for (int d = 0; d < ndim; d++)
        dims[d] = (hsize_t)dim[d];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    /* arrays carry checksums; a scalar (a text) cannot be chunked */
    hid_t dcpl = ndim ? mfi_h5_checksummed(ndim, dims, H5Tget_size(file_type), CHUNK_BYTES)
                      : H5P_DEFAULT;
    hid_t ds = dcpl < 0 ? -1 : H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int ok = ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    if (dcpl > 0 && dcpl != H5P_DEFAULT)
        H5Pclose(dcpl);
    H5Sclose(space);
    return ok ? 0 : -1;
}

static int text_write(hid_t loc, const char *name, const char *text)
{
    hid_t t = mfi_h5_string_type();
    int rc = dataset_write(loc, name, t, t, 0, NULL, &text);
    H5Tclose(t);
    return rc;
}

/* One float32 dataset per parameter under `group`, from `buf` (a collated buffer). */
static int tensors_write(hid_t file, const char *group, mf_params *ps, const float *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < mf_params_size(ps) && rc == 0; i++) {
        mf_param *q = mf_params_at(ps, i);
        const mf_shape *s = mf_param_shape(q);
        rc = dataset_write(g, mf_param_name(q), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s->ndim, s->dim,
                           buf + mf_param_offset(q));
    }
    H5Gclose(g);
    return rc;
}

/* A file of the run folder as text ("" when absent). */
static char *slurp(const experiment *e, const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", e->run ? e->run->path : ".", file);
    char *text = e->run ? mfi_text_read_file(path) : NULL;
    return text ? text : calloc(1, 1);
}

static int write_optim(hid_t file, experiment *e)
{
    const mf_optim *o = &e->optim;
    hid_t g = H5Gcreate2(file, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    static const char *const kinds[] = {"adam", "adamw", "sgd"};
    int rc = attr_string(g, "type", kinds[o->kind]) || attr_double(g, "lr", o->lr) ||
             attr_double(g, "beta1", o->beta1) || attr_double(g, "beta2", o->beta2) ||
             attr_double(g, "eps", o->eps) || attr_double(g, "weight_decay", o->weight_decay) ||
             attr_double(g, "momentum", o->momentum) || attr_int(g, "step", o->step);
    H5Gclose(g);
    if (rc)
        return -1;
    if (o->kind == MF_OPTIM_SGD)
        return tensors_write(file, "optim/momentum_buffer", e->params, mf_params_moment(e->params, 0));
    return tensors_write(file, "optim/exp_avg", e->params, mf_params_moment(e->params, 0)) ||
           tensors_write(file, "optim/exp_avg_sq", e->params, mf_params_moment(e->params, 1));
}

static int write_standardization(hid_t file, experiment *e)
{
    hid_t g = H5Gcreate2(file, "standardization", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    int rc = 0;
    for (int m = 0; m < e->n_mod && rc == 0; m++) {
        const mfi_input *in = &e->input[m];
        if (!in->mean)
            continue;
        const int64_t n = mf_shape_numel(&in->shape);
        double *mean = malloc((size_t)n * 2 * sizeof(double)), *sd = mean + n;
        hid_t gi = mean ? H5Gcreate2(g, in->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        for (int64_t i = 0; gi >= 0 && i < n; i++) {
            mean[i] = in->mean[i];
            sd[i] = 1.0 / in->inv_std[i];
        }
        rc = gi < 0 || dataset_write(gi, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, mean) ||
             dataset_write(gi, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, sd);
        if (gi >= 0)
            H5Gclose(gi);
        free(mean);
    }
    if (rc == 0 && e->target_mean) {
        hid_t gt = H5Gcreate2(g, "target", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = gt < 0 ||
             dataset_write(gt, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &e->target_dim,
                           e->target_mean) ||
             dataset_write(gt, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &e->target_dim,
                           e->target_std);
        if (gt >= 0)
            H5Gclose(gt);
    }
    H5Gclose(g);
    return rc ? -1 : 0;
}

static int write_state(hid_t file, experiment *e, const char *kind, const mfi_train_position *p,
                       int with_rng)
{
    char created[32];
    time_t t = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    if (attr_string(file, "format", "mmfuse-checkpoint") ||
        attr_int(file, "format_version", MFI_CHECKPOINT_FORMAT_VERSION) ||
        attr_string(file, "mmfuse", MF_VERSION_STRING) || attr_string(file, "kind", kind) ||
        attr_string(file, "created", created) || attr_int(file, "seed", e->seed) ||
        attr_int(file, "step", p->step) || attr_int(file, "epoch", p->epoch) ||
        attr_int(file, "batch", p->batch) || attr_int(file, "forwards", p->forwards) ||
        attr_int(file, "evaluations", p->evaluations) || attr_int(file, "finished", p->finished))
        return -1;
    hid_t g = H5Gcreate2(file, "selection", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g < 0 || attr_string(g, "metric", e->select) ||
             attr_int(g, "higher_is_better", p->higher) || attr_double(g, "best", p->best) ||
             attr_int(g, "best_epoch", p->best_epoch) || attr_int(g, "best_step", p->best_step) ||
             attr_int(g, "best_evaluation", p->best_evaluation);
    if (rc == 0 && p->n_kept > 0) {
        char names[MFI_MAX_KEPT * 65] = "";
        size_t at = 0;
        for (int i = 0; i < p->n_kept; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? "," : "",
                                   p->kept_name[i]);
        const int64_t n = p->n_kept;
        hid_t st = mfi_h5_string_type();
        hid_t space = H5Screate_simple(1, (hsize_t[]){(hsize_t)n}, NULL);
        hid_t dcpl = mfi_h5_checksummed(1, (hsize_t[]){(hsize_t)n}, sizeof(double), CHUNK_BYTES);
        hid_t ds = H5Dcreate2(g, "val", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        const char *np = names;
        rc = ds < 0 || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                p->kept_value) < 0 || attr_write(ds, "names", st, st, &np);
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(space);
        H5Tclose(st);
    }
    if (g >= 0)
        H5Gclose(g);
    if (rc)
        return -1;
    if (!with_rng)
        return 0;
    /* the modality-dropout stream: its 4 state words, whether a spare normal waits, its bits */
    uint64_t words[6];
    memcpy(words, e->dropout_rng.s, sizeof e->dropout_rng.s);
    uint32_t spare_bits;
    memcpy(&spare_bits, &e->dropout_rng.spare, sizeof spare_bits);
    words[4] = (uint64_t)e->dropout_rng.has_spare;
    words[5] = spare_bits;
    const int64_t n_words = 6;
    hid_t r = H5Gcreate2(file, "rng", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc = r < 0 || dataset_write(r, "modality_dropout", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1,
                                &n_words, words);
    if (r >= 0)
        H5Gclose(r);
    return rc ? -1 : 0;
}

int mfi_checkpoint_save(experiment *e, const char *path, const float *kept,
                        const mfi_train_position *pos, mf_error *err)
{
    /* best.h5: the kept parameters, stamped with the point they come from; no optimiser or
     * RNG state, which belong to the moment of writing, not to that point */
    const char *kind = kept ? "best" : "last";
    mfi_train_position at = *pos;
    if (kept) {
        at.step = pos->best_step;
        at.epoch = pos->best_epoch + 1;
        at.batch = 0;
        at.evaluations = pos->best_evaluation;
        at.finished = 0;
    }
    mf_atomic_file af;
    if (!mf_atomic_open(&af, path, err))
        return -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say what failed */
    /* HDF5 truncates the temporary in place; committing fsyncs what it wrote. A full disk
     * is kept from HDF5 by the guard driver (h5_guard.c), which HDF5 1.10 needs to close
     * such a file at all. */
    int write_errno = 0;
    hid_t fapl = mfi_h5_guarded_fapl(&write_errno);
    hid_t file = fapl >= 0 ? H5Fcreate(af.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    char *config = slurp(e, "config.yaml"), *manifest = slurp(e, "manifest.json");
    int rc = file < 0 || write_state(file, e, kind, &at, !kept) ||
             tensors_write(file, "params", e->params, kept ? kept : mf_params_values(e->params)) ||
             (!kept && write_optim(file, e)) || write_standardization(file, e) ||
             text_write(file, "config", config) || (*manifest && text_write(file, "manifest", manifest));
    free(config);
    free(manifest);
    if (file >= 0 && H5Fclose(file) < 0)
        rc = -1;
    if (rc || write_errno) {
        mf_error_set(err, "cannot write the checkpoint '%s': %s", path,
                     write_errno ? strerror(write_errno) : "HDF5 failed to write it");
        mf_atomic_abort(&af);
        return -1;
    }
    return mf_atomic_commit(&af, err);
}

