/* Pooling over NCHW tensors: max_pool2d and avg_pool2d.
 *
 * Issue 11 ("a fast max-pool"): cnn-late's two 2×2 stride-2 pools cost as much as its
 * convolutions. In the -march=native build the old per-row loops (14 or 28 floats) ran
 * ~2.2 ms per (128,16,28,28) pool, and kept an int32 plane offset per output. Now:
 * - each window is reduced in row-major order by one select rule, "v replaces the running
 *   max when v > max or v is NaN" (PyTorch's: the first max wins ties, a NaN wins);
 * - the 2×2 argmax is a uint8 window index 0..3 (a quarter of the scratch traffic);
 * - with AVX-512 a row pair is done in 16-output blocks with masked loads and stores: no
 *   scalar remainder on short rows (whose selects became mispredicted branches);
 * - backward recomputes the offset from the index and adds dy at the max (a scatter of Wo
 *   per row pair). When told dx holds garbage (n->fresh) it stores whole windows instead (dy
 *   at the max, 0 elsewhere), but graph.c does not list max_pool2d in mfi_writes_fresh: in
 *   cnn-late that store took 1.05 ms a step against 0.49 for the scatter, more than the
 *   memset it saves (its stores miss the cache; the memset's do not). A pool fused into the
 *   conv2d below it (graph.c) does take the store: there each chunk is in cache.
 * Measured (1 thread, warm cache, minimum of 201 calls, busy 2-core EPYC): forward
 * (128,16,28,28) 2.2 → 0.27 ms (eval) and 2.5 → 0.28 ms (with argmax); (128,32,14,14)
 * 2.5 → 0.18 and 3.0 → 0.19 ms; backward 0.29 / 0.16 ms (the old int32 scatter: 0.25 /
 * 0.11; the fresh store, warm: 0.17 / 0.12). The portable build (-Dnative=false) runs a
 * branch-free scalar path: 0.36–0.44 ms forward (before: 0.27–0.41 without the argmax,
 * 1.0 with it).
 * Planes are independent and no sums cross them, so results are bit-identical for any
 * thread count; planes are split above MFI_OMP_MIN_ELEMS inputs (2 threads gain from
 * ~37k: 0.83×, 0.65× at 100k, 0.53× at 400k; break even at 25k). */
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define MFI_POOL_AVX512 1
#endif

#include "ops_common.h"

/* Below this many input elements a pool runs in one thread (memory-bound, like the maps). */
#ifndef MFI_POOL_PAR_MIN
#define MFI_POOL_PAR_MIN MFI_OMP_MIN_ELEMS
#endif

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

/* ---------------------------------------------------------------- max: the select rule */
/* All ones when v replaces the running max m (v larger, or v NaN), else 0. Selecting
 * through masks keeps gcc from turning the ternaries into branches, which real activations
 * mispredict half the time. */
static inline uint32_t max_take(float v, float m) { return 0u - (uint32_t)((v > m) | (v != v)); }

static inline float max_sel(float m, float v, uint32_t take)
{
    uint32_t mb, vb;
    memcpy(&mb, &m, sizeof mb);
    memcpy(&vb, &v, sizeof vb);
    mb = (mb & ~take) | (vb & take);
    memcpy(&m, &mb, sizeof m);
    return m;
}

/* ---------------------------------------------------------------- max: 2×2, stride 2 */
#ifdef MFI_POOL_AVX512
/* Lane masks of a block of n ≤ 16 outputs: the outputs, and the 2n inputs of a row as two
 * 16-float halves. */
typedef struct max2_mask {
    __mmask16 out, lo, hi;
} max2_mask;

static inline max2_mask max2_mask_of(int64_t n)
{
    const unsigned in = (unsigned)(2 * n);
    return (max2_mask){(__mmask16)((1u << n) - 1),
                       (__mmask16)(in >= 16 ? 0xffffu : (1u << in) - 1),
                       (__mmask16)(in >= 32 ? 0xffffu : in > 16 ? (1u << (in - 16)) - 1 : 0)};
}

/* v replaces m where larger or NaN; the window index w (a byte per lane) takes q there */
static inline void max2_step(__m512 *m, __m128i *w, __m512 v, char q)
{
    const __mmask16 t =
        _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    *m = _mm512_mask_mov_ps(*m, t, v);
    *w = _mm_mask_mov_epi8(*w, t, _mm_set1_epi8(q));
}

static void max2_rows(const float *r0, const float *r1, int64_t Wo, float *o, uint8_t *a)
{
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t j = 0; j < Wo; j += 16) {
        const max2_mask k = max2_mask_of(Wo - j < 16 ? Wo - j : 16);
        // the row halves (r[2j..2j+16), r[2j+16..2j+32)) deinterleaved into columns 2j', 2j'+1
        const __m512 u0 = _mm512_maskz_loadu_ps(k.lo, r0 + 2 * j);
        const __m512 u1 = _mm512_maskz_loadu_ps(k.hi, r0 + 2 * j + 16);
        const __m512 l0 = _mm512_maskz_loadu_ps(k.lo, r1 + 2 * j);
        const __m512 l1 = _mm512_maskz_loadu_ps(k.hi, r1 + 2 * j + 16);
        __m512 m = _mm512_permutex2var_ps(u0, even, u1);
        __m128i w = _mm_setzero_si128();
        max2_step(&m, &w, _mm512_permutex2var_ps(u0, odd, u1), 1);
        max2_step(&m, &w, _mm512_permutex2var_ps(l0, even, l1), 2);
        max2_step(&m, &w, _mm512_permutex2var_ps(l0, odd, l1), 3);
        _mm512_mask_storeu_ps(o + j, k.out, m);
        if (a)
            _mm_mask_storeu_epi8(a + j, k.out, w);
    }
}

/* Backward of one row pair into a gradient holding garbage: the window of output j gets
 * dy[j] at its index a[j], 0 at the other three; d0 and d1 are the two rows' gradients. */
static void max2_store(float *d0, float *d1, int64_t Wo, const float *dy, const uint8_t *a)
{
    // interleave (g0[i], g1[i]) for the first and the second 8 outputs
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    for (int64_t j = 0; j < Wo; j += 16) {
        const max2_mask k = max2_mask_of(Wo - j < 16 ? Wo - j : 16);
        const __m512 g = _mm512_maskz_loadu_ps(k.out, dy + j);
        const __m128i w = _mm_maskz_loadu_epi8(k.out, a + j);
        __m512 gq[4];
        for (int q = 0; q < 4; q++)
            gq[q] = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(w, _mm_set1_epi8((char)q)), g);
        float *d[2] = {d0 + 2 * j, d1 + 2 * j};
        for (int r = 0; r < 2; r++) {
            const __m512 a0 = gq[2 * r], a1 = gq[2 * r + 1];
            _mm512_mask_storeu_ps(d[r], k.lo, _mm512_permutex2var_ps(a0, lo, a1));
            _mm512_mask_storeu_ps(d[r] + 16, k.hi, _mm512_permutex2var_ps(a0, hi, a1));
        }
    }
}
#else
/* The max of one window (r0[0], r0[1] above r1[0], r1[1]), its index 0..3 in *w. */
static inline float max2_one(const float *r0, const float *r1, uint32_t *w)
{
    float m = r0[0];
    uint32_t t, q = 0;
    t = max_take(r0[1], m), m = max_sel(m, r0[1], t), q = (q & ~t) | (1u & t);
    t = max_take(r1[0], m), m = max_sel(m, r1[0], t), q = (q & ~t) | (2u & t);
    t = max_take(r1[1], m), m = max_sel(m, r1[1], t), q = (q & ~t) | (3u & t);
    *w = q;
    return m;
}

/* One row pair, outputs [0,Wo): r0 and r1 are the windows' two input rows; a (NULL in
 * inference) gets each output's window index: 0 1 on the upper row, 2 3 on the lower. */
static void max2_rows(const float *r0, const float *r1, int64_t Wo, float *o, uint8_t *a)
{
    uint32_t w[64]; /* the indices as words first: gcc vectorises neither loop otherwise */
    for (int64_t j0 = 0; j0 < Wo; j0 += 64) {
        const int64_t n = Wo - j0 < 64 ? Wo - j0 : 64;
        for (int64_t j = 0; j < n; j++)
            o[j0 + j] = max2_one(r0 + 2 * (j0 + j), r1 + 2 * (j0 + j), &w[j]);
        if (a)
            for (int64_t j = 0; j < n; j++)
                a[j0 + j] = (uint8_t)w[j];
    }
}

static inline void max2_add(float *d0, int64_t W, int64_t Wo, const float *dy,
                            const uint8_t *a);

/* Zeroing the two rows, then the scatter, beats storing each window through selects here. */
static void max2_store(float *d0, float *d1, int64_t Wo, const float *dy, const uint8_t *a)
{
    memset(d0, 0, (size_t)(2 * Wo) * sizeof(float));
    memset(d1, 0, (size_t)(2 * Wo) * sizeof(float));
    max2_add(d0, d1 - d0, Wo, dy, a);
}
#endif

/* Backward of one row pair into a gradient that accumulates: dy[j] added at its window's
 * max. A scatter of Wo elements beats adding the whole window (4·Wo loads and stores). */
static inline void max2_add(float *d0, int64_t W, int64_t Wo, const float *dy, const uint8_t *a)
{
    const int64_t off[4] = {0, 1, W, W + 1};
    for (int64_t j = 0; j < Wo; j++)
        d0[2 * j + off[a[j] & 3]] += dy[j];
}

/* The same over a plane's Ho row pairs: one call per plane. */
static void max2_add_plane(float *dx, int64_t W, int64_t Ho, int64_t Wo, const float *dy,
                           const uint8_t *a)
{
    for (int64_t i = 0; i < Ho; i++)
        max2_add(dx + 2 * i * W, W, Wo, dy + i * Wo, a + i * Wo);
}

/* ---------------------------------------------------------------- max: any k, stride */
/* One plane, keeping in ap (when not NULL) each output's plane offset of its max. */
static void max_pool_plane(const float *xp, int64_t W, int64_t Ho, int64_t Wo, int k, int s,
                           float *op, int32_t *ap)
{
    for (int64_t i = 0; i < Ho; i++)
        for (int64_t j = 0; j < Wo; j++) {
            const int64_t base = i * s * W + j * s;
            float m = xp[base];
            uint32_t best = (uint32_t)base;
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    const uint32_t at = (uint32_t)(base + ki * W + kj);
                    const uint32_t t = max_take(xp[at], m);
                    m = max_sel(m, xp[at], t);
                    best = (best & ~t) | (at & t);
                }
            op[i * Wo + j] = m;
            if (ap)
                ap[i * Wo + j] = (int32_t)best;
        }
}

/* The geometry of a max_pool2d node. */
typedef struct max_pool_dims {
    int64_t H, W, Ho, Wo, P;
    int k, s, two;
} max_pool_dims;

static max_pool_dims max_pool_dims_of(const mf_node *n)
{
    const mf_node *x = n->in[0];
    max_pool_dims d = {.H = x->shape.dim[2], .W = x->shape.dim[3], .Ho = n->shape.dim[2],
                       .Wo = n->shape.dim[3], .k = n->iarg[0], .s = n->iarg[1]};
    d.P = d.Ho * d.Wo;
    d.two = d.k == 2 && d.s == 2;
    return d;
}

static void max_pool_forward_plane(const mf_node *n, const max_pool_dims *d, int64_t pl)
{
    const float *xp = n->in[0]->value + pl * d->H * d->W;
    float *op = n->value + pl * d->P;
    if (d->two) {
        uint8_t *ap = n->scratch ? (uint8_t *)n->scratch + pl * d->P : NULL;
        for (int64_t i = 0; i < d->Ho; i++)
            max2_rows(xp + 2 * i * d->W, xp + (2 * i + 1) * d->W, d->Wo, op + i * d->Wo,
                      ap ? ap + i * d->Wo : NULL);
    } else {
        int32_t *ap = n->scratch ? (int32_t *)n->scratch + pl * d->P : NULL;
        max_pool_plane(xp, d->W, d->Ho, d->Wo, d->k, d->s, op, ap);
    }
}

// within a plane, overlapping windows add in order; when dx holds garbage (fresh), every
// element of it is written
static void max_pool_backward_plane(const mf_node *n, const max_pool_dims *d, int64_t pl,
                                    int fresh)
{
    const int64_t H = d->H, W = d->W, Ho = d->Ho, Wo = d->Wo, P = d->P;
    float *dx = n->in[0]->grad + pl * H * W;
    const float *dy = n->grad + pl * P;
    if (d->two) {
        const uint8_t *ap = (const uint8_t *)n->scratch + pl * P;
        if (!fresh) {
            max2_add_plane(dx, W, Ho, Wo, dy, ap);
            return;
        }
        for (int64_t i = 0; i < Ho; i++) {
            float *d0 = dx + 2 * i * W;
            max2_store(d0, d0 + W, Wo, dy + i * Wo, ap + i * Wo);
            if (W > 2 * Wo) /* the column no window covers */
                d0[W - 1] = d0[2 * W - 1] = 0.0f;
        }
        if (H > 2 * Ho)
            memset(dx + 2 * Ho * W, 0, (size_t)W * sizeof(float));
    } else {
        const int32_t *ap = (const int32_t *)n->scratch + pl * P;
        if (fresh)
            memset(dx, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t p = 0; p < P; p++)
            dx[ap[p]] += dy[p];
    }
}

void mfi_max_pool_forward_planes(mf_node *n, int64_t pl0, int64_t pl1)
{
    const max_pool_dims d = max_pool_dims_of(n);
    for (int64_t pl = pl0; pl < pl1; pl++)
        max_pool_forward_plane(n, &d, pl);
}

void mfi_max_pool_backward_planes(mf_node *n, int64_t pl0, int64_t pl1, int fresh)
{
    const max_pool_dims d = max_pool_dims_of(n);
    for (int64_t pl = pl0; pl < pl1; pl++)
        max_pool_backward_plane(n, &d, pl, fresh);
}

void mfi_op_max_pool2d(mf_node *n, int action)
{
    // x is (B,C,H,W), out is (B,C,Ho,Wo): the max of each k×k window, every `stride` pixels.
    // Training keeps the argmax in scratch: for 2×2 stride 2 a uint8 window index per output,
    // else the int32 plane offset. Fused into the conv2d below it (n->pool_fused), the conv
    // runs these passes per chunk of samples (mfi_max_pool_*_planes).
    mf_node *x = n->in[0];
    if (action == MFI_SHAPE) {
        pool_shape(n, "max_pool2d");
        return;
    }
    const max_pool_dims d = max_pool_dims_of(n);
    const int64_t planes = n->shape.dim[0] * n->shape.dim[1];
    // the 2×2 passes stream over x; the general ones visit k·k inputs per output
    const int par = (d.two ? x->numel : n->numel * d.k * d.k) >= MFI_POOL_PAR_MIN;
    switch (action) {
    case MFI_SCRATCH:
        n->scratch_bytes =
            n->graph->training ? (size_t)n->numel * (d.two ? 1 : sizeof(int32_t)) : 0;
        return;
    case MFI_FORWARD:
        if (n->pool_fused)
            return;
        MFI_PARALLEL_FOR(par,
        for (int64_t pl = 0; pl < planes; pl++)
            max_pool_forward_plane(n, &d, pl););
        return;
    case MFI_BACKWARD: {
        if (!x->grad)
            return;
        const int fresh = n->fresh & 1u;
        if (n->pool_fused) { /* the conv2d below scatters, as it reads its gradient */
            n->pool_fresh = (unsigned)fresh;
            n->pool_due = 1;
            return;
        }
        // planes are independent
        MFI_PARALLEL_FOR(par,
        for (int64_t pl = 0; pl < planes; pl++)
            max_pool_backward_plane(n, &d, pl, fresh););
        return;
    }
    default:
        return;
    }
}

/* ---------------------------------------------------------------- avg */
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
    const int par = n->numel * k * k >= MFI_POOL_PAR_MIN;
    switch (action) {
    case MFI_FORWARD:
        // planes are independent
        MFI_PARALLEL_FOR(par,
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
        });
        return;
    case MFI_BACKWARD:
        if (!x->grad)
            return;
        // planes are independent; within a plane, overlapping windows add in order
        MFI_PARALLEL_FOR(par,
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
        });
        return;
    default:
        return;
    }
}
