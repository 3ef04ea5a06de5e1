/* Why framework/core/gemm.c cuts a product into blocks fixed by its shape (issue 13): OpenBLAS
 * single-threaded, a product computed as 2–4 row or column blocks (on 16-element boundaries)
 * against the whole product — how many elements differ in their bits, and what the blocks
 * cost when they run one after another in one thread (min of 40 interleaved rounds).
 *   cc -O2 tests/bench/gemm_blocks.c -lopenblas -o /tmp/gemm_blocks
 *   OPENBLAS_CORETYPE=Haswell /tmp/gemm_blocks; env -u OPENBLAS_CORETYPE /tmp/gemm_blocks
 * Measured 2026-12-02, OpenBLAS 0.3.21: Haswell kernel, 1.3M of the elements over these
 * shapes differ (up to half of a product's); Cooperlake, 45k. Blocks run serially cost
 * 2–5 % (2 blocks; 17 % on 784×256×256ᵀ) and 4–16 % (4 blocks) over the whole product from
 * 1M to 51M MACs, on a busy machine. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void sg(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
               int ldb, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

/* C as P blocks of rows (by_rows) or columns, as gemm.c cuts them */
static void blocks(int by_rows, int P, int ta, int tb, int m, int n, int k, const float *A,
                   const float *B, float *C)
{
    const int lda = ta ? m : k, ldb = tb ? k : n, ext = by_rows ? m : n;
    for (int p = 0; p < P; p++) {
        int lo = (int)((long)ext * p / P / 16 * 16);
        int hi = p + 1 == P ? ext : (int)((long)ext * (p + 1) / P / 16 * 16);
        if (hi <= lo)
            continue;
        if (by_rows)
            sg(ta, tb, hi - lo, n, k, ta ? A + lo : A + (long)lo * lda, lda, B, ldb,
               C + (long)lo * n, n);
        else
            sg(ta, tb, m, hi - lo, k, A, lda, tb ? B + (long)lo * ldb : B + lo, ldb, C + lo, n);
    }
}

int main(void)
{
    openblas_set_num_threads(1);
    static const int shapes[][3] = {{256, 256, 784}, {784, 256, 256}, {256, 784, 256},
                                    {128, 128, 128}, {2048, 128, 128}, {128, 64, 128},
                                    {256, 100, 256}, {64, 256, 64},  {48, 48, 1024}};
    long differ = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *A = malloc(4L * m * k), *B = malloc(4L * k * n), *C0 = malloc(4L * m * n),
              *C1 = malloc(4L * m * n);
        for (long i = 0; i < (long)m * k; i++)
            A[i] = (float)rand() / RAND_MAX - 0.5f;
        for (long i = 0; i < (long)k * n; i++)
            B[i] = (float)rand() / RAND_MAX - 0.5f;
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            sg(ta, tb, m, n, k, A, ta ? m : k, B, tb ? k : n, C0, n);
            for (int P = 2; P <= 4; P += 2) {
                blocks(m >= n, P, ta, tb, m, n, k, A, B, C1);
                long d = 0;
                for (long i = 0; i < (long)m * n; i++)
                    d += memcmp(&C0[i], &C1[i], 4) != 0;
                differ += d;
                if (t == 0)
                    printf("%4dx%4dx%4d %d blocks: %6ld of %6d elements differ\n", m, n, k, P, d,
                           m * n);
            }
        }
        double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9};
        const long reps = (long)(2e7 / ((double)m * n * k)) + 3;
        for (int r = 0; r < 40; r++)
            for (int P = 1; P <= 4; P *= 2) {
                double t0 = now();
                for (long q = 0; q < reps; q++)
                    blocks(m >= n, P, 0, 0, m, n, k, A, B, C1);
                const double t = (now() - t0) / reps;
                best[P] = t < best[P] ? t : best[P];
            }
        printf("%4dx%4dx%4d serial: whole %.1f us, 2 blocks %.3f×, 4 blocks %.3f×\n", m, n, k,
               best[1] * 1e6, best[2] / best[1], best[4] / best[1]);
        free(A);
        free(B);
        free(C0);
        free(C1);
    }
    printf("%ld elements differ in all; %s\n", differ, openblas_get_config());
    return 0;
}
