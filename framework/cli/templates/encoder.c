/* @NAME@ — an encoder for mmfuse: Linear → GELU → Linear on a modality's (flattened)
 * features. As a head it ends in the class count the host asks for.
 *
 * Build:  cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) @NAME@.c -o @NAME@.so
 * Check:  mmfuse check-plugin ./@NAME@.so
 * Run:    MMFUSE_PLUGIN_PATH=. mmfuse run @NAME@.yaml
 * No backward code: the ops of <mmfuse/graph.h> differentiate themselves. */
#include <mmfuse/mmfuse.h>

typedef struct @NAME@_state {
    mf_linear first, second;
} @NAME@_state;

static const mf_param_spec @NAME@_params[] = {
    {"hidden", MF_TYPE_INT, "64", MF_PARAM_MIN, 1, 0, NULL, "Width of the hidden layer."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Output features; 0 takes what the host requires (a head's class count)."},
    MF_PARAM_END,
};

static int @NAME@_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                        mf_shape *out, mf_error *err)
{
    @NAME@_state *s = mf_module_state(self);
    int64_t hidden, width;
    if (mf_config_int(cfg, "hidden", &hidden, err) || mf_config_int(cfg, "out", &width, err))
        return -1;
    if (width == 0)
        width = args->out_features;
    if (width == 0 || (args->out_features && width != args->out_features)) {
        mf_config_error(err, cfg, "set 'out' (this use needs %lld features)",
                        (long long)args->out_features);
        return -1;
    }
    int64_t in = mf_shape_numel(&args->in[0]);
    if (mf_linear_init(&s->first, self, "first", in, hidden, 1) ||
        mf_linear_init(&s->second, self, "second", hidden, width, 1))
        return -1;
    *out = mf_shape1(width);
    return 0;
}

static mf_node *@NAME@_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    @NAME@_state *s = mf_module_state(self);
    mf_node *x = mf_reshape(g, in[0], mf_shape2(mf_node_shape(in[0])->dim[0], -1)); // (B,F)
    return mf_linear_forward(g, &s->second, mf_gelu(g, mf_linear_forward(g, &s->first, x)));
}

static const mf_module_ops @NAME@_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(@NAME@_state),
    .build = @NAME@_build,
    .forward = @NAME@_forward,
};

static const mf_plugin @NAME@_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "@NAME@",
    .version = "0.1.0",
    .license = "MIT",
    .summary = "Two linear layers with a GELU between them",
    .params = @NAME@_params,
    .ops = &@NAME@_ops,
};

MF_PLUGIN_DEFINE(&@NAME@_plugin)
