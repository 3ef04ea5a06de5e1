/* mmfuse run: validate an experiment file as a whole, build the model from plugins, train,
 * select on a named validation metric, report the test split.
 *
 * inputs (one per modality) → encoders → [fusion] → [head] → Σ weight·loss
 * (experiment_internal.h lists the units this is split into)
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buckets.h"
#include "experiment_internal.h"

mf_config *mfi_section(experiment *e, const char *key)
{
    return (mf_config *)mf_config_get(e->cfg, key);
}

int mfi_section_is_none(const mf_config *n)
{
    if (!n)
        return 0;
    if (mf_config_node_kind(n) == MF_CONFIG_SCALAR)
        return mf_config_is_null(n) || strcmp(mf_config_scalar(n), "none") == 0;
    const mf_config *type = mf_config_node_kind(n) == MF_CONFIG_MAP ? mf_config_get(n, "type") : NULL;
    return type && mf_config_scalar(type) && strcmp(mf_config_scalar(type), "none") == 0 &&
           mf_config_length(n) == 1;
}

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
static const mf_plugin *check_module(experiment *e, const mf_config *section,
                                     const mf_param_spec *host, mf_kind kind, int *problems,
                                     mf_error *err)
{
    const mf_plugin *p = resolve(e, section, "type", kind, err);
    if (!p && mf_config_has(section, "type") && mf_config_scalar(mf_config_get(section, "type")))
        (*problems)++;
    *problems += check_section((mf_config *)section, host, p, err);
    return p;
}

/* mf_config_check with some keys of `specs` left out (checked by the caller instead). */
static int check_except(mf_config *map, const mf_param_spec *specs, const char *const *skip,
                        mf_error *err)
{
    mf_param_spec kept[64];
    int n = 0;
    for (const mf_param_spec *s = specs; s->name && n < 63; s++) {
        int skipped = 0;
        for (const char *const *k = skip; *k; k++)
            skipped |= strcmp(*k, s->name) == 0;
        if (!skipped)
            kept[n++] = *s;
    }
    kept[n] = (mf_param_spec)MF_PARAM_END;
    return mf_config_check(map, kept, skip, err);
}

/* MMFUSE_PLUGIN_PATH, then plugins.path (relative to the experiment file), then the
 * default folder. A folder the experiment names must exist; refusals are warnings, and
 * become errors only when a refused plugin is asked for. */
static int load_plugins(experiment *e, mf_error *err)
{
    const mf_config *list = mf_config_get(mfi_section(e, "plugins"), "path");
    int n = mf_config_length(list), problems = 0;
    char **dirs = calloc((size_t)n + 1, sizeof *dirs);
    for (int i = 0; i < n && !problems; i++) {
        const char *d = mf_config_scalar(mf_config_at(list, i));
        if (!dirs || !(dirs[i] = malloc(strlen(e->base_dir) + strlen(d) + 2))) {
            mf_error_set(err, "out of memory");
            problems++;
            break;
        }
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
    mf_error warnings, scratch;
    mf_error_clear(&warnings);
    mf_error_clear(&scratch);
    /* its refusals are the registry's own list, printed once below (not also from err) */
    if (!problems)
        mf_registry_add_search_path(e->reg, (const char *const *)dirs, &scratch);
    for (int i = 0; i < mf_registry_refusal_count(e->reg); i++) {
        const char *why = mf_registry_refusal(e->reg, i);
        if (why && strstr(why, "out of memory")) { /* not a plugin's fault: the run's */
            mf_error_set(err, "%s", why);
            problems++;
        }
        mf_error_set(&warnings, "%s", why ? why : "a plugin file was refused (out of memory)");
    }
    if (warnings.count && !problems) {
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

/* model.encoders: one map per modality, {type: …} or {share: <modality>}. */
static int check_encoders(experiment *e, const mf_config *encoders, mf_error *err)
{
    int problems = 0;
    if (!encoders || mf_config_node_kind(encoders) != MF_CONFIG_MAP)
        return 0; /* reported by the model check */
    if (mf_config_length(encoders) > MAX_MODALITIES) {
        mf_config_error(err, encoders, "at most %d modalities are supported", MAX_MODALITIES);
        return 1;
    }
    for (int i = 0; i < mf_config_length(encoders); i++) {
        const mf_config *enc = mf_config_at(encoders, i);
        if (mf_config_node_kind(enc) != MF_CONFIG_MAP) {
            mf_config_error(err, enc, "expected a map like {type: mlp, …} or {share: <modality>}");
            problems++;
        } else if (mf_config_has(enc, "share")) {
            if (mf_config_has(enc, "type")) {
                mf_config_error(err, mf_config_get(enc, "type"), "an encoder that shares "
                                "another's has no type of its own (remove `type` or `share`)");
                problems++;
            }
            problems += mf_config_check((mf_config *)enc, mfi_encoder_specs, NULL, err);
        } else if (!mf_config_has(enc, "type")) {
            mf_config_error(err, enc, "missing required key 'type' (an encoder plugin, or "
                                      "`share: <modality>`)");
            problems++;
        } else {
            check_module(e, enc, mfi_encoder_specs, MF_KIND_ENCODER, &problems, err);
        }
    }
    return problems;
}

/* model.fusion and model.head: a module, or none. No fusion → no head. */
static int check_fusion_and_head(experiment *e, mf_config *model, mf_error *err)
{
    int problems = 0;
    e->fusion_cfg = mf_config_get(model, "fusion");
    if (!e->fusion_cfg) {
        mf_config_error(err, model, "missing required key 'fusion' (a fusion plugin, or `none`)");
        return 1;
    }
    if (mfi_section_is_none(e->fusion_cfg)) {
        e->fusion_cfg = NULL;
    } else if (mf_config_node_kind(e->fusion_cfg) != MF_CONFIG_MAP) {
        mf_config_error(err, e->fusion_cfg, "expected a map like {type: concat} or `none`");
        problems++;
    } else {
        e->fusion_plugin = check_module(e, e->fusion_cfg, mfi_module_specs, MF_KIND_FUSION,
                                        &problems, err);
    }
    const mf_config *head = mf_config_get(model, "head");
    if (head && mfi_section_is_none(head))
        return problems;
    if (head && !e->fusion_cfg && !problems) {
        mf_config_error(err, head, "a head maps the fused output, and with `fusion: none` there "
                                   "is none (remove model.head, or choose a fusion)");
        return problems + 1;
    }
    if (!head && !e->fusion_cfg)
        return problems;
    if (!head && mf_config_override(e->cfg, "model.head.type=mlp", err))
        return problems + 1;
    e->head_cfg = mf_config_get(model, "head");
    if (mf_config_node_kind(e->head_cfg) != MF_CONFIG_MAP) {
        mf_config_error(err, e->head_cfg, "expected a map like {type: mlp} or `none`");
        return problems + 1;
    }
    e->head_plugin = check_module(e, e->head_cfg, mfi_module_specs, MF_KIND_ENCODER, &problems,
                                  err);
    return problems;
}

/* loss: one map, or a list of maps (summed, each times its weight). */
static int check_losses(experiment *e, mf_error *err)
{
    const mf_config *loss = mf_config_get(e->cfg, "loss");
    int problems = 0, list = mf_config_node_kind(loss) == MF_CONFIG_LIST;
    if (!loss) {
        mf_config_error(err, e->cfg, "missing required key 'loss'");
        return 1;
    }
    e->n_losses = list ? mf_config_length(loss) : 1;
    if (e->n_losses < 1 || e->n_losses > MAX_LOSSES) {
        mf_config_error(err, loss, "expected 1 to %d losses, got %d", MAX_LOSSES, e->n_losses);
        return 1;
    }
    for (int i = 0; i < e->n_losses; i++) {
        const mf_config *one = list ? mf_config_at(loss, i) : loss;
        if (mf_config_node_kind(one) != MF_CONFIG_MAP) {
            mf_config_error(err, one, "expected a map%s, got %s", list ? "" : " (or a list of maps)",
                            mf_config_scalar(one) && *mf_config_scalar(one) ? "a scalar"
                                                                           : "an empty value");
            problems++;
            continue;
        }
        e->loss_cfg[i] = one;
        e->loss_plugin[i] = check_module(e, one, mfi_loss_specs, MF_KIND_LOSS, &problems, err);
    }
    return problems;
}

/* `name` becomes a folder (<runs>/<name>/…): one path component, so no run lands outside
 * `runs`. */
static int check_name(experiment *e, mf_error *err)
{
    const mf_config *n = mf_config_get(e->cfg, "name");
    const char *name = mf_config_scalar(n);
    if (!name || (*name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..")))
        return 0;
    mf_config_error(err, n, "'%s' cannot be a folder name, and run folders are <runs>/<name>/…: "
                    "give a name without '/' that is not empty, '.' or '..'", name);
    return 1;
}

/* Validate the whole file before anything runs; report every problem at once. */
static int validate(experiment *e, mf_error *err)
{
    static const char *const top_skip[] = {"loss", NULL}, *const model_skip[] = {"fusion", "head",
                                                                                 NULL};
    int problems = check_except(e->cfg, mfi_top_specs, top_skip, err);
    problems += problems ? 0 : check_name(e, err);
    if (problems) /* sections missing or of the wrong type: nothing below can be read */
        return problems;
    problems += mf_config_check(mfi_section(e, "plugins"), mfi_plugins_specs, NULL, err);
    if (problems || (problems = load_plugins(e, err)))
        return problems;

    e->data_cfg = mfi_section(e, "data");
    e->reader = resolve(e, e->data_cfg, "reader", MF_KIND_DATASET, err);
    problems += e->reader == NULL && mf_config_has(e->data_cfg, "reader") &&
                mf_config_scalar(mf_config_get(e->data_cfg, "reader"));
    problems += check_section((mf_config *)e->data_cfg, mfi_data_specs, e->reader, err);

    mf_config *model = mfi_section(e, "model");
    int model_problems = check_except(model, mfi_model_specs, model_skip, err);
    problems += model_problems;
    problems += check_encoders(e, mf_config_get(model, "encoders"), err);
    if (!model_problems)
        problems += check_fusion_and_head(e, model, err);
    problems += check_losses(e, err);
    problems += mf_config_check(mfi_section(e, "optim"), mfi_optim_specs, NULL, err);
    problems += mf_config_check(mfi_section(e, "train"), mfi_train_specs, NULL, err);
    mf_config *ev = mfi_section(e, "eval");
    int eval_problems = mf_config_check(ev, mfi_eval_specs, NULL, err);
    if (!eval_problems)
        eval_problems = mf_config_check((mf_config *)mf_config_get(ev, "robustness"),
                                        mfi_robustness_specs, NULL, err);
    return problems + eval_problems;
}

/* Settings the host reads itself (all validated, so reads cannot fail). */
static void read_settings(experiment *e)
{
    const mf_config *o = mfi_section(e, "optim"), *t = mfi_section(e, "train");
    int kind;
    mf_config_int(e->cfg, "seed", &e->seed, NULL);
    mf_config_int(e->cfg, "threads", &e->threads, NULL);
    mf_config_int(e->data_cfg, "batch_size", &e->batch_size, NULL);
    mf_config_float(e->data_cfg, "val_fraction", &e->val_fraction, NULL);
    mf_config_int(t, "epochs", &e->epochs, NULL);
    mf_config_int(t, "patience", &e->patience, NULL);
    mf_config_string(t, "select", &e->select, NULL);
    mf_config_float(t, "modality_dropout", &e->modality_dropout, NULL);
    mf_config_int(t, "steps", &e->steps, NULL);
    mf_config_int(t, "val_every", &e->val_every, NULL);
    mf_config_enum(t, "mode", "auto|min|max", &e->mode, NULL);
    mf_config_bool(t, "checkpoint", &e->checkpoint, NULL);
    mf_config_float(t, "checkpoint_every", &e->checkpoint_every, NULL);
    mf_config_enum(mfi_section(e, "model"), "missing", "zeros|learned", &e->learned_missing, NULL);
    mf_config_bool(mfi_section(e, "model"), "normalize", &e->normalize, NULL);
    mf_rng_seed_stream(&e->dropout_rng, (uint64_t)e->seed, UINT64_C(0x6d6f64)); /* "mod" */
    /* the kind sizes the optimiser state the model allocates; the rest of optim is read by
     * mfi_optim_configure once the parameters exist (lr_scale names them) */
    mf_config_enum(o, "type", MF_OPTIM_CHOICES, &kind, NULL);
    e->optim.kind = (mf_optim_kind)kind;
    for (int i = 0; i < e->n_losses; i++)
        mf_config_float(e->loss_cfg[i], "weight", &e->loss_weight[i], NULL);
}

static const char *kind_of_optim(mf_optim_kind k)
{
    return k == MF_OPTIM_SGD ? "sgd" : k == MF_OPTIM_ADAMW ? "adamw" : "adam";
}

static void describe(experiment *e)
{
    if (e->quiet)
        return;
    const mf_dataset_info *in = e->info;
    fprintf(e->log, "%s: data '%s': %lld samples (train %lld, val %lld, test %lld), ", e->path,
            e->reader->name, (long long)in->n_samples, (long long)e->splits.count[0],
            (long long)e->splits.count[1], (long long)e->splits.count[2]);
    if (in->label_kind == MF_LABELS_CLASSES)
        fprintf(e->log, "%d classes;", in->n_classes);
    else
        fprintf(e->log, "%lld %s;", (long long)in->target_dim,
                in->label_kind == MF_LABELS_TARGETS ? "targets" : "labels");
    for (int m = 0; m < e->n_mod; m++) {
        char shape[64];
        fprintf(e->log, " %s %s", e->mod_name[m],
                mf_shape_str(&e->input[m].shape, shape, sizeof shape));
    }
    fprintf(e->log, "\n%s: model: %lld parameters; encoders", e->path,
            (long long)mf_params_numel(e->params));
    for (int m = 0; m < e->n_mod; m++)
        fprintf(e->log, " %s=%s%s", e->mod_name[m], e->shares[m] >= 0 ? "shared:" : "",
                e->shares[m] >= 0 ? e->mod_name[e->shares[m]] : e->encoder_plugin[m]->name);
    if (e->normalize)
        fprintf(e->log, " (L2-normalised)");
    fprintf(e->log, ", fusion %s, head %s, loss", e->fusion_plugin ? e->fusion_plugin->name : "none",
            e->head_plugin ? e->head_plugin->name : "none");
    for (int i = 0; i < e->n_losses; i++)
        fprintf(e->log, "%s%s", i ? " + " : " ", e->loss_plugin[i]->name);
    fprintf(e->log, ", optimiser %s; selected on %s; %d thread%s\n", kind_of_optim(e->optim.kind),
            e->select, mf_get_threads(), mf_get_threads() == 1 ? "" : "s");
}

void mfi_experiment_free(experiment *e)
{
    for (int i = 0; i < e->n_graphs; i++)
        mf_graph_free(e->graphs[i].g);
    for (int m = 0; m < e->n_mod; m++)
        mf_module_free(e->encoder[m]);
    mf_module_free(e->fusion);
    mf_module_free(e->head);
    for (int i = 0; i < e->n_losses; i++)
        mf_module_free(e->loss[i]);
    mf_module_free(e->markers);
    mfi_optim_free(e);
    mfi_buckets_free(e->buckets);
    mf_params_free(e->params);
    for (int m = 0; m < e->n_mod; m++)
        mfi_input_free(&e->input[m]);
    mfi_augment_free(e);
    mfi_splits_free(&e->splits);
    free(e->target_mean);
    free(e->target_std);
    mf_dataset_close(e->ds);
    mf_registry_free(e->reg); /* last: the plugins' code must outlive their instances */
    mf_config_free(e->cfg);
    free(e->base_dir);
    json_decref(e->details);
}

/* Load, check everything that can be wrong with the input before anything is written: the
 * training graph for a full batch is built and compiled here. */
int mfi_experiment_prepare(experiment *e, const mf_run_options *opts, mf_error *err)
{
    if (!(e->cfg = mf_config_load(e->path, err)))
        return -1;
    for (int i = 0; opts && i < opts->n_overrides; i++)
        if (mf_config_override(e->cfg, opts->overrides[i], err))
            return -1;
    if (!(e->reg = mf_registry_new()) ||
        (e->overrides_from_cwd && mfi_track_absolutize_overrides(e, 0))) {
        mf_error_set(err, "out of memory");
        return -1;
    }
    if (validate(e, err))
        return -1;
    if (e->overrides_from_cwd && mfi_track_absolutize_overrides(e, 1)) {
        mf_error_set(err, "out of memory");
        return -1;
    }
    read_settings(e);
    mfi_track_check_plugins(e);
    /* MMFUSE_THREADS, when set, wins over the file (mf_set_threads(0) reads it). */
    const char *env_threads = getenv("MMFUSE_THREADS");
    mf_set_threads(env_threads && *env_threads ? 0 : (int)e->threads);
    if (!(env_threads && *env_threads) && e->threads == 0 && e->comm.local_size > 1) {
        const int share = mf_get_threads() / e->comm.local_size; /* ranks share the cores */
        mf_set_threads(share > 0 ? share : 1);
    }
    if (mfi_open_data(e, err) || mfi_build_model(e, err) || mfi_optim_configure(e, err) ||
        mfi_check_select(e, err) ||
        !mfi_graph_for(e, e->batch_size, 1, err))
        return -1;
    return 0;
}

static void save_result(experiment *e, int status, const mf_run_result *res, mf_error *err)
{
    mf_error werr;
    mf_error_clear(&werr);
    const char *outcome = status == MF_EXIT_OK ? "done" : e->diverged ? "diverged" : "failed";
    if (mfi_run_dir_result(e->run, outcome, res, e->seed, res->best_epoch,
                           status == MF_EXIT_OK ? NULL : err->msg, e->details, &werr) && status == 0)
        mf_error_set(err, "%s", werr.msg);
    /* the page is a view of the files: one it cannot draw fails nothing, but a file it
     * cannot write (a full disk) fails the run like any other */
    mf_error rerr;
    mf_error_clear(&rerr);
    int report = mf_report_write(e->run->path, NULL, &rerr);
    if (report == MF_EXIT_FAILED && status == MF_EXIT_OK && !err->count)
        mf_error_set(err, "%s (the run is saved; `mmfuse report %s` writes the page again)",
                     rerr.msg, e->run->path);
    else if (report != MF_EXIT_OK)
        fprintf(stderr, "mmfuse: warning: no report.html: %s\n", rerr.msg);
    if (!e->quiet)
        fprintf(e->log, "saved in %s\n", e->run->path);
}

int mfi_exit_status(int status, const mf_error *err)
{
    return status == MF_EXIT_BAD_INPUT && err && strstr(err->msg, "out of memory")
               ? MF_EXIT_FAILED : status;
}

/* The run's folder (rank 0's: the others only read the checkpoints they start from): a new
 * one, or the resumed one at its step; after --init-from's parameters. */
static int start_run(experiment *e, mfi_run_dir *run, const char *resume_dir, mf_run_result *res,
                     mf_error *err)
{
    const mf_run_options *opts = e->opts;
    const char *runs = NULL, *name = NULL;
    mf_config_string(e->cfg, "runs", &runs, NULL);
    mf_config_string(e->cfg, "name", &name, NULL);
    if (e->init_from && mfi_checkpoint_init_from(e, e->init_from, err))
        return MF_EXIT_BAD_INPUT;
    if (resume_dir && e->comm.rank > 0)
        return mfi_resume_load(e, resume_dir, err) ? MF_EXIT_BAD_INPUT : MF_EXIT_OK;
    if (resume_dir) {
        if (mfi_resume_open(e, run, resume_dir, err))
            return MF_EXIT_BAD_INPUT;
    } else if (e->comm.rank > 0 || (opts && opts->no_save)) {
        return MF_EXIT_OK;
    } else {
        if (mfi_run_dir_create(run, opts ? opts->run_dir : NULL, runs, name, err))
            return MF_EXIT_FAILED;
        if ((e->run = run, mfi_track_start(e, err)) || mfi_run_dir_publish(run, err)) {
            mfi_run_dir_abandon(run, err);
            e->run = NULL;
            return MF_EXIT_FAILED;
        }
    }
    e->run = run;
    snprintf(res->run_dir, sizeof res->run_dir, "%s", run->path);
    return MF_EXIT_OK;
}

int mf_experiment_run(const char *path, const mf_run_options *opts, mf_run_result *res,
                      mf_error *err)
{
    mfi_comm world;
    if (mfi_dist_world(&world, err)) {
        if (res)
            memset(res, 0, sizeof *res);
        return MF_EXIT_BAD_INPUT;
    }
    return mfi_experiment_run_on(&world, path, opts, res, err);
}

int mfi_experiment_run_on(const mfi_comm *comm, const char *path, const mf_run_options *opts,
                          mf_run_result *res, mf_error *err)
{
    experiment e;
    mf_run_result local_res;
    memset(&e, 0, sizeof e);
    if (!res)
        res = &local_res;
    memset(res, 0, sizeof *res);
    const int has_resume = opts && opts->struct_size >= offsetof(mf_run_options, init_from) +
                                                            sizeof opts->init_from;
    const char *resume = has_resume ? opts->resume : NULL;
    char resume_dir[4096], resume_config[4200];
    if (resume) {
        int found = mfi_resume_locate(path, resume, resume_dir, sizeof resume_dir,
                                      opts->log ? opts->log : stdout, err);
        if (found)
            return found > 0 ? MF_EXIT_OK : MF_EXIT_BAD_INPUT;
        snprintf(resume_config, sizeof resume_config, "%s/config.yaml", resume_dir);
        path = resume_config; /* the run continues as its folder recorded it */
    }
    e.init_from = has_resume ? opts->init_from : NULL;
    e.force_checkpoint = opts && opts->struct_size >= offsetof(mf_run_options, force) +
                                                       sizeof opts->force && opts->force;
    e.path = path;
    e.opts = opts;
    e.log = opts && opts->log ? opts->log : stdout;
    e.quiet = opts ? opts->quiet : 0;
    char *copy = strdup(path);
    e.base_dir = strdup(copy ? dirname(copy) : ".");
    free(copy);

    mfi_run_dir run;
    int status = MF_EXIT_OK;
    e.comm = *comm;
    FILE *silent = e.comm.rank > 0 ? fopen("/dev/null", "w") : NULL;
    if (silent) /* rank 0 speaks and writes for all */
        e.log = silent, e.quiet = 1;
    if (status == MF_EXIT_OK && mfi_experiment_prepare(&e, opts, err))
        status = MF_EXIT_BAD_INPUT;
    if ((status = mfi_dist_agree(&e.comm, status, err)) || (opts && opts->validate_only))
        goto done;
    status = start_run(&e, &run, resume ? resume_dir : NULL, res, err);
    if ((status = mfi_dist_agree(&e.comm, status, err))) {
        if (e.run) /* another rank failed: rank 0's folder stays as it was made or resumed */
            mfi_run_dir_free(e.run);
        goto done;
    }
    describe(&e);
    if (!(e.details = json_object())) {
        mf_error_set(err, "out of memory");
        status = MF_EXIT_FAILED;
        goto done;
    }
    status = mfi_train(&e, res, err);
    if (e.run) {
        int had = err->count;
        save_result(&e, status, res, err);
        if (status == MF_EXIT_OK && err->count > had)
            status = MF_EXIT_FAILED;
        mfi_run_dir_free(e.run);
    }
done:
    mfi_experiment_free(&e);
    if (silent)
        fclose(silent);
    return mfi_exit_status(status, err);
}
