/* weighted — late fusion with learned trust in each modality:
 *   w = softmax(θ), θ ∈ R^M learned, initialised equal (θ = 0: w_m = 1/M, the mean)
 *   out = Σ_m w_m x_m                   x_m (B,D) flattened, out (B,D)
 * Every input must have the same width. The softmax keeps the weights positive and summing
 * to 1, so the output stays on the scale of one modality's logits. */
#include <mmfuse/mmfuse.h>

typedef struct weighted_state {
    mf_param *theta; /* (1,M) */
} weighted_state;

static const mf_param_spec weighted_params[] = {MF_PARAM_END};

static int weighted_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                          mf_shape *out, mf_error *err)
{
    weighted_state *s = mf_module_state(self);
    int64_t d;
    if (mf_fusion_same_width(cfg, args, "late fusion", &d, err))
        return -1;
    mf_init zeros = {MF_INIT_ZEROS, 0, 0};
    if (!(s->theta = mf_module_param(self, "logits", mf_shape2(1, args->n_in), zeros)))
        return -1;
    mf_param_set_flags(s->theta, MF_NO_DECAY);
    *out = mf_shape1(d);
    return 0;
}

static mf_node *weighted_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    weighted_state *s = mf_module_state(self);
    mf_node *w = mf_softmax(g, mf_param_node(g, s->theta)); // (1,M)
    mf_node *acc = NULL;
    for (int m = 0; m < n_in; m++) { // w_m (1,1) scales the whole (B,D) input
        mf_node *t = mf_mul(g, mf_flatten(g, in[m]), mf_slice(g, w, 1, m, 1));
        acc = acc ? mf_add(g, acc, t) : t;
    }
    return acc;
}

static const mf_module_ops weighted_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(weighted_state),
    .build = weighted_build,
    .forward = weighted_forward,
};

static const mf_plugin weighted_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "weighted",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Late fusion: a learned softmax-weighted average of the modalities' predictions",
    .params = weighted_params,
    .ops = &weighted_ops,
};

MF_PLUGIN_DEFINE(&weighted_plugin)
