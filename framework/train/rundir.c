#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "../data/assemble.h"
#include "rundir.h"

int mfi_run_dir_create(mfi_run_dir *rd, const char *explicit_dir, const char *root,
                       const char *name, mf_error *err)
{
    memset(rd, 0, sizeof *rd);
    if (explicit_dir) {
        snprintf(rd->path, sizeof rd->path, "%s", explicit_dir);
        if (mf_make_dirs(rd->path, err))
            return -1;
        return 0;
    }
    char stamp[32];
    time_t t = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&t));
    char parent[4000];
    snprintf(parent, sizeof parent, "%s/%s", root, name);
    if (mf_make_dirs(parent, err))
        return -1;
    /* mkdir is the lock: two runs started in one second get -2, -3, … */
    for (int n = 1; n < 1000; n++) {
        if (n == 1)
            snprintf(rd->path, sizeof rd->path, "%s/%s", parent, stamp);
        else
            snprintf(rd->path, sizeof rd->path, "%s/%s-%d", parent, stamp, n);
        if (mkdir(rd->path, 0755) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    mf_error_set(err, "cannot create the run folder '%s': %s", rd->path, strerror(errno));
    return -1;
}

static void file_in(const mfi_run_dir *rd, const char *file, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", rd->path, file);
}

int mfi_run_dir_write_config(mfi_run_dir *rd, const mf_config *cfg, mf_error *err)
{
    char path[4200];
    file_in(rd, "config.yaml", path, sizeof path);
    return mf_config_write(cfg, path, err);
}

int mfi_run_dir_epoch(mfi_run_dir *rd, const char *header, const char *line, mf_error *err)
{
    char row[8192];
    int n = snprintf(row, sizeof row, "%s%s%s\n", rd->len ? "" : header, rd->len ? "" : "\n", line);
    if (n >= (int)sizeof row) {
        mf_error_set(err, "metrics.csv: a row of %d characters is too long", n);
        return -1;
    }
    if (rd->len + (size_t)n + 1 > rd->cap) {
        size_t cap = (rd->cap + (size_t)n + 1) * 2;
        char *m = realloc(rd->metrics, cap);
        if (!m) {
            mf_error_set(err, "out of memory for metrics");
            return -1;
        }
        rd->metrics = m;
        rd->cap = cap;
    }
    memcpy(rd->metrics + rd->len, row, (size_t)n + 1);
    rd->len += (size_t)n;
    char path[4200];
    file_in(rd, "metrics.csv", path, sizeof path);
    return mf_write_file_atomic(path, rd->metrics, rd->len, err);
}

/* NaN and infinities are not JSON: null. */
static json_t *number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

int mfi_run_dir_result(mfi_run_dir *rd, const char *status, const mf_run_result *res,
                       int64_t seed, int best_epoch, const char *message, json_t *details,
                       mf_error *err)
{
    json_t *j = json_object();
    if (details)
        json_object_update(j, details);
    json_object_set_new(j, "status", json_string(status));
    json_object_set_new(j, "test_accuracy", number(res->test_accuracy));
    json_object_set_new(j, "best_val_accuracy", number(res->best_val_accuracy));
    json_object_set_new(j, "best_epoch", json_integer(best_epoch));
    json_object_set_new(j, "epochs", json_integer(res->epochs_run));
    json_object_set_new(j, "final_train_loss", number(res->final_train_loss));
    json_object_set_new(j, "seconds", number(res->seconds));
    json_object_set_new(j, "seed", json_integer(seed));
    if (res->select[0]) {
        json_object_set_new(j, "select", json_string(res->select));
        json_object_set_new(j, "best_val_metric", number(res->best_val_metric));
        json_object_set_new(j, "test_metric", number(res->test_metric));
        json_object_set_new(j, "select_higher_is_better",
                            json_boolean(res->select_higher_is_better));
    }
    json_t *test = json_object();
    for (int i = 0; i < res->n_test_metrics; i++)
        json_object_set_new(test, res->test_metric_names[i], number(res->test_metrics[i]));
    json_object_set_new(j, "test", test);
    json_t *val = json_object();
    for (int i = 0; i < res->n_val_metrics && i < res->n_test_metrics; i++)
        json_object_set_new(val, res->test_metric_names[i], number(res->val_metrics[i]));
    json_object_set_new(j, "val", val);
    json_object_set_new(j, "mmfuse", json_string(MF_VERSION_STRING));
    if (message && *message)
        json_object_set_new(j, "message", json_string(message));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) {
        mf_error_set(err, "out of memory for result.json");
        return -1;
    }
    char path[4200];
    file_in(rd, "result.json", path, sizeof path);
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the final newline */
    int rc = mf_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

int mfi_run_dir_standardization(mfi_run_dir *rd, const mfi_input *inputs, int n, mf_error *err)
{
    json_t *j = json_object();
    for (int k = 0; k < n; k++) {
        if (!inputs[k].mean)
            continue;
        json_t *mean = json_array(), *std = json_array();
        for (int64_t i = 0; i < mf_shape_numel(&inputs[k].shape); i++) {
            json_array_append_new(mean, json_real(inputs[k].mean[i]));
            json_array_append_new(std, json_real(1.0 / inputs[k].inv_std[i]));
        }
        json_object_set_new(j, inputs[k].name, json_pack("{s:o, s:o}", "mean", mean, "std", std));
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) {
        mf_error_set(err, "out of memory for standardization.json");
        return -1;
    }
    char path[4200];
    file_in(rd, "standardization.json", path, sizeof path);
    int rc = mf_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

void mfi_run_dir_free(mfi_run_dir *rd)
{
    free(rd->metrics);
    rd->metrics = NULL;
}
