/* The plugin loader: built-in plugins load through it; each bad fixture is refused with its
 * own sentence naming the file, and never stops the others from loading. An ABI 1.0 bundle
 * loads, passes check-plugin and runs an experiment on this 1.1 host; check-plugin's own
 * verdicts on plugins whose faults are known. */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

#include "tmpdir.h"

static char fixture[4096];

static const char *fixture_path(const char *name)
{
    snprintf(fixture, sizeof fixture, "%s/%s.so", getenv("MMFUSE_FIXTURE_PLUGINS"), name);
    return fixture;
}

/* Load one fixture into a registry that already holds the built-in plugins. */
static int load_fixture(mf_registry *reg, const char *name, mf_error *err)
{
    mf_error_clear(err);
    return mf_registry_add_file(reg, fixture_path(name), err);
}

static mf_registry *builtin_registry(void)
{
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_dir(reg, mf_default_plugin_dir(), &err), 0);
    ck_assert_int_eq(mf_registry_refusal_count(reg), 0);
    return reg;
}

START_TEST(builtins_load)
{
    mf_registry *reg = builtin_registry();
    static const struct { const char *name; mf_kind kind; } expected[] = {
        {"synthetic", MF_KIND_DATASET}, {"mlp", MF_KIND_ENCODER}, {"identity", MF_KIND_ENCODER},
        {"concat", MF_KIND_FUSION}, {"cross_entropy", MF_KIND_LOSS},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const char *file = NULL;
        const mf_plugin *p = mf_registry_find(reg, expected[i].kind, expected[i].name, &file);
        ck_assert_msg(p != NULL, "built-in plugin '%s' not found", expected[i].name);
        ck_assert_ptr_nonnull(strstr(file, "/plugins/mmfuse-"));
        ck_assert_int_eq(p->abi_major, MF_ABI_MAJOR);
        ck_assert_ptr_nonnull(p->summary);
    }
    /* Kinds are kept apart: 'mlp' is no fusion operator. */
    ck_assert_ptr_null(mf_registry_find(reg, MF_KIND_FUSION, "mlp", NULL));
    mf_registry_free(reg);
}
END_TEST

/* The fixture is refused with "<its path><reason>". */
static void assert_refused(const char *name, const char *reason)
{
    mf_registry *reg = builtin_registry();
    int before = mf_registry_count(reg);
    mf_error err;
    ck_assert_int_eq(load_fixture(reg, name, &err), -1);
    char expected[8192];
    snprintf(expected, sizeof expected, "%s%s", fixture_path(name), reason);
    ck_assert_str_eq(err.msg, expected);
    ck_assert_int_eq(err.count, 1);
    ck_assert_int_eq(mf_registry_refusal_count(reg), 1);
    ck_assert_str_eq(mf_registry_refusal(reg, 0), expected);
    /* The others are still there. */
    ck_assert_int_eq(mf_registry_count(reg), before);
    ck_assert_ptr_nonnull(mf_registry_find(reg, MF_KIND_FUSION, "concat", NULL));
    mf_registry_free(reg);
}

START_TEST(refuses_wrong_magic)
{
    assert_refused("bad_magic", ": plugin #1 has magic number 0xdeadbeef instead of "
                                "0x4d465031: not an mmfuse plugin descriptor");
}
END_TEST

START_TEST(refuses_other_major)
{
    char reason[256];
    snprintf(reason, sizeof reason, ": plugin #1 was built for mmfuse ABI %d.0, but this host has "
             "ABI %d.%d; rebuild it against this version's headers", MF_ABI_MAJOR + 1,
             MF_ABI_MAJOR, MF_ABI_MINOR);
    assert_refused("other_major", reason);
}
END_TEST

START_TEST(refuses_newer_minor)
{
    char reason[256];
    snprintf(reason, sizeof reason, ": plugin #1 needs mmfuse ABI %d.%d, newer than this host's "
             "%d.%d; upgrade mmfuse", MF_ABI_MAJOR, MF_ABI_MINOR + 1, MF_ABI_MAJOR, MF_ABI_MINOR);
    assert_refused("newer_minor", reason);
}
END_TEST

START_TEST(refuses_missing_member)
{
    assert_refused("missing_forward",
                   ": plugin 'missing_forward' (fusion) lacks the required vtable member "
                   "'forward'");
}
END_TEST

START_TEST(refuses_not_a_plugin)
{
    assert_refused("no_entry", ": not an mmfuse plugin: it does not export mf_plugin_list()");
}
END_TEST

START_TEST(refuses_unloadable)
{
    mf_registry *reg = builtin_registry();
    mf_error err;
    ck_assert_int_eq(load_fixture(reg, "unresolved", &err), -1);
    /* The dynamic linker's reason follows, naming the missing symbol. */
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s: cannot be loaded: ", fixture_path("unresolved"));
    ck_assert_int_eq(strncmp(err.msg, prefix, strlen(prefix)), 0);
    ck_assert_str_eq(err.msg + strlen(prefix), "undefined symbol: mf_data_that_does_not_exist");
    ck_assert_ptr_nonnull(mf_registry_find(reg, MF_KIND_FUSION, "concat", NULL));
    mf_registry_free(reg);
}
END_TEST

START_TEST(refuses_duplicate_name_keeps_rest_of_bundle)
{
    mf_registry *reg = builtin_registry();
    const char *first = NULL;
    mf_registry_find(reg, MF_KIND_FUSION, "concat", &first);
    char first_file[4096];
    snprintf(first_file, sizeof first_file, "%s", first);
    mf_error err;
    ck_assert_int_eq(load_fixture(reg, "duplicate_concat", &err), -1);
    char expected[9000];
    snprintf(expected, sizeof expected,
             "%s: plugin 'concat' is already provided by %s, which comes first on the search "
             "path; this one is ignored",
             fixture_path("duplicate_concat"), first_file);
    ck_assert_str_eq(err.msg, expected);
    /* The first file keeps the name; the bundle's other plugin loads. */
    const char *file = NULL;
    mf_registry_find(reg, MF_KIND_FUSION, "concat", &file);
    ck_assert_str_eq(file, first_file);
    ck_assert_ptr_nonnull(mf_registry_find(reg, MF_KIND_FUSION, "first_only", &file));
    ck_assert_str_eq(file, fixture_path("duplicate_concat"));
    mf_registry_free(reg);
}
END_TEST

START_TEST(missing_file_and_folder)
{
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_dir(reg, "/nonexistent/plugins", &err), -1);
    ck_assert_str_eq(err.msg,
                     "plugin folder '/nonexistent/plugins' cannot be read: No such file or directory");
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_file(reg, "/nonexistent/x.so", &err), -1);
    ck_assert_int_eq(strncmp(err.msg, "/nonexistent/x.so: cannot be loaded: ", 37), 0);
    mf_registry_free(reg);
}
END_TEST

START_TEST(search_path_env_comes_first)
{
    /* A folder on MMFUSE_PLUGIN_PATH is searched before the built-ins: its 'concat' wins and
     * the built-in one is the duplicate. */
    setenv("MMFUSE_PLUGIN_PATH", getenv("MMFUSE_FIXTURE_PLUGINS"), 1);
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_search_path(reg, NULL, &err), 0);
    const char *file = NULL;
    ck_assert_ptr_nonnull(mf_registry_find(reg, MF_KIND_FUSION, "concat", &file));
    ck_assert_str_eq(file, fixture_path("duplicate_concat"));
    ck_assert_ptr_nonnull(mf_registry_find(reg, MF_KIND_ENCODER, "mlp", NULL));
    /* Six fixture files refused, plus the built-in concat as a duplicate. */
    ck_assert_int_eq(mf_registry_refusal_count(reg), 7);
    mf_registry_free(reg);
    unsetenv("MMFUSE_PLUGIN_PATH");
}
END_TEST

/* Whether a file is mapped into this process. */
static int mapped(const char *file_name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[8192];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, file_name) != NULL;
    if (f)
        fclose(f);
    return found;
}

START_TEST(only_named_files_are_loaded)
{
    /* scanned apart (issue 13 item 5): listing and describing load nothing; asking for a
     * plugin loads its file alone */
    mf_registry *reg = builtin_registry();
    ck_assert(!mapped("/mmfuse-concat.so"));
    ck_assert(!mapped("/mmfuse-mlp.so"));
    int found = 0;
    for (int i = 0; i < mf_registry_count(reg); i++) {
        const char *file;
        const mf_plugin *p = mf_registry_scanned(reg, i, &file);
        if (strcmp(p->name, "mlp") != 0)
            continue;
        found = 1;
        ck_assert_ptr_null(p->ops);
        ck_assert_int_eq(p->kind, MF_KIND_ENCODER);
        ck_assert_str_eq(p->params[0].name, "hidden");
        ck_assert_ptr_nonnull(strstr(file, "/mmfuse-mlp.so"));
    }
    ck_assert(found);
    ck_assert(!mapped("/mmfuse-mlp.so"));
    const mf_plugin *p = mf_registry_find(reg, MF_KIND_FUSION, "concat", NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(p->ops);
    ck_assert(mapped("/mmfuse-concat.so"));
    ck_assert(!mapped("/mmfuse-mlp.so"));
    mf_registry_free(reg);
}
END_TEST

/* ---------------------------------------------------------------- loadable fixtures */
static const char *loadable_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/loadable", getenv("MMFUSE_FIXTURE_PLUGINS"));
    return dir;
}

static mf_registry *loadable_registry(const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.so", loadable_dir(), file);
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_registry_add_file(reg, path, &err) == 0, "%s", err.msg);
    return reg;
}

/* mf_check_plugin's output and failure count for a plugin of a loadable fixture. */
static int check_output(const char *file, const char *name, int n_over,
                        const char *const *over, char **text)
{
    mf_registry *reg = loadable_registry(file);
    const char *where;
    const mf_plugin *p = mf_registry_find(reg, 0, name, &where);
    ck_assert_ptr_nonnull(p);
    size_t len;
    FILE *out = open_memstream(text, &len);
    int failed = mf_check_plugin(p, where, n_over, over, out);
    fclose(out);
    mf_registry_free(reg);
    return failed;
}

START_TEST(abi10_bundle_loads_checks_and_runs)
{
    /* the 1.0 descriptors are read as 1.0: abi_minor 0, 1.0 vtable sizes */
    mf_registry *reg = loadable_registry("abi10");
    const mf_plugin *loss = mf_registry_find(reg, MF_KIND_LOSS, "abi10_loss", NULL);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(loss->abi_minor, 0);
    ck_assert_uint_lt(*(const uint32_t *)loss->ops, sizeof(mf_loss_ops));
    mf_registry_free(reg);

    char *text = NULL;
    ck_assert_int_eq(check_output("abi10", "abi10_loss", 0, NULL, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "SKIP inputs       a loss without build_model (as in ABI "
                                       "1.0) is told nothing of the model, so only 'logits (4) "
                                       "+ class targets' is tried\n"));
    ck_assert_ptr_nonnull(strstr(text, "abi10_loss: 8 passed, 1 skipped, 0 failed\n"));
    free(text);
    ck_assert_int_eq(check_output("abi10", "abi10_encoder", 0, NULL, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "abi10_encoder: 26 passed, 0 failed\n"));
    free(text);

    /* and trains: a 1.0 encoder for one modality, a 1.0 loss, 1.1 plugins beside them */
    make_tmp("abi10");
    FILE *f = fopen(tmp_path("abi10.yaml"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "name: abi10\nseed: 1\nplugins: {path: ['%s']}\n"
               "data: {reader: synthetic, samples: 1200, batch_size: 32}\n"
               "model:\n"
               "  encoders:\n"
               "    a: {type: abi10_encoder, out: 16}\n"
               "    b: {type: mlp, hidden: [32], out: 16}\n"
               "  fusion: {type: concat}\n"
               "  head: {type: mlp, hidden: [32]}\n"
               "loss: {type: abi10_loss}\n"
               "train: {epochs: 4}\n", loadable_dir());
    fclose(f);
    mf_run_options opts = {.struct_size = sizeof opts, .log = stdout, .quiet = 1, .no_save = 1};
    mf_run_result res;
    mf_error err;
    mf_error_clear(&err);
    int status = mf_experiment_run(tmp_path("abi10.yaml"), &opts, &res, &err);
    ck_assert_msg(status == MF_EXIT_OK, "exit %d: %s", status, err.msg);
    printf("abi10 bundle: test accuracy %.3f after %d epochs\n", res.test_accuracy,
           res.epochs_run);
    ck_assert_int_eq(res.epochs_run, 4);
    ck_assert(isfinite(res.final_train_loss));
    ck_assert_double_gt(res.test_accuracy, 0.5); /* 4 classes: chance is 0.25 */
    /* a 1.0 loss reads class logits only: without a head it is refused, located */
    static const char *const no_head[] = {"model.head=none"};
    opts.n_overrides = 1;
    opts.overrides = no_head;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_experiment_run(tmp_path("abi10.yaml"), &opts, &res, &err),
                     MF_EXIT_BAD_INPUT);
    ck_assert_msg(strstr(err.msg, "abi10.yaml:11:7: loss: the loss 'abi10_loss' (ABI 1.0) "
                                          "reads a head's class logits, and this model has no "
                                          "head"), "%s", err.msg);
    remove_tmp();
}
END_TEST

START_TEST(check_plugin_catches_wrong_width)
{
    /* sized from the first modality: right at one width, wrong at (5)+(7) and (5)+(7)+(4) */
    char *text = NULL;
    ck_assert_int_eq(check_output("wrong_width", "wrong_width", 0, NULL, &text), 2);
    ck_assert_ptr_nonnull(strstr(text, "FAIL build        2 vectors (5)+(7): built, then forward: "
                                       "matmul: inner dimensions differ: (3,12) x (10,4)\n"));
    ck_assert_ptr_nonnull(strstr(text, "FAIL build        3 vectors (5)+(7)+(4): built, then "
                                       "forward: matmul: inner dimensions differ: (3,16) x (15,4)\n"));
    ck_assert_ptr_nonnull(strstr(text, "SKIP build        2 feature maps (2,4,4)+(3,4,4): refused: "
                                       "<defaults of wrong_width>:1:1: wrong_width takes vectors\n"));
    ck_assert_ptr_nonnull(strstr(text, "PASS gradients    2 vectors of one width (8)+(8): "));
    ck_assert_ptr_nonnull(strstr(text, "wrong_width: 14 passed, 6 skipped, 2 failed\n"));
    free(text);
}
END_TEST

START_TEST(check_plugin_required_and_absent_params)
{
    /* a required parameter gets a sample value from its spec (min 3; the first choice),
     * and the lines say so; -o gives one instead */
    char *text = NULL;
    ck_assert_int_eq(check_output("needs_param", "needs_width", 0, NULL, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "PASS parameters   2 declared; with defaults, sample "
                                       "width=3 mode=fast, all within their types and ranges\n"));
    ck_assert_ptr_nonnull(strstr(text, "PASS build        vector (5) with defaults, sample width=3 "
                                       "mode=fast: 18 parameters\n"));
    free(text);
    static const char *const over[] = {"width=7"};
    ck_assert_int_eq(check_output("needs_param", "needs_width", 1, over, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "PASS build        vector (5) with defaults and -o width=7, "
                                       "sample mode=fast: 42 parameters\n"));
    free(text);
    /* params = NULL: no parameters, as the loader takes it */
    ck_assert_int_eq(check_output("needs_param", "no_params", 0, NULL, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "PASS descriptor   'no_params' 1.0.0, encoder"));
    ck_assert_ptr_nonnull(strstr(text, "PASS parameters   none declared\n"));
    ck_assert_ptr_nonnull(strstr(text, "no_params: 26 passed, 0 failed\n"));
    free(text);
}
END_TEST

START_TEST(check_plugin_profiles_of_builtins)
{
    /* token ids are not differentiated; a sequence's mask travels through identity; a
     * loss refuses targets it cannot use, with its own reason */
    mf_registry *reg = builtin_registry();
    const char *file;
    char *text = NULL;
    size_t len;
    FILE *out = open_memstream(&text, &len);
    const mf_plugin *found_identity = mf_registry_find(reg, 0, "identity", &file); /* file set first */
    ck_assert_int_eq(mf_check_plugin(found_identity, file, 0, NULL,
                                     out), 0);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "PASS gradients    token ids (6) < 11, masked: nothing to "
                                       "differentiate (no parameters, and token ids take no "
                                       "gradient)\n"));
    ck_assert_ptr_nonnull(strstr(text, "PASS shape        sequence (6,5), masked: forward gives "
                                       "(3,6,5) as declared, with its (B,T) mask\n"));
    free(text);
    out = open_memstream(&text, &len);
    const mf_plugin *found_cnn = mf_registry_find(reg, 0, "cnn", &file); /* file set first */
    ck_assert_int_eq(mf_check_plugin(found_cnn, file, 0, NULL, out), 0);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "SKIP build        vector (5): refused: "));
    ck_assert_ptr_nonnull(strstr(text, "PASS gradients    image (2,8,8): "));
    free(text);
    mf_registry_free(reg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plugins");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, builtins_load);
    tcase_add_test(tc, refuses_wrong_magic);
    tcase_add_test(tc, refuses_other_major);
    tcase_add_test(tc, refuses_newer_minor);
    tcase_add_test(tc, refuses_missing_member);
    tcase_add_test(tc, refuses_not_a_plugin);
    tcase_add_test(tc, refuses_unloadable);
    tcase_add_test(tc, refuses_duplicate_name_keeps_rest_of_bundle);
    tcase_add_test(tc, missing_file_and_folder);
    tcase_add_test(tc, search_path_env_comes_first);
    tcase_add_test(tc, only_named_files_are_loaded);
    suite_add_tcase(s, tc);
    TCase *loadable = tcase_create("loadable");
    tcase_add_test(loadable, abi10_bundle_loads_checks_and_runs);
    tcase_add_test(loadable, check_plugin_catches_wrong_width);
    tcase_add_test(loadable, check_plugin_required_and_absent_params);
    tcase_add_test(loadable, check_plugin_profiles_of_builtins);
    suite_add_tcase(s, loadable);
    return mf_test_run(s);
}
