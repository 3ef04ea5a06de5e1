/* mmfuse runs [DIR] [--json]: every run folder below DIR (default runs), newest first, one
 * line each: folder, name, status, epochs, the selected metric's best validation value and
 * its test value, seconds.
 * mmfuse compare RUN RUN...: the config keys that differ (flattened key paths, a column per
 * run), then the metrics of result.json side by side, the selected metric first.
 * A run folder is one holding config.yaml; its result.json is absent while it runs (or
 * after it was killed). docs/training.md, "Run folders". */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static const char runs_usage[] = "mmfuse runs [DIR] [--json]";
static const char runs_details[] =
    "One line per run folder below DIR (default: runs), newest first: folder, name, status\n"
    "(done, failed, diverged; running/killed while result.json is absent), epochs, the\n"
    "selected metric (train.select) with its best validation value and its test value, and\n"
    "seconds. --json prints the same as a JSON array.\n";
static const char compare_usage[] = "mmfuse compare RUN RUN...";
static const char compare_details[] =
    "The config keys whose values differ between the runs (flattened key paths, one row per\n"
    "key, a column per run; - where a run lacks the key), then the metrics of their\n"
    "result.json side by side: the selected metric first (validation, then test), the other\n"
    "test and validation metrics, epochs and seconds.\n";

/* ---------------------------------------------------------------- small helpers */
static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int has_file(const char *dir, const char *file)
{
    char *p = join(dir, file);
    struct stat st;
    int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

static json_t *load_json(const char *dir, const char *file)
{
    char *p = join(dir, file);
    json_t *j = p ? json_load_file(p, 0, NULL) : NULL;
    free(p);
    return j;
}

static double number(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void format_number(char *buf, size_t size, double v, int decimals)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

/* A table of strings printed in aligned columns, two spaces apart. */
typedef struct table {
    int cols, rows, cap;
    char **cell; /* rows × cols */
} table;

static void table_add(table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cell, (size_t)t->cap * (size_t)t->cols * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "mmfuse: out of memory\n");
            exit(MF_EXIT_FAILED);
        }
        t->cell = grown;
    }
    for (int c = 0; c < t->cols; c++)
        t->cell[t->rows * t->cols + c] = strdup(cells[c] ? cells[c] : "-");
    t->rows++;
}

static void table_print(table *t)
{
    int width[64] = {0};
    for (int i = 0; i < t->rows * t->cols; i++) {
        int w = (int)strlen(t->cell[i]);
        if (w > width[i % t->cols])
            width[i % t->cols] = w;
    }
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->cols; c++) {
            const char *s = t->cell[r * t->cols + c];
            if (c + 1 < t->cols)
                printf("%-*s  ", width[c], s);
            else
                printf("%s\n", s);
        }
}

static void table_free(table *t)
{
    for (int i = 0; i < t->rows * t->cols; i++)
        free(t->cell[i]);
    free(t->cell);
}

/* ---------------------------------------------------------------- one run */
typedef struct run_info {
    char *folder, *name;
    char status[32], select[64], started[40];
    int epochs;                     /* -1: unknown */
    double best_val, test, seconds; /* NaN: unknown */
} run_info;

/* Rows of metrics.csv after its header. */
static int csv_rows(const char *dir)
{
    char *p = join(dir, "metrics.csv");
    FILE *f = p ? fopen(p, "r") : NULL;
    free(p);
    if (!f)
        return -1;
    int lines = 0, c, last = '\n';
    while ((c = getc(f)) != EOF) {
        lines += c == '\n';
        last = c;
    }
    fclose(f);
    lines += last != '\n'; /* a last line without its newline */
    return lines > 0 ? lines - 1 : 0; /* less the header */
}

static void read_run(const char *folder, run_info *r)
{
    memset(r, 0, sizeof *r);
    r->folder = strdup(folder);
    r->epochs = -1;
    r->best_val = r->test = r->seconds = NAN;
    char *path = join(folder, "config.yaml");
    mf_config *cfg = path ? mf_config_load(path, NULL) : NULL;
    const mf_config *name = cfg ? mf_config_get(cfg, "name") : NULL;
    r->name = strdup(name && mf_config_scalar(name) ? mf_config_scalar(name) : "?");
    mf_config_free(cfg);
    json_t *res = load_json(folder, "result.json"), *man = load_json(folder, "manifest.json");
    const char *status = json_string_value(json_object_get(res, "status"));
    snprintf(r->status, sizeof r->status, "%s", res ? (status ? status : "?") : "running/killed");
    if (res) {
        const char *select = json_string_value(json_object_get(res, "select"));
        int old = select == NULL; /* result.json before train.select: accuracy */
        snprintf(r->select, sizeof r->select, "%s", old ? "val.accuracy" : select);
        r->best_val = number(res, old ? "best_val_accuracy" : "best_val_metric");
        r->test = number(res, old ? "test_accuracy" : "test_metric");
        r->seconds = number(res, "seconds");
        double epochs = number(res, "epochs");
        r->epochs = isnan(epochs) ? -1 : (int)epochs;
    } else {
        r->epochs = csv_rows(folder);
    }
    const char *started = json_string_value(json_object_get(man, "started"));
    struct stat st;
    if (started) {
        snprintf(r->started, sizeof r->started, "%s", started);
    } else if (path && stat(path, &st) == 0) {
        struct tm tm;
        strftime(r->started, sizeof r->started, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&st.st_mtime, &tm));
    }
    json_decref(res);
    json_decref(man);
    free(path);
}

static void run_free(run_info *r)
{
    free(r->folder);
    free(r->name);
}

/* ---------------------------------------------------------------- mmfuse runs */
typedef struct run_list {
    run_info *item;
    int n, cap;
} run_list;

/* Every folder holding config.yaml below dir (not below a run folder: its checkpoints). */
static void walk(const char *dir, int depth, run_list *out)
{
    if (has_file(dir, "config.yaml")) {
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 32;
            run_info *grown = realloc(out->item, (size_t)out->cap * sizeof *grown);
            if (!grown)
                return;
            out->item = grown;
        }
        read_run(dir, &out->item[out->n++]);
        return;
    }
    DIR *d = depth < 16 ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = join(dir, e->d_name);
        struct stat st;
        if (sub && lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            walk(sub, depth + 1, out);
        free(sub);
    }
    if (d)
        closedir(d);
}

/* Newest first: the manifest's start time, then the folder name (a timestamp). */
static int newest_first(const void *a, const void *b)
{
    const run_info *x = a, *y = b;
    int c = strcmp(y->started, x->started);
    return c ? c : strcmp(y->folder, x->folder);
}

static json_t *nullable(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static void print_runs(const run_list *l, int as_json)
{
    json_t *all = as_json ? json_array() : NULL;
    table t = {.cols = 8};
    table_add(&t, (const char *const[]){"folder", "name", "status", "epochs", "selected",
                                        "best val", "test", "seconds"});
    for (int i = 0; i < l->n; i++) {
        const run_info *r = &l->item[i];
        if (all) {
            json_array_append_new(
                all, json_pack("{s:s, s:s, s:s, s:o, s:s?, s:o, s:o, s:o, s:s}", "folder",
                               r->folder, "name", r->name, "status", r->status, "epochs",
                               r->epochs < 0 ? json_null() : json_integer(r->epochs), "select",
                               r->select[0] ? r->select : NULL, "best_val", nullable(r->best_val),
                               "test", nullable(r->test), "seconds", nullable(r->seconds),
                               "started", r->started));
            continue;
        }
        char epochs[16], best[32], test[32], secs[32];
        snprintf(epochs, sizeof epochs, r->epochs < 0 ? "-" : "%d", r->epochs);
        format_number(best, sizeof best, r->best_val, 4);
        format_number(test, sizeof test, r->test, 4);
        format_number(secs, sizeof secs, r->seconds, 1);
        table_add(&t, (const char *const[]){r->folder, r->name, r->status, epochs,
                                            r->select[0] ? r->select : "-", best, test, secs});
    }
    if (all) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(all);
    } else {
        table_print(&t);
    }
    table_free(&t);
}

int mf_cli_runs(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, runs_usage, runs_details))
        return MF_EXIT_OK;
    const char *dir = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return mf_cli_usage_error("runs", runs_usage, "unknown option '%s'", argv[i]);
        else if (dir)
            return mf_cli_usage_error("runs", runs_usage, "one folder at a time ('%s', then '%s')",
                                      dir, argv[i]);
        else
            dir = argv[i];
    }
    char folder[4096];
    snprintf(folder, sizeof folder, "%s", dir ? dir : "runs");
    for (size_t len = strlen(folder); len > 1 && folder[len - 1] == '/'; len--)
        folder[len - 1] = '\0'; /* runs/ lists runs/x, not runs//x */
    dir = folder;
    struct stat st;
    int found = stat(dir, &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mmfuse runs: cannot read the folder '%s': %s\n", dir,
                found ? "not a folder" : strerror(errno));
        return MF_EXIT_BAD_INPUT;
    }
    run_list l = {0};
    walk(dir, 0, &l);
    qsort(l.item, (size_t)l.n, sizeof *l.item, newest_first);
    if (l.n == 0 && !as_json)
        printf("no run folders below %s\n", dir);
    else
        print_runs(&l, as_json);
    for (int i = 0; i < l.n; i++)
        run_free(&l.item[i]);
    free(l.item);
    return MF_EXIT_OK;
}

/* ---------------------------------------------------------------- mmfuse compare */
typedef struct kv {
    char *key, *value;
} kv;
typedef struct kv_list {
    kv *item;
    int n, cap;
} kv_list;

static void kv_add(kv_list *l, const char *key, const char *value)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        kv *grown = realloc(l->item, (size_t)l->cap * sizeof *grown);
        if (!grown)
            return;
        l->item = grown;
    }
    l->item[l->n].key = strdup(key);
    l->item[l->n++].value = strdup(value);
}

static const char *kv_get(const kv_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->item[i].key, key) == 0)
            return l->item[i].value;
    return NULL;
}

/* Key paths of every scalar: a.b.c; a list of scalars is one value "[x, y]", other lists
 * are indexed a[0].b; an empty map is "{}". */
static void flatten(const mf_config *n, const char *prefix, kv_list *out)
{
    char key[1024], value[4096];
    int len = mf_config_length(n);
    if (mf_config_node_kind(n) == MF_CONFIG_SCALAR) {
        kv_add(out, prefix, mf_config_scalar(n));
        return;
    }
    int scalars = 1;
    for (int i = 0; i < len; i++)
        scalars &= mf_config_node_kind(mf_config_at(n, i)) == MF_CONFIG_SCALAR;
    if (mf_config_node_kind(n) == MF_CONFIG_LIST && scalars) {
        size_t used = (size_t)snprintf(value, sizeof value, "[");
        for (int i = 0; i < len && used < sizeof value; i++)
            used += (size_t)snprintf(value + used, sizeof value - used, "%s%s", i ? ", " : "",
                                     mf_config_scalar(mf_config_at(n, i)));
        if (used < sizeof value)
            snprintf(value + used, sizeof value - used, "]");
        kv_add(out, prefix, value);
        return;
    }
    if (len == 0)
        kv_add(out, prefix, "{}");
    for (int i = 0; i < len; i++) {
        if (mf_config_node_kind(n) == MF_CONFIG_LIST)
            snprintf(key, sizeof key, "%s[%d]", prefix, i);
        else
            snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", mf_config_key_at(n, i));
        flatten(mf_config_at(n, i), key, out);
    }
}

static void kv_free(kv_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->item[i].key);
        free(l->item[i].value);
    }
    free(l->item);
}

static int kv_find(const kv_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->item[i].key, key) == 0)
            return i;
    return -1;
}

/* Every run's keys in one order: a key only some runs have goes after the key that
 * precedes it in the first run that has it (so model.fusion.* stays together). */
static void merge_keys(const kv_list *cfg, int n, kv_list *all)
{
    for (int r = 0; r < n; r++)
        for (int i = 0, pos = -1; i < cfg[r].n; i++) {
            int at = kv_find(all, cfg[r].item[i].key);
            if (at >= 0) {
                pos = at;
                continue;
            }
            kv_add(all, cfg[r].item[i].key, "");
            kv moved = all->item[all->n - 1];
            memmove(&all->item[pos + 2], &all->item[pos + 1],
                    (size_t)(all->n - 2 - pos) * sizeof moved);
            all->item[++pos] = moved;
        }
}

/* Rows of the keys whose values differ. */
static void config_rows(kv_list *cfg, int n, char **folders)
{
    table t = {.cols = n + 1};
    const char **cells = calloc((size_t)n + 1, sizeof *cells);
    cells[0] = "config";
    for (int r = 0; r < n; r++)
        cells[r + 1] = folders[r];
    table_add(&t, cells);
    kv_list seen = {0};
    merge_keys(cfg, n, &seen);
    for (int i = 0; i < seen.n; i++) {
        const char *key = seen.item[i].key;
        int differ = 0;
        for (int s = 0; s < n; s++) {
            cells[s + 1] = kv_get(&cfg[s], key);
            const char *a = cells[s + 1] ? cells[s + 1] : "", *b = cells[1] ? cells[1] : "";
            differ |= strcmp(a, b) != 0 || !cells[s + 1] != !cells[1];
        }
        cells[0] = key;
        if (differ)
            table_add(&t, cells);
    }
    if (t.rows == 1)
        printf("config: no differences\n");
    else
        table_print(&t);
    kv_free(&seen);
    table_free(&t);
    free(cells);
}

/* The metric rows: the selected one (val, then test), the other test.*, then val.*. */
static void metric_rows(json_t **res, int n, char **folders)
{
    const char *select = NULL;
    for (int r = 0; r < n && !select; r++)
        select = json_string_value(json_object_get(res[r], "select"));
    if (!select)
        select = "val.accuracy";
    const char *base = strncmp(select, "val.", 4) == 0 ? select + 4 : select;
    kv_list names = {0};
    char key[256];
    snprintf(key, sizeof key, "val.%s", base);
    kv_add(&names, key, "");
    snprintf(key, sizeof key, "test.%s", base);
    kv_add(&names, key, "");
    for (int split = 0; split < 2; split++)
        for (int r = 0; r < n; r++) {
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(res[r], split ? "val" : "test"), k, v) {
                snprintf(key, sizeof key, "%s.%s", split ? "val" : "test", k);
                if (!kv_get(&names, key))
                    kv_add(&names, key, "");
            }
        }
    kv_add(&names, "epochs", "");
    kv_add(&names, "seconds", "");
    table t = {.cols = n + 1};
    const char **cells = calloc((size_t)n + 1, sizeof *cells);
    char (*text)[32] = calloc((size_t)n, sizeof *text);
    cells[0] = "metric";
    for (int r = 0; r < n; r++)
        cells[r + 1] = folders[r];
    table_add(&t, cells);
    for (int i = 0; i < names.n; i++) {
        const char *name = names.item[i].key, *dot = strchr(name, '.');
        for (int r = 0; r < n; r++) {
            double v = dot ? number(json_object_get(res[r], dot == name + 3 ? "val" : "test"), dot + 1)
                           : number(res[r], name);
            format_number(text[r], sizeof text[r], v, dot ? 4 : strcmp(name, "epochs") ? 1 : 0);
            cells[r + 1] = text[r];
        }
        cells[0] = i == 0 ? (snprintf(key, sizeof key, "%s (selected)", name), key) : name;
        table_add(&t, cells);
    }
    table_print(&t);
    table_free(&t);
    kv_free(&names);
    free(cells);
    free(text);
}

int mf_cli_compare(int argc, char **argv)
{
    if (mf_cli_help(argc, argv, compare_usage, compare_details))
        return MF_EXIT_OK;
    int n = argc - 1;
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-')
            return mf_cli_usage_error("compare", compare_usage, "unknown option '%s'", argv[i]);
    if (n < 2)
        return mf_cli_usage_error("compare", compare_usage, "give two run folders or more");
    for (int i = 1; i < argc; i++)
        if (!has_file(argv[i], "config.yaml")) {
            fprintf(stderr, "mmfuse compare: '%s' is not a run folder (it has no config.yaml)\n",
                    argv[i]);
            return MF_EXIT_BAD_INPUT;
        }
    kv_list *cfg = calloc((size_t)n, sizeof *cfg);
    json_t **res = calloc((size_t)n, sizeof *res);
    int status = MF_EXIT_OK;
    for (int r = 0; r < n && status == MF_EXIT_OK; r++) {
        mf_error err;
        mf_error_clear(&err);
        char *path = join(argv[r + 1], "config.yaml");
        mf_config *c = path ? mf_config_load(path, &err) : NULL;
        free(path);
        if (!c) {
            mf_cli_report(&err);
            status = MF_EXIT_BAD_INPUT;
            break;
        }
        flatten(c, "", &cfg[r]);
        mf_config_free(c);
        res[r] = load_json(argv[r + 1], "result.json");
    }
    if (status == MF_EXIT_OK) {
        config_rows(cfg, n, argv + 1);
        putchar('\n');
        metric_rows(res, n, argv + 1);
    }
    for (int r = 0; r < n; r++) {
        kv_free(&cfg[r]);
        json_decref(res[r]);
    }
    free(cfg);
    free(res);
    return status;
}
