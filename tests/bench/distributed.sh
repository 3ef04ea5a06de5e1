#!/usr/bin/env bash
# Data-parallel scaling on this machine (docs/distributed.md): each reference model's
# training step at 1 rank (1 thread), at 2 ranks under mpirun (1 thread each, each rank half
# of the same global batch), and at 1 rank with 2 threads (the other way to use 2 cores),
# interleaved, REPS times; then the all-reduce alone over message sizes.
#   tests/bench/distributed.sh [OUT.jsonl]   (REPS=3 STEPS=200 WARMUP=20 MODELS="…"
#                                             BLAS_KERNEL=auto|env: see blas_kernel.sh)
# tests/bench/distributed_table.py OUT.jsonl prints the table and the projection.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/bench-distributed.jsonl}
mmfuse=${MMFUSE:-$root/build/framework/cli/mmfuse}
reps=${REPS:-3}
steps=${STEPS:-200}
warmup=${WARMUP:-20}
. "$(dirname "$0")/blas_kernel.sh"
models=${MODELS:-mlp-concat tensor-fusion cnn-late clip-dual xattn-fusion}
[ -x "$mmfuse" ] || { echo "distributed.sh: build mmfuse first (make build)" >&2; exit 2; }
command -v mpirun > /dev/null || { echo "distributed.sh: no mpirun (make deps)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --bind-to core -np"

: > "$out"
for rep in $(seq "$reps"); do
  for model in $models; do
    args=(bench "$model" --threads 1 --steps "$steps" --warmup "$warmup" --json "$out")
    "$mmfuse" "${args[@]}"
    $mpi 2 "$mmfuse" "${args[@]}"
    "$mmfuse" bench "$model" --threads 2 --steps "$steps" --warmup "$warmup" --json "$out"
  done
done
$mpi 2 "$mmfuse" bench allreduce --steps 50 --json "$out"
/usr/bin/python3 "$root/tests/bench/distributed_table.py" "$out"
