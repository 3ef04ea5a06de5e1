/* Optimisers over the collated parameter buffers (PyTorch's update rules). Private. */
#ifndef MF_TRAIN_OPTIM_H
#define MF_TRAIN_OPTIM_H

#include <mmfuse/nn.h>

typedef enum { MFI_OPTIM_ADAM, MFI_OPTIM_ADAMW, MFI_OPTIM_SGD } mfi_optim_kind;
#define MFI_OPTIM_CHOICES "adam|adamw|sgd"

typedef struct mfi_optim {
    mfi_optim_kind kind;
    double lr, beta1, beta2, eps, weight_decay, momentum;
    int64_t step;
} mfi_optim;

/* Optimiser state buffers the kind needs (mf_params_finalize's n_moments). */
int mfi_optim_moments(mfi_optim_kind kind);
/* One update from the accumulated gradients. */
void mfi_optim_step(mfi_optim *o, mf_params *ps);

#endif
