/* A run's folder: runs/<name>/<timestamp>/ with config.yaml (the fully resolved
 * experiment, itself a valid experiment file reproducing the run), metrics.csv (a row per
 * epoch) and result.json (written when the run ends). Every file is rewritten atomically,
 * so a crash leaves the last complete version. Private. */
#ifndef MF_TRAIN_RUNDIR_H
#define MF_TRAIN_RUNDIR_H

#include <mmfuse/host.h>

typedef struct mfi_run_dir {
    char path[4096];
    char *metrics; /* metrics.csv so far */
    size_t len, cap;
} mfi_run_dir;

/* Create `explicit_dir` (made if missing, used as is) or <root>/<name>/<timestamp>[-N]. */
int mfi_run_dir_create(mfi_run_dir *rd, const char *explicit_dir, const char *root,
                       const char *name, mf_error *err);
int mfi_run_dir_write_config(mfi_run_dir *rd, const mf_config *cfg, mf_error *err);
/* Append one epoch's row to metrics.csv; `header` is written before the first row. */
int mfi_run_dir_epoch(mfi_run_dir *rd, const char *header, const char *row, mf_error *err);
/* result.json: status ("done", "failed", "diverged"), the results and the seed, and the
 * keys of `details` (a JSON object, or NULL) beside them. */
struct json_t;
int mfi_run_dir_result(mfi_run_dir *rd, const char *status, const mf_run_result *res,
                       int64_t seed, int best_epoch, const char *message,
                       struct json_t *details, mf_error *err);
/* standardization.json: per input, the mean and standard deviation of every feature. */
struct mfi_input;
int mfi_run_dir_standardization(mfi_run_dir *rd, const struct mfi_input *inputs, int n,
                                mf_error *err);
void mfi_run_dir_free(mfi_run_dir *rd);


#endif
