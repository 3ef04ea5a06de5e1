/* One thread pool: OpenMP's. OpenBLAS stays single-threaded and mfi_gemm (gemm.c) splits
 * large products across the OpenMP team, so the two pools never compete for the cores. */
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <mmfuse/tensor.h>

#include "team.h"

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

/* ---------------------------------------------------------------- team warmth (team.h) */
/* Warmth is judged by what ran, not by the clock: the team is warm when a parallel region ran
 * in the op before (or earlier in this op). Ops follow each other within microseconds, well
 * inside libgomp's ~50 µs of spinning, while the trainer's serial work between steps and the
 * memset before backward outlast it. A clock would judge better at the edges, but then a
 * product's split, and with it its bits (OpenBLAS rounds a split product differently in ~5 %
 * of its elements), would depend on timing: a run would not repeat itself. This way each split
 * is a function of the graph and the thread count. */
static _Thread_local int team_ran;  /* a region ran in the current op */
static _Thread_local int team_warm; /* one ran in the op before */

int mfi_par(int split)
{
    team_ran |= split;
    return split;
}

void mfi_team_op_done(void)
{
    team_warm = team_ran;
    team_ran = 0;
}

void mfi_team_cold(void)
{
    team_ran = team_warm = 0;
}

int mfi_team_warm(void)
{
    return team_ran || team_warm;
}

int mfi_par_warm(int64_t work, int64_t warm_min, int64_t cold_min)
{
    if (work >= cold_min)
        return mfi_par(1);
    return mfi_par(work >= warm_min && mfi_team_warm());
}
