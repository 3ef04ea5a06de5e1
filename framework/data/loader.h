/* Batches from a dataset: a fixed list of sample indices, reshuffled every epoch from
 * (seed, epoch), read into caller-provided buffers (a graph's input nodes). Private. */
#ifndef MF_DATA_LOADER_H
#define MF_DATA_LOADER_H

#include <mmfuse/host.h>

typedef struct mfi_loader mfi_loader;

/* Partition a dataset's samples: its own split when it has one; otherwise a seeded
 * `val_fraction` of the non-test samples becomes validation. Arrays are malloc'ed. */
typedef struct mfi_splits {
    int64_t *index[3]; /* MF_SPLIT_TRAIN, _VAL, _TEST */
    int64_t count[3];
} mfi_splits;

int mfi_splits_make(const mf_dataset_info *info, double val_fraction, uint64_t seed,
                    mfi_splits *out, mf_error *err);
void mfi_splits_free(mfi_splits *s);

/* Borrows `indices` (n of them) for the loader's lifetime. */
mfi_loader *mfi_loader_new(mf_dataset *ds, const int64_t *indices, int64_t n, int64_t batch_size,
                           int shuffle, uint64_t seed, mf_error *err);
void mfi_loader_free(mfi_loader *l);
/* Start epoch `epoch` (reshuffled when the loader shuffles). */
void mfi_loader_start(mfi_loader *l, int epoch);
/* Size of the next batch (0 at the end of the epoch), so the caller can pick its graph. */
int64_t mfi_loader_peek(const mfi_loader *l);
/* Read the next batch into bufs (one per modality, the dataset's order) and labels.
 * Returns its size, 0 at the end of the epoch, -1 on a read error. */
int64_t mfi_loader_next(mfi_loader *l, float *const *bufs, int32_t *labels, mf_error *err);
int64_t mfi_loader_batches(const mfi_loader *l);

#endif
