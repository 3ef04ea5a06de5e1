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
/* Warmth is judged by what ran, not by the clock: the team is warm while the serial work
 * since the last parallel region, estimated from its size, is under TEAM_WARM_NS, inside
 * libgomp's ~50 µs of spinning at GOMP_SPINCOUNT=1000. A clock would judge better at the
 * edges but make a run's timing depend on its neighbours' load. The bits never depend on it:
 * warmth only decides whether a product's blocks, fixed by its shape (gemm.c), run in
 * parallel or one after another.
 * The estimates are this machine's rates, rounded up: an elementwise op ~0.5 ns an element,
 * a serial product ~0.02 ns a multiply-add (50 G/s). */
#define TEAM_WARM_NS 30000.0
#define TEAM_NS_PER_ELEMENT 0.5
#define TEAM_NS_PER_MAC 0.02

static _Thread_local int team_ran;         /* a region ran in the current op */
static _Thread_local double team_serial_ns = 1e300; /* serial work since the last one */

int mfi_par(int split)
{
    team_ran |= split;
    return split;
}

void mfi_team_serial_macs(int64_t macs)
{
    team_serial_ns += (double)macs * TEAM_NS_PER_MAC;
}

void mfi_team_op_done(int64_t numel)
{
    if (team_ran)
        team_serial_ns = 0;
    else
        team_serial_ns += (double)numel * TEAM_NS_PER_ELEMENT;
    team_ran = 0;
}

void mfi_team_cold(void)
{
    team_ran = 0;
    team_serial_ns = 1e300;
}

int mfi_team_warm(void)
{
    return team_ran || team_serial_ns < TEAM_WARM_NS;
}

int mfi_par_warm(int64_t work, int64_t warm_min, int64_t cold_min)
{
    if (work >= cold_min)
        return mfi_par(1);
    return mfi_par(work >= warm_min && mfi_team_warm());
}
