/* Shape ops: reshape (a view), permute / transpose, slice / split, concat along any axis,
 * the per-sample outer product. A reshape shares its input's value and gradient buffers
 * (graph.c's compile makes it a view: issue 11, it was 57 copies, 5.8 ms of a 94 ms
 * xattn-fusion step); every other op copies. Permute and concat overwrite an input's
 * gradient when the backward pass says they are its first writer (n->fresh). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ops_common.h"

/* "(a,b,c)" of n ints. */
static const char *ints_str(const int *v, int n, char buf[MFI_SHAPE_STR])
{
    size_t at = 0;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, MFI_SHAPE_STR, "(");
    for (int i = 0; i < n && at < MFI_SHAPE_STR; i++)
        at += (size_t)snprintf(buf + at, MFI_SHAPE_STR - at, i ? ",%d" : "%d", v[i]);
    if (at < MFI_SHAPE_STR)
        snprintf(buf + at, MFI_SHAPE_STR - at, ")");
    return buf;
}

/* ================================================================ reshape */
mf_node *mf_reshape(mf_graph *g, mf_node *a, mf_shape shape)
{
    // iarg[0] the target's ndim, iarg[1..4] its dimensions (clamped to int)
    mfi_args args = {.i = {shape.ndim}};
    for (int i = 0; i < shape.ndim && i < MF_MAX_DIMS; i++) {
        const int64_t d = shape.dim[i];
        args.i[1 + i] = d > INT_MAX ? INT_MAX : d < INT_MIN ? INT_MIN : (int)d;
    }
    return mfi_node_new(g, MF_OP_RESHAPE, 1, &a, &args);
}

void mfi_op_reshape(mf_node *n, int action)
{
    // a is any shape, out has the target shape and a's numel; out = a's data, the same
    // buffer (a view, set at compile): forward and backward have nothing to do
    mf_node *a = n->in[0];
    const int64_t numel = a->numel;
    switch (action) {
    case MFI_SHAPE: {
        char sa[MFI_SHAPE_STR], st[MFI_SHAPE_STR];
        mfi_node_shape_str(a, sa);
        const int nd = n->iarg[0];
        if (nd < 1 || nd > MF_MAX_DIMS) {
            mfi_op_fail(n, "reshape: cannot reshape %s into a shape of %d dimensions: a shape "
                           "needs 1 to %d", sa, nd, MF_MAX_DIMS);
            return;
        }
        mf_shape t = {.ndim = nd};
        int infer = -1, n_infer = 0, bad = 0;
        int64_t known = 1;
        for (int i = 0; i < nd; i++) {
            t.dim[i] = n->iarg[1 + i];
            if (t.dim[i] == -1) {
                infer = i;
                n_infer++;
            } else if (t.dim[i] <= 0) {
                bad = 1;
            } else {
                known *= t.dim[i];
            }
        }
        mf_shape_str(&t, st, sizeof st);
        if (bad) {
            mfi_op_fail(n, "reshape: cannot reshape %s into %s: dimensions must be positive "
                           "(or one -1)", sa, st);
            return;
        }
        if (n_infer > 1) {
            mfi_op_fail(n, "reshape: cannot reshape %s into %s: at most one dimension may be -1",
                        sa, st);
            return;
        }
        if (infer >= 0) {
            if (numel % known != 0) {
                mfi_op_fail(n, "reshape: cannot reshape %s into %s: %lld elements are not a "
                               "multiple of %lld", sa, st, (long long)numel, (long long)known);
                return;
            }
            t.dim[infer] = numel / known;
        } else if (known != numel) {
            mfi_op_fail(n, "reshape: cannot reshape %s into %s: %lld elements vs %lld", sa, st,
                        (long long)numel, (long long)known);
            return;
        }
        n->shape = t;
        return;
    }
    case MFI_FORWARD:
        if (n->value != a->value)
            memcpy(n->value, a->value, (size_t)numel * sizeof(float));
        return;
    case MFI_BACKWARD: {
        if (!a->grad || n->grad == a->grad)
            return;
        const float *G = n->grad;
        float *D = a->grad;
        // independent elements: split big tensors statically between threads
        MFI_PARALLEL_FOR(numel > MFI_OMP_MIN_ELEMS,
        for (int64_t i = 0; i < numel; i++)
            D[i] += G[i];);
        return;
    }
    default:
        return;
    }
}

/* ================================================================ permute, transpose */
mf_node *mf_permute(mf_graph *g, mf_node *a, const int *perm)
{
    // iarg[0] ndim, iarg[1..4] perm (as given; normalised at MFI_SHAPE)
    mfi_args args = {.i = {0}};
    if (a && perm) {
        args.i[0] = a->shape.ndim;
        for (int i = 0; i < a->shape.ndim && i < MF_MAX_DIMS; i++)
            args.i[1 + i] = perm[i];
    }
    return mfi_node_new(g, MF_OP_PERMUTE, 1, &a, &args);
}

mf_node *mf_transpose(mf_graph *g, mf_node *a, int axis0, int axis1)
{
    if (!g || !a || g->compiled) /* let mfi_node_new pass NULL through or report */
        return mf_permute(g, a, NULL);
    const int nd = a->shape.ndim;
    const int x0 = mfi_axis(axis0, nd), x1 = mfi_axis(axis1, nd);
    if (x0 < 0 || x1 < 0) {
        char s[MFI_SHAPE_STR];
        mfi_graph_fail(g, "transpose: axis %d is out of range for %s", x0 < 0 ? axis0 : axis1,
                       mfi_node_shape_str(a, s));
        return NULL;
    }
    int perm[MF_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        perm[i] = i;
    perm[x0] = x1;
    perm[x1] = x0;
    return mf_permute(g, a, perm);
}

/* a's element strides for out's axes, both padded to 4-D with leading 1s (stride 0). */
static void permute_strides(const mf_node *n, int64_t od[4], int64_t is[4])
{
    const mf_node *a = n->in[0];
    const int nd = a->shape.ndim, pad = 4 - nd;
    int64_t astride[MF_MAX_DIMS];
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        astride[i] = s;
        s *= a->shape.dim[i];
    }
    for (int k = 0; k < 4; k++) {
        const int i = k - pad;
        od[k] = i >= 0 ? n->shape.dim[i] : 1;
        is[k] = i >= 0 ? astride[n->iarg[1 + i]] : 0;
    }
}

void mfi_op_permute(mf_node *n, int action)
{
    // a is (d_0,…,d_{k-1}), out is (d_perm[0],…,d_perm[k-1]):
    // out[i_0,…,i_{k-1}] = a[j] with j_perm[m] = i_m; da[j] += dout[i] (a bijection)
    mf_node *a = n->in[0];
    if (action == MFI_SHAPE) {
        const int nd = a->shape.ndim;
        char sa[MFI_SHAPE_STR], sp[MFI_SHAPE_STR];
        if (n->iarg[0] != nd) {
            mfi_op_fail(n, "permute: no permutation given for the axes of %s",
                        mfi_node_shape_str(a, sa));
            return;
        }
        int seen[MF_MAX_DIMS] = {0}, ok = 1;
        for (int i = 0; i < nd; i++) {
            const int x = mfi_axis(n->iarg[1 + i], nd);
            ok = ok && x >= 0 && !seen[x];
            if (x >= 0)
                seen[x] = 1;
        }
        if (!ok) {
            mfi_op_fail(n, "permute: %s is not a permutation of the %d axes of %s",
                        ints_str(n->iarg + 1, nd, sp), nd, mfi_node_shape_str(a, sa));
            return;
        }
        n->shape.ndim = nd;
        for (int i = 0; i < nd; i++) {
            n->iarg[1 + i] = mfi_axis(n->iarg[1 + i], nd);
            n->shape.dim[i] = a->shape.dim[n->iarg[1 + i]];
        }
        return;
    }
    if (action != MFI_FORWARD && action != MFI_BACKWARD)
        return;
    if (action == MFI_BACKWARD && !a->grad)
        return;
    int64_t od[4], is[4];
    permute_strides(n, od, is);
    const int fwd = action == MFI_FORWARD;
    const int64_t planes = od[0] * od[1], s3 = is[3];
    // restrict copies, and the last axis kept (attention's head split: (B,T,H,d) → (B,H,T,d))
    // as its own case: rows of d contiguous floats that gcc vectorises (was 5 GB/s scalar)
    float *restrict out = fwd ? n->value : n->grad, *restrict in = fwd ? a->value : a->grad;
    const int set = !fwd && (n->fresh & 1u); /* first writer of da: = (a bijection) */
    // independent output planes (each a's element is touched once): split statically
    MFI_PARALLEL_FOR(n->numel > MFI_OMP_MIN_ELEMS,
    for (int64_t p = 0; p < planes; p++) {
        const int64_t i0 = p / od[1], i1 = p % od[1];
        for (int64_t i2 = 0; i2 < od[2]; i2++) {
            float *restrict o = out + (p * od[2] + i2) * od[3];
            float *restrict src = in + i0 * is[0] + i1 * is[1] + i2 * is[2];
            if (fwd && s3 == 1)
                memcpy(o, src, (size_t)od[3] * sizeof(float));
            else if (fwd)
                for (int64_t i3 = 0; i3 < od[3]; i3++)
                    o[i3] = src[i3 * s3];
            else if (set && s3 == 1)
                memcpy(src, o, (size_t)od[3] * sizeof(float));
            else if (set)
                for (int64_t i3 = 0; i3 < od[3]; i3++)
                    src[i3 * s3] = o[i3];
            else if (s3 == 1)
                for (int64_t i3 = 0; i3 < od[3]; i3++)
                    src[i3] += o[i3];
            else
                for (int64_t i3 = 0; i3 < od[3]; i3++)
                    src[i3 * s3] += o[i3];
        }
    });
}

/* ================================================================ slice, split */
mf_node *mf_slice(mf_graph *g, mf_node *a, int axis, int64_t start, int64_t length)
{
    // iarg[0] axis, iarg[1..2] start, iarg[3..4] length; iarg[5] the normalised axis
    mfi_args args = {.i = {axis}};
    mfi_put_i64(args.i + 1, start);
    mfi_put_i64(args.i + 3, length);
    return mfi_node_new(g, MF_OP_SLICE, 1, &a, &args);
}

void mfi_op_slice(mf_node *n, int action)
{
    // a viewed as (outer, len, inner) around the axis, out is (outer, length, inner):
    // out[o,k,i] = a[o,start+k,i]; da[o,start+k,i] += dout[o,k,i]
    mf_node *a = n->in[0];
    const int64_t start = mfi_get_i64(n->iarg + 1), length = mfi_get_i64(n->iarg + 3);
    if (action == MFI_SHAPE) {
        char s[MFI_SHAPE_STR];
        mfi_node_shape_str(a, s);
        const int axis = mfi_axis(n->iarg[0], a->shape.ndim);
        if (axis < 0) {
            mfi_op_fail(n, "slice: axis %d is out of range for %s", n->iarg[0], s);
            return;
        }
        if (start < 0 || length <= 0 || start > a->shape.dim[axis] - length) {
            mfi_op_fail(n, "slice: [%lld, %lld) is %s for axis %d of %s", (long long)start,
                        (long long)(start + length), length <= 0 ? "empty" : "out of range",
                        axis, s);
            return;
        }
        n->iarg[5] = axis;
        n->shape = a->shape;
        n->shape.dim[axis] = length;
        return;
    }
    if (action != MFI_FORWARD && action != MFI_BACKWARD)
        return;
    if (action == MFI_BACKWARD && !a->grad)
        return;
    int64_t outer, len, inner;
    mfi_axis_split(&a->shape, n->iarg[5], &outer, &len, &inner);
    const int64_t w = length * inner; /* contiguous floats per outer index */
    for (int64_t o = 0; o < outer; o++) {
        const int64_t src = (o * len + start) * inner, dst = o * w;
        if (action == MFI_FORWARD) {
            memcpy(n->value + dst, a->value + src, (size_t)w * sizeof(float));
        } else {
            const float *G = n->grad + dst;
            float *D = a->grad + src;
            for (int64_t j = 0; j < w; j++)
                D[j] += G[j];
        }
    }
}

int mf_split(mf_graph *g, mf_node *a, int axis, int n, const int64_t *sizes, mf_node **out)
{
    if (!out || n <= 0) {
        if (g && !g->compiled)
            mfi_graph_fail(g, "split: needs at least one part and somewhere to put them");
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (!g || !a)
        return -1;
    if (g->compiled) { /* records the graph's "already compiled" error */
        mf_slice(g, a, axis, 0, 1);
        return -1;
    }
    char s[MFI_SHAPE_STR];
    mfi_node_shape_str(a, s);
    const int x = mfi_axis(axis, a->shape.ndim);
    if (x < 0) {
        mfi_graph_fail(g, "split: axis %d is out of range for %s", axis, s);
        return -1;
    }
    int64_t total = 0;
    int positive = sizes != NULL;
    for (int i = 0; positive && i < n; i++) {
        positive = sizes[i] > 0;
        total += sizes[i];
    }
    if (!positive || total != a->shape.dim[x]) {
        char list[MFI_SHAPE_STR] = "()";
        if (sizes) {
            size_t at = 0;
            for (int i = 0; i < n && at + 1 < sizeof list; i++)
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%lld", i ? "," : "(",
                                       (long long)sizes[i]);
            if (at + 1 < sizeof list)
                snprintf(list + at, sizeof list - at, ")");
        }
        if (!positive)
            mfi_graph_fail(g, "split: sizes %s must all be positive, splitting axis %d of %s",
                           list, x, s);
        else
            mfi_graph_fail(g, "split: sizes %s sum to %lld but axis %d of %s has %lld", list,
                           (long long)total, x, s, (long long)a->shape.dim[x]);
        return -1;
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        out[i] = mf_slice(g, a, x, start, sizes[i]);
        if (!out[i]) {
            for (int k = 0; k < n; k++)
                out[k] = NULL;
            return -1;
        }
        start += sizes[i];
    }
    return 0;
}

/* ================================================================ concat */
static mf_node *concat_new(mf_graph *g, int n, mf_node *const *xs, int axis, int legacy)
{
    if (!g)
        return NULL;
    if (n <= 0 || !xs) {
        if (!g->compiled) {
            mfi_graph_fail(g, "concat: needs at least one input");
            return NULL;
        }
        n = 0;
    }
    // iarg[0] axis as given, iarg[1] mf_concat's (B,F) rules, iarg[2] the normalised axis
    mfi_args args = {.i = {axis, legacy}};
    return mfi_node_new(g, MF_OP_CONCAT, n, xs, &args);
}

mf_node *mf_concat(mf_graph *g, int n, mf_node *const *xs) { return concat_new(g, n, xs, 1, 1); }

mf_node *mf_concat_axis(mf_graph *g, int n, mf_node *const *xs, int axis)
{
    return concat_new(g, n, xs, axis, 0);
}

static int concat_shape(mf_node *n)
{
    const mf_node *x0 = n->in[0];
    char s0[MFI_SHAPE_STR], si[MFI_SHAPE_STR];
    mfi_node_shape_str(x0, s0);
    if (n->iarg[1]) { /* mf_concat: (B,F_i) inputs */
        for (int i = 0; i < n->n_in; i++) {
            const mf_node *x = n->in[i];
            if (x->shape.ndim != 2) {
                mfi_op_fail(n, "concat: input %d must be 2-D (B,F), got %s", i,
                            mfi_node_shape_str(x, si));
                return -1;
            }
            if (x->shape.dim[0] != x0->shape.dim[0]) {
                mfi_op_fail(n, "concat: batch sizes differ: input 0 is %s, input %d is %s", s0, i,
                            mfi_node_shape_str(x, si));
                return -1;
            }
        }
    }
    const int nd = x0->shape.ndim, axis = mfi_axis(n->iarg[0], nd);
    if (axis < 0) {
        mfi_op_fail(n, "concat: axis %d is out of range for %s", n->iarg[0], s0);
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < n->n_in; i++) {
        const mf_node *x = n->in[i];
        mfi_node_shape_str(x, si);
        if (x->shape.ndim != nd) {
            mfi_op_fail(n, "concat: input %d is %s but input 0 is %s: inputs need the same "
                           "number of axes", i, si, s0);
            return -1;
        }
        for (int k = 0; k < nd; k++)
            if (k != axis && x->shape.dim[k] != x0->shape.dim[k]) {
                mfi_op_fail(n, "concat: shapes differ outside axis %d: input 0 is %s, input %d "
                               "is %s", axis, s0, i, si);
                return -1;
            }
        total += x->shape.dim[axis];
    }
    n->iarg[2] = axis;
    n->shape = x0->shape;
    n->shape.dim[axis] = total;
    return 0;
}

void mfi_op_concat(mf_node *n, int action)
{
    // x_i viewed as (outer, L_i, inner) around the axis, out is (outer, ΣL_i, inner);
    // each outer index holds the inputs' contiguous blocks of L_i·inner floats one after another
    if (action == MFI_SHAPE) {
        concat_shape(n);
        return;
    }
    if (action != MFI_FORWARD && action != MFI_BACKWARD)
        return;
    if (n->value == n->in[0]->value) /* one input: a view (graph.c) */
        return;
    int64_t outer, L, inner;
    mfi_axis_split(&n->shape, n->iarg[2], &outer, &L, &inner);
    const int64_t W = L * inner; /* out floats per outer index */
    int64_t off = 0;
    for (int i = 0; i < n->n_in; i++) {
        mf_node *x = n->in[i];
        const int64_t w = x->shape.dim[n->iarg[2]] * inner;
        if (action == MFI_FORWARD) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(n->value + o * W + off, x->value + o * w, (size_t)w * sizeof(float));
        } else if (x->grad && i < 32 && (n->fresh >> i & 1u)) { // first writer of dx
            for (int64_t o = 0; o < outer; o++)
                memcpy(x->grad + o * w, n->grad + o * W + off, (size_t)w * sizeof(float));
        } else if (x->grad) {
            for (int64_t o = 0; o < outer; o++) {
                const float *d = n->grad + o * W + off;
                float *dx = x->grad + o * w;
                for (int64_t j = 0; j < w; j++)
                    dx[j] += d[j];
            }
        }
        off += w;
    }
}

/* ================================================================ outer */
mf_node *mf_outer(mf_graph *g, mf_node *a, mf_node *b)
{
    mf_node *in[2] = {a, b};
    return mfi_node_new(g, MF_OP_OUTER, 2, in, NULL);
}

#define OUTER_SPLIT_MIN (INT64_C(1) << 17)

void mfi_op_outer(mf_node *n, int action)
{
    // a is (B,P), b is (B,Q), out is (B,P·Q): out[s,i·Q+j] = a[s,i]·b[s,j];
    // da[s,i] += Σ_j dout[s,i·Q+j]·b[s,j]; db[s,j] += Σ_i dout[s,i·Q+j]·a[s,i]
    mf_node *a = n->in[0], *b = n->in[1];
    if (action == MFI_SHAPE) {
        if (a->shape.ndim != 2 || b->shape.ndim != 2 || a->shape.dim[0] != b->shape.dim[0]) {
            char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
            mfi_op_fail(n, "outer: inputs must be (B,P) and (B,Q) with one B, got %s and %s",
                        mfi_node_shape_str(a, sa), mfi_node_shape_str(b, sb));
            return;
        }
        n->shape = mf_shape2(a->shape.dim[0], a->shape.dim[1] * b->shape.dim[1]);
        return;
    }
    const int64_t B = a->shape.dim[0], P = a->shape.dim[1], Q = b->shape.dim[1];
    /* split from 128k outputs: satellite-tensor's (64, 33·33) = 70k split made the whole run
     * 1.24× slower at 2 threads, tensor-fusion's (128, 33·33) = 139k gains a little */
    const int split = n->numel >= OUTER_SPLIT_MIN;
    switch (action) {
    case MFI_FORWARD:
        // independent samples: split big tensors statically between threads
        MFI_PARALLEL_FOR(split,
        for (int64_t s = 0; s < B; s++) {
            const float *ar = a->value + s * P, *br = b->value + s * Q;
            float *o = n->value + s * P * Q;
            for (int64_t i = 0; i < P; i++)
                for (int64_t j = 0; j < Q; j++)
                    o[i * Q + j] = ar[i] * br[j];
        });
        return;
    case MFI_BACKWARD:
        // independent samples, each summed in order by one thread
        MFI_PARALLEL_FOR(split,
        for (int64_t s = 0; s < B; s++) {
            const float *ar = a->value + s * P, *br = b->value + s * Q;
            const float *d = n->grad + s * P * Q;
            if (a->grad) {
                float *da = a->grad + s * P;
                for (int64_t i = 0; i < P; i++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < Q; j++)
                        acc += d[i * Q + j] * br[j];
                    da[i] += acc;
                }
            }
            if (b->grad) {
                float *db = b->grad + s * Q;
                for (int64_t i = 0; i < P; i++)
                    for (int64_t j = 0; j < Q; j++)
                        db[j] += d[i * Q + j] * ar[i];
            }
        });
        return;
    default:
        return;
    }
}
