/* Checkpoints: one HDF5 file holding everything a run needs to continue bit for bit, or a
 * model needs to be evaluated, fine-tuned or reused. Layout (docs/training.md, "Checkpoints"):
 *
 *   /                      attrs format = "mmfuse-checkpoint", format_version, mmfuse,
 *                          kind ("last" | "best"), step, epoch, batch, forwards,
 *                          evaluations, finished, seed, created
 *   /params/<path>         float32, the parameter's shape ("model.encoders.nir.fc0.weight")
 *   (best.h5 holds the kept parameters and the best point's step and epoch, without /optim
 *   and /rng: it is for evaluation and fine-tuning, last.h5 for resuming)
 *   /optim                 attrs type, lr, betas, eps, weight_decay, momentum, step
 *   /optim/exp_avg/<path>, /optim/exp_avg_sq/<path>  (adam, adamw: torch's state names)
 *   /optim/momentum_buffer/<path>                     (sgd)
 *   /rng/modality_dropout  uint64 (5): the stream's state (4 words) and its spare normal
 *   /selection             attrs metric, higher_is_better, best (NaN before any),
 *                          best_epoch, best_step, best_evaluation
 *   /selection/val         float64: the validation metrics at the best point, named by the
 *                          attribute names ("loss,accuracy,…")
 *   /standardization/<input>/mean, std     float64 per feature (fitted on the training split)
 *   /standardization/target/mean, std      regression targets
 *   /config                the resolved experiment (YAML text)
 *   /manifest              the run's manifest.json (text), when the run has one
 *
 * Private to framework/train. */
#ifndef MF_TRAIN_CHECKPOINT_H
#define MF_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include <mmfuse/base.h>

struct experiment;

#define MFI_CHECKPOINT_FORMAT_VERSION 1

/* Where training is and what selection kept so far. */
typedef struct mfi_train_position {
    int64_t step;        /* optimiser steps taken */
    int epoch;           /* the epoch in progress, from 0 */
    int64_t batch;       /* training batches of that epoch consumed */
    int64_t forwards;    /* training forwards so far: dropout's stream position */
    int64_t evaluations; /* validation points so far */
    int finished;        /* training is over (epochs done, steps done or stopped early) */
    /* model selection */
    int higher;          /* a larger selected metric is better */
    double best;         /* its best validation value, NaN before any */
    int best_epoch;      /* epoch (from 0) of the best point, -1 before any */
    int64_t best_step, best_evaluation;
    /* every validation metric at the best point (result.json's "val") */
#define MFI_MAX_KEPT 64
    int n_kept;
    char kept_name[MFI_MAX_KEPT][64];
    double kept_value[MFI_MAX_KEPT];
} mfi_train_position;

/* What to load. */
enum {
    MFI_CKPT_PARAMS = 1u,          /* parameter values */
    MFI_CKPT_TRAINING = 2u,        /* optimiser state, RNG, position, selection */
    MFI_CKPT_STANDARDIZATION = 4u, /* the fitted input (and target) standardisation */
    MFI_CKPT_SAME_RUN = 8u,        /* the run's own checkpoint (resume, eval): its plugins must
                                      be this experiment's, all of them (checkpoint_manifest.c) */
};

/* Write `path` atomically (temporary, fsync, rename). last.h5 (kept NULL): the current
 * parameters, optimiser and RNG state at `pos`. best.h5: the `kept` parameters, stamped with
 * the best point's step and epoch, without optimiser or RNG state. */
int mfi_checkpoint_save(struct experiment *e, const char *path, const float *kept,
                        const mfi_train_position *pos, mf_error *err);
/* Load from `path` into the experiment: every parameter must be there with its shape (the
 * first missing or mismatched one is named with both shapes). `values` receives the
 * parameters (NULL: the model's own buffer); `pos` the position (may be NULL). */
int mfi_checkpoint_load(struct experiment *e, const char *path, unsigned what, float *values,
                        mfi_train_position *pos, mf_error *err);
/* A variable-length UTF-8 string type (H5Tclose it). */
int64_t mfi_h5_string_type(void);
/* checkpoint_manifest.c: the plugins recorded in the open checkpoint `file` against the
 * experiment's (same_run: all of them; else those both use); refused naming each
 * difference unless e->force_checkpoint. */
int mfi_checkpoint_check_plugins(struct experiment *e, int64_t file, const char *path,
                                 int same_run, mf_error *err);
/* Fine-tuning: copy the parameters whose path and shape match; print what matched and name
 * what did not on e->log. -1 when nothing matched or the file is not a checkpoint. */
int mfi_checkpoint_init_from(struct experiment *e, const char *path, mf_error *err);

#endif
