/* mean — late fusion: the modalities' predictions (each encoder ends in the class logits,
 * or any common width D) are averaged:
 *   out = (1/M) Σ_m x_m                 x_m (B,D) flattened, out (B,D)
 * Every input must have the same width. Use it with `head: {type: identity}` (or none) so
 * the average is the prediction. */
#include <mmfuse/mmfuse.h>

static const mf_param_spec mean_params[] = {MF_PARAM_END};

static mf_node *flat(mf_graph *g, mf_node *x)
{
    if (!x || mf_node_shape(x)->ndim <= 2)
        return x;
    return mf_reshape(g, x, mf_shape2(mf_node_shape(x)->dim[0], -1));
}

static int mean_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                      mf_shape *out, mf_error *err)
{
    int64_t d = mf_shape_numel(&args->in[0]);
    for (int m = 1; m < args->n_in; m++)
        if (mf_shape_numel(&args->in[m]) != d) {
            mf_config_error(err, cfg,
                            "late fusion needs inputs of one width, but modality '%s' has %lld "
                            "features and '%s' has %lld",
                            args->in_names[0], (long long)d, args->in_names[m],
                            (long long)mf_shape_numel(&args->in[m]));
            return -1;
        }
    *out = mf_shape1(d);
    return 0;
}

static mf_node *mean_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mf_node *acc = flat(g, in[0]); // (B,D)
    for (int m = 1; m < n_in; m++)
        acc = mf_add(g, acc, flat(g, in[m]));
    return mf_scale(g, acc, 1.0f / (float)n_in);
}

static const mf_module_ops mean_ops = {
    .struct_size = sizeof(mf_module_ops),
    .build = mean_build,
    .forward = mean_forward,
};

static const mf_plugin mean_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "mean",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Late fusion: average the modalities' predictions (inputs of one width)",
    .params = mean_params,
    .ops = &mean_ops,
};

MF_PLUGIN_DEFINE(&mean_plugin)
