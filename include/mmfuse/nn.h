/* mmfuse/nn.h — parameters, initialisers and building blocks.
 *
 * All trainable tensors of a model live in one mf_params store: one contiguous buffer for
 * values, one for gradients, one per optimiser moment (llm.c's layout), so zeroing the
 * gradients, an optimiser step or a checkpoint is one loop or one write. Modules register
 * named parameters while they are built ("model.encoders.nir.fc0.weight"); the store is
 * then finalised — buffers allocated, values initialised from the experiment's seed in
 * registration order — before any graph uses them.
 */
#ifndef MMFUSE_NN_H
#define MMFUSE_NN_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- initialisers */
/* fan_in = shape[1]·shape[2]·…, fan_out = shape[0]·shape[2]·… (PyTorch's convention:
 * a weight is (out, in, kernel…)). What each kind does with `scale` is said beside it. */
typedef enum mf_init_kind {
    MF_INIT_ZEROS,           /* 0; scale ignored                               */
    MF_INIT_ONES,            /* 1; scale ignored (use MF_INIT_CONSTANT)        */
    MF_INIT_NORMAL,          /* N(0, scale²)                                   */
    MF_INIT_UNIFORM,         /* U(-scale, scale)                               */
    MF_INIT_XAVIER_UNIFORM,  /* U(±scale·√(6/(fan_in+fan_out))), scale = gain  */
    MF_INIT_XAVIER_NORMAL,   /* N(0, scale²·2/(fan_in+fan_out))                */
    MF_INIT_KAIMING_UNIFORM, /* U(±scale·√(3/fan_in)), scale = gain (√2 for ReLU) */
    MF_INIT_KAIMING_NORMAL,  /* N(0, scale²/fan_in)                            */
    MF_INIT_FAN_IN_UNIFORM,  /* U(±1/√fan_in): PyTorch's Linear/Conv default; scale ignored */
    MF_INIT_CONSTANT,        /* every element = scale (ABI 1.1): a temperature log(1/0.07) */
    MF_INIT_TRUNC_NORMAL,    /* N(0, scale²) cut at ±2·scale (ABI 1.1): ViT's tokens, positions */
    MF_INIT_KIND_COUNT
} mf_init_kind;

typedef struct mf_init {
    mf_init_kind kind;
    float scale;
    int64_t fan_in; /* 0: from the shape; else the layer's (a bias, or a weight stored (in,out)) */
} mf_init;

MF_API const char *mf_init_name(mf_init_kind kind);

/* ---------------------------------------------------------------- parameter store */
typedef struct mf_params mf_params;

MF_API mf_params *mf_params_new(void);
MF_API void mf_params_free(mf_params *ps);
/* Register a parameter; fails on a duplicate name or after finalisation. */
MF_API mf_param *mf_params_add(mf_params *ps, const char *name, mf_shape shape, mf_init init,
                               mf_error *err);
/* Allocate the collated buffers (values, gradients, n_moments optimiser buffers, all zeroed)
 * and initialise every value from `seed`. */
MF_API int mf_params_finalize(mf_params *ps, uint64_t seed, int n_moments, mf_error *err);
MF_API int mf_params_finalized(const mf_params *ps);
MF_API int mf_params_size(const mf_params *ps);          /* number of tensors */
MF_API int64_t mf_params_numel(const mf_params *ps);     /* number of scalars */
MF_API mf_param *mf_params_at(mf_params *ps, int i);
MF_API mf_param *mf_params_find(mf_params *ps, const char *name);
MF_API float *mf_params_values(mf_params *ps);           /* numel floats each */
MF_API float *mf_params_grads(mf_params *ps);
MF_API float *mf_params_moment(mf_params *ps, int k);    /* k < n_moments */
MF_API void mf_params_zero_grad(mf_params *ps);

MF_API const char *mf_param_name(const mf_param *p);
MF_API const mf_shape *mf_param_shape(const mf_param *p);
MF_API int64_t mf_param_offset(const mf_param *p);        /* into the collated buffers */
MF_API float *mf_param_value(mf_param *p);                /* valid after finalisation */
MF_API float *mf_param_grad(mf_param *p);

/* Per-parameter flags (ABI 1.1). Set them while building, after mf_module_param. */
#define MF_NO_DECAY 0x1u       /* weight decay skips it: biases, norms, temperatures, tokens
                                  (as open_clip and timm exclude them); set by nn.h blocks */
MF_API void mf_param_set_flags(mf_param *p, unsigned flags);
MF_API unsigned mf_param_flags(const mf_param *p);
/* Keep the value within [lo, hi] after every optimiser step (open_clip clamps CLIP's logit
 * scale to at most ln 100). lo > hi removes the bounds. */
MF_API void mf_param_set_bounds(mf_param *p, float lo, float hi);

/* ---------------------------------------------------------------- optimisers */
/* Update rules over the collated buffers, as torch.optim defines them: Adam (weight decay as
 * an L2 term), AdamW (decoupled decay), SGD with momentum (dampening 0), Nesterov or not. Weight decay skips
 * parameters flagged MF_NO_DECAY; bounds (mf_param_set_bounds) apply after the step. */
typedef enum mf_optim_kind { MF_OPTIM_ADAM, MF_OPTIM_ADAMW, MF_OPTIM_SGD } mf_optim_kind;
#define MF_OPTIM_CHOICES "adam|adamw|sgd"

typedef struct mf_optim {
    mf_optim_kind kind;
    double lr, beta1, beta2, eps, weight_decay, momentum;
    int64_t step; /* updates done so far */
    /* ABI 1.1: fields are only ever appended here, and zero keeps the 1.0 behaviour (a
     * 1.0 initialiser {kind, lr, …, step} leaves them zero). */
    int nesterov;           /* SGD: Nesterov momentum, torch's nesterov=True            */
    const float *lr_scale;  /* one factor per parameter (mf_params_at order) on lr and
                               so on the decay, as a torch param group's lr; NULL: all 1 */
    double grad_scale;      /* gradients are multiplied by it as the step reads them
                               (clipping, averaging accumulated batches); 0: 1           */
    double grad_norm;       /* out: ‖g‖₂ of the gradients the last step read, before
                               grad_scale (one pass with the update)                    */
} mf_optim;

/* Optimiser state buffers the kind needs: mf_params_finalize's n_moments. */
MF_API int mf_optim_moments(mf_optim_kind kind);
/* One update of every parameter from its accumulated gradient, which it then zeroes (one
 * pass over memory instead of two): the next backward needs no mf_params_zero_grad.
 * The SGD update of torch.optim.SGD (dampening 0):
 *     d = s·g + wd·p;  b = μ·b + d (b = d at the first step);  p -= lr·(nesterov ? d + μ·b : b)
 * with s = grad_scale and lr, wd each parameter's (times lr_scale for lr). */
MF_API void mf_optim_step(mf_optim *o, mf_params *ps);

/* Clip the gradients by their global L2 norm (ABI 1.1), as torch.nn.utils.clip_grad_norm_:
 * every gradient times min(1, max_norm/(‖g‖₂ + 1e-6)). Returns ‖g‖₂ before clipping. A
 * max_norm ≤ 0, or a norm that is not finite (left for the caller to report), only
 * measures: the gradients are left as they are. Bits do not depend on the thread count. */
MF_API double mf_params_clip_grad_norm(mf_params *ps, double max_norm);

/* ---------------------------------------------------------------- learning-rate schedules
 * (ABI 1.1) The factor on the base learning rate at an optimiser step, a pure function of
 * the step, so a resumed run continues the same curve. Counted in `unit`s (steps, or epochs
 * of steps_per_epoch steps: then the factor changes at epoch boundaries, as torch's
 * scheduler.step() once an epoch). Linear warm-up first (torch's LinearLR, timm's
 * warmup_lr_init = warmup_start·lr): over units u < warmup,
 *     f = warmup_start + (1 - warmup_start)·u/warmup
 * then the schedule over the remaining units u' = u - warmup of U' = total - warmup (as
 * torch's SequentialLR and open_clip's cosine_lr):
 *     constant  1
 *     step      gamma^⌊u'/step_size⌋                          (StepLR)
 *     cosine    min + (1 - min)·(1 + cos(π·u'/U'))/2            (CosineAnnealingLR)
 *     linear    1 + (min - 1)·u'/U'                             (LinearLR to end_factor min)
 * cosine and linear hold `min` from u' ≥ U' on. */
typedef enum mf_lr_schedule_kind {
    MF_LR_CONSTANT,
    MF_LR_STEP,
    MF_LR_COSINE,
    MF_LR_LINEAR
} mf_lr_schedule_kind;
#define MF_LR_SCHEDULE_CHOICES "constant|step|cosine|linear"

typedef struct mf_lr_schedule {
    mf_lr_schedule_kind kind;
    int per_epoch;         /* unit epochs (else steps) */
    int64_t warmup;        /* units of linear warm-up, 0 for none */
    double warmup_start;   /* the factor of the first warm-up unit, in [0, 1] */
    int64_t step_size;     /* step: units between decays (≥ 1) */
    double gamma;          /* step: factor at each decay */
    double min_factor;     /* cosine, linear: the final factor (torch's eta_min / lr) */
} mf_lr_schedule;

/* The factor for optimiser step `step` (from 0: the first update) of total_steps, with
 * steps_per_epoch steps an epoch (read only with per_epoch; ≥ 1). */
MF_API double mf_lr_factor(const mf_lr_schedule *s, int64_t step, int64_t steps_per_epoch,
                           int64_t total_steps);

/* ---------------------------------------------------------------- modules */
/* A module is one instance of an encoder, fusion operator, head or loss, owned by the host.
 * Its path ("model.encoders.nir") prefixes the names of the parameters it registers. */
typedef struct mf_module mf_module;

/* The plugin's private state: state_size bytes (from its vtable), zeroed by the host. */
MF_API void *mf_module_state(mf_module *m);
MF_API const char *mf_module_path(const mf_module *m);
/* Register a parameter named "<path>.<name>". On failure returns NULL and records the error
 * in the module (reported by the host after build). */
MF_API mf_param *mf_module_param(mf_module *m, const char *name, mf_shape shape, mf_init init);
/* A child module "<path>.<name>" (ABI 1.1): it registers parameters into the same store and
 * is freed with its parent. A composite module (MBT's per-modality layers) gives each part
 * its own path, so optimisers and checkpoints find every parameter by name. NULL on failure
 * (recorded in the parent, reported after build). */
MF_API mf_module *mf_module_child(mf_module *m, const char *name);

/* ---------------------------------------------------------------- building blocks */
typedef enum mf_activation {
    MF_ACT_NONE,
    MF_ACT_RELU,
    MF_ACT_TANH,
    MF_ACT_SIGMOID,
    MF_ACT_GELU,
    MF_ACT_COUNT
} mf_activation;

MF_API const char *mf_activation_name(mf_activation a);
/* Parse "relu", "tanh", …; returns -1 for an unknown name. */
MF_API int mf_activation_parse(const char *name);
MF_API mf_node *mf_activate(mf_graph *g, mf_node *x, mf_activation a);

/* y = x·W + b: weight (in,out) — the transpose of PyTorch's (out,in), see nn.c — and bias
 * (out), both PyTorch-initialised U(±1/√in). x may have leading axes: (…,in) → (…,out). */
typedef struct mf_linear {
    mf_param *weight, *bias; /* bias NULL when built without */
    int64_t in, out;
} mf_linear;

MF_API int mf_linear_init(mf_linear *l, mf_module *m, const char *name, int64_t in, int64_t out,
                          int bias);
/* The same with a chosen initialisation of the weight (the bias, if any, starts at zero). */
MF_API int mf_linear_init_with(mf_linear *l, mf_module *m, const char *name, int64_t in,
                               int64_t out, int bias, mf_init weight_init);
/* x (B,in) → (B,out) */
MF_API mf_node *mf_linear_forward(mf_graph *g, const mf_linear *l, mf_node *x);

/* Linear layers sizes[0]→sizes[1]→…→sizes[n-1] with `act` between them (not after the last). */
#define MF_MLP_MAX_LAYERS 16
typedef struct mf_mlp {
    int n_layers;
    mf_activation act;
    mf_linear layer[MF_MLP_MAX_LAYERS];
} mf_mlp;

MF_API int mf_mlp_init(mf_mlp *mlp, mf_module *m, const char *name, int n_sizes,
                       const int64_t *sizes, mf_activation act);
/* x (B,sizes[0]) → (B,sizes[n-1]) */
MF_API mf_node *mf_mlp_forward(mf_graph *g, const mf_mlp *mlp, mf_node *x);

/* 2-D convolution layer: weight (out,in,k,k), bias (out), PyTorch-initialised U(±1/√(in·k·k)). */
typedef struct mf_conv2d_layer {
    mf_param *weight, *bias;
    int64_t in, out;
    int kernel, stride, pad;
} mf_conv2d_layer;

MF_API int mf_conv2d_layer_init(mf_conv2d_layer *c, mf_module *m, const char *name, int64_t in,
                                int64_t out, int kernel, int stride, int pad, int bias);
/* x (B,in,H,W) → (B,out,H',W') */
MF_API mf_node *mf_conv2d_layer_forward(mf_graph *g, const mf_conv2d_layer *c, mf_node *x);

/* Layer normalisation over the last axis with learned gain (ones) and bias (zeros). */
typedef struct mf_layer_norm_layer {
    mf_param *gamma, *beta;
    int64_t dim;
    float eps;
} mf_layer_norm_layer;

MF_API int mf_layer_norm_layer_init(mf_layer_norm_layer *ln, mf_module *m, const char *name,
                                    int64_t dim, float eps);
MF_API mf_node *mf_layer_norm_layer_forward(mf_graph *g, const mf_layer_norm_layer *ln,
                                            mf_node *x);

/* Token embeddings: weight (vocab,dim) initialised N(0,1) as PyTorch's nn.Embedding. */
typedef struct mf_embedding_layer {
    mf_param *weight;
    int64_t vocab, dim;
} mf_embedding_layer;

MF_API int mf_embedding_layer_init(mf_embedding_layer *e, mf_module *m, const char *name,
                                   int64_t vocab, int64_t dim);
/* idx (B,T) token ids stored as floats → (B,T,dim) */
MF_API mf_node *mf_embedding_layer_forward(mf_graph *g, const mf_embedding_layer *e, mf_node *idx);

/* Multi-head attention (Vaswani et al.): queries from x, keys and values from context (x
 * itself for self-attention); heads split dim; softmax(QKᵀ/√d_head)·V; output projection.
 * Projections are Xavier-uniform with zero biases, as torch.nn.MultiheadAttention. */
typedef struct mf_attention {
    mf_linear q, k, v, o;
    int64_t dim, context_dim, heads, head_dim;
    float dropout; /* on the attention weights, training graphs only */
} mf_attention;

MF_API int mf_attention_init(mf_attention *a, mf_module *m, const char *name, int64_t dim,
                             int64_t context_dim, int64_t heads, float dropout);
/* x (B,T,dim), context (B,S,context_dim) or NULL (self-attention), mask broadcastable to
 * (B,heads,T,S) with non-zero = "may not attend" (e.g. (B,1,1,S) for padding) or NULL
 * → (B,T,dim) */
MF_API mf_node *mf_attention_forward(mf_graph *g, const mf_attention *a, mf_node *x,
                                     mf_node *context, mf_node *mask);

/* Pre-LN transformer layer (ABI 1.1; Vaswani et al., as ViT and GPT-2 arrange it):
 *   x = x + drop(attn(ln1(x), ln1(context) or self, mask))
 *   x = x + drop(fc2(gelu(fc1(ln2(x)))))       fc1: dim → mlp_ratio·dim
 * Parameters under "<name>.": ln1, attn.{q,k,v,o}, ln2, fc1, fc2 (+ ln_ctx for cross-
 * attention: the context gets its own norm). */
typedef struct mf_transformer_layer {
    mf_layer_norm_layer ln1, ln2, ln_ctx;
    mf_attention attn;
    mf_linear fc1, fc2;
    int64_t dim, context_dim; /* context_dim 0: self-attention */
    float dropout;
} mf_transformer_layer;

/* context_dim 0 for a self-attention layer, else the width of the sequences attended to. */
MF_API int mf_transformer_layer_init(mf_transformer_layer *l, mf_module *m, const char *name,
                                     int64_t dim, int64_t context_dim, int64_t heads,
                                     double mlp_ratio, float dropout);
/* x (B,T,dim); context (B,S,context_dim) or NULL; mask: padding of the keys, (B,S) (or
 * (B,T) for self-attention) with non-zero = padding, or NULL → (B,T,dim) */
MF_API mf_node *mf_transformer_layer_forward(mf_graph *g, const mf_transformer_layer *l,
                                             mf_node *x, mf_node *context, mf_node *mask);

/* ---------------------------------------------------------------- blocks shared by plugins
 * Pieces that several fusion, encoder and loss plugins need alike (ABI 1.1). A plugin
 * includes only <mmfuse/mmfuse.h>, so what two of them would otherwise each write lives here.
 *
 *     // a fusion projecting every modality to `dim`, then adding them (plugins/fusion/sum.c)
 *     // build: proj.<modality>.weight (D_m,dim) for every modality, proj.<first>.bias (dim)
 *     mf_projections_init(&s->proj, self, "proj", args->n_in, args->in_names, args->in, dim,
 *                         MF_PROJ_BIAS_FIRST);
 *     // forward: x_m (B,…) → (B,dim), added up
 *     return mf_projections_fold(g, &s->proj, in, mf_add);
 */

/* x (B,…) → (B,F), F the per-sample numel: an image or a sequence becomes one row of
 * features per sample. A (B,F) or (B) input is returned as it is; NULL passes through. */
MF_API mf_node *mf_flatten(mf_graph *g, mf_node *x);

/* x (B,D) → [1; x] (B,1+D): a constant 1 before the features, so that a product of such
 * vectors keeps every lower-order term (tensor fusion, low-rank fusion). */
MF_API mf_node *mf_prepend_one(mf_graph *g, mf_node *x);

/* The mean over T of x (B,T,D) leaving out padding: mask (B,T) non-zero = padding (the
 * convention of mf_node_mask), or NULL for the plain mean → (B,D). A row that is all padding
 * gives 0. Computed as w (B,1,T) · x with w = valid / max(Σ valid, 1): one batched product,
 * whose gradient reaches x only at valid positions. Pools a token encoder's output (bag,
 * transformer `pool: mean`) or a fusion's per-modality sequences. */
MF_API mf_node *mf_masked_mean(mf_graph *g, mf_node *x, mf_node *mask);

/* One linear layer per modality onto a common width (sum, product, gated, low-rank fusion):
 * layer m is "<prefix>.<names[m]>" (e.g. "proj.rgb.weight"), from the numel of in[m] (an input
 * of any per-sample shape is flattened) to `out`. One bias is enough when the projections
 * are added (MF_PROJ_BIAS_FIRST); a product needs one per factor (MF_PROJ_BIAS_ALL). */
#define MF_PROJECTIONS_MAX 16
typedef enum mf_proj_bias { MF_PROJ_NO_BIAS, MF_PROJ_BIAS_FIRST, MF_PROJ_BIAS_ALL } mf_proj_bias;

typedef struct mf_projections {
    int n;
    int pad_one; /* each input is [1; x]: layer m reads D_m + 1 features */
    mf_linear proj[MF_PROJECTIONS_MAX];
} mf_projections;

/* n ≤ MF_PROJECTIONS_MAX (else -1: refuse a larger n with a located sentence first). Weights
 * PyTorch-initialised U(±1/√D_m), as mf_linear_init. */
MF_API int mf_projections_init(mf_projections *p, mf_module *m, const char *prefix, int n,
                               const char *const *names, const mf_shape *in, int64_t out,
                               mf_proj_bias bias);
/* The same with a chosen weight initialisation (biases then start at zero) and, pad_one set,
 * [1; x] as each layer's input: LMF's modality factors ((D_m+1) × out). */
MF_API int mf_projections_init_with(mf_projections *p, mf_module *m, const char *prefix, int n,
                                    const char *const *names, const mf_shape *in, int64_t out,
                                    mf_proj_bias bias, mf_init weight_init, int pad_one);
/* x (B,…) of modality i → flattened (B,D_i) → (B,out) */
MF_API mf_node *mf_projections_forward(mf_graph *g, const mf_projections *p, int i, mf_node *x);
/* in[0..n-1] → (B,out): the projections joined by a binary op, left to right,
 * op(…op(op(P_0 x_0, P_1 x_1), P_2 x_2)…, P_n-1 x_n-1): mf_add for a sum, mf_mul for a
 * product. */
MF_API mf_node *mf_projections_fold(mf_graph *g, const mf_projections *p, mf_node *const *in,
                                    mf_node *(*op)(mf_graph *, mf_node *, mf_node *));

/* Contrastive losses (clip, siglip): logits = exp(s)·cos(a_i, b_j) with a learned
 * temperature s. mf_logit_scale_config (plugin.h) reads the loss's `init_scale` (float) and
 * `learn_scale` (bool) keys, which the plugin declares: learned, s is the parameter
 * "logit_scale" (1), started at init_scale, free of weight decay and kept in [0, ln 100]
 * after every step, as open_clip clamps it (an init_scale outside is refused, located on
 * the key); not learned, s stays init_scale and no parameter is registered. */
#define MF_LN_100 4.605170185988091
typedef struct mf_logit_scale {
    mf_param *s; /* NULL when not learned */
    float init;
} mf_logit_scale;

/* mf_logit_scale_config (plugin.h) reads the keys and registers s. */
/* exp(s), (1) */
MF_API mf_node *mf_logit_scale_forward(mf_graph *g, const mf_logit_scale *t);
/* exp(s) as it stands: a loss's logit_scale metric. */
MF_API double mf_logit_scale_value(const mf_logit_scale *t);
/* a (B,D), b (N,D), scale (1) → (B,N): scale · a_i·b_j / (‖a_i‖ ‖b_j‖), each row
 * L2-normalised with eps 1e-12 (F.normalize). */
MF_API mf_node *mf_cosine_logits(mf_graph *g, mf_node *a, mf_node *b, mf_node *scale);

#ifdef __cplusplus
}
#endif
#endif
