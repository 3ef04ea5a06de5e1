#include <math.h>

#include <mmfuse/nn.h>

/* Elements per block of the update loops: threads split blocks, inner loops vectorise. */
#define OPTIM_BLOCK 4096


int mf_optim_moments(mf_optim_kind kind)
{
    return kind == MF_OPTIM_SGD ? 1 : 2;
}

void mf_optim_step(mf_optim *o, mf_params *ps)
{
    const int64_t n = mf_params_numel(ps);
    float *restrict p = mf_params_values(ps);
    float *restrict g = mf_params_grads(ps);
    float *restrict m = mf_params_moment(ps, 0), *restrict v = mf_params_moment(ps, 1);
    const float lr = (float)o->lr, wd = (float)o->weight_decay;
    o->step++;
    if (o->kind == MF_OPTIM_SGD) {
        // buf = μ·buf + (g + wd·p); p -= lr·buf  (torch.optim.SGD, dampening 0)
        const float mu = (float)o->momentum;
        const int first = o->step == 1;
        // independent per element: split the buffer statically across threads
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            m[i] = first ? gi : mu * m[i] + gi;
            p[i] -= lr * m[i];
            g[i] = 0; // consumed: the next backward starts from zero without another pass
        }
        return;
    }
    // Adam: m, v moving averages of g and g², bias-corrected; AdamW decays p directly
    // (decoupled), Adam adds wd·p to the gradient (L2), as torch.optim.Adam/AdamW do.
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float c1 = (float)(1.0 - pow(o->beta1, (double)o->step));
    const float c2 = (float)sqrt(1.0 - pow(o->beta2, (double)o->step));
    // AdamW decays p by lr·wd·p first; Adam adds wd·p to the gradient instead
    const float decay = o->kind == MF_OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
    const float l2 = o->kind == MF_OPTIM_ADAMW ? 0.0f : wd;
    const float step = lr / c1, eps_hat = eps * c2;
    const int64_t blocks = (n + OPTIM_BLOCK - 1) / OPTIM_BLOCK;
    // independent per element, and the step's largest loop after the matrix products: blocks
    // split statically between threads, each block's inner loop vectorised
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t hi = b * OPTIM_BLOCK + OPTIM_BLOCK < n ? b * OPTIM_BLOCK + OPTIM_BLOCK : n;
        for (int64_t i = b * OPTIM_BLOCK; i < hi; i++) {
            const float gi = g[i] + l2 * p[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            // m̂/(√v̂ + ε) with m̂ = m/c1, √v̂ = √v/c2, rearranged to one division
            p[i] = decay * p[i] - step * m[i] * c2 / (sqrtf(v[i]) + eps_hat);
            g[i] = 0; // consumed: the next backward starts from zero without another pass
        }
    }
}
