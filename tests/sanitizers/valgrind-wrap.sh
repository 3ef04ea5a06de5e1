#!/bin/sh
# exe_wrapper of `meson test --setup valgrind`: memcheck on a test program; a shell-script
# test runs as it is (memcheck on bash says nothing about mmfuse, and does not follow the
# mmfuse it starts). Scripts carry the suite 'script', which that setup excludes; this is
# the net for one added without it.
here=$(dirname "$0")
if [ "$(head -c 2 "$1" 2>/dev/null)" = '#!' ]; then
  exec "$@"
fi
exec valgrind --error-exitcode=3 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --quiet --suppressions="$here/valgrind.supp" "$@"
