/* Optimisers over the collated parameter buffers: one pass over memory per step.
 *
 * The buffer is cut into blocks that threads split statically; a block is updated one
 * parameter's segment at a time, so each segment's loop vectorises with that parameter's
 * weight decay (0 when flagged MF_NO_DECAY) and is clamped to its bounds while still in
 * cache. Every element is computed by one thread with fixed arithmetic: the bits do not
 * depend on the thread count. */
#include <math.h>

#include <mmfuse/nn.h>

#include "../core/core_internal.h" /* mfi_param_bounds */

/* Elements per block of the update loops: threads split blocks, inner loops vectorise. */
#define OPTIM_BLOCK 4096

int mf_optim_moments(mf_optim_kind kind)
{
    return kind == MF_OPTIM_SGD ? 1 : 2;
}

/* The update of one kind, constant over the step. */
typedef struct optim_rule {
    mf_optim_kind kind;
    float lr, wd, mu, b1, b2, step, c2, eps_hat;
    int first; /* SGD's buffer starts as the gradient */
} optim_rule;

/* No restrict here: with it gcc 12 scheduled this loop ~10 % slower on 800k parameters. */
static void sgd_run(const optim_rule *r, float wd, float *p, float *g, float *m, int64_t n)
{
    // buf = μ·buf + (g + wd·p); p -= lr·buf  (torch.optim.SGD, dampening 0)
    const float mu = r->mu, lr = r->lr; /* locals: the stores below cannot alias them */
    if (r->first) {
        for (int64_t i = 0; i < n; i++) {
            m[i] = g[i] + wd * p[i];
            p[i] -= lr * m[i];
            g[i] = 0; // consumed: the next backward starts from zero without another pass
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        m[i] = mu * m[i] + (g[i] + wd * p[i]);
        p[i] -= lr * m[i];
        g[i] = 0;
    }
}

static void adam_run(const optim_rule *r, float wd, float *restrict p, float *restrict g,
                     float *restrict m, float *restrict v, int64_t n)
{
    // Adam: m, v moving averages of g and g², bias-corrected; AdamW decays p directly by
    // lr·wd·p (decoupled), Adam adds wd·p to the gradient (L2), as torch.optim does
    const float decay = r->kind == MF_OPTIM_ADAMW ? 1.0f - r->lr * wd : 1.0f;
    const float l2 = r->kind == MF_OPTIM_ADAMW ? 0.0f : wd;
    const float b1 = r->b1, b2 = r->b2, step = r->step, c2 = r->c2, eps_hat = r->eps_hat;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] + l2 * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
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

/* Elements [lo, hi) of the buffers, one parameter segment at a time. */
static void update_block(const optim_rule *r, mf_params *ps, int64_t lo, int64_t hi)
{
    float *p = mf_params_values(ps), *g = mf_params_grads(ps);
    float *m = mf_params_moment(ps, 0), *v = mf_params_moment(ps, 1); /* v NULL for SGD */
    for (int k = param_at(ps, lo); lo < hi; k++) {
        mf_param *q = mf_params_at(ps, k);
        int64_t end = mf_param_offset(q) + mf_shape_numel(mf_param_shape(q));
        end = end < hi ? end : hi;
        const float wd = mf_param_flags(q) & MF_NO_DECAY ? 0.0f : r->wd;
        if (r->kind == MF_OPTIM_SGD)
            sgd_run(r, wd, p + lo, g + lo, m + lo, end - lo);
        else
            adam_run(r, wd, p + lo, g + lo, m + lo, v + lo, end - lo);
        float bl, bh;
        if (mfi_param_bounds(q, &bl, &bh))
            for (int64_t i = lo; i < end; i++)
                p[i] = p[i] < bl ? bl : p[i] > bh ? bh : p[i];
        lo = end;
    }
}

void mf_optim_step(mf_optim *o, mf_params *ps)
{
    const int64_t n = mf_params_numel(ps);
    o->step++;
    optim_rule r = {
        .kind = o->kind,
        .lr = (float)o->lr,
        .wd = (float)o->weight_decay,
        .mu = (float)o->momentum,
        .b1 = (float)o->beta1,
        .b2 = (float)o->beta2,
        .first = o->step == 1,
    };
    if (o->kind != MF_OPTIM_SGD) {
        const float c1 = (float)(1.0 - pow(o->beta1, (double)o->step));
        r.c2 = (float)sqrt(1.0 - pow(o->beta2, (double)o->step));
        r.step = r.lr / c1;
        r.eps_hat = (float)o->eps * r.c2;
    }
    const int64_t blocks = (n + OPTIM_BLOCK - 1) / OPTIM_BLOCK;
    // independent per element, and the step's largest loop after the matrix products: blocks
    // split statically between threads, each segment's inner loop vectorised
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t lo = b * OPTIM_BLOCK;
        update_block(&r, ps, lo, lo + OPTIM_BLOCK < n ? lo + OPTIM_BLOCK : n);
    }
}
