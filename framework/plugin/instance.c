/* Instances of plugins: modules (encoders, fusion operators, heads, losses) and datasets.
 * The host owns each instance and its zeroed private state; the plugin sees only its own
 * state, its config subtree and the SDK. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/host.h>

#include "../core/core_internal.h"
#include "plugin_internal.h"

#define MAX_CHILDREN 256

struct mf_module {
    const mf_plugin *plugin;
    char *path;
    mf_params *store;
    void *state;
    int built;
    mf_shape out;   /* per-sample output shape build declared (modules) */
    mf_error error; /* the first failure of mf_module_param, reported after build */
    mf_module *parent;
    int n_children;
    mf_module *children[MAX_CHILDREN];
};

struct mf_dataset {
    const mf_plugin *plugin;
    char *base_dir;
    void *state;
    mf_dataset_info info;
    int opened;
};

/* Every call into plugin code is marked with the plugin, its file and the phase, so that a
 * crash or an exit() in it names them (guard.c). */
static mfi_phase enter(const mf_plugin *p, const char *phase)
{
    return mfi_plugin_phase_enter(p->name, mfi_plugin_file(p), phase);
}

/* The kind's vtable size member sits first in every vtable; state_size right after. */
static size_t state_size(const mf_plugin *p)
{
    switch (p->kind) {
    case MF_KIND_ENCODER:
    case MF_KIND_FUSION: return ((const mf_module_ops *)p->ops)->state_size;
    case MF_KIND_LOSS: return ((const mf_loss_ops *)p->ops)->state_size;
    case MF_KIND_DATASET: return ((const mf_dataset_ops *)p->ops)->state_size;
    }
    return 0;
}

mf_module *mf_module_new(const mf_plugin *plugin, const char *path, mf_params *store,
                         mf_error *err)
{
    /* plugin may be NULL: a bare module that only groups parameters (benchmarks, tests) */
    size_t bytes = plugin ? state_size(plugin) : 0;
    mf_module *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path)) || !(m->state = calloc(1, bytes ? bytes : 1))) {
        mf_error_set(err, "%s: out of memory creating the module", path);
        mf_module_free(m);
        return NULL;
    }
    m->plugin = plugin;
    m->store = store;
    return m;
}

const mf_plugin *mf_module_plugin(const mf_module *m) { return m->plugin; }
void *mf_module_state(mf_module *m) { return m->state; }
const char *mf_module_path(const mf_module *m) { return m->path; }

/* The module whose plugin a child works for: errors name it. */
static mf_module *owner(mf_module *m)
{
    while (m->parent && !m->plugin)
        m = m->parent;
    return m;
}

/* The first failure inside a module (or its children) is kept on the owning module. */
/* "<path> (plugin '<name>'): <detail>" */
static void record(mf_module *m, const char *path, const char *detail)
{
    mf_module *o = owner(m);
    if (o->error.count == 0)
        mf_error_set(&o->error, "%s (plugin '%s'): %s", path, o->plugin ? o->plugin->name : "none",
                     detail);
}

mf_param *mf_module_param(mf_module *m, const char *name, mf_shape shape, mf_init init)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s", m->path, name);
    mf_error local;
    mf_error_clear(&local);
    mf_param *p = mf_params_add(m->store, full, shape, init, &local);
    if (!p)
        record(m, m->path, local.msg);
    return p;
}

mf_module *mf_module_child(mf_module *m, const char *name)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s", m->path, name);
    if (m->n_children == MAX_CHILDREN) {
        record(m, full, "more than 256 child modules");
        return NULL;
    }
    mf_error local;
    mf_error_clear(&local);
    mf_module *c = mf_module_new(NULL, full, m->store, &local);
    if (!c) {
        record(m, full, local.msg);
        return NULL;
    }
    c->parent = m;
    c->built = 1;
    m->children[m->n_children++] = c;
    return c;
}

/* "model.fusion (plugin 'gated')" */
static const char *who(const mf_module *m, char *buf, size_t size)
{
    snprintf(buf, size, "%s (plugin '%s')", m->path, m->plugin ? m->plugin->name : "none");
    return buf;
}

/* A build succeeded only if the plugin said so and no parameter registration failed; a
 * refusal that gave no reason is reported as such, naming the plugin and its section. */
static int finish_build(mf_module *m, const mf_config *cfg, int status, int errors_before,
                        mf_error *err)
{
    char name[300];
    if (status == 0 && m->error.count) {
        mf_error_set(err, "%s", m->error.msg);
        status = -1;
    } else if (status != 0 && m->error.count) {
        mf_error_set(err, "%s", m->error.msg);
    } else if (status != 0 && err && err->count == errors_before) {
        if (cfg)
            mf_config_error(err, cfg, "%s refused to build without saying why",
                            who(m, name, sizeof name));
        else
            mf_error_set(err, "%s refused to build without saying why", who(m, name, sizeof name));
    }
    m->built = status == 0;
    return status ? -1 : 0;
}

int mf_module_build(mf_module *m, const mf_config *cfg, const mf_build_args *args, mf_shape *out,
                    mf_error *err)
{
    const mf_module_ops *ops = m->plugin->ops;
    memset(out, 0, sizeof *out);
    int before = err ? err->count : 0;
    mfi_phase outer = enter(m->plugin, "build");
    int status = ops->build(m, cfg, args, out, err);
    mfi_plugin_phase_leave(outer);
    if (status == 0 && (out->ndim < 1 || out->ndim >= MF_MAX_DIMS || mf_shape_numel(out) <= 0)) {
        char name[300];
        mf_error_set(err, "%s reported no valid output shape (1 to %d axes per sample)",
                     who(m, name, sizeof name), MF_MAX_DIMS - 1);
        status = -1;
    }
    m->out = *out;
    return finish_build(m, cfg, status, before, err);
}

/* The output must be (B, the shape build declared); a mismatch names the plugin (otherwise
 * the next op would report it, naming only itself). */
mf_node *mf_module_forward(mf_module *m, mf_graph *g, int n_in, mf_node *const *in)
{
    const mf_module_ops *ops = m->plugin->ops;
    for (int i = 0; i < n_in; i++)
        if (!in[i])
            return NULL; /* an earlier module failed: its error stands */
    const char *outer = mf_graph_set_scope(g, m->path);
    mfi_phase mark = enter(m->plugin, "forward");
    mf_node *out = ops->forward(m, g, n_in, in);
    mfi_plugin_phase_leave(mark);
    mf_graph_set_scope(g, outer);
    char name[300], got[MFI_SHAPE_STR], want[64];
    if (!out) {
        if (!mf_graph_error(g))
            mfi_graph_fail(g, "%s: forward returned no output", who(m, name, sizeof name));
        return NULL;
    }
    const mf_shape *s = mf_node_shape(out);
    int same = s->ndim == m->out.ndim + 1;
    for (int d = 0; same && d < m->out.ndim; d++)
        same = s->dim[d + 1] == m->out.dim[d];
    if (!same) {
        mfi_graph_fail(g, "%s: forward returned %s, but build declared %s per sample after the "
                       "batch axis",
                       who(m, name, sizeof name), mfi_node_shape_str(out, got),
                       mf_shape_str(&m->out, want, sizeof want));
        return NULL;
    }
    return out;
}

int mf_module_build_loss(mf_module *m, const mf_config *cfg, mf_error *err)
{
    return mf_module_build_loss_model(m, cfg, NULL, err);
}

/* 1.1 losses are told the model's shapes (build_model); 1.0 losses only read their section. */
int mf_module_build_loss_model(mf_module *m, const mf_config *cfg, const mf_loss_build_args *args,
                               mf_error *err)
{
    const mf_loss_ops *ops = m->plugin->ops;
    int before = err ? err->count : 0, status;
    mfi_phase outer = enter(m->plugin, "build");
    if (MFI_HAS_MEMBER(ops, mf_loss_ops, build_model)) {
        mf_loss_build_args none = {sizeof none, 0, NULL, NULL, NULL, NULL, NULL, 0, 0};
        status = ops->build_model(m, cfg, args ? args : &none, err);
    } else if (args && (!args->logits || args->target_kind != MF_TARGET_CLASSES)) {
        /* a 1.0 loss reads a head's class logits and nothing else */
        mf_config_error(err, cfg, "the loss '%s' (ABI 1.0) reads a head's class logits, and this "
                        "model has %s", m->plugin->name, !args->logits ? "no head" : "no class labels");
        status = -1;
    } else {
        status = ops->build(m, cfg, err);
    }
    mfi_plugin_phase_leave(outer);
    return finish_build(m, cfg, status, before, err);
}

mf_node *mf_module_loss(mf_module *m, mf_graph *g, const mf_loss_inputs *in)
{
    const mf_loss_ops *ops = m->plugin->ops;
    const char *outer = mf_graph_set_scope(g, m->path);
    mfi_phase mark = enter(m->plugin, "forward");
    mf_node *out = ops->forward(m, g, in);
    mfi_plugin_phase_leave(mark);
    mf_graph_set_scope(g, outer);
    char name[300], got[MFI_SHAPE_STR];
    if (!out && !mf_graph_error(g))
        mfi_graph_fail(g, "%s: forward returned no loss", who(m, name, sizeof name));
    else if (out && mf_node_numel(out) != 1) {
        mfi_graph_fail(g, "%s: forward returned %s, not a scalar loss", who(m, name, sizeof name),
                       mfi_node_shape_str(out, got));
        return NULL;
    }
    return out;
}

void mf_module_loss_metrics(mf_module *m, mf_loss_metrics *out)
{
    const mf_loss_ops *ops = m->plugin->ops;
    memset(out, 0, sizeof *out);
    if (MFI_HAS_MEMBER(ops, mf_loss_ops, declare_metrics) &&
        MFI_HAS_MEMBER(ops, mf_loss_ops, batch_metrics)) {
        mfi_phase outer = enter(m->plugin, "metrics");
        ops->declare_metrics(m, out);
        mfi_plugin_phase_leave(outer);
    }
    if (out->n < 0 || out->n > MF_LOSS_MAX_METRICS)
        out->n = 0;
}

void mf_module_loss_batch_metrics(mf_module *m, const mf_loss_inputs *in, double *values)
{
    const mf_loss_ops *ops = m->plugin->ops;
    if (MFI_HAS_MEMBER(ops, mf_loss_ops, batch_metrics)) {
        mfi_phase outer = enter(m->plugin, "metrics");
        ops->batch_metrics(m, in, values);
        mfi_plugin_phase_leave(outer);
    }
}

void mf_module_free(mf_module *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_children; i++)
        mf_module_free(m->children[i]);
    if (m->plugin && m->built) {
        mfi_phase outer = enter(m->plugin, "destroy");
        if (m->plugin->kind == MF_KIND_LOSS) {
            const mf_loss_ops *ops = m->plugin->ops;
            if (MFI_HAS_MEMBER(ops, mf_loss_ops, destroy))
                ops->destroy(m);
        } else {
            const mf_module_ops *ops = m->plugin->ops;
            if (MFI_HAS_MEMBER(ops, mf_module_ops, destroy))
                ops->destroy(m);
        }
        mfi_plugin_phase_leave(outer);
    }
    free(m->state);
    free(m->path);
    free(m);
}

/* ---------------------------------------------------------------- datasets */
void *mf_dataset_state(mf_dataset *ds) { return ds->state; }
const char *mf_dataset_base_dir(const mf_dataset *ds) { return ds->base_dir; }
const mf_dataset_info *mf_dataset_get_info(const mf_dataset *ds) { return &ds->info; }

mf_dataset *mf_dataset_open(const mf_plugin *plugin, const mf_config *cfg, const char *base_dir,
                            mf_error *err)
{
    const mf_dataset_ops *ops = plugin->ops;
    mf_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->base_dir = strdup(base_dir ? base_dir : ".")) ||
        !(ds->state = calloc(1, ops->state_size ? ops->state_size : 1))) {
        mf_error_set(err, "dataset '%s': out of memory", plugin->name);
        mf_dataset_close(ds);
        return NULL;
    }
    ds->plugin = plugin;
    ds->info.struct_size = sizeof ds->info;
    mfi_phase outer = enter(plugin, "open");
    int opened = ops->open(ds, cfg, &ds->info, err);
    mfi_plugin_phase_leave(outer);
    if (opened != 0) {
        mf_dataset_close(ds);
        return NULL;
    }
    ds->opened = 1;
    const mf_dataset_info *in = &ds->info;
    const int classes = in->label_kind == MF_LABELS_CLASSES;
    const char *problem = in->n_modalities < 1                       ? "no modalities"
                          : !in->modalities                          ? "no modality table"
                          : in->n_samples < 1                        ? "no samples"
                          : classes && in->n_classes < 1             ? "no classes"
                          : !classes && in->label_kind != MF_LABELS_TARGETS &&
                                    in->label_kind != MF_LABELS_MULTILABEL
                              ? "an unknown label kind"
                          : !classes && in->target_dim < 1           ? "targets of no width"
                                                                     : NULL;
    for (int m = 0; !problem && m < in->n_modalities; m++)
        if (!in->modalities[m].name || mf_shape_numel(&in->modalities[m].shape) <= 0)
            problem = "a modality without a name or shape";
    for (int m = 0; !problem && m < in->n_modalities; m++)
        if (in->modalities[m].shape.ndim >= MF_MAX_DIMS) {
            mf_error_set(err, "dataset '%s' gives modality '%s' %d axes per sample; at most %d "
                         "are supported (the batch takes the %dth)", plugin->name,
                         in->modalities[m].name, in->modalities[m].shape.ndim, MF_MAX_DIMS - 1,
                         MF_MAX_DIMS);
            mf_dataset_close(ds);
            return NULL;
        }
    if (problem) {
        mf_error_set(err, "dataset '%s' describes its data with %s", plugin->name, problem);
        mf_dataset_close(ds);
        return NULL;
    }
    return ds;
}

int mf_dataset_read(mf_dataset *ds, int64_t n, const int64_t *idx, const mf_batch_buffers *out,
                    mf_error *err)
{
    const mf_dataset_ops *ops = ds->plugin->ops;
    mfi_phase outer = enter(ds->plugin, "read");
    int status = ops->read(ds, n, idx, out, err);
    mfi_plugin_phase_leave(outer);
    return status;
}

void mf_dataset_will_read(mf_dataset *ds, int64_t n, const int64_t *idx)
{
    const mf_dataset_ops *ops = ds && ds->plugin ? ds->plugin->ops : NULL;
    if (ops && n > 0 && MFI_HAS_MEMBER(ops, mf_dataset_ops, will_read) && ops->will_read) {
        mfi_phase outer = enter(ds->plugin, "read");
        ops->will_read(ds, n, idx);
        mfi_plugin_phase_leave(outer);
    }
}

static const char *const dtype_names[] = {"float32", "float64", "uint8", "int8", "uint16",
                                          "int16", "int32", "int64", "token"};
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == MF_DTYPE_COUNT,
               "one name per storage type");

const char *mf_dtype_name(mf_dtype t)
{
    return (unsigned)t < MF_DTYPE_COUNT ? dtype_names[t] : "unknown";
}

void mf_dataset_close(mf_dataset *ds)
{
    if (!ds)
        return;
    const mf_dataset_ops *ops = ds->plugin ? ds->plugin->ops : NULL;
    if (ds->opened && ops && MFI_HAS_MEMBER(ops, mf_dataset_ops, close)) {
        mfi_phase outer = enter(ds->plugin, "close");
        ops->close(ds);
        mfi_plugin_phase_leave(outer);
    }
    free(ds->state);
    free(ds->base_dir);
    free(ds);
}
