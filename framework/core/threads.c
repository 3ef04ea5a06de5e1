/* One thread pool: OpenMP's. OpenBLAS stays single-threaded and mfi_gemm (gemm.c) splits
 * large products across the OpenMP team, so the two pools never compete for the cores. */
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <mmfuse/tensor.h>

/* Declared by OpenBLAS's cblas.h; repeated so that another CBLAS still compiles (then
 * link against OpenBLAS or provide it). */
void openblas_set_num_threads(int num_threads);

static int current_threads;

int mf_default_threads(void)
{
    const char *env = getenv("MMFUSE_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1024)
            return (int)n;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores >= 1 ? (int)cores : 1;
}

void mf_set_threads(int n)
{
    if (n <= 0)
        n = mf_default_threads();
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    current_threads = n;
}

int mf_get_threads(void)
{
    if (!current_threads)
        mf_set_threads(0);
    return current_threads;
}
