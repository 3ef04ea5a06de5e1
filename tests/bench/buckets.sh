#!/bin/sh
# Gradient buckets overlapping backward against one sum after it (docs/distributed.md,
# "Buckets"): 2 ranks, one thread each, --bucket-mb 0 / 25 / a small size, alternated, three
# repetitions; one JSON line per run into $1. Table: tests/bench/buckets_table.py FILE.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
E=${MMFUSE:-build/framework/cli/mmfuse}
out=${1:?usage: tests/bench/buckets.sh OUT.jsonl}
for rep in 1 2 3; do
  for w in 1024 2048; do
    for mb in 0 25 4; do
      mpirun --oversubscribe -np 2 $E bench mlp-concat --width $w --threads 1 --steps 20 --warmup 3 --bucket-mb $mb --json $out > /dev/null 2>&1
    done
  done
  for m in mlp-concat cnn-late xattn-fusion; do
    for mb in 0 25 0.25; do
      mpirun --oversubscribe -np 2 $E bench $m --threads 1 --steps 100 --warmup 10 --bucket-mb $mb --json $out > /dev/null 2>&1
    done
  done
done
