/* Errors and shapes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/base.h>

/* ---------------------------------------------------------------- errors */
static const char ellipsis[] = "\xe2\x80\xa6"; /* "…" in UTF-8 */

void mf_error_clear(mf_error *err)
{
    if (!err)
        return;
    err->count = 0;
    err->msg[0] = '\0';
}

static int ends_truncated(const char *msg, size_t len)
{
    size_t n = sizeof ellipsis - 1;
    return len >= n && memcmp(msg + len - n, ellipsis, n) == 0 &&
           (len == n || msg[len - n - 1] == '\n');
}

void mf_error_set(mf_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char line[MF_ERROR_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = strnlen(err->msg, sizeof err->msg);
    if (len == sizeof err->msg) { /* never terminated: treat as garbage */
        len = 0;
        err->msg[0] = '\0';
    }
    if (ends_truncated(err->msg, len))
        return; /* already full */
    size_t sep = len ? 1 : 0;
    size_t reserve = 1 + (sizeof ellipsis - 1) + 1; /* "\n…" and the terminator */
    if ((size_t)n < sizeof line && len + sep + (size_t)n + reserve <= sizeof err->msg) {
        if (sep)
            err->msg[len++] = '\n';
        memcpy(err->msg + len, line, (size_t)n + 1);
        err->count++;
        return;
    }
    /* full: drop the message and mark the buffer as truncated */
    if (sep)
        err->msg[len++] = '\n';
    memcpy(err->msg + len, ellipsis, sizeof ellipsis);
}

/* ---------------------------------------------------------------- shapes */
mf_shape mf_shape1(int64_t d0) { return (mf_shape){1, {d0, 0, 0, 0}}; }
mf_shape mf_shape2(int64_t d0, int64_t d1) { return (mf_shape){2, {d0, d1, 0, 0}}; }
mf_shape mf_shape3(int64_t d0, int64_t d1, int64_t d2) { return (mf_shape){3, {d0, d1, d2, 0}}; }
mf_shape mf_shape4(int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    return (mf_shape){4, {d0, d1, d2, d3}};
}

/* Shapes come from files and YAML, so the product is checked: -1 for a negative axis or a
 * product over MFI_NUMEL_MAX (2^60 - 1), where an unchecked product wrapped around (a
 * 111620x429509837x384773 import made 4 elements; (-2,-3) made 6). Below the cap, a count
 * of 8-byte values still fits an int64_t and a size_t, so no caller's byte count overflows. */
#define MFI_NUMEL_MAX (((int64_t)1 << 60) - 1)

int64_t mf_shape_numel(const mf_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim && i < MF_MAX_DIMS; i++) {
        const int64_t d = s->dim[i];
        if (d < 0 || (d > 0 && n > MFI_NUMEL_MAX / d))
            return -1;
        n *= d;
    }
    return n;
}

int mf_shape_equal(const mf_shape *a, const mf_shape *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim && i < MF_MAX_DIMS; i++)
        if (a->dim[i] != b->dim[i])
            return 0;
    return 1;
}

char *mf_shape_str(const mf_shape *s, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    size_t at = 0;
    buf[0] = '\0';
#define PUT(...)                                                                   \
    do {                                                                           \
        int k_ = snprintf(buf + at, size - at, __VA_ARGS__);                      \
        if (k_ < 0 || (size_t)k_ >= size - at)                                     \
            return buf;                                                            \
        at += (size_t)k_;                                                          \
    } while (0)
    PUT("(");
    for (int i = 0; i < s->ndim && i < MF_MAX_DIMS; i++)
        PUT(i ? ",%lld" : "%lld", (long long)s->dim[i]);
    PUT(")");
#undef PUT
    return buf;
}
