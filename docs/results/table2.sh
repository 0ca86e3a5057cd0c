#!/usr/bin/env bash
# Issue 14, step 4: the paper's Table 2 on DATASET (beauty, ml-1m), into docs/results/DATASET-table2.
# A backbone tuned with refine_mechanism none (tune/tune.sh DATASET [MODEL]) with every
# mechanism, each at its variant (mechanisms.sh), seeds 1-3, to early stopping (stopping_step
# 20 on validation NDCG@5; epochs raised from the search's cap of 80 to RecBole's 300).
# Resumes from results.csv (and each unfinished run from its last epoch). One process per
# core, from the repository root, once the dataset is converted
# (python -m recbole_awrsr.data convert DATASET ...):
#   nohup docs/results/table2.sh ml-1m 1 > table2-1.log 2>&1 &
#   nohup docs/results/table2.sh ml-1m 2 > table2-2.log 2>&1 &
# and for STOSAAWR, once its search has chosen: table2.sh DATASET 1 STOSAAWR, ... 2 STOSAAWR.
# Every process goes through the same list of runs; compare trains a run only where no other
# process holds its claim (compare.claimed) and passes it by otherwise, so the processes share
# the list out as they go and one that is free takes the next run (the second argument only
# names the process: any number, and a third can join a running pair). Every job needs the
# none run of its seed (compare always runs none, which all variants share), so the none runs
# come first and a job waits for its seed's none rather than training it twice. Seed by seed,
# SASRecAWR's rows end with smooth, the control without parameters ((A + U) / 2: how much of a
# gain is the flattening of attention alone; added in session 11, after the paper's mechanisms).
# Tables and figure again from the CSV, without training: recbole-awrsr report
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. "$(dirname "$0")/mechanisms.sh"
dataset=${1:?the dataset: beauty or ml-1m}
process=${2:?a number naming this process: 1, 2, ...}
model=${3:-SASRecAWR}
OUT=docs/results/$dataset-table2
config=$(tuned_config "$dataset" "$model") || exit 2
case "$process" in
  '' | *[!0-9]*) echo "table2.sh: the process is a number (1, 2, ...), got $process" >&2; exit 2 ;;
esac
case "$model" in
  SASRecAWR) mechanisms=(value simple additive smooth) ;;
  STOSAAWR) mechanisms=(stochastic value simple additive) ;;
  *) echo "table2.sh: the model must be SASRecAWR or STOSAAWR, got $model" >&2; exit 2 ;;
esac
jobs=(1:none 2:none 3:none)
for seed in 1 2 3; do
  for mechanism in "${mechanisms[@]}"; do jobs+=("$seed:$mechanism"); done
done
for job in "${jobs[@]}"; do
  seed=${job%%:*}; mechanism=${job#*:}
  if [ "$mechanism" != none ]; then
    until grep -q "^$dataset,$model,none,[^,]*,[^,]*,$seed," "$OUT/results.csv" 2>/dev/null; do sleep 60; done
  fi
  python -m recbole_awrsr.compare --datasets "$dataset" --models "$model" --config "$config" --epochs=300 \
      --out "$OUT" --seeds "$seed" --mechanisms "$mechanism" ${variant[$mechanism]}
done
