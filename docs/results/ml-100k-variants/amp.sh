#!/usr/bin/env bash
# Issue 15's quality check on ml-100k: bfloat16 autocast (enable_amp) against the float32 rows
# of this grid, same keys otherwise, seeds 1-3: SASRecAWR none and simple (defaults, V0), each
# to early stopping. The rows land beside the float32 ones (variant "... enable_amp=True").
#   nohup docs/results/ml-100k-variants/amp.sh > amp.log 2>&1 &
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python -m recbole_awrsr.compare --datasets ml-100k --models SASRecAWR --seeds 1 2 3 \
    --out docs/results/ml-100k-variants --train_time_budget=None --enable_amp=True --mechanisms simple
