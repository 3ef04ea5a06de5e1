/* Scanning a plugin file in a child process: its constructors and mf_plugin_list() run
 * there, so a file that crashes, aborts, calls exit() or hangs while loading is refused
 * with one sentence instead of taking the host down (GStreamer's gst-plugin-scanner), and
 * a file the experiment does not use never runs code in the host. The child checks each
 * descriptor as the loader would and answers in JSON (scan.h). */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/text.h"
#include "plugin_internal.h"
#include "scan.h"

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

static json_t *refusal(const char *fmt, ...) MF_PRINTF(1, 2);
static json_t *refusal(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "refused", msg);
}

/* Why a descriptor is refused (the loader's sentences, tests/test-plugins.c), or NULL.
 * Fields are read only once the magic and ABI say they exist. */
static json_t *check_descriptor(const char *path, int index, const mf_plugin *p)
{
    if (p->magic != MF_PLUGIN_MAGIC)
        return refusal("%s: plugin #%d has magic number 0x%08x instead of 0x%08x: not an mmfuse "
                       "plugin descriptor",
                       path, index + 1, (unsigned)p->magic, (unsigned)MF_PLUGIN_MAGIC);
    if (p->abi_major != MF_ABI_MAJOR)
        return refusal("%s: plugin #%d was built for mmfuse ABI %u.%u, but this host has ABI "
                       "%d.%d; rebuild it against this version's headers",
                       path, index + 1, p->abi_major, p->abi_minor, MF_ABI_MAJOR, MF_ABI_MINOR);
    if (p->abi_minor > MF_ABI_MINOR)
        return refusal("%s: plugin #%d needs mmfuse ABI %u.%u, newer than this host's %d.%d; "
                       "upgrade mmfuse",
                       path, index + 1, p->abi_major, p->abi_minor, MF_ABI_MAJOR, MF_ABI_MINOR);
    if (p->struct_size < sizeof(mf_plugin))
        return refusal("%s: plugin #%d has a %u-byte descriptor, smaller than ABI %d.%d's %zu "
                       "bytes",
                       path, index + 1, (unsigned)p->struct_size, MF_ABI_MAJOR, MF_ABI_MINOR,
                       sizeof(mf_plugin));
    if (!valid_name(p->name))
        return refusal("%s: plugin #%d has an invalid name (use 1 to 64 lowercase letters, "
                       "digits and '_')",
                       path, index + 1);
    if (!mf_kind_name(p->kind))
        return refusal("%s: plugin '%s' has unknown kind %d", path, p->name, (int)p->kind);
    const char *missing = p->ops ? missing_member(p) : "ops";
    if (missing)
        return refusal("%s: plugin '%s' (%s) lacks the required vtable member '%s'", path,
                       p->name, mf_kind_name(p->kind), missing);
    return NULL;
}

/* Numbers as text: JSON has no infinity, and a bound may be one. */
static json_t *number(double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return json_string(buf);
}

static json_t *text(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *describe(const mf_plugin *p)
{
    json_t *params = json_array();
    for (const mf_param_spec *s = p->params; s && s->name; s++)
        json_array_append_new(params,
                              json_pack("{s:s, s:i, s:o, s:I, s:o, s:o, s:o, s:o}", "name",
                                        s->name, "type", (int)s->type, "default",
                                        text(s->default_yaml), "flags", (json_int_t)s->flags,
                                        "min", number(s->min), "max", number(s->max), "choices",
                                        text(s->choices), "doc", text(s->doc)));
    return json_pack("{s:i, s:s, s:o, s:o, s:o, s:[i,i], s:I, s:o}", "kind", (int)p->kind,
                     "name", p->name, "version", text(p->version), "license", text(p->license),
                     "summary", text(p->summary), "abi", (int)p->abi_major, (int)p->abi_minor,
                     "size", (json_int_t)p->struct_size, "params", params);
}

/* glibc starts dlerror() with the path, which the sentence already names. */
static const char *dl_reason(const char *path)
{
    const char *why = dlerror(), *rest = why ? strstr(why, ": ") : NULL;
    if (!why)
        return "unknown reason";
    return rest && strncmp(why, path, (size_t)(rest - why)) == 0 ? rest + 2 : why;
}

/* In the child: load the file as the host would and describe what it offers. */
static json_t *scan_here(const char *path, const char *open_path)
{
    void *h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        json_t *r = refusal("%s: cannot be loaded: %s", path, dl_reason(path));
        json_object_set_new(r, "transient", json_true()); /* depends on the environment */
        return r;
    }
    typedef const mf_plugin *const *(*list_fn)(void);
    list_fn list = (list_fn)(uintptr_t)dlsym(h, MF_PLUGIN_ENTRY);
    if (!list)
        return refusal("%s: not an mmfuse plugin: it does not export %s()", path,
                       MF_PLUGIN_ENTRY);
    const mf_plugin *const *plugins = list();
    if (!plugins || !plugins[0])
        return refusal("%s: %s() lists no plugins", path, MF_PLUGIN_ENTRY);
    json_t *items = json_array();
    for (int i = 0; plugins[i]; i++) {
        json_t *why = check_descriptor(path, i, plugins[i]), *d = why ? NULL : describe(plugins[i]);
        if (!why && !d) /* JSON takes UTF-8 only */
            why = refusal("%s: plugin '%s' has a version, license, summary or parameter text "
                          "that is not UTF-8", path, plugins[i]->name);
        json_array_append_new(items, why ? why : d);
    }
    return json_pack("{s:o}", "items", items);
}

typedef struct job {
    const char *path, *open_path;
} job;


static void scan_child(void *arg, int fd)
{
    const job *j = arg;
    json_t *r = scan_here(j->path, j->open_path);
    char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (s)
        mfi_write_all(fd, s, strlen(s));
    free(s); /* nothing left unfreed: memcheck fails a child that leaks (docs/testing.md) */
    mfi_isolated_done(fd);
}

static void gather(void *user, const char *bytes, size_t n)
{
    mfi_text_add(user, bytes, n);
}

static json_t *scan_apart(const char *path, double limit)
{
    char open_path[4200];
    /* a bare name would send dlopen searching the library path */
    snprintf(open_path, sizeof open_path, "%s%s", strchr(path, '/') ? "" : "./", path);
    job j = {path, open_path};
    mfi_text a = {0}; /* out of memory: no answer, refused as unreadable */
    char what[256];
    int status = mfi_isolate(scan_child, &j, limit, gather, &a, what, sizeof what);
    json_t *r = NULL;
    if (status == 0 && a.s && !a.oom)
        r = json_loads(a.s, 0, NULL);
    free(a.s);
    if (status != 0) {
        /* a hang is remembered like a crash (a run must not wait for it every time) */
        int hung = strncmp(what, "timed out", 9) == 0;
        r = refusal("%s: %s while loading%s", path, what,
                    hung ? " (tried again when the file changes or MMFUSE_PLUGIN_SCAN_TIMEOUT "
                           "grows)"
                         : "");
        if (strncmp(what, "could not", 9) == 0)
            json_object_set_new(r, "transient", json_true());
        if (hung)
            json_object_set_new(r, "timeout", json_real(limit));
    } else if (!r || !json_is_object(r)) {
        json_decref(r);
        r = refusal("%s: the plugin scanner's answer was unreadable", path);
        json_object_set_new(r, "transient", json_true());
    }
    return r;
}

json_t *mfi_scan_file(mfi_scan_cache *cache, const char *path, const struct stat *st)
{
    if (access(path, R_OK) != 0)
        return refusal("%s: cannot be loaded: %s", path, strerror(errno));
    double limit = mfi_timeout_from_env("MMFUSE_PLUGIN_SCAN_TIMEOUT", 10);
    json_t *cached = mfi_cache_lookup(cache, path, st);
    /* a hang is tried again with a longer limit (a slow machine, valgrind) */
    const json_t *hung = json_object_get(cached, "timeout");
    if (cached && !(hung && limit > json_number_value(hung)))
        return json_incref(cached);
    json_t *r = scan_apart(path, limit);
    /* a file that may load another time (a library found later, a busy machine) is
     * scanned again next time */
    if (!json_is_true(json_object_get(r, "transient")))
        mfi_cache_store(cache, path, st, r);
    return r;
}

static const char *opt_string(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key)); /* NULL for null or absent */
}

static double opt_number(const json_t *o, const char *key)
{
    const char *s = opt_string(o, key);
    return s ? strtod(s, NULL) : 0;
}

int mfi_scan_descriptor(const json_t *item, mf_plugin *out, mf_param_spec **params)
{
    const json_t *abi = json_object_get(item, "abi"), *ps = json_object_get(item, "params");
    const char *name = opt_string(item, "name");
    if (!name || !json_is_array(abi) || !json_is_array(ps))
        return -1;
    size_t n = json_array_size(ps);
    mf_param_spec *specs = calloc(n + 1, sizeof *specs);
    if (!specs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(ps, i);
        specs[i] = (mf_param_spec){opt_string(s, "name"),
                                   (mf_type)json_integer_value(json_object_get(s, "type")),
                                   opt_string(s, "default"),
                                   (unsigned)json_integer_value(json_object_get(s, "flags")),
                                   opt_number(s, "min"),
                                   opt_number(s, "max"),
                                   opt_string(s, "choices"),
                                   opt_string(s, "doc")};
        if (!specs[i].name) {
            free(specs);
            return -1;
        }
    }
    memset(out, 0, sizeof *out);
    out->magic = MF_PLUGIN_MAGIC;
    out->abi_major = (uint16_t)json_integer_value(json_array_get(abi, 0));
    out->abi_minor = (uint16_t)json_integer_value(json_array_get(abi, 1));
    out->struct_size = (uint32_t)json_integer_value(json_object_get(item, "size"));
    out->kind = (int32_t)json_integer_value(json_object_get(item, "kind"));
    out->name = name;
    out->version = opt_string(item, "version");
    out->license = opt_string(item, "license");
    out->summary = opt_string(item, "summary");
    out->params = n ? specs : NULL;
    if (!n) {
        free(specs);
        specs = NULL;
    }
    *params = specs;
    return mf_kind_name(out->kind) ? 0 : -1;
}
