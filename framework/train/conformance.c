/* mmfuse check-plugin: what a lab runs before sharing a plugin. One line per check, PASS,
 * FAIL with the reason, or SKIP (an input profile the plugin refuses, with its reason); the
 * count of failures is returned.
 *
 * Every kind: descriptor fields; declared parameters (names, types, defaults that parse and
 * sit in their ranges, enum choices, docs). Modules and losses: conformance_inputs.c, on
 * every input profile of their kind. Dataset readers, opened with their defaults: a
 * consistent description, and reads that match it. A required parameter not given with -o
 * gets a sample value from its spec, and the lines say so.
 *
 * Plugin code runs in forked children (mfi_check_apart), one per group of checks — the
 * descriptor, the parameters, the reader, each input profile — so a crash, abort, exit()
 * or hang is a FAIL line and the report goes on; every line is flushed as it is written,
 * so none is lost when the output is a pipe.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../plugin/plugin_internal.h"
#include "../data/loader.h"
#include "conformance.h"

void mfi_check_report(mfi_checker *c, int status, const char *check, const char *fmt, ...)
{
    static const char *const words[] = {"FAIL", "PASS", "SKIP"};
    va_list ap;
    fprintf(c->out, "%s %-12s ", words[status], check);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    fflush(c->out);
    status == MFI_CHECK_PASS ? c->passed++ : status == MFI_CHECK_SKIP ? c->skipped++ : c->failed++;
}

/* ---------------------------------------------------------------- checks apart */
/* Lines from the child: "PASS|FAIL|SKIP …" are the report's; "\001<result>" ends the
 * child's answer, "\002<check>" says which check it began. */
typedef struct relay {
    mfi_checker *c;
    char line[4096];
    size_t n;
    int result, finished;
} relay;

static void relay_line(relay *r)
{
    mfi_checker *c = r->c;
    r->line[r->n] = '\0';
    if (r->line[0] == '\001') {
        r->result = atoi(r->line + 1);
        r->finished = 1;
    } else if (r->line[0] == '\002') {
        snprintf(c->running, sizeof c->running, "%s", r->line + 1);
    } else {
        fprintf(c->out, "%s\n", r->line);
        fflush(c->out);
        if (strncmp(r->line, "PASS ", 5) == 0)
            c->passed++;
        else if (strncmp(r->line, "SKIP ", 5) == 0)
            c->skipped++;
        else if (strncmp(r->line, "FAIL ", 5) == 0)
            c->failed++;
    }
    r->n = 0;
}

static void relay_bytes(void *user, const char *bytes, size_t n)
{
    relay *r = user;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] == '\n' || r->n + 1 >= sizeof r->line)
            relay_line(r);
        if (bytes[i] != '\n')
            r->line[r->n++] = bytes[i];
    }
}

typedef struct apart_job {
    mfi_checker *c;
    mfi_check_fn fn;
    const void *arg;
} apart_job;

static void apart_child(void *arg, int fd)
{
    const apart_job *j = arg;
    mfi_checker child = *j->c;
    child.out = fdopen(fd, "w");
    if (!child.out)
        _exit(1);
    setvbuf(child.out, NULL, _IOLBF, 0); /* each line reaches the parent before a crash */
    child.apart = 1;
    int result = j->fn(&child, j->arg);
    fprintf(child.out, "\001%d\n", result);
    fflush(child.out);
    mfi_isolated_done(fd);
}

void mfi_check_begin(mfi_checker *c, const char *check)
{
    if (c->apart)
        fprintf(c->out, "\002%s\n", check);
}

int mfi_check_apart(mfi_checker *c, const char *check, const char *what, mfi_check_fn fn,
                    const void *arg, int if_died)
{
    relay r = {.c = c};
    apart_job j = {c, fn, arg};
    char how[256];
    snprintf(c->running, sizeof c->running, "%s", check);
    fflush(c->out);
    int status = mfi_isolate(apart_child, &j, mfi_timeout_from_env("MMFUSE_CHECK_TIMEOUT", 600),
                             relay_bytes, &r, how, sizeof how);
    if (r.n)
        relay_line(&r);
    if (status == 0 && r.finished)
        return r.result;
    mfi_check_report(c, MFI_CHECK_FAIL, c->running, "%s%s%s", what ? what : "",
                     what ? ": " : "", status ? how : "ended without finishing its checks");
    fflush(c->out);
    return if_died;
}

/* ---------------------------------------------------------------- descriptor, parameters */
static void check_descriptor(mfi_checker *c, const char *file)
{
    const mf_plugin *p = c->plugin;
    const char *missing = !p->version || !*p->version   ? "version"
                          : !p->license || !*p->license ? "license"
                          : !p->summary || !*p->summary ? "summary"
                                                        : NULL;
    if (missing)
        mfi_check_report(c, 0, "descriptor", "'%s' (%s) has no %s", p->name, file, missing);
    else
        mfi_check_report(c, 1, "descriptor", "'%s' %s, %s, ABI %u.%u, %s: %s", p->name,
                         p->version, mf_kind_name(p->kind), p->abi_major, p->abi_minor,
                         p->license, p->summary);
}

/* A value for a required parameter no -o gave, from its spec: 1 (0.5 for numbers) moved into
 * its range, the first of its choices, "sample" for strings. */
static void sample_value(const mf_param_spec *s, char *buf, size_t size)
{
    int integer = s->type == MF_TYPE_INT || s->type == MF_TYPE_INT_LIST;
    double v = integer ? 1 : 0.5;
    if ((s->flags & MF_PARAM_MIN) && v < s->min)
        v = integer ? ceil(s->min) : s->min;
    if ((s->flags & MF_PARAM_MAX) && v > s->max)
        v = integer ? floor(s->max) : s->max;
    const char *bar = s->choices ? strchr(s->choices, '|') : NULL;
    int list = s->type == MF_TYPE_INT_LIST || s->type == MF_TYPE_FLOAT_LIST ||
               s->type == MF_TYPE_STRING_LIST;
    switch (s->type) {
    case MF_TYPE_BOOL: snprintf(buf, size, "false"); break;
    case MF_TYPE_STRING:
    case MF_TYPE_STRING_LIST:
        snprintf(buf, size, "%ssample%s", list ? "[" : "", list ? "]" : "");
        break;
    case MF_TYPE_ENUM:
        snprintf(buf, size, "%.*s", bar ? (int)(bar - s->choices) : (int)strlen(s->choices),
                 s->choices);
        break;
    case MF_TYPE_MAP: snprintf(buf, size, "{}"); break;
    default:
        snprintf(buf, size, integer ? "%s%.0f%s" : "%s%g%s", list ? "[" : "", v, list ? "]" : "");
    }
}

/* "with defaults", then " and -o K=V …" for the overrides, then ", sample K=V …" for the
 * required parameters given a sample value. */
static void describe_settings(mfi_checker *c, const char *sampled)
{
    size_t n = (size_t)snprintf(c->settings, sizeof c->settings, "with defaults");
    for (int i = 0; i < c->n_overrides && n < sizeof c->settings; i++)
        n += (size_t)snprintf(c->settings + n, sizeof c->settings - n, "%s-o %s",
                              i ? " " : " and ", c->overrides[i]);
    if (*sampled && n < sizeof c->settings)
        snprintf(c->settings + n, sizeof c->settings - n, ", sample %s", sampled);
}

/* The plugin's section as the host would see it: the overrides, a sample value for each
 * required parameter they leave out, every other declared parameter at its default. */
static mf_config *default_section(mfi_checker *c, mf_error *err)
{
    char name[128], sampled[256] = "";
    snprintf(name, sizeof name, "<defaults of %s>", c->plugin->name);
    mf_config *root = mf_config_parse("{}", 2, name, err);
    for (int i = 0; root && i < c->n_overrides; i++)
        if (mf_config_override(root, c->overrides[i], err)) {
            mf_config_free(root);
            return NULL;
        }
    for (const mf_param_spec *s = c->plugin->params; root && s && s->name; s++) {
        if (!(s->flags & MF_PARAM_REQUIRED) || mf_config_has(root, s->name))
            continue;
        char value[128], assignment[256];
        sample_value(s, value, sizeof value);
        snprintf(assignment, sizeof assignment, "%s=%s", s->name, value);
        if (strlen(sampled) + strlen(assignment) + 2 < sizeof sampled) {
            if (*sampled)
                strcat(sampled, " ");
            strcat(sampled, assignment);
        }
        if (mf_config_override(root, assignment, err)) {
            mf_config_free(root);
            return NULL;
        }
    }
    describe_settings(c, sampled);
    if (root && mf_config_check(root, c->plugin->params, NULL, err)) {
        mf_config_free(root);
        return NULL;
    }
    return root;
}

static int valid_param_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* params may be NULL (no parameters), as the loader accepts. */
static void check_params(mfi_checker *c)
{
    const mf_param_spec *ps = c->plugin->params;
    int n = 0, bad = 0;
    char why[512] = "";
    for (; ps && ps[n].name; n++) {
        const mf_param_spec *s = &ps[n];
        const char *problem = NULL;
        if (!valid_param_name(s->name))
            problem = "a name that is not lowercase letters, digits and '_'";
        else if ((unsigned)s->type >= MF_TYPE_COUNT)
            problem = "an unknown type";
        else if (s->type == MF_TYPE_ENUM && (!s->choices || !*s->choices))
            problem = "an enum without choices";
        else if (!(s->flags & MF_PARAM_REQUIRED) && !s->default_yaml)
            problem = "neither a default nor MF_PARAM_REQUIRED";
        else if ((s->flags & MF_PARAM_MIN) && (s->flags & MF_PARAM_MAX) && s->min > s->max)
            problem = "a minimum above its maximum";
        else if (!s->doc || !*s->doc)
            problem = "no doc line";
        for (int j = 0; !problem && j < n; j++)
            if (strcmp(ps[j].name, s->name) == 0)
                problem = "a name declared twice";
        if (problem && !bad++)
            snprintf(why, sizeof why, "parameter '%s' has %s", s->name ? s->name : "?", problem);
    }
    if (bad) {
        mfi_check_report(c, 0, "parameters", "%s", why);
        return;
    }
    mf_error err;
    mf_error_clear(&err);
    mf_config *defaults = default_section(c, &err);
    if (!defaults) /* a default that does not parse, has the wrong type or is out of range */
        mfi_check_report(c, 0, "parameters", "%s do not pass the declared checks: %s",
                         c->settings, err.msg);
    else if (n == 0)
        mfi_check_report(c, 1, "parameters", "none declared");
    else
        mfi_check_report(c, 1, "parameters", "%d declared; %s, all within their types and "
                         "ranges", n, c->settings);
    mf_config_free(defaults);
}

/* ---------------------------------------------------------------- datasets */
static void check_dataset(mfi_checker *c, const mf_config *cfg)
{
    mf_error err;
    mf_error_clear(&err);
    mfi_check_begin(c, "open");
    mf_dataset *ds = mf_dataset_open(c->plugin, cfg, ".", &err);
    if (!ds) {
        mfi_check_report(c, 0, "open", "%s: %s", c->settings, err.msg);
        return;
    }
    const mf_dataset_info *in = mf_dataset_get_info(ds);
    mfi_check_report(c, 1, "open", "%s: %lld samples, %d classes, %d modalities", c->settings,
                     (long long)in->n_samples, in->n_classes, in->n_modalities);
    /* as many modalities as the host's loader takes (a model uses a few of them) */
    const int n_mod = in->n_modalities;
    float **bufs = calloc((size_t)(n_mod > 0 ? 2 * n_mod : 1), sizeof *bufs);
    float **again = bufs ? bufs + n_mod : NULL;
    int ok = bufs && n_mod <= MFI_MAX_MODALITIES, m;
    for (m = 0; ok && m < in->n_modalities; m++) {
        size_t n = (size_t)mf_shape_numel(&in->modalities[m].shape);
        ok = (bufs[m] = malloc(3 * n * sizeof(float))) &&
             (again[m] = malloc(3 * n * sizeof(float)));
    }
    int64_t idx[3] = {0, in->n_samples / 2, in->n_samples - 1};
    int32_t labels[3], labels2[3];
    const int classes = in->label_kind == MF_LABELS_CLASSES;
    float targets[3 * 64], targets2[3 * 64];
    mf_batch_buffers first = {sizeof first, bufs, classes ? labels : NULL,
                              classes ? NULL : targets},
                     second = {sizeof second, again, classes ? labels2 : NULL,
                               classes ? NULL : targets2};
    if (!classes && in->target_dim > 64)
        ok = 0;
    mfi_check_begin(c, "read");
    if (!ok || mf_dataset_read(ds, 3, idx, &first, &err) ||
        mf_dataset_read(ds, 3, idx, &second, &err)) {
        mfi_check_report(c, 0, "read", "samples 0, %lld and %lld: %s", (long long)idx[1],
                         (long long)idx[2], ok ? err.msg : "more than 4096 modalities or 64 targets, or out of memory");
    } else {
        const char *problem = NULL;
        for (int i = 0; i < 3 && classes && !problem; i++)
            if (labels[i] < 0 || labels[i] >= in->n_classes)
                problem = "a label outside 0…classes-1";
        for (int64_t i = 0; !classes && i < 3 * in->target_dim && !problem; i++)
            if (!isfinite(targets[i]))
                problem = "a target that is not finite";
            else if (in->label_kind == MF_LABELS_MULTILABEL && targets[i] != 0 && targets[i] != 1)
                problem = "a multilabel target other than 0 or 1";
        for (m = 0; m < in->n_modalities && !problem; m++) {
            int64_t n = 3 * mf_shape_numel(&in->modalities[m].shape);
            for (int64_t j = 0; j < n && !problem; j++)
                if (!isfinite(bufs[m][j]))
                    problem = "a value that is not finite";
            if (!problem && memcmp(bufs[m], again[m], (size_t)n * sizeof(float)))
                problem = "different values when the same samples are read again";
        }
        if (!problem && classes && memcmp(labels, labels2, sizeof labels))
            problem = "different labels when the same samples are read again";
        if (!problem && !classes &&
            memcmp(targets, targets2, (size_t)(3 * in->target_dim) * sizeof(float)))
            problem = "different targets when the same samples are read again";
        for (int64_t i = 0; in->split && i < in->n_samples && !problem; i++)
            if (in->split[i] > MF_SPLIT_TEST)
                problem = "a split value other than 0, 1 or 2";
        if (problem)
            mfi_check_report(c, 0, "read", "samples 0, %lld and %lld: %s", (long long)idx[1],
                             (long long)idx[2], problem);
        else
            mfi_check_report(c, 1, "read", "samples 0, %lld and %lld match the description, "
                             "twice", (long long)idx[1], (long long)idx[2]);
    }
    for (m = 0; bufs && m < n_mod; m++) {
        free(bufs[m]);
        free(again[m]);
    }
    free(bufs);
    mf_dataset_close(ds);
}

static int descriptor_apart(mfi_checker *c, const void *file)
{
    check_descriptor(c, file);
    return 1;
}

static int params_apart(mfi_checker *c, const void *unused)
{
    (void)unused;
    check_params(c);
    return 1;
}

static int dataset_apart(mfi_checker *c, const void *cfg)
{
    check_dataset(c, cfg);
    return 1;
}

int mf_check_plugin(const mf_plugin *plugin, const char *file, int n_overrides,
                    const char *const *overrides, FILE *out)
{
    mfi_checker c = {out, plugin, 0, 0, 0, n_overrides, overrides, "with defaults", 0, ""};
    fprintf(out, "checking %s '%s' from %s\n", mf_kind_name(plugin->kind), plugin->name, file);
    mfi_check_apart(&c, "descriptor", NULL, descriptor_apart, file, 0);
    /* the host reads the declared parameters below: not when reading them crashed */
    int readable = mfi_check_apart(&c, "parameters", NULL, params_apart, NULL, 0);
    mf_error err;
    mf_error_clear(&err);
    mf_config *cfg = readable ? default_section(&c, &err) : NULL;
    if (cfg && plugin->kind == MF_KIND_DATASET)
        mfi_check_apart(&c, "open", c.settings, dataset_apart, cfg, 0);
    else if (cfg && plugin->kind == MF_KIND_LOSS)
        mfi_check_loss(&c, cfg);
    else if (cfg)
        mfi_check_module(&c, cfg);
    mf_config_free(cfg);
    if (c.skipped)
        fprintf(out, "%s: %d passed, %d skipped, %d failed\n", plugin->name, c.passed, c.skipped,
                c.failed);
    else
        fprintf(out, "%s: %d passed, %d failed\n", plugin->name, c.passed, c.failed);
    fflush(out);
    return c.failed;
}
