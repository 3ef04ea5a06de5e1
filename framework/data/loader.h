/* Batches from a dataset: a fixed list of sample indices, reshuffled every epoch from
 * (seed, epoch) — uniformly, or chunk by chunk for chunked files — read by a worker thread
 * into a ring of batch slots while the caller computes. Private. */
#ifndef MF_DATA_LOADER_H
#define MF_DATA_LOADER_H

#include <mmfuse/host.h>

/* Modalities a reader may declare (the hdf5 reader's own limit): a batch carries them all,
 * since a reader writes every one. Only MFI_MAX_INPUTS of them (or of their views) can be used
 * at once by a model. */
#define MFI_MAX_MODALITIES 4096
#define MFI_MAX_INPUTS 16

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

/* One batch as the dataset delivered it: every modality of the dataset. */
typedef struct mfi_batch {
    int64_t n;
    float *modality[MFI_MAX_MODALITIES];
    int32_t *labels;
    float *targets;
    const int64_t *index; /* the samples' indices in the dataset */
} mfi_batch;

/* Borrows `ds`, `info` and `indices` (n of them, in index order) for the loader's lifetime.
 * With prefetch, a worker thread reads ahead by up to 8 batches (32 MB). */
mfi_loader *mfi_loader_new(mf_dataset *ds, const mf_dataset_info *info, const int64_t *indices,
                           int64_t n, int64_t batch_size, int shuffle, uint64_t seed, int prefetch,
                           mf_error *err);
void mfi_loader_free(mfi_loader *l);
/* A shuffling loader's order by chunks (chunk_size > 0; 0: back to a uniform shuffle): the
 * chunks (samples i with the same i / chunk_size) in a shuffled order, the samples of the
 * chunk of rank k spread at random over the positions of ranks k … k + W - 1, W =
 * ceil(buffer / chunk_size): a batch of B draws on at most W + ceil(B / chunk's samples)
 * chunks. From (seed, epoch) as before. Restarts epoch 0. */
int mfi_loader_shuffle_chunks(mfi_loader *l, int64_t chunk_size, int64_t buffer, mf_error *err);
/* The same from data.shuffle, data.chunk_size and data.shuffle_buffer. */
int mfi_loader_configure(mfi_loader *l, const mf_config *data, mf_error *err);
/* Start epoch `epoch` (reshuffled when the loader shuffles). */
void mfi_loader_start(mfi_loader *l, int epoch);
/* Start epoch `epoch` at its batch `first_batch` (a resumed run): the same order, the batches
 * before it skipped. */
void mfi_loader_start_at(mfi_loader *l, int epoch, int64_t first_batch);
/* Data parallelism: this process reads part `rank` of `size` of every batch (contiguous
 * parts of the same epoch order, sizes differing by at most one; a part of a short last
 * batch may be empty). The epoch order, the batch count and the batch size stay the whole
 * batch's. Restarts epoch 0. */
void mfi_loader_shard(mfi_loader *l, int rank, int size);
/* Whether the epoch has a batch left (its part may be empty: see mfi_loader_shard). */
int mfi_loader_more(const mfi_loader *l);
/* Size of the next batch (of this process's part of it), so the caller can pick its graph;
 * 0 at the end of the epoch. */
int64_t mfi_loader_peek(const mfi_loader *l);
/* Borrow the next batch until the following call: its size, 0 at the end of the epoch, -1
 * on a read error (the reader's message in err). */
int64_t mfi_loader_next(mfi_loader *l, const mfi_batch **batch, mf_error *err);
int64_t mfi_loader_batches(const mfi_loader *l);
/* Seconds next() spent waiting for data since the loader was made or the last reset. */
double mfi_loader_wait_seconds(const mfi_loader *l);
void mfi_loader_reset_wait(mfi_loader *l);

#endif
