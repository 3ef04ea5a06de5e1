/* mlp — a multilayer perceptron: Linear layers with an activation between them.
 * As an encoder it maps a modality's feature vector to `out` features; as a head it ends
 * in the class count the host asks for. */
#include <mmfuse/mmfuse.h>

typedef struct mlp_state {
    mf_mlp mlp;
} mlp_state;

static const mf_param_spec mlp_params[] = {
    {"hidden", MF_TYPE_INT_LIST, "[]", MF_PARAM_MIN, 1, 0, NULL,
     "Sizes of the hidden layers, input side first; [] is a single linear layer."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Output features; 0 takes what the host requires (a head's class count)."},
    {"activation", MF_TYPE_ENUM, "relu", 0, 0, 0, "relu|tanh|sigmoid",
     "Nonlinearity between layers (none after the last)."},
    MF_PARAM_END,
};

static int mlp_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    mlp_state *s = mf_module_state(self);
    int64_t sizes[MF_MLP_MAX_LAYERS + 1], out_features;
    int n_hidden, act;
    char shape[64];

    if (args->in[0].ndim != 1) {
        mf_config_error(err, cfg, "mlp takes feature vectors, but its input has shape %s",
                        mf_shape_str(&args->in[0], shape, sizeof shape));
        return -1;
    }
    sizes[0] = args->in[0].dim[0];
    if (mf_config_int_list(cfg, "hidden", sizes + 1, MF_MLP_MAX_LAYERS - 1, &n_hidden, err) ||
        mf_config_int(cfg, "out", &out_features, err) ||
        mf_config_enum(cfg, "activation", "relu|tanh|sigmoid", &act, err))
        return -1;
    if (out_features == 0)
        out_features = args->out_features;
    if (out_features == 0) {
        mf_config_error(err, cfg, "set 'out', the number of output features");
        return -1;
    }
    if (args->out_features && out_features != args->out_features) {
        mf_config_error(err, mf_config_get(cfg, "out"),
                        "out is %lld, but this module must output %lld features",
                        (long long)out_features, (long long)args->out_features);
        return -1;
    }
    sizes[n_hidden + 1] = out_features;
    if (mf_mlp_init(&s->mlp, self, "", n_hidden + 2, sizes, (mf_activation)(MF_ACT_RELU + act)))
        return -1;
    *out = mf_shape1(out_features);
    return 0;
}

static mf_node *mlp_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mlp_state *s = mf_module_state(self);
    return mf_mlp_forward(g, &s->mlp, in[0]); // in[0] is (B,F), out is (B,out)
}

static const mf_module_ops mlp_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(mlp_state),
    .build = mlp_build,
    .forward = mlp_forward,
};

static const mf_plugin mlp_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "mlp",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Multilayer perceptron: Linear layers with ReLU, tanh or sigmoid between them",
    .params = mlp_params,
    .ops = &mlp_ops,
};

MF_PLUGIN_DEFINE(&mlp_plugin)
