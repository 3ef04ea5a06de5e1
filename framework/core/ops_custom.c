/* Custom ops: a plugin's forward/backward over raw float buffers, run as a graph node.
 *
 * The node keeps its per-node state in n->attr (a custom_state in the graph's arena): the
 * copied attributes, the input shapes, and the pointer arrays handed to the callbacks, so
 * replaying never allocates. n->custom is the op (the caller keeps it alive as long as the
 * graph, like a plugin's static table). */
#include <stdlib.h>
#include <string.h>

#include "ops_common.h"

__thread mfi_custom_running mfi_custom_now __attribute__((tls_model("initial-exec")));

typedef struct custom_state {
    const void *attr;     /* the op's attributes, copied; NULL when attr_size is 0 */
    mf_shape *in_shape;   /* n_in shapes */
    const float **in;     /* n_in input values, filled before each call */
    float **in_grad;      /* n_in input gradients (NULL where none), before backward */
} custom_state;

/* mfi_node_new runs MFI_SHAPE before it returns the node, so mf_custom hands the op and its
 * state to mfi_op_custom here (per thread: graphs may be built on several threads). */
static _Thread_local const mf_custom_op *pending_op;
static _Thread_local custom_state *pending_state;

static const char *op_name(const mf_custom_op *op)
{
    return op && op->name && *op->name ? op->name : "custom";
}

mf_node *mf_custom(mf_graph *g, const mf_custom_op *op, int n_in, mf_node *const *in,
                   const void *attr, size_t attr_size)
{
    if (!g)
        return NULL;
    if (g->compiled) /* records the graph's "already compiled" error */
        return mfi_node_new(g, MF_OP_CUSTOM, 0, NULL, NULL);
    const char *name = op_name(op);
    if (!op) {
        mfi_graph_fail(g, "custom: no op given");
        return NULL;
    }
    if (op->struct_size != sizeof(mf_custom_op)) {
        mfi_graph_fail(g, "%s: struct_size is %u but this host's mf_custom_op has %zu bytes",
                       name, (unsigned)op->struct_size, sizeof(mf_custom_op));
        return NULL;
    }
    if (!op->shape || !op->forward) {
        mfi_graph_fail(g, "%s: a custom op needs a shape and a forward callback", name);
        return NULL;
    }
    if (n_in < 0 || (n_in > 0 && !in)) {
        mfi_graph_fail(g, "%s: bad input list (%d inputs)", name, n_in);
        return NULL;
    }
    if (attr_size > 0 && !attr) {
        mfi_graph_fail(g, "%s: attr_size is %zu but attr is NULL", name, attr_size);
        return NULL;
    }
    for (int i = 0; i < n_in; i++)
        if (!in[i])
            return NULL; /* pass an earlier failure through */

    const size_t k = n_in > 0 ? (size_t)n_in : 1;
    custom_state *st = mf_arena_alloc(g->arena, sizeof *st);
    mf_shape *shapes = mf_arena_alloc(g->arena, k * sizeof *shapes);
    const float **ins = mf_arena_alloc(g->arena, k * sizeof *ins);
    float **grads = mf_arena_alloc(g->arena, k * sizeof *grads);
    void *attr_copy = attr_size ? mf_arena_alloc(g->arena, attr_size) : NULL;
    if (!st || !shapes || !ins || !grads || (attr_size && !attr_copy)) {
        mfi_graph_fail(g, "%s: out of memory", name);
        return NULL;
    }
    if (attr_size)
        memcpy(attr_copy, attr, attr_size);
    st->attr = attr_copy;
    st->in_shape = shapes;
    st->in = ins;
    st->in_grad = grads;

    pending_op = op;
    pending_state = st;
    mf_node *n = mfi_node_new(g, MF_OP_CUSTOM, n_in, in, NULL);
    pending_op = NULL;
    pending_state = NULL;
    return n;
}

/* Whether any input will take a gradient once compiled: the compile rule (a variable or
 * parameter in a training graph, or a node with such an input) run over n's ancestors. */
static int inputs_need_grad(const mf_node *n)
{
    const mf_graph *g = n->graph;
    if (!g->training || n->n_in == 0)
        return 0;
    int top = 0;
    for (int i = 0; i < n->n_in; i++)
        top = n->in[i]->id > top ? n->in[i]->id : top;
    unsigned char *need = calloc((size_t)top + 1, 1);
    if (!need)
        return 1; /* cannot tell: assume the worst */
    for (int i = 0; i <= top; i++) {
        const mf_node *m = g->nodes[i];
        int v = m->op == MF_OP_VARIABLE || m->op == MF_OP_PARAM;
        for (int j = 0; j < m->n_in && !v; j++)
            v = need[m->in[j]->id];
        need[i] = (unsigned char)v;
    }
    int any = 0;
    for (int i = 0; i < n->n_in && !any; i++)
        any = need[n->in[i]->id];
    free(need);
    return any;
}

void mfi_op_custom(mf_node *n, int action)
{
    // inputs and output as the op's shape callback says; forward and backward are the op's
    const mf_custom_op *op = n->custom;
    custom_state *st = n->attr;
    switch (action) {
    case MFI_SHAPE: {
        if (!pending_op) {
            mfi_op_fail(n, "custom: custom nodes are made by mf_custom");
            return;
        }
        op = n->custom = pending_op;
        st = pending_state;
        n->attr = st;
        const char *name = op_name(op);
        for (int i = 0; i < n->n_in; i++)
            st->in_shape[i] = n->in[i]->shape;
        mf_error e;
        mf_error_clear(&e);
        mf_shape out = {0};
        if (op->shape(n->n_in, st->in_shape, st->attr, &out, &e) != 0) {
            mfi_op_fail(n, "%s: %s", name,
                        e.msg[0] ? e.msg : "the shape callback refused the inputs");
            return;
        }
        int ok = out.ndim >= 1 && out.ndim <= MF_MAX_DIMS;
        for (int i = 0; ok && i < out.ndim; i++)
            ok = out.dim[i] > 0;
        if (!ok) {
            char s[MFI_SHAPE_STR];
            if (out.ndim < 0 || out.ndim > MF_MAX_DIMS)
                out.ndim = 0;
            mfi_op_fail(n, "%s: the shape callback returned an invalid shape %s", name,
                        mf_shape_str(&out, s, sizeof s));
            return;
        }
        if (!op->backward && inputs_need_grad(n)) {
            mfi_op_fail(n, "%s: custom op has no backward but its inputs need gradients", name);
            return;
        }
        n->shape = out;
        return;
    }
    case MFI_SCRATCH:
        n->scratch_bytes =
            op->scratch_bytes ? op->scratch_bytes(n->n_in, st->in_shape, &n->shape, st->attr) : 0;
        return;
    case MFI_FORWARD:
    case MFI_BACKWARD: {
        const int fwd = action == MFI_FORWARD;
        if (!fwd && !op->backward)
            return;
        for (int i = 0; i < n->n_in; i++) {
            st->in[i] = n->in[i]->value;
            st->in_grad[i] = fwd ? NULL : n->in[i]->grad;
        }
        const mf_custom_ctx ctx = {
            .n_in = n->n_in,
            .in_shape = st->in_shape,
            .in = st->in,
            .in_grad = st->in_grad,
            .out_shape = n->shape,
            .out = n->value,
            .out_grad = fwd ? NULL : n->grad,
            .scratch = n->scratch,
            .attr = st->attr,
            .training = n->graph->training,
        };
        const mfi_custom_running outer = mfi_custom_now;
        mfi_custom_now = (mfi_custom_running){op->name ? op->name : "?", n->scope,
                                              fwd ? "forward" : "backward"};
        if (fwd)
            op->forward(&ctx);
        else
            op->backward(&ctx);
        mfi_custom_now = outer;
        return;
    }
    default:
        return;
    }
}
