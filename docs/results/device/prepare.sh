#!/usr/bin/env bash
# Here, before a session's device call (issue 14: "whenever a GPU is available, this grid goes to
# it first"): the pure-Python wheels the device image lacks (RecBole 1.2.1 and three of its
# needs; the image has torch, numpy, pandas, scipy and the rest) into .device/wheels, and the
# dataset's atomic file (DATASET: beauty, the default, or ml-1m). Then call the device tool's
# `run` with
#   carry: [".device", "dataset_atomic/beauty"]
#   command: bash docs/results/device/table2.sh 540 > $OUT/log.txt 2>&1
#   timeout_s: 600
# (for ML-1M: DATASET=ml-1m here, "dataset_atomic/ml-1m" in carry, DATASET=ml-1m before bash)
# and unpack what comes back over this checkout: tar xzf <files_at>/beauty-table2.tgz -C docs/results
set -eu
cd "$(dirname "$0")/../../.."
dataset=${DATASET:-beauty}
. docs/results/mechanisms.sh
raw=$(raw_data "$dataset") || exit 2
mkdir -p .device/wheels
python -m pip download --quiet --no-deps --only-binary=:all: --dest .device/wheels \
    recbole==1.2.1 colorlog==4.7.2 texttable thop
[ -f "dataset_atomic/$dataset/$dataset.inter" ] || python -m recbole_awrsr.data convert "$dataset" "$raw"
ls -la .device/wheels "dataset_atomic/$dataset"
