/* The HTML reports: report.html of a run folder (curves, confusion matrices, robustness,
 * per-class and metric tables) and summary.html of a sweep folder (mean ± std per
 * configuration). Each is one self-contained page, its charts inline SVG, no script; every
 * chart is an <svg data-chart="…"> and every series in it one element with data-series="…",
 * so a test can count them. Private (compiled into libmmfuse and into the mmfuse program,
 * which cannot see libmmfuse's mfi_ symbols). */
#ifndef MF_TRAIN_REPORT_H
#define MF_TRAIN_REPORT_H

#include <mmfuse/host.h>

#include "../core/text.h"

/* run_dir/report.html from metrics.csv, result.json, config.yaml and manifest.json (each
 * optional, but metrics.csv or result.json must be there). Written atomically. */
int mfi_report_run(const char *run_dir, mf_error *err);
/* sweep_dir/summary.html from summary.csv (and sweep.json for links to the points). */
int mfi_report_sweep(const char *sweep_dir, mf_error *err);
/* The same, charting these metrics.csv columns across the points (val_<metric> when none). */
int mfi_report_sweep_with(const char *sweep_dir, const char *const *curves, int n_curves,
                          mf_error *err);

enum { MFI_REPORT_NONE, MFI_REPORT_RUN, MFI_REPORT_SWEEP };
/* What `dir` holds, by its files: a sweep (summary.csv), a run (metrics.csv or result.json). */
int mfi_report_kind(const char *dir);

/* ---------------------------------------------------------------- page text */
typedef mfi_text mfi_html; /* page text (text.h) */

/* Text with & < > " ' escaped, for element content and attribute values alike. */
void mfi_html_text(mfi_html *h, const char *text);
/* A number for a table cell (4 significant digits, integers as such); "–" when not finite. */
void mfi_html_num(mfi_html *h, double v);

/* ---------------------------------------------------------------- files and CSV (report_io.c) */
#define MFI_REPORT_PATH 4400
void mfi_report_path(char *out, const char *dir, const char *file); /* MFI_REPORT_PATH bytes */
int mfi_report_exists(const char *dir, const char *file);           /* a regular file */
char *mfi_report_read(const char *dir, const char *file);           /* NULL when unreadable */
/* *out the parsed file, NULL when absent; -1 (file:line:col named) when it is not JSON. */
struct json_t;
int mfi_report_json(const char *dir, const char *file, struct json_t **out, mf_error *err);

typedef struct mfi_csv {
    int rows, cols;  /* row 0 is the header */
    char **cell;     /* rows × cols, "" where a row was short; free(cell) when done */
    char *text;
} mfi_csv;

/* Split text in place (RFC 4180 quoting); -1 out of memory. */
int mfi_csv_parse(char *text, mfi_csv *t);
const char *mfi_csv_at(const mfi_csv *t, int r, int c);
int mfi_csv_col(const mfi_csv *t, const char *name); /* -1 when absent */
double mfi_csv_num(const mfi_csv *t, int r, int c); /* NAN unless a finite number */

/* The page's start (up to <title>), its style sheet, and the end: </body> added, written
 * atomically to dir/file, h freed. */
extern const char mfi_report_head[], mfi_report_style[];
int mfi_report_write(const char *dir, const char *file, mfi_html *h, mf_error *err);

/* ---------------------------------------------------------------- charts (report_svg.c) */
typedef struct mfi_series {
    const char *name;        /* data-series and the legend */
    const double *x, *y;     /* n points; a non-finite x or y is a gap */
    int n;
} mfi_series;

typedef struct mfi_line_chart {
    const char *id;          /* data-chart */
    const char *title, *xlabel, *ylabel;
    const mfi_series *series;
    int n_series;
    double mark_x;           /* a dashed vertical line (the best epoch); NAN for none */
    const char *mark_label;
} mfi_line_chart;

void mfi_svg_lines(mfi_html *h, const mfi_line_chart *c);

/* A confusion matrix (rows true, columns predicted) as a heat map coloured by each row's
 * share, counts written in the cells when they are big enough; any n (100 classes too). */
void mfi_svg_confusion(mfi_html *h, const char *id, const char *title,
                       const char *const *classes, int n, const double *counts);

/* Horizontal bars, one row per label, up to 4 series side by side, optional error bars
 * (±err) and a dashed reference line. */
typedef struct mfi_bar_chart {
    const char *id, *title, *xlabel;
    const char *const *labels;
    int n;
    const char *names[4];
    const double *value[4], *err[4]; /* n each; err may be NULL */
    int n_series;
    double ref;                      /* NAN for none */
    const char *ref_label;
} mfi_bar_chart;

void mfi_svg_bars(mfi_html *h, const mfi_bar_chart *c);

/* ---------------------------------------------------------------- a sweep's comparisons
 * (report_sweep_charts.c) */
struct json_t;
/* Test value against each swept key whose values are all numbers (summary.csv t: the keys in
 * columns key0 …, the test mean in column test). */
void mfi_sweep_key_charts(mfi_html *h, const mfi_csv *t, int key0, int n_keys, int test,
                          const char *metric);
/* From the points' folders (sweep.json sw): noise curves per modality, and the curves of
 * these metrics.csv columns, one line per configuration (mean over seeds). */
void mfi_sweep_point_charts(mfi_html *h, const char *dir, const struct json_t *sw,
                            const char *metric, const char *const *curves, int n_curves);

/* Each <svg data-chart="NAME"> of a written page (dir/page) as a standalone file
 * svg_dir/<prefix>NAME.svg, with the page's style sheet inside. */
int mfi_report_export_svg(const char *dir, const char *page, const char *svg_dir,
                          const char *prefix, mf_error *err);

#endif
