/* cnn — a convolutional encoder for image modalities (C,H,W): blocks of
 * Conv(k×k, same padding)–ReLU–MaxPool(2), then a linear layer to `out` features. */
#include <stdio.h>

#include <mmfuse/mmfuse.h>

#define MAX_BLOCKS 8

typedef struct cnn_state {
    int n_blocks, pool;
    mf_conv2d_layer conv[MAX_BLOCKS];
    mf_linear fc;
    int64_t flat;
} cnn_state;

static const mf_param_spec cnn_params[] = {
    {"channels", MF_TYPE_INT_LIST, "[16, 32]", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Output channels of each Conv–ReLU–MaxPool block, input side first."},
    {"kernel", MF_TYPE_INT, "3", MF_PARAM_MIN | MF_PARAM_MAX, 1, 11, NULL,
     "Odd kernel size of every convolution (padded to keep the size)."},
    {"pool", MF_TYPE_INT, "2", MF_PARAM_MIN | MF_PARAM_MAX, 1, 4, NULL,
     "Max-pooling window and stride after each convolution (1: none)."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "Output features; 0 takes what the host requires (a head's class count)."},
    MF_PARAM_END,
};

static int cnn_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    cnn_state *s = mf_module_state(self);
    int64_t channels[MAX_BLOCKS], kernel, pool, width;
    int n;
    char shape[64];
    if (mf_config_int_list(cfg, "channels", channels, MAX_BLOCKS, &n, err) ||
        mf_config_int(cfg, "kernel", &kernel, err) || mf_config_int(cfg, "pool", &pool, err) ||
        mf_config_int(cfg, "out", &width, err))
        return -1;
    const mf_shape *in = &args->in[0];
    if (in->ndim != 3) {
        mf_config_error(err, cfg, "cnn takes images (C,H,W), but '%s' has shape %s",
                        args->in_names[0], mf_shape_str(in, shape, sizeof shape));
        return -1;
    }
    if (kernel % 2 == 0) {
        mf_config_error(err, mf_config_get(cfg, "kernel"), "kernel must be odd, got %lld",
                        (long long)kernel);
        return -1;
    }
    if (width == 0)
        width = args->out_features;
    if (width == 0 || (args->out_features && width != args->out_features)) {
        mf_config_error(err, cfg, "set 'out' (this use needs %lld features)",
                        (long long)args->out_features);
        return -1;
    }
    int64_t c = in->dim[0], h = in->dim[1], w = in->dim[2];
    s->n_blocks = n;
    s->pool = (int)pool;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "conv%d", i);
        if (mf_conv2d_layer_init(&s->conv[i], self, name, c, channels[i], (int)kernel, 1,
                                 (int)kernel / 2, 1))
            return -1;
        c = channels[i];
        if (pool > 1) {
            h /= pool;
            w /= pool;
        }
        if (h < 1 || w < 1) {
            mf_config_error(err, mf_config_get(cfg, "channels"),
                            "%d pooled blocks shrink a %lldx%lld image to nothing", i + 1,
                            (long long)in->dim[1], (long long)in->dim[2]);
            return -1;
        }
    }
    s->flat = c * h * w;
    if (mf_linear_init(&s->fc, self, "fc", s->flat, width, 1))
        return -1;
    *out = mf_shape1(width);
    return 0;
}

static mf_node *cnn_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    cnn_state *s = mf_module_state(self);
    mf_node *x = in[0]; // (B,C,H,W)
    for (int i = 0; i < s->n_blocks; i++) {
        x = mf_relu(g, mf_conv2d_layer_forward(g, &s->conv[i], x));
        if (s->pool > 1)
            x = mf_max_pool2d(g, x, s->pool, s->pool);
    }
    if (!x)
        return NULL;
    x = mf_reshape(g, x, mf_shape2(mf_node_shape(x)->dim[0], s->flat)); // (B,C'·H'·W')
    return mf_linear_forward(g, &s->fc, x);
}

static const mf_module_ops cnn_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(cnn_state),
    .build = cnn_build,
    .forward = cnn_forward,
};

static const mf_plugin cnn_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "cnn",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Convolutional encoder: Conv–ReLU–MaxPool blocks, then a linear layer",
    .params = cnn_params,
    .ops = &cnn_ops,
};

MF_PLUGIN_DEFINE(&cnn_plugin)
