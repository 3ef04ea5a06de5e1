/* mmfuse bench's pieces (bench.c: the hand-built reference models and the timing;
 * bench_xattn.c: xattn-fusion, built from the plugins as an experiment builds it). */
#ifndef MF_TRAIN_BENCH_INTERNAL_H
#define MF_TRAIN_BENCH_INTERNAL_H

#include <mmfuse/host.h>

#define MAX_INPUTS 2

enum { X_IMAGE, X_TOKENS, X_FUSION, X_HEAD, X_LOSS, X_PARTS }; /* xattn-fusion's plugins */

typedef struct net {
    mf_params *params;
    mf_module *module;
    mf_graph *g;
    mf_node *input[MAX_INPUTS], *ones, *target, *out, *loss;
    int n_inputs;
    int tokens;   /* the second input holds token ids (clip-dual, xattn-fusion) */
    int diagonal; /* clip-dual: sample j's target is j */
    int seq;      /* xattn-fusion: positions per modality */
    mf_registry *reg;         /* xattn-fusion: its plugins, its YAML, its modules */
    mf_config *cfg;
    mf_module *part[X_PARTS];
} net;

/* bench_xattn.c */
/* sum(p.numel()) of torch_ref.py's XAttnFusion (T = 16), and its two position tables */
#define XATTN_REF_PARAMS(T) (539146 + 2 * 128 * ((int64_t)(T) - 16))
/* The plugins and their modules, configured from xattn-fusion's YAML (n->seq set). */
int mfi_bench_xattn_define(net *n, mf_error *err);
/* The step's graph for B samples (with its loss when training). */
void mfi_bench_xattn_build(net *n, int B, int training);
void mfi_bench_xattn_free(net *n);

#endif
