/* tensor — tensor fusion (TFN, Zadeh et al. 2017): the outer product of every modality's
 * features, each padded with a constant 1,
 *   out = vec([1; z_1] ⊗ [1; z_2] ⊗ … ⊗ [1; z_M])      z_m (B,D_m) flattened
 * of Π_m (D_m + 1) features, modality 1's index varying slowest. The 1s keep the lower-order
 * terms: the output holds every z_m alone, every product of two, …, up to the M-way
 * products, so a linear head on it is a polynomial of all interactions. The size grows as
 * the product of the widths; `max_features` refuses what would not fit. */
#include <mmfuse/mmfuse.h>

static const mf_param_spec tensor_params[] = {
    {"max_features", MF_TYPE_INT, "1048576", MF_PARAM_MIN, 1, 0, NULL,
     "Refuse to build when Π(D_m + 1) exceeds this many features per sample."},
    MF_PARAM_END,
};

static int tensor_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                        mf_shape *out, mf_error *err)
{
    int64_t max, size = 1;
    if (mf_config_int(cfg, "max_features", &max, err))
        return -1;
    char sizes[512] = "";
    size_t len = 0;
    for (int m = 0; m < args->n_in; m++) {
        int64_t d = mf_shape_numel(&args->in[m]) + 1;
        size = size > INT64_MAX / d ? INT64_MAX : size * d;
        if (len < sizeof sizes)
            len += (size_t)snprintf(sizes + len, sizeof sizes - len, "%s%lld", m ? " x " : "",
                                    (long long)d);
    }
    if (size > max) {
        mf_config_error(err, cfg,
                        "tensor fusion would have %s = %lld features per sample, more than "
                        "max_features (%lld); shrink the encoders' outputs or use lowrank",
                        sizes, (long long)size, (long long)max);
        return -1;
    }
    *out = mf_shape1(size);
    return 0;
}

static mf_node *tensor_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mf_node *t = mf_prepend_one(g, mf_flatten(g, in[0])); // (B,D_1+1)
    for (int m = 1; m < n_in; m++)            // (B,P) ⊗ (B,D_m+1) → (B,P·(D_m+1))
        t = mf_outer(g, t, mf_prepend_one(g, mf_flatten(g, in[m])));
    return t;
}

static const mf_module_ops tensor_ops = {
    .struct_size = sizeof(mf_module_ops),
    .build = tensor_build,
    .forward = tensor_forward,
};

static const mf_plugin tensor_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "tensor",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Tensor fusion (Zadeh et al. 2017): outer product of the 1-padded modalities",
    .params = tensor_params,
    .ops = &tensor_ops,
};

MF_PLUGIN_DEFINE(&tensor_plugin)
