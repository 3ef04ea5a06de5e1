/* The direct stride-1 convolution kernel (ops_conv_direct.c), private to framework/core:
 * compiled when the build has AVX-512 (MFI_CONV_DIRECT), else ops_conv.c runs im2col + sgemm
 * for every convolution. */
#ifndef MMFUSE_CONV_DIRECT_H
#define MMFUSE_CONV_DIRECT_H

#include <stdint.h>

#if defined(__AVX512F__)
#define MFI_CONV_DIRECT 1
/* A stride-1 convolution read straight from a zero-padded copy of the sample: on the "wide
 * grid" of Ho·Wp positions (Wp the padded width; the columns >= Wo are computed and dropped)
 * tap (c,ki,kj) of position q is xp[c·plane + ki·Wp + kj + q], so a tile of 8 output
 * channels × 32 positions is 16 AVX-512 accumulators fed by two unaligned loads and eight
 * broadcasts per tap: no im2col, no packing. The backward pass to x is the same kernel on the
 * output gradient padded by k-1-pad with the flipped, transposed weights, added into dx. */
#define DIR_MR 8
#define DIR_NR 32

typedef struct dir_conv {
    int64_t Ci, Hi, Wi, ph, pw;  /* input channels and size, padding */
    int64_t Co, Ho, Wo, kh, kw;  /* output channels and size, kernel */
    int64_t Wp, plane, Qw, len;  /* padded width, plane, wide positions, floats of xp */
    int64_t Copad, K;            /* Co rounded up to DIR_MR; taps Ci·kh·kw */
} dir_conv;

#define DIR_DW_TK 12 /* taps per weight-gradient tile (by 16 or 32 channels) */

void mfi_dir_conv_of(dir_conv *c, int64_t Ci, int64_t Hi, int64_t Wi, int64_t ph, int64_t pw,
                     int64_t Co, int64_t kh, int64_t kw);
/* how mfi_dir_conv_sample writes its output */
enum { DIR_STORE, DIR_ADD, DIR_STORE_RELU };

void mfi_dir_pad(const dir_conv *c, const float *x, float *xp);
void mfi_dir_conv_sample(const dir_conv *c, const float *xp, const float *wt, const float *bias,
                         int mode, float *out);
void mfi_dir_transpose_grad(const dir_conv *c, const float *gb, int64_t O16, float *gt);
void mfi_dir_dw_sample(const dir_conv *c, const float *xp, const float *gt, int64_t O16,
                       int need_dw, int need_db, float *part);
#endif

#endif
