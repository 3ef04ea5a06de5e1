/* Neural-network op tests: bmm, conv2d, max/avg pooling, layer_norm, embedding. Forward
 * values against naive references, gradients by finite differences (mf_gradcheck), exact
 * sticky shape errors, determinism across runs and thread counts, and replays without a
 * heap allocation. */
#define _GNU_SOURCE
#include "mf_check.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

#include "alloc_count.h"
#include "op_test_util.h"

/* ---------------------------------------------------------------- helpers */

/* Distinct values, at least 0.01 apart, in a seeded order: no ties for max pooling, and a
 * finite-difference step of 1e-3 never changes which element wins. */
static void fill_distinct(mf_node *n, uint64_t seed)
{
    const int64_t N = mf_node_numel(n);
    int64_t *perm = malloc((size_t)N * sizeof *perm);
    ck_assert_ptr_nonnull(perm);
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    mf_rng r;
    mf_rng_seed(&r, seed);
    mf_rng_shuffle(&r, perm, N);
    for (int64_t i = 0; i < N; i++)
        mf_node_value(n)[i] = (float)(perm[i] - N / 2) * 0.01f;
    free(perm);
}


static int is_variable(mf_node *n) { return strcmp(mf_node_op_name(n), "variable") == 0; }




static void expect_shape(mf_node *n, int ndim, const int64_t *dims)
{
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(mf_node_shape(n)->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_int_eq(mf_node_shape(n)->dim[i], dims[i]);
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

/* ---------------------------------------------------------------- naive references */
static float at4(const float *x, const int64_t *s, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return x[((a * s[1] + b) * s[2] + c) * s[3] + d];
}

/* out (B,O,Ho,Wo) from x (B,C,H,W), w (O,C,kh,kw), bias (O) or NULL: seven loops, in double */
static void ref_conv(const float *x, const int64_t *xs, const float *w, const int64_t *ws,
                     const float *bias, int stride, int pad, float *out, int64_t Ho, int64_t Wo)
{
    for (int64_t b = 0; b < xs[0]; b++)
        for (int64_t o = 0; o < ws[0]; o++)
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int64_t c = 0; c < xs[1]; c++)
                        for (int64_t ki = 0; ki < ws[2]; ki++)
                            for (int64_t kj = 0; kj < ws[3]; kj++) {
                                int64_t ih = i * stride - pad + ki, iw = j * stride - pad + kj;
                                if (ih < 0 || ih >= xs[2] || iw < 0 || iw >= xs[3])
                                    continue;
                                acc += (double)at4(w, ws, o, c, ki, kj) *
                                       at4(x, xs, b, c, ih, iw);
                            }
                    out[((b * ws[0] + o) * Ho + i) * Wo + j] = (float)acc;
                }
}

static void ref_pool(const float *x, const int64_t *xs, int k, int s, int is_max, float *out)
{
    const int64_t Ho = (xs[2] - k) / s + 1, Wo = (xs[3] - k) / s + 1;
    for (int64_t p = 0; p < xs[0] * xs[1]; p++)
        for (int64_t i = 0; i < Ho; i++)
            for (int64_t j = 0; j < Wo; j++) {
                double acc = is_max ? -INFINITY : 0.0;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        double v = x[(p * xs[2] + i * s + ki) * xs[3] + j * s + kj];
                        acc = is_max ? (v > acc ? v : acc) : acc + v;
                    }
                out[(p * Ho + i) * Wo + j] = (float)(is_max ? acc : acc / (k * k));
            }
}

/* ---------------------------------------------------------------- bmm */
/* element (i,j) of op(m), m stored (rows, cols) row-major */
static float op_at(const float *m, int64_t cols, int trans, int64_t i, int64_t j)
{
    return trans ? m[j * cols + i] : m[i * cols + j];
}

static mf_shape bmm_shape(int four_d, int64_t r, int64_t c)
{
    return four_d ? mf_shape4(2, 3, r, c) : mf_shape3(3, r, c);
}

START_TEST(test_bmm_forward)
{
    const int ta = _i % 2, tb = (_i / 2) % 2, four = _i / 4;
    const int64_t M = 3, K = 4, N = 5, batch = four ? 6 : 3;
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", ta ? bmm_shape(four, K, M) : bmm_shape(four, M, K));
    mf_node *b = mf_input(g, "b", tb ? bmm_shape(four, N, K) : bmm_shape(four, K, N));
    mf_node *c = mf_bmm(g, a, b, ta, tb);
    const int64_t want3[] = {3, M, N}, want4[] = {2, 3, M, N};
    expect_shape(c, four ? 4 : 3, four ? want4 : want3);
    ck_assert_str_eq(mf_node_op_name(c), "bmm");
    compile_ok(g);
    fill(a, 1);
    fill(b, 2);
    mf_graph_forward(g);
    const float *av = mf_node_value(a), *bv = mf_node_value(b), *cv = mf_node_value(c);
    for (int64_t p = 0; p < batch; p++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)op_at(av + p * M * K, ta ? M : K, ta, i, k) *
                           op_at(bv + p * K * N, tb ? K : N, tb, k, j);
                ck_assert_msg(fabs(cv[(p * M + i) * N + j] - acc) < 1e-5, "bmm [%lld,%lld,%lld]",
                              (long long)p, (long long)i, (long long)j);
            }
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_bmm)
{
    const int ta = _i % 2, tb = (_i / 2) % 2, four = _i / 4;
    const int64_t M = 3, K = 4, N = 2;
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", ta ? bmm_shape(four, K, M) : bmm_shape(four, M, K));
    mf_node *b = mf_variable(g, "b", tb ? bmm_shape(four, N, K) : bmm_shape(four, K, N));
    gradcheck_filled(g, mf_bmm(g, a, b, ta, tb));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_bmm_self)
{
    /* attention scores q·qᵀ: one node on both sides, its gradients add up */
    mf_graph *g = mf_graph_new(1);
    mf_node *q = mf_variable(g, "q", mf_shape3(2, 3, 4));
    gradcheck_filled(g, mf_bmm(g, q, q, 0, 1));
    mf_graph_free(g);
    g = mf_graph_new(1); /* qᵀ·q twice: every gradient adds to what is there */
    q = mf_variable(g, "q", mf_shape4(2, 2, 3, 4));
    mf_node *c = mf_bmm(g, q, q, 1, 0);
    gradcheck_filled(g, mf_add(g, c, mf_tanh(g, mf_bmm(g, q, q, 1, 0))));
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- conv2d */
typedef struct conv_case {
    int64_t B, C, H, W, O, kh, kw;
    int stride, pad, bias;
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 5, 4, 2, 3, 3, 1, 0, 1},  /* C > 1, H != W, no padding */
    {2, 2, 5, 6, 3, 3, 3, 1, 1, 0},  /* pad 1, no bias */
    {2, 2, 7, 5, 2, 3, 3, 2, 0, 1},  /* stride 2 */
    {1, 2, 6, 7, 2, 3, 2, 2, 1, 1},  /* stride 2, pad 1, kh != kw */
    {3, 1, 4, 4, 2, 1, 1, 1, 0, 1},  /* 1x1 kernel */
    {11, 1, 3, 4, 2, 2, 2, 1, 1, 1}, /* more samples than chunks (8): partial sums */
    {1, 1, 3, 3, 1, 5, 5, 1, 1, 0},  /* kernel = padded input: one output pixel */
    {2, 2, 6, 5, 2, 5, 3, 1, 1, 1},  /* "same" width, kh != kw: Ho = H - 2 */
    {1, 2, 4, 6, 2, 5, 5, 1, 2, 0},  /* "same", pad 2: taps shifted by two */
    {2, 1, 1, 6, 2, 5, 5, 1, 2, 1},  /* H = 1: whole taps in the padding rows */
    {2, 1, 5, 1, 2, 5, 5, 1, 2, 1},  /* W = 1: whole taps in the padding columns */
    {2, 3, 5, 7, 40, 3, 3, 1, 1, 1}, /* 40 channels, 27 taps: every weight-gradient tile kind */
};
#define N_CONV_CASES (int)(sizeof conv_cases / sizeof conv_cases[0])

static mf_node *conv_of(mf_graph *g, const conv_case *k, mf_node **x, mf_node **w,
                        mf_node **bias, int x_is_input)
{
    mf_shape xs = mf_shape4(k->B, k->C, k->H, k->W);
    *x = x_is_input ? mf_input(g, "x", xs) : mf_variable(g, "x", xs);
    *w = mf_variable(g, "w", mf_shape4(k->O, k->C, k->kh, k->kw));
    *bias = k->bias ? mf_variable(g, "bias", mf_shape1(k->O)) : NULL;
    return mf_conv2d(g, *x, *w, *bias, k->stride, k->pad);
}

/* y's value (after a forward) against the reference convolution of x, w, bias as they hold
 * now, rectified when relu; returns how many outputs the relu cut (0 without it). */
static int64_t expect_conv_output(const conv_case *k, mf_node *x, mf_node *w, mf_node *bias,
                                  mf_node *y, int relu, int t)
{
    const int64_t Ho = mf_node_shape(y)->dim[2], Wo = mf_node_shape(y)->dim[3];
    const int64_t n = mf_node_numel(y);
    float *ref = malloc((size_t)n * sizeof(float));
    ref_conv(mf_node_value(x), mf_node_shape(x)->dim, mf_node_value(w), mf_node_shape(w)->dim,
             bias ? mf_node_value(bias) : NULL, k->stride, k->pad, ref, Ho, Wo);
    int64_t cut = 0;
    for (int64_t i = 0; relu && i < n; i++) {
        cut += ref[i] <= 0.0f;
        ref[i] = ref[i] > 0.0f ? ref[i] : 0.0f;
    }
    double d = max_diff(mf_node_value(y), ref, n);
    ck_assert_msg(d < 1e-4, "case %d: max difference %g", t, d);
    free(ref);
    return cut;
}

START_TEST(test_conv_forward)
{
    for (int t = 0; t < N_CONV_CASES; t++) {
        const conv_case *k = &conv_cases[t];
        mf_graph *g = mf_graph_new(0);
        mf_node *x, *w, *bias;
        mf_node *y = conv_of(g, k, &x, &w, &bias, 1);
        const int64_t Ho = (k->H + 2 * k->pad - k->kh) / k->stride + 1;
        const int64_t Wo = (k->W + 2 * k->pad - k->kw) / k->stride + 1;
        const int64_t want[] = {k->B, k->O, Ho, Wo};
        expect_shape(y, 4, want);
        compile_ok(g);
        fill(x, 10 + t);
        fill(w, 20 + t);
        if (bias)
            fill(bias, 30 + t);
        mf_graph_forward(g);
        expect_conv_output(k, x, w, bias, y, 0, t);
        mf_graph_free(g);
    }
}
END_TEST

START_TEST(test_grad_conv)
{
    const conv_case *k = &conv_cases[_i];
    mf_graph *g = mf_graph_new(1);
    mf_node *x, *w, *bias;
    gradcheck_filled(g, conv_of(g, k, &x, &w, &bias, 0));
    mf_graph_free(g);

    /* x as data (no gradient), as for a first layer */
    g = mf_graph_new(1);
    mf_node *y = conv_of(g, k, &x, &w, &bias, 1);
    compile_ok(g);
    fill(x, 5);
    ck_assert_ptr_null(mf_node_grad(x));
    gradcheck_filled(g, y);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_conv_stack)
{
    /* conv → relu → conv: x's gradient flows through two col2im passes; w1 is used twice */
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(2, 2, 6, 5));
    mf_node *w1 = mf_variable(g, "w1", mf_shape4(3, 2, 3, 3));
    mf_node *b1 = mf_variable(g, "b1", mf_shape1(3));
    mf_node *w2 = mf_variable(g, "w2", mf_shape4(2, 3, 2, 2));
    mf_node *h = mf_tanh(g, mf_conv2d(g, x, w1, b1, 1, 1));
    mf_node *y = mf_conv2d(g, h, w2, NULL, 2, 0);
    mf_node *y2 = mf_conv2d(g, mf_tanh(g, mf_conv2d(g, x, w1, NULL, 2, 1)), w2, NULL, 1, 0);
    gradcheck_filled(g, mf_add(g, mf_sum_all(g, mf_tanh(g, y)), mf_sum_all(g, mf_tanh(g, y2))));
    mf_graph_free(g);
}
END_TEST

/* conv → relu, the relu fused into the conv (it rectifies as it writes and masks the
 * gradient before its backward passes): on the im2col path (3 channels in, 2 out: too few
 * taps for the direct kernel) and on the direct one both ways (4 in, 4 out); forward against
 * relu of the reference convolution */
START_TEST(test_conv_relu_fused)
{
    const conv_case cases[] = {{3, 3, 6, 5, 2, 3, 3, 1, 1, 1}, {3, 4, 6, 5, 4, 3, 3, 1, 1, 1}};
    for (int t = 0; t < 2; t++) {
        const conv_case *k = &cases[t];
        mf_graph *g = mf_graph_new(1);
        mf_node *x, *w, *bias;
        mf_node *y = mf_relu(g, conv_of(g, k, &x, &w, &bias, 0));
        gradcheck_filled(g, y);
        mf_graph_forward(g);
        const int64_t cut = expect_conv_output(k, x, w, bias, y, 1, t);
        ck_assert_msg(cut > 0 && cut < mf_node_numel(y), "case %d: relu cuts %lld", t,
                      (long long)cut);
        mf_graph_free(g);
    }
}
END_TEST

/* conv → relu → max_pool2d, the pool run by the conv per chunk of samples (graph.c's
 * fuses_into_conv): 2×2 stride 2 (the uint8 argmax) and 3×3 stride 2 (the general path),
 * more samples than chunks, on both conv paths; gradients, and the forward against an
 * unfused graph (a relu read twice is not fused) */
START_TEST(test_conv_relu_pool_fused)
{
    const conv_case cases[] = {{11, 3, 8, 7, 2, 3, 3, 1, 1, 1}, {11, 4, 8, 7, 4, 3, 3, 1, 1, 0}};
    for (int t = 0; t < 4; t++) {
        const conv_case *k = &cases[t % 2];
        const int pk = t < 2 ? 2 : 3;
        mf_graph *g = mf_graph_new(1);
        mf_node *x, *w, *bias;
        mf_node *y = mf_max_pool2d(g, mf_relu(g, conv_of(g, k, &x, &w, &bias, 0)), pk, 2);
        gradcheck_filled(g, y);
        mf_graph_forward(g);
        /* the same numbers through an unfused graph: its relu has a second reader */
        mf_graph *u = mf_graph_new(0);
        mf_node *ux, *uw, *ub;
        mf_node *ur = mf_relu(u, conv_of(u, k, &ux, &uw, &ub, 1));
        mf_node *uy = mf_max_pool2d(u, ur, pk, 2);
        ck_assert_ptr_nonnull(mf_add(u, mf_sum_all(u, ur), mf_sum_all(u, uy)));
        compile_ok(u);
        memcpy(mf_node_value(ux), mf_node_value(x), (size_t)mf_node_numel(x) * sizeof(float));
        memcpy(mf_node_value(uw), mf_node_value(w), (size_t)mf_node_numel(w) * sizeof(float));
        if (bias)
            memcpy(mf_node_value(ub), mf_node_value(bias), (size_t)k->O * sizeof(float));
        mf_graph_forward(u);
        double d = max_diff(mf_node_value(y), mf_node_value(uy), mf_node_numel(y));
        ck_assert_msg(d == 0.0, "case %d: fused and unfused differ by %g", t, d);
        mf_graph_free(u);
        mf_graph_free(g);
    }
}
END_TEST

/* A backward pass that starts at the fused relu, after one that went through the pool: the
 * pool's gradient of the earlier pass must not be scattered again (the conv runs the fused
 * pool's backward only in a pass that reached the pool). */
START_TEST(test_conv_pool_fused_partial_backward)
{
    const conv_case k = {3, 4, 8, 7, 4, 3, 3, 1, 1, 1};
    mf_graph *g = mf_graph_new(1);
    mf_node *x, *w, *bias;
    mf_node *r = mf_relu(g, conv_of(g, &k, &x, &w, &bias, 0));
    mf_node *loss = mf_sum_all(g, mf_max_pool2d(g, r, 2, 2));
    ck_assert_ptr_nonnull(loss);
    compile_fill(g);
    mf_graph_forward(g);
    mf_graph_backward(g, loss); /* through the pool */
    gradcheck_ok(g, r);         /* then from the relu alone */
    mf_graph_free(g);
}
END_TEST

/* brief conv: on the "same" path (stride 1, Wo = W) a chunk's column buffer is zeroed once
 * and each sample writes only its taps' runs, so samples after the first in a chunk rely on
 * the padding staying zero; and the backward pass keeps the columns' gradient in a buffer of
 * its own. More samples than chunks (8) put several samples in a chunk. */
START_TEST(test_conv_same_chunk_reuse)
{
    const conv_case k = {19, 2, 5, 4, 3, 3, 3, 1, 1, 1}; /* 2-3 samples per chunk */
    for (int train = 0; train < 2; train++) {
        mf_graph *g = mf_graph_new(train);
        mf_node *x, *w, *bias;
        mf_node *y = conv_of(g, &k, &x, &w, &bias, 0);
        mf_node *loss = train ? mf_sum_all(g, mf_tanh(g, y)) : NULL;
        compile_ok(g);
        fill(x, 71);
        fill(w, 72);
        fill(bias, 73);
        for (int rep = 0; rep < 2; rep++) { /* the second pass finds the buffers used */
            mf_graph_forward(g);
            if (loss)
                mf_graph_backward(g, loss);
        }
        float *ref = malloc((size_t)mf_node_numel(y) * sizeof(float));
        ref_conv(mf_node_value(x), mf_node_shape(x)->dim, mf_node_value(w), mf_node_shape(w)->dim,
                 mf_node_value(bias), 1, 1, ref, 5, 4);
        double d = max_diff(mf_node_value(y), ref, mf_node_numel(y));
        ck_assert_msg(d < 1e-4, "train %d: max difference %g", train, d);
        free(ref);
        mf_graph_free(g);
    }
    /* gradients with two samples in some chunks */
    const conv_case kg = {10, 2, 4, 3, 2, 3, 3, 1, 1, 1};
    mf_graph *g = mf_graph_new(1);
    mf_node *x, *w, *bias;
    gradcheck_filled(g, conv_of(g, &kg, &x, &w, &bias, 0));
    mf_graph_free(g);
}
END_TEST

/* brief conv: the direct stride-1 kernel (at least 32 taps per output, forward C·kh·kw and
 * back to x O·kh·kw): channel counts that are not a multiple of its 8-channel tiles, wide
 * grids that are not a multiple of its 32-position tiles, kh != kw, pad 0 to kernel-1, and
 * batches below and above the 8 chunks. */
static const conv_case direct_cases[] = {
    {3, 4, 5, 7, 10, 3, 3, 1, 1, 1},  /* O = 10: a partial channel tile */
    {2, 5, 6, 5, 4, 3, 5, 1, 1, 0},   /* kh != kw, O < 8 (dx: 60 taps, C = 5) */
    {11, 4, 4, 4, 9, 3, 3, 1, 0, 1},  /* pad 0; 2 samples in some chunks */
    {1, 2, 7, 6, 8, 5, 5, 1, 4, 1},   /* pad = kernel - 1 */
    {2, 1, 9, 8, 6, 6, 6, 1, 2, 1},   /* C = 1, even kernel: 36 taps */
};
#define N_DIRECT_CASES (int)(sizeof direct_cases / sizeof direct_cases[0])

START_TEST(test_conv_direct)
{
    const conv_case *k = &direct_cases[_i];
    mf_graph *g = mf_graph_new(0);
    mf_node *x, *w, *bias;
    mf_node *y = conv_of(g, k, &x, &w, &bias, 1);
    compile_ok(g);
    fill(x, 60 + _i);
    fill(w, 61 + _i);
    if (bias)
        fill(bias, 62 + _i);
    mf_graph_forward(g);
    expect_conv_output(k, x, w, bias, y, 0, _i);
    mf_graph_free(g);

    g = mf_graph_new(1);
    gradcheck_filled(g, mf_tanh(g, conv_of(g, k, &x, &w, &bias, 0)));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_conv_bias_only)
{
    /* w as data: only x's and the bias's gradients (the columns hold just the row of ones) */
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(10, 2, 4, 5));
    mf_node *w = mf_input(g, "w", mf_shape4(3, 2, 3, 3));
    mf_node *bias = mf_variable(g, "bias", mf_shape1(3));
    mf_node *y = mf_tanh(g, mf_conv2d(g, x, w, bias, 1, 1));
    compile_ok(g);
    fill(x, 8);
    fill(w, 9);
    fill(bias, 10);
    ck_assert_ptr_null(mf_node_grad(w));
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- pooling */
typedef struct pool_case {
    int64_t B, C, H, W;
    int k, stride;
} pool_case;

static const pool_case pool_cases[] = {
    {2, 3, 4, 6, 2, 2}, /* the common case */
    {1, 2, 5, 7, 2, 2}, /* odd sizes: floor mode drops the last row and column */
    {2, 2, 5, 4, 3, 2}, /* overlapping windows */
    {1, 2, 4, 5, 2, 1}, /* k = 2, stride 1 */
    {2, 1, 6, 6, 3, 3}, /* k = stride = 3 */
    {1, 1, 3, 4, 3, 1}, /* window = full height */
};
#define N_POOL_CASES (int)(sizeof pool_cases / sizeof pool_cases[0])

START_TEST(test_pool_forward)
{
    for (int t = 0; t < N_POOL_CASES; t++)
        for (int variant = 0; variant < 3; variant++) {
            /* avg; max in a training graph (argmax kept); max in an inference graph */
            const int is_max = variant > 0;
            const pool_case *p = &pool_cases[t];
            mf_graph *g = mf_graph_new(variant == 1);
            mf_node *x = mf_variable(g, "x", mf_shape4(p->B, p->C, p->H, p->W));
            mf_node *y = is_max ? mf_max_pool2d(g, x, p->k, p->stride)
                                : mf_avg_pool2d(g, x, p->k, p->stride);
            const int64_t want[] = {p->B, p->C, (p->H - p->k) / p->stride + 1,
                                    (p->W - p->k) / p->stride + 1};
            expect_shape(y, 4, want);
            compile_ok(g);
            fill(x, 40 + t);
            mf_graph_forward(g);
            float *ref = malloc((size_t)mf_node_numel(y) * sizeof(float));
            ref_pool(mf_node_value(x), mf_node_shape(x)->dim, p->k, p->stride, is_max, ref);
            double d = max_diff(mf_node_value(y), ref, mf_node_numel(y));
            ck_assert_msg(d < 1e-6, "%s case %d: max difference %g", is_max ? "max" : "avg", t, d);
            free(ref);
            mf_graph_free(g);
        }
}
END_TEST

START_TEST(test_max_pool_ties_and_nan)
{
    /* ties go to the first element in row-major order; a NaN in a window wins */
    for (int k = 2; k <= 3; k++) { /* the 2x2 fast path and the general one */
        mf_graph *g = mf_graph_new(1);
        mf_node *x = mf_variable(g, "x", mf_shape4(1, 1, k, 2 * k));
        mf_node *y = mf_max_pool2d(g, x, k, k); /* two windows: columns [0,k) and [k,2k) */
        mf_node *loss = mf_sum_all(g, y);
        compile_ok(g);
        float *v = mf_node_value(x);
        for (int i = 0; i < 2 * k * k; i++)
            v[i] = 1.0f;
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        ck_assert(mf_node_value(y)[0] == 1.0f && mf_node_value(y)[1] == 1.0f);
        const float *dx = mf_node_grad(x);
        for (int i = 0; i < 2 * k * k; i++) /* each window's first element takes it all */
            ck_assert_msg(dx[i] == (i == 0 || i == k ? 1.0f : 0.0f), "k %d: dx[%d] = %g", k, i,
                          (double)dx[i]);

        v[2 * k - 1] = NAN;                    /* window 1: a NaN at the end of its first row */
        v[(k - 1) * 2 * k + 2 * k - 1] = 5.0f; /* and a larger number after it */
        v[k * 2 * k - 2 * k] = 7.0f;           /* window 0: the max in its last row */
        mf_graph_forward(g);
        ck_assert(mf_node_value(y)[0] == 7.0f);
        ck_assert(isnan(mf_node_value(y)[1]));
        /* an inference graph (no argmax: its own 2x2 path) gives the same values */
        mf_graph *e = mf_graph_new(0);
        mf_node *xe = mf_variable(e, "x", mf_shape4(1, 1, k, 2 * k));
        mf_node *ye = mf_max_pool2d(e, xe, k, k);
        compile_ok(e);
        memcpy(mf_node_value(xe), v, (size_t)(2 * k * k) * sizeof(float));
        mf_graph_forward(e);
        ck_assert(mf_node_value(ye)[0] == 7.0f);
        ck_assert(isnan(mf_node_value(ye)[1]));
        mf_graph_free(e);
        mf_graph_free(g);
    }
}
END_TEST

START_TEST(test_grad_max_pool)
{
    const pool_case *p = &pool_cases[_i];
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(p->B, p->C, p->H, p->W));
    mf_node *y = mf_max_pool2d(g, x, p->k, p->stride);
    ck_assert_ptr_nonnull(y);
    compile_ok(g);
    fill_distinct(x, 50 + (uint64_t)_i);
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_avg_pool)
{
    const pool_case *p = &pool_cases[_i];
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(p->B, p->C, p->H, p->W));
    gradcheck_filled(g, mf_avg_pool2d(g, x, p->k, p->stride));
    mf_graph_free(g);
}
END_TEST

/* brief pool: the 2×2 fast path (16-output blocks, a uint8 argmax) and the general one, on
 * inputs full of ties, signed zeros and NaNs, against the select rule itself: in row-major
 * order, v replaces the running max when v > max or v is NaN (PyTorch's). */
typedef struct pool_tie_case {
    int64_t B, C, H, W;
    int k, stride;
} pool_tie_case;

static const pool_tie_case pool_tie_cases[] = {
    {2, 3, 6, 8, 2, 2},  /* the common case */
    {1, 2, 5, 7, 2, 2},  /* odd H and W: a row and a column no window covers */
    {1, 1, 4, 37, 2, 2}, /* Wo 18: a full block of 16 outputs and a tail of 2 */
    {1, 2, 2, 64, 2, 2}, /* Wo 32: two full blocks */
    {2, 2, 7, 9, 3, 2},  /* overlapping windows */
    {1, 2, 6, 6, 3, 3},
};
#define N_POOL_TIE_CASES (int)(sizeof pool_tie_cases / sizeof pool_tie_cases[0])

/* Values from {-1, -0, +0, 1, 2, NaN}: most windows hold ties, some a NaN or two. */
static void fill_ties(float *v, int64_t n, uint64_t seed)
{
    const float pick[6] = {-1.0f, -0.0f, 0.0f, 1.0f, 2.0f, NAN};
    mf_rng r;
    mf_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        const uint64_t u = mf_rng_below(&r, 40);
        v[i] = u < 2 ? pick[5] : pick[u % 5];
    }
}

/* The rule, window by window: y and the plane offset of each output's max. */
static void ref_max_pool_rule(const float *x, const pool_tie_case *p, float *y, int64_t *at)
{
    const int64_t Ho = (p->H - p->k) / p->stride + 1, Wo = (p->W - p->k) / p->stride + 1;
    for (int64_t pl = 0; pl < p->B * p->C; pl++)
        for (int64_t i = 0; i < Ho; i++)
            for (int64_t j = 0; j < Wo; j++) {
                const float *xp = x + pl * p->H * p->W;
                int64_t best = i * p->stride * p->W + j * p->stride;
                for (int ki = 0; ki < p->k; ki++)
                    for (int kj = 0; kj < p->k; kj++) {
                        const int64_t o = (i * p->stride + ki) * p->W + j * p->stride + kj;
                        if (xp[o] > xp[best] || isnan(xp[o]))
                            best = o;
                    }
                const int64_t q = (pl * Ho + i) * Wo + j;
                y[q] = xp[best];
                at[q] = pl * p->H * p->W + best;
            }
}

START_TEST(test_max_pool_rule)
{
    const pool_tie_case *p = &pool_tie_cases[_i];
    const int64_t nx = p->B * p->C * p->H * p->W;
    for (int shared = 0; shared < 2; shared++) { /* x read by the pool alone, or also by a sum */
        mf_graph *g = mf_graph_new(1), *e = mf_graph_new(0);
        const mf_shape sx = mf_shape4(p->B, p->C, p->H, p->W);
        mf_node *x = mf_variable(g, "x", sx), *xe = mf_variable(e, "x", sx);
        mf_node *y = mf_max_pool2d(g, x, p->k, p->stride);
        mf_node *ye = mf_max_pool2d(e, xe, p->k, p->stride);
        mf_node *c = mf_input(g, "c", *mf_node_shape(y));
        mf_node *loss = mf_sum_all(g, mf_mul(g, y, c)); /* dy = c */
        if (shared)
            loss = mf_add(g, loss, mf_sum_all(g, x)); /* dx = 1 + the pool's */
        compile_ok(g);
        compile_ok(e);
        const int64_t ny = mf_node_numel(y);
        fill_ties(mf_node_value(x), nx, 70 + (uint64_t)_i);
        memcpy(mf_node_value(xe), mf_node_value(x), (size_t)nx * sizeof(float));
        fill(c, 80 + (uint64_t)_i);
        float *ry = malloc((size_t)ny * sizeof(float)), *rdx = calloc((size_t)nx, sizeof(float));
        int64_t *at = malloc((size_t)ny * sizeof *at);
        ref_max_pool_rule(mf_node_value(x), p, ry, at);
        for (int64_t i = 0; i < nx; i++) /* the sum's gradient first: it runs first backward */
            rdx[i] = shared ? 1.0f : 0.0f;
        for (int64_t q = 0; q < ny; q++)
            rdx[at[q]] += mf_node_value(c)[q];
        for (int rep = 0; rep < 2; rep++) { /* a replay too: the gradient must not pile up */
            mf_graph_forward(g);
            mf_graph_backward(g, loss);
            mf_graph_forward(e);
            /* which of -0 and +0 wins, and NaN where the reference has one */
            for (int64_t q = 0; q < ny; q++) {
                const float a = mf_node_value(y)[q], b = mf_node_value(ye)[q], r = ry[q];
                ck_assert_msg((isnan(r) && isnan(a) && isnan(b)) ||
                                  (a == r && b == r && signbit(a) == signbit(r) &&
                                   signbit(b) == signbit(r)),
                              "case %d out %ld: train %g eval %g want %g", _i, (long)q, (double)a,
                              (double)b, (double)r);
            }
            const float *dx = mf_node_grad(x);
            for (int64_t i = 0; i < nx; i++)
                ck_assert_msg(dx[i] == rdx[i], "case %d shared %d: dx[%ld] = %g, want %g", _i,
                              shared, (long)i, (double)dx[i], (double)rdx[i]);
        }
        free(ry);
        free(rdx);
        free(at);
        mf_graph_free(g);
        mf_graph_free(e);
    }
}
END_TEST

START_TEST(test_grad_max_pool_blocks)
{
    /* the 2×2 path across a block boundary (Wo 18, odd W), and 3×3 stride 2 (overlapping) */
    const pool_tie_case p = _i ? (pool_tie_case){1, 2, 7, 9, 3, 2}
                               : (pool_tie_case){1, 2, 4, 37, 2, 2};
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(p.B, p.C, p.H, p.W));
    mf_node *y = mf_max_pool2d(g, x, p.k, p.stride);
    compile_ok(g);
    fill_distinct(x, 90 + (uint64_t)_i);
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_max_pool_threads)
{
    /* above the split threshold (32768 inputs): 1 and 2 threads give the same bits */
    const int k = _i ? 3 : 2, s = 2;
    float *out[2];
    int64_t n = 0;
    for (int t = 0; t < 2; t++) {
        mf_set_threads(t + 1);
        mf_graph *g = mf_graph_new(1);
        mf_node *x = mf_variable(g, "x", mf_shape4(4, 8, 34, 36));
        mf_node *y = mf_max_pool2d(g, x, k, s);
        mf_node *c = mf_input(g, "c", *mf_node_shape(y));
        mf_node *loss = mf_sum_all(g, mf_mul(g, y, c));
        compile_ok(g);
        fill_ties(mf_node_value(x), mf_node_numel(x), 7);
        fill(c, 8);
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        const int64_t ny = mf_node_numel(y), nx = mf_node_numel(x);
        n = ny + nx;
        out[t] = malloc((size_t)n * sizeof(float));
        memcpy(out[t], mf_node_value(y), (size_t)ny * sizeof(float));
        memcpy(out[t] + ny, mf_node_grad(x), (size_t)nx * sizeof(float));
        mf_graph_free(g);
    }
    mf_set_threads(2);
    ck_assert_msg(memcmp(out[0], out[1], (size_t)n * sizeof(float)) == 0,
                  "k %d: 1 and 2 threads differ", k);
    free(out[0]);
    free(out[1]);
}
END_TEST
/* end brief pool */

/* ---------------------------------------------------------------- layer_norm */
START_TEST(test_layer_norm_forward)
{
    const int with_gamma = _i & 1, with_beta = (_i >> 1) & 1;
    const int64_t R = 6, D = 7;
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(2, 3, D));
    mf_node *gamma = with_gamma ? mf_input(g, "gamma", mf_shape1(D)) : NULL;
    mf_node *beta = with_beta ? mf_input(g, "beta", mf_shape1(D)) : NULL;
    mf_node *y = mf_layer_norm(g, x, gamma, beta, 1e-5f);
    const int64_t want[] = {2, 3, D};
    expect_shape(y, 3, want);
    compile_ok(g);
    fill(x, 60);
    mf_node_value(x)[3] += 50.0f; /* an offset row: the variance is taken about the mean */
    if (gamma)
        fill(gamma, 61);
    if (beta)
        fill(beta, 62);
    mf_graph_forward(g);
    const float *xv = mf_node_value(x), *yv = mf_node_value(y);
    for (int64_t r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < D; i++)
            m += xv[r * D + i];
        m /= D;
        for (int64_t i = 0; i < D; i++)
            v += (xv[r * D + i] - m) * (xv[r * D + i] - m);
        v /= D;
        for (int64_t i = 0; i < D; i++) {
            double want_y = (xv[r * D + i] - m) / sqrt(v + 1e-5);
            if (gamma)
                want_y *= mf_node_value(gamma)[i];
            if (beta)
                want_y += mf_node_value(beta)[i];
            ck_assert_msg(fabs(yv[r * D + i] - want_y) < 1e-4, "y[%lld,%lld] = %g, want %g",
                          (long long)r, (long long)i, (double)yv[r * D + i], want_y);
        }
    }
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_layer_norm)
{
    const int with_gamma = _i & 1, with_beta = (_i >> 1) & 1;
    for (int three_d = 0; three_d < 2; three_d++) {
        mf_graph *g = mf_graph_new(1);
        mf_node *x = mf_variable(g, "x", three_d ? mf_shape3(2, 2, 5) : mf_shape2(3, 6));
        const int64_t D = three_d ? 5 : 6;
        mf_node *gamma = with_gamma ? mf_variable(g, "gamma", mf_shape1(D)) : NULL;
        mf_node *beta = with_beta ? mf_variable(g, "beta", mf_shape1(D)) : NULL;
        gradcheck_filled(g, mf_layer_norm(g, x, gamma, beta, 1e-5f));
        mf_graph_free(g);
    }
}
END_TEST

/* ---------------------------------------------------------------- embedding */
START_TEST(test_embedding_forward)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *table = mf_variable(g, "table", mf_shape2(4, 3));
    mf_node *idx = mf_input(g, "idx", mf_shape2(2, 3));
    mf_node *y = mf_embedding(g, table, idx);
    const int64_t want[] = {2, 3, 3};
    expect_shape(y, 3, want);
    compile_ok(g);
    for (int i = 0; i < 12; i++)
        mf_node_value(table)[i] = (float)i;
    /* out-of-range indices (4, -1, NaN) read as rows of zeros and take no gradient */
    const float iv[] = {2, 0, 2, 4, -1, NAN};
    memcpy(mf_node_value(idx), iv, sizeof iv);
    mf_graph_forward(g);
    const float *yv = mf_node_value(y);
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 3; j++)
            ck_assert(yv[k * 3 + j] == (k < 3 ? (float)iv[k] * 3 + j : 0.0f));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_embedding)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *table = mf_variable(g, "table", mf_shape2(5, 3));
    mf_node *idx = mf_input(g, "idx", mf_shape2(2, 4));
    mf_node *y = mf_embedding(g, table, idx);
    ck_assert_ptr_nonnull(y);
    compile_ok(g);
    const float iv[] = {1, 3, 1, 0, 3, 3, 4, 7 /* out of range */};
    memcpy(mf_node_value(idx), iv, sizeof iv);
    fill(table, 70);
    ck_assert_ptr_null(mf_node_grad(idx));
    gradcheck_ok(g, y);

    /* the scattered gradient by hand: d(Σ y)/d table[r] = how often r was picked */
    mf_graph_free(g);
    g = mf_graph_new(1);
    table = mf_variable(g, "table", mf_shape2(5, 3));
    idx = mf_input(g, "idx", mf_shape2(2, 4));
    mf_node *loss = mf_sum_all(g, mf_embedding(g, table, idx));
    compile_ok(g);
    memcpy(mf_node_value(idx), iv, sizeof iv);
    fill(table, 70);
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    const float count[5] = {1, 2, 0, 3, 1};
    for (int r = 0; r < 5; r++)
        for (int j = 0; j < 3; j++)
            ck_assert(mf_node_grad(table)[r * 3 + j] == count[r]);
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- sticky errors */
START_TEST(test_errors)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_input(g, "x", mf_shape4(2, 3, 8, 8));
    expect_error(g, mf_conv2d(g, x, mf_variable(g, "w", mf_shape4(4, 2, 3, 3)), NULL, 1, 1),
                 "conv2d: channels differ: x (2,3,8,8) has 3, w (4,2,3,3) expects 2");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape3(2, 3, 8));
    expect_error(g, mf_conv2d(g, x, mf_variable(g, "w", mf_shape4(4, 3, 3, 3)), NULL, 1, 1),
                 "conv2d: x must be (B,C,H,W) and w (O,C,kh,kw): x (2,3,8), w (4,3,3,3)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(2, 3, 8, 8));
    expect_error(g,
                 mf_conv2d(g, x, mf_variable(g, "w", mf_shape4(4, 3, 3, 3)),
                           mf_variable(g, "b", mf_shape1(3)), 1, 1),
                 "conv2d: bias must be (4) for w (4,3,3,3): bias (3)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(1, 1, 2, 2));
    expect_error(g, mf_conv2d(g, x, mf_variable(g, "w", mf_shape4(1, 1, 5, 5)), NULL, 1, 1),
                 "conv2d: kernel 5x5 larger than the padded input 4x4: x (1,1,2,2), "
                 "w (1,1,5,5), pad 1");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(1, 1, 4, 4));
    expect_error(g, mf_conv2d(g, x, mf_variable(g, "w", mf_shape4(1, 1, 3, 3)), NULL, 0, 0),
                 "conv2d: stride must be >= 1 and pad >= 0: stride 0, pad 0");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(1, 2, 3, 5));
    expect_error(g, mf_max_pool2d(g, x, 4, 4),
                 "max_pool2d: window 4x4 larger than the input (1,2,3,5)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(1, 2, 3, 5));
    expect_error(g, mf_max_pool2d(g, x, 0, 1),
                 "max_pool2d: window and stride must be >= 1: k 0, stride 1");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape3(2, 3, 4));
    expect_error(g, mf_avg_pool2d(g, x, 2, 2), "avg_pool2d: x must be (B,C,H,W): x (2,3,4)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape2(4, 6));
    expect_error(g, mf_layer_norm(g, x, mf_variable(g, "gamma", mf_shape1(5)), NULL, 1e-5f),
                 "layer_norm: gamma must be (6) to match the last axis of x (4,6): gamma (5)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape2(4, 6));
    expect_error(g,
                 mf_layer_norm(g, x, mf_variable(g, "gamma", mf_shape1(6)),
                               mf_variable(g, "beta", mf_shape2(6, 1)), 1e-5f),
                 "layer_norm: beta must be (6) to match the last axis of x (4,6): beta (6,1)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape2(4, 6));
    expect_error(g, mf_layer_norm(g, x, NULL, mf_variable(g, "beta", mf_shape1(4)), 1e-5f),
                 "layer_norm: beta must be (6) to match the last axis of x (4,6): beta (4)");

    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape2(4, 6));
    expect_error(g, mf_layer_norm(g, x, NULL, NULL, -1.0f),
                 "layer_norm: eps must be finite and >= 0: -1");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_bmm(g, mf_variable(g, "a", mf_shape3(2, 3, 4)),
                        mf_variable(g, "b", mf_shape3(3, 4, 5)), 0, 0),
                 "bmm: batch axes differ: (2,3,4) x (3,4,5)");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_bmm(g, mf_variable(g, "a", mf_shape3(2, 3, 4)),
                        mf_variable(g, "b", mf_shape3(2, 5, 6)), 0, 1),
                 "bmm: inner dimensions differ: (2,3,4) x (2,5,6)^T");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_bmm(g, mf_variable(g, "a", mf_shape2(3, 4)),
                        mf_variable(g, "b", mf_shape2(4, 5)), 0, 0),
                 "bmm: inputs must both be 3-D or both 4-D: (3,4) x (4,5)");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_bmm(g, mf_variable(g, "a", mf_shape4(1, 2, 3, 4)),
                        mf_variable(g, "b", mf_shape3(2, 4, 5)), 1, 0),
                 "bmm: inputs must both be 3-D or both 4-D: (1,2,3,4)^T x (2,4,5)");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_embedding(g, mf_variable(g, "t", mf_shape3(2, 3, 4)),
                              mf_input(g, "i", mf_shape1(3))),
                 "embedding: table must be 2-D (V,D): table (2,3,4)");

    g = mf_graph_new(1);
    expect_error(g,
                 mf_embedding(g, mf_variable(g, "t", mf_shape2(5, 4)),
                              mf_input(g, "i", mf_shape4(1, 2, 3, 4))),
                 "embedding: idx (1,2,3,4) has too many axes: the output (idx shape…,D) "
                 "allows at most 4");

    /* the first error stays; NULL passes through */
    g = mf_graph_new(1);
    x = mf_input(g, "x", mf_shape4(1, 2, 3, 5));
    ck_assert_ptr_null(mf_max_pool2d(g, x, 4, 4));
    ck_assert_ptr_null(mf_conv2d(g, NULL, mf_variable(g, "w", mf_shape4(1, 2, 1, 1)), NULL, 1, 0));
    ck_assert_ptr_null(mf_layer_norm(g, x, mf_variable(g, "gamma", mf_shape1(2)), NULL, 1e-5f));
    ck_assert_str_eq(mf_graph_error(g), "max_pool2d: window 4x4 larger than the input (1,2,3,5)");
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- threads and determinism */
typedef struct stack {
    mf_graph *g;
    mf_node *mine[8]; /* the nodes of this suite's ops */
    int n_mine;
    mf_node *loss;
} stack;

/* conv → relu → max pool → conv → avg pool → layer_norm, and embedding → layer_norm,
 * each big enough for its op's parallel path (at least 32768 elements or multiply-adds) */
static void stack_build(stack *s)
{
    mf_graph *g = s->g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape4(16, 2, 20, 18));
    mf_node *w1 = mf_variable(g, "w1", mf_shape4(8, 2, 3, 3));
    mf_node *b1 = mf_variable(g, "b1", mf_shape1(8));
    mf_node *w2 = mf_variable(g, "w2", mf_shape4(6, 8, 3, 3));
    mf_node *gamma = mf_variable(g, "gamma", mf_shape1(4));
    mf_node *beta = mf_variable(g, "beta", mf_shape1(4));
    mf_node *table = mf_variable(g, "table", mf_shape2(50, 16));
    mf_node *idx = mf_input(g, "idx", mf_shape2(16, 300));
    mf_node **m = s->mine;
    m[0] = mf_conv2d(g, x, w1, b1, 1, 1);                      /* (16,8,20,18) */
    m[1] = mf_max_pool2d(g, mf_relu(g, m[0]), 2, 2);            /* (16,8,10,9) */
    m[2] = mf_conv2d(g, m[1], w2, NULL, 1, 1);                  /* (16,6,10,9) */
    m[3] = mf_avg_pool2d(g, m[2], 2, 2);                        /* (16,6,5,4) */
    m[4] = mf_layer_norm(g, m[3], gamma, beta, 1e-5f);
    m[5] = mf_embedding(g, table, idx);                         /* (16,300,16) */
    m[6] = mf_layer_norm(g, m[5], NULL, NULL, 1e-5f);
    s->n_mine = 7;
    mf_node *c1 = mf_input(g, "c1", mf_shape4(16, 6, 5, 4));
    mf_node *c2 = mf_input(g, "c2", mf_shape3(16, 300, 16));
    s->loss = mf_add(g, mf_sum_all(g, mf_mul(g, m[4], c1)), mf_sum_all(g, mf_mul(g, m[6], c2)));
    ck_assert_ptr_nonnull(s->loss);
    compile_ok(g);
    for (int i = 0; i < mf_graph_size(g); i++)
        if (is_variable(mf_graph_node(g, i)))
            fill(mf_graph_node(g, i), 3000u + (uint64_t)i);
    fill(c1, 1);
    fill(c2, 2);
    mf_rng r;
    mf_rng_seed(&r, 5);
    for (int64_t i = 0; i < mf_node_numel(idx); i++)
        mf_node_value(idx)[i] = (float)mf_rng_below(&r, 50);
}

/* Forward and backward; then the values of this suite's nodes and the variables'
 * gradients, concatenated into a new buffer of *n floats. */
static float *stack_run(stack *s, int64_t *n)
{
    mf_graph_forward(s->g);
    mf_graph_backward(s->g, s->loss);
    int64_t total = 0;
    for (int k = 0; k < s->n_mine; k++)
        total += mf_node_numel(s->mine[k]);
    for (int i = 0; i < mf_graph_size(s->g); i++)
        if (is_variable(mf_graph_node(s->g, i)))
            total += mf_node_numel(mf_graph_node(s->g, i));
    float *buf = malloc((size_t)total * sizeof(float)), *p = buf;
    ck_assert_ptr_nonnull(buf);
    for (int k = 0; k < s->n_mine; k++) {
        memcpy(p, mf_node_value(s->mine[k]), (size_t)mf_node_numel(s->mine[k]) * sizeof(float));
        p += mf_node_numel(s->mine[k]);
    }
    for (int i = 0; i < mf_graph_size(s->g); i++) {
        mf_node *v = mf_graph_node(s->g, i);
        if (is_variable(v)) {
            memcpy(p, mf_node_grad(v), (size_t)mf_node_numel(v) * sizeof(float));
            p += mf_node_numel(v);
        }
    }
    *n = total;
    return buf;
}

/* conv2d splits a batch into chunks fixed by the batch size and adds their partial weight
 * gradients in chunk order; pooling, layer_norm and embedding give every output element to
 * one thread: so all of them are bit-identical across runs AND thread counts. */
START_TEST(test_deterministic_across_threads)
{
    stack s;
    stack_build(&s);
    int64_t n1, n2a, n2b;
    mf_set_threads(2);
    float *a = stack_run(&s, &n2a);
    float *b = stack_run(&s, &n2b);
    mf_set_threads(1);
    float *c = stack_run(&s, &n1);
    mf_set_threads(2);
    ck_assert_int_eq(n1, n2a);
    ck_assert_int_eq(n2b, n2a);
    ck_assert_msg(memcmp(a, b, (size_t)n2a * sizeof(float)) == 0, "2 threads: runs differ");
    ck_assert_msg(memcmp(a, c, (size_t)n2a * sizeof(float)) == 0, "1 and 2 threads differ");
    free(a);
    free(b);
    free(c);
    mf_graph_free(s.g);
}
END_TEST

START_TEST(test_conv_forward_threads)
{
    /* the parallel conv path against the reference, with a bias and stride 2 */
    const conv_case k = {13, 3, 17, 15, 5, 3, 3, 2, 1, 1};
    mf_set_threads(2);
    mf_graph *g = mf_graph_new(0);
    mf_node *x, *w, *bias;
    mf_node *y = conv_of(g, &k, &x, &w, &bias, 1);
    compile_ok(g);
    fill(x, 1);
    fill(w, 2);
    fill(bias, 3);
    mf_graph_forward(g);
    const int64_t Ho = mf_node_shape(y)->dim[2], Wo = mf_node_shape(y)->dim[3];
    float *ref = malloc((size_t)mf_node_numel(y) * sizeof(float));
    ref_conv(mf_node_value(x), mf_node_shape(x)->dim, mf_node_value(w), mf_node_shape(w)->dim,
             mf_node_value(bias), k.stride, k.pad, ref, Ho, Wo);
    double d = max_diff(mf_node_value(y), ref, mf_node_numel(y));
    ck_assert_msg(d < 1e-4, "max difference %g", d);
    free(ref);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_replay_no_alloc)
{
    stack s;
    stack_build(&s);
    mf_set_threads(2);
    mf_graph_forward(s.g); /* warm up: thread pools and BLAS buffers */
    mf_graph_backward(s.g, s.loss);
    n_allocs = 0;
    counting = 1;
    for (int rep = 0; rep < 2; rep++) {
        mf_graph_forward(s.g);
        mf_graph_backward(s.g, s.loss);
    }
    counting = 0;
    ck_assert_int_eq(n_allocs, 0);
    mf_graph_free(s.g);
}
END_TEST

/* ---------------------------------------------------------------- suite */
static Suite *ops_nn_suite(void)
{
    Suite *s = suite_create("ops-nn");
    TCase *tc = tcase_create("forward");
    tcase_add_loop_test(tc, test_bmm_forward, 0, 8);
    tcase_add_test(tc, test_conv_forward);
    tcase_add_test(tc, test_conv_forward_threads);
    tcase_add_test(tc, test_pool_forward);
    tcase_add_test(tc, test_max_pool_ties_and_nan);
    tcase_add_loop_test(tc, test_max_pool_rule, 0, N_POOL_TIE_CASES); /* brief pool */
    tcase_add_loop_test(tc, test_layer_norm_forward, 0, 4);
    tcase_add_test(tc, test_embedding_forward);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradients");
    tcase_add_loop_test(tc, test_grad_bmm, 0, 8);
    tcase_add_test(tc, test_grad_bmm_self);
    tcase_add_loop_test(tc, test_grad_conv, 0, N_CONV_CASES);
    tcase_add_test(tc, test_conv_relu_fused);
    tcase_add_test(tc, test_conv_relu_pool_fused);
    tcase_add_test(tc, test_conv_pool_fused_partial_backward);
    tcase_add_test(tc, test_grad_conv_stack);
    tcase_add_test(tc, test_conv_same_chunk_reuse); /* brief conv */
    tcase_add_test(tc, test_grad_conv_bias_only);   /* brief conv */
    tcase_add_loop_test(tc, test_conv_direct, 0, N_DIRECT_CASES); /* brief conv */
    tcase_add_loop_test(tc, test_grad_max_pool, 0, N_POOL_CASES);
    tcase_add_loop_test(tc, test_grad_avg_pool, 0, N_POOL_CASES);
    tcase_add_loop_test(tc, test_grad_max_pool_blocks, 0, 2); /* brief pool */
    tcase_add_loop_test(tc, test_grad_layer_norm, 0, 4);
    tcase_add_test(tc, test_grad_embedding);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, test_deterministic_across_threads);
    tcase_add_loop_test(tc, test_max_pool_threads, 0, 2); /* brief pool */
    tcase_add_test(tc, test_replay_no_alloc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return mf_test_run(ops_nn_suite());
}
