/* mmfuse check-plugin: what a lab runs before sharing a plugin. One line per check, PASS or
 * FAIL with the reason; the count of failures is returned.
 *
 * Every kind: descriptor fields; declared parameters (names, types, defaults that parse and
 * sit in their ranges, enum choices, docs). Modules (encoders, fusion operators) and losses,
 * built with their defaults on sample shapes: output shape as declared, finite outputs,
 * gradients of inputs and parameters against finite differences, identical results for the
 * same seed, no memory kept across build/free cycles. Dataset readers, opened with their
 * defaults: a consistent description, and reads that match it.
 */
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

typedef struct checker {
    FILE *out;
    const mf_plugin *plugin;
    int passed, failed;
    int n_overrides; /* "key=value" settings on top of the declared defaults */
    const char *const *overrides;
} checker;

static void report(checker *c, int ok, const char *check, const char *fmt, ...) MF_PRINTF(4, 5);
static void report(checker *c, int ok, const char *check, const char *fmt, ...)
{
    va_list ap;
    fprintf(c->out, "%s %-12s ", ok ? "PASS" : "FAIL", check);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    ok ? c->passed++ : c->failed++;
}

/* ---------------------------------------------------------------- descriptor, parameters */
static void check_descriptor(checker *c, const char *file)
{
    const mf_plugin *p = c->plugin;
    const char *missing = !p->version || !*p->version   ? "version"
                          : !p->license || !*p->license ? "license"
                          : !p->summary || !*p->summary ? "summary"
                          : !p->params                  ? "params (use an MF_PARAM_END table)"
                                                        : NULL;
    if (missing)
        report(c, 0, "descriptor", "'%s' (%s) has no %s", p->name, file, missing);
    else
        report(c, 1, "descriptor", "'%s' %s, %s, ABI %u.%u, %s: %s", p->name, p->version,
               mf_kind_name(p->kind), p->abi_major, p->abi_minor, p->license, p->summary);
}

/* The plugin's section as the host would see it: the overrides, every other declared
 * parameter at its default. */
static mf_config *default_section(checker *c, mf_error *err)
{
    char name[128];
    snprintf(name, sizeof name, "<defaults of %s>", c->plugin->name);
    mf_config *root = mf_config_parse("{}", 2, name, err);
    for (int i = 0; root && i < c->n_overrides; i++)
        if (mf_config_override(root, c->overrides[i], err)) {
            mf_config_free(root);
            return NULL;
        }
    if (root && mf_config_check(root, c->plugin->params, NULL, err)) {
        mf_config_free(root);
        return NULL;
    }
    return root;
}

static int valid_param_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void check_params(checker *c)
{
    const mf_param_spec *ps = c->plugin->params;
    int n = 0, bad = 0;
    char why[512] = "";
    for (; ps && ps[n].name; n++) {
        const mf_param_spec *s = &ps[n];
        const char *problem = NULL;
        if (!valid_param_name(s->name))
            problem = "a name that is not lowercase letters, digits and '_'";
        else if ((unsigned)s->type >= MF_TYPE_COUNT)
            problem = "an unknown type";
        else if (s->type == MF_TYPE_ENUM && (!s->choices || !*s->choices))
            problem = "an enum without choices";
        else if (!(s->flags & MF_PARAM_REQUIRED) && !s->default_yaml)
            problem = "neither a default nor MF_PARAM_REQUIRED";
        else if ((s->flags & MF_PARAM_MIN) && (s->flags & MF_PARAM_MAX) && s->min > s->max)
            problem = "a minimum above its maximum";
        else if (!s->doc || !*s->doc)
            problem = "no doc line";
        for (int j = 0; !problem && j < n; j++)
            if (strcmp(ps[j].name, s->name) == 0)
                problem = "a name declared twice";
        if (problem && !bad++)
            snprintf(why, sizeof why, "parameter '%s' has %s", s->name ? s->name : "?", problem);
    }
    if (bad) {
        report(c, 0, "parameters", "%s", why);
        return;
    }
    mf_error err;
    mf_error_clear(&err);
    mf_config *defaults = default_section(c, &err);
    if (!defaults) /* a default that does not parse, has the wrong type or is out of range */
        report(c, 0, "parameters", "%s: %s",
               c->n_overrides ? "the defaults with the -o settings do not pass the checks"
                              : "the declared defaults do not pass their own checks",
               err.msg);
    else
        report(c, 1, "parameters", "%d declared, defaults within their types and ranges", n);
    mf_config_free(defaults);
}

/* ---------------------------------------------------------------- modules and losses */
enum { SAMPLE_BATCH = 3, SAMPLE_FEATURES = 5, SAMPLE_CLASSES = 4 };

/* One built instance on sample inputs, its graph compiled with seeded inputs. */
typedef struct instance {
    mf_params *params;
    mf_module *module;
    mf_graph *g;
    mf_node *in[2], *target, *out;
    int n_in;
    mf_shape declared; /* per-sample output shape from build */
} instance;

static void instance_free(instance *x)
{
    mf_graph_free(x->g);
    mf_module_free(x->module);
    mf_params_free(x->params);
    memset(x, 0, sizeof *x);
}

/* The per-sample input shapes tried, in order: feature vectors, then small images. */
static mf_shape sample_shape(int k)
{
    return k == 0 ? mf_shape1(SAMPLE_FEATURES) : mf_shape3(2, 8, 8);
}
#define N_SAMPLE_SHAPES 2

static mf_shape batched(const mf_shape *s)
{
    mf_shape b = {s->ndim + 1, {SAMPLE_BATCH}};
    for (int d = 0; d < s->ndim; d++)
        b.dim[d + 1] = s->dim[d];
    return b;
}

/* Build with defaults on inputs of sample shape k and compile a training graph. 0 or -1
 * (reason in err). */
static int instance_make(const mf_plugin *p, const mf_config *cfg, uint64_t seed, int k,
                         instance *x, mf_error *err)
{
    static const char *const names[2] = {"a", "b"};
    const mf_shape sample[2] = {sample_shape(k), sample_shape(k)};
    memset(x, 0, sizeof *x);
    x->params = mf_params_new();
    x->module = mf_module_new(p, "check", x->params, err);
    if (!x->module)
        return -1;
    if (p->kind == MF_KIND_LOSS) {
        if (mf_module_build_loss(x->module, cfg, err))
            return -1;
    } else {
        x->n_in = p->kind == MF_KIND_FUSION ? 2 : 1;
        mf_build_args args = {sizeof args, x->n_in, sample, names, 0};
        mf_error first;
        mf_error_clear(&first);
        if (mf_module_build(x->module, cfg, &args, &x->declared, &first)) {
            /* an encoder may need the host to fix its width, as for a head: ask for one */
            args.out_features = SAMPLE_CLASSES;
            mf_module_free(x->module);
            mf_params_free(x->params);
            x->params = mf_params_new();
            x->module = mf_module_new(p, "check", x->params, err);
            if (p->kind != MF_KIND_ENCODER || !x->module ||
                mf_module_build(x->module, cfg, &args, &x->declared, err)) {
                mf_error_set(err, "%s", first.msg);
                return -1;
            }
        }
    }
    if (mf_params_finalize(x->params, seed, 0, err))
        return -1;
    mf_graph *g = x->g = mf_graph_new(1);
    mf_graph_set_seed(g, seed);
    mf_rng rng;
    mf_rng_seed(&rng, 12345);
    if (p->kind == MF_KIND_LOSS) {
        /* logits (B,K) and one embedding per modality, all taking gradients */
        x->in[0] = mf_variable(g, "logits", mf_shape2(SAMPLE_BATCH, SAMPLE_CLASSES));
        x->in[1] = mf_variable(g, "emb.a", mf_shape2(SAMPLE_BATCH, SAMPLE_FEATURES));
        mf_node *emb2 = mf_variable(g, "emb.b", mf_shape2(SAMPLE_BATCH, SAMPLE_FEATURES));
        x->target = mf_input(g, "target", mf_shape1(SAMPLE_BATCH));
        mf_node *embs[2] = {x->in[1], emb2};
        mf_loss_inputs li = {sizeof li, x->in[0], x->target, 2, names, embs};
        x->out = mf_module_loss(x->module, g, &li);
        x->n_in = 3;
    } else {
        for (int i = 0; i < x->n_in; i++)
            x->in[i] = mf_variable(g, names[i], batched(&sample[i]));
        x->out = mf_module_forward(x->module, g, x->n_in, x->in);
    }
    if (mf_graph_error(g)) {
        mf_error_set(err, "forward: %s", mf_graph_error(g));
        return -1;
    }
    if (!x->out) {
        mf_error_set(err, "forward returned no node");
        return -1;
    }
    if (mf_graph_compile(g, err))
        return -1;
    for (int i = 0; i < mf_graph_size(g); i++) { /* every leaf that is data gets values */
        mf_node *n = mf_graph_node(g, i);
        if (strcmp(mf_node_op_name(n), "variable") == 0 || strcmp(mf_node_op_name(n), "input") == 0)
            for (int64_t j = 0; j < mf_node_numel(n); j++)
                mf_node_value(n)[j] = n == x->target ? (float)(j % SAMPLE_CLASSES)
                                                     : (float)(2 * mf_rng_uniform(&rng) - 1);
    }
    mf_graph_forward(g);
    return 0;
}

static void check_module(checker *c, const mf_config *cfg)
{
    const mf_plugin *p = c->plugin;
    instance x, y;
    mf_error err;
    mf_error_clear(&err);
    /* a module that takes feature vectors, or one that takes images */
    int k = 0;
    char shape[64], want[64];
    mf_error vector_error; /* the first shape's reason is the one to report */
    mf_error_clear(&vector_error);
    while (instance_make(p, cfg, 7, k, &x, k ? &err : &vector_error)) {
        instance_free(&x);
        if (++k == N_SAMPLE_SHAPES || p->kind == MF_KIND_LOSS) {
            report(c, 0, "build", "with defaults on inputs of shape (%d): %s", SAMPLE_FEATURES,
                   vector_error.msg);
            return;
        }
    }
    const mf_shape *got = mf_node_shape(x.out);
    mf_shape in = sample_shape(k);
    report(c, 1, "build", "with defaults on %d input(s) of shape %s: %lld parameters", x.n_in,
           mf_shape_str(&in, want, sizeof want), (long long)mf_params_numel(x.params));

    /* output shape */
    if (p->kind == MF_KIND_LOSS) {
        report(c, mf_node_numel(x.out) == 1, "shape", "the loss is %s (a scalar is required)",
               mf_shape_str(got, shape, sizeof shape));
    } else {
        mf_shape expected = {x.declared.ndim + 1, {SAMPLE_BATCH}};
        for (int d = 0; d < x.declared.ndim && d + 1 < MF_MAX_DIMS; d++)
            expected.dim[d + 1] = x.declared.dim[d];
        report(c, mf_shape_equal(got, &expected), "shape", "forward gives %s; build declared %s",
               mf_shape_str(got, shape, sizeof shape), mf_shape_str(&expected, want, sizeof want));
    }

    /* finite outputs */
    int64_t bad = -1;
    for (int64_t i = 0; i < mf_node_numel(x.out) && bad < 0; i++)
        if (!isfinite(mf_node_value(x.out)[i]))
            bad = i;
    if (bad >= 0)
        report(c, 0, "finite", "output element %lld is %g", (long long)bad,
               mf_node_value(x.out)[bad]);
    else
        report(c, 1, "finite", "all %lld output values are finite", (long long)mf_node_numel(x.out));

    /* gradients */
    mf_gradcheck_opts opts = {.eps = 1e-3, .atol = 2e-3, .rtol = 2e-2, .max_elements_per_leaf = 64};
    mf_gradcheck_result gr;
    int gc = mf_gradcheck(x.g, x.out, &opts, &gr);
    if (gc)
        report(c, 0, "gradients", "%lld of %lld elements disagree with finite differences; worst: %s",
               (long long)gr.failed, (long long)gr.checked, gr.worst);
    else
    {
        char kinks[64] = "";
        if (gr.kinks)
            snprintf(kinks, sizeof kinks, "; %lld at kinks", (long long)gr.kinks);
        report(c, 1, "gradients", "%lld input and parameter elements match finite differences "
               "(max abs error %.2g%s)", (long long)gr.checked, gr.max_abs_err, kinks);
    }

    /* same seed, same numbers */
    if (instance_make(p, cfg, 7, k, &y, &err)) {
        report(c, 0, "determinism", "a second build failed: %s", err.msg);
    } else {
        int same = mf_node_numel(x.out) == mf_node_numel(y.out) &&
                   memcmp(mf_node_value(x.out), mf_node_value(y.out),
                          (size_t)mf_node_numel(x.out) * sizeof(float)) == 0;
        report(c, same, "determinism", same ? "two builds with one seed give bit-identical outputs"
                                            : "two builds with one seed give different outputs");
    }
    instance_free(&y);
    instance_free(&x);

    /* memory across build/free cycles. glibc's own bookkeeping moves by a few hundred
     * bytes now and then (more under load, when threads take other arenas), so a leak is
     * memory that grows in both of two windows — 20 cycles, then 40 more — by at least a
     * byte a cycle, after ten warm-up cycles. */
    size_t mark[3] = {0, 0, 0};
    for (int i = 0; i < 70; i++) {
        if (i == 10 || i == 30)
            mark[i == 30] = mallinfo2().uordblks;
        if (instance_make(p, cfg, 7, k, &y, &err) == 0)
            mf_graph_backward(y.g, y.out);
        instance_free(&y);
    }
    mark[2] = mallinfo2().uordblks;
    long first = (long)mark[1] - (long)mark[0], second = (long)mark[2] - (long)mark[1];
    int leaks = first >= 20 && second >= 40;
    report(c, !leaks, "memory", "%ld bytes still allocated after 60 build/free cycles%s",
           (long)mark[2] - (long)mark[0] > 0 ? (long)mark[2] - (long)mark[0] : 0,
           leaks ? " (it grows with every cycle)" : "");
}

/* ---------------------------------------------------------------- datasets */
static void check_dataset(checker *c, const mf_config *cfg)
{
    mf_error err;
    mf_error_clear(&err);
    mf_dataset *ds = mf_dataset_open(c->plugin, cfg, ".", &err);
    if (!ds) {
        report(c, 0, "open", "with defaults: %s", err.msg);
        return;
    }
    const mf_dataset_info *in = mf_dataset_get_info(ds);
    report(c, 1, "open", "%lld samples, %d classes, %d modalities", (long long)in->n_samples,
           in->n_classes, in->n_modalities);
    float *bufs[16] = {0}, *again[16] = {0};
    int ok = in->n_modalities <= 16, m;
    for (m = 0; ok && m < in->n_modalities; m++) {
        size_t n = (size_t)mf_shape_numel(&in->modalities[m].shape);
        ok = (bufs[m] = malloc(3 * n * sizeof(float))) && (again[m] = malloc(3 * n * sizeof(float)));
    }
    int64_t idx[3] = {0, in->n_samples / 2, in->n_samples - 1};
    int32_t labels[3], labels2[3];
    const int classes = in->label_kind == MF_LABELS_CLASSES;
    float targets[3 * 64], targets2[3 * 64];
    mf_batch_buffers first = {sizeof first, bufs, classes ? labels : NULL,
                              classes ? NULL : targets},
                     second = {sizeof second, again, classes ? labels2 : NULL,
                               classes ? NULL : targets2};
    if (!classes && in->target_dim > 64)
        ok = 0;
    if (!ok || mf_dataset_read(ds, 3, idx, &first, &err) ||
        mf_dataset_read(ds, 3, idx, &second, &err)) {
        report(c, 0, "read", "samples 0, %lld and %lld: %s", (long long)idx[1], (long long)idx[2],
               ok ? err.msg : "more than 16 modalities or 64 targets");
    } else {
        const char *problem = NULL;
        for (int i = 0; i < 3 && classes && !problem; i++)
            if (labels[i] < 0 || labels[i] >= in->n_classes)
                problem = "a label outside 0…classes-1";
        for (int64_t i = 0; !classes && i < 3 * in->target_dim && !problem; i++)
            if (!isfinite(targets[i]))
                problem = "a target that is not finite";
        for (m = 0; m < in->n_modalities && !problem; m++) {
            int64_t n = 3 * mf_shape_numel(&in->modalities[m].shape);
            for (int64_t j = 0; j < n && !problem; j++)
                if (!isfinite(bufs[m][j]))
                    problem = "a value that is not finite";
            if (!problem && memcmp(bufs[m], again[m], (size_t)n * sizeof(float)))
                problem = "different values when the same samples are read again";
        }
        if (!problem && classes && memcmp(labels, labels2, sizeof labels))
            problem = "different labels when the same samples are read again";
        if (!problem && !classes &&
            memcmp(targets, targets2, (size_t)(3 * in->target_dim) * sizeof(float)))
            problem = "different targets when the same samples are read again";
        for (int64_t i = 0; in->split && i < in->n_samples && !problem; i++)
            if (in->split[i] > MF_SPLIT_TEST)
                problem = "a split value other than 0, 1 or 2";
        if (problem)
            report(c, 0, "read", "samples 0, %lld and %lld: %s", (long long)idx[1],
                   (long long)idx[2], problem);
        else
            report(c, 1, "read", "samples 0, %lld and %lld match the description, twice",
                   (long long)idx[1], (long long)idx[2]);
    }
    for (m = 0; m < 16; m++) {
        free(bufs[m]);
        free(again[m]);
    }
    mf_dataset_close(ds);
}

int mf_check_plugin(const mf_plugin *plugin, const char *file, int n_overrides,
                    const char *const *overrides, FILE *out)
{
    checker c = {out, plugin, 0, 0, n_overrides, overrides};
    fprintf(out, "checking %s '%s' from %s\n", mf_kind_name(plugin->kind), plugin->name, file);
    check_descriptor(&c, file);
    check_params(&c);
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = default_section(&c, &err);
    if (cfg) {
        if (plugin->kind == MF_KIND_DATASET)
            check_dataset(&c, cfg);
        else
            check_module(&c, cfg);
    }
    mf_config_free(cfg);
    fprintf(out, "%s: %d passed, %d failed\n", plugin->name, c.passed, c.failed);
    return c.failed;
}
