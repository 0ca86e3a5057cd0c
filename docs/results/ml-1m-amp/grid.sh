#!/usr/bin/env bash
# Issue 15's converged-run check on ML-1M: SASRecAWR none and simple (plugin defaults, V0),
# seed 1, to early stopping, in float32 and with bfloat16 autocast (enable_amp): wall-clock,
# epochs, best validation and test NDCG@10 of the two precisions, same seed and settings
# (the quality half of the "fast setting" rule; ml-100k's three seeds are in
# ../ml-100k-variants, rows "enable_amp=True"). Resumes from results.csv. Two processes, one
# per core (each runs its precision's none first), from the repository root (ML-1M converted
# first: python -m recbole_awrsr.data convert ml-1m ../shared/data/ml-1m/ratings.dat):
#   nohup docs/results/ml-1m-amp/grid.sh fp32 > ml-1m-fp32.log 2>&1 &
#   nohup docs/results/ml-1m-amp/grid.sh bf16 > ml-1m-bf16.log 2>&1 &
# Wall seconds compare the precisions only when both ran side by side on a machine doing
# nothing else; otherwise read benchmarks/README.md's side-by-side ratios for speed.
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
case "${1:-fp32}" in
  fp32) amp=() ;;
  bf16) amp=(--enable_amp=True) ;;
  *) echo "grid.sh: fp32 or bf16, got $1" >&2; exit 2 ;;
esac
python -m recbole_awrsr.compare --datasets ml-1m --models SASRecAWR --seeds 1 --mechanisms simple \
    --out docs/results/ml-1m-amp "${amp[@]}"
