/* mmfuse/plugin.h — the plugin ABI.
 *
 * A plugin file (.so) exports one function, mf_plugin_list(), returning a NULL-terminated
 * array of descriptors: one file may carry several plugins (a lab's bundle). Write it with
 * MF_PLUGIN_DEFINE(&my_plugin, …).
 *
 * Every descriptor starts with a magic number, then the ABI version it was built against,
 * then its own size, so the host can refuse — with one sentence naming the file — anything
 * that is not an mmfuse plugin or was built for an incompatible host:
 *   - magic != MF_PLUGIN_MAGIC                    (not an mmfuse plugin, or corrupt)
 *   - abi_major != the host's MF_ABI_MAJOR        (incompatible layout)
 *   - abi_minor >  the host's MF_ABI_MINOR        (needs fields this host does not know)
 *   - struct sizes smaller than version 1.0's, a missing required vtable member,
 *     a kind or name the host cannot use, a name another file already provides.
 * ABI minor bumps append fields to structs; the host reads a field only when struct_size
 * says it is there. ABI major bumps are everything else.
 *
 * The kinds and their vtables:
 *   MF_KIND_DATASET  mf_dataset_ops  reads samples: modalities, labels, splits (data.h)
 *   MF_KIND_ENCODER  mf_module_ops   one input → one output (also used as a head)
 *   MF_KIND_FUSION   mf_module_ops   one input per modality → one output
 *   MF_KIND_LOSS     mf_loss_ops     model outputs + target → scalar
 * Modules write no backward code: forward() composes ops from graph.h and nn.h.
 */
#ifndef MMFUSE_PLUGIN_H
#define MMFUSE_PLUGIN_H

#include "config.h"
#include "data.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MF_PLUGIN_MAGIC 0x4D465031u /* "MFP1" */
#define MF_ABI_MAJOR 1
#define MF_ABI_MINOR 1

/* The symbol every plugin file exports. */
#define MF_PLUGIN_ENTRY "mf_plugin_list"
#define MF_EXPORT __attribute__((visibility("default")))

typedef enum mf_kind {
    MF_KIND_DATASET = 1,
    MF_KIND_ENCODER = 2,
    MF_KIND_FUSION = 3,
    MF_KIND_LOSS = 4
} mf_kind;
#define MF_KIND_FIRST MF_KIND_DATASET
#define MF_KIND_LAST MF_KIND_LOSS

MF_API const char *mf_kind_name(mf_kind kind); /* "dataset", "encoder", …; NULL if unknown */

typedef struct mf_plugin {
    uint32_t magic;                /* MF_PLUGIN_MAGIC, always first           */
    uint16_t abi_major, abi_minor; /* MF_ABI_MAJOR, MF_ABI_MINOR at build time */
    uint32_t struct_size;          /* sizeof(mf_plugin) at build time         */
    int32_t kind;                  /* mf_kind                                 */
    const char *name;              /* [a-z0-9_]+, unique across loaded files  */
    const char *version;
    const char *license;
    const char *summary;           /* one line                                */
    const mf_param_spec *params;   /* declared YAML parameters, MF_PARAM_END-terminated */
    const void *ops;               /* the kind's vtable, starting with its struct_size */
} mf_plugin;

/* Fills the header fields in a designated initialiser:
 *   static const mf_plugin p = { MF_PLUGIN_HEADER, .kind = MF_KIND_FUSION, .name = "sum", … }; */
#define MF_PLUGIN_HEADER                                                                   \
    .magic = MF_PLUGIN_MAGIC, .abi_major = MF_ABI_MAJOR, .abi_minor = MF_ABI_MINOR,        \
    .struct_size = sizeof(mf_plugin)

#define MF_PLUGIN_DEFINE(...)                                                              \
    MF_EXPORT const mf_plugin *const *mf_plugin_list(void);                                \
    MF_EXPORT const mf_plugin *const *mf_plugin_list(void)                                 \
    {                                                                                      \
        static const mf_plugin *const list[] = {__VA_ARGS__, NULL};                        \
        return list;                                                                       \
    }

/* ---------------------------------------------------------------- modules (encoder, fusion) */
/* What a module's input or output is, beyond its shape (ABI 1.1). Per sample, a vector is
 * (D), a sequence (T,D) with MF_IO_SEQUENCE, token ids (T) with MF_IO_TOKENS, an image or
 * feature map (C,H,W). MF_IO_MASKED: a padding mask (B,T) travels with the node
 * (mf_node_mask in graph.h). */
#define MF_IO_TOKENS 0x1u   /* token ids stored as floats, in [0, vocab)                 */
#define MF_IO_SEQUENCE 0x2u /* (T,D): T positions of D features                         */
#define MF_IO_MASKED 0x4u   /* some positions are padding: mf_node_mask(input) is (B,T) */

/* What the host tells a module when building it. Shapes are per sample (no batch axis).
 * A fusion receives its modalities in the data's order (data.modalities, else the reader's),
 * not in the order model.encoders lists them. */
typedef struct mf_build_args {
    uint32_t struct_size;
    int n_in;                       /* 1 for an encoder or head; modalities for a fusion */
    const mf_shape *in;             /* n_in input shapes                                 */
    const char *const *in_names;    /* the modalities' names (or "fused" for a head)     */
    int64_t out_features;           /* > 0: the host needs exactly this many output
                                       features (a head ends in the class count); 0: free */
    /* ABI 1.1 */
    const uint32_t *in_flags;       /* n_in MF_IO_* flags                                 */
    const int64_t *in_vocab;        /* n_in: the vocabulary size of a token input, else 0 */
    uint32_t *out_flags;            /* build sets MF_IO_SEQUENCE (and MF_IO_MASKED when its
                                       output carries the input's mask) for a sequence out */
    const mf_config *where;         /* the module's YAML section, for located errors      */
} mf_build_args;

typedef struct mf_module_ops {
    uint32_t struct_size;           /* sizeof(mf_module_ops)                    */
    size_t state_size;              /* bytes of private state, zeroed by the host */
    /* Read cfg, register parameters (mf_module_param, nn.h blocks), set *out to the
     * per-sample output shape. Required. A refusal appends one sentence to err, best
     * located with mf_config_error(err, cfg or a key of it, …). */
    int (*build)(mf_module *self, const mf_config *cfg, const mf_build_args *args, mf_shape *out,
                 mf_error *err);
    /* Append this module's computation; in[i] is (B, in shape i). Required. The output
     * must have the shape build declared (the host checks, naming the plugin). */
    mf_node *(*forward)(mf_module *self, mf_graph *g, int n_in, mf_node *const *in);
    /* Release what build allocated outside the state. Optional. */
    void (*destroy)(mf_module *self);
} mf_module_ops;

/* ---------------------------------------------------------------- losses */
/* What the batch's target is (ABI 1.1). */
typedef enum mf_target_kind {
    MF_TARGET_CLASSES = 0,    /* (B) class indices stored as floats            */
    MF_TARGET_VALUES = 1,     /* (B,K) float regression targets                 */
    MF_TARGET_MULTILABEL = 2  /* (B,K) 0/1 labels, one per class                */
} mf_target_kind;

/* The model's outputs as a loss sees them when it is built (ABI 1.1); shapes per sample. */
typedef struct mf_loss_build_args {
    uint32_t struct_size;
    int n_modalities;
    const char *const *names;       /* the modalities, in the data's order               */
    const mf_shape *emb;            /* each modality's encoder output ("emb.<m>")         */
    const uint32_t *emb_flags;      /* their MF_IO_* flags (sequences, masks)             */
    const mf_shape *fused;          /* the fusion's output; NULL under `fusion: none`    */
    const mf_shape *logits;         /* the head's output; NULL without a head            */
    int32_t target_kind;            /* mf_target_kind                                     */
    int64_t target_dim;             /* classes: the class count; else K                   */
} mf_loss_build_args;

typedef struct mf_loss_inputs {
    uint32_t struct_size;
    mf_node *logits;                /* (B,K) the head's output; NULL without a head      */
    mf_node *target;                /* (B) class indices stored as floats, or (B,K)       */
    int n_modalities;
    const char *const *names;       /* modality names                                     */
    mf_node *const *embeddings;     /* each modality's encoder output ("emb.<m>"): (B,D_m),
                                       or (B,T,D_m) with its mask for a sequence            */
    /* ABI 1.1 */
    mf_node *fused;                 /* the fusion's output; NULL under `fusion: none`    */
    int32_t target_kind;            /* mf_target_kind                                     */
} mf_loss_inputs;

/* A number a loss reports besides itself (ABI 1.1), averaged over each split's samples and
 * written to metrics.csv as <split>.<name>; usable as train.select: val.<name>. */
#define MF_LOSS_MAX_METRICS 8
typedef struct mf_loss_metrics {
    int n;
    const char *names[MF_LOSS_MAX_METRICS]; /* [a-z0-9_]+, static strings              */
    int higher_is_better[MF_LOSS_MAX_METRICS];
} mf_loss_metrics;

typedef struct mf_loss_ops {
    uint32_t struct_size;
    size_t state_size;
    /* Read cfg, register parameters (e.g. a learnable temperature). Required in ABI 1.0;
     * optional from 1.1 when build_model is given. */
    int (*build)(mf_module *self, const mf_config *cfg, mf_error *err);
    /* Return a scalar (shape (1)) loss node. Required. */
    mf_node *(*forward)(mf_module *self, mf_graph *g, const mf_loss_inputs *in);
    void (*destroy)(mf_module *self);
    /* ABI 1.1 */
    /* Like build, told the model's output shapes, modality names and target: check that
     * the loss can use them (refuse with a located mf_config_error on cfg), size
     * parameters from them. Used instead of build when set. */
    int (*build_model)(mf_module *self, const mf_config *cfg, const mf_loss_build_args *args,
                       mf_error *err);
    /* Declares the metrics the loss reports. Optional. */
    void (*declare_metrics)(mf_module *self, mf_loss_metrics *out);
    /* After a forward: each declared metric's mean over this batch's samples. Optional. */
    void (*batch_metrics)(mf_module *self, const mf_loss_inputs *in, double *values);
} mf_loss_ops;

/* ---------------------------------------------------------------- blocks that read a config
 * Shared by plugins that check their inputs the same way (framework/plugin/plugin_blocks.c). */
/* A late fusion's check (mean, weighted): every input has as many features per sample as
 * the first, which *width receives; else, located on cfg, "<what> needs inputs of one width,
 * but modality 'a' has 10 features and 'b' has 3". */
MF_API int mf_fusion_same_width(const mf_config *cfg, const mf_build_args *args, const char *what,
                                int64_t *width, mf_error *err);

/* Choosing a loss's modalities (clip, siglip): the names listed under cfg's `modalities`
 * key, else all of the data's when it has exactly n. idx[0..n-1] get their indices in the
 * data's order. `what` starts the refusals, e.g. "clip contrasts" gives, located on cfg or
 * on the list (or its item):
 *   clip contrasts two modalities, but the data has 3 (a, b, c); list the two in 'modalities'
 *   clip contrasts exactly two modalities, but 3 are listed
 *   no modality 'bb' in the data (it has a, b, c) (did you mean 'b'?)
 *   lists 'a' twice; name two different modalities */
MF_API int mf_loss_pick_modalities(const mf_config *cfg, const mf_loss_build_args *args,
                                   const char *what, int n, int *idx, mf_error *err);
/* The n picked embeddings are one vector per sample, all of one width; else, located on cfg:
 *   clip needs one vector per sample, but emb.a is a sequence (8,16); give its encoder a …
 *   clip compares emb.a (16 features) with emb.b (32), which need the same width; give … */
MF_API int mf_loss_check_vectors(const mf_config *cfg, const mf_loss_build_args *args,
                                 const char *loss, int n, const int *idx, mf_error *err);

/* A sequence fusion's inputs (crossattn, bottleneck): 2 to max_in modalities, each a sequence
 * (T,D); *width gets dim, or with dim 0 the modalities' common width. Refusals, located on
 * cfg, name the fusion (`what`) and the modality: "crossattn is a sequence fusion, but
 * modality 'a' has shape (8), a vector; give its encoder `pool: none` …", widths that differ
 * without dim, too few or too many modalities. */
MF_API int mf_fusion_sequences(const mf_config *cfg, const mf_build_args *args, const char *what,
                               int max_in, int64_t dim, int64_t *width, mf_error *err);

/* A contrastive loss's logit scale (nn.h's mf_logit_scale) from its `init_scale` and
 * `learn_scale` keys. */
MF_API int mf_logit_scale_config(mf_logit_scale *t, mf_module *m, const mf_config *cfg,
                                 mf_error *err);

#ifdef __cplusplus
}
#endif
#endif
