/* alloc.c — an LD_PRELOAD shim for tests: one allocation made by mmfuse's own code fails,
 * as under memory pressure, so every allocation site can be tested for a clean failure.
 *
 *   MMFUSE_FAULT_ALLOC_AT=N    the N-th allocation (from 1) of mmfuse's code returns NULL with
 *                              errno ENOMEM; the others succeed. Unset: the shim only counts.
 *   MMFUSE_FAULT_ALLOC_COUNT=F at exit, write the number of mmfuse allocations to file F (to
 *                              know the range of N).
 *   MMFUSE_FAULT_ALLOC_TRACE=1 print the stack of the failed allocation on stderr (where a
 *                              bad handling of it starts).
 *
 * "mmfuse's code" is the caller's object: the mmfuse executable, libmmfuse or a plugin
 * (mmfuse-*.so), found with dladdr on the return address. Allocations inside libyaml, HDF5,
 * OpenBLAS or libc are never failed: mmfuse cannot make those libraries survive one, and a
 * crash inside them would say nothing about mmfuse. The allocations counted are malloc,
 * calloc, realloc, strdup, strndup and posix_memalign/aligned_alloc made directly by that
 * code; the real allocator is glibc's (__libc_malloc and friends, which dlsym does not need). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the project builds with -fvisibility=hidden; a shim's definitions must be seen */
#pragma GCC visibility push(default)

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_long counted;
static long fail_at = -2; /* -2: the environment not read yet; -1: never */
static __thread int inside; /* dladdr may allocate: not counted, not failed */

static void read_environment(void)
{
    const char *at = getenv("MMFUSE_FAULT_ALLOC_AT");
    fail_at = at && *at ? strtol(at, NULL, 10) : -1;
}

static int from_mmfuse(const void *caller)
{
    Dl_info info;
    if (!dladdr(caller, &info) || !info.dli_fname)
        return 0;
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    return strcmp(base, "mmfuse") == 0 || strncmp(base, "libmmfuse", 9) == 0 ||
           strncmp(base, "mmfuse-", 7) == 0;
}

/* 1 when this allocation, made from `caller`, is the one to fail. */
static int fails(const void *caller)
{
    if (inside)
        return 0;
    inside = 1;
    if (fail_at == -2)
        read_environment();
    int ours = from_mmfuse(caller);
    inside = 0;
    if (!ours)
        return 0;
    long n = atomic_fetch_add(&counted, 1) + 1;
    if (n != fail_at)
        return 0;
    const char *trace = getenv("MMFUSE_FAULT_ALLOC_TRACE");
    if (trace && *trace) {
        void *frames[32];
        inside = 1;
        backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
        inside = 0;
    }
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    return fails(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return fails(__builtin_return_address(0)) ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    return fails(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n);
}

char *strdup(const char *s)
{
    if (fails(__builtin_return_address(0)))
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

char *strndup(const char *s, size_t max)
{
    if (fails(__builtin_return_address(0)))
        return NULL;
    size_t n = strnlen(s, max);
    char *d = __libc_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (fails(__builtin_return_address(0)))
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    return fails(__builtin_return_address(0)) ? NULL : __libc_memalign(align, n);
}

__attribute__((destructor)) static void report_count(void)
{
    const char *file = getenv("MMFUSE_FAULT_ALLOC_COUNT");
    FILE *f = file && *file ? fopen(file, "w") : NULL;
    if (f) {
        fprintf(f, "%ld\n", atomic_load(&counted));
        fclose(f);
    }
}

#pragma GCC visibility pop
