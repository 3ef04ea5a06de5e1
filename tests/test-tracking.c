/* The run folder's own side of tracking and resume (framework/train/rundir.c, compiled in):
 * events.jsonl lines, whole under concurrent writers; reopening a run at a step (metrics.csv
 * and events.jsonl cut back atomically, a resume event); the refusals. The end-to-end side
 * (manifest, reproducible config.yaml, plugin warnings, runs, compare) is test-tracking.sh. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mf_check.h"
#include "assemble.h"
#include "rundir.h"
#include "tmpdir.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Lines of a file, each parsed; returns how many, stores up to 16. */
static int json_lines(const char *path, json_t **out)
{
    char *text = slurp(path);
    int n = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, n++) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, &je);
        ck_assert_msg(json_is_object(j), "line %d of %s is not a JSON object: %s", n + 1, path,
                      je.text);
        if (n < 16)
            out[n] = j;
        else
            json_decref(j);
    }
    return n;
}

/* issue 13: a writer killed mid-write leaves its temporary; the next write of the same file
 * removes it once its process is gone and it is a minute old, and leaves every other alone */
static void touch_old(const char *name, int seconds_ago)
{
    FILE *f = fopen(tmp_path(name), "w");
    ck_assert_ptr_nonnull(f);
    fputs("partial", f);
    fclose(f);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= seconds_ago;
    t[1] = t[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, tmp_path(name), t, 0), 0);
}

START_TEST(stale_temporaries_removed)
{
    make_tmp("stale");
    char live[64];
    snprintf(live, sizeof live, "result.json.tmp-%ld-aaaaaa", (long)getpid());
    touch_old("result.json.tmp-999999999-dead01", 120); /* dead writer, old: removed */
    touch_old("result.json.tmp-bbbbbb", 120);           /* an older mmfuse's name: removed */
    touch_old("result.json.tmp-999999999-young1", 5);   /* dead but fresh: kept (shared folder) */
    touch_old(live, 120);                               /* a live writer: kept */
    touch_old("metrics.csv.tmp-999999999-other1", 120); /* another file's: kept */
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mf_write_file_atomic(tmp_path("result.json"), "{}\n", 3, &err), 0);
    ck_assert_int_eq(access(tmp_path("result.json.tmp-999999999-dead01"), F_OK), -1);
    ck_assert_int_eq(access(tmp_path("result.json.tmp-bbbbbb"), F_OK), -1);
    ck_assert_int_eq(access(tmp_path("result.json.tmp-999999999-young1"), F_OK), 0);
    ck_assert_int_eq(access(tmp_path(live), F_OK), 0);
    ck_assert_int_eq(access(tmp_path("metrics.csv.tmp-999999999-other1"), F_OK), 0);
    ck_assert_int_eq(access(tmp_path("result.json"), F_OK), 0);
    remove_tmp();
}
END_TEST

/* issue 13: standardization.json holds every feature's figures or is not written: a
 * non-finite one is refused naming it (jansson drops NaN, which shifted later features) */
START_TEST(standardization_whole_or_refused)
{
    make_tmp("std");
    mfi_run_dir rd;
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mfi_run_dir_create(&rd, tmp_path("run"), NULL, NULL, &err), 0);
    ck_assert_int_eq(mfi_run_dir_publish(&rd, &err), 0);
    float mean[3] = {1, 2, 3}, inv_std[3] = {1, 0.5f, 0.25f};
    mfi_input in = {.name = "x", .shape = {1, {3}}, .mean = mean, .inv_std = inv_std};
    ck_assert_int_eq(mfi_run_dir_standardization(&rd, &in, 1, &err), 0);
    json_error_t jerr;
    json_t *j = json_load_file(tmp_path("run/standardization.json"), 0, &jerr);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(j, "x"), "mean")), 3);
    ck_assert(json_real_value(json_array_get(json_object_get(json_object_get(j, "x"), "std"), 2)) == 4.0);
    json_decref(j);
    mean[1] = NAN;
    ck_assert_int_eq(mfi_run_dir_standardization(&rd, &in, 1, &err), -1);
    ck_assert_str_eq(err.msg, "standardization.json: feature 1 of 'x' has a non-finite mean (nan)");
    j = json_load_file(tmp_path("run/standardization.json"), 0, &jerr); /* the old one stays */
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(j, "x"), "mean")), 3);
    json_decref(j);
    mfi_run_dir_free(&rd);
    remove_tmp();
}
END_TEST

START_TEST(events_are_lines)
{
    make_tmp("events");
    mfi_run_dir rd;
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mfi_run_dir_create(&rd, tmp_path("run"), NULL, NULL, &err), 0);
    ck_assert_int_eq(mfi_run_dir_publish(&rd, &err), 0);
    ck_assert_int_eq(mfi_run_dir_event(&rd, "start", json_pack("{s:i, s:i}", "step", 0, "epoch", 0),
                                       &err), 0);
    ck_assert_int_eq(mfi_run_dir_event(&rd, "done", NULL, &err), 0);
    json_t *j[16];
    ck_assert_int_eq(json_lines(tmp_path("run/events.jsonl"), j), 2);
    /* time first, then the event, then the caller's fields */
    ck_assert_str_eq(json_object_iter_key(json_object_iter(j[0])), "time");
    ck_assert_str_eq(json_string_value(json_object_get(j[0], "event")), "start");
    ck_assert_int_eq(json_integer_value(json_object_get(j[0], "epoch")), 0);
    const char *t = json_string_value(json_object_get(j[1], "time"));
    /* 2026-12-02T00:31:05.123Z */
    ck_assert_int_eq((int)strlen(t), 24);
    ck_assert(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    ck_assert_int_eq(json_object_size(j[1]), 2);
    json_decref(j[0]);
    json_decref(j[1]);
    mfi_run_dir_free(&rd);
    remove_tmp();
}
END_TEST

/* Two processes appending at once: every line whole (one write per line, O_APPEND). */
START_TEST(events_whole_under_two_writers)
{
    make_tmp("events2");
    mfi_run_dir rd;
    mf_error err;
    mf_error_clear(&err);
    ck_assert_int_eq(mfi_run_dir_create(&rd, tmp_path("run"), NULL, NULL, &err), 0);
    ck_assert_int_eq(mfi_run_dir_publish(&rd, &err), 0);
    char pad[600];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    for (int i = 0; i < 300; i++)
        if (mfi_run_dir_event(&rd, child ? "parent" : "child",
                              json_pack("{s:i, s:s}", "step", i, "pad", pad), &err))
            break;
    if (child == 0)
        _exit(err.count ? 1 : 0);
    int status;
    waitpid(child, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(err.count, 0);
    json_t *j[16];
    ck_assert_int_eq(json_lines(tmp_path("run/events.jsonl"), j), 600);
    for (int i = 0; i < 16; i++)
        json_decref(j[i]);
    mfi_run_dir_free(&rd);
    remove_tmp();
}
END_TEST

static const char metrics[] = "epoch,step,train_loss,seconds\n"
                              "1,10,0.9,1.0\n"
                              "2,20,0.5,2.0\n"
                              "3,30,0.3,3.0\n";
static const char events[] =
    "{\"time\":\"t\",\"event\":\"start\",\"step\":0,\"epoch\":0}\n"
    "{\"time\":\"t\",\"event\":\"epoch\",\"step\":10,\"epoch\":1}\n"
    "{\"time\":\"t\",\"event\":\"note\"}\n"
    "{\"time\":\"t\",\"event\":\"epoch\",\"step\":20,\"epoch\":2}\n"
    "{\"time\":\"t\",\"event\":\"epoch\",\"step\":30,\"epoch\":3}\n"
    "{\"time\":\"t\",\"event\":\"checkpoint\",\"st"; /* torn by a kill */

START_TEST(reopen_cuts_back_to_the_step)
{
    make_tmp("reopen");
    mf_error err;
    mf_error_clear(&err);
    mfi_run_dir rd;
    ck_assert_int_eq(mfi_run_dir_create(&rd, tmp_path("run"), NULL, NULL, &err), 0);
    ck_assert_int_eq(mfi_run_dir_publish(&rd, &err), 0);
    spit(tmp_path("run/config.yaml"), "name: x\n");
    spit(tmp_path("run/metrics.csv"), metrics);
    spit(tmp_path("run/events.jsonl"), events);
    ck_assert_msg(mfi_run_dir_reopen(&rd, tmp_path("run"), 20, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(slurp(tmp_path("run/metrics.csv")), "epoch,step,train_loss,seconds\n"
                                                         "1,10,0.9,1.0\n"
                                                         "2,20,0.5,2.0\n");
    json_t *j[16];
    ck_assert_int_eq(json_lines(tmp_path("run/events.jsonl"), j), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(j[3], "step")), 20);
    ck_assert_str_eq(json_string_value(json_object_get(j[2], "event")), "note");
    ck_assert_str_eq(json_string_value(json_object_get(j[4], "event")), "resume");
    ck_assert_int_eq(json_integer_value(json_object_get(j[4], "step")), 20);
    ck_assert_int_eq(json_integer_value(json_object_get(j[4], "dropped_rows")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(j[4], "dropped_events")), 2);
    for (int i = 0; i < 5; i++)
        json_decref(j[i]);
    /* the run goes on: the next row follows the kept ones, no second header */
    ck_assert_int_eq(mfi_run_dir_epoch(&rd, "epoch,step,train_loss,seconds", "3,30,0.31,3.1", &err), 0);
    ck_assert_str_eq(slurp(tmp_path("run/metrics.csv")), "epoch,step,train_loss,seconds\n"
                                                         "1,10,0.9,1.0\n"
                                                         "2,20,0.5,2.0\n"
                                                         "3,30,0.31,3.1\n");
    mfi_run_dir_free(&rd);
    /* at step 0 only the header and the events of step 0 are left */
    ck_assert_int_eq(mfi_run_dir_reopen(&rd, tmp_path("run"), 0, &err), 0);
    ck_assert_str_eq(slurp(tmp_path("run/metrics.csv")), "epoch,step,train_loss,seconds\n");
    ck_assert_int_eq(json_lines(tmp_path("run/events.jsonl"), j), 3);
    for (int i = 0; i < 3; i++)
        json_decref(j[i]);
    ck_assert_int_eq(mfi_run_dir_epoch(&rd, "epoch,step,train_loss,seconds", "1,10,0.8,1", &err), 0);
    ck_assert_str_eq(slurp(tmp_path("run/metrics.csv")), "epoch,step,train_loss,seconds\n"
                                                         "1,10,0.8,1\n");
    mfi_run_dir_free(&rd);
    remove_tmp();
}
END_TEST

/* A run killed before its first epoch has neither file: reopening starts them. */
START_TEST(reopen_a_run_without_metrics)
{
    make_tmp("reopen0");
    mf_error err;
    mf_error_clear(&err);
    mfi_run_dir rd;
    ck_assert_int_eq(mfi_run_dir_create(&rd, tmp_path("run"), NULL, NULL, &err), 0);
    ck_assert_int_eq(mfi_run_dir_publish(&rd, &err), 0);
    spit(tmp_path("run/config.yaml"), "name: x\n");
    ck_assert_int_eq(mfi_run_dir_reopen(&rd, tmp_path("run"), 0, &err), 0);
    ck_assert_int_eq(access(tmp_path("run/metrics.csv"), F_OK), -1);
    ck_assert_int_eq(mfi_run_dir_epoch(&rd, "epoch,step", "1,5", &err), 0);
    ck_assert_str_eq(slurp(tmp_path("run/metrics.csv")), "epoch,step\n1,5\n");
    json_t *j[16];
    ck_assert_int_eq(json_lines(tmp_path("run/events.jsonl"), j), 1);
    json_decref(j[0]);
    mfi_run_dir_free(&rd);
    remove_tmp();
}
END_TEST

START_TEST(reopen_refusals)
{
    make_tmp("refuse");
    mf_error err;
    mf_error_clear(&err);
    mfi_run_dir rd;
    char expected[2048];
    ck_assert_int_eq(mfi_run_dir_reopen(&rd, tmp_path("none"), 5, &err), -1);
    snprintf(expected, sizeof expected, "cannot open the run folder '%s': No such file or directory",
             tmp_path("none"));
    ck_assert_str_eq(err.msg, expected);
    mf_error_clear(&err);
    ck_assert_int_eq(mkdir(tmp_path("empty"), 0755), 0);
    ck_assert_int_eq(mfi_run_dir_reopen(&rd, tmp_path("empty"), 5, &err), -1);
    snprintf(expected, sizeof expected, "'%s' is not a run folder: it has no config.yaml",
             tmp_path("empty"));
    ck_assert_str_eq(err.msg, expected);
    mf_error_clear(&err);
    spit(tmp_path("empty/config.yaml"), "name: x\n");
    spit(tmp_path("empty/metrics.csv"), "epoch,train_loss\n1,0.5\n");
    ck_assert_int_eq(mfi_run_dir_reopen(&rd, tmp_path("empty"), 5, &err), -1);
    snprintf(expected, sizeof expected, "%s: the header has no step column; this run cannot "
             "be resumed", tmp_path("empty/metrics.csv"));
    ck_assert_str_eq(err.msg, expected);
    /* left as it was */
    ck_assert_str_eq(slurp(tmp_path("empty/metrics.csv")), "epoch,train_loss\n1,0.5\n");
    ck_assert_int_eq(access(tmp_path("empty/events.jsonl"), F_OK), -1);
    remove_tmp();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tracking");
    TCase *tc = tcase_create("rundir");
    tcase_add_test(tc, events_are_lines);
    tcase_add_test(tc, events_whole_under_two_writers);
    tcase_add_test(tc, reopen_cuts_back_to_the_step);
    tcase_add_test(tc, reopen_a_run_without_metrics);
    tcase_add_test(tc, reopen_refusals);
    tcase_add_test(tc, stale_temporaries_removed);
    tcase_add_test(tc, standardization_whole_or_refused);
    suite_add_tcase(s, tc);
    return mf_test_run(s);
}
