/* mmfuse sweep's summary: each point's result.json read, its configuration's seeds
 * averaged (mean ± sample std), ranked on validation, written as summary.md, summary.csv
 * and summary.html. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report.h"
#include "sweep_internal.h"
#include "../core/text.h"

static double number(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The metric the points were selected on, and its direction (the last point read says). */
static char ranked_metric[64] = "accuracy";
static int ranked_higher = 1;

const char *mfi_sweep_metric_label(void)
{
    return strcmp(ranked_metric, "accuracy") == 0 ? "acc" : ranked_metric;
}

/* The index of a metric's name in the sweep's list, added when new; -1 out of memory. */
static int metric_index(sweep *sw, const char *name)
{
    for (int m = 0; m < sw->n_metrics; m++)
        if (strcmp(sw->metric_names[m], name) == 0)
            return m;
    char **names = realloc(sw->metric_names, (size_t)(sw->n_metrics + 1) * sizeof *names);
    if (!names)
        return -1;
    sw->metric_names = names;
    if (!(names[sw->n_metrics] = strdup(name)))
        return -1;
    return sw->n_metrics++;
}

/* Every number under j (objects only: the noise curves' arrays are the report's) as
 * prefix.key.key, into p->metric. */
static int read_numbers(sweep *sw, sweep_point *p, const json_t *j, const char *prefix)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        char name[512];
        snprintf(name, sizeof name, "%s.%s", prefix, key);
        if (json_is_object(v)) {
            if (read_numbers(sw, p, v, name))
                return -1;
            continue;
        }
        if (!json_is_number(v))
            continue;
        int m = metric_index(sw, name);
        if (m < 0)
            return -1;
        if (m >= p->n_metric) {
            double *metric = realloc(p->metric, (size_t)sw->n_metrics * sizeof *metric);
            if (!metric)
                return -1;
            for (int i = p->n_metric; i < sw->n_metrics; i++)
                metric[i] = NAN;
            p->metric = metric;
            p->n_metric = sw->n_metrics;
        }
        p->metric[m] = json_number_value(v);
    }
    return 0;
}

/* The result's test metrics and robustness figures (the drop values, relative and
 * effective robustness; the clean value is the test metric, the curves are not numbers). */
static int read_metrics(sweep *sw, sweep_point *p, const json_t *j)
{
    const json_t *test = json_object_get(j, "test"), *rob = json_object_get(j, "robustness");
    if (json_is_object(test) && read_numbers(sw, p, test, "test"))
        return -1;
    if (!json_is_object(rob))
        return 0;
    const char *parts[] = {"drop", "relative", "effective"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        const json_t *part = json_object_get(rob, parts[i]);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "robustness.%s", parts[i]);
        if (json_is_object(part) && read_numbers(sw, p, part, prefix))
            return -1;
    }
    return 0;
}

int mfi_sweep_read_result(sweep *sw, sweep_point *p)
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
        if (read_metrics(sw, p, j)) {
            json_decref(j);
            return -1;
        }
    }
    json_decref(j);
    return done;
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
    stat_acc *metric;        /* per sw->metric_names */
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

/* A point's value of metric m (NAN when its result had none). */
static double point_metric(const sweep_point *p, int m)
{
    return m < p->n_metric ? p->metric[m] : NAN;
}

/* One row per configuration, its finished seeds' statistics, ranked (best first); *block
 * receives the rows' metric statistics (one allocation, freed with them). */
static config_row *gather_rows(const sweep *sw, stat_acc **block)
{
    const int nc = sw->n_configs, np = sw->n_points;
    config_row *rows = calloc((size_t)nc, sizeof *rows);
    double *buf = calloc((size_t)np * 4 + 1, sizeof *buf);
    stat_acc *metric = calloc((size_t)nc * (size_t)sw->n_metrics + 1, sizeof *metric);
    if (!rows || !buf || !metric) {
        free(rows);
        free(buf);
        free(metric);
        return NULL;
    }
    double *val = buf, *test = buf + np, *ep = buf + 2 * np, *sec = buf + 3 * np;
    for (int c = 0; c < nc; c++) {
        config_row *r = &rows[c];
        r->first = -1;
        r->metric = metric + (size_t)c * (size_t)sw->n_metrics;
        int n = 0;
        for (int i = 0; i < np; i++) {
            const sweep_point *p = &sw->points[i];
            if (p->config != c)
                continue;
            if (r->first < 0)
                r->first = i;
            if (p->state != POINT_DONE && p->state != POINT_SKIPPED) {
                r->failed++;
                continue;
            }
            val[n] = p->val;
            test[n] = p->test;
            ep[n] = p->epochs;
            sec[n] = p->seconds;
            n++;
        }
        r->done = n;
        r->val = stats(val, n);
        r->test = stats(test, n);
        r->epochs = stats(ep, n);
        r->seconds = stats(sec, n);
        for (int m = 0; m < sw->n_metrics; m++) {
            int k = 0;
            for (int i = 0; i < np; i++) {
                const sweep_point *p = &sw->points[i];
                if (p->config == c && (p->state == POINT_DONE || p->state == POINT_SKIPPED))
                    buf[k++] = point_metric(p, m);
            }
            r->metric[m] = stats(buf, k);
        }
    }
    free(buf);
    qsort(rows, (size_t)nc, sizeof *rows, compare_rows);
    *block = metric;
    return rows;
}

/* A row's start: its rank ("–" when none of its seeds finished) and its swept values. */
static void row_start(const sweep *sw, const config_row *r, int rank, mfi_text *md, mfi_text *csv)
{
    char cell[32];
    snprintf(cell, sizeof cell, "%d", rank);
    mfi_text_puts(md, "|");
    md_cell(md, r->done ? cell : "–");
    if (csv)
        csv_cell(csv, r->done ? cell : "", 1);
    const sweep_point *p = &sw->points[r->first];
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed) {
            md_cell(md, sw->keys[k].text[p->choice[k]]);
            if (csv)
                csv_cell(csv, sw->keys[k].text[p->choice[k]], 0);
        }
}

/* The header of a markdown table: rank, the swept keys, then `tail` (its cells and rule). */
static void table_head(const sweep *sw, mfi_text *md, const char *tail, const char *rule)
{
    mfi_text_puts(md, "| rank |");
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed)
            md_cell(md, sw->keys[k].path);
    mfi_text_printf(md, "%s\n|---:|", tail);
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed)
            mfi_text_puts(md, "---|");
    mfi_text_printf(md, "%s\n", rule);
}

/* The ranked table (selected metric) and summary.csv (it, and every metric). */
static void ranked_table(const sweep *sw, const config_row *rows, mfi_text *table, mfi_text *csv)
{
    char tail[256];
    if (strcmp(ranked_metric, "accuracy") == 0)
        snprintf(tail, sizeof tail, " n | val acc | test acc | seconds |");
    else
        snprintf(tail, sizeof tail, " n | val %s | test %s | seconds |", ranked_metric, ranked_metric);
    table_head(sw, table, tail, "---:|---|---|---|");
    csv_cell(csv, "rank", 1);
    for (int k = 0; k < sw->n_keys; k++)
        if (!sw->keys[k].is_seed)
            csv_cell(csv, sw->keys[k].path, 0);
    mfi_text_printf(csv, ",n,failed,best_val_%s_mean,best_val_%s_std,test_%s_mean,"
                    "test_%s_std,epochs_mean,epochs_std,seconds_mean,seconds_std",
                    ranked_metric, ranked_metric, ranked_metric, ranked_metric);
    for (int m = 0; m < sw->n_metrics; m++)
        mfi_text_printf(csv, ",%s_mean,%s_std", sw->metric_names[m], sw->metric_names[m]);
    mfi_text_puts(csv, "\n");
    for (int c = 0; c < sw->n_configs; c++) {
        const config_row *r = &rows[c];
        char cell[64];
        row_start(sw, r, c + 1, table, csv);
        if (r->failed)
            snprintf(cell, sizeof cell, "%d (%d failed)", r->done, r->failed);
        else
            snprintf(cell, sizeof cell, "%d", r->done);
        md_cell(table, cell);
        md_stat(table, r->val, 4);
        md_stat(table, r->test, 4);
        md_stat(table, r->seconds, 2);
        mfi_text_puts(table, "\n");
        mfi_text_printf(csv, ",%d,%d", r->done, r->failed);
        csv_stat(csv, r->val);
        csv_stat(csv, r->test);
        csv_stat(csv, r->epochs);
        csv_stat(csv, r->seconds);
        for (int m = 0; m < sw->n_metrics; m++)
            csv_stat(csv, r->metric[m]);
        mfi_text_puts(csv, "\n");
    }
}

/* Every test metric and robustness figure the runs reported, one table, ranked as above:
 * what a paper's table reports beside the metric a sweep selects on. */
static void metrics_table(const sweep *sw, const config_row *rows, mfi_text *md)
{
    if (!sw->n_metrics)
        return;
    mfi_text tail = {0}, rule = {0};
    for (int m = 0; m < sw->n_metrics; m++) {
        md_cell(&tail, sw->metric_names[m]);
        mfi_text_puts(&rule, "---|");
    }
    mfi_text_puts(md, "\n## Every test metric\n\nThe test split's metrics at the kept epoch, and "
                  "the robustness figures (`eval.robustness`: the metric with each modality "
                  "dropped, relative and effective robustness), mean ± sample standard "
                  "deviation over the seeds; rows ranked as above.\n\n");
    table_head(sw, md, tail.s ? tail.s : "", rule.s ? rule.s : "");
    free(tail.s);
    free(rule.s);
    for (int c = 0; c < sw->n_configs; c++) {
        const config_row *r = &rows[c];
        row_start(sw, r, c + 1, md, NULL);
        for (int m = 0; m < sw->n_metrics; m++)
            md_stat(md, r->metric[m], 4);
        mfi_text_puts(md, "\n");
    }
}

/* What the sweep ran and how to read it, above the tables. */
static void summary_intro(const sweep *sw, mfi_text *md)
{
    int seeds = -1;
    for (int k = 0; k < sw->n_keys; k++)
        if (sw->keys[k].is_seed)
            seeds = k;
    mfi_text_printf(md, "# Sweep of %s\n\n%d points: %d configuration%s × ", sw->path, sw->n_points,
                    sw->n_configs, sw->n_configs == 1 ? "" : "s");
    if (seeds >= 0) {
        mfi_text_printf(md, "%d seed%s (", sw->n_seeds, sw->n_seeds == 1 ? "" : "s");
        for (int v = 0; v < sw->keys[seeds].n; v++)
            mfi_text_printf(md, "%s%s", v ? ", " : "", sw->keys[seeds].text[v]);
        mfi_text_puts(md, ")");
    } else {
        mfi_text_puts(md, "1 seed (the file's)");
    }
    mfi_text_puts(md, ".");
    if (sw->opts->n_overrides) {
        mfi_text_puts(md, " Every point with");
        for (int i = 0; i < sw->opts->n_overrides; i++)
            mfi_text_printf(md, " `-o %s`", sw->opts->overrides[i]);
        mfi_text_puts(md, ".");
    }
    mfi_text_printf(md, " Ranked by mean best validation %s (%s is better; model selection on "
                    "validation; the test value is reported, never used to rank). Each cell is "
                    "mean ± sample standard deviation over the configuration's seeds; n counts "
                    "the finished points.\n\n",
                    ranked_metric, ranked_higher ? "higher" : "lower");
}

/* The group a metric's column belongs to: test metrics, then each robustness figure. */
static int metric_group(const char *name)
{
    const char *groups[] = {"test.", "robustness.drop.", "robustness.relative.",
                            "robustness.effective."};
    for (int g = 0; g < 4; g++)
        if (strncmp(name, groups[g], strlen(groups[g])) == 0)
            return g;
    return 4;
}

/* The metrics grouped (test, drops, relative, effective), first-seen order within a group:
 * the names and every point's values put in that order. */
static int order_metrics(sweep *sw)
{
    const int n = sw->n_metrics;
    int *order = calloc((size_t)n + 1, sizeof *order);
    char **names = calloc((size_t)n + 1, sizeof *names);
    double *values = calloc((size_t)n + 1, sizeof *values);
    int rc = order && names && values ? 0 : -1;
    int k = 0;
    for (int g = 0; !rc && g <= 4; g++)
        for (int m = 0; m < n; m++)
            if (metric_group(sw->metric_names[m]) == g)
                order[k++] = m;
    for (int i = 0; !rc && i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        if (!p->n_metric)
            continue;
        double *metric = realloc(p->metric, (size_t)n * sizeof *metric);
        if (!metric) {
            rc = -1;
            break;
        }
        for (int m = 0; m < n; m++)
            values[m] = order[m] < p->n_metric ? metric[order[m]] : NAN;
        memcpy(metric, values, (size_t)n * sizeof *metric);
        p->metric = metric;
        p->n_metric = n;
    }
    if (!rc && n > 0) { /* none yet: a sweep stopped before any point finished */
        for (int m = 0; m < n; m++)
            names[m] = sw->metric_names[order[m]];
        memcpy(sw->metric_names, names, (size_t)n * sizeof *names);
    }
    free(order);
    free(names);
    free(values);
    return rc;
}

int mfi_sweep_summarise(sweep *sw, mf_error *err)
{
    if (order_metrics(sw)) {
        mf_error_set(err, "out of memory for the summary");
        return -1;
    }
    stat_acc *block = NULL;
    config_row *rows = gather_rows(sw, &block);
    if (!rows) {
        mf_error_set(err, "out of memory for the summary");
        return -1;
    }
    mfi_text table = {0}, csv = {0}, md = {0};
    ranked_table(sw, rows, &table, &csv);
    summary_intro(sw, &md);
    if (table.s)
        mfi_text_puts(&md, table.s);
    metrics_table(sw, rows, &md);
    free(block);
    free(rows);

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
