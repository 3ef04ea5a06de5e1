#!/bin/sh
# Run tracking (issue 10 item 8, issue 13 item 6), end to end:
#  - the run folder's C side (events.jsonl, resume's cut back): the check program in $1;
#  - manifest.json: versions, each used plugin's file and SHA-256 (against sha256sum), seed,
#    threads, host, CPU, kernel, BLAS, start time, experiment;
#  - a run whose fusion plugin came through a relative MMFUSE_PLUGIN_PATH and whose data.path
#    is relative, re-run from its saved config.yaml in another folder without the variable:
#    the same metrics, the same config.yaml;
#  - the plugin file rebuilt: one warning line naming it, old and new hash, in manifest.json;
#  - mmfuse runs and compare on the fixture run folders of tests/fixtures/runs (exact lines).
set -eu
src=${MMFUSE_SOURCE_ROOT:?}
exe=${MMFUSE_EXE:?}
checks=${1:?the test-tracking check program}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
real=$(cd "$tmp" && pwd -P)
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
mmfuse() { "$exe" "$@"; }
export MMFUSE_THREADS=1

step "run folders in C: events.jsonl lines, reopening a run at a step"
"$checks" || fail "the rundir checks failed"

step "a lab fusion plugin through a relative MMFUSE_PLUGIN_PATH, a relative data.path"
mmfuse new-plugin fusion labgmu "$tmp/lab" >/dev/null
(cd "$tmp/lab" && cc -shared -fPIC -O0 -I"$src/include" labgmu.c -o labgmu.so) || fail "cc labgmu"
mkdir -p "$tmp/exp/data" "$tmp/elsewhere" "$tmp/third"
cp "$src/experiments/data/satellite.h5" "$tmp/exp/data/sat.h5"
cat > "$tmp/exp/e.yaml" <<'EOF'
name: track
seed: 3
threads: 1
data: {reader: hdf5, path: data/sat.h5, batch_size: 128}
model:
  encoders:
    visible: {type: mlp, hidden: [16], out: 8}
    nir: {type: mlp, hidden: [16], out: 8}
  fusion: {type: labgmu}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 2}
EOF
cd "$tmp/elsewhere"
MMFUSE_PLUGIN_PATH=../lab mmfuse run ../exp/e.yaml -q --run-dir ../r1 > out 2>&1 || { cat out; fail "the first run"; }
grep -q "warning" out && { cat out; fail "the first run warned"; }
for f in config.yaml manifest.json metrics.csv result.json; do
    [ -f "$tmp/r1/$f" ] || fail "the run folder has no $f"
done

step "manifest.json: fields, and each plugin's SHA-256 as sha256sum gives it"
python3 - "$tmp/r1/manifest.json" "$real" "$(mmfuse --version)" <<'EOF' || fail "manifest.json"
import datetime, json, os, re, socket, subprocess, sys
m = json.load(open(sys.argv[1]))
real, version = sys.argv[2], sys.argv[3]
def check(ok, what):
    if not ok:
        sys.exit("manifest.json: %s\n%s" % (what, json.dumps(m, indent=2)))
check(version.startswith("mmfuse %s " % m["mmfuse"]), "mmfuse version %r vs %r" % (m["mmfuse"], version))
check(m["abi"] == "1.1", "abi")
check(m["experiment"] == real + "/exp/e.yaml", "experiment %r" % m["experiment"])
check(m["seed"] == 3 and m["threads"] == 1, "seed and threads")
check(m["overrides"] == [], "overrides")
check(m["host"] == socket.gethostname(), "host")
check(os.uname().release in m["kernel"] and m["kernel"].startswith("Linux "), "kernel")
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
check(not cpu or m["cpu"] == cpu[0], "cpu %r vs %r" % (m["cpu"], cpu[:1]))
check(os.path.isfile(m["blas"]["library"]), "blas library")
utc = datetime.timezone.utc
started = datetime.datetime.strptime(m["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=utc)
age = datetime.datetime.now(utc) - started
check(datetime.timedelta(0) <= age < datetime.timedelta(minutes=10), "started %s" % m["started"])
kinds = [(p["kind"], p["name"]) for p in m["plugins"]]
check(kinds == [("dataset", "hdf5"), ("encoder", "mlp"), ("fusion", "labgmu"),
                ("loss", "cross_entropy")], "plugins used %r" % kinds)
for p in m["plugins"]:
    check(os.path.isabs(p["file"]) and os.path.isfile(p["file"]), "file of " + p["name"])
    sha = subprocess.run(["sha256sum", p["file"]], capture_output=True, text=True).stdout.split()[0]
    check(p["sha256"] == sha, "sha256 of %s: %s, sha256sum says %s" % (p["name"], p["sha256"], sha))
    check(p["abi"] == "1.1" and p["version"], "version and abi of " + p["name"])
lab = m["plugins"][2]
check(lab["file"] == real + "/lab/labgmu.so" and lab["version"] == "0.1.0", "labgmu %r" % lab)
check(m["plugins_changed"] == [], "plugins_changed")
EOF

step "config.yaml: data.path, plugins.path and plugins.files absolute"
grep -qx "  path: $real/exp/data/sat.h5" "$tmp/r1/config.yaml" || fail "data.path is not absolute in config.yaml"
grep -qx "  - $real/lab" "$tmp/r1/config.yaml" || fail "plugins.path does not list the lab folder"
grep -qx "        file: $real/lab/labgmu.so" "$tmp/r1/config.yaml" || fail "plugins.files has no labgmu file"

step "the saved config.yaml from another folder, without MMFUSE_PLUGIN_PATH: the same run"
cd "$tmp/third"
env -u MMFUSE_PLUGIN_PATH "$exe" run "$tmp/r1/config.yaml" -q --run-dir ../r2 > out 2>&1 || { cat out; fail "the re-run"; }
grep -q "warning" out && { cat out; fail "the re-run warned"; }
python3 - "$tmp/r1/result.json" "$tmp/r2/result.json" <<'EOF' || fail "the re-run's metrics differ"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for k in ("test", "val", "best_epoch", "epochs", "final_train_loss", "test_metric"):
    if a[k] != b[k]:
        sys.exit("%s: %r != %r" % (k, a[k], b[k]))
EOF
cmp "$tmp/r1/config.yaml" "$tmp/r2/config.yaml" || fail "the re-run saved another config.yaml"
# the lab folder both in MMFUSE_PLUGIN_PATH and in the saved plugins.path: read once, no warning
MMFUSE_PLUGIN_PATH="$tmp/lab" "$exe" validate "$tmp/r1/config.yaml" > out 2>&1 || { cat out; fail "validate with the folder twice"; }
grep -q "already provided" out && { cat out; fail "a folder named twice shadowed itself"; }
python3 - "$tmp/r1/metrics.csv" "$tmp/r2/metrics.csv" <<'EOF' || fail "the re-run's metrics.csv differs"
import csv, sys
a, b = ([{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(f))]
        for f in sys.argv[1:])
if a != b or len(a) != 2:
    sys.exit("%r\n%r" % (a, b))
EOF

step "eval.robustness.baseline relative: absolute in config.yaml, and the saved config re-runs"
cat > "$tmp/exp/lf.yaml" <<'EOF'
name: lf
seed: 3
threads: 1
data: {reader: hdf5, path: data/sat.h5, batch_size: 128}
model:
  encoders:
    visible: {type: mlp, hidden: [16], out: 8}
    nir: {type: mlp, hidden: [16], out: 8}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 1}
eval: {robustness: {noise: [0, 0.5]}}
EOF
sed -e 's/^name: lf/name: ef/' -e 's#noise: \[0, 0.5\]#noise: [0, 0.5], baseline: ../r-lf#' \
    "$tmp/exp/lf.yaml" > "$tmp/exp/ef.yaml"
cd "$tmp/exp"
mmfuse run lf.yaml -q --run-dir ../r-lf > out 2>&1 || { cat out; fail "the baseline run"; }
mmfuse run ef.yaml -q --run-dir ../r-ef > out 2>&1 || { cat out; fail "the run with a baseline"; }
grep -qx "    baseline: $real/exp/../r-lf" "$tmp/r-ef/config.yaml" ||
    { grep -n baseline "$tmp/r-ef/config.yaml"; fail "eval.robustness.baseline is not absolute in config.yaml"; }
cd "$tmp/third"
mmfuse run "$tmp/r-ef/config.yaml" -q --run-dir ../r-ef2 > out 2>&1 || { cat out; fail "the re-run with a baseline"; }
python3 - "$tmp/r-ef/result.json" "$tmp/r-ef2/result.json" <<'EOF' || fail "the re-run's robustness differs"
import json, sys
a, b = (json.load(open(f))["robustness"] for f in sys.argv[1:])
assert a.pop("baseline").endswith("r-lf/result.json") and b.pop("baseline").endswith("r-lf/result.json")
assert a["effective"] and a == b, (a, b)
EOF
rm -rf "$tmp/r-lf" "$tmp/r-ef" "$tmp/r-ef2"
cd "$tmp/elsewhere"

step "the plugin rebuilt: one warning line naming it, with both hashes, and in manifest.json"
old=$(sha256sum "$tmp/lab/labgmu.so" | cut -d' ' -f1)
(cd "$tmp/lab" && cc -shared -fPIC -O2 -I"$src/include" labgmu.c -o labgmu.so) || fail "cc -O2 labgmu"
new=$(sha256sum "$tmp/lab/labgmu.so" | cut -d' ' -f1)
[ "$old" != "$new" ] || fail "the rebuilt plugin has the same hash (test setup)"
line=$(grep -n "^        file: $real/lab/labgmu.so$" "$tmp/r1/config.yaml" | cut -d: -f1)
env -u MMFUSE_PLUGIN_PATH "$exe" run "$tmp/r1/config.yaml" -q --run-dir ../r3 -o train.epochs=1 \
    > out 2> err || { cat out err; fail "the run with a changed plugin"; }
expected="mmfuse: warning: $tmp/r1/config.yaml:$line:9: plugins.files.fusion.labgmu: the fusion plugin 'labgmu' changed since this config was saved: was $real/lab/labgmu.so (sha256 $old), now $real/lab/labgmu.so (sha256 $new)"
[ "$(cat err)" = "$expected" ] || { printf 'expected:\n%s\ngot:\n' "$expected"; cat err; fail "the warning"; }
python3 - "$tmp/r3/manifest.json" "$old" "$new" <<'EOF' || fail "manifest.json of the changed plugin"
import json, sys
m = json.load(open(sys.argv[1]))
c = m["plugins_changed"]
assert len(c) == 1 and c[0]["name"] == "labgmu" and c[0]["kind"] == "fusion", c
assert c[0]["old_sha256"] == sys.argv[2] and c[0]["sha256"] == sys.argv[3], c
assert c[0]["old_file"] == c[0]["file"], c
assert m["overrides"] == ["train.epochs=1"], m["overrides"]
EOF
# validate says it too, and a config without plugins.files never does
env -u MMFUSE_PLUGIN_PATH "$exe" validate "$tmp/r1/config.yaml" 2>&1 >/dev/null | grep -c "warning" |
    grep -qx 1 || fail "validate does not warn once"
MMFUSE_PLUGIN_PATH=../lab "$exe" validate ../exp/e.yaml 2>&1 | grep -q warning && fail "a plain file warned"

step "mmfuse runs and compare"
if ! mmfuse runs --help 2>/dev/null | grep -q "^usage: mmfuse runs"; then
    echo "SKIP: mmfuse has no runs verb yet (main.c's dispatch): runs and compare not tested"
    exit 77
fi
mmfuse compare --help | grep -q "^usage: mmfuse compare RUN RUN" || fail "compare --help"
cd "$src"
mmfuse runs tests/fixtures/runs/ > "$tmp/runs.out" || fail "mmfuse runs exits $?"
cat > "$tmp/runs.expected" <<'EOF'
folder                                                                          name        status          epochs  selected      best val  test    seconds
tests/fixtures/runs/sweep-fusion/20261203-000000/model.fusion.type=mean,seed=1  quickstart  diverged        2       val.accuracy  0.4889    0.5333  0.2
tests/fixtures/runs/satellite/20261202-080000                                   satellite   running/killed  3       -             -         -       -
tests/fixtures/runs/satellite/20261202-070000                                   satellite   failed          2       val.accuracy  0.8871    0.8695  0.4
tests/fixtures/runs/quickstart/20261201-100000                                  quickstart  done            3       val.accuracy  0.6778    0.7222  0.1
tests/fixtures/runs/quickstart/20261201-090000                                  quickstart  done            3       val.accuracy  0.5667    0.6000  0.2
EOF
diff "$tmp/runs.expected" "$tmp/runs.out" || fail "mmfuse runs"
mmfuse runs tests/fixtures/runs --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert [x["status"] for x in r] == ["diverged", "running/killed", "failed", "done", "done"], r
assert r[1]["best_val"] is None and r[1]["epochs"] == 3 and r[3]["test"] == 0.72222222222222221, r
' || fail "mmfuse runs --json"
a=tests/fixtures/runs/quickstart/20261201-090000
b=tests/fixtures/runs/quickstart/20261201-100000
mmfuse compare $a $b > "$tmp/compare.out" || fail "mmfuse compare exits $?"
cat > "$tmp/compare.expected" <<'EOF'
config                               tests/fixtures/runs/quickstart/20261201-090000                    tests/fixtures/runs/quickstart/20261201-100000
seed                                 1                                                                 2
model.fusion.type                    concat                                                            sum
model.fusion.dim                     -                                                                 64
model.fusion.activation              -                                                                 none
optim.lr                             2.0e-3                                                            5.0e-3
plugins.files.fusion.sum.file        -                                                                 /usr/lib/x86_64-linux-gnu/mmfuse/plugins/mmfuse-sum.so
plugins.files.fusion.sum.sha256      -                                                                 efdb50b4c581fed2c56431fa909bdbc016588641544f5b0b54a0aa32f71ab1fe
plugins.files.fusion.sum.version     -                                                                 1.0.0
plugins.files.fusion.concat.file     /usr/lib/x86_64-linux-gnu/mmfuse/plugins/mmfuse-concat.so         -
plugins.files.fusion.concat.sha256   851222ee599732483b4c4471311c550c00a97206a32484deadc231f2aed32add  -
plugins.files.fusion.concat.version  1.0.0                                                             -

metric                   tests/fixtures/runs/quickstart/20261201-090000  tests/fixtures/runs/quickstart/20261201-100000
val.accuracy (selected)  0.5667                                          0.6778
test.accuracy            0.6000                                          0.7222
test.loss                1.0854                                          0.8661
test.macro_f1            0.5707                                          0.7050
val.loss                 1.0676                                          0.9293
val.macro_f1             0.5492                                          0.6679
epochs                   3                                               3
seconds                  0.2                                             0.1
EOF
diff "$tmp/compare.expected" "$tmp/compare.out" || fail "mmfuse compare"
mmfuse compare $a $a | head -n 1 | grep -qx "config: no differences" || fail "compare of a run with itself"
# the real runs above: newest first, the changed-plugin run on top
mmfuse runs "$tmp" | cut -d' ' -f1 | tr '\n' ' ' | grep -qx "folder $tmp/r3 $tmp/r2 $tmp/r1 " ||
    { mmfuse runs "$tmp"; fail "mmfuse runs on real runs"; }

step "bad input: exit 2, one sentence"
if mmfuse compare $a tests/fixtures 2> "$tmp/err"; then fail "compare took a folder that is no run"; fi
[ "$(cat "$tmp/err")" = "mmfuse compare: 'tests/fixtures' is not a run folder (it has no config.yaml)" ] ||
    { cat "$tmp/err"; fail "compare's refusal"; }
status=0; mmfuse compare $a 2> "$tmp/err" || status=$?
[ $status = 2 ] && grep -q "give two run folders or more" "$tmp/err" || fail "compare with one run"
status=0; mmfuse runs "$tmp/none" 2> "$tmp/err" || status=$?
[ $status = 2 ] && [ "$(cat "$tmp/err")" = "mmfuse runs: cannot read the folder '$tmp/none': No such file or directory" ] ||
    { cat "$tmp/err"; fail "runs on a missing folder"; }
echo "tracking: all passed"
