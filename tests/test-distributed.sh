#!/bin/sh
# Data-parallel training over MPI (issue 14, docs/distributed.md): 2 ranks with a part of
# each batch train the model one process trains with the whole batch — the same loss curve
# over 50 steps (to 1e-4 relative) and the same final parameters, contrastive losses too
# (their batch gathered over the ranks); rank 0 alone writes; a run stopped at 2 ranks resumes
# alone; a rank that dies ends the others; bad input is one message, once. Skipped, saying
# so, when mmfuse was built without MPI.
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
fault=${1:-}
. "$(dirname "$0")/lib.sh"
need_h5py
mpirun=${MPIRUN:-mpirun}
if [ "${MMFUSE_HAVE_MPI:-0}" != 1 ]; then
    echo "SKIP: this mmfuse was built without MPI (meson -Dmpi=enabled, after make deps)"
    exit 77
fi
if ldd "$exe" | grep -q 'libasan\|libtsan'; then
    echo "SKIP under a sanitizer: Open MPI's own start-up leaks and races would be reported"
    exit 77
fi
# CI runs as root; Open MPI refuses that unless told. Two ranks on this 2-core machine,
# one thread each; a rank that waits yields its core (shared machines).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
mpi() { timeout 300 "$mpirun" --oversubscribe -np "$@"; }

# satellite without dropout (a rank draws its own masks), 50 steps of batch 64, a validation
# point after each step so that metrics.csv holds the loss curve
opts="-o model.head.dropout=0 -o train.steps=50 -o train.val_every=1 -o data.batch_size=64"
"$exe" run "$src/experiments/satellite.yaml" --run-dir one -q $opts > one.out 2>&1
check "one process: exit 0" test $? -eq 0
mpi 2 "$exe" run "$src/experiments/satellite.yaml" --run-dir two -q $opts > two.out 2>&1
check "2 ranks: exit 0" test $? -eq 0
check "2 ranks: the result printed once" test "$(count '^test accuracy' two.out)" -eq 1
check "2 ranks: rank 1 made no run folder of its own" test ! -e runs
check "2 ranks: manifest.json says so" grep -q '"ranks": 2' two/manifest.json
check "1 process: ranks 1" grep -q '"ranks": 1' one/manifest.json
cat > same.py <<'EOF'
import csv, sys
import h5py, numpy as np
a, b = (list(csv.DictReader(open(d + "/metrics.csv"))) for d in sys.argv[1:3])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 50
keys = sys.argv[4].split(",") if len(sys.argv) > 4 else ("train_loss", "val_loss", "val_accuracy")
assert len(a) == len(b) == steps, (len(a), len(b))
for key in keys:
    x = np.array([float(r[key]) for r in a]); y = np.array([float(r[key]) for r in b])
    rel = np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12))
    assert rel < 1e-4, (key, rel)
p, q = (h5py.File(d + "/checkpoints/last.h5", "r")["params"] for d in sys.argv[1:3])
names = []
p.visit(lambda n: names.append(n) if isinstance(p[n], h5py.Dataset) else None)
assert names
for n in names:
    u, v = p[n][()], q[n][()]
    assert np.allclose(u, v, rtol=1e-4, atol=1e-5), (n, np.max(np.abs(u - v)))
EOF
check "2 ranks × 32 match 1 process × 64: loss curve over 50 steps and parameters" \
    $py same.py one two

# the gradients summed in buckets started during backward (a tiny bucket size: one bucket per
# parameter or two); a bucket started before its gradients were final would change the curve
mpi 2 "$exe" run "$src/experiments/satellite.yaml" --run-dir buckets $opts \
    -o train.bucket_mb=0.001 > buckets.out 2>&1
check "2 ranks, gradient buckets overlapping backward: exit 0" test $? -eq 0
check "… in 6 buckets" grep -q 'summed in 6 buckets of about 0.001 MiB, while backward runs' \
    buckets.out
check "… the same loss curve and parameters as 1 process × 64" $py same.py one buckets

# contrastive losses gather both embeddings over the ranks (mf_gather_batch, open_clip's
# gather with gradient): every sample meets the whole batch's negatives, so 2 ranks train the
# model one process trains. 127 training samples in batches of 64 and 63: rank 1's part is
# 32 rows of either, two graphs for the two whole batches; validation 34 (17 + 17), test 39.
cat > clip.yaml <<EOF
name: clip-dist
seed: 1
data: {reader: shapes, seed: 0, samples: 200, size: 16, max_tokens: 12,
       split: [0.633, 0.17, 0.197], batch_size: 64}
model:
  encoders:
    image: {type: cnn, channels: [8], out: 16}
    caption: {type: bag, width: 16, out: 16}
  fusion: none
loss: {type: clip}
optim: {type: adamw, lr: 1.0e-3, weight_decay: 0.1}
train: {steps: 30, val_every: 1}
EOF
for loss in clip siglip; do
    "$exe" run clip.yaml --run-dir $loss-one -q -o loss.type=$loss > $loss-one.out 2>&1
    check "$loss, one process: exit 0" test $? -eq 0
    mpi 2 "$exe" run clip.yaml --run-dir $loss-two -q -o loss.type=$loss > $loss-two.out 2>&1
    check "$loss, 2 ranks: exit 0" test $? -eq 0
    check "$loss: 2 ranks gathering match 1 process: train and val loss over 30 steps, parameters" \
        $py same.py $loss-one $loss-two 30 train_loss,val_loss
done
# a per-rank term beside it (cross-entropy over each rank's part, weighted by its share)
sed -e 's/^  fusion: none$/  fusion: {type: concat}\n  head: {type: mlp, dropout: 0}/' \
    -e 's/^loss: .*/loss: [{type: cross_entropy}, {type: clip, weight: 0.5}]/' clip.yaml > mix.yaml
"$exe" run mix.yaml --run-dir mix-one -q > mix-one.out 2>&1
check "cross-entropy + 0.5·clip, one process: exit 0" test $? -eq 0
mpi 2 "$exe" run mix.yaml --run-dir mix-two -q > mix-two.out 2>&1
check "cross-entropy + 0.5·clip, 2 ranks: exit 0" test $? -eq 0
check "… the same losses and parameters" $py same.py mix-one mix-two 30 train_loss,val_loss
# the gather's blocking sum during backward, while gradient buckets are in flight
mpi 2 "$exe" run clip.yaml --run-dir clip-buckets -o train.bucket_mb=0.001 \
    > clip-buckets.out 2>&1
check "clip, 2 ranks with gradient buckets: exit 0" test $? -eq 0
check "… summed while backward runs" has "in [0-9]* buckets of about 0.001 MiB, while backward runs" \
    clip-buckets.out
check "… the same losses and parameters as 1 process" \
    $py same.py clip-one clip-buckets 30 train_loss,val_loss
# a rank with no part of a batch could not take part in the gather: refused before training
mpi 2 "$exe" run clip.yaml --no-save -q -o data.batch_size=63 > clip-empty.out 2>&1
check "clip, a last batch of 1 sample for 2 ranks: exit 2" test $? -eq 2
check "… saying why, once" test "$(grep -cxF -e "-o data.batch_size=63:1:17: data.batch_size: the clip loss gathers the batch across ranks, but the train split's last batch has 1 sample for 2 ranks, so a rank would have no part of it; choose data.batch_size so that every split's last batch has at least 2 samples (the train split has 127 samples), or run on fewer ranks" clip-empty.out)" -eq 1
mpi 2 "$exe" run clip.yaml --no-save -q -o data.batch_size=33 -o loss.type=siglip \
    > clip-val.out 2>&1
check "siglip, a validation batch of 1 sample for 2 ranks: exit 2" test $? -eq 2
check "… naming the split" grep -qF "the siglip loss gathers the batch across ranks, but the validation split's last batch has 1 sample for 2 ranks" clip-val.out
"$exe" run clip.yaml --no-save -q -o data.batch_size=63 -o train.steps=2 > clip-alone.out 2>&1
check "… while one process trains it" test $? -eq 0

# the evaluation's counts are summed over the ranks, not their accuracies averaged
cat > test.py <<'EOF'
import json, sys
a, b = (json.load(open(d + "/result.json")) for d in sys.argv[1:3])
ca, cb = a["details"]["test"]["confusion"], b["details"]["test"]["confusion"]
assert ca == cb, (ca, cb)
assert sum(map(sum, cb)) == 2000
EOF
check "2 ranks: the test confusion matrix is the whole split's" $py test.py one two

# stopped at 2 ranks (rank 0 killed while it writes metrics.csv), resumed by one process
if [ -n "$fault" ] && [ -f "$fault/enospc.so" ]; then
    after=$(($(stat -c %s one/metrics.csv) / 2))
    mpi 2 -x LD_PRELOAD="$fault/enospc.so" -x MMFUSE_FAULT_PATH=metrics.csv \
        -x MMFUSE_FAULT_WRITE_AFTER=$after -x MMFUSE_FAULT_KILL=1 \
        "$exe" run "$src/experiments/satellite.yaml" --run-dir stopped -q $opts \
        -o train.checkpoint_every=0 > stopped.out 2>&1
    check "rank 0 killed: mpirun ends, not 0" test $? -ne 0
    check "… naming the rank" has "rank 0" stopped.out
    "$exe" run --resume stopped -q > resumed.out 2>&1
    check "resumed by one process: exit 0" test $? -eq 0
    check "… to the same parameters and loss curve" $py same.py one stopped
else
    echo "SKIP the kill and resume (no tests/fault/enospc.so given)"
fi

# a rank that dies (SIGKILL) ends the others with a message naming it, instead of a hang
mpi 2 "$exe" run "$src/experiments/satellite.yaml" --no-save -q -o train.epochs=100000 \
    > killed.out 2>&1 &
job=$!
victim=
for _ in $(seq 100); do
    sleep 0.2
    for p in $(pgrep -f "mmfuse run $src/experiments/satellite.yaml --no-save"); do
        tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
    done
    [ -n "$victim" ] && break
done
sleep 1
[ -n "$victim" ] && kill -KILL "$victim"
wait $job
rc=$?
check "rank 1 killed: the job ends, not 0 ($rc)" test -n "$victim" -a $rc -ne 0 -a $rc -ne 124
check "… naming rank 1" has "rank 1" killed.out

# bad input: every rank finds it, rank 0 says it once, exit 2
mpi 2 "$exe" run "$src/experiments/satellite.yaml" --no-save -q -o data.batch_size=-1 \
    > bad.out 2>&1
check "bad input at 2 ranks: exit 2" test $? -eq 2
check "… one message, once" test "$(grep -c 'batch_size' bad.out)" -eq 1

# a sweep spreads its points over the ranks: one point per rank, or per pair of ranks with
# --ranks-per-point 2; a rerun skips the finished points
cat > sw.yaml <<EOF
include: $src/experiments/satellite.yaml
name: sw
train: {epochs: 2}
sweep:
  model.fusion.type: [concat, sum]
  seed: [1, 2]
EOF
sweep="$exe sweep sw.yaml -o data.path=$src/experiments/data/satellite.h5"
mpi 2 $sweep > sw1.out 2>&1
check "a 2-rank sweep: exit 0" test $? -eq 0
check "… 4 points, 2 at a time, 1 rank each" \
    has "^running 4 points on 2 ranks: 2 at a time, 1 rank each$" sw1.out
check "… every point done once" \
    test "$(grep -c '^\[[1-4]/4\] point [1-4] .* done: val acc' sw1.out)" -eq 4
check "… the summary written once, by rank 0" \
    test "$(count '^summary: runs/sw/sweep/summary.md' sw1.out)" -eq 1
check "… each point's run folder" test "$(ls runs/sw/sweep/*/result.json | wc -l)" -eq 4
mpi 2 $sweep > sw2.out 2>&1
check "rerun: the finished points skipped" has "^skipping 4 finished points$" sw2.out
rm -rf runs/sw/sweep/sum-s2
mpi 2 $sweep --ranks-per-point 2 > sw3.out 2>&1
check "--ranks-per-point 2: the missing point on both ranks" \
    has "^running 1 point on 2 ranks: 1 at a time, 2 ranks each$" sw3.out
check "… done" grep -q '"status": "done"' runs/sw/sweep/sum-s2/result.json
mpi 2 $sweep --ranks-per-point 3 > sw4.out 2>&1
check "--ranks-per-point 3 of 2 ranks: exit 2" test $? -eq 2
check "… saying why, once" test "$(count 'does not divide the 2 ranks' sw4.out)" -eq 1

# the commands that do not train refuse a launch for several ranks
mpi 2 "$exe" eval one > eval.out 2>&1
check "eval under mpirun: exit 2" test $? -eq 2
check "… saying to start it alone" has "run as one process" eval.out
finish
