/* mmfuse plugins [--kind K] [--describe NAME] [--json] — every plugin on the search path:
 * its file, kind, version, summary and declared parameters; refused files and names found
 * twice (with both files, and which one wins) on stderr. Everything comes from the scans
 * (registry.c): listing loads no plugin file into this process. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char plugins_usage[] = "mmfuse plugins [--kind dataset|encoder|fusion|loss] "
                                    "[--describe NAME] [--json]";

static const char plugins_details[] =
    "Lists the plugins on the search path (MMFUSE_PLUGIN_PATH's folders, then the built-in\n"
    "folder): kind, name, version, summary and file; --describe NAME adds its parameters.\n"
    "Each file is scanned in a separate process and the scan is remembered (the cache is\n"
    "$XDG_CACHE_HOME/mmfuse/registry-v1.json or ~/.cache/mmfuse/registry-v1.json;\n"
    "MMFUSE_REGISTRY_CACHE names another file, empty for none), so listing runs no plugin\n"
    "code in this process. Files refused are named on stderr with the reason: built for\n"
    "another ABI, a name an earlier file provides, crashed, aborted, called exit() or hung\n"
    "while loading (MMFUSE_PLUGIN_SCAN_TIMEOUT seconds, 10 by default), or a file or folder\n"
    "other users could change (MMFUSE_PLUGIN_TRUSTED_GROUPS=GROUP trusts a lab's group).\n";

/* "0 … 1", ">= 1", "" */
static void range_text(const mf_param_spec *s, char *buf, size_t size)
{
    if ((s->flags & MF_PARAM_MIN) && (s->flags & MF_PARAM_MAX))
        snprintf(buf, size, "%g … %g", s->min, s->max);
    else if (s->flags & MF_PARAM_MIN)
        snprintf(buf, size, ">= %g", s->min);
    else if (s->flags & MF_PARAM_MAX)
        snprintf(buf, size, "<= %g", s->max);
    else if (s->type == MF_TYPE_ENUM && s->choices)
        snprintf(buf, size, "%s", s->choices);
    else
        buf[0] = '\0';
}

static json_t *plugin_json(const mf_plugin *p, const char *file)
{
    json_t *params = json_array();
    for (const mf_param_spec *s = p->params; s && s->name; s++) {
        char range[128];
        range_text(s, range, sizeof range);
        json_t *j = json_pack("{s:s, s:s, s:b, s:s, s:s}", "name", s->name, "type",
                              mf_type_name(s->type), "required", (s->flags & MF_PARAM_REQUIRED) != 0,
                              "range", range, "doc", s->doc ? s->doc : "");
        if (s->default_yaml)
            json_object_set_new(j, "default", json_string(s->default_yaml));
        json_array_append_new(params, j);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", p->name, "kind",
                     mf_kind_name(p->kind), "version", p->version ? p->version : "", "license",
                     p->license ? p->license : "", "summary", p->summary ? p->summary : "", "file",
                     file, "abi", p->abi_major == 1 ? "1" : "?", "params", params);
}

static void describe(const mf_plugin *p, const char *file)
{
    printf("%s (%s plugin, version %s, %s)\n  %s\n  file: %s\n", p->name, mf_kind_name(p->kind),
           p->version ? p->version : "?", p->license ? p->license : "no license given",
           p->summary ? p->summary : "", file);
    if (!p->params || !p->params[0].name) {
        printf("  parameters: none\n");
        return;
    }
    printf("  parameters:\n");
    for (const mf_param_spec *s = p->params; s->name; s++) {
        char range[128];
        range_text(s, range, sizeof range);
        printf("    %-14s %-18s %s%-14s %s%s%s\n", s->name, mf_type_name(s->type),
               s->flags & MF_PARAM_REQUIRED ? "required " : "default ",
               s->default_yaml ? s->default_yaml : "", *range ? "[" : "", range, *range ? "]" : "");
        if (s->doc)
            printf("    %-14s %s\n", "", s->doc);
    }
}

/* The scanned descriptor of a name (kind 0: any), without loading its file. */
static const mf_plugin *find_scanned(const mf_registry *reg, int kind, const char *name,
                                     const char **file)
{
    for (int i = 0; i < mf_registry_count(reg); i++) {
        const mf_plugin *p = mf_registry_scanned(reg, i, file);
        if ((!kind || p->kind == kind) && strcmp(p->name, name) == 0)
            return p;
    }
    return NULL;
}

int mf_cli_plugins(int argc, char **argv)
{
    const char *describe_name = NULL;
    int kind = 0, as_json = 0;
    if (mf_cli_help(argc, argv, plugins_usage, plugins_details))
        return MF_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if ((strcmp(argv[i], "--kind") == 0 || strcmp(argv[i], "--describe") == 0) &&
                   i + 1 < argc) {
            const char *v = argv[++i];
            if (argv[i - 1][2] == 'd') {
                describe_name = v;
                continue;
            }
            for (int k = MF_KIND_FIRST; k <= MF_KIND_LAST; k++)
                if (strcmp(v, mf_kind_name((mf_kind)k)) == 0)
                    kind = k;
            if (!kind)
                return mf_cli_usage_error("plugins", plugins_usage, "unknown kind '%s'", v);
        } else {
            return mf_cli_usage_error("plugins", plugins_usage, "unexpected argument '%s'",
                                      argv[i]);
        }
    }
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    mf_registry_add_search_path(reg, NULL, &err);
    int status = MF_EXIT_OK;
    json_t *all = as_json ? json_array() : NULL;
    if (describe_name) {
        const char *file;
        const mf_plugin *p = find_scanned(reg, kind, describe_name, &file);
        if (!p) {
            const char *hint = mf_suggestion(describe_name, mf_registry_names(reg, kind));
            fprintf(stderr, "mmfuse plugins: no plugin named '%s'%s\n", describe_name,
                    hint);
            status = MF_EXIT_BAD_INPUT;
        } else if (all) {
            json_array_append_new(all, plugin_json(p, file));
        } else {
            describe(p, file);
        }
    } else {
        for (int k = MF_KIND_FIRST; k <= MF_KIND_LAST; k++)
            for (int i = 0; i < mf_registry_count(reg); i++) {
                const char *file;
                const mf_plugin *p = mf_registry_scanned(reg, i, &file);
                if (p->kind != k || (kind && kind != k))
                    continue;
                if (all)
                    json_array_append_new(all, plugin_json(p, file));
                else
                    printf("%-8s %-16s %-8s %s\n         %s\n", mf_kind_name(p->kind), p->name,
                           p->version ? p->version : "", p->summary ? p->summary : "", file);
            }
    }
    if (all) {
        if (status == MF_EXIT_OK)
            json_dumpf(describe_name ? json_array_get(all, 0) : all, stdout, JSON_INDENT(2));
        if (status == MF_EXIT_OK)
            putchar('\n');
        json_decref(all);
    }
    /* what was not loaded, and why (names found twice say which file wins) */
    for (int i = 0; i < mf_registry_refusal_count(reg); i++)
        fprintf(stderr, "refused: %s\n", mf_registry_refusal(reg, i));
    if (err.count)
        mf_cli_report(&err);
    mf_registry_free(reg);
    return status;
}
