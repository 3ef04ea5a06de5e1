/* mmfuse/base.h — what every other header needs: export macro, version, errors, shapes.
 *
 * Errors travel in an mf_error: a small buffer of human-readable lines. A function that
 * can fail takes `mf_error *err` last, returns 0 on success and -1 on failure after
 * appending one clear sentence (or several, for validators that report everything at once).
 */
#ifndef MMFUSE_BASE_H
#define MMFUSE_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(MF_BUILDING_LIBRARY)
#define MF_API __attribute__((visibility("default")))
#else
#define MF_API
#endif

#if defined(__GNUC__)
#define MF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MF_PRINTF(fmt, args)
#endif

#define MF_VERSION_MAJOR 0
#define MF_VERSION_MINOR 1
#define MF_VERSION_PATCH 0
#define MF_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */
#define MF_ERROR_CAPACITY 4096
typedef struct mf_error {
    int count;                  /* number of messages appended              */
    char msg[MF_ERROR_CAPACITY];/* messages, one per line, without trailing \n */
} mf_error;

MF_API void mf_error_clear(mf_error *err);
/* Append one message (a line). Safe with err == NULL (then it does nothing).
 * When the buffer is full the message is dropped and the buffer ends with "…". */
MF_API void mf_error_set(mf_error *err, const char *fmt, ...) MF_PRINTF(2, 3);

/* ---------------------------------------------------------------- files */
/* Data and checkpoints are never lost: write into a temporary beside `path`, then commit
 * (flush, fsync, rename over path, fsync the folder) or abort (the temporary is removed). */
typedef struct mf_atomic_file {
    FILE *f;
    char *tmp, *path;
} mf_atomic_file;

MF_API FILE *mf_atomic_open(mf_atomic_file *af, const char *path, mf_error *err);
MF_API int mf_atomic_commit(mf_atomic_file *af, mf_error *err);
MF_API void mf_atomic_abort(mf_atomic_file *af);
/* mkdir -p: every missing folder of `path` (0755). */
MF_API int mf_make_dirs(const char *path, mf_error *err);
/* The whole file at once. */
MF_API int mf_write_file_atomic(const char *path, const void *data, size_t len, mf_error *err);

/* ---------------------------------------------------------------- shapes */
#define MF_MAX_DIMS 4
/* A tensor shape, outermost axis first (batch first for activations: (B,F), (B,C,H,W)). */
typedef struct mf_shape {
    int ndim;
    int64_t dim[MF_MAX_DIMS];
} mf_shape;

MF_API mf_shape mf_shape1(int64_t d0);
MF_API mf_shape mf_shape2(int64_t d0, int64_t d1);
MF_API mf_shape mf_shape3(int64_t d0, int64_t d1, int64_t d2);
MF_API mf_shape mf_shape4(int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* The product of the axes; -1 when an axis is negative or the product is over 2^60 - 1 (so
 * count × 8 bytes still fits an int64_t): check it on shapes that come from input. */
MF_API int64_t mf_shape_numel(const mf_shape *s);
MF_API int mf_shape_equal(const mf_shape *a, const mf_shape *b);
/* "(128,64)" into buf; returns buf. */
MF_API char *mf_shape_str(const mf_shape *s, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
