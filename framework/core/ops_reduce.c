/* Reductions and row-normalising ops: sum, mean (over an axis), sum_all, mean_all,
 * max (over an axis), logsumexp, softmax (last axis), l2_normalize (last axis).
 *
 * Determinism: every output element is reduced by one thread, in index order, with the
 * same arithmetic as the serial loop; threads only split independent outputs (rows, or
 * blocks of columns). sum_all sums a fixed number of chunks combined in order. So the bits
 * never depend on the thread count. Sums accumulate in double. */
#include <math.h>
#include <string.h>

#include "ops_common.h"

/* ---------------------------------------------------------------- constructors */
static mf_node *axis_op(mf_graph *g, mf_op op, mf_node *a, int axis, int keepdim)
{
    mfi_args args = {.i = {axis, keepdim != 0}};
    return mfi_node_new(g, op, 1, &a, &args);
}

mf_node *mf_sum(mf_graph *g, mf_node *a, int axis, int keepdim)
{
    return axis_op(g, MF_OP_SUM, a, axis, keepdim);
}

mf_node *mf_mean(mf_graph *g, mf_node *a, int axis, int keepdim)
{
    return axis_op(g, MF_OP_MEAN, a, axis, keepdim);
}

mf_node *mf_logsumexp(mf_graph *g, mf_node *a, int axis, int keepdim)
{
    return axis_op(g, MF_OP_LOGSUMEXP, a, axis, keepdim);
}

mf_node *mf_max(mf_graph *g, mf_node *a, int axis, int keepdim)
{
    return axis_op(g, MF_OP_MAX, a, axis, keepdim);
}

mf_node *mf_sum_all(mf_graph *g, mf_node *a)
{
    return mfi_node_new(g, MF_OP_SUM_ALL, 1, &a, NULL);
}

mf_node *mf_mean_all(mf_graph *g, mf_node *a)
{
    return mfi_node_new(g, MF_OP_MEAN_ALL, 1, &a, NULL);
}

mf_node *mf_softmax(mf_graph *g, mf_node *a)
{
    return mfi_node_new(g, MF_OP_SOFTMAX, 1, &a, NULL);
}

mf_node *mf_l2_normalize(mf_graph *g, mf_node *a, float eps)
{
    mfi_args args = {.f = {eps}};
    return mfi_node_new(g, MF_OP_L2_NORMALIZE, 1, &a, &args);
}

/* ---------------------------------------------------------------- helpers */
/* Σ x[0..n) in double over MFI_SUM_CHUNKS chunks combined in order. */
static double sum_fixed(const float *x, int64_t n)
{
    const int64_t chunk = (n + MFI_SUM_CHUNKS - 1) / MFI_SUM_CHUNKS;
    double part[MFI_SUM_CHUNKS];
    // fixed chunks summed in parallel, combined below in order: deterministic
    MFI_PARALLEL_FOR(n > MFI_OMP_MIN_ELEMS,
    for (int c = 0; c < MFI_SUM_CHUNKS; c++) {
        const int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++)
            s += x[i];
        part[c] = s;
    });
    double s = 0.0;
    for (int c = 0; c < MFI_SUM_CHUNKS; c++)
        s += part[c];
    return s;
}

/* MFI_SHAPE of an (axis, keepdim) reduction: iarg[0] axis as given, iarg[1] keepdim;
 * stores the normalised axis in iarg[2]. Returns -1 after failing the node. */
static int reduce_shape(mf_node *n)
{
    const mf_node *a = n->in[0];
    const int axis = mfi_axis(n->iarg[0], a->shape.ndim);
    if (axis < 0) {
        char s[MFI_SHAPE_STR];
        mfi_op_fail(n, "%s: axis %d is out of range for %s", mfi_op_name(n->op), n->iarg[0],
                    mfi_node_shape_str(a, s));
        return -1;
    }
    n->iarg[2] = axis;
    mf_shape s = a->shape;
    if (n->iarg[1]) {
        s.dim[axis] = 1;
    } else {
        for (int i = axis; i + 1 < s.ndim; i++)
            s.dim[i] = s.dim[i + 1];
        s.ndim--;
        if (s.ndim == 0) /* a 1-D input reduces to one element */
            s = mf_shape1(1);
    }
    n->shape = s;
    return 0;
}

/* Columns per block when reducing a non-last axis. */
#define COL_BLOCK 64

/* ---------------------------------------------------------------- sum, mean */
static void sum_mean(mf_node *n, int action, int mean)
{
    // a viewed as (outer, len, inner) around the axis; out is (outer, inner):
    // out[o,i] = f·Σ_k a[o,k,i] with f = 1 (sum) or 1/len (mean); da[o,k,i] += f·dout[o,i]
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
        reduce_shape(n);
        return;
    }
    int64_t outer, len, inner;
    mfi_axis_split(&a->shape, n->iarg[2], &outer, &len, &inner);
    const double f = mean ? 1.0 / (double)len : 1.0;
    const int64_t total = a->numel;
    switch (action) {
    case MFI_FORWARD: {
        const float *A = a->value;
        float *O = n->value;
        if (inner == 1) {
            const int par = MFI_OMP_ROWS_IF(outer, len, MFI_OMP_MIN_ELEMS);
            // independent rows, each summed in order by one thread
            MFI_PARALLEL_FOR(par,
            for (int64_t o = 0; o < outer; o++) {
                double s = 0.0;
                for (int64_t k = 0; k < len; k++)
                    s += A[o * len + k];
                O[o] = (float)(s * f);
            });
            return;
        }
        const int64_t blocks = (inner + COL_BLOCK - 1) / COL_BLOCK;
        const int par = outer * blocks > 1 && total > MFI_OMP_MIN_ELEMS;
        // independent (outer, column block) tasks, each summed over k in order by one thread
        MFI_PARALLEL_FOR(par,
        for (int64_t t = 0; t < outer * blocks; t++) {
            const int64_t o = t / blocks, j0 = (t % blocks) * COL_BLOCK;
            const int64_t w = inner - j0 < COL_BLOCK ? inner - j0 : COL_BLOCK;
            double acc[COL_BLOCK];
            for (int64_t j = 0; j < w; j++)
                acc[j] = 0.0;
            for (int64_t k = 0; k < len; k++) {
                const float *row = A + (o * len + k) * inner + j0;
                for (int64_t j = 0; j < w; j++)
                    acc[j] += row[j];
            }
            for (int64_t j = 0; j < w; j++)
                O[o * inner + j0 + j] = (float)(acc[j] * f);
        });
        return;
    }
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float *G = n->grad;
        float *D = a->grad;
        const float ff = (float)f;
        // independent (o,k) rows of a: split big tensors statically between threads
        MFI_PARALLEL_FOR(total > MFI_OMP_MIN_ELEMS,
        for (int64_t r = 0; r < outer * len; r++) {
            const float *g = G + (r / len) * inner;
            float *d = D + r * inner;
            for (int64_t j = 0; j < inner; j++)
                d[j] += ff * g[j];
        });
        return;
    }
    default:
        return;
    }
}

void mfi_op_sum(mf_node *n, int action) { sum_mean(n, action, 0); }
void mfi_op_mean(mf_node *n, int action) { sum_mean(n, action, 1); }

/* ---------------------------------------------------------------- sum_all, mean_all */
static void sum_mean_all(mf_node *n, int action, int mean)
{
    // a is any shape, out is (1): out = f·Σ a, f = 1 or 1/numel; da += f·dout
    mf_node *a = n->in[0];
    const int64_t total = a->numel;
    const double f = mean ? 1.0 / (double)total : 1.0;
    switch (action) {
    case MFI_SHAPE:
        n->shape = mf_shape1(1);
        return;
    case MFI_FORWARD:
        n->value[0] = (float)(sum_fixed(a->value, total) * f);
        return;
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float d = (float)(n->grad[0] * f);
        float *D = a->grad;
        // independent elements: split big tensors statically between threads
        MFI_PARALLEL_FOR(total > MFI_OMP_MIN_ELEMS,
        for (int64_t i = 0; i < total; i++)
            D[i] += d;);
        return;
    }
    default:
        return;
    }
}

void mfi_op_sum_all(mf_node *n, int action) { sum_mean_all(n, action, 0); }
void mfi_op_mean_all(mf_node *n, int action) { sum_mean_all(n, action, 1); }

/* ---------------------------------------------------------------- max */
void mfi_op_max(mf_node *n, int action)
{
    // a viewed as (outer, len, inner); out is (outer, inner): out[o,i] = a[o,k*,i] with k* the
    // first maximum along the axis (kept in scratch, int32 per output); da[o,k*,i] += dout[o,i]
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
        reduce_shape(n);
        return;
    }
    int64_t outer, len, inner;
    mfi_axis_split(&a->shape, n->iarg[2], &outer, &len, &inner);
    int32_t *arg = n->scratch;
    const int par = MFI_OMP_ROWS_IF(outer, len * inner, MFI_OMP_MIN_ELEMS);
    switch (action) {
    case MFI_SCRATCH:
        n->scratch_bytes = (size_t)n->numel * sizeof(int32_t);
        return;
    case MFI_FORWARD: {
        // independent outer slices; k runs outside i so both layouts stream memory
        MFI_PARALLEL_FOR(par,
        for (int64_t o = 0; o < outer; o++) {
            const float *A = a->value + o * len * inner;
            float *O = n->value + o * inner;
            int32_t *K = arg + o * inner;
            for (int64_t i = 0; i < inner; i++) {
                O[i] = A[i];
                K[i] = 0;
            }
            for (int64_t k = 1; k < len; k++)
                for (int64_t i = 0; i < inner; i++)
                    if (A[k * inner + i] > O[i]) { /* strict: the first maximum wins ties */
                        O[i] = A[k * inner + i];
                        K[i] = (int32_t)k;
                    }
        });
        return;
    }
    case MFI_BACKWARD:
        if (!a->grad)
            return;
        // one input element per output: independent
        MFI_PARALLEL_FOR(par,
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++)
                a->grad[(o * len + arg[o * inner + i]) * inner + i] += n->grad[o * inner + i];);
        return;
    default:
        return;
    }
}

/* ---------------------------------------------------------------- logsumexp */
void mfi_op_logsumexp(mf_node *n, int action)
{
    // a viewed as (outer, len, inner); out is (outer, inner):
    // out[o,i] = m + log Σ_k exp(a[o,k,i] - m), m = max_k a[o,k,i];
    // da[o,k,i] += dout[o,i]·exp(a[o,k,i] - out[o,i])  (the softmax along the axis)
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
        reduce_shape(n);
        return;
    }
    int64_t outer, len, inner;
    mfi_axis_split(&a->shape, n->iarg[2], &outer, &len, &inner);
    const int64_t tasks = outer * inner;
    const int par = MFI_OMP_ROWS_IF(tasks, len, MFI_OMP_MIN_ELEMS_HEAVY);
    switch (action) {
    case MFI_FORWARD: {
        const float *A = a->value;
        float *O = n->value;
        // independent outputs, each reduced in order by one thread
        MFI_PARALLEL_FOR(par,
        for (int64_t t = 0; t < tasks; t++) {
            const float *x = A + (t / inner) * len * inner + t % inner;
            float m = x[0];
            for (int64_t k = 1; k < len; k++)
                m = x[k * inner] > m ? x[k * inner] : m;
            if (isinf(m)) { /* all -inf (or one +inf): the max is the answer, not NaN */
                O[t] = m;
                continue;
            }
            double s = 0.0;
            for (int64_t k = 0; k < len; k++)
                s += expf(x[k * inner] - m);
            O[t] = m + (float)log(s);
        });
        return;
    }
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float *A = a->value, *Y = n->value, *G = n->grad;
        float *D = a->grad;
        // independent outputs, each a's column written by one thread
        MFI_PARALLEL_FOR(par,
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t off = (t / inner) * len * inner + t % inner;
            const float y = Y[t], g = G[t];
            for (int64_t k = 0; k < len; k++)
                D[off + k * inner] += g * expf(A[off + k * inner] - y);
        });
        return;
    }
    default:
        return;
    }
}

/* ---------------------------------------------------------------- softmax */
void mfi_op_softmax(mf_node *n, int action)
{
    // a is (…,K), out is (…,K): out[r,j] = exp(a[r,j] - m_r) / Σ_k exp(a[r,k] - m_r);
    // da[r,j] += out[r,j]·(dout[r,j] - Σ_k out[r,k]·dout[r,k])
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
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
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict x = A + r * K;
            float *restrict y = O + r * K;
            const float m = mfi_row_max(x, K);
            for (int64_t j = 0; j < K; j++) // vectorised (expf was 85 % of the op)
                y[j] = mfi_exp_nonpos(x[j] - m);
            double s = 0.0;
            for (int64_t j = 0; j < K; j++)
                s += y[j];
            const float inv = (float)(1.0 / s);
            for (int64_t j = 0; j < K; j++)
                y[j] *= inv;
        });
        return;
    }
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float *Y = n->value, *G = n->grad;
        float *D = a->grad;
        // independent rows: split big tensors statically between threads
        MFI_PARALLEL_FOR(par,
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict y = Y + r * K, *restrict dy = G + r * K;
            float *restrict dx = D + r * K;
            double s = 0.0;
            for (int64_t j = 0; j < K; j++)
                s += (double)y[j] * dy[j];
            const float sf = (float)s;
            for (int64_t j = 0; j < K; j++)
                dx[j] += y[j] * (dy[j] - sf);
        });
        return;
    }
    default:
        return;
    }
}

/* ---------------------------------------------------------------- l2_normalize */
void mfi_op_l2_normalize(mf_node *n, int action)
{
    // a is (…,D), out is (…,D): out[r] = a[r] / max(‖a[r]‖, eps).
    // Where ‖a[r]‖ > eps: da[r] += (dout[r] - out[r]·(out[r]·dout[r])) / ‖a[r]‖;
    // elsewhere the denominator is the constant eps: da[r] += dout[r] / eps.
    mf_node *a = n->in[0];
    const float eps = n->farg[0];
    if (action == MFI_SHAPE) {
        if (!(eps >= 0.0f)) {
            mfi_op_fail(n, "l2_normalize: eps must be >= 0, got %g", (double)eps);
            return;
        }
        n->shape = a->shape;
        return;
    }
    const int64_t D = a->shape.dim[a->shape.ndim - 1], rows = a->numel / D;
    const int par = MFI_OMP_ROWS_IF(rows, D, MFI_OMP_MIN_ELEMS);
    switch (action) {
    case MFI_FORWARD: {
        const float *A = a->value;
        float *O = n->value;
        // independent rows: split big tensors statically between threads
        MFI_PARALLEL_FOR(par,
        for (int64_t r = 0; r < rows; r++) {
            const float *x = A + r * D;
            float *y = O + r * D;
            double ss = 0.0;
            for (int64_t j = 0; j < D; j++)
                ss += (double)x[j] * x[j];
            const double norm = sqrt(ss);
            const float inv = (float)(1.0 / (norm > eps ? norm : (double)eps));
            for (int64_t j = 0; j < D; j++)
                y[j] = x[j] * inv;
        });
        return;
    }
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float *A = a->value, *Y = n->value, *G = n->grad;
        float *Dg = a->grad;
        // independent rows: split big tensors statically between threads
        MFI_PARALLEL_FOR(par,
        for (int64_t r = 0; r < rows; r++) {
            const float *x = A + r * D, *y = Y + r * D, *dy = G + r * D;
            float *dx = Dg + r * D;
            double ss = 0.0;
            for (int64_t j = 0; j < D; j++)
                ss += (double)x[j] * x[j];
            const double norm = sqrt(ss);
            if (norm > eps) {
                double yd = 0.0;
                for (int64_t j = 0; j < D; j++)
                    yd += (double)y[j] * dy[j];
                const float inv = (float)(1.0 / norm), ydf = (float)yd;
                for (int64_t j = 0; j < D; j++)
                    dx[j] += (dy[j] - y[j] * ydf) * inv;
            } else {
                const float inv = 1.0f / eps;
                for (int64_t j = 0; j < D; j++)
                    dx[j] += dy[j] * inv;
            }
        });
        return;
    }
    default:
        return;
    }
}
