#define _GNU_SOURCE /* on_exit */
/* Naming the plugin that ends the process. Around every call into plugin code the instance
 * layer marks the plugin, its file and the phase (thread-local: a reader runs in the
 * loader's thread). A crash signal in a marked phase writes one line naming them and then
 * takes its usual course (the default action, or the handler that was there before); an
 * exit() in a marked phase says so and ends the process with status 1, since the plugin's
 * exit status (often 0) is not the run's. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/core_internal.h"
#include "plugin_internal.h"

/* initial-exec: reading it in a signal handler must not allocate (global-dynamic TLS may) */
static __thread mfi_phase current __attribute__((tls_model("initial-exec")));

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FATAL (int)(sizeof fatal / sizeof fatal[0])
static struct sigaction previous[N_FATAL];

const char *mfi_signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    }
    return "a signal";
}

/* Async-signal-safe: only write(2) on a buffer built by hand. */
static void put(char *buf, size_t *n, size_t size, const char *s)
{
    while (s && *s && *n + 1 < size)
        buf[(*n)++] = *s++;
}

static void say(const char *what, const char *detail, const char *join)
{
    char buf[1200];
    size_t n = 0;
    put(buf, &n, sizeof buf, "mmfuse: plugin '");
    put(buf, &n, sizeof buf, current.name ? current.name : "?");
    put(buf, &n, sizeof buf, "' (");
    put(buf, &n, sizeof buf, current.file ? current.file : "?");
    put(buf, &n, sizeof buf, ") ");
    put(buf, &n, sizeof buf, what);
    put(buf, &n, sizeof buf, detail);
    put(buf, &n, sizeof buf, join);
    put(buf, &n, sizeof buf, current.phase);
    buf[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, buf, n);
    (void)ignored;
}

/* A plugin's custom op crashing in the graph's pass (no module call is marked there). */
static void say_custom(const char *signal_name)
{
    char buf[1200];
    size_t n = 0;
    put(buf, &n, sizeof buf, "mmfuse: custom op '");
    put(buf, &n, sizeof buf, mfi_custom_now.op);
    put(buf, &n, sizeof buf, "' (module ");
    put(buf, &n, sizeof buf, mfi_custom_now.scope && *mfi_custom_now.scope ? mfi_custom_now.scope : "?");
    put(buf, &n, sizeof buf, ") crashed with ");
    put(buf, &n, sizeof buf, signal_name);
    put(buf, &n, sizeof buf, " in ");
    put(buf, &n, sizeof buf, mfi_custom_now.pass);
    buf[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, buf, n);
    (void)ignored;
}

static void on_fatal(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    int i = 0;
    while (i < N_FATAL && fatal[i] != sig)
        i++;
    if (current.phase) {
        say("crashed with ", mfi_signal_name(sig),
            strcmp(current.phase, "loading") == 0 ? " while " : " in ");
        current.phase = NULL; /* said once */
    } else if (mfi_custom_now.op) {
        say_custom(mfi_signal_name(sig));
        mfi_custom_now.op = NULL;
    }
    /* hand the signal on: a fault re-executes and meets the previous action; a signal that
     * was sent (raise, abort, kill) is raised again */
    sigaction(sig, i < N_FATAL ? &previous[i] : NULL, NULL);
    if (!info || info->si_code <= 0 || sig == SIGABRT)
        raise(sig);
}

static void on_exit_hook(int status, void *arg)
{
    (void)arg;
    if (!current.phase)
        return;
    char code[16];
    int n = snprintf(code, sizeof code, "(%d)", status);
    (void)n;
    say("called exit", code, strcmp(current.phase, "loading") == 0 ? " while " : " during ");
    fflush(stdout);
    _exit(1);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_FATAL; i++)
        sigaction(fatal[i], &sa, &previous[i]);
    on_exit(on_exit_hook, NULL);
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;

mfi_phase mfi_plugin_phase_enter(const char *name, const char *file, const char *phase)
{
    pthread_once(&installed, install);
    mfi_phase outer = current;
    current.name = name;
    current.file = file;
    current.phase = phase;
    return outer;
}

void mfi_plugin_phase_leave(mfi_phase outer) { current = outer; }

/* ---------------------------------------------------------------- descriptor → file */
/* Which file a descriptor came from, for the instance layer's marks. Entries are never
 * removed (a few dozen a process); a descriptor at an address another file had is updated. */
static struct origin {
    const void *plugin;
    char *file;
} *origins;
static int n_origins, cap_origins;
static pthread_mutex_t origins_lock = PTHREAD_MUTEX_INITIALIZER;
/* replaced file names: a mark on another thread may still point at one, so they are kept
 * (reachable, not leaked) for the process's life; a handful at most */
static char **retired;
static int n_retired;

void mfi_plugin_note_file(const void *plugin, const char *file)
{
    pthread_mutex_lock(&origins_lock);
    int i = 0;
    while (i < n_origins && origins[i].plugin != plugin)
        i++;
    if (i < n_origins && strcmp(origins[i].file, file) != 0) {
        char *copy = strdup(file);
        char **kept = copy ? realloc(retired, (size_t)(n_retired + 1) * sizeof *kept) : NULL;
        if (kept) {
            retired = kept;
            retired[n_retired++] = origins[i].file;
            origins[i].file = copy;
        } else {
            free(copy); /* keep the old name: right enough for a message */
        }
    } else if (i == n_origins) {
        if (n_origins == cap_origins) {
            int ncap = cap_origins ? 2 * cap_origins : 32;
            struct origin *grown = realloc(origins, (size_t)ncap * sizeof *grown);
            if (grown) {
                origins = grown;
                cap_origins = ncap;
            }
        }
        if (n_origins < cap_origins && (origins[n_origins].file = strdup(file)))
            origins[n_origins++].plugin = plugin;
    }
    pthread_mutex_unlock(&origins_lock);
}

const char *mfi_plugin_file(const void *plugin)
{
    const char *file = NULL;
    pthread_mutex_lock(&origins_lock);
    for (int i = 0; i < n_origins && !file; i++)
        if (origins[i].plugin == plugin)
            file = origins[i].file;
    pthread_mutex_unlock(&origins_lock);
    return file ? file : "a file not loaded by a registry";
}
