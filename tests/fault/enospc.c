/* enospc.c — an LD_PRELOAD shim for tests: writes fail with ENOSPC, as on a full disk, so
 * every file mmfuse writes can be tested for a clean failure without root or a small tmpfs.
 *
 *   MMFUSE_FAULT_WRITE_AFTER=N   bytes that may still be written; the write that crosses N
 *                                is cut short at N, every later one fails with ENOSPC (as a
 *                                filling disk does). Unset: the shim does nothing.
 *   MMFUSE_FAULT_PATH=TEXT       only files whose path contains TEXT count and fail. Unset:
 *                                every file opened after start. Inherited descriptors
 *                                (stdin, stdout, stderr) never fail, so messages get out.
 *   MMFUSE_FAULT_KILL=1          instead of failing, the write that would cross N kills the
 *                                process (SIGKILL): a machine dying while a file is written.
 *
 * Descriptors are tracked from the calls that open by name (open, openat, creat, mkstemp
 * and friends, fopen) and followed through dup and fcntl(F_DUPFD). The failing calls are
 * write(2) and its vector/positional forms, which HDF5's sec2 driver uses, and stdio's
 * fwrite, fputs, fputc, putc, fprintf, vfprintf: glibc's stdio flushes through an internal
 * write that no preload can see, so the shim fails those at the API and then fflush, fclose
 * and fsync of that file too (a real full disk may only show at fsync). A file's failure is
 * reported once more at each later call, never forgotten.
 *
 * Used by tests/test-import.sh; meant for checkpoints and run folders as well. */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE   /* its inline wrappers would hide the functions defined here */
#undef _FILE_OFFSET_BITS /* it renames open to open64, which is defined here as well */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#undef putc
#undef fputc

/* every function below replaces libc's: exported whatever the build's default visibility */
#pragma GCC visibility push(default)

#define MAX_FD 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int enabled = -1;              /* -1: the environment not read yet */
static long long budget;              /* bytes left */
static int kill_instead;              /* MMFUSE_FAULT_KILL: SIGKILL where a write would fail */
static const char *path_part;         /* NULL: every opened file */
static unsigned char tracked[MAX_FD]; /* 1: counts; 2: counts and has failed */

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "enospc.c: a libc function is missing\n";
        ssize_t (*w)(int, const void *, size_t) = dlsym(RTLD_DEFAULT, "write");
        if (w)
            w(2, msg, sizeof msg - 1);
        abort();
    }
    return f;
}
/* The next definition of `name` (libc's), looked up once. */
#define REAL(name)                                                                         \
    static __typeof__(name) *real_##name;                                                  \
    if (!real_##name)                                                                      \
    real_##name = (__typeof__(name) *)real(#name)

static void setup(void)
{
    if (enabled >= 0)
        return;
    const char *after = getenv("MMFUSE_FAULT_WRITE_AFTER");
    enabled = after && *after;
    budget = enabled ? strtoll(after, NULL, 10) : 0;
    const char *kill_env = getenv("MMFUSE_FAULT_KILL");
    kill_instead = kill_env && *kill_env && strcmp(kill_env, "0") != 0;
    path_part = getenv("MMFUSE_FAULT_PATH");
    if (path_part && !*path_part)
        path_part = NULL;
}

static void note_open(int fd, const char *path)
{
    setup();
    if (!enabled || fd < 0 || fd >= MAX_FD)
        return;
    pthread_mutex_lock(&lock);
    tracked[fd] = !path_part || (path && strstr(path, path_part)) ? 1 : 0;
    pthread_mutex_unlock(&lock);
}

static void note_dup(int from, int to)
{
    if (to < 0 || to >= MAX_FD)
        return;
    pthread_mutex_lock(&lock);
    tracked[to] = from >= 0 && from < MAX_FD ? tracked[from] : 0;
    pthread_mutex_unlock(&lock);
}

/* How many of n bytes may go to fd: n, fewer (the disk fills), or -1 (ENOSPC set). */
static ssize_t allow(int fd, size_t n)
{
    setup();
    if (!enabled || fd < 0 || fd >= MAX_FD || n == 0)
        return (ssize_t)n;
    ssize_t ok;
    pthread_mutex_lock(&lock);
    if (!tracked[fd]) {
        ok = (ssize_t)n;
    } else if (kill_instead && (long long)n > budget) {
        raise(SIGKILL); /* mid-file, with what was written so far on disk */
        ok = -1;
    } else if (tracked[fd] == 2 || budget <= 0) {
        tracked[fd] = 2;
        ok = -1;
    } else {
        ok = (long long)n <= budget ? (ssize_t)n : (ssize_t)budget;
        budget -= ok;
    }
    pthread_mutex_unlock(&lock);
    if (ok < 0)
        errno = ENOSPC;
    return ok;
}

static int failed(int fd)
{
    setup();
    if (!enabled || fd < 0 || fd >= MAX_FD)
        return 0;
    pthread_mutex_lock(&lock);
    int f = tracked[fd] == 2;
    pthread_mutex_unlock(&lock);
    if (f)
        errno = ENOSPC;
    return f;
}

/* ---------------------------------------------------------------- opening */
static mode_t mode_arg(int flags, va_list ap)
{
    return flags & (O_CREAT | O_TMPFILE) ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_WRAPPER(name)                                                                 \
    int name(const char *path, int flags, ...)                                             \
    {                                                                                      \
        REAL(name);                                                                        \
        va_list ap;                                                                        \
        va_start(ap, flags);                                                               \
        mode_t mode = mode_arg(flags, ap);                                                 \
        va_end(ap);                                                                        \
        int fd = real_##name(path, flags, mode);                                           \
        note_open(fd, path);                                                               \
        return fd;                                                                         \
    }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                               \
    int name(int dir, const char *path, int flags, ...)                                    \
    {                                                                                      \
        REAL(name);                                                                        \
        va_list ap;                                                                        \
        va_start(ap, flags);                                                               \
        mode_t mode = mode_arg(flags, ap);                                                 \
        va_end(ap);                                                                        \
        int fd = real_##name(dir, path, flags, mode);                                      \
        note_open(fd, path);                                                               \
        return fd;                                                                         \
    }
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

int creat(const char *path, mode_t mode)
{
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* mkstemp opens inside libc, out of the shim's sight: note the name it filled in. */
#define MKSTEMP_WRAPPER(name, params, args)                                                \
    int name params                                                                        \
    {                                                                                      \
        REAL(name);                                                                        \
        int fd = real_##name args;                                                         \
        note_open(fd, tmpl);                                                               \
        return fd;                                                                         \
    }
MKSTEMP_WRAPPER(mkstemp, (char *tmpl), (tmpl))
MKSTEMP_WRAPPER(mkstemp64, (char *tmpl), (tmpl))
MKSTEMP_WRAPPER(mkostemp, (char *tmpl, int flags), (tmpl, flags))
MKSTEMP_WRAPPER(mkstemps, (char *tmpl, int suffix), (tmpl, suffix))
MKSTEMP_WRAPPER(mkostemps, (char *tmpl, int suffix, int flags), (tmpl, suffix, flags))

#define FOPEN_WRAPPER(name)                                                                \
    FILE *name(const char *path, const char *mode)                                         \
    {                                                                                      \
        REAL(name);                                                                        \
        FILE *f = real_##name(path, mode);                                                 \
        if (f)                                                                             \
            note_open(fileno(f), path);                                                    \
        return f;                                                                          \
    }
FOPEN_WRAPPER(fopen)
FOPEN_WRAPPER(fopen64)

int dup(int fd)
{
    REAL(dup);
    int to = real_dup(fd);
    note_dup(fd, to);
    return to;
}

int dup2(int fd, int to)
{
    REAL(dup2);
    int r = real_dup2(fd, to);
    if (r >= 0)
        note_dup(fd, r);
    return r;
}

int dup3(int fd, int to, int flags)
{
    REAL(dup3);
    int r = real_dup3(fd, to, flags);
    if (r >= 0)
        note_dup(fd, r);
    return r;
}

int fcntl(int fd, int cmd, ...)
{
    REAL(fcntl);
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long); /* every command takes at most one int, long or pointer */
    va_end(ap);
    int r = real_fcntl(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        note_dup(fd, r);
    return r;
}

int close(int fd)
{
    REAL(close);
    note_dup(-1, fd);
    return real_close(fd);
}

/* ---------------------------------------------------------------- write(2) */
ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(write);
    ssize_t k = allow(fd, n);
    return k < 0 ? -1 : real_write(fd, buf, (size_t)k);
}

#define PWRITE_WRAPPER(name, off_type)                                                     \
    ssize_t name(int fd, const void *buf, size_t n, off_type at)                           \
    {                                                                                      \
        REAL(name);                                                                        \
        ssize_t k = allow(fd, n);                                                          \
        return k < 0 ? -1 : real_##name(fd, buf, (size_t)k, at);                           \
    }
PWRITE_WRAPPER(pwrite, off_t)
PWRITE_WRAPPER(pwrite64, off64_t)

/* The vector forms are cut to whole vectors and a part of one. */
static int cut_iov(const struct iovec *iov, int cnt, ssize_t k, struct iovec *out)
{
    int m = 0;
    for (int i = 0; i < cnt && k > 0 && m < 64; i++, m++) {
        out[m] = iov[i];
        if ((ssize_t)out[m].iov_len > k)
            out[m].iov_len = (size_t)k;
        k -= (ssize_t)out[m].iov_len;
    }
    return m;
}

static size_t iov_bytes(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(writev);
    struct iovec cut[64];
    size_t n = iov_bytes(iov, cnt);
    ssize_t k = allow(fd, n);
    if (k < 0)
        return -1;
    return (size_t)k == n ? real_writev(fd, iov, cnt)
                          : real_writev(fd, cut, cut_iov(iov, cnt, k, cut));
}

#define PWRITEV_WRAPPER(name, off_type)                                                    \
    ssize_t name(int fd, const struct iovec *iov, int cnt, off_type at)                    \
    {                                                                                      \
        REAL(name);                                                                        \
        struct iovec cut[64];                                                              \
        size_t n = iov_bytes(iov, cnt);                                                    \
        ssize_t k = allow(fd, n);                                                          \
        if (k < 0)                                                                         \
            return -1;                                                                     \
        return (size_t)k == n ? real_##name(fd, iov, cnt, at)                              \
                              : real_##name(fd, cut, cut_iov(iov, cnt, k, cut), at);       \
    }
PWRITEV_WRAPPER(pwritev, off_t)
PWRITEV_WRAPPER(pwritev64, off64_t)

int fsync(int fd)
{
    REAL(fsync);
    return failed(fd) ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    return failed(fd) ? -1 : real_fdatasync(fd);
}

/* ---------------------------------------------------------------- stdio */
static int stream_fd(FILE *f)
{
    int fd = f ? fileno(f) : -1;
    return fd;
}

size_t fwrite(const void *buf, size_t size, size_t count, FILE *f)
{
    REAL(fwrite);
    if (size == 0 || count == 0)
        return real_fwrite(buf, size, count, f);
    ssize_t k = allow(stream_fd(f), size * count);
    if (k < 0)
        return 0;
    size_t whole = (size_t)k / size;
    size_t put = real_fwrite(buf, size, whole, f);
    if (whole < count && put == whole)
        errno = ENOSPC;
    return put;
}

int fputs(const char *s, FILE *f)
{
    size_t n = strlen(s);
    return fwrite(s, 1, n, f) == n ? 1 : EOF;
}

int fputc(int c, FILE *f)
{
    REAL(fputc);
    return allow(stream_fd(f), 1) == 1 ? real_fputc(c, f) : EOF;
}

int putc(int c, FILE *f)
{
    return fputc(c, f);
}

int vfprintf(FILE *f, const char *fmt, va_list ap)
{
    char small[512], *text = small;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small && (text = malloc((size_t)n + 1)))
        vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    if (n < 0 || !text) {
        errno = ENOMEM;
        return -1;
    }
    int r = fwrite(text, 1, (size_t)n, f) == (size_t)n ? n : -1;
    if (text != small)
        free(text);
    return r;
}

int fprintf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}

int fflush(FILE *f)
{
    REAL(fflush);
    int r = real_fflush(f);
    return f && failed(stream_fd(f)) ? EOF : r;
}

int fclose(FILE *f)
{
    REAL(fclose);
    int fd = stream_fd(f), bad = failed(fd);
    note_dup(-1, fd);
    int r = real_fclose(f);
    if (bad)
        errno = ENOSPC;
    return bad ? EOF : r;
}

#pragma GCC visibility pop
