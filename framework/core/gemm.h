/* The one door to cblas_sgemm: every matrix product of the core goes through mfi_gemm, so
 * that a benchmark can record a step's calls and replay them alone (the sgemm rate for
 * exactly those shapes), and another BLAS needs changing in one place. Private. */
#ifndef MF_CORE_GEMM_H
#define MF_CORE_GEMM_H

#include <stdint.h>

/* C (m,n) = op(A)·op(B) + beta·C, row-major; op(A) is (m,k), op(B) is (k,n). A large
 * product is cut into blocks fixed by its shape (never by the thread count), run across the
 * OpenMP team when that gains: the bits are the same at any thread count. */
void mfi_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The same as one sgemm call in this thread, never cut: for loops that share a batch of
 * products between threads (conv2d's samples, bmm's matrices) and so must not cut them by
 * whether they run in parallel. */
void mfi_gemm_whole(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

typedef struct mfi_gemm_call {
    int ta, tb;
    int64_t m, n, k;
    float beta;
} mfi_gemm_call;

typedef struct mfi_gemm_log {
    mfi_gemm_call *calls;
    int n, cap;
} mfi_gemm_log;

/* Append every following mfi_gemm call to log (NULL stops recording). Not thread-safe:
 * for benchmarks only. */
void mfi_gemm_record(mfi_gemm_log *log);

#endif
