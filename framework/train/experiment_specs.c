/* The host's sections of an experiment file: keys, types, defaults and their docs (for
 * validation, `mmfuse reference` and docs/yaml-reference.md). */
#include <mmfuse/host.h>

#include "experiment_internal.h"

const mf_param_spec mfi_top_specs[] = {
    {"name", MF_TYPE_STRING, "experiment", 0, 0, 0, NULL, "Name of the experiment."},
    {"seed", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Seed of initialisation, shuffling and the validation split."},
    {"threads", MF_TYPE_INT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1024, NULL,
     "Threads for matrix products and parallel loops; 0 uses every core. The environment "
     "variable MMFUSE_THREADS overrides it."},
    {"plugins", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "Where to find plugins."},
    {"runs", MF_TYPE_STRING, "runs", 0, 0, 0, NULL,
     "Folder of run folders (<runs>/<name>/<timestamp>), relative to the working directory."},
    {"sweep", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "A grid for mmfuse sweep: key path (model.fusion.type, or nested maps) → list of values "
     "(seed included); mmfuse run ignores it."},
    {"data", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The dataset reader and batching."},
    {"model", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "Encoders, fusion and head."},
    {"loss", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL,
     "The training objective: one loss {type: …}, or a list of them, each with a `weight`, "
     "summed."},
    {"optim", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "The optimiser."},
    {"train", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "The training loop."},
    {"eval", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "Evaluation after training."},
    MF_PARAM_END,
};
const mf_param_spec mfi_plugins_specs[] = {
    {"path", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Plugin folders searched after MMFUSE_PLUGIN_PATH, relative to this file. A run folder's "
     "config.yaml lists the (absolute) folders of the plugins the run used, so it finds them "
     "again without MMFUSE_PLUGIN_PATH."},
    {"files", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "The plugin files a run used, as its config.yaml records them: <kind>.<name> → {file, "
     "sha256, version} (fusion.labgmu: {file: /lab/labgmu.so, sha256: 3f…}). Running such a "
     "file again warns, one line per plugin, when a used plugin's file or SHA-256 differs; "
     "the run goes on (a fixed plugin is legitimate) and manifest.json records the change."},
    MF_PARAM_END,
};
const mf_param_spec mfi_data_specs[] = {
    {"reader", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The dataset plugin."},
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Modalities to use, in this order; [] uses all the reader has."},
    {"batch_size", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 20, NULL,
     "Samples per training batch."},
    {"val_fraction", MF_TYPE_FLOAT, "0.1", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.9, NULL,
     "Share of the training split held out for validation when the data has no validation split."},
    {"augment", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Random flips and quarter turns of the image inputs of each training sample, the same "
     "for every modality of the sample (see data.augment)."},
    {"views", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Modalities carved out of a reader's modality: name → {from, axis, start, length} "
     "(channels of an image, a band range, image halves)."},
    {"standardize", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Scale every feature to zero mean and unit variance, fitted on the training split only "
     "(token ids are left alone); saved in the run folder. Regression targets too: the model "
     "predicts standardised targets, metrics (mse, mae) are in the data's units."},
    {"prefetch", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Read the next batch in a second thread while the current one computes."},
    {"shuffle", MF_TYPE_ENUM, "auto", 0, 0, 0, "auto|full|chunks",
     "How each epoch orders the training samples (from the seed and the epoch): auto, chunks "
     "when the reader reads a chunked file batch by batch (hdf5: larger than preload_mb), "
     "else full; full, a uniform shuffle; chunks, for chunked files larger than memory (whose "
     "random reads cost a "
     "whole chunk each): the chunks of data.chunk_size samples in a shuffled order, each "
     "chunk's samples spread at random over data.shuffle_buffer samples' worth of positions "
     "(a shuffle buffer, as tf.data's), so a batch reads from a few chunks only."},
    {"chunk_size", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Samples per chunk for shuffle: chunks: the file's chunk length along the samples axis "
     "(h5py: dataset.chunks[0]); 0, the reader's (hdf5 knows it), else 1024."},
    {"shuffle_buffer", MF_TYPE_INT, "8192", MF_PARAM_MIN, 1, 0, NULL,
     "Samples mixed together for shuffle: chunks, rounded up to whole chunks; the reader's "
     "chunk cache (hdf5: cache_mb) should hold that many samples of each modality, and two "
     "chunks more."},
    MF_PARAM_END,
};
const mf_param_spec mfi_view_specs[] = {
    {"from", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The reader's modality."},
    {"axis", MF_TYPE_INT, NULL, MF_PARAM_REQUIRED | MF_PARAM_MIN, 0, 0, NULL,
     "Per-sample axis to slice (0 = the first axis after the batch)."},
    {"start", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL, "First index kept on that axis."},
    {"length", MF_TYPE_INT, NULL, MF_PARAM_REQUIRED | MF_PARAM_MIN, 1, 0, NULL,
     "How many indices are kept."},
    MF_PARAM_END,
};
const mf_param_spec mfi_eval_specs[] = {
    {"robustness", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Test-set evaluation under corrupted inputs, after training."},
    {"retrieval", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Two modalities whose embeddings are matched against each other over a whole split "
     "(R@1/5/10 both ways, median rank); [] picks the two modalities of a model without "
     "fusion, when their embeddings are vectors of one width."},
    {"similarity", MF_TYPE_ENUM, "auto", 0, 0, 0, "auto|cosine|dot",
     "What retrieval ranks candidates by: cosine similarity, or the raw dot product of the "
     "embeddings; auto follows the losses: dot when a loss has `normalize: false` (clip, "
     "siglip trained on raw dot products), else cosine. (Under model.normalize both are "
     "the same.)"},
    {"top_k", MF_TYPE_INT_LIST, "[]", MF_PARAM_MIN, 1, 0, NULL,
     "Top-k accuracies to measure besides accuracy (top-1), each k below the class count: "
     "[5] adds the metric top5 (the true class among the 5 best scores)."},
    MF_PARAM_END,
};
const mf_param_spec mfi_robustness_specs[] = {
    {"drop", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Modalities to drop one at a time (replaced by model.missing's value: zeros, the training "
     "mean, or the learned marker); [all]: each modality in use."},
    {"noise", MF_TYPE_FLOAT_LIST, "[]", MF_PARAM_MIN, 0, 0, NULL,
     "Gaussian noise levels σ, strictly increasing, added to one modality at a time (in "
     "standardised units; token inputs are left out)."},
    {"default_noise", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "With `noise` empty: MultiBench's levels 0, 0.1, …, 0.9 (with `drop: [all]`, its whole "
     "protocol)."},
    {"baseline", MF_TYPE_STRING, "\"\"", MF_PARAM_PATH, 0, 0, NULL,
     "A late-fusion run's folder or its result.json (relative to this file), evaluated on the "
     "same noise levels and metric: its curves give each modality's effective robustness. "
     "Without it effective robustness is not reported."},
    MF_PARAM_END,
};
const mf_param_spec mfi_model_specs[] = {
    {"encoders", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL,
     "One encoder per modality: modality name → {type: …, its parameters}."},
    {"fusion", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL,
     "The fusion operator, or `none` (dual encoders: the loss reads each modality's "
     "embedding)."},
    {"head", MF_TYPE_MAP, "{type: mlp}", 0, 0, 0, NULL,
     "Maps the fused features to the outputs the task needs — class logits, or the target's "
     "width for regression (an encoder plugin); `none` for no head (late fusion of "
     "per-modality logits, or a loss that reads embeddings). Without a fusion there is no "
     "head."},
    {"missing", MF_TYPE_ENUM, "zeros", 0, 0, 0, "zeros|learned",
     "What the encoders see for a missing (dropped) modality: zeros (the training mean), or a "
     "learned marker per modality (model.missing.<modality>, trained by "
     "train.modality_dropout)."},
    {"normalize", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "L2-normalise each encoder's output, a vector (D) per sample, to unit length (x / "
     "max(‖x‖, 1e-12), torch.nn.functional.normalize) before the fusion, or before the loss "
     "without one; encoders must output vectors. What eval.retrieval and mmfuse embed see too."},
    MF_PARAM_END,
};
const mf_param_spec mfi_module_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The plugin's name."},
    MF_PARAM_END,
};
const mf_param_spec mfi_encoder_specs[] = {
    {"type", MF_TYPE_STRING, NULL, 0, 0, 0, NULL,
     "The plugin's name (required unless `share` is given)."},
    {"share", MF_TYPE_STRING, NULL, 0, 0, 0, NULL,
     "Use the encoder of this other modality — the same parameters — instead of a new one; "
     "both inputs must have the same shape."},
    MF_PARAM_END,
};
const mf_param_spec mfi_loss_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The plugin's name."},
    {"weight", MF_TYPE_FLOAT, "1", MF_PARAM_MIN, 0, 0, NULL,
     "The loss's factor in the sum of the losses."},
    MF_PARAM_END,
};
const mf_param_spec mfi_optim_specs[] = {
    {"type", MF_TYPE_ENUM, "adam", 0, 0, 0, MF_OPTIM_CHOICES,
     "Update rule: torch.optim.Adam (weight decay as an L2 term), AdamW (decoupled decay) or "
     "SGD (momentum, dampening 0)."},
    {"lr", MF_TYPE_FLOAT, "1.0e-3", MF_PARAM_MIN, 0, 0, NULL,
     "Base learning rate; optim.schedule multiplies it at every step, optim.lr_scale per "
     "module (torch's lr)."},
    {"weight_decay", MF_TYPE_FLOAT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "L2 penalty (adam, sgd) or decoupled decay (adamw), times each parameter's rate as in "
     "torch; biases, norms, tokens and temperatures are exempt (MF_NO_DECAY, as open_clip and "
     "timm exempt them)."},
    {"betas", MF_TYPE_FLOAT_LIST, "[0.9, 0.999]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.999999, NULL,
     "Adam's moving-average coefficients (torch's betas)."},
    {"eps", MF_TYPE_FLOAT, "1.0e-8", MF_PARAM_MIN, 0, 0, NULL,
     "Adam's denominator term (torch's eps)."},
    {"momentum", MF_TYPE_FLOAT, "0.9", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "SGD momentum (torch's momentum; 0 is plain SGD)."},
    {"nesterov", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "SGD with Nesterov momentum (torch's nesterov=True); needs momentum > 0."},
    {"lr_scale", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Learning-rate factors by module path, e.g. {model.encoders.rgb: 0.1} for a pretrained "
     "encoder: the longest key that is a dot-separated prefix of a parameter's name decides "
     "its factor (1 otherwise), on its rate and so its weight decay (torch's param groups)."},
    {"schedule", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "How the learning rate changes over training: {type: constant|step|cosine|linear, "
     "warmup, unit, …} (see optim.schedule)."},
    {"clip_grad_norm", MF_TYPE_FLOAT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Clip the gradients by their global L2 norm to at most this before each step "
     "(torch.nn.utils.clip_grad_norm_); 0 does not clip."},
    MF_PARAM_END,
};
const mf_param_spec mfi_schedule_specs[] = {
    {"type", MF_TYPE_ENUM, "constant", 0, 0, 0, MF_LR_SCHEDULE_CHOICES,
     "constant; step (StepLR: times gamma every step_size units); cosine (CosineAnnealingLR "
     "to the end of training); linear (LinearLR: decay to the end of training)."},
    {"unit", MF_TYPE_ENUM, "steps", 0, 0, 0, "steps|epochs",
     "What warmup, step_size and the schedule count: optimiser steps, or epochs (the rate "
     "then changes at epoch boundaries, as torch's scheduler.step() once an epoch)."},
    {"warmup", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Units of linear warm-up before the schedule (torch's LinearLR then SequentialLR, "
     "open_clip's and timm's warmup); the schedule runs over the units after it."},
    {"warmup_start", MF_TYPE_FLOAT, NULL, MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "The factor of the first warm-up unit, rising linearly to 1 (LinearLR's start_factor, "
     "timm's warmup_lr_init / lr); default 0."},
    {"step_size", MF_TYPE_INT, NULL, MF_PARAM_MIN, 1, 0, NULL,
     "step: units between decays (StepLR's step_size); required by it."},
    {"gamma", MF_TYPE_FLOAT, NULL, MF_PARAM_MIN, 0, 0, NULL,
     "step: the factor at each decay (StepLR's gamma); default 0.1."},
    {"min_lr", MF_TYPE_FLOAT, NULL, MF_PARAM_MIN, 0, 0, NULL,
     "cosine, linear: the rate at the end (CosineAnnealingLR's eta_min, timm's min_lr); "
     "default 0. Modules with an lr_scale end at min_lr times it."},
    {"min_factor", MF_TYPE_FLOAT, NULL, MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "cosine, linear: the end rate as a fraction of lr (LinearLR's end_factor); instead of "
     "min_lr."},
    MF_PARAM_END,
};
const mf_param_spec mfi_train_specs[] = {
    {"epochs", MF_TYPE_INT, "10", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1000000, NULL,
     "Passes over the training split."},
    {"modality_dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.9, NULL,
     "Probability that a modality of a training sample is replaced by its missing value "
     "(model.missing), each modality and sample drawn independently."},
    {"select", MF_TYPE_STRING, "auto", 0, 0, 0, NULL,
     "The metric the kept model is chosen on, stopped early on and reported by: val.<metric> "
     "(val.accuracy, val.loss, val.r@1, val.mse, val.macro_f1, a loss's own metric …); auto: "
     "val.accuracy for classifiers, val.mse for regression, val.r@1 for dual encoders, else "
     "val.loss."},
    {"patience", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Stop after this many validations (epochs, unless train.val_every) without a better "
     "selected metric; 0 never stops early."},
    {"mode", MF_TYPE_ENUM, "auto", 0, 0, 0, "auto|min|max",
     "Whether a smaller (min) or larger (max) selected metric is better; auto knows it for "
     "every metric mmfuse and the loss plugins declare."},
    {"steps", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Optimiser steps to train for, epochs continuing as long as needed; 0 trains for "
     "train.epochs epochs."},
    {"val_every", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "Validate (select, stop early, checkpoint) every this many optimiser steps, and at the "
     "end; 0 validates at the end of every epoch."},
    {"checkpoint", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Save checkpoints/last.h5 at every validation and checkpoints/best.h5 when the selected "
     "metric improves (what --resume, --init-from and mmfuse eval read)."},
    {"checkpoint_every", MF_TYPE_FLOAT, "10", MF_PARAM_MIN, 0, 0, NULL,
     "Seconds at least between checkpoints: at a validation this long after the last one, and "
     "always at the end (0: at every validation). A killed run resumes from the last one, "
     "losing at most this much work; writing them at every validation of a fast run would "
     "cost more than its training."},
    {"accumulate", MF_TYPE_INT, "1", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 20, NULL,
     "Batches whose gradients are averaged into one optimiser step (gradient accumulation: "
     "torch's loss / N with optimizer.step() every N batches)."},
    {"bucket_mb", MF_TYPE_FLOAT, "25", MF_PARAM_MIN, 0, 0, NULL,
     "Under MPI data parallelism: the gradients are summed over the ranks in buckets of about "
     "this many MiB, each started while backward still runs, as soon as its parameters' "
     "gradients are final (torch DDP's bucket_cap_mb). Gradients that fit one bucket, or 0, "
     "are summed once after backward (one blocking all-reduce). Ignored in one process."},
    MF_PARAM_END,
};

static const mf_section_doc sections[] = {
    {"", "The top level of an experiment file.", mfi_top_specs},
    {"plugins", "Where to look for plugins besides MMFUSE_PLUGIN_PATH and the built-in folder.",
     mfi_plugins_specs},
    {"data", "The dataset: the host's keys below, plus the parameters of the reader named by "
             "`reader` (see its section under *Plugins*).",
     mfi_data_specs},
    {"model", "inputs → encoders (one per modality) → fusion → head.", mfi_model_specs},
    {"model.encoders.<modality>", "One per modality used: `type` names an encoder plugin; the "
                                  "plugin's parameters sit beside it. Or `share: <modality>`.",
     mfi_encoder_specs},
    {"model.fusion", "`type` names a fusion plugin; its parameters sit beside it.", mfi_module_specs},
    {"model.head", "`type` names an encoder plugin, asked to output the class count (or the "
                   "regression target's width).",
     mfi_module_specs},
    {"loss", "`type` names a loss plugin; its parameters sit beside it. A list of such maps "
             "sums them, each times its `weight`.",
     mfi_loss_specs},
    {"optim", "The optimiser (torch.optim's update rules).", mfi_optim_specs},
    {"optim.schedule", "How the learning rate changes over training (torch.optim.lr_scheduler).",
     mfi_schedule_specs},
    {"train", "The training loop; the model kept is the one of the best selected validation "
              "metric (train.select).",
     mfi_train_specs},
    {"data.views.<name>", "A modality carved out of one of the reader's: a slice along one "
                          "per-sample axis. List it in data.modalities (or leave that empty: "
                          "then the views are used, when there are any).",
     mfi_view_specs},
    {"data.augment", "Training-time augmentation of image inputs, (C,H,W) per sample: the "
                     "same random flips and quarter turn for every modality of a sample (so "
                     "co-registered bands stay registered), drawn from the seed and the count "
                     "of training steps, applied before standardisation; validation and test "
                     "data are never augmented.",
     mfi_augment_specs},
    {"eval", "What is measured on the test split after training.", mfi_eval_specs},
    {"eval.robustness", "Each modality dropped, and each noise level added to each modality, "
                        "one at a time: the selected metric on the test split for each, the "
                        "area under each noise curve (relative robustness) and, against a "
                        "late-fusion baseline, effective robustness (MultiBench's).",
     mfi_robustness_specs},
    {NULL, NULL, NULL},
};

const mf_section_doc *mf_experiment_sections(void)
{
    return sections;
}
