/* mmfuse bench's xattn-fusion, built from the built-in plugins and configured from YAML, as
 * an experiment builds its model (bench.c times it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

/* ---------------------------------------------------------------- xattn-fusion, from plugins */
/* As an experiment builds its model: the built-in plugins, each section checked against the
 * plugin's declared parameters, built with the shapes the host passes, named as in a run.
 *   image (1,28,28) → transformer, 7×7 patches → (16,128) ┐
 *   tokens (16)     → transformer, 1000 ids    → (16,128) ┴ crossattn → (256) → mlp → (10) */
static const char *const xattn_key[X_PARTS] = {"image", "tokens", "fusion", "head", "loss"};
static const char *const xattn_path[X_PARTS] = {"model.encoders.image", "model.encoders.tokens",
                                                "model.fusion", "model.head", "loss"};
static const mf_kind xattn_kind[X_PARTS] = {MF_KIND_ENCODER, MF_KIND_ENCODER, MF_KIND_FUSION,
                                            MF_KIND_ENCODER, MF_KIND_LOSS};
static const char xattn_yaml[] =
    "image: {type: transformer, width: 128, heads: 4, layers: 1, mlp_ratio: 2, patch: 7, "
    "pool: none}\n"
    "tokens: {type: transformer, width: 128, heads: 4, layers: 1, mlp_ratio: 2, pool: none}\n"
    "fusion: {type: crossattn, layers: 1, heads: 4, pool: mean}\n"
    "head: {type: mlp, hidden: []}\n"
    "loss: {type: cross_entropy}\n";

/* The reference has no LayerNorm after the encoder's layer or after the cross layers, and no
 * feed-forward sublayer in the cross layers. Each is set where the plugin declares the
 * option; otherwise the nearest value it takes, and the parameter count shows the rest. */
static const struct {
    int part;
    const char *key, *value;
} xattn_exact[] = {
    {X_IMAGE, "final_norm", "false"}, {X_TOKENS, "final_norm", "false"},
    {X_FUSION, "final_norm", "false"}, {X_FUSION, "mlp_ratio", "0"},
};

static const mf_param_spec *declared(const mf_plugin *p, const char *key)
{
    for (const mf_param_spec *s = p->params; s && s->name; s++)
        if (strcmp(s->name, key) == 0)
            return s;
    return NULL;
}

/* The plugins, and their YAML with the reference's options where they exist. */
static int xattn_configure(net *n, const mf_plugin **plugin, mf_error *err)
{
    static const char *const type_key[] = {"type", NULL};
    n->reg = mf_registry_new();
    n->cfg = mf_config_parse(xattn_yaml, sizeof xattn_yaml - 1, "xattn-fusion", err);
    if (!n->reg || !n->cfg)
        return -1;
    /* as `mmfuse run` finds them: MMFUSE_PLUGIN_PATH first, then the built-in folder; a
     * refused file matters only if it was one of ours */
    mf_error load_err;
    mf_error_clear(&load_err);
    mf_registry_add_search_path(n->reg, NULL, &load_err);
    for (int i = 0; i < X_PARTS; i++) {
        const mf_config *sec = mf_config_get(n->cfg, xattn_key[i]);
        const char *type = mf_config_scalar(mf_config_get(sec, "type"));
        if (!(plugin[i] = mf_registry_find(n->reg, xattn_kind[i], type, NULL))) {
            mf_error_set(err, "xattn-fusion needs the %s plugin '%s', found neither on "
                         "MMFUSE_PLUGIN_PATH nor in %s%s%s", mf_kind_name(xattn_kind[i]), type,
                         mf_default_plugin_dir(), load_err.count ? ": " : "",
                         load_err.count ? load_err.msg : "");
            return -1;
        }
    }
    char set[160], missing[256] = "";
    for (size_t i = 0; i < sizeof xattn_exact / sizeof xattn_exact[0]; i++) {
        const int part = xattn_exact[i].part;
        const char *key = xattn_exact[i].key, *want = xattn_exact[i].value;
        const mf_param_spec *s = declared(plugin[part], key);
        // a number below the declared minimum: the minimum (the smallest feed-forward)
        const int below = s && (s->flags & MF_PARAM_MIN) && s->type == MF_TYPE_FLOAT &&
                          atof(want) < s->min;
        if (!s || below)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s.%s: %s",
                     *missing ? ", " : "", xattn_key[part], key, want);
        if (below)
            snprintf(set, sizeof set, "%s.%s=%g", xattn_key[part], key, s->min);
        else
            snprintf(set, sizeof set, "%s.%s=%s", xattn_key[part], key, want);
        if (s && mf_config_override(n->cfg, set, err))
            return -1;
    }
    if (*missing)
        fprintf(stderr, "mmfuse bench xattn-fusion: the plugins do not take %s, which the "
                "reference needs: the model differs from it there\n", missing);
    for (int i = 0; i < X_PARTS; i++)
        if (mf_config_check((mf_config *)mf_config_get(n->cfg, xattn_key[i]), plugin[i]->params,
                            type_key, err))
            return -1;
    return 0;
}

/* The five modules, built with the shapes an experiment's host would pass them. */
int mfi_bench_xattn_define(net *n, mf_error *err)
{
    const mf_plugin *plugin[X_PARTS];
    if (xattn_configure(n, plugin, err))
        return -1;
    const mf_config *sec[X_PARTS];
    for (int i = 0; i < X_PARTS; i++)
        if (!(sec[i] = mf_config_get(n->cfg, xattn_key[i])) ||
            !(n->part[i] = mf_module_new(plugin[i], xattn_path[i], n->params, err)))
            return -1;
    const char *names[2] = {"image", "tokens"}, *fused_name = "fused";
    const mf_shape in[2] = {mf_shape3(1, 28, 7 * n->seq / 4), mf_shape1(n->seq)};
    const uint32_t in_flags[2] = {0, MF_IO_TOKENS};
    const int64_t vocab[2] = {0, 1000}, no_vocab[2] = {0, 0};
    uint32_t emb_flags[2] = {0, 0}, fused_flags = 0, head_flags = 0;
    mf_shape emb[2], fused, logits;
    for (int m = 0; m < 2; m++) { // per sample: (1,28,7T/4) and (T) → (T,128) each
        mf_build_args a = {sizeof a, 1, &in[m], &names[m], 0, &in_flags[m], &vocab[m],
                           &emb_flags[m], sec[m]};
        if (mf_module_build(n->part[m], sec[m], &a, &emb[m], err))
            return -1;
    }
    mf_build_args fa = {sizeof fa, 2, emb, names, 0, emb_flags, no_vocab, &fused_flags,
                        sec[X_FUSION]};
    if (mf_module_build(n->part[X_FUSION], sec[X_FUSION], &fa, &fused, err)) // → (256)
        return -1;
    mf_build_args ha = {sizeof ha, 1, &fused, &fused_name, 10, &fused_flags, no_vocab,
                        &head_flags, sec[X_HEAD]};
    if (mf_module_build(n->part[X_HEAD], sec[X_HEAD], &ha, &logits, err)) // → (10)
        return -1;
    mf_loss_build_args la = {sizeof la, 2, names, emb, emb_flags, &fused, &logits,
                             MF_TARGET_CLASSES, 10};
    return mf_module_build_loss_model(n->part[X_LOSS], sec[X_LOSS], &la, err);
}

void mfi_bench_xattn_build(net *n, int B, int training)
{
    static const char *const names[2] = {"image", "tokens"};
    mf_graph *g = n->g = mf_graph_new(training);
    n->n_inputs = 2;
    n->tokens = 1;
    n->input[0] = mf_input(g, "image", mf_shape4(B, 1, 28, 7 * n->seq / 4));
    n->input[1] = mf_input(g, "tokens", mf_shape2(B, n->seq));
    n->target = mf_input(g, "target", mf_shape1(B));
    mf_node *emb[2]; // (B,T,128) each
    for (int m = 0; m < 2; m++)
        emb[m] = mf_module_forward(n->part[m], g, 1, &n->input[m]);
    mf_node *fused = mf_module_forward(n->part[X_FUSION], g, 2, emb); // (B,256)
    n->out = fused ? mf_module_forward(n->part[X_HEAD], g, 1, &fused) : NULL; // (B,10)
    if (!training || !n->out)
        return;
    mf_loss_inputs li = {sizeof li, n->out, n->target, 2, names, emb, fused, MF_TARGET_CLASSES};
    n->loss = mf_module_loss(n->part[X_LOSS], g, &li);
}

void mfi_bench_xattn_free(net *n)
{
    for (int i = 0; i < X_PARTS; i++)
        mf_module_free(n->part[i]);
    mf_registry_free(n->reg); /* after the modules made from its files */
    mf_config_free(n->cfg);
}

