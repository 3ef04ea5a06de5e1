/* bag — a bag of words: the mean of a caption's token embeddings, padding left out
 * (PyTorch's EmbeddingBag with mode "mean"), optionally projected. Word order is lost by
 * design: the baseline a sequence encoder has to beat on order- and binding-sensitive data. */
#include <stddef.h>

#include <mmfuse/mmfuse.h>

typedef struct bag_state {
    mf_embedding_layer embed;
    mf_linear proj; /* weight NULL: no projection */
} bag_state;

static const mf_param_spec bag_params[] = {
    {"width", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Features of each token embedding."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "A linear projection of the mean to this many features; 0: none (a head takes the class "
     "count)."},
    MF_PARAM_END,
};

#define HAS_FIELD(args, f) ((args)->struct_size >= offsetof(mf_build_args, f) + sizeof((args)->f))

static int bag_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                     mf_shape *out, mf_error *err)
{
    bag_state *s = mf_module_state(self);
    int64_t width, out_features;
    char shape[64];
    if (mf_config_int(cfg, "width", &width, err) || mf_config_int(cfg, "out", &out_features, err))
        return -1;
    const uint32_t flags = HAS_FIELD(args, in_flags) && args->in_flags ? args->in_flags[0] : 0;
    const int64_t vocab = HAS_FIELD(args, in_vocab) && args->in_vocab ? args->in_vocab[0] : 0;
    if (!(flags & MF_IO_TOKENS) || args->in[0].ndim != 1) {
        mf_config_error(err, cfg, "bag takes token ids (T), but '%s' has shape %s%s",
                        args->in_names[0], mf_shape_str(&args->in[0], shape, sizeof shape),
                        args->in[0].ndim == 1 ? " and is not a token input" : "");
        return -1;
    }
    if (vocab < 1) {
        mf_config_error(err, cfg, "token input '%s' needs the reader's vocabulary size, and "
                        "none was given", args->in_names[0]);
        return -1;
    }
    if (out_features == 0)
        out_features = args->out_features;
    if (args->out_features && out_features != args->out_features) {
        mf_config_error(err, mf_config_get(cfg, "out"),
                        "out is %lld, but this module must output %lld features",
                        (long long)out_features, (long long)args->out_features);
        return -1;
    }
    if (mf_embedding_layer_init(&s->embed, self, "embed", vocab, width) ||
        (out_features && mf_linear_init(&s->proj, self, "proj", width, out_features, 1)))
        return -1;
    *out = mf_shape1(out_features ? out_features : width);
    return 0;
}

static mf_node *bag_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    bag_state *s = mf_module_state(self);
    // ids (B,T) → embeddings (B,T,width) → (B,width) → (B,out)
    mf_node *x = mf_masked_mean(g, mf_embedding_layer_forward(g, &s->embed, in[0]),
                                mf_node_mask(in[0]));
    return s->proj.weight ? mf_linear_forward(g, &s->proj, x) : x;
}

static const mf_module_ops bag_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(bag_state),
    .build = bag_build,
    .forward = bag_forward,
};

static const mf_plugin bag_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "bag",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Bag of words: the mean of the token embeddings, padding left out",
    .params = bag_params,
    .ops = &bag_ops,
};

MF_PLUGIN_DEFINE(&bag_plugin)
