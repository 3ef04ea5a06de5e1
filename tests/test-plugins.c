/* The plugin loader: built-in plugins load through it; each bad fixture is refused with its
 * own sentence naming the file, and never stops the others from loading. */
#include "mf_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

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
    assert_refused("other_major", ": plugin #1 was built for mmfuse ABI 2.0, but this host "
                                  "has ABI 1.0; rebuild it against this version's headers");
}
END_TEST

START_TEST(refuses_newer_minor)
{
    assert_refused("newer_minor",
                   ": plugin #1 needs mmfuse ABI 1.1, newer than this host's 1.0; upgrade mmfuse");
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
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
