/* The training loop: validation points (each epoch, or every train.val_every steps), model
 * selection and early stopping on train.select, checkpoints (last.h5, best.h5) at validations
 * (train.checkpoint_every apart), resuming from them bit for bit, the test pass at the kept
 * point, robustness. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "experiment_internal.h"
#include "progress.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct loop {
    mfi_pass p;
    mfi_loader *loader[3];
    float *kept;               /* the parameters at the best validation point */
    double t0, train_seconds, point_start;
    double final_train_loss;   /* the training metrics' loss at the last validation point */
    double last_save;          /* when checkpoints were last written */
    int best_dirty;            /* the kept parameters changed since best.h5 was written */
} loop;

/* ---------------------------------------------------------------- reporting */
/* One line of events.jsonl with the position's step and epoch beside `fields`. */
static int event(loop *L, const char *what, json_t *fields, mf_error *err)
{
    experiment *e = L->p.e;
    if (!fields)
        fields = json_object();
    if (!e->run) {
        json_decref(fields);
        return 0;
    }
    json_object_set_new(fields, "step", json_integer(L->p.pos.step));
    json_object_set_new(fields, "epoch", json_integer(L->p.pos.epoch));
    return mfi_run_dir_event(e->run, what, fields, err);
}

static json_t *table_json(const mfi_metric_table *t)
{
    json_t *j = json_object();
    for (int i = 0; i < t->n; i++)
        json_object_set_new(j, t->name[i], isfinite(t->value[i]) ? json_real(t->value[i])
                                                                  : json_null());
    return j;
}
/* "epoch,step,train_loss,…,val_loss,…,lr,seconds" and the validation point's row. */
static void csv_row(const mfi_metric_table *tr, const mfi_metric_table *va, int epoch,
                    int64_t step, double lr, double seconds, char *header, char *row,
                    size_t size)
{
    size_t h = (size_t)snprintf(header, size, "epoch,step");
    size_t r = (size_t)snprintf(row, size, "%d,%lld", epoch, (long long)step);
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
        snprintf(header + h, size - h, ",lr,seconds");
        snprintf(row + r, size - r, ",%.6g,%.4f", lr, seconds);
    }
}

static void log_point(loop *L, const mfi_metric_table *tr, const mfi_metric_table *va,
                      int has_val, double seconds)
{
    experiment *e = L->p.e;
    if (e->quiet)
        return;
    const char *metric = e->select + 4; /* after "val." */
    const int acc = strcmp(metric, "accuracy") == 0;
    char line[512];
    int n = e->val_every > 0 || e->steps > 0
                ? snprintf(line, sizeof line, "step %6lld/%lld  epoch %3d", (long long)L->p.pos.step,
                           (long long)L->p.total_steps, L->p.pos.epoch + (L->p.pos.batch > 0))
                : snprintf(line, sizeof line, "epoch %3d/%lld", L->p.pos.epoch, (long long)e->epochs);
    n += snprintf(line + n, sizeof line - (size_t)n, "  train loss %.4f", mfi_metric_get(tr, "loss"));
    if (acc)
        n += snprintf(line + n, sizeof line - (size_t)n, "  acc %.4f", mfi_metric_get(tr, "accuracy"));
    if (has_val) {
        n += snprintf(line + n, sizeof line - (size_t)n, "  val loss %.4f", mfi_metric_get(va, "loss"));
        if (strcmp(metric, "loss") != 0)
            n += snprintf(line + n, sizeof line - (size_t)n, "  %s %.4f", acc ? "acc" : metric,
                          mfi_metric_get(va, metric));
    }
    snprintf(line + n, sizeof line - (size_t)n, "  %.2f s", seconds);
    mfi_progress_line(L->p.progress, "%s", line);
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

/* ---------------------------------------------------------------- data */
/* The loaders and the standardisation: MF_EXIT_BAD_INPUT for the data's faults, FAILED for
 * memory and for writing standardization.json (an I/O failure, not bad input). */
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
        if (!loader[s] ||
            (s == MF_SPLIT_TRAIN && mfi_loader_configure(loader[s], e->data_cfg, err)))
            return MF_EXIT_BAD_INPUT;
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
            return MF_EXIT_FAILED;
        }
    }
    if (!any && !e->target_mean)
        return MF_EXIT_OK;
    if (mfi_fit_standardization(e->input, e->n_mod, e->info, loader[MF_SPLIT_TRAIN],
                                e->target_mean, e->target_std, err))
        return MF_EXIT_BAD_INPUT;
    if (e->run && mfi_run_dir_standardization(e->run, e->input, e->n_mod, err))
        return MF_EXIT_FAILED;
    return MF_EXIT_OK;
}

/* Data parallelism: each rank reads its part of every batch of every split, once the
 * standardisation is fitted on the whole training split (by each rank: the same numbers). */
static int loaders_for_rank(experiment *e, mfi_loader **loader, mf_error *err)
{
    int status = make_loaders(e, loader, err);
    for (int s = 0; status == MF_EXIT_OK && s < 3; s++)
        if (loader[s] && e->comm.size > 1)
            mfi_loader_shard(loader[s], e->comm.rank, e->comm.size);
    return status;
}

/* ---------------------------------------------------------------- validation points */
static int better(double v, double best, int higher)
{
    if (isnan(v))
        return 0;
    return isnan(best) || (higher ? v > best : v < best);
}

/* Keep the parameters when the selected metric improved (every point without a validation
 * split). Returns whether it improved. */
static int select_point(loop *L, const mfi_metric_table *va, int has_val)
{
    experiment *e = L->p.e;
    mfi_train_position *pos = &L->p.pos;
    const double v = has_val ? mfi_metric_get(va, e->select + 4) : NAN;
    pos->evaluations++;
    if (has_val && !better(v, pos->best, pos->higher))
        return 0;
    pos->best = v;
    pos->best_epoch = pos->epoch - (pos->batch == 0); /* the epoch the point closed or is in */
    pos->best_step = pos->step;
    pos->best_evaluation = pos->evaluations;
    pos->n_kept = 0;
    for (int i = 0; i < va->n && i < MFI_MAX_KEPT; i++, pos->n_kept++) {
        snprintf(pos->kept_name[i], sizeof pos->kept_name[i], "%s", va->name[i]);
        pos->kept_value[i] = va->value[i];
    }
    memcpy(L->kept, mf_params_values(e->params), (size_t)mf_params_numel(e->params) * sizeof(float));
    return 1;
}

/* At most every train.checkpoint_every seconds, and at the end: best.h5 when the kept
 * parameters changed since it was written, then last.h5 — so last.h5 never refers to a
 * selection best.h5 does not hold. */
static int save_checkpoints(loop *L, int improved, int final, mf_error *err)
{
    experiment *e = L->p.e;
    L->best_dirty |= improved;
    if (!e->run || !e->checkpoint ||
        (!final && e->checkpoint_every > 0 && now() - L->last_save < e->checkpoint_every))
        return 0;
    improved = L->best_dirty;
    L->best_dirty = 0;
    L->last_save = now();
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/checkpoints", e->run->path);
    if (mf_make_dirs(dir, err))
        return -1;
    /* best first: a kill between the two leaves last.h5 at the previous point, which resumes
     * into this point again and rewrites the same best.h5 */
    snprintf(path, sizeof path, "%s/best.h5", dir);
    if (improved && (mfi_checkpoint_save(e, path, L->kept, &L->p.pos, err) ||
                     event(L, "checkpoint", json_pack("{s:s}", "file", "checkpoints/best.h5"), err)))
        return -1;
    snprintf(path, sizeof path, "%s/last.h5", dir);
    return mfi_checkpoint_save(e, path, NULL, &L->p.pos, err) ||
                   event(L, "checkpoint", json_pack("{s:s}", "file", "checkpoints/last.h5"), err)
               ? -1 : 0;
}

static int end_of_epoch_hook(loop *L, const mfi_metric_table *va, mf_error *err)
{
    const mf_train_hooks *h = L->p.hooks;
    experiment *e = L->p.e;
    if (!h || !h->end_of_epoch)
        return 0;
    mf_train_state st = {sizeof st, L->p.pos.epoch - 1, L->p.pos.step, NULL, e->params, &e->optim,
                         L->p.last_loss, va->n, va->name, va->value};
    return mfi_call_hook(&L->p, h->end_of_epoch, &st, "end_of_epoch", err);
}

/* A validation point: the validation pass, selection, the metrics row, checkpoints. Sets
 * *stop when training is over. */
static int validate(loop *L, int epoch_end, int *stop, mf_error *err)
{
    mfi_pass *p = &L->p;
    experiment *e = p->e;
    const int has_val = L->loader[MF_SPLIT_VAL] != NULL;
    mfi_metric_table tr, va = {0};
    if (mfi_meter_reduce(p->meter, &e->comm)) {
        mf_error_set(err, "%s: summing the training metrics over the ranks failed", e->path);
        return MF_EXIT_FAILED;
    }
    mfi_meter_table(p->meter, &tr);
    L->train_seconds += now() - L->point_start;
    L->final_train_loss = mfi_metric_get(&tr, "loss");
    int status;
    if (has_val) {
        if ((status = mfi_run_pass(p, L->loader[MF_SPLIT_VAL], 0, NULL, err)))
            return status;
        mfi_meter_table(p->meter, &va);
    }
    if (epoch_end) {
        p->pos.epoch++;
        p->pos.batch = 0;
    }
    const int improved = select_point(L, &va, has_val);
    const int patience_out = has_val && e->patience > 0 &&
                             p->pos.evaluations - p->pos.best_evaluation >= e->patience;
    *stop = patience_out || p->pos.step >= p->total_steps;
    p->pos.finished = *stop;
    char header[8192], row[8192];
    const double seconds = now() - L->point_start;
    csv_row(&tr, &va, p->pos.epoch + (p->pos.batch > 0), p->pos.step, mfi_optim_lr(e), seconds,
            header, row, sizeof row);
    if (e->run && mfi_run_dir_epoch(e->run, header, row, err))
        return MF_EXIT_FAILED;
    log_point(L, &tr, &va, has_val, seconds);
    if (event(L, "validation", json_pack("{s:o, s:o, s:f, s:f}", "train", table_json(&tr), "val",
                                        table_json(&va), "lr", mfi_optim_lr(e), "seconds", seconds),
              err) ||
        (improved && event(L, "best", json_pack("{s:s, s:o}", "metric", e->select, "value",
                                                isfinite(p->pos.best) ? json_real(p->pos.best)
                                                                      : json_null()), err)) ||
        (patience_out && event(L, "early_stop", json_pack("{s:I}", "patience",
                                                         (json_int_t)e->patience), err)))
        return MF_EXIT_FAILED;
    if (save_checkpoints(L, improved, *stop, err) || (epoch_end && end_of_epoch_hook(L, &va, err)))
        return MF_EXIT_FAILED;
    if (patience_out && !e->quiet)
        mfi_progress_line(p->progress, "early stop: no better %s for %lld validations",
                          e->select, (long long)e->patience);
    mfi_meter_reset(p->meter, 0);
    L->point_start = now();
    return MF_EXIT_OK;
}

/* Train from the position until training is over. */
static int train(loop *L, mf_error *err)
{
    mfi_pass *p = &L->p;
    mfi_loader *tl = L->loader[MF_SPLIT_TRAIN];
    int stop = p->pos.finished;
    mfi_meter_reset(p->meter, 0);
    L->point_start = now();
    mfi_loader_reset_wait(tl); /* data wait is a share of training: not of the standardisation */
    while (!stop) {
        mfi_loader_start_at(tl, p->pos.epoch, p->pos.batch);
        int r = mfi_train_batches(p, tl, err);
        if (r < 0)
            return -r;
        const int epoch_end = mfi_loader_peek(tl) == 0;
        if (epoch_end)
            p->group_left = 0;
        if (r == 1 || (epoch_end && p->e->val_every == 0)) {
            int status = validate(L, epoch_end, &stop, err);
            if (status)
                return status;
        } else if (epoch_end) {
            p->pos.epoch++;
            p->pos.batch = 0;
        }
    }
    return MF_EXIT_OK;
}

/* ---------------------------------------------------------------- resume */
static int resume(loop *L, mf_error *err)
{
    experiment *e = L->p.e;
    mfi_train_position *pos = &L->p.pos;
    *pos = e->resume_pos; /* mfi_resume_open loaded last.h5 into the model already */
    /* a position this plan cannot reach is a damaged (or edited) checkpoint, not a place
     * to start from: the loader would seek past the epoch */
    const int64_t batches = mfi_loader_batches(L->loader[MF_SPLIT_TRAIN]);
    if (pos->batch < 0 || pos->batch > batches || pos->step < 0 || pos->step > L->p.total_steps ||
        pos->epoch < 0) {
        mf_error_set(err, "%s: the checkpoint's position (step %lld, epoch %d, batch %lld) is "
                     "outside this run's plan (%lld steps, %lld batches an epoch): the file is "
                     "damaged", e->resume_from, (long long)pos->step, pos->epoch + 1,
                     (long long)pos->batch, (long long)L->p.total_steps, (long long)batches);
        return -1;
    }
    char best[4300]; /* beside last.h5 (every rank reads them; rank 0 alone has e->run) */
    snprintf(best, sizeof best, "%.*s/best.h5",
             (int)(strrchr(e->resume_from, '/') - e->resume_from), e->resume_from);
    FILE *f = pos->best_evaluation > 0 ? fopen(best, "rb") : NULL;
    if (f)
        fclose(f);
    if (f ? mfi_checkpoint_load(e, best, MFI_CKPT_PARAMS, L->kept, NULL, err)
          : (memcpy(L->kept, mf_params_values(e->params),
                    (size_t)mf_params_numel(e->params) * sizeof(float)),
             0))
        return -1;
    if (!e->quiet)
        fprintf(e->log, "resuming %s at step %lld (epoch %d, batch %lld)\n",
                e->run ? e->run->path : e->resume_from,
                (long long)pos->step, pos->epoch + 1, (long long)pos->batch);
    return 0;
}

/* ---------------------------------------------------------------- the end */
static void add_timing(loop *L, mf_run_result *res)
{
    experiment *e = L->p.e;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const int64_t steps = L->p.pos.step;
    json_t *t = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f}", "params",
                          (json_int_t)mf_params_numel(e->params), "steps", (json_int_t)steps,
                          "train_seconds", L->train_seconds, "step_ms",
                          steps ? 1e3 * L->train_seconds / (double)steps : 0.0, "samples_per_s",
                          L->train_seconds > 0 ? (double)L->p.samples / L->train_seconds : 0.0,
                          "peak_rss_mb", (double)ru.ru_maxrss / 1024.0);
    (void)res;
    if (t)
        json_object_set_new(e->details, "timing", t);
}

static int finish(loop *L, mf_run_result *res, mf_error *err)
{
    mfi_pass *p = &L->p;
    experiment *e = p->e;
    mfi_loader **loader = L->loader;
    memcpy(mf_params_values(e->params), L->kept, (size_t)mf_params_numel(e->params) * sizeof(float));
    mfi_metric_table kept_val = {p->pos.n_kept};
    for (int i = 0; i < p->pos.n_kept; i++) {
        kept_val.name[i] = p->pos.kept_name[i];
        kept_val.value[i] = p->pos.kept_value[i];
    }
    snprintf(res->select, sizeof res->select, "%s", e->select);
    res->select_higher_is_better = p->pos.higher;
    res->best_val_metric = p->pos.best;
    res->best_val_accuracy = loader[MF_SPLIT_VAL] && strcmp(e->select, "val.accuracy") == 0
                                 ? p->pos.best : NAN;
    res->best_epoch = p->pos.best_epoch + 1;
    res->epochs_run = p->pos.epoch + (p->pos.batch > 0);
    res->final_train_loss = L->final_train_loss;
    res->test_accuracy = res->test_macro_f1 = res->test_metric = NAN;
    mfi_metric_table test = {0};
    int status;
    add_timing(L, res);
    json_t *d = json_object();
    json_object_set_new(e->details, "details", d);
    json_object_set_new(e->details, "best_step", json_integer(p->pos.best_step));
    for (int s = MF_SPLIT_VAL; s <= MF_SPLIT_TEST; s++) {
        /* the kept parameters on validation (its per-class figures) and test */
        if (!loader[s])
            continue;
        if ((status = mfi_run_pass(p, loader[s], 0, NULL, err)))
            return status;
        json_t *t = mfi_meter_details(p->meter, e);
        if (t)
            json_object_set_new(d, s == MF_SPLIT_VAL ? "val" : "test", t);
    }
    if (loader[MF_SPLIT_TEST]) {
        mfi_meter_table(p->meter, &test);
        keep_metrics(res, &test, &kept_val);
        res->test_metric = mfi_metric_get(&test, e->select + 4);
    }
    res->seconds = now() - L->t0;
    /* a share of the training time: the wait can only be part of it (the clocks differ by
     * the moments between a batch's request and the training clock's start) */
    const double wait = mfi_loader_wait_seconds(loader[MF_SPLIT_TRAIN]);
    res->data_wait = L->train_seconds > 0.05 ? fmin(wait, L->train_seconds) / L->train_seconds : 0;
    log_result(e, res, &test, loader[MF_SPLIT_VAL] != NULL, loader[MF_SPLIT_TEST] != NULL);
    return loader[MF_SPLIT_TEST]
               ? mfi_evaluate_robustness(p, loader[MF_SPLIT_TEST], &test, e->details, err)
               : MF_EXIT_OK;
}

static void print_profile(experiment *e)
{
    const char *profile = getenv("MMFUSE_PROFILE");
    for (int i = 0; profile && *profile && strcmp(profile, "0") != 0 && i < e->n_graphs; i++) {
        fprintf(stderr, "profile of the %s graph, batch %lld:\n",
                e->graphs[i].training ? "training" : "evaluation", (long long)e->graphs[i].batch);
        mf_graph_print_profile(e->graphs[i].g, stderr);
    }
}

/* Steps per epoch and in all, and the direction of the selected metric. */
static void plan(loop *L)
{
    experiment *e = L->p.e;
    mfi_pass *p = &L->p;
    const int64_t nb = mfi_loader_batches(L->loader[MF_SPLIT_TRAIN]);
    const int64_t acc = e->accumulate > 1 ? e->accumulate : 1;
    p->steps_per_epoch = (nb + acc - 1) / acc;
    p->total_steps = e->steps > 0 ? e->steps : e->epochs * p->steps_per_epoch;
    mfi_metric_table names;
    mfi_metric_names(e, &names);
    p->pos.higher = 1;
    for (int i = 0; i < names.n; i++)
        if (strcmp(names.name[i], e->select + 4) == 0)
            p->pos.higher = names.higher_is_better[i];
    if (e->mode)
        p->pos.higher = e->mode == 2;
    p->pos.best = NAN;
    p->pos.best_epoch = -1;
}

int mfi_train(experiment *e, mf_run_result *res, mf_error *err)
{
    loop L = {.p = {.e = e}, .t0 = now()};
    L.last_save = L.t0;
    const mf_run_options *o = e->opts;
    L.p.hooks = o && o->struct_size >= offsetof(mf_run_options, hooks) + sizeof o->hooks
                    ? o->hooks : NULL;
    int64_t largest = 0;
    for (int s = 0; s < 3; s++)
        largest = e->splits.count[s] > largest ? e->splits.count[s] : largest;
    int status = MF_EXIT_FAILED;
    const int64_t numel = mf_params_numel(e->params);
    if (!(L.kept = malloc((size_t)(numel ? numel : 1) * sizeof(float))) ||
        !(L.p.meter = mfi_meter_new(e, largest))) {
        mf_error_set(err, "out of memory");
        goto done;
    }
    if ((status = loaders_for_rank(e, L.loader, err)) == MF_EXIT_OK) {
        plan(&L);
        memcpy(L.kept, mf_params_values(e->params), (size_t)numel * sizeof(float));
        if (e->resume_from && resume(&L, err))
            status = MF_EXIT_BAD_INPUT;
    }
    if ((status = mfi_dist_agree(&e->comm, status, err)) != MF_EXIT_OK)
        goto done;
    L.p.progress = mfi_progress_new(e->log, e->quiet, L.p.total_steps, L.p.steps_per_epoch,
                                    e->steps > 0 ? 0 : (int)e->epochs);
    if ((status = event(&L, "start",
                        json_pack("{s:I, s:I, s:b}", "total_steps", (json_int_t)L.p.total_steps,
                                  "steps_per_epoch", (json_int_t)L.p.steps_per_epoch, "resumed",
                                  e->resume_from != NULL), err)
                      ? MF_EXIT_FAILED : train(&L, err))) {
        if (e->diverged)
            event(&L, "diverged", json_pack("{s:s}", "message", err->msg), NULL);
        else /* the other ranks wait for this one in the next sum: all end */
            mfi_dist_fail(&e->comm, status, err);
        goto done;
    }
    mfi_progress_clear(L.p.progress);
    if ((status = finish(&L, res, err)) != MF_EXIT_OK)
        mfi_dist_fail(&e->comm, status, err);
    if (status == MF_EXIT_OK &&
        event(&L, "done", json_pack("{s:f}", "test_metric", isfinite(res->test_metric)
                                                                ? res->test_metric : 0.0), err))
        status = MF_EXIT_FAILED;
    print_profile(e);
done:
    mfi_progress_free(L.p.progress);
    for (int s = 0; s < 3; s++)
        mfi_loader_free(L.loader[s]);
    mfi_meter_free(L.p.meter);
    free(L.kept);
    return status;
}
