/* The pre-LN transformer layer (ViT, GPT-2): attention and an MLP, each on a normalised copy
 * of the residual stream and added back. Composed from nn.c's blocks; no backward code. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/nn.h>

/* "<name>.<suffix>" into key. */
static const char *join(char *key, size_t size, const char *name, const char *suffix)
{
    snprintf(key, size, "%s%s%s", name, *name ? "." : "", suffix);
    return key;
}

int mf_transformer_layer_init(mf_transformer_layer *l, mf_module *m, const char *name,
                              int64_t dim, int64_t context_dim, int64_t heads, double mlp_ratio,
                              float dropout)
{
    char key[256];
    memset(l, 0, sizeof *l);
    const int64_t hidden = (int64_t)llround(mlp_ratio * (double)dim);
    if (dim < 1 || context_dim < 0 || heads < 1 || dim % heads != 0 || hidden < 1)
        return -1;
    l->dim = dim;
    l->context_dim = context_dim;
    l->dropout = dropout;
    /* eps 1e-5: PyTorch's LayerNorm default, as nn.TransformerEncoderLayer uses */
    if (mf_layer_norm_layer_init(&l->ln1, m, join(key, sizeof key, name, "ln1"), dim, 1e-5f) ||
        (context_dim > 0 &&
         mf_layer_norm_layer_init(&l->ln_ctx, m, join(key, sizeof key, name, "ln_ctx"),
                                  context_dim, 1e-5f)) ||
        mf_attention_init(&l->attn, m, join(key, sizeof key, name, "attn"), dim, context_dim,
                          heads, dropout) ||
        mf_layer_norm_layer_init(&l->ln2, m, join(key, sizeof key, name, "ln2"), dim, 1e-5f) ||
        mf_linear_init(&l->fc1, m, join(key, sizeof key, name, "fc1"), dim, hidden, 1) ||
        mf_linear_init(&l->fc2, m, join(key, sizeof key, name, "fc2"), hidden, dim, 1))
        return -1;
    return 0;
}

static mf_node *residual_dropout(mf_graph *g, const mf_transformer_layer *l, mf_node *x)
{
    return l->dropout > 0 && mf_graph_training(g) ? mf_dropout(g, x, l->dropout) : x;
}

mf_node *mf_transformer_layer_forward(mf_graph *g, const mf_transformer_layer *l, mf_node *x,
                                      mf_node *context, mf_node *mask)
{
    if (!x)
        return NULL;
    // mask (B,S) → (B,1,1,S): one row of key padding for every head and query (a mask
    // already broadcastable to (B,heads,T,S) passes as it is)
    mf_node *key_mask = mask;
    if (mask && mf_node_shape(mask)->ndim == 2) {
        const mf_shape *ms = mf_node_shape(mask);
        if (!(key_mask = mf_reshape(g, mask, mf_shape4(ms->dim[0], 1, 1, ms->dim[1]))))
            return NULL;
    }
    // x is (B,T,dim); context (B,S,context_dim) gets its own norm (ln1 when built without)
    mf_node *h = mf_layer_norm_layer_forward(g, &l->ln1, x);
    mf_node *ctx = NULL;
    if (context) {
        ctx = mf_layer_norm_layer_forward(g, l->context_dim > 0 ? &l->ln_ctx : &l->ln1, context);
        if (!ctx)
            return NULL;
    }
    h = mf_attention_forward(g, &l->attn, h, ctx, key_mask);
    x = mf_add(g, x, residual_dropout(g, l, h));
    // MLP branch: (B,T,dim) → (B,T,hidden) → (B,T,dim)
    h = mf_linear_forward(g, &l->fc1, mf_layer_norm_layer_forward(g, &l->ln2, x));
    h = mf_linear_forward(g, &l->fc2, mf_gelu(g, h));
    return mf_add(g, x, residual_dropout(g, l, h));
}
