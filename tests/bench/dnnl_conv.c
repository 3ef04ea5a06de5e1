/* oneDNN's convolution against mmfuse's conv2d on the benchmark models' shapes (issue 11,
 * item 2: would oneDNN behind conv2d be faster?). Not part of the meson build:
 *
 *   apt-get install libdnnl-dev    # Debian 12: oneDNN 2.6.3 (runtime libdnnl2), OpenMP (libgomp)
 *   cc -O2 -Iinclude tests/bench/dnnl_conv.c -Lbuild-dnnl/framework -lmmfuse -ldnnl -fopenmp \
 *      -lm -Wl,-rpath,$PWD/build-dnnl/framework -o /tmp/dnnl_conv
 *   GOMP_SPINCOUNT=1000 /tmp/dnnl_conv [reps]   # wall time, 1 and 2 threads (as mmfuse runs)
 *   /tmp/dnnl_conv [reps] cpu                   # process CPU time, 1 thread (a loaded machine)
 *   /tmp/dnnl_conv 0 mtrace                     # heap allocations per step: see alloc_check
 *
 * For each shape and thread count, interleaved rep by rep (the machine is shared), the
 * median over `reps` (default 200, after 20 warm-up) of:
 *   oneDNN forward (with bias), backward-data, backward-weights (with bias gradient), each
 *     "+ro": NCHW/OIHW user tensors reordered to and from the layouts oneDNN picks for
 *            format_tag::any, reorders inside the time (what NCHW-in/out conv2d would pay);
 *     "core": the primitive alone on its preferred layouts (what a blocked pipeline reaches);
 *     "chunked": backward-weights made deterministic the way mmfuse's conv2d is (below);
 *   mmfuse conv2d through the public API: forward in an inference graph; in a training graph
 *     (loss = sum_all(conv), whose forward the training forward includes) the backward with x
 *     an input (weights only) and with x a variable (weights + data); bwd-w and bwd-data are
 *     those minus the backward of a bare sum_all over y, and minus each other.
 * Outputs are checked against mmfuse's (same inputs, dy random) to 1e-4 relative, and each
 * library's results at 2 threads against its own at 1 thread, bit for bit.
 * Why the chunked variant: oneDNN 2.6's backward-weights reduces over threads, so dw and db
 * at 2 threads differ from 1 thread (~1e-5 relative) — mmfuse promises bit-identical results
 * for any thread count; fixed batch chunks of 1-thread primitives summed in order keep it. */
#include <math.h>
#include <mcheck.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <mmfuse/mmfuse.h>

#define CK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #call, (int)s_); exit(1); } } while (0)

/* wall time; "cpu" mode: process CPU time, 1 thread only (robust to a loaded machine) */
static int cpu_clock;
static double now(void) { struct timespec t; clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }
static void fill(float *p, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; p[i] = (float)((seed >> 8) * (1.0 / 16777216.0) - 0.5); }
}
/* max |a-b| / max |b| */
static double relerr(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) { d = fmax(d, fabs(a[i] - b[i])); m = fmax(m, fabs(b[i])); }
    return m > 0 ? d / m : d;
}

/* ---------------------------------------------------------------- oneDNN */
typedef struct { dnnl_primitive_t p; int n; dnnl_exec_arg_t a[8]; } step;
typedef struct { step s[8]; int n, core; } seq; /* s[core] is the convolution itself */

static dnnl_engine_t eng;
static dnnl_stream_t strm;

static void run_on(const seq *q, int core_only, dnnl_stream_t st)
{
    for (int i = core_only ? q->core : 0; i < (core_only ? q->core + 1 : q->n); i++)
        CK(dnnl_primitive_execute(q->s[i].p, st, q->s[i].n, q->s[i].a));
    CK(dnnl_stream_wait(st));
}
static void run_seq(const seq *q, int core_only) { run_on(q, core_only, strm); }

static void push(seq *q, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *a)
{
    q->s[q->n].p = p; q->s[q->n].n = n; memcpy(q->s[q->n].a, a, n * sizeof *a); q->n++;
}

/* The primitive's memory for `want`: the user's when the layouts agree, else a new one with
 * a reorder (user → it when in, it → user when out; outs are appended to `post`). */
static dnnl_memory_t bind(seq *pre, seq *post, dnnl_memory_t user, const dnnl_memory_desc_t *want, int out)
{
    const dnnl_memory_desc_t *have;
    CK(dnnl_memory_get_memory_desc(user, &have));
    if (dnnl_memory_desc_equal(have, want)) return user;
    dnnl_memory_t m; dnnl_primitive_desc_t rpd; dnnl_primitive_t r;
    CK(dnnl_memory_create(&m, want, eng, DNNL_MEMORY_ALLOCATE));
    CK(dnnl_reorder_primitive_desc_create(&rpd, out ? want : have, eng, out ? have : want, eng, NULL));
    CK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, out ? m : user}, {DNNL_ARG_TO, out ? user : m}};
    push(out ? post : pre, r, 2, a);
    return m;
}

static const char *impl(const_dnnl_primitive_desc_t pd)
{
    const char *s = "?"; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s); return s;
}

static void append(seq *q, const seq *post) { for (int i = 0; i < post->n; i++) q->s[q->n++] = post->s[i]; }

typedef struct { seq fwd, bd, bw; } dn_conv;
typedef struct { float *x, *w, *b, *y, *dy, *dx, *dw, *db; } bufs;

static dnnl_memory_t user_mem(int nd, const dnnl_dims_t dims, dnnl_format_tag_t tag, float *p)
{
    dnnl_memory_desc_t md; dnnl_memory_t m;
    CK(dnnl_memory_desc_init_by_tag(&md, nd, dims, dnnl_f32, tag));
    CK(dnnl_memory_create(&m, &md, eng, p));
    return m;
}

/* x (B,C,H,W), w (O,C,3,3), pad 1 → y (B,O,H,W); primitives fixed for the current thread count. */
static void dn_build(dn_conv *c, bufs *u, int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int verbose)
{
    dnnl_dims_t xd = {B, C, H, W}, wd = {O, C, 3, 3}, bd = {O}, yd = {B, O, H, W}, st = {1, 1}, pl = {1, 1};
    dnnl_memory_t X = user_mem(4, xd, dnnl_nchw, u->x), Wm = user_mem(4, wd, dnnl_oihw, u->w),
                  Bm = user_mem(1, bd, dnnl_x, u->b), Y = user_mem(4, yd, dnnl_nchw, u->y),
                  DY = user_mem(4, yd, dnnl_nchw, u->dy), DX = user_mem(4, xd, dnnl_nchw, u->dx),
                  DW = user_mem(4, wd, dnnl_oihw, u->dw), DB = user_mem(1, bd, dnnl_x, u->db);
    dnnl_memory_desc_t xa, wa, ya, bx;
    CK(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&bx, 1, bd, dnnl_f32, dnnl_x));
    dnnl_convolution_desc_t fd, dd, wdsc;
    dnnl_primitive_desc_t fpd, dpd, wpd;
    dnnl_primitive_t p;
    CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xa, &wa, &bx, &ya, st, pl, pl));
    CK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CK(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &xa, &wa, &ya, st, pl, pl));
    CK(dnnl_primitive_desc_create(&dpd, &dd, NULL, eng, fpd));
    CK(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &xa, &wa, &bx, &ya, st, pl, pl));
    CK(dnnl_primitive_desc_create(&wpd, &wdsc, NULL, eng, fpd));
    if (verbose)
        printf("  oneDNN impl: fwd %s, bwd-data %s, bwd-weights %s\n", impl(fpd), impl(dpd), impl(wpd));
    seq post;
    /* forward: x, w in; y out */
    memset(c, 0, sizeof *c); memset(&post, 0, sizeof post);
    dnnl_memory_t x = bind(&c->fwd, &post, X, dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0), 0);
    dnnl_memory_t w = bind(&c->fwd, &post, Wm, dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0), 0);
    dnnl_memory_t y = bind(&c->fwd, &post, Y, dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0), 1);
    CK(dnnl_primitive_create(&p, fpd));
    c->fwd.core = c->fwd.n;
    push(&c->fwd, p, 4, (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, Bm}, {DNNL_ARG_DST, y}});
    append(&c->fwd, &post);
    /* backward-data: dy, w in; dx out */
    memset(&post, 0, sizeof post);
    dnnl_memory_t dy = bind(&c->bd, &post, DY, dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_dst_md, 0), 0);
    w = bind(&c->bd, &post, Wm, dnnl_primitive_desc_query_md(dpd, dnnl_query_weights_md, 0), 0);
    dnnl_memory_t dx = bind(&c->bd, &post, DX, dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_src_md, 0), 1);
    CK(dnnl_primitive_create(&p, dpd));
    c->bd.core = c->bd.n;
    push(&c->bd, p, 3, (dnnl_exec_arg_t[]){{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}});
    append(&c->bd, &post);
    /* backward-weights: x, dy in; dw, db out */
    memset(&post, 0, sizeof post);
    x = bind(&c->bw, &post, X, dnnl_primitive_desc_query_md(wpd, dnnl_query_src_md, 0), 0);
    dy = bind(&c->bw, &post, DY, dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md, 0), 0);
    dnnl_memory_t dw = bind(&c->bw, &post, DW, dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0), 1);
    CK(dnnl_primitive_create(&p, wpd));
    c->bw.core = c->bw.n;
    push(&c->bw, p, 4, (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_BIAS, DB}});
    append(&c->bw, &post);
    if (verbose)
        printf("  reorders around the primitive: fwd %d, bwd-data %d, bwd-weights %d\n", c->fwd.n - 1, c->bd.n - 1, c->bw.n - 1);
}

/* Deterministic backward-weights, as mmfuse's conv2d does it: the batch in NCH fixed chunks,
 * each a 1-thread oneDNN primitive (built with 1 thread, run inside the OpenMP loop) writing
 * its own partial dw|db, the partials then added in chunk order. */
#define NCH 8
typedef struct { seq s[NCH]; dnnl_stream_t st[NCH]; float *part; int64_t nw, o; } dn_chunked;

static void dn_chunked_build(dn_chunked *c, bufs *u, int64_t B, int64_t C, int64_t H, int64_t W, int64_t O)
{
    int64_t b = B / NCH, nw = O * C * 9;
    dnnl_dims_t xd = {b, C, H, W}, wd = {O, C, 3, 3}, bd = {O}, yd = {b, O, H, W}, st = {1, 1}, pl = {1, 1};
    int T = omp_get_max_threads();
    omp_set_num_threads(1);
    memset(c, 0, sizeof *c);
    c->nw = nw; c->o = O; c->part = malloc(NCH * (nw + O) * sizeof(float));
    dnnl_memory_desc_t xa, wa, ya, bx;
    CK(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&bx, 1, bd, dnnl_f32, dnnl_x));
    dnnl_convolution_desc_t fd, wdsc;
    dnnl_primitive_desc_t fpd, wpd;
    CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xa, &wa, &bx, &ya, st, pl, pl));
    CK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CK(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &xa, &wa, &bx, &ya, st, pl, pl));
    CK(dnnl_primitive_desc_create(&wpd, &wdsc, NULL, eng, fpd));
    for (int k = 0; k < NCH; k++) {
        seq post; memset(&post, 0, sizeof post);
        float *pw = c->part + k * (nw + O);
        dnnl_memory_t X = user_mem(4, xd, dnnl_nchw, u->x + k * b * C * H * W), DY = user_mem(4, yd, dnnl_nchw, u->dy + k * b * O * H * W),
                      DW = user_mem(4, wd, dnnl_oihw, pw), DB = user_mem(1, bd, dnnl_x, pw + nw);
        dnnl_memory_t x = bind(&c->s[k], &post, X, dnnl_primitive_desc_query_md(wpd, dnnl_query_src_md, 0), 0);
        dnnl_memory_t dy = bind(&c->s[k], &post, DY, dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md, 0), 0);
        dnnl_memory_t dw = bind(&c->s[k], &post, DW, dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0), 1);
        dnnl_primitive_t p;
        CK(dnnl_primitive_create(&p, wpd));
        c->s[k].core = c->s[k].n;
        push(&c->s[k], p, 4, (dnnl_exec_arg_t[]){{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_BIAS, DB}});
        append(&c->s[k], &post);
        CK(dnnl_stream_create(&c->st[k], eng, dnnl_stream_default_flags));
    }
    omp_set_num_threads(T);
}

/* dw|db = sum of the chunks' partials, in chunk order */
static void dn_chunked_run(dn_chunked *c, float *dw, float *db)
{
#pragma omp parallel for schedule(static)
    for (int k = 0; k < NCH; k++) run_on(&c->s[k], 0, c->st[k]);
    int64_t n = c->nw + c->o;
    for (int64_t i = 0; i < n; i++) {
        float a = c->part[i];
        for (int k = 1; k < NCH; k++) a += c->part[k * n + i];
        if (i < c->nw) dw[i] = a; else db[i - c->nw] = a;
    }
}

/* ---------------------------------------------------------------- mmfuse */
typedef struct { mf_graph *g; mf_node *x, *w, *b, *y, *loss; } mm;

/* mode 0: inference graph; 1: training, x an input; 2: training, x a variable;
 * 3: training, loss = sum_all(y · R) with R = dy (the check); 4: a bare sum_all over y's shape. */
static void mm_build(mm *m, int mode, int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, const bufs *u)
{
    m->g = mf_graph_new(mode != 0);
    mf_shape ys = mf_shape4(B, O, H, W);
    if (mode == 4) {
        m->y = mf_variable(m->g, "y", ys); m->loss = mf_sum_all(m->g, m->y);
    } else {
        m->x = mode >= 2 ? mf_variable(m->g, "x", mf_shape4(B, C, H, W)) : mf_input(m->g, "x", mf_shape4(B, C, H, W));
        m->w = mf_variable(m->g, "w", mf_shape4(O, C, 3, 3));
        m->b = mf_variable(m->g, "b", mf_shape1(O));
        m->y = mf_conv2d(m->g, m->x, m->w, m->b, 1, 1);
        m->loss = mode == 0 ? NULL : mf_sum_all(m->g, mode == 3 ? mf_mul(m->g, m->y, mf_constant_data(m->g, ys, u->dy)) : m->y);
    }
    mf_error err; mf_error_clear(&err);
    if (mf_graph_compile(m->g, &err)) { fprintf(stderr, "mmfuse: %s\n", err.msg); exit(1); }
    if (mode == 4) return;
    memcpy(mf_node_value(m->x), u->x, B * C * H * W * sizeof(float));
    memcpy(mf_node_value(m->w), u->w, O * C * 9 * sizeof(float));
    memcpy(mf_node_value(m->b), u->b, O * sizeof(float));
}

/* ---------------------------------------------------------------- one shape */
enum { D_FWD_RO, D_FWD, D_BD_RO, D_BD, D_BW_RO, D_BW, D_BW_CH, M_FWD, M_TFWD1, M_TFWD, M_BW1, M_BW2, M_SUM, NT };
static const char *tname[NT] = {"dnnl fwd +ro", "dnnl fwd core", "dnnl bwd-data +ro", "dnnl bwd-data core",
    "dnnl bwd-w +ro", "dnnl bwd-w core", "dnnl bwd-w chunked +ro", "mmfuse fwd (eval)", "mmfuse fwd train x-in", "mmfuse fwd train x-var", "mmfuse bwd x-input",
    "mmfuse bwd x-var", "mmfuse sum_all bwd"};

static void shape(const char *name, int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int reps)
{
    int64_t nx = B * C * H * W, nw = O * C * 9, ny = B * O * H * W;
    bufs u = {malloc(nx * 4), malloc(nw * 4), malloc(O * 4), malloc(ny * 4), malloc(ny * 4), malloc(nx * 4), malloc(nw * 4), malloc(O * 4)};
    fill(u.x, nx, 1); fill(u.w, nw, 2); fill(u.b, O, 3); fill(u.dy, ny, 4);
    float *ref[2][4] = {{0}}, *ref_ch = NULL; /* per library: y, dx, dw, db at 1 thread */
    double med[2][NT] = {{0}};
    printf("%s: x (%lld,%lld,%lld,%lld) -> (%lld,%lld,%lld,%lld), 3x3 pad 1, %.1f MMAC\n", name, (long long)B, (long long)C,
           (long long)H, (long long)W, (long long)B, (long long)O, (long long)H, (long long)W, ny * C * 9 / 1e6);
    for (int T = 1; T <= (cpu_clock ? 1 : 2); T++) {
        mf_set_threads(T); omp_set_num_threads(T);
        dn_conv c; dn_build(&c, &u, B, C, H, W, O, T == 1);
        dn_chunked ch; dn_chunked_build(&ch, &u, B, C, H, W, O);
        float *cdw = malloc((nw + O) * sizeof(float)), *cdb = cdw + nw;
        mm m[5];
        for (int i = 0; i < 5; i++) mm_build(&m[i], i, B, C, H, W, O, &u);
        /* the check: dy = u.dy through the mul; mmfuse against oneDNN, and each library at 2 threads against 1 */
        run_seq(&c.fwd, 0); run_seq(&c.bd, 0); run_seq(&c.bw, 0);
        mf_graph_forward(m[3].g); mf_graph_backward(m[3].g, m[3].loss);
        float *got[2][4] = {{u.y, u.dx, u.dw, u.db}, {mf_node_value(m[3].y), mf_node_grad(m[3].x), mf_node_grad(m[3].w), mf_node_grad(m[3].b)}};
        int64_t len[4] = {ny, nx, nw, O};
        printf("  T=%d rel. err mmfuse vs oneDNN: y %.1e dx %.1e dw %.1e db %.1e\n", T, relerr(got[1][0], got[0][0], ny),
               relerr(got[1][1], got[0][1], nx), relerr(got[1][2], got[0][2], nw), relerr(got[1][3], got[0][3], O));
        dn_chunked_run(&ch, cdw, cdb);
        printf("  T=%d chunked oneDNN dw vs oneDNN: %.1e, db %.1e\n", T, relerr(cdw, u.dw, nw), relerr(cdb, u.db, O));
        if (T == 1) { ref_ch = malloc((nw + O) * 4); memcpy(ref_ch, cdw, (nw + O) * 4); }
        else printf("  chunked oneDNN dw|db at 2 threads %s 1 thread\n", memcmp(ref_ch, cdw, (nw + O) * 4) ? "DIFFERS from" : "bit-identical to");
        for (int l = 0; l < 2; l++) for (int k = 0; k < 4; k++) {
            if (T == 1) { ref[l][k] = malloc(len[k] * 4); memcpy(ref[l][k], got[l][k], len[k] * 4); }
            else if (memcmp(ref[l][k], got[l][k], len[k] * 4))
                printf("  %s %s at 2 threads differs from 1 thread (rel %.1e)\n", l ? "mmfuse" : "oneDNN",
                       (const char *[]){"y", "dx", "dw", "db"}[k], relerr(got[l][k], ref[l][k], len[k]));
        }
        double *t[NT];
        for (int i = 0; i < NT; i++) t[i] = malloc(reps * sizeof(double));
        for (int r = -20; r < reps; r++) { /* interleaved: every measurement once per rep */
            double tt[NT], t0;
            for (int core = 0; core < 2; core++) {
                t0 = now(); run_seq(&c.fwd, core); tt[D_FWD_RO + core] = now() - t0;
                t0 = now(); run_seq(&c.bd, core); tt[D_BD_RO + core] = now() - t0;
                t0 = now(); run_seq(&c.bw, core); tt[D_BW_RO + core] = now() - t0;
            }
            t0 = now(); dn_chunked_run(&ch, cdw, cdb); tt[D_BW_CH] = now() - t0;
            t0 = now(); mf_graph_forward(m[0].g); tt[M_FWD] = now() - t0;
            t0 = now(); mf_graph_forward(m[1].g); tt[M_TFWD1] = now() - t0;
            t0 = now(); mf_graph_backward(m[1].g, m[1].loss); tt[M_BW1] = now() - t0;
            t0 = now(); mf_graph_forward(m[2].g); tt[M_TFWD] = now() - t0;
            t0 = now(); mf_graph_backward(m[2].g, m[2].loss); tt[M_BW2] = now() - t0;
            mf_graph_forward(m[4].g); t0 = now(); mf_graph_backward(m[4].g, m[4].loss); tt[M_SUM] = now() - t0;
            if (r >= 0) for (int i = 0; i < NT; i++) t[i][r] = tt[i];
        }
        for (int i = 0; i < NT; i++) { med[T - 1][i] = median(t[i], reps) * 1e3; free(t[i]); }
        for (int i = 0; i < 5; i++) mf_graph_free(m[i].g);
        free(cdw); free(ch.part);
    }
    printf("  %-22s %9s %9s   (median ms of %d)\n", "", "T=1", "T=2", reps);
    for (int i = 0; i < NT; i++) printf("  %-22s %9.3f %9.3f\n", tname[i], med[0][i], med[1][i]);
    printf("  %-22s %9.3f %9.3f\n", "=> mmfuse bwd-weights", med[0][M_BW1] - med[0][M_SUM], med[1][M_BW1] - med[1][M_SUM]);
    printf("  %-22s %9.3f %9.3f\n", "=> mmfuse bwd-data", med[0][M_BW2] - med[0][M_BW1], med[1][M_BW2] - med[1][M_BW1]);
    printf("  %-22s %9.3f %9.3f\n", "=> mmfuse fwd+bwd(w,d)", med[0][M_TFWD] + med[0][M_BW2] - med[0][M_SUM], med[1][M_TFWD] + med[1][M_BW2] - med[1][M_SUM]);
    printf("  %-22s %9.3f %9.3f\n", "=> dnnl fwd+bwd(w,d) +ro", med[0][D_FWD_RO] + med[0][D_BD_RO] + med[0][D_BW_RO], med[1][D_FWD_RO] + med[1][D_BD_RO] + med[1][D_BW_RO]);
    printf("  %-22s %9.3f %9.3f\n", "=> dnnl fwd+bwd(w,d) core", med[0][D_FWD] + med[0][D_BD] + med[0][D_BW], med[1][D_FWD] + med[1][D_BD] + med[1][D_BW]);
    fflush(stdout);
    for (int l = 0; l < 2; l++) for (int k = 0; k < 4; k++) free(ref[l][k]);
    free(ref_ch);
    free(u.x); free(u.w); free(u.b); free(u.y); free(u.dy); free(u.dx); free(u.dw); free(u.db);
}

/* Heap allocations of 10 oneDNN training steps of conv2 (after 3 warm-up), at 2 threads:
 * LD_PRELOAD=libc_malloc_debug.so.0 MALLOC_TRACE=/tmp/t /tmp/dnnl_conv 0 mtrace; grep -c '+' /tmp/t */
static void alloc_check(void)
{
    int64_t B = 128, C = 16, H = 14, W = 14, O = 32;
    bufs u = {malloc(B * C * H * W * 4), malloc(O * C * 36), malloc(O * 4), malloc(B * O * H * W * 4),
              malloc(B * O * H * W * 4), malloc(B * C * H * W * 4), malloc(O * C * 36), malloc(O * 4)};
    fill(u.x, B * C * H * W, 1); fill(u.w, O * C * 9, 2); fill(u.b, O, 3); fill(u.dy, B * O * H * W, 4);
    omp_set_num_threads(2);
    dn_conv c; dn_build(&c, &u, B, C, H, W, O, 0);
    dn_chunked ch; dn_chunked_build(&ch, &u, B, C, H, W, O);
    for (int r = 0; r < 13; r++) {
        if (r == 3) mtrace();
        run_seq(&c.fwd, 0); run_seq(&c.bd, 0); run_seq(&c.bw, 0); dn_chunked_run(&ch, u.dw, u.db);
    }
    muntrace();
    printf("done\n");
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    if (argc > 2 && !strcmp(argv[2], "mtrace")) { alloc_check(); return 0; }
    cpu_clock = argc > 2 && !strcmp(argv[2], "cpu");
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d (cpu runtime %s), mmfuse conv2d\n", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
    shape("cnn-late conv1", 128, 1, 28, 28, 16, reps);
    shape("cnn-late conv2", 128, 16, 14, 14, 32, reps);
    shape("clip-dual conv1", 256, 1, 28, 28, 16, reps);
    shape("clip-dual conv2", 256, 16, 14, 14, 32, reps);
    return 0;
}
