/* Ops that talk to the other ranks of a data-parallel step (issue 14). The core knows no MPI:
 * the train layer gives a graph an mfi_collective (graph.c, mfi_graph_set_collective), and
 * these kernels call it.
 *
 * gather_batch: x (b,…) this rank's rows → (B,…) every rank's rows in rank order, B the
 * step's whole batch. Backward: the output's gradient is summed over the ranks, and this
 * rank's slice [offset, offset + b) of the sum is added to x's gradient. With the trainer's
 * weighting (rank r seeds its backward with b_r / samples), every rank computes the whole
 * batch's loss L and Σ_r b_r / samples · ∂L/∂out = ∂L/∂out · B / samples, which is what one
 * process seeds: the rows' gradients, and after the trainer's all-reduce every parameter's,
 * equal one process's (docs/distributed.md). */
#include <math.h>
#include <string.h>

#include "ops_common.h"

mf_node *mf_gather_batch(mf_graph *g, mf_node *x)
{
    if (!g || !x)
        return NULL;
    const mfi_collective *c = g->collective;
    if (!c || c->size <= 1) { /* one process: the batch is all here, x itself */
        if (g->compiled || x->graph != g)
            mfi_graph_fail(g, "gather_batch: %s", g->compiled
                                  ? "the graph is already compiled; no node can be added to it"
                                  : "input 0 belongs to another graph");
        return g->compiled || x->graph != g ? NULL : x;
    }
    // iarg[0..1] the whole batch B, iarg[2..3] this rank's offset in it
    mfi_args args = {{0}};
    mfi_put_i64(args.i, c->batch_rows);
    mfi_put_i64(args.i + 2, c->offset);
    return mfi_node_new(g, MF_OP_GATHER_BATCH, 1, &x, &args);
}

/* The gathered rows, or NaN with the graph failed: never a silently short batch. */
static void gather_forward(mf_node *n, const mfi_collective *c, int64_t rows, int64_t offset)
{
    const mf_node *x = n->in[0];
    const int64_t b = x->shape.dim[0], width = x->numel / (b > 0 ? b : 1);
    memcpy(n->value, x->value, (size_t)x->numel * sizeof(float));
    int64_t total = 0;
    const int rc = c->gather_rows(c->ctx, n->value, b, width, rows, &total);
    /* this rank's rows must come back where its gradient will be taken from */
    if (rc == 0 && total == rows &&
        memcmp(n->value + offset * width, x->value, (size_t)x->numel * sizeof(float)) == 0)
        return;
    if (rc)
        mfi_graph_fail(n->graph, "gather_batch: gathering the batch's rows over the %d ranks "
                                 "failed", c->size);
    else if (total != rows)
        mfi_graph_fail(n->graph, "gather_batch: the %d ranks hold %lld rows of the batch, but "
                                 "the graph was built for %lld", c->size, (long long)total,
                       (long long)rows);
    else
        mfi_graph_fail(n->graph, "gather_batch: rank %d's rows came back away from row %lld, "
                                 "where the graph expects them", c->rank, (long long)offset);
    for (int64_t i = 0; i < n->numel; i++)
        n->value[i] = NAN;
}

void mfi_op_gather_batch(mf_node *n, int action)
{
    mf_node *x = n->in[0];
    const int64_t rows = mfi_get_i64(n->iarg), offset = mfi_get_i64(n->iarg + 2);
    const mfi_collective *c = n->graph->collective;
    switch (action) {
    case MFI_SHAPE: {
        const int64_t b = x->shape.dim[0];
        if (offset < 0 || b > rows - offset) {
            char s[MFI_SHAPE_STR];
            mfi_op_fail(n, "gather_batch: this rank's %s rows at row %lld do not fit in the "
                           "batch of %lld", mfi_node_shape_str(x, s), (long long)offset,
                        (long long)rows);
            return;
        }
        n->shape = x->shape;
        n->shape.dim[0] = rows;
        return;
    }
    case MFI_SCRATCH: /* the summed gradient, so that the node's own stays this rank's */
        n->scratch_bytes = n->grad ? (size_t)n->numel * sizeof(float) : 0;
        return;
    case MFI_FORWARD:
        gather_forward(n, c, rows, offset);
        return;
    case MFI_BACKWARD: {
        if (!x->grad)
            return;
        float *sum = n->scratch;
        memcpy(sum, n->grad, (size_t)n->numel * sizeof(float));
        if (c->sum_f32(c->ctx, sum, n->numel)) {
            mfi_graph_fail(n->graph, "gather_batch: summing the batch's gradient over the %d "
                                     "ranks failed", c->size);
            for (int64_t i = 0; i < x->numel; i++)
                x->grad[i] = NAN;
            return;
        }
        const float *mine = sum + offset * (n->numel / rows);
        for (int64_t i = 0; i < x->numel; i++)
            x->grad[i] += mine[i];
        return;
    }
    default:
        return;
    }
}
