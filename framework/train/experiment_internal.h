/* Private to framework/train: one experiment as its units share it.
 *
 *   experiment.c        validation of the whole file, settings, mf_experiment_run
 *   experiment_specs.c  the host's sections (keys, defaults, docs)
 *   experiment_data.c   the reader, views, inputs, splits, token and mask checks
 *   model.c             encoders (shared or not) → fusion → head → losses; graphs
 *   metrics.c           what a pass over a split measures, and model selection
 *   trainer.c           the training loop with its hooks, evaluation
 *   robustness.c        eval.robustness: modalities dropped, noise levels
 *
 * inputs (one per modality) → encoders → [fusion] → [head] → Σ weight·loss
 */
#ifndef MF_TRAIN_EXPERIMENT_INTERNAL_H
#define MF_TRAIN_EXPERIMENT_INTERNAL_H

#include <stdio.h>

#include <jansson.h>
#include <mmfuse/host.h>

#include "../data/assemble.h"
#include "../data/loader.h"
#include "checkpoint.h"
#include "dist.h"
#include "rundir.h"

#define MAX_MODALITIES 16
/* (full batch, last partial batch) × (train, eval); under ranks, a model that gathers its
 * batch (mf_gather_batch) keys graphs by the whole batch too: the last batches of each split,
 * and prepare's graph */
#define MAX_GRAPHS 8
#define MAX_LOSSES 8
#define MAX_METRICS 64
#define MFI_MAX_TOP_K 4 /* eval.top_k values (brief "metrics") */
#define MFI_MAX_NOISE_LEVELS 32 /* eval.robustness.noise levels (brief "metrics") */

/* ---------------------------------------------------------------- specs (experiment_specs.c) */
extern const mf_param_spec mfi_top_specs[], mfi_plugins_specs[], mfi_data_specs[],
    mfi_view_specs[], mfi_eval_specs[], mfi_robustness_specs[], mfi_model_specs[],
    mfi_module_specs[], mfi_encoder_specs[], mfi_loss_specs[], mfi_optim_specs[],
    mfi_train_specs[], mfi_augment_specs[];

/* ---------------------------------------------------------------- metrics (metrics.c) */
/* The numbers one pass over a split gives, by name ("loss", "accuracy", "r@1", …). */
typedef struct mfi_metric_table {
    int n;
    const char *name[MAX_METRICS];
    int higher_is_better[MAX_METRICS];
    double value[MAX_METRICS];
} mfi_metric_table;

/* Accumulates a pass: predictions against targets, embeddings for retrieval. */
typedef struct mfi_meter mfi_meter;

/* ---------------------------------------------------------------- one compiled graph */
typedef struct model_graph {
    mf_graph *g;
    int64_t batch;
    int training;
    int64_t whole, offset;            /* a gathering model's whole batch and this rank's first
                                         row in it; 0 alone or without a gather */
    mf_node *input[MAX_MODALITIES];
    mf_node *mask[MAX_MODALITIES];    /* (B,T) padding of a token input, else NULL */
    mf_node *missing[MAX_MODALITIES]; /* (B,F): 1 where the sample's modality is missing */
    mf_node *emb[MAX_MODALITIES];     /* each encoder's output */
    mf_node *fused, *logits;          /* NULL without fusion / head */
    mf_node *target;                  /* (B) classes or (B,K) */
    mf_node *term[MAX_LOSSES];        /* each loss before its weight */
    mf_node *loss;                    /* Σ weight·term */
    mf_loss_inputs li;                /* what the losses saw (for their batch metrics) */
} model_graph;

typedef struct experiment {
    const char *path;
    char *base_dir;
    int overrides_from_cwd; /* -o path values are relative to the working folder (inference) */
    mfi_comm comm;          /* the ranks training together (data parallel); {0, 1} alone */
    double bucket_mb;       /* train.bucket_mb: gradient buckets overlapping backward, 0 none */
    struct mfi_buckets *buckets; /* made by the first training pass at several ranks */
    int buckets_made;
    mf_config *cfg;
    mf_registry *reg;
    FILE *log;
    int quiet;
    mfi_run_dir *run; /* NULL when nothing is saved */
    const mf_run_options *opts;

    const mf_config *data_cfg, *encoder_cfg[MAX_MODALITIES], *fusion_cfg, *head_cfg;
    const mf_plugin *reader, *encoder_plugin[MAX_MODALITIES], *fusion_plugin, *head_plugin;
    int n_losses;
    const mf_config *loss_cfg[MAX_LOSSES];
    const mf_plugin *loss_plugin[MAX_LOSSES];
    double loss_weight[MAX_LOSSES];

    mf_dataset *ds;
    const mf_dataset_info *info;
    int n_mod;                        /* model inputs: modalities or views used  */
    mfi_input input[MAX_MODALITIES];
    const char *mod_name[MAX_MODALITIES + 1]; /* NULL-terminated */
    uint32_t in_flags[MAX_MODALITIES];        /* MF_IO_* of each input */
    int64_t in_vocab[MAX_MODALITIES];
    int shares[MAX_MODALITIES];       /* the modality whose encoder this one uses, or -1 */
    mfi_splits splits;
    int32_t target_kind;              /* mf_target_kind */
    int64_t target_dim;               /* classes, or the target's width */
    double *target_mean, *target_std; /* regression targets standardised (data.standardize):
                                         the model sees (t - mean)/std, metrics are in the
                                         data's units; NULL otherwise */

    mf_params *params;
    mf_module *encoder[MAX_MODALITIES], *fusion, *head, *loss[MAX_LOSSES];
    mf_shape emb_shape[MAX_MODALITIES], fused_shape, logits_shape;
    int has_logits;                   /* the head's output; without a head, a fused vector of
                                         the target's width (late fusion of logits) */
    uint32_t emb_flags[MAX_MODALITIES], fused_flags;
    model_graph graphs[MAX_GRAPHS];
    int n_graphs;
    int gathers;                      /* under ranks: the model gathers the batch (model.c) */

    int64_t seed, batch_size, epochs, threads, patience;
    const char *select;               /* "val.accuracy", … */
    double modality_dropout;
    int learned_missing, with_missing; /* model.missing; whether graphs take missing masks */
    int normalize;                     /* model.normalize: encoders' outputs L2-normalised */
    mf_param *marker[MAX_MODALITIES];  /* learned missing markers, numel(input) each */
    mf_module *markers;                /* their owner ("model.missing") */
    mf_rng dropout_rng;
    struct {                           /* data.augment (augment.c) */
        double hflip, vflip;
        int rot90, on;
        uint8_t *codes;                /* a batch's MFI_AUGMENT_* codes */
    } augment;
    double val_fraction;
    mf_optim optim;
    int retrieval[2];                  /* modalities compared by retrieval metrics, or -1 */
    int retrieval_dot;                 /* rank by raw dot products (eval.similarity), not cosine */
    mf_loss_metrics loss_metrics[MAX_LOSSES];
    json_t *details;                   /* result.json's sections beyond the scalar metrics
                                          (confusion matrix, per class, robustness) */
    /* metrics (metrics.c, brief "metrics") */
    int n_top_k;                       /* eval.top_k: top-k accuracies measured, "top<k>" */
    int top_k[MFI_MAX_TOP_K];

    /* optimisation (optim_config.c, brief "optim") */
    double base_lr;                    /* optim.lr: the schedule's factor multiplies it */
    mf_lr_schedule schedule;           /* optim.schedule */
    double clip_grad_norm;             /* optim.clip_grad_norm, 0 = off */
    float *lr_scale;                   /* per parameter (optim.lr_scale), NULL when none */
    double last_lr;                    /* the base rate of the last step (mfi_optim_lr) */
    int64_t accumulate;                /* train.accumulate: batches per optimiser step */
    int64_t accum_batches;             /* set by the loop before mfi_optim_update: the batches
                                          summed in the gradients (they are averaged); 0 = 1 */

    /* the loop (loop.c, the lead) */
    int64_t steps, val_every;          /* train.steps (0: train.epochs), train.val_every */
    int mode;                          /* train.mode: 0 auto, 1 min, 2 max */
    int checkpoint;                    /* train.checkpoint */
    double checkpoint_every;           /* train.checkpoint_every: seconds between checkpoints */
    const char *resume_from;           /* last.h5 of the run being resumed, or NULL */
    char resume_buf[4300];
    mfi_train_position resume_pos;     /* last.h5's position, loaded with the model's state */
    const char *init_from;             /* --init-from checkpoint, or NULL */
    int diverged;                      /* the run stopped on a non-finite loss or gradient */
    int force_checkpoint;              /* --force: load checkpoints written with other plugins */

    /* tracking (tracking.c, brief "tracking"): the plugins the run uses (reader, encoders,
     * fusion, head, losses; each once), their .so's SHA-256, and what the config recorded
     * of them when that differs (pointers into cfg, for the warning and manifest.json) */
    int track_ready, n_used;
    struct mfi_used_plugin {
        const mf_plugin *plugin;
        const char *file;                  /* as the registry loaded it */
        char sha256[65];                   /* hex; "" when the file could not be read */
        const char *old_file, *old_sha256; /* plugins.files' record, when it differs */
    } used[32];
    char track_started[32];                /* UTC ISO 8601, set by mfi_track_start */
} experiment;

/* A section of the experiment (validated: the cast only drops const for mf_config_check). */
mf_config *mfi_section(experiment *e, const char *key);
/* `none` or null in place of a module section: that part of the model is absent. */
int mfi_section_is_none(const mf_config *n);

/* experiment_data.c */
int mfi_open_data(experiment *e, mf_error *err);
/* augment.c: data.augment read and checked against the inputs (after mfi_open_data); the
 * codes of a training batch of n samples drawn from (seed, forwards); NULL when off. */
int mfi_augment_setup(experiment *e, mf_error *err);
const uint8_t *mfi_augment_draw(experiment *e, int64_t n, uint64_t forwards);
void mfi_augment_free(experiment *e);
/* Token ids of every token input in [0, vocab) (-1 naming the dataset, sample, position);
 * fills the padding masks. */
int mfi_check_tokens(experiment *e, const mfi_batch *batch, model_graph *mg, mf_error *err);

/* model.c */
int mfi_build_model(experiment *e, mf_error *err);
model_graph *mfi_graph_for(experiment *e, int64_t batch, int training, mf_error *err);
/* The graphs' dropout seed: a function of the experiment's seed (and the graph's kind). */
uint64_t mfi_dropout_seed(int64_t seed, int training, int64_t batch);

/* metrics.c */
mfi_meter *mfi_meter_new(const experiment *e, int64_t n_samples);
void mfi_meter_free(mfi_meter *m);
void mfi_meter_reset(mfi_meter *m, int with_retrieval);
/* One batch after its forward; labels/targets as the loader delivered them. */
void mfi_meter_add(mfi_meter *m, experiment *e, model_graph *mg, const mfi_batch *batch);
void mfi_meter_table(mfi_meter *m, mfi_metric_table *out);
/* The meter's counts and sums over the ranks (retrieval's embeddings gathered), once per
 * pass, before mfi_meter_table: every rank then holds the whole split's. */
int mfi_meter_reduce(mfi_meter *m, const mfi_comm *c);
/* The metrics of a pass over validation (or training) data, for train.select. */
void mfi_metric_names(const experiment *e, mfi_metric_table *out);
/* The value of `name` in a table, NAN when absent. */
double mfi_metric_get(const mfi_metric_table *t, const char *name);
/* Check train.select against what this model measures (located error). */
int mfi_check_select(experiment *e, mf_error *err);
/* The default of train.select for this model. */
const char *mfi_default_select(const experiment *e);

/* trainer.c */
/* The loop's state shared by its units: the experiment, the meter, the hooks and where
 * training is. */
typedef struct mfi_pass {
    experiment *e;
    mfi_meter *meter;
    const mf_train_hooks *hooks;
    mfi_train_position pos;     /* step, epoch, batch, forwards, selection so far */
    int64_t steps_per_epoch, total_steps;
    int64_t group_left;         /* batches still to accumulate into this step */
    int64_t group_samples;      /* samples of the whole accumulation group */
    double last_loss;           /* the step's last batch, over every rank */
    double part_loss[3];        /* this rank's share: Σ loss·b of the last batch, its b, the
                                 * group's samples (summed over the ranks at the step) */
    int64_t samples;            /* trained on (by every rank) */
    struct mfi_progress *progress; /* the terminal's progress line, or NULL */
} mfi_pass;

/* experiment.c */
/* Load e->path with the options' overrides, validate everything, open the data, build the
 * model and its full-batch training graph. e->path, e->log, e->quiet, e->base_dir set. */
int mfi_experiment_prepare(experiment *e, const mf_run_options *opts, mf_error *err);
void mfi_experiment_free(experiment *e);
/* mf_experiment_run on the ranks of comm (a sweep's group of ranks, or MFI_COMM_SELF). */
int mfi_experiment_run_on(const mfi_comm *comm, const char *path, const mf_run_options *opts,
                          mf_run_result *res, mf_error *err);

/* resume.c */
/* The run folder `which` names ("latest": the newest of the experiment `file`), checked to be
 * a run that can continue: 0, 1 when it finished already (said on log), -1 otherwise. */
int mfi_resume_locate(const char *file, const char *which, char *dir, size_t size, FILE *log,
                      mf_error *err);
/* Check checkpoints/last.h5 against the model (when there is one: a run killed before its
 * first checkpoint starts again), load it — parameters, optimiser state, RNG, and the position
 * into e->resume_pos — and reopen the folder at its step. */
int mfi_resume_open(experiment *e, mfi_run_dir *run, const char *dir, mf_error *err);
/* Its first half, for the ranks other than 0: the checkpoint loaded, the folder untouched. */
int mfi_resume_load(experiment *e, const char *dir, mf_error *err);

/* loop.c: training with validation points, selection, checkpoints and resume; the test pass
 * at the kept point; robustness. */
int mfi_train(experiment *e, mf_run_result *res, mf_error *err);

/* trainer.c: batches. */
/* The graph's inputs, missing masks and targets from a batch (token ids checked); augment:
 * a training batch's data.augment codes (mfi_augment_draw), or NULL. */
int mfi_fill_batch(experiment *e, model_graph *mg, const mfi_batch *batch, int training,
                   const uint8_t *augment, mf_rng *rng, mf_error *err);
/* One evaluation pass over a split; the meter holds its metrics. `rng` draws evaluation
 * noise (the robustness transforms), NULL otherwise. */
int mfi_run_pass(mfi_pass *p, mfi_loader *loader, int training, mf_rng *rng, mf_error *err);
/* Each batch of a split through the evaluation graph, its loss checked; `each` sees it after
 * the forward (non-zero: a failure of its own, MF_EXIT_FAILED). */
typedef int (*mfi_batch_fn)(void *user, model_graph *mg, const mfi_batch *batch);
int mfi_eval_batches(experiment *e, mfi_loader *loader, mf_rng *rng, mfi_batch_fn each,
                     void *user, mf_error *err);
/* Training batches from the loader's position until a validation is due (returns 1), the
 * epoch ends (0), or an error (-MF_EXIT_*). The meter accumulates them. */
int mfi_train_batches(mfi_pass *p, mfi_loader *loader, mf_error *err);
/* Whether a validation is due after the step just taken. */
int mfi_validation_due(const mfi_pass *p);
/* Run a hook of mf_run_options.hooks; -1 (with its message, or one naming it) to stop. */
int mfi_call_hook(mfi_pass *p, int (*hook)(void *, const mf_train_state *, mf_error *),
                  const mf_train_state *st, const char *which, mf_error *err);

/* robustness.c: eval.robustness on the test split; the clean metrics given. Adds its
 * figures to `details` (result.json) and writes robustness.csv in the run folder. */
int mfi_evaluate_robustness(mfi_pass *p, mfi_loader *test, const mfi_metric_table *clean,
                            json_t *details, mf_error *err);

/* ---------------------------------------------------------------- metrics (brief "metrics") */
/* What a pass measured beyond its scalars, for result.json["details"][split]: classes →
 * {"classes": [names], "confusion": [[…]] (rows truth), "per_class": [{class, precision,
 * recall, f1, support}]}; regression → {"targets": […], "mse": […], "mae": […]}; NULL
 * otherwise (no head, multi-label, an empty pass). The caller owns the reference. */
json_t *mfi_meter_details(mfi_meter *m, const experiment *e);
/* eval.robustness.baseline: a late-fusion run's result.json with noise curves on this run's
 * levels and metric (located error); called by mfi_check_select once the metric is known. */
int mfi_check_robustness_baseline(experiment *e, mf_error *err);

/* ---------------------------------------------------------------- optimisation (brief "optim") */
extern const mf_param_spec mfi_schedule_specs[]; /* optim.schedule (experiment_specs.c) */
/* optim_config.c: read the optim section (and train.accumulate) once the model's parameters
 * exist: e->optim, the schedule, clipping, lr_scale (a key matching no parameter is a
 * located error). May be called again: it frees what an earlier call allocated. */
int mfi_optim_configure(experiment *e, mf_error *err);
/* One optimiser step: the rate from the schedule at `step` (from 0), gradients averaged over
 * e->accum_batches and clipped (optim.clip_grad_norm), lr_scale applied, mf_optim_step.
 * Returns the global gradient norm before clipping, of the averaged gradients (NaN or Inf
 * when a gradient is not finite). */
double mfi_optim_update(experiment *e, int64_t step, int64_t steps_per_epoch,
                        int64_t total_steps);
/* The base learning rate the last step used (before lr_scale). */
double mfi_optim_lr(const experiment *e);
/* Frees what mfi_optim_configure allocated (for experiment_free). */
void mfi_optim_free(experiment *e);
/* optim.c: ‖g‖₂ in the order mf_optim_step sums it; clip_grad_norm_'s coefficient (1 when
 * max_norm ≤ 0 or the norm is not finite). */
double mfi_params_grad_norm(mf_params *ps);
double mfi_clip_coef(double norm, double max_norm);

/* ---------------------------------------------------------------- tracking (brief "tracking") */
/* tracking.c: the used plugins' files against the config's plugins.files: one warning line
 * on stderr per plugin whose file or SHA-256 changed (recorded in manifest.json). Call
 * once validation has resolved the plugins. */
void mfi_track_check_plugins(experiment *e);
/* The path values e->opts' -o overrides set (whatever a path parameter is to config.yaml:
 * flagged MF_PARAM_PATH or, for older plugins, named so) made absolute against the working
 * folder: the host's keys (plugin_part 0, before the plugins load), then the used plugins'
 * (1, after validation). For inference, whose config resolves from the run folder. -1: out
 * of memory. */
int mfi_track_absolutize_overrides(experiment *e, int plugin_part);
/* The run folder's config.yaml (reproducible from anywhere: absolute data paths, the used
 * plugins' folders and files) and manifest.json; nothing when e->run is NULL. */
int mfi_track_start(experiment *e, mf_error *err);
/* manifest.json's object (a new reference): versions, plugins, host, seed, threads. */
json_t *mfi_track_manifest(experiment *e);
/* The used plugins whose file or hash differs from plugins.files (manifest.json's
 * plugins_changed; [] when none): for a resumed run's events, whose manifest stays. */
json_t *mfi_track_changed_plugins(experiment *e);

/* The exit status for a failure: running out of memory is the machine's failure, not the
 * input's, wherever it was noticed (validation, data set-up), so MF_EXIT_BAD_INPUT becomes
 * MF_EXIT_FAILED when err says so. */
int mfi_exit_status(int status, const mf_error *err);

#endif
