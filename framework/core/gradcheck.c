/* Finite-difference gradient check of L = Σ w ⊙ out against the analytic backward pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

static double weighted_sum(const mf_node *out, const float *w)
{
    double L = 0.0;
    for (int64_t i = 0; i < out->numel; i++)
        L += (double)w[i] * (double)out->value[i];
    return L;
}

/* L at the element moved by ±eps: the central difference, with Lp and Lm for the one-sided
 * slopes. Every forward runs with one forward count (a fixed dropout mask). */
static double central(mf_graph *g, mf_node *out, const float *w, float *v, double eps,
                      uint64_t count0, double *Lp, double *Lm, double *h_plus, double *h_minus)
{
    const float orig = *v;
    const float xp = (float)(orig + eps), xm = (float)(orig - eps);
    *v = xp;
    g->forward_count = count0;
    mf_graph_forward(g);
    *Lp = weighted_sum(out, w);
    *v = xm;
    g->forward_count = count0;
    mf_graph_forward(g);
    *Lm = weighted_sum(out, w);
    *v = orig;
    *h_plus = (double)xp - (double)orig;
    *h_minus = (double)orig - (double)xm;
    return (*Lp - *Lm) / ((double)xp - (double)xm);
}

static int agrees(double num, double ana, const mf_gradcheck_opts *o)
{
    return fabs(num - ana) <= o->atol + o->rtol * fmax(fabs(num), fabs(ana)); /* NaN: no */
}

/* One element: central differences at eps; where they disagree, at eps/4 and 4·eps (a
 * wrong backward disagrees at every step; truncation error shrinks at eps/4, float32
 * rounding in a deep forward at 4·eps), then the kink test at eps. */
static void check_element(mf_graph *g, mf_node *out, const float *w, const mf_gradcheck_opts *o,
                          uint64_t count0, double L0, mf_node *n, int64_t e, double ana,
                          mf_gradcheck_result *res, double *worst_score)
{
    double Lp, Lm, hp, hm, Lp2, Lm2, hp2, hm2;
    float *v = n->value + e;
    const double num = central(g, out, w, v, o->eps, count0, &Lp, &Lm, &hp, &hm);
    const double d = fabs(num - ana), mag = fmax(fabs(num), fabs(ana));
    const double tol = o->atol + o->rtol * mag, rel = mag > 0 ? d / mag : 0.0;
    res->checked++;
    if (!(d <= tol)) {
        int passes = 0;
        for (int k = 0; k < 2 && !passes; k++)
            passes = agrees(central(g, out, w, v, o->eps * (k ? 4.0 : 0.25), count0, &Lp2, &Lm2,
                                    &hp2, &hm2),
                            ana, o);
        if (passes)
            return;
        /* At a kink the one-sided slopes differ and the analytic gradient is one of them (a
         * subgradient): not a wrong gradient, but no test of it either. */
        const double left = (L0 - Lm) / hm, right = (Lp - L0) / hp;
        if (!agrees(left, right, o) && (agrees(left, ana, o) || agrees(right, ana, o))) {
            res->kinks++;
            return;
        }
        res->failed++;
    }
    if (d > res->max_abs_err || isnan(d))
        res->max_abs_err = d;
    if (rel > res->max_rel_err || isnan(rel))
        res->max_rel_err = rel;
    const double score = isnan(d) ? INFINITY : d - tol;
    if (score > *worst_score) {
        *worst_score = score;
        char fallback[32];
        const char *name = n->name;
        if (!*name) {
            snprintf(fallback, sizeof fallback, "node %d", n->id);
            name = fallback;
        }
        snprintf(res->worst, sizeof res->worst,
                 "%s[%lld]: numeric %.7g, analytic %.7g (abs err %.3g, rel err %.3g)", name,
                 (long long)e, num, ana, d, rel);
    }
}

typedef struct leaf_state {
    mf_node *node;
    float *analytic;    /* the analytic gradient, copied after the backward pass */
    float *saved_grad;  /* parameters only: the store's gradient before the check */
} leaf_state;

int mf_gradcheck(mf_graph *g, mf_node *out, const mf_gradcheck_opts *opts,
                 mf_gradcheck_result *res)
{
    mf_gradcheck_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    mf_gradcheck_opts o = opts ? *opts : (mf_gradcheck_opts){0};
    if (o.eps <= 0)
        o.eps = 1e-3;
    if (o.atol <= 0)
        o.atol = 1e-3;
    if (o.rtol <= 0)
        o.rtol = 1e-2;
    if (!g || !out || out->graph != g || !g->compiled) {
        snprintf(res->worst, sizeof res->worst,
                 "gradcheck: needs a compiled graph and one of its nodes");
        return -1;
    }
    if (!out->grad) {
        snprintf(res->worst, sizeof res->worst,
                 "gradcheck: the output takes no gradient (an eval graph, or no variable or "
                 "parameter reaches it)");
        return -1;
    }

    /* Every forward of the check runs with one forward count, so random ops (dropout) keep
     * one mask and the check differentiates a fixed function; the count is restored after. */
    const uint64_t count0 = g->forward_count;
    int n_leaves = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        n_leaves += n->grad && (n->op == MF_OP_VARIABLE || n->op == MF_OP_PARAM);
    }
    int rc = -1;
    int64_t *idx = NULL;
    float *w = malloc((size_t)out->numel * sizeof *w);
    leaf_state *leaves = calloc((size_t)n_leaves + 1, sizeof *leaves);
    if (!w || !leaves)
        goto oom;

    mf_rng rng;
    mf_rng_seed(&rng, o.seed);
    for (int64_t i = 0; i < out->numel; i++)
        w[i] = (float)(2.0 * mf_rng_uniform(&rng) - 1.0);

    /* parameter gradients accumulate: save and zero them (in order, so a parameter used by
     * two nodes is saved once with its real value and restored last) */
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        if (!(n->grad && (n->op == MF_OP_VARIABLE || n->op == MF_OP_PARAM)))
            continue;
        leaf_state *ls = &leaves[k++];
        size_t bytes = (size_t)n->numel * sizeof(float);
        ls->node = n;
        ls->analytic = malloc(bytes);
        if (!ls->analytic)
            goto oom;
        if (n->op == MF_OP_PARAM) {
            ls->saved_grad = malloc(bytes);
            if (!ls->saved_grad)
                goto oom;
            memcpy(ls->saved_grad, n->grad, bytes);
            memset(n->grad, 0, bytes);
        }
    }

    /* analytic: one backward pass seeded with w */
    g->forward_count = count0;
    mf_graph_forward(g);
    mfi_graph_backward_seeded(g, out, w);
    for (k = 0; k < n_leaves; k++)
        memcpy(leaves[k].analytic, leaves[k].node->grad,
               (size_t)leaves[k].node->numel * sizeof(float));

    /* numeric: central differences, L accumulated in double; L0 at the unperturbed point
     * gives the one-sided differences that recognise a kink (relu at 0, a max-pool tie) */
    g->forward_count = count0;
    mf_graph_forward(g);
    const double L0 = weighted_sum(out, w);
    double worst_score = -INFINITY;
    for (k = 0; k < n_leaves; k++) {
        mf_node *n = leaves[k].node;
        int64_t m = n->numel;
        if (o.max_elements_per_leaf > 0 && o.max_elements_per_leaf < n->numel) {
            m = o.max_elements_per_leaf;
            free(idx);
            idx = malloc((size_t)n->numel * sizeof *idx);
            if (!idx)
                goto oom;
            for (int64_t i = 0; i < n->numel; i++)
                idx[i] = i;
            for (int64_t i = 0; i < m; i++) { /* partial Fisher-Yates: m distinct elements */
                int64_t j = i + (int64_t)mf_rng_below(&rng, (uint64_t)(n->numel - i));
                int64_t t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
        }
        for (int64_t s = 0; s < m; s++) {
            const int64_t e = m < n->numel ? idx[s] : s;
            check_element(g, out, w, &o, count0, L0, n, e, leaves[k].analytic[e], res,
                          &worst_score);
        }
    }
    rc = res->failed ? -1 : 0;
    goto done;

oom:
    snprintf(res->worst, sizeof res->worst, "gradcheck: out of memory");
done:
    if (leaves) {
        for (k = n_leaves - 1; k >= 0; k--) {
            leaf_state *ls = &leaves[k];
            if (ls->saved_grad)
                memcpy(ls->node->grad, ls->saved_grad, (size_t)ls->node->numel * sizeof(float));
            free(ls->saved_grad);
            free(ls->analytic);
        }
    }
    /* values (and masks) as they were before the check, and the forward count unchanged */
    g->forward_count = count0 > 0 ? count0 - 1 : 0;
    mf_graph_forward(g);
    g->forward_count = count0;
    free(leaves);
    free(w);
    free(idx);
    return rc;
}

int mf_gradcheck_custom(const mf_custom_op *op, int n_in, const mf_shape *in_shapes,
                        const void *attr, size_t attr_size, const mf_gradcheck_opts *opts,
                        mf_gradcheck_result *res)
{
    mf_gradcheck_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!op || n_in < 1 || !in_shapes) {
        snprintf(res->worst, sizeof res->worst,
                 "gradcheck_custom: needs an op and at least one input shape");
        return -1;
    }
    int rc = -1;
    mf_graph *g = mf_graph_new(1);
    mf_node **in = calloc((size_t)n_in, sizeof *in);
    if (!g || !in) {
        snprintf(res->worst, sizeof res->worst, "gradcheck: out of memory");
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        char name[32];
        snprintf(name, sizeof name, "in%d", i);
        in[i] = mf_variable(g, name, in_shapes[i]);
    }
    mf_node *out = mf_custom(g, op, n_in, in, attr, attr_size);
    mf_error err;
    mf_error_clear(&err);
    if (!out || mf_graph_compile(g, &err)) {
        const char *msg = mf_graph_error(g) ? mf_graph_error(g) : err.msg;
        size_t len = strlen(msg); /* the error, cut to the result's buffer */
        if (len >= sizeof res->worst)
            len = sizeof res->worst - 1;
        memcpy(res->worst, msg, len);
        res->worst[len] = '\0';
        goto done;
    }
    mf_rng rng; /* inputs in (-1,1), seeded from the options' seed */
    mf_rng_seed_stream(&rng, opts ? opts->seed : 0, 0x637573746f6dull);
    for (int i = 0; i < n_in; i++) {
        float *v = mf_node_value(in[i]);
        for (int64_t j = 0; j < mf_node_numel(in[i]); j++)
            v[j] = (float)(2.0 * mf_rng_uniform(&rng) - 1.0);
    }
    rc = mf_gradcheck(g, out, opts, res);
done:
    free(in);
    mf_graph_free(g);
    return rc;
}
