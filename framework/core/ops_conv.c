/* Convolution and pooling over NCHW tensors.
 *
 * conv2d is im2col + cblas_sgemm, one sample at a time: the columns of one sample (C·kh·kw,
 * H'·W') stay in L2, and the product lands directly in the sample's (O,H'·W') output, so
 * no transposing copy is needed. The batch is cut into a fixed number of chunks (at most
 * MFI_CONV_CHUNKS) run in an OpenMP loop, each chunk with its own column buffer and its
 * own partial weight gradient; OpenBLAS runs single-threaded inside that loop. Measured on
 * the benchmark's conv stack (B = 128, 2-core Xeon), this beat one whole-batch sgemm (im2col
 * of the batch into (C·kh·kw, B·H'·W'), then a (O,B,H'W') → (B,O,H'W') copy) at both thread
 * counts: forward + backward of Conv(16→32, 3×3) took 10.8 vs 11.5 ms on 1 thread and 5.5
 * vs 14 ms on 2 (the whole-batch sgemm's OpenBLAS threads fight the OpenMP ones), and of
 * Conv(1→16) 1.2 vs 3.2 ms on 1 thread. A direct loop for C = 1 is no faster than this
 * sgemm (K = 9, or 10 with the bias) in a generic -O2 build.
 *
 * Determinism: the chunks depend on the batch size only, each sample's sgemm runs in one
 * thread, and the chunks' partial gradients are added in chunk order, so conv2d (forward
 * and backward) and the pooling ops give bit-identical results for any thread count, given
 * a single-threaded sgemm that is deterministic (OpenBLAS's is). */
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

mf_node *mf_conv2d(mf_graph *g, mf_node *x, mf_node *w, mf_node *bias, int stride, int pad)
{
    mf_node *in[3] = {x, w, bias};
    mfi_args args = {.i = {stride, pad, bias != NULL}};
    return mfi_node_new(g, MF_OP_CONV2D, bias ? 3 : 2, in, &args);
}

mf_node *mf_max_pool2d(mf_graph *g, mf_node *x, int k, int stride)
{
    mfi_args args = {.i = {k, stride}};
    return mfi_node_new(g, MF_OP_MAX_POOL2D, 1, &x, &args);
}

mf_node *mf_avg_pool2d(mf_graph *g, mf_node *x, int k, int stride)
{
    mfi_args args = {.i = {k, stride}};
    return mfi_node_new(g, MF_OP_AVG_POOL2D, 1, &x, &args);
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

// x is one sample (C,H,W); cols is (C·kh·kw, Ho·Wo), row (c,ki,kj) holding the input pixels
// that kernel tap meets at every output position (0 in the padding)
static void im2col(const conv_dims *d, const float *x, float *cols)
{
    const int s = d->stride;
    const int64_t Wo = d->Wo;
    const int same = s == 1 && Wo == d->W;
    for (int64_t c = 0; c < d->C; c++)
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                const float *xc = x + c * d->H * d->W;
                if (same) {
                    tap_run t;
                    tap_run_of(d, ki, kj, &t);
                    const float *src = xc + t.shift;
                    for (int64_t q = 0; q < t.qa; q++)
                        row[q] = 0.0f;
                    // one long copy: vectorised (gcc -O2 alone would not)
                    MFI_OMP(omp simd)
                    for (int64_t q = t.qa; q < t.qb; q++)
                        row[q] = src[q];
                    for (int64_t q = t.qb; q < d->P; q++)
                        row[q] = 0.0f;
                    if (t.lo > 0 || t.hi < Wo) /* the wrapped columns */
                        for (int64_t oh = t.oh0; oh < t.oh1; oh++) {
                            for (int64_t ow = 0; ow < t.lo; ow++)
                                row[oh * Wo + ow] = 0.0f;
                            for (int64_t ow = t.hi; ow < Wo; ow++)
                                row[oh * Wo + ow] = 0.0f;
                        }
                    continue;
                }
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
// back. cols is clobbered (the "same" path zeroes its padding columns).
static void col2im_add(const conv_dims *d, float *cols, float *dx)
{
    const int s = d->stride;
    const int64_t Wo = d->Wo;
    const int same = s == 1 && Wo == d->W;
    for (int64_t c = 0; c < d->C; c++)
        for (int ki = 0; ki < d->kh; ki++)
            for (int kj = 0; kj < d->kw; kj++) {
                float *row = cols + ((c * d->kh + ki) * d->kw + kj) * d->P;
                float *dxc = dx + c * d->H * d->W;
                if (same) {
                    tap_run t;
                    tap_run_of(d, ki, kj, &t);
                    /* the run's wrapped columns add 0 to the pixels they wrap onto */
                    if (t.lo > 0 || t.hi < Wo)
                        for (int64_t oh = t.oh0; oh < t.oh1; oh++) {
                            for (int64_t ow = 0; ow < t.lo; ow++)
                                row[oh * Wo + ow] = 0.0f;
                            for (int64_t ow = t.hi; ow < Wo; ow++)
                                row[oh * Wo + ow] = 0.0f;
                        }
                    float *dst = dxc + t.shift;
                    // one long sum: vectorised (gcc -O2 alone would not); dst and row differ
                    MFI_OMP(omp simd)
                    for (int64_t q = t.qa; q < t.qb; q++)
                        dst[q] += row[q];
                    continue;
                }
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
 * gradient over positions) into one more row of the weight-gradient product.
 *
 * Scratch, in floats: per chunk the columns (KB,P); the weights with the bias column
 * (O,KB) when there is a bias; per chunk a partial [weight | bias] gradient, transposed
 * (KB,O), in training graphs. */
typedef struct conv_scratch {
    int64_t nchunk;
    int64_t cols_stride, part_stride; /* floats from one chunk's buffer to the next */
    float *cols, *wb, *part;          /* wb, part NULL when not needed */
} conv_scratch;

/* n floats rounded up to a cache line, so that chunks never share one */
static int64_t line_floats(int64_t n) { return (n + 15) / 16 * 16; }

static size_t conv_scratch_layout(const mf_node *n, const conv_dims *d, conv_scratch *s)
{
    const mf_node *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = d->B < MFI_CONV_CHUNKS ? d->B : MFI_CONV_CHUNKS;
    s->nchunk = nc;
    s->cols_stride = line_floats(d->KB * d->P);
    s->part_stride = w->grad || (bias && bias->grad) ? line_floats(d->KB * d->O) : 0;
    const int64_t ncols = nc * s->cols_stride, nwb = bias ? line_floats(d->O * d->KB) : 0;
    const int64_t npart = nc * s->part_stride;
    float *base = n->scratch;
    s->cols = base;
    s->wb = base && nwb ? base + ncols : NULL;
    s->part = base && npart ? base + ncols + nwb : NULL;
    return (size_t)(ncols + nwb + npart) * sizeof(float);
}

/* Whether a conv2d's chunks run in parallel: a conv too small to pay for the fork runs in
 * the caller's thread, with BLAS threaded as usual. */
static int conv_parallel(const conv_dims *d, int64_t nchunk)
{
    return nchunk > 1 && max_threads() > 1 && d->B * d->O * d->P * d->KB >= MFI_PAR_MIN;
}

static void conv_forward(mf_node *n, const conv_dims *d, const conv_scratch *s)
{
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
    MFI_OMP(omp parallel for schedule(static) if (par))
    for (int64_t ch = 0; ch < nc; ch++) {
        float *cols = s->cols + ch * s->cols_stride;
        if (bias)
            for (int64_t p = 0; p < d->P; p++)
                cols[d->CK * d->P + p] = 1.0f;
        for (int64_t b = d->B * ch / nc; b < d->B * (ch + 1) / nc; b++) {
            im2col(d, x->value + b * inel, cols);
            // out[b] (O,P) = wk (O,KB) · cols (KB,P)
            mfi_gemm(0, 0, d->O, d->P, d->KB, wk, d->KB, cols, d->P, 0.0f, n->value + b * onel,
                 d->P);
        }
    }
}

static void conv_backward(mf_node *n, const conv_dims *d, const conv_scratch *s)
{
    mf_node *x = n->in[0], *w = n->in[1], *bias = n->iarg[2] ? n->in[2] : NULL;
    const int64_t nc = s->nchunk, inel = d->C * d->H * d->W, onel = d->O * d->P;
    const int need_dw = w->grad != NULL, need_db = bias && bias->grad;
    /* rows [k0,k1) of the transposed [weight | bias] gradient (KB,O) are wanted */
    const int64_t k0 = need_dw ? 0 : d->CK, k1 = need_db ? d->KB : d->CK;
    const int par = conv_parallel(d, nc);
    // chunks of samples are independent; each owns its column buffer and partial gradient
    MFI_OMP(omp parallel for schedule(static) if (par))
    for (int64_t ch = 0; ch < nc; ch++) {
        float *cols = s->cols + ch * s->cols_stride;
        float *part = k1 > k0 ? s->part + ch * s->part_stride : NULL; // part is (KB,O)
        const int64_t b0 = d->B * ch / nc, b1 = d->B * (ch + 1) / nc;
        if (bias)
            for (int64_t p = 0; p < d->P; p++)
                cols[d->CK * d->P + p] = 1.0f;
        for (int64_t b = b0; b < b1; b++) {
            const float *gb = n->grad + b * onel; // gb is (O,P)
            if (need_dw || x->grad)
                im2col(d, x->value + b * inel, cols);
            if (part) // part[k0:k1] (k1-k0,O) (+)= cols[k0:k1] (k1-k0,P) · gbᵀ (P,O)
                mfi_gemm(0, 1, k1 - k0, d->O, d->P, cols + k0 * d->P, d->P, gb, d->P,
                     b == b0 ? 0.0f : 1.0f, part + k0 * d->O, d->O);
            if (x->grad) { // dcols (CK,P) = wᵀ (CK,O) · gb (O,P), folded into dx
                mfi_gemm(1, 0, d->CK, d->P, d->O, w->value, d->CK, gb, d->P, 0.0f, cols, d->P);
                col2im_add(d, cols, x->grad + b * inel);
            }
        }
    }
    // the chunks' partial sums, added in chunk order
    if (need_dw)
        for (int64_t o = 0; o < d->O; o++)
            for (int64_t k = 0; k < d->CK; k++) {
                float acc = 0.0f;
                for (int64_t ch = 0; ch < nc; ch++)
                    acc += s->part[ch * s->part_stride + k * d->O + o];
                w->grad[o * d->CK + k] += acc;
            }
    if (need_db)
        for (int64_t o = 0; o < d->O; o++) {
            float acc = 0.0f;
            for (int64_t ch = 0; ch < nc; ch++)
                acc += s->part[ch * s->part_stride + d->CK * d->O + o];
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

/* ---------------------------------------------------------------- pooling */
static int pool_shape(mf_node *n, const char *op)
{
    // x is (B,C,H,W); out is (B,C,Ho,Wo), Ho = (H-k)/stride + 1
    const mf_node *x = n->in[0];
    const int k = n->iarg[0], stride = n->iarg[1];
    char sx[MFI_SHAPE_STR];
    mfi_node_shape_str(x, sx);
    if (x->shape.ndim != 4) {
        mfi_op_fail(n, "%s: x must be (B,C,H,W): x %s", op, sx);
        return -1;
    }
    if (k < 1 || stride < 1) {
        mfi_op_fail(n, "%s: window and stride must be >= 1: k %d, stride %d", op, k, stride);
        return -1;
    }
    if (k > x->shape.dim[2] || k > x->shape.dim[3]) {
        mfi_op_fail(n, "%s: window %dx%d larger than the input %s", op, k, k, sx);
        return -1;
    }
    if (x->shape.dim[2] * x->shape.dim[3] > INT32_MAX) {
        mfi_op_fail(n, "%s: an input plane exceeds %ld pixels: x %s", op, (long)INT32_MAX, sx);
        return -1;
    }
    n->shape = mf_shape4(x->shape.dim[0], x->shape.dim[1], (x->shape.dim[2] - k) / stride + 1,
                         (x->shape.dim[3] - k) / stride + 1);
    return 0;
}

/* One plane of max_pool2d. Branch-free (selects through bit masks: gcc turns the plain
 * ternaries into jumps): on real activations "is this the new max?" is a coin toss that a
 * branch mispredicts half the time, which made the pass 3x slower. k is a constant where
 * inlined. */
static inline void max_pool_plane(const float *xp, int64_t W, int64_t Ho, int64_t Wo, int k,
                                  int s, float *op, int32_t *ap)
{
    for (int64_t i = 0; i < Ho; i++)
        for (int64_t j = 0; j < Wo; j++) {
            const int64_t base = i * s * W + j * s;
            float m = xp[base];
            uint32_t mbits;
            memcpy(&mbits, &m, sizeof mbits);
            int32_t best = (int32_t)base;
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    const int32_t at = (int32_t)(base + ki * W + kj);
                    const float v = xp[at];
                    uint32_t vbits;
                    memcpy(&vbits, &v, sizeof vbits);
                    /* all ones when v wins: the first max wins ties; a NaN wins and stays */
                    const uint32_t take = 0u - (uint32_t)((v > m) | (v != v));
                    mbits = (mbits & ~take) | (vbits & take);
                    memcpy(&m, &mbits, sizeof m);
                    best = (int32_t)(((uint32_t)best & ~take) | ((uint32_t)at & take));
                }
            op[i * Wo + j] = m;
            if (ap)
                ap[i * Wo + j] = best;
        }
}

/* max_pool2d's common case, k = stride = 2: each column's larger of the two rows first (unit
 * stride, vectorised), then each pair of those, keeping where the max was. Ties go to the
 * first element in row-major order, as PyTorch's: the right column's value wins a tie only
 * when it sits in the upper row and the left one's in the lower. A NaN wins. */
static void max_pool_plane_2x2(const float *xp, int64_t W, int64_t Ho, int64_t Wo, float *op,
                               int32_t *restrict ap)
{
    float v[2 * 1024];
    int32_t lower[2 * 1024]; /* 1 where the column's max is in the lower row */
    for (int64_t i = 0; i < Ho; i++) {
        const float *r0 = xp + 2 * i * W, *r1 = r0 + W;
        for (int64_t c = 0; c < 2 * Wo; c++) {
            const float x0 = r0[c], x1 = r1[c];
            const int t = isgreater(x1, x0) + (isunordered(x1, x1) > isunordered(x0, x0));
            v[c] = t ? x1 : x0;
            lower[c] = t;
        }
        float *o = op + i * Wo;
        int32_t *best = ap + i * Wo;
        const int32_t row0 = (int32_t)(2 * i * W);
        for (int64_t j = 0; j < Wo; j++) {
            const float l = v[2 * j], r = v[2 * j + 1];
            const int32_t rl = lower[2 * j], rr = lower[2 * j + 1];
            const int t = isgreater(r, l) + (isunordered(r, r) > isunordered(l, l)) +
                          (r == l && rr < rl);
            o[j] = t ? r : l;
            best[j] = row0 + (t ? rr * (int32_t)W + 2 * (int32_t)j + 1 : rl * (int32_t)W + 2 * (int32_t)j);
        }
    }
}

/* The same without the argmax (inference graphs keep none): the two rows' maxima first (unit
 * stride, vectorised), then each pair of them. Compared in the tournament's order up to the
 * pairing (x0·x2, x1·x3 instead of x0·x1, x2·x3): the values are the same, but for which of
 * +0 and -0 is kept. */
static void max_pool_plane_2x2_values(const float *xp, int64_t W, int64_t Ho, int64_t Wo,
                                      float *restrict op)
{
    float v[2 * 1024];
    for (int64_t i = 0; i < Ho; i++) {
        const float *r0 = xp + 2 * i * W, *r1 = r0 + W;
        for (int64_t c = 0; c < 2 * Wo; c++) {
            const float a = r0[c], b = r1[c];
            v[c] = isgreater(b, a) + isunordered(b, b) ? b : a;
        }
        float *o = op + i * Wo;
        for (int64_t j = 0; j < Wo; j++) {
            const float a = v[2 * j], b = v[2 * j + 1];
            o[j] = (isgreater(b, a) + isunordered(b, b)) > isunordered(a, a) ? b : a;
        }
    }
}

void mfi_op_max_pool2d(mf_node *n, int action)
{
    // x is (B,C,H,W), out is (B,C,Ho,Wo): the max of each k×k window, every `stride` pixels;
    // scratch keeps, per output, the plane offset of its max (the first one on ties) as int32
    mf_node *x = n->in[0];
    const int k = n->iarg[0], s = n->iarg[1];
    if (action == MFI_SHAPE) {
        pool_shape(n, "max_pool2d");
        return;
    }
    const int64_t planes = n->shape.dim[0] * n->shape.dim[1], H = x->shape.dim[2],
                  W = x->shape.dim[3], Ho = n->shape.dim[2], Wo = n->shape.dim[3];
    const int64_t P = Ho * Wo;
    int32_t *arg = n->scratch;
    switch (action) {
    case MFI_SCRATCH:
        n->scratch_bytes = n->graph->training ? (size_t)n->numel * sizeof(int32_t) : 0;
        return;
    case MFI_FORWARD:
        // planes are independent
        MFI_OMP(omp parallel for schedule(static) if (n->numel * k * k >= MFI_PAR_MIN))
        for (int64_t pl = 0; pl < planes; pl++) {
            const float *xp = x->value + pl * H * W;
            float *op = n->value + pl * P;
            int32_t *ap = arg ? arg + pl * P : NULL;
            if (k == 2 && s == 2 && ap && Wo <= 1024)
                max_pool_plane_2x2(xp, W, Ho, Wo, op, ap);
            else if (k == 2 && s == 2 && Wo <= 1024)
                max_pool_plane_2x2_values(xp, W, Ho, Wo, op);
            else
                max_pool_plane(xp, W, Ho, Wo, k, s, op, ap);
        }
        return;
    case MFI_BACKWARD:
        if (!x->grad)
            return;
        // planes are independent; within a plane, overlapping windows add in order
        MFI_OMP(omp parallel for schedule(static) if (n->numel >= MFI_PAR_MIN))
        for (int64_t pl = 0; pl < planes; pl++) {
            float *dx = x->grad + pl * H * W;
            const float *dy = n->grad + pl * P;
            const int32_t *ap = arg + pl * P;
            for (int64_t p = 0; p < P; p++)
                dx[ap[p]] += dy[p];
        }
        return;
    default:
        return;
    }
}

void mfi_op_avg_pool2d(mf_node *n, int action)
{
    // x is (B,C,H,W), out is (B,C,Ho,Wo): the mean of each k×k window, every `stride` pixels
    mf_node *x = n->in[0];
    const int k = n->iarg[0], s = n->iarg[1];
    if (action == MFI_SHAPE) {
        pool_shape(n, "avg_pool2d");
        return;
    }
    const int64_t planes = n->shape.dim[0] * n->shape.dim[1], H = x->shape.dim[2],
                  W = x->shape.dim[3], Ho = n->shape.dim[2], Wo = n->shape.dim[3];
    const int64_t P = Ho * Wo;
    const float inv = 1.0f / (float)(k * k);
    switch (action) {
    case MFI_FORWARD:
        // planes are independent
        MFI_OMP(omp parallel for schedule(static) if (n->numel * k * k >= MFI_PAR_MIN))
        for (int64_t pl = 0; pl < planes; pl++) {
            const float *xp = x->value + pl * H * W;
            float *op = n->value + pl * P;
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    float acc = 0.0f;
                    for (int ki = 0; ki < k; ki++) {
                        const float *row = xp + (i * s + ki) * W + j * s;
                        for (int kj = 0; kj < k; kj++)
                            acc += row[kj];
                    }
                    op[i * Wo + j] = acc * inv;
                }
        }
        return;
    case MFI_BACKWARD:
        if (!x->grad)
            return;
        // planes are independent; within a plane, overlapping windows add in order
        MFI_OMP(omp parallel for schedule(static) if (n->numel * k * k >= MFI_PAR_MIN))
        for (int64_t pl = 0; pl < planes; pl++) {
            float *dx = x->grad + pl * H * W;
            const float *dy = n->grad + pl * P;
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    const float gv = dy[i * Wo + j] * inv;
                    for (int ki = 0; ki < k; ki++) {
                        float *row = dx + (i * s + ki) * W + j * s;
                        for (int kj = 0; kj < k; kj++)
                            row[kj] += gv;
                    }
                }
        }
        return;
    default:
        return;
    }
}
