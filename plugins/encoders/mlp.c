/* mlp — a multilayer perceptron: Linear layers with an activation between them.
 * As an encoder it maps a modality (flattened: a (2,3,3) patch is 18 features) to `out`
 * features; as a head it ends in the class count the host asks for. Options: a LayerNorm
 * before each hidden activation, and residual hidden blocks h + act(fc(h)). */
#include <stdio.h>

#include <mmfuse/mmfuse.h>

typedef struct mlp_state {
    mf_mlp mlp;
    mf_layer_norm_layer ln[MF_MLP_MAX_LAYERS];
    int layer_norm;
    int residual[MF_MLP_MAX_LAYERS]; /* hidden layer i adds its input back */
    float dropout;
} mlp_state;

static const mf_param_spec mlp_params[] = {
    {"hidden", MF_TYPE_INT_LIST, "[]", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Sizes of the hidden layers, input side first; [] is a single linear layer."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "Output features; 0 takes what the host requires (a head's class count)."},
    {"activation", MF_TYPE_ENUM, "relu", 0, 0, 0, "relu|tanh|sigmoid|gelu",
     "Nonlinearity between layers (none after the last)."},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL,
     "Dropout probability on the input of every layer after the first, in training."},
    {"layer_norm", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "LayerNorm (learned gain and bias) on each hidden layer's output, before its activation."},
    {"residual", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "Hidden layers as residual blocks h + act(fc(h)); all hidden widths must be equal (the "
     "first layer adds its input back only when that is as wide)."},
    MF_PARAM_END,
};

/* Which hidden layers are residual: all of them but a first one that changes the width. */
static int mlp_plan_residual(mlp_state *s, const mf_config *cfg, const int64_t *sizes,
                             int n_hidden, mf_error *err)
{
    const mf_config *at = mf_config_get(cfg, "residual");
    if (n_hidden == 0) {
        mf_config_error(err, at, "residual blocks need hidden layers: set 'hidden'");
        return -1;
    }
    for (int i = 1; i < n_hidden; i++)
        if (sizes[i + 1] != sizes[1]) {
            mf_config_error(err, mf_config_get(cfg, "hidden"),
                            "residual blocks need equal hidden widths, but hidden layer %d has "
                            "%lld features and layer 0 has %lld",
                            i, (long long)sizes[i + 1], (long long)sizes[1]);
            return -1;
        }
    int any = 0;
    for (int i = 0; i < n_hidden; i++)
        any |= s->residual[i] = sizes[i] == sizes[i + 1];
    if (!any) {
        mf_config_error(err, at,
                        "residual blocks need a hidden layer as wide as its input, but %lld "
                        "input features go to one hidden layer of %lld",
                        (long long)sizes[0], (long long)sizes[1]);
        return -1;
    }
    return 0;
}

static int mlp_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    mlp_state *s = mf_module_state(self);
    int64_t sizes[MF_MLP_MAX_LAYERS + 1], out_features;
    int n_hidden, act, residual;
    double dropout;

    sizes[0] = mf_shape_numel(&args->in[0]); /* inputs are flattened */
    if (mf_config_int_list(cfg, "hidden", sizes + 1, MF_MLP_MAX_LAYERS - 1, &n_hidden, err) ||
        mf_config_int(cfg, "out", &out_features, err) ||
        mf_config_enum(cfg, "activation", "relu|tanh|sigmoid|gelu", &act, err) ||
        mf_config_float(cfg, "dropout", &dropout, err) ||
        mf_config_bool(cfg, "layer_norm", &s->layer_norm, err) ||
        mf_config_bool(cfg, "residual", &residual, err))
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
    if (residual && mlp_plan_residual(s, cfg, sizes, n_hidden, err))
        return -1;
    /* the linear layers first, so they start as without the norms (same seed, same values) */
    if (mf_mlp_init(&s->mlp, self, "", n_hidden + 2, sizes, (mf_activation)(MF_ACT_RELU + act)))
        return -1;
    for (int i = 0; s->layer_norm && i < n_hidden; i++) {
        char name[32];
        snprintf(name, sizeof name, "ln%d", i);
        if (mf_layer_norm_layer_init(&s->ln[i], self, name, sizes[i + 1], 1e-5f))
            return -1;
    }
    *out = mf_shape1(out_features);
    return 0;
}

static mf_node *mlp_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mlp_state *s = mf_module_state(self);
    mf_node *x = mf_flatten(g, in[0]); // (B,…) → (B,F)
    for (int i = 0; i < s->mlp.n_layers; i++) { // x is (B,F), out is (B,out)
        mf_node *h = i > 0 && s->dropout > 0 ? mf_dropout(g, x, s->dropout) : x;
        h = mf_linear_forward(g, &s->mlp.layer[i], h);
        if (i + 1 == s->mlp.n_layers)
            return h;
        if (s->layer_norm)
            h = mf_layer_norm_layer_forward(g, &s->ln[i], h);
        h = mf_activate(g, h, s->mlp.act);
        x = s->residual[i] ? mf_add(g, x, h) : h; /* the skip path takes no dropout */
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
