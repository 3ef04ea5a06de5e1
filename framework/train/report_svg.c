/* Page text and the report's charts as inline SVG: line charts with axes, ticks, a legend and
 * a marked x; a confusion heat map; horizontal bars with error bars. Coordinates are only
 * ever computed from finite data (non-finite values are gaps), so no NaN reaches an
 * attribute, which the browser would report as a console error. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"


void mfi_html_text(mfi_html *h, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        size_t run = strcspn(p, "&<>\"'");
        mfi_text_add(h, p, run);
        p += run;
        if (!*p)
            break;
        switch (*p) {
        case '&': mfi_text_puts(h, "&amp;"); break;
        case '<': mfi_text_puts(h, "&lt;"); break;
        case '>': mfi_text_puts(h, "&gt;"); break;
        case '"': mfi_text_puts(h, "&quot;"); break;
        default: mfi_text_puts(h, "&#39;"); break;
        }
    }
}

void mfi_html_num(mfi_html *h, double v)
{
    if (!isfinite(v))
        mfi_text_puts(h, "–");
    else if (v == floor(v) && fabs(v) < 1e9)
        mfi_text_printf(h, "%.0f", v);
    else
        mfi_text_printf(h, "%.4g", v);
}

/* ---------------------------------------------------------------- scales */
/* matplotlib's tab10; series past ten reuse it dashed, then dotted, so no two look alike */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS (int)(sizeof palette / sizeof *palette)
static const char *const dashes[] = {"", " stroke-dasharray=\"7 3\"", " stroke-dasharray=\"2 2\""};

/* Series i's stroke: its colour, and its dash pattern after the first ten. */
static void stroke_of(mfi_html *h, int i)
{
    mfi_text_printf(h, " stroke=\"%s\"%s", palette[i % N_COLORS], dashes[(i / N_COLORS) % 3]);
}

typedef struct axis {
    double lo, hi, step; /* nice bounds and tick step */
    double p0, p1;       /* pixel positions of lo and hi */
} axis;

/* 1, 2 or 5 × 10^k near range/ticks. */
static double nice_step(double range, int ticks)
{
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* Bounds covering [lo, hi] on tick multiples; 0 when the range cannot be drawn. */
static int axis_fit(axis *a, double lo, double hi, int ticks, int integer)
{
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(hi - lo))
        return 0;
    if (hi - lo < 1e-12 * (fabs(hi) + fabs(lo)) || hi == lo) {
        double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    a->step = nice_step(hi - lo, ticks);
    if (integer && a->step < 1)
        a->step = 1;
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
    if (a->hi <= a->lo)
        a->hi = a->lo + a->step;
    return isfinite(a->lo) && isfinite(a->hi);
}

static double axis_px(const axis *a, double v)
{
    return a->p0 + (v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* A tick label with as many decimals as the step needs. */
static void tick_label(char *out, size_t size, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6)
        v = 0; /* no "-0.0" */
    if (fabs(v) >= 1e6 || decimals > 6)
        snprintf(out, size, "%.3g", v);
    else
        snprintf(out, size, "%.*f", decimals, v);
}

/* Ticks, grid lines and labels of an axis; vertical = the y axis. */
static void draw_axis(mfi_html *h, const axis *a, int vertical, double c0, double c1)
{
    int n = (int)floor((a->hi - a->lo) / a->step + 0.5);
    for (int i = 0; i <= n && i <= 50; i++) {
        double v = a->lo + i * a->step, p = axis_px(a, v);
        char label[32];
        tick_label(label, sizeof label, v, a->step);
        if (vertical)
            mfi_text_printf(h, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                               "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                            c0, c1, p, p, c0 - 5, p + 4, label);
        else
            mfi_text_printf(h, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                               "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                            p, p, c0, c1, p, c1 + 15, label);
    }
}

static void svg_open(mfi_html *h, const char *id, int w, int height, const char *title)
{
    mfi_text_printf(h, "<svg class=\"chart\" data-chart=\"");
    mfi_html_text(h, id);
    mfi_text_printf(h, "\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">"
                       "<text class=\"title\" x=\"%d\" y=\"18\" text-anchor=\"middle\">",
                    w, height, w, height, w / 2);
    mfi_html_text(h, title);
    mfi_text_puts(h, "</text>");
}

/* Legend entries in rows under the title; returns the rows used. */
static int legend(mfi_html *h, const char *const *names, int n, int w)
{
    double x = 60, y = 36;
    int rows = n ? 1 : 0;
    for (int i = 0; i < n; i++) {
        double need = 26 + 6.5 * (double)strlen(names[i]);
        if (x + need > w - 10 && x > 60) {
            x = 60;
            y += 15;
            rows++;
        }
        mfi_text_printf(h, "<g data-legend=\"");
        mfi_html_text(h, names[i]);
        mfi_text_printf(h, "\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"", x, x + 18,
                        y - 4, y - 4);
        stroke_of(h, i);
        mfi_text_printf(h, " stroke-width=\"3\"/><text class=\"legend\" x=\"%.1f\" y=\"%.1f\">",
                        x + 22, y);
        mfi_html_text(h, names[i]);
        mfi_text_puts(h, "</text></g>");
        x += need + 12;
    }
    return rows;
}

/* ---------------------------------------------------------------- line charts */
static int finite_at(const mfi_series *s, int i)
{
    return i >= 0 && i < s->n && isfinite(s->x[i]) && isfinite(s->y[i]);
}

static void series_path(mfi_html *h, const mfi_series *s, const axis *ax, const axis *ay)
{
    int pen = 0;
    for (int i = 0; i < s->n; i++) {
        if (!finite_at(s, i)) {
            pen = 0;
            continue;
        }
        mfi_text_printf(h, "%s%.1f %.1f", pen ? "L" : "M", axis_px(ax, s->x[i]), axis_px(ay, s->y[i]));
        pen = 1;
    }
}

/* Markers: on every point of a short series (a few configurations, where the points are
 * the data), and on a lone point between gaps, which a line cannot show. */
static void series_markers(mfi_html *h, const mfi_series *s, int colour, const axis *ax,
                           const axis *ay)
{
    for (int i = 0; i < s->n; i++)
        if (finite_at(s, i) && (s->n <= 12 || (!finite_at(s, i - 1) && !finite_at(s, i + 1))))
            mfi_text_printf(h, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
                               "fill=\"%s\"/>", axis_px(ax, s->x[i]), axis_px(ay, s->y[i]),
                            palette[colour % N_COLORS]);
}

void mfi_svg_lines(mfi_html *h, const mfi_line_chart *c)
{
    const int w = 560;
    double xlo = HUGE_VAL, xhi = -HUGE_VAL, ylo = HUGE_VAL, yhi = -HUGE_VAL;
    int integer_x = 1;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
            integer_x &= x == floor(x);
        }
    const char *names[64];
    int nn = c->n_series < 64 ? c->n_series : 64;
    for (int s = 0; s < nn; s++)
        names[s] = c->series[s].name;
    /* rows of the legend decide where the plot starts */
    mfi_html tmp = {0};
    int rows = legend(&tmp, names, nn, w);
    free(tmp.s);
    int top = 34 + rows * 15, height = top + 230; /* room for the mark's label */
    axis ax, ay;
    int drawable = axis_fit(&ax, xlo, xhi, 6, integer_x) && axis_fit(&ay, ylo, yhi, 5, 0);
    svg_open(h, c->id, w, height, c->title);
    legend(h, names, nn, w);
    ax.p0 = 64, ax.p1 = w - 26; /* room for half the last tick label */
    ay.p0 = height - 46, ay.p1 = top + 8;
    if (drawable) {
        draw_axis(h, &ay, 1, ax.p0, ax.p1);
        draw_axis(h, &ax, 0, ay.p1, ay.p0);
    } else {
        mfi_text_printf(h, "<text class=\"note\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no finite "
                           "values</text>", w / 2, (top + height) / 2);
    }
    mfi_text_printf(h, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                    ax.p0, ay.p1, ax.p1 - ax.p0, ay.p0 - ay.p1);
    mfi_text_printf(h, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
                    (ax.p0 + ax.p1) / 2, height - 10);
    mfi_html_text(h, c->xlabel);
    mfi_text_printf(h, "</text><text class=\"axis\" transform=\"translate(14 %.1f) rotate(-90)\" "
                       "text-anchor=\"middle\">", (ay.p0 + ay.p1) / 2);
    mfi_html_text(h, c->ylabel);
    mfi_text_puts(h, "</text>");
    if (drawable && isfinite(c->mark_x) && c->mark_x >= ax.lo && c->mark_x <= ax.hi) {
        double px = axis_px(&ax, c->mark_x);
        mfi_text_printf(h, "<g data-mark=\"best\"><line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" "
                           "y1=\"%.1f\" y2=\"%.1f\"/><text class=\"marklabel\" x=\"%.1f\" y=\"%.1f\" "
                           "text-anchor=\"%s\">", px, px, ay.p1, ay.p0, px + (px > w - 120 ? -4 : 4),
                        ay.p1 - 3, px > w - 120 ? "end" : "start");
        mfi_html_text(h, c->mark_label ? c->mark_label : "");
        mfi_text_puts(h, "</text></g>");
    }
    for (int s = 0; s < c->n_series; s++) {
        mfi_text_puts(h, "<path class=\"line\" data-series=\"");
        mfi_html_text(h, c->series[s].name);
        mfi_text_puts(h, "\"");
        stroke_of(h, s);
        mfi_text_puts(h, " d=\"");
        if (drawable)
            series_path(h, &c->series[s], &ax, &ay);
        mfi_text_puts(h, "\"/>");
        if (drawable)
            series_markers(h, &c->series[s], s, &ax, &ay);
    }
    mfi_text_puts(h, "</svg>\n");
}

/* ---------------------------------------------------------------- confusion heat map */
/* White to dark blue by share f in [0, 1]. */
static void heat_colour(char out[8], double f)
{
    static const int lo[3] = {247, 251, 255}, hi[3] = {8, 48, 107};
    int c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (int)lround(lo[k] + (hi[k] - lo[k]) * f);
    snprintf(out, 8, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
}

static void short_label(char *out, size_t size, const char *name, int max)
{
    if ((int)strlen(name) <= max)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%.*s…", max - 1, name);
}

void mfi_svg_confusion(mfi_html *h, const char *id, const char *title,
                       const char *const *classes, int n, const double *counts)
{
    double cell = n > 0 ? 560.0 / n : 44;
    cell = cell > 44 ? 44 : cell < 4 ? 4 : cell;
    int named = cell >= 9, longest = 1;
    for (int i = 0; named && i < n; i++)
        longest = (int)fmax(longest, fmin(20, (double)strlen(classes[i])));
    int turned = named && longest > 3; /* column labels at -45° */
    double left = 30 + (named ? 6.2 * longest : 18), top = 48, side = cell * n;
    double bottom = turned ? 6.2 * longest * 0.72 + 30 : 40;
    int w = (int)ceil(left + side + 20), height = (int)ceil(top + side + bottom);
    w = w < 420 ? 420 : w;
    svg_open(h, id, w, height, title);
    mfi_text_printf(h, "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">predicted "
                       "→</text><text class=\"axis\" transform=\"translate(12 %.1f) rotate(-90)\" "
                       "text-anchor=\"middle\">true →</text>", left + side / 2, top - 10,
                    top + side / 2);
    int step = named ? 1 : (int)ceil(18.0 / cell); /* label every step-th class */
    mfi_text_puts(h, "<g class=\"classes\">");
    for (int i = 0; i < n; i++) {
        if (i % step)
            continue;
        char label[80];
        if (named)
            short_label(label, sizeof label, classes[i], 20);
        else
            snprintf(label, sizeof label, "%d", i);
        double c = top + (i + 0.5) * cell;
        mfi_text_printf(h, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                        left - 4, c + 3.5);
        mfi_html_text(h, label);
        double cx = left + (i + 0.5) * cell, by = top + side + 10;
        mfi_text_printf(h, "</text><text class=\"tick\" transform=\"translate(%.1f %.1f) rotate(%d)\" "
                           "text-anchor=\"%s\">", cx + (turned ? 3.5 : 0), by + (turned ? 0 : 3),
                        turned ? -45 : 0, turned ? "end" : "middle");
        mfi_html_text(h, label);
        mfi_text_puts(h, "</text>");
    }
    /* small cells without the white grid, which would wash their colour out */
    mfi_text_printf(h, "</g><g data-series=\"confusion\"%s>", cell < 12 ? " class=\"fine\"" : "");
    int show_counts = cell >= 18, titles = n <= 40;
    double font = cell * 0.36 < 11 ? cell * 0.36 : 11;
    for (int i = 0; i < n; i++) {
        double row = 0;
        for (int j = 0; j < n; j++)
            row += isfinite(counts[i * n + j]) && counts[i * n + j] > 0 ? counts[i * n + j] : 0;
        for (int j = 0; j < n; j++) {
            double v = counts[i * n + j], f = row > 0 && isfinite(v) && v > 0 ? v / row : 0;
            char fill[8];
            heat_colour(fill, f);
            double x = left + j * cell, y = top + i * cell;
            mfi_text_printf(h, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" "
                               "height=\"%.2f\" fill=\"%s\">", x, y, cell, cell, fill);
            if (titles) {
                mfi_text_puts(h, "<title>true ");
                mfi_html_text(h, classes[i]);
                mfi_text_puts(h, ", predicted ");
                mfi_html_text(h, classes[j]);
                mfi_text_puts(h, ": ");
                mfi_html_num(h, v);
                mfi_text_puts(h, "</title>");
            }
            mfi_text_puts(h, "</rect>");
            if (show_counts && isfinite(v)) {
                /* white on the dark half (a class: the page's CSS beats a fill attribute) */
                mfi_text_printf(h, "<text class=\"count%s\" x=\"%.1f\" y=\"%.1f\" "
                                   "font-size=\"%.1f\" text-anchor=\"middle\">", f > 0.5 ? " hi" : "",
                                x + cell / 2, y + cell / 2 + font * 0.35, font);
                mfi_html_num(h, v);
                mfi_text_puts(h, "</text>");
            }
        }
    }
    mfi_text_printf(h, "</g><rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\"/></svg>\n", left, top, side, side);
}

/* ---------------------------------------------------------------- bars */
void mfi_svg_bars(mfi_html *h, const mfi_bar_chart *c)
{
    const int w = 760;
    const double left = 300, band = c->n_series > 1 ? 14.0 * c->n_series + 10 : 22;
    double lo = 0, hi = 0;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->n; i++) {
            double v = c->value[s][i], e = c->err[s] && isfinite(c->err[s][i]) ? c->err[s][i] : 0;
            if (isfinite(v))
                lo = fmin(lo, v - e), hi = fmax(hi, v + e);
        }
    if (isfinite(c->ref))
        lo = fmin(lo, c->ref), hi = fmax(hi, c->ref);
    double top = c->n_series > 1 || c->ref_label ? 50 : 34;
    int height = (int)ceil(top + band * c->n + 44);
    axis ax;
    int drawable = axis_fit(&ax, lo, hi, 6, 0);
    ax.p0 = left, ax.p1 = w - 24;
    svg_open(h, c->id, w, height, c->title);
    if (c->n_series > 1)
        legend(h, c->names, c->n_series, w);
    double y_end = top + band * c->n;
    if (drawable)
        draw_axis(h, &ax, 0, top, y_end);
    for (int i = 0; i < c->n; i++) {
        char label[96];
        short_label(label, sizeof label, c->labels[i], 46);
        mfi_text_printf(h, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\"><title>",
                        left - 6, top + band * (i + 0.5) + 4);
        mfi_html_text(h, c->labels[i]);
        mfi_text_puts(h, "</title>");
        mfi_html_text(h, label);
        mfi_text_puts(h, "</text>");
    }
    for (int s = 0; drawable && s < c->n_series; s++) {
        mfi_text_puts(h, "<g data-series=\"");
        mfi_html_text(h, c->names[s]);
        mfi_text_printf(h, "\" fill=\"%s\">", palette[s % N_COLORS]);
        double bh = c->n_series > 1 ? 12 : 14;
        for (int i = 0; i < c->n; i++) {
            double v = c->value[s][i];
            if (!isfinite(v))
                continue;
            double y = top + band * i + (band - bh * c->n_series) / 2 + bh * s;
            double x0 = axis_px(&ax, fmin(0, v)), x1 = axis_px(&ax, fmax(0, v));
            mfi_text_printf(h, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                               "height=\"%.1f\"><title>", x0, y, x1 - x0, bh - 2);
            mfi_html_text(h, c->labels[i]);
            mfi_text_puts(h, ": ");
            mfi_html_num(h, v);
            double e = c->err[s] ? c->err[s][i] : NAN;
            if (isfinite(e)) {
                mfi_text_puts(h, " ± ");
                mfi_html_num(h, e);
            }
            mfi_text_puts(h, "</title></rect>");
            if (isfinite(e) && e > 0) {
                double a = axis_px(&ax, v - e), b = axis_px(&ax, v + e), cy = y + (bh - 2) / 2;
                mfi_text_printf(h, "<path class=\"err\" d=\"M%.1f %.1fH%.1fM%.1f %.1fv%.1fM%.1f "
                                   "%.1fv%.1f\"/>", a, cy, b, a, cy - 4, 8.0, b, cy - 4, 8.0);
            }
        }
        mfi_text_puts(h, "</g>");
    }
    if (drawable && isfinite(c->ref)) {
        double px = axis_px(&ax, c->ref);
        mfi_text_printf(h, "<line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                           "<text class=\"marklabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                        px, px, top - 6, y_end, px, top - 8);
        mfi_html_text(h, c->ref_label ? c->ref_label : "");
        mfi_text_puts(h, "</text>");
    }
    mfi_text_printf(h, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
                    (ax.p0 + ax.p1) / 2, height - 8);
    mfi_html_text(h, c->xlabel);
    mfi_text_puts(h, "</text></svg>\n");
}
