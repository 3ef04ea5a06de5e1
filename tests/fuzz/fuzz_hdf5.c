/* fuzz_hdf5.c — a libFuzzer target for the hdf5 dataset reader (plugins/datasets/hdf5.c,
 * compiled in so the sanitizers see it; libhdf5 itself is not instrumented).
 *
 * Each input is saved as a file and opened through the plugin API as the host opens it;
 * when it opens, its first 32 samples, its last one and a repeat are read. A refusal must be
 * one printable line naming the file; an opened dataset must describe itself consistently
 * (samples, modalities with shapes, labels within the classes, unnamed classes within the
 * cap of docs/datasets.md, split values 0 to 2) and a
 * read must give finite values and labels within the classes, or one such line. Anything
 * else aborts.
 *
 * Build and run with clang's libFuzzer (Debian: clang, libclang-rt-14-dev) from the source
 * root, after `ninja -C build` (libmmfuse provides the config tree):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -std=c11 -D_DEFAULT_SOURCE -Iinclude $(pkg-config --cflags hdf5) \
 *       tests/fuzz/fuzz_hdf5.c -Lbuild/framework -Wl,-rpath,$PWD/build/framework -lmmfuse \
 *       $(pkg-config --libs hdf5) -lm -o /tmp/fuzz-hdf5
 *   rm -rf /tmp/fuzz-hdf5-corpus && cp -r tests/fuzz/corpus-hdf5 /tmp/fuzz-hdf5-corpus
 *   ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024 \
 *   LSAN_OPTIONS=suppressions=tests/fuzz/lsan-hdf5.supp:print_suppressions=0 \
 *       /tmp/fuzz-hdf5 -max_total_time=300 -max_len=16384 -timeout=10 \
 *       -rss_limit_mb=4096 -malloc_limit_mb=1048576 /tmp/fuzz-hdf5-corpus
 *
 * (A fuzzed file may claim any size; the ASan options make such allocations fail — the
 * reader then says it is out of memory — instead of counting as a crash. libhdf5 1.10 leaks
 * on some error paths of a corrupt file: lsan-hdf5.supp leaves those out.)
 * Replay without clang (the meson test does this for the seed corpus):
 * build/tests/fuzz/fuzz-hdf5-replay FILE-OR-FOLDER…
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmfuse/host.h>

#include "../../plugins/datasets/hdf5.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_hdf5.c:%d: check failed: %s\n", __LINE__, #cond);        \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static char file[256];

static void remove_file(void)
{
    unlink(file);
}

/* One printable line that names the file (or the YAML place of `path`). */
static void check_message(const mf_error *err)
{
    CHECK(err->count == 1);
    CHECK(strncmp(err->msg, file, strlen(file)) == 0 ||
          strncmp(err->msg, "fuzz.yaml:", 10) == 0);
    for (const char *c = err->msg; *c; c++)
        CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
}

static void check_read(mf_dataset *ds, const mf_dataset_info *in)
{
    enum { MAX = 34 };
    int64_t idx[MAX], n = 0;
    for (int64_t i = 0; i < in->n_samples && i < 32; i++)
        idx[n++] = i;
    idx[n++] = in->n_samples - 1;
    idx[n++] = 0; /* a repeat */
    const int classes = in->label_kind == MF_LABELS_CLASSES;
    float *bufs[64] = {0}, *targets = NULL;
    int32_t labels[MAX];
    int ok = in->n_modalities <= 64 && (classes || in->target_dim <= 1 << 16);
    for (int m = 0; ok && m < in->n_modalities; m++) {
        int64_t numel = mf_shape_numel(&in->modalities[m].shape);
        ok = numel <= 1 << 20 && (bufs[m] = malloc((size_t)(n * numel) * sizeof(float)));
    }
    if (ok && !classes)
        ok = (targets = malloc((size_t)(n * in->target_dim) * sizeof(float))) != NULL;
    if (ok) { /* too big for a quick look otherwise */
        mf_batch_buffers out = {sizeof out, bufs, classes ? labels : NULL, targets};
        mf_error err;
        mf_error_clear(&err);
        if (mf_dataset_read(ds, n, idx, &out, &err) != 0) {
            check_message(&err);
        } else {
            for (int m = 0; m < in->n_modalities; m++)
                for (int64_t j = 0; j < n * mf_shape_numel(&in->modalities[m].shape); j++)
                    CHECK(isfinite(bufs[m][j]));
            for (int64_t i = 0; classes && i < n; i++)
                CHECK(labels[i] >= 0 && labels[i] < in->n_classes);
            for (int64_t j = 0; !classes && j < n * in->target_dim; j++)
                CHECK(isfinite(targets[j]));
        }
    }
    for (int m = 0; m < 64; m++)
        free(bufs[m]);
    free(targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file[0]) {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(file, sizeof file, "%s/fuzz-hdf5-%ld.h5", dir, (long)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(file, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);

    char yaml[512];
    snprintf(yaml, sizeof yaml, "path: '%s'\n", file);
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = mf_config_parse(yaml, strlen(yaml), "fuzz.yaml", &err);
    CHECK(cfg != NULL);
    CHECK(mf_config_check(cfg, hdf5_params, NULL, &err) == 0);
    mf_dataset *ds = mf_dataset_open(&hdf5_plugin, cfg, "/", &err);
    if (!ds) {
        check_message(&err);
    } else {
        const mf_dataset_info *in = mf_dataset_get_info(ds);
        CHECK(in->n_samples >= 1 && in->n_modalities >= 1);
        for (int m = 0; m < in->n_modalities; m++) {
            CHECK(in->modalities[m].name && *in->modalities[m].name);
            CHECK(mf_shape_numel(&in->modalities[m].shape) >= 1);
        }
        if (in->label_kind == MF_LABELS_CLASSES) {
            CHECK(in->n_classes >= 1);
            /* unnamed classes are capped (issue 13): below 65536 and max(1024, samples) */
            CHECK(in->class_names || (in->n_classes <= 65536 &&
                                      (in->n_classes <= 1024 || in->n_classes <= in->n_samples)));
            for (int k = 0; in->class_names && k < in->n_classes; k++)
                CHECK(in->class_names[k] != NULL);
        } else {
            CHECK(in->label_kind == MF_LABELS_TARGETS && in->target_dim >= 1);
        }
        for (int64_t i = 0; in->split && i < in->n_samples; i++)
            CHECK(in->split[i] <= MF_SPLIT_TEST);
        check_read(ds, in);
        mf_dataset_close(ds);
    }
    mf_config_free(cfg);
    return 0;
}
