#!/bin/sh
# Every built-in plugin passes `mmfuse check-plugin` on the inputs it takes (input profiles
# it refuses are SKIP lines; a FAIL anywhere fails the suite). The list comes from
# `mmfuse plugins`, so a new built-in plugin is checked without touching this file.
set -u
exe=${MMFUSE_EXE:?}
cd "${MMFUSE_SOURCE_ROOT:?}"
export MMFUSE_THREADS=1 # small shapes: steadier on a shared machine
names=$("$exe" plugins | awk '/^(dataset|encoder|fusion|loss) /{print $2}')
[ -n "$names" ] || { echo "mmfuse plugins listed nothing" >&2; exit 1; }
passed=0 failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for name in $names; do
    case $name in
    hdf5) set -- -o path=experiments/data/satellite.h5 ;;
    *) set -- ;;
    esac
    if "$exe" check-plugin "$name" "$@" >"$out" 2>&1 && ! grep -q '^FAIL' "$out" &&
        grep -q "^$name: .*, 0 failed$" "$out"; then
        passed=$((passed + 1))
        echo "ok   $name: $(tail -n 1 "$out")"
    else
        failed=$((failed + 1))
        echo "FAIL $name:" >&2
        cat "$out" >&2
    fi
done
# the memory check is not blind: an encoder that loses 24 bytes a build fails it
fixtures=${MMFUSE_MODEL_FIXTURES:?}
if "$exe" check-plugin "$fixtures/model_probe.so" >"$out" 2>&1; then :; fi
if grep -q '^FAIL memory .*(it grows with every cycle)$' "$out" &&
    grep -q '^leaky: .*, 4 failed$' "$out"; then
    passed=$((passed + 1))
    echo "ok   the leaky fixture fails the memory check"
else
    failed=$((failed + 1))
    echo "FAIL the leaky fixture passed the memory check:" >&2
    cat "$out" >&2
fi
[ "$passed" -ge 27 ] || { echo "only $passed plugins checked (26 plugins and the leak check expected at least)" >&2; failed=$((failed + 1)); }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
