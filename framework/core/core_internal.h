/* Private to framework/core: the graph, its nodes and the op table.
 *
 * Every function here is hidden (only mf_* is exported), hence the mfi_ prefix. */
#ifndef MMFUSE_CORE_INTERNAL_H
#define MMFUSE_CORE_INTERNAL_H

#include <mmfuse/graph.h>
#include <mmfuse/nn.h>

/* ---------------------------------------------------------------- ops */
typedef enum mf_op {
    MF_OP_INPUT,       /* leaves: no kernel */
    MF_OP_VARIABLE,
    MF_OP_PARAM,
    MF_OP_MATMUL,      /* ops_linalg.c      */
    MF_OP_ADD,         /* ops_elementwise.c */
    MF_OP_MUL,
    MF_OP_SCALE,
    MF_OP_RELU,
    MF_OP_TANH,
    MF_OP_SIGMOID,
    MF_OP_CONCAT,      /* ops_shape.c       */
    MF_OP_LOG_SOFTMAX, /* ops_loss.c        */
    MF_OP_NLL,
    /* issue 3 */
    MF_OP_BMM,         /* ops_linalg.c      */
    MF_OP_SUB,         /* ops_elementwise.c */
    MF_OP_DIV,
    MF_OP_ADD_SCALAR,
    MF_OP_GELU,
    MF_OP_EXP,
    MF_OP_LOG,
    MF_OP_SQRT,
    MF_OP_ABS,
    MF_OP_MASKED_FILL,
    MF_OP_DROPOUT,
    MF_OP_SUM,         /* ops_reduce.c: iarg[0] axis, iarg[1] keepdim */
    MF_OP_MEAN,
    MF_OP_SUM_ALL,
    MF_OP_MEAN_ALL,
    MF_OP_LOGSUMEXP,
    MF_OP_SOFTMAX,
    MF_OP_L2_NORMALIZE,
    MF_OP_RESHAPE,     /* ops_shape.c       */
    MF_OP_PERMUTE,
    MF_OP_SLICE,
    MF_OP_OUTER,
    MF_OP_CONV2D,      /* ops_conv.c        */
    MF_OP_MAX_POOL2D,
    MF_OP_AVG_POOL2D,
    MF_OP_LAYER_NORM,  /* ops_nn.c          */
    MF_OP_EMBEDDING,
    MF_OP_CUSTOM,      /* ops_custom.c      */
    /* ABI 1.1 */
    MF_OP_CONSTANT,    /* leaf filled at compile (graph.c): iarg[0] an mfi_const_kind */
    MF_OP_EXPAND,      /* ops_broadcast.c   */
    MF_OP_SOFTPLUS,    /* ops_elementwise.c */
    MF_OP_CLAMP,
    MF_OP_MAX,         /* ops_reduce.c      */
    MF_OP_GATHER,      /* ops_nn.c          */
    /* issue 11 */
    MF_OP_LINEAR,      /* ops_linalg.c: x (…,K)·W (K,N) [+ b (N)], mfi_linear */
    /* issue 14 */
    MF_OP_GATHER_BATCH, /* ops_collective.c: every rank's rows (mf_gather_batch) */
    MF_OP_COUNT
} mf_op;

/* How a constant is filled at compile. */
typedef enum mfi_const_kind { MFI_CONST_FILL, MFI_CONST_EYE, MFI_CONST_ARANGE, MFI_CONST_DATA } mfi_const_kind;

/* What an op function is asked to do. */
enum {
    MFI_SHAPE,    /* at construction: validate inputs, set n->shape (mfi_op_fail on error) */
    MFI_SCRATCH,  /* at compile: set n->scratch_bytes (left 0 when none is needed) */
    MFI_FORWARD,  /* n->value from the inputs' values */
    MFI_BACKWARD, /* inputs' grads += from n->grad (only inputs whose grad != NULL); an op
                   * of graph.c's mfi_writes_fresh list must instead overwrite (=) every
                   * element of in[k]->grad when bit k of n->fresh is set */
};

typedef void (*mfi_op_fn)(mf_node *n, int action);

/* The CPU kernels, one per op (NULL for leaves), indexed by mf_op. */
extern const mfi_op_fn mfi_cpu_ops[MF_OP_COUNT];
const char *mfi_op_name(mf_op op);

void mfi_op_matmul(mf_node *n, int action);
void mfi_op_add(mf_node *n, int action);
void mfi_op_mul(mf_node *n, int action);
void mfi_op_scale(mf_node *n, int action);
void mfi_op_relu(mf_node *n, int action);
void mfi_op_tanh(mf_node *n, int action);
void mfi_op_sigmoid(mf_node *n, int action);
void mfi_op_concat(mf_node *n, int action);
void mfi_op_log_softmax(mf_node *n, int action);
void mfi_op_nll(mf_node *n, int action);
void mfi_op_bmm(mf_node *n, int action);
void mfi_op_sub(mf_node *n, int action);
void mfi_op_div(mf_node *n, int action);
void mfi_op_add_scalar(mf_node *n, int action);
void mfi_op_gelu(mf_node *n, int action);
void mfi_op_exp(mf_node *n, int action);
void mfi_op_log(mf_node *n, int action);
void mfi_op_sqrt(mf_node *n, int action);
void mfi_op_abs(mf_node *n, int action);
void mfi_op_masked_fill(mf_node *n, int action);
void mfi_op_dropout(mf_node *n, int action);
void mfi_op_sum(mf_node *n, int action);
void mfi_op_mean(mf_node *n, int action);
void mfi_op_sum_all(mf_node *n, int action);
void mfi_op_mean_all(mf_node *n, int action);
void mfi_op_logsumexp(mf_node *n, int action);
void mfi_op_softmax(mf_node *n, int action);
void mfi_op_l2_normalize(mf_node *n, int action);
void mfi_op_reshape(mf_node *n, int action);
void mfi_op_permute(mf_node *n, int action);
void mfi_op_slice(mf_node *n, int action);
void mfi_op_outer(mf_node *n, int action);
void mfi_op_conv2d(mf_node *n, int action);
void mfi_op_max_pool2d(mf_node *n, int action);
/* max_pool2d over planes [pl0, pl1) of its (B·C) planes: a conv2d runs its fused pool so */
void mfi_max_pool_forward_planes(mf_node *n, int64_t pl0, int64_t pl1);
void mfi_max_pool_backward_planes(mf_node *n, int64_t pl0, int64_t pl1, int fresh);
void mfi_op_avg_pool2d(mf_node *n, int action);
void mfi_op_layer_norm(mf_node *n, int action);
void mfi_op_embedding(mf_node *n, int action);
void mfi_op_custom(mf_node *n, int action);
void mfi_op_expand(mf_node *n, int action);
void mfi_op_softplus(mf_node *n, int action);
void mfi_op_clamp(mf_node *n, int action);
void mfi_op_max(mf_node *n, int action);
void mfi_op_gather(mf_node *n, int action);
void mfi_op_linear(mf_node *n, int action);
void mfi_op_gather_batch(mf_node *n, int action);

/* y (…,N) = x (…,K)·w (K,N) + b (N) (b may be NULL): one op for mf_linear_forward, the
 * bias pre-filled in y's rows and the product added to it, no reshape around it. */
mf_node *mfi_linear(mf_graph *g, mf_node *x, mf_node *w, mf_node *b);
/* mf_bmm with `heads` H: operands flagged in `layout` (1 a, 2 b, 4 out) are stored
 * token-major, (B,R,H·C), and read as (B,H,R,C) through strides: no permute around it. */
mf_node *mfi_bmm_heads(mf_graph *g, mf_node *a, mf_node *b, int trans_a, int trans_b,
                       int64_t heads, int layout);

/* The NumPy broadcast of two shapes into *out; -1 when an axis pair is neither equal nor 1. */
int mfi_broadcast_shape(const mf_shape *a, const mf_shape *b, mf_shape *out);
/* add/sub/mul/div on shapes the fast paths of ops_elementwise.c do not cover. */
void mfi_binary_general(mf_node *n, int action);

/* ---------------------------------------------------------------- graph */
#define MFI_MAX_IARG 8
#define MFI_MAX_FARG 2
/* An op's constant arguments, given to mfi_node_new. */
typedef struct mfi_args {
    int i[MFI_MAX_IARG];
    float f[MFI_MAX_FARG];
} mfi_args;

struct mf_node {
    mf_graph *graph;
    int id;              /* index in creation (topological) order */
    mf_op op;
    const char *name;    /* leaves only; "" otherwise */
    const char *scope;   /* the module path whose forward made it ("" outside modules) */
    mf_shape shape;
    int64_t numel;
    int n_in;
    mf_node **in;
    int iarg[MFI_MAX_IARG]; /* op arguments (matmul trans_a, trans_b; axes; conv stride, pad…) */
    float farg[MFI_MAX_FARG]; /* scale factor, fill value, eps, dropout p… */
    const mf_custom_op *custom; /* MF_OP_CUSTOM */
    void *attr;          /* MF_OP_CUSTOM attributes, copied into the arena */
    mf_param *param;     /* MF_OP_PARAM */
    mf_node *mask;       /* padding mask travelling with a sequence (mf_node_set_mask), or NULL */
    const float *const_data; /* MF_OP_CONSTANT: numel floats in the arena, or NULL (farg[0] fill) */
    float *value, *grad; /* grad NULL when the node takes no gradient */
    void *scratch;
    size_t scratch_bytes;
    int failed;          /* set by mfi_op_fail during MFI_SHAPE */
    int n_uses;          /* nodes reading this one (set at compile) */
    int inplace;         /* value and grad share in[0]'s buffers (set at compile): an in-place
                          * relu, or a reshape (always a view) */
    mf_node *base;       /* the node whose buffers these are: itself, or in[0]'s base */
    int relu_fused;      /* set at compile, on a conv2d and on the in-place relu that reads it:
                          * the conv2d rectifies its output as it writes it and masks its
                          * output's gradient before its backward passes; the relu has
                          * nothing to do */
    mf_node *fused_pool; /* conv2d: the max_pool2d reading its fused relu, which it runs per
                          * chunk of samples while they are in cache (set at compile) */
    int pool_fused;      /* max_pool2d: run by the conv2d below; its own backward only notes
                          * that it is due (pool_due) and whether its input's gradient
                          * holds garbage (pool_fresh), for the conv2d's backward */
    int pool_due;
    unsigned pool_fresh;
    unsigned mark;       /* reachability epoch during backward */
    unsigned gepoch;     /* base only: the backward epoch its grad was last initialised in */
    unsigned fresh;      /* during MFI_BACKWARD: bit k, in[k]->grad holds garbage (overwrite) */
};

#define MFI_ERROR_CAPACITY 512

typedef struct mfi_profile {
    double seconds[MF_OP_COUNT][2]; /* [op][0 forward, 1 backward] */
    int64_t calls[MF_OP_COUNT][2];
} mfi_profile;

typedef void (*mfi_backward_hook)(void *ctx, int node_index);

/* The ranks a data-parallel step runs on, as the train layer gives them to a graph (core
 * knows nothing of MPI): this rank's rows of a batch of batch_rows go at [offset, offset + b)
 * of the whole batch. Both functions are collective: every rank of the communicator calls
 * them, in the same order; 0 on success. gather_rows: the caller's `mine` rows of `width`
 * floats at the front of buf (cap rows) become every rank's rows in rank order, *total
 * their count. sum_f32: an in-place sum of n floats over the ranks. */
typedef struct mfi_collective {
    void *ctx;
    int rank, size;
    int64_t batch_rows, offset;
    int (*gather_rows)(void *ctx, float *buf, int64_t mine, int64_t width, int64_t cap,
                       int64_t *total);
    int (*sum_f32)(void *ctx, float *buf, int64_t n);
} mfi_collective;

struct mf_graph {
    mf_arena *arena;     /* the graph itself lives in it too */
    int training, compiled;
    int n_nodes, cap;
    mf_node **nodes;
    unsigned epoch;
    uint64_t seed;          /* random ops: mf_graph_set_seed */
    uint64_t forward_count; /* forwards run so far (fresh dropout masks each) */
    const char *scope;      /* mf_graph_set_scope: new nodes record it (in the arena) */
    mfi_profile *profile;   /* per-op timings when profiling, else NULL */
    mfi_backward_hook on_backward; /* mfi_graph_set_backward_hook, else NULL */
    void *on_backward_ctx;
    const mfi_collective *collective; /* mfi_graph_set_collective (in the arena), else NULL */
    int has_error;
    char error[MFI_ERROR_CAPACITY];
};

/* Called by backward on its thread after each node's backward, with the node's index i:
 * every node from i up has then run its backward, so a gradient no node below i writes is
 * final (the data-parallel trainer starts summing gradient buckets over the ranks as they
 * become final). fn NULL removes it. */
void mfi_graph_set_backward_hook(mf_graph *g, mfi_backward_hook fn, void *ctx);

/* The ranks mf_gather_batch gathers over (copied into the graph; NULL or size 1: one
 * process, where the gather is the identity). Set it before building the nodes: a gather
 * takes batch_rows and offset when it is made, so its shape is static. */
void mfi_graph_set_collective(mf_graph *g, const mfi_collective *c);

/* Record the graph's first error (later ones are ignored). */
void mfi_graph_fail(mf_graph *g, const char *fmt, ...) MF_PRINTF(2, 3);
/* For op functions in MFI_SHAPE: mark the node failed and record the error. */
void mfi_op_fail(mf_node *n, const char *fmt, ...) MF_PRINTF(2, 3);
/* Append a node of kind `op` with inputs in[0..n_in); runs MFI_SHAPE. Returns NULL (and
 * records the error) on a bad graph state or bad shapes, and NULL without a new error when
 * an input is NULL. `args` (may be NULL) is copied into iarg/farg before the shape check. */
mf_node *mfi_node_new(mf_graph *g, mf_op op, int n_in, mf_node *const *in, const mfi_args *args);
/* Fills a constant leaf's value at compile (graph_leaves.c). */
void mfi_fill_constant(mf_node *n);
/* Reverse pass from `out` with d(L)/d(out) = seed (numel(out) floats; NULL seeds 1). */
void mfi_graph_backward_seeded(mf_graph *g, mf_node *out, const float *seed);

/* params.c, for the optimisers: 1 and the bounds when the parameter has some, else 0. */
int mfi_param_bounds(const mf_param *p, float *lo, float *hi);

/* "(4,3)" for a node, in a caller's buffer. */
#define MFI_SHAPE_STR 64
const char *mfi_node_shape_str(const mf_node *n, char buf[MFI_SHAPE_STR]);

/* The custom op whose plugin callback runs on this thread, and which pass ("forward",
 * "backward"), or NULL: the plugin layer's crash handler names it (framework/plugin/guard.c),
 * as plugin code runs there outside any module call. Initial-exec: read in a handler. */
typedef struct mfi_custom_running {
    const char *op, *scope, *pass;
} mfi_custom_running;
extern __thread mfi_custom_running mfi_custom_now __attribute__((tls_model("initial-exec")));

#endif
