/* Training steps as a whole: no heap allocation in the steady state (forward, backward,
 * optimiser) and bit-identical results for a given seed and thread count. */
#define _GNU_SOURCE /* dladdr, for alloc_count.h */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/host.h>

#include "alloc_count.h"
#include "mf_check.h"

enum { B = 32, T = 6, D = 16, HEADS = 4, VOCAB = 400, CLASSES = 5 };

/* A small model touching every building block: conv, pooling, attention, layer norm,
 * embedding, dropout, GELU, MLP; trained with Adam. */
typedef struct model {
    mf_params *params;
    mf_module *module;
    mf_conv2d_layer conv;
    mf_linear img_fc, head;
    mf_embedding_layer embed;
    mf_attention attn;
    mf_layer_norm_layer ln;
    mf_mlp mlp;
    mf_graph *g;
    mf_node *img, *tok, *mask, *y, *loss;
    mf_optim opt;
} model;

static void model_build(model *m, uint64_t seed)
{
    static const int64_t mlp_sizes[] = {2 * D, 32, CLASSES};
    mf_error err;
    mf_error_clear(&err);
    memset(m, 0, sizeof *m);
    m->params = mf_params_new();
    m->module = mf_module_new(NULL, "m", m->params, &err);
    ck_assert_ptr_nonnull(m->module);
    ck_assert_int_eq(mf_conv2d_layer_init(&m->conv, m->module, "conv", 2, 4, 3, 1, 1, 1), 0);
    ck_assert_int_eq(mf_linear_init(&m->img_fc, m->module, "img_fc", 4 * 4 * 4, D, 1), 0);
    ck_assert_int_eq(mf_embedding_layer_init(&m->embed, m->module, "embed", VOCAB, D), 0);
    ck_assert_int_eq(mf_attention_init(&m->attn, m->module, "attn", D, 0, HEADS, 0.1f), 0);
    ck_assert_int_eq(mf_layer_norm_layer_init(&m->ln, m->module, "ln", D, 1e-5f), 0);
    ck_assert_int_eq(mf_mlp_init(&m->mlp, m->module, "mlp", 3, mlp_sizes, MF_ACT_GELU), 0);
    m->opt = (mf_optim){MF_OPTIM_ADAM, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0, 0};
    ck_assert_int_eq(mf_params_finalize(m->params, seed, mf_optim_moments(m->opt.kind), &err), 0);

    mf_graph *g = m->g = mf_graph_new(1);
    mf_graph_set_seed(g, seed);
    m->img = mf_input(g, "img", mf_shape4(B, 2, 8, 8));
    m->tok = mf_input(g, "tok", mf_shape2(B, T));
    m->mask = mf_input(g, "mask", mf_shape4(B, 1, 1, T));
    m->y = mf_input(g, "y", mf_shape1(B));
    // image: conv → relu → maxpool → flatten → linear: (B,D)
    mf_node *h = mf_max_pool2d(g, mf_relu(g, mf_conv2d_layer_forward(g, &m->conv, m->img)), 2, 2);
    h = mf_linear_forward(g, &m->img_fc, mf_reshape(g, h, mf_shape2(B, -1)));
    // text: embed → self-attention (padding mask) → residual + layer norm → mean: (B,D)
    mf_node *e = mf_embedding_layer_forward(g, &m->embed, m->tok);
    mf_node *a = mf_attention_forward(g, &m->attn, e, NULL, m->mask);
    mf_node *t = mf_mean(g, mf_layer_norm_layer_forward(g, &m->ln, mf_add(g, e, a)), 1, 0);
    mf_node *parts[2] = {mf_dropout(g, h, 0.2f), t};
    m->loss = mf_cross_entropy(g, mf_mlp_forward(g, &m->mlp, mf_concat(g, 2, parts)), m->y);
    ck_assert_msg(mf_graph_compile(g, &err) == 0, "%s", err.msg);

    mf_rng r;
    mf_rng_seed(&r, 99);
    for (int64_t i = 0; i < mf_node_numel(m->img); i++)
        mf_node_value(m->img)[i] = mf_rng_normal(&r);
    for (int i = 0; i < B * T; i++)
        mf_node_value(m->tok)[i] = (float)mf_rng_below(&r, VOCAB);
    for (int i = 0; i < B * T; i++) /* the last token of every other sample is padding */
        mf_node_value(m->mask)[i] = (i % T == T - 1) && (i / T) % 2;
    for (int i = 0; i < B; i++)
        mf_node_value(m->y)[i] = (float)(i % CLASSES);
}

static float model_step(model *m)
{
    mf_graph_forward(m->g);
    mf_graph_backward(m->g, m->loss); /* from zero: the optimiser zeroed them */
    mf_optim_step(&m->opt, m->params);
    return mf_node_value(m->loss)[0];
}

static void model_free(model *m)
{
    mf_graph_free(m->g);
    mf_module_free(m->module);
    mf_params_free(m->params);
}

START_TEST(steady_state_step_allocates_nothing)
{
    mf_set_threads(2);
    model m;
    model_build(&m, 1);
    /* more than one of the optimiser's 4096-parameter blocks: its partial sums are counted */
    ck_assert_int_gt(mf_params_numel(m.params), 2 * 4096);
    float first = model_step(&m); /* warm-up: thread pools start */
    alloc_count_start();
    float last = first;
    for (int i = 0; i < 20; i++)
        last = model_step(&m);
    long allocs = alloc_count_stop();
    ck_assert_int_eq(allocs, 0);
    ck_assert(isfinite(last) && last < first); /* and it learns */
    model_free(&m);
}
END_TEST

/* Train twice with one seed and thread count: every parameter bit-identical. */
static void assert_reproducible(int threads)
{
    mf_set_threads(threads);
    model a, b;
    model_build(&a, 7);
    model_build(&b, 7);
    for (int i = 0; i < 10; i++) {
        model_step(&a);
        model_step(&b);
    }
    int64_t n = mf_params_numel(a.params);
    ck_assert_int_eq(memcmp(mf_params_values(a.params), mf_params_values(b.params),
                            (size_t)n * sizeof(float)), 0);
    /* and a different seed gives different parameters */
    model c;
    model_build(&c, 8);
    for (int i = 0; i < 10; i++)
        model_step(&c);
    ck_assert_int_ne(memcmp(mf_params_values(a.params), mf_params_values(c.params),
                            (size_t)n * sizeof(float)), 0);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

START_TEST(bit_identical_one_thread) { assert_reproducible(1); }
END_TEST

START_TEST(bit_identical_two_threads) { assert_reproducible(2); }
END_TEST

/* The building blocks' parameters get correct gradients (finite differences). */
START_TEST(blocks_gradcheck)
{
    mf_set_threads(1);
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "g", ps, &err);
    mf_attention attn;
    mf_layer_norm_layer ln;
    mf_conv2d_layer conv;
    mf_linear lin;
    ck_assert_int_eq(mf_attention_init(&attn, mod, "attn", 8, 6, 2, 0.0f), 0);
    ck_assert_int_eq(mf_layer_norm_layer_init(&ln, mod, "ln", 8, 1e-5f), 0);
    ck_assert_int_eq(mf_conv2d_layer_init(&conv, mod, "conv", 2, 3, 3, 2, 1, 1), 0);
    ck_assert_int_eq(mf_linear_init(&lin, mod, "lin", 3 * 2 * 2, 8, 1), 0);
    ck_assert_int_eq(mf_params_finalize(ps, 3, 0, &err), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(2, 4, 8));    // queries (B,T,D)
    mf_node *ctx = mf_variable(g, "ctx", mf_shape3(2, 5, 6)); // context (B,S,Dc)
    mf_node *img = mf_variable(g, "img", mf_shape4(2, 2, 4, 4));
    mf_node *mask = mf_input(g, "mask", mf_shape4(2, 1, 1, 5));
    mf_node *a = mf_attention_forward(g, &attn, x, ctx, mask);              // cross-attention
    mf_node *c = mf_linear_forward(g, &lin, mf_reshape(g, mf_conv2d_layer_forward(g, &conv, img),
                                                      mf_shape3(2, 1, 12))); // (B,1,D)
    mf_node *parts[2] = {a, c};
    mf_node *out = mf_layer_norm_layer_forward(g, &ln, mf_concat_axis(g, 2, parts, 1));
    ck_assert_msg(mf_graph_compile(g, &err) == 0, "%s", err.msg);
    mf_rng r;
    mf_rng_seed(&r, 5);
    mf_node *leaves[3] = {x, ctx, img};
    for (int l = 0; l < 3; l++)
        for (int64_t i = 0; i < mf_node_numel(leaves[l]); i++)
            mf_node_value(leaves[l])[i] = (float)(2 * mf_rng_uniform(&r) - 1);
    for (int i = 0; i < 10; i++) /* the last context position of the second sample is masked */
        mf_node_value(mask)[i] = i == 9;
    mf_gradcheck_result res;
    mf_gradcheck_opts opts = {.eps = 1e-2, .atol = 2e-3, .rtol = 2e-2};
    ck_assert_msg(mf_gradcheck(g, out, &opts, &res) == 0, "%s", res.worst);
    ck_assert_int_gt(res.checked, 300);
    mf_graph_free(g);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

/* A relu that is its input's only reader runs in place; gradients are those of the
 * out-of-place relu (forced by giving the input a second reader that adds nothing). */
static void relu_grads(int second_reader, float *dw, float *out_value, int *shared)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_input(g, "x", mf_shape4(2, 2, 5, 5));
    mf_node *w = mf_variable(g, "w", mf_shape4(3, 2, 3, 3));
    mf_node *h = mf_conv2d(g, x, w, NULL, 1, 1);
    mf_node *r = mf_relu(g, h);
    mf_node *c = mf_input(g, "c", mf_shape4(2, 3, 5, 5)); /* a gradient where relu cuts too */
    mf_node *loss = mf_mean_all(g, mf_mul(g, r, c));
    if (second_reader)
        loss = mf_add(g, loss, mf_mean_all(g, mf_scale(g, h, 0.0f)));
    mf_error err;
    ck_assert_int_eq(mf_graph_compile(g, &err), 0);
    mf_rng rng;
    mf_rng_seed(&rng, 4);
    for (int64_t i = 0; i < mf_node_numel(x); i++)
        mf_node_value(x)[i] = mf_rng_normal(&rng);
    for (int64_t i = 0; i < mf_node_numel(w); i++)
        mf_node_value(w)[i] = mf_rng_normal(&rng);
    for (int64_t i = 0; i < mf_node_numel(c); i++)
        mf_node_value(c)[i] = mf_rng_normal(&rng);
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    memcpy(dw, mf_node_grad(w), (size_t)mf_node_numel(w) * sizeof(float));
    *out_value = mf_node_value(loss)[0];
    *shared = mf_node_value(h) == mf_node_value(r);
    mf_graph_free(g);
}

START_TEST(inplace_relu_same_gradients)
{
    float a[54], b[54], la, lb;
    int shared_a, shared_b;
    relu_grads(0, a, &la, &shared_a);
    relu_grads(1, b, &lb, &shared_b);
    ck_assert_int_eq(shared_a, 1); /* in place */
    ck_assert_int_eq(shared_b, 0); /* two readers: out of place */
    ck_assert(la == lb);
    for (int i = 0; i < 54; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-6f * (1 + fabsf(b[i])), "dw[%d]: %g vs %g", i, a[i], b[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("steps");
    tcase_add_test(tc, steady_state_step_allocates_nothing);
    tcase_add_test(tc, bit_identical_one_thread);
    tcase_add_test(tc, bit_identical_two_threads);
    tcase_add_test(tc, blocks_gradcheck);
    tcase_add_test(tc, inplace_relu_same_gradients);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
