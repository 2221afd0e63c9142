#!/usr/bin/env bash
# Re-make the quick-tier transfer table (source tinyimagenet200_32_subset; targets
# cifar10_32, cub100_32, flowers12_32) from scratch, export the records and rebuild the
# tables. About 1-1.5 h on a 2-core CPU; the Barlow Twins target model is trained once
# (cached) and shared by krrst, kmeans and random+representation_mse.
#   bash leaderboard/quick.sh            # all rows, seeds 0,1,2
#   SEEDS=0 bash leaderboard/quick.sh    # one seed
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-0,1,2}
ids=()
row() {
  local out
  out=$(ddbench run --task transfer --preset quick --seeds "$SEEDS" --json "$@")
  ids+=("$(python -c 'import json,sys; print(json.loads(sys.stdin.read())["run_id"])' <<<"$out")")
}
row --method none
row --method random
row --method krrst            # trains the target model on first use
row --method random -o recipe=representation_mse
row --method kmeans
ddbench leaderboard add "${ids[@]}"
ddbench leaderboard build
