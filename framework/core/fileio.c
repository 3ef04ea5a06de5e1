/* Files that are never half written: write to a temporary file beside the target, flush and
 * fsync it, rename it over the target, fsync the folder. A crash leaves the old file or the
 * new one, never a torn one. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include <mmfuse/base.h>

FILE *mf_atomic_open(mf_atomic_file *af, const char *path, mf_error *err)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    af->path = malloc(len + 1);
    af->tmp = malloc(len + 16);
    if (!af->path || !af->tmp) {
        mf_error_set(err, "cannot write '%s': out of memory", path);
        mf_atomic_abort(af);
        return NULL;
    }
    memcpy(af->path, path, len + 1);
    snprintf(af->tmp, len + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(af->tmp); /* unique: two writers never share a temporary */
    if (fd < 0 || !(af->f = fdopen(fd, "w"))) {
        mf_error_set(err, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd); /* the temporary exists: abort unlinks it */
        } else {
            free(af->tmp); /* nothing was created */
            af->tmp = NULL;
        }
        mf_atomic_abort(af);
        return NULL;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a written file should read like any other */
    return af->f;
}

void mf_atomic_abort(mf_atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int mf_atomic_commit(mf_atomic_file *af, mf_error *err)
{
    int ok = fflush(af->f) == 0 && fsync(fileno(af->f)) == 0;
    if (fclose(af->f) != 0)
        ok = 0;
    af->f = NULL;
    if (!ok || rename(af->tmp, af->path) != 0) {
        mf_error_set(err, "cannot write '%s': %s", af->path, strerror(errno));
        mf_atomic_abort(af);
        return -1;
    }
    /* the rename itself is durable once the folder is synced */
    char *dir = strdup(af->path);
    int dfd = dir ? open(dirname(dir), O_RDONLY | O_DIRECTORY) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    free(af->tmp);
    af->tmp = NULL;
    mf_atomic_abort(af); /* frees the rest; the temporary is gone already */
    return 0;
}

int mf_write_file_atomic(const char *path, const void *data, size_t len, mf_error *err)
{
    mf_atomic_file af;
    FILE *f = mf_atomic_open(&af, path, err);
    if (!f)
        return -1;
    if (len && fwrite(data, 1, len, f) != len) {
        mf_error_set(err, "cannot write '%s': %s", path, strerror(errno));
        mf_atomic_abort(&af);
        return -1;
    }
    return mf_atomic_commit(&af, err);
}

int mf_make_dirs(const char *path, mf_error *err)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                goto fail;
            *s = '/';
        }
    if (mkdir(p, 0755) == 0 || errno == EEXIST)
        return 0;
fail:
    mf_error_set(err, "cannot create the folder '%s': %s", p, strerror(errno));
    return -1;
}
