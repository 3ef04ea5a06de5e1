/* The command line on bad input: exit status 2 and one clear line naming the file (with
 * line:column for YAML problems), never a crash and never a run. */
#include "mf_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The commands that compute re-exec themselves with a bounded OpenMP spin (main.c): libgomp,
 * showing its settings (OMP_DISPLAY_ENV), reports GOMP_SPINCOUNT 1000 the second time. A
 * user's own setting is kept, and other verbs run once. */
START_TEST(openmp_spin_is_bounded)
{
    static outcome o;
    /* run() starts with mmfuse itself: --version, then the command under test */
    run(&o, "--version >/dev/null; (unset GOMP_SPINCOUNT OMP_WAIT_POLICY; OMP_DISPLAY_ENV=verbose "
            "\"$MMFUSE_EXE\" run 2>&1 | grep -o \"GOMP_SPINCOUNT = '[0-9]*'\" | tr '\\n' ' ')");
    ck_assert_msg(strcmp(o.out, "GOMP_SPINCOUNT = '300000' GOMP_SPINCOUNT = '1000' ") == 0, "out [%s] err [%s]", o.out, o.err);
    run(&o, "--version >/dev/null; (unset OMP_WAIT_POLICY; OMP_DISPLAY_ENV=verbose GOMP_SPINCOUNT=77 "
            "\"$MMFUSE_EXE\" run 2>&1 | grep -o \"GOMP_SPINCOUNT = '[0-9]*'\" | tr '\\n' ' ')");
    ck_assert_str_eq(o.out, "GOMP_SPINCOUNT = '77' ");
    run(&o, "--version >/dev/null; (unset GOMP_SPINCOUNT OMP_WAIT_POLICY; OMP_DISPLAY_ENV=verbose "
            "\"$MMFUSE_EXE\" reference 2>&1 | grep -o \"GOMP_SPINCOUNT = '[0-9]*'\" | tr '\\n' ' ')");
    ck_assert_str_eq(o.out, "GOMP_SPINCOUNT = '300000' ");
}
END_TEST

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

/* Exit status 2; stderr starts with `first_line`, then the usage. */
static void assert_usage_error(const char *args, const char *first_line, const char *usage)
{
    static outcome o;
    run(&o, args);
    ck_assert_msg(o.status == 2, "mmfuse %s: exit status %d", args, o.status);
    size_t n = strlen(first_line);
    ck_assert_msg(strncmp(o.err, first_line, n) == 0 && o.err[n] == '\n', "mmfuse %s: %s", args,
                  o.err);
    ck_assert_msg(strncmp(o.err + n + 1, usage, strlen(usage)) == 0, "mmfuse %s: %s", args, o.err);
}

START_TEST(bad_arguments)
{
    assert_usage_error("frobnicate", "mmfuse: unknown command 'frobnicate'", "usage: mmfuse run");
    assert_usage_error("rn x.yaml", "mmfuse: unknown command 'rn' (did you mean 'run'?)",
                       "usage: mmfuse run");
    assert_usage_error("run", "mmfuse run: which experiment file?", "usage: mmfuse run FILE.yaml");
    assert_usage_error("run a.yaml --fast", "mmfuse run: unknown option '--fast'",
                       "usage: mmfuse run FILE.yaml");
    assert_usage_error("bench mlp --steps x", "mmfuse bench: --steps takes a positive integer, not 'x'",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("new-plugin fuson x", "mmfuse new-plugin: unknown kind 'fuson' (did you "
                       "mean 'fusion'?)", "usage: mmfuse new-plugin");
    assert_usage_error("new-plugin fusion Bad-Name",
                       "mmfuse new-plugin: 'Bad-Name' is not a plugin name: use a lowercase letter, "
                       "then lowercase letters, digits or '_' (at most 48)",
                       "usage: mmfuse new-plugin");
    assert_usage_error("check-plugin", "mmfuse check-plugin: which plugin?",
                       "usage: mmfuse check-plugin");
}
END_TEST

/* brief scale */
/* mmfuse bench at other sizes: each bad value one sentence (then the usage), exit 2; a small
 * run's parameters and products equal torch_scale.py's count, and the JSON line says which. */
START_TEST(bench_sizes)
{
    assert_usage_error("bench xattn-fusion --seq 10",
                       "mmfuse bench: --seq must be a multiple of 4 from 4 to 4096: 10",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench xattn-fusion --seq 8192",
                       "mmfuse bench: --seq must be a multiple of 4 from 4 to 4096: 8192",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench mlp-concat --batch 0",
                       "mmfuse bench: --batch must be an integer from 1 to 65536: 0",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench mlp-concat --width 64k",
                       "mmfuse bench: --width must be an integer from 1 to 16384: 64k",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench cnn-late --width 64",
                       "mmfuse bench: --width is for mlp-concat, not 'cnn-late'",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench mlp-concat --seq 16",
                       "mmfuse bench: --seq is for xattn-fusion, not 'mlp-concat'",
                       "usage: mmfuse bench MODEL");
    assert_usage_error("bench mlp-concat --batch", "mmfuse bench: --batch needs a value",
                       "usage: mmfuse bench MODEL");
    static outcome o;
    run(&o, "bench --help"); /* the rules, with the layers --width sets */
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "--width N  mlp-concat only, 1 to 16384: every hidden "
                                        "layer N wide, enc1 784-N-N,\n"));
    ck_assert_ptr_nonnull(strstr(o.out, "the image 28x(7N/4) pixels cut into 7x7 patches"));
    run(&o, "bench mlp-concat --width 8 --batch 4 --steps 1 --warmup 0 --mode eval");
    ck_assert_int_eq(o.status, 0);
    /* 4·8² + 864·8 + 10 parameters; forward 2·4·(784·8 + 8·8 + 64·8 + 8·8 + 16·8 + 8·10) */
    ck_assert_str_eq(o.err, "mlp-concat: 7170 parameters (torch_scale.py: 7170); one forward's "
                            "matrix products 0.1 MFLOP in 6 calls (torch_scale.py: 0.1)\n");
    ck_assert_ptr_nonnull(strstr(o.out, "mlp-concat     eval  B=4 "));
    char json[] = "/tmp/mmfuse-cli-scale-XXXXXX", args[256], line[4096];
    close(mkstemp(json));
    snprintf(args, sizeof args, "bench xattn-fusion --seq 4 --batch 2 --steps 1 --warmup 0 "
             "--mode eval --json %s", json);
    run(&o, args);
    slurp(json, line, sizeof line);
    remove(json);
    ck_assert_int_eq(o.status, 0);
    /* the position tables 2·128·(4 − 16) smaller than the reference's 539146 */
    /* the call count is left out: how attention issues its products may change */
    const char *head = "xattn-fusion: 536074 parameters (torch_scale.py: 536074); one forward's "
                       "matrix products 6.5 MFLOP in ", *tail = " calls (torch_scale.py: 6.5)\n";
    ck_assert_msg(strncmp(o.err, head, strlen(head)) == 0 && strlen(o.err) > strlen(tail) &&
                      strcmp(o.err + strlen(o.err) - strlen(tail), tail) == 0, "%s", o.err);
    ck_assert_ptr_nonnull(strstr(line, "\"batch\":2,\"width\":null,\"seq\":4,\"layers\":"
                                        "\"image 1x28x7, 4 patches 7x7, 4 tokens, positions "
                                        "4x128\""));
    ck_assert_ptr_nonnull(strstr(line, "\"flops_per_step\":6467584,"));
}
END_TEST

/* A fixture refused by check-plugin: exit 2, one sentence naming the file and the reason. */
static void assert_refused(const char *fixture, const char *reason)
{
    static outcome o;
    char args[4096], expected[8192];
    snprintf(args, sizeof args, "check-plugin %s/%s.so", getenv("MMFUSE_FIXTURE_PLUGINS"), fixture);
    run(&o, args);
    snprintf(expected, sizeof expected, "%s/%s.so: %s\n", getenv("MMFUSE_FIXTURE_PLUGINS"),
             fixture, reason);
    ck_assert_msg(o.status == 2, "%s: exit %d", args, o.status);
    ck_assert_str_eq(o.err, expected);
}

START_TEST(check_plugin_refusals)
{
    assert_refused("bad_magic", "plugin #1 has magic number 0xdeadbeef instead of 0x4d465031: "
                                "not an mmfuse plugin descriptor");
    assert_refused("other_major", "plugin #1 was built for mmfuse ABI 2.0, but this host has ABI "
                                  "1.1; rebuild it against this version's headers");
    assert_refused("newer_minor", "plugin #1 needs mmfuse ABI 1.2, newer than this host's 1.1; "
                                  "upgrade mmfuse");
    assert_refused("missing_forward", "plugin 'missing_forward' (fusion) lacks the required "
                                      "vtable member 'forward'");
    assert_refused("no_entry", "not an mmfuse plugin: it does not export mf_plugin_list()");
    assert_refused("unresolved", "cannot be loaded: undefined symbol: mf_data_that_does_not_exist");
}
END_TEST

START_TEST(refused_plugins_leave_the_rest_usable)
{
    /* every fixture on the search path: each refusal reported, the built-ins still listed */
    static outcome o;
    char args[4096];
    snprintf(args, sizeof args, "plugins --kind fusion");
    setenv("MMFUSE_PLUGIN_PATH", getenv("MMFUSE_FIXTURE_PLUGINS"), 1);
    run(&o, args);
    unsetenv("MMFUSE_PLUGIN_PATH");
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "fusion   first_only"));
    ck_assert_ptr_nonnull(strstr(o.out, "fusion   concat"));
    const char *reasons[] = {"magic number 0xdeadbeef", "built for mmfuse ABI 2.0",
                             "needs mmfuse ABI 1.2", "lacks the required vtable member",
                             "does not export mf_plugin_list()", "undefined symbol",
                             "plugin 'concat' is already provided by"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        ck_assert_msg(strstr(o.err, reasons[i]) != NULL, "no refusal with '%s' in: %s",
                      reasons[i], o.err);
}
END_TEST

START_TEST(describe_and_json)
{
    static outcome o;
    run(&o, "plugins --describe synthetic");
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "synthetic (dataset plugin, version 1.0.0, MIT)"));
    ck_assert_ptr_nonnull(strstr(o.out, "redundancy     a number"));
    run(&o, "plugins --json --kind loss");
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "\"name\": \"cross_entropy\""));
    run(&o, "plugins --describe concta");
    ck_assert_int_eq(o.status, 2);
    ck_assert_str_eq(o.err, "mmfuse plugins: no plugin named 'concta' (did you mean 'concat'?)\n");
}
END_TEST

/* Bad data: exit 2 and one sentence naming the file (and the dataset), nothing run. */
START_TEST(bad_data_files)
{
    char h5[] = "/tmp/mmfuse-trunc-XXXXXX";
    int fd = mkstemp(h5);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "head -c 20000 '%s/experiments/data/satellite.h5' > '%s'",
             getenv("MMFUSE_SOURCE_ROOT"), h5);
    ck_assert_int_eq(system(cmd), 0);
    char args[4096], expected[4096];
    snprintf(args, sizeof args, "run experiments/satellite.yaml --no-save -o data.path=%s", h5);
    snprintf(expected, sizeof expected, "%s: HDF5 cannot open it: the file is truncated or corrupt\n",
             h5);
    assert_bad_input(args, expected);
    remove(h5);
    assert_bad_input("run experiments/fashion-mlp.yaml --no-save -o data.dir=/nonexistent",
                     "/nonexistent/train-images-idx3-ubyte.gz: cannot be opened: No such file or "
                     "directory\n");
}
END_TEST

START_TEST(check_plugin_bundle)
{
    /* a file carrying two plugins: each is checked on its own (these fixtures declare no
     * version, licence or summary, which the descriptor check reports) */
    static outcome o;
    char args[4096];
    snprintf(args, sizeof args, "check-plugin %s/duplicate_concat.so",
             getenv("MMFUSE_FIXTURE_PLUGINS"));
    run(&o, args);
    ck_assert_int_eq(o.status, 1);
    ck_assert_ptr_nonnull(strstr(o.out, "checking fusion 'concat' from "));
    ck_assert_ptr_nonnull(strstr(o.out, "checking fusion 'first_only' from "));
    ck_assert_ptr_nonnull(strstr(o.out, "FAIL descriptor   'concat' ("));
    ck_assert_ptr_nonnull(strstr(o.out, "PASS gradients"));
    ck_assert_ptr_nonnull(strstr(o.out, "first_only: 61 passed, 1 failed\n"));
}
END_TEST

START_TEST(check_plugin_builtins)
{
    /* every built-in plugin passes its conformance checks */
    static const char *const names[] = {"synthetic", "mlp", "identity", "cnn", "concat",
                                        "cross_entropy", "idx", "shapes",
                                        "hdf5 -o path=experiments/data/satellite.h5"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        static outcome o;
        char args[128];
        snprintf(args, sizeof args, "check-plugin %s", names[i]);
        run(&o, args);
        ck_assert_msg(o.status == 0 && !strstr(o.out, "FAIL"), "%s:\n%s%s", args, o.out, o.err);
        ck_assert_msg(strstr(o.out, " failed\n") && strstr(o.out, ", 0 failed\n"), "%s", o.out);
    }
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
    tcase_add_test(tc, openmp_spin_is_bounded);
    tcase_add_test(tc, missing_experiment_file);
    tcase_add_test(tc, invalid_yaml);
    tcase_add_test(tc, unknown_key);
    tcase_add_test(tc, unknown_plugin);
    tcase_add_test(tc, every_error_at_once);
    tcase_add_test(tc, encoder_for_missing_modality);
    tcase_add_test(tc, plugin_rejects_its_parameters);
    tcase_add_test(tc, bad_override);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, bench_sizes); /* brief scale */
    tcase_add_test(tc, plugins_lists_builtins);
    tcase_add_test(tc, check_plugin_refusals);
    tcase_add_test(tc, refused_plugins_leave_the_rest_usable);
    tcase_add_test(tc, describe_and_json);
    tcase_add_test(tc, check_plugin_builtins);
    tcase_add_test(tc, check_plugin_bundle);
    tcase_add_test(tc, bad_data_files);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
