/* Elementwise ops: add (with row-broadcast bias), mul, scale, relu, tanh, sigmoid. */
#include <math.h>

#include "core_internal.h"

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
mf_node *mf_mul(mf_graph *g, mf_node *a, mf_node *b) { return binary(g, MF_OP_MUL, a, b); }
mf_node *mf_scale(mf_graph *g, mf_node *a, float s)
{
    mfi_args args = {.f = {s}};
    return unary(g, MF_OP_SCALE, a, &args);
}
mf_node *mf_relu(mf_graph *g, mf_node *a) { return unary(g, MF_OP_RELU, a, NULL); }
mf_node *mf_tanh(mf_graph *g, mf_node *a) { return unary(g, MF_OP_TANH, a, NULL); }
mf_node *mf_sigmoid(mf_graph *g, mf_node *a) { return unary(g, MF_OP_SIGMOID, a, NULL); }

void mfi_op_add(mf_node *n, int action)
{
    // a is (M,N); b is (M,N), or (N) / (1,N) added to every row (iarg[0] = 1); out is (M,N)
    mf_node *a = n->in[0], *b = n->in[1];
    const int64_t numel = n->numel;
    switch (action) {
    case MFI_SHAPE: {
        if (mf_shape_equal(&a->shape, &b->shape)) {
            n->iarg[0] = 0;
        } else if (a->shape.ndim == 2 &&
                   ((b->shape.ndim == 1 && b->shape.dim[0] == a->shape.dim[1]) ||
                    (b->shape.ndim == 2 && b->shape.dim[0] == 1 &&
                     b->shape.dim[1] == a->shape.dim[1]))) {
            n->iarg[0] = 1;
        } else {
            char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
            mfi_node_shape_str(a, sa);
            mfi_node_shape_str(b, sb);
            if (a->shape.ndim == 2)
                mfi_op_fail(n, "add: shapes differ: %s + %s; a row bias for %s must be (%lld) or (1,%lld)",
                            sa, sb, sa, (long long)a->shape.dim[1], (long long)a->shape.dim[1]);
            else
                mfi_op_fail(n, "add: shapes differ: %s + %s", sa, sb);
            return;
        }
        n->shape = a->shape;
        return;
    }
    case MFI_FORWARD:
        if (!n->iarg[0]) {
            for (int64_t i = 0; i < numel; i++)
                n->value[i] = a->value[i] + b->value[i];
        } else {
            const int64_t M = a->shape.dim[0], N = a->shape.dim[1];
            for (int64_t i = 0; i < M; i++) {
                const float *ar = a->value + i * N;
                float *o = n->value + i * N;
                for (int64_t j = 0; j < N; j++)
                    o[j] = ar[j] + b->value[j];
            }
        }
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < numel; i++)
                a->grad[i] += n->grad[i];
        if (b->grad) {
            if (!n->iarg[0]) {
                for (int64_t i = 0; i < numel; i++)
                    b->grad[i] += n->grad[i];
            } else { // db (N) += column sums of dout (M,N)
                const int64_t M = a->shape.dim[0], N = a->shape.dim[1];
                for (int64_t i = 0; i < M; i++) {
                    const float *d = n->grad + i * N;
                    for (int64_t j = 0; j < N; j++)
                        b->grad[j] += d[j];
                }
            }
        }
        return;
    default:
        return;
    }
}

void mfi_op_mul(mf_node *n, int action)
{
    // a, b and out have one shape
    mf_node *a = n->in[0], *b = n->in[1];
    const int64_t numel = n->numel;
    switch (action) {
    case MFI_SHAPE:
        if (!mf_shape_equal(&a->shape, &b->shape)) {
            char sa[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
            mfi_op_fail(n, "mul: shapes differ: %s * %s", mfi_node_shape_str(a, sa),
                        mfi_node_shape_str(b, sb));
            return;
        }
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        for (int64_t i = 0; i < numel; i++)
            n->value[i] = a->value[i] * b->value[i];
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < numel; i++)
                a->grad[i] += n->grad[i] * b->value[i];
        if (b->grad)
            for (int64_t i = 0; i < numel; i++)
                b->grad[i] += n->grad[i] * a->value[i];
        return;
    default:
        return;
    }
}

void mfi_op_scale(mf_node *n, int action)
{
    // out = s·a, same shape
    mf_node *a = n->in[0];
    const float s = n->farg[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        for (int64_t i = 0; i < n->numel; i++)
            n->value[i] = s * a->value[i];
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < n->numel; i++)
                a->grad[i] += s * n->grad[i];
        return;
    default:
        return;
    }
}

void mfi_op_relu(mf_node *n, int action)
{
    // out = max(a, 0), same shape; the gradient at 0 is 0
    mf_node *a = n->in[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        for (int64_t i = 0; i < n->numel; i++)
            n->value[i] = a->value[i] > 0.0f ? a->value[i] : 0.0f;
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < n->numel; i++)
                a->grad[i] += n->value[i] > 0.0f ? n->grad[i] : 0.0f;
        return;
    default:
        return;
    }
}

void mfi_op_tanh(mf_node *n, int action)
{
    // out = tanh(a), same shape; d/da = 1 - out²
    mf_node *a = n->in[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        for (int64_t i = 0; i < n->numel; i++)
            n->value[i] = tanhf(a->value[i]);
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < n->numel; i++) {
                const float y = n->value[i];
                a->grad[i] += n->grad[i] * (1.0f - y * y);
            }
        return;
    default:
        return;
    }
}

void mfi_op_sigmoid(mf_node *n, int action)
{
    // out = 1/(1+e^-a), same shape; d/da = out·(1 - out)
    mf_node *a = n->in[0];
    switch (action) {
    case MFI_SHAPE:
        n->shape = a->shape;
        return;
    case MFI_FORWARD:
        for (int64_t i = 0; i < n->numel; i++) {
            const float x = a->value[i]; /* never exponentiate a large positive number */
            if (x >= 0.0f) {
                n->value[i] = 1.0f / (1.0f + expf(-x));
            } else {
                const float e = expf(x);
                n->value[i] = e / (1.0f + e);
            }
        }
        return;
    case MFI_BACKWARD:
        if (a->grad)
            for (int64_t i = 0; i < n->numel; i++) {
                const float y = n->value[i];
                a->grad[i] += n->grad[i] * y * (1.0f - y);
            }
        return;
    default:
        return;
    }
}
