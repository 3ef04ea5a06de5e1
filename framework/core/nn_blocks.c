/* Blocks shared by plugins (nn.h): flattening, [1; x], the masked mean over a sequence,
 * per-modality projections, a contrastive loss's logit scale and cosine logits. Composed
 * from graph ops (no backward code). The blocks that read a config or a plugin's build
 * arguments sit a layer up, in framework/plugin/plugin_blocks.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

mf_node *mf_flatten(mf_graph *g, mf_node *x)
{
    if (!x || mf_node_shape(x)->ndim <= 2)
        return x;
    return mf_reshape(g, x, mf_shape2(mf_node_shape(x)->dim[0], -1));
}

mf_node *mf_prepend_one(mf_graph *g, mf_node *x)
{
    if (!x)
        return NULL;
    // x is (B,D): a (B,1) column of ones before it
    mf_node *parts[2] = {mf_ones(g, mf_shape2(mf_node_shape(x)->dim[0], 1)), x};
    return mf_concat(g, 2, parts);
}

mf_node *mf_masked_mean(mf_graph *g, mf_node *x, mf_node *mask)
{
    if (!x || !mask)
        return mf_mean(g, x, 1, 0);
    const mf_shape *s = mf_node_shape(x); /* a mask of another shape fails the reshape */
    // valid (B,T) = 1 where mask is 0; w = valid / max(Σ valid, 1); out (B,D) = w (B,1,T) · x
    mf_node *valid = mf_masked_fill(g, mf_ones(g, *mf_node_shape(mask)), mask, 0.0f);
    mf_node *count = mf_clamp(g, mf_sum(g, valid, 1, 1), 1.0f, 1e30f); // (B,1)
    mf_node *w = mf_reshape(g, mf_div(g, valid, count), mf_shape3(s->dim[0], 1, s->dim[1]));
    mf_node *out = mf_bmm(g, w, x, 0, 0); // (B,1,D)
    return out ? mf_reshape(g, out, mf_shape2(s->dim[0], -1)) : NULL;
}

/* ---------------------------------------------------------------- projections */
int mf_projections_init_with(mf_projections *p, mf_module *m, const char *prefix, int n,
                             const char *const *names, const mf_shape *in, int64_t out,
                             mf_proj_bias bias, mf_init weight_init, int pad_one)
{
    memset(p, 0, sizeof *p);
    if (n < 0 || n > MF_PROJECTIONS_MAX)
        return -1;
    p->n = n;
    p->pad_one = pad_one != 0;
    for (int i = 0; i < n; i++) {
        char name[256];
        const int with_bias = bias == MF_PROJ_BIAS_ALL || (bias == MF_PROJ_BIAS_FIRST && i == 0);
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", names[i]);
        if (mf_linear_init_with(&p->proj[i], m, name, mf_shape_numel(&in[i]) + p->pad_one, out,
                                with_bias, weight_init))
            return -1;
    }
    return 0;
}

int mf_projections_init(mf_projections *p, mf_module *m, const char *prefix, int n,
                        const char *const *names, const mf_shape *in, int64_t out,
                        mf_proj_bias bias)
{
    return mf_projections_init_with(p, m, prefix, n, names, in, out, bias,
                                    (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 0}, 0);
}

mf_node *mf_projections_forward(mf_graph *g, const mf_projections *p, int i, mf_node *x)
{
    if (i < 0 || i >= p->n)
        return NULL;
    // x (B,…) → (B,D_i) [→ (B,1+D_i)] → (B,out)
    x = mf_flatten(g, x);
    return mf_linear_forward(g, &p->proj[i], p->pad_one ? mf_prepend_one(g, x) : x);
}

mf_node *mf_projections_fold(mf_graph *g, const mf_projections *p, mf_node *const *in,
                             mf_node *(*op)(mf_graph *, mf_node *, mf_node *))
{
    mf_node *acc = NULL;
    for (int i = 0; i < p->n; i++) { // x_i (B,…) → (B,out), joined into acc
        mf_node *h = mf_projections_forward(g, p, i, in[i]);
        acc = i ? op(g, acc, h) : h;
    }
    return acc;
}

/* ---------------------------------------------------------------- contrastive logits */
mf_node *mf_logit_scale_forward(mf_graph *g, const mf_logit_scale *t)
{
    return t->s ? mf_exp(g, mf_param_node(g, t->s)) : mf_constant(g, mf_shape1(1), expf(t->init));
}

double mf_logit_scale_value(const mf_logit_scale *t)
{
    return exp(t->s ? (double)mf_param_value(t->s)[0] : (double)t->init);
}

mf_node *mf_cosine_logits(mf_graph *g, mf_node *a, mf_node *b, mf_node *scale)
{
    mf_node *an = mf_l2_normalize(g, a, 1e-12f); // (B,D)
    mf_node *bn = mf_l2_normalize(g, b, 1e-12f); // (N,D)
    return mf_mul(g, mf_matmul(g, an, bn, 0, 1), scale); // (B,N)
}
