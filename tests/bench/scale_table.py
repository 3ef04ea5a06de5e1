#!/usr/bin/python3
"""Summarise scale.sh's JSON lines as markdown tables, one per axis and mode: per size and
thread count the median over repetitions of each side's median step time (min–max), the
ratio mmfuse/PyTorch, samples/s of both and mmfuse's GFLOP/s. Both sides must count the same
FLOPs per step in every cell (the formula is shared): a mismatch is printed, and exits 1."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(lambda: {"torch": [], "mmfuse": []})
for line in open(sys.argv[1]):
    r = json.loads(line)
    side = "mmfuse" if r.get("tag") == "mmfuse" else "torch"
    threads = r.get("threads", r.get("torch_threads"))
    if r["model"] == "xattn-fusion":
        axis = f"xattn-fusion, sequence length (patches = tokens) at batch {r['batch']}"
        size = r.get("seq") or 16
    elif r.get("width"):
        axis, size = f"mlp-concat, width at batch {r['batch']}", r["width"]
    else:
        axis, size = "mlp-concat, batch size at the reference widths", r["batch"]
    runs[(axis, r["mode"], size, threads)][side].append(r)


def ms(rs):
    v = [r["median_ms"] for r in rs]
    return statistics.median(v), min(v), max(v)


bad = 0
complete = [k for k in runs if runs[k]["torch"] and runs[k]["mmfuse"]]
for axis, mode in sorted({k[:2] for k in complete}, key=lambda k: (k[0], k[1] != "train")):
    print(f"\n**{axis}, {mode}** (ms per step: median over repetitions of each run's median, "
          "min–max)\n")
    print("| size | threads | MFLOP/step | PyTorch ms | mmfuse ms | ratio | PyTorch samples/s | "
          "mmfuse samples/s | mmfuse GFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(k for k in complete if k[:2] == (axis, mode)):
        t, m = runs[key]["torch"], runs[key]["mmfuse"]
        flops = {r["flops_per_step"] for r in t + m}
        if len(flops) != 1:
            print(f"FLOP counts differ in {key}: {sorted(flops)}", file=sys.stderr)
            bad = 1
        (tm, tlo, thi), (mm, mlo, mhi) = ms(t), ms(m)
        print(f"| {key[2]} | {key[3]} | {min(flops) / 1e6:.1f} | {tm:.2f} ({tlo:.2f}–{thi:.2f}) | "
              f"{mm:.2f} ({mlo:.2f}–{mhi:.2f}) | {mm / tm:.2f} | {t[0]['batch'] / tm * 1e3:.0f} | "
              f"{m[0]['batch'] / mm * 1e3:.0f} | "
              f"{statistics.median(r['gflops_at_median'] for r in m):.1f} |")
reps = max(len(v["mmfuse"]) for v in runs.values()) if runs else 0
print(f"\n{reps} repetition(s) per cell; ratio = mmfuse ms / PyTorch ms (below 1: mmfuse faster).")
sys.exit(bad)
