/* The aligned bump arena and the random number generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/tensor.h>

/* ---------------------------------------------------------------- arena */
#define ARENA_DEFAULT_BLOCK ((size_t)1 << 20)

typedef struct arena_block {
    struct arena_block *next; /* blocks are kept in a list only to free them */
    size_t size, used;        /* bytes of data[] */
    unsigned char *data;      /* MF_ALIGN-aligned */
} arena_block;

struct mf_arena {
    arena_block *cur;    /* the block small allocations come from */
    arena_block *blocks; /* every block */
    size_t block_bytes;
    size_t used;
};

static size_t round_up(size_t n) { return (n + (MF_ALIGN - 1)) & ~(size_t)(MF_ALIGN - 1); }

static arena_block *block_new(mf_arena *a, size_t size)
{
    arena_block *b = malloc(sizeof *b);
    void *data = NULL;
    if (!b || posix_memalign(&data, MF_ALIGN, size) != 0) {
        free(b);
        return NULL;
    }
    b->data = data;
    b->size = size;
    b->used = 0;
    b->next = a->blocks;
    a->blocks = b;
    return b;
}

mf_arena *mf_arena_new(size_t block_bytes)
{
    mf_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->block_bytes = round_up(block_bytes ? block_bytes : ARENA_DEFAULT_BLOCK);
    a->cur = block_new(a, a->block_bytes);
    if (!a->cur) {
        free(a);
        return NULL;
    }
    return a;
}

void *mf_arena_alloc(mf_arena *a, size_t bytes)
{
    if (!a || bytes > SIZE_MAX - MF_ALIGN)
        return NULL;
    size_t n = round_up(bytes ? bytes : 1);
    arena_block *b = a->cur;
    if (b->size - b->used < n) {
        if (n > a->block_bytes / 2) {
            /* a big request gets a block of its own; cur keeps serving small ones */
            b = block_new(a, n);
        } else {
            b = block_new(a, a->block_bytes);
            if (b)
                a->cur = b;
        }
        if (!b)
            return NULL;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *mf_arena_strdup(mf_arena *a, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    char *p = mf_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

size_t mf_arena_used(const mf_arena *a) { return a ? a->used : 0; }

void mf_arena_free(mf_arena *a)
{
    if (!a)
        return;
    for (arena_block *b = a->blocks, *next; b; b = next) {
        next = b->next;
        free(b->data);
        free(b);
    }
    free(a);
}

/* ---------------------------------------------------------------- rng */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mf_rng_seed(mf_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is a fixed point */
    r->has_spare = 0;
    r->spare = 0.0f;
}

void mf_rng_seed_stream(mf_rng *r, uint64_t seed, uint64_t stream)
{
    /* hash seed and stream separately, then combine: neighbouring seeds or streams give
     * unrelated states. */
    uint64_t a = seed, b = stream ^ 0xd1b54a32d192ed03ULL;
    uint64_t ha = splitmix64(&a);
    uint64_t hb = splitmix64(&b);
    uint64_t hb2 = splitmix64(&b);
    mf_rng_seed(r, ha ^ rotl(hb, 23) ^ (hb2 * 0xda942042e4dd58b5ULL));
}

uint64_t mf_rng_u64(mf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mf_rng_uniform(mf_rng *r) { return (double)(mf_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t mf_rng_below(mf_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* reject the lowest 2^64 mod n values so that every residue is equally likely */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = mf_rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

float mf_rng_normal(mf_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - mf_rng_uniform(r); /* (0,1]: log is finite */
    double u2 = mf_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 2.0 * 3.14159265358979323846 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

void mf_rng_shuffle(mf_rng *r, int64_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mf_rng_below(r, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
