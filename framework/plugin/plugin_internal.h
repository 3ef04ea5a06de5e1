/* Private to the plugin layer (and, for the phase marks, to the layers above it). */
#ifndef MF_PLUGIN_INTERNAL_H
#define MF_PLUGIN_INTERNAL_H
#include <stddef.h>
#include <sys/types.h>

/* A vtable member is present when the vtable's declared size covers it and it is set:
 * how a newer host reads an older plugin's shorter vtable. */
#define MFI_HAS_MEMBER(ops, type, member)                                                   \
    ((ops)->struct_size >= offsetof(type, member) + sizeof((ops)->member) && (ops)->member)

/* ---------------------------------------------------------------- guard.c */
/* The plugin code running on this thread: name, file and phase ("loading", "build",
 * "forward", "backward", "destroy", "metrics", "open", "read", "close"). A crash signal or
 * an exit() while a phase is marked is reported naming them (exit then gives status 1).
 * enter returns the outer mark, which leave restores: marks nest. The strings must outlive
 * the mark. */
typedef struct mfi_phase {
    const char *name, *file, *phase;
} mfi_phase;
mfi_phase mfi_plugin_phase_enter(const char *name, const char *file, const char *phase);
void mfi_plugin_phase_leave(mfi_phase outer);
/* The file a loaded descriptor came from (recorded by the registry when it loads one). */
void mfi_plugin_note_file(const void *plugin, const char *file);
const char *mfi_plugin_file(const void *plugin);
/* "SIGSEGV", "SIGABRT", … (static strings, async-signal-safe). */
const char *mfi_signal_name(int sig);

/* ---------------------------------------------------------------- isolate.c */
/* Run fn(arg, fd) in a forked child that writes its answer on fd, with a time limit in
 * seconds. The parent receives every byte written through on_data(user, bytes, n) as it
 * arrives. Returns 0 when the child ended with _exit(0) after its answer; otherwise -1 and
 * `what` says what happened: "crashed with SIGSEGV", "called exit(3)", "ended with status
 * 3", "timed out after 10 s", or why the child could not start. fn must end with
 * mfi_isolated_done(fd), which never returns. */
typedef void (*mfi_isolated_fn)(void *arg, int fd);
int mfi_isolate(mfi_isolated_fn fn, void *arg, double timeout_s,
                void (*on_data)(void *user, const char *bytes, size_t n), void *user,
                char *what, size_t what_size);
void mfi_isolated_done(int fd) __attribute__((noreturn));
/* All n bytes to fd, retrying interrupted and short writes (async-signal-safe). */
void mfi_write_all(int fd, const void *data, size_t n);
/* A time limit from the environment variable `env` (seconds > 0), else `fallback`. */
double mfi_timeout_from_env(const char *env, double fallback);

/* ---------------------------------------------------------------- trust.c */
/* Whether plugin code may be loaded from `path` (a folder: it and every folder above it; a
 * file: it and the folders above it). 0 when safe; else -1 with one sentence in why,
 * starting with the path at fault (no "path: " prefix for folders given as `dir`). */
int mfi_trust_dir(const char *dir, char *why, size_t size);
int mfi_trust_file(const char *file, int check_folders, char *why, size_t size);

#endif
