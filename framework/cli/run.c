/* mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] = "mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q]";

int mf_cli_run(int argc, char **argv)
{
    const char *file = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    mf_run_options opts = {sizeof opts, 0, overrides, stdout, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0 || strcmp(a, "--override") == 0) {
            if (i + 1 == argc) {
                free(overrides);
                return mf_cli_usage_error("run", run_usage, "%s needs KEY.PATH=VALUE", a);
            }
            overrides[opts.n_overrides++] = argv[++i];
        } else if (strncmp(a, "-o", 2) == 0 && a[2]) {
            overrides[opts.n_overrides++] = a + 2;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            opts.quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            free(overrides);
            return mf_cli_usage_error("run", run_usage, "unknown option '%s'", a);
        } else if (file) {
            free(overrides);
            return mf_cli_usage_error("run", run_usage, "one experiment file at a time ('%s', then '%s')",
                                      file, a);
        } else {
            file = a;
        }
    }
    if (!file) {
        free(overrides);
        return mf_cli_usage_error("run", run_usage, "which experiment file?");
    }
    mf_error err;
    mf_error_clear(&err);
    int status = mf_experiment_run(file, &opts, NULL, &err);
    if (status != MF_EXIT_OK)
        mf_cli_report(&err);
    free(overrides);
    return status;
}
