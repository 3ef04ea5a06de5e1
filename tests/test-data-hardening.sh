#!/bin/sh
# Issue 13, the data side, end to end through `mmfuse validate`: each bad data input exits 2
# with one sentence naming the file and the dataset, key or index — a view's start near
# INT64_MAX, a FIFO given as the HDF5 or IDX file (refused at once, not a hang), a filter
# libhdf5 lacks (h5py's lzf), a fletcher32 chunk with one byte flipped, a corrupt string
# heap (a fuzzed crash), a stray class label, NaN in an IDX float file, trailing bytes, a file
# with no training samples; and a file of 17 modalities validates when 2 are picked. Inputs are made here with h5py (fixtures/
# data-hardening/make.py) and the IDX bytes with printf.
set -u
exe=${MMFUSE_EXE:?}
src=${MMFUSE_SOURCE_ROOT:?}
. "$(dirname "$0")/lib.sh"
need_h5py
$py "$src/tests/fixtures/data-hardening/make.py" || exit 1

# experiment FILE READER-SECTION... : an experiment over modality a (identity encoder, concat, a linear head)
experiment() {
    out=$1
    shift
    {
        echo "name: t"
        echo "data:"
        for line in "$@"; do echo "  $line"; done
        echo "model:"
        echo "  encoders: {a: {type: identity}}"
        echo "  fusion: {type: concat}"
        echo "  head: {type: mlp, hidden: []}"
        echo "loss: {type: cross_entropy}"
        echo "train: {epochs: 1}"
    } > "$out"
}
# validate NAME YAML: runs it (20 s at most: a hang is a failure), exit status in $rc
validate() {
    timeout 20 "$exe" validate "$2" > "$1.out" 2>&1
    rc=$?
}
one_line() { [ "$(wc -l < "$1")" -eq 1 ]; }

# ---------------------------------------------------------------- views: checked arithmetic
experiment view.yaml "reader: hdf5" "path: ok.h5" "modalities: [a]" \
    "views: {a2: {from: a, axis: 0, start: 9223372036854775800, length: 100}}"
sed -i 's/modalities: \[a\]/modalities: [a2]/; s/encoders: {a:/encoders: {a2:/' view.yaml
validate view view.yaml
check "a view's start near INT64_MAX: exit 2" test $rc -eq 2
check "... named with its values" has "view.yaml:.*data.views.a2: start 9223372036854775800 with length 100 is out of range for axis 0 of the per-sample shape (4) (start + length must be at most 4)" view.out
check "... in one sentence" one_line view.out
sed 's/axis: 0, start: 9223372036854775800, length: 100/axis: 4294967296, start: 0, length: 4/' \
    view.yaml > axis.yaml
validate axis axis.yaml
check "a view's axis of 2^32 (once cast to int: axis 0): exit 2" test $rc -eq 2
check "... named with its value" has "axis.yaml:.*data.views.a2: axis 4294967296 is out of range for the per-sample shape (4) (axes 0 to 0)" axis.out

# ---------------------------------------------------------------- modalities: only the picked count
experiment many.yaml "reader: hdf5" "path: many.h5" "modalities: [m03, m16]"
sed -i 's/encoders: {a: {type: identity}}/encoders: {m03: {type: identity}, m16: {type: identity}}/' many.yaml
validate many many.yaml
check "17 modalities, 2 picked: validates" test $rc -eq 0
experiment all.yaml "reader: hdf5" "path: many.h5"
validate all all.yaml
check "17 modalities, none picked: exit 2" test $rc -eq 2
check "... saying how to pick" has "all.yaml:.*data: 17 modalities of the data would be used; a model takes at most 16 at once (pick some with data.modalities)" all.out

# ---------------------------------------------------------------- no training samples
experiment split.yaml "reader: hdf5" "path: no-train.h5"
validate split split.yaml
check "no training samples: exit 2" test $rc -eq 2
check "... naming the data file and the split" has "split.yaml:.*data.path: 'no-train.h5' has no training samples: its split puts 3 in validation and 5 in test, none in training (split 0)" split.out

# ---------------------------------------------------------------- FIFOs
mkfifo pipe.h5 pipe-images
experiment fifo.yaml "reader: hdf5" "path: pipe.h5"
validate fifo fifo.yaml
check "a FIFO as the HDF5 file: exit 2, no hang" test $rc -eq 2
check "... named as a FIFO" has "fifo.yaml:.*path: cannot open 'pipe.h5': it is not a regular file (a FIFO)" fifo.out
# labels: 2 items of ubyte
printf '\0\0\010\001\0\0\0\002\0\001' > labels
experiment fifo-idx.yaml "reader: idx" "dir: ." "train_images: pipe-images" \
    "train_labels: labels" "test_images: ''" "test_labels: ''" "modality: a"
validate fifo-idx "$tmp/fifo-idx.yaml"
check "a FIFO as the IDX file: exit 2, no hang" test $rc -eq 2
check "... named as a FIFO, the path without ././" has "^$tmp/pipe-images: cannot be opened: it is not a regular file (a FIFO)" fifo-idx.out
timeout 20 "$exe" validate fifo-idx.yaml > rel.out 2>&1
check "a relative experiment: no doubled ./ in the IDX path" has "^pipe-images: cannot be opened" rel.out

# ---------------------------------------------------------------- IDX values and sizes
# 2 float images of 2 values: 0, NaN | 1, 2
printf '\0\0\015\002\0\0\0\002\0\0\0\002\0\0\0\0\177\300\0\0\077\200\0\0\100\0\0\0' > nan-images
experiment nan.yaml "reader: idx" "dir: ." "train_images: nan-images" "train_labels: labels" \
    "test_images: ''" "test_labels: ''" "modality: a"
validate nan nan.yaml
check "NaN in an IDX float file: exit 2" test $rc -eq 2
check "... naming the file, the item and the value" has "nan-images: value 1 of item 0 is NaN" nan.out
printf '\0\0\010\002\0\0\0\002\0\0\0\002\001\002\003\004\005' > long-images
experiment long.yaml "reader: idx" "dir: ." "train_images: long-images" "train_labels: labels" \
    "test_images: ''" "test_labels: ''" "modality: a"
validate long long.yaml
check "trailing bytes in an IDX file: exit 2" test $rc -eq 2
check "... with both sizes" has "long-images: 17 bytes of data where its IDX header accounts for 16: the file has trailing bytes or a wrong header" long.out

# ---------------------------------------------------------------- HDF5 filters, checksums, labels
experiment lzf.yaml "reader: hdf5" "path: lzf.h5"
validate lzf lzf.yaml
check "a filter libhdf5 lacks (lzf): exit 2 at validate" test $rc -eq 2
check "... naming the dataset and the filter" has "lzf.h5: /modalities/a is stored through HDF5 filter 32000 ('lzf')" lzf.out
experiment sum.yaml "reader: hdf5" "path: fletcher32.h5"
validate sum sum.yaml
check "an intact fletcher32 file validates" test $rc -eq 0
experiment bad.yaml "reader: hdf5" "path: fletcher32-bad.h5"
validate bad bad.yaml
check "one byte flipped in a fletcher32 chunk: exit 2" test $rc -eq 2
check "... naming the file, the dataset and the sample" has "fletcher32-bad.h5: /modalities/a: the chunk holding sample 4 fails its fletcher32 checksum: the file is corrupt" bad.out
check "... in one sentence" one_line bad.out
# read batch by batch (not preloaded): validate cannot see it; the run stops at the batch
experiment lazy.yaml "reader: hdf5" "path: fletcher32-bad.h5" "preload_mb: 0"
timeout 60 "$exe" run lazy.yaml --run-dir lazy-run -q > lazy.out 2>&1
check "a fletcher32 mismatch read batch by batch: the run exits 2" test $? -eq 2
check "... naming the file, the dataset and the sample" has "^fletcher32-bad.h5: /modalities/a: the chunk holding sample 4 fails its fletcher32 checksum: the file is corrupt$" lazy.out
# a fuzzed file whose /classes strings point past their heap object: libhdf5 1.10 copied
# the object's own size into a buffer of the string's length (SIGSEGV, exit 139)
cp "$src/tests/fuzz/corpus-hdf5/regression-vlen-heap-overrun.h5" heap.h5
experiment heap.yaml "reader: hdf5" "path: heap.h5"
validate heap heap.yaml
check "a corrupt string heap in /classes: exit 2, no crash" test $rc -eq 2
check "... naming the file, /classes and the string" has "^heap.h5: /classes: string 0 points at a heap object that is missing or does not match its length: the file is corrupt$" heap.out
experiment stray.yaml "reader: hdf5" "path: stray.h5"
validate stray stray.yaml
check "a stray label of 20000 among 64 samples: exit 2" test $rc -eq 2
check "... naming the file, /label and the sample" has "stray.h5: /label: sample 63 holds 20000, which would make 20001 classes for 64 samples" stray.out
finish
