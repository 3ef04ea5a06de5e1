#!/usr/bin/python3
"""Summarise compare.sh's JSON lines as the markdown tables of docs/performance.md:
per (model, mode, threads) the median over repetitions of each side's median step time,
the ratio mmfuse/PyTorch, mmfuse's GFLOP/s and share of the sgemm rate, and peak RSS."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(lambda: {"torch": [], "mmfuse": []})
for line in open(sys.argv[1]):
    r = json.loads(line)
    side = "mmfuse" if r.get("tag") == "mmfuse" else "torch"
    threads = r.get("threads", r.get("torch_threads"))
    runs[(r["model"], r["mode"], threads)][side].append(r)

order = ["mlp-concat", "tensor-fusion", "cnn-late", "clip-dual"]
print("| model | mode | threads | PyTorch ms | mmfuse ms | ratio | mmfuse GFLOP/s | sgemm share | "
      "PyTorch RSS MB | mmfuse RSS MB | RSS ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(runs, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1] != "train", k[2])):
    t, m = runs[key]["torch"], runs[key]["mmfuse"]
    if not t or not m:
        continue
    tm = statistics.median(r["median_ms"] for r in t)
    mm = statistics.median(r["median_ms"] for r in m)
    gf = statistics.median(r["gflops_at_median"] for r in m)
    share = statistics.median(r["sgemm_fraction"] for r in m)
    trss = statistics.median(r["peak_rss_kb"] for r in t) / 1024
    mrss = statistics.median(r["peak_rss_kb"] for r in m) / 1024
    print(f"| {key[0]} | {key[1]} | {key[2]} | {tm:.2f} | {mm:.2f} | {mm / tm:.2f} | {gf:.1f} | "
          f"{100 * share:.0f} % | {trss:.0f} | {mrss:.1f} | {mrss / trss:.3f} |")
print(f"\n{len(t)} repetition(s) per cell; each figure is the median over repetitions of the "
      "median step time.")
