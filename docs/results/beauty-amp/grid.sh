#!/usr/bin/env bash
# Issue 15's converged-run check on Beauty: SASRecAWR simple at Table 2's settings (the tuned
# backbone, tune/beauty/best.yaml, and simple's variant V2 from mechanisms.sh), seed 1, to early
# stopping (epochs 300), in float32 and with bfloat16 autocast (enable_amp): epochs, wall
# seconds, best validation and test NDCG@10 of the two precisions, same seed and settings, side
# by side. The float32 run is also a rerun of beauty-table2's simple V2 seed 1 (session 11, on
# an AMD EPYC): on a CPU of the same model its numbers are that row's (session 13: its history
# equalled that run's bit for bit for 22 epochs, and it was stopped there, so that the core went
# to the grid; the float32 reference is then Table 2's row, its seconds from another load).
# none is not run
# (--skip-none; Table 2 has it). Resumes from results.csv. From the repository root, Beauty
# converted, one process per precision:
#   nohup docs/results/beauty-amp/grid.sh fp32 > beauty-fp32.log 2>&1 &
#   nohup docs/results/beauty-amp/grid.sh bf16 > beauty-bf16.log 2>&1 &
# Wall seconds compare the precisions only as far as both ran under the same load; the
# side-by-side epoch ratios are in benchmarks/README.md.
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. "$(dirname "$0")/../mechanisms.sh"
case "${1:-fp32}" in
  fp32) amp=() ;;
  bf16) amp=(--enable_amp=True) ;;
  *) echo "grid.sh: fp32 or bf16, got $1" >&2; exit 2 ;;
esac
config=$(tuned_config beauty SASRecAWR) || exit 2
python -m recbole_awrsr.compare --datasets beauty --models SASRecAWR --config "$config" --epochs=300 \
    --seeds 1 --mechanisms simple --skip-none ${variant[simple]} --out docs/results/beauty-amp "${amp[@]}"
