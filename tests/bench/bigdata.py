#!/usr/bin/python3
"""Write a synthetic HDF5 dataset larger than memory budgets, in mmfuse's layout, for
tests/bench/bigdata.sh: two float32 modalities a and b of WIDTH values per sample (standard
normal), /label = 2·[sum(a[:16]) > 0] + [sum(b[:16]) > 0] (4 classes, both modalities
needed), /split: the last 2·HOLD samples are validation then test.

  bigdata.py OUT.h5 [--samples N] [--width W] [--layout chunked|contiguous] [--chunk ROWS]

Default: 2^20 samples × 2 × 512 floats = 4.3 GB, chunked by 1024 rows (2 MB chunks, no
compression). Blocks are seeded by their position, so both layouts hold the same numbers.
"""
import argparse
import os
import sys

import h5py
import numpy as np

BLOCK = 16384  # rows generated at once: 64 MB of float32 per modality at width 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=1 << 20)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--layout", choices=["chunked", "contiguous"], default="chunked")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--hold", type=int, default=16384)
    a = ap.parse_args()
    n, w = a.samples, a.width
    tmp = a.out + ".part"
    with h5py.File(tmp, "w") as f:
        g = f.create_group("modalities", track_order=True)
        chunks = (a.chunk, w) if a.layout == "chunked" else None
        mods = [g.create_dataset(m, (n, w), "f4", chunks=chunks) for m in ("a", "b")]
        label = np.empty(n, np.int64)
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            rng = np.random.default_rng(start)
            x = [rng.standard_normal((stop - start, w), dtype=np.float32) for _ in mods]
            for d, v in zip(mods, x):
                d[start:stop] = v
            label[start:stop] = 2 * (x[0][:, :16].sum(1) > 0) + (x[1][:, :16].sum(1) > 0)
        f["label"] = label
        split = np.zeros(n, np.uint8)
        split[n - 2 * a.hold:n - a.hold] = 1
        split[n - a.hold:] = 2
        f["split"] = split
        f.attrs["source"] = "tests/bench/bigdata.py (synthetic)"
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {n} samples, 2 x {w} float32, {a.layout}, "
          f"{os.path.getsize(a.out) / 1e9:.2f} GB", file=sys.stderr)


if __name__ == "__main__":
    main()
