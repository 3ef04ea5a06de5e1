/* report.html of a run folder and summary.html of a sweep folder, read back from the files
 * the run or sweep wrote (so `mmfuse report DIR` regenerates either at any time):
 *
 *   metrics.csv    a row per validation point; every train_X with a val_X is one chart of
 *                  two series, any other column (lr, a val-only metric) a chart of its own
 *   result.json    status, best epoch, test and val metrics, details (confusion matrices,
 *                  per-class tables) and robustness; every part optional
 *   config.yaml    the experiment's name and key settings; manifest.json provenance
 *   summary.csv    (a sweep) mean ± std per configuration, ranked; sweep.json its points
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report.h"

/* ---------------------------------------------------------------- JSON helpers */
static double jnum(const json_t *j)
{
    return json_is_number(j) ? json_number_value(j) : NAN;
}

/* A JSON array of numbers into a new array (NAN where not a number); *n its length. */
static double *jnum_array(const json_t *a, int *n)
{
    *n = json_is_array(a) ? (int)json_array_size(a) : 0;
    double *v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; v && i < *n; i++)
        v[i] = jnum(json_array_get(a, (size_t)i));
    return v;
}

static void table_row_num(mfi_html *h, const char *label, const double *v, int n, int sel)
{
    mfi_text_puts(h, sel ? "<tr class=\"sel\"><td>" : "<tr><td>");
    mfi_html_text(h, label);
    mfi_text_puts(h, "</td>");
    for (int i = 0; i < n; i++) {
        mfi_text_puts(h, "<td class=\"n\">");
        mfi_html_num(h, v[i]);
        mfi_text_puts(h, "</td>");
    }
    mfi_text_puts(h, "</tr>\n");
}

/* ---------------------------------------------------------------- run: header */
/* A config node as one line of flow YAML (shortened), for the settings table. */
static void flow(mfi_html *b, const mf_config *n, int depth)
{
    if (!n || b->len > 400)
        return;
    int kind = mf_config_node_kind(n), len = mf_config_length(n);
    if (kind == MF_CONFIG_SCALAR) {
        mfi_text_puts(b, mf_config_is_null(n) ? "null" : mf_config_scalar(n));
        return;
    }
    mfi_text_puts(b, kind == MF_CONFIG_LIST ? "[" : "{");
    for (int i = 0; i < len && depth < 4; i++) {
        if (i)
            mfi_text_puts(b, ", ");
        if (kind == MF_CONFIG_MAP)
            mfi_text_printf(b, "%s: ", mf_config_key_at(n, i));
        flow(b, mf_config_at(n, i), depth + 1);
    }
    mfi_text_puts(b, kind == MF_CONFIG_LIST ? "]" : "}");
}

static void setting_row(mfi_html *h, const char *label, const mf_config *n)
{
    if (!n)
        return;
    mfi_html flat = {0};
    flow(&flat, n, 0);
    mfi_text_puts(h, "<tr><th>");
    mfi_html_text(h, label);
    mfi_text_puts(h, "</th><td><code>");
    mfi_html_text(h, flat.s);
    mfi_text_puts(h, "</code></td></tr>\n");
    free(flat.s);
}

static void settings(mfi_html *h, const mf_config *cfg)
{
    mfi_text_puts(h, "<table class=\"settings\">\n");
    setting_row(h, "data", mf_config_get(cfg, "data"));
    const mf_config *enc = mf_config_get(cfg, "model.encoders");
    for (int i = 0; enc && mf_config_node_kind(enc) == MF_CONFIG_MAP && i < mf_config_length(enc); i++) {
        char label[300];
        snprintf(label, sizeof label, "encoder %s", mf_config_key_at(enc, i));
        setting_row(h, label, mf_config_at(enc, i));
    }
    static const char *const keys[] = {"model.fusion", "model.head", "model.missing", "model.normalize", "loss",
                                       "optim", "schedule", "train", "seed", NULL};
    for (int i = 0; keys[i]; i++)
        setting_row(h, strchr(keys[i], '.') ? strchr(keys[i], '.') + 1 : keys[i],
                    mf_config_get(cfg, keys[i]));
    mfi_text_puts(h, "</table>\n");
}

static void provenance(mfi_html *h, const json_t *m)
{
    static const char *const keys[] = {"mmfuse", "abi", "started", "host", "cpu", "cores",
                                       "threads", "seed", "kernel", NULL};
    mfi_text_puts(h, "<h2>Provenance</h2><table class=\"manifest\">\n");
    for (int i = 0; keys[i]; i++) {
        const json_t *v = json_object_get(m, keys[i]);
        if (!json_is_string(v) && !json_is_number(v))
            continue;
        mfi_text_printf(h, "<tr><th>%s</th><td>", keys[i]);
        if (json_is_string(v))
            mfi_html_text(h, json_string_value(v));
        else
            mfi_html_num(h, jnum(v));
        mfi_text_puts(h, "</td></tr>\n");
    }
    const json_t *plugins = json_object_get(m, "plugins"), *p;
    size_t i;
    json_array_foreach(plugins, i, p) {
        const char *f[4] = {"kind", "name", "version", "sha256"};
        mfi_text_puts(h, "<tr><th>plugin</th><td>");
        for (int k = 0; k < 4; k++) {
            const char *s = json_string_value(json_object_get(p, f[k]));
            if (s && *s) {
                char part[208];
                snprintf(part, sizeof part, "%.*s", k == 3 ? 12 : 200, s);
                mfi_text_puts(h, k == 3 ? " <code>sha256 " : k ? " " : "");
                mfi_html_text(h, part);
                mfi_text_puts(h, k == 3 ? "…</code>" : "");
            }
        }
        mfi_text_puts(h, "</td></tr>\n");
    }
    mfi_text_puts(h, "</table>\n");
}

/* " · 1684 parameters · 0.76 ms per step …" from result.json's timing. */
static void timing(mfi_html *h, const json_t *t)
{
    double v[4];
    static const char *const keys[] = {"params", "step_ms", "samples_per_s", "peak_rss_mb"};
    for (int i = 0; i < 4; i++)
        v[i] = jnum(json_object_get(t, keys[i]));
    if (isfinite(v[0]))
        mfi_text_printf(h, " · %.0f parameters", v[0]);
    if (isfinite(v[1]))
        mfi_text_printf(h, " · %.3g ms per step", v[1]);
    if (isfinite(v[2]))
        mfi_text_printf(h, " · %.0f samples/s", v[2]);
    if (isfinite(v[3]))
        mfi_text_printf(h, " · peak memory %.0f MB", v[3]);
}

static void header(mfi_html *h, const char *dir, const mf_config *cfg, const json_t *res)
{
    const mf_config *name = mf_config_get(cfg, "name");
    const char *title = name && mf_config_scalar(name) ? mf_config_scalar(name) : "run";
    mfi_text_puts(h, "<title>");
    mfi_html_text(h, title);
    mfi_text_puts(h, " — mmfuse report</title>");
    mfi_text_puts(h, mfi_report_style);
    mfi_text_puts(h, "</head><body>\n<h1>");
    mfi_html_text(h, title);
    mfi_text_puts(h, "</h1><p class=\"sub\">");
    mfi_html_text(h, dir);
    const char *status = json_string_value(json_object_get(res, "status"));
    if (status) {
        mfi_text_printf(h, " · <span class=\"%s\">", strcmp(status, "done") ? "bad" : "ok");
        mfi_html_text(h, status);
        mfi_text_puts(h, "</span>");
    }
    const char *select = json_string_value(json_object_get(res, "select"));
    if (select) {
        mfi_text_puts(h, " · selected on ");
        mfi_html_text(h, select);
    }
    struct { const char *key, *what; } facts[] = {{"best_epoch", "best epoch"}, {"epochs", "epochs"},
                                                  {"seed", "seed"}, {"seconds", "seconds"}};
    for (int i = 0; i < 4; i++) {
        double v = jnum(json_object_get(res, facts[i].key));
        if (isfinite(v)) {
            mfi_text_printf(h, " · %s ", facts[i].what);
            mfi_html_num(h, v);
        }
    }
    timing(h, json_object_get(res, "timing"));
    const char *msg = json_string_value(json_object_get(res, "message"));
    if (msg) {
        mfi_text_puts(h, "</p><p class=\"bad\">");
        mfi_html_text(h, msg);
    }
    mfi_text_puts(h, "</p>\n");
    if (cfg)
        settings(h, cfg);
}

/* ---------------------------------------------------------------- run: results */
static void metrics_table(mfi_html *h, const json_t *res)
{
    const json_t *test = json_object_get(res, "test"), *val = json_object_get(res, "val");
    if (!json_is_object(test) && !json_is_object(val))
        return;
    const char *select = json_string_value(json_object_get(res, "select"));
    mfi_text_puts(h, "<h2>Metrics</h2><table class=\"metrics\"><tr><th>metric</th>"
                     "<th>validation (best)</th><th>test</th></tr>\n");
    const json_t *both[2] = {test, val}, *v;
    const char *key;
    for (int s = 0; s < 2; s++)
        json_object_foreach((json_t *)both[s], key, v) {
            if (s == 1 && json_object_get(test, key))
                continue; /* listed with the test metrics */
            double row[2] = {jnum(json_object_get(val, key)), jnum(json_object_get(test, key))};
            table_row_num(h, key, row, 2, select && strncmp(select, "val.", 4) == 0 &&
                                              strcmp(select + 4, key) == 0);
        }
    mfi_text_puts(h, "</table>\n");
}

/* The best point on the charts' x axis: the best epoch, or its last step when x is steps. */
static double best_x(const mfi_csv *m, int xcol, int epoch_col, const json_t *res)
{
    double best = jnum(json_object_get(res, "best_epoch"));
    if (xcol == epoch_col || !isfinite(best))
        return xcol == epoch_col ? best : NAN;
    double bs = jnum(json_object_get(res, "best_step")), at = NAN;
    if (isfinite(bs))
        return bs;
    for (int r = 1; r < m->rows; r++)
        if (mfi_csv_num(m, r, epoch_col) == best)
            at = mfi_csv_num(m, r, xcol);
    return at;
}

/* x: epochs when each row has its own, else steps, else the row number. */
static int pick_x(const mfi_csv *m, int *epoch_col)
{
    int e = mfi_csv_col(m, "epoch"), s = mfi_csv_col(m, "step"), distinct = e >= 0;
    for (int r = 2; distinct && r < m->rows; r++)
        distinct = mfi_csv_num(m, r, e) > mfi_csv_num(m, r - 1, e);
    *epoch_col = e;
    return distinct || s < 0 ? e : s;
}

static void curve_charts(mfi_html *h, const mfi_csv *m, const json_t *res)
{
    int epoch_col, xcol = pick_x(m, &epoch_col), n = m->rows - 1;
    double *x = calloc((size_t)n + 1, sizeof *x), *y[2] = {calloc((size_t)n + 1, sizeof(double)),
                                                           calloc((size_t)n + 1, sizeof(double))};
    if (!x || !y[0] || !y[1])
        goto done;
    for (int r = 0; r < n; r++)
        x[r] = xcol >= 0 ? mfi_csv_num(m, r + 1, xcol) : r + 1;
    double mark = best_x(m, xcol, epoch_col, res);
    const char *xlabel = xcol < 0 ? "validation" : mfi_csv_at(m, 0, xcol);
    mfi_text_puts(h, "<h2>Training curves</h2><div class=\"charts\">\n");
    for (int c = 0; c < m->cols; c++) {
        const char *name = mfi_csv_at(m, 0, c);
        if (c == xcol || c == epoch_col || !strcmp(name, "step") || !strcmp(name, "seconds") || !*name)
            continue;
        char partner[512];
        const char *base = name;
        int pair = -1;
        if (strncmp(name, "val_", 4) == 0) {
            snprintf(partner, sizeof partner, "train_%s", name + 4);
            if (mfi_csv_col(m, partner) >= 0)
                continue; /* drawn with its train_ column */
            base = name + 4;
        } else if (strncmp(name, "train_", 6) == 0) {
            snprintf(partner, sizeof partner, "val_%s", name + 6);
            pair = mfi_csv_col(m, partner);
            base = name + 6;
        }
        mfi_series s[2] = {{name, x, y[0], n}, {pair >= 0 ? mfi_csv_at(m, 0, pair) : "", x, y[1], n}};
        for (int r = 0; r < n; r++) {
            y[0][r] = mfi_csv_num(m, r + 1, c);
            y[1][r] = mfi_csv_num(m, r + 1, pair);
        }
        char label[64];
        snprintf(label, sizeof label, "best epoch %g", jnum(json_object_get(res, "best_epoch")));
        mfi_line_chart chart = {.id = base, .title = base, .xlabel = xlabel, .ylabel = base,
                                .series = s, .n_series = pair >= 0 ? 2 : 1, .mark_x = mark,
                                .mark_label = label};
        mfi_svg_lines(h, &chart);
    }
    mfi_text_puts(h, "</div>\n");
done:
    free(x);
    free(y[0]);
    free(y[1]);
}

/* ---------------------------------------------------------------- run: details */
static void per_class_table(mfi_html *h, const json_t *rows)
{
    static const char *const cols[] = {"precision", "recall", "f1", "support"};
    mfi_text_puts(h, "<table class=\"per-class\"><tr><th>class</th><th>precision</th>"
                     "<th>recall</th><th>F1</th><th>support</th></tr>\n");
    const json_t *r;
    size_t i;
    json_array_foreach(rows, i, r) {
        double v[4];
        for (int k = 0; k < 4; k++)
            v[k] = jnum(json_object_get(r, cols[k]));
        const char *name = json_string_value(json_object_get(r, "class"));
        char index[32];
        snprintf(index, sizeof index, "%zu", i);
        table_row_num(h, name ? name : index, v, 4, 0);
    }
    mfi_text_puts(h, "</table>\n");
}

/* The confusion matrix of a split, if it is a square of numbers (classes named or not). */
static void confusion(mfi_html *h, const char *split, const json_t *d)
{
    const json_t *m = json_object_get(d, "confusion"), *classes = json_object_get(d, "classes");
    int n = json_is_array(m) ? (int)json_array_size(m) : 0;
    if (!n)
        return;
    double *counts = calloc((size_t)n * (size_t)n, sizeof *counts);
    const char **names = calloc((size_t)n, sizeof *names);
    char (*index)[16] = calloc((size_t)n, sizeof *index);
    int square = counts && names && index;
    for (int i = 0; square && i < n; i++) {
        int len;
        double *row = jnum_array(json_array_get(m, (size_t)i), &len);
        square = row && len == n;
        if (square)
            memcpy(counts + (size_t)i * n, row, (size_t)n * sizeof *row);
        free(row);
        snprintf(index[i], sizeof index[i], "%d", i);
        const char *s = json_string_value(json_array_get(classes, (size_t)i));
        names[i] = s ? s : index[i];
    }
    char id[64], title[96];
    snprintf(id, sizeof id, "confusion-%s", split);
    snprintf(title, sizeof title, "%s confusion matrix", split);
    if (square)
        mfi_svg_confusion(h, id, title, names, n, counts);
    else
        mfi_text_printf(h, "<p class=\"bad\">The %s confusion matrix in result.json is not a square "
                           "of numbers.</p>\n", split);
    free(counts);
    free(names);
    free(index);
}

static void details(mfi_html *h, const json_t *res)
{
    const json_t *all = json_object_get(res, "details");
    static const char *const splits[] = {"test", "val"};
    for (int s = 0; s < 2; s++) {
        const json_t *d = json_object_get(all, splits[s]);
        if (!json_is_object(d))
            continue;
        mfi_text_puts(h, s ? "<details><summary><h2 style=\"display:inline\">Validation set</h2>"
                             "</summary>\n" : "<h2>Test set</h2>\n");
        mfi_text_puts(h, "<div class=\"charts\">");
        confusion(h, splits[s], d);
        if (json_is_array(json_object_get(d, "per_class")))
            per_class_table(h, json_object_get(d, "per_class"));
        mfi_text_puts(h, s ? "</div></details>\n" : "</div>\n");
    }
}

/* ---------------------------------------------------------------- run: robustness */
static void noise_chart(mfi_html *h, const json_t *noise, const char *metric)
{
    int n = json_is_object(noise) ? (int)json_object_size(noise) : 0, k = 0;
    if (!n)
        return;
    mfi_series *s = calloc((size_t)n, sizeof *s);
    double **mem = calloc((size_t)n * 2, sizeof *mem);
    const char *mod;
    const json_t *v;
    json_object_foreach((json_t *)noise, mod, v) {
        if (!s || !mem)
            break;
        int nx, ny;
        mem[2 * k] = jnum_array(json_object_get(v, "levels"), &nx);
        mem[2 * k + 1] = jnum_array(json_object_get(v, "values"), &ny);
        s[k] = (mfi_series){mod, mem[2 * k], mem[2 * k + 1], nx < ny ? nx : ny};
        k++;
    }
    char title[128];
    snprintf(title, sizeof title, "%s under Gaussian noise on one modality", metric);
    mfi_line_chart c = {.id = "robustness-noise", .title = title, .xlabel = "noise level (σ)",
                        .ylabel = metric, .series = s, .n_series = k, .mark_x = NAN};
    if (s && mem)
        mfi_svg_lines(h, &c);
    for (int i = 0; mem && i < 2 * k; i++)
        free(mem[i]);
    free(mem);
    free(s);
}

static void robustness(mfi_html *h, const json_t *rob)
{
    if (!json_is_object(rob))
        return;
    const char *metric = json_string_value(json_object_get(rob, "metric"));
    metric = metric ? metric : "metric";
    double clean = jnum(json_object_get(rob, "clean"));
    const json_t *drop = json_object_get(rob, "drop"), *v;
    const char *mod;
    mfi_text_puts(h, "<h2>Robustness</h2><div class=\"charts\">\n");
    noise_chart(h, json_object_get(rob, "noise"), metric);
    int n = json_is_object(drop) ? (int)json_object_size(drop) : 0, k = 0;
    const char **labels = calloc((size_t)n + 1, sizeof *labels);
    double *values = calloc((size_t)n + 1, sizeof *values);
    json_object_foreach((json_t *)drop, mod, v) {
        if (labels && values) {
            labels[k] = mod;
            values[k++] = jnum(v);
        }
    }
    char title[128], xlabel[96];
    snprintf(title, sizeof title, "%s with one modality missing", metric);
    snprintf(xlabel, sizeof xlabel, "%s", metric);
    mfi_bar_chart c = {.id = "robustness-drop", .title = title, .xlabel = xlabel, .labels = labels,
                       .n = k, .names = {"missing"}, .value = {values}, .n_series = 1,
                       .ref = clean, .ref_label = "clean"};
    if (k)
        mfi_svg_bars(h, &c);
    free(labels);
    free(values);
    mfi_text_puts(h, "</div>\n<table class=\"robustness\"><tr><th>modality</th><th>missing</th>"
                     "<th>relative robustness</th><th>effective robustness</th></tr>\n");
    const json_t *rel = json_object_get(rob, "relative"), *eff = json_object_get(rob, "effective");
    const json_t *sets[3] = {drop, rel, eff};
    for (int s = 0; s < 3; s++)
        json_object_foreach((json_t *)sets[s], mod, v) {
            int seen = 0;
            for (int t = 0; t < s; t++)
                seen |= json_object_get(sets[t], mod) != NULL;
            if (seen)
                continue;
            double row[3] = {jnum(json_object_get(drop, mod)), jnum(json_object_get(rel, mod)),
                             jnum(json_object_get(eff, mod))};
            table_row_num(h, mod, row, 3, 0);
        }
    double none[3] = {clean, NAN, NAN};
    table_row_num(h, "(none: clean)", none, 3, 0);
    mfi_text_puts(h, "</table>\n");
}

/* ---------------------------------------------------------------- the page */
int mfi_report_run(const char *dir, mf_error *err)
{
    if (mfi_report_kind(dir) != MFI_REPORT_RUN) {
        mf_error_set(err, "%s: not a run folder (it has neither metrics.csv nor result.json)", dir);
        return -1;
    }
    json_t *res = NULL, *manifest = NULL;
    if (mfi_report_json(dir, "result.json", &res, err) || mfi_report_json(dir, "manifest.json", &manifest, err)) {
        json_decref(res);
        return -1;
    }
    char path[MFI_REPORT_PATH];
    mfi_report_path(path, dir, "config.yaml");
    mf_config *cfg = mfi_report_exists(dir, "config.yaml") ? mf_config_load(path, NULL) : NULL;
    mfi_html h = {0};
    mfi_text_puts(&h, mfi_report_head);
    header(&h, dir, cfg, res);
    metrics_table(&h, res);
    char *text = mfi_report_read(dir, "metrics.csv");
    mfi_csv m;
    if (text && mfi_csv_parse(text, &m) == 0) {
        if (m.rows > 1)
            curve_charts(&h, &m, res);
        free(m.cell);
    }
    free(text);
    details(&h, res);
    robustness(&h, json_object_get(res, "robustness"));
    if (json_is_object(manifest))
        provenance(&h, manifest);
    mfi_text_puts(&h, "<p class=\"sub\">Written by mmfuse " MF_VERSION_STRING
                      "; <code>mmfuse report DIR</code> writes it again.</p>\n");
    mf_config_free(cfg);
    json_decref(res);
    json_decref(manifest);
    return mfi_report_write(dir, "report.html", &h, err);
}
