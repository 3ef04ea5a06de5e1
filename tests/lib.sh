# Sourced by the shell test suites: a scratch folder (removed at exit, the working folder),
# check / has / lacks / count, need_h5py, and finish (the summary and the exit status).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $what"
    else
        failed=$((failed + 1))
        echo "FAIL $what"
        echo "FAIL: $what" >&2
    fi
}
has() { grep -q -- "$1" "$2"; }
lacks() { ! grep -q -- "$1" "$2"; }
count() { grep -o -- "$1" "$2" | wc -l | tr -d ' '; }
# The suites that read HDF5 with h5py use Debian's interpreter as $py; skip (77) without it.
py=${py:-/usr/bin/python3}
need_h5py() {
    if ! $py -c 'import h5py' 2>/dev/null; then
        echo "SKIP: /usr/bin/python3 has no h5py (Debian's python3-h5py; make deps installs it)"
        exit 77
    fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
