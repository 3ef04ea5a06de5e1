/* lowrank — low-rank multimodal fusion (LMF, Liu et al. 2018): tensor fusion followed by a
 * linear layer whose weight tensor is kept as a sum of r rank-1 terms, so the outer product
 * is never formed:
 *   out = Σ_{i=1..r} λ_i · Π_m ([1; z_m] W_m^(i)) + b       z_m (B,D_m) flattened
 * with factors W_m^(i) ((D_m+1) × dim), rank weights λ (r) and bias b (dim). Cost and
 * parameters grow as r·dim·Σ(D_m+1) instead of dim·Π(D_m+1). Any linear layer after TFN is
 * reproduced exactly once r reaches Π_{m<M}(D_m+1) (tests/test-fusion.c). */
#include <mmfuse/mmfuse.h>

#define MAX_IN MF_PROJECTIONS_MAX

typedef struct lowrank_state {
    int n;
    int64_t rank, dim;
    mf_projections factor;    /* (D_m+1, r·dim), no bias: column i·dim + k is W_m^(i)[:,k] */
    mf_param *lambda, *bias;  /* (1,r), (dim) */
} lowrank_state;

static const mf_param_spec lowrank_params[] = {
    {"rank", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Number r of rank-1 terms (at least 1)."},
    {"dim", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Width of the fused output."},
    MF_PARAM_END,
};

static int lowrank_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                         mf_shape *out, mf_error *err)
{
    lowrank_state *s = mf_module_state(self);
    if (mf_config_int(cfg, "rank", &s->rank, err) || mf_config_int(cfg, "dim", &s->dim, err))
        return -1;
    if (s->rank <= 0) {
        mf_config_error(err, mf_config_get(cfg, "rank"), "rank must be positive, got %lld",
                        (long long)s->rank);
        return -1;
    }
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "lowrank fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    s->n = args->n_in;
    /* Xavier-normal factors and rank weights as the authors' code; a zero bias */
    mf_init xavier = {MF_INIT_XAVIER_NORMAL, 1, 0}, zeros = {MF_INIT_ZEROS, 0, 0};
    if (mf_projections_init_with(&s->factor, self, "factor", s->n, args->in_names, args->in,
                                 s->rank * s->dim, MF_PROJ_NO_BIAS, xavier, 1))
        return -1;
    if (!(s->lambda = mf_module_param(self, "lambda", mf_shape2(1, s->rank), xavier)) ||
        !(s->bias = mf_module_param(self, "bias", mf_shape1(s->dim), zeros)))
        return -1;
    mf_param_set_flags(s->bias, MF_NO_DECAY);
    *out = mf_shape1(s->dim);
    return 0;
}

static mf_node *lowrank_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    lowrank_state *s = mf_module_state(self);
    mf_node *p = mf_projections_fold(g, &s->factor, in, mf_mul); // Π_m [1; z_m] W_m: (B,r·dim)
    int64_t B = in[0] ? mf_node_shape(in[0])->dim[0] : 1;
    // (B,r,dim) → (B,dim,r) → (B·dim,r), then the λ-weighted sum over r: (B·dim,1)
    p = mf_transpose(g, mf_reshape(g, p, mf_shape3(B, s->rank, s->dim)), 1, 2);
    p = mf_matmul(g, mf_reshape(g, p, mf_shape2(B * s->dim, s->rank)),
                  mf_param_node(g, s->lambda), 0, 1);
    return mf_add(g, mf_reshape(g, p, mf_shape2(B, s->dim)), mf_param_node(g, s->bias));
}

static const mf_module_ops lowrank_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(lowrank_state),
    .build = lowrank_build,
    .forward = lowrank_forward,
};

static const mf_plugin lowrank_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "lowrank",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Low-rank multimodal fusion (Liu et al. 2018): tensor fusion with rank-r factors",
    .params = lowrank_params,
    .ops = &lowrank_ops,
};

MF_PLUGIN_DEFINE(&lowrank_plugin)
