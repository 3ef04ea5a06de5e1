/* bottleneck — MBT, attention bottlenecks (Nagrani et al. 2021, "Attention Bottlenecks for
 * Multimodal Fusion"). Every modality runs its own stack of pre-LN self-attention layers over
 * its tokens (projected to `dim` when its width differs). Layers 0 … fusion_layer-1 are
 * separate; from fusion_layer on, n_b shared bottleneck tokens z (learned, expanded over the
 * batch) join every modality's sequence, and the modalities exchange information only
 * through them:
 *   [x_m ; ẑ_m] = layer_m,k([x_m ; z])   for every m,      z ← mean_m ẑ_m
 * After the last layer each modality is normalised and mean-pooled over its valid tokens;
 * the vectors are averaged (combine: mean → (dim)) or concatenated (concat → (M·dim)).
 * Parameters: model.fusion.bottleneck (1,n_b,dim), model.fusion.<m>.proj (when D_m ≠ dim),
 * model.fusion.<m>.layer<k>.…, model.fusion.<m>.ln. */
#include <stdio.h>

#include <mmfuse/mmfuse.h>

#define MAX_MODALITIES 16
#define MAX_LAYERS 12

typedef struct bottleneck_state {
    int n, layers, fusion_layer, concat;
    int64_t dim, n_b;
    int projected[MAX_MODALITIES];
    mf_linear proj[MAX_MODALITIES];
    mf_transformer_layer layer[MAX_MODALITIES][MAX_LAYERS];
    mf_layer_norm_layer ln[MAX_MODALITIES];
    mf_param *tokens; // (1,n_b,dim); NULL when no layer exchanges (fusion_layer = layers)
} bottleneck_state;

static const mf_param_spec bottleneck_params[] = {
    {"layers", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, MAX_LAYERS, NULL,
     "Self-attention layers of every modality's stack."},
    {"fusion_layer", MF_TYPE_INT, "2", MF_PARAM_MIN | MF_PARAM_MAX, 0, MAX_LAYERS, NULL,
     "First layer that shares the bottleneck tokens: 0 fuses from the start, `layers` "
     "never (late fusion)."},
    {"bottlenecks", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 256, NULL,
     "Number of shared bottleneck tokens."},
    {"heads", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Attention heads; must divide the attention width."},
    {"dim", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "Width of the tokens; a modality of another width is projected (bias-free linear); 0 "
     "keeps the modalities' common width."},
    {"mlp_ratio", MF_TYPE_FLOAT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 0.25, 16, NULL,
     "Hidden width of each layer's MLP, as a multiple of the attention width."},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL,
     "Dropout on attention weights and residual branches, in training."},
    {"combine", MF_TYPE_ENUM, "mean", 0, 0, 0, "mean|concat",
     "Join the modalities' pooled vectors: average them (dim) or concatenate them (M·dim)."},
    MF_PARAM_END,
};

static int build_stacks(bottleneck_state *s, mf_module *self, const mf_build_args *args,
                        int64_t heads, double mlp_ratio, float dropout)
{
    for (int m = 0; m < s->n; m++) {
        mf_module *mod = mf_module_child(self, args->in_names[m]); // model.fusion.<m>
        if (!mod)
            return -1;
        s->projected[m] = args->in[m].dim[1] != s->dim;
        if (s->projected[m] &&
            mf_linear_init(&s->proj[m], mod, "proj", args->in[m].dim[1], s->dim, 0))
            return -1;
        for (int k = 0; k < s->layers; k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d", k);
            if (mf_transformer_layer_init(&s->layer[m][k], mod, name, s->dim, 0, heads,
                                          mlp_ratio, dropout))
                return -1;
        }
        if (mf_layer_norm_layer_init(&s->ln[m], mod, "ln", s->dim, 1e-5f))
            return -1;
    }
    if (s->fusion_layer == s->layers)
        return 0;
    // ViT's token initialisation; tokens are not decayed
    s->tokens = mf_module_param(self, "bottleneck", mf_shape3(1, s->n_b, s->dim),
                                (mf_init){MF_INIT_TRUNC_NORMAL, 0.02f, 0});
    if (!s->tokens)
        return -1;
    mf_param_set_flags(s->tokens, MF_NO_DECAY);
    return 0;
}

static int bottleneck_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                            mf_shape *out, mf_error *err)
{
    bottleneck_state *s = mf_module_state(self);
    int64_t layers, fusion_layer, n_b, heads, dim;
    double mlp_ratio, dropout;
    if (mf_config_int(cfg, "layers", &layers, err) ||
        mf_config_int(cfg, "fusion_layer", &fusion_layer, err) ||
        mf_config_int(cfg, "bottlenecks", &n_b, err) || mf_config_int(cfg, "heads", &heads, err) ||
        mf_config_int(cfg, "dim", &dim, err) ||
        mf_config_float(cfg, "mlp_ratio", &mlp_ratio, err) ||
        mf_config_float(cfg, "dropout", &dropout, err) ||
        mf_config_enum(cfg, "combine", "mean|concat", &s->concat, err) ||
        mf_fusion_sequences(cfg, args, "bottleneck", MAX_MODALITIES, dim, &s->dim, err))
        return -1;
    if (fusion_layer > layers) {
        mf_config_error(err, mf_config_get(cfg, "fusion_layer"),
                        "fusion_layer (%lld) must be at most layers (%lld); fusion_layer = "
                        "layers is late fusion", (long long)fusion_layer, (long long)layers);
        return -1;
    }
    if (s->dim % heads != 0) {
        mf_config_error(err, mf_config_get(cfg, "heads"),
                        "heads (%lld) must divide the attention width %lld", (long long)heads,
                        (long long)s->dim);
        return -1;
    }
    if (mlp_ratio * (double)s->dim < 0.5) {
        mf_config_error(err, mf_config_get(cfg, "mlp_ratio"),
                        "mlp_ratio %g leaves no hidden unit at width %lld", mlp_ratio,
                        (long long)s->dim);
        return -1;
    }
    s->n = args->n_in;
    s->layers = (int)layers;
    s->fusion_layer = (int)fusion_layer;
    s->n_b = n_b;
    if (build_stacks(s, self, args, heads, mlp_ratio, (float)dropout))
        return -1;
    *out = mf_shape1(s->concat ? s->n * s->dim : s->dim);
    return 0;
}

/* One fusion layer k of every modality: h[m] (B,T_m,dim), z (B,n_b,dim) → new h[m], new z. */
static mf_node *exchange(mf_graph *g, const bottleneck_state *s, int k, mf_node **h,
                         mf_node *const *mask, mf_node *z)
{
    mf_node *sum = NULL;
    for (int m = 0; m < s->n; m++) {
        if (!h[m])
            return NULL;
        const mf_shape *hs = mf_node_shape(h[m]);
        const int64_t B = hs->dim[0], T = hs->dim[1];
        mf_node *x[2] = {h[m], z}, *km = NULL;
        if (mask[m]) { // bottleneck tokens are never padding
            mf_node *pad[2] = {mask[m], mf_constant(g, mf_shape2(B, s->n_b), 0.0f)};
            km = mf_concat_axis(g, 2, pad, 1);
        }
        // (B,T_m+n_b,dim): m's tokens, then the bottlenecks
        mf_node *y = mf_transformer_layer_forward(g, &s->layer[m][k], mf_concat_axis(g, 2, x, 1),
                                                  NULL, km);
        h[m] = mf_slice(g, y, 1, 0, T);
        mf_node *zm = mf_slice(g, y, 1, T, s->n_b);
        sum = sum ? mf_add(g, sum, zm) : zm;
    }
    return mf_scale(g, sum, 1.0f / (float)s->n);
}

static mf_node *bottleneck_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    bottleneck_state *s = mf_module_state(self);
    mf_node *h[MAX_MODALITIES], *mask[MAX_MODALITIES], *z = NULL;
    for (int m = 0; m < s->n; m++) { // in[m] is (B,T_m,D_m), h[m] (B,T_m,dim)
        if (!in[m])
            return NULL;
        h[m] = s->projected[m] ? mf_linear_forward(g, &s->proj[m], in[m]) : in[m];
        mask[m] = mf_node_mask(in[m]);
    }
    if (s->tokens) { // (1,n_b,dim) → (B,n_b,dim)
        const int64_t B = mf_node_shape(in[0])->dim[0];
        z = mf_expand(g, mf_param_node(g, s->tokens), mf_shape3(B, s->n_b, s->dim));
    }
    for (int k = 0; k < s->layers; k++) {
        if (k >= s->fusion_layer) {
            z = exchange(g, s, k, h, mask, z);
            continue;
        }
        for (int m = 0; m < s->n; m++)
            h[m] = mf_transformer_layer_forward(g, &s->layer[m][k], h[m], NULL, mask[m]);
    }
    mf_node *pooled[MAX_MODALITIES], *sum = NULL;
    for (int m = 0; m < s->n; m++) {
        pooled[m] = mf_masked_mean(g, mf_layer_norm_layer_forward(g, &s->ln[m], h[m]), mask[m]);
        sum = sum ? mf_add(g, sum, pooled[m]) : pooled[m];
    }
    return s->concat ? mf_concat(g, s->n, pooled) : mf_scale(g, sum, 1.0f / (float)s->n);
}

static const mf_module_ops bottleneck_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(bottleneck_state),
    .build = bottleneck_build,
    .forward = bottleneck_forward,
};

static const mf_plugin bottleneck_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "bottleneck",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "MBT attention bottlenecks: modalities exchange through a few shared tokens",
    .params = bottleneck_params,
    .ops = &bottleneck_ops,
};

MF_PLUGIN_DEFINE(&bottleneck_plugin)
