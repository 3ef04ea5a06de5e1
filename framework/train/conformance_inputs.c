/* check-plugin for modules and losses, on real inputs. A plugin says what it takes by what
 * its build accepts: it is built on every input profile of its kind, each profile it
 * refuses is a SKIP line with its own reason, and each it accepts gets the full checks —
 * output shape as declared (and the mask its out_flags promise), finite values, gradients
 * of inputs and parameters against finite differences, bit-identical results for one seed,
 * no memory kept across build/free cycles. A plugin that accepts no profile fails.
 *
 * Fusion profiles first give the modalities distinct widths (5, 7, 4 features; 2, 3, 5
 * channels; sequences of 4, 6, 3 positions) whose sums are no multiple of one of them, so
 * an operator that sizes a layer from the wrong input fails its build or forward; then one
 * width (as late fusion needs), still at distinct lengths.
 */
#include <malloc.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

enum { BATCH = 3, CLASSES = 4, FUSED = 8, VOCAB = 11, MAX_IN = 3 };
#define TOKENS_MASKED (MF_IO_TOKENS | MF_IO_MASKED)
#define SEQ_MASKED (MF_IO_SEQUENCE | MF_IO_MASKED)

/* Per-sample inputs of one build. For a loss, in[] are the modality embeddings, with the
 * head's logits (CLASSES) and the fusion's output (FUSED) when set. */
typedef struct profile {
    const char *name;
    int n_in;
    mf_shape in[MAX_IN];
    uint32_t flags[MAX_IN];
    int logits, fused;
    int32_t target_kind;
} profile;

#define VEC(d) {1, {d}}
#define SEQ(t, d) {2, {t, d}}
#define MAP(c, h, w) {3, {c, h, w}}

static const profile encoder_profiles[] = {
    {"vector", 1, {VEC(5)}},
    {"image", 1, {MAP(2, 8, 8)}},
    {"token ids", 1, {VEC(6)}, {TOKENS_MASKED}},
    {"sequence", 1, {SEQ(6, 5)}, {SEQ_MASKED}},
};
static const profile fusion_profiles[] = {
    {"2 vectors", 2, {VEC(5), VEC(7)}},
    {"3 vectors", 3, {VEC(5), VEC(7), VEC(4)}},
    {"2 feature maps", 2, {MAP(2, 4, 4), MAP(3, 4, 4)}},
    {"3 feature maps", 3, {MAP(2, 4, 4), MAP(3, 4, 4), MAP(5, 4, 4)}},
    {"2 sequences", 2, {SEQ(4, 5), SEQ(6, 7)}, {SEQ_MASKED, SEQ_MASKED}},
    {"3 sequences", 3, {SEQ(4, 5), SEQ(6, 7), SEQ(3, 4)}, {SEQ_MASKED, SEQ_MASKED, SEQ_MASKED}},
    /* late fusion (a mean, a vote) needs one width: still distinct lengths */
    {"2 vectors of one width", 2, {VEC(8), VEC(8)}},
    {"3 vectors of one width", 3, {VEC(8), VEC(8), VEC(8)}},
    {"2 sequences of one width", 2, {SEQ(4, 8), SEQ(5, 8)}, {SEQ_MASKED, SEQ_MASKED}},
    {"3 sequences of one width", 3, {SEQ(4, 8), SEQ(5, 8), SEQ(3, 8)},
     {SEQ_MASKED, SEQ_MASKED, SEQ_MASKED}},
};
static const profile loss_profiles[] = {
    {"logits (4) + class targets", 2, {VEC(5), VEC(7)}, {0}, 1, 0, MF_TARGET_CLASSES},
    {"logits (4) + values (B,4)", 2, {VEC(5), VEC(7)}, {0}, 1, 0, MF_TARGET_VALUES},
    {"logits (4) + multilabel targets (B,4)", 2, {VEC(5), VEC(7)}, {0}, 1, 0,
     MF_TARGET_MULTILABEL},
    {"no fusion or head, class targets", 2, {VEC(6), VEC(6)}, {0}, 0, 0, MF_TARGET_CLASSES},
    {"fused (8) + logits (4) + class targets", 2, {VEC(5), VEC(7)}, {0}, 1, 1,
     MF_TARGET_CLASSES},
};
#define COUNT(a) (int)(sizeof a / sizeof a[0])

static const char *const names[MAX_IN] = {"a", "b", "c"};

/* "2 sequences (4,5)+(6,7), masked"; "token ids (6) < 11, masked";
 * "logits (4) + class targets, embeddings (5)+(7)" */
static const char *describe(const profile *pr, int loss, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s%s", pr->name, loss ? ", embeddings " : " ");
    uint32_t all = 0;
    for (int i = 0; i < pr->n_in && n < size; i++) {
        char s[64];
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "+" : "",
                              mf_shape_str(&pr->in[i], s, sizeof s));
        all |= pr->flags[i];
    }
    if ((all & MF_IO_TOKENS) && n < size)
        n += (size_t)snprintf(buf + n, size - n, " < %d", VOCAB);
    if ((all & MF_IO_MASKED) && n < size)
        snprintf(buf + n, size - n, ", masked");
    return buf;
}

static mf_shape batched(const mf_shape *s)
{
    mf_shape b = {s->ndim + 1, {BATCH}};
    for (int d = 0; d < s->ndim && d + 1 < MF_MAX_DIMS; d++)
        b.dim[d + 1] = s->dim[d];
    return b;
}

/* ---------------------------------------------------------------- one built instance */
typedef struct instance {
    mf_params *params;
    mf_module *module;
    mf_graph *g;
    mf_node *in[MAX_IN], *mask[MAX_IN], *out;
    mf_loss_inputs li;
    mf_shape declared; /* modules: the per-sample output shape build gave */
    uint32_t out_flags;
} instance;

static void instance_free(instance *x)
{
    mf_graph_free(x->g);
    mf_module_free(x->module);
    mf_params_free(x->params);
    memset(x, 0, sizeof *x);
}

static int has_build_model(const mf_plugin *p)
{
    const mf_loss_ops *ops = p->ops;
    return ops->struct_size >= offsetof(mf_loss_ops, build_model) + sizeof ops->build_model &&
           ops->build_model;
}

/* A 1.1 loss is told the model's outputs and may refuse them; a 1.0 loss only reads cfg. */
static int build_loss(instance *x, const mf_config *cfg, const profile *pr, mf_error *err)
{
    const mf_shape logits = mf_shape1(CLASSES), fused = mf_shape1(FUSED);
    mf_loss_build_args a = {sizeof a, pr->n_in, names, pr->in, pr->flags,
                            pr->fused ? &fused : NULL, pr->logits ? &logits : NULL,
                            pr->target_kind, CLASSES};
    return mf_module_build_loss_model(x->module, cfg, &a, err);
}

/* Build on profile pr. 0, or -1 with the plugin's reason in err. */
static int build(const mf_plugin *p, const mf_config *cfg, const profile *pr, instance *x,
                 mf_error *err)
{
    x->params = mf_params_new();
    if (!(x->module = mf_module_new(p, "check", x->params, err)))
        return -1;
    if (p->kind == MF_KIND_LOSS)
        return build_loss(x, cfg, pr, err);
    int64_t vocab[MAX_IN] = {0};
    for (int i = 0; i < pr->n_in; i++)
        vocab[i] = pr->flags[i] & MF_IO_TOKENS ? VOCAB : 0;
    mf_build_args args = {sizeof args, pr->n_in, pr->in, names, 0,
                          pr->flags, vocab, &x->out_flags, cfg};
    mf_error first;
    mf_error_clear(&first);
    if (mf_module_build(x->module, cfg, &args, &x->declared, &first) == 0)
        return 0;
    /* an encoder may need the host to fix its width, as for a head: ask for one */
    if (p->kind == MF_KIND_ENCODER) {
        mf_module_free(x->module);
        mf_params_free(x->params);
        x->params = mf_params_new();
        x->out_flags = 0;
        args.out_features = CLASSES;
        if ((x->module = mf_module_new(p, "check", x->params, err)) &&
            mf_module_build(x->module, cfg, &args, &x->declared, NULL) == 0)
            return 0;
    }
    mf_error_set(err, "%s", first.count ? first.msg : "build failed without saying why");
    return -1;
}

/* Seeded data: values in (-1,1); masks pad the last b positions of sample b; token ids in
 * [1, VOCAB) (0 where padded); class targets 0…K-1; multilabel targets 0/1. */
static void fill(instance *x, const profile *pr)
{
    mf_rng rng;
    mf_rng_seed(&rng, 12345);
    for (int i = 0; i < mf_graph_size(x->g); i++) {
        mf_node *n = mf_graph_node(x->g, i);
        if (strcmp(mf_node_op_name(n), "variable") == 0 || strcmp(mf_node_op_name(n), "input") == 0)
            for (int64_t j = 0; j < mf_node_numel(n); j++)
                mf_node_value(n)[j] = (float)(2 * mf_rng_uniform(&rng) - 1);
    }
    for (int i = 0; i < pr->n_in; i++) {
        int64_t t_len = pr->in[i].dim[0];
        for (int64_t b = 0; b < BATCH && x->mask[i]; b++)
            for (int64_t t = 0; t < t_len; t++)
                mf_node_value(x->mask[i])[b * t_len + t] = t >= t_len - b;
        for (int64_t b = 0; b < BATCH && (pr->flags[i] & MF_IO_TOKENS); b++)
            for (int64_t t = 0; t < t_len; t++)
                mf_node_value(x->in[i])[b * t_len + t] =
                    t >= t_len - b ? 0.0f : (float)(1 + (b * 5 + t * 3) % (VOCAB - 1));
    }
    mf_node *y = x->li.target;
    for (int64_t j = 0; y && j < mf_node_numel(y); j++)
        if (pr->target_kind == MF_TARGET_CLASSES)
            mf_node_value(y)[j] = (float)(j % CLASSES);
        else if (pr->target_kind == MF_TARGET_MULTILABEL)
            mf_node_value(y)[j] = (float)((j * 7) % 3 == 0);
}

/* The graph around the module: inputs (token ids as data, the rest as leaves taking a
 * gradient), masks attached, forward, compile, fill, one forward pass. */
static int make_graph(const mf_plugin *p, const profile *pr, uint64_t seed, instance *x,
                      mf_error *err)
{
    mf_graph *g = x->g = mf_graph_new(1);
    mf_graph_set_seed(g, seed);
    for (int i = 0; i < pr->n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s%s", p->kind == MF_KIND_LOSS ? "emb." : "", names[i]);
        mf_shape s = batched(&pr->in[i]);
        x->in[i] = pr->flags[i] & MF_IO_TOKENS ? mf_input(g, name, s) : mf_variable(g, name, s);
        if (pr->flags[i] & MF_IO_MASKED) {
            x->mask[i] = mf_input(g, "mask", mf_shape2(BATCH, pr->in[i].dim[0]));
            mf_node_set_mask(x->in[i], x->mask[i]);
        }
    }
    if (p->kind == MF_KIND_LOSS) {
        mf_loss_inputs *li = &x->li;
        li->struct_size = sizeof *li;
        li->logits = pr->logits ? mf_variable(g, "logits", mf_shape2(BATCH, CLASSES)) : NULL;
        li->target = mf_input(g, "target", pr->target_kind == MF_TARGET_CLASSES
                                               ? mf_shape1(BATCH)
                                               : mf_shape2(BATCH, CLASSES));
        li->n_modalities = pr->n_in;
        li->names = names;
        li->embeddings = x->in;
        li->fused = pr->fused ? mf_variable(g, "fused", mf_shape2(BATCH, FUSED)) : NULL;
        li->target_kind = pr->target_kind;
        x->out = mf_module_loss(x->module, g, li);
    } else {
        x->out = mf_module_forward(x->module, g, pr->n_in, x->in);
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
    fill(x, pr);
    mf_graph_forward(g);
    return 0;
}

/* 0 built and run; 1 refused at build (the reason in err); -1 built, then failed. */
static int instance_make(const mf_plugin *p, const mf_config *cfg, const profile *pr,
                         uint64_t seed, instance *x, mf_error *err)
{
    memset(x, 0, sizeof *x);
    if (build(p, cfg, pr, x, err))
        return 1;
    if (mf_params_finalize(x->params, seed, 0, err))
        return -1;
    return make_graph(p, pr, seed, x, err) ? -1 : 0;
}

/* ---------------------------------------------------------------- the checks */
static void check_shape(mfi_checker *c, instance *x, const profile *pr, const char *what)
{
    char got[64], want[64];
    const mf_shape *s = mf_node_shape(x->out);
    if (c->plugin->kind == MF_KIND_LOSS) {
        mfi_check_report(c, mf_node_numel(x->out) == 1, "shape",
                         "%s: the loss is %s (a scalar is required)", what,
                         mf_shape_str(s, got, sizeof got));
        return;
    }
    mf_shape expected = batched(&x->declared);
    mf_shape_str(&expected, want, sizeof want);
    mf_node *mask = mf_node_mask(x->out);
    mf_shape mask_shape = mf_shape2(BATCH, x->declared.dim[0]);
    if (!mf_shape_equal(s, &expected))
        mfi_check_report(c, 0, "shape", "%s: forward gives %s; build declared %s", what,
                         mf_shape_str(s, got, sizeof got), want);
    else if ((x->out_flags & MF_IO_SEQUENCE) && x->declared.ndim != 2)
        mfi_check_report(c, 0, "shape", "%s: out_flags say MF_IO_SEQUENCE, but build declared "
                         "%s, not (T,D)", what, want);
    else if ((x->out_flags & MF_IO_MASKED) && !mask)
        mfi_check_report(c, 0, "shape", "%s: out_flags say MF_IO_MASKED, but the output "
                         "carries no mask (mf_node_set_mask)", what);
    else if (mask && !mf_shape_equal(mf_node_shape(mask), &mask_shape))
        mfi_check_report(c, 0, "shape", "%s: the output's mask is %s; a (T,D) output needs "
                         "(B,T) %s", what, mf_shape_str(mf_node_shape(mask), got, sizeof got),
                         mf_shape_str(&mask_shape, want, sizeof want));
    else
        mfi_check_report(c, 1, "shape", "%s: forward gives %s as declared%s", what, want,
                         mask ? ", with its (B,T) mask" : "");
}

static void check_values(mfi_checker *c, instance *x, const char *what)
{
    int64_t bad = -1;
    for (int64_t i = 0; i < mf_node_numel(x->out) && bad < 0; i++)
        if (!isfinite(mf_node_value(x->out)[i]))
            bad = i;
    if (bad >= 0)
        mfi_check_report(c, 0, "finite", "%s: output element %lld is %g", what, (long long)bad,
                         mf_node_value(x->out)[bad]);
    else
        mfi_check_report(c, 1, "finite", "%s: all %lld output values are finite", what,
                         (long long)mf_node_numel(x->out));
}

/* Finite differences at eps 1e-3 (mf_gradcheck retries a disagreeing element at eps/4 and
 * 4·eps before it counts as a failure). */
static void check_gradients(mfi_checker *c, instance *x, const char *what)
{
    mf_gradcheck_opts opts = {.eps = 1e-3, .atol = 2e-3, .rtol = 2e-2,
                              .max_elements_per_leaf = 64};
    mf_gradcheck_result gr;
    if (!mf_node_grad(x->out)) {
        mfi_check_report(c, 1, "gradients", "%s: nothing to differentiate (no parameters, and "
                         "token ids take no gradient)", what);
        return;
    }
    const char *note = "";
    int bad = mf_gradcheck(x->g, x->out, &opts, &gr);
    if (bad) {
        mfi_check_report(c, 0, "gradients", "%s: %lld of %lld elements disagree with finite "
                         "differences; worst: %s", what, (long long)gr.failed,
                         (long long)gr.checked, gr.worst);
        return;
    }
    char kinks[64] = "";
    if (gr.kinks)
        snprintf(kinks, sizeof kinks, "; %lld at kinks", (long long)gr.kinks);
    mfi_check_report(c, 1, "gradients", "%s: %lld input and parameter elements match finite "
                     "differences (max abs error %.2g%s%s)", what, (long long)gr.checked,
                     gr.max_abs_err, kinks, note);
}

static int valid_metric_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* A loss's declared metrics: valid names, finite batch values. */
static void check_metrics(mfi_checker *c, instance *x, const char *what)
{
    const mf_loss_ops *ops = c->plugin->ops;
    if (ops->struct_size < offsetof(mf_loss_ops, batch_metrics) + sizeof ops->batch_metrics ||
        (!ops->declare_metrics && !ops->batch_metrics))
        return;
    if (!ops->declare_metrics || !ops->batch_metrics) {
        mfi_check_report(c, 0, "metrics", "%s: %s without %s: the host reports no metrics",
                         what, ops->declare_metrics ? "declare_metrics" : "batch_metrics",
                         ops->declare_metrics ? "batch_metrics" : "declare_metrics");
        return;
    }
    mf_loss_metrics m;
    memset(&m, 0, sizeof m);
    ops->declare_metrics(x->module, &m);
    if (m.n < 0 || m.n > MF_LOSS_MAX_METRICS) {
        mfi_check_report(c, 0, "metrics", "%s: declares %d metrics (0 to %d)", what, m.n,
                         MF_LOSS_MAX_METRICS);
        return;
    }
    for (int i = 0; i < m.n; i++)
        if (!valid_metric_name(m.names[i])) {
            mfi_check_report(c, 0, "metrics", "%s: metric #%d has a name that is not lowercase "
                             "letters, digits and '_'", what, i + 1);
            return;
        }
    double v[MF_LOSS_MAX_METRICS];
    for (int i = 0; i < MF_LOSS_MAX_METRICS; i++)
        v[i] = NAN;
    if (m.n)
        ops->batch_metrics(x->module, &x->li, v);
    for (int i = 0; i < m.n; i++)
        if (!isfinite(v[i])) {
            mfi_check_report(c, 0, "metrics", "%s: %s is %g after a forward", what, m.names[i],
                             v[i]);
            return;
        }
    mfi_check_report(c, 1, "metrics", "%s: %d declared, finite after a forward", what, m.n);
}

/* glibc's own bookkeeping moves by a few hundred bytes now and then (more under load), and
 * chunks parked in its per-thread cache count as in use, so a leak is memory that grows in
 * both of two windows — 20 cycles, then 40 more — by at least 16 bytes a cycle, after ten
 * warm-up cycles: the smallest chunk glibc hands out is 32 bytes, so even one lost chunk
 * every other cycle shows, while the cache's bounded fill-up (a few hundred bytes) does not. */

/* Bytes the allocator holds for the program: under ASan or TSan their runtime owns malloc
 * (mallinfo2 says 0 there), so its own count is asked. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes()
                                                   : mallinfo2().uordblks;
}

static void check_memory(mfi_checker *c, const mf_config *cfg, const profile *pr,
                         const char *what)
{
    size_t mark[3] = {0, 0, 0};
    for (int i = 0; i < 70; i++) {
        instance y;
        mf_error err;
        mf_error_clear(&err);
        if (i == 10 || i == 30)
            mark[i == 30] = heap_in_use();
        if (instance_make(c->plugin, cfg, pr, 7, &y, &err) == 0)
            mf_graph_backward(y.g, y.out);
        instance_free(&y);
    }
    mark[2] = heap_in_use();
    long first = (long)mark[1] - (long)mark[0], second = (long)mark[2] - (long)mark[1];
    long kept = (long)mark[2] - (long)mark[0];
    int leaks = first >= 16 * 20 && second >= 16 * 40;
    mfi_check_report(c, !leaks, "memory", "%s: %ld bytes still allocated after 60 build/free "
                     "cycles%s", what, kept > 0 ? kept : 0,
                     leaks ? " (it grows with every cycle)" : "");
}

/* Every check on one profile; returns 1 when the plugin accepted it. */
static int check_profile(mfi_checker *c, const mf_config *cfg, const profile *pr)
{
    char what[160];
    describe(pr, c->plugin->kind == MF_KIND_LOSS, what, sizeof what);
    instance x, y;
    mf_error err;
    mf_error_clear(&err);
    int status = instance_make(c->plugin, cfg, pr, 7, &x, &err);
    if (status) {
        mfi_check_report(c, status > 0 ? MFI_CHECK_SKIP : MFI_CHECK_FAIL, "build", "%s: %s%s",
                         what, status > 0 ? "refused: " : "built, then ", err.msg);
        instance_free(&x);
        return status > 0 ? 0 : 1;
    }
    mfi_check_report(c, 1, "build", "%s %s: %lld parameters", what, c->settings,
                     (long long)mf_params_numel(x.params));
    mfi_check_begin(c, "shape");
    check_shape(c, &x, pr, what);
    mfi_check_begin(c, "finite");
    check_values(c, &x, what);
    mfi_check_begin(c, "metrics");
    if (c->plugin->kind == MF_KIND_LOSS)
        check_metrics(c, &x, what);
    mf_error_clear(&err); /* before the gradient check moves the leaves and replays */
    mfi_check_begin(c, "determinism");
    if (instance_make(c->plugin, cfg, pr, 7, &y, &err)) {
        mfi_check_report(c, 0, "determinism", "%s: a second build failed: %s", what, err.msg);
    } else {
        int same = mf_node_numel(x.out) == mf_node_numel(y.out) &&
                   memcmp(mf_node_value(x.out), mf_node_value(y.out),
                          (size_t)mf_node_numel(x.out) * sizeof(float)) == 0;
        mfi_check_report(c, same, "determinism", "%s: two builds with one seed give %s", what,
                         same ? "bit-identical outputs" : "different outputs");
    }
    instance_free(&y);
    mfi_check_begin(c, "gradients");
    check_gradients(c, &x, what);
    instance_free(&x);
    mfi_check_begin(c, "memory");
    check_memory(c, cfg, pr, what);
    return 1;
}

typedef struct profile_job {
    const mf_config *cfg;
    const profile *pr;
} profile_job;

static int profile_apart(mfi_checker *c, const void *arg)
{
    const profile_job *j = arg;
    mfi_check_begin(c, "build");
    return check_profile(c, j->cfg, j->pr);
}

/* Each profile in a child of its own: a crash in one is its FAIL line, and the next
 * profile is still checked (a profile whose child died counts as accepted). */
static void check_profiles(mfi_checker *c, const mf_config *cfg, const profile *prs, int n)
{
    int accepted = 0;
    for (int i = 0; i < n; i++) {
        char what[160];
        profile_job j = {cfg, &prs[i]};
        describe(&prs[i], c->plugin->kind == MF_KIND_LOSS, what, sizeof what);
        accepted += mfi_check_apart(c, "build", what, profile_apart, &j, 1);
    }
    if (!accepted)
        mfi_check_report(c, 0, "inputs", "'%s' accepts none of the %d input profiles of %s %s "
                         "(reasons in the SKIP lines)", c->plugin->name, n,
                         c->plugin->kind == MF_KIND_ENCODER ? "an" : "a",
                         mf_kind_name(c->plugin->kind));
}

void mfi_check_module(mfi_checker *c, const mf_config *cfg)
{
    if (c->plugin->kind == MF_KIND_FUSION)
        check_profiles(c, cfg, fusion_profiles, COUNT(fusion_profiles));
    else
        check_profiles(c, cfg, encoder_profiles, COUNT(encoder_profiles));
}

void mfi_check_loss(mfi_checker *c, const mf_config *cfg)
{
    if (has_build_model(c->plugin)) {
        check_profiles(c, cfg, loss_profiles, COUNT(loss_profiles));
        return;
    }
    mfi_check_report(c, MFI_CHECK_SKIP, "inputs", "a loss without build_model (as in ABI 1.0) "
                     "is told nothing of the model, so only '%s' is tried",
                     loss_profiles[0].name);
    check_profiles(c, cfg, loss_profiles, 1);
}
