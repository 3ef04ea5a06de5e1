/* The processes one training runs on (docs/distributed.md): MPI ranks when mmfuse was
 * built with MPI and started by a launcher (mpirun, srun), else this process alone. Every
 * function is collective over the communicator and a no-op (or a copy) at size 1, so the
 * trainer calls them unconditionally. Private to the train layer. */
#ifndef MF_TRAIN_DIST_H
#define MF_TRAIN_DIST_H

#include <stdint.h>

#include <mmfuse/base.h>

typedef struct mfi_comm {
    int rank, size;
    int handle;     /* dist.c's table of communicators: 0 the world */
    int local_size; /* ranks on this machine (they share its cores) */
} mfi_comm;

/* The world size an MPI launcher gave this process (its environment: Open MPI's, PMIx's or
 * PMI's variables), 1 when none started it, -1 when one did without saying the size. */
int mfi_dist_launched_size(void);
/* Start MPI once when launched (MPI_THREAD_FUNNELED: only the training thread calls it; it
 * is finalized at exit) and give the world; {0, 1} when not launched. -1, with the reason,
 * when launched for several ranks by a build without MPI. */
int mfi_dist_world(mfi_comm *world, mf_error *err);

/* In-place sums over the ranks (any n: sent in pieces of at most 2^30 elements). */
int mfi_dist_sum_f32(const mfi_comm *c, float *buf, int64_t n);
int mfi_dist_sum_f64(const mfi_comm *c, double *buf, int64_t n);
int mfi_dist_sum_i64(const mfi_comm *c, int64_t *buf, int64_t n);
/* rows: this rank's `mine` rows of `width` floats at the front of buf become every rank's
 * rows, in rank order (buf holds cap rows); *total receives their count. */
int mfi_dist_gather_rows(const mfi_comm *c, float *buf, int64_t mine, int64_t width, int64_t cap,
                         int64_t *total);
/* The ranks agree on an outcome: the lowest rank whose status is not 0 gives its status and
 * its message (copied into every rank's err, "rank R: " before it when R > 0); 0 when all
 * succeeded. */
int mfi_dist_agree(const mfi_comm *c, int status, mf_error *err);
/* A rank that failed where the others cannot know it (mid-training): the message, naming
 * the rank, on stderr, then every rank ends with `status` (MPI_Abort). Returns only at
 * size 1. */
void mfi_dist_fail(const mfi_comm *c, int status, const mf_error *err);
/* Groups of ranks (a sweep's points): the ranks of c with the same color in *out, ranked
 * as in c. {0, 1} alone. */
int mfi_dist_split(const mfi_comm *c, int color, mfi_comm *out, mf_error *err);
/* Rank 0's n ints to every rank of c. */
int mfi_dist_bcast_ints(const mfi_comm *c, int *buf, int n);
/* This process alone (what a sweep validates its points with). */
#define MFI_COMM_SELF ((mfi_comm){0, 1, -1, 1})

/* Non-blocking sums, for the gradient buckets that overlap backward (buckets.c): a
 * communicator of their own (a duplicate of c: the sums in flight cannot be mistaken for any
 * other collective over c), sums started on it in the same order on every rank, and
 * finished together. Started sums must not be touched until mfi_dist_wait. */
int mfi_dist_dup(const mfi_comm *c, mfi_comm *out, mf_error *err);
int mfi_dist_isum_f32(const mfi_comm *c, float *buf, int64_t n);
/* Lets the started sums advance (MPI progresses them only inside its calls). */
int mfi_dist_progress(void);
/* Waits for every started sum. */
int mfi_dist_wait(void);

/* Seconds spent in the sums since the process started (the all-reduce's share of a step):
 * for the non-blocking ones, the time in progress and wait calls, the part not hidden. */
double mfi_dist_seconds(void);

#endif
