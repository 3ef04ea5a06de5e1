#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "assemble.h"

int mfi_input_view(mfi_input *in, const mf_shape *source, int64_t axis, int64_t start,
                   int64_t length, mf_error *err)
{
    char shape[64];
    mf_shape_str(source, shape, sizeof shape);
    if (axis < 0 || axis >= source->ndim) {
        mf_error_set(err, "axis %lld is out of range for the per-sample shape %s (axes 0 to %d)",
                     (long long)axis, shape, source->ndim - 1);
        return -1;
    }
    /* start + length is never formed unchecked: start near INT64_MAX wrapped it negative */
    int64_t end = 0;
    if (start >= 0 && length >= 1 && __builtin_add_overflow(start, length, &end)) {
        mf_error_set(err, "start %lld with length %lld is out of range for axis %lld of the "
                     "per-sample shape %s (start + length must be at most %lld)",
                     (long long)start, (long long)length, (long long)axis, shape,
                     (long long)source->dim[axis]);
        return -1;
    }
    if (start < 0 || length < 1 || end > source->dim[axis]) {
        mf_error_set(err, "[%lld, %lld) is out of range for axis %lld of the per-sample shape %s",
                     (long long)start, (long long)start + length, (long long)axis, shape);
        return -1;
    }
    /* the source's own size, checked here once so that mfi_assemble's products cannot wrap */
    int64_t numel = 1;
    for (int k = 0; k < source->ndim; k++)
        if (source->dim[k] < 1 || __builtin_mul_overflow(numel, source->dim[k], &numel) ||
            numel > INT64_MAX / (int64_t)sizeof(float)) {
            mf_error_set(err, "the per-sample shape %s is too large to slice", shape);
            return -1;
        }
    in->axis = (int)axis;
    in->start = start;
    in->length = length;
    in->shape = *source;
    in->shape.dim[axis] = length;
    return 0;
}

/* s (C,H,W) → d, each plane flipped as `code` says, then turned (square planes). */
static void augment_planes(const float *s, float *d, const mf_shape *shape, unsigned code)
{
    const int64_t h = shape->dim[1], w = shape->dim[2];
    const unsigned turns = (code >> 2) & 3u;
    for (int64_t c = 0; c < shape->dim[0]; c++, s += h * w, d += h * w)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t sy = y, sx = x;
                // undo the turns: rot90(A)[y][x] = A[x][n-1-y]
                for (unsigned k = 0; k < turns; k++) {
                    const int64_t t = sy;
                    sy = sx;
                    sx = w - 1 - t;
                }
                if (code & MFI_AUGMENT_VFLIP)
                    sy = h - 1 - sy;
                if (code & MFI_AUGMENT_HFLIP)
                    sx = w - 1 - sx;
                d[y * w + x] = s[sy * w + sx];
            }
}

void mfi_assemble(const mfi_input *in, const mf_dataset_info *info, const mfi_batch *b, float *dst,
                  const uint8_t *augment, mf_rng *rng)
{
    const mf_shape *src_shape = &info->modalities[in->source].shape;
    const int64_t src_numel = mf_shape_numel(src_shape), numel = mf_shape_numel(&in->shape);
    const float *src = b->modality[in->source];
    for (int64_t i = 0; i < b->n; i++) {
        const float *s = src + i * src_numel;
        float *d = dst + i * numel;
        if (in->axis < 0) {
            memcpy(d, s, (size_t)numel * sizeof(float));
        } else {
            // the sample viewed as (outer, dim[axis], inner): keep [start, start+length)
            int64_t outer = 1, inner = 1;
            for (int k = 0; k < in->axis; k++)
                outer *= src_shape->dim[k];
            for (int k = in->axis + 1; k < src_shape->ndim; k++)
                inner *= src_shape->dim[k];
            const int64_t run = in->length * inner, full = src_shape->dim[in->axis] * inner;
            for (int64_t o = 0; o < outer; o++)
                memcpy(d + o * run, s + o * full + in->start * inner, (size_t)run * sizeof(float));
        }
        if (augment && augment[i] && in->scratch && in->shape.ndim == 3) {
            memcpy(in->scratch, d, (size_t)numel * sizeof(float));
            augment_planes(in->scratch, d, &in->shape, augment[i]);
        }
        if (in->mean)
            for (int64_t j = 0; j < numel; j++)
                d[j] = (d[j] - in->mean[j]) * in->inv_std[j];
        if (in->noise > 0)
            for (int64_t j = 0; j < numel; j++)
                d[j] += in->noise * mf_rng_normal(rng);
    }
}

/* Σt and Σt² of each target column, over one batch. */
static void add_targets(const mfi_batch *b, int64_t k, double *sum, double *sq)
{
    for (int64_t i = 0; i < b->n * k; i++) {
        sum[i % k] += b->targets[i];
        sq[i % k] += (double)b->targets[i] * b->targets[i];
    }
}

/* Σx and Σx² of each feature of one input over a batch. A value that is not finite would
 * make its feature's mean NaN and every later batch NaN there, silently hidden by a ReLU:
 * the readers refuse such values, and this names one that a reader let through. */
static int accumulate(const mfi_input *in, const mfi_batch *b, const float *x, double *sum,
                      double *sq, mf_error *err)
{
    const int64_t numel = mf_shape_numel(&in->shape);
    for (int64_t i = 0; i < b->n; i++)
        for (int64_t j = 0; j < numel; j++) {
            const double v = x[i * numel + j];
            if (!isfinite(v)) {
                mf_error_set(err, "'%s': sample %lld holds %s at value %lld: standardisation "
                             "needs finite values", in->name ? in->name : "?",
                             (long long)b->index[i], isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf",
                             (long long)j);
                return -1;
            }
            sum[j] += v;
            sq[j] += v * v;
        }
    return 0;
}

int mfi_fit_standardization(mfi_input *inputs, int n_inputs, const mf_dataset_info *info,
                            mfi_loader *loader, double *target_mean, double *target_std,
                            mf_error *err)
{
    double *sum[MFI_MAX_INPUTS] = {0}, *sq[MFI_MAX_INPUTS] = {0};
    const int64_t tk = target_mean ? info->target_dim : 0;
    double *tsum = tk ? calloc((size_t)tk, sizeof *tsum) : NULL;
    double *tsq = tk ? calloc((size_t)tk, sizeof *tsq) : NULL;
    float *tmp[MFI_MAX_INPUTS] = {0};
    mfi_loader_start(loader, 0); /* the first batch is the largest: size the buffers by it */
    int64_t count = 0, batch_max = mfi_loader_peek(loader);
    int status = tk && (!tsum || !tsq) ? -1 : 0;
    if (status)
        mf_error_set(err, "out of memory fitting the standardisation");
    if (!status && (n_inputs < 0 || n_inputs > MFI_MAX_INPUTS)) {
        mf_error_set(err, "%d inputs to standardise; at most %d", n_inputs, MFI_MAX_INPUTS);
        status = -1;
    }
    for (int k = 0; k < n_inputs && !status; k++) {
        if (!inputs[k].standardize)
            continue;
        size_t numel = (size_t)mf_shape_numel(&inputs[k].shape), bytes;
        sum[k] = calloc(numel, sizeof(double));
        sq[k] = calloc(numel, sizeof(double));
        tmp[k] = __builtin_mul_overflow((size_t)batch_max, numel * sizeof(float), &bytes)
                     ? NULL : malloc(bytes);
        inputs[k].mean = malloc(numel * sizeof(float));
        inputs[k].inv_std = malloc(numel * sizeof(float));
        if (!sum[k] || !sq[k] || !tmp[k] || !inputs[k].mean || !inputs[k].inv_std) {
            mf_error_set(err, "out of memory fitting the standardisation");
            status = -1;
        }
    }
    const mfi_batch *b;
    int64_t n;
    mfi_loader_start(loader, 0);
    while (!status && (n = mfi_loader_next(loader, &b, err)) > 0) {
        for (int k = 0; k < n_inputs; k++) {
            if (!inputs[k].standardize)
                continue;
            mfi_input raw = inputs[k];
            raw.mean = raw.inv_std = NULL;
            raw.drop = 0;
            raw.noise = 0;
            mfi_assemble(&raw, info, b, tmp[k], NULL, NULL);
            if ((status = accumulate(&inputs[k], b, tmp[k], sum[k], sq[k], err)))
                break;
        }
        if (status)
            break;
        if (tk)
            add_targets(b, tk, tsum, tsq);
        count += n;
    }
    if (!status && n < 0)
        status = -1;
    for (int k = 0; k < n_inputs && !status; k++) {
        if (!inputs[k].standardize)
            continue;
        const int64_t numel = mf_shape_numel(&inputs[k].shape);
        for (int64_t j = 0; j < numel; j++) {
            double mean = sum[k][j] / (double)count;
            double var = sq[k][j] / (double)count - mean * mean;
            inputs[k].mean[j] = (float)mean;
            inputs[k].inv_std[j] = var > 1e-12 ? (float)(1.0 / sqrt(var)) : 1.0f;
        }
    }
    for (int64_t j = 0; j < tk && !status; j++) {
        target_mean[j] = tsum[j] / (double)count;
        const double var = tsq[j] / (double)count - target_mean[j] * target_mean[j];
        target_std[j] = var > 1e-12 ? sqrt(var) : 1.0;
    }
    free(tsum);
    free(tsq);
    for (int k = 0; k < n_inputs; k++) {
        free(sum[k]);
        free(sq[k]);
        free(tmp[k]);
    }
    return status;
}

void mfi_input_free(mfi_input *in)
{
    free(in->mean);
    free(in->inv_std);
    free(in->scratch);
    in->mean = in->inv_std = in->scratch = NULL;
}
