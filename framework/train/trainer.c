/* The training loop: passes over the splits, hooks (after backward, after the optimiser
 * step, end of epoch), model selection and early stopping on train.select, the test pass at
 * the kept epoch, and robustness evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "experiment_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef mfi_pass pass;

/* ---------------------------------------------------------------- one batch */
/* Targets: class indices checked against the class count, or (B,K) floats. */
static int fill_target(experiment *e, model_graph *mg, const mfi_batch *batch, mf_error *err)
{
    float *target = mf_node_value(mg->target);
    const int64_t b = batch->n;
    if (e->target_kind != MF_TARGET_CLASSES) {
        const int64_t k = e->target_dim;
        for (int64_t i = 0; i < b * k; i++)
            target[i] = e->target_mean
                            ? (float)((batch->targets[i] - e->target_mean[i % k]) / e->target_std[i % k])
                            : batch->targets[i];
        return 0;
    }
    for (int64_t i = 0; i < b; i++) {
        int32_t y = batch->labels[i];
        if (y < 0 || y >= e->target_dim) {
            mf_error_set(err, "%s: the '%s' data gives sample %lld the label %d, outside 0…%lld",
                         e->path, e->reader->name, (long long)batch->index[i], y,
                         (long long)e->target_dim - 1);
            return -1;
        }
        target[i] = (float)y;
    }
    return 0;
}

/* Missing: dropped for the whole split (robustness), or by modality dropout. */
static void fill_missing(experiment *e, model_graph *mg, int m, int64_t b, int training)
{
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

static int fill_batch(experiment *e, model_graph *mg, const mfi_batch *batch, int training,
                      mf_rng *rng, mf_error *err)
{
    for (int m = 0; m < e->n_mod; m++) {
        mfi_assemble(&e->input[m], e->info, batch, mf_node_value(mg->input[m]), rng);
        if (mg->missing[m])
            fill_missing(e, mg, m, batch->n, training);
    }
    return mfi_check_tokens(e, batch, mg, err) || fill_target(e, mg, batch, err) ? -1 : 0;
}

static int call_hook(pass *p, int (*hook)(void *, const mf_train_state *, mf_error *),
                     const mf_train_state *st, const char *which, mf_error *err)
{
    if (!hook)
        return 0;
    int before = err->count;
    if (hook(p->hooks->user, st, err) == 0)
        return 0;
    if (err->count == before)
        mf_error_set(err, "%s: the %s hook stopped the run", p->e->path, which);
    return -1;
}

/* Backward, hooks and the optimiser step for one training batch. */
static int train_step(pass *p, model_graph *mg, double loss, mf_error *err)
{
    experiment *e = p->e;
    const mf_train_hooks *h = p->hooks;
    mf_train_state st = {sizeof st, p->epoch, p->step, mg->g, e->params, &e->optim, loss,
                         0,         NULL,     NULL};
    mf_graph_backward(mg->g, mg->loss); /* from zero: the optimiser zeroed them */
    if (h && call_hook(p, h->after_backward, &st, "after_backward", err))
        return -1;
    mf_optim_step(&e->optim, e->params);
    st.step = ++p->step;
    if (h && call_hook(p, h->after_step, &st, "after_step", err))
        return -1;
    return 0;
}

int mfi_run_pass(pass *p, mfi_loader *loader, int training, mf_rng *rng, mf_error *err)
{
    experiment *e = p->e;
    int64_t b;
    mfi_meter_reset(p->meter, !training);
    mfi_loader_start(loader, training ? p->epoch : 0);
    while ((b = mfi_loader_peek(loader)) > 0) {
        model_graph *mg = mfi_graph_for(e, b, training, err);
        const mfi_batch *batch;
        if (!mg || mfi_loader_next(loader, &batch, err) < 0 ||
            fill_batch(e, mg, batch, training, rng, err))
            return MF_EXIT_BAD_INPUT;
        mf_graph_forward(mg->g);
        float loss = mf_node_value(mg->loss)[0];
        if (!isfinite(loss)) {
            mf_error_set(err, "%s: training diverged: the loss is %g at epoch %d (lower optim.lr?)",
                         e->path, loss, p->epoch + 1);
            return MF_EXIT_FAILED;
        }
        if (training && train_step(p, mg, loss, err))
            return MF_EXIT_FAILED;
        mfi_meter_add(p->meter, e, mg, batch);
    }
    return MF_EXIT_OK;
}

/* ---------------------------------------------------------------- reporting */
/* "train_loss,train_accuracy,…,val_loss,…,seconds" and the epoch's row. */
static void csv_row(const mfi_metric_table *tr, const mfi_metric_table *va, int epoch,
                    double seconds, char *header, char *row, size_t size)
{
    size_t h = (size_t)snprintf(header, size, "epoch"), r = (size_t)snprintf(row, size, "%d", epoch);
    for (int s = 0; s < 2; s++) {
        const mfi_metric_table *t = s ? va : tr;
        for (int i = 0; i < t->n && h < size && r < size; i++) {
            if (isnan(t->value[i]) && s == 0)
                continue; /* retrieval is measured on evaluation passes only */
            h += (size_t)snprintf(header + h, size - h, ",%s_%s", s ? "val" : "train", t->name[i]);
            r += (size_t)snprintf(row + r, size - r, ",%.6g", t->value[i]);
        }
    }
    if (h < size && r < size) {
        snprintf(header + h, size - h, ",seconds");
        snprintf(row + r, size - r, ",%.4f", seconds);
    }
}

static void log_epoch(experiment *e, int epoch, const mfi_metric_table *tr,
                      const mfi_metric_table *va, int has_val, double seconds)
{
    if (e->quiet)
        return;
    const char *metric = e->select + 4; /* after "val." */
    const int acc = strcmp(metric, "accuracy") == 0;
    fprintf(e->log, "epoch %3d/%lld  train loss %.4f", epoch + 1, (long long)e->epochs,
            mfi_metric_get(tr, "loss"));
    if (acc)
        fprintf(e->log, "  acc %.4f", mfi_metric_get(tr, "accuracy"));
    if (has_val) {
        fprintf(e->log, "  val loss %.4f", mfi_metric_get(va, "loss"));
        if (strcmp(metric, "loss") != 0)
            fprintf(e->log, "  %s %.4f", acc ? "acc" : metric, mfi_metric_get(va, metric));
    }
    fprintf(e->log, "  %.2f s\n", seconds);
    fflush(e->log);
}

/* The test pass's metrics, and the validation pass's at the kept epoch (same names). */
static void keep_metrics(mf_run_result *res, const mfi_metric_table *t, const mfi_metric_table *va)
{
    res->n_test_metrics = 0;
    for (int i = 0; i < t->n && res->n_test_metrics < MF_RUN_MAX_METRICS; i++) {
        snprintf(res->test_metric_names[res->n_test_metrics], 64, "%s", t->name[i]);
        res->test_metrics[res->n_test_metrics++] = t->value[i];
    }
    res->n_val_metrics = 0;
    for (int i = 0; i < t->n && i < MF_RUN_MAX_METRICS; i++)
        res->val_metrics[res->n_val_metrics++] = mfi_metric_get(va, t->name[i]);
    res->test_accuracy = mfi_metric_get(t, "accuracy");
    res->test_macro_f1 = mfi_metric_get(t, "macro_f1");
}

static void log_result(experiment *e, const mf_run_result *res, const mfi_metric_table *test,
                       int has_val, int has_test)
{
    const char *metric = e->select + 4;
    if (!has_test) {
        fprintf(e->log, "no test split: training finished after %d epochs (%.1f s)\n",
                res->epochs_run, res->seconds);
        return;
    }
    if (strcmp(metric, "accuracy") == 0)
        fprintf(e->log, "test accuracy %.4f  macro-F1 %.4f", res->test_accuracy,
                res->test_macro_f1);
    else
        fprintf(e->log, "test %s %.4f", metric, res->test_metric);
    if (has_val)
        fprintf(e->log, "  (epoch %d, best validation %s %.4f; %.1f s, data wait %.1f %%)\n",
                res->best_epoch, metric, res->best_val_metric, res->seconds,
                100 * res->data_wait);
    else
        fprintf(e->log, "  (after epoch %d; %.1f s)\n", res->best_epoch, res->seconds);
    if (strcmp(metric, "accuracy") != 0 || test->n > 3) {
        for (int s = has_val ? 0 : 1; s < 2; s++) {
            fprintf(e->log, "%s:", s ? "test" : "validation");
            for (int i = 0; i < test->n; i++)
                fprintf(e->log, " %s %.4g", test->name[i], s ? test->value[i] : res->val_metrics[i]);
            fputc('\n', e->log);
        }
    }
}

/* ---------------------------------------------------------------- the loop */
static int better(double v, double best, int higher)
{
    if (isnan(v))
        return 0;
    return isnan(best) || (higher ? v > best : v < best);
}

static int make_loaders(experiment *e, mfi_loader **loader, mf_error *err)
{
    int prefetch = 1;
    mf_config_bool(e->data_cfg, "prefetch", &prefetch, NULL);
    for (int s = 0; s < 3; s++) {
        if (e->splits.count[s] == 0)
            continue;
        loader[s] = mfi_loader_new(e->ds, e->info, e->splits.index[s], e->splits.count[s],
                                   e->batch_size, s == MF_SPLIT_TRAIN, (uint64_t)e->seed, prefetch,
                                   err);
        if (!loader[s])
            return -1;
    }
    /* standardisation from the training split only (inputs and regression targets, in one
     * pass), saved with the run */
    int any = 0, standardize = 1;
    mf_config_bool(e->data_cfg, "standardize", &standardize, NULL);
    for (int m = 0; m < e->n_mod; m++)
        any |= e->input[m].standardize;
    if (standardize && e->target_kind == MF_TARGET_VALUES) {
        e->target_mean = calloc((size_t)e->target_dim, sizeof(double));
        e->target_std = calloc((size_t)e->target_dim, sizeof(double));
        if (!e->target_mean || !e->target_std) {
            mf_error_set(err, "out of memory");
            return -1;
        }
    }
    if ((any || e->target_mean) &&
        (mfi_fit_standardization(e->input, e->n_mod, e->info, loader[MF_SPLIT_TRAIN],
                                 e->target_mean, e->target_std, err) ||
         (e->run && mfi_run_dir_standardization(e->run, e->input, e->n_mod, err))))
        return -1;
    return 0;
}

typedef struct selection {
    int higher;        /* whether a larger value of the selected metric is better */
    double best;       /* its best validation value so far */
    int best_epoch;    /* from 0 */
    float *params;     /* the kept parameter values */
    mfi_metric_table val; /* every validation metric at that epoch */
} selection;

/* After an epoch: keep the parameters when the selected metric improved (the last epoch
 * without a validation split). Returns whether patience ran out. */
static int select_epoch(experiment *e, selection *sel, const mfi_metric_table *va, int has_val,
                        int epoch)
{
    const double v = has_val ? mfi_metric_get(va, e->select + 4) : NAN;
    if (!has_val || better(v, sel->best, sel->higher)) {
        sel->best = v;
        sel->best_epoch = epoch;
        sel->val = *va;
        memcpy(sel->params, mf_params_values(e->params),
               (size_t)mf_params_numel(e->params) * sizeof(float));
    }
    return has_val && e->patience > 0 && epoch - sel->best_epoch >= e->patience;
}

static int epochs(pass *p, mfi_loader **loader, selection *sel, mf_run_result *res,
                  double *train_seconds, mf_error *err)
{
    experiment *e = p->e;
    const int has_val = loader[MF_SPLIT_VAL] != NULL;
    int status;
    for (int epoch = 0; epoch < e->epochs; epoch++) {
        mfi_metric_table tr, va = {0};
        double te = now();
        p->epoch = epoch;
        if ((status = mfi_run_pass(p, loader[MF_SPLIT_TRAIN], 1, NULL, err)))
            return status;
        mfi_meter_table(p->meter, &tr);
        *train_seconds += now() - te;
        if (has_val) {
            if ((status = mfi_run_pass(p, loader[MF_SPLIT_VAL], 0, NULL, err)))
                return status;
            mfi_meter_table(p->meter, &va);
        }
        int stop = select_epoch(e, sel, &va, has_val, epoch);
        res->epochs_run = epoch + 1;
        res->final_train_loss = mfi_metric_get(&tr, "loss");
        char header[8192], row[8192];
        csv_row(&tr, has_val ? &va : &(mfi_metric_table){0}, epoch + 1, now() - te, header, row,
                sizeof row);
        if (e->run && mfi_run_dir_epoch(e->run, header, row, err))
            return MF_EXIT_FAILED;
        log_epoch(e, epoch, &tr, &va, has_val, now() - te);
        const mf_train_hooks *h = p->hooks;
        mf_train_state st = {sizeof st, epoch, p->step, NULL, e->params, &e->optim,
                             res->final_train_loss, va.n, va.name, va.value};
        if (h && call_hook(p, h->end_of_epoch, &st, "end_of_epoch", err))
            return MF_EXIT_FAILED;
        if (stop) {
            if (!e->quiet)
                fprintf(e->log, "early stop: no better %s for %lld epochs\n", e->select,
                        (long long)e->patience);
            break;
        }
    }
    return MF_EXIT_OK;
}

static int finish(pass *p, mfi_loader **loader, selection *sel, mf_run_result *res, double t0,
                  mf_error *err)
{
    experiment *e = p->e;
    memcpy(mf_params_values(e->params), sel->params,
           (size_t)mf_params_numel(e->params) * sizeof(float));
    snprintf(res->select, sizeof res->select, "%s", e->select);
    res->select_higher_is_better = sel->higher;
    res->best_val_metric = sel->best;
    res->best_val_accuracy = loader[MF_SPLIT_VAL] && strcmp(e->select, "val.accuracy") == 0
                                 ? sel->best
                                 : NAN;
    res->best_epoch = sel->best_epoch + 1;
    res->test_accuracy = res->test_macro_f1 = res->test_metric = NAN;
    mfi_metric_table test = {0};
    int status;
    if (loader[MF_SPLIT_TEST]) {
        if ((status = mfi_run_pass(p, loader[MF_SPLIT_TEST], 0, NULL, err)))
            return status;
        mfi_meter_table(p->meter, &test);
        keep_metrics(res, &test, &sel->val);
        res->test_metric = mfi_metric_get(&test, e->select + 4);
    }
    res->seconds = now() - t0;
    log_result(e, res, &test, loader[MF_SPLIT_VAL] != NULL, loader[MF_SPLIT_TEST] != NULL);
    return loader[MF_SPLIT_TEST]
               ? mfi_evaluate_robustness(p, loader[MF_SPLIT_TEST], &test, e->details, err)
               : MF_EXIT_OK;
}

int mfi_train(experiment *e, mf_run_result *res, mf_error *err)
{
    mfi_loader *loader[3] = {NULL, NULL, NULL};
    mfi_metric_table names;
    mfi_metric_names(e, &names);
    selection sel = {1, NAN, -1, NULL};
    for (int i = 0; i < names.n; i++)
        if (strcmp(names.name[i], e->select + 4) == 0)
            sel.higher = names.higher_is_better[i];
    const mf_run_options *o = e->opts;
    pass p = {e, NULL, o && o->struct_size >= offsetof(mf_run_options, hooks) + sizeof o->hooks
                           ? o->hooks : NULL, 0, 0};
    int64_t largest = 0;
    for (int s = 0; s < 3; s++)
        largest = e->splits.count[s] > largest ? e->splits.count[s] : largest;
    double t0 = now(), train_seconds = 0;
    int status = MF_EXIT_FAILED;
    const int64_t numel = mf_params_numel(e->params);
    if (!(sel.params = malloc((size_t)(numel ? numel : 1) * sizeof(float))) ||
        !(p.meter = mfi_meter_new(e, largest))) {
        mf_error_set(err, "out of memory");
        goto done;
    }
    if (make_loaders(e, loader, err)) {
        status = MF_EXIT_BAD_INPUT;
        goto done;
    }
    memcpy(sel.params, mf_params_values(e->params), (size_t)numel * sizeof(float));
    if ((status = epochs(&p, loader, &sel, res, &train_seconds, err)))
        goto done;
    res->data_wait = train_seconds > 0
                         ? mfi_loader_wait_seconds(loader[MF_SPLIT_TRAIN]) / train_seconds
                         : 0;
    status = finish(&p, loader, &sel, res, t0, err);
    const char *profile = getenv("MMFUSE_PROFILE");
    for (int i = 0; profile && *profile && strcmp(profile, "0") != 0 && i < e->n_graphs; i++) {
        fprintf(stderr, "profile of the %s graph, batch %lld:\n",
                e->graphs[i].training ? "training" : "evaluation", (long long)e->graphs[i].batch);
        mf_graph_print_profile(e->graphs[i].g, stderr);
    }
done:
    for (int s = 0; s < 3; s++)
        mfi_loader_free(loader[s]);
    mfi_meter_free(p.meter);
    free(sel.params);
    return status;
}
