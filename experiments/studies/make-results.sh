#!/bin/sh
# Regenerate every table and plot of docs/results.md: run each study's sweep, write its
# summary page and charts, and put the tables into the page (between its
# `<!-- results: NAME -->` and `<!-- /results -->` marks; the prose around them is
# written by hand from these numbers).
#
#   make experiments              runs what is not finished yet (a sweep resumes), then
#                                 rewrites the tables and charts
#   make experiments FRESH=1      deletes runs/studies first: every run again
#   experiments/studies/make-results.sh [BUILD_DIR] [STUDY…]   (from the repository root)
#
# Points run two at a time, one thread each (mmfuse sweep --jobs 2 on 2 cores).
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
exe=$build/framework/cli/mmfuse
doc=docs/results.md
charts=docs/results
jobs=${JOBS:-2}
[ -x "$exe" ] || { echo "make-results.sh: no $exe; build first (make build)" >&2; exit 2; }
[ -f "$doc" ] || { echo "make-results.sh: run it from the repository root (no $doc)" >&2; exit 2; }

# study name, then the curves its page charts (metrics.csv columns; "-" for the default)
studies="satellite-bands:- night-baseline:- night-vision:- timing-satellite:- timing-fashion:-
synergy:- embeddings:- embeddings-retrieval:- retrieval:train_logit_scale retrieval-batch:-
retrieval-temperature:train_logit_scale"
[ $# -gt 0 ] && studies=$(for s in "$@"; do printf '%s\n' "$studies" | tr ' ' '\n' | grep "^$s:"; done)

[ "${FRESH:-0}" = 1 ] && rm -rf runs/studies && fresh_run=1
mkdir -p "$charts"
log=$(mktemp)
trap 'rm -f "$log" "$log.out" "$doc.tmp"' EXIT
start=$(date +%s)
for entry in $studies; do
    name=${entry%%:*}
    curves=${entry#*:}
    file=experiments/studies/$name.yaml
    [ -f "$file" ] || { echo "make-results.sh: no $file" >&2; exit 2; }
    t0=$(date +%s)
    echo "== $name"
    ran=0
    if grep -q '^sweep:' "$file"; then
        "$exe" sweep "$file" --jobs "$jobs" > "$log.out"
        tail -n 2 "$log.out"
        grep -q '^running ' "$log.out" && ran=1
        dir=runs/studies/$name/sweep
    else # a single run the others compare against (night-vision's late-fusion baseline)
        dir=runs/studies/$name
        [ -f "$dir/result.json" ] || { "$exe" run "$file" -q --run-dir "$dir" && ran=1; }
    fi
    set --
    [ "$curves" = - ] || for c in $(echo "$curves" | tr ',' ' '); do set -- "$@" --curve "$c"; done
    rm -f "$charts/$name"-*.svg
    if [ -f "$dir/summary.csv" ]; then # a sweep's charts; a single run's page stays in its folder
        "$exe" report "$dir" "$@" --svg "$charts" --svg-prefix "$name-" > /dev/null
    fi
    # the time of the run that computed the study's points (a resumed one only adds to it)
    seconds=$(($(date +%s) - t0))
    if [ "$ran" = 1 ]; then
        prev=$(cat "runs/studies/$name.seconds" 2>/dev/null || echo 0)
        [ "${fresh_run:-0}" = 1 ] && prev=0
        echo $((prev + seconds)) > "runs/studies/$name.seconds"
    fi
    echo "$name $(cat "runs/studies/$name.seconds" 2>/dev/null || echo "$seconds")" >> "$log"
done
total=$(awk '{ s += $2 } END { print s }' "$log")

# What ran where, for the page's `<!-- results: provenance -->` block.
prov=$(mktemp)
trap 'rm -f "$log" "$log.out" "$doc.tmp" "$prov"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
    echo "| study | seconds |"
    echo "|---|---:|"
    awk '{ printf "| %s | %d |\n", $1, $2 }' "$log"
    echo
    echo "Produced by \`make experiments\` ($("$exe" --version)) on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), \`--jobs $jobs\`: $((total / 60)) min $((total % 60)) s of wall-clock time in all: each study's time is that of the runs that computed its points (a rerun reuses finished points and keeps their time; \`FRESH=1\` runs and times everything again)."
} > "$prov"

# Replace each marked block of the page with its study's tables.
awk -v root=runs/studies -v prov="$prov" '
    /^<!-- results: [a-z0-9-]+ -->$/ {
        print; name = $3; skip = 1
        file = name == "provenance" ? prov : root "/" name "/sweep/summary.md"
        if ((getline line < file) > 0) {
            started = 0
            do {
                if (line ~ /^\| rank \|/ || name == "provenance") started = 1
                if (!started) continue
                if (line ~ /^## /) line = "**" substr(line, 4) "**"
                print line
            } while ((getline line < file) > 0)
            close(file)
        } else {
            print "*(not run: " file " is missing)*"
        }
        next
    }
    /^<!-- \/results -->$/ { skip = 0 }
    !skip { print }
' "$doc" > "$doc.tmp"
mv "$doc.tmp" "$doc"

echo "make-results.sh: $(echo "$studies" | wc -w) studies in $((total / 60)) min $((total % 60)) s on $(nproc) cores ($cpu); per study (s):"
cat "$log"
