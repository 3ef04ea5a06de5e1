/* Counting heap allocations: the test executable defines malloc, calloc and realloc,
 * which (by symbol interposition) every library in the process then calls — libmmfuse
 * included. Count between alloc_count_start() and alloc_count_stop(). */
#ifndef MF_TESTS_ALLOC_COUNT_H
#define MF_TESTS_ALLOC_COUNT_H
#include <stddef.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* default visibility: the project builds with -fvisibility=hidden, which would keep these
 * definitions local to the executable, and libmmfuse's calls would go to libc uncounted */
#define ALLOC_COUNT_EXPORT __attribute__((visibility("default")))

static volatile int counting;
static volatile long n_allocs;

ALLOC_COUNT_EXPORT void *malloc(size_t n)
{
    if (counting)
        n_allocs++;
    return __libc_malloc(n);
}

ALLOC_COUNT_EXPORT void *calloc(size_t n, size_t size)
{
    if (counting)
        n_allocs++;
    return __libc_calloc(n, size);
}

ALLOC_COUNT_EXPORT void *realloc(void *p, size_t n)
{
    if (counting)
        n_allocs++;
    return __libc_realloc(p, n);
}

static inline void alloc_count_start(void)
{
    n_allocs = 0;
    counting = 1;
}

static inline long alloc_count_stop(void)
{
    counting = 0;
    return n_allocs;
}
#endif
