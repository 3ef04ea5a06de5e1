/* mmfuse/tensor.h — memory and randomness under everything else.
 *
 * Arena: an aligned bump allocator. A graph owns one; everything a graph needs (nodes,
 * activations, gradients, op scratch) comes from it when the graph is built and compiled,
 * so a training step replaying a compiled graph never calls malloc.
 *
 * RNG: xoshiro256** seeded through splitmix64. Every random choice in mmfuse (initialisation,
 * shuffling, dropout, synthetic data) draws from an mf_rng seeded from the experiment's
 * seed, so a run is reproducible for a given seed and thread count.
 */
#ifndef MMFUSE_TENSOR_H
#define MMFUSE_TENSOR_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- arena */
#define MF_ALIGN 64 /* cache line; also enough for AVX-512 loads */

typedef struct mf_arena mf_arena;

/* A new arena whose first block holds `block_bytes` (0 picks a default). */
MF_API mf_arena *mf_arena_new(size_t block_bytes);
/* `bytes` of zeroed memory aligned to MF_ALIGN, valid until the arena is freed.
 * Grows by adding blocks; returns NULL only when the system is out of memory. */
MF_API void *mf_arena_alloc(mf_arena *a, size_t bytes);
/* Copy of a string in the arena. */
MF_API char *mf_arena_strdup(mf_arena *a, const char *s);
/* Bytes handed out so far (for memory reports). */
MF_API size_t mf_arena_used(const mf_arena *a);
MF_API void mf_arena_free(mf_arena *a);

/* ---------------------------------------------------------------- rng */
typedef struct mf_rng {
    uint64_t s[4];
    int has_spare;   /* Box-Muller produces normals in pairs */
    float spare;
} mf_rng;

MF_API void mf_rng_seed(mf_rng *r, uint64_t seed);
/* An independent stream derived from (seed, stream): used e.g. per sample or per module. */
MF_API void mf_rng_seed_stream(mf_rng *r, uint64_t seed, uint64_t stream);
MF_API uint64_t mf_rng_u64(mf_rng *r);
/* Uniform in [0,1). */
MF_API double mf_rng_uniform(mf_rng *r);
/* Uniform integer in [0,n), without modulo bias. */
MF_API uint64_t mf_rng_below(mf_rng *r, uint64_t n);
/* Standard normal. */
MF_API float mf_rng_normal(mf_rng *r);
/* Fisher-Yates shuffle of a[0..n). */
MF_API void mf_rng_shuffle(mf_rng *r, int64_t *a, int64_t n);

/* ---------------------------------------------------------------- threads */
/* Threads used by matrix products (OpenBLAS) and the core's OpenMP loops. Results are
 * bit-identical for a given seed and thread count. */
MF_API void mf_set_threads(int n);      /* n <= 0: mf_default_threads() */
MF_API int mf_get_threads(void);
/* MMFUSE_THREADS when set to a positive integer, else the number of online cores. */
MF_API int mf_default_threads(void);

#ifdef __cplusplus
}
#endif
#endif
