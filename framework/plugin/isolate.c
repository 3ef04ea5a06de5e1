#define _GNU_SOURCE /* pipe2, on_exit */
/* Running untrusted plugin code in a forked child (GStreamer's plugin scanner does the
 * same): a constructor or a check that crashes, aborts, calls exit() or hangs takes only
 * the child down, and the parent says which of those happened. Two pipes: the answer, and
 * a control byte sequence — "D" once the answer is complete, "X" and the status when
 * exit() is called — so an exit(0) is not mistaken for a finished answer. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugin_internal.h"

static int control_fd = -1; /* the child's end of the control pipe */

void mfi_write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Registered in the child after the fork: it runs before every handler the parent had
 * (handlers run last registered first), so none of them runs in the child. */
static void child_exit(int status, void *arg)
{
    (void)arg;
    char msg[1 + sizeof(int)];
    msg[0] = 'X';
    memcpy(msg + 1, &status, sizeof status);
    mfi_write_all(control_fd, msg, sizeof msg);
    _exit(status & 0xff);
}

void mfi_isolated_done(int fd)
{
    (void)fd;
    mfi_write_all(control_fd, "D", 1);
    _exit(0);
}

double mfi_timeout_from_env(const char *env, double fallback)
{
    const char *v = getenv(env);
    char *end;
    double t = v ? strtod(v, &end) : 0;
    return v && *v && !*end && t > 0 ? t : fallback;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run_child(mfi_isolated_fn fn, void *arg, int data_fd, int ctl_fd)
{
    /* a crash is the parent's to report: the default action, no handler's message */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGPIPE};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    control_fd = ctl_fd;
    on_exit(child_exit, NULL);
    fn(arg, data_fd);
    mfi_isolated_done(data_fd);
}

/* Read both pipes until both close or the deadline passes. 1 if the deadline passed. */
static int collect(int data_fd, int ctl_fd, double deadline, char *ctl, size_t *n_ctl,
                   void (*on_data)(void *, const char *, size_t), void *user)
{
    struct pollfd fds[2] = {{data_fd, POLLIN, 0}, {ctl_fd, POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        double left = deadline - now();
        if (left <= 0)
            return 1;
        int r = poll(fds, 2, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return 0;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                fds[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                if (on_data)
                    on_data(user, buf, (size_t)got);
            } else {
                size_t room = 16 - *n_ctl, take = (size_t)got < room ? (size_t)got : room;
                memcpy(ctl + *n_ctl, buf, take);
                *n_ctl += take;
            }
        }
    }
    return 0;
}

/* Wait for the child until the deadline: 1 reaped (*status), 0 not by then, -1 the status
 * is gone (SIGCHLD ignored: the child reaped itself). */
static int reap(pid_t pid, double deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now() >= deadline)
            return 0;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int mfi_isolate(mfi_isolated_fn fn, void *arg, double timeout_s,
                void (*on_data)(void *user, const char *bytes, size_t n), void *user,
                char *what, size_t what_size)
{
    int data[2], ctl[2];
    if (pipe2(data, O_CLOEXEC))
        return snprintf(what, what_size, "could not be run apart: %s", strerror(errno)), -1;
    if (pipe2(ctl, O_CLOEXEC)) {
        close(data[0]);
        close(data[1]);
        return snprintf(what, what_size, "could not be run apart: %s", strerror(errno)), -1;
    }
    fflush(NULL); /* or the child would write the parent's buffered output again */
    pid_t pid = fork();
    if (pid == 0) {
        close(data[0]);
        close(ctl[0]);
        run_child(fn, arg, data[1], ctl[1]);
    }
    int fork_errno = errno;
    close(data[1]);
    close(ctl[1]);
    if (pid < 0) {
        close(data[0]);
        close(ctl[0]);
        snprintf(what, what_size, "could not be run apart: %s", strerror(fork_errno));
        return -1;
    }
    char marks[16];
    size_t n_marks = 0;
    double deadline = now() + timeout_s;
    int late = collect(data[0], ctl[0], deadline, marks, &n_marks, on_data, user);
    close(data[0]);
    close(ctl[0]);
    int status = 0, reaped = late ? 0 : reap(pid, deadline, &status);
    if (reaped == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(what, what_size, "timed out after %g s", timeout_s);
        return -1;
    }
    if (reaped < 0)
        reaped = 0;
    if (n_marks >= 1 + sizeof(int) && marks[0] == 'X') {
        int code;
        memcpy(&code, marks + 1, sizeof code);
        snprintf(what, what_size, "called exit(%d)", code);
        return -1;
    }
    if (reaped && WIFSIGNALED(status)) {
        snprintf(what, what_size, "crashed with %s", mfi_signal_name(WTERMSIG(status)));
        return -1;
    }
    if (n_marks >= 1 && marks[0] == 'D' && (!reaped || WEXITSTATUS(status) == 0))
        return 0;
    snprintf(what, what_size, "ended the process with status %d", WEXITSTATUS(status));
    return -1;
}
