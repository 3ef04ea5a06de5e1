/* Drives the progress display as the trainer does, on a clock it advances itself, for
 * test-progress.sh: progress-driver [quiet] [EPOCHS STEPS_PER_EPOCH DT_SECONDS [BATCH]];
 * EPOCHS < 0: a run of -EPOCHS × STEPS_PER_EPOCH steps whose epochs are not counted. Each step takes DT seconds of the fake clock, each validation pass 1 s; a permanent line
 * closes every epoch and a warning comes in the middle of the second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static double fake_now;

static double fake_clock(void *user)
{
    (void)user;
    return fake_now;
}

int main(int argc, char **argv)
{
    int a = 1, quiet = 0;
    if (a < argc && strcmp(argv[a], "quiet") == 0)
        quiet = 1, a++;
    int epochs = a < argc ? atoi(argv[a++]) : 3;
    const int of_steps = epochs < 0;
    epochs = of_steps ? -epochs : epochs;
    const int64_t per_epoch = a < argc ? atoll(argv[a++]) : 40;
    const double dt = a < argc ? atof(argv[a++]) : 0.03;
    const int64_t batch = a < argc ? atoll(argv[a++]) : 32;
    mfi_progress *p = of_steps ? mfi_progress_new(stdout, quiet, epochs * per_epoch, per_epoch, 0)
                               : mfi_progress_new(stdout, quiet, 0, per_epoch, epochs);
    if (!p)
        return 1;
    if (!getenv("MMFUSE_PROGRESS_CLOCK")) /* otherwise the display's own fake clock */
        mfi_progress_set_clock(p, fake_clock, NULL);
    int64_t step = 0;
    for (int e = 0; e < epochs; e++) {
        double sum = 0;
        for (int64_t s = 0; s < per_epoch; s++) {
            fake_now += dt;
            const double loss = 2.0 / (1.0 + 0.01 * (double)step);
            sum += loss;
            step++;
            mfi_progress_step(p, e, step, loss, step * batch);
            if (e == 1 && s == per_epoch / 2)
                mfi_progress_line(p, "warning: a %s in the middle of epoch %d", "line", e + 1);
        }
        fake_now += 1.0; /* validation */
        mfi_progress_line(p, "epoch %3d/%d  train loss %.4f\n", e + 1, epochs,
                          sum / (double)per_epoch);
    }
    mfi_progress_free(p);
    printf("finished after %lld steps\n", (long long)step);
    return 0;
}
