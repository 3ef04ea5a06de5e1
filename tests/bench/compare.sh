#!/usr/bin/env bash
# Side-by-side benchmark: mmfuse and PyTorch (shared/bench/torch_ref.py), interleaved in one
# run on one machine, same models, modes and thread counts, several repetitions.
#   tests/bench/compare.sh [OUT.jsonl]   (REPS=3 STEPS=200 WARMUP=20 MODELS="…" THREADS="1 2"
#                                         BLAS_KERNEL=auto|env: see blas_kernel.sh)
# PyTorch runs in its fastest set-up (shared/bench/README.md): torch.set_num_threads(N) with
# OPENBLAS_NUM_THREADS=1. mmfuse runs with N threads for both OpenBLAS and OpenMP.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/bench.jsonl}
mmfuse=${MMFUSE:-$root/build/framework/cli/mmfuse}
torch_ref=${TORCH_REF:-$root/../shared/bench/torch_ref.py}
reps=${REPS:-3}
steps=${STEPS:-200}
warmup=${WARMUP:-20}
. "$(dirname "$0")/blas_kernel.sh" # OpenBLAS's own kernel for this processor, both sides
models=${MODELS:-mlp-concat tensor-fusion cnn-late clip-dual xattn-fusion}
threads=${THREADS:-1 2}
modes=${MODES:-train eval}

[ -x "$mmfuse" ] || { echo "compare.sh: build mmfuse first (make build)" >&2; exit 2; }
[ -f "$torch_ref" ] || { echo "compare.sh: no $torch_ref" >&2; exit 2; }
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  { echo "compare.sh: needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 2; }

: > "$out"
for rep in $(seq "$reps"); do
  for model in $models; do
    for mode in $modes; do
      for t in $threads; do
        OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$torch_ref" --model "$model" --mode "$mode" \
          --threads "$t" --steps "$steps" --warmup "$warmup" --json "$out" --tag "rep$rep"
        "$mmfuse" bench "$model" --mode "$mode" --threads "$t" --steps "$steps" \
          --warmup "$warmup" --json "$out"
      done
    done
  done
done
/usr/bin/python3 "$root/tests/bench/table.py" "$out"
