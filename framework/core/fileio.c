/* Files that are never half written: write to a temporary file beside the target, flush and
 * fsync it, rename it over the target, fsync the folder. A crash leaves the old file or the
 * new one, never a torn one — and the temporary, which the next write of the same file
 * removes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mmfuse/base.h>

/* Whether the writer of a temporary named <target>.tmp-<pid>-XXXXXX (the part after
 * ".tmp-") may still be writing it: its process lives, or someone touched the file in the
 * last minute (the pid could be another machine's, on a shared folder). Pid-less names are
 * an older mmfuse's. */
static int may_be_in_use(int dir_fd, const char *name, const char *suffix)
{
    char *end;
    long pid = strtol(suffix, &end, 10);
    if (end != suffix && *end == '-' && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
        return 1;
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return 1;
    return time(NULL) - st.st_mtime < 60;
}

/* Removes the temporaries of `path` that writers killed mid-write left behind. */
static void remove_stale_temporaries(const char *path)
{
    char *d = strdup(path), *b = strdup(path);
    DIR *dir = d && b ? opendir(dirname(d)) : NULL;
    const char *base = b ? basename(b) : "";
    size_t len = strlen(base);
    for (struct dirent *de; dir && (de = readdir(dir));)
        if (strncmp(de->d_name, base, len) == 0 && strncmp(de->d_name + len, ".tmp-", 5) == 0 &&
            !may_be_in_use(dirfd(dir), de->d_name, de->d_name + len + 5))
            unlinkat(dirfd(dir), de->d_name, 0);
    if (dir)
        closedir(dir);
    free(d);
    free(b);
}

FILE *mf_atomic_open(mf_atomic_file *af, const char *path, mf_error *err)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    af->path = malloc(len + 1);
    af->tmp = malloc(len + 40);
    if (!af->path || !af->tmp) {
        mf_error_set(err, "cannot write '%s': out of memory", path);
        mf_atomic_abort(af);
        return NULL;
    }
    memcpy(af->path, path, len + 1);
    remove_stale_temporaries(path);
    /* the pid tells a later writer whether this one may still be at work */
    snprintf(af->tmp, len + 40, "%s.tmp-%ld-XXXXXX", path, (long)getpid());
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
