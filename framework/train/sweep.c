/* mmfuse sweep: run an experiment's `sweep:` grid, one process per point, and summarise it.
 *
 *   <runs>/<name>/sweep/            the sweep's folder (stable, so a re-run resumes)
 *       sweep.json                  the resolved grid: keys, values, points, their folders
 *       <point>/                    a run folder (config.yaml, metrics.csv, result.json)
 *           point.yaml              what the point was asked to run (to spot edited files)
 *           log.txt                 the point's stdout and stderr
 *       summary.md, summary.csv     mean ± std over seeds per configuration, ranked on val
 *
 * Points run as separate processes (`mmfuse run FILE -q --run-dir DIR -o …`, sweep_procs.c):
 * a crash or a divergence stays in its point, memory is returned, and each point is exactly
 * what `mmfuse run` would do by hand. Under MPI the ranks run them (sweep_ranks.c).
 *
 * A sweep never leaves its points behind: SIGINT, SIGTERM or SIGHUP stops the running points
 * and waits for them; a SIGKILL'ed sweep's points get SIGTERM from the kernel
 * (PR_SET_PDEATHSIG). Each point inherits the sweep's lock, so a second sweep of the same
 * folder cannot start beside them: it waits for a dead sweep's points to stop. This file:
 * the grid's validation, sweep.json, the lock, which points are finished, the summary.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <mmfuse/host.h>

/* mfi_config_copy, and mfi_config_is_quoted so that "1" stays a string and 1 a number when
 * a value travels as override text */
#include "experiment_internal.h"
#include "rundir.h"
#include "sweep_internal.h"
#include "../core/text.h"


#define MAX_BAD_REPORTED 10

/* The first line of a message. */
static void first_line(const char *msg, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* Every point checked as `mmfuse validate` would, before anything runs. A reason shared by
 * several points (one bad value crossed with every seed) is said once, with their numbers. */
static int validate_points(sweep *sw, mf_error *err)
{
    struct {
        char line[1024];
        int first;
        mfi_text also;
    } reason[MAX_BAD_REPORTED];
    int n_reasons = 0, bad = 0, unreported = 0;
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        int n;
        const char **o = mfi_sweep_point_overrides(sw, p, &n);
        if (!o) {
            mf_error_set(err, "out of memory");
            bad++;
            break;
        }
        mf_run_options ro = {.struct_size = sizeof ro, .n_overrides = n, .overrides = o,
                             .log = sw->log, .quiet = 1, .no_save = 1, .validate_only = 1};
        mf_error perr;
        mf_error_clear(&perr);
        int status = mfi_experiment_run_on(&MFI_COMM_SELF, sw->path, &ro, NULL, &perr);
        free(o);
        if (status == MF_EXIT_OK)
            continue;
        bad++;
        char line[1024];
        first_line(perr.msg[0] ? perr.msg : "invalid (no reason given)", line, sizeof line);
        int r = 0;
        while (r < n_reasons && strcmp(reason[r].line, line) != 0)
            r++;
        if (r < n_reasons) {
            mfi_text_printf(&reason[r].also, "%s%d", reason[r].also.len ? ", " : "", i + 1);
        } else if (n_reasons < MAX_BAD_REPORTED) {
            snprintf(reason[n_reasons].line, sizeof reason[n_reasons].line, "%s", line);
            reason[n_reasons].first = i;
            memset(&reason[n_reasons].also, 0, sizeof reason[n_reasons].also);
            n_reasons++;
        } else {
            unreported++;
        }
    }
    for (int r = 0; r < n_reasons; r++) {
        mf_error_set(err, "point %d (%s): %s", reason[r].first + 1,
                     sw->points[reason[r].first].label, reason[r].line);
        if (reason[r].also.len && !reason[r].also.oom)
            mf_error_set(err, "  the same for point%s %s",
                         strchr(reason[r].also.s, ',') ? "s" : "", reason[r].also.s);
        free(reason[r].also.s);
    }
    if (unreported)
        mf_error_set(err, "… and %d more bad point%s", unreported, unreported == 1 ? "" : "s");
    if (bad)
        mf_error_set(err, "%s: %d of %d points are bad; nothing was run", sw->path, bad,
                     sw->n_points);
    return bad ? -1 : 0;
}

/* ---------------------------------------------------------------- files */
/* The point's experiment as YAML (without defaults): what it was asked to run. */
static char *point_yaml(const sweep *sw, const sweep_point *p, const char *file, int keep)
{
    mf_config *c = mf_config_copy(sw->cfg);
    int ok = c != NULL;
    ok = ok && mf_config_override(c, "sweep={}", NULL) == 0;
    for (int k = 0; ok && k < p->n_assign; k++)
        ok = mf_config_override(c, p->assign[k], NULL) == 0;
    ok = ok && mf_config_write(c, file, NULL) == 0;
    mf_config_free(c);
    char *text = ok ? mfi_text_read_file(file) : NULL;
    if (!keep)
        unlink(file);
    return text;
}

static int write_sweep_json(const sweep *sw, mf_error *err)
{
    json_t *j = json_object(), *keys = json_array(), *points = json_array(),
           *global = json_array();
    for (int k = 0; k < sw->n_keys; k++) {
        json_t *values = json_array();
        for (int v = 0; v < sw->keys[k].n; v++)
            json_array_append_new(values, json_string(sw->keys[k].text[v]));
        json_array_append_new(keys, json_pack("{s:s, s:o}", "key", sw->keys[k].path, "values",
                                              values));
    }
    for (int i = 0; i < sw->opts->n_overrides; i++)
        json_array_append_new(global, json_string(sw->opts->overrides[i]));
    for (int i = 0; i < sw->n_points; i++) {
        const sweep_point *p = &sw->points[i];
        json_t *o = json_array(), *values = json_array();
        for (int k = 0; k < p->n_assign; k++)
            json_array_append_new(o, json_string(p->assign[k]));
        for (int k = 0; k < sw->n_keys; k++)
            json_array_append_new(values, json_string(sw->keys[k].text[p->choice[k]]));
        json_array_append_new(points, json_pack("{s:i, s:s, s:i, s:o, s:o}", "point", i + 1,
                                                "folder", p->name, "configuration",
                                                p->config + 1, "values", values, "overrides", o));
    }
    json_object_set_new(j, "file", json_string(sw->path));
    json_object_set_new(j, "overrides", global);
    json_object_set_new(j, "keys", keys);
    json_object_set_new(j, "points", points);
    json_object_set_new(j, "mmfuse", json_string(MF_VERSION_STRING));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) {
        mf_error_set(err, "out of memory for sweep.json");
        return -1;
    }
    char path[FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/sweep.json", sw->dir);
    size_t len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the final newline */
    int rc = mf_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

int mfi_sweep_point_prepare(const sweep *sw, sweep_point *p, mf_error *err)
{
    char path[FILE_PATH_MAX];
    if (mf_make_dirs(p->dir, err))
        return -1;
    /* a stale result must not outlive a run that dies before writing its own */
    snprintf(path, sizeof path, "%s/result.json", p->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/point.yaml", p->dir);
    char *spec = point_yaml(sw, p, path, 1);
    if (!spec) {
        mf_error_set(err, "cannot write '%s'", path);
        return -1;
    }
    free(spec);
    return 0;
}

static void last_log_line(const sweep_point *p, char *out, size_t size)
{
    char path[FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/log.txt", p->dir);
    char *text = mfi_text_read_file(path);
    snprintf(out, size, "(its log is empty)");
    if (!text)
        return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    if (len) {
        char *start = strrchr(text, '\n');
        snprintf(out, size, "%s", start ? start + 1 : text);
    }
    free(text);
}

void mfi_sweep_point_finished(sweep *sw, sweep_point *p, int wstatus, int done_so_far, int to_run,
                              mf_error *err)
{
    int idx = (int)(p - sw->points) + 1;
    char why[1024] = "", last[700];
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        int done = mfi_sweep_read_result(sw, p);
        if (done < 0)
            snprintf(why, sizeof why, "finished, but reading its result.json ran out of memory");
        else if (!done)
            snprintf(why, sizeof why, "finished but left no result.json saying done");
    } else {
        last_log_line(p, last, sizeof last);
        if (WIFEXITED(wstatus))
            snprintf(why, sizeof why, "failed with exit status %d: %s", WEXITSTATUS(wstatus), last);
        else
            snprintf(why, sizeof why, "was killed by signal %d: %s",
                     WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0, last);
    }
    p->state = why[0] ? POINT_FAILED : POINT_DONE;
    if (why[0]) {
        fprintf(sw->log, "[%d/%d] point %d (%s) %s\n", done_so_far, to_run, idx, p->label, why);
        mf_error_set(err, "point %d (%s) %s", idx, p->label, why);
    } else {
        const char *m = mfi_sweep_metric_label();
        fprintf(sw->log, "[%d/%d] point %d (%s) done: val %s %.4f, test %s %.4f (%.2f s)\n",
                done_so_far, to_run, idx, p->label, m, p->val, m, p->test, p->seconds);
    }
    fflush(sw->log);
}

static int take_lock(sweep *sw, mf_error *err)
{
    char lock_path[FILE_PATH_MAX];
    snprintf(lock_path, sizeof lock_path, "%s/.lock", sw->dir);
    sw->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (sw->lock_fd < 0) {
        mf_error_set(err, "cannot open '%s': %s", lock_path, strerror(errno));
        return -1;
    }
    for (int waited = 0; flock(sw->lock_fd, LOCK_EX | LOCK_NB) != 0; waited++) {
        int busy = errno == EWOULDBLOCK;
        char text[32] = "";
        ssize_t n = pread(sw->lock_fd, text, sizeof text - 1, 0);
        long holder = n > 0 ? strtol(text, NULL, 10) : 0;
        if (!busy || (holder > 0 && kill((pid_t)holder, 0) == 0) || waited == 600) {
            mf_error_set(err, "%s: another mmfuse sweep%s is running in '%s'", sw->path,
                         waited == 600 ? " (or the points of one)" : "", sw->dir);
            return 1;
        }
        if (waited == 0)
            fprintf(sw->log, "waiting for the points of an earlier sweep in %s to stop\n", sw->dir);
        fflush(sw->log);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char text[32];
    int len = snprintf(text, sizeof text, "%ld\n", (long)sw->self);
    if (ftruncate(sw->lock_fd, 0) != 0 || pwrite(sw->lock_fd, text, (size_t)len, 0) != len) {
        mf_error_set(err, "cannot write '%s': %s", lock_path, strerror(errno));
        return -1;
    }
    return 0;
}

int mfi_sweep_open(sweep *sw, int *status, mf_error *err)
{
    *status = MF_EXIT_FAILED;
    if (mf_make_dirs(sw->dir, err))
        return -1;
    /* two sweeps of one grid at once would run its points twice over each other */
    int locked = take_lock(sw, err);
    if (locked) {
        *status = locked > 0 ? MF_EXIT_BAD_INPUT : MF_EXIT_FAILED;
        return -1;
    }
    if (write_sweep_json(sw, err))
        return -1;
    /* resume: a point already done with the same settings is kept */
    int skipped = 0, changed = 0;
    char scratch[FILE_PATH_MAX];
    snprintf(scratch, sizeof scratch, "%s/.point-check.yaml", sw->dir);
    for (int i = 0; i < sw->n_points; i++) {
        sweep_point *p = &sw->points[i];
        int done = mfi_sweep_read_result(sw, p);
        if (done < 0) {
            mf_error_set(err, "out of memory reading the points' results");
            return -1;
        }
        if (!done)
            continue;
        char file[FILE_PATH_MAX];
        snprintf(file, sizeof file, "%s/point.yaml", p->dir);
        char *was = mfi_text_read_file(file), *now = point_yaml(sw, p, scratch, 0);
        if (was && now && strcmp(was, now) == 0) {
            p->state = POINT_SKIPPED;
            skipped++;
        } else {
            changed++;
        }
        free(was);
        free(now);
    }
    if (skipped)
        fprintf(sw->log, "skipping %d finished point%s\n", skipped, skipped == 1 ? "" : "s");
    if (changed)
        fprintf(sw->log, "re-running %d finished point%s whose settings changed\n", changed,
                changed == 1 ? "" : "s");
    *status = MF_EXIT_OK;
    return sw->n_points - skipped;
}

int mfi_sweep_count_failed(const sweep *sw)
{
    int failed = 0;
    for (int i = 0; i < sw->n_points; i++)
        failed += sw->points[i].state == POINT_FAILED || sw->points[i].state == POINT_PENDING;
    return failed;
}

int mfi_sweep_finish(sweep *sw, const mf_error *failures, int run_rc, mf_error *err)
{
    const int failed = mfi_sweep_count_failed(sw);
    if (mfi_sweep_summarise(sw, err))
        return MF_EXIT_FAILED;
    if (failures->count)
        mf_error_set(err, "%s", failures->msg);
    if (run_rc)
        return MF_EXIT_FAILED;
    if (failed) {
        mf_error_set(err, "%s: %d of %d points failed (their logs: %s/*/log.txt)", sw->path,
                     failed, sw->n_points, sw->dir);
        return MF_EXIT_FAILED;
    }
    return MF_EXIT_OK;
}

int mf_sweep_run(const char *path, const mf_sweep_options *opts, mf_error *err)
{
    if (!path || !opts || !opts->exe || opts->struct_size < sizeof *opts) {
        mf_error_set(err, "mf_sweep_run: no file, options or executable given");
        return MF_EXIT_BAD_INPUT;
    }
    sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.path = path;
    sw.opts = opts;
    sw.log = opts->log ? opts->log : stdout;
    FILE *silent = mf_distributed_rank() > 0 ? fopen("/dev/null", "w") : NULL;
    if (silent) /* under MPI rank 0 tells the sweep; the others only their points' ends */
        sw.log = silent;
    int jobs = opts->jobs > 0 ? opts->jobs : 1;
    int status = MF_EXIT_BAD_INPUT;
    sw.lock_fd = -1;
    sw.self = getpid();

    if (access(opts->exe, X_OK) != 0) {
        mf_error_set(err, "cannot execute '%s': %s", opts->exe, strerror(errno));
        goto done;
    }
    if (mfi_sweep_load_grid(&sw, err))
        goto done;
    /* the sweep's folder: <runs>/<name>/sweep (if they are not strings, validation says so) */
    const char *runs = "runs", *name = "experiment";
    if (mf_config_has(sw.cfg, "runs") && mf_config_string(sw.cfg, "runs", &runs, NULL))
        runs = "runs";
    if (mf_config_has(sw.cfg, "name") && mf_config_string(sw.cfg, "name", &name, NULL))
        name = "experiment";
    snprintf(sw.dir, sizeof sw.dir, "%s/%s/sweep", runs, name);
    for (int i = 0; i < sw.n_points; i++)
        snprintf(sw.points[i].dir, sizeof sw.points[i].dir, "%s/%s", sw.dir, sw.points[i].name);
    /* said before validating: with real data, checking every point takes a moment */
    fprintf(sw.log, "%s: %d point%s (%d configuration%s × %d seed%s) in %s\n", path, sw.n_points,
            sw.n_points == 1 ? "" : "s", sw.n_configs, sw.n_configs == 1 ? "" : "s", sw.n_seeds,
            sw.n_seeds == 1 ? "" : "s", sw.dir);
    fflush(sw.log);
    mfi_comm world;
    if (mfi_dist_world(&world, err) || validate_points(&sw, err))
        goto done;
    if (opts->struct_size >= offsetof(mf_sweep_options, validate_only) + sizeof opts->validate_only &&
        opts->validate_only) {
        status = MF_EXIT_OK;
        goto done;
    }

    if (world.size > 1) {
        status = mfi_sweep_run_ranks(&sw, &world, err);
        goto done;
    }
    status = mfi_sweep_run_processes(&sw, jobs, err);
done:
    if (silent)
        fclose(silent);
    if (sw.lock_fd >= 0)
        close(sw.lock_fd); /* and the lock with it (the points' copies are closed) */
    mfi_sweep_free(&sw);
    return status;
}

