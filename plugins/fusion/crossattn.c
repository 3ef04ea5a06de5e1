/* crossattn — MulT's crossmodal transformers (Tsai et al. 2019, "Multimodal Transformer for
 * Unaligned Multimodal Language Sequences"). Every modality m is projected to `dim`; for each
 * ordered pair (m ← s), s ≠ m, m's sequence attends to s's through `layers` pre-LN
 * cross-attention layers (queries from m, keys and values from s's projected sequence, s's
 * padding masked) and a final norm. m's outputs are concatenated over its sources along the
 * features, optionally run through `memory_layers` self-attention layers (MulT's memory
 * transformer), pooled over m's positions (masked mean, or the last valid position as MulT),
 * and the pooled vectors of all modalities are concatenated:
 *   M sequences (T_m,D_m) → (M·(M-1)·dim).
 * Parameters: model.fusion.<m>.proj (when D_m ≠ dim), model.fusion.<m>.from_<s>.layer<k>.…
 * and model.fusion.<m>.from_<s>.ln; model.fusion.<m>.memory.{layer<k>,ln}. */
#include <stdio.h>

#include <mmfuse/mmfuse.h>

#define MAX_MODALITIES 8
#define MAX_LAYERS 8

typedef struct pair_stack { // m ← s
    mf_transformer_layer layer[MAX_LAYERS];
    mf_layer_norm_layer ln;
} pair_stack;

typedef struct crossattn_state {
    int n, layers, memory, last; // last: pool the last valid position, not the masked mean
    int final_norm;              // a LayerNorm on each pair's (and the memory's) output
    int64_t dim;
    int projected[MAX_MODALITIES];
    mf_linear proj[MAX_MODALITIES];
    pair_stack pair[MAX_MODALITIES][MAX_MODALITIES - 1]; // [m][j]: j-th source of m
    pair_stack mem[MAX_MODALITIES];                      // over m's concatenated outputs
} crossattn_state;

static const mf_param_spec crossattn_params[] = {
    {"layers", MF_TYPE_INT, "2", MF_PARAM_MIN | MF_PARAM_MAX, 1, MAX_LAYERS, NULL,
     "Crossmodal attention layers of every ordered pair of modalities."},
    {"heads", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Attention heads; must divide the attention width."},
    {"dim", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "Width every modality is projected to (bias-free linear, MulT's Conv1d k=1); 0 keeps "
     "the modalities' common width."},
    {"mlp_ratio", MF_TYPE_FLOAT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 0, 16, NULL,
     "Hidden width of each layer's MLP, as a multiple of the attention width; 0: no MLP "
     "sublayer (the layers are x + attention alone)."},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL,
     "Dropout on attention weights and residual branches, in training."},
    {"memory_layers", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, MAX_LAYERS, NULL,
     "Self-attention layers over each target's concatenated outputs before pooling (MulT's "
     "memory transformer, 3 there)."},
    {"final_norm", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "A LayerNorm on each pair's output (MulT's); false passes the last layer's sum on."},
    {"pool", MF_TYPE_ENUM, "mean", 0, 0, 0, "mean|last",
     "Pool each target's positions: masked mean, or the last valid position (MulT)."},
    MF_PARAM_END,
};

/* A pre-LN layer; with mlp_ratio 0 its attention alone, x + attn(ln1(x), ln_ctx(context)),
 * with the parameters a full layer's attention has (fc1.weight NULL marks it). */
static int layer_init(mf_transformer_layer *l, mf_module *m, const char *name, int64_t dim,
                      int64_t context_dim, int64_t heads, double mlp_ratio, float dropout)
{
    if (mlp_ratio > 0)
        return mf_transformer_layer_init(l, m, name, dim, context_dim, heads, mlp_ratio, dropout);
    char key[200]; // l is in the state, which the host zeroed
    l->dim = dim;
    l->context_dim = context_dim;
    l->dropout = dropout;
    snprintf(key, sizeof key, "%s.ln1", name);
    if (mf_layer_norm_layer_init(&l->ln1, m, key, dim, 1e-5f))
        return -1;
    snprintf(key, sizeof key, "%s.ln_ctx", name);
    if (context_dim > 0 && mf_layer_norm_layer_init(&l->ln_ctx, m, key, context_dim, 1e-5f))
        return -1;
    snprintf(key, sizeof key, "%s.attn", name);
    return mf_attention_init(&l->attn, m, key, dim, context_dim, heads, dropout);
}

/* x (B,T,dim), context (B,S,·) or NULL, mask (B,S) non-zero = padding, or NULL */
static mf_node *layer_forward(mf_graph *g, const mf_transformer_layer *l, mf_node *x,
                              mf_node *context, mf_node *mask)
{
    if (l->fc1.weight || !x)
        return mf_transformer_layer_forward(g, l, x, context, mask);
    mf_node *key_mask = NULL; // (B,S) → (B,1,1,S)
    if (mask) {
        const mf_shape *ms = mf_node_shape(mask);
        key_mask = mf_reshape(g, mask, mf_shape4(ms->dim[0], 1, 1, ms->ndim > 1 ? ms->dim[1] : 1));
    }
    mf_node *ctx = context ? mf_layer_norm_layer_forward(g, &l->ln_ctx, context) : NULL;
    mf_node *h = mf_attention_forward(g, &l->attn, mf_layer_norm_layer_forward(g, &l->ln1, x),
                                      ctx, key_mask);
    if (l->dropout > 0 && mf_graph_training(g))
        h = mf_dropout(g, h, l->dropout);
    return mf_add(g, x, h);
}

static int build_pairs(crossattn_state *s, mf_module *self, const mf_build_args *args,
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
        for (int src = 0, j = 0; src < s->n; src++) {
            if (src == m)
                continue;
            pair_stack *p = &s->pair[m][j++];
            char name[160];
            for (int k = 0; k < s->layers; k++) {
                snprintf(name, sizeof name, "from_%s.layer%d", args->in_names[src], k);
                if (layer_init(&p->layer[k], mod, name, s->dim, s->dim, heads, mlp_ratio,
                               dropout))
                    return -1;
            }
            snprintf(name, sizeof name, "from_%s.ln", args->in_names[src]);
            if (s->final_norm && mf_layer_norm_layer_init(&p->ln, mod, name, s->dim, 1e-5f))
                return -1;
        }
        const int64_t width = (s->n - 1) * s->dim; // heads divide dim, so they divide width
        for (int k = 0; k < s->memory; k++) {
            char name[32];
            snprintf(name, sizeof name, "memory.layer%d", k);
            if (layer_init(&s->mem[m].layer[k], mod, name, width, 0, heads, mlp_ratio, dropout))
                return -1;
        }
        if (s->memory && s->final_norm &&
            mf_layer_norm_layer_init(&s->mem[m].ln, mod, "memory.ln", width, 1e-5f))
            return -1;
    }
    return 0;
}

static int crossattn_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                           mf_shape *out, mf_error *err)
{
    crossattn_state *s = mf_module_state(self);
    int64_t layers, memory, heads, dim;
    double mlp_ratio, dropout;
    if (mf_config_int(cfg, "layers", &layers, err) || mf_config_int(cfg, "heads", &heads, err) ||
        mf_config_int(cfg, "memory_layers", &memory, err) ||
        mf_config_int(cfg, "dim", &dim, err) ||
        mf_config_float(cfg, "mlp_ratio", &mlp_ratio, err) ||
        mf_config_float(cfg, "dropout", &dropout, err) ||
        mf_config_enum(cfg, "pool", "mean|last", &s->last, err) ||
        mf_config_bool(cfg, "final_norm", &s->final_norm, err) ||
        mf_fusion_sequences(cfg, args, "crossattn", MAX_MODALITIES, dim, &s->dim, err))
        return -1;
    if (s->dim % heads != 0) {
        mf_config_error(err, mf_config_get(cfg, "heads"),
                        "heads (%lld) must divide the attention width %lld", (long long)heads,
                        (long long)s->dim);
        return -1;
    }
    if (mlp_ratio > 0 && mlp_ratio * (double)s->dim < 0.5) {
        mf_config_error(err, mf_config_get(cfg, "mlp_ratio"),
                        "mlp_ratio %g leaves no hidden unit at width %lld", mlp_ratio,
                        (long long)s->dim);
        return -1;
    }
    s->n = args->n_in;
    s->layers = (int)layers;
    s->memory = (int)memory;
    if (build_pairs(s, self, args, heads, mlp_ratio, (float)dropout))
        return -1;
    *out = mf_shape1((int64_t)s->n * (s->n - 1) * s->dim);
    return 0;
}

/* x (B,T,D) → (B,D): the last position whose mask is zero (the last one without a mask). */
static mf_node *last_valid(mf_graph *g, mf_node *x, mf_node *mask)
{
    if (!x)
        return NULL;
    const mf_shape *s = mf_node_shape(x);
    const int64_t B = s->dim[0], T = s->dim[1], D = s->dim[2];
    if (!mask)
        return mf_reshape(g, mf_slice(g, x, 1, T - 1, 1), mf_shape2(B, D));
    // idx = max_t t·valid_t, (B,1): 0 for a sequence that is all padding
    mf_node *pos = mf_reshape(g, mf_arange(g, T), mf_shape2(1, T));
    mf_node *t = mf_masked_fill(g, mf_expand(g, pos, mf_shape2(B, T)), mask, 0.0f);
    mf_node *idx = mf_reshape(g, mf_max(g, t, 1, 1), mf_shape3(B, 1, 1));
    mf_node *picked = mf_gather(g, x, 1, mf_expand(g, idx, mf_shape3(B, 1, D))); // (B,1,D)
    return mf_reshape(g, picked, mf_shape2(B, D));
}

static mf_node *crossattn_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    crossattn_state *s = mf_module_state(self);
    mf_node *h[MAX_MODALITIES], *pooled[MAX_MODALITIES], *parts[MAX_MODALITIES - 1];
    for (int m = 0; m < s->n; m++) // in[m] is (B,T_m,D_m), h[m] (B,T_m,dim)
        h[m] = s->projected[m] ? mf_linear_forward(g, &s->proj[m], in[m]) : in[m];
    for (int m = 0; m < s->n; m++) {
        for (int src = 0, j = 0; src < s->n; src++) {
            if (src == m)
                continue;
            const pair_stack *p = &s->pair[m][j];
            mf_node *y = h[m]; // queries from m; keys and values stay s's projected sequence
            for (int k = 0; k < s->layers; k++)
                y = layer_forward(g, &p->layer[k], y, h[src], mf_node_mask(in[src]));
            parts[j++] = s->final_norm ? mf_layer_norm_layer_forward(g, &p->ln, y) : y;
        }
        // (B,T_m,(M-1)·dim) → (B,(M-1)·dim)
        mf_node *cat = mf_concat_axis(g, s->n - 1, parts, 2);
        mf_node *mask = mf_node_mask(in[m]);
        for (int k = 0; k < s->memory; k++)
            cat = layer_forward(g, &s->mem[m].layer[k], cat, NULL, mask);
        if (s->memory && s->final_norm)
            cat = mf_layer_norm_layer_forward(g, &s->mem[m].ln, cat);
        pooled[m] = s->last ? last_valid(g, cat, mask) : mf_masked_mean(g, cat, mask);
    }
    return mf_concat(g, s->n, pooled);
}

static const mf_module_ops crossattn_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(crossattn_state),
    .build = crossattn_build,
    .forward = crossattn_forward,
};

static const mf_plugin crossattn_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "crossattn",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "MulT crossmodal attention: each modality's sequence attends to every other's",
    .params = crossattn_params,
    .ops = &crossattn_ops,
};

MF_PLUGIN_DEFINE(&crossattn_plugin)
