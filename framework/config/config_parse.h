/* config_parse.c's builder, shared with config_parse_errors.c (positions, text checks and
 * libyaml's errors in the user's terms). Private to the config layer. */
#ifndef MF_CONFIG_PARSE_H
#define MF_CONFIG_PARSE_H

#include "config_internal.h"

#define STD_TAG_PREFIX "tag:yaml.org,2002:"

typedef struct frame {
    mf_config *node;
    char *pending_key; /* maps: the key just read, waiting for its value */
    mfi_config_mark pending_key_mark;
    int anchor; /* index in builder.anchors completed when this node ends, or -1 */
    /* maps: open-addressing table of entry index + 1 (0: free), for duplicate keys in
     * constant time — a linear scan would make a file of many keys quadratic */
    int *key_slots;
    size_t slot_count;
} frame;

typedef struct anchor {
    char *name;
    mf_config *node;
    int complete; /* an alias to an unfinished node would make a cycle */
} anchor;

typedef struct builder {
    const char *text;
    size_t len;
    const mfi_config_source *source;
    mfi_config_problem *problem;
    frame stack[MFI_CONFIG_MAX_DEPTH];
    int depth;
    anchor *anchors;
    int anchor_count, anchor_capacity;
    long node_count;
    int documents;
    mf_config *root;
} builder;

/* config_parse_errors.c */
/* A libyaml mark as the user's file:line:col (a value given by -o counts from its '='). */
mfi_config_mark mfi_parse_user_mark(const builder *b, yaml_mark_t m);
/* The first problem met, at mark (NULL: the file as a whole), under the key path. */
void mfi_parse_fail_at(builder *b, const mfi_config_mark *mark, const char *path,
                       const char *fmt, ...) MF_PRINTF(4, 5);
void mfi_parse_out_of_memory(builder *b);
/* The text is UTF-8 without control characters (else a located problem): 0 or -1. */
int mfi_parse_check_text(builder *b);
/* libyaml's error, said in the user's terms. */
void mfi_parse_report_error(builder *b, const yaml_parser_t *parser);

#endif
