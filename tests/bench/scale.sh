#!/usr/bin/env bash
# How cost grows (issue 11 item 5): mmfuse bench and tests/bench/torch_scale.py (PyTorch, the
# models of ../shared/bench/torch_ref.py at other sizes) side by side, interleaved per cell
# (PyTorch, then mmfuse), REPS repetitions, train and eval, at 1 and 2 threads:
#   mlp-concat    batch 32 … 1024 at its reference widths; width 64 … 1024 at batch 128
#   xattn-fusion  seq 16 … 256 (patches = tokens) at batch 32
# Not a test: run it by hand on a quiet machine (about 20 minutes), then the tables:
#   tests/bench/scale.sh [OUT.jsonl]      (REPS=3 THREADS="1 2" MODES="train eval"
#                                          BATCHES=… WIDTHS=… SEQS=… XATTN_BATCH=32)
#   SMOKE=1 tests/bench/scale.sh          one repetition, two sizes per axis (a minute or two)
# Steps per run: as many as fit ~BUDGET GFLOP (default 30: about 2 s at 15 GFLOP/s), between
# 5 and STEPS (100); warm-up a tenth of that (1 to 10). Both sides run the same counts.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/scale.jsonl}
mmfuse=${MMFUSE:-$root/build/framework/cli/mmfuse}
torch_scale=$root/tests/bench/torch_scale.py
if [ -n "${SMOKE:-}" ]; then
  : "${REPS:=1}" "${BATCHES:=32 256}" "${WIDTHS:=64 512}" "${SEQS:=16 64}"
fi
. "$(dirname "$0")/blas_kernel.sh" # OpenBLAS's own kernel for this processor, both sides
reps=${REPS:-3}
threads=${THREADS:-1 2}
modes=${MODES:-train eval}
batches=${BATCHES:-32 64 128 256 512 1024}
widths=${WIDTHS:-64 128 256 512 1024}
seqs=${SEQS:-16 32 64 128 256}
xattn_batch=${XATTN_BATCH:-32}
budget=${BUDGET:-30}
max_steps=${STEPS:-100}

[ -x "$mmfuse" ] || { echo "scale.sh: build mmfuse first (make build)" >&2; exit 2; }
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  { echo "scale.sh: needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 2; }

# Forward multiply-accumulates per sample, as both sides count them (0: reference widths).
mlp_macs() { local W=$1; [ "$W" = 0 ] && { echo 292096; return; }
  echo $((784 * W + W * W + 64 * W + W * W + 2 * W * W + 10 * W)); }
xattn_macs() { local T=$1 a=$((2 * $1 * $1 * 128))
  echo $((T * 49 * 128 + 2 * (T * 131072 + a) + 2 * (T * 65536 + a) + 2560)); }

# One cell: MODEL BATCH MACS_PER_SAMPLE [--width N | --seq N]; both sides, every mode/threads.
cell() {
  local model=$1 batch=$2 macs=$3 rep=$4
  shift 4
  for mode in $modes; do
    local passes=1
    [ "$mode" = train ] && passes=3 # forward + backward counted as 3 forwards, as both count
    local flops=$((2 * macs * batch * passes))
    local steps=$((budget * 1000000000 / flops))
    steps=$((steps < 5 ? 5 : steps > max_steps ? max_steps : steps))
    local warmup=$((steps / 10 < 1 ? 1 : steps / 10 > 10 ? 10 : steps / 10))
    for t in $threads; do
      OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$torch_scale" --model "$model" --batch "$batch" \
        "$@" --mode "$mode" --threads "$t" --steps "$steps" --warmup "$warmup" --json "$out" \
        --tag "rep$rep"
      "$mmfuse" bench "$model" --batch "$batch" "$@" --mode "$mode" --threads "$t" \
        --steps "$steps" --warmup "$warmup" --json "$out"
    done
  done
}

: > "$out"
start=$(date +%s)
for rep in $(seq "$reps"); do
  for b in $batches; do cell mlp-concat "$b" "$(mlp_macs 0)" "$rep"; done
  for w in $widths; do cell mlp-concat 128 "$(mlp_macs "$w")" "$rep" --width "$w"; done
  for s in $seqs; do cell xattn-fusion "$xattn_batch" "$(xattn_macs "$s")" "$rep" --seq "$s"; done
done
echo "scale.sh: $(($(date +%s) - start)) s, $(wc -l < "$out") runs in $out" >&2
/usr/bin/python3 "$root/tests/bench/scale_table.py" "$out"
