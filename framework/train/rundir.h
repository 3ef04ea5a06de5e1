/* A run's folder: runs/<name>/<timestamp>/ with config.yaml (the fully resolved
 * experiment, itself a valid experiment file reproducing the run: tracking.c),
 * manifest.json (versions, plugin files and hashes, host), metrics.csv (a row per epoch),
 * events.jsonl (one JSON object per line: what happened when) and result.json (written when
 * the run ends). Every file but events.jsonl is rewritten atomically, so a crash leaves the
 * last complete version; events.jsonl grows by whole lines. docs/training.md, "Run
 * folders", describes every file. Private. */
#ifndef MF_TRAIN_RUNDIR_H
#define MF_TRAIN_RUNDIR_H

#include <mmfuse/host.h>

typedef struct mfi_run_dir {
    char path[4096];
    char target[1024], parent[2048]; /* where a staged folder goes (mfi_run_dir_publish) */
    int staged, stamped; /* stamped: target is a <timestamp> leaf inside parent */
    char *metrics; /* metrics.csv so far */
    size_t len, cap;
} mfi_run_dir;

/* Stage a new run folder: a hidden folder beside `explicit_dir` or <root>/<name>/<timestamp>
 * that the first files go into; mfi_run_dir_publish then renames it into place, so a visible
 * run folder always has its config.yaml. */
int mfi_run_dir_create(mfi_run_dir *rd, const char *explicit_dir, const char *root,
                       const char *name, mf_error *err);
/* Into place: `explicit_dir` (an existing one with files in it is used as is) or
 * <timestamp>[-N]; rd->path is then the run folder. */
int mfi_run_dir_publish(mfi_run_dir *rd, mf_error *err);
/* A staged folder that will not be published (its first files could not be written):
 * removed with what is in it, and err's messages made to name the run folder it was for
 * rather than the hidden stage. */
void mfi_run_dir_abandon(mfi_run_dir *rd, mf_error *err);
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
/* Append {"time": UTC ISO 8601 with milliseconds, "event": event, fields' keys…} as one
 * line of events.jsonl, in one write (O_APPEND). Steals `fields` (a JSON object or NULL). */
int mfi_run_dir_event(mfi_run_dir *rd, const char *event, struct json_t *fields, mf_error *err);
/* Open an existing run folder to go on from `last_step`: metrics.csv keeps the rows whose
 * step column is <= last_step, events.jsonl the events whose "step" is (and those without
 * one); both rewritten atomically (torn lines dropped); then a "resume" event is appended.
 * Fails naming the folder when it is not a run (no config.yaml). */
int mfi_run_dir_reopen(mfi_run_dir *rd, const char *path, int64_t last_step, mf_error *err);
void mfi_run_dir_free(mfi_run_dir *rd);


#endif
