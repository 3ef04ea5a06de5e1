/* Whose code a plugin is. Loading a file runs its code with the user's rights, so the file
 * and every folder above it must be beyond the reach of other users, as ssh requires of
 * authorized_keys: owned by the user or root, writable by no one else. Two exceptions:
 *  - a folder with the sticky bit (/tmp): others may write there but cannot rename or
 *    remove what they do not own, and what lies below it is checked in turn;
 *  - a lab's group (MMFUSE_PLUGIN_TRUSTED_GROUPS=lab, names or ids, comma-separated; `*`
 *    for every group of the user's): folders and files of a listed group the user belongs
 *    to may be group-writable and owned by another member of that group;
 *  - the user's private group (umask 002 with one group per user, as Debian's ssh allows):
 *    a group named after the user, the user's primary group, with no other member. */
#define _GNU_SOURCE
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_internal.h"

static int user_in_group(gid_t gid)
{
    if (gid == getegid())
        return 1;
    gid_t groups[256];
    int n = getgroups(256, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/* A user-private group (named after the user, the user's primary group, no other member
 * listed): then group-writable is only owner-writable. A shared primary group such as
 * `users` lists no members either, hence the name. */
static int private_group(gid_t gid)
{
    struct passwd *pw = getpwuid(geteuid());
    struct group *gr = pw && pw->pw_gid == gid ? getgrgid(gid) : NULL;
    if (!gr || strcmp(gr->gr_name, pw->pw_name) != 0)
        return 0;
    for (char **m = gr->gr_mem; *m; m++)
        if (strcmp(*m, pw->pw_name) != 0)
            return 0;
    return 1;
}

/* gid is listed in MMFUSE_PLUGIN_TRUSTED_GROUPS, and the user belongs to it. */
static int trusted_group(gid_t gid)
{
    const char *env = getenv("MMFUSE_PLUGIN_TRUSTED_GROUPS");
    if (!env || !*env || !user_in_group(gid))
        return 0;
    struct group *gr = getgrgid(gid);
    char list[1024];
    snprintf(list, sizeof list, "%s", env);
    char *save = NULL;
    for (char *g = strtok_r(list, ", ", &save); g; g = strtok_r(NULL, ", ", &save)) {
        char *end;
        unsigned long id = strtoul(g, &end, 10);
        if (strcmp(g, "*") == 0 || (*g && !*end && id == gid) ||
            (gr && strcmp(g, gr->gr_name) == 0))
            return 1;
    }
    return 0;
}

static int member_of(uid_t uid, gid_t gid)
{
    struct passwd *pw = getpwuid(uid);
    if (!pw)
        return 0;
    if (pw->pw_gid == gid)
        return 1;
    struct group *gr = getgrgid(gid);
    for (char **m = gr ? gr->gr_mem : NULL; m && *m; m++)
        if (strcmp(*m, pw->pw_name) == 0)
            return 1;
    return 0;
}

/* What makes st unsafe, as a phrase in `what`, and the remedy in `fix`; 0 when safe. */
static int unsafe(const char *path, const struct stat *st, char *what, size_t wsize, char *fix,
                  size_t fsize)
{
    int sticky = S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
    unsigned mode = (unsigned)(st->st_mode & 07777);
    uid_t me = geteuid();
    int group_ok = (st->st_mode & S_IWGRP) || (st->st_uid != 0 && st->st_uid != me)
                       ? trusted_group(st->st_gid)
                       : 0;
    struct group *gr = NULL;
    if (st->st_uid != 0 && st->st_uid != me && !(group_ok && member_of(st->st_uid, st->st_gid))) {
        struct passwd *pw = getpwuid(st->st_uid);
        snprintf(what, wsize, "owned by %s%s%s(uid %u), not by you or root",
                 pw ? "user '" : "", pw ? pw->pw_name : "", pw ? "' " : "", (unsigned)st->st_uid);
        snprintf(fix, fsize, "only its owner could make it safe: copy what you trust into a "
                 "folder of your own");
        return 1;
    }
    if ((st->st_mode & S_IWOTH) && !sticky) {
        snprintf(what, wsize, "writable by other users (mode %04o)", mode);
        snprintf(fix, fsize, "chmod go-w '%s'", path);
        return 1;
    }
    if ((st->st_mode & S_IWGRP) && !sticky && !group_ok && !private_group(st->st_gid)) {
        char name[64];
        if ((gr = getgrgid(st->st_gid)))
            snprintf(name, sizeof name, "%s", gr->gr_name);
        else
            snprintf(name, sizeof name, "%u", (unsigned)st->st_gid);
        snprintf(what, wsize, "writable by the group '%s' (mode %04o)", name, mode);
        snprintf(fix, fsize, "chmod g-w '%s', or to share plugins in a lab folder trust the "
                 "group: MMFUSE_PLUGIN_TRUSTED_GROUPS=%s", path, name);
        return 1;
    }
    return 0;
}

/* The folders from `real` (a resolved path) up to "/", the first unsafe one reported
 * through fmt's two parts: before and after "'<folder>' above it is <what> (<fix>)". */
static int check_above(const char *real, int include_self, const char *lead, const char *tail,
                       char *why, size_t size)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", real);
    for (int self = 1;; self = 0) {
        struct stat st;
        char what[256], fix[PATH_MAX + 160];
        const char *at = *p ? p : "/";
        if ((include_self || !self) && stat(at, &st) == 0 &&
            unsafe(at, &st, what, sizeof what, fix, sizeof fix)) {
            snprintf(why, size, "%s'%s' above it is %s, so others could replace what it holds; "
                     "%s (%s)", lead, at, what, tail, fix);
            return -1;
        }
        char *slash = strrchr(p, '/');
        if (!slash || !*p)
            return 0;
        *slash = '\0';
    }
}

int mfi_trust_dir(const char *dir, char *why, size_t size)
{
    struct stat st;
    char what[256], fix[PATH_MAX + 160], real[PATH_MAX], lead[PATH_MAX + 32];
    if (stat(dir, &st) != 0)
        return 0; /* a missing folder is reported by whoever opens it */
    if (unsafe(dir, &st, what, sizeof what, fix, sizeof fix)) {
        snprintf(why, size, "plugin folder '%s' is %s; refusing to load plugins from it (%s)",
                 dir, what, fix);
        return -1;
    }
    if (!realpath(dir, real))
        return 0;
    snprintf(lead, sizeof lead, "plugin folder '%s': ", dir);
    return check_above(real, 0, lead, "refusing to load plugins from it", why, size);
}

int mfi_trust_file(const char *file, int check_folders, char *why, size_t size)
{
    struct stat st, lst;
    char what[256], fix[PATH_MAX + 160], real[PATH_MAX], lead[PATH_MAX + 8];
    if (stat(file, &st) != 0)
        return 0; /* reported by the loader */
    if (unsafe(file, &st, what, sizeof what, fix, sizeof fix)) {
        snprintf(why, size, "%s: %s; refusing to load code from it (%s)", file, what, fix);
        return -1;
    }
    /* a link leads out of the folder that was checked: check where it leads */
    if (!check_folders && !(lstat(file, &lst) == 0 && S_ISLNK(lst.st_mode)))
        return 0;
    if (!realpath(file, real))
        return 0;
    char *slash = strrchr(real, '/');
    if (slash)
        *slash = '\0';
    snprintf(lead, sizeof lead, "%s: ", file);
    return check_above(real, 1, lead, "refusing to load code from it", why, size);
}
