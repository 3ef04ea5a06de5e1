/* config_check.c — checking maps against declared parameters (filling defaults), and the
 * typed getters plugins read their parameters with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* ---------------------------------------------------------------- mf_config_check */
static void report_not_a_map(const mf_config *n, mf_error *err)
{
    mf_param_spec map_spec = {"", MF_TYPE_MAP, NULL, 0, 0, 0, NULL, NULL};
    mfi_config_validate(n, &map_spec, err);
}

static const mf_param_spec *find_spec(const mf_param_spec *specs, const char *name)
{
    for (const mf_param_spec *s = specs; s && s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static int is_extra_key(const char *const *extra_keys, const char *name)
{
    for (const char *const *k = extra_keys; k && *k; k++)
        if (strcmp(*k, name) == 0)
            return 1;
    return 0;
}

static void report_unknown_key(const mf_config *map, const mfi_config_entry *e,
                               const mf_param_spec *specs, const char *const *extra_keys,
                               mf_error *err)
{
    size_t count = 0;
    for (const mf_param_spec *s = specs; s && s->name; s++)
        count++;
    for (const char *const *k = extra_keys; k && *k; k++)
        count++;
    const char **known = malloc((count + 1) * sizeof *known);
    const char *near = NULL;
    if (known) {
        size_t i = 0;
        for (const mf_param_spec *s = specs; s && s->name; s++)
            known[i++] = s->name;
        for (const char *const *k = extra_keys; k && *k; k++)
            known[i++] = *k;
        known[i] = NULL;
        near = mf_did_you_mean(e->key, known);
    }
    char key[4 * MFI_CONFIG_EXCERPT + 16], hint[128];
    mfi_config_excerpt(e->key, key, sizeof key);
    if (*mfi_config_colon_hint(e->key, hint, sizeof hint))
        mfi_config_report(err, &e->key_mark, map->path, "unknown key '%s'%s", key, hint);
    else if (near)
        mfi_config_report(err, &e->key_mark, map->path, "unknown key '%s' (did you mean '%s'?)",
                          key, near);
    else
        mfi_config_report(err, &e->key_mark, map->path, "unknown key '%s'", key);
    free(known);
}

/* Parse a spec's default text into a node placed at the end of map, with the map's mark.
 * A default that does not parse or fit its own spec is a bug in the spec: say so. */
static int fill_default(mf_config *map, const mf_param_spec *spec, mf_error *err)
{
    size_t path_size = strlen(map->path) + strlen(spec->name) + 2;
    char *path = malloc(path_size);
    if (!path) {
        mfi_config_report(err, &map->mark, map->path, "out of memory");
        return 1;
    }
    snprintf(path, path_size, "%s%s%s", map->path, map->path[0] ? "." : "", spec->name);
    mfi_config_source source = {map->mark.file, 0, path, 0};
    mfi_config_problem problem;
    mf_config *value = mfi_config_parse_value(spec->default_yaml, &source, &problem);
    int problems = 0;
    if (!value && strcmp(problem.message, "out of memory") == 0) {
        mfi_config_report(err, &map->mark, path, "out of memory");
        problems = 1;
    } else if (!value) {
        mfi_config_report(err, &map->mark, path, "the declared default '%s' is not valid YAML: %s",
                          spec->default_yaml, problem.message);
        problems = 1;
    } else if (mfi_config_set_mark(value, &map->mark) != 0 ||
               mfi_config_append(map, spec->name, &map->mark, value) != 0) {
        mfi_config_node_free(value);
        mfi_config_report(err, &map->mark, path, "out of memory");
        problems = 1;
    } else {
        problems = mfi_config_validate(value, spec, err);
    }
    free(path);
    return problems;
}

int mf_config_check(mf_config *map, const mf_param_spec *specs, const char *const *extra_keys,
                    mf_error *err)
{
    if (!map) {
        mfi_config_set_error(err, "mf_config_check: no map given");
        return 1;
    }
    if (map->kind != MF_CONFIG_MAP) {
        report_not_a_map(map, err);
        return 1;
    }
    int problems = 0;
    int given = map->length; /* defaults appended below are checked as they are added */
    for (int i = 0; i < given; i++) {
        const mfi_config_entry *e = &map->entries[i];
        const mf_param_spec *spec = find_spec(specs, e->key);
        if (spec) {
            problems += mfi_config_validate(e->value, spec, err);
        } else if (!is_extra_key(extra_keys, e->key)) {
            report_unknown_key(map, e, specs, extra_keys, err);
            problems++;
        }
    }
    for (const mf_param_spec *s = specs; s && s->name; s++) {
        if (mfi_config_find(map, s->name, strlen(s->name)) >= 0 || find_spec(specs, s->name) != s)
            continue; /* given (or a repeated spec entry) */
        if (s->flags & MF_PARAM_REQUIRED) {
            mfi_config_report(err, &map->mark, map->path, "missing required key '%s'", s->name);
            problems++;
        } else if (s->default_yaml) {
            problems += fill_default(map, s, err);
        }
    }
    return problems;
}

/* ---------------------------------------------------------------- getters */
/* The value at a dotted key path, or NULL after reporting what is missing (at the mark of
 * the deepest map reached) or which step is not a map. */
static const mf_config *find_value(const mf_config *map, const char *key, mf_error *err)
{
    if (!map || !key) {
        mfi_config_set_error(err, "config: no map or key given (key '%s')", key ? key : "(null)");
        return NULL;
    }
    const mf_config *n = map;
    for (const char *seg = key;;) {
        if (n->kind != MF_CONFIG_MAP) {
            report_not_a_map(n, err);
            return NULL;
        }
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        int i = mfi_config_find(n, seg, len);
        if (i < 0) {
            mfi_config_report(err, &n->mark, n->path, "missing required key '%.*s'", (int)len,
                              seg);
            return NULL;
        }
        n = n->entries[i].value;
        if (!dot)
            return n;
        seg = dot + 1;
    }
}

/* Find and check a scalar parameter; on success *out holds its value. */
static int get_scalar(const mf_config *map, const char *key, mf_type type, const char *choices,
                      mfi_config_value *out, mf_error *err)
{
    const mf_config *n = find_value(map, key, err);
    if (!n)
        return -1;
    return mfi_config_read_scalar(n, type, choices, out, err);
}

int mf_config_int(const mf_config *map, const char *key, int64_t *out, mf_error *err)
{
    mfi_config_value v;
    if (get_scalar(map, key, MF_TYPE_INT, NULL, &v, err) != 0)
        return -1;
    *out = v.i;
    return 0;
}

int mf_config_float(const mf_config *map, const char *key, double *out, mf_error *err)
{
    mfi_config_value v;
    if (get_scalar(map, key, MF_TYPE_FLOAT, NULL, &v, err) != 0)
        return -1;
    *out = v.f;
    return 0;
}

int mf_config_bool(const mf_config *map, const char *key, int *out, mf_error *err)
{
    mfi_config_value v;
    if (get_scalar(map, key, MF_TYPE_BOOL, NULL, &v, err) != 0)
        return -1;
    *out = v.b;
    return 0;
}

int mf_config_string(const mf_config *map, const char *key, const char **out, mf_error *err)
{
    mfi_config_value v;
    if (get_scalar(map, key, MF_TYPE_STRING, NULL, &v, err) != 0)
        return -1;
    *out = v.s;
    return 0;
}

int mf_config_enum(const mf_config *map, const char *key, const char *choices, int *out,
                   mf_error *err)
{
    mfi_config_value v;
    if (get_scalar(map, key, MF_TYPE_ENUM, choices, &v, err) != 0)
        return -1;
    *out = v.choice;
    return 0;
}

/* Check a list parameter (every element reported) and that it fits in cap. */
static const mf_config *get_list(const mf_config *map, const char *key, mf_type type, int cap,
                                 int *n, mf_error *err)
{
    const mf_config *list = find_value(map, key, err);
    if (!list)
        return NULL;
    mf_param_spec spec = {key, type, NULL, 0, 0, 0, NULL, NULL};
    if (mfi_config_validate(list, &spec, err) != 0)
        return NULL;
    *n = list->length;
    if (list->length > cap) {
        mfi_config_report(err, &list->mark, list->path,
                          "expected at most %d elements, got a list of %d", cap, list->length);
        return NULL;
    }
    return list;
}

int mf_config_int_list(const mf_config *map, const char *key, int64_t *out, int cap, int *n,
                       mf_error *err)
{
    const mf_config *list = get_list(map, key, MF_TYPE_INT_LIST, cap, n, err);
    if (!list)
        return -1;
    for (int i = 0; i < list->length; i++) {
        mfi_config_value v;
        mfi_config_read_scalar(list->entries[i].value, MF_TYPE_INT, NULL, &v, NULL);
        out[i] = v.i;
    }
    return 0;
}

int mf_config_float_list(const mf_config *map, const char *key, double *out, int cap, int *n,
                         mf_error *err)
{
    const mf_config *list = get_list(map, key, MF_TYPE_FLOAT_LIST, cap, n, err);
    if (!list)
        return -1;
    for (int i = 0; i < list->length; i++) {
        mfi_config_value v;
        mfi_config_read_scalar(list->entries[i].value, MF_TYPE_FLOAT, NULL, &v, NULL);
        out[i] = v.f;
    }
    return 0;
}
