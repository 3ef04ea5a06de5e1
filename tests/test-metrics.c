/* Metrics and robustness: per-class precision, recall, F1, the confusion matrix and top-k
 * against values counted by hand; MultiBench's relative and effective robustness against
 * the formulas worked by hand on fixed curves; a run on fixed predictions (the data are the
 * logits: identity encoders, late fusion by mean, no head, no parameters) read back from
 * result.json; located refusals of bad eval keys. */
#include "mf_check.h"
#include "tmpdir.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <jansson.h>
#include <mmfuse/host.h>

#include "../framework/train/metric_math.h"

/* ---------------------------------------------------------------- the arithmetic */
/* Ten samples, three classes (rows truth, columns prediction):
 *   truth 0: 2 right, 1 taken for 1        truth 1: 2 right, one each for 0 and 2
 *   truth 2: 2 right, 1 taken for 0
 * class 0: TP 2, FP 2, FN 1 → P 2/4, R 2/3, F1 4/7;  class 1: TP 2, FP 1, FN 2 → P 2/3,
 * R 1/2, F1 4/7;  class 2: TP 2, FP 1, FN 1 → P 2/3, R 2/3, F1 2/3. A fourth class never
 * occurs: all zero, and left out of macro-F1. */
static const int64_t confusion[16] = {2, 1, 0, 0, 1, 2, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0};

START_TEST(per_class_by_hand)
{
    static const double p[4] = {0.5, 2.0 / 3, 2.0 / 3, 0}, r[4] = {2.0 / 3, 0.5, 2.0 / 3, 0},
                        f1[4] = {4.0 / 7, 4.0 / 7, 2.0 / 3, 0};
    static const int64_t support[4] = {3, 4, 3, 0};
    for (int c = 0; c < 4; c++) {
        mfi_class_stats s = mfi_class_stats_of(confusion, 4, c);
        ck_assert_double_eq_tol(s.precision, p[c], 1e-12);
        ck_assert_double_eq_tol(s.recall, r[c], 1e-12);
        ck_assert_double_eq_tol(s.f1, f1[c], 1e-12);
        ck_assert_int_eq(s.support, support[c]);
    }
    ck_assert_double_eq_tol(mfi_macro_f1(confusion, 4), (4.0 / 7 + 4.0 / 7 + 2.0 / 3) / 3, 1e-12);
    /* a class only predicted, never true: precision 0, recall 0 (no samples), F1 0, counted */
    static const int64_t only_predicted[4] = {1, 1, 0, 0};
    mfi_class_stats s = mfi_class_stats_of(only_predicted, 2, 1);
    ck_assert(s.precision == 0 && s.recall == 0 && s.f1 == 0 && s.support == 0);
    ck_assert_double_eq_tol(mfi_macro_f1(only_predicted, 2), (2.0 / 3 + 0) / 2, 1e-12);
    /* the meter keeps per-class counts (O(K), any class count): the same figures from them */
    int64_t tp[4], truth[4] = {0}, pred[4] = {0};
    for (int c = 0; c < 4; c++) {
        tp[c] = confusion[c * 4 + c];
        for (int o = 0; o < 4; o++) {
            truth[c] += confusion[c * 4 + o];
            pred[c] += confusion[o * 4 + c];
        }
        mfi_class_stats a = mfi_class_stats_of(confusion, 4, c);
        mfi_class_stats b = mfi_class_stats_counts(tp[c], truth[c], pred[c]);
        ck_assert(a.precision == b.precision && a.recall == b.recall && a.f1 == b.f1 &&
                  a.support == b.support);
    }
    ck_assert(mfi_macro_f1_counts(tp, truth, pred, 4) == mfi_macro_f1(confusion, 4));
}
END_TEST

START_TEST(class_rank_breaks_ties_like_argmax)
{
    const float s[4] = {0.5f, 2.0f, 0.5f, -1.0f};
    ck_assert_int_eq(mfi_class_rank(s, 4, 1), 1);
    ck_assert_int_eq(mfi_class_rank(s, 4, 0), 2); /* tied with class 2, which comes later */
    ck_assert_int_eq(mfi_class_rank(s, 4, 2), 3);
    ck_assert_int_eq(mfi_class_rank(s, 4, 3), 4);
    const float all_equal[3] = {0, 0, 0}; /* argmax picks class 0: so does rank 1 */
    ck_assert_int_eq(mfi_class_rank(all_equal, 3, 0), 1);
    ck_assert_int_eq(mfi_class_rank(all_equal, 3, 2), 3);
}
END_TEST

/* MultiBench's relative_robustness_helper: Σ (rᵢ + rᵢ₊₁)·0.1/2 on levels 0.1 apart;
 * effective_robustness_helper: Σ (f − (lf + f₀ − lf₀)). */
START_TEST(multibench_formulas_by_hand)
{
    const double level[5] = {0, 0.1, 0.2, 0.3, 0.4};
    const double f[5] = {0.9, 0.8, 0.8, 0.6, 0.5};
    const double lf[5] = {0.8, 0.6, 0.5, 0.5, 0.2};
    /* (0.9+0.8 + 0.8+0.8 + 0.8+0.6 + 0.6+0.5)·0.05 = 5.8·0.05 */
    ck_assert_double_eq_tol(mfi_relative_robustness(level, f, 5), 0.29, 1e-12);
    /* f − lf = 0.1, 0.2, 0.3, 0.1, 0.3: sum 1.0, minus 5·(0.9 − 0.8) */
    ck_assert_double_eq_tol(mfi_effective_robustness(f, lf, 5), 0.5, 1e-12);
    ck_assert_double_eq_tol(mfi_effective_robustness(lf, lf, 5), 0, 1e-12);
    /* uneven levels: the trapezoids' own widths, (1+0.5)/2·0.5 + (0.5+0)/2·0.25 */
    const double uneven[3] = {0, 0.5, 0.75}, v[3] = {1, 0.5, 0};
    ck_assert_double_eq_tol(mfi_relative_robustness(uneven, v, 3), 0.4375, 1e-12);
    ck_assert_double_eq(mfi_relative_robustness(level, f, 1), 0);
}
END_TEST

/* ---------------------------------------------------------------- fixed predictions */
/* Test samples (split 2) whose modality x holds the logits, y zeros; mean fusion halves them.
 * Margins ≥ 10 keep σ ≤ 0.9 of noise from changing any prediction. Ranks of the truth:
 *   i  truth  x                 pred  rank
 *   0  0      (30, 0, 0)        0     1
 *   1  0      (30, 0, 0)        0     1
 *   2  0      (20, 30, 0)       1     2
 *   3  1      (0, 30, 10)       1     1
 *   4  1      (0, 30, 0)        1     1
 *   5  1      (0, 0, 30)        2     3 (tied with class 0, which comes first)
 *   6  1      (30, 20, 0)       0     2
 *   7  2      (0, 0, 30)        2     1
 *   8  2      (30, 0, 0)        0     3
 *   9  2      (0, 0, 30)        2     1
 * accuracy 6/10, top2 8/10, the confusion matrix above. Dropping x leaves zeros: class 0
 * everywhere, accuracy 3/10; dropping y changes nothing. */
static const double test_x[10][3] = {{30, 0, 0}, {30, 0, 0}, {20, 30, 0}, {0, 30, 10},
                                     {0, 30, 0}, {0, 0, 30}, {30, 20, 0}, {0, 0, 30},
                                     {30, 0, 0}, {0, 0, 30}};
static const int test_y[10] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};

static void write_data(const char *path)
{
    enum { N = 16 };
    double x[N * 3] = {0}, zeros[N * 3] = {0}, label[N], split[N];
    for (int i = 0; i < N; i++) {
        const int t = i < 10;
        for (int j = 0; j < 3; j++)
            x[i * 3 + j] = t ? test_x[i][j] : (j == i % 3 ? 30 : 0);
        label[i] = t ? test_y[i] : i % 3;
        split[i] = t ? 2 : i < 13 ? 0 : 1;
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t dims[2] = {N, 3}, n = N;
    const struct { const char *path; hid_t type; int rank; const double *v; } sets[] = {
        {"/modalities/x", H5T_IEEE_F32LE, 2, x}, {"/modalities/y", H5T_IEEE_F32LE, 2, zeros},
        {"/label", H5T_STD_I32LE, 1, label},     {"/split", H5T_STD_I32LE, 1, split}};
    for (int s = 0; s < 4; s++) {
        hid_t space = H5Screate_simple(sets[s].rank, sets[s].rank == 2 ? dims : &n, NULL);
        hid_t d = H5Dcreate2(f, sets[s].path, sets[s].type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, sets[s].v),
                         0);
        H5Dclose(d);
        H5Sclose(space);
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hsize_t k = 3;
    hid_t space = H5Screate_simple(1, &k, NULL);
    hid_t d = H5Dcreate2(f, "/classes", t, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "cat\0dog\0owl\0"), 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Tclose(t);
    H5Pclose(lcpl);
    H5Fclose(f);
}

static const char experiment_yaml[] =
    "name: fixed\nseed: 1\n"
    "data: {reader: hdf5, path: fixed.h5, batch_size: 4, standardize: false}\n"
    "model:\n"
    "  encoders: {x: {type: identity}, y: {type: identity}}\n"
    "  fusion: {type: mean}\n"
    "  head: none\n"
    "loss: {type: cross_entropy}\n"
    "train: {epochs: 1}\n"
    "eval: {top_k: [2], robustness: {drop: [all], default_noise: true}}\n";

static void write_experiment(void)
{
    make_tmp("metrics");
    write_data(tmp_path("fixed.h5"));
    FILE *f = fopen(tmp_path("fixed.yaml"), "w");
    ck_assert_ptr_nonnull(f);
    fputs(experiment_yaml, f);
    fclose(f);
}

/* Runs tmp/fixed.yaml with the overrides into tmp/<run>; returns the status and err. */
static int run_fixed(const char *run, int n, const char *const *o, int validate, mf_error *err)
{
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = n, .overrides = o,
                           .log = stdout, .quiet = 1, .run_dir = run ? tmp_path(run) : NULL,
                           .no_save = !run, .validate_only = validate};
    mf_error_clear(err);
    return mf_experiment_run(tmp_path("fixed.yaml"), &opts, NULL, err);
}

static json_t *load_result(const char *run)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/result.json", tmp_path(run));
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", path, jerr.text);
    return j;
}

static double num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    ck_assert_msg(json_is_number(v), "no number '%s'", key);
    return json_number_value(v);
}

static void check_details(json_t *d)
{
    static const char *const names[3] = {"cat", "dog", "owl"};
    static const double p[3] = {0.5, 2.0 / 3, 2.0 / 3}, r[3] = {2.0 / 3, 0.5, 2.0 / 3},
                        f1[3] = {4.0 / 7, 4.0 / 7, 2.0 / 3};
    static const int support[3] = {3, 4, 3};
    for (int c = 0; c < 3; c++) {
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "classes"), c)),
                         names[c]);
        for (int o = 0; o < 3; o++)
            ck_assert_int_eq(json_integer_value(json_array_get(
                                 json_array_get(json_object_get(d, "confusion"), c), o)),
                             confusion[c * 4 + o]);
        json_t *pc = json_array_get(json_object_get(d, "per_class"), c);
        ck_assert_str_eq(json_string_value(json_object_get(pc, "class")), names[c]);
        ck_assert_double_eq_tol(num(pc, "precision"), p[c], 1e-9);
        ck_assert_double_eq_tol(num(pc, "recall"), r[c], 1e-9);
        ck_assert_double_eq_tol(num(pc, "f1"), f1[c], 1e-9);
        ck_assert_int_eq(json_integer_value(json_object_get(pc, "support")), support[c]);
    }
}

/* A baseline result.json with the noise curves x: 0.7 − 0.02·i, y: 0.5 flat (i = 0…9). */
static void write_baseline(const char *name, const char *metric, int levels)
{
    json_t *noise = json_object();
    for (int m = 0; m < 2; m++) {
        json_t *l = json_array(), *v = json_array();
        for (int i = 0; i < levels; i++) {
            json_array_append_new(l, json_real(0.1 * i));
            json_array_append_new(v, json_real(m ? 0.5 : 0.7 - 0.02 * i));
        }
        json_object_set_new(noise, m ? "y" : "x",
                            json_pack("{s:o, s:o}", "levels", l, "values", v));
    }
    json_t *j = json_pack("{s:{s:s, s:f, s:o}}", "robustness", "metric", metric, "clean", 0.7,
                          "noise", noise);
    ck_assert_int_eq(json_dump_file(j, tmp_path(name), 0), 0);
    json_decref(j);
}

START_TEST(fixed_predictions_end_to_end)
{
    write_experiment();
    write_baseline("lf.json", "accuracy", 10);
    static const char *const o[] = {"eval.robustness.baseline=lf.json"};
    mf_error err;
    ck_assert_msg(run_fixed("run", 1, o, 0, &err) == MF_EXIT_OK, "%s", err.msg);
    json_t *j = load_result("run");
    json_t *test = json_object_get(j, "test");
    ck_assert_double_eq_tol(num(test, "accuracy"), 0.6, 1e-9);
    ck_assert_double_eq_tol(num(test, "top2"), 0.8, 1e-9);
    ck_assert_double_eq_tol(num(test, "macro_f1"), (4.0 / 7 + 4.0 / 7 + 2.0 / 3) / 3, 1e-9);
    json_t *details = json_object_get(json_object_get(j, "details"), "test");
    ck_assert_ptr_nonnull(details);
    check_details(details);

    json_t *rob = json_object_get(j, "robustness");
    if (!rob)
        rob = json_object_get(json_object_get(j, "details"), "robustness");
    ck_assert_ptr_nonnull(rob);
    ck_assert_str_eq(json_string_value(json_object_get(rob, "metric")), "accuracy");
    ck_assert_double_eq_tol(num(rob, "clean"), 0.6, 1e-9);
    ck_assert_double_eq_tol(num(json_object_get(rob, "drop"), "x"), 0.3, 1e-9);
    ck_assert_double_eq_tol(num(json_object_get(rob, "drop"), "y"), 0.6, 1e-9);
    for (int m = 0; m < 2; m++) {
        const char *mod = m ? "y" : "x";
        json_t *curve = json_object_get(json_object_get(rob, "noise"), mod);
        ck_assert_int_eq(json_array_size(json_object_get(curve, "levels")), 10);
        json_t *levels = json_object_get(curve, "levels"), *values = json_object_get(curve, "values");
        for (int i = 0; i < 10; i++) {
            ck_assert_double_eq_tol(json_number_value(json_array_get(levels, i)), 0.1 * i, 1e-12);
            ck_assert_double_eq_tol(json_number_value(json_array_get(values, i)), 0.6, 1e-9);
        }
        /* a flat curve at 0.6 over [0, 0.9] */
        ck_assert_double_eq_tol(num(json_object_get(rob, "relative"), mod), 0.54, 1e-9);
    }
    /* x: Σ (0.6 − (0.7 − 0.02i + 0.6 − 0.7)) = Σ 0.02i = 0.9; y: flat against flat, 0 */
    ck_assert_double_eq_tol(num(json_object_get(rob, "effective"), "x"), 0.9, 1e-9);
    ck_assert_double_eq_tol(num(json_object_get(rob, "effective"), "y"), 0, 1e-9);
    ck_assert_str_eq(json_string_value(json_object_get(rob, "baseline")), tmp_path("lf.json"));
    json_decref(j);

    /* without a baseline: no effective robustness; the run is its own baseline next */
    ck_assert_msg(run_fixed("plain", 0, NULL, 0, &err) == MF_EXIT_OK, "%s", err.msg);
    j = load_result("plain");
    rob = json_object_get(j, "robustness");
    ck_assert_ptr_nonnull(rob);
    ck_assert_ptr_null(json_object_get(rob, "effective"));
    ck_assert_ptr_null(json_object_get(rob, "baseline"));
    json_decref(j);
    static const char *const self[] = {"eval.robustness.baseline=plain"};
    ck_assert_msg(run_fixed("again", 1, self, 0, &err) == MF_EXIT_OK, "%s", err.msg);
    j = load_result("again");
    json_t *again = json_object_get(json_object_get(j, "robustness"), "effective");
    ck_assert_double_eq_tol(num(again, "x"), 0, 1e-9);
    json_decref(j);
    char csv[1200], line[256];
    snprintf(csv, sizeof csv, "%s/robustness.csv", tmp_path("run"));
    FILE *f = fopen(csv, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "transform,modality,level,accuracy,macro_f1\n");
    int rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    ck_assert_int_eq(rows, 1 + 2 + 2 * 10); /* clean, drops, noise on each modality */
    remove_tmp();
}
END_TEST

/* Regression: per-target mse and mae whose means are the run's mse and mae. */
START_TEST(per_target_regression_errors)
{
    make_tmp("metrics-reg");
    static const char *const o[] = {"train.epochs=1", "threads=1"};
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = 2, .overrides = o,
                           .log = stdout, .quiet = 1, .run_dir = tmp_path("run")};
    char src[1200];
    snprintf(src, sizeof src, "%s/experiments/satellite-nir-regression.yaml",
             getenv("MMFUSE_SOURCE_ROOT"));
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_experiment_run(src, &opts, NULL, &err) == MF_EXIT_OK, "%s", err.msg);
    json_t *j = load_result("run");
    json_t *d = json_object_get(json_object_get(j, "details"), "test");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(json_array_size(json_object_get(d, "targets")), 2);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "targets"), 1)), "1");
    for (int s = 0; s < 2; s++) {
        const char *key = s ? "mae" : "mse";
        json_t *a = json_object_get(d, key);
        const double mean = 0.5 * (json_number_value(json_array_get(a, 0)) +
                                   json_number_value(json_array_get(a, 1)));
        ck_assert_double_eq_tol(mean, num(json_object_get(j, "test"), key), 1e-9);
        ck_assert(json_number_value(json_array_get(a, 0)) !=
                  json_number_value(json_array_get(a, 1)));
    }
    json_decref(j);
    static const char *const top[] = {"eval.top_k=[2]"};
    opts = (mf_run_options){.struct_size = sizeof opts, .n_overrides = 1, .overrides = top,
                            .log = stdout, .quiet = 1, .no_save = 1, .validate_only = 1};
    mf_error_clear(&err);
    ck_assert_int_eq(mf_experiment_run(src, &opts, NULL, &err), MF_EXIT_BAD_INPUT);
    ck_assert_str_eq(err.msg, "-o eval.top_k=[2]:1:12: eval.top_k: top-k accuracy needs class "
                              "labels and class scores (a head, or late fusion of logits)");
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- refusals */
static void refused(int n, const char *const *o, const char *expected)
{
    mf_error err;
    ck_assert_int_eq(run_fixed(NULL, n, o, 1, &err), MF_EXIT_BAD_INPUT);
    ck_assert_str_eq(err.msg, expected);
}

START_TEST(bad_eval_keys_are_located)
{
    write_experiment();
    char expected[2048];
    static const char *const k3[] = {"eval.top_k=[2, 3]"};
    refused(1, k3, "-o eval.top_k=[2, 3]:1:16: eval.top_k[1]: top-3 accuracy needs more than 3 "
                   "classes, and the data has 3");
    static const char *const twice[] = {"eval.top_k=[2, 2]"};
    refused(1, twice, "-o eval.top_k=[2, 2]:1:16: eval.top_k[1]: 2 is listed twice");
    static const char *const zero[] = {"eval.top_k=[0]"};
    refused(1, zero, "-o eval.top_k=[0]:1:13: eval.top_k[0]: expected an integer >= 1, got 0");
    static const char *const down[] = {"eval.robustness.noise=[0, 0.5, 0.2]"};
    refused(1, down, "-o eval.robustness.noise=[0, 0.5, 0.2]:1:32: eval.robustness.noise[2]: "
                     "noise levels must increase, and 0.2 follows 0.5");
    static const char *const who[] = {"eval.robustness.drop=[x, z]"};
    refused(1, who, "-o eval.robustness.drop=[x, z]:1:26: eval.robustness.drop[1]: 'z' is not a "
                    "modality in use (did you mean 'x'?)");
    static const char *const missing[] = {"eval.robustness.baseline=nowhere"};
    snprintf(expected, sizeof expected, "-o eval.robustness.baseline=nowhere:1:26: "
             "eval.robustness.baseline: cannot read the baseline %s: unable to open %s: No such "
             "file or directory", tmp_path("nowhere"), tmp_path("nowhere"));
    refused(1, missing, expected);
    write_baseline("short.json", "accuracy", 5);
    static const char *const shorter[] = {"eval.robustness.baseline=short.json"};
    snprintf(expected, sizeof expected, "-o eval.robustness.baseline=short.json:1:26: "
             "eval.robustness.baseline: the baseline %s has no noise curve for 'x' on this "
             "run's 10 levels (0 … 0.9)", tmp_path("short.json"));
    refused(1, shorter, expected);
    write_baseline("loss.json", "loss", 10);
    static const char *const other[] = {"eval.robustness.baseline=loss.json"};
    snprintf(expected, sizeof expected, "-o eval.robustness.baseline=loss.json:1:26: "
             "eval.robustness.baseline: the baseline %s measured robustness by 'loss' and this "
             "run by 'accuracy' (set train.select alike)", tmp_path("loss.json"));
    refused(1, other, expected);
    static const char *const no_noise[] = {"eval.robustness={baseline: loss.json}"};
    refused(1, no_noise, "-o eval.robustness={baseline: loss.json}:1:28: "
                         "eval.robustness.baseline: a baseline compares noise curves, and this "
                         "run measures none (give eval.robustness.noise levels or "
                         "default_noise: true)");
    remove_tmp();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, per_class_by_hand);
    tcase_add_test(tc, class_rank_breaks_ties_like_argmax);
    tcase_add_test(tc, multibench_formulas_by_hand);
    tcase_add_test(tc, fixed_predictions_end_to_end);
    tcase_add_test(tc, per_target_regression_errors);
    tcase_add_test(tc, bad_eval_keys_are_located);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
