/* The charts of a sweep's page that compare its configurations along an axis (the figures a
 * study's write-up shows):
 *
 *   by-<key>        the test value of the selected metric against a swept key whose values
 *                   are all numbers (a width, a batch size, a fusion layer) or names ending
 *                   in one (cases mlp-lf0 … mlp-lf3, mbt-lf0 … : x the number, a line per
 *                   name), one line per combination of the other swept values (summary.csv)
 *   noise-<m>       the metric under Gaussian noise on modality m, one line per
 *                   configuration, the mean over its seeds (each point's result.json)
 *   curve-<column>  a metrics.csv column over training (val_<metric> by default; the
 *                   learned temperature, train_logit_scale), one line per configuration,
 *                   the mean over its seeds at each validation
 *
 * Configurations are named by their swept values (sweep.json's points), seeds left out.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report.h"

#define MAX_SERIES 24 /* more lines than this in one chart cannot be told apart */

static int is_number(const char *s, double *v)
{
    char *end;
    if (!*s)
        return 0;
    *v = strtod(s, &end);
    return *end == '\0' && isfinite(*v);
}

/* A value on a numeric axis: a number (prefix length 0), or a name ending in one
 * ("mlp-lf2": x 2, prefix "mlp-lf", the rest of the series' name). */
static int axis_value(const char *s, double *v, size_t *prefix)
{
    *prefix = 0;
    if (is_number(s, v))
        return 1;
    size_t n = strlen(s), k = n;
    while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9')
        k--;
    if (k == n || k == 0)
        return 0;
    *prefix = k;
    return is_number(s + k, v);
}

/* ---------------------------------------------------------------- by a numeric key */
typedef struct line {
    char *name;
    double *x, *y;
    int n;
} line;

static void lines_free(line *l, int n)
{
    for (int i = 0; i < n; i++) {
        free(l[i].name);
        free(l[i].x);
        free(l[i].y);
    }
    free(l);
}

/* The series row r belongs to: the name part of its axis value (prefix bytes), then the
 * other keys' values, "mlp-lf · v1 · v2". */
static char *others(const mfi_csv *t, int key0, int n_keys, int skip, int r, size_t prefix)
{
    mfi_html b = {0};
    const char *own = mfi_csv_at(t, r, key0 + skip);
    while (prefix > 0 && strchr("-_= ", own[prefix - 1]))
        prefix--;
    mfi_text_add(&b, own, prefix);
    for (int k = 0; k < n_keys; k++)
        if (k != skip)
            mfi_text_printf(&b, "%s%s", b.len ? " · " : "", mfi_csv_at(t, r, key0 + k));
    if (!b.len)
        mfi_text_puts(&b, "test");
    return mfi_text_take(&b);
}

/* Points of each line in x order. */
static void sort_line(line *l)
{
    for (int i = 1; i < l->n; i++)
        for (int j = i; j > 0 && l->x[j - 1] > l->x[j]; j--) {
            double tx = l->x[j], ty = l->y[j];
            l->x[j] = l->x[j - 1], l->y[j] = l->y[j - 1];
            l->x[j - 1] = tx, l->y[j - 1] = ty;
        }
}

static void by_key_chart(mfi_html *h, const mfi_csv *t, int key0, int n_keys, int k, int test,
                         const char *metric)
{
    const int rows = t->rows - 1;
    line *l = calloc((size_t)rows + 1, sizeof *l);
    int n = 0;
    for (int r = 1; l && r <= rows; r++) {
        double x;
        size_t prefix;
        if (!axis_value(mfi_csv_at(t, r, key0 + k), &x, &prefix))
            continue;
        char *name = others(t, key0, n_keys, k, r, prefix);
        int s = 0;
        while (s < n && name && strcmp(l[s].name, name) != 0)
            s++;
        if (!name || (s == n && n == MAX_SERIES)) {
            free(name);
            continue;
        }
        if (s == n) {
            l[n].name = name;
            l[n].x = calloc((size_t)rows, sizeof(double));
            l[n].y = calloc((size_t)rows, sizeof(double));
            if (!l[n].x || !l[n].y)
                break;
            n++;
        } else {
            free(name);
        }
        l[s].x[l[s].n] = x;
        l[s].y[l[s].n++] = mfi_csv_num(t, r, test);
    }
    mfi_series *series = calloc((size_t)n + 1, sizeof *series);
    for (int s = 0; series && s < n; s++) {
        sort_line(&l[s]);
        series[s] = (mfi_series){l[s].name, l[s].x, l[s].y, l[s].n};
    }
    const char *key = mfi_csv_at(t, 0, key0 + k);
    char id[192], title[320], ylabel[160];
    snprintf(id, sizeof id, "by-%s", key);
    snprintf(title, sizeof title, "test %s by %s (mean over seeds)", metric, key);
    snprintf(ylabel, sizeof ylabel, "test %s", metric);
    mfi_line_chart c = {.id = id, .title = title, .xlabel = key, .ylabel = ylabel,
                        .series = series, .n_series = n, .mark_x = NAN};
    if (series && n)
        mfi_svg_lines(h, &c);
    free(series);
    lines_free(l, n);
}

void mfi_sweep_key_charts(mfi_html *h, const mfi_csv *t, int key0, int n_keys, int test,
                          const char *metric)
{
    if (test < 0)
        return;
    for (int k = 0; k < n_keys; k++) {
        int numeric = 1, distinct = 0;
        double first = NAN, v;
        size_t prefix;
        for (int r = 1; r < t->rows && numeric; r++) {
            numeric = axis_value(mfi_csv_at(t, r, key0 + k), &v, &prefix);
            if (numeric && r == 1)
                first = v;
            distinct |= numeric && v != first;
        }
        if (numeric && distinct)
            by_key_chart(h, t, key0, n_keys, k, test, metric);
    }
}

/* ---------------------------------------------------------------- across points */
typedef struct config_points {
    int config;              /* sweep.json's configuration number */
    char *name;              /* its swept values but the seed */
    json_t *results[64];     /* its finished points' result.json */
    char *folders[64];
    int n;
} config_points;

/* A point's name without its seed: its values but the seed's, or its folder. */
static char *point_config_name(const json_t *keys, const json_t *p)
{
    const json_t *values = json_object_get(p, "values");
    mfi_html b = {0};
    for (size_t k = 0; json_is_array(values) && k < json_array_size(values); k++) {
        const char *key = json_string_value(json_object_get(json_array_get(keys, k), "key"));
        const char *v = json_string_value(json_array_get(values, k));
        if (key && v && strcmp(key, "seed") != 0)
            mfi_text_printf(&b, "%s%s", b.len ? " · " : "", v);
    }
    if (!b.len)
        mfi_text_puts(&b, json_string_value(json_object_get(p, "folder")));
    return mfi_text_take(&b);
}

/* The sweep's finished points grouped by configuration, in the grid's order. */
static config_points *group_points(const char *dir, const json_t *sw, int *n_out)
{
    const json_t *list = json_object_get(sw, "points"), *keys = json_object_get(sw, "keys"), *p;
    size_t np = json_is_array(list) ? json_array_size(list) : 0, i;
    config_points *c = calloc(np + 1, sizeof *c);
    int n = 0;
    json_array_foreach(list, i, p) {
        const char *folder = json_string_value(json_object_get(p, "folder"));
        int config = (int)json_integer_value(json_object_get(p, "configuration"));
        if (!c || !folder || strstr(folder, "..") || strchr(folder, '/'))
            continue;
        char sub[MFI_REPORT_PATH];
        mfi_report_path(sub, dir, folder);
        json_t *res = NULL;
        mfi_report_json(sub, "result.json", &res, NULL);
        const char *status = json_string_value(json_object_get(res, "status"));
        int g = 0;
        while (g < n && c[g].config != config)
            g++;
        if (!status || strcmp(status, "done") != 0 || (g == n && n == MAX_SERIES) ||
            (g < n && c[g].n == 64)) {
            json_decref(res);
            continue;
        }
        if (g == n) {
            c[n].config = config;
            c[n++].name = point_config_name(keys, p);
        }
        c[g].folders[c[g].n] = strdup(sub);
        c[g].results[c[g].n++] = res;
    }
    *n_out = n;
    return c;
}

static void group_free(config_points *c, int n)
{
    for (int g = 0; c && g < n; g++) {
        free(c[g].name);
        for (int i = 0; i < c[g].n; i++) {
            json_decref(c[g].results[i]);
            free(c[g].folders[i]);
        }
    }
    free(c);
}

/* Mean over a configuration's points of each position of their arrays (NAN where none has
 * a finite value); n the longest. */
static double *mean_arrays(const json_t *const *arrays, int m, int *n)
{
    *n = 0;
    for (int i = 0; i < m; i++)
        if (json_is_array(arrays[i]) && (int)json_array_size(arrays[i]) > *n)
            *n = (int)json_array_size(arrays[i]);
    double *mean = calloc((size_t)*n + 1, sizeof *mean);
    for (int j = 0; mean && j < *n; j++) {
        double sum = 0;
        int k = 0;
        for (int i = 0; i < m; i++) {
            const json_t *v = json_array_get(arrays[i], (size_t)j);
            if (json_is_number(v) && isfinite(json_number_value(v))) {
                sum += json_number_value(v);
                k++;
            }
        }
        mean[j] = k ? sum / k : NAN;
    }
    return mean;
}

/* One chart per noisy modality: each configuration's mean curve. */
static void noise_charts(mfi_html *h, config_points *c, int n)
{
    const json_t *first = NULL;
    for (int g = 0; g < n && !first; g++)
        for (int i = 0; i < c[g].n && !first; i++) {
            const json_t *noise = json_object_get(json_object_get(c[g].results[i], "robustness"), "noise");
            if (json_is_object(noise) && json_object_size(noise))
                first = c[g].results[i];
        }
    if (!first)
        return;
    const json_t *rob = json_object_get(first, "robustness");
    const char *metric = json_string_value(json_object_get(rob, "metric"));
    /* the modalities of every configuration: each that any of them made noisy */
    const char *mods[16];
    int n_mods = 0;
    for (int g = 0; g < n; g++)
        for (int i = 0; i < c[g].n; i++) {
            const char *m;
            json_t *v;
            json_object_foreach(json_object_get(json_object_get(c[g].results[i], "robustness"), "noise"), m, v) {
                int seen = 0;
                for (int k = 0; k < n_mods; k++)
                    seen |= strcmp(mods[k], m) == 0;
                if (!seen && n_mods < 16)
                    mods[n_mods++] = m;
            }
        }
    for (int k = 0; k < n_mods; k++) {
        mfi_series s[MAX_SERIES];
        double *mem[2 * MAX_SERIES];
        int ns = 0;
        for (int g = 0; g < n; g++) {
            const json_t *levels[64], *values[64];
            int m = 0;
            for (int i = 0; i < c[g].n; i++) {
                const json_t *cur = json_object_get(
                    json_object_get(json_object_get(c[g].results[i], "robustness"), "noise"), mods[k]);
                if (json_is_object(cur)) {
                    levels[m] = json_object_get(cur, "levels");
                    values[m++] = json_object_get(cur, "values");
                }
            }
            if (!m)
                continue;
            int nx, ny;
            mem[2 * ns] = mean_arrays(levels, m, &nx);
            mem[2 * ns + 1] = mean_arrays(values, m, &ny);
            s[ns] = (mfi_series){c[g].name, mem[2 * ns], mem[2 * ns + 1], nx < ny ? nx : ny};
            ns++;
        }
        char id[96], title[192];
        snprintf(id, sizeof id, "noise-%s", mods[k]);
        snprintf(title, sizeof title, "%s with Gaussian noise on %s (mean over seeds)",
                 metric ? metric : "metric", mods[k]);
        mfi_line_chart chart = {.id = id, .title = title, .xlabel = "noise level (σ)",
                                .ylabel = metric ? metric : "metric", .series = s,
                                .n_series = ns, .mark_x = NAN};
        mfi_svg_lines(h, &chart);
        for (int i = 0; i < 2 * ns; i++)
            free(mem[i]);
    }
}

/* A metrics.csv column of each point, as a JSON array (x: the epoch column, or step). */
static json_t *csv_column(const char *folder, const char *column, json_t **x)
{
    *x = NULL;
    char *text = mfi_report_read(folder, "metrics.csv");
    mfi_csv t;
    if (!text || mfi_csv_parse(text, &t)) {
        free(text);
        return NULL;
    }
    int c = mfi_csv_col(&t, column), e = mfi_csv_col(&t, "epoch");
    json_t *y = c >= 0 ? json_array() : NULL;
    *x = c >= 0 ? json_array() : NULL;
    for (int r = 1; y && *x && r < t.rows; r++) {
        json_array_append_new(y, json_real(mfi_csv_num(&t, r, c)));
        json_array_append_new(*x, json_real(e >= 0 ? mfi_csv_num(&t, r, e) : r));
    }
    free(t.cell);
    free(text);
    return y;
}

static void curve_chart(mfi_html *h, config_points *c, int n, const char *column)
{
    mfi_series s[MAX_SERIES];
    double *mem[2 * MAX_SERIES];
    int ns = 0;
    for (int g = 0; g < n; g++) {
        json_t *xs[64], *ys[64];
        int m = 0;
        for (int i = 0; i < c[g].n; i++)
            if ((ys[m] = csv_column(c[g].folders[i], column, &xs[m])))
                m++;
            else
                json_decref(xs[m]);
        if (m) {
            int nx, ny;
            mem[2 * ns] = mean_arrays((const json_t *const *)xs, m, &nx);
            mem[2 * ns + 1] = mean_arrays((const json_t *const *)ys, m, &ny);
            s[ns] = (mfi_series){c[g].name, mem[2 * ns], mem[2 * ns + 1], nx < ny ? nx : ny};
            ns++;
        }
        for (int i = 0; i < m; i++) {
            json_decref(xs[i]);
            json_decref(ys[i]);
        }
    }
    if (!ns)
        return;
    char id[192], title[256];
    snprintf(id, sizeof id, "curve-%s", column);
    snprintf(title, sizeof title, "%s during training (mean over seeds)", column);
    mfi_line_chart chart = {.id = id, .title = title, .xlabel = "epoch", .ylabel = column,
                            .series = s, .n_series = ns, .mark_x = NAN};
    mfi_svg_lines(h, &chart);
    for (int i = 0; i < 2 * ns; i++)
        free(mem[i]);
}

void mfi_sweep_point_charts(mfi_html *h, const char *dir, const json_t *sw, const char *metric,
                            const char *const *curves, int n_curves)
{
    int n = 0;
    config_points *c = group_points(dir, sw, &n);
    if (!c || !n) {
        group_free(c, n);
        return;
    }
    noise_charts(h, c, n);
    char selected[192];
    snprintf(selected, sizeof selected, "val_%s", metric);
    if (!n_curves)
        curve_chart(h, c, n, selected);
    for (int i = 0; i < n_curves; i++)
        curve_chart(h, c, n, curves[i]);
    group_free(c, n);
}
