/* Private to the plugin layer: scanning plugin files apart from the host (scan.c) and the
 * cache of scans (scan_cache.c). */
#ifndef MF_PLUGIN_SCAN_H
#define MF_PLUGIN_SCAN_H

#include <sys/stat.h>

#include <jansson.h>

#include <mmfuse/plugin.h>

/* A scan, as JSON (what the cache keeps):
 *   {"refused": "FILE: sentence"}           the whole file is refused
 *   {"items": [ITEM...]}                     one per descriptor of mf_plugin_list(), in order
 *   ITEM: {"refused": "FILE: sentence"} or {"kind": K, "name": …, "version": …, "license": …,
 *          "summary": …, "abi": [MAJOR, MINOR], "size": struct_size, "params": [SPEC...]}
 * Names repeated across files are the registry's to refuse. */

/* The scan of `path` (stat'ed as *st): from the cache when the file is unchanged since,
 * else in a child process. A new reference; never NULL. */
typedef struct mfi_scan_cache mfi_scan_cache;
json_t *mfi_scan_file(mfi_scan_cache *cache, const char *path, const struct stat *st);

/* The cache: $MMFUSE_REGISTRY_CACHE (empty: none), else $XDG_CACHE_HOME/mmfuse/, else
 * ~/.cache/mmfuse/, file registry-v1.json. An unusable cache is ignored. */
mfi_scan_cache *mfi_cache_open(void);
json_t *mfi_cache_lookup(mfi_scan_cache *c, const char *path, const struct stat *st);
void mfi_cache_store(mfi_scan_cache *c, const char *path, const struct stat *st, json_t *scan);
/* Written (atomically) only when something was stored. */
void mfi_cache_save(mfi_scan_cache *c);
void mfi_cache_free(mfi_scan_cache *c);

/* A scanned descriptor as the host would see it without loading the file: every field but
 * ops (NULL); strings point into item, params into *params (malloc'd, MF_PARAM_END-ended). */
int mfi_scan_descriptor(const json_t *item, mf_plugin *out, mf_param_spec **params);

#endif
