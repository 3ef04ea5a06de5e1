/* fuzz_idx.c — a libFuzzer target for the idx dataset reader (plugins/datasets/idx.c, compiled
 * in so the sanitizers see it).
 *
 * Each input is saved twice — as it is, and gzip-wrapped — and each copy is
 *  1. loaded as an image file and as a label file (idx_load);
 *  2. when it loads as images: opened through the plugin API as the training images with
 *     matching labels, and every sample read; when it loads as labels: opened as the
 *     training labels of as many 1×1 images, and every sample read.
 * A refusal must be one printable line that starts with the file's path; an opened dataset
 * must describe what the header says, give finite values and labels within its classes (at
 * most max(1024, samples) of them). Anything else aborts.
 *
 * Build and run with clang's libFuzzer (Debian: clang, libclang-rt-14-dev) from the source
 * root, after `ninja -C build` (libmmfuse provides the config tree):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -std=c11 -D_DEFAULT_SOURCE -Iinclude tests/fuzz/fuzz_idx.c -Lbuild/framework \
 *       -Wl,-rpath,$PWD/build/framework -lmmfuse -lz -lm -o /tmp/fuzz-idx
 *   rm -rf /tmp/fuzz-idx-corpus && cp -r tests/fuzz/corpus-idx /tmp/fuzz-idx-corpus
 *   /tmp/fuzz-idx -max_total_time=300 -max_len=4096 -timeout=10 /tmp/fuzz-idx-corpus
 *
 * Replay without clang (the meson test does this for the seed corpus):
 * build/tests/fuzz/fuzz-idx-replay FILE-OR-FOLDER…
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmfuse/host.h>

#include "../../plugins/datasets/idx.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_idx.c:%d: check failed: %s\n", __LINE__, #cond);         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static char scratch[64];

static const char *scratch_path(const char *name)
{
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", scratch, name);
    return p;
}

static void write_plain(const char *name, const void *data, size_t size)
{
    FILE *f = fopen(scratch_path(name), "wb");
    CHECK(f && fwrite(data, 1, size, f) == size);
    fclose(f);
}

static void write_gzip(const char *name, const void *data, size_t size)
{
    gzFile f = gzopen(scratch_path(name), "wb");
    CHECK(f && (size == 0 || gzwrite(f, data, (unsigned)size) == (int)size));
    gzclose(f);
}

/* A refusal: exactly one line of printable text naming the file first. */
static void check_refusal(const mf_error *err, const char *path)
{
    CHECK(err->count == 1);
    CHECK(strncmp(err->msg, path, strlen(path)) == 0 && err->msg[strlen(path)] == ':');
    for (const char *c = err->msg; *c; c++)
        CHECK((unsigned char)*c >= 0x20 || *c == '\t');
}

/* IDX header and n items of `bytes` zero bytes each. */
static void write_companion(const char *name, int ndim, int64_t n)
{
    uint8_t head[16] = {0, 0, 0x08, (uint8_t)ndim};
    for (int d = 0; d < ndim; d++) {
        uint32_t v = d == 0 ? (uint32_t)n : 1;
        for (int b = 0; b < 4; b++)
            head[4 + 4 * d + b] = (uint8_t)(v >> (24 - 8 * b));
    }
    FILE *f = fopen(scratch_path(name), "wb");
    CHECK(f && fwrite(head, 1, 4 + 4 * (size_t)ndim, f) == 4 + 4 * (size_t)ndim);
    for (int64_t i = 0; i < n; i++)
        CHECK(fputc(0, f) == 0);
    fclose(f);
}

/* Open the pair through the plugin API and read every sample. */
static void open_and_read(const char *images, const char *labels, int64_t expect_n,
                          const char *input)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "{dir: %s, train_images: %s, train_labels: %s, test_images: '', test_labels: ''}",
             scratch, images, labels);
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = mf_config_parse(yaml, strlen(yaml), "fuzz.yaml", &err);
    CHECK(cfg && mf_config_check(cfg, idx_plugin.params, NULL, &err) == 0);
    mf_dataset *ds = mf_dataset_open(&idx_plugin, cfg, "/", &err);
    if (!ds) { /* only the values can still be refused: labels, NaN or Inf images */
        check_refusal(&err, input);
        mf_config_free(cfg);
        return;
    }
    const mf_dataset_info *in = mf_dataset_get_info(ds);
    CHECK(in->n_samples == expect_n && in->n_classes >= 1);
    CHECK(in->n_classes <= 1024 || in->n_classes <= in->n_samples); /* unnamed: capped */
    const int64_t numel = mf_shape_numel(&in->modalities[0].shape), batch = 64;
    float *x = malloc((size_t)(batch * numel) * sizeof *x);
    float *const bufs[1] = {x};
    int32_t y[64];
    int64_t idx[64];
    mf_batch_buffers out = {sizeof out, bufs, y, NULL};
    CHECK(x);
    for (int64_t first = 0; first < in->n_samples; first += batch) {
        int64_t n = in->n_samples - first < batch ? in->n_samples - first : batch;
        for (int64_t i = 0; i < n; i++)
            idx[i] = first + i;
        CHECK(mf_dataset_read(ds, n, idx, &out, &err) == 0);
        for (int64_t i = 0; i < n; i++)
            CHECK(y[i] >= 0 && y[i] < in->n_classes);
        for (int64_t j = 0; j < n * numel; j++) /* refused at open otherwise (issue 13) */
            CHECK(isfinite(x[j]));
    }
    free(x);
    mf_dataset_close(ds);
    mf_config_free(cfg);
}

static void fuzz_file(const char *name)
{
    const char *path = scratch_path(name);
    idx_array a;
    mf_error err;
    mf_error_clear(&err);
    if (idx_load(&a, path, "images", 2, 4, &err) == 0) {
        CHECK((int64_t)a.dim[0] * a.item_bytes > 0);
        free(a.data);
        write_companion("labels", 1, a.dim[0]);
        open_and_read(name, "labels", a.dim[0], path);
    } else {
        check_refusal(&err, path);
    }
    mf_error_clear(&err);
    if (idx_load(&a, path, "labels", 1, 1, &err) == 0) {
        free(a.data);
        write_companion("images", 3, a.dim[0]);
        open_and_read("images", name, a.dim[0], path);
    } else {
        check_refusal(&err, path);
    }
}

static void remove_scratch(void)
{
    static const char *const names[] = {"input", "input.gz", "images", "labels"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(scratch_path(names[i]));
    rmdir(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/mmfuse-fuzz-idx-XXXXXX");
        CHECK(mkdtemp(scratch) != NULL);
        atexit(remove_scratch);
    }
    write_plain("input", data, size);
    write_gzip("input.gz", data, size);
    fuzz_file("input");
    fuzz_file("input.gz");
    return 0;
}
