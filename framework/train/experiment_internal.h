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
#include "rundir.h"

#define MAX_MODALITIES 16
#define MAX_GRAPHS 4 /* (full batch, last partial batch) × (train, eval) */
#define MAX_LOSSES 8
#define MAX_METRICS 64

/* ---------------------------------------------------------------- specs (experiment_specs.c) */
extern const mf_param_spec mfi_top_specs[], mfi_plugins_specs[], mfi_data_specs[],
    mfi_view_specs[], mfi_eval_specs[], mfi_robustness_specs[], mfi_model_specs[],
    mfi_module_specs[], mfi_encoder_specs[], mfi_loss_specs[], mfi_optim_specs[],
    mfi_train_specs[];

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

    int64_t seed, batch_size, epochs, threads, patience;
    const char *select;               /* "val.accuracy", … */
    double modality_dropout;
    int learned_missing, with_missing; /* model.missing; whether graphs take missing masks */
    mf_param *marker[MAX_MODALITIES];  /* learned missing markers, numel(input) each */
    mf_module *markers;                /* their owner ("model.missing") */
    mf_rng dropout_rng;
    double val_fraction;
    mf_optim optim;
    int retrieval[2];                  /* modalities compared by retrieval metrics, or -1 */
    mf_loss_metrics loss_metrics[MAX_LOSSES];
    json_t *details;                   /* result.json's sections beyond the scalar metrics
                                          (confusion matrix, per class, robustness) */
} experiment;

/* A section of the experiment (validated: the cast only drops const for mf_config_check). */
mf_config *mfi_section(experiment *e, const char *key);
/* `none` or null in place of a module section: that part of the model is absent. */
int mfi_section_is_none(const mf_config *n);

/* experiment_data.c */
int mfi_open_data(experiment *e, mf_error *err);
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
/* The metrics of a pass over validation (or training) data, for train.select. */
void mfi_metric_names(const experiment *e, mfi_metric_table *out);
/* The value of `name` in a table, NAN when absent. */
double mfi_metric_get(const mfi_metric_table *t, const char *name);
/* Check train.select against what this model measures (located error). */
int mfi_check_select(experiment *e, mf_error *err);
/* The default of train.select for this model. */
const char *mfi_default_select(const experiment *e);

/* trainer.c */
/* One pass of the loop: the experiment, its meter, the hooks and where training is. */
typedef struct mfi_pass {
    experiment *e;
    mfi_meter *meter;
    const mf_train_hooks *hooks;
    int64_t step;              /* optimiser steps so far */
    int epoch;
} mfi_pass;

int mfi_train(experiment *e, mf_run_result *res, mf_error *err);
/* One pass over a split: train (optimiser steps) or evaluate; the meter holds its metrics.
 * `rng` draws evaluation noise (the robustness transforms), NULL otherwise. */
int mfi_run_pass(mfi_pass *p, mfi_loader *loader, int training, mf_rng *rng, mf_error *err);

/* robustness.c: eval.robustness on the test split; the clean metrics given. Adds its
 * figures to `details` (result.json) and writes robustness.csv in the run folder. */
int mfi_evaluate_robustness(mfi_pass *p, mfi_loader *test, const mfi_metric_table *clean,
                            json_t *details, mf_error *err);

#endif
