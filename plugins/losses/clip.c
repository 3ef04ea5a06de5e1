/* clip — symmetric InfoNCE between two modalities' embeddings (Radford et al. 2021; open_clip's
 * ClipLoss). Each row L2-normalised (unless normalize: false: raw dot products), a (B,D) and
 * b (B,D):
 *   logits = exp(s)·a·bᵀ                 (B,B), pair i sits on the diagonal
 *   loss   = (CE(logits, arange B) + CE(logitsᵀ, arange B)) / 2
 * s is a learned logit scale started at ln(1/0.07), kept in [0, ln 100] as open_clip clamps it,
 * and free of weight decay. The other samples of the batch are the negatives, so the loss
 * needs no labels: the data's targets are ignored. Under `mpirun` both embeddings are gathered
 * over the ranks first (mf_gather_batch), so B is the whole batch of the step and the loss
 * and gradients are one process's. */
#include <mmfuse/mmfuse.h>

typedef struct clip_state {
    int a, b;             /* the two modalities' indices in the data's order */
    mf_logit_scale scale; /* s; learned unless learn_scale is off             */
    int normalize;        /* cosine similarities (rows L2-normalised), else dot products */
} clip_state;

static const mf_param_spec clip_params[] = {
    {"modalities", MF_TYPE_STRING_LIST, "[]", 0, 0, 0, NULL,
     "The two modalities to contrast; [] takes the two the data has."},
    {"init_scale", MF_TYPE_FLOAT, "2.659260036932778", 0, 0, 0, NULL,
     "s at the start: logits are exp(s)·cosine similarity; ln(1/0.07) as in CLIP."},
    {"learn_scale", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "Learn s (kept within [0, ln 100]); false holds it at init_scale."},
    {"normalize", MF_TYPE_BOOL, "true", 0, 0, 0, NULL,
     "L2-normalise both embeddings' rows (cosine similarities, as CLIP); false: raw dot "
     "products a·bᵀ, times the same scale (retrieval then ranks by them too)."},
    MF_PARAM_END,
};

static int clip_build_model(mf_module *self, const mf_config *cfg, const mf_loss_build_args *args,
                            mf_error *err)
{
    clip_state *s = mf_module_state(self);
    int idx[2];
    if (mf_config_bool(cfg, "normalize", &s->normalize, err) ||
        mf_loss_pick_modalities(cfg, args, "clip contrasts", 2, idx, err) ||
        mf_loss_check_vectors(cfg, args, "clip", 2, idx, err) ||
        mf_logit_scale_config(&s->scale, self, cfg, err))
        return -1;
    s->a = idx[0], s->b = idx[1];
    return 0;
}

static mf_node *clip_forward(mf_module *self, mf_graph *g, const mf_loss_inputs *in)
{
    const clip_state *s = mf_module_state(self);
    if (!in->embeddings[s->a] || !in->embeddings[s->b])
        return NULL;
    // under ranks, every rank's rows (open_clip's gather with gradient): the whole batch's
    // negatives, as in one process; alone, the embeddings themselves
    mf_node *ea = mf_gather_batch(g, in->embeddings[s->a]); // (B,D) each
    mf_node *eb = mf_gather_batch(g, in->embeddings[s->b]);
    if (!ea || !eb)
        return NULL;
    const int64_t B = mf_node_shape(ea)->dim[0];
    mf_node *scale = mf_logit_scale_forward(g, &s->scale);
    mf_node *logits = s->normalize ? mf_cosine_logits(g, ea, eb, scale)
                                   : mf_mul(g, mf_matmul(g, ea, eb, 0, 1), scale); // (B,B)
    mf_node *diag = mf_arange(g, B); // (B) pair i is class i
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
    values[0] = mf_logit_scale_value(&s->scale);
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
    .version = "1.1.0",
    .license = "MIT",
    .summary = "Symmetric InfoNCE (CLIP) between two modalities' embeddings, with a learned "
               "logit scale",
    .params = clip_params,
    .ops = &clip_ops,
};

MF_PLUGIN_DEFINE(&clip_plugin)
