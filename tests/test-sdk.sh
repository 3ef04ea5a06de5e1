#!/bin/sh
# The SDK as a lab uses it, against a staged install (meson install --destdir):
#  - the staged mmfuse starts without LD_LIBRARY_PATH (an $ORIGIN rpath), also moved away;
#    pkg-config finds mmfuse.pc where docs/plugins.md says; every verb has --help;
#  - every kind scaffolded by `mmfuse new-plugin`, built with the one cc line of the docs,
#    passing `mmfuse check-plugin` and running its example experiment;
#  - the same skeleton built with its own meson.build (a lab's plugin repository);
#  - the tutorial and the ABI 1.1 examples of docs/plugins.md, their code extracted as written;
#  - plugin folders and files writable by other users refused; nothing loaded from the
#    working directory.
set -eu
build=${MMFUSE_BUILD_ROOT:?}
src=${MMFUSE_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

step "meson install into a staging folder"
meson install -C "$build" --destdir "$tmp/stage" --no-rebuild --quiet >/dev/null
stage=$tmp/stage
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
exe=$stage$prefix/bin/mmfuse
lib=$(find "$stage" -name 'libmmfuse.so.0' | head -n 1)
[ -x "$exe" ] && [ -n "$lib" ] || fail "install lacks bin/mmfuse or libmmfuse.so.0"
[ -f "$(dirname "$lib")/mmfuse/plugins/mmfuse-concat.so" ] || fail "built-in plugins not installed beside the library"
[ -f "$stage$prefix/include/mmfuse/mmfuse.h" ] || fail "headers not installed"
# as docs/plugins.md says: PKG_CONFIG_PATH=$prefix/lib/<multiarch>/pkgconfig
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch)
pc_dir=$stage$prefix/lib/$multiarch/pkgconfig
[ -f "$pc_dir/mmfuse.pc" ] || fail "mmfuse.pc is not in \$prefix/lib/$multiarch/pkgconfig: $(find "$stage" -name mmfuse.pc)"
export PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_SYSROOT_DIR="$stage"
pkg-config --exists mmfuse || fail "pkg-config does not find mmfuse with the documented PKG_CONFIG_PATH"
unset MMFUSE_PLUGIN_PATH LD_LIBRARY_PATH
mmfuse() { env -u LD_LIBRARY_PATH "$exe" "$@"; }

step "the staged mmfuse starts without LD_LIBRARY_PATH, finds its plugins, and can be moved"
mmfuse --version | grep -q "^mmfuse " || fail "the staged mmfuse does not start without LD_LIBRARY_PATH"
mmfuse plugins | grep -q "^fusion   concat" || fail "the staged mmfuse does not find its plugins"
cp -a "$stage$prefix" "$tmp/moved"
env -u LD_LIBRARY_PATH "$tmp/moved/bin/mmfuse" plugins --describe concat | grep -q "file: $tmp/moved/" ||
    fail "a moved install does not run from its own folder"

step "every verb answers --help with its usage, exit 0"
for verb in run validate sweep plugins check-plugin new-plugin import bench reference; do
    mmfuse "$verb" --help > "$tmp/help" || fail "mmfuse $verb --help exits $?"
    grep -q "^usage: mmfuse $verb" "$tmp/help" || { cat "$tmp/help"; fail "mmfuse $verb --help prints no usage"; }
done
mmfuse check-plugin -h | grep -q "SKIP" || fail "check-plugin --help does not explain SKIP lines"
mmfuse check-plugin hdf5 -o "path=$src/experiments/data/satellite.h5" > "$tmp/check.out" || { cat "$tmp/check.out"; fail "check-plugin hdf5"; }
grep -q "^PASS parameters .*; with defaults and -o path=$src/experiments/data/satellite.h5, all within" "$tmp/check.out" ||
    { cat "$tmp/check.out"; fail "check-plugin does not name the -o settings it used"; }

for kind in dataset encoder fusion loss; do
    name=lab_$kind
    step "new-plugin $kind $name; cc; check-plugin; run"
    mmfuse new-plugin "$kind" "$name" "$tmp/lab/$kind" >/dev/null
    cd "$tmp/lab/$kind"
    cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) $name.c -o $name.so
    mmfuse check-plugin ./$name.so > check.out || { cat check.out; fail "check-plugin $name"; }
    grep -q "FAIL" check.out && { cat check.out; fail "check-plugin $name reported a failure"; }
    grep -q "^$name: [0-9]* passed, \([0-9]* skipped, \)\{0,1\}0 failed$" check.out || { cat check.out; fail "no summary"; }
    mmfuse run $name.yaml -q > run.out 2>&1 || { cat run.out; fail "run $name.yaml"; }
    grep -q "^test accuracy" run.out || { cat run.out; fail "run $name.yaml printed no result"; }
done

step "the loss template's build_model refuses targets it cannot use: SKIP lines with its reason"
grep -q "^SKIP build        logits (4) + values (B,4), embeddings (5)+(7): refused: .*: lab_loss needs class labels, but the data gives regression targets$" "$tmp/lab/loss/check.out" ||
    { cat "$tmp/lab/loss/check.out"; fail "no SKIP line for regression targets"; }
grep -q "^PASS gradients    logits (4) + class targets, embeddings (5)+(7): " "$tmp/lab/loss/check.out" ||
    fail "the loss template was not checked on class targets"

step "a second new-plugin into the same folder refuses to overwrite"
if mmfuse new-plugin fusion lab_fusion "$tmp/lab/fusion" 2>"$tmp/err"; then fail "overwrote"; fi
grep -q "already exists; not overwriting anything" "$tmp/err" || fail "no reason given"

step "the skeleton's own meson.build (a lab's plugin repository)"
cd "$tmp/lab/encoder"
meson setup mbuild >/dev/null && ninja -C mbuild >/dev/null || fail "lab meson build"
MMFUSE_PLUGIN_PATH="$tmp/lab/encoder/mbuild" mmfuse check-plugin lab_encoder >/dev/null ||
    fail "check-plugin by name on MMFUSE_PLUGIN_PATH"

step "the tutorial of docs/plugins.md, as written"
mkdir -p "$tmp/tutorial" && cd "$tmp/tutorial"
mmfuse new-plugin fusion gmu . >/dev/null
sed -n '/<!-- tutorial: gmu.c -->/,/<!-- end -->/p' "$src/docs/plugins.md" | sed '1,2d;$d' | sed '$d' > gmu.c
lines=$(wc -l < gmu.c)
[ "$lines" -gt 10 ] && [ "$lines" -lt 40 ] || fail "the tutorial's plugin is $lines lines, not 11 to 39"
grep -q backward gmu.c && fail "the tutorial's plugin mentions backward code"
cc -shared -fPIC $(pkg-config --cflags --libs mmfuse) gmu.c -o gmu.so
mmfuse check-plugin ./gmu.so > check.out || { cat check.out; fail "check-plugin gmu"; }
mmfuse run gmu.yaml -q > run.out 2>&1 || { cat run.out; fail "run gmu.yaml"; }
acc=$(sed -n 's/^test accuracy \([0-9.]*\).*/\1/p' run.out)
# measured: 0.809, 0.793, 0.800 on seeds 1-3 (concat on the same file: 0.793, 0.798, 0.793)
awk "BEGIN { exit !($acc >= 0.75) }" || fail "the tutorial's model reached only $acc"

step "the ABI 1.1 examples of docs/plugins.md, as written: a loss with build_model, a sequence encoder"
mkdir -p "$tmp/abi11" && cd "$tmp/abi11"
for example in l1 seqproj; do
    sed -n "/<!-- sdk: $example.c -->/,/<!-- end -->/p" "$src/docs/plugins.md" | sed '1,2d;$d' | sed '$d' > $example.c
    cc -shared -fPIC -Wall -Werror $(pkg-config --cflags --libs mmfuse) $example.c -o $example.so ||
        fail "the docs' $example.c does not build"
    mmfuse check-plugin ./$example.so > $example.out || { cat $example.out; fail "check-plugin $example"; }
done
grep -q "^l1: 9 passed, 4 skipped, 0 failed$" l1.out || { cat l1.out; fail "l1: unexpected summary"; }
grep -q "^PASS metrics      logits (4) + values (B,4), embeddings (5)+(7): 1 declared, finite after a forward$" l1.out ||
    { cat l1.out; fail "l1: metrics not checked"; }
grep -q "^SKIP build        logits (4) + class targets, embeddings (5)+(7): refused: <defaults of l1>:1:1: l1 needs regression targets (data with target columns)$" l1.out ||
    { cat l1.out; fail "l1: class targets not refused with its reason"; }
grep -q "^PASS shape        token ids (6) < 11, masked: forward gives (3,6,16) as declared, with its (B,T) mask$" seqproj.out ||
    { cat seqproj.out; fail "seqproj: the mask does not travel"; }
grep -q "^seqproj: 14 passed, 2 skipped, 0 failed$" seqproj.out || { cat seqproj.out; fail "seqproj: unexpected summary"; }
cd "$tmp/tutorial"

step "safety: group/world-writable folders and files are refused; the working directory is not searched"
mkdir "$tmp/open" && cp gmu.so "$tmp/open/" && chmod 777 "$tmp/open"
MMFUSE_PLUGIN_PATH="$tmp/open" mmfuse plugins 2>"$tmp/err" >/dev/null
grep -q "^refused: plugin folder '$tmp/open' is writable by other users (mode 0777)" "$tmp/err" || { cat "$tmp/err"; fail "open folder not refused"; }
chmod 755 "$tmp/open" && chmod 666 "$tmp/open/gmu.so"
if mmfuse check-plugin "$tmp/open/gmu.so" 2>"$tmp/err"; then fail "writable file loaded"; fi
grep -q "gmu.so: writable by other users (mode 0666); refusing to load code from it" "$tmp/err" || { cat "$tmp/err"; fail "writable file: no reason"; }
cd "$tmp/tutorial" && mmfuse plugins --kind fusion | grep -q " gmu " && fail "a plugin in the working directory was loaded"
echo "1 passed, 0 failed"
