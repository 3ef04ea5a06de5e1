#!/bin/sh
# exe_wrapper of a sanitizer build's test setup (tests/meson.build, docs/testing.md).
# Every process a test starts (a check suite's forked children, the mmfuse runs of a shell
# test, a sweep's points) writes its sanitizer reports to files here instead of stderr, so
# a test that asserts an exact stderr still sees only mmfuse's own words, and a report from
# a run the test expected to fail (exit 1 or 2) is not lost: any report fails the test,
# whatever the test's own verdict.
logdir=$(mktemp -d "${TMPDIR:-/tmp}/mmfuse-san.XXXXXX") || exit 1
# the plugin registry's cache lives and dies with the test, not in the user's ~/.cache: a
# refusal a sanitizer caused (a report in a scan child) must not outlive the run
export MMFUSE_REGISTRY_CACHE="${MMFUSE_REGISTRY_CACHE-$logdir/registry-v1.json}"
for tool in ASAN UBSAN TSAN; do
  eval "opts=\${${tool}_OPTIONS:-}"
  export "${tool}_OPTIONS=${opts:+$opts:}log_path=$logdir/report"
done
"$@"
rc=$?
set -- "$logdir"/report.*
if [ -e "$1" ]; then
  for f; do
    echo "--- sanitizer report ($f)" >&2
    cat "$f" >&2
  done
  echo "sanitizer: $# report(s) above; the test fails (its own status was $rc)" >&2
  rc=1
fi
rm -rf "$logdir"
exit $rc
