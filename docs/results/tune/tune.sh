#!/usr/bin/env bash
# Issue 14, step 4: tune the backbone (SASRecAWR with refine_mechanism none, i.e. SASRec)
# on Beauty, then ML-1M, with ASHA over properties/hyper/sasrec.hyper (hidden size,
# MAX_ITEM_LIST_LENGTH 50/100/200, layers, heads, learning rate, weight decay, dropouts).
# Each search writes docs/results/tune/<dataset>/{trials.csv,best.yaml,best_result.json};
# best.yaml then goes to every mechanism's comparison:
#   python -m recbole_awrsr.compare --datasets beauty --config docs/results/tune/beauty/best.yaml ...
# About 16 trials, 2 at a time on 2 cores; ASHA stops weak ones after 5, 10, 20, 40 epochs.
# The search resumes (since session 7): the same command again continues an interrupted
# search, each unfinished trial from its last reported epoch. From the repository root:
#   nohup docs/results/tune/tune.sh beauty > tune-beauty.log 2>&1 &
# Not run yet (2026-12-01): the 2-core machine was busy with the variant grids.
set -eu
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
dataset=${1:-beauty}
python run_hyper.py --model=SASRecAWR --dataset="$dataset" --params_file=properties/hyper/sasrec.hyper \
    --refine_mechanism=none --scheduler asha --grace-period 5 --num-samples 16 \
    --cpus-per-trial 1 --epochs=80 --out "docs/results/tune/$dataset"
