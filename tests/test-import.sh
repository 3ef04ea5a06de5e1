#!/bin/sh
# mmfuse import csv end to end (issue 13): a full disk (an LD_PRELOAD shim that fails writes
# with ENOSPC, tests/fault/enospc.c) gives exit 1, one sentence and no file; the output is
# never the input under any name; shapes whose product overflows are refused; pipes and
# standard input are read, a FIFO path is refused rather than waited on; every dataset but
# /classes carries a fletcher32 checksum that h5py and mmfuse's reader verify.
#   test-import.sh FAULT_DIR   (the build folder holding enospc.so)
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
fault=${1:?the folder of enospc.so}/enospc.so
. "$src/tests/lib.sh"
need_h5py

fixture=$src/tests/fixtures/import/small.csv
mods="--modality m=1-4 --label label"
# a preloaded shim must not trip ASan's check that its runtime comes first
preload_asan="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0"

# import CSV OUT [OPTIONS…]: runs mmfuse import, keeping out.txt (stdout+stderr) and $rc
import() {
    in=$1 out=$2
    shift 2
    "$exe" import csv "$in" "$@" -o "$out" >out.txt 2>&1
    rc=$?
}
says() { [ "$(cat out.txt)" = "$1" ]; }
no_temporaries() { ! ls -a | grep -q '\.tmp-'; }

# ---------------------------------------------------------------- the plain case
cp "$fixture" d.csv
import d.csv ref.h5 $mods
check "imports the fixture" [ "$rc" -eq 0 ]
check "says what it wrote" says "wrote ref.h5: 4 samples; m (4) float32; 3 classes (/classes); no split (training carves out validation)"
import d.csv again.h5 $mods
check "the same input gives the same bytes" cmp -s ref.h5 again.h5

# ---------------------------------------------------------------- integrity: fletcher32
$py - <<'EOF' >h5.txt 2>&1
import h5py
f = h5py.File('ref.h5', 'r')
for name in ('modalities/m', 'label'):
    d = f[name]
    print(name, d.chunks is not None, d.fletcher32)
print('classes', f['classes'].fletcher32)
print(list(f['modalities/m'][3]), list(f['label'][:]), [c.decode() for c in f['classes'][:]])
EOF
check "every dataset is chunked with fletcher32 (h5py reads it)" [ "$(cat h5.txt)" = "modalities/m True True
label True True
classes False
[13.0, 14.0, 15.0, 16.0] [1, 2, 1, 0] ['bird', 'cat', 'dog']" ]
cat >exp.yaml <<EOF
name: imported
data: {reader: hdf5, path: $PWD/ref.h5, batch_size: 2}
model:
  encoders: {m: {type: mlp, hidden: [4], out: 2}}
  fusion: {type: concat}
  head: {type: mlp, hidden: [4]}
loss: {type: cross_entropy}
optim: {type: adam, lr: 0.01}
train: {epochs: 1}
EOF
"$exe" validate exp.yaml >out.txt 2>&1
check "mmfuse's hdf5 reader takes the file" [ $? -eq 0 ]
cp ref.h5 bad.h5
$py - <<'EOF'
import h5py
with h5py.File('bad.h5', 'r') as f:
    at = f['modalities/m'].id.get_chunk_info(0).byte_offset
with open('bad.h5', 'r+b') as f:
    f.seek(at + 5)
    b = f.read(1)
    f.seek(at + 5)
    f.write(bytes([b[0] ^ 0x40]))
EOF
sed "s|ref.h5|bad.h5|" exp.yaml >bad.yaml
"$exe" validate bad.yaml >out.txt 2>&1
check "a flipped bit is caught by the checksum (exit 2)" [ $? -eq 2 ]
check "... naming the dataset" has "bad.h5: /modalities/m: the chunk holding sample 0 fails its fletcher32 checksum" out.txt

# ---------------------------------------------------------------- the output is not the input
cp "$fixture" e.csv
import e.csv e.csv $mods
check "-o the input itself is refused (exit 2)" [ "$rc" -eq 2 ]
check "... in one sentence" says "-o 'e.csv' is the CSV file being imported (e.csv); write the output to another file"
check "... and the input is intact" cmp -s e.csv "$fixture"
ln -s e.csv link.csv
import e.csv link.csv $mods
check "-o a symlink to the input is refused" says "-o 'link.csv' is the CSV file being imported (e.csv); write the output to another file"
ln e.csv hard.csv
import hard.csv e.csv $mods
check "-o a hard link of the input is refused" says "-o 'e.csv' is the CSV file being imported (hard.csv); write the output to another file"
"$exe" import csv - $mods -o e.csv <e.csv >out.txt 2>&1
check "-o the file stdin comes from is refused" says "-o 'e.csv' is the CSV file being imported (stdin); write the output to another file"
check "... and the input is still intact" cmp -s e.csv "$fixture"

# ---------------------------------------------------------------- shapes that overflow
printf 'a,b,c,d,y\n1,2,3,4,x\n5,6,7,8,z\n' >four.csv
import four.csv big.h5 --modality m=1-4:111620x429509837x384773 --label y
check "a shape whose product overflows is refused (exit 2)" [ "$rc" -eq 2 ]
check "... naming the modality and the shape" says "--modality 'm=1-4:111620x429509837x384773': shape 111620x429509837x384773 holds more values than mmfuse can count (the product overflows), not the 4 columns listed"
check "... and writes nothing" [ ! -e big.h5 ]
import four.csv big.h5 --modality m=1-4:1x1x2x2 --label y
check "four axes per sample are refused (the reader takes 3)" says "--modality 'm=1-4:1x1x2x2': shape '1x1x2x2' has more than 3 axes (mmfuse reads at most 3 per sample)"
# (mf_shape_numel itself, on which layer widths rest: tests/test-shape-numel.c)

# ---------------------------------------------------------------- pipes and standard input
cat d.csv | "$exe" import csv - $mods -o piped.h5 >out.txt 2>&1
check "reads a pipe on stdin ('-')" [ $? -eq 0 ]
check "... giving the same data" $py -c "
import h5py
a, b = h5py.File('ref.h5'), h5py.File('piped.h5')
assert (a['modalities/m'][:] == b['modalities/m'][:]).all() and (a['label'][:] == b['label'][:]).all()"
cat d.csv | "$exe" import csv /dev/stdin $mods -o piped2.h5 >out.txt 2>&1
check "reads a pipe as /dev/stdin" [ $? -eq 0 ]
printf '\357\273\277' | cat - d.csv | "$exe" import csv - --modality m=x.1-x.4 --label label -o bom.h5 >out.txt 2>&1
check "a byte-order mark through a pipe is skipped (x.1 resolves)" [ $? -eq 0 ]
$py -c "import h5py; print(h5py.File('piped.h5').attrs['source'])" >src.txt
check "the source of stdin is recorded as stdin" [ "$(cat src.txt)" = "stdin" ]
mkfifo fifo
timeout 20 "$exe" import csv fifo $mods -o f.h5 >out.txt 2>&1
rc=$?
check "a FIFO path with no writer is refused, not waited on (exit 2)" [ "$rc" -eq 2 ]
check "... saying why" says "fifo is not a regular file (a FIFO); to import from a pipe, give - and feed it to standard input"
mkdir folder
import folder f.h5 $mods
check "a folder is refused" says "folder is not a regular file (a folder)"
"$exe" import csv - $mods -o f.h5 </dev/null >out.txt 2>&1
check "empty stdin is refused" says "stdin: the file is empty"
"$exe" import csv d.csv $mods -o full.h5 >/dev/full 2>out.txt
check "a summary that cannot be printed is exit 1" [ $? -eq 1 ]
check "... in one sentence" says "wrote full.h5, but cannot write its summary to standard output: No space left on device"

# ---------------------------------------------------------------- a full disk
if [ ! -e "$fault" ]; then
    echo "SKIP the full-disk cases: no $fault"
else
    full() { # full BYTES CSV OUT: import with writes to OUT's temporary failing after BYTES
        MMFUSE_FAULT_WRITE_AFTER=$1 MMFUSE_FAULT_PATH=$3.tmp- LD_PRELOAD=$fault \
            ASAN_OPTIONS=$preload_asan "$exe" import csv "$2" $mods -o "$3" >out.txt 2>&1
        rc=$?
    }
    # rows enough for several blocks of rows and chunks
    $py -c "
import random
random.seed(3)
print('x.1,x.2,x.3,x.4,label')
for i in range(60000):
    print(','.join(str(random.randint(0, 999)) for _ in range(4)) + ',' + random.choice(['cat', 'dog']))
" >many.csv
    import many.csv many.h5 $mods
    size=$(stat -c %s many.h5)
    crashed=0 worded=0 stray=0 clean=0
    for n in 0 1 100 2048 4096 20000 100000 300000 $((size / 2)) $((size * 9 / 10)); do
        full "$n" many.csv out.h5
        [ "$rc" -eq 1 ] || crashed=$((crashed + 1))
        says "cannot write 'out.h5': No space left on device" || worded=$((worded + 1))
        [ ! -e out.h5 ] && no_temporaries || stray=$((stray + 1))
    done
    check "a disk that fills at any point: exit 1 (never 139)" [ "$crashed" -eq 0 ]
    check "... with one sentence" [ "$worded" -eq 0 ]
    check "... and no file or temporary left" [ "$stray" -eq 0 ]
    full $((size * 2)) many.csv out.h5
    check "with room enough the shim changes nothing" cmp -s many.h5 out.h5
    # every cut point of a small import, byte by byte in steps
    import d.csv small.h5 $mods
    size=$(stat -c %s small.h5)
    n=0
    while [ "$n" -le $((size + 64)) ]; do
        full "$n" d.csv cut.h5
        if [ "$rc" -eq 0 ]; then
            cmp -s small.h5 cut.h5 || crashed=$((crashed + 1))
            rm -f cut.h5
        elif [ "$rc" -ne 1 ] || ! says "cannot write 'cut.h5': No space left on device"; then
            crashed=$((crashed + 1))
        fi
        no_temporaries || stray=$((stray + 1))
        n=$((n + 211))
    done
    check "every cut point of a small import: the whole file or exit 1 and one sentence" [ "$crashed" -eq 0 ]
    check "... never a temporary left" [ "$stray" -eq 0 ]
    cp ref.h5 kept.h5
    full 3000 d.csv kept.h5
    check "a failed import leaves the previous file intact" cmp -s ref.h5 kept.h5
    # standard input is copied to a temporary (the import reads twice): that can fill too
    mkdir spool
    cat d.csv | TMPDIR=$PWD/spool MMFUSE_FAULT_WRITE_AFTER=10 MMFUSE_FAULT_PATH=mmfuse-stdin \
        LD_PRELOAD=$fault ASAN_OPTIONS=$preload_asan "$exe" import csv - $mods -o s.h5 >out.txt 2>&1
    check "stdin that cannot be copied: exit 1" [ $? -eq 1 ]
    check "... in one sentence" says "cannot read stdin: cannot keep a copy in $PWD/spool: No space left on device"
    check "... leaving no copy" [ -z "$(ls spool)" ]
fi
finish
