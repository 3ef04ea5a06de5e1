/* mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]
 *                    [--batch N] [--width N] [--seq N] [--profile]
 * --batch/--width/--seq run the reference models at other sizes, to see how cost grows
 * (issue 11 item 5); tests/bench/torch_scale.py builds the same models in PyTorch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char bench_usage[] =
    "mmfuse bench MODEL [--mode train|eval] [--threads N] [--steps N] [--warmup N] [--json FILE]\n"
    "                    [--batch N] [--width N] [--seq N] [--bucket-mb X] [--profile]\n"
    "       MODEL: mlp-concat, tensor-fusion, cnn-late, clip-dual or xattn-fusion\n"
    "              (shared/bench/README.md); xattn-fusion is built from plugins, found as\n"
    "              `mmfuse run` finds them (MMFUSE_PLUGIN_PATH, then the built-in ones)\n"
    "       --bucket-mb X: under mpirun, sum the gradients in buckets of about X MiB during\n"
    "              backward, as train.bucket_mb (default 25; 0: one sum after backward)\n"
    "       mmfuse bench allreduce [--steps N] [--json FILE]: under mpirun, the all-reduce\n"
    "              alone at message sizes from 4 KiB to 64 MiB (docs/distributed.md)";

/* Shown by --help only: the other sizes (tests/bench/torch_scale.py builds the same). */
static const char bench_sizes[] =
    "       --batch N  samples per step, 1 to 65536 (default 128, clip-dual 256)\n"
    "       --width N  mlp-concat only, 1 to 16384: every hidden layer N wide, enc1 784-N-N,\n"
    "                  enc2 64-N-N, concat 2N, head 2N-N-10 (default: 784-256-128, 64-128-128,\n"
    "                  head 256-128-10)\n"
    "       --seq N    xattn-fusion only, a multiple of 4 from 4 to 4096: N image patches and\n"
    "                  N tokens, the image 28x(7N/4) pixels cut into 7x7 patches (4 rows of\n"
    "                  N/4), position tables of N rows (default 16: the 28x28 image)\n";

/* What the sizes make of the model, for the JSON line (as torch_scale.py writes it). */
static void describe_layers(char *buf, size_t size, const char *model, int width, int seq)
{
    if (strcmp(model, "mlp-concat") == 0 && width)
        snprintf(buf, size, "enc1 784-%d-%d, enc2 64-%d-%d, concat %d, head %d-%d-10", width,
                 width, width, width, 2 * width, 2 * width, width);
    else if (strcmp(model, "mlp-concat") == 0)
        snprintf(buf, size, "enc1 784-256-128, enc2 64-128-128, concat 256, head 256-128-10");
    else if (strcmp(model, "xattn-fusion") == 0)
        snprintf(buf, size, "image 1x28x%d, %d patches 7x7, %d tokens, positions %dx128",
                 7 * seq / 4, seq, seq, seq);
    else
        snprintf(buf, size, "reference");
}

/* A positive integer option value, or -1. */
static int positive(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || *end || v < 1 || v > 1000000 ? -1 : (int)v;
}

/* --batch, --width or --seq's value into *size; else one sentence (and usage), non-zero. */
static int size_error(const char *opt, const char *v, int *size)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    const int seq = strcmp(opt, "--seq") == 0, max = opt[2] == 'b' ? 65536 : seq ? 4096 : 16384;
    if (errno || *end || end == v || n < (seq ? 4 : 1) || n > max || (seq && n % 4)) {
        if (seq)
            mf_cli_usage_error("bench", bench_usage, "--seq must be a multiple of 4 from 4 to "
                               "4096: %s", v);
        else
            mf_cli_usage_error("bench", bench_usage, "%s must be an integer from 1 to %d: %s",
                               opt, max, v);
        return -1;
    }
    *size = (int)n;
    return 0;
}

/* Append one JSON line (torch_ref.py's fields where they mean the same). */
static int append_line(const char *path, json_t *line);

static int append_json(const char *path, const mf_bench_options *o, const mf_bench_result *r,
                       int width, int seq)
{
    char host[256] = "", layers[160];
    gethostname(host, sizeof host - 1);
    describe_layers(layers, sizeof layers, o->model, width, seq);
    json_t *line = json_pack(
        "{s:s, s:s, s:s, s:i, s:o, s:o, s:s, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, "
        "s:I, s:f, s:i, s:f, s:f, s:I, s:I, s:f, s:s, s:s}",
        "tag", "mmfuse", "model", o->model, "mode", o->train ? "train" : "eval", "batch", r->batch,
        "width", width ? json_integer(width) : json_null(), "seq",
        seq ? json_integer(seq) : json_null(), "layers", layers, "steps", o->steps, "warmup",
        o->warmup, "threads", r->threads, "openblas_threads", r->threads, "params", (json_int_t)r->params, "median_ms", r->median_ms, "mean_ms",
        r->mean_ms, "min_ms", r->min_ms, "p90_ms", r->p90_ms, "samples_per_s", r->samples_per_s,
        "flops_per_step", (json_int_t)r->flops_per_step, "gflops_at_median", r->gflops_at_median,
        "sgemm_calls", r->sgemm_calls, "sgemm_gflops", r->sgemm_gflops, "sgemm_fraction",
        r->sgemm_fraction, "peak_rss_kb", (json_int_t)r->peak_rss_kb, "graph_bytes",
        (json_int_t)r->graph_bytes, "check", r->check, "mmfuse", MF_VERSION_STRING, "host", host);
    if (!line)
        return -1;
    json_object_set_new(line, "ranks", json_integer(o->ranks->ranks));
    json_object_set_new(line, "allreduce_ms", json_real(o->ranks->allreduce_ms));
    json_object_set_new(line, "bucket_mb", json_real(o->ranks->bucket_mb));
    json_object_set_new(line, "buckets", json_integer(o->ranks->buckets));
    return append_line(path, line);
}

/* One JSON line appended to path; takes line. */
static int append_line(const char *path, json_t *line)
{
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    FILE *f = text ? fopen(path, "a") : NULL;
    int ok = f && fprintf(f, "%s\n", text) > 0;
    if (f && fclose(f))
        ok = 0;
    free(text);
    return ok ? 0 : -1;
}

/* The all-reduce alone over message sizes from 4 KiB to 64 MiB (times 4), for projecting how
 * data parallelism scales (docs/distributed.md). */
static int bench_allreduce(int steps, const char *json)
{
    for (int64_t bytes = 4096; bytes <= ((int64_t)64 << 20); bytes *= 4) {
        mf_error err;
        mf_error_clear(&err);
        double ms;
        int ranks, status = mf_bench_allreduce(bytes / 4, steps, &ms, &ranks, &err);
        if (status) {
            mf_cli_report(&err);
            return status;
        }
        if (mf_distributed_rank() > 0)
            continue;
        printf("allreduce %9lld bytes  ranks=%d  median %.4f ms  %.3f GB/s\n", (long long)bytes,
               ranks, ms, ms > 0 ? (double)bytes / (ms * 1e-3) * 1e-9 : 0.0);
        if (json && append_line(json, json_pack("{s:s, s:s, s:I, s:i, s:i, s:f, s:s}", "tag",
                                                "mmfuse", "model", "allreduce", "bytes",
                                                (json_int_t)bytes, "ranks", ranks, "steps", steps,
                                                "median_ms", ms, "mmfuse", MF_VERSION_STRING))) {
            fprintf(stderr, "mmfuse bench: cannot append to '%s': %s\n", json, strerror(errno));
            return MF_EXIT_FAILED;
        }
    }
    return MF_EXIT_OK;
}

int mf_cli_bench(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, bench_usage, bench_sizes))
        return MF_EXIT_OK;
    mf_bench_options o = {sizeof o, NULL, 1, 0, 200, 20, 0, 0};
    const char *json = NULL;
    int batch = 0, width = 0, seq = 0;
    double bucket_mb = 25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = strcmp(a, "--mode") == 0 || strcmp(a, "--threads") == 0 ||
                          strcmp(a, "--steps") == 0 || strcmp(a, "--warmup") == 0 ||
                          strcmp(a, "--json") == 0 || strcmp(a, "--batch") == 0 ||
                          strcmp(a, "--width") == 0 || strcmp(a, "--seq") == 0 ||
                          strcmp(a, "--bucket-mb") == 0;
        if (takes_value && !v)
            return mf_cli_usage_error("bench", bench_usage, "%s needs a value", a);
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "train") && strcmp(v, "eval"))
                return mf_cli_usage_error("bench", bench_usage,
                                          "--mode is train or eval, not '%s'", v);
            o.train = strcmp(v, "train") == 0;
        } else if (strcmp(a, "--json") == 0) {
            json = v;
        } else if (strcmp(a, "--bucket-mb") == 0) {
            char *end;
            bucket_mb = strtod(v, &end);
            if (end == v || *end || !(bucket_mb >= 0 && bucket_mb <= 1e6))
                return mf_cli_usage_error("bench", bench_usage,
                                          "--bucket-mb takes MiB from 0 to 1e6, not '%s'", v);
        } else if (strcmp(a, "--batch") == 0 || strcmp(a, "--width") == 0 ||
                   strcmp(a, "--seq") == 0) {
            int *size = a[2] == 'b' ? &batch : a[2] == 'w' ? &width : &seq;
            if (size_error(a, v, size))
                return MF_EXIT_BAD_INPUT;
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
    if (strcmp(o.model, "allreduce") == 0)
        return bench_allreduce(o.steps, json);
    if (width && strcmp(o.model, "mlp-concat"))
        return mf_cli_usage_error("bench", bench_usage, "--width is for mlp-concat, not '%s'",
                                  o.model);
    if (seq && strcmp(o.model, "xattn-fusion"))
        return mf_cli_usage_error("bench", bench_usage, "--seq is for xattn-fusion, not '%s'",
                                  o.model);
    mf_bench_result r;
    mf_bench_ranks ranks = {sizeof ranks, 1, 0, 0, bucket_mb, 0};
    mf_error err;
    mf_error_clear(&err);
    o.ranks = &ranks;
    o.batch = batch;
    o.width = width;
    o.seq = seq;
    int status = mf_bench_run(&o, &r, &err);
    if (status) {
        mf_cli_report(&err);
        return status;
    }
    if (mf_distributed_rank() > 0)
        return MF_EXIT_OK; /* rank 0 reports for all */
    if (ranks.ranks > 1)
        printf("ranks=%d  all-reduce of %lld bytes in %d bucket%s: median %.3f ms not hidden "
               "by backward, %.0f%% of the step\n", ranks.ranks, (long long)ranks.allreduce_bytes,
               ranks.buckets ? ranks.buckets : 1, ranks.buckets > 1 ? "s" : "",
               ranks.allreduce_ms, 100 * ranks.allreduce_ms / r.median_ms);
    printf("%-14s %-5s B=%d thr=%d  median %.3f ms  mean %.3f ms  %.0f samples/s  %.1f MFLOP/step"
           "  %.1f GFLOP/s  sgemm alone %.1f GFLOP/s (%d calls, %.0f%% of the step)  peak RSS %ld kB"
           "  (check %.4f)\n",
           o.model, o.train ? "train" : "eval", r.batch, r.threads, r.median_ms, r.mean_ms,
           r.samples_per_s, (double)r.flops_per_step / 1e6, r.gflops_at_median, r.sgemm_gflops,
           r.sgemm_calls, 100 * r.sgemm_fraction, r.peak_rss_kb, r.check);
    if (!seq && strcmp(o.model, "xattn-fusion") == 0)
        seq = 16; /* the reference's, recorded */
    if (json && append_json(json, &o, &r, width, seq)) {
        fprintf(stderr, "mmfuse bench: cannot append to '%s': %s\n", json, strerror(errno));
        return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}
