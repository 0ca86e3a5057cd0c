#!/usr/bin/env bash
# Issue 15's converged-run check on Beauty: the cells SASRecAWR none and simple V1 (centered +
# identity), seed 1, trained again to early stopping with the current code (the lean
# cross-entropy and reuse_freed_memory), beside the same cells' rows in ../beauty-variants,
# which ran before that change (commit 1f535a3): wall-clock and test NDCG@10, same seed and
# settings, each run beside one other training process. Resumes from results.csv.
# From the repository root (Beauty converted first:
# python -m recbole_awrsr.data convert beauty ../shared/data/beauty/Beauty.txt):
#   nohup docs/results/beauty-speed/grid.sh > beauty-speed.log 2>&1 &
# Tables again from the CSV, without training:
#   python -m recbole_awrsr.compare --datasets beauty --out docs/results/beauty-speed --report-only
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python -m recbole_awrsr.compare --datasets beauty --models SASRecAWR --seeds 1 --mechanisms simple \
    --refine_input=centered --refine_init=identity --out docs/results/beauty-speed
