#!/usr/bin/env bash
# Issue 14, step 4: the paper's Table 2 on DATASET (beauty, ml-1m), into docs/results/DATASET-table2.
# A backbone tuned with refine_mechanism none (tune/tune.sh DATASET [MODEL]) with every
# mechanism, each at its variant (mechanisms.sh), seeds 1-3, to early stopping (stopping_step
# 20 on validation NDCG@5; epochs raised from the search's cap of 80 to RecBole's 300).
# Resumes from results.csv (and each unfinished run from its last epoch). Two processes, one per
# core, from the repository root, once the dataset is converted
# (python -m recbole_awrsr.data convert DATASET ...):
#   nohup docs/results/table2.sh ml-1m 1 > table2-1.log 2>&1 &
#   nohup docs/results/table2.sh ml-1m 2 > table2-2.log 2>&1 &
# and for STOSAAWR, once its search has chosen: table2.sh DATASET 1 STOSAAWR, ... 2 STOSAAWR.
# Every job needs the none run of its seed (compare always runs none, which all variants
# share), so the none runs come first and a job waits for its seed's none rather than
# training it twice. Seeds 1 and 2 of every mechanism finish before seed 3. SASRecAWR's rows end
# with smooth, the control without parameters ((A + U) / 2: how much of a gain is the flattening
# of attention alone; added in session 11, after the paper's mechanisms).
# Tables and figure again from the CSV, without training: recbole-awrsr report
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. "$(dirname "$0")/mechanisms.sh"
dataset=${1:?the dataset: beauty or ml-1m}
process=${2:?process 1 or 2}
model=${3:-SASRecAWR}
OUT=docs/results/$dataset-table2
config=$(tuned_config "$dataset" "$model") || exit 2
case "$model:$process" in
  SASRecAWR:1) jobs=(1:none 1:value 1:simple 1:additive 3:value 3:additive 1:smooth) ;;
  SASRecAWR:2) jobs=(2:none 3:none 2:value 2:simple 2:additive 3:simple 2:smooth 3:smooth) ;;
  STOSAAWR:1) jobs=(1:none 1:stochastic 1:value 1:simple 1:additive 3:value 3:simple 3:additive) ;;
  STOSAAWR:2) jobs=(2:none 3:none 2:stochastic 2:value 2:simple 2:additive 3:stochastic) ;;
  *) echo "table2.sh: the process must be 1 or 2, got $process" >&2; exit 2 ;;
esac
for job in "${jobs[@]}"; do
  seed=${job%%:*}; mechanism=${job#*:}
  if [ "$mechanism" != none ]; then
    until grep -q "^$dataset,$model,none,[^,]*,[^,]*,$seed," "$OUT/results.csv" 2>/dev/null; do sleep 60; done
  fi
  python -m recbole_awrsr.compare --datasets "$dataset" --models "$model" --config "$config" --epochs=300 \
      --out "$OUT" --seeds "$seed" --mechanisms "$mechanism" ${variant[$mechanism]}
done
