/* Linear algebra ops: matmul and batched matmul through mfi_gemm (cblas_sgemm, row-major). */
#include <limits.h>

#include "core_internal.h"
#include "gemm.h"

mf_node *mf_matmul(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b)
{
    mf_node *in[2] = {a, b};
    mfi_args args = {.i = {trans_a != 0, trans_b != 0}};
    return mfi_node_new(g, MF_OP_MATMUL, 2, in, &args);
}

void mfi_op_matmul(mf_node *n, int action)
{
    // a is (M,K) [trans_a: (K,M)], b is (K,N) [trans_b: (N,K)], out is (M,N)
    mf_node *a = n->in[0], *b = n->in[1];
    int ta = n->iarg[0], tb = n->iarg[1];
    if (action == MFI_SHAPE) {
        char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
        mfi_node_shape_str(a, sa);
        mfi_node_shape_str(b, sb);
        if (a->shape.ndim != 2 || b->shape.ndim != 2) {
            mfi_op_fail(n, "matmul: both inputs must be 2-D: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                        tb ? "^T" : "");
            return;
        }
        int64_t ka = ta ? a->shape.dim[0] : a->shape.dim[1];
        int64_t kb = tb ? b->shape.dim[1] : b->shape.dim[0];
        if (ka != kb) {
            mfi_op_fail(n, "matmul: inner dimensions differ: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                        tb ? "^T" : "");
            return;
        }
        for (int i = 0; i < 2; i++)
            if (a->shape.dim[i] > INT_MAX || b->shape.dim[i] > INT_MAX) {
                mfi_op_fail(n, "matmul: dimensions exceed the BLAS limit of %d: %s x %s", INT_MAX,
                            sa, sb);
                return;
            }
        n->shape = mf_shape2(ta ? a->shape.dim[1] : a->shape.dim[0],
                             tb ? b->shape.dim[0] : b->shape.dim[1]);
        return;
    }
    int64_t M = n->shape.dim[0], N = n->shape.dim[1];
    int64_t K = ta ? a->shape.dim[0] : a->shape.dim[1];
    int64_t lda = a->shape.dim[1], ldb = b->shape.dim[1]; /* row lengths as stored */
    switch (action) {
    case MFI_FORWARD:
        // out = op(a)·op(b)
        mfi_gemm(ta, tb, M, N, K, a->value, lda, b->value, ldb, 0.0f, n->value, N);
        break;
    case MFI_BACKWARD:
        if (a->grad) {
            if (!ta) // da (M,K) += dout (M,N) · op(b)ᵀ (N,K)
                mfi_gemm(0, !tb, M, K, N, n->grad, N, b->value, ldb, 1.0f, a->grad, K);
            else // da (K,M) += op(b) (K,N) · doutᵀ (N,M)
                mfi_gemm(tb, 1, K, M, N, b->value, ldb, n->grad, N, 1.0f, a->grad, M);
        }
        if (b->grad) {
            if (!tb) // db (K,N) += op(a)ᵀ (K,M) · dout (M,N)
                mfi_gemm(!ta, 0, K, N, M, a->value, lda, n->grad, N, 1.0f, b->grad, N);
            else // db (N,K) += doutᵀ (N,M) · op(a) (M,K)
                mfi_gemm(1, ta, N, K, M, n->grad, N, a->value, lda, 1.0f, b->grad, K);
        }
        break;
    default:
        break;
    }
}

mf_node *mf_bmm(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b)
{
    mf_node *in[2] = {a, b};
    mfi_args args = {.i = {trans_a != 0, trans_b != 0}};
    return mfi_node_new(g, MF_OP_BMM, 2, in, &args);
}

void mfi_op_bmm(mf_node *n, int action)
{
    // a is (…,M,K) [trans_a: (…,K,M)], b is (…,K,N) [trans_b: (…,N,K)], out is (…,M,N),
    // with equal leading axes (…) of one or two dimensions: one matmul per leading index
    mf_node *a = n->in[0], *b = n->in[1];
    int ta = n->iarg[0], tb = n->iarg[1];
    const int nd = a->shape.ndim;
    if (action == MFI_SHAPE) {
        char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
        mfi_node_shape_str(a, sa);
        mfi_node_shape_str(b, sb);
        const char *ma = ta ? "^T" : "", *mb = tb ? "^T" : "";
        if (nd < 3 || nd > 4 || b->shape.ndim != nd) {
            mfi_op_fail(n, "bmm: inputs must both be 3-D or both 4-D: %s%s x %s%s", sa, ma, sb, mb);
            return;
        }
        for (int i = 0; i < nd - 2; i++)
            if (a->shape.dim[i] != b->shape.dim[i]) {
                mfi_op_fail(n, "bmm: batch axes differ: %s%s x %s%s", sa, ma, sb, mb);
                return;
            }
        const int64_t *da = a->shape.dim + nd - 2, *db = b->shape.dim + nd - 2;
        if ((ta ? da[0] : da[1]) != (tb ? db[1] : db[0])) {
            mfi_op_fail(n, "bmm: inner dimensions differ: %s%s x %s%s", sa, ma, sb, mb);
            return;
        }
        for (int i = 0; i < 2; i++)
            if (da[i] > INT_MAX || db[i] > INT_MAX) {
                mfi_op_fail(n, "bmm: dimensions exceed the BLAS limit of %d: %s x %s", INT_MAX,
                            sa, sb);
                return;
            }
        n->shape = a->shape;
        n->shape.dim[nd - 2] = ta ? da[1] : da[0];
        n->shape.dim[nd - 1] = tb ? db[0] : db[1];
        return;
    }
    const int64_t M = n->shape.dim[nd - 2], N = n->shape.dim[nd - 1];
    const int64_t K = ta ? a->shape.dim[nd - 2] : a->shape.dim[nd - 1];
    const int64_t lda = a->shape.dim[nd - 1], ldb = b->shape.dim[nd - 1];
    const int64_t sa = M * K, sb = K * N, sc = M * N; /* matrix strides */
    const int64_t batch = n->numel / sc;
    switch (action) {
    case MFI_FORWARD:
        for (int64_t i = 0; i < batch; i++) // out[i] = op(a[i])·op(b[i])
            mfi_gemm(ta, tb, M, N, K, a->value + i * sa, lda, b->value + i * sb, ldb, 0.0f,
                 n->value + i * sc, N);
        break;
    case MFI_BACKWARD:
        for (int64_t i = 0; i < batch; i++) {
            const float *av = a->value + i * sa, *bv = b->value + i * sb, *dc = n->grad + i * sc;
            if (a->grad) {
                float *da = a->grad + i * sa;
                if (!ta) // da (M,K) += dout (M,N) · op(b)ᵀ (N,K)
                    mfi_gemm(0, !tb, M, K, N, dc, N, bv, ldb, 1.0f, da, K);
                else // da (K,M) += op(b) (K,N) · doutᵀ (N,M)
                    mfi_gemm(tb, 1, K, M, N, bv, ldb, dc, N, 1.0f, da, M);
            }
            if (b->grad) {
                float *db = b->grad + i * sb;
                if (!tb) // db (K,N) += op(a)ᵀ (K,M) · dout (M,N)
                    mfi_gemm(!ta, 0, K, N, M, av, lda, dc, N, 1.0f, db, N);
                else // db (N,K) += doutᵀ (N,M) · op(a) (M,K)
                    mfi_gemm(1, ta, N, K, M, dc, N, av, lda, 1.0f, db, K);
            }
        }
        break;
    default:
        break;
    }
}
