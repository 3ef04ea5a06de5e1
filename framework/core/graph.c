/* Graphs: nodes in creation order, sticky construction errors, compile, forward, backward.
 * Everything a graph holds comes from its own arena; replaying never allocates.
 *
 * Issue 11 (passes between products): a reshape is a view of its input's buffers, and the
 * backward pass no longer memsets every gradient up front (~170 MB a step on xattn-fusion):
 * a buffer is initialised when its first writer runs — the op overwrites it (n->fresh) when
 * it can, else it is zeroed just before, while it is about to be touched anyway. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "team.h"

/* ---------------------------------------------------------------- op table */
static const char *const op_names[] = {
    "input", "variable", "param", "matmul", "add", "mul", "scale", "relu", "tanh", "sigmoid",
    "concat", "log_softmax", "nll", "bmm", "sub", "div", "add_scalar", "gelu", "exp", "log",
    "sqrt", "abs", "masked_fill", "dropout", "sum", "mean", "sum_all", "mean_all", "logsumexp",
    "softmax", "l2_normalize", "reshape", "permute", "slice", "outer", "conv2d", "max_pool2d",
    "avg_pool2d", "layer_norm", "embedding", "custom",
    /* ABI 1.1 */
    "constant", "expand", "softplus", "clamp", "max", "gather",
    /* issue 11 */
    "linear",
    /* issue 14 */
    "gather_batch",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == MF_OP_COUNT, "one name per op");

const mfi_op_fn mfi_cpu_ops[MF_OP_COUNT] = {
    [MF_OP_MATMUL] = mfi_op_matmul,
    [MF_OP_ADD] = mfi_op_add,
    [MF_OP_MUL] = mfi_op_mul,
    [MF_OP_SCALE] = mfi_op_scale,
    [MF_OP_RELU] = mfi_op_relu,
    [MF_OP_TANH] = mfi_op_tanh,
    [MF_OP_SIGMOID] = mfi_op_sigmoid,
    [MF_OP_CONCAT] = mfi_op_concat,
    [MF_OP_LOG_SOFTMAX] = mfi_op_log_softmax,
    [MF_OP_NLL] = mfi_op_nll,
    [MF_OP_BMM] = mfi_op_bmm,
    [MF_OP_SUB] = mfi_op_sub,
    [MF_OP_DIV] = mfi_op_div,
    [MF_OP_ADD_SCALAR] = mfi_op_add_scalar,
    [MF_OP_GELU] = mfi_op_gelu,
    [MF_OP_EXP] = mfi_op_exp,
    [MF_OP_LOG] = mfi_op_log,
    [MF_OP_SQRT] = mfi_op_sqrt,
    [MF_OP_ABS] = mfi_op_abs,
    [MF_OP_MASKED_FILL] = mfi_op_masked_fill,
    [MF_OP_DROPOUT] = mfi_op_dropout,
    [MF_OP_SUM] = mfi_op_sum,
    [MF_OP_MEAN] = mfi_op_mean,
    [MF_OP_SUM_ALL] = mfi_op_sum_all,
    [MF_OP_MEAN_ALL] = mfi_op_mean_all,
    [MF_OP_LOGSUMEXP] = mfi_op_logsumexp,
    [MF_OP_SOFTMAX] = mfi_op_softmax,
    [MF_OP_L2_NORMALIZE] = mfi_op_l2_normalize,
    [MF_OP_RESHAPE] = mfi_op_reshape,
    [MF_OP_PERMUTE] = mfi_op_permute,
    [MF_OP_SLICE] = mfi_op_slice,
    [MF_OP_OUTER] = mfi_op_outer,
    [MF_OP_CONV2D] = mfi_op_conv2d,
    [MF_OP_MAX_POOL2D] = mfi_op_max_pool2d,
    [MF_OP_AVG_POOL2D] = mfi_op_avg_pool2d,
    [MF_OP_LAYER_NORM] = mfi_op_layer_norm,
    [MF_OP_EMBEDDING] = mfi_op_embedding,
    [MF_OP_CUSTOM] = mfi_op_custom,
    [MF_OP_EXPAND] = mfi_op_expand,
    [MF_OP_SOFTPLUS] = mfi_op_softplus,
    [MF_OP_CLAMP] = mfi_op_clamp,
    [MF_OP_MAX] = mfi_op_max,
    [MF_OP_GATHER] = mfi_op_gather,
    [MF_OP_LINEAR] = mfi_op_linear,
    [MF_OP_GATHER_BATCH] = mfi_op_gather_batch,
};

/* Ops whose backward honours n->fresh (overwrites an input's whole gradient when told):
 * every element of each input's gradient is written once (products, permutes, concat). */
static const unsigned char mfi_writes_fresh[MF_OP_COUNT] = {
    [MF_OP_MATMUL] = 1, [MF_OP_BMM] = 1, [MF_OP_LINEAR] = 1, [MF_OP_PERMUTE] = 1,
    [MF_OP_CONCAT] = 1,
};

const char *mfi_op_name(mf_op op) { return (unsigned)op < MF_OP_COUNT ? op_names[op] : "?"; }

static int is_leaf(const mf_node *n)
{
    return n->op == MF_OP_INPUT || n->op == MF_OP_VARIABLE || n->op == MF_OP_PARAM ||
           n->op == MF_OP_CONSTANT;
}

/* ---------------------------------------------------------------- errors */
static void graph_vfail(mf_graph *g, const char *fmt, va_list ap)
{
    if (!g || g->has_error) /* no graph (mf_graph_new out of memory): nothing to mark */
        return;
    vsnprintf(g->error, sizeof g->error, fmt, ap);
    g->has_error = 1;
}

void mfi_graph_fail(mf_graph *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    graph_vfail(g, fmt, ap);
    va_end(ap);
}

void mfi_op_fail(mf_node *n, const char *fmt, ...)
{
    va_list ap;
    n->failed = 1;
    va_start(ap, fmt);
    graph_vfail(n->graph, fmt, ap);
    va_end(ap);
}

const char *mf_graph_error(const mf_graph *g) { return g && g->has_error ? g->error : NULL; }

const char *mfi_node_shape_str(const mf_node *n, char buf[MFI_SHAPE_STR])
{
    return mf_shape_str(&n->shape, buf, MFI_SHAPE_STR);
}

/* ---------------------------------------------------------------- graphs */
mf_graph *mf_graph_new(int training)
{
    mf_arena *a = mf_arena_new(0);
    if (!a)
        return NULL;
    mf_graph *g = mf_arena_alloc(a, sizeof *g);
    if (!g) {
        mf_arena_free(a);
        return NULL;
    }
    g->arena = a;
    g->training = training != 0;
    return g;
}

void mf_graph_free(mf_graph *g)
{
    if (g)
        mf_arena_free(g->arena); /* g lives in its arena */
}

int mf_graph_training(const mf_graph *g) { return g ? g->training : 0; }

/* Restarts the random stream too: forward k after set_seed(s) draws the same masks as
 * forward k of a fresh graph with seed s. */
void mf_graph_set_seed(mf_graph *g, uint64_t seed)
{
    if (!g)
        return;
    g->seed = seed;
    g->forward_count = 0;
}

void mf_graph_set_rng_position(mf_graph *g, uint64_t forwards)
{
    if (g)
        g->forward_count = forwards;
}

const char *mf_graph_set_scope(mf_graph *g, const char *path)
{
    if (!g)
        return NULL;
    const char *before = g->scope;
    g->scope = path ? mf_arena_strdup(g->arena, path) : NULL;
    return before;
}

const char *mf_graph_scope(const mf_graph *g) { return g && g->scope ? g->scope : ""; }
const char *mf_node_scope(const mf_node *n) { return n->scope; }

static int all_finite(const float *v, int64_t n)
{
    float acc = 0; /* NaN and ±Inf survive a product with 0; finite values give 0 */
    for (int64_t i = 0; i < n; i++)
        acc += 0.0f * v[i];
    return acc == 0.0f;
}

mf_node *mf_graph_first_nonfinite(mf_graph *g, int grads)
{
    if (!g || !g->compiled)
        return NULL;
    for (int k = 0; k < g->n_nodes; k++) {
        /* values in forward order; gradients in backward order, from the loss down */
        mf_node *n = g->nodes[grads ? g->n_nodes - 1 - k : k];
        const float *v = grads ? n->grad : n->value;
        if (v && !n->inplace && !all_finite(v, n->numel))
            return n;
    }
    return NULL;
}

size_t mf_graph_bytes(const mf_graph *g) { return g ? mf_arena_used(g->arena) : 0; }
int mf_graph_size(const mf_graph *g) { return g ? g->n_nodes : 0; }

mf_node *mf_graph_node(mf_graph *g, int i)
{
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL;
}

static int append(mf_graph *g, mf_node *n)
{
    if (g->n_nodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        mf_node **nodes = mf_arena_alloc(g->arena, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return -1;
        if (g->n_nodes)
            memcpy(nodes, g->nodes, (size_t)g->n_nodes * sizeof *nodes);
        g->nodes = nodes; /* the old array stays in the arena, unused */
        g->cap = cap;
    }
    n->id = g->n_nodes;
    g->nodes[g->n_nodes++] = n;
    return 0;
}

mf_node *mfi_node_new(mf_graph *g, mf_op op, int n_in, mf_node *const *in, const mfi_args *args)
{
    if (!g)
        return NULL;
    const char *name = mfi_op_name(op);
    if (g->compiled) {
        mfi_graph_fail(g, "%s: the graph is already compiled; no node can be added to it", name);
        return NULL;
    }
    for (int i = 0; i < n_in; i++)
        if (!in[i])
            return NULL; /* pass an earlier failure through */
    for (int i = 0; i < n_in; i++)
        if (in[i]->graph != g) {
            mfi_graph_fail(g, "%s: input %d belongs to another graph", name, i);
            return NULL;
        }
    mf_node *n = mf_arena_alloc(g->arena, sizeof *n);
    mf_node **ins = n_in > 0 ? mf_arena_alloc(g->arena, (size_t)n_in * sizeof *ins) : NULL;
    if (!n || (n_in > 0 && !ins)) {
        mfi_graph_fail(g, "%s: out of memory", name);
        return NULL;
    }
    n->graph = g;
    n->op = op;
    n->name = "";
    n->scope = g->scope ? g->scope : "";
    n->n_in = n_in;
    n->in = ins;
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i];
    if (args) {
        memcpy(n->iarg, args->i, sizeof n->iarg);
        memcpy(n->farg, args->f, sizeof n->farg);
    }
    if (mfi_cpu_ops[op]) {
        mfi_cpu_ops[op](n, MFI_SHAPE);
        if (n->failed)
            return NULL;
    }
    n->numel = mf_shape_numel(&n->shape);
    if (n->numel < 0) { /* the arena would be sized for a wrapped count */
        char s[MFI_SHAPE_STR];
        mfi_graph_fail(g, "%s: its output shape %s holds more values than mmfuse can count",
                       name, mf_shape_str(&n->shape, s, sizeof s));
        return NULL;
    }
    if (append(g, n)) {
        mfi_graph_fail(g, "%s: out of memory", name);
        return NULL;
    }
    return n;
}

/* ---------------------------------------------------------------- nodes */
const mf_shape *mf_node_shape(const mf_node *n) { return &n->shape; }
int64_t mf_node_numel(const mf_node *n) { return n->numel; }
float *mf_node_value(mf_node *n) { return n ? n->value : NULL; }
float *mf_node_grad(mf_node *n) { return n ? n->grad : NULL; }
const char *mf_node_name(const mf_node *n) { return n->name; }
const char *mf_node_op_name(const mf_node *n) { return mfi_op_name(n->op); }

void mf_node_set_mask(mf_node *x, mf_node *mask)
{
    if (!x)
        return;
    if (mask && mask->graph != x->graph) {
        mfi_graph_fail(x->graph, "set_mask: the mask belongs to another graph");
        return;
    }
    x->mask = mask;
}

mf_node *mf_node_mask(const mf_node *x) { return x ? x->mask : NULL; }

/* ---------------------------------------------------------------- compile */
static float *floats(mf_graph *g, int64_t numel)
{
    return mf_arena_alloc(g->arena, (size_t)numel * sizeof(float));
}

/* A relu may overwrite its input's buffers — value and gradient — when it is that input's
 * only reader and the input's own backward does not need its output: the products and sums
 * that precede activations (conv2d, matmul, bmm, add). In a CNN this halves the activation
 * memory of every conv–ReLU pair. The input node's value then reads as the relu's. */
static int can_run_in_place(const mf_node *n)
{
    if (n->op != MF_OP_RELU)
        return 0;
    const mf_node *a = n->in[0];
    return a->n_uses == 1 && (a->op == MF_OP_CONV2D || a->op == MF_OP_MATMUL ||
                              a->op == MF_OP_BMM || a->op == MF_OP_ADD || a->op == MF_OP_LINEAR);
}

/* A max_pool2d whose input is a relu fused into a conv2d, and read by nothing else: the
 * conv2d pools each chunk of samples right after writing it (forward) and scatters the
 * pool's gradient into it right before reading it (backward), while the chunk is in cache —
 * the pool's own pass over the whole activation missed the cache (a (256,16,28,28) map is
 * 12.8 MB). */
static int fuses_into_conv(const mf_node *n)
{
    if (n->op != MF_OP_MAX_POOL2D)
        return 0;
    const mf_node *r = n->in[0];
    return r->op == MF_OP_RELU && r->relu_fused && r->n_uses == 1;
}

/* A reshape, or a concat of one input, is identity on memory: it shares its input's
 * buffers, its readers' gradients accumulate there with the input's other readers', and
 * its kernel has nothing to do. */
static int is_view(const mf_node *n)
{
    return n->op == MF_OP_RESHAPE || (n->op == MF_OP_CONCAT && n->n_in == 1);
}

int mf_graph_compile(mf_graph *g, mf_error *err)
{
    if (!g) {
        mf_error_set(err, "graph: no graph to compile");
        return -1;
    }
    if (g->compiled)
        return 0; /* a constructor called after compile records an error but harms nothing */
    if (g->has_error) {
        mf_error_set(err, "%s", g->error);
        return -1;
    }
    /* parameters first, so that a store not yet finalised leaves the graph untouched */
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        if (n->op == MF_OP_PARAM && !mf_param_value(n->param)) {
            mf_error_set(err, "param \"%s\": the parameter store is not finalised; "
                              "finalise it before compiling a graph that uses it", n->name);
            return -1;
        }
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_in; k++)
            g->nodes[i]->in[k]->n_uses++;
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        n->base = n;
        if (n->op == MF_OP_PARAM) {
            n->value = mf_param_value(n->param);
            n->grad = g->training ? mf_param_grad(n->param) : NULL;
            continue;
        }
        if (fuses_into_conv(n)) { /* conv2d → relu → max_pool2d: one pass per chunk */
            n->pool_fused = 1;
            n->in[0]->in[0]->fused_pool = n;
        }
        if (can_run_in_place(n) || is_view(n)) {
            n->inplace = 1;
            if (n->op == MF_OP_RELU && n->in[0]->op == MF_OP_CONV2D)
                n->relu_fused = n->in[0]->relu_fused = 1; /* one pass over the activations */
            n->base = n->in[0]->base;
            n->value = n->in[0]->value;
            n->grad = n->in[0]->grad;
            continue;
        }
        int need_grad = 0;
        if (g->training) {
            need_grad = n->op == MF_OP_VARIABLE;
            for (int k = 0; k < n->n_in && !need_grad; k++)
                need_grad = n->in[k]->grad != NULL;
        }
        n->value = floats(g, n->numel);
        n->grad = need_grad ? floats(g, n->numel) : NULL;
        n->scratch_bytes = 0;
        if (mfi_cpu_ops[n->op])
            mfi_cpu_ops[n->op](n, MFI_SCRATCH);
        n->scratch = n->scratch_bytes ? mf_arena_alloc(g->arena, n->scratch_bytes) : NULL;
        if (n->op == MF_OP_CONSTANT && n->value)
            mfi_fill_constant(n);
        if (!n->value || (need_grad && !n->grad) || (n->scratch_bytes && !n->scratch)) {
            mfi_graph_fail(g, "graph: out of memory while compiling (%zu bytes held)",
                           mf_arena_used(g->arena));
            mf_error_set(err, "%s", g->error);
            return -1;
        }
    }
    g->compiled = 1;
    return 0;
}

/* ---------------------------------------------------------------- replay */
static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One kernel call, timed per op kind when the graph is profiled. */
static inline void run_op(mf_graph *g, mf_node *n, int action)
{
    if (!g->profile) {
        mfi_cpu_ops[n->op](n, action);
        mfi_team_op_done(n->numel);
        return;
    }
    double t0 = seconds();
    mfi_cpu_ops[n->op](n, action);
    mfi_team_op_done(n->numel);
    g->profile->seconds[n->op][action == MFI_BACKWARD] += seconds() - t0;
    g->profile->calls[n->op][action == MFI_BACKWARD]++;
}

void mf_graph_set_profiling(mf_graph *g, int on)
{
    if (!g)
        return;
    if (on && !g->profile)
        g->profile = mf_arena_alloc(g->arena, sizeof *g->profile);
    else if (!on)
        g->profile = NULL;
}

void mf_graph_print_profile(const mf_graph *g, FILE *f)
{
    if (!g || !g->profile)
        return;
    double total = 0;
    for (int op = 0; op < MF_OP_COUNT; op++)
        total += g->profile->seconds[op][0] + g->profile->seconds[op][1];
    fprintf(f, "%-14s %10s %10s %7s %9s\n", "op", "forward ms", "backward ms", "share", "calls");
    for (int op = 0; op < MF_OP_COUNT; op++) {
        const double fw = g->profile->seconds[op][0], bw = g->profile->seconds[op][1];
        if (g->profile->calls[op][0] + g->profile->calls[op][1] == 0)
            continue;
        fprintf(f, "%-14s %10.3f %10.3f %6.1f%% %9lld\n", mfi_op_name((mf_op)op), fw * 1e3,
                bw * 1e3, total > 0 ? 100 * (fw + bw) / total : 0,
                (long long)(g->profile->calls[op][0] + g->profile->calls[op][1]));
    }
}
void mf_graph_forward(mf_graph *g)
{
    if (!g || !g->compiled)
        return;
    g->forward_count++; /* random ops (dropout) draw fresh masks from the new count */
    mfi_team_cold(); /* after the caller's serial work */
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        if (mfi_cpu_ops[n->op])
            run_op(g, n, MFI_FORWARD);
    }
}

static void zero_grad(mf_node *b) { memset(b->grad, 0, (size_t)b->numel * sizeof(float)); }

/* Before n's backward: mark its inputs reachable, and initialise each input buffer that no
 * later node has written in this pass — n is its first writer (backward runs in reverse
 * creation order). n overwrites it when its op can and no other input shares the buffer;
 * otherwise it is zeroed here. Parameter gradients accumulate: never touched. */
static void prepare_inputs(mf_node *n, unsigned epoch)
{
    unsigned fresh = 0;
    for (int k = 0; k < n->n_in; k++) {
        mf_node *x = n->in[k], *b = x->base;
        if (!x->grad)
            continue;
        x->mark = epoch;
        if (b->op == MF_OP_PARAM || b->gepoch == epoch)
            continue;
        b->gepoch = epoch;
        int alone = (mfi_writes_fresh[n->op] || n->pool_fused) && k < 32;
        for (int j = 0; j < n->n_in && alone; j++)
            alone = j == k || !n->in[j]->grad || n->in[j]->base != b;
        if (alone)
            fresh |= 1u << k;
        else
            zero_grad(b);
    }
    n->fresh = fresh;
}

void mfi_graph_backward_seeded(mf_graph *g, mf_node *out, const float *seed)
{
    if (!g || !g->compiled || !out || out->graph != g || !out->grad)
        return;
    if (++g->epoch == 0) {
        for (int i = 0; i < g->n_nodes; i++)
            g->nodes[i]->mark = g->nodes[i]->gepoch = 0;
        g->epoch = 1;
    }
    const unsigned epoch = g->epoch;
    mfi_team_cold(); /* after the memset */
    if (seed)
        memcpy(out->grad, seed, (size_t)out->numel * sizeof(float));
    else
        for (int64_t i = 0; i < out->numel; i++)
            out->grad[i] = 1.0f;
    out->base->gepoch = epoch;
    /* only nodes `out` depends on are visited */
    out->mark = epoch;
    for (int i = out->id; i >= 0; i--) {
        mf_node *n = g->nodes[i];
        if (n->mark != epoch || is_leaf(n))
            continue;
        prepare_inputs(n, epoch);
        run_op(g, n, MFI_BACKWARD);
        n->fresh = 0;
        if (g->on_backward)
            g->on_backward(g->on_backward_ctx, i);
    }
    /* the gradients no op wrote read zero, as after a full clear (variables included) */
    for (int i = 0; i < g->n_nodes; i++) {
        mf_node *n = g->nodes[i];
        if (n->grad && n->base == n && n->op != MF_OP_PARAM && n->gepoch != epoch)
            zero_grad(n);
    }
}

void mfi_graph_set_backward_hook(mf_graph *g, mfi_backward_hook fn, void *ctx)
{
    if (g)
        g->on_backward = fn, g->on_backward_ctx = ctx;
}

void mfi_graph_set_collective(mf_graph *g, const mfi_collective *c)
{
    if (!g)
        return;
    mfi_collective *copy = c ? mf_arena_alloc(g->arena, sizeof *copy) : NULL;
    if (c && !copy)
        mfi_graph_fail(g, "gather_batch: out of memory");
    else if (copy)
        *copy = *c;
    g->collective = copy;
}

void mf_graph_backward(mf_graph *g, mf_node *loss)
{
    if (!loss || loss->numel != 1)
        return;
    mfi_graph_backward_seeded(g, loss, NULL);
}

void mf_graph_backward_scaled(mf_graph *g, mf_node *loss, float scale)
{
    if (!loss || loss->numel != 1)
        return;
    mfi_graph_backward_seeded(g, loss, &scale);
}
