/* mmfuse sweep FILE.yaml [--jobs N] [-o KEY.PATH=VALUE]... — every point of the file's
 * `sweep:` grid as its own `mmfuse run`, then a summary ranked on validation accuracy. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char sweep_usage[] =
    "mmfuse sweep FILE.yaml [--jobs N] [--ranks-per-point K] [-o KEY.PATH=VALUE]...";

/* "--jobs 4", "-j 4", "--jobs=4": the number into *out, from 1 to 1024; i moves past it. */
static int count_option(const char *name, int argc, char **argv, int *i, int *out)
{
    const char *a = argv[*i];
    const size_t len = strlen(name);
    const char *v = strncmp(a, name, len) == 0 && a[len] == '=' ? a + len + 1
                    : *i + 1 < argc ? argv[++*i] : NULL;
    char *end = NULL;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || errno || *end || n < 1 || n > 1024)
        return mf_cli_usage_error("sweep", sweep_usage, "%s takes a number from 1 to 1024%s%s%s",
                                  name, v ? ", not '" : "", v ? v : "", v ? "'" : "");
    *out = (int)n;
    return 0;
}

int mf_cli_sweep(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, sweep_usage, NULL))
        return MF_EXIT_OK;
    const char *file = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    mf_sweep_options opts = {.struct_size = sizeof opts, .jobs = 1, .overrides = overrides,
                             .log = stdout};
    int status = 0;
    for (int i = 1; i < argc && !status; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0 || strcmp(a, "--override") == 0) {
            if (i + 1 == argc)
                status = mf_cli_usage_error("sweep", sweep_usage, "%s needs KEY.PATH=VALUE", a);
            else
                overrides[opts.n_overrides++] = argv[++i];
        } else if (strncmp(a, "-o", 2) == 0 && a[2]) {
            overrides[opts.n_overrides++] = a + 2;
        } else if (strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0 ||
                   strncmp(a, "--jobs=", 7) == 0) {
            status = count_option("--jobs", argc, argv, &i, &opts.jobs);
        } else if (strcmp(a, "--ranks-per-point") == 0 || strncmp(a, "--ranks-per-point=", 18) == 0) {
            status = count_option("--ranks-per-point", argc, argv, &i, &opts.ranks_per_point);
        } else if (a[0] == '-' && a[1]) {
            status = mf_cli_usage_error("sweep", sweep_usage, "unknown option '%s'", a);
        } else if (file) {
            status = mf_cli_usage_error("sweep", sweep_usage,
                                        "one experiment file at a time ('%s', then '%s')", file, a);
        } else {
            file = a;
        }
    }
    if (!status && !file)
        status = mf_cli_usage_error("sweep", sweep_usage, "which experiment file?");
    if (!status) {
        /* each point runs this very program (whatever PATH holds) */
        static char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            opts.exe = exe;
        } else {
            opts.exe = "mmfuse";
        }
        mf_error err;
        mf_error_clear(&err);
        status = mf_sweep_run(file, &opts, &err);
        if (status != MF_EXIT_OK) {
            fflush(stdout);
            mf_cli_report(&err);
        }
    }
    free(overrides);
    return status;
}
