/* Config tests: parsing with marks and key paths, every parse error, checking against
 * declared parameters (unknown keys, missing keys, types, ranges, enums, defaults), typed
 * getters, -o overrides, "did you mean", and write → reload round trips.
 * Error messages are asserted word for word: they are the user interface. */
#include "mf_check.h"
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mmfuse/mmfuse.h>

/* ---------------------------------------------------------------- helpers */
static mf_error err;

static const char *fixture(const char *name)
{
    static char path[4096];
    const char *root = getenv("MMFUSE_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "MMFUSE_SOURCE_ROOT is not set");
    snprintf(path, sizeof path, "%s/tests/fixtures/config/%s", root, name);
    return path;
}

/* A fresh scratch path ("/tmp/mmfuse-config-XXXXXX/name"); scratch_done removes the
 * (by then empty) directory. */
static char scratch_dir[64];

static const char *scratch(const char *name)
{
    static char path[128];
    char *dir = scratch_dir;
    if (!dir[0]) {
        snprintf(dir, sizeof scratch_dir, "/tmp/mmfuse-config-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void scratch_done(void)
{
    ck_assert_int_eq(rmdir(scratch_dir), 0);
    scratch_dir[0] = '\0';
}

static mf_config *parse(const char *text)
{
    mf_error_clear(&err);
    return mf_config_parse(text, strlen(text), "q.yaml", &err);
}

static mf_config *parse_ok(const char *text)
{
    mf_config *root = parse(text);
    ck_assert_msg(root != NULL, "parse failed: %s", err.msg);
    ck_assert_int_eq(err.count, 0);
    return root;
}

static void assert_parse_error(const char *text, const char *expected)
{
    mf_config *root = parse(text);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(err.msg, expected);
    ck_assert_int_eq(err.count, 1);
}

static void assert_load_error(const char *path, const char *expected)
{
    mf_error_clear(&err);
    ck_assert_ptr_null(mf_config_load(path, &err));
    ck_assert_str_eq(err.msg, expected);
}

static void write_file(const char *path, const char *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Run mf_config_check and compare the whole report. */
static void assert_check(mf_config *map, const mf_param_spec *specs, const char *const *extra,
                         int problems, const char *expected)
{
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_check(map, specs, extra, &err), problems);
    ck_assert_str_eq(err.msg, expected);
}

static void assert_override_error(mf_config *root, const char *assignment, const char *expected)
{
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_override(root, assignment, &err), -1);
    ck_assert_str_eq(err.msg, expected);
}

static void override_ok(mf_config *root, const char *assignment)
{
    mf_error_clear(&err);
    ck_assert_msg(mf_config_override(root, assignment, &err) == 0, "%s", err.msg);
}

/* Same shape, keys and scalar text everywhere. */
static void assert_same_tree(const mf_config *a, const mf_config *b)
{
    ck_assert_msg(mf_config_node_kind(a) == mf_config_node_kind(b), "kind differs at '%s'",
                  mf_config_path(a));
    ck_assert_str_eq(mf_config_path(a), mf_config_path(b));
    if (mf_config_node_kind(a) == MF_CONFIG_SCALAR) {
        ck_assert_str_eq(mf_config_scalar(a), mf_config_scalar(b));
        return;
    }
    ck_assert_int_eq(mf_config_length(a), mf_config_length(b));
    for (int i = 0; i < mf_config_length(a); i++) {
        if (mf_config_node_kind(a) == MF_CONFIG_MAP)
            ck_assert_str_eq(mf_config_key_at(a, i), mf_config_key_at(b, i));
        assert_same_tree(mf_config_at(a, i), mf_config_at(b, i));
    }
}

/* ---------------------------------------------------------------- parsing */
START_TEST(test_marks_and_paths)
{
    mf_error_clear(&err);
    mf_config *root = mf_config_load(fixture("experiment.yaml"), &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    ck_assert_int_eq(mf_config_node_kind(root), MF_CONFIG_MAP);
    ck_assert_str_eq(mf_config_path(root), "");
    ck_assert_int_eq(mf_config_length(root), 4);
    ck_assert_str_eq(mf_config_key_at(root, 2), "optim");

    const mf_config *hidden = mf_config_get(root, "model.encoders.nir.hidden");
    ck_assert_ptr_nonnull(hidden);
    ck_assert_int_eq(mf_config_node_kind(hidden), MF_CONFIG_LIST);
    ck_assert_str_eq(mf_config_path(hidden), "model.encoders.nir.hidden");
    ck_assert_str_eq(mf_config_file(hidden), fixture("experiment.yaml"));
    ck_assert_int_eq(mf_config_line(hidden), 7);
    ck_assert_int_eq(mf_config_column(hidden), 15);
    const mf_config *second = mf_config_at(hidden, 1);
    ck_assert_str_eq(mf_config_path(second), "model.encoders.nir.hidden[1]");
    ck_assert_str_eq(mf_config_scalar(second), "64");
    ck_assert_int_eq(mf_config_line(second), 7);
    ck_assert_int_eq(mf_config_column(second), 21);

    const mf_config *channels = mf_config_get(root, "model.encoders.rgb.channels");
    ck_assert_int_eq(mf_config_line(channels), 13);
    ck_assert_int_eq(mf_config_column(channels), 9);
    ck_assert_int_eq(mf_config_line(mf_config_at(channels, 1)), 14);
    ck_assert_int_eq(mf_config_column(mf_config_at(channels, 1)), 11);

    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "train.note")), "it's fine");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "train.empty")), "");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "train.long")),
                     "first line\nsecond line\n");
    ck_assert_ptr_null(mf_config_scalar(hidden));
    ck_assert_ptr_null(mf_config_get(root, "model.encoders.nope"));
    ck_assert_ptr_null(mf_config_get(root, "seed.x"));
    ck_assert(mf_config_has(root, "optim.lr"));
    ck_assert(!mf_config_has(root, "optim.lr.x"));
    mf_config_free(root);
}
END_TEST

START_TEST(test_parse_errors)
{
    mf_error_clear(&err);
    ck_assert_ptr_null(mf_config_load(fixture("tabs.yaml"), &err));
    char expected[4200];
    snprintf(expected, sizeof expected,
             "%s:3:1: found a tab character where indentation was expected — YAML indents with "
             "spaces",
             fixture("tabs.yaml"));
    ck_assert_str_eq(err.msg, expected);

    assert_parse_error("a: 1\nmodel:\n  hidden: [64, 64\n  b: 2\n",
                       "q.yaml:4:4: unclosed '[' (opened at line 3, column 11): expected ',' or ']'");
    assert_parse_error("fusion: {type: sum\n",
                       "q.yaml:2:1: unclosed '{' (opened at line 1, column 9): expected ',' or '}'");
    assert_parse_error("seed: 1\nmodel:\n  type: a\n  width: 3\n  type: b\n",
                       "q.yaml:5:3: model: duplicate key 'type' (first defined at line 3)");
    assert_parse_error("seed: 1\nseed: 2\n", "q.yaml:2:1: duplicate key 'seed' (first defined at line 1)");
    assert_parse_error("", "q.yaml: the file is empty");
    assert_parse_error("# only a comment\n\n", "q.yaml: the file is empty");
    assert_parse_error("---\n", "q.yaml: the file is empty");
    assert_parse_error("- a\n- b\n", "q.yaml: an experiment file must be a map of sections, got a list");
    assert_parse_error("hello\n", "q.yaml: an experiment file must be a map of sections, got 'hello'");
    assert_parse_error("a: 1\n---\nb: 2\n",
                       "q.yaml:2:1: a second YAML document ('---'); an experiment file holds exactly one");
    assert_parse_error("model:\n  [a, b]: 1\n",
                       "q.yaml:2:3: model: a key must be a plain word or quoted text, got a list");
    assert_parse_error("a: b: c\n",
                       "q.yaml:1:5: unexpected ':' — put a value that contains ': ' in quotes, or "
                       "check the indentation");
    assert_parse_error("a:\n  b: 1\n c: 2\n",
                       "q.yaml:3:2: bad indentation: expected a key lined up with the map that "
                       "starts at line 1, column 1");
    assert_parse_error("a: 1\nb\nc: 2\n", "q.yaml:2:1: this key has no ':' after it (write 'key: value')");
    assert_parse_error("a: \"abc\n", "q.yaml:1:4: unclosed quote: the string that starts here never ends");
    assert_parse_error("a: @x\n", "q.yaml:1:4: '@' cannot start a value — put the value in quotes");
    assert_parse_error("a: \"\\q\"\n",
                       "q.yaml:1:5: unknown escape in a double-quoted string (write '\\\\' for a "
                       "backslash, or use single quotes)");
    assert_parse_error("a: !!int 3\n", "q.yaml:1:4: the tag '!!int' is not supported; write the value without it");
    assert_parse_error("a.b: 1\n", "q.yaml:1:1: key 'a.b' contains '.', which key paths (a.b[1]=…) reserve");
    /* issue 13: a colon without its space, said (a:{…} reads as the key "a:{x.y") */
    assert_parse_error("sweep:\n  cases:\n    a:{x.y: 1}\n",
                       "q.yaml:3:5: sweep.cases: key 'a:{x.y' contains '.', which key paths "
                       "(a.b[1]=…) reserve (YAML starts a value only after a colon and a space: "
                       "write 'a: {x.y')");
    assert_parse_error("a: &x 1\nb: *y\n", "q.yaml:2:4: undefined alias '*y' (define it first with '&y')");
    assert_parse_error("a: &x [1, *x]\n", "q.yaml:1:11: alias '*x' refers to a value that contains it");
    assert_parse_error("base: &b {x: 1}\nrun:\n  <<: *b\n",
                       "q.yaml:3:3: run: merge keys ('<<: *name') are not supported; write the keys out");

    assert_parse_error("a: [1, 2]]\n", "q.yaml:1:10: unexpected ']' without a matching '['");
    assert_parse_error("optim: {lr: ${env:LR,1e-3}}\n",
                       "q.yaml:1:14: a ${…} cannot be written plainly inside [ ] or { }: write the "
                       "list or map in block style (one 'key: value' or '- item' per line), or "
                       "quote it (then it is a string)");
    assert_parse_error("a: \"x\" y\n",
                       "q.yaml:1:8: unexpected text after the value (to keep it, quote the whole value)");
    /* binary junk and bad UTF-8: a clean message with the position of the first bad byte */
    const char nul[] = "a: 1\nb: \0\0\0";
    mf_error_clear(&err);
    ck_assert_ptr_null(mf_config_parse(nul, sizeof nul - 1, "q.yaml", &err));
    ck_assert_str_eq(err.msg, "q.yaml:2:4: found a NUL byte (0x00) — is this a binary file? YAML "
                              "must be UTF-8 text");
    assert_parse_error("a: x\xc2\x85y\n", /* NEL: a line break to libyaml, a typo to anyone */
                       "q.yaml:1:5: found a control character (U+0085) — is this a binary file? "
                       "YAML must be UTF-8 text");
    assert_parse_error("a: caf\xc3\xa9\nb: \xff\xfe\n",
                       "q.yaml:2:4: found bytes that are not UTF-8 text (0xFF) — is this a binary "
                       "file? YAML must be UTF-8 text");
}
END_TEST

START_TEST(test_parse_accepts)
{
    const char *const texts[] = {
        "\xEF\xBB\xBF" "a: 1\nb:\n  c: x\n",   /* UTF-8 byte order mark */
        "a: 1\r\nb:\r\n  c: x\r\n",          /* CRLF line ends */
        "%YAML 1.2\n---\na: 1\nb: {c: x}\n", /* directive, explicit document start */
        "a: 1\nb:\n  c: x\n...\n",             /* explicit document end */
        "? a\n: 1\nb: {c: x}\n",               /* explicit key */
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        mf_config *root = parse_ok(texts[i]);
        ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "b.c")), "x");
        mf_config_free(root);
    }
    /* !!str makes a string of what would be a number; it stays quoted when written */
    mf_config *root = parse_ok("a: !!str 12\n");
    int64_t i = 0;
    ck_assert_int_eq(mf_config_int(root, "a", &i, &err), -1);
    ck_assert_str_eq(err.msg, "q.yaml:1:4: a: expected an integer, got the quoted string \"12\"");
    mf_config_free(root);
}
END_TEST

START_TEST(test_aliases_are_copies)
{
    mf_config *root = parse_ok("base: &enc {type: mlp, hidden: [8]}\n"
                               "model:\n"
                               "  a: *enc\n"
                               "  b: *enc\n");
    const mf_config *a = mf_config_get(root, "model.a");
    const mf_config *b = mf_config_get(root, "model.b");
    ck_assert_ptr_ne(a, b);
    ck_assert_str_eq(mf_config_path(mf_config_get(root, "model.b.hidden")), "model.b.hidden");
    ck_assert_str_eq(mf_config_path(mf_config_at(mf_config_get(b, "hidden"), 0)), "model.b.hidden[0]");
    ck_assert_int_eq(mf_config_line(b), 4); /* the copy's root points at the alias */
    ck_assert_int_eq(mf_config_column(b), 6);
    ck_assert_int_eq(mf_config_line(mf_config_get(b, "type")), 1); /* its insides at the anchor */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(b, "type")), "mlp");
    mf_config_free(root);
}
END_TEST

START_TEST(test_limits)
{
    /* "billion laughs": refused before the copies are made */
    char bomb[2048];
    int used = snprintf(bomb, sizeof bomb, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 8; i++) {
        used += snprintf(bomb + used, sizeof bomb - (size_t)used, "a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            used += snprintf(bomb + used, sizeof bomb - (size_t)used, "%s*a%d", k ? ", " : "", i - 1);
        used += snprintf(bomb + used, sizeof bomb - (size_t)used, "]\n");
    }
    assert_parse_error(bomb, "q.yaml:5:45: aliases expand the file past 100000 values");

    size_t count = 100001, size = 4 + 3 * count + 2;
    char *many = malloc(size);
    ck_assert_ptr_nonnull(many);
    char *p = many + sprintf(many, "a: [");
    for (size_t i = 0; i < count; i++)
        p += sprintf(p, "%s1", i ? ", " : "");
    strcpy(p, "]");
    mf_error_clear(&err);
    ck_assert_ptr_null(mf_config_parse(many, strlen(many), "q.yaml", &err));
    ck_assert_str_eq(err.msg, "q.yaml:1:299999: more than 100000 values; experiment files are for "
                              "settings, not data");
    free(many);

    char deep[1024] = "a: ";
    memset(deep + 3, '[', 600);
    assert_parse_error(deep, "q.yaml:1:203: values nested more than 200 levels deep");
}
END_TEST

START_TEST(test_load_errors)
{
    assert_load_error("/nonexistent/q.yaml", "cannot open '/nonexistent/q.yaml': No such file or directory");
    assert_load_error("/tmp", "cannot open '/tmp': Is a directory");

    const char *big = scratch("big.yaml");
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 17 * 1024 * 1024), 0); /* sparse: costs nothing */
    close(fd);
    char expected[256];
    snprintf(expected, sizeof expected, "%s: too large (17825792 bytes; the limit is 16 MiB)", big);
    assert_load_error(big, expected);
    unlink(big);

    const char *zeros = scratch("zeros.yaml");
    char nul[64] = {0};
    write_file(zeros, nul, sizeof nul);
    snprintf(expected, sizeof expected,
             "%s:1:1: found a NUL byte (0x00) — is this a binary file? YAML must be UTF-8 text", zeros);
    assert_load_error(zeros, expected);
    unlink(zeros);
    scratch_done();
}
END_TEST

/* ---------------------------------------------------------------- checking */
static const mf_param_spec root_specs[] = {
    {"seed", MF_TYPE_INT, "0", 0, 0, 0, NULL, "random seed"},
    {"model", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "the model"},
    {"optim", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "the optimizer"},
    {"train", MF_TYPE_MAP, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "the training loop"},
    MF_PARAM_END,
};

static const mf_param_spec fusion_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "fusion plugin"},
    {"weight", MF_TYPE_FLOAT, "0.5", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL, "mixing weight"},
    MF_PARAM_END,
};

static const mf_param_spec encoder_specs[] = {
    {"type", MF_TYPE_STRING, NULL, MF_PARAM_REQUIRED, 0, 0, NULL, "encoder plugin"},
    {"hidden", MF_TYPE_INT_LIST, "[64, 64]", MF_PARAM_MIN, 1, 0, NULL, "layer widths"},
    {"activation", MF_TYPE_ENUM, "relu", 0, 0, 0, "relu|tanh|sigmoid", "nonlinearity"},
    {"dropout", MF_TYPE_FLOAT, "0.0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL, "dropout rate"},
    {"bias", MF_TYPE_BOOL, "true", 0, 0, 0, NULL, "use a bias"},
    {"tags", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL, "labels"},
    MF_PARAM_END,
};

static const mf_param_spec optim_specs[] = {
    {"name", MF_TYPE_ENUM, "adam", 0, 0, 0, "sgd|adam|adamw", "optimizer"},
    {"lr", MF_TYPE_FLOAT, NULL, MF_PARAM_REQUIRED | MF_PARAM_MIN, 0, 0, NULL, "learning rate"},
    {"momentum", MF_TYPE_FLOAT, "0.9", MF_PARAM_MAX, 0, 1, NULL, "momentum"},
    {"betas", MF_TYPE_FLOAT_LIST, "[0.9, 0.999]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL, "betas"},
    MF_PARAM_END,
};

static const mf_param_spec train_specs[] = {
    {"epochs", MF_TYPE_INT, "10", MF_PARAM_MIN, 1, 0, NULL, "epochs"},
    {"shuffle", MF_TYPE_BOOL, "true", 0, 0, 0, NULL, "shuffle batches"},
    {"run_name", MF_TYPE_STRING, "run", 0, 0, 0, NULL, "name"},
    MF_PARAM_END,
};

static mf_config *section(mf_config *root, const char *key)
{
    mf_config *n = (mf_config *)mf_config_get(root, key);
    ck_assert_msg(n != NULL, "no '%s'", key);
    return n;
}

START_TEST(test_check_unknown_and_missing_keys)
{
    mf_config *root = parse_ok("seed: 1\n"             /* 1 */
                               "train: {epochs: 2}\n"  /* 2 */
                               "optm:\n"               /* 3 */
                               "  lr: 0.1\n"           /* 4 */
                               "model:\n"              /* 5 */
                               "  encoders:\n"         /* 6 */
                               "    a: {type: mlp}\n"  /* 7 */
                               "  fusion:\n"           /* 8 */
                               "    tpye: sum\n"       /* 9 */
                               "    zzzzzz: 1\n"       /* 10 */
                               "data: {}\n");          /* 11 */
    const char *const extra[] = {"data", NULL};
    assert_check(root, root_specs, extra, 2,
                 "q.yaml:3:1: unknown key 'optm' (did you mean 'optim'?)\n"
                 "q.yaml:1:1: missing required key 'optim'");
    assert_check(section(root, "model.fusion"), fusion_specs, NULL, 3,
                 "q.yaml:9:5: model.fusion: unknown key 'tpye' (did you mean 'type'?)\n"
                 "q.yaml:10:5: model.fusion: unknown key 'zzzzzz'\n"
                 "q.yaml:9:5: model.fusion: missing required key 'type'");
    /* without the extra key, 'data' is unknown too (suggestions come from specs + extras) */
    assert_check(root, root_specs, NULL, 3,
                 "q.yaml:3:1: unknown key 'optm' (did you mean 'optim'?)\n"
                 "q.yaml:11:1: unknown key 'data'\n"
                 "q.yaml:1:1: missing required key 'optim'");
    const char *const near_extra[] = {"dataset", NULL};
    mf_config *typo = parse_ok("datset: x\n");
    assert_check(typo, train_specs, near_extra, 1,
                 "q.yaml:1:1: unknown key 'datset' (did you mean 'dataset'?)");
    mf_config_free(typo);
    mf_config_free(root);
}
END_TEST

START_TEST(test_check_types_ranges_enums)
{
    mf_config *root = parse_ok(
        "optim: {name: adamm, lr: fast, momentum: 1.5, betas: [0.9, -1, x]}\n"      /* 1 */
        "train: {epochs: 2.5, shuffle: yes, run_name: [a]}\n"                       /* 2 */
        "model:\n"                                                                  /* 3 */
        "  encoders:\n"                                                             /* 4 */
        "    a: {type: mlp, activation: rleu, hidden: [64, x, 0], dropout: -1}\n"   /* 5 */
        "    b: {type: mlp, hidden: 64, bias: \"true\", tags: [a, [b]]}\n"           /* 6 */
        "    c:\n"                                                                  /* 7 */
        "      type: mlp\n"                                                         /* 8 */
        "      hidden:\n"                                                           /* 9 */
        "      dropout: ~\n"                                                        /* 10 */
        "      activation: ''\n"                                                    /* 11 */
        "  fusion: {type: sum, weight: \"0.5\"}\n"                                  /* 12 */
        "seed: [1]\n");                                                             /* 13 */
    assert_check(root, root_specs, NULL, 1, "q.yaml:13:7: seed: expected an integer, got a list");
    assert_check(section(root, "optim"), optim_specs, NULL, 5,
                 "q.yaml:1:15: optim.name: expected one of sgd, adam, adamw, got 'adamm' (did you "
                 "mean 'adam'?)\n"
                 "q.yaml:1:26: optim.lr: expected a number, got 'fast'\n"
                 "q.yaml:1:42: optim.momentum: expected a number <= 1, got 1.5\n"
                 "q.yaml:1:60: optim.betas[1]: expected a number between 0 and 1, got -1\n"
                 "q.yaml:1:64: optim.betas[2]: expected a number, got 'x'");
    mf_config *negative = parse_ok("lr: -1\n");
    assert_check(negative, optim_specs, NULL, 1, "q.yaml:1:5: lr: expected a number >= 0, got -1");
    mf_config_free(negative);
    assert_check(section(root, "train"), train_specs, NULL, 3,
                 "q.yaml:2:17: train.epochs: expected an integer, got '2.5'\n"
                 "q.yaml:2:31: train.shuffle: expected true or false, got 'yes' (did you mean "
                 "'true'?)\n"
                 "q.yaml:2:46: train.run_name: expected a string, got a list");
    assert_check(section(root, "model.encoders.a"), encoder_specs, NULL, 4,
                 "q.yaml:5:32: model.encoders.a.activation: expected one of relu, tanh, sigmoid, "
                 "got 'rleu' (did you mean 'relu'?)\n"
                 "q.yaml:5:51: model.encoders.a.hidden[1]: expected an integer, got 'x'\n"
                 "q.yaml:5:54: model.encoders.a.hidden[2]: expected an integer >= 1, got 0\n"
                 "q.yaml:5:67: model.encoders.a.dropout: expected a number between 0 and 1, got -1");
    assert_check(section(root, "model.encoders.b"), encoder_specs, NULL, 3,
                 "q.yaml:6:28: model.encoders.b.hidden: expected a list of integers, got '64'\n"
                 "q.yaml:6:38: model.encoders.b.bias: expected true or false, got the quoted "
                 "string \"true\"\n"
                 "q.yaml:6:56: model.encoders.b.tags[1]: expected a string, got a list");
    /* YAML null (empty, ~) is given-but-wrong for everything except strings */
    assert_check(section(root, "model.encoders.c"), encoder_specs, NULL, 3,
                 "q.yaml:9:14: model.encoders.c.hidden: expected a list of integers, got an empty value\n"
                 "q.yaml:10:16: model.encoders.c.dropout: expected a number, got '~'\n"
                 "q.yaml:11:19: model.encoders.c.activation: expected one of relu, tanh, "
                 "sigmoid, got the quoted string \"\"");
    assert_check(section(root, "model.fusion"), fusion_specs, NULL, 1,
                 "q.yaml:12:31: model.fusion.weight: expected a number, got the quoted string \"0.5\"");
    assert_check(section(root, "model.fusion.type"), fusion_specs, NULL, 1,
                 "q.yaml:12:18: model.fusion.type: expected a map, got 'sum'");
    mf_config_free(root);
}
END_TEST

START_TEST(test_check_fills_defaults)
{
    mf_config *root = parse_ok("model:\n"
                               "  encoders:\n"
                               "    nir: {type: mlp, dropout: 0.25, hidden: [32]}\n");
    mf_config *nir = section(root, "model.encoders.nir");
    assert_check(nir, encoder_specs, NULL, 0, "");
    ck_assert_int_eq(mf_config_length(nir), 6);
    /* given values untouched, in their places */
    ck_assert_str_eq(mf_config_key_at(nir, 1), "dropout");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(nir, "dropout")), "0.25");
    ck_assert_int_eq(mf_config_length(mf_config_get(nir, "hidden")), 1);
    /* defaults appended in spec order, typed, marked at the map, with paths */
    ck_assert_str_eq(mf_config_key_at(nir, 3), "activation");
    ck_assert_str_eq(mf_config_key_at(nir, 4), "bias");
    ck_assert_str_eq(mf_config_key_at(nir, 5), "tags");
    const mf_config *bias = mf_config_get(nir, "bias");
    ck_assert_str_eq(mf_config_path(bias), "model.encoders.nir.bias");
    ck_assert_int_eq(mf_config_line(bias), 3);
    ck_assert_int_eq(mf_config_column(bias), 10);
    ck_assert_str_eq(mf_config_file(bias), "q.yaml");
    int on = 0;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_bool(nir, "bias", &on, &err), 0);
    ck_assert_int_eq(on, 1);
    int choice = -1;
    ck_assert_int_eq(mf_config_enum(nir, "activation", "relu|tanh|sigmoid", &choice, &err), 0);
    ck_assert_int_eq(choice, 0);
    ck_assert_int_eq(mf_config_node_kind(mf_config_get(nir, "tags")), MF_CONFIG_LIST);
    ck_assert_int_eq(mf_config_length(mf_config_get(nir, "tags")), 0);

    /* an empty value is a (empty) string for a string parameter, wrong for the others */
    mf_config *empty = parse_ok("run_name:\nshuffle: no\n");
    assert_check(empty, train_specs, NULL, 1,
                 "q.yaml:2:10: shuffle: expected true or false, got 'no' (did you mean 'false'?)");
    const char *run_name = NULL;
    ck_assert_int_eq(mf_config_string(empty, "run_name", &run_name, &err), 0);
    ck_assert_str_eq(run_name, "");
    mf_config_free(empty);

    /* a second check finds everything in place and adds nothing */
    assert_check(nir, encoder_specs, NULL, 0, "");
    ck_assert_int_eq(mf_config_length(nir), 6);

    /* a list default gets element paths */
    mf_config *other = section(root, "model.encoders");
    static const mf_param_spec list_default[] = {
        {"widths", MF_TYPE_INT_LIST, "[64, 32]", 0, 0, 0, NULL, NULL},
        {"nir", MF_TYPE_MAP, NULL, 0, 0, 0, NULL, NULL},
        MF_PARAM_END,
    };
    assert_check(other, list_default, NULL, 0, "");
    const mf_config *widths = mf_config_get(other, "widths");
    ck_assert_str_eq(mf_config_path(mf_config_at(widths, 1)), "model.encoders.widths[1]");

    /* a default that breaks its own spec is reported (a plugin bug) */
    static const mf_param_spec bad_default[] = {
        {"nir", MF_TYPE_MAP, NULL, 0, 0, 0, NULL, NULL},
        {"widths", MF_TYPE_INT_LIST, NULL, 0, 0, 0, NULL, NULL},
        {"depth", MF_TYPE_INT, "deep", 0, 0, 0, NULL, NULL},
        MF_PARAM_END,
    };
    assert_check(other, bad_default, NULL, 1,
                 "q.yaml:3:5: model.encoders.depth: expected an integer, got 'deep'");
    mf_config_free(root);
}
END_TEST

/* ---------------------------------------------------------------- getters */
START_TEST(test_getters)
{
    mf_config *root = parse_ok("seed: -0x10\n"
                               "big: 9223372036854775807\n"
                               "huge: 9223372036854775808\n"
                               "optim: {lr: 3e-4, warm: .5, steps: 100, inf: .inf, nan: .NaN}\n"
                               "train:\n"
                               "  shuffle: False\n"
                               "  name: \"123\"\n"
                               "  early_stop: {patience: 5}\n"
                               "  widths: [1, 2, 3]\n"
                               "  rates: [1, 0.5, 1e-3]\n"
                               "  act: tanh\n");
    int64_t i = 0;
    double f = 0;
    int b = -1, choice = -1, n = 0;
    const char *s = NULL;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_int(root, "seed", &i, &err), 0);
    ck_assert_int_eq(i, -16);
    ck_assert_int_eq(mf_config_int(root, "big", &i, &err), 0);
    ck_assert_int_eq(i, INT64_MAX);
    ck_assert_int_eq(mf_config_float(root, "optim.lr", &f, &err), 0);
    ck_assert_double_eq(f, 3e-4);
    ck_assert_int_eq(mf_config_float(root, "optim.warm", &f, &err), 0);
    ck_assert_double_eq(f, 0.5);
    ck_assert_int_eq(mf_config_float(root, "optim.steps", &f, &err), 0);
    ck_assert_double_eq(f, 100);
    ck_assert_int_eq(mf_config_bool(root, "train.shuffle", &b, &err), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(mf_config_string(root, "train.name", &s, &err), 0);
    ck_assert_str_eq(s, "123");
    ck_assert_int_eq(mf_config_int(root, "train.early_stop.patience", &i, &err), 0);
    ck_assert_int_eq(i, 5);
    ck_assert_int_eq(mf_config_enum(root, "train.act", "relu|tanh|sigmoid", &choice, &err), 0);
    ck_assert_int_eq(choice, 1);
    int64_t widths[4];
    ck_assert_int_eq(mf_config_int_list(root, "train.widths", widths, 4, &n, &err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(widths[2], 3);
    double rates[3];
    ck_assert_int_eq(mf_config_float_list(root, "train.rates", rates, 3, &n, &err), 0);
    ck_assert_double_eq(rates[2], 1e-3);
    ck_assert_int_eq(err.count, 0);

    struct {
        int rc;
        const char *expected;
    } cases[] = {
        {mf_config_int(root, "huge", &i, &err),
         "q.yaml:3:7: huge: expected an integer, got '9223372036854775808' (outside the 64-bit "
         "integer range)"},
        {mf_config_float(root, "optim.inf", &f, &err),
         "q.yaml:4:46: optim.inf: expected a number, got '.inf' (infinity and NaN are not allowed)"},
        {mf_config_float(root, "optim.nan", &f, &err),
         "q.yaml:4:57: optim.nan: expected a number, got '.NaN' (infinity and NaN are not allowed)"},
        {mf_config_int(root, "train.name", &i, &err),
         "q.yaml:7:9: train.name: expected an integer, got the quoted string \"123\""},
        {mf_config_int(root, "train.patience", &i, &err),
         "q.yaml:6:3: train: missing required key 'patience'"},
        {mf_config_int(root, "train.early_stop.min_delta", &i, &err),
         "q.yaml:8:15: train.early_stop: missing required key 'min_delta'"},
        {mf_config_int(root, "nothing", &i, &err), "q.yaml:1:1: missing required key 'nothing'"},
        {mf_config_int(root, "seed.x", &i, &err), "q.yaml:1:7: seed: expected a map, got '-0x10'"},
        {mf_config_enum(root, "train.act", "relu|sigmoid", &choice, &err),
         "q.yaml:11:8: train.act: expected one of relu, sigmoid, got 'tanh'"},
        {mf_config_int_list(root, "train.widths", widths, 2, &n, &err),
         "q.yaml:9:11: train.widths: expected at most 2 elements, got a list of 3"},
        {mf_config_int_list(root, "train.rates", widths, 4, &n, &err),
         "q.yaml:10:14: train.rates[1]: expected an integer, got '0.5'\n"
         "q.yaml:10:19: train.rates[2]: expected an integer, got '1e-3'"},
        {mf_config_float_list(root, "train.act", rates, 3, &n, &err),
         "q.yaml:11:8: train.act: expected a list of numbers, got 'tanh'"},
        {mf_config_string(root, "train.widths", &s, &err),
         "q.yaml:9:11: train.widths: expected a string, got a list"},
    };
    /* the calls above ran in order into one err: check each message by splitting */
    char all[MF_ERROR_CAPACITY];
    snprintf(all, sizeof all, "%s", err.msg);
    char joined[MF_ERROR_CAPACITY] = "";
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ck_assert_int_eq(cases[k].rc, -1);
        strcat(joined, k ? "\n" : "");
        strcat(joined, cases[k].expected);
    }
    ck_assert_str_eq(all, joined);
    ck_assert_int_eq(n, 3); /* the too-long list still reports its length */

    /* mf_config_error: the plugin-facing formatter */
    mf_error_clear(&err);
    mf_config_error(&err, mf_config_get(root, "train.widths"), "widths must be %s", "even");
    mf_config_error(&err, root, "root problem");
    ck_assert_str_eq(err.msg, "q.yaml:9:11: train.widths: widths must be even\n"
                              "q.yaml:1:1: root problem");
    mf_config_free(root);
}
END_TEST

START_TEST(test_type_names)
{
    ck_assert_str_eq(mf_type_name(MF_TYPE_INT), "an integer");
    ck_assert_str_eq(mf_type_name(MF_TYPE_FLOAT), "a number");
    ck_assert_str_eq(mf_type_name(MF_TYPE_BOOL), "true or false");
    ck_assert_str_eq(mf_type_name(MF_TYPE_STRING), "a string");
    ck_assert_str_eq(mf_type_name(MF_TYPE_ENUM), "one of the choices");
    ck_assert_str_eq(mf_type_name(MF_TYPE_INT_LIST), "a list of integers");
    ck_assert_str_eq(mf_type_name(MF_TYPE_FLOAT_LIST), "a list of numbers");
    ck_assert_str_eq(mf_type_name(MF_TYPE_STRING_LIST), "a list of strings");
    ck_assert_str_eq(mf_type_name(MF_TYPE_MAP), "a map");
}
END_TEST

/* ---------------------------------------------------------------- overrides */
/* issue 13: an override of a sweep key the file spells dotted replaces it, not a second
 * spelling beside it (which the sweep refused as "swept twice") */
START_TEST(test_override_dotted_key)
{
    mf_config *root = parse_ok("sweep:\n  model.fusion: [{type: concat}, {type: sum}]\n"
                               "  model.encoders.a.hidden: [[8], [16]]\n  seed: [1, 2]\n");
    override_ok(root, "sweep.model.fusion=[{type: mean}]");
    const mf_config *sweep = mf_config_get(root, "sweep");
    ck_assert_int_eq(mf_config_length(sweep), 3);
    ck_assert_str_eq(mf_config_key_at(sweep, 0), "model.fusion");
    ck_assert_int_eq(mf_config_length(mf_config_at(sweep, 0)), 1);
    ck_assert_str_eq(mf_config_file(mf_config_at(sweep, 0)), "-o sweep.model.fusion=[{type: mean}]");
    /* a longer path steps into the dotted entry's value */
    override_ok(root, "sweep.model.encoders.a.hidden=[[4]]");
    ck_assert_int_eq(mf_config_length(sweep), 3);
    ck_assert_int_eq(mf_config_length(mf_config_at(sweep, 1)), 1);
    /* a new key still nests */
    override_ok(root, "sweep.optim.lr=[0.1]");
    ck_assert_int_eq(mf_config_length(sweep), 4);
    ck_assert_str_eq(mf_config_key_at(sweep, 3), "optim");
    mf_config_free(root);
}
END_TEST

START_TEST(test_overrides)
{
    mf_config *root = parse_ok("seed: 1\n"
                               "model:\n"
                               "  encoders:\n"
                               "    nir: {type: mlp, hidden: [128]}\n"
                               "  fusion: concat\n"
                               "optim: {lr: 0.1, sched: }\n");
    assert_override_error(root, "oops", "-o 'oops': expected KEY.PATH=VALUE");
    assert_override_error(root, "=3", "-o '=3': expected KEY.PATH=VALUE");
    assert_override_error(root, "a..b=1", "-o 'a..b=1': empty key in 'a..b'");
    assert_override_error(root, ".a=1", "-o '.a=1': empty key in '.a'");
    assert_override_error(root, "a.=1", "-o 'a.=1': empty key in 'a.'");
    assert_override_error(root, "x=[1",
                          "-o 'x=[1': unclosed '[' (opened at line 1, column 3): expected ',' or ']'");
    assert_override_error(root, "seed.x=1", "-o 'seed.x=1': 'seed' is not a map");
    assert_override_error(root, "model.encoders.nir.type.y.z=1",
                          "-o 'model.encoders.nir.type.y.z=1': 'model.encoders.nir.type' is not a map");
    assert_override_error(root, "optim.betas[1]=0.5",
                          "-o 'optim.betas[1]=0.5': list items cannot be set one by one; give the "
                          "whole list (KEY=[a, b, …])");
    assert_override_error(root, "a\x01.b=1",
                          "-o 'a\\x01.b=1': found a control character (0x01) in the key; keys are "
                          "UTF-8 text");
    assert_override_error(root, "caf\xe9=1",
                          "-o 'caf\xe9=1': found bytes that are not UTF-8 text (0xE9) in the key; "
                          "keys are UTF-8 text");
    ck_assert_ptr_null(mf_config_get(root, "x")); /* failed overrides change nothing */
    ck_assert_ptr_null(mf_config_get(root, "a"));
    override_ok(root, "model.encoders.nir.hidden=[64,64]");
    const mf_config *hidden = mf_config_get(root, "model.encoders.nir.hidden");
    ck_assert_str_eq(mf_config_file(hidden), "-o model.encoders.nir.hidden=[64,64]");
    ck_assert_int_eq(mf_config_line(hidden), 1);
    ck_assert_int_eq(mf_config_column(hidden), 27);
    ck_assert_str_eq(mf_config_path(mf_config_at(hidden, 1)), "model.encoders.nir.hidden[1]");
    ck_assert_int_eq(mf_config_column(mf_config_at(hidden, 1)), 31);
    int64_t widths[4];
    int n = 0;
    ck_assert_int_eq(mf_config_int_list(root, "model.encoders.nir.hidden", widths, 4, &n, &err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(widths[0], 64);

    override_ok(root, "optim.lr=3e-4");
    double lr = 0;
    ck_assert_int_eq(mf_config_float(root, "optim.lr", &lr, &err), 0);
    ck_assert_double_eq(lr, 3e-4);
    override_ok(root, "train.shuffle=true"); /* creates train */
    int shuffle = 0;
    ck_assert_int_eq(mf_config_bool(root, "train.shuffle", &shuffle, &err), 0);
    ck_assert_int_eq(shuffle, 1);
    const mf_config *train = mf_config_get(root, "train");
    ck_assert_str_eq(mf_config_key_at(root, 3), "train");
    ck_assert_str_eq(mf_config_file(train), "-o train.shuffle=true");
    ck_assert_int_eq(mf_config_column(train), 1);
    override_ok(root, "train.name=\"007\"");
    const char *name = NULL;
    ck_assert_int_eq(mf_config_string(root, "train.name", &name, &err), 0);
    ck_assert_str_eq(name, "007");
    override_ok(root, "model.fusion={type: sum, weight: 0.5}"); /* scalar replaced by a map */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "model.fusion.type")), "sum");
    ck_assert_str_eq(mf_config_path(mf_config_get(root, "model.fusion.weight")), "model.fusion.weight");
    override_ok(root, "model.encoders=x"); /* a map replaced by a scalar */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "model.encoders")), "x");
    override_ok(root, "seed=");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "seed")), "");
    override_ok(root, "optim.sched.kind=cosine"); /* an empty value becomes a map */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "optim.sched.kind")), "cosine");
    ck_assert_int_eq(mf_config_line(mf_config_get(root, "optim.sched")), 1);
    ck_assert_int_eq(mf_config_column(mf_config_get(root, "optim.sched")), 7);
    override_ok(root, "optm.lr=1");
    /* the key it created points into the override, so the checker's message does too */
    assert_check(root, root_specs, NULL, 2,
                 "-o seed=:1:6: seed: expected an integer, got an empty value\n"
                 "-o optm.lr=1:1:1: unknown key 'optm' (did you mean 'optim'?)");
    override_ok(root, "optim.betas=[0.9, x]");
    assert_check(section(root, "optim"), optim_specs, NULL, 2,
                 "q.yaml:6:18: optim: unknown key 'sched'\n"
                 "-o optim.betas=[0.9, x]:1:19: optim.betas[1]: expected a number, got 'x'");

    mf_config_free(root);
}
END_TEST

/* ---------------------------------------------------------------- did you mean */
START_TEST(test_did_you_mean)
{
    const char *const keys[] = {"type", "hidden", "activation", "dropout", "optim", NULL};
    ck_assert_str_eq(mf_did_you_mean("tpye", keys), "type");         /* transposition */
    ck_assert_str_eq(mf_did_you_mean("hiden", keys), "hidden");      /* deletion */
    ck_assert_str_eq(mf_did_you_mean("Activation", keys), "activation"); /* case */
    ck_assert_str_eq(mf_did_you_mean("activasion", keys), "activation");
    ck_assert_str_eq(mf_did_you_mean("optm", keys), "optim");
    ck_assert_str_eq(mf_did_you_mean("dropuot", keys), "dropout");
    ck_assert_ptr_null(mf_did_you_mean("type", keys));  /* identical: nothing to suggest */
    ck_assert_ptr_null(mf_did_you_mean("zzzz", keys));  /* too far */
    ck_assert_ptr_null(mf_did_you_mean("tp", keys));    /* 2 edits for 2 letters */
    ck_assert_ptr_null(mf_did_you_mean("actvtn", keys)); /* 4 edits > 6/3 */
    ck_assert_ptr_null(mf_did_you_mean("x", NULL));
    const char *const tie[] = {"abcd", "abce", NULL};
    ck_assert_str_eq(mf_did_you_mean("abcf", tie), "abcd"); /* ties: the first */
}
END_TEST

/* ---------------------------------------------------------------- writing */
START_TEST(test_write_round_trip)
{
    mf_error_clear(&err);
    mf_config *root = mf_config_load(fixture("experiment.yaml"), &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    override_ok(root, "extra={a: [1, \"2\"], b: 'x: y', c: ~, d: [[1, 2], {e: 3}], f: [a b, '']}");
    override_ok(root, "model.encoders.nir.note=\"line one\\nline two\"");
    override_ok(root, "extra.null.<<=x"); /* keys YAML reads otherwise unquoted: quoted */
    override_ok(root, "extra.~=${not expanded}");
    assert_check(section(root, "train"), train_specs,
                 (const char *const[]){"note", "tags", "empty", "long", NULL}, 0, "");

    const char *path = scratch("written.yaml");
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(mf_config_write(root, path, &err) == 0, "%s", err.msg);
    ck_assert_int_ne(access(tmp, F_OK), 0); /* renamed away */
    mf_config *again = mf_config_load(path, &err);
    ck_assert_msg(again != NULL, "reloading the written file: %s", err.msg);
    assert_same_tree(root, again);

    /* quoting survives: "001" is still a string, 7 still a number, ~ still not a string */
    int64_t i = 0;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_int(again, "seed", &i, &err), 0);
    ck_assert_int_eq(i, 7);
    ck_assert_int_eq(mf_config_int(again, "train.run_name", &i, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "got the quoted string \"001\""));
    int64_t items[4];
    int n = 0;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_int_list(again, "extra.a", items, 4, &n, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, ": extra.a[1]: expected an integer, got the quoted string \"2\""));
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_int(again, "extra.c", &i, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, ": extra.c: expected an integer, got '~'"));
    ck_assert_str_eq(mf_config_scalar(mf_config_get(again, "train.empty")), "");
    ck_assert_str_eq(mf_config_scalar(mf_config_at(mf_config_get(again, "extra.f"), 1)), "");
    mf_config_free(again);

    /* writing again replaces the file; a failed write leaves nothing behind */
    override_ok(root, "seed=8");
    ck_assert_int_eq(mf_config_write(root, path, &err), 0);
    again = mf_config_load(path, &err);
    ck_assert_int_eq(mf_config_int(again, "seed", &i, &err), 0);
    ck_assert_int_eq(i, 8);
    mf_config_free(again);
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_write(root, "/nonexistent/q.yaml", &err), -1);
    ck_assert_str_eq(err.msg, "cannot write '/nonexistent/q.yaml': No such file or directory");
    mf_config_free(root);
    unlink(path);
    scratch_done();
}
END_TEST

/* ---------------------------------------------------------------- includes */
/* Write text to the scratch file `name`; returns its path (copied into path). */
static const char *put_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s", scratch(name));
    write_file(path, text, strlen(text));
    return path;
}

/* Load the scratch file `name`, expecting the error text with "@" standing for the scratch
 * folder. */
static void assert_include_error(const char *name, const char *expected_with_dir)
{
    char path[256], expected[MF_ERROR_CAPACITY] = "";
    snprintf(path, sizeof path, "%s", scratch(name));
    for (const char *p = expected_with_dir; *p; p++) {
        if (*p == '@')
            strcat(expected, scratch_dir);
        else
            strncat(expected, p, 1);
    }
    assert_load_error(path, expected);
}

START_TEST(test_includes_merge)
{
    char base[256], more[256], exp[256], path[256];
    put_file("base.yaml",
             "seed: 1\n"
             "model:\n"
             "  encoders:\n"
             "    a: {type: mlp, hidden: [64, 64]}\n"
             "  fusion: {type: concat}\n"
             "optim: {lr: 0.1}\n",
             base, sizeof base);
    put_file("more.yaml", "optim: {lr: 0.2, name: sgd}\ntrain: {epochs: 3, tags: [a, b]}\n", more,
             sizeof more);
    put_file("exp.yaml",
             "include: [base.yaml, more.yaml]\n" /* 1 */
             "model:\n"                          /* 2 */
             "  encoders:\n"                     /* 3 */
             "    a: {hidden: [8]}\n"            /* 4 */
             "train: {epochs: 5}\n"              /* 5 */
             "name: x\n",                        /* 6 */
             exp, sizeof exp);
    mf_error_clear(&err);
    mf_config *root = mf_config_load(exp, &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    /* included keys first, in the order they were merged; the including file's new keys last */
    ck_assert_int_eq(mf_config_length(root), 5);
    ck_assert_str_eq(mf_config_key_at(root, 0), "seed");
    ck_assert_str_eq(mf_config_key_at(root, 1), "model");
    ck_assert_str_eq(mf_config_key_at(root, 2), "optim");
    ck_assert_str_eq(mf_config_key_at(root, 3), "train");
    ck_assert_str_eq(mf_config_key_at(root, 4), "name");
    ck_assert(!mf_config_has(root, "include"));
    /* each node keeps the file it came from */
    const mf_config *seed = mf_config_get(root, "seed");
    ck_assert_str_eq(mf_config_file(seed), base);
    ck_assert_int_eq(mf_config_line(seed), 1);
    ck_assert_int_eq(mf_config_column(seed), 7);
    const mf_config *type = mf_config_get(root, "model.encoders.a.type");
    ck_assert_str_eq(mf_config_scalar(type), "mlp");
    ck_assert_str_eq(mf_config_file(type), base);
    ck_assert_int_eq(mf_config_line(type), 4);
    ck_assert_str_eq(mf_config_path(type), "model.encoders.a.type");
    /* lists are replaced whole */
    const mf_config *hidden = mf_config_get(root, "model.encoders.a.hidden");
    ck_assert_int_eq(mf_config_length(hidden), 1);
    ck_assert_str_eq(mf_config_file(hidden), exp);
    ck_assert_str_eq(mf_config_path(mf_config_at(hidden, 0)), "model.encoders.a.hidden[0]");
    /* later files win; maps both wrote take the later file's mark */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "optim.lr")), "0.2");
    ck_assert_str_eq(mf_config_file(mf_config_get(root, "optim.lr")), more);
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "optim.name")), "sgd");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "train.epochs")), "5");
    ck_assert_int_eq(mf_config_length(mf_config_get(root, "train.tags")), 2);
    ck_assert_str_eq(mf_config_file(mf_config_get(root, "model.encoders.a")), exp);
    ck_assert_int_eq(mf_config_line(mf_config_get(root, "model.encoders.a")), 4);
    ck_assert_str_eq(mf_config_file(mf_config_get(root, "model.fusion")), base);
    ck_assert_str_eq(mf_config_file(root), exp);
    ck_assert_int_eq(mf_config_line(root), 1);
    /* so checker messages point into the right file */
    static const mf_param_spec lr_spec[] = {
        {"lr", MF_TYPE_INT, NULL, 0, 0, 0, NULL, NULL},
        MF_PARAM_END,
    };
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s:1:13: optim.lr: expected an integer, got '0.2'\n"
             "%s:1:18: optim: unknown key 'name'",
             more, more);
    assert_check(section(root, "optim"), lr_spec, NULL, 2, expected);
    mf_config_free(root);

    /* one name instead of a list; names relative to the including file's folder, nested */
    ck_assert_int_eq(mkdir(scratch("sub"), 0755), 0);
    put_file("sub/mid.yaml", "include: leaf.yaml\nmid: 1\nleaf: {b: 2}\n", path, sizeof path);
    put_file("sub/leaf.yaml", "leaf: {a: 1, b: 1}\n", path, sizeof path);
    put_file("two.yaml", "include: ./sub//mid.yaml\ninclude_not: 1\n", path, sizeof path);
    put_file("none.yaml", "include: []\na: 1\n", path, sizeof path);
    mf_error_clear(&err);
    root = mf_config_load(scratch("two.yaml"), &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "leaf.a")), "1");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "leaf.b")), "2");
    ck_assert_str_eq(mf_config_file(mf_config_get(root, "leaf.a")), scratch("sub/leaf.yaml"));
    ck_assert_str_eq(mf_config_file(mf_config_get(root, "leaf.b")), scratch("sub/mid.yaml"));
    ck_assert_str_eq(mf_config_key_at(root, 2), "include_not");
    mf_config_free(root);
    root = mf_config_load(scratch("none.yaml"), &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    ck_assert_int_eq(mf_config_length(root), 1);
    mf_config_free(root);

    /* the merged tree is a complete file: written and read back, it is the same */
    root = mf_config_load(exp, &err);
    const char *written = scratch("written.yaml");
    ck_assert_msg(mf_config_write(root, written, &err) == 0, "%s", err.msg);
    mf_config *again = mf_config_load(written, &err);
    ck_assert_msg(again != NULL, "%s", err.msg);
    assert_same_tree(root, again);
    mf_config_free(again);
    mf_config_free(root);

    const char *const names[] = {"base.yaml", "more.yaml", "exp.yaml", "sub/mid.yaml",
                                 "sub/leaf.yaml", "two.yaml", "none.yaml", "written.yaml", "sub"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_int_eq(remove(scratch(names[i])), 0);
    scratch_done();
}
END_TEST

START_TEST(test_include_errors)
{
    char path[256], expected[PATH_MAX + 1024];
    put_file("a.yaml", "seed: 1\ninclude: b.yaml\n", path, sizeof path);
    put_file("b.yaml", "include: [c.yaml, a.yaml]\n", path, sizeof path);
    put_file("c.yaml", "c: 1\n", path, sizeof path);
    assert_include_error("a.yaml", "@/a.yaml:2:10: include: cycle: @/a.yaml → @/b.yaml → @/a.yaml");
    put_file("self.yaml", "include: [./self.yaml]\n", path, sizeof path);
    assert_include_error("self.yaml", "@/self.yaml:1:11: include: cycle: @/self.yaml → @/self.yaml");

    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(scratch_dir, real));
    put_file("missing.yaml", "a: 1\ninclude:\n  - c.yaml\n  - base.yaml\n", path, sizeof path);
    snprintf(expected, sizeof expected,
             "@/missing.yaml:4:5: include: cannot open 'base.yaml' (resolved to %s/base.yaml): "
             "No such file or directory",
             real);
    assert_include_error("missing.yaml", expected);
    put_file("dir.yaml", "include: .\n", path, sizeof path);
    snprintf(expected, sizeof expected,
             "@/dir.yaml:1:10: include: cannot open '.' (resolved to %s): Is a directory", real);
    assert_include_error("dir.yaml", expected);

    put_file("dir.yaml", "include: /dev/null\n", path, sizeof path); /* nor a device or pipe */
    assert_include_error("dir.yaml", "@/dir.yaml:1:10: include: cannot open '/dev/null' (resolved "
                                     "to /dev/null): not a regular file");

    put_file("list.yaml", "- a\n- b\n", path, sizeof path);
    put_file("empty.yaml", "# nothing\n", path, sizeof path);
    put_file("broken.yaml", "a: 1\nb: [1, 2\n", path, sizeof path);
    put_file("uses.yaml", "include: list.yaml\n", path, sizeof path);
    assert_include_error("uses.yaml",
                         "@/uses.yaml:1:10: include: 'list.yaml' must be a map of sections, got a list");
    put_file("uses.yaml", "include: [c.yaml, empty.yaml]\n", path, sizeof path);
    assert_include_error("uses.yaml", "@/uses.yaml:1:19: include: 'empty.yaml' is empty");
    /* a problem inside an included file: where it is, then where it was included from */
    put_file("uses.yaml", "include: [c.yaml, nested.yaml]\n", path, sizeof path);
    put_file("nested.yaml", "n: 1\ninclude: broken.yaml\n", path, sizeof path);
    assert_include_error("uses.yaml",
                         "@/broken.yaml:3:1: unclosed '[' (opened at line 2, column 4): expected "
                         "',' or ']'\n"
                         "@/nested.yaml:2:10: include: while including 'broken.yaml'\n"
                         "@/uses.yaml:1:19: include: while including 'nested.yaml'");
    put_file("uses.yaml", "include: {a: 1}\n", path, sizeof path);
    assert_include_error("uses.yaml", "@/uses.yaml:1:10: include: expected a file name or a list "
                                      "of file names, got a map");
    put_file("uses.yaml", "include: [c.yaml, [x]]\n", path, sizeof path);
    assert_include_error("uses.yaml",
                         "@/uses.yaml:1:19: include: expected a file name, got a list");
    put_file("uses.yaml", "include:\n", path, sizeof path);
    assert_include_error("uses.yaml", "@/uses.yaml:1:9: include: expected a file name or a list "
                                      "of file names, got an empty value");
    /* the including file's own problems are its own */
    put_file("uses.yaml", "include: c.yaml\nx: [\n", path, sizeof path);
    assert_include_error("uses.yaml", "@/uses.yaml:3:1: expected a value here");

    /* a chain of 34 files: the 33rd nested include is refused */
    for (int i = 0; i <= 33; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "d%d.yaml", i);
        snprintf(text, sizeof text, "include: d%d.yaml\nd%d: 1\n", i + 1, i);
        put_file(name, i == 33 ? "end: 1\n" : text, path, sizeof path);
    }
    assert_include_error("d0.yaml", "@/d32.yaml:1:10: include: includes nested more than 32 levels deep");
    put_file("d1.yaml", "d1: 1\n", path, sizeof path); /* 2 levels now */
    mf_error_clear(&err);
    mf_config *root = mf_config_load(scratch("d0.yaml"), &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    ck_assert_int_eq(mf_config_length(root), 2);
    mf_config_free(root);

    /* a diamond of includes (each file twice) would double per level: capped */
    for (int i = 0; i <= 10; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "w%d.yaml", i);
        snprintf(text, sizeof text, "include: [w%d.yaml, w%d.yaml]\n", i + 1, i + 1);
        put_file(name, i == 10 ? "end: 1\n" : text, path, sizeof path);
    }
    assert_include_error("w0.yaml", "@/w9.yaml:1:21: include: more than 256 files included");

    const char *const names[] = {"a.yaml", "b.yaml", "c.yaml", "self.yaml", "missing.yaml",
                                 "dir.yaml", "list.yaml", "empty.yaml", "broken.yaml",
                                 "uses.yaml", "nested.yaml"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_int_eq(remove(scratch(names[i])), 0);
    for (int i = 0; i <= 33; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d.yaml", i);
        ck_assert_int_eq(remove(scratch(name)), 0);
        snprintf(name, sizeof name, "w%d.yaml", i);
        if (i <= 10)
            ck_assert_int_eq(remove(scratch(name)), 0);
    }
    scratch_done();
}
END_TEST

/* ---------------------------------------------------------------- environment */
START_TEST(test_env_interpolation)
{
    setenv("MF_TEST_LR", "3e-4", 1);
    setenv("MF_TEST_PADDED", "  padded  ", 1);
    setenv("MF_TEST_EMPTY", "", 1);
    setenv("MF_TEST_BASE", "c.yaml", 1);
    unsetenv("MF_TEST_UNSET");
    char path[256];
    put_file("c.yaml", "from_c: ${env:MF_TEST_LR}\n", path, sizeof path);
    put_file("env.yaml",
             "lr: ${env:MF_TEST_LR}\n"                                      /* 1 */
             "lr2: ${env:MF_TEST_UNSET,1e-3}\n"                             /* 2 */
             "lr3: ${env:MF_TEST_UNSET, 2}\n"                               /* 3 */
             "quoted: \"${env:MF_TEST_LR}\"\n"                              /* 4 */
             "mix: a-${env:MF_TEST_LR}-${env:MF_TEST_UNSET,x y}-$${lit}\n"  /* 5 */
             "pad: ${env:MF_TEST_PADDED}\n"                                 /* 6 */
             "qpad: '${env:MF_TEST_PADDED}'\n"                              /* 7 */
             "empty: ${env:MF_TEST_EMPTY,default}\n"                        /* 8 */
             "list:\n"                                                      /* 9 */
             "  - ${env:MF_TEST_LR}\n"                                      /* 10 */
             "keep: $$ $x {} $$$${\n"                                       /* 11 */
             "${env:MF_TEST_LR}: key\n"                                     /* 12 */
             "include: ${env:MF_TEST_BASE}\n",                              /* 13 */
             path, sizeof path);
    mf_error_clear(&err);
    mf_config *root = mf_config_load(path, &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    double f = 0;
    ck_assert_int_eq(mf_config_float(root, "lr", &f, &err), 0);
    ck_assert_double_eq(f, 3e-4);
    ck_assert_int_eq(mf_config_float(root, "lr2", &f, &err), 0);
    ck_assert_double_eq(f, 1e-3);
    int64_t i = 0;
    ck_assert_int_eq(mf_config_int(root, "lr3", &i, &err), 0); /* " 2": typed as YAML would */
    ck_assert_int_eq(i, 2);
    ck_assert_int_eq(mf_config_float(mf_config_get(root, "list"), "x", &f, &err), -1);
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_float(root, "quoted", &f, &err), -1);
    char expected[4096];
    snprintf(expected, sizeof expected,
             "%s:4:9: quoted: expected a number, got the quoted string \"3e-4\"", path);
    ck_assert_str_eq(err.msg, expected);
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "mix")), "a-3e-4-x y-${lit}");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "pad")), "padded");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "qpad")), "  padded  ");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "empty")), ""); /* set, if empty */
    ck_assert_str_eq(mf_config_scalar(mf_config_at(mf_config_get(root, "list"), 0)), "3e-4");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "keep")), "$$ $x {} $$${");
    ck_assert_ptr_nonnull(mf_config_get(root, "${env:MF_TEST_LR}")); /* keys are kept as written */
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "from_c")), "3e-4"); /* included */
    const mf_config *lr = mf_config_get(root, "lr"); /* the mark stays */
    ck_assert_int_eq(mf_config_line(lr), 1);
    ck_assert_int_eq(mf_config_column(lr), 5);

    /* written back, "${" is escaped, so loading the file again gives the same text */
    const char *written = scratch("written.yaml");
    ck_assert_msg(mf_config_write(root, written, &err) == 0, "%s", err.msg);
    mf_config *again = mf_config_load(written, &err);
    ck_assert_msg(again != NULL, "%s", err.msg);
    assert_same_tree(root, again);
    mf_config_free(again);
    mf_config_free(root);
    unlink(written);

    /* mf_config_parse reads text as written */
    root = parse_ok("a: ${env:MF_TEST_UNSET}\n");
    ck_assert_str_eq(mf_config_scalar(mf_config_get(root, "a")), "${env:MF_TEST_UNSET}");
    mf_config_free(root);

    /* every problem, one per value */
    put_file("env.yaml",
             "a: ${env:MF_TEST_UNSET}\n"
             "b: x ${MF_TEST_LR}\n"
             "c:\n"
             "  d: [\"${env:MF_TEST_LR\"]\n"
             "e: ${env:1X} ${env:MF_TEST_UNSET}\n"
             "f: ${env:}\n"
             "g: ${env:MF_TEST_LR}\n",
             path, sizeof path);
    snprintf(expected, sizeof expected,
             "%s:1:4: a: environment variable 'MF_TEST_UNSET' is not set (write "
             "${env:MF_TEST_UNSET,default} for a default)\n"
             "%s:2:4: b: unknown substitution '${MF_TEST_LR}' (write ${env:NAME} for an "
             "environment variable, or $${ for a literal '${')\n"
             "%s:4:7: c.d[0]: '${env:MF_TEST_LR' has no closing '}' (write $${ for a literal "
             "'${')\n"
             "%s:5:4: e: '1X' is not an environment variable name (letters, digits and '_', not "
             "starting with a digit)\n"
             "%s:6:4: f: '' is not an environment variable name (letters, digits and '_', not "
             "starting with a digit)",
             path, path, path, path, path);
    assert_load_error(path, expected);
    ck_assert_int_eq(err.count, 5);
    setenv("MF_TEST_BINARY", "ab\x1b[31m", 1);
    put_file("env.yaml", "a: x${env:MF_TEST_BINARY}\n", path, sizeof path);
    snprintf(expected, sizeof expected,
             "%s:1:4: a: environment variable 'MF_TEST_BINARY' holds a control character (0x1B); "
             "values must be UTF-8 text",
             path);
    assert_load_error(path, expected);
    put_file("env.yaml", "include: [c.yaml, '${env:MF_TEST_UNSET}']\n", path, sizeof path);
    snprintf(expected, sizeof expected,
             "%s:1:19: include[1]: environment variable 'MF_TEST_UNSET' is not set (write "
             "${env:MF_TEST_UNSET,default} for a default)",
             path);
    assert_load_error(path, expected);
    unlink(path);
    unlink(scratch("c.yaml"));
    scratch_done();
}
END_TEST

START_TEST(test_string_list_getter)
{
    mf_config *root = parse_ok("data:\n"
                               "  modalities: [rgb, \"depth\", 3]\n"
                               "  nested: [a, [b]]\n"
                               "  one: rgb\n");
    const char *names[3] = {NULL, NULL, NULL};
    int n = 0;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_config_string_list(root, "data.modalities", names, 3, &n, &err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(names[0], "rgb");
    ck_assert_str_eq(names[1], "depth");
    ck_assert_str_eq(names[2], "3"); /* any scalar is a string */
    ck_assert_int_eq(err.count, 0);
    ck_assert_int_eq(mf_config_string_list(root, "data.modalities", names, 2, &n, &err), -1);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(mf_config_string_list(root, "data.nested", names, 3, &n, &err), -1);
    ck_assert_int_eq(mf_config_string_list(root, "data.one", names, 3, &n, &err), -1);
    ck_assert_int_eq(mf_config_string_list(root, "data.missing", names, 3, &n, &err), -1);
    ck_assert_str_eq(err.msg,
                     "q.yaml:2:15: data.modalities: expected at most 2 elements, got a list of 3\n"
                     "q.yaml:3:15: data.nested[1]: expected a string, got a list\n"
                     "q.yaml:4:8: data.one: expected a list of strings, got 'rgb'\n"
                     "q.yaml:2:3: data: missing required key 'missing'");
    mf_config_free(root);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_marks_and_paths);
    tcase_add_test(tc, test_override_dotted_key);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_parse_accepts);
    tcase_add_test(tc, test_aliases_are_copies);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_check_unknown_and_missing_keys);
    tcase_add_test(tc, test_check_types_ranges_enums);
    tcase_add_test(tc, test_check_fills_defaults);
    tcase_add_test(tc, test_getters);
    tcase_add_test(tc, test_type_names);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_did_you_mean);
    tcase_add_test(tc, test_write_round_trip);
    tcase_add_test(tc, test_includes_merge);
    tcase_add_test(tc, test_include_errors);
    tcase_add_test(tc, test_env_interpolation);
    tcase_add_test(tc, test_string_list_getter);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return mf_test_run(config_suite());
}
