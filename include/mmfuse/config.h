/* mmfuse/config.h — experiment files as a tree that remembers where everything came from.
 *
 * The host reads YAML (libyaml) into an mf_config tree whose every node keeps its source
 * mark (file, line, column, counted from 1) and its key path ("model.encoders.nir.hidden").
 * A plugin sees only its own subtree, read-only, through typed getters; their errors read
 *
 *     experiments/q.yaml:14:13: model.encoders.nir.hidden: expected a list of integers, got 'abc'
 *
 * Before anything runs, the host checks every map against declared parameters
 * (mf_param_spec: the host's own sections and each plugin's), reports unknown keys with a
 * "did you mean" suggestion, missing required keys, wrong types and out-of-range values,
 * and fills in declared defaults — so a plugin's getters always find its declared keys.
 */
#ifndef MMFUSE_CONFIG_H
#define MMFUSE_CONFIG_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mf_config mf_config;

typedef enum mf_config_kind {
    MF_CONFIG_SCALAR,
    MF_CONFIG_LIST,
    MF_CONFIG_MAP
} mf_config_kind;

/* ---------------------------------------------------------------- declared parameters */
typedef enum mf_type {
    MF_TYPE_INT,
    MF_TYPE_FLOAT,
    MF_TYPE_BOOL,
    MF_TYPE_STRING,
    MF_TYPE_ENUM,        /* one of `choices`                                    */
    MF_TYPE_INT_LIST,
    MF_TYPE_FLOAT_LIST,
    MF_TYPE_STRING_LIST,
    MF_TYPE_MAP,         /* a subtree checked elsewhere (e.g. a plugin's section) */
    MF_TYPE_COUNT
} mf_type;

#define MF_PARAM_REQUIRED 0x1u /* no default: the key must be given            */
#define MF_PARAM_MIN 0x2u      /* numbers (and list elements) must be >= min    */
#define MF_PARAM_MAX 0x4u      /* numbers (and list elements) must be <= max    */
/* A file or folder (a string or list of strings), relative to the experiment file: a run
 * folder's config.yaml saves it absolute, so the run repeats from anywhere. Parameters
 * named path, file or dir (or ending _path, _file, _dir) are taken as paths without it. */
#define MF_PARAM_PATH 0x8u

typedef struct mf_param_spec {
    const char *name;
    mf_type type;
    const char *default_yaml; /* default as YAML text ("64", "[64, 64]", "relu"); NULL: none */
    unsigned flags;           /* MF_PARAM_*                                      */
    double min, max;
    const char *choices;      /* MF_TYPE_ENUM: "relu|tanh|sigmoid"               */
    const char *doc;          /* one sentence for `mmfuse plugins --describe`    */
} mf_param_spec;
/* A spec table ends with an entry whose name is NULL: MF_PARAM_END. */
#define MF_PARAM_END {NULL, MF_TYPE_INT, NULL, 0, 0, 0, NULL, NULL}

MF_API const char *mf_type_name(mf_type t); /* "an integer", "a list of integers", … */

/* ---------------------------------------------------------------- reading (plugins) */
/* A map's child, or NULL. `key` may be a dotted path ("early_stop.patience"). */
MF_API const mf_config *mf_config_get(const mf_config *map, const char *key);
MF_API int mf_config_has(const mf_config *map, const char *key);

/* Typed getters: 0 on success; -1 with "file:line:col: path: expected …, got …" in err.
 * A missing key is an error naming the map's mark and the key. */
MF_API int mf_config_int(const mf_config *map, const char *key, int64_t *out, mf_error *err);
MF_API int mf_config_float(const mf_config *map, const char *key, double *out, mf_error *err);
MF_API int mf_config_bool(const mf_config *map, const char *key, int *out, mf_error *err);
/* The string stays valid as long as the tree. */
MF_API int mf_config_string(const mf_config *map, const char *key, const char **out,
                            mf_error *err);
/* Index of the value in the '|'-separated choices. */
MF_API int mf_config_enum(const mf_config *map, const char *key, const char *choices, int *out,
                          mf_error *err);
/* Up to `cap` elements into out; *n gets the list's length (an error when longer than cap). */
MF_API int mf_config_int_list(const mf_config *map, const char *key, int64_t *out, int cap,
                              int *n, mf_error *err);
MF_API int mf_config_float_list(const mf_config *map, const char *key, double *out, int cap,
                                int *n, mf_error *err);
/* Strings (valid as long as the tree); any scalar is a string, a nested list or map is not. */
MF_API int mf_config_string_list(const mf_config *map, const char *key, const char **out,
                                 int cap, int *n, mf_error *err);

/* ---------------------------------------------------------------- nodes */
MF_API mf_config_kind mf_config_node_kind(const mf_config *n);
MF_API const char *mf_config_scalar(const mf_config *n);     /* NULL unless a scalar */
MF_API int mf_config_length(const mf_config *n);             /* list items or map entries */
MF_API const mf_config *mf_config_at(const mf_config *n, int i);  /* item / entry value */
MF_API const char *mf_config_key_at(const mf_config *n, int i);   /* map entry key */
MF_API const char *mf_config_path(const mf_config *n);        /* "" for the root */
/* A scalar written in quotes ("1" is the string 1), and a scalar YAML reads as null. */
MF_API int mf_config_is_quoted(const mf_config *n);
MF_API int mf_config_is_null(const mf_config *n);
MF_API const char *mf_config_file(const mf_config *n);
MF_API int mf_config_line(const mf_config *n);
MF_API int mf_config_column(const mf_config *n);
/* Append "file:line:col: path: <message>" for node n. */
MF_API void mf_config_error(mf_error *err, const mf_config *n, const char *fmt, ...)
    MF_PRINTF(3, 4);

/* ---------------------------------------------------------------- host side */
/* Parse a YAML file whose root must be a map. Follows a top-level `include:` (files merged
 * in order, this file last; paths relative to the including file) and expands
 * ${env:NAME} / ${env:NAME,default} in values. Errors: "file:line:col: message". */
MF_API mf_config *mf_config_load(const char *path, mf_error *err);
/* Parse text; `name` stands for the file in marks. */
MF_API mf_config *mf_config_parse(const char *text, size_t len, const char *name, mf_error *err);
MF_API void mf_config_free(mf_config *root);
/* A deep copy (marks and paths kept), freed with mf_config_free. */
MF_API mf_config *mf_config_copy(const mf_config *n);
/* Apply "key.path=value" (value parsed as a YAML scalar or flow list); creates missing keys. */
MF_API int mf_config_override(mf_config *root, const char *assignment, mf_error *err);
/* Check a map against specs (unknown keys with "did you mean", missing required keys, types,
 * ranges, enums) and fill in defaults. `extra_keys` (NULL-terminated, may be NULL) are also
 * allowed and left unchecked. Appends one line per problem to err; returns the number. */
MF_API int mf_config_check(mf_config *map, const mf_param_spec *specs,
                           const char *const *extra_keys, mf_error *err);
/* Write the tree as YAML (with defaults filled in, it is a complete experiment file). */
MF_API int mf_config_write(const mf_config *root, const char *path, mf_error *err);
/* The closest of `candidates` (NULL-terminated) to `word`, if near enough to suggest; or NULL. */
MF_API const char *mf_did_you_mean(const char *word, const char *const *candidates);
/* " (did you mean 'x'?)" for that candidate, or "": to append to a message. The text lives
 * until the thread's next call. */
MF_API const char *mf_suggestion(const char *word, const char *const *candidates);

#ifdef __cplusplus
}
#endif
#endif
