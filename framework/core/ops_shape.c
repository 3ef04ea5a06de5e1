/* Shape ops: concat along the feature axis. */
#include <string.h>

#include "core_internal.h"

mf_node *mf_concat(mf_graph *g, int n, mf_node *const *xs)
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
    return mfi_node_new(g, MF_OP_CONCAT, n, xs, NULL);
}

void mfi_op_concat(mf_node *n, int action)
{
    // x_i is (B,F_i), out is (B, ΣF_i)
    const int64_t B = n->n_in ? n->in[0]->shape.dim[0] : 0;
    const int64_t F = n->shape.dim[1];
    switch (action) {
    case MFI_SHAPE: {
        int64_t total = 0;
        for (int i = 0; i < n->n_in; i++) {
            const mf_node *x = n->in[i];
            char s0[MFI_SHAPE_STR], si[MFI_SHAPE_STR];
            if (x->shape.ndim != 2) {
                mfi_op_fail(n, "concat: input %d must be 2-D (B,F), got %s", i,
                            mfi_node_shape_str(x, si));
                return;
            }
            if (x->shape.dim[0] != B) {
                mfi_op_fail(n, "concat: batch sizes differ: input 0 is %s, input %d is %s",
                            mfi_node_shape_str(n->in[0], s0), i, mfi_node_shape_str(x, si));
                return;
            }
            total += x->shape.dim[1];
        }
        n->shape = mf_shape2(B, total);
        return;
    }
    case MFI_FORWARD: {
        int64_t off = 0;
        for (int i = 0; i < n->n_in; i++) {
            const mf_node *x = n->in[i];
            const int64_t Fi = x->shape.dim[1];
            for (int64_t b = 0; b < B; b++)
                memcpy(n->value + b * F + off, x->value + b * Fi, (size_t)Fi * sizeof(float));
            off += Fi;
        }
        return;
    }
    case MFI_BACKWARD: {
        int64_t off = 0;
        for (int i = 0; i < n->n_in; i++) {
            mf_node *x = n->in[i];
            const int64_t Fi = x->shape.dim[1];
            if (x->grad)
                for (int64_t b = 0; b < B; b++) {
                    const float *d = n->grad + b * F + off;
                    float *dx = x->grad + b * Fi;
                    for (int64_t j = 0; j < Fi; j++)
                        dx[j] += d[j];
                }
            off += Fi;
        }
        return;
    }
    default:
        return;
    }
}
