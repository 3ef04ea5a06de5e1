/* The CSV input of mf_import_csv: opening it, and records (RFC 4180).
 *
 * No CSV library is a standard Debian build dependency, and the format is small: fields
 * separated by commas, records by LF or CRLF; a field in double quotes may hold commas, line
 * breaks and "" for a quote. Blank lines are skipped and a UTF-8 byte-order mark ignored. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import_csv.h"

static int is_stdin(const char *path)
{
    return strcmp(path, "-") == 0 || strcmp(path, "/dev/stdin") == 0;
}

static const char *kind_of(mode_t mode)
{
    return S_ISFIFO(mode)  ? "a FIFO"
           : S_ISDIR(mode) ? "a folder"
           : S_ISCHR(mode) ? "a character device"
           : S_ISBLK(mode) ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "an unusual file";
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The import reads its input twice, so standard input that is not a regular file (a pipe,
 * a terminal) is first copied to a temporary file, unlinked at once: nothing is left behind
 * however the process ends. Returns the copy's descriptor (at offset 0), or -1. */
static int spool(int in, const char *name, mf_error *err)
{
    const char *dir = getenv("TMPDIR");
    char path[4096], buf[1 << 14];
    dir = dir && *dir ? dir : "/tmp";
    snprintf(path, sizeof path, "%s/mmfuse-stdin-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        mf_error_set(err, "cannot read %s: cannot keep a copy in %s: %s", name, dir,
                     strerror(errno));
        return -1;
    }
    unlink(path);
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            mf_error_set(err, "cannot read %s: %s", name, strerror(errno));
            break;
        }
        if (got == 0 && lseek(fd, 0, SEEK_SET) == 0)
            return fd;
        if (got == 0 || write_all(fd, buf, (size_t)got)) {
            mf_error_set(err, "cannot read %s: cannot keep a copy in %s: %s", name, dir,
                         strerror(errno));
            break;
        }
    }
    close(fd);
    return -1;
}

/* A descriptor for `path` that reads a regular file (or a spooled copy of stdin). */
static int open_input(mfi_csv *c, const char *path, mf_error *err, int *status)
{
    *status = MF_EXIT_BAD_INPUT;
    /* O_NONBLOCK: opening a FIFO with no writer would wait forever */
    int fd = is_stdin(path) ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
                            : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        mf_error_set(err, "cannot read '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !is_stdin(path)) {
        if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode))
            mf_error_set(err, "%s is not a regular file (%s); to import from a pipe, give - "
                              "and feed it to standard input", path, kind_of(st.st_mode));
        else
            mf_error_set(err, "%s is not a regular file (%s)", path, kind_of(st.st_mode));
        close(fd);
        return -1;
    }
    if (!is_stdin(path))
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (S_ISREG(st.st_mode)) {
        off_t at = lseek(fd, 0, SEEK_CUR); /* stdin may start part-way into its file */
        c->start = at > 0 ? (int64_t)at : 0;
        return fd;
    }
    int copy = spool(fd, c->name, err);
    close(fd);
    if (copy < 0)
        *status = MF_EXIT_FAILED;
    return copy;
}

int mfi_csv_open(mfi_csv *c, const char *path, mf_error *err)
{
    int status;
    c->name = strcmp(path, "-") == 0 ? "stdin" : path;
    c->start = 0;
    int fd = open_input(c, path, err, &status);
    if (fd < 0)
        return status;
    if (!(c->f = fdopen(fd, "rb"))) {
        mf_error_set(err, "cannot read '%s': %s", path, strerror(errno));
        close(fd);
        return MF_EXIT_FAILED;
    }
    /* a byte-order mark: its three bytes are skipped on every pass */
    int a = getc(c->f), b = a == 0xEF ? getc(c->f) : EOF, d = b == 0xBB ? getc(c->f) : EOF;
    if (a == 0xEF && b == 0xBB && d == 0xBF)
        c->start += 3;
    if (mfi_csv_rewind(c)) {
        mf_error_set(err, "cannot read '%s': %s", path, strerror(errno));
        return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}

void mfi_csv_close(mfi_csv *c)
{
    free(c->text);
    free(c->field);
    if (c->f)
        fclose(c->f);
    c->text = NULL;
    c->field = NULL;
    c->f = NULL;
}

int mfi_csv_rewind(mfi_csv *c)
{
    clearerr(c->f);
    c->line = 1;
    return fseeko(c->f, (off_t)c->start, SEEK_SET);
}

/* ---------------------------------------------------------------- records */
static int csv_put(mfi_csv *c, char ch)
{
    if (c->len + 1 > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        char *grown = realloc(c->text, cap);
        if (!grown)
            return -1;
        c->text = grown;
        c->cap = cap;
    }
    c->text[c->len++] = ch;
    return 0;
}

static int csv_start_field(mfi_csv *c)
{
    if (c->n == c->field_cap) {
        if (c->field_cap > (1 << 28))
            return -1; /* more fields than any table has: treat as out of memory */
        int cap = c->field_cap ? 2 * c->field_cap : 64;
        size_t *grown = realloc(c->field, (size_t)cap * sizeof *grown);
        if (!grown)
            return -1;
        c->field = grown;
        c->field_cap = cap;
    }
    c->field[c->n++] = c->len;
    return 0;
}

/* A quoted field after its opening quote; returns the character after the closing quote
 * (-2 with a message). */
static int quoted(mfi_csv *c, mf_error *err)
{
    for (;;) {
        int ch = getc(c->f);
        if (ch == EOF) {
            mf_error_set(err, "%s:%ld: field %d opens a quote that is never closed", c->name,
                         c->record_line, c->n);
            return -2;
        }
        if (ch == '"' && (ch = getc(c->f)) != '"')
            return ch; /* the closing quote; ch follows it */
        c->line += ch == '\n';
        if (ch == 0) {
            mf_error_set(err, "%s:%ld: a NUL byte: this is not a text file", c->name, c->line);
            return -2;
        }
        if (csv_put(c, (char)ch)) {
            mf_error_set(err, "%s:%ld: out of memory for a record", c->name, c->record_line);
            return -2;
        }
    }
}

int mfi_csv_next(mfi_csv *c, mf_error *err)
{
    c->len = 0;
    c->n = 0;
    int ch = getc(c->f);
    while (ch == '\n' || ch == '\r') { /* blank lines */
        c->line += ch == '\n';
        ch = getc(c->f);
    }
    if (ch == EOF) {
        if (ferror(c->f)) {
            mf_error_set(err, "%s:%ld: cannot be read: %s", c->name, c->line, strerror(errno));
            return -1;
        }
        return 0;
    }
    c->record_line = c->line;
    for (;;) { /* one field per turn; ch is its first character */
        if (csv_start_field(c))
            goto oom;
        if (ch == '"') {
            if ((ch = quoted(c, err)) == -2)
                return -1;
            if (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
                mf_error_set(err, "%s:%ld: field %d has text after its closing quote",
                             c->name, c->line, c->n);
                return -1;
            }
        } else {
            while (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
                if (ch == 0) {
                    mf_error_set(err, "%s:%ld: a NUL byte: this is not a text file", c->name,
                                 c->line);
                    return -1;
                }
                if (csv_put(c, (char)ch))
                    goto oom;
                ch = getc(c->f);
            }
        }
        if (csv_put(c, '\0'))
            goto oom;
        if (ch == ',') {
            ch = getc(c->f);
            continue;
        }
        if (ch == EOF && ferror(c->f)) {
            mf_error_set(err, "%s:%ld: cannot be read: %s", c->name, c->line, strerror(errno));
            return -1;
        }
        if (ch == '\r' && (ch = getc(c->f)) != '\n' && ch != EOF)
            ungetc(ch, c->f);
        c->line++;
        return 1;
    }
oom:
    mf_error_set(err, "%s:%ld: out of memory for a record", c->name, c->record_line);
    return -1;
}
