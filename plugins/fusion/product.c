/* product — each modality projected to a common width, then multiplied elementwise:
 *   out = act(Π_m (W_m x_m + b_m))      x_m (B,D_m) flattened, out (B,dim)
 * Unit k of the output is a product of one projection per modality: a rank-1 multiplicative
 * interaction per unit (the Hadamard product of MLB, Kim et al. 2017, without its output
 * projection, which the head provides). */
#include <mmfuse/mmfuse.h>

#define MAX_IN MF_PROJECTIONS_MAX

typedef struct product_state {
    mf_projections proj;
    mf_activation act;
} product_state;

static const mf_param_spec product_params[] = {
    {"dim", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Common width every modality is projected to."},
    {"activation", MF_TYPE_ENUM, "none", 0, 0, 0, "none|relu|tanh|sigmoid|gelu",
     "Nonlinearity applied to the product."},
    MF_PARAM_END,
};

static int product_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    product_state *s = mf_module_state(self);
    int64_t dim;
    int act;
    if (mf_config_int(cfg, "dim", &dim, err) ||
        mf_config_enum(cfg, "activation", "none|relu|tanh|sigmoid|gelu", &act, err))
        return -1;
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "product fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    s->act = (mf_activation)act;
    if (mf_projections_init(&s->proj, self, "proj", args->n_in, args->in_names, args->in, dim,
                            MF_PROJ_BIAS_ALL))
        return -1;
    *out = mf_shape1(dim);
    return 0;
}

static mf_node *product_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    product_state *s = mf_module_state(self);
    return mf_activate(g, mf_projections_fold(g, &s->proj, in, mf_mul), s->act); // (B,dim)
}

static const mf_module_ops product_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(product_state),
    .build = product_build,
    .forward = product_forward,
};

static const mf_plugin product_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "product",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Project every modality to a common width and multiply them elementwise",
    .params = product_params,
    .ops = &product_ops,
};

MF_PLUGIN_DEFINE(&product_plugin)
