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
} mfi_checker;

/* One line "PASS|FAIL|SKIP check detail" on c->out, counted. */
void mfi_check_report(mfi_checker *c, int status, const char *check, const char *fmt, ...)
    MF_PRINTF(4, 5);
/* Encoders and fusion operators, then losses: build on every input profile; each profile
 * the plugin accepts gets the full checks, each it refuses a SKIP with its reason. */
void mfi_check_module(mfi_checker *c, const mf_config *cfg);
void mfi_check_loss(mfi_checker *c, const mf_config *cfg);

#endif
