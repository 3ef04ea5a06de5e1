/* Neural-network ops on feature rows: layer normalisation, embedding lookup and gather.
 *
 * Parallel loops split rows (or, for reductions across rows, columns) statically, and each
 * output element is summed in a fixed order by one thread: results are bit-identical for
 * any thread count. */
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops_common.h"

/* Below this many elements a loop runs in one thread. */
#define MFI_PAR_MIN 32768

mf_node *mf_layer_norm(mf_graph *g, mf_node *x, mf_node *gamma, mf_node *beta, float eps)
{
    if (!g)
        return NULL;
    /* inputs: x, then gamma and beta when given; iarg[0], iarg[1] say which are present */
    mf_node *in[3] = {x, NULL, NULL};
    int n_in = 1;
    if (gamma)
        in[n_in++] = gamma;
    if (beta)
        in[n_in++] = beta;
    mfi_args args = {.i = {gamma != NULL, beta != NULL}, .f = {eps}};
    return mfi_node_new(g, MF_OP_LAYER_NORM, n_in, in, &args);
}

mf_node *mf_embedding(mf_graph *g, mf_node *table, mf_node *idx)
{
    mf_node *in[2] = {table, idx};
    return mfi_node_new(g, MF_OP_EMBEDDING, 2, in, NULL);
}

/* ---------------------------------------------------------------- layer_norm */
static int layer_norm_shape(mf_node *n)
{
    const mf_node *x = n->in[0];
    const float eps = n->farg[0];
    const int64_t D = x->shape.dim[x->shape.ndim - 1];
    char sx[MFI_SHAPE_STR], sp[MFI_SHAPE_STR];
    mfi_node_shape_str(x, sx);
    for (int k = 1; k < n->n_in; k++) {
        const mf_node *p = n->in[k];
        const char *what = k == 1 && n->iarg[0] ? "gamma" : "beta";
        if (p->shape.ndim != 1 || p->shape.dim[0] != D) {
            mfi_op_fail(n, "layer_norm: %s must be (%lld) to match the last axis of x %s: %s %s",
                        what, (long long)D, sx, what, mfi_node_shape_str(p, sp));
            return -1;
        }
    }
    if (!(eps >= 0.0f) || isinf(eps)) {
        mfi_op_fail(n, "layer_norm: eps must be finite and >= 0: %g", (double)eps);
        return -1;
    }
    n->shape = x->shape;
    return 0;
}

void mfi_op_layer_norm(mf_node *n, int action)
{
    // x is (…,D) seen as (R,D); gamma, beta are (D) or absent; out is (…,D):
    // out[r,i] = (x[r,i] - mean_r)·rstd_r·gamma[i] + beta[i], rstd_r = 1/sqrt(var_r + eps)
    // (biased variance); scratch keeps mean (R) then rstd (R) for the backward pass
    mf_node *x = n->in[0];
    mf_node *gamma = n->iarg[0] ? n->in[1] : NULL;
    mf_node *beta = n->iarg[1] ? n->in[1 + n->iarg[0]] : NULL;
    if (action == MFI_SHAPE) {
        layer_norm_shape(n);
        return;
    }
    const int64_t D = n->shape.dim[n->shape.ndim - 1], R = n->numel / D;
    float *mean = n->scratch, *rstd = mean ? mean + R : NULL;
    // restrict copies: through gamma-> and beta-> gcc reloads the pointers after every store
    // and left the row loops scalar (3-4x slower on (2048,128))
    const float *restrict gv = gamma ? gamma->value : NULL, *restrict bv = beta ? beta->value : NULL;
    switch (action) {
    case MFI_SCRATCH:
        n->scratch_bytes = (size_t)(2 * R) * sizeof(float);
        return;
    case MFI_FORWARD: {
        const float eps = n->farg[0];
        // rows are independent
        MFI_PARALLEL_FOR(n->numel >= MFI_PAR_MIN,
        for (int64_t r = 0; r < R; r++) {
            const float *restrict xr = x->value + r * D;
            float *restrict yr = n->value + r * D;
            float m = 0.0f;
            MFI_OMP(omp simd reduction(+ : m)) // order fixed at compile time (vector width)
            for (int64_t i = 0; i < D; i++)
                m += xr[i];
            m /= (float)D;
            float v = 0.0f;
            MFI_OMP(omp simd reduction(+ : v))
            for (int64_t i = 0; i < D; i++) {
                const float c = xr[i] - m;
                v += c * c;
            }
            v /= (float)D;
            const float rs = 1.0f / sqrtf(v + eps);
            mean[r] = m;
            rstd[r] = rs;
            for (int64_t i = 0; i < D; i++) {
                float y = (xr[i] - m) * rs;
                if (gv)
                    y *= gv[i];
                if (bv)
                    y += bv[i];
                yr[i] = y;
            }
        });
        return;
    }
    case MFI_BACKWARD: {
        if (x->grad) {
            // rows are independent: dx = rstd·(g - mean(g) - xhat·mean(g·xhat)),
            // g = dout·gamma, xhat = (x-mean)·rstd
            MFI_PARALLEL_FOR(n->numel >= MFI_PAR_MIN,
            for (int64_t r = 0; r < R; r++) {
                const float *restrict xr = x->value + r * D, *restrict dy = n->grad + r * D;
                float *restrict dx = x->grad + r * D;
                const float m = mean[r], rs = rstd[r];
                float sg = 0.0f, sgx = 0.0f;
                MFI_OMP(omp simd reduction(+ : sg, sgx)) // order fixed at compile time
                for (int64_t i = 0; i < D; i++) {
                    const float gi = gv ? dy[i] * gv[i] : dy[i];
                    sg += gi;
                    sgx += gi * (xr[i] - m) * rs;
                }
                sg /= (float)D;
                sgx /= (float)D;
                for (int64_t i = 0; i < D; i++) {
                    const float gi = gv ? dy[i] * gv[i] : dy[i];
                    dx[i] += rs * (gi - sg - (xr[i] - m) * rs * sgx);
                }
            });
        }
        const int dg = gamma && gamma->grad, db = beta && beta->grad;
        if (!dg && !db)
            return;
        // dgamma[i] += Σ_r dout[r,i]·xhat[r,i], dbeta[i] += Σ_r dout[r,i]: columns are split
        // between threads, each column summed over the rows in order
        MFI_OMP(omp parallel if (mfi_par(n->numel >= MFI_PAR_MIN)))
        {
            int64_t i0 = 0, i1 = D;
#ifdef _OPENMP
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            i0 = D * t / nt;
            i1 = D * (t + 1) / nt;
#endif
            float *restrict dgv = dg ? gamma->grad : NULL, *restrict dbv = db ? beta->grad : NULL;
            for (int64_t r = 0; r < R; r++) {
                const float *restrict xr = x->value + r * D, *restrict dy = n->grad + r * D;
                const float m = mean[r], rs = rstd[r];
                if (dgv)
                    for (int64_t i = i0; i < i1; i++)
                        dgv[i] += dy[i] * ((xr[i] - m) * rs);
                if (dbv)
                    for (int64_t i = i0; i < i1; i++)
                        dbv[i] += dy[i];
            }
        }
        return;
    }
    default:
        return;
    }
}

/* ---------------------------------------------------------------- embedding */
/* The row an index picks, or -1 when it is out of range (or NaN): such an index reads as a
 * row of zeros and gets no gradient. The forward pass cannot report errors, and the data
 * layer validates indices; this only guarantees that nothing is read or written out of
 * bounds. Fractional indices are truncated toward zero, like a C cast. */
static int64_t embedding_row(float f, int64_t V)
{
    return f >= 0.0f && f < (float)V ? (int64_t)f : -1;
}

void mfi_op_embedding(mf_node *n, int action)
{
    // table is (V,D), idx has any shape (…) holding N row indices as floats;
    // out is (…,D): out[k,:] = table[idx[k],:]
    mf_node *table = n->in[0], *idx = n->in[1];
    switch (action) {
    case MFI_SHAPE: {
        char st[MFI_SHAPE_STR], si[MFI_SHAPE_STR];
        mfi_node_shape_str(table, st);
        mfi_node_shape_str(idx, si);
        if (table->shape.ndim != 2) {
            mfi_op_fail(n, "embedding: table must be 2-D (V,D): table %s", st);
            return;
        }
        if (idx->shape.ndim + 1 > MF_MAX_DIMS) {
            mfi_op_fail(n, "embedding: idx %s has too many axes: the output (idx shape…,D) "
                           "allows at most %d", si, MF_MAX_DIMS);
            return;
        }
        n->shape = idx->shape;
        n->shape.dim[n->shape.ndim++] = table->shape.dim[1];
        return;
    }
    case MFI_FORWARD: {
        const int64_t V = table->shape.dim[0], D = table->shape.dim[1], N = idx->numel;
        // rows are independent
        MFI_PARALLEL_FOR(n->numel >= MFI_PAR_MIN,
        for (int64_t k = 0; k < N; k++) {
            const int64_t r = embedding_row(idx->value[k], V);
            float *o = n->value + k * D;
            if (r >= 0)
                memcpy(o, table->value + r * D, (size_t)D * sizeof(float));
            else
                memset(o, 0, (size_t)D * sizeof(float));
        });
        return;
    }
    case MFI_BACKWARD: {
        if (!table->grad)
            return;
        const int64_t V = table->shape.dim[0], D = table->shape.dim[1], N = idx->numel;
        // dtable[idx[k],:] += dout[k,:]: repeated indices add up, so columns (not rows) are
        // split between threads, each adding the picked rows in index order
        MFI_OMP(omp parallel if (mfi_par(n->numel >= MFI_PAR_MIN)))
        {
            int64_t j0 = 0, j1 = D;
#ifdef _OPENMP
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            j0 = D * t / nt;
            j1 = D * (t + 1) / nt;
#endif
            for (int64_t k = 0; k < N; k++) {
                const int64_t r = embedding_row(idx->value[k], V);
                if (r < 0)
                    continue;
                float *dt = table->grad + r * D;
                const float *dy = n->grad + k * D;
                for (int64_t j = j0; j < j1; j++)
                    dt[j] += dy[j];
            }
        }
        return;
    }
    default:
        return;
    }
}

/* ---------------------------------------------------------------- gather */
mf_node *mf_gather(mf_graph *g, mf_node *a, int axis, mf_node *idx)
{
    mf_node *in[2] = {a, idx};
    mfi_args args = {.i = {axis}};
    return mfi_node_new(g, MF_OP_GATHER, 2, in, &args);
}

static void gather_shape(mf_node *n)
{
    const mf_node *a = n->in[0], *idx = n->in[1];
    const int axis = mfi_axis(n->iarg[0], a->shape.ndim);
    char sa[MFI_SHAPE_STR], si[MFI_SHAPE_STR];
    mfi_node_shape_str(a, sa);
    mfi_node_shape_str(idx, si);
    if (axis < 0) {
        mfi_op_fail(n, "gather: axis %d is out of range for %s", n->iarg[0], sa);
        return;
    }
    int ok = idx->shape.ndim == a->shape.ndim;
    for (int k = 0; ok && k < a->shape.ndim; k++)
        ok = k == axis || idx->shape.dim[k] <= a->shape.dim[k];
    if (!ok) {
        mfi_op_fail(n, "gather: idx %s must have the %d axes of a %s, each but axis %d no "
                       "larger than a's", si, a->shape.ndim, sa, axis);
        return;
    }
    n->iarg[1] = axis + (MF_MAX_DIMS - a->shape.ndim); /* the axis in the 4-D view */
    n->shape = idx->shape;
}

void mfi_op_gather(mf_node *n, int action)
{
    // a (…), idx (…) of a's ndim → out of idx's shape; with both viewed as 4-D (leading 1s):
    // out[c] = a[c with c[axis] = idx[c]]; an index outside [0, a.dim[axis]) reads 0.
    // da[c with c[axis] = idx[c]] += dout[c], serially: repeated indices add in index order
    mf_node *a = n->in[0], *idx = n->in[1];
    if (action == MFI_SHAPE) {
        gather_shape(n);
        return;
    }
    if (action != MFI_FORWARD && (action != MFI_BACKWARD || !a->grad))
        return;
    const int ax = n->iarg[1], pad = MF_MAX_DIMS - a->shape.ndim;
    int64_t d[4], as[4], stride = 1;
    for (int k = 3; k >= 0; k--) {
        d[k] = k < pad ? 1 : idx->shape.dim[k - pad];
        as[k] = stride;
        stride *= k < pad ? 1 : a->shape.dim[k - pad];
    }
    const int64_t len = ax >= pad ? a->shape.dim[ax - pad] : 1, rows = d[0] * d[1] * d[2];
    const int fwd = action == MFI_FORWARD;
    // forward: independent rows of out; backward: one thread (see above)
    MFI_PARALLEL_FOR(fwd && n->numel >= MFI_PAR_MIN,
    for (int64_t r = 0; r < rows; r++) {
        int64_t c[4] = {r / (d[1] * d[2]), (r / d[2]) % d[1], r % d[2], 0};
        for (int64_t j = 0; j < d[3]; j++) {
            c[3] = j;
            const float f = idx->value[r * d[3] + j];
            const int64_t pick = embedding_row(f, len); /* -1 outside [0, len) */
            int64_t off = 0;
            for (int k = 0; k < 4; k++)
                off += (k == ax ? pick : c[k]) * as[k];
            if (fwd)
                n->value[r * d[3] + j] = pick >= 0 ? a->value[off] : 0.0f;
            else if (pick >= 0)
                a->grad[off] += n->grad[r * d[3] + j];
        }
    });
}
