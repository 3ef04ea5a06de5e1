/* Batches: filling the graph's inputs, training steps (accumulation, hooks, the optimiser,
 * divergence) and evaluation passes. The schedule of validations, selection and checkpoints
 * is loop.c's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buckets.h"
#include "experiment_internal.h"
#include "progress.h"

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

int mfi_fill_batch(experiment *e, model_graph *mg, const mfi_batch *batch, int training,
                   const uint8_t *augment, mf_rng *rng, mf_error *err)
{
    for (int m = 0; m < e->n_mod; m++) {
        mfi_assemble(&e->input[m], e->info, batch, mf_node_value(mg->input[m]), augment, rng);
        if (mg->missing[m])
            fill_missing(e, mg, m, batch->n, training);
    }
    return mfi_check_tokens(e, batch, mg, err) || fill_target(e, mg, batch, err) ? -1 : 0;
}

int mfi_call_hook(mfi_pass *p, int (*hook)(void *, const mf_train_state *, mf_error *),
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

/* ---------------------------------------------------------------- divergence */
/* "the output of op 'log' in model.fusion (node 37, shape (64,10))" */
static void describe_node(mf_node *n, const char *what, char *buf, size_t size)
{
    char shape[96];
    const char *scope = mf_node_scope(n), *name = mf_node_name(n);
    snprintf(buf, size, "the %s of op '%s'%s%s%s%s%s (shape %s)", what, mf_node_op_name(n),
             *name ? " '" : "", name, *name ? "'" : "", *scope ? " in " : " outside any module",
             scope, mf_shape_str(mf_node_shape(n), shape, sizeof shape));
}

/* Where the first NaN or infinity of the graph is: values in forward order (grads 0),
 * gradients in backward order (grads 1). */
static void first_nonfinite(mf_graph *g, int grads, char *buf, size_t size)
{
    mf_node *n = mf_graph_first_nonfinite(g, grads);
    if (n)
        describe_node(n, grads ? "gradient" : "output", buf, size);
    else
        snprintf(buf, size, "%s", grads
                 ? "none: every gradient is finite, but they are so large that their norm "
                   "overflows (the gradients exploded)"
                 : "none of the graph's tensors (the loss plugin's own arithmetic)");
}

/* A NaN or an infinity in the loss (after forward) or a gradient (after backward): the run
 * stops naming the step and the first non-finite tensor; the last checkpoint stays. */
static int diverged(pass *p, model_graph *mg, int in_gradients, double value, mf_error *err)
{
    experiment *e = p->e;
    char where[512] = "on another rank (this one's part of the batch was empty)";
    if (mg)
        first_nonfinite(mg->g, in_gradients, where, sizeof where);
    char last[4300] = "";
    FILE *f = NULL;
    if (e->run && e->checkpoint) {
        snprintf(last, sizeof last, "%s/checkpoints/last.h5", e->run->path);
        if ((f = fopen(last, "rb")))
            fclose(f);
    }
    e->diverged = 1;
    mf_error_set(err, "%s: training diverged at step %lld (epoch %d): the %s is %s; the first "
                 "non-finite value is %s; %s%s (lower optim.lr, or set optim.clip_grad_norm?)",
                 e->path, (long long)p->pos.step + 1, p->pos.epoch + 1,
                 in_gradients ? "gradient norm" : "loss",
                 isnan(value) ? "NaN" : value > 0 ? "+infinity" : "-infinity", where,
                 f ? "the last good checkpoint is kept: " : "no checkpoint was written before it",
                 f ? last : "");
    return MF_EXIT_FAILED;
}

/* ---------------------------------------------------------------- training */
/* The accumulation group starting at the loader's next batch: the next train.accumulate
 * batches of the epoch (fewer at its end), so each batch's gradient is weighted by its share
 * of the group's samples — the gradient of one batch of all of them. */
static void start_group(pass *p, const mfi_loader *loader)
{
    const experiment *e = p->e;
    const int64_t nb = mfi_loader_batches(loader), first = p->pos.batch;
    const int64_t acc = e->accumulate > 1 ? e->accumulate : 1;
    const int64_t last = first + acc < nb ? first + acc : nb; /* exclusive */
    const int64_t n = e->splits.count[MF_SPLIT_TRAIN];
    p->group_left = last - first;
    p->group_samples = 0;
    for (int64_t k = first; k < last; k++)
        p->group_samples += k + 1 < nb || n % e->batch_size == 0 ? e->batch_size
                                                                  : n % e->batch_size;
}

/* Data parallelism, after backward: each rank weighted its part of a batch by its share
 * of the whole group's samples, so the sum of the ranks' gradients is the gradient of the
 * group, as one process would compute it (up to the order of the sums). The loss of the
 * step's last batch, and the samples, are summed with them. */
static int reduce_step(pass *p, model_graph *mg, mf_error *err)
{
    experiment *e = p->e;
    const int grads = e->buckets ? mfi_buckets_finish(e->buckets)
                                 : mfi_dist_sum_f32(&e->comm, mf_params_grads(e->params),
                                                    mf_params_numel(e->params));
    if (grads || mfi_dist_sum_f64(&e->comm, p->part_loss, 3)) {
        mf_error_set(err, "%s: the gradients' all-reduce failed at step %lld", e->path,
                     (long long)p->pos.step + 1);
        return MF_EXIT_FAILED;
    }
    p->last_loss = p->part_loss[1] > 0 ? p->part_loss[0] / p->part_loss[1] : 0;
    p->samples += (int64_t)p->part_loss[2];
    memset(p->part_loss, 0, sizeof p->part_loss);
    if (e->comm.size > 1 && !isfinite(p->last_loss)) /* alone, checked after forward */
        return diverged(p, mg, 0, p->last_loss, err);
    return MF_EXIT_OK;
}

/* The optimiser step closing a group: hooks around it, the gradients' norm checked. mg is
 * the graph of the group's last batch (NULL when this rank's part of it was empty). */
static int step(pass *p, model_graph *mg, mf_error *err)
{
    experiment *e = p->e;
    const mf_train_hooks *h = p->hooks;
    int status = reduce_step(p, mg, err);
    if (status)
        return status;
    mf_train_state st = {sizeof st, p->pos.epoch, p->pos.step, mg ? mg->g : NULL, e->params,
                         &e->optim, p->last_loss, 0, NULL, NULL};
    if (h && mfi_call_hook(p, h->after_backward, &st, "after_backward", err))
        return MF_EXIT_FAILED;
    e->accum_batches = 0; /* the backward already weighted each batch of the group */
    const double norm = mfi_optim_update(e, p->pos.step, p->steps_per_epoch, p->total_steps);
    if (!isfinite(norm))
        return diverged(p, mg, 1, norm, err);
    st.step = ++p->pos.step;
    if (h && mfi_call_hook(p, h->after_step, &st, "after_step", err))
        return MF_EXIT_FAILED;
    return MF_EXIT_OK;
}

int mfi_validation_due(const mfi_pass *p)
{
    const int64_t every = p->e->val_every;
    return p->pos.step >= p->total_steps || (every > 0 && p->pos.step % every == 0);
}

/* Forward and backward of this rank's part of a batch (b > 0 samples) into the gradients,
 * weighted by its share of the group. */
static model_graph *train_batch(pass *p, mfi_loader *loader, int64_t b, mf_error *err)
{
    experiment *e = p->e;
    model_graph *mg = mfi_graph_for(e, b, 1, err);
    const mfi_batch *batch;
    if (!mg || mfi_loader_next(loader, &batch, err) < 0 ||
        mfi_fill_batch(e, mg, batch, 1,
                       mfi_augment_draw(e, batch->n, (uint64_t)p->pos.forwards), NULL, err))
        return NULL;
    /* dropout's masks follow the count of training forwards: a resumed run draws the
     * uninterrupted run's */
    mf_graph_set_rng_position(mg->g, (uint64_t)p->pos.forwards);
    mf_graph_forward(mg->g);
    const float loss = mf_node_value(mg->loss)[0];
    if (e->comm.size <= 1 && !isfinite(loss)) { /* with ranks: once summed, at the step */
        diverged(p, mg, 0, loss, err);
        return NULL;
    }
    p->part_loss[0] = (double)loss * (double)b;
    if (p->group_left == 1) /* the group's last batch: its backward finishes the gradients */
        mfi_buckets_arm(e->buckets, mg->g);
    if (p->group_samples == b)
        mf_graph_backward(mg->g, mg->loss); /* into zeroed gradients: the optimiser zeroed them */
    else
        mf_graph_backward_scaled(mg->g, mg->loss, (float)b / (float)p->group_samples);
    mfi_meter_add(p->meter, e, mg, batch);
    return mg;
}

/* The gradient buckets, made once by every rank together (their communicator is a
 * collective's), at the first training pass. */
static int make_buckets(experiment *e, mf_error *err)
{
    if (e->buckets_made)
        return 0;
    e->buckets_made = 1;
    mf_error local;
    mf_error_clear(&local);
    e->buckets = mfi_buckets_new(&e->comm, e->params, e->bucket_mb * 1048576.0, &local);
    if (!e->buckets && local.msg[0]) {
        mf_error_set(err, "%s: %s", e->path, local.msg);
        return -1;
    }
    if (e->comm.size > 1 && !e->quiet && e->log) {
        const int n = mfi_buckets_count(e->buckets);
        fprintf(e->log, "%s: data parallel over %d ranks: the gradients are summed ", e->path,
                e->comm.size);
        if (n)
            fprintf(e->log, "in %d bucket%s of about %g MiB, while backward runs\n", n,
                    n == 1 ? "" : "s", e->bucket_mb);
        else
            fprintf(e->log, "once after backward (%.3g MiB%s)\n",
                    (double)mf_params_numel(e->params) * 4 / 1048576.0,
                    e->bucket_mb > 0 ? ", within one bucket of train.bucket_mb" : "; train.bucket_mb 0");
    }
    return 0;
}

int mfi_train_batches(mfi_pass *p, mfi_loader *loader, mf_error *err)
{
    experiment *e = p->e;
    if (make_buckets(e, err))
        return -MF_EXIT_FAILED;
    while (mfi_loader_more(loader)) {
        const int64_t b = mfi_loader_peek(loader); /* this rank's part: may be empty */
        if (p->group_left == 0)
            start_group(p, loader);
        model_graph *mg = NULL;
        const mfi_batch *batch;
        if (b > 0 && !(mg = train_batch(p, loader, b, err)))
            return e->diverged ? -MF_EXIT_FAILED : -MF_EXIT_BAD_INPUT;
        if (b == 0 && mfi_loader_next(loader, &batch, err) < 0)
            return -MF_EXIT_BAD_INPUT;
        p->part_loss[0] = b > 0 ? p->part_loss[0] : 0;
        p->part_loss[1] = (double)b;
        p->part_loss[2] += (double)b;
        p->pos.forwards++;
        p->pos.batch++;
        if (--p->group_left > 0)
            continue;
        int status = step(p, mg, err);
        if (status)
            return -status;
        if (p->progress)
            mfi_progress_step(p->progress, p->pos.epoch, p->pos.step, p->last_loss,
                              p->samples);
        if (mfi_validation_due(p))
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- evaluation */
int mfi_eval_batches(experiment *e, mfi_loader *loader, mf_rng *rng, mfi_batch_fn each,
                     void *user, mf_error *err)
{
    mfi_loader_start(loader, 0);
    while (mfi_loader_more(loader)) {
        const int64_t b = mfi_loader_peek(loader); /* this rank's part: may be empty */
        const mfi_batch *batch;
        if (b == 0 && mfi_loader_next(loader, &batch, err) < 0)
            return MF_EXIT_BAD_INPUT;
        if (b == 0)
            continue;
        model_graph *mg = mfi_graph_for(e, b, 0, err);
        if (!mg || mfi_loader_next(loader, &batch, err) < 0 ||
            mfi_fill_batch(e, mg, batch, 0, NULL, rng, err))
            return MF_EXIT_BAD_INPUT;
        mf_graph_forward(mg->g);
        const float loss = mf_node_value(mg->loss)[0];
        if (!isfinite(loss)) {
            char where[512];
            first_nonfinite(mg->g, 0, where, sizeof where);
            mf_error_set(err, "%s: the loss is %g on an evaluation batch (samples from %lld): the "
                         "first non-finite value is %s", e->path, loss,
                         (long long)batch->index[0], where);
            return MF_EXIT_FAILED;
        }
        if (each(user, mg, batch))
            return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}

static int meter_batch(void *user, model_graph *mg, const mfi_batch *batch)
{
    pass *p = user;
    mfi_meter_add(p->meter, p->e, mg, batch);
    return 0;
}

int mfi_run_pass(pass *p, mfi_loader *loader, int training, mf_rng *rng, mf_error *err)
{
    (void)training; /* training batches go through mfi_train_batches */
    mfi_meter_reset(p->meter, 1);
    int status = mfi_eval_batches(p->e, loader, rng, meter_batch, p, err);
    if (status == MF_EXIT_OK && mfi_meter_reduce(p->meter, &p->e->comm)) {
        mf_error_set(err, "%s: summing the evaluation's metrics over the ranks failed", p->e->path);
        status = MF_EXIT_FAILED;
    }
    return status;
}
