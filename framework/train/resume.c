/* Resuming a run: finding its folder (or the experiment's latest), checking that it is a run
 * that can continue, and reopening it at its last checkpoint. Nothing in the folder changes
 * until everything has been checked. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <mmfuse/config.h>

#include "experiment_internal.h"

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* "20261201-101500-2" after "20261201-101500" and "…-10" after "…-9". */
static int stamp_after(const char *a, const char *b)
{
    const int c = strncmp(a, b, 15);
    if (c)
        return c > 0;
    const long na = strlen(a) > 16 ? strtol(a + 16, NULL, 10) : 1;
    const long nb = strlen(b) > 16 ? strtol(b + 16, NULL, 10) : 1;
    return na > nb;
}

/* The newest run folder of the experiment `file` names: <runs>/<name>/<stamp>. */
static int latest(const char *file, char *dir, size_t size, mf_error *err)
{
    mf_config *cfg = mf_config_load(file, err);
    if (!cfg)
        return -1;
    const char *runs = "runs", *name = "experiment";
    mf_config_string(cfg, "runs", &runs, NULL);
    mf_config_string(cfg, "name", &name, NULL);
    char parent[4096], best[256] = "";
    snprintf(parent, sizeof parent, "%s/%s", runs, name);
    DIR *d = opendir(parent);
    for (struct dirent *de; d && (de = readdir(d));) {
        char config[4400];
        snprintf(config, sizeof config, "%s/%s/config.yaml", parent, de->d_name);
        if (de->d_name[0] != '.' && strlen(de->d_name) < sizeof best && exists(config) &&
            (!*best || stamp_after(de->d_name, best)))
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    if (d)
        closedir(d);
    if (!*best) {
        mf_error_set(err, "%s: --resume latest: no run of experiment '%s' in %s/ to resume",
                     file, name, parent);
        mf_config_free(cfg);
        return -1;
    }
    snprintf(dir, size, "%s/%s", parent, best);
    mf_config_free(cfg);
    return 0;
}

int mfi_resume_locate(const char *file, const char *which, char *dir, size_t size, FILE *log,
                      mf_error *err)
{
    if (strcmp(which, "latest") == 0) {
        if (!file) {
            mf_error_set(err, "--resume latest needs the experiment file, to know which runs");
            return -1;
        }
        if (latest(file, dir, size, err))
            return -1;
    } else {
        snprintf(dir, size, "%s", which);
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!exists(dir)) {
        mf_error_set(err, "%s: cannot resume: %s", dir, strerror(errno));
        return -1;
    }
    if (!exists(path)) {
        mf_error_set(err, "%s: not a run folder (it has no config.yaml), so nothing to resume", dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/result.json", dir);
    json_t *result = exists(path) ? json_load_file(path, 0, NULL) : NULL;
    const char *status = json_string_value(json_object_get(result, "status"));
    int rc = 0;
    if (status && strcmp(status, "done") == 0) {
        fprintf(log, "%s: the run finished already (result.json); nothing to resume\n", dir);
        rc = 1;
    } else if (status && strcmp(status, "diverged") == 0) {
        mf_error_set(err, "%s: the run diverged; resuming it would diverge again at the same step "
                     "(start a new run with --init-from %s/checkpoints/last.h5 and other "
                     "settings)", dir, dir);
        rc = -1;
    }
    json_decref(result);
    return rc;
}

int mfi_resume_load(experiment *e, const char *dir, mf_error *err)
{
    char *last = e->resume_buf;
    snprintf(last, sizeof e->resume_buf, "%s/checkpoints/last.h5", dir);
    mfi_train_position *pos = &e->resume_pos;
    if (exists(last)) {
        /* everything checked (model, optimiser, selection) before the folder changes; what
         * it loads (parameters, optimiser state, RNG, position) is where training resumes */
        if (mfi_checkpoint_load(e, last, MFI_CKPT_PARAMS | MFI_CKPT_TRAINING | MFI_CKPT_SAME_RUN,
                                NULL, pos, err))
            return -1;
        e->resume_from = last;
    } else if (!e->quiet) {
        fprintf(e->log, "%s: no checkpoint yet: the run starts again from its beginning\n", dir);
    }
    return 0;
}

int mfi_resume_open(experiment *e, mfi_run_dir *run, const char *dir, mf_error *err)
{
    return mfi_resume_load(e, dir, err) ||
                   mfi_run_dir_reopen(run, dir, e->resume_from ? e->resume_pos.step : 0, err)
               ? -1 : 0;
}
