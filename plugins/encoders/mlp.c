/* mlp — a multilayer perceptron: Linear layers with an activation between them.
 * As an encoder it maps a modality (flattened: a (2,3,3) patch is 18 features) to `out`
 * features; as a head it ends in the class count the host asks for. */
#include <mmfuse/mmfuse.h>

typedef struct mlp_state {
    mf_mlp mlp;
    float dropout;
} mlp_state;

static const mf_param_spec mlp_params[] = {
    {"hidden", MF_TYPE_INT_LIST, "[]", MF_PARAM_MIN, 1, 0, NULL,
     "Sizes of the hidden layers, input side first; [] is a single linear layer."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Output features; 0 takes what the host requires (a head's class count)."},
    {"activation", MF_TYPE_ENUM, "relu", 0, 0, 0, "relu|tanh|sigmoid|gelu",
     "Nonlinearity between layers (none after the last)."},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL,
     "Dropout probability on the input of every layer after the first, in training."},
    MF_PARAM_END,
};

static int mlp_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    mlp_state *s = mf_module_state(self);
    int64_t sizes[MF_MLP_MAX_LAYERS + 1], out_features;
    int n_hidden, act;
    double dropout;

    sizes[0] = mf_shape_numel(&args->in[0]); /* inputs are flattened */
    if (mf_config_int_list(cfg, "hidden", sizes + 1, MF_MLP_MAX_LAYERS - 1, &n_hidden, err) ||
        mf_config_int(cfg, "out", &out_features, err) ||
        mf_config_enum(cfg, "activation", "relu|tanh|sigmoid|gelu", &act, err) ||
        mf_config_float(cfg, "dropout", &dropout, err))
        return -1;
    s->dropout = (float)dropout;
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
    mf_node *x = in[0];
    if (x && mf_node_shape(x)->ndim > 2) // (B,…) → (B,F)
        x = mf_reshape(g, x, mf_shape2(mf_node_shape(x)->dim[0], -1));
    for (int i = 0; i < s->mlp.n_layers; i++) { // x is (B,F), out is (B,out)
        if (i > 0 && s->dropout > 0)
            x = mf_dropout(g, x, s->dropout);
        x = mf_linear_forward(g, &s->mlp.layer[i], x);
        if (i + 1 < s->mlp.n_layers)
            x = mf_activate(g, x, s->mlp.act);
    }
    return x;
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
    .summary = "Multilayer perceptron: Linear layers with ReLU, tanh, sigmoid or GELU between them",
    .params = mlp_params,
    .ops = &mlp_ops,
};

MF_PLUGIN_DEFINE(&mlp_plugin)
