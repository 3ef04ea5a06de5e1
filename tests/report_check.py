#!/usr/bin/env python3
"""Check a report page as the browser left it (chromium --dump-dom): its charts and series.

  report_check.py DOM.html [--expect CHART=S1,S2]... [--cells CHART=N]... [--bars CHART=N]...
                  [--text STRING]... [--auto RUN_DIR]

--expect   the <svg data-chart=CHART> exists and holds exactly these data-series, in order
           (separated by ";" instead when a name holds a comma)
--cells    the chart has N heat-map cells (rect.cell)
--bars     each series of the chart has N bars (rect.bar)
--text     the page's visible text contains STRING (so escaping kept it)
--auto     the charts a run folder's files call for, by the rule of docs/training.md: a
           train_X with a val_X is chart X with both; any other column but epoch, step and
           seconds a chart of its own; a confusion chart per split in result.json's details
           with n² cells; noise curves one series per modality; drop bars.
Every chart's coordinates must be finite numbers. Prints what is wrong; exit 1 if anything.
"""
import csv
import json
import os
import re
import sys
from html.parser import HTMLParser

GEOMETRY = {"x", "y", "x1", "x2", "y1", "y2", "width", "height", "d", "transform", "viewBox"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.charts = {}     # id -> {"series": [names], "cells": n, "bars": {series: n}}
        self.order = []
        self.stack = []      # (tag, chart id, series)
        self.text = []
        self.bad = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        chart = self.stack[-1][1] if self.stack else None
        series = self.stack[-1][2] if self.stack else None
        if tag == "svg" and "data-chart" in a:
            chart = a["data-chart"]
            if chart in self.charts:
                self.bad.append("two charts named %r" % chart)
            self.charts[chart] = {"series": [], "cells": 0, "bars": {}}
            self.order.append(chart)
        if chart is not None:
            for k, v in a.items():
                if k in GEOMETRY and v and re.search(r"nan|inf", v, re.I):
                    self.bad.append("chart %r: <%s %s=%r>" % (chart, tag, k, v))
            if "data-series" in a:
                series = a["data-series"]
                self.charts[chart]["series"].append(series)
            cls = a.get("class", "")
            if tag == "rect" and cls == "cell":
                self.charts[chart]["cells"] += 1
            if tag == "rect" and cls == "bar":
                bars = self.charts[chart]["bars"]
                bars[series] = bars.get(series, 0) + 1
        if tag not in ("meta", "link", "br", "img", "hr", "input"):  # void: no end tag
            self.stack.append((tag, chart, series))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.text.append(data)


def auto_expect(run_dir):
    """The charts and series run_dir's files call for."""
    expect, cells = {}, {}
    path = os.path.join(run_dir, "metrics.csv")
    if os.path.exists(path):
        with open(path, newline="") as f:
            header = next(csv.reader(f))
        for name in header:
            if name in ("epoch", "step", "seconds") or not name:
                continue
            if name.startswith("val_") and "train_" + name[4:] in header:
                continue
            if name.startswith("train_") and "val_" + name[6:] in header:
                expect[name[6:]] = [name, "val_" + name[6:]]
            elif name.startswith(("train_", "val_")):
                expect[name.split("_", 1)[1]] = [name]
            else:
                expect[name] = [name]
    path = os.path.join(run_dir, "result.json")
    res = json.load(open(path)) if os.path.exists(path) else {}
    for split, d in (res.get("details") or {}).items():
        if isinstance(d, dict) and d.get("confusion"):
            expect["confusion-" + split] = ["confusion"]
            cells["confusion-" + split] = len(d["confusion"]) ** 2
    rob = res.get("robustness") or {}
    if rob.get("noise"):
        expect["robustness-noise"] = list(rob["noise"].keys())
    if rob.get("drop"):
        expect["robustness-drop"] = ["missing"]
    return expect, cells


def main(argv):
    page = Page()
    page.feed(open(argv[1], encoding="utf-8").read())
    text = " ".join(page.text)
    expect, cells, bars, texts = {}, {}, {}, []
    i = 2
    while i < len(argv):
        opt, val = argv[i], argv[i + 1]
        i += 2
        if opt == "--auto":
            e, c = auto_expect(val)
            expect.update(e)
            cells.update(c)
            continue
        if opt == "--text":
            texts.append(val)
            continue
        name, _, rest = val.partition("=")
        if opt == "--expect":
            # series names holding commas ("{type: gated, hidden: [32]}") are split on ";"
            expect[name] = rest.split(";" if ";" in rest else ",")
        elif opt == "--cells":
            cells[name] = int(rest)
        elif opt == "--bars":
            bars[name] = int(rest)
        else:
            sys.exit("report_check.py: unknown option " + opt)
    bad = list(page.bad)
    for chart, series in expect.items():
        got = page.charts.get(chart)
        if got is None:
            bad.append("no chart %r (charts: %s)" % (chart, ", ".join(page.order)))
        elif got["series"] != series:
            bad.append("chart %r has series %s, expected %s" % (chart, got["series"], series))
    for chart, n in cells.items():
        got = page.charts.get(chart, {}).get("cells", 0)
        if got != n:
            bad.append("chart %r has %d cells, expected %d" % (chart, got, n))
    for chart, n in bars.items():
        for series, got in page.charts.get(chart, {}).get("bars", {None: 0}).items():
            if got != n:
                bad.append("chart %r series %r has %d bars, expected %d" % (chart, series, got, n))
    for t in texts:
        if t not in text:
            bad.append("the page does not say %r" % t)
    extra = [c for c in page.order if c not in expect]
    for line in bad:
        print("report_check: %s: %s" % (argv[1], line))
    print("report_check: %s: %d charts (%s)%s" % (argv[1], len(page.order), ", ".join(
        "%s:%d" % (c, len(page.charts[c]["series"])) for c in page.order),
        "; not checked: " + ", ".join(extra) if extra else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
