/* mean — late fusion: the modalities' predictions (each encoder ends in the class logits,
 * or any common width D) are averaged:
 *   out = (1/M) Σ_m x_m                 x_m (B,D) flattened, out (B,D)
 * Every input must have the same width. Use it with `head: {type: identity}` (or none) so
 * the average is the prediction. */
#include <mmfuse/mmfuse.h>

static const mf_param_spec mean_params[] = {MF_PARAM_END};

static int mean_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                      mf_shape *out, mf_error *err)
{
    int64_t d;
    if (mf_fusion_same_width(cfg, args, "late fusion", &d, err))
        return -1;
    *out = mf_shape1(d);
    return 0;
}

static mf_node *mean_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mf_node *acc = mf_flatten(g, in[0]); // (B,D)
    for (int m = 1; m < n_in; m++)
        acc = mf_add(g, acc, mf_flatten(g, in[m]));
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
