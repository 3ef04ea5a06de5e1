/* data.augment: random flips and quarter turns of every image input of a training sample —
 * torchvision's RandomHorizontalFlip(p), RandomVerticalFlip(p) and a random rot90 — the
 * same for every modality of the sample, so co-registered bands stay registered. Applied
 * before standardisation (each pixel keeps its own mean and std), to training batches only.
 *
 * The draws come from (seed, the count of training forwards so far): a resumed run draws
 * what the uninterrupted run drew, with no state in the checkpoint. */
#include <stdlib.h>
#include <string.h>

#include "experiment_internal.h"

const mf_param_spec mfi_augment_specs[] = {
    {"hflip", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability that a training sample's images are flipped left-right (torchvision's "
     "RandomHorizontalFlip p)."},
    {"vflip", MF_TYPE_FLOAT, "0", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability that they are flipped top-bottom (RandomVerticalFlip p)."},
    {"rot90", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "Turn them by a random multiple of 90° (0, 90, 180 or 270, each 1/4), after the flips; "
     "square images only. With hflip 0.5 each of the 8 symmetries of the square is equally "
     "likely."},
    MF_PARAM_END,
};

#define AUGMENT_STREAM UINT64_C(0x61756731) /* "aug1" */

/* The inputs that are images: (C,H,W) per sample, not token ids. */
static int is_image(const experiment *e, int m)
{
    return e->input[m].shape.ndim == 3 && !(e->in_flags[m] & MF_IO_TOKENS);
}

/* Images to augment, each square when turned; a scratch plane set for each. */
static int augment_inputs(experiment *e, const mf_config *a, mf_error *err)
{
    int images = 0;
    for (int m = 0; m < e->n_mod; m++) {
        if (!is_image(e, m))
            continue;
        const mf_shape *s = &e->input[m].shape;
        char shape[64];
        if (e->augment.rot90 && s->dim[1] != s->dim[2]) {
            mf_config_error(err, mf_config_get(a, "rot90"), "a quarter turn needs square "
                            "images, but '%s' is %s per sample (C,H,W)", e->mod_name[m],
                            mf_shape_str(s, shape, sizeof shape));
            return -1;
        }
        if (!(e->input[m].scratch = malloc((size_t)mf_shape_numel(s) * sizeof(float)))) {
            mf_error_set(err, "%s: out of memory for data.augment", e->path);
            return -1;
        }
        images++;
    }
    if (!images) {
        char shape[64];
        mf_config_error(err, a, "flips and turns apply to images, (C,H,W) per sample, and no "
                        "modality in use is one ('%s' is %s)", e->mod_name[0],
                        mf_shape_str(&e->input[0].shape, shape, sizeof shape));
        return -1;
    }
    return 0;
}

int mfi_augment_setup(experiment *e, mf_error *err)
{
    const mf_config *a = mf_config_get(e->data_cfg, "augment");
    if (!a || mf_config_length(a) == 0)
        return 0;
    if (mf_config_check((mf_config *)a, mfi_augment_specs, NULL, err))
        return -1;
    mf_config_float(a, "hflip", &e->augment.hflip, NULL);
    mf_config_float(a, "vflip", &e->augment.vflip, NULL);
    mf_config_bool(a, "rot90", &e->augment.rot90, NULL);
    e->augment.on = e->augment.hflip > 0 || e->augment.vflip > 0 || e->augment.rot90;
    if (!e->augment.on)
        return 0;
    if (!(e->augment.codes = calloc((size_t)e->batch_size, 1))) {
        mf_error_set(err, "%s: out of memory for data.augment", e->path);
        return -1;
    }
    return augment_inputs(e, a, err);
}

const uint8_t *mfi_augment_draw(experiment *e, int64_t n, uint64_t forwards)
{
    if (!e->augment.on || n > e->batch_size)
        return NULL;
    mf_rng r;
    mf_rng_seed_stream(&r, (uint64_t)e->seed ^ AUGMENT_STREAM, forwards);
    for (int64_t i = 0; i < n; i++) {
        /* three draws a sample whatever is enabled: the stream does not depend on the options */
        const double h = mf_rng_uniform(&r), v = mf_rng_uniform(&r);
        const unsigned turns = (unsigned)(mf_rng_u64(&r) >> 62);
        e->augment.codes[i] = (uint8_t)((h < e->augment.hflip ? MFI_AUGMENT_HFLIP : 0u) |
                                        (v < e->augment.vflip ? MFI_AUGMENT_VFLIP : 0u) |
                                        (e->augment.rot90 ? MFI_AUGMENT_TURNS(turns) : 0u));
    }
    return e->augment.codes;
}

void mfi_augment_free(experiment *e)
{
    free(e->augment.codes);
    e->augment.codes = NULL;
}
