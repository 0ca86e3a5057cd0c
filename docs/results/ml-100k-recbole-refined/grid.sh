#!/usr/bin/env bash
# Issue 16's benchmark: each RecBole transformer refined by the plugin, with `none` and with the
# default mechanism, beside the RecBole model it wraps, on ml-100k, each trained to early
# stopping (RecBole's defaults for the base model plus the refinement keys), seed 1.
# Resumes from results.csv. From the repository root, one core:
#   nohup docs/results/ml-100k-recbole-refined/grid.sh > grid.log 2>&1 &
# BERT4Rec is last: about 15 minutes an epoch on a busy 2-core machine.
# Tables from the CSV, without training:
#   python -m recbole_awrsr.compare --datasets ml-100k --out docs/results/ml-100k-recbole-refined --report-only
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=docs/results/ml-100k-recbole-refined
for pair in SASRecF:SASRecFAWR FDSA:FDSAAWR CORE:COREAWR GCSAN:GCSANAWR BERT4Rec:BERT4RecAWR; do
  python -m recbole_awrsr.compare --datasets ml-100k --seeds 1 --out $OUT \
      --models "${pair#*:}" --mechanisms simple --baselines "${pair%%:*}"
done
