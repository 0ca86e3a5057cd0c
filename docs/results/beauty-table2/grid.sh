#!/usr/bin/env bash
# Issue 14, step 4: the paper's Table 2 on Beauty. A backbone tuned with refine_mechanism none
# (SASRecAWR: docs/results/tune/beauty/best.yaml, ASHA over properties/hyper/sasrec.hyper;
# STOSAAWR: docs/results/tune/beauty-stosa/best.yaml, over stosa.hyper) with every mechanism,
# seeds 1-3, to early stopping (stopping_step 20 on validation NDCG@5; epochs raised from the
# search's cap of 80 to RecBole's 300).
# Each mechanism runs at the variant that led its mechanism on ml-100k validation
# (../ml-100k-variants/tables.md, "Choice on validation", SASRecAWR; STOSAAWR takes the same):
#   simple V2 and additive V2 (refine_input=rownorm refine_init=identity), value V0 (defaults);
#   stochastic (STOSAAWR only) at its defaults.
# Resumes from results.csv (and each unfinished run from its last epoch). Two processes, one per
# core, from the repository root (Beauty converted first:
# python -m recbole_awrsr.data convert beauty ../shared/data/beauty/Beauty.txt):
#   nohup docs/results/beauty-table2/grid.sh 1 > table2-1.log 2>&1 &
#   nohup docs/results/beauty-table2/grid.sh 2 > table2-2.log 2>&1 &
# and for STOSAAWR, once its search has chosen: grid.sh 1 STOSAAWR, grid.sh 2 STOSAAWR.
# Every job needs the none run of its seed (compare always runs none, which all variants
# share), so the none runs come first and a job waits for its seed's none rather than
# training it twice. Seeds 1 and 2 of every mechanism finish before seed 3.
# Tables and figure again from the CSV, without training: recbole-awrsr report
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=docs/results/beauty-table2
process=${1:-1}
model=${2:-SASRecAWR}
case "$model" in
  SASRecAWR)
    config=docs/results/tune/beauty/best.yaml
    if [ "$process" = 2 ]; then
      jobs=(2:none 3:none 2:value 2:simple 2:additive 3:simple)
    else
      jobs=(1:none 1:value 1:simple 1:additive 3:value 3:additive)
    fi ;;
  STOSAAWR)
    config=docs/results/tune/beauty-stosa/best.yaml
    if [ "$process" = 2 ]; then
      jobs=(2:none 3:none 2:stochastic 2:value 2:simple 2:additive 3:stochastic)
    else
      jobs=(1:none 1:stochastic 1:value 1:simple 1:additive 3:value 3:simple 3:additive)
    fi ;;
  *) echo "grid.sh: model must be SASRecAWR or STOSAAWR, got $model" >&2; exit 2 ;;
esac
[ -f "$config" ] || { echo "grid.sh: $config is missing: run docs/results/tune/tune.sh first" >&2; exit 2; }
common="--datasets beauty --models $model --config $config --epochs=300 --out $OUT"
V2="--refine_input=rownorm --refine_init=identity"
declare -A variant=([none]="" [simple]="$V2" [value]="" [additive]="$V2" [stochastic]="")
for job in "${jobs[@]}"; do
  seed=${job%%:*}; mechanism=${job#*:}
  if [ "$mechanism" != none ]; then
    until grep -q "^beauty,$model,none,[^,]*,[^,]*,$seed," $OUT/results.csv 2>/dev/null; do sleep 60; done
  fi
  python -m recbole_awrsr.compare $common --seeds "$seed" --mechanisms "$mechanism" ${variant[$mechanism]}
done
