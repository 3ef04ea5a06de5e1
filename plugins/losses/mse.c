/* mse — mean squared error between the head's outputs and regression targets:
 *   loss = Σ_b Σ_k (x_bk - y_bk)² / (B·K)      (torch.nn.MSELoss, reduction 'mean') */
#include <mmfuse/mmfuse.h>

static const mf_param_spec mse_params[] = {MF_PARAM_END};

static int mse_build_model(mf_module *self, const mf_config *cfg, const mf_loss_build_args *args,
                           mf_error *err)
{
    if (args->n_modalities == 0) /* built by mf_module_build_loss: told nothing to check */
        return 0;
    if (args->target_kind != MF_TARGET_VALUES) {
        const int classes = args->target_kind == MF_TARGET_CLASSES;
        mf_config_error(err, cfg, "mse needs regression targets, but the data gives %s; use "
                        "loss type %s", classes ? "class labels" : "multilabel targets",
                        classes ? "cross_entropy" : "bce");
        return -1;
    }
    if (!args->logits) {
        mf_config_error(err, cfg, "mse compares the head's outputs with the targets, but the "
                        "model has no head; add one (model.head: {type: mlp})");
        return -1;
    }
    if (args->logits->ndim != 1 || args->logits->dim[0] != args->target_dim) {
        char buf[64];
        mf_config_error(err, cfg, "mse needs one output per target value (%lld), but the head "
                        "outputs %s", (long long)args->target_dim,
                        mf_shape_str(args->logits, buf, sizeof buf));
        return -1;
    }
    return 0;
}

static mf_node *mse_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    mf_node *x = in->logits, *y = in->target;
    if (!x || !y)
        return NULL;
    if (mf_node_shape(y)->ndim == 1) // (B) → (B,1): one value per sample
        y = mf_reshape(g, y, mf_shape2(mf_node_shape(y)->dim[0], 1));
    mf_node *d = mf_sub(g, x, y); // (B,K)
    return mf_mean_all(g, mf_mul(g, d, d));
}

static const mf_loss_ops mse_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .forward = mse_forward,
    .build_model = mse_build_model,
};

static const mf_plugin mse_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "mse",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Mean squared error between the head's outputs and regression targets",
    .params = mse_params,
    .ops = &mse_ops,
};

MF_PLUGIN_DEFINE(&mse_plugin)
