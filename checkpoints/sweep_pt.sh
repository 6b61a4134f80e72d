#!/usr/bin/env bash
# The p_t sweep of REPRODUCTION.md: minimax at p_t 1.0 (= CE), 0.95, 0.9, 0.8, 0.7 on a shorter
# schedule (the first 20,000 training images, 2 epochs), same seed. Run from the project root.
set -euo pipefail
mkdir -p checkpoints/sweep checkpoints/logs/sweep
for pt in 1.0 0.95 0.9 0.8 0.7; do
  .venv/bin/python -m core.train --method minimax --p-t "$pt" --dataset fashion-mnist --arch resnet20 \
    --epochs 2 --limit 20000 --batch-size 256 --lr 0.1 --seed 0 \
    --out "checkpoints/sweep/minimax-pt$pt.pt" --progress "checkpoints/logs/sweep/minimax-pt$pt.progress.jsonl" \
    > "checkpoints/logs/sweep/minimax-pt$pt.log" 2>&1
done
