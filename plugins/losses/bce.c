/* bce — binary cross-entropy on the head's logits, one independent label per output
 * (torch.nn.BCEWithLogitsLoss, reduction 'mean'), in the stable softplus form:
 *   -[p_k·y·log σ(x) + (1-y)·log(1-σ(x))] = p_k·y·softplus(-x) + (1-y)·softplus(x)
 * averaged over the B·K elements; p_k is pos_weight (1 without it). Targets are multilabel
 * 0/1 rows (B,K); a binary problem is K = 1. */
#include <mmfuse/mmfuse.h>

#define BCE_MAX_OUTPUTS 4096

typedef struct bce_state {
    int64_t outputs;
    int weighted;
    float pos_weight[BCE_MAX_OUTPUTS];
} bce_state;

static const mf_param_spec bce_params[] = {
    {"pos_weight", MF_TYPE_FLOAT_LIST, "[]", MF_PARAM_MIN, 0, 0, NULL,
     "Weight of the positive term per output (K values, PyTorch's pos_weight); [] weighs all 1."},
    MF_PARAM_END,
};

static int bce_build_model(mf_module *self, const mf_config *cfg, const mf_loss_build_args *args,
                           mf_error *err)
{
    bce_state *s = mf_module_state(self);
    double w[BCE_MAX_OUTPUTS];
    int n;
    if (mf_config_float_list(cfg, "pos_weight", w, BCE_MAX_OUTPUTS, &n, err))
        return -1;
    s->weighted = n > 0;
    for (int k = 0; k < n; k++)
        s->pos_weight[k] = (float)w[k];
    if (args->n_modalities == 0) { /* built by mf_module_build_loss: told nothing to check */
        s->outputs = n;
        return 0;
    }
    if (args->target_kind != MF_TARGET_MULTILABEL) {
        const int classes = args->target_kind == MF_TARGET_CLASSES;
        mf_config_error(err, cfg, "bce takes 0/1 multilabel targets, but the data gives %s; use "
                        "loss type %s", classes ? "class labels" : "regression targets",
                        classes ? "cross_entropy" : "mse");
        return -1;
    }
    s->outputs = args->target_dim;
    if (!args->logits) {
        mf_config_error(err, cfg, "bce needs logits, but the model has no head; add one "
                        "(model.head: {type: mlp})");
        return -1;
    }
    if (args->logits->ndim != 1 || args->logits->dim[0] != s->outputs) {
        char buf[64];
        mf_config_error(err, cfg, "bce needs %lld logit%s (one per label), but the head outputs %s",
                        (long long)s->outputs, s->outputs == 1 ? "" : "s",
                        mf_shape_str(args->logits, buf, sizeof buf));
        return -1;
    }
    if (n > 0 && n != s->outputs) {
        mf_config_error(err, mf_config_get(cfg, "pos_weight"),
                        "pos_weight has %d values, but there are %lld labels", n,
                        (long long)s->outputs);
        return -1;
    }
    return 0;
}

static mf_node *bce_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const bce_state *s = mf_module_state(self);
    mf_node *x = in->logits, *y = in->target;
    if (!x || !y)
        return NULL;
    mf_node *neg = mf_softplus(g, x);                    // (B,K) -log(1-σ(x))
    if (!s->weighted)                                    // softplus(x) - y·x
        return mf_mean_all(g, mf_sub(g, neg, mf_mul(g, y, x)));
    mf_node *p = mf_constant_data(g, mf_shape2(1, s->outputs), s->pos_weight); // (1,K)
    mf_node *pos = mf_softplus(g, mf_scale(g, x, -1));   // (B,K) -log σ(x)
    mf_node *one_minus_y = mf_add_scalar(g, mf_scale(g, y, -1), 1);
    mf_node *l = mf_add(g, mf_mul(g, mf_mul(g, y, p), pos), mf_mul(g, one_minus_y, neg));
    return mf_mean_all(g, l);
}

static const mf_loss_ops bce_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(bce_state),
    .forward = bce_forward,
    .build_model = bce_build_model,
};

static const mf_plugin bce_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "bce",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Binary cross-entropy with logits for multilabel 0/1 targets, with pos_weight",
    .params = bce_params,
    .ops = &bce_ops,
};

MF_PLUGIN_DEFINE(&bce_plugin)
