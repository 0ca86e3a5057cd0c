#!/usr/bin/env bash
# The paper's Table 2 on Beauty: docs/results/table2.sh for beauty (see there). From the
# repository root, one process per core:
#   nohup docs/results/beauty-table2/grid.sh 1 > table2-1.log 2>&1 &
#   nohup docs/results/beauty-table2/grid.sh 2 > table2-2.log 2>&1 &
# and for STOSAAWR, once its search has chosen: grid.sh 1 STOSAAWR, grid.sh 2 STOSAAWR.
exec "$(dirname "$0")/../table2.sh" beauty "$@"
