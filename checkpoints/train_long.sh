#!/usr/bin/env bash
# Longer-schedule runs for REPRODUCTION.md's "longer training" table: the bundle's flags
# (train_bundled.sh) with more epochs. RUNS lists "method epochs extra-flags"; run from the project root.
set -euo pipefail
mkdir -p checkpoints/long checkpoints/logs/long
RUNS=${RUNS:-"minimax 20 --p-t 0.7;ce 20"}
IFS=';' read -ra specs <<< "$RUNS"
for spec in "${specs[@]}"; do
  read -r method epochs extra <<< "$spec"
  name="$method-${epochs}ep${extra:+-$(echo "$extra" | tr -d ' -' )}"
  # shellcheck disable=SC2086
  .venv/bin/python -m core.train --method "$method" $extra --dataset fashion-mnist --arch resnet20 \
    --epochs "$epochs" --batch-size 256 --lr 0.1 --seed 0 \
    --out "checkpoints/long/$name.pt" --progress "checkpoints/logs/long/$name.progress.jsonl" \
    > "checkpoints/logs/long/$name.log" 2>&1
done
