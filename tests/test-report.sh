#!/bin/sh
# mmfuse report (issue 10 item 9): report.html of run folders (hand-written fixtures in the
# schema of result.json, a 100-class confusion matrix, a run made here) and summary.html of a
# sweep folder; bad folders exit 2 naming the folder. Then each page is loaded in headless
# Chromium: no console errors (an SVG attribute the browser cannot read is one), and the
# charts hold the series their inputs call for (tests/report_check.py counts data-series in
# the DOM after load).
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
. "$(dirname "$0")/lib.sh"

if ! "$exe" report --help > help.txt 2>&1; then
    echo "SKIP: this mmfuse has no report verb yet (framework/cli/main.c does not dispatch it)"
    exit 77
fi
check "--help gives the usage" has "^usage: mmfuse report DIR" help.txt

cp -r "$src/tests/fixtures/report" fx
echo "--- pages from fixtures"
for d in run-full run-partial; do
    "$exe" report fx/$d > out 2> err
    check "report fx/$d exits 0" test $? -eq 0
    check "report fx/$d writes report.html" test -s fx/$d/report.html
    check "report fx/$d says where" has "fx/$d/report.html" out
done
"$exe" report fx/sweep > out 2> err
check "report of a sweep folder exits 0" test $? -eq 0
check "a sweep folder gets summary.html" test -s fx/sweep/summary.html
check "a sweep folder gets no report.html" test ! -e fx/sweep/report.html
r=fx/run-full/report.html
check "class names are escaped" has "grey &lt;soil&gt;" $r
check "no raw markup from the data" lacks "grey <soil>" $r
check "the experiment's name is the title" has "<h1>fixture &lt;satellite&gt;</h1>" $r
check "eight charts in the full fixture" test "$(count '<svg class="chart"' $r)" -eq 8
check "the best epoch is marked on the four curves" test "$(count 'data-mark="best"' $r)" -eq 4
check "the manifest's host is shown" has "fixture-host" $r
check "the per-class table" has "<td>damp &amp; grey</td>" $r
check "no script in the page" lacks "<script" $r
check "nothing fetched from elsewhere" lacks 'src="http\|href="http' $r
cp $r first.html
"$exe" report fx/run-full > /dev/null 2>&1
check "the same folder gives the same page" cmp -s first.html $r
check "no temporary left behind" test "$(ls -A fx/run-full | wc -l)" -eq 5
check "the point with '..' in its folder is not linked" lacks 'escape' fx/sweep/summary.html

echo "--- validation every N steps: the x axis is the step"
mkdir steps
printf 'epoch,step,train_loss,val_loss,seconds\n1,5,1.0,1.1,0.1\n1,10,0.8,0.9,0.1\n2,15,0.6,0.7,0.1\n2,20,0.5,0.75,0.1\n' > steps/metrics.csv
printf '{"status": "done", "best_epoch": 2, "best_step": 15}\n' > steps/result.json
"$exe" report steps > /dev/null 2>&1
check "steps on the x axis" has 'text-anchor="middle">step</text>' steps/report.html
check "the best step marked" has 'data-mark="best"' steps/report.html
# steps 5…20 get ticks of 2 from 4 to 20 drawn over x = 64…534: step 15 at 64 + 11/16·470
check "the mark at step 15, not at the end of epoch 2" has '<line class="mark" x1="387.1"' steps/report.html

echo "--- 100 classes"
mkdir big
python3 - big/result.json <<'EOF'
import json, sys
n = 100
conf = [[(7 * i + 3 * j) % 5 + (40 if i == j else 0) for j in range(n)] for i in range(n)]
classes = ["class %d" % i for i in range(n)]
json.dump({"status": "done", "best_epoch": 1, "test": {"accuracy": 0.9},
           "details": {"test": {"classes": classes, "confusion": conf, "per_class": []}}},
          open(sys.argv[1], "w"))
EOF
"$exe" report big > /dev/null 2> err
check "a run with only result.json and 100 classes" test -s big/report.html
check "10000 cells" test "$(count 'class="cell"' big/report.html)" -eq 10000

echo "--- bad folders"
"$exe" report > out 2> err
check "no folder: exit 2" test $? -eq 2
check "no folder: says so" has "mmfuse report: which run or sweep folder?" err
"$exe" report missing > out 2> err
check "a missing folder: exit 2" test $? -eq 2
check "a missing folder: named" has "^mmfuse report: 'missing' is not a folder$" err
mkdir empty
"$exe" report empty > out 2> err
check "a folder with neither: exit 2" test $? -eq 2
check "a folder with neither: one sentence naming it" has "^mmfuse report: 'empty' is neither a run folder (no metrics.csv or result.json) nor a sweep folder (no summary.csv)$" err
check "a folder with neither: one line" test "$(wc -l < err)" -eq 1
check "a folder with neither: nothing written" test -z "$(ls -A empty)"
"$exe" report fx/bad-json > out 2> err
check "a corrupt result.json: exit 2" test $? -eq 2
check "a corrupt result.json: file and place named" has "^fx/bad-json/result.json:1:28: not valid JSON" err
check "a corrupt result.json: no page" test ! -e fx/bad-json/report.html
mkdir badsweep
printf 'rank,a,n\n1,x,3\n' > badsweep/summary.csv
"$exe" report badsweep > out 2> err
check "a summary.csv of another kind: exit 2" test $? -eq 2
check "a summary.csv of another kind: named" has "^badsweep/summary.csv: not a sweep summary" err
"$exe" report fx/run-full fx/sweep > out 2> err
check "two folders: exit 2" test $? -eq 2

echo "--- a real run"
cat > exp.yaml <<'EOF'
name: tiny
seed: 1
data: {reader: synthetic, samples: 1500, batch_size: 64}
model:
  encoders:
    a: {type: mlp, hidden: [16], out: 16}
    b: {type: mlp, hidden: [16], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
optim: {lr: 2.0e-3}
train: {epochs: 3}
eval: {robustness: {drop: [all], default_noise: true}}
EOF
"$exe" run exp.yaml --run-dir real -q > out 2> err
check "the run exits 0" test $? -eq 0
"$exe" report real > out 2> err
check "its report" test -s real/report.html

echo "--- 300 classes (issue 13): per-class figures, no K×K matrix past 256 classes"
"$exe" run exp.yaml --run-dir many -q -o data.classes=300 -o data.samples=3000 -o train.epochs=1 \
    -o 'eval={}' > out 2> err
check "300 classes: the run exits 0" test $? -eq 0
check "300 classes: per_class has 300 rows, no confusion" python3 -c "
import json
t = json.load(open('many/result.json'))['details']['test']
assert len(t['per_class']) == 300 and 'confusion' not in t, t.keys()"
"$exe" report many > out 2> err
check "300 classes: its report" test -s many/report.html

echo "--- cases named by a number (mlp-lf0 …): a chart against the number, a line per name"
mkdir lf
printf 'rank,cases,n,failed,best_val_accuracy_mean,best_val_accuracy_std,test_accuracy_mean,test_accuracy_std,epochs_mean,epochs_std,seconds_mean,seconds_std\n1,mlp-lf1,2,0,0.9,0.01,0.89,0.01,5,0,1,0\n2,mbt-lf0,2,0,0.88,0.01,0.87,0.01,5,0,1,0\n3,mlp-lf0,2,0,0.86,0.01,0.85,0.01,5,0,1,0\n4,mbt-lf1,2,0,0.85,0.01,0.84,0.01,5,0,1,0\n5,late-lf3,2,0,0.8,0.01,0.8,0.01,5,0,1,0\n' > lf/summary.csv
"$exe" report lf > out 2> err
check "numbered cases: report exits 0" test $? -eq 0
check "numbered cases: a chart by the number" has 'data-chart="by-cases"' lf/summary.html
check "numbered cases: a line per name" sh -c "grep -o 'data-series=\"[a-z-]*\"' lf/summary.html | sort -u | tr '\n' ' ' | grep -qx 'data-series=\"late-lf\" data-series=\"mbt-lf\" data-series=\"mlp-lf\" '"

echo "--- a real sweep: charts across its points, and each chart as an SVG file"
cat > sw.yaml <<'EOF'
name: sw
seed: 1
data: {reader: synthetic, samples: 1000, batch_size: 64}
model:
  encoders:
    a: {type: mlp, hidden: [16], out: 16}
    b: {type: mlp, hidden: [16], out: 16}
  fusion: {type: concat}
  head: {type: mlp, hidden: [16]}
loss: {type: cross_entropy}
train: {epochs: 2}
eval: {robustness: {noise: [0, 0.5, 1]}}
sweep:
  cases:
    both: {}
    sum: {model.fusion: {type: sum, dim: 8}}
  optim.lr: [1.0e-3, 3.0e-3]
  seed: [1, 2]
EOF
"$exe" sweep sw.yaml --jobs 2 > out 2> err
check "the sweep exits 0" test $? -eq 0
"$exe" report runs/sw/sweep --curve train_loss --curve val_accuracy --svg charts --svg-prefix sw- > out 2> err
check "report --svg exits 0" test $? -eq 0
check "report --svg says where" has '^charts: charts/sw-\*.svg$' out
for c in sweep by-optim.lr noise-a noise-b curve-train_loss curve-val_accuracy; do
    check "chart file sw-$c.svg" test -s charts/sw-$c.svg
done
check "no chart file for a key of words (cases)" test ! -e charts/sw-by-cases.svg
check "every chart file is a standalone SVG document" python3 -c "
import sys, xml.etree.ElementTree as ET
for f in sys.argv[1:]:
    r = ET.parse(f).getroot()
    assert r.tag == '{http://www.w3.org/2000/svg}svg', f
    assert r.find('{http://www.w3.org/2000/svg}style') is not None, f
" charts/*.svg
"$exe" report runs/sw/sweep --svg-prefix x > out 2> err
check "--svg-prefix alone: exit 2" test $? -eq 2
check "--svg-prefix alone: said" has "svg-prefix without --svg" err

# CHROMIUM: another browser binary (the DevTools protocol over a pipe is all it needs)
export CHROMIUM=${CHROMIUM:-chromium}
if ! command -v "$CHROMIUM" > /dev/null 2>&1; then
    echo "$passed passed, $failed failed (before the browser checks)"
    [ "$failed" -eq 0 ] || exit 1
    echo "SKIP: chromium not installed"
    exit 77
fi

echo "--- in headless Chromium"
pages="fx/run-full/report.html fx/run-partial/report.html big/report.html fx/sweep/summary.html real/report.html runs/sw/sweep/summary.html"
# one browser for every page: PAGE.dom (the DOM after load), PAGE.console (its messages)
python3 "$src/tests/report_browser.py" "$tmp/profile" $pages
check "Chromium loads the pages" test $? -eq 0
# look PAGE CHECK-ARGS...: no console message, and the charts report_check.py expects
look() {
    page=$1
    shift
    check "$page: loaded" test -s "$page.dom"
    check "$page: no console messages" test ! -s "$page.console"
    cat "$page.console" >&2
    python3 "$src/tests/report_check.py" "$page.dom" "$@"
    check "$page: the charts hold the expected series" test $? -eq 0
}
look fx/run-full/report.html --auto fx/run-full \
    --expect loss=train_loss,val_loss --expect accuracy=train_accuracy,val_accuracy \
    --expect macro_f1=val_macro_f1 --expect lr=lr --expect robustness-noise=visible,nir \
    --expect robustness-drop=missing --cells confusion-test=16 --cells confusion-val=16 \
    --text 'grey <soil>' --text 'cotton "crop"' --text 'fixture <satellite>'
look fx/run-partial/report.html --auto fx/run-partial --expect loss=train_loss,val_loss \
    --expect r@1=val_r@1
look big/report.html --auto big --cells confusion-test=10000
look fx/sweep/summary.html --expect sweep=best_val_accuracy,test_accuracy --bars sweep=3 \
    --expect "by-optim.lr={type: concat};{type: gated, hidden: [32]}" \
    --text 'Sweep of fixture <sweep>.yaml' --text '{type: gated, hidden: [32]}'
look runs/sw/sweep/summary.html --expect sweep=best_val_accuracy,test_accuracy \
    --expect by-optim.lr=both,sum --expect "noise-a=both · 1.0e-3,both · 3.0e-3,sum · 1.0e-3,sum · 3.0e-3" --expect "noise-b=both · 1.0e-3,both · 3.0e-3,sum · 1.0e-3,sum · 3.0e-3" \
    --expect "curve-train_loss=both · 1.0e-3,both · 3.0e-3,sum · 1.0e-3,sum · 3.0e-3" --expect "curve-val_accuracy=both · 1.0e-3,both · 3.0e-3,sum · 1.0e-3,sum · 3.0e-3"
look real/report.html --auto real --expect loss=train_loss,val_loss \
    --expect accuracy=train_accuracy,val_accuracy

finish
