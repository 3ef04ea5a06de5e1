/* sum — each modality projected to a common width, then added:
 *   out = act(Σ_m W_m x_m + b)          x_m (B,D_m) flattened, out (B,dim)
 * Equivalent to concat followed by one Linear layer (its weight cut into per-modality
 * blocks), so it is an additive fusion: it cannot express interactions between modalities. */
#include <mmfuse/mmfuse.h>

#define MAX_IN MF_PROJECTIONS_MAX

typedef struct sum_state {
    mf_projections proj; /* only proj.a has a bias: one b is enough for the sum */
    mf_activation act;
} sum_state;

static const mf_param_spec sum_params[] = {
    {"dim", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Common width every modality is projected to."},
    {"activation", MF_TYPE_ENUM, "none", 0, 0, 0, "none|relu|tanh|sigmoid|gelu",
     "Nonlinearity applied to the sum."},
    MF_PARAM_END,
};

static int sum_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    sum_state *s = mf_module_state(self);
    int64_t dim;
    int act;
    if (mf_config_int(cfg, "dim", &dim, err) ||
        mf_config_enum(cfg, "activation", "none|relu|tanh|sigmoid|gelu", &act, err))
        return -1;
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "sum fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    s->act = (mf_activation)act;
    if (mf_projections_init(&s->proj, self, "proj", args->n_in, args->in_names, args->in, dim,
                            MF_PROJ_BIAS_FIRST))
        return -1;
    *out = mf_shape1(dim);
    return 0;
}

static mf_node *sum_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    sum_state *s = mf_module_state(self);
    return mf_activate(g, mf_projections_fold(g, &s->proj, in, mf_add), s->act); // (B,dim)
}

static const mf_module_ops sum_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(sum_state),
    .build = sum_build,
    .forward = sum_forward,
};

static const mf_plugin sum_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "sum",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Project every modality to a common width and add them",
    .params = sum_params,
    .ops = &sum_ops,
};

MF_PLUGIN_DEFINE(&sum_plugin)
