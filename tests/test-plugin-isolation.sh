#!/bin/sh
# A plugin file cannot stop, crash or change a run it is not used in, and one that is used
# and misbehaves is named (issue 13 items 5 and 11, docs/plugins.md):
#  - files whose constructor calls exit(0), segfaults, aborts or hangs are refused while
#    `run`, `plugins` and `check-plugin` go on, each with one line naming the file;
#  - scans are cached (a hang costs its time limit once), a changed file is scanned again,
#    an unusable cache is ignored;
#  - a used plugin that crashes or exits in build or forward is named with its file and
#    phase; check-plugin turns such a crash into FAIL lines and keeps every line in a pipe;
#  - trust: a world-writable folder above a plugin folder, a file of another user and a
#    group-writable lab folder are refused, the last one allowed by
#    MMFUSE_PLUGIN_TRUSTED_GROUPS; a sticky /tmp-like folder is fine;
#  - a plugin shadowing a built-in is recorded in the run's manifest.
set -u
exe=${MMFUSE_EXE:?}
fixtures=${MMFUSE_FIXTURE_PLUGINS:?}
bad=$fixtures/misbehaving
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp"
export MMFUSE_REGISTRY_CACHE="$tmp/cache/registry-v1.json" MMFUSE_PLUGIN_SCAN_TIMEOUT=2
export MMFUSE_THREADS=1
unset MMFUSE_PLUGIN_TRUSTED_GROUPS
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
no() { failed=$((failed + 1)); echo "FAIL $*" >&2; [ -f out ] && sed 's/^/    out: /' out >&2; [ -f err ] && sed 's/^/    err: /' err >&2; }
check() { # check NAME COMMAND...: ok when the command succeeds
    name=$1; shift
    if "$@"; then ok "$name"; else no "$name"; fi
}
has() { grep -qxF -- "$1" "$2"; } # an exact line

mkdir -m 755 unused used
for f in ctor_exit ctor_segv ctor_abort ctor_hang; do cp "$bad/$f.so" unused/; done
for f in build_segv forward_segv build_exit read_abort custom_segv; do cp "$bad/$f.so" used/; done
cat > x.yaml <<'EOF'
name: x
seed: 1
data: {reader: synthetic, samples: 200, batch_size: 32}
model:
  encoders:
    a: {type: mlp, hidden: [8], out: 4}
    b: {type: mlp, hidden: [8], out: 4}
  fusion: {type: concat}
  head: {type: mlp, hidden: [8]}
loss: {type: cross_entropy}
train: {epochs: 1}
EOF
refusals() { # the four lines a run or a listing prints for the unused folder, after $1
    printf '%s\n' "$1$tmp/unused/ctor_abort.so: crashed with SIGABRT while loading" \
        "$1$tmp/unused/ctor_exit.so: called exit(0) while loading" \
        "$1$tmp/unused/ctor_hang.so: timed out after 2 s while loading (tried again when the file changes or MMFUSE_PLUGIN_SCAN_TIMEOUT grows)" \
        "$1$tmp/unused/ctor_segv.so: crashed with SIGSEGV while loading"
}

# ---- unused misbehaving files: everything goes on
MMFUSE_PLUGIN_PATH=$tmp/unused "$exe" run x.yaml --no-save -q >out 2>err
status=$?
refusals "mmfuse: warning: " > want
check "run: unused files that exit, crash, abort or hang while loading do not stop it" \
    sh -c "[ $status -eq 0 ] && grep -q '^test accuracy' out && diff want err >/dev/null"
MMFUSE_PLUGIN_PATH=$tmp/unused "$exe" plugins >out 2>err
status=$?
refusals "refused: " > want
check "plugins: lists the built-ins and names each refused file" \
    sh -c "[ $status -eq 0 ] && grep -q '^fusion   concat ' out && diff want err >/dev/null"
MMFUSE_PLUGIN_PATH=$tmp/unused "$exe" check-plugin concat >out 2>err
status=$?
check "check-plugin NAME: the refused files on the path do not stop it" \
    sh -c "[ $status -eq 0 ] && grep -q '^concat: [0-9]* passed, 0 failed$' out"
"$exe" check-plugin "$tmp/unused/ctor_exit.so" >out 2>err
status=$?
check "check-plugin FILE: a file calling exit(0) while loading is refused, exit 2" \
    sh -c "[ $status -eq 2 ] && [ \"\$(cat err)\" = '$tmp/unused/ctor_exit.so: called exit(0) while loading' ]"

# ---- the scan cache
before=$(stat -c %i "$MMFUSE_REGISTRY_CACHE")
MMFUSE_PLUGIN_PATH=$tmp/unused "$exe" plugins >out 2>err
after=$(stat -c %i "$MMFUSE_REGISTRY_CACHE")
refusals "refused: " > want
# a scan would have been stored: the cache rewritten (a rename: another inode)
check "a second listing takes the cache: nothing scanned again, the hang not waited for" \
    sh -c "[ '$before' = '$after' ] && diff want err >/dev/null"
MMFUSE_PLUGIN_PATH=$tmp/unused MMFUSE_PLUGIN_SCAN_TIMEOUT=3 "$exe" plugins >out 2>err
check "a file that hung is tried again with a longer limit" \
    has "refused: $tmp/unused/ctor_hang.so: timed out after 3 s while loading (tried again when the file changes or MMFUSE_PLUGIN_SCAN_TIMEOUT grows)" err
touch "$tmp/unused/ctor_hang.so"
MMFUSE_PLUGIN_PATH=$tmp/unused MMFUSE_PLUGIN_SCAN_TIMEOUT=1 "$exe" plugins >out 2>err
check "a changed file is scanned again" \
    has "refused: $tmp/unused/ctor_hang.so: timed out after 1 s while loading (tried again when the file changes or MMFUSE_PLUGIN_SCAN_TIMEOUT grows)" err
echo '{"format": 1, "host": ' > "$MMFUSE_REGISTRY_CACHE"
"$exe" plugins >out 2>err
status=$?
check "an unreadable cache is ignored, then rewritten" \
    sh -c "[ $status -eq 0 ] && [ ! -s err ] && grep -q '^fusion   concat ' out && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '$MMFUSE_REGISTRY_CACHE'"
MMFUSE_REGISTRY_CACHE= "$exe" plugins >out 2>err
status=$?
check "MMFUSE_REGISTRY_CACHE empty: no cache, same listing" \
    sh -c "[ $status -eq 0 ] && [ ! -s err ] && grep -q '^fusion   concat ' out"

# a cache others can write is not read: a forged entry (the right size, time and inode,
# another name) is taken from a cache of yours, never from one writable by others
mkdir -m 755 forged && cp "$fixtures/duplicate_concat.so" forged/
MMFUSE_PLUGIN_PATH=$tmp/forged "$exe" plugins >/dev/null 2>&1
python3 - "$MMFUSE_REGISTRY_CACHE" "$tmp/forged/duplicate_concat.so" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for item in c["files"][sys.argv[2]]["scan"]["items"]:
    if item.get("name") == "first_only":
        item["name"] = "forged_name"
json.dump(c, open(sys.argv[1], "w"))
PY
chmod 644 "$MMFUSE_REGISTRY_CACHE"
MMFUSE_PLUGIN_PATH=$tmp/forged "$exe" plugins --kind fusion >out 2>err
check "the cache is what a warm listing reads (the forged entry shows)" grep -q '^fusion   forged_name ' out
chmod 666 "$MMFUSE_REGISTRY_CACHE"
MMFUSE_PLUGIN_PATH=$tmp/forged "$exe" plugins --kind fusion >out 2>err
check "a cache writable by others is ignored: the file is scanned again" \
    sh -c "grep -q '^fusion   first_only ' out && ! grep -q forged_name out"
rm -f "$MMFUSE_REGISTRY_CACHE"

# ---- used plugins that misbehave are named, with their file and phase
run_used() {
    sed "s/a: {type: mlp, hidden: \[8\], out: 4}/a: {type: $1}/" x.yaml > used.yaml
    MMFUSE_PLUGIN_PATH=$tmp/used "$exe" run used.yaml --no-save -q >out 2>err
}
run_used build_segv
status=$?
check "a plugin crashing in build: named with its file and phase, killed by SIGSEGV" \
    sh -c "[ $status -eq 139 ] && grep -qxF \"mmfuse: plugin 'build_segv' ($tmp/used/build_segv.so) crashed with SIGSEGV in build\" err"
run_used forward_segv
status=$?
check "a plugin crashing in forward: named with its file and phase" \
    sh -c "[ $status -eq 139 ] && grep -qxF \"mmfuse: plugin 'forward_segv' ($tmp/used/forward_segv.so) crashed with SIGSEGV in forward\" err"
run_used custom_segv
status=$?
check "a plugin's custom op crashing in the backward pass: named with its module" \
    sh -c "[ $status -eq 139 ] && grep -qxF \"mmfuse: custom op 'crash_in_backward' (module model.encoders.a) crashed with SIGSEGV in backward\" err"
run_used build_exit
status=$?
check "a plugin calling exit(0) in build: named, exit status 1" \
    sh -c "[ $status -eq 1 ] && grep -qxF \"mmfuse: plugin 'build_exit' ($tmp/used/build_exit.so) called exit(0) during build\" err"

sed "s/reader: synthetic, samples: 200,/reader: read_abort,/" x.yaml > reader.yaml
MMFUSE_PLUGIN_PATH=$tmp/used "$exe" run reader.yaml --no-save -q >out 2>err
status=$?
check "a reader aborting in read: named with its file and phase, killed by SIGABRT" \
    sh -c "[ $status -eq 134 ] && grep -qxF \"mmfuse: plugin 'read_abort' ($tmp/used/read_abort.so) crashed with SIGABRT in read\" err"

# ---- check-plugin: a crash is a FAIL line, and a pipe keeps every line
"$exe" check-plugin "$tmp/used/forward_segv.so" 2>err | cat >out
cat > want <<EOF
checking encoder 'forward_segv' from $tmp/used/forward_segv.so
PASS descriptor   'forward_segv' 1.0.0, encoder, ABI 1.1, MIT: A plugin that misbehaves
PASS parameters   none declared
FAIL build        vector (5): crashed with SIGSEGV
FAIL build        image (2,8,8): crashed with SIGSEGV
FAIL build        token ids (6) < 11, masked: crashed with SIGSEGV
FAIL build        sequence (6,5), masked: crashed with SIGSEGV
forward_segv: 2 passed, 4 failed
EOF
check "check-plugin | cat: PASS lines, then a FAIL line per crashed profile, then the summary" diff want out
"$exe" check-plugin "$tmp/used/forward_segv.so" >/dev/null 2>&1
check "check-plugin: crashed checks give exit status 1" [ $? -eq 1 ]
"$exe" check-plugin "$tmp/used/build_exit.so" 2>err | cat >out
check "check-plugin: exit(0) in a check is a FAIL line" \
    has "FAIL build        vector (5): called exit(0)" out

# ---- trust
mkdir -m 777 ww && mkdir -m 755 ww/plugins && cp "$fixtures/duplicate_concat.so" ww/plugins/
MMFUSE_PLUGIN_PATH=$tmp/ww/plugins "$exe" plugins >out 2>err
check "a world-writable folder above a plugin folder: refused, naming it" \
    has "refused: plugin folder '$tmp/ww/plugins': '$tmp/ww' above it is writable by other users (mode 0777), so others could replace what it holds; refusing to load plugins from it (chmod go-w '$tmp/ww')" err
chmod 1777 ww
MMFUSE_PLUGIN_PATH=$tmp/ww/plugins "$exe" plugins --kind fusion >out 2>err
check "with the sticky bit (as /tmp) the folder below, owned by you, is fine" \
    grep -q '^fusion   first_only ' out
chmod 755 ww
me=$(id -un) group=$(id -gn)
mkdir -m 775 own && cp "$fixtures/duplicate_concat.so" own/
members=$(getent group "$group" | cut -d: -f4)
if [ "$group" = "$me" ] && { [ -z "$members" ] || [ "$members" = "$me" ]; }; then
    MMFUSE_PLUGIN_PATH=$tmp/own "$exe" plugins --kind fusion >out 2>err
    check "a folder writable by your private group '$group' (umask 002) is read" \
        grep -q '^fusion   first_only ' out
else
    echo "skip your private group (your primary group '$group' is not one)"
fi
if [ "$(id -u)" -eq 0 ] && getent group users >/dev/null && command -v sg >/dev/null; then
    # root can act as a member of `users` (sg), a group that is no one's private group
    mkdir -m 775 lab && cp "$fixtures/duplicate_concat.so" lab/ && chgrp users lab
    MMFUSE_PLUGIN_PATH=$tmp/lab sg users -c "$exe plugins" >out 2>err
    check "a group-writable lab folder: refused, saying how to trust its group" \
        has "refused: plugin folder '$tmp/lab' is writable by the group 'users' (mode 0775); refusing to load plugins from it (chmod g-w '$tmp/lab', or to share plugins in a lab folder trust the group: MMFUSE_PLUGIN_TRUSTED_GROUPS=users)" err
    MMFUSE_PLUGIN_TRUSTED_GROUPS=users MMFUSE_PLUGIN_PATH=$tmp/lab sg users -c "$exe plugins --kind fusion" >out 2>err
    check "MMFUSE_PLUGIN_TRUSTED_GROUPS=users: the lab folder is read" grep -q '^fusion   first_only ' out
    MMFUSE_PLUGIN_TRUSTED_GROUPS=staff MMFUSE_PLUGIN_PATH=$tmp/lab sg users -c "$exe plugins" >out 2>err
    check "another group listed: still refused" grep -q "^refused: plugin folder '$tmp/lab' is writable by the group" err
    MMFUSE_PLUGIN_TRUSTED_GROUPS=users MMFUSE_PLUGIN_PATH=$tmp/lab "$exe" plugins >out 2>err
    check "a trusted group you do not belong to: still refused" grep -q "^refused: plugin folder '$tmp/lab' is writable by the group" err
else
    echo "skip the lab group (needs root for chgrp and sg)"
fi
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -m 755 theirs && cp "$fixtures/duplicate_concat.so" theirs/ && chown nobody theirs/duplicate_concat.so
    "$exe" check-plugin "$tmp/theirs/duplicate_concat.so" >out 2>err
    status=$?
    check "a file owned by another user: refused, exit 2" \
        sh -c "[ $status -eq 2 ] && grep -qxF \"$tmp/theirs/duplicate_concat.so: owned by user 'nobody' (uid $(id -u nobody)), not by you or root; refusing to load code from it (only its owner could make it safe: copy what you trust into a folder of your own)\" err"
else
    echo "skip a file owned by another user (needs root to chown)"
fi

# ---- shadowing a built-in is recorded in the run
mkdir -m 755 shadow && cp "$fixtures/duplicate_concat.so" shadow/
MMFUSE_PLUGIN_PATH=$tmp/shadow "$exe" run x.yaml -q --run-dir "$tmp/run" >out 2>err
check "shadowing: the built-in's refusal is in manifest.json's plugin_warnings, the file in plugins" \
    python3 - "$tmp/run/manifest.json" "$tmp/shadow/duplicate_concat.so" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
shadow = [w for w in m["plugin_warnings"] if "plugin 'concat' is already provided by " + sys.argv[2] in w]
used = [p for p in m["plugins"] if p["name"] == "concat"]
sys.exit(not (shadow and used and used[0]["file"] == sys.argv[2]))
EOF

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
