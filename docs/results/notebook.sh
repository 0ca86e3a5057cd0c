#!/usr/bin/env bash
# Issue 14's converged comparison, every stage still to run, in the order below, as one
# command that any session starts in the background and that picks up where the last one
# stopped (each stage skips what its CSV or best.yaml already holds; an unfinished run goes
# on from its last epoch, from this machine's checkpoints/*.last.pth or from its parked
# bundle, and a stopped search from its parked Ray state).
# From the repository root of a grid worktree (git worktree add /work/gridN main), with the
# package installed:
#   nohup docs/results/notebook.sh > /work/gridlogs/notebook.log 2>&1 &
# The stages (a pair of processes, one per core, sharing one list of runs through compare's
# claims, or one search over both cores):
#   1. Table 2 on Beauty, SASRecAWR           table2.sh beauty 1 | 2
#   2. the ML-1M backbone search              tune/tune.sh ml-1m
#   3. Table 2 on ML-1M, SASRecAWR            table2.sh ml-1m 1 | 2
#   4. STOSAAWR's search on Beauty, Table 2   tune/tune.sh beauty STOSAAWR; table2.sh beauty 1 | 2 STOSAAWR
#   5. STOSAAWR's search on ML-1M, Table 2    tune/tune.sh ml-1m STOSAAWR; table2.sh ml-1m 1 | 2 STOSAAWR
#   6. Table 3 on Beauty (layers 1-4)         beauty-table2/table3.sh 1 | 2 MECHANISM, with the
#      mechanism of Table 2 on Beauty that leads on mean validation NDCG@10 (test not read;
#      one of paper_mechanisms in mechanisms.sh: smooth is the control)
# They run in the issue's order, 1 2 3 4 5 6 (again since session 14; sessions 13-14 ran
# 1 6 4 2 3 5, the stages whose runs end within a session first, while a run or search that
# outlasted a session was lost with its machine). Since session 14 nothing is lost at a
# session's end: docs/results/stop.sh, then collect.sh --park in main, commit the unfinished
# runs' states and the stopped searches (recbole_awrsr/parking.py), and compare and tune here
# continue them, on whatever machine the next session gets. Measured: a Beauty SASRecAWR run
# takes about an hour on a core; an ML-1M run 2.5-3 h (about 100 epochs of 80-95 s at the
# plugin's defaults, beside another run) and ML-1M's search about 8 core-hours; a STOSAAWR
# epoch on Beauty 41 s of training and 16-24 s of validation at its defaults (session 13).
# NOTEBOOK_STAGES="3 4" runs only those stages, in that order. Each stage's processes log to
# $LOGS/<stage>-<process>.log (LOGS: /work/gridlogs by default). A stage that fails is
# reported and the next one starts; its rows are retried on the next start. Then, in the
# main checkout: docs/results/collect.sh WORKTREE brings the rows over and rewrites the report.
set -u
cd "$(dirname "$0")/../.."
# this checkout's code in every process, Ray's trial workers too (they do not start from here)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
LOGS=${LOGS:-/work/gridlogs}
mkdir -p "$LOGS"
here=docs/results
. $here/mechanisms.sh
stages=${NOTEBOOK_STAGES:-1 2 3 4 5 6}

say() { echo "== $(date '+%F %T') $*"; }

# convert DATASET: the atomic file, from ../shared/data, if it is not there yet
convert() {
  [ -f "dataset_atomic/$1/$1.inter" ] || python -m recbole_awrsr.data convert "$1" "$(raw_data "$1")"
}

# pair NAME COMMAND...: COMMAND 1 and COMMAND 2 side by side (one per core), then wait for both
pair() {
  local name=$1; shift
  say "stage $name: $* {1,2}"
  "$@" 1 > "$LOGS/$name-1.log" 2>&1 & local first=$!
  "$@" 2 > "$LOGS/$name-2.log" 2>&1 & local second=$!
  wait "$first"; local rc1=$?
  wait "$second"; local rc2=$?
  say "stage $name ended: processes exited $rc1 and $rc2"
}

# search NAME DATASET MODEL: the backbone search, unless its best.yaml is there
search() {
  if [ -f "$(search_folder "$2" "$3")/best.yaml" ]; then
    say "stage $1: the $3 search on $2 has chosen (best.yaml is there)"
    return 0
  fi
  say "stage $1: $here/tune/tune.sh $2 $3"
  "$here/tune/tune.sh" "$2" "$3" > "$LOGS/$1.log" 2>&1
  local rc=$?
  say "stage $1 ended: exit $rc"
  return $rc
}

# table2 DATASET MODEL (as one process's arguments, for pair)
table2() { local dataset=$1 model=$2 process=$3; "$here/table2.sh" "$dataset" "$process" "$model"; }
# table3 MECHANISM PROCESS
table3() { "$here/beauty-table2/table3.sh" "$2" "$1"; }

# chosen_mechanism: the mechanism of beauty-table2's SASRecAWR rows at the tuned depth that
# leads on mean validation NDCG@10 (none excluded), once every mechanism has 3 seeds there
chosen_mechanism() {
  python - "$here/beauty-table2/results.csv" "$here/tune/beauty/best.yaml" "${paper_mechanisms[@]}" <<'EOF'
import sys
import pandas as pd
import yaml
rows = pd.read_csv(sys.argv[1])
layers = yaml.safe_load(open(sys.argv[2]))["n_layers"]
mechanisms = sys.argv[3:]
rows = rows[(rows["model"] == "SASRecAWR") & (rows["layers"] == layers)
            & rows["mechanism"].isin(mechanisms)]
means = rows.groupby("mechanism")["valid_ndcg@10"].agg(["count", "mean"])
if len(means) < len(mechanisms) or (means["count"] < 3).any():
    sys.exit(f"Table 2 on Beauty is not complete yet:\n{means}")
print(means["mean"].idxmax())
EOF
}

for stage in $stages; do
  case "$stage" in
    1) convert beauty && pair 1-beauty-table2 table2 beauty SASRecAWR ;;
    2) convert ml-1m && search 2-ml-1m-search ml-1m SASRecAWR ;;
    3) convert ml-1m && pair 3-ml-1m-table2 table2 ml-1m SASRecAWR ;;
    4) convert beauty && search 4-beauty-stosa-search beauty STOSAAWR \
         && pair 4-beauty-stosa-table2 table2 beauty STOSAAWR ;;
    5) convert ml-1m && search 5-ml-1m-stosa-search ml-1m STOSAAWR \
         && pair 5-ml-1m-stosa-table2 table2 ml-1m STOSAAWR ;;
    6) if mechanism=$(chosen_mechanism); then
         say "stage 6: Table 3 with $mechanism (the lead of Table 2 on Beauty, validation NDCG@10)"
         pair 6-beauty-table3 table3 "$mechanism"
       else
         say "stage 6 waits for Table 2 on Beauty (above: what it has)"
       fi ;;
    *) say "unknown stage $stage (the stages are 1 to 6)"; exit 2 ;;
  esac
done
say "done: stages $stages"
