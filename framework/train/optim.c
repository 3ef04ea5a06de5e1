#include <math.h>

#include <mmfuse/nn.h>


int mf_optim_moments(mf_optim_kind kind)
{
    return kind == MF_OPTIM_SGD ? 1 : 2;
}

void mf_optim_step(mf_optim *o, mf_params *ps)
{
    const int64_t n = mf_params_numel(ps);
    float *p = mf_params_values(ps), *g = mf_params_grads(ps);
    float *m = mf_params_moment(ps, 0), *v = mf_params_moment(ps, 1);
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
        }
        return;
    }
    // Adam: m, v moving averages of g and g², bias-corrected; AdamW decays p directly
    // (decoupled), Adam adds wd·p to the gradient (L2), as torch.optim.Adam/AdamW do.
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float c1 = (float)(1.0 - pow(o->beta1, (double)o->step));
    const float c2 = (float)sqrt(1.0 - pow(o->beta2, (double)o->step));
    const int decoupled = o->kind == MF_OPTIM_ADAMW;
    // independent per element, and the step's largest loop after the matrix products
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = decoupled ? g[i] : g[i] + wd * p[i];
        if (decoupled)
            p[i] -= lr * wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * (m[i] / c1) / (sqrtf(v[i]) / c2 + eps);
    }
}
