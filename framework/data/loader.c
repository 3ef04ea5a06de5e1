#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"

/* Reads are serialised: loaders take turns on one dataset, and a reader (HDF5 without its
 * thread-safe build) need not be reentrant. */
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;

struct mfi_loader {
    mf_dataset *ds;
    const mf_dataset_info *info;
    const int64_t *indices;
    int64_t *order; /* this epoch's order */
    int64_t n, batch_size, n_batches;
    int shuffle, prefetch;
    uint64_t seed;
    mfi_batch slot[2];

    /* batches [0, read) of the epoch are read; [0, consumed) are given back; the caller
     * holds batch `consumed` between two next() calls (borrowed). */
    pthread_mutex_t lock;
    pthread_cond_t work, ready;
    pthread_t thread;
    int64_t read, consumed;
    int borrowed, busy, armed, quit, failed;
    mf_error error;
    double wait_seconds;
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Read batch b of the epoch into its slot; 0 or -1 with the reader's message in err. */
static int read_batch(mfi_loader *l, int64_t b, mf_error *err)
{
    mfi_batch *slot = &l->slot[b % 2];
    int64_t first = b * l->batch_size;
    slot->n = l->n - first < l->batch_size ? l->n - first : l->batch_size;
    slot->index = l->order + first;
    mf_batch_buffers out = {sizeof out, slot->modality, slot->labels, slot->targets};
    pthread_mutex_lock(&read_lock);
    int rc = mf_dataset_read(l->ds, slot->n, slot->index, &out, err);
    pthread_mutex_unlock(&read_lock);
    return rc;
}

/* The worker: keeps one batch ahead of the caller. */
static void *worker(void *arg)
{
    mfi_loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->quit && !(l->armed && !l->failed && l->read < l->n_batches &&
                             l->read - l->consumed < 2))
            pthread_cond_wait(&l->work, &l->lock);
        if (l->quit)
            break;
        int64_t b = l->read;
        l->busy = 1;
        pthread_mutex_unlock(&l->lock);
        mf_error err;
        mf_error_clear(&err);
        int rc = read_batch(l, b, &err);
        pthread_mutex_lock(&l->lock);
        l->busy = 0;
        if (rc) {
            l->failed = 1;
            l->error = err;
        } else {
            l->read = b + 1;
        }
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

mfi_loader *mfi_loader_new(mf_dataset *ds, const mf_dataset_info *info, const int64_t *indices,
                           int64_t n, int64_t batch_size, int shuffle, uint64_t seed, int prefetch,
                           mf_error *err)
{
    mfi_loader *l = calloc(1, sizeof *l);
    if (!l) {
        mf_error_set(err, "out of memory for a loader");
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    if (!(l->order = malloc((size_t)(n ? n : 1) * sizeof(int64_t))))
        goto oom;
    l->ds = ds;
    l->info = info;
    l->indices = indices;
    l->n = n;
    l->batch_size = batch_size;
    l->n_batches = (n + batch_size - 1) / batch_size;
    l->shuffle = shuffle;
    l->seed = seed;
    for (int s = 0; s < 2; s++) {
        for (int m = 0; m < info->n_modalities && m < MFI_MAX_MODALITIES; m++) {
            size_t numel = (size_t)mf_shape_numel(&info->modalities[m].shape);
            if (!(l->slot[s].modality[m] = malloc((size_t)batch_size * numel * sizeof(float))))
                goto oom;
        }
        if (info->label_kind == MF_LABELS_CLASSES)
            l->slot[s].labels = malloc((size_t)batch_size * sizeof(int32_t));
        else
            l->slot[s].targets = malloc((size_t)(batch_size * info->target_dim) * sizeof(float));
        if (!l->slot[s].labels && !l->slot[s].targets)
            goto oom;
    }
    l->prefetch = prefetch && pthread_create(&l->thread, NULL, worker, l) == 0;
    mfi_loader_start(l, 0);
    return l;
oom:
    mf_error_set(err, "out of memory for a loader of %lld samples in batches of %lld",
                 (long long)n, (long long)batch_size);
    mfi_loader_free(l); /* no worker yet: prefetch is still 0 */
    return NULL;
}

void mfi_loader_free(mfi_loader *l)
{
    if (!l)
        return;
    if (l->prefetch) {
        pthread_mutex_lock(&l->lock);
        l->quit = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
    }
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    for (int s = 0; s < 2; s++) {
        for (int m = 0; m < MFI_MAX_MODALITIES; m++)
            free(l->slot[s].modality[m]);
        free(l->slot[s].labels);
        free(l->slot[s].targets);
    }
    free(l->order);
    free(l);
}

void mfi_loader_start(mfi_loader *l, int epoch)
{
    mfi_loader_start_at(l, epoch, 0);
}

void mfi_loader_start_at(mfi_loader *l, int epoch, int64_t first_batch)
{
    pthread_mutex_lock(&l->lock);
    l->armed = 0;
    while (l->busy) /* let a read in flight finish before the order changes */
        pthread_cond_wait(&l->ready, &l->lock);
    memcpy(l->order, l->indices, (size_t)l->n * sizeof(int64_t));
    if (l->shuffle) {
        mf_rng rng;
        mf_rng_seed_stream(&rng, l->seed, (uint64_t)epoch);
        mf_rng_shuffle(&rng, l->order, l->n);
    }
    first_batch = first_batch < 0 ? 0 : first_batch > l->n_batches ? l->n_batches : first_batch;
    l->read = l->consumed = first_batch; /* the batches before it are skipped, not read */
    l->borrowed = l->failed = 0;
    mf_error_clear(&l->error);
    l->armed = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
}

int64_t mfi_loader_peek(const mfi_loader *l)
{
    int64_t next = l->consumed + l->borrowed, first = next * l->batch_size;
    if (next >= l->n_batches)
        return 0;
    return l->n - first < l->batch_size ? l->n - first : l->batch_size;
}

int64_t mfi_loader_next(mfi_loader *l, const mfi_batch **batch, mf_error *err)
{
    pthread_mutex_lock(&l->lock);
    if (l->borrowed) { /* give the previous batch back: its slot may be refilled */
        l->consumed++;
        l->borrowed = 0;
        pthread_cond_broadcast(&l->work);
    }
    const int64_t b = l->consumed;
    if (b >= l->n_batches) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    double t0 = now();
    if (!l->prefetch) { /* the caller waits for the whole read */
        pthread_mutex_unlock(&l->lock);
        if (read_batch(l, b, err))
            return -1;
        pthread_mutex_lock(&l->lock);
        l->read = b + 1;
    }
    while (l->read <= b && !l->failed)
        pthread_cond_wait(&l->ready, &l->lock);
    l->wait_seconds += now() - t0;
    if (l->read <= b) {
        mf_error_set(err, "%s", l->error.msg);
        pthread_mutex_unlock(&l->lock);
        return -1;
    }
    l->borrowed = 1;
    *batch = &l->slot[b % 2];
    pthread_mutex_unlock(&l->lock);
    return (*batch)->n;
}

int64_t mfi_loader_batches(const mfi_loader *l)
{
    return l->n_batches;
}

double mfi_loader_wait_seconds(const mfi_loader *l)
{
    return l->wait_seconds;
}
