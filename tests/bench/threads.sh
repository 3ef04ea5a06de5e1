#!/bin/sh
# Threads on a quiet and on a busy machine (issue 11 item 1): wall times at threads 1 and at
# the default (every core), interleaved, REPS repetitions; prints one TSV row per
# measurement and then the medians (min–max) and ratios. Not a test: run it by hand,
#   REPS=5 tests/bench/threads.sh > docs/bench-threads.tsv
# The busy case runs one competing CPU-bound process (a shell loop) for its whole duration.
set -u
exe=${MMFUSE_EXE:-build/framework/cli/mmfuse}
. "$(dirname "$0")/blas_kernel.sh" # OpenBLAS's own kernel for this processor, both sides
reps=${REPS:-3}
epochs=${EPOCHS:-3}
experiments=${EXPERIMENTS-$(ls experiments/*.yaml | grep -v sweep)}
models=${MODELS-mlp-concat tensor-fusion cnn-late clip-dual xattn-fusion}
parts=${PARTS:-load quiet} # load: quiet and busy at threads 1 and the default; quiet: 1 and 2

ms() { # wall milliseconds of a command
    s=$(date +%s%N)
    "$@" > /dev/null 2>&1
    echo $((($(date +%s%N) - s) / 1000000))
}
bench_ms() { # median step of mmfuse bench, in ms (threads 0: the default, no --threads)
    "$exe" bench "$1" --mode "$2" $([ "$3" = 0 ] || echo --threads "$3") --steps 40 --warmup 5 2>&1 |
        sed -n 's/.*median \([0-9.]*\) ms.*/\1/p'
}
sat() { ms "$exe" run experiments/satellite.yaml --no-save -q -o threads="$1"; }

echo "case	threads	rep	value"
case " $parts " in *" load "*) ;; *) loads= ;; esac
# busy: satellite (60 epochs, as shipped) and cnn-late, threads 1 against the default (0)
for load in ${loads-quiet busy}; do
    busy=
    if [ $load = busy ]; then
        sh -c 'while :; do :; done' &
        busy=$!
        sleep 0.5
    fi
    for rep in $(seq "$reps"); do
        for t in 1 0; do
            printf '%s satellite.yaml run\t%s\t%s\t%s\n' $load $t $rep "$(sat $t)"
            printf '%s cnn-late train\t%s\t%s\t%s\n' $load $t $rep "$(bench_ms cnn-late train $t)"
        done
    done
    [ -n "$busy" ] && kill $busy
done
# quiet: every reference model (bench) and every shipped experiment at 1 and 2 threads
case " $parts " in *" quiet "*) ;; *) reps=0 ;; esac
for rep in $(seq "$reps"); do
    for m in $models; do
        for mode in train eval; do
            for t in 1 2; do
                printf 'quiet %s %s\t%s\t%s\t%s\n' $m $mode $t $rep "$(bench_ms $m $mode $t)"
            done
        done
    done
    for f in $experiments; do
        for t in 1 2; do
            printf 'quiet %s (%s epochs)\t%s\t%s\t%s\n' "$(basename $f)" $epochs $t $rep \
                "$(ms "$exe" run "$f" --no-save -q -o threads=$t -o train.epochs=$epochs)"
        done
    done
done
