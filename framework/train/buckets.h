/* Gradient buckets summed over the ranks while backward still runs (docs/distributed.md,
 * "Overlapping the all-reduce"): torch DDP's scheme on mmfuse's one gradient buffer. The
 * buffer is cut into buckets of whole parameters from its end (the parameters created last
 * are the first whose gradients are final), and a bucket's sum starts as soon as every
 * parameter in it has seen its earliest consumer's backward. Buckets start in one fixed
 * order on every rank, so a rank whose part of the batch was empty (no backward at all)
 * still takes part: mfi_buckets_finish starts whatever is left. Private to the train layer. */
#ifndef MF_TRAIN_BUCKETS_H
#define MF_TRAIN_BUCKETS_H

#include <mmfuse/graph.h>
#include <mmfuse/nn.h>

#include "dist.h"

typedef struct mfi_buckets mfi_buckets;

/* Buckets of about cap_bytes over ps's gradients, summed over c's ranks on a communicator of
 * their own. NULL without an error when there is nothing to overlap (one rank, cap_bytes 0,
 * or gradients that fit one bucket): the caller sums the whole buffer after backward, with
 * the blocking all-reduce, faster than one non-blocking sum. NULL with err set on failure. */
mfi_buckets *mfi_buckets_new(const mfi_comm *c, mf_params *ps, double cap_bytes, mf_error *err);
void mfi_buckets_free(mfi_buckets *b);
int mfi_buckets_count(const mfi_buckets *b);

/* The next backward of g (compiled, training) starts each bucket's sum once it is final. */
void mfi_buckets_arm(mfi_buckets *b, mf_graph *g);
/* After that backward (or instead of it, for an empty part): start the buckets not yet
 * started, wait for all, and disarm g. -1 when MPI failed. */
int mfi_buckets_finish(mfi_buckets *b);

#endif
