/* mmfuse report DIR — write a run folder's report.html, or a sweep folder's summary.html,
 * again from the files in it (after editing the code, or for a run that stopped early);
 * --svg writes each chart as a file too, for a paper or a results page. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define MAX_CURVES 16

static const char report_usage[] =
    "mmfuse report DIR [--curve COLUMN]... [--svg OUT_DIR [--svg-prefix PREFIX]]";
static const char report_details[] =
    "Writes DIR/report.html when DIR is a run folder (metrics.csv or result.json), or\n"
    "DIR/summary.html when it is a sweep folder (summary.csv): one self-contained page with\n"
    "its charts as inline SVG, to open in any browser.\n"
    "\n"
    "  --curve COLUMN        a sweep: chart this metrics.csv column (train_logit_scale,\n"
    "                        val_loss, …) over training, one line per configuration (the mean\n"
    "                        over its seeds); repeatable; default val_<selected metric>\n"
    "  --svg OUT_DIR         also write every chart of the page as OUT_DIR/<chart>.svg, a\n"
    "                        standalone SVG file (its style inside)\n"
    "  --svg-prefix PREFIX   name those files PREFIX<chart>.svg\n";

/* The value of option argv[*i] ("--svg DIR" or "--svg=DIR"); NULL after a usage error. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (*i + 1 >= argc || !argv[*i + 1][0])
        return NULL;
    return argv[++*i];
}

int mf_cli_report_verb(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, report_usage, report_details))
        return MF_EXIT_OK;
    const char *dir = NULL, *curves[MAX_CURVES];
    mf_report_options o = {.struct_size = sizeof o, .curves = curves};
    static const char *const names[] = {"--curve", "--svg", "--svg-prefix"};
    for (int i = 1; i < argc; i++) {
        int opt = -1;
        for (int k = 0; k < 3; k++) {
            size_t len = strlen(names[k]);
            if (strncmp(argv[i], names[k], len) == 0 && (argv[i][len] == '\0' || argv[i][len] == '='))
                opt = k;
        }
        if (opt < 0 && argv[i][0] == '-' && argv[i][1])
            return mf_cli_usage_error("report", report_usage, "unknown option '%s'", argv[i]);
        if (opt < 0) {
            if (dir)
                return mf_cli_usage_error("report", report_usage,
                                          "one folder at a time ('%s', then '%s')", dir, argv[i]);
            dir = argv[i];
            continue;
        }
        const char *v = option_value(argc, argv, &i, names[opt]);
        if (!v)
            return mf_cli_usage_error("report", report_usage, "%s needs a value", names[opt]);
        if (opt == 0 && o.n_curves == MAX_CURVES)
            return mf_cli_usage_error("report", report_usage, "at most %d --curve options",
                                      MAX_CURVES);
        if (opt == 0)
            curves[o.n_curves++] = v;
        else if (opt == 1)
            o.svg_dir = v;
        else
            o.svg_prefix = v;
    }
    if (!dir)
        return mf_cli_usage_error("report", report_usage, "which run or sweep folder?");
    if (o.svg_prefix && !o.svg_dir)
        return mf_cli_usage_error("report", report_usage, "--svg-prefix without --svg");
    mf_error err;
    mf_error_clear(&err);
    const char *page = NULL;
    int rc = mf_report_write_with(dir, &o, &page, &err);
    if (rc) {
        mf_cli_report(&err);
        return rc;
    }
    printf("%s/%s\n", dir, page);
    if (o.svg_dir)
        printf("charts: %s/%s*.svg\n", o.svg_dir, o.svg_prefix ? o.svg_prefix : "");
    return MF_EXIT_OK;
}
