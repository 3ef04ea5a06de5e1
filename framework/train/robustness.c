/* Robustness on the test split: the selected metric with each modality dropped and under
 * each noise level on each modality (eval.robustness), one at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment_internal.h"

/* The selected metric on the test split with each modality dropped and each noise level on
 * each modality, one at a time; printed and saved as robustness.csv. */
int mfi_evaluate_robustness(mfi_pass *p, mfi_loader *test, const mfi_metric_table *clean,
                            json_t *details, mf_error *err)
{
    experiment *e = p->e;
    const mf_config *rob = mf_config_get(mfi_section(e, "eval"), "robustness");
    const mf_config *drop = mf_config_get(rob, "drop"), *noise = mf_config_get(rob, "noise");
    int n_drop = mf_config_length(drop), n_noise = mf_config_length(noise);
    if (n_drop + n_noise == 0)
        return MF_EXIT_OK;
    const char *metric = e->select + 4;
    const int classes = strcmp(metric, "accuracy") == 0;
    const char *second = classes ? "macro_f1" : "loss";
    char csv[8192];
    int len = snprintf(csv, sizeof csv, "transform,modality,level,%s,%s\nclean,,0,%.6f,%.6f\n",
                       metric, second, mfi_metric_get(clean, metric),
                       mfi_metric_get(clean, second));
    fprintf(e->log, "robustness (test split): clean %s %.4f\n", metric,
            mfi_metric_get(clean, metric));
    for (int t = 0; t < n_drop + n_noise * e->n_mod; t++) {
        int m;
        double level = 0;
        if (t < n_drop) {
            const char *name = mf_config_scalar(mf_config_at(drop, t));
            for (m = 0; m < e->n_mod && strcmp(e->mod_name[m], name); m++)
                ;
            e->input[m].drop = 1;
        } else {
            m = (t - n_drop) % e->n_mod;
            if (e->in_flags[m] & MF_IO_TOKENS)
                continue; /* noise on token ids means nothing: only feature inputs get it */
            level = strtod(mf_config_scalar(mf_config_at(noise, (t - n_drop) / e->n_mod)), NULL);
            e->input[m].noise = (float)level;
        }
        mf_rng rng;
        mf_rng_seed_stream(&rng, (uint64_t)e->seed, UINT64_C(0x726f62) + (uint64_t)t); /* "rob" */
        int status = mfi_run_pass(p, test, 0, &rng, err);
        e->input[m].drop = 0;
        e->input[m].noise = 0;
        if (status)
            return status;
        mfi_metric_table st;
        mfi_meter_table(p->meter, &st);
        const char *kind = t < n_drop ? "drop" : "noise";
        const double v = mfi_metric_get(&st, metric);
        fprintf(e->log, "  %-5s %-12s %-6g %s %.4f  (%+.4f)\n", kind, e->mod_name[m], level,
                classes ? "accuracy" : metric, v, v - mfi_metric_get(clean, metric));
        if (len < (int)sizeof csv)
            len += snprintf(csv + len, sizeof csv - (size_t)len, "%s,%s,%g,%.6f,%.6f\n", kind,
                            e->mod_name[m], level, v, mfi_metric_get(&st, second));
    }
    if (e->run) {
        char path[4200];
        snprintf(path, sizeof path, "%s/robustness.csv", e->run->path);
        if (mf_write_file_atomic(path, csv, strlen(csv), err))
            return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}

