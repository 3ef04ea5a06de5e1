/* End to end: experiment files train real models through the plugins, and the results
 * meet thresholds measured on real runs (docs/results.md). */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmfuse/host.h>

static char path_buf[4096];

static const char *source_path(const char *rel)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", getenv("MMFUSE_SOURCE_ROOT"), rel);
    return path_buf;
}

/* Run an experiment with overrides, quietly; fail the test on anything but success. */
static mf_run_result run(const char *file, int n, const char *const *overrides)
{
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = n, .overrides = overrides,
                           .log = stdout, .quiet = 1, .no_save = 1};
    mf_run_result res;
    mf_error err;
    mf_error_clear(&err);
    int status = mf_experiment_run(source_path(file), &opts, &res, &err);
    ck_assert_msg(status == MF_EXIT_OK, "exit %d: %s", status, err.msg);
    return res;
}

START_TEST(quickstart_reaches_threshold)
{
    /* The quick start as shipped, fewer epochs: 0.90 is the bar. */
    static const char *const o[] = {"train.epochs=8"};
    mf_run_result r = run("experiments/quickstart.yaml", 1, o);
    printf("quickstart (8 epochs): test accuracy %.4f, best val %.4f\n", r.test_accuracy,
           r.best_val_accuracy);
    ck_assert_int_eq(r.epochs_run, 8);
    ck_assert_double_ge(r.test_accuracy, 0.90);
}
END_TEST

START_TEST(same_seed_same_numbers)
{
    static const char *const o[] = {"train.epochs=2", "data.samples=2000"};
    mf_run_result a = run("experiments/quickstart.yaml", 2, o);
    mf_run_result b = run("experiments/quickstart.yaml", 2, o);
    ck_assert(a.final_train_loss == b.final_train_loss); /* bit-identical */
    ck_assert(a.test_accuracy == b.test_accuracy);
    static const char *const o2[] = {"train.epochs=2", "data.samples=2000", "seed=2"};
    mf_run_result c = run("experiments/quickstart.yaml", 3, o2);
    ck_assert(a.final_train_loss != c.final_train_loss);
}
END_TEST

START_TEST(synergy_needs_both_modalities)
{
    /* All label information synergistic: one modality alone is at chance (1/K), both
     * together recover the label. */
    static const char *const both[] = {
        "data.redundancy=0", "data.unique=[0,0]", "data.synergy=1", "data.noise=0.5",
        "train.epochs=15"};
    static const char *const only_a[] = {
        "data.redundancy=0", "data.unique=[0,0]", "data.synergy=1", "data.noise=0.5",
        "train.epochs=15", "data.modalities=[a]", "model.encoders={a: {type: mlp, hidden: [64], out: 32}}"};
    mf_run_result rb = run("experiments/quickstart.yaml", 5, both);
    mf_run_result ra = run("experiments/quickstart.yaml", 7, only_a);
    printf("synergy only: both %.4f, a alone %.4f\n", rb.test_accuracy, ra.test_accuracy);
    ck_assert_double_ge(rb.test_accuracy, 0.90);
    ck_assert_double_le(ra.test_accuracy, 0.35);
}
END_TEST

START_TEST(unique_information_is_per_modality)
{
    /* Label only ever in modality a (u_a = 1): a alone is enough, b alone is at chance. */
    static const char *const only_b[] = {
        "data.redundancy=0", "data.unique=[1,0]", "data.synergy=0", "train.epochs=5",
        "data.modalities=[b]", "model.encoders={b: {type: mlp, hidden: [64], out: 32}}"};
    static const char *const only_a[] = {
        "data.redundancy=0", "data.unique=[1,0]", "data.synergy=0", "train.epochs=5",
        "data.modalities=[a]", "model.encoders={a: {type: mlp, hidden: [64], out: 32}}"};
    mf_run_result ra = run("experiments/quickstart.yaml", 6, only_a);
    mf_run_result rb = run("experiments/quickstart.yaml", 6, only_b);
    printf("unique to a: a alone %.4f, b alone %.4f\n", ra.test_accuracy, rb.test_accuracy);
    ck_assert_double_ge(ra.test_accuracy, 0.95);
    ck_assert_double_le(rb.test_accuracy, 0.35);
}
END_TEST

/* A run folder holds the resolved experiment, which reproduces the run to the bit, its
 * metrics per epoch and its result. */
START_TEST(run_folder_reproduces)
{
    char dir[] = "/tmp/mmfuse-run-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char run_dir[4200], config[4300], line[256];
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    static const char *const o[] = {"train.epochs=3", "data.samples=2000", "seed=5"};
    mf_run_options opts = {.struct_size = sizeof opts, .n_overrides = 3, .overrides = o,
                           .log = stdout, .quiet = 1, .run_dir = run_dir};
    mf_run_result first, again;
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_experiment_run(source_path("experiments/quickstart.yaml"), &opts, &first,
                                       &err), MF_EXIT_OK);
    ck_assert_str_eq(first.run_dir, run_dir);
    /* metrics.csv: a header and one row per epoch */
    snprintf(config, sizeof config, "%s/metrics.csv", run_dir);
    FILE *f = fopen(config, "r");
    ck_assert_ptr_nonnull(f);
    int rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    ck_assert_int_eq(rows, 4);
    snprintf(config, sizeof config, "%s/result.json", run_dir);
    ck_assert_int_eq(access(config, R_OK), 0);
    /* the saved config alone (no overrides) gives the same numbers */
    snprintf(config, sizeof config, "%s/config.yaml", run_dir);
    mf_run_options plain = {.struct_size = sizeof plain, .log = stdout, .quiet = 1, .no_save = 1};
    ck_assert_int_eq(mf_experiment_run(config, &plain, &again, &err), MF_EXIT_OK);
    ck_assert(first.test_accuracy == again.test_accuracy);
    ck_assert(first.final_train_loss == again.final_train_loss);
    ck_assert_int_eq(again.epochs_run, 3);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("experiment");
    TCase *tc = tcase_create("runs");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, quickstart_reaches_threshold);
    tcase_add_test(tc, same_seed_same_numbers);
    tcase_add_test(tc, synergy_needs_both_modalities);
    tcase_add_test(tc, unique_information_is_per_modality);
    tcase_add_test(tc, run_folder_reproduces);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
