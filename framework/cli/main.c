/* mmfuse — multimodal fusion experiments from YAML files, with plugins.
 * Exit status: 0 done, 1 the run failed (diverged, I/O), 2 bad input (arguments, config,
 * data, plugins). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: mmfuse run FILE.yaml [-o KEY.PATH=VALUE]... [-q] [--run-dir DIR] [--no-save]\n"
    "       mmfuse run [FILE.yaml] --resume RUN_DIR|latest\n"
    "       mmfuse validate FILE.yaml [-o KEY.PATH=VALUE]...\n"
    "       mmfuse eval RUN_DIR [--split S] [--checkpoint best|last|FILE] [-o KEY.PATH=VALUE]... [--json FILE]\n"
    "       mmfuse predict RUN_DIR -o PREDICTIONS.csv [--split S] [--checkpoint C]\n"
    "       mmfuse embed RUN_DIR -o EMBEDDINGS.h5 [--split S] [--checkpoint C]\n"
    "       mmfuse runs [DIR] [--json]\n"
    "       mmfuse compare RUN RUN...\n"
    "       mmfuse report DIR     (report.html of a run folder, summary.html of a sweep folder)\n"
    "       mmfuse sweep FILE.yaml [--jobs N] [-o KEY.PATH=VALUE]...\n"
    "       mmfuse plugins [--kind K] [--describe NAME] [--json]\n"
    "       mmfuse check-plugin NAME|FILE.so [-o KEY=VALUE]...\n"
    "       mmfuse new-plugin dataset|encoder|fusion|loss NAME [DIR]\n"
    "       mmfuse import csv FILE|- --modality NAME=COLUMNS[:SHAPE]... --label COLUMN [--split SPEC] -o OUT.h5\n"
    "       mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]\n"
    "       mmfuse reference      (the experiment file reference, as markdown)\n"
    "       mmfuse --version | --help | VERB --help\n";

/* OpenMP's idle threads spin for ~15 ms (libgomp's default GOMP_SPINCOUNT of 300000)
 * before sleeping: on a busy machine they take the CPU from the thread doing the work, and a
 * run became up to 5× slower at 2 threads than at 1 (docs/performance.md, "Threads on a busy
 * machine"). A bounded spin (1000 rounds, ~50 µs) keeps back-to-back regions fast and lets
 * idle threads sleep. libgomp reads its environment once, when it is loaded — before main,
 * and before libc's own initialiser, which resets the environment a preinit function could
 * have changed — so the setting takes a re-exec of this program (~1 ms). A user's own
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT wins; if the exec fails, the run goes on as it is. */
static void bounded_openmp_spin(const char *verb, char **argv)
{
    static const char *const computing[] = {"run", "bench", "eval", "predict", "embed", NULL};
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    setenv("GOMP_SPINCOUNT", "1000", 1); /* a sweep's points inherit it: no exec there */
    /* mf_set_threads keeps OpenBLAS single-threaded anyway; said before it loads, it also
     * skips starting its thread pool (14 ms of the re-exec's start-up here) */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    for (int i = 0; computing[i]; i++)
        if (strcmp(verb, computing[i]) == 0)
            execv("/proc/self/exe", argv);
}

void mf_cli_report(const mf_error *err)
{
    if (mf_distributed_rank() > 0)
        return; /* every rank holds the same message (mf_experiment_run): rank 0 prints it */
    const char *line = err->msg;
    if (!*line)
        line = "failed without saying why (a plugin returned an error with no message)";
    while (*line) {
        size_t len = strcspn(line, "\n");
        fprintf(stderr, "%.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
}

int mf_cli_help(int argc, char **argv, const char *verb_usage, const char *details)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s\n", verb_usage);
            if (details)
                fputs(details, stdout);
            return 1;
        }
    return 0;
}

int mf_cli_usage_error(const char *verb, const char *verb_usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mmfuse %s: ", verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n", verb_usage);
    return MF_EXIT_BAD_INPUT;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return MF_EXIT_BAD_INPUT;
    }
    const char *verb = argv[1];
    bounded_openmp_spin(verb, argv);
    if (strcmp(verb, "run") == 0)
        return mf_cli_run(argc - 1, argv + 1);
    if (strcmp(verb, "reference") == 0)
        return mf_cli_reference(argc - 1, argv + 1);
    if (strcmp(verb, "validate") == 0)
        return mf_cli_validate(argc - 1, argv + 1);
    if (strcmp(verb, "sweep") == 0)
        return mf_cli_sweep(argc - 1, argv + 1);
    if (strcmp(verb, "plugins") == 0)
        return mf_cli_plugins(argc - 1, argv + 1);
    if (strcmp(verb, "bench") == 0)
        return mf_cli_bench(argc - 1, argv + 1);
    if (strcmp(verb, "check-plugin") == 0)
        return mf_cli_check_plugin(argc - 1, argv + 1);
    if (strcmp(verb, "new-plugin") == 0)
        return mf_cli_new_plugin(argc - 1, argv + 1);
    if (strcmp(verb, "import") == 0)
        return mf_cli_import(argc - 1, argv + 1);
    if (strcmp(verb, "eval") == 0)
        return mf_cli_eval(argc - 1, argv + 1);
    if (strcmp(verb, "predict") == 0)
        return mf_cli_predict(argc - 1, argv + 1);
    if (strcmp(verb, "embed") == 0)
        return mf_cli_embed(argc - 1, argv + 1);
    if (strcmp(verb, "runs") == 0)
        return mf_cli_runs(argc - 1, argv + 1);
    if (strcmp(verb, "compare") == 0)
        return mf_cli_compare(argc - 1, argv + 1);
    if (strcmp(verb, "report") == 0)
        return mf_cli_report_verb(argc - 1, argv + 1);
    if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
        printf("mmfuse %s (plugin ABI %d.%d)\n", MF_VERSION_STRING, MF_ABI_MAJOR, MF_ABI_MINOR);
        return MF_EXIT_OK;
    }
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
        fputs(usage, stdout);
        return MF_EXIT_OK;
    }
    static const char *const verbs[] = {"run", "validate", "sweep", "reference", "plugins", "bench", "check-plugin", "new-plugin", "import", "eval", "predict", "embed", "runs", "compare", "report", "help",
                                        "version", NULL};
    const char *hint = mf_suggestion(verb, verbs);
    fprintf(stderr, "mmfuse: unknown command '%s'%s\n%s", verb, hint, usage);
    return MF_EXIT_BAD_INPUT;
}
