/* Linear algebra ops: matmul, batched matmul and linear through mfi_gemm (cblas_sgemm,
 * row-major).
 *
 * Issue 11: `linear` is mf_linear_forward's one node — y = x·W + b with x (…,K) taken as
 * rows as it lies, the bias copied into y's rows and the product added (beta = 1): no
 * reshape before or after, no add node (bias adds and folds were 11 ms of a 94 ms
 * xattn-fusion step). In backward every product overwrites (beta = 0) an input gradient
 * whose first writer it is (n->fresh), which spares graph.c a memset of it. */
#include <limits.h>
#include <string.h>

#include "gemm.h"
#include "ops_common.h"

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
            const float beta = n->fresh & 1u ? 0.0f : 1.0f;
            if (!ta) // da (M,K) += dout (M,N) · op(b)ᵀ (N,K)
                mfi_gemm(0, !tb, M, K, N, n->grad, N, b->value, ldb, beta, a->grad, K);
            else // da (K,M) += op(b) (K,N) · doutᵀ (N,M)
                mfi_gemm(tb, 1, K, M, N, b->value, ldb, n->grad, N, beta, a->grad, M);
        }
        if (b->grad) {
            const float beta = n->fresh & 2u ? 0.0f : 1.0f;
            if (!tb) // db (K,N) += op(a)ᵀ (K,M) · dout (M,N)
                mfi_gemm(!ta, 0, K, N, M, a->value, lda, n->grad, N, beta, b->grad, N);
            else // db (N,K) += doutᵀ (N,M) · op(a) (M,K)
                mfi_gemm(1, ta, N, K, M, n->grad, N, a->value, lda, beta, b->grad, K);
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

mf_node *mfi_bmm_heads(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b,
                       int64_t heads, int layout)
{
    mf_node *in[2] = {a, b};
    mfi_args args = {.i = {trans_a != 0, trans_b != 0, heads > INT_MAX ? 0 : (int)heads, layout}};
    return mfi_node_new(g, MF_OP_BMM, 2, in, &args);
}

/* Where operand matrix p of a bmm lies: float offset of matrix p, and its row stride.
 * Plain (…,R,C): matrix p at p·R·C, rows of C. Token-major (B,R,H·C) seen as (B,H,R,C):
 * matrix p = (b,h) at b·R·H·C + h·C, rows H·C apart. */
typedef struct bmm_layout {
    int64_t H, R, C; /* H 0: plain */
} bmm_layout;

static inline int64_t bmm_off(bmm_layout l, int64_t p)
{
    return l.H ? (p / l.H) * l.R * l.H * l.C + (p % l.H) * l.C : p * l.R * l.C;
}

static inline int64_t bmm_ld(bmm_layout l) { return l.H ? l.H * l.C : l.C; }

/* An operand's logical (…,R,C) matrices from its stored shape; -1 when it does not split. */
static int bmm_view(const mf_shape *s, int64_t H, int token_major, mf_shape *logical)
{
    if (!token_major) {
        *logical = *s;
        return 0;
    }
    if (s->ndim != 3 || H < 1 || s->dim[2] % H != 0)
        return -1;
    *logical = mf_shape4(s->dim[0], H, s->dim[1], s->dim[2] / H);
    return 0;
}

static void bmm_shape(mf_node *n)
{
    mf_node *a = n->in[0], *b = n->in[1];
    const int ta = n->iarg[0], tb = n->iarg[1], H = n->iarg[2], lay = n->iarg[3];
    char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
    mfi_node_shape_str(a, sa);
    mfi_node_shape_str(b, sb);
    const char *ma = ta ? "^T" : "", *mb = tb ? "^T" : "";
    mf_shape la, lb;
    if (bmm_view(&a->shape, H, lay & 1, &la) || bmm_view(&b->shape, H, lay & 2, &lb)) {
        mfi_op_fail(n, "bmm: inputs do not split into %d heads: %s%s x %s%s", H, sa, ma, sb, mb);
        return;
    }
    const int nd = la.ndim;
    if (nd < 3 || nd > 4 || lb.ndim != nd) {
        mfi_op_fail(n, "bmm: inputs must both be 3-D or both 4-D: %s%s x %s%s", sa, ma, sb, mb);
        return;
    }
    for (int i = 0; i < nd - 2; i++)
        if (la.dim[i] != lb.dim[i]) {
            mfi_op_fail(n, "bmm: batch axes differ: %s%s x %s%s", sa, ma, sb, mb);
            return;
        }
    const int64_t *da = la.dim + nd - 2, *db = lb.dim + nd - 2;
    if ((ta ? da[0] : da[1]) != (tb ? db[1] : db[0])) {
        mfi_op_fail(n, "bmm: inner dimensions differ: %s%s x %s%s", sa, ma, sb, mb);
        return;
    }
    for (int i = 0; i < 2; i++)
        if (a->shape.dim[a->shape.ndim - 1 - i] > INT_MAX ||
            b->shape.dim[b->shape.ndim - 1 - i] > INT_MAX) {
            mfi_op_fail(n, "bmm: dimensions exceed the BLAS limit of %d: %s x %s", INT_MAX,
                        sa, sb);
            return;
        }
    const int64_t M = ta ? da[1] : da[0], N = tb ? db[0] : db[1];
    n->shape = la;
    n->shape.dim[nd - 2] = M;
    n->shape.dim[nd - 1] = N;
    if (lay & 4) // out token-major: (B,M,H·N)
        n->shape = mf_shape3(la.dim[0], M, H * N);
}

/* Above this many multiply-adds, the batch's matrices are shared between threads (each
 * matrix whole in one thread, so the bits do not depend on the thread count): the
 * threshold mfi_gemm uses to split one product. */
#define BMM_SPLIT_MIN_MACS (INT64_C(1) << 20)

void mfi_op_bmm(mf_node *n, int action)
{
    // a is (…,M,K) [trans_a: (…,K,M)], b is (…,K,N) [trans_b: (…,N,K)], out is (…,M,N),
    // with equal leading axes (…) of one or two dimensions: one matmul per leading index.
    // With heads H (iarg[2]), an operand flagged in iarg[3] (1 a, 2 b, 4 out) is stored
    // token-major, (B,R,H·C) for the logical (B,H,R,C): attention's head split and merge
    // read through the strides instead of a permute's copy (issue 11: 5 ms of 94)
    mf_node *a = n->in[0], *b = n->in[1];
    const int ta = n->iarg[0], tb = n->iarg[1], lay = n->iarg[3];
    if (action == MFI_SHAPE) {
        bmm_shape(n);
        return;
    }
    if (action != MFI_FORWARD && action != MFI_BACKWARD)
        return;
    const int64_t H = n->iarg[2];
    mf_shape la = a->shape, lb = b->shape, lc = n->shape;
    bmm_view(&a->shape, H, lay & 1, &la);
    bmm_view(&b->shape, H, lay & 2, &lb);
    bmm_view(&n->shape, H, lay & 4, &lc);
    const int nd = lc.ndim;
    const int64_t M = lc.dim[nd - 2], N = lc.dim[nd - 1];
    const int64_t K = ta ? la.dim[nd - 2] : la.dim[nd - 1];
    const bmm_layout LA = {lay & 1 ? H : 0, la.dim[nd - 2], la.dim[nd - 1]};
    const bmm_layout LB = {lay & 2 ? H : 0, lb.dim[nd - 2], lb.dim[nd - 1]};
    const bmm_layout LC = {lay & 4 ? H : 0, M, N};
    const int64_t lda = bmm_ld(LA), ldb = bmm_ld(LB), ldc = bmm_ld(LC);
    const int64_t batch = n->numel / (M * N);
    const int fwd = action == MFI_FORWARD;
    const float beta_a = n->fresh & 1u ? 0.0f : 1.0f, beta_b = n->fresh & 2u ? 0.0f : 1.0f;
    const float *restrict A = a->value, *restrict Bv = b->value;
    float *restrict C = fwd ? n->value : n->grad;
    float *dA = fwd ? NULL : a->grad, *dB = fwd ? NULL : b->grad; /* may be one buffer */
    // two views of one buffer could overlap across matrices: such a backward stays serial
    const int split = batch > 1 && batch * M * N * K >= BMM_SPLIT_MIN_MACS &&
                      (fwd || !dA || !dB || a->base != b->base);
    // matrices shared between threads run whole, one thread each; a lone one is cut by
    // mfi_gemm: either way the choice depends on the shapes only
    void (*const gemm)(int, int, int64_t, int64_t, int64_t, const float *, int64_t,
                       const float *, int64_t, float, float *, int64_t) =
        split ? mfi_gemm_whole : mfi_gemm;
    MFI_PARALLEL_FOR(split,
    for (int64_t i = 0; i < batch; i++) {
        const float *av = A + bmm_off(LA, i), *bv = Bv + bmm_off(LB, i);
        float *c = C + bmm_off(LC, i);
        if (fwd) { // out[i] = op(a[i])·op(b[i])
            gemm(ta, tb, M, N, K, av, lda, bv, ldb, 0.0f, c, ldc);
            continue;
        }
        if (dA) {
            float *da = dA + bmm_off(LA, i);
            if (!ta) // da (M,K) += dout (M,N) · op(b)ᵀ (N,K)
                gemm(0, !tb, M, K, N, c, ldc, bv, ldb, beta_a, da, lda);
            else // da (K,M) += op(b) (K,N) · doutᵀ (N,M)
                gemm(tb, 1, K, M, N, bv, ldb, c, ldc, beta_a, da, lda);
        }
        if (dB) {
            float *db = dB + bmm_off(LB, i);
            if (!tb) // db (K,N) += op(a)ᵀ (K,M) · dout (M,N)
                gemm(!ta, 0, K, N, M, av, lda, c, ldc, beta_b, db, ldb);
            else // db (N,K) += doutᵀ (N,M) · op(a) (M,K)
                gemm(1, ta, N, K, M, c, ldc, av, lda, beta_b, db, ldb);
        }
    });
}

/* ================================================================ linear */
mf_node *mfi_linear(mf_graph *g, mf_node *x, mf_node *w, mf_node *b)
{
    mf_node *in[3] = {x, w, b};
    return mfi_node_new(g, MF_OP_LINEAR, b ? 3 : 2, in, NULL);
}

/* db (N) (+)= the column sums of dy (M,N), row after row: one order for any thread count. */
static void bias_grad(const float *restrict dy, int64_t M, int64_t N, float *restrict db,
                      int fresh)
{
    if (fresh)
        memcpy(db, dy, (size_t)N * sizeof(float));
    for (int64_t r = fresh ? 1 : 0; r < M; r++)
        for (int64_t j = 0; j < N; j++)
            db[j] += dy[r * N + j];
}

void mfi_op_linear(mf_node *n, int action)
{
    // x is (…,K) read as (M,K) rows, w is (K,N), b is (N) or absent; out is (…,N)
    mf_node *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const int nd = x->shape.ndim;
    if (action == MFI_SHAPE) {
        char sx[MFI_SHAPE_STR], sw[MFI_SHAPE_STR];
        mfi_node_shape_str(x, sx);
        mfi_node_shape_str(w, sw);
        if (nd < 1 || w->shape.ndim != 2 || x->shape.dim[nd - 1] != w->shape.dim[0] ||
            (b && (b->shape.ndim != 1 || b->shape.dim[0] != w->shape.dim[1]))) {
            mfi_op_fail(n, "linear: shapes do not fit: %s x %s", sx, sw);
            return;
        }
        if (x->numel / x->shape.dim[nd - 1] > INT_MAX || w->shape.dim[0] > INT_MAX ||
            w->shape.dim[1] > INT_MAX) {
            mfi_op_fail(n, "linear: dimensions exceed the BLAS limit of %d: %s x %s", INT_MAX,
                        sx, sw);
            return;
        }
        n->shape = x->shape;
        n->shape.dim[nd - 1] = w->shape.dim[1];
        return;
    }
    const int64_t K = w->shape.dim[0], N = w->shape.dim[1], M = x->numel / K;
    switch (action) {
    case MFI_FORWARD:
        if (b) // y = (rows of b) + x·w
            for (int64_t r = 0; r < M; r++)
                memcpy(n->value + r * N, b->value, (size_t)N * sizeof(float));
        mfi_gemm(0, 0, M, N, K, x->value, K, w->value, N, b ? 1.0f : 0.0f, n->value, N);
        break;
    case MFI_BACKWARD:
        if (x->grad) // dx (M,K) (+)= dy (M,N) · wᵀ (N,K)
            mfi_gemm(0, 1, M, K, N, n->grad, N, w->value, N, n->fresh & 1u ? 0.0f : 1.0f,
                     x->grad, K);
        if (w->grad) // dw (K,N) (+)= xᵀ (K,M) · dy (M,N)
            mfi_gemm(1, 0, K, N, M, x->value, K, n->grad, N, n->fresh & 2u ? 0.0f : 1.0f,
                     w->grad, N);
        if (b && b->grad)
            bias_grad(n->grad, M, N, b->grad, (n->fresh & 4u) != 0);
        break;
    default:
        break;
    }
}
