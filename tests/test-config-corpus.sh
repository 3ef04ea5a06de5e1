#!/bin/bash
# The broken-experiment corpus: every file of tests/fixtures/config/broken/ must be refused
# by `mmfuse validate` with exit status 2, nothing on stdout and, as the first line of
# stderr, exactly the line expected.txt gives for it ("@ROOT@" standing for the source
# root); nothing may train. A few are also given to `mmfuse run`, which must not create a
# run folder. Cases that cannot be committed (a file over 16 MiB) are made here.
set -u
src=${MMFUSE_SOURCE_ROOT:?}
exe=${MMFUSE_EXE:?}
cd "$src" || exit 1
root=$(pwd -P) # what getcwd() and realpath() give the program
dir=tests/fixtures/config/broken
expected_file=$dir/expected.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset MMFUSE_CORPUS_UNSET MMFUSE_CORPUS_LR
passed=0
failed=0

fail() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
}

# check NAME EXPECTED_STATUS EXPECTED_FIRST_STDERR_LINE COMMAND...
check() {
    local name=$1 status=$2 first=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    local got
    got=$(head -n 1 "$tmp/err")
    if [ "$rc" -ne "$status" ]; then
        fail "$name: exit status $rc, expected $status (stderr: $got)"
    elif [ "$status" -ne 0 ] && [ -s "$tmp/out" ]; then
        fail "$name: printed on stdout: $(head -n 1 "$tmp/out")"
    elif [ "$got" != "$first" ]; then
        fail "$name: first line of stderr differs"
        echo "  expected: $first" >&2
        echo "  got:      $got" >&2
    elif grep -qE '^(epoch |test accuracy|saved in)' "$tmp/out" "$tmp/err"; then
        fail "$name: it trained"
    else
        passed=$((passed + 1))
    fi
}

# ---------------------------------------------------------------- the corpus
[ -f "$expected_file" ] || { echo "FAIL: $expected_file is missing" >&2; exit 1; }
count=0
while IFS=$'\t' read -r file line; do
    [ -n "$file" ] || continue
    count=$((count + 1))
    if [ ! -f "$dir/$file" ]; then
        fail "$file: listed in expected.txt but not in $dir"
        continue
    fi
    check "$file" 2 "${line//@ROOT@/$root}" "$exe" validate "$dir/$file"
done <"$expected_file"
for path in "$dir"/[0-9][0-9]-*.yaml; do
    grep -q "^$(basename "$path")	" "$expected_file" || fail "$path has no line in expected.txt"
done
[ "$count" -ge 40 ] || fail "only $count corpus files (at least 40 expected)"

# ---------------------------------------------------------------- made here
# over 16 MiB: as a file (refused by its size) and through a pipe (refused while reading)
yes 'key: value' | head -c 17000000 >"$tmp/huge.yaml"
check huge.yaml 2 "$tmp/huge.yaml: too large (17000000 bytes; the limit is 16 MiB)" \
    "$exe" validate "$tmp/huge.yaml"
# shellcheck disable=SC2016 # $1, $2 are the inner shell's
check "huge.yaml through a pipe" 2 \
    "/dev/stdin: too large (more than 16777216 bytes; the limit is 16 MiB)" \
    bash -c 'cat "$1" | "$2" validate /dev/stdin' - "$tmp/huge.yaml" "$exe"
check "a folder" 2 "cannot open '$dir': Is a directory" "$exe" validate "$dir"
# a FIFO that no program writes to: refused after 5 s, never waited on (issue 13); one that
# is written is read like a file, as a pipe is
mkfifo "$tmp/nobody.yaml"
check "a FIFO without a writer" 2 "cannot open '$tmp/nobody.yaml': it is a FIFO that no program writes to (waited 5 s)" \
    timeout 30 "$exe" validate "$tmp/nobody.yaml"
mkfifo "$tmp/written.yaml"
(sleep 1; printf '%s\n' 'data: {reader: synthetic}' 'model: {encoders: {a: {type: identity}, b: {type: identity}}, fusion: {type: concat}, head: {type: mlp}}' 'loss: {type: cross_entropy}' > "$tmp/written.yaml") &
check "a FIFO written a moment later" 0 "" timeout 30 "$exe" validate "$tmp/written.yaml"
wait
check "a missing file" 2 "cannot open '$dir/none.yaml': No such file or directory" \
    "$exe" validate "$dir/none.yaml"

# ---------------------------------------------------------------- a valid file with includes
good=tests/fixtures/config/includes/experiment.yaml
check "$good" 0 "" "$exe" validate "$good"
[ "$(cat "$tmp/out")" = "$good: valid" ] || fail "$good: stdout is not '$good: valid'"
check "$good with MMFUSE_CORPUS_LR=x" 2 "$good:8:7: optim.lr: expected a number, got 'x'" \
    env MMFUSE_CORPUS_LR=x "$exe" validate "$good"
check "$good -o" 2 "-o train.epochs=0:1:14: train.epochs: expected an integer between 1 and 1000000, got 0" \
    "$exe" validate "$good" -o train.epochs=0

# ---------------------------------------------------------------- mmfuse run writes nothing
mkdir "$tmp/work"
for file in 17-int-is-text.yaml 43-missing-data.yaml 50-include-cycle.yaml 58-unknown-encoder-plugin.yaml \
    62-env-unset.yaml 70-binary.yaml; do
    line=$(grep "^$file	" "$expected_file" | cut -f 2-)
    line=${line//@ROOT@/$root}
    # shellcheck disable=SC2016 # $1… are the inner shell's
    check "run $file" 2 "${line//tests\/fixtures/$root/tests/fixtures}" \
        bash -c 'cd "$1" && exec "$2" run "$3"' - "$tmp/work" "$exe" "$root/$dir/$file"
    if [ -e "$tmp/work/runs" ] || [ -n "$(find "$tmp/work" -mindepth 1 -print -quit)" ]; then
        fail "run $file: created $(find "$tmp/work" -mindepth 1 -print -quit)"
        rm -rf "${tmp:?}/work/"*
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
