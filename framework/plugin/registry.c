#define _GNU_SOURCE /* dladdr */
/* Plugin loading on libltdl: search path, ABI checks, one sentence per refusal. */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdarg.h>
#include <ltdl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmfuse/host.h>

#include "plugin_internal.h"

#include "mf_build_config.h"

typedef struct entry {
    const mf_plugin *plugin;
    char *file;
} entry;

struct mf_registry {
    entry *items;
    int size, cap;
    lt_dlhandle *handles;
    int n_handles, cap_handles;
    char **refusals;
    int n_refusals, cap_refusals;
    const char **names; /* scratch for mf_registry_names */
    char **dirs;        /* folders added so far (real paths): a folder named twice on the
                           search path — MMFUSE_PLUGIN_PATH and a saved plugins.path — is
                           read once, not refused as shadowing itself */
    int n_dirs;
};

static const char *const kind_names[] = {NULL, "dataset", "encoder", "fusion", "loss"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == MF_KIND_LAST + 1,
               "one name per plugin kind");

const char *mf_kind_name(mf_kind kind)
{
    return kind >= MF_KIND_FIRST && kind <= MF_KIND_LAST ? kind_names[kind] : NULL;
}

/* Grow *items (of `size` bytes each) so that it holds one more. */
static int reserve(void *items, int *cap, int size, size_t item_size)
{
    if (size < *cap)
        return 0;
    int ncap = *cap ? 2 * *cap : 16;
    void *p = realloc(*(void **)items, (size_t)ncap * item_size);
    if (!p)
        return -1;
    *(void **)items = p;
    *cap = ncap;
    return 0;
}

static int ltdl_users;

mf_registry *mf_registry_new(void)
{
    mf_registry *reg = calloc(1, sizeof *reg);
    if (reg && ltdl_users++ == 0)
        lt_dlinit();
    return reg;
}

void mf_registry_free(mf_registry *reg)
{
    if (!reg)
        return;
    for (int i = 0; i < reg->size; i++)
        free(reg->items[i].file);
    for (int i = 0; i < reg->n_handles; i++)
        lt_dlclose(reg->handles[i]);
    for (int i = 0; i < reg->n_refusals; i++)
        free(reg->refusals[i]);
    free(reg->items);
    free(reg->handles);
    free(reg->refusals);
    free(reg->names);
    for (int i = 0; i < reg->n_dirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg);
    if (--ltdl_users == 0)
        lt_dlexit();
}

/* Record a refusal and report it through err. */
static int refuse(mf_registry *reg, mf_error *err, const char *fmt, ...) MF_PRINTF(3, 4);
static int refuse(mf_registry *reg, mf_error *err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mf_error_set(err, "%s", msg);
    if (reserve(&reg->refusals, &reg->cap_refusals, reg->n_refusals, sizeof(char *)) == 0)
        reg->refusals[reg->n_refusals++] = strdup(msg);
    return -1;
}

/* The name of a required vtable member the plugin lacks, or NULL. */
static const char *missing_member(const mf_plugin *p)
{
    switch (p->kind) {
    case MF_KIND_ENCODER:
    case MF_KIND_FUSION: {
        const mf_module_ops *ops = p->ops;
        return !MFI_HAS_MEMBER(ops, mf_module_ops, build)     ? "build"
               : !MFI_HAS_MEMBER(ops, mf_module_ops, forward) ? "forward"
                                                          : NULL;
    }
    case MF_KIND_LOSS: {
        const mf_loss_ops *ops = p->ops;
        /* a 1.1 loss may give build_model instead of build */
        return !MFI_HAS_MEMBER(ops, mf_loss_ops, build) &&
                       !MFI_HAS_MEMBER(ops, mf_loss_ops, build_model)
                   ? "build"
               : !MFI_HAS_MEMBER(ops, mf_loss_ops, forward) ? "forward"
                                                            : NULL;
    }
    case MF_KIND_DATASET: {
        const mf_dataset_ops *ops = p->ops;
        return !MFI_HAS_MEMBER(ops, mf_dataset_ops, open)   ? "open"
               : !MFI_HAS_MEMBER(ops, mf_dataset_ops, read) ? "read"
                                                        : NULL;
    }
    }
    return "ops";
}

static int valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Check one descriptor; fields are read only once the magic and ABI say they exist. */
static int admit(mf_registry *reg, const char *path, int index, const mf_plugin *p,
                 mf_error *err)
{
    if (p->magic != MF_PLUGIN_MAGIC)
        return refuse(reg, err,
                      "%s: plugin #%d has magic number 0x%08x instead of 0x%08x: not an mmfuse "
                      "plugin descriptor",
                      path, index + 1, (unsigned)p->magic, (unsigned)MF_PLUGIN_MAGIC);
    if (p->abi_major != MF_ABI_MAJOR)
        return refuse(reg, err,
                      "%s: plugin #%d was built for mmfuse ABI %u.%u, but this host has ABI "
                      "%d.%d; rebuild it against this version's headers",
                      path, index + 1, p->abi_major, p->abi_minor, MF_ABI_MAJOR, MF_ABI_MINOR);
    if (p->abi_minor > MF_ABI_MINOR)
        return refuse(reg, err,
                      "%s: plugin #%d needs mmfuse ABI %u.%u, newer than this host's %d.%d; "
                      "upgrade mmfuse",
                      path, index + 1, p->abi_major, p->abi_minor, MF_ABI_MAJOR, MF_ABI_MINOR);
    if (p->struct_size < sizeof(mf_plugin))
        return refuse(reg, err,
                      "%s: plugin #%d has a %u-byte descriptor, smaller than ABI %d.%d's %zu "
                      "bytes",
                      path, index + 1, (unsigned)p->struct_size, MF_ABI_MAJOR, MF_ABI_MINOR,
                      sizeof(mf_plugin));
    if (!valid_name(p->name))
        return refuse(reg, err,
                      "%s: plugin #%d has an invalid name (use 1 to 64 lowercase letters, digits "
                      "and '_')",
                      path, index + 1);
    if (!mf_kind_name(p->kind))
        return refuse(reg, err, "%s: plugin '%s' has unknown kind %d", path, p->name,
                      (int)p->kind);
    const char *missing = p->ops ? missing_member(p) : "ops";
    if (missing)
        return refuse(reg, err, "%s: plugin '%s' (%s) lacks the required vtable member '%s'",
                      path, p->name, mf_kind_name(p->kind), missing);
    const char *other;
    if (mf_registry_find(reg, 0, p->name, &other))
        return refuse(reg, err,
                      "%s: plugin '%s' is already provided by %s, which comes first on the "
                      "search path; this one is ignored",
                      path, p->name, other);
    if (reserve(&reg->items, &reg->cap, reg->size, sizeof(entry)))
        return refuse(reg, err, "%s: out of memory", path);
    reg->items[reg->size].plugin = p;
    reg->items[reg->size].file = strdup(path);
    reg->size++;
    return 0;
}

/* Why a file does not load. libltdl tries each of its loaders in turn and reports the last
 * one's complaint ("file not found"), hiding the dynamic linker's real reason (say, an
 * undefined symbol); ask the dynamic linker directly for it. */
static const char *load_failure(const char *path)
{
    if (access(path, R_OK) != 0)
        return strerror(errno);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror(), *rest = strstr(why, ": ");
        /* glibc starts with the path, which our sentence already names. */
        return rest && strncmp(why, path, (size_t)(rest - why)) == 0 ? rest + 2 : why;
    }
    dlclose(h);
    return lt_dlerror();
}

/* Code that others can change is not loaded: a file or folder writable by group or others
 * would let another user run code in every experiment. NULL when safe, else the reason. */
static const char *writable_by_others(const char *path, char *why, size_t size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return NULL; /* a missing path is reported by whoever opens it */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, size, "writable by other users (mode %04o); refusing to load %s from it "
                 "(chmod go-w '%s')", (unsigned)(st.st_mode & 07777),
                 S_ISDIR(st.st_mode) ? "plugins" : "code", path);
        return why;
    }
    return NULL;
}

int mf_registry_add_file(mf_registry *reg, const char *path, mf_error *err)
{
    char why[1024];
    if (writable_by_others(path, why, sizeof why))
        return refuse(reg, err, "%s: %s", path, why);
    lt_dladvise advise;
    lt_dladvise_init(&advise);
    lt_dladvise_local(&advise); /* plugins never see each other's symbols */
    lt_dlhandle h = lt_dlopenadvise(path, advise);
    lt_dladvise_destroy(&advise);
    if (!h)
        return refuse(reg, err, "%s: cannot be loaded: %s", path, load_failure(path));

    typedef const mf_plugin *const *(*list_fn)(void);
    list_fn list = (list_fn)(uintptr_t)lt_dlsym(h, MF_PLUGIN_ENTRY);
    if (!list) {
        lt_dlclose(h);
        return refuse(reg, err, "%s: not an mmfuse plugin: it does not export %s()", path,
                      MF_PLUGIN_ENTRY);
    }
    const mf_plugin *const *plugins = list();
    if (!plugins || !plugins[0]) {
        lt_dlclose(h);
        return refuse(reg, err, "%s: %s() lists no plugins", path, MF_PLUGIN_ENTRY);
    }
    int refused = 0, admitted = 0;
    for (int i = 0; plugins[i]; i++) {
        if (admit(reg, path, i, plugins[i], err))
            refused++;
        else
            admitted++;
    }
    /* Keep the file open while any plugin of it is in use; never dlclose under live code. */
    if (admitted == 0 || reserve(&reg->handles, &reg->cap_handles, reg->n_handles,
                                 sizeof(lt_dlhandle)))
        lt_dlclose(h);
    else
        reg->handles[reg->n_handles++] = h;
    return refused ? -1 : 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mf_registry_add_dir(mf_registry *reg, const char *dir, mf_error *err)
{
    char why[1024];
    if (writable_by_others(dir, why, sizeof why))
        return refuse(reg, err, "plugin folder '%s' is %s", dir, why);
    char *real = realpath(dir, NULL);
    for (int i = 0; real && i < reg->n_dirs; i++)
        if (strcmp(reg->dirs[i], real) == 0) {
            free(real);
            return 0; /* read already */
        }
    char **grown = real ? realloc(reg->dirs, (size_t)(reg->n_dirs + 1) * sizeof *grown) : NULL;
    if (grown) {
        reg->dirs = grown;
        reg->dirs[reg->n_dirs++] = real;
    } else {
        free(real);
    }
    DIR *d = opendir(dir);
    if (!d) {
        mf_error_set(err, "plugin folder '%s' cannot be read: %s", dir, strerror(errno));
        return -1;
    }
    char **files = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0 &&
            reserve(&files, &cap, n, sizeof(char *)) == 0) {
            files[n] = malloc(strlen(dir) + len + 2);
            if (files[n])
                sprintf(files[n++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof(char *), compare_strings);
    for (int i = 0; i < n; i++) {
        mf_registry_add_file(reg, files[i], NULL); /* refusals are recorded in reg */
        free(files[i]);
    }
    free(files);
    return 0;
}

const char *mf_default_plugin_dir(void)
{
    /* Beside this library: <libdir>/libmmfuse.so → <libdir>/mmfuse/plugins, so an installed
     * tree can be moved (or staged with DESTDIR) and still find its plugins. Run from the
     * build tree: its plugins, so a developer never picks up an older installed copy. */
    static char dir[PATH_MAX + 32];
    Dl_info info;
    char lib[PATH_MAX];
    if (!dladdr((void *)(uintptr_t)mf_default_plugin_dir, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, lib))
        return MF_PLUGIN_INSTALL_DIR;
    size_t root = strlen(MF_BUILD_ROOT);
    if (strncmp(lib, MF_BUILD_ROOT, root) == 0 && lib[root] == '/')
        return MF_BUILD_PLUGIN_DIR;
    char *slash = strrchr(lib, '/');
    if (!slash)
        return MF_PLUGIN_INSTALL_DIR;
    *slash = '\0';
    snprintf(dir, sizeof dir, "%s/mmfuse/plugins", lib);
    return dir;
}

int mf_registry_add_search_path(mf_registry *reg, const char *const *extra, mf_error *err)
{
    const char *env = getenv("MMFUSE_PLUGIN_PATH");
    int status = 0;
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
            if (mf_registry_add_dir(reg, dir, err))
                status = -1;
        free(copy);
    }
    for (int i = 0; extra && extra[i]; i++)
        if (mf_registry_add_dir(reg, extra[i], err))
            status = -1;
    if (mf_registry_add_dir(reg, mf_default_plugin_dir(), err))
        status = -1;
    return status;
}

int mf_registry_count(const mf_registry *reg) { return reg->size; }

const mf_plugin *mf_registry_at(const mf_registry *reg, int i, const char **file)
{
    if (i < 0 || i >= reg->size)
        return NULL;
    if (file)
        *file = reg->items[i].file;
    return reg->items[i].plugin;
}

const mf_plugin *mf_registry_find(const mf_registry *reg, int kind, const char *name,
                                  const char **file)
{
    for (int i = 0; i < reg->size; i++) {
        const mf_plugin *p = reg->items[i].plugin;
        if ((kind == 0 || p->kind == kind) && strcmp(p->name, name) == 0) {
            if (file)
                *file = reg->items[i].file;
            return p;
        }
    }
    return NULL;
}

const char *const *mf_registry_names(mf_registry *reg, int kind)
{
    const char **names = realloc(reg->names, (size_t)(reg->size + 1) * sizeof *names);
    if (!names)
        return NULL;
    reg->names = names;
    int n = 0;
    for (int i = 0; i < reg->size; i++)
        if (kind == 0 || reg->items[i].plugin->kind == kind)
            names[n++] = reg->items[i].plugin->name;
    names[n] = NULL;
    return names;
}

int mf_registry_refusal_count(const mf_registry *reg) { return reg->n_refusals; }

const char *mf_registry_refusal(const mf_registry *reg, int i)
{
    return i >= 0 && i < reg->n_refusals ? reg->refusals[i] : NULL;
}
