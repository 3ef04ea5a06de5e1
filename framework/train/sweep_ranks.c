/* mmfuse sweep under MPI (docs/distributed.md): `mpirun -np N mmfuse sweep FILE
 * [--ranks-per-point K]`. The N ranks form N/K groups; the points still to run go to the
 * groups in turn (the j-th of them to group j mod N/K), and each group trains its points one
 * after another in-process, the K ranks of a point data-parallel. Rank 0 alone locks the
 * folder, writes sweep.json, decides which points are finished (the same skip rule as
 * without MPI) and writes the summary once every group is done; a point's folder and
 * log.txt are written by its group's first rank.
 *
 * Points do not run as processes of their own here (an MPI rank cannot start MPI processes
 * portably), so a point that crashes ends the sweep: run it again, and the finished points
 * are kept. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "experiment_internal.h"
#include "sweep_internal.h"

/* Point p (the j-th of to_run) trained by the ranks of `group`; its first rank reports. */
static void run_point(sweep *sw, sweep_point *p, const mfi_comm *group, int j, int to_run,
                      mf_error *failures)
{
    mf_error perr;
    mf_error_clear(&perr);
    int status = MF_EXIT_OK;
    FILE *log = NULL;
    char path[FILE_PATH_MAX];
    if (group->rank == 0) {
        snprintf(path, sizeof path, "%s/log.txt", p->dir);
        if (mfi_sweep_point_prepare(sw, p, &perr) || !(log = fopen(path, "w")))
            status = MF_EXIT_FAILED;
    }
    int n = 0;
    const char **o = NULL;
    if (!(status = mfi_dist_agree(group, status, &perr)) &&
        !(o = mfi_sweep_point_overrides(sw, p, &n))) {
        mf_error_set(&perr, "out of memory");
        status = MF_EXIT_FAILED;
    }
    if (!status) {
        mf_run_options ro = {.struct_size = sizeof ro, .n_overrides = n, .overrides = o,
                             .log = log ? log : stdout, .quiet = 1, .run_dir = p->dir};
        status = mfi_experiment_run_on(group, sw->path, &ro, NULL, &perr);
    }
    free(o);
    if (group->rank != 0)
        return;
    if (log) {
        if (status) /* what `mmfuse run` would print on stderr, into its log */
            fprintf(log, "%s\n", perr.msg[0] ? perr.msg : "failed without saying why");
        fclose(log);
    }
    mfi_sweep_point_finished(sw, p, W_EXITCODE(status & 0xff, 0), j, to_run, failures);
}

/* Rank 0, once every group is done: the outcome of the points the other groups ran. */
static void collect(sweep *sw, const int *mine, mf_error *failures)
{
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        if (p->state != POINT_PENDING || mine[i])
            continue;
        int done = mfi_sweep_read_result(sw, p);
        p->state = done > 0 ? POINT_DONE : POINT_FAILED;
        if (done <= 0)
            mf_error_set(failures, "point %d (%s) failed (its log: %s/log.txt)", i + 1, p->label,
                         p->dir);
    }
}

int mfi_sweep_run_ranks(sweep *sw, const mfi_comm *world, mf_error *err)
{
    const mf_sweep_options *opts = sw->opts;
    const int k = opts->struct_size >= offsetof(mf_sweep_options, ranks_per_point) +
                                           sizeof opts->ranks_per_point &&
                          opts->ranks_per_point > 0
                      ? opts->ranks_per_point : 1;
    if (world->size % k) {
        mf_error_set(err, "%s: --ranks-per-point %d does not divide the %d ranks", sw->path, k,
                     world->size);
        return MF_EXIT_BAD_INPUT;
    }
    int status = MF_EXIT_OK, to_run = 0;
    if (world->rank == 0)
        to_run = mfi_sweep_open(sw, &status, err);
    if ((status = mfi_dist_agree(world, to_run < 0 ? status : MF_EXIT_OK, err)))
        return status;
    int *state = calloc((size_t)sw->n_points + 1, sizeof *state);
    int *mine = calloc((size_t)sw->n_points + 1, sizeof *mine);
    mfi_comm group;
    if (!state || !mine) {
        free(state);
        free(mine);
        mf_error_set(err, "out of memory");
        mfi_dist_fail(world, MF_EXIT_FAILED, err);
        return MF_EXIT_FAILED;
    }
    for (int i = 0; i < sw->n_points; i++)
        state[i] = sw->points[i].state;
    state[sw->n_points] = to_run;
    if (mfi_dist_bcast_ints(world, state, sw->n_points + 1) ||
        mfi_dist_split(world, world->rank / k, &group, err))
        mfi_dist_fail(world, MF_EXIT_FAILED, err);
    to_run = state[sw->n_points];
    const int groups = world->size / k;
    if (world->rank == 0 && to_run)
        fprintf(sw->log, "running %d point%s on %d ranks: %d at a time, %d rank%s each\n", to_run,
                to_run == 1 ? "" : "s", world->size, groups, k, k == 1 ? "" : "s");
    fflush(sw->log);
    mf_error failures;
    mf_error_clear(&failures);
    FILE *sweep_log = sw->log;
    if (world->rank > 0 && group.rank == 0)
        sw->log = stdout; /* a group's first rank tells how its points ended */
    for (int i = 0, j = 0; i < sw->n_points; i++) {
        sw->points[i].state = state[i];
        if (state[i] != POINT_PENDING || j++ % groups != world->rank / k)
            continue;
        mine[i] = 1;
        run_point(sw, &sw->points[i], &group, j, to_run, &failures);
    }
    sw->log = sweep_log;
    mfi_dist_agree(world, MF_EXIT_OK, err); /* every group done */
    if (world->rank == 0) {
        collect(sw, mine, &failures);
        status = mfi_sweep_finish(sw, &failures, 0, err);
    }
    free(state);
    free(mine);
    return mfi_dist_agree(world, status, err);
}
