/* mi — multiplicative interactions (Jayakumar et al. 2020): a bilinear layer in which the
 * context x conditions the input z,
 *   out = z^T W x + U z + V x + b       x (B,D_x), z (B,D_z) flattened, out (B,dim)
 * i.e. a linear layer on z whose weight matrix W x + U and bias V x + b are generated from
 * x (a hypernetwork). The first modality is x, the second z. For M > 2 the operator is
 * chained, the fused result so far conditioning the next modality:
 *   h_2 = MI_2(x = x_1, z = x_2),  h_m = MI_m(x = h_{m-1}, z = x_m),  out = h_M
 * each step with its own W, U, V, b. */
#include <math.h>

#include <mmfuse/mmfuse.h>

#define MAX_IN 16

typedef struct mi_step {
    int64_t dx, dz;
    mf_linear w;    /* D_x → D_z·dim, no bias: x ↦ the (D_z,dim) matrix W x */
    mf_linear u, v; /* D_z → dim (no bias), D_x → dim (bias b) */
} mi_step;

typedef struct mi_state {
    int n;
    int64_t dim;
    mi_step step[MAX_IN - 1];
} mi_state;

static const mf_param_spec mi_params[] = {
    {"dim", MF_TYPE_INT, "64", MF_PARAM_MIN | MF_PARAM_MAX, 1, 1 << 24, NULL, "Width of the fused output."},
    MF_PARAM_END,
};

static int mi_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                    mf_shape *out, mf_error *err)
{
    mi_state *s = mf_module_state(self);
    if (mf_config_int(cfg, "dim", &s->dim, err))
        return -1;
    if (args->n_in > MAX_IN) {
        mf_config_error(err, cfg, "mi fuses at most %d modalities, got %d", MAX_IN, args->n_in);
        return -1;
    }
    s->n = args->n_in;
    int64_t dx = mf_shape_numel(&args->in[0]);
    for (int m = 1; m < s->n; m++) {
        mi_step *st = &s->step[m - 1];
        st->dx = dx;
        st->dz = mf_shape_numel(&args->in[m]);
        /* Each output unit of z^T W x sums D_x·D_z products: U(±1/√(D_x·D_z)) gives it the
         * variance a Linear layer's output has. */
        mf_init w_init = {MF_INIT_UNIFORM, (float)(1.0 / sqrt((double)(st->dx * st->dz))), 0};
        char w[64], u[64], v[64];
        snprintf(w, sizeof w, "step%d.w", m);
        snprintf(u, sizeof u, "step%d.u", m);
        snprintf(v, sizeof v, "step%d.v", m);
        if (mf_linear_init_with(&st->w, self, w, st->dx, st->dz * s->dim, 0, w_init) ||
            mf_linear_init(&st->u, self, u, st->dz, s->dim, 0) ||
            mf_linear_init(&st->v, self, v, st->dx, s->dim, 1))
            return -1;
        dx = s->dim; /* the next step is conditioned on this one's output */
    }
    *out = mf_shape1(s->dim);
    return 0;
}

/* One bilinear step: x (B,D_x), z (B,D_z) → (B,dim). */
static mf_node *mi_apply(mf_graph *g, const mi_step *st, int64_t dim, mf_node *x, mf_node *z)
{
    int64_t B = x ? mf_node_shape(x)->dim[0] : 1;
    mf_node *wx = mf_reshape(g, mf_linear_forward(g, &st->w, x), mf_shape3(B, st->dz, dim));
    mf_node *zw = mf_bmm(g, mf_reshape(g, z, mf_shape3(B, 1, st->dz)), wx, 0, 0); // (B,1,dim)
    mf_node *lin = mf_add(g, mf_linear_forward(g, &st->u, z), mf_linear_forward(g, &st->v, x));
    return mf_add(g, mf_reshape(g, zw, mf_shape2(B, dim)), lin);
}

static mf_node *mi_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    mi_state *s = mf_module_state(self);
    mf_node *h = mf_flatten(g, in[0]);
    for (int m = 1; m < s->n; m++)
        h = mi_apply(g, &s->step[m - 1], s->dim, h, mf_flatten(g, in[m]));
    return h;
}

static const mf_module_ops mi_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(mi_state),
    .build = mi_build,
    .forward = mi_forward,
};

static const mf_plugin mi_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "mi",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Multiplicative interactions (Jayakumar et al. 2020): x conditions z bilinearly; chained for M > 2",
    .params = mi_params,
    .ops = &mi_ops,
};

MF_PLUGIN_DEFINE(&mi_plugin)
