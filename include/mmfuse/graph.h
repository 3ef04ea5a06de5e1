/* mmfuse/graph.h — building computations and differentiating them.
 *
 * A graph is a list of nodes in creation order. Every op constructor appends one node whose
 * inputs already exist, so creation order is a topological order: compiling a graph only
 * freezes it and lays out its buffers in the graph's arena. A compiled graph is replayed:
 * write new data into its input nodes, mf_graph_forward(), mf_graph_backward(loss), and
 * the gradients land in the parameters' gradient buffers (accumulated, never overwritten,
 * so several graphs can contribute to one step). No memory is allocated while replaying.
 *
 *     mf_graph *g = mf_graph_new(1);                          // a training graph
 *     mf_node *x = mf_input(g, "x", mf_shape2(B, 784));       // x is (B,784)
 *     mf_node *h = mf_relu(g, mf_linear_forward(g, &fc1, x)); // h is (B,256)
 *     mf_node *loss = mf_cross_entropy(g, mf_linear_forward(g, &fc2, h), y);
 *     if (mf_graph_compile(g, &err)) ...                      // shape errors surface here
 *     memcpy(mf_node_value(x), batch, ...); mf_graph_forward(g); mf_graph_backward(g, loss);
 *
 * Shape errors are sticky (as in cairo): a constructor given bad inputs records the first
 * error in the graph and returns NULL; every constructor passes a NULL input through as
 * NULL. So a module builds its part without checking each call, and the host reports
 * mf_graph_error() once, with the op and the shapes involved.
 *
 * Axis convention: the first axis is the batch. Feature ops (concat, log-softmax) act on
 * the last axis of a 2-D (B,F) tensor.
 */
#ifndef MMFUSE_GRAPH_H
#define MMFUSE_GRAPH_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mf_graph mf_graph;
typedef struct mf_node mf_node;
typedef struct mf_param mf_param; /* a trainable tensor, see nn.h */

/* ---------------------------------------------------------------- graphs */
/* training != 0 builds a training graph (gradients, dropout active). */
MF_API mf_graph *mf_graph_new(int training);
MF_API void mf_graph_free(mf_graph *g);
MF_API int mf_graph_training(const mf_graph *g);
/* The first error an op constructor met, or NULL. */
MF_API const char *mf_graph_error(const mf_graph *g);
/* Freeze the graph and allocate every value, gradient and scratch buffer. */
MF_API int mf_graph_compile(mf_graph *g, mf_error *err);
MF_API void mf_graph_forward(mf_graph *g);
/* Reverse pass from a scalar node: d loss/d loss = 1; adds into parameter gradients. */
MF_API void mf_graph_backward(mf_graph *g, mf_node *loss);
/* Bytes the graph's arena holds (nodes, activations, gradients, scratch). */
MF_API size_t mf_graph_bytes(const mf_graph *g);
MF_API int mf_graph_size(const mf_graph *g);
MF_API mf_node *mf_graph_node(mf_graph *g, int i);

/* ---------------------------------------------------------------- nodes */
MF_API const mf_shape *mf_node_shape(const mf_node *n);
MF_API int64_t mf_node_numel(const mf_node *n);
/* Values are valid after compile; gradients exist only on nodes that need them (NULL otherwise). */
MF_API float *mf_node_value(mf_node *n);
MF_API float *mf_node_grad(mf_node *n);
MF_API const char *mf_node_name(const mf_node *n);
MF_API const char *mf_node_op_name(const mf_node *n);

/* ---------------------------------------------------------------- leaves */
/* Data fed in each step (no gradient). Class targets are stored as floats (exact below 2^24). */
MF_API mf_node *mf_input(mf_graph *g, const char *name, mf_shape shape);
/* A leaf that receives a gradient, with its own buffers (gradient checks, custom uses). */
MF_API mf_node *mf_variable(mf_graph *g, const char *name, mf_shape shape);
/* A parameter from the model's parameter store: value and gradient are the store's. */
MF_API mf_node *mf_param_node(mf_graph *g, mf_param *p);

/* ---------------------------------------------------------------- ops */
/* c = op(a) @ op(b), op transposing when trans is set: a (M,K) [or (K,M)], b (K,N) [or (N,K)] → (M,N). */
MF_API mf_node *mf_matmul(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b);
/* a + b with equal shapes, or a (M,N) + b (N) / (1,N): b is added to every row (a bias). */
MF_API mf_node *mf_add(mf_graph *g, mf_node *a, mf_node *b);
/* Elementwise product, equal shapes. */
MF_API mf_node *mf_mul(mf_graph *g, mf_node *a, mf_node *b);
/* s·a for a constant s. */
MF_API mf_node *mf_scale(mf_graph *g, mf_node *a, float s);
MF_API mf_node *mf_relu(mf_graph *g, mf_node *a);
MF_API mf_node *mf_tanh(mf_graph *g, mf_node *a);
MF_API mf_node *mf_sigmoid(mf_graph *g, mf_node *a);
/* Join (B,F_i) tensors along the feature axis → (B, ΣF_i). */
MF_API mf_node *mf_concat(mf_graph *g, int n, mf_node *const *xs);
/* log softmax over the last axis of (B,K), computed stably (max subtracted). */
MF_API mf_node *mf_log_softmax(mf_graph *g, mf_node *a);
/* Mean negative log-likelihood: logp (B,K) log-probabilities, target (B) class indices → scalar (1). */
MF_API mf_node *mf_nll(mf_graph *g, mf_node *logp, mf_node *target);
/* mf_nll(mf_log_softmax(logits), target). */
MF_API mf_node *mf_cross_entropy(mf_graph *g, mf_node *logits, mf_node *target);

/* ---------------------------------------------------------------- gradient check */
/* Compares the analytic gradient of L = Σ w ⊙ out (w fixed, random) with respect to every
 * leaf that takes a gradient (variables and parameters) against central finite differences.
 * An element passes when |numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|).
 * Zeroed options pick the defaults (eps 1e-3, atol 1e-3, rtol 1e-2, all elements). */
typedef struct mf_gradcheck_opts {
    double eps, atol, rtol;
    int64_t max_elements_per_leaf; /* 0: all; else a seeded sample of that many */
    uint64_t seed;
} mf_gradcheck_opts;

typedef struct mf_gradcheck_result {
    int64_t checked, failed;
    double max_abs_err, max_rel_err;
    char worst[256]; /* the worst element: leaf, index, numeric, analytic */
} mf_gradcheck_result;

/* The graph must be compiled and its leaves filled. Returns 0 when every element passes. */
MF_API int mf_gradcheck(mf_graph *g, mf_node *out, const mf_gradcheck_opts *opts,
                        mf_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
