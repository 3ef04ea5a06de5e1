/* film — feature-wise linear modulation (FiLM, Perez et al. 2018): the conditioning
 * modality c scales and shifts the features of every other modality t,
 *   out_t = γ_t(x_c) ⊙ x_t + β_t(x_c),   γ_t, β_t linear maps of x_c (flattened)
 * per feature of a vector x_t (D), per channel of a feature map (C,H,W) (broadcast over
 * H,W) and per feature of a sequence (T,D) (broadcast over T). γ's bias starts at 1 and its
 * weight near 0, so an untrained layer passes x_t through almost unchanged. With two
 * modalities the output is out_t in x_t's shape; with more, every out_t flattened and
 * concatenated in the data's order. */
#include <math.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

#define MAX_IN 16

typedef struct film_state {
    int n, cond;
    mf_linear gamma[MAX_IN], beta[MAX_IN]; /* for each modulated modality t != cond */
} film_state;

static const mf_param_spec film_params[] = {
    {"condition", MF_TYPE_STRING, "\"\"", 0, 0, 0, NULL,
     "Name of the conditioning modality; empty: the first in the data's order."},
    MF_PARAM_END,
};

/* The modulated axis: features of a vector or a sequence (T,D), channels of a map (C,H,W). */
static int64_t film_channels(const mf_shape *s)
{
    return s->ndim == 3 ? s->dim[0] : s->dim[s->ndim - 1];
}

static int find_condition(const mf_config *cfg, const mf_build_args *args, int *out,
                          mf_error *err)
{
    const char *name;
    if (mf_config_string(cfg, "condition", &name, err))
        return -1;
    *out = 0;
    if (!*name)
        return 0;
    for (int m = 0; m < args->n_in; m++)
        if (strcmp(args->in_names[m], name) == 0)
            return *out = m, 0;
    char list[512] = "";
    size_t len = 0;
    const char *names[MAX_IN + 1] = {NULL};
    for (int m = 0; m < args->n_in && m < MAX_IN; m++) {
        names[m] = args->in_names[m];
        if (len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", m ? ", " : "",
                                    args->in_names[m]);
    }
    mf_config_error(err, mf_config_get(cfg, "condition"),
                    "condition '%s' is not one of the modalities (%s)%s", name, list,
                    mf_suggestion(name, names));
    return -1;
}

static int film_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                      mf_shape *out, mf_error *err)
{
    film_state *s = mf_module_state(self);
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "film fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    if (find_condition(cfg, args, &s->cond, err))
        return -1;
    s->n = args->n_in;
    const int64_t dc = mf_shape_numel(&args->in[s->cond]);
    /* γ = W x_c + 1: a small weight, U(±0.1/√D_c), and a bias of ones */
    mf_init small = {MF_INIT_UNIFORM, (float)(0.1 / sqrt((double)dc)), 0};
    mf_init ones = {MF_INIT_ONES, 0, 0};
    int64_t total = 0;
    for (int t = 0; t < s->n; t++) {
        if (t == s->cond)
            continue;
        int64_t k = film_channels(&args->in[t]);
        char name[80];
        snprintf(name, sizeof name, "gamma.%s", args->in_names[t]);
        if (mf_linear_init_with(&s->gamma[t], self, name, dc, k, 0, small))
            return -1;
        snprintf(name, sizeof name, "gamma.%s.bias", args->in_names[t]);
        if (!(s->gamma[t].bias = mf_module_param(self, name, mf_shape1(k), ones)))
            return -1;
        mf_param_set_flags(s->gamma[t].bias, MF_NO_DECAY); /* decay would pull γ to 0 */
        snprintf(name, sizeof name, "beta.%s", args->in_names[t]);
        if (mf_linear_init(&s->beta[t], self, name, dc, k, 1))
            return -1;
        total += mf_shape_numel(&args->in[t]);
        *out = args->in[t];
        /* two modalities: out_t keeps x_t's shape, a sequence stays one (with its mask) */
        if (s->n == 2 && args->struct_size > offsetof(mf_build_args, out_flags) &&
            args->out_flags && args->in_flags)
            *args->out_flags |= args->in_flags[t] & (MF_IO_SEQUENCE | MF_IO_MASKED);
    }
    if (s->n > 2)
        *out = mf_shape1(total);
    return 0;
}

/* v (B,K) shaped to broadcast against x: (B,K) for a vector, (B,1,K) over a sequence's T,
 * (B,K,1,1) over a map's H,W. */
static mf_node *per_channel(mf_graph *g, mf_node *v, mf_node *x)
{
    const mf_shape *xs = mf_node_shape(x);
    int64_t B = xs->dim[0], K = mf_node_shape(v)->dim[1];
    return xs->ndim == 2 ? v
           : xs->ndim == 3 ? mf_reshape(g, v, mf_shape3(B, 1, K))
                           : mf_reshape(g, v, mf_shape4(B, K, 1, 1));
}

static mf_node *film_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    film_state *s = mf_module_state(self);
    mf_node *c = mf_flatten(g, in[s->cond]), *outs[MAX_IN];
    int n = 0;
    for (int t = 0; t < s->n; t++) {
        if (t == s->cond || !in[t] || !c)
            continue;
        mf_node *gamma = mf_linear_forward(g, &s->gamma[t], c); // (B,K)
        mf_node *beta = mf_linear_forward(g, &s->beta[t], c);
        if (!gamma || !beta)
            return NULL;
        mf_node *y = mf_add(g, mf_mul(g, in[t], per_channel(g, gamma, in[t])),
                            per_channel(g, beta, in[t]));
        if (y && s->n == 2)
            mf_node_set_mask(y, mf_node_mask(in[t]));
        outs[n++] = s->n > 2 ? mf_flatten(g, y) : y;
    }
    if (n != s->n - 1)
        return NULL; /* a NULL input: the graph holds the error already */
    return n == 1 ? outs[0] : mf_concat(g, n, outs);
}

static const mf_module_ops film_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(film_state),
    .build = film_build,
    .forward = film_forward,
};

static const mf_plugin film_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "film",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "FiLM (Perez et al. 2018): one modality scales and shifts the others' features",
    .params = film_params,
    .ops = &film_ops,
};

MF_PLUGIN_DEFINE(&film_plugin)
