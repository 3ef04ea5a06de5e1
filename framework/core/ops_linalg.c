/* Linear algebra ops: matmul through cblas_sgemm (row-major). */
#include <limits.h>

#include <cblas.h>

#include "core_internal.h"

mf_node *mf_matmul(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b)
{
    mf_node *in[2] = {a, b};
    mfi_args args = {.i = {trans_a != 0, trans_b != 0}};
    return mfi_node_new(g, MF_OP_MATMUL, 2, in, &args);
}

/* C (m,n) = alpha·op(A)·op(B) + beta·C, row-major, op(A) (m,k), op(B) (k,n). */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
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
        gemm(ta, tb, M, N, K, a->value, lda, b->value, ldb, 0.0f, n->value, N);
        break;
    case MFI_BACKWARD:
        if (a->grad) {
            if (!ta) // da (M,K) += dout (M,N) · op(b)ᵀ (N,K)
                gemm(0, !tb, M, K, N, n->grad, N, b->value, ldb, 1.0f, a->grad, K);
            else // da (K,M) += op(b) (K,N) · doutᵀ (N,M)
                gemm(tb, 1, K, M, N, b->value, ldb, n->grad, N, 1.0f, a->grad, M);
        }
        if (b->grad) {
            if (!tb) // db (K,N) += op(a)ᵀ (K,M) · dout (M,N)
                gemm(!ta, 0, K, N, M, a->value, lda, n->grad, N, 1.0f, b->grad, N);
            else // db (N,K) += doutᵀ (N,M) · op(a) (M,K)
                gemm(1, ta, N, K, M, n->grad, N, a->value, lda, 1.0f, b->grad, K);
        }
        break;
    default:
        break;
    }
}
