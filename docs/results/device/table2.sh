#!/usr/bin/env bash
# On the device machine (one GPU, 16 cores), from the repository root: the cells of
# docs/results/$DATASET-table2 (DATASET: beauty, the default, or ml-1m; tuned backbone, every
# mechanism at its ml-100k variant, seeds 1-3) that results.csv does not hold yet, each in its
# own process, all at once, for at most SECONDS; then docs/results/$DATASET-table2 (rows,
# per-user metrics, histories, and the resumable state of unfinished cells) goes to
# $OUT/$DATASET-table2.tgz. Prepared by docs/results/device/prepare.sh here.
# Usage: [DATASET=ml-1m] table2.sh SECONDS [SASRecAWR|STOSAAWR]
# Optional: EPOCHS (default 300), SEEDS (default "1 2 3") and EXTRA_KEYS (more --key=value for
# every cell). Table 3 (Beauty, SASRecAWR) instead: LAYERS="1 2 4" MECHANISM=value (the
# mechanism Table 2 leads with on validation, as notebook.sh's stage 6 chooses it): none and
# MECHANISM at each of those depths, same folder, as beauty-table2/table3.sh runs them.
# A quick trial of the script on a CPU, in a scratch clone (it writes the grid):
#   EPOCHS=1 SEEDS=1 OUT=/tmp/out bash docs/results/device/table2.sh 300
#   EPOCHS=1 SEEDS=1 LAYERS=1 MECHANISM=value OUT=/tmp/out bash docs/results/device/table2.sh 300
set -u
seconds=${1:?seconds the cells may train}
model=${2:-SASRecAWR}
OUT=${OUT:?the folder whose files come back}
. "$(dirname "$0")/../mechanisms.sh"
dataset=${DATASET:-beauty}
config=$(tuned_config "$dataset" "$model") || exit 2
mechanisms="none value simple additive smooth"
[ "$model" = STOSAAWR ] && mechanisms="none stochastic value simple additive"
if [ -n "${LAYERS:-}" ]; then
  mechanism=${MECHANISM:?with LAYERS, MECHANISM names the mechanism of Table 3: one of ${paper_mechanisms[*]}}
  if [ "$model" != SASRecAWR ] || ! paper_mechanism "$mechanism"; then
    echo "table2.sh: Table 3 is SASRecAWR with one of ${paper_mechanisms[*]}, got $model $mechanism" >&2
    exit 2
  fi
  mechanisms="none $mechanism"
fi
if ! python3 -c "import recbole" 2>/dev/null; then
  python3 -m pip install --quiet --no-deps --no-index --find-links .device/wheels \
      recbole colorlog texttable thop || exit 2
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: on the CPU"
grid=docs/results/$dataset-table2
mkdir -p "$grid/logs"
for depth in ${LAYERS:-tuned}; do
  depth_keys=(); [ "$depth" = tuned ] || depth_keys=(--layers "$depth")
  for mechanism in $mechanisms; do
    for seed in ${SEEDS:-1 2 3}; do
      # a finished cell is skipped by compare itself; --skip-none keeps each cell in one process
      timeout --signal=TERM "$seconds" python3 -m recbole_awrsr.compare --datasets "$dataset" --models "$model" \
          --config "$config" --epochs="${EPOCHS:-300}" --out "$grid" --seeds "$seed" --mechanisms "$mechanism" --skip-none \
          "${depth_keys[@]}" ${variant[$mechanism]} ${EXTRA_KEYS:-} \
          > "$grid/logs/$model-$mechanism-L$depth-$seed.log" 2>&1 &
    done
  done
done
wait
tail -n 3 "$grid"/logs/*.log
# rows, per-user metrics, histories and logs in one file; the resumable states of unfinished
# cells (about 5 MB each) in another, which may exceed what comes back
parts=()
for part in results.csv per_user history logs; do
  [ -e "$grid/$part" ] && parts+=("$dataset-table2/$part")
done
tar czf "$OUT/$dataset-table2.tgz" -C docs/results "${parts[@]}"
states=("$grid"/checkpoints/*.last.pth)
[ -e "${states[0]}" ] && tar czf "$OUT/states.tgz" -C docs/results "${states[@]#docs/results/}"
ls -la "$OUT"
