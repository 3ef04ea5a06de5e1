/* The dataset readers idx and shapes, through the plugin API as the host uses them:
 * idx reads back small IDX files of every type exactly, gzipped or plain, and refuses each
 * kind of bad file with its own sentence; shapes is deterministic, its captions decode to
 * the scene the generator made (checked against the rendered pixels), and captions that
 * share their words but bind them differently belong to different images.
 */
#include "mf_check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include <mmfuse/host.h>

/* The generator itself, for the scene behind each sample (its statics: the test hook). */
#include "../plugins/datasets/shapes.c"

static mf_registry *registry(void)
{
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_registry_add_dir(reg, mf_default_plugin_dir(), &err), 0);
    return reg;
}

/* A dataset opened from YAML text, its declared defaults filled in as the host does. */
typedef struct opened {
    mf_registry *reg;
    mf_config *cfg;
    mf_dataset *ds;
    const mf_dataset_info *info;
} opened;

static mf_dataset *open_data(opened *o, const char *reader, const char *yaml, mf_error *err)
{
    memset(o, 0, sizeof *o);
    mf_error_clear(err);
    o->reg = registry();
    const mf_plugin *p = mf_registry_find(o->reg, MF_KIND_DATASET, reader, NULL);
    ck_assert_msg(p != NULL, "no dataset plugin '%s'", reader);
    o->cfg = mf_config_parse(yaml, strlen(yaml), "t.yaml", err);
    ck_assert_msg(o->cfg != NULL, "%s", err->msg);
    ck_assert_msg(mf_config_check(o->cfg, p->params, NULL, err) == 0, "%s", err->msg);
    o->ds = mf_dataset_open(p, o->cfg, "/", err);
    o->info = o->ds ? mf_dataset_get_info(o->ds) : NULL;
    return o->ds;
}

static void close_data(opened *o)
{
    mf_dataset_close(o->ds);
    mf_config_free(o->cfg);
    mf_registry_free(o->reg);
}

/* Read samples idx[0..n) of a one- or two-modality dataset into fresh buffers. */
typedef struct batch {
    float *x[2];
    int32_t labels[8192];
} batch;

static void read_batch(opened *o, int64_t n, const int64_t *idx, batch *b)
{
    ck_assert_int_le(n, 8192);
    memset(b, 0, sizeof *b);
    for (int m = 0; m < o->info->n_modalities; m++)
        b->x[m] = malloc((size_t)(n * mf_shape_numel(&o->info->modalities[m].shape)) *
                         sizeof(float));
    mf_batch_buffers out = {sizeof out, b->x, b->labels, NULL};
    mf_error err;
    mf_error_clear(&err);
    ck_assert_msg(mf_dataset_read(o->ds, n, idx, &out, &err) == 0, "%s", err.msg);
}

static void free_batch(batch *b)
{
    free(b->x[0]);
    free(b->x[1]);
}

/* ---------------------------------------------------------------- IDX files */
#include "tmpdir.h"


static void write_bytes(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(tmp_path(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_gz(const char *name, const void *data, size_t len)
{
    gzFile f = gzopen(tmp_path(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
    gzclose(f);
}

static size_t read_bytes(const char *name, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(tmp_path(name), "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* An IDX file in memory: header, then values given as doubles stored in the type's
 * big-endian encoding. */
typedef struct idx_bytes {
    uint8_t b[4096];
    size_t len;
} idx_bytes;

static int type_size(int code)
{
    return code == 0x0B ? 2 : code == 0x0C || code == 0x0D ? 4 : code == 0x0E ? 8 : 1;
}

static void idx_make(idx_bytes *o, int code, int ndim, const int *dims, const double *v, int n)
{
    uint8_t *p = o->b;
    *p++ = 0, *p++ = 0, *p++ = (uint8_t)code, *p++ = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        for (int s = 24; s >= 0; s -= 8)
            *p++ = (uint8_t)((uint32_t)dims[d] >> s);
    for (int i = 0; i < n; i++) {
        uint64_t u;
        if (code == 0x0D) {
            float f = (float)v[i];
            uint32_t w;
            memcpy(&w, &f, 4);
            u = w;
        } else if (code == 0x0E) {
            memcpy(&u, &v[i], 8);
        } else {
            u = (uint64_t)(int64_t)v[i];
        }
        for (int s = 8 * (type_size(code) - 1); s >= 0; s -= 8)
            *p++ = (uint8_t)(u >> s);
    }
    o->len = (size_t)(p - o->b);
}

/* Images (n, 2, 3) of ubyte values first, first+1, … and labels lab[0..n). */
static void write_pair(const char *images, const char *labels, int n, int first, const int *lab,
                       int gz)
{
    double v[256], y[64];
    for (int i = 0; i < 6 * n; i++)
        v[i] = (first + i) % 256;
    for (int i = 0; i < n; i++)
        y[i] = lab[i];
    idx_bytes im, lb;
    idx_make(&im, 0x08, 3, (int[]){n, 2, 3}, v, 6 * n);
    idx_make(&lb, 0x08, 1, (int[]){n}, y, n);
    (gz ? write_gz : write_bytes)(images, im.b, im.len);
    (gz ? write_gz : write_bytes)(labels, lb.b, lb.len);
}

/* The reader's section for files in tmp. */
static const char *idx_yaml(const char *train_images, const char *train_labels,
                            const char *test_images, const char *test_labels, const char *extra)
{
    static char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "dir: %s\ntrain_images: '%s'\ntrain_labels: '%s'\ntest_images: '%s'\n"
             "test_labels: '%s'\n%s",
             tmp, train_images, train_labels, test_images, test_labels, extra);
    return yaml;
}

static void round_trip(int gz)
{
    make_tmp("idx");
    const char *ext = gz ? ".gz" : "";
    char f[4][64];
    static const char *const base[4] = {"tr-img", "tr-lab", "te-img", "te-lab"};
    for (int i = 0; i < 4; i++)
        snprintf(f[i], sizeof f[i], "%s%s", base[i], ext);
    write_pair(f[0], f[1], 3, 0, (int[]){2, 0, 1}, gz);
    write_pair(f[2], f[3], 2, 100, (int[]){1, 2}, gz);
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "idx", idx_yaml(f[0], f[1], f[2], f[3], "scale: 1\n"), &err),
                  "%s", err.msg);
    const mf_dataset_info *in = o.info;
    ck_assert_int_eq(in->n_samples, 5);
    ck_assert_int_eq(in->n_modalities, 1);
    ck_assert_str_eq(in->modalities[0].name, "image");
    mf_shape want = mf_shape3(1, 2, 3);
    ck_assert(mf_shape_equal(&in->modalities[0].shape, &want));
    ck_assert_int_eq(in->modalities[0].dtype, MF_DTYPE_U8);
    ck_assert_int_eq(in->n_classes, 3);
    ck_assert_str_eq(in->class_names[2], "2");
    static const uint8_t splits[5] = {MF_SPLIT_TRAIN, MF_SPLIT_TRAIN, MF_SPLIT_TRAIN,
                                      MF_SPLIT_TEST, MF_SPLIT_TEST};
    ck_assert_mem_eq(in->split, splits, 5);
    batch b;
    read_batch(&o, 4, (int64_t[]){4, 0, 3, 2}, &b);
    static const int first[4] = {106, 0, 100, 12}, labels[4] = {2, 2, 1, 1};
    for (int i = 0; i < 4; i++) {
        for (int e = 0; e < 6; e++)
            ck_assert_float_eq(b.x[0][6 * i + e], (float)(first[i] + e));
        ck_assert_int_eq(b.labels[i], labels[i]);
    }
    free_batch(&b);
    close_data(&o);
    remove_tmp();
}

START_TEST(idx_plain_round_trip) { round_trip(0); }
END_TEST

START_TEST(idx_gzip_round_trip) { round_trip(1); }
END_TEST

/* Every type code, read back exactly (scale 1), with its storage type; 2-D and 4-D images. */
START_TEST(idx_every_type)
{
    static const struct {
        int code;
        mf_dtype dtype;
        double v[4];
    } types[] = {
        {0x08, MF_DTYPE_U8, {0, 7, 200, 255}},
        {0x09, MF_DTYPE_I8, {-128, -5, 0, 127}},
        {0x0B, MF_DTYPE_I16, {-32768, -300, 1000, 32767}},
        {0x0C, MF_DTYPE_I32, {-16777216, -70000, 0, 16777215}},
        {0x0D, MF_DTYPE_F32, {1.5, -2.25, 1e-3, 3.0e8}},
        {0x0E, MF_DTYPE_F64, {3.125, -0.5, 1e-300, 1e30}}, /* 1e300: refused (issue 13) */
    };
    make_tmp("idx");
    idx_bytes lb;
    idx_make(&lb, 0x0C, 1, (int[]){2}, (double[]){1, 0}, 2); /* int labels */
    write_bytes("lab", lb.b, lb.len);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int layout = 0; layout < 2; layout++) {
            /* (2,2) features, or (2,1,1,2): channels first */
            idx_bytes im;
            if (layout == 0)
                idx_make(&im, types[t].code, 2, (int[]){2, 2}, types[t].v, 4);
            else
                idx_make(&im, types[t].code, 4, (int[]){2, 1, 1, 2}, types[t].v, 4);
            write_gz("img.gz", im.b, im.len);
            opened o;
            mf_error err;
            ck_assert_msg(open_data(&o, "idx", idx_yaml("img.gz", "lab", "", "", "scale: 1\n"),
                                    &err),
                          "%s", err.msg);
            ck_assert_int_eq(o.info->modalities[0].dtype, types[t].dtype);
            mf_shape want = layout ? mf_shape3(1, 1, 2) : mf_shape1(2);
            ck_assert(mf_shape_equal(&o.info->modalities[0].shape, &want));
            ck_assert_int_eq(o.info->n_classes, 2);
            batch b;
            read_batch(&o, 2, (int64_t[]){0, 1}, &b);
            for (int e = 0; e < 4; e++)
                ck_assert_float_eq(b.x[0][e], (float)types[t].v[e]);
            ck_assert_int_eq(b.labels[0], 1);
            ck_assert_int_eq(b.labels[1], 0);
            free_batch(&b);
            close_data(&o);
        }
    }
    remove_tmp();
}
END_TEST

/* The default scale maps ubyte 0…255 to 0…1; class_names name the classes. */
START_TEST(idx_scale_and_names)
{
    make_tmp("idx");
    idx_bytes im;
    idx_make(&im, 0x08, 3, (int[]){1, 1, 3}, (double[]){0, 51, 255}, 3);
    write_bytes("img", im.b, im.len);
    idx_make(&im, 0x08, 1, (int[]){1}, (double[]){1}, 1);
    write_bytes("lab", im.b, im.len);
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "idx",
                            idx_yaml("img", "lab", "", "", "class_names: [cat, dog, emu]\n"
                                                           "modality: pixels\n"),
                            &err),
                  "%s", err.msg);
    ck_assert_int_eq(o.info->n_classes, 3);
    ck_assert_str_eq(o.info->class_names[1], "dog");
    ck_assert_str_eq(o.info->modalities[0].name, "pixels");
    batch b;
    read_batch(&o, 1, (int64_t[]){0}, &b);
    ck_assert_float_eq(b.x[0][0], 0.0f);
    ck_assert_float_eq(b.x[0][1], 0.2f);
    ck_assert_float_eq(b.x[0][2], 1.0f);
    free_batch(&b);
    close_data(&o);
    remove_tmp();
}
END_TEST

/* Open with these training files (no test pair) and expect exactly this error. */
static void expect_error(const char *images, const char *labels, const char *extra,
                         const char *expected)
{
    opened o;
    mf_error err;
    ck_assert_ptr_null(open_data(&o, "idx", idx_yaml(images, labels, "", "", extra), &err));
    ck_assert_str_eq(err.msg, expected);
    ck_assert_int_eq(err.count, 1);
    close_data(&o);
}

static char expected[8192];

static const char *msg(const char *file, const char *sentence)
{
    snprintf(expected, sizeof expected, "%s/%s: %s", tmp, file, sentence);
    return expected;
}

START_TEST(idx_bad_input)
{
    make_tmp("idx");
    write_pair("img", "lab", 3, 0, (int[]){0, 1, 2}, 0);
    write_pair("img.gz", "lab.gz", 3, 0, (int[]){0, 1, 2}, 1);

    expect_error("nope.gz", "lab", "", msg("nope.gz", "cannot be opened: No such file or directory"));
    expect_error("img", "nope", "", msg("nope", "cannot be opened: No such file or directory"));

    /* not IDX: a zip file, and gzipped text */
    write_bytes("zip", "PK\3\4rest", 8);
    expect_error("zip", "lab", "",
                 msg("zip", "not an IDX file: it starts with 0x504b0304, not two zero bytes, a "
                            "type code and a dimension count"));
    write_gz("text.gz", "hello, world", 12);
    expect_error("text.gz", "lab", "",
                 msg("text.gz", "not an IDX file: it starts with 0x68656c6c, not two zero "
                                "bytes, a type code and a dimension count"));

    idx_bytes b;
    idx_make(&b, 0x0A, 3, (int[]){1, 1, 1}, (double[]){0}, 1);
    write_bytes("type", b.b, b.len);
    expect_error("type", "lab", "",
                 msg("type", "IDX type code 0x0a is not supported (0x08 ubyte, 0x09 byte, 0x0b "
                             "short, 0x0c int, 0x0d float, 0x0e double)"));
    expect_error("lab", "lab", "",
                 msg("lab", "holds 1-dimensional IDX data, but images have 2 to 4 dimensions "
                            "(the first counts them)"));
    expect_error("img", "img", "",
                 msg("img", "holds 3-dimensional IDX data, but labels have 1 dimension"));

    /* truncated header: nothing, inside the magic, inside the sizes; plain and gzipped */
    write_bytes("empty", "", 0);
    expect_error("empty", "lab", "",
                 msg("empty", "truncated: the file ends inside its IDX header, after 0 bytes"));
    write_bytes("short", "\0\0", 2);
    expect_error("short", "lab", "",
                 msg("short", "truncated: the file ends inside its IDX header, after 2 bytes"));
    write_gz("head.gz", "\0\0\x08\x03\0\0\0\x03\0", 9);
    expect_error("head.gz", "lab", "",
                 msg("head.gz", "truncated: the file ends inside its IDX header, after 9 bytes"));

    /* truncated body: 3 images of 6 bytes promised, 10 bytes there */
    uint8_t buf[4096];
    size_t n = read_bytes("img", buf, sizeof buf);
    write_bytes("cut", buf, 16 + 10);
    expect_error("cut", "lab", "",
                 msg("cut", "truncated: the header promises 3 images (18 bytes) but the data "
                            "ends in item 1, after 10 bytes"));
    write_gz("cut.gz", buf, 16 + 10);
    expect_error("cut.gz", "lab", "",
                 msg("cut.gz", "truncated: the header promises 3 images (18 bytes) but the data "
                               "ends in item 1, after 10 bytes"));
    n = read_bytes("lab", buf, sizeof buf);
    write_bytes("cut-labels", buf, n - 1);
    expect_error("img", "cut-labels",
                 "", msg("cut-labels", "truncated: the header promises 3 labels (3 bytes) but "
                                       "the data ends in item 2, after 2 bytes"));

    /* gzip: a stream cut before its checksum, a wrong checksum, a bad header */
    n = read_bytes("img.gz", buf, sizeof buf);
    write_bytes("nocrc.gz", buf, n - 8);
    expect_error("nocrc.gz", "lab", "",
                 msg("nocrc.gz", "truncated: the gzip stream ends before its checksum"));
    buf[n - 8] ^= 0xff;
    write_bytes("crc.gz", buf, n);
    expect_error("crc.gz", "lab", "", msg("crc.gz", "corrupt gzip data (incorrect data check)"));
    buf[n - 8] ^= 0xff;
    buf[2] = 7; /* compression method */
    write_bytes("method.gz", buf, n);
    expect_error("method.gz", "lab", "",
                 msg("method.gz", "corrupt gzip data (unknown compression method)"));

    /* sizes */
    idx_make(&b, 0x08, 3, (int[]){2, 0, 3}, NULL, 0);
    write_bytes("zero", b.b, b.len);
    expect_error("zero", "lab", "", msg("zero", "dimension 2 of the IDX header is 0"));
    idx_make(&b, 0x0E, 4, (int[]){-1, -1, 2, 2}, NULL, 0);
    write_bytes("huge", b.b, b.len);
    expect_error("huge", "lab", "",
                 msg("huge", "the IDX header promises more than 2^40 bytes of data"));
    remove_tmp();
}
END_TEST

START_TEST(idx_label_errors)
{
    make_tmp("idx");
    write_pair("img", "lab", 3, 0, (int[]){0, 1, 2}, 0);
    write_pair("img2", "lab2", 2, 0, (int[]){0, 1}, 0);
    char want[8192];
    snprintf(want, sizeof want, "%s/lab2: holds 2 labels for the 3 images of %s/img", tmp, tmp);
    expect_error("img", "lab2", "", want);
    expect_error("img", "lab", "class_names: [a, b]\n",
                 msg("lab", "label 2 of item 2 is out of range: class_names has 2 names (labels "
                            "0 to 1)"));
    idx_bytes b;
    idx_make(&b, 0x09, 1, (int[]){3}, (double[]){0, -1, 1}, 3);
    write_bytes("neg", b.b, b.len);
    expect_error("img", "neg", "", msg("neg", "label -1 of item 1 is negative"));
    idx_make(&b, 0x0C, 1, (int[]){3}, (double[]){0, 70000, 1}, 3);
    write_bytes("big", b.b, b.len);
    expect_error("img", "big", "",
                 msg("big", "label 70000 of item 1 is above 65535; give class_names to use "
                            "labels that large"));
    idx_make(&b, 0x0D, 1, (int[]){3}, (double[]){0, 1, 1}, 3);
    write_bytes("float", b.b, b.len);
    expect_error("img", "float", "",
                 msg("float", "holds float labels, but class labels are integers"));

    /* test images of another size than the training images */
    idx_bytes im;
    idx_make(&im, 0x08, 3, (int[]){1, 3, 2}, (double[]){0, 0, 0, 0, 0, 0}, 6);
    write_bytes("other", im.b, im.len);
    idx_make(&b, 0x08, 1, (int[]){1}, (double[]){0}, 1);
    write_bytes("one", b.b, b.len);
    opened o;
    mf_error err;
    ck_assert_ptr_null(open_data(&o, "idx", idx_yaml("img", "lab", "other", "one", ""), &err));
    snprintf(want, sizeof want, "%s/other: its images differ in size from those of %s/img", tmp,
             tmp);
    ck_assert_str_eq(err.msg, want);
    close_data(&o);

    /* half a test pair */
    ck_assert_ptr_null(open_data(&o, "idx", idx_yaml("img", "lab", "img", "", ""), &err));
    ck_assert_str_eq(err.msg, "t.yaml:5:14: test_labels: give both test files or neither (\"\")");
    close_data(&o);
    remove_tmp();
}
END_TEST

/* Issue 13: values that are not finite float32 (times scale) are refused naming the file,
 * the item and the value; trailing bytes with both sizes; a FIFO at once; class labels far
 * beyond the sample count; paths without "./" doubled. */
START_TEST(idx_hardening)
{
    make_tmp("idx");
    idx_bytes b;
    idx_make(&b, 0x08, 1, (int[]){2}, (double[]){0, 1}, 2);
    write_bytes("lab2", b.b, b.len);
    idx_make(&b, 0x0D, 2, (int[]){2, 2}, (double[]){0, NAN, 1, 2}, 4);
    write_bytes("nan", b.b, b.len);
    expect_error("nan", "lab2", "scale: 1\n", msg("nan", "value 1 of item 0 is NaN"));
    idx_make(&b, 0x0E, 2, (int[]){2, 2}, (double[]){0, 1, 2, -INFINITY}, 4);
    write_gz("inf.gz", b.b, b.len);
    expect_error("inf.gz", "lab2", "scale: 1\n", msg("inf.gz", "value 1 of item 1 is -Inf"));
    idx_make(&b, 0x0E, 2, (int[]){2, 2}, (double[]){0, 1, 2, 1e300}, 4);
    write_bytes("big", b.b, b.len);
    expect_error("big", "lab2", "scale: 1\n",
                 msg("big", "value 1 of item 1 is 1e+300, beyond float32's range"));
    idx_make(&b, 0x0D, 2, (int[]){2, 2}, (double[]){0, 1e30, 2, 3}, 4);
    write_bytes("scaled", b.b, b.len);
    expect_error("scaled", "lab2", "scale: 1e10\n",
                 msg("scaled", "value 1 of item 0, 1e+30, times scale 1e+10 is beyond "
                               "float32's range"));
    idx_make(&b, 0x08, 2, (int[]){2, 2}, (double[]){0, 1, 255, 3}, 4);
    write_bytes("ubyte", b.b, b.len);
    expect_error("ubyte", "lab2", "scale: 1e37\n",
                 msg("ubyte", "value 0 of item 1, 255, times scale 1e+37 is beyond float32's "
                              "range"));

    /* trailing bytes: 3 images of (2,3) ubyte are 16 + 18 bytes */
    write_pair("img", "lab", 3, 0, (int[]){0, 1, 2}, 0);
    uint8_t buf[4096];
    size_t n = read_bytes("img", buf, sizeof buf);
    ck_assert_uint_eq(n, 34);
    memcpy(buf + n, "xyz", 3);
    write_bytes("long", buf, n + 3);
    expect_error("long", "lab", "",
                 msg("long", "37 bytes of data where its IDX header accounts for 34: the file "
                             "has trailing bytes or a wrong header"));
    write_gz("long.gz", buf, n + 3);
    expect_error("long.gz", "lab", "",
                 msg("long.gz", "37 bytes of data where its IDX header accounts for 34: the "
                                "file has trailing bytes or a wrong header"));

    /* a FIFO with no writer: refused at once, not a hang */
    ck_assert_int_eq(mkfifo(tmp_path("pipe"), 0600), 0);
    alarm(20);
    expect_error("pipe", "lab", "",
                 msg("pipe", "cannot be opened: it is not a regular file (a FIFO)"));
    expect_error("img", "pipe", "",
                 msg("pipe", "cannot be opened: it is not a regular file (a FIFO)"));
    alarm(0);

    /* a stray label: classes 0 … 2000 for 3 samples */
    idx_make(&b, 0x0B, 1, (int[]){3}, (double[]){0, 2000, 1}, 3);
    write_bytes("stray", b.b, b.len);
    expect_error("img", "stray", "",
                 msg("stray", "label 2000 of item 1 would make 2001 classes for 3 samples; "
                              "number the classes from 0, or give class_names"));
    idx_make(&b, 0x0B, 1, (int[]){3}, (double[]){0, 1023, 1}, 3);
    write_bytes("sparse", b.b, b.len);
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "idx", idx_yaml("img", "sparse", "", "", ""), &err), "%s",
                  err.msg);
    ck_assert_int_eq(o.info->n_classes, 1024);
    close_data(&o);

    /* "dir/./x", "dir//x": one path in messages */
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "dir: '%s/.//./'\ntrain_images: './nope'\ntrain_labels: lab\n"
             "test_images: ''\ntest_labels: ''\n", tmp);
    ck_assert_ptr_null(open_data(&o, "idx", yaml, &err));
    ck_assert_str_eq(err.msg, msg("nope", "cannot be opened: No such file or directory"));
    close_data(&o);
    remove_tmp();
}
END_TEST

/* A sample index outside the data is named, not read out of bounds (issue 13). */
START_TEST(synthetic_refuses_outside)
{
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "synthetic", "samples: 20\n", &err), "%s", err.msg);
    float a[16], b[16], *x[2] = {a, b};
    int32_t labels[1];
    mf_batch_buffers out = {sizeof out, x, labels, NULL};
    mf_error_clear(&err);
    ck_assert_int_eq(mf_dataset_read(o.ds, 1, (int64_t[]){20}, &out, &err), -1);
    ck_assert_str_eq(err.msg, "synthetic: sample 20 is outside 0 to 19");
    ck_assert_int_eq(mf_dataset_read(o.ds, 1, (int64_t[]){19}, &out, &err), 0);
    close_data(&o);
}
END_TEST

/* Debian's dataset-fashion-mnist, when installed. */
START_TEST(idx_fashion_mnist)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
        printf("skipped: %s is not installed (apt-get install dataset-fashion-mnist)\n", dir);
        return;
    }
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "idx", "{}", &err), "%s", err.msg);
    const mf_dataset_info *in = o.info;
    ck_assert_int_eq(in->n_samples, 70000);
    int64_t count[3] = {0};
    for (int64_t i = 0; i < in->n_samples; i++)
        count[in->split[i]]++;
    ck_assert_int_eq(count[MF_SPLIT_TRAIN], 60000);
    ck_assert_int_eq(count[MF_SPLIT_TEST], 10000);
    mf_shape want = mf_shape3(1, 28, 28);
    ck_assert(mf_shape_equal(&in->modalities[0].shape, &want));
    ck_assert_int_eq(in->modalities[0].dtype, MF_DTYPE_U8);
    ck_assert_int_eq(in->n_classes, 10);
    batch b;
    read_batch(&o, 2, (int64_t[]){0, 60000}, &b);
    ck_assert_int_eq(b.labels[0], 9); /* the first training image is an ankle boot */
    ck_assert_int_eq(b.labels[1], 9); /* so is the first test image */
    float lo = 1, hi = 0;
    for (int e = 0; e < 2 * 784; e++) {
        lo = fminf(lo, b.x[0][e]);
        hi = fmaxf(hi, b.x[0][e]);
    }
    ck_assert_float_eq(lo, 0.0f);
    ck_assert_float_eq(hi, 1.0f);
    free_batch(&b);
    close_data(&o);
}
END_TEST

/* ---------------------------------------------------------------- shapes */
static int64_t *range(int64_t n)
{
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    return idx;
}

START_TEST(shapes_deterministic)
{
    opened a, b, c, d;
    mf_error err;
    ck_assert_msg(open_data(&a, "shapes", "seed: 3", &err), "%s", err.msg);
    ck_assert_msg(open_data(&b, "shapes", "seed: 3", &err), "%s", err.msg);
    ck_assert_msg(open_data(&c, "shapes", "seed: 4", &err), "%s", err.msg);
    ck_assert_msg(open_data(&d, "shapes", "{seed: 3, samples: 100}", &err), "%s", err.msg);
    const int64_t idx[3] = {42, 0, 4999}, image = 3 * 32 * 32;
    batch ba, bb, bc, bd;
    read_batch(&a, 3, idx, &ba);
    read_batch(&b, 3, idx, &bb);
    read_batch(&c, 3, idx, &bc);
    read_batch(&d, 1, idx, &bd);
    ck_assert_mem_eq(ba.x[0], bb.x[0], 3 * image * sizeof(float));
    ck_assert_mem_eq(ba.x[1], bb.x[1], 3 * 12 * sizeof(float));
    ck_assert_mem_eq(ba.labels, bb.labels, 3 * sizeof(int32_t));
    ck_assert(memcmp(ba.x[0], bc.x[0], 3 * image * sizeof(float)) != 0);
    /* sample 42 does not depend on the sample count */
    ck_assert_mem_eq(ba.x[0], bd.x[0], image * sizeof(float));
    ck_assert_mem_eq(ba.x[1], bd.x[1], 12 * sizeof(float));
    free_batch(&ba), free_batch(&bb), free_batch(&bc), free_batch(&bd);
    close_data(&a), close_data(&b), close_data(&c), close_data(&d);
}
END_TEST

/* Parse a decoded caption: "<size> <colour> <shape> [<relation> <size> <colour> <shape>]".
 * Returns 0 when it is not such a phrase. */
static int parse_caption(const char *const *w, int n, shapes_scene *out)
{
    memset(out, 0, sizeof *out);
    int k = 0, pos = 0;
    out->relation = REL_NONE;
    for (;;) {
        if (pos + 3 > n)
            return 0;
        shapes_object *o = &out->obj[k];
        o->size = o->color = o->shape = -1;
        for (int i = 0; i < N_SIZES; i++)
            o->size = strcmp(w[pos], shapes_vocabulary[TOK_SIZE + i]) ? o->size : i;
        for (int i = 0; i < N_COLORS; i++)
            o->color = strcmp(w[pos + 1], shapes_vocabulary[TOK_COLOR + i]) ? o->color : i;
        for (int i = 0; i < N_SHAPES; i++)
            o->shape = strcmp(w[pos + 2], shapes_vocabulary[TOK_SHAPE + i]) ? o->shape : i;
        if (o->size < 0 || o->color < 0 || o->shape < 0)
            return 0;
        pos += 3;
        out->n = ++k;
        if (pos == n || k == 2)
            return pos == n;
        if (pos + 2 <= n && !strcmp(w[pos], "left") && !strcmp(w[pos + 1], "of"))
            out->relation = REL_LEFT, pos += 2;
        else if (pos + 2 <= n && !strcmp(w[pos], "right") && !strcmp(w[pos + 1], "of"))
            out->relation = REL_RIGHT, pos += 2;
        else if (!strcmp(w[pos], "above"))
            out->relation = REL_ABOVE, pos += 1;
        else if (!strcmp(w[pos], "below"))
            out->relation = REL_BELOW, pos += 1;
        else
            return 0;
    }
}

enum { N_CHECK = 3000 };

/* Every caption decodes to a phrase of the grammar naming exactly the generator's objects;
 * the image shows each object's colour at its centre, and the relation holds there. */
START_TEST(shapes_captions_match_images)
{
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "shapes", "{seed: 5, samples: 3000}", &err), "%s", err.msg);
    const mf_dataset_info *in = o.info;
    ck_assert_int_eq(in->n_modalities, 2);
    ck_assert_str_eq(in->modalities[1].name, "caption");
    ck_assert_int_eq(in->modalities[1].dtype, MF_DTYPE_TOKEN);
    ck_assert_int_eq(in->vocab_size, VOCAB_SIZE);
    ck_assert_str_eq(in->vocabulary[0], "<pad>");
    ck_assert_int_eq(in->has_padding, 1); /* captions are padded with <pad>: the host masks it */
    ck_assert_int_eq(in->pad_token, 0);
    ck_assert_int_eq(in->n_classes, N_SHAPES);
    ck_assert_str_eq(in->class_names[0], "circle");
    int64_t *idx = range(N_CHECK);
    batch b;
    read_batch(&o, N_CHECK, idx, &b);
    int relations[N_RELATIONS] = {0}, lengths[13] = {0};
    for (int64_t i = 0; i < N_CHECK; i++) {
        const float *tok = b.x[1] + i * 12, *x = b.x[0] + i * 3 * 32 * 32;
        const char *words[12];
        int n = 0;
        while (n < 12 && tok[n] != 0) {
            ck_assert(tok[n] == floorf(tok[n]) && tok[n] > 0 && tok[n] < in->vocab_size);
            words[n] = in->vocabulary[(int)tok[n]];
            n++;
        }
        for (int t = n; t < 12; t++)
            ck_assert_float_eq(tok[t], 0); /* padding only after the caption */
        lengths[n]++;
        shapes_scene said, truth;
        ck_assert_msg(parse_caption(words, n, &said), "sample %lld: not a caption", (long long)i);
        shapes_scene_make(5, i, 0.75, 32, &truth);
        ck_assert_int_eq(said.n, truth.n);
        ck_assert_int_eq(said.relation, truth.relation);
        relations[truth.relation]++;
        for (int k = 0; k < truth.n; k++) {
            const shapes_object *s = &said.obj[k], *t = &truth.obj[k];
            ck_assert(s->size == t->size && s->color == t->color && s->shape == t->shape);
            /* the pixel under the centre has the object's colour (noise σ = 0.05) */
            int px = (int)t->cx, py = (int)t->cy;
            for (int c = 0; c < 3; c++)
                ck_assert_msg(fabsf(x[c * 1024 + py * 32 + px] - shapes_rgb[t->color][c]) < 0.25f,
                              "sample %lld object %d: colour %s not at its centre", (long long)i,
                              k, shapes_vocabulary[TOK_COLOR + t->color]);
        }
        ck_assert_int_eq(b.labels[i], truth.obj[0].shape);
        if (truth.n == 2) {
            const double dx = truth.obj[1].cx - truth.obj[0].cx,
                         dy = truth.obj[1].cy - truth.obj[0].cy; /* from the first to the second */
            const double along = truth.relation <= REL_RIGHT ? dx : dy,
                         across = truth.relation <= REL_RIGHT ? dy : dx;
            const int first_is_lower = truth.relation == REL_LEFT || truth.relation == REL_ABOVE;
            ck_assert(first_is_lower ? along > 0 : along < 0);
            ck_assert(fabs(across) <= fabs(along) / 2 + 1e-9);
            ck_assert(fabs(along) >= truth.obj[0].r + truth.obj[1].r + 1 - 1e-9); /* no overlap */
        }
    }
    for (int r = 0; r < N_RELATIONS; r++)
        ck_assert_int_gt(relations[r], N_CHECK / 20);
    /* variable length: 3 words alone, 7 (above/below) or 8 (left/right of) for a pair */
    ck_assert_int_eq(lengths[3], relations[REL_NONE]);
    ck_assert_int_eq(lengths[7], relations[REL_ABOVE] + relations[REL_BELOW]);
    ck_assert_int_eq(lengths[8], relations[REL_LEFT] + relations[REL_RIGHT]);
    free(idx);
    free_batch(&b);
    close_data(&o);
}
END_TEST

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Captions with the same words in another order or binding come with different images —
 * and such pairs (e.g. swapped colours) are common enough to matter for retrieval. */
START_TEST(shapes_binding)
{
    opened o;
    mf_error err;
    ck_assert_msg(open_data(&o, "shapes", "{seed: 9, samples: 8000, pair: 1}", &err), "%s",
                  err.msg);
    int64_t *idx = range(8000);
    batch b;
    read_batch(&o, 8000, idx, &b);
    float (*bag)[12] = malloc(8000 * sizeof *bag);
    for (int i = 0; i < 8000; i++) {
        memcpy(bag[i], b.x[1] + i * 12, sizeof bag[i]);
        qsort(bag[i], 12, sizeof(float), cmp_float);
    }
    int64_t pairs = 0, swapped_colours = 0;
    for (int i = 0; i < 8000; i++)
        for (int j = i + 1; j < 8000; j++) {
            if (memcmp(bag[i], bag[j], sizeof bag[i]) ||
                !memcmp(b.x[1] + i * 12, b.x[1] + j * 12, 12 * sizeof(float)))
                continue;
            pairs++;
            ck_assert(memcmp(b.x[0] + (int64_t)i * 3072, b.x[0] + (int64_t)j * 3072,
                             3072 * sizeof(float)) != 0);
            const float *ci = b.x[1] + i * 12, *cj = b.x[1] + j * 12;
            /* same sizes, shapes and relation, colours exchanged */
            swapped_colours += ci[1] == cj[5 + (ci[3] < TOK_ABOVE)] &&
                               ci[5 + (ci[3] < TOK_ABOVE)] == cj[1] && ci[1] != cj[1] &&
                               ci[0] == cj[0] && ci[2] == cj[2] && ci[3] == cj[3];
        }
    printf("shapes binding: %lld pairs with the same words in another order or binding, %lld "
           "with swapped colours\n",
           (long long)pairs, (long long)swapped_colours);
    ck_assert_int_gt(pairs, 100);
    ck_assert_int_gt(swapped_colours, 5);
    free(bag);
    free(idx);
    free_batch(&b);
    close_data(&o);
}
END_TEST

START_TEST(shapes_labels_and_speed)
{
    static const char *const yaml[3] = {"{label: shape}", "{label: color}", "{label: relation}"};
    static const int classes[3] = {N_SHAPES, N_COLORS, N_RELATIONS};
    for (int l = 0; l < 3; l++) {
        opened o;
        mf_error err;
        ck_assert_msg(open_data(&o, "shapes", yaml[l], &err), "%s", err.msg);
        ck_assert_int_eq(o.info->n_classes, classes[l]);
        int64_t *idx = range(5000);
        batch b;
        clock_t t0 = clock();
        read_batch(&o, 5000, idx, &b);
        double seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
        printf("shapes: 5000 samples read in %.3f s\n", seconds);
        /* reported, not asserted: speed is the benchmark's business, not a test's */
        for (int i = 0; i < 5000; i++) {
            shapes_scene t;
            shapes_scene_make(0, i, 0.75, 32, &t);
            ck_assert_int_eq(b.labels[i], l == 0 ? t.obj[0].shape : l == 1 ? t.obj[0].color
                                                                            : t.relation);
        }
        ck_assert_str_eq(o.info->class_names[classes[l] - 1],
                         l == 0 ? "cross" : l == 1 ? "white" : "alone");
        free(idx);
        free_batch(&b);
        close_data(&o);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("data-readers");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, idx_plain_round_trip);
    tcase_add_test(tc, idx_gzip_round_trip);
    tcase_add_test(tc, idx_every_type);
    tcase_add_test(tc, idx_scale_and_names);
    tcase_add_test(tc, idx_bad_input);
    tcase_add_test(tc, idx_label_errors);
    tcase_add_test(tc, idx_hardening);
    tcase_add_test(tc, synthetic_refuses_outside);
    tcase_add_test(tc, idx_fashion_mnist);
    tcase_add_test(tc, shapes_deterministic);
    tcase_add_test(tc, shapes_captions_match_images);
    tcase_add_test(tc, shapes_binding);
    tcase_add_test(tc, shapes_labels_and_speed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mf_test_run(suite()); }
