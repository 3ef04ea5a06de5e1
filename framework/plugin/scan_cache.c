/* The cache of plugin scans, so that a run forks no scanner for files it has seen: one JSON
 * file, {"format": 1, "host": "mmfuse 0.1.0 ABI 1.1", "files": {PATH: {"size", "mtime",
 * "ino", "dev", "scan"}}}. An entry counts only while the file's size, modification time
 * (ns), inode and device are unchanged; a cache of another host version, of another user,
 * writable by others or unreadable is ignored, never an error. Rewritten atomically, and
 * only when a scan was added. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mmfuse/base.h>

#include "scan.h"

struct mfi_scan_cache {
    char path[PATH_MAX];
    json_t *files; /* PATH → entry */
    int loaded, dirty;
};

static void host_id(char *buf, size_t size)
{
    snprintf(buf, size, "mmfuse %s ABI %d.%d", MF_VERSION_STRING, MF_ABI_MAJOR, MF_ABI_MINOR);
}

static int cache_path(char *out, size_t size)
{
    const char *env = getenv("MMFUSE_REGISTRY_CACHE");
    if (env)
        return *env ? (snprintf(out, size, "%s", env), 0) : -1;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(out, size, "%s/mmfuse/registry-v1.json", xdg);
    else if (home && home[0] == '/')
        snprintf(out, size, "%s/.cache/mmfuse/registry-v1.json", home);
    else
        return -1;
    return 0;
}

mfi_scan_cache *mfi_cache_open(void)
{
    mfi_scan_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (cache_path(c->path, sizeof c->path))
        c->path[0] = '\0';
    return c;
}

/* Read lazily: a registry whose files are all refused before a scan never reads it. */
static void load(mfi_scan_cache *c)
{
    if (c->loaded)
        return;
    c->loaded = 1;
    c->files = json_object();
    struct stat st;
    /* what another user can write could point the host at a file under a false name */
    if (!c->path[0] || stat(c->path, &st) != 0 || !S_ISREG(st.st_mode) ||
        (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return;
    json_t *root = json_load_file(c->path, 0, NULL);
    char id[64];
    host_id(id, sizeof id);
    const char *host = json_string_value(json_object_get(root, "host"));
    json_t *files = json_object_get(root, "files");
    if (json_integer_value(json_object_get(root, "format")) == 1 && host &&
        strcmp(host, id) == 0 && json_is_object(files)) {
        json_decref(c->files);
        c->files = json_incref(files);
    }
    json_decref(root);
}

static int same_file(const json_t *e, const struct stat *st)
{
    json_int_t mtime = (json_int_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    return json_integer_value(json_object_get(e, "size")) == (json_int_t)st->st_size &&
           json_integer_value(json_object_get(e, "mtime")) == mtime &&
           json_integer_value(json_object_get(e, "ino")) == (json_int_t)st->st_ino &&
           json_integer_value(json_object_get(e, "dev")) == (json_int_t)st->st_dev;
}

json_t *mfi_cache_lookup(mfi_scan_cache *c, const char *path, const struct stat *st)
{
    if (!c)
        return NULL;
    load(c);
    json_t *e = json_object_get(c->files, path), *scan = json_object_get(e, "scan");
    return e && json_is_object(scan) && same_file(e, st) ? scan : NULL;
}

void mfi_cache_store(mfi_scan_cache *c, const char *path, const struct stat *st, json_t *scan)
{
    if (!c || !c->path[0])
        return;
    load(c);
    json_int_t mtime = (json_int_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    json_t *e = json_pack("{s:I, s:I, s:I, s:I, s:O}", "size", (json_int_t)st->st_size, "mtime",
                          mtime, "ino", (json_int_t)st->st_ino, "dev", (json_int_t)st->st_dev,
                          "scan", scan);
    if (e && json_object_set_new(c->files, path, e) == 0)
        c->dirty = 1;
}

void mfi_cache_save(mfi_scan_cache *c)
{
    if (!c || !c->dirty || !c->path[0])
        return;
    c->dirty = 0;
    /* entries of files that are gone would only grow the file */
    const char *key;
    json_t *value;
    void *tmp;
    struct stat st;
    json_object_foreach_safe(c->files, tmp, key, value)
    {
        if (stat(key, &st) != 0)
            json_object_del(c->files, key);
    }
    char id[64], dir[PATH_MAX];
    host_id(id, sizeof id);
    json_t *root = json_pack("{s:i, s:s, s:O}", "format", 1, "host", id, "files", c->files);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (text && (!slash || mf_make_dirs(dir, NULL) == 0 || access(dir, W_OK) == 0))
        mf_write_file_atomic(c->path, text, strlen(text), NULL); /* best effort */
    free(text);
}

void mfi_cache_free(mfi_scan_cache *c)
{
    if (!c)
        return;
    mfi_cache_save(c);
    json_decref(c->files);
    free(c);
}
