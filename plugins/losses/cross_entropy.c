/* cross_entropy — mean negative log-likelihood of the target class under softmax(logits),
 * with PyTorch's label smoothing and class weights (torch.nn.functional.cross_entropy):
 *   loss = (1-ε)·Σ_b w_y·(-log p_b,y) / Σ_b w_y + (ε/K)·Σ_b Σ_k w_k·(-log p_b,k) / Σ_b w_y
 * (w = 1 without weights, so both denominators are B). */
#include <mmfuse/mmfuse.h>

#define CE_MAX_CLASSES 4096

typedef struct ce_state {
    float smoothing;
    int64_t classes;
    int weighted;
    float weight[CE_MAX_CLASSES];
} ce_state;

static const mf_param_spec cross_entropy_params[] = {
    {"label_smoothing", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "ε: the target becomes (1-ε)·one-hot + ε/K (PyTorch's label_smoothing)."},
    {"class_weights", MF_TYPE_FLOAT_LIST, "[]", MF_PARAM_MIN, 0, 0, NULL,
     "One weight per class (K values); the mean is weighted, Σ w_y·nll / Σ w_y. [] weighs all 1."},
    MF_PARAM_END,
};

static const char *target_name(int32_t kind)
{
    return kind == MF_TARGET_VALUES ? "regression targets" : "multilabel targets";
}

/* The parameters alone; s->classes holds the number of weights until build_model checks it. */
static int cross_entropy_params_read(mf_module *self, const mf_config *cfg, mf_error *err)
{
    ce_state *s = mf_module_state(self);
    double eps, w[CE_MAX_CLASSES];
    int n;
    if (mf_config_float(cfg, "label_smoothing", &eps, err) ||
        mf_config_float_list(cfg, "class_weights", w, CE_MAX_CLASSES, &n, err))
        return -1;
    s->smoothing = (float)eps;
    s->weighted = n > 0;
    s->classes = n;
    for (int k = 0; k < n; k++)
        s->weight[k] = (float)w[k];
    return 0;
}

static int cross_entropy_build_model(mf_module *self, const mf_config *cfg,
                                     const mf_loss_build_args *args, mf_error *err)
{
    ce_state *s = mf_module_state(self);
    if (cross_entropy_params_read(self, cfg, err))
        return -1;
    if (args->n_modalities == 0) /* built by mf_module_build_loss: told nothing to check */
        return 0;
    if (args->target_kind != MF_TARGET_CLASSES) {
        mf_config_error(err, cfg, "cross_entropy needs class labels, but the data gives %s; "
                        "use loss type %s", target_name(args->target_kind),
                        args->target_kind == MF_TARGET_VALUES ? "mse" : "bce");
        return -1;
    }
    if (!args->logits && !args->fused) {
        mf_config_error(err, cfg, "cross_entropy needs class logits, and with `fusion: none` "
                        "the model has none; choose a fusion (a head follows it), or a "
                        "contrastive loss such as clip");
        return -1;
    }
    if (!args->logits) {
        mf_config_error(err, cfg, "cross_entropy needs class logits, but the model has no head; "
                        "add one (model.head: {type: mlp})");
        return -1;
    }
    const int64_t K = args->target_dim;
    if (args->logits->ndim != 1 || args->logits->dim[0] != K) {
        char buf[64];
        mf_config_error(err, cfg, "cross_entropy needs one logit per class (%lld), but the head "
                        "outputs %s", (long long)K, mf_shape_str(args->logits, buf, sizeof buf));
        return -1;
    }
    if (s->weighted && s->classes != K) {
        mf_config_error(err, mf_config_get(cfg, "class_weights"),
                        "class_weights has %lld values, but the data has %lld classes",
                        (long long)s->classes, (long long)K);
        return -1;
    }
    return 0;
}

/* Weighted and/or smoothed: lp (B,K) log-probabilities, y (B) class ids → (1).
 * mf_nll picks X[b,y_b], so B·nll(lp⊙w) = Σ_b w_y·(-log p_b,y) and -B·nll(w) = Σ_b w_y. */
static mf_node *ce_general(const ce_state *s, mf_graph *g, mf_node *lp, mf_node *y)
{
    if (!lp || !y)
        return NULL;
    const int64_t B = mf_node_shape(lp)->dim[0], K = mf_node_shape(lp)->dim[1];
    const float e = s->smoothing;
    if (!s->weighted) // (1-ε)·nll - ε·mean_b,k log p_b,k
        return mf_add(g, mf_scale(g, mf_nll(g, lp, y), 1.0f - e),
                      mf_scale(g, mf_mean_all(g, lp), -e));
    mf_node *w = mf_constant_data(g, mf_shape2(1, s->classes), s->weight); // (1,K)
    mf_node *wlp = mf_mul(g, lp, w);                                        // (B,K)
    mf_node *num = mf_scale(g, mf_nll(g, wlp, y), (1.0f - e) * (float)B);
    if (e > 0)
        num = mf_add(g, num, mf_scale(g, mf_sum_all(g, wlp), -e / (float)K));
    mf_node *den = mf_scale(g, mf_nll(g, mf_expand(g, w, mf_shape2(B, K)), y), -(float)B);
    return mf_div(g, num, den);
}

static mf_node *cross_entropy_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const ce_state *s = mf_module_state(self);
    if (s->smoothing == 0 && !s->weighted) // the 1.0 numbers, unchanged
        return mf_cross_entropy(g, in->logits, in->target); // logits (B,K), target (B) → (1)
    return ce_general(s, g, mf_log_softmax(g, in->logits), in->target);
}

static const mf_loss_ops cross_entropy_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(ce_state),
    .forward = cross_entropy_forward,
    .build_model = cross_entropy_build_model,
};

static const mf_plugin cross_entropy_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "cross_entropy",
    .version = "1.1.0",
    .license = "MIT",
    .summary = "Softmax cross-entropy between the head's logits and the class labels, with label "
               "smoothing and class weights",
    .params = cross_entropy_params,
    .ops = &cross_entropy_ops,
};

MF_PLUGIN_DEFINE(&cross_entropy_plugin)
