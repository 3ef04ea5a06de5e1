/* mmfuse plugins — every plugin on the search path: name, kind, version, file, summary. */
#include <stdio.h>

#include "cli.h"

int mf_cli_plugins(int argc, char **argv)
{
    if (argc > 1)
        return mf_cli_usage_error("plugins", "mmfuse plugins", "unexpected argument '%s'", argv[1]);
    mf_registry *reg = mf_registry_new();
    mf_error err;
    mf_error_clear(&err);
    mf_registry_add_search_path(reg, NULL, &err);
    for (int kind = MF_KIND_FIRST; kind <= MF_KIND_LAST; kind++)
        for (int i = 0; i < mf_registry_count(reg); i++) {
            const char *file;
            const mf_plugin *p = mf_registry_at(reg, i, &file);
            if (p->kind == kind)
                printf("%-8s %-16s %-8s %s\n         %s\n", mf_kind_name(p->kind), p->name,
                       p->version ? p->version : "", p->summary ? p->summary : "", file);
        }
    int refused = mf_registry_refusal_count(reg);
    for (int i = 0; i < refused; i++)
        fprintf(stderr, "refused: %s\n", mf_registry_refusal(reg, i));
    if (err.count)
        mf_cli_report(&err);
    mf_registry_free(reg);
    return refused || err.count ? MF_EXIT_BAD_INPUT : MF_EXIT_OK;
}
