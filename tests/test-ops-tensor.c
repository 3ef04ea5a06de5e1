/* Tensor ops: broadcasting arithmetic, unary maps, masked_fill, dropout, reductions,
 * softmax / log-softmax / l2_normalize, shape ops, custom ops. Forward values against naive
 * references, every differentiable input through mf_gradcheck, exact sticky error messages,
 * and results that do not depend on the thread count. */
#include "mf_check.h"
#include "op_test_util.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/mmfuse.h>







/* The usual case: compile, fill, gradcheck, free. */
static void expect_gradcheck(mf_graph *g, mf_node *out)
{
    gradcheck_filled(g, out);
    mf_graph_free(g);
}


#define ASSERT_NEAR(a, b, tol) \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, \
                  (double)(a), (double)(b))

static mf_node *var(mf_graph *g, const char *name, mf_shape s) { return mf_variable(g, name, s); }

/* ================================================================ binary broadcasting */
typedef mf_node *(*binary_fn)(mf_graph *, mf_node *, mf_node *);
static const binary_fn binary_ops[4] = {mf_add, mf_sub, mf_mul, mf_div};

static double binary_ref(int op, double x, double y)
{
    return op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
}

/* b shapes against a (2,3,4): equal, scalar (1), scalar (1,1), row (4), row (1,4), row (1,1,4) */
static mf_shape b_shape(int mode)
{
    switch (mode) {
    case 0: return mf_shape3(2, 3, 4);
    case 1: return mf_shape1(1);
    case 2: return mf_shape2(1, 1);
    case 3: return mf_shape1(4);
    case 4: return mf_shape2(1, 4);
    default: return mf_shape3(1, 1, 4);
    }
}

START_TEST(test_binary_forward)
{
    for (int op = 0; op < 4; op++)
        for (int mode = 0; mode < 6; mode++) {
            mf_graph *g = mf_graph_new(0);
            mf_node *a = mf_input(g, "a", mf_shape3(2, 3, 4));
            mf_node *b = mf_input(g, "b", b_shape(mode));
            mf_node *c = binary_ops[op](g, a, b);
            ck_assert_ptr_nonnull(c);
            ck_assert(mf_shape_equal(mf_node_shape(c), mf_node_shape(a)));
            compile_ok(g);
            fill(a, 1);
            fill(b, 2);
            mf_graph_forward(g);
            const float *av = mf_node_value(a), *bv = mf_node_value(b);
            const int64_t bn = mf_node_numel(b);
            for (int i = 0; i < 24; i++) {
                const float y = bn == 24 ? bv[i] : bn == 1 ? bv[0] : bv[i % 4];
                ASSERT_NEAR(mf_node_value(c)[i], binary_ref(op, av[i], y), 1e-5);
            }
            mf_graph_free(g);
        }
}
END_TEST

/* every op × every broadcast mode × both inputs */
START_TEST(test_grad_binary)
{
    const int op = _i / 6, mode = _i % 6;
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape3(2, 3, 4));
    mf_node *b = var(g, "b", b_shape(mode));
    mf_node *c = binary_ops[op](g, a, b);
    ck_assert_ptr_nonnull(c);
    compile_fill(g);
    if (op == 3) /* a divisor well away from 0 */
        fill_range(b, 5, 0.5, 1.5);
    gradcheck_ok(g, c);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_binary_2d_and_self)
{
    /* the MLP case: (B,F) + (F) */
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_add(g, var(g, "a", mf_shape2(5, 3)), var(g, "b", mf_shape1(3))));
    /* one node on both sides */
    for (int op = 0; op < 4; op++) {
        g = mf_graph_new(1);
        mf_node *a = var(g, "a", mf_shape2(2, 3));
        mf_node *c = binary_ops[op](g, a, a);
        if (op == 3)
            c = mf_add(g, c, mf_mul(g, a, a)); /* a/a is flat: add something with a slope */
        expect_gradcheck(g, c);
    }
}
END_TEST

/* ================================================================ unary maps */
static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

START_TEST(test_unary_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape1(8));
    mf_node *ge = mf_gelu(g, a), *ex = mf_exp(g, a), *ab = mf_abs(g, a);
    mf_node *as = mf_add_scalar(g, a, 2.5f);
    mf_node *p = mf_input(g, "p", mf_shape1(8));
    mf_node *lg = mf_log(g, p), *sq = mf_sqrt(g, p);
    compile_ok(g);
    static const float av[] = {-3, -1, -0.5f, 0, 0.25f, 1, 2, 4};
    static const float pv[] = {0.01f, 0.5f, 1, 2, 3, 4, 9, 100};
    set(a, av);
    set(p, pv);
    mf_graph_forward(g);
    for (int i = 0; i < 8; i++) {
        ASSERT_NEAR(mf_node_value(ge)[i], gelu_ref(av[i]), 1e-6);
        ASSERT_NEAR(mf_node_value(ex)[i], exp(av[i]), 1e-5 * exp(av[i]));
        ASSERT_NEAR(mf_node_value(ab)[i], fabs(av[i]), 0);
        ASSERT_NEAR(mf_node_value(as)[i], av[i] + 2.5, 1e-6);
        ASSERT_NEAR(mf_node_value(lg)[i], log(pv[i]), 1e-6);
        ASSERT_NEAR(mf_node_value(sq)[i], sqrt(pv[i]), 1e-6);
    }
    /* GPT-2's well-known values */
    ASSERT_NEAR(mf_node_value(ge)[5], 0.841192, 1e-5);
    ASSERT_NEAR(mf_node_value(ge)[3], 0, 0);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_unary)
{
    typedef mf_node *(*unary_fn)(mf_graph *, mf_node *);
    static const unary_fn ops[] = {mf_gelu, mf_exp, mf_abs, mf_relu, mf_tanh, mf_sigmoid};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        mf_graph *g = mf_graph_new(1);
        expect_gradcheck(g, ops[k](g, var(g, "a", mf_shape3(2, 3, 4))));
    }
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_add_scalar(g, var(g, "a", mf_shape2(3, 4)), -1.5f));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_scale(g, var(g, "a", mf_shape2(3, 4)), 3.0f));
    /* gelu over a wide range, including its curved region around -1 */
    g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape1(40));
    mf_node *o = mf_gelu(g, a);
    compile_ok(g);
    fill_range(a, 3, -4, 4);
    gradcheck_ok(g, o);
    mf_graph_free(g);
    /* log and sqrt on positive inputs */
    for (int k = 0; k < 2; k++) {
        g = mf_graph_new(1);
        a = var(g, "a", mf_shape2(3, 4));
        o = k ? mf_sqrt(g, a) : mf_log(g, a);
        compile_ok(g);
        fill_range(a, 4, 0.5, 2.0);
        gradcheck_ok(g, o);
        mf_graph_free(g);
    }
}
END_TEST

/* ================================================================ masked_fill */
START_TEST(test_masked_fill)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "scores", mf_shape4(2, 3, 2, 4));
    mf_node *m = mf_input(g, "mask", mf_shape4(2, 1, 1, 4));
    mf_node *o = mf_masked_fill(g, a, m, -1e9f);
    mf_node *m2 = mf_input(g, "mask2", mf_shape4(2, 3, 2, 4));
    mf_node *o2 = mf_masked_fill(g, a, m2, 7.0f);
    mf_node *m3 = mf_input(g, "mask3", mf_shape4(1, 3, 1, 1));
    mf_node *o3 = mf_masked_fill(g, a, m3, 0.0f);
    ck_assert_ptr_nonnull(o);
    compile_fill(g);
    static const float mv[] = {0, 0, 1, 1, 0, 1, 0, 1};
    set(m, mv);
    for (int i = 0; i < 48; i++)
        mf_node_value(m2)[i] = (float)(i % 3 == 0);
    static const float m3v[] = {0, 1, 0};
    set(m3, m3v);
    mf_graph_forward(g);
    const float *av = mf_node_value(a);
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < 3; h++)
            for (int t = 0; t < 2; t++)
                for (int s = 0; s < 4; s++) {
                    const int i = ((b * 3 + h) * 2 + t) * 4 + s;
                    ASSERT_NEAR(mf_node_value(o)[i], mv[b * 4 + s] ? -1e9f : av[i], 0);
                    ASSERT_NEAR(mf_node_value(o2)[i], i % 3 == 0 ? 7.0f : av[i], 0);
                    ASSERT_NEAR(mf_node_value(o3)[i], m3v[h] ? 0.0f : av[i], 0);
                }
    gradcheck_ok(g, o);
    gradcheck_ok(g, o2);
    gradcheck_ok(g, o3);
    mf_graph_free(g);
}
END_TEST

/* ================================================================ dropout */
START_TEST(test_dropout_eval_identity)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape2(4, 5));
    mf_node *d = mf_dropout(g, a, 0.5f);
    compile_ok(g);
    fill(a, 3);
    mf_graph_forward(g);
    ck_assert_mem_eq(mf_node_value(d), mf_node_value(a), 20 * sizeof(float));
    mf_graph_free(g);
}
END_TEST

/* One training graph's dropout output for (seed, forwards). */
static float *dropout_run(uint64_t seed, int forwards, int64_t n, float p)
{
    mf_graph *g = mf_graph_new(1);
    mf_graph_set_seed(g, seed);
    mf_node *a = mf_input(g, "a", mf_shape2(n / 1000, 1000));
    mf_node *d = mf_dropout(g, a, p);
    compile_ok(g);
    for (int64_t i = 0; i < n; i++)
        mf_node_value(a)[i] = 1.0f;
    for (int k = 0; k < forwards; k++)
        mf_graph_forward(g);
    float *out = malloc((size_t)n * sizeof *out);
    memcpy(out, mf_node_value(d), (size_t)n * sizeof *out);
    mf_graph_free(g);
    return out;
}

START_TEST(test_dropout_training)
{
    const int64_t n = 100000;
    const float p = 0.25f, scale = 1.0f / (1.0f - p);
    float *x = dropout_run(42, 1, n, p);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert(x[i] == 0.0f || x[i] == scale); /* inverted scaling */
        kept += x[i] != 0.0f;
    }
    ASSERT_NEAR((double)kept / (double)n, 1.0 - p, 0.01);
    /* same seed, same masks; another seed or another forward, other masks */
    float *same = dropout_run(42, 1, n, p), *other = dropout_run(43, 1, n, p);
    float *second = dropout_run(42, 2, n, p), *second_again = dropout_run(42, 2, n, p);
    ck_assert_mem_eq(x, same, (size_t)n * sizeof *x);
    ck_assert(memcmp(x, other, (size_t)n * sizeof *x) != 0);
    ck_assert(memcmp(x, second, (size_t)n * sizeof *x) != 0);
    ck_assert_mem_eq(second, second_again, (size_t)n * sizeof *x);
    free(x);
    free(same);
    free(other);
    free(second);
    free(second_again);
    /* p = 0 is the identity even in training */
    float *id = dropout_run(1, 1, 2000, 0.0f);
    for (int i = 0; i < 2000; i++)
        ck_assert(id[i] == 1.0f);
    free(id);
}
END_TEST

START_TEST(test_dropout_backward_and_replay)
{
    mf_graph *g = mf_graph_new(1);
    mf_graph_set_seed(g, 9);
    mf_node *a = var(g, "a", mf_shape2(16, 32));
    mf_node *d = mf_dropout(g, a, 0.4f);
    mf_node *loss = mf_sum_all(g, d);
    compile_fill(g);
    const float scale = 1.0f / (1.0f - 0.4f);
    float first[512];
    for (int step = 0; step < 3; step++) {
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        int zeros = 0;
        for (int i = 0; i < 512; i++) { /* the gradient is the forward's mask, scaled */
            const float y = mf_node_value(d)[i], x = mf_node_value(a)[i];
            const float gr = mf_node_grad(a)[i];
            if (y == 0.0f) {
                ck_assert(gr == 0.0f);
                zeros++;
            } else {
                ck_assert(y == x * scale);
                ck_assert(gr == scale);
            }
        }
        ck_assert_int_gt(zeros, 100);
        ck_assert_int_lt(zeros, 312);
        if (step == 0)
            memcpy(first, mf_node_value(d), sizeof first);
        else
            ck_assert(memcmp(first, mf_node_value(d), sizeof first) != 0); /* fresh masks */
    }
    /* set_seed restarts the stream: the first forward's mask again */
    mf_graph_set_seed(g, 9);
    mf_graph_forward(g);
    ck_assert_mem_eq(first, mf_node_value(d), sizeof first);
    mf_graph_free(g);
}
END_TEST

/* The mask of the dropout in scope "m.head" of a graph whose other nodes `extra` adds: none,
 * or nodes in other scopes (a host's missing-modality masks, another module's dropout). */
static void scoped_dropout_masks(int extra, float *first, float *second)
{
    mf_graph *g = mf_graph_new(1);
    mf_graph_set_seed(g, 11);
    mf_node *a = mf_input(g, "a", mf_shape2(8, 64));
    mf_node *x = a, *m = NULL;
    if (extra) { /* nodes outside the module: ids move, masks must not */
        m = mf_input(g, "missing", mf_shape2(8, 64));
        x = mf_sub(g, a, mf_mul(g, m, mf_sub(g, a, m)));
        mf_graph_set_scope(g, "m.encoder");
        mf_dropout(g, x, 0.5f);
    }
    mf_graph_set_scope(g, "m.head");
    mf_node *d1 = mf_dropout(g, x, 0.5f), *d2 = mf_dropout(g, x, 0.5f);
    mf_graph_set_scope(g, NULL);
    compile_ok(g);
    for (int i = 0; i < 512; i++)
        mf_node_value(a)[i] = 1.0f;
    if (m)
        memset(mf_node_value(m), 0, 512 * sizeof(float));
    mf_graph_forward(g);
    memcpy(first, mf_node_value(d1), 512 * sizeof(float));
    memcpy(second, mf_node_value(d2), 512 * sizeof(float));
    mf_graph_free(g);
}

/* issue 13: masks were keyed by node id, so `eval.robustness.drop` (which adds nodes to the
 * training graph) changed training. Keyed by module path and rank, they stay put. */
START_TEST(test_dropout_keyed_by_scope)
{
    float plain1[512], plain2[512], more1[512], more2[512];
    scoped_dropout_masks(0, plain1, plain2);
    scoped_dropout_masks(1, more1, more2);
    ck_assert_mem_eq(plain1, more1, sizeof plain1);
    ck_assert_mem_eq(plain2, more2, sizeof plain2);
    ck_assert(memcmp(plain1, plain2, sizeof plain1) != 0); /* two of one scope: two masks */
}
END_TEST

START_TEST(test_grad_dropout)
{
    /* mf_gradcheck runs every forward of the check with one forward count: the mask stays
     * fixed, the check differentiates a·mask/(1-p), and the values and the count after the
     * check are those from before it. */
    mf_graph *g = mf_graph_new(1);
    mf_graph_set_seed(g, 5);
    mf_node *a = var(g, "a", mf_shape2(6, 10));
    mf_node *d = mf_dropout(g, mf_tanh(g, a), 0.5f);
    mf_node *o = mf_mul(g, d, d); /* something nonlinear after the mask */
    compile_fill(g);
    mf_graph_forward(g);
    mf_graph_forward(g);
    float before[60];
    memcpy(before, mf_node_value(d), sizeof before);
    int zeros = 0;
    for (int i = 0; i < 60; i++)
        zeros += before[i] == 0.0f;
    ck_assert_int_gt(zeros, 5); /* the mask is doing something */
    ck_assert_int_lt(zeros, 55);
    gradcheck_ok(g, o);
    ck_assert_mem_eq(before, mf_node_value(d), sizeof before);
    /* the next forward is the third of the stream, as if no check had run */
    mf_graph_forward(g);
    float third[60];
    memcpy(third, mf_node_value(d), sizeof third);
    mf_graph_set_seed(g, 5);
    for (int k = 0; k < 3; k++)
        mf_graph_forward(g);
    ck_assert_mem_eq(third, mf_node_value(d), sizeof third);
    mf_graph_free(g);
}
END_TEST

/* ================================================================ reductions */
START_TEST(test_reduce_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape3(2, 3, 4));
    mf_node *s[3], *m[3], *sk[3];
    for (int ax = 0; ax < 3; ax++) {
        s[ax] = mf_sum(g, a, ax, 0);
        m[ax] = mf_mean(g, a, ax - 3, 0); /* negative axes */
        sk[ax] = mf_sum(g, a, ax, 1);
    }
    mf_node *sa = mf_sum_all(g, a), *ma = mf_mean_all(g, a);
    compile_ok(g);
    char buf[32];
    ck_assert_str_eq(mf_shape_str(mf_node_shape(s[0]), buf, sizeof buf), "(3,4)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(s[1]), buf, sizeof buf), "(2,4)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(m[2]), buf, sizeof buf), "(2,3)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(sk[1]), buf, sizeof buf), "(2,1,4)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(sa), buf, sizeof buf), "(1)");
    float *av = mf_node_value(a);
    for (int i = 0; i < 24; i++)
        av[i] = (float)(i + 1);
    mf_graph_forward(g);
    int dims[3] = {2, 3, 4};
    for (int ax = 0; ax < 3; ax++) {
        /* naive reference over the index triple */
        double ref[24] = {0};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++) {
                    int idx[3] = {i, j, k};
                    idx[ax] = 0;
                    int o = (idx[0] * 3 + idx[1]) * 4 + idx[2]; /* keepdim layout in (2,3,4) */
                    ref[o] += av[(i * 3 + j) * 4 + k];
                }
        int64_t oi = 0;
        for (int i = 0; i < (ax == 0 ? 1 : 2); i++)
            for (int j = 0; j < (ax == 1 ? 1 : 3); j++)
                for (int k = 0; k < (ax == 2 ? 1 : 4); k++, oi++) {
                    const double r = ref[(i * 3 + j) * 4 + k];
                    ASSERT_NEAR(mf_node_value(s[ax])[oi], r, 1e-4);
                    ASSERT_NEAR(mf_node_value(sk[ax])[oi], r, 1e-4);
                    ASSERT_NEAR(mf_node_value(m[ax])[oi], r / dims[ax], 1e-5);
                }
    }
    ASSERT_NEAR(mf_node_value(sa)[0], 300, 0);
    ASSERT_NEAR(mf_node_value(ma)[0], 12.5, 1e-6);
    mf_graph_free(g);

    /* a 1-D input reduces to (1) */
    g = mf_graph_new(0);
    a = mf_input(g, "a", mf_shape1(5));
    mf_node *r = mf_sum(g, a, 0, 0);
    ck_assert_str_eq(mf_shape_str(mf_node_shape(r), buf, sizeof buf), "(1)");
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_reduce)
{
    /* sum / mean / logsumexp on each axis (and -1), with and without keepdim */
    typedef mf_node *(*axis_fn)(mf_graph *, mf_node *, int, int);
    static const axis_fn ops[3] = {mf_sum, mf_mean, mf_logsumexp};
    for (int k = 0; k < 3; k++)
        for (int ax = -1; ax < 3; ax++)
            for (int keep = 0; keep < 2; keep++) {
                mf_graph *g = mf_graph_new(1);
                expect_gradcheck(g, ops[k](g, var(g, "a", mf_shape3(2, 3, 4)), ax, keep));
            }
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_sum_all(g, var(g, "a", mf_shape3(2, 3, 4))));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_mean_all(g, var(g, "a", mf_shape2(5, 3))));
}
END_TEST

START_TEST(test_logsumexp_stable)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape2(2, 3));
    mf_node *l1 = mf_logsumexp(g, a, 1, 0), *l0 = mf_logsumexp(g, a, 0, 1);
    compile_ok(g);
    static const float av[] = {1000, 1001, 1002, -1000, 0, 1000};
    set(a, av);
    mf_graph_forward(g);
    const double tail = log(1.0 + exp(-1.0) + exp(-2.0));
    ASSERT_NEAR(mf_node_value(l1)[0], 1002 + tail, 1e-3);
    ASSERT_NEAR(mf_node_value(l1)[1], 1000, 1e-3);
    ASSERT_NEAR(mf_node_value(l0)[0], 1000, 1e-3);
    ASSERT_NEAR(mf_node_value(l0)[1], 1001, 1e-3);
    ASSERT_NEAR(mf_node_value(l0)[2], 1002 + log(1.0 + exp(-2.0)), 1e-3);
    for (int i = 0; i < 2; i++)
        ck_assert(isfinite(mf_node_value(l1)[i]));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_softmax_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape3(2, 3, 5));
    mf_node *sm = mf_softmax(g, a), *ls = mf_log_softmax(g, a);
    compile_ok(g);
    fill_range(a, 8, -5, 5);
    mf_node_value(a)[7] = 500.0f; /* large values stay finite */
    mf_graph_forward(g);
    for (int r = 0; r < 6; r++) {
        const float *x = mf_node_value(a) + r * 5;
        double mx = x[0], z = 0, s = 0;
        for (int j = 1; j < 5; j++)
            mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < 5; j++)
            z += exp(x[j] - mx);
        for (int j = 0; j < 5; j++) {
            const double want = exp(x[j] - mx) / z;
            ASSERT_NEAR(mf_node_value(sm)[r * 5 + j], want, 1e-6);
            ASSERT_NEAR(mf_node_value(ls)[r * 5 + j], log(want), 1e-5 + 1e-6 * fabs(log(want)));
            s += mf_node_value(sm)[r * 5 + j];
        }
        ASSERT_NEAR(s, 1.0, 1e-6);
    }
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_softmax)
{
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_softmax(g, var(g, "a", mf_shape3(2, 3, 4))));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_log_softmax(g, var(g, "a", mf_shape3(2, 3, 4))));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_softmax(g, var(g, "a", mf_shape1(6))));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_log_softmax(g, var(g, "a", mf_shape4(2, 2, 2, 3))));
}
END_TEST

START_TEST(test_l2_normalize)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape2(3, 4));
    mf_node *y = mf_l2_normalize(g, a, 1e-12f);
    mf_node *y2 = mf_l2_normalize(g, a, 10.0f);
    compile_ok(g);
    static const float av[] = {3, 4, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    set(a, av);
    mf_graph_forward(g);
    static const float want[] = {0.6f, 0.8f, 0, 0, 0, 0, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f};
    for (int i = 0; i < 12; i++) {
        ck_assert(isfinite(mf_node_value(y)[i])); /* the zero row divides by eps: zeros */
        ASSERT_NEAR(mf_node_value(y)[i], want[i], 1e-6);
        ASSERT_NEAR(mf_node_value(y2)[i], av[i] / 10.0, 1e-6); /* every norm <= eps */
    }
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_l2_normalize)
{
    /* the normalising regime (norm > eps) */
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_l2_normalize(g, var(g, "a", mf_shape3(2, 3, 4)), 1e-12f));
    /* the clamped regime (norm <= eps: x / eps) */
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_l2_normalize(g, var(g, "a", mf_shape2(3, 4)), 5.0f));
    /* both in one tensor: rows scaled apart */
    g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(2, 4));
    mf_node *y = mf_l2_normalize(g, a, 1.0f);
    compile_fill(g);
    for (int j = 0; j < 4; j++) {
        mf_node_value(a)[j] *= 0.2f; /* norm <= 0.4 */
        mf_node_value(a)[4 + j] = 1.0f + 0.25f * (float)j; /* norm > 2 */
    }
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

/* ================================================================ shapes */
START_TEST(test_shape_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape4(2, 3, 4, 5));
    mf_node *r = mf_reshape(g, a, mf_shape3(6, -1, 2));
    static const int perm[4] = {2, 0, 3, 1};
    mf_node *p = mf_permute(g, a, perm);
    mf_node *t = mf_transpose(g, a, 1, -1);
    mf_node *sl = mf_slice(g, a, 2, 1, 2);
    mf_node *parts[3];
    ck_assert_int_eq(mf_split(g, a, -1, 3, (const int64_t[]){1, 3, 1}, parts), 0);
    mf_node *cat = mf_concat_axis(g, 3, parts, 3);
    compile_ok(g);
    char buf[32];
    ck_assert_str_eq(mf_shape_str(mf_node_shape(r), buf, sizeof buf), "(6,10,2)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(p), buf, sizeof buf), "(4,2,5,3)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(t), buf, sizeof buf), "(2,5,4,3)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(sl), buf, sizeof buf), "(2,3,2,5)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(parts[1]), buf, sizeof buf), "(2,3,4,3)");
    float *av = mf_node_value(a);
    for (int i = 0; i < 120; i++)
        av[i] = (float)i;
    mf_graph_forward(g);
    ck_assert_mem_eq(mf_node_value(r), av, 120 * sizeof(float));
    ck_assert_mem_eq(mf_node_value(cat), av, 120 * sizeof(float));
#define A(i, j, k, l) av[(((i) * 3 + (j)) * 4 + (k)) * 5 + (l)]
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 5; l++) {
                    ck_assert(mf_node_value(p)[((k * 2 + i) * 5 + l) * 3 + j] == A(i, j, k, l));
                    ck_assert(mf_node_value(t)[((i * 5 + l) * 4 + k) * 3 + j] == A(i, j, k, l));
                    if (k >= 1 && k < 3)
                        ck_assert(mf_node_value(sl)[((i * 3 + j) * 2 + k - 1) * 5 + l] ==
                                  A(i, j, k, l));
                    if (l >= 1 && l < 4)
                        ck_assert(mf_node_value(parts[1])[((i * 3 + j) * 4 + k) * 3 + l - 1] ==
                                  A(i, j, k, l));
                }
#undef A
    mf_graph_free(g);

    /* concat on axis 0 and 2; mf_concat is axis 1 of (B,F) */
    g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(1, 2, 2)), *y = mf_input(g, "y", mf_shape3(2, 2, 2));
    mf_node *z = mf_input(g, "z", mf_shape3(1, 2, 3));
    mf_node *c0 = mf_concat_axis(g, 2, (mf_node *const[]){x, y}, 0);
    mf_node *c2 = mf_concat_axis(g, 2, (mf_node *const[]){x, z}, -1);
    compile_ok(g);
    ck_assert_str_eq(mf_shape_str(mf_node_shape(c0), buf, sizeof buf), "(3,2,2)");
    ck_assert_str_eq(mf_shape_str(mf_node_shape(c2), buf, sizeof buf), "(1,2,5)");
    static const float xv[] = {1, 2, 3, 4}, yv[] = {5, 6, 7, 8, 9, 10, 11, 12};
    static const float zv[] = {20, 21, 22, 23, 24, 25};
    set(x, xv);
    set(y, yv);
    set(z, zv);
    mf_graph_forward(g);
    for (int i = 0; i < 12; i++)
        ck_assert(mf_node_value(c0)[i] == (float)(i + 1));
    static const float w2[] = {1, 2, 20, 21, 22, 3, 4, 23, 24, 25};
    for (int i = 0; i < 10; i++)
        ck_assert(mf_node_value(c2)[i] == w2[i]);
    mf_graph_free(g);

    /* outer: out[b, i·Q + j] = a[b,i]·b[b,j] */
    g = mf_graph_new(0);
    x = mf_input(g, "a", mf_shape2(2, 2));
    y = mf_input(g, "b", mf_shape2(2, 3));
    mf_node *o = mf_outer(g, x, y);
    compile_ok(g);
    set(x, xv);
    set(y, (const float[]){1, 2, 3, 4, 5, 6});
    mf_graph_forward(g);
    static const float wo[] = {1, 2, 3, 2, 4, 6, 12, 15, 18, 16, 20, 24};
    ck_assert_str_eq(mf_shape_str(mf_node_shape(o), buf, sizeof buf), "(2,6)");
    for (int i = 0; i < 12; i++)
        ck_assert(mf_node_value(o)[i] == wo[i]);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_shape)
{
    mf_graph *g = mf_graph_new(1);
    expect_gradcheck(g, mf_reshape(g, var(g, "a", mf_shape3(2, 3, 4)), mf_shape2(-1, 6)));
    static const int perm[4] = {2, 0, 3, 1};
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_permute(g, var(g, "a", mf_shape4(2, 3, 4, 2)), perm));
    static const int perm3[3] = {-1, 0, 1};
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_permute(g, var(g, "a", mf_shape3(2, 3, 4)), perm3));
    /* the last axis kept (attention's head split), copied row by row: values and gradients */
    static const int heads[4] = {0, 2, 1, 3};
    g = mf_graph_new(1);
    mf_node *h = var(g, "a", mf_shape4(2, 3, 4, 5)), *p = mf_permute(g, h, heads);
    compile_ok(g);
    for (int i = 0; i < 120; i++)
        mf_node_value(h)[i] = (float)i;
    mf_graph_forward(g);
    for (int i0 = 0; i0 < 2; i0++) // p[i0,i2,i1,i3] = a[i0,i1,i2,i3]
        for (int i1 = 0; i1 < 3; i1++)
            for (int i2 = 0; i2 < 4; i2++)
                for (int i3 = 0; i3 < 5; i3++)
                    ck_assert_float_eq(mf_node_value(p)[((i0 * 4 + i2) * 3 + i1) * 5 + i3],
                                       (float)(((i0 * 3 + i1) * 4 + i2) * 5 + i3));
    mf_graph_free(g);
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_permute(g, var(g, "a", mf_shape4(2, 3, 4, 5)), heads));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_transpose(g, var(g, "a", mf_shape3(2, 3, 4)), 0, 2));
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_transpose(g, var(g, "a", mf_shape2(3, 4)), -1, -2));
    for (int ax = 0; ax < 3; ax++) {
        g = mf_graph_new(1);
        expect_gradcheck(g, mf_slice(g, var(g, "a", mf_shape3(3, 4, 5)), ax, 1, 2));
    }
    /* split: every part feeds the output */
    g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape3(2, 5, 3)), *parts[3];
    ck_assert_int_eq(mf_split(g, a, 1, 3, (const int64_t[]){2, 1, 2}, parts), 0);
    mf_node *o = mf_add(g, mf_mul(g, parts[0], parts[2]), mf_tanh(g, mf_concat_axis(g, 2,
                                                    (mf_node *const[]){parts[1], parts[1]}, 1)));
    expect_gradcheck(g, o);
    /* concat on axis 0 and 2 */
    for (int ax = 0; ax < 3; ax += 2) {
        g = mf_graph_new(1);
        mf_node *x = var(g, "x", ax ? mf_shape3(2, 3, 1) : mf_shape3(1, 3, 4));
        mf_node *y = var(g, "y", mf_shape3(2, 3, 4));
        mf_node *z = var(g, "z", ax ? mf_shape3(2, 3, 2) : mf_shape3(3, 3, 4));
        expect_gradcheck(g, mf_concat_axis(g, 3, (mf_node *const[]){x, y, z}, ax));
    }
    g = mf_graph_new(1);
    expect_gradcheck(g, mf_outer(g, var(g, "a", mf_shape2(3, 2)), var(g, "b", mf_shape2(3, 4))));
    g = mf_graph_new(1);
    a = var(g, "a", mf_shape2(2, 3));
    expect_gradcheck(g, mf_outer(g, a, a));
}
END_TEST

/* ================================================================ custom ops */
static int square_shape(int n_in, const mf_shape *in, const void *attr, mf_shape *out,
                        mf_error *err)
{
    if (n_in != 1) {
        mf_error_set(err, "needs exactly one input, got %d", n_in);
        return -1;
    }
    *out = in[0];
    return 0;
}

static void square_forward(const mf_custom_ctx *c)
{
    const int64_t n = mf_shape_numel(&c->out_shape);
    for (int64_t i = 0; i < n; i++)
        c->out[i] = c->in[0][i] * c->in[0][i];
}

static void square_backward(const mf_custom_ctx *c)
{
    const int64_t n = mf_shape_numel(&c->out_shape);
    if (c->in_grad[0])
        for (int64_t i = 0; i < n; i++)
            c->in_grad[0][i] += 2.0f * c->in[0][i] * c->out_grad[i];
}

static void square_backward_wrong(const mf_custom_ctx *c)
{
    const int64_t n = mf_shape_numel(&c->out_shape);
    for (int64_t i = 0; i < n; i++)
        c->in_grad[0][i] += 3.0f * c->in[0][i] * c->out_grad[i]; /* 3x: wrong */
}

static const mf_custom_op square_op = {
    .struct_size = sizeof(mf_custom_op), .name = "square", .shape = square_shape,
    .forward = square_forward, .backward = square_backward};

/* swish(x) = x·σ(βx), β an attribute; σ kept in scratch from forward to backward */
typedef struct swish_attr {
    float beta;
} swish_attr;

static int swish_shape(int n_in, const mf_shape *in, const void *attr, mf_shape *out,
                       mf_error *err)
{
    if (n_in != 2 || !mf_shape_equal(&in[0], &in[1])) {
        mf_error_set(err, "needs two inputs of one shape");
        return -1;
    }
    *out = in[0];
    return 0;
}

static size_t swish_scratch(int n_in, const mf_shape *in, const mf_shape *out, const void *attr)
{
    return (size_t)mf_shape_numel(out) * sizeof(float);
}

/* swish2(x, g) = x·σ(βx)·g: two inputs, to check in_grad for each */
static void swish_forward(const mf_custom_ctx *c)
{
    const float beta = ((const swish_attr *)c->attr)->beta;
    float *s = c->scratch;
    const int64_t n = mf_shape_numel(&c->out_shape);
    for (int64_t i = 0; i < n; i++) {
        const float x = c->in[0][i];
        s[i] = 1.0f / (1.0f + expf(-beta * x));
        c->out[i] = x * s[i] * c->in[1][i];
    }
}

static void swish_backward(const mf_custom_ctx *c)
{
    const float beta = ((const swish_attr *)c->attr)->beta;
    const float *s = c->scratch;
    const int64_t n = mf_shape_numel(&c->out_shape);
    for (int64_t i = 0; i < n; i++) {
        const float x = c->in[0][i], gate = c->in[1][i], d = c->out_grad[i];
        if (c->in_grad[0])
            c->in_grad[0][i] += d * gate * (s[i] + beta * x * s[i] * (1.0f - s[i]));
        if (c->in_grad[1])
            c->in_grad[1][i] += d * x * s[i];
    }
}

static const mf_custom_op swish_op = {
    .struct_size = sizeof(mf_custom_op), .name = "swish2", .shape = swish_shape,
    .scratch_bytes = swish_scratch, .forward = swish_forward, .backward = swish_backward};

START_TEST(test_custom_op)
{
    mf_gradcheck_result res;
    mf_gradcheck_opts opts = {0};
    opts.seed = 3;
    const mf_shape s1[1] = {mf_shape2(3, 4)};
    ck_assert_msg(mf_gradcheck_custom(&square_op, 1, s1, NULL, 0, &opts, &res) == 0, "%s",
                  res.worst);
    ck_assert_int_eq(res.checked, 12);
    const mf_shape s2[2] = {mf_shape3(2, 2, 3), mf_shape3(2, 2, 3)};
    swish_attr at = {1.7f};
    ck_assert_msg(mf_gradcheck_custom(&swish_op, 2, s2, &at, sizeof at, &opts, &res) == 0, "%s",
                  res.worst);
    ck_assert_int_eq(res.checked, 24);

    /* a wrong backward is caught */
    mf_custom_op wrong = square_op;
    wrong.backward = square_backward_wrong;
    ck_assert_int_ne(mf_gradcheck_custom(&wrong, 1, s1, NULL, 0, &opts, &res), 0);
    ck_assert_int_gt(res.failed, 0);

    /* in a graph: attributes are copied, forward values are the op's */
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape1(3)), *gt = mf_input(g, "g", mf_shape1(3));
    at.beta = 1.0f;
    mf_node *o = mf_custom(g, &swish_op, 2, (mf_node *const[]){x, gt}, &at, sizeof at);
    at.beta = 100.0f; /* the node kept its own copy */
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(mf_node_op_name(o), "custom");
    compile_ok(g);
    set(x, (const float[]){-1, 0, 2});
    set(gt, (const float[]){1, 1, 0.5f});
    mf_graph_forward(g);
    ASSERT_NEAR(mf_node_value(o)[0], -1.0 / (1.0 + exp(1.0)), 1e-6);
    ASSERT_NEAR(mf_node_value(o)[1], 0, 0);
    ASSERT_NEAR(mf_node_value(o)[2], 0.5 * 2.0 / (1.0 + exp(-2.0)), 1e-6);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_custom_errors)
{
    /* the shape callback's message, prefixed by the op's name */
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_input(g, "a", mf_shape1(3));
    expect_error(g, mf_custom(g, &square_op, 2, (mf_node *const[]){a, a}, NULL, 0),
                 "square: needs exactly one input, got 2");

    /* no backward: fine without gradients, refused when an input needs one */
    mf_custom_op fwd_only = square_op;
    fwd_only.name = "fwd_only";
    fwd_only.backward = NULL;
    g = mf_graph_new(1);
    a = mf_input(g, "a", mf_shape1(3));
    ck_assert_ptr_nonnull(mf_custom(g, &fwd_only, 1, &a, NULL, 0));
    mf_node *v = mf_variable(g, "v", mf_shape1(3));
    expect_error(g, mf_custom(g, &fwd_only, 1, (mf_node *const[]){mf_relu(g, v)}, NULL, 0),
                 "fwd_only: custom op has no backward but its inputs need gradients");
    g = mf_graph_new(0);
    v = mf_variable(g, "v", mf_shape1(3));
    mf_node *o = mf_custom(g, &fwd_only, 1, &v, NULL, 0);
    ck_assert_ptr_nonnull(o);
    compile_ok(g);
    set(v, (const float[]){1, -2, 3});
    mf_graph_forward(g);
    ASSERT_NEAR(mf_node_value(o)[1], 4, 0);
    mf_graph_free(g);

    /* a bad op table */
    mf_custom_op bad = square_op;
    bad.struct_size = 8;
    g = mf_graph_new(1);
    a = mf_input(g, "a", mf_shape1(3));
    ck_assert_ptr_null(mf_custom(g, &bad, 1, &a, NULL, 0));
    ck_assert_ptr_nonnull(strstr(mf_graph_error(g), "square: struct_size is 8"));
    mf_graph_free(g);

    /* the checker reports construction errors */
    mf_gradcheck_result res;
    const mf_shape s1[1] = {mf_shape1(3)};
    ck_assert_int_ne(mf_gradcheck_custom(&fwd_only, 1, s1, NULL, 0, NULL, &res), 0);
    ck_assert_str_eq(res.worst,
                     "fwd_only: custom op has no backward but its inputs need gradients");
}
END_TEST

/* ================================================================ sticky errors */
START_TEST(test_errors)
{
    mf_graph *g;
#define INPUT(name, shape) mf_input(g, name, shape)
    g = mf_graph_new(1);
    expect_error(g, mf_sum(g, INPUT("a", mf_shape2(4, 3)), 3, 0),
                 "sum: axis 3 is out of range for (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_mean(g, INPUT("a", mf_shape2(4, 3)), -3, 1),
                 "mean: axis -3 is out of range for (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_logsumexp(g, INPUT("a", mf_shape1(4)), 1, 0),
                 "logsumexp: axis 1 is out of range for (4)");
    g = mf_graph_new(1);
    expect_error(g, mf_reshape(g, INPUT("a", mf_shape2(4, 3)), mf_shape2(5, 2)),
                 "reshape: cannot reshape (4,3) into (5,2): 12 elements vs 10");
    g = mf_graph_new(1);
    expect_error(g, mf_reshape(g, INPUT("a", mf_shape2(4, 3)), mf_shape2(5, -1)),
                 "reshape: cannot reshape (4,3) into (5,-1): 12 elements are not a multiple of 5");
    g = mf_graph_new(1);
    expect_error(g, mf_reshape(g, INPUT("a", mf_shape2(4, 3)), mf_shape3(-1, 2, -1)),
                 "reshape: cannot reshape (4,3) into (-1,2,-1): at most one dimension may be -1");
    g = mf_graph_new(1);
    expect_error(g, mf_reshape(g, INPUT("a", mf_shape2(4, 3)), mf_shape2(0, 3)),
                 "reshape: cannot reshape (4,3) into (0,3): dimensions must be positive "
                 "(or one -1)");
    g = mf_graph_new(1);
    expect_error(g, mf_slice(g, INPUT("a", mf_shape2(4, 3)), 1, 2, 3),
                 "slice: [2, 5) is out of range for axis 1 of (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_slice(g, INPUT("a", mf_shape2(4, 3)), 2, 0, 1),
                 "slice: axis 2 is out of range for (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_slice(g, INPUT("a", mf_shape2(4, 3)), 0, 1, 0),
                 "slice: [1, 1) is empty for axis 0 of (4,3)");
    g = mf_graph_new(1);
    {
        mf_node *parts[2] = {(mf_node *)1, (mf_node *)1};
        ck_assert_int_eq(mf_split(g, INPUT("a", mf_shape2(4, 3)), 1, 2, (const int64_t[]){1, 1},
                                  parts), -1);
        ck_assert_ptr_null(parts[0]);
        ck_assert_ptr_null(parts[1]);
        ck_assert_str_eq(mf_graph_error(g),
                         "split: sizes (1,1) sum to 2 but axis 1 of (4,3) has 3");
        mf_graph_free(g);
    }
    g = mf_graph_new(1);
    expect_error(g, mf_add(g, INPUT("a", mf_shape3(2, 3, 4)), INPUT("b", mf_shape1(3))),
                 "add: shapes differ: (2,3,4) + (3); a row bias for (2,3,4) must be (4) or (1,4)");
    g = mf_graph_new(1);
    expect_error(g, mf_sub(g, INPUT("a", mf_shape2(4, 3)), INPUT("b", mf_shape2(3, 4))),
                 "sub: shapes differ: (4,3) - (3,4)");
    g = mf_graph_new(1);
    expect_error(g, mf_div(g, INPUT("a", mf_shape2(4, 3)), INPUT("b", mf_shape2(1, 4))),
                 "div: shapes differ: (4,3) / (1,4); a row for (4,3) must be (3) or (1,3)");
    g = mf_graph_new(1);
    /* (3) * (3,3) broadcasts since ABI 1.1; (3) * (3,2) does not */
    expect_error(g, mf_mul(g, INPUT("a", mf_shape1(3)), INPUT("b", mf_shape2(3, 2))),
                 "mul: shapes differ: (3) * (3,2)");
    g = mf_graph_new(1);
    expect_error(g, mf_masked_fill(g, INPUT("a", mf_shape2(4, 3)), INPUT("m", mf_shape2(2, 3)), 0),
                 "masked_fill: mask (2,3) does not broadcast to (4,3): it needs the same number "
                 "of axes, each equal to a's or 1");
    g = mf_graph_new(1);
    expect_error(g, mf_masked_fill(g, INPUT("a", mf_shape2(4, 3)), INPUT("m", mf_shape1(3)), 0),
                 "masked_fill: mask (3) does not broadcast to (4,3): it needs the same number "
                 "of axes, each equal to a's or 1");
    g = mf_graph_new(1);
    expect_error(g, mf_dropout(g, INPUT("a", mf_shape2(4, 3)), 1.0f),
                 "dropout: p must be in [0, 1), got 1");
    g = mf_graph_new(1);
    expect_error(g, mf_permute(g, INPUT("a", mf_shape3(2, 3, 4)), (const int[]){0, 0, 1}),
                 "permute: (0,0,1) is not a permutation of the 3 axes of (2,3,4)");
    g = mf_graph_new(1);
    expect_error(g, mf_transpose(g, INPUT("a", mf_shape2(4, 3)), 0, 2),
                 "transpose: axis 2 is out of range for (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_concat_axis(g, 2, (mf_node *const[]){INPUT("x", mf_shape2(4, 3)),
                                                            INPUT("y", mf_shape2(5, 2))}, 1),
                 "concat: shapes differ outside axis 1: input 0 is (4,3), input 1 is (5,2)");
    g = mf_graph_new(1);
    expect_error(g, mf_concat_axis(g, 2, (mf_node *const[]){INPUT("x", mf_shape2(4, 3)),
                                                            INPUT("y", mf_shape3(4, 3, 1))}, 0),
                 "concat: input 1 is (4,3,1) but input 0 is (4,3): inputs need the same number "
                 "of axes");
    g = mf_graph_new(1);
    expect_error(g, mf_concat_axis(g, 1, (mf_node *const[]){INPUT("x", mf_shape2(4, 3))}, -3),
                 "concat: axis -3 is out of range for (4,3)");
    g = mf_graph_new(1);
    expect_error(g, mf_outer(g, INPUT("a", mf_shape2(4, 3)), INPUT("b", mf_shape2(5, 2))),
                 "outer: inputs must be (B,P) and (B,Q) with one B, got (4,3) and (5,2)");
    g = mf_graph_new(1);
    expect_error(g, mf_log_softmax(g, INPUT("v", mf_shape1(4))),
                 "log_softmax: input must be 2-D (B,K), got (4)");
#undef INPUT
    /* NULL inputs pass through without a new error */
    g = mf_graph_new(1);
    ck_assert_ptr_null(mf_softmax(g, mf_sum(g, NULL, 0, 0)));
    ck_assert_ptr_null(mf_transpose(g, NULL, 0, 1));
    ck_assert_ptr_null(mf_graph_error(g));
    mf_graph_free(g);
}
END_TEST

/* ================================================================ determinism */
/* One training step of ops with parallel paths, on `threads` threads: values and grads. */
static void run_big(int threads, float *out, int64_t n_out)
{
    mf_set_threads(threads);
    mf_graph *g = mf_graph_new(1);
    mf_graph_set_seed(g, 11);
    const int64_t B = 256, F = 512;
    mf_node *x = var(g, "x", mf_shape2(B, F));
    mf_node *bias = var(g, "b", mf_shape1(F));
    mf_node *s = var(g, "s", mf_shape1(1));
    mf_node *h = mf_gelu(g, mf_mul(g, mf_add(g, x, bias), s));
    h = mf_dropout(g, mf_softmax(g, h), 0.1f);
    mf_node *l = mf_add(g, mf_mean_all(g, mf_logsumexp(g, h, 0, 0)),
                        mf_sum_all(g, mf_sum(g, h, 1, 0)));
    compile_fill(g);
    mf_graph_forward(g);
    mf_graph_backward(g, l);
    int64_t k = 0;
    out[k++] = mf_node_value(l)[0];
    memcpy(out + k, mf_node_grad(bias), (size_t)F * sizeof(float));
    k += F;
    out[k++] = mf_node_grad(s)[0];
    memcpy(out + k, mf_node_grad(x), (size_t)(n_out - k) * sizeof(float));
    mf_graph_free(g);
}

START_TEST(test_thread_count_invariance)
{
    const int64_t n = 1 + 512 + 1 + 4096;
    float *one = malloc((size_t)n * sizeof *one), *two = malloc((size_t)n * sizeof *two);
    run_big(1, one, n);
    run_big(2, two, n);
    mf_set_threads(0);
    ck_assert(isfinite(one[0]));
    ck_assert_mem_eq(one, two, (size_t)n * sizeof *one);
    free(one);
    free(two);
}
END_TEST

/* ---------------------------------------------------------------- suite */
static Suite *ops_tensor_suite(void)
{
    Suite *s = suite_create("ops-tensor");
    TCase *tc = tcase_create("elementwise");
    tcase_add_test(tc, test_binary_forward);
    tcase_add_loop_test(tc, test_grad_binary, 0, 24);
    tcase_add_test(tc, test_grad_binary_2d_and_self);
    tcase_add_test(tc, test_unary_forward);
    tcase_add_test(tc, test_grad_unary);
    tcase_add_test(tc, test_masked_fill);
    suite_add_tcase(s, tc);

    tc = tcase_create("dropout");
    tcase_add_test(tc, test_dropout_eval_identity);
    tcase_add_test(tc, test_dropout_training);
    tcase_add_test(tc, test_dropout_backward_and_replay);
    tcase_add_test(tc, test_dropout_keyed_by_scope);
    tcase_add_test(tc, test_grad_dropout);
    suite_add_tcase(s, tc);

    tc = tcase_create("reduce");
    tcase_add_test(tc, test_reduce_forward);
    tcase_add_test(tc, test_grad_reduce);
    tcase_add_test(tc, test_logsumexp_stable);
    tcase_add_test(tc, test_softmax_forward);
    tcase_add_test(tc, test_grad_softmax);
    tcase_add_test(tc, test_l2_normalize);
    tcase_add_test(tc, test_grad_l2_normalize);
    suite_add_tcase(s, tc);

    tc = tcase_create("shape");
    tcase_add_test(tc, test_shape_forward);
    tcase_add_test(tc, test_grad_shape);
    suite_add_tcase(s, tc);

    tc = tcase_create("custom");
    tcase_add_test(tc, test_custom_op);
    tcase_add_test(tc, test_custom_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("determinism");
    tcase_add_test(tc, test_thread_count_invariance);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return mf_test_run(ops_tensor_suite());
}
