#!/usr/bin/python3
"""Markdown tables from tests/bench/threads.sh's TSV: per case, the median (min-max) at each
thread count and the ratio of the default (or 2 threads) to 1 thread.
    tests/bench/threads_table.py docs/bench-threads.tsv"""
import csv
import statistics
import sys
from collections import defaultdict

cells = defaultdict(list)
order = []
for row in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if not row["value"]:
        continue
    key = (row["case"], row["threads"])
    if row["case"] not in order:
        order.append(row["case"])
    cells[key].append(float(row["value"]))


def cell(values):
    return "%.4g (%.4g–%.4g)" % (statistics.median(values), min(values), max(values))


def table(cases, other, label):
    print("| case | threads 1 | %s | ratio |" % label)
    print("|---|---:|---:|---:|")
    for case in cases:
        one, many = cells.get((case, "1")), cells.get((case, other))
        if not one or not many:
            continue
        ratio = statistics.median(many) / statistics.median(one)
        print("| %s | %s | %s | %.2f |" % (case, cell(one), cell(many), ratio))
    print()


load = [c for c in order if (c, "0") in cells]
quiet = [c for c in order if (c, "2") in cells]
if load:
    print("Wall time (ms; bench rows: median step ms), threads 1 against the default:\n")
    table(load, "0", "default (2)")
if quiet:
    print("Quiet machine, threads 1 against 2 (ms):\n")
    table(quiet, "2", "threads 2")
