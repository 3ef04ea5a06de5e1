/* A trained model at work: mmfuse eval (metrics on a split, or on another data file),
 * predict (a CSV row per sample: the prediction and the class probabilities) and embed (an
 * HDF5 file of each modality's and the fused embeddings, with labels). Outputs are written to
 * a temporary and renamed, so a failure never leaves half a file. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "../data/h5_guard.h"
#include "experiment_internal.h"

typedef struct infer {
    experiment e;
    const mf_infer_options *o;
    int split;              /* MF_SPLIT_* */
    const char *split_name;
    char checkpoint[4300];
    char config[4300];
    mfi_loader *loader;
} infer;

static const char *const split_names[] = {"train", "val", "test"};

/* ---------------------------------------------------------------- opening */
static int pick(infer *in, mf_error *err)
{
    const mf_infer_options *o = in->o;
    in->split_name = o->split ? o->split : "test";
    for (in->split = 0; in->split < 3 && strcmp(split_names[in->split], in->split_name); in->split++)
        ;
    if (in->split == 3) {
        mf_error_set(err, "--split %s: the splits are train, val and test", in->split_name);
        return -1;
    }
    const char *ck = o->checkpoint ? o->checkpoint : "best";
    if (strcmp(ck, "best") == 0 || strcmp(ck, "last") == 0)
        snprintf(in->checkpoint, sizeof in->checkpoint, "%s/checkpoints/%s.h5", o->run_dir, ck);
    else
        snprintf(in->checkpoint, sizeof in->checkpoint, "%s", ck);
    return 0;
}

/* The run's model with its checkpoint's parameters and standardisation. */
static int open_model(infer *in, mf_error *err)
{
    experiment *e = &in->e;
    char *config = in->config;
    snprintf(config, sizeof in->config, "%s/config.yaml", in->o->run_dir);
    FILE *f = fopen(config, "rb");
    if (!f) {
        mf_error_set(err, "%s: not a run folder (it has no config.yaml)", in->o->run_dir);
        return MF_EXIT_BAD_INPUT;
    }
    fclose(f);
    if (mfi_dist_launched_size() != 1) {
        mf_error_set(err, "%s: eval, predict and embed run as one process: start them without "
                     "mpirun or srun", in->o->run_dir);
        return MF_EXIT_BAD_INPUT;
    }
    e->comm = (mfi_comm){0, 1, 0, 1};
    e->path = config;
    e->base_dir = strdup(in->o->run_dir);
    e->overrides_from_cwd = 1; /* the user's -o paths are theirs, not the run folder's */
    e->log = in->o->log ? in->o->log : stdout;
    e->quiet = 1;
    e->force_checkpoint = in->o->struct_size >= offsetof(mf_infer_options, force) +
                                                    sizeof in->o->force && in->o->force;
    mf_run_options ro = {.struct_size = sizeof ro, .n_overrides = in->o->n_overrides,
                         .overrides = in->o->overrides, .log = e->log, .quiet = 1};
    if (mfi_experiment_prepare(e, &ro, err))
        return MF_EXIT_BAD_INPUT;
    e->quiet = in->o->quiet;
    int standardize = 1;
    mf_config_bool(e->data_cfg, "standardize", &standardize, NULL);
    if (standardize && e->target_kind == MF_TARGET_VALUES) {
        e->target_mean = calloc((size_t)e->target_dim, sizeof(double));
        e->target_std = calloc((size_t)e->target_dim, sizeof(double));
    }
    if (mfi_checkpoint_load(e, in->checkpoint,
                            MFI_CKPT_PARAMS | MFI_CKPT_STANDARDIZATION | MFI_CKPT_SAME_RUN, NULL,
                            NULL, err))
        return MF_EXIT_BAD_INPUT;
    const int64_t n = e->splits.count[in->split];
    if (n == 0) {
        mf_error_set(err, "%s: the data has no %s samples", e->path, in->split_name);
        return MF_EXIT_BAD_INPUT;
    }
    in->loader = mfi_loader_new(e->ds, e->info, e->splits.index[in->split], n, e->batch_size, 0,
                                (uint64_t)e->seed, 1, err);
    return in->loader ? MF_EXIT_OK : MF_EXIT_BAD_INPUT;
}

/* ---------------------------------------------------------------- eval */
static int eval(infer *in, mf_error *err)
{
    experiment *e = &in->e;
    mfi_pass p = {.e = e, .meter = mfi_meter_new(e, e->splits.count[in->split])};
    if (!p.meter) {
        mf_error_set(err, "out of memory");
        return MF_EXIT_FAILED;
    }
    int status = mfi_run_pass(&p, in->loader, 0, NULL, err);
    mfi_metric_table t;
    if (status == MF_EXIT_OK) {
        mfi_meter_table(p.meter, &t);
        const char *data = NULL;
        mf_config_string(e->data_cfg, "path", &data, NULL);
        if (!in->o->quiet || !in->o->output) {
            fprintf(e->log, "%s (%s checkpoint) on the %s split%s%s, %lld samples:\n",
                    in->o->run_dir, in->o->checkpoint ? in->o->checkpoint : "best",
                    in->split_name, data ? " of " : "", data ? data : "",
                    (long long)e->splits.count[in->split]);
            for (int i = 0; i < t.n; i++)
                if (!isnan(t.value[i]))
                    fprintf(e->log, "  %-12s %.6g\n", t.name[i], t.value[i]);
        }
    }
    if (status == MF_EXIT_OK && in->o->output) {
        json_t *j = json_object(), *m = json_object();
        for (int i = 0; i < t.n; i++)
            json_object_set_new(m, t.name[i], isfinite(t.value[i]) ? json_real(t.value[i]) : json_null());
        json_object_set_new(j, "metrics", m);
        json_object_set_new(j, "split", json_string(in->split_name));
        json_object_set_new(j, "checkpoint", json_string(in->checkpoint));
        json_object_set_new(j, "samples", json_integer(e->splits.count[in->split]));
        json_t *d = mfi_meter_details(p.meter, e);
        if (d)
            json_object_set_new(j, "details", d);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        if (!text || mf_write_file_atomic(in->o->output, text, strlen(text), err))
            status = MF_EXIT_FAILED;
        free(text);
    }
    mfi_meter_free(p.meter);
    return status;
}

/* ---------------------------------------------------------------- predict */
static const char *class_name(const experiment *e, int64_t k, char *buf, size_t size)
{
    if (e->info->class_names && k < e->info->n_classes)
        return e->info->class_names[k];
    snprintf(buf, size, "%lld", (long long)k);
    return buf;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
static void field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void predict_header(FILE *f, const experiment *e)
{
    char buf[32];
    const int64_t k = e->target_dim;
    if (e->target_kind == MF_TARGET_CLASSES) {
        fputs("index,split,label,label_name,prediction,prediction_name", f);
        for (int64_t c = 0; c < k; c++) {
            fputs(",p_", f);
            field(f, class_name(e, c, buf, sizeof buf));
        }
    } else {
        fputs("index,split", f);
        for (int64_t c = 0; c < k; c++)
            fprintf(f, ",target_%lld", (long long)c);
        for (int64_t c = 0; c < k; c++)
            fprintf(f, e->target_kind == MF_TARGET_MULTILABEL ? ",p_%lld" : ",prediction_%lld",
                    (long long)c);
    }
    fputc('\n', f);
}

/* The probabilities (softmax over classes, a sigmoid per label) or the values in the data's
 * units, one row per sample. */
typedef struct predict_out {
    infer *in;
    FILE *f;
} predict_out;

static int predict_rows(void *user, model_graph *mg, const mfi_batch *batch)
{
    predict_out *out = user;
    infer *in = out->in;
    FILE *f = out->f;
    experiment *e = &in->e;
    const int64_t k = e->target_dim;
    const float *z = mf_node_value(mg->logits ? mg->logits : mg->fused); // (B,K)
    char buf[32];
    for (int64_t i = 0; i < batch->n; i++, z += k) {
        fprintf(f, "%lld,%s", (long long)batch->index[i], in->split_name);
        if (e->target_kind == MF_TARGET_CLASSES) {
            int64_t best = 0;
            double top = z[0], sum = 0;
            for (int64_t c = 1; c < k; c++)
                if (z[c] > top)
                    top = z[c], best = c;
            for (int64_t c = 0; c < k; c++)
                sum += exp((double)z[c] - top);
            fprintf(f, ",%d,", batch->labels[i]);
            field(f, class_name(e, batch->labels[i], buf, sizeof buf));
            fprintf(f, ",%lld,", (long long)best);
            field(f, class_name(e, best, buf, sizeof buf));
            for (int64_t c = 0; c < k; c++)
                fprintf(f, ",%.6g", exp((double)z[c] - top) / sum);
        } else {
            for (int64_t c = 0; c < k; c++)
                fprintf(f, ",%.9g", batch->targets[i * k + c]);
            for (int64_t c = 0; c < k; c++) {
                double v = z[c];
                if (e->target_kind == MF_TARGET_MULTILABEL)
                    v = 1.0 / (1.0 + exp(-v));
                else if (e->target_mean)
                    v = v * e->target_std[c] + e->target_mean[c];
                fprintf(f, ",%.9g", v);
            }
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

static int predict(infer *in, mf_error *err)
{
    experiment *e = &in->e;
    if (!e->has_logits && !(e->fusion && !e->head)) {
        mf_error_set(err, "%s: the model has no head, so it predicts nothing (mmfuse embed "
                     "writes its embeddings)", in->o->run_dir);
        return MF_EXIT_BAD_INPUT;
    }
    mf_atomic_file af;
    FILE *f = mf_atomic_open(&af, in->o->output, err);
    if (!f)
        return MF_EXIT_FAILED;
    predict_header(f, e);
    predict_out out = {in, f};
    int status = mfi_eval_batches(e, in->loader, NULL, predict_rows, &out, err);
    if (status) {
        if (!err->count)
            mf_error_set(err, "cannot write '%s': %s", in->o->output, "a write failed (disk full?)");
        mf_atomic_abort(&af);
        return status;
    }
    if (mf_atomic_commit(&af, err))
        return MF_EXIT_FAILED;
    if (!in->o->quiet)
        fprintf(e->log, "%s: %lld predictions (%s split) in %s\n", in->o->run_dir,
                (long long)e->splits.count[in->split], in->split_name, in->o->output);
    return MF_EXIT_OK;
}

/* ---------------------------------------------------------------- embed */
#define MAX_OUT (MAX_MODALITIES + 4)

typedef struct embed_file {
    hid_t file;
    int n;
    hid_t ds[MAX_OUT];
    int kind[MAX_OUT];         /* index into the graph: modality m, or -1 fused, -2 logits,
                                  -3 labels, -4 targets, -5 index */
    int64_t per_sample[MAX_OUT];
    int64_t written;
} embed_file;

static hid_t create(hid_t loc, const char *name, hid_t type, int64_t n, const mf_shape *s)
{
    hsize_t dims[MF_MAX_DIMS + 1] = {(hsize_t)n};
    int nd = 1;
    for (int d = 0; s && d < s->ndim; d++)
        dims[nd++] = (hsize_t)s->dim[d];
    hid_t space = H5Screate_simple(nd, dims, NULL);
    hid_t dcpl = mfi_h5_checksummed(nd, dims, H5Tget_size(type), (size_t)1 << 20); /* ~1 MiB */
    hid_t ds = dcpl < 0 ? -1 : H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
}

static int add_output(embed_file *ef, hid_t loc, const char *name, hid_t type, int64_t n,
                      const mf_shape *s, int kind)
{
    hid_t ds = create(loc, name, type, n, s);
    if (ds < 0)
        return -1;
    ef->ds[ef->n] = ds;
    ef->kind[ef->n] = kind;
    ef->per_sample[ef->n++] = s ? mf_shape_numel(s) : 1;
    return 0;
}

static int embed_layout(infer *in, embed_file *ef)
{
    experiment *e = &in->e;
    const int64_t n = e->splits.count[in->split];
    hid_t g = H5Gcreate2(ef->file, "embeddings", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g < 0;
    for (int m = 0; !rc && m < e->n_mod; m++)
        rc = add_output(ef, g, e->mod_name[m], H5T_IEEE_F32LE, n, &e->emb_shape[m], m);
    if (!rc && e->fusion)
        rc = add_output(ef, g, "fused", H5T_IEEE_F32LE, n, &e->fused_shape, -1);
    if (g >= 0)
        H5Gclose(g);
    if (!rc && e->has_logits)
        rc = add_output(ef, ef->file, "logits", H5T_IEEE_F32LE, n, &e->logits_shape, -2);
    mf_shape k = mf_shape1(e->target_dim);
    if (!rc)
        rc = e->target_kind == MF_TARGET_CLASSES
                 ? add_output(ef, ef->file, "labels", H5T_STD_I32LE, n, NULL, -3)
                 : add_output(ef, ef->file, "targets", H5T_IEEE_F32LE, n, &k, -4);
    if (!rc)
        rc = add_output(ef, ef->file, "index", H5T_STD_I64LE, n, NULL, -5);
    return rc ? -1 : 0;
}

static int embed_rows(void *user, model_graph *mg, const mfi_batch *batch)
{
    embed_file *ef = user;
    const int64_t b = batch->n;
    for (int i = 0; i < ef->n; i++) {
        const int k = ef->kind[i];
        const void *src = k >= 0 ? (const void *)mf_node_value(mg->emb[k])
                          : k == -1 ? (const void *)mf_node_value(mg->fused)
                          : k == -2 ? (const void *)mf_node_value(mg->logits)
                          : k == -3 ? (const void *)batch->labels
                          : k == -4 ? (const void *)batch->targets : (const void *)batch->index;
        hid_t mem = k == -3 ? H5T_NATIVE_INT32 : k == -5 ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT;
        hid_t fs = H5Dget_space(ef->ds[i]);
        hsize_t dims[MF_MAX_DIMS + 1], start[MF_MAX_DIMS + 1] = {0};
        const int nd = H5Sget_simple_extent_dims(fs, dims, NULL);
        start[0] = (hsize_t)ef->written;
        dims[0] = (hsize_t)b;
        hid_t ms = H5Screate_simple(nd, dims, NULL);
        int bad = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL) < 0 ||
                  H5Dwrite(ef->ds[i], mem, ms, fs, H5P_DEFAULT, src) < 0;
        H5Sclose(ms);
        H5Sclose(fs);
        if (bad)
            return -1;
    }
    ef->written += b;
    return 0;
}

static int embed(infer *in, mf_error *err)
{
    experiment *e = &in->e;
    mf_atomic_file af;
    if (!mf_atomic_open(&af, in->o->output, err))
        return MF_EXIT_FAILED;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int write_errno = 0; /* a full disk, kept from HDF5 by the guard driver (h5_guard.c) */
    hid_t fapl = mfi_h5_guarded_fapl(&write_errno);
    embed_file ef = {.file = fapl >= 0 ? H5Fcreate(af.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1};
    if (fapl >= 0)
        H5Pclose(fapl);
    int status = ef.file < 0 || embed_layout(in, &ef) ? MF_EXIT_FAILED
                                                      : mfi_eval_batches(e, in->loader, NULL, embed_rows, &ef, err);
    if (ef.file >= 0) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        const char *attrs[][2] = {{"run", in->o->run_dir}, {"checkpoint", in->checkpoint},
                                  {"split", in->split_name}, {"mmfuse", MF_VERSION_STRING}};
        for (int i = 0; i < 4; i++) {
            hid_t sp = H5Screate(H5S_SCALAR);
            hid_t a = H5Acreate2(ef.file, attrs[i][0], t, sp, H5P_DEFAULT, H5P_DEFAULT);
            if (a < 0 || H5Awrite(a, t, &attrs[i][1]) < 0)
                status = MF_EXIT_FAILED;
            if (a >= 0)
                H5Aclose(a);
            H5Sclose(sp);
        }
        H5Tclose(t);
        for (int i = 0; i < ef.n; i++)
            H5Dclose(ef.ds[i]);
        if (H5Fclose(ef.file) < 0)
            status = MF_EXIT_FAILED;
    }
    if (status || write_errno) {
        status = status ? status : MF_EXIT_FAILED;
        if (!err->count || write_errno)
            mf_error_set(err, "cannot write '%s': %s", in->o->output,
                         write_errno ? strerror(write_errno) : "HDF5 failed to write it");
        mf_atomic_abort(&af);
        return status;
    }
    if (mf_atomic_commit(&af, err))
        return MF_EXIT_FAILED;
    if (!in->o->quiet)
        fprintf(e->log, "%s: the embeddings of %lld %s samples in %s\n", in->o->run_dir,
                (long long)ef.written, in->split_name, in->o->output);
    return MF_EXIT_OK;
}

int mf_experiment_infer(const mf_infer_options *o, mf_error *err)
{
    infer in;
    memset(&in, 0, sizeof in);
    in.o = o;
    if (!o || !o->run_dir || (o->kind != MF_INFER_EVAL && !o->output)) {
        mf_error_set(err, "mf_experiment_infer: a run folder%s is needed",
                     o && o->kind != MF_INFER_EVAL ? " and an output file" : "");
        return MF_EXIT_BAD_INPUT;
    }
    int status = pick(&in, err) ? MF_EXIT_BAD_INPUT : open_model(&in, err);
    if (status == MF_EXIT_OK)
        status = o->kind == MF_INFER_EVAL      ? eval(&in, err)
                 : o->kind == MF_INFER_PREDICT ? predict(&in, err)
                                               : embed(&in, err);
    mfi_loader_free(in.loader);
    mfi_experiment_free(&in.e);
    return mfi_exit_status(status, err);
}
