/* @NAME@ — a fusion operator for mmfuse: a learned convex combination of the modalities'
 * features, z = Σ_m softmax(α)_m · h_m (all modalities must have the same width).
 *
 * Build:  cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) @NAME@.c -o @NAME@.so
 * Check:  mmfuse check-plugin ./@NAME@.so
 * Run:    MMFUSE_PLUGIN_PATH=. mmfuse run @NAME@.yaml
 * No backward code: the ops of <mmfuse/graph.h> differentiate themselves. */
#include <mmfuse/mmfuse.h>

typedef struct @NAME@_state {
    mf_param *alpha; /* (M): one logit per modality */
    float temperature;
} @NAME@_state;

static const mf_param_spec @NAME@_params[] = {
    {"temperature", MF_TYPE_FLOAT, "1.0", MF_PARAM_MIN, 1e-3, 0, NULL,
     "Softmax temperature of the modality weights."},
    MF_PARAM_END,
};

static int @NAME@_build(mf_module *self, const mf_config *cfg, const mf_build_args *args,
                        mf_shape *out, mf_error *err)
{
    @NAME@_state *s = mf_module_state(self);
    double temperature;
    if (mf_config_float(cfg, "temperature", &temperature, err))
        return -1;
    for (int i = 1; i < args->n_in; i++)
        if (!mf_shape_equal(&args->in[i], &args->in[0])) {
            mf_config_error(err, cfg, "'%s' and '%s' must have the same shape", args->in_names[0],
                            args->in_names[i]);
            return -1;
        }
    s->temperature = (float)temperature;
    s->alpha = mf_module_param(self, "alpha", mf_shape1(args->n_in), (mf_init){MF_INIT_ZEROS});
    *out = args->in[0];
    return s->alpha ? 0 : -1;
}

static mf_node *@NAME@_forward(mf_module *self, mf_graph *g, int n_in, mf_node *const *in)
{
    @NAME@_state *s = mf_module_state(self);
    mf_node *w = mf_softmax(g, mf_scale(g, mf_param_node(g, s->alpha), 1.0f / s->temperature));
    mf_node *z = NULL;
    for (int m = 0; m < n_in; m++) { // in[m] is (B,D); w_m a scalar
        mf_node *term = mf_mul(g, in[m], mf_slice(g, w, 0, m, 1));
        z = z ? mf_add(g, z, term) : term;
    }
    return z;
}

static const mf_module_ops @NAME@_ops = {
    .struct_size = sizeof(mf_module_ops),
    .state_size = sizeof(@NAME@_state),
    .build = @NAME@_build,
    .forward = @NAME@_forward,
};

static const mf_plugin @NAME@_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_FUSION,
    .name = "@NAME@",
    .version = "0.1.0",
    .license = "MIT",
    .summary = "Learned convex combination of the modalities' features",
    .params = @NAME@_params,
    .ops = &@NAME@_ops,
};

MF_PLUGIN_DEFINE(&@NAME@_plugin)
