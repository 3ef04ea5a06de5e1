/* Core tests: errors, shapes, arena, RNG, every op's forward values and gradients
 * (finite differences through mf_gradcheck), sticky shape errors, and a training step
 * replayed without a single heap allocation. */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "mf_check.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h> /* brief graph: mf_module_new */
#include <mmfuse/mmfuse.h>

#include "alloc_count.h"

#include "op_test_util.h"


#define ASSERT_NEAR(a, b, tol) \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, \
                  (double)(a), (double)(b))

/* ---------------------------------------------------------------- errors and shapes */
START_TEST(test_error_buffer)
{
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(err.count, 0);
    ck_assert_str_eq(err.msg, "");
    mf_error_set(NULL, "ignored %d", 1); /* no-op */
    mf_error_set(&err, "first %d", 1);
    mf_error_set(&err, "second");
    ck_assert_int_eq(err.count, 2);
    ck_assert_str_eq(err.msg, "first 1\nsecond");

    char line[200];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    for (int i = 0; i < 100; i++)
        mf_error_set(&err, "%s", line);
    ck_assert_int_lt(err.count, 100);
    ck_assert_int_gt(err.count, 2);
    size_t len = strlen(err.msg);
    ck_assert_uint_lt(len, MF_ERROR_CAPACITY);
    ck_assert_str_eq(err.msg + len - 3, "\xe2\x80\xa6");
    int count = err.count;
    mf_error_set(&err, "more");
    ck_assert_int_eq(err.count, count);
    ck_assert_uint_eq(strlen(err.msg), len);
    mf_error_clear(&err);
    ck_assert_str_eq(err.msg, "");
}
END_TEST

START_TEST(test_shapes)
{
    char buf[64];
    mf_shape s = mf_shape2(128, 64);
    ck_assert_str_eq(mf_shape_str(&s, buf, sizeof buf), "(128,64)");
    s = mf_shape1(5);
    ck_assert_str_eq(mf_shape_str(&s, buf, sizeof buf), "(5)");
    s = mf_shape4(2, 3, 4, 5);
    ck_assert_str_eq(mf_shape_str(&s, buf, sizeof buf), "(2,3,4,5)");
    ck_assert_int_eq(mf_shape_numel(&s), 120);
    mf_shape t = mf_shape3(2, 3, 4);
    ck_assert(!mf_shape_equal(&s, &t));
    t = mf_shape4(2, 3, 4, 5);
    ck_assert(mf_shape_equal(&s, &t));
    char tiny[4];
    s = mf_shape2(128, 64);
    mf_shape_str(&s, tiny, sizeof tiny); /* truncates, stays terminated */
    ck_assert_uint_lt(strlen(tiny), sizeof tiny);
}
END_TEST

/* ---------------------------------------------------------------- arena */
START_TEST(test_arena)
{
    mf_arena *a = mf_arena_new(4096);
    ck_assert_ptr_nonnull(a);
    enum { N = 2000 };
    static unsigned char *p[N];
    static size_t sz[N];
    /* (check's passing asserts are slow: count problems, assert once) */
    size_t total = 0;
    long null = 0, misaligned = 0, dirty = 0, clobbered = 0;
    for (int i = 0; i < N; i++) {
        sz[i] = (size_t)(i * 37 % 1013) + (i % 7 == 0 ? 9000 : 0); /* odd sizes, some huge */
        p[i] = mf_arena_alloc(a, sz[i]);
        if (!p[i]) {
            null++;
            continue;
        }
        misaligned += (uintptr_t)p[i] % MF_ALIGN != 0;
        for (size_t k = 0; k < sz[i]; k++)
            dirty += p[i][k] != 0;
        memset(p[i], i & 0xff, sz[i]);
        total += sz[i];
    }
    /* growth never moved or overwrote earlier allocations */
    for (int i = 0; i < N; i++)
        for (size_t k = 0; p[i] && k < sz[i]; k++)
            clobbered += p[i][k] != (i & 0xff);
    ck_assert_int_eq(null, 0);
    ck_assert_int_eq(misaligned, 0);
    ck_assert_int_eq(dirty, 0);
    ck_assert_int_eq(clobbered, 0);
    ck_assert_uint_ge(mf_arena_used(a), total);
    char *s = mf_arena_strdup(a, "hello");
    ck_assert_str_eq(s, "hello");
    ck_assert_uint_eq((uintptr_t)s % MF_ALIGN, 0);
    mf_arena_free(a);
    mf_arena_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------- rng */
START_TEST(test_rng_reproducible)
{
    mf_rng a, b, c;
    mf_rng_seed(&a, 42);
    mf_rng_seed(&b, 42);
    mf_rng_seed(&c, 43);
    int differ = 0, same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = mf_rng_u64(&a);
        same += x == mf_rng_u64(&b);
        differ += x != mf_rng_u64(&c);
    }
    ck_assert_int_eq(same, 1000);
    ck_assert_int_gt(differ, 990);

    mf_rng s0, s0b, s1, s2;
    mf_rng_seed_stream(&s0, 42, 0);
    mf_rng_seed_stream(&s0b, 42, 0);
    mf_rng_seed_stream(&s1, 42, 1);
    mf_rng_seed_stream(&s2, 43, 0);
    int d1 = 0, d2 = 0;
    same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = mf_rng_u64(&s0);
        same += x == mf_rng_u64(&s0b);
        d1 += x != mf_rng_u64(&s1);
        d2 += x != mf_rng_u64(&s2);
    }
    ck_assert_int_eq(same, 1000);
    ck_assert_int_gt(d1, 990);
    ck_assert_int_gt(d2, 990);

    /* normals reproduce too (the Box-Muller spare included) */
    mf_rng_seed(&a, 5);
    mf_rng_seed(&b, 5);
    same = 0;
    for (int i = 0; i < 101; i++)
        same += mf_rng_normal(&a) == mf_rng_normal(&b);
    ck_assert_int_eq(same, 101);
}
END_TEST

START_TEST(test_rng_distributions)
{
    mf_rng r;
    mf_rng_seed(&r, 1);
    enum { N = 100000 };
    double sum = 0, sq = 0, usum = 0;
    long bad = 0;
    for (int i = 0; i < N; i++) {
        double z = mf_rng_normal(&r);
        bad += !isfinite(z);
        sum += z;
        sq += z * z;
        double u = mf_rng_uniform(&r);
        bad += !(u >= 0.0 && u < 1.0);
        usum += u;
    }
    ck_assert_int_eq(bad, 0);
    double mean = sum / N, var = sq / N - mean * mean;
    ASSERT_NEAR(mean, 0.0, 0.02);
    ASSERT_NEAR(var, 1.0, 0.03);
    ASSERT_NEAR(usum / N, 0.5, 0.01);

    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t k = mf_rng_below(&r, 7);
        if (k < 7)
            hist[k]++;
        else
            bad++;
    }
    for (int k = 0; k < 7; k++)
        ck_assert_int_gt(hist[k], 9400); /* ~10000 each */
    ck_assert_uint_eq(mf_rng_below(&r, 1), 0);
    uint64_t big = (UINT64_C(1) << 63) + 12345;
    for (int i = 0; i < 1000; i++)
        bad += mf_rng_below(&r, big) >= big;
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_rng_shuffle)
{
    mf_rng r;
    mf_rng_seed(&r, 9);
    enum { N = 1000 };
    int64_t a[N];
    int seen[N] = {0};
    for (int i = 0; i < N; i++)
        a[i] = i;
    mf_rng_shuffle(&r, a, N);
    int moved = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        if (a[i] >= 0 && a[i] < N)
            seen[a[i]]++;
        else
            bad++;
        moved += a[i] != i;
    }
    for (int i = 0; i < N; i++)
        bad += seen[i] != 1;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(moved, 900);
    mf_rng_shuffle(&r, a, 0); /* empty and single-element arrays are fine */
    mf_rng_shuffle(&r, a, 1);
}
END_TEST

/* ---------------------------------------------------------------- forward values */
START_TEST(test_matmul_forward)
{
    /* A (2,3) · B (3,2) = [[58,64],[139,154]] for every storage of A and B */
    static const float A[] = {1, 2, 3, 4, 5, 6}, At[] = {1, 4, 2, 5, 3, 6};
    static const float B[] = {7, 8, 9, 10, 11, 12}, Bt[] = {7, 9, 11, 8, 10, 12};
    static const float C[] = {58, 64, 139, 154};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            mf_graph *g = mf_graph_new(0);
            mf_node *a = mf_input(g, "a", ta ? mf_shape2(3, 2) : mf_shape2(2, 3));
            mf_node *b = mf_input(g, "b", tb ? mf_shape2(2, 3) : mf_shape2(3, 2));
            mf_node *c = mf_matmul(g, a, b, ta, tb);
            ck_assert_ptr_nonnull(c);
            ck_assert_int_eq(mf_node_shape(c)->ndim, 2);
            ck_assert_int_eq(mf_node_shape(c)->dim[0], 2);
            ck_assert_int_eq(mf_node_shape(c)->dim[1], 2);
            compile_ok(g);
            set(a, ta ? At : A);
            set(b, tb ? Bt : B);
            mf_graph_forward(g);
            for (int i = 0; i < 4; i++)
                ASSERT_NEAR(mf_node_value(c)[i], C[i], 1e-4);
            ck_assert_str_eq(mf_node_op_name(c), "matmul");
            mf_graph_free(g);
        }
}
END_TEST

START_TEST(test_elementwise_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape2(2, 3));
    mf_node *b1 = mf_input(g, "b1", mf_shape1(3));
    mf_node *b2 = mf_input(g, "b2", mf_shape2(1, 3));
    mf_node *s1 = mf_add(g, a, b1), *s2 = mf_add(g, a, b2), *s3 = mf_add(g, a, a);
    mf_node *m = mf_mul(g, a, a), *sc = mf_scale(g, a, -2.0f);
    mf_node *r = mf_relu(g, a), *t = mf_tanh(g, a), *sg = mf_sigmoid(g, a);
    compile_ok(g);
    static const float av[] = {1, -2, 3, -4, 5, -6}, bv[] = {10, 20, 30};
    set(a, av);
    set(b1, bv);
    set(b2, bv);
    mf_graph_forward(g);
    for (int i = 0; i < 6; i++) {
        ASSERT_NEAR(mf_node_value(s1)[i], av[i] + bv[i % 3], 1e-6);
        ASSERT_NEAR(mf_node_value(s2)[i], av[i] + bv[i % 3], 1e-6);
        ASSERT_NEAR(mf_node_value(s3)[i], 2 * av[i], 1e-6);
        ASSERT_NEAR(mf_node_value(m)[i], av[i] * av[i], 1e-6);
        ASSERT_NEAR(mf_node_value(sc)[i], -2 * av[i], 1e-6);
        ASSERT_NEAR(mf_node_value(r)[i], av[i] > 0 ? av[i] : 0, 1e-6);
        ASSERT_NEAR(mf_node_value(t)[i], tanh(av[i]), 1e-6);
        ASSERT_NEAR(mf_node_value(sg)[i], 1 / (1 + exp(-av[i])), 1e-6);
    }
    /* eval graph: no gradients anywhere */
    for (int i = 0; i < mf_graph_size(g); i++)
        ck_assert_ptr_null(mf_node_grad(mf_graph_node(g, i)));
    mf_graph_free(g);

    /* sigmoid of large magnitudes stays finite */
    g = mf_graph_new(0);
    a = mf_input(g, "a", mf_shape1(2));
    sg = mf_sigmoid(g, a);
    compile_ok(g);
    static const float big[] = {-200, 200};
    set(a, big);
    mf_graph_forward(g);
    ASSERT_NEAR(mf_node_value(sg)[0], 0, 1e-30);
    ASSERT_NEAR(mf_node_value(sg)[1], 1, 1e-7);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_concat_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *xs[3] = {mf_input(g, "x0", mf_shape2(2, 1)), mf_input(g, "x1", mf_shape2(2, 2)),
                      mf_input(g, "x2", mf_shape2(2, 3))};
    mf_node *c = mf_concat(g, 3, xs);
    ck_assert_int_eq(mf_node_shape(c)->dim[0], 2);
    ck_assert_int_eq(mf_node_shape(c)->dim[1], 6);
    compile_ok(g);
    static const float v0[] = {1, 2}, v1[] = {3, 4, 5, 6}, v2[] = {7, 8, 9, 10, 11, 12};
    set(xs[0], v0);
    set(xs[1], v1);
    set(xs[2], v2);
    mf_graph_forward(g);
    static const float want[] = {1, 3, 4, 7, 8, 9, 2, 5, 6, 10, 11, 12};
    for (int i = 0; i < 12; i++)
        ASSERT_NEAR(mf_node_value(c)[i], want[i], 0);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_loss_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape2(3, 3));
    mf_node *y = mf_input(g, "y", mf_shape1(3));
    mf_node *lp = mf_log_softmax(g, x);
    mf_node *nll = mf_nll(g, lp, y);
    mf_node *ce = mf_cross_entropy(g, x, y);
    ck_assert_int_eq(mf_node_numel(nll), 1);
    compile_ok(g);
    static const float xv[] = {1, 2, 3, 1000, 1001, 1002, -5, 0, 5};
    static const float yv[] = {2, 0, 1};
    set(x, xv);
    set(y, yv);
    mf_graph_forward(g);
    const double lse = log(exp(1.0) + exp(2.0) + exp(3.0)); /* 3.40760596 */
    for (int j = 0; j < 3; j++) {
        ASSERT_NEAR(mf_node_value(lp)[j], xv[j] - lse, 1e-5);
        ASSERT_NEAR(mf_node_value(lp)[3 + j], xv[j] - lse, 1e-4); /* shifted by 999: stable */
    }
    for (int i = 0; i < 3; i++) {
        double s = 0;
        for (int j = 0; j < 3; j++) {
            ck_assert(isfinite(mf_node_value(lp)[3 * i + j]));
            s += exp(mf_node_value(lp)[3 * i + j]);
        }
        ASSERT_NEAR(s, 1.0, 1e-5);
    }
    const float *l = mf_node_value(lp);
    double want = -(l[2] + l[3] + l[7]) / 3.0;
    ASSERT_NEAR(mf_node_value(nll)[0], want, 1e-5);
    ASSERT_NEAR(mf_node_value(ce)[0], want, 1e-5);
    mf_graph_free(g);
}
END_TEST

/* A hand-derived gradient: d CE / d logits = (softmax - onehot) / B. */
START_TEST(test_cross_entropy_backward_values)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape2(2, 3));
    mf_node *y = mf_input(g, "y", mf_shape1(2));
    mf_node *loss = mf_cross_entropy(g, x, y);
    compile_ok(g);
    ck_assert_ptr_null(mf_node_grad(y));
    static const float xv[] = {1, 2, 3, 0.5f, -1, 0}, yv[] = {0, 2};
    set(x, xv);
    set(y, yv);
    for (int rep = 0; rep < 2; rep++) { /* variable gradients are reset, not accumulated */
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        for (int i = 0; i < 2; i++) {
            double z = 0;
            for (int j = 0; j < 3; j++)
                z += exp(xv[3 * i + j]);
            for (int j = 0; j < 3; j++) {
                double p = exp(xv[3 * i + j]) / z - (j == (int)yv[i]);
                ASSERT_NEAR(mf_node_grad(x)[3 * i + j], p / 2, 1e-6);
            }
        }
    }
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- gradients */
START_TEST(test_grad_matmul)
{
    const int ta = _i / 2, tb = _i % 2; /* all four transpose combinations */
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", ta ? mf_shape2(4, 3) : mf_shape2(3, 4));
    mf_node *b = mf_variable(g, "b", tb ? mf_shape2(5, 4) : mf_shape2(4, 5));
    mf_node *c = mf_matmul(g, a, b, ta, tb);
    ck_assert_int_eq(mf_node_shape(c)->dim[0], 3);
    ck_assert_int_eq(mf_node_shape(c)->dim[1], 5);
    gradcheck_filled(g, c);
    mf_graph_free(g);

    /* a and b feed two products: their gradients must accumulate */
    g = mf_graph_new(1);
    a = mf_variable(g, "a", ta ? mf_shape2(4, 3) : mf_shape2(3, 4));
    b = mf_variable(g, "b", tb ? mf_shape2(5, 4) : mf_shape2(4, 5));
    c = mf_matmul(g, a, b, ta, tb);
    gradcheck_filled(g, mf_add(g, c, mf_tanh(g, mf_matmul(g, a, b, ta, tb))));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_matmul_self)
{
    /* the same node on both sides: a·aᵀ */
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", mf_shape2(3, 4));
    gradcheck_filled(g, mf_matmul(g, a, a, 0, 1));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_add)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", mf_shape2(4, 3));
    mf_node *b = mf_variable(g, "b", mf_shape2(4, 3));
    gradcheck_filled(g, mf_add(g, a, b));
    mf_graph_free(g);

    g = mf_graph_new(1); /* (M,N) + (N) */
    a = mf_variable(g, "a", mf_shape2(4, 3));
    b = mf_variable(g, "bias", mf_shape1(3));
    gradcheck_filled(g, mf_add(g, a, b));
    mf_graph_free(g);

    g = mf_graph_new(1); /* (M,N) + (1,N) */
    a = mf_variable(g, "a", mf_shape2(4, 3));
    b = mf_variable(g, "bias", mf_shape2(1, 3));
    gradcheck_filled(g, mf_add(g, a, b));
    mf_graph_free(g);

    g = mf_graph_new(1); /* a + a */
    a = mf_variable(g, "a", mf_shape2(2, 3));
    gradcheck_filled(g, mf_add(g, a, a));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_mul)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", mf_shape2(3, 4));
    mf_node *b = mf_variable(g, "b", mf_shape2(3, 4));
    gradcheck_filled(g, mf_mul(g, a, b));
    mf_graph_free(g);

    g = mf_graph_new(1);
    a = mf_variable(g, "a", mf_shape3(2, 3, 2));
    gradcheck_filled(g, mf_mul(g, a, a));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_unary)
{
    /* scale, relu, tanh, sigmoid */
    for (int k = 0; k < 4; k++) {
        mf_graph *g = mf_graph_new(1);
        mf_node *a = mf_variable(g, "a", mf_shape2(5, 4));
        mf_node *out = k == 0 ? mf_scale(g, a, -1.5f)
                     : k == 1 ? mf_relu(g, a)
                     : k == 2 ? mf_tanh(g, a)
                              : mf_sigmoid(g, a);
        gradcheck_filled(g, out);
        mf_graph_free(g);
    }
}
END_TEST

START_TEST(test_grad_concat)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *xs[3] = {mf_variable(g, "x0", mf_shape2(3, 2)), mf_variable(g, "x1", mf_shape2(3, 1)),
                      mf_variable(g, "x2", mf_shape2(3, 4))};
    gradcheck_filled(g, mf_concat(g, 3, xs));
    mf_graph_free(g);

    /* an input without gradient in the middle */
    g = mf_graph_new(1);
    mf_node *ys[3] = {mf_variable(g, "y0", mf_shape2(2, 2)), mf_input(g, "in", mf_shape2(2, 3)),
                      mf_variable(g, "y2", mf_shape2(2, 1))};
    gradcheck_filled(g, mf_concat(g, 3, ys));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_log_softmax)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape2(3, 5));
    gradcheck_filled(g, mf_log_softmax(g, x));
    mf_graph_free(g);
}
END_TEST

static void set_targets(mf_node *y)
{
    float *v = mf_node_value(y);
    for (int64_t i = 0; i < mf_node_numel(y); i++)
        v[i] = (float)((i * 3 + 1) % 5);
}

START_TEST(test_grad_nll)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *lp = mf_variable(g, "logp", mf_shape2(4, 5));
    mf_node *y = mf_input(g, "y", mf_shape1(4));
    mf_node *loss = mf_nll(g, lp, y);
    compile_ok(g);
    set_targets(y);
    gradcheck_filled(g, loss);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_cross_entropy)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "logits", mf_shape2(4, 5));
    mf_node *y = mf_input(g, "y", mf_shape2(4, 1)); /* any shape holding B targets */
    mf_node *loss = mf_cross_entropy(g, x, y);
    compile_ok(g);
    set_targets(y);
    gradcheck_filled(g, loss);
    mf_graph_free(g);
}
END_TEST

/* Every op in one network, checked end to end, with a sampled check too. */
START_TEST(test_grad_network)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape2(6, 4));
    mf_node *w1 = mf_variable(g, "w1", mf_shape2(8, 4));
    mf_node *b1 = mf_variable(g, "b1", mf_shape1(8));
    mf_node *w2 = mf_variable(g, "w2", mf_shape2(12, 3));
    mf_node *y = mf_input(g, "y", mf_shape1(6));
    mf_node *h = mf_tanh(g, mf_add(g, mf_matmul(g, x, w1, 0, 1), b1));
    mf_node *s = mf_sigmoid(g, mf_scale(g, x, 0.5f));
    mf_node *parts[2] = {h, mf_mul(g, s, s)};
    mf_node *f = mf_concat(g, 2, parts);
    mf_node *loss = mf_cross_entropy(g, mf_matmul(g, f, w2, 0, 0), y);
    compile_ok(g);
    set_targets(y);
    for (int i = 0; i < mf_graph_size(g); i++)
        if (strcmp(mf_node_op_name(mf_graph_node(g, i)), "input") == 0)
            ck_assert_ptr_null(mf_node_grad(mf_graph_node(g, i)));
    gradcheck_filled(g, loss);

    mf_gradcheck_opts opts = {0};
    opts.max_elements_per_leaf = 3;
    mf_gradcheck_result res;
    ck_assert_int_eq(mf_gradcheck(g, loss, &opts, &res), 0);
    ck_assert_int_eq(res.checked, 4 * 3);
    mf_graph_free(g);
}
END_TEST

/* Parameter nodes: value and gradient are the store's, gradients accumulate. */
START_TEST(test_grad_params)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_param *w = mf_params_add(ps, "fc.weight", mf_shape2(3, 4),
                                (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 0}, &err);
    mf_param *b = mf_params_add(ps, "fc.bias", mf_shape1(3),
                                (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 4}, &err);
    ck_assert_msg(w && b, "%s", err.msg);

    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_input(g, "x", mf_shape2(5, 4));
    mf_node *y = mf_input(g, "y", mf_shape1(5));
    mf_node *loss = mf_cross_entropy(
        g, mf_add(g, mf_matmul(g, x, mf_param_node(g, w), 0, 1), mf_param_node(g, b)), y);
    ck_assert_ptr_nonnull(loss);
    /* the store is not finalised yet: compile says so and can be retried */
    ck_assert_int_eq(mf_graph_compile(g, &err), -1);
    ck_assert_msg(strstr(err.msg, "is not finalised") != NULL, "%s", err.msg);
    ck_assert_int_eq(mf_params_finalize(ps, 3, 0, &err), 0);
    compile_ok(g);
    fill(x, 11);
    for (int i = 0; i < 5; i++)
        mf_node_value(y)[i] = (float)(i % 3);

    float *grads = mf_params_grads(ps);
    grads[0] = 123.0f; /* gradcheck leaves the store's gradients as they were */
    mf_gradcheck_result res;
    ck_assert_msg(mf_gradcheck(g, loss, NULL, &res) == 0, "worst %s", res.worst);
    ck_assert_int_eq(res.checked, 12 + 3);
    ck_assert(grads[0] == 123.0f);

    mf_params_zero_grad(ps);
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    float once = grads[1];
    ck_assert(once != 0.0f);
    mf_graph_backward(g, loss);
    ASSERT_NEAR(grads[1], 2 * once, 1e-6);
    mf_graph_free(g);

    /* an eval graph has no gradients, not even the parameters' */
    g = mf_graph_new(0);
    mf_node *pw = mf_param_node(g, w);
    compile_ok(g);
    ck_assert_ptr_eq(mf_node_value(pw), mf_param_value(w));
    ck_assert_ptr_null(mf_node_grad(pw));
    mf_graph_free(g);
    mf_params_free(ps);
}
END_TEST

/* The check must be able to fail. */
START_TEST(test_gradcheck_detects_errors)
{
    /* relu at its kink: analytic 0, numeric 1/2 — but the slopes left (0) and right (1)
     * differ and the analytic gradient is one of them: a kink, not an error */
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape1(4));
    mf_node *r = mf_relu(g, x);
    compile_ok(g);
    static const float xv[] = {0.5f, 0.0f, -0.5f, 0.0f};
    set(x, xv);
    mf_gradcheck_result res;
    ck_assert_int_eq(mf_gradcheck(g, r, NULL, &res), 0);
    ck_assert_int_eq(res.checked, 4);
    ck_assert_int_eq(res.kinks, 2);
    ck_assert_int_eq(res.failed, 0);
    /* values are restored after the check */
    for (int i = 0; i < 4; i++)
        ck_assert(mf_node_value(x)[i] == xv[i]);
    mf_graph_free(g);

    /* a huge step makes central differences of tanh wrong */
    g = mf_graph_new(1);
    x = mf_variable(g, "x", mf_shape1(8));
    mf_node *t = mf_tanh(g, x);
    compile_ok(g);
    fill(x, 3);
    mf_gradcheck_opts opts = {0};
    opts.eps = 1.0;
    ck_assert_int_ne(mf_gradcheck(g, t, &opts, &res), 0);
    ck_assert_int_gt(res.failed, 0);
    opts.eps = 0; /* back to the default: passes */
    ck_assert_int_eq(mf_gradcheck(g, t, &opts, &res), 0);
    mf_graph_free(g);

    /* misuse: an eval graph has nothing to check */
    g = mf_graph_new(0);
    x = mf_variable(g, "x", mf_shape1(2));
    compile_ok(g);
    ck_assert_int_ne(mf_gradcheck(g, x, NULL, &res), 0);
    mf_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- sticky errors */
START_TEST(test_sticky_matmul)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_input(g, "a", mf_shape2(4, 3));
    mf_node *b = mf_variable(g, "b", mf_shape2(5, 2));
    ck_assert_ptr_null(mf_graph_error(g));
    int size = mf_graph_size(g);
    mf_node *c = mf_matmul(g, a, b, 0, 0);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(mf_graph_size(g), size);
    ck_assert_str_eq(mf_graph_error(g), "matmul: inner dimensions differ: (4,3) x (5,2)");
    /* NULL passes through every constructor; the first error stays */
    ck_assert_ptr_null(mf_relu(g, c));
    ck_assert_ptr_null(mf_add(g, a, c));
    ck_assert_ptr_null(mf_cross_entropy(g, c, a));
    mf_node *xs[2] = {a, c};
    ck_assert_ptr_null(mf_concat(g, 2, xs));
    ck_assert_ptr_null(mf_param_node(g, NULL));
    ck_assert_ptr_null(mf_mul(g, a, b)); /* a second, different error */
    ck_assert_str_eq(mf_graph_error(g), "matmul: inner dimensions differ: (4,3) x (5,2)");
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_graph_compile(g, &err), -1);
    ck_assert_int_eq(err.count, 1);
    ck_assert_str_eq(err.msg, "matmul: inner dimensions differ: (4,3) x (5,2)");
    mf_graph_free(g);

    g = mf_graph_new(1);
    a = mf_input(g, "a", mf_shape2(4, 3));
    b = mf_input(g, "b", mf_shape2(5, 2));
    ck_assert_ptr_null(mf_matmul(g, a, b, 1, 1));
    ck_assert_str_eq(mf_graph_error(g), "matmul: inner dimensions differ: (4,3)^T x (5,2)^T");
    mf_graph_free(g);

    g = mf_graph_new(1);
    a = mf_input(g, "a", mf_shape1(3));
    b = mf_input(g, "b", mf_shape2(3, 2));
    ck_assert_ptr_null(mf_matmul(g, a, b, 0, 0));
    ck_assert_str_eq(mf_graph_error(g), "matmul: both inputs must be 2-D: (3) x (3,2)");
    mf_graph_free(g);
}
END_TEST

START_TEST(test_sticky_add_mul)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_input(g, "a", mf_shape2(4, 3));
    mf_node *b = mf_input(g, "b", mf_shape1(5));
    ck_assert_ptr_null(mf_add(g, a, b));
    ck_assert_str_eq(mf_graph_error(g),
                     "add: shapes differ: (4,3) + (5); a row bias for (4,3) must be (3) or (1,3)");
    mf_graph_free(g);

    g = mf_graph_new(1);
    a = mf_input(g, "a", mf_shape2(4, 3));
    b = mf_input(g, "b", mf_shape2(3, 4));
    ck_assert_ptr_null(mf_mul(g, a, b));
    ck_assert_str_eq(mf_graph_error(g), "mul: shapes differ: (4,3) * (3,4)");
    mf_graph_free(g);
}
END_TEST

START_TEST(test_sticky_concat_loss)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *xs[3] = {mf_input(g, "x0", mf_shape2(4, 3)), mf_input(g, "x1", mf_shape2(4, 2)),
                      mf_input(g, "x2", mf_shape2(5, 2))};
    ck_assert_ptr_null(mf_concat(g, 3, xs));
    ck_assert_str_eq(mf_graph_error(g), "concat: batch sizes differ: input 0 is (4,3), input 2 is (5,2)");
    mf_graph_free(g);

    g = mf_graph_new(1);
    ck_assert_ptr_null(mf_concat(g, 0, NULL));
    ck_assert_str_eq(mf_graph_error(g), "concat: needs at least one input");
    mf_graph_free(g);

    g = mf_graph_new(1);
    mf_node *lp = mf_input(g, "logp", mf_shape2(4, 3));
    mf_node *y = mf_input(g, "y", mf_shape1(5));
    ck_assert_ptr_null(mf_nll(g, lp, y));
    ck_assert_str_eq(mf_graph_error(g),
                     "nll: target must hold one class index per row of logp: logp (4,3), target (5)");
    mf_graph_free(g);

    g = mf_graph_new(1);
    ck_assert_ptr_null(mf_log_softmax(g, mf_input(g, "v", mf_shape1(4))));
    ck_assert_str_eq(mf_graph_error(g), "log_softmax: input must be 2-D (B,K), got (4)");
    mf_graph_free(g);

    g = mf_graph_new(1);
    ck_assert_ptr_null(mf_input(g, "bad", mf_shape2(0, 3)));
    ck_assert_str_eq(mf_graph_error(g),
                     "input \"bad\": invalid shape (0,3): a shape needs 1 to 4 positive dimensions");
    mf_graph_free(g);
}
END_TEST

START_TEST(test_sticky_after_compile)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = mf_variable(g, "a", mf_shape2(2, 2));
    compile_ok(g);
    ck_assert_ptr_null(mf_graph_error(g));
    int size = mf_graph_size(g);
    ck_assert_ptr_null(mf_relu(g, a));
    ck_assert_str_eq(mf_graph_error(g),
                     "relu: the graph is already compiled; no node can be added to it");
    ck_assert_ptr_null(mf_input(g, "late", mf_shape1(2)));
    ck_assert_ptr_null(mf_matmul(g, a, a, 0, 0));
    ck_assert_int_eq(mf_graph_size(g), size);
    ck_assert_str_eq(mf_graph_error(g),
                     "relu: the graph is already compiled; no node can be added to it");
    mf_graph_free(g);

    g = mf_graph_new(1);
    compile_ok(g);
    ck_assert_ptr_null(mf_input(g, "late", mf_shape1(2)));
    ck_assert_str_eq(mf_graph_error(g),
                     "input: the graph is already compiled; no node can be added to it");
    mf_graph_free(g);

    /* nodes of another graph are refused */
    mf_graph *g1 = mf_graph_new(1), *g2 = mf_graph_new(1);
    mf_node *x1 = mf_input(g1, "x", mf_shape1(3));
    ck_assert_ptr_null(mf_relu(g2, x1));
    ck_assert_str_eq(mf_graph_error(g2), "relu: input 0 belongs to another graph");
    mf_graph_free(g1);
    mf_graph_free(g2);
}
END_TEST

/* ---------------------------------------------------------------- no allocation in replay */
START_TEST(test_replay_no_alloc)
{
    /* the interposition itself works */
    alloc_count_start();
    void *volatile p = malloc(16);
    p = realloc(p, 32);
    free(p);
    p = calloc(2, 8);
    free(p);
    ck_assert_int_eq(alloc_count_stop(), 3);

    enum { B = 16, IN = 10, H = 32, C = 4 };
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_input(g, "x", mf_shape2(B, IN));
    mf_node *y = mf_input(g, "y", mf_shape1(B));
    mf_node *w1 = mf_variable(g, "w1", mf_shape2(H, IN));
    mf_node *b1 = mf_variable(g, "b1", mf_shape1(H));
    mf_node *w2 = mf_variable(g, "w2", mf_shape2(2 * H, C));
    mf_node *b2 = mf_variable(g, "b2", mf_shape2(1, C));
    mf_node *h = mf_relu(g, mf_add(g, mf_matmul(g, x, w1, 0, 1), b1));
    mf_node *s = mf_sigmoid(g, mf_scale(g, mf_tanh(g, h), 2.0f));
    mf_node *parts[2] = {h, mf_mul(g, s, h)};
    mf_node *logits = mf_add(g, mf_matmul(g, mf_concat(g, 2, parts), w2, 0, 0), b2);
    mf_node *loss = mf_cross_entropy(g, logits, y);
    compile_ok(g);
    fill(x, 1);
    fill(w1, 2);
    fill(b1, 3);
    fill(w2, 4);
    fill(b2, 5);
    for (int i = 0; i < B; i++)
        mf_node_value(y)[i] = (float)(i % C);
    mf_graph_forward(g); /* warm-up */
    mf_graph_backward(g, loss);
    float first = mf_node_value(loss)[0];
    ck_assert(isfinite(first));

    alloc_count_start();
    for (int step = 0; step < 10; step++) {
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
    }
    ck_assert_int_eq(alloc_count_stop(), 0);
    ck_assert(mf_node_value(loss)[0] == first); /* replay is deterministic */
    ck_assert_uint_gt(mf_graph_bytes(g), 0);
    mf_graph_free(g);
}
END_TEST


/* brief graph ------------------------------------------------------ views, linear, zeroing */
/* A reshape is a view: one buffer, and gradients of its readers and of its input's other
 * readers accumulate into it. */
START_TEST(test_reshape_view_two_readers)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape2(3, 4));
    mf_node *w = mf_variable(g, "w", mf_shape2(4, 2));
    mf_node *r = mf_reshape(g, x, mf_shape2(2, 6));
    mf_node *r2 = mf_reshape(g, r, mf_shape3(2, 3, 2)); /* a view of a view */
    mf_node *sq = mf_sum_all(g, mf_mul(g, r, r));
    mf_node *y = mf_add(g, sq, mf_sum_all(g, mf_tanh(g, mf_matmul(g, x, w, 0, 0))));
    y = mf_add(g, y, mf_sum_all(g, mf_exp(g, r2)));
    ck_assert_ptr_nonnull(y);
    compile_fill(g);
    ck_assert_ptr_eq(mf_node_value(r), mf_node_value(x));
    ck_assert_ptr_eq(mf_node_grad(r), mf_node_grad(x));
    ck_assert_ptr_eq(mf_node_value(r2), mf_node_value(x));
    gradcheck_ok(g, y);
    // d/dx = 2x + (1 - tanh²(xw))·wᵀ + exp(x): against the hand sum at one element
    mf_graph_forward(g);
    mf_graph_backward(g, y);
    const float *xv = mf_node_value(x), *wv = mf_node_value(w);
    double want = 2 * xv[5] + exp(xv[5]);
    for (int j = 0; j < 2; j++) {
        double z = 0;
        for (int k = 0; k < 4; k++)
            z += xv[4 + k] * wv[k * 2 + j];
        want += (1 - tanh(z) * tanh(z)) * wv[1 * 2 + j];
    }
    ASSERT_NEAR(mf_node_grad(x)[5], want, 1e-5);
    mf_graph_free(g);
}
END_TEST

/* A view of a parameter: its gradient accumulates across passes, never cleared. */
START_TEST(test_reshape_view_of_param)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_param *p = mf_params_add(ps, "p", mf_shape2(2, 3), (mf_init){MF_INIT_NORMAL, 1.0f, 0},
                                &err);
    ck_assert_int_eq(mf_params_finalize(ps, 1, 0, &err), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *c = mf_input(g, "c", mf_shape1(6));
    mf_node *pn = mf_param_node(g, p);
    mf_node *loss = mf_add(g, mf_sum_all(g, mf_mul(g, mf_reshape(g, pn, mf_shape1(6)), c)),
                           mf_sum_all(g, mf_scale(g, pn, 3.0f)));
    compile_ok(g);
    set(c, (const float[]){1, 2, 3, 4, 5, 6});
    gradcheck_ok(g, loss);
    mf_params_zero_grad(ps);
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(mf_param_grad(p)[i], i + 1 + 3, 0);
    mf_graph_backward(g, loss);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(mf_param_grad(p)[i], 2 * (i + 1 + 3), 0);
    mf_graph_free(g);
    mf_params_free(ps);
}
END_TEST

/* mf_linear_forward is one "linear" node on (…,in): values, gradients with and without a
 * bias, and an in-place relu after it. */
START_TEST(test_linear_node)
{
    const int bias = _i & 1, relu = _i >> 1;
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "m", ps, &err);
    mf_linear lin;
    ck_assert_int_eq(mf_linear_init(&lin, mod, "fc", 4, 3, bias), 0);
    ck_assert_int_eq(mf_params_finalize(ps, 5, 0, &err), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(2, 5, 4));
    mf_node *y = mf_linear_forward(g, &lin, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_str_eq(mf_node_op_name(y), "linear");
    ck_assert_int_eq(mf_graph_size(g), bias ? 4 : 3); /* x, weight, [bias,] linear */
    ck_assert_int_eq(mf_node_shape(y)->ndim, 3);
    ck_assert_int_eq(mf_node_shape(y)->dim[2], 3);
    mf_node *out = relu ? mf_relu(g, y) : y;
    compile_fill(g);
    mf_graph_forward(g);
    const float *xv = mf_node_value(x), *wv = mf_param_value(lin.weight);
    const float *bv = bias ? mf_param_value(lin.bias) : NULL;
    for (int r = 0; r < 10; r++)
        for (int j = 0; j < 3; j++) {
            double want = bias ? bv[j] : 0;
            for (int k = 0; k < 4; k++)
                want += xv[r * 4 + k] * wv[k * 3 + j];
            if (relu && want < 0)
                want = 0;
            ASSERT_NEAR(mf_node_value(out)[r * 3 + j], want, 1e-5);
        }
    gradcheck_ok(g, out);
    mf_graph_free(g);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

/* Gradients start from zero in every pass, whichever op writes them first; those the pass
 * does not reach read zero. */
START_TEST(test_backward_initialises_grads)
{
    static const int swap[2] = {1, 0};
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape2(4, 4));
    mf_node *w = mf_variable(g, "w", mf_shape2(4, 4));
    mf_node *h = mf_tanh(g, mf_matmul(g, x, w, 0, 0));     /* (4,4) */
    mf_node *parts[3] = {h, mf_permute(g, h, swap), h};     /* h thrice: accumulate */
    mf_node *c = mf_concat(g, 3, parts);                    /* (4,12) */
    mf_node *p = mf_matmul(g, mf_matmul(g, h, w, 0, 0), w, 0, 1);
    mf_node *e = mf_exp(g, h);
    mf_node *side = mf_sum_all(g, e);                       /* not on the loss's path */
    mf_node *loss = mf_add(g, mf_sum_all(g, mf_mul(g, c, c)), mf_sum_all(g, mf_tanh(g, p)));
    ck_assert_ptr_nonnull(side);
    ck_assert_ptr_nonnull(loss);
    compile_fill(g);
    gradcheck_ok(g, loss);
    mf_graph_forward(g);
    mf_graph_backward(g, side);
    ck_assert_float_eq(mf_node_grad(e)[3], 1.0f);
    mf_graph_backward(g, loss);
    float first[16];
    memcpy(first, mf_node_grad(w), sizeof first);
    for (int i = 0; i < 16; i++) /* the side branch was not reached: it reads zero */
        ck_assert_float_eq(mf_node_grad(e)[i], 0.0f);
    ck_assert_float_eq(mf_node_grad(side)[0], 0.0f);
    mf_graph_backward(g, side);
    mf_graph_backward(g, loss); /* the same again: nothing left over from the passes before */
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq(mf_node_grad(w)[i], first[i]);
    mf_graph_free(g);
}
END_TEST

/* A concat of one input is a view too. */
START_TEST(test_concat_one_view)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(2, 3, 4));
    mf_node *c = mf_concat_axis(g, 1, &x, 2);
    mf_node *y = mf_add(g, mf_sum_all(g, mf_mul(g, c, c)), mf_sum_all(g, mf_tanh(g, x)));
    ck_assert_ptr_nonnull(y);
    compile_fill(g);
    ck_assert_ptr_eq(mf_node_value(c), mf_node_value(x));
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

/* Attention reads the heads through the products' strides (no permute node); its values
 * and gradients match the composed split (reshape, permute, bmm, permute, reshape). */
START_TEST(test_attention_heads_strided)
{
    enum { B = 2, T = 3, S = 4, D = 8, C = 6, H = 2 };
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "m", ps, &err);
    mf_attention at;
    ck_assert_int_eq(mf_attention_init(&at, mod, "attn", D, C, H, 0.0f), 0);
    ck_assert_int_eq(mf_params_finalize(ps, 9, 0, &err), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(B, T, D));
    mf_node *c = mf_variable(g, "c", mf_shape3(B, S, C));
    mf_node *y = mf_attention_forward(g, &at, x, c, NULL);
    ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
    for (int i = 0; i < mf_graph_size(g); i++)
        ck_assert_str_ne(mf_node_op_name(mf_graph_node(g, i)), "permute");
    static const int to_heads[4] = {0, 2, 1, 3};
    mf_node *q = mf_permute(g, mf_reshape(g, mf_linear_forward(g, &at.q, x), mf_shape4(B, T, H, D / H)), to_heads);
    mf_node *k = mf_permute(g, mf_reshape(g, mf_linear_forward(g, &at.k, c), mf_shape4(B, S, H, D / H)), to_heads);
    mf_node *v = mf_permute(g, mf_reshape(g, mf_linear_forward(g, &at.v, c), mf_shape4(B, S, H, D / H)), to_heads);
    mf_node *w = mf_softmax(g, mf_scale(g, mf_bmm(g, q, k, 0, 1), 1.0f / sqrtf(D / H)));
    mf_node *o = mf_reshape(g, mf_permute(g, mf_bmm(g, w, v, 0, 0), to_heads), mf_shape3(B, T, D));
    mf_node *ref = mf_linear_forward(g, &at.o, o);
    ck_assert_ptr_nonnull(ref);
    compile_fill(g);
    mf_graph_forward(g);
    for (int i = 0; i < B * T * D; i++)
        ASSERT_NEAR(mf_node_value(y)[i], mf_node_value(ref)[i], 1e-5);
    gradcheck_ok(g, y);
    mf_graph_free(g);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

/* The batch of a large bmm is shared between threads, each matrix whole in one: the bits
 * do not depend on the thread count (attention's strided heads, values and gradients). */
START_TEST(test_attention_threads_bitwise)
{
    /* the bmm's 40 products of 64x64x8 (1.3M MACs) are split; the linear layers' products
     * (327k MACs) are not, as a gemm's own split is not part of this test */
    enum { B = 20, T = 64, D = 16, H = 2 };
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "m", ps, &err);
    mf_attention at;
    ck_assert_int_eq(mf_attention_init(&at, mod, "attn", D, 0, H, 0.0f), 0);
    ck_assert_int_eq(mf_params_finalize(ps, 9, 0, &err), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "x", mf_shape3(B, T, D));
    mf_node *loss = mf_sum_all(g, mf_tanh(g, mf_attention_forward(g, &at, x, NULL, NULL)));
    ck_assert_ptr_nonnull(loss);
    compile_fill(g);
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        mf_set_threads(r + 1);
        mf_params_zero_grad(ps);
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        runs[r] = malloc((size_t)(B * T * D + 1) * sizeof(float));
        memcpy(runs[r], mf_node_grad(x), (size_t)B * T * D * sizeof(float));
        runs[r][B * T * D] = mf_node_value(loss)[0];
    }
    mf_set_threads(1);
    ck_assert(memcmp(runs[0], runs[1], (size_t)(B * T * D + 1) * sizeof(float)) == 0);
    ck_assert(runs[0][0] != 0.0f);
    free(runs[0]);
    free(runs[1]);
    mf_graph_free(g);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST
/* issue 13: a product is cut into blocks by its shape, never by the thread count (OpenBLAS
 * rounds a block product differently from the whole one), so 1, 2 and 3 threads give the
 * same bits: a large product (split across the team even cold), a mid-sized one (split only
 * while the team is warm: its blocks run one after another when cold) and a small one, in
 * each transposition, values and gradients. */
START_TEST(test_products_threads_bitwise)
{
    const int ta = _i & 1, tb = _i >> 1;
    static const int64_t dims[][3] = {{256, 784, 256}, {128, 128, 64}, {96, 48, 40}};
    for (int s = 0; s < 3; s++) {
        const int64_t M = dims[s][0], K = dims[s][1], N = dims[s][2];
        mf_graph *g = mf_graph_new(1);
        mf_node *a = mf_variable(g, "a", ta ? mf_shape2(K, M) : mf_shape2(M, K));
        mf_node *b = mf_variable(g, "b", tb ? mf_shape2(N, K) : mf_shape2(K, N));
        mf_node *c = mf_matmul(g, a, b, ta, tb);
        /* scaled so that tanh does not saturate: the gradients are not all zeros */
        mf_node *loss = mf_sum_all(g, mf_tanh(g, mf_scale(g, c, 1.0f / (float)K)));
        compile_fill(g);
        const size_t nc = (size_t)(M * N), na = (size_t)(M * K), nb = (size_t)(K * N);
        float *runs[3];
        for (int r = 0; r < 3; r++) {
            mf_set_threads(r + 1);
            mf_graph_forward(g);
            mf_graph_backward(g, loss);
            runs[r] = malloc((nc + na + nb) * sizeof(float));
            memcpy(runs[r], mf_node_value(c), nc * sizeof(float));
            memcpy(runs[r] + nc, mf_node_grad(a), na * sizeof(float));
            memcpy(runs[r] + nc + na, mf_node_grad(b), nb * sizeof(float));
        }
        mf_set_threads(1);
        for (int r = 1; r < 3; r++)
            ck_assert_msg(memcmp(runs[0], runs[r], (nc + na + nb) * sizeof(float)) == 0,
                          "(%lld,%lld)x(%lld,%lld) ta %d tb %d: %d threads differ from 1",
                          (long long)M, (long long)K, (long long)K, (long long)N, ta, tb, r + 1);
        for (int r = 0; r < 3; r++)
            free(runs[r]);
        mf_graph_free(g);
    }
}
END_TEST
/* end brief graph */

/* ---------------------------------------------------------------- suite */
static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, test_error_buffer);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_arena);
    tcase_add_test(tc, test_rng_reproducible);
    tcase_add_test(tc, test_rng_distributions);
    tcase_add_test(tc, test_rng_shuffle);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_add_test(tc, test_matmul_forward);
    tcase_add_test(tc, test_elementwise_forward);
    tcase_add_test(tc, test_concat_forward);
    tcase_add_test(tc, test_loss_forward);
    tcase_add_test(tc, test_cross_entropy_backward_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradients");
    tcase_add_loop_test(tc, test_grad_matmul, 0, 4);
    tcase_add_test(tc, test_grad_matmul_self);
    tcase_add_test(tc, test_grad_add);
    tcase_add_test(tc, test_grad_mul);
    tcase_add_test(tc, test_grad_unary);
    tcase_add_test(tc, test_grad_concat);
    tcase_add_test(tc, test_grad_log_softmax);
    tcase_add_test(tc, test_grad_nll);
    tcase_add_test(tc, test_grad_cross_entropy);
    tcase_add_test(tc, test_grad_network);
    tcase_add_test(tc, test_grad_params);
    tcase_add_test(tc, test_gradcheck_detects_errors);
    tcase_add_test(tc, test_reshape_view_two_readers); /* brief graph */
    tcase_add_test(tc, test_reshape_view_of_param);
    tcase_add_loop_test(tc, test_linear_node, 0, 4);
    tcase_add_test(tc, test_backward_initialises_grads);
    tcase_add_test(tc, test_concat_one_view);
    tcase_add_test(tc, test_attention_heads_strided);
    tcase_add_test(tc, test_attention_threads_bitwise);
    tcase_add_loop_test(tc, test_products_threads_bitwise, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_sticky_matmul);
    tcase_add_test(tc, test_sticky_add_mul);
    tcase_add_test(tc, test_sticky_concat_loss);
    tcase_add_test(tc, test_sticky_after_compile);
    suite_add_tcase(s, tc);

    tc = tcase_create("replay");
    tcase_add_test(tc, test_replay_no_alloc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return mf_test_run(ops_suite());
}
