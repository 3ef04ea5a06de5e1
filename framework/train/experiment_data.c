/* The data side of an experiment: the reader, the inputs the model uses (modalities and
 * views), their flags (token ids, padding), shared encoders, the splits, and the checks a
 * batch gets before the model sees it (token ids inside the vocabulary). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment_internal.h"

/* The host owns the info (zeroed, of its own size), so a 1.0 reader leaves these at 0. */
static int has_padding(const mf_dataset_info *in)
{
    return in->has_padding && in->pad_token >= 0;
}

/* encoders.<m>: {share: <other>}: the other modality's encoder (itself not shared), over
 * inputs of the same shape. */
static int resolve_shares(experiment *e, mf_error *err)
{
    int problems = 0;
    for (int m = 0; m < e->n_mod; m++) {
        e->shares[m] = -1;
        const mf_config *share = mf_config_get(e->encoder_cfg[m], "share");
        if (!share) {
            e->encoder_plugin[m] = mf_registry_find(
                e->reg, MF_KIND_ENCODER, mf_config_scalar(mf_config_get(e->encoder_cfg[m], "type")),
                NULL);
            continue;
        }
        const char *other = mf_config_scalar(share);
        int src = -1;
        for (int k = 0; k < e->n_mod; k++)
            if (k != m && strcmp(e->mod_name[k], other) == 0)
                src = k;
        char a[64], b[64];
        if (src < 0) {
            mf_config_error(err, share, "no other modality in use is named '%s'%s", other,
                            mf_suggestion(other, e->mod_name));
            problems++;
        } else if (mf_config_has(e->encoder_cfg[src], "share")) {
            mf_config_error(err, share, "'%s' shares an encoder itself; name the modality that "
                            "owns it", other);
            problems++;
        } else if (!mf_shape_equal(&e->input[m].shape, &e->input[src].shape) ||
                   e->in_flags[m] != e->in_flags[src]) {
            mf_config_error(err, share, "'%s' is %s per sample and '%s' is %s: a shared encoder "
                            "needs inputs of one shape and kind", e->mod_name[m],
                            mf_shape_str(&e->input[m].shape, a, sizeof a), other,
                            mf_shape_str(&e->input[src].shape, b, sizeof b));
            problems++;
        } else {
            e->shares[m] = src;
        }
    }
    for (int m = 0; m < e->n_mod; m++)
        if (e->shares[m] >= 0)
            e->encoder_plugin[m] = e->encoder_plugin[e->shares[m]];
    return problems ? -1 : 0;
}

int mfi_check_tokens(experiment *e, const mfi_batch *batch, model_graph *mg, mf_error *err)
{
    const mf_dataset_info *in = e->info;
    for (int m = 0; m < e->n_mod; m++) {
        if (!(e->in_flags[m] & MF_IO_TOKENS))
            continue;
        const float *ids = mf_node_value(mg->input[m]);
        const int64_t t = mf_shape_numel(&e->input[m].shape), v = e->in_vocab[m];
        float *mask = mg->mask[m] ? mf_node_value(mg->mask[m]) : NULL;
        for (int64_t i = 0; i < batch->n * t; i++) {
            const float id = ids[i];
            if (!(id >= 0 && id < (float)v && id == floorf(id))) {
                mf_error_set(err, "%s: the '%s' data gives sample %lld of '%s' the token id %g at "
                             "position %lld, outside its vocabulary 0…%lld", e->path,
                             e->reader->name, (long long)batch->index[i / t], e->mod_name[m], id,
                             (long long)(i % t), (long long)v - 1);
                return -1;
            }
            if (mask)
                mask[i] = id == (float)in->pad_token ? 1.0f : 0.0f;
        }
    }
    return 0;
}

/* eval.robustness.noise: strictly increasing levels (an area is taken under their curve). */
static int check_noise_levels(experiment *e, mf_error *err)
{
    const mf_config *noise = mf_config_get(mfi_section(e, "eval"), "robustness.noise");
    const int n = mf_config_length(noise);
    if (n > MFI_MAX_NOISE_LEVELS) {
        mf_config_error(err, noise, "at most %d noise levels, got %d", MFI_MAX_NOISE_LEVELS, n);
        return -1;
    }
    for (int i = 1; i < n; i++) {
        const char *prev = mf_config_scalar(mf_config_at(noise, i - 1));
        const char *cur = mf_config_scalar(mf_config_at(noise, i));
        if (!(strtod(cur, NULL) > strtod(prev, NULL))) {
            mf_config_error(err, mf_config_at(noise, i), "noise levels must increase, and %s "
                            "follows %s", cur, prev);
            return -1;
        }
    }
    return 0;
}

/* eval.robustness.drop names modalities in use; the noise levels increase. */
static int check_robustness(experiment *e, mf_error *err)
{
    const mf_config *drop = mf_config_get(mfi_section(e, "eval"), "robustness.drop");
    int problems = check_noise_levels(e, err) ? 1 : 0;
    for (int i = 0; i < mf_config_length(drop); i++) {
        const char *name = mf_config_scalar(mf_config_at(drop, i));
        int used = strcmp(name, "all") == 0; /* [all]: every modality in use */
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

/* What can be used: the reader's modalities, then the views carved out of them. A file may
 * hold more modalities than a model can use at once: only the picked ones are counted. */
typedef struct available {
    int n;
    const char **names; /* NULL-terminated */
    mfi_input *input;
} available;

/* data.views.<name>: {from, axis, start, length}. */
static int add_view(experiment *e, available *av, const mf_config *views, int v, mf_error *err)
{
    const mf_dataset_info *in = e->info;
    const mf_config *spec = mf_config_at(views, v);
    if (mf_config_node_kind(spec) != MF_CONFIG_MAP) {
        mf_config_error(err, spec, "expected a map like {from: image, axis: 1, start: 0, "
                                   "length: 14}");
        return -1;
    }
    if (mf_config_check((mf_config *)spec, mfi_view_specs, NULL, err))
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
    if (source < 0) {
        mf_config_error(err, mf_config_get(spec, "from"), "the '%s' data has no modality '%s'%s",
                        e->reader->name, from, mf_suggestion(from, av->names));
        return -1;
    }
    mf_error why;
    mf_error_clear(&why);
    av->input[av->n] = (mfi_input){.name = mf_config_key_at(views, v), .source = source};
    if (mfi_input_view(&av->input[av->n], &in->modalities[source].shape, axis, start, length,
                       &why)) {
        mf_config_error(err, spec, "%s", why.msg);
        return -1;
    }
    av->names[av->n++] = mf_config_key_at(views, v);
    av->names[av->n] = NULL;
    return 0;
}

static int list_available(experiment *e, available *av, mf_error *err)
{
    const mf_dataset_info *in = e->info;
    const mf_config *views = mf_config_get(e->data_cfg, "views");
    const size_t room = (size_t)in->n_modalities + (size_t)mf_config_length(views);
    av->n = 0;
    av->names = calloc(room + 1, sizeof *av->names);
    av->input = calloc(room ? room : 1, sizeof *av->input);
    if (!av->names || !av->input) {
        mf_error_set(err, "%s: out of memory for %zu modalities and views", e->path, room);
        return -1;
    }
    for (int m = 0; m < in->n_modalities; m++) {
        av->input[av->n] = (mfi_input){.name = in->modalities[m].name, .source = m, .axis = -1,
                                       .shape = in->modalities[m].shape};
        av->names[av->n++] = in->modalities[m].name;
    }
    av->names[av->n] = NULL;
    for (int v = 0; v < mf_config_length(views); v++)
        if (add_view(e, av, views, v, err))
            return -1;
    return 0;
}

/* The inputs used: data.modalities; or the views when there are any; or every modality. */
static int pick_inputs(experiment *e, const available *av, mf_error *err)
{
    const mf_dataset_info *in = e->info;
    const mf_config *wanted = mf_config_get(e->data_cfg, "modalities");
    int n_wanted = mf_config_length(wanted), n_views = av->n - in->n_modalities, standardize;
    const int n_mod = n_wanted ? n_wanted : n_views ? n_views : in->n_modalities;
    if (n_mod > MAX_MODALITIES) {
        const mf_config *at = n_wanted ? wanted : n_views ? mf_config_get(e->data_cfg, "views")
                                                          : e->data_cfg;
        mf_config_error(err, at, "%d %s would be used; a model takes at most %d at once%s", n_mod,
                        n_wanted ? "modalities" : n_views ? "views" : "modalities of the data",
                        MAX_MODALITIES,
                        n_wanted || n_views ? "" : " (pick some with data.modalities)");
        return -1;
    }
    e->n_mod = n_mod;
    mf_config_bool(e->data_cfg, "standardize", &standardize, NULL);
    for (int i = 0; i < e->n_mod; i++) {
        const char *name = n_wanted ? mf_config_scalar(mf_config_at(wanted, i))
                                    : av->names[n_views ? in->n_modalities + i : i];
        int found = -1;
        for (int m = 0; m < av->n; m++)
            if (strcmp(av->names[m], name) == 0)
                found = m;
        if (found < 0) {
            mf_config_error(err, mf_config_at(wanted, i),
                            "the '%s' data has no modality or view '%s'%s", e->reader->name,
                            name, mf_suggestion(name, av->names));
            return -1;
        }
        e->input[i] = av->input[found];
        const int tokens = in->modalities[av->input[found].source].dtype == MF_DTYPE_TOKEN;
        e->input[i].standardize = standardize && !tokens;
        e->mod_name[i] = e->input[i].name;
        /* token ids: the vocabulary travels to the encoder, and a padding mask when the
         * reader pads */
        e->in_flags[i] = tokens ? MF_IO_TOKENS | (has_padding(in) ? MF_IO_MASKED : 0) : 0;
        e->in_vocab[i] = tokens ? in->vocab_size : 0;
    }
    e->mod_name[e->n_mod] = NULL;
    return 0;
}

/* Every modality used has an encoder; every encoder a modality. */
static int match_encoders(experiment *e, mf_error *err)
{
    const mf_config *encoders = mf_config_get(mfi_section(e, "model"), "encoders");
    int problems = 0;
    for (int i = 0; i < mf_config_length(encoders); i++) {
        const char *key = mf_config_key_at(encoders, i);
        int used = 0;
        for (int m = 0; m < e->n_mod; m++)
            used |= strcmp(e->mod_name[m], key) == 0;
        if (!used) {
            mf_config_error(err, mf_config_at(encoders, i),
                            "an encoder for '%s', which is not a modality in use%s", key,
                            mf_suggestion(key, e->mod_name));
            problems++;
        }
    }
    for (int m = 0; m < e->n_mod; m++) {
        e->encoder_cfg[m] = mf_config_get(encoders, e->mod_name[m]);
        if (!e->encoder_cfg[m]) {
            mf_config_error(err, encoders, "no encoder for modality '%s' (use {type: identity} "
                            "to pass it through)", e->mod_name[m]);
            problems++;
        }
    }
    return problems || resolve_shares(e, err) ? -1 : 0;
}

/* No sample is in training: said of the data file (data.path, when the reader has one) and
 * of its split, which is where the fix lies — not of the experiment. */
static int no_training_samples(experiment *e, mf_error *err)
{
    const mfi_splits *sp = &e->splits;
    if (sp->count[MF_SPLIT_TRAIN] > 0)
        return 0;
    const mf_config *path = mf_config_get(e->data_cfg, "path");
    char data[512];
    if (path && mf_config_scalar(path) && *mf_config_scalar(path))
        snprintf(data, sizeof data, "'%s'", mf_config_scalar(path));
    else
        snprintf(data, sizeof data, "the '%s' data", e->reader->name);
    mf_config_error(err, path ? path : e->data_cfg,
                    "%s has no training samples: its split puts %lld in validation and %lld in "
                    "test, none in training (split 0)", data,
                    (long long)sp->count[MF_SPLIT_VAL], (long long)sp->count[MF_SPLIT_TEST]);
    return -1;
}

int mfi_open_data(experiment *e, mf_error *err)
{
    e->ds = mf_dataset_open(e->reader, e->data_cfg, e->base_dir, err);
    if (!e->ds)
        return -1;
    e->info = mf_dataset_get_info(e->ds);
    const mf_dataset_info *in = e->info;
    e->target_kind = in->label_kind == MF_LABELS_CLASSES   ? MF_TARGET_CLASSES
                     : in->label_kind == MF_LABELS_TARGETS ? MF_TARGET_VALUES
                                                           : MF_TARGET_MULTILABEL;
    e->target_dim = in->label_kind == MF_LABELS_CLASSES ? in->n_classes : in->target_dim;
    if (in->n_modalities > MFI_MAX_MODALITIES) {
        mf_error_set(err, "%s: the '%s' data has %d modalities; at most %d are supported",
                     e->path, e->reader->name, in->n_modalities, MFI_MAX_MODALITIES);
        return -1;
    }
    available av = {0};
    int rc = list_available(e, &av, err) || pick_inputs(e, &av, err) ||
             match_encoders(e, err) ||
             mfi_splits_make(in, e->val_fraction, (uint64_t)e->seed, &e->splits, err);
    free(av.names); /* the picked inputs were copied; names live in the info and the config */
    free(av.input);
    if (rc || no_training_samples(e, err))
        return -1;
    return check_robustness(e, err) || mfi_augment_setup(e, err) ? -1 : 0;
}
