/* Batches from a dataset: a fixed list of sample indices, ordered per epoch from (seed, epoch)
 * and read by a worker thread into a ring of batch slots while the caller computes.
 *
 * Why two orders: a uniform shuffle (data.shuffle: full) makes every sample a random read,
 * which costs a whole chunk in a chunked (e.g. compressed) HDF5 file — minutes per epoch for
 * a file larger than memory. data.shuffle: chunks visits the file's chunks in a shuffled
 * order and spreads each chunk's samples at random over the span of `window` chunks from
 * its rank on (a shuffle buffer of that many chunks, as tf.data's and WebDataset's), so a
 * batch draws on about `window` chunks, each read once per epoch into the reader's chunk
 * cache, and a new chunk is needed every chunk's worth of samples — reads stay even rather
 * than in bursts (non-overlapping windows would read a whole window for their first batch).
 * Why a ring of up to 8 slots: to absorb a slow read (the page cache missed, a busy CPU). */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"

#define MAX_SLOTS 8
#define RING_BYTES ((size_t)32 << 20) /* read-ahead bound: RSS is sized by it, not the data */

/* Reads are serialised: loaders take turns on one dataset, and a reader (HDF5 without its
 * thread-safe build) need not be reentrant. */
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;

struct mfi_loader {
    mf_dataset *ds;
    const mf_dataset_info *info;
    const int64_t *indices;
    int64_t *order; /* this epoch's order */
    int64_t n, batch_size, n_batches;
    int shuffle, prefetch, n_slots;
    int shard_rank, shard_size; /* this process reads part shard_rank of shard_size of each batch */
    uint64_t seed;
    mfi_batch slot[MAX_SLOTS];
    /* data.shuffle: chunks — indices[group[g] .. group[g+1]) share a chunk; perm is the
     * epoch's chunk order; the chunk of rank k spreads over buckets k … k + window - 1;
     * bucket and count are the epoch's scratch (a bucket per sample, the buckets' ends) */
    int64_t *group, *perm, *bucket, *count, n_groups, window;

    /* batches [0, read) of the epoch are read; [0, consumed) are given back; the caller
     * holds batch `consumed` between two next() calls (borrowed). */
    pthread_mutex_t lock;
    pthread_cond_t work, ready;
    pthread_t thread;
    int64_t read, consumed;
    int borrowed, busy, armed, quit, failed;
    mf_error error;
    double wait_seconds;
    /* reads this epoch and their time; inline_reads: this epoch reads in the caller */
    double read_seconds;
    int64_t reads;
    int inline_reads;
};

int mfi_splits_make(const mf_dataset_info *info, double val_fraction, uint64_t seed,
                    mfi_splits *out, mf_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t n = info->n_samples;
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(int64_t)) { /* a reader's claim, unchecked */
        mf_error_set(err, "the dataset claims %lld samples", (long long)n);
        return -1;
    }
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

/* A batch read faster than this is read in the caller's thread: handing it over between
 * threads (a futex wake and a wait each way) costs more. Measured on satellite.yaml, whose
 * preloaded batches read in ~2 µs between 30 µs steps: 130k futex calls a run, and the run
 * 12 % faster inline (699 against 793 ms, 6 runs each). */
#define INLINE_READ_SECONDS 50e-6

/* Read batch b of the epoch into its slot; 0 or -1 with the reader's message in err. The
 * caller adds *seconds to the epoch's read time, under the lock. */
/* Where this process's part of batch b is in the epoch's order, and its size: the batch's
 * samples cut in shard_size contiguous parts differing by at most one (a part of a short
 * last batch may be empty). */
static int64_t batch_part(const mfi_loader *l, int64_t b, int64_t *first)
{
    if (b >= l->n_batches)
        return *first = l->n, 0;
    const int64_t start = b * l->batch_size;
    const int64_t n = l->n - start < l->batch_size ? l->n - start : l->batch_size;
    const int64_t lo = n * l->shard_rank / l->shard_size;
    *first = start + lo;
    return n * (l->shard_rank + 1) / l->shard_size - lo;
}

static int read_batch(mfi_loader *l, int64_t b, double *seconds, mf_error *err)
{
    const double t0 = now();
    mfi_batch *slot = &l->slot[b % l->n_slots];
    int64_t first, ahead;
    slot->n = batch_part(l, b, &first);
    slot->index = l->order + first;
    mf_batch_buffers out = {sizeof out, slot->modality, slot->labels, slot->targets};
    /* the batch read n_slots batches from now, announced so that a file reader can have its
     * bytes in flight by then (its own reads start only when the ring has room) */
    const int64_t ahead_n = batch_part(l, b + l->n_slots, &ahead);
    pthread_mutex_lock(&read_lock);
    int rc = slot->n ? mf_dataset_read(l->ds, slot->n, slot->index, &out, err) : 0;
    if (!rc && l->prefetch && ahead_n > 0)
        mf_dataset_will_read(l->ds, ahead_n, l->order + ahead);
    pthread_mutex_unlock(&read_lock);
    *seconds = now() - t0;
    return rc;
}

/* The worker: keeps one batch ahead of the caller. */
static void *worker(void *arg)
{
    mfi_loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->quit && !(l->armed && !l->inline_reads && !l->failed &&
                             l->read < l->n_batches && l->read - l->consumed < l->n_slots))
            pthread_cond_wait(&l->work, &l->lock);
        if (l->quit)
            break;
        int64_t b = l->read;
        l->busy = 1;
        pthread_mutex_unlock(&l->lock);
        mf_error err;
        mf_error_clear(&err);
        double took;
        int rc = read_batch(l, b, &took, &err);
        pthread_mutex_lock(&l->lock);
        l->busy = 0;
        l->read_seconds += took;
        l->reads++;
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

/* *bytes = batch × per-sample floats × 4, or -1 when it does not fit a size_t (a per-sample
 * width the reader declared absurdly). */
static int batch_floats(int64_t batch, int64_t per_sample, size_t *bytes)
{
    size_t floats;
    return per_sample < 1 || __builtin_mul_overflow((size_t)batch, (size_t)per_sample, &floats) ||
                   __builtin_mul_overflow(floats, sizeof(float), bytes)
               ? -1 : 0;
}

mfi_loader *mfi_loader_new(mf_dataset *ds, const mf_dataset_info *info, const int64_t *indices,
                           int64_t n, int64_t batch_size, int shuffle, uint64_t seed, int prefetch,
                           mf_error *err)
{
    if (info->n_modalities > MFI_MAX_MODALITIES || batch_size < 1 || n < 0) {
        mf_error_set(err, info->n_modalities > MFI_MAX_MODALITIES
                              ? "the data has %d modalities; a loader takes at most %d"
                              : "a loader of %d modalities needs a batch size of at least 1",
                     info->n_modalities, MFI_MAX_MODALITIES);
        return NULL;
    }
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
    l->shard_size = 1;
    l->n_batches = (n + batch_size - 1) / batch_size;
    l->shuffle = shuffle;
    l->seed = seed;
    /* as many batches ahead as RING_BYTES hold, 2 to MAX_SLOTS (one when reads are inline) */
    size_t batch_bytes = 1, bytes[MFI_MAX_MODALITIES], target_bytes = 0;
    for (int m = 0; m < info->n_modalities; m++) {
        if (batch_floats(batch_size, mf_shape_numel(&info->modalities[m].shape), &bytes[m]) ||
            __builtin_add_overflow(batch_bytes, bytes[m], &batch_bytes))
            goto too_large;
    }
    if (info->label_kind != MF_LABELS_CLASSES &&
        batch_floats(batch_size, info->target_dim, &target_bytes))
        goto too_large;
    size_t fit = RING_BYTES / batch_bytes;
    l->n_slots = !prefetch ? 1 : fit < 2 ? 2 : fit > MAX_SLOTS ? MAX_SLOTS : (int)fit;
    for (int s = 0; s < l->n_slots; s++) {
        for (int m = 0; m < info->n_modalities; m++)
            if (!(l->slot[s].modality[m] = malloc(bytes[m])))
                goto oom;
        if (info->label_kind == MF_LABELS_CLASSES)
            l->slot[s].labels = malloc((size_t)batch_size * sizeof(int32_t));
        else
            l->slot[s].targets = malloc(target_bytes);
        if (!l->slot[s].labels && !l->slot[s].targets)
            goto oom;
    }
    l->prefetch = prefetch && pthread_create(&l->thread, NULL, worker, l) == 0;
    mfi_loader_start(l, 0);
    return l;
too_large:
    mf_error_set(err, "a batch of %lld samples of this data needs more bytes than memory can "
                 "address", (long long)batch_size);
    mfi_loader_free(l);
    return NULL;
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
    for (int s = 0; s < MAX_SLOTS; s++) {
        for (int m = 0; m < MFI_MAX_MODALITIES; m++)
            free(l->slot[s].modality[m]);
        free(l->slot[s].labels);
        free(l->slot[s].targets);
    }
    free(l->order);
    free(l->group);
    free(l->perm);
    free(l->bucket);
    free(l->count);
    free(l);
}

/* Epoch `epoch`'s order, a pure function of (seed, epoch): the indices as given, a uniform
 * shuffle, or (chunks) the chunks in a shuffled order, the samples of the chunk of rank k
 * each in a random bucket among k … k + window - 1, every bucket shuffled. */
static void make_order(mfi_loader *l, int epoch)
{
    mf_rng rng;
    mf_rng_seed_stream(&rng, l->seed, (uint64_t)epoch);
    if (!l->shuffle || !l->group) {
        memcpy(l->order, l->indices, (size_t)l->n * sizeof(int64_t));
        if (l->shuffle)
            mf_rng_shuffle(&rng, l->order, l->n);
        return;
    }
    for (int64_t g = 0; g < l->n_groups; g++)
        l->perm[g] = g;
    mf_rng_shuffle(&rng, l->perm, l->n_groups);
    const int64_t nb = l->n_groups + l->window - 1; /* buckets */
    int64_t *count = l->count, t = 0;
    memset(count, 0, (size_t)(nb + 1) * sizeof *count);
    for (int64_t k = 0; k < l->n_groups; k++) /* draw the buckets, count their samples */
        for (int64_t i = l->group[l->perm[k]]; i < l->group[l->perm[k] + 1]; i++) {
            l->bucket[t] = k + (int64_t)mf_rng_below(&rng, (uint64_t)l->window);
            count[l->bucket[t++] + 1]++;
        }
    for (int64_t b = 0; b < nb; b++) /* count[b]: where bucket b starts */
        count[b + 1] += count[b];
    t = 0;
    for (int64_t k = 0; k < l->n_groups; k++) /* place them: count[b] ends up at b's end */
        for (int64_t i = l->group[l->perm[k]]; i < l->group[l->perm[k] + 1]; i++)
            l->order[count[l->bucket[t++]]++] = l->indices[i];
    for (int64_t b = 0, start = 0; b < nb; start = count[b++])
        mf_rng_shuffle(&rng, l->order + start, count[b] - start);
}

int mfi_loader_shuffle_chunks(mfi_loader *l, int64_t chunk_size, int64_t buffer, mf_error *err)
{
    free(l->group);
    free(l->perm);
    free(l->bucket);
    free(l->count);
    l->group = l->perm = l->bucket = l->count = NULL;
    if (chunk_size <= 0)
        return 0;
    /* the samples of a chunk are one run of the (index-ordered) list: count the runs */
    int64_t ng = 0;
    for (int64_t i = 0; i < l->n; i++)
        ng += i == 0 || l->indices[i] / chunk_size != l->indices[i - 1] / chunk_size;
    /* rounded up without forming buffer + chunk_size (both unbounded in the YAML) */
    int64_t window = buffer / chunk_size + (buffer % chunk_size != 0);
    window = window < 1 ? 1 : window > ng ? (ng ? ng : 1) : window; /* no wider than the data */
    l->group = malloc((size_t)(ng + 1) * sizeof *l->group);
    l->perm = malloc((size_t)(ng ? ng : 1) * sizeof *l->perm);
    l->bucket = malloc((size_t)(l->n ? l->n : 1) * sizeof *l->bucket);
    l->count = malloc((size_t)(ng + window + 1) * sizeof *l->count);
    if (!l->group || !l->perm || !l->bucket || !l->count) {
        mfi_loader_shuffle_chunks(l, 0, 0, err); /* frees them */
        mf_error_set(err, "out of memory for the chunks of %lld samples", (long long)l->n);
        return -1;
    }
    ng = 0;
    for (int64_t i = 0; i < l->n; i++)
        if (i == 0 || l->indices[i] / chunk_size != l->indices[i - 1] / chunk_size)
            l->group[ng++] = i;
    l->group[ng] = l->n;
    l->n_groups = ng;
    l->window = window;
    mfi_loader_start(l, 0);
    return 0;
}

int mfi_loader_configure(mfi_loader *l, const mf_config *data, mf_error *err)
{
    int mode = 0; /* auto */
    int64_t chunk = 0, buffer = 8192;
    mf_config_enum(data, "shuffle", "auto|full|chunks", &mode, NULL);
    mf_config_int(data, "chunk_size", &chunk, NULL);
    mf_config_int(data, "shuffle_buffer", &buffer, NULL);
    /* the reader's chunks, when it has them (a 1.0 reader leaves the field unset: 0) */
    const int64_t stored = l->info->struct_size >= offsetof(mf_dataset_info, chunk_samples) +
                                                       sizeof l->info->chunk_samples
                               ? l->info->chunk_samples
                               : 0;
    if (chunk <= 0)
        chunk = stored > 0 ? stored : 1024;
    const int by_chunks = mode == 2 || (mode == 0 && stored > 0);
    return mfi_loader_shuffle_chunks(l, by_chunks ? chunk : 0, buffer, err);
}

void mfi_loader_reset_wait(mfi_loader *l)
{
    pthread_mutex_lock(&l->lock);
    l->wait_seconds = 0;
    pthread_mutex_unlock(&l->lock);
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
    make_order(l, epoch);
    /* the last epoch's reads decide who reads this one (the batches are the same either way) */
    if (l->reads >= 4)
        l->inline_reads = l->prefetch && l->read_seconds / (double)l->reads < INLINE_READ_SECONDS;
    l->read_seconds = 0;
    l->reads = 0;
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
    int64_t first;
    return batch_part(l, l->consumed + l->borrowed, &first);
}

int mfi_loader_more(const mfi_loader *l)
{
    return l->consumed + l->borrowed < l->n_batches;
}

void mfi_loader_shard(mfi_loader *l, int rank, int size)
{
    l->shard_rank = size > 1 ? rank : 0;
    l->shard_size = size > 1 ? size : 1;
    mfi_loader_start(l, 0);
}

int64_t mfi_loader_next(mfi_loader *l, const mfi_batch **batch, mf_error *err)
{
    pthread_mutex_lock(&l->lock);
    if (l->borrowed) { /* give the previous batch back: its slot may be refilled */
        l->consumed++;
        l->borrowed = 0;
        if (l->prefetch && !l->inline_reads) /* else the worker has nothing to do */
            pthread_cond_broadcast(&l->work);
    }
    const int64_t b = l->consumed;
    if (b >= l->n_batches) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    double t0 = now();
    if ((!l->prefetch || l->inline_reads) && l->read <= b) { /* the caller reads it */
        pthread_mutex_unlock(&l->lock);
        double took;
        if (read_batch(l, b, &took, err))
            return -1;
        pthread_mutex_lock(&l->lock);
        l->read_seconds += took;
        l->reads++;
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
    *batch = &l->slot[b % l->n_slots];
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
