#!/usr/bin/env bash
# Re-make the quick-tier transfer tables (source tinyimagenet200_32_subset; targets
# cifar10_32, cub100_32, flowers12_32) from scratch, export the records and rebuild the
# tables. About 1-1.5 h for the test split, ~4.5 h for val, on a 2-core CPU; the Barlow Twins target model is trained
# once (cached) and shared by krrst, kmeans and random+representation_mse. dsa and dm add
# ~40 min; the CIFAR-10 sample's from-scratch table (random, dm, dsa at IPC 10) ~1.5 h.
#   bash leaderboard/quick.sh              # the results table (test splits), seeds 0,1,2
#   SPLIT=val bash leaderboard/quick.sh    # the sizing table (validation splits) and the
#                                          # supervised-oracle diagnostics
#   SEEDS=0 bash leaderboard/quick.sh      # one seed
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-0,1,2}
SPLIT=${SPLIT:-test}
case "$SPLIT" in test) split=() ;; val) split=(-o eval_split=val) ;;
  *) echo "SPLIT must be test or val, got '$SPLIT'" >&2; exit 2 ;; esac
ids=()
run_row() {  # run_row TASK ARGS...: one leaderboard row of TASK's quick table
  local task=$1 out
  shift
  out=$(ddbench run --task "$task" --preset quick --seeds "$SEEDS" --json "${split[@]}" "$@")
  ids+=("$(python -c 'import json,sys; print(json.loads(sys.stdin.read())["run_id"])' <<<"$out")")
}
row() { run_row transfer "$@"; }
row --method none
row --method random
row --method krrst            # trains the target model on first use
row --method random -o recipe=representation_mse
row --method kmeans
row --method dsa              # ~6 min of distillation per seed on 2 idle cores
row --method dm               # ~5 min per seed
if [ "$SPLIT" = val ]; then
  # how the quick KRR-ST preset was sized (docs/quick-tier-findings.md)
  row --method krrst -o outer_lr=0.001
  SEEDS=0 row --method krrst -o outer_lr=0.001 -o steps=4000
  # diagnostics, not contenders: a target model trained WITH the source's labels
  row --method random -o recipe=representation_mse -o target_objective=supervised
  row --method krrst -o target_objective=supervised
  row --method krrst -o target_objective=supervised -o outer_lr=0.001
  row --method krrst -o target_objective=supervised -o learn=images
  row --method krrst -o target_objective=supervised -o learn=targets
  row --method krrst -o target_objective=supervised -o pool_steps=1000
fi
# architecture generalization (the paper's Fig. 3 in miniature): the same distilled sets (from
# the cache), each pre-trained into ConvNet/VGG11/AlexNet/MobileNet/ResNet10 and fine-tuned on
# cub100_32 and flowers12_32; ~5-9 min per seed and method on 2 cores
for m in none random kmeans krrst dsa dm; do run_row arch_generalization --method $m; done
# target-data-free KD (Table 4 in miniature): a ResNet18 x0.25 teacher on cifar10_32 (trained once,
# ~11 min, cached), five students through the set's images only; ~6 min per seed and method
for m in gaussian random kmeans krrst dsa dm; do run_row kd --method $m; done
if [ "$SPLIT" = test ]; then
  # the DSA/DM papers' own evaluation in miniature (their README's sanity table): IPC 10 on the
  # CIFAR-10 sample, a ConvNet trained from scratch on each set, top-1 on the sample's test split
  for m in random dm dsa; do
    out=$(ddbench run --method $m --task scratch --preset quick --source cifar10_32 --ipc 10 --seeds "$SEEDS" --json)
    ids+=("$(python -c 'import json,sys; print(json.loads(sys.stdin.read())["run_id"])' <<<"$out")")
  done
fi
ddbench leaderboard add "${ids[@]}"
ddbench leaderboard build
