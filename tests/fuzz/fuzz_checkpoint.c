/* fuzz_checkpoint.c — a libFuzzer target for checkpoint loading (framework/train/
 * checkpoint_read.c, checkpoint_manifest.c).
 *
 * Once per process a small experiment is prepared as `mmfuse run` prepares one (the synthetic
 * reader, two standardised inputs, mlp encoders, concat, an mlp head, adam), so its
 * parameters, optimiser and standardisation exist. Each input is written as a file and
 * loaded into it twice: as the run's own checkpoint (mfi_checkpoint_load with parameters,
 * training state, standardisation and the same-run plugin check: resume) and for
 * fine-tuning (mfi_checkpoint_init_from: --init-from). The checks: nothing crashes; a
 * refusal is exactly one line of printable text naming the file; a load that succeeds leaves
 * finite parameters, a finite standardisation and a position that makes sense.
 *
 * The framework's sources are compiled in (its mfi_ symbols are hidden in libmmfuse) and the
 * executable exports them, so the built-in plugins (which link libmmfuse) call this copy.
 * Build and run with clang's libFuzzer from the source root, after `meson setup build-fuzz
 * && ninja -C build-fuzz` (for the plugins and the build's config.h):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_GNU_SOURCE -fopenmp \
 *       -Iinclude -Ibuild-fuzz -Iframework -Iframework/config \
 *       tests/fuzz/fuzz_checkpoint.c -rdynamic $(find framework/core framework/config \
 *       framework/plugin framework/data framework/train -name '*.c') \
 *       $(pkg-config --cflags --libs hdf5 yaml-0.1 jansson openblas nettle) -lltdl -ldl -lm \
 *       -lpthread -Lbuild-fuzz/framework -Wl,--no-as-needed -lmmfuse \
 *       -Wl,-rpath,$PWD/build-fuzz/framework -o /tmp/fuzz-checkpoint
 *
 * (libmmfuse is linked only so that it is loaded at start-up: loaded later, by the first
 * plugin, its thread-local storage no longer fits — "cannot allocate memory in static TLS
 * block" — and every plugin fails to load. The executable's own copy of each mf_ function
 * is the one everything calls.)
 *   cp -r tests/fuzz/corpus-checkpoint /tmp/fuzz-checkpoint-corpus
 *   MMFUSE_PLUGIN_PATH=$PWD/build-fuzz/plugins TMPDIR=/dev/shm OPENBLAS_NUM_THREADS=1 \
 *   MMFUSE_THREADS=1 ASAN_OPTIONS=detect_leaks=0 /tmp/fuzz-checkpoint -max_total_time=1800 \
 *       -max_len=65536 -timeout=20 -rss_limit_mb=4096 /tmp/fuzz-checkpoint-corpus
 *
 * (pkg-config names vary: hdf5-serial on Debian.) Replay inputs without clang:
 * build/tests/fuzz/fuzz-checkpoint-replay FILE-OR-FOLDER… (the meson test
 * fuzz-checkpoint-replay replays corpus-checkpoint).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/experiment_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_checkpoint.c:%d: check failed: %s\n", __LINE__, #cond);  \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static char scratch[64];
static char input_path[128], yaml_path[128];
static experiment ex;
static float *initial, *initial_m0, *initial_m1; /* the prepared model's state */
static int64_t numel;

static const char experiment_yaml[] =
    "name: fuzz-checkpoint\n"
    "seed: 1\n"
    "data: {reader: synthetic, samples: 40, classes: 3, names: [a, b], dims: [3, 2],\n"
    "       batch_size: 8, standardize: true}\n"
    "model:\n"
    "  encoders: {a: {type: mlp, hidden: [], out: 3}, b: {type: mlp, hidden: [], out: 2}}\n"
    "  fusion: {type: concat}\n"
    "  head: {type: mlp, hidden: []}\n"
    "loss: {type: cross_entropy}\n"
    "optim: {type: adam, lr: 0.01}\n"
    "train: {epochs: 1}\n";

static void remove_scratch(void)
{
    unlink(input_path);
    unlink(yaml_path);
    rmdir(scratch);
}

static float *copy_of(const float *v)
{
    float *c = malloc((size_t)numel * sizeof *c);
    CHECK(c != NULL);
    memcpy(c, v, (size_t)numel * sizeof *c);
    return c;
}

/* The scratch folder (in memory when there is one) and the experiment, once. */
static void setup(void)
{
    if (scratch[0])
        return;
    const char *bases[] = {getenv("TMPDIR"), "/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof *bases && !scratch[0]; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        snprintf(scratch, sizeof scratch, "%s/mmfuse-fuzz-XXXXXX", bases[i]);
        if (!mkdtemp(scratch))
            scratch[0] = '\0';
    }
    CHECK(scratch[0]);
    snprintf(input_path, sizeof input_path, "%s/input.h5", scratch);
    snprintf(yaml_path, sizeof yaml_path, "%s/experiment.yaml", scratch);
    atexit(remove_scratch);
    FILE *f = fopen(yaml_path, "w");
    CHECK(f && fputs(experiment_yaml, f) >= 0 && fclose(f) == 0);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    setenv("MMFUSE_THREADS", "1", 0);

    ex.path = yaml_path;
    ex.base_dir = strdup(scratch);
    ex.log = fopen("/dev/null", "w");
    ex.quiet = 0; /* init-from's report is printed (to /dev/null) */
    CHECK(ex.base_dir && ex.log);
    mf_run_options ro = {.struct_size = sizeof ro, .quiet = 1, .no_save = 1, .log = ex.log};
    mf_error err;
    mf_error_clear(&err);
    if (mfi_experiment_prepare(&ex, &ro, &err)) {
        fprintf(stderr, "fuzz_checkpoint: the experiment does not prepare (are the built-in "
                "plugins on MMFUSE_PLUGIN_PATH?): %s\n", err.msg);
        abort();
    }
    numel = mf_params_numel(ex.params);
    initial = copy_of(mf_params_values(ex.params));
    initial_m0 = copy_of(mf_params_moment(ex.params, 0));
    initial_m1 = copy_of(mf_params_moment(ex.params, 1));
}

/* Each input starts from the prepared state. */
static void restore(void)
{
    memcpy(mf_params_values(ex.params), initial, (size_t)numel * sizeof *initial);
    memcpy(mf_params_moment(ex.params, 0), initial_m0, (size_t)numel * sizeof *initial);
    memcpy(mf_params_moment(ex.params, 1), initial_m1, (size_t)numel * sizeof *initial);
}

/* MMFUSE_FUZZ_VERBOSE set: what each load did, on stderr (to see which seeds go deep). */
static void say(const char *what, int rc, const mf_error *err)
{
    if (getenv("MMFUSE_FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", what, rc == 0 ? "loaded" : err->msg);
}

/* A refusal: one line of printable text (UTF-8 allowed, no C0/C1 controls) naming the file.
 * The message begins with the file's name (ASCII), so p[-1] exists for any byte ≥ 0x80. */
static void check_refusal(const mf_error *err)
{
    if (!(err->count == 1 && err->msg[0] && strstr(err->msg, input_path)))
        fprintf(stderr, "bad refusal (%d messages): %s\n", err->count, err->msg);
    CHECK(err->count == 1 && err->msg[0]);
    CHECK(strstr(err->msg, input_path) != NULL);
    for (const unsigned char *p = (const unsigned char *)err->msg; *p; p++) {
        CHECK(*p >= 0x20 && *p != 0x7F && !(p[0] == 0xC2 && p[1] >= 0x80 && p[1] < 0xA0));
        if (*p >= 0x80) /* a stray continuation byte: the end of a character half replaced */
            CHECK((*p & 0xC0) != 0x80 || (p[-1] & 0x80));
    }
}

static void check_finite(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        CHECK(isfinite(v[i]));
}

static void check_loaded(const mfi_train_position *pos)
{
    check_finite(mf_params_values(ex.params), numel);
    check_finite(mf_params_moment(ex.params, 0), numel);
    check_finite(mf_params_moment(ex.params, 1), numel);
    for (int m = 0; m < ex.n_mod; m++) {
        const mfi_input *in = &ex.input[m];
        if (in->standardize) {
            check_finite(in->mean, mf_shape_numel(&in->shape));
            check_finite(in->inv_std, mf_shape_numel(&in->shape));
        }
    }
    CHECK(pos->step >= 0 && pos->epoch >= 0 && pos->batch >= 0 && pos->forwards >= 0);
    CHECK(pos->evaluations >= 0 && (pos->finished == 0 || pos->finished == 1));
    CHECK(pos->n_kept >= 0 && pos->n_kept <= MFI_MAX_KEPT);
    CHECK(ex.optim.step >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    FILE *f = fopen(input_path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size || size == 0);
    CHECK(fclose(f) == 0);

    mf_error err;
    restore();
    mf_error_clear(&err);
    mfi_train_position pos;
    memset(&pos, 0, sizeof pos);
    if (mfi_checkpoint_load(&ex, input_path,
                            MFI_CKPT_PARAMS | MFI_CKPT_TRAINING | MFI_CKPT_STANDARDIZATION |
                                MFI_CKPT_SAME_RUN,
                            NULL, &pos, &err) == 0) {
        say("resume", 0, &err);
        CHECK(err.count == 0);
        check_loaded(&pos);
    } else {
        say("resume", -1, &err);
        check_refusal(&err);
    }

    restore();
    mf_error_clear(&err);
    if (mfi_checkpoint_init_from(&ex, input_path, &err) == 0) {
        say("init-from", 0, &err);
        CHECK(err.count == 0);
        check_finite(mf_params_values(ex.params), numel);
    } else {
        say("init-from", -1, &err);
        check_refusal(&err);
    }
    return 0;
}
