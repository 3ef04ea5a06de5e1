/* The training progress display. On a terminal: one status line redrawn in place (\r and
 * ESC[K, at most 10 times a second) with the epoch, the step, a bar, the epoch's running mean
 * loss, samples/s, the ETA and the elapsed time, fitted to the terminal's width. Elsewhere
 * (a pipe, a file, TERM=dumb): never a \r or an escape, only the permanent lines, and a plain
 * status line when nothing was printed for 30 s. MMFUSE_PROGRESS=1 or 0 forces the bar on or
 * off. Quiet: the display prints nothing itself. Private. */
#ifndef MF_TRAIN_PROGRESS_H
#define MF_TRAIN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct mfi_progress mfi_progress;

/* `total_steps` optimiser steps in the run (0: steps_per_epoch × epochs), `steps_per_epoch`
 * and `epochs` (0 if unknown). The step and the bar count the epoch's steps when the epochs
 * are counted, else the run's (a run of train.steps). NULL only when out of memory; every
 * function below accepts NULL and then does nothing. */
mfi_progress *mfi_progress_new(FILE *out, int quiet, int64_t total_steps,
                               int64_t steps_per_epoch, int epochs);
/* After each optimiser step: `epoch` from 0, `step` the run's optimiser steps so far (from 1,
 * so it continues across epochs and after a resume), the step's `loss`, and the samples
 * trained on so far by this process. */
void mfi_progress_step(mfi_progress *p, int epoch, int64_t step, double loss,
                       int64_t samples_done);
/* A permanent line (an epoch's summary, early stopping, a warning), printed even when quiet:
 * the bar is cleared, the line printed (a newline added if missing), the bar redrawn below. */
void mfi_progress_line(mfi_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Before the caller writes to `out` (or the terminal) itself: clears the bar, which the
 * next step redraws, and counts as output for the 30-s plain lines. */
void mfi_progress_clear(mfi_progress *p);
/* Clears the bar. */
void mfi_progress_free(mfi_progress *p);

/* Tests: time from `clock` (seconds, any origin) instead of the monotonic clock. The
 * environment's MMFUSE_PROGRESS_CLOCK=DT does the same for the mmfuse binary: time then
 * advances DT seconds at each step, whatever the machine's speed. */
void mfi_progress_set_clock(mfi_progress *p, double (*clock)(void *user), void *user);

#endif
