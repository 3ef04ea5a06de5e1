/* Vector fusion operators: every plugin built through the registry on 2 and 3 modalities of
 * distinct widths, output shapes, gradients (mf_gradcheck), values against the formulas
 * computed here by hand, LMF reproducing TFN + Linear, located refusals, and training runs
 * through mf_experiment_run on the synthetic tasks (docs/fusion.md). */
#include "mf_check.h"
#include "op_test_util.h"
#include "tmpdir.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

enum { B = 3 };
static const char *const names[] = {"a", "b", "c"};
static mf_registry *reg;

static void setup(void)
{
    mf_error err;
    mf_error_clear(&err);
    reg = mf_registry_new();
    ck_assert_int_eq(mf_registry_add_dir(reg, mf_default_plugin_dir(), &err), 0);
}

static void teardown(void)
{
    mf_registry_free(reg);
}

/* ---------------------------------------------------------------- building through the registry */
typedef struct fused {
    mf_config *cfg;
    mf_params *ps;
    mf_module *mod;
    mf_graph *g;
    mf_node *in[3], *out;
    mf_shape shape;              /* per sample, from build */
    const uint32_t *in_flags;    /* MF_IO_* per input, set before try_build, or NULL */
    uint32_t out_flags;
} fused;

static mf_shape batched(mf_shape s)
{
    mf_shape b = {s.ndim + 1, {B}};
    for (int d = 0; d < s.ndim; d++)
        b.dim[d + 1] = s.dim[d];
    return b;
}

/* Build fusion `type` with the YAML settings on inputs of the given shapes; 0 or -1 with err. */
static int try_build(fused *f, const char *type, const char *yaml, int n, const mf_shape *in,
                     mf_error *err)
{
    const uint32_t *flags = f->in_flags;
    memset(f, 0, sizeof *f);
    f->in_flags = flags;
    mf_error_clear(err);
    const mf_plugin *p = mf_registry_find(reg, MF_KIND_FUSION, type, NULL);
    ck_assert_msg(p != NULL, "no fusion plugin '%s'", type);
    f->cfg = mf_config_parse(yaml, strlen(yaml), "fusion.yaml", err);
    ck_assert_msg(f->cfg != NULL, "%s", err->msg);
    if (mf_config_check(f->cfg, p->params, NULL, err))
        return -1;
    f->ps = mf_params_new();
    f->mod = mf_module_new(p, "model.fusion", f->ps, err);
    ck_assert_ptr_nonnull(f->mod);
    mf_build_args args = {.struct_size = sizeof args, .n_in = n, .in = in, .in_names = names,
                          .in_flags = flags, .out_flags = &f->out_flags, .where = f->cfg};
    return mf_module_build(f->mod, f->cfg, &args, &f->shape, err);
}

static void free_fused(fused *f)
{
    mf_graph_free(f->g);
    mf_module_free(f->mod);
    mf_params_free(f->ps);
    mf_config_free(f->cfg);
}

/* Build, finalise the parameters (seeded), forward a training graph on variables, compile
 * and fill the inputs; the output must have the declared shape. */
static void build(fused *f, const char *type, const char *yaml, int n, const mf_shape *in)
{
    mf_error err;
    ck_assert_msg(try_build(f, type, yaml, n, in, &err) == 0, "%s: %s", type, err.msg);
    ck_assert_int_eq(mf_params_finalize(f->ps, 11, 0, &err), 0);
    f->g = mf_graph_new(1);
    for (int i = 0; i < n; i++)
        f->in[i] = mf_variable(f->g, names[i], batched(in[i]));
    f->out = mf_module_forward(f->mod, f->g, n, f->in);
    ck_assert_msg(f->out != NULL, "%s: %s", type, mf_graph_error(f->g));
    mf_shape want = batched(f->shape);
    char got_s[64], want_s[64];
    ck_assert_msg(mf_shape_equal(mf_node_shape(f->out), &want), "%s: output %s, declared %s", type,
                  mf_shape_str(mf_node_shape(f->out), got_s, sizeof got_s),
                  mf_shape_str(&want, want_s, sizeof want_s));
    compile_fill(f->g);
    mf_graph_forward(f->g);
}

static float *param(fused *f, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "model.fusion.%s", name);
    mf_param *p = mf_params_find(f->ps, full);
    ck_assert_msg(p != NULL, "no parameter %s", full);
    return mf_param_value(p);
}

/* Every plugin on M = 2 and M = 3 inputs: the declared output shape, and gradients of inputs
 * and parameters against finite differences. */
typedef struct gcase {
    const char *type, *yaml;
    int n;
    mf_shape in[3];
    mf_shape want;
} gcase;

static gcase gcases[32];
static int n_gcases;

static void add_cases(void)
{
    const mf_shape v3 = mf_shape1(3), v4 = mf_shape1(4), v2 = mf_shape1(2);
    const mf_shape m222 = mf_shape3(2, 1, 2), s24 = mf_shape2(2, 4); /* a map, a sequence */
    const mf_shape w6 = mf_shape1(6), w23 = mf_shape2(2, 3), w123 = mf_shape3(1, 2, 3);
    const gcase c[] = {
        {"concat", "{}", 2, {v3, v4}, mf_shape1(7)},
        {"concat", "{}", 3, {v3, v4, m222}, mf_shape1(11)},
        {"sum", "{dim: 5}", 2, {v3, v4}, mf_shape1(5)},
        {"sum", "{dim: 5, activation: tanh}", 3, {v3, v4, m222}, mf_shape1(5)},
        {"product", "{dim: 5}", 2, {v3, v4}, mf_shape1(5)},
        {"product", "{dim: 5, activation: sigmoid}", 3, {v3, v4, v2}, mf_shape1(5)},
        {"mean", "{}", 2, {w6, w23}, mf_shape1(6)},
        {"mean", "{}", 3, {w6, w23, w123}, mf_shape1(6)},
        {"weighted", "{}", 2, {w6, w23}, mf_shape1(6)},
        {"weighted", "{}", 3, {w6, w23, w123}, mf_shape1(6)},
        {"gated", "{dim: 5}", 2, {v3, v4}, mf_shape1(5)},
        {"gated", "{dim: 5}", 3, {v3, v4, m222}, mf_shape1(5)},
        {"tensor", "{}", 2, {v3, v4}, mf_shape1(20)},
        {"tensor", "{}", 3, {v3, v4, v2}, mf_shape1(60)},
        {"lowrank", "{rank: 3, dim: 5}", 2, {v3, v4}, mf_shape1(5)},
        {"lowrank", "{rank: 3, dim: 5}", 3, {v3, v4, m222}, mf_shape1(5)},
        {"mi", "{dim: 5}", 2, {v3, v4}, mf_shape1(5)},
        {"mi", "{dim: 5}", 3, {v3, v4, v2}, mf_shape1(5)},
        {"film", "{}", 2, {v3, v4}, v4},                          /* a vector */
        {"film", "{}", 2, {v3, s24}, s24},                        /* a sequence */
        {"film", "{condition: b}", 2, {m222, v3}, m222},          /* a map, conditioned on b */
        {"film", "{condition: b}", 3, {s24, v3, m222}, mf_shape1(12)}, /* b modulates a and c */
    };
    n_gcases = (int)(sizeof c / sizeof c[0]);
    memcpy(gcases, c, sizeof c);
}

START_TEST(gradients_and_shapes)
{
    add_cases();
    const gcase *c = &gcases[_i];
    fused f = {0};
    build(&f, c->type, c->yaml, c->n, c->in);
    char got[64], want[64];
    ck_assert_msg(mf_shape_equal(&f.shape, &c->want), "%s (M=%d): shape %s, expected %s", c->type,
                  c->n, mf_shape_str(&f.shape, got, sizeof got),
                  mf_shape_str(&c->want, want, sizeof want));
    mf_gradcheck_result res;
    mf_gradcheck_opts opts = {.seed = 7};
    int rc = mf_gradcheck(f.g, f.out, &opts, &res);
    ck_assert_msg(rc == 0, "%s (M=%d): gradcheck failed %lld/%lld, worst %s", c->type, c->n,
                  (long long)res.failed, (long long)res.checked, res.worst);
    /* the inputs and every parameter took part */
    int64_t leaves = 0;
    for (int i = 0; i < c->n; i++)
        leaves += mf_node_numel(f.in[i]);
    ck_assert_int_eq(res.checked, leaves + mf_params_numel(f.ps));
    free_fused(&f);
}
END_TEST

/* ---------------------------------------------------------------- values against the formulas */
static float x_at(fused *f, int m, int b, int64_t i)
{
    int64_t d = mf_node_numel(f->in[m]) / B;
    return mf_node_value(f->in[m])[b * d + i];
}

/* y (out) = x_m[b] · W (in,out) + bias (or NULL) */
static void ref_linear(fused *f, int m, int b, const float *w, const float *bias, int64_t in,
                       int64_t out, double *y)
{
    for (int64_t k = 0; k < out; k++) {
        y[k] = bias ? bias[k] : 0;
        for (int64_t i = 0; i < in; i++)
            y[k] += (double)x_at(f, m, b, i) * w[i * out + k];
    }
}

static void assert_out(fused *f, int b, int64_t k, double want)
{
    int64_t d = mf_node_numel(f->out) / B;
    double got = mf_node_value(f->out)[b * d + k];
    ck_assert_msg(fabs(got - want) <= 1e-5 * (1 + fabs(want)), "out[%d,%lld] = %.7g, expected %.7g",
                  b, (long long)k, got, want);
}

START_TEST(sum_and_product_values)
{
    const mf_shape in[3] = {mf_shape1(3), mf_shape1(4), mf_shape1(2)};
    for (int prod = 0; prod < 2; prod++) {
        fused f = {0};
        build(&f, prod ? "product" : "sum", "{dim: 5, activation: tanh}", 3, in);
        for (int b = 0; b < B; b++) {
            double acc[5], y[5];
            for (int m = 0; m < 3; m++) {
                char w[64], bias[64];
                snprintf(w, sizeof w, "proj.%s.weight", names[m]);
                snprintf(bias, sizeof bias, "proj.%s.bias", names[m]);
                /* sum: only the first projection has a bias */
                const float *bp = prod || m == 0 ? param(&f, bias) : NULL;
                ref_linear(&f, m, b, param(&f, w), bp, in[m].dim[0], 5, y);
                for (int k = 0; k < 5; k++)
                    acc[k] = m == 0 ? y[k] : prod ? acc[k] * y[k] : acc[k] + y[k];
            }
            for (int k = 0; k < 5; k++)
                assert_out(&f, b, k, tanh(acc[k]));
        }
        free_fused(&f);
    }
}
END_TEST

START_TEST(mean_and_weighted_values)
{
    const mf_shape in[2] = {mf_shape1(4), mf_shape2(2, 2)};
    fused f = {0};
    build(&f, "mean", "{}", 2, in);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 4; k++)
            assert_out(&f, b, k, 0.5 * (x_at(&f, 0, b, k) + x_at(&f, 1, b, k)));
    free_fused(&f);
    build(&f, "weighted", "{}", 2, in);
    /* initialised equal: the mean */
    for (int k = 0; k < 4; k++)
        assert_out(&f, 1, k, 0.5 * (x_at(&f, 0, 1, k) + x_at(&f, 1, 1, k)));
    float *theta = param(&f, "logits");
    theta[0] = 0.0f, theta[1] = (float)log(3.0); /* softmax: 1/4, 3/4 */
    mf_graph_forward(f.g);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 4; k++)
            assert_out(&f, b, k, 0.25 * x_at(&f, 0, b, k) + 0.75 * x_at(&f, 1, b, k));
    free_fused(&f);
}
END_TEST

START_TEST(gated_values)
{
    /* M = 2: the softmax gate is the paper's σ gate, z·h_a + (1 − z)·h_b */
    const mf_shape in[2] = {mf_shape1(3), mf_shape1(4)};
    fused f = {0};
    build(&f, "gated", "{dim: 5}", 2, in);
    const float *wz = param(&f, "gate.weight"), *bz = param(&f, "gate.bias");
    for (int b = 0; b < B; b++) {
        double ha[5], hb[5];
        ref_linear(&f, 0, b, param(&f, "h.a.weight"), NULL, 3, 5, ha);
        ref_linear(&f, 1, b, param(&f, "h.b.weight"), NULL, 4, 5, hb);
        for (int k = 0; k < 5; k++) {
            double l[2]; /* gate logits of unit k: columns 2k (for a) and 2k+1 (for b) */
            for (int m = 0; m < 2; m++) {
                l[m] = bz[2 * k + m];
                for (int i = 0; i < 7; i++) {
                    double xi = i < 3 ? x_at(&f, 0, b, i) : x_at(&f, 1, b, i - 3);
                    l[m] += xi * wz[i * 10 + 2 * k + m];
                }
            }
            double z = 1 / (1 + exp(-(l[0] - l[1])));
            assert_out(&f, b, k, z * tanh(ha[k]) + (1 - z) * tanh(hb[k]));
        }
    }
    free_fused(&f);
}
END_TEST

START_TEST(tensor_values)
{
    const mf_shape in[3] = {mf_shape1(2), mf_shape1(3), mf_shape1(2)};
    fused f = {0};
    build(&f, "tensor", "{}", 3, in);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 3; l++) { /* [1; z]: index 0 is the constant */
                    double za = i ? x_at(&f, 0, b, i - 1) : 1, zb = j ? x_at(&f, 1, b, j - 1) : 1,
                           zc = l ? x_at(&f, 2, b, l - 1) : 1;
                    assert_out(&f, b, (i * 4 + j) * 3 + l, za * zb * zc);
                }
    free_fused(&f);
}
END_TEST

START_TEST(mi_values)
{
    /* out = z^T W x + U z + V x + b with x = a (3) the context, z = b (4) */
    const mf_shape in[2] = {mf_shape1(3), mf_shape1(4)};
    fused f = {0};
    build(&f, "mi", "{dim: 5}", 2, in);
    const float *w = param(&f, "step1.w.weight"); /* (D_x, D_z·dim) */
    for (int b = 0; b < B; b++) {
        double u[5], v[5];
        ref_linear(&f, 1, b, param(&f, "step1.u.weight"), NULL, 4, 5, u);
        ref_linear(&f, 0, b, param(&f, "step1.v.weight"), param(&f, "step1.v.bias"), 3, 5, v);
        for (int k = 0; k < 5; k++) {
            double bil = 0;
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < 4; i++)
                    bil += x_at(&f, 1, b, i) * w[j * 20 + i * 5 + k] * x_at(&f, 0, b, j);
            assert_out(&f, b, k, bil + u[k] + v[k]);
        }
    }
    free_fused(&f);
}
END_TEST

START_TEST(film_values)
{
    /* a feature map (2,2,3) modulated per channel by b (3); the sequence case by a (3) */
    const mf_shape in[2] = {mf_shape3(2, 2, 3), mf_shape1(3)};
    fused f = {0};
    build(&f, "film", "{condition: b}", 2, in);
    for (int b = 0; b < B; b++) {
        double gamma[2], beta[2];
        ref_linear(&f, 1, b, param(&f, "gamma.a.weight"), param(&f, "gamma.a.bias"), 3, 2, gamma);
        ref_linear(&f, 1, b, param(&f, "beta.a.weight"), param(&f, "beta.a.bias"), 3, 2, beta);
        for (int c = 0; c < 2; c++)
            for (int p = 0; p < 6; p++)
                assert_out(&f, b, c * 6 + p, gamma[c] * x_at(&f, 0, b, c * 6 + p) + beta[c]);
    }
    /* γ starts near 1: bias ones, weight U(±0.1/√3) */
    ck_assert_float_eq(param(&f, "gamma.a.bias")[1], 1.0f);
    ck_assert_float_le(fabsf(param(&f, "gamma.a.weight")[0]), 0.1f / sqrtf(3.0f));
    free_fused(&f);

    const mf_shape seq[2] = {mf_shape1(3), mf_shape2(2, 4)};
    build(&f, "film", "{}", 2, seq);
    for (int b = 0; b < B; b++) {
        double gamma[4], beta[4];
        ref_linear(&f, 0, b, param(&f, "gamma.b.weight"), param(&f, "gamma.b.bias"), 3, 4, gamma);
        ref_linear(&f, 0, b, param(&f, "beta.b.weight"), param(&f, "beta.b.bias"), 3, 4, beta);
        for (int t = 0; t < 2; t++)
            for (int d = 0; d < 4; d++)
                assert_out(&f, b, t * 4 + d, gamma[d] * x_at(&f, 1, b, t * 4 + d) + beta[d]);
    }
    free_fused(&f);
}
END_TEST

START_TEST(film_keeps_a_sequence_and_its_mask)
{
    const mf_shape in[2] = {mf_shape1(3), mf_shape2(5, 4)};
    const uint32_t flags[2] = {0, MF_IO_SEQUENCE | MF_IO_MASKED};
    fused f = {.in_flags = flags};
    mf_error err;
    ck_assert_int_eq(try_build(&f, "film", "{}", 2, in, &err), 0);
    ck_assert_uint_eq(f.out_flags, MF_IO_SEQUENCE | MF_IO_MASKED);
    ck_assert(mf_shape_equal(&f.shape, &in[1]));
    ck_assert_int_eq(mf_params_finalize(f.ps, 1, 0, &err), 0);
    f.g = mf_graph_new(0);
    mf_node *x[2] = {mf_input(f.g, "a", mf_shape2(B, 3)), mf_input(f.g, "b", mf_shape3(B, 5, 4))};
    mf_node *mask = mf_input(f.g, "b.mask", mf_shape2(B, 5));
    mf_node_set_mask(x[1], mask);
    mf_node *y = mf_module_forward(f.mod, f.g, 2, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_eq(mf_node_mask(y), mask);
    free_fused(&f);
}
END_TEST

/* LMF with factors cut from a TFN weight reproduces TFN followed by that Linear layer:
 * W[(i_1,…,i_M), k] = Σ_r Π_m A_m^(r)[i_m, k] with one term per index r = (i_1…i_{M-1}):
 * A_m^(r)[i,k] = δ(i = r_m) for m < M, and A_M^(r)[j,k] = W[(r, j), k]; λ = 1. */
static void lmf_reproduces_tfn(int n, const mf_shape *in)
{
    enum { DIM = 3 };
    int64_t pad[3], P = 1, rank = 1;
    for (int m = 0; m < n; m++) {
        pad[m] = in[m].dim[0] + 1;
        P *= pad[m];
        rank *= m < n - 1 ? pad[m] : 1;
    }
    fused t = {0}, l = {0};
    build(&t, "tensor", "{}", n, in);
    char yaml[64];
    snprintf(yaml, sizeof yaml, "{rank: %lld, dim: %d}", (long long)rank, DIM);
    build(&l, "lowrank", yaml, n, in);
    /* the same inputs for both */
    for (int m = 0; m < n; m++)
        memcpy(mf_node_value(l.in[m]), mf_node_value(t.in[m]),
               (size_t)mf_node_numel(t.in[m]) * sizeof(float));
    /* a seeded TFN head W (P,DIM), bias (DIM) */
    float *w = malloc((size_t)(P * DIM) * sizeof(float)), bias[DIM] = {0.3f, -0.2f, 0.1f};
    mf_rng rng;
    mf_rng_seed(&rng, 99);
    for (int64_t i = 0; i < P * DIM; i++)
        w[i] = (float)(2 * mf_rng_uniform(&rng) - 1);
    for (int m = 0; m < n; m++) {
        char name[64];
        snprintf(name, sizeof name, "factor.%s.weight", names[m]);
        float *a = param(&l, name); /* (pad_m, rank·DIM) */
        for (int64_t r = 0; r < rank; r++) {
            int64_t digit = r, stride = rank; /* r's digit for modality m, mixed radix */
            for (int j = 0; j <= m && j < n - 1; j++) {
                stride /= pad[j];
                digit = (r / stride) % pad[j];
            }
            for (int64_t i = 0; i < pad[m]; i++)
                for (int k = 0; k < DIM; k++)
                    a[i * rank * DIM + r * DIM + k] =
                        m < n - 1 ? (float)(i == digit) : w[((r * pad[m]) + i) * DIM + k];
        }
    }
    for (int64_t r = 0; r < rank; r++)
        param(&l, "lambda")[r] = 1.0f;
    memcpy(param(&l, "bias"), bias, sizeof bias);
    mf_graph_forward(t.g);
    mf_graph_forward(l.g);
    const float *feat = mf_node_value(t.out), *got = mf_node_value(l.out);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < DIM; k++) {
            double want = bias[k];
            for (int64_t i = 0; i < P; i++)
                want += (double)feat[b * P + i] * w[i * DIM + k];
            ck_assert_msg(fabs(got[b * DIM + k] - want) <= 1e-4 * (1 + fabs(want)),
                          "M=%d out[%d,%d] = %.6g, TFN + Linear gives %.6g", n, b, k,
                          got[b * DIM + k], want);
        }
    free(w);
    free_fused(&t);
    free_fused(&l);
}

START_TEST(lowrank_reproduces_tensor_and_linear)
{
    const mf_shape in[3] = {mf_shape1(3), mf_shape1(4), mf_shape1(2)};
    lmf_reproduces_tfn(2, in); /* rank 4 */
    lmf_reproduces_tfn(3, in); /* rank 20 */
}
END_TEST

/* ---------------------------------------------------------------- the parity task */
/* With one feature per modality and no noise, u_m = ±1 and the label must be
 * (Σ_m ⌊K·Φ(u_m x_m)⌋) mod K for one choice of the signs, on every sample. */
START_TEST(parity_task_labels)
{
    const mf_plugin *p = mf_registry_find(reg, MF_KIND_DATASET, "synthetic", NULL);
    static const char yaml[] = "{task: parity, classes: 3, dims: [1, 1], noise: 0, samples: 500}";
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = mf_config_parse(yaml, strlen(yaml), "data.yaml", &err);
    ck_assert_int_eq(mf_config_check(cfg, p->params, NULL, &err), 0);
    mf_dataset *ds = mf_dataset_open(p, cfg, ".", &err);
    ck_assert_msg(ds != NULL, "%s", err.msg);
    int64_t idx[500];
    float a[500], b[500];
    int32_t labels[500];
    for (int i = 0; i < 500; i++)
        idx[i] = i;
    float *bufs[2] = {a, b};
    mf_batch_buffers out = {sizeof out, bufs, labels, NULL};
    ck_assert_int_eq(mf_dataset_read(ds, 500, idx, &out, &err), 0);
    int best = 0, count[3] = {0};
    for (int signs = 0; signs < 4; signs++) {
        int match = 0;
        for (int i = 0; i < 500; i++) {
            double pa = (signs & 1 ? -1 : 1) * a[i], pb = (signs & 2 ? -1 : 1) * b[i];
            int qa = (int)(3 * 0.5 * erfc(-pa / sqrt(2))), qb = (int)(3 * 0.5 * erfc(-pb / sqrt(2)));
            match += labels[i] == (qa + qb) % 3;
        }
        best = match > best ? match : best;
    }
    ck_assert_int_eq(best, 500);
    for (int i = 0; i < 500; i++)
        count[labels[i]]++;
    for (int k = 0; k < 3; k++) /* balanced: 500/3 ± 4 standard deviations */
        ck_assert_msg(abs(count[k] - 167) < 43, "class %d: %d of 500", k, count[k]);
    mf_dataset_close(ds);
    mf_config_free(cfg);
}
END_TEST

/* ---------------------------------------------------------------- experiments */
/* The parity task (synergy only, docs/datasets.md) and the mixture task without synergy. */
static const char parity_yaml[] =
    "name: parity\nseed: 1\n"
    "data: {reader: synthetic, task: parity, seed: 3, samples: 3000, classes: 2, names: [a, b], "
    "dims: [8, 12], noise: 0.1, batch_size: 64}\n"
    "model:\n"
    "  encoders: {a: {type: mlp, hidden: [32], out: 8}, b: {type: mlp, hidden: [32], out: 8}}\n"
    "  fusion: {type: concat}\n"
    "  head: {type: mlp, hidden: []}\n"
    "loss: {type: cross_entropy}\noptim: {type: adam, lr: 3.0e-3}\ntrain: {epochs: 10}\n";

static const char mixture_yaml[] =
    "name: mixture\nseed: 1\n"
    "data: {reader: synthetic, seed: 7, samples: 2000, classes: 4, names: [a, b], dims: [10, 14], "
    "redundancy: 0.4, unique: [0.3, 0.3], synergy: 0, noise: 1.0, batch_size: 64}\n"
    "model:\n"
    "  encoders: {a: {type: mlp, hidden: [32], out: 4}, b: {type: mlp, hidden: [32], out: 4}}\n"
    "  fusion: {type: mean}\n"
    "  head: {type: identity}\n"
    "loss: {type: cross_entropy}\noptim: {type: adam, lr: 3.0e-3}\ntrain: {epochs: 8}\n";

static const char *write_yaml(const char *name, const char *text)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Run the file with overrides; returns the exit status, the result in *res, reasons in err. */
static int run_file(const char *path, int n, const char *const *o, int validate_only,
                    mf_run_result *res, mf_error *err)
{
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = n, .overrides = o,
                           .log = stdout, .quiet = 1, .no_save = 1,
                           .validate_only = validate_only};
    mf_error_clear(err);
    return mf_experiment_run(path, &opts, res, err);
}

static double test_accuracy(const char *path, const char *fusion, const char *extra)
{
    char o1[128], o2[128];
    snprintf(o1, sizeof o1, "model.fusion=%s", fusion);
    snprintf(o2, sizeof o2, "%s", extra ? extra : "train.epochs=10");
    const char *const o[] = {o1, o2};
    mf_run_result r;
    mf_error err;
    int status = run_file(path, 2, o, 0, &r, &err);
    ck_assert_msg(status == MF_EXIT_OK, "%s: exit %d: %s", fusion, status, err.msg);
    printf("%-40s test accuracy %.4f\n", fusion, r.test_accuracy);
    return r.test_accuracy;
}

START_TEST(synergy_needs_multiplicative_fusion)
{
    /* Labels are the XOR of the signs of one projection per modality: an additive fusion
     * with a linear head stays near chance, a multiplicative one reaches ~0.92.
     * Measured (seed 1, 450 test samples): concat 0.520, sum 0.500; tensor 0.920,
     * lowrank 0.920, mi 0.920, gated 0.931, film 0.916, product 0.929. */
    make_tmp("fusion");
    const char *path = write_yaml("parity.yaml", parity_yaml);
    double concat = test_accuracy(path, "{type: concat}", NULL);
    double sum = test_accuracy(path, "{type: sum, dim: 16}", NULL);
    ck_assert_double_le(concat, 0.62);
    ck_assert_double_le(sum, 0.62);
    /* the label is in the pair: a hidden layer after concat finds it (0.938), a alone not
     * (0.524) */
    double deep = test_accuracy(path, "{type: concat}", "model.head={type: mlp, hidden: [32]}");
    ck_assert_double_ge(deep, 0.85);
    {
        const char *const o[] = {"data.modalities=[a]",
                                 "model.encoders={a: {type: mlp, hidden: [32], out: 8}}",
                                 "model.head={type: mlp, hidden: [32]}"};
        mf_run_result r;
        mf_error err;
        ck_assert_int_eq(run_file(path, 3, o, 0, &r, &err), MF_EXIT_OK);
        ck_assert_double_le(r.test_accuracy, 0.60);
    }
    static const char *const mult[] = {"{type: tensor}", "{type: lowrank, rank: 4, dim: 16}",
                                       "{type: mi, dim: 16}", "{type: gated, dim: 16}",
                                       "{type: film}", "{type: product, dim: 16}"};
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++) {
        double acc = test_accuracy(path, mult[i], NULL);
        ck_assert_msg(acc >= 0.85 && acc >= concat + 0.25, "%s: %.4f (concat %.4f)", mult[i],
                      acc, concat);
    }
    remove_tmp();
}
END_TEST

START_TEST(late_fusion_trains)
{
    /* Each encoder ends in the 4 class logits; mean/weighted average them, the identity head
     * passes the result on. The best accuracy is r + Σu = 1 up to noise. Measured (seed 1,
     * 300 test samples): mean 0.883, weighted 0.887. */
    make_tmp("fusion");
    const char *path = write_yaml("mixture.yaml", mixture_yaml);
    double mean = test_accuracy(path, "{type: mean}", "train.epochs=8");
    double weighted = test_accuracy(path, "{type: weighted}", "train.epochs=8");
    ck_assert_double_ge(mean, 0.84);
    ck_assert_double_ge(weighted, 0.84);
    /* without synergy, additive early fusion with a linear head is as good: sum 0.900 */
    double sum = test_accuracy(path, "{type: sum, dim: 16}", "model.head={type: mlp, hidden: []}");
    ck_assert_double_ge(sum, 0.85);
    remove_tmp();
}
END_TEST

/* The mixture file with one line replaced, written to the temporary folder. */
static const char *write_variant(const char *name, const char *line, const char *with)
{
    static char text[4096];
    const char *at = strstr(mixture_yaml, line);
    ck_assert_ptr_nonnull(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - mixture_yaml), mixture_yaml, with,
             at + strlen(line));
    return write_yaml(name, text);
}

/* Validation refuses with exactly "<path>:<where>: <message>". */
static void assert_refused(const char *line, const char *with, const char *where_msg)
{
    const char *path = write_variant("bad.yaml", line, with);
    char expected[8192];
    snprintf(expected, sizeof expected, "%s:%s", path, where_msg);
    mf_run_result r;
    mf_error err;
    ck_assert_int_eq(run_file(path, 0, NULL, 1, &r, &err), MF_EXIT_BAD_INPUT);
    ck_assert_str_eq(err.msg, expected);
}

START_TEST(located_refusals)
{
    make_tmp("fusion");
    assert_refused("b: {type: mlp, hidden: [32], out: 4}", "b: {type: mlp, hidden: [32], out: 6}",
                   "6:11: model.fusion: late fusion needs inputs of one width, but modality "
                   "'a' has 4 features and 'b' has 6");
    assert_refused("fusion: {type: mean}", "fusion: {type: tensor, max_features: 20}",
                   "6:11: model.fusion: tensor fusion would have 5 x 5 = 25 features per "
                   "sample, more than max_features (20); shrink the encoders' outputs or use "
                   "lowrank");
    assert_refused("fusion: {type: mean}", "fusion: {type: lowrank, rank: 0}",
                   "6:33: model.fusion.rank: expected an integer between 1 and 16777216, got 0");
    assert_refused("fusion: {type: mean}", "fusion: {type: film, condition: bb}",
                   "6:35: model.fusion.condition: condition 'bb' is not one of the modalities "
                   "(a, b) (did you mean 'b'?)");
    remove_tmp();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fusion");
    TCase *tc = tcase_create("operators");
    tcase_add_checked_fixture(tc, setup, teardown);
    add_cases();
    tcase_add_loop_test(tc, gradients_and_shapes, 0, n_gcases);
    tcase_add_test(tc, sum_and_product_values);
    tcase_add_test(tc, mean_and_weighted_values);
    tcase_add_test(tc, gated_values);
    tcase_add_test(tc, tensor_values);
    tcase_add_test(tc, mi_values);
    tcase_add_test(tc, film_values);
    tcase_add_test(tc, film_keeps_a_sequence_and_its_mask);
    tcase_add_test(tc, lowrank_reproduces_tensor_and_linear);
    tcase_add_test(tc, parity_task_labels);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("training");
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_add_test(tr, synergy_needs_multiplicative_fusion);
    tcase_add_test(tr, late_fusion_trains);
    tcase_add_test(tr, located_refusals);
    suite_add_tcase(s, tr);
    return mf_test_run(s);
}
