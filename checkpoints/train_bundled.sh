#!/usr/bin/env bash
# The exact commands that trained the bundled checkpoints; logs land beside them.
# Same seed, schedule and epochs for every method. Run from the project root.
# ONLY="maxnte label_smoothing" retrains a subset (names as below).
set -euo pipefail
EPOCHS=${EPOCHS:-10}
for spec in "ce" "minimax --p-t 0.7" "lsg" "maxnte --lam 1.0" "label_smoothing --eps 0.1" "confidence_penalty --beta 0.1"; do
  name=${spec%% *}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  .venv/bin/python -m core.train --method $spec --dataset fashion-mnist --arch resnet20 \
    --epochs "$EPOCHS" --batch-size 256 --lr 0.1 --seed 0 \
    --out "checkpoints/$name.pt" --progress "checkpoints/logs/$name.progress.jsonl" \
    > "checkpoints/logs/$name.log" 2>&1
done
