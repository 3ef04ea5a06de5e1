/* mmfuse check-plugin NAME|FILE.so — the conformance checks a lab runs before sharing. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char check_usage[] = "mmfuse check-plugin NAME|FILE.so [-o KEY=VALUE]...";

static const char check_details[] =
    "Checks a plugin before it is shared: its descriptor and declared parameters; then\n"
    "encoders and fusion operators on every input profile of their kind (vectors, images,\n"
    "token ids with a padding mask, masked sequences; 2 and 3 modalities of distinct widths,\n"
    "then of one width), losses on logits with class, value and multilabel targets, on two\n"
    "embeddings without fusion or head, and on fused + logits; datasets opened and read.\n"
    "Every profile the plugin builds on is checked for its output shape, finite values,\n"
    "gradients against finite differences, determinism and leaks; one it refuses is a SKIP\n"
    "line with its reason, and a plugin that accepts none fails.\n"
    "The plugin's code runs in child processes, one per group of checks: a crash, abort,\n"
    "exit() or hang (MMFUSE_CHECK_TIMEOUT seconds, 600 by default) is a FAIL line such as\n"
    "\"FAIL build  vector (5): crashed with SIGSEGV\", and the report goes on.\n"
    "  -o KEY=VALUE  set a parameter (repeatable); a required parameter no -o sets gets a\n"
    "                sample value from its declaration, named in the output\n"
    "Exit status: 0 every check passed, 1 a check failed, 2 the plugin did not load.\n";

int mf_cli_check_plugin(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, check_usage, check_details))
        return MF_EXIT_OK;
    /* a report read through a pipe keeps every line written before anything goes wrong */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *what = NULL, *overrides[64];
    int n_overrides = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && n_overrides < 64)
            overrides[n_overrides++] = argv[++i];
        else if (argv[i][0] == '-')
            return mf_cli_usage_error("check-plugin", check_usage, "unknown option '%s'",
                                      argv[i]);
        else if (what)
            return mf_cli_usage_error("check-plugin", check_usage, "one plugin at a time");
        else
            what = argv[i];
    }
    if (!what)
        return mf_cli_usage_error("check-plugin", check_usage, "which plugin?");
    size_t len = strlen(what);
    int is_file = strchr(what, '/') || (len > 3 && strcmp(what + len - 3, ".so") == 0);
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    int status = MF_EXIT_OK, failures = 0;
    if (is_file) {
        /* the file alone: every plugin it carries is checked on its own */
        if (mf_registry_add_file(reg, what, &err) && mf_registry_count(reg) == 0) {
            mf_cli_report(&err);
            mf_registry_free(reg);
            return MF_EXIT_BAD_INPUT;
        }
        if (err.count) { /* a bundle with some plugins refused: say so, check the rest */
            mf_cli_report(&err);
            status = MF_EXIT_BAD_INPUT;
        }
        for (int i = 0; i < mf_registry_count(reg); i++) {
            const char *file;
            const mf_plugin *p = mf_registry_at(reg, i, &file);
            if (!p) { /* its scan passed but loading it here failed: the refusal says why */
                int last = mf_registry_refusal_count(reg) - 1;
                fprintf(stderr, "%s\n", last >= 0 ? mf_registry_refusal(reg, last) : file);
                status = MF_EXIT_BAD_INPUT;
                continue;
            }
            failures += mf_check_plugin(p, file, n_overrides, overrides, stdout) > 0;
        }
    } else {
        mf_registry_add_search_path(reg, NULL, &err);
        const char *file;
        const mf_plugin *p = mf_registry_find(reg, 0, what, &file);
        if (!p) {
            const char *hint = mf_suggestion(what, mf_registry_names(reg, 0));
            fprintf(stderr, "mmfuse check-plugin: no plugin named '%s' on the search path%s\n",
                    what, hint);
            for (int i = 0; i < mf_registry_refusal_count(reg); i++)
                fprintf(stderr, "refused: %s\n", mf_registry_refusal(reg, i));
            mf_registry_free(reg);
            return MF_EXIT_BAD_INPUT;
        }
        failures += mf_check_plugin(p, file, n_overrides, overrides, stdout) > 0;
    }
    mf_registry_free(reg);
    return failures ? MF_EXIT_FAILED : status;
}
