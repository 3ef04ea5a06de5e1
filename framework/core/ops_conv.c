/* Convolution over NCHW tensors (pooling is in ops_pool.c).
 *
 * Stride-1 convolutions (pad < kernel) run a direct AVX-512 kernel when the build has
 * AVX-512 (see "direct stride-1 kernel" below): forward and the pass to x when there are at
 * least 32 taps per output, the weight gradient always. Why: each small per-sample product
 * pays for packing its columns (itcopy/oncopy, ~10 %), for the im2col copy (~12 %) and for
 * the memset that a beta = 0 product runs over C, and OpenBLAS may run its AVX2 kernel on an
 * AVX-512 core (some machines force it with OPENBLAS_CORETYPE); the direct kernel reads a
 * zero-padded copy of the sample in place. Measured in CPU time per call (B = 128, interleaved with the sgemm
 * build, medians of 40; `mmfuse bench` wall times are in the issue 11 report):
 * Conv(16→32, 3×3) on 14×14 forward 3.6–3.7 → 1.7–2.0 ms, backward 7.3–7.5 → 5.8–6.3 ms.
 * Conv(1→16) keeps im2col + sgemm forward (9 taps: the kernel's write-back of 8×32 tiles
 * outweighs its 9 products, 0.83–0.96 vs 1.0–1.1 ms direct) but takes the direct weight
 * gradient.
 *
 * The other convolutions are im2col + cblas_sgemm, one sample at a time: the columns of one
 * sample (C·kh·kw, H'·W') stay in L2, and the product lands directly in the sample's
 * (O,H'·W') output. On the "same" path (stride 1, W' = W) a column buffer's padding is zeroed
 * once per chunk and im2col writes only the taps' runs: the zero fills gcc had turned into
 * one memset call per row cost conv1's forward as much as its product. Grouping g samples per
 * product (N = g·H'·W', or K = g·H'·W' for the weight gradient) measured no faster with
 * OpenBLAS here (84 GFLOP/s per sample, 82–91 for g = 4–16), nor did the bias as beta = 1.
 *
 * The batch is cut into a fixed number of chunks (at most MFI_CONV_CHUNKS) run in an OpenMP
 * loop, each chunk with its own buffers and its own partial weight gradient; OpenBLAS runs
 * single-threaded inside that loop (one whole-batch sgemm measured slower at both thread
 * counts: its threads fight the OpenMP ones).
 *
 * Determinism: the chunks depend on the batch size only, each sample (and each chunk's
 * weight gradient) is computed by one thread in a fixed order, and the chunks' partial
 * gradients are added in chunk order, so conv2d (forward and backward) gives bit-identical
 * results for any thread count, given a single-threaded sgemm that is deterministic
 * (OpenBLAS's is). */
#include <limits.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gemm.h"
#include "ops_common.h"


/* Chunks of a batch: the most threads a conv2d uses, and the partial gradients it keeps. */
#define MFI_CONV_CHUNKS 8
/* Below this many multiply-adds (or element visits) a loop runs in one thread. */
#define MFI_PAR_MIN 32768

#include "conv_direct.h"

/* n floats rounded up to a cache line, so that chunks never share one */
static int64_t line_floats(int64_t n) { return (n + 15) / 16 * 16; }

mf_node *mf_conv2d(mf_graph *g, mf_node *x, mf_node *w, mf_node *bias, int stride, int pad)
{
    mf_node *in[3] = {x, w, bias};
    mfi_args args = {.i = {stride, pad, bias != NULL}};
    return mfi_node_new(g, MF_OP_CONV2D, bias ? 3 : 2, in, &args);
}

/* A per-sample product: whole when the batch's chunks are what the threads share (whether or
 * not they run in parallel, so that the bits never depend on it); cut by mfi_gemm when there
 * is one chunk (one sample), whose product then uses the team itself. */
static void conv_gemm(int64_t nchunk, int ta, int tb, int64_t m, int64_t n, int64_t k,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc)
{
    if (nchunk > 1)
        mfi_gemm_whole(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
    else
        mfi_gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---------------------------------------------------------------- im2col */
/* Output columns [*lo, *hi) whose input column o·stride - pad + k lies inside [0, W). */
static void valid_range(int64_t Wo, int64_t W, int stride, int pad, int k, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = pad - k; /* first o with o·stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t b = W - 1 + pad - k; /* last o with o·stride <= b */
    int64_t h = b < 0 ? 0 : b / stride + 1;
    *lo = l < Wo ? l : Wo;
    *hi = h < Wo ? h : Wo;
    if (*hi < *lo)
        *hi = *lo;
}

typedef struct conv_dims {
    int64_t B, C, H, W, O, Ho, Wo, P, CK; /* P = Ho·Wo, CK = C·kh·kw */
    int64_t KB;                           /* the sgemm's inner size: CK, +1 with a bias */
    int kh, kw, stride, pad;
} conv_dims;

/* Stride 1 and Wo = W (a "same" convolution, e.g. 3×3 with pad 1): the row of tap (ki,kj)
 * is the input plane shifted by (ki-pad)·W + kj-pad, so rows oh0..oh1-1 of the tap are ONE
 * contiguous run [qa,qb) of the plane (zeros around it), except the columns [0,lo) and
 * [hi,Wo) that fall in the padding (there the run wraps into the neighbouring input row).
 * Per-row copies of 14 or 28 floats cost more in loop overhead than in moving data: the
 * runs took the benchmark's conv stack (forward + backward, 1 thread) from 18.7 to 16.6 ms. */
typedef struct tap_run {
    int64_t oh0, oh1, lo, hi; /* rows and columns of the tap inside the input */
    int64_t qa, qb;           /* the run, in output positions; empty when qa == qb */
    int64_t shift;            /* input offset of output position q: q + shift */
} tap_run;

static void tap_run_of(const conv_dims *d, int ki, int kj, tap_run *t)
{
    const int64_t dh = ki - d->pad, dw = kj - d->pad;
    t->oh0 = dh < 0 ? -dh : 0;
    t->oh1 = d->H - dh < d->Ho ? d->H - dh : d->Ho;
    valid_range(d->Wo, d->W, 1, d->pad, kj, &t->lo, &t->hi);
    t->shift = dh * d->W + dw;
    if (t->oh0 >= t->oh1 || t->lo >= t->hi) { /* the tap meets only padding */
        t->oh0 = t->oh1 = 0;
        t->qa = t->qb = 0;
        return;
    }
    /* in range: row oh0 + dh >= 0, column lo + dw >= 0, and likewise at the far end */
    t->qa = t->oh0 * d->Wo + t->lo;
    t->qb = (t->oh1 - 1) * d->Wo + t->hi;
}

static int conv_same(const conv_dims *d) { return d->stride == 1 && d->Wo == d->W; }

/* Zeroes the wrapped columns [0,lo) and [hi,Wo) of a tap's rows: column outer, so that gcc
 * emits strided stores, not the memset call per row (of 1–2 floats) that cost conv1's
 * forward as much time as its product. */
static void zero_wrapped(const conv_dims *d, const tap_run *t, float *row)
{
    for (int64_t ow = 0; ow < t->lo; ow++)
        for (int64_t oh = t->oh0; oh < t->oh1; oh++)
            row[oh * d->Wo + ow] = 0.0f;
    for (int64_t ow = t->hi; ow < d->Wo; ow++)
        for (int64_t oh = t->oh0; oh < t->oh1; oh++)
            row[oh * d->Wo + ow] = 0.0f;
}

/* A column buffer (KB,P) ready for im2col: zero, and the bias row (if any) of ones. On the
 * "same" path the padding positions outside each tap's run are the same for every sample, so
 * they are zeroed here once per buffer and im2col writes only the runs. */
static void cols_init(const conv_dims *d, float *cols)
{
    memset(cols, 0, (size_t)(d->CK * d->P) * sizeof(float));
    for (int64_t p = d->CK * d->P; p < d->KB * d->P; p++)
        cols[p] = 1.0f;
}

// x is one sample (C,H,W); cols is (C·kh·kw, Ho·Wo), row (c,ki,kj) holding the input pixels
// that kernel tap meets at every output position (0 in the padding; on the "same" path cols
// must come from cols_init or an earlier im2col)
static void im2col(const conv_dims *d, const float *x, float *cols)
{
    const int s = d->stride;
    const int64_t Wo = d->Wo, HW = d->H * d->W;
    if (conv_same(d)) {
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                tap_run t;
                tap_run_of(d, ki, kj, &t);
                for (int64_t c = 0; c < d->C; c++) {
                    float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                    const float *src = x + c * HW + t.shift;
                    // one long copy: vectorised (gcc -O2 alone would not)
                    MFI_OMP(omp simd)
                    for (int64_t q = t.qa; q < t.qb; q++)
                        row[q] = src[q];
                    zero_wrapped(d, &t, row);
                }
            }
        return;
    }
    for (int64_t c = 0; c < d->C; c++)
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                const float *xc = x + c * HW;
                int64_t lo, hi;
                valid_range(Wo, d->W, s, d->pad, kj, &lo, &hi);
                for (int64_t oh = 0; oh < d->Ho; oh++) {
                    float *dst = row + oh * Wo;
                    const int64_t ih = oh * s - d->pad + ki;
                    if (ih < 0 || ih >= d->H) {
                        for (int64_t ow = 0; ow < Wo; ow++)
                            dst[ow] = 0.0f;
                        continue;
                    }
                    const float *src = xc + ih * d->W - d->pad + kj;
                    for (int64_t ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    if (s == 1) {
                        MFI_OMP(omp simd) // vectorised (gcc -O2 alone would not)
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow * s];
                    }
                    for (int64_t ow = hi; ow < Wo; ow++)
                        dst[ow] = 0.0f;
                }
            }
}

// cols is (C·kh·kw, Ho·Wo) gradients; dx is one sample (C,H,W): dx += the columns folded
// back. cols is clobbered (the "same" path zeroes its wrapped columns).
static void col2im_add(const conv_dims *d, float *cols, float *dx)
{
    const int s = d->stride;
    const int64_t Wo = d->Wo, HW = d->H * d->W;
    if (conv_same(d)) {
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                tap_run t;
                tap_run_of(d, ki, kj, &t);
                for (int64_t c = 0; c < d->C; c++) {
                    float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                    /* the run's wrapped columns add 0 to the pixels they wrap onto */
                    zero_wrapped(d, &t, row);
                    float *dst = dx + c * HW + t.shift;
                    // one long sum: vectorised (gcc -O2 alone would not); dst and row differ
                    MFI_OMP(omp simd)
                    for (int64_t q = t.qa; q < t.qb; q++)
                        dst[q] += row[q];
                }
            }
        return;
    }
    for (int64_t c = 0; c < d->C; c++)
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                float *dxc = dx + c * HW;
                int64_t lo, hi;
                valid_range(Wo, d->W, s, d->pad, kj, &lo, &hi);
                for (int64_t oh = 0; oh < d->Ho; oh++) {
                    const int64_t ih = oh * s - d->pad + ki;
                    if (ih < 0 || ih >= d->H)
                        continue;
                    const float *src = row + oh * Wo;
                    float *dst = dxc + ih * d->W - d->pad + kj;
                    if (s == 1) {
                        MFI_OMP(omp simd) // vectorised (gcc -O2 alone would not)
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] += src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow * s] += src[ow];
                    }
                }
            }
}

/* ---------------------------------------------------------------- conv2d */
static void conv_dims_of(const mf_node *n, conv_dims *d)
{
    const mf_node *x = n->in[0], *w = n->in[1];
    d->B = x->shape.dim[0];
    d->C = x->shape.dim[1];
    d->H = x->shape.dim[2];
    d->W = x->shape.dim[3];
    d->O = w->shape.dim[0];
    d->kh = (int)w->shape.dim[2];
    d->kw = (int)w->shape.dim[3];
    d->stride = n->iarg[0];
    d->pad = n->iarg[1];
    d->Ho = n->shape.dim[2];
    d->Wo = n->shape.dim[3];
    d->P = d->Ho * d->Wo;
    d->CK = d->C * d->kh * d->kw;
    d->KB = d->CK + (n->iarg[2] != 0);
}

/* The bias rides in the sgemm: the columns get a last row of ones and the weights a last
 * column holding the bias, so the product writes bias + w·cols in one pass, and in the
 * backward pass the same row of ones turns the bias gradient (the sum of the output
 * gradient over positions) into one more row of the weight-gradient product. (Filling the
 * output with the bias and adding the product onto it, beta = 1 with K = CK, measured slower:
 * conv1's forward 0.6 → 1.0 ms.)
 *
 * Scratch, in floats: per chunk the columns (KB,P); per chunk the columns' gradient (CK,P)
 * when x has a gradient (apart from the columns, which keep their zero padding); the weights
 * with the bias column (O,KB) when there is a bias; per chunk a partial [weight | bias]
 * gradient, transposed (KB,O), in training graphs. */
typedef struct conv_scratch {
    int64_t nchunk;
    int64_t cols_stride, dcols_stride, part_stride; /* floats from one chunk's buffer to the next */
    int64_t xp_stride, dw_stride;                   /* the direct kernels' buffers */
    float *cols, *dcols, *wb, *part;                /* dcols, wb, part NULL when not needed */
    float *xp, *wpack; /* direct kernel: per chunk a padded sample; the packed weights */
    float *dw;     /* direct weight gradient: per chunk a padded sample and its gradient (P,O16) */
    int64_t O16;   /* the direct weight gradient's channels, rounded up to a vector */
    int64_t ldp;   /* the partial gradient's row length: O, or O16 on the direct path */
} conv_scratch;

/* Below this many taps per output (C·kh·kw forward, O·kh·kw back to x) the direct kernel's
 * write-back outweighs its products: conv(1→16, 3×3) took 0.83–0.96 ms forward with im2col
 * and sgemm (K = 10) and 1.0–1.1 ms direct. */
#define MFI_CONV_DIRECT_MIN_TAPS 32

/* Whether a conv2d pass takes the direct kernel: stride 1, pad < kernel (so that the backward
 * pass's padding k-1-pad is >= 0), and (forward, dx = 0; to x, dx = 1) enough taps; the
 * weight gradient (dx = 2) has no write-back and always does. */
static int conv_direct(const conv_dims *d, int dx)
{
#ifdef MFI_CONV_DIRECT
    const int64_t taps = dx == 2 ? MFI_CONV_DIRECT_MIN_TAPS : (dx ? d->O : d->C) * d->kh * d->kw;
    return d->stride == 1 && d->pad < d->kh && d->pad < d->kw &&
           taps >= MFI_CONV_DIRECT_MIN_TAPS;
#else
    (void)d;
    (void)dx;
    return 0;
#endif
}


static size_t conv_scratch_layout(const mf_node *n, const conv_dims *d, conv_scratch *s)
{
    const mf_node *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = d->B < MFI_CONV_CHUNKS ? d->B : MFI_CONV_CHUNKS;
    s->nchunk = nc;
    const int dx = n->in[0]->grad != NULL;
    const int bdirect = dx && conv_direct(d, 1);
    s->cols_stride = line_floats(d->KB * d->P);
    s->dcols_stride = dx && !bdirect ? line_floats(d->CK * d->P) : 0;
    s->xp_stride = s->dw_stride = 0;
    s->O16 = (d->O + 15) / 16 * 16;
    s->ldp = d->O;
    int64_t nwpack = 0;
#ifdef MFI_CONV_DIRECT
    const int fdirect = conv_direct(d, 0);
    const int wdirect = (w->grad || (bias && bias->grad)) && conv_direct(d, 2);
    dir_conv f, b;
    mfi_dir_conv_of(&f, d->C, d->H, d->W, d->pad, d->pad, d->O, d->kh, d->kw);
    mfi_dir_conv_of(&b, d->O, d->Ho, d->Wo, d->kh - 1 - d->pad, d->kw - 1 - d->pad, d->C, d->kh,
                d->kw);
    if (fdirect) {
        s->xp_stride = f.len;
        nwpack = line_floats(f.K * f.Copad + f.Copad);
    }
    if (bdirect) {
        s->xp_stride = b.len > s->xp_stride ? b.len : s->xp_stride;
        nwpack = line_floats(b.K * b.Copad) > nwpack ? line_floats(b.K * b.Copad) : nwpack;
    }
    if (wdirect) {
        s->dw_stride = line_floats(f.len + d->P * s->O16);
        s->ldp = s->O16;
    }
#endif
    s->part_stride = w->grad || (bias && bias->grad) ? line_floats(d->KB * s->ldp) : 0;
    const int64_t ncols = nc * s->cols_stride, ndcols = nc * s->dcols_stride;
    const int64_t nwb = bias ? line_floats(d->O * d->KB) : 0, npart = nc * s->part_stride;
    const int64_t nxp = nc * s->xp_stride, ndw = nc * s->dw_stride;
    float *base = n->scratch;
    s->cols = base;
    s->dcols = base && ndcols ? base + ncols : NULL;
    s->wb = base && nwb ? base + ncols + ndcols : NULL;
    s->part = base && npart ? base + ncols + ndcols + nwb : NULL;
    s->xp = base && nxp ? base + ncols + ndcols + nwb + npart : NULL;
    s->wpack = base && nwpack ? base + ncols + ndcols + nwb + npart + nxp : NULL;
    s->dw = base && ndw ? base + ncols + ndcols + nwb + npart + nxp + nwpack : NULL;
    return (size_t)(ncols + ndcols + nwb + npart + nxp + nwpack + ndw) * sizeof(float);
}

/* Whether a conv2d's chunks run in parallel: a conv too small to pay for the fork runs in
 * the caller's thread, with BLAS threaded as usual. */
static int conv_parallel(const conv_dims *d, int64_t nchunk)
{
    return nchunk > 1 && max_threads() > 1 && d->B * d->O * d->P * d->KB >= MFI_PAR_MIN;
}

/* y = max(y, 0): a fused relu on the im2col path */
static void rectify(float *y, int64_t n)
{
    MFI_OMP(omp simd)
    for (int64_t i = 0; i < n; i++)
        y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

/* g = 0 where the fused relu cut (y <= 0) */
static void mask_grad(float *g, const float *y, int64_t n)
{
    MFI_OMP(omp simd)
    for (int64_t i = 0; i < n; i++)
        g[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

#ifdef MFI_CONV_DIRECT
static void conv_forward_direct(mf_node *n, const conv_dims *d, const conv_scratch *s)
{
    const mf_node *x = n->in[0], *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = s->nchunk, inel = d->C * d->H * d->W, onel = d->O * d->P;
    dir_conv c;
    mfi_dir_conv_of(&c, d->C, d->H, d->W, d->pad, d->pad, d->O, d->kh, d->kw);
    // wt is (CK,Copad): wt[k][o] = w[o][k], 0 for o >= O; bt (Copad) the bias
    float *wt = s->wpack, *bt = bias ? s->wpack + c.K * c.Copad : NULL;
    for (int64_t k = 0; k < c.K; k++)
        for (int64_t o = 0; o < c.Copad; o++)
            wt[k * c.Copad + o] = o < d->O ? w->value[o * d->CK + k] : 0.0f;
    for (int64_t o = 0; bt && o < c.Copad; o++)
        bt[o] = o < d->O ? bias->value[o] : 0.0f;
    const int par = conv_parallel(d, nc);
    // chunks of samples are independent; each owns its padded sample
    MFI_OMP(omp parallel for schedule(static) if (mfi_par(par)))
    for (int64_t ch = 0; ch < nc; ch++) {
        float *xp = s->xp + ch * s->xp_stride;
        memset(xp, 0, (size_t)c.len * sizeof(float));
        for (int64_t b = d->B * ch / nc; b < d->B * (ch + 1) / nc; b++) {
            mfi_dir_pad(&c, x->value + b * inel, xp);
            mfi_dir_conv_sample(&c, xp, wt, bt, n->relu_fused ? DIR_STORE_RELU : DIR_STORE,
                                n->value + b * onel);
            if (n->fused_pool) /* while the sample's output is in cache */
                mfi_max_pool_forward_planes(n->fused_pool, b * d->O, (b + 1) * d->O);
        }
    }
}
#endif

static void conv_forward(mf_node *n, const conv_dims *d, const conv_scratch *s)
{
#ifdef MFI_CONV_DIRECT
    if (conv_direct(d, 0)) {
        conv_forward_direct(n, d, s);
        return;
    }
#endif
    const mf_node *x = n->in[0], *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = s->nchunk, inel = d->C * d->H * d->W, onel = d->O * d->P;
    const float *wk = w->value; // wk is (O,KB): w with the bias as its last column
    if (bias) {
        for (int64_t o = 0; o < d->O; o++) {
            memcpy(s->wb + o * d->KB, w->value + o * d->CK, (size_t)d->CK * sizeof(float));
            s->wb[o * d->KB + d->CK] = bias->value[o];
        }
        wk = s->wb;
    }
    const int par = conv_parallel(d, nc);
    // chunks of samples are independent; each owns its column buffer
    MFI_OMP(omp parallel for schedule(static) if (mfi_par(par)))
    for (int64_t ch = 0; ch < nc; ch++) {
        float *cols = s->cols + ch * s->cols_stride;
        cols_init(d, cols);
        for (int64_t b = d->B * ch / nc; b < d->B * (ch + 1) / nc; b++) {
            im2col(d, x->value + b * inel, cols);
            // out[b] (O,P) = wk (O,KB) · cols (KB,P)
            conv_gemm(nc, 0, 0, d->O, d->P, d->KB, wk, d->KB, cols, d->P, 0.0f,
                      n->value + b * onel, d->P);
            if (n->relu_fused) /* the sample's output is still in cache */
                rectify(n->value + b * onel, onel);
            if (n->fused_pool)
                mfi_max_pool_forward_planes(n->fused_pool, b * d->O, (b + 1) * d->O);
        }
    }
}

#ifdef MFI_CONV_DIRECT
// w is (O,C,kh,kw); wt (O·kh·kw, Cpad): wt[(o,a,b)][c] = w[o][c][kh-1-a][kw-1-b], 0 for c >= C
static void dir_flip_weights(const conv_dims *d, int64_t Cpad, const float *w, float *wt)
{
    for (int64_t o = 0; o < d->O; o++)
        for (int64_t a = 0; a < d->kh; a++)
            for (int64_t b = 0; b < d->kw; b++)
                for (int64_t c = 0; c < Cpad; c++)
                    wt[((o * d->kh + a) * d->kw + b) * Cpad + c] =
                        c < d->C ? w[((o * d->C + c) * d->kh + d->kh - 1 - a) * d->kw +
                                     d->kw - 1 - b]
                                 : 0.0f;
}
#endif

/* What every chunk of one conv2d backward pass shares. */
typedef struct conv_bwd {
    mf_node *n;
    const conv_dims *d;
    const conv_scratch *s;
    int64_t k0, k1;              /* rows [k0,k1) of the transposed [weight | bias] gradient */
    int need_dw, need_db, direct, wdirect;
#ifdef MFI_CONV_DIRECT
    dir_conv f, c2;              /* the forward geometry; the backward-to-x one */
#endif
} conv_bwd;

/* One sample's output gradient made whole: the fused pool's gradient scattered into it and
 * the fused relu's mask applied, in place, just before the passes below read it (in cache). */
static void conv_grad_in(const conv_bwd *c, int64_t b)
{
    mf_node *n = c->n;
    const int64_t O = c->d->O, onel = O * c->d->P;
    if (!n->relu_fused)
        return;
    if (n->fused_pool && n->fused_pool->pool_due) /* a pass that went through the pool */
        mfi_max_pool_backward_planes(n->fused_pool, b * O, (b + 1) * O,
                                     (int)n->fused_pool->pool_fresh);
    mask_grad(n->grad + b * onel, n->value + b * onel, onel);
}

// the chunk's samples [b0,b1): their share of the weight gradient into part (KB,ldp), and
// their input gradients
static void conv_backward_chunk(const conv_bwd *c, int64_t ch, int64_t b0, int64_t b1)
{
    mf_node *n = c->n, *x = n->in[0], *w = n->in[1];
    const conv_dims *d = c->d;
    const conv_scratch *s = c->s;
    const int64_t inel = d->C * d->H * d->W, onel = d->O * d->P, k0 = c->k0, k1 = c->k1;
    float *cols = s->cols + ch * s->cols_stride;
    float *part = k1 > k0 ? s->part + ch * s->part_stride : NULL;
    float *dcols = x->grad ? s->dcols + ch * s->dcols_stride : NULL; // dcols is (CK,P)
    if (k1 > k0 && !c->wdirect)
        cols_init(d, cols);
#ifdef MFI_CONV_DIRECT
    float *gp = c->direct ? s->xp + ch * s->xp_stride : NULL; // gp is gb padded
    if (gp)
        memset(gp, 0, (size_t)c->c2.len * sizeof(float));
    // xp (len) one sample padded, gt (P,O16) its gradient transposed
    float *xp = c->wdirect ? s->dw + ch * s->dw_stride : NULL, *gt = xp ? xp + c->f.len : NULL;
    if (xp) {
        memset(xp, 0, (size_t)c->f.len * sizeof(float)); /* the border; interiors rewritten */
        memset(part, 0, (size_t)d->KB * s->ldp * sizeof(float));
    }
#endif
    for (int64_t b = b0; b < b1; b++) {
        conv_grad_in(c, b);
        const float *gb = n->grad + b * onel; // gb is (O,P)
#ifdef MFI_CONV_DIRECT
        if (xp) {
            if (c->need_dw)
                mfi_dir_pad(&c->f, x->value + b * inel, xp);
            mfi_dir_transpose_grad(&c->f, gb, s->O16, gt);
            mfi_dir_dw_sample(&c->f, xp, gt, s->O16, c->need_dw, c->need_db, part);
        }
        if (gp) {
            mfi_dir_pad(&c->c2, gb, gp);
            mfi_dir_conv_sample(&c->c2, gp, s->wpack, NULL, DIR_ADD, x->grad + b * inel);
        }
#endif
        if (part && !c->wdirect) { // part[k0:k1] (k1-k0,O) (+)= cols[k0:k1] (k1-k0,P) · gbᵀ
            if (c->need_dw)
                im2col(d, x->value + b * inel, cols);
            conv_gemm(s->nchunk, 0, 1, k1 - k0, d->O, d->P, cols + k0 * d->P, d->P, gb, d->P,
                      b == b0 ? 0.0f : 1.0f, part + k0 * d->O, d->O);
        }
        if (x->grad && !c->direct) { // dcols (CK,P) = wᵀ (CK,O) · gb (O,P), folded into dx
            conv_gemm(s->nchunk, 1, 0, d->CK, d->P, d->O, w->value, d->CK, gb, d->P, 0.0f, dcols,
                      d->P);
            col2im_add(d, dcols, x->grad + b * inel);
        }
    }
}

static void conv_backward(mf_node *n, const conv_dims *d, const conv_scratch *s)
{
    mf_node *x = n->in[0], *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = s->nchunk;
    conv_bwd c = {.n = n, .d = d, .s = s, .need_dw = w->grad != NULL,
                  .need_db = bias && bias->grad};
    c.k0 = c.need_dw ? 0 : d->CK;
    c.k1 = c.need_db ? d->KB : d->CK;
    c.direct = x->grad && conv_direct(d, 1);
    c.wdirect = c.k1 > c.k0 && conv_direct(d, 2);
#ifdef MFI_CONV_DIRECT
    /* dx is the convolution of the output gradient, padded by k-1-pad, with the flipped
     * weights */
    mfi_dir_conv_of(&c.f, d->C, d->H, d->W, d->pad, d->pad, d->O, d->kh, d->kw);
    mfi_dir_conv_of(&c.c2, d->O, d->Ho, d->Wo, d->kh - 1 - d->pad, d->kw - 1 - d->pad, d->C,
                    d->kh, d->kw);
    if (c.direct)
        dir_flip_weights(d, c.c2.Copad, w->value, s->wpack);
#endif
    const int par = conv_parallel(d, nc);
    // chunks of samples are independent; each owns its buffers and partial gradient
    MFI_OMP(omp parallel for schedule(static) if (mfi_par(par)))
    for (int64_t ch = 0; ch < nc; ch++)
        conv_backward_chunk(&c, ch, d->B * ch / nc, d->B * (ch + 1) / nc);
    if (n->fused_pool) /* its gradient is scattered: a later pass that starts below it must
                        * not scatter it again */
        n->fused_pool->pool_due = 0;
    // the chunks' partial sums, added in chunk order
    if (c.need_dw)
        for (int64_t o = 0; o < d->O; o++)
            for (int64_t k = 0; k < d->CK; k++) {
                float acc = 0.0f;
                for (int64_t ch = 0; ch < nc; ch++)
                    acc += s->part[ch * s->part_stride + k * s->ldp + o];
                w->grad[o * d->CK + k] += acc;
            }
    if (c.need_db)
        for (int64_t o = 0; o < d->O; o++) {
            float acc = 0.0f;
            for (int64_t ch = 0; ch < nc; ch++)
                acc += s->part[ch * s->part_stride + d->CK * s->ldp + o];
            bias->grad[o] += acc;
        }
}

static int conv_shape(mf_node *n)
{
    // x is (B,C,H,W), w is (O,C,kh,kw), bias is (O); out is (B,O,Ho,Wo)
    const mf_node *x = n->in[0], *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int stride = n->iarg[0], pad = n->iarg[1];
    char sx[MFI_SHAPE_STR], sw[MFI_SHAPE_STR], sb[MFI_SHAPE_STR];
    mfi_node_shape_str(x, sx);
    mfi_node_shape_str(w, sw);
    if (x->shape.ndim != 4 || w->shape.ndim != 4) {
        mfi_op_fail(n, "conv2d: x must be (B,C,H,W) and w (O,C,kh,kw): x %s, w %s", sx, sw);
        return -1;
    }
    if (x->shape.dim[1] != w->shape.dim[1]) {
        mfi_op_fail(n, "conv2d: channels differ: x %s has %lld, w %s expects %lld", sx,
                    (long long)x->shape.dim[1], sw, (long long)w->shape.dim[1]);
        return -1;
    }
    if (bias && !(bias->shape.ndim == 1 && bias->shape.dim[0] == w->shape.dim[0])) {
        mfi_op_fail(n, "conv2d: bias must be (%lld) for w %s: bias %s",
                    (long long)w->shape.dim[0], sw, mfi_node_shape_str(bias, sb));
        return -1;
    }
    if (stride < 1 || pad < 0) {
        mfi_op_fail(n, "conv2d: stride must be >= 1 and pad >= 0: stride %d, pad %d", stride,
                    pad);
        return -1;
    }
    const int64_t Hp = x->shape.dim[2] + 2 * (int64_t)pad, Wp = x->shape.dim[3] + 2 * (int64_t)pad;
    if (w->shape.dim[2] > Hp || w->shape.dim[3] > Wp) {
        mfi_op_fail(n, "conv2d: kernel %lldx%lld larger than the padded input %lldx%lld: x %s, "
                       "w %s, pad %d",
                    (long long)w->shape.dim[2], (long long)w->shape.dim[3], (long long)Hp,
                    (long long)Wp, sx, sw, pad);
        return -1;
    }
    const int64_t Ho = (Hp - w->shape.dim[2]) / stride + 1;
    const int64_t Wo = (Wp - w->shape.dim[3]) / stride + 1;
    const int64_t CK = w->shape.dim[1] * w->shape.dim[2] * w->shape.dim[3];
    if (w->shape.dim[0] > INT_MAX || CK >= INT_MAX || Ho * Wo > INT_MAX ||
        x->shape.dim[1] * x->shape.dim[2] * x->shape.dim[3] > INT_MAX) {
        mfi_op_fail(n, "conv2d: dimensions exceed the BLAS limit of %d: x %s, w %s", INT_MAX, sx,
                    sw);
        return -1;
    }
    n->shape = mf_shape4(x->shape.dim[0], w->shape.dim[0], Ho, Wo);
    return 0;
}

void mfi_op_conv2d(mf_node *n, int action)
{
    // x is (B,C,H,W), w is (O,C,kh,kw), bias is (O) or absent; out is (B,O,Ho,Wo),
    // out[b,o,i,j] = bias[o] + Σ_{c,ki,kj} w[o,c,ki,kj]·x[b,c,i·s-pad+ki,j·s-pad+kj]
    if (action == MFI_SHAPE) {
        conv_shape(n);
        return;
    }
    conv_dims d;
    conv_scratch s;
    conv_dims_of(n, &d);
    switch (action) {
    case MFI_SCRATCH:
        n->scratch_bytes = conv_scratch_layout(n, &d, &s);
        return;
    case MFI_FORWARD:
        conv_scratch_layout(n, &d, &s);
        conv_forward(n, &d, &s);
        return;
    case MFI_BACKWARD:
        conv_scratch_layout(n, &d, &s);
        conv_backward(n, &d, &s);
        return;
    default:
        return;
    }
}
