/* The direct stride-1 convolution: see conv_direct.h and ops_conv.c's header for why. */
#include "conv_direct.h"
#include "ops_common.h"

#ifdef MFI_CONV_DIRECT
#include <immintrin.h>

/* n floats rounded up to a cache line */
static int64_t line_floats(int64_t n) { return (n + 15) / 16 * 16; }

void mfi_dir_conv_of(dir_conv *c, int64_t Ci, int64_t Hi, int64_t Wi, int64_t ph, int64_t pw,
                     int64_t Co, int64_t kh, int64_t kw)
{
    c->Ci = Ci, c->Hi = Hi, c->Wi = Wi, c->ph = ph, c->pw = pw;
    c->Co = Co, c->kh = kh, c->kw = kw;
    c->Ho = Hi + 2 * ph - kh + 1, c->Wo = Wi + 2 * pw - kw + 1;
    c->Wp = Wi + 2 * pw;
    c->plane = (Hi + 2 * ph) * c->Wp;
    c->Qw = c->Ho * c->Wp;
    /* the last tile reads up to DIR_NR positions past Qw, beyond the last plane */
    c->len = line_floats(Ci * c->plane + DIR_NR + kw);
    c->Copad = (Co + DIR_MR - 1) / DIR_MR * DIR_MR;
    c->K = Ci * kh * kw;
}

// x is one sample (Ci,Hi,Wi); xp (Ci, Hi+2ph, Wp) gets it inside its zero border (zeroed
// once per buffer: only the interior is written)
void mfi_dir_pad(const dir_conv *c, const float *x, float *xp)
{
    for (int64_t ch = 0; ch < c->Ci; ch++)
        for (int64_t i = 0; i < c->Hi; i++) {
            const float *src = x + (ch * c->Hi + i) * c->Wi;
            float *dst = xp + ch * c->plane + (i + c->ph) * c->Wp + c->pw;
            MFI_OMP(omp simd)
            for (int64_t j = 0; j < c->Wi; j++)
                dst[j] = src[j];
        }
}

// tile (DIR_MR, DIR_NR) = b8 + wt[:, 0:8]ᵀ · taps of xp at wide positions [q0, q0+32);
// wt is (K, Copad) from the tile's first channel, taps in (c,ki,kj) order
static void dir_tile(const dir_conv *c, const float *xp, const float *wt, const float *b8,
                     int64_t q0, float *tile)
{
    __m512 acc[DIR_MR][2];
    for (int i = 0; i < DIR_MR; i++)
        acc[i][0] = acc[i][1] = _mm512_set1_ps(b8 ? b8[i] : 0.0f);
    for (int64_t ch = 0; ch < c->Ci; ch++)
        for (int64_t ki = 0; ki < c->kh; ki++)
            for (int64_t kj = 0; kj < c->kw; kj++) {
                const float *src = xp + ch * c->plane + ki * c->Wp + kj + q0;
                const __m512 x0 = _mm512_loadu_ps(src), x1 = _mm512_loadu_ps(src + 16);
                for (int i = 0; i < DIR_MR; i++) {
                    const __m512 wv = _mm512_set1_ps(wt[i]);
                    acc[i][0] = _mm512_fmadd_ps(wv, x0, acc[i][0]);
                    acc[i][1] = _mm512_fmadd_ps(wv, x1, acc[i][1]);
                }
                wt += c->Copad;
            }
    for (int i = 0; i < DIR_MR; i++) {
        _mm512_storeu_ps(tile + i * DIR_NR, acc[i][0]);
        _mm512_storeu_ps(tile + i * DIR_NR + 16, acc[i][1]);
    }
}

// out (Co,Ho,Wo) =, += or = max(0, ·) (mode DIR_STORE, DIR_ADD, DIR_STORE_RELU) the
// convolution of the padded sample xp
void mfi_dir_conv_sample(const dir_conv *c, const float *xp, const float *wt, const float *bias,
                         int mode, float *out)
{
    float tile[DIR_MR * DIR_NR];
    const int64_t P = c->Ho * c->Wo;
    for (int64_t o0 = 0; o0 < c->Co; o0 += DIR_MR) {
        const int64_t mo = c->Co - o0 < DIR_MR ? c->Co - o0 : DIR_MR;
        for (int64_t q0 = 0; q0 < c->Qw; q0 += DIR_NR) {
            dir_tile(c, xp, wt + o0, bias ? bias + o0 : NULL, q0, tile);
            const int64_t qe = q0 + DIR_NR < c->Qw ? q0 + DIR_NR : c->Qw;
            for (int64_t q = q0; q < qe;) { /* row by row: the valid columns of each */
                const int64_t oh = q / c->Wp, ow = q - oh * c->Wp;
                const int64_t run = c->Wp - ow < qe - q ? c->Wp - ow : qe - q;
                const int64_t nv = ow >= c->Wo ? 0 : (c->Wo - ow < run ? c->Wo - ow : run);
                for (int64_t i = 0; i < mo; i++) {
                    const float *t = tile + i * DIR_NR + (q - q0);
                    float *dst = out + (o0 + i) * P + oh * c->Wo + ow;
                    if (mode == DIR_ADD) {
                        MFI_OMP(omp simd)
                        for (int64_t j = 0; j < nv; j++)
                            dst[j] += t[j];
                    } else if (mode == DIR_STORE_RELU) {
                        MFI_OMP(omp simd)
                        for (int64_t j = 0; j < nv; j++)
                            dst[j] = t[j] > 0.0f ? t[j] : 0.0f;
                    } else {
                        MFI_OMP(omp simd)
                        for (int64_t j = 0; j < nv; j++)
                            dst[j] = t[j];
                    }
                }
                q += run;
            }
        }
    }
}


/* The 16×16 transpose by four rounds of block swaps: round b (8, 4, 2, 1) swaps the
 * off-diagonal b×b blocks of every 2b×2b block, rows i and i+b exchanging their halves
 * through one two-source permute each: row i takes its own lane l, or row i+b's lane l-b
 * (TR_LO); row i+b takes row i's lane l+b, or its own lane l (TR_HI). */
#define TR_LO(b, l) (((l) & (b)) ? 16 + (l) - (b) : (l))
#define TR_HI(b, l) (((l) & (b)) ? 16 + (l) : (l) + (b))
#define TR_ROW(F, b)                                                                         \
    {F(b, 0), F(b, 1), F(b, 2), F(b, 3), F(b, 4), F(b, 5), F(b, 6), F(b, 7),                 \
     F(b, 8), F(b, 9), F(b, 10), F(b, 11), F(b, 12), F(b, 13), F(b, 14), F(b, 15)}
static const int32_t tr_index[4][2][16] = {
    {TR_ROW(TR_LO, 8), TR_ROW(TR_HI, 8)}, {TR_ROW(TR_LO, 4), TR_ROW(TR_HI, 4)},
    {TR_ROW(TR_LO, 2), TR_ROW(TR_HI, 2)}, {TR_ROW(TR_LO, 1), TR_ROW(TR_HI, 1)}};

/* fully unrolled, so that r stays in registers (rolled, it went through memory: 4× slower) */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16])
{
#pragma GCC unroll 4
    for (int round = 0; round < 4; round++) {
        const int b = 8 >> round;
        const __m512i ilo = _mm512_loadu_si512(tr_index[round][0]);
        const __m512i ihi = _mm512_loadu_si512(tr_index[round][1]);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (!(i & b)) {
                const __m512 a = r[i], c = r[i + b];
                r[i] = _mm512_permutex2var_ps(a, ilo, c);
                r[i + b] = _mm512_permutex2var_ps(a, ihi, c);
            }
    }
}

// gb is one sample's output gradient (Co,P), P = Ho·Wo; gt (P,O16) gets it transposed,
// gt[p][o] = gb[o][p], and 0 for Co <= o < O16
void mfi_dir_transpose_grad(const dir_conv *c, const float *gb, int64_t O16, float *gt)
{
    const int64_t P = c->Ho * c->Wo;
    for (int64_t o0 = 0; o0 < O16; o0 += 16)
        for (int64_t p0 = 0; p0 < P; p0 += 16) {
            const int64_t np = P - p0 < 16 ? P - p0 : 16;
            const __mmask16 m = (__mmask16)((1u << np) - 1);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = o0 + i < c->Co ? _mm512_maskz_loadu_ps(m, gb + (o0 + i) * P + p0)
                                      : _mm512_setzero_ps();
            transpose16(r);
#pragma GCC unroll 16
            for (int64_t i = 0; i < np; i++)
                _mm512_storeu_ps(gt + (p0 + i) * O16 + o0, r[i]);
        }
}

/* part (DIR_DW_TK taps from k0, nv·16 channels from o0; row stride O16) += Σ_p x[tap, p]·gt[p],
 * over the sample's valid positions: the channels are the vector lanes, so the sums need no
 * horizontal reduction and land as rows of part; each position costs nv loads of gt,
 * DIR_DW_TK broadcasts of x and nv·DIR_DW_TK FMAs. Taps past K repeat the last, not stored. */
static inline __attribute__((always_inline)) void
dw_tile(const dir_conv *c, const float *xp, const float *gt, int64_t O16, int64_t k0, int64_t o0,
        int nv, float *part)
{
    const int64_t taps = c->kh * c->kw;
    int64_t off[DIR_DW_TK];
    for (int j = 0; j < DIR_DW_TK; j++) {
        const int64_t k = k0 + j < c->K ? k0 + j : c->K - 1, r = k % taps;
        off[j] = k / taps * c->plane + r / c->kw * c->Wp + r % c->kw;
    }
    __m512 acc[DIR_DW_TK][2];
    for (int j = 0; j < DIR_DW_TK; j++)
        acc[j][0] = acc[j][1] = _mm512_setzero_ps();
    for (int64_t oh = 0; oh < c->Ho; oh++) {
        const float *xr = xp + oh * c->Wp, *gr = gt + oh * c->Wo * O16 + o0;
        for (int64_t ow = 0; ow < c->Wo; ow++) {
            const __m512 g0 = _mm512_loadu_ps(gr + ow * O16);
            const __m512 g1 = nv == 2 ? _mm512_loadu_ps(gr + ow * O16 + 16) : g0;
            for (int j = 0; j < DIR_DW_TK; j++) {
                const __m512 xv = _mm512_set1_ps(xr[off[j] + ow]);
                acc[j][0] = _mm512_fmadd_ps(xv, g0, acc[j][0]);
                if (nv == 2)
                    acc[j][1] = _mm512_fmadd_ps(xv, g1, acc[j][1]);
            }
        }
    }
    for (int j = 0; j < DIR_DW_TK && k0 + j < c->K; j++)
        for (int v = 0; v < nv; v++) {
            float *row = part + (k0 + j) * O16 + o0 + 16 * v;
            _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), acc[j][v]));
        }
}

/* One sample's weight gradient, added into part (K+1, O16): part[k][o] += Σ_p x[tap k, p]·
 * gt[p][o] from its padded input xp, and with need_db part[K][o] += Σ_p gt[p][o]. The sample's
 * xp and gt (about 45 kB for Conv(16→32) on 14×14) stay in L1 through all its tiles, and part
 * (18 kB) too. */
void mfi_dir_dw_sample(const dir_conv *c, const float *xp, const float *gt, int64_t O16,
                       int need_dw, int need_db, float *part)
{
    for (int64_t k0 = 0; need_dw && k0 < c->K; k0 += DIR_DW_TK) {
        int64_t o0 = 0;
        for (; o0 + 32 <= O16; o0 += 32)
            dw_tile(c, xp, gt, O16, k0, o0, 2, part);
        if (o0 < O16)
            dw_tile(c, xp, gt, O16, k0, o0, 1, part);
    }
    const int64_t P = c->Ho * c->Wo;
    for (int64_t o0 = 0; need_db && o0 < O16; o0 += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t p = 0; p < P; p++)
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(gt + p * O16 + o0));
        float *row = part + c->K * O16 + o0;
        _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), acc));
    }
}
#else
typedef int mfi_conv_direct_unused; /* ISO C: a unit is not empty */
#endif
