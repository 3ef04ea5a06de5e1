/* siglip — pairwise sigmoid loss between two modalities' embeddings (Zhai et al. 2023). Each
 * row L2-normalised (unless normalize: false: raw dot products), a (B,D) and b (B,D):
 *   logits = exp(t)·a·bᵀ + bias          (B,B)
 *   z      = +1 on the diagonal (matching pairs), -1 elsewhere
 *   loss   = -Σ_ij log σ(z_ij·logits_ij) / B = Σ_ij softplus(-z_ij·logits_ij) / B
 * normalised by B, not B², as big_vision (sum over the last axis, mean over the first) and
 * open_clip's SigLipLoss (sum / B) do. t starts at ln 10, bias at -10 (the paper's values),
 * both learned without weight decay; t is kept in [0, ln 100] as open_clip clamps its scale.
 * The data's targets are ignored. Under `mpirun` both embeddings are gathered over the ranks
 * first (mf_gather_batch): z's +1 run along the whole batch's diagonal, and the sum and B are
 * the whole batch's. */
#include <mmfuse/mmfuse.h>

typedef struct siglip_state {
    int a, b;             /* the two modalities' indices in the data's order */
    mf_logit_scale scale; /* t; learned unless learn_scale is off             */
    mf_param *bias;       /* (1); NULL when not learned                       */
    float init_bias;
    int normalize;        /* cosine similarities (rows L2-normalised), else dot products */
} siglip_state;

static const mf_param_spec siglip_params[] = {
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "The two modalities to contrast; [] takes the two the data has."},
    {"init_scale", MF_TYPE_FLOAT, "2.302585092994046", 0, 0, 0, NULL,
     "t at the start: logits are exp(t)·cosine similarity + bias; ln 10 as in SigLIP."},
    {"init_bias", MF_TYPE_FLOAT, "-10", 0, 0, 0, NULL,
     "The bias at the start; -10 as in SigLIP, so that the many negatives start near 0."},
    {"learn_scale", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn t (kept within [0, ln 100]); false holds it at init_scale."},
    {"learn_bias", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn the bias; false holds it at init_bias."},
    {"normalize", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "L2-normalise both embeddings' rows (cosine similarities, as SigLIP); false: raw dot "
     "products a·bᵀ, times the same scale, plus the bias (retrieval then ranks by them too)."},
    MF_PARAM_END,
};

static int siglip_build_model(mf_module *self, const mf_config *cfg,
                              const mf_loss_build_args *args, mf_error *err)
{
    siglip_state *s = mf_module_state(self);
    double bias;
    int learn_bias, idx[2];
    if (mf_config_float(cfg, "init_bias", &bias, err) ||
        mf_config_bool(cfg, "learn_bias", &learn_bias, err) ||
        mf_config_bool(cfg, "normalize", &s->normalize, err) ||
        mf_loss_pick_modalities(cfg, args, "siglip contrasts", 2, idx, err) ||
        mf_loss_check_vectors(cfg, args, "siglip", 2, idx, err) ||
        mf_logit_scale_config(&s->scale, self, cfg, err))
        return -1;
    s->a = idx[0], s->b = idx[1];
    s->init_bias = (float)bias;
    if (learn_bias &&
        (s->bias = mf_module_param(self, "logit_bias", mf_shape1(1),
                                   (mf_init){MF_INIT_CONSTANT, s->init_bias, 0})))
        mf_param_set_flags(s->bias, MF_NO_DECAY); /* a failure is reported by the host */
    return 0;
}

static mf_node *siglip_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const siglip_state *s = mf_module_state(self);
    if (!in->embeddings[s->a] || !in->embeddings[s->b])
        return NULL;
    // under ranks, every rank's rows: the whole batch's B×B pairs, as in one process
    mf_node *ea = mf_gather_batch(g, in->embeddings[s->a]); // (B,D) each
    mf_node *eb = mf_gather_batch(g, in->embeddings[s->b]);
    if (!ea || !eb)
        return NULL;
    const int64_t B = mf_node_shape(ea)->dim[0];
    mf_node *bias = s->bias ? mf_param_node(g, s->bias)
                            : mf_constant(g, mf_shape1(1), s->init_bias); // (1)
    mf_node *scale = mf_logit_scale_forward(g, &s->scale);
    mf_node *sim = s->normalize ? mf_cosine_logits(g, ea, eb, scale)
                                : mf_mul(g, mf_matmul(g, ea, eb, 0, 1), scale); // (B,B)
    mf_node *logits = mf_add(g, sim, bias);                                // (B,B)
    mf_node *z = mf_add_scalar(g, mf_scale(g, mf_eye(g, B), 2), -1);       // (B,B) ±1
    mf_node *nll = mf_softplus(g, mf_scale(g, mf_mul(g, z, logits), -1));  // -log σ(z·l)
    return mf_scale(g, mf_sum_all(g, nll), 1.0f / (float)B);
}

static void siglip_declare_metrics(mf_module *self, mf_loss_metrics *out)
{
    out->n = 2;
    out->names[0] = "logit_scale"; /* exp(t) */
    out->names[1] = "logit_bias";
    out->higher_is_better[0] = out->higher_is_better[1] = 0;
}

static void siglip_batch_metrics(mf_module *self, const mf_loss_inputs *in, double *values)
{
    const siglip_state *s = mf_module_state(self);
    values[0] = mf_logit_scale_value(&s->scale);
    values[1] = s->bias ? (double)mf_param_value(s->bias)[0] : (double)s->init_bias;
}

static const mf_loss_ops siglip_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(siglip_state),
    .forward = siglip_forward,
    .build_model = siglip_build_model,
    .declare_metrics = siglip_declare_metrics,
    .batch_metrics = siglip_batch_metrics,
};

static const mf_plugin siglip_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "siglip",
    .version = "1.1.0",
    .license = "MIT",
    .summary = "Pairwise sigmoid loss (SigLIP) between two modalities' embeddings, with a "
               "learned scale and bias",
    .params = siglip_params,
    .ops = &siglip_ops,
};

MF_PLUGIN_DEFINE(&siglip_plugin)
