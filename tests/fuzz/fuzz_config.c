/* fuzz_config.c — a libFuzzer target for the config layer (framework/config).
 *
 * Each input is used three ways:
 *  1. parsed as an experiment file (mf_config_parse); when that works: written and loaded
 *     back (must give the same tree), checked against a representative spec table (which
 *     fills defaults), given -o overrides, written and loaded back again (the same tree);
 *  2. saved as a file and loaded (mf_config_load: includes, ${env:…}); when that works,
 *     written and loaded back (the same tree);
 *  3. its first line used as an -o assignment on a small fixed tree, then written and
 *     loaded back (the same tree).
 * Any error must come with a message of printable lines. Anything else aborts.
 *
 * Build and run with clang's libFuzzer (Debian packages clang and libclang-rt-14-dev; the
 * runtime is /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a),
 * from the source root; the sources are compiled in, so the sanitizers see the config code:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Iframework/config \
 *       tests/fuzz/fuzz_config.c framework/config/config_*.c framework/core/base.c \
 *       framework/core/fileio.c framework/core/text.c $(pkg-config --cflags --libs yaml-0.1) -o /tmp/fuzz-config
 *   cp -r tests/fuzz/corpus /tmp/fuzz-corpus
 *   /tmp/fuzz-config -max_total_time=600 -max_len=2048 -timeout=10 \
 *       -dict=tests/fuzz/yaml.dict /tmp/fuzz-corpus
 *
 * New interesting inputs go to /tmp/fuzz-corpus; a crash is saved as crash-<sha1> in the
 * working directory. Replay inputs without clang (the meson test does this for the seed
 * corpus): build/tests/fuzz/fuzz-config-replay FILE-OR-FOLDER…
 * tests/fuzz/test-fuzz-config.sh does the clang build and a 20-second run (meson test
 * fuzz-config-libfuzzer; skipped without clang and the runtime).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[64];

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_config.c:%d: check failed: %s\n", __LINE__, #cond);      \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static const char *scratch_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

static void remove_scratch(void)
{
    unlink(scratch_path("input.yaml"));
    unlink(scratch_path("written.yaml"));
    rmdir(scratch);
}

/* A scratch folder in memory when there is one (writes are fsynced), and fixed variables. */
static void setup(void)
{
    if (scratch[0])
        return;
    const char *bases[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof *bases && !scratch[0]; i++) {
        if (!bases[i])
            continue;
        snprintf(scratch, sizeof scratch, "%s/mmfuse-fuzz-XXXXXX", bases[i]);
        if (!mkdtemp(scratch))
            scratch[0] = '\0';
    }
    CHECK(scratch[0]);
    atexit(remove_scratch);
    setenv("MF_FUZZ_NUMBER", "3e-4", 1);
    setenv("MF_FUZZ_EMPTY", "", 1);
    setenv("MF_FUZZ_TEXT", " two words ", 1);
    setenv("MF_FUZZ_YAML", "[1, {a: b}] # not a comment", 1);
    setenv("MF_FUZZ_DOLLAR", "${env:MF_FUZZ_NUMBER} $${", 1);
    setenv("MF_FUZZ_LINES", "a\nb", 1);
    unsetenv("MF_FUZZ_UNSET");
}

/* An error must say something, in lines of printable text. */
static void check_message(const mf_error *err)
{
    CHECK(err->count > 0 && err->msg[0]);
    for (const unsigned char *p = (const unsigned char *)err->msg; *p; p++)
        CHECK((*p >= 0x20 && *p != 0x7F && !(p[0] == 0xC2 && p[1] >= 0x80 && p[1] < 0xA0)) ||
              *p == '\n');
}

/* What a scalar means to the typed readers: quoted text is a string; plain text may be
 * null, a boolean, an integer or a number. Two scalars are the same when their text is
 * and they mean the same kind of thing. */
static int plain_is_string(const mf_config *n)
{
    mfi_config_value v;
    return !mfi_config_is_null(n) && mfi_config_read_scalar(n, MF_TYPE_INT, NULL, &v, NULL) &&
           mfi_config_read_scalar(n, MF_TYPE_FLOAT, NULL, &v, NULL) &&
           mfi_config_read_scalar(n, MF_TYPE_BOOL, NULL, &v, NULL);
}

static void check_same(const mf_config *a, const mf_config *b)
{
    CHECK(a->kind == b->kind);
    CHECK(strcmp(a->path, b->path) == 0);
    CHECK(a->length == b->length);
    if (a->kind == MF_CONFIG_SCALAR) {
        CHECK(strcmp(a->text, b->text) == 0);
        CHECK(mfi_config_is_quoted(a) == mfi_config_is_quoted(b) ||
              plain_is_string(mfi_config_is_quoted(a) ? b : a));
    }
    for (int i = 0; i < a->length; i++) {
        CHECK((a->entries[i].key == NULL) == (b->entries[i].key == NULL));
        CHECK(!a->entries[i].key || strcmp(a->entries[i].key, b->entries[i].key) == 0);
        check_same(a->entries[i].value, b->entries[i].value);
    }
}

/* Written and loaded again, a tree is the same (its "include" key, which loading would
 * follow, is left out when present). */
static void check_round_trip(const mf_config *root)
{
    if (mfi_config_find(root, "include", 7) >= 0)
        return;
    mf_error err;
    mf_error_clear(&err);
    const char *path = scratch_path("written.yaml");
    if (mf_config_write(root, path, &err) != 0) {
        check_message(&err);
        return; /* e.g. a full disk; not a bug of the tree */
    }
    mf_config *again = mf_config_load(path, &err);
    if (!again)
        fprintf(stderr, "reloading the written tree failed: %s\n", err.msg);
    CHECK(again != NULL);
    check_same(root, again);
    mf_config_free(again);
}

/* ---------------------------------------------------------------- 1: parse, check, override */
static const mf_param_spec top_specs[] = {
    {"name", MF_TYPE_STRING, "experiment", 0, 0, 0, NULL, NULL},
    {"seed", MF_TYPE_INT, "0", MF_PARAM_MIN, 0, 0, NULL, NULL},
    {"data", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"model", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"optim", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, NULL},
    {"train", MF_TYPE_MAP, "{}", 0, 0, 0, NULL, NULL},
    MF_PARAM_END,
};
static const mf_param_spec data_specs[] = {
    {"reader", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL, NULL},
    {"batch_size", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 20, NULL, NULL},
    {"split", MF_TYPE_FLOAT_LIST, "[0.7, 0.15, 0.15]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     NULL},
    {"standardize", MF_TYPE_BOOL, "true", 0, 0, 0, NULL, NULL},
    MF_PARAM_END,
};
static const mf_param_spec model_specs[] = {
    {"encoders", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"fusion", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"head", MF_TYPE_MAP, "{type: mlp, hidden: [64]}", 0, 0, 0, NULL, NULL},
    MF_PARAM_END,
};
static const mf_param_spec encoder_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, NULL},
    {"hidden", MF_TYPE_INT_LIST, "[]", MF_PARAM_MIN, 1, 0, NULL, NULL},
    {"activation", MF_TYPE_ENUM, "relu", 0, 0, 0, "relu|tanh|sigmoid", NULL},
    {"dropout", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.95, NULL, NULL},
    MF_PARAM_END,
};
static const mf_param_spec optim_specs[] = {
    {"type", MF_TYPE_ENUM, "adam", 0, 0, 0, "adam|adamw|sgd", NULL},
    {"lr", MF_TYPE_FLOAT, "1.0e-3", MF_PARAM_MIN, 0, 0, NULL, NULL},
    {"betas", MF_TYPE_FLOAT_LIST, "[0.9, 0.999]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 0.999999, NULL,
     NULL},
    MF_PARAM_END,
};
static const mf_param_spec train_specs[] = {
    {"epochs", MF_TYPE_INT, "10", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1000000, NULL, NULL},
    MF_PARAM_END,
};

/* Check a section the way the host does; problems are fine, crashes are not. */
static void check_section(mf_config *root, const char *key, const mf_param_spec *specs,
                          const char *const *extra, mf_error *err)
{
    mf_config *n = key ? (mf_config *)mf_config_get(root, key) : root;
    if (!n || n->kind != MF_CONFIG_MAP)
        return;
    if (mf_config_check(n, specs, extra, err) > 0)
        check_message(err);
    mf_error_clear(err);
}

static void parse_check_override(const uint8_t *data, size_t size)
{
    mf_error err;
    mf_error_clear(&err);
    mf_config *root = mf_config_parse((const char *)data, size, "fuzz.yaml", &err);
    if (!root) {
        check_message(&err);
        return;
    }
    CHECK(err.count == 0);
    check_round_trip(root);

    static const char *const data_extra[] = {"samples", "names", NULL};
    check_section(root, NULL, top_specs, NULL, &err);
    check_section(root, "data", data_specs, data_extra, &err);
    check_section(root, "model", model_specs, NULL, &err);
    check_section(root, "optim", optim_specs, NULL, &err);
    check_section(root, "train", train_specs, NULL, &err);
    mf_config *encoders = (mf_config *)mf_config_get(root, "model.encoders");
    for (int i = 0; encoders && encoders->kind == MF_CONFIG_MAP && i < encoders->length; i++)
        if (encoders->entries[i].value->kind == MF_CONFIG_MAP)
            check_section(encoders->entries[i].value, NULL, encoder_specs, NULL, &err);

    /* the getters on whatever is there */
    int64_t ints[4];
    double floats[4];
    int n = 0, b = 0;
    const char *s = NULL;
    mf_config_int(root, "seed", ints, &err);
    mf_config_float(root, "optim.lr", floats, &err);
    mf_config_bool(root, "data.standardize", &b, &err);
    mf_config_string(root, "name", &s, &err);
    mf_config_enum(root, "optim.type", "adam|adamw|sgd", &n, &err);
    mf_config_int_list(root, "data.dims", ints, 4, &n, &err);
    mf_config_float_list(root, "data.split", floats, 4, &n, &err);

    static const char *const overrides[] = {
        "optim.lr=3e-4", "model.encoders.new={type: mlp, hidden: [1, 2]}", "seed=",
        "train.tags=[a, 'b c', \"${x}\", '']", "data.reader=\"$${env:X}\"", "x.y.z=~",
    };
    for (size_t i = 0; i < sizeof overrides / sizeof *overrides; i++) {
        mf_error_clear(&err);
        if (mf_config_override(root, overrides[i], &err) != 0)
            check_message(&err); /* e.g. "seed.x=1" when seed is a scalar */
    }
    /* one override on a key of the input */
    if (root->length > 0) {
        char assignment[512];
        snprintf(assignment, sizeof assignment, "%s.fuzz=[1, 2]", root->entries[0].key);
        mf_error_clear(&err);
        if (mf_config_override(root, assignment, &err) != 0)
            check_message(&err);
    }
    check_round_trip(root);
    mf_config_free(root);
}

/* ---------------------------------------------------------------- 2: load from a file */
static void load_file(const uint8_t *data, size_t size)
{
    const char *path = scratch_path("input.yaml");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size || size == 0);
    CHECK(fclose(f) == 0);
    mf_error err;
    mf_error_clear(&err);
    mf_config *root = mf_config_load(path, &err);
    if (!root) {
        check_message(&err);
        return;
    }
    CHECK(mfi_config_find(root, "include", 7) < 0);
    check_round_trip(root);
    mf_config_free(root);
}

/* ---------------------------------------------------------------- 3: an override */
static void override_line(const uint8_t *data, size_t size)
{
    size_t len = 0;
    while (len < size && len < 1024 && data[len] != '\n' && data[len] != '\0')
        len++;
    char *assignment = malloc(len + 1);
    CHECK(assignment != NULL);
    memcpy(assignment, data, len);
    assignment[len] = '\0';
    static const char base[] = "seed: 1\nmodel:\n  encoders: {a: {type: mlp}}\n  fusion:\n";
    mf_error err;
    mf_error_clear(&err);
    mf_config *root = mf_config_parse(base, sizeof base - 1, "base.yaml", &err);
    CHECK(root != NULL);
    if (mf_config_override(root, assignment, &err) == 0)
        check_round_trip(root);
    else
        check_message(&err);
    mf_config_free(root);
    free(assignment);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    parse_check_override(data, size);
    load_file(data, size);
    override_line(data, size);
    return 0;
}
