#!/usr/bin/python3
"""Tables of tests/bench/distributed.sh's JSON lines (docs/distributed.md).

1. Measured here: each model's training step at 1 rank x 1 thread, 2 ranks x 1 thread (the
   same global batch, half on each rank) and 1 rank x 2 threads; medians over the repetitions
   of each run's median step; the all-reduce's share of the 2-rank step.
2. The all-reduce alone at 2 ranks over message sizes (shared memory).
3. A projection of weak scaling (each rank keeps the reference batch) to 8-64 ranks on a
   10 or 100 Gb/s network, from a ring all-reduce model:
       T(N, S) = 2(N-1) a + 2 (N-1)/N S / b + (N-1)/N S g
   b the network's bandwidth, a its per-message latency (assumed: 25 us for 10 Gb/s TCP,
   3 us for 100 Gb/s RDMA), g the per-byte cost of copying and summing on these cores,
   fitted to the measured all-reduce times of messages from 1 MiB up. Efficiency
   E = t / (t + T), t the measured 1-rank step: no overlap of the sum with backward, as
   mmfuse does today.
"""
import json
import statistics
import sys
from collections import defaultdict

MODELS = ["mlp-concat", "tensor-fusion", "cnn-late", "clip-dual", "xattn-fusion"]
NETWORKS = [("10 Gb/s", 10e9 / 8, 25e-6), ("100 Gb/s", 100e9 / 8, 3e-6)]
RANKS = [8, 16, 32, 64]


def main(path):
    runs = defaultdict(list)
    allreduce = {}
    params = {}
    for line in open(path):
        r = json.loads(line)
        if r.get("model") == "allreduce":
            allreduce[r["bytes"]] = r["median_ms"] * 1e-3
            continue
        key = (r["model"], r.get("ranks", 1), r["threads"])
        runs[key].append(r)
        params[r["model"]] = r["params"]
    print("| model | batch | 1 rank × 1 thread | 2 ranks × 1 thread | all-reduce share | "
          "1 rank × 2 threads | 2 ranks ÷ 1 rank (samples/s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    step1 = {}
    for m in MODELS:
        cells = []
        for key in [(m, 1, 1), (m, 2, 1), (m, 1, 2)]:
            rs = runs.get(key)
            cells.append(statistics.median(x["median_ms"] for x in rs) if rs else None)
        if cells[0] is None:
            continue
        step1[m] = cells[0] * 1e-3
        two = runs.get((m, 2, 1))
        share = (statistics.median(x["allreduce_ms"] / x["median_ms"] for x in two)
                 if two else None)
        batch = runs[(m, 1, 1)][0]["batch"]
        fmt = lambda v: "–" if v is None else "%.2f ms" % v
        speed = "–" if cells[1] is None else "%.2f×" % (cells[0] / cells[1])
        print("| %s | %d | %s | %s | %s | %s | %s |" % (
            m, batch, fmt(cells[0]), fmt(cells[1]),
            "–" if share is None else "%.0f %%" % (100 * share), fmt(cells[2]), speed))
    if not allreduce:
        return
    print()
    print("| message | all-reduce at 2 ranks | rate |")
    print("|---:|---:|---:|")
    for size in sorted(allreduce):
        t = allreduce[size]
        print("| %d KiB | %.3f ms | %.2f GB/s |" % (size // 1024, t * 1e3, size / t * 1e-9))
    big = sorted(s for s in allreduce if s >= 1 << 20)
    g = statistics.median(allreduce[s] / s for s in big) if big else 0.0
    print()
    print("Fitted g = %.3f ns/byte (copy and sum, 2 ranks on this machine)." % (g * 1e9))
    print()
    head = " | ".join("%s, %d ranks" % (n, k) for n, _, _ in NETWORKS for k in RANKS)
    print("| model | gradient | %s |" % head)
    print("|---|---:|" + "---:|" * (len(NETWORKS) * len(RANKS)))
    for m in MODELS:
        if m not in step1:
            continue
        s = params[m] * 4
        cells = []
        for _, b, a in NETWORKS:
            for n in RANKS:
                t = 2 * (n - 1) * a + 2 * (n - 1) / n * s / b + (n - 1) / n * s * g
                cells.append("%.0f %%" % (100 * step1[m] / (step1[m] + t)))
        print("| %s | %.1f MB | %s |" % (m, s / 1e6, " | ".join(cells)))


if __name__ == "__main__":
    main(sys.argv[1])
