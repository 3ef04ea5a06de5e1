/* mmfuse import csv FILE … -o OUT.h5 — a CSV table into the dataset layout the `hdf5` reader
 * takes (the work is mf_import_csv's; this only reads the arguments). FILE '-' (or
 * /dev/stdin) reads standard input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char import_usage[] =
    "mmfuse import csv FILE|- --modality NAME=COLUMNS[:SHAPE]... (--label COLUMN | --target "
    "COLUMNS) [--split rows:A-B=train,…|column:NAME] [--classes-from-label] [--no-header] "
    "[--attr KEY=VALUE]... -o OUT.h5";

int mf_cli_import(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, import_usage, NULL))
        return MF_EXIT_OK;
    if (argc < 2 || strcmp(argv[1], "csv") != 0)
        return mf_cli_usage_error("import", import_usage,
                                  argc < 2 ? "from what? (csv)"
                                           : "cannot import '%s' files (only csv so far)",
                                  argv[argc < 2 ? 0 : 1]);
    const char **modalities = calloc((size_t)argc, sizeof *modalities);
    const char **attrs = calloc((size_t)argc, sizeof *attrs);
    mf_csv_import o = {.struct_size = sizeof o, .modalities = modalities, .attrs = attrs,
                       .log = stdout};
    int status = modalities && attrs ? MF_EXIT_OK : MF_EXIT_FAILED;
    static const char *const valued[] = {"--modality", "--label", "--target", "--split",
                                         "--attr", "-o", "--output", NULL};
    for (int i = 2; i < argc && status == MF_EXIT_OK; i++) {
        const char *a = argv[i], *opt = NULL, *value = NULL;
        size_t len = strcspn(a, "=");
        for (int k = 0; valued[k] && !opt; k++)
            if (strncmp(a, valued[k], len) == 0 && valued[k][len] == '\0')
                opt = valued[k];
        if (opt && a[len] == '=') /* --label=classes */
            value = a + len + 1;
        else if (opt && i + 1 < argc)
            value = argv[++i];
        else if (opt)
            status = mf_cli_usage_error("import", import_usage, "%s needs a value", a);
        if (status != MF_EXIT_OK)
            break;
        if (opt && strcmp(opt, "--modality") == 0)
            modalities[o.n_modalities++] = value;
        else if (opt && strcmp(opt, "--attr") == 0)
            attrs[o.n_attrs++] = value;
        else if (opt && strcmp(opt, "--label") == 0)
            o.label = value;
        else if (opt && strcmp(opt, "--target") == 0)
            o.target = value;
        else if (opt && strcmp(opt, "--split") == 0)
            o.split = value;
        else if (opt)
            o.out = value;
        else if (strcmp(a, "--classes-from-label") == 0)
            o.classes_from_label = 1;
        else if (strcmp(a, "--no-header") == 0)
            o.no_header = 1;
        else if (a[0] == '-' && a[1])
            status = mf_cli_usage_error("import", import_usage, "unknown option '%s'", a);
        else if (o.csv)
            status = mf_cli_usage_error("import", import_usage,
                                        "one CSV file at a time ('%s', then '%s')", o.csv, a);
        else
            o.csv = a;
    }
    if (status == MF_EXIT_OK && !o.csv)
        status = mf_cli_usage_error("import", import_usage, "which CSV file?");
    else if (status == MF_EXIT_OK && !o.out)
        status = mf_cli_usage_error("import", import_usage, "where to? (-o OUT.h5)");
    if (status == MF_EXIT_OK) {
        mf_error err;
        mf_error_clear(&err);
        if ((status = mf_import_csv(&o, &err)) != MF_EXIT_OK) {
            mf_cli_report(&err);
        } else if (fflush(stdout) != 0 || ferror(stdout)) { /* > /dev/full: say so */
            mf_error_set(&err, "wrote %s, but cannot write its summary to standard output: %s",
                         o.out, strerror(errno ? errno : EIO));
            mf_cli_report(&err);
            status = MF_EXIT_FAILED;
        }
    }
    free(modalities);
    free(attrs);
    return status;
}
