/* The loss plugins: values and gradients on small fixed inputs against PyTorch (numbers from
 * tests/reference/losses_reference.py, float64), finite-difference gradient checks, the
 * learned scales' initial values, flags and bounds, declared metrics, and the exact refusal
 * of configurations a loss cannot use. */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

#include "op_test_util.h"

/* ---------------------------------------------------------------- reference numbers */
/* The inputs of tests/reference/losses_reference.py. */
static const float emb_a[12] = {0.5f, -1.2f, 0.3f, 0.8f, 1.1f, 0.4f, -0.7f, 0.2f,
                                -0.3f, 0.9f, 1.5f, -0.6f}; /* (3,4) */
static const float emb_b[12] = {0.7f, -0.8f, 0.1f, 1.0f, 0.2f, 1.3f, -0.5f, -0.4f,
                                -1.0f, 0.6f, 0.9f, 0.3f};  /* (3,4) */
static const float ce_logits[12] = {1.2f, -0.4f, 0.3f, 0.1f, 0.8f, -1.1f,
                                    -0.6f, 0.2f, 0.9f, 2.0f, -1.5f, 0.4f}; /* (4,3) */
static const float ce_classes[4] = {0, 2, 1, 2}; /* smoothing 0.1, weights {0.5, 2, 1} */
static const float mse_x[6] = {0.3f, -1.2f, 1.5f, 0.4f, -0.7f, 0.9f};  /* (3,2) */
static const float mse_y[6] = {0.0f, -1.0f, 2.0f, 0.5f, 0.1f, -0.3f};
static const float bce_x[9] = {0.8f, -1.3f, 2.1f, -0.4f, 0.6f, -2.5f, 1.7f, 0.2f, -0.9f};
static const float bce_y[9] = {1, 0, 1, 0, 1, 0, 1, 1, 0}; /* (3,3), pos_weight {1, 3, 0.5} */

/* Printed by /usr/bin/python3 tests/reference/losses_reference.py (torch 1.13, float64). */
/* clip, s = 1 */
static const double clip_loss[1] = {0.237424355};
static const double clip_grad_a[12] = {-0.0222872297, -0.00432698824, 0.0226353564, -0.00104922242,
    0.099466991, -0.265179884, 0.0586107479, 0.188428936, 0.0665593437, 0.0896500913, -0.061028203,
    -0.0513750424};
static const double clip_grad_b[12] = {0.109840931, 0.0870062548, -0.0768551076, 0.000401862571,
    -0.185841141, 0.0790141139, 0.211632838, -0.100665748, -0.0212982995, -0.0282388656,
    -0.025636193, 0.0623919784};
static const double clip_grad_s[1] = {-0.275056213};
/* clip at its initial s = ln(1/0.07) */
static const double clip_init_loss[1] = {0.0108381978};
/* siglip, t = 1.5, bias = -2 */
static const double siglip_loss[1] = {0.570223117};
static const double siglip_grad_a[12] = {-0.0337678247, -0.010887455, 0.0313412206, -0.0069792498,
    0.213284407, -0.574800549, 0.119799114, 0.39583376, 0.142575071, 0.151914182, -0.109153988,
    -0.116301233};
static const double siglip_grad_b[12] = {0.236224279, 0.179308261, -0.178453799, -0.00406500683,
    -0.377272686, 0.146842481, 0.387794959, -0.19614198, -0.0664138287, -0.0632848104,
    -0.0740823349, 0.127437197};
static const double siglip_grad_t[1] = {-0.521520975};
static const double siglip_grad_bias[1] = {-0.0393451404};
/* siglip at its initial t = ln 10, bias = -10 */
static const double siglip_init_loss[1] = {2.98439646};
static const double ce_plain_loss[1] = {1.48114915};
static const double ce_plain_grad[12] = {-0.0945724234, 0.0313802865, 0.0631921369, 0.0754159889,
    0.151869152, -0.227285141, 0.0324370753, -0.177809961, 0.145372886, 0.202906613, 0.00612724878,
    -0.209033861};
static const double ce_smooth_loss[1] = {1.47948248};
static const double ce_smooth_grad[12] = {-0.0779057568, 0.0230469532, 0.0548588036, 0.0670826555,
    0.143535818, -0.210618474, 0.024103742, -0.161143295, 0.137039553, 0.194573279, -0.00220608455,
    -0.192367195};
static const double ce_weighted_loss[1] = {1.53980331};
static const double ce_weighted_grad[12] = {-0.0420321882, 0.013946794, 0.0280853942, 0.0670364346,
    0.134994802, -0.202031236, 0.0576659117, -0.316106598, 0.258440686, 0.180361433, 0.00544644336,
    -0.185807877};
static const double ce_both_loss[1] = {1.55720141};
static const double ce_both_grad[12] = {-0.0254142577, 0.000991551723, 0.024422706, 0.0644500048,
    0.1224299, -0.186879905, 0.0515594617, -0.291824378, 0.240264917, 0.179663754, -0.0092775974,
    -0.170386156};
static const double mse_loss[1] = {0.411666667};
static const double mse_grad[6] = {0.1, -0.0666666667, -0.166666667, -0.0333333333, -0.266666667,
    0.4};
static const double bce_plain_loss[1] = {0.318233373};
static const double bce_plain_grad[9] = {-0.0344472799, 0.023796113, -0.012121869, 0.04459026,
    -0.0393715215, 0.00842868667, -0.0171628072, -0.0500184447, 0.0321167219};
static const double bce_pos_loss[1] = {0.541954915};
static const double bce_pos_grad[9] = {-0.0344472799, 0.023796113, -0.00606093451, 0.04459026,
    -0.118114565, 0.00842868667, -0.0171628072, -0.150055334, 0.0321167219};

/* ---------------------------------------------------------------- helpers */
static const char *const names3[] = {"a", "b", "c"};

/* float32 against float64 references */
static void expect_close(const char *what, const float *got, const double *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= 2e-6 + 2e-5 * fabs(want[i]),
                      "%s[%lld]: %.9g, PyTorch %.9g", what, (long long)i, got[i], want[i]);
}

/* One loss built from YAML against the model's shapes. */
typedef struct fixture {
    mf_registry *reg;
    mf_config *root;
    mf_params *ps;
    mf_module *m;
    mf_error err;
} fixture;

/* Parse `yaml` (a file holding a `loss:` section), check it as the host does, build the loss.
 * Returns the build's status; its message is in f->err. */
static int build(fixture *f, const char *yaml, const mf_loss_build_args *args)
{
    char path[4096];
    memset(f, 0, sizeof *f);
    f->reg = mf_registry_new();
    f->root = mf_config_parse(yaml, strlen(yaml), "exp.yaml", &f->err);
    ck_assert_msg(f->root != NULL, "%s", f->err.msg);
    mf_config *cfg = (mf_config *)mf_config_get(f->root, "loss");
    const char *type = mf_config_scalar(mf_config_get(cfg, "type"));
    snprintf(path, sizeof path, "%s/mmfuse-%s.so", mf_default_plugin_dir(), type);
    ck_assert_msg(mf_registry_add_file(f->reg, path, &f->err) == 0, "%s", f->err.msg);
    const mf_plugin *p = mf_registry_find(f->reg, MF_KIND_LOSS, type, NULL);
    ck_assert_ptr_nonnull(p);
    static const char *const extra[] = {"type", NULL};
    ck_assert_msg(mf_config_check(cfg, p->params, extra, &f->err) == 0, "%s", f->err.msg);
    f->ps = mf_params_new();
    ck_assert_ptr_nonnull(f->m = mf_module_new(p, "loss", f->ps, &f->err));
    mf_error_clear(&f->err);
    int status = mf_module_build_loss_model(f->m, cfg, args, &f->err);
    if (status == 0) {
        mf_error e;
        mf_error_clear(&e);
        /* two moments: room for any optimiser */
        ck_assert_msg(mf_params_finalize(f->ps, 1, 2, &e) == 0, "%s", e.msg);
    }
    return status;
}

static void build_ok(fixture *f, const char *yaml, const mf_loss_build_args *args)
{
    ck_assert_msg(build(f, yaml, args) == 0, "build failed: %s", f->err.msg);
}

/* The build is refused with exactly `msg`. */
static void build_refused(const char *yaml, const mf_loss_build_args *args, const char *msg)
{
    fixture f;
    ck_assert_int_eq(build(&f, yaml, args), -1);
    ck_assert_str_eq(f.err.msg, msg);
    ck_assert_int_eq(f.err.count, 1);
    mf_module_free(f.m);
    mf_params_free(f.ps);
    mf_config_free(f.root);
    mf_registry_free(f.reg);
}

static void fixture_free(fixture *f)
{
    mf_module_free(f->m);
    mf_params_free(f->ps);
    mf_config_free(f->root);
    mf_registry_free(f->reg);
}

static mf_param *param(fixture *f, const char *name)
{
    mf_param *p = mf_params_find(f->ps, name);
    ck_assert_msg(p != NULL, "no parameter %s", name);
    return p;
}

/* Build args for two vector embeddings of width D each, no fusion, no head. */
static mf_loss_build_args pair_args(const mf_shape *emb, const uint32_t *flags, int n)
{
    return (mf_loss_build_args){sizeof(mf_loss_build_args), n, names3, emb, flags, NULL, NULL,
                                MF_TARGET_CLASSES, 4};
}

/* Forward, zero the gradients, backward; the loss value. */
static float run(fixture *f, mf_graph *g, mf_node *loss)
{
    mf_params_zero_grad(f->ps);
    mf_graph_forward(g);
    mf_graph_backward(g, loss);
    return mf_node_value(loss)[0];
}

/* ---------------------------------------------------------------- contrastive */
/* A graph over two (3,4) embeddings feeding the loss. */
static mf_node *contrastive_graph(fixture *f, mf_graph *g, mf_node **a, mf_node **b)
{
    static mf_node *emb[2];
    emb[0] = *a = mf_variable(g, "emb.a", mf_shape2(3, 4));
    emb[1] = *b = mf_variable(g, "emb.b", mf_shape2(3, 4));
    mf_loss_inputs li = {sizeof li, NULL, NULL, 2, names3, emb, NULL, MF_TARGET_CLASSES};
    mf_node *loss = mf_module_loss(f->m, g, &li);
    ck_assert_msg(loss != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    set(*a, emb_a);
    set(*b, emb_b);
    return loss;
}

START_TEST(clip_matches_torch)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: clip\n", &args);
    mf_param *s = param(&f, "loss.logit_scale");
    ck_assert_int_eq(mf_params_size(f.ps), 1);
    ck_assert_float_eq_tol(mf_param_value(s)[0], (float)log(1 / 0.07), 1e-6);
    ck_assert_uint_eq(mf_param_flags(s) & MF_NO_DECAY, MF_NO_DECAY);
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    float l0 = run(&f, g, loss);
    expect_close("clip loss at init", &l0, clip_init_loss, 1);
    mf_param_value(s)[0] = 1.0f;
    float l = run(&f, g, loss);
    expect_close("clip loss", &l, clip_loss, 1);
    expect_close("d/d emb.a", mf_node_grad(a), clip_grad_a, 12);
    expect_close("d/d emb.b", mf_node_grad(b), clip_grad_b, 12);
    expect_close("d/d s", mf_param_grad(s), clip_grad_s, 1);
    gradcheck_ok(g, loss); /* both embeddings and s */
    /* the metric is exp(s) */
    mf_loss_metrics m;
    double v[MF_LOSS_MAX_METRICS];
    mf_module_loss_metrics(f.m, &m);
    ck_assert_int_eq(m.n, 1);
    ck_assert_str_eq(m.names[0], "logit_scale");
    mf_module_loss_batch_metrics(f.m, NULL, v);
    ck_assert_double_eq_tol(v[0], exp(1.0), 1e-6);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(clip_scale_stays_below_ln_100)
{
    /* open_clip clamps the logit scale to [0, ln 100] after each step */
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: clip\n  init_scale: 4.5\n", &args);
    mf_param *s = param(&f, "loss.logit_scale");
    ck_assert_float_eq_tol(mf_param_value(s)[0], 4.5f, 1e-6);
    mf_optim o = {.kind = MF_OPTIM_SGD, .lr = 1.0};
    mf_param_grad(s)[0] = -10.0f; /* one step would take s to 14.5 */
    mf_optim_step(&o, f.ps);
    ck_assert_float_eq_tol(mf_param_value(s)[0], (float)log(100.0), 1e-6);
    mf_param_grad(s)[0] = 20.0f;  /* and then to -15.4 */
    mf_optim_step(&o, f.ps);
    ck_assert_float_eq(mf_param_value(s)[0], 0.0f);
    fixture_free(&f);
}
END_TEST

START_TEST(clip_fixed_scale)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: clip\n  init_scale: 1\n  learn_scale: false\n", &args);
    ck_assert_int_eq(mf_params_size(f.ps), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    float l = run(&f, g, loss);
    expect_close("clip loss, fixed s = 1", &l, clip_loss, 1);
    expect_close("d/d emb.a", mf_node_grad(a), clip_grad_a, 12);
    gradcheck_ok(g, loss);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(clip_picks_listed_modalities)
{
    /* three modalities, two listed in reverse: the loss is symmetric, so the numbers hold */
    const mf_shape emb[3] = {mf_shape1(4), mf_shape1(7), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 3);
    fixture f;
    build_ok(&f, "loss:\n  type: clip\n  modalities: [c, a]\n  init_scale: 1\n", &args);
    mf_graph *g = mf_graph_new(1);
    mf_node *emb_n[3] = {mf_variable(g, "emb.a", mf_shape2(3, 4)),
                         mf_variable(g, "emb.b", mf_shape2(3, 7)),
                         mf_variable(g, "emb.c", mf_shape2(3, 4))};
    mf_loss_inputs li = {sizeof li, NULL, NULL, 3, names3, emb_n, NULL, MF_TARGET_CLASSES};
    mf_node *loss = mf_module_loss(f.m, g, &li);
    ck_assert_msg(loss != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    set(emb_n[0], emb_a);
    set(emb_n[2], emb_b);
    float l = run(&f, g, loss);
    expect_close("clip loss over (c, a)", &l, clip_loss, 1);
    expect_close("d/d emb.a", mf_node_grad(emb_n[0]), clip_grad_a, 12);
    expect_close("d/d emb.c", mf_node_grad(emb_n[2]), clip_grad_b, 12);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(siglip_matches_torch)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: siglip\n", &args);
    mf_param *t = param(&f, "loss.logit_scale"), *bias = param(&f, "loss.logit_bias");
    ck_assert_float_eq_tol(mf_param_value(t)[0], (float)log(10.0), 1e-6);
    ck_assert_float_eq(mf_param_value(bias)[0], -10.0f);
    ck_assert_uint_eq(mf_param_flags(t) & MF_NO_DECAY, MF_NO_DECAY);
    ck_assert_uint_eq(mf_param_flags(bias) & MF_NO_DECAY, MF_NO_DECAY);
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    float l0 = run(&f, g, loss);
    expect_close("siglip loss at init", &l0, siglip_init_loss, 1);
    mf_param_value(t)[0] = 1.5f;
    mf_param_value(bias)[0] = -2.0f;
    float l = run(&f, g, loss);
    expect_close("siglip loss", &l, siglip_loss, 1);
    expect_close("d/d emb.a", mf_node_grad(a), siglip_grad_a, 12);
    expect_close("d/d emb.b", mf_node_grad(b), siglip_grad_b, 12);
    expect_close("d/d t", mf_param_grad(t), siglip_grad_t, 1);
    expect_close("d/d bias", mf_param_grad(bias), siglip_grad_bias, 1);
    gradcheck_ok(g, loss); /* both embeddings, t and the bias */
    mf_loss_metrics m;
    double v[MF_LOSS_MAX_METRICS];
    mf_module_loss_metrics(f.m, &m);
    ck_assert_int_eq(m.n, 2);
    ck_assert_str_eq(m.names[0], "logit_scale");
    ck_assert_str_eq(m.names[1], "logit_bias");
    mf_module_loss_batch_metrics(f.m, NULL, v);
    ck_assert_double_eq_tol(v[0], exp(1.5), 1e-5);
    ck_assert_double_eq_tol(v[1], -2.0, 1e-6);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(siglip_fixed_scale_and_bias)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: siglip\n  init_scale: 1.5\n  init_bias: -2\n"
                 "  learn_scale: false\n  learn_bias: false\n", &args);
    ck_assert_int_eq(mf_params_size(f.ps), 0);
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    float l = run(&f, g, loss);
    expect_close("siglip loss, fixed", &l, siglip_loss, 1);
    expect_close("d/d emb.b", mf_node_grad(b), siglip_grad_b, 12);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

/* normalize: false — raw dot products. References in double: the formulas of docs/losses.md
 * without the L2 normalisation (torch: the same functions without F.normalize). */
static double raw_dot(const float *a, const float *b, int i, int j)
{
    double d = 0;
    for (int k = 0; k < 4; k++)
        d += (double)a[i * 4 + k] * b[j * 4 + k];
    return d;
}

static double raw_clip_loss(double s)
{
    double l[3][3], loss = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            l[i][j] = exp(s) * raw_dot(emb_a, emb_b, i, j);
    for (int i = 0; i < 3; i++) { // rows (a → b) and columns (b → a), pair i the class
        double zr = 0, zc = 0;
        for (int j = 0; j < 3; j++)
            zr += exp(l[i][j]), zc += exp(l[j][i]);
        loss += (log(zr) - l[i][i]) + (log(zc) - l[i][i]);
    }
    return loss / 3 / 2;
}

static double raw_siglip_loss(double t, double bias)
{
    double loss = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            const double x = exp(t) * raw_dot(emb_a, emb_b, i, j) + bias, z = i == j ? 1 : -1;
            loss += log1p(exp(-z * x)); // softplus(-z·x)
        }
    return loss / 3;
}

START_TEST(clip_raw_dot_products)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: clip\n  normalize: false\n", &args);
    mf_param *s = param(&f, "loss.logit_scale");
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    mf_param_value(s)[0] = 1.0f;
    float l = run(&f, g, loss);
    const double want = raw_clip_loss(1.0);
    expect_close("clip loss, raw dot products, s = 1", &l, &want, 1);
    ck_assert(fabs(l - clip_loss[0]) > 0.1); /* not the cosine loss */
    gradcheck_ok(g, loss); /* both embeddings and s */
    /* rows of unit length: the raw loss is the cosine one, PyTorch's number */
    float unit_a[12], unit_b[12];
    for (int i = 0; i < 3; i++) {
        const double na = sqrt(raw_dot(emb_a, emb_a, i, i)), nb = sqrt(raw_dot(emb_b, emb_b, i, i));
        for (int k = 0; k < 4; k++)
            unit_a[i * 4 + k] = (float)(emb_a[i * 4 + k] / na),
            unit_b[i * 4 + k] = (float)(emb_b[i * 4 + k] / nb);
    }
    set(a, unit_a);
    set(b, unit_b);
    l = run(&f, g, loss);
    expect_close("clip loss, raw, unit rows", &l, clip_loss, 1);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(siglip_raw_dot_products)
{
    const mf_shape emb[2] = {mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 2);
    fixture f;
    build_ok(&f, "loss:\n  type: siglip\n  normalize: false\n", &args);
    mf_param *t = param(&f, "loss.logit_scale"), *bias = param(&f, "loss.logit_bias");
    mf_graph *g = mf_graph_new(1);
    mf_node *a, *b, *loss = contrastive_graph(&f, g, &a, &b);
    float l0 = run(&f, g, loss);
    const double want0 = raw_siglip_loss(log(10.0), -10.0);
    expect_close("siglip loss at init, raw dot products", &l0, &want0, 1);
    mf_param_value(t)[0] = 0.5f;
    mf_param_value(bias)[0] = -1.0f;
    float l = run(&f, g, loss);
    const double want = raw_siglip_loss(0.5, -1.0);
    expect_close("siglip loss, raw dot products, t = 0.5, bias = -1", &l, &want, 1);
    gradcheck_ok(g, loss); /* both embeddings, t and the bias */
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

/* ---------------------------------------------------------------- on the head's logits */
/* Builds `yaml` for logits (K) and the given target, runs logits x (B,K) → loss, compares
 * value and d/dx with PyTorch's, gradient-checks. */
static void head_loss_case(const char *yaml, int32_t kind, int64_t B, int64_t K,
                           const float *x, const float *y, mf_shape y_shape,
                           const double *want_loss, const double *want_grad)
{
    const mf_shape emb[1] = {mf_shape1(5)}, logits = mf_shape1(K);
    mf_loss_build_args args = {sizeof args, 1, names3, emb, NULL, NULL, &logits, kind, K};
    fixture f;
    build_ok(&f, yaml, &args);
    mf_graph *g = mf_graph_new(1);
    mf_node *e = mf_variable(g, "emb.a", mf_shape2(B, 5));
    mf_node *xn = mf_variable(g, "logits", mf_shape2(B, K));
    mf_node *yn = mf_input(g, "target", y_shape);
    mf_loss_inputs li = {sizeof li, xn, yn, 1, names3, &e, NULL, kind};
    mf_node *loss = mf_module_loss(f.m, g, &li);
    ck_assert_msg(loss != NULL, "%s", mf_graph_error(g));
    compile_ok(g);
    set(xn, x);
    set(yn, y);
    float l = run(&f, g, loss);
    expect_close(yaml, &l, want_loss, 1);
    expect_close(yaml, mf_node_grad(xn), want_grad, B * K);
    gradcheck_ok(g, loss);
    mf_graph_free(g);
    fixture_free(&f);
}

START_TEST(cross_entropy_matches_torch)
{
    const mf_shape y = mf_shape1(4);
    head_loss_case("loss:\n  type: cross_entropy\n", MF_TARGET_CLASSES, 4, 3, ce_logits,
                   ce_classes, y, ce_plain_loss, ce_plain_grad);
    head_loss_case("loss:\n  type: cross_entropy\n  label_smoothing: 0.1\n", MF_TARGET_CLASSES,
                   4, 3, ce_logits, ce_classes, y, ce_smooth_loss, ce_smooth_grad);
    head_loss_case("loss:\n  type: cross_entropy\n  class_weights: [0.5, 2, 1]\n",
                   MF_TARGET_CLASSES, 4, 3, ce_logits, ce_classes, y, ce_weighted_loss,
                   ce_weighted_grad);
    head_loss_case("loss:\n  type: cross_entropy\n  label_smoothing: 0.1\n"
                   "  class_weights: [0.5, 2, 1]\n", MF_TARGET_CLASSES, 4, 3, ce_logits,
                   ce_classes, y, ce_both_loss, ce_both_grad);
}
END_TEST

START_TEST(cross_entropy_default_is_unchanged)
{
    /* the default numbers are mf_cross_entropy's, bit for bit; a 1.0-style build (told
     * nothing of the model) still works */
    fixture f;
    build_ok(&f, "loss:\n  type: cross_entropy\n", NULL);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "logits", mf_shape2(4, 3));
    mf_node *y = mf_input(g, "target", mf_shape1(4));
    mf_loss_inputs li = {sizeof li, x, y, 0, names3, NULL, NULL, MF_TARGET_CLASSES};
    mf_node *loss = mf_module_loss(f.m, g, &li);
    mf_node *direct = mf_cross_entropy(g, x, y);
    compile_ok(g);
    set(x, ce_logits);
    set(y, ce_classes);
    mf_graph_forward(g);
    ck_assert(mf_node_value(loss)[0] == mf_node_value(direct)[0]);
    expect_close("cross_entropy", mf_node_value(loss), ce_plain_loss, 1);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

START_TEST(mse_matches_torch)
{
    head_loss_case("loss:\n  type: mse\n", MF_TARGET_VALUES, 3, 2, mse_x, mse_y,
                   mf_shape2(3, 2), mse_loss, mse_grad);
}
END_TEST

START_TEST(bce_matches_torch)
{
    head_loss_case("loss:\n  type: bce\n", MF_TARGET_MULTILABEL, 3, 3, bce_x, bce_y,
                   mf_shape2(3, 3), bce_plain_loss, bce_plain_grad);
    head_loss_case("loss:\n  type: bce\n  pos_weight: [1, 3, 0.5]\n", MF_TARGET_MULTILABEL, 3, 3,
                   bce_x, bce_y, mf_shape2(3, 3), bce_pos_loss, bce_pos_grad);
}
END_TEST

START_TEST(bce_stable_for_large_logits)
{
    /* log σ(±100) in the softplus form: finite, and the exact limits */
    const mf_shape emb[1] = {mf_shape1(5)}, logits = mf_shape1(2);
    mf_loss_build_args args = {sizeof args, 1, names3, emb, NULL, NULL, &logits,
                               MF_TARGET_MULTILABEL, 2};
    fixture f;
    build_ok(&f, "loss:\n  type: bce\n", &args);
    mf_graph *g = mf_graph_new(1);
    mf_node *x = mf_variable(g, "logits", mf_shape2(1, 2)), *y = mf_input(g, "y", mf_shape2(1, 2));
    mf_loss_inputs li = {sizeof li, x, y, 0, names3, NULL, NULL, MF_TARGET_MULTILABEL};
    mf_node *loss = mf_module_loss(f.m, g, &li);
    compile_ok(g);
    set(x, (const float[]){100, -100});
    set(y, (const float[]){0, 1}); /* both wrong by 100 */
    float l = run(&f, g, loss);
    ck_assert_double_eq_tol(l, 100.0, 1e-4);
    ck_assert_double_eq_tol(mf_node_grad(x)[0], 0.5, 1e-6);
    ck_assert_double_eq_tol(mf_node_grad(x)[1], -0.5, 1e-6);
    mf_graph_free(g);
    fixture_free(&f);
}
END_TEST

/* ---------------------------------------------------------------- refusals */
START_TEST(clip_refuses_three_modalities)
{
    const mf_shape emb[3] = {mf_shape1(4), mf_shape1(4), mf_shape1(4)};
    mf_loss_build_args args = pair_args(emb, NULL, 3);
    build_refused("loss:\n  type: clip\n", &args,
                  "exp.yaml:2:3: loss: clip contrasts two modalities, but the data has 3 "
                  "(a, b, c); list the two in 'modalities'");
    build_refused("loss:\n  type: siglip\n", &args,
                  "exp.yaml:2:3: loss: siglip contrasts two modalities, but the data has 3 "
                  "(a, b, c); list the two in 'modalities'");
    build_refused("loss:\n  type: clip\n  modalities: [a, b, c]\n", &args,
                  "exp.yaml:3:15: loss.modalities: clip contrasts exactly two modalities, but 3 "
                  "are listed");
    build_refused("loss:\n  type: clip\n  modalities: [a, bb]\n", &args,
                  "exp.yaml:3:19: loss.modalities[1]: no modality 'bb' in the data (it has a, b, "
                  "c) (did you mean 'b'?)");
    build_refused("loss:\n  type: clip\n  modalities: [a, a]\n", &args,
                  "exp.yaml:3:15: loss.modalities: lists 'a' twice; name two different "
                  "modalities");
}
END_TEST

START_TEST(clip_refuses_unequal_or_sequence_embeddings)
{
    const mf_shape widths[2] = {mf_shape1(16), mf_shape1(32)};
    mf_loss_build_args args = pair_args(widths, NULL, 2);
    build_refused("loss:\n  type: clip\n", &args,
                  "exp.yaml:2:3: loss: clip compares emb.a (16 features) with emb.b (32), which "
                  "need the same width; give both encoders the same `out:` projection (e.g. "
                  "out: 32)");
    const mf_shape seq[2] = {mf_shape2(8, 16), mf_shape1(16)};
    const uint32_t flags[2] = {MF_IO_SEQUENCE | MF_IO_MASKED, 0};
    args = pair_args(seq, flags, 2);
    build_refused("loss:\n  type: siglip\n", &args,
                  "exp.yaml:2:3: loss: siglip needs one vector per sample, but emb.a is a "
                  "sequence (8,16); give its encoder a pooled vector output");
    const mf_shape four[2] = {mf_shape1(4), mf_shape1(4)};
    args = pair_args(four, NULL, 2);
    build_refused("loss:\n  type: clip\n  init_scale: 5\n", &args,
                  "exp.yaml:3:15: loss.init_scale: init_scale 5 is outside [0, ln 100 = 4.6052], "
                  "the range the learned scale is kept in");
}
END_TEST

START_TEST(mse_refuses_class_targets)
{
    const mf_shape emb[1] = {mf_shape1(5)}, logits = mf_shape1(3);
    mf_loss_build_args args = {sizeof args, 1, names3, emb, NULL, NULL, &logits,
                               MF_TARGET_CLASSES, 3};
    build_refused("loss:\n  type: mse\n", &args,
                  "exp.yaml:2:3: loss: mse needs regression targets, but the data gives class "
                  "labels; use loss type cross_entropy");
    args.target_kind = MF_TARGET_VALUES;
    args.target_dim = 2;
    build_refused("loss:\n  type: mse\n", &args,
                  "exp.yaml:2:3: loss: mse needs one output per target value (2), but the head "
                  "outputs (3)");
}
END_TEST

START_TEST(cross_entropy_refuses_no_head)
{
    const mf_shape emb[2] = {mf_shape1(5), mf_shape1(5)}, fused = mf_shape1(10);
    mf_loss_build_args args = {sizeof args, 2, names3, emb, NULL, &fused, NULL,
                               MF_TARGET_CLASSES, 3};
    build_refused("loss:\n  type: cross_entropy\n", &args,
                  "exp.yaml:2:3: loss: cross_entropy needs class logits, but the model has no "
                  "head; add one (model.head: {type: mlp})");
    const mf_shape logits = mf_shape1(3);
    args.logits = &logits;
    build_refused("loss:\n  type: cross_entropy\n  class_weights: [1, 2]\n", &args,
                  "exp.yaml:3:18: loss.class_weights: class_weights has 2 values, but the data "
                  "has 3 classes");
    args.target_kind = MF_TARGET_VALUES;
    build_refused("loss:\n  type: cross_entropy\n", &args,
                  "exp.yaml:2:3: loss: cross_entropy needs class labels, but the data gives "
                  "regression targets; use loss type mse");
}
END_TEST

START_TEST(bce_refuses_what_it_cannot_use)
{
    const mf_shape emb[1] = {mf_shape1(5)}, logits = mf_shape1(3);
    mf_loss_build_args args = {sizeof args, 1, names3, emb, NULL, NULL, &logits,
                               MF_TARGET_CLASSES, 3};
    build_refused("loss:\n  type: bce\n", &args,
                  "exp.yaml:2:3: loss: bce takes 0/1 multilabel targets, but the data gives "
                  "class labels; use loss type cross_entropy");
    args.target_kind = MF_TARGET_MULTILABEL;
    build_refused("loss:\n  type: bce\n  pos_weight: [1, 2]\n", &args,
                  "exp.yaml:3:15: loss.pos_weight: pos_weight has 2 values, but there are 3 "
                  "labels");
}
END_TEST

static Suite *losses_suite(void)
{
    Suite *s = suite_create("losses");
    TCase *t = tcase_create("contrastive");
    tcase_add_test(t, clip_matches_torch);
    tcase_add_test(t, clip_scale_stays_below_ln_100);
    tcase_add_test(t, clip_fixed_scale);
    tcase_add_test(t, clip_picks_listed_modalities);
    tcase_add_test(t, siglip_matches_torch);
    tcase_add_test(t, siglip_fixed_scale_and_bias);
    tcase_add_test(t, clip_raw_dot_products);
    tcase_add_test(t, siglip_raw_dot_products);
    suite_add_tcase(s, t);
    t = tcase_create("head");
    tcase_add_test(t, cross_entropy_matches_torch);
    tcase_add_test(t, cross_entropy_default_is_unchanged);
    tcase_add_test(t, mse_matches_torch);
    tcase_add_test(t, bce_matches_torch);
    tcase_add_test(t, bce_stable_for_large_logits);
    suite_add_tcase(s, t);
    t = tcase_create("refusals");
    tcase_add_test(t, clip_refuses_three_modalities);
    tcase_add_test(t, clip_refuses_unequal_or_sequence_embeddings);
    tcase_add_test(t, mse_refuses_class_targets);
    tcase_add_test(t, cross_entropy_refuses_no_head);
    tcase_add_test(t, bce_refuses_what_it_cannot_use);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return mf_test_run(losses_suite()); }
