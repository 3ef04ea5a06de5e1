/* The mmfuse command line: one file per verb. */
#ifndef MF_CLI_H
#define MF_CLI_H

#include <mmfuse/host.h>

int mf_cli_run(int argc, char **argv);
int mf_cli_validate(int argc, char **argv);
int mf_cli_sweep(int argc, char **argv);
int mf_cli_reference(int argc, char **argv);
int mf_cli_plugins(int argc, char **argv);
int mf_cli_bench(int argc, char **argv);
int mf_cli_check_plugin(int argc, char **argv);
int mf_cli_new_plugin(int argc, char **argv);
int mf_cli_import(int argc, char **argv);
/* infer.c: a trained run's model */
int mf_cli_eval(int argc, char **argv);
int mf_cli_predict(int argc, char **argv);
int mf_cli_embed(int argc, char **argv);
/* brief "report" (issue 10 item 9): mmfuse report DIR (mf_cli_report is the error printer) */
int mf_cli_report_verb(int argc, char **argv);
/* runs.c (brief "tracking"): mmfuse runs [DIR], mmfuse compare RUN RUN... */
int mf_cli_runs(int argc, char **argv);
int mf_cli_compare(int argc, char **argv);
/* Print each line of err to stderr, prefixed "mmfuse: " unless it already names a place. */
void mf_cli_report(const mf_error *err);
/* --help or -h anywhere among argv[1..]: print "usage: USAGE" (and details, when given) on
 * stdout and return 1, for the verb to exit 0. */
int mf_cli_help(int argc, char **argv, const char *usage, const char *details);
/* A usage error: "mmfuse VERB: message" and the usage line; returns MF_EXIT_BAD_INPUT. */
int mf_cli_usage_error(const char *verb, const char *usage, const char *fmt, ...)
    MF_PRINTF(3, 4);

#endif
