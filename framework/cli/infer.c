/* mmfuse eval RUN_DIR [--split S] [--checkpoint best|last|FILE] [-o KEY.PATH=VALUE]... [--json F]
 * mmfuse predict RUN_DIR -o PREDS.csv [--split S] [--checkpoint …] [-o KEY.PATH=VALUE]...
 * mmfuse embed RUN_DIR -o EMB.h5 [--split S] [--checkpoint …] [-o KEY.PATH=VALUE]... */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char eval_usage[] =
    "mmfuse eval RUN_DIR [--split test|val|train] [--checkpoint best|last|FILE] "
    "[-o KEY.PATH=VALUE]... [--json FILE] [-q] [--force]";
static const char predict_usage[] =
    "mmfuse predict RUN_DIR -o PREDICTIONS.csv [--split test|val|train] "
    "[--checkpoint best|last|FILE] [-o KEY.PATH=VALUE]... [-q] [--force]";
static const char embed_usage[] =
    "mmfuse embed RUN_DIR -o EMBEDDINGS.h5 [--split test|val|train] "
    "[--checkpoint best|last|FILE] [-o KEY.PATH=VALUE]... [-q] [--force]";

static const char common_details[] =
    "The run's config.yaml rebuilds the model, the checkpoint (best.h5 unless --checkpoint)\n"
    "fills it, and the standardisation fitted in training is applied.\n"
    "  --split S           test (default), val or train\n"
    "  --checkpoint C      best, last, or a checkpoint file\n"
    "  -o KEY.PATH=VALUE   override a key of the run's config, e.g. -o data.path=OTHER.h5 to\n"
    "                      evaluate on another file (transfer); a relative path given to a\n"
    "                      key ending in path, file or dir is taken from the working folder\n"
    "  -q, --quiet         no summary line\n"
    "  --force             load a checkpoint written with other plugins than the run's (another\n"
    "                      build or version of a plugin it uses): refused without it\n";
static const char eval_details[] =
    "Prints every metric of the split; --json FILE also writes them (with the confusion\n"
    "matrix and per-class figures) to FILE.\n";
static const char predict_details[] =
    "-o FILE (an argument without '=') names the CSV: one row per sample with its index in\n"
    "the data, the split, the true label and the prediction (with class names) and each\n"
    "class's probability p_<class>; for regression the targets and predictions in the\n"
    "data's units; for multi-label data each label's probability.\n";
static const char embed_details[] =
    "-o FILE (an argument without '=') names the HDF5 file: /embeddings/<modality> and\n"
    "/embeddings/fused (N, …) float32, /logits, /labels (or /targets) and /index (each\n"
    "sample's index in the data), attributes run, checkpoint, split, mmfuse.\n";

static int parse(const char *verb, const char *usage, int argc, char **argv,
                 mf_infer_options *o, const char **overrides)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int takes = strcmp(a, "-o") == 0 || strcmp(a, "--split") == 0 ||
                          strcmp(a, "--checkpoint") == 0 || strcmp(a, "--json") == 0 ||
                          strcmp(a, "--output") == 0;
        if (takes && i + 1 == argc)
            return mf_cli_usage_error(verb, usage, "%s needs a value", a);
        if (strcmp(a, "-o") == 0 && strchr(argv[i + 1], '='))
            overrides[o->n_overrides++] = argv[++i];
        else if ((strcmp(a, "-o") == 0 && o->kind != MF_INFER_EVAL) || strcmp(a, "--output") == 0 ||
                 (strcmp(a, "--json") == 0 && o->kind == MF_INFER_EVAL))
            o->output = argv[++i];
        else if (strcmp(a, "-o") == 0)
            return mf_cli_usage_error(verb, usage, "-o takes KEY.PATH=VALUE ('%s' has no '='; "
                                      "--json FILE writes the metrics)", argv[i + 1]);
        else if (strcmp(a, "--split") == 0)
            o->split = argv[++i];
        else if (strcmp(a, "--checkpoint") == 0)
            o->checkpoint = argv[++i];
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            o->quiet = 1;
        else if (strcmp(a, "--force") == 0)
            o->force = 1;
        else if (a[0] == '-' && a[1])
            return mf_cli_usage_error(verb, usage, "unknown option '%s'", a);
        else if (o->run_dir)
            return mf_cli_usage_error(verb, usage, "one run folder at a time ('%s', then '%s')",
                                      o->run_dir, a);
        else
            o->run_dir = a;
    }
    if (!o->run_dir)
        return mf_cli_usage_error(verb, usage, "which run folder?");
    if (o->kind != MF_INFER_EVAL && !o->output)
        return mf_cli_usage_error(verb, usage, "-o FILE names the output");
    return 0;
}

static int infer(const char *verb, mf_infer_kind kind, const char *usage, const char *details,
                 int argc, char **argv)
{
    if (mf_cli_help(argc, argv, usage, NULL)) {
        fputs(details, stdout);
        fputs(common_details, stdout);
        return MF_EXIT_OK;
    }
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    mf_infer_options o = {.struct_size = sizeof o, .kind = kind, .overrides = overrides,
                          .log = stdout};
    int status = overrides ? parse(verb, usage, argc, argv, &o, overrides) : MF_EXIT_FAILED;
    if (status == 0) {
        mf_error err;
        mf_error_clear(&err);
        status = mf_experiment_infer(&o, &err);
        if (status != MF_EXIT_OK)
            mf_cli_report(&err);
    }
    free(overrides);
    return status;
}

int mf_cli_eval(int argc, char **argv)
{
    return infer("eval", MF_INFER_EVAL, eval_usage, eval_details, argc, argv);
}

int mf_cli_predict(int argc, char **argv)
{
    return infer("predict", MF_INFER_PREDICT, predict_usage, predict_details, argc, argv);
}

int mf_cli_embed(int argc, char **argv)
{
    return infer("embed", MF_INFER_EMBED, embed_usage, embed_details, argc, argv);
}
