/* Ops whose inputs stretch: the general strided kernel of add, sub, mul and div for any
 * NumPy-compatible pair of shapes beyond the fast paths of ops_elementwise.c (ABI 1.1),
 * mf_expand (ABI 1.1), and masked_fill's broadcast mask.
 *
 * The output is viewed as 4-D (leading 1s) and each input gets element strides over that
 * view, 0 along a stretched axis. Forward splits rows between threads. A gradient is summed
 * over the stretched axes; rows run in parallel only when no two rows add into the same
 * input element, otherwise serially, so every element is summed in one fixed order and the
 * bits never depend on the thread count. */
#include "ops_common.h"

/* out's dims padded to 4-D; in's strides over that view (in aligned from the last axis). */
static void view4(const mf_shape *out, int64_t d[4])
{
    const int pad = 4 - out->ndim;
    for (int k = 0; k < 4; k++)
        d[k] = k < pad ? 1 : out->dim[k - pad];
}

static void strides4(const mf_shape *in, int64_t s[4])
{
    const int pad = 4 - in->ndim;
    int64_t stride = 1;
    for (int k = 3; k >= 0; k--) {
        const int64_t md = k >= pad ? in->dim[k - pad] : 1;
        s[k] = md == 1 ? 0 : stride;
        stride *= md;
    }
}

int mfi_broadcast_shape(const mf_shape *a, const mf_shape *b, mf_shape *out)
{
    const int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    mf_shape o = {.ndim = nd};
    for (int k = 0; k < nd; k++) { /* k counts from the last axis */
        const int64_t da = k < a->ndim ? a->dim[a->ndim - 1 - k] : 1;
        const int64_t db = k < b->ndim ? b->dim[b->ndim - 1 - k] : 1;
        if (da != db && da != 1 && db != 1)
            return -1;
        o.dim[nd - 1 - k] = da == 1 ? db : da;
    }
    *out = o;
    return 0;
}

/* Merge each axis into the next when every input steps through the pair as one longer axis
 * (or is stretched along both): fewer, longer rows. s[0..n) are the inputs' strides. */
static void coalesce(int64_t d[4], int n, int64_t *const *s)
{
    int m = 3; /* the axis being grown, from the last */
    for (int k = 2; k >= 0; k--) {
        if (d[k] == 1)
            continue;
        int merge = 1;
        for (int i = 0; i < n; i++)
            merge = merge && s[i][k] == s[i][m] * d[m];
        if (d[m] == 1) { /* a size-1 axis carries nothing: take k's place */
            d[m] = d[k];
            for (int i = 0; i < n; i++)
                s[i][m] = s[i][k];
        } else if (merge) {
            d[m] *= d[k];
        } else {
            m--;
            d[m] = d[k];
            for (int i = 0; i < n; i++)
                s[i][m] = s[i][k];
        }
    }
    for (int k = 0; k < m; k++) {
        d[k] = 1;
        for (int i = 0; i < n; i++)
            s[i][k] = 0;
    }
}

/* Rows (the first three axes of the 4-D view) map to distinct input elements. */
static int rows_disjoint(const int64_t d[4], const int64_t s[4])
{
    for (int k = 0; k < 3; k++)
        if (d[k] > 1 && s[k] == 0)
            return 0;
    return 1;
}

/* Runs the statements given for every row r of the 4-D view d, with xo, yo the row starts
 * in X (strides sx) and Y (strides sy) and o the row's offset into the output. */
#define BC_ROWS(par, ...)                                                                          \
    do {                                                                                           \
        const int64_t rows_ = d[0] * d[1] * d[2];                                                  \
        MFI_PARALLEL_FOR(par,                                                                      \
        for (int64_t r = 0; r < rows_; r++) {                                                      \
            const int64_t i2 = r % d[2], i1 = (r / d[2]) % d[1], i0 = r / (d[2] * d[1]);           \
            const int64_t xo = i0 * sx[0] + i1 * sx[1] + i2 * sx[2];                               \
            const int64_t yo = i0 * sy[0] + i1 * sy[1] + i2 * sy[2];                               \
            const int64_t o = r * d[3];                                                            \
            __VA_ARGS__                                                                            \
        });                                                                                        \
    } while (0)

/* The inner strides as constants where they are 1 and 0 ((B,T,D) with (B,1,D) or (B,T,1)),
 * so that those rows vectorise; LOOP(SX, SY, EXPR) is BC_MAP_ROWS or BC_GRAD_ROWS. */
#define BC_INNER(LOOP, EXPR)                                                                       \
    do {                                                                                           \
        if (sx[3] == 1 && sy[3] == 1)                                                              \
            LOOP(1, 1, EXPR);                                                                      \
        else if (sx[3] == 1 && sy[3] == 0)                                                         \
            LOOP(1, 0, EXPR);                                                                      \
        else if (sx[3] == 0 && sy[3] == 1)                                                         \
            LOOP(0, 1, EXPR);                                                                      \
        else                                                                                       \
            LOOP(sx[3], sy[3], EXPR);                                                              \
    } while (0)

/* out = EXPR(x, y) with x from X, y from Y. */
#define BC_MAP_ROWS(SX, SY, EXPR)                                                                  \
    BC_ROWS(numel > MFI_OMP_MIN_ELEMS, for (int64_t j = 0; j < d[3]; j++) {                        \
        const float x = X[xo + j * (SX)], y = Y[yo + j * (SY)];                                    \
        (void)x, (void)y;                                                                          \
        O[o + j] = (EXPR);                                                                         \
    })
#define BC_MAP(EXPR) BC_INNER(BC_MAP_ROWS, EXPR)

/* D (X's gradient) += EXPR(g, x, y) summed over the positions X is stretched to; a row
 * stretched along the last axis is summed first, in order. */
#define BC_GRAD_ROWS(SX, SY, EXPR)                                                                 \
    BC_ROWS(numel > MFI_OMP_MIN_ELEMS && rows_disjoint(d, sx), if ((SX) == 0) {                    \
        float s_ = 0.0f;                                                                           \
        for (int64_t j = 0; j < d[3]; j++) {                                                       \
            const float g = G[o + j], x = X[xo], y = Y[yo + j * (SY)];                             \
            (void)x, (void)y;                                                                      \
            s_ += (EXPR);                                                                          \
        }                                                                                          \
        D[xo] += s_;                                                                               \
    } else {                                                                                       \
        for (int64_t j = 0; j < d[3]; j++) {                                                       \
            const float g = G[o + j], x = X[xo + j * (SX)], y = Y[yo + j * (SY)];                  \
            (void)x, (void)y;                                                                      \
            D[xo + j * (SX)] += (EXPR);                                                            \
        }                                                                                          \
    })
#define BC_GRAD(EXPR) BC_INNER(BC_GRAD_ROWS, EXPR)

void mfi_binary_general(mf_node *n, int action)
{
    // a, b broadcast to out (…); out = a ∘ b; da, db += their terms summed where stretched
    mf_node *a = n->in[0], *b = n->in[1];
    const int64_t numel = n->numel;
    const mf_op op = n->op;
    int64_t d[4], s_a[4], s_b[4];
    view4(&n->shape, d);
    strides4(&a->shape, s_a);
    strides4(&b->shape, s_b);
    coalesce(d, 2, (int64_t *const[]){s_a, s_b});
    const float *G = n->grad;
    if (action == MFI_FORWARD) {
        const float *X = a->value, *Y = b->value;
        const int64_t *sx = s_a, *sy = s_b;
        float *O = n->value;
        if (op == MF_OP_ADD)
            BC_MAP(x + y);
        else if (op == MF_OP_SUB)
            BC_MAP(x - y);
        else if (op == MF_OP_MUL)
            BC_MAP(x * y);
        else
            BC_MAP(x / y);
        return;
    }
    if (action != MFI_BACKWARD)
        return;
    if (a->grad) { /* x = a, y = b */
        const float *X = a->value, *Y = b->value;
        const int64_t *sx = s_a, *sy = s_b;
        float *D = a->grad;
        if (op == MF_OP_ADD || op == MF_OP_SUB)
            BC_GRAD(g);
        else if (op == MF_OP_MUL)
            BC_GRAD(g * y);
        else
            BC_GRAD(g / y);
    }
    if (b->grad) { /* x = b, y = a */
        const float *X = b->value, *Y = a->value;
        const int64_t *sx = s_b, *sy = s_a;
        float *D = b->grad;
        if (op == MF_OP_ADD)
            BC_GRAD(g);
        else if (op == MF_OP_SUB)
            BC_GRAD(-g);
        else if (op == MF_OP_MUL)
            BC_GRAD(g * y);
        else
            BC_GRAD(-g * y / (x * x));
    }
}

/* ================================================================ expand
 * iarg[0] the target's ndim, iarg[1..4] its dims (-1: keep a's). */
mf_node *mf_expand(mf_graph *g, mf_node *a, mf_shape shape)
{
    mfi_args args = {.i = {shape.ndim}};
    for (int k = 0; k < shape.ndim && k < MF_MAX_DIMS; k++)
        args.i[1 + k] = shape.dim[k] >= -1 && shape.dim[k] <= INT32_MAX ? (int)shape.dim[k] : 0;
    return mfi_node_new(g, MF_OP_EXPAND, 1, &a, &args);
}

static void expand_shape(mf_node *n)
{
    const mf_node *a = n->in[0];
    const int nd = n->iarg[0], pad = nd - a->shape.ndim;
    char sa[MFI_SHAPE_STR], st[MFI_SHAPE_STR];
    mf_shape t = {.ndim = nd >= 1 && nd <= MF_MAX_DIMS ? nd : 0};
    for (int k = 0; k < t.ndim; k++)
        t.dim[k] = n->iarg[1 + k];
    mf_shape_str(&t, st, sizeof st);
    mfi_node_shape_str(a, sa);
    if (t.ndim == 0 || pad < 0) {
        mfi_op_fail(n, "expand: cannot expand %s to %s: the target needs %d to %d axes", sa, st,
                    a->shape.ndim, MF_MAX_DIMS);
        return;
    }
    for (int k = 0; k < nd; k++) {
        const int64_t ad = k >= pad ? a->shape.dim[k - pad] : -2; /* -2: a lacks the axis */
        if (t.dim[k] == -1 && ad > 0)
            t.dim[k] = ad;
        if (t.dim[k] <= 0 || (ad > 1 && t.dim[k] != ad)) {
            if (ad > 1)
                mfi_op_fail(n, "expand: cannot expand %s to %s: axis %d must be %lld or -1", sa,
                            st, k, (long long)ad);
            else
                mfi_op_fail(n, "expand: cannot expand %s to %s: axis %d must be positive%s", sa,
                            st, k, ad == 1 ? " or -1" : " (a new leading axis)");
            return;
        }
    }
    n->shape = t;
}

void mfi_op_expand(mf_node *n, int action)
{
    // a (…) with size-1 axes repeated to out; da += dout summed over the repeated axes
    mf_node *a = n->in[0];
    const int64_t numel = n->numel;
    int64_t d[4], sx[4];
    const int64_t sy[4] = {0, 0, 0, 0};
    if (action == MFI_SHAPE) {
        expand_shape(n);
        return;
    }
    view4(&n->shape, d);
    strides4(&a->shape, sx);
    coalesce(d, 1, (int64_t *const[]){sx});
    const float *X = a->value, *Y = a->value, *G = n->grad;
    if (action == MFI_FORWARD) {
        float *O = n->value;
        BC_MAP(x);
    } else if (action == MFI_BACKWARD && a->grad) {
        float *D = a->grad;
        BC_GRAD(g);
    }
}

/* ================================================================ masked_fill */
mf_node *mf_masked_fill(mf_graph *g, mf_node *a, mf_node *mask, float value)
{
    mf_node *in[2] = {a, mask};
    mfi_args args = {.f = {value}};
    return mfi_node_new(g, MF_OP_MASKED_FILL, 2, in, &args);
}

/* a viewed as 4-D (leading 1s); the mask's element strides over that view, 0 where broadcast. */
static void mask_strides(const mf_node *a, const mf_node *mask, int64_t dim[4], int64_t ms[4])
{
    const int pad = 4 - a->shape.ndim;
    int64_t stride = 1;
    for (int k = 3; k >= 0; k--) {
        const int i = k - pad;
        dim[k] = i >= 0 ? a->shape.dim[i] : 1;
        const int64_t md = i >= 0 ? mask->shape.dim[i] : 1;
        ms[k] = md == 1 ? 0 : stride;
        stride *= md;
    }
}

void mfi_op_masked_fill(mf_node *n, int action)
{
    // a is (…), mask has a's ndim with each axis a's or 1; out[i] = mask[i'] != 0 ? value : a[i]
    // where i' is i with the mask's broadcast axes set to 0; da[i] += mask[i'] ? 0 : dout[i]
    mf_node *a = n->in[0], *mask = n->in[1];
    const float value = n->farg[0];
    if (action == MFI_SHAPE) {
        int ok = mask->shape.ndim == a->shape.ndim;
        for (int i = 0; ok && i < a->shape.ndim; i++)
            ok = mask->shape.dim[i] == a->shape.dim[i] || mask->shape.dim[i] == 1;
        if (!ok) {
            char sa[MFI_SHAPE_STR], sm[MFI_SHAPE_STR];
            mfi_op_fail(n, "masked_fill: mask %s does not broadcast to %s: it needs the same "
                           "number of axes, each equal to a's or 1",
                        mfi_node_shape_str(mask, sm), mfi_node_shape_str(a, sa));
            return;
        }
        n->shape = a->shape;
        return;
    }
    if (action != MFI_FORWARD && action != MFI_BACKWARD)
        return;
    if (action == MFI_BACKWARD && !a->grad)
        return;
    const int64_t numel = n->numel;
    const float *M = mask->value;
    if (mf_shape_equal(&a->shape, &mask->shape)) {
        const float *A = a->value, *G = n->grad;
        float *O = action == MFI_FORWARD ? n->value : a->grad;
        if (action == MFI_FORWARD) {
            // independent elements: vectorise, split big tensors statically between threads
            MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,
            for (int64_t i = 0; i < numel; i++)
                O[i] = M[i] != 0.0f ? value : A[i];);
        } else {
            // independent elements: vectorise, split big tensors statically between threads
            MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,
            for (int64_t i = 0; i < numel; i++)
                O[i] += M[i] != 0.0f ? 0.0f : G[i];);
        }
        return;
    }
    int64_t d[4], ms[4];
    mask_strides(a, mask, d, ms);
    const int64_t outer = d[0] * d[1];
    const int fwd = action == MFI_FORWARD;
    // independent (i0,i1) planes: split big tensors statically between threads
    MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,
    for (int64_t p = 0; p < outer; p++) {
        const int64_t i0 = p / d[1], i1 = p % d[1];
        for (int64_t i2 = 0; i2 < d[2]; i2++) {
            const int64_t base = (p * d[2] + i2) * d[3];
            const float *mrow = M + i0 * ms[0] + i1 * ms[1] + i2 * ms[2];
            if (fwd) {
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    n->value[base + i3] = mrow[i3 * ms[3]] != 0.0f ? value : a->value[base + i3];
            } else {
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    a->grad[base + i3] += mrow[i3 * ms[3]] != 0.0f ? 0.0f : n->grad[base + i3];
            }
        }
    });
}
