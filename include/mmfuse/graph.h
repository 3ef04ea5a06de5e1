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

#include <stdio.h>

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
/* The same with d loss/d loss = scale: gradient accumulation over micro-batches weights each
 * by its share of the samples. */
MF_API void mf_graph_backward_scaled(mf_graph *g, mf_node *loss, float scale);
/* Random ops draw from (seed, forward number): the next forward draws as the (forwards+1)-th
 * forward after mf_graph_set_seed. A trainer sets it from its step count, so a resumed run
 * draws the masks of the uninterrupted one. */
MF_API void mf_graph_set_rng_position(mf_graph *g, uint64_t forwards);
/* Nodes made from now on record `path` (copied) as their module: the host sets it around each
 * module's forward, so errors and divergence name the module. Returns the previous scope.
 * NULL clears it. */
MF_API const char *mf_graph_set_scope(mf_graph *g, const char *path);
MF_API const char *mf_graph_scope(const mf_graph *g);
/* After a forward (grads = 0): the first node, in forward order, holding a NaN or an infinity;
 * after a backward (grads = 1): the first gradient so, in backward order. NULL when all are
 * finite. Divergence reports name it with its op and module. */
MF_API mf_node *mf_graph_first_nonfinite(mf_graph *g, int grads);
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
/* The module path whose forward made the node ("" outside any module). */
MF_API const char *mf_node_scope(const mf_node *n);
/* A padding mask travelling with a sequence (ABI 1.1). x is (B,T,…), mask (B,T) with non-zero
 * = padding (the convention of mf_attention_forward and PyTorch's key_padding_mask). The host
 * attaches the reader's mask to a token input; a module that keeps the T axis passes it on
 * with mf_node_set_mask(out, mf_node_mask(in)); ops do not propagate it. NULL: no padding. */
MF_API void mf_node_set_mask(mf_node *x, mf_node *mask);
MF_API mf_node *mf_node_mask(const mf_node *x);

/* ---------------------------------------------------------------- leaves */
/* Data fed in each step (no gradient). Class targets are stored as floats (exact below 2^24). */
MF_API mf_node *mf_input(mf_graph *g, const char *name, mf_shape shape);
/* A leaf that receives a gradient, with its own buffers (gradient checks, custom uses). */
MF_API mf_node *mf_variable(mf_graph *g, const char *name, mf_shape shape);
/* A parameter from the model's parameter store: value and gradient are the store's. */
MF_API mf_node *mf_param_node(mf_graph *g, mf_param *p);

/* Constants (ABI 1.1): leaves filled once at compile, never written by replays, no gradient. */
MF_API mf_node *mf_constant(mf_graph *g, mf_shape shape, float value); /* every element = value */
MF_API mf_node *mf_ones(mf_graph *g, mf_shape shape);
MF_API mf_node *mf_eye(mf_graph *g, int64_t n);     /* (n,n) identity: InfoNCE targets, masks */
MF_API mf_node *mf_arange(mf_graph *g, int64_t n);  /* (n): 0, 1, …, n-1 (class ids, positions) */
/* (shape) filled from data (numel floats, copied at construction; NULL is an error). */
MF_API mf_node *mf_constant_data(mf_graph *g, mf_shape shape, const float *data);

/* ---------------------------------------------------------------- ops
 * Axes may be given negative, counting from the last (-1). */

/* -- linear algebra */
/* c = op(a) @ op(b), op transposing when trans is set: a (M,K) [or (K,M)], b (K,N) [or (N,K)] → (M,N). */
MF_API mf_node *mf_matmul(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b);
/* Batched matmul over the leading axes (attention): a (…,M,K), b (…,K,N) → (…,M,N), with
 * the last two axes of either transposed on request; leading axes must be equal. */
MF_API mf_node *mf_bmm(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b);

/* -- elementwise. Binary ops broadcast as NumPy and PyTorch do (ABI 1.1): shapes are aligned
 *    from the last axis, a missing leading axis counts as 1, and an axis of size 1 on either
 *    side stretches to the other's size; the gradient of a stretched input is summed over the
 *    stretched axes. (1.0 took equal shapes, a scalar b or a row b; those still work.) */
MF_API mf_node *mf_add(mf_graph *g, mf_node *a, mf_node *b);
MF_API mf_node *mf_sub(mf_graph *g, mf_node *a, mf_node *b);
MF_API mf_node *mf_mul(mf_graph *g, mf_node *a, mf_node *b);
MF_API mf_node *mf_div(mf_graph *g, mf_node *a, mf_node *b);
/* s·a for a constant s. */
MF_API mf_node *mf_scale(mf_graph *g, mf_node *a, float s);
/* a + c for a constant c. */
MF_API mf_node *mf_add_scalar(mf_graph *g, mf_node *a, float c);
/* Runs in place when it is the only reader of a conv2d, matmul, bmm or add output: that
 * node's value then reads as the relu's (read the relu's node instead). */
MF_API mf_node *mf_relu(mf_graph *g, mf_node *a);
MF_API mf_node *mf_tanh(mf_graph *g, mf_node *a);
MF_API mf_node *mf_sigmoid(mf_graph *g, mf_node *a);
/* GELU, tanh approximation (as in GPT-2 / llm.c). */
MF_API mf_node *mf_gelu(mf_graph *g, mf_node *a);
MF_API mf_node *mf_exp(mf_graph *g, mf_node *a);
MF_API mf_node *mf_log(mf_graph *g, mf_node *a);
MF_API mf_node *mf_sqrt(mf_graph *g, mf_node *a);
MF_API mf_node *mf_abs(mf_graph *g, mf_node *a);
/* log(1 + eˣ), computed stably (ABI 1.1); log σ(x) = -softplus(-x). */
MF_API mf_node *mf_softplus(mf_graph *g, mf_node *a);
/* min(max(a, lo), hi) (ABI 1.1); the gradient passes where lo < a < hi. */
MF_API mf_node *mf_clamp(mf_graph *g, mf_node *a, float lo, float hi);
/* Where mask != 0, value; elsewhere a (gradient 0 where filled). mask has a's ndim and each
 * of its axes equals a's or is 1 (broadcast), e.g. scores (B,H,T,S) with mask (B,1,1,S). */
MF_API mf_node *mf_masked_fill(mf_graph *g, mf_node *a, mf_node *mask, float value);
/* Inverted dropout: in a training graph zero each element with probability p and scale the
 * rest by 1/(1-p), with a fresh seeded mask every forward; in an eval graph the identity. */
MF_API mf_node *mf_dropout(mf_graph *g, mf_node *a, float p);

/* -- reductions */
MF_API mf_node *mf_sum(mf_graph *g, mf_node *a, int axis, int keepdim);
MF_API mf_node *mf_mean(mf_graph *g, mf_node *a, int axis, int keepdim);
/* Sum / mean of every element → (1). */
MF_API mf_node *mf_sum_all(mf_graph *g, mf_node *a);
MF_API mf_node *mf_mean_all(mf_graph *g, mf_node *a);
/* Largest element along an axis (ABI 1.1); the gradient goes to the first maximum. */
MF_API mf_node *mf_max(mf_graph *g, mf_node *a, int axis, int keepdim);
/* log Σ exp over an axis, computed stably. */
MF_API mf_node *mf_logsumexp(mf_graph *g, mf_node *a, int axis, int keepdim);
/* softmax / log softmax over the last axis (any ndim), stably. */
MF_API mf_node *mf_softmax(mf_graph *g, mf_node *a);
MF_API mf_node *mf_log_softmax(mf_graph *g, mf_node *a);
/* Rows of the last axis scaled to unit L2 norm: x / max(‖x‖, eps) (PyTorch's F.normalize). */
MF_API mf_node *mf_l2_normalize(mf_graph *g, mf_node *a, float eps);

/* -- shapes */
/* Same data, another shape of equal numel; one dimension may be -1 (inferred). */
MF_API mf_node *mf_reshape(mf_graph *g, mf_node *a, mf_shape shape);
/* Axes reordered: out axis i is a's axis perm[i]. */
MF_API mf_node *mf_permute(mf_graph *g, mf_node *a, const int *perm);
MF_API mf_node *mf_transpose(mf_graph *g, mf_node *a, int axis0, int axis1);
/* Elements [start, start+length) along an axis. */
MF_API mf_node *mf_slice(mf_graph *g, mf_node *a, int axis, int64_t start, int64_t length);
/* a cut along an axis into n consecutive parts of the given sizes (summing to the axis). */
MF_API int mf_split(mf_graph *g, mf_node *a, int axis, int n, const int64_t *sizes, mf_node **out);
/* Join along an axis; all other axes equal. mf_concat joins (B,F_i) along the features. */
MF_API mf_node *mf_concat_axis(mf_graph *g, int n, mf_node *const *xs, int axis);
MF_API mf_node *mf_concat(mf_graph *g, int n, mf_node *const *xs);
/* Axes of size 1 repeated to `shape` (ABI 1.1; PyTorch's expand): a's ndim equals shape's,
 * or a has fewer axes and is aligned from the last; -1 keeps a's size (a new leading axis
 * needs its size). The gradient is summed over the repeated axes. E.g. a CLS token
 * (1,1,D) → (B,1,D). */
MF_API mf_node *mf_expand(mf_graph *g, mf_node *a, mf_shape shape);
/* torch.gather (ABI 1.1): idx (indices stored as floats) has a's ndim, and every axis but
 * `axis` no larger than a's; out has idx's shape, out[…i…] = a[…idx[…i…]…] along axis.
 * The gradient is scattered (added) into the picked elements. Indices are the caller's to
 * validate (the host checks data token ids against the vocabulary): one outside [0, size)
 * reads 0 and takes no gradient. */
MF_API mf_node *mf_gather(mf_graph *g, mf_node *a, int axis, mf_node *idx);
/* Per-sample outer product (tensor fusion): a (B,P), b (B,Q) → (B,P·Q), out[b,i·Q+j] = a[b,i]·b[b,j]. */
MF_API mf_node *mf_outer(mf_graph *g, mf_node *a, mf_node *b);

/* -- neural-network ops */
/* x (B,C,H,W), w (O,C,kh,kw), bias (O) or NULL → (B,O,H',W'), H' = (H + 2·pad - kh)/stride + 1.
 * im2col + cblas_sgemm. */
MF_API mf_node *mf_conv2d(mf_graph *g, mf_node *x, mf_node *w, mf_node *bias, int stride, int pad);
/* Pooling windows k×k every `stride` pixels, no padding: x (B,C,H,W) → (B,C,H',W'). */
MF_API mf_node *mf_max_pool2d(mf_graph *g, mf_node *x, int k, int stride);
MF_API mf_node *mf_avg_pool2d(mf_graph *g, mf_node *x, int k, int stride);
/* Normalise the last axis to zero mean and unit variance (biased, +eps), then ·gamma + beta
 * (each (D), or NULL). */
MF_API mf_node *mf_layer_norm(mf_graph *g, mf_node *x, mf_node *gamma, mf_node *beta, float eps);
/* Rows of table (V,D) picked by idx (any shape, indices stored as floats) → (idx shape…, D).
 * The gradient is scattered (added) into the picked rows. */
MF_API mf_node *mf_embedding(mf_graph *g, mf_node *table, mf_node *idx);

/* -- losses */
/* Mean negative log-likelihood: logp (B,K) log-probabilities, target (B) class indices → scalar (1). */
MF_API mf_node *mf_nll(mf_graph *g, mf_node *logp, mf_node *target);
/* mf_nll(mf_log_softmax(logits), target). */
MF_API mf_node *mf_cross_entropy(mf_graph *g, mf_node *logits, mf_node *target);

/* -- data parallelism (issue 14) */
/* Every rank's rows of the batch: x (b,…) is this rank's part, the result (B,…) the whole
 * batch of the step, the ranks' rows in rank order (open_clip's gather with gradient). A
 * loss over the batch as a whole gathers its inputs first, so that under `mpirun` every
 * sample meets the whole batch's negatives, as in one process:
 *
 *     mf_node *a = mf_gather_batch(g, in->embeddings[0]);   // (B,D) of every rank
 *     mf_node *b = mf_gather_batch(g, in->embeddings[1]);
 *     mf_node *logits = mf_cosine_logits(g, a, b, scale);    // (B,B)
 *     int64_t B = mf_node_shape(a)->dim[0];                  // the whole batch
 *
 * Backward sums the result's gradient over the ranks and adds this rank's rows of it to x's
 * gradient; with the host's weighting of each rank's part, the gradients equal one
 * process's. In one process (or when the graph runs on no ranks) it returns x itself. Every
 * rank runs the same graph, so each of them makes the same gathers. */
MF_API mf_node *mf_gather_batch(mf_graph *g, mf_node *x);

/* -- graph options */
/* Seed of the graph's random ops (dropout); each forward draws new masks from
 * (seed, forward count, node), so a replay is reproducible. Default 0. */
MF_API void mf_graph_set_seed(mf_graph *g, uint64_t seed);

/* Time every kernel call by op kind (off by default: two clock reads per node) and print
 * the totals: where a step's time goes. */
MF_API void mf_graph_set_profiling(mf_graph *g, int on);
MF_API void mf_graph_print_profile(const mf_graph *g, FILE *f);

/* ---------------------------------------------------------------- custom ops
 * An op the core lacks, written by a plugin: forward and backward over raw float buffers.
 * The host allocates outputs, gradients and scratch in the graph's arena; backward adds
 * (+=) into every in_grad[i] that is not NULL. Check it with mf_gradcheck_custom. */
typedef struct mf_custom_ctx {
    int n_in;
    const mf_shape *in_shape;   /* n_in shapes */
    const float *const *in;     /* n_in inputs */
    float *const *in_grad;      /* n_in gradients to add into, NULL where none is needed */
    mf_shape out_shape;
    float *out;                 /* forward writes it; backward reads it */
    const float *out_grad;      /* backward only */
    void *scratch;              /* scratch_bytes, kept from forward to backward */
    const void *attr;           /* the op's attributes (copied at construction) */
    int training;
} mf_custom_ctx;

typedef struct mf_custom_op {
    uint32_t struct_size;       /* sizeof(mf_custom_op) */
    const char *name;
    /* Output shape from the inputs'; -1 with a message in err when they don't fit. Required. */
    int (*shape)(int n_in, const mf_shape *in, const void *attr, mf_shape *out, mf_error *err);
    /* Scratch bytes needed. Optional. */
    size_t (*scratch_bytes)(int n_in, const mf_shape *in, const mf_shape *out, const void *attr);
    void (*forward)(const mf_custom_ctx *ctx);   /* required */
    void (*backward)(const mf_custom_ctx *ctx);  /* required for training */
} mf_custom_op;

/* A node running a custom op; attr (attr_size bytes, may be 0) is copied into the graph. */
MF_API mf_node *mf_custom(mf_graph *g, const mf_custom_op *op, int n_in, mf_node *const *in,
                          const void *attr, size_t attr_size);

/* ---------------------------------------------------------------- gradient check */
/* Compares the analytic gradient of L = Σ w ⊙ out (w fixed, random) with respect to every
 * leaf that takes a gradient (variables and parameters) against central finite differences.
 * An element passes when |numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|)
 * for the central difference at eps, or (ABI 1.1) at eps/4 or 4·eps — a wrong backward
 * disagrees at every step, while truncation error shrinks at eps/4 and float32 rounding in
 * a deep forward (layer norms, attention) at 4·eps — or when it sits on a kink (relu at 0, a max-pool tie): the slopes left and right of it
 * differ and the analytic gradient equals one of them.
 * Zeroed options pick the defaults (eps 1e-3, atol 1e-3, rtol 1e-2, all elements). */
typedef struct mf_gradcheck_opts {
    double eps, atol, rtol;
    int64_t max_elements_per_leaf; /* 0: all; else a seeded sample of that many */
    uint64_t seed;
} mf_gradcheck_opts;

typedef struct mf_gradcheck_result {
    int64_t checked, failed;
    int64_t kinks;   /* elements at a non-differentiable point (one-sided slopes differ and the
                        analytic gradient equals one of them): counted in checked, not failed */
    double max_abs_err, max_rel_err;
    char worst[256]; /* the worst element: leaf, index, numeric, analytic */
} mf_gradcheck_result;

/* The graph must be compiled and its leaves filled. Returns 0 when every element passes. */
MF_API int mf_gradcheck(mf_graph *g, mf_node *out, const mf_gradcheck_opts *opts,
                        mf_gradcheck_result *res);
/* For custom-op authors: build a training graph of variables with the given shapes (seeded
 * values in (-1,1)), apply the op, and mf_gradcheck it. */
MF_API int mf_gradcheck_custom(const mf_custom_op *op, int n_in, const mf_shape *in_shapes,
                               const void *attr, size_t attr_size, const mf_gradcheck_opts *opts,
                               mf_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
