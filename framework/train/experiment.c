/* mmfuse run: validate an experiment file as a whole, build the model from plugins, train,
 * select on validation accuracy, report test accuracy.
 *
 * inputs (one per modality) → encoders → fusion → head → loss
 */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mmfuse/host.h>

#include "../data/assemble.h"
#include "../data/loader.h"
#include "rundir.h"

#define MAX_MODALITIES 16
#define MAX_GRAPHS 4 /* (full batch, last partial batch) × (train, eval) */

/* ---------------------------------------------------------------- the host's sections */
static const mf_param_spec top_specs[] = {
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
    {"loss", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The training objective."},
    {"optim", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "The optimiser."},
    {"train", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "The training loop."},
    {"eval", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, "Evaluation after training."},
    MF_PARAM_END,
};
static const mf_param_spec plugins_specs[] = {
    {"path", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Plugin folders searched after MMFUSE_PLUGIN_PATH, relative to this file."},
    MF_PARAM_END,
};
static const mf_param_spec data_specs[] = {
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
     "(token ids are left alone); saved in the run folder."},
    {"prefetch", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Read the next batch in a second thread while the current one computes."},
    MF_PARAM_END,
};
static const mf_param_spec view_specs[] = {
    {"from", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The reader's modality."},
    {"axis", MF_TYPE_INT, NULL, MF_PARAM_REQUIRED | MF_PARAM_MIN, 0, 0, NULL,
     "Per-sample axis to slice (0 = the first axis after the batch)."},
    {"start", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL, "First index kept on that axis."},
    {"length", MF_TYPE_INT, NULL, MF_PARAM_REQUIRED | MF_PARAM_MIN, 1, 0, NULL,
     "How many indices are kept."},
    MF_PARAM_END,
};
static const mf_param_spec eval_specs[] = {
    {"robustness", MF_TYPE_MAP, "{}", 0, 0, 0, NULL,
     "Test-set evaluation under corrupted inputs, after training."},
    MF_PARAM_END,
};
static const mf_param_spec robustness_specs[] = {
    {"drop", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Modalities to drop one at a time (replaced by zeros: the training mean)."},
    {"noise", MF_TYPE_FLOAT_LIST, "[]", MF_PARAM_MIN, 0, 0, NULL,
     "Gaussian noise levels σ, added to one modality at a time (in standardised units)."},
    MF_PARAM_END,
};
static const mf_param_spec model_specs[] = {
    {"encoders", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL,
     "One encoder per modality: modality name → {type: …, its parameters}."},
    {"fusion", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The fusion operator."},
    {"head", MF_TYPE_MAP, "{type: mlp}", 0, 0, 0, NULL,
     "Maps the fused features to class logits (an encoder plugin)."},
    {"missing", MF_TYPE_ENUM, "zeros", 0, 0, 0, "zeros|learned",
     "What the encoders see for a missing (dropped) modality: zeros (the training mean), or a "
     "learned marker per modality (model.missing.<modality>, trained by "
     "train.modality_dropout)."},
    MF_PARAM_END,
};
static const mf_param_spec module_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "The plugin's name."},
    MF_PARAM_END,
};
static const mf_param_spec optim_specs[] = {
    {"type", MF_TYPE_ENUM, "adam", 0, 0, 0, MF_OPTIM_CHOICES, "Update rule."},
    {"lr", MF_TYPE_FLOAT, "1.0e-3", MF_PARAM_MIN, 0, 0, NULL, "Learning rate."},
    {"weight_decay", MF_TYPE_FLOAT, "0", MF_PARAM_MIN, 0, 0, NULL,
     "L2 penalty (adam, sgd) or decoupled decay (adamw)."},
    {"betas", MF_TYPE_FLOAT_LIST, "[0.9, 0.999]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.999999, NULL,
     "Adam's moving-average coefficients."},
    {"eps", MF_TYPE_FLOAT, "1.0e-8", MF_PARAM_MIN, 0, 0, NULL, "Adam's denominator term."},
    {"momentum", MF_TYPE_FLOAT, "0.9", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL, "SGD momentum."},
    MF_PARAM_END,
};
static const mf_param_spec train_specs[] = {
    {"epochs", MF_TYPE_INT, "10", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1000000, NULL,
     "Passes over the training split."},
    {"modality_dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.9, NULL,
     "Probability that a modality of a training sample is replaced by its missing value "
     "(model.missing), each modality and sample drawn independently."},
    MF_PARAM_END,
};

static const mf_section_doc sections[] = {
    {"", "The top level of an experiment file.", top_specs},
    {"plugins", "Where to look for plugins besides MMFUSE_PLUGIN_PATH and the built-in folder.",
     plugins_specs},
    {"data", "The dataset: the host's keys below, plus the parameters of the reader named by "
             "`reader` (see its section under *Plugins*).",
     data_specs},
    {"model", "inputs → encoders (one per modality) → fusion → head.", model_specs},
    {"model.encoders.<modality>", "One per modality used: `type` names an encoder plugin; the "
                                  "plugin's parameters sit beside it.",
     module_specs},
    {"model.fusion", "`type` names a fusion plugin; its parameters sit beside it.", module_specs},
    {"model.head", "`type` names an encoder plugin, asked to output the class count.",
     module_specs},
    {"loss", "`type` names a loss plugin; its parameters sit beside it.", module_specs},
    {"optim", "The optimiser (torch.optim's update rules).", optim_specs},
    {"train", "The training loop; the model kept is the one of the best validation accuracy.",
     train_specs},
    {"data.views.<name>", "A modality carved out of one of the reader's: a slice along one "
                          "per-sample axis. List it in data.modalities (or leave that empty: "
                          "then the views are used, when there are any).",
     view_specs},
    {"eval", "What is measured on the test split after training.", eval_specs},
    {"eval.robustness", "Each modality dropped, and each noise level added to each modality, "
                        "one at a time; test accuracy for each.",
     robustness_specs},
    {NULL, NULL, NULL},
};

const mf_section_doc *mf_experiment_sections(void)
{
    return sections;
}

/* ---------------------------------------------------------------- state */
typedef struct model_graph {
    mf_graph *g;
    int64_t batch;
    int training;
    mf_node *input[MAX_MODALITIES], *target, *logits, *loss;
    mf_node *missing[MAX_MODALITIES]; /* (B,F): 1 where the sample's modality is missing */
} model_graph;

typedef struct experiment {
    const char *path;
    char *base_dir;
    mf_config *cfg;
    mf_registry *reg;
    FILE *log;
    int quiet;
    mfi_run_dir *run; /* NULL when nothing is saved */

    const mf_config *data_cfg, *encoder_cfg[MAX_MODALITIES], *fusion_cfg, *head_cfg, *loss_cfg;
    const mf_plugin *reader, *encoder_plugin[MAX_MODALITIES], *fusion_plugin, *head_plugin,
        *loss_plugin;

    mf_dataset *ds;
    const mf_dataset_info *info;
    int n_mod;                        /* model inputs: modalities or views used  */
    mfi_input input[MAX_MODALITIES];
    const char *mod_name[MAX_MODALITIES + 1]; /* NULL-terminated */
    mfi_splits splits;

    int64_t *confusion;               /* K×K counts of the last pass */
    mf_params *params;
    mf_module *encoder[MAX_MODALITIES], *fusion, *head, *loss;
    model_graph graphs[MAX_GRAPHS];
    int n_graphs;

    int64_t seed, batch_size, epochs, threads;
    double modality_dropout;
    int learned_missing, with_missing; /* model.missing; whether graphs take missing masks */
    mf_param *marker[MAX_MODALITIES];  /* learned missing markers, numel(input) each */
    mf_module *markers;                /* their owner ("model.missing") */
    mf_rng dropout_rng;
    double val_fraction;
    mf_optim optim;
} experiment;

/* ---------------------------------------------------------------- validation */
/* Host specs followed by a plugin's, as one table, so that one check sees every allowed key
 * (and suggests among all of them). A plugin may not redeclare a host key. */
static int check_section(mf_config *section, const mf_param_spec *host, const mf_plugin *plugin,
                         mf_error *err)
{
    int nh = 0, np = 0;
    while (host[nh].name)
        nh++;
    while (plugin && plugin->params && plugin->params[np].name)
        np++;
    mf_param_spec *all = calloc((size_t)(nh + np + 1), sizeof *all);
    if (!all) {
        mf_error_set(err, "out of memory");
        return 1;
    }
    memcpy(all, host, (size_t)nh * sizeof *all);
    int n = nh, problems = 0;
    for (int i = 0; i < np; i++) {
        int clash = 0;
        for (int j = 0; j < nh; j++)
            clash |= strcmp(plugin->params[i].name, host[j].name) == 0;
        if (clash) {
            mf_config_error(err, section, "plugin '%s' declares the parameter '%s', a key the "
                            "host reserves here", plugin->name, plugin->params[i].name);
            problems++;
        } else {
            all[n++] = plugin->params[i];
        }
    }
    problems += mf_config_check(section, all, NULL, err);
    free(all);
    return problems;
}

/* Find the plugin that section[key] names; NULL (with the reason) if there is none. */
static const mf_plugin *resolve(experiment *e, const mf_config *section, const char *key,
                                mf_kind kind, mf_error *err)
{
    const mf_config *node = mf_config_get(section, key);
    const char *name = node ? mf_config_scalar(node) : NULL;
    if (!name)
        return NULL; /* reported by the section check */
    const mf_plugin *p = mf_registry_find(e->reg, kind, name, NULL);
    if (p)
        return p;
    const mf_plugin *other = mf_registry_find(e->reg, 0, name, NULL);
    if (other) {
        mf_config_error(err, node, "'%s' is a%s %s plugin, not a%s %s plugin", name,
                        other->kind == MF_KIND_ENCODER ? "n" : "", mf_kind_name(other->kind),
                        kind == MF_KIND_ENCODER ? "n" : "", mf_kind_name(kind));
        return NULL;
    }
    char hint[160];
    snprintf(hint, sizeof hint, "%s", mf_suggestion(name, mf_registry_names(e->reg, kind)));
    if (!*hint && mf_registry_refusal_count(e->reg))
        snprintf(hint, sizeof hint, " (%d plugin file(s) were refused; see the warnings above)",
                 mf_registry_refusal_count(e->reg));
    mf_config_error(err, node, "no %s plugin named '%s'%s", mf_kind_name(kind), name, hint);
    return NULL;
}

/* A module section: {type: NAME, NAME's parameters…}. */
static const mf_plugin *check_module(experiment *e, const mf_config *section, mf_kind kind,
                                     int *problems, mf_error *err)
{
    const mf_plugin *p = resolve(e, section, "type", kind, err);
    if (!p && mf_config_has(section, "type") && mf_config_scalar(mf_config_get(section, "type")))
        (*problems)++;
    *problems += check_section((mf_config *)section, module_specs, p, err);
    return p;
}

static mf_config *section(experiment *e, const char *key)
{
    return (mf_config *)mf_config_get(e->cfg, key);
}

/* MMFUSE_PLUGIN_PATH, then plugins.path (relative to the experiment file), then the
 * default folder. A folder the experiment names must exist; refusals are warnings, and
 * become errors only when a refused plugin is asked for. */
static int load_plugins(experiment *e, mf_error *err)
{
    const mf_config *list = mf_config_get(section(e, "plugins"), "path");
    int n = mf_config_length(list), problems = 0;
    char **dirs = calloc((size_t)n + 1, sizeof *dirs);
    for (int i = 0; dirs && i < n; i++) {
        const char *d = mf_config_scalar(mf_config_at(list, i));
        if (!(dirs[i] = malloc(strlen(e->base_dir) + strlen(d) + 2)))
            break;
        if (d[0] == '/')
            strcpy(dirs[i], d);
        else
            sprintf(dirs[i], "%s/%s", e->base_dir, d);
        if (access(dirs[i], R_OK | X_OK) != 0) {
            mf_config_error(err, mf_config_at(list, i), "plugin folder '%s' cannot be read: %s",
                            dirs[i], strerror(errno));
            problems++;
        }
    }
    mf_error warnings;
    mf_error_clear(&warnings);
    if (!problems)
        mf_registry_add_search_path(e->reg, (const char *const *)dirs, &warnings);
    for (int i = 0; i < mf_registry_refusal_count(e->reg); i++)
        mf_error_set(&warnings, "%s", mf_registry_refusal(e->reg, i));
    if (warnings.count) {
        for (char *line = warnings.msg, *end; *line; line = end + (*end != 0)) {
            end = line + strcspn(line, "\n");
            fprintf(stderr, "mmfuse: warning: %.*s\n", (int)(end - line), line);
        }
    }
    for (int i = 0; dirs && i < n; i++)
        free(dirs[i]);
    free(dirs);
    return problems;
}

/* Validate the whole file before anything runs; report every problem at once. */
static int validate(experiment *e, mf_error *err)
{
    int problems = mf_config_check(e->cfg, top_specs, NULL, err);
    if (problems) /* sections missing or of the wrong type: nothing below can be read */
        return problems;
    problems += mf_config_check(section(e, "plugins"), plugins_specs, NULL, err);
    if (problems)
        return problems;
    if ((problems = load_plugins(e, err)))
        return problems;

    e->data_cfg = section(e, "data");
    e->reader = resolve(e, e->data_cfg, "reader", MF_KIND_DATASET, err);
    problems += e->reader == NULL && mf_config_has(e->data_cfg, "reader") &&
                mf_config_scalar(mf_config_get(e->data_cfg, "reader"));
    problems += check_section((mf_config *)e->data_cfg, data_specs, e->reader, err);

    mf_config *model = section(e, "model");
    problems += mf_config_check(model, model_specs, NULL, err);
    const mf_config *encoders = mf_config_get(model, "encoders");
    if (encoders && mf_config_node_kind(encoders) == MF_CONFIG_MAP) {
        if (mf_config_length(encoders) > MAX_MODALITIES) {
            mf_config_error(err, encoders, "at most %d modalities are supported", MAX_MODALITIES);
            problems++;
        }
        for (int i = 0; i < mf_config_length(encoders) && i < MAX_MODALITIES; i++) {
            const mf_config *enc = mf_config_at(encoders, i);
            if (mf_config_node_kind(enc) != MF_CONFIG_MAP) {
                mf_config_error(err, enc, "expected a map like {type: mlp, …}");
                problems++;
                continue;
            }
            check_module(e, enc, MF_KIND_ENCODER, &problems, err);
        }
    }
    if ((e->fusion_cfg = mf_config_get(model, "fusion")) &&
        mf_config_node_kind(e->fusion_cfg) == MF_CONFIG_MAP)
        e->fusion_plugin = check_module(e, e->fusion_cfg, MF_KIND_FUSION, &problems, err);
    if ((e->head_cfg = mf_config_get(model, "head")) &&
        mf_config_node_kind(e->head_cfg) == MF_CONFIG_MAP)
        e->head_plugin = check_module(e, e->head_cfg, MF_KIND_ENCODER, &problems, err);
    e->loss_cfg = section(e, "loss");
    e->loss_plugin = check_module(e, e->loss_cfg, MF_KIND_LOSS, &problems, err);
    problems += mf_config_check(section(e, "optim"), optim_specs, NULL, err);
    problems += mf_config_check(section(e, "train"), train_specs, NULL, err);
    mf_config *ev = section(e, "eval");
    int eval_problems = mf_config_check(ev, eval_specs, NULL, err);
    if (!eval_problems)
        eval_problems = mf_config_check((mf_config *)mf_config_get(ev, "robustness"),
                                        robustness_specs, NULL, err);
    return problems + eval_problems;
}

/* Settings the host reads itself (all validated, so reads cannot fail). */
static void read_settings(experiment *e)
{
    const mf_config *o = section(e, "optim");
    double betas[2] = {0.9, 0.999};
    int n, kind;
    mf_config_int(e->cfg, "seed", &e->seed, NULL);
    mf_config_int(e->cfg, "threads", &e->threads, NULL);
    mf_config_int(e->data_cfg, "batch_size", &e->batch_size, NULL);
    mf_config_float(e->data_cfg, "val_fraction", &e->val_fraction, NULL);
    mf_config_int(section(e, "train"), "epochs", &e->epochs, NULL);
    mf_config_float(section(e, "train"), "modality_dropout", &e->modality_dropout, NULL);
    mf_config_enum(section(e, "model"), "missing", "zeros|learned", &e->learned_missing, NULL);
    mf_rng_seed_stream(&e->dropout_rng, (uint64_t)e->seed, UINT64_C(0x6d6f64)); /* "mod" */
    mf_config_enum(o, "type", MF_OPTIM_CHOICES, &kind, NULL);
    mf_config_float(o, "lr", &e->optim.lr, NULL);
    mf_config_float(o, "weight_decay", &e->optim.weight_decay, NULL);
    mf_config_float_list(o, "betas", betas, 2, &n, NULL);
    mf_config_float(o, "eps", &e->optim.eps, NULL);
    mf_config_float(o, "momentum", &e->optim.momentum, NULL);
    e->optim.kind = (mf_optim_kind)kind;
    e->optim.beta1 = betas[0];
    e->optim.beta2 = betas[1];
}

/* ---------------------------------------------------------------- data */
/* eval.robustness.drop names modalities in use. */
static int check_robustness(experiment *e, mf_error *err)
{
    const mf_config *drop = mf_config_get(section(e, "eval"), "robustness.drop");
    int problems = 0;
    for (int i = 0; i < mf_config_length(drop); i++) {
        const char *name = mf_config_scalar(mf_config_at(drop, i));
        int used = 0;
        for (int m = 0; m < e->n_mod; m++)
            used |= strcmp(e->mod_name[m], name) == 0;
        if (!used) {
            const char *hint = mf_suggestion(name, e->mod_name);
            mf_config_error(err, mf_config_at(drop, i), "'%s' is not a modality in use%s",
                            name, hint);
            problems++;
        }
    }
    return problems ? -1 : 0;
}

static int open_data(experiment *e, mf_error *err)
{
    e->ds = mf_dataset_open(e->reader, e->data_cfg, e->base_dir, err);
    if (!e->ds)
        return -1;
    e->info = mf_dataset_get_info(e->ds);
    const mf_dataset_info *in = e->info;
    if (in->label_kind != MF_LABELS_CLASSES) {
        mf_config_error(err, mf_config_get(e->data_cfg, "reader"),
                        "the '%s' data has regression targets; the trainer fits classifiers only "
                        "so far", e->reader->name);
        return -1;
    }
    if (in->n_modalities > MAX_MODALITIES) {
        mf_error_set(err, "%s: the '%s' data has %d modalities; at most %d are supported",
                     e->path, e->reader->name, in->n_modalities, MAX_MODALITIES);
        return -1;
    }
    /* What can be used: the reader's modalities, then the views carved out of them. */
    const char *names[2 * MAX_MODALITIES + 1];
    mfi_input avail[2 * MAX_MODALITIES];
    int n_avail = 0, problems = 0;
    for (int m = 0; m < in->n_modalities; m++) {
        avail[n_avail] = (mfi_input){.name = in->modalities[m].name, .source = m, .axis = -1,
                                     .shape = in->modalities[m].shape};
        names[n_avail++] = in->modalities[m].name;
    }
    names[n_avail] = NULL;
    const mf_config *views = mf_config_get(e->data_cfg, "views");
    for (int v = 0; v < mf_config_length(views) && n_avail < 2 * MAX_MODALITIES; v++) {
        const mf_config *spec = mf_config_at(views, v);
        if (mf_config_node_kind(spec) != MF_CONFIG_MAP) {
            mf_config_error(err, spec, "expected a map like {from: image, axis: 1, start: 0, "
                                       "length: 14}");
            return -1;
        }
        if (mf_config_check((mf_config *)spec, view_specs, NULL, err))
            return -1;
        const char *from;
        int64_t axis, start, length;
        mf_config_string(spec, "from", &from, NULL);
        mf_config_int(spec, "axis", &axis, NULL);
        mf_config_int(spec, "start", &start, NULL);
        mf_config_int(spec, "length", &length, NULL);
        int source = -1;
        for (int m = 0; m < in->n_modalities; m++)
            if (strcmp(in->modalities[m].name, from) == 0)
                source = m;
        mf_error why;
        mf_error_clear(&why);
        if (source < 0) {
            const char *hint = mf_suggestion(from, names);
            mf_config_error(err, mf_config_get(spec, "from"),
                            "the '%s' data has no modality '%s'%s", e->reader->name, from,
                            hint);
            return -1;
        }
        avail[n_avail] = (mfi_input){.name = mf_config_key_at(views, v), .source = source};
        if (mfi_input_view(&avail[n_avail], &in->modalities[source].shape, (int)axis, start,
                           length, &why)) {
            mf_config_error(err, spec, "%s", why.msg);
            return -1;
        }
        names[n_avail++] = mf_config_key_at(views, v);
    }
    names[n_avail] = NULL;

    /* The inputs used: data.modalities; or the views when there are any; or every modality. */
    const mf_config *wanted = mf_config_get(e->data_cfg, "modalities");
    int n_wanted = mf_config_length(wanted), n_views = n_avail - in->n_modalities;
    e->n_mod = n_wanted ? n_wanted : n_views ? n_views : in->n_modalities;
    if (e->n_mod > MAX_MODALITIES) {
        mf_config_error(err, wanted, "at most %d modalities can be used at once", MAX_MODALITIES);
        return -1;
    }
    int standardize;
    mf_config_bool(e->data_cfg, "standardize", &standardize, NULL);
    for (int i = 0; i < e->n_mod; i++) {
        const char *name = n_wanted ? mf_config_scalar(mf_config_at(wanted, i))
                                    : names[n_views ? in->n_modalities + i : i];
        int found = -1;
        for (int m = 0; m < n_avail; m++)
            if (strcmp(names[m], name) == 0)
                found = m;
        if (found < 0) {
            const char *hint = mf_suggestion(name, names);
            mf_config_error(err, mf_config_at(wanted, i),
                            "the '%s' data has no modality or view '%s'%s", e->reader->name,
                            name, hint);
            return -1;
        }
        e->input[i] = avail[found];
        e->input[i].standardize =
            standardize && in->modalities[avail[found].source].dtype != MF_DTYPE_TOKEN;
        e->mod_name[i] = e->input[i].name;
    }
    e->mod_name[e->n_mod] = NULL;

    /* Every modality used has an encoder; every encoder a modality. */
    const mf_config *encoders = mf_config_get(section(e, "model"), "encoders");
    for (int i = 0; i < mf_config_length(encoders); i++) {
        const char *key = mf_config_key_at(encoders, i);
        int used = 0;
        for (int m = 0; m < e->n_mod; m++)
            used |= strcmp(e->mod_name[m], key) == 0;
        if (!used) {
            const char *hint = mf_suggestion(key, e->mod_name);
            mf_config_error(err, mf_config_at(encoders, i),
                            "an encoder for '%s', which is not a modality in use%s", key,
                            hint);
            problems++;
        }
    }
    for (int m = 0; m < e->n_mod; m++) {
        e->encoder_cfg[m] = mf_config_get(encoders, e->mod_name[m]);
        if (!e->encoder_cfg[m]) {
            mf_config_error(err, encoders,
                            "no encoder for modality '%s' (use {type: identity} to pass it "
                            "through)",
                            e->mod_name[m]);
            problems++;
        } else {
            e->encoder_plugin[m] = mf_registry_find(
                e->reg, MF_KIND_ENCODER, mf_config_scalar(mf_config_get(e->encoder_cfg[m], "type")),
                NULL);
        }
    }
    if (problems)
        return -1;
    if (mfi_splits_make(in, e->val_fraction, (uint64_t)e->seed, &e->splits, err))
        return -1;
    if (e->splits.count[MF_SPLIT_TRAIN] == 0) {
        mf_error_set(err, "%s: the '%s' data has no training samples", e->path, e->reader->name);
        return -1;
    }
    return check_robustness(e, err);
}

/* ---------------------------------------------------------------- model */
static int build_model(experiment *e, mf_error *err)
{
    char path[256];
    mf_shape emb[MAX_MODALITIES], fused, logits;
    e->params = mf_params_new();
    for (int m = 0; m < e->n_mod; m++) {
        const mf_shape *in = &e->input[m].shape;
        mf_build_args args = {sizeof args, 1, in, &e->mod_name[m], 0};
        snprintf(path, sizeof path, "model.encoders.%s", e->mod_name[m]);
        if (!(e->encoder[m] = mf_module_new(e->encoder_plugin[m], path, e->params, err)) ||
            mf_module_build(e->encoder[m], e->encoder_cfg[m], &args, &emb[m], err))
            return -1;
    }
    mf_build_args fargs = {sizeof fargs, e->n_mod, emb, e->mod_name, 0};
    if (!(e->fusion = mf_module_new(e->fusion_plugin, "model.fusion", e->params, err)) ||
        mf_module_build(e->fusion, e->fusion_cfg, &fargs, &fused, err))
        return -1;
    const char *fused_name = "fused";
    mf_build_args hargs = {sizeof hargs, 1, &fused, &fused_name, e->info->n_classes};
    if (!(e->head = mf_module_new(e->head_plugin, "model.head", e->params, err)) ||
        mf_module_build(e->head, e->head_cfg, &hargs, &logits, err))
        return -1;
    if (!(e->loss = mf_module_new(e->loss_plugin, "loss", e->params, err)) ||
        mf_module_build_loss(e->loss, e->loss_cfg, err))
        return -1;
    /* Missing modalities: masks in the graphs whenever anything can go missing; a learned
     * marker per modality (registered last, so the other parameters keep their values). */
    e->with_missing = e->learned_missing || e->modality_dropout > 0 ||
                      mf_config_length(mf_config_get(section(e, "eval"), "robustness.drop")) > 0;
    if (e->learned_missing) {
        if (!(e->markers = mf_module_new(NULL, "model.missing", e->params, err)))
            return -1;
        for (int m = 0; m < e->n_mod; m++)
            if (!(e->marker[m] = mf_module_param(e->markers, e->mod_name[m],
                                                 mf_shape1(mf_shape_numel(&e->input[m].shape)),
                                                 (mf_init){MF_INIT_ZEROS, 0, 0}))) {
                mf_error_set(err, "%s: cannot register the missing marker of '%s'", e->path,
                             e->mod_name[m]);
                return -1;
            }
    }
    return mf_params_finalize(e->params, (uint64_t)e->seed, mf_optim_moments(e->optim.kind), err);
}

static mf_shape batched(const mf_shape *s, int64_t b)
{
    mf_shape out = {s->ndim + 1, {b}};
    for (int d = 0; d < s->ndim; d++)
        out.dim[d + 1] = s->dim[d];
    return out;
}

/* The compiled graph for this batch size and mode, built on first use. */
static model_graph *graph_for(experiment *e, int64_t batch, int training, mf_error *err)
{
    for (int i = 0; i < e->n_graphs; i++)
        if (e->graphs[i].batch == batch && e->graphs[i].training == training)
            return &e->graphs[i];
    if (e->n_graphs == MAX_GRAPHS) { /* a third batch size cannot happen; be safe anyway */
        mf_graph_free(e->graphs[--e->n_graphs].g);
    }
    model_graph *mg = &e->graphs[e->n_graphs];
    memset(mg, 0, sizeof *mg);
    mg->batch = batch;
    mg->training = training;
    mf_graph *g = mg->g = mf_graph_new(training);
    mf_node *emb[MAX_MODALITIES];
    for (int m = 0; m < e->n_mod; m++) {
        mg->input[m] = mf_input(g, e->mod_name[m], batched(&e->input[m].shape, batch));
        mf_node *x = mg->input[m];
        if (e->with_missing) {
            // x' = x - d·(x - marker): x where present, the marker (or 0) where missing;
            // x and d are (B,F) with F the input's features, the marker a row (F)
            const int64_t f = mf_shape_numel(&e->input[m].shape);
            char name[96];
            snprintf(name, sizeof name, "%s.missing", e->mod_name[m]);
            mg->missing[m] = mf_input(g, name, mf_shape2(batch, f));
            mf_node *flat = mf_reshape(g, x, mf_shape2(batch, f));
            mf_node *away = e->marker[m] ? mf_sub(g, flat, mf_param_node(g, e->marker[m])) : flat;
            x = mf_reshape(g, mf_sub(g, flat, mf_mul(g, mg->missing[m], away)),
                           batched(&e->input[m].shape, batch));
        }
        emb[m] = mf_module_forward(e->encoder[m], g, 1, &x);
    }
    mf_node *fused = mf_module_forward(e->fusion, g, e->n_mod, emb);
    mg->logits = mf_module_forward(e->head, g, 1, &fused);
    mg->target = mf_input(g, "target", mf_shape1(batch));
    mf_loss_inputs li = {sizeof li, mg->logits, mg->target, e->n_mod, e->mod_name, emb};
    mg->loss = mf_module_loss(e->loss, g, &li);
    mf_error local;
    mf_error_clear(&local);
    const char *problem = NULL;
    char shape[64];
    if (mf_graph_error(g))
        problem = mf_graph_error(g);
    else if (!mg->logits || !mg->loss)
        problem = !mg->logits ? "the head produced no output" : "the loss produced no output";
    else if (mf_node_numel(mg->loss) != 1)
        problem = "the loss is not a scalar";
    else if (mf_node_shape(mg->logits)->ndim != 2 ||
             mf_node_shape(mg->logits)->dim[1] != e->info->n_classes) {
        snprintf(local.msg, sizeof local.msg, "the head outputs %s, not (%lld,%d) class logits",
                 mf_shape_str(mf_node_shape(mg->logits), shape, sizeof shape), (long long)batch,
                 e->info->n_classes);
        problem = local.msg;
    } else if (mf_graph_compile(g, &local))
        problem = local.msg;
    if (problem) {
        mf_error_set(err, "%s: model: %s", e->path, problem);
        mf_graph_free(g);
        return NULL;
    }
    e->n_graphs++;
    return mg;
}

/* ---------------------------------------------------------------- loops */
typedef struct epoch_stats {
    double loss, accuracy, macro_f1;
    int64_t samples;
} epoch_stats;

/* Macro-F1 from a K×K confusion matrix (rows: truth): the mean over classes that occur
 * (in truth or prediction) of 2·TP / (2·TP + FP + FN). */
static double macro_f1(const int64_t *confusion, int k)
{
    double sum = 0;
    int classes = 0;
    for (int c = 0; c < k; c++) {
        int64_t tp = confusion[c * k + c], fp = 0, fn = 0;
        for (int o = 0; o < k; o++)
            if (o != c) {
                fp += confusion[o * k + c];
                fn += confusion[c * k + o];
            }
        if (tp + fp + fn == 0)
            continue;
        sum += 2.0 * (double)tp / (double)(2 * tp + fp + fn);
        classes++;
    }
    return classes ? sum / classes : 0;
}

/* One pass over a split: train (optimiser steps) or evaluate. `rng` draws evaluation noise
 * (the robustness transforms), NULL otherwise. */
static int run_epoch(experiment *e, mfi_loader *loader, int training, int epoch, epoch_stats *st,
                     mf_rng *rng, mf_error *err)
{
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, b;
    const int k = e->info->n_classes;
    if (e->confusion)
        memset(e->confusion, 0, (size_t)k * (size_t)k * sizeof(int64_t));
    mfi_loader_start(loader, epoch);
    while ((b = mfi_loader_peek(loader)) > 0) {
        model_graph *mg = graph_for(e, b, training, err);
        if (!mg)
            return MF_EXIT_BAD_INPUT;
        const mfi_batch *batch;
        if (mfi_loader_next(loader, &batch, err) < 0)
            return MF_EXIT_BAD_INPUT;
        for (int m = 0; m < e->n_mod; m++) {
            mfi_assemble(&e->input[m], e->info, batch, mf_node_value(mg->input[m]), rng);
            if (!mg->missing[m])
                continue;
            /* missing: dropped for the whole split (robustness), or by modality dropout */
            const int64_t f = mf_node_shape(mg->missing[m])->dim[1];
            float *d = mf_node_value(mg->missing[m]);
            for (int64_t i = 0; i < b; i++) {
                float gone = e->input[m].drop ? 1.0f
                             : training && e->modality_dropout > 0 &&
                                       mf_rng_uniform(&e->dropout_rng) < e->modality_dropout
                                 ? 1.0f
                                 : 0.0f;
                for (int64_t j = 0; j < f; j++)
                    d[i * f + j] = gone;
            }
        }
        float *target = mf_node_value(mg->target);
        for (int64_t i = 0; i < b; i++) {
            int32_t y = batch->labels[i];
            if (y < 0 || y >= k) {
                mf_error_set(err, "%s: the '%s' data gives sample %lld the label %d, outside "
                             "0…%d", e->path, e->reader->name, (long long)batch->index[i], y, k - 1);
                return MF_EXIT_BAD_INPUT;
            }
            target[i] = (float)y;
        }
        mf_graph_forward(mg->g);
        float loss = mf_node_value(mg->loss)[0];
        if (!isfinite(loss)) {
            mf_error_set(err, "%s: training diverged: the loss is %g at epoch %d (lower optim.lr?)",
                         e->path, loss, epoch + 1);
            return MF_EXIT_FAILED;
        }
        if (training) {
            mf_graph_backward(mg->g, mg->loss); /* from zero: the optimiser zeroed them */
            mf_optim_step(&e->optim, e->params);
        }
        const float *logits = mf_node_value(mg->logits);
        for (int64_t i = 0; i < b; i++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (logits[i * k + c] > logits[i * k + best])
                    best = c;
            correct += best == batch->labels[i];
            if (e->confusion)
                e->confusion[(int64_t)batch->labels[i] * k + best]++;
        }
        loss_sum += (double)loss * (double)b;
        seen += b;
    }
    st->loss = seen ? loss_sum / (double)seen : 0;
    st->accuracy = seen ? (double)correct / (double)seen : 0;
    st->macro_f1 = e->confusion ? macro_f1(e->confusion, k) : NAN;
    st->samples = seen;
    return MF_EXIT_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Test accuracy with each modality dropped and each noise level on each modality, one at a
 * time; printed and saved as robustness.csv. */
static int evaluate_robustness(experiment *e, mfi_loader *test, const epoch_stats *clean,
                               mf_error *err)
{
    const mf_config *rob = mf_config_get(section(e, "eval"), "robustness");
    const mf_config *drop = mf_config_get(rob, "drop"), *noise = mf_config_get(rob, "noise");
    int n_drop = mf_config_length(drop), n_noise = mf_config_length(noise);
    if (n_drop + n_noise == 0)
        return MF_EXIT_OK;
    char csv[8192];
    int len = snprintf(csv, sizeof csv, "transform,modality,level,accuracy,macro_f1\n"
                                        "clean,,0,%.6f,%.6f\n", clean->accuracy, clean->macro_f1);
    fprintf(e->log, "robustness (test split): clean accuracy %.4f\n", clean->accuracy);
    for (int t = 0; t < n_drop + n_noise * e->n_mod; t++) {
        int m;
        double level = 0;
        if (t < n_drop) {
            const char *name = mf_config_scalar(mf_config_at(drop, t));
            for (m = 0; m < e->n_mod && strcmp(e->mod_name[m], name); m++)
                ;
            e->input[m].drop = 1;
        } else {
            m = (t - n_drop) % e->n_mod;
            double sigma;
            const mf_config *item = mf_config_at(noise, (t - n_drop) / e->n_mod);
            sigma = strtod(mf_config_scalar(item), NULL);
            level = sigma;
            e->input[m].noise = (float)sigma;
        }
        mf_rng rng;
        mf_rng_seed_stream(&rng, (uint64_t)e->seed, UINT64_C(0x726f62) + (uint64_t)t); /* "rob" */
        epoch_stats st;
        int status = run_epoch(e, test, 0, 0, &st, &rng, err);
        e->input[m].drop = 0;
        e->input[m].noise = 0;
        if (status)
            return status;
        const char *kind = t < n_drop ? "drop" : "noise";
        fprintf(e->log, "  %-5s %-12s %-6g accuracy %.4f  (%+.4f)\n", kind, e->mod_name[m], level,
                st.accuracy, st.accuracy - clean->accuracy);
        if (len < (int)sizeof csv)
            len += snprintf(csv + len, sizeof csv - (size_t)len, "%s,%s,%g,%.6f,%.6f\n", kind,
                            e->mod_name[m], level, st.accuracy, st.macro_f1);
    }
    if (e->run) {
        char path[4200];
        snprintf(path, sizeof path, "%s/robustness.csv", e->run->path);
        if (mf_write_file_atomic(path, csv, strlen(csv), err))
            return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}

static int train(experiment *e, mf_run_result *res, mf_error *err)
{
    mfi_loader *loader[3] = {NULL, NULL, NULL};
    float *best = NULL;
    int status = MF_EXIT_FAILED, best_epoch = -1, prefetch = 1;
    const int64_t numel = mf_params_numel(e->params);
    double t0 = now(), train_seconds = 0;
    mf_config_bool(e->data_cfg, "prefetch", &prefetch, NULL);
    for (int s = 0; s < 3; s++) {
        if (e->splits.count[s] == 0)
            continue;
        loader[s] = mfi_loader_new(e->ds, e->info, e->splits.index[s], e->splits.count[s],
                                   e->batch_size, s == MF_SPLIT_TRAIN, (uint64_t)e->seed, prefetch,
                                   err);
        if (!loader[s])
            goto done;
    }
    const int k = e->info->n_classes;
    if (!(best = malloc((size_t)(numel ? numel : 1) * sizeof(float))) ||
        !(e->confusion = calloc((size_t)k * (size_t)k, sizeof(int64_t)))) {
        mf_error_set(err, "out of memory");
        goto done;
    }
    /* standardisation from the training split only, saved with the run */
    int any = 0;
    for (int m = 0; m < e->n_mod; m++)
        any |= e->input[m].standardize;
    if (any && (mfi_fit_standardization(e->input, e->n_mod, e->info, loader[MF_SPLIT_TRAIN], err) ||
                (e->run && mfi_run_dir_standardization(e->run, e->input, e->n_mod, err)))) {
        status = MF_EXIT_BAD_INPUT;
        goto done;
    }
    memcpy(best, mf_params_values(e->params), (size_t)numel * sizeof(float));
    res->best_val_accuracy = -1;
    for (int epoch = 0; epoch < e->epochs; epoch++) {
        double te = now();
        epoch_stats tr, va = {0, 0, 0, 0};
        if ((status = run_epoch(e, loader[MF_SPLIT_TRAIN], 1, epoch, &tr, NULL, err)))
            goto done;
        train_seconds += now() - te;
        if (loader[MF_SPLIT_VAL] &&
            (status = run_epoch(e, loader[MF_SPLIT_VAL], 0, 0, &va, NULL, err)))
            goto done;
        /* Model selection on validation accuracy (the last epoch without a validation split). */
        if (!loader[MF_SPLIT_VAL] || va.accuracy > res->best_val_accuracy) {
            res->best_val_accuracy = va.accuracy;
            best_epoch = epoch;
            memcpy(best, mf_params_values(e->params), (size_t)numel * sizeof(float));
        }
        res->epochs_run = epoch + 1;
        res->final_train_loss = tr.loss;
        if (e->run && mfi_run_dir_epoch(e->run, epoch + 1, tr.loss, tr.accuracy,
                                        loader[MF_SPLIT_VAL] ? va.loss : NAN,
                                        loader[MF_SPLIT_VAL] ? va.accuracy : NAN, now() - te, err)) {
            status = MF_EXIT_FAILED;
            goto done;
        }
        if (!e->quiet && loader[MF_SPLIT_VAL])
            fprintf(e->log, "epoch %3d/%lld  train loss %.4f  acc %.4f  val loss %.4f  acc %.4f  %.2f s\n",
                    epoch + 1, (long long)e->epochs, tr.loss, tr.accuracy, va.loss, va.accuracy,
                    now() - te);
        else if (!e->quiet)
            fprintf(e->log, "epoch %3d/%lld  train loss %.4f  acc %.4f  %.2f s\n", epoch + 1,
                    (long long)e->epochs, tr.loss, tr.accuracy, now() - te);
        fflush(e->log);
    }
    res->data_wait = train_seconds > 0
                         ? mfi_loader_wait_seconds(loader[MF_SPLIT_TRAIN]) / train_seconds
                         : 0;
    memcpy(mf_params_values(e->params), best, (size_t)numel * sizeof(float));
    res->test_accuracy = res->test_macro_f1 = NAN;
    epoch_stats test = {0};
    if (loader[MF_SPLIT_TEST]) {
        if ((status = run_epoch(e, loader[MF_SPLIT_TEST], 0, 0, &test, NULL, err)))
            goto done;
        res->test_accuracy = test.accuracy;
        res->test_macro_f1 = test.macro_f1;
    }
    res->seconds = now() - t0;
    res->best_epoch = best_epoch + 1;
    if (loader[MF_SPLIT_TEST] && loader[MF_SPLIT_VAL])
        fprintf(e->log, "test accuracy %.4f  macro-F1 %.4f  (epoch %d, best validation accuracy "
                "%.4f; %.1f s, data wait %.1f %%)\n", res->test_accuracy, res->test_macro_f1,
                best_epoch + 1, res->best_val_accuracy, res->seconds, 100 * res->data_wait);
    else if (loader[MF_SPLIT_TEST])
        fprintf(e->log, "test accuracy %.4f  macro-F1 %.4f  (after epoch %d; %.1f s)\n",
                res->test_accuracy, res->test_macro_f1, best_epoch + 1, res->seconds);
    else
        fprintf(e->log, "no test split: training finished after %d epochs (%.1f s)\n",
                res->epochs_run, res->seconds);
    status = loader[MF_SPLIT_TEST] ? evaluate_robustness(e, loader[MF_SPLIT_TEST], &test, err)
                                   : MF_EXIT_OK;
done:
    for (int s = 0; s < 3; s++)
        mfi_loader_free(loader[s]);
    free(best);
    return status;
}

static void describe(experiment *e)
{
    if (e->quiet)
        return;
    const mf_dataset_info *in = e->info;
    fprintf(e->log, "%s: data '%s': %lld samples (train %lld, val %lld, test %lld), %d classes;",
            e->path, e->reader->name, (long long)in->n_samples,
            (long long)e->splits.count[0], (long long)e->splits.count[1],
            (long long)e->splits.count[2], in->n_classes);
    for (int m = 0; m < e->n_mod; m++) {
        char shape[64];
        fprintf(e->log, " %s %s", e->mod_name[m],
                mf_shape_str(&e->input[m].shape, shape, sizeof shape));
    }
    fprintf(e->log, "\n%s: model: %lld parameters; encoders", e->path,
            (long long)mf_params_numel(e->params));
    for (int m = 0; m < e->n_mod; m++)
        fprintf(e->log, " %s=%s", e->mod_name[m], e->encoder_plugin[m]->name);
    fprintf(e->log, ", fusion %s, head %s, loss %s, optimiser %s; %d thread%s\n",
            e->fusion_plugin->name, e->head_plugin->name, e->loss_plugin->name,
            e->optim.kind == MF_OPTIM_SGD ? "sgd" : e->optim.kind == MF_OPTIM_ADAMW ? "adamw" : "adam",
            mf_get_threads(), mf_get_threads() == 1 ? "" : "s");
}

static void experiment_free(experiment *e)
{
    for (int i = 0; i < e->n_graphs; i++)
        mf_graph_free(e->graphs[i].g);
    for (int m = 0; m < e->n_mod; m++)
        mf_module_free(e->encoder[m]);
    mf_module_free(e->fusion);
    mf_module_free(e->head);
    mf_module_free(e->loss);
    mf_module_free(e->markers);
    mf_params_free(e->params);
    for (int m = 0; m < e->n_mod; m++)
        mfi_input_free(&e->input[m]);
    free(e->confusion);
    mfi_splits_free(&e->splits);
    mf_dataset_close(e->ds);
    mf_registry_free(e->reg); /* last: the plugins' code must outlive their instances */
    mf_config_free(e->cfg);
    free(e->base_dir);
}

int mf_experiment_run(const char *path, const mf_run_options *opts, mf_run_result *res,
                      mf_error *err)
{
    experiment e;
    mf_run_result local_res;
    memset(&e, 0, sizeof e);
    if (!res)
        res = &local_res;
    memset(res, 0, sizeof *res);
    e.path = path;
    e.log = opts && opts->log ? opts->log : stdout;
    e.quiet = opts ? opts->quiet : 0;
    char *copy = strdup(path);
    e.base_dir = strdup(copy ? dirname(copy) : ".");
    free(copy);

    int status = MF_EXIT_BAD_INPUT;
    if (!(e.cfg = mf_config_load(path, err)))
        goto done;
    for (int i = 0; opts && i < opts->n_overrides; i++)
        if (mf_config_override(e.cfg, opts->overrides[i], err))
            goto done;
    e.reg = mf_registry_new();
    if (validate(&e, err))
        goto done;
    read_settings(&e);
    /* MMFUSE_THREADS, when set, wins over the file (mf_set_threads(0) reads it). */
    const char *env_threads = getenv("MMFUSE_THREADS");
    mf_set_threads(env_threads && *env_threads ? 0 : (int)e.threads);
    /* everything that can be wrong with the input shows before anything is written: the
     * training graph for a full batch is built and compiled here */
    if (open_data(&e, err) || build_model(&e, err) || !graph_for(&e, e.batch_size, 1, err))
        goto done;
    if (opts && opts->validate_only) {
        status = MF_EXIT_OK;
        goto done;
    }
    mfi_run_dir run;
    const char *runs = NULL, *name = NULL;
    mf_config_string(e.cfg, "runs", &runs, NULL);
    mf_config_string(e.cfg, "name", &name, NULL);
    if (!(opts && opts->no_save)) {
        if (mfi_run_dir_create(&run, opts ? opts->run_dir : NULL, runs, name, err) ||
            mfi_run_dir_write_config(&run, e.cfg, err)) {
            status = MF_EXIT_FAILED;
            goto done;
        }
        e.run = &run;
        snprintf(res->run_dir, sizeof res->run_dir, "%s", run.path);
    }
    describe(&e);
    status = train(&e, res, err);
    if (e.run) {
        mf_error werr;
        mf_error_clear(&werr);
        const char *outcome = status == MF_EXIT_OK ? "done" : "failed";
        if (mfi_run_dir_result(e.run, outcome, res, e.seed, res->best_epoch,
                               status == MF_EXIT_OK ? NULL : err->msg, &werr) && status == 0) {
            mf_error_set(err, "%s", werr.msg);
            status = MF_EXIT_FAILED;
        }
        if (!e.quiet)
            fprintf(e.log, "saved in %s\n", run.path);
        mfi_run_dir_free(e.run);
    }
done:
    experiment_free(&e);
    return status;
}
