#!/usr/bin/env bash
# Beauty variant check (issue 14, step 3): SASRecAWR none and the two simple variants that led on
# ml-100k validation (V2 rownorm+identity, V1 centered+identity), seeds 1-2, to early stopping;
# value V0 (the best value variant on ml-100k) as an extra. Resumes from results.csv.
# Two of these run side by side, one per core, from the repository root (Beauty converted first:
# python -m recbole_awrsr.data convert beauty ../shared/data/beauty/Beauty.txt):
#   nohup docs/results/beauty-variants/grid.sh 1 > grid1.log 2>&1 &
#   nohup docs/results/beauty-variants/grid.sh 2 > grid2.log 2>&1 &
# Tables and figure again from the CSV, without training:
#   python -m recbole_awrsr.compare --datasets beauty --out docs/results/beauty-variants --report-only
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=docs/results/beauty-variants
common="--datasets beauty --models SASRecAWR --out $OUT"
V0=""
V1="--refine_input=centered --refine_init=identity"
V2="--refine_input=rownorm --refine_init=identity"
# every cell set includes none (the reference): each process first runs one none seed, then
# waits for both, so that none is never trained twice
p=${1:-1}
python -m recbole_awrsr.compare $common --seeds "$p" --mechanisms none
until [ "$(grep -c ',SASRecAWR,none,' $OUT/results.csv 2>/dev/null)" -ge 2 ]; do sleep 30; done
# (balanced again in session 7, after process 1 had finished its share: one seed at a time)
if [ "$p" = 2 ]; then
  jobs=("1:value:$V0" "2:simple:$V1" "2:value:$V0")
else
  jobs=("1:simple:$V2" "2:simple:$V2")
fi
for job in "${jobs[@]}"; do
  seed=${job%%:*}; rest=${job#*:}
  python -m recbole_awrsr.compare $common --seeds "$seed" --mechanisms "${rest%%:*}" ${rest#*:}
done
