/* Elementwise ops: add, sub, mul, div (fast broadcasting paths; the general one is in
 * ops_broadcast.c), scale, add_scalar, relu, tanh, sigmoid, gelu, exp, log, sqrt, abs,
 * softplus, clamp, dropout (masked_fill is with the other broadcasting ops).
 *
 * Big tensors are split statically between OpenMP threads (MFI_OMP_MIN_ELEMS, see
 * ops_common.h). Every element is computed by exactly one thread with the same arithmetic as
 * the serial loop, and the only reduction (a scalar b's gradient) sums fixed chunks combined
 * in order, so results are the same bits for any thread count. */
#include <math.h>
#include <string.h>

#include "ops_common.h"

static mf_node *unary(mf_graph *g, mf_op op, mf_node *a, const mfi_args *args)
{
    return mfi_node_new(g, op, 1, &a, args);
}

static mf_node *binary(mf_graph *g, mf_op op, mf_node *a, mf_node *b)
{
    mf_node *in[2] = {a, b};
    return mfi_node_new(g, op, 2, in, NULL);
}

mf_node *mf_add(mf_graph *g, mf_node *a, mf_node *b) { return binary(g, MF_OP_ADD, a, b); }
mf_node *mf_sub(mf_graph *g, mf_node *a, mf_node *b) { return binary(g, MF_OP_SUB, a, b); }
mf_node *mf_mul(mf_graph *g, mf_node *a, mf_node *b) { return binary(g, MF_OP_MUL, a, b); }
mf_node *mf_div(mf_graph *g, mf_node *a, mf_node *b) { return binary(g, MF_OP_DIV, a, b); }

mf_node *mf_scale(mf_graph *g, mf_node *a, float s)
{
    mfi_args args = {.f = {s}};
    return unary(g, MF_OP_SCALE, a, &args);
}

mf_node *mf_add_scalar(mf_graph *g, mf_node *a, float c)
{
    mfi_args args = {.f = {c}};
    return unary(g, MF_OP_ADD_SCALAR, a, &args);
}

mf_node *mf_relu(mf_graph *g, mf_node *a) { return unary(g, MF_OP_RELU, a, NULL); }
mf_node *mf_tanh(mf_graph *g, mf_node *a) { return unary(g, MF_OP_TANH, a, NULL); }
mf_node *mf_sigmoid(mf_graph *g, mf_node *a) { return unary(g, MF_OP_SIGMOID, a, NULL); }
mf_node *mf_gelu(mf_graph *g, mf_node *a) { return unary(g, MF_OP_GELU, a, NULL); }
mf_node *mf_exp(mf_graph *g, mf_node *a) { return unary(g, MF_OP_EXP, a, NULL); }
mf_node *mf_log(mf_graph *g, mf_node *a) { return unary(g, MF_OP_LOG, a, NULL); }
mf_node *mf_sqrt(mf_graph *g, mf_node *a) { return unary(g, MF_OP_SQRT, a, NULL); }
mf_node *mf_abs(mf_graph *g, mf_node *a) { return unary(g, MF_OP_ABS, a, NULL); }
mf_node *mf_softplus(mf_graph *g, mf_node *a) { return unary(g, MF_OP_SOFTPLUS, a, NULL); }

mf_node *mf_clamp(mf_graph *g, mf_node *a, float lo, float hi)
{
    mfi_args args = {.f = {lo, hi}};
    return unary(g, MF_OP_CLAMP, a, &args);
}

/* The dropout's stream (ops_elementwise.c's dropout section), in iarg[0..1]. */
static uint64_t dropout_stream(const mf_graph *g);

mf_node *mf_dropout(mf_graph *g, mf_node *a, float p)
{
    mfi_args args = {.f = {p}};
    if (g)
        mfi_put_i64(args.i, (int64_t)dropout_stream(g));
    return unary(g, MF_OP_DROPOUT, a, &args);
}

/* ================================================================ binary ops
 * Fast paths, out with a's shape (…,N): b is a's shape (BC_EQUAL), one element with no more
 * axes than a (BC_SCALAR), or a row (N), (1,N), (1,1,N)… broadcast over every row of a's
 * last axis (BC_ROW). Any other NumPy-compatible pair, a stretched too, takes the strided
 * kernel of ops_broadcast.c (BC_GENERAL) with out of the broadcast shape. iarg[0]: mode. */
enum { BC_EQUAL, BC_SCALAR, BC_ROW, BC_GENERAL };

static char binary_symbol(mf_op op)
{
    return op == MF_OP_ADD ? '+' : op == MF_OP_SUB ? '-' : op == MF_OP_MUL ? '*' : '/';
}

static void binary_shape(mf_node *n)
{
    const mf_node *a = n->in[0], *b = n->in[1];
    const char *name = mfi_op_name(n->op);
    const int64_t N = a->shape.dim[a->shape.ndim - 1];
    /* b "looks like a row": every axis but the last is 1, and it has no more axes than a */
    int row_like = b->shape.ndim <= a->shape.ndim;
    for (int i = 0; i + 1 < b->shape.ndim && row_like; i++)
        row_like = b->shape.dim[i] == 1;
    if (mf_shape_equal(&a->shape, &b->shape)) {
        n->iarg[0] = BC_EQUAL;
    } else if (mf_shape_numel(&b->shape) == 1 && b->shape.ndim <= a->shape.ndim) {
        n->iarg[0] = BC_SCALAR;
    } else if (row_like && b->shape.dim[b->shape.ndim - 1] == N) {
        n->iarg[0] = BC_ROW;
    } else if (mfi_broadcast_shape(&a->shape, &b->shape, &n->shape) == 0) {
        n->iarg[0] = BC_GENERAL;
        return;
    } else {
        char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
        mfi_node_shape_str(a, sa);
        mfi_node_shape_str(b, sb);
        if (row_like && a->shape.ndim >= 2) /* b was meant as a row: say what fits */
            mfi_op_fail(n, "%s: shapes differ: %s %c %s; a row %sfor %s must be (%lld) or (1,%lld)",
                        name, sa, binary_symbol(n->op), sb, n->op == MF_OP_ADD ? "bias " : "",
                        sa, (long long)N, (long long)N);
        else
            mfi_op_fail(n, "%s: shapes differ: %s %c %s", name, sa, binary_symbol(n->op), sb);
        return;
    }
    n->shape = a->shape;
}

/* out[i] = EXPR of x = a[i] and y = b at i's broadcast position. */
#define BINARY_MAP(EXPR)                                                                           \
    do {                                                                                           \
        const float *A_ = a->value, *B_ = b->value;                                                \
        float *O_ = n->value;                                                                      \
        if (mode == BC_EQUAL) {                                                                    \
            /* independent elements: split big tensors statically between threads */          \
            MFI_FOR_EACH(numel, MFI_OMP_MIN_ELEMS, i, const float x = A_[i], y = B_[i]; O_[i] = (EXPR););\
        } else if (mode == BC_SCALAR) {                                                            \
            const float y = B_[0];                                                                 \
            /* independent elements: split big tensors statically between threads */          \
            MFI_FOR_EACH(numel, MFI_OMP_MIN_ELEMS, i, const float x = A_[i]; O_[i] = (EXPR););\
        } else {                                                                                   \
            const int64_t rows_ = numel / N;                                                       \
            /* independent rows: vectorise rows, split big tensors statically between threads */   \
            MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,                                            \
            for (int64_t r = 0; r < rows_; r++)                                                    \
                MFI_OMP(omp simd)                                                                  \
                for (int64_t j = 0; j < N; j++) {                                                  \
                    const float x = A_[r * N + j], y = B_[j];                                      \
                    O_[r * N + j] = (EXPR);                                                        \
                });                                                                                \
        }                                                                                          \
    } while (0)

/* da[i] += EXPR of g = dout[i], x = a[i], y = b at i's broadcast position. */
#define BINARY_GRAD_A(EXPR)                                                                        \
    do {                                                                                           \
        const float *A_ = a->value, *B_ = b->value, *G_ = n->grad;                                 \
        float *D_ = a->grad;                                                                       \
        if (mode == BC_EQUAL) {                                                                    \
            /* independent elements: split big tensors statically between threads */          \
            MFI_FOR_EACH(numel, MFI_OMP_MIN_ELEMS, i, const float g = G_[i], x = A_[i], y = B_[i]; (void)x, (void)y; D_[i] += (EXPR););\
        } else if (mode == BC_SCALAR) {                                                            \
            const float y = B_[0];                                                                 \
            (void)y;                                                                               \
            /* independent elements: split big tensors statically between threads */          \
            MFI_FOR_EACH(numel, MFI_OMP_MIN_ELEMS, i, const float g = G_[i], x = A_[i]; (void)x; D_[i] += (EXPR););\
        } else {                                                                                   \
            const int64_t rows_ = numel / N;                                                       \
            /* independent rows: vectorise rows, split big tensors statically between threads */   \
            MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,                                            \
            for (int64_t r = 0; r < rows_; r++)                                                    \
                MFI_OMP(omp simd)                                                                  \
                for (int64_t j = 0; j < N; j++) {                                                  \
                    const float g = G_[r * N + j], x = A_[r * N + j], y = B_[j];                   \
                    (void)x, (void)y;                                                              \
                    D_[r * N + j] += (EXPR);                                                       \
                });                                                                                \
        }                                                                                          \
    } while (0)

/* Columns per parallel block of a row b's gradient. */
#define COL_BLOCK 64

/* db += EXPR of g, x, y summed over every position b is broadcast to. A row b's column j
 * is summed over rows in row order by one thread; a scalar b sums fixed chunks in order. */
#define BINARY_GRAD_B(EXPR)                                                                        \
    do {                                                                                           \
        const float *A_ = a->value, *B_ = b->value, *G_ = n->grad;                                 \
        float *D_ = b->grad;                                                                       \
        if (mode == BC_EQUAL) {                                                                    \
            /* independent elements: split big tensors statically between threads */          \
            MFI_FOR_EACH(numel, MFI_OMP_MIN_ELEMS, i, const float g = G_[i], x = A_[i], y = B_[i]; (void)x, (void)y; D_[i] += (EXPR););\
        } else if (mode == BC_SCALAR) {                                                            \
            const float y = B_[0];                                                                 \
            (void)y;                                                                               \
            const int64_t chunk_ = (numel + MFI_SUM_CHUNKS - 1) / MFI_SUM_CHUNKS;                  \
            double part_[MFI_SUM_CHUNKS];                                                          \
            /* fixed chunks summed in parallel, combined below in order: deterministic */          \
            MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,                                            \
            for (int c = 0; c < MFI_SUM_CHUNKS; c++) {                                             \
                const int64_t lo_ = c * chunk_;                                                    \
                const int64_t hi_ = lo_ + chunk_ < numel ? lo_ + chunk_ : numel;                   \
                double s_ = 0.0;                                                                   \
                for (int64_t i = lo_; i < hi_; i++) {                                              \
                    const float g = G_[i], x = A_[i];                                              \
                    (void)x;                                                                       \
                    s_ += (double)(EXPR);                                                          \
                }                                                                                  \
                part_[c] = s_;                                                                     \
            });                                                                                    \
            double s_ = 0.0;                                                                       \
            for (int c = 0; c < MFI_SUM_CHUNKS; c++)                                               \
                s_ += part_[c];                                                                    \
            D_[0] += (float)s_;                                                                    \
        } else {                                                                                   \
            const int64_t rows_ = numel / N, blocks_ = (N + COL_BLOCK - 1) / COL_BLOCK;            \
            const int par_ = numel > MFI_OMP_MIN_ELEMS && blocks_ > 1;                             \
            /* blocks of columns, each summed over all rows in row order by one thread */          \
            MFI_PARALLEL_FOR(par_,                                                                 \
            for (int64_t cb = 0; cb < blocks_; cb++) {                                             \
                const int64_t j0_ = cb * COL_BLOCK;                                                \
                const int64_t j1_ = j0_ + COL_BLOCK < N ? j0_ + COL_BLOCK : N;                     \
                for (int64_t r = 0; r < rows_; r++)                                                \
                    MFI_OMP(omp simd) /* one column per lane: each column's order is kept */       \
                    for (int64_t j = j0_; j < j1_; j++) {                                          \
                        const float g = G_[r * N + j], x = A_[r * N + j], y = B_[j];               \
                        (void)x, (void)y;                                                          \
                        D_[j] += (EXPR);                                                           \
                    }                                                                              \
            });                                                                                    \
        }                                                                                          \
    } while (0)

/* add, sub, mul, div: one function for the four, dispatching on n->op. */
static void binary_op(mf_node *n, int action)
{
    if (action == MFI_SHAPE) {
        binary_shape(n);
        return;
    }
    mf_node *a = n->in[0], *b = n->in[1];
    const int mode = n->iarg[0];
    if (mode == BC_GENERAL) {
        mfi_binary_general(n, action);
        return;
    }
    const int64_t numel = n->numel, N = a->shape.dim[a->shape.ndim - 1];
    const mf_op op = n->op;
    switch (action) {
    case MFI_FORWARD:
        // out = a ∘ b
        if (op == MF_OP_ADD)
            BINARY_MAP(x + y);
        else if (op == MF_OP_SUB)
            BINARY_MAP(x - y);
        else if (op == MF_OP_MUL)
            BINARY_MAP(x * y);
        else
            BINARY_MAP(x / y);
        return;
    case MFI_BACKWARD:
        // add: da += g, db += g;  sub: da += g, db -= g;
        // mul: da += g·b, db += g·a;  div: da += g/b, db -= g·a/b²  (db summed where broadcast)
        if (a->grad) {
            if (op == MF_OP_ADD || op == MF_OP_SUB)
                BINARY_GRAD_A(g);
            else if (op == MF_OP_MUL)
                BINARY_GRAD_A(g * y);
            else
                BINARY_GRAD_A(g / y);
        }
        if (b->grad) {
            if (op == MF_OP_ADD)
                BINARY_GRAD_B(g);
            else if (op == MF_OP_SUB)
                BINARY_GRAD_B(-g);
            else if (op == MF_OP_MUL)
                BINARY_GRAD_B(g * x);
            else
                BINARY_GRAD_B(-g * x / (y * y));
        }
        return;
    default:
        return;
    }
}

void mfi_op_add(mf_node *n, int action) { binary_op(n, action); }
void mfi_op_sub(mf_node *n, int action) { binary_op(n, action); }
void mfi_op_mul(mf_node *n, int action) { binary_op(n, action); }
void mfi_op_div(mf_node *n, int action) { binary_op(n, action); }

/* ================================================================ unary ops
 * out has a's shape. A map is CHEAP (arithmetic: vectorised, threads from
 * MFI_OMP_MIN_ELEMS) or HEAVY (a libm call: scalar, threads from MFI_OMP_MIN_ELEMS_HEAVY). */
#define CHEAP_MIN MFI_OMP_MIN_ELEMS
#define HEAVY_MIN MFI_OMP_MIN_ELEMS_HEAVY

/* out[i] = EXPR of x = a[i]. */
#define UNARY_MAP(EXPR, KIND)                                                                      \
    do {                                                                                           \
        const float *restrict A_ = a->value;                                                       \
        float *restrict O_ = n->value;                                                             \
        /* independent elements: split big tensors statically between threads */                   \
        MFI_FOR_EACH(n->numel, KIND##_MIN, i, const float x = A_[i]; O_[i] = (EXPR););             \
    } while (0)

/* da[i] += EXPR of g = dout[i], x = a[i], y = out[i]. */
#define UNARY_GRAD(EXPR, KIND)                                                                     \
    do {                                                                                           \
        if (!a->grad)                                                                              \
            break;                                                                                 \
        const float *restrict A_ = a->value, *restrict Y_ = n->value, *restrict G_ = n->grad;      \
        float *restrict D_ = a->grad;                                                              \
        /* independent elements: split big tensors statically between threads */                   \
        MFI_FOR_EACH(n->numel, KIND##_MIN, i, const float g = G_[i], x = A_[i], y = Y_[i];         \
                     (void)x, (void)y; D_[i] += (EXPR););                                          \
    } while (0)

/* A unary op whose output has its input's shape: out = FORWARD(x); da += BACKWARD(g, x, y).
 * KINDs pick the parallel threshold (CHEAP arithmetic, HEAVY libm calls). */
#define UNARY_OP(NAME, FORWARD, FORWARD_KIND, BACKWARD, BACKWARD_KIND)                            \
    void mfi_op_##NAME(mf_node *n, int action)                                                     \
    {                                                                                              \
        mf_node *a = n->in[0];                                                                     \
        if (action == MFI_SHAPE)                                                                   \
            n->shape = a->shape;                                                                   \
        else if (action == MFI_FORWARD)                                                            \
            UNARY_MAP(FORWARD, FORWARD_KIND);                                                      \
        else if (action == MFI_BACKWARD)                                                           \
            UNARY_GRAD(BACKWARD, BACKWARD_KIND);                                                   \
    }

void mfi_op_scale(mf_node *n, int action)
{
    // out = s·a; da += s·dout
    mf_node *a = n->in[0];
    const float s = n->farg[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        UNARY_MAP(s * x, CHEAP);
        return;
    case MFI_BACKWARD:
        UNARY_GRAD(s * g, CHEAP);
        return;
    default:
        return;
    }
}

void mfi_op_add_scalar(mf_node *n, int action)
{
    // out = a + c; da += dout
    mf_node *a = n->in[0];
    const float c = n->farg[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        UNARY_MAP(x + c, CHEAP);
        return;
    case MFI_BACKWARD:
        UNARY_GRAD(g, CHEAP);
        return;
    default:
        return;
    }
}

void mfi_op_relu(mf_node *n, int action)
{
    // out = max(a, 0); the gradient at 0 is 0
    mf_node *a = n->in[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        if (n->relu_fused) /* the conv2d below wrote its output rectified */
            return;
        UNARY_MAP(x > 0.0f ? x : 0.0f, CHEAP);
        return;
    case MFI_BACKWARD:
        if (n->relu_fused) /* the conv2d below masks the gradient as it reads it */
            return;
        if (n->inplace) { /* grad is in[0]'s grad too: mask it where the input was cut */
            float *restrict G_ = n->grad;
            const float *restrict Y_ = n->value;
            MFI_FOR_EACH(n->numel, CHEAP_MIN, i, G_[i] = Y_[i] > 0.0f ? G_[i] : 0.0f;);
            return;
        }
        UNARY_GRAD(y > 0.0f ? g : 0.0f, CHEAP);
        return;
    default:
        return;
    }
}

void mfi_op_tanh(mf_node *n, int action)
{
    // out = tanh(a); d/da = 1 - out²
    mf_node *a = n->in[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        UNARY_MAP(tanhf(x), HEAVY);
        return;
    case MFI_BACKWARD:
        UNARY_GRAD(g * (1.0f - y * y), CHEAP);
        return;
    default:
        return;
    }
}

/* 1/(1+e^-x) without ever exponentiating a large positive number. */
static inline float sigmoidf(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

// out = 1/(1+e^-a); d/da = out·(1 - out)
UNARY_OP(sigmoid, sigmoidf(x), HEAVY, g * y * (1.0f - y), CHEAP)

/* GELU, tanh approximation (GPT-2, llm.c): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
#define GELU_S 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

/* tanh(u) = sign(u)·(1 - e)/(1 + e), e = exp(-2|u|) by mfi_exp_nonpos: vectorised, where
 * tanhf stays a scalar libm call (tanhf was 39 % of a transformer's inference step).
 * Absolute error ≤ 2e-7; GELU needs 1 + tanh and 1 - tanh², not tanh's relative precision
 * near 0. */
static inline float gelu_tanh(float u)
{
    const float e = mfi_exp_nonpos(u < 0.0f ? 2.0f * u : -2.0f * u);
    const float t = (1.0f - e) / (1.0f + e);
    return u < 0.0f ? -t : t;
}

static inline float gelu_fwd(float x)
{
    const float t = gelu_tanh(GELU_S * (x + GELU_C * x * x * x));
    return 0.5f * x * (1.0f + t);
}

/* d gelu / dx = 0.5·(1 + t) + 0.5·x·(1 - t²)·√(2/π)·(1 + 3·0.044715·x²) */
static inline float gelu_bwd(float x)
{
    const float t = gelu_tanh(GELU_S * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x * x);
}

// out = gelu(a); da += dout·gelu'(a)
UNARY_OP(gelu, gelu_fwd(x), HEAVY, g * gelu_bwd(x), HEAVY)

// out = e^a; da += dout·out
UNARY_OP(exp, expf(x), HEAVY, g * y, CHEAP)

// out = ln a (NaN below 0, -inf at 0); da += dout / a
UNARY_OP(log, logf(x), HEAVY, g / x, CHEAP)

// out = √a; da += dout / (2·out)  (infinite at 0)
UNARY_OP(sqrt, sqrtf(x), HEAVY, g * 0.5f / y, CHEAP)

// out = |a|; da += dout·sign(a), 0 at 0
UNARY_OP(abs, fabsf(x), CHEAP, x > 0.0f ? g : x < 0.0f ? -g : 0.0f, CHEAP)

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and exact far below 0. */
static inline float softplusf(float x)
{
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

// out = log(1 + e^a); da += dout·σ(a)
UNARY_OP(softplus, softplusf(x), HEAVY, g * sigmoidf(x), HEAVY)

void mfi_op_clamp(mf_node *n, int action)
{
    // out = min(max(a, lo), hi); da += dout where lo < a < hi
    mf_node *a = n->in[0];
    const float lo = n->farg[0], hi = n->farg[1];
    switch (action) {
    case MFI_SHAPE:
        if (!(lo <= hi)) {
            mfi_op_fail(n, "clamp: lo %g must not exceed hi %g", (double)lo, (double)hi);
            return;
        }
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        UNARY_MAP(x < lo ? lo : x > hi ? hi : x, CHEAP);
        return;
    case MFI_BACKWARD:
        UNARY_GRAD(x > lo && x < hi ? g : 0.0f, CHEAP);
        return;
    default:
        return;
    }
}

/* ================================================================ dropout
 * The mask is counter-based: element i of a dropout in the forward numbered `count`
 * (g->forward_count, advanced by every mf_graph_forward) is kept iff
 *     hi32(splitmix64(key + (i+1)·φ)) >= p·2³²,  key = mix(seed, count, stream).
 * The stream names the dropout by its module path (mf_graph_set_scope) and its rank among
 * the graph's dropouts of that path, not by its node id: nodes added elsewhere — the
 * missing-modality masks that `eval.robustness.drop` adds to the training graph, a loss's
 * extra terms — left every mask where it was (issue 13: an evaluation setting changed
 * training). Nothing is stored but the 8-byte key, written to scratch by forward so that
 * backward rebuilds exactly the mask forward used. Replays from the same seed and forward
 * count give the same masks, on any thread count; mf_gradcheck holds the count fixed while
 * it perturbs inputs, so the function it differentiates is the one with a fixed mask. */
#define GOLDEN 0x9E3779B97F4A7C15ull

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* FNV-1a of the scope, mixed with the rank of the new dropout among the graph's dropouts of
 * that scope (a shared encoder run twice makes two of one path). */
static uint64_t dropout_stream(const mf_graph *g)
{
    const char *scope = g->scope ? g->scope : "";
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *c = (const unsigned char *)scope; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    uint64_t rank = 0;
    for (int i = 0; i < g->n_nodes; i++)
        rank += g->nodes[i]->op == MF_OP_DROPOUT && strcmp(g->nodes[i]->scope, scope) == 0;
    return mix64(h ^ mix64(rank + GOLDEN));
}

static uint64_t dropout_key(uint64_t seed, uint64_t count, uint64_t stream)
{
    uint64_t k = mix64(seed + GOLDEN);
    k = mix64(k ^ (count + 2 * GOLDEN));
    return mix64(k ^ (stream + 3 * GOLDEN));
}

/* Kept iff the element's 32 random bits reach the threshold p·2³². */
static inline int dropout_keep(uint64_t key, int64_t i, uint64_t threshold)
{
    return (mix64(key + (uint64_t)(i + 1) * GOLDEN) >> 32) >= threshold;
}

void mfi_op_dropout(mf_node *n, int action)
{
    // out = a·keep/(1-p) in a training graph (keep ~ Bernoulli(1-p) per element), else a;
    // da += dout·keep/(1-p)
    mf_node *a = n->in[0];
    const float p = n->farg[0];
    const int active = n->graph->training && p > 0.0f;
    const uint64_t threshold = (uint64_t)((double)p * 4294967296.0);
    const float scale = 1.0f / (1.0f - p);
    const int64_t numel = n->numel;
    switch (action) {
    case MFI_SHAPE:
        if (!(p >= 0.0f && p < 1.0f)) {
            mfi_op_fail(n, "dropout: p must be in [0, 1), got %g", (double)p);
            return;
        }
        n->shape = a->shape;
        return;
    case MFI_SCRATCH:
        n->scratch_bytes = active ? sizeof(uint64_t) : 0;
        return;
    case MFI_FORWARD: {
        if (!active) {
            memcpy(n->value, a->value, (size_t)numel * sizeof(float));
            return;
        }
        const uint64_t key = dropout_key(n->graph->seed, n->graph->forward_count,
                                         (uint64_t)mfi_get_i64(n->iarg));
        *(uint64_t *)n->scratch = key;
        const float *A = a->value;
        float *O = n->value;
        // independent elements (counter-based mask, ~1 ns each): split statically
        MFI_PARALLEL_FOR(numel >= MFI_OMP_MIN_ELEMS_DROPOUT,
        for (int64_t i = 0; i < numel; i++)
            O[i] = dropout_keep(key, i, threshold) ? A[i] * scale : 0.0f;);
        return;
    }
    case MFI_BACKWARD: {
        if (!a->grad)
            return;
        const float *G = n->grad;
        float *D = a->grad;
        if (!active) {
            for (int64_t i = 0; i < numel; i++)
                D[i] += G[i];
            return;
        }
        const uint64_t key = *(const uint64_t *)n->scratch;
        // independent elements (counter-based mask, ~1 ns each): split statically
        MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS_HEAVY,
        for (int64_t i = 0; i < numel; i++)
            D[i] += dropout_keep(key, i, threshold) ? G[i] * scale : 0.0f;);
        return;
    }
    default:
        return;
    }
}
