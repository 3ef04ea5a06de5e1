/* mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] [--run-dir DIR] [--no-save]
 *            [--init-from CKPT] | --resume RUN_DIR|latest
 * mmfuse validate FILE.yaml [-o KEY.PATH=VALUE]... — everything checked, nothing run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] =
    "mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] [--run-dir DIR] [--no-save] "
    "[--init-from CKPT [--force]]\n"
    "       mmfuse run [FILE.yaml] --resume RUN_DIR|latest [-q] [--force]";
static const char run_details[] =
    "Trains the experiment and saves it in a run folder (runs/<name>/<timestamp>/, or DIR):\n"
    "config.yaml, metrics.csv, events.jsonl, checkpoints/last.h5 and best.h5, result.json,\n"
    "report.html.\n"
    "  -o KEY.PATH=VALUE   override a key of the file (repeatable)\n"
    "  -q, --quiet         only the final result line\n"
    "  --run-dir DIR       save in DIR instead of runs/<name>/<timestamp>\n"
    "  --no-save           write no run folder (and no checkpoints)\n"
    "  --init-from CKPT    start from the parameters of a checkpoint (fine-tuning): those whose\n"
    "                      module path and shape match are loaded, the others are named\n"
    "  --resume RUN_DIR    continue a stopped or killed run from its last checkpoint, as its\n"
    "                      config.yaml recorded it: the result is bit-identical to an\n"
    "                      uninterrupted run, at any thread count; `latest` is the newest\n"
    "                      run of FILE's experiment\n"
    "  --force             load a checkpoint (--resume, --init-from) written with other builds\n"
    "                      or versions of the plugins the model uses: refused without it\n";
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
        } else if (!validating && (strcmp(a, "--resume") == 0 || strcmp(a, "--init-from") == 0)) {
            if (i + 1 == argc)
                return mf_cli_usage_error(verb, usage, "%s needs %s", a,
                                          a[2] == 'r' ? "a run folder or 'latest'" : "a checkpoint");
            *(a[2] == 'r' ? &opts->resume : &opts->init_from) = argv[++i];
        } else if (!validating && strcmp(a, "--force") == 0) {
            opts->force = 1;
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
    if (opts->resume && (opts->n_overrides || opts->init_from || opts->run_dir || opts->no_save))
        return mf_cli_usage_error(verb, usage, "--resume continues the run exactly as it was "
                                  "configured: it takes no %s (start a new run with --init-from "
                                  "to change settings)",
                                  opts->n_overrides ? "-o" : opts->init_from ? "--init-from"
                                  : opts->run_dir ? "--run-dir" : "--no-save");
    if (!*file && !(opts->resume && strcmp(opts->resume, "latest") != 0))
        return mf_cli_usage_error(verb, usage, "which experiment file?");
    return 0;
}

/* A file with a sweep: every point is checked too (the grid can give one a bad value). */
static int validate_sweep(const char *file, const mf_run_options *run, mf_error *err)
{
    mf_config *cfg = mf_config_load(file, NULL);
    for (int i = 0; cfg && i < run->n_overrides; i++)
        mf_config_override(cfg, run->overrides[i], NULL);
    const mf_config *grid = cfg ? mf_config_get(cfg, "sweep") : NULL;
    int has_grid = grid && mf_config_length(grid) > 0;
    mf_config_free(cfg);
    if (!has_grid)
        return MF_EXIT_OK;
    FILE *quiet = fopen("/dev/null", "w");
    mf_sweep_options so = {.struct_size = sizeof so, .n_overrides = run->n_overrides,
                           .overrides = run->overrides, .exe = "/proc/self/exe",
                           .log = quiet ? quiet : stdout, .validate_only = 1};
    int status = mf_sweep_run(file, &so, err);
    if (quiet)
        fclose(quiet);
    return status;
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
        if (status == MF_EXIT_OK && opts.validate_only)
            status = validate_sweep(file, &opts, &err);
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
    if (mf_cli_help(argc, argv, run_usage, run_details))
        return MF_EXIT_OK;
    return run_or_validate("run", run_usage, argc, argv);
}

int mf_cli_validate(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, validate_usage, NULL))
        return MF_EXIT_OK;
    return run_or_validate("validate", validate_usage, argc, argv);
}
