/* The model an experiment describes, through mf_experiment_run: optional fusion and head,
 * shared encoders, sums of losses, selection and early stopping on a named metric, the
 * regression path, dropout seeded from the experiment's seed, the trainer's hooks, and
 * the exact sentences bad configurations get. */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

static char path_buf[4096];

static const char *source_path(const char *rel)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", getenv("MMFUSE_SOURCE_ROOT"), rel);
    return path_buf;
}

typedef struct outcome {
    int status;
    mf_run_result res;
    mf_error err;
} outcome;

static outcome run_with(const char *file, int n, const char *const *overrides,
                        const mf_train_hooks *hooks)
{
    outcome o;
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = n, .overrides = overrides,
                           .log = stdout, .quiet = 1, .no_save = 1, .hooks = hooks};
    mf_error_clear(&o.err);
    o.status = mf_experiment_run(source_path(file), &opts, &o.res, &o.err);
    return o;
}

static mf_run_result run_ok(int n, const char *const *overrides, const mf_train_hooks *hooks)
{
    outcome o = run_with("experiments/quickstart.yaml", n, overrides, hooks);
    ck_assert_msg(o.status == MF_EXIT_OK, "exit %d: %s", o.status, o.err.msg);
    return o.res;
}

/* The first line of the error of a run that must fail with bad input, after the file name. */
static const char *bad(int n, const char *const *overrides)
{
    static outcome o;
    o = run_with("experiments/quickstart.yaml", n, overrides, NULL);
    ck_assert_msg(o.status == MF_EXIT_BAD_INPUT, "exit %d: %s", o.status, o.err.msg);
    char *nl = strchr(o.err.msg, '\n');
    if (nl)
        *nl = 0;
    const char *rest = strstr(o.err.msg, "quickstart.yaml");
    return rest ? rest : o.err.msg;
}

/* ---------------------------------------------------------------- dropout and hooks */
/* Hashes the pattern of dropped elements of the first dropout node over the first steps. */
typedef struct mask_log {
    uint64_t hash;
    int steps;
} mask_log;

static int hash_dropout(void *user, const mf_train_state *st, mf_error *err)
{
    mask_log *log = user;
    if (st->step >= 3)
        return 0;
    for (int i = 0; i < mf_graph_size(st->graph); i++) {
        mf_node *n = mf_graph_node(st->graph, i);
        if (strcmp(mf_node_op_name(n), "dropout") != 0)
            continue;
        const float *v = mf_node_value(n);
        for (int64_t j = 0; j < mf_node_numel(n) && j < 4096; j++)
            log->hash = (log->hash ^ (uint64_t)(v[j] == 0.0f)) * UINT64_C(0x100000001b3);
        log->steps++;
        return 0;
    }
    mf_error_set(err, "no dropout node in the training graph");
    return -1;
}

static uint64_t dropout_pattern(const char *seed)
{
    /* The dropout's input is tanh of an affine map of standardised data: never exactly 0,
     * so a zero output is a dropped element. */
    const char *o[] = {"train.epochs=1", "data.samples=600", "model.head.dropout=0.5",
                       "model.head.activation=tanh", seed};
    mask_log log = {UINT64_C(0xcbf29ce484222325), 0};
    mf_train_hooks hooks = {sizeof hooks, &log, hash_dropout, NULL, NULL};
    run_ok(5, o, &hooks);
    ck_assert_int_eq(log.steps, 3);
    return log.hash;
}

START_TEST(dropout_follows_the_seed)
{
    uint64_t a = dropout_pattern("seed=1"), again = dropout_pattern("seed=1"),
             b = dropout_pattern("seed=2");
    ck_assert(a == again);
    ck_assert(a != b);
}
END_TEST

typedef struct counts {
    int backward, step, epochs;
    int64_t last_step;
    double last_val_loss;
} counts;

static int count_backward(void *u, const mf_train_state *st, mf_error *e)
{
    ((counts *)u)->backward++;
    return 0;
}
static int count_step(void *u, const mf_train_state *st, mf_error *e)
{
    counts *c = u;
    c->step++;
    c->last_step = st->step;
    return 0;
}
static int count_epoch(void *u, const mf_train_state *st, mf_error *e)
{
    counts *c = u;
    c->epochs++;
    for (int i = 0; i < st->n_metrics; i++)
        if (strcmp(st->metric_names[i], "loss") == 0)
            c->last_val_loss = st->metric_values[i];
    return 0;
}

START_TEST(hooks_see_every_step_and_epoch)
{
    /* 600 samples, split 0.7/0.15/0.15: 420 training samples, batches of 64 → 7 steps */
    const char *o[] = {"train.epochs=2", "data.samples=600"};
    counts c = {0, 0, 0, 0, NAN};
    mf_train_hooks hooks = {sizeof hooks, &c, count_backward, count_step, count_epoch};
    run_ok(2, o, &hooks);
    ck_assert_int_eq(c.backward, 14);
    ck_assert_int_eq(c.step, 14);
    ck_assert_int_eq(c.last_step, 14);
    ck_assert_int_eq(c.epochs, 2);
    ck_assert(isfinite(c.last_val_loss) && c.last_val_loss > 0);
}
END_TEST

static int refuse(void *u, const mf_train_state *st, mf_error *e)
{
    mf_error_set(e, "the test stops here");
    return -1;
}

START_TEST(a_hook_stops_the_run)
{
    const char *o[] = {"train.epochs=2", "data.samples=600"};
    mf_train_hooks hooks = {sizeof hooks, NULL, NULL, refuse, NULL};
    outcome r = run_with("experiments/quickstart.yaml", 2, o, &hooks);
    ck_assert_int_eq(r.status, MF_EXIT_FAILED);
    ck_assert_str_eq(r.err.msg, "the test stops here");
}
END_TEST

/* ---------------------------------------------------------------- losses, selection */
static double first_loss;
static int keep_first_loss(void *u, const mf_train_state *st, mf_error *e)
{
    if (st->step == 0)
        first_loss = st->loss;
    return 0;
}

START_TEST(losses_sum_with_their_weights)
{
    mf_train_hooks hooks = {sizeof hooks, NULL, keep_first_loss, NULL, NULL};
    const char *one[] = {"train.epochs=1", "data.samples=600"};
    run_ok(2, one, &hooks);
    const double single = first_loss;
    /* the same loss twice, weights 1 and 0.5: the first step's loss is 1.5 times as large */
    outcome o = run_with("tests/fixtures/model/two-losses.yaml", 2, one, &hooks);
    ck_assert_msg(o.status == MF_EXIT_OK, "%s", o.err.msg);
    ck_assert_double_eq_tol(first_loss, 1.5 * single, 1e-5 * single);
}
END_TEST

START_TEST(early_stopping_on_the_selected_metric)
{
    /* a large learning rate overfits quickly: validation loss stops improving */
    const char *o[] = {"train.epochs=60", "train.select=val.loss", "train.patience=3",
                       "optim.lr=0.02", "data.samples=1000"};
    mf_run_result r = run_ok(5, o, NULL);
    printf("early stop: %d epochs run, best epoch %d, best val loss %.4f\n", r.epochs_run,
           r.best_epoch, r.best_val_metric);
    ck_assert_int_lt(r.epochs_run, 60);
    ck_assert_int_eq(r.epochs_run, r.best_epoch + 3);
    ck_assert_str_eq(r.select, "val.loss");
    ck_assert(r.best_val_metric > 0 && r.best_val_metric < 1.4); /* chance is ln 4 = 1.39 */
}
END_TEST

START_TEST(regression_path_is_real)
{
    /* satellite-nir-regression.yaml, fewer epochs: predicting the mean scores the targets'
     * variance (about 250 and 420 in pixel units, docs/results in the issue notes); a real fit
     * is far below it */
    const char *o[] = {"train.epochs=8"};
    outcome r = run_with("experiments/satellite-nir-regression.yaml", 1, o, NULL);
    ck_assert_msg(r.status == MF_EXIT_OK, "%s", r.err.msg);
    printf("regression (8 epochs): test mse %.3f\n", r.res.test_metric);
    ck_assert_str_eq(r.res.select, "val.mse");
    ck_assert(r.res.test_metric < 20.0);
    ck_assert(isnan(r.res.test_accuracy));
}
END_TEST

START_TEST(shared_encoder_has_one_set_of_parameters)
{
    const char *own[] = {"train.epochs=1", "data.samples=600"};
    const char *shared[] = {"train.epochs=1", "data.samples=600", "model.encoders.b={share: a}"};
    mf_run_result a = run_ok(2, own, NULL), b = run_ok(3, shared, NULL);
    ck_assert(isfinite(a.final_train_loss) && isfinite(b.final_train_loss));
    ck_assert(a.final_train_loss != b.final_train_loss);
}
END_TEST

/* model.normalize: the fusion (concat of a's and b's 32-wide embeddings) sees unit rows. */
typedef struct norm_probe {
    int normalize_nodes, concat_rows;
    double worst; /* largest |‖half‖ - 1| over the concat's rows and halves */
} norm_probe;

static int probe_norms(void *user, const mf_train_state *st, mf_error *err)
{
    norm_probe *p = user;
    if (st->step != 0)
        return 0;
    for (int i = 0; i < mf_graph_size(st->graph); i++) {
        mf_node *n = mf_graph_node(st->graph, i);
        const mf_shape *sh = mf_node_shape(n);
        p->normalize_nodes += strcmp(mf_node_op_name(n), "l2_normalize") == 0;
        if (strcmp(mf_node_op_name(n), "concat") || sh->ndim != 2 || sh->dim[1] != 64)
            continue;
        const float *v = mf_node_value(n);
        for (int64_t r = 0; r < sh->dim[0]; r++, p->concat_rows++)
            for (int half = 0; half < 2; half++) {
                double ss = 0;
                for (int k = 0; k < 32; k++)
                    ss += (double)v[r * 64 + half * 32 + k] * v[r * 64 + half * 32 + k];
                p->worst = fmax(p->worst, fabs(sqrt(ss) - 1));
            }
    }
    return 0;
}

START_TEST(normalize_gives_unit_embeddings)
{
    const char *on[] = {"train.epochs=1", "data.samples=600", "model.normalize=true"};
    const char *off[] = {"train.epochs=1", "data.samples=600"};
    norm_probe p = {0, 0, 0};
    mf_train_hooks hooks = {sizeof hooks, &p, probe_norms, NULL, NULL};
    mf_run_result a = run_ok(3, on, &hooks);
    ck_assert_int_eq(p.normalize_nodes, 2); /* one per encoder */
    ck_assert_int_eq(p.concat_rows, 64);   /* one batch */
    ck_assert_msg(p.worst < 1e-5, "a row's norm is off by %g", p.worst);
    printf("model.normalize: rows of unit norm within %.2g; test accuracy %.4f\n", p.worst,
           a.test_accuracy);
    norm_probe q = {0, 0, 0};
    hooks.user = &q;
    mf_run_result b = run_ok(2, off, &hooks);
    ck_assert_int_eq(q.normalize_nodes, 0); /* the default leaves embeddings alone */
    ck_assert(q.worst > 0.1);
    ck_assert(a.final_train_loss != b.final_train_loss);
    /* shared encoders are normalised too; a sequence output is refused (bad_model_...) */
    const char *shared[] = {"train.epochs=1", "data.samples=600", "model.normalize=true",
                            "model.encoders.b={share: a}"};
    norm_probe r = {0, 0, 0};
    hooks.user = &r;
    run_ok(4, shared, &hooks);
    ck_assert_int_eq(r.normalize_nodes, 2);
    ck_assert(r.worst < 1e-5);
}
END_TEST

/* ---------------------------------------------------------------- bad configurations */
START_TEST(bad_model_configurations)
{
    const char *head_without_fusion[] = {"model.fusion=none"};
    ck_assert_str_eq(bad(1, head_without_fusion),
                     "quickstart.yaml:28:9: model.head: a head maps the fused output, and with "
                     "`fusion: none` there is none (remove model.head, or choose a fusion)");
    const char *no_head_ce[] = {"model.head=none"};
    ck_assert_str_eq(bad(1, no_head_ce),
                     "quickstart.yaml:30:7: loss: cross_entropy needs class logits, but the model "
                     "has no head; add one (model.head: {type: mlp})");
    const char *select[] = {"train.select=val.acuracy"};
    ck_assert_str_eq(bad(1, select),
                     "-o train.select=val.acuracy:1:14: train.select: this model measures no 'val.acuracy' "
                     "(did you mean 'val.accuracy'?); it measures val.loss, val.accuracy, "
                     "val.macro_f1");
    const char *share_shape[] = {"data.dims=[16, 8]", "model.encoders.b={share: a}"};
    ck_assert_str_eq(bad(2, share_shape),
                     "-o model.encoders.b={share: a}:1:26: model.encoders.b.share: 'b' is (8) per "
                     "sample and 'a' is (16): a shared encoder needs inputs of one shape and kind");
    const char *share_both[] = {"model.encoders.b.share=a"};
    ck_assert_str_eq(bad(1, share_both),
                     "quickstart.yaml:26:15: model.encoders.b.type: an encoder that shares "
                     "another's has no type of its own (remove `type` or `share`)");
    const char *share_unknown[] = {"model.encoders.b={share: c}"};
    ck_assert_str_eq(bad(1, share_unknown),
                     "-o model.encoders.b={share: c}:1:26: model.encoders.b.share: no other modality "
                     "in use is named 'c' (did you mean 'a'?)");
    /* model.normalize needs vectors: a caption transformer without pooling is a sequence */
    const char *seq[] = {"model.normalize=true",
                         "model.encoders.caption={type: transformer, width: 16, layers: 1, "
                         "heads: 2, pool: none}"};
    outcome o = run_with("experiments/shapes-clip.yaml", 2, seq, NULL);
    ck_assert_int_eq(o.status, MF_EXIT_BAD_INPUT);
    ck_assert_str_eq(o.err.msg,
                     "-o model.normalize=true:1:17: model.normalize: L2 normalisation needs one "
                     "vector per sample, but the encoder of 'caption' outputs a sequence (12,16); "
                     "give it a pooled vector output (e.g. pool: mean) or set model.normalize: "
                     "false");
}
END_TEST

/* ---------------------------------------------------------------- tokens and masks */
static outcome run_tokens(int n, const char *const *overrides)
{
    setenv("MMFUSE_PLUGIN_PATH", getenv("MMFUSE_MODEL_FIXTURES"), 1);
    outcome o = run_with("tests/fixtures/model/tokens.yaml", n, overrides, NULL);
    setenv("MMFUSE_PLUGIN_PATH", "", 1);
    return o;
}

START_TEST(tokens_reach_encoders_with_vocabulary_and_mask)
{
    /* the probe encoder refuses to build without the flags and vocabulary, and returns
     * nothing without the padding mask: the run succeeding shows all three arrive */
    outcome o = run_tokens(0, NULL);
    ck_assert_msg(o.status == MF_EXIT_OK, "%s", o.err.msg);
    ck_assert(isfinite(o.res.final_train_loss));
}
END_TEST

START_TEST(token_outside_the_vocabulary_is_an_error)
{
    const char *o[] = {"data.bad_sample=17"};
    outcome r = run_tokens(1, o);
    ck_assert_int_eq(r.status, MF_EXIT_BAD_INPUT);
    const char *msg = strstr(r.err.msg, "tokens.yaml: ");
    ck_assert_ptr_nonnull(msg);
    ck_assert_str_eq(msg, "tokens.yaml: the 'probe_tokens' data gives sample 17 of 'caption' the "
                          "token id 9 at position 0, outside its vocabulary 0…4");
}
END_TEST

START_TEST(token_inputs_cannot_go_missing)
{
    const char *o[] = {"train.modality_dropout=0.2"};
    outcome r = run_tokens(1, o);
    ck_assert_int_eq(r.status, MF_EXIT_BAD_INPUT);
    ck_assert_str_eq(r.err.msg, "-o train.modality_dropout=0.2:1:24: train.modality_dropout: "
                                "'caption' holds token ids, and a missing token input (modality "
                                "dropout, robustness drops, learned markers) is not supported yet");
}
END_TEST

/* ---------------------------------------------------------------- faults named by plugin */
static const char *faulty_run(const char *fault)
{
    static outcome r;
    char o[96];
    snprintf(o, sizeof o, "model.fusion={type: faulty, fault: %s}", fault);
    const char *overrides[] = {o};
    setenv("MMFUSE_PLUGIN_PATH", getenv("MMFUSE_MODEL_FIXTURES"), 1);
    r = run_with("experiments/quickstart.yaml", 1, overrides, NULL);
    setenv("MMFUSE_PLUGIN_PATH", "", 1);
    ck_assert_int_eq(r.status, MF_EXIT_BAD_INPUT);
    const char *rest = strstr(r.err.msg, "quickstart.yaml");
    return rest ? rest : r.err.msg;
}

START_TEST(module_faults_name_the_plugin)
{
    ck_assert_str_eq(faulty_run("build"),
                     "-o model.fusion={type: faulty, fault: build}:1:14: model.fusion: "
                     "model.fusion (plugin 'faulty') refused to build without saying why");
    ck_assert_str_eq(faulty_run("forward"), "quickstart.yaml: model: model.fusion (plugin "
                                            "'faulty'): forward returned no output");
    ck_assert_str_eq(faulty_run("shape"),
                     "quickstart.yaml: model: model.fusion (plugin 'faulty'): forward returned "
                     "(64,64), but build declared (32) per sample after the batch axis");
}
END_TEST

/* ---------------------------------------------------------------- retrieval */
/* Ranks (from 1) of each query's own match among n candidates by cosine similarity (or the
 * raw dot product), counted here in double precision, independently of metrics.c. */
static void naive_ranks(const float *q, const float *c, int n, int d, int cosine, int *rank)
{
    for (int i = 0; i < n; i++) {
        double own = 0, nq = 0, nc_own = 0;
        for (int k = 0; k < d; k++) {
            own += (double)q[i * d + k] * c[i * d + k];
            nq += (double)q[i * d + k] * q[i * d + k];
            nc_own += (double)c[i * d + k] * c[i * d + k];
        }
        if (cosine)
            own /= sqrt(nq * nc_own);
        rank[i] = 1;
        for (int j = 0; j < n; j++) {
            double dot = 0, nc = 0;
            for (int k = 0; k < d; k++) {
                dot += (double)q[i * d + k] * c[j * d + k];
                nc += (double)c[j * d + k] * c[j * d + k];
            }
            rank[i] += (cosine ? dot / sqrt(nq * nc) : dot) > own + 1e-9 * (cosine ? 1 : fabs(own) + 1);
        }
    }
}

static int compare_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static double metric(const mf_run_result *r, const char *name)
{
    for (int i = 0; i < r->n_test_metrics; i++)
        if (strcmp(r->test_metric_names[i], name) == 0)
            return r->test_metrics[i];
    ck_abort_msg("no test metric '%s'", name);
    return NAN;
}

/* The test split's a and b as the synthetic reader gives them (no standardisation). */
static int read_test_split(float **a, float **b)
{
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_dir(reg, mf_default_plugin_dir(), &err), 0);
    const mf_plugin *p = mf_registry_find(reg, MF_KIND_DATASET, "synthetic", NULL);
    mf_config *cfg = mf_config_parse("{samples: 600, seed: 7}", 23, "test", &err);
    ck_assert_int_eq(mf_config_check(cfg, p->params, NULL, &err), 0);
    mf_dataset *ds = mf_dataset_open(p, cfg, ".", &err);
    ck_assert_msg(ds != NULL, "%s", err.msg);
    const mf_dataset_info *in = mf_dataset_get_info(ds);
    int64_t idx[600];
    int n = 0;
    for (int64_t i = 0; i < in->n_samples; i++)
        if (in->split[i] == MF_SPLIT_TEST)
            idx[n++] = i;
    *a = malloc((size_t)n * 16 * sizeof(float));
    *b = malloc((size_t)n * 16 * sizeof(float));
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    float *mods[2] = {*a, *b};
    mf_batch_buffers out = {sizeof out, mods, labels, NULL};
    ck_assert_int_eq(mf_dataset_read(ds, n, idx, &out, &err), 0);
    free(labels);
    mf_dataset_close(ds);
    mf_config_free(cfg);
    mf_registry_free(reg);
    return n;
}

/* The three ways retrieval can rank (eval.similarity): the loss's cosine, the raw dot products
 * a loss with `normalize: false` trained on, and cosine asked for over such a loss. */
static const struct {
    const char *loss, *similarity;
    int cosine;
} ranking[3] = {
    {"loss={type: clip, learn_scale: false}", "eval.similarity=auto", 1},
    {"loss={type: clip, learn_scale: false, normalize: false}", "eval.similarity=auto", 0},
    {"loss={type: clip, learn_scale: false, normalize: false}", "eval.similarity=cosine", 1},
};

START_TEST(retrieval_metrics_match_a_naive_count)
{
    /* identity encoders and no fusion: the embeddings are the data itself, so the ranks can
     * be counted here from the reader's samples and compared with the run's metrics */
    const char *o[] = {"train.epochs=1", "data.samples=600", "data.seed=7", "data.standardize=false",
                       "model.encoders={a: {type: identity}, b: {type: identity}}",
                       "model.fusion=none", "model.head=none",
                       ranking[_i].loss, ranking[_i].similarity};
    mf_run_result r = run_ok(9, o, NULL);
    ck_assert_str_eq(r.select, "val.r@1");
    float *a, *b;
    const int n = read_test_split(&a, &b);
    int *rank = malloc((size_t)n * sizeof *rank);
    double mean_r[3] = {0, 0, 0}, mean_median = 0;
    static const char *const dirs[2] = {"a_to_b", "b_to_a"};
    static const int ks[3] = {1, 5, 10};
    for (int dir = 0; dir < 2; dir++) {
        naive_ranks(dir ? b : a, dir ? a : b, n, 16, ranking[_i].cosine, rank);
        for (int k = 0; k < 3; k++) {
            int hits = 0;
            for (int i = 0; i < n; i++)
                hits += rank[i] <= ks[k];
            char name[64];
            snprintf(name, sizeof name, "%s.r@%d", dirs[dir], ks[k]);
            ck_assert_double_eq_tol(metric(&r, name), (double)hits / n, 1e-9);
            mean_r[k] += 0.5 * hits / n;
        }
        qsort(rank, (size_t)n, sizeof *rank, compare_int);
        const double median = n % 2 ? rank[n / 2] : 0.5 * (rank[n / 2 - 1] + rank[n / 2]);
        char name[64];
        snprintf(name, sizeof name, "%s.median_rank", dirs[dir]);
        ck_assert_double_eq_tol(metric(&r, name), median, 1e-9);
        mean_median += 0.5 * median;
    }
    ck_assert_double_eq_tol(metric(&r, "r@1"), mean_r[0], 1e-9);
    ck_assert_double_eq_tol(metric(&r, "r@10"), mean_r[2], 1e-9);
    ck_assert_double_eq_tol(metric(&r, "median_rank"), mean_median, 1e-9);
    printf("retrieval on raw synthetic data (%d test samples, %s): r@1 %.4f, r@10 %.4f, median "
           "rank %.1f\n", n, ranking[_i].cosine ? "cosine" : "dot", mean_r[0], mean_r[2],
           mean_median);
    ck_assert(mean_r[0] < 1.0 && mean_median > 1.0); /* not a trivial case */
    free(rank);
    free(a);
    free(b);
}
END_TEST

/* shapes-clip.yaml and shapes-siglip.yaml, small: retrieval clearly above chance (1/225 on
 * 225 test scenes). Measured (1500 scenes, 4 epochs, seed 1, one thread): clip test R@1
 * 0.247, R@10 0.840; siglip 0.040, 0.284 (the sigmoid loss starts slower: its bias starts at
 * -10). */
START_TEST(dual_encoders_retrieve_above_chance)
{
    const char *o[] = {"threads=1", "data.samples=1500", "train.epochs=4"};
    outcome c = run_with("experiments/shapes-clip.yaml", 3, o, NULL);
    ck_assert_msg(c.status == MF_EXIT_OK, "%s", c.err.msg);
    outcome s = run_with("experiments/shapes-siglip.yaml", 3, o, NULL);
    ck_assert_msg(s.status == MF_EXIT_OK, "%s", s.err.msg);
    printf("clip: test r@1 %.4f r@10 %.4f; siglip: %.4f %.4f\n", metric(&c.res, "r@1"),
           metric(&c.res, "r@10"), metric(&s.res, "r@1"), metric(&s.res, "r@10"));
    ck_assert_str_eq(c.res.select, "val.r@1");
    ck_assert(metric(&c.res, "r@1") > 0.15 && metric(&c.res, "r@10") > 0.6);
    ck_assert(metric(&s.res, "r@1") > 0.02 && metric(&s.res, "r@10") > 0.15);
    ck_assert(metric(&c.res, "median_rank") < 10);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *t = tcase_create("model");
    tcase_set_timeout(t, 600);
    tcase_add_test(t, dropout_follows_the_seed);
    tcase_add_test(t, hooks_see_every_step_and_epoch);
    tcase_add_test(t, a_hook_stops_the_run);
    tcase_add_test(t, losses_sum_with_their_weights);
    tcase_add_test(t, early_stopping_on_the_selected_metric);
    tcase_add_test(t, regression_path_is_real);
    tcase_add_test(t, shared_encoder_has_one_set_of_parameters);
    tcase_add_test(t, normalize_gives_unit_embeddings);
    tcase_add_test(t, bad_model_configurations);
    tcase_add_test(t, tokens_reach_encoders_with_vocabulary_and_mask);
    tcase_add_test(t, token_outside_the_vocabulary_is_an_error);
    tcase_add_test(t, token_inputs_cannot_go_missing);
    tcase_add_test(t, module_faults_name_the_plugin);
    tcase_add_loop_test(t, retrieval_metrics_match_a_naive_count, 0, 3);
    tcase_add_test(t, dual_encoders_retrieve_above_chance);
    suite_add_tcase(s, t);
    return mf_test_run(s);
}
