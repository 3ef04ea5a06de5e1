/* Model assembly: the modules an experiment names, built in order with the shapes each
 * receives, and the compiled graphs that run them.
 *
 *   inputs → encoders (shared or not) → [fusion] → [head] → Σ weight·loss
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core_internal.h" /* mfi_collective: the ranks a gather talks to */
#include "experiment_internal.h"

static int build_encoders(experiment *e, mf_error *err)
{
    char path[256];
    for (int m = 0; m < e->n_mod; m++) {
        if (e->shares[m] >= 0)
            continue;
        e->emb_flags[m] = 0;
        mf_build_args args = {sizeof args,    1,           &e->input[m].shape, &e->mod_name[m],
                              0,              &e->in_flags[m], &e->in_vocab[m], &e->emb_flags[m],
                              e->encoder_cfg[m]};
        snprintf(path, sizeof path, "model.encoders.%s", e->mod_name[m]);
        if (!(e->encoder[m] = mf_module_new(e->encoder_plugin[m], path, e->params, err)) ||
            mf_module_build(e->encoder[m], e->encoder_cfg[m], &args, &e->emb_shape[m], err))
            return -1;
    }
    for (int m = 0; m < e->n_mod; m++)
        if (e->shares[m] >= 0) {
            e->emb_shape[m] = e->emb_shape[e->shares[m]];
            e->emb_flags[m] = e->emb_flags[e->shares[m]];
        }
    /* model.normalize: unit rows (B,D), so every encoder must output one vector per sample */
    for (int m = 0; e->normalize && m < e->n_mod; m++) {
        const int seq = (e->emb_flags[m] & MF_IO_SEQUENCE) != 0;
        if (seq || e->emb_shape[m].ndim != 1) {
            char s[64];
            mf_config_error(err, mf_config_get(mfi_section(e, "model"), "normalize"),
                            "L2 normalisation needs one vector per sample, but the encoder "
                            "of '%s' outputs %s%s; give it a pooled vector output (e.g. "
                            "pool: mean) or set model.normalize: false", e->mod_name[m],
                            seq ? "a sequence " : "",
                            mf_shape_str(&e->emb_shape[m], s, sizeof s));
            return -1;
        }
    }
    return 0;
}

static int build_fusion_and_head(experiment *e, mf_error *err)
{
    if (e->fusion_plugin) {
        int64_t no_vocab[MAX_MODALITIES] = {0};
        e->fused_flags = 0;
        mf_build_args args = {sizeof args, e->n_mod,     e->emb_shape,    e->mod_name,
                              0,           e->emb_flags, no_vocab,        &e->fused_flags,
                              e->fusion_cfg};
        if (!(e->fusion = mf_module_new(e->fusion_plugin, "model.fusion", e->params, err)) ||
            mf_module_build(e->fusion, e->fusion_cfg, &args, &e->fused_shape, err))
            return -1;
    }
    /* late fusion: without a head, a fused vector of the target's width is the output */
    e->has_logits = e->fusion && e->fused_shape.ndim == 1 && e->fused_shape.dim[0] == e->target_dim &&
                    !(e->fused_flags & MF_IO_SEQUENCE);
    e->logits_shape = e->fused_shape;
    if (e->head_plugin) {
        e->has_logits = 1;
        const char *fused_name = "fused";
        int64_t no_vocab = 0;
        uint32_t head_flags = 0;
        mf_build_args args = {sizeof args,     1,         &e->fused_shape, &fused_name,
                              e->target_dim,   &e->fused_flags, &no_vocab, &head_flags,
                              e->head_cfg};
        if (!(e->head = mf_module_new(e->head_plugin, "model.head", e->params, err)) ||
            mf_module_build(e->head, e->head_cfg, &args, &e->logits_shape, err))
            return -1;
        if (e->logits_shape.ndim != 1 || e->logits_shape.dim[0] != e->target_dim) {
            char s[64];
            mf_config_error(err, e->head_cfg, "the head outputs %s per sample, not the %lld %s "
                            "the data needs", mf_shape_str(&e->logits_shape, s, sizeof s),
                            (long long)e->target_dim,
                            e->target_kind == MF_TARGET_CLASSES ? "class logits" : "targets");
            return -1;
        }
    }
    return 0;
}

static int build_losses(experiment *e, mf_error *err)
{
    mf_loss_build_args args = {sizeof args,
                               e->n_mod,
                               e->mod_name,
                               e->emb_shape,
                               e->emb_flags,
                               e->fusion ? &e->fused_shape : NULL,
                               e->has_logits ? &e->logits_shape : NULL,
                               e->target_kind,
                               e->target_dim};
    for (int i = 0; i < e->n_losses; i++) {
        char path[64];
        snprintf(path, sizeof path, e->n_losses == 1 ? "loss" : "loss.%d", i);
        if (!(e->loss[i] = mf_module_new(e->loss_plugin[i], path, e->params, err)) ||
            mf_module_build_loss_model(e->loss[i], e->loss_cfg[i], &args, err))
            return -1;
        mf_module_loss_metrics(e->loss[i], &e->loss_metrics[i]);
    }
    return 0;
}

/* Missing modalities: masks in the graphs whenever anything can go missing; a learned
 * marker per modality (registered last, so the other parameters keep their values). */
static int build_markers(experiment *e, mf_error *err)
{
    e->with_missing = e->learned_missing || e->modality_dropout > 0 ||
                      mf_config_length(mf_config_get(mfi_section(e, "eval"), "robustness.drop")) > 0;
    /* the setting that asks for it: a learned marker, modality dropout, a robustness drop */
    const mf_config *why = e->learned_missing ? mf_config_get(mfi_section(e, "model"), "missing")
                           : e->modality_dropout > 0
                               ? mf_config_get(mfi_section(e, "train"), "modality_dropout")
                               : mf_config_get(mfi_section(e, "eval"), "robustness.drop");
    for (int m = 0; e->with_missing && m < e->n_mod; m++)
        if (e->in_flags[m] & MF_IO_TOKENS) {
            mf_config_error(err, why, "'%s' holds token ids, and a missing token input (modality "
                            "dropout, robustness drops, learned markers) is not supported yet",
                            e->mod_name[m]);
            return -1;
        }
    if (!e->learned_missing)
        return 0;
    if (!(e->markers = mf_module_new(NULL, "model.missing", e->params, err)))
        return -1;
    for (int m = 0; m < e->n_mod; m++)
        if (!(e->marker[m] = mf_module_param(e->markers, e->mod_name[m],
                                             mf_shape1(mf_shape_numel(&e->input[m].shape)),
                                             (mf_init){MF_INIT_ZEROS, 0, 0}))) {
            mf_error_set(err, "%s: cannot register the missing marker of '%s'", e->path,
                         e->mod_name[m]);
            return -1;
        } else {
            mf_param_set_flags(e->marker[m], MF_NO_DECAY); /* a learned token: no decay */
        }
    return 0;
}

int mfi_build_model(experiment *e, mf_error *err)
{
    e->params = mf_params_new();
    if (build_encoders(e, err) || build_fusion_and_head(e, err) || build_losses(e, err) ||
        build_markers(e, err))
        return -1;
    return mf_params_finalize(e->params, (uint64_t)e->seed, mf_optim_moments(e->optim.kind), err);
}

/* ---------------------------------------------------------------- graphs */
static mf_shape batched(const mf_shape *s, int64_t b)
{
    mf_shape out = {s->ndim + 1, {b}};
    for (int d = 0; d < s->ndim; d++)
        out.dim[d + 1] = s->dim[d];
    return out;
}

uint64_t mfi_dropout_seed(int64_t seed, int training, int64_t batch)
{
    /* splitmix64 of (seed, kind): independent masks per seed, the same for a seed twice */
    uint64_t z = (uint64_t)seed * UINT64_C(0x9E3779B97F4A7C15) ^
                 ((uint64_t)batch << 1 | (uint64_t)(training != 0)) ^ UINT64_C(0x64726f70); /* "drop" */
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* The model's input m: data (and its padding mask), with the missing-modality substitution
 * when anything can go missing. */
static mf_node *model_input(experiment *e, model_graph *mg, int m, int64_t batch)
{
    mf_graph *g = mg->g;
    char name[96];
    mg->input[m] = mf_input(g, e->mod_name[m], batched(&e->input[m].shape, batch));
    mf_node *x = mg->input[m];
    if (e->in_flags[m] & MF_IO_MASKED) {
        snprintf(name, sizeof name, "%s.padding", e->mod_name[m]);
        // the padding mask is (B,T): T the token axis (the ids' per-sample numel)
        mg->mask[m] = mf_input(g, name, mf_shape2(batch, mf_shape_numel(&e->input[m].shape)));
        mf_node_set_mask(x, mg->mask[m]);
    }
    if (!e->with_missing)
        return x;
    // x' = x - d·(x - marker): x where present, the marker (or 0) where missing;
    // x and d are (B,F) with F the input's features, the marker a row (F)
    const int64_t f = mf_shape_numel(&e->input[m].shape);
    snprintf(name, sizeof name, "%s.missing", e->mod_name[m]);
    mg->missing[m] = mf_input(g, name, mf_shape2(batch, f));
    mf_node *flat = mf_reshape(g, x, mf_shape2(batch, f));
    mf_node *away = e->marker[m] ? mf_sub(g, flat, mf_param_node(g, e->marker[m])) : flat;
    return mf_reshape(g, mf_sub(g, flat, mf_mul(g, mg->missing[m], away)),
                      batched(&e->input[m].shape, batch));
}

/* Encoders, fusion, head and the weighted sum of the losses. */
static void forward_model(experiment *e, model_graph *mg, int64_t batch)
{
    mf_graph *g = mg->g;
    for (int m = 0; m < e->n_mod; m++) {
        mf_node *x = model_input(e, mg, m, batch);
        mf_module *enc = e->encoder[e->shares[m] >= 0 ? e->shares[m] : m];
        mg->emb[m] = x ? mf_module_forward(enc, g, 1, &x) : NULL;
        if (e->normalize && mg->emb[m]) // (B,D) → unit rows, as F.normalize(x, dim=-1)
            mg->emb[m] = mf_l2_normalize(g, mg->emb[m], 1e-12f);
    }
    mg->fused = e->fusion ? mf_module_forward(e->fusion, g, e->n_mod, mg->emb) : NULL;
    mg->logits = e->head && mg->fused ? mf_module_forward(e->head, g, 1, &mg->fused)
                 : e->has_logits      ? mg->fused
                                      : NULL;
    mg->target = mf_input(g, "target", e->target_kind == MF_TARGET_CLASSES
                                           ? mf_shape1(batch)
                                           : mf_shape2(batch, e->target_dim));
    mg->li = (mf_loss_inputs){sizeof mg->li, mg->logits, mg->target, e->n_mod, e->mod_name,
                              mg->emb, mg->fused, e->target_kind};
    mg->loss = NULL;
    for (int i = 0; i < e->n_losses && !mf_graph_error(g); i++) {
        mf_node *t = mg->term[i] = mf_module_loss(e->loss[i], g, &mg->li);
        if (e->loss_weight[i] != 1.0)
            t = mf_scale(g, t, (float)e->loss_weight[i]);
        mg->loss = mg->loss ? mf_add(g, mg->loss, t) : t;
    }
}

/* ---------------------------------------------------------------- gathered batches */
/* A loss over the whole batch (clip, siglip) gathers its inputs over the ranks
 * (mf_gather_batch): the graph's collective is the experiment's ranks. */
static int comm_gather_rows(void *ctx, float *buf, int64_t mine, int64_t width, int64_t cap,
                            int64_t *total)
{
    return mfi_dist_gather_rows(ctx, buf, mine, width, cap, total);
}

static int comm_sum_f32(void *ctx, float *buf, int64_t n) { return mfi_dist_sum_f32(ctx, buf, n); }

/* The step's whole batch and this rank's first row in it, from every rank's part: the part
 * alone cannot tell (at 2 ranks, 32 rows are rank 1's part of a batch of 64 and of 63).
 * Collective: mfi_graph_for's callers in the loop ask for the same batch on every rank, and
 * no rank's part is empty (refused before training, check_parts). */
static int whole_batch(experiment *e, int64_t b, int64_t *whole, int64_t *offset, mf_error *err)
{
    const int n = e->comm.size;
    int64_t stack[64], *parts = n <= 64 ? stack : malloc((size_t)n * sizeof *parts);
    if (!parts) {
        mf_error_set(err, "out of memory");
        return -1;
    }
    memset(parts, 0, (size_t)n * sizeof *parts);
    parts[e->comm.rank] = b;
    const int rc = mfi_dist_sum_i64(&e->comm, parts, n);
    *whole = *offset = 0;
    for (int r = 0; r < n; r++) {
        *offset += r < e->comm.rank ? parts[r] : 0;
        *whole += parts[r];
    }
    if (parts != stack)
        free(parts);
    if (rc)
        mf_error_set(err, "%s: summing the batch's parts over the ranks failed", e->path);
    return rc ? -1 : 0;
}

/* "the clip loss": the module whose forward made the graph's first gather. */
static void gatherer(const experiment *e, mf_graph *g, char *buf, size_t size)
{
    const char *scope = "";
    for (int i = 0; i < mf_graph_size(g) && !*scope; i++)
        if (strcmp(mf_node_op_name(mf_graph_node(g, i)), "gather_batch") == 0)
            scope = mf_node_scope(mf_graph_node(g, i));
    for (int i = 0; i < e->n_losses; i++) {
        char path[64];
        snprintf(path, sizeof path, e->n_losses == 1 ? "loss" : "loss.%d", i);
        if (strcmp(scope, path) == 0) {
            snprintf(buf, size, "the %s loss", e->loss_plugin[i]->name);
            return;
        }
    }
    snprintf(buf, size, "%s%s", *scope ? "the module at " : "the model", scope);
}

/* A rank with no part of a batch runs no graph, so it could not take part in the gather's
 * collectives: refused before training (every rank finds the same, from the split sizes),
 * for each split a pass reads (training, validation, test). */
static int check_parts(experiment *e, mf_graph *g, mf_error *err)
{
    static const char *const split_name[3] = {"train", "validation", "test"};
    const int n = e->comm.size;
    for (int s = 0; s < 3; s++) {
        const int64_t count = e->splits.count[s];
        const int64_t last = count % e->batch_size ? count % e->batch_size : e->batch_size;
        if (count == 0 || last >= n)
            continue;
        char who[128];
        gatherer(e, g, who, sizeof who);
        mf_config_error(err, mf_config_get(e->data_cfg, "batch_size"),
                        "%s gathers the batch across ranks, but the %s split's last batch has "
                        "%lld sample%s for %d ranks, so a rank would have no part of it; "
                        "choose data.batch_size so that every split's last batch has at least "
                        "%d samples (the %s split has %lld samples), or run on fewer ranks",
                        who, split_name[s], (long long)last, last == 1 ? "" : "s", n, n,
                        split_name[s], (long long)count);
        return -1;
    }
    return 0;
}

static int has_gather(mf_graph *g)
{
    for (int i = 0; i < mf_graph_size(g); i++)
        if (strcmp(mf_node_op_name(mf_graph_node(g, i)), "gather_batch") == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- the graph cache */
/* Build and compile the graph of a cache slot; its gathers (if any) span `whole` rows. */
static int build_graph(experiment *e, model_graph *mg, mf_error *err)
{
    mf_graph *g = mg->g = mf_graph_new(mg->training);
    if (!g) {
        mf_error_set(err, "out of memory for the model's graph");
        return -1;
    }
    if (e->comm.size > 1) {
        /* prepare's graph, before the model is known to gather: as if every rank had a part
         * of this size (it validates the model; the loop's parts are smaller) */
        const mfi_collective c = {(void *)&e->comm, e->comm.rank, e->comm.size,
                                  mg->whole ? mg->whole : mg->batch * e->comm.size,
                                  mg->whole ? mg->offset : mg->batch * e->comm.rank,
                                  comm_gather_rows, comm_sum_f32};
        mfi_graph_set_collective(g, &c);
    }
    mf_graph_set_seed(g, mfi_dropout_seed(e->seed, mg->training, mg->batch));
    const char *profile = getenv("MMFUSE_PROFILE"); /* per-op times, printed after training */
    mf_graph_set_profiling(g, profile && *profile && strcmp(profile, "0") != 0);
    forward_model(e, mg, mg->batch);
    mf_error local;
    mf_error_clear(&local);
    const char *problem = NULL;
    if (mf_graph_error(g))
        problem = mf_graph_error(g);
    else if (!mg->loss)
        problem = "the loss produced no output";
    else if (mf_graph_compile(g, &local))
        problem = local.msg;
    if (problem)
        mf_error_set(err, "%s: model: %s", e->path, problem);
    if (!problem && e->comm.size > 1 && has_gather(g)) {
        e->gathers = 1; /* from now on every graph asks for the whole batch */
        problem = check_parts(e, g, err) ? err->msg : NULL;
    }
    if (problem) {
        mf_graph_free(g);
        mg->g = NULL;
        return -1;
    }
    return 0;
}

/* The compiled graph for this batch size and mode, built on first use. A model that
 * gathers its batch over ranks needs the step's whole batch too (a collective, see
 * whole_batch); prepare's first graph, built before that is known, never asks. */
model_graph *mfi_graph_for(experiment *e, int64_t batch, int training, mf_error *err)
{
    int64_t whole = 0, offset = 0;
    if (e->comm.size > 1 && e->gathers && whole_batch(e, batch, &whole, &offset, err))
        return NULL;
    for (int i = 0; i < e->n_graphs; i++)
        if (e->graphs[i].batch == batch && e->graphs[i].training == training &&
            e->graphs[i].whole == whole && e->graphs[i].offset == offset)
            return &e->graphs[i];
    if (e->n_graphs == MAX_GRAPHS) /* more batch sizes than can happen; be safe anyway */
        mf_graph_free(e->graphs[--e->n_graphs].g);
    model_graph *mg = &e->graphs[e->n_graphs];
    memset(mg, 0, sizeof *mg);
    mg->batch = batch;
    mg->training = training;
    mg->whole = whole;
    mg->offset = offset;
    if (build_graph(e, mg, err))
        return NULL;
    e->n_graphs++;
    return mg;
}
