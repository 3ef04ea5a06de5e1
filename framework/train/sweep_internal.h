/* mmfuse sweep's pieces: the grid (sweep_grid.c), the runs (sweep.c), the summary
 * (sweep_summary.c). */
#ifndef MF_SWEEP_INTERNAL_H
#define MF_SWEEP_INTERNAL_H

#include <stdio.h>
#include <sys/types.h>

#include <mmfuse/host.h>

#define FILE_PATH_MAX 4608 /* a point folder (4400) and a file name */

/* One dimension of the grid: a key path and its values, or the named cases. */
typedef struct sweep_key {
    char *path;              /* "model.fusion.type"; "cases" for the named cases */
    int n;
    char **text;             /* each value as flow YAML; a case: its name */
    char **slug;
    char ***sets;            /* cases only: each case's "key.path=value" list, NULL-ended */
    int is_seed, is_cases;
} sweep_key;

enum { POINT_PENDING, POINT_SKIPPED, POINT_RUNNING, POINT_DONE, POINT_FAILED };

typedef struct sweep_point {
    int *choice;             /* value index per key */
    char **assign;           /* the "key=value" overrides, NULL-ended: one per key, a case's all */
    int n_assign;
    char *label;             /* "key=value, cases=name, …" */
    char name[256];          /* folder name inside the sweep folder */
    char dir[4400];          /* <sweep folder>/<name> */
    int config;              /* configuration (all keys but seed) index */
    int state;
    pid_t pid;
    double val, test, epochs, seconds;
    double *metric;          /* per sw->metric_names: the result's test and robustness numbers */
    int n_metric;            /* names known when it was read; later ones it lacks */
} sweep_point;

typedef struct sweep {
    const char *path;
    const mf_sweep_options *opts;
    FILE *log;
    mf_config *cfg;          /* the file with the global overrides */
    sweep_key *keys;
    int n_keys, n_points, n_configs, n_seeds;
    sweep_point *points;
    char dir[4096];
    char **envp;
    int lock_fd;             /* <dir>/.lock, held by the sweep and inherited by its points */
    pid_t self;              /* the sweep's process, which its points watch */
    char **metric_names;     /* "test.accuracy", "robustness.drop.visible", … in first-seen order */
    int n_metrics;
} sweep;

/* sweep_grid.c: the grid from the file (with the global overrides), one point per cell. */
int mfi_sweep_load_grid(sweep *sw, mf_error *err);
/* The overrides of point p as `mmfuse run` takes them (NULL-ended, *n counted; free()). */
const char **mfi_sweep_point_overrides(const sweep *sw, const sweep_point *p, int *n);
void mfi_sweep_free(sweep *sw);

/* sweep.c */
/* The sweep's folder made and locked, sweep.json written, the finished points whose
 * settings did not change marked skipped (said on the log): how many points are to run, or
 * -1 with *status and err. */
int mfi_sweep_open(sweep *sw, int *status, mf_error *err);
/* A point's folder made, its stale result.json removed, point.yaml written. */
int mfi_sweep_point_prepare(const sweep *sw, sweep_point *p, mf_error *err);
/* A point ended with `wstatus` (a wait status): its outcome in p, one progress line,
 * failures also into err. */
void mfi_sweep_point_finished(sweep *sw, sweep_point *p, int wstatus, int done_so_far, int to_run,
                              mf_error *err);
/* Points failed or not run. */
int mfi_sweep_count_failed(const sweep *sw);
/* The summary, then the status: the failures (collected in `failures`) into err. */
int mfi_sweep_finish(sweep *sw, const mf_error *failures, int run_rc, mf_error *err);

/* sweep_procs.c: the points to run (after mfi_sweep_open) as processes of their own, `jobs`
 * at a time; SIGINT, SIGTERM and SIGHUP stop them. Returns the sweep's status. */
int mfi_sweep_run_processes(sweep *sw, int jobs, mf_error *err);

/* sweep_ranks.c: the points spread over MPI ranks (mpirun -np N mmfuse sweep FILE), each
 * trained in-process by its group of ranks. */
struct mfi_comm;
int mfi_sweep_run_ranks(sweep *sw, const struct mfi_comm *world, mf_error *err);

/* sweep_summary.c */
/* 1 when the point's result.json says done (its numbers read into p), else 0; -1 out of memory. */
int mfi_sweep_read_result(sweep *sw, sweep_point *p);
/* The selected metric as the progress lines name it ("acc", "r@1", "mse"): the last result
 * read says. */
const char *mfi_sweep_metric_label(void);
/* summary.md, summary.csv and summary.html in the sweep's folder. */
int mfi_sweep_summarise(sweep *sw, mf_error *err);

#endif
