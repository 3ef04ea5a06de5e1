#!/bin/sh
# mmfuse eval / predict / embed on trained runs (issue 10 item 7): the numbers agree with the
# run's own test pass, with each other and with a transfer to another file; bad input exits 2
# with one sentence.
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
. "$(dirname "$0")/lib.sh"
need_h5py

"$exe" run "$src/experiments/satellite.yaml" --run-dir sat -q -o train.epochs=3 -o threads=1 \
    > sat.out 2>&1
check "a satellite run to evaluate" has "^test accuracy" sat.out
"$exe" run "$src/experiments/satellite-nir-regression.yaml" --run-dir nir -q \
    -o train.epochs=2 -o threads=1 > nir.out 2>&1
check "a regression run to evaluate" has "^test mse" nir.out

# ---------------------------------------------------------------- eval
"$exe" eval sat --json ev-test.json > ev.out 2>&1
check "eval: exit 0" test $? -eq 0
check "eval: names what it evaluated" \
    has "^sat (best checkpoint) on the test split of $src/experiments/data/satellite.h5, 2000 samples:" ev.out
cp "$src/experiments/data/satellite.h5" other.h5
"$exe" eval sat -o data.path=other.h5 --json ev-other.json -q > /dev/null 2>&1
check "eval on another file (a relative path from here): exit 0" test $? -eq 0
"$exe" eval sat --split val --checkpoint last --json ev-val.json -q > /dev/null 2>&1
check "eval --split val --checkpoint last: exit 0" test $? -eq 0
cat > agree.py <<'EOF'
import csv, json, math
import h5py, numpy as np
r = json.load(open("sat/result.json"))
t = json.load(open("ev-test.json"))
o = json.load(open("ev-other.json"))
v = json.load(open("ev-val.json"))
# the run's own test pass at the kept parameters, and the same data under another name
assert t["metrics"] == r["test"], (t["metrics"], r["test"])
assert o["metrics"] == r["test"]
assert t["details"]["confusion"] == r["details"]["test"]["confusion"]
assert v["split"] == "val" and v["checkpoint"].endswith("last.h5") and v["samples"] == 443
rows = list(csv.DictReader(open("preds.csv")))
assert len(rows) == 2000 and rows[0]["split"] == "test"
names = [k[2:] for k in rows[0] if k.startswith("p_")]
assert names == t["details"]["classes"], (names, t["details"]["classes"])
right = 0
for row in rows:
    p = [float(row["p_" + n]) for n in names]
    assert abs(sum(p) - 1) < 1e-4, p
    assert int(row["prediction"]) == int(np.argmax(p))
    assert row["prediction_name"] == names[int(row["prediction"])]
    assert row["label_name"] == names[int(row["label"])]
    right += row["prediction"] == row["label"]
assert abs(right / 2000 - r["test"]["accuracy"]) < 1e-12, (right, r["test"])
f = h5py.File("emb.h5", "r")
assert f["embeddings/visible"].shape == (2000, 32) and f["embeddings/nir"].shape == (2000, 32)
assert f["embeddings/fused"].shape == (2000, 64) and f["logits"].shape == (2000, 6)
assert list(f["labels"][()]) == [int(row["label"]) for row in rows]
assert list(f["index"][()]) == [int(row["index"]) for row in rows]
assert (np.argmax(f["logits"][()], 1) == [int(row["prediction"]) for row in rows]).all()
assert f.attrs["split"] == "test" and f.attrs["checkpoint"].endswith("best.h5")
# regression: predictions in the data's units give the run's test mse
rr = json.load(open("nir/result.json"))
rows = list(csv.DictReader(open("nir.csv")))
k = len([c for c in rows[0] if c.startswith("target_")])
mse = sum((float(x["prediction_%d" % j]) - float(x["target_%d" % j])) ** 2
          for x in rows for j in range(k)) / (len(rows) * k)
assert abs(mse - rr["test"]["mse"]) < 1e-4 * rr["test"]["mse"], (mse, rr["test"]["mse"])
EOF
# ---------------------------------------------------------------- predict, embed
"$exe" predict sat -o preds.csv > pr.out 2>&1
check "predict: exit 0" test $? -eq 0
check "predict: says what it wrote" has "^sat: 2000 predictions (test split) in preds.csv$" pr.out
"$exe" embed sat -o emb.h5 -q > /dev/null 2>&1
check "embed: exit 0" test $? -eq 0
check "embed: every array with a fletcher32 checksum (issue 13)" $py -c "
import h5py
bad = []
h5py.File('emb.h5', 'r').visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and not o.fletcher32 else None)
assert not bad, bad"
"$exe" predict nir -o nir.csv -q > /dev/null 2>&1
check "predict on regression: exit 0" test $? -eq 0
check "eval, predict and embed agree with the run and each other" $py agree.py

# ---------------------------------------------------------------- bad input
for verb in eval predict embed; do
    "$exe" $verb --help > help.out 2>&1
    check "$verb --help: exit 0" test $? -eq 0
    check "$verb --help: usage" has "^usage: mmfuse $verb RUN_DIR" help.out
done
mkdir notrun
"$exe" eval notrun > e1 2>&1
check "eval of a folder that is not a run: exit 2" test $? -eq 2
check "… naming it" has "^notrun: not a run folder (it has no config.yaml)$" e1
"$exe" eval sat --split holdout > e2 2>&1
check "an unknown split: exit 2" test $? -eq 2
check "… naming the splits" has "^--split holdout: the splits are train, val and test$" e2
"$exe" eval sat --checkpoint gone.h5 > e3 2>&1
check "a missing checkpoint: exit 2" test $? -eq 2
check "… naming it" has "^cannot read the checkpoint 'gone.h5': No such file or directory$" e3
"$exe" predict sat > e4 2>&1
check "predict without -o: exit 2" test $? -eq 2
check "… saying so" has "^mmfuse predict: -o FILE names the output$" e4
"$exe" predict sat -o /nonexistent/dir/p.csv > e5 2>&1
check "an unwritable output: exit 1" test $? -eq 1
check "… and no file" test ! -e /nonexistent/dir/p.csv
"$exe" eval sat -o data.path=missing.h5 > e6 2>&1
check "eval on a file that does not exist: exit 2" test $? -eq 2
check "… naming it" has "missing.h5" e6

finish
