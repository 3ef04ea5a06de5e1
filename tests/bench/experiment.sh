#!/bin/sh
# A whole experiment end to end (issue 11 item 6): mmfuse run experiments/satellite.yaml
# beside ../shared/bench/torch_experiment.py (the same work in PyTorch at its best), at
# threads 1 and at the default, interleaved, REPS repetitions; one line per run.
#   REPS=3 tests/bench/experiment.sh > docs/bench-experiment-2026-12-02.txt
set -u
exe=${MMFUSE_EXE:-build/framework/cli/mmfuse}
torch=${TORCH_EXPERIMENT:-../shared/bench/torch_experiment.py}
data=experiments/data/satellite.h5
. "$(dirname "$0")/blas_kernel.sh" # OpenBLAS's own kernel for this processor, both sides
cores=$(nproc)
for rep in $(seq "${REPS:-3}"); do
    for t in 1 "$cores"; do
        line=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$torch" "$data" --threads "$t" 2>&1 | tail -1)
        echo "rep $rep threads $t pytorch: $line"
        s=$(date +%s%N)
        out=$("$exe" run experiments/satellite.yaml --no-save -q -o threads="$([ "$t" = 1 ] && echo 1 || echo 0)" 2>&1 | tail -1)
        echo "rep $rep threads $t mmfuse: $((($(date +%s%N) - s) / 1000000)) ms wall; $out"
    done
done
