/* Blocks shared by plugins that read their config or build arguments (plugin.h): a late
 * fusion's width check, the choice of a loss's modalities with their located refusals, a
 * contrastive loss's logit scale from its keys. Above core (they use the config layer). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

int mf_fusion_same_width(const mf_config *cfg, const mf_build_args *args, const char *what,
                         int64_t *width, mf_error *err)
{
    const int64_t d = *width = args->n_in > 0 ? mf_shape_numel(&args->in[0]) : 0;
    for (int m = 1; m < args->n_in; m++)
        if (mf_shape_numel(&args->in[m]) != d) {
            mf_config_error(err, cfg, "%s needs inputs of one width, but modality '%s' has %lld "
                            "features and '%s' has %lld", what, args->in_names[0], (long long)d,
                            args->in_names[m], (long long)mf_shape_numel(&args->in[m]));
            return -1;
        }
    return 0;
}

/* ---------------------------------------------------------------- a loss's modalities */
#define PICK_MAX 64

/* "a, b, c" into buf. */
static const char *join_names(const mf_loss_build_args *args, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < args->n_modalities && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", args->names[i]);
    return buf;
}

/* "two" for 2: the refusals read as sentences. */
static const char *count_word(int n, char *buf, size_t size)
{
    static const char *const words[] = {"zero", "one", "two", "three", "four", "five",
                                        "six", "seven", "eight", "nine"};
    if (n >= 0 && n < (int)(sizeof words / sizeof words[0]))
        return words[n];
    snprintf(buf, size, "%d", n);
    return buf;
}

/* The index of list item i among the data's modalities, or -1 after a located refusal. */
static int find_listed(const mf_config *item, const mf_loss_build_args *args, mf_error *err)
{
    const char *name = mf_config_scalar(item);
    const char *cand[PICK_MAX + 1] = {NULL};
    char names[512];
    for (int m = 0; name && m < args->n_modalities; m++)
        if (strcmp(name, args->names[m]) == 0)
            return m;
    for (int m = 0; m < args->n_modalities && m < PICK_MAX; m++)
        cand[m] = args->names[m];
    mf_config_error(err, item, "no modality '%s' in the data (it has %s)%s", name ? name : "",
                    join_names(args, names, sizeof names), mf_suggestion(name ? name : "", cand));
    return -1;
}

int mf_loss_pick_modalities(const mf_config *cfg, const mf_loss_build_args *args,
                            const char *what, int n, int *idx, mf_error *err)
{
    const mf_config *list = mf_config_get(cfg, "modalities");
    const int listed = list ? mf_config_length(list) : 0;
    char names[512], word[16];
    if (listed == 0) {
        if (args->n_modalities == n) {
            for (int i = 0; i < n; i++)
                idx[i] = i;
            return 0;
        }
        mf_config_error(err, cfg, "%s %s modalities, but the data has %d (%s); list the %s in "
                        "'modalities'", what, count_word(n, word, sizeof word),
                        args->n_modalities, join_names(args, names, sizeof names),
                        count_word(n, word, sizeof word));
        return -1;
    }
    if (listed != n) {
        mf_config_error(err, list, "%s exactly %s modalities, but %d are listed", what,
                        count_word(n, word, sizeof word), listed);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if ((idx[i] = find_listed(mf_config_at(list, i), args, err)) < 0)
            return -1;
        for (int j = 0; j < i; j++)
            if (idx[j] == idx[i]) {
                mf_config_error(err, list, "lists '%s' twice; name %s different modalities",
                                args->names[idx[i]], count_word(n, word, sizeof word));
                return -1;
            }
    }
    return 0;
}

int mf_loss_check_vectors(const mf_config *cfg, const mf_loss_build_args *args, const char *loss,
                          int n, const int *idx, mf_error *err)
{
    char buf[64];
    for (int i = 0; i < n; i++) {
        const mf_shape *e = &args->emb[idx[i]];
        const int seq = args->emb_flags && (args->emb_flags[idx[i]] & MF_IO_SEQUENCE);
        if (seq || e->ndim != 1) {
            mf_config_error(err, cfg, "%s needs one vector per sample, but emb.%s is %s%s; give "
                            "its encoder a pooled vector output", loss, args->names[idx[i]],
                            seq ? "a sequence " : "", mf_shape_str(e, buf, sizeof buf));
            return -1;
        }
    }
    const int64_t d0 = args->emb[idx[0]].dim[0];
    for (int i = 1; i < n; i++) {
        const int64_t d = args->emb[idx[i]].dim[0];
        if (d != d0) {
            mf_config_error(err, cfg, "%s compares emb.%s (%lld features) with emb.%s (%lld), "
                            "which need the same width; give both encoders the same `out:` "
                            "projection (e.g. out: %lld)", loss, args->names[idx[0]],
                            (long long)d0, args->names[idx[i]], (long long)d,
                            (long long)(d0 > d ? d0 : d));
            return -1;
        }
    }
    return 0;
}

int mf_logit_scale_config(mf_logit_scale *t, mf_module *m, const mf_config *cfg, mf_error *err)
{
    double init;
    int learn;
    memset(t, 0, sizeof *t);
    if (mf_config_float(cfg, "init_scale", &init, err) ||
        mf_config_bool(cfg, "learn_scale", &learn, err))
        return -1;
    if (learn && (init < 0 || init > MF_LN_100)) {
        mf_config_error(err, mf_config_get(cfg, "init_scale"), "init_scale %g is outside "
                        "[0, ln 100 = 4.6052], the range the learned scale is kept in", init);
        return -1;
    }
    t->init = (float)init;
    if (!learn)
        return 0;
    t->s = mf_module_param(m, "logit_scale", mf_shape1(1), (mf_init){MF_INIT_CONSTANT, t->init, 0});
    if (t->s) { /* a failed registration is recorded in the module, reported by the host */
        mf_param_set_flags(t->s, MF_NO_DECAY);
        mf_param_set_bounds(t->s, 0.0f, (float)MF_LN_100);
    }
    return 0;
}

/* ---------------------------------------------------------------- sequence fusion inputs */
int mf_fusion_sequences(const mf_config *cfg, const mf_build_args *args, const char *what,
                        int max_in, int64_t dim, int64_t *width, mf_error *err)
{
    char shape[64];
    if (args->n_in < 2 || args->n_in > max_in) {
        mf_config_error(err, cfg, "%s fuses 2 to %d modalities, got %d", what, max_in,
                        args->n_in);
        return -1;
    }
    for (int m = 0; m < args->n_in; m++) {
        const mf_shape *s = &args->in[m];
        if (s->ndim == 2)
            continue;
        mf_shape_str(s, shape, sizeof shape);
        if (s->ndim == 1)
            mf_config_error(err, cfg,
                            "%s is a sequence fusion, but modality '%s' has shape %s, a vector; "
                            "give its encoder `pool: none` so it outputs a sequence (T,D)",
                            what, args->in_names[m], shape);
        else
            mf_config_error(err, cfg,
                            "%s is a sequence fusion, but modality '%s' has shape %s; it needs "
                            "a sequence (T,D)", what, args->in_names[m], shape);
        return -1;
    }
    *width = dim;
    for (int m = 1; dim == 0 && m < args->n_in; m++)
        if (args->in[m].dim[1] != args->in[0].dim[1]) {
            mf_config_error(err, cfg,
                            "modalities '%s' (width %lld) and '%s' (width %lld) differ in "
                            "width; set dim to project them to one", args->in_names[0],
                            (long long)args->in[0].dim[1], args->in_names[m],
                            (long long)args->in[m].dim[1]);
            return -1;
        }
    if (dim == 0)
        *width = args->in[0].dim[1];
    return 0;
}
