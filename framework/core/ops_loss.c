/* Loss ops: log-softmax over the last axis, mean negative log-likelihood. */
#include <math.h>

#include "ops_common.h"

mf_node *mf_log_softmax(mf_graph *g, mf_node *a)
{
    return mfi_node_new(g, MF_OP_LOG_SOFTMAX, 1, &a, NULL);
}

mf_node *mf_nll(mf_graph *g, mf_node *logp, mf_node *target)
{
    mf_node *in[2] = {logp, target};
    return mfi_node_new(g, MF_OP_NLL, 2, in, NULL);
}

mf_node *mf_cross_entropy(mf_graph *g, mf_node *logits, mf_node *target)
{
    return mf_nll(g, mf_log_softmax(g, logits), target);
}

void mfi_op_log_softmax(mf_node *n, int action)
{
    // a is (…,K) with a batch axis first, out is (…,K); for each row r of the last axis:
    // out[r,j] = a[r,j] - m_r - log Σ_j exp(a[r,j] - m_r), m_r = max_j a[r,j]
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
        if (a->shape.ndim < 2) { /* the batch axis comes first (graph.h's axis convention) */
            char s[MFI_SHAPE_STR];
            mfi_op_fail(n, "log_softmax: input must be 2-D (B,K), got %s",
                        mfi_node_shape_str(a, s));
            return;
        }
        n->shape = a->shape;
        return;
    }
    const int64_t K = a->shape.dim[a->shape.ndim - 1], rows = a->numel / K;
    const int par = MFI_OMP_ROWS_IF(rows, K, MFI_OMP_MIN_ELEMS_HEAVY);
    switch (action) {
    case MFI_FORWARD: {
        const float *A = a->value;
        float *O = n->value;
        // independent rows: split big tensors statically between threads
        MFI_PARALLEL_FOR(par,
        for (int64_t i = 0; i < rows; i++) {
            const float *restrict x = A + i * K;
            float *restrict y = O + i * K;
            const float mx = mfi_row_max(x, K);
            for (int64_t j = 0; j < K; j++) // y holds e^(x-m) for a moment: vectorised
                y[j] = mfi_exp_nonpos(x[j] - mx);
            double sum = 0.0;
            for (int64_t j = 0; j < K; j++)
                sum += y[j];
            const float ls = (float)log(sum);
            for (int64_t j = 0; j < K; j++)
                y[j] = (x[j] - mx) - ls; /* not x - (mx + ls): keeps precision for large x */
        });
        return;
    }
    case MFI_BACKWARD: {
        // da[r,j] += dout[r,j] - softmax[r,j]·Σ_k dout[r,k]
        if (!a->grad)
            return;
        const float *Y = n->value, *G = n->grad;
        float *D = a->grad;
        // independent rows: split big tensors statically between threads
        MFI_PARALLEL_FOR(par,
        for (int64_t i = 0; i < rows; i++) {
            const float *y = Y + i * K, *dy = G + i * K;
            float *dx = D + i * K;
            float s = 0.0f;
            for (int64_t j = 0; j < K; j++)
                s += dy[j];
            for (int64_t j = 0; j < K; j++)
                dx[j] += dy[j] - mfi_exp_nonpos(y[j]) * s; /* y <= 0 */
        });
        return;
    }
    default:
        return;
    }
}

void mfi_op_nll(mf_node *n, int action)
{
    // logp is (B,K), target holds B class indices (as floats, trusted), out is (1):
    // out = -1/B Σ_i logp[i, target[i]]
    mf_node *logp = n->in[0], *target = n->in[1];
    switch (action) {
    case MFI_SHAPE: {
        char sl[MFI_SHAPE_STR], st[MFI_SHAPE_STR];
        mfi_node_shape_str(logp, sl);
        mfi_node_shape_str(target, st);
        if (logp->shape.ndim != 2) {
            mfi_op_fail(n, "nll: logp must be 2-D (B,K), got %s", sl);
            return;
        }
        if (mf_shape_numel(&target->shape) != logp->shape.dim[0]) {
            mfi_op_fail(n, "nll: target must hold one class index per row of logp: logp %s, target %s",
                        sl, st);
            return;
        }
        n->shape = mf_shape1(1);
        return;
    }
    case MFI_FORWARD: {
        const int64_t B = logp->shape.dim[0], K = logp->shape.dim[1];
        double sum = 0.0;
        for (int64_t i = 0; i < B; i++)
            sum += logp->value[i * K + (int64_t)target->value[i]];
        n->value[0] = (float)(-sum / (double)B);
        return;
    }
    case MFI_BACKWARD: {
        // dlogp[i, target[i]] += -dout / B; targets take no gradient
        if (!logp->grad)
            return;
        const int64_t B = logp->shape.dim[0], K = logp->shape.dim[1];
        const float d = -n->grad[0] / (float)B;
        for (int64_t i = 0; i < B; i++)
            logp->grad[i * K + (int64_t)target->value[i]] += d;
        return;
    }
    default:
        return;
    }
}
