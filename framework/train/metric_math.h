/* The arithmetic of the metrics and of robustness, on plain arrays: no experiment, no
 * allocation, so tests/test-metrics.c checks it against hand-computed values directly.
 * Used by metrics.c and robustness.c. */
#ifndef MF_TRAIN_METRIC_MATH_H
#define MF_TRAIN_METRIC_MATH_H

#include <stdint.h>

/* One class of a K×K confusion matrix (rows: truth, columns: prediction). */
typedef struct mfi_class_stats {
    double precision, recall, f1; /* 0 where undefined (no predictions, no samples), as
                                     scikit-learn's zero_division=0 */
    int64_t support;              /* samples whose truth is the class */
} mfi_class_stats;

/* A class from its counts: correct predictions, samples of the class (truth), predictions
 * of it. All the per-class figures need, in O(K) memory whatever the class count. */
static inline mfi_class_stats mfi_class_stats_counts(int64_t tp, int64_t truth, int64_t pred)
{
    const int64_t fp = pred - tp, fn = truth - tp;
    mfi_class_stats s = {0, 0, 0, truth};
    if (tp + fp)
        s.precision = (double)tp / (double)(tp + fp);
    if (tp + fn)
        s.recall = (double)tp / (double)(tp + fn);
    if (tp + fp + fn)
        s.f1 = 2.0 * (double)tp / (double)(2 * tp + fp + fn);
    return s;
}

static inline mfi_class_stats mfi_class_stats_of(const int64_t *confusion, int64_t k, int64_t c)
{
    int64_t truth = 0, pred = 0;
    for (int64_t o = 0; o < k; o++) {
        truth += confusion[c * k + o];
        pred += confusion[o * k + c];
    }
    return mfi_class_stats_counts(confusion[c * k + c], truth, pred);
}

/* Macro-F1 from per-class counts (tp, truth, pred of mfi_class_stats_counts). */
static inline double mfi_macro_f1_counts(const int64_t *tp, const int64_t *truth,
                                         const int64_t *pred, int64_t k)
{
    double sum = 0;
    int64_t classes = 0;
    for (int64_t c = 0; c < k; c++)
        if (truth[c] + pred[c]) {
            sum += mfi_class_stats_counts(tp[c], truth[c], pred[c]).f1;
            classes++;
        }
    return classes ? sum / (double)classes : 0;
}

/* Macro-F1: the mean F1 over the classes that occur in truth or prediction (scikit-learn's
 * average='macro' over unique_labels(y_true, y_pred)). */
static inline double mfi_macro_f1(const int64_t *confusion, int64_t k)
{
    double sum = 0;
    int64_t classes = 0;
    for (int64_t c = 0; c < k; c++) {
        int64_t occurs = 0;
        for (int64_t o = 0; o < k; o++)
            occurs += confusion[c * k + o] + confusion[o * k + c];
        if (!occurs)
            continue;
        sum += mfi_class_stats_of(confusion, k, c).f1;
        classes++;
    }
    return classes ? sum / (double)classes : 0;
}

/* The rank (from 1) of class y among k scores, ties broken by index as a stable descending
 * sort (and argmax) break them: 1 + the classes scoring higher + the earlier ones scoring
 * the same. Top-k accuracy counts rank <= k, so top-1 is the accuracy. */
static inline int64_t mfi_class_rank(const float *scores, int64_t k, int64_t y)
{
    int64_t rank = 1;
    for (int64_t c = 0; c < k; c++)
        rank += scores[c] > scores[y] || (c < y && scores[c] == scores[y]);
    return rank;
}

/* Relative robustness (MultiBench, Liang et al. 2021): the area under the metric-vs-noise
 * curve by the trapezoid rule. MultiBench spaces its levels 0.1 apart; here the levels are
 * the curve's own (strictly increasing), which gives MultiBench's value on its grid. */
static inline double mfi_relative_robustness(const double *level, const double *value, int n)
{
    double area = 0;
    for (int i = 0; i + 1 < n; i++)
        area += 0.5 * (value[i] + value[i + 1]) * (level[i + 1] - level[i]);
    return area;
}

/* Effective robustness (MultiBench): the curve f against late fusion's lf on the same
 * levels, shifted to start where f starts: Σᵢ fᵢ − (lfᵢ + f₀ − lf₀). */
static inline double mfi_effective_robustness(const double *f, const double *lf, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += f[i] - (lf[i] + f[0] - lf[0]);
    return sum;
}

#endif
