/* From a batch as the dataset delivered it to the model's inputs: views carved out of a
 * modality (channels of an image, a band range, image halves), per-feature standardisation
 * fitted on the training split, and the robustness transforms of evaluation (a modality
 * dropped, Gaussian noise). Private. */
#ifndef MF_DATA_ASSEMBLE_H
#define MF_DATA_ASSEMBLE_H

#include "loader.h"

typedef struct mfi_input {
    const char *name;
    int source;           /* the dataset modality it comes from */
    int axis;             /* per-sample axis of the source it slices, or -1: all of it */
    int64_t start, length;
    mf_shape shape;       /* per sample */
    int standardize;      /* token ids never are */
    float *mean, *inv_std; /* numel(shape) each once fitted (NULL before) */
    /* robustness at evaluation */
    int drop;             /* missing for the whole pass: the model's missing value replaces it */
    float noise;          /* add N(0, noise²) after standardisation */
    float *scratch;       /* numel(shape) floats when training batches are augmented */
} mfi_input;

/* A training sample's augmentation (data.augment), as one code: bit 0 flips each (H,W)
 * plane left-right, bit 1 top-bottom, bits 2-3 then turn it k quarter turns counter-clockwise
 * (numpy's rot90; square planes only). 0 leaves the sample as it is. */
#define MFI_AUGMENT_HFLIP 1u
#define MFI_AUGMENT_VFLIP 2u
#define MFI_AUGMENT_TURNS(k) ((unsigned)(k) << 2)

/* The per-sample shape of a view; -1 with a sentence naming the values when axis, start or
 * length do not fit (checked without overflow: any int64 is refused cleanly). */
int mfi_input_view(mfi_input *in, const mf_shape *source, int64_t axis, int64_t start,
                   int64_t length, mf_error *err);

/* Write input `in` of a batch's n samples to dst (n × numel(in->shape) floats); rng draws
 * the noise (NULL when in->noise is 0). With `augment` (one MFI_AUGMENT_* code per sample;
 * NULL: none) an image input — (C,H,W) per sample — is flipped and turned before it is
 * standardised, so each position keeps its own mean and std. */
void mfi_assemble(const mfi_input *in, const mf_dataset_info *info, const mfi_batch *b, float *dst,
                  const uint8_t *augment, mf_rng *rng);

/* Fit mean and 1/std per feature of every input that standardises, over all of `loader`'s
 * samples (the training split), in double precision. A constant feature gets 1/std = 1.
 * With target_mean and target_std (info->target_dim each; NULL: not wanted), the regression
 * targets' mean and std in the same pass (a constant target gets std 1). */
int mfi_fit_standardization(mfi_input *inputs, int n_inputs, const mf_dataset_info *info,
                            mfi_loader *loader, double *target_mean, double *target_std,
                            mf_error *err);
void mfi_input_free(mfi_input *in);

#endif
