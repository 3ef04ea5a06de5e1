/* idx — images and labels in the IDX format of MNIST and Fashion-MNIST, gzipped or plain.
 *
 * An IDX file is a 4-byte magic number — two zero bytes, a type code, a dimension count —
 * then one big-endian 32-bit size per dimension, then the values, big-endian, row-major.
 * Type codes: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double.
 * The first dimension counts the items: images are (N,H,W) — one channel, so a sample is
 * (1,H,W) — or (N,D) features, or (N,C,H,W); labels are (N) integers.
 *
 * Everything is loaded at open and kept as stored (60000 Fashion-MNIST images are 47 MB as
 * bytes, four times that as floats); read() converts the requested samples to float32,
 * multiplied by `scale`. The training pair gives the train split, the optional test pair
 * the test split; the host carves validation out of training.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <mmfuse/mmfuse.h>

#include "data_file.h"

/* Above this a header is taken as corrupt rather than as a request for that much memory. */
#define IDX_MAX_BYTES (INT64_C(1) << 40)
/* Without class_names, classes are 0…max label: a label above this needs names, and so
 * does one of max(IDX_UNNAMED_FLOOR, the sample count) or more (a stray label of 20000 among
 * 64 samples would make a 20001-class head and a 20001² confusion matrix). */
#define IDX_MAX_UNNAMED_CLASS 65535
#define IDX_UNNAMED_FLOOR 1024
#define IDX_PATH_MAX 4096

typedef struct idx_type {
    uint8_t code;
    int size;
    mf_dtype dtype;
    const char *name;
} idx_type;

static const idx_type idx_types[] = {
    {0x08, 1, MF_DTYPE_U8, "ubyte"}, {0x09, 1, MF_DTYPE_I8, "byte"},
    {0x0B, 2, MF_DTYPE_I16, "short"}, {0x0C, 4, MF_DTYPE_I32, "int"},
    {0x0D, 4, MF_DTYPE_F32, "float"}, {0x0E, 8, MF_DTYPE_F64, "double"},
};

/* One IDX file in memory. */
typedef struct idx_array {
    char path[IDX_PATH_MAX];
    const idx_type *type;
    int ndim;
    int64_t dim[4];     /* dim[0] counts the items */
    int64_t item_bytes; /* bytes of one item */
    uint8_t *data;      /* dim[0] × item_bytes, as stored (big-endian) */
} idx_array;

typedef struct idx_state {
    idx_array images[2]; /* train, test (test.data NULL when there is no test pair) */
    char label_path[2][IDX_PATH_MAX];
    int64_t n_train, n;
    int32_t *label;      /* n labels, train then test */
    uint8_t *split;
    double scale;
    float lut[256]; /* ubyte value × scale */
    mf_modality_info modality;
    char modality_name[64];
    int n_classes;
    char **class_name; /* n_classes strings */
} idx_state;

static const mf_param_spec idx_params[] = {
    {"dir", MF_TYPE_STRING, "/usr/share/datasets/fashion-mnist", 0, 0, 0, NULL,
     "Folder of the files (relative to the experiment file); Debian's dataset-fashion-mnist "
     "installs the default."},
    {"train_images", MF_TYPE_STRING, "train-images-idx3-ubyte.gz", 0, 0, 0, NULL,
     "Training images, an IDX file (gzipped or plain) in dir, or an absolute path."},
    {"train_labels", MF_TYPE_STRING, "train-labels-idx1-ubyte.gz", 0, 0, 0, NULL,
     "Training labels, an IDX file of integers."},
    {"test_images", MF_TYPE_STRING, "t10k-images-idx3-ubyte.gz", 0, 0, 0, NULL,
     "Test images; \"\" (with test_labels \"\") for no test split."},
    {"test_labels", MF_TYPE_STRING, "t10k-labels-idx1-ubyte.gz", 0, 0, 0, NULL,
     "Test labels; \"\" (with test_images \"\") for no test split."},
    {"scale", MF_TYPE_FLOAT, "0.00392156862745098", 0, 0, 0, NULL,
     "Every value is multiplied by this; the default 1/255 maps ubyte pixels to [0, 1]."},
    {"modality", MF_TYPE_STRING, "image", 0, 0, 0, NULL, "Name of the image modality."},
    {"class_names", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "Names of the classes, label 0 first; [] names them \"0\" … up to the largest label."},
    MF_PARAM_END,
};

/* ---------------------------------------------------------------- files */
static int64_t be_dim(const uint8_t *p)
{
    return (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | (int64_t)p[3];
}

/* Value e of an item, decoded from big-endian storage. */
static double idx_value(const idx_type *t, const uint8_t *item, int64_t e)
{
    const uint8_t *p = item + e * t->size;
    uint64_t u = 0;
    for (int b = 0; b < t->size; b++)
        u = u << 8 | p[b];
    switch (t->code) {
    case 0x08: return (double)p[0];
    case 0x09: return (double)(int8_t)p[0];
    case 0x0B: return (double)(int16_t)(uint16_t)u;
    case 0x0C: return (double)(int32_t)(uint32_t)u;
    case 0x0D: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, sizeof f);
        return (double)f;
    }
    default: {
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    }
}

/* Read up to len bytes; returns how many arrived, or -1 (with the sentence) when the file
 * could not be read or its gzip data is corrupt. A short count means the file ended. */
static int64_t gz_read_all(gzFile f, const char *path, uint8_t *buf, int64_t len, mf_error *err)
{
    int64_t got = 0;
    while (got < len) {
        unsigned chunk = (unsigned)(len - got < (1 << 30) ? len - got : (1 << 30));
        int r = gzread(f, buf + got, chunk);
        if (r < 0 || (r == 0 && !gzeof(f))) {
            int code;
            const char *why = gzerror(f, &code);
            if (code == Z_ERRNO)
                mf_error_set(err, "%s: cannot be read: %s", path, strerror(errno));
            else if (code == Z_BUF_ERROR) /* a gzip stream cut short: the file is truncated */
                return got;
            else { /* zlib's message may start with the path already, or "<fd:N>" */
                size_t n = strlen(path);
                const char *fd_end = !strncmp(why, "<fd:", 4) ? strstr(why, ">: ") : NULL;
                if (!strncmp(why, path, n) && !strncmp(why + n, ": ", 2))
                    why += n + 2;
                else if (fd_end)
                    why = fd_end + 3;
                mf_error_set(err, "%s: corrupt gzip data (%s)", path, why);
            }
            return -1;
        }
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

/* After the `expected` bytes the header accounts for: 0 at the end of the data (the gzip
 * checksum checked), else -1 naming the file, the expected and the actual size (counted up
 * to 64 MiB more: a file is refused, not decompressed without end). */
static int trailing(gzFile f, const char *path, int64_t expected, mf_error *err)
{
    uint8_t scratch[16384];
    const int64_t cap = (int64_t)64 << 20;
    int64_t extra = 0, r;
    while (extra <= cap && (r = gz_read_all(f, path, scratch, sizeof scratch, err)) > 0)
        extra += r;
    if (r < 0)
        return -1;
    int code;
    gzerror(f, &code);
    if (code == Z_BUF_ERROR) {
        mf_error_set(err, "%s: truncated: the gzip stream ends before its checksum", path);
        return -1;
    }
    if (extra > 0) {
        mf_error_set(err, "%s: %s%lld bytes of data where its IDX header accounts for %lld: "
                     "the file has trailing bytes or a wrong header", path,
                     extra > cap ? "more than " : "", (long long)(expected + extra),
                     (long long)expected);
        return -1;
    }
    return 0;
}

/* Load one IDX file of what ("images" or "labels") with min_dims…max_dims dimensions. */
static int idx_load(idx_array *a, const char *path, const char *what, int min_dims, int max_dims,
                    mf_error *err)
{
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", path);
    /* a FIFO with no writer would block gzopen forever, a device never end */
    char why[128];
    int fd = data_file_open(path, why, sizeof why);
    if (fd < 0) {
        mf_error_set(err, "%s: cannot be opened: %s", path, why);
        return -1;
    }
    errno = 0;
    gzFile f = gzdopen(fd, "rb"); /* gzread passes plain files through unchanged */
    if (!f) {
        close(fd);
        mf_error_set(err, "%s: cannot be opened: %s", path,
                     errno ? strerror(errno) : "out of memory");
        return -1;
    }
    uint8_t head[4 + 4 * 255];
    int64_t got = gz_read_all(f, path, head, 4, err), body = 0;
    int ok = 0;
    if (got < 0)
        goto done;
    if (got == 4) {
        if (head[0] != 0 || head[1] != 0) {
            mf_error_set(err,
                         "%s: not an IDX file: it starts with 0x%02x%02x%02x%02x, not two zero "
                         "bytes, a type code and a dimension count",
                         path, head[0], head[1], head[2], head[3]);
            goto done;
        }
        for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
            if (idx_types[i].code == head[2])
                a->type = &idx_types[i];
        if (!a->type) {
            mf_error_set(err,
                         "%s: IDX type code 0x%02x is not supported (0x08 ubyte, 0x09 byte, 0x0b "
                         "short, 0x0c int, 0x0d float, 0x0e double)",
                         path, head[2]);
            goto done;
        }
        a->ndim = head[3];
        if (a->ndim < min_dims || a->ndim > max_dims) {
            if (min_dims == max_dims)
                mf_error_set(err, "%s: holds %d-dimensional IDX data, but %s have %d dimension%s",
                             path, a->ndim, what, min_dims, min_dims == 1 ? "" : "s");
            else
                mf_error_set(err,
                             "%s: holds %d-dimensional IDX data, but %s have %d to %d dimensions "
                             "(the first counts them)",
                             path, a->ndim, what, min_dims, max_dims);
            goto done;
        }
        int64_t r = gz_read_all(f, path, head + 4, 4 * a->ndim, err);
        if (r < 0)
            goto done;
        got += r;
    }
    if (got < 4 + 4 * a->ndim) {
        mf_error_set(err, "%s: truncated: the file ends inside its IDX header, after %lld bytes",
                     path, (long long)got);
        goto done;
    }
    /* Sizes, refusing products that would overflow or ask for absurd memory. */
    int64_t total = a->type->size, cap = 0;
    for (int d = 0; d < a->ndim; d++) {
        a->dim[d] = be_dim(head + 4 + 4 * d);
        if (a->dim[d] == 0) {
            mf_error_set(err, "%s: dimension %d of the IDX header is 0", path, d + 1);
            goto done;
        }
        if (a->dim[d] > IDX_MAX_BYTES / total) {
            mf_error_set(err, "%s: the IDX header promises more than 2^40 bytes of data", path);
            goto done;
        }
        total *= a->dim[d];
    }
    a->item_bytes = total / a->dim[0];
    /* Grow the buffer as data arrives, so a lying header costs no memory. */
    while (body < total) {
        int64_t want = cap ? cap * 2 : (int64_t)1 << 20;
        want = want < total ? want : total;
        uint8_t *grown = realloc(a->data, (size_t)want);
        if (!grown) {
            mf_error_set(err, "%s: out of memory for %lld bytes of %s", path, (long long)total,
                         what);
            goto done;
        }
        a->data = grown;
        cap = want;
        int64_t r = gz_read_all(f, path, a->data + body, cap - body, err);
        if (r < 0)
            goto done;
        body += r;
        if (body < cap)
            break;
    }
    if (body < total) {
        mf_error_set(err,
                     "%s: truncated: the header promises %lld %s (%lld bytes) but the data ends "
                     "in item %lld, after %lld bytes",
                     path, (long long)a->dim[0], what, (long long)total,
                     (long long)(body / a->item_bytes), (long long)body);
        goto done;
    }
    /* One byte more reaches the gzip trailer, whose checksum catches corrupt data; a byte
     * that arrives is data the header does not account for. */
    if (trailing(f, path, 4 + 4 * (int64_t)a->ndim + total, err))
        goto done;
    ok = 1;
done:
    gzclose(f);
    if (!ok) {
        free(a->data);
        a->data = NULL;
    }
    return ok ? 0 : -1;
}

/* dir/name, dir resolved against base; an absolute name stands alone. */
static int resolve(char *out, const char *base, const char *dir, const char *name, mf_error *err)
{
    int n = name[0] == '/'  ? snprintf(out, IDX_PATH_MAX, "%s", name)
            : dir[0] == '/' ? snprintf(out, IDX_PATH_MAX, "%s/%s", dir, name)
                            : snprintf(out, IDX_PATH_MAX, "%s/%s/%s", base, dir, name);
    if (n < 0 || n >= IDX_PATH_MAX) {
        mf_error_set(err, "idx: the path of '%s' is longer than %d bytes", name, IDX_PATH_MAX - 1);
        return -1;
    }
    data_file_normalize(out); /* "./data/x", not "././data/x", in every message */
    return 0;
}

/* Every value of a (times scale) a finite float32: a NaN pixel would make its feature's
 * standardisation NaN, hidden by a ReLU, and the run would exit 0. -1 naming the file, the
 * item and the value's position in it. */
static int check_values(const idx_array *a, double scale, mf_error *err)
{
    const int64_t per_item = a->item_bytes / a->type->size;
    if (a->type->code == 0x08) { /* 256 values at most: check them, not the pixels */
        if (isfinite((float)(255 * scale)))
            return 0;
        for (int64_t i = 0; i < a->dim[0] * per_item; i++)
            if (!isfinite((float)(a->data[i] * scale))) {
                mf_error_set(err, "%s: value %lld of item %lld, %d, times scale %g is beyond "
                             "float32's range", a->path, (long long)(i % per_item),
                             (long long)(i / per_item), a->data[i], scale);
                return -1;
            }
        return 0;
    }
    for (int64_t item = 0; item < a->dim[0]; item++) {
        const uint8_t *p = a->data + item * a->item_bytes;
        for (int64_t e = 0; e < per_item; e++) {
            const double v = idx_value(a->type, p, e);
            if (isfinite(v) && isfinite((float)(v * scale)))
                continue;
            if (!isfinite(v))
                mf_error_set(err, "%s: value %lld of item %lld is %s", a->path, (long long)e,
                             (long long)item, isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf");
            else if (scale == 1)
                mf_error_set(err, "%s: value %lld of item %lld is %g, beyond float32's range",
                             a->path, (long long)e, (long long)item, v);
            else
                mf_error_set(err, "%s: value %lld of item %lld, %g, times scale %g is beyond "
                             "float32's range", a->path, (long long)e, (long long)item, v, scale);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the reader */
static void idx_close(mf_dataset *self)
{
    idx_state *s = mf_dataset_state(self);
    for (int i = 0; i < 2; i++)
        free(s->images[i].data);
    free(s->label);
    free(s->split);
    for (int c = 0; s->class_name && c < s->n_classes; c++)
        free(s->class_name[c]);
    free(s->class_name);
}

/* Load one image/label pair; its labels go to s->label + first (room for them is made). */
static int load_pair(idx_state *s, int which, const char *images, const char *labels,
                     int64_t first, const mf_config *names, mf_error *err)
{
    idx_array *im = &s->images[which], lab;
    if (idx_load(im, images, "images", 2, 4, err) || idx_load(&lab, labels, "labels", 1, 1, err))
        return -1;
    int ok = 0;
    if (lab.dim[0] != im->dim[0]) {
        mf_error_set(err, "%s: holds %lld labels for the %lld images of %s", lab.path,
                     (long long)lab.dim[0], (long long)im->dim[0], im->path);
        goto done;
    }
    if (lab.type->dtype == MF_DTYPE_F32 || lab.type->dtype == MF_DTYPE_F64) {
        mf_error_set(err, "%s: holds %s labels, but class labels are integers", lab.path,
                     lab.type->name);
        goto done;
    }
    if (which == 1) {
        const idx_array *tr = &s->images[0];
        if (tr->ndim != im->ndim || memcmp(tr->dim + 1, im->dim + 1, sizeof(int64_t) * 3)) {
            mf_error_set(err, "%s: its images differ in size from those of %s", im->path, tr->path);
            goto done;
        }
    }
    snprintf(s->label_path[which], sizeof s->label_path[which], "%s", lab.path);
    int32_t *grown = realloc(s->label, (size_t)(first + lab.dim[0]) * sizeof *s->label);
    if (!grown) {
        mf_error_set(err, "%s: out of memory for %lld labels", lab.path, (long long)lab.dim[0]);
        goto done;
    }
    s->label = grown;
    const int n_names = mf_config_length(names);
    for (int64_t i = 0; i < lab.dim[0]; i++) {
        int64_t y = (int64_t)idx_value(lab.type, lab.data, i);
        if (y < 0) {
            mf_error_set(err, "%s: label %lld of item %lld is negative", lab.path, (long long)y,
                         (long long)i);
            goto done;
        }
        if (n_names && y >= n_names) {
            mf_error_set(err, "%s: label %lld of item %lld is out of range: class_names has %d "
                              "names (labels 0 to %d)",
                         lab.path, (long long)y, (long long)i, n_names, n_names - 1);
            goto done;
        }
        if (!n_names && y > IDX_MAX_UNNAMED_CLASS) {
            mf_error_set(err, "%s: label %lld of item %lld is above %d; give class_names to use "
                              "labels that large",
                         lab.path, (long long)y, (long long)i, IDX_MAX_UNNAMED_CLASS);
            goto done;
        }
        s->label[first + i] = (int32_t)y;
    }
    ok = 1;
done:
    free(lab.data);
    return ok ? 0 : -1;
}

/* Without class_names, every label below max(IDX_UNNAMED_FLOOR, the sample count): else
 * -1 naming the labels file and the item (load_pair checked the absolute cap). */
static int check_unnamed(const idx_state *s, mf_error *err)
{
    const int64_t limit = s->n > IDX_UNNAMED_FLOOR ? s->n : IDX_UNNAMED_FLOOR;
    for (int64_t i = 0; i < s->n; i++)
        if (s->label[i] >= limit) {
            const int test = i >= s->n_train;
            mf_error_set(err, "%s: label %d of item %lld would make %lld classes for %lld "
                              "samples; number the classes from 0, or give class_names",
                         s->label_path[test], s->label[i],
                         (long long)(test ? i - s->n_train : i), (long long)s->label[i] + 1,
                         (long long)s->n);
            return -1;
        }
    return 0;
}

/* class_names, or "0" … the largest label. */
static int make_class_names(idx_state *s, const mf_config *names, mf_error *err)
{
    if (!mf_config_length(names) && check_unnamed(s, err))
        return -1;
    s->n_classes = mf_config_length(names);
    if (!s->n_classes)
        for (int64_t i = 0; i < s->n; i++)
            if (s->label[i] >= s->n_classes)
                s->n_classes = s->label[i] + 1;
    s->class_name = calloc((size_t)s->n_classes, sizeof *s->class_name);
    for (int c = 0; s->class_name && c < s->n_classes; c++) {
        const char *given = mf_config_length(names) ? mf_config_scalar(mf_config_at(names, c)) : NULL;
        char number[16];
        snprintf(number, sizeof number, "%d", c);
        if (!(s->class_name[c] = strdup(given ? given : number))) {
            mf_error_set(err, "idx: out of memory for class names");
            return -1;
        }
    }
    if (!s->class_name)
        mf_error_set(err, "idx: out of memory for class names");
    return s->class_name ? 0 : -1;
}

static int idx_open(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info, mf_error *err)
{
    idx_state *s = mf_dataset_state(self);
    const char *dir, *file[4], *modality;
    static const char *const keys[4] = {"train_images", "train_labels", "test_images",
                                        "test_labels"};
    double scale;
    if (mf_config_string(cfg, "dir", &dir, err) || mf_config_float(cfg, "scale", &scale, err) ||
        mf_config_string(cfg, "modality", &modality, err))
        return -1;
    for (int i = 0; i < 4; i++)
        if (mf_config_string(cfg, keys[i], &file[i], err))
            return -1;
    const mf_config *names = mf_config_get(cfg, "class_names");
    if (!file[0][0] || !file[1][0]) {
        mf_config_error(err, mf_config_get(cfg, file[0][0] ? keys[1] : keys[0]),
                        "the training files are required");
        return -1;
    }
    if (!file[2][0] != !file[3][0]) {
        mf_config_error(err, mf_config_get(cfg, file[2][0] ? keys[3] : keys[2]),
                        "give both test files or neither (\"\")");
        return -1;
    }
    if (!modality[0] || strlen(modality) >= sizeof s->modality_name) {
        mf_config_error(err, mf_config_get(cfg, "modality"), "expected a name of 1 to %d bytes",
                        (int)sizeof s->modality_name - 1);
        return -1;
    }
    char path[4][IDX_PATH_MAX];
    const int pairs = file[2][0] ? 2 : 1;
    for (int i = 0; i < 2 * pairs; i++)
        if (resolve(path[i], mf_dataset_base_dir(self), dir, file[i], err))
            return -1;

    int ok = 0;
    if (!isfinite(scale)) {
        mf_config_error(err, mf_config_get(cfg, "scale"), "expected a finite number");
        return -1;
    }
    for (int p = 0; p < pairs; p++) {
        if (load_pair(s, p, path[2 * p], path[2 * p + 1], s->n, names, err) ||
            check_values(&s->images[p], scale, err))
            goto done;
        s->n += s->images[p].dim[0];
    }
    s->n_train = s->images[0].dim[0];
    if (make_class_names(s, names, err))
        goto done;
    if (!(s->split = malloc((size_t)s->n))) {
        mf_error_set(err, "idx: out of memory for %lld samples", (long long)s->n);
        goto done;
    }
    for (int64_t i = 0; i < s->n; i++)
        s->split[i] = i < s->n_train ? MF_SPLIT_TRAIN : MF_SPLIT_TEST;
    s->scale = scale;
    for (int v = 0; v < 256; v++)
        s->lut[v] = (float)(v * scale);

    const idx_array *a = &s->images[0];
    snprintf(s->modality_name, sizeof s->modality_name, "%s", modality);
    s->modality.name = s->modality_name;
    s->modality.shape = a->ndim == 2   ? mf_shape1(a->dim[1])
                        : a->ndim == 3 ? mf_shape3(1, a->dim[1], a->dim[2]) /* channel first */
                                       : mf_shape3(a->dim[1], a->dim[2], a->dim[3]);
    s->modality.dtype = a->type->dtype;
    info->n_modalities = 1;
    info->modalities = &s->modality;
    info->n_samples = s->n;
    info->label_kind = MF_LABELS_CLASSES;
    info->n_classes = s->n_classes;
    info->class_names = (const char *const *)s->class_name;
    info->split = s->split;
    ok = 1;
done:
    if (!ok)
        idx_close(self);
    return ok ? 0 : -1;
}

static int idx_read(mf_dataset *self, int64_t n, const int64_t *idx, const mf_batch_buffers *out,
                    mf_error *err)
{
    idx_state *s = mf_dataset_state(self);
    const int64_t numel = mf_shape_numel(&s->modality.shape);
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= s->n) {
            mf_error_set(err, "idx: sample %lld requested from %s, which has %lld samples",
                         (long long)idx[i], s->images[0].path, (long long)s->n);
            return -1;
        }
        const idx_array *a = &s->images[idx[i] >= s->n_train];
        const uint8_t *item = a->data + (idx[i] - (idx[i] >= s->n_train ? s->n_train : 0)) *
                                            a->item_bytes;
        float *x = out->modality[0] + i * numel;
        if (a->type->code == 0x08)
            for (int64_t e = 0; e < numel; e++)
                x[e] = s->lut[item[e]];
        else
            for (int64_t e = 0; e < numel; e++)
                x[e] = (float)(idx_value(a->type, item, e) * s->scale);
        out->labels[i] = s->label[idx[i]];
    }
    return 0;
}

static const mf_dataset_ops idx_ops = {
    .struct_size = sizeof(mf_dataset_ops),
    .state_size = sizeof(idx_state),
    .open = idx_open,
    .read = idx_read,
    .close = idx_close,
};

static const mf_plugin idx_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_DATASET,
    .name = "idx",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Images and labels in MNIST's IDX format (gzipped or plain), e.g. Fashion-MNIST",
    .params = idx_params,
    .ops = &idx_ops,
};

MF_PLUGIN_DEFINE(&idx_plugin)
