/* mmfuse/host.h — the host side: loading plugins, instantiating them, running experiments.
 * The `mmfuse` executable is a thin layer over these; an embedding program (a notebook
 * binding, a test) uses the same calls. Plugins never need this header.
 */
#ifndef MMFUSE_HOST_H
#define MMFUSE_HOST_H

#include <stdio.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- plugin registry */
/* Plugins found on the search path, each from the first file that provides its name.
 * Loading a bad file never stops the others: each refusal is kept as one sentence naming
 * the file and the reason. */
typedef struct mf_registry mf_registry;

MF_API mf_registry *mf_registry_new(void);
/* Closes the plugin files: every module and dataset made from them must be gone. */
MF_API void mf_registry_free(mf_registry *reg);
/* Load every "*.so" in dir, in name order. -1 (with the reason) when dir can't be read. */
MF_API int mf_registry_add_dir(mf_registry *reg, const char *dir, mf_error *err);
/* Load one file; -1 when it is refused as a whole or any of its plugins is refused
 * (the acceptable plugins of a bundle still load). */
MF_API int mf_registry_add_file(mf_registry *reg, const char *path, mf_error *err);
/* Add MMFUSE_PLUGIN_PATH's folders (':'-separated), then `extra` (NULL-terminated, may be
 * NULL: the experiment's plugins.path), then the default folder (build tree or installed). */
MF_API int mf_registry_add_search_path(mf_registry *reg, const char *const *extra, mf_error *err);
/* The folder built-in plugins load from: the build tree's when this library runs from it. */
MF_API const char *mf_default_plugin_dir(void);

/* Files are scanned apart from the host (their constructors and mf_plugin_list() run in a
 * child process; a file that crashes, aborts, exits or hangs there is refused, naming what
 * happened) and remembered in a cache (docs/plugins.md); the host loads a file only when one
 * of its plugins is asked for through mf_registry_at or mf_registry_find. */
MF_API int mf_registry_count(const mf_registry *reg);
MF_API const mf_plugin *mf_registry_at(const mf_registry *reg, int i, const char **file);
/* Plugin i as its scan described it, without loading its file: every field but ops (NULL). */
MF_API const mf_plugin *mf_registry_scanned(const mf_registry *reg, int i, const char **file);
/* kind 0 matches any kind. */
MF_API const mf_plugin *mf_registry_find(const mf_registry *reg, int kind, const char *name,
                                         const char **file);
/* The names of plugins of a kind, NULL-terminated (valid until the registry changes). */
MF_API const char *const *mf_registry_names(mf_registry *reg, int kind);
MF_API int mf_registry_refusal_count(const mf_registry *reg);
MF_API const char *mf_registry_refusal(const mf_registry *reg, int i);

/* ---------------------------------------------------------------- instances */
/* A module (encoder, fusion, loss) named by path, registering parameters into `store`.
 * plugin may be NULL for a bare module that only names and holds parameters. */
MF_API mf_module *mf_module_new(const mf_plugin *plugin, const char *path, mf_params *store,
                                mf_error *err);
MF_API const mf_plugin *mf_module_plugin(const mf_module *m);
/* Encoders and fusion operators. */
MF_API int mf_module_build(mf_module *m, const mf_config *cfg, const mf_build_args *args,
                           mf_shape *out, mf_error *err);
MF_API mf_node *mf_module_forward(mf_module *m, mf_graph *g, int n_in, mf_node *const *in);
/* Losses. */
/* ABI 1.0 style: the loss reads only its section (a 1.1 loss gets empty build args). */
MF_API int mf_module_build_loss(mf_module *m, const mf_config *cfg, mf_error *err);
/* The model's shapes for the loss to check: build_model for a 1.1 loss, build for a 1.0 one. */
MF_API int mf_module_build_loss_model(mf_module *m, const mf_config *cfg,
                                      const mf_loss_build_args *args, mf_error *err);
MF_API mf_node *mf_module_loss(mf_module *m, mf_graph *g, const mf_loss_inputs *in);
/* The metrics a loss declares (n = 0 when none), and their values for the last forward. */
MF_API void mf_module_loss_metrics(mf_module *m, mf_loss_metrics *out);
MF_API void mf_module_loss_batch_metrics(mf_module *m, const mf_loss_inputs *in, double *values);
MF_API void mf_module_free(mf_module *m);

/* base_dir: where relative paths in cfg are resolved from (the experiment file's folder). */
MF_API mf_dataset *mf_dataset_open(const mf_plugin *plugin, const mf_config *cfg,
                                   const char *base_dir, mf_error *err);
MF_API const mf_dataset_info *mf_dataset_get_info(const mf_dataset *ds);
MF_API int mf_dataset_read(mf_dataset *ds, int64_t n, const int64_t *idx,
                           const mf_batch_buffers *out, mf_error *err);
/* Tell the reader that samples idx[0..n) come soon (its will_read; nothing when it has none). */
MF_API void mf_dataset_will_read(mf_dataset *ds, int64_t n, const int64_t *idx);
MF_API void mf_dataset_close(mf_dataset *ds);

/* ---------------------------------------------------------------- experiments */
/* Exit statuses of the command line and of mf_experiment_run. */
enum { MF_EXIT_OK = 0, MF_EXIT_FAILED = 1, MF_EXIT_BAD_INPUT = 2 };

typedef struct mf_run_options {
    uint32_t struct_size;
    int n_overrides;
    const char *const *overrides;  /* "key.path=value" */
    FILE *log;                     /* progress lines; NULL: stdout */
    int quiet;                     /* only the final result line */
    const char *run_dir;           /* the run's folder; NULL: <runs>/<name>/<timestamp> */
    int no_save;                   /* write no run folder */
    int validate_only;             /* check everything (config, plugins, data, model), run nothing */
    const struct mf_train_hooks *hooks; /* the training loop's hooks, or NULL */
    /* appended in 0.2 (struct_size tells): */
    const char *resume;            /* a run folder, or "latest": continue it from its last
                                      checkpoint, bit for bit; the path argument then only
                                      serves "latest" (NULL allowed otherwise) */
    const char *init_from;         /* a checkpoint: load the parameters it has by module path */
    /* appended in 0.3: */
    int force;                     /* load a checkpoint (resume, init_from) whose recorded
                                      plugins differ from the experiment's, with a warning */
} mf_run_options;

/* The training loop's hooks: where checkpoints, schedules and distributed training attach.
 * Each is optional; a non-zero return stops the run (status MF_EXIT_FAILED, with the
 * hook's message from `err` when it gave one). */
typedef struct mf_train_state {
    uint32_t struct_size;
    int epoch;                     /* from 0 */
    int64_t step;                  /* optimiser steps taken so far */
    mf_graph *graph;               /* this step's graph (after_backward, after_step) */
    mf_params *params;             /* values, gradients and optimiser state */
    mf_optim *optim;
    double loss;                   /* this batch's (after_backward, after_step) */
    int n_metrics;                 /* end_of_epoch: the validation pass's metrics */
    const char *const *metric_names;
    const double *metric_values;
} mf_train_state;

typedef struct mf_train_hooks {
    uint32_t struct_size;
    void *user;
    /* gradients are in the store; before the optimiser (an all-reduce goes here) */
    int (*after_backward)(void *user, const mf_train_state *st, mf_error *err);
    int (*after_step)(void *user, const mf_train_state *st, mf_error *err);
    int (*end_of_epoch)(void *user, const mf_train_state *st, mf_error *err);
} mf_train_hooks;

typedef struct mf_run_result {
    int epochs_run;
    double final_train_loss;
    double best_val_accuracy;
    double test_accuracy;          /* at the best validation epoch */
    double seconds;
    int best_epoch;                /* from 1 */
    double test_macro_f1;
    double data_wait;              /* share of training time spent waiting for batches */
    char run_dir[4096];            /* where the run was saved ("" when not) */
    /* the metric the model was selected on (train.select, e.g. "val.r@1") */
    char select[64];
    double best_val_metric;        /* its best validation value */
    int select_higher_is_better;
    double test_metric;            /* its value on the test split at that epoch */
    /* every metric of the test pass at the kept epoch ("accuracy", "r@1", …) */
#define MF_RUN_MAX_METRICS 32
    int n_test_metrics;
    char test_metric_names[MF_RUN_MAX_METRICS][64];
    double test_metrics[MF_RUN_MAX_METRICS];
    /* and of the validation pass at that epoch (same names) */
    int n_val_metrics;
    double val_metrics[MF_RUN_MAX_METRICS];
} mf_run_result;

/* The host's sections of an experiment file, for documentation: "" is the top level;
 * "model.encoders.<modality>", "model.fusion", "model.head" and "loss" take `type` plus
 * the named plugin's parameters, "data" its own keys plus the reader's. NULL-terminated. */
typedef struct mf_section_doc {
    const char *key;
    const char *doc;
    const mf_param_spec *specs;
} mf_section_doc;
MF_API const mf_section_doc *mf_experiment_sections(void);

/* Load, validate and run one experiment file. Returns an MF_EXIT_* status; on failure err
 * holds the reasons (one per line). Started by an MPI launcher (`mpirun -np N`, `srun`) in
 * a build with MPI, the N processes train one model data-parallel (docs/distributed.md):
 * each reads its part of every batch, rank 0 writes the run folder and prints; every rank
 * returns the same status and message (a rank that fails mid-run ends them all). */
MF_API int mf_experiment_run(const char *path, const mf_run_options *opts, mf_run_result *res,
                             mf_error *err);
/* This process's rank among those an MPI launcher started (0 when none did): the others
 * leave printing to rank 0. */
MF_API int mf_distributed_rank(void);

/* ---------------------------------------------------------------- a trained model */
/* What a finished (or stopped) run's model is used for: its metrics on a split (eval), one
 * prediction per sample (predict: CSV), or each modality's and the fused embeddings (embed:
 * HDF5). The run's config.yaml rebuilds the model, its checkpoint fills it, and the
 * standardisation fitted in training (kept in the checkpoint) is applied — also to another
 * data file given by an override (transfer). */
typedef enum mf_infer_kind { MF_INFER_EVAL, MF_INFER_PREDICT, MF_INFER_EMBED } mf_infer_kind;

typedef struct mf_infer_options {
    uint32_t struct_size;
    mf_infer_kind kind;
    const char *run_dir;
    const char *split;             /* "test" (NULL), "val" or "train" */
    const char *checkpoint;        /* "best" (NULL), "last", or a checkpoint file */
    int n_overrides;               /* applied to the run's config.yaml ("data.path=…");
                                    * a relative path value is taken from the working folder */
    const char *const *overrides;
    const char *output;            /* predict: the CSV; embed: the HDF5 file; eval: a JSON file
                                      of the metrics, or NULL (printed only) */
    FILE *log;                     /* NULL: stdout */
    int quiet;
    /* appended in 0.3 (struct_size tells): */
    int force;                     /* load a checkpoint written with other plugins (a warning) */
} mf_infer_options;

MF_API int mf_experiment_infer(const mf_infer_options *opts, mf_error *err);

/* ---------------------------------------------------------------- reports */
/* A self-contained page with inline SVG charts: report.html for a run folder (loss and
 * metric curves, the confusion matrix, robustness, per-class figures), summary.html for a
 * sweep folder (each configuration's mean ± std). *page receives the file's name (may be
 * NULL). MF_EXIT_BAD_INPUT when dir is neither or its files are unreadable, FAILED when it
 * cannot be written. */
MF_API int mf_report_write(const char *dir, const char **page, mf_error *err);

typedef struct mf_report_options {
    size_t struct_size;          /* sizeof(mf_report_options) */
    const char *const *curves;   /* a sweep: metrics.csv columns charted across its points */
    int n_curves;                /* (0: the selected validation metric) */
    const char *svg_dir;         /* also write each chart as svg_dir/<svg_prefix><chart>.svg */
    const char *svg_prefix;
} mf_report_options;

/* mf_report_write with options (NULL: as mf_report_write). */
MF_API int mf_report_write_with(const char *dir, const mf_report_options *opts,
                                const char **page, mf_error *err);

/* Write a dataset file in the layout the `hdf5` reader takes (docs/datasets.md) from a CSV
 * file (RFC 4180; the first row names the columns unless no_header). Columns are listed as
 * 1-based numbers or header names, ranges A-B and stepped ranges A-B/S ("1-33/4,2-34/4").
 * Written to a temporary beside `out`, renamed into place when complete. Returns an MF_EXIT_*
 * status: BAD_INPUT names the file and line or the option, FAILED is a write error. */
typedef struct mf_csv_import {
    uint32_t struct_size;
    const char *csv, *out;
    int n_modalities;
    const char *const *modalities; /* "NAME=COLUMNS[:SHAPE]", e.g. "visible=1-33/4,2-34/4:2x3x3" */
    const char *label;             /* the class column (strings → /classes, sorted), or NULL */
    const char *target;            /* regression target COLUMNS, or NULL; one of label, target */
    const char *split;             /* "rows:1-4435=train,4436-6435=test", "column:NAME", NULL */
    int classes_from_label;        /* integer labels are names too (1,2,3,5,7 → 0…4) */
    int no_header;
    int n_attrs;
    const char *const *attrs;      /* "key=value" provenance attributes on the root */
    FILE *log;                     /* one summary line; NULL: none */
} mf_csv_import;
MF_API int mf_import_csv(const mf_csv_import *opts, mf_error *err);

/* ---------------------------------------------------------------- sweeps */
typedef struct mf_sweep_options {
    uint32_t struct_size;
    int jobs;                      /* points run at once (separate processes); <= 0: 1 */
    int n_overrides;               /* applied to every point, before the point's own */
    const char *const *overrides;
    const char *exe;               /* the mmfuse executable that runs each point */
    FILE *log;                     /* progress; NULL: stdout */
    /* appended in 0.3 (struct_size tells): */
    int validate_only;             /* check every point (mmfuse validate), run nothing */
    /* appended in 0.4: */
    int ranks_per_point;           /* under MPI: each point trains on this many ranks (<= 0: 1) */
} mf_sweep_options;

/* Run every point of the experiment's `sweep:` grid (key path → list of values; `seed`
 * among them) as `mmfuse run FILE -o …` in its own process and folder, `jobs` at a time;
 * skip points already finished; then write summary.md and summary.csv (each metric's mean
 * ± std over seeds per configuration, ranked by validation accuracy) in the sweep's folder.
 * Returns MF_EXIT_OK when every point finished, MF_EXIT_FAILED when some failed (the others
 * still run and are summarised), MF_EXIT_BAD_INPUT for a bad file or grid. */
MF_API int mf_sweep_run(const char *path, const mf_sweep_options *opts, mf_error *err);

/* ---------------------------------------------------------------- conformance */
/* The checks a lab runs before sharing a plugin (mmfuse check-plugin): one line per check
 * on `out`, "PASS|FAIL|SKIP check detail", then "NAME: N passed, M failed" (or "N passed,
 * K skipped, M failed"). Modules and losses are built on every input profile of their kind
 * (vectors, images, token ids with a mask, masked sequences; 2 and 3 modalities of distinct
 * widths; class, value and multi-label targets…); a profile the plugin refuses at build is
 * a SKIP line with its reason, and accepting none is a failure. Returns M. The plugin is
 * configured with its declared defaults (a sample value, named in the lines, for a required
 * parameter), then the "key=value" overrides (a dataset reader's file, say). */
MF_API int mf_check_plugin(const mf_plugin *plugin, const char *file, int n_overrides,
                           const char *const *overrides, FILE *out);

/* ---------------------------------------------------------------- benchmarks */
/* The reference models of shared/bench/README.md (mlp-concat, tensor-fusion, cnn-late,
 * clip-dual) built from the core API and timed step by step as torch_ref.py times PyTorch. */
typedef struct mf_bench_options {
    uint32_t struct_size;
    const char *model;
    int train;          /* 1: zero-grad + forward + loss + backward + Adam; 0: forward */
    int threads;        /* <= 0: mf_default_threads() */
    int steps, warmup;
    uint64_t seed;
    int profile;        /* print per-op times to stderr */
    /* ABI 1.1, appended: other sizes of the reference models, 0 = the reference's. batch for
     * every model; width: mlp-concat's hidden widths (enc1 784-W-W, enc2 64-W-W, head
     * 2W-W-10); seq: xattn-fusion's patches and tokens T (a multiple of 4; the image is
     * 28×(7T/4)). Read only when struct_size covers them. */
    int batch, width, seq;
    /* appended in 0.4: under MPI (`mpirun -np N mmfuse bench`) each rank steps its part,
     * batch/N, of every batch and the gradients are summed (MPI_Allreduce) before the
     * optimiser, as data-parallel training does; the step times are rank 0's. When not
     * NULL, receives what the ranks did. */
    struct mf_bench_ranks *ranks;
} mf_bench_options;

typedef struct mf_bench_ranks {
    uint32_t struct_size;         /* sizeof(mf_bench_ranks) */
    int ranks;                    /* 1 without MPI */
    double allreduce_ms;          /* median of the gradients' sum, per step */
    int64_t allreduce_bytes;      /* what each rank sends in it */
    /* appended in 0.4 (read when struct_size covers them): the sum in buckets of about
     * bucket_mb MiB started during backward, as train.bucket_mb does (0: one sum after
     * backward); allreduce_ms is then the part backward did not hide. buckets: how many. */
    double bucket_mb;
    int buckets;
} mf_bench_ranks;

/* The all-reduce alone (MPI_Allreduce, in place, sum of floats) over the ranks: the median of
 * `reps` sums of n floats, in milliseconds (0 at one rank). For projecting how data
 * parallelism scales from measured message times (docs/distributed.md). */
MF_API int mf_bench_allreduce(int64_t n, int reps, double *median_ms, int *ranks, mf_error *err);

typedef struct mf_bench_result {
    int batch, threads;
    double median_ms, mean_ms, min_ms, p90_ms;
    double samples_per_s;
    int64_t flops_per_step;       /* as torch_ref.py counts them */
    double gflops_at_median;
    int sgemm_calls;              /* matrix products in one step */
    double sgemm_gflops;          /* those products replayed alone */
    double sgemm_fraction;        /* their replay time / the step time */
    int64_t params, graph_bytes;
    long peak_rss_kb;
    double check;                 /* final loss (train) or mean |output| (eval) */
} mf_bench_result;

MF_API int mf_bench_run(const mf_bench_options *opts, mf_bench_result *res, mf_error *err);

#ifdef __cplusplus
}
#endif
#endif
