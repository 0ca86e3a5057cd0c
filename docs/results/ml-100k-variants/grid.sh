#!/usr/bin/env bash
# The ml-100k variant choice (issue 14, step 3): SASRecAWR none and each refinement variant of
# simple, additive and value, seeds 1-3, each trained to early stopping (no time budget).
# Resumes from results.csv: finished cells are skipped. Two of these run side by side, one per
# core, from the repository root:
#   nohup docs/results/ml-100k-variants/grid.sh 1 > grid1.log 2>&1 &
#   nohup docs/results/ml-100k-variants/grid.sh 2 > grid2.log 2>&1 &
# (process 2 waits until process 1 has the three none cells, so that none is not run twice).
# The control smooth ((A + U) / 2, no parameters; session 11), once the none cells are there:
#   nohup docs/results/ml-100k-variants/grid.sh smooth > grid-smooth.log 2>&1 &
# Seeds 4-6 of none, value V0 and simple V2 (the two leaders on validation):
#   nohup docs/results/ml-100k-variants/grid.sh more-seeds > grid-more-seeds.log 2>&1 &
# Tables and figure again from the CSV, without training:
#   python -m recbole_awrsr.compare --datasets ml-100k --out docs/results/ml-100k-variants --report-only
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=docs/results/ml-100k-variants
common="--datasets ml-100k --models SASRecAWR --seeds 1 2 3 --out $OUT --train_time_budget=None"
V0=""                                                                       # the original reconstruction
V1="--refine_input=centered --refine_init=identity"                         # rows rescaled, identity start
V2="--refine_input=rownorm --refine_init=identity"                          # rows normalised, identity start
V3="--refine_input=centered --refine_init=identity --refine_temperature=learned"
if [ "${1:-1}" = smooth ]; then
  jobs=("smooth:")  # session 11: the control without parameters, (A + U) / 2
elif [ "${1:-1}" = more-seeds ]; then
  # session 11: seeds 4-6 of the two leaders (and of none, which compare runs first), to see
  # whether their +5 % over none (1.5 seed standard deviations with 3 seeds) holds
  common=${common/--seeds 1 2 3/--seeds 4 5 6}
  jobs=("value:$V0" "simple:$V2")
elif [ "${1:-1}" = 2 ]; then
  until [ "$(grep -c ',SASRecAWR,none,' $OUT/results.csv 2>/dev/null)" -ge 3 ]; do sleep 30; done
  jobs=("additive:$V0" "additive:$V1" "additive:$V2" "additive:$V3" "value:$V2" "value:$V3")
else
  jobs=("simple:$V0" "simple:$V1" "simple:$V2" "simple:$V3" "value:$V0" "value:$V1")
fi
for job in "${jobs[@]}"; do
  python -m recbole_awrsr.compare $common --mechanisms "${job%%:*}" ${job#*:}
done
