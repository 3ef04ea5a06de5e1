#!/bin/sh
# Checkpoints, resume and divergence (issue 10 items 5, 6, 10), end to end:
#   - the checkpoint layout read as-is with /usr/bin/python3 and h5py;
#   - runs killed with SIGKILL at 12 random moments, each resumed, end bit-identical (metrics
#     and every parameter of best.h5 and last.h5) to the uninterrupted run — epoch-end
#     validation, and mid-epoch validation with gradient accumulation and train.steps;
#   - bad input: a folder that is not a run, a checkpoint of another model, a truncated one,
#     --init-from with nothing to match — exit 2, one sentence naming the file, the folder
#     left as it was;
#   - --init-from loads what matches by module path and names the rest;
#   - a checkpoint written by another build of a plugin the model uses: refused naming the
#     plugin and both hashes (eval, resume), loaded with a warning under --force;
#   - divergence: a non-finite gradient and a non-finite loss stop the run naming the step and
#     the tensor, exit 1, status "diverged", the last good checkpoint kept.
set -u
exe=${MMFUSE_EXE:?}
. "$(dirname "$0")/lib.sh"
need_h5py

# ---------------------------------------------------------------- experiments
cat > base.yaml <<'EOF'
name: ckpt
seed: 3
threads: 1
data:
  reader: synthetic
  seed: 7
  samples: 3000
  classes: 4
  names: [a, b]
  dims: [16, 16]
  split: [0.7, 0.15, 0.15]
  batch_size: 32
model:
  encoders:
    a: {type: mlp, hidden: [48], out: 24, dropout: 0.1}
    b: {type: mlp, hidden: [48], out: 24, dropout: 0.1}
  fusion: {type: concat}
  head: {type: mlp, hidden: [32]}
  missing: learned
loss: {type: cross_entropy}
optim: {type: adamw, lr: 2.0e-3, weight_decay: 0.01}
train: {epochs: 12, modality_dropout: 0.2, checkpoint_every: 0}
EOF
cat > steps.yaml <<'EOF'
include: [base.yaml]
name: ckpt-steps
train: {steps: 240, val_every: 17, accumulate: 2, patience: 6}
EOF

# Metrics and every parameter equal, bit for bit.
cat > compare.py <<'EOF'
import json, sys
import h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
ra, rb = (json.load(open(d + "/result.json")) for d in (a, b))
ok = ra["status"] == rb["status"] == "done"
for k in ("test", "val", "best_epoch", "best_val_metric", "epochs"):
    ok = ok and ra.get(k) == rb.get(k)
for f, groups in (("best.h5", ["params"]), ("last.h5", ["params", "optim/exp_avg", "optim/exp_avg_sq"])):
    fa, fb = (h5py.File(d + "/checkpoints/" + f, "r") for d in (a, b))
    for g in groups:
        for n in fa[g]:
            ok = ok and np.array_equal(fa[g][n][()], fb[g][n][()])
    ok = ok and dict(fa.attrs).keys() == dict(fb.attrs).keys()
    ok = ok and all(fa.attrs[k] == fb.attrs[k] for k in fa.attrs if k != "created")
fa, fb = (h5py.File(d + "/checkpoints/last.h5", "r") for d in (a, b))
ok = ok and np.array_equal(fa["rng/modality_dropout"][()], fb["rng/modality_dropout"][()])
rows = lambda d: [",".join(r.split(",")[:-1]) for r in open(d + "/metrics.csv")]  # not seconds
ok = ok and rows(a) == rows(b)
sys.exit(0 if ok else 1)
EOF

# ---------------------------------------------------------------- the layout, with h5py
"$exe" run base.yaml --run-dir ref -q > ref.out 2>&1
check "the uninterrupted run finishes" has "^test accuracy" ref.out
check "best.h5 and last.h5 written" test -s ref/checkpoints/best.h5 -a -s ref/checkpoints/last.h5
ls ref/checkpoints > names
check "no temporary left beside the checkpoints" test "$(wc -l < names)" -eq 2
cat > layout.py <<'EOF'
import json, sys
import h5py, numpy as np
f = h5py.File(sys.argv[1] + "/checkpoints/last.h5", "r")
a = f.attrs
assert a["format"] == "mmfuse-checkpoint" and a["format_version"] == 1, dict(a)
assert a["kind"] == "last" and a["finished"] == 1 and a["step"] == 12 * 66, dict(a)
w = f["params/model.encoders.a.fc0.weight"]
assert w.dtype == np.float32 and w.shape == (16, 48), (w.dtype, w.shape)
assert f["params/model.missing.a"].shape == (16,)
assert f["optim"].attrs["type"] == "adamw" and f["optim"].attrs["step"] == a["step"]
assert set(f["optim"]) == {"exp_avg", "exp_avg_sq"}
assert f["optim/exp_avg"].keys() == f["params"].keys()
assert f["rng/modality_dropout"].shape == (6,)
s = f["selection"].attrs
assert s["metric"] == "val.accuracy" and s["higher_is_better"] == 1
r = json.load(open(sys.argv[1] + "/result.json"))
assert abs(s["best"] - r["best_val_metric"]) < 1e-12 and s["best_epoch"] + 1 == r["best_epoch"]
assert f["standardization/a/mean"].shape == (16,) and f["standardization/b/std"].shape == (16,)
cfg = f["config"][()].decode()
assert "name: ckpt" in cfg and "modality_dropout: 0.2" in cfg, cfg[:200]
assert json.loads(f["manifest"][()].decode())
b = h5py.File(sys.argv[1] + "/checkpoints/best.h5", "r")
assert b.attrs["kind"] == "best" and b.attrs["step"] == s["best_step"]
assert "optim" not in b and "rng" not in b and b["params"].keys() == f["params"].keys()
EOF
check "the checkpoint reads as documented with h5py" $py layout.py ref

# ---------------------------------------------------------------- SIGKILL at random moments
"$exe" run steps.yaml --run-dir ref-steps -q > ref-steps.out 2>&1
check "the steps run finishes" has "^test accuracy" ref-steps.out
# a run's duration in ms, to kill inside it
ms() {
    t0=$(date +%s%N)
    "$exe" run "$1" --run-dir "time-$1" -q > /dev/null 2>&1
    echo $((($(date +%s%N) - t0) / 1000000))
}
resumed=0
for spec in base.yaml:ref steps.yaml:ref-steps; do
    yaml=${spec%%:*}
    ref=${spec##*:}
    total=$(ms "$yaml")
    # 6 kills that hit a started run (a kill before the run folder exists leaves nothing to
    # resume: it is drawn again, at most 12 tries)
    here=0
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
        [ $here -ge 6 ] && break
        d=kill-$yaml-$i
        # a moment in the first 90 % of the run (uniform), drawn by the shell
        at=$(awk -v s="$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')" -v t="$total" \
             'BEGIN { srand(s); printf "%.3f", (0.02 + 0.88 * rand()) * t / 1000 }')
        "$exe" run "$yaml" --run-dir "$d" -q > /dev/null 2>&1 &
        pid=$!
        echo "kill $d at ${at}s of ${total}ms"
        sleep "$at"
        kill -9 $pid 2> /dev/null
        wait $pid 2> /dev/null
        # killed before the folder existed: nothing was started, nothing to resume
        [ -d "$d" ] || { echo "note: $d killed at ${at}s before its folder existed"; continue; }
        "$exe" run --resume "$d" -q > "$d.out" 2>&1
        here=$((here + 1))
        if $py compare.py "$ref" "$d"; then
            resumed=$((resumed + 1))
        else
            echo "FAIL killed at ${at}s of ${total}ms: $d differs from $ref"
            cat "$d.out"
            failed=$((failed + 1))
        fi
    done
done
check "12 killed runs resumed bit-identical ($resumed)" test $resumed -eq 12

"$exe" run --resume ref > fin.out 2>&1
check "resuming a finished run: exit 0, says so" \
    has "ref: the run finished already (result.json); nothing to resume" fin.out
"$exe" run base.yaml --resume latest -q > latest.out 2>&1
check "--resume latest without runs/: exit 2" test $? -eq 2
check "--resume latest names the folder" \
    has "base.yaml: --resume latest: no run of experiment 'ckpt' in runs/ckpt/ to resume" latest.out

# ---------------------------------------------------------------- bad input
mkdir notrun
"$exe" run --resume notrun > e1 2>&1
check "--resume of a folder that is not a run: exit 2" test $? -eq 2
check "… naming it" has "^notrun: not a run folder (it has no config.yaml), so nothing to resume$" e1
"$exe" run base.yaml --resume ref -o seed=4 > e2 2>&1
check "--resume with -o: exit 2" test $? -eq 2
check "… saying why" has "takes no -o" e2

# a checkpoint from another model (wider hidden layer) in a resumable folder
"$exe" run base.yaml --run-dir wide -q -o train.epochs=1 \
    -o 'model.encoders.a.hidden=[64]' > /dev/null 2>&1
"$exe" run base.yaml --run-dir victim -q -o train.epochs=2 > /dev/null 2>&1
rm victim/result.json
cp wide/checkpoints/last.h5 victim/checkpoints/last.h5
ls -l --time-style=+%s%N victim victim/checkpoints > before
"$exe" run --resume victim > e3 2>&1
check "a checkpoint of another model: exit 2" test $? -eq 2
check "… naming the first mismatched parameter and both shapes" \
    has "victim/checkpoints/last.h5: /params/model.encoders.a.fc0.weight has shape (16,64) in the checkpoint but (16,48) in this model" e3
ls -l --time-style=+%s%N victim victim/checkpoints > after
check "… and the folder is left as it was" cmp -s before after

head -c 3000 ref/checkpoints/last.h5 > victim/checkpoints/last.h5
"$exe" run --resume victim > e4 2>&1
check "a truncated checkpoint: exit 2" test $? -eq 2
check "… one sentence naming the file" \
    has "^victim/checkpoints/last.h5: not a readable HDF5 file (corrupt or truncated?), so not a checkpoint$" e4

# a position the plan cannot reach (an edited or damaged checkpoint): refused, not seeked to
"$exe" run base.yaml --run-dir farpos -q -o train.epochs=2 > /dev/null 2>&1
rm farpos/result.json
$py -c "import h5py; f = h5py.File('farpos/checkpoints/last.h5', 'r+'); f.attrs['batch'] = f.attrs['batch'] + 1000000000"
"$exe" run --resume farpos > e13 2>&1
check "a checkpoint position beyond the plan: exit 2" test $? -eq 2
check "… saying so" grep -q "^farpos/checkpoints/last.h5: the checkpoint's position (step [0-9]*, epoch [0-9]*, batch 100000[0-9]*) is outside this run's plan" e13

# ---------------------------------------------------------------- --init-from
"$exe" run base.yaml --run-dir ft -o train.epochs=1 -o 'model.head.hidden=[16]' \
    --init-from ref/checkpoints/best.h5 > ft.out 2>&1
check "--init-from: the run trains" has "^test accuracy" ft.out
check "… says how many parameters it loaded" \
    has "init-from ref/checkpoints/best.h5: 11 of 14 parameters loaded" ft.out
check "… and names the ones of another shape" \
    has "of another shape in the checkpoint, initialised as usual (3): model.head.fc0.weight, model.head.fc0.bias, model.head.fc1.weight" ft.out
"$exe" run base.yaml --no-save -o train.epochs=1 \
    --init-from "$MMFUSE_SOURCE_ROOT/experiments/data/satellite.h5" > e5 2>&1
check "--init-from a file that is not a checkpoint: exit 2" test $? -eq 2
check "… naming it" has "satellite.h5: an HDF5 file, but not an mmfuse checkpoint" e5
# ---------------------------------------------------------------- plugins changed
# issue 13: a checkpoint records its run's plugins (manifest.json); one written by another
# build of a plugin the model uses is refused naming it, unless --force
"$exe" new-plugin fusion labf lab/labf > /dev/null
(cd lab/labf && cc -shared -fPIC -O0 -I"$MMFUSE_SOURCE_ROOT/include" labf.c -o labf.so) || echo "FAIL: cc labf" >&2
export MMFUSE_PLUGIN_PATH="$tmp/lab/labf"
"$exe" run base.yaml --run-dir labrun -q -o train.epochs=2 -o model.fusion.type=labf > /dev/null 2>&1
check "a run with a lab fusion plugin" test -f labrun/checkpoints/last.h5
old=$(sha256sum lab/labf/labf.so | cut -c1-12)
(cd lab/labf && cc -shared -fPIC -O2 -I"$MMFUSE_SOURCE_ROOT/include" labf.c -o labf.so)
new=$(sha256sum lab/labf/labf.so | cut -c1-12)
"$exe" eval labrun > e7 2>&1
check "eval with the plugin rebuilt: exit 2" test $? -eq 2
check "… naming the plugin, both builds and the way out" has "^labrun/checkpoints/best.h5 was written with other plugins than this experiment's: the fusion 'labf' was 0.1.0 (sha256 $old…, $tmp/lab/labf/labf.so), now 0.1.0 (sha256 $new…, $tmp/lab/labf/labf.so); give --force to load it anyway$" e7
"$exe" eval labrun --force > e8 2>&1
check "eval --force: exit 0" test $? -eq 0
check "… with a warning" has "^mmfuse: warning: labrun/checkpoints/best.h5 was written with other plugins (loaded anyway, --force): the fusion 'labf'" e8
rm labrun/result.json
"$exe" run --resume labrun -q > e9 2>&1
check "resume with the plugin rebuilt: exit 2" test $? -eq 2
check "… naming it" has "^labrun/checkpoints/last.h5 was written with other plugins than this experiment's: the fusion 'labf'" e9
"$exe" run --resume labrun -q --force > e10 2>&1
check "resume --force: trains on" has "^test accuracy" e10
"$exe" run base.yaml --no-save -q -o train.epochs=1 -o model.fusion.type=labf \
    --init-from ref/checkpoints/best.h5 > e11 2>&1
check "--init-from a run of other plugins (concat): the shared ones match, loaded" has "^test accuracy" e11
unset MMFUSE_PLUGIN_PATH

# ---------------------------------------------------------------- checksums
# issue 13: every array of a checkpoint carries a Fletcher-32 checksum; a flipped byte in a
# parameter is refused naming it, not loaded as a wrong number
check "every array dataset of last.h5 and best.h5 has fletcher32" $py -c "
import h5py
for f in ('ref/checkpoints/last.h5', 'ref/checkpoints/best.h5'):
    bad = []
    h5py.File(f, 'r').visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and o.shape and not o.fletcher32 else None)
    assert not bad, (f, bad)"
cp -r ref refc
$py - refc/checkpoints/best.h5 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    at = f["params/model.head.fc0.weight"].id.get_chunk_info(0).byte_offset
with open(sys.argv[1], "r+b") as raw:
    raw.seek(at + 5)
    b = raw.read(1)
    raw.seek(at + 5)
    raw.write(bytes([b[0] ^ 0x40]))
EOF
"$exe" eval refc > e12 2>&1
check "a flipped byte in a parameter: exit 2" test $? -eq 2
check "… naming the file and the dataset" has "^refc/checkpoints/best.h5: /params/model.head.fc0.weight cannot be read: the file is corrupt (its checksum does not match) or truncated$" e12

# ---------------------------------------------------------------- divergence
sed -e 's/^name: ckpt/name: diverge/' -e '/^model:/,$d' base.yaml > grad.yaml
cat >> grad.yaml <<'EOF'
plugins: {path: ["${env:MMFUSE_MODEL_FIXTURES}"]}
model:
  encoders:
    a: {type: sqrt_abs}
    b: {type: sqrt_abs}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 3, modality_dropout: 0.5, val_every: 1}
EOF
"$exe" run grad.yaml --run-dir dg -q > dg.out 2>&1
st=$?
check "a non-finite gradient: exit 1" test $st -eq 1
check "… naming the step and the first non-finite gradient with its op and module" \
    grep -Eq "training diverged at step [0-9]+ \(epoch 1\): the gradient norm is NaN; the first non-finite value is the gradient of op .mul. in model.encoders.[ab] \(shape \(32,16\)\); no checkpoint was written before it" dg.out
check "… result.json says diverged" has '"status": "diverged"' dg/result.json
cat > regress.yaml <<'EOF'
name: explode
seed: 1
threads: 1
data:
  reader: hdf5
  path: ${env:MMFUSE_SOURCE_ROOT}/experiments/data/satellite-nir.h5
  batch_size: 64
model:
  encoders:
    visible: {type: mlp, hidden: [32], out: 16}
    nir_ring: {type: mlp, hidden: [32], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: []}
loss: {type: mse}
optim: {type: sgd, lr: 0.3, momentum: 0.9}
train: {epochs: 20, val_every: 2, checkpoint_every: 0}
EOF
"$exe" run regress.yaml --run-dir dl -q > dl.out 2>&1
check "a non-finite loss: exit 1" test $? -eq 1
check "… naming the step and the first non-finite output" \
    grep -Eq "training diverged at step [0-9]+ \(epoch [0-9]+\): the (loss|gradient norm) is (NaN|[+-]infinity); the first non-finite value is (the (output|gradient) of op|none).*; the last good checkpoint is kept: dl/checkpoints/last.h5" dl.out
check "… the last good checkpoint kept, finite" $py -c "
import h5py, numpy as np
f = h5py.File('dl/checkpoints/last.h5', 'r')
assert all(np.isfinite(f['params'][n][()]).all() for n in f['params'])"

"$exe" run base.yaml --no-save -o train.epochs=1 --init-from dl/checkpoints/last.h5 > e6 2>&1
check "--init-from with nothing matching: exit 2" test $? -eq 2
check "… saying so" has "dl/checkpoints/last.h5: none of this model's 14 parameters is in the checkpoint with its shape (the first, model.encoders.a.fc0.weight, is missing): nothing to initialise from" e6

finish
