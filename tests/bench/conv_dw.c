/* The direct conv2d weight-gradient kernel alone (ops_conv_direct.c: mfi_dir_pad,
 * mfi_dir_transpose_grad, mfi_dir_dw_sample) over 256 samples, best of 15: the figures of
 * docs/performance.md, "Convolution". Not part of the meson build; it compiles the kernel's
 * file itself (AVX-512 builds only):
 *
 *   cc -O3 -march=native -fopenmp -Iframework/core -Iinclude -Ibuild tests/bench/conv_dw.c \
 *      framework/core/ops_conv_direct.c -o /tmp/conv_dw
 *   /tmp/conv_dw 16 14 32     # conv(16→32, 3×3, pad 1) on 14×14, as in cnn-late and clip-dual
 *   /tmp/conv_dw 1 28 16      # conv(1→16) on 28×28
 */
#include "conv_direct.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int C=atoi(argv[1]),H=atoi(argv[2]),O=atoi(argv[3]),B=256;
  dir_conv f; mfi_dir_conv_of(&f,C,H,H,1,1,O,3,3);
  int64_t O16=(O+15)/16*16,P=f.Ho*f.Wo;
  float*x=malloc(4L*B*C*H*H),*g=malloc(4L*B*O*P),*xp=aligned_alloc(64,4L*((f.len+15)/16*16)),*gt=aligned_alloc(64,4L*P*O16),*part=calloc((f.K+1)*O16,4);
  for(long i=0;i<(long)B*C*H*H;i++)x[i]=(i%7)*0.1f;for(long i=0;i<(long)B*O*P;i++)g[i]=(i%5)*0.1f;
  for(long i=0;i<f.len;i++)xp[i]=0;
  double best=1e9,bt=1e9;for(int r=0;r<15;r++){double t=now(),tt=0;
   for(int b=0;b<B;b++){mfi_dir_pad(&f,x+(long)b*C*H*H,xp);double t1=now();mfi_dir_transpose_grad(&f,g+(long)b*O*P,O16,gt);tt+=now()-t1;mfi_dir_dw_sample(&f,xp,gt,O16,1,1,part);}
   t=now()-t;if(t<best){best=t;bt=tt;}}
  double fl=2.0*B*O*f.K*P;
  printf("C%d H%d O%d B%d: %.3f ms (transposes %.3f), %.1f GFLOP/s\n",C,H,O,B,best*1e3,bt*1e3,fl/best/1e9);
}
