#!/usr/bin/env bash
# Issue 14, step 4: tune a backbone with refine_mechanism none (SASRecAWR: SASRec; STOSAAWR:
# STOSA) with ASHA over its params file (properties/hyper/sasrec.hyper or stosa.hyper: hidden
# size, MAX_ITEM_LIST_LENGTH 50/100/200, layers, heads, learning rate, weight decay, dropouts;
# STOSA also pvn_weight). Each search writes docs/results/tune/<dataset>[-stosa]/
# {trials.csv,best.yaml,search.json}; best.yaml then goes to every mechanism's comparison
# (docs/results/table2.sh). About 16 trials, 2 at a time on 2 cores; ASHA stops weak
# ones after 5, 10, 20, 40 epochs. The search resumes (since session 7): the same command again
# continues an interrupted search, each unfinished trial from its last reported epoch; an
# interrupted search exits 2 and chooses nothing (since session 9). --no-test (since session
# 11): the chosen configuration is not retrained here, since Table 2's none rows are exactly
# that retraining, over 3 seeds. From the repository root:
#   nohup docs/results/tune/tune.sh beauty > tune-beauty.log 2>&1 &
#   nohup docs/results/tune/tune.sh beauty STOSAAWR > tune-beauty-stosa.log 2>&1 &
set -eu
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
dataset=${1:-beauty}
model=${2:-SASRecAWR}
. "$(dirname "$0")/../mechanisms.sh"
out=$(search_folder "$dataset" "$model") || exit 2
params=properties/hyper/sasrec.hyper
[ "$model" = STOSAAWR ] && params=properties/hyper/stosa.hyper
python run_hyper.py --model="$model" --dataset="$dataset" --params_file="$params" \
    --refine_mechanism=none --scheduler asha --grace-period 5 --num-samples 16 \
    --cpus-per-trial 1 --num-cpus 2 --epochs=80 --no-test --out "$out"
