#define _GNU_SOURCE /* dladdr */
/* Run tracking: what a run folder records so that its run can be trusted and repeated.
 *
 *   config.yaml    the resolved experiment, runnable from any working directory: the
 *                  path parameters (the host's and the used plugins') made absolute,
 *                  plugins.path listing the folders
 *                  the used plugins came from, plugins.files their files and SHA-256
 *   manifest.json  mmfuse and ABI version, each used plugin (kind, name, version, ABI, file,
 *                  SHA-256), seed, threads, host, CPU, kernel, BLAS, start time, experiment
 *
 * Running a config that records plugins.files warns, one line per plugin, when a used
 * plugin's file or hash changed (a fixed plugin is legitimate: not an error).
 */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <nettle/sha2.h>

#include "../config/config_internal.h"
#include "experiment_internal.h"

/* ---------------------------------------------------------------- files and hashes */
/* SHA-256 of a file's bytes as 64 hex digits; "" when it cannot be read. */
static void sha256_file(const char *path, char hex[65])
{
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&ctx, n, buf);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* `path` absolute, without resolving its last component (a symlinked .so keeps its name:
 * the folder is what the search path lists). */
static void absolute(const char *path, char *out, size_t size)
{
    char *copy = strdup(path), *copy2 = strdup(path);
    char dir[PATH_MAX];
    if (copy && copy2 && realpath(dirname(copy), dir))
        snprintf(out, size, "%s/%s", strcmp(dir, "/") ? dir : "", basename(copy2));
    else
        snprintf(out, size, "%s", path);
    free(copy);
    free(copy2);
}

static void absolute_dir(const char *dir, char *out, size_t size)
{
    char resolved[PATH_MAX];
    snprintf(out, size, "%s", realpath(dir, resolved) ? resolved : dir);
}

/* ---------------------------------------------------------------- the plugins a run uses */
static void add_used(experiment *e, int kind, const mf_config *name_node)
{
    const char *name = name_node ? mf_config_scalar(name_node) : NULL, *file = NULL;
    const mf_plugin *p = name ? mf_registry_find(e->reg, kind, name, &file) : NULL;
    if (!p)
        return;
    for (int i = 0; i < e->n_used; i++)
        if (e->used[i].plugin == p)
            return;
    if (e->n_used == (int)(sizeof e->used / sizeof e->used[0]))
        return;
    struct mfi_used_plugin *u = &e->used[e->n_used++];
    memset(u, 0, sizeof *u);
    u->plugin = p;
    u->file = file;
    sha256_file(file, u->sha256);
}

/* A module section {type: NAME, …}; `none`, `share:` and absent sections use no plugin. */
static void add_module(experiment *e, int kind, const mf_config *section)
{
    if (section && mf_config_node_kind(section) == MF_CONFIG_MAP && !mfi_section_is_none(section))
        add_used(e, kind, mf_config_get(section, "type"));
}

/* From the validated config, so it does not depend on how far the model is built. */
static void collect_used(experiment *e)
{
    if (e->track_ready)
        return;
    e->track_ready = 1;
    e->n_used = 0;
    add_used(e, MF_KIND_DATASET, mf_config_get(e->cfg, "data.reader"));
    const mf_config *enc = mf_config_get(e->cfg, "model.encoders");
    for (int i = 0; enc && mf_config_node_kind(enc) == MF_CONFIG_MAP && i < mf_config_length(enc); i++)
        add_module(e, MF_KIND_ENCODER, mf_config_at(enc, i));
    add_module(e, MF_KIND_FUSION, mf_config_get(e->cfg, "model.fusion"));
    add_module(e, MF_KIND_ENCODER, mf_config_get(e->cfg, "model.head"));
    const mf_config *loss = mf_config_get(e->cfg, "loss");
    if (loss && mf_config_node_kind(loss) == MF_CONFIG_LIST)
        for (int i = 0; i < mf_config_length(loss); i++)
            add_module(e, MF_KIND_LOSS, mf_config_at(loss, i));
    else
        add_module(e, MF_KIND_LOSS, loss);
}

void mfi_track_check_plugins(experiment *e)
{
    collect_used(e);
    const mf_config *files = mf_config_get(e->cfg, "plugins.files");
    for (int i = 0; files && i < e->n_used; i++) {
        struct mfi_used_plugin *u = &e->used[i];
        const mf_config *kind = mf_config_get(files, mf_kind_name(u->plugin->kind));
        const mf_config *rec = kind ? mf_config_get(kind, u->plugin->name) : NULL;
        if (!rec || mf_config_node_kind(rec) != MF_CONFIG_MAP)
            continue;
        const mf_config *of = mf_config_get(rec, "file"), *oh = mf_config_get(rec, "sha256");
        const char *old_file = of ? mf_config_scalar(of) : NULL;
        const char *old_sha = oh ? mf_config_scalar(oh) : NULL;
        char now[PATH_MAX + 256];
        absolute(u->file, now, sizeof now);
        if ((!old_file || strcmp(old_file, now) == 0) && (!old_sha || strcmp(old_sha, u->sha256) == 0))
            continue;
        u->old_file = old_file ? old_file : "?";
        u->old_sha256 = old_sha ? old_sha : "?";
        mf_error w;
        mf_error_clear(&w);
        mf_config_error(&w, rec, "the %s plugin '%s' changed since this config was saved: was "
                        "%s (sha256 %s), now %s (sha256 %s)", mf_kind_name(u->plugin->kind),
                        u->plugin->name, u->old_file, u->old_sha256, now,
                        *u->sha256 ? u->sha256 : "unreadable");
        fprintf(stderr, "mmfuse: warning: %s\n", w.msg);
    }
}

/* ---------------------------------------------------------------- config.yaml */
static mf_config *scalar(const char *text, yaml_scalar_style_t style, const mfi_config_mark *mark)
{
    mf_config *n = mfi_config_node_new(MF_CONFIG_SCALAR, mark);
    if (n && !(n->text = mfi_config_strdup(text))) {
        mfi_config_node_free(n);
        return NULL;
    }
    if (n)
        n->style = style;
    return n;
}

/* map[key] = value (value is consumed, also on failure). */
static int put(mf_config *map, const char *key, mf_config *value)
{
    if (!value)
        return -1;
    int i = mfi_config_find(map, key, strlen(key));
    if (i < 0) {
        if (mfi_config_append(map, key, &map->mark, value) == 0)
            return 0;
        mfi_config_node_free(value);
        return -1;
    }
    if (mfi_config_set_path(value, map->entries[i].value->path) != 0) {
        mfi_config_node_free(value);
        return -1;
    }
    mfi_config_node_free(map->entries[i].value);
    map->entries[i].value = value;
    return 0;
}

/* map[key] as a map, made (or replacing a scalar) when it is not one. */
static mf_config *child_map(mf_config *map, const char *key)
{
    int i = mfi_config_find(map, key, strlen(key));
    if (i >= 0 && map->entries[i].value->kind == MF_CONFIG_MAP)
        return map->entries[i].value;
    if (put(map, key, mfi_config_node_new(MF_CONFIG_MAP, &map->mark)) != 0)
        return NULL;
    return map->entries[mfi_config_find(map, key, strlen(key))].value;
}

/* A parameter holding a path: flagged MF_PARAM_PATH or, for plugins that predate the flag,
 * a string (or list of strings) named path, file or dir, or ending in _path, _file, _dir. */
static int path_param(const mf_param_spec *s, int by_name)
{
    static const char *const names[] = {"path", "file", "dir"};
    if (s->type != MF_TYPE_STRING && s->type != MF_TYPE_STRING_LIST)
        return 0;
    if (s->flags & MF_PARAM_PATH)
        return 1;
    size_t len = strlen(s->name);
    for (int i = 0; by_name && i < 3; i++) {
        size_t n = strlen(names[i]);
        if (strcmp(s->name, names[i]) == 0 ||
            (len > n + 1 && s->name[len - n - 1] == '_' && strcmp(s->name + len - n, names[i]) == 0))
            return 1;
    }
    return 0;
}

static int absolutize(mf_config *n, const char *base)
{
    if (n->kind == MF_CONFIG_LIST) {
        for (int i = 0; i < n->length; i++)
            if (absolutize(n->entries[i].value, base))
                return -1;
        return 0;
    }
    if (n->kind != MF_CONFIG_SCALAR || !n->text[0] || n->text[0] == '/')
        return 0;
    const char *rel = strncmp(n->text, "./", 2) == 0 ? n->text + 2 : n->text;
    size_t size = strlen(base) + strlen(rel) + 2;
    char *text = malloc(size);
    if (!text)
        return -1;
    snprintf(text, size, "%s/%s", base, rel);
    free(n->text);
    n->text = text;
    return 0;
}

/* The folders of the used plugins, in search order (MMFUSE_PLUGIN_PATH, plugins.path),
 * without the default folder (always searched; listing it would load it twice). */
static int plugin_folders(experiment *e, mf_config *plugins)
{
    const char *env = getenv("MMFUSE_PLUGIN_PATH");
    const mf_config *list = mf_config_get(e->cfg, "plugins.path");
    int n = 0, cap = mf_config_length(list) + 1;
    for (const char *c = env ? env : ""; *c; c++)
        cap += *c == ':';
    char (*dirs)[PATH_MAX] = malloc((size_t)cap * sizeof *dirs);
    char *copy = strdup(env ? env : ""), *save = NULL;
    if (!dirs || !copy) {
        free(dirs);
        free(copy);
        return -1;
    }
    for (char *d = strtok_r(copy, ":", &save); d && n < cap; d = strtok_r(NULL, ":", &save))
        absolute_dir(d, dirs[n++], PATH_MAX);
    free(copy);
    for (int i = 0; i < mf_config_length(list) && n < cap; i++) {
        const char *d = mf_config_scalar(mf_config_at(list, i));
        char joined[PATH_MAX];
        snprintf(joined, sizeof joined, "%s%s%s", d[0] == '/' ? "" : e->base_dir,
                 d[0] == '/' ? "" : "/", d);
        absolute_dir(joined, dirs[n++], PATH_MAX);
    }
    char builtin[PATH_MAX];
    absolute_dir(mf_default_plugin_dir(), builtin, sizeof builtin);
    mf_config *out = mfi_config_node_new(MF_CONFIG_LIST, &plugins->mark);
    int rc = out ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        int used = 0, seen = strcmp(dirs[i], builtin) == 0;
        for (int j = 0; j < i; j++)
            seen |= strcmp(dirs[i], dirs[j]) == 0;
        for (int k = 0; !seen && k < e->n_used; k++) {
            char file[PATH_MAX + 256], *slash;
            absolute(e->used[k].file, file, sizeof file);
            if ((slash = strrchr(file, '/')))
                *slash = '\0';
            used |= strcmp(file, dirs[i]) == 0;
        }
        mf_config *item = used && !seen ? scalar(dirs[i], YAML_PLAIN_SCALAR_STYLE, &plugins->mark)
                                        : NULL;
        if (used && !seen && (!item || mfi_config_append(out, NULL, NULL, item) != 0)) {
            mfi_config_node_free(item);
            rc = -1;
        }
    }
    free(dirs);
    if (rc) {
        mfi_config_node_free(out);
        return -1;
    }
    return put(plugins, "path", out);
}

/* plugins.files.<kind>.<name> = {file, sha256, version} for every used plugin. */
static int plugin_files(experiment *e, mf_config *plugins)
{
    mf_config *files = mfi_config_node_new(MF_CONFIG_MAP, &plugins->mark);
    if (!files || put(plugins, "files", files))
        return -1;
    const mfi_config_mark *m = &plugins->mark;
    for (int i = 0; i < e->n_used; i++) {
        const mf_plugin *p = e->used[i].plugin;
        char file[PATH_MAX + 256];
        absolute(e->used[i].file, file, sizeof file);
        mf_config *kind = child_map(files, mf_kind_name(p->kind));
        mf_config *rec = kind ? child_map(kind, p->name) : NULL;
        if (!rec || put(rec, "file", scalar(file, YAML_PLAIN_SCALAR_STYLE, m)) ||
            put(rec, "sha256", scalar(e->used[i].sha256, YAML_DOUBLE_QUOTED_SCALAR_STYLE, m)) ||
            put(rec, "version", scalar(p->version ? p->version : "", YAML_DOUBLE_QUOTED_SCALAR_STYLE, m)))
            return -1;
    }
    return 0;
}

/* Which values the absolutize_ functions change: every one (config.yaml), or only those set by
 * -o (whose marks name "-o key=value"), for inference, where they are relative to the
 * working folder while the run's config.yaml holds absolute paths already. */
enum { ALL_VALUES, OVERRIDDEN_VALUES };

/* Every path parameter of `specs` present in `section` made absolute against base. */
static int absolutize_specs(mf_config *section, const mf_param_spec *specs, int by_name,
                            const char *base, int which)
{
    for (const mf_param_spec *s = specs; section && s && s->name; s++) {
        mf_config *v = path_param(s, by_name) ? (mf_config *)mf_config_get(section, s->name) : NULL;
        if (v && which == OVERRIDDEN_VALUES && strncmp(v->mark.file ? v->mark.file : "", "-o ", 3))
            continue;
        if (v && absolutize(v, base))
            return -1;
    }
    return 0;
}

/* The path parameters of the used plugin named by section's `type` (or data.reader). */
static int absolutize_plugin(experiment *e, mf_config *section, int kind, const char *key,
                             const char *base, int which)
{
    const char *name = section ? mf_config_scalar(mf_config_get(section, key)) : NULL;
    for (int i = 0; name && i < e->n_used; i++)
        if ((int)e->used[i].plugin->kind == kind && strcmp(e->used[i].plugin->name, name) == 0)
            return absolutize_specs(section, e->used[i].plugin->params, 1, base, which);
    return 0;
}

/* The host's path keys (plugins.path, eval.robustness.baseline) in cfg, made absolute. */
static int absolutize_host_paths(mf_config *cfg, const char *base, int which)
{
    int rc = 0;
    for (const mf_section_doc *d = mf_experiment_sections(); rc == 0 && d->key; d++)
        if (!strchr(d->key, '<'))
            rc = absolutize_specs(d->key[0] ? (mf_config *)mf_config_get(cfg, d->key) : cfg,
                                  d->specs, 0, base, which);
    return rc;
}

/* Each used plugin's path parameters in cfg (the reader's, the encoders', fusion's, the
 * head's, the losses'), made absolute. */
static int absolutize_plugin_paths(experiment *e, mf_config *cfg, const char *base, int which)
{
    int rc = 0;
    mf_config *encoders = (mf_config *)mf_config_get(cfg, "model.encoders");
    for (int i = 0; rc == 0 && i < mf_config_length(encoders); i++)
        rc = absolutize_plugin(e, (mf_config *)mf_config_at(encoders, i), MF_KIND_ENCODER, "type",
                               base, which);
    mf_config *loss = (mf_config *)mf_config_get(cfg, "loss");
    int n_loss = mf_config_node_kind(loss) == MF_CONFIG_LIST ? mf_config_length(loss) : 0;
    for (int i = 0; rc == 0 && i < n_loss; i++)
        rc = absolutize_plugin(e, (mf_config *)mf_config_at(loss, i), MF_KIND_LOSS, "type", base,
                               which);
    if (rc == 0 && n_loss == 0)
        rc = absolutize_plugin(e, loss, MF_KIND_LOSS, "type", base, which);
    if (rc == 0)
        rc = absolutize_plugin(e, (mf_config *)mf_config_get(cfg, "data"), MF_KIND_DATASET,
                               "reader", base, which);
    if (rc == 0)
        rc = absolutize_plugin(e, (mf_config *)mf_config_get(cfg, "model.fusion"), MF_KIND_FUSION,
                               "type", base, which);
    if (rc == 0)
        rc = absolutize_plugin(e, (mf_config *)mf_config_get(cfg, "model.head"), MF_KIND_ENCODER,
                               "type", base, which);
    return rc;
}

int mfi_track_absolutize_overrides(experiment *e, int plugin_part)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return 0; /* the working folder is gone: the values stay as given */
    if (!plugin_part)
        return absolutize_host_paths(e->cfg, cwd, OVERRIDDEN_VALUES);
    collect_used(e);
    return absolutize_plugin_paths(e, e->cfg, cwd, OVERRIDDEN_VALUES);
}

static int write_config(experiment *e, mf_error *err)
{
    char path[4200], base[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.yaml", e->run->path);
    absolute_dir(e->base_dir, base, sizeof base);
    mf_config *copy = mf_config_copy(e->cfg);
    int rc = copy && absolutize_host_paths(copy, base, ALL_VALUES) == 0
                 ? absolutize_plugin_paths(e, copy, base, ALL_VALUES)
                 : -1;
    mf_config *plugins = rc == 0 ? child_map(copy, "plugins") : NULL;
    if (!plugins || plugin_folders(e, plugins) || plugin_files(e, plugins)) {
        mf_config_free(copy);
        mf_error_set(err, "%s: out of memory", path);
        return -1;
    }
    rc = mf_config_write(copy, path, err);
    mf_config_free(copy);
    return rc;
}

/* ---------------------------------------------------------------- manifest.json */
static json_t *cpu_model(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[1024];
    json_t *model = NULL;
    while (f && !model && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        /* x86: "model name"; arm64 has no name, only "CPU part" numbers */
        if (colon && (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0)) {
            char *v = colon + 1 + strspn(colon + 1, " \t");
            v[strcspn(v, "\n")] = '\0';
            model = json_string(v);
        }
    }
    if (f)
        fclose(f);
    return model ? model : json_null();
}

/* The library cblas_sgemm comes from (Debian's alternatives pick one at run time), and
 * OpenBLAS's own description when that is what it is. */
static json_t *blas_info(void)
{
    Dl_info info;
    char lib[PATH_MAX];
    json_t *j = json_object();
    if (dladdr((void *)(uintptr_t)cblas_sgemm, &info) && info.dli_fname)
        json_object_set_new(j, "library", json_string(realpath(info.dli_fname, lib) ? lib
                                                                                   : info.dli_fname));
    void *self = dlopen(NULL, RTLD_LAZY);
    char *(*config)(void) = self ? (char *(*)(void))(uintptr_t)dlsym(self, "openblas_get_config")
                                 : NULL;
    json_object_set_new(j, "config", config ? json_string(config()) : json_null());
    if (self)
        dlclose(self);
    return j;
}

static json_t *plugins_json(experiment *e, int changed)
{
    json_t *list = json_array();
    for (int i = 0; i < e->n_used; i++) {
        const struct mfi_used_plugin *u = &e->used[i];
        if (changed && !u->old_file)
            continue;
        char file[PATH_MAX + 256], abi[16];
        absolute(u->file, file, sizeof file);
        snprintf(abi, sizeof abi, "%u.%u", u->plugin->abi_major, u->plugin->abi_minor);
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", mf_kind_name(u->plugin->kind),
                              "name", u->plugin->name, "version",
                              u->plugin->version ? u->plugin->version : "", "abi", abi, "file",
                              file, "sha256", u->sha256);
        if (changed) {
            json_object_set_new(j, "old_file", json_string(u->old_file));
            json_object_set_new(j, "old_sha256", json_string(u->old_sha256));
        }
        json_array_append_new(list, j);
    }
    return list;
}

json_t *mfi_track_changed_plugins(experiment *e)
{
    collect_used(e);
    return plugins_json(e, 1);
}

static void iso_now(char *out, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

json_t *mfi_track_manifest(experiment *e)
{
    collect_used(e);
    if (!e->track_started[0])
        iso_now(e->track_started, sizeof e->track_started);
    char path[PATH_MAX + 256], host[256] = "", abi[16];
    absolute(e->path, path, sizeof path);
    gethostname(host, sizeof host - 1);
    snprintf(abi, sizeof abi, "%d.%d", MF_ABI_MAJOR, MF_ABI_MINOR);
    struct utsname u;
    char kernel[3 * sizeof u.release];
    if (uname(&u) == 0)
        snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(kernel, sizeof kernel, "?");
    json_t *overrides = json_array(), *warnings = json_array();
    for (int i = 0; e->opts && i < e->opts->n_overrides; i++)
        json_array_append_new(overrides, json_string(e->opts->overrides[i]));
    for (int i = 0; i < mf_registry_refusal_count(e->reg); i++)
        json_array_append_new(warnings, json_string(mf_registry_refusal(e->reg, i)));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:i, s:i, s:s, s:s, s:o, s:i, s:o, s:o, s:o, s:o}",
                     "mmfuse", MF_VERSION_STRING, "abi", abi, "started", e->track_started,
                     "experiment", path, "overrides", overrides, "seed", (json_int_t)e->seed,
                     "threads", mf_get_threads(), "ranks", e->comm.size > 1 ? e->comm.size : 1,
                     "host", host, "kernel", kernel, "cpu",
                     cpu_model(), "cores", (int)sysconf(_SC_NPROCESSORS_ONLN), "blas",
                     blas_info(), "plugins", plugins_json(e, 0), "plugins_changed",
                     plugins_json(e, 1), "plugin_warnings", warnings);
}

int mfi_track_start(experiment *e, mf_error *err)
{
    if (!e->run)
        return 0;
    collect_used(e);
    if (write_config(e, err))
        return -1;
    json_t *m = mfi_track_manifest(e);
    char *text = m ? json_dumps(m, JSON_INDENT(2)) : NULL;
    json_decref(m);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", e->run->path);
    if (!text) {
        mf_error_set(err, "%s: out of memory", path);
        return -1;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the final newline */
    int rc = mf_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}
