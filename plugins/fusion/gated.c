/* gated — the gated multimodal unit (GMU, Arevalo et al. 2017) for M modalities:
 *   h_m = tanh(W_m x_m)                              (B,dim) per modality
 *   z   = softmax over m of (W_z [x_1;…;x_M] + b_z)  (B,dim,M): one gate per output unit
 *   out = Σ_m z_m ⊙ h_m                              (B,dim)
 * For M = 2 the softmax of two logits is σ(l_1 − l_2): the paper's sigmoid gate
 * z ⊙ h_1 + (1 − z) ⊙ h_2. The gate sees every modality, so it can let one modality
 * switch another on or off: a multiplicative interaction. */
#include <mmfuse/mmfuse.h>

#define MAX_IN MF_PROJECTIONS_MAX

typedef struct gated_state {
    int n;
    int64_t dim;
    mf_projections h; /* h.<modality>: D_m → dim, no bias */
    mf_linear gate;   /* ΣD_m → dim·M, column k·M + m is unit k's logit for m */
} gated_state;

static const mf_param_spec gated_params[] = {
    {"dim", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Width of the fused output."},
    MF_PARAM_END,
};

static int gated_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                       mf_shape *out, mf_error *err)
{
    gated_state *s = mf_module_state(self);
    if (mf_config_int(cfg, "dim", &s->dim, err))
        return -1;
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "gated fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    s->n = args->n_in;
    int64_t total = 0;
    for (int m = 0; m < s->n; m++)
        total += mf_shape_numel(&args->in[m]);
    if (mf_projections_init(&s->h, self, "h", s->n, args->in_names, args->in, s->dim,
                            MF_PROJ_NO_BIAS))
        return -1;
    if (mf_linear_init(&s->gate, self, "gate", total, s->dim * s->n, 1))
        return -1;
    *out = mf_shape1(s->dim);
    return 0;
}

static mf_node *gated_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    gated_state *s = mf_module_state(self);
    mf_node *x[MAX_IN], *h[MAX_IN];
    for (int m = 0; m < s->n; m++) {
        x[m] = mf_flatten(g, in[m]);                                   // (B,D_m)
        h[m] = mf_tanh(g, mf_projections_forward(g, &s->h, m, x[m])); // (B,dim)
    }
    mf_node *logits = mf_linear_forward(g, &s->gate, mf_concat(g, s->n, x)); // (B,dim·M)
    int64_t B = in[0] ? mf_node_shape(in[0])->dim[0] : 1;
    mf_node *z = mf_softmax(g, mf_reshape(g, logits, mf_shape3(B, s->dim, s->n))); // (B,dim,M)
    // hs is (B,M,dim) → (B,dim,M), beside z
    mf_node *hs = mf_reshape(g, mf_concat(g, s->n, h), mf_shape3(B, s->n, s->dim));
    return mf_sum(g, mf_mul(g, z, mf_transpose(g, hs, 1, 2)), 2, 0); // (B,dim)
}

static const mf_module_ops gated_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(gated_state),
    .build = gated_build,
    .forward = gated_forward,
};

static const mf_plugin gated_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "gated",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Gated multimodal unit (Arevalo et al. 2017): a softmax gate per unit over modalities",
    .params = gated_params,
    .ops = &gated_ops,
};

MF_PLUGIN_DEFINE(&gated_plugin)
