/* @NAME@ — a dataset reader for mmfuse. This skeleton generates two modalities of Gaussian
 * class blobs; replace open() with reading your files (relative paths resolve from
 * mf_dataset_base_dir) and read() with copying the requested samples.
 *
 * Build:  cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) @NAME@.c -o @NAME@.so
 * Check:  mmfuse check-plugin ./@NAME@.so
 * Run:    MMFUSE_PLUGIN_PATH=. mmfuse run @NAME@.yaml */
#include <stdlib.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

enum { FEATURES = 8 };

typedef struct @NAME@_state {
    mf_modality_info modality[2];
    float *x[2]; /* samples × FEATURES each */
    int32_t *label;
    uint8_t *split;
} @NAME@_state;

static const mf_param_spec @NAME@_params[] = {
    {"samples", MF_TYPE_INT, "1000", MF_PARAM_MIN, 10, 0, NULL, "Number of samples."},
    {"classes", MF_TYPE_INT, "3", MF_PARAM_MIN | MF_PARAM_MAX, 2, 100, NULL, "Number of classes."},
    {"seed", MF_TYPE_INT, "0", 0, 0, 0, NULL, "Seed of the generated data."},
    MF_PARAM_END,
};

static void @NAME@_close(mf_dataset *self)
{
    @NAME@_state *s = mf_dataset_state(self);
    free(s->x[0]);
    free(s->x[1]);
    free(s->label);
    free(s->split);
}

static int @NAME@_open(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info,
                       mf_error *err)
{
    @NAME@_state *s = mf_dataset_state(self);
    int64_t n, classes, seed;
    if (mf_config_int(cfg, "samples", &n, err) || mf_config_int(cfg, "classes", &classes, err) ||
        mf_config_int(cfg, "seed", &seed, err))
        return -1;
    s->x[0] = malloc((size_t)(n * FEATURES) * sizeof(float));
    s->x[1] = malloc((size_t)(n * FEATURES) * sizeof(float));
    s->label = malloc((size_t)n * sizeof(int32_t));
    s->split = malloc((size_t)n);
    if (!s->x[0] || !s->x[1] || !s->label || !s->split) {
        @NAME@_close(self);
        mf_error_set(err, "@NAME@: out of memory for %lld samples", (long long)n);
        return -1;
    }
    mf_rng rng;
    mf_rng_seed(&rng, (uint64_t)seed);
    for (int64_t i = 0; i < n; i++) {
        int y = (int)mf_rng_below(&rng, (uint64_t)classes);
        for (int m = 0; m < 2; m++)
            for (int f = 0; f < FEATURES; f++) // class centre ±1 per feature, unit noise
                s->x[m][i * FEATURES + f] = (((y + f + m) % 2) ? 1.0f : -1.0f) + mf_rng_normal(&rng);
        s->label[i] = y;
        s->split[i] = i % 10 < 8 ? MF_SPLIT_TRAIN : i % 10 == 8 ? MF_SPLIT_VAL : MF_SPLIT_TEST;
    }
    s->modality[0] = (mf_modality_info){"a", mf_shape1(FEATURES), MF_DTYPE_F32};
    s->modality[1] = (mf_modality_info){"b", mf_shape1(FEATURES), MF_DTYPE_F32};
    info->n_modalities = 2;
    info->modalities = s->modality;
    info->n_samples = n;
    info->n_classes = (int)classes;
    info->split = s->split;
    return 0;
}

static int @NAME@_read(mf_dataset *self, int64_t n, const int64_t *idx,
                       const mf_batch_buffers *out, mf_error *err)
{
    @NAME@_state *s = mf_dataset_state(self);
    for (int64_t i = 0; i < n; i++) {
        for (int m = 0; m < 2; m++)
            memcpy(out->modality[m] + i * FEATURES, s->x[m] + idx[i] * FEATURES, FEATURES * sizeof(float));
        out->labels[i] = s->label[idx[i]];
    }
    return 0;
}

static const mf_dataset_ops @NAME@_ops = {
    .struct_size = sizeof(mf_dataset_ops),
    .state_size = sizeof(@NAME@_state),
    .open = @NAME@_open,
    .read = @NAME@_read,
    .close = @NAME@_close,
};

static const mf_plugin @NAME@_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_DATASET,
    .name = "@NAME@",
    .version = "0.1.0",
    .license = "MIT",
    .summary = "Two modalities of Gaussian class blobs (a skeleton to replace with real data)",
    .params = @NAME@_params,
    .ops = &@NAME@_ops,
};

MF_PLUGIN_DEFINE(&@NAME@_plugin)
