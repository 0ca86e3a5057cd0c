#!/usr/bin/env bash
# In the main checkout: bring a grid worktree's finished work over (every grid's results.csv,
# per_user/ and history/; every search's trials.csv, best.yaml, search.json and
# best_result.json), then rewrite the tables and docs/results.md from the CSVs
# (recbole-awrsr report). Checkpoints, Ray's state and logs stay where they are.
#   docs/results/collect.sh /work/grid6
# A CSV here with a row the worktree's lacks is not overwritten (the worktree would be older
# than this checkout, or another grid wrote here): that file is named and the script stops.
set -eu
from=${1:?the grid worktree, e.g. /work/grid6}/docs/results
cd "$(dirname "$0")/../.."
[ -d "$from" ] || { echo "collect.sh: $from is not a folder" >&2; exit 2; }
copied=0
while IFS= read -r -d '' source; do
  target=docs/results/${source#"$from"/}
  cmp -s "$source" "$target" 2>/dev/null && continue
  case "$target" in
    *.csv)
      # every line here must still be there (rows are only ever added or rewritten in place)
      if [ -f "$target" ] && [ -n "$(grep -vxF -f "$source" "$target" | head -n 1)" ]; then
        echo "collect.sh: $target has rows that $source lacks; left as it is (merge by hand)" >&2
        exit 2
      fi ;;
  esac
  mkdir -p "$(dirname "$target")"
  cp "$source" "$target.tmp" && mv "$target.tmp" "$target"
  copied=$((copied + 1))
done < <(find "$from" \( -name checkpoints -o -name ray -o -name logs \) -prune -o -type f \
           \( -name results.csv -o -name trials.csv -o -name best.yaml -o -name search.json \
              -o -name best_result.json -o -path '*/per_user/*' -o -path '*/history/*' \) -print0)
echo "collect.sh: $copied files from $from"
recbole-awrsr report
git status --short docs/results
