#!/bin/sh
# The studies of docs/results.md, reduced to seconds: each shipped study file runs through
# mmfuse sweep with a few of its own cases, fewer epochs and seeds, and the direction its
# full run found must hold:
#   satellite bands   every fused model above both single-band-group models
#   night vision      modality dropout (learned marker) far better with visible missing
#   synergy           multiplicative fusion (tensor, lowrank) far above concat + linear head
#   fusion timing     where an MLP fuses moves satellite accuracy little
#   embeddings        L2 normalisation is what makes contrastive retrieval work at width 512
#   retrieval         CLIP and SigLIP both far above chance; SigLIP's scale started at 1
#                     (bias −10) learns nothing
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
. "$(dirname "$0")/lib.sh"
export MMFUSE_THREADS=1

# only FILE CASE... : the study file with only these of its sweep.cases, as ./NAME.yaml
# (paths inside stay relative to the study's folder: the copy sits beside it, under $tmp)
only() {
    file=$1
    shift
    mkdir -p studies
    awk -v keep=" $* " '
        /^  cases:/ { incases = 1; print; next }
        incases && /^  [^ ]/ { incases = 0 }
        incases && /^    [^ #]/ { name = $1; sub(/:.*/, "", name); on = index(keep, " " name " ") > 0 }
        !incases || on { print }
    ' "$src/experiments/studies/$file.yaml" > "studies/$file.yaml"
}
# mean CASE COLUMN SWEEP_DIR: the configuration's mean of a summary.csv column
mean() {
    python3 - "$3/summary.csv" "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
row = [r for r in rows if r.get("cases") == sys.argv[2]]
print(row[0][sys.argv[3] + "_mean"] if row and row[0].get(sys.argv[3] + "_mean") else "nan")
EOF
}
above() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) + float(sys.argv[3]) else 1)" "$@"; }
# the data files the studies name, where the copies look for them
mkdir -p data
ln -s "$src/experiments/data/satellite.h5" data/satellite.h5

sweep() { # sweep NAME OVERRIDE...: the reduced study, one thread a point, two at a time
    name=$1
    shift
    "$exe" sweep "studies/$name.yaml" --jobs 2 -o runs=runs "$@" > "$name.out" 2> "$name.err"
    check "$name: the reduced sweep exits 0" test $? -eq 0
    cat "$name.err" >&2
}

echo "--- satellite bands: fused above both band groups"
only satellite-bands visible-only nir-only early mid-concat mid-tensor late-mean
sweep satellite-bands -o 'sweep.seed=[1, 2]' -o train.epochs=20
d=runs/satellite-bands/sweep
vis=$(mean visible-only test.accuracy $d)
nir=$(mean nir-only test.accuracy $d)
echo "visible-only $vis, nir-only $nir"
for c in early mid-concat mid-tensor late-mean; do
    acc=$(mean $c test.accuracy $d)
    echo "$c $acc"
    check "satellite: $c ($acc) above visible-only ($vis)" above "$acc" "$vis" 0.005
    check "satellite: $c ($acc) above nir-only ($nir)" above "$acc" "$nir" 0.05
done

echo "--- night vision: modality dropout with visible missing"
only night-vision plain md30-learned
sweep night-vision -o 'sweep.seed=[1]' -o train.epochs=20 -o 'eval.robustness={drop: [visible]}'
d=runs/night-vision/sweep
plain=$(mean plain robustness.drop.visible $d)
dropout=$(mean md30-learned robustness.drop.visible $d)
echo "visible missing: plain $plain, modality dropout 0.3 + learned marker $dropout"
check "night: dropout ($dropout) far above plain ($plain) with visible missing" above "$dropout" "$plain" 0.2
check "night: dropout costs little by day" above "$(mean md30-learned test.accuracy $d)" "$(mean plain test.accuracy $d)" -0.03

echo "--- synergy: multiplicative above concat with a linear head"
only synergy synergy
# three of its operators: concat, tensor, lowrank (the file's list, the others' lines left out)
sed -i '/^    - {type: \(sum\|product\|mi\|gated\|film\|mean\)[,}]/d' studies/synergy.yaml
sweep synergy -o 'sweep.seed=[1]' -o train.epochs=10
for f in tensor lowrank; do
    python3 - runs/synergy/sweep/summary.csv $f > syn.$f <<'EOF'
import csv, sys
rows = {r["model.fusion"].split(",")[0].split(": ")[1].strip("}"): float(r["test.accuracy_mean"])
        for r in csv.DictReader(open(sys.argv[1]))}
print(rows[sys.argv[2]], rows["concat"])
EOF
    read mult concat < syn.$f
    echo "synergy-dominated data: $f $mult, concat + linear head $concat"
    check "synergy: $f ($mult) far above concat-linear ($concat)" above "$mult" "$concat" 0.3
done

echo "--- fusion timing: where an MLP fuses matters little on satellite"
only timing-satellite mlp-lf0 mlp-lf1 mlp-lf2 late-lf3
sweep timing-satellite -o 'sweep.seed=[1]' -o train.epochs=10
d=runs/timing-satellite/sweep
lo=1
hi=0
for c in mlp-lf0 mlp-lf1 mlp-lf2 late-lf3; do
    acc=$(mean $c test.accuracy $d)
    echo "$c $acc"
    lo=$(python3 -c "print(min($lo, $acc))")
    hi=$(python3 -c "print(max($hi, $acc))")
done
check "timing: every L_f above 0.85 (lowest $lo)" above "$lo" 0.85 0
check "timing: within 0.03 of each other ($lo … $hi)" above "$lo" "$hi" -0.03

echo "--- embeddings: retrieval needs L2 normalisation at width 512"
only embeddings-retrieval w512
sweep embeddings-retrieval -o 'sweep.seed=[1]' -o train.epochs=6 \
    -o 'sweep.loss=[{type: clip}, {type: clip, normalize: false}]'
python3 - runs/embeddings-retrieval/sweep/summary.csv > emb.r1 <<'EOF'
import csv, sys
rows = {"raw" if "normalize: false" in r["loss"] else "cosine": float(r["test.r@1_mean"])
        for r in csv.DictReader(open(sys.argv[1]))}
print(rows["cosine"], rows["raw"])
EOF
read cosine raw < emb.r1
echo "width 512: R@1 cosine $cosine, raw dot products $raw"
check "embeddings: cosine ($cosine) far above raw dot products ($raw)" above "$cosine" "$raw" 0.05

echo "--- retrieval: CLIP and SigLIP learn; SigLIP from scale 1 does not"
only retrieval-temperature clip-scale14 siglip-scale10 siglip-scale1
sweep retrieval-temperature -o 'sweep.seed=[1]' -o train.epochs=6
d=runs/retrieval-temperature/sweep
clip=$(mean clip-scale14 test.r@1 $d)
siglip=$(mean siglip-scale10 test.r@1 $d)
cold=$(mean siglip-scale1 test.r@1 $d)
echo "test R@1: clip $clip, siglip $siglip, siglip from scale 1: $cold (chance about 0.002)"
check "retrieval: clip R@1 ($clip) ≥ 40× chance" above "$clip" 0.09 0
check "retrieval: siglip R@1 ($siglip) ≥ 40× chance" above "$siglip" 0.09 0
check "retrieval: siglip from scale 1 ($cold) far below its default ($siglip)" above "$siglip" "$cold" 0.1
check "retrieval: progress lines name the metric" has "done: val r@1 " retrieval-temperature.out

finish
