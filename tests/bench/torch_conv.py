#!/usr/bin/python3
"""PyTorch's conv2d alone on the benchmark models' conv shapes, the reference row of
tests/bench/dnnl_conv.c (issue 11, item 2):

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/bench/torch_conv.py [reps]

Per shape and torch.set_num_threads(1|2), median ms over reps (default 200, after 20
warm-up), timed interleaved: forward under no_grad; forward + backward of sum(y * dy) with
x requiring grad (weights + data) and with x not requiring grad (weights only). Also prints
which kernel autograd ran (mkldnn_convolution = oneDNN). glibc's trim/mmap thresholds are
raised as in ../shared/bench/torch_ref.py so freed activations are not returned each rep.
"""
import ctypes
import statistics
import sys
import time

_libc = ctypes.CDLL("libc.so.6")
_libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD
_libc.mallopt(-3, 1 << 25)    # M_MMAP_THRESHOLD

import torch
import torch.nn.functional as F

SHAPES = [("cnn-late conv1", 128, 1, 28, 16), ("cnn-late conv2", 128, 16, 14, 32),
          ("clip-dual conv1", 256, 1, 28, 16), ("clip-dual conv2", 256, 16, 14, 32)]


def kernel(x, w, b):
    with torch.autograd.profiler.profile() as prof:
        F.conv2d(x, w, b, padding=1)
    names = {e.name for e in prof.function_events}
    return sorted(n for n in names if "conv" in n and n not in ("aten::conv2d", "aten::convolution", "aten::_convolution"))


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    # "cpu": process CPU time at 1 thread only (robust to a loaded machine)
    clock, threads = (time.process_time, (1,)) if "cpu" in sys.argv[2:] else (time.perf_counter, (1, 2))
    print(f"torch {torch.__version__}, mkldnn available {torch.backends.mkldnn.is_available()}")
    for name, B, C, H, O in SHAPES:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(B, C, H, H, generator=g) - 0.5
        w = (torch.rand(O, C, 3, 3, generator=g) - 0.5).requires_grad_()
        b = (torch.rand(O, generator=g) - 0.5).requires_grad_()
        dy = torch.rand(B, O, H, H, generator=g) - 0.5
        xg = x.clone().requires_grad_()
        res = {}
        for T in threads:
            torch.set_num_threads(T)
            t = {"fwd": [], "fwd+bwd(w)": [], "fwd+bwd(w,d)": []}
            for r in range(-20, reps):
                t0 = clock()
                with torch.no_grad():
                    F.conv2d(x, w, b, padding=1)
                t1 = clock()
                F.conv2d(x, w, b, padding=1).backward(dy)
                t2 = clock()
                F.conv2d(xg, w, b, padding=1).backward(dy)
                t3 = clock()
                w.grad = b.grad = xg.grad = None
                if r >= 0:
                    t["fwd"].append(t1 - t0); t["fwd+bwd(w)"].append(t2 - t1); t["fwd+bwd(w,d)"].append(t3 - t2)
            res[T] = {k: 1e3 * statistics.median(v) for k, v in t.items()}
        print(f"{name}: x ({B},{C},{H},{H}) -> {O}, kernel {kernel(x, w, b)}  (median ms of {reps})")
        for T in threads:
            res[T]["=> bwd-data"] = res[T]["fwd+bwd(w,d)"] - res[T]["fwd+bwd(w)"]
        for k in ("fwd", "fwd+bwd(w)", "fwd+bwd(w,d)", "=> bwd-data"):
            print(f"  {k:14s}" + "".join(f"  T={T} {res[T][k]:8.3f}" for T in threads))


if __name__ == "__main__":
    main()
