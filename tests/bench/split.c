/* Matrix products split across 2 threads against 1 (the GEMM_SPLIT_MIN_MACS measurement in
 * framework/core/gemm.c): cc -O2 -Iinclude tests/bench/split.c -Lbuild/framework -lmmfuse
 * -Wl,-rpath,build/framework -o /tmp/split && GOMP_SPINCOUNT=1000 /tmp/split */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <mmfuse/mmfuse.h>
#include <mmfuse/host.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static double run(int64_t m,int64_t k,int64_t n,int threads,int cold){
  mf_set_threads(threads);
  mf_graph *g=mf_graph_new(0);
  mf_node *a=mf_input(g,"a",mf_shape2(m,k)), *b=mf_input(g,"b",mf_shape2(k,n));
  mf_node *c=mf_matmul(g,a,b,0,0); (void)c;
  mf_error err; mf_error_clear(&err);
  if(mf_graph_compile(g,&err)) {printf("%s\n",err.msg);return 0;}
  float *av=mf_node_value(a),*bv=mf_node_value(b);
  for(int64_t i=0;i<m*k;i++)av[i]=0.01f*(i%7); for(int64_t i=0;i<k*n;i++)bv[i]=0.02f*(i%5);
  int reps = (int)(2e8/(double)(m*k*n)); if(reps<20)reps=20; if (reps>20000) reps=20000;
  double best=1e9;
  if (cold) { /* after 300 µs of serial work each time, as between a model's few big products */
    double tot=0; for(int i=0;i<300;i++){ usleep(300); double t0=now(); mf_graph_forward(g); tot+=now()-t0; }
    best=tot/300;
  } else
  for(int r=0;r<5;r++){ double t0=now(); for(int i=0;i<reps;i++) mf_graph_forward(g); double t=(now()-t0)/reps; if(t<best)best=t;}
  mf_graph_free(g); return best;
}
int main(void){
  int64_t ms[]={64,128,256,512}, ks[]={32,64,128,256,512,1024};
  for(int i=0;i<4;i++) for(int j=0;j<6;j++) for (int l=0;l<6;l+=2){
    int64_t m=ms[i],k=ks[j],n=ks[l]; double t1=run(m,k,n,1,0), t2=run(m,k,n,2,0), c1=run(m,k,n,1,1), c2=run(m,k,n,2,1);
    printf("%5lld %5lld %5lld macs %9lld  hot t1 %8.1f us t2 %8.1f us ratio %.2f  cold t1 %8.1f us t2 %8.1f us ratio %.2f\n",(long long)m,(long long)k,(long long)n,(long long)(m*k*n),t1*1e6,t2*1e6,t2/t1,c1*1e6,c2*1e6,c2/c1);
  }
}
