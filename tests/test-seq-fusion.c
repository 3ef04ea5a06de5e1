/* Sequence fusion: crossattn (MulT) and bottleneck (MBT), loaded from the built-in plugin
 * folder, against plain-loop references computed from the parameters' values (layer norm,
 * attention, GELU, MLP written out below), with padding masks, gradient checks, parameter
 * names by path and exact error messages. */
#include "mf_check.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

#define B 2     /* batch */
#define MAXM 3  /* modalities */
#define MAXT 8  /* tokens of one sequence, bottlenecks included */
#define MAXW 32 /* widths: inputs, dim, MLP hidden */

static const char *const names[MAXM] = {"a", "b", "c"};

typedef struct fusion {
    mf_registry *reg;
    mf_params *ps;
    mf_module *mod;
    mf_config *root;
    mf_shape out;
    int n;
    mf_shape in[MAXM];
} fusion;

/* Load `plugin`, check `params` (YAML flow-map entries) as the host does, build it on the
 * per-sample shapes. Returns mf_module_build's status (or -1 when the check fails). */
static int fusion_build(fusion *f, const char *plugin, const char *params, int n,
                        const mf_shape *in, mf_error *err)
{
    char path[4096], yaml[512];
    memset(f, 0, sizeof *f);
    mf_error_clear(err);
    f->reg = mf_registry_new();
    snprintf(path, sizeof path, "%s/mmfuse-%s.so", mf_default_plugin_dir(), plugin);
    ck_assert_msg(mf_registry_add_file(f->reg, path, err) == 0, "%s", err->msg);
    const mf_plugin *p = mf_registry_find(f->reg, MF_KIND_FUSION, plugin, NULL);
    ck_assert_ptr_nonnull(p);
    snprintf(yaml, sizeof yaml, "model: {fusion: {type: %s%s%s}}", plugin, *params ? ", " : "",
             params);
    f->root = mf_config_parse(yaml, strlen(yaml), "t.yaml", err);
    ck_assert_msg(f->root != NULL, "%s", err->msg);
    mf_config *cfg = (mf_config *)mf_config_get(f->root, "model.fusion");
    static const char *const extra[] = {"type", NULL};
    if (mf_config_check(cfg, p->params, extra, err))
        return -1;
    f->n = n;
    memcpy(f->in, in, (size_t)n * sizeof *in);
    f->ps = mf_params_new();
    f->mod = mf_module_new(p, "model.fusion", f->ps, err);
    ck_assert_ptr_nonnull(f->mod);
    uint32_t flags[MAXM], out_flags = 0;
    for (int m = 0; m < n; m++)
        flags[m] = in[m].ndim == 2 ? MF_IO_SEQUENCE | MF_IO_MASKED : 0;
    mf_build_args args = {.struct_size = sizeof args, .n_in = n, .in = in, .in_names = names,
                          .in_flags = flags, .out_flags = &out_flags, .where = cfg};
    return mf_module_build(f->mod, cfg, &args, &f->out, err);
}

/* Finalise the store and give every parameter seeded values in ±[0.1,0.7] (zero biases and
 * unit gains would hide a misplaced bias or gain). */
static void randomize(fusion *f, uint64_t seed)
{
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_params_finalize(f->ps, seed, 0, &err) == 0, "%s", err.msg);
    mf_rng r;
    mf_rng_seed(&r, seed);
    float *v = mf_params_values(f->ps);
    for (int64_t i = 0; i < mf_params_numel(f->ps); i++) {
        float x = (float)(0.1 + 0.6 * mf_rng_uniform(&r));
        v[i] = (mf_rng_u64(&r) & 1) ? x : -x;
    }
}

static void fusion_free(fusion *f)
{
    mf_module_free(f->mod);
    mf_params_free(f->ps);
    mf_config_free(f->root);
    mf_registry_free(f->reg);
}

static void ok_build(fusion *f, const char *plugin, const char *params, int n, const mf_shape *in)
{
    mf_error err;
    ck_assert_msg(fusion_build(f, plugin, params, n, in, &err) == 0, "%s", err.msg);
    randomize(f, 11);
}

/* ---------------------------------------------------------------- graphs */
typedef struct run {
    mf_graph *g;
    mf_node *x[MAXM], *mask[MAXM], *out;
} run;

/* Position t of sample b of modality m is padding: a gap inside sample 1, the tail of sample 0
 * (never a whole sequence). */
static int padded(int m, int b, int t, int T)
{
    return b == 0 ? t == T - 1 && T > 1 : t == m % T && T > 2;
}

static void run_new(run *r, fusion *f, int training, const int *masked)
{
    memset(r, 0, sizeof *r);
    r->g = mf_graph_new(training);
    for (int m = 0; m < f->n; m++) {
        const int64_t T = f->in[m].dim[0], D = f->in[m].dim[1];
        r->x[m] = training ? mf_variable(r->g, names[m], mf_shape3(B, T, D))
                           : mf_input(r->g, names[m], mf_shape3(B, T, D));
        if (masked[m]) {
            r->mask[m] = mf_input(r->g, "mask", mf_shape2(B, T));
            mf_node_set_mask(r->x[m], r->mask[m]);
        }
    }
    r->out = mf_module_forward(f->mod, r->g, f->n, r->x);
    ck_assert_msg(r->out != NULL, "forward failed: %s", mf_graph_error(r->g));
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_graph_compile(r->g, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(mf_node_shape(r->out)->ndim, 2);
    ck_assert_int_eq(mf_node_shape(r->out)->dim[1], f->out.dim[0]);
    for (int m = 0; m < f->n; m++) {
        const int64_t T = f->in[m].dim[0];
        mf_rng rng;
        mf_rng_seed(&rng, 100 + (uint64_t)m);
        float *v = mf_node_value(r->x[m]);
        for (int64_t i = 0; i < mf_node_numel(r->x[m]); i++)
            v[i] = (float)(2 * mf_rng_uniform(&rng) - 1);
        for (int b = 0; r->mask[m] && b < B; b++)
            for (int t = 0; t < T; t++)
                mf_node_value(r->mask[m])[b * T + t] = (float)padded(m, b, t, (int)T);
    }
}

/* ---------------------------------------------------------------- plain-loop reference */
static fusion *ref; /* the fusion whose parameters the reference reads */

static const float *P(const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    mf_param *p = mf_params_find(ref->ps, name);
    ck_assert_msg(p != NULL, "no parameter %s", name);
    return mf_param_value(p);
}

/* y (rows,out) = x (rows,in) · W (in,out) + b */
static void linear(const float *x, int rows, int in, const float *w, const float *b, int out,
                   float *y)
{
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int i = 0; i < in; i++)
                acc += (double)x[r * in + i] * w[i * out + o];
            y[r * out + o] = (float)acc;
        }
}

static void layer_norm(const float *x, int rows, int d, const char *prefix, float *y)
{
    const float *gain = P("%s.weight", prefix), *bias = P("%s.bias", prefix);
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += x[r * d + i] / (double)d;
        for (int i = 0; i < d; i++)
            var += (x[r * d + i] - mean) * (x[r * d + i] - mean) / d;
        for (int i = 0; i < d; i++)
            y[r * d + i] = (float)((x[r * d + i] - mean) / sqrt(var + 1e-5) * gain[i] + bias[i]);
    }
}

/* softmax(q kᵀ/√d_h, padding → -1e9) v, per head, then the output projection: (T,D) */
static void attention(const char *pre, const float *x, int T, const float *c, int S,
                      const float *mask, int heads, int D, float *out)
{
    float q[MAXT * MAXW], k[MAXT * MAXW], v[MAXT * MAXW], o[MAXT * MAXW];
    linear(x, T, D, P("%s.q.weight", pre), P("%s.q.bias", pre), D, q);
    linear(c, S, D, P("%s.k.weight", pre), P("%s.k.bias", pre), D, k);
    linear(c, S, D, P("%s.v.weight", pre), P("%s.v.bias", pre), D, v);
    const int dh = D / heads;
    for (int h = 0; h < heads; h++)
        for (int t = 0; t < T; t++) {
            double s[MAXT], mx = -INFINITY, z = 0;
            for (int u = 0; u < S; u++) {
                s[u] = 0;
                for (int j = 0; j < dh; j++)
                    s[u] += (double)q[t * D + h * dh + j] * k[u * D + h * dh + j];
                s[u] = mask && mask[u] != 0 ? -1e9 : s[u] / sqrt((double)dh);
                mx = fmax(mx, s[u]);
            }
            for (int u = 0; u < S; u++)
                z += s[u] = exp(s[u] - mx);
            for (int j = 0; j < dh; j++) {
                double acc = 0;
                for (int u = 0; u < S; u++)
                    acc += s[u] / z * v[u * D + h * dh + j];
                o[t * D + h * dh + j] = (float)acc;
            }
        }
    linear(o, T, D, P("%s.out.weight", pre), P("%s.out.bias", pre), D, out);
}

/* One pre-LN layer in place on x (T,D); ctx (S,D) or NULL for self-attention (S = T). */
static void layer(const char *pre, float *x, int T, const float *ctx, int S, const float *mask,
                  int heads, int D, int hidden)
{
    char key[256];
    float h[MAXT * MAXW], c[MAXT * MAXW], a[MAXT * MAXW], u[MAXT * MAXW];
    snprintf(key, sizeof key, "%s.ln1", pre);
    layer_norm(x, T, D, key, h);
    if (ctx) {
        snprintf(key, sizeof key, "%s.ln_ctx", pre);
        layer_norm(ctx, S, D, key, c);
    } else
        memcpy(c, h, sizeof(float) * (size_t)(T * D));
    snprintf(key, sizeof key, "%s.attn", pre);
    attention(key, h, T, c, ctx ? S : T, mask, heads, D, a);
    for (int i = 0; i < T * D; i++)
        x[i] += a[i];
    if (hidden == 0) // mlp_ratio 0: the attention alone
        return;
    snprintf(key, sizeof key, "%s.ln2", pre);
    layer_norm(x, T, D, key, h);
    linear(h, T, D, P("%s.fc1.weight", pre), P("%s.fc1.bias", pre), hidden, u);
    for (int i = 0; i < T * hidden; i++) // GELU, tanh approximation
        u[i] = 0.5f * u[i] *
               (1.0f + tanhf(0.7978845608f * (u[i] + 0.044715f * u[i] * u[i] * u[i])));
    linear(u, T, hidden, P("%s.fc2.weight", pre), P("%s.fc2.bias", pre), D, a);
    for (int i = 0; i < T * D; i++)
        x[i] += a[i];
}

/* x (T,D) → out (D): mean over valid positions (count at least 1), or the last valid one. */
static void pool(const float *x, int T, int D, const float *mask, int last, float *out)
{
    int count = 0, lastt = 0;
    for (int d = 0; d < D; d++)
        out[d] = 0;
    for (int t = 0; t < T; t++) {
        if (mask && mask[t] != 0)
            continue;
        count++;
        lastt = t;
        for (int d = 0; d < D; d++)
            out[d] += x[t * D + d];
    }
    for (int d = 0; d < D; d++)
        out[d] = last ? x[lastt * D + d] : out[d] / (float)(count > 0 ? count : 1);
}

typedef struct hyper {
    int layers, heads, dim, hidden, last, memory, no_final_norm; /* crossattn */
    int fusion_layer, n_b, concat;        /* bottleneck */
} hyper;

/* Modality m of sample b projected to dim: h (T_m,dim). */
static void project(run *r, int m, int b, int dim, float *h)
{
    const int T = (int)ref->in[m].dim[0], D = (int)ref->in[m].dim[1];
    const float *x = mf_node_value(r->x[m]) + (size_t)b * T * D;
    if (D == dim)
        memcpy(h, x, sizeof(float) * (size_t)(T * D));
    else
        linear(x, T, D, P("model.fusion.%s.proj.weight", names[m]), NULL, dim, h);
}

static const float *sample_mask(run *r, int m, int b)
{
    return r->mask[m] ? mf_node_value(r->mask[m]) + b * ref->in[m].dim[0] : NULL;
}

static void ref_crossattn(run *r, const hyper *hp, int b, float *out)
{
    float h[MAXM][MAXT * MAXW], y[MAXT * MAXW], cat[MAXT * MAXW * MAXM];
    const int n = ref->n, dim = hp->dim;
    for (int m = 0; m < n; m++)
        project(r, m, b, dim, h[m]);
    for (int m = 0; m < n; m++) {
        const int T = (int)ref->in[m].dim[0], W = (n - 1) * dim;
        for (int s = 0; s < n; s++) {
            if (s == m)
                continue;
            char pre[128];
            memcpy(y, h[m], sizeof(float) * (size_t)(T * dim));
            for (int k = 0; k < hp->layers; k++) {
                snprintf(pre, sizeof pre, "model.fusion.%s.from_%s.layer%d", names[m], names[s], k);
                layer(pre, y, T, h[s], (int)ref->in[s].dim[0], sample_mask(r, s, b), hp->heads,
                      dim, hp->hidden);
            }
            snprintf(pre, sizeof pre, "model.fusion.%s.from_%s.ln", names[m], names[s]);
            const int jj = s < m ? s : s - 1; // m's j-th source
            float normed[MAXT * MAXW];
            if (hp->no_final_norm)
                memcpy(normed, y, sizeof(float) * (size_t)(T * dim));
            else
                layer_norm(y, T, dim, pre, normed);
            for (int t = 0; t < T; t++)
                memcpy(cat + t * W + jj * dim, normed + t * dim, sizeof(float) * (size_t)dim);
        }
        char pre[128];
        for (int k = 0; k < hp->memory; k++) {
            snprintf(pre, sizeof pre, "model.fusion.%s.memory.layer%d", names[m], k);
            layer(pre, cat, T, NULL, 0, sample_mask(r, m, b), hp->heads, W, 2 * hp->hidden);
        }
        float normed[MAXT * MAXW];
        snprintf(pre, sizeof pre, "model.fusion.%s.memory.ln", names[m]);
        if (hp->memory)
            layer_norm(cat, T, W, pre, normed);
        pool(hp->memory ? normed : cat, T, W, sample_mask(r, m, b), hp->last, out + m * W);
    }
}

static void ref_bottleneck(run *r, const hyper *hp, int b, float *out)
{
    float h[MAXM][MAXT * MAXW], z[MAXT * MAXW], zsum[MAXT * MAXW], seq[MAXT * MAXW];
    const int n = ref->n, dim = hp->dim, nb = hp->n_b;
    for (int m = 0; m < n; m++)
        project(r, m, b, dim, h[m]);
    if (hp->fusion_layer < hp->layers)
        memcpy(z, P("model.fusion.bottleneck"), sizeof(float) * (size_t)(nb * dim));
    for (int k = 0; k < hp->layers; k++) {
        memset(zsum, 0, sizeof zsum);
        for (int m = 0; m < n; m++) {
            const int T = (int)ref->in[m].dim[0];
            const float *mk = sample_mask(r, m, b);
            char pre[128];
            snprintf(pre, sizeof pre, "model.fusion.%s.layer%d", names[m], k);
            if (k < hp->fusion_layer) {
                layer(pre, h[m], T, NULL, 0, mk, hp->heads, dim, hp->hidden);
                continue;
            }
            float mask[MAXT] = {0}; // [m's padding; bottlenecks never padded]
            for (int t = 0; mk && t < T; t++)
                mask[t] = mk[t];
            memcpy(seq, h[m], sizeof(float) * (size_t)(T * dim));
            memcpy(seq + T * dim, z, sizeof(float) * (size_t)(nb * dim));
            layer(pre, seq, T + nb, NULL, 0, mask, hp->heads, dim, hp->hidden);
            memcpy(h[m], seq, sizeof(float) * (size_t)(T * dim));
            for (int i = 0; i < nb * dim; i++)
                zsum[i] += seq[T * dim + i] / (float)n;
        }
        if (k >= hp->fusion_layer)
            memcpy(z, zsum, sizeof z);
    }
    float v[MAXM][MAXW], normed[MAXT * MAXW];
    for (int m = 0; m < n; m++) {
        char pre[64];
        snprintf(pre, sizeof pre, "model.fusion.%s.ln", names[m]);
        layer_norm(h[m], (int)ref->in[m].dim[0], dim, pre, normed);
        pool(normed, (int)ref->in[m].dim[0], dim, sample_mask(r, m, b), 0, v[m]);
    }
    for (int d = 0; d < dim; d++) {
        float mean = 0;
        for (int m = 0; m < n; m++) {
            mean += v[m][d] / (float)n;
            if (hp->concat)
                out[m * dim + d] = v[m][d];
        }
        if (!hp->concat)
            out[d] = mean;
    }
}

/* Forward the graph and compare every output with the reference: largest difference. */
static double compare(run *r, const hyper *hp, int bottleneck)
{
    mf_graph_forward(r->g);
    const int64_t F = mf_node_shape(r->out)->dim[1];
    double worst = 0;
    for (int b = 0; b < B; b++) {
        float want[MAXM * MAXM * MAXW];
        (bottleneck ? ref_bottleneck : ref_crossattn)(r, hp, b, want);
        for (int64_t i = 0; i < F; i++) {
            const float got = mf_node_value(r->out)[b * F + i];
            ck_assert_msg(isfinite(got), "output %lld is not finite", (long long)i);
            worst = fmax(worst, fabs(got - want[i]));
        }
    }
    return worst;
}

/* ---------------------------------------------------------------- tests */
/* a (3,6) is projected to dim 4; b (2,4), c (4,4) are not. a and c carry padding. */
static const int masked3[MAXM] = {1, 0, 1};
static mf_shape shapes3[MAXM];

static void setup_shapes(void)
{
    shapes3[0] = mf_shape2(3, 6);
    shapes3[1] = mf_shape2(2, 4);
    shapes3[2] = mf_shape2(4, 4);
}

START_TEST(crossattn_matches_reference)
{
    static const char *const params[4] = {
        "layers: 2, heads: 2, dim: 4, mlp_ratio: 2, pool: mean",
        "layers: 2, heads: 2, dim: 4, mlp_ratio: 2, pool: last",
        "layers: 1, heads: 2, dim: 4, mlp_ratio: 2, pool: last, memory_layers: 2",
        "layers: 2, heads: 2, dim: 4, mlp_ratio: 0, final_norm: false, pool: mean"};
    fusion f;
    run r;
    ok_build(&f, "crossattn", params[_i], 3, shapes3);
    ck_assert_int_eq(f.out.ndim, 1);
    ck_assert_int_eq(f.out.dim[0], 3 * 2 * 4); // M·(M-1)·dim
    ref = &f;
    run_new(&r, &f, 0, masked3);
    const hyper hp = {.layers = _i == 2 ? 1 : 2, .heads = 2, .dim = 4, .hidden = _i == 3 ? 0 : 8,
                      .last = _i == 1 || _i == 2, .memory = _i == 2 ? 2 : 0,
                      .no_final_norm = _i == 3};
    const double worst = compare(&r, &hp, 0);
    ck_assert_msg(worst < 1e-4, "%s: largest difference %g", params[_i], worst);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

START_TEST(bottleneck_matches_reference)
{
    static const struct { const char *params; int fusion_layer, concat; } c[3] = {
        {"layers: 4, fusion_layer: 1, bottlenecks: 2, heads: 2, dim: 4, mlp_ratio: 2, "
         "combine: concat", 1, 1},
        {"layers: 2, fusion_layer: 0, bottlenecks: 3, heads: 1, dim: 4, mlp_ratio: 2", 0, 0},
        {"layers: 2, fusion_layer: 2, bottlenecks: 2, heads: 2, dim: 4, mlp_ratio: 2", 2, 0}};
    fusion f;
    run r;
    ok_build(&f, "bottleneck", c[_i].params, 3, shapes3);
    ck_assert_int_eq(f.out.dim[0], c[_i].concat ? 3 * 4 : 4);
    ref = &f;
    run_new(&r, &f, 0, masked3);
    const hyper hp = {.layers = c[_i].fusion_layer == 1 ? 4 : 2, .heads = _i == 1 ? 1 : 2,
                      .dim = 4, .hidden = 8, .fusion_layer = c[_i].fusion_layer,
                      .n_b = _i == 1 ? 3 : 2, .concat = c[_i].concat};
    const double worst = compare(&r, &hp, 1);
    ck_assert_msg(worst < 1e-4, "%s: largest difference %g", c[_i].params, worst);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

/* Forward, keep the output; returns the largest change from `before` (when given). */
static double forward_change(run *r, float *keep, const float *before)
{
    mf_graph_forward(r->g);
    double worst = 0;
    for (int64_t i = 0; i < mf_node_numel(r->out); i++) {
        const float v = mf_node_value(r->out)[i];
        if (before)
            worst = fmax(worst, fabs(v - before[i]));
        keep[i] = v;
    }
    return worst;
}

/* Garbage in padded positions changes nothing; a valid position does change the output. */
START_TEST(padding_changes_nothing)
{
    static const char *const plugin[3] = {"crossattn", "crossattn", "bottleneck"};
    static const char *const params[3] = {
        "layers: 1, heads: 2, dim: 4, pool: last", "layers: 2, heads: 2, dim: 4, pool: mean",
        "layers: 2, fusion_layer: 1, bottlenecks: 2, heads: 2, dim: 4"};
    fusion f;
    run r;
    float before[MAXM * MAXM * MAXW * B], after[MAXM * MAXM * MAXW * B];
    ok_build(&f, plugin[_i], params[_i], 3, shapes3);
    run_new(&r, &f, 0, masked3);
    forward_change(&r, before, NULL);
    for (int m = 0; m < 3; m++) {
        const int64_t T = f.in[m].dim[0], D = f.in[m].dim[1];
        for (int b = 0; masked3[m] && b < B; b++)
            for (int t = 0; t < T; t++)
                for (int d = 0; padded(m, b, t, (int)T) && d < D; d++)
                    mf_node_value(r.x[m])[(b * T + t) * D + d] = 40.0f + (float)(t - d);
    }
    const double pad_change = forward_change(&r, after, before);
    ck_assert_msg(pad_change <= 1e-6, "%s: padding changed the output by %g", params[_i],
                  pad_change);
    mf_node_value(r.x[0])[(1 * 3 + 1) * 6] += 1.0f; // a valid position of a, sample 1
    ck_assert_double_gt(forward_change(&r, after, before), 1e-3);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

/* Change modality b and watch a's pooled vector. fusion_layer = layers: no exchange and no
 * bottleneck parameter. fusion_layer = layers-1: a's last layer reads the learned tokens,
 * which b has not touched yet (MBT's update: layer k reads the mean of layer k-1's
 * bottleneck outputs). Two fusion layers: b reaches a. */
START_TEST(bottleneck_exchanges_only_from_fusion_layer)
{
    static const char *const params[3] = {
        "layers: 2, fusion_layer: 2, heads: 2, dim: 4, combine: concat",
        "layers: 2, fusion_layer: 1, heads: 2, dim: 4, combine: concat",
        "layers: 3, fusion_layer: 1, heads: 2, dim: 4, combine: concat"};
    fusion f;
    run r;
    float before[MAXM * MAXW * B], after[MAXM * MAXW * B];
    ok_build(&f, "bottleneck", params[_i], 3, shapes3);
    ck_assert_int_eq(mf_params_find(f.ps, "model.fusion.bottleneck") != NULL, _i > 0);
    run_new(&r, &f, 0, masked3);
    forward_change(&r, before, NULL);
    for (int64_t i = 0; i < mf_node_numel(r.x[1]); i++)
        mf_node_value(r.x[1])[i] *= -2.0f;
    forward_change(&r, after, NULL);
    double a_change = 0, b_change = 0; // out is (B,3·4): a's vector, then b's, then c's
    for (int b = 0; b < B; b++)
        for (int d = 0; d < 4; d++) {
            a_change = fmax(a_change, fabs(after[b * 12 + d] - before[b * 12 + d]));
            b_change = fmax(b_change, fabs(after[b * 12 + 4 + d] - before[b * 12 + 4 + d]));
        }
    ck_assert_double_gt(b_change, 1e-3);
    if (_i < 2)
        ck_assert_msg(a_change == 0, "%s: a changed by %g", params[_i], a_change);
    else
        ck_assert_double_gt(a_change, 1e-4);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

START_TEST(gradients)
{
    static const char *const plugin[3] = {"crossattn", "crossattn", "bottleneck"};
    static const char *const params[3] = {
        "layers: 1, heads: 2, dim: 4, mlp_ratio: 1, pool: mean",
        "layers: 1, heads: 2, dim: 4, mlp_ratio: 1, pool: last, memory_layers: 1",
        "layers: 2, fusion_layer: 1, bottlenecks: 2, heads: 2, dim: 4, mlp_ratio: 1"};
    const mf_shape in[2] = {mf_shape2(3, 6), mf_shape2(4, 4)};
    const int masked[2] = {1, 1};
    fusion f;
    run r;
    ok_build(&f, plugin[_i], params[_i], 2, in);
    run_new(&r, &f, 1, masked);
    mf_gradcheck_opts opts = {.max_elements_per_leaf = 24, .seed = 7};
    mf_gradcheck_result res;
    const int rc = mf_gradcheck(r.g, r.out, &opts, &res);
    ck_assert_msg(rc == 0, "%s: %lld of %lld elements fail, worst %s", params[_i],
                  (long long)res.failed, (long long)res.checked, res.worst);
    ck_assert_int_gt(res.checked, 300);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

/* Every parameter starts with the fusion's path, then names its modality and layer. */
START_TEST(parameter_names)
{
    const mf_shape in[2] = {mf_shape2(3, 6), mf_shape2(2, 4)};
    fusion f;
    ok_build(&f, "crossattn", "layers: 2, heads: 2, dim: 4", 2, in);
    // a's projection, then per ordered pair 2 layers of 18 tensors and a final norm
    ck_assert_int_eq(mf_params_size(f.ps), 1 + 2 * (2 * 18 + 2));
    for (int i = 0; i < mf_params_size(f.ps); i++) {
        const char *name = mf_param_name(mf_params_at(f.ps, i));
        ck_assert_msg(strncmp(name, "model.fusion.a.from_b.", 22) == 0 ||
                          strncmp(name, "model.fusion.b.from_a.", 22) == 0 ||
                          strcmp(name, "model.fusion.a.proj.weight") == 0,
                      "parameter %s", name);
    }
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "model.fusion.a.from_b.layer1.attn.q.weight"));
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "model.fusion.b.from_a.layer0.ln_ctx.bias"));
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "model.fusion.b.from_a.ln.weight"));
    ck_assert_ptr_null(mf_params_find(f.ps, "model.fusion.b.proj.weight")); // already dim 4
    fusion_free(&f);

    ok_build(&f, "bottleneck", "layers: 2, fusion_layer: 1, bottlenecks: 3, heads: 2, dim: 4",
             2, in);
    ck_assert_int_eq(mf_params_size(f.ps), 1 + 1 + 2 * (2 * 16 + 2));
    for (int i = 0; i < mf_params_size(f.ps); i++) {
        const char *name = mf_param_name(mf_params_at(f.ps, i));
        ck_assert_msg(strncmp(name, "model.fusion.a.layer", 20) == 0 ||
                          strncmp(name, "model.fusion.b.layer", 20) == 0 ||
                          strncmp(name, "model.fusion.a.ln.", 18) == 0 ||
                          strncmp(name, "model.fusion.b.ln.", 18) == 0 ||
                          strcmp(name, "model.fusion.a.proj.weight") == 0 ||
                          strcmp(name, "model.fusion.bottleneck") == 0,
                      "parameter %s", name);
    }
    ck_assert_ptr_nonnull(mf_params_find(f.ps, "model.fusion.b.layer1.fc2.bias"));
    mf_param *z = mf_params_find(f.ps, "model.fusion.bottleneck");
    ck_assert_ptr_nonnull(z);
    const mf_shape *zs = mf_param_shape(z);
    ck_assert_int_eq(zs->ndim, 3);
    ck_assert_int_eq(zs->dim[1] * 10 + zs->dim[2], 3 * 10 + 4);
    ck_assert_uint_eq(mf_param_flags(z) & MF_NO_DECAY, MF_NO_DECAY);
    fusion_free(&f);
}
END_TEST

/* The bottleneck tokens start trunc-normal(0.02): within ±0.04, spread about 0.02. */
/* mlp_ratio: 0 and final_norm: false: each layer is x + attention alone, nothing after. */
START_TEST(attention_only_layers)
{
    const mf_shape in[2] = {mf_shape2(3, 6), mf_shape2(2, 4)};
    const int masked[2] = {1, 1};
    fusion f;
    run r;
    ok_build(&f, "crossattn", "layers: 1, heads: 2, dim: 4, mlp_ratio: 0, final_norm: false", 2,
             in);
    // a's projection, then per ordered pair ln1, ln_ctx and q, k, v, out: weight and bias each
    ck_assert_int_eq(mf_params_size(f.ps), 1 + 2 * 12);
    ck_assert_ptr_null(mf_params_find(f.ps, "model.fusion.a.from_b.layer0.fc1.weight"));
    ck_assert_ptr_null(mf_params_find(f.ps, "model.fusion.a.from_b.ln.weight"));
    run_new(&r, &f, 1, masked);
    mf_gradcheck_opts opts = {.max_elements_per_leaf = 24, .seed = 7};
    mf_gradcheck_result res;
    ck_assert_msg(mf_gradcheck(r.g, r.out, &opts, &res) == 0, "%lld of %lld elements fail, "
                  "worst %s", (long long)res.failed, (long long)res.checked, res.worst);
    ck_assert_int_gt(res.checked, 100);
    mf_graph_free(r.g);
    fusion_free(&f);
}
END_TEST

START_TEST(bottleneck_init)
{
    const mf_shape in[2] = {mf_shape2(3, 8), mf_shape2(2, 8)};
    fusion f;
    mf_error err;
    ck_assert_int_eq(fusion_build(&f, "bottleneck", "layers: 1, bottlenecks: 64, "
                                  "fusion_layer: 0, heads: 2", 2, in, &err), 0);
    ck_assert_int_eq(mf_params_finalize(f.ps, 3, 0, &err), 0);
    mf_param *z = mf_params_find(f.ps, "model.fusion.bottleneck");
    double ss = 0;
    for (int i = 0; i < 64 * 8; i++) {
        const float v = mf_param_value(z)[i];
        ck_assert_float_le(fabsf(v), 0.04f);
        ss += (double)v * v;
    }
    const double sd = sqrt(ss / (64 * 8));
    ck_assert_msg(sd > 0.012 && sd < 0.022, "spread %g", sd);
    fusion_free(&f);
}
END_TEST

static void refused(const char *plugin, const char *params, int n, const mf_shape *in,
                    const char *expected)
{
    fusion f;
    mf_error err;
    ck_assert_int_eq(fusion_build(&f, plugin, params, n, in, &err), -1);
    ck_assert_str_eq(err.msg, expected);
    fusion_free(&f);
}

START_TEST(refusals)
{
    const mf_shape vec[2] = {mf_shape2(3, 4), mf_shape1(16)};
    const mf_shape image[2] = {mf_shape3(3, 8, 8), mf_shape2(3, 4)};
    const mf_shape widths[2] = {mf_shape2(3, 4), mf_shape2(2, 6)};
    const mf_shape seqs[2] = {mf_shape2(3, 4), mf_shape2(5, 4)};
    refused("crossattn", "", 2, vec,
            "t.yaml:1:17: model.fusion: crossattn is a sequence fusion, but modality 'b' has "
            "shape (16), a vector; give its encoder `pool: none` so it outputs a sequence (T,D)");
    refused("bottleneck", "", 2, vec,
            "t.yaml:1:17: model.fusion: bottleneck is a sequence fusion, but modality 'b' has "
            "shape (16), a vector; give its encoder `pool: none` so it outputs a sequence (T,D)");
    refused("crossattn", "", 2, image,
            "t.yaml:1:17: model.fusion: crossattn is a sequence fusion, but modality 'a' has "
            "shape (3,8,8); it needs a sequence (T,D)");
    refused("crossattn", "heads: 3", 2, widths,
            "t.yaml:1:17: model.fusion: modalities 'a' (width 4) and 'b' (width 6) differ in "
            "width; set dim to project them to one");
    refused("crossattn", "heads: 3, dim: 8", 2, widths,
            "t.yaml:1:42: model.fusion.heads: heads (3) must divide the attention width 8");
    refused("bottleneck", "heads: 3", 2, seqs,
            "t.yaml:1:43: model.fusion.heads: heads (3) must divide the attention width 4");
    refused("bottleneck", "heads: 1, mlp_ratio: 0.25", 2, (const mf_shape[]){mf_shape2(3, 1),
            mf_shape2(2, 1)}, "t.yaml:1:57: model.fusion.mlp_ratio: mlp_ratio 0.25 leaves no "
            "hidden unit at width 1");
    refused("crossattn", "", 1, widths,
            "t.yaml:1:17: model.fusion: crossattn fuses 2 to 8 modalities, got 1");
    refused("bottleneck", "layers: 4, fusion_layer: 5", 2, seqs,
            "t.yaml:1:61: model.fusion.fusion_layer: fusion_layer (5) must be at most layers "
            "(4); fusion_layer = layers is late fusion");
}
END_TEST

/* End to end: image patches and caption tokens, each a sequence from a transformer encoder
 * (`pool: none`, the caption's padding mask passed on), fused, classified; well above the
 * 0.25 of chance after 3 short epochs (crossattn 0.71 and bottleneck 0.71 when written). */
START_TEST(trains_on_shapes)
{
    static const char *const fusion_cfg[2] = {
        "model.fusion={type: crossattn, layers: 1, heads: 2}",
        "model.fusion={type: bottleneck, layers: 2, fusion_layer: 0, heads: 2, bottlenecks: 2}"};
    const char *o[] = {"threads=1", "data.samples=1000", "data.size=16", "train.epochs=3",
                       "model.encoders={image: {type: transformer, width: 16, layers: 0, "
                       "patch: 4, pool: none}, caption: {type: transformer, width: 16, "
                       "layers: 0, pool: none}}",
                       fusion_cfg[_i]};
    char path[4096];
    snprintf(path, sizeof path, "%s/experiments/shapes-classify.yaml",
             getenv("MMFUSE_SOURCE_ROOT"));
    FILE *log = fopen("/dev/null", "w");
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = 6, .overrides = o,
                           .log = log, .quiet = 1, .no_save = 1};
    mf_run_result res;
    mf_error err;
    mf_error_clear(&err);
    const int status = mf_experiment_run(path, &opts, &res, &err);
    fclose(log);
    ck_assert_msg(status == MF_EXIT_OK, "exit %d: %s", status, err.msg);
    ck_assert_msg(res.test_accuracy > 0.5, "%s: test accuracy %.3f", fusion_cfg[_i],
                  res.test_accuracy);
}
END_TEST

int main(void)
{
    setup_shapes();
    Suite *s = suite_create("seq-fusion");
    TCase *tc = tcase_create("reference");
    tcase_add_loop_test(tc, crossattn_matches_reference, 0, 4);
    tcase_add_loop_test(tc, bottleneck_matches_reference, 0, 3);
    tcase_add_loop_test(tc, padding_changes_nothing, 0, 3);
    tcase_add_loop_test(tc, bottleneck_exchanges_only_from_fusion_layer, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradients");
    tcase_add_loop_test(tc, gradients, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("build");
    tcase_add_test(tc, parameter_names);
    tcase_add_test(tc, attention_only_layers);
    tcase_add_test(tc, bottleneck_init);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("train");
    tcase_add_loop_test(tc, trains_on_shapes, 0, 2);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
