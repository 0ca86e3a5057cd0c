# Sourced by the Table 2 and Table 3 scripts (table2.sh, beauty-table2/table3.sh,
# device/table2.sh), tune/tune.sh, notebook.sh and device/prepare.sh: the one place that says
# - where each dataset's raw data lies (raw_data);
# - at which variant each mechanism runs: the one that led it on ml-100k validation
#   (ml-100k-variants/tables.md, "Choice on validation", SASRecAWR; STOSAAWR takes the
#   same): simple V2 and additive V2 (refine_input=rownorm refine_init=identity), value V0
#   (the defaults); stochastic (STOSAAWR only) at its defaults; smooth (the control, no
#   refine_* key applies) as it is;
# - the paper's mechanisms, among which Table 3's is chosen (paper_mechanisms);
# - where a backbone's tuned configuration is: tune/<dataset>/ for SASRecAWR,
#   tune/<dataset>-stosa/ for STOSAAWR.
V2="--refine_input=rownorm --refine_init=identity"
declare -A variant=([none]="" [simple]="$V2" [value]="" [additive]="$V2" [smooth]="" [stochastic]="")
# the paper's SASRecAWR mechanisms, among which Table 2 on Beauty chooses the one that Table 3
# takes further (smooth is the control, none the baseline, stochastic STOSAAWR's alone)
paper_mechanisms=(simple value additive)
# paper_mechanism NAME: whether NAME is one of them (Table 3 takes one)
paper_mechanism() { [[ " ${paper_mechanisms[*]} " == *" $1 "* ]]; }

# raw_data DATASET: the raw file or folder in ../shared/data that the dataset's converter reads
raw_data() {
  case "$1" in
    beauty) echo ../shared/data/beauty/Beauty.txt ;;
    ml-1m) echo ../shared/data/ml-1m ;;
    *) echo "the dataset must be beauty or ml-1m, got $1" >&2; return 2 ;;
  esac
}

# search_folder DATASET MODEL: the folder of the backbone's search (its best.yaml is the
# tuned configuration); fails, saying why, for a model without a search space
search_folder() {
  case "$2" in
    SASRecAWR) echo "docs/results/tune/$1" ;;
    STOSAAWR) echo "docs/results/tune/$1-stosa" ;;
    *) echo "model must be SASRecAWR or STOSAAWR, got $2" >&2; return 2 ;;
  esac
}

# tuned_config DATASET MODEL: the tuned configuration, refusing to go on without it
tuned_config() {
  local folder
  folder=$(search_folder "$1" "$2") || return 2
  if [ ! -f "$folder/best.yaml" ]; then
    echo "$folder/best.yaml is missing: run docs/results/tune/tune.sh $1 $2 first" >&2
    return 2
  fi
  echo "$folder/best.yaml"
}
