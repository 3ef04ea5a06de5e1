/* Helpers shared by the op suites: seeded fills, compile, and gradient checks that fail the
 * test with the worst element. */
#ifndef MF_TESTS_OP_TEST_UTIL_H
#define MF_TESTS_OP_TEST_UTIL_H
#include <check.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

/* Seeded values in ±[0.1, 1]: far from relu's kink for eps = 1e-3. */
static inline void fill(mf_node *n, uint64_t seed)
{
    mf_rng r;
    mf_rng_seed(&r, seed);
    float *v = mf_node_value(n);
    for (int64_t i = 0; i < mf_node_numel(n); i++) {
        float x = (float)(0.1 + 0.9 * mf_rng_uniform(&r));
        v[i] = (mf_rng_u64(&r) & 1) ? x : -x;
    }
}

/* Seeded values in [lo, hi). */
static inline void fill_range(mf_node *n, uint64_t seed, double lo, double hi)
{
    mf_rng r;
    mf_rng_seed(&r, seed);
    float *v = mf_node_value(n);
    for (int64_t i = 0; i < mf_node_numel(n); i++)
        v[i] = (float)(lo + (hi - lo) * mf_rng_uniform(&r));
}

static inline void set(mf_node *n, const float *vals)
{
    memcpy(mf_node_value(n), vals, (size_t)mf_node_numel(n) * sizeof(float));
}

static inline void compile_ok(mf_graph *g)
{
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_graph_compile(g, &err) == 0, "compile failed: %s", err.msg);
}

/* Compile, then fill every variable with fill() (seeded by its position). */
static inline void compile_fill(mf_graph *g)
{
    compile_ok(g);
    for (int i = 0; i < mf_graph_size(g); i++) {
        mf_node *n = mf_graph_node(g, i);
        if (strcmp(mf_node_op_name(n), "variable") == 0)
            fill(n, 1000u + (uint64_t)i);
    }
}

/* mf_gradcheck of `out` with the values already in place. */
static inline void gradcheck_ok(mf_graph *g, mf_node *out)
{
    mf_gradcheck_result res;
    mf_gradcheck_opts opts = {0};
    opts.seed = 7;
    int rc = mf_gradcheck(g, out, &opts, &res);
    ck_assert_msg(rc == 0, "%s: gradcheck failed %lld/%lld, worst %s", mf_node_op_name(out),
                  (long long)res.failed, (long long)res.checked, res.worst);
    ck_assert_int_gt(res.checked, 0);
}

/* Compile, fill every variable, gradcheck `out` (the graph stays the caller's). */
static inline void gradcheck_filled(mf_graph *g, mf_node *out)
{
    ck_assert_msg(out != NULL, "construction failed: %s", mf_graph_error(g));
    compile_fill(g);
    gradcheck_ok(g, out);
}

/* A constructor failed with exactly `msg`; frees the graph. */
static inline void expect_error(mf_graph *g, mf_node *out, const char *msg)
{
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(mf_graph_error(g));
    ck_assert_str_eq(mf_graph_error(g), msg);
    mf_graph_free(g);
}
#endif
