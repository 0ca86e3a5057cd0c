#!/usr/bin/env bash
# Issue 14, step 4, last part: the paper's Table 3 on Beauty (NDCG@5 by number of layers, 1-4)
# for SASRecAWR: none and ONE mechanism (the one Table 2 picks on validation; name it), the
# tuned backbone of Table 2, seeds 1-3. Same folder as Table 2, so its cells at the tuned
# depth are reused, not trained again; the tables get a Table 3 from the rows.
#   nohup docs/results/beauty-table2/table3.sh 1 value > table3-1.log 2>&1 &
#   nohup docs/results/beauty-table2/table3.sh 2 value > table3-2.log 2>&1 &
# Every process goes through the same (layers, seed) list, shallowest first; compare trains a
# run only where no other process holds its claim (compare.claimed), so the processes share
# the list out as they go and no run is trained twice (the first argument only names the
# process: any number).
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=docs/results/beauty-table2
process=${1:?a number naming this process: 1, 2, ...}
. "$(dirname "$0")/../mechanisms.sh"
mechanism=${2:?the mechanism Table 2 chose on validation: one of ${paper_mechanisms[*]}}
config=$(tuned_config beauty SASRecAWR) || exit 2
if ! paper_mechanism "$mechanism"; then
  echo "table3.sh: mechanism must be one of ${paper_mechanisms[*]}, got $mechanism" >&2; exit 2
fi
tuned=$(sed -n 's/^n_layers: *\([0-9]*\).*/\1/p' "$config")
# the (layers, seed) pairs besides the tuned depth, shallowest (the shortest runs) first: runs
# end, and their rows can be committed, as early as they can, and a session that ends while the
# stage runs loses little (its unfinished runs start over on a new machine)
case "$process" in
  '' | *[!0-9]*) echo "table3.sh: the process is a number (1, 2, ...), got $process" >&2; exit 2 ;;
esac
pairs=()
for layers in 1 2 3 4; do
  [ "$layers" = "$tuned" ] && continue
  for seed in 1 2 3; do pairs+=("$layers:$seed"); done
done
for pair in "${pairs[@]}"; do
  python -m recbole_awrsr.compare --datasets beauty --models SASRecAWR --config "$config" --epochs=300 \
      --out $OUT --layers "${pair%%:*}" --seeds "${pair#*:}" --mechanisms "$mechanism" ${variant[$mechanism]}
done
