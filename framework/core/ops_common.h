/* Private to framework/core: helpers shared by the tensor op files (elementwise, reduce,
 * shape, loss, custom). Every symbol is static inline or mfi_-prefixed. */
#ifndef MMFUSE_OPS_COMMON_H
#define MMFUSE_OPS_COMMON_H

#include <stdint.h>

#include "core_internal.h"
#include "team.h"

/* An OpenMP pragma that vanishes (without -Wunknown-pragmas) when OpenMP is off. */
#ifdef _OPENMP
#define MFI_OMP(...) _Pragma(#__VA_ARGS__)
#else
#define MFI_OMP(...)
#endif

/* Elements below which a loop stays serial (overridable at build time for measurements).
 * Measured on the 2-core dev box (gcc 12 -O2, libgomp, tests/bench/maps.c: 2 threads against
 * 1, with the region run back to back ("hot") and after 300 µs of serial work ("cold", as in
 * a model whose other ops are small: the idle thread has gone to sleep, waking it costs
 * ~20 µs)). Vectorised memory-bound maps (add, relu, bias rows) gain nothing up to 32k
 * elements and 0.64× (hot) to 0.72× (cold) at 64k; gelu and exp (libm calls) lose 1.22× at
 * 8k cold, gain 0.9× at 16k and 0.8× at 32k; dropout's counter-based mask loses 1.2–1.55×
 * up to 32k and gains 0.64× at 64k. */
#ifndef MFI_OMP_MIN_ELEMS
#define MFI_OMP_MIN_ELEMS 32768
#endif
#ifndef MFI_OMP_MIN_ELEMS_HEAVY
#define MFI_OMP_MIN_ELEMS_HEAVY 16384
#endif
#ifndef MFI_OMP_MIN_ELEMS_DROPOUT
#define MFI_OMP_MIN_ELEMS_DROPOUT 65536
#endif

/* `for` statement given as the last argument, in parallel when split (noted by mfi_par), else
 * outside any parallel region: libgomp ends even an if(0) region with a futex system call,
 * which made a third of a small model's step kernel time. */
#define MFI_PARALLEL_FOR(split, ...)                                                               \
    do {                                                                                           \
        if (mfi_par(split)) {                                                                      \
            MFI_OMP(omp parallel for schedule(static))                                             \
            __VA_ARGS__                                                                            \
        } else {                                                                                   \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

/* Elementwise loops run over blocks of MFI_ELEM_BLOCK elements: threads split the blocks
 * statically, and each block's plain inner loop is what the compiler vectorises (gcc 12
 * left `omp parallel for simd` loops scalar). Runs the statements given as the last
 * arguments for i in [0, numel), in parallel when numel > min; else outside any parallel
 * region, since libgomp ends even a one-thread region with a futex system call (a third of
 * a small model's step was kernel time: 130k calls in one satellite.yaml run). */
#define MFI_ELEM_BLOCK 4096
#define MFI_FOR_EACH(numel, min, i, ...)                                                           \
    do {                                                                                           \
        const int64_t n_ = (numel), blocks_ = (n_ + MFI_ELEM_BLOCK - 1) / MFI_ELEM_BLOCK;          \
        if (mfi_par(n_ > (min))) {                                                                 \
            MFI_OMP(omp parallel for schedule(static))                                             \
            for (int64_t b_ = 0; b_ < blocks_; b_++) {                                             \
                const int64_t lo_ = b_ * MFI_ELEM_BLOCK;                                           \
                const int64_t hi_ = lo_ + MFI_ELEM_BLOCK < n_ ? lo_ + MFI_ELEM_BLOCK : n_;         \
                for (int64_t i = lo_; i < hi_; i++) {                                              \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
            }                                                                                      \
        } else { /* no region at all: even an if(0) one costs libgomp a futex call */              \
            for (int64_t i = 0; i < n_; i++) {                                                     \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The largest of x[0..K): the shift that keeps exp() finite in softmax and log-softmax. */
static inline float mfi_row_max(const float *x, int64_t K)
{
    float m = x[0];
    for (int64_t j = 1; j < K; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

/* e^z for z ≤ 0 (0 below -87), as plain arithmetic that gcc vectorises where expf stays a
 * scalar libm call: 2^k·e^r with k = round(z·log2 e), r = z - k·ln 2 (ln 2 split in two,
 * Cody–Waite), e^r by its degree-7 Taylor polynomial on |r| ≤ ln2/2. Relative error
 * ≤ 2e-7; also right for 0 < z < 88. */
static inline float mfi_exp_nonpos(float z)
{
    const float zc = z < -87.0f ? -87.0f : z;
    const float shift = 12582912.0f;                    // 1.5·2^23: adding it rounds
    const float k = (zc * 1.44269504f + shift) - shift; // in [-126, 127]
    const float r = (zc - k * 0.693359375f) - k * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } two_k = {.i = (int32_t)((uint32_t)((int32_t)k + 127) << 23)}; /* unsigned: no UB for NaN's k */
    return z < -87.0f ? 0.0f : p * two_k.f;
}

/* Whether a row-wise op (softmax, reductions) over rows·len elements forks. */
#define MFI_OMP_ROWS_IF(rows, len, min) ((rows) > 1 && (rows) * (len) > (min))

/* Axis `axis` (negative counts from the end) of an ndim-D tensor, or -1 when out of range. */
static inline int mfi_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* The shape viewed as (outer, len, inner) around axis `axis` (already normalised). */
static inline void mfi_axis_split(const mf_shape *s, int axis, int64_t *outer, int64_t *len,
                                  int64_t *inner)
{
    int64_t o = 1, in = 1;
    for (int i = 0; i < axis; i++)
        o *= s->dim[i];
    for (int i = axis + 1; i < s->ndim; i++)
        in *= s->dim[i];
    *outer = o;
    *len = s->dim[axis];
    *inner = in;
}

/* An int64 carried in two op int arguments (iarg[k], iarg[k+1]). */
static inline void mfi_put_i64(int *iarg, int64_t v)
{
    uint64_t u = (uint64_t)v;
    iarg[0] = (int)(uint32_t)(u & 0xffffffffu);
    iarg[1] = (int)(uint32_t)(u >> 32);
}

static inline int64_t mfi_get_i64(const int *iarg)
{
    uint64_t u = (uint64_t)(uint32_t)iarg[0] | ((uint64_t)(uint32_t)iarg[1] << 32);
    return (int64_t)u;
}

/* Chunks of a full sum (sum_all, a scalar operand's gradient): a fixed number, summed in
 * parallel and combined in order, so the bits depend on the length only, never on threads. */
#define MFI_SUM_CHUNKS 64

#endif
