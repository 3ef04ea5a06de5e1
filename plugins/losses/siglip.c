/* siglip — pairwise sigmoid loss between two modalities' embeddings (Zhai et al. 2023). Each
 * row L2-normalised, a (B,D) and b (B,D):
 *   logits = exp(t)·a·bᵀ + bias          (B,B)
 *   z      = +1 on the diagonal (matching pairs), -1 elsewhere
 *   loss   = -Σ_ij log σ(z_ij·logits_ij) / B = Σ_ij softplus(-z_ij·logits_ij) / B
 * normalised by B, not B², as big_vision (sum over the last axis, mean over the first) and
 * open_clip's SigLipLoss (sum / B) do. t starts at ln 10, bias at -10 (the paper's values),
 * both learned without weight decay; t is kept in [0, ln 100] as open_clip clamps its scale.
 * The data's targets are ignored. */
#include <mmfuse/mmfuse.h>
#include <math.h>
#include <string.h>

#define SIGLIP_MAX_MODALITIES 64
#define SIGLIP_LN_100 4.605170185988091

typedef struct siglip_state {
    int a, b;                /* the two modalities' indices in the data's order  */
    mf_param *scale, *bias;  /* (1) each; NULL when not learned                 */
    float init_scale, init_bias;
} siglip_state;

static const mf_param_spec siglip_params[] = {
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "The two modalities to contrast; [] takes the two the data has."},
    {"init_scale", MF_TYPE_FLOAT, "2.302585092994046", 0, 0, 0, NULL,
     "t at the start: logits are exp(t)·cosine similarity + bias; ln 10 as in SigLIP."},
    {"init_bias", MF_TYPE_FLOAT, "-10", 0, 0, 0, NULL,
     "The bias at the start; -10 as in SigLIP, so that the many negatives start near 0."},
    {"learn_scale", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn t (kept within [0, ln 100]); false holds it at init_scale."},
    {"learn_bias", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn the bias; false holds it at init_bias."},
    MF_PARAM_END,
};

/* "a, b, c" into buf. */
static const char *join_names(const mf_loss_build_args *args, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < args->n_modalities && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", args->names[i]);
    return buf;
}

/* The two modalities to contrast: `modalities`, else the data's two. */
static int pick_pair(const mf_config *cfg, const mf_loss_build_args *args, int idx[2],
                     mf_error *err)
{
    const mf_config *list = mf_config_get(cfg, "modalities");
    const int n = list ? mf_config_length(list) : 0;
    const char *cand[SIGLIP_MAX_MODALITIES + 1] = {NULL};
    char names[512];
    for (int i = 0; i < args->n_modalities && i < SIGLIP_MAX_MODALITIES; i++)
        cand[i] = args->names[i];
    if (n == 0) {
        if (args->n_modalities == 2) {
            idx[0] = 0, idx[1] = 1;
            return 0;
        }
        mf_config_error(err, cfg, "siglip contrasts two modalities, but the data has %d (%s); list "
                        "the two in 'modalities'", args->n_modalities,
                        join_names(args, names, sizeof names));
        return -1;
    }
    if (n != 2) {
        mf_config_error(err, list, "siglip contrasts exactly two modalities, but %d are listed", n);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        const mf_config *item = mf_config_at(list, i);
        const char *name = mf_config_scalar(item);
        idx[i] = -1;
        for (int m = 0; name && m < args->n_modalities; m++)
            if (strcmp(name, args->names[m]) == 0)
                idx[i] = m;
        if (idx[i] < 0) {
            mf_config_error(err, item, "no modality '%s' in the data (it has %s)%s",
                            name ? name : "", join_names(args, names, sizeof names),
                            mf_suggestion(name ? name : "", cand));
            return -1;
        }
    }
    if (idx[0] == idx[1]) {
        mf_config_error(err, list, "lists '%s' twice; name two different modalities",
                        args->names[idx[0]]);
        return -1;
    }
    return 0;
}

/* Both embeddings one vector per sample, of the same width. */
static int check_pair(const mf_config *cfg, const mf_loss_build_args *args, const int idx[2],
                      mf_error *err)
{
    char buf[64];
    for (int i = 0; i < 2; i++) {
        const mf_shape *e = &args->emb[idx[i]];
        int seq = args->emb_flags && (args->emb_flags[idx[i]] & MF_IO_SEQUENCE);
        if (seq || e->ndim != 1) {
            mf_config_error(err, cfg, "siglip needs one vector per sample, but emb.%s is %s%s; "
                            "give its encoder a pooled vector output", args->names[idx[i]],
                            seq ? "a sequence " : "", mf_shape_str(e, buf, sizeof buf));
            return -1;
        }
    }
    const int64_t da = args->emb[idx[0]].dim[0], db = args->emb[idx[1]].dim[0];
    if (da != db) {
        mf_config_error(err, cfg, "siglip compares emb.%s (%lld features) with emb.%s (%lld), "
                        "which need the same width; give both encoders the same `out:` "
                        "projection (e.g. out: %lld)", args->names[idx[0]], (long long)da,
                        args->names[idx[1]], (long long)db, (long long)(da > db ? da : db));
        return -1;
    }
    return 0;
}

/* A (1) parameter started at `value`, free of weight decay. */
static mf_param *scalar_param(mf_module *self, const char *name, float value)
{
    mf_param *p = mf_module_param(self, name, mf_shape1(1), (mf_init){MF_INIT_CONSTANT, value, 0});
    if (p) /* a failed registration is recorded in the module, reported by the host */
        mf_param_set_flags(p, MF_NO_DECAY);
    return p;
}

static int siglip_build_model(mf_module *self, const mf_config *cfg,
                              const mf_loss_build_args *args, mf_error *err)
{
    siglip_state *s = mf_module_state(self);
    double scale, bias;
    int learn_scale, learn_bias, idx[2];
    if (mf_config_float(cfg, "init_scale", &scale, err) ||
        mf_config_float(cfg, "init_bias", &bias, err) ||
        mf_config_bool(cfg, "learn_scale", &learn_scale, err) ||
        mf_config_bool(cfg, "learn_bias", &learn_bias, err) || pick_pair(cfg, args, idx, err) ||
        check_pair(cfg, args, idx, err))
        return -1;
    if (learn_scale && (scale < 0 || scale > SIGLIP_LN_100)) {
        mf_config_error(err, mf_config_get(cfg, "init_scale"), "init_scale %g is outside "
                        "[0, ln 100 = 4.6052], the range the learned scale is kept in", scale);
        return -1;
    }
    s->a = idx[0], s->b = idx[1];
    s->init_scale = (float)scale, s->init_bias = (float)bias;
    if (learn_scale && (s->scale = scalar_param(self, "logit_scale", s->init_scale)))
        mf_param_set_bounds(s->scale, 0.0f, (float)SIGLIP_LN_100);
    if (learn_bias)
        s->bias = scalar_param(self, "logit_bias", s->init_bias);
    return 0;
}

static mf_node *siglip_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const siglip_state *s = mf_module_state(self);
    if (!in->embeddings[s->a] || !in->embeddings[s->b])
        return NULL;
    const int64_t B = mf_node_shape(in->embeddings[s->a])->dim[0];
    mf_node *a = mf_l2_normalize(g, in->embeddings[s->a], 1e-12f); // (B,D)
    mf_node *b = mf_l2_normalize(g, in->embeddings[s->b], 1e-12f); // (B,D)
    mf_node *t = s->scale ? mf_exp(g, mf_param_node(g, s->scale))
                          : mf_constant(g, mf_shape1(1), expf(s->init_scale)); // (1)
    mf_node *bias = s->bias ? mf_param_node(g, s->bias)
                            : mf_constant(g, mf_shape1(1), s->init_bias);      // (1)
    mf_node *logits = mf_add(g, mf_mul(g, mf_matmul(g, a, b, 0, 1), t), bias);  // (B,B)
    mf_node *z = mf_add_scalar(g, mf_scale(g, mf_eye(g, B), 2), -1);            // (B,B) ±1
    mf_node *nll = mf_softplus(g, mf_scale(g, mf_mul(g, z, logits), -1));       // -log σ(z·l)
    return mf_scale(g, mf_sum_all(g, nll), 1.0f / (float)B);
}

static void siglip_declare_metrics(mf_module *self, mf_loss_metrics *out)
{
    out->n = 2;
    out->names[0] = "logit_scale"; /* exp(t) */
    out->names[1] = "logit_bias";
    out->higher_is_better[0] = out->higher_is_better[1] = 0;
}

static void siglip_batch_metrics(mf_module *self, const mf_loss_inputs *in, double *values)
{
    const siglip_state *s = mf_module_state(self);
    values[0] = exp(s->scale ? (double)mf_param_value(s->scale)[0] : (double)s->init_scale);
    values[1] = s->bias ? (double)mf_param_value(s->bias)[0] : (double)s->init_bias;
}

static const mf_loss_ops siglip_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(siglip_state),
    .forward = siglip_forward,
    .build_model = siglip_build_model,
    .declare_metrics = siglip_declare_metrics,
    .batch_metrics = siglip_batch_metrics,
};

static const mf_plugin siglip_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "siglip",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Pairwise sigmoid loss (SigLIP) between two modalities' embeddings, with a "
               "learned scale and bias",
    .params = siglip_params,
    .ops = &siglip_ops,
};

MF_PLUGIN_DEFINE(&siglip_plugin)
