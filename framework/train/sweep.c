/* mmfuse sweep: run an experiment's `sweep:` grid, one process per point, and summarise it.
 *
 *   <runs>/<name>/sweep/            the sweep's folder (stable, so a re-run resumes)
 *       sweep.json                  the resolved grid: keys, values, points, their folders
 *       <point>/                    a run folder (config.yaml, metrics.csv, result.json)
 *           point.yaml              what the point was asked to run (to spot edited files)
 *           log.txt                 the point's stdout and stderr
 *       summary.md, summary.csv     mean ± std over seeds per configuration, ranked on val
 *
 * Points run as separate processes (`mmfuse run FILE -q --run-dir DIR -o …`): a crash or a
 * divergence stays in its point, memory is returned, and each point is exactly what
 * `mmfuse run` would do by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <mmfuse/host.h>

/* mfi_config_copy, and mfi_config_is_quoted so that "1" stays a string and 1 a number when
 * a value travels as override text */
#include "rundir.h"
#include "report.h"
#include "text.h"

extern char **environ;

#define MAX_POINTS 10000   /* a bigger grid is surely a typo */
#define MAX_BAD_REPORTED 10
#define SLUG_MAX 40
#define FILE_PATH_MAX 4608 /* a point folder (4400) and a file name */

/* ---------------------------------------------------------------- values as YAML flow text */
static int plain_safe(const char *t)
{
    if (!*t)
        return 0;
    for (const char *p = t; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-/", *p))
            return 0;
    return 1;
}

static void render_quoted(mfi_text *b, const char *t)
{
    mfi_text_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if (*p == '"' || *p == '\\')
            mfi_text_printf(b, "\\%c", *p);
        else if (*p == '\n')
            mfi_text_puts(b, "\\n");
        else if (*p == '\t')
            mfi_text_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            mfi_text_printf(b, "\\x%02x", *p);
        else
            mfi_text_add(b, (const char *)p, 1);
    }
    mfi_text_puts(b, "\"");
}

/* A value as one line of YAML that reads back the same (what `-o key=VALUE` takes):
 * plain words and numbers as written, quoted strings quoted, lists [a, b], maps {k: v}. */
static void render(mfi_text *b, const mf_config *n)
{
    switch (mf_config_node_kind(n)) {
    case MF_CONFIG_SCALAR:
        if (mf_config_is_quoted(n))
            render_quoted(b, mf_config_scalar(n));
        else if (mf_config_is_null(n))
            mfi_text_puts(b, "null");
        else if (plain_safe(mf_config_scalar(n)))
            mfi_text_puts(b, mf_config_scalar(n));
        else /* plain text with flow indicators (", :" …): a string, so quoting keeps it */
            render_quoted(b, mf_config_scalar(n));
        break;
    case MF_CONFIG_LIST:
        mfi_text_puts(b, "[");
        for (int i = 0; i < mf_config_length(n); i++) {
            if (i)
                mfi_text_puts(b, ", ");
            render(b, mf_config_at(n, i));
        }
        mfi_text_puts(b, "]");
        break;
    case MF_CONFIG_MAP:
        mfi_text_puts(b, "{");
        for (int i = 0; i < mf_config_length(n); i++) {
            if (i)
                mfi_text_puts(b, ", ");
            if (plain_safe(mf_config_key_at(n, i)))
                mfi_text_puts(b, mf_config_key_at(n, i));
            else
                render_quoted(b, mf_config_key_at(n, i));
            mfi_text_puts(b, ": ");
            render(b, mf_config_at(n, i));
        }
        mfi_text_puts(b, "}");
        break;
    }
}

/* The words of a value for a folder name: scalars as written, a map's values without its
 * keys ({type: mlp, hidden: [64]} → "mlp 64"), separated by spaces. */
static void slug_words(mfi_text *b, const mf_config *n)
{
    if (mf_config_node_kind(n) == MF_CONFIG_SCALAR) {
        mfi_text_printf(b, " %s", mf_config_is_null(n) ? "null" : mf_config_scalar(n));
        return;
    }
    for (int i = 0; i < mf_config_length(n); i++)
        slug_words(b, mf_config_at(n, i));
}

/* A folder-name piece: [A-Za-z0-9.+-] kept, other runs become one '_', at most SLUG_MAX. */
static void slugify(const mf_config *value, const char *prefix, char *out, size_t size)
{
    mfi_text words = {0};
    slug_words(&words, value);
    const char *text = words.s && !words.oom ? words.s : "";
    size_t n = (size_t)snprintf(out, size, "%s", prefix), start = n;
    int gap = 0;
    for (const char *p = text; *p && n + 2 < size && n < start + SLUG_MAX; p++) {
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-", *p)) {
            if (gap && n > start)
                out[n++] = '_';
            out[n++] = *p;
            gap = 0;
        } else {
            gap = 1;
        }
    }
    out[n] = '\0';
    free(words.s);
    if (n == start)
        snprintf(out + n, size - n, "x");
    if (out[0] == '.') /* no hidden folders, no ".." */
        out[0] = '_';
}

/* ---------------------------------------------------------------- the grid */
typedef struct sweep_key {
    char *path;              /* "model.fusion.type" */
    int n;
    char **text;             /* each value as flow YAML */
    char **slug;
    int is_seed;
} sweep_key;

enum { POINT_PENDING, POINT_SKIPPED, POINT_RUNNING, POINT_DONE, POINT_FAILED };

typedef struct sweep_point {
    int *choice;             /* value index per key */
    char **assign;           /* "key=value" per key */
    char *label;             /* "key=value, key=value" */
    char name[256];          /* folder name inside the sweep folder */
    char dir[4400];          /* <sweep folder>/<name> */
    int config;              /* configuration (all keys but seed) index */
    int state;
    pid_t pid;
    double val, test, epochs, seconds;
} sweep_point;

typedef struct sweep {
    const char *path;
    const mf_sweep_options *opts;
    FILE *log;
    mf_config *cfg;          /* the file with the global overrides */
    sweep_key *keys;
    int n_keys, n_points, n_configs, n_seeds;
    sweep_point *points;
    char dir[4096];
    char **envp;
} sweep;

/* Collect key paths under the sweep map: a nested map continues the path (files may not
 * put '.' in a key), so {model: {fusion: {type: [...]}}} and -o sweep.model.fusion.type=[...]
 * both sweep model.fusion.type; a list is the values; anything else is an error. */
static int collect_keys(sweep *sw, const mf_config *map, const char *prefix, mf_error *err)
{
    int problems = 0;
    for (int i = 0; i < mf_config_length(map); i++) {
        const mf_config *v = mf_config_at(map, i);
        char path[1024];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", mf_config_key_at(map, i));
        if (mf_config_node_kind(v) == MF_CONFIG_MAP && mf_config_length(v) > 0) {
            problems += collect_keys(sw, v, path, err);
            continue;
        }
        if (mf_config_node_kind(v) != MF_CONFIG_LIST || mf_config_length(v) == 0) {
            mf_config_error(err, v, "expected a non-empty list of values");
            problems++;
            continue;
        }
        int dup = 0;
        for (int k = 0; k < sw->n_keys; k++)
            dup |= strcmp(sw->keys[k].path, path) == 0;
        if (dup) {
            mf_config_error(err, v, "'%s' is swept twice", path);
            problems++;
            continue;
        }
        sweep_key *keys = realloc(sw->keys, (size_t)(sw->n_keys + 1) * sizeof *keys);
        if (!keys) {
            mf_error_set(err, "out of memory");
            return problems + 1;
        }
        sw->keys = keys;
        sweep_key *k = &sw->keys[sw->n_keys++];
        memset(k, 0, sizeof *k);
        k->path = strdup(path);
        k->n = mf_config_length(v);
        k->is_seed = strcmp(path, "seed") == 0;
        k->text = calloc((size_t)k->n, sizeof *k->text);
        k->slug = calloc((size_t)k->n, sizeof *k->slug);
        if (!k->path || !k->text || !k->slug) {
            mf_error_set(err, "out of memory");
            return problems + 1;
        }
        for (int j = 0; j < k->n; j++) {
            mfi_text b = {0};
            render(&b, mf_config_at(v, j));
            char slug[SLUG_MAX + 8];
            k->text[j] = mfi_text_take(&b);
            if (!k->text[j]) {
                mf_error_set(err, "out of memory");
                return problems + 1;
            }
            slugify(mf_config_at(v, j), k->is_seed ? "s" : "", slug, sizeof slug);
            if (!(k->slug[j] = strdup(slug))) {
                mf_error_set(err, "out of memory");
                return problems + 1;
            }
        }
    }
    return problems;
}

static int make_points(sweep *sw, mf_error *err)
{
    double total = 1;
    for (int k = 0; k < sw->n_keys; k++)
        total *= sw->keys[k].n;
    if (total > MAX_POINTS) {
        mf_error_set(err, "%s: sweep: the grid has %.0f points, more than the %d allowed", sw->path,
                     total, MAX_POINTS);
        return -1;
    }
    sw->n_points = (int)total;
    sw->n_configs = 1;
    sw->n_seeds = 1;
    for (int k = 0; k < sw->n_keys; k++)
        *(sw->keys[k].is_seed ? &sw->n_seeds : &sw->n_configs) *= sw->keys[k].n;
    sw->points = calloc((size_t)sw->n_points, sizeof *sw->points);
    if (!sw->points)
        goto oom;
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        p->choice = calloc((size_t)sw->n_keys + 1, sizeof *p->choice);
        p->assign = calloc((size_t)sw->n_keys + 1, sizeof *p->assign);
        if (!p->choice || !p->assign)
            goto oom;
        /* the last key varies fastest */
        int rest = i;
        for (int k = sw->n_keys - 1; k >= 0; k--) {
            p->choice[k] = rest % sw->keys[k].n;
            rest /= sw->keys[k].n;
        }
        mfi_text label = {0}, name = {0};
        for (int k = 0; k < sw->n_keys; k++) {
            const sweep_key *key = &sw->keys[k];
            mfi_text a = {0};
            mfi_text_printf(&a, "%s=%s", key->path, key->text[p->choice[k]]);
            if (!(p->assign[k] = mfi_text_take(&a)))
                goto oom;
            mfi_text_printf(&label, "%s%s", k ? ", " : "", p->assign[k]);
            mfi_text_printf(&name, "%s%s", k ? "-" : "", key->slug[p->choice[k]]);
            if (!key->is_seed)
                p->config = p->config * key->n + p->choice[k];
        }
        if (!(p->label = mfi_text_take(&label))) {
            free(name.s);
            goto oom;
        }
        char *n = mfi_text_take(&name);
        if (!n)
            goto oom;
        snprintf(p->name, 200, "%s", n);
        free(n);
        /* made unique in grid order, so the same grid always gets the same names */
        size_t base = strlen(p->name);
        for (int suffix = 2;; suffix++) {
            int clash = 0;
            for (int j = 0; j < i && !clash; j++)
                clash = strcmp(sw->points[j].name, p->name) == 0;
            if (!clash)
                break;
            snprintf(p->name + base, sizeof p->name - base, "-%d", suffix);
        }
    }
    return 0;
oom:
    mf_error_set(err, "out of memory for the grid");
    return -1;
}

/* The overrides of point p as mf_experiment_run / `mmfuse run` take them: the global
 * ones, sweep={} (so the point's config.yaml is one plain experiment), the point's. */
static const char **point_overrides(const sweep *sw, const sweep_point *p, int *n)
{
    const char **o = calloc((size_t)(sw->opts->n_overrides + sw->n_keys + 2), sizeof *o);
    if (!o)
        return NULL;
    *n = 0;
    for (int i = 0; i < sw->opts->n_overrides; i++)
        o[(*n)++] = sw->opts->overrides[i];
    o[(*n)++] = "sweep={}";
    for (int k = 0; k < sw->n_keys; k++)
        o[(*n)++] = p->assign[k];
    o[*n] = NULL;
    return o;
}

/* The first line of a message. */
static void first_line(const char *msg, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* Every point checked as `mmfuse validate` would, before anything runs. A reason shared by
 * several points (one bad value crossed with every seed) is said once, with their numbers. */
static int validate_points(sweep *sw, mf_error *err)
{
    struct {
        char line[1024];
        int first;
        mfi_text also;
    } reason[MAX_BAD_REPORTED];
    int n_reasons = 0, bad = 0, unreported = 0;
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        int n;
        const char **o = point_overrides(sw, p, &n);
        if (!o) {
            mf_error_set(err, "out of memory");
            bad++;
            break;
        }
        mf_run_options ro = {.struct_size = sizeof ro, .n_overrides = n, .overrides = o,
                             .log = sw->log, .quiet = 1, .no_save = 1, .validate_only = 1};
        mf_error perr;
        mf_error_clear(&perr);
        int status = mf_experiment_run(sw->path, &ro, NULL, &perr);
        free(o);
        if (status == MF_EXIT_OK)
            continue;
        bad++;
        char line[1024];
        first_line(perr.msg[0] ? perr.msg : "invalid (no reason given)", line, sizeof line);
        int r = 0;
        while (r < n_reasons && strcmp(reason[r].line, line) != 0)
            r++;
        if (r < n_reasons) {
            mfi_text_printf(&reason[r].also, "%s%d", reason[r].also.len ? ", " : "", i + 1);
        } else if (n_reasons < MAX_BAD_REPORTED) {
            snprintf(reason[n_reasons].line, sizeof reason[n_reasons].line, "%s", line);
            reason[n_reasons].first = i;
            memset(&reason[n_reasons].also, 0, sizeof reason[n_reasons].also);
            n_reasons++;
        } else {
            unreported++;
        }
    }
    for (int r = 0; r < n_reasons; r++) {
        mf_error_set(err, "point %d (%s): %s", reason[r].first + 1,
                     sw->points[reason[r].first].label, reason[r].line);
        if (reason[r].also.len && !reason[r].also.oom)
            mf_error_set(err, "  the same for point%s %s",
                         strchr(reason[r].also.s, ',') ? "s" : "", reason[r].also.s);
        free(reason[r].also.s);
    }
    if (unreported)
        mf_error_set(err, "… and %d more bad point%s", unreported, unreported == 1 ? "" : "s");
    if (bad)
        mf_error_set(err, "%s: %d of %d points are bad; nothing was run", sw->path, bad,
                     sw->n_points);
    return bad ? -1 : 0;
}

/* ---------------------------------------------------------------- files */
/* The point's experiment as YAML (without defaults): what it was asked to run. */
static char *point_yaml(const sweep *sw, const sweep_point *p, const char *file, int keep)
{
    mf_config *c = mf_config_copy(sw->cfg);
    int ok = c != NULL;
    ok = ok && mf_config_override(c, "sweep={}", NULL) == 0;
    for (int k = 0; ok && k < sw->n_keys; k++)
        ok = mf_config_override(c, p->assign[k], NULL) == 0;
    ok = ok && mf_config_write(c, file, NULL) == 0;
    mf_config_free(c);
    char *text = ok ? mfi_text_read_file(file) : NULL;
    if (!keep)
        unlink(file);
    return text;
}

static double number(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The metric the points were selected on, and its direction (the last point read says). */
static char ranked_metric[64] = "accuracy";
static int ranked_higher = 1;

/* 1 when the point's result.json says done (its numbers read into p), else 0. */
static int read_result(sweep_point *p)
{
    char path[FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/result.json", p->dir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *status = json_string_value(json_object_get(j, "status"));
    int done = status && strcmp(status, "done") == 0;
    if (done) {
        /* ranked on the metric the runs were selected on (train.select) */
        const char *select = json_string_value(json_object_get(j, "select"));
        if (select && strncmp(select, "val.", 4) == 0) {
            snprintf(ranked_metric, sizeof ranked_metric, "%s", select + 4);
            ranked_higher = json_is_true(json_object_get(j, "select_higher_is_better"));
            p->val = number(j, "best_val_metric");
            p->test = number(j, "test_metric");
        } else {
            p->val = number(j, "best_val_accuracy");
            p->test = number(j, "test_accuracy");
        }
        p->epochs = number(j, "epochs");
        p->seconds = number(j, "seconds");
    }
    json_decref(j);
    return done;
}

static int write_sweep_json(const sweep *sw, mf_error *err)
{
    json_t *j = json_object(), *keys = json_array(), *points = json_array(),
           *global = json_array();
    for (int k = 0; k < sw->n_keys; k++) {
        json_t *values = json_array();
        for (int v = 0; v < sw->keys[k].n; v++)
            json_array_append_new(values, json_string(sw->keys[k].text[v]));
        json_array_append_new(keys, json_pack("{s:s, s:o}", "key", sw->keys[k].path, "values",
                                              values));
    }
    for (int i = 0; i < sw->opts->n_overrides; i++)
        json_array_append_new(global, json_string(sw->opts->overrides[i]));
    for (int i = 0; i < sw->n_points; i++) {
        json_t *o = json_array();
        for (int k = 0; k < sw->n_keys; k++)
            json_array_append_new(o, json_string(sw->points[i].assign[k]));
        json_array_append_new(points, json_pack("{s:i, s:s, s:i, s:o}", "point", i + 1, "folder",
                                                sw->points[i].name, "configuration",
                                                sw->points[i].config + 1, "overrides", o));
    }
    json_object_set_new(j, "file", json_string(sw->path));
    json_object_set_new(j, "overrides", global);
    json_object_set_new(j, "keys", keys);
    json_object_set_new(j, "points", points);
    json_object_set_new(j, "mmfuse", json_string(MF_VERSION_STRING));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) {
        mf_error_set(err, "out of memory for sweep.json");
        return -1;
    }
    char path[FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/sweep.json", sw->dir);
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the final newline */
    int rc = mf_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- processes */
/* The environment of every point: ours, with MMFUSE_THREADS dividing the cores among the
 * jobs unless the user chose it. Built before fork: the child only execs. */
static char **child_env(int jobs)
{
    int n = 0;
    while (environ[n])
        n++;
    char **env = calloc((size_t)n + 2, sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, (size_t)n * sizeof *env);
    const char *user = getenv("MMFUSE_THREADS");
    if (jobs > 1 && !(user && *user)) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long per = cores / jobs > 1 ? cores / jobs : 1;
        static char threads[64];
        snprintf(threads, sizeof threads, "MMFUSE_THREADS=%ld", per);
        int m = 0;
        for (int i = 0; i < n; i++) /* drop an empty MMFUSE_THREADS= */
            if (strncmp(env[i], "MMFUSE_THREADS=", 15) != 0)
                env[m++] = env[i];
        env[m++] = threads;
        env[m] = NULL;
    }
    return env;
}

static int launch(sweep *sw, sweep_point *p, mf_error *err)
{
    char path[FILE_PATH_MAX];
    if (mf_make_dirs(p->dir, err))
        return -1;
    /* a stale result must not outlive a run that dies before writing its own */
    snprintf(path, sizeof path, "%s/result.json", p->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/point.yaml", p->dir);
    char *spec = point_yaml(sw, p, path, 1);
    if (!spec) {
        mf_error_set(err, "cannot write '%s'", path);
        return -1;
    }
    free(spec);

    int n;
    const char **o = point_overrides(sw, p, &n);
    const char **argv = o ? calloc((size_t)(2 * n + 8), sizeof *argv) : NULL;
    if (!argv) {
        free(o);
        mf_error_set(err, "out of memory");
        return -1;
    }
    int a = 0;
    argv[a++] = sw->opts->exe;
    argv[a++] = "run";
    argv[a++] = sw->path;
    argv[a++] = "-q";
    argv[a++] = "--run-dir";
    argv[a++] = p->dir;
    for (int i = 0; i < n; i++) {
        argv[a++] = "-o";
        argv[a++] = o[i];
    }
    argv[a] = NULL;
    snprintf(path, sizeof path, "%s/log.txt", p->dir);
    fflush(NULL); /* or buffered output would be written twice */
    pid_t pid = fork();
    if (pid == 0) {
        /* only async-signal-safe calls between fork and exec */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
        execve(sw->opts->exe, (char *const *)argv, sw->envp);
        static const char msg[] = "mmfuse sweep: cannot execute the mmfuse program\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    free(argv);
    free(o);
    if (pid < 0) {
        mf_error_set(err, "cannot start a process: %s", strerror(errno));
        return -1;
    }
    p->pid = pid;
    p->state = POINT_RUNNING;
    return 0;
}

/* The last non-empty line of the point's log, for the failure message. */
static void last_log_line(const sweep_point *p, char *out, size_t size)
{
    char path[FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/log.txt", p->dir);
    char *text = mfi_text_read_file(path);
    snprintf(out, size, "(its log is empty)");
    if (!text)
        return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    if (len) {
        char *start = strrchr(text, '\n');
        snprintf(out, size, "%s", start ? start + 1 : text);
    }
    free(text);
}

/* A finished process: its outcome in p, one progress line, failures also into err. */
static void finished(sweep *sw, sweep_point *p, int wstatus, int done_so_far, int to_run,
                     mf_error *err)
{
    int idx = (int)(p - sw->points) + 1;
    char why[1024] = "", last[700];
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        if (!read_result(p))
            snprintf(why, sizeof why, "finished but left no result.json saying done");
    } else {
        last_log_line(p, last, sizeof last);
        if (WIFEXITED(wstatus))
            snprintf(why, sizeof why, "failed with exit status %d: %s", WEXITSTATUS(wstatus), last);
        else
            snprintf(why, sizeof why, "was killed by signal %d: %s",
                     WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0, last);
    }
    p->state = why[0] ? POINT_FAILED : POINT_DONE;
    if (why[0]) {
        fprintf(sw->log, "[%d/%d] point %d (%s) %s\n", done_so_far, to_run, idx, p->label, why);
        mf_error_set(err, "point %d (%s) %s", idx, p->label, why);
    } else {
        fprintf(sw->log, "[%d/%d] point %d (%s) done: val acc %.4f, test acc %.4f (%.2f s)\n",
                done_so_far, to_run, idx, p->label, p->val, p->test, p->seconds);
    }
    fflush(sw->log);
}

/* Run the pending points, `jobs` at a time. Waits on our own children only (waitpid per
 * pid, polled), so an embedding program's other children are left alone. */
static int run_points(sweep *sw, int jobs, int to_run, mf_error *err)
{
    int next = 0, running = 0, ended = 0, failed_to_start = 0;
    while (1) {
        while (running < jobs && next < sw->n_points && !failed_to_start) {
            sweep_point *p = &sw->points[next++];
            if (p->state != POINT_PENDING)
                continue;
            if (launch(sw, p, err)) {
                failed_to_start = 1; /* cannot fork or write: no use trying the rest */
                break;
            }
            running++;
        }
        if (!running)
            break;
        int reaped = 0;
        for (int i = 0; i < sw->n_points; i++) {
            sweep_point *p = &sw->points[i];
            if (p->state != POINT_RUNNING)
                continue;
            int st;
            pid_t r = waitpid(p->pid, &st, WNOHANG);
            if (r == p->pid || (r < 0 && errno == ECHILD)) {
                if (r < 0) /* reaped elsewhere (a SIGCHLD handler of the host): unknown */
                    st = 0;
                running--;
                reaped++;
                finished(sw, p, st, ++ended, to_run, err);
            }
        }
        if (!reaped) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return failed_to_start ? -1 : 0;
}

/* ---------------------------------------------------------------- summary */
typedef struct stat_acc {
    int n;
    double mean, std;
} stat_acc;

/* Mean and sample std of the finite values (std 0 with one). */
static stat_acc stats(const double *x, int n)
{
    stat_acc s = {0, NAN, NAN};
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            s.n++;
        }
    if (!s.n)
        return s;
    s.mean = sum / s.n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]))
            ss += (x[i] - s.mean) * (x[i] - s.mean);
    s.std = s.n > 1 ? sqrt(ss / (s.n - 1)) : 0;
    return s;
}

typedef struct config_row {
    int first;               /* its first point */
    int done, failed;
    stat_acc val, test, epochs, seconds;
} config_row;

static int compare_rows(const void *a, const void *b)
{
    const config_row *x = a, *y = b;
    /* configurations with no finished point last */
    if ((x->done > 0) != (y->done > 0))
        return x->done > 0 ? -1 : 1;
    /* model selection on validation; test only breaks ties */
    const double worst = ranked_higher ? -HUGE_VAL : HUGE_VAL;
    double xv = isfinite(x->val.mean) ? x->val.mean : worst,
           yv = isfinite(y->val.mean) ? y->val.mean : worst;
    if (xv != yv)
        return (xv > yv) == ranked_higher ? -1 : 1;
    double xt = isfinite(x->test.mean) ? x->test.mean : worst,
           yt = isfinite(y->test.mean) ? y->test.mean : worst;
    if (xt != yt)
        return (xt > yt) == ranked_higher ? -1 : 1;
    return x->first - y->first;
}

static void md_cell(mfi_text *b, const char *text)
{
    mfi_text_puts(b, " ");
    for (const char *p = text; *p; p++)
        if (*p == '|')
            mfi_text_puts(b, "\\|");
        else
            mfi_text_add(b, p, 1);
    mfi_text_puts(b, " |");
}

static void md_stat(mfi_text *b, stat_acc s, int digits)
{
    char cell[96];
    if (!s.n)
        snprintf(cell, sizeof cell, "–");
    else
        snprintf(cell, sizeof cell, "%.*f ± %.*f", digits, s.mean, digits, s.std);
    md_cell(b, cell);
}

static void csv_cell(mfi_text *b, const char *text, int first)
{
    if (!first)
        mfi_text_puts(b, ",");
    if (!strpbrk(text, ",\"\n\r")) {
        mfi_text_puts(b, text);
        return;
    }
    mfi_text_puts(b, "\"");
    for (const char *p = text; *p; p++)
        mfi_text_puts(b, *p == '"' ? "\"\"" : (char[2]){*p, '\0'});
    mfi_text_puts(b, "\"");
}

static void csv_stat(mfi_text *b, stat_acc s)
{
    if (s.n)
        mfi_text_printf(b, ",%.6g,%.6g", s.mean, s.std);
    else
        mfi_text_puts(b, ",,");
}

static int summarise(sweep *sw, mf_error *err)
{
    int nc = sw->n_configs;
    config_row *rows = calloc((size_t)nc, sizeof *rows);
    double *buf = calloc((size_t)sw->n_points * 4 + 1, sizeof *buf);
    if (!rows || !buf) {
        free(rows);
        free(buf);
        mf_error_set(err, "out of memory for the summary");
        return -1;
    }
    for (int c = 0; c < nc; c++) {
        config_row *r = &rows[c];
        r->first = -1;
        int n = 0;
        double *val = buf, *test = buf + sw->n_points, *ep = buf + 2 * sw->n_points,
               *sec = buf + 3 * sw->n_points;
        for (int i = 0; i < sw->n_points; i++) {
            sweep_point *p = &sw->points[i];
            if (p->config != c)
                continue;
            if (r->first < 0)
                r->first = i;
            if (p->state == POINT_DONE || p->state == POINT_SKIPPED) {
                val[n] = p->val;
                test[n] = p->test;
                ep[n] = p->epochs;
                sec[n] = p->seconds;
                n++;
            } else {
                r->failed++;
            }
        }
        r->done = n;
        r->val = stats(val, n);
        r->test = stats(test, n);
        r->epochs = stats(ep, n);
        r->seconds = stats(sec, n);
    }
    free(buf);
    qsort(rows, (size_t)nc, sizeof *rows, compare_rows);

    mfi_text table = {0}, csv = {0}, md = {0};
    mfi_text_puts(&table, "| rank |");
    csv_cell(&csv, "rank", 1);
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed) {
            md_cell(&table, sw->keys[k].path);
            csv_cell(&csv, sw->keys[k].path, 0);
        }
    const int acc = strcmp(ranked_metric, "accuracy") == 0;
    if (acc)
        mfi_text_puts(&table, " n | val acc | test acc | seconds |\n|---:|");
    else
        mfi_text_printf(&table, " n | val %s | test %s | seconds |\n|---:|", ranked_metric, ranked_metric);
    mfi_text_printf(&csv, ",n,failed,best_val_%s_mean,best_val_%s_std,test_%s_mean,"
                    "test_%s_std,epochs_mean,epochs_std,seconds_mean,seconds_std\n",
              ranked_metric, ranked_metric, ranked_metric, ranked_metric);
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed)
            mfi_text_puts(&table, "---|");
    mfi_text_puts(&table, "---:|---|---|---|\n");
    for (int c = 0; c < nc; c++) {
        const config_row *r = &rows[c];
        const sweep_point *p = &sw->points[r->first];
        char cell[64];
        if (r->done)
            snprintf(cell, sizeof cell, "%d", c + 1);
        else
            snprintf(cell, sizeof cell, "–");
        mfi_text_puts(&table, "|");
        md_cell(&table, cell);
        csv_cell(&csv, r->done ? cell : "", 1);
        for (int k = 0; k < sw->n_keys; k++)
            if (!sw->keys[k].is_seed) {
                md_cell(&table, sw->keys[k].text[p->choice[k]]);
                csv_cell(&csv, sw->keys[k].text[p->choice[k]], 0);
            }
        if (r->failed)
            snprintf(cell, sizeof cell, "%d (%d failed)", r->done, r->failed);
        else
            snprintf(cell, sizeof cell, "%d", r->done);
        md_cell(&table, cell);
        md_stat(&table, r->val, 4);
        md_stat(&table, r->test, 4);
        md_stat(&table, r->seconds, 2);
        mfi_text_puts(&table, "\n");
        mfi_text_printf(&csv, ",%d,%d", r->done, r->failed);
        csv_stat(&csv, r->val);
        csv_stat(&csv, r->test);
        csv_stat(&csv, r->epochs);
        csv_stat(&csv, r->seconds);
        mfi_text_puts(&csv, "\n");
    }
    free(rows);

    int seeds = -1;
    for (int k = 0; k < sw->n_keys; k++)
        if (sw->keys[k].is_seed)
            seeds = k;
    mfi_text_printf(&md, "# Sweep of %s\n\n%d points: %d configuration%s × ", sw->path, sw->n_points,
              sw->n_configs, sw->n_configs == 1 ? "" : "s");
    if (seeds >= 0) {
        mfi_text_printf(&md, "%d seed%s (", sw->n_seeds, sw->n_seeds == 1 ? "" : "s");
        for (int v = 0; v < sw->keys[seeds].n; v++)
            mfi_text_printf(&md, "%s%s", v ? ", " : "", sw->keys[seeds].text[v]);
        mfi_text_puts(&md, ")");
    } else {
        mfi_text_puts(&md, "1 seed (the file's)");
    }
    mfi_text_puts(&md, ".");
    if (sw->opts->n_overrides) {
        mfi_text_puts(&md, " Every point with");
        for (int i = 0; i < sw->opts->n_overrides; i++)
            mfi_text_printf(&md, " `-o %s`", sw->opts->overrides[i]);
        mfi_text_puts(&md, ".");
    }
    mfi_text_printf(&md, " Ranked by mean best validation %s (%s is better; model selection on "
                   "validation; the test value is reported, never used to rank). Each cell is "
                   "mean ± sample standard deviation over the configuration's seeds; n counts "
                   "the finished points.\n\n",
              ranked_metric, ranked_higher ? "higher" : "lower");
    if (table.s)
        mfi_text_puts(&md, table.s);

    char path[FILE_PATH_MAX];
    int rc = -1;
    char *md_text = mfi_text_take(&md), *csv_text = mfi_text_take(&csv), *table_text = mfi_text_take(&table);
    if (!md_text || !csv_text || !table_text) {
        mf_error_set(err, "out of memory for the summary");
    } else {
        snprintf(path, sizeof path, "%s/summary.md", sw->dir);
        rc = mf_write_file_atomic(path, md_text, strlen(md_text), err);
        snprintf(path, sizeof path, "%s/summary.csv", sw->dir);
        if (!rc)
            rc = mf_write_file_atomic(path, csv_text, strlen(csv_text), err);
        if (!rc) /* brief "report": the page beside them */
            rc = mfi_report_sweep(sw->dir, err);
        fprintf(sw->log, "\n%s\nsummary: %s/summary.md, %s/summary.csv\n", table_text, sw->dir,
                sw->dir);
        fflush(sw->log);
    }
    free(md_text);
    free(csv_text);
    free(table_text);
    return rc;
}

/* ---------------------------------------------------------------- the sweep */
static void sweep_free(sweep *sw)
{
    for (int k = 0; k < sw->n_keys; k++) {
        for (int v = 0; v < sw->keys[k].n; v++) {
            free(sw->keys[k].text ? sw->keys[k].text[v] : NULL);
            free(sw->keys[k].slug ? sw->keys[k].slug[v] : NULL);
        }
        free(sw->keys[k].text);
        free(sw->keys[k].slug);
        free(sw->keys[k].path);
    }
    free(sw->keys);
    for (int i = 0; sw->points && i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        for (int k = 0; p->assign && k < sw->n_keys; k++)
            free(p->assign[k]);
        free(p->assign);
        free(p->choice);
        free(p->label);
    }
    free(sw->points);
    free(sw->envp);
    mf_config_free(sw->cfg);
}

/* Read the grid from the file (with the global overrides applied). */
static int load_grid(sweep *sw, mf_error *err)
{
    if (!(sw->cfg = mf_config_load(sw->path, err)))
        return -1;
    for (int i = 0; i < sw->opts->n_overrides; i++)
        if (mf_config_override(sw->cfg, sw->opts->overrides[i], err))
            return -1;
    const mf_config *grid = mf_config_get(sw->cfg, "sweep");
    if (grid && mf_config_node_kind(grid) != MF_CONFIG_MAP) {
        mf_config_error(err, grid, "expected a map from keys to lists of values, like "
                        "{optim: {lr: [1.0e-3, 3.0e-3]}, seed: [1, 2, 3]}");
        return -1;
    }
    if (!grid || mf_config_length(grid) == 0) {
        mf_error_set(err, "%s: nothing to sweep: add a grid like sweep: {optim: {lr: [1.0e-3, 3.0e-3]}, "
                     "seed: [1, 2, 3]}",
                     sw->path);
        return -1;
    }
    if (collect_keys(sw, grid, "", err))
        return -1;
    return make_points(sw, err);
}

int mf_sweep_run(const char *path, const mf_sweep_options *opts, mf_error *err)
{
    if (!path || !opts || !opts->exe || opts->struct_size < sizeof *opts) {
        mf_error_set(err, "mf_sweep_run: no file, options or executable given");
        return MF_EXIT_BAD_INPUT;
    }
    sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.path = path;
    sw.opts = opts;
    sw.log = opts->log ? opts->log : stdout;
    int jobs = opts->jobs > 0 ? opts->jobs : 1;
    int status = MF_EXIT_BAD_INPUT, lock_fd = -1;

    if (access(opts->exe, X_OK) != 0) {
        mf_error_set(err, "cannot execute '%s': %s", opts->exe, strerror(errno));
        goto done;
    }
    if (load_grid(&sw, err))
        goto done;
    /* the sweep's folder: <runs>/<name>/sweep (if they are not strings, validation says so) */
    const char *runs = "runs", *name = "experiment";
    if (mf_config_has(sw.cfg, "runs") && mf_config_string(sw.cfg, "runs", &runs, NULL))
        runs = "runs";
    if (mf_config_has(sw.cfg, "name") && mf_config_string(sw.cfg, "name", &name, NULL))
        name = "experiment";
    snprintf(sw.dir, sizeof sw.dir, "%s/%s/sweep", runs, name);
    /* said before validating: with real data, checking every point takes a moment */
    fprintf(sw.log, "%s: %d point%s (%d configuration%s × %d seed%s) in %s\n", path, sw.n_points,
            sw.n_points == 1 ? "" : "s", sw.n_configs, sw.n_configs == 1 ? "" : "s", sw.n_seeds,
            sw.n_seeds == 1 ? "" : "s", sw.dir);
    fflush(sw.log);
    if (validate_points(&sw, err))
        goto done;

    status = MF_EXIT_FAILED;
    if (mf_make_dirs(sw.dir, err))
        goto done;
    /* two sweeps of one grid at once would run its points twice over each other */
    char lock_path[FILE_PATH_MAX];
    snprintf(lock_path, sizeof lock_path, "%s/.lock", sw.dir);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        mf_error_set(err, "%s: another mmfuse sweep is running in '%s'", path, sw.dir);
        status = MF_EXIT_BAD_INPUT;
        goto done;
    }
    if (write_sweep_json(&sw, err))
        goto done;

    /* resume: a point already done with the same settings is kept */
    int skipped = 0, changed = 0;
    char scratch[FILE_PATH_MAX];
    snprintf(scratch, sizeof scratch, "%s/.point-check.yaml", sw.dir);
    for (int i = 0; i < sw.n_points; i++) {
        sweep_point *p = &sw.points[i];
        snprintf(p->dir, sizeof p->dir, "%s/%s", sw.dir, p->name);
        if (!read_result(p))
            continue;
        char file[FILE_PATH_MAX];
        snprintf(file, sizeof file, "%s/point.yaml", p->dir);
        char *was = mfi_text_read_file(file), *now = point_yaml(&sw, p, scratch, 0);
        if (was && now && strcmp(was, now) == 0) {
            p->state = POINT_SKIPPED;
            skipped++;
        } else {
            changed++;
        }
        free(was);
        free(now);
    }
    int to_run = sw.n_points - skipped;
    if (skipped)
        fprintf(sw.log, "skipping %d finished point%s\n", skipped, skipped == 1 ? "" : "s");
    if (changed)
        fprintf(sw.log, "re-running %d finished point%s whose settings changed\n", changed,
                changed == 1 ? "" : "s");
    if (jobs > to_run && to_run > 0)
        jobs = to_run; /* the cores go to the points there are */
    if (to_run)
        fprintf(sw.log, "running %d point%s, %d at a time\n", to_run, to_run == 1 ? "" : "s",
                jobs);
    fflush(sw.log);

    if (!(sw.envp = child_env(jobs))) {
        mf_error_set(err, "out of memory");
        goto done;
    }
    mf_error failures;
    mf_error_clear(&failures);
    int run_rc = run_points(&sw, jobs, to_run, &failures);
    int failed = 0;
    for (int i = 0; i < sw.n_points; i++)
        failed += sw.points[i].state == POINT_FAILED || sw.points[i].state == POINT_PENDING;
    if (summarise(&sw, err))
        goto done;
    if (failures.count) {
        mf_error_set(err, "%s", failures.msg);
    }
    if (run_rc)
        goto done;
    if (failed) {
        mf_error_set(err, "%s: %d of %d points failed (their logs: %s/*/log.txt)", path, failed,
                     sw.n_points, sw.dir);
        goto done;
    }
    status = MF_EXIT_OK;
done:
    if (lock_fd >= 0)
        close(lock_fd); /* and the lock with it */
    sweep_free(&sw);
    return status;
}
