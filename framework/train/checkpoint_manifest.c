/* A checkpoint's plugins against the experiment's: a checkpoint holds the manifest.json of
 * the run that wrote it, and parameters trained by one plugin's code mean nothing to
 * another's (a changed layout reads as noise, not as an error). Loading one written with
 * other plugins — another version or build of a plugin the model uses, or (resuming or
 * evaluating the same run) another set of plugins — is refused naming each difference,
 * unless --force, which loads it with a warning per difference. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <jansson.h>

#include "checkpoint.h"
#include "experiment_internal.h"

/* Whether the stored length of the contiguous scalar string ds fits in the file. libhdf5
 * 1.10 allocates and clears that many bytes before it reads the string, so a corrupt length
 * of gigabytes stalls the read (fuzz_checkpoint.c found it). Other layouts keep the length
 * where the API cannot reach it, and are left to libhdf5. */
static int length_fits(const char *path, hid_t ds)
{
    const haddr_t off = H5Dget_offset(ds);
    if (off == HADDR_UNDEF)
        return 1;
    uint8_t len[4];
    struct stat st;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && fstat(fd, &st) == 0 && pread(fd, len, 4, (off_t)off) == 4 &&
             ((uint64_t)len[0] | (uint64_t)len[1] << 8 | (uint64_t)len[2] << 16 |
              (uint64_t)len[3] << 24) <= (uint64_t)st.st_size;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The checkpoint's /manifest text parsed, or NULL when it has none (a run without a run
 * folder writes none) or it is unreadable (the parameters' own checks follow). */
static json_t *read_manifest(hid_t file, const char *path)
{
    if (H5Lexists(file, "manifest", H5P_DEFAULT) <= 0)
        return NULL;
    hid_t ds = H5Dopen2(file, "manifest", H5P_DEFAULT);
    hid_t t = mfi_h5_string_type();
    char *text = NULL;
    json_t *j = NULL;
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    /* one string: a dataset of several would be read past `text` */
    if (space >= 0 && H5Sget_simple_extent_npoints(space) == 1 && length_fits(path, ds) &&
        H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) >= 0 && text)
        j = json_loads(text, 0, NULL);
    if (space >= 0)
        H5Sclose(space);
    if (text)
        H5free_memory(text);
    H5Tclose(t);
    if (ds >= 0)
        H5Dclose(ds);
    return j;
}

static const char *field(const json_t *p, const char *key)
{
    const char *s = json_string_value(json_object_get(p, key));
    return s ? s : "";
}

/* The manifest's record of kind/name, or NULL. */
static json_t *recorded(json_t *plugins, const char *kind, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(plugins, i, p)
        if (strcmp(field(p, "kind"), kind) == 0 && strcmp(field(p, "name"), name) == 0)
            return p;
    return NULL;
}

static int used_here(const experiment *e, const char *kind, const char *name)
{
    for (int i = 0; i < e->n_used; i++)
        if (strcmp(mf_kind_name(e->used[i].plugin->kind), kind) == 0 &&
            strcmp(e->used[i].plugin->name, name) == 0)
            return 1;
    return 0;
}

/* Appends "; " and one difference to buf. */
static void differs(char *buf, size_t size, const char *fmt, ...) MF_PRINTF(3, 4);
static void differs(char *buf, size_t size, const char *fmt, ...)
{
    size_t at = strlen(buf);
    if (at && at + 2 < size) {
        memcpy(buf + at, "; ", 3);
        at += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    if (at < size)
        vsnprintf(buf + at, size - at, fmt, ap);
    va_end(ap);
}

/* The differences, "" when none. `same_run`: the checkpoint is this run's (resume, eval),
 * so plugins used on one side only differ too; fine-tuning compares the shared ones. */
static void compare(const experiment *e, json_t *plugins, int same_run, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; i < e->n_used; i++) {
        const mf_plugin *p = e->used[i].plugin;
        const char *kind = mf_kind_name(p->kind), *version = p->version ? p->version : "";
        json_t *r = recorded(plugins, kind, p->name);
        if (!r) {
            if (same_run)
                differs(buf, size, "its run did not use the %s '%s'", kind, p->name);
        } else if (strcmp(field(r, "sha256"), e->used[i].sha256) != 0 ||
                   strcmp(field(r, "version"), version) != 0) {
            differs(buf, size, "the %s '%s' was %s (sha256 %.12s…, %s), now %s (sha256 %.12s…, %s)",
                    kind, p->name, field(r, "version"), field(r, "sha256"), field(r, "file"),
                    version, e->used[i].sha256, e->used[i].file);
        }
    }
    size_t i;
    json_t *r;
    json_array_foreach(plugins, i, r)
        if (same_run && !used_here(e, field(r, "kind"), field(r, "name")))
            differs(buf, size, "its run used the %s '%s', this experiment does not",
                    field(r, "kind"), field(r, "name"));
}

int mfi_checkpoint_check_plugins(experiment *e, hid_t file, const char *path, int same_run,
                                 mf_error *err)
{
    json_t *m = read_manifest(file, path);
    json_t *plugins = m ? json_object_get(m, "plugins") : NULL;
    char diff[3000];
    compare(e, json_is_array(plugins) ? plugins : NULL, same_run && plugins, diff, sizeof diff);
    json_decref(m);
    if (!plugins || !diff[0])
        return 0;
    /* the manifest's names and versions are the file's text: the message stays one line */
    for (unsigned char *p = (unsigned char *)diff; *p; p++)
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] < 0xA0) /* a C1 control: both bytes */
            p[0] = p[1] = '?';
        else if (*p < 0x20 || *p == 0x7F)
            *p = '?';
    if (e->force_checkpoint) {
        fprintf(stderr, "mmfuse: warning: %s was written with other plugins (loaded anyway, "
                "--force): %s\n", path, diff);
        return 0;
    }
    mf_error_set(err, "%s was written with other plugins than this experiment's: %s; give "
                 "--force to load it anyway", path, diff);
    return -1;
}
