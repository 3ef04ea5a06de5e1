/* summary.html of a sweep folder, from summary.csv as sweep.c writes it:
 *
 *   rank,<swept keys…>,n,failed,best_val_M_mean,best_val_M_std,test_M_mean,test_M_std,
 *   epochs_mean,epochs_std,seconds_mean,seconds_std
 *
 * a row per configuration, ranked on validation: bars of each configuration's mean ± std
 * over seeds (validation and test), the table, and links to the points' own reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report.h"

typedef struct summary {
    const mfi_csv *t;
    int key0, n_keys;      /* the swept keys' columns */
    int val, test;         /* columns of best_val_M_mean and test_M_mean (std follows) */
    int epochs, seconds, done, failed;
    char metric[128];
} summary;

/* Find the columns; 0, or -1 when the header is not a sweep summary's. */
static int find_columns(summary *s, const mfi_csv *t)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->val = -1;
    for (int c = 0; c < t->cols && s->val < 0; c++) {
        const char *h = mfi_csv_at(t, 0, c);
        size_t len = strlen(h);
        if (strncmp(h, "best_val_", 9) == 0 && len > 14 && strcmp(h + len - 5, "_mean") == 0) {
            s->val = c;
            snprintf(s->metric, sizeof s->metric, "%.*s", (int)(len - 14), h + 9);
        }
    }
    if (s->val < 3 || t->cols < s->val + 4)
        return -1;
    char name[160];
    snprintf(name, sizeof name, "test_%s_mean", s->metric);
    s->test = mfi_csv_col(t, name);
    s->epochs = mfi_csv_col(t, "epochs_mean");
    s->seconds = mfi_csv_col(t, "seconds_mean");
    s->done = mfi_csv_col(t, "n");
    s->failed = mfi_csv_col(t, "failed");
    s->key0 = 1;
    s->n_keys = s->done > 1 ? s->done - 1 : s->val - 3;
    return 0;
}

/* A value's words without keys and brackets, as the point folders are named:
 * "{type: mlp, hidden: [64], out: 32}" → "mlp 64 32". */
static void value_words(mfi_html *b, const char *v)
{
    int gap = 0, any = 0;
    for (const char *p = v; *p;) {
        size_t word = strcspn(p, " ,{}[]\"");
        if (!word) {
            gap = 1;
            p++;
            continue;
        }
        if (p[word - 1] != ':') { /* "type:" is a key: left out */
            mfi_text_puts(b, gap && any ? " " : "");
            mfi_text_add(b, p, word);
            any = 1;
        }
        gap = 0;
        p += word;
    }
}

/* "#1 v1 · v2 · v3": the configuration's values (keys are in the table's header). */
static char *config_label(const summary *s, int r)
{
    mfi_html b = {0};
    const char *rank = mfi_csv_at(s->t, r, 0);
    mfi_text_printf(&b, "#%s ", *rank ? rank : "–");
    for (int k = 0; k < s->n_keys; k++) {
        mfi_text_puts(&b, k ? " · " : "");
        value_words(&b, mfi_csv_at(s->t, r, s->key0 + k));
    }
    return b.oom ? (free(b.s), NULL) : b.s;
}

static void bars(mfi_html *h, const summary *s)
{
    int n = s->t->rows - 1;
    char **labels = calloc((size_t)n + 1, sizeof *labels);
    double *v = calloc(4 * (size_t)n + 1, sizeof *v);
    for (int r = 0; labels && v && r < n; r++) {
        labels[r] = config_label(s, r + 1);
        v[r] = mfi_csv_num(s->t, r + 1, s->val);
        v[n + r] = mfi_csv_num(s->t, r + 1, s->val + 1);
        v[2 * n + r] = mfi_csv_num(s->t, r + 1, s->test);
        v[3 * n + r] = mfi_csv_num(s->t, r + 1, s->test >= 0 ? s->test + 1 : -1);
    }
    char title[256], xlabel[160], sv[160], st[160];
    snprintf(title, sizeof title, "%s per configuration: mean ± std over seeds", s->metric);
    snprintf(xlabel, sizeof xlabel, "%s", s->metric);
    snprintf(sv, sizeof sv, "best_val_%s", s->metric);
    snprintf(st, sizeof st, "test_%s", s->metric);
    int ok = labels && v;
    for (int r = 0; ok && r < n; r++)
        ok = labels[r] != NULL;
    mfi_bar_chart c = {.id = "sweep", .title = title, .xlabel = xlabel,
                       .labels = (const char *const *)labels, .n = n, .names = {sv, st},
                       .value = {v, v + 2 * n}, .err = {v + n, v + 3 * n},
                       .n_series = s->test >= 0 ? 2 : 1, .ref = NAN};
    if (ok)
        mfi_svg_bars(h, &c);
    for (int r = 0; labels && r < n; r++)
        free(labels[r]);
    free(labels);
    free(v);
}

/* "mean ± std" of the column pair at c; "–" when nothing finished. */
static void stat_cell(mfi_html *h, const summary *s, int r, int c)
{
    mfi_text_puts(h, "<td class=\"n\">");
    double m = c >= 0 ? mfi_csv_num(s->t, r, c) : NAN, sd = c >= 0 ? mfi_csv_num(s->t, r, c + 1) : NAN;
    mfi_html_num(h, m);
    if (isfinite(m) && isfinite(sd)) {
        mfi_text_puts(h, " ± ");
        mfi_html_num(h, sd);
    }
    mfi_text_puts(h, "</td>");
}

static void table(mfi_html *h, const summary *s)
{
    mfi_text_puts(h, "<table class=\"summary\"><tr><th>rank</th>");
    for (int k = 0; k < s->n_keys; k++) {
        mfi_text_puts(h, "<th>");
        mfi_html_text(h, mfi_csv_at(s->t, 0, s->key0 + k));
        mfi_text_puts(h, "</th>");
    }
    mfi_text_puts(h, "<th>n</th><th>failed</th><th>best val ");
    mfi_html_text(h, s->metric);
    mfi_text_puts(h, "</th><th>test ");
    mfi_html_text(h, s->metric);
    mfi_text_puts(h, "</th><th>epochs</th><th>seconds</th></tr>\n");
    for (int r = 1; r < s->t->rows; r++) {
        mfi_text_puts(h, "<tr><td class=\"n\">");
        mfi_html_text(h, mfi_csv_at(s->t, r, 0));
        mfi_text_puts(h, "</td>");
        for (int k = 0; k < s->n_keys; k++) {
            mfi_text_puts(h, "<td><code>");
            mfi_html_text(h, mfi_csv_at(s->t, r, s->key0 + k));
            mfi_text_puts(h, "</code></td>");
        }
        int cols[2] = {s->done, s->failed};
        for (int i = 0; i < 2; i++) {
            mfi_text_puts(h, "<td class=\"n\">");
            mfi_html_num(h, mfi_csv_num(s->t, r, cols[i]));
            mfi_text_puts(h, "</td>");
        }
        stat_cell(h, s, r, s->val);
        stat_cell(h, s, r, s->test);
        stat_cell(h, s, r, s->epochs);
        stat_cell(h, s, r, s->seconds);
        mfi_text_puts(h, "</tr>\n");
    }
    mfi_text_puts(h, "</table>\n");
}

/* The points of sweep.json, each linked to its report (or its folder). */
static void points(mfi_html *h, const char *dir, const json_t *sw)
{
    const json_t *list = json_object_get(sw, "points"), *p;
    if (!json_is_array(list) || !json_array_size(list))
        return;
    mfi_text_printf(h, "<details><summary>The %zu points</summary><table class=\"points\">"
                       "<tr><th>point</th><th>configuration</th><th>settings</th><th>status</th></tr>\n",
                    json_array_size(list));
    size_t i;
    json_array_foreach(list, i, p) {
        const char *folder = json_string_value(json_object_get(p, "folder"));
        if (!folder || strstr(folder, "..") || strchr(folder, '/'))
            continue;
        char sub[MFI_REPORT_PATH];
        mfi_report_path(sub, dir, folder);
        int has_report = mfi_report_exists(sub, "report.html");
        json_t *res = NULL;
        mfi_report_json(sub, "result.json", &res, NULL);
        const char *status = json_string_value(json_object_get(res, "status"));
        mfi_text_puts(h, "<tr><td><a href=\"");
        mfi_html_text(h, folder);
        mfi_text_puts(h, has_report ? "/report.html\">" : "/\">");
        mfi_html_text(h, folder);
        mfi_text_puts(h, "</a></td><td class=\"n\">");
        mfi_html_num(h, json_is_number(json_object_get(p, "configuration"))
                            ? json_number_value(json_object_get(p, "configuration")) : NAN);
        mfi_text_puts(h, "</td><td><code>");
        const json_t *o;
        size_t k;
        json_array_foreach(json_object_get(p, "overrides"), k, o) {
            mfi_text_puts(h, k ? "; " : "");
            mfi_html_text(h, json_string_value(o));
        }
        mfi_text_puts(h, "</code></td><td>");
        mfi_html_text(h, status ? status : "not run");
        mfi_text_puts(h, "</td></tr>\n");
        json_decref(res);
    }
    mfi_text_puts(h, "</table></details>\n");
}

int mfi_report_sweep(const char *dir, mf_error *err)
{
    return mfi_report_sweep_with(dir, NULL, 0, err);
}

int mfi_report_sweep_with(const char *dir, const char *const *curves, int n_curves, mf_error *err)
{
    char path[MFI_REPORT_PATH];
    mfi_report_path(path, dir, "summary.csv");
    char *text = mfi_report_read(dir, "summary.csv");
    if (!text) {
        mf_error_set(err, "%s: cannot be read: not a sweep folder, or its sweep has not finished", path);
        return -1;
    }
    mfi_csv t;
    summary s;
    if (mfi_csv_parse(text, &t)) {
        free(text);
        mf_error_set(err, "%s: out of memory", path);
        return -1;
    }
    if (find_columns(&s, &t)) {
        mf_error_set(err, "%s: not a sweep summary (no best_val_<metric>_mean column)", path);
        free(t.cell);
        free(text);
        return -1;
    }
    json_t *sw = NULL;
    mfi_report_json(dir, "sweep.json", &sw, NULL); /* only for the title and links */
    const char *file = json_string_value(json_object_get(sw, "file"));
    const char *base = file && strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    mfi_html h = {0};
    mfi_text_puts(&h, mfi_report_head);
    mfi_text_puts(&h, "<title>sweep ");
    mfi_html_text(&h, base ? base : dir);
    mfi_text_puts(&h, " — mmfuse summary</title>");
    mfi_text_puts(&h, mfi_report_style);
    mfi_text_puts(&h, "</head><body>\n<h1>Sweep of ");
    mfi_html_text(&h, base ? base : dir);
    mfi_text_printf(&h, "</h1><p class=\"sub\">%d configuration%s in ", t.rows - 1,
                    t.rows == 2 ? "" : "s");
    mfi_html_text(&h, dir);
    const json_t *o;
    size_t i;
    json_array_foreach(json_object_get(sw, "overrides"), i, o) {
        mfi_text_puts(&h, i ? " " : " · every point with ");
        mfi_text_puts(&h, "<code>-o ");
        mfi_html_text(&h, json_string_value(o));
        mfi_text_puts(&h, "</code>");
    }
    mfi_text_puts(&h, ". Ranked on the mean best validation ");
    mfi_html_text(&h, s.metric);
    mfi_text_puts(&h, " (the test value is reported, never used to rank); error bars and ± are "
                      "the sample standard deviation over the configuration's seeds.</p>\n");
    if (t.rows > 1) {
        mfi_text_puts(&h, "<div class=\"charts\">\n");
        bars(&h, &s);
        mfi_sweep_key_charts(&h, &t, s.key0, s.n_keys, s.test, s.metric);
        mfi_sweep_point_charts(&h, dir, sw, s.metric, curves, n_curves);
        mfi_text_puts(&h, "</div>\n");
    }
    table(&h, &s);
    points(&h, dir, sw);
    mfi_text_puts(&h, "<p class=\"sub\">Written by mmfuse " MF_VERSION_STRING
                      "; <code>mmfuse report DIR</code> writes it again.</p>\n");
    json_decref(sw);
    free(t.cell);
    free(text);
    return mfi_report_write(dir, "summary.html", &h, err);
}
