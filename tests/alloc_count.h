/* Counting heap allocations: the test executable defines malloc, calloc and realloc,
 * which (by symbol interposition) every library in the process then calls — libmmfuse
 * included. Count between alloc_count_start() and alloc_count_stop().
 *
 * Allocations made by the BLAS library itself are not mmfuse's and are counted apart
 * (alloc_count_blas): OpenBLAS 0.3.21's AVX-512 small-matrix kernels (SkylakeX, Cooperlake)
 * malloc a 1 kB buffer per call for some shapes, so on such a processor the count would
 * depend on which kernel OpenBLAS picked. */
#ifndef MF_TESTS_ALLOC_COUNT_H
#define MF_TESTS_ALLOC_COUNT_H
#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first #include: alloc_count.h needs dladdr"
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* default visibility: the project builds with -fvisibility=hidden, which would keep these
 * definitions local to the executable, and libmmfuse's calls would go to libc uncounted */
#define ALLOC_COUNT_EXPORT __attribute__((visibility("default")))

static volatile int counting;
static volatile long n_allocs;
static volatile long n_blas_allocs;

/* 1 when the allocation's caller lies in the BLAS library (libopenblas, libblas) */
static int alloc_from_blas(const void *caller)
{
    Dl_info info;
    if (!dladdr(caller, &info) || !info.dli_fname)
        return 0;
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    return strstr(base, "openblas") != NULL || strncmp(base, "libblas", 7) == 0;
}

static inline void alloc_counted(const void *caller)
{
    if (!counting)
        return;
    counting = 0; /* dladdr may itself allocate */
    if (alloc_from_blas(caller))
        n_blas_allocs++;
    else
        n_allocs++;
    counting = 1;
}

ALLOC_COUNT_EXPORT void *malloc(size_t n)
{
    alloc_counted(__builtin_return_address(0));
    return __libc_malloc(n);
}

ALLOC_COUNT_EXPORT void *calloc(size_t n, size_t size)
{
    alloc_counted(__builtin_return_address(0));
    return __libc_calloc(n, size);
}

ALLOC_COUNT_EXPORT void *realloc(void *p, size_t n)
{
    alloc_counted(__builtin_return_address(0));
    return __libc_realloc(p, n);
}

static inline void alloc_count_start(void)
{
    n_allocs = 0;
    n_blas_allocs = 0;
    counting = 1;
}

static inline long alloc_count_stop(void)
{
    counting = 0;
    return n_allocs;
}

/* allocations the BLAS library made in the last counted stretch */
static inline long alloc_count_blas(void)
{
    return n_blas_allocs;
}
#endif
