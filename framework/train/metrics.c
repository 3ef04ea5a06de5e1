/* What a pass over a split measures, by name, and the metric the model is selected on.
 *
 *   loss                      every model (the weighted sum of the losses)
 *   accuracy, macro_f1        class labels, with a head
 *   top<k>                    eval.top_k: the true class among the k best scores
 *   mse, mae                  regression targets, with a head
 *   accuracy                  multi-label targets (per label, logit > 0), with a head
 *   <a loss's own metrics>    declared by loss plugins (clip's logit_scale, …)
 *   r@1, r@5, r@10, median_rank, and <a>_to_<b>.* per direction
 *                             retrieval between two modalities' embeddings over the whole
 *                             split (cosine similarity; the mean of both directions)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "experiment_internal.h"
#include "metric_math.h"

#define NAME_LEN 96
/* The largest class count given a confusion matrix in result.json and the report (a larger
 * one is unreadable as a chart, and K² grows fast: 65536 named classes would be 34 GB):
 * past it, the per-class figures only. */
#define MFI_CONFUSION_MAX 256

struct mfi_meter {
    const experiment *e;
    int64_t seen;
    double loss_sum;
    int64_t *tp, *truth, *pred; /* per class: correct, samples of it, predictions of it */
    int64_t *confusion;         /* K×K counts, rows: truth; NULL past MFI_CONFUSION_MAX */
    int64_t top_hits[MFI_MAX_TOP_K];
    double sq_sum, abs_sum;
    double *sq_target, *abs_target; /* regression: per target column */
    int64_t elems, label_correct;
    double plugin_sum[MAX_LOSSES][MF_LOSS_MAX_METRICS];
    int with_retrieval;
    int64_t cap, dim;   /* retrieval: rows held, embedding width */
    float *ra, *rb;     /* cap × dim each */
};

/* ---------------------------------------------------------------- names */
static const char *const retrieval_stats[] = {"r@1", "r@5", "r@10", "median_rank"};

static void add_name(mfi_metric_table *t, const char *name, int higher)
{
    if (t->n < MAX_METRICS) {
        t->name[t->n] = name;
        t->higher_is_better[t->n] = higher;
        t->value[t->n++] = NAN;
    }
}

/* The metrics of this experiment's passes, in a fixed order; names live in `buf`. */
static void list_metrics(const experiment *e, mfi_metric_table *t, char (*buf)[NAME_LEN])
{
    t->n = 0;
    add_name(t, "loss", 0);
    if (e->has_logits && e->target_kind == MF_TARGET_CLASSES) {
        add_name(t, "accuracy", 1);
        add_name(t, "macro_f1", 1);
        for (int j = 0; j < e->n_top_k && t->n < MAX_METRICS; j++) {
            snprintf(buf[t->n], NAME_LEN, "top%d", e->top_k[j]);
            add_name(t, buf[t->n], 1);
        }
    } else if (e->has_logits && e->target_kind == MF_TARGET_VALUES) {
        add_name(t, "mse", 0);
        add_name(t, "mae", 0);
    } else if (e->has_logits) {
        add_name(t, "accuracy", 1);
    }
    for (int i = 0; i < e->n_losses; i++)
        for (int k = 0; k < e->loss_metrics[i].n; k++)
            add_name(t, e->loss_metrics[i].names[k], e->loss_metrics[i].higher_is_better[k]);
    if (e->retrieval[0] < 0)
        return;
    for (int s = 0; s < 4; s++)
        add_name(t, retrieval_stats[s], s < 3);
    for (int dir = 0; dir < 2; dir++)
        for (int s = 0; s < 4 && t->n < MAX_METRICS; s++) {
            snprintf(buf[t->n], NAME_LEN, "%s_to_%s.%s", e->mod_name[e->retrieval[dir]],
                     e->mod_name[e->retrieval[1 - dir]], retrieval_stats[s]);
            add_name(t, buf[t->n], s < 3);
        }
}

static _Thread_local char name_buf[MAX_METRICS][NAME_LEN];

void mfi_metric_names(const experiment *e, mfi_metric_table *out)
{
    list_metrics(e, out, name_buf);
}

double mfi_metric_get(const mfi_metric_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0)
            return t->value[i];
    return NAN;
}

const char *mfi_default_select(const experiment *e)
{
    if (e->has_logits && e->target_kind != MF_TARGET_VALUES)
        return "val.accuracy";
    if (e->head)
        return "val.mse";
    return e->retrieval[0] >= 0 ? "val.r@1" : "val.loss";
}

/* eval.retrieval: two modalities with vector embeddings of one width; [] picks the two
 * modalities of a model without fusion when they qualify. */
static int pick_retrieval(experiment *e, mf_error *err)
{
    const mf_config *list = mf_config_get(mfi_section(e, "eval"), "retrieval");
    e->retrieval[0] = e->retrieval[1] = -1;
    int pick[2] = {0, 1};
    if (mf_config_length(list) == 0) {
        if (e->fusion || e->n_mod != 2 || e->emb_shape[0].ndim != 1 ||
            !mf_shape_equal(&e->emb_shape[0], &e->emb_shape[1]))
            return 0;
    } else if (mf_config_length(list) != 2) {
        mf_config_error(err, list, "expected two modalities, got %d", mf_config_length(list));
        return -1;
    } else {
        for (int k = 0; k < 2; k++) {
            const char *name = mf_config_scalar(mf_config_at(list, k));
            for (pick[k] = 0; pick[k] < e->n_mod && strcmp(e->mod_name[pick[k]], name); pick[k]++)
                ;
            if (pick[k] == e->n_mod) {
                mf_config_error(err, mf_config_at(list, k), "'%s' is not a modality in use%s",
                                name, mf_suggestion(name, e->mod_name));
                return -1;
            }
        }
        char a[64], b[64];
        if (e->emb_shape[pick[0]].ndim != 1 ||
            !mf_shape_equal(&e->emb_shape[pick[0]], &e->emb_shape[pick[1]])) {
            mf_config_error(err, list, "retrieval compares vector embeddings of one width, and "
                            "'%s' gives %s, '%s' %s (give their encoders `out:` projections and "
                            "pooling)", e->mod_name[pick[0]],
                            mf_shape_str(&e->emb_shape[pick[0]], a, sizeof a),
                            e->mod_name[pick[1]], mf_shape_str(&e->emb_shape[pick[1]], b, sizeof b));
            return -1;
        }
    }
    e->retrieval[0] = pick[0];
    e->retrieval[1] = pick[1];
    /* eval.similarity: rank by what the loss compared (open_clip's retrieval ranks by the
     * loss's own logits); auto takes dot products when a loss was told `normalize: false` */
    int sim = 0, raw = 0;
    mf_config_enum(mfi_section(e, "eval"), "similarity", "auto|cosine|dot", &sim, NULL);
    for (int i = 0; sim == 0 && i < e->n_losses; i++) {
        int on = 1;
        if (e->loss_cfg[i] && mf_config_has(e->loss_cfg[i], "normalize") &&
            mf_config_bool(e->loss_cfg[i], "normalize", &on, NULL) == 0 && !on)
            raw = 1;
    }
    e->retrieval_dot = sim == 2 || (sim == 0 && raw);
    return 0;
}

/* eval.top_k: distinct k in [1, classes), for a model scoring classes. */
static int read_top_k(experiment *e, mf_error *err)
{
    const mf_config *list = mf_config_get(mfi_section(e, "eval"), "top_k");
    const int n = mf_config_length(list);
    e->n_top_k = 0;
    if (n == 0)
        return 0;
    if (!e->has_logits || e->target_kind != MF_TARGET_CLASSES) {
        mf_config_error(err, list, "top-k accuracy needs class labels and class scores (a head, "
                        "or late fusion of logits)");
        return -1;
    }
    if (n > MFI_MAX_TOP_K) {
        mf_config_error(err, list, "at most %d values, got %d", MFI_MAX_TOP_K, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const long long k = strtoll(mf_config_scalar(mf_config_at(list, i)), NULL, 10);
        if (k >= e->target_dim) {
            mf_config_error(err, mf_config_at(list, i), "top-%lld accuracy needs more than %lld "
                            "classes, and the data has %lld", k, k, (long long)e->target_dim);
            return -1;
        }
        for (int j = 0; j < e->n_top_k; j++)
            if (e->top_k[j] == k) {
                mf_config_error(err, mf_config_at(list, i), "%lld is listed twice", k);
                return -1;
            }
        e->top_k[e->n_top_k++] = (int)k;
    }
    return 0;
}

int mfi_check_select(experiment *e, mf_error *err)
{
    if (pick_retrieval(e, err) || read_top_k(e, err))
        return -1;
    if (strcmp(e->select, "auto") == 0)
        e->select = mfi_default_select(e);
    mfi_metric_table t;
    mfi_metric_names(e, &t);
    const char *candidates[MAX_METRICS + 1];
    static _Thread_local char prefixed[MAX_METRICS][NAME_LEN + 4];
    for (int i = 0; i < t.n; i++) {
        snprintf(prefixed[i], sizeof prefixed[i], "val.%s", t.name[i]);
        candidates[i] = prefixed[i];
    }
    candidates[t.n] = NULL;
    for (int i = 0; i < t.n; i++)
        if (strcmp(candidates[i], e->select) == 0)
            return mfi_check_robustness_baseline(e, err); /* needs the selected metric */
    char known[1024] = "";
    for (int i = 0; i < t.n && i < 12; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 candidates[i]);
    mf_config_error(err, mf_config_get(mfi_section(e, "train"), "select"),
                    "this model measures no '%s'%s; it measures %s", e->select,
                    mf_suggestion(e->select, candidates), known);
    return -1;
}

/* ---------------------------------------------------------------- accumulation */
mfi_meter *mfi_meter_new(const experiment *e, int64_t n_samples)
{
    mfi_meter *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->e = e;
    const int64_t k = e->target_kind == MF_TARGET_CLASSES ? e->target_dim : 1;
    m->tp = calloc((size_t)(3 * k), sizeof *m->tp);
    m->truth = m->tp ? m->tp + k : NULL;
    m->pred = m->tp ? m->tp + 2 * k : NULL;
    m->confusion = k <= MFI_CONFUSION_MAX ? calloc((size_t)(k * k), sizeof *m->confusion) : NULL;
    const size_t width = (size_t)(e->target_dim > 0 ? e->target_dim : 1);
    m->sq_target = calloc(width, sizeof *m->sq_target);
    m->abs_target = calloc(width, sizeof *m->abs_target);
    if (e->retrieval[0] >= 0) {
        m->dim = e->emb_shape[e->retrieval[0]].dim[0];
        m->cap = n_samples;
        m->ra = malloc((size_t)(m->cap * m->dim) * sizeof(float));
        m->rb = malloc((size_t)(m->cap * m->dim) * sizeof(float));
    }
    if (!m->tp || (k <= MFI_CONFUSION_MAX && !m->confusion) || !m->sq_target || !m->abs_target ||
        (e->retrieval[0] >= 0 && (!m->ra || !m->rb))) {
        mfi_meter_free(m);
        return NULL;
    }
    return m;
}

void mfi_meter_free(mfi_meter *m)
{
    if (!m)
        return;
    free(m->confusion);
    free(m->tp);
    free(m->sq_target);
    free(m->abs_target);
    free(m->ra);
    free(m->rb);
    free(m);
}

void mfi_meter_reset(mfi_meter *m, int with_retrieval)
{
    const experiment *e = m->e;
    const int64_t k = e->target_kind == MF_TARGET_CLASSES ? e->target_dim : 1;
    memset(m->tp, 0, (size_t)(3 * k) * sizeof *m->tp);
    if (m->confusion)
        memset(m->confusion, 0, (size_t)(k * k) * sizeof *m->confusion);
    memset(m->top_hits, 0, sizeof m->top_hits);
    const size_t width = (size_t)(e->target_dim > 0 ? e->target_dim : 1);
    memset(m->sq_target, 0, width * sizeof *m->sq_target);
    memset(m->abs_target, 0, width * sizeof *m->abs_target);
    m->seen = m->elems = m->label_correct = 0;
    m->loss_sum = m->sq_sum = m->abs_sum = 0;
    memset(m->plugin_sum, 0, sizeof m->plugin_sum);
    m->with_retrieval = with_retrieval && m->ra;
}

static void add_predictions(mfi_meter *m, const float *out, const mfi_batch *batch)
{
    const experiment *e = m->e;
    const int64_t b = batch->n, k = e->target_dim;
    for (int64_t i = 0; i < b; i++) {
        const float *row = out + i * k;
        if (e->target_kind == MF_TARGET_CLASSES) {
            int64_t best = 0;
            for (int64_t c = 1; c < k; c++)
                if (row[c] > row[best])
                    best = c;
            const int64_t y = batch->labels[i], rank = e->n_top_k ? mfi_class_rank(row, k, y) : 0;
            m->tp[y] += y == best;
            m->truth[y]++;
            m->pred[best]++;
            if (m->confusion)
                m->confusion[y * k + best]++;
            for (int j = 0; j < e->n_top_k; j++)
                m->top_hits[j] += rank <= e->top_k[j];
            continue;
        }
        for (int64_t c = 0; c < k; c++) {
            // predictions of standardised targets back in the data's units
            const double y = e->target_mean ? row[c] * e->target_std[c] + e->target_mean[c] : row[c];
            const double t = batch->targets[i * k + c], d = y - t;
            m->sq_sum += d * d;
            m->abs_sum += fabs(d);
            m->sq_target[c] += d * d;
            m->abs_target[c] += fabs(d);
            m->label_correct += (row[c] > 0) == (t > 0.5);
        }
        m->elems += k;
    }
}

void mfi_meter_add(mfi_meter *m, experiment *e, model_graph *mg, const mfi_batch *batch)
{
    const int64_t b = batch->n;
    m->loss_sum += (double)mf_node_value(mg->loss)[0] * (double)b;
    if (mg->logits)
        add_predictions(m, mf_node_value(mg->logits), batch);
    for (int i = 0; i < e->n_losses; i++) {
        double v[MF_LOSS_MAX_METRICS] = {0};
        if (!e->loss_metrics[i].n)
            continue;
        mf_module_loss_batch_metrics(e->loss[i], &mg->li, v);
        for (int k = 0; k < e->loss_metrics[i].n; k++)
            m->plugin_sum[i][k] += v[k] * (double)b;
    }
    if (m->with_retrieval && m->seen + b <= m->cap) {
        const size_t row = (size_t)m->dim * sizeof(float);
        memcpy(m->ra + m->seen * m->dim, mf_node_value(mg->emb[e->retrieval[0]]), (size_t)b * row);
        memcpy(m->rb + m->seen * m->dim, mf_node_value(mg->emb[e->retrieval[1]]), (size_t)b * row);
    }
    m->seen += b;
}

int mfi_meter_reduce(mfi_meter *m, const mfi_comm *c)
{
    if (c->size <= 1)
        return 0;
    const experiment *e = m->e;
    const int64_t k = e->target_kind == MF_TARGET_CLASSES ? e->target_dim : 1;
    const int64_t width = e->target_dim > 0 ? e->target_dim : 1;
    int64_t counts[3 + MFI_MAX_TOP_K] = {m->seen, m->elems, m->label_correct};
    memcpy(counts + 3, m->top_hits, sizeof m->top_hits);
    double sums[3] = {m->loss_sum, m->sq_sum, m->abs_sum};
    const int64_t mine = m->with_retrieval ? (m->seen < m->cap ? m->seen : m->cap) : 0;
    int64_t rows[2];
    if (mfi_dist_sum_i64(c, counts, 3 + MFI_MAX_TOP_K) || mfi_dist_sum_f64(c, sums, 3) ||
        mfi_dist_sum_i64(c, m->tp, 3 * k) ||
        (m->confusion && mfi_dist_sum_i64(c, m->confusion, k * k)) ||
        mfi_dist_sum_f64(c, m->sq_target, width) || mfi_dist_sum_f64(c, m->abs_target, width) ||
        mfi_dist_sum_f64(c, &m->plugin_sum[0][0], MAX_LOSSES * MF_LOSS_MAX_METRICS) ||
        (m->with_retrieval && (mfi_dist_gather_rows(c, m->ra, mine, m->dim, m->cap, &rows[0]) ||
                               mfi_dist_gather_rows(c, m->rb, mine, m->dim, m->cap, &rows[1]))))
        return -1;
    m->seen = counts[0];
    m->elems = counts[1];
    m->label_correct = counts[2];
    memcpy(m->top_hits, counts + 3, sizeof m->top_hits);
    m->loss_sum = sums[0];
    m->sq_sum = sums[1];
    m->abs_sum = sums[2];
    return 0;
}

/* ---------------------------------------------------------------- results */
static void normalize_rows(float *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        const float inv = (float)(1.0 / fmax(sqrt(s), 1e-12));
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] *= inv;
    }
}

static int compare_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Ranks (from 1) of each query's own match among all n candidates (unit rows for cosine):
 * 1 + the candidates scoring strictly higher. Blocks of queries keep the scores small. */
static void ranks(const float *q, const float *c, int64_t n, int64_t d, int64_t *rank, float *scores,
                  int64_t block)
{
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        const int64_t rows = i0 + block < n ? block : n - i0;
        // scores (rows,n) = q[i0:i0+rows] (rows,d) · cᵀ (d,n)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)d, 1.0f,
                    q + i0 * d, (int)d, c, (int)d, 0.0f, scores, (int)n);
        for (int64_t r = 0; r < rows; r++) {
            const float *s = scores + r * n, own = s[i0 + r];
            int64_t higher = 0;
            for (int64_t j = 0; j < n; j++)
                higher += s[j] > own;
            rank[i0 + r] = higher + 1;
        }
    }
}

/* R@1, R@5, R@10 and the median rank, for both directions, into out[2][4]. */
static int retrieval(mfi_meter *m, double out[2][4])
{
    const int64_t n = m->seen < m->cap ? m->seen : m->cap, d = m->dim, block = 256;
    int64_t *rank = malloc((size_t)n * sizeof *rank);
    float *scores = malloc((size_t)(block * n) * sizeof *scores);
    if (!rank || !scores || n == 0) {
        free(rank);
        free(scores);
        return -1;
    }
    if (!m->e->retrieval_dot) { /* cosine: unit rows; eval.similarity dot: as they are */
        normalize_rows(m->ra, n, d);
        normalize_rows(m->rb, n, d);
    }
    for (int dir = 0; dir < 2; dir++) {
        ranks(dir ? m->rb : m->ra, dir ? m->ra : m->rb, n, d, rank, scores, block);
        int64_t hits[3] = {0, 0, 0};
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < 3; k++)
                hits[k] += rank[i] <= (k == 0 ? 1 : k == 1 ? 5 : 10);
        for (int k = 0; k < 3; k++)
            out[dir][k] = (double)hits[k] / (double)n;
        qsort(rank, (size_t)n, sizeof *rank, compare_i64);
        out[dir][3] = n % 2 ? (double)rank[n / 2] : 0.5 * (double)(rank[n / 2 - 1] + rank[n / 2]);
    }
    free(rank);
    free(scores);
    return 0;
}

void mfi_meter_table(mfi_meter *m, mfi_metric_table *t)
{
    const experiment *e = m->e;
    const double n = m->seen ? (double)m->seen : NAN;
    list_metrics(e, t, name_buf);
    int at = 0;
    t->value[at++] = m->loss_sum / n;
    if (e->has_logits && e->target_kind == MF_TARGET_CLASSES) {
        int64_t correct = 0;
        for (int64_t c = 0; c < e->target_dim; c++)
            correct += m->tp[c];
        t->value[at++] = (double)correct / n;
        t->value[at++] = mfi_macro_f1_counts(m->tp, m->truth, m->pred, e->target_dim);
        for (int j = 0; j < e->n_top_k; j++)
            t->value[at++] = (double)m->top_hits[j] / n;
    } else if (e->has_logits && e->target_kind == MF_TARGET_VALUES) {
        t->value[at++] = m->sq_sum / (double)m->elems;
        t->value[at++] = m->abs_sum / (double)m->elems;
    } else if (e->has_logits) {
        t->value[at++] = (double)m->label_correct / (double)m->elems;
    }
    for (int i = 0; i < e->n_losses; i++)
        for (int k = 0; k < e->loss_metrics[i].n; k++)
            t->value[at++] = m->plugin_sum[i][k] / n;
    double r[2][4];
    if (e->retrieval[0] < 0 || !m->with_retrieval || retrieval(m, r))
        return; /* left NAN: not measured on this pass */
    for (int s = 0; s < 4; s++)
        t->value[at++] = 0.5 * (r[0][s] + r[1][s]);
    for (int dir = 0; dir < 2; dir++)
        for (int s = 0; s < 4 && at < t->n; s++)
            t->value[at++] = r[dir][s];
}

/* ---------------------------------------------------------------- details (result.json) */
static json_t *class_details(mfi_meter *m, const experiment *e)
{
    const int64_t k = e->target_dim;
    const char *const *names = e->info ? e->info->class_names : NULL;
    json_t *d = json_object(), *classes = json_array(), *confusion = json_array(),
           *per_class = json_array();
    for (int64_t c = 0; c < k; c++) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)c);
        const char *name = names && names[c] ? names[c] : num;
        json_array_append_new(classes, json_string(name));
        json_t *row = m->confusion ? json_array() : NULL;
        for (int64_t o = 0; row && o < k; o++)
            json_array_append_new(row, json_integer(m->confusion[c * k + o]));
        if (row)
            json_array_append_new(confusion, row);
        const mfi_class_stats s = mfi_class_stats_counts(m->tp[c], m->truth[c], m->pred[c]);
        json_array_append_new(per_class, json_pack("{s:s, s:f, s:f, s:f, s:I}", "class", name,
                                                   "precision", s.precision, "recall", s.recall,
                                                   "f1", s.f1, "support", (json_int_t)s.support));
    }
    json_object_set_new(d, "classes", classes);
    if (m->confusion)
        json_object_set_new(d, "confusion", confusion);
    else
        json_decref(confusion);
    json_object_set_new(d, "per_class", per_class);
    return d;
}

static json_t *target_details(mfi_meter *m, const experiment *e)
{
    const int64_t k = e->target_dim;
    json_t *d = json_object(), *targets = json_array(), *mse = json_array(), *mae = json_array();
    const double n = (double)m->seen;
    for (int64_t c = 0; c < k; c++) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)c);
        json_array_append_new(targets, json_string(num));
        json_array_append_new(mse, json_real(m->sq_target[c] / n));
        json_array_append_new(mae, json_real(m->abs_target[c] / n));
    }
    json_object_set_new(d, "targets", targets);
    json_object_set_new(d, "mse", mse);
    json_object_set_new(d, "mae", mae);
    return d;
}

json_t *mfi_meter_details(mfi_meter *m, const experiment *e)
{
    if (!m || m->seen == 0 || !e->has_logits)
        return NULL;
    if (e->target_kind == MF_TARGET_CLASSES)
        return class_details(m, e);
    if (e->target_kind == MF_TARGET_VALUES)
        return target_details(m, e);
    return NULL;
}
