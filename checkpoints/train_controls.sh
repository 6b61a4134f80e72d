#!/usr/bin/env bash
# The unit-ablation abstract's controls (batch norm, dropout) for the "Unit-ablation controls"
# section of REPRODUCTION.md: cross-entropy for 6 epochs at a peak learning rate of 0.005, with
# batch norm (the baseline), without it, and with dropout 0.5 before the head; only that changes
# (same seed, epochs, batch size, learning rate). Without batch norm (core/models/cifar.py's init),
# 3 epochs on 10,000 images reached 10% at lr 0.1 and at 0.02, 60% at 0.005. Made on this project's 2-core
# CPU, one run at a time (about 7 minutes each). No per-epoch snapshots (--snapshot-per-class 0): 1.1 MB a checkpoint
# instead of 1.8, for what travels to a GPU machine (bench/gpu_session.sh); the section reads the
# trained models alone. The random-rotation control needs no model: it is an analysis
# (core/analysis/rotation.py) run on each. Run from the project root.
#   ONLY="ce-nobn"   retrains a subset (names as below)
set -euo pipefail
mkdir -p checkpoints/controls checkpoints/logs/controls
for spec in "ce-nobn:--no-bn" "ce-bn:" "ce-dropout0.5:--dropout 0.5"; do
  name=${spec%%:*}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  .venv/bin/python -m core.train --method ce ${spec#*:} --dataset fashion-mnist --arch resnet20 \
    --epochs 6 --batch-size 256 --lr 0.005 --seed 0 --log-interval 10 --snapshot-per-class 0 \
    --out "checkpoints/controls/$name.pt" --progress "checkpoints/logs/controls/$name.progress.jsonl" \
    > "checkpoints/logs/controls/$name.log" 2>&1
done
