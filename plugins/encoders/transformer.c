/* transformer — a pre-LN transformer encoder (ViT, BERT-style) over one of three inputs:
 *   an image (C,H,W), cut into patch×patch patches embedded by a conv2d with kernel = stride
 *     = patch (ViT's patch embedding);
 *   token ids (T) (MF_IO_TOKENS), embedded by a table of the reader's vocabulary size;
 *   a sequence (T,D), projected to the width by a linear layer.
 * Then learned positions, an optional CLS token at position 0, `layers` transformer layers
 * and a final LayerNorm, and a pooling: the CLS token, the mean of the non-padding
 * positions, or none (the (T,width) sequence, with the input's padding mask passed on).
 * layers: 0 gives the embeddings alone (MBT builds its own layers on them). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include <mmfuse/mmfuse.h>

#define MAX_LAYERS 48
enum { IN_IMAGE, IN_TOKENS, IN_SEQUENCE };
enum { POOL_CLS, POOL_MEAN, POOL_NONE };

typedef struct transformer_state {
    int input, pool, n_layers, has_cls, patch, final_norm;
    int64_t width, positions; /* positions: T (patches or tokens) without the CLS token */
    float dropout;
    mf_conv2d_layer patch_embed; /* IN_IMAGE */
    mf_embedding_layer token_embed; /* IN_TOKENS: (vocab,width) */
    mf_linear in_proj;           /* IN_SEQUENCE */
    mf_param *pos, *cls;         /* (T,width), (1,1,width) */
    mf_transformer_layer layer[MAX_LAYERS];
    mf_layer_norm_layer ln_final;
    mf_linear out_proj;          /* out.weight NULL: no projection */
} transformer_state;

static const mf_param_spec transformer_params[] = {
    {"width", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Features per position inside the encoder (d_model)."},
    {"layers", MF_TYPE_INT, "2", MF_PARAM_MIN | MF_PARAM_MAX, 0, MAX_LAYERS, NULL,
     "Transformer layers; 0 gives the embeddings with positions alone."},
    {"heads", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Attention heads; they must divide width."},
    {"mlp_ratio", MF_TYPE_FLOAT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 0.25, 16, NULL,
     "Hidden width of each layer's MLP, as a multiple of width."},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL,
     "Dropout on the embeddings, the attention weights and the residual branches, in training."},
    {"pool", MF_TYPE_ENUM, "cls", 0, 0, 0, "cls|mean|none",
     "Output: the CLS token, the mean of the non-padding positions, or the whole sequence."},
    {"cls_token", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "Prepend a learned CLS token (always there with pool: cls; kept at position 0 by none)."},
    {"patch", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL,
     "Image inputs: side of the square patches, which must divide the image's height and width."},
    {"final_norm", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "A LayerNorm after the last layer (ViT's); false ends at the last layer's residual sum."},
    {"out", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1 << 24, NULL,
     "A final linear projection to this many features; 0: none (a head takes the class count)."},
    MF_PARAM_END,
};

/* The ABI 1.1 fields of args, or none from a 1.0 host. */
#define HAS_FIELD(args, f) ((args)->struct_size >= offsetof(mf_build_args, f) + sizeof((args)->f))

static mf_param *no_decay(mf_param *p)
{
    if (p)
        mf_param_set_flags(p, MF_NO_DECAY);
    return p;
}

/* The input's embedding: which kind it is, its parameters, s->positions. */
static int build_embedding(transformer_state *s, mf_module *self, const mf_config *cfg,
                           const mf_build_args *args, mf_error *err)
{
    const mf_shape *in = &args->in[0];
    const uint32_t flags = HAS_FIELD(args, in_flags) && args->in_flags ? args->in_flags[0] : 0;
    const int64_t vocab = HAS_FIELD(args, in_vocab) && args->in_vocab ? args->in_vocab[0] : 0;
    char shape[64];
    if ((flags & MF_IO_TOKENS) && in->ndim == 1) {
        if (vocab < 1) {
            mf_config_error(err, cfg, "token input '%s' needs the reader's vocabulary size, and "
                            "none was given", args->in_names[0]);
            return -1;
        }
        s->input = IN_TOKENS;
        s->positions = in->dim[0];
        /* N(0,1) rows as nn.Embedding; BERT's σ = 0.02 starts the residual stream ~50× smaller
         * than the other inputs do, and the first LayerNorm ~50× more sensitive */
        return mf_embedding_layer_init(&s->token_embed, self, "token_embed", vocab, s->width);
    }
    if (in->ndim == 2) {
        s->input = IN_SEQUENCE;
        s->positions = in->dim[0];
        return mf_linear_init(&s->in_proj, self, "in_proj", in->dim[1], s->width, 1);
    }
    if (in->ndim == 3) {
        if (in->dim[1] % s->patch || in->dim[2] % s->patch) {
            mf_config_error(err, mf_config_get(cfg, "patch"),
                            "patch %d does not divide the %lldx%lld images of '%s'", s->patch,
                            (long long)in->dim[1], (long long)in->dim[2], args->in_names[0]);
            return -1;
        }
        s->input = IN_IMAGE;
        s->positions = (in->dim[1] / s->patch) * (in->dim[2] / s->patch);
        return mf_conv2d_layer_init(&s->patch_embed, self, "patch_embed", in->dim[0], s->width,
                                    s->patch, s->patch, 0, 1);
    }
    mf_config_error(err, cfg, "transformer takes images (C,H,W), token ids (T) or sequences "
                    "(T,D), but '%s' has shape %s%s", args->in_names[0],
                    mf_shape_str(in, shape, sizeof shape),
                    in->ndim == 1 ? " and is not a token input" : "");
    return -1;
}

static int read_params(transformer_state *s, const mf_config *cfg, int64_t *heads,
                       double *ratio, int64_t *out, mf_error *err)
{
    int64_t layers, patch;
    double dropout;
    if (mf_config_int(cfg, "width", &s->width, err) || mf_config_int(cfg, "layers", &layers, err) ||
        mf_config_int(cfg, "heads", heads, err) || mf_config_float(cfg, "mlp_ratio", ratio, err) ||
        mf_config_float(cfg, "dropout", &dropout, err) ||
        mf_config_enum(cfg, "pool", "cls|mean|none", &s->pool, err) ||
        mf_config_bool(cfg, "cls_token", &s->has_cls, err) ||
        mf_config_bool(cfg, "final_norm", &s->final_norm, err) ||
        mf_config_int(cfg, "patch", &patch, err) || mf_config_int(cfg, "out", out, err))
        return -1;
    s->n_layers = (int)layers;
    s->patch = (int)patch;
    s->dropout = (float)dropout;
    s->has_cls |= s->pool == POOL_CLS;
    if (llround(*ratio * (double)s->width) < 1) {
        mf_config_error(err, mf_config_get(cfg, "mlp_ratio"),
                        "mlp_ratio %g leaves no hidden features at width %lld", *ratio,
                        (long long)s->width);
        return -1;
    }
    if (s->width % *heads) {
        mf_config_error(err, mf_config_get(cfg, "heads"), "heads (%lld) must divide width (%lld)",
                        (long long)*heads, (long long)s->width);
        return -1;
    }
    return 0;
}

static int transformer_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                             mf_shape *out, mf_error *err)
{
    transformer_state *s = mf_module_state(self);
    int64_t heads, out_features;
    double ratio;
    if (read_params(s, cfg, &heads, &ratio, &out_features, err) ||
        build_embedding(s, self, cfg, args, err))
        return -1;
    if (out_features == 0)
        out_features = args->out_features;
    if (args->out_features && (out_features != args->out_features || s->pool == POOL_NONE)) {
        mf_config_error(err, cfg, "this use needs %lld output features per sample: set 'out' "
                        "to it and pool to cls or mean", (long long)args->out_features);
        return -1;
    }
    const int64_t T = s->positions + s->has_cls;
    if (!(s->pos = no_decay(mf_module_param(self, "pos", mf_shape2(T, s->width),
                                            (mf_init){MF_INIT_TRUNC_NORMAL, 0.02f, 0}))))
        return -1;
    if (s->has_cls && !(s->cls = no_decay(mf_module_param(self, "cls", mf_shape3(1, 1, s->width),
                                                          (mf_init){MF_INIT_TRUNC_NORMAL,
                                                                    0.02f, 0}))))
        return -1;
    for (int i = 0; i < s->n_layers; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d", i);
        if (mf_transformer_layer_init(&s->layer[i], self, name, s->width, 0, heads, ratio,
                                      s->dropout))
            return -1;
    }
    if (s->n_layers && s->final_norm &&
        mf_layer_norm_layer_init(&s->ln_final, self, "ln_final", s->width, 1e-5f))
        return -1;
    if (out_features && mf_linear_init(&s->out_proj, self, "out", s->width, out_features, 1))
        return -1;
    const int64_t width = out_features ? out_features : s->width;
    if (s->pool != POOL_NONE) {
        *out = mf_shape1(width);
        return 0;
    }
    *out = mf_shape2(T, width);
    const uint32_t in_flags = HAS_FIELD(args, in_flags) && args->in_flags ? args->in_flags[0] : 0;
    if (HAS_FIELD(args, out_flags) && args->out_flags)
        *args->out_flags = MF_IO_SEQUENCE | (s->input != IN_IMAGE ? in_flags & MF_IO_MASKED : 0);
    return 0;
}

/* in (B,…) → (B,T,width) with positions (and the CLS token); *mask extended to match. */
static mf_node *embed(transformer_state *s, mf_graph *g, mf_node *in, mf_node **mask)
{
    const int64_t B = mf_node_shape(in)->dim[0];
    mf_node *x;
    if (s->input == IN_IMAGE) { // (B,C,H,W) → (B,width,H/p,W/p) → (B,N,width)
        x = mf_conv2d_layer_forward(g, &s->patch_embed, in);
        x = mf_transpose(g, mf_reshape(g, x, mf_shape3(B, s->width, s->positions)), 1, 2);
    } else if (s->input == IN_TOKENS) {
        x = mf_embedding_layer_forward(g, &s->token_embed, in); // (B,T) → (B,T,width)
    } else {
        x = mf_linear_forward(g, &s->in_proj, in);
    }
    if (s->has_cls) { // CLS (1,1,width) → (B,1,width) at position 0; it is never padding
        mf_node *parts[2] = {mf_expand(g, mf_param_node(g, s->cls), mf_shape3(B, 1, s->width)), x};
        x = mf_concat_axis(g, 2, parts, 1);
        if (*mask) {
            mf_node *m[2] = {mf_constant(g, mf_shape2(B, 1), 0.0f), *mask};
            *mask = mf_concat_axis(g, 2, m, 1);
        }
    }
    x = mf_add(g, x, mf_param_node(g, s->pos)); // (B,T,width) + (T,width)
    return s->dropout > 0 ? mf_dropout(g, x, s->dropout) : x;
}

static mf_node *transformer_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    transformer_state *s = mf_module_state(self);
    mf_node *mask = s->input == IN_IMAGE ? NULL : mf_node_mask(in[0]);
    mf_node *x = embed(s, g, in[0], &mask);
    for (int i = 0; i < s->n_layers; i++)
        x = mf_transformer_layer_forward(g, &s->layer[i], x, NULL, mask);
    if (s->n_layers && s->final_norm)
        x = mf_layer_norm_layer_forward(g, &s->ln_final, x);
    if (!x)
        return NULL;
    const int64_t B = mf_node_shape(x)->dim[0];
    if (s->pool == POOL_CLS)
        x = mf_reshape(g, mf_slice(g, x, 1, 0, 1), mf_shape2(B, s->width));
    else if (s->pool == POOL_MEAN) // the tokens only: CLS (position 0) left out
        x = mf_masked_mean(g, s->has_cls ? mf_slice(g, x, 1, 1, s->positions) : x,
                           mask && s->has_cls ? mf_slice(g, mask, 1, 1, s->positions) : mask);
    if (s->out_proj.weight)
        x = mf_linear_forward(g, &s->out_proj, x);
    if (s->pool == POOL_NONE && mask)
        mf_node_set_mask(x, mask);
    return x;
}

static const mf_module_ops transformer_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(transformer_state),
    .build = transformer_build,
    .forward = transformer_forward,
};

static const mf_plugin transformer_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_ENCODER,
    .name = "transformer",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Pre-LN transformer encoder over image patches, token ids or sequences, pooled "
               "by a CLS token or a masked mean, or kept as a sequence",
    .params = transformer_params,
    .ops = &transformer_ops,
};

MF_PLUGIN_DEFINE(&transformer_plugin)
