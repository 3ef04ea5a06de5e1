#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../data/assemble.h"
#include "rundir.h"

/* A run folder appears complete or not at all: it is made as a hidden folder beside its
 * target (.stage-XXXXXX), config.yaml and manifest.json go in, then mfi_run_dir_publish
 * renames it into place. A kill in between leaves only the hidden folder, never a visible
 * run folder without its config (which could not be resumed). */
int mfi_run_dir_create(mfi_run_dir *rd, const char *explicit_dir, const char *root,
                       const char *name, mf_error *err)
{
    memset(rd, 0, sizeof *rd);
    char parent[sizeof rd->parent];
    if (explicit_dir && strlen(explicit_dir) >= sizeof rd->target) {
        mf_error_set(err, "the run folder's path is longer than %zu characters", sizeof rd->target);
        return -1;
    }
    if (explicit_dir) {
        snprintf(rd->target, sizeof rd->target, "%s", explicit_dir);
        char *copy = strdup(explicit_dir);
        snprintf(parent, sizeof parent, "%s", copy ? dirname(copy) : ".");
        free(copy);
    } else {
        time_t t = time(NULL);
        strftime(rd->target, sizeof rd->target, "%Y%m%d-%H%M%S", localtime(&t));
        rd->stamped = 1;
        snprintf(parent, sizeof parent, "%s/%s", root, name);
    }
    if (mf_make_dirs(parent, err))
        return -1;
    snprintf(rd->parent, sizeof rd->parent, "%s", parent);
    snprintf(rd->path, sizeof rd->path, "%s/.stage-XXXXXX", parent);
    if (!mkdtemp(rd->path)) {
        mf_error_set(err, "cannot create a run folder in '%s': %s", parent, strerror(errno));
        return -1;
    }
    chmod(rd->path, 0755); /* mkdtemp makes it private */
    rd->staged = 1;
    return 0;
}

/* An explicit folder that exists with files in it is used as is: the staged files move in. */
static int publish_into(mfi_run_dir *rd, mf_error *err)
{
    static const char *const files[] = {"config.yaml", "manifest.json"};
    for (int i = 0; i < 2; i++) {
        char from[4200], to[1100];
        snprintf(from, sizeof from, "%s/%s", rd->path, files[i]);
        snprintf(to, sizeof to, "%s/%s", rd->target, files[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            mf_error_set(err, "cannot write '%s': %s", to, strerror(errno));
            return -1;
        }
    }
    rmdir(rd->path);
    snprintf(rd->path, sizeof rd->path, "%s", rd->target);
    return 0;
}

int mfi_run_dir_publish(mfi_run_dir *rd, mf_error *err)
{
    if (!rd->staged)
        return 0;
    rd->staged = 0;
    char target[3200];
    const int stamped = rd->stamped;
    for (int n = 1; n < 1000; n++) {
        /* a stamped folder: the rename is the lock, two runs started in one second get
         * -2, -3, … (rename replaces only an empty folder) */
        if (!stamped)
            snprintf(target, sizeof target, "%s", rd->target);
        else if (n == 1)
            snprintf(target, sizeof target, "%s/%s", rd->parent, rd->target);
        else
            snprintf(target, sizeof target, "%s/%s-%d", rd->parent, rd->target, n);
        if (rename(rd->path, target) == 0) {
            snprintf(rd->path, sizeof rd->path, "%s", target);
            int dfd = open(rd->parent, O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) { /* the rename itself is durable once the folder is synced */
                fsync(dfd);
                close(dfd);
            }
            return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            break;
        if (!stamped)
            return publish_into(rd, err); /* rd->target is that folder */
    }
    mf_error_set(err, "cannot create the run folder '%s': %s", target, strerror(errno));
    return -1;
}

void mfi_run_dir_abandon(mfi_run_dir *rd, mf_error *err)
{
    if (!rd->staged)
        return;
    DIR *d = opendir(rd->path);
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dirfd(d), de->d_name, 0);
    if (d)
        closedir(d);
    rmdir(rd->path);
    rd->staged = 0;
    /* "runs/x/.stage-AbC123/config.yaml" → "runs/x/<stamp>/config.yaml" */
    char target[3200], *at;
    snprintf(target, sizeof target, "%s%s%s", rd->stamped ? rd->parent : "",
             rd->stamped ? "/" : "", rd->target);
    size_t len = strlen(rd->path);
    if (err && len && (at = strstr(err->msg, rd->path))) {
        char rest[MF_ERROR_CAPACITY];
        snprintf(rest, sizeof rest, "%s", at + len);
        snprintf(at, sizeof err->msg - (size_t)(at - err->msg), "%s%s", target, rest);
    }
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
    /* every value or none: JSON has no NaN, and jansson refuses one by returning NULL, which
     * an append would drop, shifting every later feature's figures onto the wrong one */
    json_t *j = json_object();
    int bad = !j;
    for (int k = 0; !bad && k < n; k++) {
        if (!inputs[k].mean)
            continue;
        json_t *mean = json_array(), *std = json_array();
        bad = !mean || !std;
        for (int64_t i = 0; !bad && i < mf_shape_numel(&inputs[k].shape); i++) {
            const double m = inputs[k].mean[i], sd = 1.0 / inputs[k].inv_std[i];
            if (!isfinite(m) || !isfinite(sd)) {
                mf_error_set(err, "standardization.json: feature %lld of '%s' has a non-finite "
                             "%s (%g)", (long long)i, inputs[k].name, isfinite(m) ? "std" : "mean",
                             isfinite(m) ? sd : m);
                json_decref(mean);
                json_decref(std);
                json_decref(j);
                return -1;
            }
            bad = json_array_append_new(mean, json_real(m)) || json_array_append_new(std, json_real(sd));
        }
        json_t *pair = bad ? NULL : json_object();
        if (!pair) {
            json_decref(mean);
            json_decref(std);
            bad = 1;
        } else { /* each set_new takes its value, even when it fails */
            bad = (json_object_set_new(pair, "mean", mean) | json_object_set_new(pair, "std", std) |
                   json_object_set_new(j, inputs[k].name, pair)) != 0;
        }
    }
    char *text = bad ? NULL : json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
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

/* ---------------------------------------------------------------- events.jsonl */
static void iso_now_ms(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
    snprintf(out + n, size - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

int mfi_run_dir_event(mfi_run_dir *rd, const char *event, json_t *fields, mf_error *err)
{
    char path[4200], now[40];
    file_in(rd, "events.jsonl", path, sizeof path);
    iso_now_ms(now, sizeof now);
    json_t *j = json_pack("{s:s, s:s}", "time", now, "event", event);
    if (j && fields)
        json_object_update(j, fields); /* fields after time and event, as given */
    json_decref(fields);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!line) {
        mf_error_set(err, "%s: out of memory for the '%s' event", path, event);
        return -1;
    }
    size_t len = strlen(line);
    line[len] = '\n'; /* the NUL becomes the line's end */
    /* one write of the whole line: readers (and a resumed run) never see half an event */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    off_t start = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    size_t done = 0;
    ssize_t n = fd >= 0 ? 0 : -1;
    while (n >= 0 && done < len + 1 && (n = write(fd, line + done, len + 1 - done)) > 0)
        done += (size_t)n; /* a short write: the rest, whose failure says why */
    int saved = n < 0 ? errno : n == 0 ? ENOSPC : 0;
    /* half an event is worse than none: the line goes, or stays whole */
    if (fd >= 0 && done < len + 1 && start >= 0 && ftruncate(fd, start) != 0)
        saved = saved ? saved : errno;
    free(line);
    if (fd >= 0 && close(fd) != 0 && !saved)
        saved = errno;
    if (saved || done < len + 1) {
        mf_error_set(err, "cannot append to '%s': %s", path, strerror(saved ? saved : EIO));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- resume */
/* The whole file, NUL-terminated; *text NULL (and 0) when it does not exist. */
static int read_all(const char *path, char **text, size_t *len, mf_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        mf_error_set(err, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    char *buf = NULL;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            char *grown = realloc(buf, cap = (cap + 4096) * 2);
            if (!grown) {
                free(buf);
                fclose(f);
                mf_error_set(err, "cannot read '%s': out of memory", path);
                return -1;
            }
            buf = grown;
        }
        size_t n = fread(buf + *len, 1, cap - *len - 1, f);
        *len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        mf_error_set(err, "cannot read '%s': read error", path);
        return -1;
    }
    buf[*len] = '\0';
    *text = buf;
    return 0;
}

/* Index of column `name` in a CSV header line of `len` bytes, or -1. */
static int csv_column(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    int col = 0;
    for (const char *p = line, *end = line + len; p <= end; col++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if ((size_t)(stop - p) == n && memcmp(p, name, n) == 0)
            return col;
        if (!comma)
            break;
        p = comma + 1;
    }
    return -1;
}

/* Field `col` of a CSV line as an integer; 0 when it is one. */
static int csv_int(const char *line, size_t len, int col, int64_t *out)
{
    const char *p = line, *end = line + len;
    for (int c = 0; c < col; c++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (!comma)
            return -1;
        p = comma + 1;
    }
    char field[32];
    const char *comma = memchr(p, ',', (size_t)(end - p));
    size_t n = (size_t)((comma ? comma : end) - p);
    if (n == 0 || n >= sizeof field)
        return -1;
    memcpy(field, p, n);
    field[n] = '\0';
    char *stop;
    errno = 0;
    long long v = strtoll(field, &stop, 10);
    if (*stop || errno)
        return -1;
    *out = v;
    return 0;
}

/* metrics.csv: the header and the rows of steps <= last_step, into rd->metrics. */
static int reopen_metrics(mfi_run_dir *rd, int64_t last_step, int *dropped, mf_error *err)
{
    char path[4200];
    file_in(rd, "metrics.csv", path, sizeof path);
    char *text;
    size_t len;
    if (read_all(path, &text, &len, err))
        return -1;
    if (!text)
        return 0;
    int col = -1;
    size_t kept = 0;
    for (char *line = text, *nl; (nl = memchr(line, '\n', (size_t)(text + len - line))); line = nl + 1) {
        size_t n = (size_t)(nl - line);
        int64_t step;
        int keep = line == text; /* the header */
        if (keep && (col = csv_column(line, n, "step")) < 0) {
            mf_error_set(err, "%s: the header has no step column; this run cannot be resumed",
                         path);
            free(text);
            return -1;
        }
        if (!keep)
            keep = csv_int(line, n, col, &step) == 0 && step <= last_step;
        if (keep) {
            memmove(text + kept, line, n + 1);
            kept += n + 1;
        } else {
            (*dropped)++;
        }
    }
    rd->metrics = text;
    rd->len = kept;
    rd->cap = len + 1;
    text[kept] = '\0';
    return mf_write_file_atomic(path, text, kept, err);
}

/* events.jsonl: the whole lines that parse, without a "step" or with one <= last_step. */
static int reopen_events(mfi_run_dir *rd, int64_t last_step, int *dropped, mf_error *err)
{
    char path[4200];
    file_in(rd, "events.jsonl", path, sizeof path);
    char *text;
    size_t len, kept = 0;
    if (read_all(path, &text, &len, err))
        return -1;
    if (!text)
        return 0;
    char *line = text;
    for (char *nl; (nl = memchr(line, '\n', (size_t)(text + len - line))); line = nl + 1) {
        size_t n = (size_t)(nl - line);
        json_t *j = json_loadb(line, n, 0, NULL), *step = json_object_get(j, "step");
        int keep = json_is_object(j) && (!step || (json_is_integer(step) &&
                                                   json_integer_value(step) <= last_step));
        json_decref(j);
        if (keep) {
            memmove(text + kept, line, n + 1);
            kept += n + 1;
        } else {
            (*dropped)++;
        }
    }
    *dropped += line < text + len; /* a torn last line */
    int rc = mf_write_file_atomic(path, text, kept, err);
    free(text);
    return rc;
}

int mfi_run_dir_reopen(mfi_run_dir *rd, const char *path, int64_t last_step, mf_error *err)
{
    memset(rd, 0, sizeof *rd);
    struct stat st;
    char config[4200];
    snprintf(rd->path, sizeof rd->path, "%s", path);
    file_in(rd, "config.yaml", config, sizeof config);
    if (stat(path, &st) != 0) {
        mf_error_set(err, "cannot open the run folder '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        mf_error_set(err, "'%s' is not a run folder: it is not a folder", path);
        return -1;
    }
    if (stat(config, &st) != 0) {
        mf_error_set(err, "'%s' is not a run folder: it has no config.yaml", path);
        return -1;
    }
    int rows = 0, events = 0;
    if (reopen_metrics(rd, last_step, &rows, err) || reopen_events(rd, last_step, &events, err)) {
        mfi_run_dir_free(rd);
        return -1;
    }
    json_t *fields = json_pack("{s:I, s:i, s:i}", "step", (json_int_t)last_step,
                               "dropped_rows", rows, "dropped_events", events);
    return mfi_run_dir_event(rd, "resume", fields, err);
}

void mfi_run_dir_free(mfi_run_dir *rd)
{
    free(rd->metrics);
    rd->metrics = NULL;
}
