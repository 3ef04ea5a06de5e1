#define _GNU_SOURCE /* dladdr */
/* The plugin registry: the search path, one sentence per refusal, and loading on demand.
 * Each file is first scanned apart from the host (scan.c: constructors and
 * mf_plugin_list() run in a child) or known from the scan cache; the host then dlopens only
 * the files whose plugins are asked for (mf_registry_find, mf_registry_at), so a file no
 * experiment uses can neither stop, crash nor change a run. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <ltdl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mmfuse/host.h>

#include "plugin_internal.h"
#include "scan.h"

#include "mf_build_config.h"

typedef struct entry {
    mf_plugin scanned;       /* as the scan saw it: ops NULL */
    mf_param_spec *params;   /* scanned.params' storage */
    const mf_plugin *plugin; /* the loaded descriptor, NULL until it is asked for */
    int file, index;         /* reg->files[file], position in its mf_plugin_list() */
} entry;

typedef struct file_rec {
    char *path;
    json_t *scan;  /* the scanned strings live here */
    lt_dlhandle h; /* NULL until one of its plugins is asked for */
    const mf_plugin *const *list;
    int failed;    /* loading it in the host failed: refused, not tried again */
} file_rec;

struct mf_registry {
    entry *items;
    int size, cap;
    file_rec *files;
    int n_files, cap_files;
    char **refusals;
    int n_refusals, cap_refusals;
    const char **names; /* scratch for mf_registry_names */
    char **dirs;        /* folders added so far (real paths): a folder named twice on the
                           search path — MMFUSE_PLUGIN_PATH and a saved plugins.path — is
                           read once, not refused as shadowing itself */
    int n_dirs;
    mfi_scan_cache *cache;
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
    if (reg && !(reg->cache = mfi_cache_open())) {
        free(reg);
        return NULL;
    }
    if (reg && ltdl_users++ == 0)
        lt_dlinit();
    return reg;
}

void mf_registry_free(mf_registry *reg)
{
    if (!reg)
        return;
    mfi_cache_free(reg->cache);
    for (int i = 0; i < reg->size; i++)
        free(reg->items[i].params);
    for (int i = 0; i < reg->n_files; i++) {
        if (reg->files[i].h)
            lt_dlclose(reg->files[i].h);
        json_decref(reg->files[i].scan);
        free(reg->files[i].path);
    }
    for (int i = 0; i < reg->n_refusals; i++)
        free(reg->refusals[i]);
    free(reg->items);
    free(reg->files);
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
    char msg[2 * PATH_MAX + 1024]; /* a trust refusal names two paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mf_error_set(err, "%s", msg);
    if (reserve(&reg->refusals, &reg->cap_refusals, reg->n_refusals, sizeof(char *)) == 0)
        reg->refusals[reg->n_refusals++] = strdup(msg);
    return -1;
}

/* The entry of a name (kind 0: any kind), loaded or not; -1 when none. */
static int find_entry(const mf_registry *reg, int kind, const char *name)
{
    for (int i = 0; i < reg->size; i++) {
        const mf_plugin *p = &reg->items[i].scanned;
        if ((kind == 0 || p->kind == kind) && strcmp(p->name, name) == 0)
            return i;
    }
    return -1;
}

/* Admit one scanned descriptor of file f, unless an earlier file has its name. */
static int admit(mf_registry *reg, int f, int index, const json_t *item, mf_error *err)
{
    const char *path = reg->files[f].path;
    entry e = {.file = f, .index = index};
    if (mfi_scan_descriptor(item, &e.scanned, &e.params))
        return refuse(reg, err, "%s: plugin #%d: the plugin scanner's answer was unreadable",
                      path, index + 1);
    int other = find_entry(reg, 0, e.scanned.name);
    if (other >= 0) {
        free(e.params);
        return refuse(reg, err,
                      "%s: plugin '%s' is already provided by %s, which comes first on the "
                      "search path; this one is ignored",
                      path, e.scanned.name, reg->files[reg->items[other].file].path);
    }
    if (reserve(&reg->items, &reg->cap, reg->size, sizeof(entry))) {
        free(e.params);
        return refuse(reg, err, "%s: out of memory", path);
    }
    reg->items[reg->size++] = e;
    return 0;
}

/* Load the file of entry i in the host, the first time one of its plugins is asked for.
 * Its scan passed, so this runs what already ran once in a child; a crash or exit() now
 * is still named (the "loading" mark). */
static const mf_plugin *load_entry(mf_registry *reg, int i)
{
    entry *e = &reg->items[i];
    file_rec *f = &reg->files[e->file];
    if (e->plugin || f->failed)
        return e->plugin;
    if (!f->h) {
        char open_path[PATH_MAX + 8];
        snprintf(open_path, sizeof open_path, "%s%s", strchr(f->path, '/') ? "" : "./", f->path);
        mfi_phase outer = mfi_plugin_phase_enter(e->scanned.name, f->path, "loading");
        lt_dladvise advise;
        lt_dladvise_init(&advise);
        lt_dladvise_local(&advise); /* plugins never see each other's symbols */
        lt_dlhandle h = lt_dlopenadvise(open_path, advise);
        lt_dladvise_destroy(&advise);
        typedef const mf_plugin *const *(*list_fn)(void);
        list_fn list = h ? (list_fn)(uintptr_t)lt_dlsym(h, MF_PLUGIN_ENTRY) : NULL;
        f->list = list ? list() : NULL;
        mfi_plugin_phase_leave(outer);
        if (!f->list) {
            if (h)
                lt_dlclose(h);
            f->failed = 1;
            refuse(reg, NULL, "%s: cannot be loaded: %s", f->path,
                   h ? "its plugin list is gone since it was scanned" : lt_dlerror());
            return NULL;
        }
        f->h = h; /* kept open while the registry lives: never dlclose under live code */
    }
    int n = 0;
    while (n <= e->index && f->list[n])
        n++;
    const mf_plugin *p = n > e->index ? f->list[e->index] : NULL;
    if (!p || p->magic != MF_PLUGIN_MAGIC || p->kind != e->scanned.kind ||
        p->abi_major != e->scanned.abi_major || !p->name || strcmp(p->name, e->scanned.name)) {
        refuse(reg, NULL, "%s: plugin '%s' is not the one its scan described (the file "
               "changed?); run again to rescan it", f->path, e->scanned.name);
        f->failed = 1;
        return NULL;
    }
    mfi_plugin_note_file(p, f->path);
    return e->plugin = p;
}

/* One file: trust, then its scan (cached or fresh), then each of its descriptors. */
static int add_file(mf_registry *reg, const char *path, int check_folders, mf_error *err)
{
    char why[2 * PATH_MAX];
    if (mfi_trust_file(path, check_folders, why, sizeof why))
        return refuse(reg, err, "%s", why);
    struct stat st;
    if (stat(path, &st) != 0)
        return refuse(reg, err, "%s: cannot be loaded: %s", path, strerror(errno));
    if (reserve(&reg->files, &reg->cap_files, reg->n_files, sizeof(file_rec)))
        return refuse(reg, err, "%s: out of memory", path);
    json_t *scan = mfi_scan_file(reg->cache, path, &st);
    if (!scan)
        return refuse(reg, err, "%s: out of memory while scanning it", path);
    const char *refused = json_string_value(json_object_get(scan, "refused"));
    if (refused) {
        refuse(reg, err, "%s", refused);
        json_decref(scan);
        return -1;
    }
    char *copy = strdup(path);
    if (!copy) {
        json_decref(scan);
        return refuse(reg, err, "%s: out of memory", path);
    }
    int f = reg->n_files++;
    reg->files[f] = (file_rec){.path = copy, .scan = scan};
    const json_t *items = json_object_get(scan, "items");
    int refusals = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const json_t *item = json_array_get(items, i);
        const char *no = json_string_value(json_object_get(item, "refused"));
        if (no)
            refusals += refuse(reg, err, "%s", no) != 0;
        else
            refusals += admit(reg, f, (int)i, item, err) != 0;
    }
    return refusals ? -1 : 0;
}

/* A registry that could not be made (mf_registry_new out of memory) takes nothing. */
static int no_registry(mf_error *err)
{
    mf_error_set(err, "out of memory for the plugin registry");
    return -1;
}

int mf_registry_add_file(mf_registry *reg, const char *path, mf_error *err)
{
    if (!reg)
        return no_registry(err);
    int status = add_file(reg, path, 1, err);
    mfi_cache_save(reg->cache);
    return status;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mf_registry_add_dir(mf_registry *reg, const char *dir, mf_error *err)
{
    if (!reg)
        return no_registry(err);
    char why[2 * PATH_MAX];
    if (mfi_trust_dir(dir, why, sizeof why))
        return refuse(reg, err, "%s", why);
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
    int n = 0, cap = 0, lost = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        char *file = reserve(&files, &cap, n, sizeof(char *)) == 0
                         ? malloc(strlen(dir) + len + 2) : NULL;
        if (file)
            sprintf(files[n++] = file, "%s/%s", dir, e->d_name);
        else
            lost++;
    }
    closedir(d);
    if (lost) /* a plugin silently missing would read as a wrong name in the experiment */
        refuse(reg, err, "plugin folder '%s': out of memory listing its files", dir);
    qsort(files, (size_t)n, sizeof(char *), compare_strings);
    for (int i = 0; i < n; i++) {
        add_file(reg, files[i], 0, NULL); /* refusals are recorded in reg */
        free(files[i]);
    }
    free(files);
    mfi_cache_save(reg->cache);
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
    if (!reg)
        return no_registry(err);
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

int mf_registry_count(const mf_registry *reg) { return reg ? reg->size : 0; }

/* Loading on demand changes no answer of the registry: const, as a cache is. */
const mf_plugin *mf_registry_at(const mf_registry *creg, int i, const char **file)
{
    mf_registry *reg = (mf_registry *)(uintptr_t)creg;
    if (i < 0 || i >= reg->size)
        return NULL;
    if (file)
        *file = reg->files[reg->items[i].file].path;
    return load_entry(reg, i);
}

const mf_plugin *mf_registry_scanned(const mf_registry *reg, int i, const char **file)
{
    if (i < 0 || i >= reg->size)
        return NULL;
    if (file)
        *file = reg->files[reg->items[i].file].path;
    return &reg->items[i].scanned;
}

const mf_plugin *mf_registry_find(const mf_registry *reg, int kind, const char *name,
                                  const char **file)
{
    int i = name ? find_entry(reg, kind, name) : -1;
    return i < 0 ? NULL : mf_registry_at(reg, i, file);
}

const char *const *mf_registry_names(mf_registry *reg, int kind)
{
    const char **names = realloc(reg->names, (size_t)(reg->size + 1) * sizeof *names);
    if (!names)
        return NULL;
    reg->names = names;
    int n = 0;
    for (int i = 0; i < reg->size; i++)
        if (kind == 0 || reg->items[i].scanned.kind == kind)
            names[n++] = reg->items[i].scanned.name;
    names[n] = NULL;
    return names;
}

int mf_registry_refusal_count(const mf_registry *reg) { return reg->n_refusals; }

const char *mf_registry_refusal(const mf_registry *reg, int i)
{
    return i >= 0 && i < reg->n_refusals ? reg->refusals[i] : NULL;
}
