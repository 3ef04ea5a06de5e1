/* Robustness on the test split (eval.robustness), as MultiBench measures it (Liang et al.
 * 2021): the selected metric with each modality dropped, and under each Gaussian noise level
 * on each feature modality, one at a time; per modality, the area under the metric-vs-noise
 * curve (relative robustness) and, against a late-fusion run's curves on the same levels,
 * effective robustness. Written to result.json ("robustness") and robustness.csv.
 *
 * MultiBench then min-max normalises both numbers across the methods it compares; a single
 * run cannot, so the raw values are reported (compare runs with them, or normalise later).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "experiment_internal.h"
#include "metric_math.h"

#define MAX_LEVELS MFI_MAX_NOISE_LEVELS

/* eval.robustness.default_noise: MultiBench's grid, 0, 0.1, …, 0.9 */
static const double default_levels[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};

/* What is measured: modalities dropped, noise levels, and the modalities noise goes to. */
typedef struct plan {
    int n_drop, drop[MAX_MODALITIES];
    int n_levels;
    double level[MAX_LEVELS];
    int noisy[MAX_MODALITIES]; /* feature inputs (noise on token ids means nothing) */
} plan;

/* `drop: [all]` names every modality in use (unless one is called "all"). */
static int is_all(const experiment *e, const char *name)
{
    for (int m = 0; m < e->n_mod; m++)
        if (strcmp(e->mod_name[m], name) == 0)
            return 0;
    return strcmp(name, "all") == 0;
}

static void make_plan(experiment *e, plan *pl)
{
    const mf_config *rob = mf_config_get(mfi_section(e, "eval"), "robustness");
    const mf_config *drop = mf_config_get(rob, "drop"), *noise = mf_config_get(rob, "noise");
    int grid = 0;
    mf_config_bool(rob, "default_noise", &grid, NULL);
    pl->n_drop = 0;
    for (int i = 0; i < mf_config_length(drop) && pl->n_drop < MAX_MODALITIES; i++) {
        const char *name = mf_config_scalar(mf_config_at(drop, i));
        for (int m = 0; m < e->n_mod && pl->n_drop < MAX_MODALITIES; m++)
            if (is_all(e, name) || strcmp(e->mod_name[m], name) == 0)
                pl->drop[pl->n_drop++] = m; /* checked at open: names are modalities in use */
    }
    pl->n_levels = 0;
    if (mf_config_length(noise) == 0 && grid)
        for (size_t i = 0; i < sizeof default_levels / sizeof *default_levels; i++)
            pl->level[pl->n_levels++] = default_levels[i];
    for (int i = 0; i < mf_config_length(noise) && pl->n_levels < MAX_LEVELS; i++)
        pl->level[pl->n_levels++] = strtod(mf_config_scalar(mf_config_at(noise, i)), NULL);
    for (int m = 0; m < e->n_mod; m++)
        pl->noisy[m] = pl->n_levels > 0 && !(e->in_flags[m] & MF_IO_TOKENS);
}

/* ---------------------------------------------------------------- the baseline */
/* A run's robustness section: result.json["robustness"] (or ["details"]["robustness"]). */
static json_t *robustness_of(json_t *root)
{
    json_t *r = json_object_get(root, "robustness");
    return r ? r : json_object_get(json_object_get(root, "details"), "robustness");
}

/* eval.robustness.baseline resolved against the experiment's folder; a folder means its
 * result.json. Returns the parsed file (the caller frees it), NULL with a located error. */
static json_t *load_baseline(experiment *e, const mf_config *node, char *path, size_t size,
                             mf_error *err)
{
    const char *given = mf_config_scalar(node);
    snprintf(path, size, "%s%s%s", given[0] == '/' ? "" : e->base_dir,
             given[0] == '/' ? "" : "/", given);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path + strlen(path), size - strlen(path), "/result.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        mf_config_error(err, node, "cannot read the baseline %s: %s", path, jerr.text);
        return NULL;
    }
    if (!json_is_object(robustness_of(root))) {
        mf_config_error(err, node, "the baseline %s has no robustness results (run it with "
                        "eval.robustness.noise or default_noise)", path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The baseline's noise curve of modality `name` on this run's levels, into lf; -1 when it
 * has none there. */
static int baseline_curve(json_t *rob, const char *name, const plan *pl, double *lf)
{
    json_t *curve = json_object_get(json_object_get(rob, "noise"), name);
    json_t *levels = json_object_get(curve, "levels"), *values = json_object_get(curve, "values");
    if (json_array_size(levels) != (size_t)pl->n_levels ||
        json_array_size(values) != (size_t)pl->n_levels)
        return -1;
    for (int i = 0; i < pl->n_levels; i++) {
        if (fabs(json_number_value(json_array_get(levels, (size_t)i)) - pl->level[i]) > 1e-9 ||
            !json_is_number(json_array_get(values, (size_t)i)))
            return -1;
        lf[i] = json_number_value(json_array_get(values, (size_t)i));
    }
    return 0;
}

int mfi_check_robustness_baseline(experiment *e, mf_error *err)
{
    const mf_config *node = mf_config_get(mfi_section(e, "eval"), "robustness.baseline");
    if (!node || !*mf_config_scalar(node))
        return 0;
    plan pl;
    make_plan(e, &pl);
    int any = 0;
    for (int m = 0; m < e->n_mod; m++)
        any |= pl.noisy[m];
    if (!any) {
        mf_config_error(err, node, "a baseline compares noise curves, and this run measures none "
                        "(give eval.robustness.noise levels or default_noise: true)");
        return -1;
    }
    char path[4200];
    json_t *root = load_baseline(e, node, path, sizeof path, err);
    if (!root)
        return -1;
    json_t *rob = robustness_of(root);
    const char *metric = json_string_value(json_object_get(rob, "metric"));
    int status = 0;
    if (!metric || strcmp(metric, e->select + 4) != 0) {
        mf_config_error(err, node, "the baseline %s measured robustness by '%s' and this run "
                        "by '%s' (set train.select alike)", path, metric ? metric : "?",
                        e->select + 4);
        status = -1;
    }
    double lf[MAX_LEVELS];
    for (int m = 0; m < e->n_mod && status == 0; m++)
        if (pl.noisy[m] && baseline_curve(rob, e->mod_name[m], &pl, lf)) {
            mf_config_error(err, node, "the baseline %s has no noise curve for '%s' on this "
                            "run's %d levels (%g … %g)", path, e->mod_name[m], pl.n_levels,
                            pl.level[0], pl.level[pl.n_levels - 1]);
            status = -1;
        }
    json_decref(root);
    return status;
}

/* ---------------------------------------------------------------- evaluation */
/* One pass over the test split with modality m dropped (level < 0) or noised at `level`;
 * t numbers the transform (its noise stream). */
static int transformed(mfi_pass *p, mfi_loader *test, int m, double level, int t,
                       mfi_metric_table *out, mf_error *err)
{
    experiment *e = p->e;
    if (level < 0)
        e->input[m].drop = 1;
    else
        e->input[m].noise = (float)level;
    mf_rng rng;
    mf_rng_seed_stream(&rng, (uint64_t)e->seed, UINT64_C(0x726f62) + (uint64_t)t); /* "rob" */
    int status = mfi_run_pass(p, test, 0, &rng, err);
    e->input[m].drop = 0;
    e->input[m].noise = 0;
    if (status == MF_EXIT_OK)
        mfi_meter_table(p->meter, out);
    return status;
}

static void report(experiment *e, FILE *csv, const char *kind, int m, double level,
                   const mfi_metric_table *st, const char *metric, const char *second, double clean)
{
    const double v = mfi_metric_get(st, metric);
    fprintf(e->log, "  %-5s %-12s %-6g %s %.4f  (%+.4f)\n", kind, e->mod_name[m], level, metric,
            v, v - clean);
    fprintf(csv, "%s,%s,%g,%.6f,%.6f\n", kind, e->mod_name[m], level, v,
            mfi_metric_get(st, second));
}

/* Per noisy modality: the curve, its area and, with a baseline, effective robustness. */
static void add_curves(experiment *e, const plan *pl, double (*curve)[MAX_LEVELS], json_t *out,
                       json_t *base)
{
    json_t *noise = json_object(), *relative = json_object(), *effective = json_object();
    for (int m = 0; m < e->n_mod; m++) {
        if (!pl->noisy[m])
            continue;
        json_t *levels = json_array(), *values = json_array();
        for (int i = 0; i < pl->n_levels; i++) {
            json_array_append_new(levels, json_real(pl->level[i]));
            json_array_append_new(values, isfinite(curve[m][i]) ? json_real(curve[m][i])
                                                                : json_null());
        }
        json_object_set_new(noise, e->mod_name[m],
                            json_pack("{s:o, s:o}", "levels", levels, "values", values));
        json_object_set_new(relative, e->mod_name[m],
                            json_real(mfi_relative_robustness(pl->level, curve[m], pl->n_levels)));
        double lf[MAX_LEVELS];
        if (base && baseline_curve(robustness_of(base), e->mod_name[m], pl, lf) == 0)
            json_object_set_new(effective, e->mod_name[m],
                                json_real(mfi_effective_robustness(curve[m], lf, pl->n_levels)));
    }
    json_object_set_new(out, "noise", noise);
    json_object_set_new(out, "relative", relative);
    if (base)
        json_object_set_new(out, "effective", effective);
    else
        json_decref(effective);
}

/* Every transform of the plan, one at a time, into `out` and the CSV. */
static int measure(mfi_pass *p, mfi_loader *test, const plan *pl, const mfi_metric_table *clean,
                   json_t *out, json_t *base, FILE *csv, mf_error *err)
{
    experiment *e = p->e;
    const char *metric = e->select + 4;
    const char *second = strcmp(metric, "accuracy") == 0 ? "macro_f1" : "loss";
    const double clean_v = mfi_metric_get(clean, metric);
    json_t *drop = json_object();
    json_object_set_new(out, "drop", drop);
    mfi_metric_table st;
    int status;
    for (int i = 0; i < pl->n_drop; i++) {
        if ((status = transformed(p, test, pl->drop[i], -1, i, &st, err)))
            return status;
        report(e, csv, "drop", pl->drop[i], 0, &st, metric, second, clean_v);
        const double v = mfi_metric_get(&st, metric);
        json_object_set_new(drop, e->mod_name[pl->drop[i]],
                            isfinite(v) ? json_real(v) : json_null());
    }
    static _Thread_local double curve[MAX_MODALITIES][MAX_LEVELS];
    for (int l = 0; l < pl->n_levels; l++)
        for (int m = 0; m < e->n_mod; m++) {
            if (!pl->noisy[m])
                continue;
            /* noise 0 changes nothing: the clean pass stands for it */
            if (pl->level[l] > 0 &&
                (status = transformed(p, test, m, pl->level[l], pl->n_drop + l * e->n_mod + m,
                                      &st, err)))
                return status;
            const mfi_metric_table *t = pl->level[l] > 0 ? &st : clean;
            report(e, csv, "noise", m, pl->level[l], t, metric, second, clean_v);
            curve[m][l] = mfi_metric_get(t, metric);
        }
    add_curves(e, pl, curve, out, base);
    return MF_EXIT_OK;
}

int mfi_evaluate_robustness(mfi_pass *p, mfi_loader *test, const mfi_metric_table *clean,
                            json_t *details, mf_error *err)
{
    experiment *e = p->e;
    plan pl;
    make_plan(e, &pl);
    if (pl.n_drop + pl.n_levels == 0)
        return MF_EXIT_OK;
    const char *metric = e->select + 4;
    const char *second = strcmp(metric, "accuracy") == 0 ? "macro_f1" : "loss";
    const mf_config *bnode = mf_config_get(mfi_section(e, "eval"), "robustness.baseline");
    char bpath[4200] = "";
    json_t *base = NULL;
    if (bnode && *mf_config_scalar(bnode) &&
        !(base = load_baseline(e, bnode, bpath, sizeof bpath, err)))
        return MF_EXIT_BAD_INPUT; /* checked at the start: it changed meanwhile */
    char *text = NULL;
    size_t len = 0;
    FILE *csv = open_memstream(&text, &len);
    json_t *out = json_object();
    if (!csv || !out) {
        mf_error_set(err, "out of memory");
        json_decref(base);
        return MF_EXIT_FAILED;
    }
    fprintf(csv, "transform,modality,level,%s,%s\nclean,,0,%.6f,%.6f\n", metric, second,
            mfi_metric_get(clean, metric), mfi_metric_get(clean, second));
    fprintf(e->log, "robustness (test split): clean %s %.4f\n", metric,
            mfi_metric_get(clean, metric));
    const double clean_v = mfi_metric_get(clean, metric);
    json_object_set_new(out, "metric", json_string(metric));
    json_object_set_new(out, "clean", isfinite(clean_v) ? json_real(clean_v) : json_null());
    int higher = 1;
    for (int i = 0; i < clean->n; i++)
        if (strcmp(clean->name[i], metric) == 0)
            higher = clean->higher_is_better[i];
    json_object_set_new(out, "higher_is_better", json_boolean(higher));
    int status = measure(p, test, &pl, clean, out, base, csv, err);
    if (base)
        json_object_set_new(out, "baseline", json_string(bpath));
    json_decref(base);
    fclose(csv);
    if (status == MF_EXIT_OK && details)
        json_object_set(details, "robustness", out);
    json_decref(out);
    if (status == MF_EXIT_OK && e->run) {
        char path[4200];
        snprintf(path, sizeof path, "%s/robustness.csv", e->run->path);
        if (mf_write_file_atomic(path, text, len, err))
            status = MF_EXIT_FAILED;
    }
    free(text);
    return status;
}
