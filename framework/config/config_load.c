/* config_load.c — experiment files from disk: reading (size limit, binary files), then
 * includes, then ${env:…} interpolation (config_env.c), so every caller of mf_config_load
 * gets all three.
 *
 * `include: [base.yaml, other.yaml]` (or one name) at the top of a file loads each named
 * file (its own includes first), merges them in order and merges the including file last,
 * so it wins. Maps merge key by key; lists and scalars replace whole. Names are relative
 * to the including file's folder. Every node keeps the mark of the file it came from; a
 * map both files wrote takes the later file's mark (where "missing key" errors point).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

#define MAX_FILE_BYTES (16u * 1024u * 1024u)
#define INCLUDE_KEY "include"

/* ---------------------------------------------------------------- reading */
#define FIFO_WAIT_MS 5000
typedef struct file_text {
    char *text;
    size_t len;
    dev_t dev; /* identity, for include cycles: names can differ for one file */
    ino_t ino;
} file_text;

/* Read a whole file. Failing to open it returns -1 with *why set (the caller words the
 * message: a top-level file and an include say it differently); anything else is
 * reported here, at the whole file, with *why NULL. `regular_only`: refuse pipes and
 * devices (an include of /dev/stdin would wait forever). */
static int read_file(const char *path, int regular_only, file_text *out, const char **why,
                     mf_error *err)
{
    *why = NULL;
    /* never blocking in open: a FIFO nothing writes to would wait there for ever */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    int stat_error = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (stat_error || (regular_only && !S_ISREG(st.st_mode))) {
        *why = stat_error ? strerror(stat_error) : "not a regular file";
        close(fd);
        return -1;
    }
    /* a pipe (`mmfuse run <(generate)`) is read when its writer writes; a FIFO that no
     * program writes to is refused rather than waited on */
    struct pollfd pfd = {fd, POLLIN, 0};
    if (S_ISFIFO(st.st_mode) && poll(&pfd, 1, FIFO_WAIT_MS) == 0) {
        *why = "it is a FIFO that no program writes to (waited 5 s)";
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    mfi_config_mark whole_file = {(char *)path, 0, 0};
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > MAX_FILE_BYTES) {
        mfi_config_report(err, &whole_file, NULL, "too large (%jd bytes; the limit is 16 MiB)",
                          (intmax_t)st.st_size);
        close(fd);
        return -1;
    }
    /* Read up to one byte past the limit: pipes and the like have no size to check first. */
    size_t capacity = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, len = 0;
    char *text = malloc(capacity);
    for (;;) {
        if (!text) {
            mfi_config_report(err, &whole_file, NULL, "out of memory");
            close(fd);
            return -1;
        }
        if (len == capacity) {
            size_t grown = capacity * 2 > MAX_FILE_BYTES + 1 ? MAX_FILE_BYTES + 1 : capacity * 2;
            char *bigger = grown > capacity ? realloc(text, grown) : NULL;
            if (!bigger) {
                if (grown > capacity)
                    mfi_config_report(err, &whole_file, NULL, "out of memory");
                else
                    mfi_config_report(err, &whole_file, NULL,
                                      "too large (more than %u bytes; the limit is 16 MiB)",
                                      MAX_FILE_BYTES);
                free(text);
                close(fd);
                return -1;
            }
            text = bigger;
            capacity = grown;
        }
        ssize_t got = read(fd, text + len, capacity - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            mfi_config_set_error(err, "cannot read '%s': %s", path, strerror(errno));
            free(text);
            close(fd);
            return -1;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (len > MAX_FILE_BYTES) {
        mfi_config_report(err, &whole_file, NULL,
                          "too large (more than %u bytes; the limit is 16 MiB)", MAX_FILE_BYTES);
        free(text);
        return -1;
    }
    out->text = text;
    out->len = len;
    return 0;
}

/* ---------------------------------------------------------------- paths */
/* Drop "." segments and repeated slashes ("a/./b//c" → "a/b/c"). ".." stays: with
 * symbolic links, "x/.." is not always the folder holding x. */
static void tidy_path(char *p)
{
    char *out = p;
    const char *in = p;
    if (*in == '/')
        *out++ = *in++;
    while (*in) {
        const char *end = in + strcspn(in, "/");
        size_t len = (size_t)(end - in);
        if (len > 0 && !(len == 1 && in[0] == '.')) {
            if (out > p && out[-1] != '/')
                *out++ = '/';
            memmove(out, in, len); /* out never passes in */
            out += len;
        }
        in = *end ? end + 1 : end;
    }
    if (out == p)
        *out++ = '.';
    *out = '\0';
}

/* `name` relative to the folder of the file `from` (names in marks and messages). */
static char *include_path(const char *from, const char *name)
{
    const char *slash = strrchr(from, '/');
    size_t dir_len = name[0] == '/' || !slash ? 0 : (size_t)(slash - from) + 1;
    char *path = malloc(dir_len + strlen(name) + 1);
    if (!path)
        return NULL;
    memcpy(path, from, dir_len);
    strcpy(path + dir_len, name);
    tidy_path(path);
    return path;
}

/* An absolute spelling of path for messages: its folder resolved (symbolic links too) when
 * it exists, else joined to the working directory. */
static void absolute_path(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], resolved[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    if (realpath(dir, resolved)) {
        snprintf(buf, size, "%s%s%s", resolved, strcmp(resolved, "/") ? "/" : "",
                 slash ? slash + 1 : path);
    } else if (path[0] != '/' && getcwd(resolved, sizeof resolved)) {
        snprintf(buf, size, "%s/%s", resolved, path);
    } else {
        snprintf(buf, size, "%s", path);
    }
}

/* ---------------------------------------------------------------- merging */
/* Take entry i out of a map (its key and mark are freed; the value is returned). */
static mf_config *remove_entry(mf_config *map, int i)
{
    mf_config *value = map->entries[i].value;
    free(map->entries[i].key);
    free(map->entries[i].key_mark.file);
    memmove(&map->entries[i], &map->entries[i + 1],
            (size_t)(map->length - i - 1) * sizeof *map->entries);
    map->length--;
    return value;
}

/* Merge map src into map dst, taking src's nodes (src is freed, even on failure). Paths
 * need no update: a key lands at the same key path it had. */
static int merge_into(mf_config *dst, mf_config *src)
{
    int rc = mfi_config_mark_set(&dst->mark, src->mark.file, src->mark.line, src->mark.column);
    for (int k = 0; rc == 0 && k < src->length; k++) {
        mfi_config_entry *e = &src->entries[k];
        int i = mfi_config_find(dst, e->key, strlen(e->key));
        if (i < 0) {
            if ((rc = mfi_config_append(dst, e->key, &e->key_mark, e->value)) == 0)
                e->value = NULL;
            continue;
        }
        mfi_config_entry *d = &dst->entries[i];
        if ((rc = mfi_config_mark_set(&d->key_mark, e->key_mark.file, e->key_mark.line,
                                      e->key_mark.column)) != 0)
            break;
        if (d->value->kind == MF_CONFIG_MAP && e->value->kind == MF_CONFIG_MAP) {
            rc = merge_into(d->value, e->value); /* takes e->value */
        } else {
            mfi_config_node_free(d->value);
            d->value = e->value;
        }
        e->value = NULL;
    }
    mfi_config_node_free(src);
    return rc;
}

/* ---------------------------------------------------------------- including */
typedef struct include_frame {
    const char *name;       /* the file as named in marks */
    dev_t dev;
    ino_t ino;
    const mf_config *site;  /* the include item of this file being followed */
} include_frame;

typedef struct loader {
    include_frame stack[MFI_CONFIG_MAX_INCLUDE_DEPTH + 1];
    int depth;
    int files;      /* files read so far: a diamond of includes would otherwise multiply */
    int explained;  /* the error names the whole include chain: no "while including" notes */
    mf_error *err;
} loader;

static void report_at(loader *L, const mf_config *site, const char *fmt, ...) MF_PRINTF(3, 4);
static void report_at(loader *L, const mf_config *site, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mfi_config_vreport(L->err, &site->mark, INCLUDE_KEY, fmt, ap);
    va_end(ap);
}

static mf_config *load_file(loader *L, const char *name, const mf_config *site);

/* A file's own "include" entry: taken out of root, its files loaded and merged in order,
 * root merged last. Returns the merged tree (root itself without includes) or NULL. */
static mf_config *apply_includes(loader *L, mf_config *root, const char *name)
{
    int at = mfi_config_find(root, INCLUDE_KEY, strlen(INCLUDE_KEY));
    if (at < 0)
        return root;
    mf_config *list = remove_entry(root, at), *merged = NULL;
    int n = list->kind == MF_CONFIG_LIST ? list->length : 1, failed = 0;
    /* names may come from the environment: include: ${env:BASE,base.yaml} */
    if (mfi_config_interpolate(list, L->err) != 0)
        failed = 1;
    for (int i = 0; i < n && !failed; i++) {
        const mf_config *item = list->kind == MF_CONFIG_LIST ? list->entries[i].value : list;
        if (item->kind != MF_CONFIG_SCALAR || mfi_config_is_null(item) || !item->text[0]) {
            char got[256];
            mfi_config_describe(item, got, sizeof got);
            report_at(L, item, "expected %s, got %s",
                      list->kind == MF_CONFIG_LIST ? "a file name"
                                                   : "a file name or a list of file names",
                      got);
            failed = 1;
            break;
        }
        char *path = include_path(name, item->text);
        if (!path) {
            report_at(L, item, "out of memory");
            failed = 1;
            break;
        }
        L->stack[L->depth - 1].site = item;
        mf_config *sub = load_file(L, path, item);
        free(path);
        if (!sub || (merged && merge_into(merged, sub) != 0)) {
            if (sub)
                report_at(L, item, "out of memory");
            failed = 1;
            break;
        }
        if (!merged)
            merged = sub;
    }
    L->stack[L->depth - 1].site = NULL;
    mfi_config_node_free(list);
    if (failed) {
        mfi_config_node_free(merged);
        mfi_config_node_free(root);
        return NULL;
    }
    if (!merged)
        return root; /* include: [] */
    if (merge_into(merged, root) != 0) {
        mfi_config_node_free(merged);
        mfi_config_mark whole_file = {(char *)name, 0, 0};
        mfi_config_report(L->err, &whole_file, NULL, "out of memory");
        return NULL;
    }
    return merged;
}

/* The experiment file (site NULL) or a file it includes (site: the include item). */
static mf_config *load_file(loader *L, const char *name, const mf_config *site)
{
    mf_error *err = L->err;
    const char *why;
    file_text file;
    if (read_file(name, site != NULL, &file, &why, err) != 0) {
        if (why && site) {
            char resolved[2 * PATH_MAX];
            absolute_path(name, resolved, sizeof resolved);
            report_at(L, site, "cannot open '%s' (resolved to %s): %s", site->text, resolved, why);
        } else if (why) {
            mfi_config_set_error(err, "cannot open '%s': %s", name, why);
        } else if (site) {
            report_at(L, site, "while including '%s'", site->text);
        }
        return NULL;
    }
    for (int k = 0; k < L->depth; k++) {
        if (L->stack[k].dev != file.dev || L->stack[k].ino != file.ino)
            continue;
        char chain[MF_ERROR_CAPACITY] = "";
        for (int j = k; j < L->depth; j++)
            snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%s → ",
                     L->stack[j].name);
        snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%s", name);
        report_at(L, L->stack[k].site, "cycle: %s", chain);
        L->explained = 1;
        free(file.text);
        return NULL;
    }
    if (site && (L->depth > MFI_CONFIG_MAX_INCLUDE_DEPTH ||
                 ++L->files > MFI_CONFIG_MAX_INCLUDE_FILES)) {
        if (L->depth > MFI_CONFIG_MAX_INCLUDE_DEPTH)
            report_at(L, site, "includes nested more than %d levels deep",
                      MFI_CONFIG_MAX_INCLUDE_DEPTH);
        else
            report_at(L, site, "more than %d files included", MFI_CONFIG_MAX_INCLUDE_FILES);
        L->explained = 1;
        free(file.text);
        return NULL;
    }

    mf_config *root;
    if (!site) {
        root = mf_config_parse(file.text, file.len, name, err);
    } else {
        /* An include that is empty or not a map is a mistake of the including file. */
        mfi_config_source source = {name, 0, "", 0};
        mfi_config_problem problem;
        root = mfi_config_build(file.text, file.len, &source, &problem);
        if (!root && !problem.empty) {
            mfi_config_mark mark = {(char *)name, problem.line, problem.column};
            mfi_config_report(err, &mark, NULL, "%s", problem.message);
            report_at(L, site, "while including '%s'", site->text);
        } else if (!root || mfi_config_is_null(root)) {
            report_at(L, site, "'%s' is empty", site->text);
        } else if (root->kind != MF_CONFIG_MAP) {
            char got[256];
            mfi_config_describe(root, got, sizeof got);
            report_at(L, site, "'%s' must be a map of sections, got %s", site->text, got);
        }
        if (root && root->kind != MF_CONFIG_MAP) {
            mfi_config_node_free(root);
            root = NULL;
        }
    }
    free(file.text);
    if (!root)
        return NULL;

    L->stack[L->depth++] = (include_frame){name, file.dev, file.ino, NULL};
    root = apply_includes(L, root, name);
    L->depth--;
    if (!root && site && !L->explained)
        report_at(L, site, "while including '%s'", site->text);
    return root;
}

mf_config *mf_config_load(const char *path, mf_error *err)
{
    if (!path) {
        mfi_config_set_error(err, "mf_config_load: no path given");
        return NULL;
    }
    loader *L = calloc(1, sizeof *L);
    if (!L) {
        mfi_config_set_error(err, "cannot load '%s': out of memory", path);
        return NULL;
    }
    L->err = err;
    mf_config *root = load_file(L, path, NULL);
    free(L);
    /* after the merge: every scalar is expanded once, whichever file it came from */
    if (root && mfi_config_interpolate(root, err) != 0) {
        mfi_config_node_free(root);
        return NULL;
    }
    return root;
}
