#!/usr/bin/env bash
# In the main checkout: bring a grid worktree's finished work over (every grid's results.csv,
# per_user/ and history/; every search's trials.csv, best.yaml, search.json and
# best_result.json), then rewrite the tables and docs/results.md from the CSVs
# (recbole-awrsr report). Checkpoints, Ray's state and logs stay where they are.
#   docs/results/collect.sh /work/grid6
#   docs/results/collect.sh --park /work/grid6    # before a session ends: unfinished runs too
# --park first bundles every unfinished run of the worktree's grids into their parked/ folders
# (recbole-awrsr park: its state, best weights and history, several MB a run) and packs
# every stopped search with unfinished trials (stop it first: kill -INT its driver), and the
# parked runs are copied like the rows, so that the next session continues them on whatever
# machine it gets. A parked run that the worktree had and compare has removed (its row is
# written) is removed here too.
# A results.csv here with a run (its key columns) that the worktree's lacks is not overwritten
# (the worktree is older than this checkout, or another grid wrote here): the runs are named.
set -eu
park=
if [ "${1:-}" = --park ]; then park=1; shift; fi
worktree=${1:?the grid worktree, e.g. /work/grid6}
worktree=$(cd "$worktree" 2>/dev/null && pwd) || { echo "collect.sh: ${1} is not a folder" >&2; exit 2; }
from=$worktree/docs/results
cd "$(dirname "$0")/../.."
[ -d "$from" ] || { echo "collect.sh: $from is not a folder" >&2; exit 2; }
# python -c "$lacks" SOURCE TARGET: fails, naming them, when TARGET has runs SOURCE lacks
lacks='
import sys
from recbole_awrsr.compare import KEYS, read_results
source, target = (read_results(path) for path in sys.argv[1:])
keys = lambda frame: set(frame[KEYS].astype(str).itertuples(index=False, name=None))
for key in sorted(keys(target) - keys(source)):
    print(f"collect.sh: {sys.argv[2]} has a run that {sys.argv[1]} lacks: {key}", file=sys.stderr)
sys.exit(bool(keys(target) - keys(source)))
'
if [ -n "$park" ]; then
  grids=$(find "$from" -mindepth 2 -maxdepth 2 -name checkpoints -type d -printf '%h\n' | sort)
  # shellcheck disable=SC2086 # one grid folder per word (no spaces in them)
  [ -z "$grids" ] || recbole-awrsr park $grids
  # searches: only a stopped one with unfinished trials is parked (park says why not otherwise)
  for search in "$from"/tune/*/ray/search; do
    [ -d "$search" ] || continue
    recbole-awrsr park "${search%/ray/search}" || echo "collect.sh: ${search%/ray/search} not parked" >&2
  done
fi
copied=0
while IFS= read -r -d '' source; do
  target=docs/results/${source#"$from"/}
  cmp -s "$source" "$target" 2>/dev/null && continue
  case "$target" in
    */results.csv)
      # every run here must still be there (a grid only adds rows, and may add columns)
      if [ -f "$target" ] && ! python -c "$lacks" "$source" "$target"; then
        echo "collect.sh: $target left as it is (merge by hand)" >&2
        exit 2
      fi ;;
  esac
  mkdir -p "$(dirname "$target")"
  cp "$source" "$target.tmp" && mv "$target.tmp" "$target"
  copied=$((copied + 1))
done < <(find "$from" \( -name checkpoints -o -name ray -o -name logs \) -prune -o -type f \
           \( -name results.csv -o -name trials.csv -o -name best.yaml -o -name search.json \
              -o -name best_result.json -o -path '*/per_user/*' -o -path '*/history/*' \
              -o -path '*/parked/*' \) -print0)
# parked runs that ended in the worktree: it had them at its commit, and has them no more
removed=0
while IFS= read -r -d '' parked; do
  if [ ! -e "$worktree/$parked" ] && git -C "$worktree" cat-file -e "HEAD:$parked" 2>/dev/null; then
    rm "$parked"
    removed=$((removed + 1))
  fi
done < <(find docs/results -path '*/parked/*' -type f -print0)
echo "collect.sh: $copied files from $from, $removed parked runs that ended there removed"
recbole-awrsr report
git status --short docs/results
