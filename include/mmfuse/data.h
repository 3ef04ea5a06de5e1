/* mmfuse/data.h — dataset readers: what a reader declares, and how it hands samples over.
 *
 * A reader (a plugin of kind MF_KIND_DATASET) opens its data from its YAML section and
 * describes it once — modalities (name, per-sample shape, storage type), labels (class
 * indices with class names, or float regression targets), the sample count, the splits —
 * then reads any list of sample indices into the batch buffers the host gives it. Batches
 * are always float32; token ids travel as exact floats (below 2^24).
 */
#ifndef MMFUSE_DATA_H
#define MMFUSE_DATA_H

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mf_dataset mf_dataset;

/* The reader's private state: state_size bytes (from its vtable), zeroed by the host. */
MF_API void *mf_dataset_state(mf_dataset *ds);
/* The folder of the experiment file, against which relative paths resolve. */
MF_API const char *mf_dataset_base_dir(const mf_dataset *ds);

enum { MF_SPLIT_TRAIN = 0, MF_SPLIT_VAL = 1, MF_SPLIT_TEST = 2 };

/* How a modality is stored (informational: batches are float32). */
typedef enum mf_dtype {
    MF_DTYPE_F32,
    MF_DTYPE_F64,
    MF_DTYPE_U8,
    MF_DTYPE_I8,
    MF_DTYPE_U16,
    MF_DTYPE_I16,
    MF_DTYPE_I32,
    MF_DTYPE_I64,
    MF_DTYPE_TOKEN, /* integer token ids into the dataset's vocabulary */
    MF_DTYPE_COUNT
} mf_dtype;

MF_API const char *mf_dtype_name(mf_dtype t); /* "float32", "uint8", "token", … */

/* A sample has at most MF_MAX_DIMS - 1 = 3 axes (the batch takes the fourth); the host
 * refuses a reader that declares more, naming the modality. */
typedef struct mf_modality_info {
    const char *name;
    mf_shape shape; /* per sample, e.g. (18), (2,3,3), (1,28,28), (16) tokens */
    int32_t dtype;  /* mf_dtype */
} mf_modality_info;

typedef enum mf_label_kind {
    MF_LABELS_CLASSES = 0, /* one class index per sample: n_classes, class_names */
    MF_LABELS_TARGETS = 1, /* target_dim floats per sample (regression) */
    MF_LABELS_MULTILABEL = 2 /* ABI 1.1: target_dim 0/1 floats per sample, one per class */
} mf_label_kind;

/* Filled by open(); the arrays belong to the reader and live until close(). */
typedef struct mf_dataset_info {
    uint32_t struct_size;
    int n_modalities;
    const mf_modality_info *modalities;
    int64_t n_samples;
    int32_t label_kind;             /* mf_label_kind */
    int n_classes;                  /* MF_LABELS_CLASSES */
    const char *const *class_names; /* n_classes names, or NULL */
    int64_t target_dim;             /* MF_LABELS_TARGETS, MF_LABELS_MULTILABEL */
    const uint8_t *split;           /* n_samples MF_SPLIT_* values, or NULL: the host splits */
    int64_t vocab_size;             /* token modalities: the vocabulary, or 0 / NULL */
    const char *const *vocabulary;
    /* ABI 1.1 */
    int32_t pad_token;              /* token modalities are padded with this id (a (T) caption
                                       shorter than T ends in it), so the host gives encoders a
                                       padding mask; -1 (or a 1.0 reader's 0 with has_padding
                                       unset): no padding */
    int32_t has_padding;            /* non-zero: pad_token is meaningful */
    int64_t chunk_samples;          /* samples stored together (a chunk of a file read batch
                                       by batch): reading one costs about as much as reading
                                       them all, so the host's data.shuffle: auto orders an
                                       epoch by chunks; 0: any order is as cheap */
} mf_dataset_info;

/* Where read() puts a batch of n samples. */
typedef struct mf_batch_buffers {
    uint32_t struct_size;
    float *const *modality; /* per modality m: n × numel(shape_m) floats, sample after sample */
    int32_t *labels;        /* n class indices (MF_LABELS_CLASSES), else NULL */
    float *targets;         /* n × target_dim floats (MF_LABELS_TARGETS), else NULL */
} mf_batch_buffers;

typedef struct mf_dataset_ops {
    uint32_t struct_size;
    size_t state_size;
    /* Open the data described by cfg and describe it. Required. */
    int (*open)(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info, mf_error *err);
    /* Read samples idx[0..n) (any order, repeats allowed) into out. Errors name the file,
     * the dataset and the index. Required. */
    int (*read)(mf_dataset *self, int64_t n, const int64_t *idx, const mf_batch_buffers *out,
                mf_error *err);
    /* Release what open allocated. Optional. */
    void (*close)(mf_dataset *self);
    /* ABI 1.1 (appended): samples idx[0..n) will be read a few batches from now. Start
     * fetching them — a reader of a file larger than memory asks the kernel for their bytes
     * (posix_fadvise) — and return at once. Optional and only a hint: read() must not rely on
     * it. Called from the thread that calls read, never during a read. */
    void (*will_read)(mf_dataset *self, int64_t n, const int64_t *idx);
} mf_dataset_ops;

#ifdef __cplusplus
}
#endif
#endif
