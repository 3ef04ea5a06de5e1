/* mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] [--run-dir DIR] [--no-save]
 * mmfuse validate FILE.yaml [-o KEY.PATH=VALUE]... — everything checked, nothing run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] =
    "mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] [--run-dir DIR] [--no-save]";
static const char validate_usage[] = "mmfuse validate FILE.yaml [-o KEY.PATH=VALUE]...";

/* Parse the arguments both verbs share; returns 0 or an exit status. */
static int parse(const char *verb, const char *usage, int argc, char **argv, const char **file,
                 mf_run_options *opts, const char **overrides)
{
    int validating = strcmp(verb, "validate") == 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0 || strcmp(a, "--override") == 0) {
            if (i + 1 == argc)
                return mf_cli_usage_error(verb, usage, "%s needs KEY.PATH=VALUE", a);
            overrides[opts->n_overrides++] = argv[++i];
        } else if (strncmp(a, "-o", 2) == 0 && a[2]) {
            overrides[opts->n_overrides++] = a + 2;
        } else if (!validating && (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)) {
            opts->quiet = 1;
        } else if (!validating && strcmp(a, "--no-save") == 0) {
            opts->no_save = 1;
        } else if (!validating && strcmp(a, "--run-dir") == 0) {
            if (i + 1 == argc)
                return mf_cli_usage_error(verb, usage, "--run-dir needs a folder");
            opts->run_dir = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return mf_cli_usage_error(verb, usage, "unknown option '%s'", a);
        } else if (*file) {
            return mf_cli_usage_error(verb, usage, "one experiment file at a time ('%s', then '%s')",
                                      *file, a);
        } else {
            *file = a;
        }
    }
    if (!*file)
        return mf_cli_usage_error(verb, usage, "which experiment file?");
    return 0;
}

static int run_or_validate(const char *verb, const char *usage, int argc, char **argv)
{
    const char *file = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    mf_run_options opts = {.struct_size = sizeof opts, .overrides = overrides, .log = stdout,
                           .validate_only = strcmp(verb, "validate") == 0};
    int status = parse(verb, usage, argc, argv, &file, &opts, overrides);
    if (status == 0) {
        mf_error err;
        mf_error_clear(&err);
        status = mf_experiment_run(file, &opts, NULL, &err);
        if (status != MF_EXIT_OK)
            mf_cli_report(&err);
        else if (opts.validate_only)
            printf("%s: valid\n", file);
    }
    free(overrides);
    return status;
}

int mf_cli_run(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, run_usage, NULL))
        return MF_EXIT_OK;
    return run_or_validate("run", run_usage, argc, argv);
}

int mf_cli_validate(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, validate_usage, NULL))
        return MF_EXIT_OK;
    return run_or_validate("validate", validate_usage, argc, argv);
}
