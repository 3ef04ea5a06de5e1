/* Helpers the file-reading dataset plugins (hdf5, idx) share, as static functions: each
 * plugin is built from its one C file, and a plugin links only against libmmfuse's public
 * API, so these cannot live in the library's private layers.
 *
 *  - data_file_open: open a data file for reading only if it is a regular file. A FIFO with
 *    no writer would block open() forever, and a device or socket never ends: the file is
 *    opened with O_NONBLOCK (which never blocks on a FIFO) and checked with fstat on that
 *    descriptor, so nothing can be swapped in between the check and the read.
 *  - data_file_normalize: a joined path without "." components or doubled slashes, so that
 *    messages say "data/x.idx", not "././data//x.idx".
 */
#ifndef MMFUSE_PLUGINS_DATA_FILE_H
#define MMFUSE_PLUGINS_DATA_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a stat mode is, for "it is not a regular file (a FIFO)". */
static inline const char *data_file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a folder"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
                            : "not a file";
}

/* A descriptor of `path` open for reading (blocking again), or -1 with the reason in `why`:
 * strerror's text, "it is a folder", or "it is not a regular file (a FIFO)". */
static inline int data_file_open(const char *path, char *why, size_t size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    if (fd < 0) {
        snprintf(why, size, "%s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) != 0) {
        snprintf(why, size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        if (S_ISDIR(sb.st_mode))
            snprintf(why, size, "it is a folder");
        else
            snprintf(why, size, "it is not a regular file (%s)", data_file_kind(sb.st_mode));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

/* `path` in place without "." components and doubled slashes ("./a//./b" → "a/b"); ".."
 * is kept (it may cross a symbolic link). An empty result becomes ".". */
static inline void data_file_normalize(char *path)
{
    const int absolute = path[0] == '/';
    char *out = path + absolute;
    const char *in = path + absolute;
    while (*in) {
        const char *end = strchr(in, '/');
        size_t len = end ? (size_t)(end - in) : strlen(in);
        if (len && !(len == 1 && in[0] == '.')) {
            if (out > path + absolute)
                *out++ = '/';
            memmove(out, in, len);
            out += len;
        }
        in += len + (end != NULL);
    }
    *out = '\0';
    if (!absolute && out == path)
        snprintf(path, 2, ".");
}

#endif
