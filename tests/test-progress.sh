#!/bin/sh
# The progress display (framework/train/progress.c) under a pseudo-terminal.
#   test-progress.sh driver PROGRESS_DRIVER   the display driven on a fake clock: redraws in
#       place with every field, exact numbers, throttled, within the terminal's width, cleared
#       without a trace; a pipe, TERM=dumb, MMFUSE_PROGRESS=0 and quiet never get \r or ESC;
#       MMFUSE_PROGRESS=1 forces the bar; long epochs in a log get a plain line every 30 s
#   test-progress.sh run                      mmfuse run under a pty (exit 77, skipped, while
#       the trainer does not draw the bar)
set -u
mode=${1:?driver or run}
src=${MMFUSE_SOURCE_ROOT:?}
# the system's python3 (the standard library alone is used) starts fastest
py=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
pty="$py $src/tests/progress-pty.py"
drv=${2:-}
case $drv in /* | '') ;; *) drv=$PWD/$drv ;; esac
# the pty gets TERM=xterm; the caller's own settings must not change the modes tested
TERM=xterm
export TERM
unset MMFUSE_PROGRESS MMFUSE_PROGRESS_CLOCK COLUMNS
. "$(dirname "$0")/lib.sh"
# no carriage return (but the pty's own \r\n) and no escape at all
clean() { [ "$(sed 's/\r$//' "$1" | tr -d -c '\r\033' | wc -c)" -eq 0 ]; }
each_has() { # each_has FILE WORD...: every line of FILE holds every WORD
    f=$1
    shift
    for w in "$@"; do
        [ "$(grep -c -v -F -- "$w" "$f")" -eq 0 ] || return 1
    done
}
at_most_wide() { awk -v w="$2" 'length($0) > w { bad = 1 } END { exit bad }' "$1"; }
count_between() { n=$(wc -l < "$1"); [ "$n" -ge "$2" ] && [ "$n" -le "$3" ]; }

if [ "$mode" = run ]; then
    exe=${MMFUSE_EXE:?}
    cfg="$src/experiments/quickstart.yaml"
    set -- run "$cfg" -o train.epochs=2 --no-save
    # 10 ms of the display's clock per step: as many redraws whatever the machine's speed
    MMFUSE_PROGRESS_CLOCK=0.01 $pty run 60 run.pty -- "$exe" "$@"
    st=$?
    if [ "$st" -ne 0 ]; then
        echo "FAIL: mmfuse run under a pty exits $st:" >&2
        cat run.pty.screen >&2
        exit 1
    fi
    if [ ! -s run.pty.redraws ]; then
        echo "SKIP: mmfuse run drew no progress bar under a pty: the trainer does not call" \
             "mfi_progress_* yet (see framework/train/progress.h)"
        exit 77
    fi
    check "every redraw shows epoch, step, loss, samples/s and ETA" \
        each_has run.pty.redraws "epoch " "step " "loss " "samples/s" "ETA "
    check "the redraws count epochs of 2" has "^epoch 2/2 " run.pty.redraws
    check "no redraw is wider than the 60-column terminal less one" at_most_wide run.pty.redraws 59
    check "the epoch lines reach the screen" has "^epoch   2/2  train loss" run.pty.screen
    check "the result line reaches the screen" has "^test accuracy" run.pty.screen
    check "the bar leaves no trace on the screen" lacks "samples/s" run.pty.screen
    "$exe" "$@" > run.pipe 2>&1
    check "mmfuse run into a pipe exits 0" test $? -eq 0
    check "into a pipe: no \\r and no escape" clean run.pipe
    check "into a pipe: the epoch lines" has "^epoch   2/2  train loss" run.pipe
    check "into a pipe: no status line for a short run" lacks "samples/s" run.pipe
    # a second per step: a plain line after 30 s (66 steps of 64 samples an epoch)
    MMFUSE_PROGRESS_CLOCK=1 "$exe" "$@" > run.log 2>&1
    check "a slow run into a log: no \\r and no escape" clean run.log
    check "a slow run into a log: a plain line at 30 s" has \
        '^epoch 1/2  step 30/66  loss [0-9.]*  64.0 samples/s  ETA 0:01:42  elapsed 0:00:30$' run.log
    check "... then at 60 s, and 30 and 60 s after the first epoch's line (66 s)" sh -c \
        "[ \$(grep -c 'samples/s' run.log) -eq 4 ] &&
         grep -q '^epoch 2/2  step 60/66  .*elapsed 0:02:06\$' run.log"
    $pty run 60 quiet.pty -- "$exe" "$@" -q
    check "mmfuse run -q on a terminal: no \\r and no escape" clean quiet.pty
    finish
fi

[ -x "$drv" ] || { echo "test-progress.sh driver needs the progress-driver executable" >&2; exit 2; }
# what the driver's permanent lines are, whatever the mode
"$drv" quiet > expected
check "the driver's permanent lines" count_between expected 5 5

echo "--- on a 60-column terminal"
$pty run 60 t60.pty -- "$drv"
check "the driver exits 0" test $? -eq 0
check "the status line is redrawn in place" test -s t60.pty.redraws
check "every redraw shows epoch, step, loss, samples/s and ETA" \
    each_has t60.pty.redraws "epoch " "step " "loss " "samples/s" "ETA "
check "no redraw is wider than the terminal less one" at_most_wide t60.pty.redraws 59
check "nothing on the screen ever got wider than that" test "$(cat t60.pty.maxcol)" -le 59
check "the screen holds the permanent lines alone: the bar left no trace" \
    cmp -s t60.pty.screen expected
# 3 epochs × 40 steps × 30 ms = 3.6 s: at most 10 redraws a second, plus the first and
# one after each permanent line
check "redraws are throttled to 10 a second ($(wc -l < t60.pty.redraws))" \
    count_between t60.pty.redraws 30 41
cr=$(printf '\r')
check "the bar comes back after a permanent line" sh -c \
    "sed 's/$cr\$//' t60.pty | grep -a -A1 'warning: a line' | tail -n 1 | grep -q '^${cr}epoch 2/3 '"

echo "--- on a 120-column terminal: the numbers"
$pty run 120 t120.pty -- "$drv"
check "wide: every field, two spaces apart, and a bar" \
    has '^epoch 1/3  step 1/40  \[-*\]  loss 2  - samples/s  ETA -:--:--  elapsed 0:00:00$' \
    t120.pty.redraws
# every other redraw: the bar's fill, the epoch's running mean loss (the driver's loss is
# 2/(1+0.01 k) at its k-th step from 0), 32 samples per 30 ms, the ETA of the 120 steps at
# 30 ms each and the elapsed time (a second of validation per epoch), to a second
check "wide: the bar, mean loss, samples/s, ETA and elapsed are right in every redraw" \
    awk -F'  ' '
    function secs(s,  p) { split(s, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
    NR > 1 {
        split($1, e, "[ /]"); split($2, s, "[ /]"); g = (e[2] - 1) * 40 + s[2]
        bar = substr($3, 2, length($3) - 2); fill = gsub(/#/, "#", bar)
        if (fill != int(s[2] * length(bar) / 40 + 1e-9)) { print "bar", $0; bad = 1 }
        sum = 0; for (k = (e[2] - 1) * 40; k < g; k++) sum += 2 / (1 + 0.01 * k)
        if (sprintf("loss %.4g", sum / s[2]) != $4) { print "loss", $0; bad = 1 }
        if ($5 != "1067 samples/s") { print "rate", $0; bad = 1 }
        split($6, eta, " "); d = secs(eta[2]) - (120 - g) * 0.03
        if (d > 1 || d < -1) { print "eta", $0; bad = 1 }
        # a redraw repeating the last step after an epoch line: after its validation second
        split($7, el, " "); d = secs(el[2]) - (g * 0.03 + e[2] - 1 + (g == pg && s[2] == 40))
        pg = g
        if (d > 1 || d < -1) { print "elapsed", $0; bad = 1 }
    }
    END { exit bad || NR < 30 }' t120.pty.redraws
check "wide: the bar is full at the last step" has '^epoch 3/3  step 40/40  \[#*\]  ' t120.pty.redraws

$pty run 120 steps.pty -- "$drv" -3 40 0.03
check "a run of steps: the epoch alone, the run's step and bar" sh -c \
    "grep -q '^epoch 2  step 4[0-9]/120  \[#*-*\]  loss' steps.pty.redraws &&
     grep -q '^epoch 3  step 120/120  \[#*\]  ' steps.pty.redraws"

echo "--- narrow terminals"
$pty run 20 t20.pty -- "$drv"
check "20 columns: redraws cut to 19" at_most_wide t20.pty.redraws 19
check "20 columns: still redrawn" test -s t20.pty.redraws
check "20 columns: whole fields dropped (loss, then step), never cut" \
    test "$(grep -c -v -E '^epoch [1-3]/3( step [0-9]+/40)?$' t20.pty.redraws)" -eq 0
check "20 columns: the screen holds the permanent lines alone" cmp -s t20.pty.screen expected
COLUMNS=40 MMFUSE_PROGRESS=1 "$drv" > forced 2>&1
$pty parse forced
check "MMFUSE_PROGRESS=1 draws the bar into a pipe" test -s forced.redraws
check "... as wide as COLUMNS=40 allows" at_most_wide forced.redraws 39
check "... with the step and loss" each_has forced.redraws "epoch " "step " "loss "

echo "--- not a terminal"
"$drv" > pipe 2>&1
check "a pipe: no \\r and no escape" clean pipe
check "a pipe, a short run: the permanent lines alone" cmp -s pipe expected
TERM=dumb $pty run 60 dumb.pty -- "$drv"
check "TERM=dumb: no \\r and no escape" clean dumb.pty
MMFUSE_PROGRESS=0 $pty run 60 off.pty -- "$drv"
check "MMFUSE_PROGRESS=0 on a terminal: no \\r and no escape" clean off.pty
check "MMFUSE_PROGRESS=0: the permanent lines alone" cmp -s off.pty.screen expected
$pty run 60 quiet.pty -- "$drv" quiet
check "quiet on a terminal: no \\r and no escape" clean quiet.pty
check "quiet: only the lines the caller prints" cmp -s quiet.pty.screen expected

echo "--- long epochs into a log: a plain line when nothing was printed for 30 s"
# 2 epochs × 100 steps of 1 s: at 30, 60 and 90 s; after the epoch line (101 s) at 131 s;
# the warning (152 s) puts the next off to 182 s
"$drv" 2 100 1.0 > long 2>&1
check "a long run in a pipe: no \\r and no escape" clean long
grep 'samples/s' long > long.plain
check "five plain progress lines ($(wc -l < long.plain))" count_between long.plain 5 5
first=$(awk 'BEGIN { for (k = 0; k < 30; k++) s += 2 / (1 + 0.01 * k); printf "%.4g", s / 30 }')
check "the first one exactly, at 30 s" has \
    "^epoch 1/2  step 30/100  loss $first  32.0 samples/s  ETA 0:02:50  elapsed 0:00:30\$" long
check "the later ones at 60, 90, 131 and 182 s" sh -c \
    "grep -q '^epoch 1/2  step 60/100 .*elapsed 0:01:00\$' long.plain &&
     grep -q '^epoch 1/2  step 90/100 .*elapsed 0:01:30\$' long.plain &&
     grep -q '^epoch 2/2  step 30/100 .*ETA 0:01:10  elapsed 0:02:11\$' long.plain &&
     grep -q '^epoch 2/2  step 81/100 .*elapsed 0:03:02\$' long.plain"
check "no bar in the plain lines" lacks '\[' long.plain
finish
