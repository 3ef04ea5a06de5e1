/* Counting heap allocations: the test executable defines malloc, calloc and realloc,
 * which (by symbol interposition) every library in the process then calls — libmmfuse
 * included. Count between alloc_count_start() and alloc_count_stop().
 *
 * Allocations made by the BLAS library itself are not mmfuse's and are counted apart
 * (alloc_count_blas): OpenBLAS 0.3.21's AVX-512 small-matrix kernels (SkylakeX, Cooperlake)
 * malloc a 1 kB buffer per call for some shapes, so on such a processor the count would
 * depend on which kernel OpenBLAS picked.
 *
 * Under AddressSanitizer or ThreadSanitizer the runtime owns malloc: a second definition
 * here would hand ASan blocks from libc's heap (a "free of an address not malloc()-ed" on
 * the first free). There the count comes from the sanitizer's allocation hook instead,
 * which sees the same calls (malloc, calloc, and realloc, which under a sanitizer always
 * allocates anew); the caller is found by unwinding past the runtime's frames. */
#ifndef MF_TESTS_ALLOC_COUNT_H
#define MF_TESTS_ALLOC_COUNT_H
#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first #include: alloc_count.h needs dladdr"
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_COUNT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALLOC_COUNT_SANITIZER 1
#endif
#endif

static int counting; /* atomic: read by every allocating thread */
static long n_allocs;      /* atomically updated: OpenMP workers allocate too */
static long n_blas_allocs;
/* set while classifying, so allocations dladdr or the unwinder make are not counted */
static _Thread_local int in_counter;

/* 1 when the module holding addr is the BLAS library (libopenblas, libblas) */
static int alloc_in_blas(const Dl_info *info)
{
    if (!info->dli_fname)
        return 0;
    const char *base = strrchr(info->dli_fname, '/');
    base = base ? base + 1 : info->dli_fname;
    return strstr(base, "openblas") != NULL || strncmp(base, "libblas", 7) == 0;
}

static inline void alloc_tally(int blas)
{
    __atomic_add_fetch(blas ? &n_blas_allocs : &n_allocs, 1, __ATOMIC_RELAXED);
}

#ifndef ALLOC_COUNT_SANITIZER
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* default visibility: the project builds with -fvisibility=hidden, which would keep these
 * definitions local to the executable, and libmmfuse's calls would go to libc uncounted */
#define ALLOC_COUNT_EXPORT __attribute__((visibility("default")))

static inline void alloc_counted(const void *caller)
{
    if (!__atomic_load_n(&counting, __ATOMIC_RELAXED) || in_counter)
        return;
    in_counter = 1; /* dladdr may itself allocate */
    Dl_info info;
    alloc_tally(dladdr(caller, &info) && alloc_in_blas(&info));
    in_counter = 0;
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

static inline void alloc_count_install(void)
{
}
#else
#include <execinfo.h>
#include <unistd.h>

int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

/* the first frame outside this executable (the hook and, with clang, the static runtime)
 * and outside a shared sanitizer runtime is the allocation's caller; a test's own malloc
 * thus falls through to check or libc: not BLAS, as without a sanitizer. Returns 1 for
 * BLAS, 0 for the rest, -1 for an aligned allocation (memalign, posix_memalign,
 * aligned_alloc), which the definitions above do not see either: libgomp makes one per
 * parallel region, and counting it would make the count differ with the sanitizer. */
static int alloc_caller_kind(void)
{
    void *frames[24];
    int n = backtrace(frames, 24);
    Dl_info self, info;
    const char *entry = NULL; /* the runtime's entry point the caller called */
    if (!dladdr((void *)alloc_caller_kind, &self))
        return 0;
    for (int i = 1; i < n; i++) {
        if (!dladdr(frames[i], &info) || info.dli_fbase == self.dli_fbase || !info.dli_fname)
            continue;
        const char *base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
        if (!strncmp(base, "libasan", 7) || !strncmp(base, "libtsan", 7) ||
            !strncmp(base, "libclang_rt", 11)) {
            entry = info.dli_sname;
            continue;
        }
        if (entry && (strstr(entry, "memalign") || strstr(entry, "aligned_alloc") ||
                      strstr(entry, "valloc")))
            return -1;
        return alloc_in_blas(&info);
    }
    return 0;
}

static void alloc_count_hook(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    if (!__atomic_load_n(&counting, __ATOMIC_RELAXED) || in_counter)
        return;
    in_counter = 1;
    int kind = alloc_caller_kind();
    if (kind >= 0) {
        alloc_tally(kind);
        if (getenv("ALLOC_COUNT_TRACE")) { /* where an unexpected count comes from */
            void *frames[24];
            backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
            (void)!write(2, "--\n", 3);
        }
    }
    in_counter = 0;
}

static void alloc_count_free_hook(const volatile void *p)
{
    (void)p;
}

static inline void alloc_count_install(void)
{
    static int installed;
    if (installed)
        return;
    installed = 1;
    void *warm[4];
    backtrace(warm, 4); /* loads the unwinder (which allocates) before anything is counted */
    __sanitizer_install_malloc_and_free_hooks(alloc_count_hook, alloc_count_free_hook);
}
#endif

static inline void alloc_count_start(void)
{
    alloc_count_install();
    __atomic_store_n(&n_allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&n_blas_allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&counting, 1, __ATOMIC_SEQ_CST);
}

static inline long alloc_count_stop(void)
{
    __atomic_store_n(&counting, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&n_allocs, __ATOMIC_RELAXED);
}

/* allocations the BLAS library made in the last counted stretch */
static inline long alloc_count_blas(void)
{
    return __atomic_load_n(&n_blas_allocs, __ATOMIC_RELAXED);
}
#endif
