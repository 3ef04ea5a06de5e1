/* concat — fuses by joining the modalities' feature vectors: (B,D_1)…(B,D_M) → (B,ΣD_m).
 * The simplest fusion, and the baseline every other operator is compared with. */
#include <mmfuse/mmfuse.h>

static const mf_param_spec concat_params[] = {MF_PARAM_END};

static int concat_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                        mf_shape *out, mf_error *err)
{
    int64_t total = 0;
    char shape[64];
    for (int i = 0; i < args->n_in; i++) {
        if (args->in[i].ndim != 1) {
            mf_config_error(err, cfg, "concat joins feature vectors, but '%s' has shape %s",
                            args->in_names[i], mf_shape_str(&args->in[i], shape, sizeof shape));
            return -1;
        }
        total += args->in[i].dim[0];
    }
    *out = mf_shape1(total);
    return 0;
}

static mf_node *concat_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    return mf_concat(g, n_in, in);
}

static const mf_module_ops concat_ops = {
    .struct_size = sizeof(mf_module_ops),
    .build = concat_build,
    .forward = concat_forward,
};

static const mf_plugin concat_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "concat",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Concatenate the modalities' feature vectors",
    .params = concat_params,
    .ops = &concat_ops,
};

MF_PLUGIN_DEFINE(&concat_plugin)
