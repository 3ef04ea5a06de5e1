/* A temporary folder per test: make_tmp("prefix"), tmp_path("file"), remove_tmp(). */
#ifndef MF_TESTS_TMPDIR_H
#define MF_TESTS_TMPDIR_H
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static char tmp[1024];

static inline void make_tmp(const char *prefix)
{
    snprintf(tmp, sizeof tmp, "%s/mmfuse-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             prefix);
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static inline void remove_tmp(void)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* A path in the folder; valid until four more calls. */
static inline const char *tmp_path(const char *name)
{
    static char path[4][1100];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", tmp, name);
    return p;
}
#endif
