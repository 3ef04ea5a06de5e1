/* fuzz_csv.c — a libFuzzer target for `mmfuse import csv` (framework/data/import_csv*.c,
 * compiled in so the sanitizers see it; the hdf5 reader, plugins/datasets/hdf5.c, too).
 *
 * An input is a CSV file, optionally led by one line of import options:
 *   #! --modality a=1-4:2x2 --label y --split rows:1-3=train,4=test --no-header
 * (options are split at spaces; --modality, --label, --target, --split, --attr take the next
 * word; --no-header and --classes-from-label stand alone). Without that line it is imported
 * twice: `--modality m=1 --label 2` and `--no-header --modality m=1-2:1x2 --target 3`.
 * The import must return OK, BAD_INPUT or FAILED; a refusal must be one printable line and
 * leave no output and no temporary behind; an import that succeeds must give a file the
 * hdf5 reader opens (or refuses in one line) and reads, with finite values and labels within
 * the classes. Anything else aborts.
 *
 * Build and run with clang's libFuzzer (Debian: clang, libclang-rt-14-dev) from the source
 * root, after `ninja -C build` (libmmfuse provides the rest):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Iframework/data \
 *       $(pkg-config --cflags hdf5) tests/fuzz/fuzz_csv.c framework/data/import_csv*.c \
 *       -Lbuild/framework -Wl,-rpath,$PWD/build/framework -lmmfuse \
 *       $(pkg-config --libs hdf5) -lm -o /tmp/fuzz-csv
 *   rm -rf /tmp/fuzz-csv-corpus && cp -r tests/fuzz/corpus-csv /tmp/fuzz-csv-corpus
 *   TMPDIR=/dev/shm ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024 \
 *       /tmp/fuzz-csv -max_total_time=1800 -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
 *       -dict=tests/fuzz/csv.dict /tmp/fuzz-csv-corpus
 *
 * (TMPDIR on a tmpfs: every import fsyncs its output.) Replay without clang (the meson test
 * does this for the seed corpus): build/tests/fuzz/fuzz-csv-replay FILE-OR-FOLDER…
 */
#include <dirent.h>
#include <math.h>
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
            fprintf(stderr, "fuzz_csv.c:%d: check failed: %s\n", __LINE__, #cond);         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static char scratch[256], csv[300], out[300];

static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", scratch, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(scratch);
}

/* Only in.csv may be in the scratch folder after a refused import. */
static void check_nothing_left(void)
{
    DIR *d = opendir(scratch);
    struct dirent *e;
    CHECK(d != NULL);
    while ((e = readdir(d)))
        CHECK(e->d_name[0] == '.' || strcmp(e->d_name, "in.csv") == 0);
    closedir(d);
}

/* One line of printable text (UTF-8 bytes allowed). */
static void check_message(const mf_error *err)
{
    CHECK(err->count == 1 && err->msg[0]);
    for (const char *c = err->msg; *c; c++)
        CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
}

static void check_read(mf_dataset *ds, const mf_dataset_info *in)
{
    enum { MAX = 16 };
    int64_t idx[MAX], n = 0;
    for (int64_t i = 0; i < in->n_samples && n < MAX - 1; i++)
        idx[n++] = i;
    idx[n++] = in->n_samples - 1;
    const int classes = in->label_kind == MF_LABELS_CLASSES;
    float *bufs[64] = {0}, *targets = NULL;
    int32_t labels[MAX];
    int ok = in->n_modalities <= 64;
    for (int m = 0; ok && m < in->n_modalities; m++) {
        int64_t numel = mf_shape_numel(&in->modalities[m].shape);
        CHECK(numel >= 1);
        ok = numel <= 1 << 16 && (bufs[m] = malloc((size_t)(n * numel) * sizeof(float)));
    }
    if (ok && !classes)
        ok = (targets = malloc((size_t)(n * in->target_dim) * sizeof(float))) != NULL;
    if (ok) {
        mf_batch_buffers b = {sizeof b, bufs, classes ? labels : NULL, targets};
        mf_error err;
        mf_error_clear(&err);
        CHECK(mf_dataset_read(ds, n, idx, &b, &err) == 0); /* a file just written reads */
        for (int m = 0; m < in->n_modalities; m++)
            for (int64_t j = 0; j < n * mf_shape_numel(&in->modalities[m].shape); j++)
                CHECK(isfinite(bufs[m][j]));
        for (int64_t i = 0; classes && i < n; i++)
            CHECK(labels[i] >= 0 && labels[i] < in->n_classes);
    }
    for (int m = 0; m < 64; m++)
        free(bufs[m]);
    free(targets);
}

/* The output of a successful import, through the hdf5 reader. */
static void check_output(void)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "path: '%s'\n", out);
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = mf_config_parse(yaml, strlen(yaml), "fuzz.yaml", &err);
    CHECK(cfg && mf_config_check(cfg, hdf5_params, NULL, &err) == 0);
    mf_dataset *ds = mf_dataset_open(&hdf5_plugin, cfg, "/", &err);
    if (!ds) { /* what the reader refuses of what import takes (a class count) */
        check_message(&err);
    } else {
        const mf_dataset_info *in = mf_dataset_get_info(ds);
        CHECK(in->n_samples >= 1 && in->n_modalities >= 1);
        check_read(ds, in);
        mf_dataset_close(ds);
    }
    mf_config_free(cfg);
    unlink(out);
}

static void run(mf_csv_import *o)
{
    mf_error err;
    mf_error_clear(&err);
    o->struct_size = sizeof *o;
    o->csv = csv;
    o->out = out;
    int status = mf_import_csv(o, &err);
    CHECK(status == MF_EXIT_OK || status == MF_EXIT_BAD_INPUT || status == MF_EXIT_FAILED);
    if (status == MF_EXIT_OK) {
        CHECK(access(out, R_OK) == 0);
        check_output();
    } else {
        check_message(&err);
    }
    check_nothing_left();
}

/* "#! --modality …" → options; the words point into `line`, which the caller keeps. */
static void parse_options(char *line, mf_csv_import *o, const char **mods, const char **attrs)
{
    char *save = NULL;
    for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strcmp(w, "--no-header") == 0) {
            o->no_header = 1;
        } else if (strcmp(w, "--classes-from-label") == 0) {
            o->classes_from_label = 1;
        } else {
            char *v = strtok_r(NULL, " ", &save);
            if (!v)
                return;
            if (strcmp(w, "--modality") == 0 && o->n_modalities < 8)
                mods[o->n_modalities++] = v;
            else if (strcmp(w, "--attr") == 0 && o->n_attrs < 8)
                attrs[o->n_attrs++] = v;
            else if (strcmp(w, "--label") == 0)
                o->label = v;
            else if (strcmp(w, "--target") == 0)
                o->target = v;
            else if (strcmp(w, "--split") == 0)
                o->split = v;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0]) {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(scratch, sizeof scratch, "%s/mmfuse-fuzz-csv-XXXXXX", dir);
        if (!mkdtemp(scratch)) { /* a TMPDIR that is not there (/dev/shm elsewhere) */
            snprintf(scratch, sizeof scratch, "/tmp/mmfuse-fuzz-csv-XXXXXX");
            CHECK(mkdtemp(scratch) != NULL);
        }
        snprintf(csv, sizeof csv, "%s/in.csv", scratch);
        snprintf(out, sizeof out, "%s/out.h5", scratch);
        atexit(remove_scratch);
    }
    size_t skip = 0;
    char *line = NULL;
    if (size >= 2 && data[0] == '#' && data[1] == '!') {
        const uint8_t *nl = memchr(data, '\n', size);
        skip = nl ? (size_t)(nl - data) + 1 : size;
        line = malloc(skip);
        CHECK(line != NULL);
        memcpy(line, data + 2, skip - 2);
        line[skip - 2] = '\0';
        for (char *c = line; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t')
                *c = ' ';
    }
    FILE *f = fopen(csv, "wb");
    CHECK(f && fwrite(data + skip, 1, size - skip, f) == size - skip && fclose(f) == 0);
    const char *mods[8], *attrs[8];
    if (line) {
        mf_csv_import o = {.modalities = mods, .attrs = attrs};
        parse_options(line, &o, mods, attrs);
        run(&o);
        free(line);
    } else {
        const char *one[] = {"m=1"}, *two[] = {"m=1-2:1x2"};
        mf_csv_import a = {.n_modalities = 1, .modalities = one, .label = "2"};
        run(&a);
        mf_csv_import b = {.n_modalities = 1, .modalities = two, .target = "3",
                           .no_header = 1};
        run(&b);
    }
    unlink(csv);
    return 0;
}
