/* @NAME@ — a loss for mmfuse: cross-entropy with label smoothing (Szegedy et al. 2016),
 * (1-ε)·(-log p_y) + ε·mean_k(-log p_k), averaged over the batch.
 *
 * Build:  cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) @NAME@.c -o @NAME@.so
 * Check:  mmfuse check-plugin ./@NAME@.so
 * Run:    MMFUSE_PLUGIN_PATH=. mmfuse run @NAME@.yaml
 * No backward code: the ops of <mmfuse/graph.h> differentiate themselves. */
#include <mmfuse/mmfuse.h>

typedef struct @NAME@_state {
    float smoothing;
} @NAME@_state;

static const mf_param_spec @NAME@_params[] = {
    {"smoothing", MF_TYPE_FLOAT, "0.1", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability mass ε spread uniformly over the classes."},
    MF_PARAM_END,
};

/* ABI 1.1: build_model is told the model's outputs (emb.<m>, fused, logits: shapes per
 * sample, NULL when absent) and the target, and refuses what the loss cannot use — with one
 * located sentence, which check-plugin prints as a SKIP line for that input profile. */
static int @NAME@_build_model(mf_module *self, const mf_config *cfg,
                              const mf_loss_build_args *args, mf_error *err)
{
    @NAME@_state *s = mf_module_state(self);
    double smoothing;
    if (mf_config_float(cfg, "smoothing", &smoothing, err))
        return -1;
    s->smoothing = (float)smoothing;
    if (args->target_kind != MF_TARGET_CLASSES) {
        mf_config_error(err, cfg, "@NAME@ needs class labels, but the data gives %s",
                        args->target_kind == MF_TARGET_VALUES ? "regression targets"
                                                              : "multilabel targets");
        return -1;
    }
    if (!args->logits || args->logits->ndim != 1 || args->logits->dim[0] != args->target_dim) {
        mf_config_error(err, cfg, "@NAME@ needs a head with one output per class (%lld)",
                        (long long)args->target_dim);
        return -1;
    }
    return 0;
}

static mf_node *@NAME@_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    @NAME@_state *s = mf_module_state(self);
    mf_node *logp = mf_log_softmax(g, in->logits);                     // (B,K)
    mf_node *nll = mf_nll(g, logp, in->target);                         // (1)
    mf_node *uniform = mf_scale(g, mf_mean_all(g, logp), -1.0f);        // (1)
    return mf_add(g, mf_scale(g, nll, 1.0f - s->smoothing), mf_scale(g, uniform, s->smoothing));
}

static const mf_loss_ops @NAME@_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(@NAME@_state),
    .forward = @NAME@_forward,
    .build_model = @NAME@_build_model, /* instead of build (ABI 1.0's, told only cfg) */
};

static const mf_plugin @NAME@_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "@NAME@",
    .version = "0.1.0",
    .license = "MIT",
    .summary = "Cross-entropy with label smoothing",
    .params = @NAME@_params,
    .ops = &@NAME@_ops,
};

MF_PLUGIN_DEFINE(&@NAME@_plugin)
