#!/bin/sh
# docs/yaml-reference.md is generated from the declared schemas; fail when it is stale.
set -eu
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$MMFUSE_EXE" reference > "$out"
if ! diff -u "$MMFUSE_SOURCE_ROOT/docs/yaml-reference.md" "$out"; then
    echo "docs/yaml-reference.md is out of date: regenerate it with" >&2
    echo "  build/framework/cli/mmfuse reference > docs/yaml-reference.md" >&2
    exit 1
fi
echo "1 passed, 0 failed"
