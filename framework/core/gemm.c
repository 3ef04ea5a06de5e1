#include <stdlib.h>

#include <cblas.h>

#include "gemm.h"

static mfi_gemm_log *recording;

void mfi_gemm_record(mfi_gemm_log *log)
{
    recording = log;
}

void mfi_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (recording) {
        if (recording->n == recording->cap) {
            int cap = recording->cap ? 2 * recording->cap : 64;
            mfi_gemm_call *calls = realloc(recording->calls, (size_t)cap * sizeof *calls);
            if (calls) {
                recording->calls = calls;
                recording->cap = cap;
            }
        }
        if (recording->n < recording->cap)
            recording->calls[recording->n++] = (mfi_gemm_call){trans_a, trans_b, m, n, k, beta};
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
}
