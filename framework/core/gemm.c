/* Matrix products on ONE thread pool. OpenBLAS runs single-threaded and mfi_gemm cuts a
 * large product into blocks of C's rows (or columns) that run across the OpenMP team. Two
 * pools — OpenBLAS's threads and OpenMP's — fight on a small machine: after an OpenMP loop,
 * libgomp's idle threads spin and starve OpenBLAS's (a 0.3 ms product took 0.8–1.6 ms on 2
 * cores).
 * A block product is not bit-identical to the whole one: OpenBLAS 0.3.21 rounds a few percent
 * of the elements differently (its Haswell kernel up to half, blocks on 16-row boundaries
 * included: the kernel path depends on the block's shape; tests/bench/gemm_blocks.c). So the
 * blocks are a function of the product's shape alone — never of the thread count, nor of
 * timing — and the threads only decide who computes which block: a run repeats itself bit
 * for bit at any thread count. */
#include <stdlib.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gemm.h"
#include "team.h"

/* From this many multiply-adds a product is cut into blocks, at any thread count: the warm
 * split threshold below. Cut but run serially (one thread, or a cold team), two blocks cost
 * 2–5 % over the whole product at 1–50M multiply-adds, up to 17 % on one shape (each block
 * re-packs the shared operand; tests/bench/gemm_blocks.c, min of 40 interleaved rounds): the
 * price of thread-count-independent bits. Four blocks from GEMM_PART4_MACS, where their
 * serial cost is a few percent, so that a larger team still shares the largest products. */
#define GEMM_PART_MACS (INT64_C(1) << 20)
#define GEMM_PART4_MACS (INT64_C(1) << 27)
/* Whether the blocks run in parallel. Measured on the 2-core box with tests/bench/split.c,
 * 2 threads against 1 (mean over shapes), OpenMP's idle threads spinning at most
 * GOMP_SPINCOUNT=1000 rounds as the CLI sets: back to back ("warm"), 256k MACs 1.17×, 512k
 * 0.88×, 1M 0.74×, 2M 0.64×. After 300 µs of serial work ("cold": the idle thread asleep) a
 * split loses up to 16M MACs (1M 2.9×, 8M 1.3×): a model whose few mid-sized products sit
 * among small ops (low-rank fusion on the satellite data) was 1.26× slower at 2 threads with
 * one threshold of 1M. So the threshold depends on whether the team is warm (team.h); the
 * bits do not, since the blocks are the same either way. */
#define GEMM_SPLIT_WARM_MACS GEMM_PART_MACS
#define GEMM_SPLIT_COLD_MACS (INT64_C(1) << 24)
/* Blocks are multiples of this many rows/columns (OpenBLAS's micro-kernels are 4–16 wide). */
#define GEMM_ALIGN 16

static mfi_gemm_log *recording;

void mfi_gemm_record(mfi_gemm_log *log)
{
    recording = log;
}

static void record(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta)
{
    mfi_gemm_log *log = recording;
    if (log->n == log->cap) {
        int cap = log->cap ? 2 * log->cap : 64;
        mfi_gemm_call *calls = realloc(log->calls, (size_t)cap * sizeof *calls);
        if (!calls)
            return;
        log->calls = calls;
        log->cap = cap;
    }
    log->calls[log->n++] = (mfi_gemm_call){ta, tb, m, n, k, beta};
}

static void sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* How many blocks a product is cut into: its shape alone decides. */
static int gemm_parts(int64_t macs, int64_t extent)
{
    if (macs < GEMM_PART_MACS || extent < 2 * GEMM_ALIGN)
        return 1;
    const int64_t parts = macs >= GEMM_PART4_MACS ? 4 : 2;
    return (int)(parts < extent / GEMM_ALIGN ? parts : extent / GEMM_ALIGN);
}

/* Block p of parts: C's rows (op(A)'s rows) or columns (op(B)'s columns) lo…hi, cut on
 * GEMM_ALIGN boundaries. */
static void gemm_block(int by_rows, int p, int parts, int ta, int tb, int64_t m, int64_t n,
                       int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                       float beta, float *C, int64_t ldc)
{
    const int64_t extent = by_rows ? m : n;
    const int64_t lo = extent * p / parts / GEMM_ALIGN * GEMM_ALIGN;
    const int64_t hi = p + 1 == parts ? extent : extent * (p + 1) / parts / GEMM_ALIGN * GEMM_ALIGN;
    if (hi <= lo)
        return;
    if (by_rows) // rows lo…hi of op(A): A's rows, or A's columns when transposed
        sgemm(ta, tb, hi - lo, n, k, ta ? A + lo : A + lo * lda, lda, B, ldb, beta, C + lo * ldc,
              ldc);
    else // columns lo…hi of op(B): B's columns, or B's rows when transposed
        sgemm(ta, tb, m, hi - lo, k, A, lda, tb ? B + lo * ldb : B + lo, ldb, beta, C + lo, ldc);
}

void mfi_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (recording) {
#pragma omp critical(mfi_gemm_record)
        record(ta, tb, m, n, k, beta);
    }
    const int by_rows = m >= n;
    const int parts = gemm_parts(m * n * k, by_rows ? m : n);
    int threads = 1;
#ifdef _OPENMP
    /* inside a parallel region (a batch of products) the blocks stay in this thread */
    if (parts > 1 && !omp_in_parallel() && omp_get_max_threads() > 1 &&
        mfi_par_warm(m * n * k, GEMM_SPLIT_WARM_MACS, GEMM_SPLIT_COLD_MACS))
        threads = parts < omp_get_max_threads() ? parts : omp_get_max_threads();
#endif
    if (threads <= 1) {
        for (int p = 0; p < parts; p++)
            gemm_block(by_rows, p, parts, ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
        mfi_team_serial_macs(m * n * k);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int p = 0; p < parts; p++)
        gemm_block(by_rows, p, parts, ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}

void mfi_gemm_whole(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (recording) {
#pragma omp critical(mfi_gemm_record)
        record(ta, tb, m, n, k, beta);
    }
    sgemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
    mfi_team_serial_macs(m * n * k);
}
