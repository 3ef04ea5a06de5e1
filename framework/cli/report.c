/* mmfuse report DIR — write a run folder's report.html, or a sweep folder's summary.html,
 * again from the files in it (after editing the code, or for a run that stopped early). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char report_usage[] = "mmfuse report DIR";
static const char report_details[] =
    "Writes DIR/report.html when DIR is a run folder (metrics.csv or result.json), or\n"
    "DIR/summary.html when it is a sweep folder (summary.csv): one self-contained page with\n"
    "its charts as inline SVG, to open in any browser.\n";

int mf_cli_report_verb(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, report_usage, report_details))
        return MF_EXIT_OK;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            return mf_cli_usage_error("report", report_usage, "unknown option '%s'", argv[i]);
        if (dir)
            return mf_cli_usage_error("report", report_usage, "one folder at a time ('%s', then '%s')",
                                      dir, argv[i]);
        dir = argv[i];
    }
    if (!dir)
        return mf_cli_usage_error("report", report_usage, "which run or sweep folder?");
    mf_error err;
    mf_error_clear(&err);
    const char *page = NULL;
    int rc = mf_report_write(dir, &page, &err);
    if (rc) {
        mf_cli_report(&err);
        return rc;
    }
    printf("%s/%s\n", dir, page);
    return MF_EXIT_OK;
}
