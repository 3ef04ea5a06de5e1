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
     "Plugin folders searched after MMFUSE_PLUGIN_PATH, relative to this file."},
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
    {"views", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Modalities carved out of a reader's modality: name → {from, axis, start, length} "
     "(channels of an image, a band range, image halves)."},
    {"standardize", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Scale every feature to zero mean and unit variance, fitted on the training split only "
     "(token ids are left alone); saved in the run folder. Regression targets too: the model "
     "predicts standardised targets, metrics (mse, mae) are in the data's units."},
    {"prefetch", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Read the next batch in a second thread while the current one computes."},
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
    MF_PARAM_END,
};
const mf_param_spec mfi_robustness_specs[] = {
    {"drop", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Modalities to drop one at a time (replaced by zeros: the training mean)."},
    {"noise", MF_TYPE_FLOAT_LIST, "[]", MF_PARAM_MIN, 0, 0, NULL,
     "Gaussian noise levels σ, added to one modality at a time (in standardised units; "
     "token inputs are left out)."},
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
    {"type", MF_TYPE_ENUM, "adam", 0, 0, 0, MF_OPTIM_CHOICES, "Update rule."},
    {"lr", MF_TYPE_FLOAT, "1.0e-3", MF_PARAM_MIN, 0, 0, NULL, "Learning rate."},
    {"weight_decay", MF_TYPE_FLOAT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "L2 penalty (adam, sgd) or decoupled decay (adamw); biases, norms, tokens and "
     "temperatures are exempt (MF_NO_DECAY, as open_clip and timm exempt them)."},
    {"betas", MF_TYPE_FLOAT_LIST, "[0.9, 0.999]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.999999, NULL,
     "Adam's moving-average coefficients."},
    {"eps", MF_TYPE_FLOAT, "1.0e-8", MF_PARAM_MIN, 0, 0, NULL, "Adam's denominator term."},
    {"momentum", MF_TYPE_FLOAT, "0.9", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL, "SGD momentum."},
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
     "Stop after this many epochs without a better selected metric; 0 never stops early."},
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
    {"train", "The training loop; the model kept is the one of the best selected validation "
              "metric (train.select).",
     mfi_train_specs},
    {"data.views.<name>", "A modality carved out of one of the reader's: a slice along one "
                          "per-sample axis. List it in data.modalities (or leave that empty: "
                          "then the views are used, when there are any).",
     mfi_view_specs},
    {"eval", "What is measured on the test split after training.", mfi_eval_specs},
    {"eval.robustness", "Each modality dropped, and each noise level added to each modality, "
                        "one at a time; test accuracy for each.",
     mfi_robustness_specs},
    {NULL, NULL, NULL},
};

const mf_section_doc *mf_experiment_sections(void)
{
    return sections;
}
