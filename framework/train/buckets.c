/* Gradient buckets overlapped with backward (buckets.h). */
#include <limits.h>
#include <stdlib.h>

#include "../core/core_internal.h" /* the graph's nodes and its backward hook */
#include "buckets.h"

struct mfi_buckets {
    mfi_comm comm; /* a duplicate of the trainer's: only bucket sums travel on it */
    float *grads;
    int64_t numel;
    int n;           /* buckets; bucket 0 holds the parameters created last */
    int64_t *lo, *hi; /* bucket k is grads[lo[k], hi[k]) */
    int *ready_at;   /* per bucket: the lowest node index writing its gradients (armed graph) */
    int next;        /* the next bucket to start */
    mf_graph *armed;
    int failed;
};

int mfi_buckets_count(const mfi_buckets *b) { return b ? b->n : 0; }

void mfi_buckets_free(mfi_buckets *b)
{
    if (!b)
        return;
    free(b->lo);
    free(b->hi);
    free(b->ready_at);
    free(b);
}

/* Cut [0, numel) at parameter starts (params.c lays them out in creation order, packed),
 * from the end, into pieces of at least cap floats: the cuts fall between parameters, so a
 * bucket never ends in the middle of one. */
static int plan(mfi_buckets *b, mf_params *ps, int64_t cap)
{
    const int np = mf_params_size(ps);
    b->lo = malloc((size_t)np * sizeof *b->lo);
    b->hi = malloc((size_t)np * sizeof *b->hi);
    b->ready_at = malloc((size_t)np * sizeof *b->ready_at);
    if (!b->lo || !b->hi || !b->ready_at)
        return -1;
    int64_t end = b->numel;
    for (int i = np - 1; i >= 0; i--) {
        const int64_t start = i == 0 ? 0 : mf_param_offset(mf_params_at(ps, i));
        if (end - start >= cap || i == 0) {
            b->lo[b->n] = start;
            b->hi[b->n++] = end;
            end = start;
        }
    }
    return 0;
}

mfi_buckets *mfi_buckets_new(const mfi_comm *c, mf_params *ps, double cap_bytes, mf_error *err)
{
    if (c->size <= 1 || cap_bytes <= 0 || mf_params_numel(ps) == 0)
        return NULL;
    mfi_buckets *b = calloc(1, sizeof *b);
    if (!b) {
        mf_error_set(err, "out of memory for the gradient buckets");
        return NULL;
    }
    b->grads = mf_params_grads(ps);
    b->numel = mf_params_numel(ps);
    int64_t cap = (int64_t)(cap_bytes / (double)sizeof(float));
    if (plan(b, ps, cap > 0 ? cap : 1)) {
        mf_error_set(err, "out of memory for the gradient buckets");
        mfi_buckets_free(b);
        return NULL;
    }
    if (b->n == 1) { /* nothing to overlap: the blocking sum is faster (docs/distributed.md) */
        mfi_buckets_free(b);
        return NULL;
    }
    if (mfi_dist_dup(c, &b->comm, err)) {
        mfi_buckets_free(b);
        return NULL;
    }
    return b;
}

/* The bucket holding gradient element `at` (buckets run from the end of the buffer). */
static int bucket_of(const mfi_buckets *b, int64_t at)
{
    int lo = 0, hi = b->n - 1;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (at >= b->lo[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A node writing the gradient of x's storage, when that storage is one of our parameters. */
static void note_writer(mfi_buckets *b, const mf_node *x, int writer)
{
    const mf_node *base = x->base ? x->base : x;
    if (base->op != MF_OP_PARAM || !base->grad || base->grad < b->grads ||
        base->grad >= b->grads + b->numel)
        return;
    int *at = &b->ready_at[bucket_of(b, base->grad - b->grads)];
    if (writer < *at)
        *at = writer;
}

static void start_ready(mfi_buckets *b, int node_index)
{
    int started = 0;
    while (b->next < b->n && b->ready_at[b->next] >= node_index) {
        const int k = b->next++;
        b->failed |= mfi_dist_isum_f32(&b->comm, b->grads + b->lo[k], b->hi[k] - b->lo[k]);
        started = 1;
    }
    if (!started) /* between two starts: let the sums in flight move on */
        b->failed |= mfi_dist_progress();
}

static void on_backward(void *ctx, int node_index) { start_ready(ctx, node_index); }

void mfi_buckets_arm(mfi_buckets *b, mf_graph *g)
{
    if (!b || !g)
        return;
    for (int k = 0; k < b->n; k++)
        b->ready_at[k] = INT_MAX; /* no writer in this graph: final from the start */
    /* a parameter's gradient is written by every node reading it, or a view of it, and by
     * the views themselves; backward runs from the last node down */
    for (int i = 0; i < g->n_nodes; i++) {
        const mf_node *n = g->nodes[i];
        if (n->base && n->base != n)
            note_writer(b, n, i);
        for (int k = 0; k < n->n_in; k++)
            note_writer(b, n->in[k], i);
    }
    b->next = 0;
    b->armed = g;
    mfi_graph_set_backward_hook(g, on_backward, b);
}

int mfi_buckets_finish(mfi_buckets *b)
{
    if (!b)
        return 0;
    if (b->armed)
        mfi_graph_set_backward_hook(b->armed, NULL, NULL);
    b->armed = NULL;
    start_ready(b, INT_MIN); /* every bucket not started yet */
    b->next = 0;
    b->failed |= mfi_dist_wait();
    const int failed = b->failed;
    b->failed = 0;
    return failed ? -1 : 0;
}
