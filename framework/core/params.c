/* The collated parameter store: one buffer for values, one for gradients, one per
 * optimiser moment, each holding every parameter back to back (llm.c's layout). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

struct mf_param {
    char *name;
    mf_shape shape;
    mf_init init;
    int64_t offset; /* into each collated buffer */
    mf_params *store;
    unsigned flags;  /* MF_NO_DECAY… */
    int bounded;     /* lo <= value <= hi enforced after every optimiser step */
    float lo, hi;
};

struct mf_params {
    mf_param **items;
    int size, cap;
    int64_t numel;
    int finalized, n_moments;
    float *values, *grads, *moments; /* moments: n_moments × numel */
};

static const char *const init_names[] = {
    "zeros", "ones", "normal", "uniform", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "fan_in_uniform", "constant", "trunc_normal",
};
_Static_assert(sizeof init_names / sizeof init_names[0] == MF_INIT_KIND_COUNT,
               "one name per initialiser");

const char *mf_init_name(mf_init_kind kind)
{
    return (unsigned)kind < MF_INIT_KIND_COUNT ? init_names[kind] : NULL;
}

mf_params *mf_params_new(void)
{
    return calloc(1, sizeof(mf_params));
}

void mf_params_free(mf_params *ps)
{
    if (!ps)
        return;
    for (int i = 0; i < ps->size; i++) {
        free(ps->items[i]->name);
        free(ps->items[i]);
    }
    free(ps->items);
    free(ps->values);
    free(ps->grads);
    free(ps->moments);
    free(ps);
}

mf_param *mf_params_add(mf_params *ps, const char *name, mf_shape shape, mf_init init,
                        mf_error *err)
{
    if (ps->finalized) {
        mf_error_set(err, "parameter '%s' registered after the parameters were allocated", name);
        return NULL;
    }
    if (mf_params_find(ps, name)) {
        mf_error_set(err, "parameter '%s' is registered twice", name);
        return NULL;
    }
    const int64_t numel = mf_shape_numel(&shape);
    if (shape.ndim < 1 || shape.ndim > MF_MAX_DIMS || numel <= 0) {
        char buf[64];
        mf_error_set(err, "parameter '%s' has an invalid shape %s: %s", name,
                     mf_shape_str(&shape, buf, sizeof buf),
                     numel < 0 && shape.ndim >= 1 && shape.ndim <= MF_MAX_DIMS
                         ? "more values than mmfuse can count (the product overflows)"
                         : "a shape needs 1 to 4 positive dimensions");
        return NULL;
    }
    if (ps->numel > (((int64_t)1 << 60) - 1) - numel) {
        mf_error_set(err, "parameter '%s': the model's parameters would hold more than 2^60 "
                     "values", name);
        return NULL;
    }
    if (ps->size == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        mf_param **items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items)
            goto oom;
        ps->items = items;
        ps->cap = cap;
    }
    mf_param *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        goto oom;
    }
    p->shape = shape;
    p->init = init;
    p->offset = ps->numel;
    p->store = ps;
    ps->numel += numel;
    ps->items[ps->size++] = p;
    return p;
oom:
    mf_error_set(err, "out of memory registering parameter '%s'", name);
    return NULL;
}

static void fans(const mf_param *p, double *fan_in, double *fan_out)
{
    const mf_shape *s = &p->shape;
    double receptive = 1;
    for (int d = 2; d < s->ndim; d++)
        receptive *= (double)s->dim[d];
    *fan_in = s->ndim > 1 ? (double)s->dim[1] * receptive : (double)s->dim[0];
    *fan_out = (double)s->dim[0] * receptive;
    if (p->init.fan_in > 0) { /* given: a bias, or a weight stored (in,out) */
        *fan_in = (double)p->init.fan_in;
        if (s->ndim == 2 && s->dim[0] == p->init.fan_in)
            *fan_out = (double)s->dim[1];
    }
}

static void initialise(mf_param *p, float *v, mf_rng *rng)
{
    int64_t n = mf_shape_numel(&p->shape);
    double fan_in, fan_out, bound = 0, std = 0;
    int uniform = 1;
    float scale = p->init.scale;
    fans(p, &fan_in, &fan_out);
    switch (p->init.kind) {
    case MF_INIT_ZEROS: bound = 0; break;
    case MF_INIT_ONES:
        for (int64_t i = 0; i < n; i++)
            v[i] = 1.0f;
        return;
    case MF_INIT_NORMAL: uniform = 0; std = scale; break;
    case MF_INIT_UNIFORM: bound = scale; break;
    case MF_INIT_XAVIER_UNIFORM: bound = scale * sqrt(6.0 / (fan_in + fan_out)); break;
    case MF_INIT_XAVIER_NORMAL: uniform = 0; std = scale * sqrt(2.0 / (fan_in + fan_out)); break;
    case MF_INIT_KAIMING_UNIFORM: bound = scale * sqrt(3.0 / fan_in); break;
    case MF_INIT_KAIMING_NORMAL: uniform = 0; std = scale / sqrt(fan_in); break;
    case MF_INIT_FAN_IN_UNIFORM: bound = 1.0 / sqrt(fan_in); break;
    case MF_INIT_CONSTANT:
        for (int64_t i = 0; i < n; i++)
            v[i] = scale;
        return;
    case MF_INIT_TRUNC_NORMAL: /* redraw outside ±2σ (timm's trunc_normal_, a=-2σ, b=2σ) */
        for (int64_t i = 0; i < n; i++) {
            float x;
            do
                x = mf_rng_normal(rng);
            while (!(fabsf(x) <= 2.0f));
            v[i] = scale * x;
        }
        return;
    default: break;
    }
    for (int64_t i = 0; i < n; i++)
        v[i] = uniform ? (float)((2.0 * mf_rng_uniform(rng) - 1.0) * bound)
                       : (float)std * mf_rng_normal(rng);
}

int mf_params_finalize(mf_params *ps, uint64_t seed, int n_moments, mf_error *err)
{
    if (ps->finalized) {
        mf_error_set(err, "the parameters are already allocated");
        return -1;
    }
    size_t bytes = (size_t)(ps->numel ? ps->numel : 1) * sizeof(float);
    ps->values = calloc(1, bytes);
    ps->grads = calloc(1, bytes);
    ps->moments = n_moments > 0 ? calloc((size_t)n_moments, bytes) : NULL;
    if (!ps->values || !ps->grads || (n_moments > 0 && !ps->moments)) {
        mf_error_set(err, "out of memory allocating %lld parameters", (long long)ps->numel);
        return -1;
    }
    ps->n_moments = n_moments;
    ps->finalized = 1;
    /* One stream per parameter, keyed by its position: adding a parameter at the end of a
     * model leaves the initial values of the others unchanged. */
    for (int i = 0; i < ps->size; i++) {
        mf_rng rng;
        mf_rng_seed_stream(&rng, seed, (uint64_t)i);
        initialise(ps->items[i], ps->values + ps->items[i]->offset, &rng);
    }
    return 0;
}

int mf_params_finalized(const mf_params *ps) { return ps->finalized; }
int mf_params_size(const mf_params *ps) { return ps->size; }
int64_t mf_params_numel(const mf_params *ps) { return ps->numel; }
mf_param *mf_params_at(mf_params *ps, int i) { return i >= 0 && i < ps->size ? ps->items[i] : NULL; }
float *mf_params_values(mf_params *ps) { return ps->values; }
float *mf_params_grads(mf_params *ps) { return ps->grads; }

float *mf_params_moment(mf_params *ps, int k)
{
    return k >= 0 && k < ps->n_moments ? ps->moments + (size_t)k * (size_t)ps->numel : NULL;
}

mf_param *mf_params_find(mf_params *ps, const char *name)
{
    for (int i = 0; i < ps->size; i++)
        if (strcmp(ps->items[i]->name, name) == 0)
            return ps->items[i];
    return NULL;
}

void mf_params_zero_grad(mf_params *ps)
{
    if (ps->grads)
        memset(ps->grads, 0, (size_t)ps->numel * sizeof(float));
}

const char *mf_param_name(const mf_param *p) { return p->name; }
const mf_shape *mf_param_shape(const mf_param *p) { return &p->shape; }
int64_t mf_param_offset(const mf_param *p) { return p->offset; }

float *mf_param_value(mf_param *p)
{
    return p->store->values ? p->store->values + p->offset : NULL;
}

float *mf_param_grad(mf_param *p)
{
    return p->store->grads ? p->store->grads + p->offset : NULL;
}

void mf_param_set_flags(mf_param *p, unsigned flags)
{
    if (p)
        p->flags = flags;
}

unsigned mf_param_flags(const mf_param *p) { return p ? p->flags : 0; }

void mf_param_set_bounds(mf_param *p, float lo, float hi)
{
    if (!p)
        return;
    p->bounded = lo <= hi;
    p->lo = lo;
    p->hi = hi;
}

int mfi_param_bounds(const mf_param *p, float *lo, float *hi)
{
    *lo = p->lo;
    *hi = p->hi;
    return p->bounded;
}
