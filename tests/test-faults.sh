#!/bin/sh
# Fault injection (issue 13) on every kind of file mmfuse writes, through LD_PRELOAD shims
# (tests/fault/): a full disk (enospc.so: writes fail with ENOSPC once a file has taken N
# bytes), a process killed while it writes a file (enospc.so's MMFUSE_FAULT_KILL: SIGKILL at
# the failing write), and an allocation that fails (alloc.so). Each must give exit 1 and one
# sentence naming the file (or "out of memory"), leave the previous file intact and no
# temporary behind (a kill's is removed by the next write of that file) — never a crash.
#   test-faults.sh FAULT_DIR   (the build folder holding enospc.so and alloc.so)
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
fault=${1:?the folder of the fault shims}
. "$src/tests/lib.sh"
need_h5py
export MMFUSE_THREADS=1
# a preloaded shim must not trip ASan's check that its runtime comes first
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0"

cat > exp.yaml <<'EOF'
name: faults
seed: 1
data: {reader: synthetic, samples: 600, batch_size: 64}
model:
  encoders:
    a: {type: mlp, hidden: [16], out: 16}
    b: {type: mlp, hidden: [16], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 2, checkpoint_every: 0}
EOF
# full FILE N CMD…: CMD with writes to paths containing FILE failing after N bytes; keeps
# out.txt (stdout), err.txt (stderr, warnings left out) and $rc
full() {
    what=$1 after=$2
    shift 2
    LD_PRELOAD="$fault/enospc.so" MMFUSE_FAULT_PATH=$what MMFUSE_FAULT_WRITE_AFTER=$after \
        "$@" > out.txt 2> err.all
    rc=$?
    grep -v '^mmfuse: warning' err.all > err.txt
}
# one_sentence PATTERN: stderr is one line, matching PATTERN (grep -E)
one_sentence() { [ "$(wc -l < err.txt)" -eq 1 ] && grep -Eq "$1" err.txt; }
no_temporaries() { ! find "$1" -name '*.tmp-*' | grep -q .; }

echo "--- a full disk on each file of a run folder: exit 1, one sentence naming it"
for f in config.yaml manifest.json metrics.csv events.jsonl standardization.json \
         result.json report.html last.h5 best.h5; do
    for after in 0 60 1500; do
        rm -rf r
        full "$f" $after "$exe" run exp.yaml -q --run-dir r
        # a file smaller than the room left is simply written
        [ $rc -eq 0 ] && [ $after -gt 0 ] && continue
        check "$f after $after bytes: exit 1" test $rc -eq 1
        check "$f after $after bytes: one sentence naming it" \
            one_sentence "^cannot (write|append to|write the checkpoint) 'r/(checkpoints/)?$f': No space left on device"
        check "$f after $after bytes: no temporary left" no_temporaries .
    done
done
check "no hidden stage folder left" sh -c "! ls -a | grep -q '^\.stage-'"

echo "--- a full disk on the files of eval, predict, embed, report and sweep"
"$exe" run exp.yaml -q --run-dir ok > /dev/null 2>&1
check "a good run to read" test -f ok/checkpoints/best.h5
"$exe" predict ok -o preds.csv -q > /dev/null 2>&1
cp preds.csv preds.before
full preds.csv 100 "$exe" predict ok -o preds.csv -q
check "predict: exit 1" test $rc -eq 1
check "predict: one sentence" one_sentence "^cannot write 'preds.csv': No space left on device"
check "predict: the previous file intact" cmp -s preds.csv preds.before
for after in 0 3000; do
    full emb.h5 $after "$exe" embed ok -o emb.h5 -q
    check "embed after $after bytes: exit 1, no crash" test $rc -eq 1
    check "embed after $after bytes: one sentence" one_sentence "^cannot write 'emb.h5': No space left on device"
    check "embed after $after bytes: no file, no temporary" sh -c "! ls emb.h5* 2>/dev/null | grep -q ."
done
full metrics.json 10 "$exe" eval ok --json metrics.json -q
check "eval --json: exit 1" test $rc -eq 1
check "eval --json: one sentence" one_sentence "metrics.json.*No space left on device"
cp ok/report.html report.before
full report.html 500 "$exe" report ok
check "report: exit 1" test $rc -eq 1
check "report: the previous page intact" cmp -s ok/report.html report.before
cat exp.yaml > sw.yaml
printf 'sweep:\n  seed: [1, 2]\n' >> sw.yaml
i=0
for f in sweep.json summary.md summary.csv; do
    i=$((i + 1))
    full "$f" 0 "$exe" sweep sw.yaml -o name=sw$i
    check "sweep, $f: exit 1" test $rc -eq 1
    check "sweep, $f: one sentence" one_sentence "^cannot write 'runs/sw$i/sweep/$f': No space left on device"
done

echo "--- killed while writing a file: the previous one intact, a stray temporary the next write removes"
"$exe" run exp.yaml -q --run-dir k0 -o train.epochs=3 > /dev/null 2>&1
for f in last.h5 best.h5 metrics.csv events.jsonl result.json; do
    rm -rf k
    # the second write of a checkpoint (its first fits), a later line of a log
    case $f in
    *.h5) after=$(($(stat -c %s k0/checkpoints/$f) + 200)) ;;
    metrics.csv | events.jsonl) after=$(($(stat -c %s k0/$f) / 2)) ;;
    *) after=20 ;;
    esac
    LD_PRELOAD="$fault/enospc.so" MMFUSE_FAULT_PATH=$f MMFUSE_FAULT_WRITE_AFTER=$after \
        MMFUSE_FAULT_KILL=1 "$exe" run exp.yaml -q --run-dir k -o train.epochs=3 > out.txt 2>&1
    rc=$?
    check "$f: killed while writing it (SIGKILL)" test $rc -eq 137
    case $f in
    *.h5) check "$f: the previous checkpoint whole" $py -c "import h5py; h5py.File('k/checkpoints/$f', 'r')['params']" ;;
    esac
    # the temporary of a dead writer goes once it is a minute old (it could be another
    # machine's on a shared folder)
    find k -name '*.tmp-*' -exec touch -d '2 minutes ago' {} +
    "$exe" run --resume k -q > out.txt 2>&1
    check "$f: the run resumes and finishes" grep -q '"status": "done"' k/result.json
    check "$f: its stray temporary is gone" no_temporaries k
done

echo "--- an allocation failing anywhere in mmfuse's code: exit 1 and 'out of memory', or a good run"
if ldd "$exe" | grep -q 'libasan\|libtsan'; then
    echo "SKIP the allocation failures: a sanitizer's allocator cannot sit behind alloc.so"
    finish
fi
LD_PRELOAD="$fault/alloc.so" MMFUSE_FAULT_ALLOC_COUNT=count.txt "$exe" run exp.yaml -q --no-save > /dev/null 2>&1
total=$(cat count.txt)
check "allocations counted ($total)" test "$total" -gt 100
bad=0
step=$((total / 60 + 1))
n=1
while [ $n -le "$total" ]; do
    LD_PRELOAD="$fault/alloc.so" MMFUSE_FAULT_ALLOC_AT=$n "$exe" run exp.yaml -q --no-save > out.txt 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "^test accuracy" out.txt; then
        :
    elif [ $rc -eq 1 ] && [ "$(grep -vc '^mmfuse: warning' out.txt)" -le 1 ] && grep -q "out of memory" out.txt; then
        :
    else
        bad=$((bad + 1))
        echo "allocation $n of $total: exit $rc: $(tail -n 1 out.txt)"
    fi
    n=$((n + step))
done
check "every failed allocation: a good run or exit 1 saying out of memory ($bad bad)" test $bad -eq 0

finish
