/* Private to mmfuse check-plugin: conformance.c (descriptor, parameters, datasets) and
 * conformance_inputs.c (modules and losses on every input profile). */
#ifndef MF_CONFORMANCE_H
#define MF_CONFORMANCE_H

#include <stdio.h>

#include <mmfuse/host.h>

enum { MFI_CHECK_FAIL = 0, MFI_CHECK_PASS = 1, MFI_CHECK_SKIP = 2 };

typedef struct mfi_checker {
    FILE *out;
    const mf_plugin *plugin;
    int passed, failed, skipped;
    int n_overrides; /* "key=value" settings on top of the declared defaults */
    const char *const *overrides;
    char settings[512]; /* "with defaults", "with defaults and -o k=v", "…, sample path=x" */
    int apart;          /* in a child of mfi_check_apart: out is the pipe to the parent */
    char running[32];   /* the parent: the check the child said it began last */
} mfi_checker;

/* Run fn(c, arg) in a forked child (plugin code may crash, abort, exit or hang): its lines
 * reach c->out as they are written, and if the child dies the report goes on with
 * "FAIL <check> <what>: crashed with SIGSEGV" (check: the last one the child began, else
 * `check`). Returns fn's result, or `if_died` when the child did not finish. */
typedef int (*mfi_check_fn)(mfi_checker *c, const void *arg);
int mfi_check_apart(mfi_checker *c, const char *check, const char *what, mfi_check_fn fn,
                    const void *arg, int if_died);
/* Say which check begins, so that a crash in it is reported under its name. */
void mfi_check_begin(mfi_checker *c, const char *check);

/* One line "PASS|FAIL|SKIP check detail" on c->out, counted. */
void mfi_check_report(mfi_checker *c, int status, const char *check, const char *fmt, ...)
    MF_PRINTF(4, 5);
/* Encoders and fusion operators, then losses: build on every input profile; each profile
 * the plugin accepts gets the full checks, each it refuses a SKIP with its reason. */
void mfi_check_module(mfi_checker *c, const mf_config *cfg);
void mfi_check_loss(mfi_checker *c, const mf_config *cfg);

#endif
