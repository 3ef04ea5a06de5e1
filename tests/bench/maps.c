/* Elementwise maps at 2 threads against 1, back to back ("hot") and after 300 µs of serial
 * work ("cold"): the MFI_OMP_MIN_ELEMS* measurements of framework/core/ops_common.h.
 * cc -O2 -Iinclude tests/bench/maps.c -Lbuild/framework -lmmfuse -Wl,-rpath,build/framework
 * -o /tmp/maps && GOMP_SPINCOUNT=1000 /tmp/maps */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <mmfuse/mmfuse.h>
#include <mmfuse/host.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static double run(const char *op, int64_t n, int threads, int cold){
  mf_set_threads(threads);
  mf_graph *g=mf_graph_new(1);
  mf_node *a=mf_variable(g,"a",mf_shape2(64,n/64)), *b=mf_variable(g,"b",mf_shape2(64,n/64)), *c;
  if(!strcmp(op,"add")) c=mf_add(g,a,b); else if(!strcmp(op,"relu")) c=mf_relu(g,a);
  else if(!strcmp(op,"exp")) c=mf_exp(g,a); else if(!strcmp(op,"gelu")) c=mf_gelu(g,a); else c=mf_dropout(g,a,0.2f);
  mf_node *l = mf_sum_all(g, c); (void)l;
  mf_error err; mf_error_clear(&err);
  if(mf_graph_compile(g,&err)) {printf("%s\n",err.msg);return 0;}
  float *av=mf_node_value(a),*bv=mf_node_value(b);
  for(int64_t i=0;i<n;i++){av[i]=0.001f*(i%97)-0.03f; bv[i]=0.5f;}
  int reps = cold ? 200 : (int)(3e7/n+20);
  double tot=0;
  for(int i=0;i<reps;i++){ if(cold) usleep(300); double t0=now(); mf_graph_forward(g); tot+=now()-t0; }
  mf_graph_free(g); return tot/reps;
}
int main(int argc,char**argv){
  const char *ops[]={"add","relu","exp","gelu","dropout"};
  int64_t ns[]={8192,16384,32768,65536,131072,262144,524288,1048576};
  for(int o=0;o<5;o++) for(int cold=0;cold<2;cold++){ printf("%-8s %s:", ops[o], cold?"cold":"hot "); for(int j=0;j<8;j++){ double t1=run(ops[o],ns[j],1,cold), t2=run(ops[o],ns[j],2,cold); printf(" %lldk %.2f", (long long)ns[j]/1024, t2/t1);} printf("\n");}
}
