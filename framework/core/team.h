/* Whether the OpenMP team is warm: private to libmmfuse.
 *
 * A split pays only if the other threads are awake. libgomp's idle threads spin for
 * GOMP_SPINCOUNT rounds after a region (the CLI sets 1000: ~50 µs here) and then sleep on a
 * futex; waking a sleeper costs 20–40 µs, more than a mid-sized product gains from the second
 * core (tests/bench/split.c: 1M multiply-adds split cold take 2.9× as long, warm 0.74×).
 * So every parallel region of the core reports that it ran (mfi_par in its `if` clause), the
 * graph marks the end of each op and the start of each pass, and the splits whose gain
 * depends on warmth (products, the optimiser's update) take a lower threshold while the team
 * is warm: while the serial work since the last region, estimated from the ops' sizes, is
 * under ~30 µs. Judged by what ran, not by a clock. No split changes a bit: every parallel
 * loop's partition and reduction order are fixed by the shapes (gemm.c's blocks included),
 * so a run gives the same bits at any thread count.
 * The state is per calling thread: each thread that runs graphs has its own team. */
#ifndef MMFUSE_TEAM_H
#define MMFUSE_TEAM_H

#include <stdint.h>

/* For a parallel region's `if` clause: returns split, noting that a region ran. */
int mfi_par(int split);
/* After each op (graph.c) of numel outputs, and each optimiser pass: a region ran, or
 * serial work of about that size. */
void mfi_team_op_done(int64_t numel);
/* A product run serially (gemm.c): serial work of that many multiply-adds. */
void mfi_team_serial_macs(int64_t macs);
/* At the start of a forward or backward pass, after serial work: the team is asleep. */
void mfi_team_cold(void);
/* Whether the team's threads are still spinning: a region ran in this op, or little serial
 * work since the last one. */
int mfi_team_warm(void);
/* The split rule for work whose gain depends on warmth: from warm_min units while the team is
 * warm, from cold_min units always. */
int mfi_par_warm(int64_t work, int64_t warm_min, int64_t cold_min);

#endif
