/* mmfuse sweep's points as processes of their own (without MPI): `mmfuse run FILE -q
 * --run-dir POINT -o …` each, `jobs` at a time, stopped with the sweep. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sweep_internal.h"

extern char **environ;

/* ---------------------------------------------------------------- processes */
/* The environment of every point: ours, with MMFUSE_THREADS dividing the cores among the
 * jobs unless the user chose it. Built before fork: the child only execs. */
static char **child_env(int jobs)
{
    int n = 0;
    while (environ[n])
        n++;
    char **env = calloc((size_t)n + 2, sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, (size_t)n * sizeof *env);
    const char *user = getenv("MMFUSE_THREADS");
    if (jobs > 1 && !(user && *user)) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        long per = cores / jobs > 1 ? cores / jobs : 1;
        static char threads[64];
        snprintf(threads, sizeof threads, "MMFUSE_THREADS=%ld", per);
        int m = 0;
        for (int i = 0; i < n; i++) /* drop an empty MMFUSE_THREADS= */
            if (strncmp(env[i], "MMFUSE_THREADS=", 15) != 0)
                env[m++] = env[i];
        env[m++] = threads;
        env[m] = NULL;
    }
    return env;
}

static int launch(sweep *sw, sweep_point *p, mf_error *err)
{
    char path[FILE_PATH_MAX];
    if (mfi_sweep_point_prepare(sw, p, err))
        return -1;
    int n;
    const char **o = mfi_sweep_point_overrides(sw, p, &n);
    const char **argv = o ? calloc((size_t)(2 * n + 8), sizeof *argv) : NULL;
    if (!argv) {
        free(o);
        mf_error_set(err, "out of memory");
        return -1;
    }
    int a = 0;
    argv[a++] = sw->opts->exe;
    argv[a++] = "run";
    argv[a++] = sw->path;
    argv[a++] = "-q";
    argv[a++] = "--run-dir";
    argv[a++] = p->dir;
    for (int i = 0; i < n; i++) {
        argv[a++] = "-o";
        argv[a++] = o[i];
    }
    argv[a] = NULL;
    snprintf(path, sizeof path, "%s/log.txt", p->dir);
    fflush(NULL); /* or buffered output would be written twice */
    pid_t pid = fork();
    if (pid == 0) {
        /* only async-signal-safe calls between fork and exec */
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the point stops when its sweep dies */
        if (getppid() != sw->self)
            _exit(127); /* the sweep died before the prctl */
        if (sw->lock_fd >= 0)
            fcntl(sw->lock_fd, F_SETFD, 0); /* the point holds the sweep's lock while it runs */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
        execve(sw->opts->exe, (char *const *)argv, sw->envp);
        static const char msg[] = "mmfuse sweep: cannot execute the mmfuse program\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    free(argv);
    free(o);
    if (pid < 0) {
        mf_error_set(err, "cannot start a process: %s", strerror(errno));
        return -1;
    }
    p->pid = pid;
    p->state = POINT_RUNNING;
    return 0;
}

/* The last non-empty line of the point's log, for the failure message. */
/* ---------------------------------------------------------------- stopping */
static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

/* SIGINT, SIGTERM and SIGHUP stop the sweep (on_stop) while its points run; old holds what
 * they were. */
static void catch_stops(int catch, struct sigaction old[3])
{
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], catch ? &sa : &old[i], catch ? &old[i] : NULL);
}

/* The sweep was told to stop: each running point gets SIGTERM and is waited for; it counts
 * as not run (a re-run of the sweep runs it again). Returns how many were stopped. */
static int stop_points(sweep *sw)
{
    int stopped = 0;
    for (int i = 0; i < sw->n_points; i++)
        if (sw->points[i].state == POINT_RUNNING)
            kill(sw->points[i].pid, SIGTERM);
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        if (p->state != POINT_RUNNING)
            continue;
        int st;
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
        }
        p->state = POINT_PENDING;
        stopped++;
    }
    return stopped;
}

/* Run the pending points, `jobs` at a time. Waits on our own children only (waitpid per
 * pid, polled), so an embedding program's other children are left alone. Returns -1 when
 * a point could not start, -2 when a signal stopped the sweep (*stopped: points stopped). */
static int run_points(sweep *sw, int jobs, int to_run, int *stopped, mf_error *err)
{
    int next = 0, running = 0, ended = 0, failed_to_start = 0;
    while (!stop_signal) {
        while (running < jobs && next < sw->n_points && !failed_to_start && !stop_signal) {
            sweep_point *p = &sw->points[next++];
            if (p->state != POINT_PENDING)
                continue;
            if (launch(sw, p, err)) {
                failed_to_start = 1; /* cannot fork or write: no use trying the rest */
                break;
            }
            running++;
        }
        if (!running)
            break;
        int reaped = 0;
        for (int i = 0; i < sw->n_points; i++) {
            sweep_point *p = &sw->points[i];
            if (p->state != POINT_RUNNING)
                continue;
            int st;
            pid_t r = waitpid(p->pid, &st, WNOHANG);
            if (r == p->pid || (r < 0 && errno == ECHILD)) {
                if (r < 0) /* reaped elsewhere (a SIGCHLD handler of the host): unknown */
                    st = 0;
                running--;
                reaped++;
                mfi_sweep_point_finished(sw, p, st, ++ended, to_run, err);
            }
        }
        if (!reaped) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (stop_signal) {
        *stopped = stop_points(sw);
        return -2;
    }
    return failed_to_start ? -1 : 0;
}

/* The sweep's lock, <dir>/.lock, holding the pid of the sweep that has it. Held by a live
 * sweep: refused (1). Held after its sweep died: only its points hold it, and they are being
 * stopped (PR_SET_PDEATHSIG): waited for, up to a minute. -1: it cannot be written. */
int mfi_sweep_run_processes(sweep *sw, int jobs, mf_error *err)
{
    int status;
    int to_run = mfi_sweep_open(sw, &status, err);
    if (to_run < 0)
        return status;
    if (jobs > to_run && to_run > 0)
        jobs = to_run; /* the cores go to the points there are */
    if (to_run)
        fprintf(sw->log, "running %d point%s, %d at a time\n", to_run, to_run == 1 ? "" : "s",
                jobs);
    fflush(sw->log);
    status = MF_EXIT_FAILED;
    if (!(sw->envp = child_env(jobs))) {
        mf_error_set(err, "out of memory");
        return status;
    }
    mf_error failures;
    mf_error_clear(&failures);
    struct sigaction old[3];
    stop_signal = 0;
    catch_stops(1, old);
    int stopped = 0, run_rc = run_points(sw, jobs, to_run, &stopped, &failures);
    catch_stops(0, old);
    if (run_rc == -2) {
        const int failed = mfi_sweep_count_failed(sw);
        if (mfi_sweep_summarise(sw, err))
            return status;
        if (failures.count)
            mf_error_set(err, "%s", failures.msg);
        mf_error_set(err, "%s: stopped by %s: %d running point%s stopped, %d not run; run the "
                     "sweep again to finish them (finished points are kept)", sw->path,
                     stop_signal == SIGINT ? "SIGINT" : stop_signal == SIGHUP ? "SIGHUP" : "SIGTERM",
                     stopped, stopped == 1 ? " was" : "s were", failed - stopped);
        return status;
    }
    return mfi_sweep_finish(sw, &failures, run_rc, err);
}
