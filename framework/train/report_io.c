/* What the report pages read and write: files of a folder, CSV, the page's frame. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "report.h"

const char mfi_report_style[] =
    "<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1180px;"
    "color:#222;padding:0 16px}h1{margin:0 0 4px}h2{margin:28px 0 8px;border-bottom:1px solid "
    "#ddd}.sub{color:#555;margin:0 0 12px}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}th{background:#f4f4f4}tr.sel td{font-weight:600}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}svg.chart{background:#fff;border:1px solid "
    "#e4e4e4}svg text{font:11px system-ui,sans-serif;fill:#333}svg .title{font-size:13px;"
    "font-weight:600}svg .axis{font-size:12px}svg text.hi{fill:#fff}.grid{stroke:#eee}.frame{fill:none;stroke:#999}"
    ".line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}.mark{stroke:#666;"
    "stroke-dasharray:4 3}.marklabel{fill:#444}.err{stroke:#222;fill:none}.cell{stroke:#fff;"
    "stroke-width:.5}.fine .cell{stroke:none}code{background:#f4f4f4;padding:0 3px}.bad{color:#b00}</style>";

/* ---------------------------------------------------------------- files */
void mfi_report_path(char *out, const char *dir, const char *file)
{
    snprintf(out, MFI_REPORT_PATH, "%s/%s", dir, file);
}

int mfi_report_exists(const char *dir, const char *file)
{
    char path[MFI_REPORT_PATH];
    struct stat st;
    mfi_report_path(path, dir, file);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *mfi_report_read(const char *dir, const char *file)
{
    char path[MFI_REPORT_PATH];
    mfi_report_path(path, dir, file);
    return mfi_text_read_file(path);
}

/* JSON file or NULL (absent); a file that is there but not JSON is an error. */
int mfi_report_json(const char *dir, const char *file, json_t **out, mf_error *err)
{
    char path[MFI_REPORT_PATH];
    json_error_t je;
    *out = NULL;
    if (!mfi_report_exists(dir, file))
        return 0;
    mfi_report_path(path, dir, file);
    *out = json_load_file(path, 0, &je);
    if (!*out) {
        mf_error_set(err, "%s:%d:%d: not valid JSON: %s", path, je.line, je.column, je.text);
        return -1;
    }
    return 0;
}

int mf_report_write(const char *dir, const char **page, mf_error *err)
{
    return mf_report_write_with(dir, NULL, page, err);
}

int mf_report_write_with(const char *dir, const mf_report_options *opts, const char **page,
                         mf_error *err)
{
    mf_report_options none = {.struct_size = sizeof none};
    if (!opts || opts->struct_size < sizeof *opts)
        opts = &none;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        mf_error_set(err, "mmfuse report: '%s' is not a folder", dir);
        return MF_EXIT_BAD_INPUT;
    }
    const int kind = mfi_report_kind(dir);
    if (kind == MFI_REPORT_NONE) {
        mf_error_set(err, "mmfuse report: '%s' is neither a run folder (no metrics.csv or "
                     "result.json) nor a sweep folder (no summary.csv)", dir);
        return MF_EXIT_BAD_INPUT;
    }
    if (access(dir, W_OK) != 0) {
        mf_error_set(err, "mmfuse report: cannot write in '%s'", dir);
        return MF_EXIT_FAILED;
    }
    if (page)
        *page = kind == MFI_REPORT_RUN ? "report.html" : "summary.html";
    /* -2: the page could not be written; other failures are the inputs' */
    const char *file = kind == MFI_REPORT_RUN ? "report.html" : "summary.html";
    int rc = kind == MFI_REPORT_RUN ? mfi_report_run(dir, err)
                                    : mfi_report_sweep_with(dir, opts->curves, opts->n_curves, err);
    if (rc)
        return rc == -2 ? MF_EXIT_FAILED : MF_EXIT_BAD_INPUT;
    if (opts->svg_dir && mfi_report_export_svg(dir, file, opts->svg_dir, opts->svg_prefix, err))
        return MF_EXIT_FAILED;
    return MF_EXIT_OK;
}

int mfi_report_kind(const char *dir)
{
    if (mfi_report_exists(dir, "summary.csv"))
        return MFI_REPORT_SWEEP;
    if (mfi_report_exists(dir, "metrics.csv") || mfi_report_exists(dir, "result.json"))
        return MFI_REPORT_RUN;
    return MFI_REPORT_NONE;
}

/* ---------------------------------------------------------------- CSV */
/* Split text in place (RFC 4180 quoting); 0, or -1 out of memory. */
int mfi_csv_parse(char *text, mfi_csv *t)
{
    memset(t, 0, sizeof *t);
    t->text = text;
    size_t n = 0, cap = 64;
    char **f = malloc(cap * sizeof *f);
    int *row_of = malloc(cap * sizeof *row_of), row = 0, oom = !f || !row_of;
    char *p = text;
    while (!oom && *p) {
        if (n == cap) {
            cap *= 2;
            char **nf = realloc(f, cap * sizeof *f);
            int *nr = realloc(row_of, cap * sizeof *row_of);
            f = nf ? nf : f, row_of = nr ? nr : row_of;
            if ((oom = !nf || !nr))
                break;
        }
        char *start = p, *w = p;
        if (*p == '"') {
            for (p++; *p && !(*p == '"' && p[1] != '"'); p++)
                *w++ = *p == '"' ? *++p : *p;
            if (*p == '"')
                p++;
        }
        while (*p && *p != ',' && *p != '\n' && *p != '\r')
            *w++ = *p++;
        char end = *p;
        *w = '\0';
        f[n] = start, row_of[n++] = row;
        p += end != '\0';
        if (end == '\r' && *p == '\n')
            p++;
        if (end == '\n' || end == '\r' || end == '\0')
            row++;
    }
    if (oom) {
        free(f);
        free(row_of);
        return -1;
    }
    for (size_t i = 0; i < n && row_of[i] == 0; i++)
        t->cols++;
    t->rows = n ? row_of[n - 1] + 1 : 0;
    t->cell = calloc((size_t)t->rows * (size_t)t->cols + 1, sizeof *t->cell);
    for (int i = 0; t->cell && i < t->rows * t->cols; i++)
        t->cell[i] = "";
    for (size_t i = 0, col = 0; t->cell && i < n; i++) {
        col = i && row_of[i] == row_of[i - 1] ? col + 1 : 0;
        if (col < (size_t)t->cols)
            t->cell[row_of[i] * t->cols + (int)col] = f[i];
    }
    free(f);
    free(row_of);
    return t->cell ? 0 : -1;
}

const char *mfi_csv_at(const mfi_csv *t, int r, int c)
{
    return t->cell[r * t->cols + c];
}

int mfi_csv_col(const mfi_csv *t, const char *name)
{
    for (int c = 0; c < t->cols; c++)
        if (strcmp(mfi_csv_at(t, 0, c), name) == 0)
            return c;
    return -1;
}

/* A cell as a number; empty, "nan", "null" or not a number: NAN. */
double mfi_csv_num(const mfi_csv *t, int r, int c)
{
    const char *s = c >= 0 ? mfi_csv_at(t, r, c) : "";
    char *end;
    double v = strtod(s, &end);
    return end != s && *end == '\0' && isfinite(v) ? v : NAN;
}

int mfi_report_write(const char *dir, const char *file, mfi_html *h, mf_error *err)
{
    mfi_text_puts(h, "</body></html>\n");
    char path[MFI_REPORT_PATH];
    mfi_report_path(path, dir, file);
    int rc = -2; /* not written: the machine's fault (memory, disk), not the inputs' */
    if (h->oom)
        mf_error_set(err, "%s: out of memory", path);
    else
        rc = mf_write_file_atomic(path, h->s, h->len, err) ? -2 : 0;
    free(h->s);
    return rc;
}

const char mfi_report_head[] = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                                "<link rel=\"icon\" href=\"data:,\">";


/* ---------------------------------------------------------------- charts as files */
/* A chart's name as a file name: [A-Za-z0-9._-] kept, anything else '_'. */
static void chart_file_name(char *out, size_t size, const char *prefix, const char *id, size_t len)
{
    size_t n = (size_t)snprintf(out, size, "%s", prefix);
    for (size_t i = 0; i < len && n + 5 < size; i++) {
        char c = id[i];
        out[n++] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", c) ? c : '_';
    }
    snprintf(out + n, size - n, ".svg");
}

/* One chart (the text from "<svg " to its "</svg>") as a standalone SVG document: the XML
 * namespace, the page's style sheet inside (CDATA: it is CSS, not markup). */
static int write_chart(const char *svg_dir, const char *file, const char *start, size_t len,
                       mf_error *err)
{
    const char *open_end = memchr(start, '>', len);
    if (!open_end)
        return 0;
    mfi_text b = {0};
    size_t style_len = strlen(mfi_report_style) - strlen("<style>") - strlen("</style>");
    mfi_text_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    mfi_text_add(&b, start + 4, (size_t)(open_end - start - 4) + 1);
    mfi_text_puts(&b, "<style><![CDATA[");
    mfi_text_add(&b, mfi_report_style + strlen("<style>"), style_len);
    mfi_text_puts(&b, "]]></style>");
    mfi_text_add(&b, open_end + 1, len - (size_t)(open_end + 1 - start));
    mfi_text_puts(&b, "\n");
    char path[MFI_REPORT_PATH];
    mfi_report_path(path, svg_dir, file);
    int rc = -1;
    if (b.oom)
        mf_error_set(err, "%s: out of memory", path);
    else
        rc = mf_write_file_atomic(path, b.s, b.len, err);
    free(b.s);
    return rc;
}

int mfi_report_export_svg(const char *dir, const char *page, const char *svg_dir,
                          const char *prefix, mf_error *err)
{
    char *html = mfi_report_read(dir, page);
    if (!html) {
        mf_error_set(err, "%s/%s: cannot be read", dir, page);
        return -1;
    }
    if (mf_make_dirs(svg_dir, err)) {
        free(html);
        return -1;
    }
    static const char open_tag[] = "<svg class=\"chart\" data-chart=\"";
    int rc = 0;
    for (char *p = strstr(html, open_tag); p && !rc; p = strstr(p + 1, open_tag)) {
        const char *id = p + strlen(open_tag), *id_end = strchr(id, '"'),
                   *end = strstr(p, "</svg>");
        if (!id_end || !end)
            break;
        char file[512];
        chart_file_name(file, sizeof file, prefix ? prefix : "", id, (size_t)(id_end - id));
        rc = write_chart(svg_dir, file, p, (size_t)(end + strlen("</svg>") - p), err);
    }
    free(html);
    return rc;
}
