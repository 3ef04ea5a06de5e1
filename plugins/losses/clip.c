/* clip — symmetric InfoNCE between two modalities' embeddings (Radford et al. 2021; open_clip's
 * ClipLoss). Each row L2-normalised, a (B,D) and b (B,D):
 *   logits = exp(s)·a·bᵀ                 (B,B), pair i sits on the diagonal
 *   loss   = (CE(logits, arange B) + CE(logitsᵀ, arange B)) / 2
 * s is a learned logit scale started at ln(1/0.07), kept in [0, ln 100] as open_clip clamps it,
 * and free of weight decay. The other samples of the batch are the negatives, so the loss
 * needs no labels: the data's targets are ignored. */
#include <mmfuse/mmfuse.h>
#include <math.h>
#include <string.h>

#define CLIP_MAX_MODALITIES 64
#define CLIP_LN_100 4.605170185988091

typedef struct clip_state {
    int a, b;        /* the two modalities' indices in the data's order */
    mf_param *scale; /* (1) s; NULL when learn_scale is off          */
    float init;      /* s at the start (and throughout without learning) */
} clip_state;

static const mf_param_spec clip_params[] = {
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "The two modalities to contrast; [] takes the two the data has."},
    {"init_scale", MF_TYPE_FLOAT, "2.659260036932778", 0, 0, 0, NULL,
     "s at the start: logits are exp(s)·cosine similarity; ln(1/0.07) as in CLIP."},
    {"learn_scale", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn s (kept within [0, ln 100]); false holds it at init_scale."},
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
    const char *cand[CLIP_MAX_MODALITIES + 1] = {NULL};
    char names[512];
    for (int i = 0; i < args->n_modalities && i < CLIP_MAX_MODALITIES; i++)
        cand[i] = args->names[i];
    if (n == 0) {
        if (args->n_modalities == 2) {
            idx[0] = 0, idx[1] = 1;
            return 0;
        }
        mf_config_error(err, cfg, "clip contrasts two modalities, but the data has %d (%s); list "
                        "the two in 'modalities'", args->n_modalities,
                        join_names(args, names, sizeof names));
        return -1;
    }
    if (n != 2) {
        mf_config_error(err, list, "clip contrasts exactly two modalities, but %d are listed", n);
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
            mf_config_error(err, cfg, "clip needs one vector per sample, but emb.%s is %s%s; "
                            "give its encoder a pooled vector output", args->names[idx[i]],
                            seq ? "a sequence " : "", mf_shape_str(e, buf, sizeof buf));
            return -1;
        }
    }
    const int64_t da = args->emb[idx[0]].dim[0], db = args->emb[idx[1]].dim[0];
    if (da != db) {
        mf_config_error(err, cfg, "clip compares emb.%s (%lld features) with emb.%s (%lld), "
                        "which need the same width; give both encoders the same `out:` "
                        "projection (e.g. out: %lld)", args->names[idx[0]], (long long)da,
                        args->names[idx[1]], (long long)db, (long long)(da > db ? da : db));
        return -1;
    }
    return 0;
}

static int clip_build_model(mf_module *self, const mf_config *cfg, const mf_loss_build_args *args,
                            mf_error *err)
{
    clip_state *s = mf_module_state(self);
    double init;
    int learn, idx[2];
    if (mf_config_float(cfg, "init_scale", &init, err) ||
        mf_config_bool(cfg, "learn_scale", &learn, err) || pick_pair(cfg, args, idx, err) ||
        check_pair(cfg, args, idx, err))
        return -1;
    if (learn && (init < 0 || init > CLIP_LN_100)) {
        mf_config_error(err, mf_config_get(cfg, "init_scale"), "init_scale %g is outside "
                        "[0, ln 100 = 4.6052], the range the learned scale is kept in", init);
        return -1;
    }
    s->a = idx[0], s->b = idx[1], s->init = (float)init;
    if (!learn)
        return 0;
    s->scale = mf_module_param(self, "logit_scale", mf_shape1(1),
                               (mf_init){MF_INIT_CONSTANT, (float)init, 0});
    if (s->scale) { /* a failed registration is recorded in the module, reported by the host */
        mf_param_set_flags(s->scale, MF_NO_DECAY);
        mf_param_set_bounds(s->scale, 0.0f, (float)CLIP_LN_100);
    }
    return 0;
}

static mf_node *clip_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const clip_state *s = mf_module_state(self);
    if (!in->embeddings[s->a] || !in->embeddings[s->b])
        return NULL;
    const int64_t B = mf_node_shape(in->embeddings[s->a])->dim[0];
    mf_node *a = mf_l2_normalize(g, in->embeddings[s->a], 1e-12f); // (B,D)
    mf_node *b = mf_l2_normalize(g, in->embeddings[s->b], 1e-12f); // (B,D)
    mf_node *t = s->scale ? mf_exp(g, mf_param_node(g, s->scale))
                          : mf_constant(g, mf_shape1(1), expf(s->init)); // (1)
    mf_node *logits = mf_mul(g, mf_matmul(g, a, b, 0, 1), t);           // (B,B)
    mf_node *diag = mf_arange(g, B);                                     // (B) pair i is class i
    mf_node *la = mf_cross_entropy(g, logits, diag);
    mf_node *lb = mf_cross_entropy(g, mf_transpose(g, logits, 0, 1), diag);
    return mf_scale(g, mf_add(g, la, lb), 0.5f);
}

static void clip_declare_metrics(mf_module *self, mf_loss_metrics *out)
{
    out->n = 1;
    out->names[0] = "logit_scale"; /* exp(s): how sharp the contrast has become */
    out->higher_is_better[0] = 0;
}

static void clip_batch_metrics(mf_module *self, const mf_loss_inputs *in, double *values)
{
    const clip_state *s = mf_module_state(self);
    values[0] = exp(s->scale ? (double)mf_param_value(s->scale)[0] : (double)s->init);
}

static const mf_loss_ops clip_ops = {
    .struct_size = sizeof(mf_loss_ops),
    .state_size = sizeof(clip_state),
    .forward = clip_forward,
    .build_model = clip_build_model,
    .declare_metrics = clip_declare_metrics,
    .batch_metrics = clip_batch_metrics,
};

static const mf_plugin clip_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_LOSS,
    .name = "clip",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Symmetric InfoNCE (CLIP) between two modalities' embeddings, with a learned "
               "logit scale",
    .params = clip_params,
    .ops = &clip_ops,
};

MF_PLUGIN_DEFINE(&clip_plugin)
