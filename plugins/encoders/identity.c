/* identity — passes a modality through unchanged: early fusion feeds raw features to the
 * fusion operator and lets the head do the joint encoding. */
#include <mmfuse/mmfuse.h>

static const mf_param_spec identity_params[] = {MF_PARAM_END};

static int identity_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                          mf_shape *out, mf_error *err)
{
    if (args->out_features && mf_shape_numel(&args->in[0]) != args->out_features) {
        mf_config_error(err, cfg, "identity cannot output %lld features from an input of %lld",
                        (long long)args->out_features, (long long)mf_shape_numel(&args->in[0]));
        return -1;
    }
    *out = args->in[0];
    return 0;
}

static mf_node *identity_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    return in[0];
}

static const mf_module_ops identity_ops = {
    .struct_size = sizeof(mf_module_ops),
    .build = identity_build,
    .forward = identity_forward,
};

static const mf_plugin identity_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "identity",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "No encoding: the modality's features pass through unchanged (early fusion)",
    .params = identity_params,
    .ops = &identity_ops,
};

MF_PLUGIN_DEFINE(&identity_plugin)
