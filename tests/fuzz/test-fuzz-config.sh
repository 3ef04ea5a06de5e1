#!/bin/sh
# A short libFuzzer run of tests/fuzz/fuzz_config.c (MMFUSE_FUZZ_SECONDS, default 20) on a
# copy of the seed corpus, built with clang and AddressSanitizer/UBSan. Skipped (77) when
# clang or its fuzzer runtime is missing (Debian: clang, libclang-rt-14-dev).
set -u
src=${MMFUSE_SOURCE_ROOT:?}
seconds=${MMFUSE_FUZZ_SECONDS:-20}
cc=${MMFUSE_FUZZ_CC:-clang}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v "$cc" >/dev/null 2>&1 || { echo "skipped: no $cc"; exit 77; }
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }' \
    >"$tmp/probe.c"
if ! "$cc" -fsanitize=fuzzer,address "$tmp/probe.c" -o "$tmp/probe" >/dev/null 2>&1; then
    echo "skipped: $cc cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev)"
    exit 77
fi
yaml=$(pkg-config --cflags --libs yaml-0.1) || { echo "skipped: pkg-config has no yaml-0.1"; exit 77; }

cd "$src" || exit 1
# shellcheck disable=SC2086 # $yaml is a list of flags
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Iframework/config \
    tests/fuzz/fuzz_config.c framework/config/config_*.c framework/core/base.c framework/core/fileio.c framework/core/text.c \
    $yaml -o "$tmp/fuzz-config" || { echo "FAIL: building the fuzzer"; exit 1; }
mkdir "$tmp/corpus" "$tmp/artifacts"
cp tests/fuzz/corpus/* "$tmp/corpus/"

if "$tmp/fuzz-config" -max_total_time="$seconds" -max_len=2048 -timeout=10 -rss_limit_mb=2048 \
    -dict=tests/fuzz/yaml.dict -artifact_prefix="$tmp/artifacts/" -print_final_stats=1 \
    "$tmp/corpus" >"$tmp/log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done' "$tmp/log"
    echo "1 passed, 0 failed"
    exit 0
fi
tail -n 60 "$tmp/log"
keep=${MMFUSE_BUILD_ROOT:-$src}/fuzz-artifacts
mkdir -p "$keep" && cp "$tmp"/artifacts/* "$keep"/ 2>/dev/null
echo "FAIL: the fuzzer found a problem; inputs kept in $keep (replay one with"
echo "  build/tests/fuzz/fuzz-config-replay FILE, and add it to tests/fuzz/corpus/ once fixed)"
echo "0 passed, 1 failed"
exit 1
