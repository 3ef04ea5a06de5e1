/* MPI for data-parallel training (dist.h). Built with MPI when meson found it
 * (-Dmpi=auto|enabled|disabled); without, every communicator has one rank and a launch for
 * several is refused, since N copies of a run that does not know of the others would each
 * train alone into the same folders. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mf_build_config.h"
#include <mmfuse/host.h>

#include "dist.h"

#if MF_HAVE_MPI
#include <mpi.h>
#endif

/* The launchers' variables for the world size: Open MPI, PMIx (Open MPI 4+, srun
 * --mpi=pmix), PMI (MPICH's hydra, srun --mpi=pmi2). */
int mfi_dist_launched_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0)
            return atoi(v);
    }
    return getenv("PMIX_RANK") ? -1 : 1; /* PMIx without its size: launched, size unknown */
}

int mf_distributed_rank(void)
{
#if MF_HAVE_MPI
    int started = 0, rank = 0;
    MPI_Initialized(&started);
    if (started && MPI_Comm_rank(MPI_COMM_WORLD, &rank) == MPI_SUCCESS)
        return rank;
#endif
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return 0;
}

static double seconds_in_sums;

double mfi_dist_seconds(void)
{
    return seconds_in_sums;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if MF_HAVE_MPI
/* ---------------------------------------------------------------- with MPI */
/* The communicators handles name: 0 the world, then the groups of sweeps (a few at most:
 * one per sweep a process runs). */
#define MAX_COMMS 64
static MPI_Comm comms[MAX_COMMS];
static int n_comms = 1;

static MPI_Comm comm_of(const mfi_comm *c)
{
    return c->handle > 0 && c->handle < n_comms ? comms[c->handle] : MPI_COMM_WORLD;
}

int mfi_dist_split(const mfi_comm *c, int color, mfi_comm *out, mf_error *err)
{
    *out = (mfi_comm){0, 1, -1, 1};
    if (c->size <= 1)
        return 0;
    MPI_Comm group;
    if (n_comms == MAX_COMMS ||
        MPI_Comm_split(comm_of(c), color, c->rank, &group) != MPI_SUCCESS) {
        mf_error_set(err, "MPI could not make a group of ranks (MPI_Comm_split)");
        return -1;
    }
    comms[n_comms] = group;
    *out = (mfi_comm){0, 1, n_comms++, c->local_size};
    MPI_Comm_rank(group, &out->rank);
    MPI_Comm_size(group, &out->size);
    return 0;
}

int mfi_dist_bcast_ints(const mfi_comm *c, int *buf, int n)
{
    return c->size <= 1 || MPI_Bcast(buf, n, MPI_INT, 0, comm_of(c)) == MPI_SUCCESS ? 0 : -1;
}

static void finalize(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
}

int mfi_dist_world(mfi_comm *world, mf_error *err)
{
    (void)err;
    *world = (mfi_comm){0, 1, 0, 1};
    int started = 0;
    MPI_Initialized(&started);
    if (!started && mfi_dist_launched_size() == 1)
        return 0; /* not launched: no MPI at all (a singleton MPI_Init costs a second) */
    if (!started) {
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            mf_error_set(err, "MPI failed to start (MPI_Init_thread)");
            return -1;
        }
        atexit(finalize);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &world->local_size);
        MPI_Comm_free(&local);
    }
    return 0;
}

/* MPI counts are int: large buffers go in pieces. */
#define PIECE ((int64_t)1 << 30)

static int sum(const mfi_comm *c, void *buf, int64_t n, MPI_Datatype type, size_t elem)
{
    if (c->size <= 1)
        return 0;
    const double t0 = now();
    int rc = MPI_SUCCESS;
    for (int64_t at = 0; at < n && rc == MPI_SUCCESS; at += PIECE) {
        const int count = (int)(n - at < PIECE ? n - at : PIECE);
        rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)at * elem, count, type, MPI_SUM,
                           comm_of(c));
    }
    seconds_in_sums += now() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

int mfi_dist_sum_f32(const mfi_comm *c, float *buf, int64_t n)
{
    return sum(c, buf, n, MPI_FLOAT, sizeof *buf);
}

int mfi_dist_sum_f64(const mfi_comm *c, double *buf, int64_t n)
{
    return sum(c, buf, n, MPI_DOUBLE, sizeof *buf);
}

int mfi_dist_sum_i64(const mfi_comm *c, int64_t *buf, int64_t n)
{
    return sum(c, buf, n, MPI_INT64_T, sizeof *buf);
}

int mfi_dist_dup(const mfi_comm *c, mfi_comm *out, mf_error *err)
{
    *out = *c;
    if (c->size <= 1)
        return 0;
    if (n_comms == MAX_COMMS || MPI_Comm_dup(comm_of(c), &comms[n_comms]) != MPI_SUCCESS) {
        mf_error_set(err, "MPI could not make a communicator for the gradients (MPI_Comm_dup)");
        return -1;
    }
    out->handle = n_comms++;
    return 0;
}

/* The sums in flight (a model has tens of buckets at most). */
static MPI_Request *pending;
static int n_pending, cap_pending;

int mfi_dist_isum_f32(const mfi_comm *c, float *buf, int64_t n)
{
    if (c->size <= 1)
        return 0;
    for (int64_t at = 0; at < n; at += PIECE) {
        if (n_pending == cap_pending) {
            const int cap = cap_pending ? 2 * cap_pending : 64;
            MPI_Request *grown = realloc(pending, (size_t)cap * sizeof *grown);
            if (!grown)
                return -1;
            pending = grown, cap_pending = cap;
        }
        const int count = (int)(n - at < PIECE ? n - at : PIECE);
        if (MPI_Iallreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, comm_of(c),
                           &pending[n_pending]) != MPI_SUCCESS)
            return -1;
        n_pending++;
    }
    return 0;
}

int mfi_dist_progress(void)
{
    if (n_pending == 0)
        return 0;
    const double t0 = now();
    int done = 0;
    const int rc = MPI_Testall(n_pending, pending, &done, MPI_STATUSES_IGNORE);
    if (done)
        n_pending = 0;
    seconds_in_sums += now() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

int mfi_dist_wait(void)
{
    if (n_pending == 0)
        return 0;
    const double t0 = now();
    const int rc = MPI_Waitall(n_pending, pending, MPI_STATUSES_IGNORE);
    n_pending = 0;
    seconds_in_sums += now() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

int mfi_dist_gather_rows(const mfi_comm *c, float *buf, int64_t mine, int64_t width, int64_t cap,
                         int64_t *total)
{
    *total = mine;
    if (c->size <= 1)
        return 0;
    int64_t *rows = calloc((size_t)c->size, sizeof *rows);
    int *count = calloc((size_t)c->size, sizeof *count), *displ = calloc((size_t)c->size, sizeof *displ);
    float *copy = malloc((size_t)(mine * width > 0 ? mine * width : 1) * sizeof *copy);
    int rc = rows && count && displ && copy &&
                     MPI_Allgather(&mine, 1, MPI_INT64_T, rows, 1, MPI_INT64_T, comm_of(c)) ==
                         MPI_SUCCESS ? 0 : -1;
    int64_t at = 0;
    for (int r = 0; rc == 0 && r < c->size; r++) {
        if (at + rows[r] > cap || (at + rows[r]) * width > INT_MAX)
            rc = -1; /* more than the split: cannot happen with the loader's shards */
        count[r] = (int)(rows[r] * width);
        displ[r] = (int)(at * width);
        at += rows[r];
    }
    if (rc == 0) {
        memcpy(copy, buf, (size_t)(mine * width) * sizeof *copy);
        rc = MPI_Allgatherv(copy, (int)(mine * width), MPI_FLOAT, buf, count, displ, MPI_FLOAT,
                            comm_of(c)) == MPI_SUCCESS ? 0 : -1;
        *total = at;
    }
    free(rows);
    free(count);
    free(displ);
    free(copy);
    return rc;
}

int mfi_dist_agree(const mfi_comm *c, int status, mf_error *err)
{
    if (c->size <= 1)
        return status;
    int *all = malloc((size_t)c->size * sizeof *all);
    if (!all || MPI_Allgather(&status, 1, MPI_INT, all, 1, MPI_INT, comm_of(c)) != MPI_SUCCESS) {
        free(all);
        mfi_dist_fail(c, status ? status : 1, err);
        return status ? status : 1;
    }
    int first = -1, agreed = 0;
    for (int r = 0; r < c->size && first < 0; r++)
        if (all[r])
            agreed = all[first = r];
    free(all);
    if (first < 0)
        return 0;
    char msg[MF_ERROR_CAPACITY];
    snprintf(msg, sizeof msg, "%s", err->msg);
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm_of(c));
    msg[sizeof msg - 1] = 0;
    mf_error_clear(err);
    if (first > 0)
        mf_error_set(err, "rank %d: %s", first, msg);
    else
        mf_error_set(err, "%s", msg);
    return agreed;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int mf_bench_allreduce(int64_t n, int reps, double *median_ms, int *ranks, mf_error *err)
{
    mfi_comm world;
    *median_ms = 0;
    if (mfi_dist_world(&world, err))
        return MF_EXIT_BAD_INPUT;
    *ranks = world.size;
    if (world.size <= 1 || n < 1 || reps < 1)
        return MF_EXIT_OK;
    float *buf = calloc((size_t)n, sizeof *buf);
    double *t = calloc((size_t)reps, sizeof *t);
    if (!buf || !t) {
        free(buf);
        free(t);
        mf_error_set(err, "out of memory for %lld floats", (long long)n);
        return MF_EXIT_FAILED;
    }
    for (int i = -3; i < reps; i++) { /* three to warm the connections up */
        MPI_Barrier(MPI_COMM_WORLD);  /* every rank starts the sum together */
        const double t0 = now();
        mfi_dist_sum_f32(&world, buf, n);
        if (i >= 0)
            t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, compare_doubles);
    *median_ms = t[reps / 2] * 1e3;
    free(buf);
    free(t);
    return MF_EXIT_OK;
}

void mfi_dist_fail(const mfi_comm *c, int status, const mf_error *err)
{
    if (c->size <= 1)
        return;
    fprintf(stderr, "mmfuse: rank %d of %d: %s\n", c->rank, c->size,
            err && err->msg[0] ? err->msg : "failed");
    fflush(stderr);
    MPI_Abort(comm_of(c), status);
    exit(status); /* MPI_Abort does not return; should it, this rank still ends */
}

#else
/* ---------------------------------------------------------------- without MPI */
int mf_bench_allreduce(int64_t n, int reps, double *median_ms, int *ranks, mf_error *err)
{
    (void)n, (void)reps;
    mfi_comm world;
    *median_ms = 0;
    *ranks = 1;
    return mfi_dist_world(&world, err) ? MF_EXIT_BAD_INPUT : MF_EXIT_OK;
}

int mfi_dist_world(mfi_comm *world, mf_error *err)
{
    *world = (mfi_comm){0, 1, 0, 1};
    const int n = mfi_dist_launched_size();
    if (n == 1)
        return 0;
    char ranks[32] = "several";
    if (n > 1)
        snprintf(ranks, sizeof ranks, "%d", n);
    mf_error_set(err, "this mmfuse was built without MPI, so it cannot train as one of %s ranks "
                 "(each would train alone into the same folders): rebuild with MPI "
                 "(`make deps`, then meson setup -Dmpi=enabled), or run it without mpirun",
                 ranks);
    return -1;
}

int mfi_dist_sum_f32(const mfi_comm *c, float *buf, int64_t n)
{
    (void)c, (void)buf, (void)n, (void)now;
    return 0;
}

int mfi_dist_sum_f64(const mfi_comm *c, double *buf, int64_t n)
{
    (void)c, (void)buf, (void)n;
    return 0;
}

int mfi_dist_sum_i64(const mfi_comm *c, int64_t *buf, int64_t n)
{
    (void)c, (void)buf, (void)n;
    return 0;
}

int mfi_dist_dup(const mfi_comm *c, mfi_comm *out, mf_error *err)
{
    (void)err;
    *out = *c;
    return 0;
}

int mfi_dist_isum_f32(const mfi_comm *c, float *buf, int64_t n)
{
    (void)c, (void)buf, (void)n;
    return 0;
}

int mfi_dist_progress(void) { return 0; }
int mfi_dist_wait(void) { return 0; }

int mfi_dist_gather_rows(const mfi_comm *c, float *buf, int64_t mine, int64_t width, int64_t cap,
                         int64_t *total)
{
    (void)c, (void)buf, (void)width, (void)cap;
    *total = mine;
    return 0;
}

int mfi_dist_agree(const mfi_comm *c, int status, mf_error *err)
{
    (void)c, (void)err;
    return status;
}

int mfi_dist_split(const mfi_comm *c, int color, mfi_comm *out, mf_error *err)
{
    (void)c, (void)color, (void)err;
    *out = (mfi_comm){0, 1, -1, 1};
    return 0;
}

int mfi_dist_bcast_ints(const mfi_comm *c, int *buf, int n)
{
    (void)c, (void)buf, (void)n;
    return 0;
}

void mfi_dist_fail(const mfi_comm *c, int status, const mf_error *err)
{
    (void)c, (void)status, (void)err;
}
#endif
