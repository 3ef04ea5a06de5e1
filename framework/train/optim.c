/* Optimisers over the collated parameter buffers: one pass over memory per step.
 *
 * The buffer is cut into blocks that threads split statically; a block is updated one
 * parameter's segment at a time, so each segment's loop vectorises with that parameter's
 * learning rate (lr_scale) and weight decay (0 when flagged MF_NO_DECAY) and is clamped to
 * its bounds while still in cache. The gradient norm is summed per block, in the same pass,
 * and the blocks' sums are added in order. Every element is computed by one thread with
 * fixed arithmetic: the bits do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include <mmfuse/nn.h>

#include "../core/core_internal.h" /* mfi_param_bounds */
#include "../core/team.h"          /* mfi_par, mfi_par_warm */
#include "experiment_internal.h"   /* mfi_params_grad_norm */

/* Elements per block of the update loops: threads split blocks, inner loops vectorise. */
#define OPTIM_BLOCK 4096
#define OPTIM_STACK_BLOCKS 2048
/* Lanes of the sum of squares: independent partial sums, so the loop vectorises without
 * reassociating (no -ffast-math) and the result stays one fixed order. */
#define LANES 16

int mf_optim_moments(mf_optim_kind kind)
{
    return kind == MF_OPTIM_SGD ? 1 : 2;
}

/* The update of one kind, constant over the step (per parameter: lr and decay). */
typedef struct optim_rule {
    mf_optim_kind kind;
    double base_lr; /* lr before rounding: times each parameter's scale */
    float lr, wd, mu, b1, b2, c1, c2, eps_hat, gs;
    float omb1, omb2; /* 1 - β from the double, as torch: 1 - 0.999f is 1.3e-5 off */
    int first; /* SGD's buffer starts as the gradient */
    int nesterov;
    const float *scale; /* lr factor per parameter, or NULL */
} optim_rule;

static double sumsq(const float *g, int64_t n)
{
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += g[i + l] * g[i + l];
    double s = 0;
    for (; i < n; i++)
        s += (double)g[i] * g[i];
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* No restrict here: with it gcc 12 scheduled this loop ~10 % slower on 800k parameters. */
static void sgd_run(const optim_rule *r, float lr, float wd, float *p, float *g, float *m,
                    int64_t n)
{
    // d = s·g + wd·p; buf = μ·buf + d; p -= lr·(nesterov ? d + μ·buf : buf)
    // (torch.optim.SGD, dampening 0)
    const float mu = r->mu, gs = r->gs; /* locals: the stores below cannot alias them */
    if (r->nesterov) {
        for (int64_t i = 0; i < n; i++) {
            const float d = gs * g[i] + wd * p[i];
            m[i] = r->first ? d : mu * m[i] + d;
            p[i] -= lr * (d + mu * m[i]);
            g[i] = 0;
        }
        return;
    }
    if (r->first) {
        for (int64_t i = 0; i < n; i++) {
            m[i] = gs * g[i] + wd * p[i];
            p[i] -= lr * m[i];
            g[i] = 0; // consumed: the next backward starts from zero without another pass
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        m[i] = mu * m[i] + (gs * g[i] + wd * p[i]);
        p[i] -= lr * m[i];
        g[i] = 0;
    }
}

static void adam_run(const optim_rule *r, float lr, float wd, float *restrict p,
                     float *restrict g, float *restrict m, float *restrict v, int64_t n)
{
    // Adam: m, v moving averages of g and g², bias-corrected; AdamW decays p directly by
    // lr·wd·p (decoupled), Adam adds wd·p to the gradient (L2), as torch.optim does
    const float decay = r->kind == MF_OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
    const float l2 = r->kind == MF_OPTIM_ADAMW ? 0.0f : wd;
    const float b1 = r->b1, b2 = r->b2, step = lr / r->c1, c2 = r->c2, eps_hat = r->eps_hat;
    const float gs = r->gs, omb1 = r->omb1, omb2 = r->omb2;
    for (int64_t i = 0; i < n; i++) {
        const float gi = gs * g[i] + l2 * p[i];
        m[i] = b1 * m[i] + omb1 * gi;
        v[i] = b2 * v[i] + omb2 * gi * gi;
        // m̂/(√v̂ + ε) with m̂ = m/c1, √v̂ = √v/c2, rearranged to one division
        p[i] = decay * p[i] - step * m[i] * c2 / (sqrtf(v[i]) + eps_hat);
        g[i] = 0; // consumed: the next backward starts from zero without another pass
    }
}

/* The parameter holding element `at` (offsets increase with the index). */
static int param_at(mf_params *ps, int64_t at)
{
    int lo = 0, hi = mf_params_size(ps) - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (mf_param_offset(mf_params_at(ps, mid)) <= at)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Elements [lo, hi) of the buffers, one parameter segment at a time; returns Σ g² of the
 * gradients it read (before grad_scale). */
static double update_block(const optim_rule *r, mf_params *ps, int64_t lo, int64_t hi)
{
    float *p = mf_params_values(ps), *g = mf_params_grads(ps);
    float *m = mf_params_moment(ps, 0), *v = mf_params_moment(ps, 1); /* v NULL for SGD */
    double ss = 0;
    for (int k = param_at(ps, lo); lo < hi; k++) {
        mf_param *q = mf_params_at(ps, k);
        int64_t end = mf_param_offset(q) + mf_shape_numel(mf_param_shape(q));
        end = end < hi ? end : hi;
        const float wd = mf_param_flags(q) & MF_NO_DECAY ? 0.0f : r->wd;
        const float lr = r->scale ? (float)(r->base_lr * r->scale[k]) : r->lr;
        ss += sumsq(g + lo, end - lo); // the segment is in cache for the update below
        if (r->kind == MF_OPTIM_SGD)
            sgd_run(r, lr, wd, p + lo, g + lo, m + lo, end - lo);
        else
            adam_run(r, lr, wd, p + lo, g + lo, m + lo, v + lo, end - lo);
        float bl, bh;
        if (mfi_param_bounds(q, &bl, &bh))
            for (int64_t i = lo; i < end; i++)
                p[i] = p[i] < bl ? bl : p[i] > bh ? bh : p[i];
        lo = end;
    }
    return ss;
}

/* Per-block sums of squares added in block order: the same bits for any thread count. */
static double add_in_order(const double *part, int64_t blocks)
{
    double s = 0;
    for (int64_t b = 0; b < blocks; b++)
        s += part[b];
    return sqrt(s);
}

void mf_optim_step(mf_optim *o, mf_params *ps)
{
    const int64_t n = mf_params_numel(ps);
    o->step++;
    optim_rule r = {
        .kind = o->kind,
        .base_lr = o->lr,
        .lr = (float)o->lr,
        .wd = (float)o->weight_decay,
        .mu = (float)o->momentum,
        .b1 = (float)o->beta1,
        .b2 = (float)o->beta2,
        .omb1 = (float)(1.0 - o->beta1),
        .omb2 = (float)(1.0 - o->beta2),
        .gs = o->grad_scale != 0 ? (float)o->grad_scale : 1.0f,
        .first = o->step == 1,
        .nesterov = o->nesterov,
        .scale = o->lr_scale,
    };
    if (o->kind != MF_OPTIM_SGD) {
        r.c1 = (float)(1.0 - pow(o->beta1, (double)o->step));
        r.c2 = (float)sqrt(1.0 - pow(o->beta2, (double)o->step));
        r.eps_hat = (float)o->eps * r.c2;
    }
    const int64_t blocks = (n + OPTIM_BLOCK - 1) / OPTIM_BLOCK;
    /* the partial sums on the stack up to 8M parameters: a step allocates nothing */
    double stack_part[OPTIM_STACK_BLOCKS];
    double *part =
        blocks <= OPTIM_STACK_BLOCKS ? stack_part : malloc((size_t)blocks * sizeof *part);
    if (!part) { /* no room for the partial sums: one thread, the same sum in the same order */
        double ss = 0;
        for (int64_t b = 0; b < blocks; b++)
            ss += update_block(&r, ps, b * OPTIM_BLOCK,
                               b * OPTIM_BLOCK + OPTIM_BLOCK < n ? b * OPTIM_BLOCK + OPTIM_BLOCK : n);
        o->grad_norm = sqrt(ss);
        return;
    }
    // independent per element, and the step's largest loop after the matrix products: blocks
    // split statically between threads, each segment's inner loop vectorised. Split warm from
    // 64k parameters, cold from 1M (tests/bench/optim.c: cold it loses up to 262k).
#pragma omp parallel for schedule(static) if (mfi_par_warm(n, 65536, 1 << 20))
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t lo = b * OPTIM_BLOCK;
        part[b] = update_block(&r, ps, lo, lo + OPTIM_BLOCK < n ? lo + OPTIM_BLOCK : n);
    }
    mfi_team_op_done(n);
    o->grad_norm = blocks ? add_in_order(part, blocks) : 0.0;
    if (part != stack_part)
        free(part);
}

/* ---------------------------------------------------------------- gradient norm, clipping */
/* Σ g² of elements [lo, hi), by parameter segment as update_block sums them. */
static double block_sumsq(mf_params *ps, int64_t lo, int64_t hi)
{
    const float *g = mf_params_grads(ps);
    double s = 0;
    for (int k = param_at(ps, lo); lo < hi; k++) {
        const mf_param *q = mf_params_at(ps, k);
        int64_t end = mf_param_offset(q) + mf_shape_numel(mf_param_shape(q));
        end = end < hi ? end : hi;
        s += sumsq(g + lo, end - lo);
        lo = end;
    }
    return s;
}

/* Σ g² per block, then the square root of the blocks' sum: the step's own order, so the
 * norm measured here equals the one mf_optim_step reports. */
double mfi_params_grad_norm(mf_params *ps)
{
    const int64_t n = mf_params_numel(ps), blocks = (n + OPTIM_BLOCK - 1) / OPTIM_BLOCK;
    /* the partial sums on the stack up to 8M parameters: a step allocates nothing */
    double stack_part[OPTIM_STACK_BLOCKS];
    double *part =
        blocks <= OPTIM_STACK_BLOCKS ? stack_part : malloc((size_t)blocks * sizeof *part);
    if (!part) { /* no room for the partial sums: one thread, the same order */
        double ss = 0;
        for (int64_t b = 0; b < blocks; b++)
            ss += block_sumsq(ps, b * OPTIM_BLOCK,
                              b * OPTIM_BLOCK + OPTIM_BLOCK < n ? b * OPTIM_BLOCK + OPTIM_BLOCK : n);
        return sqrt(ss);
    }
#pragma omp parallel for schedule(static) if (mfi_par_warm(n, 65536, 1 << 20))
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t lo = b * OPTIM_BLOCK;
        part[b] = block_sumsq(ps, lo, lo + OPTIM_BLOCK < n ? lo + OPTIM_BLOCK : n);
    }
    mfi_team_op_done(n);
    const double norm = blocks ? add_in_order(part, blocks) : 0.0;
    if (part != stack_part)
        free(part);
    return norm;
}

/* torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max/(norm + 1e-6)). */
double mfi_clip_coef(double norm, double max_norm)
{
    if (max_norm <= 0 || !isfinite(norm))
        return 1.0;
    const double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

double mf_params_clip_grad_norm(mf_params *ps, double max_norm)
{
    const double norm = mfi_params_grad_norm(ps), c = mfi_clip_coef(norm, max_norm);
    if (c < 1.0) {
        float *g = mf_params_grads(ps);
        const float cf = (float)c;
        const int64_t n = mf_params_numel(ps);
#pragma omp parallel for schedule(static) if (mfi_par_warm(n, 65536, 1 << 20))
        for (int64_t i = 0; i < n; i++)
            g[i] *= cf;
        mfi_team_op_done(n);
    }
    return norm;
}

/* ---------------------------------------------------------------- schedules */
static double schedule_after_warmup(const mf_lr_schedule *s, int64_t u, int64_t total)
{
    const double pi = 3.14159265358979323846;
    switch (s->kind) {
    case MF_LR_STEP: {
        const int64_t k = s->step_size > 0 ? u / s->step_size : 0;
        return pow(s->gamma, (double)k);
    }
    case MF_LR_COSINE:
        if (u >= total)
            return s->min_factor;
        return s->min_factor +
               (1.0 - s->min_factor) * (1.0 + cos(pi * (double)u / (double)total)) / 2.0;
    case MF_LR_LINEAR:
        if (u >= total)
            return s->min_factor;
        return 1.0 + (s->min_factor - 1.0) * (double)u / (double)total;
    default: return 1.0;
    }
}

double mf_lr_factor(const mf_lr_schedule *s, int64_t step, int64_t steps_per_epoch,
                    int64_t total_steps)
{
    int64_t u = step, total = total_steps;
    if (s->per_epoch) { // the epoch's index: constant within an epoch
        const int64_t spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
        u = step / spe;
        total = (total_steps + spe - 1) / spe;
    }
    if (u < s->warmup)
        return s->warmup_start + (1.0 - s->warmup_start) * (double)u / (double)s->warmup;
    return schedule_after_warmup(s, u - s->warmup, total - s->warmup);
}
