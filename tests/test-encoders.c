/* The transformer layer against plain loops (attention and MLP written out by hand), and the
 * encoder plugins (transformer, bag, mlp) built as the host builds them: output values and
 * shapes, masks, gradients by finite differences, and every refusal's exact sentence. */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

#include "op_test_util.h"

/* ---------------------------------------------------------------- naive reference */
/* Every parameter of the store set to seeded values in ±[0.1, 1] (not the ones and zeros
 * norms and biases start with), so a misplaced gain or bias shows. */
static void randomise_params(mf_params *ps, uint64_t seed, float scale)
{
    mf_rng r;
    mf_rng_seed(&r, seed);
    float *v = mf_params_values(ps);
    for (int64_t i = 0; i < mf_params_numel(ps); i++) {
        float x = scale * (float)(0.1 + 0.9 * mf_rng_uniform(&r));
        v[i] = (mf_rng_u64(&r) & 1) ? x : -x;
    }
}

/* y (n) = x (n) normalised, ·gamma + beta */
static void ref_layer_norm(const float *x, int64_t n, mf_param *gamma, mf_param *beta, float *y)
{
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= (double)n;
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)((x[i] - mean) / sqrt(var + 1e-5)) * mf_param_value(gamma)[i] +
               mf_param_value(beta)[i];
}

/* y (out) = x (in) · W (in,out) + b */
static void ref_linear(const mf_linear *l, const float *x, float *y)
{
    const float *w = mf_param_value(l->weight), *b = mf_param_value(l->bias);
    for (int64_t o = 0; o < l->out; o++) {
        double s = b[o];
        for (int64_t i = 0; i < l->in; i++)
            s += (double)x[i] * w[i * l->out + o];
        y[o] = (float)s;
    }
}

static float ref_gelu(float x)
{
    return 0.5f * x * (1 + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
}

enum { RT = 8, RD = 16, RH = 64 }; /* room for the reference's small shapes */

/* One sample: y (T,D) = attention of x (T,D) over c (S,Dc); pad (S) non-zero = padding. */
static void ref_attention(const mf_attention *a, const float *x, int64_t T, const float *c,
                          int64_t S, const float *pad, float *y)
{
    float q[RT][RD], k[RT][RD], v[RT][RD], heads[RT][RD];
    for (int64_t t = 0; t < T; t++)
        ref_linear(&a->q, x + t * a->dim, q[t]);
    for (int64_t s = 0; s < S; s++) {
        ref_linear(&a->k, c + s * a->context_dim, k[s]);
        ref_linear(&a->v, c + s * a->context_dim, v[s]);
    }
    const int64_t d = a->head_dim;
    for (int64_t h = 0; h < a->heads; h++)
        for (int64_t t = 0; t < T; t++) {
            double w[RT], max = -1e30, sum = 0;
            for (int64_t s = 0; s < S; s++) {
                double dot = 0;
                for (int64_t j = 0; j < d; j++)
                    dot += (double)q[t][h * d + j] * k[s][h * d + j];
                w[s] = pad && pad[s] != 0 ? -1e9 : dot / sqrt((double)d);
                max = w[s] > max ? w[s] : max;
            }
            for (int64_t s = 0; s < S; s++)
                sum += (w[s] = exp(w[s] - max));
            for (int64_t j = 0; j < d; j++) {
                double o = 0;
                for (int64_t s = 0; s < S; s++)
                    o += w[s] / sum * v[s][h * d + j];
                heads[t][h * d + j] = (float)o;
            }
        }
    for (int64_t t = 0; t < T; t++)
        ref_linear(&a->o, heads[t], y + t * a->dim);
}

/* One sample of the pre-LN layer: y (T,D) from x (T,D), context c (S,Dc) or NULL. */
static void ref_layer(const mf_transformer_layer *l, const float *x, int64_t T, const float *c,
                      int64_t S, const float *pad, float *y)
{
    const int64_t D = l->dim, C = l->context_dim ? l->context_dim : D;
    /* the context's own norm; a layer built without one normalises a context with ln1 */
    const mf_layer_norm_layer *ln_c = l->context_dim ? &l->ln_ctx : &l->ln1;
    float h[RT * RD], cn[RT * RD], att[RT * RD], u[RH];
    for (int64_t t = 0; t < T; t++)
        ref_layer_norm(x + t * D, D, l->ln1.gamma, l->ln1.beta, h + t * D);
    if (c)
        for (int64_t s = 0; s < S; s++)
            ref_layer_norm(c + s * C, C, ln_c->gamma, ln_c->beta, cn + s * C);
    ref_attention(&l->attn, h, T, c ? cn : h, c ? S : T, pad, att);
    for (int64_t i = 0; i < T * D; i++)
        y[i] = x[i] + att[i];
    for (int64_t t = 0; t < T; t++) {
        ref_layer_norm(y + t * D, D, l->ln2.gamma, l->ln2.beta, h);
        ref_linear(&l->fc1, h, u);
        for (int64_t j = 0; j < l->fc1.out; j++)
            u[j] = ref_gelu(u[j]);
        ref_linear(&l->fc2, u, h);
        for (int64_t j = 0; j < D; j++)
            y[t * D + j] += h[j];
    }
}

/* max |a - b| over n floats */
static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static void fill_uniform(mf_node *n, uint64_t seed)
{
    fill_range(n, seed, -1, 1);
}

/* ---------------------------------------------------------------- the transformer layer */
typedef struct layer_fixture {
    mf_params *ps;
    mf_module *mod;
    mf_transformer_layer l;
} layer_fixture;

static void layer_fixture_init(layer_fixture *f, int64_t dim, int64_t ctx, int64_t heads,
                               double ratio, float dropout)
{
    mf_error err;
    mf_error_clear(&err);
    f->ps = mf_params_new();
    f->mod = mf_module_new(NULL, "enc", f->ps, &err);
    ck_assert_ptr_nonnull(f->mod);
    ck_assert_int_eq(mf_transformer_layer_init(&f->l, f->mod, "layer0", dim, ctx, heads, ratio,
                                               dropout), 0);
    ck_assert_msg(mf_params_finalize(f->ps, 11, 0, &err) == 0, "%s", err.msg);
    randomise_params(f->ps, 12, 0.5f);
}

static void layer_fixture_free(layer_fixture *f)
{
    mf_module_free(f->mod);
    mf_params_free(f->ps);
}

/* Self-attention with key padding, in an eval graph with dropout set (so inactive). */
START_TEST(layer_matches_loops)
{
    enum { B = 2, T = 5, D = 8 };
    layer_fixture f;
    layer_fixture_init(&f, D, 0, 2, 2.0, 0.3f);
    ck_assert_int_eq(f.l.fc1.out, 16);
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "enc.layer0.attn.q.weight"));
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "enc.layer0.ln2.bias"));
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "enc.layer0.fc2.weight"));
    ck_assert_ptr_null(mf_params_find(f.ps, "enc.layer0.ln_ctx.weight"));
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(B, T, D));
    mf_node *mask = mf_input(g, "mask", mf_shape2(B, T));
    mf_node *y = mf_transformer_layer_forward(g, &f.l, x, NULL, mask);
    ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    fill_uniform(x, 3);
    const float pad[B * T] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1}; /* sample 1 has 3 tokens */
    set(mask, pad);
    mf_graph_forward(g);
    float want[B * T * D];
    for (int b = 0; b < B; b++)
        ref_layer(&f.l, mf_node_value(x) + b * T * D, T, NULL, 0, pad + b * T,
                  want + b * T * D);
    ck_assert_double_lt(max_diff(mf_node_value(y), want, B * T * D), 1e-5);
    /* the residual stream moved: the layer is not the identity */
    ck_assert_double_gt(max_diff(mf_node_value(y), mf_node_value(x), B * T * D), 0.1);
    /* without the mask the padded keys count, and sample 1 changes */
    float nopad[B * T * D];
    for (int b = 0; b < B; b++)
        ref_layer(&f.l, mf_node_value(x) + b * T * D, T, NULL, 0, NULL, nopad + b * T * D);
    ck_assert_double_lt(max_diff(nopad, want, T * D), 1e-6);
    ck_assert_double_gt(max_diff(nopad + T * D, want + T * D, T * D), 1e-3);
    mf_graph_free(g);
    layer_fixture_free(&f);
}
END_TEST

/* Cross-attention: the context (its own width) gets its own norm, the mask pads its keys;
 * a layer built for self-attention normalises a context with ln1. */
START_TEST(layer_cross_matches_loops)
{
    enum { B = 2, T = 3, S = 4, D = 8 };
    const int C = _i ? D : 6;
    layer_fixture f;
    layer_fixture_init(&f, D, _i ? 0 : C, 4, 1.5, 0.0f);
    ck_assert_int_eq(f.l.fc1.out, 12);
    ck_assert(_i ? !mf_params_find(f.ps, "enc.layer0.ln_ctx.weight")
                 : !!mf_params_find(f.ps, "enc.layer0.ln_ctx.weight"));
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(B, T, D));
    mf_node *c = mf_input(g, "c", mf_shape3(B, S, C));
    mf_node *mask = mf_input(g, "mask", mf_shape2(B, S));
    mf_node *y = mf_transformer_layer_forward(g, &f.l, x, c, mask);
    ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    fill_uniform(x, 4);
    fill_uniform(c, 5);
    const float pad[B * S] = {0, 0, 0, 1, 0, 1, 0, 0};
    set(mask, pad);
    mf_graph_forward(g);
    float want[B * T * D];
    for (int b = 0; b < B; b++)
        ref_layer(&f.l, mf_node_value(x) + b * T * D, T, mf_node_value(c) + b * S * C, S,
                  pad + b * S, want + b * T * D);
    ck_assert_double_lt(max_diff(mf_node_value(y), want, B * T * D), 1e-5);
    mf_graph_free(g);
    layer_fixture_free(&f);
}
END_TEST

/* Gradients of inputs, context and every parameter of a cross-attention layer. */
START_TEST(layer_gradcheck)
{
    mf_set_threads(1);
    for (int cross = 0; cross < 2; cross++) {
        layer_fixture f;
        layer_fixture_init(&f, 8, cross ? 6 : 0, 2, 2.0, 0.0f);
        mf_graph *g = mf_graph_new(1);
        mf_node *x = mf_variable(g, "x", mf_shape3(2, 3, 8));
        mf_node *c = cross ? mf_variable(g, "c", mf_shape3(2, 4, 6)) : NULL;
        mf_node *mask = mf_input(g, "mask", mf_shape2(2, cross ? 4 : 3));
        mf_node *y = mf_transformer_layer_forward(g, &f.l, x, c, mask);
        ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
        compile_ok(g);
        fill_uniform(x, 6);
        if (c)
            fill_uniform(c, 7);
        memset(mf_node_value(mask), 0, (size_t)mf_node_numel(mask) * sizeof(float));
        mf_node_value(mask)[mf_node_numel(mask) - 1] = 1; /* the last key of sample 1 */
        mf_gradcheck_result res;
        mf_gradcheck_opts opts = {.eps = 1e-2, .atol = 2e-3, .rtol = 2e-2, .seed = 3};
        ck_assert_msg(mf_gradcheck(g, y, &opts, &res) == 0, "cross %d: %lld/%lld failed, %s",
                      cross, (long long)res.failed, (long long)res.checked, res.worst);
        ck_assert_int_eq(res.checked, cross ? 676 : 648); /* every parameter and input */
        mf_graph_free(g);
        layer_fixture_free(&f);
    }
}
END_TEST

/* Residual dropout acts in training graphs only: a training graph's output differs from the
 * eval graph's, whose output equals the loops'. */
START_TEST(layer_dropout_training_only)
{
    enum { B = 2, T = 4, D = 8 };
    layer_fixture f;
    layer_fixture_init(&f, D, 0, 2, 2.0, 0.5f);
    float out[2][B * T * D];
    for (int training = 0; training < 2; training++) {
        mf_graph *g = mf_graph_new(training);
        mf_node *x = mf_input(g, "x", mf_shape3(B, T, D));
        mf_node *y = mf_transformer_layer_forward(g, &f.l, x, NULL, NULL);
        compile_ok(g);
        fill_uniform(x, 8);
        mf_graph_forward(g);
        memcpy(out[training], mf_node_value(y), sizeof out[0]);
        if (!training) {
            float want[B * T * D];
            for (int b = 0; b < B; b++)
                ref_layer(&f.l, mf_node_value(x) + b * T * D, T, NULL, 0, NULL, want + b * T * D);
            ck_assert_double_lt(max_diff(out[0], want, B * T * D), 1e-5);
        }
        mf_graph_free(g);
    }
    ck_assert_double_gt(max_diff(out[0], out[1], B * T * D), 0.1);
    layer_fixture_free(&f);
}
END_TEST

START_TEST(layer_init_refuses)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "enc", ps, &err);
    mf_transformer_layer l;
    ck_assert_int_eq(mf_transformer_layer_init(&l, mod, "a", 10, 0, 3, 4.0, 0), -1);
    ck_assert_int_eq(mf_transformer_layer_init(&l, mod, "b", 8, 0, 0, 4.0, 0), -1);
    ck_assert_int_eq(mf_transformer_layer_init(&l, mod, "c", 8, 0, 2, 0.01, 0), -1);
    ck_assert_int_eq(mf_transformer_layer_init(&l, mod, "d", 8, 0, 2, 4.0, 0), 0);
    ck_assert_int_eq(l.fc1.out, 32);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

/* ---------------------------------------------------------------- encoder plugins */
/* One encoder as the host builds it: the YAML section model.encoders.x of enc.yaml (checked
 * against the plugin's declared parameters, defaults filled), its parameters finalised with
 * seed 21 and randomised (see randomise_params), ready for graphs. */
typedef struct encoder {
    mf_registry *reg;
    mf_config *root;
    mf_params *ps;
    mf_module *mod;
    mf_shape out;
    uint32_t out_flags;
    mf_error err;
} encoder;

typedef struct input {
    mf_shape shape; /* per sample */
    uint32_t flags;
    int64_t vocab, out_features;
} input;

/* 0 when built; else -1 with e->err holding the refusal (e->mod then freed). */
static int encoder_build(encoder *e, const char *plugin, const char *params, input in)
{
    char text[1024];
    memset(e, 0, sizeof *e);
    snprintf(text, sizeof text, "model:\n  encoders:\n    x: {type: %s%s%s}\n", plugin,
             *params ? ", " : "", params);
    e->reg = mf_registry_new();
    ck_assert_int_eq(mf_registry_add_dir(e->reg, mf_default_plugin_dir(), &e->err), 0);
    const mf_plugin *p = mf_registry_find(e->reg, MF_KIND_ENCODER, plugin, NULL);
    ck_assert_msg(p != NULL, "plugin %s not loaded: %s", plugin,
                  mf_registry_refusal_count(e->reg) ? mf_registry_refusal(e->reg, 0) : "");
    e->root = mf_config_parse(text, strlen(text), "enc.yaml", &e->err);
    ck_assert_msg(e->root != NULL, "%s", e->err.msg);
    mf_config *cfg = (mf_config *)mf_config_get(e->root, "model.encoders.x");
    static const char *const extra[] = {"type", NULL};
    ck_assert_msg(mf_config_check(cfg, p->params, extra, &e->err) == 0, "%s", e->err.msg);
    e->ps = mf_params_new();
    e->mod = mf_module_new(p, "model.encoders.x", e->ps, &e->err);
    const char *name = "x";
    mf_build_args args = {sizeof args, 1, &in.shape, &name, in.out_features, &in.flags,
                          &in.vocab, &e->out_flags, cfg};
    if (mf_module_build(e->mod, cfg, &args, &e->out, &e->err))
        return -1;
    ck_assert_msg(mf_params_finalize(e->ps, 21, 0, &e->err) == 0, "%s", e->err.msg);
    randomise_params(e->ps, 22, 0.5f);
    return 0;
}

static void encoder_free(encoder *e)
{
    mf_module_free(e->mod);
    mf_params_free(e->ps);
    mf_config_free(e->root);
    mf_registry_free(e->reg);
}

/* The refusal's exact sentence. */
static void expect_refusal(const char *plugin, const char *params, input in, const char *msg)
{
    encoder e;
    ck_assert_int_eq(encoder_build(&e, plugin, params, in), -1);
    ck_assert_str_eq(e.err.msg, msg);
    encoder_free(&e);
}

static mf_node *forward(encoder *e, mf_graph *g, mf_node *x)
{
    mf_node *y = mf_module_forward(e->mod, g, 1, &x);
    ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
    return y;
}

/* Every element of every input and parameter (`elements` of them) passes. */
static void gradcheck_module(mf_graph *g, mf_node *y, int64_t elements)
{
    mf_gradcheck_result res;
    mf_gradcheck_opts opts = {.eps = 1e-2, .atol = 2e-3, .rtol = 2e-2, .seed = 5};
    ck_assert_msg(mf_gradcheck(g, y, &opts, &res) == 0, "%lld/%lld failed, %s",
                  (long long)res.failed, (long long)res.checked, res.worst);
    ck_assert_int_eq(res.checked, elements);
}

static void expect_shape(const mf_shape *s, int ndim, int64_t d0, int64_t d1)
{
    char buf[64];
    ck_assert_msg(s->ndim == ndim && s->dim[0] == d0 && (ndim < 2 || s->dim[1] == d1),
                  "shape %s", mf_shape_str(s, buf, sizeof buf));
}

/* Token ids (B,T) with the padding their lengths leave, and the mask the host attaches. */
static mf_node *token_input(mf_graph *g, int64_t B, int64_t T, mf_node **mask)
{
    mf_node *ids = mf_input(g, "ids", mf_shape2(B, T));
    *mask = mf_input(g, "mask", mf_shape2(B, T));
    mf_node_set_mask(ids, *mask);
    return ids;
}

static void set_tokens(mf_node *ids, mf_node *mask, const int *len, int64_t vocab, uint64_t seed)
{
    const mf_shape *s = mf_node_shape(ids);
    mf_rng r;
    mf_rng_seed(&r, seed);
    for (int64_t b = 0; b < s->dim[0]; b++)
        for (int64_t t = 0; t < s->dim[1]; t++) {
            const int pad = t >= len[b];
            mf_node_value(ids)[b * s->dim[1] + t] =
                pad ? 0.0f : (float)(1 + mf_rng_below(&r, (uint64_t)vocab - 1));
            mf_node_value(mask)[b * s->dim[1] + t] = (float)pad;
        }
}

static const input TOKENS6 = {{1, {6}}, MF_IO_TOKENS | MF_IO_MASKED, 11, 0};

/* ViT on images: patches, CLS pooling, projection; gradients of pixels and parameters. */
START_TEST(transformer_image)
{
    mf_set_threads(1);
    encoder e;
    ck_assert_msg(encoder_build(&e, "transformer", "width: 8, heads: 2, layers: 1, patch: 4, "
                                                   "mlp_ratio: 2, out: 5",
                                (input){{3, {3, 8, 8}}, 0, 0, 0}) == 0, "%s", e.err.msg);
    expect_shape(&e.out, 1, 5, 0);
    ck_assert_uint_eq(e.out_flags, 0);
    expect_shape(mf_param_shape(mf_params_find(e.ps, "model.encoders.x.pos")), 2, 5, 8);
    expect_shape(mf_param_shape(mf_params_find(e.ps, "model.encoders.x.cls")), 3, 1, 1);
    /* positions and the CLS token take no weight decay (timm's no_weight_decay) */
    ck_assert_uint_eq(mf_param_flags(mf_params_find(e.ps, "model.encoders.x.pos")), MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(mf_params_find(e.ps, "model.encoders.x.cls")), MF_NO_DECAY);
    ck_assert_int_eq(mf_param_shape(mf_params_find(e.ps, "model.encoders.x.patch_embed.weight"))
                         ->dim[3], 4);
    ck_assert_ptr_nonnull(mf_params_find(e.ps, "model.encoders.x.layer0.attn.q.weight"));
    ck_assert_ptr_nonnull(mf_params_find(e.ps, "model.encoders.x.ln_final.weight"));
    ck_assert_ptr_nonnull(mf_params_find(e.ps, "model.encoders.x.out.weight"));
    ck_assert_ptr_null(mf_params_find(e.ps, "model.encoders.x.layer1.attn.q.weight"));
    mf_graph *g = mf_graph_new(1);
    mf_node *img = mf_variable(g, "img", mf_shape4(2, 3, 8, 8));
    mf_node *y = forward(&e, g, img);
    expect_shape(mf_node_shape(y), 2, 2, 5);
    compile_ok(g);
    fill_uniform(img, 9);
    gradcheck_module(g, y, 2 * 3 * 8 * 8 + 1101); /* pixels, parameters */
    /* the two images give different embeddings */
    mf_graph_forward(g);
    ck_assert_double_gt(max_diff(mf_node_value(y), mf_node_value(y) + 5, 5), 1e-3);
    mf_graph_free(g);
    encoder_free(&e);
}
END_TEST

/* Token ids with padding, mean pooling (with a CLS token left out of the mean, for _i = 1):
 * gradients, and padding changes nothing. */
START_TEST(transformer_tokens_masked_mean)
{
    mf_set_threads(1);
    enum { B = 3, T = 6 };
    encoder e;
    const char *params = _i ? "width: 8, heads: 2, layers: 2, pool: mean, cls_token: true"
                            : "width: 8, heads: 2, layers: 2, pool: mean";
    ck_assert_msg(encoder_build(&e, "transformer", params, TOKENS6) == 0, "%s", e.err.msg);
    expect_shape(&e.out, 1, 8, 0);
    expect_shape(mf_param_shape(mf_params_find(e.ps, "model.encoders.x.token_embed.weight")), 2,
                 11, 8);
    expect_shape(mf_param_shape(mf_params_find(e.ps, "model.encoders.x.pos")), 2, T + _i, 8);
    ck_assert(_i ? mf_params_find(e.ps, "model.encoders.x.cls") != NULL
                 : mf_params_find(e.ps, "model.encoders.x.cls") == NULL);
    mf_graph *g = mf_graph_new(1);
    mf_node *mask, *ids = token_input(g, B, T, &mask);
    mf_node *y = forward(&e, g, ids);
    compile_ok(g);
    const int len[B] = {6, 3, 1};
    set_tokens(ids, mask, len, 11, 4);
    gradcheck_module(g, y, 1896 + 16 * _i); /* parameters: ids take none */
    mf_graph_forward(g);
    float before[B * 8];
    memcpy(before, mf_node_value(y), sizeof before);
    /* other ids at padded positions: the same output */
    mf_node_value(ids)[1 * T + 4] = 7, mf_node_value(ids)[2 * T + 1] = 3;
    mf_node_value(ids)[2 * T + 5] = 10;
    mf_graph_forward(g);
    ck_assert_double_lt(max_diff(mf_node_value(y), before, B * 8), 1e-6);
    /* the same change unmasked is seen */
    mf_node_value(mask)[1 * T + 4] = 0;
    mf_graph_forward(g);
    ck_assert_double_gt(max_diff(mf_node_value(y) + 8, before + 8, 8), 1e-3);
    ck_assert_double_lt(max_diff(mf_node_value(y), before, 8), 1e-6); /* sample 0 untouched */
    mf_graph_free(g);
    encoder_free(&e);
}
END_TEST

/* pool: none keeps the sequence (CLS at 0), promises a mask and passes it on. */
START_TEST(transformer_sequence_none)
{
    mf_set_threads(1);
    enum { B = 2, T = 6, D = 5 };
    encoder e;
    ck_assert_msg(encoder_build(&e, "transformer", "width: 8, heads: 4, layers: 1, pool: none, "
                                                   "cls_token: true, mlp_ratio: 1",
                                (input){{2, {T, D}}, MF_IO_SEQUENCE | MF_IO_MASKED, 0, 0}) == 0,
                  "%s", e.err.msg);
    expect_shape(&e.out, 2, T + 1, 8);
    ck_assert_uint_eq(e.out_flags, MF_IO_SEQUENCE | MF_IO_MASKED);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(B, T, D));
    mf_node *mask = mf_input(g, "mask", mf_shape2(B, T));
    mf_node_set_mask(x, mask);
    mf_node *y = forward(&e, g, x);
    mf_node *ym = mf_node_mask(y);
    ck_assert_ptr_nonnull(ym);
    expect_shape(mf_node_shape(ym), 2, B, T + 1);
    compile_ok(g);
    fill_uniform(x, 10);
    static const float pad[B * T] = {0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
    set(mask, pad);
    gradcheck_module(g, y, B * T * D + 592);
    mf_graph_forward(g);
    for (int b = 0; b < B; b++) /* the CLS position is never padding */
        for (int t = 0; t <= T; t++)
            ck_assert_float_eq(mf_node_value(ym)[b * (T + 1) + t], t == 0 ? 0 : pad[b * T + t - 1]);
    /* a padded position's features reach no other position */
    float before[B * (T + 1) * 8];
    memcpy(before, mf_node_value(y), sizeof before);
    for (int j = 0; j < D; j++)
        mf_node_value(x)[4 * D + j] += 1;
    mf_graph_forward(g);
    ck_assert_double_lt(max_diff(mf_node_value(y), before, 5 * 8), 1e-6); /* CLS, tokens 0-3 */
    ck_assert_double_gt(max_diff(mf_node_value(y) + 5 * 8, before + 5 * 8, 8), 1e-3);
    mf_graph_free(g);
    encoder_free(&e);
}
END_TEST

/* final_norm: false ends at the last layer's residual sum: no ln_final. */
START_TEST(transformer_no_final_norm)
{
    encoder e;
    ck_assert_msg(encoder_build(&e, "transformer", "width: 8, heads: 2, layers: 1, pool: none, "
                                                   "final_norm: false", TOKENS6) == 0,
                  "%s", e.err.msg);
    ck_assert_ptr_null(mf_params_find(e.ps, "model.encoders.x.ln_final.weight"));
    ck_assert_ptr_nonnull(mf_params_find(e.ps, "model.encoders.x.layer0.fc2.weight"));
    encoder_free(&e);
    ck_assert_msg(encoder_build(&e, "transformer", "width: 8, heads: 2, layers: 1, pool: none",
                                TOKENS6) == 0, "%s", e.err.msg);
    ck_assert_ptr_nonnull(mf_params_find(e.ps, "model.encoders.x.ln_final.weight"));
    encoder_free(&e);
}
END_TEST

/* layers: 0 is the embedding alone: table rows plus positions, exactly. */
START_TEST(transformer_embedding_only)
{
    enum { B = 2, T = 6 };
    encoder e;
    ck_assert_msg(encoder_build(&e, "transformer", "width: 4, layers: 0, heads: 1, pool: none",
                                TOKENS6) == 0, "%s", e.err.msg);
    ck_assert_ptr_null(mf_params_find(e.ps, "model.encoders.x.ln_final.weight"));
    mf_graph *g = mf_graph_new(0);
    mf_node *mask, *ids = token_input(g, B, T, &mask);
    mf_node *y = forward(&e, g, ids);
    ck_assert_ptr_eq(mf_node_mask(y), mask);
    compile_ok(g);
    const int len[B] = {2, 6};
    set_tokens(ids, mask, len, 11, 5);
    mf_graph_forward(g);
    mf_param *tw = mf_params_find(e.ps, "model.encoders.x.token_embed.weight");
    const float *table = mf_param_value(tw),
                *pos = mf_param_value(mf_params_find(e.ps, "model.encoders.x.pos"));
    float want[B * T * 4];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < 4; j++)
                want[(b * T + t) * 4 + j] =
                    table[(int)mf_node_value(ids)[b * T + t] * 4 + j] + pos[t * 4 + j];
    ck_assert_double_lt(max_diff(mf_node_value(y), want, B * T * 4), 1e-6);
    mf_graph_free(g);
    encoder_free(&e);
}
END_TEST

START_TEST(transformer_refusals)
{
    expect_refusal("transformer", "width: 64, heads: 3", TOKENS6,
                   "enc.yaml:3:46: model.encoders.x.heads: heads (3) must divide width (64)");
    expect_refusal("transformer", "patch: 4", (input){{3, {3, 30, 32}}, 0, 0, 0},
                   "enc.yaml:3:35: model.encoders.x.patch: patch 4 does not divide the 30x32 "
                   "images of 'x'");
    expect_refusal("transformer", "", (input){{1, {6}}, MF_IO_TOKENS, 0, 0},
                   "enc.yaml:3:8: model.encoders.x: token input 'x' needs the reader's "
                   "vocabulary size, and none was given");
    expect_refusal("transformer", "", (input){{1, {16}}, 0, 0, 0},
                   "enc.yaml:3:8: model.encoders.x: transformer takes images (C,H,W), token ids "
                   "(T) or sequences (T,D), but 'x' has shape (16) and is not a token input");
    expect_refusal("transformer", "pool: none", (input){{2, {4, 5}}, MF_IO_SEQUENCE, 0, 3},
                   "enc.yaml:3:8: model.encoders.x: this use needs 3 output features per "
                   "sample: set 'out' to it and pool to cls or mean");
    expect_refusal("transformer", "width: 1, heads: 1, mlp_ratio: 0.25", TOKENS6,
                   "enc.yaml:3:59: model.encoders.x.mlp_ratio: mlp_ratio 0.25 leaves no hidden "
                   "features at width 1");
    /* a head takes the class count for out */
    encoder e;
    ck_assert_msg(encoder_build(&e, "transformer", "width: 8, heads: 2",
                                (input){{2, {4, 5}}, MF_IO_SEQUENCE, 0, 3}) == 0, "%s", e.err.msg);
    expect_shape(&e.out, 1, 3, 0);
    encoder_free(&e);
}
END_TEST

/* bag: the mean of the non-padding embeddings, as loops compute it; padding ignored. */
START_TEST(bag_masked_mean)
{
    mf_set_threads(1);
    enum { B = 3, T = 6, W = 5 };
    for (int proj = 0; proj < 2; proj++) {
        encoder e;
        const char *params = proj ? "width: 5, out: 4" : "width: 5";
        ck_assert_msg(encoder_build(&e, "bag", params, TOKENS6) == 0, "%s", e.err.msg);
        expect_shape(&e.out, 1, proj ? 4 : W, 0);
        mf_graph *g = mf_graph_new(1);
        mf_node *mask, *ids = token_input(g, B, T, &mask);
        mf_node *y = forward(&e, g, ids);
        compile_ok(g);
        const int len[B] = {6, 2, 0}; /* the last is all padding: it reads 0 (or the bias) */
        set_tokens(ids, mask, len, 11, 6);
        gradcheck_module(g, y, 11 * W + (proj ? W * 4 + 4 : 0));
        mf_graph_forward(g);
        const float *table = mf_param_value(mf_params_find(e.ps, "model.encoders.x.embed.weight"));
        float mean[B * W] = {0}, want[B * W];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len[b]; t++)
                for (int j = 0; j < W; j++)
                    mean[b * W + j] += table[(int)mf_node_value(ids)[b * T + t] * W + j] / len[b];
        mf_param *pw = mf_params_find(e.ps, "model.encoders.x.proj.weight");
        ck_assert(proj ? pw != NULL : pw == NULL);
        if (proj) {
            mf_linear l = {pw, mf_params_find(e.ps, "model.encoders.x.proj.bias"), W, 4};
            for (int b = 0; b < B; b++)
                ref_linear(&l, mean + b * W, want + b * 4);
        }
        const float *expect = proj ? want : mean;
        ck_assert_double_lt(max_diff(mf_node_value(y), expect, B * (proj ? 4 : W)), 1e-6);
        mf_node_value(ids)[1 * T + 3] = 9, mf_node_value(ids)[2 * T] = 4;
        mf_graph_forward(g);
        ck_assert_double_lt(max_diff(mf_node_value(y), expect, B * (proj ? 4 : W)), 1e-6);
        mf_graph_free(g);
        encoder_free(&e);
    }
}
END_TEST

START_TEST(bag_refusals)
{
    expect_refusal("bag", "", (input){{1, {6}}, MF_IO_TOKENS, 0, 0},
                   "enc.yaml:3:8: model.encoders.x: token input 'x' needs the reader's "
                   "vocabulary size, and none was given");
    expect_refusal("bag", "", (input){{3, {3, 8, 8}}, 0, 0, 0},
                   "enc.yaml:3:8: model.encoders.x: bag takes token ids (T), but 'x' has shape "
                   "(3,8,8)");
    expect_refusal("bag", "out: 4", (input){{1, {6}}, MF_IO_TOKENS, 11, 3},
                   "enc.yaml:3:25: model.encoders.x.out: out is 4, but this module must output "
                   "3 features");
}
END_TEST

/* mlp: y as loops compute it, with LayerNorm before each hidden activation and residual
 * hidden blocks where the widths allow (in 5 → 6 is not, 6 → 6 is). */
static void ref_mlp(encoder *e, const float *x, int64_t in, int n_hidden, int ln, int residual,
                    float *y)
{
    float h[16], u[16];
    memcpy(h, x, (size_t)in * sizeof *h);
    char key[64];
    for (int i = 0; i <= n_hidden; i++) {
        snprintf(key, sizeof key, "model.encoders.x.fc%d.weight", i);
        mf_param *w = mf_params_find(e->ps, key);
        snprintf(key, sizeof key, "model.encoders.x.fc%d.bias", i);
        mf_linear l = {w, mf_params_find(e->ps, key), mf_param_shape(w)->dim[0],
                       mf_param_shape(w)->dim[1]};
        ref_linear(&l, h, u);
        if (i == n_hidden) {
            memcpy(y, u, (size_t)l.out * sizeof *y);
            return;
        }
        if (ln) {
            snprintf(key, sizeof key, "model.encoders.x.ln%d.weight", i);
            mf_param *gamma = mf_params_find(e->ps, key);
            snprintf(key, sizeof key, "model.encoders.x.ln%d.bias", i);
            float v[16];
            ref_layer_norm(u, l.out, gamma, mf_params_find(e->ps, key), v);
            memcpy(u, v, sizeof v);
        }
        for (int64_t j = 0; j < l.out; j++)
            h[j] = (residual && l.in == l.out ? h[j] : 0) + tanhf(u[j]);
    }
}

START_TEST(mlp_norm_and_residual)
{
    mf_set_threads(1);
    static const struct { const char *params; int ln, residual, n_params; } cases[] = {
        {"hidden: [6, 6], out: 4, activation: tanh", 0, 0, 6},
        {"hidden: [6, 6], out: 4, activation: tanh, layer_norm: true", 1, 0, 10},
        {"hidden: [6, 6], out: 4, activation: tanh, residual: true", 0, 1, 6},
        {"hidden: [6, 6], out: 4, activation: tanh, residual: true, layer_norm: true", 1, 1, 10},
    };
    float out[4][3 * 4];
    for (int c = 0; c < 4; c++) {
        encoder e;
        ck_assert_msg(encoder_build(&e, "mlp", cases[c].params, (input){{1, {5}}, 0, 0, 0}) == 0,
                      "%s", e.err.msg);
        ck_assert_int_eq(mf_params_size(e.ps), cases[c].n_params);
        /* the linear layers come first: with the same seed they start the same */
        ck_assert_str_eq(mf_param_name(mf_params_at(e.ps, 0)), "model.encoders.x.fc0.weight");
        ck_assert_str_eq(mf_param_name(mf_params_at(e.ps, 5)), "model.encoders.x.fc2.bias");
        mf_graph *g = mf_graph_new(1);
        mf_node *x = mf_variable(g, "x", mf_shape2(3, 5));
        mf_node *y = forward(&e, g, x);
        compile_ok(g);
        fill_uniform(x, 12);
        mf_graph_forward(g);
        for (int b = 0; b < 3; b++) {
            float want[4];
            ref_mlp(&e, mf_node_value(x) + b * 5, 5, 2, cases[c].ln, cases[c].residual, want);
            ck_assert_double_lt(max_diff(mf_node_value(y) + b * 4, want, 4), 1e-5);
        }
        memcpy(out[c], mf_node_value(y), sizeof out[c]);
        gradcheck_module(g, y, 15 + 106 + (cases[c].ln ? 24 : 0));
        mf_graph_free(g);
        encoder_free(&e);
    }
    for (int c = 1; c < 4; c++) /* each option changes the function */
        ck_assert_double_gt(max_diff(out[0], out[c], 12), 1e-3);
}
END_TEST

START_TEST(mlp_refusals)
{
    const input vec5 = {{1, {5}}, 0, 0, 0};
    expect_refusal("mlp", "hidden: [6, 8], out: 2, residual: true", vec5,
                   "enc.yaml:3:28: model.encoders.x.hidden: residual blocks need equal hidden "
                   "widths, but hidden layer 1 has 8 features and layer 0 has 6");
    expect_refusal("mlp", "hidden: [6], out: 2, residual: true", vec5,
                   "enc.yaml:3:51: model.encoders.x.residual: residual blocks need a hidden "
                   "layer as wide as its input, but 5 input features go to one hidden layer "
                   "of 6");
    expect_refusal("mlp", "out: 2, residual: true", vec5,
                   "enc.yaml:3:38: model.encoders.x.residual: residual blocks need hidden "
                   "layers: set 'hidden'");
    /* one hidden layer as wide as the input is a residual block */
    encoder e;
    ck_assert_msg(encoder_build(&e, "mlp", "hidden: [5], out: 2, residual: true", vec5) == 0,
                  "%s", e.err.msg);
    encoder_free(&e);
}
END_TEST

static Suite *encoders_suite(void)
{
    Suite *s = suite_create("encoders");
    TCase *tc = tcase_create("transformer layer");
    tcase_add_test(tc, layer_matches_loops);
    tcase_add_loop_test(tc, layer_cross_matches_loops, 0, 2);
    tcase_add_test(tc, layer_gradcheck);
    tcase_add_test(tc, layer_dropout_training_only);
    tcase_add_test(tc, layer_init_refuses);
    suite_add_tcase(s, tc);
    tc = tcase_create("transformer");
    tcase_add_test(tc, transformer_image);
    tcase_add_loop_test(tc, transformer_tokens_masked_mean, 0, 2);
    tcase_add_test(tc, transformer_sequence_none);
    tcase_add_test(tc, transformer_embedding_only);
    tcase_add_test(tc, transformer_no_final_norm);
    tcase_add_test(tc, transformer_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("mlp");
    tcase_add_test(tc, mlp_norm_and_residual);
    tcase_add_test(tc, mlp_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("bag");
    tcase_add_test(tc, bag_masked_mean);
    tcase_add_test(tc, bag_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mf_test_run(encoders_suite()); }
