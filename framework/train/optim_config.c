/* The optim section of an experiment: the update rule, learning-rate factors by module path,
 * the schedule and gradient clipping (and train.accumulate), read once the model's
 * parameters exist; and the step the loop calls, which puts them together:
 *
 *     lr = optim.lr · schedule(step);  g ← g / accumulated batches;  clip ‖g‖₂;
 *     mf_optim_step (each parameter's rate times its lr_scale)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experiment_internal.h"

#define MAX_SCALES 64 /* optim.lr_scale entries */

typedef struct scale_rule {
    const mf_config *node; /* the value, for errors */
    char key[256];         /* module path relative to lr_scale, dotted */
    double factor;
} scale_rule;

/* ---------------------------------------------------------------- optim.lr_scale */
/* Flatten {model: {encoders: {rgb: 0.1}}} and {model.encoders.rgb: 0.1} (an override
 * -o optim.lr_scale.model.encoders.rgb=0.1 nests the maps) alike into dotted keys. */
static int flatten(const mf_config *map, const char *prefix, scale_rule *r, int *n,
                   mf_error *err)
{
    int problems = 0;
    for (int i = 0; i < mf_config_length(map); i++) {
        const mf_config *v = mf_config_at(map, i);
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", mf_config_key_at(map, i));
        if (mf_config_node_kind(v) == MF_CONFIG_MAP) {
            problems += flatten(v, key, r, n, err);
            continue;
        }
        const char *text = mf_config_scalar(v);
        char *end = NULL;
        double f = text && !mf_config_is_quoted(v) ? strtod(text, &end) : NAN;
        if (!text || end == text || *end || !isfinite(f) || f < 0) {
            mf_config_error(err, v, "expected a factor ≥ 0 on optim.lr for the parameters "
                                    "under '%s', got %s%s%s", key, text ? "'" : "a list",
                            text ? text : "", text ? "'" : "");
            problems++;
            continue;
        }
        int dup = -1;
        for (int j = 0; j < *n; j++)
            dup = strcmp(r[j].key, key) == 0 ? j : dup;
        if (dup >= 0)
            mf_config_error(err, v, "the module path '%s' is given twice", key);
        else if (*n == MAX_SCALES)
            mf_config_error(err, v, "at most %d module paths can have a factor", MAX_SCALES);
        if (dup >= 0 || *n == MAX_SCALES) {
            problems++;
            continue;
        }
        r[*n] = (scale_rule){v, "", f};
        snprintf(r[*n].key, sizeof r[*n].key, "%s", key);
        (*n)++;
    }
    return problems;
}

/* `key` is `name` or a prefix of it ending at a '.'. */
static int under(const char *name, const char *key)
{
    size_t k = strlen(key);
    return strncmp(name, key, k) == 0 && (name[k] == 0 || name[k] == '.');
}

/* The module paths of the model (every dotted prefix of a parameter name, then the names),
 * to suggest one for a key that matches nothing. NULL-terminated; the caller frees both. */
static const char **module_paths(mf_params *ps, char **storage)
{
    const int n = mf_params_size(ps), cap = 4096;
    const char **out = calloc((size_t)cap + 1, sizeof *out);
    size_t bytes = 1;
    for (int i = 0; i < n; i++) // each prefix, ended by its '.' (or the name's end) and a NUL
        for (const char *c = mf_param_name(mf_params_at(ps, i)); *c; c++)
            bytes += c[1] == '.' || c[1] == 0 ? (size_t)(c - mf_param_name(mf_params_at(ps, i))) + 2 : 0;
    char *buf = *storage = malloc(bytes), *at = buf;
    int k = 0;
    for (int i = 0; out && buf && i < n && k < cap; i++) {
        const char *name = mf_param_name(mf_params_at(ps, i));
        for (const char *d = strchr(name, '.'); k < cap; d = strchr(d + 1, '.')) {
            size_t len = d ? (size_t)(d - name) : strlen(name);
            memcpy(at, name, len);
            at[len] = 0;
            int seen = 0; // a module's parameters are adjacent: look back a little only
            for (int j = k - 1; j >= 0 && j >= k - 16 && !seen; j--)
                seen = strcmp(out[j], at) == 0;
            if (!seen) {
                out[k++] = at;
                at += len + 1;
            }
            if (!d)
                break;
        }
    }
    return out;
}

static int read_lr_scale(experiment *e, const mf_config *map, mf_error *err)
{
    scale_rule rule[MAX_SCALES];
    int n = 0, problems = flatten(map, "", rule, &n, err);
    const int np = mf_params_size(e->params);
    if (problems || n == 0)
        return problems;
    if (!(e->lr_scale = malloc((size_t)(np ? np : 1) * sizeof *e->lr_scale))) {
        mf_error_set(err, "out of memory");
        return 1;
    }
    for (int i = 0; i < np; i++) { // the longest matching path decides
        const char *name = mf_param_name(mf_params_at(e->params, i));
        int best = -1;
        for (int j = 0; j < n; j++)
            if (under(name, rule[j].key) && (best < 0 || strlen(rule[j].key) > strlen(rule[best].key)))
                best = j;
        e->lr_scale[i] = best >= 0 ? (float)rule[best].factor : 1.0f;
    }
    for (int j = 0; j < n; j++) {
        int any = 0;
        for (int i = 0; i < np && !any; i++)
            any = under(mf_param_name(mf_params_at(e->params, i)), rule[j].key);
        if (any)
            continue;
        char *storage = NULL;
        const char **paths = module_paths(e->params, &storage);
        mf_config_error(err, rule[j].node, "no parameter of the model is under '%s'%s",
                        rule[j].key, paths ? mf_suggestion(rule[j].key, paths) : "");
        free(paths);
        free(storage);
        problems++;
    }
    return problems;
}

/* ---------------------------------------------------------------- optim.schedule */
/* A key that only some schedule types read, given with another: one sentence on the key. */
static int misplaced(const mf_config *s, const char *key, int ok, const char *who,
                     const char *type, mf_error *err)
{
    if (ok || !mf_config_has(s, key))
        return 0;
    mf_config_error(err, mf_config_get(s, key), "only %s %s (this one is %s)", who, key, type);
    return 1;
}

/* The length of training in steps or epochs, as the loop will plan it (train.steps, or
 * train.epochs of ⌈⌈n/batch⌉/accumulate⌉ steps); *key names where it comes from. */
static int64_t training_units(experiment *e, int epochs_unit, const char **key)
{
    const mf_config *t = mfi_section(e, "train");
    int64_t steps = 0, epochs = 0;
    mf_config_int(t, "steps", &steps, NULL);
    mf_config_int(t, "epochs", &epochs, NULL);
    const int64_t n = e->splits.count[MF_SPLIT_TRAIN], acc = e->accumulate > 1 ? e->accumulate : 1;
    const int64_t batches = e->batch_size > 0 ? (n + e->batch_size - 1) / e->batch_size : 0;
    const int64_t per_epoch = (batches + acc - 1) / acc;
    *key = steps > 0 ? "train.steps" : "train.epochs";
    if (per_epoch <= 0)
        return 0;
    if (steps > 0)
        return epochs_unit ? (steps + per_epoch - 1) / per_epoch : steps;
    return epochs_unit ? epochs : epochs * per_epoch;
}

static int read_schedule(experiment *e, mf_config *s, mf_error *err)
{
    mf_lr_schedule *sc = &e->schedule;
    int kind = 0, unit = 0, problems = mf_config_check(s, mfi_schedule_specs, NULL, err);
    if (problems)
        return problems;
    const char *type = mf_config_scalar(mf_config_get(s, "type"));
    mf_config_enum(s, "type", MF_LR_SCHEDULE_CHOICES, &kind, NULL);
    mf_config_enum(s, "unit", "steps|epochs", &unit, NULL);
    *sc = (mf_lr_schedule){.kind = (mf_lr_schedule_kind)kind, .per_epoch = unit == 1,
                           .gamma = 0.1};
    mf_config_int(s, "warmup", &sc->warmup, NULL);
    const int is_step = kind == MF_LR_STEP, decays = kind == MF_LR_COSINE || kind == MF_LR_LINEAR;
    static const char step_only[] = "a step schedule has a", decay_only[] = "cosine and linear "
                                                                             "schedules have";
    problems += misplaced(s, "step_size", is_step, step_only, type, err);
    problems += misplaced(s, "gamma", is_step, step_only, type, err);
    problems += misplaced(s, "min_lr", decays, decay_only, type, err);
    problems += misplaced(s, "min_factor", decays, decay_only, type, err);
    if (is_step && !mf_config_has(s, "step_size")) {
        mf_config_error(err, s, "a step schedule needs step_size (the %s between decays)",
                        unit ? "epochs" : "steps");
        problems++;
    }
    if (mf_config_has(s, "warmup_start") && sc->warmup == 0) {
        mf_config_error(err, mf_config_get(s, "warmup_start"),
                        "warmup_start is the factor warm-up starts from, and warmup is 0");
        problems++;
    }
    if (decays && mf_config_has(s, "min_lr") && mf_config_has(s, "min_factor")) {
        mf_config_error(err, mf_config_get(s, "min_factor"),
                        "give the final rate as min_lr or as min_factor, not both");
        problems++;
    }
    const char *key;
    const int64_t units = training_units(e, unit, &key);
    if (sc->warmup > 0 && units > 0 && sc->warmup >= units) {
        mf_config_error(err, mf_config_get(s, "warmup"), "a warm-up of %lld %s leaves none of "
                        "the %lld %s of training (%s) to the schedule", (long long)sc->warmup,
                        unit ? "epochs" : "steps", (long long)units, unit ? "epochs" : "steps",
                        key);
        problems++;
    }
    if (problems)
        return problems;
    mf_config_int(s, "step_size", &sc->step_size, NULL);
    mf_config_float(s, "gamma", &sc->gamma, NULL);
    mf_config_float(s, "warmup_start", &sc->warmup_start, NULL);
    mf_config_float(s, "min_factor", &sc->min_factor, NULL);
    double min_lr = 0;
    if (mf_config_float(s, "min_lr", &min_lr, NULL) == 0) {
        if (min_lr > e->base_lr) {
            mf_config_error(err, mf_config_get(s, "min_lr"), "the final rate %g is above "
                            "optim.lr %g (a schedule here only lowers the rate)", min_lr, e->base_lr);
            return 1;
        }
        sc->min_factor = e->base_lr > 0 ? min_lr / e->base_lr : 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- the section */
int mfi_optim_configure(experiment *e, mf_error *err)
{
    mf_config *o = mfi_section(e, "optim");
    double betas[2] = {0.9, 0.999};
    int n, kind = 0, nesterov = 0, problems = 0;
    mfi_optim_free(e);
    const int64_t step = e->optim.step; /* kept: configuring twice changes nothing */
    e->optim = (mf_optim){.step = step};
    mf_config_enum(o, "type", MF_OPTIM_CHOICES, &kind, NULL);
    mf_config_float(o, "lr", &e->optim.lr, NULL);
    mf_config_float(o, "weight_decay", &e->optim.weight_decay, NULL);
    mf_config_float_list(o, "betas", betas, 2, &n, NULL);
    mf_config_float(o, "eps", &e->optim.eps, NULL);
    mf_config_float(o, "momentum", &e->optim.momentum, NULL);
    mf_config_bool(o, "nesterov", &nesterov, NULL);
    mf_config_float(o, "clip_grad_norm", &e->clip_grad_norm, NULL);
    e->optim.kind = (mf_optim_kind)kind;
    e->optim.beta1 = betas[0];
    e->optim.beta2 = betas[1];
    e->optim.nesterov = nesterov;
    e->base_lr = e->last_lr = e->optim.lr;
    e->accumulate = 1; /* read first: the schedule's checks count steps with it */
    mf_config_int(mfi_section(e, "train"), "accumulate", &e->accumulate, NULL);
    e->bucket_mb = 25;
    mf_config_float(mfi_section(e, "train"), "bucket_mb", &e->bucket_mb, NULL);
    if (nesterov && (kind != MF_OPTIM_SGD || e->optim.momentum <= 0)) {
        mf_config_error(err, mf_config_get(o, "nesterov"), kind != MF_OPTIM_SGD
                        ? "Nesterov momentum is an option of sgd, and optim.type is %s"
                        : "Nesterov momentum needs optim.momentum > 0%s",
                        kind != MF_OPTIM_SGD ? mf_config_scalar(mf_config_get(o, "type")) : "");
        problems++;
    }
    mf_config *s = (mf_config *)mf_config_get(o, "schedule");
    if (s)
        problems += read_schedule(e, s, err);
    const mf_config *scales = mf_config_get(o, "lr_scale");
    if (scales)
        problems += read_lr_scale(e, scales, err);
    e->optim.lr_scale = e->lr_scale;
    return problems ? -1 : 0;
}

double mfi_optim_update(experiment *e, int64_t step, int64_t steps_per_epoch,
                        int64_t total_steps)
{
    mf_optim *o = &e->optim;
    const double avg = e->accum_batches > 1 ? 1.0 / (double)e->accum_batches : 1.0;
    double norm = NAN, scale = avg;
    o->lr = e->base_lr * mf_lr_factor(&e->schedule, step, steps_per_epoch, total_steps);
    if (e->clip_grad_norm > 0) { // the norm first, then clipping fused into the update
        norm = mfi_params_grad_norm(e->params) * avg;
        scale *= mfi_clip_coef(norm, e->clip_grad_norm);
    }
    o->grad_scale = scale;
    o->lr_scale = e->lr_scale;
    mf_optim_step(o, e->params);
    e->last_lr = o->lr;
    return e->clip_grad_norm > 0 ? norm : o->grad_norm * avg;
}

double mfi_optim_lr(const experiment *e)
{
    return e->last_lr;
}

void mfi_optim_free(experiment *e)
{
    free(e->lr_scale);
    e->lr_scale = NULL;
    e->optim.lr_scale = NULL;
}
