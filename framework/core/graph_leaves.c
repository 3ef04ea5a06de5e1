/* Graph leaves: inputs, variables, parameters and constants (filled once at compile). */
#include <stdio.h>
#include <string.h>

#include "core_internal.h"

/* ---------------------------------------------------------------- leaves */
static mf_node *leaf(mf_graph *g, mf_op op, const char *name, mf_shape shape)
{
    if (!g)
        return NULL;
    if (!name)
        name = "";
    int ok = shape.ndim >= 1 && shape.ndim <= MF_MAX_DIMS;
    for (int i = 0; ok && i < shape.ndim; i++)
        ok = shape.dim[i] > 0;
    const int overflows = ok && mf_shape_numel(&shape) < 0;
    if ((!ok || overflows) && !g->compiled) {
        char s[MFI_SHAPE_STR];
        mf_shape bad = shape;
        if (bad.ndim < 0 || bad.ndim > MF_MAX_DIMS)
            bad.ndim = 0;
        char who[96];
        snprintf(who, sizeof who, *name ? "%s \"%s\"" : "%s", mfi_op_name(op), name);
        if (overflows)
            mfi_graph_fail(g, "%s: invalid shape %s: more values than mmfuse can count", who,
                           mf_shape_str(&bad, s, sizeof s));
        else
            mfi_graph_fail(g, "%s: invalid shape %s: a shape needs 1 to %d positive dimensions",
                           who, mf_shape_str(&bad, s, sizeof s), MF_MAX_DIMS);
        return NULL;
    }
    mf_node *n = mfi_node_new(g, op, 0, NULL, NULL);
    if (!n)
        return NULL;
    n->shape = shape;
    n->numel = mf_shape_numel(&shape);
    n->name = mf_arena_strdup(g->arena, name);
    if (!n->name)
        n->name = "";
    return n;
}

mf_node *mf_input(mf_graph *g, const char *name, mf_shape shape)
{
    return leaf(g, MF_OP_INPUT, name, shape);
}

mf_node *mf_variable(mf_graph *g, const char *name, mf_shape shape)
{
    return leaf(g, MF_OP_VARIABLE, name, shape);
}

mf_node *mf_param_node(mf_graph *g, mf_param *p)
{
    if (!g || !p)
        return NULL;
    /* value and gradient pointers are resolved at compile, once the store is finalised */
    mf_node *n = leaf(g, MF_OP_PARAM, mf_param_name(p), *mf_param_shape(p));
    if (n)
        n->param = p;
    return n;
}

/* Constants: no kernel runs on them, so replays, backward passes (no gradient) and gradient
 * checks (which perturb only leaves with a gradient) never write them. */
static mf_node *constant(mf_graph *g, mf_shape shape, mfi_const_kind kind, float value)
{
    mf_node *n = leaf(g, MF_OP_CONSTANT, "", shape);
    if (n) {
        n->iarg[0] = (int)kind;
        n->farg[0] = value;
    }
    return n;
}

mf_node *mf_constant(mf_graph *g, mf_shape shape, float value)
{
    return constant(g, shape, MFI_CONST_FILL, value);
}

mf_node *mf_ones(mf_graph *g, mf_shape shape) { return constant(g, shape, MFI_CONST_FILL, 1.0f); }
mf_node *mf_eye(mf_graph *g, int64_t n) { return constant(g, mf_shape2(n, n), MFI_CONST_EYE, 0); }
mf_node *mf_arange(mf_graph *g, int64_t n) { return constant(g, mf_shape1(n), MFI_CONST_ARANGE, 0); }

mf_node *mf_constant_data(mf_graph *g, mf_shape shape, const float *data)
{
    if (g && !data && !g->compiled) {
        mfi_graph_fail(g, "constant: no data given");
        return NULL;
    }
    mf_node *n = constant(g, shape, MFI_CONST_DATA, 0);
    if (!n)
        return NULL;
    float *copy = mf_arena_alloc(g->arena, (size_t)n->numel * sizeof(float));
    if (!copy) {
        mfi_graph_fail(g, "constant: out of memory");
        return NULL;
    }
    memcpy(copy, data, (size_t)n->numel * sizeof(float));
    n->const_data = copy;
    return n;
}

/* Called once, at compile, on the constant's fresh (zeroed) value. */
void mfi_fill_constant(mf_node *n)
{
    float *v = n->value;
    switch ((mfi_const_kind)n->iarg[0]) {
    case MFI_CONST_FILL:
        for (int64_t i = 0; i < n->numel; i++)
            v[i] = n->farg[0];
        break;
    case MFI_CONST_EYE: // v is (n,n)
        for (int64_t i = 0; i < n->shape.dim[0]; i++)
            v[i * n->shape.dim[0] + i] = 1.0f;
        break;
    case MFI_CONST_ARANGE:
        for (int64_t i = 0; i < n->numel; i++)
            v[i] = (float)i;
        break;
    case MFI_CONST_DATA:
        memcpy(v, n->const_data, (size_t)n->numel * sizeof(float));
        break;
    }
}
