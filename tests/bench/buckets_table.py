"""The bucket table of docs/distributed.md from tests/bench/buckets.sh's JSON lines:
the median over repetitions of each run's median step and un-hidden all-reduce."""
import json, sys, statistics as st
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["model"], r["width"], r["bucket_mb"])].append(r)
keys = sorted({(m, w) for m, w, _ in rows}, key=lambda k: (k[0], k[1] or 0))
print("| model | gradient | one sum: step | one sum: all-reduce | bucket_mb | buckets | step | all-reduce not hidden | samples/s vs one sum |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for m, w in keys:
    base = rows[(m, w, 0.0)]
    bs = st.median(r["median_ms"] for r in base); ba = st.median(r["allreduce_ms"] for r in base)
    for mb in sorted({k[2] for k in rows if k[:2] == (m, w) and k[2] > 0}, reverse=True):
        rs = rows[(m, w, mb)]
        s = st.median(r["median_ms"] for r in rs); a = st.median(r["allreduce_ms"] for r in rs)
        name = m + (f" --width {w}" if w else "")
        print(f"| {name} | {base[0]['params']*4/2**20:.1f} MiB | {bs:.2f} ms | {ba:.2f} ms | {mb:g} | {rs[0]['buckets'] or 1} | {s:.2f} ms | {a:.2f} ms | {bs/s:.2f}× |")
