#!/usr/bin/env bash
# Before a session ends, in the grid worktree's machine: let nothing new start, and stop the
# running searches so that they can be parked. The notebook (notebook.sh) is stopped, so that
# no next stage begins; each search's driver (run_hyper.py) gets SIGINT, as Ctrl+C: Ray saves
# its state, the driver writes trials.csv with every trial's status and exits 2. The compare
# runs go on training: parking reads them as they run. Then, in the main checkout:
#   docs/results/collect.sh --park /work/gridN && git add docs/results docs/results.md && git commit -m "..."
# and the next session's notebook (from a new worktree of main) continues every parked run
# and search from where it was parked.
set -u
if pkill -f 'docs/results/notebook\.sh'; then
  echo "stop.sh: the notebook is stopped; the runs it started go on"
fi
drivers=$(pgrep -f 'python[^ ]* run_hyper\.py' || true)
[ -n "$drivers" ] || { echo "stop.sh: no search is running"; exit 0; }
for pid in $drivers; do
  kill -INT "$pid" && echo "stop.sh: search driver $pid interrupted"
done
# Ray checkpoints the experiment one last time, then the driver writes trials.csv
for _ in $(seq 300); do
  alive=0
  for pid in $drivers; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && { echo "stop.sh: every search has stopped"; exit 0; }
  sleep 1
done
echo "stop.sh: a search driver is still running after 5 minutes: $drivers" >&2
exit 1
