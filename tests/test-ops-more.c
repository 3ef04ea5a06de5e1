/* Core API of ABI 1.1: sequence masks, constants, expand and general broadcasting, softplus,
 * clamp, max, gather, the constant and truncated-normal initialisers, parameter flags and
 * bounds in the optimisers. Forward values against hand-computed numbers or naive
 * references, every differentiable input through mf_gradcheck, exact error messages. */
#include "mf_check.h"
#include "op_test_util.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>
#include <mmfuse/mmfuse.h>

#define ASSERT_NEAR(a, b, tol)                                                                     \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a,        \
                  (double)(a), (double)(b))

static mf_node *var(mf_graph *g, const char *name, mf_shape s) { return mf_variable(g, name, s); }

static void expect_gradcheck(mf_graph *g, mf_node *out)
{
    gradcheck_filled(g, out);
    mf_graph_free(g);
}

/* ================================================================ masks */
START_TEST(test_mask)
{
    mf_graph *g = mf_graph_new(0), *h = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(2, 5, 4)), *m = mf_input(g, "m", mf_shape2(2, 5));
    ck_assert_ptr_null(mf_node_mask(x));
    mf_node_set_mask(x, m);
    ck_assert_ptr_eq(mf_node_mask(x), m);
    mf_node *y = mf_relu(g, x);
    ck_assert_ptr_null(mf_node_mask(y)); /* ops do not propagate it */
    mf_node_set_mask(y, mf_node_mask(x));
    ck_assert_ptr_eq(mf_node_mask(y), m);
    mf_node_set_mask(y, NULL);
    ck_assert_ptr_null(mf_node_mask(y));
    ck_assert_ptr_null(mf_node_mask(NULL));
    ck_assert_ptr_null(mf_graph_error(g));
    mf_node_set_mask(mf_input(h, "z", mf_shape2(2, 5)), m);
    ck_assert_str_eq(mf_graph_error(h), "set_mask: the mask belongs to another graph");
    mf_graph_free(g);
    mf_graph_free(h);
}
END_TEST

/* ================================================================ constants */
START_TEST(test_constants_forward)
{
    mf_graph *g = mf_graph_new(1);
    float data[6] = {1, -2, 3, -4, 5, -6};
    mf_node *c = mf_constant(g, mf_shape2(2, 3), 2.5f), *o = mf_ones(g, mf_shape1(4));
    mf_node *e = mf_eye(g, 3), *r = mf_arange(g, 5);
    mf_node *d = mf_constant_data(g, mf_shape2(3, 2), data);
    data[0] = 99; /* copied at construction: the constant keeps 1 */
    ck_assert_str_eq(mf_node_op_name(c), "constant");
    ck_assert(mf_shape_equal(mf_node_shape(e), &(mf_shape){2, {3, 3}}));
    ck_assert(mf_shape_equal(mf_node_shape(r), &(mf_shape){1, {5}}));
    compile_ok(g);
    for (int i = 0; i < 6; i++) {
        ck_assert_float_eq(mf_node_value(c)[i], 2.5f);
        ck_assert_float_eq(mf_node_value(d)[i], i == 0 ? 1.0f : data[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(mf_node_value(o)[i], 1.0f);
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq(mf_node_value(e)[i], i % 4 == 0 ? 1.0f : 0.0f);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(mf_node_value(r)[i], (float)i);
    ck_assert_ptr_null(mf_node_grad(c)); /* no gradient even in a training graph */
    ck_assert_ptr_null(mf_node_grad(e));
    mf_graph_free(g);
}
END_TEST

/* x·C + eye: forward, backward and gradcheck replay the graph; constants stay as built. */
START_TEST(test_constants_survive_replay)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = var(g, "x", mf_shape2(3, 3));
    mf_node *c = mf_constant(g, mf_shape2(3, 3), -0.5f), *e = mf_eye(g, 3);
    mf_node *y = mf_add(g, mf_mul(g, x, c), e);
    mf_node *loss = mf_sum_all(g, mf_mul(g, y, y));
    compile_fill(g);
    for (int step = 0; step < 3; step++) {
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
    }
    const float *xv = mf_node_value(x);
    for (int i = 0; i < 9; i++) {
        ck_assert_float_eq(mf_node_value(c)[i], -0.5f);
        ck_assert_float_eq(mf_node_value(e)[i], i % 4 == 0 ? 1.0f : 0.0f);
        const double yi = -0.5 * xv[i] + (i % 4 == 0);
        ASSERT_NEAR(mf_node_value(y)[i], yi, 1e-6);
        ASSERT_NEAR(mf_node_grad(x)[i], 2 * yi * -0.5, 1e-5); /* dL/dx = 2y·c */
    }
    gradcheck_ok(g, loss);
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq(mf_node_value(c)[i], -0.5f);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_constants_errors)
{
    mf_graph *g = mf_graph_new(0);
    expect_error(g, mf_eye(g, 0), "constant: invalid shape (0,0): a shape needs 1 to 4 positive "
                                  "dimensions");
    g = mf_graph_new(0);
    expect_error(g, mf_constant_data(g, mf_shape1(3), NULL), "constant: no data given");
}
END_TEST

/* ================================================================ broadcasting */
typedef mf_node *(*binary_fn)(mf_graph *, mf_node *, mf_node *);
static const binary_fn binary_ops[4] = {mf_add, mf_sub, mf_mul, mf_div};

static double binary_ref(int op, double x, double y)
{
    return op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
}

/* Flat index into `in` (aligned from the last axis, size-1 axes stretched) of out's index i. */
static int64_t bcast_index(const mf_shape *in, const mf_shape *out, int64_t i)
{
    int64_t idx = 0, stride = 1;
    for (int k = 0; k < in->ndim; k++) {
        const int ax_in = in->ndim - 1 - k, ax_out = out->ndim - 1 - k;
        int64_t c = i, outer = 1;
        for (int j = out->ndim - 1; j > ax_out; j--)
            outer *= out->dim[j];
        c = (i / outer) % out->dim[ax_out];
        if (in->dim[ax_in] != 1)
            idx += c * stride;
        stride *= in->dim[ax_in];
    }
    return idx;
}

/* Pairs that need the general path: a stretched, both stretched, 4-D, mixed ndim. */
static const struct { mf_shape a, b, out; } bc_cases[] = {
    {{1, {4}}, {2, {3, 1}}, {2, {3, 4}}},
    {{2, {3, 1}}, {2, {1, 4}}, {2, {3, 4}}},
    {{3, {2, 1, 4}}, {3, {2, 3, 4}}, {3, {2, 3, 4}}},
    {{3, {2, 3, 4}}, {3, {2, 1, 4}}, {3, {2, 3, 4}}},
    {{4, {2, 1, 3, 1}}, {4, {1, 2, 1, 2}}, {4, {2, 2, 3, 2}}},
    {{4, {2, 2, 3, 2}}, {2, {3, 1}}, {4, {2, 2, 3, 2}}},
    {{2, {3, 1}}, {4, {2, 2, 3, 2}}, {4, {2, 2, 3, 2}}},
    {{1, {1}}, {3, {2, 3, 2}}, {3, {2, 3, 2}}},
    {{1, {3}}, {2, {1, 1}}, {2, {1, 3}}},
    {{4, {2, 3, 4, 5}}, {2, {4, 5}}, {4, {2, 3, 4, 5}}},       /* axes merge into rows of 20 */
    {{4, {2, 1, 1, 2}}, {4, {2, 3, 2, 2}}, {4, {2, 3, 2, 2}}},
    {{3, {2, 3, 1}}, {3, {1, 3, 4}}, {3, {2, 3, 4}}},
};
#define N_BC (int)(sizeof bc_cases / sizeof bc_cases[0])

START_TEST(test_broadcast_forward)
{
    for (int op = 0; op < 4; op++)
        for (int c = 0; c < N_BC; c++) {
            mf_graph *g = mf_graph_new(0);
            mf_node *a = mf_input(g, "a", bc_cases[c].a), *b = mf_input(g, "b", bc_cases[c].b);
            mf_node *y = binary_ops[op](g, a, b);
            ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
            ck_assert(mf_shape_equal(mf_node_shape(y), &bc_cases[c].out));
            compile_ok(g);
            fill(a, 1);
            fill(b, 2);
            mf_graph_forward(g);
            for (int64_t i = 0; i < mf_node_numel(y); i++) {
                const float x = mf_node_value(a)[bcast_index(&bc_cases[c].a, &bc_cases[c].out, i)];
                const float z = mf_node_value(b)[bcast_index(&bc_cases[c].b, &bc_cases[c].out, i)];
                ASSERT_NEAR(mf_node_value(y)[i], binary_ref(op, x, z), 1e-5);
            }
            mf_graph_free(g);
        }
}
END_TEST

/* (2,1)+(1,3) by hand, and the stretched gradients: sums over the repeated axes. */
START_TEST(test_broadcast_numbers)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(2, 1)), *b = var(g, "b", mf_shape2(1, 3));
    mf_node *y = mf_mul(g, a, b), *loss = mf_sum_all(g, y);
    compile_ok(g);
    set(a, (const float[]){2, -1});
    set(b, (const float[]){1, 2, 3});
    mf_graph_forward(g);
    const float want[6] = {2, 4, 6, -1, -2, -3};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(mf_node_value(y)[i], want[i]);
    mf_graph_backward(g, loss);
    ck_assert_float_eq(mf_node_grad(a)[0], 6.0f); /* Σ_j b_j */
    ck_assert_float_eq(mf_node_grad(a)[1], 6.0f);
    ck_assert_float_eq(mf_node_grad(b)[0], 1.0f); /* Σ_i a_i */
    ck_assert_float_eq(mf_node_grad(b)[2], 1.0f);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_broadcast)
{
    const int op = _i / N_BC, c = _i % N_BC;
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", bc_cases[c].a), *b = var(g, "b", bc_cases[c].b);
    mf_node *y = binary_ops[op](g, a, b);
    ck_assert_ptr_nonnull(y);
    compile_fill(g);
    if (op == 3)
        fill_range(b, 5, 0.5, 1.5);
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

/* Big enough for the threaded paths; bits equal for 1 and 2 threads. */
START_TEST(test_broadcast_threads)
{
    float *ref[2] = {NULL, NULL};
    for (int t = 1; t <= 2; t++) {
        mf_set_threads(t);
        mf_graph *g = mf_graph_new(1);
        mf_node *a = var(g, "a", mf_shape3(64, 1, 256)), *b = var(g, "b", mf_shape3(1, 32, 256));
        mf_node *y = mf_mul(g, a, b), *loss = mf_sum_all(g, mf_mul(g, y, y));
        compile_fill(g);
        mf_graph_forward(g);
        mf_graph_backward(g, loss);
        float *r = malloc((64 + 32) * 256 * sizeof *r);
        memcpy(r, mf_node_grad(a), 64 * 256 * sizeof *r);
        memcpy(r + 64 * 256, mf_node_grad(b), 32 * 256 * sizeof *r);
        ref[t - 1] = r;
        mf_graph_free(g);
    }
    mf_set_threads(0);
    ck_assert(memcmp(ref[0], ref[1], (64 + 32) * 256 * sizeof(float)) == 0);
    free(ref[0]);
    free(ref[1]);
}
END_TEST

START_TEST(test_broadcast_errors)
{
    mf_graph *g = mf_graph_new(0);
    expect_error(g, mf_add(g, mf_input(g, "a", mf_shape2(4, 3)), mf_input(g, "b", mf_shape2(2, 3))),
                 "add: shapes differ: (4,3) + (2,3)");
    g = mf_graph_new(0);
    expect_error(g, mf_mul(g, mf_input(g, "a", mf_shape1(3)), mf_input(g, "b", mf_shape2(3, 2))),
                 "mul: shapes differ: (3) * (3,2)");
}
END_TEST

/* ================================================================ expand */
START_TEST(test_expand)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *cls = var(g, "cls", mf_shape3(1, 1, 3));
    mf_node *y = mf_expand(g, cls, mf_shape3(2, -1, 3)), *loss = mf_sum_all(g, y);
    mf_node *z = mf_expand(g, cls, mf_shape4(2, 2, 1, -1));
    ck_assert_msg(y && z, "%s", mf_graph_error(g));
    ck_assert(mf_shape_equal(mf_node_shape(y), &(mf_shape){3, {2, 1, 3}}));
    ck_assert(mf_shape_equal(mf_node_shape(z), &(mf_shape){4, {2, 2, 1, 3}}));
    compile_ok(g);
    set(cls, (const float[]){1, 2, 3});
    mf_graph_forward(g);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(mf_node_value(y)[i], (float)(i % 3 + 1));
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(mf_node_value(z)[i], (float)(i % 3 + 1));
    mf_graph_backward(g, loss);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq(mf_node_grad(cls)[i], 2.0f); /* two copies */
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_expand)
{
    static const struct { mf_shape a, t; } cases[] = {
        {{3, {1, 1, 3}}, {3, {4, 2, 3}}},
        {{2, {3, 1}}, {3, {2, 3, 4}}},
        {{4, {2, 1, 3, 1}}, {4, {2, 2, 3, 2}}},
        {{1, {4}}, {2, {3, -1}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mf_graph *g = mf_graph_new(1);
        expect_gradcheck(g, mf_expand(g, var(g, "a", cases[c].a), cases[c].t));
    }
}
END_TEST

START_TEST(test_expand_errors)
{
    mf_graph *g = mf_graph_new(0);
    expect_error(g, mf_expand(g, mf_input(g, "a", mf_shape2(2, 3)), mf_shape2(4, 3)),
                 "expand: cannot expand (2,3) to (4,3): axis 0 must be 2 or -1");
    g = mf_graph_new(0);
    expect_error(g, mf_expand(g, mf_input(g, "a", mf_shape2(1, 3)), mf_shape1(3)),
                 "expand: cannot expand (1,3) to (3): the target needs 2 to 4 axes");
    g = mf_graph_new(0);
    expect_error(g, mf_expand(g, mf_input(g, "a", mf_shape1(3)), mf_shape2(-1, 3)),
                 "expand: cannot expand (3) to (-1,3): axis 0 must be positive (a new leading "
                 "axis)");
    g = mf_graph_new(0);
    expect_error(g, mf_expand(g, mf_input(g, "a", mf_shape2(1, 3)), mf_shape2(0, 3)),
                 "expand: cannot expand (1,3) to (0,3): axis 0 must be positive or -1");
}
END_TEST

/* ================================================================ softplus, clamp */
START_TEST(test_softplus_clamp_forward)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *a = mf_input(g, "a", mf_shape1(6));
    mf_node *sp = mf_softplus(g, a), *cl = mf_clamp(g, a, -1.0f, 0.5f);
    compile_ok(g);
    set(a, (const float[]){-100, -1, 0, 0.5f, 1, 100});
    mf_graph_forward(g);
    const double want[6] = {3.720075976e-44, 0.3132616875, 0.6931471806, 0.9740769842,
                            1.3132616875, 100};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(fabs(mf_node_value(sp)[i] - want[i]) <= 1e-6 * fmax(1, want[i]),
                      "softplus[%d] = %.9g, expected %.9g", i, mf_node_value(sp)[i], want[i]);
    ck_assert(mf_node_value(sp)[0] > 0); /* not flushed to 0: log1p of a tiny exp */
    const float want_cl[6] = {-1, -1, 0, 0.5f, 0.5f, 0.5f};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(mf_node_value(cl)[i], want_cl[i]);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_clamp_gradient_mask)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape1(5));
    mf_node *loss = mf_sum_all(g, mf_clamp(g, a, -1.0f, 1.0f));
    compile_ok(g);
    set(a, (const float[]){-2, -1, 0.3f, 1, 3});
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    const float want[5] = {0, 0, 1, 0, 0}; /* only strictly inside (lo, hi) */
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(mf_node_grad(a)[i], want[i]);
    mf_graph_free(g);
    g = mf_graph_new(0);
    expect_error(g, mf_clamp(g, mf_input(g, "a", mf_shape1(2)), 1.0f, -1.0f),
                 "clamp: lo 1 must not exceed hi -1");
}
END_TEST

START_TEST(test_grad_softplus_clamp)
{
    static const mf_shape shapes[] = {{1, {7}}, {2, {3, 5}}, {4, {2, 3, 2, 2}}};
    for (int s = 0; s < 3; s++) {
        mf_graph *g = mf_graph_new(1);
        mf_node *a = var(g, "a", shapes[s]);
        expect_gradcheck(g, mf_softplus(g, mf_scale(g, a, 4.0f))); /* inputs in ±[0.4, 4] */
        g = mf_graph_new(1);
        a = var(g, "a", shapes[s]);
        expect_gradcheck(g, mf_clamp(g, a, -0.55f, 0.45f));
    }
}
END_TEST

/* ================================================================ max */
START_TEST(test_max_forward)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(2, 3));
    mf_node *m1 = mf_max(g, a, -1, 0), *m0 = mf_max(g, a, 0, 1);
    ck_assert(mf_shape_equal(mf_node_shape(m1), &(mf_shape){1, {2}}));
    ck_assert(mf_shape_equal(mf_node_shape(m0), &(mf_shape){2, {1, 3}}));
    mf_node *loss = mf_add(g, mf_sum_all(g, m1), mf_scale(g, mf_sum_all(g, m0), 10.0f));
    compile_ok(g);
    set(a, (const float[]){1, 5, 5, /* tie on row 0: the first 5 takes the gradient */
                           -2, -3, 7});
    mf_graph_forward(g);
    ck_assert_float_eq(mf_node_value(m1)[0], 5);
    ck_assert_float_eq(mf_node_value(m1)[1], 7);
    ck_assert_float_eq(mf_node_value(m0)[0], 1);
    ck_assert_float_eq(mf_node_value(m0)[1], 5);
    ck_assert_float_eq(mf_node_value(m0)[2], 7);
    mf_graph_backward(g, loss);
    const float want[6] = {10, 11, 0, 0, 0, 11};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(mf_node_grad(a)[i], want[i]);
    mf_graph_free(g);
    g = mf_graph_new(0);
    expect_error(g, mf_max(g, mf_input(g, "a", mf_shape2(2, 3)), 2, 0),
                 "max: axis 2 is out of range for (2,3)");
}
END_TEST

START_TEST(test_grad_max)
{
    static const struct { mf_shape s; int axis, keep; } cases[] = {
        {{1, {6}}, 0, 0},           {{2, {3, 4}}, 0, 0},        {{2, {3, 4}}, 1, 1},
        {{3, {2, 3, 4}}, 1, 1},     {{4, {2, 3, 2, 3}}, -1, 0}, {{4, {2, 3, 2, 3}}, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mf_graph *g = mf_graph_new(1);
        expect_gradcheck(g, mf_max(g, var(g, "a", cases[c].s), cases[c].axis, cases[c].keep));
    }
}
END_TEST

/* ================================================================ gather */
START_TEST(test_gather_forward)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(2, 3)), *i1 = mf_input(g, "i1", mf_shape2(2, 2));
    mf_node *i0 = mf_input(g, "i0", mf_shape2(1, 3));
    mf_node *g1 = mf_gather(g, a, -1, i1), *g0 = mf_gather(g, a, 0, i0);
    mf_node *loss = mf_add(g, mf_sum_all(g, g1), mf_scale(g, mf_sum_all(g, g0), 10.0f));
    ck_assert_msg(loss != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    set(a, (const float[]){1, 2, 3, 4, 5, 6});
    set(i1, (const float[]){2, 2, 0, 7}); /* 7 is out of range: reads 0, takes no gradient */
    set(i0, (const float[]){1, 0, 1});
    mf_graph_forward(g);
    const float w1[4] = {3, 3, 4, 0}, w0[3] = {4, 2, 6};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(mf_node_value(g1)[i], w1[i]);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq(mf_node_value(g0)[i], w0[i]);
    mf_graph_backward(g, loss);
    const float want[6] = {0, 10, 2, 11, 0, 10}; /* the repeated index adds twice */
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(mf_node_grad(a)[i], want[i]);
    mf_graph_free(g);
}
END_TEST

static void fill_indices(mf_node *idx, int64_t n, uint64_t seed)
{
    mf_rng r;
    mf_rng_seed(&r, seed);
    for (int64_t i = 0; i < mf_node_numel(idx); i++)
        mf_node_value(idx)[i] = (float)mf_rng_below(&r, (uint64_t)n);
}

START_TEST(test_grad_gather)
{
    static const struct { mf_shape a, idx; int axis; } cases[] = {
        {{1, {5}}, {1, {7}}, 0},
        {{2, {4, 3}}, {2, {4, 5}}, 1},
        {{2, {4, 3}}, {2, {6, 2}}, 0},
        {{3, {2, 5, 3}}, {3, {2, 4, 3}}, -2},
        {{4, {2, 3, 4, 2}}, {4, {2, 2, 3, 2}}, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mf_graph *g = mf_graph_new(1);
        mf_node *a = var(g, "a", cases[c].a), *idx = mf_input(g, "idx", cases[c].idx);
        mf_node *y = mf_gather(g, a, cases[c].axis, idx);
        ck_assert_msg(y != NULL, "%s", mf_graph_error(g));
        compile_fill(g);
        const int ax = cases[c].axis < 0 ? cases[c].axis + cases[c].a.ndim : cases[c].axis;
        fill_indices(idx, cases[c].a.dim[ax], 3 + c);
        gradcheck_ok(g, y);
        mf_graph_free(g);
    }
}
END_TEST

START_TEST(test_gather_errors)
{
    mf_graph *g = mf_graph_new(0);
    expect_error(g, mf_gather(g, mf_input(g, "a", mf_shape2(2, 3)), 1, mf_input(g, "i", mf_shape1(2))),
                 "gather: idx (2) must have the 2 axes of a (2,3), each but axis 1 no larger "
                 "than a's");
    g = mf_graph_new(0);
    expect_error(g, mf_gather(g, mf_input(g, "a", mf_shape2(2, 3)), 1,
                              mf_input(g, "i", mf_shape2(3, 3))),
                 "gather: idx (3,3) must have the 2 axes of a (2,3), each but axis 1 no larger "
                 "than a's");
    g = mf_graph_new(0);
    expect_error(g, mf_gather(g, mf_input(g, "a", mf_shape2(2, 3)), -3,
                              mf_input(g, "i", mf_shape2(2, 3))),
                 "gather: axis -3 is out of range for (2,3)");
}
END_TEST

/* mf_gather_batch in one process (issue 14): the batch is all here, so it is x itself —
 * a contrastive loss's graph, values and gradients are those of one without it. (Its
 * kernel under ranks is checked end to end against one process: tests/test-distributed.sh.) */
START_TEST(test_gather_batch_alone)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(4, 3)), *b = var(g, "b", mf_shape2(4, 3));
    mf_node *ga = mf_gather_batch(g, a), *gb = mf_gather_batch(g, b);
    ck_assert_ptr_eq(ga, a);
    ck_assert_ptr_eq(gb, b);
    ck_assert_int_eq(mf_graph_size(g), 2); /* no node added */
    ck_assert_ptr_null(mf_gather_batch(g, NULL));
    ck_assert_ptr_null(mf_gather_batch(NULL, a));
    // CLIP's loss over the "gathered" rows: the gradient reaches a and b unchanged
    mf_node *logits = mf_scale(g, mf_matmul(g, ga, gb, 0, 1), 3.0f);
    mf_node *diag = mf_arange(g, mf_node_shape(ga)->dim[0]);
    mf_node *loss = mf_add(g, mf_cross_entropy(g, logits, diag),
                           mf_cross_entropy(g, mf_transpose(g, logits, 0, 1), diag));
    gradcheck_filled(g, loss);
    mf_graph_free(g);
}
END_TEST

START_TEST(test_gather_batch_errors)
{
    mf_graph *g = mf_graph_new(0), *h = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape2(2, 3));
    expect_error(h, mf_gather_batch(h, x), "gather_batch: input 0 belongs to another graph");
    compile_ok(g);
    expect_error(g, mf_gather_batch(g, x),
                 "gather_batch: the graph is already compiled; no node can be added to it");
}
END_TEST

/* ================================================================ initialisers */
static mf_params *one_param(mf_init init, int64_t n, uint64_t seed, mf_param **p)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    *p = mf_params_add(ps, "w", mf_shape1(n), init, &err);
    ck_assert_ptr_nonnull(*p);
    ck_assert_int_eq(mf_params_finalize(ps, seed, 0, &err), 0);
    return ps;
}

START_TEST(test_init_constant)
{
    mf_param *p;
    mf_params *ps = one_param((mf_init){MF_INIT_CONSTANT, 2.6592600f, 0}, 37, 1, &p);
    for (int i = 0; i < 37; i++)
        ck_assert_float_eq(mf_param_value(p)[i], 2.6592600f); /* log(1/0.07) */
    mf_params_free(ps);
    ck_assert_str_eq(mf_init_name(MF_INIT_CONSTANT), "constant");
}
END_TEST

/* N(0, σ²) cut at ±2σ: mean 0, std σ·0.87962 (the variance of a standard normal truncated
 * at ±2 is 1 - 4φ(2)/(2Φ(2) - 1) = 0.773741), nothing beyond 2σ, and the same draw per seed. */
START_TEST(test_init_trunc_normal)
{
    const int64_t n = 40000;
    const float sigma = 0.02f;
    mf_param *p, *q;
    mf_params *ps = one_param((mf_init){MF_INIT_TRUNC_NORMAL, sigma, 0}, n, 5, &p);
    mf_params *qs = one_param((mf_init){MF_INIT_TRUNC_NORMAL, sigma, 0}, n, 5, &q);
    double s = 0, s2 = 0, mx = 0;
    int64_t beyond_1sigma = 0;
    for (int64_t i = 0; i < n; i++) {
        const double x = mf_param_value(p)[i];
        s += x;
        s2 += x * x;
        mx = fmax(mx, fabs(x));
        beyond_1sigma += fabs(x) > sigma;
    }
    const double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    ck_assert_msg(fabs(mean) < 3 * 0.87962 * sigma / sqrt((double)n), "mean %g", mean); /* 3 SE */
    ck_assert_msg(fabs(sd - 0.87962 * sigma) < 0.01 * sigma, "std %g", sd);
    ck_assert_msg(mx <= 2 * sigma && mx > 1.95 * sigma, "max |x| %g", mx);
    /* P(|x| > σ | |x| <= 2σ) = (0.9545 - 0.6827) / 0.9545 = 0.2848 */
    ck_assert_msg(fabs((double)beyond_1sigma / n - 0.2848) < 0.01, "beyond 1σ: %lld",
                  (long long)beyond_1sigma);
    ck_assert(memcmp(mf_param_value(p), mf_param_value(q), (size_t)n * sizeof(float)) == 0);
    mf_params_free(ps);
    mf_params_free(qs);
}
END_TEST

/* ================================================================ flags, bounds, optimisers */
/* w1 (70000), b1 (3, no decay), w2 (5000), b2 (4097, no decay): segments cut blocks, and
 * the store is big enough for the threaded loop. Every value starts at 1, gradients 0. */
static mf_params *decay_store(mf_param *p[4])
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    const int64_t sizes[4] = {70000, 3, 5000, 4097};
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    for (int i = 0; i < 4; i++) {
        p[i] = mf_params_add(ps, names[i], mf_shape1(sizes[i]), (mf_init){MF_INIT_ONES, 0, 0},
                             &err);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq(mf_param_flags(p[i]), 0);
    }
    mf_param_set_flags(p[1], MF_NO_DECAY);
    mf_param_set_flags(p[3], MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(p[3]), MF_NO_DECAY);
    ck_assert_int_eq(mf_params_finalize(ps, 1, 2, &err), 0);
    return ps;
}

/* One step with zero gradients: only weight decay moves a value. */
START_TEST(test_optim_decay_skips_flagged)
{
    static const mf_optim_kind kinds[3] = {MF_OPTIM_ADAMW, MF_OPTIM_SGD, MF_OPTIM_ADAM};
    /* AdamW: 1 - lr·wd; SGD: 1 - lr·wd; Adam (L2): g = wd, so the step is ≈ lr */
    const double decayed[3] = {1 - 0.1 * 0.5, 1 - 0.1 * 0.5, 1 - 0.1};
    for (int t = 1; t <= 2; t++) {
        mf_set_threads(t);
        for (int k = 0; k < 3; k++) {
            mf_param *p[4];
            mf_params *ps = decay_store(p);
            mf_optim o = {kinds[k], 0.1, 0.9, 0.999, 1e-8, 0.5, 0.9, 0};
            mf_optim_step(&o, ps);
            for (int i = 0; i < 4; i++) {
                const int64_t n = mf_shape_numel(mf_param_shape(p[i]));
                const double want = i % 2 ? 1.0 : decayed[k];
                for (int64_t j = 0; j < n; j++)
                    ck_assert_msg(fabs(mf_param_value(p[i])[j] - want) < 1e-6,
                                  "kind %d: %s[%lld] = %.9g, expected %.9g", (int)kinds[k],
                                  mf_param_name(p[i]), (long long)j, mf_param_value(p[i])[j], want);
            }
            mf_params_free(ps);
        }
    }
    mf_set_threads(0);
}
END_TEST

START_TEST(test_optim_bounds)
{
    mf_param *p[4];
    mf_params *ps = decay_store(p);
    mf_param_set_bounds(p[1], -0.5f, 4.0f); /* CLIP's logit scale: at most ln 100 */
    mf_param_set_bounds(p[2], 0.0f, 2.0f);
    mf_param_set_bounds(p[2], 1.0f, 0.0f); /* lo > hi: no bounds any more */
    float *g = mf_params_grads(ps);
    for (int64_t i = 0; i < mf_params_numel(ps); i++)
        g[i] = -10; /* SGD lr 1: every value goes 1 → 11, b1 is held at 4 */
    g[mf_param_offset(p[1]) + 2] = 10; /* 1 → -9, held at -0.5 */
    mf_optim o = {MF_OPTIM_SGD, 1.0, 0, 0, 0, 0, 0, 0};
    mf_optim_step(&o, ps);
    ck_assert_float_eq(mf_param_value(p[1])[0], 4.0f);
    ck_assert_float_eq(mf_param_value(p[1])[1], 4.0f);
    ck_assert_float_eq(mf_param_value(p[1])[2], -0.5f);
    ck_assert_float_eq(mf_param_value(p[0])[69999], 11.0f);
    ck_assert_float_eq(mf_param_value(p[2])[0], 11.0f);
    ck_assert_float_eq(mf_param_value(p[3])[4096], 11.0f);
    ck_assert_float_eq(g[0], 0.0f); /* consumed */
    mf_params_free(ps);
}
END_TEST

START_TEST(test_blocks_flag_no_decay)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "m", ps, &err);
    mf_linear lin, nobias;
    mf_conv2d_layer conv;
    mf_layer_norm_layer ln;
    ck_assert_int_eq(mf_linear_init(&lin, mod, "fc", 4, 3, 1), 0);
    ck_assert_int_eq(mf_linear_init(&nobias, mod, "proj", 4, 3, 0), 0);
    ck_assert_int_eq(mf_conv2d_layer_init(&conv, mod, "conv", 2, 3, 3, 1, 1, 1), 0);
    ck_assert_int_eq(mf_layer_norm_layer_init(&ln, mod, "ln", 4, 1e-5f), 0);
    ck_assert_uint_eq(mf_param_flags(lin.weight), 0);
    ck_assert_uint_eq(mf_param_flags(lin.bias), MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(nobias.weight), 0);
    ck_assert_uint_eq(mf_param_flags(conv.weight), 0);
    ck_assert_uint_eq(mf_param_flags(conv.bias), MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(ln.gamma), MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(ln.beta), MF_NO_DECAY);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

/* ================================================================ blocks shared by plugins */
START_TEST(test_block_masked_mean)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(2, 3, 2)), *m = mf_input(g, "m", mf_shape2(2, 3));
    mf_node *y = mf_masked_mean(g, x, m), *plain = mf_masked_mean(g, x, NULL);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(mf_node_shape(y)->ndim, 2);
    ck_assert_int_eq(mf_node_shape(y)->dim[1], 2);
    compile_ok(g);
    set(x, (const float[]){1, 10, 2, 20, 6, 60, /* sample 1: */ 3, 4, 5, 6, 7, 8});
    set(m, (const float[]){0, 0, 1, /* all padding: */ 1, 1, 1});
    mf_graph_forward(g);
    const float *v = mf_node_value(y), *p = mf_node_value(plain);
    ASSERT_NEAR(v[0], 1.5, 1e-6); /* position 2 left out */
    ASSERT_NEAR(v[1], 15.0, 1e-6);
    ASSERT_NEAR(v[2], 0.0, 0);    /* a row of padding alone gives 0 */
    ASSERT_NEAR(v[3], 0.0, 0);
    ASSERT_NEAR(p[0], 3.0, 1e-6);
    ASSERT_NEAR(p[3], 6.0, 1e-6);
    mf_graph_free(g);

    g = mf_graph_new(0); /* a mask of another length is a shape error */
    x = mf_input(g, "x", mf_shape3(2, 3, 2));
    ck_assert_ptr_null(mf_masked_mean(g, x, mf_input(g, "m", mf_shape2(2, 4))));
    ck_assert_ptr_nonnull(mf_graph_error(g));
    mf_graph_free(g);
}
END_TEST

START_TEST(test_grad_block_masked_mean)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *x = var(g, "x", mf_shape3(3, 4, 5)), *m = mf_input(g, "m", mf_shape2(3, 4));
    mf_node *y = mf_masked_mean(g, x, m), *loss = mf_sum_all(g, y);
    ck_assert_ptr_nonnull(loss);
    compile_fill(g);
    const float mask[12] = {0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    set(m, mask);
    gradcheck_ok(g, y);
    // d Σy / d x[b,t,d] = valid[b,t] / count[b]: 1/2, 1/4, and 0 for a row of padding
    mf_graph_forward(g);
    memset(mf_node_grad(x), 0, sizeof(float) * 60);
    mf_graph_backward(g, loss);
    const double count[3] = {2, 4, 1};
    for (int i = 0; i < 60; i++) {
        const int b = i / 20, t = (i / 5) % 4;
        ASSERT_NEAR(mf_node_grad(x)[i], mask[b * 4 + t] ? 0.0 : 1.0 / count[b], 1e-6);
    }
    mf_graph_free(g);
}
END_TEST

START_TEST(test_block_flatten_prepend_one)
{
    mf_graph *g = mf_graph_new(0);
    mf_node *x = mf_input(g, "x", mf_shape3(2, 2, 2)), *v = mf_input(g, "v", mf_shape2(2, 3));
    ck_assert_ptr_eq(mf_flatten(g, v), v);
    ck_assert_ptr_null(mf_flatten(g, NULL));
    ck_assert_ptr_null(mf_prepend_one(g, NULL));
    mf_node *f = mf_flatten(g, x), *p = mf_prepend_one(g, f);
    ck_assert_int_eq(mf_node_shape(f)->dim[1], 4);
    ck_assert_int_eq(mf_node_shape(p)->dim[1], 5);
    compile_ok(g);
    set(x, (const float[]){1, 2, 3, 4, 5, 6, 7, 8});
    mf_graph_forward(g);
    const float want[10] = {1, 1, 2, 3, 4, 1, 5, 6, 7, 8};
    for (int i = 0; i < 10; i++)
        ASSERT_NEAR(mf_node_value(p)[i], want[i], 0);
    mf_graph_free(g);
}
END_TEST

/* Projections: names, biases, [1; x], numbers against a hand product, and the gradient. */
START_TEST(test_block_projections)
{
    mf_error err;
    mf_error_clear(&err);
    mf_params *ps = mf_params_new();
    mf_module *mod = mf_module_new(NULL, "f", ps, &err);
    const char *const names[2] = {"a", "b"};
    const mf_shape in[2] = {mf_shape1(3), mf_shape2(2, 2)};
    mf_projections sum, lmf, big;
    const mf_init ones = {MF_INIT_ONES, 0, 0};
    ck_assert_int_eq(mf_projections_init(&sum, mod, "proj", 2, names, in, 4, MF_PROJ_BIAS_FIRST),
                     0);
    ck_assert_int_eq(mf_projections_init_with(&lmf, mod, "factor", 2, names, in, 2,
                                              MF_PROJ_NO_BIAS, ones, 1), 0);
    ck_assert_int_eq(mf_projections_init(&big, mod, "x", MF_PROJECTIONS_MAX + 1, NULL, NULL, 1,
                                         MF_PROJ_NO_BIAS), -1);
    ck_assert_ptr_nonnull(mf_params_find(ps, "f.proj.a.bias"));
    ck_assert_ptr_null(mf_params_find(ps, "f.proj.b.bias"));
    ck_assert_int_eq(mf_param_shape(mf_params_find(ps, "f.proj.b.weight"))->dim[0], 4);
    ck_assert_int_eq(mf_param_shape(mf_params_find(ps, "f.factor.b.weight"))->dim[0], 5);
    ck_assert_ptr_null(mf_params_find(ps, "f.factor.a.bias"));
    ck_assert_int_eq(mf_params_finalize(ps, 3, 0, &err), 0);

    mf_graph *g = mf_graph_new(1);
    mf_node *xa = var(g, "xa", mf_shape2(2, 3)), *xb = var(g, "xb", mf_shape3(2, 2, 2));
    ck_assert_ptr_null(mf_projections_forward(g, &sum, 2, xa));
    mf_node *const xs[2] = {xa, xb};
    mf_node *y = mf_projections_fold(g, &sum, xs, mf_add);      // (2,4): P_a xa + P_b xb
    mf_node *f = mf_projections_forward(g, &lmf, 1, xb);         // (2,2): 1 + Σ x with ones
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_nonnull(f);
    compile_fill(g);
    mf_graph_forward(g);
    const float *wa = mf_param_value(sum.proj[0].weight), *wb = mf_param_value(sum.proj[1].weight);
    const float *ba = mf_param_value(sum.proj[0].bias);
    const float *a = mf_node_value(xa), *b = mf_node_value(xb);
    for (int r = 0; r < 2; r++) {
        double s = 1;
        for (int k = 0; k < 4; k++)
            s += b[r * 4 + k];
        ASSERT_NEAR(mf_node_value(f)[r * 2], s, 1e-5);
        for (int o = 0; o < 4; o++) {
            double want = ba[o];
            for (int k = 0; k < 3; k++)
                want += (double)a[r * 3 + k] * wa[k * 4 + o];
            for (int k = 0; k < 4; k++)
                want += (double)b[r * 4 + k] * wb[k * 4 + o];
            ASSERT_NEAR(mf_node_value(y)[r * 4 + o], want, 1e-5);
        }
    }
    gradcheck_ok(g, y); /* inputs and the proj.* parameters */
    mf_graph_free(g);
    mf_module_free(mod);
    mf_params_free(ps);
}
END_TEST

START_TEST(test_block_cosine_logits)
{
    mf_graph *g = mf_graph_new(1);
    mf_node *a = var(g, "a", mf_shape2(2, 2)), *b = var(g, "b", mf_shape2(3, 2));
    mf_node *t = var(g, "t", mf_shape1(1));
    mf_node *y = mf_cosine_logits(g, a, b, t);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(mf_node_shape(y)->dim[1], 3);
    compile_fill(g);
    set(a, (const float[]){3, 4, 0, -2});
    set(b, (const float[]){1, 0, 0, 5, -1, -1});
    set(t, (const float[]){2});
    mf_graph_forward(g);
    const double h = 1.0 / sqrt(2.0);
    const double want[6] = {1.2, 1.6, -1.4 * 2 * h, 0, -2, 2 * h};
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(mf_node_value(y)[i], want[i], 1e-6);
    gradcheck_ok(g, y);
    mf_graph_free(g);
}
END_TEST

/* The refusals of mf_loss_pick_modalities for another count than clip's two. */
START_TEST(test_block_pick_modalities)
{
    static const char yaml[] = "loss:\n  type: x\n"
                               "good:\n  modalities: [c, a, b]\n"
                               "twice:\n  modalities: [c, a, c]\n"
                               "typo:\n  modalities: [a, bb, c]\n";
    mf_error err;
    mf_error_clear(&err);
    mf_config *root = mf_config_parse(yaml, sizeof yaml - 1, "exp.yaml", &err);
    ck_assert_ptr_nonnull(root);
    const char *names[4] = {"a", "b", "c", "d"};
    mf_loss_build_args args = {sizeof args, 3, names, NULL, NULL, NULL, NULL, 0, 0};
    int idx[3] = {-1, -1, -1};
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "loss"), &args, "x ties", 3,
                                             idx, &err), 0);
    ck_assert_int_eq(idx[0] + 10 * idx[1] + 100 * idx[2], 210); /* the data's three */
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "good"), &args, "x ties", 3,
                                             idx, &err), 0);
    ck_assert_int_eq(idx[0] + 10 * idx[1] + 100 * idx[2], 102);
    ck_assert_int_eq(err.count, 0);
    args.n_modalities = 4;
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "loss"), &args, "x ties", 3,
                                             idx, &err), -1);
    ck_assert_str_eq(err.msg, "exp.yaml:2:3: loss: x ties three modalities, but the data has 4 "
                              "(a, b, c, d); list the three in 'modalities'");
    mf_error_clear(&err);
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "good"), &args, "x ties", 2,
                                             idx, &err), -1);
    ck_assert_str_eq(err.msg, "exp.yaml:4:15: good.modalities: x ties exactly two modalities, "
                              "but 3 are listed");
    mf_error_clear(&err);
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "twice"), &args, "x ties", 3,
                                             idx, &err), -1);
    ck_assert_str_eq(err.msg, "exp.yaml:6:15: twice.modalities: lists 'c' twice; name three "
                              "different modalities");
    mf_error_clear(&err);
    ck_assert_int_eq(mf_loss_pick_modalities(mf_config_get(root, "typo"), &args, "x ties", 3,
                                             idx, &err), -1);
    ck_assert_str_eq(err.msg, "exp.yaml:8:19: typo.modalities[1]: no modality 'bb' in the data "
                              "(it has a, b, c, d) (did you mean 'b'?)");
    mf_config_free(root);
}
END_TEST

/* ================================================================ suite */
static Suite *suite(void)
{
    Suite *s = suite_create("ops-more");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_mask);
    tcase_add_test(tc, test_constants_forward);
    tcase_add_test(tc, test_constants_survive_replay);
    tcase_add_test(tc, test_constants_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("broadcast");
    tcase_add_test(tc, test_broadcast_forward);
    tcase_add_test(tc, test_broadcast_numbers);
    tcase_add_loop_test(tc, test_grad_broadcast, 0, 4 * N_BC);
    tcase_add_test(tc, test_broadcast_threads);
    tcase_add_test(tc, test_broadcast_errors);
    tcase_add_test(tc, test_expand);
    tcase_add_test(tc, test_grad_expand);
    tcase_add_test(tc, test_expand_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("ops");
    tcase_add_test(tc, test_softplus_clamp_forward);
    tcase_add_test(tc, test_clamp_gradient_mask);
    tcase_add_test(tc, test_grad_softplus_clamp);
    tcase_add_test(tc, test_max_forward);
    tcase_add_test(tc, test_grad_max);
    tcase_add_test(tc, test_gather_forward);
    tcase_add_test(tc, test_grad_gather);
    tcase_add_test(tc, test_gather_errors);
    tcase_add_test(tc, test_gather_batch_alone);
    tcase_add_test(tc, test_gather_batch_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_test(tc, test_init_constant);
    tcase_add_test(tc, test_init_trunc_normal);
    tcase_add_test(tc, test_optim_decay_skips_flagged);
    tcase_add_test(tc, test_optim_bounds);
    tcase_add_test(tc, test_blocks_flag_no_decay);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocks");
    tcase_add_test(tc, test_block_masked_mean);
    tcase_add_test(tc, test_grad_block_masked_mean);
    tcase_add_test(tc, test_block_flatten_prepend_one);
    tcase_add_test(tc, test_block_projections);
    tcase_add_test(tc, test_block_cosine_logits);
    tcase_add_test(tc, test_block_pick_modalities);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mf_test_run(suite()); }
