/* The command line on bad input: exit status 2 and one clear line naming the file (with
 * line:column for YAML problems), never a crash and never a run. */
#include "mf_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct outcome {
    int status;       /* exit status, or 128 + signal */
    char out[65536];  /* stdout */
    char err[65536];  /* stderr */
} outcome;

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Run `mmfuse ARGS` (a shell word list) and capture everything. */
static void run(outcome *o, const char *args)
{
    char cmd[8192], out_path[] = "/tmp/mmfuse-cli-out-XXXXXX", err_path[] = "/tmp/mmfuse-cli-err-XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    ck_assert(fo >= 0 && fe >= 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s' </dev/null", getenv("MMFUSE_SOURCE_ROOT"),
             getenv("MMFUSE_EXE"), args, out_path, err_path);
    int w = system(cmd);
    o->status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
    slurp(out_path, o->out, sizeof o->out);
    slurp(err_path, o->err, sizeof o->err);
    remove(out_path);
    remove(err_path);
}

/* Exit status 2 and exactly `expected` (one or more lines) on stderr, nothing run. */
static void assert_bad_input(const char *args, const char *expected)
{
    static outcome o;
    run(&o, args);
    ck_assert_msg(o.status == 2, "mmfuse %s: exit status %d, stderr: %s", args, o.status, o.err);
    ck_assert_str_eq(o.err, expected);
    ck_assert_ptr_null(strstr(o.out, "epoch"));
}

START_TEST(missing_experiment_file)
{
    assert_bad_input("run experiments/does-not-exist.yaml",
                     "cannot open 'experiments/does-not-exist.yaml': No such file or directory\n");
}
END_TEST

START_TEST(invalid_yaml)
{
    assert_bad_input("run tests/fixtures/experiments/invalid-yaml.yaml",
                     "tests/fixtures/experiments/invalid-yaml.yaml:5:5: unclosed '[' (opened at "
                     "line 4, column 19): expected ',' or ']'\n");
}
END_TEST

START_TEST(unknown_key)
{
    assert_bad_input("run tests/fixtures/experiments/unknown-key.yaml",
                     "tests/fixtures/experiments/unknown-key.yaml:3:1: unknown key 'optm' (did you "
                     "mean 'optim'?)\n");
}
END_TEST

START_TEST(unknown_plugin)
{
    assert_bad_input("run tests/fixtures/experiments/unknown-plugin.yaml",
                     "tests/fixtures/experiments/unknown-plugin.yaml:5:18: model.fusion.type: no "
                     "fusion plugin named 'concta' (did you mean 'concat'?)\n");
}
END_TEST

START_TEST(every_error_at_once)
{
    assert_bad_input(
        "run tests/fixtures/experiments/several-errors.yaml",
        "tests/fixtures/experiments/several-errors.yaml:2:27: data: unknown key 'batch_sise' (did "
        "you mean 'batch_size'?)\n"
        "tests/fixtures/experiments/several-errors.yaml:4:37: model.encoders.a: unknown key "
        "'hiden' (did you mean 'hidden'?)\n"
        "tests/fixtures/experiments/several-errors.yaml:7:13: optim.lr: expected a number >= 0, "
        "got -1\n"
        "tests/fixtures/experiments/several-errors.yaml:8:17: train.epochs: expected an integer, "
        "got 'many'\n");
}
END_TEST

START_TEST(encoder_for_missing_modality)
{
    assert_bad_input("run tests/fixtures/experiments/wrong-modality.yaml",
                     "tests/fixtures/experiments/wrong-modality.yaml:3:41: model.encoders.c: an "
                     "encoder for 'c', which is not a modality in use (did you mean 'a'?)\n"
                     "tests/fixtures/experiments/wrong-modality.yaml:3:13: model.encoders: no "
                     "encoder for modality 'b' (use {type: identity} to pass it through)\n");
}
END_TEST

START_TEST(plugin_rejects_its_parameters)
{
    assert_bad_input("run tests/fixtures/experiments/bad-plugin-param.yaml",
                     "tests/fixtures/experiments/bad-plugin-param.yaml:1:7: data: redundancy + "
                     "unique + synergy must be at most 1, got 1.5\n");
}
END_TEST

START_TEST(bad_override)
{
    assert_bad_input("run tests/fixtures/experiments/unknown-plugin.yaml -o oops",
                     "-o 'oops': expected KEY.PATH=VALUE\n");
}
END_TEST

START_TEST(bad_arguments)
{
    assert_bad_input("frobnicate", "mmfuse: unknown command 'frobnicate'\n"
                                   "usage: mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q]\n"
                                   "       mmfuse plugins\n"
                                   "       mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]\n"
                                   "       mmfuse --version | --help\n");
    assert_bad_input("rn x.yaml", "mmfuse: unknown command 'rn' (did you mean 'run'?)\n"
                                  "usage: mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q]\n"
                                  "       mmfuse plugins\n"
                                  "       mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]\n"
                                  "       mmfuse --version | --help\n");
    assert_bad_input("run", "mmfuse run: which experiment file?\n"
                            "usage: mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q]\n");
    assert_bad_input("run a.yaml --fast", "mmfuse run: unknown option '--fast'\n"
                                          "usage: mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q]\n");
}
END_TEST

START_TEST(plugins_lists_builtins)
{
    static outcome o;
    run(&o, "plugins");
    ck_assert_int_eq(o.status, 0);
    ck_assert_str_eq(o.err, "");
    ck_assert_ptr_nonnull(strstr(o.out, "fusion   concat"));
    ck_assert_ptr_nonnull(strstr(o.out, "dataset  synthetic"));
    ck_assert_ptr_nonnull(strstr(o.out, "loss     cross_entropy"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("bad input");
    tcase_add_test(tc, missing_experiment_file);
    tcase_add_test(tc, invalid_yaml);
    tcase_add_test(tc, unknown_key);
    tcase_add_test(tc, unknown_plugin);
    tcase_add_test(tc, every_error_at_once);
    tcase_add_test(tc, encoder_for_missing_modality);
    tcase_add_test(tc, plugin_rejects_its_parameters);
    tcase_add_test(tc, bad_override);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, plugins_lists_builtins);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
