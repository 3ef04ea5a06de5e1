/* The optimiser's update at 2 threads against 1, back to back ("hot") and after 300 µs of
 * serial work ("cold"): the parallel threshold of framework/train/optim.c.
 * cc -O2 -Iinclude tests/bench/optim.c -Lbuild/framework -lmmfuse -Wl,-rpath,build/framework
 * -o /tmp/optim && GOMP_SPINCOUNT=1000 /tmp/optim */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <mmfuse/mmfuse.h>
#include <mmfuse/host.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double run(int64_t n, int threads, int cold)
{
    mf_set_threads(threads);
    mf_params *ps = mf_params_new();
    mf_error err;
    mf_error_clear(&err);
    mf_params_add(ps, "w", mf_shape1(n), (mf_init){MF_INIT_NORMAL, 0.1f, 0}, &err);
    mf_params_finalize(ps, 1, 2, &err);
    mf_optim o = {.kind = MF_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    double tot = 0;
    const int reps = 400;
    for (int i = 0; i < reps; i++) {
        float *g = mf_params_grads(ps);
        for (int64_t j = 0; j < n; j += 97)
            g[j] = 0.01f;
        if (cold)
            usleep(300);
        double t0 = now();
        mf_optim_step(&o, ps);
        tot += now() - t0;
    }
    mf_params_free(ps);
    return tot / reps;
}

int main(void)
{
    const int64_t ns[] = {32768, 65536, 131072, 262144, 524288, 1048576};
    for (int i = 0; i < 6; i++) {
        double h1 = run(ns[i], 1, 0), h2 = run(ns[i], 2, 0), c1 = run(ns[i], 1, 1),
               c2 = run(ns[i], 2, 1);
        printf("%8lld  hot %.2f (%.1f us)  cold %.2f (%.1f us)\n", (long long)ns[i], h2 / h1,
               h1 * 1e6, c2 / c1, c1 * 1e6);
    }
}
