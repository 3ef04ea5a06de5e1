/* mmfuse bench: the four reference models of shared/bench/README.md, built from the core
 * API with exactly the reference shapes, timed per step as torch_ref.py times PyTorch.
 *
 *   mlp-concat     x1 784-256-128, x2 64-128-128, concat, head 256-128-10, cross-entropy
 *   tensor-fusion  x1 784-256-32, x2 64-128-32, vec([h1;1]⊗[h2;1]) (1089), head 1089-128-10
 *   cnn-late       image CNN → 128 → 10, x2 64-128-128 → 10, logits averaged
 *   clip-dual      image CNN → 128, text Embedding(1000,128)×16 mean-pooled → 128, both
 *                  L2-normalised, logits = exp(s)·I·Tᵀ, symmetric InfoNCE
 *   xattn-fusion   7×7 patches and 16 tokens → one transformer layer each → cross-attention
 *                  both ways → mean-pooled, concatenated → Linear(256,10); this one is built
 *                  from the built-in plugins, configured from YAML, as an experiment builds it
 *
 * Other sizes, to see how cost grows (issue 11 item 5; torch_scale.py builds the same): any
 * batch; mlp-concat at width W (enc1 784-W-W, enc2 64-W-W, head 2W-W-10); xattn-fusion at T
 * positions a side (the image 28×(7·T/4) cut into T patches of 7×7, T tokens, learned
 * position tables of T rows), T a multiple of 4.
 *
 * Besides the step time it replays, alone, the exact sequence of sgemm calls one step
 * makes, so that the model's rate can be read as a fraction of what OpenBLAS reaches on
 * those shapes.
 */
#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include <mmfuse/host.h>

#include "../core/gemm.h"
#include "bench_internal.h"
#include "buckets.h"
#include "dist.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS's; see core/threads.c */

#define N_BATCHES 4 /* distinct synthetic batches, cycled (as torch_ref.py) */

typedef struct bench_model {
    const char *name;
    int batch; /* the reference's; --batch sets another */
} bench_model;
static const bench_model models[] = {
    {"mlp-concat", 128}, {"tensor-fusion", 128}, {"cnn-late", 128}, {"clip-dual", 256},
    {"xattn-fusion", 128},
};

/* Multiply-accumulates per sample of one forward, counted as torch_ref.py counts them (and
 * torch_scale.py at other sizes): W the mlp-concat width (0: the reference's mixed widths),
 * T xattn-fusion's positions per modality. clip-dual's similarity adds B·128, below. */
#define LIN(i, o) ((int64_t)(i) * (o))
#define CNN_MACS (LIN(1 * 16 * 9, 28 * 28) + LIN(16 * 32 * 9, 14 * 14) + LIN(1568, 128))
static int64_t macs_per_sample(const char *name, int64_t W, int64_t T)
{
    const int64_t D = 128, attn = 2 * LIN(T * T, D); /* QKᵀ and AV */
    const int64_t block = T * (LIN(D, 3 * D) + LIN(D, D) + LIN(D, 256) + LIN(256, D)) + attn;
    const int64_t cross = T * (LIN(D, D) + LIN(D, 2 * D) + LIN(D, D)) + attn;
    if (strcmp(name, "mlp-concat") == 0)
        return W ? LIN(784, W) + LIN(W, W) + LIN(64, W) + LIN(W, W) + LIN(2 * W, W) + LIN(W, 10)
                 : LIN(784, 256) + LIN(256, 128) + LIN(64, 128) + LIN(128, 128) +
                       LIN(256, 128) + LIN(128, 10);
    if (strcmp(name, "tensor-fusion") == 0)
        return LIN(784, 256) + LIN(256, 32) + LIN(64, 128) + LIN(128, 32) + LIN(1089, 128) +
               LIN(128, 10);
    if (strcmp(name, "cnn-late") == 0)
        return CNN_MACS + LIN(128, 10) + LIN(64, 128) + LIN(128, 128) + LIN(128, 10);
    if (strcmp(name, "clip-dual") == 0)
        return CNN_MACS + LIN(128, 128);
    return T * LIN(49, D) + 2 * block + 2 * cross + LIN(2 * D, 10); /* xattn-fusion */
}
#define N_MODELS (int)(sizeof models / sizeof models[0])

/* ---------------------------------------------------------------- model definitions */
typedef struct layers {
    mf_mlp enc1, enc2, head;
    mf_conv2d_layer conv1, conv2;
    mf_linear cnn_fc, head1, head2, text_proj;
    mf_embedding_layer embed;
    mf_param *logit_scale;
} layers;

/* W > 0: mlp-concat at width W, enc1 784-W-W, enc2 64-W-W, head 2W-W-10 (every hidden layer). */
static int define(const char *name, layers *L, mf_module *m, int64_t W)
{
    const int64_t enc1[] = {784, W ? W : 256, W ? W : 128}, enc2[] = {64, W ? W : 128, W ? W : 128},
                  head[] = {W ? 2 * W : 256, W ? W : 128, 10};
    static const int64_t tf_enc1[] = {784, 256, 32}, tf_enc2[] = {64, 128, 32},
                         tf_head[] = {33 * 33, 128, 10};
    int cnn = strcmp(name, "cnn-late") == 0 || strcmp(name, "clip-dual") == 0;
    if (cnn && (mf_conv2d_layer_init(&L->conv1, m, "img.conv1", 1, 16, 3, 1, 1, 1) ||
                mf_conv2d_layer_init(&L->conv2, m, "img.conv2", 16, 32, 3, 1, 1, 1) ||
                mf_linear_init(&L->cnn_fc, m, "img.fc", 32 * 7 * 7, 128, 1)))
        return -1;
    if (strcmp(name, "mlp-concat") == 0)
        return mf_mlp_init(&L->enc1, m, "enc1", 3, enc1, MF_ACT_RELU) ||
               mf_mlp_init(&L->enc2, m, "enc2", 3, enc2, MF_ACT_RELU) ||
               mf_mlp_init(&L->head, m, "head", 3, head, MF_ACT_RELU);
    if (strcmp(name, "tensor-fusion") == 0)
        return mf_mlp_init(&L->enc1, m, "enc1", 3, tf_enc1, MF_ACT_RELU) ||
               mf_mlp_init(&L->enc2, m, "enc2", 3, tf_enc2, MF_ACT_RELU) ||
               mf_mlp_init(&L->head, m, "head", 3, tf_head, MF_ACT_RELU);
    if (strcmp(name, "cnn-late") == 0)
        return mf_mlp_init(&L->enc2, m, "enc2", 3, enc2, MF_ACT_RELU) ||
               mf_linear_init(&L->head1, m, "head1", 128, 10, 1) ||
               mf_linear_init(&L->head2, m, "head2", 128, 10, 1);
    /* clip-dual */
    if (mf_embedding_layer_init(&L->embed, m, "txt.embed", 1000, 128) ||
        mf_linear_init(&L->text_proj, m, "txt.proj", 128, 128, 1))
        return -1;
    L->logit_scale = mf_module_param(m, "logit_scale", mf_shape1(1),
                                     (mf_init){MF_INIT_ZEROS, 0, 0});
    return L->logit_scale ? 0 : -1;
}

/* image (B,1,28,28) → (B,128) */
static mf_node *image_encoder(mf_graph *g, const layers *L, mf_node *img)
{
    mf_node *h = mf_max_pool2d(g, mf_relu(g, mf_conv2d_layer_forward(g, &L->conv1, img)), 2, 2);
    h = mf_max_pool2d(g, mf_relu(g, mf_conv2d_layer_forward(g, &L->conv2, h)), 2, 2);
    return mf_linear_forward(g, &L->cnn_fc, mf_reshape(g, h, mf_shape2(-1, 32 * 7 * 7)));
}

static void build(net *n, const char *name, const layers *L, int B, int training)
{
    mf_graph *g = n->g = mf_graph_new(training);
    int cnn = strcmp(name, "cnn-late") == 0 || strcmp(name, "clip-dual") == 0;
    n->n_inputs = 2;
    n->input[0] = cnn ? mf_input(g, "image", mf_shape4(B, 1, 28, 28))
                      : mf_input(g, "x1", mf_shape2(B, 784));
    n->tokens = n->diagonal = strcmp(name, "clip-dual") == 0;
    n->input[1] = n->tokens ? mf_input(g, "tokens", mf_shape2(B, 16)) : mf_input(g, "x2", mf_shape2(B, 64));
    n->target = mf_input(g, "target", mf_shape1(B));
    mf_node *x1 = n->input[0], *x2 = n->input[1];
    if (strcmp(name, "mlp-concat") == 0) {
        mf_node *h[2] = {mf_mlp_forward(g, &L->enc1, x1), mf_mlp_forward(g, &L->enc2, x2)};
        n->out = mf_mlp_forward(g, &L->head, mf_concat(g, 2, h));
    } else if (strcmp(name, "tensor-fusion") == 0) {
        n->ones = mf_input(g, "ones", mf_shape2(B, 1));
        mf_node *h1[2] = {mf_mlp_forward(g, &L->enc1, x1), n->ones};
        mf_node *h2[2] = {mf_mlp_forward(g, &L->enc2, x2), n->ones};
        mf_node *z = mf_outer(g, mf_concat(g, 2, h1), mf_concat(g, 2, h2)); // (B,1089)
        n->out = mf_mlp_forward(g, &L->head, z);
    } else if (strcmp(name, "cnn-late") == 0) {
        mf_node *l1 = mf_linear_forward(g, &L->head1, image_encoder(g, L, x1));
        mf_node *l2 = mf_linear_forward(g, &L->head2, mf_mlp_forward(g, &L->enc2, x2));
        n->out = mf_scale(g, mf_add(g, l1, l2), 0.5f);
    } else { /* clip-dual */
        mf_node *img = mf_l2_normalize(g, image_encoder(g, L, x1), 1e-12f);
        mf_node *txt = mf_mean(g, mf_embedding_layer_forward(g, &L->embed, x2), 1, 0);
        txt = mf_l2_normalize(g, mf_linear_forward(g, &L->text_proj, txt), 1e-12f);
        mf_node *scale = mf_exp(g, mf_param_node(g, L->logit_scale));
        n->out = mf_mul(g, mf_matmul(g, img, txt, 0, 1), scale); // (B,B)
    }
    if (!training) /* inference stops at the logits / similarity matrix, as torch_ref.py's */
        return;
    if (n->diagonal)
        n->loss = mf_scale(g, mf_add(g, mf_cross_entropy(g, n->out, n->target),
                                     mf_cross_entropy(g, mf_transpose(g, n->out, 0, 1), n->target)),
                           0.5f);
    else
        n->loss = mf_cross_entropy(g, n->out, n->target);
}

/* Parameters, and the FLOPs of one forward's products (recorded: convolution, matmul, bmm),
 * against torch_ref.py's count of the same model (torch_scale.py's at other sizes). */
static void products_report(net *n, const char *name, const char *ref, int64_t ref_params,
                            int64_t ref_flops)
{
    mfi_gemm_log log = {0};
    mfi_gemm_record(&log);
    mf_graph_forward(n->g);
    mfi_gemm_record(NULL);
    double flops = 0;
    for (int i = 0; i < log.n; i++)
        flops += 2.0 * (double)log.calls[i].m * (double)log.calls[i].n * (double)log.calls[i].k;
    free(log.calls);
    fprintf(stderr, "%s: %lld parameters (%s: %lld); one forward's matrix products %.1f MFLOP "
            "in %d calls (%s: %.1f)\n", name, (long long)mf_params_numel(n->params), ref,
            (long long)ref_params, flops * 1e-6, log.n, ref, (double)ref_flops * 1e-6);
}

/* ---------------------------------------------------------------- data */
typedef struct batches {
    float *x[N_BATCHES][MAX_INPUTS];
    float *y[N_BATCHES];
} batches;

static int make_batches(batches *d, const net *n, int B, uint64_t seed)
{
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (int b = 0; b < N_BATCHES; b++) {
        for (int i = 0; i < n->n_inputs; i++) {
            int64_t numel = mf_node_numel(n->input[i]);
            if (!(d->x[b][i] = malloc((size_t)numel * sizeof(float))))
                return -1;
            for (int64_t j = 0; j < numel; j++)
                d->x[b][i][j] = (i == 1 && n->tokens) ? (float)mf_rng_below(&rng, 1000)
                                                      : mf_rng_normal(&rng);
        }
        if (!(d->y[b] = malloc((size_t)B * sizeof(float))))
            return -1;
        for (int j = 0; j < B; j++)
            d->y[b][j] = n->diagonal ? (float)j : (float)mf_rng_below(&rng, 10);
    }
    return 0;
}

static void free_batches(batches *d)
{
    for (int b = 0; b < N_BATCHES; b++) {
        for (int i = 0; i < MAX_INPUTS; i++)
            free(d->x[b][i]);
        free(d->y[b]);
    }
}

/* ---------------------------------------------------------------- timing */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void load(net *n, const batches *d, int it)
{
    int b = it % N_BATCHES;
    for (int i = 0; i < n->n_inputs; i++)
        memcpy(mf_node_value(n->input[i]), d->x[b][i],
               (size_t)mf_node_numel(n->input[i]) * sizeof(float));
    memcpy(mf_node_value(n->target), d->y[b], (size_t)mf_node_numel(n->target) * sizeof(float));
}

/* One step; with ranks, each steps its part of the batch and the gradients are summed
 * before the optimiser, in buckets during backward when bk is not NULL (*sum_seconds: the
 * time the sums took that backward did not hide). */
static void step(net *n, mf_optim *opt, int training, const mfi_comm *c, mfi_buckets *bk,
                 double *sum_seconds)
{
    mf_graph_forward(n->g);
    if (training) {
        const double before = mfi_dist_seconds();
        mfi_buckets_arm(bk, n->g);
        mf_graph_backward(n->g, n->loss); /* gradients start at zero: the optimiser zeroed them */
        if (bk)
            mfi_buckets_finish(bk);
        else if (c && c->size > 1)
            mfi_dist_sum_f32(c, mf_params_grads(n->params), mf_params_numel(n->params));
        *sum_seconds = mfi_dist_seconds() - before;
        mf_optim_step(opt, n->params);
    }
}

/* What an MPI caller asked (mf_bench_ranks.bucket_mb) and is told. */
static mf_bench_ranks *ranks_of(const mf_bench_options *o)
{
    return o->struct_size >= offsetof(mf_bench_options, ranks) + sizeof o->ranks && o->ranks &&
                   o->ranks->struct_size >= offsetof(mf_bench_ranks, allreduce_bytes) +
                                                sizeof o->ranks->allreduce_bytes
               ? o->ranks : NULL;
}

static int make_buckets(const mf_bench_options *o, const mfi_comm *world, net *n,
                        mfi_buckets **bk, mf_error *err)
{
    const mf_bench_ranks *r = ranks_of(o);
    const int asked = r && r->struct_size >= offsetof(mf_bench_ranks, buckets) + sizeof r->buckets;
    *bk = asked && o->train
              ? mfi_buckets_new(world, n->params, r->bucket_mb * 1048576.0, err) : NULL;
    return asked && o->train && !*bk && err->msg[0] ? -1 : 0;
}

static void report_ranks(const mf_bench_options *o, const mfi_comm *world, const net *n,
                         const mfi_buckets *bk, double *sums)
{
    mf_bench_ranks *r = ranks_of(o);
    if (!r)
        return;
    qsort(sums, (size_t)o->steps, sizeof *sums, compare_doubles);
    r->ranks = world->size;
    r->allreduce_ms = sums[o->steps / 2] * 1e3;
    r->allreduce_bytes = world->size > 1 ? mf_params_numel(n->params) * 4 : 0;
    if (r->struct_size >= offsetof(mf_bench_ranks, buckets) + sizeof r->buckets)
        r->buckets = mfi_buckets_count(bk);
}

/* Time the recorded sgemm calls alone, median of `reps` replays: through mfi_gemm (OpenBLAS
 * single-threaded, products split across the OpenMP team) or, with blas_threads > 0, as
 * plain cblas_sgemm calls with OpenBLAS's own threads. Each call's A, B and C come from the
 * next free stretch of a ring as large as the step's own memory (graph and parameter
 * buffers), so the replay meets the caches as the step does: one reused buffer would run
 * from cache and overstate the rate by ~15 % on the MLP shapes, a huge ring understate it. */
static double sgemm_seconds(const mfi_gemm_log *log, int reps, int blas_threads, size_t ring_floats)
{
    for (int i = 0; i < log->n; i++) {
        const mfi_gemm_call *g = &log->calls[i];
        size_t need = (size_t)(g->m * g->k + g->k * g->n + g->m * g->n) + 64;
        ring_floats = need > ring_floats ? need : ring_floats;
    }
    const size_t REPLAY_RING = ring_floats;
    float *ring = calloc(REPLAY_RING, sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double)), best = NAN;
    size_t pos = 0;
    if (ring && t) {
        for (size_t i = 0; i < REPLAY_RING; i++)
            ring[i] = (float)(i % 97) * 0.01f;
        if (blas_threads)
            openblas_set_num_threads(blas_threads);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int i = 0; i < log->n; i++) {
                const mfi_gemm_call *g = &log->calls[i];
                size_t na = (size_t)(g->m * g->k + 15) & ~(size_t)15,
                       nb = (size_t)(g->k * g->n + 15) & ~(size_t)15, nc = (size_t)(g->m * g->n);
                if (pos + na + nb + nc > REPLAY_RING)
                    pos = 0;
                float *a = ring + pos, *b = a + na, *c = b + nb;
                pos += (na + nb + nc + 15) & ~(size_t)15;
                if (blas_threads)
                    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                                g->tb ? CblasTrans : CblasNoTrans, (int)g->m, (int)g->n, (int)g->k,
                                1.0f, a, (int)(g->ta ? g->m : g->k), b, (int)(g->tb ? g->k : g->n),
                                g->beta, c, (int)g->n);
                else
                    mfi_gemm(g->ta, g->tb, g->m, g->n, g->k, a, g->ta ? g->m : g->k, b,
                             g->tb ? g->k : g->n, g->beta, c, g->n);
            }
            t[r] = now() - t0;
        }
        if (blas_threads)
            mf_set_threads(mf_get_threads()); /* back to one pool */
        qsort(t, (size_t)reps, sizeof *t, compare_doubles);
        best = t[reps / 2];
    }
    free(ring);
    free(t);
    return best;
}

static int bench_run_sized(const mf_bench_options *o, int batch, int width, int seq,
                           mf_bench_result *res, mf_error *err);

/* A 1.0 caller's options end before the sizes: those run at the reference's. */
int mf_bench_run(const mf_bench_options *o, mf_bench_result *res, mf_error *err)
{
    const int sized = o->struct_size >= offsetof(mf_bench_options, seq) + sizeof o->seq;
    return bench_run_sized(o, sized ? o->batch : 0, sized ? o->width : 0, sized ? o->seq : 0,
                           res, err);
}

/* The named model, if it takes these sizes; else NULL and err set. */
static const bench_model *find_model(const char *name, int batch, int width, int seq,
                                     mf_error *err)
{
    const char *names[N_MODELS + 1] = {NULL};
    for (int i = 0; i < N_MODELS; i++)
        if (strcmp(name, names[i] = models[i].name) == 0) {
            if (batch >= 0 && width >= 0 && seq >= 0 && seq % 4 == 0 &&
                (!width || strcmp(name, "mlp-concat") == 0) &&
                (!seq || strcmp(name, "xattn-fusion") == 0))
                return &models[i];
            mf_error_set(err, "bench %s: batch %d, width %d, seq %d: width is for mlp-concat, "
                         "seq (a multiple of 4) for xattn-fusion", name, batch, width, seq);
            return NULL;
        }
    mf_error_set(err, "unknown benchmark model '%s'%s (one of mlp-concat, tensor-fusion, "
                 "cnn-late, clip-dual, xattn-fusion)", name, mf_suggestion(name, names));
    return NULL;
}

/* One step's sgemm calls, recorded, then replayed alone: res's sgemm fields (and peak RSS,
 * taken before the replay's ring). */
static void replay(net *n, const batches *d, mf_optim *opt, const mf_bench_options *o,
                   double median, mf_bench_result *res)
{
    mfi_gemm_log log = {0};
    mfi_gemm_record(&log);
    load(n, d, 0);
    double unused;
    step(n, opt, o->train, NULL, NULL, &unused);
    mfi_gemm_record(NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->peak_rss_kb = ru.ru_maxrss;
    /* The reference is the faster of our split and OpenBLAS's own threading. */
    size_t ring = (mf_graph_bytes(n->g) + 4 * sizeof(float) * (size_t)mf_params_numel(n->params)) /
                  sizeof(float);
    /* 50 replays, fewer for short runs of large models (scale.sh): never longer than the run */
    const int replays = o->steps / 2 < 5 ? 5 : o->steps / 2 > 50 ? 50 : o->steps / 2;
    double gemm_time = sgemm_seconds(&log, replays, 0, ring);
    double blas_time = sgemm_seconds(&log, replays, mf_get_threads(), ring);
    if (blas_time < gemm_time)
        gemm_time = blas_time;
    double gemm_flops = 0;
    for (int i = 0; i < log.n; i++)
        gemm_flops += 2.0 * (double)log.calls[i].m * (double)log.calls[i].n * (double)log.calls[i].k;
    free(log.calls);
    res->sgemm_calls = log.n;
    res->sgemm_gflops = gemm_flops / gemm_time * 1e-9;
    res->sgemm_fraction = gemm_time / median; /* = model rate / sgemm rate on the same FLOPs */
}

/* mf_bench_run at other sizes, each 0 for the reference's: batch, mlp-concat's width W,
 * xattn-fusion's positions T (a multiple of 4). */
static int bench_run_sized(const mf_bench_options *o, int batch, int width, int seq,
                           mf_bench_result *res, mf_error *err)
{
    const bench_model *model = find_model(o->model, batch, width, seq, err);
    if (!model)
        return MF_EXIT_BAD_INPUT;
    const int xattn = strcmp(o->model, "xattn-fusion") == 0;
    memset(res, 0, sizeof *res);
    mfi_comm world;
    if (mfi_dist_world(&world, err))
        return MF_EXIT_BAD_INPUT;
    mf_set_threads(o->threads);
    const int global_batch = batch ? batch : model->batch, B = global_batch / world.size;
    if (global_batch % world.size) {
        mf_error_set(err, "bench: the batch of %d does not split evenly over %d ranks (--batch)",
                     global_batch, world.size);
        return MF_EXIT_BAD_INPUT;
    }
    net n;
    layers L;
    batches d;
    memset(&n, 0, sizeof n);
    memset(&L, 0, sizeof L);
    memset(&d, 0, sizeof d);
    mf_optim opt = {MF_OPTIM_ADAM, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0};
    int status = MF_EXIT_FAILED;
    double *times = NULL, *sums = NULL;
    mfi_buckets *bk = NULL;

    n.seq = seq ? seq : 16;
    n.params = mf_params_new();
    if (xattn ? mfi_bench_xattn_define(&n, err)
              : !(n.module = mf_module_new(NULL, o->model, n.params, err)) ||
                    define(o->model, &L, n.module, width))
        goto done;
    if (mf_params_finalize(n.params, o->seed, 2, err))
        goto done;
    if (L.logit_scale)
        mf_param_value(L.logit_scale)[0] = logf(1.0f / 0.07f);
    if (xattn)
        mfi_bench_xattn_build(&n, B, o->train);
    else
        build(&n, o->model, &L, B, o->train);
    if (mf_graph_compile(n.g, err))
        goto done;
    if (n.ones)
        for (int i = 0; i < B; i++)
            mf_node_value(n.ones)[i] = 1.0f;
    if (make_buckets(o, &world, &n, &bk, err))
        goto done;
    if (make_batches(&d, &n, B, o->seed + (uint64_t)world.rank) ||
        !(times = malloc((size_t)o->steps * sizeof *times)) ||
        !(sums = calloc((size_t)o->steps, sizeof *sums))) {
        mf_error_set(err, "out of memory");
        goto done;
    }
    for (int it = 0; it < o->warmup + o->steps; it++) {
        load(&n, &d, it);
        double t0 = now(), sum = 0;
        step(&n, &opt, o->train, &world, bk, &sum);
        double t1 = now();
        if (it >= o->warmup)
            times[it - o->warmup] = t1 - t0, sums[it - o->warmup] = sum;
    }
    if (o->profile) { /* the same steps again, each kernel timed */
        mf_graph_set_profiling(n.g, 1);
        for (int it = 0; it < o->steps; it++) {
            double sum;
            load(&n, &d, it);
            step(&n, &opt, o->train, &world, bk, &sum);
        }
        fprintf(stderr, "per-op time over %d steps (%s, %s, %d threads):\n", o->steps, o->model,
                o->train ? "train" : "eval", mf_get_threads());
        mf_graph_print_profile(n.g, stderr);
        mf_graph_set_profiling(n.g, 0);
    }
    res->check = o->train ? mf_node_value(n.loss)[0] : 0;
    if (!o->train) {
        double s = 0;
        for (int64_t i = 0; i < mf_node_numel(n.out); i++)
            s += fabs(mf_node_value(n.out)[i]);
        res->check = s / (double)mf_node_numel(n.out);
    }
    double sum = 0;
    for (int i = 0; i < o->steps; i++)
        sum += times[i];
    qsort(times, (size_t)o->steps, sizeof *times, compare_doubles);
    double median = times[o->steps / 2];

    const int64_t macs = macs_per_sample(o->model, width, n.seq) * B +
                         (n.diagonal ? (int64_t)B * B * 128 : 0);
    const int64_t W = width, mlp_params = 785 * W + W * W + W + 65 * W + W * W + W + 2 * W * W +
                                          W + 10 * W + 10; /* torch_scale.py's MLPConcat */
    if (xattn || width) /* the model against the reference's definition, as numbers */
        products_report(&n, o->model, batch || width || seq ? "torch_scale.py" : "torch_ref.py",
                        xattn ? XATTN_REF_PARAMS(n.seq) : mlp_params, 2 * macs);
    replay(&n, &d, &opt, o, median, res);
    res->batch = global_batch;
    res->flops_per_step = 2 * macs * world.size * (o->train ? 3 : 1);
    res->median_ms = median * 1e3;
    res->mean_ms = sum / o->steps * 1e3;
    res->min_ms = times[0] * 1e3;
    res->p90_ms = times[(int)(0.9 * o->steps)] * 1e3;
    res->samples_per_s = global_batch / median;
    report_ranks(o, &world, &n, bk, sums);
    res->gflops_at_median = (double)res->flops_per_step / median * 1e-9;
    res->params = mf_params_numel(n.params);
    res->graph_bytes = (int64_t)mf_graph_bytes(n.g);
    res->threads = mf_get_threads();
    status = MF_EXIT_OK;
done:
    mfi_buckets_free(bk);
    free(times);
    free(sums);
    free_batches(&d);
    mf_graph_free(n.g);
    mf_module_free(n.module);
    mfi_bench_xattn_free(&n);
    mf_params_free(n.params);
    return status;
}
