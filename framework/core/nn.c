/* Building blocks composed from graph ops: activations, linear, MLP, conv2d, layer norm,
 * embeddings, multi-head attention. They register parameters through their module, so
 * names follow the module path ("model.encoders.a.fc0.weight"). No backward code: the ops
 * have it. Issue 11: a linear layer is one `linear` node (bias inside the product, no
 * reshapes), and attention reads its heads through the products' strides (no permutes). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/nn.h>

#include "core_internal.h"

static const char *const activation_names[] = {"none", "relu", "tanh", "sigmoid", "gelu"};
_Static_assert(sizeof activation_names / sizeof activation_names[0] == MF_ACT_COUNT,
               "one name per activation");

const char *mf_activation_name(mf_activation a)
{
    return (unsigned)a < MF_ACT_COUNT ? activation_names[a] : NULL;
}

int mf_activation_parse(const char *name)
{
    for (int i = 0; i < MF_ACT_COUNT; i++)
        if (strcmp(name, activation_names[i]) == 0)
            return i;
    return -1;
}

mf_node *mf_activate(mf_graph *g, mf_node *x, mf_activation a)
{
    switch (a) {
    case MF_ACT_RELU: return mf_relu(g, x);
    case MF_ACT_TANH: return mf_tanh(g, x);
    case MF_ACT_SIGMOID: return mf_sigmoid(g, x);
    case MF_ACT_GELU: return mf_gelu(g, x);
    default: return x;
    }
}

/* "<name>.<suffix>" into key; a name too long to fit is cut (the parameter store then
 * refuses a duplicate, naming it). */
static const char *join(char *key, size_t size, const char *name, const char *suffix)
{
    int n = snprintf(key, size, "%s%s%s", name, *name ? "." : "", suffix);
    if (n < 0)
        key[0] = '\0';
    return key;
}

int mf_linear_init_with(mf_linear *l, mf_module *m, const char *name, int64_t in, int64_t out,
                        int bias, mf_init weight_init)
{
    char key[256];
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    /* stored (in,out), the transpose of PyTorch's: y = x·W runs OpenBLAS's NN kernel, ~10 %
     * faster than NT on this project's shapes (docs/performance.md), and a network's first
     * layer then needs no NT product at all. fan_in is given, as the shape reads reversed. */
    if (!weight_init.fan_in)
        weight_init.fan_in = in;
    l->weight = mf_module_param(m, join(key, sizeof key, name, "weight"), mf_shape2(in, out),
                                weight_init);
    if (!l->weight)
        return -1;
    if (bias) {
        mf_init bias_init = {MF_INIT_FAN_IN_UNIFORM, 1.0f, in};
        if (weight_init.kind != MF_INIT_FAN_IN_UNIFORM)
            bias_init = (mf_init){MF_INIT_ZEROS, 0, 0};
        l->bias = mf_module_param(m, join(key, sizeof key, name, "bias"), mf_shape1(out), bias_init);
        if (!l->bias)
            return -1;
        mf_param_set_flags(l->bias, MF_NO_DECAY); /* biases are not decayed (open_clip, timm) */
    }
    return 0;
}

int mf_linear_init(mf_linear *l, mf_module *m, const char *name, int64_t in, int64_t out,
                   int bias)
{
    return mf_linear_init_with(l, m, name, in, out, bias,
                               (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 0});
}

mf_node *mf_linear_forward(mf_graph *g, const mf_linear *l, mf_node *x)
{
    if (!x)
        return NULL;
    // x is (…,in): leading axes fold into rows; W is (in,out); y = x·W (+ b) is (…,out)
    const mf_shape *s = mf_node_shape(x);
    if (s->ndim >= 2 && s->dim[s->ndim - 1] == l->in) { // one node (ops_linalg.c, issue 11)
        mf_node *w = mf_param_node(g, l->weight);
        return mfi_linear(g, x, w, l->bias ? mf_param_node(g, l->bias) : NULL);
    }
    /* what does not fit goes the composed way, for its errors (matmul's, reshape's) */
    mf_node *rows = x;
    if (s->ndim > 2)
        rows = mf_reshape(g, x, mf_shape2(-1, l->in));
    mf_node *y = mf_matmul(g, rows, mf_param_node(g, l->weight), 0, 0);
    if (l->bias)
        y = mf_add(g, y, mf_param_node(g, l->bias));
    if (s->ndim > 2) {
        mf_shape out = *s;
        out.dim[out.ndim - 1] = l->out;
        y = mf_reshape(g, y, out);
    }
    return y;
}

int mf_mlp_init(mf_mlp *mlp, mf_module *m, const char *name, int n_sizes, const int64_t *sizes,
                mf_activation act)
{
    memset(mlp, 0, sizeof *mlp);
    if (n_sizes < 2 || n_sizes - 1 > MF_MLP_MAX_LAYERS)
        return -1;
    mlp->n_layers = n_sizes - 1;
    mlp->act = act;
    for (int i = 0; i < mlp->n_layers; i++) {
        char key[256], layer[32];
        snprintf(layer, sizeof layer, "fc%d", i);
        if (mf_linear_init(&mlp->layer[i], m, join(key, sizeof key, name, layer), sizes[i],
                           sizes[i + 1], 1))
            return -1;
    }
    return 0;
}

mf_node *mf_mlp_forward(mf_graph *g, const mf_mlp *mlp, mf_node *x)
{
    for (int i = 0; i < mlp->n_layers; i++) {
        x = mf_linear_forward(g, &mlp->layer[i], x);
        if (i + 1 < mlp->n_layers)
            x = mf_activate(g, x, mlp->act);
    }
    return x;
}

int mf_conv2d_layer_init(mf_conv2d_layer *c, mf_module *m, const char *name, int64_t in,
                         int64_t out, int kernel, int stride, int pad, int bias)
{
    char key[256];
    memset(c, 0, sizeof *c);
    c->in = in;
    c->out = out;
    c->kernel = kernel;
    c->stride = stride;
    c->pad = pad;
    c->weight = mf_module_param(m, join(key, sizeof key, name, "weight"),
                                mf_shape4(out, in, kernel, kernel),
                                (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 0});
    if (!c->weight)
        return -1;
    if (bias && !(c->bias = mf_module_param(m, join(key, sizeof key, name, "bias"), mf_shape1(out),
                                            (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f,
                                                      in * kernel * kernel})))
        return -1;
    if (c->bias)
        mf_param_set_flags(c->bias, MF_NO_DECAY);
    return 0;
}

mf_node *mf_conv2d_layer_forward(mf_graph *g, const mf_conv2d_layer *c, mf_node *x)
{
    return mf_conv2d(g, x, mf_param_node(g, c->weight),
                     c->bias ? mf_param_node(g, c->bias) : NULL, c->stride, c->pad);
}

int mf_layer_norm_layer_init(mf_layer_norm_layer *ln, mf_module *m, const char *name,
                             int64_t dim, float eps)
{
    char key[256];
    memset(ln, 0, sizeof *ln);
    ln->dim = dim;
    ln->eps = eps;
    ln->gamma = mf_module_param(m, join(key, sizeof key, name, "weight"), mf_shape1(dim),
                                (mf_init){MF_INIT_ONES, 0, 0});
    ln->beta = mf_module_param(m, join(key, sizeof key, name, "bias"), mf_shape1(dim),
                               (mf_init){MF_INIT_ZEROS, 0, 0});
    if (!ln->gamma || !ln->beta)
        return -1;
    mf_param_set_flags(ln->gamma, MF_NO_DECAY); /* norms are not decayed either */
    mf_param_set_flags(ln->beta, MF_NO_DECAY);
    return 0;
}

mf_node *mf_layer_norm_layer_forward(mf_graph *g, const mf_layer_norm_layer *ln, mf_node *x)
{
    return mf_layer_norm(g, x, mf_param_node(g, ln->gamma), mf_param_node(g, ln->beta), ln->eps);
}

int mf_embedding_layer_init(mf_embedding_layer *e, mf_module *m, const char *name, int64_t vocab,
                            int64_t dim)
{
    char key[256];
    e->vocab = vocab;
    e->dim = dim;
    e->weight = mf_module_param(m, join(key, sizeof key, name, "weight"), mf_shape2(vocab, dim),
                                (mf_init){MF_INIT_NORMAL, 1.0f, 0});
    return e->weight ? 0 : -1;
}

mf_node *mf_embedding_layer_forward(mf_graph *g, const mf_embedding_layer *e, mf_node *idx)
{
    return mf_embedding(g, mf_param_node(g, e->weight), idx);
}

int mf_attention_init(mf_attention *a, mf_module *m, const char *name, int64_t dim,
                      int64_t context_dim, int64_t heads, float dropout)
{
    char key[256];
    memset(a, 0, sizeof *a);
    if (heads < 1 || dim % heads != 0)
        return -1;
    a->dim = dim;
    a->context_dim = context_dim > 0 ? context_dim : dim;
    a->heads = heads;
    a->head_dim = dim / heads;
    a->dropout = dropout;
    const mf_init xavier = {MF_INIT_XAVIER_UNIFORM, 1.0f, 0};
    return mf_linear_init_with(&a->q, m, join(key, sizeof key, name, "q"), dim, dim, 1, xavier) ||
                   mf_linear_init_with(&a->k, m, join(key, sizeof key, name, "k"), a->context_dim,
                                       dim, 1, xavier) ||
                   mf_linear_init_with(&a->v, m, join(key, sizeof key, name, "v"), a->context_dim,
                                       dim, 1, xavier) ||
                   mf_linear_init_with(&a->o, m, join(key, sizeof key, name, "out"), dim, dim, 1,
                                       xavier)
               ? -1
               : 0;
}

mf_node *mf_attention_forward(mf_graph *g, const mf_attention *a, mf_node *x, mf_node *context,
                              mf_node *mask)
{
    if (!x)
        return NULL;
    if (!context)
        context = x;
    const int64_t H = a->heads;
    // q is (B,T,dim), k and v are (B,S,dim), read by the products as (B,H,T,d), (B,H,S,d)
    // through strides (mfi_bmm_heads): the heads' split and merge copy nothing (issue 11)
    mf_node *q = mf_linear_forward(g, &a->q, x);
    mf_node *k = mf_linear_forward(g, &a->k, context);
    mf_node *v = mf_linear_forward(g, &a->v, context);
    // scores are (B,H,T,S)
    mf_node *scores = mf_scale(g, mfi_bmm_heads(g, q, k, 0, 1, H, 1 | 2),
                               1.0f / sqrtf((float)a->head_dim));
    if (mask)
        scores = mf_masked_fill(g, scores, mask, -1e9f);
    mf_node *weights = mf_softmax(g, scores);
    if (a->dropout > 0)
        weights = mf_dropout(g, weights, a->dropout);
    // (B,H,T,S)·(B,H,S,d) stored back as (B,T,H·d) = (B,T,dim)
    return mf_linear_forward(g, &a->o, mfi_bmm_heads(g, weights, v, 0, 0, H, 2 | 4));
}
