/* mmfuse sweep's grid: the `sweep:` section read into keys and values (or named cases), one
 * point per cell of their product, each with its overrides, label and folder name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep_internal.h"
#include "../core/text.h"

#define MAX_POINTS 10000   /* a bigger grid is surely a typo */
#define SLUG_MAX 40

/* ---------------------------------------------------------------- values as YAML flow text */
/* ---------------------------------------------------------------- values as YAML flow text */
static int plain_safe(const char *t)
{
    if (!*t)
        return 0;
    for (const char *p = t; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-/", *p))
            return 0;
    return 1;
}

static void render_quoted(mfi_text *b, const char *t)
{
    mfi_text_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if (*p == '"' || *p == '\\')
            mfi_text_printf(b, "\\%c", *p);
        else if (*p == '\n')
            mfi_text_puts(b, "\\n");
        else if (*p == '\t')
            mfi_text_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            mfi_text_printf(b, "\\x%02x", *p);
        else
            mfi_text_add(b, (const char *)p, 1);
    }
    mfi_text_puts(b, "\"");
}

/* A value as one line of YAML that reads back the same (what `-o key=VALUE` takes):
 * plain words and numbers as written, quoted strings quoted, lists [a, b], maps {k: v}. */
static void render(mfi_text *b, const mf_config *n)
{
    switch (mf_config_node_kind(n)) {
    case MF_CONFIG_SCALAR:
        if (mf_config_is_quoted(n))
            render_quoted(b, mf_config_scalar(n));
        else if (mf_config_is_null(n))
            mfi_text_puts(b, "null");
        else if (plain_safe(mf_config_scalar(n)))
            mfi_text_puts(b, mf_config_scalar(n));
        else /* plain text with flow indicators (", :" …): a string, so quoting keeps it */
            render_quoted(b, mf_config_scalar(n));
        break;
    case MF_CONFIG_LIST:
        mfi_text_puts(b, "[");
        for (int i = 0; i < mf_config_length(n); i++) {
            if (i)
                mfi_text_puts(b, ", ");
            render(b, mf_config_at(n, i));
        }
        mfi_text_puts(b, "]");
        break;
    case MF_CONFIG_MAP:
        mfi_text_puts(b, "{");
        for (int i = 0; i < mf_config_length(n); i++) {
            if (i)
                mfi_text_puts(b, ", ");
            if (plain_safe(mf_config_key_at(n, i)))
                mfi_text_puts(b, mf_config_key_at(n, i));
            else
                render_quoted(b, mf_config_key_at(n, i));
            mfi_text_puts(b, ": ");
            render(b, mf_config_at(n, i));
        }
        mfi_text_puts(b, "}");
        break;
    }
}

/* The words of a value for a folder name: scalars as written, a map's values without its
 * keys ({type: mlp, hidden: [64]} → "mlp 64"), separated by spaces. */
static void slug_words(mfi_text *b, const mf_config *n)
{
    if (mf_config_node_kind(n) == MF_CONFIG_SCALAR) {
        mfi_text_printf(b, " %s", mf_config_is_null(n) ? "null" : mf_config_scalar(n));
        return;
    }
    for (int i = 0; i < mf_config_length(n); i++)
        slug_words(b, mf_config_at(n, i));
}

/* A folder-name piece of text: [A-Za-z0-9.+-] kept, other runs become one '_', at most
 * SLUG_MAX. */
static void slug_text(const char *text, const char *prefix, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s", prefix), start = n;
    int gap = 0;
    for (const char *p = text; *p && n + 2 < size && n < start + SLUG_MAX; p++) {
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-", *p)) {
            if (gap && n > start)
                out[n++] = '_';
            out[n++] = *p;
            gap = 0;
        } else {
            gap = 1;
        }
    }
    out[n] = '\0';
    if (n == start)
        snprintf(out + n, size - n, "x");
    if (out[0] == '.') /* no hidden folders, no ".." */
        out[0] = '_';
}

/* A value's folder-name piece: its words (slug_words) as slug_text keeps them. */
static void slugify(const mf_config *value, const char *prefix, char *out, size_t size)
{
    mfi_text words = {0};
    slug_words(&words, value);
    slug_text(words.s && !words.oom ? words.s : "", prefix, out, size);
    free(words.s);
}

/* ---------------------------------------------------------------- the grid */
/* A new dimension of the grid, its n values still to fill in. */
static sweep_key *add_key(sweep *sw, const mf_config *v, const char *path, mf_error *err)
{
    for (int k = 0; k < sw->n_keys; k++)
        if (strcmp(sw->keys[k].path, path) == 0) {
            mf_config_error(err, v, "'%s' is swept twice", path);
            return NULL;
        }
    sweep_key *keys = realloc(sw->keys, (size_t)(sw->n_keys + 1) * sizeof *keys);
    if (!keys)
        goto oom;
    sw->keys = keys;
    sweep_key *k = &sw->keys[sw->n_keys++];
    memset(k, 0, sizeof *k);
    k->path = strdup(path);
    k->n = mf_config_length(v);
    k->text = calloc((size_t)k->n, sizeof *k->text);
    k->slug = calloc((size_t)k->n, sizeof *k->slug);
    if (k->path && k->text && k->slug)
        return k;
oom:
    mf_error_set(err, "out of memory");
    return NULL;
}

/* A list of values: each rendered for -o and slugged for the folder name. */
static int add_values(sweep *sw, const mf_config *v, const char *path, mf_error *err)
{
    sweep_key *k = add_key(sw, v, path, err);
    if (!k)
        return 1;
    k->is_seed = strcmp(path, "seed") == 0;
    for (int j = 0; j < k->n; j++) {
        mfi_text b = {0};
        render(&b, mf_config_at(v, j));
        char slug[SLUG_MAX + 8];
        slugify(mf_config_at(v, j), k->is_seed ? "s" : "", slug, sizeof slug);
        if (!(k->text[j] = mfi_text_take(&b)) || !(k->slug[j] = strdup(slug))) {
            mf_error_set(err, "out of memory");
            return 1;
        }
    }
    return 0;
}

/* sweep.cases: name → {key.path: value, …}, each case one value of one dimension, its
 * overrides applied together (a single-modality model beside fused ones). */
static int add_cases(sweep *sw, const mf_config *cases, mf_error *err)
{
    if (mf_config_node_kind(cases) != MF_CONFIG_MAP || mf_config_length(cases) == 0) {
        mf_config_error(err, cases, "expected a map from case names to the settings of each, "
                        "like {visible-only: {data.modalities: [visible]}, both: {}}");
        return 1;
    }
    sweep_key *k = add_key(sw, cases, "cases", err);
    if (!k)
        return 1;
    k->is_cases = 1;
    if (!(k->sets = calloc((size_t)k->n, sizeof *k->sets)))
        goto oom;
    for (int j = 0; j < k->n; j++) {
        const char *name = mf_config_key_at(cases, j);
        const mf_config *set = mf_config_at(cases, j);
        if (mf_config_node_kind(set) != MF_CONFIG_MAP) {
            mf_config_error(err, set, "expected the case's settings as a map of key paths to "
                            "values, like {model.fusion.type: sum} ({} for the file as it is)");
            return 1;
        }
        int n = mf_config_length(set);
        char slug[SLUG_MAX + 8];
        slug_text(name, "", slug, sizeof slug);
        if (!(k->text[j] = strdup(name)) || !(k->slug[j] = strdup(slug)) ||
            !(k->sets[j] = calloc((size_t)n + 1, sizeof *k->sets[j])))
            goto oom;
        for (int i = 0; i < n; i++) {
            mfi_text b = {0};
            mfi_text_printf(&b, "%s=", mf_config_key_at(set, i));
            render(&b, mf_config_at(set, i));
            if (!(k->sets[j][i] = mfi_text_take(&b)))
                goto oom;
        }
    }
    return 0;
oom:
    mf_error_set(err, "out of memory");
    return 1;
}

/* Collect key paths under the sweep map: a nested map continues the path (files may not
 * put '.' in a key), so {model: {fusion: {type: [...]}}} and -o sweep.model.fusion.type=[...]
 * both sweep model.fusion.type; a list is the values; `cases` at the top names sets of
 * values; anything else is an error. */
static int collect_keys(sweep *sw, const mf_config *map, const char *prefix, mf_error *err)
{
    int problems = 0;
    for (int i = 0; i < mf_config_length(map); i++) {
        const mf_config *v = mf_config_at(map, i);
        char path[1024];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", mf_config_key_at(map, i));
        if (strcmp(path, "cases") == 0)
            problems += add_cases(sw, v, err);
        else if (mf_config_node_kind(v) == MF_CONFIG_MAP && mf_config_length(v) > 0)
            problems += collect_keys(sw, v, path, err);
        else if (mf_config_node_kind(v) != MF_CONFIG_LIST || mf_config_length(v) == 0) {
            mf_config_error(err, v, "expected a non-empty list of values");
            problems++;
        } else {
            problems += add_values(sw, v, path, err);
        }
    }
    return problems;
}

/* Point p's overrides (each key's "key=value", a case's all) and its label and name. */
static int describe_point(sweep *sw, sweep_point *p)
{
    int n = 0;
    for (int k = 0; k < sw->n_keys; k++) {
        const sweep_key *key = &sw->keys[k];
        if (key->is_cases)
            for (char **s = key->sets[p->choice[k]]; *s; s++)
                n++;
        else
            n++;
    }
    if (!(p->assign = calloc((size_t)n + 1, sizeof *p->assign)))
        return -1;
    mfi_text label = {0}, name = {0};
    for (int k = 0; k < sw->n_keys; k++) {
        const sweep_key *key = &sw->keys[k];
        const int v = p->choice[k];
        if (key->is_cases) {
            for (char **s = key->sets[v]; *s; s++)
                if (!(p->assign[p->n_assign++] = strdup(*s)))
                    return -1;
        } else {
            mfi_text a = {0};
            mfi_text_printf(&a, "%s=%s", key->path, key->text[v]);
            if (!(p->assign[p->n_assign++] = mfi_text_take(&a)))
                return -1;
        }
        mfi_text_printf(&label, "%s%s=%s", k ? ", " : "", key->path, key->text[v]);
        mfi_text_printf(&name, "%s%s", k ? "-" : "", key->slug[v]);
        if (!key->is_seed)
            p->config = p->config * key->n + v;
    }
    char *folder = mfi_text_take(&name);
    if (!(p->label = mfi_text_take(&label)) || !folder) {
        free(folder);
        return -1;
    }
    snprintf(p->name, 200, "%s", folder);
    free(folder);
    return 0;
}

static int make_points(sweep *sw, mf_error *err)
{
    double total = 1;
    for (int k = 0; k < sw->n_keys; k++)
        total *= sw->keys[k].n;
    if (total > MAX_POINTS) {
        mf_error_set(err, "%s: sweep: the grid has %.0f points, more than the %d allowed", sw->path,
                     total, MAX_POINTS);
        return -1;
    }
    sw->n_points = (int)total;
    sw->n_configs = 1;
    sw->n_seeds = 1;
    for (int k = 0; k < sw->n_keys; k++)
        *(sw->keys[k].is_seed ? &sw->n_seeds : &sw->n_configs) *= sw->keys[k].n;
    sw->points = calloc((size_t)sw->n_points, sizeof *sw->points);
    if (!sw->points)
        goto oom;
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        if (!(p->choice = calloc((size_t)sw->n_keys + 1, sizeof *p->choice)))
            goto oom;
        /* the last key varies fastest */
        int rest = i;
        for (int k = sw->n_keys - 1; k >= 0; k--) {
            p->choice[k] = rest % sw->keys[k].n;
            rest /= sw->keys[k].n;
        }
        if (describe_point(sw, p))
            goto oom;
        /* made unique in grid order, so the same grid always gets the same names */
        size_t base = strlen(p->name);
        for (int suffix = 2;; suffix++) {
            int clash = 0;
            for (int j = 0; j < i && !clash; j++)
                clash = strcmp(sw->points[j].name, p->name) == 0;
            if (!clash)
                break;
            snprintf(p->name + base, sizeof p->name - base, "-%d", suffix);
        }
    }
    return 0;
oom:
    mf_error_set(err, "out of memory for the grid");
    return -1;
}

/* The overrides of point p as mf_experiment_run / `mmfuse run` take them: the global
 * ones, sweep={} (so the point's config.yaml is one plain experiment), the point's. */
const char **mfi_sweep_point_overrides(const sweep *sw, const sweep_point *p, int *n)
{
    const char **o = calloc((size_t)(sw->opts->n_overrides + p->n_assign + 2), sizeof *o);
    if (!o)
        return NULL;
    *n = 0;
    for (int i = 0; i < sw->opts->n_overrides; i++)
        o[(*n)++] = sw->opts->overrides[i];
    o[(*n)++] = "sweep={}";
    for (int k = 0; k < p->n_assign; k++)
        o[(*n)++] = p->assign[k];
    o[*n] = NULL;
    return o;
}

/* Read the grid from the file (with the global overrides applied). */
int mfi_sweep_load_grid(sweep *sw, mf_error *err)
{
    if (!(sw->cfg = mf_config_load(sw->path, err)))
        return -1;
    for (int i = 0; i < sw->opts->n_overrides; i++)
        if (mf_config_override(sw->cfg, sw->opts->overrides[i], err))
            return -1;
    const mf_config *grid = mf_config_get(sw->cfg, "sweep");
    if (grid && mf_config_node_kind(grid) != MF_CONFIG_MAP) {
        mf_config_error(err, grid, "expected a map from keys to lists of values, like "
                        "{optim: {lr: [1.0e-3, 3.0e-3]}, seed: [1, 2, 3]}");
        return -1;
    }
    if (!grid || mf_config_length(grid) == 0) {
        mf_error_set(err, "%s: nothing to sweep: add a grid like sweep: {optim: {lr: [1.0e-3, 3.0e-3]}, "
                     "seed: [1, 2, 3]}",
                     sw->path);
        return -1;
    }
    if (collect_keys(sw, grid, "", err))
        return -1;
    return make_points(sw, err);
}

void mfi_sweep_free(sweep *sw)
{
    for (int k = 0; k < sw->n_keys; k++) {
        sweep_key *key = &sw->keys[k];
        for (int v = 0; v < key->n; v++) {
            free(key->text ? key->text[v] : NULL);
            free(key->slug ? key->slug[v] : NULL);
            for (char **s = key->sets && key->sets[v] ? key->sets[v] : NULL; s && *s; s++)
                free(*s);
            free(key->sets ? key->sets[v] : NULL);
        }
        free(key->sets);
        free(key->text);
        free(key->slug);
        free(key->path);
    }
    free(sw->keys);
    for (int i = 0; sw->points && i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        for (int k = 0; p->assign && k < p->n_assign; k++)
            free(p->assign[k]);
        free(p->assign);
        free(p->choice);
        free(p->label);
        free(p->metric);
    }
    free(sw->points);
    for (int m = 0; m < sw->n_metrics; m++)
        free(sw->metric_names[m]);
    free(sw->metric_names);
    free(sw->envp);
    mf_config_free(sw->cfg);
}
