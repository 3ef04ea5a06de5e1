/* mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char bench_usage[] =
    "mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]\n"
    "                    [--profile]\n"
    "       MODEL: mlp-concat, tensor-fusion, cnn-late, clip-dual or xattn-fusion\n"
    "              (shared/bench/README.md); xattn-fusion is built from plugins, found as\n"
    "              `mmfuse run` finds them (MMFUSE_PLUGIN_PATH, then the built-in ones)";

/* A positive integer option value, or -1. */
static int positive(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || *end || v < 1 || v > 1000000 ? -1 : (int)v;
}

/* Append one JSON line (torch_ref.py's fields where they mean the same). */
static int append_json(const char *path, const mf_bench_options *o, const mf_bench_result *r)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_t *line = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:i, "
        "s:f, s:f, s:I, s:I, s:f, s:s, s:s}",
        "tag", "mmfuse", "model", o->model, "mode", o->train ? "train" : "eval", "batch", r->batch,
        "steps", o->steps, "warmup", o->warmup, "threads", r->threads, "openblas_threads",
        r->threads, "params", (json_int_t)r->params, "median_ms", r->median_ms, "mean_ms",
        r->mean_ms, "min_ms", r->min_ms, "p90_ms", r->p90_ms, "samples_per_s", r->samples_per_s,
        "flops_per_step", (json_int_t)r->flops_per_step, "gflops_at_median", r->gflops_at_median,
        "sgemm_calls", r->sgemm_calls, "sgemm_gflops", r->sgemm_gflops, "sgemm_fraction",
        r->sgemm_fraction, "peak_rss_kb", (json_int_t)r->peak_rss_kb, "graph_bytes",
        (json_int_t)r->graph_bytes, "check", r->check, "mmfuse", MF_VERSION_STRING, "host", host);
    if (!line)
        return -1;
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    FILE *f = text ? fopen(path, "a") : NULL;
    int ok = f && fprintf(f, "%s\n", text) > 0;
    if (f && fclose(f))
        ok = 0;
    free(text);
    return ok ? 0 : -1;
}

int mf_cli_bench(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, bench_usage, NULL))
        return MF_EXIT_OK;
    mf_bench_options o = {sizeof o, NULL, 1, 0, 200, 20, 0, 0};
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = strcmp(a, "--mode") == 0 || strcmp(a, "--threads") == 0 ||
                          strcmp(a, "--steps") == 0 || strcmp(a, "--warmup") == 0 ||
                          strcmp(a, "--json") == 0;
        if (takes_value && !v)
            return mf_cli_usage_error("bench", bench_usage, "%s needs a value", a);
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "train") && strcmp(v, "eval"))
                return mf_cli_usage_error("bench", bench_usage,
                                          "--mode is train or eval, not '%s'", v);
            o.train = strcmp(v, "train") == 0;
        } else if (strcmp(a, "--json") == 0) {
            json = v;
        } else if (takes_value) {
            int n = positive(v);
            if (n < 0 && !(strcmp(a, "--warmup") == 0 && strcmp(v, "0") == 0))
                return mf_cli_usage_error("bench", bench_usage,
                                          "%s takes a positive integer, not '%s'", a, v);
            *(strcmp(a, "--threads") == 0 ? &o.threads
              : strcmp(a, "--steps") == 0 ? &o.steps
                                          : &o.warmup) = n < 0 ? 0 : n;
        } else if (strcmp(a, "--profile") == 0) {
            o.profile = 1;
            continue;
        } else if (a[0] == '-') {
            return mf_cli_usage_error("bench", bench_usage, "unknown option '%s'", a);
        } else if (o.model) {
            return mf_cli_usage_error("bench", bench_usage, "one model at a time");
        } else {
            o.model = a;
            continue;
        }
        i++;
    }
    if (!o.model)
        return mf_cli_usage_error("bench", bench_usage, "which model?");
    mf_bench_result r;
    mf_error err;
    mf_error_clear(&err);
    int status = mf_bench_run(&o, &r, &err);
    if (status) {
        mf_cli_report(&err);
        return status;
    }
    printf("%-14s %-5s B=%d thr=%d  median %.3f ms  mean %.3f ms  %.0f samples/s  %.1f MFLOP/step"
           "  %.1f GFLOP/s  sgemm alone %.1f GFLOP/s (%d calls, %.0f%% of the step)  peak RSS %ld kB"
           "  (check %.4f)\n",
           o.model, o.train ? "train" : "eval", r.batch, r.threads, r.median_ms, r.mean_ms,
           r.samples_per_s, (double)r.flops_per_step / 1e6, r.gflops_at_median, r.sgemm_gflops,
           r.sgemm_calls, 100 * r.sgemm_fraction, r.peak_rss_kb, r.check);
    if (json && append_json(json, &o, &r)) {
        fprintf(stderr, "mmfuse bench: cannot append to '%s': %s\n", json, strerror(errno));
        return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}
