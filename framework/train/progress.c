/* The progress display (see progress.h): a status line redrawn in place on a terminal, plain
 * lines elsewhere. Time comes through a clock function so tests can drive it. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum { MODE_QUIET, MODE_PLAIN, MODE_BAR };

#define REDRAW_SECONDS 0.1 /* at most 10 redraws a second */
#define PLAIN_SECONDS 30.0 /* a plain line when nothing was printed for this long */
#define RATE_TAU 5.0       /* seconds: the rates' exponential smoothing */
#define BAR_MIN 10         /* the bar's inner width, when it fits at all */
#define BAR_MAX 30

struct mfi_progress {
    FILE *out;
    int mode;
    int64_t total, per_epoch;
    int epochs;
    double (*clock)(void *user);
    void *clock_user;
    double fake_dt, fake_t; /* MMFUSE_PROGRESS_CLOCK */
    double t0, last_draw, last_out;
    int drawn;              /* a status line is on the screen */
    int have;               /* a step was seen: there is something to draw */
    int epoch;
    int64_t step, samples;
    double step_t;          /* when that step was reported */
    double loss_sum;        /* the epoch's losses so far */
    int64_t loss_n;
    double rate_t;          /* the rates' window: its start… */
    int64_t rate_step, rate_samples;
    double steps_s, samples_s; /* …and the smoothed rates (0: none yet) */
};

static double monotonic(void *user)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double fake(void *user)
{
    return ((mfi_progress *)user)->fake_t;
}

static double now(mfi_progress *p)
{
    return p->clock(p->clock_user);
}

static int choose_mode(FILE *out, int quiet)
{
    if (quiet)
        return MODE_QUIET;
    const char *force = getenv("MMFUSE_PROGRESS");
    if (force && strcmp(force, "0") == 0)
        return MODE_PLAIN;
    if (force && strcmp(force, "1") == 0)
        return MODE_BAR;
    const char *term = getenv("TERM");
    return isatty(fileno(out)) && term && *term && strcmp(term, "dumb") != 0 ? MODE_BAR
                                                                              : MODE_PLAIN;
}

mfi_progress *mfi_progress_new(FILE *out, int quiet, int64_t total_steps,
                               int64_t steps_per_epoch, int epochs)
{
    mfi_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->out = out;
    p->mode = choose_mode(out, quiet);
    p->per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 0;
    p->epochs = epochs > 0 ? epochs : 0;
    p->total = total_steps > 0 ? total_steps : p->per_epoch * p->epochs;
    const char *dt = getenv("MMFUSE_PROGRESS_CLOCK");
    p->fake_dt = dt && *dt ? strtod(dt, NULL) : 0;
    if (p->fake_dt > 0)
        mfi_progress_set_clock(p, fake, p);
    else
        mfi_progress_set_clock(p, monotonic, NULL);
    return p;
}

void mfi_progress_set_clock(mfi_progress *p, double (*clock)(void *user), void *user)
{
    if (!p || !clock)
        return;
    p->clock = clock;
    p->clock_user = user;
    p->t0 = p->last_out = now(p);
}

/* ---------------------------------------------------------------- formatting */
static void hms(char *buf, size_t n, double seconds)
{
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(buf, n, "-:--:--");
        return;
    }
    long s = lround(seconds);
    snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

static void rate(char *buf, size_t n, double r)
{
    if (r <= 0)
        snprintf(buf, n, "- samples/s");
    else if (r < 100)
        snprintf(buf, n, "%.1f samples/s", r);
    else if (r < 1e5)
        snprintf(buf, n, "%.0f samples/s", r);
    else
        snprintf(buf, n, "%.0fk samples/s", r / 1000);
}

enum { F_EPOCH, F_STEP, F_BAR, F_LOSS, F_RATE, F_ETA, F_ELAPSED, N_FIELDS };

/* Every field's text; the bar's is empty (drawn once its width is known). Returns the
 * fraction done that the bar shows (the epoch's, or the run's when the epochs are not
 * counted), or -1 when there is none. */
static double fields(const mfi_progress *p, double t, char text[N_FIELDS][48])
{
    char when[32];
    if (p->epochs)
        snprintf(text[F_EPOCH], 48, "epoch %d/%d", p->epoch + 1, p->epochs);
    else
        snprintf(text[F_EPOCH], 48, "epoch %d", p->epoch + 1);
    double frac = -1;
    if (p->per_epoch && (p->epochs || !p->total)) { /* a run of epochs: the epoch's steps */
        int64_t s = p->step - (int64_t)p->epoch * p->per_epoch;
        s = s < 0 ? 0 : s > p->per_epoch ? p->per_epoch : s;
        snprintf(text[F_STEP], 48, "step %lld/%lld", (long long)s, (long long)p->per_epoch);
        frac = (double)s / (double)p->per_epoch;
    } else if (p->total) { /* a run of steps: the run's */
        snprintf(text[F_STEP], 48, "step %lld/%lld", (long long)p->step, (long long)p->total);
        frac = p->step >= p->total ? 1 : (double)p->step / (double)p->total;
    } else {
        snprintf(text[F_STEP], 48, "step %lld", (long long)p->step);
    }
    text[F_BAR][0] = '\0';
    snprintf(text[F_LOSS], 48, "loss %.4g", p->loss_n ? p->loss_sum / (double)p->loss_n : NAN);
    rate(text[F_RATE], 48, p->samples_s);
    hms(when, sizeof when, p->total && p->steps_s > 0
                               ? (double)(p->total > p->step ? p->total - p->step : 0) / p->steps_s
                               : -1);
    snprintf(text[F_ETA], 48, "ETA %s", when);
    hms(when, sizeof when, t - p->t0);
    snprintf(text[F_ELAPSED], 48, "elapsed %s", when);
    return frac;
}

static size_t width_of(char text[N_FIELDS][48], const int *on, int bar, size_t sep)
{
    size_t w = 0;
    int n = 0;
    for (int i = 0; i < N_FIELDS; i++)
        if (on[i]) {
            w += i == F_BAR ? (size_t)bar + 2 : strlen(text[i]);
            n++;
        }
    return w + (n > 1 ? (size_t)(n - 1) * sep : 0);
}

/* Which optional fields fit in `width` with `sep` spaces between fields, in order of
 * importance; epoch, step and loss are always on. Returns how many. */
static int choose(char text[N_FIELDS][48], int has_bar, size_t width, size_t sep, int *on)
{
    static const int priority[] = {F_ETA, F_RATE, F_BAR, F_ELAPSED};
    memset(on, 0, N_FIELDS * sizeof *on);
    on[F_EPOCH] = on[F_STEP] = on[F_LOSS] = 1;
    int n = 0;
    for (size_t k = 0; k < sizeof priority / sizeof *priority; k++) {
        if (priority[k] == F_BAR && !has_bar)
            continue;
        on[priority[k]] = 1;
        if (width_of(text, on, BAR_MIN, sep) > width) {
            on[priority[k]] = 0;
            break; /* a less important field never displaces a more important one */
        }
        n++;
    }
    return n;
}

/* The status line in at most `width` columns: the fields that fit (two spaces apart, or one
 * if that fits more), the bar taking the room left. */
static void status_line(const mfi_progress *p, double t, int with_bar, size_t width, char *line,
                        size_t size)
{
    char text[N_FIELDS][48];
    double frac = fields(p, t, text);
    frac = with_bar ? frac : -1;
    int on[N_FIELDS], tight[N_FIELDS];
    size_t sep = 2;
    if (choose(text, frac >= 0, width, 1, tight) > choose(text, frac >= 0, width, 2, on)) {
        memcpy(on, tight, sizeof on);
        sep = 1;
    }
    if (width_of(text, on, BAR_MIN, sep) > width) /* too narrow even for these: whole */
        sep = 1;                                  /* fields go, loss first, then the step */
    if (width_of(text, on, BAR_MIN, sep) > width)
        on[F_LOSS] = 0;
    if (width_of(text, on, BAR_MIN, sep) > width)
        on[F_STEP] = 0;
    int bar = BAR_MIN;
    size_t used = width_of(text, on, bar, sep);
    if (on[F_BAR] && used < width)
        bar += (int)(width - used) < BAR_MAX - BAR_MIN ? (int)(width - used) : BAR_MAX - BAR_MIN;
    size_t len = 0;
    line[0] = '\0';
    for (int i = 0; i < N_FIELDS && len + 1 < size; i++) {
        if (!on[i])
            continue;
        if (len)
            len += (size_t)snprintf(line + len, size - len, "%*s", (int)sep, "");
        if (i == F_BAR && len + (size_t)bar + 3 < size) {
            int fill = (int)floor(frac * bar + 1e-9);
            line[len++] = '[';
            for (int j = 0; j < bar; j++)
                line[len++] = j < fill ? '#' : '-';
            line[len++] = ']';
            line[len] = '\0';
        } else if (i != F_BAR) {
            len += (size_t)snprintf(line + len, size - len, "%s", text[i]);
        }
        len = len < size ? len : size - 1;
    }
    if (len > width) /* not even the epoch fits */
        line[width] = '\0';
}

/* ---------------------------------------------------------------- output */
static size_t columns(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    long n = c ? strtol(c, NULL, 10) : 0;
    return n > 0 && n < 10000 ? (size_t)n : 80;
}

static void draw(mfi_progress *p, double t)
{
    char line[1024];
    size_t cols = columns(p->out);
    /* one column spare: writing the last one wraps on some terminals */
    status_line(p, t, 1, cols > 1 ? cols - 1 : 1, line, sizeof line);
    fprintf(p->out, "\r%s\033[K", line);
    fflush(p->out);
    p->drawn = 1;
    p->last_draw = t;
}

static void plain(mfi_progress *p, double t)
{
    char line[1024];
    status_line(p, t, 0, sizeof line - 1, line, sizeof line);
    fprintf(p->out, "%s\n", line);
    fflush(p->out);
    p->last_out = t;
}

static void restart(mfi_progress *p, int64_t step, int64_t samples, double t)
{
    p->rate_t = t;
    p->rate_step = step;
    p->rate_samples = samples;
}

/* Fold the window ending at (t, step, samples) into the smoothed rates. */
static void fold(mfi_progress *p, int64_t step, int64_t samples, double t)
{
    const double dt = t - p->rate_t;
    if (dt > 0 && step > p->rate_step) {
        const double a = p->steps_s > 0 ? 1 - exp(-dt / RATE_TAU) : 1;
        p->steps_s += a * ((double)(step - p->rate_step) / dt - p->steps_s);
        p->samples_s += a * ((double)(samples - p->rate_samples) / dt - p->samples_s);
    }
}

/* The rates over windows of at least REDRAW_SECONDS, smoothed exponentially in time. A window
 * also ends with its epoch's last step, so validation time never counts as training, and
 * epochs shorter than a window still give a rate. */
static void update_rates(mfi_progress *p, int epoch, int64_t step, int64_t samples, double t)
{
    if (p->have && epoch != p->epoch)
        fold(p, p->step, p->samples, p->step_t);
    if (!p->have || epoch != p->epoch) {
        restart(p, step, samples, t);
    } else if (t - p->rate_t >= REDRAW_SECONDS) {
        fold(p, step, samples, t);
        restart(p, step, samples, t);
    }
}

void mfi_progress_step(mfi_progress *p, int epoch, int64_t step, double loss,
                       int64_t samples_done)
{
    if (!p || p->mode == MODE_QUIET)
        return;
    p->fake_t += p->fake_dt;
    const double t = now(p);
    update_rates(p, epoch, step, samples_done, t);
    if (!p->have || epoch != p->epoch)
        p->loss_sum = 0, p->loss_n = 0;
    p->have = 1;
    p->epoch = epoch;
    p->step = step;
    p->samples = samples_done;
    p->step_t = t;
    p->loss_sum += loss;
    p->loss_n++;
    if (p->mode == MODE_BAR &&
        (!p->drawn || t - p->last_draw >= REDRAW_SECONDS || (p->total && step == p->total)))
        draw(p, t);
    else if (p->mode == MODE_PLAIN && t - p->last_out >= PLAIN_SECONDS)
        plain(p, t);
}

void mfi_progress_line(mfi_progress *p, const char *fmt, ...)
{
    if (!p)
        return;
    if (p->mode == MODE_BAR && p->drawn)
        fputs("\r\033[K", p->out);
    char small[1024] = "", *buf = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof small && (buf = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (!buf) /* out of memory: the line cut short */
        buf = small;
    fputs(buf, p->out);
    if (n <= 0 || buf[strlen(buf) - 1] != '\n')
        fputc('\n', p->out);
    if (buf != small)
        free(buf);
    p->drawn = 0;
    const double t = now(p);
    p->last_out = t;
    if (p->mode == MODE_BAR && p->have)
        draw(p, t);
    fflush(p->out);
}

void mfi_progress_clear(mfi_progress *p)
{
    if (!p)
        return;
    p->last_out = now(p); /* the caller prints: a sign of life in a log too */
    if (p->mode == MODE_BAR && p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
        p->drawn = 0;
    }
}

void mfi_progress_free(mfi_progress *p)
{
    mfi_progress_clear(p);
    free(p);
}
