/* config_internal.h — the mf_config tree and the helpers shared by the config sources.
 *
 * Every node owns its strings (simple mallocs; mf_config_free frees a whole tree), so
 * subtrees can move between trees (defaults, overrides) without an owner to track.
 */
#ifndef MMFUSE_CONFIG_INTERNAL_H
#define MMFUSE_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <yaml.h>

#include "mmfuse/config.h"

/* Where something was written: file (or "-o key=value"), line and column from 1.
 * line 0 means "the file as a whole" (no line:col in messages). */
typedef struct mfi_config_mark {
    char *file;
    int line, column;
} mfi_config_mark;

typedef struct mfi_config_entry {
    char *key;                /* map entries only; NULL for list items          */
    mfi_config_mark key_mark; /* where the key was written (unknown-key errors) */
    mf_config *value;
} mfi_config_entry;

struct mf_config {
    mf_config_kind kind;
    char *text;                /* scalars: the text as written, unescaped         */
    yaml_scalar_style_t style; /* scalars: plain, quoted, literal…; kept for writing */
    mfi_config_entry *entries; /* list items or map entries, in file order        */
    int length, capacity;
    char *path; /* "model.encoders.nir.hidden[1]"; "" for the root */
    mfi_config_mark mark;
};

/* Longest scalar excerpt quoted in messages; longer text is cut with "…". */
#define MFI_CONFIG_EXCERPT 40
/* Nesting deeper than this is rejected at parse time (the tree code recurses). */
#define MFI_CONFIG_MAX_DEPTH 200
/* Aliases can multiply a small file into a huge tree; cap the node count. */
#define MFI_CONFIG_MAX_NODES 100000
/* Includes nested deeper than this are refused (a cycle is caught before, by file identity). */
#define MFI_CONFIG_MAX_INCLUDE_DEPTH 32
/* Files one experiment may include in all: a diamond of includes loads files repeatedly. */
#define MFI_CONFIG_MAX_INCLUDE_FILES 256

/* ---------------------------------------------------------------- tree (config_tree.c) */
mf_config *mfi_config_node_new(mf_config_kind kind, const mfi_config_mark *mark);
void mfi_config_node_free(mf_config *n);
/* Deep copy; the copy keeps the original marks and paths (call mfi_config_set_path). */
mf_config *mfi_config_copy(const mf_config *n);
/* Append value to a list (key NULL) or map; sets the value's subtree paths. -1: no memory. */
int mfi_config_append(mf_config *parent, const char *key, const mfi_config_mark *key_mark,
                      mf_config *value);
/* Give n and everything below it paths under `path`. -1: no memory. */
int mfi_config_set_path(mf_config *n, const char *path);
/* Give n and everything below it the same mark (defaults take their map's mark). */
int mfi_config_set_mark(mf_config *n, const mfi_config_mark *mark);
/* Index of the entry with this key (exactly key_len bytes) in a map, or -1. */
int mfi_config_find(const mf_config *map, const char *key, size_t key_len);
/* A plain scalar that YAML reads as null: empty, ~, null, Null, NULL. */
int mfi_config_is_null(const mf_config *n);
/* A scalar the user quoted (or wrote as a block scalar / tagged !!str): always a string. */
int mfi_config_is_quoted(const mf_config *n);
char *mfi_config_strdup(const char *s);
int mfi_config_mark_set(mfi_config_mark *dst, const char *file, int line, int column);

/* mf_error_set for config messages: control characters (from file names, keys, values)
 * are written \n or \xNN, so every message is one printable line. */
void mfi_config_set_error(mf_error *err, const char *fmt, ...) MF_PRINTF(2, 3);
/* The one error formatter: "FILE:LINE:COL: PATH: MESSAGE", leaving out "PATH: " when the
 * path is empty and ":LINE:COL" when line is 0. */
void mfi_config_report(mf_error *err, const mfi_config_mark *mark, const char *path,
                       const char *fmt, ...) MF_PRINTF(4, 5);
void mfi_config_vreport(mf_error *err, const mfi_config_mark *mark, const char *path,
                        const char *fmt, va_list ap) MF_PRINTF(4, 0);
/* What a value is, for "got …": "'fast'", "an empty value", "a list", "the quoted string \"64\"". */
void mfi_config_describe(const mf_config *n, char *buf, size_t size);
/* Text cut to MFI_CONFIG_EXCERPT characters with control characters escaped. */
void mfi_config_excerpt(const char *text, char *buf, size_t size);
/* For plain text that reads as "key:value" — a colon without the space after it that YAML
 * needs to start a value ("reader:hdf5", "a:{…}") — a hint saying so, else "". */
const char *mfi_config_colon_hint(const char *text, char *buf, size_t size);

/* ---------------------------------------------------------------- parsing (config_parse.c) */
typedef struct mfi_config_problem {
    int line, column; /* 0: no position */
    int empty;        /* the text held no document at all */
    char message[512];
} mfi_config_problem;

typedef struct mfi_config_source {
    const char *name;    /* file name used in marks                           */
    int column_offset;   /* added to columns on line 1 (override values)      */
    const char *path;    /* path of the root node ("" for files)              */
    int root_must_be_map;
} mfi_config_source;

/* The offset of the first byte YAML cannot hold (NUL, control characters but tab and line
 * ends, bytes that are not UTF-8), described in `what`; len when the text is clean. */
size_t mfi_config_bad_text(const char *text, size_t len, char *what, size_t size);
/* Parse YAML text into a tree. NULL with *problem filled on failure (or empty text). */
mf_config *mfi_config_build(const char *text, size_t len, const mfi_config_source *source,
                            mfi_config_problem *problem);
/* Parse one value (override or default text); empty text gives an empty plain scalar. */
mf_config *mfi_config_parse_value(const char *text, const mfi_config_source *source,
                                  mfi_config_problem *problem);

/* ---------------------------------------------------------------- environment (config_env.c) */
/* Expand "${env:NAME}" and "${env:NAME,default}" in the text of every scalar value under n
 * ("$${" stands for a literal "${"). Keys are left alone. Plain scalars lose the spaces the
 * expansion left at either end, so they are typed as if the result had been written there.
 * One line per problem in err; returns the number of problems. */
int mfi_config_interpolate(mf_config *n, mf_error *err);

/* ---------------------------------------------------------------- values (config_value.c) */
typedef union mfi_config_value {
    int64_t i;
    double f;
    int b;
    const char *s;
    int choice;
} mfi_config_value;

/* Read scalar node n as a scalar type (INT, FLOAT, BOOL, STRING, ENUM with `choices`).
 * On failure append "PATH: expected …, got …" for n (err may be NULL) and return -1.
 * The single place where scalar text gets its type, for the checker and the getters. */
int mfi_config_read_scalar(const mf_config *n, mf_type type, const char *choices,
                           mfi_config_value *out, mf_error *err);
/* Check n against spec: type, list elements, range, choices. One line per problem;
 * returns the number of problems. */
int mfi_config_validate(const mf_config *n, const mf_param_spec *spec, mf_error *err);
/* Element type of a list type (INT for INT_LIST…), or the type itself. */
mf_type mfi_config_element_type(mf_type t);

#endif
