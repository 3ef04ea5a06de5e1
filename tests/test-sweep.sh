#!/bin/sh
# mmfuse sweep end to end on small synthetic data: a 2×2 grid × 2 seeds runs every point
# in its own folder and summarises it; a re-run resumes (runs nothing); --jobs 2; a bad
# value stops everything before anything runs; a point failing at run time is reported
# while the others finish; edited settings re-run the points they change.
set -u
exe=${MMFUSE_EXE:?}
. "$(dirname "$0")/lib.sh"

cat > exp.yaml <<'EOF'
name: t
seed: 1
data: {reader: synthetic, samples: 1500, batch_size: 64}
model:
  encoders:
    a: {type: mlp, hidden: [16], out: 16}
    b: {type: mlp, hidden: [16], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
optim: {lr: 2.0e-3}
train: {epochs: 2}
sweep:
  model:
    encoders: {a: [{type: mlp, hidden: [16], out: 16}, {type: identity}]}
  optim: {lr: [1.0e-3, 3.0e-3]}
  seed: [1, 2]
EOF
sw=runs/t/sweep

echo "--- a 2×2 grid × 2 seeds"
"$exe" sweep exp.yaml > out1 2> err1
check "sweep exits 0" test $? -eq 0
check "eight points announced" has "8 points (4 configurations × 2 seeds)" out1
check "sweep.json written" test -s $sw/sweep.json
n=0
for d in $sw/*/; do
    [ -f "$d/result.json" ] && grep -q '"status": "done"' "$d/result.json" && n=$((n + 1))
done
check "every point's result.json says done ($n of 8)" test $n -eq 8
check "a point folder named from its values" test -f $sw/identity-3.0e-3-s2/config.yaml
check "a point's log holds its result line" has "^test accuracy" $sw/mlp_16_16-1.0e-3-s1/log.txt
check "the point's config is a plain experiment" has "^sweep: {}" $sw/mlp_16_16-1.0e-3-s1/config.yaml
check "the point ran its seed" has '"seed": 2' $sw/identity-1.0e-3-s2/result.json
check "summary.md written" test -s $sw/summary.md
check "summary.csv written" test -s $sw/summary.csv
# the ranked table: the lines before the table of every test metric
ranked() { sed '/^## Every test metric/q' "$1"; }
check "summary.md: 4 configuration rows" test "$(ranked $sw/summary.md | grep -c '^| [0-9]')" -eq 4
check "summary.md: every test metric, 4 rows" test "$(grep -c '^| [0-9]' $sw/summary.md)" -eq 8
check "summary.csv: header + 4 rows" test "$(wc -l < $sw/summary.csv)" -eq 5
check "mean ± std cells" grep -Eq '^\| 1 \| \{type: (mlp, hidden: \[16\], out: 16|identity)\} \| [0-9.e-]+ \| 2 \| 0\.[0-9]{4} ± 0\.[0-9]{4} \| 0\.[0-9]{4} ± 0\.[0-9]{4} \| [0-9.]+ ± [0-9.]+ \|$' $sw/summary.md
check "the table is printed" has "| rank | model.encoders.a | optim.lr | n | val acc | test acc | seconds |" out1
check "csv header" has "^rank,model.encoders.a,optim.lr,n,failed,best_val_accuracy_mean,best_val_accuracy_std,test_accuracy_mean" $sw/summary.csv
# ranked on validation: the val means of the table never increase
check "ranked by validation accuracy" sh -c "sed '/^## Every/q' $sw/summary.md | grep '^| [0-9]' | cut -d'|' -f6 | cut -d' ' -f2 | sort -c -r -n"

echo "--- the same sweep again resumes: nothing runs"
sum_before=$(cat $sw/*/result.json | cksum)
"$exe" sweep exp.yaml > out2 2> err2
check "re-run exits 0" test $? -eq 0
check "re-run says it skips all points" has "skipping 8 finished points" out2
check "re-run runs nothing" lacks "running" out2
check "re-run leaves the results alone" test "$sum_before" = "$(cat $sw/*/result.json | cksum)"
check "re-run still prints the summary" has "| rank |" out2

echo "--- edited settings re-run the points they change"
"$exe" sweep exp.yaml -o 'sweep.seed=[1]' -o train.epochs=1 > out3 2> err3
check "changed settings exit 0" test $? -eq 0
check "changed points are re-run" has "re-running 4 finished points whose settings changed" out3
check "4 points run" has "running 4 points" out3
check "summary over one seed: std 0" grep -Eq '^\| 1 \| .* \| 1 \| 0\.[0-9]{4} ± 0\.0000 \|' $sw/summary.md

echo "--- --jobs 2"
"$exe" sweep exp.yaml --jobs 2 -o name=j2 > out4 2> err4
check "--jobs 2 exits 0" test $? -eq 0
check "--jobs 2 runs 2 at a time" has "running 8 points, 2 at a time" out4
check "--jobs 2: eight results" test "$(grep -l '"status": "done"' runs/j2/sweep/*/result.json | wc -l)" -eq 8
check "--jobs 2: summary" test "$(ranked runs/j2/sweep/summary.md | grep -c '^| [0-9]')" -eq 4

echo "--- a bad value: nothing runs"
"$exe" sweep exp.yaml -o name=bad -o 'sweep.model.fusion.type=[concat, nope]' > out5 2> err5
check "bad value exits 2" test $? -eq 2
check "the bad point is named" grep -qF "point 5 (model.encoders.a={type: mlp, hidden: [16], out: 16}, model.fusion.type=nope, optim.lr=1.0e-3, seed=1): -o model.fusion.type=nope:1:19: model.fusion.type: no fusion plugin named 'nope'" err5
check "the points sharing the reason are listed" has "the same for points 6, 7, 8, 13, 14, 15, 16" err5
check "nothing ran" test ! -e runs/bad

echo "--- mmfuse validate checks every point of a sweep file"
"$exe" validate exp.yaml -o name=vbad -o 'sweep.model.fusion.type=[concat, nope]' > out17 2> err17
check "validate with a bad point: exit 2" test $? -eq 2
check "… naming it" grep -qF "point 5 (model.encoders.a={type: mlp, hidden: [16], out: 16}, model.fusion.type=nope, optim.lr=1.0e-3, seed=1): -o model.fusion.type=nope:1:19: model.fusion.type: no fusion plugin named 'nope'" err17
check "… and creating nothing" test ! -e runs/vbad
"$exe" validate exp.yaml > out18 2> err18
check "validate of a good sweep file: exit 0" test $? -eq 0
check "… valid" has "^exp.yaml: valid$" out18
# an override of a grid key the file spells dotted replaces it (issue 13)
sed 's/^  optim: {lr: \[1.0e-3, 3.0e-3\]}/  optim.lr: [1.0e-3, 3.0e-3]/' exp.yaml > dotted.yaml
"$exe" validate dotted.yaml -o 'sweep.optim.lr=[1.0e-3]' > out19 2> err19
check "-o sweep.optim.lr on a file writing optim.lr: in its grid: accepted" test $? -eq 0

echo "--- a value that is not a list"
"$exe" sweep exp.yaml -o name=scalar -o 'sweep.optim.lr=0.1' > out6 2> err6
check "non-list exits 2" test $? -eq 2
check "non-list reported at its place" has "sweep.optim.lr=0.1:1:16: sweep.optim.lr: expected a non-empty list of values" err6
sed 's/  optim: {lr: \[1.0e-3, 3.0e-3\]}/  optim: {lr: 3.0e-3}/' exp.yaml > scalar.yaml
"$exe" sweep scalar.yaml > out7 2> err7
check "non-list in the file exits 2" test $? -eq 2
check "non-list in the file: FILE:line:col" has "^scalar.yaml:16:15: sweep.optim.lr: expected a non-empty list of values" err7

echo "--- a point failing at run time"
"$exe" sweep exp.yaml -o name=diverge -o 'sweep.optim.lr=[1.0e-3, 1.0e39]' -o 'sweep.model.encoders.a=[{type: identity}]' --jobs 2 > out8 2> err8
check "a failed point: exit 1" test $? -eq 1
check "the failure is reported with its reason" has "^point 4 (model.encoders.a={type: identity}, optim.lr=1.0e39, seed=2) failed with exit status 1: exp.yaml: training diverged" err8
check "the others finished" test "$(grep -l '"status": "done"' runs/diverge/sweep/*/result.json | wc -l)" -eq 2
check "the summary marks the failures" has "| 0 (2 failed) |" runs/diverge/sweep/summary.md
check "the finished configuration is ranked" grep -q '^| 1 | {type: identity} | 1.0e-3 | 2 |' runs/diverge/sweep/summary.md
# after a failure, a re-run retries just the failed points
"$exe" sweep exp.yaml -o name=diverge -o 'sweep.optim.lr=[1.0e-3, 1.0e39]' -o 'sweep.model.encoders.a=[{type: identity}]' > out9 2> err9
check "re-run of a failed sweep: exit 1 again" test $? -eq 1
check "re-run skips the finished, retries the failed" sh -c "grep -q 'skipping 2 finished points' out9 && grep -q 'running 2 points' out9"

echo "--- named cases: several settings changed together (one modality alone beside both)"
cat > cases.yaml <<'EOF'
name: c
seed: 1
data: {reader: synthetic, samples: 1500, batch_size: 64}
model:
  encoders:
    a: {type: mlp, hidden: [16], out: 16}
    b: {type: mlp, hidden: [16], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 2}
eval: {robustness: {drop: [all]}}
sweep:
  cases:
    a only:
      data.modalities: [a]
      model.encoders: {a: {type: mlp, hidden: [16], out: 16}}
    both: {}
    sum: {model.fusion: {type: sum, dim: 16}}
  seed: [1, 2]
EOF
"$exe" sweep cases.yaml --jobs 2 > out11 2> err11
check "cases: exit 0" test $? -eq 0
check "cases: 3 configurations × 2 seeds" has "6 points (3 configurations × 2 seeds)" out11
check "cases: a point labelled by its case" has "point 1 (cases=a only, seed=1) done" out11
check "cases: folder named from the case" test -f runs/c/sweep/a_only-s1/result.json
check "cases: a case's settings all applied" sh -c "grep -q '^  modalities: \[a\]' runs/c/sweep/a_only-s2/config.yaml && ! grep -q '^    b:' runs/c/sweep/a_only-s2/config.yaml"
check "cases: the other case keeps the file's modalities" has '^    b:' runs/c/sweep/both-s1/config.yaml
check "cases: sweep.json lists a case's overrides" has '"model.encoders={a: {type: mlp, hidden: \[16\], out: 16}}"' runs/c/sweep/sweep.json
check "cases: summary column" has "| rank | cases | n | val acc | test acc | seconds |" runs/c/sweep/summary.md
check "cases: every test metric tabled" has "| rank | cases | test.accuracy | test.loss | test.macro_f1 | robustness.drop.a | robustness.drop.b |" runs/c/sweep/summary.md
check "cases: a metric a case lacks is –" grep -Eq '^\| [0-9] \| a only \| 0\.[0-9]{4} ± 0\.[0-9]{4} \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| 0\.[0-9]{4} ± 0\.[0-9]{4} \| – \|$' runs/c/sweep/summary.md
check "cases: csv has every metric" has ",test.macro_f1_mean,test.macro_f1_std,robustness.drop.a_mean,robustness.drop.a_std,robustness.drop.b_mean,robustness.drop.b_std$" runs/c/sweep/summary.csv
sed 's/    both: {}/    both: [1]/' cases.yaml > badcase.yaml
"$exe" sweep badcase.yaml > out12 2> err12
check "cases: a case that is not a map exits 2" test $? -eq 2
check "cases: … reported at its place" has "^badcase.yaml:18:11: sweep.cases.both: expected the case's settings as a map of key paths to values, like {model.fusion.type: sum} ({} for the file as it is)" err12

echo "--- killing a sweep stops its points; a re-run waits for them, never runs beside them"
points() { pgrep -f "run-dir runs/$1/sweep/" | wc -l; }
started() { # wait (up to 20 s) until N points of sweep $1 run
    i=0; while [ "$(points $1)" -lt $2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
}
slow="-o train.epochs=100000 -o data.samples=3000"
"$exe" sweep exp.yaml -o name=k9 $slow --jobs 2 > out13 2>&1 &
sweep_pid=$!
started k9 2
check "two points run" test "$(points k9)" -eq 2
kill -9 $sweep_pid
wait $sweep_pid 2>/dev/null
i=0; while [ "$(points k9)" -gt 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "SIGKILL of the sweep: its points stop within 5 s" test "$(points k9)" -eq 0
"$exe" sweep exp.yaml -o name=term $slow --jobs 2 > out14 2> err14 &
sweep_pid=$!
started term 2
kill -TERM $sweep_pid
wait $sweep_pid
check "SIGTERM: the sweep exits 1" test $? -eq 1
check "SIGTERM: no point left running" test "$(points term)" -eq 0
check "SIGTERM: said, with what to do" has "^exp.yaml: stopped by SIGTERM: 2 running points were stopped, 6 not run; run the sweep again to finish them (finished points are kept)$" err14
check "SIGTERM: the summary is written" test -s runs/term/sweep/summary.md
# the lock of a dead sweep still held (by its points): the next sweep waits, then runs
mkdir -p runs/wait/sweep && echo 999999 > runs/wait/sweep/.lock
flock runs/wait/sweep/.lock sleep 2 &
holder=$!
sleep 0.3
"$exe" sweep exp.yaml -o name=wait -o 'sweep.seed=[1]' -o 'sweep.optim.lr=[1.0e-3]' -o 'sweep.model.encoders.a=[{type: identity}]' > out15 2> err15
check "a dead sweep's lock: waited for, then run" test $? -eq 0
check "a dead sweep's lock: the wait is said" has "^waiting for the points of an earlier sweep in runs/wait/sweep to stop$" out15
wait $holder
# held by a live sweep: refused at once
flock runs/wait/sweep/.lock sh -c 'echo $$ > runs/wait/sweep/.lock; sleep 2' &
holder=$!
sleep 0.3
"$exe" sweep exp.yaml -o name=wait -o 'sweep.seed=[1]' > out16 2> err16
check "a live sweep's lock: exit 2" test $? -eq 2
check "a live sweep's lock: said" has "^exp.yaml: another mmfuse sweep is running in 'runs/wait/sweep'$" err16
wait $holder

echo "--- usage"
"$exe" sweep exp.yaml --jobs 0 > /dev/null 2> err10
check "--jobs 0 exits 2" test $? -eq 2
check "--jobs 0 explained" has "jobs takes a number" err10

finish
