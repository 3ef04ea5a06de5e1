#include <stdlib.h>
#include <string.h>

#include "loader.h"

struct mfi_loader {
    mf_dataset *ds;
    const int64_t *indices;
    int64_t *order; /* this epoch's order */
    int64_t n, batch_size, pos;
    int shuffle;
    uint64_t seed;
};

int mfi_splits_make(const mf_dataset_info *info, double val_fraction, uint64_t seed,
                    mfi_splits *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t n = info->n_samples;
    for (int s = 0; s < 3; s++) {
        out->index[s] = malloc((size_t)n * sizeof(int64_t));
        if (!out->index[s]) {
            mfi_splits_free(out);
            mf_error_set(err, "out of memory splitting %lld samples", (long long)n);
            return -1;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int s = info->split ? info->split[i] : MF_SPLIT_TRAIN;
        if (s > MF_SPLIT_TEST) {
            mfi_splits_free(out);
            mf_error_set(err, "the dataset gives sample %lld the split %d (0 train, 1 val, 2 test)",
                         (long long)i, s);
            return -1;
        }
        out->index[s][out->count[s]++] = i;
    }
    if (out->count[MF_SPLIT_VAL] == 0 && val_fraction > 0) {
        /* Carve validation out of training: a seeded random subset, both kept in index order. */
        int64_t ntr = out->count[MF_SPLIT_TRAIN], nval = (int64_t)(val_fraction * (double)ntr);
        int64_t *perm = malloc((size_t)(ntr ? ntr : 1) * sizeof *perm);
        uint8_t *is_val = calloc((size_t)(n ? n : 1), 1);
        if (!perm || !is_val) {
            free(perm);
            free(is_val);
            mfi_splits_free(out);
            mf_error_set(err, "out of memory splitting %lld samples", (long long)n);
            return -1;
        }
        memcpy(perm, out->index[MF_SPLIT_TRAIN], (size_t)ntr * sizeof *perm);
        mf_rng rng;
        mf_rng_seed_stream(&rng, seed, UINT64_C(0x76616c)); /* "val" */
        mf_rng_shuffle(&rng, perm, ntr);
        for (int64_t i = 0; i < nval; i++)
            is_val[perm[i]] = 1;
        memcpy(perm, out->index[MF_SPLIT_TRAIN], (size_t)ntr * sizeof *perm);
        out->count[MF_SPLIT_TRAIN] = 0;
        for (int64_t i = 0; i < ntr; i++) {
            int s = is_val[perm[i]] ? MF_SPLIT_VAL : MF_SPLIT_TRAIN;
            out->index[s][out->count[s]++] = perm[i];
        }
        free(perm);
        free(is_val);
    }
    return 0;
}

void mfi_splits_free(mfi_splits *s)
{
    for (int i = 0; i < 3; i++) {
        free(s->index[i]);
        s->index[i] = NULL;
    }
}

mfi_loader *mfi_loader_new(mf_dataset *ds, const int64_t *indices, int64_t n, int64_t batch_size,
                           int shuffle, uint64_t seed, mf_error *err)
{
    mfi_loader *l = calloc(1, sizeof *l);
    if (!l || !(l->order = malloc((size_t)(n ? n : 1) * sizeof(int64_t)))) {
        free(l);
        mf_error_set(err, "out of memory for a loader of %lld samples", (long long)n);
        return NULL;
    }
    l->ds = ds;
    l->indices = indices;
    l->n = n;
    l->batch_size = batch_size;
    l->shuffle = shuffle;
    l->seed = seed;
    mfi_loader_start(l, 0);
    return l;
}

void mfi_loader_free(mfi_loader *l)
{
    if (l) {
        free(l->order);
        free(l);
    }
}

void mfi_loader_start(mfi_loader *l, int epoch)
{
    memcpy(l->order, l->indices, (size_t)l->n * sizeof(int64_t));
    if (l->shuffle) {
        mf_rng rng;
        mf_rng_seed_stream(&rng, l->seed, (uint64_t)epoch);
        mf_rng_shuffle(&rng, l->order, l->n);
    }
    l->pos = 0;
}

int64_t mfi_loader_peek(const mfi_loader *l)
{
    int64_t left = l->n - l->pos;
    return left < l->batch_size ? left : l->batch_size;
}

int64_t mfi_loader_next(mfi_loader *l, float *const *bufs, int32_t *labels, mf_error *err)
{
    int64_t b = mfi_loader_peek(l);
    if (b == 0)
        return 0;
    if (mf_dataset_read(l->ds, b, l->order + l->pos, bufs, labels, err))
        return -1;
    l->pos += b;
    return b;
}

int64_t mfi_loader_batches(const mfi_loader *l)
{
    return (l->n + l->batch_size - 1) / l->batch_size;
}
