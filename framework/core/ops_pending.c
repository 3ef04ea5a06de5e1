/* TEMPORARY (issue 3 in progress): weak placeholders for op kernels being written in
 * parallel; each real kernel (a strong symbol) replaces its placeholder at link time.
 * This file is deleted once every kernel exists. */
#include "core_internal.h"

#define PENDING(name)                                                                       \
    __attribute__((weak)) void mfi_op_##name(mf_node *n, int action)                        \
    {                                                                                       \
        if (action == MFI_SHAPE)                                                            \
            mfi_op_fail(n, #name ": not implemented yet");                                  \
    }

PENDING(bmm)
PENDING(sub)
PENDING(div)
PENDING(add_scalar)
PENDING(gelu)
PENDING(exp)
PENDING(log)
PENDING(sqrt)
PENDING(abs)
PENDING(masked_fill)
PENDING(dropout)
PENDING(sum)
PENDING(mean)
PENDING(sum_all)
PENDING(mean_all)
PENDING(logsumexp)
PENDING(softmax)
PENDING(l2_normalize)
PENDING(reshape)
PENDING(permute)
PENDING(slice)
PENDING(outer)
PENDING(conv2d)
PENDING(max_pool2d)
PENDING(avg_pool2d)
PENDING(layer_norm)
PENDING(embedding)
PENDING(custom)
