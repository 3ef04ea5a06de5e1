/* cross_entropy — mean negative log-likelihood of the target class under softmax(logits). */
#include <mmfuse/mmfuse.h>

static const mf_param_spec cross_entropy_params[] = {MF_PARAM_END};

static int cross_entropy_build(mf_module *self, const mf_config *cfg, mf_error *err)
{
    return 0;
}

static mf_node *cross_entropy_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    return mf_cross_entropy(g, in->logits, in->target); // logits (B,K), target (B) → (1)
}

static const mf_loss_ops cross_entropy_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .build = cross_entropy_build,
    .forward = cross_entropy_forward,
};

static const mf_plugin cross_entropy_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "cross_entropy",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Softmax cross-entropy between the head's logits and the class labels",
    .params = cross_entropy_params,
    .ops = &cross_entropy_ops,
};

MF_PLUGIN_DEFINE(&cross_entropy_plugin)
