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
#define MF_ABI_MINOR 0

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
/* What the host tells a module when building it. Shapes are per sample (no batch axis). */
typedef struct mf_build_args {
    uint32_t struct_size;
    int n_in;                       /* 1 for an encoder or head; modalities for a fusion */
    const mf_shape *in;             /* n_in input shapes                                 */
    const char *const *in_names;    /* the modalities' names (or "fused" for a head)     */
    int64_t out_features;           /* > 0: the host needs exactly this many output
                                       features (a head ends in the class count); 0: free */
} mf_build_args;

typedef struct mf_module_ops {
    uint32_t struct_size;           /* sizeof(mf_module_ops)                    */
    size_t state_size;              /* bytes of private state, zeroed by the host */
    /* Read cfg, register parameters (mf_module_param, nn.h blocks), set *out to the
     * per-sample output shape. Required. */
    int (*build)(mf_module *self, const mf_config *cfg, const mf_build_args *args, mf_shape *out,
                 mf_error *err);
    /* Append this module's computation; in[i] is (B, in shape i). Required. */
    mf_node *(*forward)(mf_module *self, mf_graph *g, int n_in, mf_node *const *in);
    /* Release what build allocated outside the state. Optional. */
    void (*destroy)(mf_module *self);
} mf_module_ops;

/* ---------------------------------------------------------------- losses */
typedef struct mf_loss_inputs {
    uint32_t struct_size;
    mf_node *logits;                /* (B,K) the head's output; NULL without a head      */
    mf_node *target;                /* (B) class indices stored as floats                 */
    int n_modalities;
    const char *const *names;       /* modality names                                     */
    mf_node *const *embeddings;     /* (B,D_m) each modality's encoder output ("emb.<m>") */
} mf_loss_inputs;

typedef struct mf_loss_ops {
    uint32_t struct_size;
    size_t state_size;
    /* Read cfg, register parameters (e.g. a learnable temperature). Required. */
    int (*build)(mf_module *self, const mf_config *cfg, mf_error *err);
    /* Return a scalar (shape (1)) loss node. Required. */
    mf_node *(*forward)(mf_module *self, mf_graph *g, const mf_loss_inputs *in);
    void (*destroy)(mf_module *self);
} mf_loss_ops;

#ifdef __cplusplus
}
#endif
#endif
