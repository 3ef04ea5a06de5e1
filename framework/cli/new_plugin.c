/* mmfuse new-plugin KIND NAME [DIR]: a plugin skeleton that compiles, loads and passes
 * check-plugin as generated — the C file, a meson.build for a lab's own repository, and an
 * example experiment using it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

extern const char mf_cli_template_fusion_c[], mf_cli_template_encoder_c[],
    mf_cli_template_loss_c[], mf_cli_template_dataset_c[], mf_cli_template_fusion_yaml[],
    mf_cli_template_encoder_yaml[], mf_cli_template_loss_yaml[], mf_cli_template_dataset_yaml[],
    mf_cli_template_meson_build_in[];

static const char new_usage[] = "mmfuse new-plugin dataset|encoder|fusion|loss NAME [DIR]";

static const struct {
    const char *kind;
    const char *c, *yaml;
} templates[] = {
    {"dataset", mf_cli_template_dataset_c, mf_cli_template_dataset_yaml},
    {"encoder", mf_cli_template_encoder_c, mf_cli_template_encoder_yaml},
    {"fusion", mf_cli_template_fusion_c, mf_cli_template_fusion_yaml},
    {"loss", mf_cli_template_loss_c, mf_cli_template_loss_yaml},
};

/* text with every @NAME@ replaced by name; malloc'ed. */
static char *instantiate(const char *text, const char *name)
{
    size_t n = 0, len = strlen(name);
    for (const char *p = text; (p = strstr(p, "@NAME@")); p += 6)
        n++;
    char *out = malloc(strlen(text) + n * len + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = text, *q; *p; p = q + 6) {
        if (!(q = strstr(p, "@NAME@"))) {
            strcpy(o, p);
            return out;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, name, len);
        o += len;
    }
    *o = '\0';
    return out;
}

/* A plugin name that is also a C identifier: [a-z][a-z0-9_]*, at most 48 characters. */
static int valid_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z') || strlen(s) > 48)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

int mf_cli_new_plugin(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, new_usage,
                    "Writes NAME.c (a plugin that compiles, loads and passes check-plugin),\n"
                    "meson.build and NAME.yaml (an example experiment) into DIR (default NAME).\n"))
        return MF_EXIT_OK;
    if (argc < 3 || argc > 4)
        return mf_cli_usage_error("new-plugin", new_usage, argc < 3 ? "which kind and name?"
                                                                     : "too many arguments");
    const char *kind = argv[1], *name = argv[2];
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(kind, templates[i].kind) == 0)
            k = i;
    if (k < 0) {
        static const char *const kinds[] = {"dataset", "encoder", "fusion", "loss", NULL};
        const char *hint = mf_suggestion(kind, kinds);
        return mf_cli_usage_error("new-plugin", new_usage, "unknown kind '%s'%s", kind,
                                  hint);
    }
    if (!valid_name(name))
        return mf_cli_usage_error("new-plugin", new_usage,
                                  "'%s' is not a plugin name: use a lowercase letter, then "
                                  "lowercase letters, digits or '_' (at most 48)",
                                  name);
    const char *dir = argc == 4 ? argv[3] : name;
    mf_error derr;
    mf_error_clear(&derr);
    if (mf_make_dirs(dir, &derr)) {
        fprintf(stderr, "mmfuse new-plugin: %s\n", derr.msg);
        return MF_EXIT_FAILED;
    }
    char paths[3][4096];
    snprintf(paths[0], sizeof paths[0], "%s/%s.c", dir, name);
    snprintf(paths[1], sizeof paths[1], "%s/meson.build", dir);
    snprintf(paths[2], sizeof paths[2], "%s/%s.yaml", dir, name);
    for (int i = 0; i < 3; i++)
        if (access(paths[i], F_OK) == 0) {
            fprintf(stderr, "mmfuse new-plugin: '%s' already exists; not overwriting anything\n",
                    paths[i]);
            return MF_EXIT_BAD_INPUT;
        }
    const char *texts[3] = {templates[k].c, mf_cli_template_meson_build_in, templates[k].yaml};
    for (int i = 0; i < 3; i++) {
        char *text = instantiate(texts[i], name);
        mf_error err;
        mf_error_clear(&err);
        if (!text || mf_write_file_atomic(paths[i], text, strlen(text), &err)) {
            fprintf(stderr, "mmfuse new-plugin: %s\n", text ? err.msg : "out of memory");
            free(text);
            return MF_EXIT_FAILED;
        }
        free(text);
    }
    printf("wrote %s, %s and %s\n"
           "next:\n"
           "  cd %s\n"
           "  cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) %s.c -o %s.so\n"
           "  mmfuse check-plugin ./%s.so\n"
           "  mmfuse run %s.yaml\n",
           paths[0], paths[1], paths[2], dir, name, name, name, name);
    return MF_EXIT_OK;
}
